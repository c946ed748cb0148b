/*
 * test_drain.c - relay/drain: the hourly ring (the window, late
 * messages, a slot reused after a lap, a stale lap reading as 0, the
 * epoch edge), the top tables (counting, ranking, the heavy hitter that
 * survives a churning tail, eviction of the smallest and stalest entry
 * when full), name sanitising (case, blanks, control and 8-bit bytes,
 * length, empty names), drain_json's shape, the save/load round trip
 * through a real LMDB store in a mkdtemp() directory (also a full
 * record), records hand-built from the documented format, and corrupt
 * records that are ignored with a warning.
 */

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hex.h"

#include "json.h"
#include "log.h"
#include "relay.h"
#include "drain.h"
#include "store.h"
#include "tmpdir.h"

/* A fixed "now": the start of an hour plus a little. */
#define NOW	((time_t)1700000000 - (time_t)1700000000 % 3600 + 1234)
#define HOUR	((time_t)3600)

/* ---- helpers ------------------------------------------------------------------ */

/* A flattened drain_json document: path -> value text. */
#define DOC_MAX	1024

struct doc {
	char	*text;			/* the JSON itself */
	size_t	 n;
	char	*path[DOC_MAX];
	char	*val[DOC_MAX];
	enum json_type type[DOC_MAX];
};

static int
doc_cb(const char *path, enum json_type type, const char *value, void *arg)
{
	struct doc *d = arg;

	if (d->n >= DOC_MAX)
		return (1);
	d->path[d->n] = strdup(path);
	d->val[d->n] = strdup(value);
	d->type[d->n] = type;
	if (d->path[d->n] == NULL || d->val[d->n] == NULL)
		return (1);
	d->n++;
	return (0);
}

/* doc_of - render d at now and flatten it */
static void
doc_of(struct doc *out, const struct drain *d, time_t now)
{
	struct json j;
	const char *s;
	size_t len;
	char err[128];

	memset(out, 0, sizeof(*out));
	json_init(&j, 0);
	drain_json(d, now, &j);
	s = json_finish(&j, &len);
	assert_non_null(s);
	assert_int_equal(strlen(s), len);
	out->text = strdup(s);
	assert_non_null(out->text);
	json_clear(&j);
	assert_int_equal(json_walk(out->text, strlen(out->text), doc_cb, out,
	    err, sizeof(err)), 0);
}

static void
doc_free(struct doc *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		free(d->path[i]);
		free(d->val[i]);
	}
	free(d->text);
	memset(d, 0, sizeof(*d));
}

/* doc_get - the value at path, NULL when absent */
static const char *
doc_get(const struct doc *d, const char *fmt, ...)
{
	char path[256];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	for (i = 0; i < d->n; i++)
		if (strcmp(d->path[i], path) == 0)
			return (d->val[i]);
	return (NULL);
}

/* doc_count - how many paths start with prefix and a '.' */
static size_t
doc_count(const struct doc *d, const char *prefix, const char *suffix)
{
	size_t i, k, n = 0, plen = strlen(prefix);
	char want[256];

	/* entries prefix.K.suffix for K = 0, 1, ... */
	for (k = 0; k < DOC_MAX; k++) {
		int found = 0;

		snprintf(want, sizeof(want), "%s.%zu%s%s", prefix, k,
		    suffix[0] ? "." : "", suffix);
		for (i = 0; i < d->n && !found; i++)
			if (strncmp(d->path[i], prefix, plen) == 0 &&
			    strcmp(d->path[i], want) == 0)
				found = 1;
		if (!found)
			break;
		n++;
	}
	return (n);
}

static void
assert_path(const struct doc *d, const char *path, const char *want)
{
	const char *v = doc_get(d, "%s", path);

	if (v == NULL)
		fail_msg("%s: missing in %s", path, d->text);
	if (strcmp(v, want) != 0)
		fail_msg("%s: \"%s\", want \"%s\" in %s", path, v, want,
		    d->text);
}

/* assert_entry - top_TABLE.i is name/count/last */
static void
assert_entry(const struct doc *d, const char *table, size_t i,
    const char *name, uint64_t count, int64_t last)
{
	char path[128], num[32];

	snprintf(path, sizeof(path), "%s.%zu.name", table, i);
	assert_path(d, path, name);
	snprintf(path, sizeof(path), "%s.%zu.count", table, i);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)count);
	assert_path(d, path, num);
	snprintf(path, sizeof(path), "%s.%zu.last_seen", table, i);
	snprintf(num, sizeof(num), "%lld", (long long)last);
	assert_path(d, path, num);
}

static struct drain *
new_drain(void)
{
	struct drain *d = NULL;
	char err[128];

	assert_int_equal(drain_new(&d, NULL, err, sizeof(err)), 0);
	assert_non_null(d);
	return (d);
}

/* Capture the log (drain_new warns about a bad record). */
static char	*logbuf;
static size_t	 logbuf_len;
static FILE	*logfp;

/* A temporary LMDB store. */
struct tmpstore {
	char		 dir[64];
	char		 db[128];
	struct store	*store;
};

/* The store of the running test, removed by its teardown even when an
 * assertion failed half-way. */
static struct tmpstore *cur_ts;

