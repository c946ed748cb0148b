/*
 * test_mutf7.c - modified UTF-7 <-> UTF-8 (syncd/mutf7.c): the names
 * real servers use, the RFC 3501 examples, every class of invalid input
 * in both directions, buffer limits, and a pseudo-random round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mutf7.h"
#include "utf8.h"

/* Pairs that must convert both ways. */
static const struct {
	const char *utf8;
	const char *mutf7;
} pairs[] = {
	{ "", "" },
	{ "INBOX", "INBOX" },
	{ "Sent Items", "Sent Items" },
	{ "Entwürfe", "Entw&APw-rfe" },
	{ "Éléments envoyés", "&AMk-l&AOk-ments envoy&AOk-s" },
	{ "Gesendete Elemente", "Gesendete Elemente" },
	{ "&", "&-" },
	{ "A&B", "A&-B" },
	{ "&&", "&-&-" },
	{ "R&D/Entwürfe", "R&-D/Entw&APw-rfe" },
	{ "~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
	{ "送信済みメール", "&kAFP4W4IMH8w4TD8MOs-" },
	{ "Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-" },
	{ "Корзина/Спам", "&BBoEPgRABDcEOAQ9BDA-/&BCEEPwQwBDw-" },
	{ "😀", "&2D3eAA-" },
	{ "a😀b€", "a&2D3eAA-b&IKw-" },
	{ "éé", "&AOkA6Q-" },
	{ "é-é", "&AOk--&AOk-" },
	{ "[Gmail]/Sent Mail", "[Gmail]/Sent Mail" },
	{ "~!@#$%^*()_+{}|:\"<>?`-=[]\\;',./", "~!@#$%^*()_+{}|:\"<>?`-=[]\\;',./" },
};

static void
test_pairs(void **state)
{
	char buf[256], err[128];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		if (mutf7_encode(pairs[i].utf8, strlen(pairs[i].utf8), buf,
		    sizeof(buf), &n, err, sizeof(err)) == -1)
			fail_msg("case %zu encode: %s", i, err);
		if (strcmp(buf, pairs[i].mutf7) != 0 || n != strlen(buf))
			fail_msg("case %zu encode: got \"%s\" want \"%s\"", i,
			    buf, pairs[i].mutf7);
		if (mutf7_decode(pairs[i].mutf7, strlen(pairs[i].mutf7), buf,
		    sizeof(buf), &n, err, sizeof(err)) == -1)
			fail_msg("case %zu decode: %s", i, err);
		if (strcmp(buf, pairs[i].utf8) != 0 || n != strlen(buf))
			fail_msg("case %zu decode: got \"%s\" want \"%s\"", i,
			    buf, pairs[i].utf8);
	}
}

static void
test_decode_invalid(void **state)
{
	static const struct {
		const char *in;
		const char *why;	/* substring of the error */
	} t[] = {
		{ "&AGE-", "non-canonical" },		/* "a" shifted */
		{ "&ACY-", "non-canonical" },		/* "&" shifted */
		{ "&AOk-&AOk-", "adjacent" },
		{ "&U,BTFw-&ZeVnLIqe-", "adjacent" },	/* RFC 3501's example */
		{ "&AOk", "unterminated" },
		{ "Entw&APw", "unterminated" },
		{ "&", "unterminated" },
		{ "&AO-", "superfluous" },		/* 12 bits, no unit */
		{ "&A-", "superfluous" },
		{ "&AOkA-", "superfluous" },		/* one char too many */
		{ "&AOl-", "padding" },			/* non-zero bits */
		{ "&2D0-", "surrogate" },		/* lone high */
		{ "&2D3YPQ-", "surrogate" },		/* high, high */
		{ "&3gA-", "surrogate" },		/* lone low */
		{ "&AOk/-", "BASE64" },			/* "/" is plain base64 */
		{ "&AOk=-", "BASE64" },
		{ "&AOk -", "BASE64" },
		{ "&AAA-", "control" },			/* U+0000 */
		{ "&AAk-", "control" },			/* TAB */
		{ "&AIU-", "control" },			/* C1 NEL */
		{ "a\x80", "not modified UTF-7" },
		{ "Entw\xc3\xbcrfe", "not modified UTF-7" },	/* raw UTF-8 */
		{ "a\tb", "not modified UTF-7" },
		{ "a\x7f", "not modified UTF-7" },
	};
	char buf[64], err[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		err[0] = '\0';
		if (mutf7_decode(t[i].in, strlen(t[i].in), buf, sizeof(buf),
		    NULL, err, sizeof(err)) == 0)
			fail_msg("case %zu \"%s\": accepted as \"%s\"", i,
			    t[i].in, buf);
		if (strstr(err, t[i].why) == NULL)
			fail_msg("case %zu \"%s\": error \"%s\", want \"%s\"",
			    i, t[i].in, err, t[i].why);
	}
	/* An embedded NUL is rejected, not treated as the end. */
	if (mutf7_decode("ab\0c", 4, buf, sizeof(buf), NULL, err,
	    sizeof(err)) == 0)
		fail_msg("embedded NUL accepted");
}

