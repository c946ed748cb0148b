/*
 * smtp_server_p.h - the inside of the relay's SMTP server (DESIGN.md §5),
 * shared by its files and by nothing else: the session and transaction
 * structs, the session states, and the calls the files make into each
 * other.  The public API is in relay.h; the design (states, reply codes,
 * exposure) is described at the top of smtp_server.c.
 *
 *   smtp_server.c          listeners, accepting (connection limits),
 *                          start, shutdown and teardown of the server
 *   smtp_server_session.c  one session: replies, the one state-changing
 *                          function, the command-line reader, libevent
 *                          callbacks, closing
 *   smtp_server_cmd.c      the commands (EHLO..QUIT) and the recipient
 *                          policy ([relay] domains, the recipient list)
 *   smtp_server_data.c     DATA: the envelope and Received: header, the
 *                          message streamed through checks.c into the
 *                          spool, the checks' verdict, the commit, 250
 *   smtp_server_tls.c      STARTTLS: discarding pre-handshake bytes,
 *                          the handshake, the restart inside TLS, and
 *                          flushing the last record on close
 *   smtp_server_limits.c   deadlines (a whole command line, DATA at a
 *                          minimum rate), stress mode (shorter timeouts
 *                          and a lower per-address cap under load)
 *
 * Ownership: struct smtp_server owns its sessions (a TAILQ); a session
 * owns its bufferevent, its reply buffer and its transaction.  A session
 * is freed only by session_free() (smtp_server.c), reached from the
 * write callback once its last reply is out, from the event callback
 * when the client is gone, or from the spool's callback when the client
 * left during the commit.  Loop thread only.
 */
#ifndef FERRY_SMTP_SERVER_P_H
#define FERRY_SMTP_SERVER_P_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "checks.h"
#include "drain.h"
#include "queue.h"
#include "relay.h"
#include "smtp_parse.h"
#include "smtp_server.h"
#include "spool.h"
#include "srs.h"
#include "util.h"

#define SMTP_MAX_ERRORS		20	/* then 421 and close */
#define SMTP_SHUTDOWN_GRACE	60	/* seconds for DATA to finish */
#define SMTP_SCRATCH		16384	/* DATA output per step */
#define SMTP_ADDRSTRLEN		INET6_ADDRSTRLEN
#define SMTP_ACCEPT_PAUSE_MS	500	/* listeners off after EMFILE */
#define SMTP_ACCEPT_LOG_EVERY	10	/* seconds between EMFILE reports */
#define SMTP_STORE_FULL_HOLD	10	/* seconds of 452 after a full map */

/* Changed only through session_state(), which logs the change. */
enum session_state {
	S_INIT,		/* greeted, waiting for EHLO/HELO */
	S_READY,	/* no transaction */
	S_MAIL,		/* MAIL given */
	S_RCPT,		/* at least one RCPT accepted */
	S_DATA,		/* message bytes streaming */
	S_COMMIT,	/* waiting for the spool */
	S_TLS_WAIT,	/* 220 to STARTTLS is being flushed */
	S_TLS_HANDSHAKE,
	S_CLOSING,	/* last reply flushing, then freed */
};

struct smtp_session;

/* One mail transaction: MAIL .. end of DATA.  Owned by its session. */
struct smtp_tx {
	struct smtp_session	*s;
	char			*sender;	/* "" for <> */
	int			 smtputf8;
	enum smtp_body		 body;
	struct strlist		 rcpts;
	struct spool_msg	*msg;		/* during DATA */
	struct queue_record	 rec;		/* envelope, built at DATA */
	struct smtp_data	 data;
	struct msg_checks	*checks;	/* SPF, DKIM, A-R, keys */
};

