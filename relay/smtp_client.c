/*
 * smtp_client.c - outbound SMTP: connect, greet, EHLO, STARTTLS, send
 * messages, reuse the connection (see smtp_client.h).
 *
 * A connection walks its endpoints in order; for each it resolves the
 * host (common/dns.h, never blocking the loop; IP literals need no DNS),
 * tries every address, and keeps the first session that greets with
 * 2xx, answers EHLO (or HELO) and, per the TLS policy, completes
 * STARTTLS:
 *   require        STARTTLS must be offered; the certificate chain and the
 *                  host name (the configured name, not the address) are
 *                  verified; any failure moves on to the next endpoint.
 *   opportunistic  STARTTLS when offered, no verification; a failed
 *                  handshake is retried once on the same address in
 *                  plain text (what every MTA does: TLS that cannot work
 *                  must not stop the mail).
 *   none           never.
 * A transaction is MAIL, RCPT..., DATA written in one go when the server
 * offers PIPELINING (RFC 2920), else one command per round trip; a
 * reused connection starts with RSET.  The body is read from the spool
 * file in 32 KiB chunks only while less than BODY_HIWAT bytes wait in
 * the output buffer, so memory does not grow with message size.  Header
 * lines the caller adds (smtp_tx.headers: the relay's
 * Authentication-Results) go out first, as part of the same stream, so
 * dot-stuffing and SIZE= cover them too.
 *
 * SECURITY: everything the server sends is distrusted: reply lines
 * longer than SMTP_LINE_MAX, replies of more than SMTP_REPLY_LINES_MAX
 * lines, codes outside 200..559, continuation lines whose code changes
 * and replies nobody asked for all end the session.  Reply text is
 * stored escaped (str_printable), so it can go to logs and DSNs as is.
 * Bytes the server sends after its STARTTLS 220 and before the
 * handshake end the session (the client-side twin of CVE-2011-0411).
 * Timeouts follow RFC 5321 §4.5.3.2.
 *
 * States: enum cstate below; every change goes through client_state(),
 * which logs "old -> new" at debug level.
 *
 * Lifetime: callbacks into the owner may close or abort the connection.
 * Every entry point from libevent holds a reference (client_ref) and the
 * memory is released only when the last reference goes; after each
 * call-out the code checks c->dead before touching anything else.
 */

#include <sys/queue.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "dns.h"
#include "log.h"
#include "smtp_client.h"
#include "tls.h"
#include "util.h"

/* RFC 5321 §4.5.3.2 timeouts, seconds. */
#define TMO_GREETING	300
#define TMO_EHLO	300
#define TMO_MAIL	300
#define TMO_RCPT	300
#define TMO_DATA_INIT	120
#define TMO_DATA_BLOCK	180
#define TMO_DATA_TERM	600
#define TMO_QUIT	5	/* ours: how long a background QUIT may take */

#define BODY_CHUNK	32768
#define BODY_HIWAT	(256 * 1024)
#define BODY_LOWAT	(64 * 1024)

enum cstate {
	CS_START,	/* smtp_client_connect() returned; timer starts us */
	CS_RESOLVE,	/* waiting for the addresses of ep[iep] */
	CS_CONNECT,	/* TCP connect in progress */
	CS_GREETING,
	CS_EHLO,
	CS_HELO,
	CS_STARTTLS,
	CS_TLS,		/* handshake in progress */
	CS_EHLO_TLS,	/* EHLO again, inside TLS */
	CS_IDLE,
	CS_TX,		/* replies to MAIL/RCPT/DATA (and RSET) expected */
	CS_BODY,	/* streaming the message */
	CS_DOT,		/* final reply expected */
	CS_TXFAIL,	/* refused before sending anything; timer completes */
	CS_QUIT,	/* detached: QUIT sent, waiting to free */
};

static const char *const state_names[] = {
	"START", "RESOLVE", "CONNECT", "GREETING", "EHLO", "HELO",
	"STARTTLS", "TLS", "EHLO_TLS", "IDLE", "TX", "BODY", "DOT", "TXFAIL",
	"QUIT",
};
_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == CS_QUIT + 1,
    "state_names[] and enum cstate differ");

/* What each written command's reply answers. */
enum cmd_kind { CMD_RSET, CMD_MAIL, CMD_RCPT, CMD_DATA };

struct smtp_client_ctx {
	struct event_base	*base;
	struct dns_resolver	*dns;
	char			*helo;
	SSL_CTX			*ssl_ctx;
	TAILQ_HEAD(, smtp_client) conns;
};

struct smtp_client {
	TAILQ_ENTRY(smtp_client) entry;
	struct smtp_client_ctx	*ctx;
	smtp_client_cb		*cb;
	void			*arg;
	int			 refs;
	int			 dead;
	enum cstate		 state;

	/* where */
	struct hostport		*ep;
	size_t			 nep, iep;
	enum cfg_tls_policy	 tls;
	int64_t			 connect_timeout, idle_timeout;
	struct sockaddr_storage	*addr;
	size_t			 naddr, iaddr;
	int			 plain_retry;	/* opportunistic TLS failed here */
	int			 dns_pending;
	uint64_t		 dns_id;
	char			 peer[HOSTPORT_HOSTMAX + 16];
	char			 why[1024];	/* connect failures so far */

	struct bufferevent	*bev;
	SSL			*ssl;		/* owned by bev once attached */
	struct event		*timer;		/* idle, quit, deferred tx end */
	unsigned		 ext;
	uint64_t		 size_max;
	char			 tlsdesc[TLS_DESCRIBE_MAX];
	struct timespec		 t_connect;
	int			 ntx;		/* transactions begun */

	/* the reply being read */
	int			 rcode;
	int			 rlines;
	size_t			 rlen;
	char			 rtext[SMTP_REPLY_TEXTMAX - 8];

	/* the transaction */
	struct smtp_tx		*tx;
	smtp_tx_cb		*txcb;
	void			*txarg;
	struct timespec		 t_tx;
	size_t			 ncmd;		/* commands in this transaction */
	size_t			 cmd_sent;	/* written so far */
	size_t			 cmd_done;	/* replies read so far */
	int			 has_rset;
	int			 pipelined;
	int			 mail_ok;
	size_t			 naccepted;
	uint8_t			 accepted[SMTP_TX_RCPT_MAX]; /* RCPT said 2xx */
	int			 discard;	/* 354 with no recipient: "." only */
	uint64_t		 body_pos;
	int			 body_bol;
	char			 body_last[2];
};

