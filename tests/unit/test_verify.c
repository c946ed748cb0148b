/*
 * test_verify.c - the matching and the output of ferry-syncd --verify
 * (syncd/verify_match.c, verify_report.c) without servers: which groups
 * need a body hash with and without --deep; a unique Message-ID and
 * size matched without one; a second copy extra and named; a message
 * without Message-ID matched by Date + From + body; a changed body; flags
 * and INTERNALDATE different; APPENDLIMIT as policy, not missing; a
 * copy of a message deleted on the source since, and one the destination
 * altered, by the state map; the
 * counts, the verdict, the text lists and a JSON document that parses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "json.h"
#include "verify_p.h"

/* vadd - a message into l; sha: every byte of its body hash */
static struct vmsg *
vadd(struct vlist *l, uint64_t uid, uint64_t size, int64_t idate,
    const char *flags, const char *msgid, const char *from, int sha)
{
	struct vmsg *m;

	if (l->n == l->alloc) {
		l->alloc = l->alloc ? l->alloc * 2 : 8;
		l->v = realloc(l->v, l->alloc * sizeof(*l->v));
		assert_non_null(l->v);
	}
	m = &l->v[l->n++];
	memset(m, 0, sizeof(*m));
	m->uid = uid;
	m->size = size;
	m->idate = idate;
	m->flags = strdup(flags);
	m->msgid = strdup(msgid);
	m->date = strdup("Mon, 4 Mar 2024 10:00:00 +0000");
	m->from = strdup(from);
	m->subject = strdup("a subject");
	memset(m->sha, sha, sizeof(m->sha));
	return (m);
}

/* hash - what the streamed FETCH does: every message that wants one */
static void
hash(struct vlist *l, uint64_t *n)
{
	size_t k;

	for (k = 0; k < l->n; k++)
		if (l->v[k].want_sha) {
			l->v[k].have_sha = 1;
			(*n)++;
		}
}

struct fixture {
	struct vlist	 s, d;
	struct side	 dside;
	struct vacct	 va;
	struct vfolder	*vf[1];
};

static void
setup(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->va.src_user = "alice";
	f->va.dst_user = "bob";
	f->va.f = calloc(1, sizeof(*f->va.f));
	assert_non_null(f->va.f);
	f->va.nf = f->va.af = 1;
	f->va.f[0].src = strdup("INBOX");
	f->va.f[0].dst = strdup("INBOX");
	f->vf[0] = &f->va.f[0];
}

static void
run(struct fixture *f, int deep, uint64_t limit)
{
	size_t k;

	vmatch_prepare(&f->s, &f->d, deep);
	hash(&f->s, &f->va.hashed);
	hash(&f->d, &f->va.hashed);
	vmatch_finish(&f->s, &f->d, &f->dside, limit);
	for (k = 0; k < f->s.n; k++) {
		f->vf[0]->src_n++;
		f->vf[0]->src_bytes += f->s.v[k].size;
	}
	for (k = 0; k < f->d.n; k++) {
		f->vf[0]->dst_n++;
		f->vf[0]->dst_bytes += f->d.v[k].size;
	}
	assert_int_equal(vmatch_collect(&f->va, f->vf, &f->s, &f->d, "INBOX",
	    limit), 0);
}

static void
teardown(struct fixture *f)
{
	vlist_free(&f->s);
	vlist_free(&f->d);
	vacct_free(&f->va);
}

static int
walk_any(const char *path, enum json_type type, const char *value, void *arg)
{
	(void)path;
	(void)type;
	(void)value;
	(*(int *)arg)++;
	return (0);
}

static char *
text(const struct vacct *va, int json)
{
	char *out = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&out, &len);

	assert_non_null(fp);
	if (json)
		verify_print_json(fp, va, 1, 0);
	else
		verify_print_text(fp, va, 1, 0);
	assert_int_equal(fclose(fp), 0);
	return (out);
}

