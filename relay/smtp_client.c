/*
 * smtp_client.c - outbound SMTP: connect, greet, EHLO, STARTTLS, send
 * messages, reuse the connection (see smtp_client.h).
 *
 * A connection walks its endpoints in order; for each it resolves the
 * host (common/dns.h, never blocking the loop; IP literals need no DNS),
 * tries every address, and keeps the first session that greets with
 * 2xx, answers EHLO (or HELO) and, per the TLS policy, completes
 * STARTTLS:
 *   require        STARTTLS must be offered; the certificate chain and the
 *                  host name (the configured name, not the address) are
 *                  verified; any failure moves on to the next endpoint.
 *   opportunistic  STARTTLS when offered, no verification; a failed
 *                  handshake is retried once on the same address in
 *                  plain text (what every MTA does: TLS that cannot work
 *                  must not stop the mail).
 *   none           never.
 * A transaction is MAIL, RCPT..., DATA written in one go when the server
 * offers PIPELINING (RFC 2920), else one command per round trip; a
 * reused connection starts with RSET.  The body is read from the spool
 * file in 32 KiB chunks only while less than BODY_HIWAT bytes wait in
 * the output buffer, so memory does not grow with message size.  Header
 * lines the caller adds (smtp_tx.headers: the relay's
 * Authentication-Results) go out first, as part of the same stream, so
 * dot-stuffing and SIZE= cover them too.
 *
 * SECURITY: everything the server sends is distrusted: reply lines
 * longer than SMTP_LINE_MAX, replies of more than SMTP_REPLY_LINES_MAX
 * lines, codes outside 200..559, continuation lines whose code changes
 * and replies nobody asked for all end the session.  Reply text is
 * stored escaped (str_printable), so it can go to logs and DSNs as is.
 * Bytes the server sends after its STARTTLS 220 and before the
 * handshake end the session (the client-side twin of CVE-2011-0411).
 * Timeouts follow RFC 5321 §4.5.3.2.
 *
 * States: enum cstate (smtp_client_p.h); every change goes through
 * client_state(), which logs "old -> new" at debug level.
 *
 * Lifetime: callbacks into the owner may close or abort the connection.
 * Every entry point from libevent holds a reference (client_ref) and the
 * memory is released only when the last reference goes; after each
 * call-out the code checks c->dead before touching anything else.
 *
 * Files (their struct and cross calls in smtp_client_p.h):
 *   smtp_client.c        connection life, endpoints, callbacks, public
 *   smtp_client_reply.c  reading and checking replies
 *   smtp_client_setup.c  greeting, EHLO/HELO, STARTTLS
 *   smtp_client_tx.c     MAIL/RCPT/DATA, the body, per-recipient results
 */

#include <sys/queue.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "dns.h"
#include "log.h"
#include "smtp_client_p.h"
#include "tls.h"
#include "util.h"

static const char *const state_names[] = {
	"START", "RESOLVE", "CONNECT", "GREETING", "EHLO", "HELO",
	"STARTTLS", "TLS", "EHLO_TLS", "IDLE", "TX", "BODY", "DOT", "TXFAIL",
	"QUIT",
};
_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == CS_QUIT + 1,
    "state_names[] and enum cstate differ");

static void	client_next_address(struct smtp_client *c);

/*
 * client_state - every state change goes through here and is logged at
 * debug level, so a session's path shows in the log.
 */
void
client_state(struct smtp_client *c, enum cstate st)
{
	if (c->state == st)
		return;
	log_debug("smtp-client: %p [%s]: %s -> %s", (void *)c,
	    c->peer[0] ? c->peer : "-", state_names[c->state],
	    state_names[st]);
	c->state = st;
}

/* ---- reference counting and teardown ----------------------------------- */

