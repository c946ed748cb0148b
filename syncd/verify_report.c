/*
 * verify_report.c - the output of ferry-syncd --verify: per account a
 * table of folders (as the pass report has, report.c), the missing,
 * extra, different and policy lists under it, a verdict per account and
 * one in total; or the same as one JSON document; and the verification
 * record in the store (verify.h).
 */

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "log.h"
#include "verify_p.h"

void
vacct_free(struct vacct *va)
{
	size_t i;

	for (i = 0; i < va->nf; i++) {
		free(va->f[i].src);
		free(va->f[i].dst);
	}
	for (i = 0; i < va->nis; i++) {
		free(va->is[i].folder);
		free(va->is[i].date);
		free(va->is[i].from);
		free(va->is[i].subject);
		free(va->is[i].what);
	}
	free(va->f);
	free(va->is);
	va->f = NULL;
	va->is = NULL;
	va->nf = va->nis = 0;
}

/* totals - the account's sums over its folders; errors: folders that
 * could not be read */
static size_t
totals(const struct vacct *va, struct vfolder *t)
{
	size_t i, errors = 0;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < va->nf; i++) {
		const struct vfolder *f = &va->f[i];

		t->src_n += f->src_n;
		t->src_bytes += f->src_bytes;
		t->dst_n += f->dst_n;
		t->dst_bytes += f->dst_bytes;
		t->matched += f->matched;
		t->missing += f->missing;
		t->extra += f->extra;
		t->different += f->different;
		t->policy += f->policy;
		errors += f->error != 0;
	}
	return (errors);
}

int
vacct_complete(const struct vacct *va)
{
	struct vfolder t;

	if (va->error)
		return (0);
	if (totals(va, &t) > 0)
		return (0);
	return (t.missing == 0 && t.extra == 0 && t.different == 0);
}

/* verdict - "complete", "incomplete: 1 missing, ..." or "not verified" */
static void
verdict(const struct vacct *va, char *buf, size_t len)
{
	struct vfolder t;
	size_t errors, o;

	if (va->error) {
		snprintf(buf, len, "NOT VERIFIED: %s", va->err);
		return;
	}
	errors = totals(va, &t);
	/* out of the messages the copy is meant to bring over */
	o = (size_t)snprintf(buf, len, "%s: %" PRIu64 " of %" PRIu64
	    " messages on the destination", vacct_complete(va) ? "COMPLETE" :
	    "INCOMPLETE", t.matched, t.src_n - t.policy);
	if (o < len && t.missing)
		o += (size_t)snprintf(buf + o, len - o, ", %" PRIu64
		    " missing", t.missing);
	if (o < len && t.extra)
		o += (size_t)snprintf(buf + o, len - o, ", %" PRIu64
		    " extra", t.extra);
	if (o < len && t.different)
		o += (size_t)snprintf(buf + o, len - o, ", %" PRIu64
		    " different", t.different);
	if (o < len && t.policy)
		o += (size_t)snprintf(buf + o, len - o, ", %" PRIu64
		    " left by policy", t.policy);
	if (o < len && errors)
		snprintf(buf + o, len - o, ", %zu %s not read", errors,
		    errors == 1 ? "folder" : "folders");
}

/* ---- text ---------------------------------------------------------------- */

#define NCOLS	10

static const char *const heads[NCOLS] = { "FOLDER", "DESTINATION",
    "SRC MSGS", "SRC BYTES", "DST MSGS", "DST BYTES", "MISSING", "EXTRA",
    "DIFFERENT", "POLICY" };

static void
row_cells(const struct vfolder *f, char cell[NCOLS][160])
{
	snprintf(cell[0], 160, "%s", f->src);
	if (f->skipped)
		snprintf(cell[1], 160, "(skipped: %s)", f->skipped);
	else
		snprintf(cell[1], 160, "%s", f->dst ? f->dst : "-");
	snprintf(cell[2], 160, "%" PRIu64, f->src_n);
	report_fmt_bytes(f->src_bytes, cell[3], 160);
	snprintf(cell[4], 160, "%" PRIu64, f->dst_n);
	report_fmt_bytes(f->dst_bytes, cell[5], 160);
	snprintf(cell[6], 160, "%" PRIu64, f->missing);
	snprintf(cell[7], 160, "%" PRIu64, f->extra);
	snprintf(cell[8], 160, "%" PRIu64, f->different);
	snprintf(cell[9], 160, "%" PRIu64, f->policy);
	if (f->error)
		snprintf(cell[6], 160, "?");
	if (f->skipped) {	/* counted by STATUS, the source only */
		snprintf(cell[3], 160, "-");
		snprintf(cell[4], 160, "-");
		snprintf(cell[5], 160, "-");
	}
}

static void
print_row(FILE *out, char cell[NCOLS][160], const size_t *wd)
{
	size_t c;

	fprintf(out, "  ");
	for (c = 0; c < NCOLS; c++) {
		if (c < 2)
			fprintf(out, "%-*s", (int)wd[c], cell[c]);
		else
			fprintf(out, "%*s", (int)wd[c], cell[c]);
		fprintf(out, c + 1 < NCOLS ? "  " : "\n");
	}
}

