/*
 * scheduler.c - the ferry-syncd daemon's event loop: when passes run, on
 * which thread, and what signals do.
 *
 * Passes.  The first pass starts at once; after each, the next one is
 * due [syncd] interval later - or [cutover] catchup_interval while a
 * cutover domain is switching or in dual reception (cutover.c) - and
 * cutover.c may ask for one at once (the first `new` MX answer).  A pass
 * runs on a thread of its own, so the loop keeps answering the MX
 * watcher's DNS, the timers and the signals meanwhile; the pass thread
 * tells the loop it is done through a pipe.  One pass at a time: a pass
 * asked for while one runs starts right after it (the running one may
 * have started before the evidence that asked for it).
 *
 * Signals.  SIGTERM/SIGINT set the stop flag the engine polls (it
 * finishes the batch in flight and logs out within its grace time), then
 * the loop ends.  SIGHUP reloads the configuration: the keys below can
 * change under a running daemon and are applied before the next pass
 * (never under a running one, whose threads read them); every other
 * changed key is logged as needing a restart (paths, servers,
 * credentials and connection limits are held by open connections, the
 * store and the cutover's resolvers).  A configuration that does not
 * load is logged and the running one kept.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#include <event2/event.h>

#include "cli.h"
#include "cutover.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "syncd.h"
#include "wakeup.h"

#define IDLE_PUBLISH_SECS	2	/* "syncd.progress" between passes */

/* The keys a reload applies (scalars read afresh by every pass). */
static const struct {
	const char	*section, *key;
} reloadable[] = {
	{ "global", "log_level" },
	{ "syncd", "interval" },
	{ "syncd", "destination_check_interval" },
	{ "syncd", "parallel" },
	{ "syncd", "delete" },
	{ "syncd", "max_bytes_per_second" },
	{ "syncd", "max_messages_per_second" },
	{ "cutover", "check_interval" },
	{ "cutover", "quiet_period" },
	{ "cutover", "catchup_interval" },
};

static void	pass_start(struct syncd *sd, const char *why);

/*
 * keep_cap - how many connection pairs may stay logged in between passes:
 * [syncd] keep_connections, as far as the descriptors allow.  A kept pair
 * holds KEEP_FDS of them (two sockets, its event loop's epoll and its
 * two-ended notify pipe), so the soft RLIMIT_NOFILE is raised to the hard
 * one and the cap cut, with a warning, to what fits beside a pass's own.
 */
#define KEEP_FDS	5
#define PASS_FDS	256

static size_t
keep_cap(const struct config *cfg)
{
	struct rlimit rl;
	uint64_t want = (uint64_t)cfg->syncd.keep_connections, fit;

	if (want == 0 || getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return ((size_t)want);
	if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur <
	    want * KEEP_FDS + PASS_FDS) {
		rlim_t old = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			rl.rlim_cur = old;
	}
	fit = rl.rlim_cur > PASS_FDS ? (rl.rlim_cur - PASS_FDS) / KEEP_FDS : 0;
	if (want > fit) {
		log_warnx("keep_connections = %" PRIu64 " needs %" PRIu64
		    " descriptors; the limit is %" PRIu64 ": keeping %" PRIu64,
		    want, want * KEEP_FDS + PASS_FDS, (uint64_t)rl.rlim_cur,
		    fit);
		want = fit;
	}
	return ((size_t)want);
}

/* ---- the cutover's side of a pass ----------------------------------------------- */

/* dest_live - sync_pass_opts.dest_live, from the pass thread: reads the
 * snapshot live_snapshot() took on the loop thread, never the cutover */
static int
dest_live(void *arg, const struct account *a)
{
	struct syncd *sd = arg;
	size_t i = (size_t)(a - sd->accounts->items);

	return (sd->live != NULL && i < sd->accounts->count &&
	    (sd->live[i] & SYNCD_LIVE));
}

/* not_rolled_back - sync_pass_opts.selects of the daemon's forward
 * pass: an account whose domain is in rollback gets a reverse pass
 * instead (pass.c), from the same snapshot */
