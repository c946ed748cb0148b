/*
 * queue_sched.c - the scheduler's clock: when each slot of each message
 * is tried (queue.c's model).  The retry delay (retry_initial doubling to
 * retry_max, +-20% jitter, DESIGN.md §5) and the queue lifetime; a binary
 * heap of SL_WAIT slots ordered by next_try with one timer for all of
 * them; and where a slot goes when it comes due: its destination's ready
 * FIFO, a synthetic result (expired, no route), or held.
 *
 * A slot changes place only here (sched_slot(), sched_slot_unlink(),
 * sched_release_slot(), sched_hold()); the destinations take slots from
 * their FIFO in queue_dest.c, the work on them is queue_work.c's.
 *
 * Loop thread only.
 */

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"
#include "queue_p.h"
#include "relay.h"
#include "util.h"

/*
 * backoff - the delay before try n+1 after n failures: retry_initial *
 * 2^(n-1), capped at retry_max, then +-20% jitter so a crowd of messages
 * deferred together does not come back together.
 */
int64_t
sched_backoff(const struct queue *q, unsigned n)
{
	int64_t d = q->cfg->forward.retry_initial, max = q->cfg->forward.retry_max;
	int64_t span;

	if (d < 1)
		d = 1;
	while (n-- > 1 && d < max)
		d *= 2;
	if (d > max)
		d = max;
	span = d * 2 / 5;
	if (span > 0)
		d = d - d / 5 + (int64_t)arc4random_uniform(
		    (uint32_t)(span < UINT32_MAX ? span + 1 : UINT32_MAX));
	return (d < 1 ? 1 : d);
}

/* sched_expiry - when a message's deliveries give up */
int64_t
sched_expiry(const struct queue *q, int64_t arrived)
{
	return (arrived + q->cfg->forward.queue_lifetime);
}

/* ---- the heap of waiting slots ---- */

static void
heap_set(struct queue *q, size_t i, struct qslot *s)
{
	q->heap[i] = s;
	s->heap_idx = (uint32_t)i;
}

static void
heap_up(struct queue *q, size_t i)
{
	struct qslot *s = q->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (q->heap[parent]->next_try <= s->next_try)
			break;
		heap_set(q, i, q->heap[parent]);
		i = parent;
	}
	heap_set(q, i, s);
}

static void
heap_down(struct queue *q, size_t i)
{
	struct qslot *s = q->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		int64_t best = s->next_try;

		if (l < q->nheap && q->heap[l]->next_try < best)
			m = l, best = q->heap[l]->next_try;
		if (r < q->nheap && q->heap[r]->next_try < best)
			m = r;
		if (m == i)
			break;
		heap_set(q, i, q->heap[m]);
		i = m;
	}
	heap_set(q, i, s);
}

static void
timer_arm(struct queue *q)
{
	struct timeval tv = { 0, 0 };
	int64_t d;

	if (q->nheap == 0 || q->stopping) {
		event_del(q->timer);
		return;
	}
	d = q->heap[0]->next_try - now_s();
	tv.tv_sec = d > 0 ? (time_t)d : 0;
	event_add(q->timer, &tv);
}

int
sched_heap_push(struct queue *q, struct qslot *s)
{
	if (q->nheap == q->heapcap) {
		size_t ncap = q->heapcap ? q->heapcap * 2 : 256;
		struct qslot **nh = reallocarray(q->heap, ncap, sizeof(*nh));

		if (nh == NULL)
			return (-1);
		q->heap = nh;
		q->heapcap = ncap;
	}
	s->state = SL_WAIT;
	heap_set(q, q->nheap++, s);
	heap_up(q, q->nheap - 1);
	if (s->heap_idx == 0)
		timer_arm(q);
	return (0);
}

static void
heap_del(struct queue *q, struct qslot *s)
{
	size_t i = s->heap_idx;
	struct qslot *last;

	last = q->heap[--q->nheap];
	if (i < q->nheap) {
		heap_set(q, i, last);
		heap_down(q, i);
		heap_up(q, last->heap_idx);
	}
	s->state = SL_NONE;
	if (i == 0)
		timer_arm(q);
}

/* ---- slots ---- */

/* sched_slot_unlink - take a slot out of the heap or a ready FIFO */
void
sched_slot_unlink(struct queue *q, struct qslot *s)
{
	if (s->state == SL_WAIT)
		heap_del(q, s);
	else if (s->state == SL_READY) {
		TAILQ_REMOVE(&s->dest->readyq, s, ready);
		s->dest->nready--;
		s->state = SL_NONE;
	}
}

/* sched_slot_set_dest - point an unscheduled slot at d (NULL: no route) */
void
sched_slot_set_dest(struct qslot *s, struct dest *d)
{
	if (s->dest == d)
		return;
	if (s->dest != NULL)
		s->dest->refs--;
	s->dest = d;
	if (d != NULL)
		d->refs++;
}

