/*
 * main.c - ferry-syncd: copies every mailbox's history from the old IMAP
 * server to the new one, then closes the gap with delta passes
 * (DESIGN.md §6, §8).
 *
 * Wiring only, in the start-up order of common/daemon.h: command line,
 * configuration, accounts and folder rules (-t stops here; exit 2 on
 * errors); logging; detach unless -d or --once (before any thread or
 * store exists); state_dir and the locked pid file; the TLS contexts
 * (a CA file may be readable by root only); the privilege drop to
 * [global] user; the store.  Then one pass (--once, pass.c) or the
 * daemon's loop (scheduler.c).
 *
 * SECURITY: the accounts file holds passwords: it is read once, warned
 * about when group/other-readable, and wiped on exit (accounts_free).
 * Nothing from the servers reaches a shell or a path.
 */

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "cli.h"
#include "log.h"
#include "syncd.h"
#include "tls.h"
#include "sync_reverse.h"
#include "verify.h"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ferry-syncd [-dht] [-c FILE] [--once] [--dry-run] [--account USER | --wave N] [--json]\n"
	    "       ferry-syncd --verify [--deep] [-c FILE] [--account USER | --wave N] [--json]\n"
	    "       ferry-syncd --reverse [--since TIME] [-c FILE] [--account USER | --wave N] [--once] [--json]\n"
	    "  -c FILE         configuration file (default %s)\n"
	    "  -d              stay in the foreground and log to stderr\n"
	    "  -t              check the configuration and exit\n"
	    "  --once          one pass over all accounts, report, exit\n"
	    "  --dry-run       show the plan, write nothing\n"
	    "  --account USER  only this source account\n"
	    "  --wave N        only the accounts of staged wave N (wave=N)\n"
	    "  --json          the report as JSON (with --once or --verify)\n"
	    "  --verify        compare every folder of both sides, read-only;\n"
	    "                  exit 0 complete, 1 missing or different, 2 usage\n"
	    "  --deep          with --verify: hash every body, not only ambiguous ones\n"
	    "  --reverse       one pass copying mail that arrived on the destination\n"
	    "                  back to the source (rollback), then exit\n"
	    "  --since TIME    with --reverse: only messages whose INTERNALDATE is at\n"
	    "                  least TIME (YYYY-MM-DD[THH:MM[:SS]], UTC; default: from\n"
	    "                  just before the cutover's switch when known, else every\n"
	    "                  message)\n"
	    "  -h              show this help\n", CLI_DEFAULT_CONFIG);
}

/* The process; static so that --once's signal handler can reach it. */
static struct syncd the_syncd;

/* --verify: no state_dir created, no store opened at start (verify.c
 * opens it for its records once an account has been verified) */
static int verify_mode;

/* on_signal_once - --once has no loop: SIGTERM/SIGINT only set the flag
 * the engine polls */
static void
on_signal_once(int sig)
{
	(void)sig;
	the_syncd.stop = 1;
}

/* signals_once - the signals of a run without the event loop (--once,
 * --verify): SIGTERM/SIGINT set the stop flag, SIGPIPE is ignored */
