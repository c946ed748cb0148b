/*
 * smtp_server.c - the relay's SMTP server: listeners, sessions, ESMTP,
 * DATA streamed into the spool.
 *
 * One struct smtp_session per connection (socket, state, HELO name) and
 * one struct smtp_tx per mail transaction (sender, recipients, spool
 * message); RSET, HELO/EHLO and the end of DATA free the transaction.
 * Every state change goes through session_state(), which logs it at
 * debug level.
 *
 *   INIT --EHLO/HELO--> READY --MAIL--> MAIL --RCPT--> RCPT --DATA--> DATA
 *   DATA --"."--> COMMIT --spool callback: 250/451--> READY
 *   READY --STARTTLS--> TLS_WAIT (220 flushing) --> TLS_HANDSHAKE --> INIT
 *   any --QUIT/421/521--> CLOSING (output flushing) --> freed
 *
 * PIPELINING: every complete command in the input buffer is handled in
 * order and the replies collect in the output buffer, which libevent
 * writes once the callback returns (one write per batch).  Input is not
 * looked at while a commit is running (COMMIT) or STARTTLS is pending
 * (TLS_WAIT): reading is disabled, so replies stay in order and a client
 * cannot make us buffer without bound.
 *
 * Exposure: this is the daemon's network face; every byte is hostile.
 * Lines are length-checked before they are copied (512 for commands,
 * [relay] max_line_length in DATA), DATA is parsed by smtp_parse.c's
 * state machine which refuses bare CR/LF (we answer 521 and close, like
 * Postfix's smtpd_forbid_bare_newline) and never buffers a message in
 * memory; bytes that arrive before a STARTTLS handshake are thrown away
 * (CVE-2011-0411); only recipients of [relay] domains (and of the
 * recipient list, when set) are accepted (no open relay); connections
 * are limited in total and per client address; idle and slow clients
 * time out; 20 errors end a session.
 *
 * Reply codes chosen where RFC 5321 leaves a choice:
 *   552 5.3.4  SIZE= over the limit, message over the limit, and a DATA
 *              line over [relay] max_line_length (the whole message is
 *              refused after its end, like an oversized one)
 *   521 5.5.2  bare CR or LF in DATA (connection closed)
 *   452 4.5.3  too many recipients (RFC 5321 §4.5.3.1.10)
 *   421 4.7.0  too many connections (total or from one address)
 *   421 4.4.2  timeout;  421 4.3.2  shutting down
 *   451 4.3.0  spool or queue index failure
 *
 * Memory: an idle session is one bufferevent and this small struct; the
 * DATA scratch buffer is one per server; spool write buffers exist only
 * during DATA.
 *
 * Threading: loop thread only.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "checks.h"
#include "log.h"
#include "relay.h"
#include "smtp_parse.h"
#include "tls.h"
#include "util.h"

#ifndef TAILQ_FOREACH_SAFE	/* glibc's sys/queue.h lacks it */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

#define SMTP_MAX_ERRORS		20	/* then 421 and close */
#define SMTP_SHUTDOWN_GRACE	60	/* seconds for DATA to finish */
#define SMTP_SCRATCH		16384	/* DATA output per step */
#define SMTP_ADDRSTRLEN		INET6_ADDRSTRLEN

enum session_state {
	S_INIT,		/* greeted, waiting for EHLO/HELO */
	S_READY,	/* no transaction */
	S_MAIL,		/* MAIL given */
	S_RCPT,		/* at least one RCPT accepted */
	S_DATA,		/* message bytes streaming */
	S_COMMIT,	/* waiting for the spool */
	S_TLS_WAIT,	/* 220 to STARTTLS is being flushed */
	S_TLS_HANDSHAKE,
	S_CLOSING,	/* last reply flushing, then freed */
};

static const char *const state_names[] = {
	"INIT", "READY", "MAIL", "RCPT", "DATA", "COMMIT", "TLS_WAIT",
	"TLS_HANDSHAKE", "CLOSING",
};

struct smtp_session;

/* One mail transaction: MAIL .. end of DATA.  Owned by its session. */
struct smtp_tx {
	struct smtp_session	*s;
	char			*sender;	/* "" for <> */
	int			 smtputf8;
	enum smtp_body		 body;
	struct strlist		 rcpts;
	struct spool_msg	*msg;		/* during DATA */
	struct queue_record	 rec;		/* envelope, built at DATA */
	struct smtp_data	 data;
	struct msg_checks	*checks;	/* SPF, DKIM, A-R, keys */
};

struct smtp_session {
	TAILQ_ENTRY(smtp_session) entry;
	struct smtp_server	*server;
	struct bufferevent	*bev;
	struct evbuffer		*pend;		/* TLS: replies of a batch */
	enum session_state	 state;
	char			 addr[SMTP_ADDRSTRLEN];
	struct sockaddr_storage	 sa;		/* the client, for SPF */
	char			*helo;		/* sanitised; NULL before HELO */
	unsigned		 esmtp:1;
	unsigned		 tls:1;
	unsigned		 dead:1;	/* socket gone during COMMIT */
	unsigned		 skip_line:1;	/* discarding an overlong line */
	unsigned		 quit_after_tx:1; /* shutting down */
	uint8_t			 errors;
	struct smtp_tx		*tx;
};

TAILQ_HEAD(session_list, smtp_session);

struct smtp_server {
	struct relay		*relay;
	/* Sockets are bound by smtp_server_new() (maybe port 25, before
	 * root is dropped) but listen() only in smtp_server_start(), once
	 * the control socket exists: a client that gets through is served.
	 * lfds[i] until then, listeners[i] (owning it) after. */
	int			*lfds;
	struct evconnlistener	**listeners;
	size_t			 nlisteners;
	SSL_CTX			*tls_ctx;	/* NULL: no STARTTLS */
	struct session_list	 sessions;
	size_t			 nsessions;
	struct strlist		 rcptlist;	/* sorted, lower case */
	int			 have_rcptlist;
	char			 hostname[256];
	int			 shutting_down;
	void			(*done)(void *);
	void			*done_arg;
	struct event		*done_ev;	/* calls done from the loop */
	struct event		*grace_ev;	/* shutdown deadline */
	unsigned char		 scratch[SMTP_SCRATCH];
};

static void	session_process(struct smtp_session *);
static void	session_free(struct smtp_session *);
static void	session_read_cb(struct bufferevent *, void *);
static void	session_write_cb(struct bufferevent *, void *);
static void	session_event_cb(struct bufferevent *, short, void *);

/* ---- small helpers ---------------------------------------------------------- */

