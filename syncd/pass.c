/*
 * pass.c - one pass of ferry-syncd as the process runs it: the log lines
 * around it, the report (stdout with --once), and the progress it
 * publishes while the engine (sync.c) works: the "syncd.progress" META
 * record for `ferryctl sync` (every 2 s and at the end of a pass), a
 * progress line in the log every 5 s, and a live line on a terminal
 * (--once on a TTY).
 *
 * Threading: syncd_pass_run() runs on the thread that runs the pass (the
 * main thread with --once, the pass thread in the daemon); the engine
 * calls progress_tick() back on that same thread.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "metrics.h"
#include "log.h"
#include "report.h"
#include "state.h"
#include "cutover.h"
#include "sync.h"
#include "sync_reverse.h"
#include "syncd.h"

#define PROGRESS_KEY		"syncd.progress"
#define PROGRESS_META_SECS	2
#define PROGRESS_LOG_SECS	5

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

static const char *
acct_state_name(enum sync_acct_state s)
{
	switch (s) {
	case SYNC_ACCT_RUNNING:
		return ("running");
	case SYNC_ACCT_DONE:
		return ("done");
	case SYNC_ACCT_FAILED:
		return ("failed");
	default:
		return ("waiting");
	}
}

/*
 * acct_rate_json - one account's messages, bytes, rate and ETA: the
 * rate over the time it has run (until it finished), the ETA only while
 * it runs.
 */
static void
acct_rate_json(struct json *j, const struct sync_acct_progress *a,
    int live)
{
	int64_t end = a->finished ? a->finished : (int64_t)time(NULL);
	double el = a->started ? (double)(end - a->started) : 0, rm = 0, rb = 0;

	if (el < 1 && a->started)
		el = 1;		/* whole seconds: an account done in one */
	if (el > 0) {
		rm = (double)a->messages_done / el;
		rb = (double)a->bytes / el;
	}
	json_key(j, "messages_done");
	json_uint(j, a->messages_done);
	json_key(j, "messages_total");
	json_uint(j, a->messages_total);
	json_key(j, "bytes");
	json_uint(j, a->bytes);
	json_key(j, "started");
	if (a->started)
		json_int(j, a->started);
	else
		json_null(j);
	json_key(j, "rate_msgs");
	json_double(j, rm);
	json_key(j, "rate_bytes");
	json_double(j, rb);
	json_key(j, "eta_seconds");
	if (live && a->state == SYNC_ACCT_RUNNING && rm > 0 &&
	    a->messages_total >= a->messages_done)
		json_uint(j, (uint64_t)((double)(a->messages_total -
		    a->messages_done) / rm));
	else
		json_null(j);
}