static void
test_unambiguous(void **st)
{
	struct fixture f;
	char *out;

	(void)st;
	setup(&f);
	vadd(&f.s, 1, 100, 1000, "\\Seen", "<a@x>", "A <a@x>", 1);
	vadd(&f.s, 2, 200, 2000, "", "<b@x>", "B <b@x>", 2);
	vadd(&f.d, 7, 100, 1000, "\\seen", "<a@x>", "A <a@x>", 9);
	vadd(&f.d, 8, 200, 2000, "", "<b@x>", "B <b@x>", 9);
	run(&f, 0, 0);
	/* one candidate of the same size: no body read, even if it differs */
	assert_int_equal(f.va.hashed, 0);
	assert_int_equal(f.vf[0]->matched, 2);
	assert_int_equal(f.va.nis, 0);
	assert_true(vacct_complete(&f.va));
	out = text(&f.va, 0);
	assert_non_null(strstr(out, "verdict alice: COMPLETE: 2 of 2 messages"));
	assert_non_null(strstr(out, "verdict: COMPLETE: 1 of 1 account"));
	free(out);
	teardown(&f);
}

static void
test_deep_body(void **st)
{
	struct fixture f;
	char *out;

	(void)st;
	setup(&f);
	vadd(&f.s, 1, 100, 1000, "", "<a@x>", "A", 1);
	vadd(&f.d, 1, 100, 1000, "", "<a@x>", "A", 2);
	run(&f, 1, 0);
	assert_int_equal(f.va.hashed, 2);
	assert_int_equal(f.vf[0]->different, 1);
	assert_int_equal(f.vf[0]->missing, 0);
	assert_int_equal(f.vf[0]->extra, 0);
	assert_int_equal(f.va.nis, 1);
	assert_int_equal(f.va.is[0].kind, VI_DIFFERENT);
	assert_string_equal(f.va.is[0].what, "body differs");
	assert_false(vacct_complete(&f.va));
	out = text(&f.va, 0);
	assert_non_null(strstr(out, "different on the destination:\n"
	    "    INBOX uid 1 (destination uid 1): "));
	free(out);
	teardown(&f);
}

static void
test_duplicate(void **st)
{
	struct fixture f;

	(void)st;
	setup(&f);
	vadd(&f.s, 3, 100, 1000, "", "<a@x>", "A", 1);
	vadd(&f.d, 10, 100, 1000, "", "<a@x>", "A", 1);
	vadd(&f.d, 11, 100, 5000, "", "<a@x>", "A", 1);
	run(&f, 0, 0);
	assert_int_equal(f.va.hashed, 3);	/* two candidates */
	assert_int_equal(f.vf[0]->matched, 1);
	assert_int_equal(f.vf[0]->extra, 1);
	assert_int_equal(f.vf[0]->different, 0);	/* same date first */
	assert_int_equal(f.va.nis, 1);
	assert_int_equal(f.va.is[0].kind, VI_EXTRA);
	assert_int_equal(f.va.is[0].uid, 11);
	assert_string_equal(f.va.is[0].what, "another copy of source INBOX "
	    "uid 3");
	teardown(&f);
}

static void
test_no_msgid(void **st)
{
	struct fixture f;

	(void)st;
	setup(&f);
	vadd(&f.s, 1, 100, 1000, "", "", "A <a@x>", 5);
	vadd(&f.s, 2, 100, 1000, "", "", "B <b@x>", 6);
	vadd(&f.d, 1, 100, 1000, "", "", "B <b@x>", 6);
	vadd(&f.d, 2, 100, 1000, "", "", "A <a@x>", 5);
	vadd(&f.d, 3, 100, 1000, "", "", "C <c@x>", 5);
	run(&f, 0, 0);
	assert_int_equal(f.va.hashed, 4);	/* C has no source: not read */
	assert_int_equal(f.vf[0]->matched, 2);
	assert_ptr_equal(f.s.v[0].peer, &f.d.v[1]);
	assert_ptr_equal(f.s.v[1].peer, &f.d.v[0]);
	assert_int_equal(f.vf[0]->extra, 1);
	assert_null(f.d.v[2].peer);
	teardown(&f);
}

