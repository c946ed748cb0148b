/*
 * test_store.c - the shared LMDB environment: persistence, two processes
 * on one environment, map growth (one process, several threads, two
 * processes), aborts, expiring keys and their sweeper, stale readers and
 * read-only opens.  Every test works in its own mkdtemp() directory.
 *
 * Children made with fork() open their own store (never the parent's)
 * and report through their exit status: cmocka's asserts must not run
 * in a child.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "hex.h"

#include "store.h"
#include "tmpdir.h"

#define SMALL_MAP	((size_t)64 << 10)	/* 64 KiB: fills at once */
#define BIGVAL		1000

struct fixture {
	char	tmp[64];	/* the mkdtemp() directory */
	char	db[128];	/* tmp/db: the store */
};

static int
setup(void **state)
{
	struct fixture *fx;

	if ((fx = calloc(1, sizeof(*fx))) == NULL)
		return (-1);
	snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/test_store.XXXXXX");
	if (mkdtemp(fx->tmp) == NULL) {
		free(fx);
		return (-1);
	}
	snprintf(fx->db, sizeof(fx->db), "%s/db", fx->tmp);
	*state = fx;
	return (0);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	int rc;

	rc = tmpdir_remove(fx->tmp);
	free(fx);
	return (rc);
}

/* ---- small one-operation transactions ---- */

struct op {
	enum store_db	 db;
	const void	*key;
	size_t		 klen;
	const void	*val;
	size_t		 vlen;
	time_t		 expires;	/* put_expiring when != 0 */
	unsigned	 flags;
	int		 result;	/* what the store_* call returned */
	char		 out[2048];	/* get: the value, NUL-terminated */
	size_t		 outlen;
};

static int
op_put(struct store_txn *tx, void *arg)
{
	struct op *o = arg;

	if (o->expires != 0)
		o->result = store_put_expiring(tx, o->db, o->key, o->klen,
		    o->val, o->vlen, o->expires, o->flags);
	else
		o->result = store_put(tx, o->db, o->key, o->klen, o->val,
		    o->vlen, o->flags);
	return (o->result == -1 ? -1 : 0);
}

static int
op_get(struct store_txn *tx, void *arg)
{
	struct op *o = arg;
	const void *v;
	size_t vlen;

	o->out[0] = '\0';
	o->outlen = 0;
	o->result = store_get(tx, o->db, o->key, o->klen, &v, &vlen);
	if (o->result == 0) {
		if (vlen >= sizeof(o->out))
			return (-1);
		memcpy(o->out, v, vlen);
		o->out[vlen] = '\0';
		o->outlen = vlen;
	}
	return (o->result == -1 ? -1 : 0);
}

static int
op_del(struct store_txn *tx, void *arg)
{
	struct op *o = arg;

	o->result = store_del(tx, o->db, o->key, o->klen);
	return (o->result == -1 ? -1 : 0);
}

/* put - store_put (expires 0) or store_put_expiring; returns its result */
static int
put(struct store *st, enum store_db db, const char *key, const char *val,
    time_t expires, unsigned flags)
{
	struct op o = { .db = db, .key = key, .klen = strlen(key), .val = val,
	    .vlen = strlen(val), .expires = expires, .flags = flags };
	char err[256];

	if (store_txn_run(st, 0, op_put, &o, err, sizeof(err)) != 0) {
		print_message("put: %s\n", err);
		return (-1);
	}
	return (o.result);
}

/* get - store_get into buf (may be NULL); returns its result */
static int
get(struct store *st, enum store_db db, const char *key, char *buf,
    size_t len)
{
	struct op o = { .db = db, .key = key, .klen = strlen(key) };
	char err[256];

	if (store_txn_run(st, 1, op_get, &o, err, sizeof(err)) != 0) {
		print_message("get: %s\n", err);
		return (-1);
	}
	if (buf != NULL) {
		/* values in these tests are short; copy what fits */
		size_t n = strnlen(o.out, sizeof(o.out));
		if (n >= len)
			n = len - 1;
		memcpy(buf, o.out, n);
		buf[n] = '\0';
	}
	return (o.result);
}

static int
del(struct store *st, enum store_db db, const char *key)
{
	struct op o = { .db = db, .key = key, .klen = strlen(key) };
	char err[256];

	if (store_txn_run(st, 0, op_del, &o, err, sizeof(err)) != 0) {
		print_message("del: %s\n", err);
		return (-1);
	}
	return (o.result);
}

struct counts {
	enum store_db	db;
	size_t		db_entries;	/* raw, expired included */
	size_t		index_entries;	/* the internal expiry index */
};

static int
op_counts(struct store_txn *tx, void *arg)
{
	struct counts *c = arg;
	MDB_dbi dbi;
	MDB_stat ms;

	if (store_count(tx, c->db, &c->db_entries) != 0)
		return (-1);
	/* The index is internal; its name is part of the documented format. */
	if (mdb_dbi_open(store_txn_mdb(tx), "expiry", 0, &dbi) != 0 ||
	    mdb_stat(store_txn_mdb(tx), dbi, &ms) != 0)
		return (-1);
	c->index_entries = ms.ms_entries;
	return (0);
}

static struct counts
counts(struct store *st, enum store_db db)
{
	struct counts c = { .db = db };
	char err[256];

	assert_int_equal(store_txn_run(st, 1, op_counts, &c, err,
	    sizeof(err)), 0);
	return (c);
}

static struct store *
open_ok(const char *dir, int flags, size_t map_size)
{
	struct store_opts opts = { .map_size = map_size };
	struct store *st = NULL;
	char err[256];

	if (store_open_opts(&st, dir, flags, &opts, err, sizeof(err)) != 0)
		fail_msg("store_open %s: %s", dir, err);
	assert_non_null(st);
	return (st);
}

