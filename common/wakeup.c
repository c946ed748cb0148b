/*
 * wakeup.c - the thread-to-loop wake-up of wakeup.h.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "util.h"
#include "wakeup.h"

struct wakeup {
	int		 fd[2];		/* [0] read on the loop, [1] written */
	struct event	*ev;
	void		(*cb)(void *arg);
	void		*arg;
};

static void
wakeup_read(evutil_socket_t fd, short what, void *arg)
{
	struct wakeup *w = arg;
	char buf[64];

	(void)what;
	/* drain first: a byte written after this belongs to a later call */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	w->cb(w->arg);
}

int
wakeup_new(struct wakeup **wp, struct event_base *base,
    void (*cb)(void *arg), void *arg, char *err, size_t errlen)
{
	struct wakeup *w;

	*wp = NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	w->cb = cb;
	w->arg = arg;
	if (pipe2(w->fd, O_NONBLOCK | O_CLOEXEC) == -1) {
		errbuf_set(err, errlen, "pipe: %s", strerror(errno));
		free(w);
		return (-1);
	}
	if ((w->ev = event_new(base, w->fd[0], EV_READ | EV_PERSIST,
	    wakeup_read, w)) == NULL || event_add(w->ev, NULL) == -1) {
		errbuf_set(err, errlen, "cannot watch the wake-up pipe");
		*wp = w;
		wakeup_free(wp);
		return (-1);
	}
	*wp = w;
	return (0);
}

void
wakeup_signal(struct wakeup *w)
{
	ssize_t n;

	/* EAGAIN: the pipe is full, hence already readable */
	do
		n = write(w->fd[1], "", 1);
	while (n == -1 && errno == EINTR);
}

void
wakeup_free(struct wakeup **wp)
{
	struct wakeup *w = *wp;

	if (w == NULL)
		return;
	if (w->ev != NULL)
		event_free(w->ev);
	close(w->fd[0]);
	close(w->fd[1]);
	free(w);
	*wp = NULL;
}
