/*
 * wakeup.h - a worker thread tells the loop "there is something for
 * you": the one wake-up both daemons use (the relay's SPF pool and spool
 * writer, syncd's pass thread).
 *
 * A non-blocking pipe whose read end is a persistent EV_READ event on
 * the loop.  wakeup_signal() writes one byte from any thread; a full
 * pipe already means "wake up", so it never blocks and never fails in a
 * way the caller must handle.  The callback runs on the loop after the
 * pipe is drained, so a signal sent while the callback runs is never
 * lost: it wakes the loop once more.  Callers keep their own queue (under
 * their own lock) and take all of it in the callback.
 *
 * Why a pipe rather than event_active() from the thread: it works
 * whether or not the program called evthread_use_pthreads() before
 * creating its event_base.
 *
 * Ownership: the struct owns the pipe and the event; wakeup_free()
 * releases them (loop thread, after every thread that signals is gone).
 */
#ifndef FERRY_WAKEUP_H
#define FERRY_WAKEUP_H

#include <stddef.h>

struct event_base;
struct wakeup;

int	wakeup_new(struct wakeup **wp, struct event_base *base,
	    void (*cb)(void *arg), void *arg, char *err, size_t errlen);
void	wakeup_signal(struct wakeup *w);
void	wakeup_free(struct wakeup **wp);

#endif
