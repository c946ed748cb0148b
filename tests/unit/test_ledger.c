/*
 * test_ledger.c - common/ledger.c: the value layout (golden bytes, the
 * 24-byte values written before the status existed, damaged values) and
 * the state rules against a real store in a mkdtemp() directory: a
 * pending entry never replaces a delivered one, ledger_del() removes
 * only a pending entry of the queue id that wrote it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "ledger.h"
#include "store.h"
#include "tmpstore.h"

#define ID_A	"0123456789abcdef"
#define ID_B	"fedcba9876543210"

/* the fixture: one empty store (tmpstore.h) */

static int
setup(void **state)
{
	return (tmpstore_open(state, "test_ledger"));
}

static int
teardown(void **state)
{
	return (tmpstore_close(state));
}

/* ---- the layout -------------------------------------------------------- */

static void
test_encode_golden(void **state)
{
	static const unsigned char want[LEDGER_VALUE_LEN] = {
		0x00, 0x00, 0x00, 0x00, 0x65, 0x53, 0xf1, 0x00,
		'0', '1', '2', '3', '4', '5', '6', '7',
		'8', '9', 'a', 'b', 'c', 'd', 'e', 'f',
		LEDGER_PENDING,
	};
	struct ledger_entry e, d;
	unsigned char v[LEDGER_VALUE_LEN];

	(void)state;
	memset(&e, 0, sizeof(e));
	e.when = 1700000000;
	e.status = LEDGER_PENDING;
	memcpy(e.queue_id, ID_A, sizeof(ID_A));
	ledger_encode(&e, v);
	assert_memory_equal(v, want, sizeof(want));
	assert_int_equal(ledger_decode(v, sizeof(v), &d), 0);
	assert_int_equal(d.when, 1700000000);
	assert_string_equal(d.queue_id, ID_A);
	assert_int_equal(d.status, LEDGER_PENDING);
	/* later additions after the 25th byte are ignored */
	{
		unsigned char longer[LEDGER_VALUE_LEN + 3];

		memcpy(longer, v, sizeof(v));
		memset(longer + sizeof(v), 0x7f, 3);
		assert_int_equal(ledger_decode(longer, sizeof(longer), &d), 0);
		assert_int_equal(d.status, LEDGER_PENDING);
	}
}

static void
test_decode_cases(void **state)
{
	static const struct {
		const char	*bytes;
		size_t		 len;
		int		 rc;
		int64_t		 when;
		int		 status;
	} cases[] = {
		/* 0: a value of the first layout: delivered */
		{ "\0\0\0\0\x65\x53\xf1\x00" ID_A, 24, 0, 1700000000,
		    LEDGER_DELIVERED },
		/* 1: delivered */
		{ "\0\0\0\0\0\0\0\x05" ID_B "\x01", 25, 0, 5,
		    LEDGER_DELIVERED },
		/* 2: unknown status: an error, the time kept */
		{ "\0\0\0\0\0\0\0\x05" ID_B "\x09", 25, -1, 5, LEDGER_NONE },
		/* 3: a time and nothing else */
		{ "\0\0\0\0\0\0\0\x07", 8, -1, 7, LEDGER_NONE },
		/* 4: too short for a time */
		{ "\0\0\0", 3, -1, 0, LEDGER_NONE },
		/* 5: empty */
		{ "", 0, -1, 0, LEDGER_NONE },
	};
	struct ledger_entry e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = ledger_decode(cases[i].bytes, cases[i].len, &e);

		if (rc != cases[i].rc || e.when != cases[i].when ||
		    e.status != cases[i].status)
			fail_msg("case %zu: rc %d when %lld status %d", i, rc,
			    (long long)e.when, e.status);
	}
}

/* ---- the rules, in a store ----------------------------------------------- */

struct op {
	int			 what;	/* 'p' put, 'g' get, 'd' del, 'r' raw */
	unsigned char		 key[MSGKEY_LEN];
	struct ledger_entry	 e;
	const char		*id;	/* del */
	int			 rc;
	const void		*raw;
	size_t			 rawlen;
};

static int
op_fn(struct store_txn *tx, void *arg)
{
	struct op *o = arg;
	const void *v;
	size_t vlen;

	switch (o->what) {
	case 'p':
		o->rc = ledger_put(tx, o->key, &o->e, time(NULL) + 3600);
		break;
	case 'g':
		o->rc = ledger_get(tx, o->key, &o->e);
		break;
	case 'd':
		o->rc = ledger_del(tx, o->key, o->id);
		break;
	case 'r':
		o->rc = store_put_expiring(tx, STORE_DB_LEDGER, o->key,
		    MSGKEY_LEN, o->raw, o->rawlen, time(NULL) + 3600, 0);
		break;
	case 'v':
		o->rc = store_get(tx, STORE_DB_LEDGER, o->key, MSGKEY_LEN, &v,
		    &vlen);
		if (o->rc == 0 && vlen >= 8)
			o->e.when = (int64_t)(((uint64_t)((const unsigned char
			    *)v)[4] << 24) | ((uint64_t)((const unsigned char
			    *)v)[5] << 16) | ((uint64_t)((const unsigned char
			    *)v)[6] << 8) | ((const unsigned char *)v)[7]);
		break;
	}
	return (o->rc == -1 ? -1 : 0);
}

