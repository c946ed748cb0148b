/*
 * main.c - ferry-syncd: copies every mailbox's history from the old IMAP
 * server to the new one, then closes the gap with delta passes
 * (DESIGN.md §6, §8).
 *
 * Wiring only: command line, configuration, accounts, folder rules, TLS
 * contexts, the shared store; then one pass (--once) or the daemon loop
 * (a pass, then one every [syncd] interval until SIGTERM).  The engine
 * is sync.c.  While a pass runs, this thread publishes the progress:
 * the "syncd.progress" META record for `ferryctl sync` (every 2 s and at
 * the end of a pass), a progress line in the log every 5 s, and a live
 * line on a terminal (--once on a TTY).
 *
 * SECURITY: the accounts file holds passwords: it is read once, warned
 * about when group/other-readable, and wiped on exit (accounts_free).
 * Nothing from the servers reaches a shell or a path.
 *
 * Threads: main() runs on the main thread; sync_pass_run() starts the
 * workers and calls progress_tick() back on this thread.  SIGTERM/SIGINT
 * only set a flag the engine polls.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "accounts.h"
#include "cli.h"
#include "config.h"
#include "folders.h"
#include "json.h"
#include "log.h"
#include "report.h"
#include "state.h"
#include "store.h"
#include "sync.h"
#include "tls.h"

#define PROGRESS_KEY		"syncd.progress"
#define PROGRESS_META_SECS	2
#define PROGRESS_LOG_SECS	5

static volatile sig_atomic_t stop_flag;

struct last_pass {
	int		 have;
	time_t		 finished;
	int		 complete;
	char		 verdict[512];
	uint64_t	 copied, failed;
};

struct app {
	struct config	 cfg;
	struct store	*store;
	int		 once, dry_run, json, foreground;
	const char	*mode;
	unsigned	 pass_number;
	time_t		 pass_started;
	double		 pass_t0;
	struct sync_progress *pr;	/* this pass's, or the last one's */
	int		 in_pass;
	struct last_pass last;
	time_t		 last_meta, last_log;
	int		 tty;
	int		 tty_drawn;
};

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ferry-syncd [-dht] [-c FILE] [--once] [--dry-run] [--account USER] [--json]\n"
	    "  -c FILE         configuration file (default %s)\n"
	    "  -d              stay in the foreground and log to stderr\n"
	    "  -t              check the configuration and exit\n"
	    "  --once          one pass over all accounts, report, exit\n"
	    "  --dry-run       show the plan, write nothing\n"
	    "  --account USER  only this source account\n"
	    "  --json          the report as JSON (with --once)\n"
	    "  -h              show this help\n", CLI_DEFAULT_CONFIG);
}

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

/* progress_json - the "syncd.progress" object (shape in syncctx / sync.h) */
static const char *
progress_json(struct app *ap, int running, struct json *j, size_t *len)
{
	struct sync_progress *pr = ap->pr;
	double el = mono() - ap->pass_t0, rm = 0, rb = 0;
	size_t i;

	json_init(j, 0);
	json_object_begin(j);
	json_key(j, "pid");
	json_int(j, (int64_t)getpid());
	json_key(j, "running");
	json_bool(j, running);
	json_key(j, "mode");
	json_string(j, ap->mode);
	json_key(j, "pass");
	if (!running || !ap->in_pass || pr == NULL)
		json_string(j, "idle");
	else
		json_string(j, pr->full ? "full" : "delta");
	json_key(j, "pass_number");
	json_uint(j, ap->pass_number);
	json_key(j, "started");
	json_int(j, (int64_t)ap->pass_started);
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
		if (running && ap->in_pass && rm > 0 &&
		    pr->messages_total >= pr->messages_done &&
		    pr->accounts_done < pr->accounts_total)
			json_uint(j, (uint64_t)((double)(pr->messages_total -
			    pr->messages_done) / rm));
		else
			json_null(j);
	}
	json_key(j, "last_pass");
	if (ap->last.have) {
		json_object_begin(j);
		json_key(j, "finished");
		json_int(j, (int64_t)ap->last.finished);
		json_key(j, "complete");
		json_bool(j, ap->last.complete);
		json_key(j, "verdict");
		json_string(j, ap->last.verdict);
		json_key(j, "copied");
		json_uint(j, ap->last.copied);
		json_key(j, "failed");
		json_uint(j, ap->last.failed);
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
		json_object_end(j);
	}
	json_array_end(j);
	if (pr != NULL)
		pthread_mutex_unlock(&pr->mu);
	json_object_end(j);
	return (json_finish(j, len));
}