static struct config *
server_cfg(const struct smtp_server *server)
{
	return (server->relay->cfg);
}

/*
 * reply - queue one reply line (CRLF added)
 *
 * One evbuffer_add per line, so the lines of a pipelined batch share
 * chains: under TLS each chain tends to become its own record.
 */
static void
reply(struct smtp_session *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (s->bev == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	evbuffer_add(s->pend ? s->pend : bufferevent_get_output(s->bev), line,
	    (size_t)n);
}

/*
 * session_flush - hand the batched replies to the TLS bufferevent
 *
 * The OpenSSL filter writes a record as soon as bytes are added, so
 * under TLS the replies of a batch are collected first (one record, not
 * one per line).  Called at the end of every callback; idempotent.
 */
static void
session_flush(struct smtp_session *s)
{
	if (s->pend != NULL && s->bev != NULL &&
	    evbuffer_get_length(s->pend) > 0)
		evbuffer_add_buffer(bufferevent_get_output(s->bev), s->pend);
}

/* session_state - the one place a session changes state */
static void
session_state(struct smtp_session *s, enum session_state st)
{
	if (s->state == st)
		return;
	log_debug("smtp: %p [%s]: %s -> %s", (void *)s, s->addr,
	    state_names[s->state], state_names[st]);
	s->state = st;
}

static void
set_timeouts(struct smtp_session *s, int64_t secs)
{
	struct timeval tv = { (time_t)secs, 0 };

	if (s->bev)
		bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/*
 * session_close - send nothing more; free once the output is flushed
 *
 * Never frees at once: callers go on using s until they return.  The
 * write callback (deferred when nothing is left to write) frees it.
 */
static void
session_close(struct smtp_session *s)
{
	session_state(s, S_CLOSING);
	if (s->bev == NULL)
		return;
	session_flush(s);
	bufferevent_disable(s->bev, EV_READ);
	/* A client that stops reading must not keep us forever. */
	set_timeouts(s, 30);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		bufferevent_trigger(s->bev, EV_WRITE,
		    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void
count_reject(struct smtp_session *s, enum reject_reason why)
{
	s->server->relay->stats.rejected[why]++;
}

/* session_error - count a client error; 421 and close past the limit */
static int
session_error(struct smtp_session *s)
{
	if (++s->errors < SMTP_MAX_ERRORS)
		return (0);
	reply(s, "421 4.7.0 %s Error: too many errors", s->server->hostname);
	log_info("too many errors from %s[%s]", s->helo ? s->helo : "unknown",
	    s->addr);
	session_close(s);
	return (-1);
}

/* sanitize - a peer-supplied name safe for logs and trace headers */
static char *
sanitize(const char *in)
{
	char *out = strdup(in), *p;

	if (out == NULL)
		return (NULL);
	for (p = out; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr(".-_:[]", c) != NULL))
			*p = '?';
	}
	return (out);
}

/* ---- transactions --------------------------------------------------------- */

static void
tx_free(struct smtp_tx **txp)
{
	struct smtp_tx *tx = *txp;

	if (tx == NULL)
		return;
	*txp = NULL;
	checks_free(&tx->checks);
	spool_msg_abort(&tx->msg);
	queue_record_clear(&tx->rec);
	strlist_clear(&tx->rcpts);
	free(tx->sender);
	free(tx);
}

/* session_reset - drop the transaction (RSET, EHLO, end of DATA) */
static void
session_reset(struct smtp_session *s)
{
	tx_free(&s->tx);
	if (s->state != S_INIT)
		session_state(s, S_READY);
}

static void	session_checks_done(struct smtp_session *, const char *,
		    enum reject_reason);
static int	tx_sink(const void *, size_t, void *);

/* ---- recipients ------------------------------------------------------------- */

static int
strcmp_p(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/* rcptlist_load - one address per line; '#' comments; lower-cased, sorted */
static int
rcptlist_load(const char *path, struct strlist *l, char *err, size_t errlen)
{
	char line[1024], *p;
	FILE *fp;
	size_t lineno = 0;

	memset(l, 0, sizeof(*l));
	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return (-1);
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			snprintf(err, errlen, "%s:%zu: line too long", path,
			    lineno);
			goto fail;
		}
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		p = str_trim(line);
		if (*p == '\0')
			continue;
		if (*p == '<' && p[strlen(p) - 1] == '>') {
			p[strlen(p) - 1] = '\0';
			p++;
		}
		if (smtp_mailbox_valid(p, strlen(p), 1, NULL) == -1) {
			snprintf(err, errlen, "%s:%zu: bad address", path,
			    lineno);
			goto fail;
		}
		str_lower(p);
		if (strlist_add(l, p, strlen(p)) == -1) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	fclose(fp);
	if (l->count > 0)
		qsort(l->items, l->count, sizeof(*l->items), strcmp_p);
	return (0);
fail:
	fclose(fp);
	strlist_clear(l);
	return (-1);
}

static int
rcptlist_has(const struct strlist *l, const char *lower)
{
	return (l->count > 0 && bsearch(&lower, l->items, l->count,
	    sizeof(*l->items), strcmp_p) != NULL);
}

/* smtp_server_reload - re-read the recipient list (SIGHUP) */
int
smtp_server_reload(struct smtp_server *server, char *err, size_t errlen)
{
	const char *path = server_cfg(server)->relay.recipients;
	struct strlist l;

	if (path == NULL || path[0] == '\0')
		return (0);
	if (rcptlist_load(path, &l, err, errlen) == -1)
		return (-1);
	strlist_clear(&server->rcptlist);
	server->rcptlist = l;
	server->have_rcptlist = 1;
	log_info("recipient list %s: %zu address(es)", path, l.count);
	return (0);
}

/*
 * rcpt_check - may we accept addr?  NULL or the refusal reply.
 * postmaster (bare, or at one of our domains) is always accepted.
 */
static const char *
rcpt_check(struct smtp_session *s, const struct smtp_cmd *cmd,
    enum reject_reason *why_r)
{
	struct smtp_server *server = s->server;
	const char *at, *domain;
	char lower[SMTP_PATH_MAX + 1];

	if (cmd->postmaster)
		return (NULL);
	if ((at = strrchr(cmd->addr, '@')) == NULL) {
		*why_r = REJ_SYNTAX;
		return ("501 5.1.3 Bad recipient address syntax");
	}
	domain = at + 1;
	/* A bounce to one of our SRS addresses: ours whatever the domain
	 * list says, as long as its hash and day stamp hold. */
	switch (srs_rcpt_check(server->relay, cmd->addr, NULL, 0)) {
	case 1:
		return (NULL);
	case -1:
		*why_r = REJ_UNKNOWN_USER;
		return ("550 5.1.1 Invalid or expired SRS address");
	default:
		break;
	}
	if (!strlist_contains_ci(&server_cfg(server)->relay.domains, domain)) {
		*why_r = REJ_RELAY_DENIED;
		return ("550 5.7.1 Relay access denied");
	}
	if (cmd->addr_8bit && !(s->tx && s->tx->smtputf8)) {
		*why_r = REJ_SYNTAX;
		return ("553 5.6.7 Non-ASCII address requires SMTPUTF8");
	}
	if ((size_t)(at - cmd->addr) == 10 &&
	    strncasecmp(cmd->addr, "postmaster", 10) == 0)
		return (NULL);
	if (server->have_rcptlist) {
		str_copy(lower, cmd->addr, sizeof(lower));
		str_lower(lower);
		if (!rcptlist_has(&server->rcptlist, lower)) {
			*why_r = REJ_UNKNOWN_USER;
			return ("550 5.1.1 User unknown");
		}
	}
	return (NULL);
}

/* ---- commands ------------------------------------------------------------- */

static void
cmd_helo(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct smtp_server *server = s->server;
	char *helo;

	if ((helo = sanitize(cmd->arg)) == NULL) {
		reply(s, "451 4.3.0 Local error, try again later");
		return;
	}
	free(s->helo);
	s->helo = helo;
	tx_free(&s->tx);
	s->esmtp = cmd->verb == SMTP_CMD_EHLO;
	session_state(s, S_READY);
	if (!s->esmtp) {
		reply(s, "250 %s", server->hostname);
		return;
	}
	reply(s, "250-%s", server->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %llu",
	    (unsigned long long)server_cfg(server)->relay.max_message_size);
	reply(s, "250-8BITMIME");
	reply(s, "250-SMTPUTF8");
	if (server->tls_ctx != NULL && !s->tls)
		reply(s, "250-STARTTLS");
	reply(s, "250 ENHANCEDSTATUSCODES");
}

static void
cmd_mail(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct config *cfg = server_cfg(s->server);
	struct smtp_tx *tx;

	if (s->state == S_INIT) {
		reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		session_error(s);
		return;
	}
	if (s->tx != NULL) {
		reply(s, "503 5.5.1 Error: nested MAIL command");
		session_error(s);
		return;
	}
	if (cmd->has_size && cfg->relay.max_message_size != 0 &&
	    cmd->size > cfg->relay.max_message_size) {
		reply(s, "552 5.3.4 Message size exceeds fixed limit");
		count_reject(s, REJ_SIZE);
		return;
	}
	if ((tx = calloc(1, sizeof(*tx))) == NULL ||
	    (tx->sender = strdup(cmd->addr)) == NULL) {
		free(tx);
		reply(s, "451 4.3.0 Local error, try again later");
		return;
	}
	tx->s = s;
	tx->smtputf8 = cmd->smtputf8;
	tx->body = cmd->body;
	s->tx = tx;
	/* SPF starts now: its look-ups overlap RCPT and DATA. */
	if ((tx->checks = checks_new(s->server->relay,
	    (struct sockaddr *)&s->sa, s->helo, tx->sender)) == NULL) {
		tx_free(&s->tx);
		reply(s, "451 4.3.0 Local error, try again later");
		return;
	}
	session_state(s, S_MAIL);
	reply(s, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct config *cfg = server_cfg(s->server);
	enum reject_reason why = REJ_SYNTAX;
	const char *refusal, *addr = cmd->addr;
	char pm[SMTP_PATH_MAX + 16];
	size_t i;

	if (s->tx == NULL) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		session_error(s);
		return;
	}
	if ((refusal = rcpt_check(s, cmd, &why)) != NULL) {
		reply(s, "%s", refusal);
		count_reject(s, why);
		log_info("reject: RCPT from %s[%s]: %s; from=<%s> to=<%s>",
		    s->helo, s->addr, refusal, s->tx->sender, cmd->addr);
		session_error(s);
		return;
	}
	/* Bare <postmaster> (RFC 5321 §4.5.1) is the postmaster of our first
	 * domain: the upstream needs an address with a domain. */
	if (cmd->postmaster && cfg->relay.domains.count > 0) {
		snprintf(pm, sizeof(pm), "postmaster@%s",
		    cfg->relay.domains.items[0]);
		addr = pm;
	}
	for (i = 0; i < s->tx->rcpts.count; i++)
		if (strcasecmp(s->tx->rcpts.items[i], addr) == 0) {
			reply(s, "250 2.1.5 Ok");	/* once is enough */
			return;
		}
	if (s->tx->rcpts.count >= (size_t)cfg->relay.max_recipients) {
		reply(s, "452 4.5.3 Too many recipients");
		count_reject(s, REJ_TOO_MANY_RCPTS);
		return;
	}
	if (strlist_add(&s->tx->rcpts, addr, strlen(addr)) == -1) {
		reply(s, "451 4.3.0 Local error, try again later");
		return;
	}
	session_state(s, S_RCPT);
	reply(s, "250 2.1.5 Ok");
}

/* tx_envelope - the queue record of the transaction (all pending) */
static int
tx_envelope(struct smtp_session *s, struct smtp_tx *tx)
{
	struct config *cfg = server_cfg(s->server);
	struct queue_record *rec = &tx->rec;
	size_t i, n, ncopy = cfg->forward.copy_to.count > 0 ? 1 : 0;
	time_t now = time(NULL);
	char client[512];

	queue_record_clear(rec);
	snprintf(client, sizeof(client), "%s [%s]", s->helo, s->addr);
	rec->arrived = now;
	if ((rec->sender = strdup(tx->sender)) == NULL ||
	    (rec->client = strdup(client)) == NULL)
		return (-1);
	n = tx->rcpts.count * (1 + ncopy);
	if ((rec->dlv = calloc(n, sizeof(*rec->dlv))) == NULL)
		return (-1);
	for (i = 0; i < n; i++) {
		struct delivery *d = &rec->dlv[i];

		d->dest = i < tx->rcpts.count ? DLV_UPSTREAM : DLV_COPY;
		d->state = DLV_PENDING;
		d->next_try = now;
		if ((d->rcpt = strdup(tx->rcpts.items[i % tx->rcpts.count])) ==
		    NULL)
			return (-1);
		rec->ndlv = i + 1;
	}
	return (0);
}

/* received_header - our trace header, RFC 5321 §4.4 */
static int
received_header(struct smtp_session *s, struct smtp_tx *tx, char *buf,
    size_t len)
{
	const char *proto;
	char date[64], forpart[SMTP_PATH_MAX + 16] = "";
	struct tm tm;
	time_t now = time(NULL);
	int n;

	if (tx->smtputf8)
		proto = s->tls ? "UTF8SMTPS" : "UTF8SMTP";
	else if (s->esmtp)
		proto = s->tls ? "ESMTPS" : "ESMTP";
	else
		proto = s->tls ? "SMTPS" : "SMTP";
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* One recipient only: naming several would disclose them all. */
	if (tx->rcpts.count == 1)
		snprintf(forpart, sizeof(forpart), "\r\n\tfor <%s>",
		    tx->rcpts.items[0]);
	n = snprintf(buf, len, "Received: from %s ([%s])\r\n"
	    "\tby %s (mailferry) with %s id %s%s;\r\n\t%s\r\n",
	    s->helo, s->addr, s->server->hostname, proto,
	    spool_msg_id(tx->msg), forpart, date);
	return (n < 0 || (size_t)n >= len ? -1 : n);
}

static void
cmd_data(struct smtp_session *s)
{
	struct config *cfg = server_cfg(s->server);
	struct smtp_tx *tx = s->tx;
	const char *refusal;
	char err[256], hdr[1024];
	int n;

	if (tx == NULL) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		session_error(s);
		return;
	}
	if (tx->rcpts.count == 0) {
		reply(s, "503 5.5.1 Error: need RCPT command");
		session_error(s);
		return;
	}
	if ((refusal = checks_spf_refusal(tx->checks)) != NULL) {
		/* SPF already answered: no need to take the message. */
		log_info("reject: DATA from %s[%s]: %s; from=<%s>", s->helo,
		    s->addr, refusal, tx->sender);
		reply(s, "%s", refusal);
		count_reject(s, REJ_POLICY);
		session_reset(s);
		return;
	}
	if ((tx->msg = spool_msg_new(s->server->relay->spool, err,
	    sizeof(err))) == NULL) {
		log_warnx("spool: %s", err);
		reply(s, "451 4.3.0 Local error, try again later");
		count_reject(s, REJ_TEMPFAIL);
		session_reset(s);
		return;
	}
	if (tx_envelope(s, tx) == -1 ||
	    spool_msg_envelope(tx->msg, &tx->rec) == -1 ||
	    (n = received_header(s, tx, hdr, sizeof(hdr))) == -1 ||
	    spool_msg_write(tx->msg, hdr, (size_t)n) == -1 ||
	    checks_data_begin(tx->checks, spool_msg_id(tx->msg), tx_sink,
	    tx) == -1) {
		log_warnx("%s: cannot start the spool file",
		    spool_msg_id(tx->msg));
		reply(s, "451 4.3.0 Local error, try again later");
		count_reject(s, REJ_TEMPFAIL);
		session_reset(s);
		return;
	}
	log_info("%s: client=%s[%s]%s", spool_msg_id(tx->msg), s->helo,
	    s->addr, s->tls ? " tls=yes" : "");
	smtp_data_init(&tx->data, cfg->relay.max_message_size,
	    cfg->relay.max_line_length);
	session_state(s, S_DATA);
	set_timeouts(s, cfg->relay.data_timeout);
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
cmd_starttls(struct smtp_session *s)
{
	if (s->server->tls_ctx == NULL) {
		reply(s, "502 5.5.1 Error: command not implemented");
		session_error(s);
		return;
	}
	if (s->tls) {
		reply(s, "503 5.5.1 Error: TLS already active");
		session_error(s);
		return;
	}
	tx_free(&s->tx);
	reply(s, "220 2.0.0 Ready to start TLS");
	/* Everything the client sent after STARTTLS was sent in clear
	 * before the handshake: it must not be read as commands after it
	 * (CVE-2011-0411).  Drop what we have; stop reading until the 220
	 * is out (then the handshake takes the socket). */
	evbuffer_drain(bufferevent_get_input(s->bev),
	    evbuffer_get_length(bufferevent_get_input(s->bev)));
	bufferevent_disable(s->bev, EV_READ);
	session_state(s, S_TLS_WAIT);
}

/* session_command - one command line */
static void
session_command(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_cmd cmd;
	const char *refusal;

	if ((refusal = smtp_cmd_parse(line, len, &cmd)) != NULL) {
		reply(s, "%s", refusal);
		count_reject(s, REJ_SYNTAX);
		session_error(s);
		return;
	}
	log_debug("smtp: %p [%s]: %s", (void *)s, s->addr,
	    smtp_verb_name(cmd.verb));
	switch (cmd.verb) {
	case SMTP_CMD_HELO:
	case SMTP_CMD_EHLO:
		cmd_helo(s, &cmd);
		break;
	case SMTP_CMD_MAIL:
		cmd_mail(s, &cmd);
		break;
	case SMTP_CMD_RCPT:
		cmd_rcpt(s, &cmd);
		break;
	case SMTP_CMD_DATA:
		cmd_data(s);
		break;
	case SMTP_CMD_RSET:
		session_reset(s);
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_CMD_NOOP:
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_CMD_QUIT:
		reply(s, "221 2.0.0 Bye");
		session_close(s);
		break;
	case SMTP_CMD_VRFY:
		reply(s, "252 2.0.0 Cannot VRFY user; send mail and we will "
		    "try");
		break;
	case SMTP_CMD_HELP:
		reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET "
		    "NOOP QUIT VRFY HELP%s",
		    s->server->tls_ctx && !s->tls ? " STARTTLS" : "");
		break;
	case SMTP_CMD_STARTTLS:
		cmd_starttls(s);
		break;
	default:
		reply(s, "500 5.5.1 Command unrecognized");
		break;
	}
}

/* ---- DATA and the commit -------------------------------------------------- */

/* tx_sink - the bytes checks.c passes on go to the spool file */
static int
tx_sink(const void *data, size_t len, void *arg)
{
	struct smtp_tx *tx = arg;

	return (spool_msg_write(tx->msg, data, len));
}

/* sender_domain - for the drain view: the domain of MAIL FROM, or NULL */
static const char *
sender_domain(const struct smtp_tx *tx)
{
	const char *at;

	if (tx == NULL || (at = strrchr(tx->sender, '@')) == NULL)
		return (NULL);
	return (at + 1);
}

/*
 * tx_answered - the transaction's final reply is out (or the client is
 * gone): free it, go on with what the client pipelined after the ".".
 */
static void
tx_answered(struct smtp_session *s)
{
	if (s->dead) {
		session_free(s);
		return;
	}
	session_flush(s);
	session_reset(s);
	set_timeouts(s, server_cfg(s->server)->relay.timeout);
	if (s->quit_after_tx) {
		reply(s, "421 4.3.2 %s Service shutting down",
		    s->server->hostname);
		session_close(s);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);
	session_process(s);	/* commands pipelined after the "." */
	session_flush(s);
}

/*
 * tx_duplicate - the message is one we queued before (same relay key):
 * 250, so the sender stops retrying, but nothing is forwarded again.
 */
static void
tx_duplicate(struct smtp_session *s, const char *id, const char *first)
{
	struct relay *relay = s->server->relay;
	struct smtp_tx *tx = s->tx;
	time_t now = time(NULL);

	relay->stats.duplicates++;
	relay->stats.last_inbound = now;
	if (relay->drain != NULL)
		drain_note(relay->drain, now, sender_domain(tx), s->addr);
	log_info("%s: duplicate of %s; from=<%s> nrcpt=%zu, not forwarded",
	    id, first, tx ? tx->sender : "?", tx ? tx->rcpts.count : 0);
	if (!s->dead)
		reply(s, "250 2.0.0 Ok: duplicate of %s, already queued", first);
	tx_answered(s);
}

static void
commit_cb(int status, const char *id, const char *why, void *arg)
{
	struct smtp_session *s = arg;
	struct relay *relay = s->server->relay;
	struct smtp_tx *tx = s->tx;
	time_t now = time(NULL);

	if (status == 1) {
		/* Another copy's commit won the race (spool.c). */
		tx_duplicate(s, id, why ? why : "?");
		return;
	}
	if (status == 0) {
		relay->stats.accepted++;
		relay->stats.last_inbound = now;
		if (relay->drain != NULL)
			drain_note(relay->drain, now, sender_domain(tx),
			    s->addr);
		log_info("%s: from=<%s> size=%llu nrcpt=%zu%s%s", id,
		    tx ? tx->sender : "?",
		    (unsigned long long)(tx ? tx->rec.size : 0),
		    tx ? tx->rcpts.count : (size_t)0,
		    tx && checks_summary(tx->checks)[0] ? " " : "",
		    tx ? checks_summary(tx->checks) : "");
		if (!s->dead)
			reply(s, "250 2.0.0 Ok: queued as %s", id);
		else
			log_info("%s: client gone before the reply; queued "
			    "all the same", id);
		if (relay->queue != NULL)
			queue_enqueued(relay->queue, id);
	} else {
		count_reject(s, REJ_TEMPFAIL);
		if (!s->dead)
			reply(s, "451 4.3.0 Local error, try again later");
	}
	tx_answered(s);
}

/*
 * tx_keys - after the checks: our Authentication-Results for the queue
 * record, the relay key (dedupe) and a ledger key per upstream
 * recipient.  -1 only when out of memory.
 */
static int
tx_keys(struct smtp_tx *tx)
{
	struct queue_record *rec = &tx->rec;
	char ar[4096];
	size_t i;

	if (checks_authres(tx->checks, ar, sizeof(ar)) == 1 &&
	    (rec->headers = strdup(ar)) == NULL)
		return (-1);
	if (checks_relay_key(tx->checks, tx->sender,
	    (const char *const *)tx->rcpts.items, tx->rcpts.count,
	    rec->relay_key) == 0)
		rec->has_relay_key = 1;
	for (i = 0; i < rec->ndlv; i++) {
		struct delivery *d = &rec->dlv[i];

		if (d->dest == DLV_UPSTREAM &&
		    checks_ledger_key(tx->checks, d->rcpt, d->ledger_key) == 0)
			d->has_ledger_key = 1;
	}
	return (0);
}

/* checks_done_cb - SPF and DKIM are in: refuse, drop a duplicate, or
 * commit */
static void
checks_done_cb(struct msg_checks *c, void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;
	const char *refusal, *id = spool_msg_id(tx->msg);
	char first[QUEUE_ID_LEN + 1], err[256];
	int rc;

	if (checks_removed(c) > 0)
		log_info("%s: dropped %zu forged Authentication-Results "
		    "field(s) naming us", id, checks_removed(c));
	if ((refusal = checks_refusal(c)) != NULL) {
		session_checks_done(s, refusal, REJ_POLICY);
		return;
	}
	if (tx_keys(tx) == -1) {
		log_warnx("%s: out of memory after the checks", id);
		session_checks_done(s, "451 4.3.0 Local error, try again "
		    "later", REJ_TEMPFAIL);
		return;
	}
	if (tx->rec.has_relay_key) {
		rc = spool_dedupe_lookup(s->server->relay->spool,
		    tx->rec.relay_key, first, err, sizeof(err));
		if (rc == 1) {
			/* Keep the id for the log: the spool file goes. */
			char mine[QUEUE_ID_LEN + 1];

			str_copy(mine, id, sizeof(mine));
			spool_msg_abort(&tx->msg);
			tx_duplicate(s, mine, first);
			return;
		}
		if (rc == -1)	/* the commit's put still catches a copy */
			log_warnx("%s: dedupe look-up: %s", id, err);
	}
	session_checks_done(s, NULL, REJ_NREASONS);
}

/* session_checks_done - refuse (refusal, counted as why) or commit */
static void
session_checks_done(struct smtp_session *s, const char *refusal,
    enum reject_reason why)
{
	struct smtp_tx *tx = s->tx;

	if (refusal != NULL) {
		count_reject(s, why);
		if (!s->dead)
			reply(s, "%s", refusal);
		tx_answered(s);
		return;
	}
	/* commit_cb answers: 250 only once the message is durable. */
	spool_msg_commit(&tx->msg, &tx->rec, commit_cb, s);
}

/* data_end - the "." has arrived (or DATA failed): answer or commit */
static void
data_end(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	const char *id = spool_msg_id(tx->msg);

	switch (tx->data.error) {
	case SMTP_DATA_OK:
		break;
	case SMTP_DATA_TOO_BIG:
		log_info("%s: reject: message too big (over %llu bytes) from "
		    "%s[%s]", id, (unsigned long long)tx->data.max_size,
		    s->helo, s->addr);
		reply(s, "552 5.3.4 Message size exceeds fixed limit");
		count_reject(s, REJ_SIZE);
		goto refused;
	case SMTP_DATA_LINE_TOO_LONG:
		log_info("%s: reject: line longer than %llu bytes from %s[%s]",
		    id, (unsigned long long)tx->data.max_line, s->helo,
		    s->addr);
		reply(s, "552 5.3.4 Message line too long");
		count_reject(s, REJ_SIZE);
		goto refused;
	case SMTP_DATA_BARE_NL:
		log_info("%s: reject: bare CR or LF in message from %s[%s]", id,
		    s->helo, s->addr);
		reply(s, "521 5.5.2 Bare CR or LF in message; use CRLF");
		count_reject(s, REJ_BARE_LF);
		tx_free(&s->tx);
		session_close(s);
		return;
	}
	if (checks_sink_failed(tx->checks)) {
		log_warnx("%s: spool write failed", id);
		reply(s, "451 4.3.0 Local error, try again later");
		count_reject(s, REJ_TEMPFAIL);
		goto refused;
	}
	set_timeouts(s, server_cfg(s->server)->relay.timeout);
	session_state(s, S_COMMIT);
	bufferevent_disable(s->bev, EV_READ);
	checks_data_end(tx->checks, checks_done_cb, s);
	return;
refused:
	session_reset(s);
	set_timeouts(s, server_cfg(s->server)->relay.timeout);
	if (s->quit_after_tx) {
		reply(s, "421 4.3.2 %s Service shutting down",
		    s->server->hostname);
		session_close(s);
	}
}

/* session_data - stream all the input holds; 1 when DATA has ended */
static int
session_data(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct smtp_tx *tx = s->tx;
	struct evbuffer_iovec v[8];
	size_t consumed, used, outlen, chunk;
	int nv, i;

	while (evbuffer_get_length(in) > 0 && !tx->data.done &&
	    tx->data.error != SMTP_DATA_BARE_NL) {
		consumed = 0;
		nv = evbuffer_peek(in, -1, NULL, v, 8);
		if (nv > 8)
			nv = 8;	/* the rest on the next turn of this loop */
		for (i = 0; i < nv && !tx->data.done &&
		    tx->data.error != SMTP_DATA_BARE_NL; i++) {
			const unsigned char *p = v[i].iov_base;
			size_t left = v[i].iov_len;

			while (left > 0 && !tx->data.done &&
			    tx->data.error != SMTP_DATA_BARE_NL) {
				chunk = left < SMTP_SCRATCH ? left : SMTP_SCRATCH;
				used = smtp_data_feed(&tx->data, p, chunk,
				    s->server->scratch, &outlen);
				if (outlen > 0)
					checks_data(tx->checks,
					    s->server->scratch, outlen);
				p += used;
				left -= used;
				consumed += used;
			}
		}
		evbuffer_drain(in, consumed);
	}
	if (tx->data.done || tx->data.error == SMTP_DATA_BARE_NL) {
		data_end(s);
		return (1);
	}
	return (0);
}

/*
 * session_process - handle everything complete in the input, in order
 */
static void
session_process(struct smtp_session *s)
{
	struct evbuffer *in;
	struct evbuffer_ptr eol;
	char line[SMTP_CMDLINE_MAX];
	size_t eol_len, len;

	if (s->bev == NULL)
		return;
	in = bufferevent_get_input(s->bev);
	for (;;) {
		switch (s->state) {
		case S_DATA:
			if (evbuffer_get_length(in) == 0)
				return;
			if (session_data(s) == 0)
				return;
			continue;
		case S_COMMIT:
		case S_TLS_WAIT:
		case S_TLS_HANDSHAKE:
		case S_CLOSING:
			return;
		default:
			break;
		}
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			len = evbuffer_get_length(in);
			if (len > SMTP_CMDLINE_MAX) {
				/* No end in sight: drop it, answer once the
				 * line ends, so we stay in step. */
				evbuffer_drain(in, len);
				s->skip_line = 1;
			}
			return;
		}
		len = (size_t)eol.pos;
		if (s->skip_line || len > SMTP_CMDLINE_MAX - 2) {
			evbuffer_drain(in, len + eol_len);
			s->skip_line = 0;
			reply(s, "500 5.5.2 Line too long");
			count_reject(s, REJ_SYNTAX);
			if (session_error(s) == -1)
				return;
			continue;
		}
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, eol_len);
		session_command(s, line, len);
	}
}