static void	client_readcb(struct bufferevent *bev, void *arg);
static void	client_writecb(struct bufferevent *bev, void *arg);
static void	client_eventcb(struct bufferevent *bev, short what, void *arg);
static void	client_next_address(struct smtp_client *c);
static uint64_t	tx_total(const struct smtp_tx *tx);
static void	client_endpoint_failed(struct smtp_client *c, const char *fmt,
		    ...) __attribute__((format(printf, 2, 3)));
static void	tx_fail_rest(struct smtp_client *c, int code,
		    const char *status, const char *fmt, ...)
		    __attribute__((format(printf, 4, 5)));

static double
elapsed_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return ((double)(now.tv_sec - t0->tv_sec) +
	    (double)(now.tv_nsec - t0->tv_nsec) / 1e9);
}

/*
 * client_state - every state change goes through here and is logged at
 * debug level, so a session's path shows in the log.
 */
static void
client_state(struct smtp_client *c, enum cstate st)
{
	if (c->state == st)
		return;
	log_debug("smtp-client: %p [%s]: %s -> %s", (void *)c,
	    c->peer[0] ? c->peer : "-", state_names[c->state],
	    state_names[st]);
	c->state = st;
}

/* ---- replies ----------------------------------------------------------- */

/*
 * smtp_reply_line - check one reply line: "ddd text", "ddd-text" or
 * "ddd".  The code must be 2xx..5xx with a second digit 0..5 (RFC 5321
 * §4.2).  Returns 1 for a last line, 0 for a continuation, -1 if bad.
 */
int
smtp_reply_line(const char *line, size_t len, int *code_r, const char **text_r)
{
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '5' || line[2] < '0' || line[2] > '9')
		return (-1);
	*code_r = (line[0] - '0') * 100 + (line[1] - '0') * 10 + line[2] - '0';
	if (len == 3) {
		*text_r = line + 3;
		return (1);
	}
	*text_r = line + 4;
	if (line[3] == ' ')
		return (1);
	if (line[3] == '-')
		return (0);
	return (-1);
}

/*
 * reply_status - the enhanced status code at the start of text when it
 * is well formed and of the reply's class ("5.1.1" for a 550), else the
 * class default "5.0.0".
 */
static void
reply_status(int code, const char *text, char *status, size_t len)
{
	const char *p = text;
	size_t n;
	int i;

	if (p[0] == (char)('0' + code / 100) && p[1] == '.') {
		p += 2;
		for (i = 0; i < 2; i++) {
			n = 0;
			while (p[n] >= '0' && p[n] <= '9' && n < 3)
				n++;
			if (n == 0 || (p[n] != '.' && i == 0))
				goto dflt;
			p += n;
			if (i == 0)
				p++;
		}
		if (*p == '\0' || *p == ' ') {
			n = (size_t)(p - text);
			if (n < len) {
				memcpy(status, text, n);
				status[n] = '\0';
				return;
			}
		}
	}
dflt:
	snprintf(status, len, "%d.0.0", code / 100);
}

/* reply_make - a struct smtp_reply from the reply just read */
static void
reply_make(const struct smtp_client *c, struct smtp_reply *r)
{
	const char *text;

	memset(r, 0, sizeof(*r));
	r->code = c->rcode;
	snprintf(r->text, sizeof(r->text), "%d%s%s", c->rcode,
	    c->rlen ? " " : "", c->rtext);
	text = c->rtext;
	reply_status(r->code, text, r->status, sizeof(r->status));
}

/* reply_synth - a reply of our own making */
static void
reply_synth(struct smtp_reply *r, int code, const char *status,
    const char *text)
{
	memset(r, 0, sizeof(*r));
	r->code = code;
	r->synthetic = 1;
	snprintf(r->status, sizeof(r->status), "%s", status);
	snprintf(r->text, sizeof(r->text), "%d %.15s %.480s", code, status,
	    text);
}

/* ---- reference counting and teardown ----------------------------------- */

static void
client_free(struct smtp_client *c)
{
	if (c->dns_pending && c->ctx->dns != NULL)
		dns_cancel(c->ctx->dns, c->dns_id);
	if (c->bev != NULL)
		bufferevent_free(c->bev);	/* frees the SSL too */
	else if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->timer != NULL)
		event_free(c->timer);
	TAILQ_REMOVE(&c->ctx->conns, c, entry);
	free(c->ep);
	free(c->addr);
	free(c);
}

static void
client_ref(struct smtp_client *c)
{
	c->refs++;
}

/* client_unref - drop a reference; frees a dead client at the last one */
static void
client_unref(struct smtp_client *c)
{
	if (--c->refs == 0 && c->dead)
		client_free(c);
}

/* client_kill - no more callbacks, no more I/O; memory goes at unref */
static void
client_kill(struct smtp_client *c)
{
	c->dead = 1;
	c->cb = NULL;
	c->txcb = NULL;
	if (c->bev != NULL) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	}
	if (c->timer != NULL)
		event_del(c->timer);
	if (c->dns_pending && c->ctx->dns != NULL) {
		dns_cancel(c->ctx->dns, c->dns_id);
		c->dns_pending = 0;
	}
}

/* client_notify - tell the owner; the client is dead after FAILED/CLOSED */
static void
client_notify(struct smtp_client *c, int event, const char *why)
{
	smtp_client_cb *cb = c->cb;
	void *arg = c->arg;

	if (event != SMTP_CLIENT_READY)
		client_kill(c);
	if (cb != NULL)
		cb(c, event, why, arg);
}

/* ---- I/O helpers --------------------------------------------------------- */

static void
set_timeouts(struct smtp_client *c, int rd, int wr)
{
	struct timeval r = { rd, 0 }, w = { wr, 0 };

	bufferevent_set_timeouts(c->bev, rd > 0 ? &r : NULL,
	    wr > 0 ? &w : NULL);
}

static int
send_line(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
send_line(struct smtp_client *c, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	if (rc < 0 || evbuffer_add(out, "\r\n", 2) == -1)
		return (-1);
	return (0);
}

/* drop_session - close the TCP/TLS session of the current address */
static void
drop_session(struct smtp_client *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->ssl = NULL;
	}
	c->rlines = 0;
	c->rlen = 0;
}

