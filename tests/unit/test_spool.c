/*
 * test_spool.c - the spool: group-committed messages land in
 * spool/queue with their LMDB record, the body reads back byte for byte
 * after the envelope header, commits without an envelope call get the
 * header put in front, write errors (EFBIG through RLIMIT_FSIZE) leave
 * nothing behind and report -1, start-up recovery (tmp leftovers, files
 * without records, records without files), --rebuild-index, and
 * spool_msg_open()'s refusals, and dedupe: a relay key put with the
 * record (MDB_NOOVERWRITE), a second copy reported as a duplicate of the
 * first (same round or later) and removed, spool_dedupe_lookup(), and a
 * key that expires after [dedupe] ttl, and the header's size line that
 * makes a file cut short by a crash unreadable.  Every test works in its own mkdtemp()
 * directory with a real LMDB store and a libevent loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "config.h"
#include "ledger.h"
#include "log.h"
#include "msgid.h"
#include "relay.h"
#include "spool.h"
#include "queue.h"
#include "relay_view.h"
#include "store.h"
#include "tmpdir.h"

struct fx {
	char		 tmp[64];
	char		 path[1024];
	struct config	 cfg;
	struct relay	 relay;
	int		 ncb;
	int		 nok;
	int		 nfail;
	int		 ndup;
	char		 last_id[QUEUE_ID_LEN + 1];
	char		 dup_id[QUEUE_ID_LEN + 1];	/* last duplicate */
	char		 dup_of[QUEUE_ID_LEN + 1];	/* its first copy */
};

static int
fx_open(struct fx *fx)
{
	char err[256], db[300];

	snprintf(db, sizeof(db), "%s/db", fx->tmp);
	if (store_open(&fx->relay.store, db, 0, err, sizeof(err)) == -1) {
		fprintf(stderr, "store_open: %s\n", err);
		return (-1);
	}
	if (spool_open(&fx->relay.spool, &fx->relay, err, sizeof(err)) == -1) {
		fprintf(stderr, "spool_open: %s\n", err);
		store_close(&fx->relay.store);
		return (-1);
	}
	return (0);
}

static void
fx_close(struct fx *fx)
{
	spool_close(&fx->relay.spool);
	store_close(&fx->relay.store);
}

static int
setup(void **state)
{
	struct fx *fx;
	char err[256];

	if ((fx = calloc(1, sizeof(*fx))) == NULL)
		return (-1);
	snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/test_spool.XXXXXX");
	if (mkdtemp(fx->tmp) == NULL)
		return (-1);
	if (config_load_defaults(&fx->cfg, err, sizeof(err)) == -1)
		return (-1);
	free(fx->cfg.global.state_dir);
	fx->cfg.global.state_dir = strdup(fx->tmp);
	fx->relay.cfg = &fx->cfg;
	fx->relay.base = event_base_new();
	log_open("test_spool", LOG_DEST_STDERR, 0, LOG_LVL_ERROR);
	if (fx->relay.base == NULL || fx_open(fx) == -1)
		return (-1);
	*state = fx;
	return (0);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	fx_close(fx);
	event_base_free(fx->relay.base);
	config_free(&fx->cfg);
	tmpdir_remove(fx->tmp);
	free(fx);
	return (0);
}

static void
commit_cb(int status, const char *id, const char *why, void *arg)
{
	struct fx *fx = arg;

	fx->ncb++;
	if (status == 0)
		fx->nok++;
	else if (status == 1) {
		fx->ndup++;
		memcpy(fx->dup_id, id, QUEUE_ID_LEN + 1);
		snprintf(fx->dup_of, sizeof(fx->dup_of), "%s", why);
	} else
		fx->nfail++;
	memcpy(fx->last_id, id, QUEUE_ID_LEN + 1);
}

static void
wait_callbacks(struct fx *fx, int n)
{
	int spins = 0;

	while (fx->ncb < n && spins++ < 10000)
		event_base_loop(fx->relay.base, EVLOOP_ONCE);
	assert_int_equal(fx->ncb, n);
}

static struct delivery two_dlv[] = {
	{ "alice@example.com", DLV_UPSTREAM, DLV_PENDING, 0, 0, NULL, 0, { 0 } },
	{ "alice@example.com", DLV_COPY, DLV_PENDING, 0, 0, NULL, 0, { 0 } },
};

static void
make_rec(struct queue_record *rec, const char *client)
{
	memset(rec, 0, sizeof(*rec));
	rec->sender = (char *)"bob@example.org";
	rec->client = (char *)client;
	rec->ndlv = 2;
	rec->dlv = two_dlv;
}

static int
file_exists(struct fx *fx, const char *sub, const char *id)
{
	struct stat st;

	snprintf(fx->path, sizeof(fx->path), "%s/spool/%s/%s", fx->tmp, sub, id);
	return (stat(fx->path, &st) == 0);
}

struct getrec {
	const char		*id;
	struct queue_record	 rec;
	int			 found;
};

static int
txn_get(struct store_txn *tx, void *arg)
{
	struct getrec *g = arg;
	const void *val;
	size_t vlen;
	char err[128];
	int rc;

	queue_record_clear(&g->rec);
	g->found = 0;
	rc = store_get(tx, STORE_DB_QUEUE, g->id, strlen(g->id), &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0 || queue_record_decode(val, vlen, &g->rec, err,
	    sizeof(err)) != 0)
		return (-1);
	g->found = 1;
	return (0);
}