static void
ts_open(struct tmpstore *ts)
{
	char err[256];

	cur_ts = ts;
	if (ts->dir[0] == '\0') {
		snprintf(ts->dir, sizeof(ts->dir), "/tmp/test_drain.XXXXXX");
		assert_non_null(mkdtemp(ts->dir));
		snprintf(ts->db, sizeof(ts->db), "%s/db", ts->dir);
	}
	if (store_open(&ts->store, ts->db, 0, err, sizeof(err)) == -1)
		fail_msg("store_open: %s", err);
}

static void
ts_close(struct tmpstore *ts)
{
	store_close(&ts->store);
}

static void
ts_remove(struct tmpstore *ts)
{
	store_close(&ts->store);
	if (ts->dir[0] != '\0')
		assert_int_equal(tmpdir_remove(ts->dir), 0);
	ts->dir[0] = '\0';
	cur_ts = NULL;
}

static int
ts_teardown(void **state)
{
	(void)state;
	if (logfp != NULL) {
		log_set_stream(stderr);
		log_open("test_drain", LOG_DEST_STDERR, 0, LOG_LVL_WARNING);
		fclose(logfp);
		logfp = NULL;
		free(logbuf);
		logbuf = NULL;
	}
	if (cur_ts != NULL) {
		store_close(&cur_ts->store);
		if (cur_ts->dir[0] != '\0')
			(void)tmpdir_remove(cur_ts->dir);
		cur_ts = NULL;
	}
	return (0);
}

/* Raw access to STORE_DB_META "drain". */
struct raw {
	unsigned char	*buf;
	size_t		 len;
	int		 found;
};

static int
txn_raw_get(struct store_txn *tx, void *arg)
{
	struct raw *r = arg;
	const void *v;
	size_t vlen;
	int rc;

	free(r->buf);
	r->buf = NULL;
	r->len = 0;
	r->found = 0;
	rc = store_get(tx, STORE_DB_META, "drain", 5, &v, &vlen);
	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0)
		return (-1);
	if ((r->buf = malloc(vlen ? vlen : 1)) == NULL)
		return (-1);
	memcpy(r->buf, v, vlen);
	r->len = vlen;
	r->found = 1;
	return (0);
}

static int
txn_raw_put(struct store_txn *tx, void *arg)
{
	struct raw *r = arg;

	return (store_put(tx, STORE_DB_META, "drain", 5, r->buf, r->len, 0));
}

static void
raw_get(struct tmpstore *ts, struct raw *r)
{
	char err[256];

	memset(r, 0, sizeof(*r));
	if (store_txn_run(ts->store, 1, txn_raw_get, r, err, sizeof(err)) != 0)
		fail_msg("read: %s", err);
}

static void
raw_put(struct tmpstore *ts, const void *buf, size_t len)
{
	struct raw r = { (unsigned char *)(uintptr_t)buf, len, 1 };
	char err[256];

	if (store_txn_run(ts->store, 0, txn_raw_put, &r, err, sizeof(err)) != 0)
		fail_msg("write: %s", err);
}

/* A record built by hand from the format documented in drain.c. */
struct rec {
	unsigned char	b[16384];
	size_t		len;
};

static void
rec_bytes(struct rec *r, const void *p, size_t n)
{
	assert_true(r->len + n <= sizeof(r->b));
	memcpy(r->b + r->len, p, n);
	r->len += n;
}

static void
rec_u8(struct rec *r, unsigned v)
{
	unsigned char c = (unsigned char)v;

	rec_bytes(r, &c, 1);
}

static void
rec_u16(struct rec *r, unsigned v)
{
	rec_u8(r, v >> 8 & 0xff);
	rec_u8(r, v & 0xff);
}

static void
rec_u64(struct rec *r, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--)
		rec_u8(r, (unsigned)(v >> (i * 8) & 0xff));
}

static void
rec_name(struct rec *r, const char *name, uint64_t count, int64_t last)
{
	rec_u8(r, (unsigned)strlen(name));
	rec_bytes(r, name, strlen(name));
	rec_u64(r, count);
	rec_u64(r, (uint64_t)last);
}


static void
log_capture(void)
{
	logfp = open_memstream(&logbuf, &logbuf_len);
	assert_non_null(logfp);
	log_open("test_drain", LOG_DEST_STREAM, 0, LOG_LVL_DEBUG);
	log_set_stream(logfp);
}

/* log_release - stop capturing; the text logged so far (caller frees) */
static char *
log_release(void)
{
	char *s;

	log_set_stream(stderr);
	log_open("test_drain", LOG_DEST_STDERR, 0, LOG_LVL_WARNING);
	fclose(logfp);
	logfp = NULL;
	s = logbuf;
	logbuf = NULL;
	return (s);
}

/* ---- the hourly ring ------------------------------------------------------------ */