/* ---- connecting ---------------------------------------------------------- */

/*
 * client_endpoint_failed - note why this address failed and move on: to
 * the next address, the next endpoint, or SMTP_CLIENT_FAILED.
 */
static void
client_endpoint_failed(struct smtp_client *c, const char *fmt, ...)
{
	char buf[512];
	size_t len = strlen(c->why);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	snprintf(c->why + len, sizeof(c->why) - len, "%s%s", len ? "; " : "",
	    buf);
	drop_session(c);
	c->plain_retry = 0;
	c->iaddr++;
	client_next_address(c);
}

static void
dns_done(int status, const struct dns_result *res, void *arg)
{
	struct smtp_client *c = arg;
	size_t i;

	c->dns_pending = 0;
	if (c->dead)
		return;
	client_ref(c);
	if (status != DNS_OK || res->count == 0) {
		c->iep++;
		c->iaddr = c->naddr = 0;
		snprintf(c->why + strlen(c->why), sizeof(c->why) -
		    strlen(c->why), "%s%s: host not found (%s)",
		    c->why[0] ? "; " : "", c->ep[c->iep - 1].host,
		    status == DNS_OK ? "no address" : res->why);
		client_next_address(c);
		client_unref(c);
		return;
	}
	free(c->addr);
	if ((c->addr = calloc(res->count, sizeof(*c->addr))) == NULL) {
		c->naddr = 0;
	} else {
		for (i = 0; i < res->count; i++)
			c->addr[i] = res->addr[i];
		c->naddr = res->count;
	}
	c->iaddr = 0;
	client_next_address(c);
	client_unref(c);
}

/* literal_addr - an IP literal endpoint needs no DNS */
static int
literal_addr(const struct hostport *hp, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, hp->host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return (1);
	}
	if (inet_pton(AF_INET6, hp->host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return (1);
	}
	return (0);
}

/* connect_addr - start TCP to addr[iaddr] of ep[iep] */
static void
connect_addr(struct smtp_client *c)
{
	struct sockaddr_storage ss = c->addr[c->iaddr];
	const struct hostport *hp = &c->ep[c->iep];
	socklen_t sl;

	if (ss.ss_family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)hp->port);
		sl = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_port =
		    htons((uint16_t)hp->port);
		sl = sizeof(struct sockaddr_in6);
	}
	hostport_format(hp, c->peer, sizeof(c->peer));
	c->bev = bufferevent_socket_new(c->ctx->base, -1,
	    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		client_endpoint_failed(c, "connect to %s: out of memory",
		    c->peer);
		return;
	}
	bufferevent_setcb(c->bev, client_readcb, client_writecb,
	    client_eventcb, c);
	/* libevent times the connect with the write timeout */
	set_timeouts(c, 0, (int)c->connect_timeout);
	client_state(c, CS_CONNECT);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss,
	    (int)sl) == -1)
		client_endpoint_failed(c, "connect to %s: %s", c->peer,
		    strerror(errno));
}

/*
 * client_next_address - try addr[iaddr] of ep[iep], resolving ep[iep]
 * first when needed; past the last endpoint, report SMTP_CLIENT_FAILED.
 */
static void
client_next_address(struct smtp_client *c)
{
	char err[256];

	while (c->iep < c->nep) {
		const struct hostport *hp = &c->ep[c->iep];

		if (c->iaddr < c->naddr) {
			connect_addr(c);
			return;
		}
		if (c->naddr > 0) {		/* all addresses tried */
			c->iep++;
			c->naddr = c->iaddr = 0;
			continue;
		}
		free(c->addr);
		if ((c->addr = calloc(1, sizeof(*c->addr))) == NULL)
			break;
		if (literal_addr(hp, &c->addr[0])) {
			c->naddr = 1;
			c->iaddr = 0;
			continue;
		}
		if (c->ctx->dns == NULL) {
			snprintf(c->why + strlen(c->why), sizeof(c->why) -
			    strlen(c->why), "%s%s: no resolver for host names",
			    c->why[0] ? "; " : "", hp->host);
			c->iep++;
			continue;
		}
		client_state(c, CS_RESOLVE);
		if (dns_lookup_addr(c->ctx->dns, hp->host, dns_done, c,
		    &c->dns_id, err, sizeof(err)) == -1) {
			snprintf(c->why + strlen(c->why), sizeof(c->why) -
			    strlen(c->why), "%s%s: %s", c->why[0] ? "; " : "",
			    hp->host, err);
			c->iep++;
			continue;
		}
		c->dns_pending = 1;
		return;
	}
	client_notify(c, SMTP_CLIENT_FAILED, c->why[0] ? c->why :
	    "no endpoint to connect to");
}

/* ---- session set-up -------------------------------------------------------- */

static void
send_ehlo(struct smtp_client *c, enum cstate st)
{
	c->ext = 0;
	c->size_max = 0;
	client_state(c, st);
	set_timeouts(c, TMO_EHLO, TMO_EHLO);
	if (send_line(c, "%s %s", st == CS_HELO ? "HELO" : "EHLO",
	    c->ctx->helo) == -1)
		client_endpoint_failed(c, "%s: out of memory", c->peer);
}

