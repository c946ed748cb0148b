/*
 * test_smtp_client.c - relay/smtp_client against a scripted fake server
 * on loopback (tests/unit/script_peer.c): a 421 greeting, multi-line
 * replies (greeting, EHLO, RCPT, the final dot), a malformed multi-line
 * reply, a server without PIPELINING (one command per round trip) and
 * one with it (MAIL, RCPT, DATA in one go).  The real MTAs are in
 * tests/integration/test_relay_forward.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/event.h>

#include "log.h"
#include "script_peer.h"
#include "smtp_client.h"

#define N(a)	(sizeof(a) / sizeof((a)[0]))

#define MESSAGE	"Subject: test\r\n\r\n.leading dot\r\nbody\r\n"

struct rec {
	struct event_base	*base;
	struct smtp_client	*c;
	int			 send_tx;	/* send one message at READY */
	int			 ready, failed, closed, tx_done;
	char			 why[1024];
	struct smtp_tx		 tx;
	const char		*rcpt[2];
	struct smtp_reply	 result[2];
	int			 fd;
	struct event		*release;	/* hold_ms: releases the dot */
	int			 released, done_before_release;
};

/* > 0: the message is sent with hold_dot, released after that long */
static int hold_ms;

static void
release_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rec *r = arg;

	(void)fd;
	(void)what;
	r->released = 1;
	if (r->c != NULL)
		smtp_client_release_dot(r->c, &r->tx);
}

static void
tx_cb(struct smtp_client *c, struct smtp_tx *tx, void *arg)
{
	struct rec *r = arg;

	(void)tx;
	r->tx_done = 1;
	if (hold_ms > 0 && !r->released)
		r->done_before_release = 1;
	smtp_client_close(&c);
	r->c = NULL;
	event_base_loopexit(r->base, NULL);
}

static void
conn_cb(struct smtp_client *c, int ev, const char *why, void *arg)
{
	struct rec *r = arg;
	char err[256];

	switch (ev) {
	case SMTP_CLIENT_READY:
		r->ready = 1;
		if (!r->send_tx) {
			smtp_client_close(&c);
			r->c = NULL;
			event_base_loopexit(r->base, NULL);
			return;
		}
		if (hold_ms > 0) {
			struct timeval tv = { 0, hold_ms * 1000 };

			r->tx.hold_dot = 1;
			r->release = evtimer_new(r->base, release_cb, r);
			assert_non_null(r->release);
			evtimer_add(r->release, &tv);
		}
		if (smtp_client_send(c, &r->tx, tx_cb, r, err, sizeof(err)) ==
		    -1)
			fail_msg("smtp_client_send: %s", err);
		return;
	case SMTP_CLIENT_FAILED:
		r->failed = 1;
		break;
	case SMTP_CLIENT_CLOSED:
		r->closed = 1;
		break;
	}
	snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
	r->c = NULL;
	event_base_loopexit(r->base, NULL);
}

static void
safety_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopexit(arg, NULL);
}

