/*
 * test_reverse_since.c - ferry-syncd --since (reverse_parse_since): the
 * accepted forms read as UTC, and everything else refused with words
 * that name the value and the forms wanted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sync_reverse.h"

static void
test_good(void **state)
{
	char err[256];
	int64_t t;

	(void)state;
	assert_int_equal(reverse_parse_since("2020-01-01", &t, err,
	    sizeof(err)), 0);
	assert_int_equal(t, 1577836800);
	assert_int_equal(reverse_parse_since("2020-01-01T10:30", &t, err,
	    sizeof(err)), 0);
	assert_int_equal(t, 1577836800 + 10 * 3600 + 30 * 60);
	assert_int_equal(reverse_parse_since("2020-01-01 10:30:15Z", &t, err,
	    sizeof(err)), 0);
	assert_int_equal(t, 1577836800 + 10 * 3600 + 30 * 60 + 15);
	assert_int_equal(reverse_parse_since("2024-02-29", &t, err,
	    sizeof(err)), 0);
	assert_int_equal(reverse_parse_since("1970-01-01T00:00:00Z", &t, err,
	    sizeof(err)), 0);
	assert_int_equal(t, 0);
}

static void
test_bad(void **state)
{
	static const char *bad[] = { "", "garbage", "2020-1-01", "2020-01-1",
	    "2020-13-01", "2020-00-10", "2020-02-30", "2023-02-29",
	    "1900-02-29", "2020-01-01T", "2020-01-01T25:00", "2020-01-01T10:60",
	    "2020-01-01T10:30:61", "2020-01-01T10:30+02:00", "2020-01-01x",
	    "1969-12-31", "-2020-01-01", "2020-01-01T1:30", NULL };
	char err[256];
	int64_t t = 42;
	size_t i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++) {
		err[0] = '\0';
		if (reverse_parse_since(bad[i], &t, err, sizeof(err)) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_non_null(strstr(err, "is not a date"));
		assert_non_null(strstr(err, bad[i]));
		assert_int_equal(t, 42);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
	};
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
