/*
 * main.c - ferry-relay: the SMTP relay that runs on the old MX during a
 * cutover (DESIGN.md §5).
 *
 * Start-up order (common/daemon.h has the why of each step):
 *   1. command line, configuration (-t stops here; exit 2 on errors)
 *   2. logging; detach unless -d (before any thread exists: the spool
 *      starts one); the parent waits until the child is ready, so a
 *      start-up failure still gives a non-zero exit status
 *   3. pid file, locked (a second relay on the same pid file refuses);
 *      the open-file limit checked against the configured concurrency
 *   4. bind the SMTP listeners and read the TLS key (as root: port 25,
 *      a key only root may read)
 *   5. drop privileges to [global] user
 *   6. open the store (state_dir/db) and the spool - after the drop, so
 *      every file is created by the user that will write it later; an
 *      unwritable state_dir is a clear error, fixing ownership is the
 *      admin's job
 *   7. scheduler, control, accept connections, run the loop
 * --rebuild-index stops after 6: it rebuilds the LMDB queue index from
 * the spool files and exits.
 *
 * Signals (through the loop): SIGTERM/SIGINT stop accepting, let
 * transactions in DATA finish, stop the scheduler, free everything and
 * exit 0 (a second one exits the loop at once); SIGHUP reopens the log
 * and reloads what is safe to change under a running relay: the log
 * level and the [relay] recipients file.  Everything else (listen
 * addresses, hostname, domains, limits, TLS files, upstreams, state_dir,
 * user) needs a restart: other modules hold pointers into the loaded
 * configuration, and sockets and privileges cannot follow a reload.
 *
 * Exposure: runs as root until step 5; refuses to go on if it is still
 * root afterwards while a user is configured.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"
#include "config.h"
#include "control.h"
#include "daemon.h"
#include "dkim_verify.h"
#include "dns.h"
#include "drain.h"
#include "inflight.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "route.h"
#include "smtp_server.h"
#include "spf.h"
#include "spool.h"
#include "srs.h"
#include "store.h"
#include "util.h"

#define SWEEP_INTERVAL	300	/* seconds between store sweeps */

struct daemon_ctx {
	struct relay	 relay;
	struct daemon	 d;
	struct event	*ev_sweep;
	/* [syncd] accounts, read before the privilege drop, for the crash
	 * check (inflight.h) and freed by it */
	struct accounts	*crash_accounts;
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ferry-relay [-dht] [-c FILE] [--rebuild-index]\n"
	    "  -c FILE          configuration file (default %s)\n"
	    "  -d               stay in the foreground and log to stderr\n"
	    "  -t               check the configuration and exit\n"
	    "  -h               show this help\n"
	    "  --rebuild-index  rebuild the queue index from the spool files "
	    "and exit\n", CLI_DEFAULT_CONFIG);
}

/* ---- signals and timers ------------------------------------------------------ */

static void
queue_done(void *arg)
{
	struct daemon_ctx *ctx = arg;

	log_info("stopped");
	event_base_loopexit(ctx->relay.base, NULL);
}

static void
server_done(void *arg)
{
	struct daemon_ctx *ctx = arg;

	if (ctx->relay.queue != NULL)
		queue_shutdown(ctx->relay.queue, queue_done, ctx);
	else
		queue_done(ctx);
}

static void
on_term(void *arg, int sig, int again)
{
	struct daemon_ctx *ctx = arg;

	(void)sig;
	if (again) {
		event_base_loopbreak(ctx->relay.base);
		return;
	}
	smtp_server_shutdown(ctx->relay.server, server_done, ctx);
}

static void
on_hup(void *arg)
{
	struct daemon_ctx *ctx = arg;
	struct config fresh;
	char err[1024];

	log_info("SIGHUP: reloading the log level and the recipient list");
	if (config_load(&fresh, ctx->relay.cfg->path, err, sizeof(err)) == 0) {
		log_set_level((enum log_level)fresh.global.log_level);
		config_free(&fresh);
	} else
		log_warnx("reload: %s; keeping the running configuration", err);
	if (smtp_server_reload(ctx->relay.server, err, sizeof(err)) == -1)
		log_warnx("reload: %s; keeping the old recipient list", err);
}

