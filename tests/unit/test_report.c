/*
 * test_report.c - the pass report (syncd/report.c): golden text and
 * JSON for a report with a complete account, one with failures, a
 * folder error and CJK names, and one that could not log in; a dry run;
 * what counts as missing; the cap on kept problems; the number and
 * duration formats; the progress line in both styles; rows from a
 * folder plan; a write error.
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
#include "report.h"

#define N(a)	(sizeof(a) / sizeof((a)[0]))

/* render - the text or JSON of a report, malloc'd */
static char *
render(const struct report *r, int json, int pretty)
{
	char *out = NULL;
	size_t len = 0;
	FILE *fp;

	fp = open_memstream(&out, &len);
	assert_non_null(fp);
	if (json)
		assert_int_equal(report_write_json(r, fp, pretty), 0);
	else
		assert_int_equal(report_write_text(r, fp), 0);
	assert_int_equal(fclose(fp), 0);
	return (out);
}

/* golden - compare; a failure shows the first line that differs */
static void
golden(const char *got, const char *want)
{
	size_t i = 0, start = 0, line = 1;

	while (got[i] != '\0' && got[i] == want[i]) {
		if (got[i] == '\n') {
			line++;
			start = i + 1;
		}
		i++;
	}
	if (got[i] != '\0' || want[i] != '\0')
		fail_msg("line %zu differs:\n got: %.*s\nwant: %.*s\n--- whole "
		    "output:\n%s", line, (int)strcspn(got + start, "\n"),
		    got + start, (int)strcspn(want + start, "\n"), want + start,
		    got);
}