static void
test_encode_invalid(void **state)
{
	static const struct {
		const char *in;
		const char *why;
	} t[] = {
		{ "\xc3", "invalid UTF-8" },			/* truncated */
		{ "Entw\xc3rfe", "invalid UTF-8" },
		{ "\xc0\xaf", "invalid UTF-8" },		/* overlong "/" */
		{ "\xe0\x80\xaf", "invalid UTF-8" },		/* overlong */
		{ "\xf0\x80\x80\xaf", "invalid UTF-8" },	/* overlong */
		{ "\xed\xa0\x80", "invalid UTF-8" },		/* U+D800 */
		{ "\xed\xbf\xbf", "invalid UTF-8" },		/* U+DFFF */
		{ "\xf4\x90\x80\x80", "invalid UTF-8" },	/* > U+10FFFF */
		{ "\xf8\x88\x80\x80\x80", "invalid UTF-8" },	/* 5 bytes */
		{ "\x80", "invalid UTF-8" },			/* stray */
		{ "\xe2\x82", "invalid UTF-8" },		/* truncated € */
		{ "\xff", "invalid UTF-8" },
		{ "a\x01", "control" },
		{ "a\nb", "control" },
		{ "\x7f", "control" },
		{ "\xc2\x85", "control" },			/* U+0085 */
	};
	char buf[64], err[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		err[0] = '\0';
		if (mutf7_encode(t[i].in, strlen(t[i].in), buf, sizeof(buf),
		    NULL, err, sizeof(err)) == 0)
			fail_msg("case %zu: accepted as \"%s\"", i, buf);
		if (strstr(err, t[i].why) == NULL)
			fail_msg("case %zu: error \"%s\", want \"%s\"", i, err,
			    t[i].why);
	}
	if (mutf7_encode("a\0b", 3, buf, sizeof(buf), NULL, err,
	    sizeof(err)) == 0)
		fail_msg("embedded NUL accepted");
}

/* The result must fit exactly: one byte short fails, never overflows. */
static void
test_buffer_limits(void **state)
{
	char buf[64], err[128];
	size_t i, need;

	(void)state;
	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		const char *u = pairs[i].utf8, *m = pairs[i].mutf7;

		need = strlen(m) + 1;
		if (mutf7_encode(u, strlen(u), buf, need, NULL, err,
		    sizeof(err)) == -1)
			fail_msg("case %zu: exact size refused: %s", i, err);
		memset(buf, 'X', sizeof(buf));
		if (need > 1 && mutf7_encode(u, strlen(u), buf, need - 1,
		    NULL, err, sizeof(err)) == 0)
			fail_msg("case %zu: encode one byte short accepted", i);
		if (need > 1 && buf[need - 1] != 'X')
			fail_msg("case %zu: encode wrote past its size", i);
		need = strlen(u) + 1;
		if (mutf7_decode(m, strlen(m), buf, need, NULL, err,
		    sizeof(err)) == -1)
			fail_msg("case %zu: exact size refused: %s", i, err);
		memset(buf, 'X', sizeof(buf));
		if (need > 1 && mutf7_decode(m, strlen(m), buf, need - 1,
		    NULL, err, sizeof(err)) == 0)
			fail_msg("case %zu: decode one byte short accepted", i);
		if (need > 1 && buf[need - 1] != 'X')
			fail_msg("case %zu: decode wrote past its size", i);
		/* The advertised bounds hold for these inputs. */
		assert_true(strlen(m) + 1 <= MUTF7_ENCODE_MAX(strlen(u)));
		assert_true(strlen(u) + 1 <= MUTF7_DECODE_MAX(strlen(m)));
	}
	assert_int_equal(mutf7_encode("a", 1, buf, 0, NULL, err, sizeof(err)),
	    -1);
	assert_int_equal(mutf7_decode("a", 1, buf, 0, NULL, NULL, 0), -1);
}