/* quiet_cb - lets the loop run a little longer (the background QUIT) */
static void
run_more(struct event_base *base, int ms)
{
	struct timeval tv = { 0, ms * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* run - connect to a peer running steps; one message when send_tx */
static void
run(struct rec *r, const struct peer_step *steps, size_t nsteps, int send_tx,
    struct script_peer **peer_r)
{
	struct smtp_client_ctx *ctx;
	struct smtp_client_params prm;
	struct hostport hp;
	struct script_peer *p;
	struct event *safety;
	struct timeval tv = { 5, 0 };
	char err[256], path[] = "/tmp/test_smtp_client.XXXXXX";

	memset(r, 0, sizeof(*r));
	r->base = event_base_new();
	assert_non_null(r->base);
	r->send_tx = send_tx;
	p = peer_new(r->base, steps, nsteps);
	assert_non_null(p);
	ctx = smtp_client_ctx_new(r->base, "relay.test", NULL, err,
	    sizeof(err));
	if (ctx == NULL)
		fail_msg("smtp_client_ctx_new: %s", err);

	r->fd = mkstemp(path);
	assert_true(r->fd >= 0);
	unlink(path);
	assert_int_equal(write(r->fd, MESSAGE, strlen(MESSAGE)),
	    (ssize_t)strlen(MESSAGE));
	r->rcpt[0] = "bob@example.com";
	r->rcpt[1] = "carol@example.com";
	r->tx.sender = "alice@example.org";
	r->tx.rcpt = r->rcpt;
	r->tx.nrcpt = 2;
	r->tx.fd = r->fd;
	r->tx.size = strlen(MESSAGE);
	r->tx.result = r->result;

	memset(&hp, 0, sizeof(hp));
	snprintf(hp.host, sizeof(hp.host), "127.0.0.1");
	hp.port = peer_port(p);
	memset(&prm, 0, sizeof(prm));
	prm.ep = &hp;
	prm.nep = 1;
	prm.tls = CFG_TLS_NONE;
	prm.connect_timeout = 5;
	r->c = smtp_client_connect(ctx, &prm, conn_cb, r, err, sizeof(err));
	if (r->c == NULL)
		fail_msg("smtp_client_connect: %s", err);
	safety = evtimer_new(r->base, safety_cb, r->base);
	evtimer_add(safety, &tv);
	event_base_dispatch(r->base);
	run_more(r->base, 50);
	event_free(safety);
	smtp_client_ctx_free(&ctx);
	close(r->fd);
	*peer_r = p;
}

static void
finish(struct rec *r, struct script_peer **pp)
{
	if (r->release != NULL)
		event_free(r->release);
	peer_free(pp);
	event_base_free(r->base);
}

/* ---- 421 greeting ------------------------------------------------------- */

static void
test_greeting_421(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = "421 mx.test too busy, try later\r\n", .close = 1 },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), 0, &p);
	assert_string_equal(peer_error(p), "");
	assert_false(r.ready);
	assert_true(r.failed);
	assert_non_null(strstr(r.why, "greeted: 421 mx.test too busy"));
	finish(&r, &p);
}

/* A multi-line greeting whose code changes midway is no reply. */
static void
test_greeting_malformed(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = "220-mx.test\r\n250 hello\r\n" },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), 0, &p);
	assert_true(r.failed);
	assert_non_null(strstr(r.why, "malformed reply"));
	finish(&r, &p);
}

/* ---- multi-line replies, PIPELINING --------------------------------------- */

static void
test_multiline_pipelining(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = "220-mx.test ESMTP\r\n220-second line\r\n"
		      "220 third line\r\n" },
		{ .expect = "EHLO relay.test",
		  .send = "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100000\r\n"
		      "250 8BITMIME\r\n" },
		/* MAIL, RCPT, RCPT, DATA come in one go */
		{ .expect = "MAIL FROM:<alice@example.org> SIZE=37 "
		      "BODY=8BITMIME" },
		{ .expect = "RCPT TO:<bob@example.com>" },
		{ .expect = "RCPT TO:<carol@example.com>" },
		{ .expect = "DATA",
		  .send = "250 2.1.0 ok\r\n250-2.1.5 bob\r\n250 2.1.5 ok\r\n"
		      "550-5.1.1 carol\r\n550 5.1.1 unknown\r\n"
		      "354 go ahead\r\n" },
		{ .expect = "Subject: test" },
		{ .expect = "" },
		{ .expect = "..leading dot" },
		{ .expect = "body" },
		{ .expect = ".", .single_line = 1,
		  .send = "250-2.0.0 queued\r\n250 2.0.0 as ABC123\r\n" },
		{ .expect = "QUIT", .send = "221 bye\r\n", .close = 1 },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), 1, &p);
	assert_string_equal(peer_error(p), "");
	assert_int_equal(peer_steps_done(p), N(steps));
	assert_true(r.ready);
	assert_true(r.tx_done);
	assert_int_equal(r.result[0].code, 250);
	assert_false(r.result[0].synthetic);
	assert_string_equal(r.result[0].text, "250 2.0.0 queued 2.0.0 as "
	    "ABC123");
	assert_string_equal(r.result[0].status, "2.0.0");
	assert_int_equal(r.result[1].code, 550);
	assert_string_equal(r.result[1].status, "5.1.1");
	assert_string_equal(r.result[1].text, "550 5.1.1 carol 5.1.1 unknown");
	assert_false(r.tx.closed);
	finish(&r, &p);
}

