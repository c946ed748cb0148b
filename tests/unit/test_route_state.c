/*
 * test_route_state.c - the staged-wave routing records
 * (common/route_state.c): keys, the value's round trip through the
 * store, the default of a wave without a record, and one table of
 * malformed values, each of which the strict decoder must refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "route_state.h"
#include "tmpstore.h"

static int
setup(void **state)
{
	return (tmpstore_open(state, "test_route_state"));
}

static int
teardown(void **state)
{
	return (tmpstore_close(state));
}

static void
test_names_keys(void **state)
{
	enum route_wave_state st;
	char key[ROUTE_WAVE_KEY_MAX];

	(void)state;
	assert_string_equal(route_wave_state_name(ROUTE_WAVE_PENDING),
	    "pending");
	assert_string_equal(route_wave_state_name(ROUTE_WAVE_MIGRATED),
	    "migrated");
	assert_int_equal(route_wave_state_parse("migrated", &st), 0);
	assert_int_equal(st, ROUTE_WAVE_MIGRATED);
	assert_int_equal(route_wave_state_parse("pending", &st), 0);
	assert_int_equal(st, ROUTE_WAVE_PENDING);
	assert_int_equal(route_wave_state_parse("Migrated", &st), -1);
	assert_int_equal(route_wave_state_parse("", &st), -1);
	assert_int_equal(route_wave_key(1, key, sizeof(key)), 12);
	assert_string_equal(key, "route.wave.1");
	assert_int_equal(route_wave_key(999, key, sizeof(key)), 14);
	assert_string_equal(key, "route.wave.999");
	assert_int_equal(route_wave_key(0, key, sizeof(key)), 0);
	assert_int_equal(route_wave_key(1000, key, sizeof(key)), 0);
}

static void
test_roundtrip(void **state)
{
	struct store *st = ((struct tmpstore *)*state)->st;
	static struct route_wave all[ROUTE_WAVE_MAX + 1];
	struct route_wave w, back;
	unsigned char buf[ROUTE_WAVE_VALUE_MAX];
	char err[256];
	size_t n;

	/* No record: every wave pending, since 0. */
	assert_int_equal(route_state_read(st, all, err, sizeof(err)), 0);
	assert_int_equal(all[1].state, ROUTE_WAVE_PENDING);
	assert_int_equal(all[1].since, 0);
	assert_int_equal(all[999].wave, 999);
	assert_int_equal(route_state_read(NULL, all, err, sizeof(err)), 0);
	assert_int_equal(all[7].state, ROUTE_WAVE_PENDING);

	route_wave_init(&w, 2);
	w.state = ROUTE_WAVE_MIGRATED;
	w.since = 1800000000;
	strcpy(w.why, "ferryctl uid=0");
	n = route_wave_encode(&w, buf, sizeof(buf));
	assert_int_equal(n, 1 + 1 + 8 + 2 + strlen(w.why));
	assert_int_equal(route_wave_decode(&back, 2, buf, n, err,
	    sizeof(err)), 0);
	assert_int_equal(back.state, ROUTE_WAVE_MIGRATED);
	assert_int_equal(back.since, 1800000000);
	assert_string_equal(back.why, "ferryctl uid=0");

	assert_int_equal(route_state_write(st, &w, err, sizeof(err)), 0);
	route_wave_init(&w, 999);
	w.since = 5;
	assert_int_equal(route_state_write(st, &w, err, sizeof(err)), 0);
	assert_int_equal(route_state_read(st, all, err, sizeof(err)), 0);
	assert_int_equal(all[2].state, ROUTE_WAVE_MIGRATED);
	assert_int_equal(all[2].since, 1800000000);
	assert_string_equal(all[2].why, "ferryctl uid=0");
	assert_int_equal(all[1].state, ROUTE_WAVE_PENDING);
	assert_int_equal(all[999].state, ROUTE_WAVE_PENDING);
	assert_int_equal(all[999].since, 5);

	/* Invalid records are never written. */
	route_wave_init(&w, 3);
	strcpy(w.why, "bad\nreason");
	assert_int_equal(route_wave_encode(&w, buf, sizeof(buf)), 0);
	assert_int_equal(route_state_write(st, &w, err, sizeof(err)), -1);
	route_wave_init(&w, 1000);
	assert_int_equal(route_state_write(st, &w, err, sizeof(err)), -1);
	route_wave_init(&w, 3);
	w.since = -1;
	assert_int_equal(route_wave_encode(&w, buf, sizeof(buf)), 0);
	assert_int_equal(route_state_read(st, all, err, sizeof(err)), 0);
	assert_int_equal(all[3].since, 0);
}

