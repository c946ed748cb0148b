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
 *   554 5.6.0  a NUL byte in DATA (refused after its end; the session
 *              goes on)
 *   550 5.7.1  sender-specified routing in RCPT (%, !, a quoted @ or a
 *              source route), like Postfix's defaults
 *   452 4.3.1  MAIL while the spool's file system has no room (RFC 1870),
 *              or SIZE= is more than it has; MAIL and the end of DATA
 *              while the LMDB map is full at [global] map_size
 *   452 4.5.3  too many recipients (RFC 5321 §4.5.3.1.10)
 *   421 4.7.0  too many connections (total or from one address)
 *   421 4.4.2  timeout, or a deadline missed (smtp_server_limits.c)
 *   421 4.3.2  shutting down, or out of file descriptors
 *   451 4.3.0  spool or queue index failure
 *
 * Memory: an idle session is one bufferevent and this small struct; the
 * DATA scratch buffer is one per server; spool write buffers exist only
 * during DATA.
 *
 * Threading: loop thread only.
 *
 * Files (their structs and cross calls in smtp_server_p.h):
 *   smtp_server.c          listeners, accepting, connection limits,
 *                          start, shutdown, teardown
 *   smtp_server_session.c  replies, session_state(), the command-line
 *                          reader, the bufferevent callbacks, closing
 *   smtp_server_cmd.c      the commands and the recipient policy
 *   smtp_server_data.c     DATA, the Received: header, checks, commit
 *   smtp_server_tls.c      STARTTLS and the TLS session's close
 *   smtp_server_limits.c   deadlines, stress mode
 *
 * Out of file descriptors (EMFILE at accept): see accept_error_cb().
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "log.h"
#include "smtp_server_p.h"
#include "tls.h"

#ifndef TAILQ_FOREACH_SAFE	/* glibc's sys/queue.h lacks it */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

/* ---- sessions ---------------------------------------------------------- */

static void
server_maybe_done(struct smtp_server *server)
{
	if (server->shutting_down && server->nsessions == 0 &&
	    server->done_ev != NULL)
		event_active(server->done_ev, EV_TIMEOUT, 0);
}