static void
test_flags_idate_policy(void **st)
{
	struct fixture f;
	char *out;
	const char *doc;
	char err[256];
	int nvals = 0;

	(void)st;
	setup(&f);
	vadd(&f.s, 1, 100, 1000, "\\Seen $Label1", "<a@x>", "A", 1);
	vadd(&f.s, 2, 100, 2000, "", "<b@x>", "B", 2);
	vadd(&f.s, 3, 900, 3000, "", "<c@x>", "C", 3);
	vadd(&f.s, 4, 90, 4000, "", "<d@x>", "D", 4);
	vadd(&f.d, 1, 100, 1000, "$label1 \\Seen \\Flagged", "<a@x>", "A", 1);
	vadd(&f.d, 2, 100, 2600, "", "<b@x>", "B", 2);
	run(&f, 0, 500);
	assert_int_equal(f.vf[0]->matched, 2);
	assert_int_equal(f.vf[0]->different, 2);
	assert_int_equal(f.vf[0]->policy, 1);
	assert_int_equal(f.vf[0]->missing, 1);
	assert_int_equal(f.s.v[0].diff, VD_FLAGS);
	assert_int_equal(f.s.v[1].diff, VD_IDATE);
	assert_int_equal(f.s.v[2].state, V_POLICY);
	assert_int_equal(f.s.v[3].state, V_MISSING);
	out = text(&f.va, 0);
	assert_non_null(strstr(out, "flags different: source (\\Seen $Label1) "
	    "destination ($label1 \\Seen \\Flagged)"));
	assert_non_null(strstr(out, "INTERNALDATE different: source "
	    "\"01-Jan-1970 00:33:20 +0000\" destination"));
	assert_non_null(strstr(out, "missing on the destination:\n"
	    "    INBOX uid 4: date \"Mon, 4 Mar 2024 10:00:00 +0000\" from "
	    "\"D\" subject \"a subject\" size 90 B (90 bytes)"));
	assert_non_null(strstr(out, "left behind by policy (not missing):\n"
	    "    INBOX uid 3: "));
	assert_non_null(strstr(out, "over the destination's APPENDLIMIT "
	    "(500 bytes)"));
	assert_non_null(strstr(out, "INCOMPLETE: 2 of 3 messages on the "
	    "destination, 1 missing, 2 different, 1 left by policy"));
	free(out);
	out = text(&f.va, 1);
	doc = out;
	assert_int_equal(json_walk(doc, strlen(doc), walk_any, &nvals, err,
	    sizeof(err)), 0);
	assert_true(nvals > 50);
	assert_non_null(strstr(out, "\"verdict\": \"incomplete\""));
	assert_non_null(strstr(out, "\"kind\": \"policy\""));
	free(out);
	teardown(&f);
}

static void
test_not_verified(void **st)
{
	struct vacct va;
	char *out;

	(void)st;
	memset(&va, 0, sizeof(va));
	va.src_user = "alice";
	va.dst_user = "bob";
	va.error = 1;
	snprintf(va.err, sizeof(va.err), "destination bob@127.0.0.1:1: "
	    "refused");
	assert_false(vacct_complete(&va));
	out = text(&va, 0);
	assert_non_null(strstr(out, "verdict alice: NOT VERIFIED: destination "
	    "bob@127.0.0.1:1: refused"));
	assert_non_null(strstr(out, "verdict: INCOMPLETE: 0 of 1 account"));
	free(out);
	out = text(&va, 1);
	assert_non_null(strstr(out, "\"verdict\": \"not verified\""));
	free(out);
	vacct_free(&va);
}