/* put_raw - META keys that only look like records: all ignored */
static int
put_raw(struct store_txn *tx, void *arg)
{
	static const char *const keys[] = { "route.wave.0", "route.wave.05",
	    "route.wave.1000", "route.wave.x", "route.waves" };
	size_t i;

	(void)arg;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (store_put(tx, STORE_DB_META, keys[i], strlen(keys[i]), "\x09",
		    1, 0) != 0)
			return (-1);
	return (0);
}

/* put_bad - a record of wave 5 the decoder refuses */
static int
put_bad(struct store_txn *tx, void *arg)
{
	(void)arg;
	return (store_put(tx, STORE_DB_META, "route.wave.5", 12, "\x09", 1,
	    0) != 0 ? -1 : 0);
}

static void
test_strict(void **state)
{
	static const struct {
		const char	*bytes;
		size_t		 len;
		const char	*why;
	} t[] = {
		{ "", 0, "truncated" },
		{ "\x01\x01\0\0\0\0\0\0\0\x05\0", 11, "truncated" },
		{ "\x02\x01\0\0\0\0\0\0\0\x05\0\0", 12, "unknown version" },
		{ "\x01\x02\0\0\0\0\0\0\0\x05\0\0", 12, "unknown state" },
		{ "\x01\x01\x80\0\0\0\0\0\0\x05\0\0", 12,
		  "time out of range" },
		{ "\x01\x01\0\0\0\0\0\0\0\x05\0\x02" "a", 13, "truncated" },
		{ "\x01\x01\0\0\0\0\0\0\0\x05\0\x01" "a" "x", 14,
		  "trailing bytes" },
		{ "\x01\x01\0\0\0\0\0\0\0\x05\0\x01" "\x1b", 13,
		  "control character" },
		{ "\x01\x01\0\0\0\0\0\0\0\x05\0\x01" "\0", 13, "NUL" },
		{ "\x01\x01\0\0\0\0\0\0\0\x05\x01\x00", 12 + 256,
		  "reason too long" },
	};
	struct store *st = ((struct tmpstore *)*state)->st;
	static struct route_wave all[ROUTE_WAVE_MAX + 1];
	struct route_wave w;
	unsigned char big[512];
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const void *p = t[i].bytes;

		if (t[i].len > 14) {
			memset(big, 'a', sizeof(big));
			memcpy(big, t[i].bytes, 12);
			p = big;
		}
		err[0] = '\0';
		if (route_wave_decode(&w, 4, p, t[i].len, err,
		    sizeof(err)) != -1)
			fail_msg("case %zu: decoded", i);
		if (strstr(err, t[i].why) == NULL ||
		    strncmp(err, "wave 4: bad routing record: ", 28) != 0)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err,
			    t[i].why);
		if (w.state != ROUTE_WAVE_PENDING || w.since != 0)
			fail_msg("case %zu: not reset to the default", i);
	}
	/* The one good value of the table's shape. */
	assert_int_equal(route_wave_decode(&w, 4,
	    "\x01\x01\0\0\0\0\0\0\0\x05\0\x01" "a", 13, err, sizeof(err)), 0);
	assert_int_equal(w.state, ROUTE_WAVE_MIGRATED);
	assert_int_equal(w.since, 5);

	/* A broken record in the store is an error, not a silent default;
	 * other META keys beside the records are ignored. */
	assert_int_equal(store_txn_run(st, 0, put_raw, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(route_state_read(st, all, err, sizeof(err)), 0);
	assert_int_equal(all[5].state, ROUTE_WAVE_PENDING);
	assert_int_equal(store_txn_run(st, 0, put_bad, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(route_state_read(st, all, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "wave 5: bad routing record"));
}

static void
test_parse(void **state)
{
	static const char *const bad[] = {
		"", "0", "01", "1000", "-1", "+1", " 1", "1 ", "1a", "abc",
		"9999",
	};
	size_t i;

	(void)state;
	assert_int_equal(route_wave_parse("1"), 1);
	assert_int_equal(route_wave_parse("42"), 42);
	assert_int_equal(route_wave_parse("999"), ROUTE_WAVE_MAX);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(route_wave_parse(bad[i]), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_keys),
		cmocka_unit_test_setup_teardown(test_roundtrip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_strict, setup, teardown),
		cmocka_unit_test(test_parse),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