static int
not_rolled_back(void *arg, const struct account *a)
{
	struct syncd *sd = arg;
	size_t i = (size_t)(a - sd->accounts->items);

	return (sd->live == NULL || i >= sd->accounts->count ||
	    !(sd->live[i] & SYNCD_ROLLBACK));
}

static void
live_snapshot(struct syncd *sd)
{
	size_t i;

	if (sd->live == NULL)
		return;
	for (i = 0; i < sd->accounts->count; i++)
		sd->live[i] = (unsigned char)((cutover_dest_live(sd->cutover,
		    &sd->accounts->items[i]) ? SYNCD_LIVE : 0) |
		    (cutover_in_rollback(sd->cutover,
		    &sd->accounts->items[i]) ? SYNCD_ROLLBACK : 0));
}

static void
on_cutover_request(void *arg, const char *why)
{
	pass_start(arg, why);
}

/* first_failure - words for an account's first failure in a report */
static void
first_failure(const struct report_account *ra, char *buf, size_t len)
{
	size_t i, k;

	buf[0] = '\0';
	if (ra->error != NULL) {
		snprintf(buf, len, "%s", ra->error);
		return;
	}
	for (i = 0; i < ra->nfolders; i++) {
		const struct report_folder *f = ra->folders[i];

		if (f->error != NULL) {
			snprintf(buf, len, "folder %s: %s", f->src, f->error);
			return;
		}
		for (k = 0; k < f->nproblems; k++)
			if (f->problems[k].kind == REPORT_FAILED) {
				snprintf(buf, len, "folder %s, UID %" PRIu64
				    ": %s", f->src, f->problems[k].uid,
				    f->problems[k].reason);
				return;
			}
	}
}

/* cutover_report - what the pass that just ended found, per account */
static void
cutover_report(struct syncd *sd)
{
	const struct report *r = sd->report;
	struct cutover_acct_result *acc;
	struct cutover_pass_result res;
	struct report_totals t;
	size_t i;

	if (sd->cutover == NULL || r == NULL)
		return;		/* no cutover, or the pass did not run */
	/* A pass over one wave says nothing of the domain's other accounts:
	 * counting it could close a domain whose other waves never ran. */
	if (sd->only_wave != 0)
		return;
	if ((acc = calloc(r->naccounts + 1, sizeof(*acc))) == NULL) {
		log_warnx("cutover: out of memory; this pass is not counted");
		return;
	}
	for (i = 0; i < r->naccounts; i++) {
		const struct report_account *ra = r->accounts[i];

		report_account_totals(ra, &t);
		acc[i].user = ra->src_user;
		acc[i].copied = t.copied;
		acc[i].missing = t.missing;
		acc[i].failed = t.failed;
		acc[i].error = ra->error != NULL;
		first_failure(ra, acc[i].reason, sizeof(acc[i].reason));
	}
	memset(&res, 0, sizeof(res));
	res.started = sd->pass_started;
	res.finished = sd->last.finished;
	res.full = sd->pr != NULL && sd->pr->full;
	res.acc = acc;
	res.nacc = r->naccounts;
	cutover_pass_done(sd->cutover, &res);
	free(acc);
}

static int
key_reloadable(const char *section, const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(reloadable) / sizeof(reloadable[0]); i++)
		if (strcmp(reloadable[i].section, section) == 0 &&
		    strcmp(reloadable[i].key, key) == 0)
			return (1);
	return (0);
}

static void
reload_changed(const char *section, const char *key, void *arg)
{
	unsigned *restart = arg;

	if (key_reloadable(section, key))
		log_info("reload: [%s] %s applied", section, key);
	else {
		log_warnx("reload: [%s] %s changed: restart ferry-syncd to "
		    "apply it", section, key);
		(*restart)++;
	}
}

