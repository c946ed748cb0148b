/*
 * ctl.h - ferryctl's private interface: what the command files share.
 *
 *   ferryctl.c     options, the command table, main()
 *   ctl_output.c   terminal-safe text, ages, sizes, times, JSON printing
 *   ctl_socket.c   one request and its reply over the relay's control
 *                  socket
 *   ctl_queue.c    queue, show (LMDB and the spool, read-only) and
 *                  retry/hold/release/delete (through the relay)
 *   ctl_views.c    stats, drain, sync: the daemons' JSON documents
 *                  shown as tables
 *   ctl_status.c   status: the cutover per domain
 *   ctl_wave.c     wave: the staged waves (list, migrate, pending)
 *   ctl_report*.c  report: the acceptance report (ctl_report_p.h)
 *   ctl_preflight*.c  preflight: the checklist before a cutover
 *                  (ctl_preflight_p.h)
 *
 * Every cmd_* prints its result (a table, or JSON with ctl->json) and
 * its errors, and returns the exit status: 0, EXIT_RUNTIME or
 * EXIT_USAGE (cli.h).  Nothing here is used outside ctl/.
 */
#ifndef FERRY_CTL_H
#define FERRY_CTL_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "config.h"
#include "json.h"
#include "queue_record.h"

/* What every command gets. */
struct ctl {
	struct config	cfg;
	int		json;
	const char	*account;	/* --account USER (preflight, report) */
	const char	*format;	/* --format (report) */
	const char	*output;	/* -o FILE (report) */
	int		timeout;	/* --timeout SECS (preflight), 0 = 10 */
	const char	*wave_args[2];	/* wave N migrate|pending */
	int		nwave_args;	/* 0 (list) or 2 */
};

/* ctl_output.c */
const char	*clean(char *buf, size_t len, const char *s, size_t width);
const char	*fmt_size(char *buf, size_t len, uint64_t n);
const char	*fmt_time(char *buf, size_t len, int64_t t);
int		 json_print(struct json *j);

/* ctl_socket.c */
int	ctl_request_opt(const struct ctl *ctl, const char *req, char **reply_r,
	    int quiet);
int	ctl_request(const struct ctl *ctl, const char *req, char **reply_r);
int	reply_split(char *reply, char **text_r);
/*
 * ctl_show_reply - how ferryctl shows the relay's answer to a command
 * (rc and text from reply_split): with --json one object {"ok", the
 * caller's fields (fields(j, arg), may be NULL), "result" or "error"};
 * else the text on stdout, or "ferryctl: WHAT: text" on stderr.
 */
void	ctl_show_reply(const struct ctl *ctl, const char *what, int rc,
	    const char *text, void (*fields)(struct json *, const void *),
	    const void *arg);

/* ctl_queue.c: the records of one read, in key (= arrival) order. */
struct qlist {
	struct queue_record	*recs;
	size_t			 n;
	size_t			 alloc;
	size_t			 unreadable;
	const char		*want;	/* show: only this id */
};

int	valid_id(const char *s);
void	qlist_clear(struct qlist *l);
int	queue_read(const struct ctl *ctl, struct qlist *l);
int	cmd_queue(struct ctl *ctl, const char *arg);
int	cmd_show(struct ctl *ctl, const char *id);
int	cmd_action(struct ctl *ctl, const char *cmd, const char *arg);

/* ctl_views.c */
int	cmd_stats(struct ctl *ctl, const char *arg);
int	cmd_drain(struct ctl *ctl, const char *arg);
int	cmd_sync(struct ctl *ctl, const char *arg);

/* ctl_status.c */
int	cmd_status(struct ctl *ctl, const char *arg);

/* ctl_wave.c: the waves of the accounts file and their routing state. */
struct accounts;
struct route_wave;
struct ctl_waves {
	const char		*path;	/* the accounts file, NULL: none */
	struct accounts		*acc;
	struct route_wave	*state;	/* [1..ROUTE_WAVE_MAX] */
	size_t			*count;	/* accounts per wave, same index */
	unsigned		 n;	/* waves with accounts */
	int			 error;	/* the accounts file did not load */
};
int	ctl_waves_load(const struct ctl *ctl, struct ctl_waves *wv, int quiet);
void	ctl_waves_clear(struct ctl_waves *wv);
void	ctl_waves_json(struct json *j, void *wv);
int	ctl_waves_text(FILE *fp, const struct ctl_waves *wv);
int	cmd_wave(struct ctl *ctl, const char *arg);

/* ctl_report.c: the acceptance report (ctl_report_p.h) */
int	cmd_report(struct ctl *ctl, const char *arg);

/* ctl_preflight.c */
int	cmd_preflight(struct ctl *ctl, const char *arg);

#endif
