/*
 * test_imap_client.c - syncd/imap_client against a scripted fake server
 * on loopback (tests/unit/script_peer.c), for what a real server will
 * not do on demand: BYE in the middle of a FETCH, a literal split
 * across reads, a "+" nobody asked for, NO [LIMIT] with back-off text,
 * bytes after a STARTTLS OK; plus the plain tagged flow.  Everything a
 * real server does is in tests/integration/test_imap_client.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "imap_client.h"
#include "log.h"
#include "script_peer.h"

#define N(a)	(sizeof(a) / sizeof((a)[0]))
#define MAXDONE	8

/* What the client reported. */
struct done_rec {
	enum imap_status	 st;
	enum imap_errclass	 cl;
	char			 code[64];
	char			 text[512];
	uint64_t		 backoff;
	uint64_t		 exists;	/* SELECT */
	uint64_t		 uidvalidity;
};

struct rec {
	struct event_base	*base;
	struct imap_client	*c;
	void			(*on_ready)(struct rec *);
	int			 ready;
	int			 closed;
	struct done_rec		 close;
	size_t			 ndone;
	struct done_rec		 done[MAXDONE];
	/* FETCH */
	int			 body_begins, body_ends, body_chunks;
	uint64_t		 body_size;
	char			 body[8192];
	size_t			 body_total;	/* every byte, kept or not */
	size_t			 bodylen;
	size_t			 nmsgs;
	uint64_t		 uids[8];
};

static void
copy_res(struct done_rec *d, const struct imap_result *res)
{
	d->st = res->status;
	d->cl = res->errclass;
	snprintf(d->code, sizeof(d->code), "%s", res->code ? res->code : "");
	snprintf(d->text, sizeof(d->text), "%s", res->text ? res->text : "");
	d->backoff = res->backoff_ms;
	if (res->mailbox != NULL) {
		d->exists = res->mailbox->exists;
		d->uidvalidity = res->mailbox->uidvalidity;
	}
}

static void
conn_cb(struct imap_client *c, enum imap_client_event ev,
    const struct imap_result *res, void *arg)
{
	struct rec *r = arg;

	(void)c;
	if (ev == IMAP_CLIENT_READY) {
		r->ready = 1;
		if (r->on_ready != NULL)
			r->on_ready(r);
		return;
	}
	r->closed = 1;
	copy_res(&r->close, res);
	event_base_loopexit(r->base, NULL);
}

static void
done_cb(struct imap_client *c, const struct imap_result *res, void *arg)
{
	struct rec *r = arg;

	(void)c;
	if (r->ndone < MAXDONE)
		copy_res(&r->done[r->ndone], res);
	r->ndone++;
}

static void
body_begin(struct imap_client *c, const struct imap_fetch_msg *m,
    const char *section, uint64_t size, void *arg)
{
	struct rec *r = arg;

	(void)c;
	(void)m;
	(void)section;
	r->body_begins++;
	r->body_size = size;
}

static void
body_data(struct imap_client *c, const void *data, size_t len, void *arg)
{
	struct rec *r = arg;

	(void)c;
	r->body_chunks++;
	r->body_total += len;
	if (r->bodylen + len < sizeof(r->body)) {
		memcpy(r->body + r->bodylen, data, len);
		r->bodylen += len;
		r->body[r->bodylen] = '\0';
	}
}

static void
body_end(struct imap_client *c, void *arg)
{
	struct rec *r = arg;

	(void)c;
	r->body_ends++;
}

static void
fetch_msg(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	struct rec *r = arg;

	(void)c;
	if (r->nmsgs < N(r->uids))
		r->uids[r->nmsgs] = m->uid;
	r->nmsgs++;
}

static const struct imap_fetch_cbs fcbs = {
	.body_begin = body_begin,
	.body_data = body_data,
	.body_end = body_end,
	.msg = fetch_msg,
};

static void
safety_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopexit(arg, NULL);
}

/*
 * run - connect a client to a peer running steps, call on_ready once
 * READY, run until CLOSED (or 5 s); the peer is returned for checks.
 */
