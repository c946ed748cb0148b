/*
 * imap_client.c - asynchronous, pipelined IMAP client connection (see
 * imap_client.h for the contract): the connection's life.  Commands are
 * in imap_client_cmd.c, the read side in imap_client_resp.c, the
 * protocol text in imap_wire.c (imap_client_p.h has the map).
 *
 * Layers, bottom up: a socket bufferevent; an OpenSSL filter for
 * implicit TLS or after STARTTLS; a zlib filter after COMPRESS=DEFLATE.
 * c->top is the uppermost; freeing it frees the rest (CLOSE_ON_FREE).
 * Every layer has read and write high-water marks, so memory held in
 * buffers is bounded whatever the server or the caller does.
 *
 * Read side (imap_client_resp.c): bytes from c->top go through the
 * incremental parser (imap_parse.c); its events build the current
 * response in c->r.  Small responses (LIST, STATUS, CAPABILITY, tagged
 * completions) are collected as tokens in a bounded arena and
 * dispatched at their end; FETCH and SEARCH are handled as a stream, so
 * a body literal or a 200,000-UID SEARCH never sits in memory.  The
 * parser stops right after any event when the caller pauses, so
 * back-pressure takes effect in the middle of a literal.
 *
 * Write side (imap_client_cmd.c): commands wait in two queues
 * (internal setup commands first, the caller's after READY) and are
 * started when fewer than `window` are in flight.  The writer
 * (c->writer) is the one command whose bytes are going out; it keeps
 * the wire until its last segment is written, because nothing may be
 * interleaved with a command that waits for a "+" continuation or
 * whose APPEND literal the caller is still streaming.  Commands that
 * change the stream (STARTTLS, COMPRESS, AUTHENTICATE) or end it
 * (LOGOUT) are barriers: nothing is started after them until their
 * tagged response.
 *
 * States: enum imapc_state (imap_client_p.h), CONNECTING ->
 * [TLS_HANDSHAKE] -> GREETING -> SETUP [-> TLS_HANDSHAKE -> SETUP] ->
 * READY [-> LOGOUT], then FAILED -> CLOSED, or FREED from anywhere;
 * every change goes through imapc_state(), which logs it.
 *
 * Lifetime: every entry from libevent increments c->busy (a depth, not
 * a state); failures only move the client to FAILED and schedule
 * c->ev_later, which tears the connection down (completing each
 * command, then the CLOSED callback) outside any parser or bufferevent
 * callback; imap_client_free() inside a callback is deferred the same
 * way (FREED until the outermost callback returns).  So no callback
 * ever runs with a freed client or a freed input buffer below it.
 *
 * SECURITY: every byte from the server is untrusted: the parser bounds
 * tokens, lists and lines; this file bounds collected responses
 * (RESP_TOKENS_MAX, RESP_ARENA_MAX), flags per message, and refuses a
 * tag it did not send, a continuation nobody asked for, and any data
 * after a STARTTLS or COMPRESS response (command injection, as in
 * CVE-2011-0411 for SMTP).  TLS verifies the certificate and host name
 * unless the caller turns it off.  The secret is wiped after it is
 * rendered into the authentication command; command logging masks it.
 * Text from the server is passed through str_printable() before it
 * reaches a log line or a result.
 *
 * Threading: one event loop, no global state.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "imap_client_p.h"
#include "log.h"
#include "tls.h"
#include "zlib_filter.h"

static void	teardown(struct imap_client *c);
static int	client_leave(struct imap_client *c);
static void	setup_cb(struct imap_client *c, const struct imap_result *res,
		    void *arg);
static void	read_cb(struct bufferevent *b, void *arg);
static void	write_cb(struct bufferevent *b, void *arg);
static void	event_cb(struct bufferevent *b, short what, void *arg);

/* ---- state ---------------------------------------------------------- */

static const char *const state_names[] = {
	"CONNECTING", "TLS_HANDSHAKE", "GREETING", "SETUP", "READY", "LOGOUT",
	"FAILED", "CLOSED", "FREED",
};
_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == ICS_FREED + 1,
    "state_names[] and enum imapc_state differ");

/* imapc_state - the one place the connection state changes; logged */
void
imapc_state(struct imap_client *c, enum imapc_state st)
{
	if (c->state == st)
		return;
	log_debug("%s: state %s -> %s", c->id, state_names[c->state],
	    state_names[st]);
	c->state = st;
}

/* ---- accessors ------------------------------------------------------ */

int
imap_client_has_cap(const struct imap_client *c, enum imap_cap cap)
{
	if ((unsigned)cap >= IMAP_CAP_COUNT_)
		return (0);
	return (has_cap(c, cap));
}

int
imap_client_has_capability(const struct imap_client *c, const char *name)
{
	return (strlist_contains_ci(&c->caps, name));
}

uint64_t
imap_client_appendlimit(const struct imap_client *c)
{
	return (c->appendlimit);
}

unsigned
imap_client_enabled(const struct imap_client *c)
{
	return (c->enabled);
}

int
imap_client_compressed(const struct imap_client *c)
{
	return (c->z_active);
}

int
imap_client_tls(const struct imap_client *c)
{
	return (c->tls_active);
}

const struct imap_mailbox *
imap_client_mailbox(const struct imap_client *c)
{
	return (c->have_cur ? &c->cur.mb : NULL);
}

int
imap_client_mailbox_encode(const struct imap_client *c, const char *utf8,
    char *out, size_t outsize, char *err, size_t errlen)
{
	return (imap_wire_mailbox_encode(utf8_mode(c), utf8, out, outsize, err,
	    errlen));
}

