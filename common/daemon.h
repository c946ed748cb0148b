/*
 * daemon.h - the start-up and signal plumbing both daemons share, in one
 * fixed order (after Postfix's single_server_main and OpenSMTPD's
 * start-up):
 *
 *   1. daemon_detach()      fork unless -d; the parent waits on a
 *                           readiness pipe, so a start-up failure in the
 *                           child still gives a non-zero exit status
 *   2. daemon_state_dir()   state_dir exists, owned by [global] user
 *   3. daemon_pidfile()     the pid file, flock'ed: a second instance on
 *                           the same pid file refuses to start
 *   4. (the caller binds its sockets and reads root-only files)
 *   5. daemon_drop_privileges()  become [global] user
 *   6. (the caller opens the store: after the drop, so every LMDB file is
 *      created by the user that writes it later, and after the fork,
 *      because an MDB_env must not cross a fork and its locks are not
 *      inherited)
 *   7. daemon_signals()     TERM/INT stop, HUP reload, through the loop
 *   8. daemon_ready()       tell the waiting parent, drop the terminal
 *   9. the caller's event loop; daemon_close() at the end
 *
 * Ownership: struct daemon borrows prog and the callbacks' argument; it
 * owns the pid file descriptor, the readiness pipe and the signal events
 * (daemon_close frees them; it removes the pid file when it holds it).
 * Threading: everything here runs on the main thread; the callbacks run
 * from the loop.
 */
#ifndef FERRY_DAEMON_H
#define FERRY_DAEMON_H

struct event_base;
struct event;

struct daemon {
	const char	*prog;		/* "ferry-relay", for messages */
	int		 readyfd;	/* detached child: readiness pipe, or -1 */
	int		 pidfd;		/* locked pid file, or -1 */
	char		*pidfile;	/* its path (owned), or NULL */
	struct event	*ev_term, *ev_int, *ev_hup;
	int		 stopping;	/* a TERM/INT was seen */
	/* again: a second TERM/INT while stopping (exit at once) */
	void		(*on_stop)(void *arg, int sig, int again);
	void		(*on_reload)(void *arg);
	void		*arg;
};

void	daemon_init(struct daemon *d, const char *prog);
/* Detach unless foreground; in the parent this never returns. */
void	daemon_detach(struct daemon *d, int foreground);
int	daemon_state_dir(const char *dir, const char *user);
int	daemon_pidfile(struct daemon *d, const char *path);
int	daemon_drop_privileges(const char *user);
int	daemon_signals(struct daemon *d, struct event_base *base,
	    void (*on_stop)(void *, int, int), void (*on_reload)(void *),
	    void *arg);
void	daemon_ready(struct daemon *d);
void	daemon_close(struct daemon *d);

#endif
