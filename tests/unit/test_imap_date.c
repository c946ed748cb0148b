/*
 * test_imap_date.c - syncd/imap_date: IMAP date-time text to time and
 * back.  Table-driven; every failure names the row.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "imap_date.h"

#define N(a)	(sizeof(a) / sizeof((a)[0]))

/* Valid date-times, their time, zone and canonical form. */
static const struct {
	const char	*in;
	int64_t		 t;
	int		 tz;
	const char	*canon;
} good[] = {
	{ "17-Jul-1996 02:44:25 -0700", 837596665, -420,
	    "17-Jul-1996 02:44:25 -0700" },
	{ "01-Jan-1970 00:00:00 +0000", 0, 0, "01-Jan-1970 00:00:00 +0000" },
	/* India and the US west coast */
	{ "01-Jan-1970 05:30:00 +0530", 0, 330, "01-Jan-1970 05:30:00 +0530" },
	{ "31-Dec-1969 16:00:00 -0800", 0, -480, "31-Dec-1969 16:00:00 -0800" },
	{ "15-Mar-2024 09:15:00 +0530", 1710474300, 330,
	    "15-Mar-2024 09:15:00 +0530" },
	{ "14-Mar-2024 19:45:00 -0800", 1710474300, -480,
	    "14-Mar-2024 19:45:00 -0800" },
	/* day as " 7" and "7", month in any case */
	{ " 7-Jul-1996 02:44:25 +0000", 836707465, 0,
	    "07-Jul-1996 02:44:25 +0000" },
	{ "7-jUL-1996 02:44:25 +0000", 836707465, 0,
	    "07-Jul-1996 02:44:25 +0000" },
	/* leap days, the end of a year across a zone */
	{ "29-Feb-2024 23:59:59 +0530", 1709231399, 330,
	    "29-Feb-2024 23:59:59 +0530" },
	{ "29-Feb-2000 12:00:00 +0000", 951825600, 0,
	    "29-Feb-2000 12:00:00 +0000" },
	{ "31-Dec-1969 23:00:00 -0100", 0, -60, "31-Dec-1969 23:00:00 -0100" },
	{ "01-Jan-2000 01:00:00 +2359", 946602060, 1439,
	    "01-Jan-2000 01:00:00 +2359" },
	/* before the epoch, the ends of the four-digit years */
	{ "01-Jan-1900 00:00:00 +0000", -2208988800, 0,
	    "01-Jan-1900 00:00:00 +0000" },
	{ "01-Jan-1000 00:00:00 +0000", -30610224000, 0,
	    "01-Jan-1000 00:00:00 +0000" },
	{ "31-Dec-9999 23:59:59 +0000", 253402300799, 0,
	    "31-Dec-9999 23:59:59 +0000" },
	/* a leap second counts as the next second; shown as such */
	{ "31-Dec-2016 23:59:60 +0000", 1483228800, 0,
	    "01-Jan-2017 00:00:00 +0000" },
};

/* Text that is no date-time. */
static const char *const bad[] = {
	"29-Feb-2023 00:00:00 +0000",	/* not a leap year */
	"29-Feb-1900 00:00:00 +0000",	/* nor is 1900 */
	"31-Apr-2020 00:00:00 +0000",	/* April has 30 days */
	"32-Jan-2020 00:00:00 +0000",
	"00-Jan-2020 00:00:00 +0000",
	"01-Foo-2020 00:00:00 +0000",
	"01-Jan-0999 00:00:00 +0000",	/* three-digit year */
	"01-Jan-2020 24:00:00 +0000",
	"01-Jan-2020 00:60:00 +0000",
	"01-Jan-2020 00:00:61 +0000",
	"01-Jan-2020 00:00:00 +0060",
	"01-Jan-2020 00:00:00 +2400",
	"01-Jan-2020 00:00:00 0000",
	"01-Jan-2020 00:00:00 +0000 ",
	"01-Jan-20 00:00:00 +0000",
	"01-Jan-2020 0:00:00 +0000",
	"01-Jan-2020T00:00:00 +0000",
	"2020-01-01 00:00:00 +0000",
	"",
	"01-Jan-2020 00:00:00 +000\r",
	"123-Jan-2020 00:00:00 +0000",
};

