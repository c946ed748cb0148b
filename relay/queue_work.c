/*
 * queue_work.c - work on one slot of one message, and committing what
 * it did (queue.c's model and ORDER).
 *
 * A struct qwork loads the message's record, takes the slot's pending
 * deliveries (at most SMTP_TX_RCPT_MAX), and either runs one SMTP
 * transaction on an idle connection of the slot's destination or gets a
 * synthetic result (expired, no route, unreadable spool file).  Results
 * are classified (2xx sent, 4xx deferred, 5xx bounced); a bounce spools
 * the DSN first (bounce.c), and only then does the work join the batch.
 *
 * Committing: one LMDB write transaction per batch applies every
 * finished work's results to its record (attempts, backoff, last reply)
 * and settles the ledger in the same transaction (common/ledger.h: a
 * 250 from the upstream makes the entry delivered, a bounce removes the
 * pending one), and deletes records finished in the batch before.  Only
 * after the commit are results logged, counted and acted upon
 * (reschedule, or remove the spool file of a finished message).
 *
 * Loop thread only.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bounce.h"
#include "ledger.h"
#include "addr_stats.h"
#include "log.h"
#include "queue_p.h"
#include "relay.h"
#include "smtp_client.h"
#include "spool.h"
#include "srs.h"
#include "store.h"
#include "util.h"

static struct qwork *	work_new(struct queue *q, struct qmsg *m, int si,
		    enum work_none *why_r);
/*
 * Results wait up to WORK_FLUSH_DELAY_MS for others, so that one LMDB
 * commit (one flush of the disk, on the loop) serves every delivery
 * finished meanwhile instead of one each: a message relayed one by one
 * would otherwise pay a flush per message on the loop, where the SMTP
 * sessions wait.  Nothing waits on it but the record: the recipient has
 * the message, and a crash before the commit means it is sent again (a
 * duplicate, as for any crash during a delivery).  Records of finished
 * messages (work_dels_add) wait longer: their files are already gone.
 */
#define WORK_FLUSH_DELAY_MS	20
#define WORK_DELS_DELAY_MS	200
#define WORK_DELS_MAX		256	/* ... or until this many wait */

static void	work_flush_soon(struct queue *q, int ms);
static void	tx_done(struct smtp_client *c, struct smtp_tx *tx, void *arg);
static void	work_finish(struct qwork *w);
static void	msg_done(struct queue *q, struct qmsg *m);

/* ---- one slot of one message ---- */

int
work_txn_load(struct store_txn *tx, void *arg)
{
	struct qwork *w = arg;
	const void *val;
	size_t vlen;
	char err[128];
	int rc;

	queue_record_clear(&w->rec);
	rc = store_get(tx, STORE_DB_QUEUE, w->m->id, QUEUE_ID_LEN, &val, &vlen);
	if (rc != 0)
		return (rc == STORE_NOTFOUND ? 1 : -1);
	if (queue_record_decode(val, vlen, &w->rec, err, sizeof(err)) == -1) {
		store_txn_seterr(tx, "%s", err);
		return (2);
	}
	return (0);
}

void
work_free(struct qwork *w)
{
	size_t i;

	if (w == NULL)
		return;
	if (w->mark_wait) {
		/* Freed before its mark was reported (shutdown): forget
		 * it; a mark committed later only makes the next start
		 * look in the mailbox once more. */
		TAILQ_REMOVE(&w->q->mark.waiting, w, mentry);
		w->q->mark.npending--;
		w->mark_wait = 0;
	}
	if (w->fd != -1)
		close(w->fd);
	queue_record_clear(&w->rec);
	if (w->fwd != NULL)
		for (i = 0; i < w->n; i++)
			free(w->fwd[i]);
	free(w->fwd);
	free(w->slot_rcpt);
	free(w->idx);
	free(w->rcpt);
	free(w->res);
	free(w->action);
	free(w->attempts);
	free(w);
}

/*
 * srs_reroute - the SRS slot's route has nothing left, but other SRS
 * recipients are pending: point the slot at the route of the one due
 * first.  Returns work_new()'s why: WN_REROUTED (schedule the slot
 * again) or WN_SLOT_DONE.
 */
static enum work_none
srs_reroute(struct queue *q, struct qwork *w)
{
	struct qslot *s = &w->m->slot[SLOT_SRS];
	const struct delivery *best = NULL;
	struct dest *d;
	size_t i;

	for (i = 0; i < w->rec.ndlv; i++) {
		const struct delivery *dv = &w->rec.dlv[i];

		if (dv->state == DLV_PENDING && dest_slot(q, dv) == SLOT_SRS &&
		    (best == NULL || dv->next_try < best->next_try))
			best = dv;
	}
	if (best == NULL)
		return (WN_SLOT_DONE);
	d = dest_srs(q, best->rcpt);
	if (d == s->dest) {
		/* Cannot happen (routes are computed alike); never spin. */
		s->next_try = now_s() + sched_backoff(q, 1);
		return (WN_REROUTED);
	}
	sched_slot_set_dest(s, d);
	s->next_try = best->next_try;
	return (WN_REROUTED);
}