/* reload_apply - take the reloadable keys of fresh; fresh is freed */
static void
reload_apply(struct syncd *sd, struct config *fresh)
{
	struct config *c = &sd->cfg;
	unsigned restart = 0;

	if (config_diff(c, fresh, reload_changed, &restart) == 0)
		log_info("reload: configuration unchanged");
	c->global.log_level = fresh->global.log_level;
	c->syncd.interval = fresh->syncd.interval;
	c->syncd.destination_check_interval =
	    fresh->syncd.destination_check_interval;
	c->syncd.parallel = fresh->syncd.parallel;
	c->syncd.delete = fresh->syncd.delete;
	c->syncd.max_bytes_per_second = fresh->syncd.max_bytes_per_second;
	c->syncd.max_messages_per_second =
	    fresh->syncd.max_messages_per_second;
	c->cutover.check_interval = fresh->cutover.check_interval;
	c->cutover.quiet_period = fresh->cutover.quiet_period;
	c->cutover.catchup_interval = fresh->cutover.catchup_interval;
	log_set_level((enum log_level)c->global.log_level);
	if (restart > 0)
		log_warnx("reload: %u changed key(s) wait for a restart",
		    restart);
	config_free(fresh);
	free(fresh);
}

static void
reload_pending(struct syncd *sd)
{
	struct config *fresh = sd->reload;

	if (fresh == NULL || sd->running)
		return;
	sd->reload = NULL;
	reload_apply(sd, fresh);
}

static void
on_reload(void *arg)
{
	struct syncd *sd = arg;
	struct config *fresh;
	char err[1024];

	log_info("SIGHUP: reloading %s", sd->cfg.path);
	if ((fresh = calloc(1, sizeof(*fresh))) == NULL) {
		log_warnx("reload: out of memory; keeping the running "
		    "configuration");
		return;
	}
	if (config_load(fresh, sd->cfg.path, err, sizeof(err)) == -1 ||
	    config_require(fresh, CONFIG_FOR_SYNCD, err, sizeof(err)) == -1) {
		log_warnx("reload: %s; keeping the running configuration",
		    err);
		config_free(fresh);
		free(fresh);
		return;
	}
	if (sd->reload != NULL) {
		config_free(sd->reload);
		free(sd->reload);
	}
	sd->reload = fresh;
	if (sd->running)
		log_info("reload: applied when the running pass ends");
	reload_pending(sd);
}

static void
on_stop(void *arg, int sig, int again)
{
	struct syncd *sd = arg;

	(void)sig;
	sd->stop = 1;
	if (!sd->running)
		event_base_loopexit(sd->base, NULL);
	else if (again)
		log_notice("the pass is finishing its batch; it logs out "
		    "within its grace time");
}

static void
schedule_next(struct syncd *sd)
{
	struct timeval tv = { 0, 0 };
	int64_t secs = cutover_pass_interval(sd->cutover,
	    sd->cfg.syncd.interval);

	tv.tv_sec = (time_t)secs;
	if (evtimer_add(sd->ev_next, &tv) == -1)
		log_warnx("cannot schedule the next pass");
}

static void *
pass_thread(void *arg)
{
	struct syncd *sd = arg;
	(void)syncd_pass_run(sd, sd->why_run);
	wakeup_signal(sd->wake);
	return (NULL);
}

/* on_pass_done - the pass thread has finished (loop thread) */
static void
on_pass_done(void *arg)
{
	struct syncd *sd = arg;
	int rc;

	if (!sd->running)
		return;
	if ((rc = pthread_join(sd->thread, NULL)) != 0)
		log_warnx("pass thread: %s", strerror(rc));
	sd->running = 0;
	if (sd->stop) {
		event_base_loopexit(sd->base, NULL);
		return;
	}
	cutover_report(sd);
	reload_pending(sd);
	if (sd->wanted) {
		sd->wanted = 0;
		pass_start(sd, sd->why);
		return;
	}
	schedule_next(sd);
}

/* pass_start - start a pass now, or right after the running one */
static void
pass_start(struct syncd *sd, const char *why)
{
	int rc;

	if (sd->running) {
		if (why != sd->why)
			snprintf(sd->why, sizeof(sd->why), "%s", why);
		sd->wanted = 1;
		return;
	}
	if (sd->stop)
		return;
	snprintf(sd->why_run, sizeof(sd->why_run), "%s", why);
	evtimer_del(sd->ev_next);
	live_snapshot(sd);
	cutover_pass_started(sd->cutover, time(NULL));
	sd->running = 1;
	if ((rc = pthread_create(&sd->thread, NULL, pass_thread, sd)) != 0) {
		sd->running = 0;
		log_warnx("cannot start a pass: %s; trying again in %" PRId64
		    " s", strerror(rc), sd->cfg.syncd.interval);
		schedule_next(sd);
	}
}