static void
test_parse_good(void **state)
{
	int64_t t;
	size_t i;
	int tz;

	(void)state;
	for (i = 0; i < N(good); i++) {
		if (imap_parse_date_time(good[i].in, &t, &tz) != 0)
			fail_msg("good %zu \"%s\": refused", i, good[i].in);
		if (t != good[i].t || tz != good[i].tz)
			fail_msg("good %zu: t=%lld tz=%d", i, (long long)t, tz);
	}
}

static void
test_format_good(void **state)
{
	char buf[IMAP_DATE_TIME_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < N(good); i++) {
		if (imap_parse_format_date_time(good[i].t, good[i].tz, buf,
		    sizeof(buf)) != 0)
			fail_msg("good %zu: not formatted", i);
		if (strcmp(buf, good[i].canon) != 0)
			fail_msg("good %zu: \"%s\"", i, buf);
	}
}

/* parse(format(t, tz)) == (t, tz) over a spread of times and zones */
static void
test_round_trip(void **state)
{
	static const int zones[] = { 0, 330, -480, 345, -210, 1439, -1439, 60 };
	char buf[IMAP_DATE_TIME_MAX];
	int64_t t, back;
	size_t z;
	int tz, n = 0;

	(void)state;
	for (t = -30610224000 + 86400; t < 253402300799 - 86400;
	    t += 7777777 + n++) {
		for (z = 0; z < N(zones); z++) {
			if (imap_parse_format_date_time(t, zones[z], buf,
			    sizeof(buf)) != 0)
				fail_msg("t=%lld tz=%d: not formatted",
				    (long long)t, zones[z]);
			if (imap_parse_date_time(buf, &back, &tz) != 0 ||
			    back != t || tz != zones[z])
				fail_msg("t=%lld tz=%d: \"%s\" read back as "
				    "%lld %d", (long long)t, zones[z], buf,
				    (long long)back, tz);
		}
	}
}

static void
test_parse_bad(void **state)
{
	int64_t t = 7;
	size_t i;
	int tz = 7;

	(void)state;
	for (i = 0; i < N(bad); i++)
		if (imap_parse_date_time(bad[i], &t, &tz) != -1)
			fail_msg("bad %zu \"%s\": accepted", i, bad[i]);
}

static void
test_format_bad(void **state)
{
	char buf[IMAP_DATE_TIME_MAX];

	(void)state;
	/* buffer one byte short */
	assert_int_equal(imap_parse_format_date_time(0, 0, buf,
	    IMAP_DATE_TIME_MAX - 1), -1);
	/* zones past +-23:59 */
	assert_int_equal(imap_parse_format_date_time(0, 24 * 60, buf,
	    sizeof(buf)), -1);
	assert_int_equal(imap_parse_format_date_time(0, -24 * 60, buf,
	    sizeof(buf)), -1);
	/* years without four digits */
	assert_int_equal(imap_parse_format_date_time(-30610224001, 0, buf,
	    sizeof(buf)), -1);
	assert_int_equal(imap_parse_format_date_time(253402300800, 0, buf,
	    sizeof(buf)), -1);
	assert_int_equal(imap_parse_format_date_time(INT64_MIN, 0, buf,
	    sizeof(buf)), -1);
	assert_int_equal(imap_parse_format_date_time(INT64_MAX, 0, buf,
	    sizeof(buf)), -1);
	/* 9999's last second seen from a zone west of UTC is still 9999 */
	assert_int_equal(imap_parse_format_date_time(253402300799, -480, buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "31-Dec-9999 15:59:59 -0800");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_format_good),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_format_bad),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