/* work_wants - w (slot si of its message) takes this delivery */
static int
work_wants(const struct qwork *w, const struct delivery *d)
{
	const struct queue *q = w->q;

	if (d->state != DLV_PENDING || dest_slot(q, d) != w->si)
		return (0);
	/* SRS recipients: only those of the slot's current route. */
	return (w->si != SLOT_SRS ||
	    dest_srs_same_route(q, w->m->slot[SLOT_SRS].dest, d->rcpt));
}

/*
 * work_new - load the record and pick the pending deliveries of slot si
 * (at most SMTP_TX_RCPT_MAX; for the SRS slot those of its current
 * route).  Returns NULL when there is nothing to do, and *why_r says
 * why (enum work_none).
 */
static struct qwork *
work_new(struct queue *q, struct qmsg *m, int si, enum work_none *why_r)
{
	struct qwork *w;
	char err[256], orig[SRS_ADDR_MAX + 1];
	size_t i, n = 0;
	int rc;

	*why_r = WN_ERROR;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return (NULL);
	w->q = q;
	w->m = m;
	w->si = si;
	w->fd = -1;
	w->dlv_dest = si == SLOT_COPY ? DLV_COPY : DLV_UPSTREAM;
	snprintf(w->relay, sizeof(w->relay), "none");
	rc = store_txn_run(q->relay->store, 1, work_txn_load, w, err,
	    sizeof(err));
	if (rc != 0) {
		if (rc == 1)
			*why_r = WN_GONE;
		else
			log_warnx("%s: cannot read the queue record: %s", m->id,
			    err);
		work_free(w);
		return (NULL);
	}
	if (w->rec.flags & QR_HELD) {
		*why_r = WN_HELD;
		work_free(w);
		return (NULL);
	}
	for (i = 0; i < w->rec.ndlv; i++)
		if (work_wants(w, &w->rec.dlv[i]))
			n++;
	if (n == 0) {
		*why_r = queue_record_done(&w->rec) ? WN_ALL_DONE :
		    WN_SLOT_DONE;
		if (*why_r == WN_SLOT_DONE && si == SLOT_SRS)
			*why_r = srs_reroute(q, w);
		work_free(w);
		return (NULL);
	}
	if (n > SMTP_TX_RCPT_MAX)
		n = SMTP_TX_RCPT_MAX;
	w->idx = calloc(n, sizeof(*w->idx));
	w->rcpt = calloc(n, sizeof(*w->rcpt));
	w->res = calloc(n, sizeof(*w->res));
	w->action = calloc(n, sizeof(*w->action));
	w->attempts = calloc(n, sizeof(*w->attempts));
	if (si == SLOT_SRS)
		w->fwd = calloc(n, sizeof(*w->fwd));
	if (w->idx == NULL || w->rcpt == NULL || w->res == NULL ||
	    w->action == NULL || w->attempts == NULL ||
	    (si == SLOT_SRS && w->fwd == NULL)) {
		work_free(w);
		return (NULL);
	}
	for (i = 0; i < w->rec.ndlv && w->n < n; i++)
		if (work_wants(w, &w->rec.dlv[i])) {
			w->idx[w->n] = i;
			w->rcpt[w->n] = w->rec.dlv[i].rcpt;
			/* No original (the slot has no route): nothing
			 * is sent, the result is logged under the SRS
			 * address. */
			if (w->fwd != NULL && dest_srs_orig(q, w->rcpt[w->n],
			    orig, sizeof(orig)) == 0 &&
			    (w->fwd[w->n] = strdup(orig)) == NULL) {
				work_free(w);
				return (NULL);
			}
			w->n++;
		}
	m->busy++;
	m->slot[si].state = SL_BUSY;
	return (w);
}

/* work_nothing - work_new() found nothing to do: settle the slot */
static void
work_nothing(struct queue *q, struct qmsg *m, int si, enum work_none why)
{
	struct qslot *s = &m->slot[si];
	int o, others_busy = 0;

	for (o = 0; o < NSLOT; o++)
		if (o != si && m->slot[o].state == SL_BUSY)
			others_busy = 1;

	switch (why) {
	case WN_GONE:
		log_warnx("%s: queue record vanished", m->id);
		m->deleted = 1;
		if (m->busy == 0)
			queue_msg_free(q, m);
		break;
	case WN_SLOT_DONE:
		sched_release_slot(q, m, si);
		break;
	case WN_ALL_DONE:
		sched_release_slot(q, m, si);
		if (m->busy == 0 && !others_busy)
			msg_done(q, m);
		break;
	case WN_HELD:
		m->held = 1;
		s->state = SL_HELD;
		break;
	case WN_REROUTED:
		sched_slot(q, s);
		break;
	case WN_ERROR:	/* try again later */
		s->next_try = now_s() + sched_backoff(q, 1);
		sched_slot(q, s);
		break;
	}
}

