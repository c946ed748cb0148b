/*
 * control_cap.c - the connection cap of the control HTTP listener (see
 * control_cap.h).
 *
 * libevent 2.1 offers no hook at accept, but it lets us make the
 * bufferevent of every incoming connection (evhttp_set_bevcb).  That
 * bufferevent is noted; once evhttp has built its connection around it
 * (still inside the same listener callback, so before any byte can be
 * read) a callback activated from the bevcb finds the connection as the
 * bufferevent's callback argument, and either counts it (a close
 * callback uncounts it) or frees it: the client sees the connection
 * closed without a reply.
 *
 * Exposure: only what connects to [control] http (loopback by default);
 * a flood of connections there can no longer take the descriptors the
 * SMTP server and the spool need.  Loop thread only.
 */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "control_cap.h"
#include "log.h"

#define HTTP_CAP_LOG_EVERY	60	/* seconds between refusal reports */

struct http_cap {
	struct event_base	*base;
	struct event		*ev;		/* settles the fresh ones */
	size_t			 max;
	size_t			 open;
	uint64_t		 refused;
	uint64_t		 unreported;	/* refused since the last log */
	time_t			 log_at;
	/* bufferevents made for connections evhttp is building now */
	struct bufferevent	**fresh;
	size_t			 nfresh, fresh_cap;
};

static void
cap_closed(struct evhttp_connection *evcon, void *arg)
{
	struct http_cap *cap = arg;

	(void)evcon;
	if (cap->open > 0)
		cap->open--;
}

/* cap_settle - count each new connection, or close it when over max */
static void
cap_settle(evutil_socket_t fd, short what, void *arg)
{
	struct http_cap *cap = arg;
	struct evhttp_connection *evcon;
	void *cbarg;
	size_t i;
	time_t now;

	(void)fd;
	(void)what;
	for (i = 0; i < cap->nfresh; i++) {
		cbarg = NULL;
		bufferevent_getcb(cap->fresh[i], NULL, NULL, NULL, &cbarg);
		if ((evcon = cbarg) == NULL)
			continue;
		if (cap->open < cap->max) {
			cap->open++;
			evhttp_connection_set_closecb(evcon, cap_closed, cap);
			continue;
		}
		cap->refused++;
		cap->unreported++;
		now = time(NULL);
		if (cap->log_at == 0 || now - cap->log_at >= HTTP_CAP_LOG_EVERY) {
			log_warnx("control: HTTP connection refused: %zu open "
			    "([control] max_connections); %llu refused since "
			    "the last report", cap->open,
			    (unsigned long long)cap->unreported);
			cap->log_at = now;
			cap->unreported = 0;
		}
		evhttp_connection_free(evcon);
	}
	cap->nfresh = 0;
}

/* cap_bevcb - evhttp_set_bevcb: the bufferevent of one new connection */
static struct bufferevent *
cap_bevcb(struct event_base *base, void *arg)
{
	struct http_cap *cap = arg;
	struct bufferevent *bev, **n;
	size_t want;

	/* the options evhttp uses when it makes its own */
	if ((bev = bufferevent_socket_new(base, -1, 0)) == NULL)
		return (NULL);
	if (cap->nfresh == cap->fresh_cap) {
		want = cap->fresh_cap ? cap->fresh_cap * 2 : 16;
		if ((n = reallocarray(cap->fresh, want, sizeof(*n))) == NULL)
			return (bev);	/* not counted: better than none */
		cap->fresh = n;
		cap->fresh_cap = want;
	}
	cap->fresh[cap->nfresh++] = bev;
	event_active(cap->ev, EV_TIMEOUT, 1);
	return (bev);
}

struct http_cap *
http_cap_new(struct evhttp *http, struct event_base *base, size_t max)
{
	struct http_cap *cap;

	if ((cap = calloc(1, sizeof(*cap))) == NULL)
		return (NULL);
	cap->base = base;
	cap->max = max > 0 ? max : 1;
	if ((cap->ev = event_new(base, -1, 0, cap_settle, cap)) == NULL) {
		free(cap);
		return (NULL);
	}
	evhttp_set_bevcb(http, cap_bevcb, cap);
	return (cap);
}

void
http_cap_free(struct http_cap **capp)
{
	struct http_cap *cap = *capp;

	if (cap == NULL)
		return;
	*capp = NULL;
	event_free(cap->ev);
	free(cap->fresh);
	free(cap);
}

size_t
http_cap_open(const struct http_cap *cap)
{
	return (cap != NULL ? cap->open : 0);
}

uint64_t
http_cap_refused(const struct http_cap *cap)
{
	return (cap != NULL ? cap->refused : 0);
}
