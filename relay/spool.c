/*
 * spool.c - spool files and their group-committed LMDB index.
 *
 * A message is durable when its data, its length and its name are on
 * disk; its LMDB "queue" record is committed after that (DESIGN.md §4).
 * The file alone is enough: start-up builds a missing record, dedupe key
 * and ledger entries from it.  So the SMTP server, which asks for it
 * (spool_msg_early()), answers 250 as soon as the file is durable, and
 * the record follows; any other caller (DSNs) hears back once the record
 * is committed, as before.
 *
 * Where a message is written (spool_pool.c): into a pool file,
 * spool/pool/ID, created empty ahead of time with its name already made
 * durable by a directory fsync shared with its batch, so ONE fdatasync
 * of the file is the only synchronous write its 250 waits for; the index
 * thread renames it to spool/queue/ID before its record.  When the pool
 * is empty (a burst larger than it), into spool/tmp/ID as before: file
 * fsync, rename to spool/queue/ID, directory fsync.
 *
 * Group commit, in two stages on two threads.  spool_msg_commit() only
 * queues the message.  The writer thread takes every queued message at
 * once and runs one round: flush each file and write its size into its
 * header, rename each tmp/ID to queue/ID, sync each file (fdatasync for
 * a pool file), fsync the queue directory once if a file was renamed;
 * the early callbacks go back to the loop, and the round goes on to the
 * index thread, which renames the pool files into spool/queue, puts
 * every durable message's record in ONE LMDB write transaction and hands
 * the round back to the loop, which calls each commit callback (and
 * refills the pool when it runs low).  Messages
 * committed while a stage runs wait for its next round, so N sessions
 * finishing DATA together share one directory fsync and one LMDB
 * commit, the next round's fsyncs overlap this round's LMDB commit, and
 * the loop never blocks on either.  A message that fails before it is
 * durable (write error, ENOSPC, fsync, rename) gets status -1 and its
 * file is removed from wherever it is: nothing half-written stays.  One
 * reported durable is never failed: if LMDB refuses its record, the
 * index thread tries again every second (and a restart indexes it from
 * the file); without an early callback, an LMDB failure fails it too.
 *
 * Dedupe (DESIGN.md §4).  A message whose record carries a relay
 * key (rec->has_relay_key) also puts that key into STORE_DB_DEDUPE, with
 * MDB_NOOVERWRITE and expiring after [dedupe] ttl, in the SAME LMDB
 * transaction as its queue record.  If the key is already there (another
 * copy was committed first, maybe in this very round), the message is a
 * duplicate: no queue record, its file is removed, and its callback gets
 * status 1 with the first copy's queue id as why.  The SMTP server looks
 * the key up before committing (spool_dedupe_lookup(), which also knows
 * the keys of messages acknowledged but not yet indexed); the put here
 * settles the race of two copies finishing DATA at the same time (the
 * second was answered 250 like the first, and is not forwarded).
 *
 * The ledger (common/ledger.h).  Every recipient the ledger tracks
 * (queue_ledger_tracked(): a ledger key, the upstream route) gets a
 * pending STORE_DB_LEDGER entry in the same transaction as the record,
 * milliseconds after the 250: the queue sends a message only once its
 * record is there, so no copy of it can reach a mailbox before a delta
 * pass can know the relay holds it.
 *
 * The same transaction counts the message in the inbound record of each
 * of its recipient domains (common/relay_view.h): the cutover verdict's
 * "no inbound for the quiet period" reads them.
 *
 * Start-up (spool_open): files left in spool/tmp are removed (their
 * sessions got no 250); whole messages in spool/pool move to spool/queue
 * and the rest of the pool is emptied for reuse (spool_pool_recover()); a
 * queue/ID file without a record gets one rebuilt
 * from the file (a crash between rename and commit: the client got no
 * 250 and may send again - a duplicate, never a loss); a record without
 * a file is dropped with a log line.  spool_rebuild_index() rebuilds the
 * whole index from the files with every delivery pending: a message that
 * was already delivered may be sent again, none is lost.  A rebuilt
 * record is what the SMTP server made at reception (spool_file_record():
 * the envelope, and the relay and ledger keys computed again from the
 * message), and the same transaction puts what round_put() would have:
 * its dedupe key (unless one is there) and its pending ledger entries.
 * A record that goes removes the pending ledger entries it wrote.
 *
 * The spool file's format and the dedupe value's are described where
 * they are written and read: spool_file.c, spool_writer.c.
 *
 * Files (spool_p.h has the structs and the calls between them): this one
 * is the public API (spool.h), a message's writes, start-up and
 * shutdown; spool_file.c is the file format; spool_writer.c the writer
 * thread and its fsync rounds; spool_rebuild.c start-up reconciliation
 * and --rebuild-index; spool_pool.c the pool.
 *
 * Exposure: the header values come from SMTP clients (HELO name,
 * addresses); the escaping keeps each on its line.  Ids are checked to be
 * 16 hex digits before they become a file name.
 *
 * Threading: every function runs on the loop thread.  The writer thread
 * and the index thread touch only messages handed to them
 * (spool_msg_commit gives up the caller's pointer) and the store
 * (MDB_NOTLS: any thread may commit); they never log and never call
 * back: the loop does both.
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
#include <sys/statvfs.h>
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

/* ---- small helpers ---- */