static void
run(struct rec *r, const struct peer_step *steps, size_t nsteps,
    enum imap_tls_mode tls, enum imap_auth_mech auth,
    void (*on_ready)(struct rec *), struct script_peer **peer_r)
{
	struct imap_client_opts o;
	struct script_peer *p;
	struct event *safety;
	struct timeval tv = { 5, 0 };
	SSL_CTX *ctx = NULL;
	char err[256];

	memset(r, 0, sizeof(*r));
	r->base = event_base_new();
	assert_non_null(r->base);
	r->on_ready = on_ready;
	p = peer_new(r->base, steps, nsteps);
	assert_non_null(p);
	memset(&o, 0, sizeof(o));
	o.host = "127.0.0.1";
	o.port = peer_port(p);
	o.tls = tls;
	if (tls != IMAP_TLS_NONE) {
		ctx = SSL_CTX_new(TLS_client_method());
		assert_non_null(ctx);
		o.ssl_ctx = ctx;
		o.tls_no_verify = 1;
	}
	o.user = "alice";
	o.secret = "pw";
	o.auth = auth;
	o.timeout = 5;
	o.log_id = "test";
	r->c = imap_client_new(r->base, &o, conn_cb, r, err, sizeof(err));
	if (r->c == NULL)
		fail_msg("imap_client_new: %s", err);
	safety = evtimer_new(r->base, safety_cb, r->base);
	evtimer_add(safety, &tv);
	event_base_dispatch(r->base);
	event_free(safety);
	imap_client_free(&r->c);
	if (ctx != NULL)
		SSL_CTX_free(ctx);
	*peer_r = p;
}

static void
finish(struct rec *r, struct script_peer **pp)
{
	peer_free(pp);
	event_base_free(r->base);
}

#define GREETING	"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n"
#define LOGIN_STEP \
	{ .expect = "A1 LOGIN \"alice\" \"pw\"", \
	  .send = "A1 OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS] in\r\n" }

/* ---- the plain tagged flow ------------------------------------------- */

static void
basic_ready(struct rec *r)
{
	assert_non_null(imap_client_noop(r->c, done_cb, r));
	assert_non_null(imap_client_select(r->c, "INBOX",
	    IMAP_SELECT_READONLY, NULL, NULL, done_cb, r));
	assert_non_null(imap_client_logout(r->c, done_cb, r));
}

static void
test_basic_flow(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = GREETING },
		LOGIN_STEP,
		{ .expect = "A2 NOOP" },
		{ .expect = "A3 EXAMINE \"INBOX\"",
		  .send = "A2 OK noop\r\n"
		      "* 3 EXISTS\r\n* OK [UIDVALIDITY 42] v\r\n"
		      "A3 OK [READ-ONLY] examined\r\n" },
		{ .expect = "A4 LOGOUT",
		  .send = "* BYE bye\r\nA4 OK logged out\r\n" },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), IMAP_TLS_NONE, IMAP_AUTH_LOGIN, basic_ready,
	    &p);
	assert_string_equal(peer_error(p), "");
	assert_int_equal(peer_steps_done(p), N(steps));
	assert_true(r.ready);
	assert_true(r.closed);
	assert_int_equal(r.ndone, 3);
	assert_int_equal(r.done[0].st, IMAP_OK);
	assert_string_equal(r.done[0].text, "noop");
	assert_int_equal(r.done[1].st, IMAP_OK);
	assert_string_equal(r.done[1].code, "READ-ONLY");
	assert_int_equal(r.done[1].exists, 3);
	assert_int_equal(r.done[1].uidvalidity, 42);
	assert_int_equal(r.done[2].st, IMAP_OK);
	assert_int_equal(r.close.st, IMAP_OK);	/* a clean LOGOUT */
	finish(&r, &p);
}

/* An unknown tag from the server ends the connection. */
static void
noop_ready(struct rec *r)
{
	assert_non_null(imap_client_noop(r->c, done_cb, r));
}

