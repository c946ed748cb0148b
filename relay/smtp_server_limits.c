/*
 * smtp_server_limits.c - how long a client may take, and how many
 * connections one address may hold, in the relay's SMTP server.
 *
 * The bufferevent timeouts ([relay] timeout, data_timeout) are idle
 * timers: every byte resets them, so a client sending one byte a second
 * would hold its connection for ever.  On top of them each phase of a
 * session has a deadline that bytes do not reset:
 *   - a command line (INIT, READY, MAIL, RCPT; the TLS handshake): the
 *     whole line must arrive within [relay] command_deadline of our
 *     previous reply (or of the greeting);
 *   - DATA: the message must arrive within data_timeout plus one second
 *     per [relay] min_data_rate bytes received so far, so a client that
 *     keeps up the minimum rate is never cut, and one that dribbles is
 *     cut after about data_timeout.
 * A missed deadline is answered "421 4.4.2 ... timeout exceeded" and
 * the connection closed, like an idle timeout.
 *
 * Stress mode (after Postfix's): once the sessions reach [relay]
 * stress_threshold percent of max_connections, every timeout and
 * deadline is cut to stress_timeout (running sessions included: their
 * deadlines are re-armed from the start of their phase) and one address
 * may hold at most stress_max_connections_per_ip connections; it ends
 * when the sessions fall below half the threshold.  Both changes are
 * logged once.  A session that lived through stress mode keeps the
 * short limits to its end (as a Postfix smtpd started under stress
 * does): cutting the slow clients ends stress mode at once, and those
 * not cut yet must not get the long timeouts back.  While the relay is
 * not under load nothing changes, so a slow but honest peer is served
 * as before.
 *
 * Exposure: these are the defences against clients that hold sockets
 * without sending mail (slowloris); they never touch a session waiting
 * for the spool (COMMIT), which is our delay, not the client's.
 * Loop thread only.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "smtp_server_p.h"

#define NO_DEADLINE	(-1)

/* server_mono_ms - a monotonic clock in milliseconds */
int64_t
server_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* stress_cap - secs, or stress_timeout when that is shorter under stress */
static int64_t
stress_cap(const struct smtp_session *s, int64_t secs)
{
	int64_t st = server_cfg(s->server)->relay.stress_timeout;

	if (s->stressed && st > 0 && (secs <= 0 || secs > st))
		return (st);
	return (secs);
}

/* phase_allowed - ms the current phase may last from phase_start */
static int64_t
phase_allowed(const struct smtp_session *s)
{
	const struct config *cfg = server_cfg(s->server);
	int64_t secs, rate, seen;

	switch (s->state) {
	case S_INIT:
	case S_READY:
	case S_MAIL:
	case S_RCPT:
	case S_TLS_HANDSHAKE:
		secs = stress_cap(s, cfg->relay.command_deadline);
		return (secs > 0 ? secs * 1000 : NO_DEADLINE);
	case S_DATA:
		rate = cfg->relay.min_data_rate;
		if (rate <= 0)
			return (NO_DEADLINE);
		secs = stress_cap(s, cfg->relay.data_timeout);
		seen = s->tx != NULL ? (int64_t)s->tx->data.seen : 0;
		return (secs * 1000 + seen / rate * 1000 +
		    seen % rate * 1000 / rate);
	default:
		return (NO_DEADLINE);	/* COMMIT, TLS_WAIT, CLOSING */
	}
}