static void
client_free(struct smtp_client *c)
{
	if (c->dns_pending && c->ctx->dns != NULL)
		dns_cancel(c->ctx->dns, c->dns_id);
	if (c->bev != NULL)
		bufferevent_free(c->bev);	/* frees the SSL too */
	else if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->timer != NULL)
		event_free(c->timer);
	TAILQ_REMOVE(&c->ctx->conns, c, entry);
	free(c->ep);
	free(c->addr);
	free(c);
}

void
client_ref(struct smtp_client *c)
{
	c->refs++;
}

/* client_unref - drop a reference; frees a dead client at the last one */
void
client_unref(struct smtp_client *c)
{
	if (--c->refs == 0 && c->dead)
		client_free(c);
}

/* client_kill - no more callbacks, no more I/O; memory goes at unref */
void
client_kill(struct smtp_client *c)
{
	c->dead = 1;
	c->cb = NULL;
	c->txcb = NULL;
	if (c->bev != NULL) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	}
	if (c->timer != NULL)
		event_del(c->timer);
	if (c->dns_pending && c->ctx->dns != NULL) {
		dns_cancel(c->ctx->dns, c->dns_id);
		c->dns_pending = 0;
	}
}

/* client_notify - tell the owner; the client is dead after FAILED/CLOSED */
void
client_notify(struct smtp_client *c, int event, const char *why)
{
	smtp_client_cb *cb = c->cb;
	void *arg = c->arg;

	if (event != SMTP_CLIENT_READY)
		client_kill(c);
	if (cb != NULL)
		cb(c, event, why, arg);
}

/* ---- I/O helpers ------------------------------------------------------- */

void
client_set_timeouts(struct smtp_client *c, int rd, int wr)
{
	struct timeval r = { rd, 0 }, w = { wr, 0 };

	bufferevent_set_timeouts(c->bev, rd > 0 ? &r : NULL,
	    wr > 0 ? &w : NULL);
}

int
client_send_line(struct smtp_client *c, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	if (rc < 0 || evbuffer_add(out, "\r\n", 2) == -1)
		return (-1);
	return (0);
}

/* client_drop_session - close the TCP/TLS session of the current address */
void
client_drop_session(struct smtp_client *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->ssl = NULL;
	}
	c->rlines = 0;
	c->rlen = 0;
}

/* ---- connecting -------------------------------------------------------- */

/*
 * client_endpoint_failed - note why this address failed and move on: to
 * the next address, the next endpoint, or SMTP_CLIENT_FAILED.
 */
void
client_endpoint_failed(struct smtp_client *c, const char *fmt, ...)
{
	char buf[512];
	size_t len = strlen(c->why);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	snprintf(c->why + len, sizeof(c->why) - len, "%s%s", len ? "; " : "",
	    buf);
	client_drop_session(c);
	c->plain_retry = 0;
	c->iaddr++;
	client_next_address(c);
}

static void
dns_done(int status, const struct dns_result *res, void *arg)
{
	struct smtp_client *c = arg;
	size_t i;

	c->dns_pending = 0;
	if (c->dead)
		return;
	client_ref(c);
	if (status != DNS_OK || res->count == 0) {
		c->iep++;
		c->iaddr = c->naddr = 0;
		snprintf(c->why + strlen(c->why), sizeof(c->why) -
		    strlen(c->why), "%s%s: host not found (%s)",
		    c->why[0] ? "; " : "", c->ep[c->iep - 1].host,
		    status == DNS_OK ? "no address" : res->why);
		client_next_address(c);
		client_unref(c);
		return;
	}
	free(c->addr);
	if ((c->addr = calloc(res->count, sizeof(*c->addr))) == NULL) {
		c->naddr = 0;
	} else {
		for (i = 0; i < res->count; i++)
			c->addr[i] = res->addr[i];
		c->naddr = res->count;
	}
	c->iaddr = 0;
	client_next_address(c);
	client_unref(c);
}

/* literal_addr - an IP literal endpoint needs no DNS */
static int
literal_addr(const struct hostport *hp, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, hp->host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return (1);
	}
	if (inet_pton(AF_INET6, hp->host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return (1);
	}
	return (0);
}