/* ---- the held dot ---------------------------------------------------------- */

/* With hold_dot the body goes out at once, the final dot only after
 * smtp_client_release_dot() (the queue's in-flight mark is durable). */
static void
test_hold_dot(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = "220 mx.test ESMTP\r\n" },
		{ .expect = "EHLO relay.test",
		  .send = "250-mx.test\r\n250 PIPELINING\r\n" },
		{ .expect = "MAIL FROM:<alice@example.org>" },
		{ .expect = "RCPT TO:<bob@example.com>" },
		{ .expect = "RCPT TO:<carol@example.com>" },
		{ .expect = "DATA",
		  .send = "250 ok\r\n250 ok\r\n250 ok\r\n354 go ahead\r\n" },
		{ .expect = "Subject: test" },
		{ .expect = "" },
		{ .expect = "..leading dot" },
		{ .expect = "body" },
		{ .expect = ".", .single_line = 1,
		  .send = "250 2.0.0 queued\r\n" },
		{ .expect = "QUIT", .send = "221 bye\r\n", .close = 1 },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	hold_ms = 200;
	run(&r, steps, N(steps), 1, &p);
	hold_ms = 0;
	assert_string_equal(peer_error(p), "");
	assert_int_equal(peer_steps_done(p), N(steps));
	assert_true(r.tx_done);
	assert_true(r.released);
	assert_false(r.done_before_release);
	assert_int_equal(r.result[0].code, 250);
	assert_int_equal(r.result[1].code, 250);
	finish(&r, &p);
}

/* ---- a server without PIPELINING ------------------------------------------- */

static void
test_no_pipelining(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = "220 mx.test ESMTP\r\n" },
		{ .expect = "EHLO relay.test",
		  .send = "250-mx.test\r\n250 SIZE\r\n" },
		{ .expect = "MAIL FROM:<alice@example.org> SIZE=37",
		  .single_line = 1, .send = "250 ok\r\n" },
		{ .expect = "RCPT TO:<bob@example.com>", .single_line = 1,
		  .send = "451 4.3.0 try later\r\n" },
		{ .expect = "RCPT TO:<carol@example.com>", .single_line = 1,
		  .send = "250 ok\r\n" },
		{ .expect = "DATA", .single_line = 1,
		  .send = "354 go ahead\r\n" },
		{ .expect = "~." , .send = "250 queued\r\n" },
		{ .expect = "QUIT", .send = "221 bye\r\n", .close = 1 },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), 1, &p);
	assert_string_equal(peer_error(p), "");
	assert_int_equal(peer_steps_done(p), N(steps));
	assert_true(r.tx_done);
	assert_int_equal(r.result[0].code, 451);
	assert_string_equal(r.result[0].status, "4.3.0");
	assert_int_equal(r.result[1].code, 250);
	assert_string_equal(r.result[1].text, "250 queued");
	finish(&r, &p);
}

/* EHLO refused: HELO, and a plain session without extensions. */
static void
test_helo_fallback(void **state)
{
	static const struct peer_step steps[] = {
		{ .send = "220 old.test\r\n" },
		{ .expect = "EHLO relay.test", .send = "502 what\r\n" },
		{ .expect = "HELO relay.test", .send = "250 old.test\r\n" },
		{ .expect = "QUIT", .send = "221 bye\r\n", .close = 1 },
	};
	struct script_peer *p;
	struct rec r;

	(void)state;
	run(&r, steps, N(steps), 0, &p);
	assert_string_equal(peer_error(p), "");
	assert_true(r.ready);
	assert_int_equal(peer_steps_done(p), N(steps));
	finish(&r, &p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_421),
		cmocka_unit_test(test_greeting_malformed),
		cmocka_unit_test(test_multiline_pipelining),
		cmocka_unit_test(test_no_pipelining),
		cmocka_unit_test(test_hold_dot),
		cmocka_unit_test(test_helo_fallback),
	};

	log_open("test_smtp_client", LOG_DEST_STDERR, 0, LOG_LVL_WARNING);
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
