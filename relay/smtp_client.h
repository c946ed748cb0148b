/*
 * smtp_client.h - outbound SMTP on the relay's libevent loop.
 *
 * One struct smtp_client is one connection to one destination.  It is
 * opened with a list of endpoints (host:port, tried in order: the first
 * that greets us with 2xx and survives EHLO/STARTTLS wins), reports
 * SMTP_CLIENT_READY, then runs one transaction at a time
 * (smtp_client_send): MAIL, one RCPT per recipient, DATA, the message
 * (optional header lines from memory, then the bytes of a file
 * descriptor) streamed with dot-stuffing.  Between
 * transactions it sits idle; after idle_timeout seconds it says QUIT and
 * reports SMTP_CLIENT_CLOSED.
 *
 * Results are per recipient: every recipient of a transaction gets one
 * struct smtp_reply whose first digit says what happened (2 delivered,
 * 4 try again later, 5 refused).  Failures that are not a server reply
 * (lost connection, timeout, our own refusal to send) get a synthetic
 * reply with synthetic = 1, so a caller needs only the code class.
 *
 * Ownership and lifetime:
 *  - struct smtp_client_ctx owns every connection made through it,
 *    including those closing in the background; smtp_client_ctx_free()
 *    drops them all without calling back.
 *  - A connection belongs to the caller until SMTP_CLIENT_FAILED or
 *    SMTP_CLIENT_CLOSED is reported: after that callback returns the
 *    client frees itself and the caller must forget the pointer.
 *  - smtp_client_close() hands an idle connection back (QUIT in the
 *    background); smtp_client_abort() drops any connection at once.
 *    Neither calls back.  Both may be called from inside a callback.
 *  - struct smtp_tx and everything it points to must stay valid until
 *    its callback has run (or the connection was closed/aborted); the
 *    file descriptor stays the caller's.
 *
 * Threading: loop thread only.
 */
#ifndef FERRY_SMTP_CLIENT_H
#define FERRY_SMTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"
#include "util.h"

struct dns_resolver;
struct smtp_client;
struct smtp_client_ctx;

#define SMTP_REPLY_TEXTMAX	512	/* what we keep of one reply */
#define SMTP_LINE_MAX		2048	/* longer reply lines: protocol error */
#define SMTP_REPLY_LINES_MAX	100	/* lines of one multi-line reply */
#define SMTP_TX_RCPT_MAX	100	/* recipients per transaction */

/* One reply, as logged and as put in a DSN. */
struct smtp_reply {
	int	 code;			/* 200..599 */
	int	 synthetic;		/* 1: made up here, not said by the server */
	char	 status[16];		/* enhanced status "5.1.1"; always set */
	char	 text[SMTP_REPLY_TEXTMAX]; /* "550 5.1.1 <a@b>: no such user",
					   printable, continuation lines
					   joined with ' ' */
};

/* Extensions found in the EHLO reply. */
#define SMTP_EXT_STARTTLS	0x01
#define SMTP_EXT_PIPELINING	0x02
#define SMTP_EXT_SIZE		0x04
#define SMTP_EXT_8BITMIME	0x08
#define SMTP_EXT_SMTPUTF8	0x10
#define SMTP_EXT_ENHANCED	0x20

enum smtp_client_event {
	SMTP_CLIENT_READY,	/* connected, greeted, EHLO'd (and TLS'd) */
	SMTP_CLIENT_FAILED,	/* could not connect to any endpoint */
	SMTP_CLIENT_CLOSED,	/* an idle connection went away */
};

/*
 * Event callback.  why: SMTP_CLIENT_FAILED/CLOSED, a printable reason
 * ("connect to 127.0.0.1:25: Connection refused"); NULL for READY.
 */
typedef void smtp_client_cb(struct smtp_client *c, int event, const char *why,
    void *arg);

/* One message to send. */
struct smtp_tx {
	/* in */
	const char	 *sender;	/* without <>; "" for the null sender */
	const char	**rcpt;		/* without <>; 1..SMTP_TX_RCPT_MAX */
	size_t		  nrcpt;
	int		  fd;		/* the message: bytes [offset, offset+size) */
	uint64_t	  offset;
	uint64_t	  size;
	/* Header fields sent in front of the message (the relay's
	 * Authentication-Results): hlen bytes of complete CRLF-terminated
	 * lines, or NULL/0.  Dot-stuffed like the rest and counted in
	 * SIZE=; the file is not touched. */
	const char	 *headers;
	size_t		  hlen;
	/* The final dot waits, once the body is written, until
	 * smtp_client_release_dot(): the caller commits something first
	 * that must be durable before the server can accept the message
	 * (the queue's in-flight mark), while the commands and the body
	 * already travel. */
	int		  hold_dot;
	/* out: one reply per recipient, allocated by the caller */
	struct smtp_reply *result;
	int		  closed;	/* the connection is gone: the client
					   frees itself when the callback
					   returns, no SMTP_CLIENT_CLOSED */
	int		  unavailable;	/* the server said 421 */
	double		  elapsed;	/* seconds: connect (first tx) or tx start
					   (reused connection) to final reply */
};

typedef void smtp_tx_cb(struct smtp_client *c, struct smtp_tx *tx, void *arg);

/* How to reach one destination. */
struct smtp_client_params {
	const struct hostport	*ep;	/* tried in order; copied */
	size_t			 nep;
	enum cfg_tls_policy	 tls;
	int64_t			 connect_timeout;	/* seconds */
	int64_t			 idle_timeout;		/* seconds */
};

struct smtp_client_ctx *smtp_client_ctx_new(struct event_base *base,
	    const char *helo_name, const char *ca_file, char *err,
	    size_t errlen);
void	smtp_client_ctx_set_resolver(struct smtp_client_ctx *ctx,
	    struct dns_resolver *dns);
void	smtp_client_ctx_free(struct smtp_client_ctx **ctx);

struct smtp_client *smtp_client_connect(struct smtp_client_ctx *ctx,
	    const struct smtp_client_params *params, smtp_client_cb *cb,
	    void *arg, char *err, size_t errlen);
int	smtp_client_send(struct smtp_client *c, struct smtp_tx *tx,
	    smtp_tx_cb *cb, void *arg, char *err, size_t errlen);
/* smtp_client_release_dot - tx (sent with hold_dot) may end: the final
 * dot goes out now, or as soon as the body is written.  A tx that is no
 * longer c's is ignored. */
void	smtp_client_release_dot(struct smtp_client *c, struct smtp_tx *tx);
const char *smtp_client_peer(const struct smtp_client *c);
const char *smtp_client_peer_host(const struct smtp_client *c);
const char *smtp_client_tls(const struct smtp_client *c);
const char *smtp_client_skipped(const struct smtp_client *c);
void	smtp_client_close(struct smtp_client **c);
void	smtp_client_abort(struct smtp_client **c);

/* Parsing, exposed for unit tests.  Returns 1 for a complete reply (the
 * last line), 0 for a continuation line, -1 for a malformed line. */
int	smtp_reply_line(const char *line, size_t len, int *code_r,
	    const char **text_r);

#endif