static void
print_table(FILE *out, const struct vacct *va)
{
	char cell[NCOLS][160];
	size_t wd[NCOLS], c, i;

	for (c = 0; c < NCOLS; c++)
		wd[c] = strlen(heads[c]);
	for (i = 0; i < va->nf; i++) {
		row_cells(&va->f[i], cell);
		for (c = 0; c < NCOLS; c++)
			if (strlen(cell[c]) > wd[c])
				wd[c] = strlen(cell[c]);
	}
	for (c = 0; c < NCOLS; c++)
		snprintf(cell[c], 160, "%s", heads[c]);
	print_row(out, cell, wd);
	for (i = 0; i < va->nf; i++) {
		row_cells(&va->f[i], cell);
		print_row(out, cell, wd);
	}
	for (i = 0; i < va->nf; i++)
		if (va->f[i].error)
			fprintf(out, "  %s: not read: %s\n", va->f[i].src,
			    va->f[i].err);
}

static void
print_issue(FILE *out, const struct vissue *is)
{
	char d[IMAP_DATE_TIME_MAX], sz[32];

	if (is->date == NULL) {		/* a whole folder */
		fprintf(out, "    %s: %s\n", is->folder, is->what);
		return;
	}
	report_fmt_bytes(is->size, sz, sizeof(sz));
	imap_parse_format_date_time(is->idate, is->tz, d, sizeof(d));
	fprintf(out, "    %s uid %" PRIu64, is->folder, is->uid);
	if (is->kind == VI_DIFFERENT)
		fprintf(out, " (destination uid %" PRIu64 ")", is->dst_uid);
	fprintf(out, ": date \"%s\" from \"%s\" subject \"%s\" size %s "
	    "(%" PRIu64 " bytes) internaldate \"%s\"",
	    is->date[0] ? is->date : "-", is->from[0] ? is->from : "-",
	    is->subject, sz, is->size, d);
	if (is->what != NULL && is->what[0])
		fprintf(out, ": %s", is->what);
	fprintf(out, "\n");
}

static const char *const kind_title[] = {
	[VI_MISSING] = "missing on the destination",
	[VI_EXTRA] = "extra on the destination",
	[VI_DIFFERENT] = "different on the destination",
	[VI_POLICY] = "left behind by policy (not missing)",
};

static const char *const kind_name[] = {
	[VI_MISSING] = "missing",
	[VI_EXTRA] = "extra",
	[VI_DIFFERENT] = "different",
	[VI_POLICY] = "policy",
};

void
verify_print_text(FILE *out, const struct vacct *va, size_t n, int deep)
{
	char line[1024];
	size_t i, k, ok = 0;
	int kind;

	for (i = 0; i < n; i++) {
		const struct vacct *a = &va[i];

		fprintf(out, "account %s -> %s (%.1f s, %" PRIu64
		    " bodies hashed%s)\n", a->src_user, a->dst_user, a->seconds,
		    a->hashed, deep ? ", deep" : "");
		if (a->nf > 0)
			print_table(out, a);
		for (kind = VI_MISSING; kind <= VI_POLICY; kind++) {
			int shown = 0;

			for (k = 0; k < a->nis; k++) {
				if ((int)a->is[k].kind != kind)
					continue;
				if (!shown)
					fprintf(out, "  %s:\n",
					    kind_title[kind]);
				shown = 1;
				print_issue(out, &a->is[k]);
			}
		}
		verdict(a, line, sizeof(line));
		fprintf(out, "  verdict %s: %s\n\n", a->src_user, line);
		ok += vacct_complete(a);
	}
	fprintf(out, "verdict: %s: %zu of %zu %s complete\n",
	    ok == n ? "COMPLETE" : "INCOMPLETE", ok, n,
	    n == 1 ? "account" : "accounts");
}

/* ---- JSON ---------------------------------------------------------------- */

static void
json_counts(struct json *j, const struct vfolder *f)
{
	json_key(j, "src_messages");
	json_uint(j, f->src_n);
	json_key(j, "src_bytes");
	json_uint(j, f->src_bytes);
	json_key(j, "dst_messages");
	json_uint(j, f->dst_n);
	json_key(j, "dst_bytes");
	json_uint(j, f->dst_bytes);
	json_key(j, "matched");
	json_uint(j, f->matched);
	json_key(j, "missing");
	json_uint(j, f->missing);
	json_key(j, "extra");
	json_uint(j, f->extra);
	json_key(j, "different");
	json_uint(j, f->different);
	json_key(j, "policy");
	json_uint(j, f->policy);
}