static void
test_ring_window(void **state)
{
	struct drain *d = new_drain();
	uint64_t h[DRAIN_HOURS];
	size_t i;

	(void)state;
	assert_int_equal(drain_last(d), 0);
	drain_hourly(d, NOW, h);
	for (i = 0; i < DRAIN_HOURS; i++)
		assert_int_equal(h[i], 0);

	drain_note(d, NOW, "a.test", "192.0.2.1");		/* this hour */
	drain_note(d, NOW - 1234, "a.test", "192.0.2.1");	/* its start */
	drain_note(d, NOW - 1235, "a.test", "192.0.2.1");	/* hour before */
	drain_note(d, NOW - 71 * HOUR, "a.test", "192.0.2.1");	/* oldest */
	drain_note(d, NOW - 10 * HOUR, "a.test", "192.0.2.1");
	drain_note(d, NOW - 10 * HOUR + 5, "a.test", "192.0.2.1");
	drain_hourly(d, NOW, h);
	for (i = 0; i < DRAIN_HOURS; i++) {
		uint64_t want = 0;

		if (i == DRAIN_HOURS - 1)
			want = 2;
		else if (i == DRAIN_HOURS - 2 || i == 0)
			want = 1;
		else if (i == DRAIN_HOURS - 11)
			want = 2;
		if (h[i] != want)
			fail_msg("hour %zu: %llu, want %llu", i,
			    (unsigned long long)h[i], (unsigned long long)want);
	}
	/* the last inbound time is the latest, not the last noted */
	assert_int_equal(drain_last(d), NOW);

	/* an hour later the whole window moves by one */
	drain_hourly(d, NOW + HOUR, h);
	assert_int_equal(h[DRAIN_HOURS - 1], 0);
	assert_int_equal(h[DRAIN_HOURS - 2], 2);
	assert_int_equal(h[DRAIN_HOURS - 3], 1);
	assert_int_equal(h[DRAIN_HOURS - 12], 2);
	assert_int_equal(h[0], 0);		/* the oldest fell out */
	drain_free(&d);
	assert_null(d);
	drain_free(&d);
}

static void
test_ring_late(void **state)
{
	struct drain *d = new_drain();
	uint64_t h[DRAIN_HOURS];
	struct doc doc;
	size_t i;

	(void)state;
	drain_note(d, NOW, "a.test", "192.0.2.1");
	/* 72 hours back is the current hour's slot, one lap ago: not
	 * counted, and it must not disturb the current hour */
	drain_note(d, NOW - 72 * HOUR, "late.test", "192.0.2.9");
	drain_note(d, NOW - 200 * HOUR, "late.test", "192.0.2.9");
	drain_hourly(d, NOW, h);
	assert_int_equal(h[DRAIN_HOURS - 1], 1);
	for (i = 0; i < DRAIN_HOURS - 1; i++)
		assert_int_equal(h[i], 0);
	assert_int_equal(drain_last(d), NOW);
	/* ...but its sender is still counted in the tables */
	doc_of(&doc, d, NOW);
	assert_path(&doc, "total", "1");
	assert_entry(&doc, "top_domains", 0, "late.test", 2, NOW - 72 * HOUR);
	assert_entry(&doc, "top_domains", 1, "a.test", 1, NOW);
	doc_free(&doc);
	drain_free(&d);
}

static void
test_ring_wrap(void **state)
{
	struct drain *d = new_drain();
	uint64_t h[DRAIN_HOURS];
	size_t i;
	time_t t;

	(void)state;
	/* three arrivals an hour for 100 hours: the ring laps once */
	for (t = NOW - 99 * HOUR; t <= NOW; t += HOUR) {
		drain_note(d, t, "a.test", "192.0.2.1");
		drain_note(d, t + 1, "a.test", "192.0.2.1");
		drain_note(d, t + 2, "a.test", "192.0.2.1");
	}
	drain_hourly(d, NOW, h);
	for (i = 0; i < DRAIN_HOURS; i++)
		if (h[i] != 3)
			fail_msg("hour %zu after a lap: %llu, want 3", i,
			    (unsigned long long)h[i]);

	/* 30 quiet hours, then one message: 42 old hours remain, the
	 * reused slot starts again from 1, the quiet ones read 0 */
	drain_note(d, NOW + 30 * HOUR + 7, "b.test", "192.0.2.2");
	drain_hourly(d, NOW + 30 * HOUR + 7, h);
	for (i = 0; i < DRAIN_HOURS; i++) {
		uint64_t want = i < DRAIN_HOURS - 30 ? 3 : 0;

		if (i == DRAIN_HOURS - 1)
			want = 1;
		if (h[i] != want)
			fail_msg("hour %zu: %llu, want %llu", i,
			    (unsigned long long)h[i], (unsigned long long)want);
	}

	/* much later (more than a lap): every old bucket is stale */
	drain_hourly(d, NOW + 500 * HOUR, h);
	for (i = 0; i < DRAIN_HOURS; i++)
		assert_int_equal(h[i], 0);
	/* a slot last used many laps ago is reset, not added to */
	drain_note(d, NOW + 144 * HOUR, "a.test", "192.0.2.1");
	drain_hourly(d, NOW + 144 * HOUR, h);
	assert_int_equal(h[DRAIN_HOURS - 1], 1);
	for (i = 0; i < DRAIN_HOURS - 1; i++)
		assert_int_equal(h[i], 0);
	drain_free(&d);
}

static void
test_ring_epoch(void **state)
{
	struct drain *d = new_drain();
	uint64_t h[DRAIN_HOURS];
	struct doc doc;
	size_t i;

	(void)state;
	/* hours before 1970 do not exist: nothing wraps around */
	drain_note(d, 10, "a.test", "192.0.2.1");
	drain_note(d, 2 * HOUR, "a.test", "192.0.2.1");
	drain_hourly(d, 2 * HOUR + 5, h);
	for (i = 0; i < DRAIN_HOURS; i++) {
		uint64_t want = i == DRAIN_HOURS - 1 || i == DRAIN_HOURS - 3;

		assert_int_equal(h[i], want);
	}
	doc_of(&doc, d, 2 * HOUR + 5);
	assert_path(&doc, "total", "2");
	assert_path(&doc, "seconds_since_last", "5");
	doc_free(&doc);
	drain_free(&d);

	/* drain_note on NULL is harmless */
	drain_note(NULL, NOW, "a.test", "192.0.2.1");
}