/* client_connect_addr - start TCP to addr[iaddr] of ep[iep] */
void
client_connect_addr(struct smtp_client *c)
{
	struct sockaddr_storage ss = c->addr[c->iaddr];
	const struct hostport *hp = &c->ep[c->iep];
	socklen_t sl;

	if (ss.ss_family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)hp->port);
		sl = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_port =
		    htons((uint16_t)hp->port);
		sl = sizeof(struct sockaddr_in6);
	}
	hostport_format(hp, c->peer, sizeof(c->peer));
	c->bev = bufferevent_socket_new(c->ctx->base, -1,
	    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		client_endpoint_failed(c, "connect to %s: out of memory",
		    c->peer);
		return;
	}
	bufferevent_setcb(c->bev, client_readcb, client_writecb,
	    client_eventcb, c);
	/* libevent times the connect with the write timeout */
	client_set_timeouts(c, 0, (int)c->connect_timeout);
	client_state(c, CS_CONNECT);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss,
	    (int)sl) == -1)
		client_endpoint_failed(c, "connect to %s: %s", c->peer,
		    strerror(errno));
}

/*
 * client_next_address - try addr[iaddr] of ep[iep], resolving ep[iep]
 * first when needed; past the last endpoint, report SMTP_CLIENT_FAILED.
 */
static void
client_next_address(struct smtp_client *c)
{
	char err[256];

	while (c->iep < c->nep) {
		const struct hostport *hp = &c->ep[c->iep];

		if (c->iaddr < c->naddr) {
			client_connect_addr(c);
			return;
		}
		if (c->naddr > 0) {		/* all addresses tried */
			c->iep++;
			c->naddr = c->iaddr = 0;
			continue;
		}
		free(c->addr);
		if ((c->addr = calloc(1, sizeof(*c->addr))) == NULL)
			break;
		if (literal_addr(hp, &c->addr[0])) {
			c->naddr = 1;
			c->iaddr = 0;
			continue;
		}
		if (c->ctx->dns == NULL) {
			snprintf(c->why + strlen(c->why), sizeof(c->why) -
			    strlen(c->why), "%s%s: no resolver for host names",
			    c->why[0] ? "; " : "", hp->host);
			c->iep++;
			continue;
		}
		client_state(c, CS_RESOLVE);
		if (dns_lookup_addr(c->ctx->dns, hp->host, dns_done, c,
		    &c->dns_id, err, sizeof(err)) == -1) {
			snprintf(c->why + strlen(c->why), sizeof(c->why) -
			    strlen(c->why), "%s%s: %s", c->why[0] ? "; " : "",
			    hp->host, err);
			c->iep++;
			continue;
		}
		c->dns_pending = 1;
		return;
	}
	client_notify(c, SMTP_CLIENT_FAILED, c->why[0] ? c->why :
	    "no endpoint to connect to");
}

/* ---- libevent callbacks ------------------------------------------------ */

/* client_got_reply - one complete reply in c->rcode/rtext: dispatch it */
void
client_got_reply(struct smtp_client *c)
{
	switch (c->state) {
	case CS_GREETING:
	case CS_EHLO:
	case CS_HELO:
	case CS_STARTTLS:
	case CS_EHLO_TLS:
		client_setup_reply(c);
		break;
	case CS_TX:
		client_tx_reply(c);
		break;
	case CS_DOT:
		client_dot_reply(c);
		break;
	case CS_QUIT:
		client_kill(c);
		break;
	case CS_IDLE:
		/* Typically "421 timeout" before the server hangs up. */
		client_notify(c, SMTP_CLIENT_CLOSED, "server spoke while idle");
		break;
	default:
		/* CS_BODY: a reply before our dot (the server gave up);
		 * anything else is a reply nobody asked for. */
		if (c->tx != NULL) {
			client_tx_fail_rest(c,
			    c->rcode / 100 == 5 ? c->rcode : 451,
			    c->rcode / 100 == 5 ? "5.0.0" : "4.4.2",
			    "%s replied during the message body: %d %s",
			    c->peer, c->rcode, c->rtext);
			c->tx->closed = 1;
			client_tx_finish(c);
		} else
			client_endpoint_failed(c, "%s: unexpected reply",
			    c->peer);
		break;
	}
}