static void
progress_store(struct app *ap, int running)
{
	struct json j;
	const char *doc;
	size_t len;
	char err[256];

	if (ap->store == NULL || ap->dry_run)
		return;
	if ((doc = progress_json(ap, running, &j, &len)) != NULL &&
	    state_meta_put(ap->store, PROGRESS_KEY, doc, len, err,
	    sizeof(err)) == -1)
		log_warnx("progress: %s", err);
	json_clear(&j);
}

static void
progress_fill(struct app *ap, struct report_progress *rp)
{
	struct sync_progress *pr = ap->pr;

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
	rp->elapsed = mono() - ap->pass_t0;
}

/* progress_tick - called by the engine about once a second */
static void
progress_tick(void *arg)
{
	struct app *ap = arg;
	struct report_progress rp;
	time_t now = time(NULL);
	char line[512];

	if (now - ap->last_meta >= PROGRESS_META_SECS) {
		ap->last_meta = now;
		progress_store(ap, 1);
	}
	progress_fill(ap, &rp);
	if (now - ap->last_log >= PROGRESS_LOG_SECS) {
		ap->last_log = now;
		report_progress_format(&rp, REPORT_PROGRESS_LOG, line,
		    sizeof(line));
		log_info("progress: %s", line);
	}
	if (ap->tty) {
		report_progress_format(&rp, REPORT_PROGRESS_TTY, line,
		    sizeof(line));
		fprintf(stderr, "\r\033[K%s", line);
		fflush(stderr);
		ap->tty_drawn = 1;
	}
}

/* run_pass - one pass; returns 0 nothing missing, 1 missing, -1 error */
static int
run_pass(struct app *ap, const struct sync_pass_opts *o)
{
	struct report *r;
	struct sync_progress *pr;
	struct report_totals t;
	char err[512], verdict[512];
	int missing;

	if ((r = report_new(ap->dry_run)) == NULL) {
		log_errorx("out of memory");
		return (-1);
	}
	ap->pass_number++;
	ap->pass_started = time(NULL);
	ap->pass_t0 = mono();
	ap->last_meta = ap->last_log = time(NULL);
	if (ap->pr != NULL) {
		sync_progress_free(ap->pr);
		free(ap->pr);
		ap->pr = NULL;
	}
	if ((pr = calloc(1, sizeof(*pr))) == NULL) {
		log_errorx("out of memory");
		report_free(&r);
		return (-1);
	}
	log_info("pass %u: starting%s", ap->pass_number,
	    ap->dry_run ? " (dry run)" : "");
	ap->pr = pr;
	ap->in_pass = 1;
	if (sync_pass_run(o, r, pr, err, sizeof(err)) == -1) {
		log_errorx("%s", err);
		ap->in_pass = 0;
		sync_progress_free(pr);
		free(pr);
		ap->pr = NULL;
		report_free(&r);
		return (-2);
	}
	ap->in_pass = 0;
	if (ap->tty_drawn) {
		fprintf(stderr, "\r\033[K");
		ap->tty_drawn = 0;
	}
	r->seconds = mono() - ap->pass_t0;
	report_totals(r, &t);
	missing = report_missing(r);
	report_verdict(r, verdict, sizeof(verdict));
	log_info("pass %u: done in %.3f s: %s", ap->pass_number, r->seconds,
	    verdict);
	ap->last.have = 1;
	ap->last.finished = time(NULL);
	ap->last.complete = !missing;
	snprintf(ap->last.verdict, sizeof(ap->last.verdict), "%s", verdict);
	ap->last.copied = t.copied;
	ap->last.failed = t.failed;
	progress_store(ap, 0);
	if (ap->once) {
		if (ap->json)
			report_write_json(r, stdout, 1);
		else
			report_write_text(r, stdout);
		fflush(stdout);
	}
	report_free(&r);
	return (missing ? 1 : 0);
}

