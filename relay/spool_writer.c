/*
 * spool_writer.c - the spool's two threads and their group-commit rounds
 * (spool.c's model; DESIGN.md §4, "Order of a commit").  The writer's
 * round takes every message queued since the last one: flush each file,
 * rename tmp/ID to queue/ID, fsync each file, fsync the queue directory
 * once; early callbacks go back to the loop (common/wakeup.h) and the
 * round to the index thread, whose round is ONE LMDB write transaction
 * with every record, its dedupe key, its pending ledger entries and the
 * per-domain inbound counts; then the loop runs the commit callbacks.
 *
 * DEDUPE VALUE FORMAT (stable; STORE_DB_DEDUPE, key = the 32-byte relay
 * key, the store adds its expiry header in front):
 *   byte  1                  version
 *   8     first seen         unix time, big-endian
 *   16    queue id           of the copy that was queued
 *
 * Threading: spool_writer() and spool_indexer() run on their own threads
 * and touch only the messages of their rounds and the store; they never
 * log and never call back.  spool_done_cb() runs on the loop.
 */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "checks.h"
#include "ledger.h"
#include "addr_stats.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "spool.h"
#include "spool_p.h"
#include "relay_view.h"
#include "store.h"
#include "wakeup.h"

/* ---- one round ---- */

