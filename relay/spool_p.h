/*
 * spool_p.h - the inside of the spool (spool.h): struct spool and
 * struct spool_msg, the file format's constants, and the calls between
 * its files:
 *
 *   spool.c          public API, a message's writes, open and close
 *   spool_file.c     the spool file's envelope header, written and read
 *   spool_writer.c   the writer thread: group-commit rounds (fsync,
 *                    rename, one LMDB transaction), back to the loop
 *   spool_rebuild.c  start-up reconciliation, --rebuild-index
 *   spool_pool.c     the pool of pre-created files in spool/pool
 *
 * Private to those files.  Which thread may touch what is said on each
 * struct member ("(mu)": under struct spool's mutex).
 */
#ifndef FERRY_SPOOL_P_H
#define FERRY_SPOOL_P_H

#include <sys/queue.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "msgid.h"
#include "queue_record.h"
#include "spool.h"
#include "store.h"

struct relay;
struct wakeup;

#define SPOOL_MAGIC	"mailferry-spool 1"
#define SPOOL_BUFSZ	(64 * 1024)	/* write buffer, DATA sessions only */
#define SPOOL_LINEMAX	8192		/* longest header line */
#define SPOOL_SIZE_DIGITS 20		/* the header's size value, padded */
#define DEDUPE_VALUE_VERSION	1
/* Test hook: when set (to anything) in the relay's environment at start,
 * the writer thread ends the process with _exit(SPOOL_TEST_CRASH_STATUS)
 * after a round's files are durable and before its LMDB transaction: the
 * crash the start-up rebuild exists for, on demand, for
 * tests/integration/test_relay_pending.sh.  Unset (production), nothing
 * is different. */
#define SPOOL_TEST_CRASH_ENV	"MAILFERRY_TEST_CRASH_BEFORE_COMMIT"
#define SPOOL_TEST_CRASH_STATUS	86
/* Test hook: milliseconds (decimal) the index thread waits before each
 * of its commits, read at spool_open(), so a test can kill the relay
 * after a 250 that came before the record (spool_msg_early()) and see
 * start-up index the message from its file; tests/integration/
 * test_relay_pending.sh.  Unset (production): no wait. */
#define SPOOL_TEST_INDEX_DELAY_ENV "MAILFERRY_TEST_INDEX_DELAY_MS"
#define DEDUPE_VALUE_LEN	(1 + 8 + QUEUE_ID_LEN)
/* Test hook: a decimal byte count read at spool_open() that replaces
 * SPOOL_RESERVE, so a test can make any file system look full (a huge
 * value) without filling a disk; tests/unit/test_smtp_server.c uses it.
 * Unset (production), the reserve is SPOOL_RESERVE. */
#define SPOOL_TEST_RESERVE_ENV	"MAILFERRY_TEST_SPOOL_RESERVE"

/* The pool (spool_pool.c): empty files whose names in spool/pool were
 * made durable ahead of time; refilled by the index thread, in batches
 * of one directory fsync, when fewer than SPOOL_POOL_LOW are left. */
#define SPOOL_POOL_SIZE	256
#define SPOOL_POOL_LOW	128

enum msg_where { IN_TMP, IN_POOL, IN_QUEUE, GONE };

struct spool_msg {
	TAILQ_ENTRY(spool_msg) entry;
	struct spool	*spool;
	char		 id[QUEUE_ID_LEN + 1];
	int		 fd;
	enum msg_where	 where;
	char		*buf;		/* pending bytes, lazily allocated */
	size_t		 buflen;
	int		 env_written;	/* header is at the start of the file */
	/* Its name is not durable yet, so the round fsyncs its directory:
	 * not a pool file, or one rewritten by round_prepend. */
	int		 newname;
	size_t		 size_off;	/* its size value's offset, 0: none */
	uint64_t	 body;		/* message bytes accepted */
	int		 werr;		/* first write errno, 0 if none */
	/* set at commit */
	char		*env;		/* header to put in front (no envelope call) */
	size_t		 envlen;
	unsigned char	*enc;		/* the encoded queue record */
	size_t		 enclen;
	spool_commit_cb	*cb;
	void		*arg;
	/* spool_msg_early(): told once the file is durable */
	spool_commit_cb	*dcb;
	void		*darg;
	TAILQ_ENTRY(spool_msg) early;	/* on struct spool's durable (mu) */
	TAILQ_ENTRY(spool_msg) acked;	/* on struct spool's acked (loop) */
	int		 in_acked;	/* (loop) */
	int		 status;	/* 0, -1, or 1: duplicate */
	char		 why[320];
	/* dedupe: the relay key, put with the record */
	int		 has_key;
	unsigned char	 key[32];
	int64_t		 arrived;
	int		 dup;		/* spool_round_put: key already there */
	char		 first_id[QUEUE_ID_LEN + 1];
	/* the ledger: one pending entry per key, put with the record */
	unsigned char	(*lkey)[MSGKEY_LEN];
	size_t		 nlkey;
	time_t		 lexpires;
	/* the per-domain inbound records (relay_view.h) */
	char		*vclient;	/* "helo [addr]" */
	char		*vdomains;	/* "a.example\0b.example\0" */
	size_t		 vdomlen;
	/* the per-address counters (addr_stats.h): its distinct
	 * recipients, lower case, "a@x\0b@y\0"; none for a DSN of ours */
	char		*vrcpts;
	size_t		 vrcptlen;
};

