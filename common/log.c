/*
 * log.c - the process-wide logger (see log.h).
 *
 * SECURITY: log lines carry peer-supplied text (addresses, HELO names,
 * replies); control characters are escaped here, once, for every caller.
 * Threading: log_msg() may be called from worker threads; each line is
 * written with a single write or syslog() call, which the C library and
 * the kernel keep whole.
 *
 * The status line (log_status): a program that draws a live line on a
 * terminal (ferry-syncd --once) hands its text here rather than writing
 * it itself, so that a log line never lands on it: while one is shown,
 * each stderr line is written as "clear the line, the log line, the
 * status line again" in that same single write, under status_mu, which
 * also orders the status line's own redraws against log lines.
 */

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* The logger's state: set once at start-up by log_open(). */
static struct {
	char		ident[64];
	enum log_dest	dest;
	int		facility;
	enum log_level	min_level;
	FILE	       *stream;		/* LOG_DEST_STREAM only; not owned */
} logger = { "mailferry", LOG_DEST_STDERR, LOG_MAIL, LOG_LVL_INFO, NULL };

/* The status line; guarded by status_mu. */
#define STATUS_CLEAR	"\r\033[K"	/* to column 0, erase the line */
static pthread_mutex_t status_mu = PTHREAD_MUTEX_INITIALIZER;
static char status_text[512];
static int status_shown;

static const char *level_names[] = {
	"debug", "info", "notice", "warning", "error",
};

/* log_level_name - the word printed in stderr lines */
const char *
log_level_name(enum log_level level)
{
	if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
		return ("?");
	return (level_names[level]);
}

/* log_open - choose the destination; may be called again to switch */
void
log_open(const char *ident, enum log_dest dest, int facility,
    enum log_level min_level)
{
	if (logger.dest == LOG_DEST_SYSLOG)
		closelog();
	str_copy(logger.ident, ident, sizeof(logger.ident));
	logger.dest = dest;
	logger.facility = facility;
	logger.min_level = min_level;
	if (dest == LOG_DEST_SYSLOG)
		openlog(logger.ident, LOG_PID | LOG_NDELAY, facility);
}

/* log_set_stream - send lines to fp (tests); fp stays the caller's */
void
log_set_stream(FILE *fp)
{
	logger.stream = fp;
	logger.dest = LOG_DEST_STREAM;
}

void
log_set_level(enum log_level min_level)
{
	logger.min_level = min_level;
}

/* log_reopen - after SIGHUP: reconnect to syslog (log rotation) */
void
log_reopen(void)
{
	if (logger.dest == LOG_DEST_SYSLOG) {
		closelog();
		openlog(logger.ident, LOG_PID | LOG_NDELAY, logger.facility);
	}
}

void
log_close(void)
{
	if (logger.dest == LOG_DEST_SYSLOG)
		closelog();
	logger.dest = LOG_DEST_STDERR;
}

/* log_emit - escape and write one formatted line */
static void
log_emit(enum log_level level, const char *line)
{
	static const int prio[] = {
		LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR,
	};
	char safe[LOG_LINE_MAX * 2];
	char out[sizeof(safe) + 128];
	size_t i, o = 0;
	struct tm tm;
	time_t now;
	int n;

	/* Keep printable bytes and UTF-8; escape control characters. */
	for (i = 0; line[i] != '\0' && o + 5 < sizeof(safe); i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(safe + o, sizeof(safe) - o,
			    "\\x%02x", c);
		} else
			safe[o++] = (char)c;
	}
	safe[o] = '\0';

	switch (logger.dest) {
	case LOG_DEST_SYSLOG:
		syslog(logger.facility | prio[level], "%s", safe);
		return;
	case LOG_DEST_STREAM:
		if (logger.stream != NULL) {
			fprintf(logger.stream, "%s: %s: %s\n", logger.ident,
			    log_level_name(level), safe);
			fflush(logger.stream);
		}
		return;
	case LOG_DEST_STDERR:
		now = time(NULL);
		gmtime_r(&now, &tm);
		pthread_mutex_lock(&status_mu);
		n = snprintf(out, sizeof(out),
		    "%s%04d-%02d-%02dT%02d:%02d:%02dZ %s[%ld]: %s: %s\n%s",
		    status_shown ? STATUS_CLEAR : "",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, logger.ident, (long)getpid(),
		    log_level_name(level), safe,
		    status_shown ? status_text : "");
		if (n > 0) {
			size_t len = (size_t)n < sizeof(out) ? (size_t)n :
			    sizeof(out) - 1;
			ssize_t w = write(STDERR_FILENO, out, len);
			(void)w;	/* nowhere left to report it */
		}
		pthread_mutex_unlock(&status_mu);
		return;
	}
}

/*
 * log_status - show text as the status line on stderr (a terminal; the
 * caller checks), replacing the one shown; NULL erases it.  Control
 * characters in text are not escaped: it is the program's own.
 */
void
log_status(const char *text)
{
	char out[sizeof(status_text) + 16];
	int n;

	pthread_mutex_lock(&status_mu);
	if (text != NULL) {
		str_copy(status_text, text, sizeof(status_text));
		n = snprintf(out, sizeof(out), STATUS_CLEAR "%s", status_text);
		status_shown = 1;
	} else if (status_shown) {
		n = snprintf(out, sizeof(out), STATUS_CLEAR);
		status_shown = 0;
	} else
		n = 0;
	if (n > 0) {
		ssize_t w = write(STDERR_FILENO, out, (size_t)n < sizeof(out) ?
		    (size_t)n : sizeof(out) - 1);
		(void)w;
	}
	pthread_mutex_unlock(&status_mu);
}

static void
log_vmsg(enum log_level level, int with_errno, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int saved = errno;
	int n;

	if (level < logger.min_level)
		return;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if (with_errno && (size_t)n < sizeof(line))
		snprintf(line + n, sizeof(line) - (size_t)n, ": %s",
		    strerror(saved));
	log_emit(level, line);
	errno = saved;
}

/* log_msg - one event */
void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, 0, fmt, ap);
	va_end(ap);
}

/* log_errno - one event, with strerror(errno) appended */
void
log_errno(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, 1, fmt, ap);
	va_end(ap);
}

/* log_fatal - an unrecoverable error in the environment, with errno */
void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

/* log_fatalx - an unrecoverable error, without errno */
void
log_fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