/* ---- TLS ------------------------------------------------------------------ */

/* session_start_tls - the 220 is out: hand the socket to OpenSSL */
static void
session_start_tls(struct smtp_session *s)
{
	struct smtp_server *server = s->server;
	struct bufferevent *tlsbev;
	SSL *ssl;

	/* Whatever arrived before the handshake is the client's plain
	 * text, not TLS: drop it here too. */
	evbuffer_drain(bufferevent_get_input(s->bev),
	    evbuffer_get_length(bufferevent_get_input(s->bev)));
	if ((ssl = SSL_new(server->tls_ctx)) == NULL) {
		log_warnx("[%s]: SSL_new failed", s->addr);
		reply(s, "421 4.3.0 %s TLS unavailable", server->hostname);
		session_close(s);
		return;
	}
	SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	tlsbev = bufferevent_openssl_filter_new(server->relay->base, s->bev,
	    ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tlsbev == NULL) {
		SSL_free(ssl);
		log_warnx("[%s]: cannot start TLS", s->addr);
		reply(s, "421 4.3.0 %s TLS unavailable", server->hostname);
		session_close(s);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tlsbev, 1);
	s->bev = tlsbev;	/* owns the plain one now */
	if ((s->pend = evbuffer_new()) == NULL) {
		session_close(s);
		return;
	}
	bufferevent_setcb(tlsbev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	set_timeouts(s, server_cfg(server)->relay.timeout);
	bufferevent_enable(tlsbev, EV_READ | EV_WRITE);
	session_state(s, S_TLS_HANDSHAKE);
}

/* ---- libevent callbacks ---------------------------------------------------- */

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state == S_TLS_WAIT || s->state == S_CLOSING) {
		struct evbuffer *in = bufferevent_get_input(bev);

		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	session_process(s);
	session_flush(s);
}