static int
run(struct tmpstore *fx, int what, int keybyte, int status, const char *id,
    int64_t when, struct ledger_entry *out)
{
	struct op o;
	char err[256];

	memset(&o, 0, sizeof(o));
	o.what = what;
	memset(o.key, keybyte, sizeof(o.key));
	o.e.status = (uint8_t)status;
	o.e.when = when;
	if (id != NULL)
		snprintf(o.e.queue_id, sizeof(o.e.queue_id), "%s", id);
	o.id = id;
	if (store_txn_run(fx->st, what == 'g' || what == 'v', op_fn, &o, err,
	    sizeof(err)) != 0 && o.rc != -1)
		return (-100);	/* the store failed, not the call */
	if (out != NULL)
		*out = o.e;
	return (o.rc);
}

static void
test_rules(void **state)
{
	struct tmpstore *fx = *state;
	struct ledger_entry e;

	/* nothing there */
	assert_int_equal(run(fx, 'g', 1, 0, NULL, 0, NULL), LEDGER_NONE);
	assert_int_equal(run(fx, 'd', 1, 0, ID_A, 0, NULL), STORE_NOTFOUND);

	/* pending, then delivered by the same queue id */
	assert_int_equal(run(fx, 'p', 1, LEDGER_PENDING, ID_A, 100, NULL), 0);
	assert_int_equal(run(fx, 'g', 1, 0, NULL, 0, &e), LEDGER_PENDING);
	assert_int_equal(e.when, 100);
	assert_string_equal(e.queue_id, ID_A);
	/* the first 8 bytes are the time (state_ledger_oldest reads them) */
	assert_int_equal(run(fx, 'v', 1, 0, NULL, 0, &e), 0);
	assert_int_equal(e.when, 100);
	assert_int_equal(run(fx, 'p', 1, LEDGER_DELIVERED, ID_A, 200, NULL), 0);
	assert_int_equal(run(fx, 'g', 1, 0, NULL, 0, &e), LEDGER_DELIVERED);
	assert_int_equal(e.when, 200);

	/* a pending entry never replaces a delivered one */
	assert_int_equal(run(fx, 'p', 1, LEDGER_PENDING, ID_B, 300, NULL), 1);
	assert_int_equal(run(fx, 'g', 1, 0, NULL, 0, &e), LEDGER_DELIVERED);
	assert_string_equal(e.queue_id, ID_A);
	/* and giving up never removes a delivered one */
	assert_int_equal(run(fx, 'd', 1, 0, ID_A, 0, NULL), STORE_NOTFOUND);
	assert_int_equal(run(fx, 'd', 1, 0, NULL, 0, NULL), STORE_NOTFOUND);
	assert_int_equal(run(fx, 'g', 1, 0, NULL, 0, NULL), LEDGER_DELIVERED);

	/* pending: only the queue id that wrote it removes it */
	assert_int_equal(run(fx, 'p', 2, LEDGER_PENDING, ID_A, 100, NULL), 0);
	assert_int_equal(run(fx, 'p', 2, LEDGER_PENDING, ID_B, 110, NULL), 0);
	assert_int_equal(run(fx, 'g', 2, 0, NULL, 0, &e), LEDGER_PENDING);
	assert_string_equal(e.queue_id, ID_B);
	assert_int_equal(run(fx, 'd', 2, 0, ID_A, 0, NULL), STORE_NOTFOUND);
	assert_int_equal(run(fx, 'g', 2, 0, NULL, 0, NULL), LEDGER_PENDING);
	assert_int_equal(run(fx, 'd', 2, 0, ID_B, 0, NULL), 0);
	assert_int_equal(run(fx, 'g', 2, 0, NULL, 0, NULL), LEDGER_NONE);
	/* NULL: whoever wrote it */
	assert_int_equal(run(fx, 'p', 3, LEDGER_PENDING, ID_A, 100, NULL), 0);
	assert_int_equal(run(fx, 'd', 3, 0, NULL, 0, NULL), 0);
	assert_int_equal(run(fx, 'g', 3, 0, NULL, 0, NULL), LEDGER_NONE);

	/* bad entries are refused */
	assert_int_equal(run(fx, 'p', 4, LEDGER_NONE, ID_A, 1, NULL), -1);
	assert_int_equal(run(fx, 'p', 4, LEDGER_PENDING, "abc", 1, NULL), -1);
}

/* Values another writer left: the old layout and garbage. */
static void
test_foreign_values(void **state)
{
	struct tmpstore *fx = *state;
	struct op o;
	char err[256];

	memset(&o, 0, sizeof(o));
	o.what = 'r';
	memset(o.key, 5, sizeof(o.key));
	o.raw = "\0\0\0\0\x65\x53\xf1\x00" ID_A;	/* 24 bytes */
	o.rawlen = 24;
	assert_int_equal(store_txn_run(fx->st, 0, op_fn, &o, err, sizeof(err)),
	    0);
	assert_int_equal(run(fx, 'g', 5, 0, NULL, 0, NULL), LEDGER_DELIVERED);
	assert_int_equal(run(fx, 'p', 5, LEDGER_PENDING, ID_B, 1, NULL), 1);
	memset(o.key, 6, sizeof(o.key));
	o.raw = "x";
	o.rawlen = 1;
	assert_int_equal(store_txn_run(fx->st, 0, op_fn, &o, err, sizeof(err)),
	    0);
	/* unreadable counts as delivered: never a duplicate */
	assert_int_equal(run(fx, 'g', 6, 0, NULL, 0, NULL), LEDGER_DELIVERED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_golden),
		cmocka_unit_test(test_decode_cases),
		cmocka_unit_test_setup_teardown(test_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_values, setup,
		    teardown),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
