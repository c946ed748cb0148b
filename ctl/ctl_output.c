/*
 * ctl_output.c - what ferryctl's tables and JSON are printed with:
 * strings made safe for a terminal, ages, sizes, local times, and a
 * finished JSON document.
 *
 * SECURITY: clean() is the one way a string that came from the network
 * (addresses, replies, headers, the daemons' documents) reaches a table:
 * control characters become \xNN, so nothing can drive the admin's
 * terminal.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "util.h"
#include "ctl.h"

/* ---- output helpers ----------------------------------------------------- */

/*
 * clean - s made safe for a terminal into buf: printable ASCII kept,
 * everything else \xNN; cut to width characters with "..." when longer
 * (width 0: no limit but buf's size).
 */
const char *
clean(char *buf, size_t len, const char *s, size_t width)
{
	size_t n;

	if (s == NULL)
		s = "";
	n = str_printable(buf, len, s, strlen(s));
	if (width > 3 && n > width) {
		/* str_printable may have cut inside an escape: fine, we cut
		 * before it anyway. */
		buf[width - 3] = '\0';
		strcat(buf, "...");
	}
	return (buf);
}

/* fmt_size - "812", "4.1K", "12M" */
const char *
fmt_size(char *buf, size_t len, uint64_t n)
{
	if (n < 1024)
		snprintf(buf, len, "%" PRIu64, n);
	else if (n < 10 * 1024)
		snprintf(buf, len, "%.1fK", (double)n / 1024);
	else if (n < 1024 * 1024)
		snprintf(buf, len, "%" PRIu64 "K", n / 1024);
	else if (n < 10 * 1024 * 1024)
		snprintf(buf, len, "%.1fM", (double)n / (1024 * 1024));
	else
		snprintf(buf, len, "%" PRIu64 "M", n / (1024 * 1024));
	return (buf);
}

/* fmt_time - local time as "2024-05-01 12:34:56" */
const char *
fmt_time(char *buf, size_t len, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "-");
	return (buf);
}

/* json_print - print a finished document and a newline; -1 if none */
int
json_print(struct json *j)
{
	const char *doc;
	size_t len;

	if ((doc = json_finish(j, &len)) == NULL) {
		fprintf(stderr, "ferryctl: out of memory\n");
		json_clear(j);
		return (-1);
	}
	fwrite(doc, 1, len, stdout);
	fputc('\n', stdout);
	json_clear(j);
	return (0);
}