/* round_prepend - rewrite tmp/ID with the header in front (no envelope call) */
static int
round_prepend(struct spool *sp, struct spool_msg *m)
{
	char name[QUEUE_ID_LEN + 8], buf[8192];
	off_t off = 0;
	ssize_t n;
	int fd2;

	if (spool_msg_flush(m) == -1) {
		spool_msg_fail(m, "write", m->werr);
		return (-1);
	}
	snprintf(name, sizeof(name), "%s.env", m->id);
	fd2 = openat(sp->tmpfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (fd2 == -1) {
		spool_msg_fail(m, "open", errno);
		return (-1);
	}
	if (spool_write_all(fd2, m->env, m->envlen) == -1)
		goto fail;
	for (;;) {
		if ((n = pread(m->fd, buf, sizeof(buf), off)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		if (spool_write_all(fd2, buf, (size_t)n) == -1)
			goto fail;
		off += n;
	}
	/* Over the message's own file, wherever it is: a pool file so
	 * replaced is a new name in spool/pool, fsync'd by the round. */
	if (renameat(sp->tmpfd, name, m->where == IN_POOL ? sp->poolfd :
	    sp->tmpfd, m->id) == -1)
		goto fail;
	close(m->fd);
	m->fd = fd2;
	m->newname = 1;
	return (0);
fail:
	spool_msg_fail(m, "write", errno);
	close(fd2);
	(void)unlinkat(sp->tmpfd, name, 0);
	return (-1);
}

/* spool_dedupe_value - the STORE_DB_DEDUPE value for a message */
void
spool_dedupe_value(unsigned char v[DEDUPE_VALUE_LEN], int64_t first_seen,
    const char *id)
{
	uint64_t t = (uint64_t)first_seen;
	int i;

	v[0] = DEDUPE_VALUE_VERSION;
	for (i = 8; i >= 1; i--) {
		v[i] = (unsigned char)(t & 0xff);
		t >>= 8;
	}
	memcpy(v + 9, id, QUEUE_ID_LEN);
}

/* spool_dedupe_first_id - the queue id in a dedupe value; "?" if unreadable */
void
spool_dedupe_first_id(const void *val, size_t vlen, char id[QUEUE_ID_LEN + 1])
{
	const unsigned char *v = val;

	if (vlen == DEDUPE_VALUE_LEN && v[0] == DEDUPE_VALUE_VERSION) {
		memcpy(id, v + 9, QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		if (spool_id_valid(id))
			return;
	}
	memcpy(id, "?", 2);
}

/*
 * spool_ledger_pending - the pending ledger entries of a message whose record
 * is put in this transaction (common/ledger.h): from now on the relay
 * holds its copy for these recipients, and a delta pass must not copy
 * the old host's.
 */
int
spool_ledger_pending(struct store_txn *tx, const char *id, int64_t arrived,
    const unsigned char (*keys)[MSGKEY_LEN], size_t nkeys, time_t expires)
{
	struct ledger_entry e;
	size_t i;

	memset(&e, 0, sizeof(e));
	e.when = arrived;
	e.status = LEDGER_PENDING;
	memcpy(e.queue_id, id, QUEUE_ID_LEN + 1);
	for (i = 0; i < nkeys; i++)
		if (ledger_put(tx, keys[i], &e, expires) == -1)
			return (-1);
	return (0);
}

/* spool_ledger_keys - the keys of rec's deliveries the ledger tracks */
int
spool_ledger_keys(const struct relay *relay, const struct queue_record *rec,
    unsigned char (**keys_r)[MSGKEY_LEN], size_t *n_r)
{
	size_t i, n = 0;

	*keys_r = NULL;
	*n_r = 0;
	for (i = 0; i < rec->ndlv; i++)
		if (queue_ledger_tracked(relay, rec, &rec->dlv[i]))
			n++;
	if (n == 0)
		return (0);
	if ((*keys_r = calloc(n, sizeof(**keys_r))) == NULL)
		return (-1);
	for (i = 0; i < rec->ndlv; i++)
		if (queue_ledger_tracked(relay, rec, &rec->dlv[i]))
			memcpy((*keys_r)[(*n_r)++], rec->dlv[i].ledger_key,
			    MSGKEY_LEN);
	return (0);
}

/*
 * spool_view_domains - the distinct recipient domains (lower case) of rec's
 * upstream deliveries, for the inbound records; a DSN of ours is not
 * inbound mail and has none.
 */
int
spool_view_domains(const struct queue_record *rec, char **list_r, size_t *len_r)
{
	char *list = NULL, *p, dom[256];
	size_t len = 0, i, n;
	const char *at;

	*list_r = NULL;
	*len_r = 0;
	if (rec->flags & QR_DSN)
		return (0);
	for (i = 0; i < rec->ndlv; i++) {
		if (rec->dlv[i].dest != DLV_UPSTREAM ||
		    (at = strrchr(rec->dlv[i].rcpt, '@')) == NULL ||
		    (n = strlen(at + 1)) == 0 || n >= sizeof(dom))
			continue;
		for (n = 0; at[1 + n] != '\0'; n++)
			dom[n] = (char)tolower((unsigned char)at[1 + n]);
		dom[n] = '\0';
		for (p = list; p != NULL && p < list + len; p += strlen(p) + 1)
			if (strcmp(p, dom) == 0)
				break;
		if (p != NULL && p < list + len)
			continue;
		if ((p = realloc(list, len + n + 1)) == NULL) {
			free(list);
			return (-1);
		}
		list = p;
		memcpy(list + len, dom, n + 1);
		len += n + 1;
	}
	*list_r = list;
	*len_r = len;
	return (0);
}

int
spool_view_rcpts(const struct queue_record *rec, char **list_r, size_t *len_r)
{
	char *list = NULL, *p;
	size_t len = 0, i, k, n;

	*list_r = NULL;
	*len_r = 0;
	if (rec->flags & QR_DSN)
		return (0);
	for (i = 0; i < rec->ndlv; i++) {
		const char *r = rec->dlv[i].rcpt;

		if ((n = strlen(r)) == 0)
			continue;
		for (p = list; p != NULL && p < list + len; p += strlen(p) + 1)
			if (strcasecmp(p, r) == 0)
				break;
		if (p != NULL && p < list + len)
			continue;
		if ((p = realloc(list, len + n + 1)) == NULL) {
			free(list);
			return (-1);
		}
		list = p;
		for (k = 0; k < n; k++)
			list[len + k] = (char)tolower((unsigned char)r[k]);
		list[len + n] = '\0';
		len += n + 1;
	}
	*list_r = list;
	*len_r = len;
	return (0);
}

/* addr_note - one kind counted for each of the message's recipients */
static int
addr_note(struct store_txn *tx, const struct spool_msg *m,
    enum addr_stats_kind kind)
{
	const char *p;

	for (p = m->vrcpts; p != NULL && p < m->vrcpts + m->vrcptlen;
	    p += strlen(p) + 1)
		if (addr_stats_note(tx, p, kind, (time_t)m->arrived) == -1)
			return (-1);
	return (0);
}

/* view_note - the message counts in its domains' inbound records */
static int
view_note(struct store_txn *tx, const struct spool_msg *m)
{
	const char *p;

	for (p = m->vdomains; p != NULL && p < m->vdomains + m->vdomlen;
	    p += strlen(p) + 1)
		if (relay_view_note(tx, p, (time_t)m->arrived, m->vclient) ==
		    -1)
			return (-1);
	return (0);
}

/*
 * round_put - every message's dedupe key and queue record, one write
 * transaction.  May run more than once (store.h): per-message results
 * are reset first.
 */
static int
round_put(struct store_txn *tx, void *arg)
{
	struct spool *sp = TAILQ_FIRST((struct msgq *)arg)->spool;
	struct msgq *round = arg;
	struct spool_msg *m;
	unsigned char val[DEDUPE_VALUE_LEN];
	const void *old;
	size_t oldlen;
	int64_t ttl = sp->relay->cfg->dedupe.ttl;
	int rc;

	TAILQ_FOREACH(m, round, entry) {
		m->dup = 0;
		if (m->status != 0)
			continue;
		if (m->has_key && ttl > 0) {
			spool_dedupe_value(val, m->arrived, m->id);
			rc = store_put_expiring(tx, STORE_DB_DEDUPE, m->key,
			    sizeof(m->key), val, sizeof(val),
			    store_txn_now(tx) + (time_t)ttl, MDB_NOOVERWRITE);
			if (rc == STORE_EXISTS) {
				m->dup = 1;
				if (addr_note(tx, m, ADDR_DUPLICATE) == -1)
					return (-1);
				if (store_get(tx, STORE_DB_DEDUPE, m->key,
				    sizeof(m->key), &old, &oldlen) == 0)
					spool_dedupe_first_id(old, oldlen,
					    m->first_id);
				else
					memcpy(m->first_id, "?", 2);
				continue;
			}
			if (rc != 0)
				return (-1);
		}
		if (store_put(tx, STORE_DB_QUEUE, m->id, QUEUE_ID_LEN, m->enc,
		    m->enclen, 0) != 0)
			return (-1);
		if (spool_ledger_pending(tx, m->id, m->arrived, m->lkey,
		    m->nlkey, m->lexpires) == -1)
			return (-1);
		if (view_note(tx, m) == -1 ||
		    addr_note(tx, m, ADDR_RECEIVED) == -1)
			return (-1);
	}
	return (0);
}

static void	round_release(struct spool *, struct msgq *, int);

/* round_size - write the message's length into its header (spool_file.c) */
static int
round_size(struct spool_msg *m)
{
	char v[SPOOL_SIZE_DIGITS + 1];
	ssize_t n;

	if (m->size_off == 0)
		return (0);
	snprintf(v, sizeof(v), "%0*" PRIu64, SPOOL_SIZE_DIGITS, m->body);
	do
		n = pwrite(m->fd, v, SPOOL_SIZE_DIGITS, (off_t)m->size_off);
	while (n == -1 && errno == EINTR);
	if (n != SPOOL_SIZE_DIGITS) {
		if (n >= 0)
			errno = EIO;
		return (-1);
	}
	return (0);
}

/*
 * spool_round - make every message of round durable, or fail it
 *
 * The order is DESIGN.md §4's - file fsync, directory fsync, LMDB - with
 * the rename moved before the file's fsync: on a journalling file system
 * the file's fsync then commits the rename with the data, and the
 * directory's fsync that POSIX asks for finds little left to do.  Until
 * that fsync returns, a crash may leave queue/ID cut short; its header
 * says how long the message is (round_size), so start-up refuses such a
 * file (spool_file_read) rather than index half a message.  None of
 * that was acknowledged: the 250 (spool_msg_early) waits for both
 * fsyncs.
 */
static void
spool_round(struct spool *sp, struct msgq *round)
{
	struct spool_msg *m;
	int nrenamed = 0, npoolnew = 0, nok = 0, nsync = 0;

	TAILQ_FOREACH(m, round, entry) {
		if (m->status != 0)
			continue;
		if (m->env != NULL && round_prepend(sp, m) == -1)
			continue;
		if (spool_msg_flush(m) == -1)
			spool_msg_fail(m, "write", m->werr);
		else if (round_size(m) == -1)
			spool_msg_fail(m, "write", errno);
	}
	TAILQ_FOREACH(m, round, entry) {
		if (m->status != 0)
			continue;
		nsync++;
		if (m->where == IN_POOL) {
			npoolnew += m->newname;
			continue;
		}
		if (renameat(sp->tmpfd, m->id, sp->queuefd, m->id) == -1)
			spool_msg_fail(m, "rename", errno);
		else {
			m->where = IN_QUEUE;
			nrenamed++;
		}
	}
	/* Several files: start writing them all back before waiting for
	 * the first, so the syncs that follow find most of it done. */
	if (nsync > 1)
		TAILQ_FOREACH(m, round, entry)
			if (m->status == 0)
				(void)sync_file_range(m->fd, 0, 0,
				    SYNC_FILE_RANGE_WRITE);
	/* A pool file whose name is durable: one fdatasync covers its data
	 * and its length, which is all a reader needs (spool_pool.c).  A
	 * new name also needs its inode and its directory. */
	TAILQ_FOREACH(m, round, entry) {
		if (m->status != 0)
			continue;
		if (m->where == IN_POOL && !m->newname) {
			if (fdatasync(m->fd) == -1)
				spool_msg_fail(m, "fdatasync", errno);
		} else if (fsync(m->fd) == -1)
			spool_msg_fail(m, "fsync", errno);
	}
	if (nrenamed > 0 && fsync(sp->queuefd) == -1) {
		int saved = errno;

		TAILQ_FOREACH(m, round, entry)
			if (m->status == 0 && m->where == IN_QUEUE)
				spool_msg_fail(m, "fsync spool/queue", saved);
	}
	if (npoolnew > 0 && fsync(sp->poolfd) == -1) {
		int saved = errno;

		TAILQ_FOREACH(m, round, entry)
			if (m->status == 0 && m->where == IN_POOL &&
			    m->newname)
				spool_msg_fail(m, "fsync spool/pool", saved);
	}
	TAILQ_FOREACH(m, round, entry)
		if (m->status == 0)
			nok++;
	if (nok > 0 && sp->test_crash)
		_exit(SPOOL_TEST_CRASH_STATUS);
	round_release(sp, round, 0);
}

/*
 * round_release - close what failed (status != 0; with all the rest
 * too): files removed, descriptors closed, buffers freed
 */
static void
round_release(struct spool *sp, struct msgq *round, int all)
{
	struct spool_msg *m;
	int nremoved = 0, npremoved = 0;

	TAILQ_FOREACH(m, round, entry) {
		if (m->status == 0 && !all)
			continue;
		if (m->status != 0) {
			if (m->where == IN_QUEUE)
				nremoved++;
			else if (m->where == IN_POOL)
				npremoved++;
			spool_msg_unlink(sp, m);
		}
		if (m->fd != -1) {
			close(m->fd);
			m->fd = -1;
		}
		free(m->buf);
		m->buf = NULL;
	}
	/* A failed message must not come back after a crash as a queued
	 * one without a record (start-up would rebuild it). */
	if (nremoved > 0)
		(void)fsync(sp->queuefd);
	if (npremoved > 0)
		(void)fsync(sp->poolfd);
}

/*
 * index_round - one LMDB transaction for every record of round; 0, or -1
 * with err (nothing committed)
 */
static int
index_round(struct spool *sp, struct msgq *round, char *err, size_t errlen)
{
	struct spool_msg *m;

	if (sp->index_delay_ms > 0)
		usleep(sp->index_delay_ms * 1000U);
	/* Before the record: the queue opens queue/ID once it sees it. */
	if (spool_pool_move(sp, round, err, errlen) == -1)
		return (-1);
	if (store_txn_run(sp->relay->store, 0, round_put, round, err,
	    errlen) != 0)
		return (-1);
	/* Committed: a duplicate has no record; its file goes. */
	TAILQ_FOREACH(m, round, entry)
		if (m->status == 0 && m->dup) {
			m->status = 1;
			snprintf(m->why, sizeof(m->why), "%s", m->first_id);
		}
	return (0);
}

/* ---- the threads and the way back to the loop ---- */

/*
 * spool_writer - the file rounds.  What is durable goes on to the index
 * thread, so the next round's fsyncs run while this one's records are
 * committed; a message with an early callback (spool_msg_early) is
 * reported to the loop at once, before its record.
 */
void *
spool_writer(void *arg)
{
	struct spool *sp = arg;
	struct spool_msg *m;
	struct msgq round;
	int tell;

	for (;;) {
		pthread_mutex_lock(&sp->mu);
		while (TAILQ_EMPTY(&sp->pending) && !sp->stop)
			pthread_cond_wait(&sp->cv, &sp->mu);
		if (TAILQ_EMPTY(&sp->pending)) {
			pthread_mutex_unlock(&sp->mu);
			break;
		}
		TAILQ_INIT(&round);
		TAILQ_CONCAT(&round, &sp->pending, entry);
		pthread_mutex_unlock(&sp->mu);

		spool_round(sp, &round);

		tell = 0;
		pthread_mutex_lock(&sp->mu);
		while ((m = TAILQ_FIRST(&round)) != NULL) {
			TAILQ_REMOVE(&round, m, entry);
			if (m->status != 0) {
				TAILQ_INSERT_TAIL(&sp->done, m, entry);
				tell = 1;
				continue;
			}
			if (m->dcb != NULL) {
				TAILQ_INSERT_TAIL(&sp->durable, m, early);
				tell = 1;
			}
			TAILQ_INSERT_TAIL(&sp->indexq, m, entry);
		}
		pthread_cond_signal(&sp->icv);
		pthread_mutex_unlock(&sp->mu);
		if (tell)
			wakeup_signal(sp->wake);
	}
	return (NULL);
}

/* pool_refill - the index thread's batch of pool files; a failure is
 * logged by the loop and asked again by the next spool_pool_take() */
static void
pool_refill(struct spool *sp, size_t want)
{
	char err[256];

	if (want == 0 || spool_pool_fill(sp, want, err, sizeof(err)) == 0)
		return;
	pthread_mutex_lock(&sp->mu);
	snprintf(sp->perr, sizeof(sp->perr), "%s", err);
	pthread_mutex_unlock(&sp->mu);
	wakeup_signal(sp->wake);
}

/*
 * spool_indexer - the LMDB rounds: every durable message waiting, one
 * transaction.  A failed transaction fails the messages nobody was told
 * about yet (no early callback: their files go, as before); those
 * already acknowledged are never failed: their files are durable and the
 * truth, so they are tried again every second (and start-up would index
 * them from their files), the error logged by the loop.
 */
void *
spool_indexer(void *arg)
{
	struct spool *sp = arg;
	struct spool_msg *m, *next;
	struct msgq round, retry;
	struct timespec until;
	char err[256];
	size_t want;
	int failed = 0;

	for (;;) {
		pthread_mutex_lock(&sp->mu);
		if (failed && !sp->istop) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			(void)pthread_cond_timedwait(&sp->icv, &sp->mu, &until);
		}
		while (TAILQ_EMPTY(&sp->indexq) && !sp->istop &&
		    !sp->pool_low)
			pthread_cond_wait(&sp->icv, &sp->mu);
		want = sp->pool_low && !sp->istop && sp->npool <
		    SPOOL_POOL_SIZE ? SPOOL_POOL_SIZE - sp->npool : 0;
		if (sp->pool_low && want == 0)
			sp->pool_low = 0;
		if (TAILQ_EMPTY(&sp->indexq) && want == 0) {
			int stop = sp->istop;

			pthread_mutex_unlock(&sp->mu);
			if (stop)
				break;
			continue;
		}
		TAILQ_INIT(&round);
		TAILQ_CONCAT(&round, &sp->indexq, entry);
		pthread_mutex_unlock(&sp->mu);

		if (TAILQ_EMPTY(&round)) {
			pool_refill(sp, want);
			continue;
		}

		TAILQ_INIT(&retry);
		failed = 0;
		if (index_round(sp, &round, err, sizeof(err)) == 0) {
			pthread_mutex_lock(&sp->mu);
			sp->istalled = 0;
			pthread_mutex_unlock(&sp->mu);
		} else {
			char what[300];

			snprintf(what, sizeof(what), "queue index: %s", err);
			failed = 1;
			for (m = TAILQ_FIRST(&round); m != NULL; m = next) {
				next = TAILQ_NEXT(m, entry);
				if (m->status != 0)
					continue;
				if (m->dcb == NULL) {
					spool_msg_fail(m, what, 0);
					continue;
				}
				TAILQ_REMOVE(&round, m, entry);
				TAILQ_INSERT_TAIL(&retry, m, entry);
			}
			pthread_mutex_lock(&sp->mu);
			snprintf(sp->ierr, sizeof(sp->ierr), "%s", what);
			sp->istalled = !TAILQ_EMPTY(&retry);
			if (sp->istop) {
				/* Left to start-up (spool_reconcile). */
				TAILQ_FOREACH(m, &retry, entry)
					m->cb = NULL;
				TAILQ_CONCAT(&round, &retry, entry);
			} else {
				TAILQ_CONCAT(&retry, &sp->indexq, entry);
				TAILQ_CONCAT(&sp->indexq, &retry, entry);
			}
			pthread_mutex_unlock(&sp->mu);
		}
		round_release(sp, &round, 1);
		pthread_mutex_lock(&sp->mu);
		TAILQ_CONCAT(&sp->done, &round, entry);
		pthread_mutex_unlock(&sp->mu);
		wakeup_signal(sp->wake);
		/* After the records: their messages can go out meanwhile. */
		pool_refill(sp, want);
	}
	return (NULL);
}

/*
 * spool_done_cb - on the loop: early callbacks of durable messages first
 * (a message of this batch's done list had its notice in this batch or
 * an earlier one), then finished messages to their callers
 */
void
spool_done_cb(void *arg)
{
	struct spool *sp = arg;
	struct msgq done, durable;
	struct spool_msg *m;
	char ierr[sizeof(sp->ierr)], perr[sizeof(sp->perr)];

	TAILQ_INIT(&done);
	TAILQ_INIT(&durable);
	pthread_mutex_lock(&sp->mu);
	TAILQ_CONCAT(&durable, &sp->durable, early);
	TAILQ_CONCAT(&done, &sp->done, entry);
	memcpy(ierr, sp->ierr, sizeof(ierr));
	sp->ierr[0] = '\0';
	memcpy(perr, sp->perr, sizeof(perr));
	sp->perr[0] = '\0';
	pthread_mutex_unlock(&sp->mu);
	if (perr[0] != '\0')
		log_warnx("spool: cannot refill the pool: %s (new messages "
		    "are written in spool/tmp meanwhile)", perr);
	if (ierr[0] != '\0')
		log_warnx("spool: %s (messages already acknowledged are kept "
		    "and indexed again every second)", ierr);
	while ((m = TAILQ_FIRST(&durable)) != NULL) {
		TAILQ_REMOVE(&durable, m, early);
		TAILQ_INSERT_TAIL(&sp->acked, m, acked);
		m->in_acked = 1;
		m->dcb(0, m->id, NULL, m->darg);
	}
	while ((m = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, m, entry);
		if (m->in_acked) {
			TAILQ_REMOVE(&sp->acked, m, acked);
			m->in_acked = 0;
		}
		if (m->status == -1)
			log_warnx("%s: not queued: %s", m->id, m->why);
		else if (m->status == 1 && m->dcb != NULL)
			log_info("%s: duplicate of %s, acknowledged before its "
			    "record: removed, not forwarded", m->id, m->why);
		/* A failed message was never reported durable. */
		if (m->status == -1 && m->dcb)
			m->dcb(-1, m->id, m->why, m->darg);
		if (m->cb)
			m->cb(m->status, m->id, m->status ? m->why : NULL,
			    m->arg);
		spool_msg_free(m);
	}
}

/*
 * spool_index_stalled - 1 while acknowledged messages wait for an index
 * the last round could not commit (a full map, say): new mail is better
 * refused with a 4xx than acknowledged into a queue that cannot move
 */
int
spool_index_stalled(struct spool *sp)
{
	int stalled;

	pthread_mutex_lock(&sp->mu);
	stalled = sp->istalled;
	pthread_mutex_unlock(&sp->mu);
	return (stalled);
}