/* client_protocol_error - the server broke the protocol: drop the session */
void
client_protocol_error(struct smtp_client *c, const char *what)
{
	switch (c->state) {
	case CS_TX:
	case CS_BODY:
	case CS_DOT:
	case CS_TXFAIL:
		client_tx_broken(c, what);
		break;
	case CS_IDLE:
		client_notify(c, SMTP_CLIENT_CLOSED, what);
		break;
	case CS_QUIT:
		client_kill(c);
		break;
	default:
		client_endpoint_failed(c, "%s: %s", c->peer, what);
		break;
	}
}

void
client_writecb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	client_ref(c);
	if (!c->dead && c->bev == bev && c->state == CS_BODY)
		client_body_fill(c);
	client_unref(c);
}

void
client_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;
	const char *why;
	int saved = errno;

	client_ref(c);
	if (c->dead || c->bev != bev)
		goto out;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CS_CONNECT) {
			client_state(c, CS_GREETING);
			client_set_timeouts(c, TMO_GREETING, TMO_EHLO);
			bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		} else if (c->state == CS_TLS) {
			client_send_ehlo(c, CS_EHLO_TLS);
		}
		goto out;
	}
	if (what & BEV_EVENT_TIMEOUT)
		why = "timeout";
	else if (what & BEV_EVENT_EOF)
		why = "connection closed by the server";
	else
		why = saved ? strerror(saved) : "connection error";

	switch (c->state) {
	case CS_CONNECT:
		client_endpoint_failed(c, "connect to %s: %s", c->peer,
		    (what & BEV_EVENT_TIMEOUT) ? "connection timed out" : why);
		break;
	case CS_TLS:
		if (what & BEV_EVENT_TIMEOUT)
			client_endpoint_failed(c, "%s: TLS handshake timed out",
			    c->peer);
		else
			client_tls_failed(c);
		break;
	default:
		client_protocol_error(c, why);
		break;
	}
out:
	client_unref(c);
}

/* timer_cb - idle timeout, background QUIT timeout, deferred tx end */
static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	(void)fd;
	(void)what;
	client_ref(c);
	switch (c->state) {
	case CS_START:
		client_next_address(c);
		break;
	case CS_IDLE: {
		/* Idle long enough: QUIT politely, in the background. */
		smtp_client_cb *cb = c->cb;
		void *cbarg = c->arg;
		struct smtp_client *cc = c;

		smtp_client_close(&cc);
		if (cb != NULL)
			cb(c, SMTP_CLIENT_CLOSED, "idle", cbarg);
		break;
	}
	case CS_TXFAIL:
		client_tx_finish(c);
		break;
	default:
		client_kill(c);
		break;
	}
	client_unref(c);
}

/* ---- public ------------------------------------------------------------ */

