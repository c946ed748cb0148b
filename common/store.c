/*
 * store.c - the shared LMDB environment: opening it, transactions that
 * grow the map when it fills, keys that expire and their sweeper.  The
 * on-disk format is described in store.h.
 *
 * SECURITY: nothing here parses network input, but keys are built from
 * addresses and Message-IDs a peer chose, so every key length is checked
 * against LMDB's limits before it is used: an overlong key fails that one
 * write instead of failing the whole transaction later.  The directory is
 * created 0700 and the files 0600 because dedupe and ledger keys name the
 * people who correspond.  A value read back is trusted only as far as its
 * length: a value of an expiring database shorter than its header is
 * reported as corrupt, never read past.
 *
 * Ownership and threads: struct store owns the MDB_env, the database
 * handles and resize_lock.  The handles are opened once, in store_open(),
 * and never change afterwards, so any thread may read them without a
 * lock.  Every transaction holds resize_lock for reading from its begin
 * to its end; growing the map takes it for writing, because
 * mdb_env_set_mapsize() remaps the file and is legal only while no
 * transaction of this process is running.  map_size changes only under
 * the write lock.  A struct store_txn lives on the stack of
 * store_txn_run() and belongs to the thread running it.
 */

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "bytes.h"
#include "store.h"
#include "util.h"

#define STORE_MAP_MIN	((size_t)32 << 10)	/* smallest map accepted */
#define STORE_MAXDBS	16	/* named databases: 9 used, room to add */
#define STORE_RETRIES	64	/* begin/grow rounds before giving up */
#define STORE_ERRMAX	256
#define EXPIRY_KEYHDR	9	/* index key: 8-byte time + 1-byte db id */
#define EXPIRY_DB_NAME	"expiry"

static const char *const db_names[STORE_DB_COUNT] = {
	[STORE_DB_QUEUE] = "queue",
	[STORE_DB_DEDUPE] = "dedupe",
	[STORE_DB_LEDGER] = "ledger",
	[STORE_DB_SYNC_FOLDER] = "sync_folder",
	[STORE_DB_SYNC_MAP] = "sync_map",
	[STORE_DB_SYNC_INTENT] = "sync_intent",
	[STORE_DB_CUTOVER] = "cutover",
	[STORE_DB_META] = "meta",
};

/*
 * The environment.  Everything but map_size is written by store_open()
 * only; map_size is guarded by resize_lock (see the header comment).
 */
struct store {
	MDB_env		*env;		/* owned; closed by store_close() */
	MDB_dbi		 dbi[STORE_DB_COUNT];
	int		 have[STORE_DB_COUNT];	/* 0: absent (read-only open) */
	MDB_dbi		 expiry;	/* the internal expiry index */
	int		 have_expiry;
	int		 rdonly;	/* opened with STORE_RDONLY */
	int		 stale_cleared;	/* dead readers cleared at open */
	size_t		 map_max;	/* growth cap, bytes */
	size_t		 maxkey;	/* LMDB's key limit (511) */
	pthread_rwlock_t resize_lock;	/* read: in a txn; write: remapping */
	int		 lock_inited;
	size_t		 map_size;	/* current map; written under the
					   write lock, read atomically */
	int64_t		 full_at;	/* last write refused at map_max; 0
					   after a later write commits
					   (atomic: any thread) */
};

/*
 * One running transaction.  Lives on the stack of store_txn_run(); the
 * caller's function only ever sees a pointer to it.
 */
struct store_txn {
	struct store	*store;		/* not owned */
	MDB_txn		*txn;		/* ended by store_txn_run() */
	int		 rdonly;
	time_t		 now;		/* clock for expiry checks */
	int		 map_full;	/* a write hit MDB_MAP_FULL: grow, rerun */
	int		 failed;	/* LMDB refused something: never commit */
	char		 err[STORE_ERRMAX];	/* why fn failed, for err */
};

/* Set while this thread runs a transaction function: refuses nesting. */
static _Thread_local int store_in_txn;

/*
 * txn_fail - record a failure inside a transaction; returns -1.  A fatal
 * failure (LMDB refused an operation) dooms the transaction and its
 * message sticks, since later errors are mostly its consequences.  A
 * non-fatal one (bad arguments, nothing touched) leaves the choice to
 * the caller: it may skip that item and still commit the rest.
 */
static int	txn_fail(struct store_txn *tx, int fatal, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));

static int
txn_fail(struct store_txn *tx, int fatal, const char *fmt, ...)
{
	va_list ap;

	if (tx->failed)
		return (-1);
	va_start(ap, fmt);
	vsnprintf(tx->err, sizeof(tx->err), fmt, ap);
	va_end(ap);
	if (fatal)
		tx->failed = 1;
	return (-1);
}

/* txn_mdb_fail - record an LMDB error of operation op on database db */
static int
txn_mdb_fail(struct store_txn *tx, int rc, const char *op, const char *db)
{
	if (rc == MDB_MAP_FULL)
		tx->map_full = 1;
	return (txn_fail(tx, 1, "%s %s: %s", op, db, mdb_strerror(rc)));
}