int
imap_client_mailbox_decode(const struct imap_client *c, const char *wire,
    char *out, size_t outsize, char *err, size_t errlen)
{
	return (imap_wire_mailbox_decode(utf8_mode(c), wire, out, outsize, err,
	    errlen));
}

/* ---- failure and teardown ------------------------------------------ */

/*
 * imapc_fail - the connection is unusable: remember the first reason,
 * stop all I/O and let ev_later tear down outside any callback.
 */
void
imapc_fail(struct imap_client *c, enum imap_errclass cl, const char *fmt,
    ...)
{
	va_list ap;

	if (imapc_failed(c))
		return;
	imapc_state(c, ICS_FAILED);
	c->err_class = cl;
	va_start(ap, fmt);
	vsnprintf(c->err_text, sizeof(c->err_text), fmt, ap);
	va_end(ap);
	if (c->top != NULL)
		bufferevent_disable(c->top, EV_READ | EV_WRITE);
	if (cl == IMAP_ERR_NONE)
		log_info("%s: %s", c->id, c->err_text);
	else
		log_notice("%s: connection failed (%s): %s", c->id,
		    imap_errclass_name(cl), c->err_text);
	imapc_schedule_later(c);
}

void
imapc_schedule_later(struct imap_client *c)
{
	if (c->ev_later != NULL)
		event_active(c->ev_later, EV_TIMEOUT, 0);
}

/* teardown - free the connection, fail the commands, say CLOSED */
static void
teardown(struct imap_client *c)
{
	struct imap_result res;

	imapc_state(c, ICS_CLOSED);
	if (c->top != NULL) {
		bufferevent_free(c->top);
		c->top = NULL;
		c->ssl = NULL;
	}
	memset(&res, 0, sizeof(res));
	if (c->logout_ok && c->err_class == IMAP_ERR_NONE) {
		res.status = IMAP_OK;
		res.text = "logged out";
	} else {
		res.status = IMAP_ERROR;
		res.errclass = c->err_class;
		res.text = c->err_text;
		res.code = c->err_code;
		res.backoff_ms = c->err_backoff;
	}
	res.code = res.code != NULL ? res.code : "";
	res.code_args = "";
	imapc_fail_all(c, &res);
	if (!imapc_freed(c) && c->cb != NULL)
		c->cb(c, IMAP_CLIENT_CLOSED, &res, c->cbarg);
}

/* ---- timeouts and flow control ------------------------------------- */

/*
 * imapc_arm_timeouts - the read timeout runs only while an answer is due: a
 * command in flight, reading not paused, and not while we stream an
 * APPEND literal (the server is silent then; the write timeout covers
 * it).  The write timeout only ever fires with output pending.
 */
void
imapc_arm_timeouts(struct imap_client *c)
{
	struct timeval tv = { c->timeout, 0 };
	int need_read;
	struct imap_cmd *w = c->writer;

	if (c->top == NULL || imapc_failed(c))
		return;
	need_read = c->ninflight > 0 && !c->paused;
	if (w != NULL && w->kind == K_APPEND && !w->waiting_cont &&
	    (w->app_left > 0 || !w->app_ended))
		need_read = 0;
	if (c->state < ICS_READY)
		need_read = !c->paused;
	bufferevent_set_timeouts(c->top, need_read ? &tv : NULL, &tv);
}

void
imap_client_pause_read(struct imap_client *c)
{
	if (c == NULL || c->paused)
		return;
	c->paused = 1;
	c->resume_pending = 0;
	if (c->top != NULL && !imapc_failed(c))
		bufferevent_disable(c->top, EV_READ);
	imapc_arm_timeouts(c);
}

void
imap_client_resume_read(struct imap_client *c)
{
	if (c == NULL || !c->paused)
		return;
	c->paused = 0;
	if (c->top != NULL && !imapc_failed(c)) {
		bufferevent_enable(c->top, EV_READ);
		imapc_arm_timeouts(c);
		/* input may be buffered already: no read event would come */
		c->resume_pending = 1;
		imapc_schedule_later(c);
	}
}

size_t
imap_client_output_pending(const struct imap_client *c)
{
	if (c->top == NULL)
		return (0);
	return (evbuffer_get_length(bufferevent_get_output(c->top)));
}

unsigned
imap_client_in_flight(const struct imap_client *c)
{
	return (c->ninflight);
}

/* ---- session setup ------------------------------------------------- */

static struct imap_cmd *
setup_cmd(struct imap_client *c, enum cmd_kind kind)
{
	struct imap_cmd *cmd;

	if ((cmd = imapc_cmd_new(c, kind, setup_cb, (void *)(uintptr_t)kind)) ==
	    NULL) {
		imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
		return (NULL);
	}
	cmd->setup = 1;
	return (cmd);
}

/* wipe_secret - the secret has been used: forget it */
static void
wipe_secret(struct imap_client *c)
{
	if (c->secret != NULL) {
		explicit_bzero(c->secret, strlen(c->secret));
		free(c->secret);
		c->secret = NULL;
	}
}