/* ---- the top tables ------------------------------------------------------------- */

static void
test_top_rank(void **state)
{
	struct drain *d = new_drain();
	struct doc doc;
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		drain_note(d, NOW - 100 + i, "five.test", "192.0.2.5");
	for (i = 0; i < 3; i++)
		drain_note(d, NOW - 200 + i, "three.test", "192.0.2.3");
	/* two names tie on count 2: the more recent ranks first */
	drain_note(d, NOW - 50, "old2.test", "192.0.2.20");
	drain_note(d, NOW - 49, "old2.test", "192.0.2.20");
	drain_note(d, NOW - 30, "new2.test", "192.0.2.21");
	drain_note(d, NOW - 29, "new2.test", "192.0.2.21");
	/* the same name in another case is the same entry */
	drain_note(d, NOW - 10, "ONE.Test", "192.0.2.1");
	drain_note(d, NOW - 20, "one.test", "192.0.2.1");

	doc_of(&doc, d, NOW);
	assert_int_equal(doc_count(&doc, "top_domains", "name"), 5);
	assert_entry(&doc, "top_domains", 0, "five.test", 5, NOW - 96);
	assert_entry(&doc, "top_domains", 1, "three.test", 3, NOW - 198);
	assert_entry(&doc, "top_domains", 2, "one.test", 2, NOW - 10);
	assert_entry(&doc, "top_domains", 3, "new2.test", 2, NOW - 29);
	assert_entry(&doc, "top_domains", 4, "old2.test", 2, NOW - 49);
	assert_int_equal(doc_count(&doc, "top_clients", "name"), 5);
	assert_entry(&doc, "top_clients", 0, "192.0.2.5", 5, NOW - 96);
	assert_entry(&doc, "top_clients", 2, "192.0.2.1", 2, NOW - 10);
	assert_path(&doc, "total", "14");
	doc_free(&doc);

	/* JSON shows at most DRAIN_TOP_SHOWN per table */
	for (i = 0; i < 30; i++) {
		char name[32], addr[32];

		snprintf(name, sizeof(name), "d%02d.test", i);
		snprintf(addr, sizeof(addr), "198.51.100.%d", i);
		drain_note(d, NOW, name, addr);
	}
	doc_of(&doc, d, NOW);
	assert_int_equal(doc_count(&doc, "top_domains", "name"),
	    DRAIN_TOP_SHOWN);
	assert_int_equal(doc_count(&doc, "top_clients", "name"),
	    DRAIN_TOP_SHOWN);
	assert_entry(&doc, "top_domains", 0, "five.test", 5, NOW - 96);
	doc_free(&doc);
	drain_free(&d);
}

static void
test_top_heavy_survives(void **state)
{
	struct drain *d = new_drain();
	struct doc doc;
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		drain_note(d, NOW - 10000 + i, "heavy.test", "192.0.2.99");
	/* a long tail of one-off senders, far more than the table holds */
	for (i = 0; i < 4 * DRAIN_TOP_MAX; i++) {
		char name[32], addr[32];

		snprintf(name, sizeof(name), "tail%04d.test", i);
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16 & 255,
		    i >> 8 & 255, i & 255);
		drain_note(d, NOW - 5000 + i, name, addr);
	}
	doc_of(&doc, d, NOW);
	assert_entry(&doc, "top_domains", 0, "heavy.test", 5, NOW - 9996);
	assert_entry(&doc, "top_clients", 0, "192.0.2.99", 5, NOW - 9996);
	/* then the most recent one-offs */
	assert_entry(&doc, "top_domains", 1, "tail1023.test", 1,
	    NOW - 5000 + 1023);
	assert_entry(&doc, "top_domains", 2, "tail1022.test", 1,
	    NOW - 5000 + 1022);
	doc_free(&doc);
	drain_free(&d);
}

static void
test_top_evict(void **state)
{
	struct drain *d = new_drain();
	struct doc doc;
	char name[32];
	int i;

	(void)state;
	/* fill the table: n000 .. n255, one each, n000 the stalest */
	for (i = 0; i < DRAIN_TOP_MAX; i++) {
		snprintf(name, sizeof(name), "n%03d", i);
		drain_note(d, NOW - 1000 + i, name, NULL);
	}
	/* a new name evicts n000 (count 1, stalest) */
	drain_note(d, NOW - 500, "fresh", NULL);
	/* n000 comes back: it was evicted, so it starts again from 1
	 * (evicting n001), ending at 3, not 4 */
	drain_note(d, NOW - 400, "n000", NULL);
	drain_note(d, NOW - 399, "n000", NULL);
	drain_note(d, NOW - 398, "n000", NULL);
	/* n001 was evicted by n000: back from 1 as well (evicting n002) */
	drain_note(d, NOW - 300, "n001", NULL);
	drain_note(d, NOW - 299, "n001", NULL);
	/* n100 was never evicted: it goes from 1 to 2 */
	drain_note(d, NOW - 200, "n100", NULL);
	/* "n002" is gone and comes back with 1, evicting n003; being the
	 * most recent count-1 entry it ranks before "fresh" */
	drain_note(d, NOW - 100, "n002", NULL);

	doc_of(&doc, d, NOW);
	assert_entry(&doc, "top_domains", 0, "n000", 3, NOW - 398);
	assert_entry(&doc, "top_domains", 1, "n100", 2, NOW - 200);
	assert_entry(&doc, "top_domains", 2, "n001", 2, NOW - 299);
	assert_entry(&doc, "top_domains", 3, "n002", 1, NOW - 100);
	assert_entry(&doc, "top_domains", 4, "fresh", 1, NOW - 500);
	assert_entry(&doc, "top_domains", 5, "n255", 1, NOW - 1000 + 255);
	/* no client address was given: that table stays empty */
	assert_int_equal(doc_count(&doc, "top_clients", "name"), 0);
	assert_non_null(strstr(doc.text, "\"top_clients\":[]"));
	assert_path(&doc, "total", "264");
	doc_free(&doc);
	drain_free(&d);
}