static void
test_gone(void **st)
{
	struct fixture f;
	struct state_map map;
	struct state_map_entry e;

	(void)st;
	setup(&f);
	memset(&map, 0, sizeof(map));
	memset(&e, 0, sizeof(e));
	e.origin = STATE_ORIGIN_COPIED;
	e.flags = (char *)"";
	e.dst_uidvalidity = 77;
	e.src_uid = 1, e.dst_uid = 1;		/* still on the source */
	assert_int_equal(state_map_set(&map, &e), 0);
	e.src_uid = 2, e.dst_uid = 2;		/* deleted there since */
	assert_int_equal(state_map_set(&map, &e), 0);
	e.src_uid = 4, e.dst_uid = 3;		/* an older UIDVALIDITY */
	e.dst_uidvalidity = 76;
	assert_int_equal(state_map_set(&map, &e), 0);
	vadd(&f.s, 1, 100, 1000, "", "<a@x>", "A", 1);
	vadd(&f.d, 1, 100, 1000, "", "<a@x>", "A", 1);
	vadd(&f.d, 2, 100, 1000, "", "<b@x>", "B", 2);
	vadd(&f.d, 3, 100, 1000, "", "<c@x>", "C", 3);
	vmatch_prepare(&f.s, &f.d, 0);
	vmatch_finish(&f.s, &f.d, &f.dside, 0);
	vmatch_gone(&f.s, 0, &f.d, &map, 77);
	assert_int_equal(f.d.v[0].state, V_MATCH);
	assert_int_equal(f.d.v[1].state, V_GONE);
	assert_int_equal(f.d.v[1].gone_uid, 2);
	assert_int_equal(f.d.v[2].state, V_EXTRA);
	assert_int_equal(vmatch_collect(&f.va, f.vf, &f.s, &f.d, "INBOX", 0),
	    0);
	assert_int_equal(f.vf[0]->extra, 1);
	assert_int_equal(f.vf[0]->policy, 1);
	assert_true(f.va.nis == 2);
	assert_string_equal(f.va.is[0].what, "deleted on the source (INBOX uid "
	    "2) after the copy; kept on the destination");
	state_map_free(&map);
	teardown(&f);
}

static void
test_altered(void **st)
{
	struct fixture f;
	struct state_map map;
	struct state_map_entry e;

	(void)st;
	setup(&f);
	memset(&map, 0, sizeof(map));
	memset(&e, 0, sizeof(e));
	e.origin = STATE_ORIGIN_ALTERED;
	e.flags = (char *)"";
	e.dst_uidvalidity = 9;
	e.src_uid = 1, e.dst_uid = 1;	/* same id and size: matched */
	assert_int_equal(state_map_set(&map, &e), 0);
	e.src_uid = 2, e.dst_uid = 2;	/* the id rewritten: missing/extra */
	assert_int_equal(state_map_set(&map, &e), 0);
	vadd(&f.s, 1, 100, 1000, "", "<a@x>", "A", 1);
	vadd(&f.s, 2, 100, 1000, "", "<b@x>", "B", 2);
	vadd(&f.s, 3, 100, 1000, "", "<c@x>", "C", 3);
	vadd(&f.d, 1, 100, 1000, "", "<a@x>", "A", 7);
	vadd(&f.d, 2, 120, 1000, "", "<b-rewritten@x>", "B", 8);
	vadd(&f.d, 3, 100, 1000, "", "<c@x>", "C", 3);
	vmatch_prepare(&f.s, &f.d, 0);
	vmatch_finish(&f.s, &f.d, &f.dside, 0);
	assert_int_equal(f.s.v[1].state, V_MISSING);
	vmatch_gone(&f.s, 0, &f.d, &map, 9);
	assert_int_equal(vmatch_collect(&f.va, f.vf, &f.s, &f.d, "INBOX", 0),
	    0);
	assert_int_equal(f.vf[0]->matched, 3);
	assert_int_equal(f.vf[0]->different, 2);
	assert_int_equal(f.vf[0]->missing, 0);
	assert_int_equal(f.vf[0]->extra, 0);
	assert_int_equal(f.s.v[0].diff, VD_ALTERED);
	assert_int_equal(f.s.v[1].diff, VD_ALTERED);
	assert_ptr_equal(f.s.v[1].peer, &f.d.v[1]);
	assert_int_equal(f.s.v[2].diff, 0);
	assert_non_null(strstr(f.va.is[0].what, "altered by the destination"));
	state_map_free(&map);
	teardown(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unambiguous),
		cmocka_unit_test(test_deep_body),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_no_msgid),
		cmocka_unit_test(test_flags_idate_policy),
		cmocka_unit_test(test_not_verified),
		cmocka_unit_test(test_gone),
		cmocka_unit_test(test_altered),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
