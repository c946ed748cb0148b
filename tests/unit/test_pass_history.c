/*
 * test_pass_history.c - common/pass_history.c and common/addr_stats.c,
 * the two records the acceptance report reads besides the verification:
 * the pass history round-trips, keeps the newest PASS_HISTORY_MAX, cuts
 * text at a character boundary and refuses anything that is not exactly
 * a record; the per-address counters count each kind, fold case, keep
 * to their bound and count what is past it apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "addr_stats.h"
#include "bytes.h"
#include "pass_history.h"
#include "store.h"
#include "tmpstore.h"

static void
entry(struct pass_entry *e, int64_t t)
{
	memset(e, 0, sizeof(*e));
	e->started = t;
	e->finished = t + 5;
	e->complete = 1;
	e->src_count = 10;
	e->copied = (uint64_t)t;
	e->failed = 1;
	e->nreasons = 1;
	pass_history_text(e->reasons[0].folder, "INBOX");
	e->reasons[0].uid = 7;
	pass_history_text(e->reasons[0].reason, "NO [OVERQUOTA]");
}

static void
test_roundtrip(void **state)
{
	struct pass_history *h = calloc(1, sizeof(*h)), *d = malloc(sizeof(*d));
	struct pass_entry e;
	unsigned char *buf;
	size_t len, i;
	char err[128];

	(void)state;
	assert_non_null(h);
	assert_non_null(d);
	for (i = 1; i <= PASS_HISTORY_MAX + 3; i++) {
		entry(&e, (int64_t)i);
		pass_history_add(h, &e);
	}
	assert_int_equal(h->n, PASS_HISTORY_MAX);
	assert_int_equal(h->e[0].started, 4);	/* the oldest three gone */
	assert_int_equal(pass_history_encode(h, &buf, &len), 0);
	assert_int_equal(pass_history_decode(d, buf, len, err, sizeof(err)), 0);
	assert_int_equal(d->n, PASS_HISTORY_MAX);
	assert_int_equal(d->e[PASS_HISTORY_MAX - 1].copied,
	    PASS_HISTORY_MAX + 3);
	assert_string_equal(d->e[0].reasons[0].reason, "NO [OVERQUOTA]");
	assert_int_equal(d->e[0].reasons[0].uid, 7);
	/* cut short, or one byte more: refused */
	assert_int_equal(pass_history_decode(d, buf, len - 1, err,
	    sizeof(err)), -1);
	buf[1] = 9;
	assert_int_equal(pass_history_decode(d, buf, len, err, sizeof(err)),
	    -1);
	free(buf);
	free(h);
	free(d);
}

static void
test_text(void **state)
{
	char src[400], dst[PASS_HISTORY_TEXT_MAX + 1];
	size_t i;

	(void)state;
	/* 'a' then two-byte characters: a cut must not split one */
	src[0] = 'a';
	for (i = 1; i + 1 < sizeof(src) - 1; i += 2) {
		src[i] = (char)0xc3;
		src[i + 1] = (char)0xa9;
	}
	src[i] = '\0';
	pass_history_text(dst, src);
	assert_true(strlen(dst) <= PASS_HISTORY_TEXT_MAX);
	assert_true(((unsigned char)dst[strlen(dst) - 1]) == 0xa9);
	pass_history_text(dst, NULL);
	assert_string_equal(dst, "");
}

struct note { const char *addr; enum addr_stats_kind kind; };

static int
note_txn(struct store_txn *tx, void *arg)
{
	const struct note *n = arg;

	return (addr_stats_note(tx, n->addr, n->kind, 1000));
}

struct get { const char *addr; struct addr_stats s; int rc; };

static int
get_txn(struct store_txn *tx, void *arg)
{
	struct get *g = arg;

	g->rc = addr_stats_get(tx, g->addr, &g->s);
	return (g->rc == -1 ? -1 : 0);
}

static void
test_addr_stats(void **state)
{
	struct tmpstore *fx = *state;
	struct note n;
	struct get g = { "ALICE@Example.TEST", { 0 }, 0 };
	char err[256];
	int k;

	for (k = 0; k < 4; k++) {
		n = (struct note){ "alice@example.test",
		    (enum addr_stats_kind)k };
		assert_int_equal(store_txn_run(fx->st, 0, note_txn, &n, err,
		    sizeof(err)), 0);
	}
	n = (struct note){ "Alice@EXAMPLE.test", ADDR_RECEIVED };
	assert_int_equal(store_txn_run(fx->st, 0, note_txn, &n, err,
	    sizeof(err)), 0);
	assert_int_equal(store_txn_run(fx->st, 1, get_txn, &g, err,
	    sizeof(err)), 0);
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.s.received, 2);
	assert_int_equal(g.s.forwarded, 1);
	assert_int_equal(g.s.duplicates, 1);
	assert_int_equal(g.s.bounced, 1);
	assert_int_equal(g.s.last, 1000);
	g.addr = "bob@example.test";
	assert_int_equal(store_txn_run(fx->st, 1, get_txn, &g, err,
	    sizeof(err)), 0);
	assert_int_equal(g.rc, STORE_NOTFOUND);
	assert_int_equal(g.s.received, 0);
}

static int
count_full_txn(struct store_txn *tx, void *arg)
{
	unsigned char b[18] = { 'N', ADDR_STATS_VERSION };

	(void)arg;
	be64_put(b + 2, ADDR_STATS_MAX);
	return (store_put(tx, STORE_DB_META, ADDR_STATS_COUNT_KEY,
	    strlen(ADDR_STATS_COUNT_KEY), b, sizeof(b), 0));
}

struct ovf { uint64_t n, over; };

static int
ovf_txn(struct store_txn *tx, void *arg)
{
	struct ovf *o = arg;

	return (addr_stats_overflow(tx, &o->n, &o->over));
}

static void
test_addr_bound(void **state)
{
	struct tmpstore *fx = *state;
	struct note n = { "new@example.test", ADDR_RECEIVED };
	struct get g = { "new@example.test", { 0 }, 0 };
	struct ovf o;
	char err[256];

	assert_int_equal(store_txn_run(fx->st, 0, count_full_txn, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(store_txn_run(fx->st, 0, note_txn, &n, err,
	    sizeof(err)), 0);
	assert_int_equal(store_txn_run(fx->st, 1, get_txn, &g, err,
	    sizeof(err)), 0);
	assert_int_equal(g.rc, STORE_NOTFOUND);	/* past the bound */
	assert_int_equal(store_txn_run(fx->st, 1, ovf_txn, &o, err,
	    sizeof(err)), 0);
	assert_int_equal(o.n, ADDR_STATS_MAX);
	assert_int_equal(o.over, 1);
}

static int
setup(void **state)
{
	return (tmpstore_open(state, "test_pass_history"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_text),
		cmocka_unit_test_setup_teardown(test_addr_stats, setup,
		    tmpstore_close),
		cmocka_unit_test_setup_teardown(test_addr_bound, setup,
		    tmpstore_close),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
