/*
 * test_cutover_state.c - the cutover record's codec (round trip, strict
 * rejection), the MX class rules, the verdict (each of its four
 * conditions alone blocks it) and the status JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hex.h"

#include "cutover_state.h"
#include "json.h"
#include "relay_view.h"

#define NOW	((time_t)1800000000)
#define QUIET	((int64_t)86400)

/* full_record - every field set, for the codec */
static struct cutover_record *
full_record(void)
{
	struct cutover_record *r = calloc(1, sizeof(*r));
	struct cutover_answer *a;
	int i;

	assert_non_null(r);
	cutover_record_init(r, "Example.COM", NOW - 1000);
	r->phase = CUTOVER_DUAL;
	r->switch_seen_at = NOW - 900;
	r->all_new_since = NOW - 800;
	r->nanswers = 2;
	a = &r->answers[0];
	strcpy(a->resolver, "127.0.0.1:5353");
	a->class = MX_CLASS_NEW;
	a->ttl = 60;
	a->asked_at = NOW - 5;
	a->new_since = NOW - 900;
	a->nmx = 2;
	strcpy(a->mx[0], "mx1.new.example");
	strcpy(a->mx[1], "mx2.new.example");
	a = &r->answers[1];
	strcpy(a->resolver, "[::1]:5354");
	a->class = MX_CLASS_ERROR;
	a->asked_at = NOW - 6;
	strcpy(a->error, "timeout");
	r->sync.full_done_at = NOW - 5000;
	r->sync.last_started = NOW - 300;
	r->sync.last_finished = NOW - 200;
	r->sync.copied = 3;
	r->sync.missing = 1;
	r->sync.failed = 2;
	r->sync.accounts = 7;
	r->sync.clean_started = NOW - 4000;
	r->sync.nfail = 1;
	strcpy(r->sync.fail[0].user, "bob@example.com");
	r->sync.fail[0].failed = 2;
	strcpy(r->sync.fail[0].reason, "APPEND too large");
	for (i = 0; i < 70; i++)
		cutover_record_history(r, NOW - 100 + i, CUTOVER_SYNCED,
		    CUTOVER_SWITCHING, i == 69 ? "last" : "x");
	return (r);
}

