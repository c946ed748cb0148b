/*
 * metrics.h - ferry-syncd's counters for Prometheus: what the passes
 * copied, skipped and failed, how long passes and IMAP commands take,
 * reconnects, throttling and MX answers, and their text exposition
 * (format 0.0.4, prefix mailferry_syncd_, the relay's conventions).
 *
 * One process-wide set, because the events happen on every account and
 * worker thread of a pass and on the daemon's loop thread: each call
 * takes one mutex for a few additions and never blocks on I/O, so the
 * engine calls it once per event.  metrics_render() takes a consistent
 * snapshot under the same mutex (the HTTP listener, loop thread).
 *
 * The progress of the running pass (accounts by state, messages to copy
 * and done) is read from the pass's struct sync_progress, attached with
 * metrics_pass_begin() and detached with metrics_pass_end() before the
 * progress is freed: the mutex guards the pointer, the progress's own
 * mutex its counters (locked in that order).
 */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

#include <stdint.h>
#include <time.h>

struct evbuffer;
struct sync_progress;

/* The two IMAP servers ("server" label). */
enum metrics_server {
	METRICS_SOURCE = 0,
	METRICS_DESTINATION,
	METRICS_NSERVERS
};

/* Why a message was not copied as a duplicate ("reason" label). */
enum metrics_dup {
	METRICS_DUP_ALREADY = 0,	/* already on the destination
					   (matched by content) */
	METRICS_DUP_LEDGER,		/* the relay delivered it (ledger) */
	METRICS_NDUPS
};

/* Why copying a message failed ("reason" label). */
enum metrics_fail {
	METRICS_FAIL_REFUSED = 0,	/* the destination refused APPEND */
	METRICS_FAIL_SOURCE,		/* the source would not give it */
	METRICS_FAIL_TEMPORARY,		/* temporary failures, out of tries */
	METRICS_FAIL_OVER_QUOTA,	/* left: the destination is over quota */
	METRICS_FAIL_ALTERED,		/* the destination changed the copy */
	METRICS_NFAILS
};

/* What held the engine back ("reason" label). */
enum metrics_throttle {
	METRICS_THROTTLE_RATE = 0,	/* max_*_per_second */
	METRICS_THROTTLE_SERVER,	/* the server's suggested backoff */
	METRICS_NTHROTTLES
};

/* How a pass, or one account in it, ended ("result" label). */
enum metrics_result {
	METRICS_COMPLETE = 0,		/* nothing missing */
	METRICS_MISSING,		/* something is not on the destination */
	METRICS_ERROR,			/* could not run / could not log in */
	METRICS_NRESULTS
};

#define METRICS_PASS_BUCKETS \
	{ 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600, 86400 }
#define METRICS_PASS_NBUCKETS	11
#define METRICS_IMAP_BUCKETS \
	{ 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 }
#define METRICS_IMAP_NBUCKETS	12

/* metrics_start - the process started at now (uptime) */
void	metrics_start(time_t now);

/* Engine events (any thread). */
void	metrics_copied(uint64_t bytes);
void	metrics_duplicates(enum metrics_dup why, uint64_t n);
void	metrics_policy(uint64_t n);
void	metrics_dst_check_skipped(void);
void	metrics_failed(enum metrics_fail why);
void	metrics_reconnect(enum metrics_server s);
void	metrics_throttle(enum metrics_throttle why, double seconds);
void	metrics_imap_command(enum metrics_server s, double seconds);
/* imap_client_opts.timing with timing_arg = metrics_server_arg(s) */
void	metrics_imap_timing(void *arg, double seconds);
void	*metrics_server_arg(enum metrics_server s);

/* The MX watcher: one answer, class an enum cutover_class. */
void	metrics_mx_answer(int cls);

/*
 * A pass: begin marks it running; attach lends its progress once the
 * engine has initialised it (borrowed until metrics_pass_end, which must
 * come before the progress is freed, and keeps its final account states
 * and message counts); end counts the pass by result and duration.
 * metrics_account_result records one account's end (user copied; the
 * table grows to the accounts seen).
 */
void	metrics_pass_begin(time_t now);
void	metrics_pass_attach(struct sync_progress *pr);
void	metrics_pass_end(enum metrics_result res, double seconds, time_t now);
int	metrics_account_result(const char *user, enum metrics_result res,
	    time_t finished);

/* metrics_render - every family above, appended to b; 0 or -1 (memory) */
int	metrics_render(struct evbuffer *b, time_t now);

/* metrics_family - HELP and TYPE lines of mailferry_syncd_NAME */
void	metrics_family(struct evbuffer *b, const char *name, const char *type,
	    const char *help);
/* metrics_label - v escaped as a label value (\\, \", \n) into buf */
const char *metrics_label(const char *v, char *buf, size_t len);

const char *metrics_result_name(enum metrics_result r);

/* metrics_reset - every counter to zero, the account table freed (at
 * exit, and between unit tests) */
void	metrics_reset(void);

#endif
