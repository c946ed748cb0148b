/*
 * queue.c - the delivery scheduler: what is sent where, and when.
 *
 * Model.  Every spooled message has deliveries (one per recipient and
 * destination) in its LMDB "queue" record.  In memory the queue keeps
 * only a small struct qmsg per message: its id, arrival time, flags and
 * three slots, one per destination kind (slot 0: [forward] upstream, or
 * for a DSN of ours the DSN route; slot 1: [forward] copy_to; slot 2:
 * recipients that are SRS addresses of ours, see below).  A slot holds
 * the earliest next_try of its pending deliveries and where it waits:
 *   SL_WAIT   in a binary heap ordered by next_try (one timer for all)
 *   SL_READY  in its destination's FIFO, due now, waiting for a
 *             connection (or for a paused destination to come back)
 *   SL_BUSY   a struct qwork is on it: a transaction in flight, a DSN
 *             being spooled, or results waiting to be committed
 *   SL_HELD   the message is held (QR_HELD): never scheduled
 * Records are read from LMDB when work starts and written back when it
 * ends, so memory grows with the queue by ~150 bytes per message only.
 *
 * Destinations (struct dest): upstream, copy_to, dsn_relay, or the MX of
 * one DSN recipient domain.  Each has its own connections (at most
 * [forward] concurrency; idle ones are reused for the next message and
 * closed by smtp_client after IDLE_TIMEOUT), its ready FIFO and its own
 * pause state.  A destination that cannot be reached (every endpoint
 * refused, timed out, greeted 4xx/421, or failed required TLS) is
 * PAUSED as a whole for a backoff that doubles per consecutive failure;
 * when it ends one probe connection is made, and when that succeeds
 * every message waiting for the destination is released at once.
 * Messages that come due while it is paused are deferred in LMDB once
 * (attempts + 1, the reason as last reply), not retried one by one.
 * Upstream and copy_to are independent: one failing never blocks the
 * other.
 *
 * What is sent.  The spool file's message, with the record's extra
 * header lines (queue_record.headers: our Authentication-Results) in
 * front when it goes to the upstream or to copy_to; DSN and SRS routes
 * send the message as received.  With SRS on ([forward] srs_secret,
 * relay->srs), the upstream gets MAIL FROM rewritten by srs_forward()
 * (not <>, not DSNs, not senders already in srs_domain); copy_to, the
 * old local MTA, gets the original sender.
 *
 * SRS bounces.  A recipient that is one of our SRS addresses (a bounce
 * of mail we forwarded with a rewritten sender; smtp_server accepted it
 * after srs_rcpt_check()) is not for the upstream: slot 2 delivers it to
 * the reversed original sender over the DSN route (dsn_relay, else the
 * MX of the original sender's domain), envelope sender unchanged (<>
 * for a bounce).  Such recipients reversing to different domains are
 * sent one route at a time: the slot's destination follows the pending
 * recipient due first.  One that no longer reverses (expired since it
 * was accepted) bounces with 5.1.1.
 *
 * The ledger (common/ledger.h).  The spool commit writes a pending
 * entry per recipient with a ledger key on the upstream route.  When
 * the upstream accepts it, the same LMDB transaction that marks it
 * DLV_SENT makes the entry delivered (ledger_settle()), so ferry-syncd's
 * delta pass never copies the old host's copy into the mailbox; when
 * the relay gives up on it (5xx, expiry, ferryctl delete) the pending
 * entry goes, so the next pass copies the old host's copy instead.  A
 * message held (ferryctl hold, on_expire = hold) stays pending: the
 * relay still holds it.
 *
 * Results.  Per recipient: 2xx -> DLV_SENT; 4xx or a failed connection
 * -> attempts + 1, next_try = now + retry_initial * 2^(attempts-1)
 * capped at retry_max, +-20% jitter; 5xx -> DLV_BOUNCED and an RFC 3464
 * DSN to the sender (bounce.c; never to <>, never about a DSN, and not
 * for copy_to deliveries: the sender's mail did reach the upstream).
 * Past queue_lifetime a delivery bounces with 4.4.7, or the message is
 * held when on_expire = hold.
 *
 * ORDER (no loss, at worst a duplicate): the DSN is durably spooled
 * before its deliveries are marked bounced; results are committed to
 * LMDB (one write transaction per batch of finished work, so fsyncs are
 * shared) before they are logged or acted upon; only when a record has
 * nothing pending is the spool file removed, and then the record deleted
 * (in the next batch).  A crash between any two steps re-sends or
 * re-bounces at worst.
 *
 * SECURITY: nothing here parses network input; replies reach logs and
 * DSNs already escaped by smtp_client.  Runs with the daemon's dropped
 * privileges.
 *
 * Threading: the loop thread only.  LMDB transactions are short and run
 * on the loop (reads: one record; writes: one batch).
 *
 * Files (queue_p.h has the structs and the calls between them): this one
 * is the public API (queue.h), messages by id, loading at start,
 * hold/release/delete and shutdown; queue_sched.c schedules slots;
 * queue_dest.c owns routes and destinations; queue_work.c does the work
 * on one message and commits its results.
 */

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "ledger.h"
#include "log.h"
#include "queue_p.h"
#include "relay.h"
#include "smtp_client.h"
#include "spool.h"
#include "store.h"
#include "util.h"