static void
on_next(evutil_socket_t fd, short what, void *arg)
{
	struct syncd *sd = arg;

	(void)fd;
	(void)what;
	pass_start(sd, "[syncd] interval");
}

static void
on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct syncd *sd = arg;

	(void)fd;
	(void)what;
	if (!sd->running)
		syncd_progress_store(sd, 1);
}

static void
loop_free(struct syncd *sd)
{
	wakeup_free(&sd->wake);
	if (sd->ev_next != NULL)
		event_free(sd->ev_next);
	if (sd->ev_idle != NULL)
		event_free(sd->ev_idle);
	sd->ev_next = sd->ev_idle = NULL;
	if (sd->reload != NULL) {
		config_free(sd->reload);
		free(sd->reload);
		sd->reload = NULL;
	}
}

/*
 * syncd_daemon_run - signals, timers, readiness, then the loop until a
 * SIGTERM/SIGINT has stopped the running pass.  sd->base exists.
 */
int
syncd_daemon_run(struct syncd *sd)
{
	struct timeval idle = { IDLE_PUBLISH_SECS, 0 };
	struct cutover_hooks hooks;
	char err[512];
	int rc = EXIT_RUNTIME;

	if (wakeup_new(&sd->wake, sd->base, on_pass_done, sd, err,
	    sizeof(err)) == -1) {
		log_errorx("%s", err);
		goto out;
	}
	sd->ev_next = evtimer_new(sd->base, on_next, sd);
	sd->ev_idle = event_new(sd->base, -1, EV_PERSIST, on_idle, sd);
	if (sd->ev_next == NULL || sd->ev_idle == NULL ||
	    event_add(sd->ev_idle, &idle) == -1) {
		log_errorx("cannot set up the loop's events");
		goto out;
	}
	if (daemon_signals(&sd->d, sd->base, on_stop, on_reload, sd) == -1)
		goto out;
	memset(&hooks, 0, sizeof(hooks));
	hooks.request_pass = on_cutover_request;
	hooks.arg = sd;
	if (cutover_new(&sd->cutover, sd->base, sd->store, &sd->cfg,
	    sd->accounts, &hooks, err, sizeof(err)) == -1) {
		log_errorx("cutover: %s", err);
		goto out;
	}
	if (sd->cutover != NULL) {
		if ((sd->live = calloc(sd->accounts->count + 1, 1)) == NULL) {
			log_errorx("out of memory");
			goto out;
		}
		sd->o.dest_live = dest_live;
		sd->o.dest_live_arg = sd;
		sd->o.selects = not_rolled_back;
		sd->o.selects_arg = sd;
	}
	/* between passes the daemon stays logged in (sync.c, "kept") */
	if ((sd->o.keep = sync_keep_new(keep_cap(&sd->cfg))) == NULL) {
		log_errorx("out of memory");
		goto out;
	}
	metrics_start(time(NULL));
	if (syncd_http_open(&sd->http, sd, err, sizeof(err)) == -1) {
		log_errorx("%s", err);
		goto out;
	}
	log_notice("daemon started: %zu account(s), a pass every %" PRId64
	    " s", sd->accounts->count, sd->cfg.syncd.interval);
	daemon_ready(&sd->d);
	pass_start(sd, "start-up");
	if (event_base_dispatch(sd->base) == -1)
		log_errorx("event loop failed");
	if (sd->running) {		/* the loop failed under a pass */
		sd->stop = 1;
		(void)pthread_join(sd->thread, NULL);
		sd->running = 0;
	}
	syncd_progress_store(sd, 0);
	sync_keep_free(&sd->o.keep);
	log_notice("stopping on signal");
	rc = 0;
out:
	syncd_http_free(&sd->http);
	metrics_reset();
	cutover_free(&sd->cutover);
	free(sd->live);
	sd->live = NULL;
	loop_free(sd);
	return (rc);
}