/* ehlo_line - note one extension keyword of the EHLO reply */
static void
ehlo_line(struct smtp_client *c, const char *text)
{
	static const struct {
		const char *kw;
		unsigned flag;
	} kws[] = {
		{ "STARTTLS", SMTP_EXT_STARTTLS },
		{ "PIPELINING", SMTP_EXT_PIPELINING },
		{ "SIZE", SMTP_EXT_SIZE },
		{ "8BITMIME", SMTP_EXT_8BITMIME },
		{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
		{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCED },
	};
	size_t i, n = strcspn(text, " ");

	for (i = 0; i < sizeof(kws) / sizeof(kws[0]); i++) {
		if (strlen(kws[i].kw) != n ||
		    strncasecmp(text, kws[i].kw, n) != 0)
			continue;
		c->ext |= kws[i].flag;
		if (kws[i].flag == SMTP_EXT_SIZE && text[n] == ' ') {
			char *end;
			unsigned long long v;

			errno = 0;
			v = strtoull(text + n + 1, &end, 10);
			if (errno == 0 && end != text + n + 1 &&
			    (*end == '\0' || *end == ' '))
				c->size_max = v;
		}
	}
}

static void
start_tls(struct smtp_client *c)
{
	char err[256];
	struct bufferevent *tbev;

	/* Anything the server sent after its 220 would be read as if it
	 * came through TLS: refuse (the client side of CVE-2011-0411). */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		client_endpoint_failed(c, "%s: data after STARTTLS reply",
		    c->peer);
		return;
	}
	c->ssl = tls_client_ssl_new(c->ctx->ssl_ctx, c->ep[c->iep].host,
	    c->tls == CFG_TLS_REQUIRE, err, sizeof(err));
	if (c->ssl == NULL) {
		client_endpoint_failed(c, "%s: TLS: %s", c->peer, err);
		return;
	}
	/* The filter stops encrypting while the socket's buffer is above
	 * this high-water mark; without it a slow server would let the
	 * whole message pile up there, encrypted. */
	bufferevent_setwatermark(c->bev, EV_WRITE, BODY_LOWAT, BODY_HIWAT);
	tbev = bufferevent_openssl_filter_new(c->ctx->base, c->bev, c->ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tbev == NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		client_endpoint_failed(c, "%s: TLS: out of memory", c->peer);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
	c->bev = tbev;
	bufferevent_setcb(c->bev, client_readcb, client_writecb,
	    client_eventcb, c);
	set_timeouts(c, TMO_EHLO, TMO_EHLO);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	client_state(c, CS_TLS);
}

/* tls_failed - the handshake failed: why, and what to do next */
static void
tls_failed(struct smtp_client *c)
{
	char ebuf[160];
	unsigned long e;
	const char *verr = NULL;

	if (c->ssl != NULL && SSL_get_verify_result(c->ssl) != X509_V_OK)
		verr = tls_verify_error(c->ssl);
	e = bufferevent_get_openssl_error(c->bev);
	while (bufferevent_get_openssl_error(c->bev) != 0)
		;
	if (e != 0)
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
	else
		snprintf(ebuf, sizeof(ebuf), "handshake failed");
	ERR_clear_error();
	if (c->tls == CFG_TLS_OPPORTUNISTIC && !c->plain_retry) {
		/* Same address again, without TLS this time. */
		size_t len = strlen(c->why);

		snprintf(c->why + len, sizeof(c->why) - len, "%s%s: TLS "
		    "handshake failed (%s), retrying without TLS",
		    len ? "; " : "", c->peer, verr != NULL ? verr : ebuf);
		drop_session(c);
		c->plain_retry = 1;
		connect_addr(c);
		return;
	}
	client_endpoint_failed(c, "%s: TLS handshake failed: %s", c->peer,
	    verr != NULL ? verr : ebuf);
}

/* setup_reply - the replies before the connection is READY */
static void
setup_reply(struct smtp_client *c)
{
	char rtext[SMTP_REPLY_TEXTMAX + 8];

	snprintf(rtext, sizeof(rtext), "%d %s", c->rcode, c->rtext);
	switch (c->state) {
	case CS_GREETING:
		if (c->rcode / 100 != 2) {
			client_endpoint_failed(c, "%s greeted: %s", c->peer,
			    rtext);
			return;
		}
		send_ehlo(c, CS_EHLO);
		return;
	case CS_EHLO:
		if (c->rcode / 100 == 5 && c->rcode != 421) {
			send_ehlo(c, CS_HELO);
			return;
		}
		/* FALLTHROUGH */
	case CS_HELO:
	case CS_EHLO_TLS:
		if (c->rcode / 100 != 2) {
			client_endpoint_failed(c, "%s refused %s: %s", c->peer,
			    c->state == CS_HELO ? "HELO" : "EHLO", rtext);
			return;
		}
		if (c->state == CS_EHLO && c->tls != CFG_TLS_NONE &&
		    !c->plain_retry) {
			if (c->ext & SMTP_EXT_STARTTLS) {
				client_state(c, CS_STARTTLS);
				set_timeouts(c, TMO_EHLO, TMO_EHLO);
				if (send_line(c, "STARTTLS") == -1)
					client_endpoint_failed(c, "%s: out of "
					    "memory", c->peer);
				return;
			}
			if (c->tls == CFG_TLS_REQUIRE) {
				client_endpoint_failed(c, "%s: TLS is required "
				    "but STARTTLS is not offered", c->peer);
				return;
			}
		}
		if (c->state == CS_HELO && c->tls == CFG_TLS_REQUIRE) {
			client_endpoint_failed(c, "%s: TLS is required but "
			    "the server does not speak ESMTP", c->peer);
			return;
		}
		if (c->ssl != NULL)
			tls_describe(c->ssl, c->tlsdesc, sizeof(c->tlsdesc));
		client_state(c, CS_IDLE);
		set_timeouts(c, 0, 0);
		if (c->idle_timeout > 0) {
			struct timeval tv = { c->idle_timeout, 0 };
			event_add(c->timer, &tv);
		}
		client_notify(c, SMTP_CLIENT_READY, NULL);
		return;
	case CS_STARTTLS:
		if (c->rcode != 220) {
			if (c->tls == CFG_TLS_REQUIRE) {
				client_endpoint_failed(c, "%s refused STARTTLS: "
				    "%s", c->peer, rtext);
				return;
			}
			/* opportunistic: carry on in plain text */
			c->plain_retry = 1;
			client_state(c, CS_EHLO);
			c->rcode = 250;
			setup_reply(c);
			return;
		}
		start_tls(c);
		return;
	default:
		client_endpoint_failed(c, "%s: unexpected reply: %s", c->peer,
		    rtext);
		return;
	}
}

/* ---- transactions ---------------------------------------------------------- */

static int
needs_utf8(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return (1);
	return (0);
}

/* bad_address - control characters would let an address inject commands
 * (a quoted local part may hold blanks and angle brackets: allowed) */
static int
bad_address(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return (1);
	return (0);
}

static enum cmd_kind
cmd_kind(const struct smtp_client *c, size_t k, size_t *rcpt_r)
{
	if (c->has_rset) {
		if (k == 0)
			return (CMD_RSET);
		k--;
	}
	if (k == 0)
		return (CMD_MAIL);
	if (k <= c->tx->nrcpt) {
		*rcpt_r = k - 1;
		return (CMD_RCPT);
	}
	return (CMD_DATA);
}

/* write_cmd - write command k of the transaction */
static int
write_cmd(struct smtp_client *c, size_t k)
{
	struct smtp_tx *tx = c->tx;
	char size[32] = "";
	size_t i = 0;
	int utf8 = 0;

	switch (cmd_kind(c, k, &i)) {
	case CMD_RSET:
		return (send_line(c, "RSET"));
	case CMD_MAIL:
		utf8 = needs_utf8(tx->sender);
		for (i = 0; i < tx->nrcpt; i++)
			utf8 |= needs_utf8(tx->rcpt[i]);
		if (c->ext & SMTP_EXT_SIZE)
			snprintf(size, sizeof(size), " SIZE=%llu",
			    (unsigned long long)tx_total(tx));
		/* BODY=8BITMIME whenever offered: it says the body MAY hold
		 * 8-bit bytes, true of any message we relay, and saves
		 * reading the message twice to find out. */
		return (send_line(c, "MAIL FROM:<%s>%s%s%s", tx->sender, size,
		    (c->ext & SMTP_EXT_8BITMIME) ? " BODY=8BITMIME" : "",
		    utf8 ? " SMTPUTF8" : ""));
	case CMD_RCPT:
		return (send_line(c, "RCPT TO:<%s>", tx->rcpt[i]));
	case CMD_DATA:
		return (send_line(c, "DATA"));
	}
	return (-1);
}

static int
cmd_timeout(const struct smtp_client *c, size_t k)
{
	size_t i;

	switch (cmd_kind(c, k, &i)) {
	case CMD_DATA:
		return (TMO_DATA_INIT);
	case CMD_RCPT:
		return (TMO_RCPT);
	default:
		return (TMO_MAIL);
	}
}

/* tx_finish - hand the results over; the connection stays or goes */
static void
tx_finish(struct smtp_client *c)
{
	struct smtp_tx *tx = c->tx;
	smtp_tx_cb *cb = c->txcb;
	void *arg = c->txarg;

	tx->elapsed = elapsed_since(c->ntx == 1 ? &c->t_connect : &c->t_tx);
	c->tx = NULL;
	c->txcb = NULL;
	if (tx->closed) {
		client_kill(c);
	} else {
		client_state(c, CS_IDLE);
		set_timeouts(c, 0, 0);
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		if (c->idle_timeout > 0) {
			struct timeval tv = { c->idle_timeout, 0 };
			event_add(c->timer, &tv);
		}
	}
	if (cb != NULL)
		cb(c, tx, arg);
}

/*
 * tx_fail_rest - every recipient without a result yet gets this one
 * (synthetic); used when the connection breaks or we refuse to go on.
 */
static void
tx_fail_rest(struct smtp_client *c, int code, const char *status,
    const char *fmt, ...)
{
	struct smtp_tx *tx = c->tx;
	struct smtp_reply r;
	char text[SMTP_REPLY_TEXTMAX];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	reply_synth(&r, code, status, text);
	for (i = 0; i < tx->nrcpt; i++)
		if (tx->result[i].code == 0)
			tx->result[i] = r;
}

static const char *
state_doing(const struct smtp_client *c)
{
	size_t i;

	switch (c->state) {
	case CS_TX:
		switch (cmd_kind(c, c->cmd_done, &i)) {
		case CMD_RSET:
			return ("RSET");
		case CMD_MAIL:
			return ("MAIL FROM");
		case CMD_RCPT:
			return ("RCPT TO");
		case CMD_DATA:
			return ("DATA");
		}
		break;
	case CS_BODY:
		return ("message body");
	case CS_DOT:
		return ("end of data");
	default:
		break;
	}
	return ("commands");
}

/* tx_broken - the connection died during a transaction */
static void
tx_broken(struct smtp_client *c, const char *what)
{
	tx_fail_rest(c, 451, "4.4.2", "lost connection with %s while sending "
	    "%s: %s", c->peer, state_doing(c), what);
	c->tx->closed = 1;
	tx_finish(c);
}

/* tx_total - bytes of the message as sent: our header lines + the file */
static uint64_t
tx_total(const struct smtp_tx *tx)
{
	return ((uint64_t)(tx->headers != NULL ? tx->hlen : 0) + tx->size);
}

/*
 * body_read - up to want bytes of the message at position pos of the
 * stream "headers, then file" into buf; the number read, 0 at a short
 * file, -1 on a read error (errno set).
 */
static ssize_t
body_read(const struct smtp_tx *tx, uint64_t pos, char *buf, size_t want)
{
	size_t hlen = tx->headers != NULL ? tx->hlen : 0;
	ssize_t n;

	if (pos < hlen) {
		size_t k = hlen - (size_t)pos;

		if (k > want)
			k = want;
		memcpy(buf, tx->headers + pos, k);
		return ((ssize_t)k);
	}
	do
		n = pread(tx->fd, buf, want, (off_t)(tx->offset + (pos - hlen)));
	while (n == -1 && errno == EINTR);
	return (n);
}

/* body_fill - stream more of the message, dot-stuffed, up to BODY_HIWAT */
static void
body_fill(struct smtp_client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct smtp_tx *tx = c->tx;
	uint64_t total = tx_total(tx);
	char in[BODY_CHUNK], stuffed[2 * BODY_CHUNK];
	ssize_t n;
	size_t i, o;

	while (evbuffer_get_length(out) < BODY_HIWAT && c->body_pos < total) {
		uint64_t left = total - c->body_pos;
		size_t want = left < sizeof(in) ? (size_t)left : sizeof(in);

		n = body_read(tx, c->body_pos, in, want);
		if (n <= 0) {
			/* Never send the final dot of a truncated message:
			 * drop the connection, the message stays queued. */
			tx_fail_rest(c, 451, "4.3.0", "cannot read the spooled "
			    "message: %s", n == 0 ? "file too short" :
			    strerror(errno));
			tx->closed = 1;
			tx_finish(c);
			return;
		}
		for (i = 0, o = 0; i < (size_t)n; i++) {
			if (c->body_bol && in[i] == '.')
				stuffed[o++] = '.';
			stuffed[o++] = in[i];
			c->body_bol = (in[i] == '\n');
		}
		if (n >= 2) {
			c->body_last[0] = in[n - 2];
			c->body_last[1] = in[n - 1];
		} else {
			c->body_last[0] = c->body_last[1];
			c->body_last[1] = in[0];
		}
		c->body_pos += (uint64_t)n;
		if (evbuffer_add(out, stuffed, o) == -1) {
			tx_fail_rest(c, 451, "4.3.0", "out of memory");
			tx->closed = 1;
			tx_finish(c);
			return;
		}
	}
	if (c->body_pos < total)
		return;
	/* The message should end with CRLF; if not, the CRLF before the
	 * dot is ours. */
	if (total > 0 && (c->body_last[0] != '\r' || c->body_last[1] != '\n'))
		evbuffer_add(out, "\r\n", 2);
	if (evbuffer_add(out, ".\r\n", 3) == -1) {
		tx_fail_rest(c, 451, "4.3.0", "out of memory");
		tx->closed = 1;
		tx_finish(c);
		return;
	}
	client_state(c, CS_DOT);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	set_timeouts(c, TMO_DATA_TERM, TMO_DATA_BLOCK);
}

static void
body_start(struct smtp_client *c)
{
	client_state(c, CS_BODY);
	c->body_pos = 0;
	c->body_bol = 1;
	c->body_last[0] = c->body_last[1] = '\0';
	set_timeouts(c, 0, TMO_DATA_BLOCK);
	bufferevent_setwatermark(c->bev, EV_WRITE, BODY_LOWAT, 0);
	if (c->discard) {
		/* RFC 2920 §3.1: 354 although no recipient was accepted:
		 * send an empty message, the results are already known. */
		evbuffer_add(bufferevent_get_output(c->bev), ".\r\n", 3);
		client_state(c, CS_DOT);
		set_timeouts(c, TMO_DATA_TERM, TMO_DATA_BLOCK);
		return;
	}
	body_fill(c);
}

/* tx_reply - one reply to the transaction's commands */
static void
tx_reply(struct smtp_client *c)
{
	struct smtp_tx *tx = c->tx;
	struct smtp_reply r;
	size_t i = 0, k = c->cmd_done++;

	reply_make(c, &r);
	if (r.code == 421)
		tx->unavailable = 1;
	switch (cmd_kind(c, k, &i)) {
	case CMD_RSET:
		if (r.code / 100 != 2) {
			tx_fail_rest(c, r.code / 100 == 5 ? 451 : r.code,
			    "4.4.2", "%s refused RSET: %s", c->peer, r.text);
			tx->closed = 1;
			tx_finish(c);
			return;
		}
		break;
	case CMD_MAIL:
		c->mail_ok = (r.code / 100 == 2);
		if (!c->mail_ok) {
			for (i = 0; i < tx->nrcpt; i++)
				tx->result[i] = r;
			if (!c->pipelined || r.code == 421) {
				tx->closed = (r.code == 421);
				tx_finish(c);
				return;
			}
		}
		break;
	case CMD_RCPT:
		if (c->mail_ok) {
			/* An accepted recipient's result is the reply to
			 * the final dot, not this one. */
			if (r.code / 100 == 2) {
				c->accepted[i] = 1;
				c->naccepted++;
			} else
				tx->result[i] = r;
		}
		if (r.code == 421) {
			for (i = 0; i < tx->nrcpt; i++)
				if (tx->result[i].code == 0)
					tx->result[i] = r;
			tx->closed = 1;
			tx_finish(c);
			return;
		}
		if (!c->pipelined && i + 1 == tx->nrcpt && c->naccepted == 0) {
			tx_finish(c);
			return;
		}
		break;
	case CMD_DATA:
		if (r.code == 354) {
			c->discard = !(c->mail_ok && c->naccepted > 0);
			body_start(c);
			return;
		}
		/* The accepted recipients get DATA's refusal. */
		if (r.code / 100 == 2) {
			reply_synth(&r, 451, "4.5.0", "unexpected 2xx reply "
			    "to DATA");
			tx->closed = 1;
		}
		for (i = 0; i < tx->nrcpt; i++)
			if (c->accepted[i])
				tx->result[i] = r;
		tx->closed |= (r.code == 421);
		tx_finish(c);
		return;
	}
	if (c->cmd_done == c->ncmd) {	/* cannot happen: DATA is last */
		tx_finish(c);
		return;
	}
	if (!c->pipelined) {
		set_timeouts(c, cmd_timeout(c, c->cmd_sent), TMO_MAIL);
		if (write_cmd(c, c->cmd_sent++) == -1) {
			tx_fail_rest(c, 451, "4.3.0", "out of memory");
			tx->closed = 1;
			tx_finish(c);
		}
	} else
		set_timeouts(c, cmd_timeout(c, c->cmd_done), TMO_MAIL);
}

/* dot_reply - the reply to the final dot: the accepted recipients' fate */
static void
dot_reply(struct smtp_client *c)
{
	struct smtp_tx *tx = c->tx;
	struct smtp_reply r;
	size_t i;

	reply_make(c, &r);
	if (r.code == 421)
		tx->unavailable = 1;
	for (i = 0; i < tx->nrcpt; i++)
		if (c->accepted[i])
			tx->result[i] = r;
	tx->closed = (r.code == 421);
	tx_finish(c);
}

/*
 * smtp_client_send - start a transaction on an idle connection.  The
 * callback runs later, never from inside this call.
 */
int
smtp_client_send(struct smtp_client *c, struct smtp_tx *tx, smtp_tx_cb *cb,
    void *arg, char *err, size_t errlen)
{
	const char *why = NULL, *status = NULL;
	int code = 0, utf8;
	size_t i, k;

	if (c->dead || c->state != CS_IDLE) {
		errbuf_set(err, errlen, "connection is not idle");
		return (-1);
	}
	if (tx->nrcpt == 0 || tx->nrcpt > SMTP_TX_RCPT_MAX) {
		errbuf_set(err, errlen, "bad recipient count %zu", tx->nrcpt);
		return (-1);
	}
	event_del(c->timer);
	c->tx = tx;
	c->txcb = cb;
	c->txarg = arg;
	c->ntx++;
	clock_gettime(CLOCK_MONOTONIC, &c->t_tx);
	memset(tx->result, 0, tx->nrcpt * sizeof(*tx->result));
	tx->closed = tx->unavailable = 0;
	tx->elapsed = 0;
	c->mail_ok = 0;
	c->naccepted = 0;
	memset(c->accepted, 0, sizeof(c->accepted));
	c->discard = 0;
	c->cmd_done = c->cmd_sent = 0;
	c->has_rset = (c->ntx > 1);
	c->ncmd = (size_t)c->has_rset + 2 + tx->nrcpt;
	c->pipelined = (c->ext & SMTP_EXT_PIPELINING) != 0;

	utf8 = needs_utf8(tx->sender);
	for (i = 0; i < tx->nrcpt; i++)
		utf8 |= needs_utf8(tx->rcpt[i]);
	if (bad_address(tx->sender)) {
		code = 553, status = "5.1.7", why = "bad sender address";
	} else if (utf8 && !(c->ext & SMTP_EXT_SMTPUTF8)) {
		code = 553, status = "5.6.7", why = "SMTPUTF8 is required "
		    "but not supported by the server";
	} else if ((c->ext & SMTP_EXT_SIZE) && c->size_max > 0 &&
	    tx_total(tx) > c->size_max) {
		code = 552, status = "5.3.4", why = "message size exceeds the "
		    "server's limit";
	}
	for (i = 0; code == 0 && i < tx->nrcpt; i++)
		if (bad_address(tx->rcpt[i]))
			reply_synth(&tx->result[i], 553, "5.1.3",
			    "bad recipient address");
	if (code != 0) {
		tx_fail_rest(c, code, status, "%s (%s)", why, c->peer);
		client_state(c, CS_TXFAIL);
		event_active(c->timer, EV_TIMEOUT, 0);
		return (0);
	}

	client_state(c, CS_TX);
	set_timeouts(c, cmd_timeout(c, 0), TMO_MAIL);
	if (c->pipelined) {
		for (k = 0; k < c->ncmd; k++)
			if (write_cmd(c, k) == -1)
				goto nomem;
		c->cmd_sent = c->ncmd;
	} else {
		if (write_cmd(c, 0) == -1)
			goto nomem;
		c->cmd_sent = 1;
	}
	return (0);
nomem:
	/* Nothing reached the wire for sure: give the connection up. */
	tx_fail_rest(c, 451, "4.3.0", "out of memory");
	tx->closed = 1;
	client_state(c, CS_TXFAIL);
	event_active(c->timer, EV_TIMEOUT, 0);
	return (0);
}

/* ---- libevent callbacks ------------------------------------------------------ */

/* got_reply - one complete reply in c->rcode/rtext: dispatch it */
static void
got_reply(struct smtp_client *c)
{
	switch (c->state) {
	case CS_GREETING:
	case CS_EHLO:
	case CS_HELO:
	case CS_STARTTLS:
	case CS_EHLO_TLS:
		setup_reply(c);
		break;
	case CS_TX:
		tx_reply(c);
		break;
	case CS_DOT:
		dot_reply(c);
		break;
	case CS_QUIT:
		client_kill(c);
		break;
	case CS_IDLE:
		/* Typically "421 timeout" before the server hangs up. */
		client_notify(c, SMTP_CLIENT_CLOSED, "server spoke while idle");
		break;
	default:
		/* CS_BODY: a reply before our dot (the server gave up);
		 * anything else is a reply nobody asked for. */
		if (c->tx != NULL) {
			tx_fail_rest(c, c->rcode / 100 == 5 ? c->rcode : 451,
			    c->rcode / 100 == 5 ? "5.0.0" : "4.4.2",
			    "%s replied during the message body: %d %s",
			    c->peer, c->rcode, c->rtext);
			c->tx->closed = 1;
			tx_finish(c);
		} else
			client_endpoint_failed(c, "%s: unexpected reply",
			    c->peer);
		break;
	}
}

/* protocol_error - the server broke the protocol: drop the session */
static void
protocol_error(struct smtp_client *c, const char *what)
{
	switch (c->state) {
	case CS_TX:
	case CS_BODY:
	case CS_DOT:
	case CS_TXFAIL:
		tx_broken(c, what);
		break;
	case CS_IDLE:
		client_notify(c, SMTP_CLIENT_CLOSED, what);
		break;
	case CS_QUIT:
		client_kill(c);
		break;
	default:
		client_endpoint_failed(c, "%s: %s", c->peer, what);
		break;
	}
}

static void
client_readcb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	const char *text;
	size_t len, n;
	int code, last;

	client_ref(c);
	while (!c->dead && c->bev == bev) {
		struct evbuffer_ptr eol;

		eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF);
		if (eol.pos == -1) {
			if (evbuffer_get_length(in) > SMTP_LINE_MAX)
				protocol_error(c, "reply line too long");
			break;
		}
		if ((size_t)eol.pos > SMTP_LINE_MAX) {
			protocol_error(c, "reply line too long");
			break;
		}
		if ((line = evbuffer_readln(in, &len,
		    EVBUFFER_EOL_CRLF)) == NULL)
			break;
		last = smtp_reply_line(line, len, &code, &text);
		if (last == -1 || (c->rlines > 0 && code != c->rcode) ||
		    ++c->rlines > SMTP_REPLY_LINES_MAX) {
			free(line);
			protocol_error(c, "malformed reply");
			break;
		}
		c->rcode = code;
		if (c->state == CS_EHLO || c->state == CS_EHLO_TLS) {
			if (c->rlines > 1 && memchr(text, '\0',
			    len - (size_t)(text - line)) == NULL)
				ehlo_line(c, text);
		}
		/* Keep the text of every line, joined by blanks. */
		if (c->rlen + 2 < sizeof(c->rtext)) {
			if (c->rlen > 0)
				c->rtext[c->rlen++] = ' ';
			n = str_printable(c->rtext + c->rlen,
			    sizeof(c->rtext) - c->rlen, text,
			    len - (size_t)(text - line));
			c->rlen += n;
			c->rtext[c->rlen] = '\0';
		}
		free(line);
		if (!last)
			continue;
		/* An EHLO reply's first line is the server's name: keep
		 * only that in the text we show. */
		c->rlines = 0;
		got_reply(c);
		if (!c->dead)
			c->rlen = 0, c->rtext[0] = '\0';
	}
	client_unref(c);
}