/* ---- names ---------------------------------------------------------------------- */

static void
test_names(void **state)
{
	static const struct {
		const char	*in;
		const char	*want;	/* NULL: not counted */
	} cases[] = {
		{ "Example.COM", "example.com" },
		{ "a b\tc", "a?b?c" },
		{ "ctl\001\033[31m", "ctl??[31m" },
		{ "8bit\xc3\xa9\xff", "8bit???" },
		{ "quote\"back\\slash", "quote\"back\\slash" },
		{ "[192.0.2.1]", "[192.0.2.1]" },
		{ "", NULL },
		{ NULL, NULL },
	};
	char longname[600], cut[DRAIN_NAME_MAX + 1];
	struct doc doc;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct drain *d = new_drain();

		drain_note(d, NOW, cases[i].in, cases[i].in);
		doc_of(&doc, d, NOW);
		assert_path(&doc, "total", "1");	/* always counted */
		if (cases[i].want == NULL) {
			assert_int_equal(doc_count(&doc, "top_domains",
			    "name"), 0);
			assert_int_equal(doc_count(&doc, "top_clients",
			    "name"), 0);
		} else {
			assert_entry(&doc, "top_domains", 0, cases[i].want, 1,
			    NOW);
			assert_entry(&doc, "top_clients", 0, cases[i].want, 1,
			    NOW);
		}
		doc_free(&doc);
		drain_free(&d);
	}

	/* too long: cut to DRAIN_NAME_MAX; a longer name sharing that
	 * prefix is the same entry */
	memset(longname, 'X', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	memset(cut, 'x', DRAIN_NAME_MAX);
	cut[DRAIN_NAME_MAX] = '\0';
	{
		struct drain *d = new_drain();

		drain_note(d, NOW, longname, NULL);
		longname[400] = '\0';
		drain_note(d, NOW, longname, NULL);
		doc_of(&doc, d, NOW);
		assert_entry(&doc, "top_domains", 0, cut, 2, NOW);
		assert_int_equal(doc_count(&doc, "top_domains", "name"), 1);
		doc_free(&doc);
		drain_free(&d);
	}
}

/* ---- drain_json ----------------------------------------------------------------- */

static void
test_json_empty(void **state)
{
	struct drain *d = new_drain();
	struct doc doc;
	size_t i;
	char want[1024], *p;

	(void)state;
	doc_of(&doc, d, NOW);
	/* the exact document: keys in the documented order */
	p = want;
	p += sprintf(p, "{\"last_inbound\":null,\"seconds_since_last\":null,"
	    "\"hours\":%d,\"hourly\":[", DRAIN_HOURS);
	for (i = 0; i < DRAIN_HOURS; i++)
		p += sprintf(p, "%s0", i ? "," : "");
	sprintf(p, "],\"total\":0,\"top_domains\":[],\"top_clients\":[]}");
	assert_string_equal(doc.text, want);
	assert_int_equal(doc.type[0], JSON_T_NULL);
	doc_free(&doc);
	drain_free(&d);
}

static void
test_json_shape(void **state)
{
	struct drain *d = new_drain();
	struct doc doc;
	char path[32];
	size_t i;

	(void)state;
	drain_note(d, NOW - 2 * HOUR, "a.test", "192.0.2.1");
	drain_note(d, NOW - 42, "b.test", "192.0.2.2");
	drain_note(d, NOW - 42, "b.test", "192.0.2.2");
	doc_of(&doc, d, NOW);
	snprintf(path, sizeof(path), "%lld", (long long)(NOW - 42));
	assert_path(&doc, "last_inbound", path);
	assert_path(&doc, "seconds_since_last", "42");
	assert_path(&doc, "hours", "72");
	assert_int_equal(doc_count(&doc, "hourly", ""), DRAIN_HOURS);
	for (i = 0; i < DRAIN_HOURS; i++) {
		const char *want = i == DRAIN_HOURS - 1 ? "2" :
		    i == DRAIN_HOURS - 3 ? "1" : "0";

		snprintf(path, sizeof(path), "hourly.%zu", i);
		assert_path(&doc, path, want);
	}
	assert_path(&doc, "total", "3");
	assert_entry(&doc, "top_domains", 0, "b.test", 2, NOW - 42);
	assert_entry(&doc, "top_domains", 1, "a.test", 1, NOW - 2 * HOUR);
	assert_entry(&doc, "top_clients", 0, "192.0.2.2", 2, NOW - 42);
	assert_entry(&doc, "top_clients", 1, "192.0.2.1", 1, NOW - 2 * HOUR);
	for (i = 0; i < doc.n; i++)
		if (strncmp(doc.path[i], "top_", 4) == 0 &&
		    strstr(doc.path[i], ".name") != NULL)
			assert_int_equal(doc.type[i], JSON_T_STRING);
		else
			assert_int_equal(doc.type[i], JSON_T_NUMBER);
	doc_free(&doc);

	/* a clock that went backwards: never a negative age */
	doc_of(&doc, d, NOW - 3600);
	assert_path(&doc, "seconds_since_last", "0");
	doc_free(&doc);

	/* total follows the window, the tables do not */
	doc_of(&doc, d, NOW + 100 * HOUR);
	assert_path(&doc, "total", "0");
	assert_path(&doc, "seconds_since_last", "360042");
	assert_entry(&doc, "top_domains", 0, "b.test", 2, NOW - 42);
	doc_free(&doc);
	drain_free(&d);
}