/* is_expired - expiry 0 never expires; otherwise gone from that second */
static int
is_expired(uint64_t expires_at, time_t now)
{
	if (expires_at == 0 || now < 0)
		return (0);
	return (expires_at <= (uint64_t)now);
}

/* store_db_name - the LMDB name of a database, or NULL */
const char *
store_db_name(enum store_db db)
{
	if ((unsigned)db >= STORE_DB_COUNT)
		return (NULL);
	return (db_names[db]);
}

/* store_db_expiring - whether values of db carry the expiry header */
int
store_db_expiring(enum store_db db)
{
	return (db == STORE_DB_DEDUPE || db == STORE_DB_LEDGER);
}

/*
 * check_args - common checks of a key operation.  Returns 0, or -1 with
 * the failure recorded in tx.
 */
static int
check_args(struct store_txn *tx, enum store_db db, size_t klen, int write,
    const char *op)
{
	size_t max;

	if ((unsigned)db >= STORE_DB_COUNT)
		return (txn_fail(tx, 0, "%s: unknown database %d", op, (int)db));
	if (write && tx->rdonly)
		return (txn_fail(tx, 0, "%s %s: read-only transaction", op,
		    db_names[db]));
	max = tx->store->maxkey;
	if (store_db_expiring(db) && max > STORE_EXPIRING_KEYMAX)
		max = STORE_EXPIRING_KEYMAX;
	if (klen == 0 || klen > max)
		return (txn_fail(tx, 0, "%s %s: key length %zu not in 1..%zu",
		    op, db_names[db], klen, max));
	return (0);
}

/*
 * unwrap - split a value of an expiring database into its expiry and the
 * caller's bytes.  Returns 0, or -1 if the value is shorter than the
 * header (corrupt).
 */
static int
unwrap(MDB_val *v, uint64_t *expires_r)
{
	if (v->mv_size < STORE_EXPIRY_HDRLEN)
		return (-1);
	*expires_r = be64_get(v->mv_data);
	v->mv_data = (unsigned char *)v->mv_data + STORE_EXPIRY_HDRLEN;
	v->mv_size -= STORE_EXPIRY_HDRLEN;
	return (0);
}

/* index_key - build an expiry index key; buf holds EXPIRY_KEYHDR + klen */
static void
index_key(unsigned char *buf, uint64_t expires_at, enum store_db db,
    const void *key, size_t klen, MDB_val *ik)
{
	be64_put(buf, expires_at);
	buf[8] = (unsigned char)db;
	memcpy(buf + EXPIRY_KEYHDR, key, klen);
	ik->mv_data = buf;
	ik->mv_size = EXPIRY_KEYHDR + klen;
}

/* index_del - remove one expiry index entry; a missing one is fine */
static int
index_del(struct store_txn *tx, uint64_t expires_at, enum store_db db,
    const void *key, size_t klen)
{
	unsigned char buf[EXPIRY_KEYHDR + STORE_EXPIRING_KEYMAX];
	MDB_val ik;
	int rc;

	index_key(buf, expires_at, db, key, klen, &ik);
	rc = mdb_del(tx->txn, tx->store->expiry, &ik, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return (txn_mdb_fail(tx, rc, "del", EXPIRY_DB_NAME));
	return (0);
}

/* store_open - open the environment with default tuning */
int
store_open(struct store **store_r, const char *dir, int flags, char *err,
    size_t errlen)
{
	return (store_open_opts(store_r, dir, flags, NULL, err, errlen));
}

/*
 * open_dbs - open every named database once.  Run through
 * store_txn_run() so a map too small for the first commit grows too.
 */
static int
open_dbs(struct store_txn *tx, void *arg)
{
	struct store *st = tx->store;
	unsigned flags = st->rdonly ? 0 : MDB_CREATE;
	int i, rc;

	(void)arg;
	for (i = 0; i < STORE_DB_COUNT; i++) {
		st->have[i] = 0;
		rc = mdb_dbi_open(tx->txn, db_names[i], flags, &st->dbi[i]);
		if (rc == MDB_NOTFOUND && st->rdonly)
			continue;	/* written by an older version */
		if (rc != 0)
			return (txn_mdb_fail(tx, rc, "open", db_names[i]));
		st->have[i] = 1;
	}
	st->have_expiry = 0;
	rc = mdb_dbi_open(tx->txn, EXPIRY_DB_NAME, flags, &st->expiry);
	if (rc == MDB_NOTFOUND && st->rdonly)
		return (0);
	if (rc != 0)
		return (txn_mdb_fail(tx, rc, "open", EXPIRY_DB_NAME));
	st->have_expiry = 1;
	return (0);
}

/* env_map_size - the map size LMDB currently uses in this process */
static size_t
env_map_size(MDB_env *env)
{
	MDB_envinfo info;

	if (mdb_env_info(env, &info) != 0)
		return (0);
	return (info.me_mapsize);
}

/* set_map_size - record the map size; caller holds resize_lock (write) */
static void
set_map_size(struct store *st)
{
	__atomic_store_n(&st->map_size, env_map_size(st->env),
	    __ATOMIC_RELAXED);
}

/*
 * prepare_dir - make sure dir exists and is a directory.  A read-only
 * open creates nothing, so a missing directory is an error then.
 */
static int
prepare_dir(const char *dir, int rdonly, char *err, size_t errlen)
{
	struct stat sb;

	if (stat(dir, &sb) == -1) {
		if (errno != ENOENT || rdonly) {
			errbuf_set(err, errlen, errno == ENOENT ?
			    "store directory %s does not exist" :
			    "store directory %s: %s", dir, strerror(errno));
			return (-1);
		}
		if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
			errbuf_set(err, errlen,
			    "cannot create store directory %s: %s", dir,
			    strerror(errno));
			return (-1);
		}
		if (stat(dir, &sb) == -1) {
			errbuf_set(err, errlen, "store directory %s: %s",
			    dir, strerror(errno));
			return (-1);
		}
	}
	if (!S_ISDIR(sb.st_mode)) {
		errbuf_set(err, errlen, "store path %s is not a directory",
		    dir);
		return (-1);
	}
	return (0);
}

