/*
 * queue_mark.c - the in-flight mark (QR_INFLIGHT, relay/inflight.h) of
 * upstream transactions, committed off the loop.
 *
 * An upstream transaction starts at once with its final dot held
 * (smtp_tx.hold_dot); its record's id goes to the mark thread, which
 * sets QR_INFLIGHT on every record handed to it since its last round in
 * one LMDB write transaction (one fsync for all of them) and reports
 * back through a wakeup.  On the loop, each reported work gets its dot
 * released.  So the mark is durable before the upstream can accept the
 * message, and its cost hides behind MAIL, RCPT, DATA and the body on
 * the wire instead of blocking the loop.
 *
 * A work whose transaction ends before its mark is reported (refused,
 * connection lost) waits with its result until the report: the commit
 * of the result clears the mark, so it must come after the mark's
 * commit, or a stale mark would outlive a clean stop.  The queue's
 * shutdown waits for pending marks (q->mark.npending).
 *
 * A mark that cannot be committed (the store failed) still releases the
 * dot, with a warning: the message is forwarded as before, only without
 * the crash check's protection.
 *
 * Threads: mark_submit(), mark_done_cb() and mark_release() on the loop;
 * the mark thread only runs LMDB transactions; the two share the request
 * and result arrays under mark.mu.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "queue_p.h"
#include "relay.h"
#include "store.h"
#include "util.h"
#include "wakeup.h"

/* txn_mark - set QR_INFLIGHT on every record of the round */
static int
txn_mark(struct store_txn *tx, void *arg)
{
	struct qmark_round *r = arg;
	struct queue_record rec;
	const void *val;
	size_t vlen, i, blen;
	unsigned char *buf;
	char err[128];
	int rc;

	for (i = 0; i < r->n; i++) {
		rc = store_get(tx, STORE_DB_QUEUE, r->req[i].id, QUEUE_ID_LEN,
		    &val, &vlen);
		if (rc == STORE_NOTFOUND)
			continue;	/* deleted meanwhile: nothing to mark */
		if (rc != 0)
			return (-1);
		if (queue_record_decode(val, vlen, &rec, err,
		    sizeof(err)) == -1)
			continue;	/* damaged: left alone, as elsewhere */
		if (rec.flags & QR_INFLIGHT) {
			queue_record_clear(&rec);
			continue;
		}
		rec.flags |= QR_INFLIGHT;
		rc = queue_record_encode(&rec, &buf, &blen);
		queue_record_clear(&rec);
		if (rc == -1) {
			store_txn_seterr(tx, "%s: cannot encode the record",
			    r->req[i].id);
			return (-1);
		}
		rc = store_put(tx, STORE_DB_QUEUE, r->req[i].id, QUEUE_ID_LEN,
		    buf, blen, 0);
		free(buf);
		if (rc != 0)
			return (-1);
	}
	return (0);
}

static void *
mark_main(void *arg)
{
	struct queue *q = arg;
	struct qmark *mk = &q->mark;
	struct qmark_round r;
	char err[256];
	int rc;

	pthread_mutex_lock(&mk->mu);
	for (;;) {
		while (mk->nreq == 0 && !mk->stop)
			pthread_cond_wait(&mk->cv, &mk->mu);
		if (mk->nreq == 0 && mk->stop)
			break;
		/* Take every request of this round. */
		r.req = mk->req;
		r.n = mk->nreq;
		mk->req = mk->spare;
		mk->spare = NULL;
		mk->nreq = 0;
		mk->reqcap = mk->sparecap;
		mk->sparecap = 0;
		pthread_mutex_unlock(&mk->mu);

		err[0] = '\0';
		rc = store_txn_run(q->relay->store, 0, txn_mark, &r, err,
		    sizeof(err));

		pthread_mutex_lock(&mk->mu);
		mk->round_ok = rc == 0;
		if (rc != 0)
			snprintf(mk->why, sizeof(mk->why), "%s", err);
		/* Report: the round's last sequence number, and hand the
		 * array back for the next round. */
		if (r.n > 0 && r.req[r.n - 1].seq > mk->seq_done) {
			mk->seq_done = r.req[r.n - 1].seq;
			if (rc != 0)
				mk->seq_failed = mk->seq_done;
		}
		if (mk->spare == NULL) {
			mk->spare = r.req;
			mk->sparecap = r.n;	/* at least this many fit */
			if (mk->sparecap < 1)
				mk->sparecap = 1;
		} else
			free(r.req);
		pthread_mutex_unlock(&mk->mu);
		wakeup_signal(mk->wake);
		pthread_mutex_lock(&mk->mu);
	}
	pthread_mutex_unlock(&mk->mu);
	return (NULL);
}

