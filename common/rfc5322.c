/*
 * rfc5322.c - locale-proof RFC 5322 date-times (see rfc5322.h).
 *
 * Threading: no state of its own; see rfc5322.h.
 */

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rfc5322.h"

/* date_write - t in UTC or in local time, as the RFC's date-time */
static int
date_write(time_t t, int utc, char *buf, size_t len)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
		"Oct", "Nov", "Dec" };
	struct tm tm;
	long gmtoff = 0, off;
	int ok = 1, n;

	if ((utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)) == NULL) {
		memset(&tm, 0, sizeof(tm));
		ok = 0;
	} else if (!utc)
		gmtoff = tm.tm_gmtoff;
	off = (gmtoff < 0 ? -gmtoff : gmtoff) / 60;	/* as strftime's %z */
	n = snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	    days[(unsigned)tm.tm_wday % 7], tm.tm_mday,
	    months[(unsigned)tm.tm_mon % 12], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, gmtoff < 0 ? '-' : '+',
	    off / 60, off % 60);
	if (!ok || n < 0 || (size_t)n >= len)
		return (-1);
	return (0);
}

int
rfc5322_date(time_t t, char *buf, size_t len)
{
	return (date_write(t, 0, buf, len));
}

int
rfc5322_date_utc(time_t t, char *buf, size_t len)
{
	return (date_write(t, 1, buf, len));
}