/* ---- save and load -------------------------------------------------------------- */

static void
test_save_load(void **state)
{
	struct tmpstore ts;
	struct drain *d = NULL, *e = NULL;
	struct doc a, b;
	struct raw r;
	char err[256];
	time_t t;

	(void)state;
	memset(&ts, 0, sizeof(ts));
	ts_open(&ts);
	/* an empty store: a fresh view, nothing written by loading */
	assert_int_equal(drain_new(&d, ts.store, err, sizeof(err)), 0);
	raw_get(&ts, &r);
	assert_int_equal(r.found, 0);
	for (t = NOW - 80 * HOUR; t <= NOW; t += 7 * 60)
		drain_note(d, t, (t / 60) % 3 ? "a.test" : "B.test",
		    (t / 60) % 5 ? "192.0.2.1" : "2001:db8::1");
	drain_note(d, NOW, "x\"y", "z\\w");
	assert_int_equal(drain_save(d, err, sizeof(err)), 0);
	doc_of(&a, d, NOW);
	raw_get(&ts, &r);
	assert_int_equal(r.found, 1);
	assert_int_equal(r.buf[0], 'D');
	assert_int_equal(r.buf[1], 1);
	free(r.buf);
	drain_free(&d);

	/* a restart: close and reopen the store, load */
	ts_close(&ts);
	ts_open(&ts);
	assert_int_equal(drain_new(&e, ts.store, err, sizeof(err)), 0);
	doc_of(&b, e, NOW);
	assert_string_equal(a.text, b.text);
	assert_int_equal(drain_last(e), NOW);
	doc_free(&b);
	/* and it goes on counting where it left off */
	drain_note(e, NOW, "a.test", "192.0.2.1");
	doc_of(&b, e, NOW);
	assert_string_not_equal(a.text, b.text);
	assert_int_equal(strtoull(doc_get(&b, "total"), NULL, 10),
	    strtoull(doc_get(&a, "total"), NULL, 10) + 1);
	doc_free(&b);
	/* saving twice overwrites */
	assert_int_equal(drain_save(e, err, sizeof(err)), 0);
	assert_int_equal(drain_save(e, err, sizeof(err)), 0);
	drain_free(&e);
	assert_int_equal(drain_new(&e, ts.store, err, sizeof(err)), 0);
	doc_of(&b, e, NOW);
	assert_int_equal(strtoull(doc_get(&b, "total"), NULL, 10),
	    strtoull(doc_get(&a, "total"), NULL, 10) + 1);
	doc_free(&b);
	doc_free(&a);
	drain_free(&e);

	/* no store: nothing to save, no error */
	d = new_drain();
	drain_note(d, NOW, "a.test", "192.0.2.1");
	assert_int_equal(drain_save(d, err, sizeof(err)), 0);
	assert_int_equal(drain_save(NULL, err, sizeof(err)), 0);
	drain_free(&d);
	ts_remove(&ts);
}

/* the largest record: full tables, longest names, every hour */
static void
test_save_load_full(void **state)
{
	struct tmpstore ts;
	struct drain *d = NULL, *e = NULL;
	struct doc a, b;
	uint64_t h1[DRAIN_HOURS], h2[DRAIN_HOURS];
	char err[256], name[DRAIN_NAME_MAX + 1];
	struct raw r;
	int i;

	(void)state;
	memset(&ts, 0, sizeof(ts));
	ts_open(&ts);
	assert_int_equal(drain_new(&d, ts.store, err, sizeof(err)), 0);
	for (i = 0; i < DRAIN_TOP_MAX + 10; i++) {
		/* "0042" then one letter up to DRAIN_NAME_MAX bytes */
		snprintf(name, sizeof(name), "%04d", i);
		memset(name + 4, 'a' + i % 26, DRAIN_NAME_MAX - 4);
		name[DRAIN_NAME_MAX] = '\0';
		drain_note(d, NOW - (time_t)(i % DRAIN_HOURS) * HOUR - i,
		    name, name);
	}
	assert_int_equal(drain_save(d, err, sizeof(err)), 0);
	raw_get(&ts, &r);
	assert_int_equal(r.len, 2 + 8 + 2 + DRAIN_HOURS * 16 +
	    2 * (2 + DRAIN_TOP_MAX * (1 + DRAIN_NAME_MAX + 16)));
	free(r.buf);
	drain_hourly(d, NOW, h1);
	doc_of(&a, d, NOW);
	assert_int_equal(drain_new(&e, ts.store, err, sizeof(err)), 0);
	drain_hourly(e, NOW, h2);
	assert_memory_equal(h1, h2, sizeof(h1));
	doc_of(&b, e, NOW);
	assert_string_equal(a.text, b.text);
	doc_free(&a);
	doc_free(&b);
	drain_free(&d);
	drain_free(&e);
	ts_remove(&ts);
}