static int
pidfile_write(const char *path)
{
	char buf[32];
	int fd, n;

	if (path == NULL || path[0] == '\0')
		return (0);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) == -1) {
		log_warn("pid file %s", path);
		return (-1);
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		log_warn("pid file %s", path);
		close(fd);
		return (-1);
	}
	close(fd);
	return (0);
}

/* daemonize - detach from the terminal; the parent exits */
static int
daemonize(void)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) == -1)
		return (-1);
	if (pid > 0)
		_exit(0);
	if (setsid() == -1)
		return (-1);
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	return (0);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "once", no_argument, NULL, 'O' },
		{ "dry-run", no_argument, NULL, 'N' },
		{ "account", required_argument, NULL, 'A' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct app ap;
	struct accounts *accounts = NULL;
	struct folder_rules *rules = NULL;
	struct sync_pass_opts o;
	struct sigaction sa;
	SSL_CTX *src_ctx = NULL, *dst_ctx = NULL;
	const char *conf = NULL, *only = NULL;
	char err[1024], path[4096];
	int c, rc, test_only = 0, exit_code = EXIT_RUNTIME, pid_written = 0;

	memset(&ap, 0, sizeof(ap));
	while ((c = getopt_long(argc, argv, "c:dht", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'd':
			ap.foreground = 1;
			break;
		case 'O':
			ap.once = 1;
			break;
		case 'N':
			ap.dry_run = 1;
			break;
		case 'A':
			only = optarg;
			break;
		case 'J':
			ap.json = 1;
			break;
		case 't':
			test_only = 1;
			break;
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (EXIT_USAGE);
		}
	}
	if (optind != argc) {
		usage(stderr);
		return (EXIT_USAGE);
	}
	if ((rc = cli_load_config("ferry-syncd", conf, CONFIG_FOR_SYNCD,
	    &ap.cfg)) != 0)
		return (rc);
	if (accounts_load(ap.cfg.syncd.accounts, &accounts, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "ferry-syncd: %s\n", err);
		config_free(&ap.cfg);
		return (EXIT_USAGE);
	}
	if (folder_rules_new(&rules, &ap.cfg.syncd.include,
	    &ap.cfg.syncd.exclude, &ap.cfg.syncd.map,
	    ap.cfg.syncd.skip_non_mail, err, sizeof(err)) == -1) {
		fprintf(stderr, "ferry-syncd: %s: [syncd] %s\n", ap.cfg.path,
		    err);
		accounts_free(&accounts);
		config_free(&ap.cfg);
		return (EXIT_USAGE);
	}
	if (only != NULL && accounts_find(accounts, only) == NULL) {
		fprintf(stderr, "ferry-syncd: no account %s in %s\n", only,
		    accounts->path);
		exit_code = EXIT_USAGE;
		goto out;
	}
	if (test_only) {
		printf("ferry-syncd: configuration %s is valid\n", ap.cfg.path);
		exit_code = 0;
		goto out;
	}
	if (ap.once || ap.dry_run)
		ap.once = 1;
	ap.mode = ap.once ? "once" : "daemon";
	if (ap.foreground || ap.once || ap.cfg.global.log == CFG_LOG_STDERR)
		log_open("ferry-syncd", LOG_DEST_STDERR,
		    ap.cfg.global.log_facility,
		    (enum log_level)ap.cfg.global.log_level);
	else
		log_open("ferry-syncd", LOG_DEST_SYSLOG,
		    ap.cfg.global.log_facility,
		    (enum log_level)ap.cfg.global.log_level);
	if (accounts->insecure)
		log_warnx("%s is readable by group or others: it holds "
		    "passwords", accounts->path);
	ap.tty = ap.once && isatty(STDERR_FILENO);

	if (ap.cfg.syncd.source.tls != CFG_IMAP_TLS_NONE &&
	    (src_ctx = tls_client_ctx_new(ap.cfg.syncd.ca_file[0] ?
	    ap.cfg.syncd.ca_file : NULL, err, sizeof(err))) == NULL) {
		log_errorx("TLS: %s", err);
		goto out;
	}
	if (ap.cfg.syncd.destination.tls != CFG_IMAP_TLS_NONE &&
	    (dst_ctx = tls_client_ctx_new(ap.cfg.syncd.ca_file[0] ?
	    ap.cfg.syncd.ca_file : NULL, err, sizeof(err))) == NULL) {
		log_errorx("TLS: %s", err);
		goto out;
	}
	if (config_state_path(&ap.cfg, "db", path, sizeof(path)) == -1) {
		log_errorx("[global] state_dir is too long");
		goto out;
	}
	if (ap.dry_run) {
		/* read the state if there is one; never create or write */
		if (store_open(&ap.store, path, STORE_RDONLY, err,
		    sizeof(err)) == -1)
			ap.store = NULL;
	} else {
		if (mkdir(ap.cfg.global.state_dir, 0700) == -1 &&
		    errno != EEXIST) {
			log_warn("mkdir %s", ap.cfg.global.state_dir);
			goto out;
		}
		if (store_open(&ap.store, path, 0, err, sizeof(err)) == -1) {
			log_errorx("state: %s", err);
			goto out;
		}
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (!ap.once && !ap.foreground && daemonize() == -1) {
		log_warn("daemon");
		goto out;
	}
	if (!ap.once && pidfile_write(ap.cfg.syncd.pid_file) == 0)
		pid_written = 1;

	memset(&o, 0, sizeof(o));
	o.cfg = &ap.cfg;
	o.store = ap.store;
	o.accounts = accounts;
	o.only_account = only;
	o.dry_run = ap.dry_run;
	o.src_ctx = src_ctx;
	o.dst_ctx = dst_ctx;
	o.rules = rules;
	o.stop = &stop_flag;
	o.tick = progress_tick;
	o.tick_arg = &ap;

	if (ap.once) {
		rc = run_pass(&ap, &o);
		exit_code = rc == 0 ? 0 : EXIT_RUNTIME;
		if (stop_flag)
			log_notice("interrupted");
		goto out;
	}
	/* between passes the daemon stays logged in (sync.c, "kept") */
	if ((o.keep = sync_keep_new()) == NULL) {
		log_errorx("out of memory");
		goto out;
	}
	log_notice("daemon started: %zu account(s), a pass every %" PRId64
	    " s", accounts->count, ap.cfg.syncd.interval);
	while (!stop_flag) {
		int64_t waited;

		run_pass(&ap, &o);
		for (waited = 0; waited < ap.cfg.syncd.interval && !stop_flag;
		    waited++) {
			if (waited % PROGRESS_META_SECS == 0)
				progress_store(&ap, 1);
			sleep(1);
		}
	}
	progress_store(&ap, 0);
	sync_keep_free(&o.keep);
	log_notice("stopping on signal");
	exit_code = 0;
out:
	if (pid_written)
		unlink(ap.cfg.syncd.pid_file);
	if (ap.pr != NULL) {
		sync_progress_free(ap.pr);
		free(ap.pr);
	}
	store_close(&ap.store);
	tls_ctx_free(&src_ctx);
	tls_ctx_free(&dst_ctx);
	folder_rules_free(&rules);
	accounts_free(&accounts);
	config_free(&ap.cfg);
	return (exit_code);
}
