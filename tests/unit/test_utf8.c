/*
 * test_utf8.c - common/utf8.c against the classic edge cases: the first
 * and last code point of every sequence length, overlong forms of "/"
 * and of NUL, the bounds of each lead byte, UTF-16 surrogates alone and
 * paired, U+10FFFF and past it, stray continuation bytes, sequences cut
 * short (also at the end of the input), and utf8_next()'s code points.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "utf8.h"

#define S(s)	s, sizeof(s) - 1

static const struct {
	const char	*s;
	size_t		 len;
	int		 valid;
	uint32_t	 cp;	/* first code point when valid */
} cases[] = {
	{ S(""), 1, 0 },
	{ S("a"), 1, 'a' },
	{ S("\0"), 1, 0 },				/* NUL is a character */
	{ S("\x7f"), 1, 0x7f },
	{ S("\xc2\x80"), 1, 0x80 },			/* first 2-byte */
	{ S("\xdf\xbf"), 1, 0x7ff },			/* last 2-byte */
	{ S("\xe0\xa0\x80"), 1, 0x800 },		/* first 3-byte */
	{ S("\xef\xbf\xbf"), 1, 0xffff },		/* last 3-byte */
	{ S("\xf0\x90\x80\x80"), 1, 0x10000 },		/* first 4-byte */
	{ S("\xf4\x8f\xbf\xbf"), 1, 0x10ffff },		/* U+10FFFF */
	{ S("\xed\x9f\xbf"), 1, 0xd7ff },		/* below surrogates */
	{ S("\xee\x80\x80"), 1, 0xe000 },		/* above surrogates */
	{ S("\xef\xbf\xbe"), 1, 0xfffe },		/* a noncharacter: ok */
	{ S("Entw\xc3\xbcrfe"), 1, 'E' },
	{ S("\xe2\x82\xac" "1"), 1, 0x20ac },
	/* overlong */
	{ S("\xc0\xaf"), 0, 0 },			/* "/" in 2 bytes */
	{ S("\xe0\x80\xaf"), 0, 0 },			/* ... in 3 */
	{ S("\xf0\x80\x80\xaf"), 0, 0 },		/* ... in 4 */
	{ S("\xc0\x80"), 0, 0 },			/* NUL in 2 bytes */
	{ S("\xc1\xbf"), 0, 0 },			/* largest overlong 2 */
	{ S("\xe0\x9f\xbf"), 0, 0 },			/* largest overlong 3 */
	{ S("\xf0\x8f\xbf\xbf"), 0, 0 },		/* largest overlong 4 */
	/* surrogates */
	{ S("\xed\xa0\x80"), 0, 0 },			/* U+D800 */
	{ S("\xed\xbf\xbf"), 0, 0 },			/* U+DFFF */
	{ S("\xed\xa0\xbd\xed\xb2\xa9"), 0, 0 },	/* a CESU-8 pair */
	/* beyond U+10FFFF, and bytes that never appear */
	{ S("\xf4\x90\x80\x80"), 0, 0 },		/* U+110000 */
	{ S("\xf5\x80\x80\x80"), 0, 0 },
	{ S("\xf8\x88\x80\x80\x80"), 0, 0 },		/* old 5-byte form */
	{ S("\xfc\x84\x80\x80\x80\x80"), 0, 0 },	/* old 6-byte form */
	{ S("\xfe"), 0, 0 },
	{ S("\xff"), 0, 0 },
	/* continuation bytes out of place */
	{ S("\x80"), 0, 0 },
	{ S("\xbf"), 0, 0 },
	{ S("a\x80"), 0, 0 },
	{ S("\xc3\xbc\xbc"), 0, 0 },			/* one too many */
	/* cut short */
	{ S("\xc3"), 0, 0 },
	{ S("\xe2\x82"), 0, 0 },
	{ S("\xf0\x9f\x98"), 0, 0 },
	{ S("\xe2\x82" "a"), 0, 0 },			/* ASCII mid-sequence */
	{ S("\xc3" "\xc3\xbc"), 0, 0 },			/* new lead mid-way */
	{ S("ok\xf0\x9f"), 0, 0 },			/* cut at the end */
};

static void
test_valid(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (utf8_valid(cases[i].s, cases[i].len) != cases[i].valid)
			fail_msg("case %zu: valid %d, want %d", i,
			    !cases[i].valid, cases[i].valid);
}

static void
test_next(void **state)
{
	size_t i, at;
	uint32_t cp;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].len == 0)
			continue;
		at = 0;
		cp = utf8_next(cases[i].s, cases[i].len, &at);
		if (cases[i].valid) {
			if (cp != cases[i].cp || at == 0 || at > 4)
				fail_msg("case %zu: U+%04X at %zu", i,
				    (unsigned)cp, at);
		} else if (cp == UTF8_INVALID && at != 0)
			fail_msg("case %zu: moved on failure", i);
	}
	/* a walk over a mixed string, every length once */
	{
		static const char s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
		static const uint32_t want[] = { 'a', 0xe9, 0x20ac, 0x1f600 };
		size_t k = 0;

		at = 0;
		while (at < sizeof(s) - 1) {
			assert_true(k < 4);
			assert_int_equal(utf8_next(s, sizeof(s) - 1, &at),
			    want[k]);
			k++;
		}
		assert_int_equal(k, 4);
		assert_int_equal(at, sizeof(s) - 1);
	}
}

/* Every 2-byte lead against every second byte: exactly C2..DF x 80..BF. */
static void
test_two_byte_grid(void **state)
{
	unsigned a, b;
	unsigned char s[2];

	(void)state;
	for (a = 0x80; a <= 0xff; a++)
		for (b = 0; b <= 0xff; b++) {
			int want = a >= 0xc2 && a <= 0xdf && b >= 0x80 &&
			    b <= 0xbf;

			s[0] = (unsigned char)a;
			s[1] = (unsigned char)b;
			if (utf8_valid(s, 2) != want)
				fail_msg("%02x %02x: want %d", a, b, want);
		}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_next),
		cmocka_unit_test(test_two_byte_grid),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
