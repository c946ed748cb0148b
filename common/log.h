/*
 * log.h - one line per event, to syslog or stderr.
 *
 * Lines are Postfix-like: "QUEUEID: key=value key=value".  The logger
 * escapes control characters in the formatted line, so a value taken
 * from the network can never start a second line.  It is the caller's
 * duty to never pass a password or a message body; no function here
 * takes one.
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdio.h>

enum log_level {
	LOG_LVL_DEBUG = 0,
	LOG_LVL_INFO,
	LOG_LVL_NOTICE,
	LOG_LVL_WARNING,
	LOG_LVL_ERROR,
};

enum log_dest {
	LOG_DEST_STDERR = 0,
	LOG_DEST_SYSLOG,
	LOG_DEST_STREAM,	/* an arbitrary FILE *, for tests */
};

#define LOG_LINE_MAX	2048

void	log_open(const char *ident, enum log_dest dest, int facility,
	    enum log_level min_level);
void	log_set_stream(FILE *fp);
void	log_set_level(enum log_level min_level);
void	log_reopen(void);
void	log_close(void);

void	log_msg(enum log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_errno(enum log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	log_fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

const char *log_level_name(enum log_level level);

/* A live status line kept below the log lines on a terminal (stderr):
 * text replaces it, NULL erases it; thread-safe (see log.c). */
void	log_status(const char *text);

#define log_debug(...)	 log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...)	 log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_notice(...)	 log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_warnx(...)	 log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_warn(...)	 log_errno(LOG_LVL_WARNING, __VA_ARGS__)
#define log_errorx(...)	 log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif
