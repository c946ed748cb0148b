/*
 * store.h - the LMDB environment shared by ferry-relay and ferry-syncd.
 *
 * One environment (state_dir/db) holds every named database both daemons
 * use; both processes open it at the same time, and ferryctl may open it
 * read-only beside them.  This module owns the environment, opens every
 * named database once, runs transactions (growing the map when it fills)
 * and implements keys that expire.  It knows nothing about what the
 * values mean: the layouts of queue records, dedupe records and so on
 * belong to the modules that write them.
 *
 * Transactions.  All reads and writes go through store_txn_run(), which
 * begins a transaction, calls the caller's function with a
 * struct store_txn, and commits.  Inside that function use store_get(),
 * store_put(), store_put_expiring(), store_del(), store_foreach() and
 * store_count().  A transaction belongs to the thread that runs
 * store_txn_run() and ends before it returns; nothing is ever left open.
 *
 * Threads.  The environment is opened with MDB_NOTLS, so any thread may
 * call store_txn_run() on the same struct store at the same time: read
 * transactions run in parallel, write transactions queue on LMDB's single
 * writer lock (shared with the other process).  store_open() and
 * store_close() are not thread-safe: call them while no other thread uses
 * the store.  Open a directory once per process and share the handle:
 * LMDB's locks belong to the process, so a second handle on the same
 * directory in the same process would reset the reader table, and
 * closing it would drop the first handle's locks.  Never use a struct
 * store in a child after fork(); the child must open its own.
 *
 * Map size.  The map starts at 64 MiB (or what the file records) and
 * doubles whenever a transaction fills it, up to STORE_MAP_MAX_DEFAULT
 * (or store_opts.map_max: [global] map_size); when the other process has
 * grown the file, this one adopts its size.  Growing waits until no
 * transaction of this process is running.  At the cap a write fails
 * ("store full: ...", -1) and store_full_at() says since when, until a
 * later write commits: callers answer their clients 4xx and go on.
 *
 * ON-DISK FORMAT (stable; both daemons and ferryctl depend on it).
 *   Named databases: "queue", "dedupe", "ledger", "sync_folder",
 *   "sync_map", "sync_intent", "cutover", "meta", and the internal
 *   "expiry" index.  Keys are at most 511 bytes (LMDB's limit); keys of
 *   expiring databases at most STORE_EXPIRING_KEYMAX bytes.
 *   Expiring databases (dedupe, ledger): every value starts with an
 *   8-byte header, the expiry time as a big-endian unsigned 64-bit count
 *   of seconds since the epoch, 0 meaning "never"; the caller's bytes
 *   follow.  The header is added by store_put()/store_put_expiring() and
 *   stripped by store_get()/store_foreach(): callers never see it.  Other
 *   databases store the caller's bytes unchanged.
 *   "expiry": key = 8-byte big-endian expiry time, 1-byte database id
 *   (enum store_db value), then the key in that database; value empty.
 *   An index entry is only a hint: the sweeper deletes a key only if the
 *   key's own header says it has expired.
 */
#ifndef FERRY_STORE_H
#define FERRY_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <lmdb.h>

/*
 * The named databases.  The numbers are written into the expiry index,
 * so they are part of the on-disk format: never renumber, only append.
 */
enum store_db {
	STORE_DB_QUEUE = 0,	/* relay: id -> envelope, recipient status */
	STORE_DB_DEDUPE = 1,	/* relay: rcpt\0key -> first seen; EXPIRING */
	STORE_DB_LEDGER = 2,	/* relay writes, syncd reads; EXPIRING */
	STORE_DB_SYNC_FOLDER = 3, /* syncd: account/folder -> UIDVALIDITY.. */
	STORE_DB_SYNC_MAP = 4,	/* syncd: account/folder/uid -> dst uid */
	STORE_DB_SYNC_INTENT = 5, /* syncd: APPENDs begun, not yet mapped */
	STORE_DB_CUTOVER = 6,	/* syncd: domain -> phase, MX answers */
	STORE_DB_META = 7,	/* format version, misc small settings */
	STORE_DB_COUNT
};

/* Return values of store_get()/store_put()/store_del() besides 0 and -1. */
#define STORE_NOTFOUND	1	/* no such key, or it has expired */
#define STORE_EXISTS	2	/* MDB_NOOVERWRITE and the key is live */