static void
test_codec_round_trip(void **state)
{
	struct cutover_record *r = full_record(), *back = malloc(sizeof(*back));
	unsigned char *buf, *buf2;
	size_t len, len2;
	char err[256];

	(void)state;
	assert_non_null(back);
	assert_string_equal(r->domain, "example.com");
	assert_int_equal(r->nhist, CUTOVER_HISTORY_MAX);
	assert_string_equal(r->hist[CUTOVER_HISTORY_MAX - 1].why, "last");
	assert_int_equal(r->hist[0].at, NOW - 100 + 6);	/* oldest dropped */
	assert_int_equal(cutover_record_encode(r, &buf, &len), 0);
	if (cutover_record_decode(back, buf, len, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(cutover_record_encode(back, &buf2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	assert_string_equal(back->domain, "example.com");
	assert_int_equal(back->phase, CUTOVER_DUAL);
	assert_int_equal(back->nanswers, 2);
	assert_string_equal(back->answers[0].mx[1], "mx2.new.example");
	assert_int_equal(back->answers[0].ttl, 60);
	assert_string_equal(back->answers[1].error, "timeout");
	assert_int_equal(back->sync.copied, 3);
	assert_int_equal(back->sync.accounts, 7);
	assert_string_equal(back->sync.fail[0].reason, "APPEND too large");
	assert_int_equal(back->nhist, CUTOVER_HISTORY_MAX);
	free(buf);
	free(buf2);
	free(r);
	free(back);
}

static void
test_codec_strict(void **state)
{
	struct cutover_record *r = full_record(), *back = malloc(sizeof(*back));
	unsigned char *buf, *bad;
	size_t len, i;
	char err[256];

	(void)state;
	assert_non_null(back);
	assert_int_equal(cutover_record_encode(r, &buf, &len), 0);
	/* every truncation */
	for (i = 0; i < len; i++)
		if (cutover_record_decode(back, buf, i, err, sizeof(err)) != -1)
			fail_msg("truncated to %zu bytes: accepted", i);
	/* a byte too many */
	assert_non_null(bad = malloc(len + 1));
	memcpy(bad, buf, len);
	bad[len] = 0;
	assert_int_equal(cutover_record_decode(back, bad, len + 1, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "bytes after"));
	/* magic, version, phase, class */
	bad[0] = 'X';
	assert_int_equal(cutover_record_decode(back, bad, len, err,
	    sizeof(err)), -1);
	memcpy(bad, buf, len);
	bad[1] = 99;
	assert_int_equal(cutover_record_decode(back, bad, len, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "version"));
	memcpy(bad, buf, len);
	bad[2 + 1 + strlen("example.com")] = CUTOVER_NPHASES;
	assert_int_equal(cutover_record_decode(back, bad, len, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "phase"));
	/* garbage: any single flipped byte either fails or reads back as
	 * the same bytes (never a half-read record) */
	for (i = 0; i < len; i++) {
		unsigned char *again;
		size_t alen;

		memcpy(bad, buf, len);
		bad[i] ^= 0xa5;
		if (cutover_record_decode(back, bad, len, err, sizeof(err)) == -1)
			continue;
		assert_int_equal(cutover_record_encode(back, &again, &alen), 0);
		if (alen != len || memcmp(again, bad, len) != 0)
			fail_msg("byte %zu flipped: decoded to something else", i);
		free(again);
	}
	assert_int_equal(cutover_record_decode(back, "", 0, err, sizeof(err)),
	    -1);
	free(bad);
	free(buf);
	free(r);
	free(back);
}

static void
test_mx_class(void **state)
{
	struct strlist newp = { 0 }, oldp = { 0 };
	static const struct {
		const char	*hosts[3];
		size_t		 n;
		enum cutover_class want;
	} rows[] = {
		{ { "mx1.new.example", "MX2.New.Example." }, 2, MX_CLASS_NEW },
		{ { "old-mx.example.com" }, 1, MX_CLASS_OLD },
		{ { "old-mx.example.com.", "mx1.new.example" }, 2, MX_CLASS_MIXED },
		{ { "mx1.new.example", "evil.example" }, 2, MX_CLASS_UNKNOWN },
		{ { "evil.example" }, 1, MX_CLASS_UNKNOWN },
		{ { "." }, 1, MX_CLASS_ERROR },
		{ { NULL }, 0, MX_CLASS_ERROR },
		{ { "new.example" }, 1, MX_CLASS_UNKNOWN },	/* *. needs a label */
	};
	size_t i;

	(void)state;
	assert_int_equal(strlist_split(&newp, "*.new.example"), 0);
	assert_int_equal(strlist_split(&oldp, "old-mx.example.com"), 0);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (cutover_mx_class(rows[i].hosts, rows[i].n, &newp, &oldp) !=
		    rows[i].want)
			fail_msg("row %zu: got %s", i, cutover_class_name(
			    cutover_mx_class(rows[i].hosts, rows[i].n, &newp,
			    &oldp)));
	strlist_clear(&newp);
	strlist_clear(&oldp);
}

/* safe_case - a record and relay view on which the verdict holds */
static void
safe_case(struct cutover_record *r, struct relay_domain_view *rv)
{
	int i;

	cutover_record_init(r, "example.com", NOW - 3 * 86400);
	r->phase = CUTOVER_DUAL;
	r->switch_seen_at = NOW - 2 * 86400;
	r->all_new_since = NOW - 2 * 86400;
	r->nanswers = 2;
	for (i = 0; i < 2; i++) {
		snprintf(r->answers[i].resolver, sizeof(r->answers[i].resolver),
		    "127.0.0.1:%d", 5353 + i);
		r->answers[i].class = MX_CLASS_NEW;
		r->answers[i].ttl = 60;
		r->answers[i].asked_at = NOW - 10;
		r->answers[i].new_since = NOW - 2 * 86400;
		r->answers[i].nmx = 1;
		strcpy(r->answers[i].mx[0], "mx.new.example");
	}
	r->sync.full_done_at = NOW - 3 * 86400;
	r->sync.last_started = NOW - 600;
	r->sync.last_finished = NOW - 590;
	r->sync.accounts = 2;
	r->sync.clean_started = NOW - 600;
	memset(rv, 0, sizeof(*rv));
	rv->last_inbound = NOW - 86400 - 3600;
	strcpy(rv->last_client, "mail.example.org [192.0.2.1]");
	rv->arrivals_24h = 0;
}

/* has - whether some outstanding sentence contains s */
static int
has(const struct cutover_verdict *v, const char *s)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (strstr(v->outstanding[i], s) != NULL)
			return (1);
	return (0);
}

static void
test_verdict_conditions(void **state)
{
	struct cutover_record *r = malloc(sizeof(*r));
	struct relay_domain_view rv;
	struct cutover_verdict v;

	(void)state;
	assert_non_null(r);
	safe_case(r, &rv);
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	if (!v.safe)
		fail_msg("baseline not safe: %s", v.outstanding[0]);
	assert_int_equal(v.n, 0);

	/* 1. one resolver answered new only 3 min ago */
	safe_case(r, &rv);
	r->answers[1].new_since = NOW - 180;
	r->all_new_since = NOW - 180;
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_false(v.safe);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.outstanding[0], "resolver 127.0.0.1:5354 "
	    "answered new only 3 min ago (quiet period 24h)");
	/* ... or still answers old, or errors */
	safe_case(r, &rv);
	r->answers[0].class = MX_CLASS_OLD;
	r->answers[0].new_since = 0;
	strcpy(r->answers[0].mx[0], "old-mx.example.com");
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_false(v.safe);
	assert_true(has(&v, "still answers old MX: old-mx.example.com"));
	safe_case(r, &rv);
	r->answers[0].class = MX_CLASS_ERROR;
	strcpy(r->answers[0].error, "SERVFAIL");
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_false(v.safe);
	assert_true(has(&v, "SERVFAIL"));
	safe_case(r, &rv);
	r->nanswers = 0;
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_false(v.safe);

	/* 2. inbound at the relay within the quiet period (a clean pass
	 * started after it does not help) */
	safe_case(r, &rv);
	rv.last_inbound = NOW - 1200;
	rv.arrivals_1h = 3;
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_false(v.safe);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.outstanding[0], "relay received 3 messages in "
	    "the last hour, the last from mail.example.org [192.0.2.1]");

	/* 3. the queue holds something for the domain */
	safe_case(r, &rv);
	rv.deferred = 2;
	rv.oldest = NOW - 14 * 60;
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_false(v.safe);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.outstanding[0], "2 deferred messages for "
	    "example.com in the relay's queue, oldest 14 min");
	safe_case(r, &rv);
	rv.held = 1;
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_false(v.safe);
	assert_true(has(&v, "1 held message for example.com"));
	/* the relay cannot be read: not safe */
	safe_case(r, &rv);
	cutover_verdict_eval(r, NULL, NOW, QUIET, &v);
	assert_false(v.safe);

	/* 4. no clean pass started after the last inbound message */
	safe_case(r, &rv);
	r->sync.clean_started = rv.last_inbound - 10;
	r->sync.last_started = rv.last_inbound - 10;
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_false(v.safe);
	assert_int_equal(v.n, 1);
	assert_true(has(&v, "no delta pass has started since the relay's "
	    "last inbound message"));
	/* ... a pass after it copied something, one account failed */
	safe_case(r, &rv);
	r->sync.clean_started = rv.last_inbound - 10;
	r->sync.copied = 1;
	r->sync.failed = 1;
	r->sync.nfail = 1;
	strcpy(r->sync.fail[0].user, "bob");
	r->sync.fail[0].failed = 1;
	strcpy(r->sync.fail[0].reason, "APPEND too large");
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_false(v.safe);
	assert_true(has(&v, "copied 1"));
	assert_true(has(&v, "account bob: 1 message failed: APPEND too large"));
	/* ... a pass started at the very second of the inbound message may
	 * have missed it */
	safe_case(r, &rv);
	r->sync.clean_started = rv.last_inbound;
	r->sync.last_started = rv.last_inbound;
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_false(v.safe);
	/* ... a clean pass after it, then a later one that copied */
	safe_case(r, &rv);
	r->sync.clean_started = NOW - 900;
	r->sync.copied = 2;
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_false(v.safe);
	assert_true(has(&v, "copied 2"));
	/* ... no pass at all */
	safe_case(r, &rv);
	memset(&r->sync, 0, sizeof(r->sync));
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_false(v.safe);
	assert_true(has(&v, "no pass yet"));
	/* a relay that never saw the domain and a clean pass: safe */
	safe_case(r, &rv);
	memset(&rv, 0, sizeof(rv));
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_true(v.safe);
	free(r);
}