int
spool_id_valid(const char *id)
{
	return (id != NULL && strlen(id) == QUEUE_ID_LEN &&
	    strspn(id, "0123456789abcdef") == QUEUE_ID_LEN);
}

/* spool_write_all - write everything or fail with errno */
int
spool_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		if (n == 0) {
			errno = EIO;
			return (-1);
		}
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

/* spool_msg_fail - record the first failure of a message */
void
spool_msg_fail(struct spool_msg *m, const char *what, int errnum)
{
	if (m->status == -1)
		return;
	m->status = -1;
	if (errnum)
		snprintf(m->why, sizeof(m->why), "%s: %s", what, strerror(errnum));
	else
		snprintf(m->why, sizeof(m->why), "%s", what);
}

/* spool_msg_flush - write out the buffer; sticky failure in m->werr */
int
spool_msg_flush(struct spool_msg *m)
{
	if (m->werr)
		return (-1);
	if (m->buflen > 0 && spool_write_all(m->fd, m->buf, m->buflen) == -1) {
		m->werr = errno;
		return (-1);
	}
	m->buflen = 0;
	return (0);
}

static int
msg_put(struct spool_msg *m, const void *data, size_t len)
{
	if (m->werr)
		return (-1);
	if (m->buf == NULL && (m->buf = malloc(SPOOL_BUFSZ)) == NULL) {
		m->werr = ENOMEM;
		return (-1);
	}
	if (len > SPOOL_BUFSZ - m->buflen) {
		if (spool_msg_flush(m) == -1)
			return (-1);
		if (len >= SPOOL_BUFSZ) {
			if (spool_write_all(m->fd, data, len) == -1) {
				m->werr = errno;
				return (-1);
			}
			return (0);
		}
	}
	memcpy(m->buf + m->buflen, data, len);
	m->buflen += len;
	return (0);
}

void
spool_msg_free(struct spool_msg *m)
{
	if (m == NULL)
		return;
	if (m->fd != -1)
		close(m->fd);
	free(m->buf);
	free(m->env);
	free(m->enc);
	free(m->lkey);
	free(m->vclient);
	free(m->vdomains);
	free(m->vrcpts);
	free(m);
}

/* spool_msg_unlink - remove the message's file wherever it is */
void
spool_msg_unlink(struct spool *sp, struct spool_msg *m)
{
	if (m->where == IN_TMP)
		(void)unlinkat(sp->tmpfd, m->id, 0);
	else if (m->where == IN_POOL)
		(void)unlinkat(sp->poolfd, m->id, 0);
	else if (m->where == IN_QUEUE)
		(void)unlinkat(sp->queuefd, m->id, 0);
	m->where = GONE;
}