/* classify - what a reply means for its delivery */
static enum action
classify(int code)
{
	if (code >= 200 && code < 300)
		return (A_SENT);
	if (code >= 500 && code < 600)
		return (A_BOUNCE);
	return (A_DEFER);
}

/*
 * work_fail_slot - a result for every pending delivery of the slot without a
 * transaction (expiry, no route, spool file unreadable).
 */
void
work_fail_slot(struct queue *q, struct qslot *s, int code, const char *status,
    const char *text, int expired)
{
	struct qmsg *m = slot_msg(s);
	struct qwork *w;
	size_t i;
	enum work_none why;

	sched_slot_unlink(q, s);
	if ((w = work_new(q, m, s->si, &why)) == NULL) {
		work_nothing(q, m, s->si, why);
		return;
	}
	w->expired = expired;
	for (i = 0; i < w->n; i++) {
		w->res[i].code = code;
		w->res[i].synthetic = 1;
		snprintf(w->res[i].status, sizeof(w->res[i].status), "%s",
		    status);
		snprintf(w->res[i].text, sizeof(w->res[i].text), "%s", text);
		w->action[i] = classify(code);
	}
	work_finish(w);
}

/*
 * work_sender - MAIL FROM for w at d: with SRS on, the upstream gets the
 * rewritten sender (srs_forward() leaves <>, DSNs' <> and senders in our
 * srs_domain alone); every other route the original one.
 */
static const char *
work_sender(struct qwork *w, const struct dest *d)
{
	struct queue *q = w->q;
	int rc;

	if (q->srs == NULL || d->kind != DK_UPSTREAM ||
	    w->rec.sender[0] == '\0' || (w->rec.flags & QR_DSN))
		return (w->rec.sender);
	rc = srs_forward(q->srs, w->rec.sender, time(NULL), w->sender,
	    sizeof(w->sender));
	if (rc == SRS_OK) {
		log_info("%s: srs: from=<%s> sent as <%s>", w->m->id,
		    w->rec.sender, w->sender);
		return (w->sender);
	}
	if (rc != SRS_UNCHANGED)
		log_warnx("%s: srs: cannot rewrite <%s>: %s; sent as is",
		    w->m->id, w->rec.sender, srs_strerror(rc));
	return (w->rec.sender);
}

/* work_defer_all - no transaction after all: every delivery 451 (why) */
static void
work_defer_all(struct qwork *w, const char *why)
{
	size_t i;

	for (i = 0; i < w->n; i++) {
		w->res[i].code = 451;
		w->res[i].synthetic = 1;
		snprintf(w->res[i].status, sizeof(w->res[i].status), "4.3.0");
		snprintf(w->res[i].text, sizeof(w->res[i].text),
		    "451 4.3.0 %s", why);
		w->action[i] = A_DEFER;
	}
	work_finish(w);
}

static int
txn_mark_inflight(struct store_txn *tx, void *arg)
{
	struct qwork *w = arg;
	struct queue_record rec;
	const void *val;
	size_t vlen;
	unsigned char *buf;
	size_t blen;
	char err[128];
	int rc;

	rc = store_get(tx, STORE_DB_QUEUE, w->m->id, QUEUE_ID_LEN, &val, &vlen);
	if (rc != 0) {
		if (rc == STORE_NOTFOUND)
			store_txn_seterr(tx, "the queue record vanished");
		return (-1);
	}
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1) {
		store_txn_seterr(tx, "%s", err);
		return (-1);
	}
	rec.flags |= QR_INFLIGHT;
	rc = queue_record_encode(&rec, &buf, &blen);
	queue_record_clear(&rec);
	if (rc == -1) {
		store_txn_seterr(tx, "cannot encode the record");
		return (-1);
	}
	rc = store_put(tx, STORE_DB_QUEUE, w->m->id, QUEUE_ID_LEN, buf, blen, 0);
	free(buf);
	return (rc == 0 ? 0 : -1);
}

/*
 * work_mark_inflight - commit QR_INFLIGHT on w's record on the loop,
 * before its upstream transaction starts (inflight.h): the fallback
 * when the mark thread cannot take it (queue_mark.c is the usual way).
 */
static int
work_mark_inflight(struct queue *q, struct qwork *w, char *err,
    size_t errlen)
{
	return (store_txn_run(q->relay->store, 0, txn_mark_inflight, w, err,
	    errlen) == 0 ? 0 : -1);
}

