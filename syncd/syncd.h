/*
 * syncd.h - the ferry-syncd process: what main.c sets up, what one pass
 * publishes while it runs (pass.c), and the daemon's schedule of passes
 * on its event loop (scheduler.c).
 *
 * Ownership: struct syncd owns the configuration, the accounts, the
 * folder rules, the store, the TLS contexts, the last pass's report and
 * progress; syncd_free() releases them all.
 *
 * Threading: in the daemon a pass runs on its own thread
 * (scheduler.c); while it runs, that thread alone touches the pass
 * fields below ("pass.c"), and the loop thread touches them only when no
 * pass runs.  stop is set by the loop (SIGTERM) and polled by the engine.
 */
#ifndef FERRY_SYNCD_H
#define FERRY_SYNCD_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

#include "accounts.h"
#include "config.h"
#include "daemon.h"
#include "folders.h"
#include "report.h"
#include "store.h"
#include "sync.h"

struct event;
struct event_base;
struct cutover;
struct wakeup;
struct syncd_http;

struct syncd_last_pass {
	int		 have;
	time_t		 finished;
	int		 complete;
	char		 verdict[512];
	uint64_t	 copied, failed;
	uint64_t	 dst_skipped;	/* accounts whose destination the
					   pass left unchecked */
};

#define SYNCD_LIVE	0x01
#define SYNCD_ROLLBACK	0x02

struct syncd {
	/* main.c */
	struct config	 cfg;
	struct accounts	*accounts;
	struct folder_rules *rules;
	struct store	*store;		/* NULL: dry run without state */
	SSL_CTX		*src_ctx, *dst_ctx;
	const char	*only;		/* --account, or NULL */
	unsigned	 only_wave;	/* --wave N, or 0 */
	int		 once, dry_run, json, foreground;
	const char	*mode;		/* "once" or "daemon" */
	int		 reverse;	/* --reverse: one reverse pass */
	int64_t		 since;		/* --since, unix time; -1: not
					   given (the switch time) */
	struct sync_pass_opts o;
	volatile sig_atomic_t stop;

	/* pass.c */
	unsigned	 pass_number;
	time_t		 pass_started;
	double		 pass_t0;
	struct sync_progress *pr;	/* this pass's, or the last one's */
	struct report	*report;	/* the last finished pass's */
	int		 in_pass;
	struct syncd_last_pass last;
	time_t		 last_meta, last_log;
	int		 tty, tty_drawn;
	int		 pr_lent;	/* metrics_pass_attach() done */

	/* scheduler.c */
	struct event_base *base;
	struct daemon	 d;
	struct cutover	*cutover;	/* NULL: no [cutover] domains */
	struct syncd_http *http;	/* NULL: [syncd] http empty */
	unsigned char	*live;		/* per account: cutover_dest_live()
					   (SYNCD_LIVE) and cutover_in_
					   rollback() (SYNCD_ROLLBACK) when
					   the running pass started */
	pthread_t	 thread;
	int		 running;	/* a pass thread exists */
	int		 wanted;	/* a pass was asked for meanwhile */
	char		 why[160];	/* ... and why */
	char		 why_run[160];	/* why the running pass runs */
	struct wakeup	*wake;		/* pass thread -> loop: "done" */
	struct event	*ev_next, *ev_idle;
	struct config	*reload;	/* a HUP's configuration, applied
					   when no pass runs */
};

/* pass.c: one pass; 0 nothing missing, 1 missing, -1 error */
int	syncd_pass_run(struct syncd *sd, const char *why);
void	syncd_progress_store(struct syncd *sd, int running);
/* pass_record.c: each account's pass history entry (pass_history.h) */
struct report;
void	syncd_pass_record(struct syncd *sd, const struct report *r,
	    time_t started, time_t finished);
void	syncd_pass_free(struct syncd *sd);

/* scheduler.c: the daemon's loop until SIGTERM; 0 or EXIT_RUNTIME */
int	syncd_daemon_run(struct syncd *sd);

#endif
