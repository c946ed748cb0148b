/*
 * imap_date.h - the IMAP date-time of INTERNALDATE and APPEND
 * ("17-Jul-1996 02:44:25 -0700", RFC 3501 §9 date-time): text to
 * seconds since the epoch and back.  Pure functions, no state.
 */
#ifndef FERRY_IMAP_DATE_H
#define FERRY_IMAP_DATE_H

#include <stddef.h>
#include <stdint.h>

/*
 * imap_parse_date_time - an IMAP date-time "17-Jul-1996 02:44:25 -0700"
 * (the day may be " 7" or "7") to seconds since the epoch (UTC) and the
 * zone offset in minutes.  Returns 0, or -1 when the text is not one
 * (including dates that do not exist, like 29-Feb-2023, and years
 * before 1000).
 */
int	 imap_parse_date_time(const char *s, int64_t *t_r, int *tzmin_r);

/*
 * imap_parse_format_date_time - the canonical date-time for t shown in
 * zone tzmin ("17-Jul-1996 02:44:25 -0700") in buf (at least 27 bytes).
 * Returns 0, or -1 when buf is too small, tzmin out of range or the
 * year outside 1000..9999.
 */
#define IMAP_DATE_TIME_MAX	27
int	 imap_parse_format_date_time(int64_t t, int tzmin, char *buf,
	    size_t len);

#endif