static void
test_ttl_note(void **state)
{
	struct cutover_record *r = malloc(sizeof(*r));
	struct relay_domain_view rv;
	struct cutover_verdict v;

	(void)state;
	assert_non_null(r);
	safe_case(r, &rv);
	r->phase = CUTOVER_SYNCED;
	r->answers[0].class = MX_CLASS_OLD;
	r->answers[0].ttl = 3600;
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_int_equal(v.nnotes, 1);
	assert_non_null(strstr(v.notes[0], "TTL of 3600 s"));
	r->phase = CUTOVER_DUAL;
	cutover_verdict_eval(r, &rv, NOW, QUIET, &v);
	assert_int_equal(v.nnotes, 0);
	free(r);
}

/* What the walk of the status JSON found. */
struct seen {
	char	phase[32], verdict[32], out0[256], time0[64], class0[16];
	int	domains;
};

static int
walk_cb(const char *path, enum json_type type, const char *value, void *arg)
{
	struct seen *s = arg;

	(void)type;
	if (strcmp(path, "domains.0.phase") == 0)
		snprintf(s->phase, sizeof(s->phase), "%s", value);
	else if (strcmp(path, "domains.0.verdict") == 0)
		snprintf(s->verdict, sizeof(s->verdict), "%s", value);
	else if (strcmp(path, "domains.0.outstanding.0") == 0)
		snprintf(s->out0, sizeof(s->out0), "%s", value);
	else if (strcmp(path, "domains.1.phase_since") == 0)
		snprintf(s->time0, sizeof(s->time0), "%s", value);
	else if (strcmp(path, "domains.1.resolvers.0.class") == 0)
		snprintf(s->class0, sizeof(s->class0), "%s", value);
	else if (strcmp(path, "domains.1.domain") == 0)
		s->domains = 2;
	return (0);
}