/* ---- messages by id ---- */

static size_t
id_hash(const struct queue *q, const char *id)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return ((size_t)(h & (q->hsize - 1)));
}

static struct qmsg *
msg_find(const struct queue *q, const char *id)
{
	struct qmsg *m;

	for (m = q->hash[id_hash(q, id)]; m != NULL; m = m->hnext)
		if (strcmp(m->id, id) == 0)
			return (m);
	return (NULL);
}

static int
msg_insert(struct queue *q, struct qmsg *m)
{
	size_t i, h;

	if (q->nmsgs + 1 > q->hsize) {
		size_t nsize = q->hsize * 2;
		struct qmsg **nh = calloc(nsize, sizeof(*nh)), *p, *next;
		size_t osize = q->hsize;

		if (nh == NULL)
			return (-1);
		q->hsize = nsize;
		for (i = 0; i < osize; i++)
			for (p = q->hash[i]; p != NULL; p = next) {
				next = p->hnext;
				h = id_hash(q, p->id);
				p->hnext = nh[h];
				nh[h] = p;
			}
		free(q->hash);
		q->hash = nh;
	}
	h = id_hash(q, m->id);
	m->hnext = q->hash[h];
	q->hash[h] = m;
	q->nmsgs++;
	return (0);
}

static void
msg_unhash(struct queue *q, struct qmsg *m)
{
	struct qmsg **pp;

	for (pp = &q->hash[id_hash(q, m->id)]; *pp != NULL;
	    pp = &(*pp)->hnext)
		if (*pp == m) {
			*pp = m->hnext;
			q->nmsgs--;
			return;
		}
}

/* queue_msg_free - forget a message (its slots are no longer scheduled) */
void
queue_msg_free(struct queue *q, struct qmsg *m)
{
	int si;

	for (si = 0; si < NSLOT; si++)
		sched_release_slot(q, m, si);
	msg_unhash(q, m);
	free(m);
}

/* ---- loading ---- */

/*
 * msg_add - track a record (decoded) in memory and, if schedule, schedule
 * its pending deliveries.  Returns 1 when the record has nothing pending
 * (the caller removes it), 0 when tracked, -1 on error.
 */