/* a record written by hand from the documented format loads */
static void
test_load_handmade(void **state)
{
	struct tmpstore ts;
	struct drain *d = NULL;
	uint64_t h[DRAIN_HOURS];
	struct rec r;
	struct doc doc;
	char err[256];
	uint64_t hn = (uint64_t)NOW / 3600;

	(void)state;
	memset(&ts, 0, sizeof(ts));
	memset(&r, 0, sizeof(r));
	ts_open(&ts);
	rec_bytes(&r, "D", 1);
	rec_u8(&r, 1);
	rec_u64(&r, (uint64_t)NOW - 5);
	rec_u16(&r, 2);
	rec_u64(&r, hn);
	rec_u64(&r, 7);
	rec_u64(&r, hn - 5);
	rec_u64(&r, 11);
	rec_u16(&r, 1);
	rec_name(&r, "hand.test", 18, NOW - 5);
	rec_u16(&r, 2);
	rec_name(&r, "192.0.2.7", 10, NOW - 5);
	rec_name(&r, "192.0.2.8", 8, NOW - 6);
	raw_put(&ts, r.b, r.len);
	assert_int_equal(drain_new(&d, ts.store, err, sizeof(err)), 0);
	assert_int_equal(drain_last(d), NOW - 5);
	drain_hourly(d, NOW, h);
	assert_int_equal(h[DRAIN_HOURS - 1], 7);
	assert_int_equal(h[DRAIN_HOURS - 6], 11);
	doc_of(&doc, d, NOW);
	assert_path(&doc, "total", "18");
	assert_path(&doc, "seconds_since_last", "5");
	assert_entry(&doc, "top_domains", 0, "hand.test", 18, NOW - 5);
	assert_entry(&doc, "top_clients", 0, "192.0.2.7", 10, NOW - 5);
	assert_entry(&doc, "top_clients", 1, "192.0.2.8", 8, NOW - 6);
	doc_free(&doc);
	drain_free(&d);
	ts_remove(&ts);
}

/* corrupt records: ignored with a warning, the view starts empty */
enum corrupt {
	C_NONE,			/* the good record the others derive from */
	C_EMPTY, C_MAGIC, C_VERSION, C_SHORT, C_EXTRA, C_ZERO_COUNT,
	C_SPACE_NAME, C_8BIT_NAME, C_DUP_NAME, C_LEN0, C_TOO_MANY_HOURS,
	C_SAME_SLOT, C_ZERO_HOUR_COUNT, C_NEG_LAST, C_TOO_MANY_NAMES,
	C_TRUNC_NAME,
};

static void
build_corrupt(struct rec *r, enum corrupt c)
{
	uint64_t hn = (uint64_t)NOW / 3600;
	int i;

	memset(r, 0, sizeof(*r));
	if (c == C_EMPTY)
		return;
	rec_bytes(r, c == C_MAGIC ? "d" : "D", 1);
	rec_u8(r, c == C_VERSION ? 2 : 1);
	rec_u64(r, c == C_NEG_LAST ? (uint64_t)-5 : (uint64_t)NOW);
	if (c == C_TOO_MANY_HOURS) {
		rec_u16(r, DRAIN_HOURS + 1);
		for (i = 0; i <= DRAIN_HOURS; i++) {
			rec_u64(r, hn - (uint64_t)i);
			rec_u64(r, 1);
		}
	} else if (c == C_SAME_SLOT) {
		rec_u16(r, 2);
		rec_u64(r, hn);
		rec_u64(r, 1);
		rec_u64(r, hn - DRAIN_HOURS);
		rec_u64(r, 1);
	} else {
		rec_u16(r, 1);
		rec_u64(r, hn);
		rec_u64(r, c == C_ZERO_HOUR_COUNT ? 0 : 3);
	}
	if (c == C_TOO_MANY_NAMES) {
		rec_u16(r, DRAIN_TOP_MAX + 1);
		for (i = 0; i <= DRAIN_TOP_MAX; i++) {
			char name[16];

			snprintf(name, sizeof(name), "n%d", i);
			rec_name(r, name, 1, NOW);
		}
	} else if (c == C_TRUNC_NAME) {
		rec_u16(r, 1);
		rec_u8(r, 200);
		rec_bytes(r, "short", 5);
		return;
	} else {
		rec_u16(r, 2);
		rec_name(r, "a.test", c == C_ZERO_COUNT ? 0 : 2, NOW);
		rec_name(r, c == C_SPACE_NAME ? "b test" :
		    c == C_8BIT_NAME ? "b\xe9.test" :
		    c == C_DUP_NAME ? "a.test" :
		    c == C_LEN0 ? "" : "b.test", 1, NOW);
	}
	rec_u16(r, 0);
	if (c == C_SHORT)
		r->len--;
	if (c == C_EXTRA)
		rec_u8(r, 0);
}