static void
test_status_json(void **state)
{
	struct cutover_record *r = malloc(sizeof(*r));
	struct relay_domain_view rv;
	struct cutover_domain_status d[2];
	struct seen s;
	struct json j;
	const char *doc;
	size_t len;
	char err[128];
	FILE *fp;

	(void)state;
	assert_non_null(r);
	safe_case(r, &rv);
	memset(d, 0, sizeof(d));
	d[0].domain = "fresh.example";
	d[0].relay = &rv;
	d[0].relay_running = 0;
	d[1].domain = "example.com";
	d[1].rec = r;
	d[1].relay = &rv;
	d[1].relay_running = -1;
	json_init(&j, 0);
	cutover_status_json(&j, d, 2, NOW, QUIET);
	assert_non_null(doc = json_finish(&j, &len));
	memset(&s, 0, sizeof(s));
	if (json_walk(doc, len, walk_cb, &s, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(s.phase, "presync");
	assert_string_equal(s.verdict, "not-yet");
	assert_non_null(strstr(doc, "no pass yet"));
	assert_string_equal(s.time0, "2027-01-12T08:00:00Z");
	assert_string_equal(s.class0, "new");
	assert_int_equal(s.domains, 2);
	assert_non_null(strstr(doc, "\"verdict\":\"safe-to-retire\""));
	assert_non_null(strstr(doc, "\"switch_seen_at\":"));
	assert_non_null(strstr(doc, "\"history\":[]"));
	json_clear(&j);

	assert_non_null(fp = tmpfile());
	assert_int_equal(cutover_status_text(fp, d, 2, NOW, QUIET), 0);
	fclose(fp);
	free(r);
}


/* The bytes of a small record of every part, pinned (the format of
 * cutover_state.h): a codec change that alters them fails here. */
static void
test_codec_golden(void **state)
{
	struct cutover_record *r = calloc(1, sizeof(*r));
	unsigned char *buf;
	size_t len;

	(void)state;
	assert_non_null(r);
	cutover_record_init(r, "ex.org", 1000);
	r->phase = CUTOVER_SWITCHING;
	r->switch_seen_at = 2000;
	r->all_new_since = -1;
	r->nanswers = 1;
	strcpy(r->answers[0].resolver, "sys");
	r->answers[0].class = MX_CLASS_MIXED;
	r->answers[0].ttl = 0x01020304;
	r->answers[0].asked_at = 3000;
	r->answers[0].new_since = 0;
	r->answers[0].nmx = 2;
	strcpy(r->answers[0].mx[0], "a.");
	strcpy(r->answers[0].mx[1], "b");
	strcpy(r->answers[0].error, "");
	r->sync.full_done_at = 4000;
	r->sync.copied = 5;
	r->sync.missing = 6;
	r->sync.failed = 7;
	r->sync.accounts = 8;
	r->sync.nfail = 1;
	strcpy(r->sync.fail[0].user, "u");
	r->sync.fail[0].failed = 9;
	strcpy(r->sync.fail[0].reason, "why");
	cutover_record_history(r, 5000, CUTOVER_SYNCED, CUTOVER_SWITCHING,
	    "mx");
	assert_int_equal(cutover_record_encode(r, &buf, &len), 0);
	assert_string_equal(hex(buf, len), "43010665782e6f72670200000000000003e800000000000007d0ffff"
	    "ffffffffffff010373797302010203040000000000000bb800000000"
	    "000000000202612e0162000000000000000fa0000000000000000000"
	    "00000000000000000000000000000000000000000000050000000000"
	    "00000600000000000000070000000800000000000000000100017500"
	    "00000000000009000377687900010000000000001388010200026d78");
	free(buf);
	free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codec_round_trip),
		cmocka_unit_test(test_codec_strict),
		cmocka_unit_test(test_codec_golden),
		cmocka_unit_test(test_mx_class),
		cmocka_unit_test(test_verdict_conditions),
		cmocka_unit_test(test_ttl_note),
		cmocka_unit_test(test_status_json),
	};
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
