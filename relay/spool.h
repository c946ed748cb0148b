/*
 * spool.h - the relay's spool: message files under spool/ and their
 * group-committed LMDB index (DESIGN.md §4, "Spool" and "Order of a
 * commit").  spool.c describes the model and the file format.
 *
 * Ownership: struct spool belongs to struct relay (main.c opens it after
 * the store and closes it before); a struct spool_msg belongs to its
 * caller until spool_msg_commit() or spool_msg_abort() takes it.
 * Threading: every function runs on the relay's loop; the fsync rounds
 * and the LMDB rounds run on the spool's own two threads and report back
 * on the loop.
 */
#ifndef FERRY_SPOOL_H
#define FERRY_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "queue_record.h"

struct relay;

/* Under [global] state_dir; ferryctl reads both without the daemon. */
#define RELAY_DB_DIR		"db"		/* the LMDB environment */
#define RELAY_SPOOL_QUEUE_DIR	"spool/queue"	/* spool files by id */
/* Pre-created files a message is written into (spool_pool.c); a file
 * there is empty, or a message whose record is not committed yet. */
#define RELAY_SPOOL_POOL_DIR	"spool/pool"


struct spool;
struct spool_msg;

/* Called on the loop once the message is durable (status 0) or failed
 * (-1, with a reason for the log; nothing of it is left on disk), or
 * (1) found to be a duplicate: its relay key was already in
 * STORE_DB_DEDUPE, why is the first copy's queue id ("?" if unknown), and
 * nothing of it is left on disk. */
typedef void spool_commit_cb(int status, const char *id, const char *why,
    void *arg);

/* Free space the spool keeps for what it has already accepted (messages
 * in DATA, LMDB growth, bounces): below it, new mail is refused with 452
 * at MAIL (spool_has_room). */
#define SPOOL_RESERVE		(32ULL * 1024 * 1024)

int	spool_open(struct spool **spool_r, struct relay *relay, char *err,
	    size_t errlen);
void	spool_close(struct spool **spool);
struct spool_msg *spool_msg_new(struct spool *spool, char *err, size_t errlen);
const char *spool_msg_id(const struct spool_msg *msg);
/* Optional, before the first spool_msg_write(): write the envelope header
 * (sender, client, flags, deliveries of rec; rec->id is ignored) now, so
 * the body streams straight after it.  Without it, spool_msg_commit()
 * rewrites the file with the header in front (fine for small messages
 * such as DSNs).  spool_msg_commit() fills rec->id and rec->size, encodes
 * rec at once (the caller keeps ownership) and always reports through cb
 * later on the loop, never from inside the call. */
int	spool_msg_envelope(struct spool_msg *msg, const struct queue_record *rec);
int	spool_msg_write(struct spool_msg *msg, const void *data, size_t len);
int	spool_msg_commit(struct spool_msg **msg, struct queue_record *rec,
	    spool_commit_cb *cb, void *arg);
/*
 * Optional, before spool_msg_commit(): cb is called on the loop as soon
 * as the message's file is durable in spool/queue (status 0) - before
 * its LMDB record is committed - or with -1 when it failed before that
 * (nothing of it left; the commit callback then gets -1 too).  After a
 * 0 the message is never failed: its file is the truth, its record is
 * committed later (retried while LMDB refuses; a restart in between
 * indexes it from the file), and the commit callback reports 0, or 1
 * when it turned out to be a duplicate (its file removed).  For the SMTP
 * server's 250, which then waits for the fsyncs only.
 */
void	spool_msg_early(struct spool_msg *msg, spool_commit_cb *cb,
	    void *arg);
void	spool_msg_abort(struct spool_msg **msg);
int	spool_msg_open(struct spool *spool, const char *id, int *fd_r,
	    uint64_t *offset_r, uint64_t *size_r);
int	spool_remove(struct spool *spool, const char *id);
/* 1: the spool's file system has size bytes free beyond SPOOL_RESERVE
 * (and a free inode); 0: it has not; a failed query counts as room. */
int	spool_has_room(struct spool *spool, uint64_t size);
int	spool_index_stalled(struct spool *spool);
int	spool_rebuild_index(struct spool *spool, size_t *count_r, char *err,
	    size_t errlen);
/* 1: key is a live dedupe key (first_id: the queued copy, "?" if
 * unknown); 0: not there; -1: store error. */
int	spool_dedupe_lookup(struct spool *spool, const unsigned char key[32],
	    char first_id[QUEUE_ID_LEN + 1], char *err, size_t errlen);

#endif
