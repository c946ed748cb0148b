/*
 * smtp_server_tls.c - STARTTLS in the relay's SMTP server (RFC 3207,
 * DESIGN.md §5): the command, the hand-over of the socket to OpenSSL
 * once the 220 is out, the restart of the session inside TLS, the log
 * line of a failed handshake, and the flush of a closing TLS session's
 * last record.
 *
 * Exposure: everything a client sends after STARTTLS and before the
 * handshake was sent in clear and is thrown away, twice: when the
 * command is read and when the handshake starts (CVE-2011-0411 class).
 * Nothing of the session before TLS survives it: HELO name, extensions,
 * transaction (RFC 3207 §4.2).
 *
 * Under TLS the replies of a batch collect in s->pend and go to the
 * filter in one piece (session_flush()).  Loop thread only.
 */

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "smtp_server_p.h"
#include "tls.h"

/* session_starttls - the STARTTLS command: 220, then stop reading */
void
session_starttls(struct smtp_session *s)
{
	if (s->server->tls_ctx == NULL) {
		session_reply(s, "502 5.5.1 Error: command not implemented");
		session_error(s);
		return;
	}
	if (s->tls) {
		session_reply(s, "503 5.5.1 Error: TLS already active");
		session_error(s);
		return;
	}
	session_tx_free(&s->tx);
	session_reply(s, "220 2.0.0 Ready to start TLS");
	/* Everything the client sent after STARTTLS was sent in clear
	 * before the handshake: it must not be read as commands after it
	 * (CVE-2011-0411).  Drop what we have; stop reading until the 220
	 * is out (then the handshake takes the socket). */
	evbuffer_drain(bufferevent_get_input(s->bev),
	    evbuffer_get_length(bufferevent_get_input(s->bev)));
	bufferevent_disable(s->bev, EV_READ);
	session_state(s, S_TLS_WAIT);
}

/* session_start_tls - the 220 is out: hand the socket to OpenSSL */
void
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
		session_reply(s, "421 4.3.0 %s TLS unavailable",
		    server->hostname);
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
		session_reply(s, "421 4.3.0 %s TLS unavailable",
		    server->hostname);
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
	session_set_timeouts(s, server_cfg(server)->relay.timeout);
	bufferevent_enable(tlsbev, EV_READ | EV_WRITE);
	session_state(s, S_TLS_HANDSHAKE);
}

/* session_tls_ready - the handshake is done: start over (RFC 3207 §4.2) */
void
session_tls_ready(struct smtp_session *s, struct bufferevent *bev)
{
	char desc[TLS_DESCRIBE_MAX];

	s->tls = 1;
	s->esmtp = 0;
	free(s->helo);
	s->helo = NULL;
	session_tx_free(&s->tx);
	session_state(s, S_INIT);
	log_info("TLS from [%s]: %s", s->addr,
	    tls_describe(bufferevent_openssl_get_ssl(bev), desc,
	    sizeof(desc)));
	session_process(s);
	session_flush(s);
}

/* session_tls_failed - log why the handshake failed (the caller frees) */
void
session_tls_failed(struct smtp_session *s, struct bufferevent *bev)
{
	unsigned long e = bufferevent_get_openssl_error(bev);
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	log_info("TLS handshake failed with [%s]: %s", s->addr,
	    e ? buf : "connection closed");
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

/*
 * session_tls_drain_on_close - a closing session's output is flushed:
 * 1 when it still waits in the plain bufferevent under TLS (the session
 * is freed once it is on the socket), 0 when the caller may free now.
 *
 * Under TLS "flushed" means handed to the plain bufferevent below, not
 * written: freeing now would drop the last reply (221, 421...).  We are
 * closing, so take over that bufferevent's callbacks.
 */
int
session_tls_drain_on_close(struct smtp_session *s, struct bufferevent *bev)
{
	struct bufferevent *under;
	struct timeval tv = { 30, 0 };

	under = bufferevent_get_underlying(bev);
	if (under != NULL &&
	    evbuffer_get_length(bufferevent_get_output(under)) > 0) {
		bufferevent_setcb(under, NULL, tls_drained_cb,
		    tls_drained_event_cb, s);
		bufferevent_set_timeouts(under, NULL, &tv);
		bufferevent_enable(under, EV_WRITE);
		return (1);
	}
	return (0);
}