/* auth_start - authenticate with the best mechanism allowed */
static void
auth_start(struct imap_client *c)
{
	struct imap_cmd *cmd;
	enum imap_auth_mech mech = c->auth;
	const char *name;
	char *raw, *enc;
	size_t ul, sl, n;

	if (c->secret == NULL) {
		imapc_fail(c, IMAP_ERR_AUTH, "no secret left to authenticate");
		return;
	}
	if (mech == IMAP_AUTH_AUTO)
		mech = has_cap(c, IMAP_CAP_AUTH_PLAIN) ? IMAP_AUTH_PLAIN :
		    IMAP_AUTH_LOGIN;
	c->auth = mech;
	if (mech == IMAP_AUTH_LOGIN) {
		if (has_cap(c, IMAP_CAP_LOGINDISABLED)) {
			imapc_fail(c, IMAP_ERR_PERM, "server allows no "
			    "authentication we can do (LOGINDISABLED, no "
			    "AUTH=PLAIN)");
			return;
		}
		if ((cmd = setup_cmd(c, K_LOGIN)) == NULL)
			return;
		imapc_cmd_add(cmd, "LOGIN ");
		if (imapc_cmd_add_astring(cmd, c->user, strlen(c->user), 0) == -1)
			goto oom;
		imapc_cmd_add(cmd, " ");
		if (imapc_cmd_add_astring(cmd, c->secret, strlen(c->secret), 1) == -1)
			goto oom;
		wipe_secret(c);
		imapc_cmd_queue(cmd);
		return;
	}
	if (mech == IMAP_AUTH_PLAIN && !has_cap(c, IMAP_CAP_AUTH_PLAIN)) {
		imapc_fail(c, IMAP_ERR_PERM, "server does not offer "
		    "AUTH=PLAIN");
		return;
	}
	if (mech == IMAP_AUTH_XOAUTH2 && !has_cap(c, IMAP_CAP_AUTH_XOAUTH2)) {
		imapc_fail(c, IMAP_ERR_PERM, "server does not offer "
		    "AUTH=XOAUTH2");
		return;
	}
	ul = strlen(c->user);
	sl = strlen(c->secret);
	if (ul > 4096 || sl > 65536) {
		imapc_fail(c, IMAP_ERR_PERM, "user name or secret too long");
		return;
	}
	n = ul + sl + 32;
	if ((raw = malloc(n)) == NULL) {
		imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
		return;
	}
	if (mech == IMAP_AUTH_PLAIN) {
		/* RFC 4616: authzid NUL authcid NUL passwd */
		raw[0] = '\0';
		memcpy(raw + 1, c->user, ul);
		raw[ul + 1] = '\0';
		memcpy(raw + ul + 2, c->secret, sl);
		n = ul + sl + 2;
		name = "PLAIN";
	} else {
		n = (size_t)snprintf(raw, n, "user=%s\001auth=Bearer %s\001\001",
		    c->user, c->secret);
		name = "XOAUTH2";
	}
	enc = imap_wire_b64(raw, n);
	explicit_bzero(raw, n);
	free(raw);
	wipe_secret(c);
	if (enc == NULL || (cmd = setup_cmd(c, K_AUTH)) == NULL) {
		free(enc);
		imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
		return;
	}
	imapc_cmd_add(cmd, "AUTHENTICATE %s", name);
	if (has_cap(c, IMAP_CAP_SASL_IR))
		evbuffer_add(cmd_seg(cmd)->buf, " ", 1);
	else {
		/* wait for the server's empty challenge "+ " */
		evbuffer_add(cmd_seg(cmd)->buf, "\r\n", 2);
		cmd_seg(cmd)->sync = 1;
		if (imapc_cmd_new_seg(cmd) == -1) {
			explicit_bzero(enc, strlen(enc));
			free(enc);
			imapc_cmd_free(cmd);
			imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
			return;
		}
	}
	evbuffer_add(cmd_seg(cmd)->buf, enc, strlen(enc));
	imapc_cmd_log(cmd, " <hidden>");
	explicit_bzero(enc, strlen(enc));
	free(enc);
	imapc_cmd_queue(cmd);
	return;
oom:
	imapc_cmd_free(cmd);
	imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
}

static void
client_ready(struct imap_client *c)
{
	struct imap_result res;

	imapc_state(c, ICS_READY);
	log_info("%s: ready as %s%s%s%s%s", c->id, c->user,
	    c->tls_active ? ", TLS" : "", c->z_active ? ", compressed" : "",
	    c->enabled & IMAP_ENABLE_QRESYNC ? ", QRESYNC" :
	    c->enabled & IMAP_ENABLE_CONDSTORE ? ", CONDSTORE" : "",
	    c->enabled & IMAP_ENABLE_UTF8 ? ", UTF8=ACCEPT" : "");
	imapc_arm_timeouts(c);
	memset(&res, 0, sizeof(res));
	res.status = IMAP_OK;
	res.code = res.code_args = res.text = "";
	if (c->cb != NULL && !imapc_freed(c))
		c->cb(c, IMAP_CLIENT_READY, &res, c->cbarg);
	imapc_writer_run(c);
}

/*
 * imapc_setup_next - the next step from greeting to READY, one command at a
 * time: [CAPABILITY] [STARTTLS, CAPABILITY] auth [CAPABILITY] [COMPRESS]
 * [ID] [ENABLE].
 */