/* put_utf8 - test-local encoder, independent of the module's */
static size_t
put_utf8(unsigned char *p, uint32_t cp)
{
	if (cp < 0x80) {
		p[0] = (unsigned char)cp;
		return (1);
	}
	if (cp < 0x800) {
		p[0] = (unsigned char)(0xc0 | (cp >> 6));
		p[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return (2);
	}
	if (cp < 0x10000) {
		p[0] = (unsigned char)(0xe0 | (cp >> 12));
		p[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		p[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return (3);
	}
	p[0] = (unsigned char)(0xf0 | (cp >> 18));
	p[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	p[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	p[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return (4);
}

/*
 * Random strings of printable ASCII, "&", BMP and astral characters
 * survive encode + decode unchanged, the encoding is pure printable
 * ASCII, and the size bounds hold.
 */
static void
test_round_trip(void **state)
{
	unsigned char in[400];
	char enc[MUTF7_ENCODE_MAX(sizeof(in))], dec[sizeof(in) + 1];
	char err[128];
	uint32_t seed = 12345, cp;
	size_t n, i, k, elen, dlen;
	int round;

	(void)state;
	for (round = 0; round < 2000; round++) {
		n = 0;
		for (k = 0; k < 40; k++) {
			seed = seed * 1103515245u + 12345u;
			switch ((seed >> 16) % 4) {
			case 0:
				cp = 0x20 + (seed >> 8) % 95;
				break;
			case 1:
				cp = 0xa0 + (seed >> 4) % 0x700;
				break;
			case 2:
				cp = 0x3000 + (seed >> 4) % 0xa000;
				break;
			default:
				cp = 0x10000 + (seed >> 2) % 0xfffff;
				break;
			}
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = '&';
			n += put_utf8(in + n, cp);
		}
		if (mutf7_encode((char *)in, n, enc, sizeof(enc), &elen, err,
		    sizeof(err)) == -1)
			fail_msg("round %d encode: %s", round, err);
		for (i = 0; i < elen; i++)
			if (enc[i] < 0x20 || enc[i] > 0x7e)
				fail_msg("round %d: byte %zu not ASCII", round, i);
		assert_true(elen + 1 <= MUTF7_ENCODE_MAX(n));
		if (mutf7_decode(enc, elen, dec, sizeof(dec), &dlen, err,
		    sizeof(err)) == -1)
			fail_msg("round %d decode \"%s\": %s", round, enc, err);
		if (dlen != n || memcmp(dec, in, n) != 0)
			fail_msg("round %d: round trip differs", round);
		assert_true(utf8_valid(dec, dlen));
	}
}

static void
test_dup(void **state)
{
	char err[128], *s;

	(void)state;
	s = mutf7_encode_dup("Entwürfe", err, sizeof(err));
	assert_non_null(s);
	assert_string_equal(s, "Entw&APw-rfe");
	free(s);
	s = mutf7_decode_dup("&AMk-l&AOk-ments envoy&AOk-s", err, sizeof(err));
	assert_non_null(s);
	assert_string_equal(s, "Éléments envoyés");
	free(s);
	assert_null(mutf7_decode_dup("&AGE-", err, sizeof(err)));
	assert_null(mutf7_encode_dup("\xff", err, sizeof(err)));
	assert_true(utf8_valid("Entwürfe", strlen("Entwürfe")));
	assert_false(utf8_valid("\xc0\xaf", 2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pairs),
		cmocka_unit_test(test_decode_invalid),
		cmocka_unit_test(test_encode_invalid),
		cmocka_unit_test(test_buffer_limits),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_dup),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
