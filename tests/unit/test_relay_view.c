/*
 * test_relay_view.c - common/relay_view.c against a real store in a
 * mkdtemp() directory: the inbound record (last time, its client, the
 * hourly ring over 24 hours, stale buckets, a clock that stepped back,
 * domains compared case-insensitively and exactly) and the queue walk
 * (undelivered upstream recipients of the domain by state, held winning,
 * copy_to deliveries and our DSNs not counted, the oldest arrival).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "hex.h"

#include "queue_record.h"
#include "relay_view.h"
#include "store.h"
#include "tmpstore.h"

#define H	3600
#define T0	((time_t)1800000000 / H * H)	/* the start of an hour */

/* the fixture: one empty store (tmpstore.h) */

static int
setup(void **state)
{
	return (tmpstore_open(state, "test_relay_view"));
}

static int
teardown(void **state)
{
	return (tmpstore_close(state));
}

struct note {
	const char	*domain;
	time_t		 when;
	const char	*client;
	int		 rc;
};

static int
note_fn(struct store_txn *tx, void *arg)
{
	struct note *n = arg;

	n->rc = relay_view_note(tx, n->domain, n->when, n->client);
	return (n->rc == -1 ? 1 : 0);
}

static int
note(struct tmpstore *fx, const char *domain, time_t when, const char *client)
{
	struct note n = { domain, when, client, 0 };
	char err[256];

	(void)store_txn_run(fx->st, 0, note_fn, &n, err, sizeof(err));
	return (n.rc);
}

static void
view(struct tmpstore *fx, const char *domain, time_t now,
    struct relay_domain_view *v)
{
	char err[256];

	assert_int_equal(relay_view_domain(fx->st, domain, now, v, err,
	    sizeof(err)), 0);
}

