/*
 * main.c - ferry-relay: the SMTP relay that runs on the old MX during a
 * cutover (DESIGN.md §5).
 *
 * Start-up order, and why:
 *   1. command line, configuration (-t stops here; exit 2 on errors)
 *   2. logging; detach unless -d (before any thread exists: the spool
 *      starts one); the parent waits until the child is ready, so a
 *      start-up failure still gives a non-zero exit status
 *   3. pid file, locked (a second relay on the same pid file refuses)
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
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "dkim_verify.h"
#include "dns.h"
#include "relay.h"
#include "spf.h"
#include "srs.h"
#include "store.h"
#include "util.h"

#define SWEEP_INTERVAL	300	/* seconds between store sweeps */

struct daemon_ctx {
	struct relay	 relay;
	struct event	*ev_term;
	struct event	*ev_int;
	struct event	*ev_hup;
	struct event	*ev_sweep;
	int		 stopping;
	int		 pidfd;
	const char	*pidfile;
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

/* ---- daemon plumbing -------------------------------------------------------- */

/*
 * daemonize - fork; the parent waits for the child's "ready" byte on a
 * pipe and exits 0, or 1 when the child dies first.  Returns the write
 * end of the pipe in the child.
 */
static int
daemonize(void)
{
	int fds[2];
	pid_t pid;
	char c;
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) == -1) {
		fprintf(stderr, "ferry-relay: pipe: %s\n", strerror(errno));
		exit(EXIT_RUNTIME);
	}
	if ((pid = fork()) == -1) {
		fprintf(stderr, "ferry-relay: fork: %s\n", strerror(errno));
		exit(EXIT_RUNTIME);
	}
	if (pid > 0) {
		close(fds[1]);
		do
			n = read(fds[0], &c, 1);
		while (n == -1 && errno == EINTR);
		_exit(n == 1 ? 0 : EXIT_RUNTIME);
	}
	close(fds[0]);
	if (setsid() == -1) {
		fprintf(stderr, "ferry-relay: setsid: %s\n", strerror(errno));
		exit(EXIT_RUNTIME);
	}
	return (fds[1]);
}

/* detach_finish - tell the parent we are up; drop the terminal */
static void
detach_finish(int readyfd)
{
	int fd;

	if (chdir("/") == -1)
		log_warn("chdir /");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		(void)dup2(fd, STDIN_FILENO);
		(void)dup2(fd, STDOUT_FILENO);
		(void)dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	(void)write(readyfd, "", 1);
	close(readyfd);
}

/* pidfile_open - create, lock and fill the pid file; -1 if locked */
static int
pidfile_open(const char *path)
{
	char buf[32];
	int fd, n;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1) {
		log_errorx("pid file %s: %s", path, strerror(errno));
		return (-1);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		n = (int)read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		log_errorx("pid file %s is locked: ferry-relay already running"
		    " (pid %s)", path, buf[0] ? buf : "?");
		close(fd);
		return (-1);
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, (size_t)n, 0) != n) {
		log_errorx("pid file %s: %s", path, strerror(errno));
		close(fd);
		return (-1);
	}
	return (fd);
}

/*
 * state_dir_create - make state_dir before the pid file goes into it; when
 * root creates it for a [global] user, that user must own it, or the
 * store and spool could not be created after the privilege drop.
 */
static int
state_dir_create(const char *dir, const char *user)
{
	struct passwd *pw;

	if (mkdir(dir, 0700) == -1) {
		if (errno == EEXIST)
			return (0);
		log_errorx("state_dir %s: %s", dir, strerror(errno));
		return (-1);
	}
	if (user == NULL || user[0] == '\0' || geteuid() != 0)
		return (0);
	if ((pw = getpwnam(user)) == NULL) {
		log_errorx("[global] user %s: no such user", user);
		return (-1);
	}
	if (chown(dir, pw->pw_uid, pw->pw_gid) == -1) {
		log_errorx("state_dir %s: chown to %s: %s", dir, user,
		    strerror(errno));
		return (-1);
	}
	return (0);
}