static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_ctx *ctx = arg;
	char err[256];
	size_t removed = 0;
	int cleared = 0;

	if (ctx->relay.drain != NULL &&
	    drain_save(ctx->relay.drain, err, sizeof(err)) == -1)
		log_warnx("drain view: %s", err);

	if (store_sweep_expired(ctx->relay.store, time(NULL), 0, &removed,
	    err, sizeof(err)) == -1)
		log_warnx("store sweep: %s", err);
	else if (removed > 0)
		log_debug("store sweep: %zu expired key(s) removed", removed);
	if (store_reader_check(ctx->relay.store, &cleared, err,
	    sizeof(err)) == -1)
		log_warnx("store reader check: %s", err);
	else if (cleared > 0)
		log_info("store: cleared %d stale reader slot(s)", cleared);
}

/* ---- the checks' shared parts ------------------------------------------------ */

#define SPF_WORKERS	4	/* SPF checks at once (each waits on DNS) */

/*
 * checks_init - what every message's checks share: the one
 * resolver ([checks] dns, dns_timeout) that SPF, DKIM keys and the
 * queue's MX look-ups all use, the SPF worker pool, the DKIM library,
 * SRS and the drain view.
 */
static int
checks_init(struct relay *r, char *err, size_t errlen)
{
	const struct config *cfg = r->cfg;
	struct dns_options o;
	char fwd[HOSTPORT_HOSTMAX + 16], why[512];

	memset(&o, 0, sizeof(o));
	if (cfg->checks.dns.count > 0) {
		hostport_format(&cfg->checks.dns.items[0], fwd, sizeof(fwd));
		o.forwarder = fwd;
	}
	o.hosts_file = "/etc/hosts";
	o.timeout_ms = (int)(cfg->checks.dns_timeout > 0 ?
	    cfg->checks.dns_timeout * 1000 : 0);
	if ((r->resolver = dns_resolver_new(r->base, &o, why,
	    sizeof(why))) == NULL) {
		errbuf_set(err, errlen, "DNS resolver: %s", why);
		return (-1);
	}
	if (cfg->checks.spf != CFG_SPF_OFF) {
		if (spf_checker_new(&r->spf, r->base, r->resolver, SPF_WORKERS,
		    cfg->relay.hostname, why, sizeof(why)) == -1) {
			errbuf_set(err, errlen, "SPF: %s", why);
			return (-1);
		}
		/* one check may take several look-ups, each up to
		 * dns_timeout; RFC 7208 4.6.4 asks for at least 20 s */
		spf_checker_set_timeout(r->spf, o.timeout_ms * 4 > 20000 ?
		    o.timeout_ms * 4 : 20000);
	}
	if (cfg->checks.dkim != CFG_DKIM_OFF &&
	    dkimv_lib_new(&r->dkim, r->base, r->resolver, why,
	    sizeof(why)) == -1) {
		errbuf_set(err, errlen, "DKIM: %s", why);
		return (-1);
	}
	if (cfg->forward.srs_secret[0] != '\0' &&
	    (r->srs = srs_new(cfg->forward.srs_secret,
	    cfg->forward.srs_domain, why, sizeof(why))) == NULL) {
		errbuf_set(err, errlen, "SRS: %s", why);
		return (-1);
	}
	if (drain_new(&r->drain, r->store, why, sizeof(why)) == -1) {
		errbuf_set(err, errlen, "drain view: %s", why);
		return (-1);
	}
	return (0);
}

/* ---- main ------------------------------------------------------------------ */

static void
ctx_free(struct daemon_ctx *ctx)
{
	struct relay *r = &ctx->relay;
	char err[256];

	inflight_accounts_free(&ctx->crash_accounts);
	relay_routes_free(&r->routes);
	control_free(&r->control);
	queue_free(&r->queue);
	smtp_server_free(&r->server);
	spf_checker_free(&r->spf);	/* before the resolver it uses */
	dkimv_lib_free(&r->dkim);
	srs_free(&r->srs);
	if (r->drain != NULL && drain_save(r->drain, err, sizeof(err)) == -1)
		log_warnx("drain view: %s", err);
	drain_free(&r->drain);
	dns_resolver_free(&r->resolver);
	spool_close(&r->spool);
	if (r->store != NULL && store_sync(r->store, err, sizeof(err)) == -1)
		log_warnx("store: %s", err);
	store_close(&r->store);
	if (ctx->ev_sweep)
		event_free(ctx->ev_sweep);
	daemon_close(&ctx->d);
	if (r->base)
		event_base_free(r->base);
}

/*
 * check_nofile - step 3: enough file descriptors for the configuration
 *
 * Every SMTP session holds its socket and, during DATA, its spool file;
 * every forward connection a socket and the spool file it sends; the
 * control listener its connections; then the store, the listeners, DNS
 * and the log (NOFILE_HEADROOM).  Run short and accept() fails with
 * EMFILE while spool files cannot be opened, so the soft limit is raised
 * to what we need (at most the hard limit), and a hard limit below it
 * is a start-up error naming the numbers, not a surprise under load.
 */