/* sample - three accounts: complete; failures and errors; no login */
static struct report *
sample(void)
{
	struct report *r = report_new(0);
	struct report_account *a;
	struct report_folder *f;

	assert_non_null(r);
	r->seconds = 65;
	a = report_account_add(r, "alice@old.example", "alice@new.example");
	a->seconds = 62;
	f = report_folder_add(a, "INBOX", "INBOX");
	f->src_count = 1200;
	f->dst_count = 1200;
	f->already = 1166;
	f->copied = 30;
	f->duplicates = 4;
	f->bytes = 12345678;
	f->seconds = 2;
	f = report_folder_add(a, "Gesendete Elemente", "Sent");
	f->src_count = 55;
	f->dst_count = 55;
	f->already = 50;
	f->copied = 5;
	f->bytes = 1000000;
	f->seconds = 2.5;
	f = report_folder_add(a, "Kalender", NULL);
	report_folder_skip(f, "non-mail folder");
	f = report_folder_add(a, "Projekte/M\xc3\xbcnchen",
	    "Projekte/M\xc3\xbcnchen");
	f->created = 1;
	f->src_count = 3;
	f->dst_count = 3;
	f->copied = 3;
	f->bytes = 4500;
	f->seconds = 0.5;

	a = report_account_add(r, "bob", "bob@new.example");
	a->seconds = 3;
	f = report_folder_add(a, "INBOX", "INBOX");
	f->src_count = 10;
	f->dst_count = 7;
	f->already = 5;
	f->copied = 2;
	f->bytes = 2048;
	f->seconds = 1;
	report_problem(f, REPORT_FAILED, 7, "Quarterly\x1b[31m report",
	    52400000, "NO [TOOBIG] message too large");
	report_problem(f, REPORT_POLICY, 9, NULL, 40000000,
	    "over APPENDLIMIT (35651584 bytes)");
	f = report_folder_add(a, "Archive", "Archive");
	report_folder_error(f, "SELECT: NO [NONEXISTENT] %s",
	    "no such mailbox");
	f = report_folder_add(a, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	f->src_count = 2;
	f->dst_count = 2;
	f->copied = 2;
	f->bytes = 100;

	a = report_account_add(r, "carol", "carol@new.example");
	a->seconds = 0.2;
	report_account_error(a, "login: NO [AUTHENTICATIONFAILED] Invalid "
	    "credentials");
	return (r);
}

static const char sample_text[] =
	"ferry-syncd pass: 3 accounts, 6 folders, 1270 source messages, 42 copied (13.4 MB) in 1m05s (0.6 msg/s)\n"
	"\n"
	"account alice@old.example -> alice@new.example (1m02s)\n"
	"  FOLDER              DESTINATION       SOURCE  DEST  COPIED  ALREADY  DUPLICATE  POLICY  FAILED    BYTES  MSG/S  NOTE\n"
	"  INBOX               INBOX               1200  1200      30     1166          4       0       0  12.3 MB   15.0\n"
	"  Gesendete Elemente  Sent                  55    55       5       50          0       0       0   1.0 MB    2.0\n"
	"  Kalender            -                      -     -       -        -          -       -       -        -      -  skipped: non-mail folder\n"
	"  Projekte/M\xc3\xbc" "nchen    Projekte/M\xc3\xbc" "nchen       3     3       3        0          0       0       0   4.5 kB    6.0  created\n"
	"  verdict: all 1258 messages of the source are on the destination (38 copied, 1216 already there, 4 skipped as duplicates)\n"
	"\n"
	"account bob -> bob@new.example (3.0s)\n"
	"  FOLDER   DESTINATION  SOURCE  DEST  COPIED  ALREADY  DUPLICATE  POLICY  FAILED   BYTES  MSG/S  NOTE\n"
	"  INBOX    INBOX            10     7       2        5          0       1       1  2.0 kB    2.0\n"
	"  Archive  Archive           ?     ?       0        0          0       0       0     0 B      -  error: SELECT: NO [NONEXISTENT] no such mailbox\n"
	"  \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e   \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e            2     2       2        0          0       0       0   100 B      -\n"
	"  messages not copied:\n"
	"    INBOX uid 7 (52.4 MB) \"Quarterly?[31m report\": failed: NO [TOOBIG] message too large\n"
	"    INBOX uid 9 (40.0 MB): skipped by policy: over APPENDLIMIT (35651584 bytes)\n"
	"  verdict: 3 messages missing in INBOX (3): 1 failed, 1 skipped by policy, 1 not accounted for; 1 folder not synced: Archive (SELECT: NO [NONEXISTENT] no such mailbox)\n"
	"\n"
	"account carol -> carol@new.example (0.2s)\n"
	"  verdict: not synced: login: NO [AUTHENTICATIONFAILED] Invalid credentials\n"
	"\n"
	"verdict: incomplete: 3 messages missing: 1 failed, 1 skipped by policy, 1 not accounted for; 2 of 3 accounts incomplete (1 not synced at all); 1 folder not synced\n";

static void
test_text(void **state)
{
	struct report *r = sample();
	char *out;

	(void)state;
	out = render(r, 0, 0);
	golden(out, sample_text);
	free(out);
	assert_int_equal(report_missing(r), 1);
	assert_int_equal(report_account_complete(r->accounts[0]), 1);
	assert_int_equal(report_account_complete(r->accounts[1]), 0);
	assert_int_equal(report_account_complete(r->accounts[2]), 0);
	report_free(&r);
	assert_null(r);
	report_free(&r);
	report_free(NULL);
}

/* Collect selected paths of a JSON document. */
struct pick {
	const char	*path;
	const char	*want;
	int		 seen;
};

static int
pick_cb(const char *path, enum json_type type, const char *value, void *arg)
{
	struct pick *p = arg;

	(void)type;
	for (; p->path != NULL; p++)
		if (strcmp(p->path, path) == 0) {
			p->seen++;
			if (strcmp(p->want, value) != 0)
				fail_msg("%s: got \"%s\" want \"%s\"", path,
				    value, p->want);
		}
	return (0);
}

/* The big sample as pretty JSON: valid, and the values are right. */
static void
test_json_sample(void **state)
{
	struct pick want[] = {
		{ "dry_run", "false", 0 },
		{ "complete", "false", 0 },
		{ "totals.accounts", "3", 0 },
		{ "totals.accounts_failed", "1", 0 },
		{ "totals.folders", "7", 0 },
		{ "totals.folders_failed", "1", 0 },
		{ "totals.missing", "3", 0 },
		{ "totals.copied", "42", 0 },
		{ "totals.bytes", "13352326", 0 },
		{ "totals.messages_per_second", "0.6", 0 },
		{ "accounts.0.complete", "true", 0 },
		{ "accounts.0.folders.2.skipped", "non-mail folder", 0 },
		{ "accounts.0.folders.2.destination", "null", 0 },
		{ "accounts.0.folders.2.source_count", "null", 0 },
		{ "accounts.0.folders.3.source", "Projekte/M\xc3\xbcnchen", 0 },
		{ "accounts.0.folders.3.created", "true", 0 },
		{ "accounts.1.folders.0.missing", "3", 0 },
		{ "accounts.1.folders.0.problems.0.kind", "failed", 0 },
		{ "accounts.1.folders.0.problems.0.uid", "7", 0 },
		{ "accounts.1.folders.0.problems.0.size", "52400000", 0 },
		{ "accounts.1.folders.0.problems.0.subject",
		  "Quarterly\x1b[31m report", 0 },
		{ "accounts.1.folders.0.problems.1.kind", "policy", 0 },
		{ "accounts.1.folders.0.problems.1.subject", "null", 0 },
		{ "accounts.1.folders.1.error",
		  "SELECT: NO [NONEXISTENT] no such mailbox", 0 },
		{ "accounts.1.folders.1.source_count", "null", 0 },
		{ "accounts.1.folders.2.messages_per_second", "null", 0 },
		{ "accounts.2.error",
		  "login: NO [AUTHENTICATIONFAILED] Invalid credentials", 0 },
		{ "accounts.2.verdict", "not synced: login: NO "
		  "[AUTHENTICATIONFAILED] Invalid credentials", 0 },
		{ NULL, NULL, 0 },
	};
	struct report *r = sample();
	char *out, err[128];
	size_t i;

	(void)state;
	out = render(r, 1, 1);
	assert_int_equal(out[strlen(out) - 1], '\n');
	if (json_walk(out, strlen(out), pick_cb, want, err, sizeof(err)) != 0)
		fail_msg("invalid JSON: %s\n%s", err, out);
	for (i = 0; want[i].path != NULL; i++)
		if (want[i].seen != 1)
			fail_msg("%s seen %d times", want[i].path, want[i].seen);
	/* the raw ESC is escaped, never written as is */
	assert_null(strchr(out, '\x1b'));
	assert_non_null(strstr(out, "Quarterly\\u001b[31m report"));
	free(out);
	report_free(&r);
}

/* A small report as compact JSON, byte for byte. */
static void
test_json_golden(void **state)
{
	static const char want[] =
	    "{\"dry_run\":false,\"complete\":false,\"verdict\":\"incomplete: 1 "
	    "message missing: 1 skipped by policy; 1 of 1 account incomplete\","
	    "\"seconds\":2.5,\"totals\":{\"accounts\":1,\"accounts_failed\":0,"
	    "\"folders\":3,\"folders_skipped\":1,\"folders_failed\":0,"
	    "\"folders_created\":1,\"folders_not_copied\":0,\"source_count\":4,\"destination_count\":3,"
	    "\"already\":1,\"copied\":2,\"duplicates\":0,\"skipped_policy\":1,"
	    "\"failed\":0,\"missing\":1,\"bytes\":2000,"
	    "\"messages_per_second\":0.8},\"accounts\":[{\"source_user\":\"u1\","
	    "\"destination_user\":\"u2\",\"error\":null,\"complete\":false,"
	    "\"verdict\":\"1 message missing in Big (1): 1 skipped by policy\","
	    "\"seconds\":2,\"totals\":{\"folders\":3,\"folders_skipped\":1,"
	    "\"folders_failed\":0,\"folders_created\":1,\"folders_not_copied\":0,"
	    "\"source_count\":4,"
	    "\"destination_count\":3,\"already\":1,\"copied\":2,"
	    "\"duplicates\":0,\"skipped_policy\":1,\"failed\":0,\"missing\":1,"
	    "\"bytes\":2000,\"messages_per_second\":1},\"folders\":["
	    "{\"source\":\"INBOX\",\"destination\":\"INBOX\",\"created\":false,"
	    "\"skipped\":null,\"error\":null,\"not_copied\":false,"
	    "\"complete\":true,"
	    "\"source_count\":3,\"destination_count\":3,\"already\":1,"
	    "\"copied\":2,\"duplicates\":0,\"skipped_policy\":0,\"failed\":0,"
	    "\"size_mismatch\":0,"
	    "\"missing\":0,\"bytes\":2000,\"seconds\":1,"
	    "\"messages_per_second\":2,\"problems\":[],\"problems_omitted\":0},"
	    "{\"source\":\"Spam\",\"destination\":null,\"created\":false,"
	    "\"skipped\":\"excluded\",\"error\":null,\"not_copied\":false,"
	    "\"complete\":true,"
	    "\"source_count\":null,\"destination_count\":null,\"already\":0,"
	    "\"copied\":0,\"duplicates\":0,\"skipped_policy\":0,\"failed\":0,"
	    "\"size_mismatch\":0,"
	    "\"missing\":0,\"bytes\":0,\"seconds\":0,"
	    "\"messages_per_second\":null,\"problems\":[],"
	    "\"problems_omitted\":0},{\"source\":\"Big\",\"destination\":"
	    "\"Big\",\"created\":true,\"skipped\":null,\"error\":null,"
	    "\"not_copied\":false,\"complete\":false,\"source_count\":1,\"destination_count\":0,"
	    "\"already\":0,\"copied\":0,\"duplicates\":0,\"skipped_policy\":1,"
	    "\"failed\":0,\"size_mismatch\":0,\"missing\":1,\"bytes\":0,\"seconds\":0.25,"
	    "\"messages_per_second\":0,\"problems\":[{\"kind\":\"policy\","
	    "\"uid\":42,\"size\":null,\"subject\":\"T\xc3\xa9st \\\"q\\\"\\u0001\","
	    "\"reason\":\"too big\"}],\"problems_omitted\":0}]}]}\n";
	struct report *r = report_new(0);
	struct report_account *a;
	struct report_folder *f;
	char *out;

	(void)state;
	r->seconds = 2.5;
	a = report_account_add(r, "u1", "u2");
	a->seconds = 2;
	f = report_folder_add(a, "INBOX", "INBOX");
	f->src_count = 3;
	f->dst_count = 3;
	f->already = 1;
	f->copied = 2;
	f->bytes = 2000;
	f->seconds = 1;
	f = report_folder_add(a, "Spam", "Junk");
	report_folder_skip(f, "excluded");
	f = report_folder_add(a, "Big", "Big");
	f->src_count = 1;
	f->dst_count = 0;
	f->created = 1;
	f->seconds = 0.25;
	report_problem(f, REPORT_POLICY, 42, "T\xc3\xa9st \"q\"\x01", 0,
	    "too big");
	out = render(r, 1, 0);
	golden(out, want);
	free(out);
	report_free(&r);
}

static void
test_dry_run(void **state)
{
	static const char want[] =
	    "ferry-syncd dry run: 1 account, 2 folders, 10 source messages, 13 to copy (55.0 kB) in 0.5s\n"
	    "\n"
	    "account alice -> alice@new (0.5s)\n"
	    "  FOLDER      DESTINATION  SOURCE  DEST  TO COPY  ALREADY  DUPLICATE  POLICY  FAILED    BYTES  MSG/S  NOTE\n"
	    "  INBOX       INBOX            10     ?       10        0          0       0       0  52.0 kB      -\n"
	    "  Sent Items  Sent              ?     ?        3        0          0       0       0   3.0 kB      -  to create\n"
	    "  Calendar    -                 -     -        -        -          -       -       -        -      -  skipped: non-mail folder\n"
	    "  verdict: dry run: 13 messages to copy (55.0 kB), 1 folder to create\n"
	    "\n"
	    "verdict: dry run: 13 messages to copy in 1 account, 1 folder to create\n";
	struct report *r = report_new(1);
	struct report_account *a;
	struct report_folder *f;
	char *out;

	(void)state;
	r->seconds = 0.5;
	a = report_account_add(r, "alice", "alice@new");
	a->seconds = 0.5;
	f = report_folder_add(a, "INBOX", "INBOX");
	f->src_count = 10;
	f->copied = 10;
	f->bytes = 52000;
	f = report_folder_add(a, "Sent Items", "Sent");
	f->copied = 3;
	f->bytes = 3000;
	f->created = 1;
	f = report_folder_add(a, "Calendar", NULL);
	report_folder_skip(f, "non-mail folder");
	out = render(r, 0, 0);
	golden(out, want);
	free(out);
	assert_int_equal(report_missing(r), 0);
	/* A dry run that could not log in is still a failure. */
	a = report_account_add(r, "bob", "bob@new");
	report_account_error(a, "connect: %s", "Connection refused");
	assert_int_equal(report_missing(r), 1);
	report_free(&r);
}

/* What makes a report incomplete, one case a row. */
static void
test_missing(void **state)
{
	static const struct {
		uint64_t src, already, copied, dups, policy, failed;
		int error, skipped;
		int missing;		/* report_missing() */
		uint64_t count;		/* totals.missing */
	} t[] = {
		{ 10, 10, 0, 0, 0, 0, 0, 0, 0, 0 },	/* all there before */
		{ 10, 4, 5, 1, 0, 0, 0, 0, 0, 0 },	/* all accounted */
		{ 10, 4, 5, 0, 0, 0, 0, 0, 1, 1 },	/* one unaccounted */
		{ 10, 4, 6, 0, 0, 1, 0, 0, 1, 1 },	/* failed although the
							   sum says complete */
		{ 10, 9, 0, 0, 1, 0, 0, 0, 1, 1 },	/* over APPENDLIMIT */
		{ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },	/* empty folder */
		{ REPORT_UNKNOWN, 0, 0, 0, 0, 0, 0, 0, 1, 0 },	/* never
							   examined */
		{ 10, 10, 0, 0, 0, 0, 1, 0, 1, 0 },	/* folder error */
		{ REPORT_UNKNOWN, 0, 0, 0, 0, 0, 0, 1, 0, 0 },	/* skipped */
		{ 5, 5, 0, 0, 0, 0, 0, 0, 0, 0 },
	};
	struct report_totals tot;
	struct report *r;
	struct report_account *a;
	struct report_folder *f;
	size_t i;

	(void)state;
	for (i = 0; i < N(t); i++) {
		r = report_new(0);
		a = report_account_add(r, "u", "v");
		f = report_folder_add(a, "F", "F");
		f->src_count = t[i].src;
		f->already = t[i].already;
		f->copied = t[i].copied;
		f->duplicates = t[i].dups;
		f->policy = t[i].policy;
		f->failed = t[i].failed;
		if (t[i].error)
			report_folder_error(f, "boom");
		if (t[i].skipped)
			report_folder_skip(f, "excluded");
		report_totals(r, &tot);
		if (report_missing(r) != t[i].missing ||
		    tot.missing != t[i].count)
			fail_msg("case %zu: missing %d/%llu want %d/%llu", i,
			    report_missing(r), (unsigned long long)tot.missing,
			    t[i].missing, (unsigned long long)t[i].count);
		if (report_folder_complete(f) == t[i].missing)
			fail_msg("case %zu: folder complete disagrees", i);
		report_free(&r);
	}

	/* A note (copied without a refused keyword) is listed, in the text
	 * and the JSON, but counts as neither missing nor failed. */
	{
		char *buf = NULL;
		size_t len = 0;
		FILE *fp;

		r = report_new(0);
		a = report_account_add(r, "u", "v");
		f = report_folder_add(a, "F", "F");
		f->src_count = 3;
		f->already = 2;
		f->copied = 1;
		report_problem(f, REPORT_NOTE, 5, NULL, 0,
		    "copied without its keywords");
		assert_int_equal(f->policy, 0);
		assert_int_equal(f->failed, 0);
		assert_int_equal(report_missing(r), 0);
		assert_non_null(fp = open_memstream(&buf, &len));
		assert_int_equal(report_write_text(r, fp), 0);
		assert_int_equal(report_write_json(r, fp, 0), 0);
		fclose(fp);
		assert_non_null(strstr(buf, "uid 5: copied, note: copied "
		    "without its keywords"));
		assert_non_null(strstr(buf, "\"kind\":\"note\""));
		free(buf);
		report_free(&r);
	}

	/* No accounts: complete, and says so. */
	r = report_new(0);
	assert_int_equal(report_missing(r), 0);
	{
		char v[128];

		report_verdict(r, v, sizeof(v));
		assert_string_equal(v, "all 0 messages of the source are on the "
		    "destination (0 accounts)");
	}
	/* Running out of memory makes it incomplete. */
	r->oom = 1;
	assert_int_equal(report_missing(r), 1);
	report_free(&r);
}

/* At most REPORT_MAX_PROBLEMS kept; counters stay exact; the table
 * shows a few. */
static void
test_problem_cap(void **state)
{
	struct report *r = report_new(0);
	struct report_account *a = report_account_add(r, "u", "v");
	struct report_folder *f = report_folder_add(a, "INBOX", "INBOX");
	char subject[32], *out;
	size_t i, lines = 0;
	const char *p;

	(void)state;
	f->src_count = REPORT_MAX_PROBLEMS + 5;
	for (i = 0; i < REPORT_MAX_PROBLEMS + 5; i++) {
		snprintf(subject, sizeof(subject), "msg %zu", i);
		report_problem(f, i % 2 ? REPORT_POLICY : REPORT_FAILED, i + 1,
		    subject, 0, "refused");
	}
	assert_int_equal(f->nproblems, REPORT_MAX_PROBLEMS);
	assert_int_equal(f->problems_omitted, 5);
	assert_int_equal(f->failed + f->policy, REPORT_MAX_PROBLEMS + 5);
	out = render(r, 0, 0);
	for (p = out; (p = strstr(p, " uid ")) != NULL; p++)
		lines++;
	assert_int_equal(lines, REPORT_TEXT_PROBLEMS);
	assert_non_null(strstr(out, "    ... and 985 more in INBOX (see "
	    "--json)\n"));
	assert_non_null(strstr(out, "verdict: 1005 messages missing in INBOX "
	    "(1005): 503 failed, 502 skipped by policy\n"));
	free(out);
	report_free(&r);

	/* Long subjects are cut to 60 columns, wide characters counted. */
	r = report_new(0);
	a = report_account_add(r, "u", "v");
	f = report_folder_add(a, "F", "F");
	f->src_count = 2;
	{
		char ascii[101], cjk[121], want1[128], want2[160];

		memset(ascii, 'x', 100);
		ascii[100] = '\0';
		for (i = 0; i < 40; i++)	/* 40 x U+65E5: 80 columns */
			memcpy(cjk + 3 * i, "\xe6\x97\xa5", 3);
		cjk[120] = '\0';
		report_problem(f, REPORT_FAILED, 1, ascii, 0, "r");
		report_problem(f, REPORT_FAILED, 2, cjk, 0, "r");
		/* 57 + "..." columns; 28 wide characters (56) + "..." */
		snprintf(want1, sizeof(want1), "    F uid 1 \"%.57s...\": "
		    "failed: r\n", ascii);
		snprintf(want2, sizeof(want2), "    F uid 2 \"%.84s...\": "
		    "failed: r\n", cjk);
		out = render(r, 0, 0);
		assert_non_null(strstr(out, want1));
		assert_non_null(strstr(out, want2));
		free(out);
	}
	report_free(&r);
}

static void
test_formats(void **state)
{
	static const struct { uint64_t n; const char *s; } b[] = {
		{ 0, "0 B" }, { 999, "999 B" }, { 1000, "1.0 kB" },
		{ 1500, "1.5 kB" }, { 999949, "999.9 kB" },
		{ 999950, "1.0 MB" }, { 312000000, "312.0 MB" },
		{ 52428800, "52.4 MB" }, { 1000000000000ULL, "1.0 TB" },
		{ UINT64_MAX, "18446.7 PB" },
	};
	static const struct { double s; const char *str; } d[] = {
		{ 0, "0.0s" }, { 0.44, "0.4s" }, { 59.9, "59.9s" },
		{ 59.96, "1m00s" }, { 65, "1m05s" }, { 3599.4, "59m59s" },
		{ 3599.6, "1h00m" }, { 7620, "2h07m" }, { 273600, "3d04h" },
		{ -1, "?" },
	};
	static const struct { const char *s; size_t w; } w[] = {
		{ "", 0 }, { "INBOX", 5 }, { "Entw\xc3\xbcrfe", 8 },
		{ "Entwu\xcc\x88rfe", 8 }, { "\xe6\x97\xa5\xe6\x9c\xac", 4 },
		{ "a\x01z", 3 }, { "\xff", 1 }, { "\xf0\x9f\x98\x80", 2 },
	};
	char buf[32];
	size_t i;

	(void)state;
	for (i = 0; i < N(b); i++) {
		report_fmt_bytes(b[i].n, buf, sizeof(buf));
		if (strcmp(buf, b[i].s) != 0)
			fail_msg("bytes %zu: got %s want %s", i, buf, b[i].s);
	}
	for (i = 0; i < N(d); i++) {
		report_fmt_duration(d[i].s, buf, sizeof(buf));
		if (strcmp(buf, d[i].str) != 0)
			fail_msg("duration %zu: got %s want %s", i, buf,
			    d[i].str);
	}
	for (i = 0; i < N(w); i++)
		if (report_text_width(w[i].s) != w[i].w)
			fail_msg("width %zu: got %zu want %zu", i,
			    report_text_width(w[i].s), w[i].w);
}

static void
test_progress(void **state)
{
	static const struct {
		struct report_progress p;
		const char *tty, *log;
	} t[] = {
		{ { 3, 10, 45, 120, 12034, 50000, 412300000, 1600000000, 500,
		    0, 0 },
		  "accounts 3/10  folders 45/120  msgs 12034/50000 24%  412.3 MB"
		  "  24 msg/s  824.6 kB/s  ETA 24m01s",
		  "progress accounts=3/10 folders=45/120 messages=12034/50000 "
		  "bytes=412300000/1600000000 msgs_per_s=24.1 bytes_per_s="
		  "824600 elapsed=500 eta=1441" },
		/* nothing known yet */
		{ { 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
		  "accounts 0/2  folders 0  msgs 0  0 B  0.0 msg/s  0 B/s  ETA ?",
		  "progress accounts=0/2 folders=0/0 messages=0/0 bytes=0/0 "
		  "msgs_per_s=0.0 bytes_per_s=0 elapsed=0 eta=-" },
		/* the caller's current rates win; ETA from messages */
		{ { 1, 4, 2, 9, 100, 1100, 5000000, 0, 10, 12.5, 250000 },
		  "accounts 1/4  folders 2/9  msgs 100/1100 9%  5.0 MB  12 msg/s"
		  "  250.0 kB/s  ETA 1m20s",
		  "progress accounts=1/4 folders=2/9 messages=100/1100 "
		  "bytes=5000000/0 msgs_per_s=12.5 bytes_per_s=250000 "
		  "elapsed=10 eta=80" },
		/* done */
		{ { 1, 1, 5, 5, 100, 100, 2000, 2000, 10, 0, 0 },
		  "accounts 1/1  folders 5/5  msgs 100/100 100%  2.0 kB  10 msg/s"
		  "  200 B/s  ETA 0s",
		  "progress accounts=1/1 folders=5/5 messages=100/100 "
		  "bytes=2000/2000 msgs_per_s=10.0 bytes_per_s=200 elapsed=10 "
		  "eta=0" },
		/* slow: a decimal in the rate */
		{ { 0, 1, 0, 1, 3, 10, 0, 0, 10, 0, 0 },
		  "accounts 0/1  folders 0/1  msgs 3/10 30%  0 B  0.3 msg/s  "
		  "0 B/s  ETA 24s",
		  "progress accounts=0/1 folders=0/1 messages=3/10 bytes=0/0 "
		  "msgs_per_s=0.3 bytes_per_s=0 elapsed=10 eta=24" },
	};
	char buf[256];
	size_t i;
	int n;

	(void)state;
	for (i = 0; i < N(t); i++) {
		report_progress_format(&t[i].p, REPORT_PROGRESS_TTY, buf,
		    sizeof(buf));
		if (strcmp(buf, t[i].tty) != 0)
			fail_msg("tty %zu: got [%s] want [%s]", i, buf, t[i].tty);
		report_progress_format(&t[i].p, REPORT_PROGRESS_LOG, buf,
		    sizeof(buf));
		if (strcmp(buf, t[i].log) != 0)
			fail_msg("log %zu: got [%s] want [%s]", i, buf, t[i].log);
	}
	/* snprintf semantics */
	n = report_progress_format(&t[0].p, REPORT_PROGRESS_TTY, buf, 9);
	assert_int_equal(n, (int)strlen(t[0].tty));
	assert_string_equal(buf, "accounts");
}

/* Rows straight from a folder plan. */
static void
test_from_plan(void **state)
{
	static const struct folder_info src[] = {
		{ "INBOX", NULL, 0 },
		{ "Sent Items", NULL, 0 },
		{ "Calendar", NULL, 0 },
		{ "Contacts", NULL, 0 },
		{ "Projects", NULL, 0 },
	};
	static const struct folder_info dst[] = {
		{ "INBOX", NULL, 0 },
		{ "Sent", NULL, IMAP_MBOX_SENT },
	};
	struct folder_list s = { src, N(src), '/', "" };
	struct folder_list d = { dst, N(dst), '/', "" };
	struct folder_plan *plan;
	struct report *r = report_new(0);
	struct report_account *a = report_account_add(r, "u", "v");
	struct report_folder *f;
	char err[128];
	size_t i;

	(void)state;
	assert_int_equal(folder_plan_build(NULL, &s, &d, 0, &plan, err,
	    sizeof(err)), 0);
	for (i = 0; i < plan->n; i++)
		assert_non_null(report_folder_add_map(a, &plan->maps[i]));
	/* plan order: INBOX, Calendar, Contacts, Projects, Sent Items */
	f = a->folders[1];
	assert_string_equal(f->src, "Calendar");
	assert_null(f->dst);
	assert_string_equal(f->skipped, "non-mail folder");
	f = a->folders[3];
	assert_string_equal(f->src, "Projects");
	assert_int_equal(f->created, 1);
	f = a->folders[4];
	assert_string_equal(f->src, "Sent Items");
	assert_string_equal(f->dst, "Sent");
	assert_int_equal(f->created, 0);
	assert_int_equal(f->src_count, REPORT_UNKNOWN);
	/* nothing examined yet: incomplete */
	assert_int_equal(report_missing(r), 1);
	for (i = 0; i < a->nfolders; i++)
		a->folders[i]->src_count = 0;
	assert_int_equal(report_missing(r), 0);
	folder_plan_free(&plan);
	report_free(&r);
}

/* A full disk is reported by both writers. */
static void
test_write_error(void **state)
{
	struct report *r = sample();
	FILE *fp;

	(void)state;
	fp = fopen("/dev/full", "w");		/* Linux: every write fails */
	assert_non_null(fp);
	setvbuf(fp, NULL, _IONBF, 0);
	assert_int_equal(report_write_text(r, fp), -1);
	clearerr(fp);
	assert_int_equal(report_write_json(r, fp, 1), -1);
	fclose(fp);
	report_free(&r);
}

/* A folder the plan leaves behind for no rule (its name does not
 * decode) fails the pass and is named with its count; a policy skip
 * does not. */
static void
test_not_copied(void **state)
{
	struct report *r = report_new(0);
	struct report_account *a = report_account_add(r, "alice", "bob");
	struct folder_map bad = { .src_path = "Bad&Name",
	    .skip = FOLDER_SKIP_BADNAME };
	struct folder_map ex = { .src_path = "Junk",
	    .skip = FOLDER_SKIP_EXCLUDED };
	struct report_folder *f, *g;
	char buf[512];

	(void)state;
	assert_true(folder_skip_is_loss(FOLDER_SKIP_BADNAME));
	assert_false(folder_skip_is_loss(FOLDER_SKIP_EXCLUDED));
	assert_false(folder_skip_is_loss(FOLDER_COPY));
	g = report_folder_add_map(a, &ex);
	assert_non_null(g->skipped);
	assert_int_equal(report_missing(r), 0);
	f = report_folder_add_map(a, &bad);
	assert_non_null(f);
	assert_null(f->skipped);
	assert_true(f->not_copied);
	assert_int_equal(report_missing(r), 1);
	f->src_count = 12;
	report_verdict(r, buf, sizeof(buf));
	assert_non_null(strstr(buf, "incomplete: folder Bad&Name (12 "
	    "messages) not copied: name is not valid modified UTF-7"));
	report_account_verdict(a, buf, sizeof(buf));
	assert_non_null(strstr(buf, "folder Bad&Name (12 messages) not "
	    "copied"));
	assert_null(strstr(buf, "not synced"));
	report_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_json_sample),
		cmocka_unit_test(test_json_golden),
		cmocka_unit_test(test_dry_run),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_problem_cap),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_from_plan),
		cmocka_unit_test(test_not_copied),
		cmocka_unit_test(test_write_error),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