static void
test_unknown_tag(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = GREETING },
		LOGIN_STEP,
		{ .expect = "A2 NOOP", .send = "A9 OK what\r\n" },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), IMAP_TLS_NONE, IMAP_AUTH_LOGIN, noop_ready,
	    &p);
	assert_string_equal(peer_error(p), "");
	assert_int_equal(r.ndone, 1);
	assert_int_equal(r.done[0].st, IMAP_ERROR);
	assert_int_equal(r.close.st, IMAP_ERROR);
	assert_int_equal(r.close.cl, IMAP_ERR_TEMP);
	assert_non_null(strstr(r.close.text, "we did not send"));
	finish(&r, &p);
}

/* ---- BYE in the middle of a FETCH ------------------------------------- */

static void
fetch_ready(struct rec *r)
{
	assert_non_null(imap_client_uid_fetch(r->c, "1:*", "(UID BODY.PEEK[])",
	    0, 0, &fcbs, done_cb, r));
}

static void
test_bye_mid_fetch(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = GREETING },
		LOGIN_STEP,
		{ .expect = "A2 UID FETCH 1:* (UID BODY.PEEK[])",
		  .send = "* 1 FETCH (UID 5 BODY[] {3}\r\nabc)\r\n"
		      "* BYE [UNAVAILABLE] Server shutting down\r\n",
		  .close = 1 },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), IMAP_TLS_NONE, IMAP_AUTH_LOGIN, fetch_ready,
	    &p);
	assert_string_equal(peer_error(p), "");
	assert_int_equal(r.nmsgs, 1);
	assert_int_equal(r.uids[0], 5);
	assert_string_equal(r.body, "abc");
	assert_int_equal(r.ndone, 1);
	assert_int_equal(r.done[0].st, IMAP_ERROR);
	assert_int_equal(r.done[0].cl, IMAP_ERR_TEMP);
	assert_non_null(strstr(r.done[0].text, "BYE [UNAVAILABLE] Server "
	    "shutting down"));
	assert_string_equal(r.done[0].code, "UNAVAILABLE");
	assert_int_equal(r.close.st, IMAP_ERROR);
	assert_int_equal(r.close.cl, IMAP_ERR_TEMP);
	finish(&r, &p);
}

/* The connection drops inside a streamed body literal. */
static void
test_eof_mid_literal(void **state)
{
	struct peer_step steps[] = {
		{ .send = GREETING },
		LOGIN_STEP,
		{ .expect = "A2 UID FETCH 1:* (UID BODY.PEEK[])",
		  .send = "* 1 FETCH (UID 5 BODY[] {5000}\r\nabc", .close = 1 },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), IMAP_TLS_NONE, IMAP_AUTH_LOGIN, fetch_ready,
	    &p);
	assert_string_equal(peer_error(p), "");
	assert_int_equal(r.body_begins, 1);
	assert_int_equal(r.body_size, 5000);
	assert_string_equal(r.body, "abc");
	assert_int_equal(r.body_ends, 0);
	assert_int_equal(r.nmsgs, 0);
	assert_int_equal(r.ndone, 1);
	assert_int_equal(r.done[0].st, IMAP_ERROR);
	assert_non_null(strstr(r.close.text, "middle of a literal"));
	finish(&r, &p);
}

/* ---- a literal split across reads -------------------------------------- */

static void
fetch_logout_ready(struct rec *r)
{
	fetch_ready(r);
	assert_non_null(imap_client_logout(r->c, done_cb, r));
}