static int
msg_add(struct queue *q, const struct queue_record *rec, int schedule)
{
	struct qmsg *m;
	const char *srs_first = NULL;
	size_t i;
	int si, any = 0, seen[NSLOT] = { 0 };

	if (queue_record_done(rec))
		return (1);
	if (msg_find(q, rec->id) != NULL)
		return (0);
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return (-1);
	memcpy(m->id, rec->id, sizeof(m->id));
	m->arrived = rec->arrived;
	m->held = (rec->flags & QR_HELD) != 0;
	m->dsn = (rec->flags & QR_DSN) != 0;
	for (si = 0; si < NSLOT; si++) {
		m->slot[si].si = (uint8_t)si;
		m->slot[si].next_try = INT64_MAX;
	}
	for (i = 0; i < rec->ndlv; i++) {
		const struct delivery *d = &rec->dlv[i];
		struct qslot *s;
		int sl;

		if (d->state != DLV_PENDING)
			continue;
		sl = dest_slot(q, d);
		s = &m->slot[sl];
		if (!seen[sl]) {
			seen[sl] = 1;
			if (sl == SLOT_COPY)
				s->dest = q->copy;
			else if (sl == SLOT_SRS)
				s->dest = NULL;		/* below */
			else if (m->dsn)
				s->dest = dest_mx(q, d->rcpt);
			else
				s->dest = q->upstream;
			if (s->dest != NULL)
				s->dest->refs++;
		}
		if (d->next_try < s->next_try) {
			s->next_try = d->next_try;
			if (sl == SLOT_SRS)
				srs_first = d->rcpt;
		}
		any = 1;
	}
	/* The SRS slot follows the recipient due first. */
	if (srs_first != NULL) {
		m->slot[SLOT_SRS].dest = dest_srs(q, srs_first);
		if (m->slot[SLOT_SRS].dest != NULL)
			m->slot[SLOT_SRS].dest->refs++;
	}
	if (!any) {
		free(m);
		return (1);
	}
	if (msg_insert(q, m) == -1) {
		for (si = 0; si < NSLOT; si++)
			if (m->slot[si].dest != NULL)
				m->slot[si].dest->refs--;
		free(m);
		return (-1);
	}
	if (schedule)
		for (si = 0; si < NSLOT; si++)
			if (m->slot[si].next_try != INT64_MAX)
				sched_slot(q, &m->slot[si]);
	return (0);
}

struct load_arg {
	struct queue	*q;
	char		(*done)[QUEUE_ID_LEN + 1];	/* nothing pending */
	size_t		 ndone, cap;
	size_t		 nheld;
};

/* load_one - one record into memory (no scheduling inside the txn) */
static int
load_one(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct load_arg *la = arg;
	struct queue_record rec;
	char err[128];
	int rc;

	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1) {
		log_warnx("%.*s: damaged queue record: %s", (int)(klen < 64 ?
		    klen : 64), (const char *)key, err);
		return (0);
	}
	rc = msg_add(la->q, &rec, 0);
	if (rc == 1) {
		if (la->ndone == la->cap) {
			size_t ncap = la->cap ? la->cap * 2 : 64;
			void *n = reallocarray(la->done, ncap,
			    sizeof(*la->done));

			if (n == NULL) {
				queue_record_clear(&rec);
				return (-1);
			}
			la->done = n;
			la->cap = ncap;
		}
		memcpy(la->done[la->ndone++], rec.id, QUEUE_ID_LEN + 1);
	} else if (rc == 0 && (rec.flags & QR_HELD))
		la->nheld++;
	queue_record_clear(&rec);
	return (rc == -1 ? -1 : 0);
}

static int
txn_load_all(struct store_txn *tx, void *arg)
{
	struct load_arg *la = arg;

	/* msg_add() skips ids it knows, so a second run adds nothing. */
	la->ndone = 0;
	la->nheld = 0;
	return (store_foreach(tx, STORE_DB_QUEUE, NULL, 0, load_one, la));
}

/*
 * queue_load - every record into memory at start: one struct qmsg each
 * (records are decoded one at a time, never all at once), then the
 * schedule, then the removal of records that were finished when the
 * relay stopped.
 */
