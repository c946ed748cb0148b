/*
 * test_bytes.c - common/bytes.c: the bytes each writer produces (table
 * of integers and varints), growth and fixed capacity, string prefixes
 * and their limits, and the read cursor's strictness: truncation at
 * every field, overlong and overflowing varints, sticky failures that
 * keep the offset of the first problem, "nothing may follow", and the
 * string getters' reasons.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bytes.h"

#define B(s)	(const unsigned char *)(s), sizeof(s) - 1

static void
assert_bytes(const struct wbuf *w, const unsigned char *want, size_t n,
    size_t idx)
{
	if (w->failed || w->len != n || memcmp(w->p, want, n) != 0)
		fail_msg("case %zu: %zu bytes written (failed %d), %zu wanted",
		    idx, w->len, w->failed, n);
}

/* Every integer writer against its bytes, and read back. */
static void
test_integers(void **state)
{
	static const struct {
		int		 kind;	/* 1, 2, 4, 8 big-endian; 'v'; 'z' */
		uint64_t	 v;
		const char	*bytes;
		size_t		 n;
	} cases[] = {
		{ 1, 0xab, "\xab", 1 },
		{ 2, 0x0102, "\x01\x02", 2 },
		{ 4, 0x01020304, "\x01\x02\x03\x04", 4 },
		{ 8, 0x0102030405060708ULL, "\x01\x02\x03\x04\x05\x06\x07\x08",
		    8 },
		{ 8, UINT64_MAX, "\xff\xff\xff\xff\xff\xff\xff\xff", 8 },
		{ 'v', 0, "\x00", 1 },
		{ 'v', 127, "\x7f", 1 },
		{ 'v', 128, "\x80\x01", 2 },
		{ 'v', 300, "\xac\x02", 2 },
		{ 'v', UINT64_MAX,
		    "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10 },
		{ 'z', 0, "\x00", 1 },
		{ 'z', (uint64_t)-1, "\x01", 1 },
		{ 'z', 1, "\x02", 1 },
		{ 'z', (uint64_t)-2, "\x03", 1 },
		{ 'z', (uint64_t)INT64_MAX,
		    "\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10 },
		{ 'z', (uint64_t)INT64_MIN,
		    "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wbuf w;
		struct rbuf r;
		uint64_t got = 0;
		int64_t sgot = 0;

		wbuf_init(&w);
		switch (cases[i].kind) {
		case 1: wbuf_u8(&w, (unsigned)cases[i].v); break;
		case 2: wbuf_be16(&w, (uint16_t)cases[i].v); break;
		case 4: wbuf_be32(&w, (uint32_t)cases[i].v); break;
		case 8: wbuf_be64(&w, cases[i].v); break;
		case 'v': wbuf_varint(&w, cases[i].v); break;
		default: wbuf_zigzag(&w, (int64_t)cases[i].v); break;
		}
		assert_bytes(&w, (const unsigned char *)cases[i].bytes,
		    cases[i].n, i);
		rbuf_init(&r, w.p, w.len);
		switch (cases[i].kind) {
		case 1: got = rbuf_u8(&r); break;
		case 2: got = rbuf_be16(&r); break;
		case 4: got = rbuf_be32(&r); break;
		case 8: got = rbuf_be64(&r); break;
		case 'v': assert_int_equal(rbuf_varint(&r, &got), 0); break;
		default:
			assert_int_equal(rbuf_zigzag(&r, &sgot), 0);
			got = (uint64_t)sgot;
			break;
		}
		if (got != cases[i].v || rbuf_end(&r) != 0)
			fail_msg("case %zu: read back %llu", i,
			    (unsigned long long)got);
		wbuf_free(&w);
	}
}

static void
test_raw(void **state)
{
	unsigned char b[8];

	(void)state;
	be16_put(b, 0xa1b2);
	assert_memory_equal(b, "\xa1\xb2", 2);
	assert_int_equal(be16_get(b), 0xa1b2);
	be32_put(b, 0xa1b2c3d4);
	assert_memory_equal(b, "\xa1\xb2\xc3\xd4", 4);
	assert_int_equal(be32_get(b), 0xa1b2c3d4);
	be64_put(b, 0x8070605040302010ULL);
	assert_memory_equal(b, "\x80\x70\x60\x50\x40\x30\x20\x10", 8);
	assert_true(be64_get(b) == 0x8070605040302010ULL);
}

/* A growing buffer grows; finishing hands the bytes over. */
static void
test_grow_finish(void **state)
{
	struct wbuf w;
	unsigned char *buf;
	size_t len, i;

	(void)state;
	wbuf_init(&w);
	assert_int_equal(wbuf_finish(&w, &buf, &len), 0);
	assert_null(buf);
	assert_int_equal(len, 0);

	wbuf_init(&w);
	for (i = 0; i < 10000; i++)
		wbuf_u8(&w, (unsigned)i);
	assert_int_equal(wbuf_finish(&w, &buf, &len), 0);
	assert_int_equal(len, 10000);
	for (i = 0; i < 10000; i++)
		assert_int_equal(buf[i], i & 0xff);
	free(buf);

	/* a failure recorded once is reported at the end */
	wbuf_init(&w);
	wbuf_u8(&w, 1);
	wbuf_fail(&w);
	wbuf_u8(&w, 2);
	assert_int_equal(w.len, 1);
	assert_int_equal(wbuf_finish(&w, &buf, &len), -1);
	assert_null(buf);
	wbuf_free(NULL);
}

/* A fixed buffer never writes past its capacity and stops at the first
 * write that does not fit. */
static void
test_fixed(void **state)
{
	unsigned char b[6] = { 0 };
	struct wbuf w;

	(void)state;
	wbuf_init_fixed(&w, b, 5);
	wbuf_be32(&w, 0x01020304);
	assert_int_equal(w.failed, 0);
	wbuf_be16(&w, 0x0506);		/* one byte left: does not fit */
	assert_int_equal(w.failed, 1);
	wbuf_u8(&w, 7);			/* would fit, but w has failed */
	assert_int_equal(w.len, 4);
	assert_memory_equal(b, "\x01\x02\x03\x04\x00\x00", 6);
	wbuf_free(&w);			/* caller memory: not freed */
}

static void
test_strings_write(void **state)
{
	char big[0x10000 + 1];
	struct wbuf w;

	(void)state;
	memset(big, 'a', sizeof(big));
	wbuf_init(&w);
	wbuf_str8(&w, "ab", 2);
	wbuf_str16(&w, "cd", 2);
	wbuf_strv(&w, "e", 1);
	wbuf_str8(&w, "", 0);
	assert_bytes(&w, B("\002ab" "\000\002cd" "\001e" "\000"), 0);
	wbuf_free(&w);

	wbuf_init(&w);
	wbuf_str8(&w, big, 255);
	assert_int_equal(w.failed, 0);
	wbuf_str8(&w, big, 256);
	assert_int_equal(w.failed, 1);
	wbuf_free(&w);

	wbuf_init(&w);
	wbuf_str16(&w, big, 0xffff);
	assert_int_equal(w.failed, 0);
	assert_int_equal(w.len, 2 + 0xffff);
	wbuf_str16(&w, big, 0x10000);
	assert_int_equal(w.failed, 1);
	wbuf_free(&w);
}

/* Reading: the first failure wins, and the cursor stops there. */
static void
test_read_strict(void **state)
{
	struct rbuf r;
	uint64_t v = 99;

	(void)state;
	rbuf_init(&r, NULL, 5);
	assert_int_equal(rbuf_left(&r), 0);
	assert_int_equal(rbuf_u8(&r), 0);
	assert_string_equal(r.why, "truncated");

	rbuf_init(&r, "\x01\x02\x03", 3);
	assert_int_equal(rbuf_be16(&r), 0x0102);
	assert_int_equal(rbuf_be16(&r), 0);	/* one byte left */
	assert_string_equal(r.why, "truncated");
	assert_int_equal(r.off, 2);
	assert_int_equal(rbuf_u8(&r), 0);	/* sticky */
	assert_int_equal(r.off, 2);
	assert_int_equal(rbuf_fail(&r, "other"), -1);
	assert_string_equal(r.why, "truncated");
	assert_int_equal(rbuf_end(&r), -1);

	rbuf_init(&r, "\x01\x02", 2);
	assert_int_equal(rbuf_u8(&r), 1);
	assert_int_equal(rbuf_end(&r), -1);
	assert_string_equal(r.why, "trailing bytes");

	rbuf_init(&r, "\x01", 1);
	assert_non_null(rbuf_take(&r, 1));
	assert_int_equal(rbuf_end(&r), 0);
	assert_null(r.why);

	/* 11 bytes is too long; a tenth byte above 1 overflows 64 bits */
	rbuf_init(&r, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11);
	assert_int_equal(rbuf_varint(&r, &v), -1);
	assert_string_equal(r.why, "integer too long");
	rbuf_init(&r, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", 10);
	assert_int_equal(rbuf_varint(&r, &v), -1);
	assert_string_equal(r.why, "integer overflow");
	rbuf_init(&r, "\x80", 1);
	assert_int_equal(rbuf_varint(&r, &v), -1);
	assert_string_equal(r.why, "truncated");
	assert_true(v == 99);			/* untouched on failure */
}

static void
test_read_strings(void **state)
{
	static const struct {
		const char	*in;
		size_t		 inlen;
		size_t		 n;		/* the length "read before" */
		size_t		 max;		/* strdup max; strcpy size max+1 */
		const char	*why;		/* NULL: ok, in[0..n) */
	} cases[] = {
		{ "abc", 3, 3, 3, NULL },
		{ "abc", 3, 0, 3, NULL },
		{ "abc", 3, 3, 2, "string too long" },
		{ "abc", 3, 4, 9, "truncated string" },
		{ "a\0c", 3, 3, 9, "NUL in string" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rbuf r;
		char out[16], *s;
		int rc;

		rbuf_init(&r, cases[i].in, cases[i].inlen);
		rc = rbuf_strcpy(&r, cases[i].n, out, cases[i].max + 1);
		if (cases[i].why == NULL) {
			if (rc != 0 || strlen(out) != cases[i].n ||
			    memcmp(out, cases[i].in, cases[i].n) != 0)
				fail_msg("case %zu: strcpy", i);
		} else if (rc != -1 || strcmp(r.why, cases[i].why) != 0)
			fail_msg("case %zu: strcpy %s", i, r.why);

		rbuf_init(&r, cases[i].in, cases[i].inlen);
		s = rbuf_strdup(&r, cases[i].n, cases[i].max);
		if (cases[i].why == NULL) {
			if (s == NULL || strlen(s) != cases[i].n ||
			    r.off != cases[i].n)
				fail_msg("case %zu: strdup", i);
		} else if (s != NULL || strcmp(r.why, cases[i].why) != 0 ||
		    r.off != 0)
			fail_msg("case %zu: strdup %s", i, r.why);
		free(s);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_raw),
		cmocka_unit_test(test_grow_finish),
		cmocka_unit_test(test_fixed),
		cmocka_unit_test(test_strings_write),
		cmocka_unit_test(test_read_strict),
		cmocka_unit_test(test_read_strings),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