/* ---- messages ---- */

/* spool_msg_new - a new message in spool/tmp with a fresh queue id */
struct spool_msg *
spool_msg_new(struct spool *sp, char *err, size_t errlen)
{
	struct spool_msg *m;
	int tries, rc;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (NULL);
	}
	m->spool = sp;
	m->fd = -1;
	/* A pool file: its name is durable already (spool_pool.c). */
	if (spool_pool_take(sp, m->id) == 0) {
		m->fd = openat(sp->poolfd, m->id, O_RDWR | O_CLOEXEC);
		if (m->fd != -1) {
			m->where = IN_POOL;
			return (m);
		}
		log_warn("spool/pool/%s: cannot open it", m->id);
	}
	for (tries = 0; tries < 16; tries++) {
		pthread_mutex_lock(&sp->mu);	/* the index thread's too */
		rc = queue_id_new(m->id);
		pthread_mutex_unlock(&sp->mu);
		if (rc == -1)
			break;
		/* An id still queued (clock stepped back) is not reused. */
		if (faccessat(sp->queuefd, m->id, F_OK, 0) == 0)
			continue;
		m->fd = openat(sp->tmpfd, m->id,
		    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (m->fd != -1 || errno != EEXIST)
			break;
	}
	if (m->fd == -1) {
		snprintf(err, errlen, "spool/tmp: %s", strerror(errno));
		free(m);
		return (NULL);
	}
	m->where = IN_TMP;
	m->newname = 1;
	return (m);
}

const char *
spool_msg_id(const struct spool_msg *msg)
{
	return (msg->id);
}

/* spool_msg_envelope - put the header first, before any message byte */
int
spool_msg_envelope(struct spool_msg *m, const struct queue_record *rec)
{
	struct queue_record tmp = *rec;
	char *text;
	size_t len;
	int rc;

	if (m->env_written || m->body > 0) {
		errno = EINVAL;
		return (-1);
	}
	if (tmp.arrived == 0)
		tmp.arrived = time(NULL);
	tmp.size = 0;	/* not known yet: spool_writer.c writes it in */
	if (spool_env_build(&tmp, m->id, &text, &len) == -1) {
		m->werr = ENOMEM;
		return (-1);
	}
	rc = msg_put(m, text, len);
	m->size_off = spool_env_size_off(text, len);
	free(text);
	m->env_written = 1;
	return (rc);
}

/* spool_msg_write - append message bytes; -1 once any write failed */
int
spool_msg_write(struct spool_msg *m, const void *data, size_t len)
{
	if (msg_put(m, data, len) == -1)
		return (-1);
	m->body += len;
	return (0);
}

/*
 * spool_msg_commit - hand the message to the next commit round
 *
 * Takes *msgp (set to NULL).  cb runs later on the loop with 0 once the
 * message is durable, or -1 once every trace of it is gone.
 */