static int
queue_load(struct queue *q, char *err, size_t errlen)
{
	struct load_arg la;
	struct qmsg *m;
	size_t i;
	int si;

	memset(&la, 0, sizeof(la));
	la.q = q;
	if (store_txn_run(q->relay->store, 1, txn_load_all, &la, err,
	    errlen) != 0) {
		free(la.done);
		return (-1);
	}
	/* Everything goes into the heap, due or not: the timer takes the
	 * due ones from the loop, once start-up is over. */
	for (i = 0; i < q->hsize; i++)
		for (m = q->hash[i]; m != NULL; m = m->hnext)
			for (si = 0; si < NSLOT; si++) {
				struct qslot *sl = &m->slot[si];

				if (sl->state != SL_NONE ||
				    sl->next_try == INT64_MAX)
					continue;
				if (m->held)
					sl->state = SL_HELD;
				else if (sched_heap_push(q, sl) == -1) {
					errbuf_set(err, errlen,
					    "out of memory");
					free(la.done);
					return (-1);
				}
			}
	for (i = 0; i < la.ndone; i++) {
		/* Finished before a crash or stop: finish removing. */
		if (spool_remove(q->relay->spool, la.done[i]) == 0) {
			log_info("%s: removed", la.done[i]);
			work_dels_add(q, la.done[i]);
		}
	}
	log_info("queue: %zu messages queued (%zu held), %zu finished",
	    q->nmsgs, la.nheld, la.ndone);
	free(la.done);
	return (0);
}

/* ---- shutting down ---- */

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	void (*done)(void *) = q->done;

	(void)fd;
	(void)what;
	q->done = NULL;
	if (q->grace_ev != NULL)
		event_del(q->grace_ev);
	if (done != NULL)
		done(q->done_arg);
}

/* queue_maybe_done - shutting down, nothing in flight: report (on the loop) */
void
queue_maybe_done(struct queue *q)
{
	if (!q->stopping || q->done == NULL)
		return;
	if (q->ntx > 0 || q->nops > 0 || !TAILQ_EMPTY(&q->batch) ||
	    q->mark.npending > 0)
		return;
	event_active(q->done_ev, EV_TIMEOUT, 0);
}

/* ---- public ---- */

int
queue_new(struct queue **queue_r, struct relay *relay, char *err,
    size_t errlen)
{
	struct queue *q;
	struct config *cfg = relay->cfg;

	*queue_r = NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	q->relay = relay;
	q->cfg = cfg;
	TAILQ_INIT(&q->mx);
	TAILQ_INIT(&q->batch);
	q->hsize = 1024;
	if ((q->hash = calloc(q->hsize, sizeof(*q->hash))) == NULL)
		goto nomem;
	q->timer = evtimer_new(relay->base, sched_timer_cb, q);
	q->flush_ev = event_new(relay->base, -1, 0, work_flush_cb, q);
	q->note_ev = event_new(relay->base, -1, 0, dest_note_cb, q);
	q->done_ev = event_new(relay->base, -1, 0, done_cb, q);
	if (q->timer == NULL || q->flush_ev == NULL || q->note_ev == NULL ||
	    q->done_ev == NULL)
		goto nomem;
	q->cli = smtp_client_ctx_new(relay->base, cfg->forward.helo_name,
	    cfg->forward.ca_file, err, errlen);
	if (q->cli == NULL)
		goto fail;
	q->srs = relay->srs;
	if (mark_init(q, err, errlen) == -1)
		goto fail;
	if (getenv(QUEUE_TEST_CRASH_ENV) != NULL)
		q->test_crash_after = strtoul(getenv(QUEUE_TEST_CRASH_ENV),
		    NULL, 10);
	if (relay->resolver != NULL) {
		q->dns = relay->resolver;
		smtp_client_ctx_set_resolver(q->cli, q->dns);
	}
	if (cfg->forward.upstream.count > 0 &&
	    (q->upstream = dest_new(q, DK_UPSTREAM, "upstream",
	    &cfg->forward.upstream, cfg->forward.tls)) == NULL)
		goto nomem;
	if (cfg->forward.copy_to.count > 0 &&
	    (q->copy = dest_new(q, DK_COPY, "copy_to", &cfg->forward.copy_to,
	    dest_tls_soft(cfg->forward.tls))) == NULL)
		goto nomem;
	if (cfg->forward.dsn_relay.count > 0 &&
	    (q->dsn_relay = dest_new(q, DK_DSN_RELAY, "dsn_relay",
	    &cfg->forward.dsn_relay, dest_tls_soft(cfg->forward.tls))) == NULL)
		goto nomem;
	if (queue_load(q, err, errlen) == -1)
		goto fail;
	*queue_r = q;
	return (0);
nomem:
	errbuf_set(err, errlen, "out of memory");
fail:
	queue_free(&q);
	return (-1);
}

