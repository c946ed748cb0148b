/*
 * test_inflight.c - the in-flight record and the crash check
 * (relay/inflight.h): what recovery writes into a record, that the mark
 * survives the record codec, and the IMAP look-up against a scripted
 * server (found with the headers the upstream added, a different body,
 * a recipient that is no account, a server that is down, one that never
 * answers).
 *
 * The check blocks on its own event base, so the scripted server runs
 * on another base in a thread of its own.
 */

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "accounts.h"
#include "config.h"
#include "inflight.h"
#include "log.h"
#include "msgid.h"
#include "queue_record.h"
#include "script_peer.h"

#define N(a)	(sizeof(a) / sizeof((a)[0]))
#define RCPT	"alice@example.test"

/* The message as the relay spooled it. */
static const char spooled[] =
    "From: <sender@a.test>\r\n"
    "Subject: in flight\r\n"
    "Date: Mon,  23 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <m1@Crash.Test>\r\n"
    "\r\n"
    "body line one\r\n"
    "body line two\r\n";

/* The copy in the mailbox: our and the upstream's header fields on top. */
static const char stored[] =
    "Return-Path: <sender@a.test>\r\n"
    "Delivered-To: alice@example.test\r\n"
    "Received: from relay.test by mx.test with ESMTP id 1234\r\n"
    "Authentication-Results: relay.test; spf=none\r\n"
    "From: <sender@a.test>\r\n"
    "Subject: in flight\r\n"
    "Date: Mon,  23 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <m1@Crash.Test>\r\n"
    "\r\n"
    "body line one\r\n"
    "body line two\r\n";

static const char other[] =
    "From: <sender@a.test>\r\n"
    "Message-ID: <m1@Crash.Test>\r\n"
    "\r\n"
    "another body\r\n";

/* ---- the record -------------------------------------------------------- */

static void
test_settle(void **state)
{
	struct delivery d[3];
	struct queue_record rec;
	int verdict[3] = { IF_FOUND, IF_UNKNOWN, IF_FOUND };

	(void)state;
	memset(&rec, 0, sizeof(rec));
	memset(d, 0, sizeof(d));
	d[0].rcpt = strdup("alice@example.test");
	d[1].rcpt = strdup("bob@example.test");
	d[2].rcpt = strdup("carol@example.test");
	d[2].state = DLV_BOUNCED;	/* final already: left alone */
	d[0].last_reply = strdup("451 earlier");
	rec.dlv = d;
	rec.ndlv = 3;
	rec.flags = QR_INFLIGHT | QR_HELD;
	assert_int_equal(inflight_settle(&rec, verdict), 1);
	assert_int_equal(rec.flags, QR_HELD);
	assert_int_equal(d[0].state, DLV_SENT);
	assert_non_null(strstr(d[0].last_reply, "found in the destination"));
	assert_int_equal(d[1].state, DLV_PENDING);
	assert_null(d[1].last_reply);
	assert_int_equal(d[2].state, DLV_BOUNCED);
	assert_null(d[2].last_reply);
	rec.dlv = NULL;
	rec.ndlv = 0;
	free(d[0].rcpt);
	free(d[0].last_reply);
	free(d[1].rcpt);
	free(d[2].rcpt);
}

static void
test_mark_roundtrip(void **state)
{
	struct delivery d;
	struct queue_record rec, back;
	unsigned char *buf;
	size_t len;
	char err[128];

	(void)state;
	memset(&rec, 0, sizeof(rec));
	memset(&d, 0, sizeof(d));
	memcpy(rec.id, "0123456789abcdef", QUEUE_ID_LEN + 1);
	rec.sender = (char *)"s@a.test";
	rec.client = (char *)"helo [127.0.0.1]";
	d.rcpt = (char *)RCPT;
	rec.dlv = &d;
	rec.ndlv = 1;
	rec.flags = QR_INFLIGHT;
	assert_int_equal(queue_record_encode(&rec, &buf, &len), 0);
	assert_int_equal(queue_record_decode(buf, len, &back, err,
	    sizeof(err)), 0);
	free(buf);
	assert_int_equal(back.flags, QR_INFLIGHT);
	assert_int_equal(qr_state(&back), QR_STATE_PENDING);
	queue_record_clear(&back);
}

/* ---- the IMAP check ---------------------------------------------------- */

struct server {
	struct event_base	*base;
	struct script_peer	*peer;
	pthread_t		 th;
	struct event		*stop;
};

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static void *
server_main(void *arg)
{
	struct server *s = arg;

	event_base_dispatch(s->base);
	return (NULL);
}