static void
client_writecb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	client_ref(c);
	if (!c->dead && c->bev == bev && c->state == CS_BODY)
		body_fill(c);
	client_unref(c);
}

static void
client_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;
	const char *why;
	int saved = errno;

	client_ref(c);
	if (c->dead || c->bev != bev)
		goto out;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CS_CONNECT) {
			client_state(c, CS_GREETING);
			set_timeouts(c, TMO_GREETING, TMO_EHLO);
			bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		} else if (c->state == CS_TLS) {
			send_ehlo(c, CS_EHLO_TLS);
		}
		goto out;
	}
	if (what & BEV_EVENT_TIMEOUT)
		why = "timeout";
	else if (what & BEV_EVENT_EOF)
		why = "connection closed by the server";
	else
		why = saved ? strerror(saved) : "connection error";

	switch (c->state) {
	case CS_CONNECT:
		client_endpoint_failed(c, "connect to %s: %s", c->peer,
		    (what & BEV_EVENT_TIMEOUT) ? "connection timed out" : why);
		break;
	case CS_TLS:
		if (what & BEV_EVENT_TIMEOUT)
			client_endpoint_failed(c, "%s: TLS handshake timed out",
			    c->peer);
		else
			tls_failed(c);
		break;
	default:
		protocol_error(c, why);
		break;
	}