/* progress_json - the "syncd.progress" object (shape in syncctx / sync.h) */
static const char *
progress_json(struct syncd *sd, int running, struct json *j, size_t *len)
{
	struct sync_progress *pr = sd->pr;
	double el = mono() - sd->pass_t0, rm = 0, rb = 0;
	size_t i;

	json_init(j, 0);
	json_object_begin(j);
	json_key(j, "pid");
	json_int(j, (int64_t)getpid());
	json_key(j, "running");
	json_bool(j, running);
	json_key(j, "mode");
	json_string(j, sd->mode);
	json_key(j, "pass");
	if (!running || !sd->in_pass || pr == NULL)
		json_string(j, "idle");
	else
		json_string(j, pr->full ? "full" : "delta");
	json_key(j, "pass_number");
	json_uint(j, sd->pass_number);
	json_key(j, "started");
	json_int(j, (int64_t)sd->pass_started);
	json_key(j, "updated");
	json_int(j, (int64_t)time(NULL));
	if (pr != NULL) {
		pthread_mutex_lock(&pr->mu);
		if (el > 0) {
			rm = (double)pr->messages_done / el;
			rb = (double)pr->bytes / el;
		}
		json_key(j, "accounts_total");
		json_uint(j, pr->accounts_total);
		json_key(j, "accounts_done");
		json_uint(j, pr->accounts_done);
		json_key(j, "folders_total");
		json_uint(j, pr->folders_total);
		json_key(j, "folders_done");
		json_uint(j, pr->folders_done);
		json_key(j, "messages_total");
		json_uint(j, pr->messages_total);
		json_key(j, "messages_done");
		json_uint(j, pr->messages_done);
		json_key(j, "copied");
		json_uint(j, pr->copied);
		json_key(j, "duplicates");
		json_uint(j, pr->duplicates);
		json_key(j, "skipped_policy");
		json_uint(j, pr->policy);
		json_key(j, "failed");
		json_uint(j, pr->failed);
		json_key(j, "bytes");
		json_uint(j, pr->bytes);
		json_key(j, "rate_msgs");
		json_double(j, rm);
		json_key(j, "rate_bytes");
		json_double(j, rb);
		json_key(j, "eta_seconds");
		if (running && sd->in_pass && rm > 0 &&
		    pr->messages_total >= pr->messages_done &&
		    pr->accounts_done < pr->accounts_total)
			json_uint(j, (uint64_t)((double)(pr->messages_total -
			    pr->messages_done) / rm));
		else
			json_null(j);
	}
	json_key(j, "last_pass");
	if (sd->last.have) {
		json_object_begin(j);
		json_key(j, "finished");
		json_int(j, (int64_t)sd->last.finished);
		json_key(j, "complete");
		json_bool(j, sd->last.complete);
		json_key(j, "verdict");
		json_string(j, sd->last.verdict);
		json_key(j, "copied");
		json_uint(j, sd->last.copied);
		json_key(j, "failed");
		json_uint(j, sd->last.failed);
		json_key(j, "destination_checks_skipped");
		json_uint(j, sd->last.dst_skipped);
		json_object_end(j);
	} else
		json_null(j);
	json_key(j, "accounts");
	json_array_begin(j);
	for (i = 0; pr != NULL && i < pr->nacc; i++) {
		const struct sync_acct_progress *a = &pr->acc[i];

		json_object_begin(j);
		json_key(j, "user");
		json_string(j, a->user);
		json_key(j, "state");
		json_string(j, acct_state_name(a->state));
		json_key(j, "folders_done");
		json_uint(j, a->folders_done);
		json_key(j, "folders_total");
		json_uint(j, a->folders_total);
		json_key(j, "copied");
		json_uint(j, a->copied);
		json_key(j, "failed");
		json_uint(j, a->failed);
		json_key(j, "error");
		json_string(j, a->error[0] ? a->error : NULL);
		acct_rate_json(j, a, running && sd->in_pass);
		json_object_end(j);
	}
	json_array_end(j);
	if (pr != NULL)
		pthread_mutex_unlock(&pr->mu);
	json_object_end(j);
	return (json_finish(j, len));
}

void
syncd_progress_store(struct syncd *sd, int running)
{
	struct json j;
	const char *doc;
	size_t len;
	char err[256];

	if (sd->store == NULL || sd->dry_run)
		return;
	if ((doc = progress_json(sd, running, &j, &len)) != NULL &&
	    state_meta_put(sd->store, PROGRESS_KEY, doc, len, err,
	    sizeof(err)) == -1)
		log_warnx("progress: %s", err);
	json_clear(&j);
}

static void
progress_fill(struct syncd *sd, struct report_progress *rp)
{
	struct sync_progress *pr = sd->pr;

	memset(rp, 0, sizeof(*rp));
	pthread_mutex_lock(&pr->mu);
	rp->accounts_done = pr->accounts_done;
	rp->accounts_total = pr->accounts_total;
	rp->folders_done = pr->folders_done;
	rp->folders_total = pr->folders_total;
	rp->msgs_done = pr->messages_done;
	rp->msgs_total = pr->messages_total;
	rp->bytes_done = pr->bytes;
	pthread_mutex_unlock(&pr->mu);
	rp->elapsed = mono() - sd->pass_t0;
}

/* progress_tick - called by the engine about once a second */
static void
progress_tick(void *arg)
{
	struct syncd *sd = arg;
	struct report_progress rp;
	time_t now = time(NULL);
	char line[512];

	if (now - sd->last_meta >= PROGRESS_META_SECS) {
		sd->last_meta = now;
		syncd_progress_store(sd, 1);
	}
	if (!sd->pr_lent) {
		/* the engine has initialised the progress by now */
		metrics_pass_attach(sd->pr);
		sd->pr_lent = 1;
	}
	progress_fill(sd, &rp);
	if (now - sd->last_log >= PROGRESS_LOG_SECS) {
		sd->last_log = now;
		report_progress_format(&rp, REPORT_PROGRESS_LOG, line,
		    sizeof(line));
		log_info("progress: %s", line);
	}
	if (sd->tty) {
		report_progress_format(&rp, REPORT_PROGRESS_TTY, line,
		    sizeof(line));
		log_status(line);	/* log lines go above it */
		sd->tty_drawn = 1;
	}
}