/* deadline_rearm - schedule the deadline of the phase begun at phase_start */
static void
deadline_rearm(struct smtp_session *s)
{
	int64_t allowed, left;
	struct timeval tv;

	if (s->deadline_ev == NULL)
		return;
	if ((allowed = phase_allowed(s)) == NO_DEADLINE) {
		event_del(s->deadline_ev);
		return;
	}
	left = s->phase_start + allowed - server_mono_ms();
	if (left < 0)
		left = 0;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000 * 1000);
	evtimer_add(s->deadline_ev, &tv);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_server *server = s->server;

	(void)fd;
	(void)what;
	switch (s->state) {
	case S_COMMIT:
	case S_TLS_WAIT:
	case S_CLOSING:
		return;
	case S_TLS_HANDSHAKE:
		log_info("deadline exceeded in the TLS handshake from [%s]",
		    s->addr);
		session_free(s);
		return;
	default:
		break;
	}
	log_info("deadline exceeded in %s from %s[%s]%s",
	    s->state == S_DATA ? "DATA" : "a command",
	    s->helo ? s->helo : "unknown", s->addr,
	    s->stressed ? " (stress mode)" : "");
	session_reply(s, "421 4.4.2 %s Error: timeout exceeded",
	    server->hostname);
	session_tx_free(&s->tx);
	session_close(s);
}

/* session_deadline_new - the deadline timer of a new session; -1 on ENOMEM */
int
session_deadline_new(struct smtp_session *s)
{
	s->deadline_ev = evtimer_new(s->server->relay->base, deadline_cb, s);
	return (s->deadline_ev == NULL ? -1 : 0);
}

/*
 * session_deadline_arm - a phase begins now (a state change, or a
 * command line was handled and the next one is awaited)
 */
void
session_deadline_arm(struct smtp_session *s)
{
	if (s->server->stress)
		s->stressed = 1;
	s->phase_start = server_mono_ms();
	deadline_rearm(s);
}

/* session_deadline_data - DATA bytes arrived: the deadline moves on */
void
session_deadline_data(struct smtp_session *s)
{
	if (s->state == S_DATA)
		deadline_rearm(s);
}

/* server_max_per_ip - connections one address may hold right now */
int64_t
server_max_per_ip(const struct smtp_server *server)
{
	const struct config *cfg = server_cfg(server);

	if (server->stress &&
	    cfg->relay.stress_max_connections_per_ip <
	    cfg->relay.max_connections_per_ip)
		return (cfg->relay.stress_max_connections_per_ip);
	return (cfg->relay.max_connections_per_ip);
}

/*
 * server_stress_update - enter or leave stress mode after the number of
 * sessions changed; on a change every running session's timeouts and
 * deadline follow at once
 */
void
server_stress_update(struct smtp_server *server)
{
	const struct config *cfg = server_cfg(server);
	struct smtp_session *s;
	size_t on_at, off_below;
	int stress;

	on_at = (size_t)((cfg->relay.max_connections *
	    cfg->relay.stress_threshold + 99) / 100);
	if (on_at == 0)
		on_at = 1;
	/* Off only at half the threshold, so that it does not flap with
	 * every connection that comes or goes near it. */
	off_below = (on_at + 1) / 2;
	if (!server->stress)
		stress = server->nsessions >= on_at;
	else
		stress = server->nsessions >= off_below;
	if (stress == server->stress)
		return;
	server->stress = stress;
	if (!stress) {
		/* sessions that lived through it keep its limits */
		log_info("stress mode off: %zu of %lld connections",
		    server->nsessions, (long long)cfg->relay.max_connections);
		return;
	}
	log_warnx("stress mode on: %zu of %lld connections; timeouts %llds, "
	    "at most %lld connections per address", server->nsessions,
	    (long long)cfg->relay.max_connections,
	    (long long)cfg->relay.stress_timeout,
	    (long long)server_max_per_ip(server));
	TAILQ_FOREACH(s, &server->sessions, entry) {
		s->stressed = 1;
		switch (s->state) {
		case S_INIT:
		case S_READY:
		case S_MAIL:
		case S_RCPT:
		case S_TLS_HANDSHAKE:
			session_set_timeouts(s, cfg->relay.timeout);
			break;
		case S_DATA:
			session_set_timeouts(s, cfg->relay.data_timeout);
			break;
		default:
			continue;
		}
		deadline_rearm(s);
	}
}