out:
	client_unref(c);
}

/* timer_cb - idle timeout, background QUIT timeout, deferred tx end */
static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	(void)fd;
	(void)what;
	client_ref(c);
	switch (c->state) {
	case CS_START:
		client_next_address(c);
		break;
	case CS_IDLE: {
		/* Idle long enough: QUIT politely, in the background. */
		smtp_client_cb *cb = c->cb;
		void *cbarg = c->arg;
		struct smtp_client *cc = c;

		smtp_client_close(&cc);
		if (cb != NULL)
			cb(c, SMTP_CLIENT_CLOSED, "idle", cbarg);
		break;
	}
	case CS_TXFAIL:
		tx_finish(c);
		break;
	default:
		client_kill(c);
		break;
	}
	client_unref(c);
}

/* ---- public ------------------------------------------------------------------ */

struct smtp_client_ctx *
smtp_client_ctx_new(struct event_base *base, const char *helo_name,
    const char *ca_file, char *err, size_t errlen)
{
	struct smtp_client_ctx *ctx;

	if ((ctx = calloc(1, sizeof(*ctx))) == NULL ||
	    (ctx->helo = strdup(helo_name)) == NULL) {
		free(ctx);
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	ctx->base = base;
	TAILQ_INIT(&ctx->conns);
	ctx->ssl_ctx = tls_client_ctx_new(ca_file != NULL && *ca_file ?
	    ca_file : NULL, err, errlen);
	if (ctx->ssl_ctx == NULL) {
		free(ctx->helo);
		free(ctx);
		return (NULL);
	}
	return (ctx);
}

void
smtp_client_ctx_set_resolver(struct smtp_client_ctx *ctx,
    struct dns_resolver *dns)
{
	ctx->dns = dns;
}

/* smtp_client_ctx_free - drop every connection, no callbacks */
void
smtp_client_ctx_free(struct smtp_client_ctx **ctxp)
{
	struct smtp_client_ctx *ctx;
	struct smtp_client *c;

	if (ctxp == NULL || (ctx = *ctxp) == NULL)
		return;
	while ((c = TAILQ_FIRST(&ctx->conns)) != NULL) {
		client_kill(c);
		client_free(c);	/* nothing of ours is on the stack here */
	}
	tls_ctx_free(&ctx->ssl_ctx);
	free(ctx->helo);
	free(ctx);
	*ctxp = NULL;
}

/*
 * smtp_client_connect - start connecting; the outcome comes as
 * SMTP_CLIENT_READY or SMTP_CLIENT_FAILED, never from inside this call.
 */
struct smtp_client *
smtp_client_connect(struct smtp_client_ctx *ctx,
    const struct smtp_client_params *p, smtp_client_cb *cb, void *arg,
    char *err, size_t errlen)
{
	struct smtp_client *c;

	if (p->nep == 0) {
		errbuf_set(err, errlen, "no endpoint");
		return (NULL);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->ep = calloc(p->nep, sizeof(*c->ep))) == NULL) {
		free(c);
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	memcpy(c->ep, p->ep, p->nep * sizeof(*c->ep));
	c->nep = p->nep;
	c->ctx = ctx;
	c->cb = cb;
	c->arg = arg;
	c->tls = p->tls;
	c->connect_timeout = p->connect_timeout > 0 ? p->connect_timeout : 30;
	c->idle_timeout = p->idle_timeout;
	if ((c->timer = evtimer_new(ctx->base, timer_cb, c)) == NULL) {
		free(c->ep);
		free(c);
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	TAILQ_INSERT_TAIL(&ctx->conns, c, entry);
	clock_gettime(CLOCK_MONOTONIC, &c->t_connect);
	/* Start from the loop so the callback never runs inside this call
	 * (an IP literal that fails at once would otherwise). */
	client_state(c, CS_START);
	event_active(c->timer, EV_TIMEOUT, 0);
	return (c);
}

const char *
smtp_client_peer(const struct smtp_client *c)
{
	return (c->peer[0] ? c->peer : "none");
}

const char *
smtp_client_peer_host(const struct smtp_client *c)
{
	return (c->iep < c->nep ? c->ep[c->iep].host : "none");
}

/* smtp_client_skipped - why earlier endpoints were passed over ("" if none) */
const char *
smtp_client_skipped(const struct smtp_client *c)
{
	return (c->why);
}

const char *
smtp_client_tls(const struct smtp_client *c)
{
	return (c->tlsdesc[0] ? c->tlsdesc : "no TLS");
}

/* smtp_client_close - give an idle connection back: QUIT in the background */
void
smtp_client_close(struct smtp_client **cp)
{
	struct smtp_client *c;
	struct timeval tv = { TMO_QUIT, 0 };

	if (cp == NULL || (c = *cp) == NULL)
		return;
	*cp = NULL;
	if (c->dead)
		return;
	if (c->state != CS_IDLE || c->bev == NULL) {
		smtp_client_abort(&c);
		return;
	}
	c->cb = NULL;
	client_state(c, CS_QUIT);
	set_timeouts(c, TMO_QUIT, TMO_QUIT);
	send_line(c, "QUIT");
	event_del(c->timer);
	event_add(c->timer, &tv);
}

/* smtp_client_abort - drop the connection now, no callbacks */
void
smtp_client_abort(struct smtp_client **cp)
{
	struct smtp_client *c;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	*cp = NULL;
	client_kill(c);
	if (c->refs == 0)
		client_free(c);
}
