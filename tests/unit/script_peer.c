/*
 * script_peer.c - a scripted fake server on a loopback socket (see
 * script_peer.h).  Test code: failures are recorded, never fatal, so
 * the test can assert on what the client made of them.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "script_peer.h"

struct script_peer {
	struct event_base	*base;
	evutil_socket_t		 lfd;
	struct event		*lev;
	struct bufferevent	*bev;
	struct event		*timer;
	const struct peer_step	*steps;
	size_t			 nsteps, i;
	int			 matched;	/* steps[i].expect seen */
	int			 delayed;	/* steps[i]'s delay is over */
	int			 port;
	size_t			 extra;
	int			 client_closed;
	int			 closing;	/* half-close when written */
	char			 error[512];
};

static void	peer_run(struct script_peer *p);

static void
peer_write_cb(struct bufferevent *b, void *arg)
{
	struct script_peer *p = arg;

	if (p->closing && evbuffer_get_length(bufferevent_get_output(b)) == 0)
		shutdown(bufferevent_getfd(b), SHUT_WR);
}

static void
peer_fail(struct script_peer *p, const char *what, const char *line)
{
	if (p->error[0] == '\0')
		snprintf(p->error, sizeof(p->error), "step %zu: %s%s%s%s",
		    p->i, what, line ? " \"" : "", line ? line : "",
		    line ? "\"" : "");
	if (p->bev != NULL) {
		bufferevent_free(p->bev);
		p->bev = NULL;
	}
}

/* line_matches - one client line against a step's expectation */
static int
line_matches(const char *expect, const char *line)
{
	size_t n = strlen(expect);

	if (n > 0 && expect[n - 1] == '*')
		return (strncmp(line, expect, n - 1) == 0);
	return (strcmp(line, expect) == 0);
}

/* peer_expect - 1 when the step's line has arrived, 0 to wait, -1 bad */
static int
peer_expect(struct script_peer *p, const struct peer_step *s)
{
	struct evbuffer *in = bufferevent_get_input(p->bev);
	char *line;
	size_t len;
	int skip = s->expect[0] == '~';

	for (;;) {
		if ((line = evbuffer_readln(in, &len,
		    EVBUFFER_EOL_CRLF_STRICT)) == NULL)
			return (0);
		if (skip) {
			int eq = strcmp(line, s->expect + 1) == 0;

			free(line);
			if (eq)
				return (1);
			continue;
		}
		if (!line_matches(s->expect, line)) {
			peer_fail(p, "unexpected line", line);
			free(line);
			return (-1);
		}
		free(line);
		if (s->single_line && evbuffer_get_length(in) > 0) {
			peer_fail(p, "more than one line at once", NULL);
			return (-1);
		}
		return (1);
	}
}

static void
peer_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct script_peer *p = arg;

	(void)fd;
	(void)what;
	p->delayed = 1;
	peer_run(p);
}

/* peer_run - go through the script as far as the input allows */
static void
peer_run(struct script_peer *p)
{
	const struct peer_step *s;
	int r;

	while (p->bev != NULL && p->i < p->nsteps) {
		s = &p->steps[p->i];
		if (s->expect != NULL && !p->matched) {
			if ((r = peer_expect(p, s)) <= 0)
				return;
			p->matched = 1;
		}
		if (s->delay_ms > 0 && !p->delayed) {
			struct timeval tv = { 0, (long)s->delay_ms * 1000 };

			evtimer_add(p->timer, &tv);
			return;
		}
		if (s->send != NULL)
			bufferevent_write(p->bev, s->send, strlen(s->send));
		p->i++;
		p->matched = p->delayed = 0;
		if (s->close) {
			/* half-close once the output is written: the client
			 * reads all we sent, then sees EOF */
			p->closing = 1;
			if (s->send == NULL)
				peer_write_cb(p->bev, p);
			return;
		}
	}
	if (p->bev != NULL && p->i == p->nsteps) {
		struct evbuffer *in = bufferevent_get_input(p->bev);

		p->extra += evbuffer_get_length(in);
		evbuffer_drain(in, evbuffer_get_length(in));
	}
}

static void
peer_read_cb(struct bufferevent *b, void *arg)
{
	(void)b;
	peer_run(arg);
}

static void
peer_event_cb(struct bufferevent *b, short what, void *arg)
{
	struct script_peer *p = arg;

	(void)b;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		p->client_closed = 1;
		peer_run(p);
		if (p->bev != NULL) {
			bufferevent_free(p->bev);
			p->bev = NULL;
		}
	}
}

static void
peer_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct script_peer *p = arg;
	evutil_socket_t fd;

	(void)what;
	if ((fd = accept(lfd, NULL, NULL)) == -1)
		return;
	if (p->bev != NULL || p->i > 0) {	/* one connection only */
		close(fd);
		return;
	}
	evutil_make_socket_nonblocking(fd);
	p->bev = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (p->bev == NULL) {
		close(fd);
		return;
	}
	bufferevent_setcb(p->bev, peer_read_cb, peer_write_cb, peer_event_cb,
	    p);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
	peer_run(p);
}

struct script_peer *
peer_new(struct event_base *base, const struct peer_step *steps,
    size_t nsteps)
{
	struct script_peer *p;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return (NULL);
	p->base = base;
	p->steps = steps;
	p->nsteps = nsteps;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((p->lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    bind(p->lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(p->lfd, 4) == -1 ||
	    getsockname(p->lfd, (struct sockaddr *)&sin, &sl) == -1) {
		if (p->lfd != -1)
			close(p->lfd);
		free(p);
		return (NULL);
	}
	p->port = ntohs(sin.sin_port);
	evutil_make_socket_nonblocking(p->lfd);
	p->lev = event_new(base, p->lfd, EV_READ | EV_PERSIST, peer_accept_cb,
	    p);
	p->timer = evtimer_new(base, peer_timer_cb, p);
	if (p->lev == NULL || p->timer == NULL) {
		peer_free(&p);
		return (NULL);
	}
	event_add(p->lev, NULL);
	return (p);
}

int
peer_port(const struct script_peer *p)
{
	return (p->port);
}

const char *
peer_error(const struct script_peer *p)
{
	return (p->error);
}

size_t
peer_steps_done(const struct script_peer *p)
{
	return (p->i);
}

size_t
peer_extra(const struct script_peer *p)
{
	return (p->extra);
}

int
peer_client_closed(const struct script_peer *p)
{
	return (p->client_closed);
}

void
peer_free(struct script_peer **pp)
{
	struct script_peer *p;

	if (pp == NULL || (p = *pp) == NULL)
		return;
	*pp = NULL;
	if (p->bev != NULL)
		bufferevent_free(p->bev);
	if (p->lev != NULL)
		event_free(p->lev);
	if (p->timer != NULL)
		event_free(p->timer);
	close(p->lfd);
	free(p);
}