/* get_rec - 1 and the record when id is indexed, 0 when not */
static int
get_rec(struct fx *fx, const char *id, struct queue_record *rec)
{
	struct getrec g;
	char err[256];

	memset(&g, 0, sizeof(g));
	g.id = id;
	assert_int_equal(store_txn_run(fx->relay.store, 1, txn_get, &g, err,
	    sizeof(err)), 0);
	if (rec)
		*rec = g.rec;
	else
		queue_record_clear(&g.rec);
	return (g.found);
}

static void
assert_body(struct fx *fx, const char *id, const char *body, size_t len)
{
	uint64_t off, size;
	char *buf;
	int fd;

	assert_int_equal(spool_msg_open(fx->relay.spool, id, &fd, &off, &size),
	    0);
	assert_true(size == len);
	buf = malloc(len + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, len + 1), (ssize_t)len);
	assert_memory_equal(buf, body, len);
	assert_true((uint64_t)lseek(fd, 0, SEEK_CUR) == off + len);
	free(buf);
	close(fd);
}

static const char body1[] = "Received: from x\r\nSubject: hi\r\n\r\n.leading dot "
    "kept unstuffed\r\nbye\r\n";

static void
test_commit_envelope(void **state)
{
	struct fx *fx = *state;
	struct queue_record rec, got;
	struct spool_msg *m;
	char err[128], id[QUEUE_ID_LEN + 1];

	m = spool_msg_new(fx->relay.spool, err, sizeof(err));
	assert_non_null(m);
	memcpy(id, spool_msg_id(m), sizeof(id));
	/* Written in place into a pool file whose name is durable. */
	assert_true(file_exists(fx, "pool", id));
	assert_false(file_exists(fx, "tmp", id));
	make_rec(&rec, "helo.example [192.0.2.1]");
	assert_int_equal(spool_msg_envelope(m, &rec), 0);
	assert_int_equal(spool_msg_write(m, body1, 10), 0);
	assert_int_equal(spool_msg_write(m, body1 + 10, sizeof(body1) - 11), 0);
	assert_int_equal(spool_msg_envelope(m, &rec), -1);	/* too late */
	assert_int_equal(spool_msg_commit(&m, &rec, commit_cb, fx), 0);
	assert_null(m);
	assert_string_equal(rec.id, id);
	assert_true(rec.size == sizeof(body1) - 1);
	wait_callbacks(fx, 1);
	assert_int_equal(fx->nok, 1);
	assert_string_equal(fx->last_id, id);
	assert_false(file_exists(fx, "tmp", id));
	assert_false(file_exists(fx, "pool", id));
	assert_true(file_exists(fx, "queue", id));
	assert_int_equal(get_rec(fx, id, &got), 1);
	assert_string_equal(got.sender, "bob@example.org");
	assert_int_equal(got.ndlv, 2);
	assert_int_equal(got.dlv[1].dest, DLV_COPY);
	assert_true(got.size == sizeof(body1) - 1);
	queue_record_clear(&got);
	assert_body(fx, id, body1, sizeof(body1) - 1);
	assert_int_equal(spool_remove(fx->relay.spool, id), 0);
	assert_false(file_exists(fx, "queue", id));
	assert_int_equal(spool_remove(fx->relay.spool, id), 0);	/* gone */
}

/* Many sessions at once, big bodies past the write buffer, and the
 * DSN-style path without spool_msg_envelope(). */
static void
test_commit_many(void **state)
{
	struct fx *fx = *state;
	struct queue_record rec;
	struct spool_msg *m[40];
	char err[128], ids[40][QUEUE_ID_LEN + 1], *big;
	size_t biglen = 100000, i;

	big = malloc(biglen);
	assert_non_null(big);
	for (i = 0; i < biglen; i++)
		big[i] = (i % 80 == 79) ? '\n' : (char)('a' + i % 26);
	for (i = 0; i < 40; i++) {
		m[i] = spool_msg_new(fx->relay.spool, err, sizeof(err));
		assert_non_null(m[i]);
		memcpy(ids[i], spool_msg_id(m[i]), sizeof(ids[i]));
		make_rec(&rec, "c");
		if (i % 2 == 0)
			assert_int_equal(spool_msg_envelope(m[i], &rec), 0);
		assert_int_equal(spool_msg_write(m[i], big, 70000 + i), 0);
		assert_int_equal(spool_msg_write(m[i], big + 70000 + i, 3), 0);
	}
	for (i = 0; i < 40; i++) {
		make_rec(&rec, "c");
		assert_int_equal(spool_msg_commit(&m[i], &rec, commit_cb, fx), 0);
	}
	wait_callbacks(fx, 40);
	assert_int_equal(fx->nok, 40);
	for (i = 0; i < 40; i++) {
		assert_int_equal(get_rec(fx, ids[i], NULL), 1);
		assert_body(fx, ids[i], big, 70003 + i);
		assert_false(file_exists(fx, "tmp", ids[i]));
		assert_false(file_exists(fx, "pool", ids[i]));
	}
	free(big);
}

static void	write_file(struct fx *, const char *, const char *,
		    const char *);

/* pool_count - files in spool/pool, and how many of them are empty */
static int
pool_count(struct fx *fx, int *empty_r)
{
	char path[1100];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int n = 0;

	*empty_r = 0;
	snprintf(path, sizeof(path), "%s/spool/pool", fx->tmp);
	if ((d = opendir(path)) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/spool/pool/%s", fx->tmp,
		    de->d_name);
		if (stat(path, &st) == 0 && st.st_size == 0)
			(*empty_r)++;
		n++;
	}
	closedir(d);
	return (n);
}