/* pass_metrics - the pass and each account's end into the counters; the
 * progress is detached here, before the next pass frees it */
static void
pass_metrics(struct syncd *sd, const struct report *r, int missing)
{
	struct report_totals t;
	enum metrics_result res;
	size_t i;

	if (!sd->pr_lent && sd->pr != NULL) {
		/* a pass over before its first tick: its final numbers */
		metrics_pass_attach(sd->pr);
		sd->pr_lent = 1;
	}
	metrics_pass_end(missing ? METRICS_MISSING : METRICS_COMPLETE,
	    r->seconds, sd->last.finished);
	for (i = 0; i < r->naccounts; i++) {
		const struct report_account *ra = r->accounts[i];

		report_account_totals(ra, &t);
		res = ra->error != NULL ? METRICS_ERROR : t.missing > 0 ||
		    t.failed > 0 ? METRICS_MISSING : METRICS_COMPLETE;
		if (metrics_account_result(ra->src_user, res,
		    sd->last.finished) == -1)
			log_warnx("metrics: out of memory");
	}
}

/* cli_since - --reverse: every account (or --account's), from --since,
 * else from its domain's switch (every message when never seen) */
static int64_t
cli_since(void *arg, const struct account *a)
{
	struct syncd *sd = arg;

	if (sd->since >= 0)
		return (sd->since);
	return (cutover_switch_time(sd->store, &sd->cfg, a));
}

/* rollback_since - the daemon's reverse pass: only the accounts whose
 * domain was in rollback when the pass started (the snapshot), from the
 * domain's switch */
static int64_t
rollback_since(void *arg, const struct account *a)
{
	struct syncd *sd = arg;
	size_t i = (size_t)(a - sd->accounts->items);

	if (sd->live == NULL || i >= sd->accounts->count ||
	    !(sd->live[i] & SYNCD_ROLLBACK))
		return (-1);
	return (cutover_switch_time(sd->store, &sd->cfg, a));
}

/* rollback_wanted - some account's domain is in rollback */
static int
rollback_wanted(const struct syncd *sd)
{
	size_t i;

	for (i = 0; sd->live != NULL && i < sd->accounts->count; i++)
		if (sd->live[i] & SYNCD_ROLLBACK)
			return (1);
	return (0);
}

/* rollback_pass - the daemon's reverse pass for the domains in
 * rollback, after the forward pass (which left their accounts out):
 * its verdict logged, its report not kept (the cutover's evidence is
 * the forward pass's) */
static void
rollback_pass(struct syncd *sd)
{
	struct sync_pass_opts o = sd->o;
	struct sync_reverse rv;
	struct sync_progress *pr;
	struct report *r;
	char err[512], verdict[512];
	double t0 = mono();

	memset(&rv, 0, sizeof(rv));
	rv.since_fn = rollback_since;
	rv.since_arg = sd;
	o.reverse = &rv;
	o.tick = NULL;
	o.tick_arg = NULL;
	if ((r = report_new(sd->dry_run)) == NULL ||
	    (pr = calloc(1, sizeof(*pr))) == NULL) {
		report_free(&r);
		log_errorx("reverse pass: out of memory");
		return;
	}
	r->reverse = 1;
	log_info("reverse pass %u: starting: domain in rollback",
	    sd->pass_number);
	if (reverse_pass_run(&o, r, pr, err, sizeof(err)) == -1)
		log_errorx("reverse pass %u: %s", sd->pass_number, err);
	else {
		r->seconds = mono() - t0;
		report_verdict(r, verdict, sizeof(verdict));
		log_info("reverse pass %u: done in %.3f s: %s",
		    sd->pass_number, r->seconds, verdict);
	}
	sync_progress_free(pr);
	free(pr);
	report_free(&r);
}

/* engine_run - the pass proper: --reverse's, or the forward one (none
 * when every account is in rollback: an empty report) */