struct smtp_session {
	TAILQ_ENTRY(smtp_session) entry;
	struct smtp_server	*server;
	struct bufferevent	*bev;
	struct evbuffer		*pend;		/* TLS: replies of a batch */
	enum session_state	 state;
	char			 addr[SMTP_ADDRSTRLEN];
	struct sockaddr_storage	 sa;		/* the client, for SPF */
	char			*helo;		/* sanitised; NULL before HELO */
	unsigned		 esmtp:1;
	unsigned		 tls:1;
	unsigned		 dead:1;	/* socket gone during COMMIT */
	unsigned		 skip_line:1;	/* discarding an overlong line */
	unsigned		 quit_after_tx:1; /* shutting down */
	unsigned		 stressed:1;	/* lived through stress mode:
						   its limits for good */
	uint8_t			 errors;
	struct smtp_tx		*tx;
	/* The deadline of the current phase (a command line, DATA): armed
	 * by session_deadline_arm() at every state change and command,
	 * not reset by each byte as the bufferevent's idle timeouts are. */
	struct event		*deadline_ev;
	int64_t			 phase_start;	/* monotonic ms */
};

TAILQ_HEAD(session_list, smtp_session);

struct smtp_server {
	struct relay		*relay;
	/* Sockets are bound by smtp_server_new() (maybe port 25, before
	 * root is dropped) but listen() only in smtp_server_start(), once
	 * the control socket exists: a client that gets through is served.
	 * lfds[i] until then, listeners[i] (owning it) after. */
	int			*lfds;
	struct evconnlistener	**listeners;
	size_t			 nlisteners;
	SSL_CTX			*tls_ctx;	/* NULL: no STARTTLS */
	struct session_list	 sessions;
	size_t			 nsessions;
	struct strlist		 rcptlist;	/* sorted, lower case */
	int			 have_rcptlist;
	char			 hostname[256];
	int			 shutting_down;
	void			(*done)(void *);
	void			*done_arg;
	struct event		*done_ev;	/* calls done from the loop */
	struct event		*grace_ev;	/* shutdown deadline */
	/* Out of file descriptors: listeners paused until pause_ev, one
	 * client answered 421 through the reserve descriptor, the log
	 * line given once per SMTP_ACCEPT_LOG_EVERY with a count. */
	struct event		*pause_ev;
	int			 paused;
	int			 reserve_fd;	/* /dev/null; -1 when spent */
	int64_t			 accept_log_at;	/* monotonic ms */
	uint64_t		 accept_errors;	/* since the last report */
	int			 stress;	/* stress mode is on */
	unsigned char		 scratch[SMTP_SCRATCH];
};

static inline struct config *
server_cfg(const struct smtp_server *server)
{
	return (server->relay->cfg);
}

/* smtp_server.c */
void	session_free(struct smtp_session *s);

/* smtp_server_session.c */
void	session_reply(struct smtp_session *s, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	session_flush(struct smtp_session *s);
void	session_state(struct smtp_session *s, enum session_state st);
void	session_set_timeouts(struct smtp_session *s, int64_t secs);
void	session_close(struct smtp_session *s);
void	session_count_reject(struct smtp_session *s, enum reject_reason why);
int	session_store_full(const struct smtp_session *s);
int	session_error(struct smtp_session *s);
void	session_tx_free(struct smtp_tx **txp);
void	session_reset(struct smtp_session *s);
void	session_process(struct smtp_session *s);
void	session_read_cb(struct bufferevent *bev, void *arg);
void	session_write_cb(struct bufferevent *bev, void *arg);
void	session_event_cb(struct bufferevent *bev, short what, void *arg);

/* smtp_server_cmd.c */
void	session_command(struct smtp_session *s, const char *line, size_t len);

/* smtp_server_data.c */
void	session_data_start(struct smtp_session *s);
int	session_data(struct smtp_session *s);

/* smtp_server_limits.c */
int64_t	server_mono_ms(void);
int	session_deadline_new(struct smtp_session *s);
void	session_deadline_arm(struct smtp_session *s);
void	session_deadline_data(struct smtp_session *s);
void	server_stress_update(struct smtp_server *server);
int64_t	server_max_per_ip(const struct smtp_server *server);

/* smtp_server_tls.c */
void	session_starttls(struct smtp_session *s);
void	session_start_tls(struct smtp_session *s);
void	session_tls_ready(struct smtp_session *s, struct bufferevent *bev);
void	session_tls_failed(struct smtp_session *s, struct bufferevent *bev);
int	session_tls_drain_on_close(struct smtp_session *s,
	    struct bufferevent *bev);

#endif