/* work_start - take a ready slot onto an idle connection */
void
work_start(struct conn *cn, struct qslot *s)
{
	struct dest *d = cn->d;
	struct queue *q = d->q;
	struct qmsg *m = slot_msg(s);
	struct qwork *w;
	char err[256];
	size_t i;
	enum work_none why;

	if ((w = work_new(q, m, s->si, &why)) == NULL) {
		work_nothing(q, m, s->si, why);
		return;
	}
	s->noted = 0;
	for (i = 0; w->fwd != NULL && i < w->n; i++)
		if (w->fwd[i] == NULL) {
			/* Expired since it was routed: next time it has
			 * no route and bounces. */
			snprintf(err, sizeof(err), "the SRS address %s no "
			    "longer reverses", w->rcpt[i]);
			work_defer_all(w, err);
			return;
		}
	if (spool_msg_open(q->relay->spool, m->id, &w->fd, &w->offset,
	    &w->size) == -1) {
		snprintf(err, sizeof(err), "cannot open the spool file: %s",
		    strerror(errno));
		work_defer_all(w, err);
		return;
	}
	memset(&w->tx, 0, sizeof(w->tx));
	w->tx.sender = work_sender(w, d);
	w->tx.rcpt = w->fwd != NULL ? (const char **)w->fwd : w->rcpt;
	w->tx.nrcpt = w->n;
	w->tx.fd = w->fd;
	w->tx.offset = w->offset;
	w->tx.size = w->size;
	w->tx.result = w->res;
	/* Our Authentication-Results: for the new provider, and for the
	 * old MTA's copy (the same message); DSN and SRS routes carry
	 * the message as received. */
	if ((d->kind == DK_UPSTREAM || d->kind == DK_COPY) &&
	    w->rec.headers != NULL) {
		w->tx.headers = w->rec.headers;
		w->tx.hlen = strlen(w->rec.headers);
	}
	w->ledger = d->kind == DK_UPSTREAM;
	/* The in-flight mark (queue_mark.c): committed by the mark thread
	 * while the transaction runs; the final dot waits for it.  When
	 * the thread cannot take it, commit it here. */
	if (w->ledger && !(w->rec.flags & QR_INFLIGHT)) {
		if (mark_submit(q, w) == 0)
			w->tx.hold_dot = 1;
		else if (work_mark_inflight(q, w, err, sizeof(err)) == -1) {
			log_warnx("%s: cannot record the transaction as in "
			    "flight: %s", m->id, err);
			work_defer_all(w, "cannot record the transaction as "
			    "in flight");
			return;
		}
	}
	if (smtp_client_send(cn->c, &w->tx, tx_done, w, err,
	    sizeof(err)) == -1) {
		/* Cannot happen on an idle connection; be safe anyway. */
		work_defer_all(w, err);
		return;
	}
	cn->state = CN_BUSY;
	cn->w = w;
	w->cn = cn;
	q->ntx++;
}

static void
tx_done(struct smtp_client *c, struct smtp_tx *tx, void *arg)
{
	struct qwork *w = arg;
	struct queue *q = w->q;
	struct conn *cn = w->cn;
	struct dest *d = cn->d;
	struct relay_stats *st = &q->relay->stats;
	static const double bounds[LATENCY_NBUCKETS] = LATENCY_BUCKETS;
	size_t i;

	q->ntx--;
	cn->w = NULL;
	w->cn = NULL;
	snprintf(w->relay, sizeof(w->relay), "%s", smtp_client_peer(c));
	snprintf(w->remote, sizeof(w->remote), "%s", smtp_client_peer_host(c));
	for (i = 0; i < w->n; i++)
		w->action[i] = classify(w->res[i].code);
	if (q->test_crash_after > 0 && d->kind == DK_UPSTREAM) {
		for (i = 0; i < w->n && w->action[i] != A_SENT; i++)
			;
		if (i < w->n && ++q->test_crash_n >= q->test_crash_after) {
			log_warnx("%s: %s: ending the process after the "
			    "upstream's answer, before its commit", w->m->id,
			    QUEUE_TEST_CRASH_ENV);
			_exit(QUEUE_TEST_CRASH_STATUS);
		}
	}
	if (d->kind == DK_UPSTREAM) {
		st->latency_count++;
		st->latency_sum += tx->elapsed;
		for (i = 0; i < LATENCY_NBUCKETS; i++)
			if (tx->elapsed <= bounds[i])
				st->latency_bucket[i]++;
	}
	if (tx->closed)
		dest_conn_unlink(cn);	/* the client is gone */
	else if (q->stopping) {
		smtp_client_close(&cn->c);	/* QUIT, in the background */
		dest_conn_unlink(cn);
	} else
		cn->state = CN_IDLE;
	work_finish(w);
	if (tx->unavailable) {
		/* 421: the server asked us to go away for now. */
		snprintf(d->why, sizeof(d->why), "%s", w->res[0].text);
		dest_pause(d);
	}
	dest_kick(d);
	queue_maybe_done(q);
}