/* A closing TLS session's last record has reached the socket, or not. */
static void
tls_drained_cb(struct bufferevent *under, void *arg)
{
	session_free(arg);
}

static void
tls_drained_event_cb(struct bufferevent *under, short what, void *arg)
{
	session_free(arg);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;
	struct bufferevent *under;
	struct timeval tv = { 30, 0 };

	if (s->state == S_TLS_WAIT) {
		session_start_tls(s);
		return;
	}
	if (s->state != S_CLOSING)
		return;
	/*
	 * Under TLS "flushed" means handed to the plain bufferevent below,
	 * not written: freeing now would drop the last reply (221, 421...).
	 * We are closing, so take over that bufferevent's callbacks and
	 * free the session once its output is on the socket.
	 */
	under = bufferevent_get_underlying(bev);
	if (under != NULL &&
	    evbuffer_get_length(bufferevent_get_output(under)) > 0) {
		bufferevent_setcb(under, NULL, tls_drained_cb,
		    tls_drained_event_cb, s);
		bufferevent_set_timeouts(under, NULL, &tv);
		bufferevent_enable(under, EV_WRITE);
		return;
	}
	session_free(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_server *server = s->server;
	char desc[TLS_DESCRIBE_MAX];

	if (what & BEV_EVENT_CONNECTED) {
		/* TLS handshake done: start over (RFC 3207 §4.2). */
		s->tls = 1;
		s->esmtp = 0;
		free(s->helo);
		s->helo = NULL;
		tx_free(&s->tx);
		session_state(s, S_INIT);
		log_info("TLS from [%s]: %s", s->addr,
		    tls_describe(bufferevent_openssl_get_ssl(bev), desc,
		    sizeof(desc)));
		session_process(s);
		session_flush(s);
		return;
	}
	if (s->state == S_COMMIT) {
		/* The spool still has our message and this session as the
		 * callback's argument: keep the session until it answers. */
		if (what & BEV_EVENT_TIMEOUT)
			log_info("timeout waiting for the spool, [%s]", s->addr);
		s->dead = 1;
		bufferevent_free(s->bev);
		s->bev = NULL;
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == S_CLOSING) {
			session_free(s);
			return;
		}
		log_info("timeout after %s from %s[%s]", state_names[s->state],
		    s->helo ? s->helo : "unknown", s->addr);
		if (s->state == S_TLS_HANDSHAKE) {
			session_free(s);
			return;
		}
		reply(s, "421 4.4.2 %s Error: timeout exceeded",
		    server->hostname);
		tx_free(&s->tx);
		session_close(s);
		return;
	}
	/* EOF or error: the client is gone. */
	if (what & BEV_EVENT_ERROR && s->state == S_TLS_HANDSHAKE) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		char buf[256];

		ERR_error_string_n(e, buf, sizeof(buf));
		log_info("TLS handshake failed with [%s]: %s", s->addr,
		    e ? buf : "connection closed");
	} else if (s->state == S_DATA)
		log_info("%s: lost connection after DATA from %s[%s]",
		    s->tx && s->tx->msg ? spool_msg_id(s->tx->msg) : "?",
		    s->helo ? s->helo : "unknown", s->addr);
	session_free(s);
}

