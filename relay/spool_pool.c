/*
 * spool_pool.c - the pool of pre-created spool files (spool/pool), so
 * that the 250 waits for ONE synchronous write (spool.c's model).
 *
 * A new file's name is durable only once its directory is fsync'd; a
 * message written into a fresh file therefore costs two syncs before its
 * 250 (the file, then the directory).  The pool moves the second one off
 * the message's path: the index thread creates empty files in spool/pool
 * under fresh queue ids, SPOOL_POOL_SIZE at a time, and fsyncs the
 * directory once for the batch; only then are they handed out.  A
 * message is written into its pool file in place (envelope header, then
 * the message, then its size into the header's size line) and one
 * fdatasync makes data and length durable together: the name already
 * was.  After the 250, the index thread renames pool/ID to queue/ID and
 * commits the record; the queue sends a message only once its record is
 * there, so delivery always finds queue/ID.
 *
 * What makes a pool file a committed message is its header's size line
 * (spool_file.c): written last, before the fdatasync, so a file whose
 * header parses and whose message is exactly that long was finished;
 * anything else (empty, a header cut short, a size of zeros, a message
 * shorter than its size) never got a 250.
 *
 * Start-up (spool_pool_recover, before spool_reconcile): every finished
 * message in spool/pool is renamed into spool/queue (where reconcile
 * gives it its record, or finds it has one); an empty file goes back to
 * the pool; an unfinished one is emptied and goes back too.  The rename
 * after the 250 is not fsync'd on its own: until the next sync of the
 * file system commits it, a crash leaves the file in spool/pool, where
 * start-up finds it - the name is in one place or the other, never lost.
 * At worst a message already delivered and removed comes back (its
 * removal undone with the rename): sent again, a duplicate, never a loss.
 *
 * Threading: spool_pool_take() on the loop; spool_pool_fill() and
 * spool_pool_move() on the index thread (or at start-up, before the
 * threads run); the free list is under struct spool's mutex, and so is
 * queue_id_new() (its counter is per process).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "queue_record.h"
#include "spool.h"
#include "spool_p.h"

/* pool_push - append ids to the free list (mu held) */
static int
pool_push(struct spool *sp, char (*ids)[QUEUE_ID_LEN + 1], size_t n)
{
	void *p;
	size_t na;

	if (sp->npool + n > sp->poolalloc) {
		na = sp->npool + n < SPOOL_POOL_SIZE * 2 ? SPOOL_POOL_SIZE * 2 :
		    sp->npool + n;
		if ((p = reallocarray(sp->pool, na, sizeof(*sp->pool))) == NULL)
			return (-1);
		sp->pool = p;
		sp->poolalloc = na;
	}
	memcpy(sp->pool + sp->npool, ids, n * sizeof(*ids));
	sp->npool += n;
	return (0);
}

/*
 * spool_pool_take - the oldest free pool file's id; -1 when the pool is
 * empty (the caller writes a file of its own in spool/tmp).  Asks the
 * index thread for more below SPOOL_POOL_LOW.
 */
int
spool_pool_take(struct spool *sp, char id[QUEUE_ID_LEN + 1])
{
	int rc = -1;

	pthread_mutex_lock(&sp->mu);
	if (sp->npool > 0) {
		memcpy(id, sp->pool[0], QUEUE_ID_LEN + 1);
		sp->npool--;
		memmove(sp->pool, sp->pool + 1, sp->npool * sizeof(*sp->pool));
		rc = 0;
	}
	if (sp->npool < SPOOL_POOL_LOW && !sp->pool_low) {
		sp->pool_low = 1;
		pthread_cond_signal(&sp->icv);
	}
	pthread_mutex_unlock(&sp->mu);
	return (rc);
}

/*
 * spool_pool_fill - create want empty files in spool/pool, fsync the
 * directory once, then add them to the free list.  -1 with err: none
 * added (those created are removed).
 */
int
spool_pool_fill(struct spool *sp, size_t want, char *err, size_t errlen)
{
	char (*ids)[QUEUE_ID_LEN + 1];
	size_t n = 0, i;
	int fd, tries = 0, rc = -1;

	if (want == 0)
		return (0);
	if ((ids = calloc(want, sizeof(*ids))) == NULL) {
		snprintf(err, errlen, "spool/pool: out of memory");
		return (-1);
	}
	while (n < want) {
		pthread_mutex_lock(&sp->mu);
		rc = queue_id_new(ids[n]);
		pthread_mutex_unlock(&sp->mu);
		if (rc == -1) {
			snprintf(err, errlen, "spool/pool: no queue id");
			goto fail;
		}
		/* An id still queued (clock stepped back) is not reused. */
		if (faccessat(sp->queuefd, ids[n], F_OK, 0) == 0) {
			if (++tries > 16)
				goto busy;
			continue;
		}
		fd = openat(sp->poolfd, ids[n],
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd == -1) {
			if (errno == EEXIST && ++tries <= 16)
				continue;
			snprintf(err, errlen, "spool/pool: %s",
			    strerror(errno));
			goto fail;
		}
		close(fd);
		n++;
	}
	if (fsync(sp->poolfd) == -1) {
		snprintf(err, errlen, "fsync spool/pool: %s", strerror(errno));
		goto fail;
	}
	pthread_mutex_lock(&sp->mu);
	rc = pool_push(sp, ids, n);
	sp->pool_low = 0;
	pthread_mutex_unlock(&sp->mu);
	if (rc == -1) {
		snprintf(err, errlen, "spool/pool: out of memory");
		goto fail;
	}
	free(ids);
	return (0);
busy:
	snprintf(err, errlen, "spool/pool: no free queue id");
fail:
	for (i = 0; i < n; i++)
		(void)unlinkat(sp->poolfd, ids[i], 0);
	pthread_mutex_lock(&sp->mu);
	sp->pool_low = 0;	/* asked again by the next spool_pool_take() */
	pthread_mutex_unlock(&sp->mu);
	free(ids);
	return (-1);
}