static void
signals_once(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal_once;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* setup - everything between the configuration and the first pass */
static int
setup(struct syncd *sd)
{
	const struct config *cfg = &sd->cfg;
	const char *ca = cfg->syncd.ca_file[0] ? cfg->syncd.ca_file : NULL;
	struct store_opts sopts;
	char err[1024], path[4096];

	log_open("ferry-syncd", sd->foreground || sd->once ||
	    cfg->global.log == CFG_LOG_STDERR ? LOG_DEST_STDERR :
	    LOG_DEST_SYSLOG, cfg->global.log_facility,
	    (enum log_level)cfg->global.log_level);
	if (sd->accounts->insecure)
		log_warnx("%s is readable by group or others: it holds "
		    "passwords", sd->accounts->path);
	sd->tty = sd->once && isatty(STDERR_FILENO);
	daemon_detach(&sd->d, sd->foreground || sd->once);
	if (!sd->dry_run && !verify_mode &&
	    daemon_state_dir(cfg->global.state_dir, cfg->global.user) == -1)
		return (-1);
	if (!sd->once && daemon_pidfile(&sd->d, cfg->syncd.pid_file) == -1)
		return (-1);
	if ((cfg->syncd.source.tls != CFG_IMAP_TLS_NONE &&
	    (sd->src_ctx = tls_client_ctx_new(ca, err, sizeof(err))) == NULL) ||
	    (cfg->syncd.destination.tls != CFG_IMAP_TLS_NONE &&
	    (sd->dst_ctx = tls_client_ctx_new(ca, err, sizeof(err))) == NULL)) {
		log_errorx("TLS: %s", err);
		return (-1);
	}
	if (daemon_drop_privileges(cfg->global.user) == -1)
		return (-1);
	if (config_state_path(cfg, "db", path, sizeof(path)) == -1) {
		log_errorx("[global] state_dir is too long");
		return (-1);
	}
	/* a dry run reads the state if there is one, never creates it;
	 * [global] map_size caps the map's growth, as in the relay: one
	 * environment, one cap */
	memset(&sopts, 0, sizeof(sopts));
	sopts.map_max = (size_t)cfg->global.map_size;
	sopts.map_size = sopts.map_max < STORE_MAP_DEFAULT ? sopts.map_max :
	    STORE_MAP_DEFAULT;
	if (verify_mode)
		sd->store = NULL;
	else if (store_open_opts(&sd->store, path, sd->dry_run ?
	    STORE_RDONLY : 0, &sopts, err, sizeof(err)) == -1) {
		if (sd->dry_run)
			sd->store = NULL;
		else {
			log_errorx("store %s: %s (is state_dir writable by "
			    "this user?)", path, err);
			return (-1);
		}
	}
	sd->o.cfg = cfg;
	sd->o.store = sd->store;
	sd->o.accounts = sd->accounts;
	sd->o.only_account = sd->only;
	sd->o.only_wave = sd->only_wave;
	sd->o.dry_run = sd->dry_run;
	sd->o.src_ctx = sd->src_ctx;
	sd->o.dst_ctx = sd->dst_ctx;
	sd->o.rules = sd->rules;
	sd->o.stop = &sd->stop;
	return (0);
}

static void
syncd_free(struct syncd *sd)
{
	syncd_pass_free(sd);
	if (sd->base != NULL)
		event_base_free(sd->base);
	store_close(&sd->store);
	daemon_close(&sd->d);
	tls_ctx_free(&sd->src_ctx);
	tls_ctx_free(&sd->dst_ctx);
	folder_rules_free(&sd->rules);
	accounts_free(&sd->accounts);
	config_free(&sd->cfg);
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
		{ "verify", no_argument, NULL, 'V' },
		{ "deep", no_argument, NULL, 'D' },
		{ "wave", required_argument, NULL, 'W' },
		{ "reverse", no_argument, NULL, 'R' },
		{ "since", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	struct syncd *sd = &the_syncd;
	const struct config *cfg = &sd->cfg;
	const char *conf = NULL, *wave_arg = NULL, *since_arg = NULL;
	char err[1024];
	int c, rc, test_only = 0, exit_code = EXIT_USAGE, verify = 0, deep = 0;

	daemon_init(&sd->d, "ferry-syncd");
	while ((c = getopt_long(argc, argv, "c:dht", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'd':
			sd->foreground = 1;
			break;
		case 'O':
			sd->once = 1;
			break;
		case 'N':
			sd->dry_run = sd->once = 1;
			break;
		case 'A':
			sd->only = optarg;
			break;
		case 'J':
			sd->json = 1;
			break;
		case 't':
			test_only = 1;
			break;
		case 'V':
			verify = 1;
			break;
		case 'D':
			deep = 1;
			break;
		case 'W':
			wave_arg = optarg;
			break;
		case 'R':
			sd->reverse = 1;
			break;
		case 'S':
			since_arg = optarg;
			break;
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (EXIT_USAGE);
		}
	}
	if (optind != argc || (deep && !verify) ||
	    (verify && (sd->once || test_only || sd->reverse)) ||
	    (since_arg != NULL && !sd->reverse) ||
	    (sd->reverse && test_only)) {
		usage(stderr);
		return (EXIT_USAGE);
	}
	sd->since = -1;
	if (since_arg != NULL && reverse_parse_since(since_arg, &sd->since,
	    err, sizeof(err)) == -1) {
		fprintf(stderr, "ferry-syncd: %s\n", err);
		return (EXIT_USAGE);
	}
	/* a reverse pass is one pass in the foreground, like --once */
	if (sd->reverse)
		sd->once = 1;
	if (wave_arg != NULL) {
		int64_t v;

		if (sd->only != NULL) {
			fprintf(stderr, "ferry-syncd: --wave and --account do "
			    "not go together\n");
			return (EXIT_USAGE);
		}
		/* strict: decimal, no sign, no leading zero */
		if (wave_arg[0] < '1' || wave_arg[0] > '9' ||
		    parse_int(wave_arg, 1, ACCOUNTS_WAVE_MAX, &v, err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "ferry-syncd: --wave: want a wave "
			    "from 1 to %u\n", ACCOUNTS_WAVE_MAX);
			return (EXIT_USAGE);
		}
		sd->only_wave = (unsigned)v;
	}
	/* a verification runs in the foreground like --once, never as the
	 * daemon: no pid file, logs on stderr, the result on stdout */
	if (verify)
		sd->once = verify_mode = 1;
	if ((rc = cli_load_config("ferry-syncd", conf, CONFIG_FOR_SYNCD,
	    &sd->cfg)) != 0)
		return (rc);
	if (accounts_load(cfg->syncd.accounts, &sd->accounts, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "ferry-syncd: %s\n", err);
		goto out;
	}
	if (folder_rules_new(&sd->rules, &cfg->syncd.include,
	    &cfg->syncd.exclude, &cfg->syncd.map, cfg->syncd.skip_non_mail,
	    err, sizeof(err)) == -1) {
		fprintf(stderr, "ferry-syncd: %s: [syncd] %s\n", cfg->path, err);
		goto out;
	}
	if (sd->only != NULL && accounts_find(sd->accounts, sd->only) == NULL) {
		fprintf(stderr, "ferry-syncd: no account %s in %s\n", sd->only,
		    sd->accounts->path);
		goto out;
	}
	if (sd->only_wave != 0 &&
	    accounts_wave_count(sd->accounts, sd->only_wave) == 0) {
		fprintf(stderr, "ferry-syncd: --wave %u: unknown wave: no "
		    "account of %s is in it\n", sd->only_wave,
		    sd->accounts->path);
		goto out;
	}
	if (test_only) {
		printf("ferry-syncd: configuration %s is valid\n", cfg->path);
		exit_code = 0;
		goto out;
	}
	sd->mode = sd->reverse ? "reverse" : sd->once ? "once" : "daemon";
	exit_code = EXIT_RUNTIME;
	if (setup(sd) == -1)
		goto out;
	if (verify) {
		char path[4096];

		signals_once();
		err[0] = '\0';
		rc = config_state_path(cfg, "db", path, sizeof(path)) == -1 ?
		    -1 : verify_run(&sd->o, deep, sd->json, stdout, path, err,
		    sizeof(err));
		if (rc == -1 && err[0] == '\0')
			errbuf_set(err, sizeof(err), "[global] state_dir is "
			    "too long");
		if (rc == -1)
			log_errorx("--verify: %s", err);
		exit_code = rc == VERIFY_COMPLETE ? 0 : EXIT_RUNTIME;
		goto out;
	}
	if (sd->once) {
		signals_once();
		rc = syncd_pass_run(sd, NULL);
		exit_code = rc == 0 ? 0 : EXIT_RUNTIME;
		if (sd->stop)
			log_notice("interrupted");
		goto out;
	}
	if ((sd->base = event_base_new()) == NULL) {
		log_errorx("cannot create the event loop");
		goto out;
	}
	exit_code = syncd_daemon_run(sd);
out:
	syncd_free(sd);
	return (exit_code);
}