struct smtp_client_ctx *
smtp_client_ctx_new(struct event_base *base, const char *helo_name,
    const char *ca_file, char *err, size_t errlen)
{
	struct smtp_client_ctx *ctx;

	if ((ctx = calloc(1, sizeof(*ctx))) == NULL ||
	    (ctx->helo = strdup(helo_name)) == NULL) {
		free(ctx);
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	ctx->base = base;
	TAILQ_INIT(&ctx->conns);
	ctx->ssl_ctx = tls_client_ctx_new(ca_file != NULL && *ca_file ?
	    ca_file : NULL, err, errlen);
	if (ctx->ssl_ctx == NULL) {
		free(ctx->helo);
		free(ctx);
		return (NULL);
	}
	return (ctx);
}

void
smtp_client_ctx_set_resolver(struct smtp_client_ctx *ctx,
    struct dns_resolver *dns)
{
	ctx->dns = dns;
}

/* smtp_client_ctx_free - drop every connection, no callbacks */
void
smtp_client_ctx_free(struct smtp_client_ctx **ctxp)
{
	struct smtp_client_ctx *ctx;
	struct smtp_client *c;

	if (ctxp == NULL || (ctx = *ctxp) == NULL)
		return;
	while ((c = TAILQ_FIRST(&ctx->conns)) != NULL) {
		client_kill(c);
		client_free(c);	/* nothing of ours is on the stack here */
	}
	tls_ctx_free(&ctx->ssl_ctx);
	free(ctx->helo);
	free(ctx);
	*ctxp = NULL;
}

/*
 * smtp_client_connect - start connecting; the outcome comes as
 * SMTP_CLIENT_READY or SMTP_CLIENT_FAILED, never from inside this call.
 */
struct smtp_client *
smtp_client_connect(struct smtp_client_ctx *ctx,
    const struct smtp_client_params *p, smtp_client_cb *cb, void *arg,
    char *err, size_t errlen)
{
	struct smtp_client *c;

	if (p->nep == 0) {
		errbuf_set(err, errlen, "no endpoint");
		return (NULL);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->ep = calloc(p->nep, sizeof(*c->ep))) == NULL) {
		free(c);
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	memcpy(c->ep, p->ep, p->nep * sizeof(*c->ep));
	c->nep = p->nep;
	c->ctx = ctx;
	c->cb = cb;
	c->arg = arg;
	c->tls = p->tls;
	c->connect_timeout = p->connect_timeout > 0 ? p->connect_timeout : 30;
	c->idle_timeout = p->idle_timeout;
	if ((c->timer = evtimer_new(ctx->base, timer_cb, c)) == NULL) {
		free(c->ep);
		free(c);
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	TAILQ_INSERT_TAIL(&ctx->conns, c, entry);
	clock_gettime(CLOCK_MONOTONIC, &c->t_connect);
	/* Start from the loop so the callback never runs inside this call
	 * (an IP literal that fails at once would otherwise). */
	client_state(c, CS_START);
	event_active(c->timer, EV_TIMEOUT, 0);
	return (c);
}

const char *
smtp_client_peer(const struct smtp_client *c)
{
	return (c->peer[0] ? c->peer : "none");
}

const char *
smtp_client_peer_host(const struct smtp_client *c)
{
	return (c->iep < c->nep ? c->ep[c->iep].host : "none");
}

/* smtp_client_skipped - why earlier endpoints were passed over ("" if none) */
const char *
smtp_client_skipped(const struct smtp_client *c)
{
	return (c->why);
}

const char *
smtp_client_tls(const struct smtp_client *c)
{
	return (c->tlsdesc[0] ? c->tlsdesc : "no TLS");
}

/* smtp_client_close - give an idle connection back: QUIT in the background */
void
smtp_client_close(struct smtp_client **cp)
{
	struct smtp_client *c;
	struct timeval tv = { TMO_QUIT, 0 };

	if (cp == NULL || (c = *cp) == NULL)
		return;
	*cp = NULL;
	if (c->dead)
		return;
	if (c->state != CS_IDLE || c->bev == NULL) {
		smtp_client_abort(&c);
		return;
	}
	c->cb = NULL;
	client_state(c, CS_QUIT);
	client_set_timeouts(c, TMO_QUIT, TMO_QUIT);
	client_send_line(c, "QUIT");
	event_del(c->timer);
	event_add(c->timer, &tv);
}

/* smtp_client_abort - drop the connection now, no callbacks */
void
smtp_client_abort(struct smtp_client **cp)
{
	struct smtp_client *c;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	*cp = NULL;
	client_kill(c);
	if (c->refs == 0)
		client_free(c);
}