/* store_open() flags. */
#define STORE_RDONLY	0x01	/* read only: create nothing, write nothing */
/*
 * STORE_NOMETASYNC: commits of THIS process write their meta page
 * without waiting for it (LMDB's MDB_NOMETASYNC): one flush per commit
 * instead of two.  The database stays intact after any crash, but an
 * OS crash or power cut may undo this process's last commit (the next
 * commit, or store_sync(), makes it durable).  Only for a process
 * whose every write either can be redone from elsewhere or is followed
 * by store_sync() where it must survive a power cut: ferry-relay, whose
 * spool files are the truth (relay/spool.c).  The flag is per open
 * environment handle: the other process's commits keep their own.
 */
#define STORE_NOMETASYNC 0x02

/* Bytes in front of every value of an expiring database. */
#define STORE_EXPIRY_HDRLEN	8
/* Longest key of an expiring database (index key = 9 bytes + key). */
#define STORE_EXPIRING_KEYMAX	(511 - 9)

#define STORE_MAP_DEFAULT	((size_t)64 << 20)	/* 64 MiB */
#if SIZE_MAX > 0xffffffffu
#define STORE_MAP_MAX_DEFAULT	((size_t)16 << 30)	/* 16 GiB */
#else
#define STORE_MAP_MAX_DEFAULT	((size_t)1 << 30)	/* 1 GiB */
#endif
#define STORE_MAXREADERS	126
#define STORE_SWEEP_BATCH	256	/* store_sweep_expired() batch of 0 */

/*
 * Tuning for store_open_opts(); a zero field takes the default.  The map
 * starts at max(map_size, the size recorded in the file) and doubles on
 * MDB_MAP_FULL up to map_max.  Tests use a tiny map_size to exercise
 * growth; daemons have no reason to change anything.
 */
struct store_opts {
	size_t		map_size;	/* initial map size, bytes */
	size_t		map_max;	/* growth cap, bytes */
	unsigned	max_readers;	/* reader slots, all processes */
};

struct store;		/* the environment; see store.c */
struct store_txn;	/* one running transaction; lives in store_txn_run() */

/*
 * The caller's transaction body.  Return 0 to commit; any other value
 * aborts the transaction and becomes store_txn_run()'s return value (use
 * -1 for errors, positive values for your own "nothing to do" answers).
 *
 * THE FUNCTION MAY RUN MORE THAN ONCE.  When the map fills, the
 * transaction is aborted, the map grown and fn called again from the
 * start in a fresh transaction.  So fn must reset whatever it writes into
 * arg at its start, must not have effects outside the transaction (no
 * I/O, no sending replies, no freeing caller memory) and must not call
 * store_txn_run() itself (refused: it would deadlock on the writer lock).
 * Pointers returned by store_get()/store_foreach() point into the map:
 * copy what you need before fn returns.
 */
typedef int store_txn_fn(struct store_txn *tx, void *arg);

/*
 * store_foreach() callback: key and value (header already stripped) are
 * valid only during the call.  Return 0 to go on; anything else stops the
 * walk and is returned by store_foreach().  It must not write to the
 * database being walked (collect keys, delete afterwards).
 */
typedef int store_foreach_fn(const void *key, size_t klen, const void *val,
    size_t vlen, void *arg);

/*
 * Opening.  store_open() creates dir (0700) and the files (0600) unless
 * flags has STORE_RDONLY, in which case a missing directory or store is
 * an error and nothing is created.  *store_r is NULL on failure.
 * store_close() sets *store to NULL and accepts NULL; no transaction may
 * be running in any thread.
 */
int	store_open(struct store **store_r, const char *dir, int flags,
	    char *err, size_t errlen);
int	store_open_opts(struct store **store_r, const char *dir, int flags,
	    const struct store_opts *opts, char *err, size_t errlen);
void	store_close(struct store **store);
/* store_sync - make every commit of this process durable now (for a
 * STORE_NOMETASYNC store; a no-op flush otherwise); -1 with err. */
int	store_sync(struct store *store, char *err, size_t errlen);