void
session_free(struct smtp_session *s)
{
	struct smtp_server *server = s->server;

	log_info("disconnect from %s[%s]", s->helo ? s->helo : "unknown",
	    s->addr);
	TAILQ_REMOVE(&server->sessions, s, entry);
	server->nsessions--;
	session_tx_free(&s->tx);
	if (s->bev)
		bufferevent_free(s->bev);
	if (s->pend)
		evbuffer_free(s->pend);
	if (s->deadline_ev)
		event_free(s->deadline_ev);
	free(s->helo);
	free(s);
	server_stress_update(server);
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
	if (same >= (size_t)server_max_per_ip(server)) {
		log_warnx("refused [%s]: too many connections from this "
		    "address (%zu%s)", addr, same,
		    server->stress ? ", stress mode" : "");
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
	if (session_deadline_new(s) == -1) {
		free(s);
		refuse_now(fd, "421 4.3.0 Local error\r\n");
		return;
	}
	s->bev = bufferevent_socket_new(server->relay->base, fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		event_free(s->deadline_ev);
		free(s);
		refuse_now(fd, "421 4.3.0 Local error\r\n");
		return;
	}
	TAILQ_INSERT_TAIL(&server->sessions, s, entry);
	server->nsessions++;
	server_stress_update(server);
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	session_set_timeouts(s, cfg->relay.timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	session_state(s, S_INIT);
	session_deadline_arm(s);	/* S_INIT is calloc's 0: no change */
	log_info("connect from [%s]", addr);
	session_reply(s, "220 %s ESMTP mailferry", server->hostname);
}

/* listeners_enable - accept again, or stop (shutdown, fd exhaustion) */
static void
listeners_enable(struct smtp_server *server, int on)
{
	size_t i;

	for (i = 0; i < server->nlisteners; i++) {
		if (server->listeners[i] == NULL)
			continue;
		if (on)
			evconnlistener_enable(server->listeners[i]);
		else
			evconnlistener_disable(server->listeners[i]);
	}
}

/* reserve_open - the descriptor kept free to answer clients at EMFILE */
static void
reserve_open(struct smtp_server *server)
{
	if (server->reserve_fd == -1)
		server->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
pause_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *server = arg;

	(void)fd;
	(void)what;
	server->paused = 0;
	reserve_open(server);
	if (!server->shutting_down)
		listeners_enable(server, 1);
}

/*
 * accept_error_cb - accept() failed with something libevent does not
 * retry by itself: EMFILE/ENFILE (out of descriptors), ENOBUFS/ENOMEM
 *
 * The listening socket stays readable, so going on would spin the loop
 * at full CPU and write the same line to the log as fast as it can.
 * Instead: give the reserve descriptor to a few waiting clients, so they
 * hear "421 4.3.2" and try again later instead of hanging in the
 * backlog; stop listening for SMTP_ACCEPT_PAUSE_MS (sessions ending in
 * the meantime give descriptors back); report once per
 * SMTP_ACCEPT_LOG_EVERY seconds with the count of failures since.
 */
static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct smtp_server *server = arg;
	struct timeval pause = { 0, SMTP_ACCEPT_PAUSE_MS * 1000 };
	char text[512];
	int e = EVUTIL_SOCKET_ERROR(), fd, i;
	int64_t now = server_mono_ms();

	server->accept_errors++;
	if ((e == EMFILE || e == ENFILE) && server->reserve_fd != -1) {
		close(server->reserve_fd);
		server->reserve_fd = -1;
		snprintf(text, sizeof(text), "421 4.3.2 %s Error: out of "
		    "resources, try again later\r\n", server->hostname);
		for (i = 0; i < 8; i++) {
			fd = accept4(evconnlistener_get_fd(lev), NULL, NULL,
			    SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd == -1)
				break;
			server->relay->stats.connections++;
			server->relay->stats.rejected[REJ_CONN_LIMIT]++;
			refuse_now(fd, text);
		}
		reserve_open(server);
	}
	if (server->accept_log_at == 0 ||
	    now - server->accept_log_at >= SMTP_ACCEPT_LOG_EVERY * 1000) {
		log_warnx("accept: %s (%llu time(s) since the last report); "
		    "new connections paused, %zu session(s) open",
		    evutil_socket_error_to_string(e),
		    (unsigned long long)server->accept_errors,
		    server->nsessions);
		server->accept_log_at = now;
		server->accept_errors = 0;
	}
	if (server->paused || server->pause_ev == NULL)
		return;
	listeners_enable(server, 0);
	server->paused = 1;
	evtimer_add(server->pause_ev, &pause);
}

/* ---- the server -------------------------------------------------------- */

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
	server->reserve_fd = -1;
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
	server->pause_ev = evtimer_new(relay->base, pause_cb, server);
	reserve_open(server);
	if (server->done_ev == NULL || server->pause_ev == NULL ||
	    server->reserve_fd == -1) {
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
		session_reply(s, "421 4.3.2 %s Service shutting down",
		    server->hostname);
		session_tx_free(&s->tx);
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

	server->shutting_down = 1;
	server->done = done;
	server->done_arg = arg;
	listeners_enable(server, 0);
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
			session_reply(s, "421 4.3.2 %s Service shutting down",
			    server->hostname);
			session_tx_free(&s->tx);
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
		session_tx_free(&s->tx);
		if (s->bev)
			bufferevent_free(s->bev);
		if (s->pend)
			evbuffer_free(s->pend);
		if (s->deadline_ev)
			event_free(s->deadline_ev);
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
	if (server->pause_ev)
		event_free(server->pause_ev);
	if (server->reserve_fd != -1)
		close(server->reserve_fd);
	strlist_clear(&server->rcptlist);
	tls_ctx_free(&server->tls_ctx);
	free(server);
}

size_t
smtp_server_sessions(const struct smtp_server *server)
{
	return (server->nsessions);
}
