/*
 * test_util.c - the small parsers of common/util.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util.h"

static void
test_duration(void **state)
{
	static const struct { const char *in; int ok; int64_t secs; } t[] = {
		{ "90s", 1, 90 }, { "5m", 1, 300 }, { "2h", 1, 7200 },
		{ "3d", 1, 259200 }, { "1w", 1, 604800 }, { "1h30m", 1, 5400 },
		{ "45", 1, 45 }, { "0", 1, 0 }, { "2d12h", 1, 216000 },
		{ "", 0, 0 }, { "5", 1, 5 }, { "m", 0, 0 }, { "5x", 0, 0 },
		{ "-5s", 0, 0 }, { "5 m", 0, 0 }, { "5m2h", 0, 0 }, { "1s1s", 0, 0 },
		{ "99999999999999999999d", 0, 0 }, { "106751991167301d", 0, 0 },
		{ "5s ", 0, 0 },
	};
	char err[128];
	int64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = parse_duration(t[i].in, &v, err, sizeof(err));
		if ((rc == 0) != t[i].ok)
			fail_msg("case %zu \"%s\": rc %d (%s)", i, t[i].in, rc, err);
		if (t[i].ok && v != t[i].secs)
			fail_msg("case %zu \"%s\": %lld", i, t[i].in, (long long)v);
	}
}

static void
test_size(void **state)
{
	static const struct { const char *in; int ok; uint64_t bytes; } t[] = {
		{ "512", 1, 512 }, { "10K", 1, 10240 }, { "50M", 1, 52428800 },
		{ "1G", 1, 1073741824 }, { "10k", 1, 10240 }, { "10KB", 1, 10240 },
		{ "", 0, 0 }, { "K", 0, 0 }, { "10T", 0, 0 }, { "-1", 0, 0 },
		{ "1.5M", 0, 0 }, { "99999999999999999999G", 0, 0 },
		{ "18014398509481984G", 0, 0 },
	};
	char err[128];
	uint64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = parse_size(t[i].in, &v, err, sizeof(err));
		if ((rc == 0) != t[i].ok)
			fail_msg("case %zu \"%s\": rc %d", i, t[i].in, rc);
		if (t[i].ok && v != t[i].bytes)
			fail_msg("case %zu \"%s\": %llu", i, t[i].in, (unsigned long long)v);
	}
}

static void
test_bool_int(void **state)
{
	char err[128];
	int64_t i64;
	int b;

	(void)state;
	assert_int_equal(parse_bool("yes", &b, err, sizeof(err)), 0);
	assert_int_equal(b, 1);
	assert_int_equal(parse_bool("Off", &b, err, sizeof(err)), 0);
	assert_int_equal(b, 0);
	assert_int_equal(parse_bool("maybe", &b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "maybe"));
	assert_int_equal(parse_int("42", 0, 100, &i64, err, sizeof(err)), 0);
	assert_int_equal(i64, 42);
	assert_int_equal(parse_int("101", 0, 100, &i64, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "range"));
	assert_int_equal(parse_int("4x", 0, 100, &i64, err, sizeof(err)), -1);
	assert_int_equal(parse_int(" 4", 0, 100, &i64, err, sizeof(err)), -1);
	assert_int_equal(parse_int("", 0, 100, &i64, err, sizeof(err)), -1);
}

static void
test_hostport(void **state)
{
	static const struct {
		const char *in; int defport; int ok; const char *host; int port; int v6;
	} t[] = {
		{ "mx.example.com:25", 0, 1, "mx.example.com", 25, 0 },
		{ "127.0.0.1:2525", 0, 1, "127.0.0.1", 2525, 0 },
		{ "[::1]:25", 0, 1, "::1", 25, 1 },
		{ "[2001:db8::1]:587", 0, 1, "2001:db8::1", 587, 1 },
		{ "[::1]", 53, 1, "::1", 53, 1 },
		{ "mx.example.com", 25, 1, "mx.example.com", 25, 0 },
		{ "mx.example.com", 0, 0, NULL, 0, 0 },
		{ "::1:25", 0, 0, NULL, 0, 0 },
		{ "[::1:25", 0, 0, NULL, 0, 0 },
		{ "[nothex]:25", 0, 0, NULL, 0, 0 },
		{ "host:0", 0, 0, NULL, 0, 0 },
		{ "host:65536", 0, 0, NULL, 0, 0 },
		{ "host:25x", 0, 0, NULL, 0, 0 },
		{ ":25", 0, 0, NULL, 0, 0 },
		{ "bad host:25", 0, 0, NULL, 0, 0 },
		{ "a..b:25", 0, 0, NULL, 0, 0 },
		{ "[::1]x25", 0, 0, NULL, 0, 0 },
		{ "", 25, 0, NULL, 0, 0 },
	};
	struct hostport hp;
	char err[128], buf[300];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = parse_hostport(t[i].in, t[i].defport, &hp, err, sizeof(err));
		if ((rc == 0) != t[i].ok)
			fail_msg("case %zu \"%s\": rc %d (%s)", i, t[i].in, rc, err);
		if (!t[i].ok)
			continue;
		if (strcmp(hp.host, t[i].host) != 0 || hp.port != t[i].port ||
		    hp.is_ipv6 != t[i].v6)
			fail_msg("case %zu \"%s\": %s %d %d", i, t[i].in, hp.host,
			    hp.port, hp.is_ipv6);
	}
	assert_int_equal(parse_hostport("[::1]:25", 0, &hp, err, sizeof(err)), 0);
	hostport_format(&hp, buf, sizeof(buf));
	assert_string_equal(buf, "[::1]:25");
}

static void
test_strlist(void **state)
{
	struct strlist l = { 0 };

	(void)state;
	assert_int_equal(strlist_split(&l, " example.com, Example.ORG\tx.test,,"), 0);
	assert_int_equal(l.count, 3);
	assert_string_equal(l.items[0], "example.com");
	assert_string_equal(l.items[2], "x.test");
	assert_true(strlist_contains_ci(&l, "example.org"));
	assert_false(strlist_contains_ci(&l, "example.net"));
	strlist_clear(&l);
	assert_int_equal(l.count, 0);
	assert_null(l.items);
}

static void
test_printable(void **state)
{
	char out[64];

	(void)state;
	str_printable(out, sizeof(out), "a\r\nb\\", 5);
	assert_string_equal(out, "a\\x0d\\x0ab\\x5c");
	/* truncation never splits an escape and always terminates */
	str_printable(out, 6, "\x01\x02", 2);
	assert_string_equal(out, "\\x01");
	assert_int_equal(str_copy(out, "hello", 3), 5);
	assert_string_equal(out, "he");
}

static void
test_array_grow(void **state)
{
	int *v = NULL, *p;
	size_t alloc = 0, n;

	(void)state;
	for (n = 0; n < 1000; n++) {
		p = array_grow(v, &alloc, n, sizeof(*v), 4);
		assert_non_null(p);
		assert_true(alloc > n);
		v = p;
		v[n] = (int)n;
	}
	assert_int_equal(alloc, 1024);
	for (n = 0; n < 1000; n++)
		assert_int_equal(v[n], (int)n);
	/* room left: the same array back, nothing reallocated */
	assert_ptr_equal(array_grow(v, &alloc, 1000, sizeof(*v), 4), v);
	free(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_bool_int),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_strlist),
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_array_grow),
	};
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