static void
test_load_corrupt(void **state)
{
	static const struct {
		enum corrupt	 c;
		const char	*what;
	} cases[] = {
		{ C_EMPTY, "empty value" },
		{ C_MAGIC, "bad magic" },
		{ C_VERSION, "unknown version" },
		{ C_SHORT, "one byte short" },
		{ C_EXTRA, "a byte too many" },
		{ C_ZERO_COUNT, "a name with count 0" },
		{ C_SPACE_NAME, "a name with a space" },
		{ C_8BIT_NAME, "a name with an 8-bit byte" },
		{ C_DUP_NAME, "the same name twice" },
		{ C_LEN0, "an empty name" },
		{ C_TOO_MANY_HOURS, "more buckets than hours" },
		{ C_SAME_SLOT, "two buckets in one slot" },
		{ C_ZERO_HOUR_COUNT, "a bucket with count 0" },
		{ C_NEG_LAST, "a negative last inbound time" },
		{ C_TOO_MANY_NAMES, "more names than the table holds" },
		{ C_TRUNC_NAME, "a name longer than the record" },
	};
	struct tmpstore ts;
	struct drain *d;
	struct rec r;
	struct doc doc, empty;
	struct drain *fresh = new_drain();
	char err[256], *log;
	size_t i;

	(void)state;
	memset(&ts, 0, sizeof(ts));
	ts_open(&ts);
	doc_of(&empty, fresh, NOW);
	drain_free(&fresh);

	/* the good variant of the same builder loads (so each bad one
	 * differs from a good record in one point only) */
	memset(&r, 0, sizeof(r));
	build_corrupt(&r, C_NONE);
	raw_put(&ts, r.b, r.len);
	d = NULL;
	assert_int_equal(drain_new(&d, ts.store, err, sizeof(err)), 0);
	doc_of(&doc, d, NOW);
	assert_path(&doc, "total", "3");
	assert_entry(&doc, "top_domains", 0, "a.test", 2, NOW);
	assert_entry(&doc, "top_domains", 1, "b.test", 1, NOW);
	doc_free(&doc);
	drain_free(&d);

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		build_corrupt(&r, cases[i].c);
		raw_put(&ts, r.b, r.len);
		d = NULL;
		log_capture();
		if (drain_new(&d, ts.store, err, sizeof(err)) != 0) {
			free(log_release());
			fail_msg("%s: drain_new failed: %s", cases[i].what, err);
		}
		log = log_release();
		assert_non_null(d);
		if (log == NULL || strstr(log, "drain") == NULL)
			fail_msg("%s: no warning logged (\"%s\")",
			    cases[i].what, log ? log : "");
		free(log);
		doc_of(&doc, d, NOW);
		if (strcmp(doc.text, empty.text) != 0)
			fail_msg("%s: loaded %s", cases[i].what, doc.text);
		doc_free(&doc);
		/* it still works, and saving replaces the bad record */
		drain_note(d, NOW, "ok.test", "192.0.2.1");
		assert_int_equal(drain_save(d, err, sizeof(err)), 0);
		drain_free(&d);
		assert_int_equal(drain_new(&d, ts.store, err, sizeof(err)), 0);
		doc_of(&doc, d, NOW);
		assert_path(&doc, "total", "1");
		doc_free(&doc);
		drain_free(&d);
	}
	doc_free(&empty);
	ts_remove(&ts);
}


/* The bytes drain_save() writes, pinned (the format at the top of
 * drain.c): a codec change that alters them fails here. */
static void
test_save_golden(void **state)
{
	struct tmpstore ts;
	struct drain *d = NULL;
	struct raw r;
	char err[256];

	(void)state;
	memset(&ts, 0, sizeof(ts));
	ts_open(&ts);
	assert_int_equal(drain_new(&d, ts.store, err, sizeof(err)), 0);
	drain_note(d, NOW - 2 * HOUR, "a.test", "192.0.2.1");
	drain_note(d, NOW, "b.test", "192.0.2.1");
	drain_note(d, NOW, "a.test", "192.0.2.2");
	assert_int_equal(drain_save(d, err, sizeof(err)), 0);
	raw_get(&ts, &r);
	assert_int_equal(r.found, 1);
	assert_string_equal(hex(r.buf, r.len), "4401000000006553f2b20002000000000007349c0000000000000001"
	    "000000000007349e0000000000000002000206612e74657374000000"
	    "0000000002000000006553f2b206622e746573740000000000000001"
	    "000000006553f2b20002093139322e302e322e310000000000000002"
	    "000000006553f2b2093139322e302e322e3200000000000000010000"
	    "00006553f2b2");
	free(r.buf);
	drain_free(&d);
	ts_remove(&ts);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_window),
		cmocka_unit_test(test_ring_late),
		cmocka_unit_test(test_ring_wrap),
		cmocka_unit_test(test_ring_epoch),
		cmocka_unit_test(test_top_rank),
		cmocka_unit_test(test_top_heavy_survives),
		cmocka_unit_test(test_top_evict),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_json_empty),
		cmocka_unit_test(test_json_shape),
		cmocka_unit_test_teardown(test_save_load, ts_teardown),
		cmocka_unit_test_teardown(test_save_golden, ts_teardown),
		cmocka_unit_test_teardown(test_save_load_full, ts_teardown),
		cmocka_unit_test_teardown(test_load_handmade, ts_teardown),
		cmocka_unit_test_teardown(test_load_corrupt, ts_teardown),
	};

	log_open("test_drain", LOG_DEST_STDERR, 0, LOG_LVL_WARNING);
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