void
imapc_setup_next(struct imap_client *c)
{
	struct imap_cmd *cmd;
	char list[128];

	if (imapc_failed(c) || c->state != ICS_SETUP)
		return;
	if (c->tls == IMAP_TLS_STARTTLS && !c->tls_active) {
		if (!c->caps_known) {
			if ((cmd = setup_cmd(c, K_CAPABILITY)) != NULL) {
				imapc_cmd_add(cmd, "CAPABILITY");
				imapc_cmd_queue(cmd);
			}
			return;
		}
		if (!has_cap(c, IMAP_CAP_STARTTLS)) {
			imapc_fail(c, IMAP_ERR_PERM, "server does not offer "
			    "STARTTLS");
			return;
		}
		if ((cmd = setup_cmd(c, K_STARTTLS)) != NULL) {
			imapc_cmd_add(cmd, "STARTTLS");
			imapc_cmd_queue(cmd);
		}
		return;
	}
	if (!c->caps_known) {
		if ((cmd = setup_cmd(c, K_CAPABILITY)) != NULL) {
			imapc_cmd_add(cmd, "CAPABILITY");
			imapc_cmd_queue(cmd);
		}
		return;
	}
	if (!c->authenticated) {
		auth_start(c);
		return;
	}
	wipe_secret(c);
	if (c->want_compress && !c->z_active && !c->compress_tried &&
	    has_cap(c, IMAP_CAP_COMPRESS_DEFLATE)) {
		c->compress_tried = 1;
		if ((cmd = setup_cmd(c, K_COMPRESS)) != NULL) {
			imapc_cmd_add(cmd, "COMPRESS DEFLATE");
			imapc_cmd_queue(cmd);
		}
		return;
	}
	/*
	 * ID and ENABLE are the last steps: both are queued at once and the
	 * connection is READY without waiting for either.  Their replies
	 * arrive before those of any later command, and RFC 5161/7162 oblige
	 * a server that announces an extension to enable it, so what ENABLE
	 * asks for is taken as enabled now and corrected by the ENABLED
	 * reply (enable_done).  Saves two round trips per connection, which
	 * is most of a no-op delta pass's client-side time.
	 */
	if (c->id_name != NULL && !c->id_sent && has_cap(c, IMAP_CAP_ID)) {
		c->id_sent = 1;
		if ((cmd = setup_cmd(c, K_ID)) == NULL)
			return;
		imapc_cmd_add(cmd, "ID (\"name\" ");
		(void)imapc_cmd_add_astring(cmd, c->id_name, strlen(c->id_name), 0);
		if (c->id_version != NULL) {
			imapc_cmd_add(cmd, " \"version\" ");
			(void)imapc_cmd_add_astring(cmd, c->id_version,
			    strlen(c->id_version), 0);
		}
		imapc_cmd_add(cmd, ")");
		imapc_cmd_queue(cmd);
	}
	if (c->want_enable != 0 && !c->enable_sent &&
	    has_cap(c, IMAP_CAP_ENABLE)) {
		unsigned bits = 0;

		c->enable_sent = 1;
		list[0] = '\0';
		if ((c->want_enable & IMAP_ENABLE_QRESYNC) &&
		    has_cap(c, IMAP_CAP_QRESYNC)) {
			strcat(list, " QRESYNC");
			bits |= IMAP_ENABLE_QRESYNC | IMAP_ENABLE_CONDSTORE;
		} else if ((c->want_enable & (IMAP_ENABLE_CONDSTORE |
		    IMAP_ENABLE_QRESYNC)) && has_cap(c, IMAP_CAP_CONDSTORE)) {
			strcat(list, " CONDSTORE");
			bits |= IMAP_ENABLE_CONDSTORE;
		}
		if ((c->want_enable & IMAP_ENABLE_UTF8) &&
		    has_cap(c, IMAP_CAP_UTF8_ACCEPT)) {
			strcat(list, " UTF8=ACCEPT");
			bits |= IMAP_ENABLE_UTF8;
		}
		if (list[0] != '\0') {
			if ((cmd = setup_cmd(c, K_ENABLE)) == NULL)
				return;
			imapc_cmd_add(cmd, "ENABLE%s", list);
			imapc_cmd_queue(cmd);
			c->enable_asked = bits;
			c->enable_confirmed = 0;
			c->enabled |= bits;
		}
	}
	client_ready(c);
}

/*
 * enable_done - ENABLE is complete: what the server confirmed in its
 * ENABLED reply replaces what imapc_setup_next assumed.
 */
static void
enable_done(struct imap_client *c, const struct imap_result *res)
{
	unsigned got = res->status == IMAP_OK ? c->enable_confirmed : 0;

	if (res->status != IMAP_OK)
		log_warnx("%s: ENABLE refused: %s: continuing without",
		    c->id, res->text);
	else if (got != c->enable_asked)
		log_warnx("%s: ENABLE: the server enabled less than it "
		    "announced: continuing without the rest", c->id);
	c->enabled = (c->enabled & ~c->enable_asked) | got;
}

/* setup_cb - an internal command is complete */
static void
setup_cb(struct imap_client *c, const struct imap_result *res, void *arg)
{
	enum cmd_kind kind = (enum cmd_kind)(uintptr_t)arg;

	if (res->status == IMAP_ERROR || res->status == IMAP_CANCELLED)
		return;		/* the connection is going anyway */
	switch (kind) {
	case K_CAPABILITY:
		if (res->status != IMAP_OK || !c->caps_known) {
			imapc_fail(c, IMAP_ERR_PERM, "CAPABILITY failed: %s",
			    res->text);
			return;
		}
		break;
	case K_STARTTLS:
		if (res->status != IMAP_OK)
			imapc_fail(c, IMAP_ERR_PERM, "STARTTLS refused: %s",
			    res->text);
		return;		/* OK: the handshake continues the setup */
	case K_LOGIN:
	case K_AUTH:
		if (res->status != IMAP_OK) {
			c->err_backoff = res->backoff_ms;
			str_copy(c->err_code, res->code, sizeof(c->err_code));
			imapc_fail(c, res->errclass == IMAP_ERR_TEMP ?
			    IMAP_ERR_TEMP : IMAP_ERR_AUTH, "authentication as "
			    "%s failed: %s%s%s%s", c->user, res->code[0] ? "[" :
			    "", res->code, res->code[0] ? "] " : "", res->text);
			return;
		}
		c->authenticated = 1;
		log_info("%s: logged in as %s", c->id, c->user);
		if (strcmp(res->code, "CAPABILITY") != 0)
			c->caps_known = 0;	/* may have changed */
		break;
	case K_COMPRESS:
		if (res->status == IMAP_OK)
			return;		/* do_switch continues */
		log_info("%s: COMPRESS refused: %s", c->id, res->text);
		break;
	case K_ENABLE:
		enable_done(c, res);
		return;		/* sent after the setup was over */
	case K_ID:
		return;		/* likewise; the reply is only logged */
	default:
		break;
	}
	imapc_setup_next(c);
}