/*
 * store_open_opts - open (creating if needed) the environment in dir.
 * flags: STORE_RDONLY.  opts may be NULL.  Clears reader slots left by
 * crashed processes (store_stale_readers() says how many) and opens all
 * named databases.  On failure *store_r is NULL and err says why.
 */
int
store_open_opts(struct store **store_r, const char *dir, int flags,
    const struct store_opts *opts, char *err, size_t errlen)
{
	struct store *st;
	pthread_rwlockattr_t attr;
	size_t map_size = STORE_MAP_DEFAULT, map_max = STORE_MAP_MAX_DEFAULT;
	unsigned max_readers = STORE_MAXREADERS, envflags;
	int rc, dead = 0;

	*store_r = NULL;
	if (dir == NULL || *dir == '\0') {
		errbuf_set(err, errlen, "empty store directory");
		return (-1);
	}
	if (opts != NULL) {
		if (opts->map_size != 0)
			map_size = opts->map_size;
		if (opts->map_max != 0)
			map_max = opts->map_max;
		if (opts->max_readers != 0)
			max_readers = opts->max_readers;
	}
	if (map_size < STORE_MAP_MIN)
		map_size = STORE_MAP_MIN;
	if (map_max < map_size)
		map_max = map_size;
	if (prepare_dir(dir, flags & STORE_RDONLY, err, errlen) == -1)
		return (-1);

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	st->rdonly = (flags & STORE_RDONLY) != 0;
	st->map_max = map_max;

	/*
	 * Writers must get the map back first when a resize is due, or a
	 * stream of short read transactions could postpone it forever.
	 * Writer preference is safe because transactions never nest.
	 */
	pthread_rwlockattr_init(&attr);
#ifdef PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP
	pthread_rwlockattr_setkind_np(&attr,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
	rc = pthread_rwlock_init(&st->resize_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc != 0) {
		errbuf_set(err, errlen, "pthread_rwlock_init: %s",
		    strerror(rc));
		free(st);
		return (-1);
	}
	st->lock_inited = 1;

	if ((rc = mdb_env_create(&st->env)) != 0) {
		errbuf_set(err, errlen, "mdb_env_create: %s",
		    mdb_strerror(rc));
		goto fail;
	}
	/*
	 * The size set before the open is used for a new file; an existing
	 * file may record a larger one (another process grew it), which is
	 * adopted below so we never shrink what someone else needed.
	 */
	if ((rc = mdb_env_set_mapsize(st->env, map_size)) != 0 ||
	    (rc = mdb_env_set_maxreaders(st->env, max_readers)) != 0 ||
	    (rc = mdb_env_set_maxdbs(st->env, STORE_MAXDBS)) != 0) {
		errbuf_set(err, errlen, "cannot configure LMDB: %s",
		    mdb_strerror(rc));
		goto fail;
	}
	/* MDB_NOTLS: read transactions may run on worker threads. */
	envflags = MDB_NOTLS | (st->rdonly ? MDB_RDONLY : 0);
	if ((flags & STORE_NOMETASYNC) && !st->rdonly)
		envflags |= MDB_NOMETASYNC;
	if ((rc = mdb_env_open(st->env, dir, envflags, 0600)) != 0) {
		if (rc == ENOENT && st->rdonly)
			errbuf_set(err, errlen,
			    "no store in %s (data.mdb missing)", dir);
		else
			errbuf_set(err, errlen, "cannot open store in %s: %s",
			    dir, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_env_set_mapsize(st->env, 0)) != 0 ||
	    (env_map_size(st->env) < map_size &&
	    (rc = mdb_env_set_mapsize(st->env, map_size)) != 0)) {
		errbuf_set(err, errlen, "cannot size the map of %s: %s",
		    dir, mdb_strerror(rc));
		goto fail;
	}
	set_map_size(st);	/* no other thread knows st yet */
	if (st->map_max < st->map_size)
		st->map_max = st->map_size;
	st->maxkey = (size_t)mdb_env_get_maxkeysize(st->env);

	/*
	 * A process that died inside a read transaction leaves its reader
	 * slot behind, and LMDB cannot reuse the pages that reader pinned:
	 * the file would only grow.  Clear such slots now.  (When no other
	 * process has the environment open, LMDB has just reset the table
	 * itself and there is nothing left to clear.)
	 */
	if ((rc = mdb_reader_check(st->env, &dead)) != 0) {
		errbuf_set(err, errlen, "mdb_reader_check: %s",
		    mdb_strerror(rc));
		goto fail;
	}
	st->stale_cleared = dead;

	if (store_txn_run(st, st->rdonly, open_dbs, NULL, err, errlen) != 0)
		goto fail;
	*store_r = st;
	return (0);

fail:
	store_close(&st);
	return (-1);
}

/*
 * store_close - close the environment and free it; *store is set to NULL.
 * No transaction may be running in any thread.  Accepts NULL.
 */
void
store_close(struct store **store)
{
	struct store *st;

	if (store == NULL || (st = *store) == NULL)
		return;
	if (st->env != NULL)
		mdb_env_close(st->env);	/* also closes every dbi */
	if (st->lock_inited)
		pthread_rwlock_destroy(&st->resize_lock);
	free(st);
	*store = NULL;
}

/* store_sync - flush this process's commits, the last meta page included */
int
store_sync(struct store *store, char *err, size_t errlen)
{
	int rc;

	if (store->rdonly)
		return (0);
	if ((rc = mdb_env_sync(store->env, 1)) != 0) {
		errbuf_set(err, errlen, "mdb_env_sync: %s", mdb_strerror(rc));
		return (-1);
	}
	return (0);
}

/*
 * store_env - the raw environment, for mdb_env_stat() and the like.
 * Never begin transactions on it directly: they would race map growth.
 */
MDB_env *
store_env(struct store *store)
{
	return (store->env);
}

/*
 * store_dbi - the handle of a named database, for raw LMDB calls on
 * store_txn_mdb().  0 (never a named database) if db is unknown or, in a
 * read-only store, absent from the file.
 */
MDB_dbi
store_dbi(struct store *store, enum store_db db)
{
	if ((unsigned)db >= STORE_DB_COUNT || !store->have[db])
		return (0);
	return (store->dbi[db]);
}

/* store_stale_readers - reader slots of dead processes cleared at open */
int
store_stale_readers(const struct store *store)
{
	return (store->stale_cleared);
}

/*
 * store_map_size - this process's current map size in bytes.  Lock-free
 * so that it may be called anywhere, even inside a transaction function.
 */
size_t
store_map_size(struct store *store)
{
	return (__atomic_load_n(&store->map_size, __ATOMIC_RELAXED));
}


/*
 * store_reader_check - clear reader slots of dead processes now; the
 * daemons call it now and then because the other one may crash while
 * they run.  *cleared_r (may be NULL) gets the number cleared.
 */
int
store_reader_check(struct store *store, int *cleared_r, char *err,
    size_t errlen)
{
	int rc, dead = 0;

	if (cleared_r != NULL)
		*cleared_r = 0;
	if ((rc = mdb_reader_check(store->env, &dead)) != 0) {
		errbuf_set(err, errlen, "mdb_reader_check: %s",
		    mdb_strerror(rc));
		return (-1);
	}
	if (cleared_r != NULL)
		*cleared_r = dead;
	return (0);
}

/*
 * store_grow - double the map after MDB_MAP_FULL.  seen is the size the
 * failed transaction ran with: if another thread has grown the map
 * since, there is nothing to do but retry.
 */
static int
store_grow(struct store *st, size_t seen, char *err, size_t errlen)
{
	size_t want;
	int rc;

	pthread_rwlock_wrlock(&st->resize_lock);
	if (st->map_size != seen) {
		pthread_rwlock_unlock(&st->resize_lock);
		return (0);
	}
	if (seen >= st->map_max) {
		pthread_rwlock_unlock(&st->resize_lock);
		__atomic_store_n(&st->full_at, (int64_t)time(NULL),
		    __ATOMIC_RELAXED);
		errbuf_set(err, errlen,
		    "store full: map size %zu bytes reached its limit", seen);
		return (-1);
	}
	want = seen > st->map_max / 2 ? st->map_max : seen * 2;
	rc = mdb_env_set_mapsize(st->env, want);
	if (rc == 0)
		set_map_size(st);
	pthread_rwlock_unlock(&st->resize_lock);
	if (rc != 0) {
		errbuf_set(err, errlen, "cannot grow the map to %zu bytes: %s",
		    want, mdb_strerror(rc));
		return (-1);
	}
	return (0);
}

/*
 * store_adopt_size - another process grew the map and wrote beyond ours
 * (MDB_MAP_RESIZED): take the size it recorded, never shrinking ours.
 */
static int
store_adopt_size(struct store *st, char *err, size_t errlen)
{
	size_t old;
	int rc;

	pthread_rwlock_wrlock(&st->resize_lock);
	old = st->map_size;
	rc = mdb_env_set_mapsize(st->env, 0);
	if (rc == 0 && env_map_size(st->env) < old)
		rc = mdb_env_set_mapsize(st->env, old);
	set_map_size(st);
	if (st->map_max < st->map_size)
		st->map_max = st->map_size;
	pthread_rwlock_unlock(&st->resize_lock);
	if (rc != 0) {
		errbuf_set(err, errlen, "cannot adopt the new map size: %s",
		    mdb_strerror(rc));
		return (-1);
	}
	return (0);
}

/*
 * store_txn_run - run fn in a transaction (read-only if rdonly).
 * fn returning 0 commits; any other value aborts and is returned, with
 * err filled from the first failed store_* call or store_txn_seterr().
 * On MDB_MAP_FULL, from a write in fn or from the commit, the
 * transaction is aborted, the map doubled and fn run again: see
 * store_txn_fn in store.h for what that asks of fn.  A failed store_*
 * call dooms the transaction even if fn ignores it and returns 0: the
 * result is then -1, nothing is written.  Returns 0, -1 or fn's value.
 */
int
store_txn_run(struct store *store, int rdonly, store_txn_fn *fn, void *arg,
    char *err, size_t errlen)
{
	struct store_txn tx;
	MDB_txn *txn;
	size_t seen;
	int attempt, rc, ret;

	if (store_in_txn) {
		errbuf_set(err, errlen, "nested store transaction refused");
		return (-1);
	}
	if (!rdonly && store->rdonly) {
		errbuf_set(err, errlen, "store is open read-only");
		return (-1);
	}
	for (attempt = 0; attempt < STORE_RETRIES; attempt++) {
		pthread_rwlock_rdlock(&store->resize_lock);
		seen = store->map_size;
		rc = mdb_txn_begin(store->env, NULL, rdonly ? MDB_RDONLY : 0,
		    &txn);
		if (rc == MDB_MAP_RESIZED) {
			pthread_rwlock_unlock(&store->resize_lock);
			if (store_adopt_size(store, err, errlen) == -1)
				return (-1);
			continue;
		}
		if (rc != 0) {
			pthread_rwlock_unlock(&store->resize_lock);
			errbuf_set(err, errlen,
			    "cannot begin transaction: %s", mdb_strerror(rc));
			return (-1);
		}

		memset(&tx, 0, sizeof(tx));
		tx.store = store;
		tx.txn = txn;
		tx.rdonly = rdonly;
		tx.now = time(NULL);
		store_in_txn = 1;
		ret = fn(&tx, arg);
		store_in_txn = 0;

		if (tx.map_full) {
			mdb_txn_abort(txn);
			pthread_rwlock_unlock(&store->resize_lock);
			if (store_grow(store, seen, err, errlen) == -1)
				return (-1);
			continue;
		}
		if (ret != 0 || tx.failed) {
			mdb_txn_abort(txn);
			pthread_rwlock_unlock(&store->resize_lock);
			if (tx.err[0] != '\0')
				errbuf_set(err, errlen, "%s", tx.err);
			else if (ret < 0)
				errbuf_set(err, errlen,
				    "transaction aborted");
			return (ret != 0 ? ret : -1);
		}
		/* Commit ends read transactions too and keeps new dbis. */
		rc = mdb_txn_commit(txn);
		pthread_rwlock_unlock(&store->resize_lock);
		if (rc == MDB_MAP_FULL) {
			if (store_grow(store, seen, err, errlen) == -1)
				return (-1);
			continue;
		}
		if (rc != 0) {
			errbuf_set(err, errlen, "commit failed: %s",
			    mdb_strerror(rc));
			return (-1);
		}
		if (!rdonly && __atomic_load_n(&store->full_at,
		    __ATOMIC_RELAXED) != 0)
			__atomic_store_n(&store->full_at, 0, __ATOMIC_RELAXED);
		return (0);
	}
	errbuf_set(err, errlen, "transaction retried %d times, giving up",
	    STORE_RETRIES);
	return (-1);
}

/* store_full_at - when a write last failed on a full map (see store.h) */
time_t
store_full_at(struct store *store)
{
	return ((time_t)__atomic_load_n(&store->full_at, __ATOMIC_RELAXED));
}

/* store_txn_mdb - the raw LMDB transaction, for cursors and such */
MDB_txn *
store_txn_mdb(struct store_txn *tx)
{
	return (tx->txn);
}

/* store_txn_now - the clock expiry checks use (read at txn begin) */
time_t
store_txn_now(const struct store_txn *tx)
{
	return (tx->now);
}

/*
 * store_txn_mdb_err - report a failed raw LMDB call made on
 * store_txn_mdb(): records MDB_MAP_FULL so store_txn_run() grows the map
 * and reruns, and dooms the transaction otherwise.  Returns -1.
 */
int
store_txn_mdb_err(struct store_txn *tx, int rc, const char *what)
{
	if (rc == MDB_MAP_FULL)
		tx->map_full = 1;
	return (txn_fail(tx, 1, "%s: %s", what != NULL ? what : "lmdb",
	    mdb_strerror(rc)));
}

/*
 * store_txn_seterr - set the message store_txn_run() reports when fn
 * returns non-zero.  Does not doom the transaction by itself, and does
 * not replace the message of an LMDB failure (the real cause).
 */
void
store_txn_seterr(struct store_txn *tx, const char *fmt, ...)
{
	va_list ap;

	if (tx->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(tx->err, sizeof(tx->err), fmt, ap);
	va_end(ap);
}

/*
 * store_get - look key up in db.  Returns 0 with *val_r and *vlen_r (either
 * may be NULL) pointing into the map, STORE_NOTFOUND if the key is
 * missing or has expired, -1 on error.  The value stays valid until the
 * next write in this transaction or its end, whichever comes first.
 */
int
store_get(struct store_txn *tx, enum store_db db, const void *key,
    size_t klen, const void **val_r, size_t *vlen_r)
{
	struct store *st = tx->store;
	MDB_val k, v;
	uint64_t exp;
	int rc;

	if (val_r != NULL)
		*val_r = NULL;
	if (vlen_r != NULL)
		*vlen_r = 0;
	if (check_args(tx, db, klen, 0, "get") == -1)
		return (-1);
	if (!st->have[db])
		return (STORE_NOTFOUND);
	k.mv_data = (void *)(uintptr_t)key;
	k.mv_size = klen;
	rc = mdb_get(tx->txn, st->dbi[db], &k, &v);
	if (rc == MDB_NOTFOUND)
		return (STORE_NOTFOUND);
	if (rc != 0)
		return (txn_mdb_fail(tx, rc, "get", db_names[db]));
	if (store_db_expiring(db)) {
		if (unwrap(&v, &exp) == -1)
			return (txn_fail(tx, 0, "get %s: corrupt value (%zu bytes)",
			    db_names[db], v.mv_size));
		if (is_expired(exp, tx->now))
			return (STORE_NOTFOUND);
	}
	if (val_r != NULL)
		*val_r = v.mv_data;
	if (vlen_r != NULL)
		*vlen_r = v.mv_size;
	return (0);
}

/*
 * put_wrapped - write a value of an expiring database: header, value and
 * index entry.  A live old value blocks MDB_NOOVERWRITE; an expired one
 * the sweeper has not reached yet does not (it no longer exists for
 * readers).  The old value's index entry is removed so it cannot outlive
 * the value it described.
 */
static int
put_wrapped(struct store_txn *tx, enum store_db db, const void *key,
    size_t klen, const void *val, size_t vlen, uint64_t expires_at,
    unsigned flags)
{
	struct store *st = tx->store;
	unsigned char ibuf[EXPIRY_KEYHDR + STORE_EXPIRING_KEYMAX];
	MDB_val k, v, ik, empty = { 0, NULL };
	uint64_t oldexp = 0;
	int rc;

	if (vlen > SIZE_MAX - STORE_EXPIRY_HDRLEN)
		return (txn_fail(tx, 0, "put %s: value too large", db_names[db]));
	k.mv_data = (void *)(uintptr_t)key;
	k.mv_size = klen;
	rc = mdb_get(tx->txn, st->dbi[db], &k, &v);
	if (rc == 0) {
		/* A corrupt old value counts as live and never expiring. */
		if (unwrap(&v, &oldexp) == -1)
			oldexp = 0;
		if ((flags & MDB_NOOVERWRITE) && !is_expired(oldexp, tx->now))
			return (STORE_EXISTS);
		if (oldexp != 0 && oldexp != expires_at &&
		    index_del(tx, oldexp, db, key, klen) == -1)
			return (-1);
	} else if (rc != MDB_NOTFOUND)
		return (txn_mdb_fail(tx, rc, "get", db_names[db]));

	/* MDB_RESERVE: LMDB hands out the space and we fill it, no copy. */
	v.mv_data = NULL;
	v.mv_size = STORE_EXPIRY_HDRLEN + vlen;
	rc = mdb_put(tx->txn, st->dbi[db], &k, &v, MDB_RESERVE);
	if (rc != 0)
		return (txn_mdb_fail(tx, rc, "put", db_names[db]));
	be64_put(v.mv_data, expires_at);
	if (vlen > 0)
		memmove((unsigned char *)v.mv_data + STORE_EXPIRY_HDRLEN, val,
		    vlen);

	if (expires_at != 0) {
		index_key(ibuf, expires_at, db, key, klen, &ik);
		rc = mdb_put(tx->txn, st->expiry, &ik, &empty, 0);
		if (rc != 0)
			return (txn_mdb_fail(tx, rc, "put", EXPIRY_DB_NAME));
	}
	return (0);
}

/*
 * store_put - write key -> val into db.  flags: 0 or MDB_NOOVERWRITE
 * (then STORE_EXISTS if the key is there).  In an expiring database the
 * value never expires (and replaces any expiring one).  val must not
 * point into the map (a value store_get() returned): copy it first.
 * Returns 0, STORE_EXISTS or -1.
 */
int
store_put(struct store_txn *tx, enum store_db db, const void *key,
    size_t klen, const void *val, size_t vlen, unsigned flags)
{
	MDB_val k, v;
	int rc;

	if (check_args(tx, db, klen, 1, "put") == -1)
		return (-1);
	if ((flags & ~(unsigned)MDB_NOOVERWRITE) != 0)
		return (txn_fail(tx, 0, "put %s: unsupported flags %#x",
		    db_names[db], flags));
	if (store_db_expiring(db))
		return (put_wrapped(tx, db, key, klen, val, vlen, 0, flags));
	k.mv_data = (void *)(uintptr_t)key;
	k.mv_size = klen;
	v.mv_data = (void *)(uintptr_t)val;
	v.mv_size = vlen;
	rc = mdb_put(tx->txn, tx->store->dbi[db], &k, &v, flags);
	if (rc == MDB_KEYEXIST)
		return (STORE_EXISTS);
	if (rc != 0)
		return (txn_mdb_fail(tx, rc, "put", db_names[db]));
	return (0);
}

/*
 * store_put_expiring - like store_put() into an expiring database, the
 * key disappearing for readers at expires_at (seconds since the epoch;
 * 0 = never) and being deleted by the next sweep after it.
 */
int
store_put_expiring(struct store_txn *tx, enum store_db db, const void *key,
    size_t klen, const void *val, size_t vlen, time_t expires_at,
    unsigned flags)
{
	if (check_args(tx, db, klen, 1, "put") == -1)
		return (-1);
	if (!store_db_expiring(db))
		return (txn_fail(tx, 0, "put %s: database does not expire keys",
		    db_names[db]));
	if ((flags & ~(unsigned)MDB_NOOVERWRITE) != 0)
		return (txn_fail(tx, 0, "put %s: unsupported flags %#x",
		    db_names[db], flags));
	if (expires_at < 0)
		return (txn_fail(tx, 0, "put %s: negative expiry time",
		    db_names[db]));
	return (put_wrapped(tx, db, key, klen, val, vlen,
	    (uint64_t)expires_at, flags));
}

/*
 * store_del - delete key from db (and its expiry index entry).  Returns
 * 0, STORE_NOTFOUND (also when the key had expired: it is removed all
 * the same) or -1.
 */
int
store_del(struct store_txn *tx, enum store_db db, const void *key,
    size_t klen)
{
	struct store *st = tx->store;
	MDB_val k, v;
	uint64_t exp = 0;
	int rc, live = 1;

	if (check_args(tx, db, klen, 1, "del") == -1)
		return (-1);
	k.mv_data = (void *)(uintptr_t)key;
	k.mv_size = klen;
	if (store_db_expiring(db)) {
		rc = mdb_get(tx->txn, st->dbi[db], &k, &v);
		if (rc == MDB_NOTFOUND)
			return (STORE_NOTFOUND);
		if (rc != 0)
			return (txn_mdb_fail(tx, rc, "get", db_names[db]));
		if (unwrap(&v, &exp) == -1)
			exp = 0;
		live = !is_expired(exp, tx->now);
		if (exp != 0 && index_del(tx, exp, db, key, klen) == -1)
			return (-1);
	}
	rc = mdb_del(tx->txn, st->dbi[db], &k, NULL);
	if (rc == MDB_NOTFOUND)
		return (STORE_NOTFOUND);
	if (rc != 0)
		return (txn_mdb_fail(tx, rc, "del", db_names[db]));
	return (live ? 0 : STORE_NOTFOUND);
}

/*
 * store_foreach - call cb for every live key of db starting with prefix
 * (prefixlen 0: every key), in key order.  Returns 0 after the last key,
 * cb's non-zero value if it stopped the walk, or -1 on error.
 */
int
store_foreach(struct store_txn *tx, enum store_db db, const void *prefix,
    size_t prefixlen, store_foreach_fn *cb, void *arg)
{
	struct store *st = tx->store;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_cursor_op op;
	uint64_t exp;
	int rc, ret = 0;

	if ((unsigned)db >= STORE_DB_COUNT)
		return (txn_fail(tx, 0, "foreach: unknown database %d", (int)db));
	if (prefixlen > st->maxkey)
		return (txn_fail(tx, 0, "foreach %s: prefix too long",
		    db_names[db]));
	if (!st->have[db])
		return (0);
	if ((rc = mdb_cursor_open(tx->txn, st->dbi[db], &cur)) != 0)
		return (txn_mdb_fail(tx, rc, "cursor", db_names[db]));
	if (prefixlen > 0) {
		k.mv_data = (void *)(uintptr_t)prefix;
		k.mv_size = prefixlen;
		op = MDB_SET_RANGE;
	} else
		op = MDB_FIRST;
	for (;; op = MDB_NEXT) {
		rc = mdb_cursor_get(cur, &k, &v, op);
		if (rc == MDB_NOTFOUND)
			break;
		if (rc != 0) {
			ret = txn_mdb_fail(tx, rc, "cursor", db_names[db]);
			break;
		}
		if (prefixlen > 0 && (k.mv_size < prefixlen ||
		    memcmp(k.mv_data, prefix, prefixlen) != 0))
			break;
		if (store_db_expiring(db)) {
			if (unwrap(&v, &exp) == -1) {
				ret = txn_fail(tx, 0, "foreach %s: corrupt value "
				    "(%zu bytes)", db_names[db], v.mv_size);
				break;
			}
			if (is_expired(exp, tx->now))
				continue;
		}
		if ((ret = cb(k.mv_data, k.mv_size, v.mv_data, v.mv_size,
		    arg)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return (ret);
}

/*
 * store_count - number of entries in db.  In an expiring database this
 * includes expired keys the sweeper has not removed yet.
 */
int
store_count(struct store_txn *tx, enum store_db db, size_t *count_r)
{
	struct store *st = tx->store;
	MDB_stat ms;
	int rc;

	*count_r = 0;
	if ((unsigned)db >= STORE_DB_COUNT)
		return (txn_fail(tx, 0, "count: unknown database %d", (int)db));
	if (!st->have[db])
		return (0);
	if ((rc = mdb_stat(tx->txn, st->dbi[db], &ms)) != 0)
		return (txn_mdb_fail(tx, rc, "stat", db_names[db]));
	*count_r = ms.ms_entries;
	return (0);
}

struct sweep {
	time_t	now;
	size_t	batch;
	size_t	removed;	/* keys deleted by this batch */
	int	more;		/* stopped at batch, not at the end */
};

/*
 * sweep_batch - one transaction of the sweeper: walk the expiry index
 * from its oldest entry, handle at most batch entries that are due.
 * An entry is only a hint: the key goes only if its own header says it
 * has expired (it may have been rewritten with a later expiry).
 */
static int
sweep_batch(struct store_txn *tx, void *arg)
{
	struct sweep *sw = arg;
	struct store *st = tx->store;
	unsigned char kbuf[STORE_EXPIRING_KEYMAX];
	MDB_cursor *cur;
	MDB_val ik, iv, k, v;
	uint64_t due, exp;
	size_t n = 0, klen;
	unsigned dbid;
	int rc, ret = 0;

	sw->removed = 0;	/* may be a rerun after map growth */
	sw->more = 0;
	if ((rc = mdb_cursor_open(tx->txn, st->expiry, &cur)) != 0)
		return (txn_mdb_fail(tx, rc, "cursor", EXPIRY_DB_NAME));
	for (rc = mdb_cursor_get(cur, &ik, &iv, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &ik, &iv, MDB_NEXT)) {
		/* The index is in time order: stop at the first entry not
		 * due.  A time of 0 is junk (never written) and goes. */
		due = ik.mv_size >= 8 ? be64_get(ik.mv_data) : 0;
		if (due != 0 && !is_expired(due, sw->now))
			break;
		if (n == sw->batch) {
			sw->more = 1;
			break;
		}
		n++;
		/* Copy the key out: the deletes below may move the page. */
		klen = ik.mv_size > EXPIRY_KEYHDR ?
		    ik.mv_size - EXPIRY_KEYHDR : 0;
		dbid = ik.mv_size > 8 ? ((unsigned char *)ik.mv_data)[8] :
		    STORE_DB_COUNT;
		if (klen > 0 && klen <= sizeof(kbuf) &&
		    dbid < STORE_DB_COUNT && store_db_expiring(dbid)) {
			memcpy(kbuf, (unsigned char *)ik.mv_data +
			    EXPIRY_KEYHDR, klen);
			k.mv_data = kbuf;
			k.mv_size = klen;
			rc = mdb_get(tx->txn, st->dbi[dbid], &k, &v);
			if (rc == 0 && unwrap(&v, &exp) == 0 &&
			    is_expired(exp, sw->now)) {
				rc = mdb_del(tx->txn, st->dbi[dbid], &k, NULL);
				if (rc == 0)
					sw->removed++;
			}
			if (rc != 0 && rc != MDB_NOTFOUND) {
				ret = txn_mdb_fail(tx, rc, "sweep",
				    db_names[dbid]);
				break;
			}
		}
		/* The entry goes in every case, junk (bad length, id) too. */
		if ((rc = mdb_cursor_del(cur, 0)) != 0) {
			ret = txn_mdb_fail(tx, rc, "sweep", EXPIRY_DB_NAME);
			break;
		}
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		ret = txn_mdb_fail(tx, rc, "cursor", EXPIRY_DB_NAME);
	mdb_cursor_close(cur);
	return (ret);
}

/*
 * store_sweep_expired - delete every key that expired at or before now,
 * in transactions of at most batch index entries (0: STORE_SWEEP_BATCH),
 * so the single writer lock, shared with the other daemon, is never held
 * long.  *removed_r (may be NULL) gets the number of keys deleted, also
 * on failure (the batches committed before it).
 */
int
store_sweep_expired(struct store *store, time_t now, size_t batch,
    size_t *removed_r, char *err, size_t errlen)
{
	struct sweep sw;

	if (removed_r != NULL)
		*removed_r = 0;
	if (store->rdonly) {
		errbuf_set(err, errlen, "store is open read-only");
		return (-1);
	}
	memset(&sw, 0, sizeof(sw));
	sw.now = now;
	sw.batch = batch != 0 ? batch : STORE_SWEEP_BATCH;
	do {
		if (store_txn_run(store, 0, sweep_batch, &sw, err,
		    errlen) != 0)
			return (-1);
		if (removed_r != NULL)
			*removed_r += sw.removed;
	} while (sw.more);
	return (0);
}