/* sched_release_slot - the slot has nothing pending any more */
void
sched_release_slot(struct queue *q, struct qmsg *m, int si)
{
	struct qslot *s = &m->slot[si];

	sched_slot_unlink(q, s);
	s->state = SL_NONE;
	if (s->dest != NULL) {
		s->dest->refs--;
		s->dest = NULL;
	}
}

/* sched_hold - QR_HELD is committed: stop scheduling the message */
void
sched_hold(struct queue *q, struct qmsg *m)
{
	int si;

	m->held = 1;
	for (si = 0; si < NSLOT; si++) {
		struct qslot *s = &m->slot[si];

		if (s->state == SL_WAIT || s->state == SL_READY) {
			sched_slot_unlink(q, s);
			s->state = SL_HELD;
		}
	}
}

/* sched_expire - the message outlived queue_lifetime */
void
sched_expire(struct queue *q, struct qslot *s)
{
	struct qmsg *m = slot_msg(s);
	char err[256];

	if (q->cfg->forward.on_expire == CFG_EXPIRE_HOLD) {
		sched_slot_unlink(q, s);
		if (queue_set_held(q, m->id, 1, err, sizeof(err)) == -1) {
			log_warnx("%s: cannot hold: %s", m->id, err);
			s->next_try = now_s() + sched_backoff(q, 1);
			sched_slot(q, s);
			return;
		}
		log_info("%s: held: queue lifetime exceeded", m->id);
		sched_hold(q, m);
		return;
	}
	work_fail_slot(q, s, 554, "4.4.7", "delivery time expired", 1);
}

/* slot_ready - due now: into the destination's FIFO */
static void
slot_ready(struct queue *q, struct qslot *s)
{
	struct dest *d = s->dest;

	s->state = SL_READY;
	s->noted = 0;
	TAILQ_INSERT_TAIL(&d->readyq, s, ready);
	d->nready++;
	if (dest_paused(d)) {
		/* Deferred in LMDB once, then it waits for the probe. */
		d->need_note = 1;
		event_active(q->note_ev, EV_TIMEOUT, 0);
	}
	dest_kick(d);	/* paused: probes when the pause is over */
}

/* slot_due - a slot's time has come */
static void
slot_due(struct queue *q, struct qslot *s, int64_t now)
{
	struct qmsg *m = slot_msg(s);

	if (!m->no_expire && now >= sched_expiry(q, m->arrived)) {
		sched_expire(q, s);
		return;
	}
	if (s->dest == NULL && s->si == SLOT_SRS) {
		work_fail_slot(q, s, 550, "5.1.1", "550 5.1.1 the SRS address "
		    "has expired or does not reverse to a routable address", 0);
		return;
	}
	if (s->dest == NULL) {
		work_fail_slot(q, s, 554, "5.4.4", s->si == SLOT_COPY ?
		    "554 5.4.4 copy_to is not configured" :
		    "554 5.4.4 no route to the recipient's domain", 0);
		return;
	}
	slot_ready(q, s);
}

/* sched_slot - put a slot with pending deliveries where it belongs */
void
sched_slot(struct queue *q, struct qslot *s)
{
	struct qmsg *m = slot_msg(s);
	int64_t now = now_s();

	if (m->deleted)
		return;
	if (m->held) {
		s->state = SL_HELD;
		return;
	}
	if (!m->no_expire && s->next_try > sched_expiry(q, m->arrived))
		s->next_try = sched_expiry(q, m->arrived);
	if (s->next_try <= now || q->stopping) {
		if (q->stopping) {
			s->state = SL_NONE;	/* it stays pending in LMDB */
			return;
		}
		slot_due(q, s, now);
		return;
	}
	if (sched_heap_push(q, s) == -1) {
		/* No memory for the heap: try it now rather than never. */
		slot_due(q, s, now);
	}
}

/*
 * sched_soon - due now, but taken from the heap by the timer: callers
 * that hold pointers to several slots never see one freed under them.
 */
void
sched_soon(struct queue *q, struct qslot *s, int64_t now)
{
	if (s->state == SL_WAIT)
		heap_del(q, s);
	s->next_try = now;
	if (sched_heap_push(q, s) == 0)
		event_active(q->timer, EV_TIMEOUT, 0);
}

void
sched_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	int64_t now = now_s();
	struct qslot *s;

	(void)fd;
	(void)what;
	while (q->nheap > 0 && q->heap[0]->next_try <= now && !q->stopping) {
		s = q->heap[0];
		heap_del(q, s);
		slot_due(q, s, now);
	}
	dest_mx_gc(q);
	timer_arm(q);
}