/* mark_done_cb - on the loop: release every work whose mark is in */
static void
mark_done_cb(void *arg)
{
	struct queue *q = arg;
	struct qmark *mk = &q->mark;
	struct qwork *w, *next;
	uint64_t done, failed;
	char why[256];

	pthread_mutex_lock(&mk->mu);
	done = mk->seq_done;
	failed = mk->seq_failed;
	snprintf(why, sizeof(why), "%s", mk->why);
	pthread_mutex_unlock(&mk->mu);
	for (w = TAILQ_FIRST(&mk->waiting); w != NULL; w = next) {
		next = TAILQ_NEXT(w, mentry);
		if (w->mark_seq > done)
			continue;
		TAILQ_REMOVE(&mk->waiting, w, mentry);
		w->mark_wait = 0;
		mk->npending--;
		if (w->mark_seq <= failed && failed > mk->seq_warned) {
			log_warnx("%s: cannot record the transaction as in "
			    "flight: %s; forwarded without the crash check",
			    w->m->id, why);
			mk->seq_warned = failed;
		}
		if (w->cn != NULL && w->cn->c != NULL)
			smtp_client_release_dot(w->cn->c, &w->tx);
		if (w->mark_finish) {
			/* The transaction ended first: its result may be
			 * committed now. */
			w->mark_finish = 0;
			work_to_batch(w);
		}
	}
	queue_maybe_done(q);
}

int
mark_init(struct queue *q, char *err, size_t errlen)
{
	struct qmark *mk = &q->mark;

	TAILQ_INIT(&mk->waiting);
	if (pthread_mutex_init(&mk->mu, NULL) != 0) {
		errbuf_set(err, errlen, "cannot create a mutex");
		return (-1);
	}
	mk->mu_ok = 1;
	if (pthread_cond_init(&mk->cv, NULL) != 0) {
		errbuf_set(err, errlen, "cannot create a condition variable");
		return (-1);
	}
	mk->cv_ok = 1;
	if (wakeup_new(&mk->wake, q->relay->base, mark_done_cb, q, err,
	    errlen) == -1)
		return (-1);
	if ((errno = pthread_create(&mk->thread, NULL, mark_main, q)) != 0) {
		errbuf_set(err, errlen, "cannot start the mark thread: %s",
		    strerror(errno));
		return (-1);
	}
	mk->running = 1;
	return (0);
}

void
mark_free(struct queue *q)
{
	struct qmark *mk = &q->mark;
	struct qwork *w, *next;

	if (mk->running) {
		pthread_mutex_lock(&mk->mu);
		mk->stop = 1;
		pthread_cond_signal(&mk->cv);
		pthread_mutex_unlock(&mk->mu);
		pthread_join(mk->thread, NULL);
		mk->running = 0;
	}
	/* Works whose transaction ended are the list's alone; the others
	 * belong to their connection (dest_free()). */
	for (w = TAILQ_FIRST(&mk->waiting); w != NULL; w = next) {
		next = TAILQ_NEXT(w, mentry);
		if (w->mark_finish) {
			w->m->busy--;
			work_free(w);
		}
	}
	wakeup_free(&mk->wake);
	free(mk->req);
	free(mk->spare);
	mk->req = mk->spare = NULL;
	if (mk->cv_ok)
		pthread_cond_destroy(&mk->cv);
	if (mk->mu_ok)
		pthread_mutex_destroy(&mk->mu);
	mk->cv_ok = mk->mu_ok = 0;
}

int
mark_submit(struct queue *q, struct qwork *w)
{
	struct qmark *mk = &q->mark;

	if (!mk->running)
		return (-1);
	pthread_mutex_lock(&mk->mu);
	if (mk->nreq == mk->reqcap) {
		size_t ncap = mk->reqcap ? mk->reqcap * 2 : 16;
		void *n = reallocarray(mk->req, ncap, sizeof(*mk->req));

		if (n == NULL) {
			pthread_mutex_unlock(&mk->mu);
			return (-1);
		}
		mk->req = n;
		mk->reqcap = ncap;
	}
	w->mark_seq = ++mk->seq_next;
	memcpy(mk->req[mk->nreq].id, w->m->id, QUEUE_ID_LEN + 1);
	mk->req[mk->nreq].seq = w->mark_seq;
	mk->nreq++;
	pthread_cond_signal(&mk->cv);
	pthread_mutex_unlock(&mk->mu);
	w->mark_wait = 1;
	mk->npending++;
	TAILQ_INSERT_TAIL(&mk->waiting, w, mentry);
	return (0);
}
