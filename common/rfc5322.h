/*
 * rfc5322.h - the date-time of RFC 5322 §3.3 as mail headers carry it
 * ("Date:", the DSN's Arrival-Date, the relay's "Received:" stamp):
 *   "Mon, 23 Nov 2026 10:13:24 +0100"
 *
 * Written without strftime(): its %a, %b and %z follow LC_TIME, and a
 * header must be English and the same under any locale the daemon was
 * started with.  Day and month names are the RFC's, the day is two
 * digits, the zone is always numeric (never "GMT" or "CET").
 *
 * Pure functions: no allocation; they call localtime_r()/gmtime_r(), so
 * they are thread-safe as far as the C library's time zone state is.
 */
#ifndef FERRY_RFC5322_H
#define FERRY_RFC5322_H

#include <stddef.h>
#include <time.h>

/* Enough for any date these functions write, NUL included. */
#define RFC5322_DATE_MAX	40

/*
 * rfc5322_date - t in local time with its numeric offset from UTC.
 * rfc5322_date_utc - t in UTC, zone "+0000".
 * Both write at most len - 1 bytes and a NUL (len > 0) and return 0, or
 * -1 when the output did not fit or t cannot be broken down (the fields
 * are then written as zeros, as every caller wants some line).
 */
int	rfc5322_date(time_t t, char *buf, size_t len);
int	rfc5322_date_utc(time_t t, char *buf, size_t len);

#endif