/* queue_enqueued - a message was just committed: schedule it */
void
queue_enqueued(struct queue *q, const char *id)
{
	struct qwork tmp;
	struct qmsg fake;
	char err[256];
	int rc;

	if (q == NULL || msg_find(q, id) != NULL)
		return;
	memset(&tmp, 0, sizeof(tmp));
	memset(&fake, 0, sizeof(fake));
	snprintf(fake.id, sizeof(fake.id), "%s", id);
	tmp.m = &fake;
	rc = store_txn_run(q->relay->store, 1, work_txn_load, &tmp, err,
	    sizeof(err));
	if (rc != 0) {
		log_warnx("%s: cannot schedule: %s", id, rc == 1 ?
		    "no queue record" : err);
		queue_record_clear(&tmp.rec);
		return;
	}
	if (msg_add(q, &tmp.rec, 1) == -1)
		log_warnx("%s: cannot schedule: out of memory (it is "
		    "delivered after a restart)", id);
	queue_record_clear(&tmp.rec);
}

/*
 * queue_retry - try now: one message (and unpause its destinations), or
 * with id NULL or "all" every message that is not held (and unpause
 * every destination).
 */
int
queue_retry(struct queue *q, const char *id, char *err, size_t errlen)
{
	struct qmsg *m;
	int64_t now = now_s();
	size_t i;
	int si;

	if (id == NULL || strcmp(id, "all") == 0) {
		/* min(next_try, now) keeps the heap ordered. */
		for (i = 0; i < q->nheap; i++)
			if (q->heap[i]->next_try > now)
				q->heap[i]->next_try = now;
		if (q->nheap > 0)
			event_active(q->timer, EV_TIMEOUT, 0);
		log_info("queue: retry of every message requested");
		dest_resume_all(q);
		return (0);
	}
	if ((m = msg_find(q, id)) == NULL || m->deleted) {
		errbuf_set(err, errlen, "unknown id");
		return (-1);
	}
	if (m->held) {
		errbuf_set(err, errlen, "held: release it first");
		return (-1);
	}
	log_info("%s: retry requested", m->id);
	for (si = 0; si < NSLOT; si++) {
		struct qslot *s = &m->slot[si];

		if (s->dest != NULL && dest_paused(s->dest)) {
			dest_resume(s->dest);
			dest_kick(s->dest);
		}
		if (s->state == SL_WAIT)
			sched_soon(q, s, now);
	}
	return (0);
}

/* queue_set_held - write QR_HELD (set or cleared) into the record */
struct held_arg {
	const char	*id;
	int		 hold;
};

static int
txn_held(struct store_txn *tx, void *arg)
{
	struct held_arg *ha = arg;
	struct queue_record rec;
	const void *val;
	size_t vlen, blen;
	unsigned char *buf;
	char err[128];
	int rc;

	rc = store_get(tx, STORE_DB_QUEUE, ha->id, QUEUE_ID_LEN, &val, &vlen);
	if (rc != 0)
		return (rc == STORE_NOTFOUND ? 1 : -1);
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1) {
		store_txn_seterr(tx, "%s", err);
		return (2);
	}
	if (ha->hold)
		rec.flags |= QR_HELD;
	else
		rec.flags &= ~(uint32_t)QR_HELD;
	rc = queue_record_encode(&rec, &buf, &blen);
	queue_record_clear(&rec);
	if (rc == -1)
		return (-1);
	rc = store_put(tx, STORE_DB_QUEUE, ha->id, QUEUE_ID_LEN, buf, blen, 0);
	free(buf);
	return (rc == 0 ? 0 : -1);
}