/* A small literal (parsed whole, one body_data) in four reads. */
static void
test_literal_split_inline(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = GREETING },
		LOGIN_STEP,
		{ .expect = "A2 UID FETCH 1:* (UID BODY.PEEK[])",
		  .send = "* 1 FETCH (UID 7 BODY[] {1" },
		{ .delay_ms = 30, .send = "1}\r\nhello" },
		{ .delay_ms = 30, .send = " wor" },
		{ .delay_ms = 30, .send = "ld)\r\nA2 OK done\r\n" },
		{ .expect = "A3 LOGOUT",
		  .send = "* BYE bye\r\nA3 OK logged out\r\n" },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), IMAP_TLS_NONE, IMAP_AUTH_LOGIN,
	    fetch_logout_ready, &p);
	assert_string_equal(peer_error(p), "");
	assert_int_equal(peer_steps_done(p), N(steps));
	assert_int_equal(r.body_begins, 1);
	assert_int_equal(r.body_size, 11);
	assert_int_equal(r.body_ends, 1);
	assert_int_equal(r.body_chunks, 1);
	assert_string_equal(r.body, "hello world");
	assert_int_equal(r.nmsgs, 1);
	assert_int_equal(r.uids[0], 7);
	assert_int_equal(r.ndone, 2);
	assert_int_equal(r.done[0].st, IMAP_OK);
	assert_int_equal(r.close.st, IMAP_OK);
	finish(&r, &p);
}

/* A literal above the inline limit is streamed as its reads arrive. */
static void
test_literal_split_streamed(void **state)
{
	static char part1[64], part2[2100], part3[3100], want[5001];
	struct peer_step steps[] = {
		{ .send = GREETING },
		LOGIN_STEP,
		{ .expect = "A2 UID FETCH 1:* (UID BODY.PEEK[])",
		  .send = "* 1 FETCH (UID 8 FLAGS (\\Seen) BODY[] {50" },
		{ .delay_ms = 30, .send = part1 },
		{ .delay_ms = 30, .send = part2 },
		{ .delay_ms = 30, .send = part3 },
		{ .expect = "A3 LOGOUT",
		  .send = "* BYE bye\r\nA3 OK logged out\r\n" },
	};
	struct script_peer *p;
	struct rec r;
	size_t i;

	(void)state;
	for (i = 0; i < 5000; i++)
		want[i] = (char)('a' + i % 26);
	want[5000] = '\0';
	snprintf(part1, sizeof(part1), "00}\r\n%.10s", want);
	snprintf(part2, sizeof(part2), "%.2000s", want + 10);
	snprintf(part3, sizeof(part3), "%s)\r\nA2 OK done\r\n", want + 2010);
	run(&r, steps, N(steps), IMAP_TLS_NONE, IMAP_AUTH_LOGIN,
	    fetch_logout_ready, &p);
	assert_string_equal(peer_error(p), "");
	assert_int_equal(peer_steps_done(p), N(steps));
	assert_int_equal(r.body_begins, 1);
	assert_int_equal(r.body_size, 5000);
	assert_int_equal(r.body_ends, 1);
	assert_true(r.body_chunks >= 3);	/* as the reads came */
	assert_string_equal(r.body, want);
	assert_int_equal(r.nmsgs, 1);
	assert_int_equal(r.uids[0], 8);
	assert_int_equal(r.ndone, 2);
	assert_int_equal(r.done[0].st, IMAP_OK);
	assert_int_equal(r.close.st, IMAP_OK);
	finish(&r, &p);
}

/*
 * A big literal on a plain socket arrives in big reads: libevent alone
 * reads 4 KB a call, so 1 MB would come in at least 256 pieces.
 */
static void
test_literal_big_reads(void **state)
{
	static char big[(1 << 20) + 64];
	struct peer_step steps[] = {
		{ .send = GREETING },
		LOGIN_STEP,
		{ .expect = "A2 UID FETCH 1:* (UID BODY.PEEK[])", .send = big },
		{ .expect = "A3 LOGOUT",
		  .send = "* BYE bye\r\nA3 OK logged out\r\n" },
	};
	struct script_peer *p;
	struct rec r;
	int o;

	(void)state;
	o = snprintf(big, sizeof(big), "* 1 FETCH (UID 9 BODY[] {%d}\r\n",
	    1 << 20);
	memset(big + o, 'x', (size_t)(1 << 20));
	snprintf(big + o + (1 << 20), sizeof(big) - (size_t)o - (1 << 20),
	    ")\r\nA2 OK done\r\n");
	run(&r, steps, N(steps), IMAP_TLS_NONE, IMAP_AUTH_LOGIN,
	    fetch_logout_ready, &p);
	assert_string_equal(peer_error(p), "");
	assert_int_equal(peer_steps_done(p), N(steps));
	assert_int_equal(r.body_size, 1 << 20);
	assert_int_equal(r.body_total, 1 << 20);
	assert_int_equal(r.body_ends, 1);
	print_message("1 MB literal in %d pieces\n", r.body_chunks);
	assert_true(r.body_chunks <= 128);
	assert_int_equal(r.done[0].st, IMAP_OK);
	assert_int_equal(r.close.st, IMAP_OK);
	finish(&r, &p);
}