/* ---- sessions -------------------------------------------------------------- */

static void
server_maybe_done(struct smtp_server *server)
{
	if (server->shutting_down && server->nsessions == 0 &&
	    server->done_ev != NULL)
		event_active(server->done_ev, EV_TIMEOUT, 0);
}

static void
session_free(struct smtp_session *s)
{
	struct smtp_server *server = s->server;

	log_info("disconnect from %s[%s]", s->helo ? s->helo : "unknown",
	    s->addr);
	TAILQ_REMOVE(&server->sessions, s, entry);
	server->nsessions--;
	tx_free(&s->tx);
	if (s->bev)
		bufferevent_free(s->bev);
	if (s->pend)
		evbuffer_free(s->pend);
	free(s->helo);
	free(s);
	server_maybe_done(server);
}

/* refuse_now - answer a connection we will not serve, without a session */
static void
refuse_now(evutil_socket_t fd, const char *text)
{
	(void)send(fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
	evutil_closesocket(fd);
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct smtp_server *server = arg;
	struct config *cfg = server_cfg(server);
	struct smtp_session *s, *o;
	char addr[SMTP_ADDRSTRLEN] = "?", text[512];
	size_t same = 0;
	int one = 1;

	server->relay->stats.connections++;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, addr,
		    sizeof(addr));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr,
		    addr, sizeof(addr));
	if (server->nsessions >= (size_t)cfg->relay.max_connections) {
		log_warnx("refused [%s]: too many connections (%zu)", addr,
		    server->nsessions);
		snprintf(text, sizeof(text), "421 4.7.0 %s Error: too many "
		    "connections\r\n", server->hostname);
		server->relay->stats.rejected[REJ_CONN_LIMIT]++;
		refuse_now(fd, text);
		return;
	}
	TAILQ_FOREACH(o, &server->sessions, entry)
		if (strcmp(o->addr, addr) == 0)
			same++;
	if (same >= (size_t)cfg->relay.max_connections_per_ip) {
		log_warnx("refused [%s]: too many connections from this "
		    "address (%zu)", addr, same);
		snprintf(text, sizeof(text), "421 4.7.0 %s Error: too many "
		    "connections from [%s]\r\n", server->hostname, addr);
		server->relay->stats.rejected[REJ_CONN_LIMIT]++;
		refuse_now(fd, text);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		refuse_now(fd, "421 4.3.0 Local error\r\n");
		return;
	}
	s->server = server;
	memcpy(s->addr, addr, sizeof(s->addr));
	if ((size_t)salen <= sizeof(s->sa))
		memcpy(&s->sa, sa, (size_t)salen);
	s->bev = bufferevent_socket_new(server->relay->base, fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		free(s);
		refuse_now(fd, "421 4.3.0 Local error\r\n");
		return;
	}
	TAILQ_INSERT_TAIL(&server->sessions, s, entry);
	server->nsessions++;
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	set_timeouts(s, cfg->relay.timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	session_state(s, S_INIT);
	log_info("connect from [%s]", addr);
	reply(s, "220 %s ESMTP mailferry", server->hostname);
}