/*
 * Accessors.  store_env() and store_dbi() are for raw LMDB calls on
 * store_txn_mdb() (cursor range scans, mdb_env_stat); never begin a
 * transaction on store_env() yourself, it would race map growth.
 * store_dbi() is 0 for an unknown database, or one absent from a store
 * opened read-only.  store_stale_readers(): reader slots of dead
 * processes that store_open() cleared.  store_reader_check() does the
 * same now (the daemons call it periodically: the other one may crash
 * while they run); *cleared_r may be NULL.
 */
MDB_env	*store_env(struct store *store);
MDB_dbi	 store_dbi(struct store *store, enum store_db db);
const char *store_db_name(enum store_db db);	/* NULL if unknown */
int	 store_db_expiring(enum store_db db);	/* dedupe, ledger */
int	 store_stale_readers(const struct store *store);
size_t	 store_map_size(struct store *store);	/* this process's map */
time_t	 store_full_at(struct store *store);	/* 0: not full */
int	 store_reader_check(struct store *store, int *cleared_r,
	    char *err, size_t errlen);

/*
 * Transactions.  store_txn_run() returns 0 (committed), fn's non-zero
 * value (aborted; err holds the message of the first failed store_*
 * call or of store_txn_seterr(), if any), or -1 (begin or commit
 * failed, or a store_* call hit an LMDB error: the transaction is then
 * doomed and rolled back even if fn returned 0).  A store_* call that
 * fails on its arguments (bad key length, read-only transaction) does
 * not doom the transaction: fn may skip that item and commit the rest.
 * store_txn_mdb_err() reports a failed raw LMDB call (rc) on
 * store_txn_mdb() so MDB_MAP_FULL grows the map too; it returns -1.
 * store_txn_now() is the clock expiry checks use (time() at begin).
 */
int	store_txn_run(struct store *store, int rdonly, store_txn_fn *fn,
	    void *arg, char *err, size_t errlen);
MDB_txn	*store_txn_mdb(struct store_txn *tx);
time_t	 store_txn_now(const struct store_txn *tx);
int	 store_txn_mdb_err(struct store_txn *tx, int rc, const char *what);
void	 store_txn_seterr(struct store_txn *tx, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/*
 * Keys.  All return 0, STORE_NOTFOUND / STORE_EXISTS where noted, or -1.
 * store_get(): *val_r and *vlen_r (either may be NULL) point into the
 * map and stay valid until the next write in this transaction or its
 * end; an expired key is STORE_NOTFOUND.  store_put(): flags 0 or
 * MDB_NOOVERWRITE (STORE_EXISTS if a live key is there; an expired one
 * is replaced); val must not point into the map (copy a value from
 * store_get() before writing it back); in an expiring database the value
 * never expires.  store_put_expiring(): only for expiring databases; the
 * key vanishes for readers at expires_at (0 = never) and is deleted by
 * the next sweep after that.  store_del(): STORE_NOTFOUND if missing or
 * expired (an expired key is removed all the same).  store_foreach():
 * live keys starting with prefix (prefixlen 0: all) in key order; returns
 * 0, cb's non-zero value, or -1.  store_count(): raw entry count,
 * including expired keys not yet swept.
 */
int	store_get(struct store_txn *tx, enum store_db db, const void *key,
	    size_t klen, const void **val_r, size_t *vlen_r);
int	store_put(struct store_txn *tx, enum store_db db, const void *key,
	    size_t klen, const void *val, size_t vlen, unsigned flags);
int	store_put_expiring(struct store_txn *tx, enum store_db db,
	    const void *key, size_t klen, const void *val, size_t vlen,
	    time_t expires_at, unsigned flags);
int	store_del(struct store_txn *tx, enum store_db db, const void *key,
	    size_t klen);
int	store_foreach(struct store_txn *tx, enum store_db db,
	    const void *prefix, size_t prefixlen, store_foreach_fn *cb,
	    void *arg);
int	store_count(struct store_txn *tx, enum store_db db, size_t *count_r);

/*
 * Sweeping.  Deletes every key whose expiry is <= now, in transactions
 * of at most batch index entries (0: STORE_SWEEP_BATCH) so LMDB's single
 * writer lock, shared with the other daemon, is never held for long.
 * Runs until nothing due is left.  *removed_r (may be NULL) counts the
 * keys deleted, also those of batches committed before a failure.  Call
 * it from a timer, outside any transaction function.
 */
int	store_sweep_expired(struct store *store, time_t now, size_t batch,
	    size_t *removed_r, char *err, size_t errlen);

#endif