int
spool_msg_commit(struct spool_msg **msgp, struct queue_record *rec,
    spool_commit_cb *cb, void *arg)
{
	struct spool_msg *m = *msgp;
	struct spool *sp;

	if (m == NULL)
		return (-1);
	*msgp = NULL;
	sp = m->spool;
	m->cb = cb;
	m->arg = arg;
	memcpy(rec->id, m->id, sizeof(rec->id));
	rec->size = m->body;
	if (rec->arrived == 0)
		rec->arrived = time(NULL);
	m->arrived = rec->arrived;
	if ((m->has_key = rec->has_relay_key != 0))
		memcpy(m->key, rec->relay_key, sizeof(m->key));
	m->lexpires = queue_ledger_expiry(sp->relay->cfg, m->arrived,
	    LEDGER_PENDING);
	if (m->werr)
		spool_msg_fail(m, "write", m->werr);
	else if (spool_ledger_keys(sp->relay, rec, &m->lkey, &m->nlkey) == -1 ||
	    spool_view_domains(rec, &m->vdomains, &m->vdomlen) == -1 ||
	    spool_view_rcpts(rec, &m->vrcpts, &m->vrcptlen) == -1 ||
	    (m->vclient = strdup(rec->client ? rec->client : "")) == NULL)
		spool_msg_fail(m, "out of memory", 0);
	else if (!m->env_written &&
	    spool_env_build(rec, m->id, &m->env, &m->envlen) == -1)
		spool_msg_fail(m, "out of memory", 0);
	else if (queue_record_encode(rec, &m->enc, &m->enclen) == -1)
		spool_msg_fail(m, "queue record", errno);
	pthread_mutex_lock(&sp->mu);
	TAILQ_INSERT_TAIL(&sp->pending, m, entry);
	pthread_cond_signal(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	return (0);
}

/* spool_msg_early - report durability before the record (spool.h) */
void
spool_msg_early(struct spool_msg *m, spool_commit_cb *cb, void *arg)
{
	m->dcb = cb;
	m->darg = arg;
}

/* spool_msg_abort - drop a message that will not be committed */
void
spool_msg_abort(struct spool_msg **msgp)
{
	struct spool_msg *m = *msgp;

	if (m == NULL)
		return;
	*msgp = NULL;
	spool_msg_unlink(m->spool, m);
	spool_msg_free(m);
}

/*
 * spool_msg_open - open queue/ID for delivery
 *
 * *fd_r is positioned at the first message byte (*offset_r); *size_r
 * bytes follow.  -1 with errno ENOENT when there is no such file, EINVAL
 * when its header is damaged (logged).
 */
int
spool_msg_open(struct spool *sp, const char *id, int *fd_r, uint64_t *offset_r,
    uint64_t *size_r)
{
	uint64_t off, size;
	char err[256];
	int saved;

	if (spool_file_read(sp, id, NULL, fd_r, &off, &size, err,
	    sizeof(err)) == -1) {
		saved = errno;
		if (saved != ENOENT)
			log_warnx("%s: spool file: %s",
			    spool_id_valid(id) ? id : "?", err);
		errno = saved;
		return (-1);
	}
	if (offset_r)
		*offset_r = off;
	if (size_r)
		*size_r = size;
	return (0);
}

/* spool_remove - delete queue/ID; 0 also when it was already gone */
int
spool_remove(struct spool *sp, const char *id)
{
	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return (-1);
	}
	if (unlinkat(sp->queuefd, id, 0) == -1 && errno != ENOENT)
		return (-1);
	return (0);
}

struct dedupe_get {
	const unsigned char	*key;
	char			*first_id;
	int			 found;
};

static int
txn_dedupe_get(struct store_txn *tx, void *arg)
{
	struct dedupe_get *g = arg;
	const void *val;
	size_t vlen;
	int rc;

	g->found = 0;
	rc = store_get(tx, STORE_DB_DEDUPE, g->key, 32, &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0)
		return (-1);
	spool_dedupe_first_id(val, vlen, g->first_id);
	g->found = 1;
	return (0);
}

/*
 * spool_dedupe_lookup - is a live dedupe key there?  1 and the first
 * copy's queue id ("?" if its value is unreadable), 0 when not, -1 on a
 * store error (err filled).  A read transaction: no writer lock.
 */
int
spool_dedupe_lookup(struct spool *sp, const unsigned char key[32],
    char first_id[QUEUE_ID_LEN + 1], char *err, size_t errlen)
{
	struct dedupe_get g = { key, first_id, 0 };
	struct spool_msg *m;

	/* Acknowledged, its record (and key) not committed yet. */
	TAILQ_FOREACH(m, &sp->acked, acked)
		if (m->has_key && memcmp(m->key, key, sizeof(m->key)) == 0) {
			memcpy(first_id, m->id, QUEUE_ID_LEN + 1);
			return (1);
		}
	if (store_txn_run(sp->relay->store, 1, txn_dedupe_get, &g, err,
	    errlen) != 0)
		return (-1);
	return (g.found);
}