int
queue_set_held(struct queue *q, const char *id, int hold, char *err,
    size_t errlen)
{
	struct held_arg ha = { id, hold };
	int rc;

	rc = store_txn_run(q->relay->store, 0, txn_held, &ha, err, errlen);
	/* The store commits without its meta sync (main.c): an admin's
	 * decision must survive a power cut all the same. */
	if (rc == 0 && store_sync(q->relay->store, err, errlen) == -1)
		return (-1);
	if (rc == 1)
		errbuf_set(err, errlen, "unknown id");
	return (rc == 0 ? 0 : -1);
}

int
queue_hold(struct queue *q, const char *id, char *err, size_t errlen)
{
	struct qmsg *m;

	if ((m = msg_find(q, id)) == NULL || m->deleted) {
		errbuf_set(err, errlen, "unknown id");
		return (-1);
	}
	if (queue_set_held(q, id, 1, err, errlen) == -1)
		return (-1);
	log_info("%s: held by admin", id);
	sched_hold(q, m);
	return (0);
}

int
queue_release(struct queue *q, const char *id, char *err, size_t errlen)
{
	struct qmsg *m;
	int64_t now = now_s();
	int si;

	if ((m = msg_find(q, id)) == NULL || m->deleted) {
		errbuf_set(err, errlen, "unknown id");
		return (-1);
	}
	if (queue_set_held(q, id, 0, err, errlen) == -1)
		return (-1);
	log_info("%s: released by admin", id);
	m->held = 0;
	/* Held at expiry and released: the admin wants it tried again. */
	if (now >= sched_expiry(q, m->arrived))
		m->no_expire = 1;
	for (si = 0; si < NSLOT; si++) {
		struct qslot *s = &m->slot[si];

		if (s->state != SL_HELD)
			continue;
		s->state = SL_NONE;
		sched_soon(q, s, now);
	}
	return (0);
}

/*
 * txn_delete - the record goes, and with it the pending ledger entries
 * it wrote: the relay gives up on those recipients, so the next delta
 * pass copies the old host's copy (common/ledger.h).
 */
struct delete_arg {
	struct queue	*q;
	const char	*id;
};

static int
txn_delete(struct store_txn *tx, void *arg)
{
	struct delete_arg *da = arg;
	struct queue_record rec;
	const void *val;
	size_t vlen, i;
	char err[128];
	int rc;

	rc = store_get(tx, STORE_DB_QUEUE, da->id, QUEUE_ID_LEN, &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (1);
	if (rc != 0)
		return (-1);
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == 0) {
		for (i = 0; i < rec.ndlv; i++)
			if (rec.dlv[i].state == DLV_PENDING &&
			    queue_ledger_tracked(da->q->relay, &rec,
			    &rec.dlv[i]) && ledger_del(tx,
			    rec.dlv[i].ledger_key, da->id) == -1) {
				queue_record_clear(&rec);
				return (-1);
			}
		queue_record_clear(&rec);
	}
	rc = store_del(tx, STORE_DB_QUEUE, da->id, QUEUE_ID_LEN);
	return (rc == STORE_NOTFOUND ? 1 : rc);
}