static int
engine_run(struct syncd *sd, struct report *r, struct sync_progress *pr,
    char *err, size_t errlen)
{
	struct sync_reverse rv;
	struct sync_pass_opts o;
	char e[256];

	if (sd->reverse) {
		memset(&rv, 0, sizeof(rv));
		rv.since_fn = cli_since;
		rv.since_arg = sd;
		o = sd->o;
		o.reverse = &rv;
		r->reverse = 1;
		return (reverse_pass_run(&o, r, pr, err, errlen));
	}
	if (sd->o.selects != NULL && sync_pass_count(&sd->o, e,
	    sizeof(e)) == 0 && rollback_wanted(sd))
		return (0);
	return (sync_pass_run(&sd->o, r, pr, err, errlen));
}

/*
 * syncd_pass_run - one pass over the accounts, its log lines and, with
 * --once, its report on stdout; the report stays in sd->report until the
 * next pass.  Returns 0 nothing missing, 1 something missing, -1 when
 * the pass could not run.
 */
int
syncd_pass_run(struct syncd *sd, const char *why)
{
	struct report *r;
	struct sync_progress *pr;
	struct report_totals t;
	char err[512], verdict[512];
	int missing;

	report_free(&sd->report);	/* NULL: this pass did not run */
	if ((r = report_new(sd->dry_run)) == NULL) {
		log_errorx("out of memory");
		return (-1);
	}
	sd->pass_number++;
	sd->pass_started = time(NULL);
	sd->pass_t0 = mono();
	sd->last_meta = sd->last_log = time(NULL);
	if (sd->pr != NULL) {
		sync_progress_free(sd->pr);
		free(sd->pr);
		sd->pr = NULL;
	}
	if ((pr = calloc(1, sizeof(*pr))) == NULL) {
		log_errorx("out of memory");
		report_free(&r);
		return (-1);
	}
	log_info("%spass %u: starting%s%s%s", sd->reverse ? "reverse " : "",
	    sd->pass_number, sd->dry_run ? " (dry run)" : "", why ? ": " : "",
	    why ? why : "");
	sd->pr = pr;
	sd->in_pass = 1;
	sd->pr_lent = 0;
	metrics_pass_begin(sd->pass_started);
	sd->o.tick = progress_tick;
	sd->o.tick_arg = sd;
	if (engine_run(sd, r, pr, err, sizeof(err)) == -1) {
		log_errorx("%s", err);
		sd->in_pass = 0;
		metrics_pass_end(METRICS_ERROR, mono() - sd->pass_t0, time(NULL));
		sync_progress_free(pr);
		free(pr);
		sd->pr = NULL;
		report_free(&r);
		return (-1);
	}
	sd->in_pass = 0;
	if (sd->tty_drawn) {
		log_status(NULL);
		sd->tty_drawn = 0;
	}
	r->seconds = mono() - sd->pass_t0;
	report_totals(r, &t);
	missing = report_missing(r);
	report_verdict(r, verdict, sizeof(verdict));
	log_info("%spass %u: done in %.3f s: %s", sd->reverse ? "reverse " :
	    "", sd->pass_number, r->seconds, verdict);
	if (pr->dst_skipped > 0)
		log_info("pass %u: %" PRIu64 " of %zu accounts unchanged on "
		    "the source: destination not checked", sd->pass_number,
		    pr->dst_skipped, r->naccounts);
	if (!sd->reverse && !sd->once && rollback_wanted(sd) && !sd->stop)
		rollback_pass(sd);
	sd->last.have = 1;
	sd->last.finished = time(NULL);
	sd->last.complete = !missing;
	snprintf(sd->last.verdict, sizeof(sd->last.verdict), "%s", verdict);
	sd->last.copied = t.copied;
	sd->last.failed = t.failed;
	sd->last.dst_skipped = pr->dst_skipped;
	pass_metrics(sd, r, missing);
	syncd_pass_record(sd, r, sd->pass_started, sd->last.finished);
	syncd_progress_store(sd, 0);
	if (sd->once) {
		if (sd->json)
			report_write_json(r, stdout, 1);
		else
			report_write_text(r, stdout);
		fflush(stdout);
	}
	report_free(&sd->report);
	sd->report = r;
	return (missing ? 1 : 0);
}


/* syncd_pass_free - the last pass's progress and report */
void
syncd_pass_free(struct syncd *sd)
{
	if (sd->pr != NULL) {
		sync_progress_free(sd->pr);
		free(sd->pr);
		sd->pr = NULL;
	}
	report_free(&sd->report);
}