/* ---- a continuation nobody asked for ------------------------------------ */

static void
test_unexpected_continuation(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = GREETING },
		LOGIN_STEP,
		{ .expect = "A2 NOOP", .send = "+ go ahead\r\nA2 OK noop\r\n" },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), IMAP_TLS_NONE, IMAP_AUTH_LOGIN, noop_ready,
	    &p);
	assert_string_equal(peer_error(p), "");
	assert_int_equal(r.ndone, 1);
	assert_int_equal(r.done[0].st, IMAP_ERROR);	/* not the OK after */
	assert_int_equal(r.close.st, IMAP_ERROR);
	assert_int_equal(r.close.cl, IMAP_ERR_TEMP);
	assert_non_null(strstr(r.close.text, "unexpected continuation"));
	finish(&r, &p);
}

/* ---- NO [LIMIT] with back-off text -------------------------------------- */

static void
limit_ready(struct rec *r)
{
	assert_non_null(imap_client_noop(r->c, done_cb, r));
	assert_non_null(imap_client_logout(r->c, done_cb, r));
}

static void
test_no_limit(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = GREETING },
		LOGIN_STEP,
		{ .expect = "A2 NOOP", .send = "A2 NO [LIMIT] Request is "
		      "throttled. Suggested Backoff Time: 299609 milliseconds"
		      "\r\n" },
		{ .expect = "A3 LOGOUT",
		  .send = "* BYE bye\r\nA3 OK logged out\r\n" },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), IMAP_TLS_NONE, IMAP_AUTH_LOGIN, limit_ready,
	    &p);
	assert_string_equal(peer_error(p), "");
	assert_int_equal(r.ndone, 2);
	assert_int_equal(r.done[0].st, IMAP_NO);
	assert_int_equal(r.done[0].cl, IMAP_ERR_TEMP);
	assert_string_equal(r.done[0].code, "LIMIT");
	assert_int_equal(r.done[0].backoff, 299609);
	assert_int_equal(r.done[1].st, IMAP_OK);
	assert_int_equal(r.close.st, IMAP_OK);
	finish(&r, &p);
}

/* A refused login with a back-off in seconds: the connection's error. */
static void
test_login_limit(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = GREETING },
		{ .expect = "A1 LOGIN \"alice\" \"pw\"",
		  .send = "A1 NO [LIMIT] Too many logins. Suggested Backoff "
		      "Time: 5 seconds\r\n" },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), IMAP_TLS_NONE, IMAP_AUTH_LOGIN, NULL, &p);
	assert_string_equal(peer_error(p), "");
	assert_false(r.ready);
	assert_int_equal(r.close.st, IMAP_ERROR);
	assert_int_equal(r.close.cl, IMAP_ERR_TEMP);
	assert_string_equal(r.close.code, "LIMIT");
	assert_int_equal(r.close.backoff, 5000);
	finish(&r, &p);
}

/* ---- GETQUOTAROOT ---------------------------------------------------------- */

static char quota_seen[256];

static void
quota_cb(struct imap_client *c, const struct imap_quota *q, void *arg)
{
	(void)c;
	(void)arg;
	snprintf(quota_seen + strlen(quota_seen), sizeof(quota_seen) -
	    strlen(quota_seen), "[%s %s %llu/%llu]", q->root, q->resource,
	    (unsigned long long)q->usage, (unsigned long long)q->limit);
}