/*
 * spool_pool_move - rename the round's pool files into spool/queue
 * before their records are committed (index thread).  Not fsync'd: see
 * the top of this file.  -1 with err when one cannot be renamed (the
 * round is tried again, as when LMDB refuses it).
 */
int
spool_pool_move(struct spool *sp, struct msgq *round, char *err,
    size_t errlen)
{
	struct spool_msg *m;

	TAILQ_FOREACH(m, round, entry) {
		if (m->status != 0 || m->where != IN_POOL)
			continue;
		if (renameat(sp->poolfd, m->id, sp->queuefd, m->id) == -1) {
			snprintf(err, errlen, "%s: rename spool/pool to "
			    "spool/queue: %s", m->id, strerror(errno));
			return (-1);
		}
		m->where = IN_QUEUE;
	}
	return (0);
}

static int
idcmp(const void *a, const void *b)
{
	return (strcmp(a, b));
}

/* empty_file - truncate dirfd/id to nothing */
static int
empty_file(int dirfd, const char *id)
{
	int fd;

	if ((fd = openat(dirfd, id, O_WRONLY | O_TRUNC | O_CLOEXEC)) == -1)
		return (-1);
	close(fd);
	return (0);
}

/*
 * spool_pool_recover - start-up: finished messages in spool/pool go to
 * spool/queue, the rest back to the free list (emptied), then the pool
 * is filled up to SPOOL_POOL_SIZE.  Before spool_reconcile() and the
 * threads.
 */
int
spool_pool_recover(struct spool *sp, char *err, size_t errlen)
{
	char (*ids)[QUEUE_ID_LEN + 1] = NULL, why[256];
	size_t n = 0, alloc = 0, moved = 0, emptied = 0, i;
	struct dirent *de;
	struct stat st;
	DIR *d;
	void *p;
	int fd, prc, rc = -1;

	if ((fd = dup(sp->poolfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		snprintf(err, errlen, "spool/pool: %s", strerror(errno));
		if (fd != -1)
			close(fd);
		return (-1);
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (!spool_id_valid(de->d_name)) {
			log_warnx("spool/pool/%s: not named like a queue id; "
			    "ignored", de->d_name);
			continue;
		}
		if (n == alloc) {
			alloc = alloc ? alloc * 2 : SPOOL_POOL_SIZE;
			if ((p = reallocarray(ids, alloc, sizeof(*ids))) ==
			    NULL) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			ids = p;
		}
		memcpy(ids[n++], de->d_name, QUEUE_ID_LEN + 1);
	}
	if (n > 0)
		qsort(ids, n, sizeof(*ids), idcmp);
	for (i = 0; i < n; i++) {
		why[0] = '\0';
		switch (spool_file_check(sp->poolfd, ids[i], why,
		    sizeof(why))) {
		case 1:
			if (renameat(sp->poolfd, ids[i], sp->queuefd,
			    ids[i]) == -1) {
				snprintf(err, errlen, "spool/pool/%s: rename "
				    "to spool/queue: %s", ids[i],
				    strerror(errno));
				goto out;
			}
			log_notice("%s: whole message moved from "
			    "spool/pool to spool/queue", ids[i]);
			moved++;
			continue;
		case 0:
			if (fstatat(sp->poolfd, ids[i], &st, 0) == 0 &&
			    st.st_size > 0) {
				if (empty_file(sp->poolfd, ids[i]) == -1) {
					log_warn("spool/pool/%s: cannot empty "
					    "it; left", ids[i]);
					continue;
				}
				log_info("%s: unfinished message in spool/pool "
				    "(%s; never acknowledged): emptied and "
				    "reused", ids[i], why);
				emptied++;
			}
			break;
		default:
			log_warnx("spool/pool/%s: %s; left", ids[i], why);
			continue;
		}
		pthread_mutex_lock(&sp->mu);
		prc = pool_push(sp, &ids[i], 1);
		pthread_mutex_unlock(&sp->mu);
		if (prc == -1) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	if (moved > 0 && fsync(sp->queuefd) == -1) {
		snprintf(err, errlen, "fsync spool/queue: %s", strerror(errno));
		goto out;
	}
	if (emptied > 0)
		log_info("spool: %zu unfinished message(s) in spool/pool "
		    "emptied for reuse", emptied);
	/* A file system out of inodes must not keep the relay from starting
	 * (it answers 452 at MAIL then, spool_has_room): messages use
	 * spool/tmp until a refill works. */
	if (sp->npool < SPOOL_POOL_SIZE && spool_pool_fill(sp,
	    SPOOL_POOL_SIZE - sp->npool, why, sizeof(why)) == -1)
		log_warnx("spool: cannot fill the pool: %s (new messages are "
		    "written in spool/tmp meanwhile)", why);
	rc = 0;
out:
	closedir(d);
	free(ids);
	return (rc);
}