#define NOFILE_HEADROOM	64
static int
check_nofile(const struct config *cfg)
{
	struct rlimit rl;
	uint64_t need;

	need = 2 * (uint64_t)cfg->relay.max_connections +
	    2 * (uint64_t)cfg->forward.concurrency +
	    (uint64_t)cfg->control.max_connections + NOFILE_HEADROOM;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_errno(LOG_LVL_ERROR, "getrlimit(RLIMIT_NOFILE)");
		return (-1);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
		return (0);
	if (rl.rlim_cur == RLIM_INFINITY)
		return (0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		log_errorx("open-file limit too low: [relay] max_connections "
		    "%lld and [forward] concurrency %lld need %llu file "
		    "descriptors (2 per connection + %d), the hard limit "
		    "(RLIMIT_NOFILE) is %llu; raise it (ulimit -n, systemd "
		    "LimitNOFILE=) or lower max_connections",
		    (long long)cfg->relay.max_connections,
		    (long long)cfg->forward.concurrency,
		    (unsigned long long)need, NOFILE_HEADROOM,
		    (unsigned long long)rl.rlim_max);
		return (-1);
	}
	log_info("raising the open-file limit from %llu to %llu "
	    "([relay] max_connections %lld)", (unsigned long long)rl.rlim_cur,
	    (unsigned long long)need, (long long)cfg->relay.max_connections);
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_errno(LOG_LVL_ERROR, "setrlimit(RLIMIT_NOFILE, %llu)",
		    (unsigned long long)need);
		return (-1);
	}
	return (0);
}

/*
 * start_up - steps 2 to 6 of the start-up order (detach, state_dir, pid
 * file, bind, privilege drop, store and spool); -1 logged
 */
static int
start_up(struct daemon_ctx *ctx, int foreground, int rebuild)
{
	struct relay *r = &ctx->relay;
	const struct config *cfg = r->cfg;
	struct store_opts sopts;
	char err[1024], path[4096];

	daemon_init(&ctx->d, "ferry-relay");
	log_open("ferry-relay", foreground || rebuild ||
	    cfg->global.log == CFG_LOG_STDERR ? LOG_DEST_STDERR :
	    LOG_DEST_SYSLOG, cfg->global.log_facility,
	    (enum log_level)cfg->global.log_level);
	signal(SIGPIPE, SIG_IGN);
	daemon_detach(&ctx->d, foreground || rebuild);
	if (daemon_state_dir(cfg->global.state_dir, cfg->global.user) == -1 ||
	    daemon_pidfile(&ctx->d, cfg->relay.pid_file) == -1)
		return (-1);
	if (!rebuild && check_nofile(cfg) == -1)
		return (-1);
	if ((r->base = event_base_new()) == NULL) {
		log_errorx("cannot create the event loop");
		return (-1);
	}
	if (!rebuild && smtp_server_new(&r->server, r, err, sizeof(err)) == -1) {
		log_errorx("%s", err);
		return (-1);
	}
	if (!rebuild)
		inflight_accounts_load(cfg, &ctx->crash_accounts);
	if (daemon_drop_privileges(cfg->global.user) == -1)
		return (-1);
	/*
	 * STORE_NOMETASYNC (store.h): a commit flushes its pages but not
	 * its meta page, so an OS crash or power cut may undo the relay's
	 * last commit, never corrupt the store, and never touch ferry-syncd's
	 * commits (its own handle syncs both).  Why that loses nothing:
	 *  - a spool round's commit (records, dedupe keys, pending ledger
	 *    entries) comes after its files are fsync'd in spool/queue, and
	 *    spool_open() rebuilds what a file lacks - record, dedupe key,
	 *    ledger entries - at every start (spool_rebuild.c);
	 *  - an undone delivery result means a message is sent again (a
	 *    duplicate), as after any crash during a delivery; the pending
	 *    ledger entries of a record whose file is gone are released;
	 *  - what only an admin or the drain view knows (hold, delete, the
	 *    drain state) is followed by store_sync(), and so is shutdown.
	 * A kill -9 undoes nothing: the commit is in the page cache.
	 */
	/* [global] map_size caps the map's growth: a full map fails the
	 * transaction (a 4xx to the client), it never stops the relay */
	memset(&sopts, 0, sizeof(sopts));
	sopts.map_max = (size_t)cfg->global.map_size;
	sopts.map_size = sopts.map_max < STORE_MAP_DEFAULT ? sopts.map_max :
	    STORE_MAP_DEFAULT;
	if (config_state_path(cfg, "db", path, sizeof(path)) == -1 ||
	    store_open_opts(&r->store, path, STORE_NOMETASYNC, &sopts, err,
	    sizeof(err)) == -1) {
		log_errorx("store %s: %s (is state_dir writable by this user?)",
		    path, err);
		return (-1);
	}
	if (spool_open(&r->spool, r, err, sizeof(err)) == -1) {
		log_errorx("spool: %s", err);
		return (-1);
	}
	return (0);
}