/*
 * The pool: at start spool/pool holds empty files (their names made
 * durable ahead of time); messages through it with refills, DSN-style
 * ones without spool_msg_envelope() too, and more messages open at once
 * than it holds (past it, a refilled pool file or spool/tmp).
 */
static void
test_pool_refill(void **state)
{
	struct fx *fx = *state;
	struct queue_record rec;
	struct spool_msg *m, *held[300];
	char err[128], ids[500][QUEUE_ID_LEN + 1];
	int i, n, empty;

	n = pool_count(fx, &empty);
	assert_true(n >= 32);
	assert_int_equal(empty, n);
	for (i = 0; i < 200; i++) {
		m = spool_msg_new(fx->relay.spool, err, sizeof(err));
		assert_non_null(m);
		memcpy(ids[i], spool_msg_id(m), sizeof(ids[i]));
		make_rec(&rec, "c");
		if (i % 3 != 0)
			assert_int_equal(spool_msg_envelope(m, &rec), 0);
		assert_int_equal(spool_msg_write(m, body1, sizeof(body1) - 1),
		    0);
		assert_int_equal(spool_msg_commit(&m, &rec, commit_cb, fx), 0);
		if (i % 10 == 9)
			wait_callbacks(fx, i + 1);
	}
	wait_callbacks(fx, 200);
	assert_int_equal(fx->nok, 200);
	/* More messages in DATA at once than the pool holds: those past it
	 * get a refilled pool file or one in spool/tmp; all commit. */
	for (i = 0; i < 300; i++) {
		held[i] = spool_msg_new(fx->relay.spool, err, sizeof(err));
		assert_non_null(held[i]);
		memcpy(ids[200 + i], spool_msg_id(held[i]), sizeof(ids[0]));
		make_rec(&rec, "c");
		assert_int_equal(spool_msg_envelope(held[i], &rec), 0);
		assert_int_equal(spool_msg_write(held[i], body1,
		    sizeof(body1) - 1), 0);
	}
	for (i = 0; i < 300; i++) {
		make_rec(&rec, "c");
		assert_int_equal(spool_msg_commit(&held[i], &rec, commit_cb,
		    fx), 0);
	}
	wait_callbacks(fx, 500);
	assert_int_equal(fx->nok, 500);
	for (i = 0; i < 500; i++) {
		char id[QUEUE_ID_LEN + 1];

		memcpy(id, ids[i], sizeof(id));
		assert_int_equal(get_rec(fx, id, NULL), 1);
		assert_body(fx, id, body1, sizeof(body1) - 1);
		assert_false(file_exists(fx, "pool", id));
		assert_false(file_exists(fx, "tmp", id));
	}
	n = pool_count(fx, &empty);
	assert_true(n > 0);
	assert_int_equal(empty, n);
}

/*
 * Start-up over spool/pool after a crash: a finished message (its size
 * line matches) was acknowledged and is queued and indexed; an
 * unfinished one (size line still zeros, a header cut short, a message
 * shorter than its size line) never was: not indexed, not delivered,
 * emptied and handed out again.
 */
static void
test_pool_recovery(void **state)
{
	struct fx *fx = *state;
	struct queue_record got;
	struct spool_msg *m;
	char err[128], ids[3][QUEUE_ID_LEN + 1];
	struct stat st;
	int i, n, empty;

	fx_close(fx);
	write_file(fx, "pool", "0000000000000001",
	    "mailferry-spool 1\nid 0000000000000001\narrived 1700000000\n"
	    "flags 0\nsize 00000000000000000006\nclient c\nsender a@b.example\n"
	    "rcpt upstream x@example.com\n\nDONE\r\n");
	write_file(fx, "pool", "0000000000000002",
	    "mailferry-spool 1\nid 0000000000000002\narrived 1700000000\n"
	    "flags 0\nsize 00000000000000000000\nclient c\nsender a@b.example\n"
	    "rcpt upstream x@example.com\n\nHALF A MESS");
	write_file(fx, "pool", "0000000000000003",
	    "mailferry-spool 1\nid 0000000000000003\narrived 1700000000\n"
	    "flags 0\nsize 00000000000000000050\nclient c\nsender a@b.example\n"
	    "rcpt upstream x@example.com\n\nSHORT\r\n");
	write_file(fx, "pool", "0000000000000004",
	    "mailferry-spool 1\nid 0000000000000004\narri");
	assert_int_equal(fx_open(fx), 0);

	assert_false(file_exists(fx, "pool", "0000000000000001"));
	assert_true(file_exists(fx, "queue", "0000000000000001"));
	assert_int_equal(get_rec(fx, "0000000000000001", &got), 1);
	assert_string_equal(got.sender, "a@b.example");
	assert_true(got.size == 6);
	queue_record_clear(&got);
	for (i = 2; i <= 4; i++) {
		snprintf(ids[0], sizeof(ids[0]), "000000000000000%d", i);
		assert_int_equal(get_rec(fx, ids[0], NULL), 0);
		assert_false(file_exists(fx, "queue", ids[0]));
		assert_true(file_exists(fx, "pool", ids[0]));
		assert_int_equal(stat(fx->path, &st), 0);
		assert_int_equal(st.st_size, 0);
	}
	n = pool_count(fx, &empty);
	assert_int_equal(empty, n);
	/* Reused first (oldest first), for whole messages this time. */
	for (i = 0; i < 3; i++) {
		struct queue_record rec;

		m = spool_msg_new(fx->relay.spool, err, sizeof(err));
		assert_non_null(m);
		memcpy(ids[i], spool_msg_id(m), sizeof(ids[i]));
		make_rec(&rec, "c");
		assert_int_equal(spool_msg_envelope(m, &rec), 0);
		assert_int_equal(spool_msg_write(m, body1, sizeof(body1) - 1),
		    0);
		assert_int_equal(spool_msg_commit(&m, &rec, commit_cb, fx), 0);
	}
	assert_string_equal(ids[0], "0000000000000002");
	assert_string_equal(ids[1], "0000000000000003");
	assert_string_equal(ids[2], "0000000000000004");
	wait_callbacks(fx, 3);
	assert_int_equal(fx->nok, 3);
	for (i = 0; i < 3; i++)
		assert_body(fx, ids[i], body1, sizeof(body1) - 1);
}