static void
json_issue(struct json *j, const struct vissue *is)
{
	char d[IMAP_DATE_TIME_MAX];

	json_object_begin(j);
	json_key(j, "kind");
	json_string(j, kind_name[is->kind]);
	json_key(j, "folder");
	json_string(j, is->folder);
	json_key(j, "what");
	json_string(j, is->what ? is->what : "");
	if (is->date != NULL) {
		json_key(j, is->kind == VI_EXTRA ? "dst_uid" : "uid");
		json_uint(j, is->uid);
		if (is->kind == VI_DIFFERENT) {
			json_key(j, "dst_uid");
			json_uint(j, is->dst_uid);
		}
		json_key(j, "size");
		json_uint(j, is->size);
		imap_parse_format_date_time(is->idate, is->tz, d, sizeof(d));
		json_key(j, "internaldate");
		json_string(j, d);
		json_key(j, "date");
		json_string(j, is->date);
		json_key(j, "from");
		json_string(j, is->from);
		json_key(j, "subject");
		json_string(j, is->subject);
	}
	json_object_end(j);
}

void
verify_print_json(FILE *out, const struct vacct *va, size_t n, int deep)
{
	struct json j;
	struct vfolder t, all;
	char line[1024];
	size_t i, k, ok = 0;

	memset(&all, 0, sizeof(all));
	json_init_file(&j, out, JSON_PRETTY);
	json_object_begin(&j);
	json_key(&j, "deep");
	json_bool(&j, deep);
	json_key(&j, "accounts");
	json_array_begin(&j);
	for (i = 0; i < n; i++) {
		const struct vacct *a = &va[i];
		int complete = vacct_complete(a);

		ok += complete;
		(void)totals(a, &t);
		all.src_n += t.src_n;
		all.src_bytes += t.src_bytes;
		all.dst_n += t.dst_n;
		all.dst_bytes += t.dst_bytes;
		all.matched += t.matched;
		all.missing += t.missing;
		all.extra += t.extra;
		all.different += t.different;
		all.policy += t.policy;
		json_object_begin(&j);
		json_key(&j, "account");
		json_string(&j, a->src_user);
		json_key(&j, "destination");
		json_string(&j, a->dst_user);
		json_key(&j, "verdict");
		json_string(&j, a->error ? "not verified" : complete ?
		    "complete" : "incomplete");
		verdict(a, line, sizeof(line));
		json_key(&j, "verdict_text");
		json_string(&j, line);
		json_key(&j, "error");
		json_string(&j, a->error ? a->err : NULL);
		json_key(&j, "seconds");
		json_double(&j, a->seconds);
		json_key(&j, "hashed");
		json_uint(&j, a->hashed);
		json_counts(&j, &t);
		json_key(&j, "folders");
		json_array_begin(&j);
		for (k = 0; k < a->nf; k++) {
			const struct vfolder *f = &a->f[k];

			json_object_begin(&j);
			json_key(&j, "folder");
			json_string(&j, f->src);
			json_key(&j, "destination");
			json_string(&j, f->dst);
			json_key(&j, "skipped");
			json_string(&j, f->skipped);
			json_key(&j, "error");
			json_string(&j, f->error ? f->err : NULL);
			json_counts(&j, f);
			json_object_end(&j);
		}
		json_array_end(&j);
		json_key(&j, "issues");
		json_array_begin(&j);
		for (k = 0; k < a->nis; k++)
			json_issue(&j, &a->is[k]);
		json_array_end(&j);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_key(&j, "total");
	json_object_begin(&j);
	json_key(&j, "accounts");
	json_uint(&j, n);
	json_key(&j, "complete_accounts");
	json_uint(&j, ok);
	json_counts(&j, &all);
	json_object_end(&j);
	json_key(&j, "verdict");
	json_string(&j, ok == n ? "complete" : "incomplete");
	json_object_end(&j);
	if (json_end(&j) == -1)
		log_warnx("--verify --json: cannot write the report");
	fputc('\n', out);
}

/* ---- the record ---------------------------------------------------------- */

void
verify_record(struct store *st, const struct vacct *va, int deep)
{
	struct json j;
	struct vfolder t;
	const char *doc;
	char key[64 + ACCOUNTS_USER_MAX + 1], err[256];
	size_t len, i;

	if (st == NULL)
		return;
	(void)totals(va, &t);
	snprintf(key, sizeof(key), "syncd.verify.%s", va->src_user);
	for (i = strlen("syncd.verify."); key[i]; i++)
		key[i] = (char)tolower((unsigned char)key[i]);
	json_init(&j, 0);
	json_object_begin(&j);
	json_key(&j, "time");
	json_int(&j, (int64_t)time(NULL));
	json_key(&j, "verdict");
	json_string(&j, vacct_complete(va) ? "complete" : "incomplete");
	json_key(&j, "deep");
	json_bool(&j, deep);
	json_key(&j, "src_messages");
	json_uint(&j, t.src_n);
	json_key(&j, "dst_messages");
	json_uint(&j, t.dst_n);
	json_key(&j, "missing");
	json_uint(&j, t.missing);
	json_key(&j, "extra");
	json_uint(&j, t.extra);
	json_key(&j, "different");
	json_uint(&j, t.different);
	json_key(&j, "policy");
	json_uint(&j, t.policy);
	json_object_end(&j);
	if ((doc = json_finish(&j, &len)) == NULL ||
	    state_meta_put(st, key, doc, len, err, sizeof(err)) == -1)
		log_warnx("%s: verification record not written: %s",
		    va->src_user, doc == NULL ? "out of memory" : err);
	json_clear(&j);
}