static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends: keep listening; libevent retries. */
	log_warnx("accept: %s", evutil_socket_error_to_string(e));
}

/* ---- the server ------------------------------------------------------------ */

/* listen_one - bind every address of one [relay] listen entry */
static int
listen_one(struct smtp_server *server, const struct hostport *hp, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	struct evconnlistener **nl;
	char port[16];
	int fd, rc, one = 1, *nf;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", hp->port);
	if ((rc = getaddrinfo(hp->host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "listen %s:%d: %s", hp->host, hp->port,
		    gai_strerror(rc));
		return (-1);
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			goto syserr;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			    sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
			close(fd);
			goto syserr;
		}
		nl = reallocarray(server->listeners, server->nlisteners + 1,
		    sizeof(*nl));
		if (nl != NULL)
			server->listeners = nl;
		nf = reallocarray(server->lfds, server->nlisteners + 1,
		    sizeof(*nf));
		if (nf != NULL)
			server->lfds = nf;
		if (nl == NULL || nf == NULL) {
			close(fd);
			errno = ENOMEM;
			goto syserr;
		}
		server->listeners[server->nlisteners] = NULL;
		server->lfds[server->nlisteners++] = fd;
	}
	freeaddrinfo(res);
	return (0);
syserr:
	snprintf(err, errlen, "listen %s%s%s:%d: %s", hp->is_ipv6 ? "[" : "",
	    hp->host, hp->is_ipv6 ? "]" : "", hp->port, strerror(errno));
	freeaddrinfo(res);
	return (-1);
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *server = arg;
	void (*done)(void *) = server->done;

	server->done = NULL;
	if (server->grace_ev)
		event_del(server->grace_ev);
	if (done != NULL)
		done(server->done_arg);
}

