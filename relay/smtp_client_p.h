/*
 * smtp_client_p.h - the inside of the relay's outbound SMTP client
 * (DESIGN.md §5), shared by its files and by nothing else: the
 * connection struct, its states, the RFC 5321 timeouts, and the calls the
 * files make into each other.  The public API and its lifetime rules are
 * in smtp_client.h; the design (endpoints, TLS policy, pipelining,
 * streaming, what is distrusted) is described at the top of
 * smtp_client.c.
 *
 *   smtp_client.c        the connection's life: the one state-changing
 *                        function, references and teardown, endpoints,
 *                        DNS and TCP connect, reply dispatch, bufferevent
 *                        callbacks and timers, the public calls
 *   smtp_client_reply.c  reading replies: lines, codes, multi-line
 *                        replies, EHLO keywords, enhanced status codes,
 *                        the struct smtp_reply handed to callers
 *   smtp_client_setup.c  from the greeting to READY: EHLO/HELO, STARTTLS
 *                        and the handshake per TLS policy
 *   smtp_client_tx.c     one transaction: MAIL, RCPT, DATA (pipelined or
 *                        not), the message streamed with dot-stuffing,
 *                        per-recipient results
 *
 * Lifetime: every entry point from libevent holds a reference
 * (client_ref/client_unref); callbacks into the owner may kill the
 * connection, so after each call-out the code checks c->dead.  Loop
 * thread only.
 */
#ifndef FERRY_SMTP_CLIENT_P_H
#define FERRY_SMTP_CLIENT_P_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "smtp_client.h"
#include "tls.h"
#include "util.h"

/* RFC 5321 §4.5.3.2 timeouts, seconds. */
#define TMO_GREETING	300
#define TMO_EHLO	300
#define TMO_MAIL	300
#define TMO_RCPT	300
#define TMO_DATA_INIT	120
#define TMO_DATA_BLOCK	180
#define TMO_DATA_TERM	600
#define TMO_QUIT	5	/* ours: how long a background QUIT may take */

#define BODY_CHUNK	32768
#define BODY_HIWAT	(256 * 1024)
#define BODY_LOWAT	(64 * 1024)

/* Changed only through client_state(), which logs the change. */
enum cstate {
	CS_START,	/* smtp_client_connect() returned; timer starts us */
	CS_RESOLVE,	/* waiting for the addresses of ep[iep] */
	CS_CONNECT,	/* TCP connect in progress */
	CS_GREETING,
	CS_EHLO,
	CS_HELO,
	CS_STARTTLS,
	CS_TLS,		/* handshake in progress */
	CS_EHLO_TLS,	/* EHLO again, inside TLS */
	CS_IDLE,
	CS_TX,		/* replies to MAIL/RCPT/DATA (and RSET) expected */
	CS_BODY,	/* streaming the message */
	CS_DOT,		/* final reply expected */
	CS_TXFAIL,	/* refused before sending anything; timer completes */
	CS_QUIT,	/* detached: QUIT sent, waiting to free */
};

/* What each written command's reply answers. */
enum cmd_kind { CMD_RSET, CMD_MAIL, CMD_RCPT, CMD_DATA };

struct smtp_client_ctx {
	struct event_base	*base;
	struct dns_resolver	*dns;
	char			*helo;
	SSL_CTX			*ssl_ctx;
	TAILQ_HEAD(, smtp_client) conns;
};

struct smtp_client {
	TAILQ_ENTRY(smtp_client) entry;
	struct smtp_client_ctx	*ctx;
	smtp_client_cb		*cb;
	void			*arg;
	int			 refs;
	int			 dead;
	enum cstate		 state;

	/* where */
	struct hostport		*ep;
	size_t			 nep, iep;
	enum cfg_tls_policy	 tls;
	int64_t			 connect_timeout, idle_timeout;
	struct sockaddr_storage	*addr;
	size_t			 naddr, iaddr;
	int			 plain_retry;	/* opportunistic TLS failed here */
	int			 dns_pending;
	uint64_t		 dns_id;
	char			 peer[HOSTPORT_HOSTMAX + 16];
	char			 why[1024];	/* connect failures so far */

	struct bufferevent	*bev;
	SSL			*ssl;		/* owned by bev once attached */
	struct event		*timer;		/* idle, quit, deferred tx end */
	unsigned		 ext;
	uint64_t		 size_max;
	char			 tlsdesc[TLS_DESCRIBE_MAX];
	struct timespec		 t_connect;
	int			 ntx;		/* transactions begun */

	/* the reply being read */
	int			 rcode;
	int			 rlines;
	size_t			 rlen;
	char			 rtext[SMTP_REPLY_TEXTMAX - 8];

	/* the transaction */
	struct smtp_tx		*tx;
	smtp_tx_cb		*txcb;
	void			*txarg;
	struct timespec		 t_tx;
	size_t			 ncmd;		/* commands in this transaction */
	size_t			 cmd_sent;	/* written so far */
	size_t			 cmd_done;	/* replies read so far */
	int			 has_rset;
	int			 pipelined;
	int			 mail_ok;
	size_t			 naccepted;
	uint8_t			 accepted[SMTP_TX_RCPT_MAX]; /* RCPT said 2xx */
	int			 discard;	/* 354 with no recipient: "." only */
	uint64_t		 body_pos;
	int			 body_bol;
	char			 body_last[2];
};

/* smtp_client.c */
void	client_state(struct smtp_client *c, enum cstate st);
void	client_ref(struct smtp_client *c);
void	client_unref(struct smtp_client *c);
void	client_kill(struct smtp_client *c);
void	client_notify(struct smtp_client *c, int event, const char *why);
void	client_set_timeouts(struct smtp_client *c, int rd, int wr);
int	client_send_line(struct smtp_client *c, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	client_drop_session(struct smtp_client *c);
void	client_endpoint_failed(struct smtp_client *c, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	client_connect_addr(struct smtp_client *c);
void	client_got_reply(struct smtp_client *c);
void	client_protocol_error(struct smtp_client *c, const char *what);
void	client_writecb(struct bufferevent *bev, void *arg);
void	client_eventcb(struct bufferevent *bev, short what, void *arg);

/* smtp_client_reply.c */
void	client_readcb(struct bufferevent *bev, void *arg);
void	client_reply_make(const struct smtp_client *c, struct smtp_reply *r);
void	client_reply_synth(struct smtp_reply *r, int code, const char *status,
	    const char *text);

/* smtp_client_setup.c */
void	client_send_ehlo(struct smtp_client *c, enum cstate st);
void	client_setup_reply(struct smtp_client *c);
void	client_tls_failed(struct smtp_client *c);

/* smtp_client_tx.c */
void	client_tx_reply(struct smtp_client *c);
void	client_dot_reply(struct smtp_client *c);
void	client_body_fill(struct smtp_client *c);
void	client_tx_finish(struct smtp_client *c);
void	client_tx_fail_rest(struct smtp_client *c, int code,
	    const char *status, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
void	client_tx_broken(struct smtp_client *c, const char *what);

#endif