/* ---- stream layers ------------------------------------------------- */

/* set_top - make b the layer we read from and write to */
static void
set_top(struct imap_client *c, struct bufferevent *b)
{
	c->top = b;
	bufferevent_setcb(b, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(b, EV_READ, 0, READ_HIWAT);
	bufferevent_setwatermark(b, EV_WRITE, c->out_hiwat / 2, 0);
	bufferevent_enable(b, c->paused ? EV_WRITE : EV_READ | EV_WRITE);
	imapc_arm_timeouts(c);
}

/* demote - the current top becomes the layer below a new filter */
static struct bufferevent *
demote(struct imap_client *c)
{
	struct bufferevent *under = c->top;

	c->top_is_socket = 0;
	bufferevent_set_timeouts(under, NULL, NULL);
	bufferevent_setwatermark(under, EV_READ, 0, READ_HIWAT);
	bufferevent_setwatermark(under, EV_WRITE, LOWER_WRITE_HIWAT / 2,
	    LOWER_WRITE_HIWAT);
	return (under);
}

/* start_tls - put an OpenSSL filter on the stream; handshake follows */
static void
start_tls(struct imap_client *c)
{
	struct bufferevent *nb, *under;
	char err[256];
	SSL *ssl;

	if ((ssl = tls_client_ssl_new(c->ssl_ctx, c->tls_name, c->verify, err,
	    sizeof(err))) == NULL) {
		imapc_fail(c, IMAP_ERR_PERM, "TLS: %s", err);
		return;
	}
	under = demote(c);
	nb = bufferevent_openssl_filter_new(c->base, under, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (nb == NULL) {
		SSL_free(ssl);
		imapc_fail(c, IMAP_ERR_TEMP, "cannot start TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(nb, 1);
	c->ssl = ssl;
	imapc_state(c, ICS_TLS_HANDSHAKE);
	set_top(c, nb);
}

/* start_compress - put the deflate filter on the stream */
static void
start_compress(struct imap_client *c)
{
	struct bufferevent *nb, *under;
	char err[128];

	under = demote(c);
	nb = zlib_filter_new(under, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS, err, sizeof(err));
	if (nb == NULL) {
		imapc_fail(c, IMAP_ERR_TEMP, "%s", err);
		return;
	}
	c->z_active = 1;
	set_top(c, nb);
	log_info("%s: COMPRESS=DEFLATE active", c->id);
	imapc_setup_next(c);
}

/*
 * do_switch - after the tagged OK of STARTTLS or COMPRESS.  Anything
 * the server sent after that OK was sent in the clear (or uncompressed)
 * and could have been injected: refuse it rather than interpret it in
 * the new layer.
 */
static void
do_switch(struct imap_client *c)
{
	int sw = c->switch_to;

	c->switch_to = 0;
	if (evbuffer_get_length(bufferevent_get_input(c->top)) > 0) {
		imapc_fail(c, IMAP_ERR_PERM, "server sent data after its %s "
		    "response (injection?)", sw == SW_TLS ? "STARTTLS" :
		    "COMPRESS");
		return;
	}
	if (sw == SW_TLS)
		start_tls(c);
	else
		start_compress(c);
}

/* ---- libevent callbacks -------------------------------------------- */

static void
really_free(struct imap_client *c)
{
	if (c->top != NULL)
		bufferevent_free(c->top);
	if (c->ev_later != NULL)
		event_free(c->ev_later);
	imap_parse_free(&c->parser);
	imapc_resp_reset(c);
	free(c->r.toks);
	free(c->r.arena);
	strlist_clear(&c->caps);
	imapc_mbox_clear(&c->cur);
	wipe_secret(c);
	free(c->host);
	free(c->tls_name);
	free(c->user);
	free(c->id_name);
	free(c->id_version);
	free(c);
}

/* client_leave - end of a callback; 1 when the client is gone */
static int
client_leave(struct imap_client *c)
{
	if (--c->busy == 0 && imapc_freed(c)) {
		really_free(c);
		return (1);
	}
	return (0);
}

/* handle_eof - the server closed its side and we read everything */
static void
handle_eof(struct imap_client *c)
{
	enum imap_errclass cl = IMAP_ERR_TEMP;
	char msg[TEXT_MAX + 128];

	if (c->state == ICS_LOGOUT) {
		if (c->logout_ok) {
			imapc_fail(c, IMAP_ERR_NONE, "logged out");
			return;
		}
		imapc_fail(c, IMAP_ERR_TEMP, "connection closed during LOGOUT");
		return;
	}
	if (c->bye_text[0] != '\0' || c->bye_code[0] != '\0') {
		cl = imap_wire_classify(0, IMAP_NO, c->bye_code,
		    c->bye_text);
		if (cl == IMAP_ERR_PERM)
			cl = IMAP_ERR_TEMP;	/* a BYE is worth a retry */
		c->err_backoff = imap_backoff_from_text(c->bye_text);
		str_copy(c->err_code, c->bye_code, sizeof(c->err_code));
		snprintf(msg, sizeof(msg), "server closed the connection: BYE "
		    "%s%s%s%s", c->bye_code[0] ? "[" : "", c->bye_code,
		    c->bye_code[0] ? "] " : "", c->bye_text);
	} else if (c->state == ICS_TLS_HANDSHAKE)
		snprintf(msg, sizeof(msg), "connection closed by server during "
		    "the TLS handshake");
	else if (c->state == ICS_GREETING)
		snprintf(msg, sizeof(msg), "connection closed by server before "
		    "its greeting");
	else if (imap_parse_in_literal(c->parser, NULL))
		snprintf(msg, sizeof(msg), "connection closed by server in "
		    "the middle of a literal");
	else if (!imap_parse_at_start(c->parser))
		snprintf(msg, sizeof(msg), "connection closed by server in "
		    "the middle of a response");
	else
		snprintf(msg, sizeof(msg), "connection closed by server");
	imapc_fail(c, cl, "%s", msg);
}

/* process_input - feed buffered input to the parser while allowed */
static void
process_input(struct imap_client *c)
{
	struct evbuffer *in;
	struct evbuffer_iovec v;
	ssize_t r;

	while (c->top != NULL && !imapc_failed(c) &&
	    !c->paused && !c->switch_to) {
		in = bufferevent_get_input(c->top);
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		r = imap_parse_feed(c->parser, v.iov_base, v.iov_len);
		if (r < 0)
			break;
		evbuffer_drain(in, (size_t)r);
	}
	if (c->switch_to && !imapc_failed(c))
		do_switch(c);
	if (c->eof_seen && !imapc_failed(c) && !c->paused &&
	    c->top != NULL &&
	    evbuffer_get_length(bufferevent_get_input(c->top)) == 0)
		handle_eof(c);
}

/* notify_writable - tell a paused APPEND streamer it may go on */
static void
notify_writable(struct imap_client *c)
{
	struct imap_cmd *w = c->writer;

	if (!imapc_writable_now(c))
		return;
	w->app_want_writable = 0;
	if (w->acbs.writable != NULL)
		w->acbs.writable(c, w, w->arg);
}

/*
 * nodelay - no Nagle delay on the connection.  Every write here is a
 * whole command, a batch of them or a piece of a literal; a short one
 * held back for the peer's (delayed) ACK is a stall, most of all at the
 * end of a synchronizing APPEND literal, which the server answers only
 * when it has every byte.
 */
static void
nodelay(struct imap_client *c)
{
	int one = 1;

	if (c->top != NULL)
		c->sock_fd = bufferevent_getfd(c->top);
	/* not TCP (the built-in archive reader's socketpair): neither */
	if (c->sock_fd != -1 && setsockopt(c->sock_fd, IPPROTO_TCP,
	    TCP_NODELAY, &one, sizeof(one)) == -1)
		c->sock_fd = -1;
}

/*
 * quickack - acknowledge a short answer now.  A server that does not
 * set TCP_NODELAY itself (Courier) writes its answer to one pipelined
 * command, then the next (the "+" of the APPEND queued behind it):
 * Nagle holds the second until the first is acknowledged, and ours,
 * delayed while we have nothing to send, came 40 ms later, for every
 * message.  Bulk reads (a body streaming) are acknowledged by the
 * kernel as they come, so only short reads pay the system call.
 */
static void
quickack(struct imap_client *c)
{
#ifdef TCP_QUICKACK
	int one = 1;

	if (c->sock_fd != -1 && c->top != NULL &&
	    evbuffer_get_length(bufferevent_get_input(c->top)) <
	    LIBEVENT_READ)
		(void)setsockopt(c->sock_fd, IPPROTO_TCP, TCP_QUICKACK, &one,
		    sizeof(one));
#else
	(void)c;
#endif
}

/*
 * read_more - one more read straight from a plain socket, up to
 * READ_MORE bytes.  libevent 2.1's evbuffer_read takes at most 4 KB a
 * call, so a body streamed from the source cost a readiness wait, an
 * ioctl, a readv and (on the destination) a writev per 4 KB; with this
 * one wakeup moves what the socket holds.  Bounded like libevent's own
 * reads: nothing while paused or with READ_HIWAT buffered.  End of
 * stream and errors are left to libevent's next read, which reports
 * them through event_cb as before.
 */
static void
read_more(struct imap_client *c)
{
	struct evbuffer *in;
	struct evbuffer_iovec v;
	evutil_socket_t fd;
	ssize_t r;

	if (!c->top_is_socket || c->top == NULL || c->paused ||
	    imapc_failed(c) || c->switch_to)
		return;
	/* libevent's read filled its 4 KB: the socket very likely holds
	 * more (less, and it was drained: a recv would find nothing) */
	in = bufferevent_get_input(c->top);
	if (evbuffer_get_length(in) < LIBEVENT_READ ||
	    evbuffer_get_length(in) >= READ_HIWAT ||
	    (fd = bufferevent_getfd(c->top)) == -1)
		return;
	/* a socket bufferevent keeps its input's end frozen between its
	 * own reads, as here */
	(void)evbuffer_unfreeze(in, 0);
	if (evbuffer_reserve_space(in, READ_MORE, &v, 1) == 1) {
		if (v.iov_len > READ_MORE)
			v.iov_len = READ_MORE;
		r = recv(fd, v.iov_base, v.iov_len, MSG_DONTWAIT);
		v.iov_len = r > 0 ? (size_t)r : 0;
		(void)evbuffer_commit_space(in, &v, r > 0 ? 1 : 0);
	}
	(void)evbuffer_freeze(in, 0);
}

static void
read_cb(struct bufferevent *b, void *arg)
{
	struct imap_client *c = arg;

	(void)b;
	c->busy++;
	quickack(c);
	read_more(c);
	process_input(c);
	(void)client_leave(c);
}

static void
write_cb(struct bufferevent *b, void *arg)
{
	struct imap_client *c = arg;

	(void)b;
	c->busy++;
	imapc_writer_run(c);
	notify_writable(c);
	(void)client_leave(c);
}

/* on_connected - TCP connected, or TLS handshake done */
static void
on_connected(struct imap_client *c)
{
	char desc[TLS_DESCRIBE_MAX];

	if (c->state == ICS_CONNECTING) {
		log_info("%s: connected to %s port %d", c->id, c->host,
		    c->port);
		nodelay(c);
		if (c->tls == IMAP_TLS_IMPLICIT)
			start_tls(c);
		else {
			imapc_state(c, ICS_GREETING);
			imapc_arm_timeouts(c);
		}
		return;
	}
	if (c->state == ICS_TLS_HANDSHAKE) {
		c->tls_active = 1;
		log_info("%s: TLS %s", c->id, tls_describe(c->ssl, desc,
		    sizeof(desc)));
		if (c->tls == IMAP_TLS_IMPLICIT)
			imapc_state(c, ICS_GREETING);
		else {
			imapc_state(c, ICS_SETUP);
			c->caps_known = 0;	/* RFC 3501 §6.2.1 */
			imapc_setup_next(c);
		}
		imapc_arm_timeouts(c);
		imapc_writer_run(c);
	}
}

/* on_error - say what broke, as precisely as libevent lets us */
static void
on_error(struct imap_client *c, struct bufferevent *b, short what)
{
	char ebuf[256];
	unsigned long e, last = 0;
	int dnserr, serr = EVUTIL_SOCKET_ERROR();

	if (c->state == ICS_CONNECTING) {
		if ((dnserr = bufferevent_socket_get_dns_error(b)) != 0)
			imapc_fail(c, IMAP_ERR_TEMP, "cannot resolve %s: %s",
			    c->host, evutil_gai_strerror(dnserr));
		else
			imapc_fail(c, IMAP_ERR_TEMP, "cannot connect to %s "
			    "port %d: %s", c->host, c->port,
			    evutil_socket_error_to_string(serr));
		return;
	}
	if (c->ssl != NULL && c->tls_active == 0 && c->verify &&
	    SSL_get_verify_result(c->ssl) != X509_V_OK) {
		/* a configuration matter (CA, name): retrying will not help */
		imapc_fail(c, IMAP_ERR_PERM, "certificate of %s not verified: "
		    "%s", c->tls_name, X509_verify_cert_error_string(
		    SSL_get_verify_result(c->ssl)));
		return;
	}
	/* libevent hands out its list newest first and puts the
	 * SSL_get_error() code (a small number) in it too: keep the first
	 * entry OpenSSL can name */
	if (c->ssl != NULL)
		while ((e = bufferevent_get_openssl_error(b)) != 0)
			if (last == 0 && ERR_reason_error_string(e) != NULL)
				last = e;
	if (last != 0 || (c->ssl != NULL && !c->tls_active)) {
		const char *why = last ? ERR_reason_error_string(last) : NULL;

		if (why == NULL && last != 0)
			snprintf(ebuf, sizeof(ebuf), "OpenSSL error %lx", last);
		else
			snprintf(ebuf, sizeof(ebuf), "%s", why ? why :
			    serr ? evutil_socket_error_to_string(serr) :
			    "connection closed");
		imapc_fail(c, IMAP_ERR_TEMP, "TLS %s with %s failed: %s",
		    c->tls_active ? "session" : "handshake", c->host, ebuf);
		return;
	}
	imapc_fail(c, IMAP_ERR_TEMP, "connection error while %s: %s",
	    what & BEV_EVENT_READING ? "reading" : "writing",
	    serr != 0 ? evutil_socket_error_to_string(serr) : "unknown");
}

static void
event_cb(struct bufferevent *b, short what, void *arg)
{
	struct imap_client *c = arg;

	c->busy++;
	if (imapc_failed(c))
		;
	else if (what & BEV_EVENT_CONNECTED)
		on_connected(c);
	else if (what & BEV_EVENT_EOF) {
		c->eof_seen = 1;
		process_input(c);
	} else if (what & BEV_EVENT_TIMEOUT)
		imapc_fail(c, IMAP_ERR_TEMP, "no progress for %d seconds "
		    "while %s", c->timeout, what & BEV_EVENT_READING ?
		    "waiting for the server" : "sending");
	else if (what & BEV_EVENT_ERROR)
		on_error(c, b, what);
	(void)client_leave(c);
}

/* later_cb - deferred work: teardown, resumed input, writable calls */
static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_client *c = arg;

	(void)fd;
	(void)what;
	c->busy++;
	if (c->state == ICS_FAILED)
		teardown(c);
	else if (!imapc_failed(c)) {
		if (c->resume_pending) {
			c->resume_pending = 0;
			process_input(c);
		}
		imapc_writer_run(c);
		notify_writable(c);
	}
	(void)client_leave(c);
}

/* ---- construction -------------------------------------------------- */

static char *
dup_opt(const char *s, int *bad)
{
	char *d;

	if (s == NULL)
		return (NULL);
	if ((d = strdup(s)) == NULL)
		*bad = 1;
	return (d);
}

struct imap_client *
imap_client_new(struct event_base *base, const struct imap_client_opts *o,
    imap_client_cb cb, void *arg, char *err, size_t errlen)
{
	struct imap_client *c;
	struct bufferevent *b;
	int bad = 0;

	if (base == NULL || o == NULL || o->host == NULL || *o->host == '\0') {
		errbuf_set(err, errlen, "no host given");
		return (NULL);
	}
	if (o->port < 0 || o->port > 65535) {
		errbuf_set(err, errlen, "bad port %d", o->port);
		return (NULL);
	}
	if (o->user == NULL || *o->user == '\0' || o->secret == NULL ||
	    strchr(o->user, '\r') || strchr(o->user, '\n')) {
		errbuf_set(err, errlen, "no user name or secret given");
		return (NULL);
	}
	if (o->tls != IMAP_TLS_NONE && o->ssl_ctx == NULL) {
		errbuf_set(err, errlen, "TLS needs an SSL_CTX");
		return (NULL);
	}
	if ((o->tls_name != NULL && *o->tls_name == '\0') ||
	    (o->id_name != NULL && !imap_wire_text_valid(o->id_name)) ||
	    (o->id_version != NULL && !imap_wire_text_valid(o->id_version))) {
		errbuf_set(err, errlen, "bad TLS name or ID string");
		return (NULL);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	c->base = base;
	c->cb = cb;
	c->cbarg = arg;
	c->host = dup_opt(o->host, &bad);
	c->tls = o->tls;
	c->port = o->port ? o->port : o->tls == IMAP_TLS_IMPLICIT ? 993 : 143;
	c->ssl_ctx = o->ssl_ctx;
	c->verify = !o->tls_no_verify;
	c->tls_name = dup_opt(o->tls_name ? o->tls_name : o->host, &bad);
	c->dns = o->dns;
	c->user = dup_opt(o->user, &bad);
	c->secret = dup_opt(o->secret, &bad);
	c->auth = o->auth;
	c->want_enable = o->enable;
	c->want_compress = o->compress;
	c->id_name = dup_opt(o->id_name, &bad);
	c->id_version = dup_opt(o->id_version, &bad);
	c->window = o->window ? o->window : DEF_WINDOW;
	c->timing = o->timing;
	c->timing_arg = o->timing_arg;
	c->timeout = o->timeout > 0 ? o->timeout : DEF_TIMEOUT;
	c->out_hiwat = o->out_hiwat ? o->out_hiwat : DEF_OUT_HIWAT;
	c->literal_plus_max = o->literal_plus_max ? o->literal_plus_max :
	    DEF_LITERAL_PLUS_MAX;
	if (o->log_id != NULL)
		sanitize(c->id, sizeof(c->id), o->log_id, strlen(o->log_id));
	else {
		char who[sizeof(c->id)];

		snprintf(who, sizeof(who), "imap %s@%s", o->user, o->host);
		sanitize(c->id, sizeof(c->id), who, strlen(who));
	}
	c->sock_fd = -1;
	TAILQ_INIT(&c->setupq);
	TAILQ_INIT(&c->userq);
	TAILQ_INIT(&c->inflight);
	c->parser = imap_parse_new(NULL, imapc_on_event, c);
	c->ev_later = event_new(base, -1, 0, later_cb, c);
	if (o->have_fd && (o->tls != IMAP_TLS_NONE || o->fd < 0 ||
	    evutil_make_socket_nonblocking(o->fd) == -1))
		bad = 1;
	b = bufferevent_socket_new(base, o->have_fd ? o->fd : -1,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bad || c->parser == NULL || c->ev_later == NULL || b == NULL) {
		if (b != NULL && o->have_fd)
			bufferevent_setfd(b, -1);	/* still the caller's */
		if (b != NULL)
			bufferevent_free(b);
		really_free(c);
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	imapc_state(c, ICS_CONNECTING);
	c->top_is_socket = 1;
	set_top(c, b);
	if (o->have_fd) {
		/* already connected: straight to the greeting */
		log_info("%s: talking to the built-in %s reader", c->id,
		    c->host);
		on_connected(c);
		return (c);
	}
	log_info("%s: connecting to %s port %d (%s)", c->id, c->host, c->port,
	    c->tls == IMAP_TLS_IMPLICIT ? "TLS" : c->tls == IMAP_TLS_STARTTLS ?
	    "STARTTLS" : "plain");
	if (bufferevent_socket_connect_hostname(b, c->dns, AF_UNSPEC, c->host,
	    c->port) == -1)
		imapc_fail(c, IMAP_ERR_TEMP, "cannot connect to %s port %d",
		    c->host, c->port);
	return (c);
}

void
imap_client_free(struct imap_client **cp)
{
	struct imap_client *c;
	struct imap_result res;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	*cp = NULL;
	if (imapc_freed(c))
		return;
	imapc_state(c, ICS_FREED);
	c->busy++;
	if (c->top != NULL)
		bufferevent_disable(c->top, EV_READ | EV_WRITE);
	memset(&res, 0, sizeof(res));
	res.status = IMAP_CANCELLED;
	res.errclass = IMAP_ERR_TEMP;
	res.code = res.code_args = "";
	res.text = "cancelled";
	imapc_fail_all(c, &res);
	(void)client_leave(c);
}