/*
 * smtp_server_new - bind every listen address (as root, before dropping
 * privileges), load the TLS key pair and the recipient list
 */
int
smtp_server_new(struct smtp_server **server_r, struct relay *relay,
    char *err, size_t errlen)
{
	struct config *cfg = relay->cfg;
	struct smtp_server *server;
	size_t i;

	*server_r = NULL;
	if ((server = calloc(1, sizeof(*server))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	server->relay = relay;
	TAILQ_INIT(&server->sessions);
	if (cfg->relay.hostname && cfg->relay.hostname[0] != '\0')
		str_copy(server->hostname, cfg->relay.hostname,
		    sizeof(server->hostname));
	else if (gethostname(server->hostname, sizeof(server->hostname) - 1) ==
	    -1 || server->hostname[0] == '\0')
		str_copy(server->hostname, "localhost", sizeof(server->hostname));
	if (cfg->relay.tls_cert && cfg->relay.tls_cert[0] != '\0') {
		server->tls_ctx = tls_server_ctx_new(cfg->relay.tls_cert,
		    cfg->relay.tls_key, err, errlen);
		if (server->tls_ctx == NULL)
			goto fail;
	}
	if (cfg->relay.recipients && cfg->relay.recipients[0] != '\0' &&
	    smtp_server_reload(server, err, errlen) == -1)
		goto fail;
	for (i = 0; i < cfg->relay.listen.count; i++)
		if (listen_one(server, &cfg->relay.listen.items[i], err,
		    errlen) == -1)
			goto fail;
	server->done_ev = event_new(relay->base, -1, 0, done_cb, server);
	if (server->done_ev == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	*server_r = server;
	return (0);
fail:
	smtp_server_free(&server);
	return (-1);
}

/* smtp_server_start - accept connections */
int
smtp_server_start(struct smtp_server *server, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < server->nlisteners; i++) {
		if (server->listeners[i] != NULL)
			continue;
		server->listeners[i] = evconnlistener_new(server->relay->base,
		    accept_cb, server, LEV_OPT_CLOSE_ON_FREE, 511,
		    server->lfds[i]);
		if (server->listeners[i] == NULL) {
			snprintf(err, errlen, "cannot listen: %s",
			    strerror(errno));
			return (-1);
		}
		server->lfds[i] = -1;	/* the listener owns it */
		evconnlistener_set_error_cb(server->listeners[i],
		    accept_error_cb);
	}
	log_info("listening on %zu socket(s) as %s%s", server->nlisteners,
	    server->hostname, server->tls_ctx ? ", STARTTLS offered" : "");
	return (0);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *server = arg;
	struct smtp_session *s, *next;

	/* DATA took too long: those clients will send again. */
	TAILQ_FOREACH_SAFE(s, &server->sessions, entry, next) {
		if (s->state == S_COMMIT || s->state == S_CLOSING)
			continue;
		reply(s, "421 4.3.2 %s Service shutting down", server->hostname);
		tx_free(&s->tx);
		session_close(s);
	}
}

/*
 * smtp_server_shutdown - stop accepting; idle sessions get 421 now,
 * sessions in DATA finish their message first; done(arg) runs on the
 * loop once no session is left
 */
void
smtp_server_shutdown(struct smtp_server *server, void (*done)(void *),
    void *arg)
{
	struct smtp_session *s, *next;
	struct timeval grace = { SMTP_SHUTDOWN_GRACE, 0 };
	size_t i;

	server->shutting_down = 1;
	server->done = done;
	server->done_arg = arg;
	for (i = 0; i < server->nlisteners; i++)
		if (server->listeners[i] != NULL)
			evconnlistener_disable(server->listeners[i]);
	TAILQ_FOREACH_SAFE(s, &server->sessions, entry, next) {
		switch (s->state) {
		case S_DATA:
		case S_COMMIT:
			s->quit_after_tx = 1;
			break;
		case S_CLOSING:
			break;
		case S_TLS_WAIT:
		case S_TLS_HANDSHAKE:
			session_free(s);
			break;
		default:
			reply(s, "421 4.3.2 %s Service shutting down",
			    server->hostname);
			tx_free(&s->tx);
			session_close(s);
			break;
		}
	}
	if (server->nsessions > 0) {
		log_info("shutdown: waiting for %zu session(s)",
		    server->nsessions);
		if (server->grace_ev == NULL)
			server->grace_ev = evtimer_new(server->relay->base,
			    grace_cb, server);
		if (server->grace_ev != NULL)
			evtimer_add(server->grace_ev, &grace);
	}
	server_maybe_done(server);
}

/* smtp_server_free - close everything at once (no replies) */
void
smtp_server_free(struct smtp_server **serverp)
{
	struct smtp_server *server = *serverp;
	struct smtp_session *s;
	size_t i;

	if (server == NULL)
		return;
	*serverp = NULL;
	if (server->done_ev) {	/* no done callback from here on */
		event_free(server->done_ev);
		server->done_ev = NULL;
	}
	while ((s = TAILQ_FIRST(&server->sessions)) != NULL) {
		/* A session waiting for the spool keeps its pointer in the
		 * pending commit; spool_close() drops those callbacks. */
		TAILQ_REMOVE(&server->sessions, s, entry);
		tx_free(&s->tx);
		if (s->bev)
			bufferevent_free(s->bev);
		if (s->pend)
			evbuffer_free(s->pend);
		free(s->helo);
		free(s);
	}
	for (i = 0; i < server->nlisteners; i++) {
		if (server->listeners[i] != NULL)
			evconnlistener_free(server->listeners[i]);
		else
			close(server->lfds[i]);
	}
	free(server->listeners);
	free(server->lfds);
	if (server->grace_ev)
		event_free(server->grace_ev);
	strlist_clear(&server->rcptlist);
	tls_ctx_free(&server->tls_ctx);
	free(server);
}

size_t
smtp_server_sessions(const struct smtp_server *server)
{
	return (server->nsessions);
}