static void
dsn_committed(int status, const char *id, const char *why, void *arg)
{
	struct qwork *w = arg;
	struct queue *q = w->q;
	size_t i;

	q->nops--;
	if (status == 0) {
		log_info("%s: sender non-delivery notification: %s", w->m->id,
		    id);
		q->relay->stats.dsn_sent++;
		queue_enqueued(q, id);
	} else {
		/* No DSN, no bounce: the refused deliveries stay pending
		 * and are tried (and refused, and bounced) again. */
		log_warnx("%s: cannot queue the DSN: %s", w->m->id,
		    why ? why : "spool error");
		for (i = 0; i < w->n; i++)
			if (w->action[i] == A_BOUNCE)
				w->action[i] = A_DEFER;
	}
	work_to_batch(w);
}

/*
 * work_to_batch - w's results join the next commit; while its in-flight
 * mark is not committed yet they wait for it (queue_mark.c), so the
 * commit that clears the mark never comes before the one that sets it.
 */
void
work_to_batch(struct qwork *w)
{
	struct queue *q = w->q;

	if (w->mark_wait) {
		w->mark_finish = 1;
		return;
	}
	TAILQ_INSERT_TAIL(&q->batch, w, entry);
	/* results of several deliveries share one commit */
	work_flush_soon(q, WORK_FLUSH_DELAY_MS);
}

/*
 * dsn_wanted - the bounce of w's delivery i is told to the sender: an
 * upstream one, or a copy_to one of a recipient routed to the old host
 * only (route.h: no upstream delivery); the copy of dual reception is
 * not (the sender's mail did reach the upstream)
 */
static int
dsn_wanted(const struct qwork *w, size_t i)
{
	size_t j;

	if (w->action[i] != A_BOUNCE)
		return (0);
	if (w->dlv_dest != DLV_COPY)
		return (1);
	for (j = 0; j < w->rec.ndlv; j++)
		if (w->rec.dlv[j].dest == DLV_UPSTREAM &&
		    strcmp(w->rec.dlv[j].rcpt, w->rcpt[i]) == 0)
			return (0);
	return (1);
}

/*
 * work_finish - results are in w->action/res: spool a DSN first when a
 * delivery bounces (and one may be sent), then queue for the commit.
 */