static void
quota_ready(struct rec *r)
{
	assert_non_null(imap_client_getquotaroot(r->c, "INBOX", quota_cb,
	    done_cb, r));
	assert_non_null(imap_client_getquotaroot(r->c, "INBOX", quota_cb,
	    done_cb, r));
	assert_non_null(imap_client_logout(r->c, done_cb, r));
}

/* Every resource of every QUOTA response reaches the callback; a
 * malformed one drops the connection. */
static void
test_getquotaroot(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = GREETING },
		LOGIN_STEP,
		{ .expect = "A2 GETQUOTAROOT \"INBOX\"",
		  .send = "* QUOTAROOT INBOX \"User quota\" \"\"\r\n"
		      "* QUOTA \"User quota\" (STORAGE 10 1024 MESSAGE 3 "
		      "100)\r\n* QUOTA \"\" ()\r\n"
		      "A2 OK Getquotaroot completed\r\n" },
		{ .expect = "A3 GETQUOTAROOT \"INBOX\"",
		  .send = "* QUOTA \"x\" (STORAGE ten 1024)\r\n" },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	quota_seen[0] = '\0';
	run(&r, steps, N(steps), IMAP_TLS_NONE, IMAP_AUTH_LOGIN, quota_ready,
	    &p);
	assert_string_equal(peer_error(p), "");
	assert_string_equal(quota_seen,
	    "[User quota STORAGE 10/1024][User quota MESSAGE 3/100]");
	assert_int_equal(r.done[0].st, IMAP_OK);
	assert_int_equal(r.done[1].st, IMAP_ERROR);
	assert_int_equal(r.close.st, IMAP_ERROR);
	finish(&r, &p);
}

/* ---- bytes after a STARTTLS OK ------------------------------------------- */

static void
test_starttls_injection(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] "
		      "ready\r\n" },
		{ .expect = "A1 STARTTLS",
		  .send = "A1 OK Begin TLS negotiation now\r\n"
		      "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n" },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), IMAP_TLS_STARTTLS, IMAP_AUTH_AUTO, NULL, &p);
	assert_string_equal(peer_error(p), "");
	assert_int_equal(peer_steps_done(p), N(steps));
	assert_false(r.ready);
	assert_int_equal(r.close.st, IMAP_ERROR);
	assert_int_equal(r.close.cl, IMAP_ERR_PERM);
	assert_non_null(strstr(r.close.text, "data after its STARTTLS"));
	/* no TLS handshake began on top of the injected bytes */
	assert_int_equal(peer_extra(p), 0);
	finish(&r, &p);
}

/* STARTTLS offered but not wanted by the server in its OK: the client
 * refuses to go on in plain text when STARTTLS is refused. */
static void
test_starttls_refused(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n" },
		{ .expect = "A1 STARTTLS", .send = "A1 NO not now\r\n" },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), IMAP_TLS_STARTTLS, IMAP_AUTH_AUTO, NULL, &p);
	assert_string_equal(peer_error(p), "");
	assert_false(r.ready);
	assert_int_equal(r.close.cl, IMAP_ERR_PERM);
	assert_non_null(strstr(r.close.text, "STARTTLS refused"));
	assert_int_equal(peer_extra(p), 0);
	finish(&r, &p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_flow),
		cmocka_unit_test(test_unknown_tag),
		cmocka_unit_test(test_bye_mid_fetch),
		cmocka_unit_test(test_eof_mid_literal),
		cmocka_unit_test(test_literal_split_inline),
		cmocka_unit_test(test_literal_split_streamed),
		cmocka_unit_test(test_literal_big_reads),
		cmocka_unit_test(test_unexpected_continuation),
		cmocka_unit_test(test_no_limit),
		cmocka_unit_test(test_login_limit),
		cmocka_unit_test(test_getquotaroot),
		cmocka_unit_test(test_starttls_injection),
		cmocka_unit_test(test_starttls_refused),
	};

	/* TEST_DEBUG=1 shows the client's command log */
	log_open("test_imap_client", LOG_DEST_STDERR, 0,
	    getenv("TEST_DEBUG") != NULL ? LOG_LVL_DEBUG : LOG_LVL_WARNING);
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