int
queue_delete(struct queue *q, const char *id, char *err, size_t errlen)
{
	struct qmsg *m;
	struct delete_arg da;
	char idbuf[QUEUE_ID_LEN + 1];
	int rc, si;

	if ((m = msg_find(q, id)) == NULL || m->deleted) {
		errbuf_set(err, errlen, "unknown id");
		return (-1);
	}
	snprintf(idbuf, sizeof(idbuf), "%s", m->id);
	da.q = q;
	da.id = idbuf;
	rc = store_txn_run(q->relay->store, 0, txn_delete, &da, err, errlen);
	if (rc < 0)
		return (-1);
	/* Durable before the file goes (the store skips its meta sync:
	 * main.c), so a power cut cannot bring the record back alone. */
	if (store_sync(q->relay->store, err, errlen) == -1)
		return (-1);
	/* The record is gone: nothing can send it after a restart.  A
	 * transaction in flight finishes (its file stays readable through
	 * the open descriptor) and its results are dropped. */
	if (spool_remove(q->relay->spool, idbuf) == -1)
		log_warn("%s: cannot remove the spool file", idbuf);
	log_info("%s: deleted by admin", idbuf);
	m->deleted = 1;
	for (si = 0; si < NSLOT; si++)
		if (m->slot[si].state != SL_BUSY)
			sched_release_slot(q, m, si);
	if (m->busy == 0)
		queue_msg_free(q, m);
	return (0);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	struct dest *d;

	(void)fd;
	(void)what;
	dest_abort(q, q->upstream);
	dest_abort(q, q->copy);
	dest_abort(q, q->dsn_relay);
	TAILQ_FOREACH(d, &q->mx, entry)
		dest_abort(q, d);
	queue_maybe_done(q);
}

/*
 * queue_shutdown - stop scheduling, let transactions in flight finish
 * (at most SHUTDOWN_GRACE seconds, then abort them), commit what
 * finished, then call done(arg) from the loop.
 */
void
queue_shutdown(struct queue *q, void (*done)(void *), void *arg)
{
	struct dest *d;
	struct timeval tv = { SHUTDOWN_GRACE, 0 };

	q->stopping = 1;
	q->done = done;
	q->done_arg = arg;
	event_del(q->timer);
	dest_close_idle(q->upstream);
	dest_close_idle(q->copy);
	dest_close_idle(q->dsn_relay);
	TAILQ_FOREACH(d, &q->mx, entry)
		dest_close_idle(d);
	if ((q->grace_ev = evtimer_new(q->relay->base, grace_cb, q)) != NULL)
		event_add(q->grace_ev, &tv);
	queue_maybe_done(q);
}

void
queue_free(struct queue **qp)
{
	struct queue *q;
	struct qwork *w;
	struct dest *d;
	size_t i;

	if (qp == NULL || (q = *qp) == NULL)
		return;
	*qp = NULL;
	q->stopping = 1;
	q->done = NULL;
	/* Commit what finished (and pending record deletions). */
	if (q->relay->store != NULL && q->hash != NULL)
		work_flush(q);
	while ((w = TAILQ_FIRST(&q->batch)) != NULL) {
		TAILQ_REMOVE(&q->batch, w, entry);
		work_free(w);
	}
	mark_free(q);
	dest_free(q->upstream);
	dest_free(q->copy);
	dest_free(q->dsn_relay);
	while ((d = TAILQ_FIRST(&q->mx)) != NULL) {
		TAILQ_REMOVE(&q->mx, d, entry);
		dest_free(d);
	}
	smtp_client_ctx_free(&q->cli);
	if (q->hash != NULL)
		for (i = 0; i < q->hsize; i++)
			while (q->hash[i] != NULL) {
				struct qmsg *m = q->hash[i];

				q->hash[i] = m->hnext;
				free(m);
			}
	free(q->hash);
	free(q->heap);
	free(q->dels);
	if (q->timer != NULL)
		event_free(q->timer);
	if (q->flush_ev != NULL)
		event_free(q->flush_ev);
	if (q->note_ev != NULL)
		event_free(q->note_ev);
	if (q->done_ev != NULL)
		event_free(q->done_ev);
	if (q->grace_ev != NULL)
		event_free(q->grace_ev);
	free(q);
}