/* ---- free space ---- */

/*
 * spool_has_room - can the spool take a message of size bytes?
 *
 * Asked at MAIL, before anything is written (RFC 1870 §6: 452 when the
 * space is not there now): the file system holding spool/queue must
 * have size bytes free for unprivileged users beyond the reserve, and at
 * least one free inode where the file system counts them.  spool/tmp is
 * on the same file system (messages are renamed across).  A failed
 * fstatvfs() counts as room: the write path still catches ENOSPC, and
 * refusing all mail on an odd file system would be worse.
 */
int
spool_has_room(struct spool *sp, uint64_t size)
{
	struct statvfs st;
	uint64_t avail;

	if (sp == NULL || fstatvfs(sp->queuefd, &st) == -1)
		return (1);
	if (st.f_files != 0 && st.f_favail == 0)
		return (0);
	avail = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
	return (avail >= sp->reserve && avail - sp->reserve >= size);
}

/* reserve_from_env - the test hook's reserve, or SPOOL_RESERVE */
static uint64_t
reserve_from_env(void)
{
	const char *v = getenv(SPOOL_TEST_RESERVE_ENV);
	unsigned long long r;
	char *end;

	if (v == NULL || *v == '\0')
		return (SPOOL_RESERVE);
	errno = 0;
	r = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0')
		return (SPOOL_RESERVE);
	return ((uint64_t)r);
}

/* index_delay_from_env - the test hook's delay, or 0 */
static unsigned
index_delay_from_env(void)
{
	const char *v = getenv(SPOOL_TEST_INDEX_DELAY_ENV);
	unsigned long r;
	char *end;

	if (v == NULL || *v == '\0')
		return (0);
	errno = 0;
	r = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || r > 600000)
		return (0);
	return ((unsigned)r);
}

/* ---- open and close ---- */

/* open_dir - mkdir -p one level (0700) and open it */
static int
open_dir(int parentfd, const char *parent, const char *name, char *err,
    size_t errlen)
{
	int fd;

	if (mkdirat(parentfd, name, 0700) == 0)
		(void)fsync(parentfd);
	else if (errno != EEXIST) {
		snprintf(err, errlen, "%s/%s: mkdir: %s", parent, name,
		    strerror(errno));
		return (-1);
	}
	fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		snprintf(err, errlen, "%s/%s: %s", parent, name, strerror(errno));
	return (fd);
}

/*
 * spool_open - open (creating) state_dir/spool/{tmp,queue}, recover from
 * a crash, and start the writer thread
 *
 * Needs relay->cfg, relay->store and relay->base.
 */