/* drop_privileges - become [global] user; refuse to stay root */
static int
drop_privileges(const char *user)
{
	struct passwd *pw;

	if (user == NULL || user[0] == '\0') {
		if (geteuid() == 0)
			log_warnx("running as root: set [global] user");
		return (0);
	}
	if ((pw = getpwnam(user)) == NULL) {
		log_errorx("[global] user %s: no such user", user);
		return (-1);
	}
	if (geteuid() != 0) {
		if (geteuid() == pw->pw_uid)
			return (0);
		log_errorx("cannot become user %s: not started as root", user);
		return (-1);
	}
	if (setgroups(1, &pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		log_errorx("cannot become user %s: %s", user, strerror(errno));
		return (-1);
	}
	if (pw->pw_uid != 0 && (setuid(0) != -1 || geteuid() == 0 ||
	    getuid() == 0)) {
		log_errorx("still root after dropping privileges; refusing");
		return (-1);
	}
	log_info("running as user %s", user);
	return (0);
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
on_term(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_ctx *ctx = arg;

	if (ctx->stopping) {
		log_notice("signal %d again: exiting now", (int)sig);
		event_base_loopbreak(ctx->relay.base);
		return;
	}
	ctx->stopping = 1;
	log_info("signal %d: shutting down", (int)sig);
	smtp_server_shutdown(ctx->relay.server, server_done, ctx);
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_ctx *ctx = arg;
	struct config fresh;
	char err[1024];

	log_reopen();
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
 * checks_init - what every message's checks share (issue 4): the one
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
	store_close(&r->store);
	if (ctx->ev_term)
		event_free(ctx->ev_term);
	if (ctx->ev_int)
		event_free(ctx->ev_int);
	if (ctx->ev_hup)
		event_free(ctx->ev_hup);
	if (ctx->ev_sweep)
		event_free(ctx->ev_sweep);
	if (r->base)
		event_base_free(r->base);
	if (ctx->pidfd != -1) {
		(void)unlink(ctx->pidfile);	/* may fail after the drop */
		close(ctx->pidfd);
	}
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
	struct relay *r = &ctx.relay;
	struct config cfg;
	struct timeval sweep = { SWEEP_INTERVAL, 0 };
	char err[1024], path[4096];
	int c, rc, test_only = 0, foreground = 0, rebuild = 0, readyfd = -1;
	size_t count;

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
	if (test_only) {
		printf("ferry-relay: configuration %s is valid\n", cfg.path);
		config_free(&cfg);
		return (0);
	}

	memset(&ctx, 0, sizeof(ctx));
	ctx.pidfd = -1;
	r->cfg = &cfg;
	r->started = time(NULL);
	if (foreground || rebuild || cfg.global.log == CFG_LOG_STDERR)
		log_open("ferry-relay", LOG_DEST_STDERR, cfg.global.log_facility,
		    (enum log_level)cfg.global.log_level);
	else
		log_open("ferry-relay", LOG_DEST_SYSLOG, cfg.global.log_facility,
		    (enum log_level)cfg.global.log_level);
	signal(SIGPIPE, SIG_IGN);

	if (!foreground && !rebuild)
		readyfd = daemonize();
	if (state_dir_create(cfg.global.state_dir, cfg.global.user) == -1)
		goto fail;
	if (cfg.relay.pid_file && cfg.relay.pid_file[0] != '\0') {
		ctx.pidfile = cfg.relay.pid_file;
		if ((ctx.pidfd = pidfile_open(ctx.pidfile)) == -1)
			goto fail;
	}
	if ((r->base = event_base_new()) == NULL) {
		log_errorx("cannot create the event loop");
		goto fail;
	}
	if (!rebuild && smtp_server_new(&r->server, r, err, sizeof(err)) == -1) {
		log_errorx("%s", err);
		goto fail;
	}
	if (drop_privileges(cfg.global.user) == -1)
		goto fail;

	if (config_state_path(&cfg, "db", path, sizeof(path)) == -1 ||
	    store_open(&r->store, path, 0, err, sizeof(err)) == -1) {
		log_errorx("store %s: %s (is state_dir writable by this user?)",
		    path, err);
		goto fail;
	}
	if (spool_open(&r->spool, r, err, sizeof(err)) == -1) {
		log_errorx("spool: %s", err);
		goto fail;
	}
	if (rebuild) {
		if (spool_rebuild_index(r->spool, &count, err, sizeof(err)) == -1) {
			log_errorx("rebuild-index: %s", err);
			goto fail;
		}
		printf("ferry-relay: queue index rebuilt: %zu message(s)\n", count);
		ctx_free(&ctx);
		log_close();
		config_free(&cfg);
		return (0);
	}
	if (checks_init(r, err, sizeof(err)) == -1) {
		log_errorx("%s", err);
		goto fail;
	}
	if (queue_new(&r->queue, r, err, sizeof(err)) == -1) {
		log_errorx("queue: %s", err);
		goto fail;
	}
	if (control_new(&r->control, r, err, sizeof(err)) == -1) {
		log_errorx("control: %s", err);
		goto fail;
	}
	ctx.ev_term = evsignal_new(r->base, SIGTERM, on_term, &ctx);
	ctx.ev_int = evsignal_new(r->base, SIGINT, on_term, &ctx);
	ctx.ev_hup = evsignal_new(r->base, SIGHUP, on_hup, &ctx);
	ctx.ev_sweep = event_new(r->base, -1, EV_PERSIST, on_sweep, &ctx);
	if (ctx.ev_term == NULL || ctx.ev_int == NULL || ctx.ev_hup == NULL ||
	    ctx.ev_sweep == NULL || event_add(ctx.ev_term, NULL) == -1 ||
	    event_add(ctx.ev_int, NULL) == -1 ||
	    event_add(ctx.ev_hup, NULL) == -1 ||
	    event_add(ctx.ev_sweep, &sweep) == -1) {
		log_errorx("cannot set up signals and timers");
		goto fail;
	}
	if (smtp_server_start(r->server, err, sizeof(err)) == -1) {
		log_errorx("%s", err);
		goto fail;
	}
	log_info("started (pid %ld)", (long)getpid());
	if (readyfd != -1) {
		detach_finish(readyfd);
		readyfd = -1;
	}

	if (event_base_dispatch(r->base) == -1)
		log_errorx("event loop failed");

	ctx_free(&ctx);
	log_close();
	config_free(&cfg);
	libevent_global_shutdown();
	return (0);
fail:
	ctx_free(&ctx);
	log_close();
	config_free(&cfg);
	libevent_global_shutdown();
	return (EXIT_RUNTIME);
}