/* serve - step 7: checks, scheduler, control, signals, accept; -1 logged */
static int
serve(struct daemon_ctx *ctx)
{
	struct relay *r = &ctx->relay;
	struct timeval sweep = { SWEEP_INTERVAL, 0 };
	char err[1024];

	if (checks_init(r, err, sizeof(err)) == -1) {
		log_errorx("%s", err);
		return (-1);
	}
	/* Before the queue loads: what was in flight at an unclean stop is
	 * settled first (found at the destination, or sent again). */
	if (inflight_recover(r, &ctx->crash_accounts, err, sizeof(err)) ==
	    -1) {
		log_errorx("crash check: %s", err);
		return (-1);
	}
	if (queue_new(&r->queue, r, err, sizeof(err)) == -1) {
		log_errorx("queue: %s", err);
		return (-1);
	}
	if (control_new(&r->control, r, err, sizeof(err)) == -1) {
		log_errorx("control: %s", err);
		return (-1);
	}
	if (daemon_signals(&ctx->d, r->base, on_term, on_hup, ctx) == -1)
		return (-1);
	ctx->ev_sweep = event_new(r->base, -1, EV_PERSIST, on_sweep, ctx);
	if (ctx->ev_sweep == NULL || event_add(ctx->ev_sweep, &sweep) == -1) {
		log_errorx("cannot set up the sweep timer");
		return (-1);
	}
	if (smtp_server_start(r->server, err, sizeof(err)) == -1) {
		log_errorx("%s", err);
		return (-1);
	}
	log_info("started (pid %ld)", (long)getpid());
	daemon_ready(&ctx->d);
	if (event_base_dispatch(r->base) == -1)
		log_errorx("event loop failed");
	return (0);
}

/* rebuild_index - --rebuild-index after step 6; -1 logged */
static int
rebuild_index(struct relay *r)
{
	char err[1024];
	size_t count;

	if (spool_rebuild_index(r->spool, &count, err, sizeof(err)) == -1) {
		log_errorx("rebuild-index: %s", err);
		return (-1);
	}
	printf("ferry-relay: queue index rebuilt: %zu message(s)\n", count);
	return (0);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "rebuild-index", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = NULL;
	struct daemon_ctx ctx;
	struct config cfg;
	char rerr[1024];
	int c, rc, test_only = 0, foreground = 0, rebuild = 0;

	while ((c = getopt_long(argc, argv, "c:dht", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'd':
			foreground = 1;
			break;
		case 't':
			test_only = 1;
			break;
		case 'R':
			rebuild = 1;
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
	if ((rc = cli_load_config("ferry-relay", conf, CONFIG_FOR_RELAY, &cfg)) != 0)
		return (rc);
	memset(&ctx, 0, sizeof(ctx));
	/* The accounts file's waves are configuration: read now, before
	 * the privilege drop, and checked by -t too. */
	if (relay_routes_load(&cfg, &ctx.relay.routes, rerr,
	    sizeof(rerr)) == -1) {
		fprintf(stderr, "ferry-relay: %s\n", rerr);
		config_free(&cfg);
		return (EXIT_USAGE);
	}
	if (test_only) {
		printf("ferry-relay: configuration %s is valid\n", cfg.path);
		relay_routes_free(&ctx.relay.routes);
		config_free(&cfg);
		return (0);
	}
	ctx.relay.cfg = &cfg;
	ctx.relay.started = time(NULL);
	if (start_up(&ctx, foreground, rebuild) == -1)
		rc = EXIT_RUNTIME;
	else if (rebuild)
		rc = rebuild_index(&ctx.relay) == -1 ? EXIT_RUNTIME : 0;
	else
		rc = serve(&ctx) == -1 ? EXIT_RUNTIME : 0;
	ctx_free(&ctx);
	log_close();
	config_free(&cfg);
	libevent_global_shutdown();
	return (rc);
}