TAILQ_HEAD(msgq, spool_msg);

struct spool {
	struct relay	*relay;
	int		 tmpfd;		/* spool/tmp */
	int		 queuefd;	/* spool/queue */
	int		 poolfd;	/* spool/pool */
	/* (mu) the free pool files' ids, oldest first (spool_pool.c);
	 * pool_low: below SPOOL_POOL_LOW, the index thread refills it */
	char		(*pool)[QUEUE_ID_LEN + 1];
	size_t		 npool;
	size_t		 poolalloc;
	int		 pool_low;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct msgq	 pending;	/* waiting for the next round (mu) */
	struct msgq	 done;		/* finished, for the loop (mu) */
	struct msgq	 indexq;	/* durable, for the index thread (mu) */
	struct msgq	 durable;	/* early notices, for the loop (mu;
					   linked through early) */
	pthread_cond_t	 icv;		/* the index thread's */
	/* Loop only: reported durable, record not committed yet; their
	 * relay keys count for spool_dedupe_lookup().  Linked through
	 * acked; only has_key, key and id are read, set before the commit. */
	struct msgq	 acked;
	int		 stop;		/* (mu) */
	int		 istop;		/* (mu) the index thread's stop */
	char		 ierr[300];	/* (mu) index failure to log, "" none */
	char		 perr[300];	/* (mu) refill failure to log */
	int		 istalled;	/* (mu) acknowledged messages wait for
					   an index the last round failed */
	pthread_t	 thread;
	int		 thread_started;
	pthread_t	 ithread;	/* the index thread */
	int		 ithread_started;
	unsigned	 index_delay_ms; /* SPOOL_TEST_INDEX_DELAY_ENV */
	struct wakeup	*wake;		/* writer -> loop: "done is not empty" */
	int		 test_crash;	/* SPOOL_TEST_CRASH_ENV was set */
	uint64_t	 reserve;	/* bytes kept free (spool_has_room) */
};

/* spool.c: a message's bytes and its files */
int	spool_id_valid(const char *id);
int	spool_write_all(int fd, const void *data, size_t len);
void	spool_msg_fail(struct spool_msg *m, const char *what, int errnum);
int	spool_msg_flush(struct spool_msg *m);
void	spool_msg_free(struct spool_msg *m);
void	spool_msg_unlink(struct spool *sp, struct spool_msg *m);

/* spool_file.c: the envelope header */
int	spool_env_build(const struct queue_record *rec, const char *id,
	    char **text_r, size_t *len_r);
size_t	spool_env_size_off(const char *text, size_t len);
int	spool_file_read(struct spool *sp, const char *id,
	    struct queue_record *rec, int *fd_r, uint64_t *offset_r,
	    uint64_t *size_r, char *err, size_t errlen);
/* spool_file_check - is dirfd/id (a pool file) a whole message?  1: yes
 * (its header parses and its size line matches), 0: empty or written in
 * part (never acknowledged), -1: cannot tell (err; errno). */
int	spool_file_check(int dirfd, const char *id, char *err,
	    size_t errlen);

/* spool_writer.c: what a round puts, the thread, back on the loop */
void	spool_dedupe_value(unsigned char v[DEDUPE_VALUE_LEN],
	    int64_t first_seen, const char *id);
void	spool_dedupe_first_id(const void *val, size_t vlen,
	    char id[QUEUE_ID_LEN + 1]);
int	spool_ledger_pending(struct store_txn *tx, const char *id,
	    int64_t arrived, const unsigned char (*keys)[MSGKEY_LEN],
	    size_t nkeys, time_t expires);
int	spool_ledger_keys(const struct relay *relay,
	    const struct queue_record *rec,
	    unsigned char (**keys_r)[MSGKEY_LEN], size_t *n_r);
int	spool_view_domains(const struct queue_record *rec, char **list_r,
	    size_t *len_r);
/* spool_view_rcpts - rec's distinct recipients for addr_stats.h, as
 * spool_view_domains() lists domains; 0 or -1 (out of memory) */
int	spool_view_rcpts(const struct queue_record *rec, char **list_r,
	    size_t *len_r);
void	*spool_writer(void *arg);
void	*spool_indexer(void *arg);
void	spool_done_cb(void *arg);

/* spool_pool.c: the pool */
int	spool_pool_take(struct spool *sp, char id[QUEUE_ID_LEN + 1]);
int	spool_pool_fill(struct spool *sp, size_t want, char *err,
	    size_t errlen);
int	spool_pool_recover(struct spool *sp, char *err, size_t errlen);
int	spool_pool_move(struct spool *sp, struct msgq *round, char *err,
	    size_t errlen);

/* spool_rebuild.c: start-up */
int	spool_clean_tmp(struct spool *sp, char *err, size_t errlen);
int	spool_reconcile(struct spool *sp, char *err, size_t errlen);

#endif