/* run_child - fork, run fn in the child, return its exit status (or -1) */
static int
run_child(int (*fn)(const char *dir, void *arg), const char *dir, void *arg)
{
	pid_t pid;
	int status;

	fflush(NULL);
	if ((pid = fork()) == -1)
		return (-1);
	if (pid == 0)
		_exit(fn(dir, arg));
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return (-1);
	return (WEXITSTATUS(status));
}

/* fill - a value that differs for every index i */
static void
fill(unsigned char *buf, size_t len, unsigned i)
{
	size_t j;

	for (j = 0; j < len; j++)
		buf[j] = (unsigned char)(i * 31 + j * 7 + (i >> 8));
}

struct bulk {
	enum store_db	db;
	unsigned	first;
	unsigned	n;
	int		runs;	/* how often fn ran (not reset on purpose) */
};

/* bulk_put - n BIGVAL-byte values under keys "bulk%08u" */
static int
bulk_put(struct store_txn *tx, void *arg)
{
	struct bulk *b = arg;
	unsigned char val[BIGVAL];
	char key[32];
	unsigned i;

	b->runs++;
	for (i = b->first; i < b->first + b->n; i++) {
		snprintf(key, sizeof(key), "bulk%08u", i);
		fill(val, sizeof(val), i);
		if (store_put(tx, b->db, key, strlen(key), val, sizeof(val),
		    0) != 0)
			return (-1);
	}
	return (0);
}

/* bulk_check - every bulk value present and intact; result in b->runs */
static int
bulk_check(struct store_txn *tx, void *arg)
{
	struct bulk *b = arg;
	unsigned char want[BIGVAL];
	const void *v;
	size_t vlen;
	char key[32];
	unsigned i;

	for (i = b->first; i < b->first + b->n; i++) {
		snprintf(key, sizeof(key), "bulk%08u", i);
		fill(want, sizeof(want), i);
		if (store_get(tx, b->db, key, strlen(key), &v, &vlen) != 0 ||
		    vlen != sizeof(want) || memcmp(v, want, vlen) != 0) {
			store_txn_seterr(tx, "%s missing or wrong", key);
			return (-1);
		}
	}
	return (0);
}

static void
assert_bulk(struct store *st, enum store_db db, unsigned first, unsigned n)
{
	struct bulk b = { .db = db, .first = first, .n = n };
	char err[256];

	if (store_txn_run(st, 1, bulk_check, &b, err, sizeof(err)) != 0)
		fail_msg("bulk check: %s", err);
}

/* ---- tests ---- */

static void
test_names(void **state)
{
	static const struct {
		enum store_db	db;
		const char     *name;
		int		expiring;
	} rows[] = {
		{ STORE_DB_QUEUE, "queue", 0 },
		{ STORE_DB_DEDUPE, "dedupe", 1 },
		{ STORE_DB_LEDGER, "ledger", 1 },
		{ STORE_DB_SYNC_FOLDER, "sync_folder", 0 },
		{ STORE_DB_SYNC_MAP, "sync_map", 0 },
		{ STORE_DB_SYNC_INTENT, "sync_intent", 0 },
		{ STORE_DB_CUTOVER, "cutover", 0 },
		{ STORE_DB_META, "meta", 0 },
	};
	size_t i;

	(void)state;
	assert_int_equal(sizeof(rows) / sizeof(rows[0]), STORE_DB_COUNT);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(rows[i].db, (int)i);	/* on-disk ids */
		assert_string_equal(store_db_name(rows[i].db), rows[i].name);
		assert_int_equal(store_db_expiring(rows[i].db),
		    rows[i].expiring);
	}
	assert_null(store_db_name(STORE_DB_COUNT));
}