static void
server_start(struct server *s, const struct peer_step *steps, size_t n)
{
	memset(s, 0, sizeof(*s));
	s->base = event_base_new();
	assert_non_null(s->base);
	s->peer = peer_new(s->base, steps, n);
	assert_non_null(s->peer);
	/* keeps the loop alive until server_stop() */
	s->stop = event_new(s->base, -1, EV_PERSIST, stop_cb, s->base);
	assert_non_null(s->stop);
	assert_int_equal(event_add(s->stop, NULL), 0);
	assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void
server_stop(struct server *s)
{
	event_active(s->stop, EV_TIMEOUT, 0);
	pthread_join(s->th, NULL);
	event_free(s->stop);
	peer_free(&s->peer);
	event_base_free(s->base);
}

static void
setup_cfg(struct config *cfg, int port, int64_t timeout)
{
	char err[256];

	assert_int_equal(config_load_defaults(cfg, err, sizeof(err)), 0);
	cfg->syncd.destination.set = 1;
	cfg->syncd.destination.tls = CFG_IMAP_TLS_NONE;
	snprintf(cfg->syncd.destination.addr.host,
	    sizeof(cfg->syncd.destination.addr.host), "127.0.0.1");
	cfg->syncd.destination.addr.port = port;
	cfg->forward.crash_check = CFG_CRASH_CHECK_INBOX;
	cfg->forward.crash_check_timeout = timeout;
}

static struct accounts *
load_accounts(void)
{
	static const char text[] = RCPT " pw " RCPT " pw\n";
	struct accounts *acc = NULL;
	char err[256];
	FILE *fp = fmemopen((void *)text, sizeof(text) - 1, "r");

	assert_non_null(fp);
	if (accounts_load_fp(fp, "accounts", NULL, &acc, err,
	    sizeof(err)) == -1)
		fail_msg("accounts: %s", err);
	fclose(fp);
	return (acc);
}

/* probe_for - a probe for RCPT with the spooled message's key */
static void
probe_for(struct inflight_probe *p, struct msg_ident *id, const char *rcpt)
{
	struct body_hash bh;
	unsigned char sha[BODY_HASH_LEN];

	memset(p, 0, sizeof(*p));
	assert_int_equal(msg_ident_from_headers(spooled, sizeof(spooled) - 1,
	    id), 0);
	assert_true(id->has_msgid);
	assert_int_equal(body_hash_init(&bh), 0);
	assert_int_equal(body_hash_update(&bh, spooled, sizeof(spooled) - 1),
	    0);
	assert_int_equal(body_hash_final(&bh, sha), 0);
	/* what checks.c computes for the delivery at reception */
	assert_int_equal(msgkey_ledger(RCPT, id, sha, p->ledger_key), 0);
	p->has_key = 1;
	p->rcpt = rcpt;
	p->msgid = id->msgid;
	p->date = id->date;
}

/* run_check - one probe against a server that holds body at uid 7 */
static int
run_check(const char *body, char *why, size_t whylen)
{
	char fetch[1024];
	struct peer_step steps[] = {
		{ .send = "* OK [CAPABILITY IMAP4rev1] ready\r\n" },
		{ .expect = "A1 LOGIN \"" RCPT "\" \"pw\"",
		  .send = "A1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ .expect = "A2 EXAMINE \"INBOX\"",
		  .send = "* 9 EXISTS\r\n* OK [UIDVALIDITY 3] v\r\n"
		      "A2 OK [READ-ONLY] examined\r\n" },
		/* the Message-ID without brackets, as normalised */
		{ .expect = "A3 UID SEARCH HEADER Message-ID \"m1@crash.test\"",
		  .send = "* SEARCH 7\r\nA3 OK searched\r\n" },
		{ .expect = "A4 UID FETCH 7 (UID BODY.PEEK[])", .send = fetch },
		{ .expect = "A5 LOGOUT",
		  .send = "* BYE bye\r\nA5 OK out\r\n" },
	};
	struct server s;
	struct config cfg;
	struct accounts *acc = load_accounts();
	struct inflight_probe p;
	struct msg_ident id;

	snprintf(fetch, sizeof(fetch), "* 1 FETCH (UID 7 BODY[] {%zu}\r\n%s)"
	    "\r\nA4 OK fetched\r\n", strlen(body), body);
	server_start(&s, steps, N(steps));
	setup_cfg(&cfg, peer_port(s.peer), 10);
	probe_for(&p, &id, RCPT);
	inflight_imap_check(&cfg, acc, &p, 1);
	server_stop(&s);
	snprintf(why, whylen, "%s", p.why);
	accounts_free(&acc);
	config_free(&cfg);
	return (p.verdict);
}

static void
test_found_despite_added_headers(void **state)
{
	char why[512];

	(void)state;
	assert_int_equal(run_check(stored, why, sizeof(why)), IF_FOUND);
	assert_string_equal(why, "INBOX uid 7");
}

static void
test_other_body_is_absent(void **state)
{
	char why[512];

	(void)state;
	assert_int_equal(run_check(other, why, sizeof(why)), IF_ABSENT);
	assert_non_null(strstr(why, "not in " RCPT "'s INBOX"));
}

static void
test_not_an_account(void **state)
{
	struct config cfg;
	struct accounts *acc = load_accounts();
	struct inflight_probe p[2];
	struct msg_ident id[2];

	(void)state;
	setup_cfg(&cfg, 1, 10);		/* never connected to */
	probe_for(&p[0], &id[0], "bob@example.test");
	probe_for(&p[1], &id[1], RCPT);
	p[1].has_key = 0;
	inflight_imap_check(&cfg, acc, p, 2);
	assert_int_equal(p[0].verdict, IF_UNKNOWN);
	assert_non_null(strstr(p[0].why, "not a [syncd] account"));
	assert_int_equal(p[1].verdict, IF_UNKNOWN);
	assert_non_null(strstr(p[1].why, "no ledger key"));
	/* no accounts at all, or the check switched off */
	probe_for(&p[0], &id[0], RCPT);
	inflight_imap_check(&cfg, NULL, p, 1);
	assert_int_equal(p[0].verdict, IF_UNKNOWN);
	cfg.forward.crash_check = CFG_CRASH_CHECK_OFF;
	inflight_imap_check(&cfg, acc, p, 1);
	assert_int_equal(p[0].verdict, IF_UNKNOWN);
	assert_non_null(strstr(p[0].why, "crash_check = off"));
	accounts_free(&acc);
	config_free(&cfg);
}

static void
test_server_down(void **state)
{
	struct server s;
	struct config cfg;
	struct accounts *acc = load_accounts();
	struct inflight_probe p;
	struct msg_ident id;
	int port;
	static const struct peer_step none[] = { { .close = 1 } };

	(void)state;
	/* a port that was just free: connection refused */
	server_start(&s, none, N(none));
	port = peer_port(s.peer);
	server_stop(&s);
	setup_cfg(&cfg, port, 10);
	probe_for(&p, &id, RCPT);
	inflight_imap_check(&cfg, acc, &p, 1);
	assert_int_equal(p.verdict, IF_UNKNOWN);
	assert_non_null(strstr(p.why, "IMAP 127.0.0.1 as " RCPT));
	accounts_free(&acc);
	config_free(&cfg);
}

static void
test_silent_server_times_out(void **state)
{
	/* accepts, never greets */
	static const struct peer_step steps[] = {
		{ .expect = "never sent" },
	};
	struct server s;
	struct config cfg;
	struct accounts *acc = load_accounts();
	struct inflight_probe p;
	struct msg_ident id;
	time_t t0;

	(void)state;
	server_start(&s, steps, N(steps));
	setup_cfg(&cfg, peer_port(s.peer), 1);
	probe_for(&p, &id, RCPT);
	t0 = time(NULL);
	inflight_imap_check(&cfg, acc, &p, 1);
	assert_true(time(NULL) - t0 <= 3);
	server_stop(&s);
	assert_int_equal(p.verdict, IF_UNKNOWN);
	assert_non_null(strstr(p.why, "crash_check_timeout"));
	accounts_free(&acc);
	config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_settle),
		cmocka_unit_test(test_mark_roundtrip),
		cmocka_unit_test(test_found_despite_added_headers),
		cmocka_unit_test(test_other_body_is_absent),
		cmocka_unit_test(test_not_an_account),
		cmocka_unit_test(test_server_down),
		cmocka_unit_test(test_silent_server_times_out),
	};

	/* server_stop() wakes the server's loop from this thread */
	if (evthread_use_pthreads() == -1)
		return (1);
	log_open("test_inflight", LOG_DEST_STDERR, 0,
	    getenv("TEST_DEBUG") != NULL ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
