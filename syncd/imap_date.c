/*
 * imap_date.c - IMAP date-time text to time and back (see imap_date.h).
 *
 * The calendar is the C library's: timegm() turns the broken-down UTC
 * time into seconds, gmtime_r() the other way.  A date is valid when
 * timegm() leaves its day, month and year as they were (it normalises
 * 31-Apr to 1-May); the seconds are added after the conversion so that
 * a leap second (":60", which RFC 3501 allows) does not roll the date.
 *
 * SECURITY: the text comes from the IMAP server (INTERNALDATE) or from
 * our own state; every field is a fixed number of digits, checked
 * before use; no locale is involved (month names are a table, not
 * strptime/strftime).
 *
 * Threading: pure functions, thread-safe.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap_date.h"

_Static_assert(sizeof(time_t) >= 8, "time_t must hold years up to 9999");

static const char months[12][4] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* Seconds since the epoch of 01-Jan-0001 00:00:00 and 31-Dec-9999
 * 23:59:59 UTC: what gmtime_r() is asked to convert (the year shown
 * must then still have four digits). */
#define T_MIN	(-INT64_C(62135596800))
#define T_MAX	INT64_C(253402300799)
#define TZ_MAX	(23 * 60 + 59)

/* digits - exactly n digits at *sp into *v_r */
static int
digits(const char **sp, int n, unsigned *v_r)
{
	unsigned v = 0;
	int k;

	for (k = 0; k < n; k++) {
		if ((*sp)[k] < '0' || (*sp)[k] > '9')
			return (-1);
		v = v * 10 + (unsigned)((*sp)[k] - '0');
	}
	*sp += n;
	*v_r = v;
	return (0);
}

/* utc_midnight - seconds of day/mon/year 00:00:00 UTC; -1 if no date */
static int
utc_midnight(unsigned day, unsigned mon, unsigned year, int64_t *t_r)
{
	struct tm tm;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	tm.tm_mday = (int)day;
	tm.tm_mon = (int)mon - 1;
	tm.tm_year = (int)year - 1900;
	t = timegm(&tm);
	/* timegm normalises: a day the month lacks moves the date */
	if (tm.tm_mday != (int)day || tm.tm_mon != (int)mon - 1 ||
	    tm.tm_year != (int)year - 1900)
		return (-1);
	*t_r = (int64_t)t;
	return (0);
}

int
imap_parse_date_time(const char *s, int64_t *t_r, int *tzmin_r)
{
	unsigned day, mon, year, hh, mm, ss, zh, zm;
	int64_t midnight;
	int sign, k;

	if (*s == ' ')
		s++;
	if (s[0] < '0' || s[0] > '9')
		return (-1);
	if (digits(&s, s[1] >= '0' && s[1] <= '9' ? 2 : 1, &day) == -1 ||
	    *s++ != '-')
		return (-1);
	for (k = 0; k < 12; k++)
		if (strncasecmp(s, months[k], 3) == 0)
			break;
	if (k == 12)
		return (-1);
	mon = (unsigned)k + 1;
	s += 3;
	if (*s++ != '-' || digits(&s, 4, &year) == -1 || *s++ != ' ' ||
	    digits(&s, 2, &hh) == -1 || *s++ != ':' ||
	    digits(&s, 2, &mm) == -1 || *s++ != ':' ||
	    digits(&s, 2, &ss) == -1 || *s++ != ' ')
		return (-1);
	if (*s != '+' && *s != '-')
		return (-1);
	sign = *s++ == '-' ? -1 : 1;
	if (digits(&s, 2, &zh) == -1 || digits(&s, 2, &zm) == -1 || *s != '\0')
		return (-1);
	if (year < 1000 || day < 1 || hh > 23 || mm > 59 || ss > 60 ||
	    zh > 23 || zm > 59)
		return (-1);
	if (utc_midnight(day, mon, year, &midnight) == -1)
		return (-1);
	*tzmin_r = sign * (int)(zh * 60 + zm);
	*t_r = midnight + (int64_t)(hh * 3600 + mm * 60 + ss) -
	    (int64_t)*tzmin_r * 60;
	return (0);
}

int
imap_parse_format_date_time(int64_t t, int tzmin, char *buf, size_t len)
{
	struct tm tm;
	time_t local;
	unsigned az;
	int n;

	if (tzmin < -TZ_MAX || tzmin > TZ_MAX || t < T_MIN || t > T_MAX)
		return (-1);
	local = (time_t)(t + (int64_t)tzmin * 60);
	if (gmtime_r(&local, &tm) == NULL || tm.tm_year + 1900 < 1000 ||
	    tm.tm_year + 1900 > 9999)
		return (-1);
	az = (unsigned)(tzmin < 0 ? -tzmin : tzmin);
	n = snprintf(buf, len, "%02d-%s-%04d %02d:%02d:%02d %c%02u%02u",
	    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, tzmin < 0 ? '-' : '+', az / 60, az % 60);
	if (n < 0 || (size_t)n >= len)
		return (-1);
	return (0);
}