static void
test_open_reopen(void **state)
{
	struct fixture *fx = *state;
	struct store *st;
	struct stat sb;
	char key[32], val[32], buf[64], path[256];
	int i;

	st = open_ok(fx->db, 0, 0);
	assert_int_equal(store_stale_readers(st), 0);
	assert_true(store_map_size(st) >= STORE_MAP_DEFAULT);
	assert_non_null(store_env(st));
	assert_int_not_equal(store_dbi(st, STORE_DB_META), 0);
	assert_int_equal(store_dbi(st, STORE_DB_COUNT), 0);
	for (i = 0; i < STORE_DB_COUNT; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		snprintf(val, sizeof(val), "value of %s", store_db_name(i));
		assert_int_equal(put(st, i, key, val, 0, 0), 0);
	}
	store_close(&st);
	assert_null(st);
	store_close(&st);	/* NULL is fine */
	store_close(NULL);

	/* Created private: the keys name people. */
	assert_int_equal(stat(fx->db, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/data.mdb", fx->db);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0077, 0);

	st = open_ok(fx->db, 0, 0);
	for (i = 0; i < STORE_DB_COUNT; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		snprintf(val, sizeof(val), "value of %s", store_db_name(i));
		assert_int_equal(get(st, i, key, buf, sizeof(buf)), 0);
		assert_string_equal(buf, val);
		/* a key of one database is not in another */
		snprintf(key, sizeof(key), "key-%d", (i + 1) % STORE_DB_COUNT);
		assert_int_equal(get(st, i, key, NULL, 0), STORE_NOTFOUND);
	}
	store_close(&st);
}

static int
child_sees_and_writes(const char *dir, void *arg)
{
	struct store *st = NULL;
	char buf[64], err[256];
	int rc = 0;

	(void)arg;
	if (store_open(&st, dir, 0, err, sizeof(err)) != 0)
		return (10);
	if (get(st, STORE_DB_QUEUE, "from-parent", buf, sizeof(buf)) != 0 ||
	    strcmp(buf, "p1") != 0)
		rc = 11;
	else if (put(st, STORE_DB_QUEUE, "from-child", "c1", 0, 0) != 0)
		rc = 12;
	store_close(&st);
	return (rc);
}

static void
test_two_processes(void **state)
{
	struct fixture *fx = *state;
	struct store *st;
	char buf[64];

	st = open_ok(fx->db, 0, 0);
	assert_int_equal(put(st, STORE_DB_QUEUE, "from-parent", "p1", 0, 0),
	    0);
	/* The child opens its own handle while ours stays open. */
	assert_int_equal(run_child(child_sees_and_writes, fx->db, NULL), 0);
	assert_int_equal(get(st, STORE_DB_QUEUE, "from-child", buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "c1");
	store_close(&st);
}

static void
test_nooverwrite(void **state)
{
	struct fixture *fx = *state;
	struct store *st;
	time_t now = time(NULL);
	char buf[64];
	int i;

	st = open_ok(fx->db, 0, 0);
	for (i = 0; i < STORE_DB_COUNT; i++) {
		assert_int_equal(put(st, i, "k", "first", 0, MDB_NOOVERWRITE),
		    0);
		assert_int_equal(put(st, i, "k", "second", 0, MDB_NOOVERWRITE),
		    STORE_EXISTS);
		assert_int_equal(get(st, i, "k", buf, sizeof(buf)), 0);
		assert_string_equal(buf, "first");
		assert_int_equal(put(st, i, "k", "third", 0, 0), 0);
		assert_int_equal(get(st, i, "k", buf, sizeof(buf)), 0);
		assert_string_equal(buf, "third");
	}
	/* An expired key no longer exists, so it does not block. */
	assert_int_equal(put(st, STORE_DB_DEDUPE, "e", "old", now - 5,
	    MDB_NOOVERWRITE), 0);
	assert_int_equal(put(st, STORE_DB_DEDUPE, "e", "new", now + 3600,
	    MDB_NOOVERWRITE), 0);
	assert_int_equal(put(st, STORE_DB_DEDUPE, "e", "newer", now + 7200,
	    MDB_NOOVERWRITE), STORE_EXISTS);
	assert_int_equal(get(st, STORE_DB_DEDUPE, "e", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "new");
	assert_int_equal(counts(st, STORE_DB_DEDUPE).index_entries, 1);
	store_close(&st);
}

static void
test_map_growth(void **state)
{
	struct fixture *fx = *state;
	struct store *st;
	struct bulk b = { .db = STORE_DB_QUEUE, .first = 0, .n = 3000 };
	size_t grown;
	char err[256];

	st = open_ok(fx->db, 0, SMALL_MAP);
	assert_int_equal(store_map_size(st), SMALL_MAP);
	/* ~3 MB in one transaction: fails, grows and reruns several times */
	if (store_txn_run(st, 0, bulk_put, &b, err, sizeof(err)) != 0)
		fail_msg("bulk put: %s", err);
	assert_true(b.runs > 1);
	grown = store_map_size(st);
	assert_true(grown >= (size_t)3000 * BIGVAL);
	assert_bulk(st, STORE_DB_QUEUE, 0, 3000);

	/* Many small transactions grow it further. */
	for (b.first = 3000; b.first < 6000; b.first += 500) {
		b.n = 500;
		if (store_txn_run(st, 0, bulk_put, &b, err, sizeof(err)) != 0)
			fail_msg("bulk put: %s", err);
	}
	assert_bulk(st, STORE_DB_QUEUE, 0, 6000);
	grown = store_map_size(st);
	store_close(&st);

	/* Reopening with the small setting keeps the recorded size. */
	st = open_ok(fx->db, 0, SMALL_MAP);
	assert_true(store_map_size(st) >= grown);
	assert_bulk(st, STORE_DB_QUEUE, 0, 6000);
	store_close(&st);
}

static void
test_map_cap(void **state)
{
	struct fixture *fx = *state;
	struct store_opts opts = { .map_size = SMALL_MAP,
	    .map_max = 2 * SMALL_MAP };
	struct store *st = NULL;
	struct bulk b = { .db = STORE_DB_QUEUE, .first = 0, .n = 1000 };
	char err[256];

	assert_int_equal(store_open_opts(&st, fx->db, 0, &opts, err,
	    sizeof(err)), 0);
	assert_int_equal(store_txn_run(st, 0, bulk_put, &b, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "store full"));
	assert_int_equal(store_map_size(st), 2 * SMALL_MAP);
	assert_int_equal(counts(st, STORE_DB_QUEUE).db_entries, 0);
	store_close(&st);
}

struct abort_case {
	int		 ret;		/* what fn returns */
	const char	*msg;		/* store_txn_seterr() message, or NULL */
	int		 fatal;		/* report an LMDB failure first */
	int		 want_ret;
	const char	*want_err;
};

static int
fn_put_then_fail(struct store_txn *tx, void *arg)
{
	const struct abort_case *c = arg;

	if (store_put(tx, STORE_DB_QUEUE, "k", 1, "v", 1, 0) != 0)
		return (-1);
	if (c->fatal)
		(void)store_txn_mdb_err(tx, MDB_CORRUPTED, "mdb_fake");
	if (c->msg != NULL)
		store_txn_seterr(tx, "%s", c->msg);
	return (c->ret);
}

static void
test_fn_error_aborts(void **state)
{
	static const struct abort_case cases[] = {
		{ 7, "custom reason", 0, 7, "custom reason" },
		{ -1, NULL, 0, -1, "transaction aborted" },
		{ -1, "mine", 0, -1, "mine" },
		/* fn ignores a failed LMDB call: still nothing written */
		{ 0, NULL, 1, -1, "mdb_fake: " },
		{ 0, "not me", 1, -1, "mdb_fake: " },
	};
	struct fixture *fx = *state;
	struct store *st;
	char err[256];
	size_t i;

	st = open_ok(fx->db, 0, 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		strcpy(err, "untouched");
		assert_int_equal(store_txn_run(st, 0, fn_put_then_fail,
		    (void *)(uintptr_t)&cases[i], err, sizeof(err)),
		    cases[i].want_ret);
		if (strstr(err, cases[i].want_err) == NULL)
			fail_msg("case %zu: err \"%s\"", i, err);
		assert_int_equal(get(st, STORE_DB_QUEUE, "k", NULL, 0),
		    STORE_NOTFOUND);
	}
	store_close(&st);
}

static int
fn_nested(struct store_txn *tx, void *arg)
{
	struct store *st = arg;
	struct op o = { .db = STORE_DB_META, .key = "n", .klen = 1 };
	char err[256];

	(void)tx;
	if (store_txn_run(st, 1, op_get, &o, err, sizeof(err)) != -1 ||
	    strstr(err, "nested") == NULL)
		return (1);
	return (0);
}

static int
fn_bad_args(struct store_txn *tx, void *arg)
{
	char longkey[600];
	const void *v;
	size_t vlen;

	(void)arg;
	memset(longkey, 'x', sizeof(longkey));
	if (store_get(tx, STORE_DB_COUNT, "k", 1, &v, &vlen) != -1 ||
	    store_get(tx, STORE_DB_QUEUE, "", 0, &v, &vlen) != -1 ||
	    store_put(tx, STORE_DB_QUEUE, longkey, 512, "v", 1, 0) != -1 ||
	    store_put(tx, STORE_DB_QUEUE, "k", 1, "v", 1, MDB_APPEND) != -1 ||
	    store_put_expiring(tx, STORE_DB_QUEUE, "k", 1, "v", 1,
	    time(NULL) + 60, 0) != -1 ||
	    store_put_expiring(tx, STORE_DB_DEDUPE, "k", 1, "v", 1, -5,
	    0) != -1 ||
	    store_put(tx, STORE_DB_DEDUPE, longkey, STORE_EXPIRING_KEYMAX + 1,
	    "v", 1, 0) != -1)
		return (1);
	/* Argument errors are not fatal: the rest still commits. */
	if (store_put(tx, STORE_DB_DEDUPE, longkey, STORE_EXPIRING_KEYMAX,
	    "v", 1, 0) != 0 ||
	    store_put(tx, STORE_DB_QUEUE, longkey, 511, "v", 1, 0) != 0)
		return (2);
	return (0);
}

static int
fn_write_in_read(struct store_txn *tx, void *arg)
{
	(void)arg;
	return (store_put(tx, STORE_DB_META, "k", 1, "v", 1, 0));
}

static void
test_misuse(void **state)
{
	struct fixture *fx = *state;
	struct store *st = NULL;
	char err[256];

	assert_int_equal(store_open(&st, "", 0, err, sizeof(err)), -1);
	assert_null(st);
	st = open_ok(fx->db, 0, 0);
	assert_int_equal(store_txn_run(st, 0, fn_nested, st, err,
	    sizeof(err)), 0);
	assert_int_equal(store_txn_run(st, 0, fn_bad_args, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(counts(st, STORE_DB_DEDUPE).db_entries, 1);
	assert_int_equal(counts(st, STORE_DB_QUEUE).db_entries, 1);
	assert_int_equal(store_txn_run(st, 1, fn_write_in_read, NULL, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "read-only transaction"));
	store_close(&st);
}

static int
child_grow(const char *dir, void *arg)
{
	struct store_opts opts = { .map_size = SMALL_MAP };
	struct bulk b = { .db = STORE_DB_SYNC_MAP, .n = 500 };
	struct store *st = NULL;
	char err[256];
	int rc = 0;

	(void)arg;
	if (store_open_opts(&st, dir, 0, &opts, err, sizeof(err)) != 0)
		return (10);
	for (b.first = 0; b.first < 3000 && rc == 0; b.first += 500)
		if (store_txn_run(st, 0, bulk_put, &b, err, sizeof(err)) != 0)
			rc = 11;
	store_close(&st);
	return (rc);
}

static void
test_growth_by_other_process(void **state)
{
	struct fixture *fx = *state;
	struct store *st;
	struct bulk b = { .db = STORE_DB_QUEUE, .first = 0, .n = 10 };
	char err[256];

	st = open_ok(fx->db, 0, SMALL_MAP);
	assert_int_equal(put(st, STORE_DB_META, "v", "1", 0, 0), 0);
	/* The other daemon grows the file far beyond our map... */
	assert_int_equal(run_child(child_grow, fx->db, NULL), 0);
	assert_int_equal(store_map_size(st), SMALL_MAP);
	/* ...and we adopt its size instead of failing. */
	assert_bulk(st, STORE_DB_SYNC_MAP, 0, 3000);
	assert_true(store_map_size(st) >= (size_t)3000 * BIGVAL);
	if (store_txn_run(st, 0, bulk_put, &b, err, sizeof(err)) != 0)
		fail_msg("bulk put: %s", err);
	assert_bulk(st, STORE_DB_QUEUE, 0, 10);
	store_close(&st);
}

#define NTHREADS	4
#define PER_THREAD	400
#define PER_TXN		40

struct worker {
	struct store	*st;
	unsigned	 id;
	int		 rc;
	char		 err[256];
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct bulk b = { .db = STORE_DB_SYNC_MAP, .n = PER_TXN };
	unsigned first = w->id * PER_THREAD;

	for (b.first = first; b.first < first + PER_THREAD; b.first += PER_TXN) {
		if (store_txn_run(w->st, 0, bulk_put, &b, w->err,
		    sizeof(w->err)) != 0) {
			w->rc = -1;
			break;
		}
		/* a reader racing the writers and the remaps */
		if (store_txn_run(w->st, 1, bulk_check, &b, w->err,
		    sizeof(w->err)) != 0) {
			w->rc = -2;
			break;
		}
	}
	return (NULL);
}

static void
test_threads(void **state)
{
	struct fixture *fx = *state;
	struct worker w[NTHREADS];
	pthread_t tid[NTHREADS];
	struct store *st;
	unsigned i;

	st = open_ok(fx->db, 0, SMALL_MAP);
	for (i = 0; i < NTHREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].st = st;
		w[i].id = i;
		assert_int_equal(pthread_create(&tid[i], NULL, worker_main,
		    &w[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(tid[i], NULL);
		if (w[i].rc != 0)
			fail_msg("thread %u: %d %s", i, w[i].rc, w[i].err);
	}
	assert_bulk(st, STORE_DB_SYNC_MAP, 0, NTHREADS * PER_THREAD);
	assert_true(store_map_size(st) > SMALL_MAP);
	store_close(&st);
}

struct walk {
	char	seen[16][32];
	size_t	n;
	int	stop_at;	/* return 9 after this many (0: never) */
};

static int
walk_cb(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct walk *w = arg;

	(void)val;
	(void)vlen;
	if (w->n < 16 && klen < 32) {
		memcpy(w->seen[w->n], key, klen);
		w->seen[w->n][klen] = '\0';
	}
	w->n++;
	return (w->stop_at != 0 && (int)w->n == w->stop_at ? 9 : 0);
}

struct walk_req {
	enum store_db	 db;
	const char	*prefix;
	struct walk	 w;
	int		 result;
};

static int
fn_walk(struct store_txn *tx, void *arg)
{
	struct walk_req *r = arg;
	int stop = r->w.stop_at;

	memset(&r->w, 0, sizeof(r->w));
	r->w.stop_at = stop;
	r->result = store_foreach(tx, r->db, r->prefix,
	    r->prefix != NULL ? strlen(r->prefix) : 0, walk_cb, &r->w);
	return (r->result == -1 ? -1 : 0);
}

static struct walk_req
walk(struct store *st, enum store_db db, const char *prefix, int stop_at)
{
	struct walk_req r = { .db = db, .prefix = prefix };
	char err[256];

	r.w.stop_at = stop_at;
	if (store_txn_run(st, 1, fn_walk, &r, err, sizeof(err)) != 0)
		fail_msg("foreach: %s", err);
	return (r);
}

static void
test_foreach(void **state)
{
	static const char *keys[] = { "b/1", "a/2", "a", "a/1", "a/3", "c" };
	struct fixture *fx = *state;
	struct store *st;
	struct walk_req r;
	size_t i;

	st = open_ok(fx->db, 0, 0);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_int_equal(put(st, STORE_DB_QUEUE, keys[i], "v", 0, 0),
		    0);
	r = walk(st, STORE_DB_QUEUE, "a/", 0);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.w.n, 3);
	assert_string_equal(r.w.seen[0], "a/1");
	assert_string_equal(r.w.seen[1], "a/2");
	assert_string_equal(r.w.seen[2], "a/3");
	r = walk(st, STORE_DB_QUEUE, NULL, 0);
	assert_int_equal(r.w.n, 6);
	assert_string_equal(r.w.seen[0], "a");
	assert_string_equal(r.w.seen[5], "c");
	r = walk(st, STORE_DB_QUEUE, "b/", 1);
	assert_int_equal(r.result, 9);
	r = walk(st, STORE_DB_QUEUE, NULL, 2);
	assert_int_equal(r.result, 9);
	assert_int_equal(r.w.n, 2);
	r = walk(st, STORE_DB_QUEUE, "zz", 0);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.w.n, 0);
	r = walk(st, STORE_DB_CUTOVER, NULL, 0);
	assert_int_equal(r.w.n, 0);
	store_close(&st);
}

static void
test_expiry_get(void **state)
{
	struct fixture *fx = *state;
	struct store *st;
	struct walk_req r;
	time_t now = time(NULL);
	char buf[64];

	st = open_ok(fx->db, 0, 0);
	assert_int_equal(put(st, STORE_DB_DEDUPE, "r1", "gone", now - 10,
	    0), 0);
	assert_int_equal(put(st, STORE_DB_DEDUPE, "r2", "live", now + 3600, 0),
	    0);
	assert_int_equal(put(st, STORE_DB_DEDUPE, "r3", "forever", 0, 0), 0);
	assert_int_equal(put(st, STORE_DB_LEDGER, "l1", "", now + 3600, 0), 0);

	assert_int_equal(get(st, STORE_DB_DEDUPE, "r1", buf, sizeof(buf)),
	    STORE_NOTFOUND);
	assert_int_equal(get(st, STORE_DB_DEDUPE, "r2", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "live");	/* header stripped */
	assert_int_equal(get(st, STORE_DB_DEDUPE, "r3", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "forever");
	assert_int_equal(get(st, STORE_DB_LEDGER, "l1", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");

	r = walk(st, STORE_DB_DEDUPE, NULL, 0);
	assert_int_equal(r.w.n, 2);
	assert_string_equal(r.w.seen[0], "r2");
	assert_string_equal(r.w.seen[1], "r3");
	/* on disk until swept; indexed: r1, r2, l1 (r3 never expires) */
	assert_int_equal(counts(st, STORE_DB_DEDUPE).db_entries, 3);
	assert_int_equal(counts(st, STORE_DB_DEDUPE).index_entries, 3);
	store_close(&st);
}

static void
test_sweep(void **state)
{
	static const size_t batches[] = { 4, 1, 0, 1000 };
	struct fixture *fx = *state;
	struct store *st;
	time_t now = time(NULL);
	size_t removed, b;
	char key[32], err[256];
	int i;

	st = open_ok(fx->db, 0, 0);
	for (b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
		for (i = 0; i < 25; i++) {
			snprintf(key, sizeof(key), "old%02d", i);
			assert_int_equal(put(st, i % 2 ? STORE_DB_DEDUPE :
			    STORE_DB_LEDGER, key, "x", now + 10 + i, 0), 0);
		}
		for (i = 0; i < 5; i++) {
			snprintf(key, sizeof(key), "new%02d", i);
			assert_int_equal(put(st, STORE_DB_DEDUPE, key, "x",
			    now + 100000, 0), 0);
		}
		assert_int_equal(put(st, STORE_DB_DEDUPE, "never", "x", 0, 0),
		    0);

		if (store_sweep_expired(st, now + 1000, batches[b], &removed,
		    err, sizeof(err)) != 0)
			fail_msg("batch %zu: %s", batches[b], err);
		assert_int_equal(removed, 25);
		assert_int_equal(counts(st, STORE_DB_DEDUPE).db_entries, 6);
		assert_int_equal(counts(st, STORE_DB_LEDGER).db_entries, 0);
		assert_int_equal(counts(st, STORE_DB_DEDUPE).index_entries, 5);
		assert_int_equal(get(st, STORE_DB_DEDUPE, "new00", NULL, 0), 0);
		assert_int_equal(get(st, STORE_DB_DEDUPE, "never", NULL, 0), 0);

		/* nothing left to do */
		assert_int_equal(store_sweep_expired(st, now + 1000,
		    batches[b], &removed, err, sizeof(err)), 0);
		assert_int_equal(removed, 0);
	}
	/* The far future takes the rest but not what never expires. */
	assert_int_equal(store_sweep_expired(st, now + 200000, 2, &removed,
	    err, sizeof(err)), 0);
	assert_int_equal(removed, 5);
	assert_int_equal(counts(st, STORE_DB_DEDUPE).db_entries, 1);
	assert_int_equal(counts(st, STORE_DB_DEDUPE).index_entries, 0);
	store_close(&st);
}

struct stale {
	time_t		due;
	const char     *key;
};

/* fn_stale_entry - an index entry that no longer matches its key */
static int
fn_stale_entry(struct store_txn *tx, void *arg)
{
	const struct stale *s = arg;
	unsigned char ik[64];
	MDB_val k, v = { 0, NULL };
	MDB_dbi dbi;
	uint64_t t = (uint64_t)s->due;
	size_t klen = strlen(s->key);
	int i, rc;

	for (i = 7; i >= 0; i--, t >>= 8)
		ik[i] = (unsigned char)(t & 0xff);
	ik[8] = STORE_DB_DEDUPE;
	memcpy(ik + 9, s->key, klen);
	k.mv_data = ik;
	k.mv_size = 9 + klen;
	if ((rc = mdb_dbi_open(store_txn_mdb(tx), "expiry", 0, &dbi)) != 0 ||
	    (rc = mdb_put(store_txn_mdb(tx), dbi, &k, &v, 0)) != 0)
		return (store_txn_mdb_err(tx, rc, "stale"));
	return (0);
}

static void
test_sweep_overwritten(void **state)
{
	struct fixture *fx = *state;
	struct store *st;
	time_t now = time(NULL);
	struct stale s = { .due = now + 20, .key = "k" };
	size_t removed;
	char buf[64], err[256];

	st = open_ok(fx->db, 0, 0);
	assert_int_equal(put(st, STORE_DB_DEDUPE, "k", "v1", now + 10, 0), 0);
	assert_int_equal(put(st, STORE_DB_DEDUPE, "k", "v2", now + 100000, 0),
	    0);
	/* the first entry went with the value it described */
	assert_int_equal(counts(st, STORE_DB_DEDUPE).index_entries, 1);
	assert_int_equal(store_sweep_expired(st, now + 1000, 1, &removed,
	    err, sizeof(err)), 0);
	assert_int_equal(removed, 0);

	/* Even a stale entry (left by a crash, say) must not delete v2. */
	assert_int_equal(store_txn_run(st, 0, fn_stale_entry, &s, err,
	    sizeof(err)), 0);
	assert_int_equal(counts(st, STORE_DB_DEDUPE).index_entries, 2);
	assert_int_equal(store_sweep_expired(st, now + 1000, 1, &removed,
	    err, sizeof(err)), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(get(st, STORE_DB_DEDUPE, "k", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "v2");
	assert_int_equal(counts(st, STORE_DB_DEDUPE).index_entries, 1);

	/* Rewritten to never expire: no entry left, never swept. */
	assert_int_equal(put(st, STORE_DB_DEDUPE, "k", "v3", 0, 0), 0);
	assert_int_equal(counts(st, STORE_DB_DEDUPE).index_entries, 0);
	assert_int_equal(store_sweep_expired(st, now + 10000000, 1, &removed,
	    err, sizeof(err)), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(get(st, STORE_DB_DEDUPE, "k", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "v3");
	/* An entry pointing at a deleted key is just dropped. */
	s.key = "nokey";
	assert_int_equal(store_txn_run(st, 0, fn_stale_entry, &s, err,
	    sizeof(err)), 0);
	assert_int_equal(store_sweep_expired(st, now + 1000, 1, &removed,
	    err, sizeof(err)), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(counts(st, STORE_DB_DEDUPE).index_entries, 0);
	/* Junk (time 0 sorts first) must not block the sweep behind it. */
	s.due = 0;
	s.key = "k";
	assert_int_equal(store_txn_run(st, 0, fn_stale_entry, &s, err,
	    sizeof(err)), 0);
	assert_int_equal(put(st, STORE_DB_DEDUPE, "old", "v", now + 10, 0), 0);
	assert_int_equal(store_sweep_expired(st, now + 1000, 1, &removed,
	    err, sizeof(err)), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(counts(st, STORE_DB_DEDUPE).index_entries, 0);
	assert_int_equal(get(st, STORE_DB_DEDUPE, "k", NULL, 0), 0);
	store_close(&st);
}

static void
test_del(void **state)
{
	struct fixture *fx = *state;
	struct store *st;
	time_t now = time(NULL);

	st = open_ok(fx->db, 0, 0);
	assert_int_equal(put(st, STORE_DB_QUEUE, "q", "v", 0, 0), 0);
	assert_int_equal(del(st, STORE_DB_QUEUE, "q"), 0);
	assert_int_equal(del(st, STORE_DB_QUEUE, "q"), STORE_NOTFOUND);
	assert_int_equal(get(st, STORE_DB_QUEUE, "q", NULL, 0),
	    STORE_NOTFOUND);

	assert_int_equal(put(st, STORE_DB_DEDUPE, "d", "v", now + 3600, 0), 0);
	assert_int_equal(counts(st, STORE_DB_DEDUPE).index_entries, 1);
	assert_int_equal(del(st, STORE_DB_DEDUPE, "d"), 0);
	assert_int_equal(counts(st, STORE_DB_DEDUPE).index_entries, 0);
	assert_int_equal(del(st, STORE_DB_DEDUPE, "d"), STORE_NOTFOUND);

	/* An expired key "is not there" but is removed all the same. */
	assert_int_equal(put(st, STORE_DB_LEDGER, "x", "v", now - 1, 0), 0);
	assert_int_equal(del(st, STORE_DB_LEDGER, "x"), STORE_NOTFOUND);
	assert_int_equal(counts(st, STORE_DB_LEDGER).db_entries, 0);
	assert_int_equal(counts(st, STORE_DB_LEDGER).index_entries, 0);
	store_close(&st);
}

/* fn_die - leave this process while holding a reader slot */
static int
fn_die(struct store_txn *tx, void *arg)
{
	(void)tx;
	(void)arg;
	_exit(0);
}

static int
child_dies_reading(const char *dir, void *arg)
{
	struct store *st = NULL;
	char err[256];

	(void)arg;
	if (store_open(&st, dir, 0, err, sizeof(err)) != 0)
		return (10);
	(void)store_txn_run(st, 1, fn_die, NULL, err, sizeof(err));
	return (11);
}

/*
 * holder_start - a process that keeps the store open until *fd_w is
 * closed.  LMDB resets its reader table when the first process opens
 * the environment, so a dead reader only matters (and can only be
 * seen) while another process has it open: in production, the other
 * daemon.
 */
static pid_t
holder_start(const char *dir, int *fd_w)
{
	int ready[2], hold[2];
	struct store *st = NULL;
	char c, err[256];
	pid_t pid;

	if (pipe(ready) == -1 || pipe(hold) == -1)
		return (-1);
	fflush(NULL);
	if ((pid = fork()) == -1)
		return (-1);
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		if (store_open(&st, dir, 0, err, sizeof(err)) != 0)
			_exit(10);
		c = 'r';
		if (write(ready[1], &c, 1) != 1)
			_exit(11);
		while (read(hold[0], &c, 1) > 0)
			;
		store_close(&st);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	if (read(ready[0], &c, 1) != 1) {
		close(ready[0]);
		close(hold[1]);
		return (-1);
	}
	close(ready[0]);
	*fd_w = hold[1];
	return (pid);
}

static int
holder_stop(pid_t pid, int fd_w)
{
	int status;

	close(fd_w);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return (-1);
	return (WEXITSTATUS(status));
}

static void
test_stale_readers(void **state)
{
	struct fixture *fx = *state;
	struct store *st;
	char err[256];
	int cleared = -1, fd_w = -1;
	pid_t holder;

	st = open_ok(fx->db, 0, 0);
	store_close(&st);
	holder = holder_start(fx->db, &fd_w);
	assert_true(holder > 0);
	assert_int_equal(run_child(child_dies_reading, fx->db, NULL), 0);
	st = open_ok(fx->db, 0, 0);
	assert_int_equal(store_stale_readers(st), 1);
	assert_int_equal(store_reader_check(st, &cleared, err, sizeof(err)),
	    0);
	assert_int_equal(cleared, 0);

	/* while we are open, a crash is cleared by the periodic check */
	assert_int_equal(run_child(child_dies_reading, fx->db, NULL), 0);
	assert_int_equal(run_child(child_dies_reading, fx->db, NULL), 0);
	assert_int_equal(store_reader_check(st, &cleared, err, sizeof(err)),
	    0);
	/* the second child's open already cleared the first one's slot */
	assert_true(cleared >= 1);
	assert_int_equal(store_reader_check(st, &cleared, err, sizeof(err)),
	    0);
	assert_int_equal(cleared, 0);
	store_close(&st);
	assert_int_equal(holder_stop(holder, fd_w), 0);
}

/* child_reads_rdonly - what ferryctl does beside a running daemon */
static int
child_reads_rdonly(const char *dir, void *arg)
{
	struct op o = { .db = STORE_DB_CUTOVER, .key = "x", .klen = 1,
	    .val = "y", .vlen = 1 };
	struct store *ro = NULL;
	size_t removed;
	char buf[64], err[256];
	int rc = 0;

	(void)arg;
	if (store_open(&ro, dir, STORE_RDONLY, err, sizeof(err)) != 0)
		return (10);
	if (get(ro, STORE_DB_CUTOVER, "example.org", buf, sizeof(buf)) != 0 ||
	    strcmp(buf, "phase2") != 0)
		rc = 11;
	else if (store_txn_run(ro, 0, op_put, &o, err, sizeof(err)) != -1 ||
	    strstr(err, "read-only") == NULL)
		rc = 12;
	else if (store_sweep_expired(ro, time(NULL), 0, &removed, err,
	    sizeof(err)) != -1 || strstr(err, "read-only") == NULL)
		rc = 13;
	store_close(&ro);
	return (rc);
}

static void
test_rdonly(void **state)
{
	struct fixture *fx = *state;
	struct store *st = NULL;
	struct stat sb;
	DIR *d;
	struct dirent *de;
	char path[256], err[256];
	int entries = 0;

	/* missing directory: clear error, nothing created */
	assert_int_equal(store_open(&st, fx->db, STORE_RDONLY, err,
	    sizeof(err)), -1);
	assert_null(st);
	assert_non_null(strstr(err, "does not exist"));
	assert_non_null(strstr(err, fx->db));
	assert_int_equal(stat(fx->db, &sb), -1);

	/* empty directory: no store there, still nothing created */
	assert_int_equal(mkdir(fx->db, 0700), 0);
	assert_int_equal(store_open(&st, fx->db, STORE_RDONLY, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "data.mdb missing"));
	assert_non_null(d = opendir(fx->db));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, ".."))
			entries++;
	closedir(d);
	assert_int_equal(entries, 0);

	/* a store written by a daemon, read beside it by another process */
	st = open_ok(fx->db, 0, 0);
	assert_int_equal(put(st, STORE_DB_CUTOVER, "example.org", "phase2", 0,
	    0), 0);
	assert_int_equal(run_child(child_reads_rdonly, fx->db, NULL), 0);
	store_close(&st);

	/* a path that is not a directory */
	snprintf(path, sizeof(path), "%s/data.mdb", fx->db);
	assert_int_equal(store_open(&st, path, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a directory"));
}

/* An environment without our databases (an older version wrote it). */
static void
test_rdonly_absent_dbs(void **state)
{
	struct fixture *fx = *state;
	struct store *st = NULL;
	struct walk_req r;
	MDB_env *env;
	char err[256];

	assert_int_equal(mkdir(fx->db, 0700), 0);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, fx->db, 0, 0600), 0);
	mdb_env_close(env);

	assert_int_equal(store_open(&st, fx->db, STORE_RDONLY, err,
	    sizeof(err)), 0);
	assert_int_equal(store_dbi(st, STORE_DB_QUEUE), 0);
	assert_int_equal(get(st, STORE_DB_DEDUPE, "k", NULL, 0),
	    STORE_NOTFOUND);
	r = walk(st, STORE_DB_QUEUE, NULL, 0);
	assert_int_equal(r.result, 0);
	assert_int_equal(r.w.n, 0);
	store_close(&st);
}


struct raw_hdr {
	char	value[128];
	char	index[128];
};

static int
op_raw_hdr(struct store_txn *tx, void *arg)
{
	struct raw_hdr *h = arg;
	MDB_txn *txn = store_txn_mdb(tx);
	MDB_dbi dbi, idx;
	MDB_val k = { 2, (void *)"r1" }, v, ik, iv;
	MDB_cursor *cur;

	if (mdb_dbi_open(txn, store_db_name(STORE_DB_DEDUPE), 0, &dbi) != 0 ||
	    mdb_get(txn, dbi, &k, &v) != 0 ||
	    mdb_dbi_open(txn, "expiry", 0, &idx) != 0 ||
	    mdb_cursor_open(txn, idx, &cur) != 0)
		return (-1);
	snprintf(h->value, sizeof(h->value), "%.120s",
	    hex(v.mv_data, v.mv_size));
	if (mdb_cursor_get(cur, &ik, &iv, MDB_FIRST) != 0) {
		mdb_cursor_close(cur);
		return (-1);
	}
	snprintf(h->index, sizeof(h->index), "%.120s",
	    hex(ik.mv_data, ik.mv_size));
	mdb_cursor_close(cur);
	return (0);
}

/* The expiry header and the index key of an expiring value, pinned
 * (store.h: big-endian expiry, then the database id and the key). */
static void
test_expiry_golden(void **state)
{
	struct fixture *fx = *state;
	struct store *st;
	struct raw_hdr h;
	char err[256];

	st = open_ok(fx->db, 0, 0);
	assert_int_equal(put(st, STORE_DB_DEDUPE, "r1", "v",
	    (time_t)0x0102030405060708LL, 0), 0);
	assert_int_equal(store_txn_run(st, 1, op_raw_hdr, &h, err,
	    sizeof(err)), 0);
	assert_string_equal(h.value, "010203040506070876");
	assert_string_equal(h.index, "0102030405060708017231");
	store_close(&st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_open_reopen, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_two_processes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_nooverwrite, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_map_growth, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_map_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fn_error_aborts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_misuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_growth_by_other_process,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_get, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_overwritten, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_readers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rdonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_golden, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rdonly_absent_dbs, setup,
		    teardown),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
