/*
 * smtp_server_session.c - one SMTP session of the relay's server
 * (DESIGN.md §5): queueing replies and flushing them a batch at a time,
 * the one function that changes a session's state (and logs it), the
 * reader that cuts the input into command lines (length-checked before
 * anything is copied) or hands it to DATA, counting client errors, and
 * the bufferevent callbacks that close and free a session.
 *
 * The states, the reply codes and the exposure are described at the top
 * of smtp_server.c; the structs are in smtp_server_p.h.  Loop thread only.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "smtp_server_p.h"

static const char *const state_names[] = {
	"INIT", "READY", "MAIL", "RCPT", "DATA", "COMMIT", "TLS_WAIT",
	"TLS_HANDSHAKE", "CLOSING",
};
_Static_assert(sizeof(state_names) / sizeof(state_names[0]) ==
    S_CLOSING + 1, "state_names[] and enum session_state differ");

/* ---- small helpers ----------------------------------------------------- */

/*
 * session_reply - queue one reply line (CRLF added)
 *
 * One evbuffer_add per line, so the lines of a pipelined batch share
 * chains: under TLS each chain tends to become its own record.
 */
void
session_reply(struct smtp_session *s, const char *fmt, ...)
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
void
session_flush(struct smtp_session *s)
{
	if (s->pend != NULL && s->bev != NULL &&
	    evbuffer_get_length(s->pend) > 0)
		evbuffer_add_buffer(bufferevent_get_output(s->bev), s->pend);
}

/* session_state - the one place a session changes state; logs it */
void
session_state(struct smtp_session *s, enum session_state st)
{
	if (s->state == st)
		return;
	log_debug("smtp: %p [%s]: %s -> %s", (void *)s, s->addr,
	    state_names[s->state], state_names[st]);
	s->state = st;
	session_deadline_arm(s);	/* a new phase, a new deadline */
}

/*
 * session_set_timeouts - the idle timeouts (reset by every byte); in
 * stress mode no longer than [relay] stress_timeout, except while the
 * client waits for our spool (COMMIT)
 */
void
session_set_timeouts(struct smtp_session *s, int64_t secs)
{
	struct timeval tv;
	int64_t st = server_cfg(s->server)->relay.stress_timeout;

	if ((s->stressed || s->server->stress) && s->state != S_COMMIT &&
	    st > 0 && secs > st)
		secs = st;
	tv.tv_sec = (time_t)secs;
	tv.tv_usec = 0;
	if (s->bev)
		bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/*
 * session_close - send nothing more; free once the output is flushed
 *
 * Never frees at once: callers go on using s until they return.  The
 * write callback (deferred when nothing is left to write) frees it.
 */
void
session_close(struct smtp_session *s)
{
	session_state(s, S_CLOSING);
	if (s->bev == NULL)
		return;
	session_flush(s);
	bufferevent_disable(s->bev, EV_READ);
	/* A client that stops reading must not keep us forever. */
	session_set_timeouts(s, 30);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		bufferevent_trigger(s->bev, EV_WRITE,
		    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/*
 * session_store_full - the LMDB map refused a write at its cap less than
 * SMTP_STORE_FULL_HOLD seconds ago: new mail gets 452 4.3.1 (RFC 3463
 * "mail system full") until a write commits again or the hold passes and
 * one more transaction may try
 */
int
session_store_full(const struct smtp_session *s)
{
	struct store *store = s->server->relay->store;
	time_t at;

	if (store == NULL || (at = store_full_at(store)) == 0)
		return (0);
	return (time(NULL) - at < SMTP_STORE_FULL_HOLD);
}

void
session_count_reject(struct smtp_session *s, enum reject_reason why)
{
	s->server->relay->stats.rejected[why]++;
}

/* session_error - count a client error; 421 and close past the limit */
int
session_error(struct smtp_session *s)
{
	if (++s->errors < SMTP_MAX_ERRORS)
		return (0);
	session_reply(s, "421 4.7.0 %s Error: too many errors",
	    s->server->hostname);
	log_info("too many errors from %s[%s]", s->helo ? s->helo : "unknown",
	    s->addr);
	session_close(s);
	return (-1);
}

/* ---- transactions ------------------------------------------------------ */

void
session_tx_free(struct smtp_tx **txp)
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
void
session_reset(struct smtp_session *s)
{
	session_tx_free(&s->tx);
	if (s->state != S_INIT)
		session_state(s, S_READY);
}

/* ---- the input --------------------------------------------------------- */

/*
 * session_process - handle everything complete in the input, in order
 */
void
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
			if (session_data(s) == 0) {
				session_deadline_data(s);
				return;
			}
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
			session_reply(s, "500 5.5.2 Line too long");
			session_count_reject(s, REJ_SYNTAX);
			if (session_error(s) == -1)
				return;
			continue;
		}
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, eol_len);
		session_command(s, line, len);
		/* the next command line has its own deadline (a state
		 * change has armed it already, DATA's runs on) */
		if (s->state == S_INIT || s->state == S_READY ||
		    s->state == S_MAIL || s->state == S_RCPT)
			session_deadline_arm(s);
	}
}

/* ---- libevent callbacks ------------------------------------------------ */

void
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

void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state == S_TLS_WAIT) {
		session_start_tls(s);
		return;
	}
	if (s->state != S_CLOSING)
		return;
	if (session_tls_drain_on_close(s, bev))
		return;	/* freed once the last record is on the socket */
	session_free(s);
}

void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_server *server = s->server;

	if (what & BEV_EVENT_CONNECTED) {
		session_tls_ready(s, bev);
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
		session_reply(s, "421 4.4.2 %s Error: timeout exceeded",
		    server->hostname);
		session_tx_free(&s->tx);
		session_close(s);
		return;
	}
	/* EOF or error: the client is gone. */
	if (what & BEV_EVENT_ERROR && s->state == S_TLS_HANDSHAKE)
		session_tls_failed(s, bev);
	else if (s->state == S_DATA)
		log_info("%s: lost connection after DATA from %s[%s]",
		    s->tx && s->tx->msg ? spool_msg_id(s->tx->msg) : "?",
		    s->helo ? s->helo : "unknown", s->addr);
	session_free(s);
}

