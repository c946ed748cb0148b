/*
 * daemon.c - detach, pid file, state_dir, privilege drop and signals for
 * ferry-relay and ferry-syncd, in the order daemon.h lists and explains.
 *
 * Exposure: runs as root until daemon_drop_privileges(); refuses to go
 * on when it is still root afterwards while a user is configured.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"
#include "daemon.h"
#include "log.h"

void
daemon_init(struct daemon *d, const char *prog)
{
	memset(d, 0, sizeof(*d));
	d->prog = prog;
	d->readyfd = -1;
	d->pidfd = -1;
}

/*
 * daemon_detach - fork; the parent waits for the child's "ready" byte on
 * a pipe and exits 0, or 1 when the child dies (closes the pipe) first.
 * The child keeps the write end until daemon_ready().
 */
void
daemon_detach(struct daemon *d, int foreground)
{
	int fds[2];
	pid_t pid;
	char c;
	ssize_t n;

	if (foreground)
		return;
	if (pipe2(fds, O_CLOEXEC) == -1) {
		fprintf(stderr, "%s: pipe: %s\n", d->prog, strerror(errno));
		exit(EXIT_RUNTIME);
	}
	if ((pid = fork()) == -1) {
		fprintf(stderr, "%s: fork: %s\n", d->prog, strerror(errno));
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
		fprintf(stderr, "%s: setsid: %s\n", d->prog, strerror(errno));
		exit(EXIT_RUNTIME);
	}
	d->readyfd = fds[1];
}

/*
 * daemon_state_dir - make state_dir before the pid file goes into it;
 * when root creates it for a [global] user, that user must own it, or
 * the store (and the relay's spool) could not be created after the drop.
 */
int
daemon_state_dir(const char *dir, const char *user)
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

/*
 * daemon_pidfile - create, lock and fill the pid file; -1 when another
 * process holds the lock.  The lock, not the file's content, says who
 * runs: a pid file left by a kill -9 is simply taken over.  An empty
 * path means no pid file.
 */
int
daemon_pidfile(struct daemon *d, const char *path)
{
	char buf[32];
	int fd, n;

	if (path == NULL || path[0] == '\0')
		return (0);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1) {
		log_errorx("pid file %s: %s", path, strerror(errno));
		return (-1);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		n = (int)read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		log_errorx("pid file %s is locked: %s already running (pid %s)",
		    path, d->prog, buf[0] ? buf : "?");
		close(fd);
		return (-1);
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, (size_t)n, 0) != n) {
		log_errorx("pid file %s: %s", path, strerror(errno));
		close(fd);
		return (-1);
	}
	if ((d->pidfile = strdup(path)) == NULL) {
		log_errorx("out of memory");
		close(fd);
		return (-1);
	}
	d->pidfd = fd;
	return (0);
}

/* daemon_drop_privileges - become [global] user; refuse to stay root */
int
daemon_drop_privileges(const char *user)
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

static void
daemon_on_term(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	int again = d->stopping;

	(void)what;
	d->stopping = 1;
	if (again)
		log_notice("signal %d again: exiting now", (int)sig);
	else
		log_info("signal %d: shutting down", (int)sig);
	d->on_stop(d->arg, (int)sig, again);
}

static void
daemon_on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)sig;
	(void)what;
	log_reopen();
	if (d->on_reload != NULL)
		d->on_reload(d->arg);
}

/*
 * daemon_signals - TERM and INT call on_stop, HUP reopens the log and
 * calls on_reload, all from the loop (never in signal context); SIGPIPE
 * is ignored (a peer closing a socket is an I/O error, not a death).
 */
int
daemon_signals(struct daemon *d, struct event_base *base,
    void (*on_stop)(void *, int, int), void (*on_reload)(void *), void *arg)
{
	d->on_stop = on_stop;
	d->on_reload = on_reload;
	d->arg = arg;
	signal(SIGPIPE, SIG_IGN);
	d->ev_term = evsignal_new(base, SIGTERM, daemon_on_term, d);
	d->ev_int = evsignal_new(base, SIGINT, daemon_on_term, d);
	d->ev_hup = evsignal_new(base, SIGHUP, daemon_on_hup, d);
	if (d->ev_term == NULL || d->ev_int == NULL || d->ev_hup == NULL ||
	    event_add(d->ev_term, NULL) == -1 ||
	    event_add(d->ev_int, NULL) == -1 ||
	    event_add(d->ev_hup, NULL) == -1) {
		log_errorx("cannot set up the signal handlers");
		return (-1);
	}
	return (0);
}

/* daemon_ready - tell the waiting parent we are up; drop the terminal */
void
daemon_ready(struct daemon *d)
{
	int fd;

	if (d->readyfd == -1)
		return;
	if (chdir("/") == -1)
		log_warn("chdir /");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		(void)dup2(fd, STDIN_FILENO);
		(void)dup2(fd, STDOUT_FILENO);
		(void)dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	(void)write(d->readyfd, "", 1);
	close(d->readyfd);
	d->readyfd = -1;
}

void
daemon_close(struct daemon *d)
{
	if (d->ev_term != NULL)
		event_free(d->ev_term);
	if (d->ev_int != NULL)
		event_free(d->ev_int);
	if (d->ev_hup != NULL)
		event_free(d->ev_hup);
	d->ev_term = d->ev_int = d->ev_hup = NULL;
	if (d->pidfd != -1) {
		(void)unlink(d->pidfile);	/* may fail after the drop */
		close(d->pidfd);
		d->pidfd = -1;
	}
	free(d->pidfile);
	d->pidfile = NULL;
	if (d->readyfd != -1) {
		close(d->readyfd);	/* the parent exits 1 */
		d->readyfd = -1;
	}
}