static void
test_inbound(void **state)
{
	struct tmpstore *fx = *state;
	struct relay_domain_view v;
	int i;

	/* never seen: all zero */
	view(fx, "example.com", T0, &v);
	assert_int_equal(v.last_inbound, 0);
	assert_string_equal(v.last_client, "");
	assert_true(v.arrivals_1h == 0 && v.arrivals_24h == 0);

	/* 3 in the hour of T0 - 2h, 2 in the hour of T0 */
	for (i = 0; i < 3; i++)
		assert_int_equal(note(fx, "Example.COM", T0 - 2 * H + i,
		    "old.example.org [192.0.2.1]"), 0);
	assert_int_equal(note(fx, "example.com", T0 + 10,
	    "mx.example.net [192.0.2.7]"), 0);
	assert_int_equal(note(fx, "example.com", T0 + 20,
	    "mx2.example.net [192.0.2.8]"), 0);
	view(fx, "EXAMPLE.com", T0 + 30, &v);
	assert_int_equal(v.last_inbound, T0 + 20);
	assert_string_equal(v.last_client, "mx2.example.net [192.0.2.8]");
	assert_true(v.arrivals_1h == 2);
	assert_true(v.arrivals_24h == 5);

	/* a late writer with an older time does not move "last" back */
	assert_int_equal(note(fx, "example.com", T0 + 5, "late [192.0.2.9]"),
	    0);
	view(fx, "example.com", T0 + 30, &v);
	assert_int_equal(v.last_inbound, T0 + 20);
	assert_true(v.arrivals_1h == 3);

	/* 23 hours on, the 3 of T0 - 2h have left the window */
	view(fx, "example.com", T0 + 22 * H, &v);
	assert_true(v.arrivals_1h == 0);
	assert_true(v.arrivals_24h == 3);
	view(fx, "example.com", T0 + 24 * H, &v);
	assert_true(v.arrivals_24h == 0);
	assert_int_equal(v.last_inbound, T0 + 20);	/* stays */

	/* a day later the same slot starts again from 0 */
	assert_int_equal(note(fx, "example.com", T0 + 24 * H + 1, "c [x]"), 0);
	view(fx, "example.com", T0 + 24 * H + 2, &v);
	assert_true(v.arrivals_1h == 1 && v.arrivals_24h == 1);

	/* the clock stepped back: future buckets count for nothing */
	view(fx, "example.com", T0 - 10 * H, &v);
	assert_true(v.arrivals_1h == 0 && v.arrivals_24h == 0);

	/* exact domains: not a parent, not a child */
	view(fx, "sub.example.com", T0 + 30, &v);
	assert_int_equal(v.last_inbound, 0);
	view(fx, "com", T0 + 30, &v);
	assert_int_equal(v.last_inbound, 0);

	/* a long client is cut, not refused */
	{
		char big[400];

		memset(big, 'h', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(note(fx, "long.example", T0, big), 0);
		view(fx, "long.example", T0, &v);
		assert_int_equal(strlen(v.last_client),
		    RELAY_VIEW_CLIENT_MAX - 1);
	}
	/* no domain: refused */
	assert_int_equal(note(fx, "", T0, "c"), -1);
}

/* ---- the queue ------------------------------------------------------------ */

struct qput {
	struct queue_record	*rec;
};

static int
qput_fn(struct store_txn *tx, void *arg)
{
	struct qput *q = arg;
	unsigned char *buf;
	size_t len;
	int rc;

	if (queue_record_encode(q->rec, &buf, &len) == -1)
		return (-1);
	rc = store_put(tx, STORE_DB_QUEUE, q->rec->id, QUEUE_ID_LEN, buf, len,
	    0);
	free(buf);
	return (rc == 0 ? 0 : -1);
}

static void
qput(struct tmpstore *fx, const char *id, int64_t arrived, uint32_t flags,
    struct delivery *d, size_t n)
{
	struct queue_record rec;
	struct qput q = { &rec };
	char err[256];

	memset(&rec, 0, sizeof(rec));
	snprintf(rec.id, sizeof(rec.id), "%s", id);
	rec.arrived = arrived;
	rec.flags = flags;
	rec.sender = (char *)"s@example.org";
	rec.client = (char *)"c [192.0.2.1]";
	rec.dlv = d;
	rec.ndlv = n;
	assert_int_equal(store_txn_run(fx->st, 0, qput_fn, &q, err,
	    sizeof(err)), 0);
}

static int
garbage_fn(struct store_txn *tx, void *arg)
{
	(void)arg;
	return (store_put(tx, STORE_DB_QUEUE, "00000000000000a5", QUEUE_ID_LEN,
	    "Q\002junk", 6, 0) == 0 ? 0 : -1);
}

#define D(rcpt, dest, state, att) \
	{ (char *)(rcpt), (dest), (state), (att), 0, NULL, 0, { 0 } }

static void
test_queue(void **state)
{
	struct tmpstore *fx = *state;
	struct relay_domain_view v;
	struct delivery m1[] = {
		D("a@example.com", DLV_UPSTREAM, DLV_PENDING, 0),	/* queued */
		D("b@EXAMPLE.COM", DLV_UPSTREAM, DLV_PENDING, 2),	/* deferred */
		D("c@example.com", DLV_UPSTREAM, DLV_SENT, 1),		/* done */
		D("d@example.com", DLV_UPSTREAM, DLV_BOUNCED, 1),	/* done */
		D("a@example.com", DLV_COPY, DLV_PENDING, 0),	/* old host's */
		D("e@other.example", DLV_UPSTREAM, DLV_PENDING, 0),
		D("f@sub.example.com", DLV_UPSTREAM, DLV_PENDING, 0),
	};
	struct delivery m2[] = {
		D("a@example.com", DLV_UPSTREAM, DLV_PENDING, 3),	/* held */
	};
	struct delivery m3[] = {	/* a DSN of ours: not counted */
		D("x@example.com", DLV_UPSTREAM, DLV_PENDING, 0),
	};
	struct delivery m4[] = {	/* done: not the oldest */
		D("a@example.com", DLV_UPSTREAM, DLV_SENT, 1),
	};

	view(fx, "example.com", T0, &v);
	assert_true(v.queued == 0 && v.deferred == 0 && v.held == 0);
	assert_int_equal(v.oldest, 0);

	qput(fx, "00000000000000a1", T0 - 100, 0, m1, 7);
	qput(fx, "00000000000000a2", T0 - 50, QR_HELD, m2, 1);
	qput(fx, "00000000000000a3", T0 - 500, QR_DSN, m3, 1);
	qput(fx, "00000000000000a4", T0 - 900, 0, m4, 1);
	/* a damaged record is skipped, not an error */
	{
		char err[256];

		assert_int_equal(store_txn_run(fx->st, 0, garbage_fn, NULL,
		    err, sizeof(err)), 0);
	}

	view(fx, "Example.com", T0, &v);
	assert_true(v.queued == 1);
	assert_true(v.deferred == 1);
	assert_true(v.held == 1);
	assert_int_equal(v.oldest, T0 - 100);
	view(fx, "other.example", T0, &v);
	assert_true(v.queued == 1 && v.deferred == 0 && v.held == 0);
	view(fx, "sub.example.com", T0, &v);
	assert_true(v.queued == 1);
	view(fx, "nowhere.example", T0, &v);
	assert_true(v.queued == 0 && v.oldest == 0);
}


struct raw {
	const char	*key;
	unsigned char	 val[1024];
	size_t		 vlen;
};

static int
raw_get_fn(struct store_txn *tx, void *arg)
{
	struct raw *r = arg;
	const void *v;
	size_t vlen;

	if (store_get(tx, STORE_DB_META, r->key, strlen(r->key), &v,
	    &vlen) != 0 || vlen > sizeof(r->val))
		return (-1);
	memcpy(r->val, v, vlen);
	r->vlen = vlen;
	return (0);
}

/* The inbound record's bytes, pinned (the format at the top of
 * relay_view.c): a codec change that alters them fails here. */
static void
test_inbound_golden(void **state)
{
	struct tmpstore *fx = *state;
	struct raw r = { RELAY_VIEW_KEY_PREFIX "example.com", { 0 }, 0 };
	char err[256];

	assert_int_equal(note(fx, "Example.com", T0 - 2 * H, "a [192.0.2.1]"),
	    0);
	assert_int_equal(note(fx, "example.com", T0 + 1, "b [192.0.2.2]"), 0);
	assert_int_equal(note(fx, "example.com", T0 + 2, "c [192.0.2.3]"), 0);
	assert_int_equal(store_txn_run(fx->st, 1, raw_get_fn, &r, err,
	    sizeof(err)), 0);
	assert_string_equal(hex(r.val, r.vlen), "4901000000006b49d2020d63205b3139322e302e322e335d00000000"
	    "00000000000000000000000000000000000000000000000000000000"
	    "000000000000000000000000000000000007a11e0000000100000000"
	    "000000000007a1200000000200000000000000000000000000000000"
	    "00000000000000000000000000000000000000000000000000000000"
	    "00000000000000000000000000000000000000000000000000000000"
	    "00000000000000000000000000000000000000000000000000000000"
	    "0000000000000000000000000000000000000000");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inbound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inbound_golden, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_queue, setup, teardown),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