static void
work_finish(struct qwork *w)
{
	struct queue *q = w->q;
	struct bounce_rcpt *br;
	struct bounce b;
	char err[256], reason[128];
	size_t i, nb = 0;
	int rc;

	for (i = 0; i < w->n; i++)
		if (dsn_wanted(w, i))
			nb++;
	if (nb == 0)
		goto commit;
	if (!bounce_allowed(w->rec.sender, w->rec.flags)) {
		log_info("%s: no DSN: %s", w->m->id, (w->rec.flags & QR_DSN) ?
		    "the message is itself a DSN" : "the sender is <>");
		goto commit;
	}
	if ((br = calloc(nb, sizeof(*br))) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	snprintf(reason, sizeof(reason), "delivery time expired");
	for (i = 0, nb = 0; i < w->n; i++) {
		const struct smtp_reply *r = &w->res[i];

		if (!dsn_wanted(w, i))
			continue;
		br[nb].rcpt = w->rcpt[i];
		br[nb].status = r->status;
		if (w->expired) {
			const char *last = w->rec.dlv[w->idx[i]].last_reply;

			br[nb].reason = reason;
			if (last != NULL && last[0] >= '2' && last[0] <= '5')
				br[nb].diagnostic = last;
		} else if (r->synthetic) {
			br[nb].reason = r->text;
		} else {
			br[nb].diagnostic = r->text;
			br[nb].remote_mta = w->remote[0] ? w->remote : NULL;
		}
		nb++;
	}
	memset(&b, 0, sizeof(b));
	b.hostname = q->cfg->relay.hostname;
	b.queue_id = w->m->id;
	b.sender = w->rec.sender;
	b.arrived = w->rec.arrived;
	b.now = now_s();
	b.rcpt = br;
	b.nrcpt = nb;
	b.fd = w->fd;
	b.offset = w->offset;
	b.size = w->size;
	if (b.fd == -1 && spool_msg_open(q->relay->spool, w->m->id, &w->fd,
	    &w->offset, &w->size) == 0) {
		b.fd = w->fd;
		b.offset = w->offset;
		b.size = w->size;
	}
	rc = bounce_spool(q->relay->spool, &b, w->rec.flags, dsn_committed, w,
	    err, sizeof(err));
	free(br);
	if (rc == 0) {
		q->nops++;
		return;		/* dsn_committed() continues */
	}
	if (rc == 1)
		goto commit;
fail:
	log_warnx("%s: cannot make the DSN: %s", w->m->id, err);
	for (i = 0; i < w->n; i++)
		if (w->action[i] == A_BOUNCE)
			w->action[i] = A_DEFER;
commit:
	work_to_batch(w);
}

/* ---- committing results ---- */

/* One transaction for every finished piece of work in the batch. */
struct flush_arg {
	struct queue	*q;
	int64_t		 now;
};

/*
 * queue_ledger_tracked - see queue.h.  The same test as the routing
 * (dest_slot(), m->dsn): what the spool commit marks pending is exactly
 * what a DK_UPSTREAM transaction later settles.
 */
int
queue_ledger_tracked(const struct relay *relay, const struct queue_record *rec,
    const struct delivery *d)
{
	return (d->has_ledger_key && d->dest == DLV_UPSTREAM &&
	    !(rec->flags & QR_DSN) &&
	    !(relay->srs != NULL && srs_is_srs(relay->srs, d->rcpt)));
}

time_t
queue_ledger_expiry(const struct config *cfg, int64_t now, int status)
{
	int64_t ttl = cfg->dedupe.ttl;

	if (ttl <= 0)
		return (0);
	if (status == LEDGER_PENDING && ttl < cfg->forward.queue_lifetime)
		ttl = cfg->forward.queue_lifetime;
	return ((time_t)(now + ttl));
}

/*
 * ledger_settle - inside the write txn that records the upstream's
 * answer for d: a 250 makes its ledger entry delivered (so ferry-syncd's
 * delta pass never copies the old host's copy), a bounce removes the
 * pending one this message wrote (so the next pass does copy it).  The
 * entry's layout is common/ledger.c's.  A later acceptance of the same
 * key (the message sent again under another queue id, or re-sent after
 * a crash) overwrites it: "the new mailbox has it" stays true.
 */
static int
ledger_settle(struct store_txn *tx, struct queue *q, const struct delivery *d,
    const char *id, int action, int64_t now)
{
	struct ledger_entry e;

	if (action == A_BOUNCE)
		return (ledger_del(tx, d->ledger_key, id) == -1 ? -1 : 0);
	if (action != A_SENT)
		return (0);
	memset(&e, 0, sizeof(e));
	e.when = now;
	e.status = LEDGER_DELIVERED;
	memcpy(e.queue_id, id, QUEUE_ID_LEN + 1);
	return (ledger_put(tx, d->ledger_key, &e, queue_ledger_expiry(q->cfg,
	    now, LEDGER_DELIVERED)) == -1 ? -1 : 0);
}

/*
 * work_gone - the record was deleted (ferryctl delete) while w was in
 * flight: whatever the upstream accepted is in the new mailbox all the
 * same, and the ledger must say so.
 */
static int
work_gone(struct store_txn *tx, struct queue *q, struct qwork *w, int64_t now)
{
	size_t i;

	for (i = 0; w->ledger && i < w->n; i++) {
		const struct delivery *d;

		if (w->action[i] != A_SENT || w->idx[i] >= w->rec.ndlv)
			continue;
		d = &w->rec.dlv[w->idx[i]];
		if (d->has_ledger_key &&
		    ledger_settle(tx, q, d, w->m->id, A_SENT, now) == -1)
			return (-1);
	}
	return (0);
}

/*
 * addr_count - the per-address counters (addr_stats.h) of one final
 * result, in the same transaction as the result: forwarded counts a
 * delivery upstream of the sender's mail (not a DSN of ours, not an SRS
 * bounce going back), bounced any refusal of it.
 */
static int
addr_count(struct store_txn *tx, const struct qwork *w,
    const struct queue_record *rec, const struct delivery *d, int action,
    int64_t now)
{
	if ((rec->flags & QR_DSN) || w->si == SLOT_SRS)
		return (0);
	if (action == A_SENT && d->dest == DLV_UPSTREAM)
		return (addr_stats_note(tx, d->rcpt, ADDR_FORWARDED,
		    (time_t)now));
	if (action == A_BOUNCE)
		return (addr_stats_note(tx, d->rcpt, ADDR_BOUNCED,
		    (time_t)now));
	return (0);
}

/* work_apply - inside the write txn: apply w's results to its record */
static int
work_apply(struct store_txn *tx, struct queue *q, struct qwork *w, int64_t now)
{
	struct queue_record rec;
	const void *val;
	size_t vlen, i;
	unsigned char *buf;
	size_t blen;
	char err[128];
	int rc;

	w->found = w->done = w->slot_pending = 0;
	w->slot_next = INT64_MAX;
	free(w->slot_rcpt);
	w->slot_rcpt = NULL;
	rc = store_get(tx, STORE_DB_QUEUE, w->m->id, QUEUE_ID_LEN, &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (work_gone(tx, q, w, now));	/* deleted meanwhile */
	if (rc != 0)
		return (-1);
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1) {
		store_txn_seterr(tx, "%s: %s", w->m->id, err);
		return (0);		/* leave a damaged record alone */
	}
	w->found = 1;
	/* The upstream transaction's result is in: no longer in flight. */
	if (w->ledger)
		rec.flags &= ~(uint32_t)QR_INFLIGHT;
	for (i = 0; i < w->n; i++) {
		struct delivery *d;

		w->attempts[i] = 0;
		if (w->idx[i] >= rec.ndlv)
			continue;
		d = &rec.dlv[w->idx[i]];
		if (d->dest != w->dlv_dest || d->state != DLV_PENDING ||
		    strcmp(d->rcpt, w->rcpt[i]) != 0)
			continue;
		if (w->ledger && d->has_ledger_key && ledger_settle(tx, q, d,
		    w->m->id, w->action[i], now) == -1) {
			queue_record_clear(&rec);
			return (-1);
		}
		if (addr_count(tx, w, &rec, d, w->action[i], now) == -1) {
			queue_record_clear(&rec);
			return (-1);
		}
		switch (w->action[i]) {
		case A_SENT:
			d->state = DLV_SENT;
			break;
		case A_BOUNCE:
			d->state = DLV_BOUNCED;
			break;
		case A_DEFER: {
			int64_t next, exp = sched_expiry(q, rec.arrived);

			if (d->attempts < UINT32_MAX)
				d->attempts++;
			next = now + sched_backoff(q, d->attempts);
			/* come back in time to expire */
			if (next > exp && exp > now && !w->m->no_expire)
				next = exp;
			d->next_try = next;
			break;
		}
		default:
			continue;
		}
		w->attempts[i] = d->attempts;
		free(d->last_reply);
		d->last_reply = strdup(w->res[i].text);
	}
	for (i = 0; i < rec.ndlv; i++)
		if (rec.dlv[i].state == DLV_PENDING &&
		    dest_slot(q, &rec.dlv[i]) == w->si) {
			w->slot_pending = 1;
			if (rec.dlv[i].next_try < w->slot_next) {
				w->slot_next = rec.dlv[i].next_try;
				if (w->si == SLOT_SRS) {
					free(w->slot_rcpt);
					w->slot_rcpt = strdup(rec.dlv[i].rcpt);
				}
			}
		}
	w->done = queue_record_done(&rec);
	if (queue_record_encode(&rec, &buf, &blen) == -1) {
		queue_record_clear(&rec);
		store_txn_seterr(tx, "%s: cannot encode the record", w->m->id);
		return (-1);
	}
	queue_record_clear(&rec);
	rc = store_put(tx, STORE_DB_QUEUE, w->m->id, QUEUE_ID_LEN, buf, blen, 0);
	free(buf);
	return (rc == 0 ? 0 : -1);
}

static int
txn_flush(struct store_txn *tx, void *arg)
{
	struct flush_arg *fa = arg;
	struct queue *q = fa->q;
	struct qwork *w;
	size_t i;
	int rc;

	TAILQ_FOREACH(w, &q->batch, entry)
		if (work_apply(tx, q, w, fa->now) == -1)
			return (-1);
	for (i = 0; i < q->ndels; i++) {
		rc = store_del(tx, STORE_DB_QUEUE, q->dels[i], QUEUE_ID_LEN);
		if (rc == -1)
			return (-1);
	}
	return (0);
}

/* work_log_delivery - one result; orig_to: the SRS address rcpt came from */
void
work_log_delivery(const struct qmsg *m, const char *rcpt, const char *orig_to,
    const char *relay, const char *status, const char *text)
{
	if (orig_to != NULL)
		log_info("%s: to=<%s> orig_to=<%s> relay=%s delay=%" PRId64
		    " status=%s (%s)", m->id, rcpt, orig_to, relay,
		    now_s() - m->arrived, status, text);
	else
		log_info("%s: to=<%s> relay=%s delay=%" PRId64 " status=%s "
		    "(%s)", m->id, rcpt, relay, now_s() - m->arrived, status,
		    text);
}


void
work_dels_add(struct queue *q, const char *id)
{
	if (q->ndels == q->delcap) {
		size_t ncap = q->delcap ? q->delcap * 2 : 64;
		void *n = reallocarray(q->dels, ncap, sizeof(*q->dels));

		if (n == NULL) {
			/* The record stays; the next start removes it (it
			 * has nothing pending and no spool file). */
			return;
		}
		q->dels = n;
		q->delcap = ncap;
	}
	memcpy(q->dels[q->ndels++], id, QUEUE_ID_LEN + 1);
	/*
	 * Not urgent: the file is gone and every delivery is final, so the
	 * record rides along with the next batch of results (one LMDB
	 * commit, one flush, per delivered message instead of two), or goes
	 * within WORK_DELS_DELAY_MS.  A crash before that leaves a record
	 * without a file, which start-up drops (spool_rebuild.c); shutdown
	 * flushes (queue_free).
	 */
	if (q->ndels >= WORK_DELS_MAX)
		event_active(q->flush_ev, EV_TIMEOUT, 0);
	else
		work_flush_soon(q, WORK_DELS_DELAY_MS);
}

/*
 * msg_done - every delivery is final and committed: remove the spool
 * file, then (next batch) the record.
 */
static void
msg_done(struct queue *q, struct qmsg *m)
{
	if (spool_remove(q->relay->spool, m->id) == -1)
		log_warn("%s: cannot remove the spool file", m->id);
	else {
		log_info("%s: removed", m->id);
		work_dels_add(q, m->id);
	}
	queue_msg_free(q, m);
}

/* work_committed - after the commit: log, count, reschedule or remove */
static void
work_committed(struct queue *q, struct qwork *w)
{
	struct qmsg *m = w->m;
	struct qslot *s = &m->slot[w->si];
	struct relay_stats *st = &q->relay->stats;
	size_t i;

	m->busy--;
	s->state = SL_NONE;
	if (!w->found || m->deleted) {
		if (m->deleted && m->busy == 0)
			queue_msg_free(q, m);
		return;
	}
	for (i = 0; i < w->n; i++) {
		const char *status;

		switch (w->action[i]) {
		case A_SENT:
			status = "sent";
			if (m->dsn || w->si == SLOT_SRS)
				;	/* not the sender's mail to us */
			else if (w->dlv_dest == DLV_COPY)
				st->copied++;
			else
				st->forwarded++;
			break;
		case A_DEFER:
			status = "deferred";
			st->deferred++;
			break;
		case A_BOUNCE:
			status = "bounced";
			st->bounced++;
			break;
		default:
			continue;
		}
		if (w->fwd != NULL && w->fwd[i] != NULL)
			work_log_delivery(m, w->fwd[i], w->rcpt[i], w->relay,
			    status, w->res[i].text);
		else
			work_log_delivery(m, w->rcpt[i], NULL, w->relay, status,
			    w->res[i].text);
	}
	if (w->done && m->busy == 0) {
		msg_done(q, m);
		return;
	}
	if (!w->slot_pending) {
		sched_release_slot(q, m, w->si);
		return;
	}
	if (w->si == SLOT_SRS && w->slot_rcpt != NULL)
		sched_slot_set_dest(s, dest_srs(q, w->slot_rcpt));
	s->next_try = w->slot_next;
	sched_slot(q, s);
}

/* work_flush_soon - commit the batch within ms, or sooner if already due */
static void
work_flush_soon(struct queue *q, int ms)
{
	struct timeval tv = { 0, ms * 1000 };

	if (!event_pending(q->flush_ev, EV_TIMEOUT, NULL))
		event_add(q->flush_ev, &tv);
}

/* work_flush - commit the batch: one LMDB write transaction */
void
work_flush(struct queue *q)
{
	struct flush_arg fa = { q, now_s() };
	struct workq done;
	struct qwork *w;
	char err[256];

	if (TAILQ_EMPTY(&q->batch) && q->ndels == 0)
		return;
	if (store_txn_run(q->relay->store, 0, txn_flush, &fa, err,
	    sizeof(err)) != 0) {
		/* Nothing was written.  The results are lost, not the mail:
		 * treat the work as deferred in memory; the deliveries are
		 * still pending in LMDB and will be tried again. */
		log_errorx("queue: cannot commit delivery results: %s", err);
		TAILQ_INIT(&done);
		TAILQ_CONCAT(&done, &q->batch, entry);
		while ((w = TAILQ_FIRST(&done)) != NULL) {
			TAILQ_REMOVE(&done, w, entry);
			w->m->busy--;
			w->m->slot[w->si].state = SL_NONE;
			if (w->m->deleted) {
				if (w->m->busy == 0)
					queue_msg_free(q, w->m);
			} else {
				w->m->slot[w->si].next_try = fa.now +
				    sched_backoff(q, 1);
				sched_slot(q, &w->m->slot[w->si]);
			}
			work_free(w);
		}
		return;
	}
	q->ndels = 0;
	TAILQ_INIT(&done);
	TAILQ_CONCAT(&done, &q->batch, entry);
	while ((w = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, w, entry);
		work_committed(q, w);
		work_free(w);
	}
	queue_maybe_done(q);
}

void
work_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	work_flush(arg);
}
