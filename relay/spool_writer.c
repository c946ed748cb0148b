/*
 * spool_writer.c - the spool's writer thread and its group-commit rounds
 * (spool.c's model; DESIGN.md §4, "Order of a commit").  One round takes
 * every message queued since the last one: flush and fsync each file,
 * rename tmp/ID to queue/ID, fsync the queue directory once, then ONE
 * LMDB write transaction with every record, its dedupe key, its pending
 * ledger entries and the per-domain inbound counts; the finished round
 * goes back to the loop (common/wakeup.h), which runs the callbacks.
 *
 * DEDUPE VALUE FORMAT (stable; STORE_DB_DEDUPE, key = the 32-byte relay
 * key, the store adds its expiry header in front):
 *   byte  1                  version
 *   8     first seen         unix time, big-endian
 *   16    queue id           of the copy that was queued
 *
 * Threading: spool_writer() runs on its own thread and touches only
 * the messages of its round and the store; it never logs and never
 * calls back.  spool_done_cb() runs on the loop.
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
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "checks.h"
#include "ledger.h"
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
	if (renameat(sp->tmpfd, name, sp->tmpfd, m->id) == -1)
		goto fail;
	close(m->fd);
	m->fd = fd2;
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
		if (view_note(tx, m) == -1)
			return (-1);
	}
	return (0);
}

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
 * that was acknowledged: 250 comes after the LMDB commit.
 */
static void
spool_round(struct spool *sp, struct msgq *round)
{
	struct spool_msg *m;
	char err[256];
	int nrenamed = 0, nok = 0, nremoved = 0;

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
		if (renameat(sp->tmpfd, m->id, sp->queuefd, m->id) == -1)
			spool_msg_fail(m, "rename", errno);
		else {
			m->where = IN_QUEUE;
			nrenamed++;
		}
	}
	TAILQ_FOREACH(m, round, entry)
		if (m->status == 0 && fsync(m->fd) == -1)
			spool_msg_fail(m, "fsync", errno);
	if (nrenamed > 0 && fsync(sp->queuefd) == -1) {
		int saved = errno;

		TAILQ_FOREACH(m, round, entry)
			if (m->status == 0)
				spool_msg_fail(m, "fsync spool/queue", saved);
	}
	TAILQ_FOREACH(m, round, entry)
		if (m->status == 0)
			nok++;
	if (nok > 0 && sp->test_crash)
		_exit(SPOOL_TEST_CRASH_STATUS);
	if (nok > 0 && store_txn_run(sp->relay->store, 0, round_put, round,
	    err, sizeof(err)) != 0) {
		char what[300];

		snprintf(what, sizeof(what), "queue index: %s", err);
		TAILQ_FOREACH(m, round, entry)
			if (m->status == 0)
				spool_msg_fail(m, what, 0);
	} else if (nok > 0) {
		/* Committed: a duplicate has no record; its file goes. */
		TAILQ_FOREACH(m, round, entry)
			if (m->status == 0 && m->dup) {
				m->status = 1;
				snprintf(m->why, sizeof(m->why), "%s",
				    m->first_id);
			}
	}
	TAILQ_FOREACH(m, round, entry) {
		if (m->status != 0) {
			if (m->where == IN_QUEUE)
				nremoved++;
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
}

/* ---- the thread and the way back to the loop ---- */

void *
spool_writer(void *arg)
{
	struct spool *sp = arg;
	struct msgq round;

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

		pthread_mutex_lock(&sp->mu);
		TAILQ_CONCAT(&sp->done, &round, entry);
		pthread_mutex_unlock(&sp->mu);
		wakeup_signal(sp->wake);
	}
	return (NULL);
}

/* spool_done_cb - on the loop: report finished rounds to their callers */
void
spool_done_cb(void *arg)
{
	struct spool *sp = arg;
	struct msgq done;
	struct spool_msg *m;

	TAILQ_INIT(&done);
	pthread_mutex_lock(&sp->mu);
	TAILQ_CONCAT(&done, &sp->done, entry);
	pthread_mutex_unlock(&sp->mu);
	while ((m = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, m, entry);
		if (m->status == -1)
			log_warnx("%s: not queued: %s", m->id, m->why);
		if (m->cb)
			m->cb(m->status, m->id, m->status ? m->why : NULL,
			    m->arg);
		spool_msg_free(m);
	}
}