static void
test_abort(void **state)
{
	struct fx *fx = *state;
	struct spool_msg *m;
	char err[128], id[QUEUE_ID_LEN + 1];

	m = spool_msg_new(fx->relay.spool, err, sizeof(err));
	assert_non_null(m);
	memcpy(id, spool_msg_id(m), sizeof(id));
	assert_int_equal(spool_msg_write(m, "x", 1), 0);
	spool_msg_abort(&m);
	assert_null(m);
	spool_msg_abort(&m);
	assert_false(file_exists(fx, "tmp", id));
	assert_false(file_exists(fx, "pool", id));
	assert_int_equal(get_rec(fx, id, NULL), 0);
}

/* A file size limit makes write(2) fail with EFBIG, as ENOSPC would. */
static void
test_write_error(void **state)
{
	struct fx *fx = *state;
	struct queue_record rec;
	struct spool_msg *m;
	struct rlimit old, lim;
	char err[128], id[QUEUE_ID_LEN + 1], *big;
	size_t i;
	int rc = 0;

	big = calloc(1, 64 * 1024);
	assert_non_null(big);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 100 * 1024;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	m = spool_msg_new(fx->relay.spool, err, sizeof(err));
	assert_non_null(m);
	memcpy(id, spool_msg_id(m), sizeof(id));
	make_rec(&rec, "c");
	assert_int_equal(spool_msg_envelope(m, &rec), 0);
	for (i = 0; i < 4 && rc == 0; i++)
		rc = spool_msg_write(m, big, 64 * 1024);
	assert_int_equal(rc, -1);
	assert_int_equal(spool_msg_commit(&m, &rec, commit_cb, fx), 0);
	wait_callbacks(fx, 1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(fx->nfail, 1);
	assert_false(file_exists(fx, "tmp", id));
	assert_false(file_exists(fx, "pool", id));
	assert_false(file_exists(fx, "queue", id));
	assert_int_equal(get_rec(fx, id, NULL), 0);
	free(big);
}

static void
write_file(struct fx *fx, const char *sub, const char *name, const char *text)
{
	FILE *fp;

	snprintf(fx->path, sizeof(fx->path), "%s/spool/%s/%s", fx->tmp, sub,
	    name);
	fp = fopen(fx->path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void
test_recovery(void **state)
{
	struct fx *fx = *state;
	struct queue_record rec, got;
	struct spool_msg *m;
	char err[128], kept[QUEUE_ID_LEN + 1];

	/* One real message whose file we then delete behind its back. */
	m = spool_msg_new(fx->relay.spool, err, sizeof(err));
	assert_non_null(m);
	memcpy(kept, spool_msg_id(m), sizeof(kept));
	make_rec(&rec, "c");
	assert_int_equal(spool_msg_envelope(m, &rec), 0);
	assert_int_equal(spool_msg_write(m, "a\r\n", 3), 0);
	assert_int_equal(spool_msg_commit(&m, &rec, commit_cb, fx), 0);
	wait_callbacks(fx, 1);
	fx_close(fx);

	snprintf(fx->path, sizeof(fx->path), "%s/spool/queue/%s", fx->tmp, kept);
	assert_int_equal(unlink(fx->path), 0);
	write_file(fx, "tmp", "00000000000000aa", "half a message");
	write_file(fx, "queue", "00000000000000bb",
	    "mailferry-spool 1\nid 00000000000000bb\narrived 1700000000\n"
	    "flags 2\nclient h%0D%0Ax [1.2.3.4] 100%25\nsender \n"
	    "future-key whatever\n"
	    "rcpt upstream a@example.com\nrcpt copy b@example.com\n\nBODY\r\n");
	write_file(fx, "queue", "00000000000000cc", "garbage\n\n");
	write_file(fx, "queue", "not-an-id", "x");

	assert_int_equal(fx_open(fx), 0);
	assert_false(file_exists(fx, "tmp", "00000000000000aa"));
	assert_int_equal(get_rec(fx, kept, NULL), 0);
	assert_int_equal(get_rec(fx, "00000000000000cc", NULL), 0);
	assert_int_equal(get_rec(fx, "00000000000000bb", &got), 1);
	assert_string_equal(got.sender, "");
	assert_string_equal(got.client, "h\r\nx [1.2.3.4] 100%");
	assert_int_equal(got.flags, QR_DSN);
	assert_true(got.arrived == 1700000000);
	assert_true(got.size == 6);
	assert_int_equal(got.ndlv, 2);
	assert_string_equal(got.dlv[0].rcpt, "a@example.com");
	assert_int_equal(got.dlv[0].dest, DLV_UPSTREAM);
	assert_string_equal(got.dlv[1].rcpt, "b@example.com");
	assert_int_equal(got.dlv[1].dest, DLV_COPY);
	assert_int_equal(got.dlv[1].state, DLV_PENDING);
	queue_record_clear(&got);
	assert_body(fx, "00000000000000bb", "BODY\r\n", 6);
}

struct markall {
	const char	*id;
};

static int
txn_mark_sent(struct store_txn *tx, void *arg)
{
	struct markall *ma = arg;
	struct queue_record rec;
	const void *val;
	unsigned char *buf;
	size_t vlen, len, i;
	char err[128];
	int rc;

	if (store_get(tx, STORE_DB_QUEUE, ma->id, QUEUE_ID_LEN, &val,
	    &vlen) != 0 || queue_record_decode(val, vlen, &rec, err,
	    sizeof(err)) != 0)
		return (-1);
	for (i = 0; i < rec.ndlv; i++)
		rec.dlv[i].state = DLV_SENT;
	if (queue_record_encode(&rec, &buf, &len) != 0) {
		queue_record_clear(&rec);
		return (-1);
	}
	queue_record_clear(&rec);
	rc = store_put(tx, STORE_DB_QUEUE, ma->id, QUEUE_ID_LEN, buf, len, 0);
	free(buf);
	if (rc != 0)
		return (-1);
	return (store_put(tx, STORE_DB_QUEUE, "zzzz", 4, "junk", 4, 0));
}

static void
test_rebuild(void **state)
{
	struct fx *fx = *state;
	struct queue_record rec, got;
	struct spool_msg *m;
	struct markall ma;
	char err[256], ids[3][QUEUE_ID_LEN + 1];
	size_t count, i;

	for (i = 0; i < 3; i++) {
		m = spool_msg_new(fx->relay.spool, err, sizeof(err));
		assert_non_null(m);
		memcpy(ids[i], spool_msg_id(m), sizeof(ids[i]));
		make_rec(&rec, "c");
		assert_int_equal(spool_msg_envelope(m, &rec), 0);
		assert_int_equal(spool_msg_write(m, "x\r\n", 3), 0);
		assert_int_equal(spool_msg_commit(&m, &rec, commit_cb, fx), 0);
	}
	wait_callbacks(fx, 3);
	ma.id = ids[0];
	assert_int_equal(store_txn_run(fx->relay.store, 0, txn_mark_sent, &ma,
	    err, sizeof(err)), 0);
	assert_int_equal(get_rec(fx, ids[0], &got), 1);
	assert_int_equal(queue_record_done(&got), 1);
	queue_record_clear(&got);

	assert_int_equal(spool_rebuild_index(fx->relay.spool, &count, err,
	    sizeof(err)), 0);
	assert_int_equal(count, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(get_rec(fx, ids[i], &got), 1);
		assert_int_equal(queue_record_done(&got), 0);	/* pending */
		assert_true(got.size == 3);
		queue_record_clear(&got);
	}
	assert_int_equal(get_rec(fx, "zzzz", NULL), 0);	/* wiped */
}

/* ---- a rebuilt record is the record made at reception ------------------- */

static const char *const rb_msgs[] = {
	/* 0: with a Message-ID */
	"Received: from client.test ([192.0.2.1])\r\n\tby relay.test "
	"(mailferry) with ESMTP id x;\r\n\tMon, 23 Nov 2026 10:00:00 +0000\r\n"
	"From: Bob <bob@example.org>\r\nTo: alice@example.com\r\n"
	"Message-ID: <rebuild.1@Example.ORG>\r\nSubject: one\r\n\r\n"
	"first body\r\n.leading dot\r\n",
	/* 1: no Message-ID: Date and From (folded) */
	"Received: from client.test ([192.0.2.1])\r\n\tby relay.test;\r\n"
	"\tMon, 23 Nov 2026 10:00:00 +0000\r\nDate: Mon, 23 Nov 2026 "
	"09:59:00 +0000\r\nFrom: Bob\r\n <bob@example.org>\r\n\r\nsecond\r\n",
	/* 2: no Message-ID, Date nor From (keys of empty fields) */
	"Received: from client.test ([192.0.2.1])\r\n\tby relay.test;\r\n"
	"\tMon, 23 Nov 2026 10:00:00 +0000\r\nSubject: three\r\n\r\nthird\r\n",
};

static const char *const rb_rcpts[] = { "alice@example.com",
	"Carol@Example.com" };

/* rb_rec - the record of rb_msgs[i] as the SMTP server makes it */
static void
rb_rec(int i, struct queue_record *rec, struct delivery dlv[4])
{
	const char *msg = rb_msgs[i];
	struct msg_ident id;
	struct body_hash bh;
	unsigned char sha[BODY_HASH_LEN];
	int k, ident;

	memset(rec, 0, sizeof(*rec));
	memset(dlv, 0, 4 * sizeof(*dlv));
	rec->sender = (char *)"bob@example.org";
	rec->client = (char *)"client.test [192.0.2.1]";
	rec->flags = 0;
	rec->arrived = time(NULL) - 60 + i;	/* entries expire from it */
	rec->ndlv = 4;
	rec->dlv = dlv;
	assert_int_equal(body_hash_init(&bh), 0);
	assert_int_equal(body_hash_update(&bh, msg, strlen(msg)), 0);
	assert_int_equal(body_hash_final(&bh, sha), 0);
	ident = msg_ident_from_headers(msg, strlen(msg), &id) == 0;
	assert_int_equal(msgkey_relay(ident && id.has_msgid ? id.msgid : "",
	    rec->sender, rb_rcpts, 2, sha, rec->relay_key), 0);
	rec->has_relay_key = 1;
	for (k = 0; k < 4; k++) {
		dlv[k].rcpt = (char *)rb_rcpts[k % 2];
		dlv[k].dest = k < 2 ? DLV_UPSTREAM : DLV_COPY;
		dlv[k].state = DLV_PENDING;
		dlv[k].next_try = rec->arrived;
		if (k < 2 && ident && msgkey_ledger(dlv[k].rcpt, &id, sha,
		    dlv[k].ledger_key) == 0)
			dlv[k].has_ledger_key = 1;
	}
}

struct rb_keys {
	const unsigned char	*key;
	int			 del;
	int			 status;	/* ledger_get() */
};

static int
txn_rb_ledger(struct store_txn *tx, void *arg)
{
	struct rb_keys *k = arg;

	if (k->del) {
		k->status = store_del(tx, STORE_DB_LEDGER, k->key, MSGKEY_LEN);
		return (k->status == -1 ? -1 : 0);
	}
	k->status = ledger_get(tx, k->key, NULL);
	return (k->status == -1 ? -1 : 0);
}

static int
rb_ledger(struct fx *fx, const unsigned char *key, int del)
{
	struct rb_keys k = { key, del, -1 };
	char err[256];

	assert_int_equal(store_txn_run(fx->relay.store, !del, txn_rb_ledger,
	    &k, err, sizeof(err)), 0);
	return (k.status);
}

static int
txn_rb_undedupe(struct store_txn *tx, void *arg)
{
	return (store_del(tx, STORE_DB_DEDUPE, arg, MSGKEY_LEN) == -1 ? -1 : 0);
}

static void
test_rebuild_keys(void **state)
{
	struct fx *fx = *state;
	struct queue_record rec[3], orig[3], got;
	struct delivery dlv[3][4];
	struct spool_msg *m;
	char err[256], ids[3][QUEUE_ID_LEN + 1], first[QUEUE_ID_LEN + 1];
	size_t count, k;
	time_t t0;
	int i;

	for (i = 0; i < 3; i++) {
		rb_rec(i, &rec[i], dlv[i]);
		m = spool_msg_new(fx->relay.spool, err, sizeof(err));
		assert_non_null(m);
		memcpy(ids[i], spool_msg_id(m), sizeof(ids[i]));
		assert_int_equal(spool_msg_envelope(m, &rec[i]), 0);
		assert_int_equal(spool_msg_write(m, rb_msgs[i],
		    strlen(rb_msgs[i])), 0);
		assert_int_equal(spool_msg_commit(&m, &rec[i], commit_cb, fx),
		    0);
	}
	wait_callbacks(fx, 3);
	assert_int_equal(fx->nok, 3);
	/* the commit counted them in the domain's inbound record */
	{
		struct relay_domain_view v;

		assert_int_equal(relay_view_domain(fx->relay.store,
		    "example.com", time(NULL), &v, err, sizeof(err)), 0);
		assert_true(v.arrivals_24h == 3);
		assert_int_equal(v.last_inbound, rec[2].arrived);
		assert_string_equal(v.last_client, "client.test [192.0.2.1]");
		assert_true(v.queued == 6 && v.deferred == 0 && v.held == 0);
		assert_int_equal(v.oldest, rec[0].arrived);
	}
	for (i = 0; i < 3; i++) {
		assert_int_equal(get_rec(fx, ids[i], &orig[i]), 1);
		/* the commit wrote the pending entries; the rebuild must
		 * write them again, so take them away */
		for (k = 0; k < orig[i].ndlv; k++)
			if (orig[i].dlv[k].has_ledger_key) {
				assert_int_equal(rb_ledger(fx,
				    orig[i].dlv[k].ledger_key, 0),
				    LEDGER_PENDING);
				assert_int_equal(rb_ledger(fx,
				    orig[i].dlv[k].ledger_key, 1), 0);
			}
		assert_int_equal(store_txn_run(fx->relay.store, 0,
		    txn_rb_undedupe, rec[i].relay_key, err, sizeof(err)), 0);
	}
	/* the test's keys are the relay's at reception */
	assert_int_equal(orig[0].dlv[0].has_ledger_key, 1);
	assert_int_equal(orig[1].dlv[1].has_ledger_key, 1);
	assert_int_equal(orig[0].dlv[2].has_ledger_key, 0);	/* copy_to */

	t0 = time(NULL);
	assert_int_equal(spool_rebuild_index(fx->relay.spool, &count, err,
	    sizeof(err)), 0);
	assert_int_equal(count, 3);
	for (i = 0; i < 3; i++) {
		const struct queue_record *a = &orig[i];

		assert_int_equal(get_rec(fx, ids[i], &got), 1);
		assert_string_equal(got.id, a->id);
		assert_true(got.arrived == a->arrived);
		assert_true(got.size == a->size);
		assert_int_equal(got.flags, a->flags);
		assert_string_equal(got.sender, a->sender);
		assert_string_equal(got.client, a->client);
		assert_null(a->headers);
		assert_null(got.headers);
		assert_int_equal(got.ndlv, a->ndlv);
		for (k = 0; k < a->ndlv; k++) {
			const struct delivery *x = &a->dlv[k], *y = &got.dlv[k];

			assert_string_equal(y->rcpt, x->rcpt);
			assert_int_equal(y->dest, x->dest);
			assert_int_equal(y->state, x->state);
			assert_int_equal(y->attempts, x->attempts);
			assert_null(y->last_reply);
			/* due now: the original was due at its arrival */
			assert_true(y->next_try >= t0 &&
			    y->next_try <= time(NULL));
			if (y->has_ledger_key != x->has_ledger_key)
				fail_msg("message %d delivery %zu: ledger key "
				    "%d, at reception %d", i, k,
				    y->has_ledger_key, x->has_ledger_key);
			if (x->has_ledger_key) {
				assert_memory_equal(y->ledger_key,
				    x->ledger_key, MSGKEY_LEN);
				/* and its pending entry is back */
				assert_int_equal(rb_ledger(fx, y->ledger_key,
				    0), LEDGER_PENDING);
			}
		}
		queue_record_clear(&got);
		/* the dedupe key is back: the client's retry is a duplicate */
		assert_int_equal(spool_dedupe_lookup(fx->relay.spool,
		    rec[i].relay_key, first, err, sizeof(err)), 1);
		assert_string_equal(first, ids[i]);
		queue_record_clear(&orig[i]);
	}
}

static void
test_open_refusals(void **state)
{
	struct fx *fx = *state;
	uint64_t off, size;
	int fd;

	errno = 0;
	assert_int_equal(spool_msg_open(fx->relay.spool, "0123456789abcdef",
	    &fd, &off, &size), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_msg_open(fx->relay.spool, "../../etc/passwd",
	    &fd, &off, &size), -1);
	assert_int_equal(errno, EINVAL);
	write_file(fx, "queue", "0000000000000001",
	    "mailferry-spool 1\nid 0000000000000002\narrived 1\nsender \n"
	    "rcpt upstream a@b\n\nx");
	assert_int_equal(spool_msg_open(fx->relay.spool, "0000000000000001",
	    &fd, &off, &size), -1);
	assert_int_equal(errno, EINVAL);
	write_file(fx, "queue", "0000000000000003",
	    "mailferry-spool 1\nid 0000000000000003\narrived 1\nsender \n"
	    "rcpt upstream a@b\n");			/* no blank line */
	assert_int_equal(spool_msg_open(fx->relay.spool, "0000000000000003",
	    &fd, &off, &size), -1);
	write_file(fx, "queue", "0000000000000004",
	    "mailferry-spool 1\nid 0000000000000004\narrived 1\nsender %00\n"
	    "rcpt upstream a@b\n\n");		/* NUL escape */
	assert_int_equal(spool_msg_open(fx->relay.spool, "0000000000000004",
	    &fd, &off, &size), -1);
	write_file(fx, "queue", "0000000000000005",
	    "mailferry-spool 1\nid 0000000000000005\narrived 1\nsender \n"
	    "rcpt upstream a@b\n\n");		/* empty body is fine */
	assert_int_equal(spool_msg_open(fx->relay.spool, "0000000000000005",
	    &fd, &off, &size), 0);
	assert_true(size == 0);
	close(fd);
}

/* commit_keyed - commit a small message with relay key k (NULL: none);
 * its id into id */
static void
commit_keyed(struct fx *fx, const unsigned char *k, const char *headers,
    char id[QUEUE_ID_LEN + 1])
{
	struct queue_record rec;
	struct spool_msg *m;
	char err[128];

	m = spool_msg_new(fx->relay.spool, err, sizeof(err));
	assert_non_null(m);
	memcpy(id, spool_msg_id(m), QUEUE_ID_LEN + 1);
	make_rec(&rec, "h [192.0.2.1]");
	rec.headers = (char *)headers;
	if (k != NULL) {
		rec.has_relay_key = 1;
		memcpy(rec.relay_key, k, 32);
	}
	assert_int_equal(spool_msg_envelope(m, &rec), 0);
	assert_int_equal(spool_msg_write(m, body1, sizeof(body1) - 1), 0);
	assert_int_equal(spool_msg_commit(&m, &rec, commit_cb, fx), 0);
}

static void
test_dedupe(void **state)
{
	struct fx *fx = *state;
	unsigned char k1[32], k2[32];
	char id1[QUEUE_ID_LEN + 1], id2[QUEUE_ID_LEN + 1];
	char id3[QUEUE_ID_LEN + 1], id4[QUEUE_ID_LEN + 1];
	char first[QUEUE_ID_LEN + 1], err[256];
	struct queue_record got;
	static const char ar[] = "Authentication-Results: relay.test; "
	    "spf=pass smtp.mailfrom=example.org\r\n";

	memset(k1, 0x11, sizeof(k1));
	memset(k2, 0x22, sizeof(k2));
	/* Two copies back to back (most likely one round), one other. */
	commit_keyed(fx, k1, ar, id1);
	commit_keyed(fx, k1, NULL, id2);
	commit_keyed(fx, k2, NULL, id3);
	wait_callbacks(fx, 3);
	assert_int_equal(fx->nok, 2);
	assert_int_equal(fx->ndup, 1);
	assert_int_equal(fx->nfail, 0);
	assert_string_equal(fx->dup_id, id2);
	assert_string_equal(fx->dup_of, id1);
	assert_false(file_exists(fx, "tmp", id2));
	assert_false(file_exists(fx, "queue", id2));
	assert_int_equal(get_rec(fx, id2, NULL), 0);
	assert_true(file_exists(fx, "queue", id1));
	assert_true(file_exists(fx, "queue", id3));
	/* The record keeps the headers to prepend; the key is not in it. */
	assert_int_equal(get_rec(fx, id1, &got), 1);
	assert_non_null(got.headers);
	assert_string_equal(got.headers, ar);
	assert_int_equal(got.has_relay_key, 0);
	queue_record_clear(&got);

	assert_int_equal(spool_dedupe_lookup(fx->relay.spool, k1, first, err,
	    sizeof(err)), 1);
	assert_string_equal(first, id1);
	assert_int_equal(spool_dedupe_lookup(fx->relay.spool, k2, first, err,
	    sizeof(err)), 1);
	assert_string_equal(first, id3);
	memset(k2, 0x33, sizeof(k2));
	assert_int_equal(spool_dedupe_lookup(fx->relay.spool, k2, first, err,
	    sizeof(err)), 0);

	/* A later copy, in a round of its own. */
	commit_keyed(fx, k1, NULL, id4);
	wait_callbacks(fx, 4);
	assert_int_equal(fx->ndup, 2);
	assert_string_equal(fx->dup_id, id4);
	assert_string_equal(fx->dup_of, id1);
	assert_false(file_exists(fx, "queue", id4));

	/* No key: never a duplicate. */
	commit_keyed(fx, NULL, NULL, id4);
	commit_keyed(fx, NULL, NULL, id2);
	wait_callbacks(fx, 6);
	assert_int_equal(fx->nok, 4);
	assert_int_equal(fx->ndup, 2);
}

/* [dedupe] ttl: the key is gone after it, the same message is queued. */
static void
test_dedupe_expiry(void **state)
{
	struct fx *fx = *state;
	unsigned char k[32];
	char id1[QUEUE_ID_LEN + 1], id2[QUEUE_ID_LEN + 1];
	char first[QUEUE_ID_LEN + 1], err[256];

	fx->cfg.dedupe.ttl = 1;
	memset(k, 0x44, sizeof(k));
	commit_keyed(fx, k, NULL, id1);
	wait_callbacks(fx, 1);
	commit_keyed(fx, k, NULL, id2);
	wait_callbacks(fx, 2);
	assert_int_equal(fx->nok, 1);
	assert_int_equal(fx->ndup, 1);
	sleep(2);
	assert_int_equal(spool_dedupe_lookup(fx->relay.spool, k, first, err,
	    sizeof(err)), 0);
	commit_keyed(fx, k, NULL, id2);
	wait_callbacks(fx, 3);
	assert_int_equal(fx->nok, 2);
	assert_int_equal(fx->ndup, 1);
	assert_true(file_exists(fx, "queue", id2));
	assert_int_equal(spool_dedupe_lookup(fx->relay.spool, k, first, err,
	    sizeof(err)), 1);
	assert_string_equal(first, id2);
}

/*
 * The header's size line: written into the header of a message whose
 * envelope went first, checked on read, so a file cut short by a crash
 * between its rename and its fsync is refused, not indexed.
 */
static void
test_truncated(void **state)
{
	struct fx *fx = *state;
	struct queue_record rec;
	struct spool_msg *m;
	char err[128], id[QUEUE_ID_LEN + 1], *text = NULL;
	uint64_t off, size;
	struct stat st;
	FILE *fp;
	size_t len = 0;
	int fd;

	m = spool_msg_new(fx->relay.spool, err, sizeof(err));
	assert_non_null(m);
	memcpy(id, spool_msg_id(m), sizeof(id));
	make_rec(&rec, "c");
	assert_int_equal(spool_msg_envelope(m, &rec), 0);
	assert_int_equal(spool_msg_write(m, body1, sizeof(body1) - 1), 0);
	assert_int_equal(spool_msg_commit(&m, &rec, commit_cb, fx), 0);
	wait_callbacks(fx, 1);
	assert_int_equal(fx->nok, 1);
	snprintf(fx->path, sizeof(fx->path), "%s/spool/queue/%s", fx->tmp, id);
	fp = fopen(fx->path, "r");
	assert_non_null(fp);
	assert_true(getdelim(&text, &len, '\0', fp) > 0);
	fclose(fp);
	snprintf(err, sizeof(err), "\nsize %020zu\n", sizeof(body1) - 1);
	assert_non_null(strstr(text, err));
	free(text);
	assert_int_equal(spool_msg_open(fx->relay.spool, id, &fd, &off, &size),
	    0);
	close(fd);

	/* The crash: file cut short, its record never committed. */
	fx_close(fx);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(truncate(fx->path, st.st_size - 5), 0);
	assert_int_equal(fx_open(fx), 0);
	assert_int_equal(spool_msg_open(fx->relay.spool, id, &fd, &off, &size),
	    -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_rebuild_index(fx->relay.spool, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(get_rec(fx, id, NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_envelope, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_commit_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuild_keys, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_refusals, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dedupe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedupe_expiry, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_refill, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pool_recovery, setup,
		    teardown),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