int
spool_open(struct spool **spool_r, struct relay *relay, char *err,
    size_t errlen)
{
	const char *state = relay->cfg->global.state_dir;
	struct spool *sp;
	int statefd = -1, spoolfd = -1;

	*spool_r = NULL;
	if ((sp = calloc(1, sizeof(*sp))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	sp->relay = relay;
	sp->test_crash = getenv(SPOOL_TEST_CRASH_ENV) != NULL;
	sp->reserve = reserve_from_env();
	sp->tmpfd = sp->queuefd = sp->poolfd = -1;
	TAILQ_INIT(&sp->pending);
	TAILQ_INIT(&sp->done);
	TAILQ_INIT(&sp->indexq);
	TAILQ_INIT(&sp->durable);
	TAILQ_INIT(&sp->acked);
	pthread_mutex_init(&sp->mu, NULL);
	pthread_cond_init(&sp->cv, NULL);
	pthread_cond_init(&sp->icv, NULL);
	sp->index_delay_ms = index_delay_from_env();

	statefd = open(state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (statefd == -1) {
		snprintf(err, errlen, "%s: %s", state, strerror(errno));
		goto fail;
	}
	if ((spoolfd = open_dir(statefd, state, "spool", err, errlen)) == -1 ||
	    (sp->tmpfd = open_dir(spoolfd, "spool", "tmp", err, errlen)) == -1 ||
	    (sp->queuefd = open_dir(spoolfd, "spool", "queue", err,
	    errlen)) == -1 ||
	    (sp->poolfd = open_dir(spoolfd, "spool", "pool", err,
	    errlen)) == -1)
		goto fail;
	if (faccessat(spoolfd, "tmp", W_OK, AT_EACCESS) == -1 ||
	    faccessat(spoolfd, "queue", W_OK, AT_EACCESS) == -1 ||
	    faccessat(spoolfd, "pool", W_OK, AT_EACCESS) == -1) {
		snprintf(err, errlen, "%s/spool: not writable by this user "
		    "(give state_dir to the [global] user)", state);
		goto fail;
	}
	close(statefd);
	close(spoolfd);
	statefd = spoolfd = -1;

	if (spool_clean_tmp(sp, err, errlen) == -1 ||
	    spool_pool_recover(sp, err, errlen) == -1 ||
	    spool_reconcile(sp, err, errlen) == -1)
		goto fail;

	if (wakeup_new(&sp->wake, relay->base, spool_done_cb, sp, err,
	    errlen) == -1)
		goto fail;
	if (pthread_create(&sp->thread, NULL, spool_writer, sp) != 0) {
		snprintf(err, errlen, "cannot start the spool writer thread");
		goto fail;
	}
	sp->thread_started = 1;
	if (pthread_create(&sp->ithread, NULL, spool_indexer, sp) != 0) {
		snprintf(err, errlen, "cannot start the spool index thread");
		goto fail;
	}
	sp->ithread_started = 1;
	*spool_r = sp;
	return (0);
fail:
	if (statefd != -1)
		close(statefd);
	if (spoolfd != -1)
		close(spoolfd);
	spool_close(&sp);
	return (-1);
}

/*
 * spool_close - finish the rounds already queued, stop the writer
 *
 * Callbacks of rounds that finished but were not yet reported are NOT
 * called (their callers are gone by now); their messages are durable or
 * removed all the same.
 */
void
spool_close(struct spool **spoolp)
{
	struct spool *sp = *spoolp;
	struct spool_msg *m;

	if (sp == NULL)
		return;
	*spoolp = NULL;
	if (sp->thread_started) {
		pthread_mutex_lock(&sp->mu);
		sp->stop = 1;
		pthread_cond_signal(&sp->cv);
		pthread_mutex_unlock(&sp->mu);
		pthread_join(sp->thread, NULL);
	}
	if (sp->ithread_started) {	/* after the writer: it feeds this one */
		pthread_mutex_lock(&sp->mu);
		sp->istop = 1;
		pthread_cond_signal(&sp->icv);
		pthread_mutex_unlock(&sp->mu);
		pthread_join(sp->ithread, NULL);
	}
	while ((m = TAILQ_FIRST(&sp->done)) != NULL) {
		TAILQ_REMOVE(&sp->done, m, entry);
		spool_msg_free(m);
	}
	while ((m = TAILQ_FIRST(&sp->pending)) != NULL) {	/* no thread */
		TAILQ_REMOVE(&sp->pending, m, entry);
		spool_msg_unlink(sp, m);
		spool_msg_free(m);
	}
	wakeup_free(&sp->wake);
	if (sp->tmpfd != -1)
		close(sp->tmpfd);
	if (sp->queuefd != -1)
		close(sp->queuefd);
	if (sp->poolfd != -1)
		close(sp->poolfd);
	free(sp->pool);
	pthread_mutex_destroy(&sp->mu);
	pthread_cond_destroy(&sp->cv);
	pthread_cond_destroy(&sp->icv);
	free(sp);
}
