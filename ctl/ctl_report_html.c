/*
 * ctl_report_html.c - the acceptance report as one HTML page: the style
 * inline, no script, no image, no link to anything, so the file is the
 * whole report wherever it is opened or archived; @media print gives
 * black on white, rows not split across pages and each account on a
 * page of its own.  Every text goes through rpt_html_text().
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cutover_state.h"
#include "ctl_report_p.h"

static const char style[] =
"body{font:14px/1.4 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;"
"margin:2em auto;max-width:72em;color:#111;padding:0 1em}"
"h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #999;"
"margin-top:2em}h3{font-size:1.05em;margin-bottom:.3em}"
"table{border-collapse:collapse;margin:.4em 0 1em}"
"th,td{border:1px solid #bbb;padding:.2em .5em;text-align:left;"
"vertical-align:top}td.n,th.n{text-align:right}th{background:#eee}"
".verdict{font-size:1.2em;padding:.4em .8em;border:2px solid;"
"display:inline-block}"
".ok{color:#075;border-color:#075}.bad{color:#a00;border-color:#a00}"
"code{font-size:.9em;word-break:break-all}"
"@media print{body{margin:0;max-width:none;font-size:9pt;color:#000}"
"th{background:none}tr{page-break-inside:avoid}"
"section.account{page-break-before:always}"
".ok,.bad{color:#000}}";

static void
t(FILE *fp, const char *s)
{
	(void)rpt_html_text(fp, s);
}

/* th - a header row; a name starting with '#' is a number column */
static void
th(FILE *fp, const char *const *h, size_t n)
{
	size_t i;

	fputs("<tr>", fp);
	for (i = 0; i < n; i++)
		fprintf(fp, "<th%s>%s</th>", h[i][0] == '#' ? " class=\"n\"" :
		    "", h[i][0] == '#' ? h[i] + 1 : h[i]);
	fputs("</tr>\n", fp);
}

static void
td(FILE *fp, const char *s)
{
	fputs("<td>", fp);
	t(fp, s);
	fputs("</td>", fp);
}

static void
tdn(FILE *fp, uint64_t v)
{
	fprintf(fp, "<td class=\"n\">%" PRIu64 "</td>", v);
}

static void
verify_html(FILE *fp, const struct rpt_verify *v)
{
	static const char *const fh[] = { "Folder", "Destination",
	    "#Source msgs", "#Dest msgs", "#Source bytes", "#Dest bytes",
	    "#Missing", "#Extra", "#Different", "#Policy" };
	static const char *const ih[] = { "Issue", "Folder", "#UID", "Date",
	    "From", "Subject", "#Size", "Detail" };
	char b[64];
	size_t i;

	fputs("<h3>Verification</h3>\n", fp);
	if (v == NULL) {
		fputs("<p class=\"bad\">not verified — run ferry-syncd "
		    "--verify</p>\n", fp);
		return;
	}
	fprintf(fp, "<p>Verified %s (%s): <b>%s</b>; source %" PRIu64
	    " messages, %" PRIu64 " bytes; destination %" PRIu64
	    " messages, %" PRIu64 " bytes; missing %" PRIu64 ", extra %"
	    PRIu64 ", different %" PRIu64 ", left by policy %" PRIu64
	    ".</p>\n<p>Content digest (SHA-256): <code>",
	    rpt_time(b, sizeof(b), v->time), v->deep ? "deep" : "quick",
	    strcmp(v->verdict, "complete") == 0 ? "complete" : "incomplete",
	    v->src_messages, v->src_bytes, v->dst_messages, v->dst_bytes,
	    v->missing, v->extra, v->different, v->policy);
	t(fp, v->digest ? v->digest : "none");
	fputs("</code></p>\n", fp);
	if (v->nf > 0) {
		fputs("<table class=\"folders\">\n", fp);
		th(fp, fh, sizeof(fh) / sizeof(fh[0]));
		for (i = 0; i < v->nf; i++) {
			const struct rpt_folder *f = &v->f[i];

			fputs("<tr>", fp);
			td(fp, f->src);
			fputs("<td>", fp);
			t(fp, f->dst);
			if (f->error != NULL) {
				fputs(" (not read: ", fp);
				t(fp, f->error);
				fputs(")", fp);
			}
			fputs("</td>", fp);
			tdn(fp, f->src_messages);
			tdn(fp, f->dst_messages);
			tdn(fp, f->src_bytes);
			tdn(fp, f->dst_bytes);
			tdn(fp, f->missing);
			tdn(fp, f->extra);
			tdn(fp, f->different);
			tdn(fp, f->policy);
			fputs("</tr>\n", fp);
		}
		fputs("</table>\n", fp);
		if (v->folders_omitted > 0)
			fprintf(fp, "<p>%" PRIu64 " more folders not listed."
			    "</p>\n", v->folders_omitted);
	}
	if (v->nis > 0) {
		fputs("<table class=\"issues\">\n", fp);
		th(fp, ih, sizeof(ih) / sizeof(ih[0]));
		for (i = 0; i < v->nis; i++) {
			const struct rpt_issue *x = &v->is[i];

			fputs("<tr>", fp);
			td(fp, x->kind);
			td(fp, x->folder);
			if (x->has_msg)
				tdn(fp, x->uid ? x->uid : x->dst_uid);
			else
				td(fp, "");
			td(fp, x->date);
			td(fp, x->from);
			td(fp, x->subject);
			if (x->has_msg)
				tdn(fp, x->size);
			else
				td(fp, "");
			td(fp, x->what);
			fputs("</tr>\n", fp);
		}
		fputs("</table>\n", fp);
		if (v->issues_omitted > 0)
			fprintf(fp, "<p>%" PRIu64 " more issues not listed."
			    "</p>\n", v->issues_omitted);
	}
}

static void
passes_html(FILE *fp, const struct pass_history *h)
{
	static const char *const ph[] = { "Started", "Finished",
	    "#Source msgs", "#Already", "#Copied", "#Bytes", "#Duplicates",
	    "#Policy", "#Failed", "#Missing", "Result" };
	char b[64];
	size_t i, k;

	fputs("<h3>Copy history</h3>\n", fp);
	if (h == NULL || h->n == 0) {
		fputs("<p class=\"bad\">no copy pass recorded</p>\n", fp);
		return;
	}
	fputs("<table class=\"passes\">\n", fp);
	th(fp, ph, sizeof(ph) / sizeof(ph[0]));
	for (i = 0; i < h->n; i++) {
		const struct pass_entry *e = &h->e[i];

		fputs("<tr>", fp);
		td(fp, rpt_time(b, sizeof(b), e->started));
		td(fp, rpt_time(b, sizeof(b), e->finished));
		tdn(fp, e->src_count);
		tdn(fp, e->already);
		tdn(fp, e->copied);
		tdn(fp, e->bytes);
		tdn(fp, e->duplicates);
		tdn(fp, e->policy);
		tdn(fp, e->failed);
		tdn(fp, e->missing);
		fputs("<td>", fp);
		if (e->error[0] != '\0') {
			fputs("not synced: ", fp);
			t(fp, e->error);
		} else
			fputs(e->complete ? "complete" : "incomplete", fp);
		for (k = 0; k < e->nreasons; k++) {
			fputs("<br>failed: ", fp);
			t(fp, e->reasons[k].folder);
			if (e->reasons[k].uid != 0)
				fprintf(fp, " UID %" PRIu64, e->reasons[k].uid);
			fputs(": ", fp);
			t(fp, e->reasons[k].reason);
		}
		fputs("</td></tr>\n", fp);
	}
	fputs("</table>\n", fp);
}

static const char *const relay_head[] = { "Address", "#Received",
    "#Forwarded", "#Deduplicated", "#Bounced", "Last" };

static void
relay_row(FILE *fp, const char *addr, const struct rpt_relay *r)
{
	char b[64];

	fputs("<tr>", fp);
	td(fp, addr);
	tdn(fp, r->received);
	tdn(fp, r->forwarded);
	tdn(fp, r->duplicates);
	tdn(fp, r->bounced);
	td(fp, rpt_time(b, sizeof(b), r->last));
	fputs("</tr>\n", fp);
}

static void
relay_html(FILE *fp, const struct rpt_acct *a)
{
	size_t i;

	fputs("<h3>Relay</h3>\n", fp);
	if (!a->relay.known) {
		fputs("<p>no relay figures recorded</p>\n", fp);
		return;
	}
	if (a->naddr == 0) {
		fputs("<p>the account's users are not addresses and it is in "
		    "no [cutover] domain: no relay figures</p>\n", fp);
		return;
	}
	fputs("<table class=\"relay\">\n", fp);
	th(fp, relay_head, sizeof(relay_head) / sizeof(relay_head[0]));
	for (i = 0; i < a->naddr; i++)
		relay_row(fp, a->addr[i].addr, &a->addr[i].r);
	fputs("</table>\n", fp);
}

static void
cutover_html(FILE *fp, const struct rpt_acct *a)
{
	static const char *const ch[] = { "At", "From", "To", "Why" };
	const struct cutover_record *c = a->cut;
	char b[64];
	size_t k;

	fputs("<h3>Cutover timeline</h3>\n", fp);
	if (a->domain[0] == '\0') {
		fputs("<p>the account is in no [cutover] domain</p>\n", fp);
		return;
	}
	if (c == NULL) {
		fputs("<p>domain ", fp);
		t(fp, a->domain);
		fputs(": no cutover record yet</p>\n", fp);
		return;
	}
	fputs("<p>Domain ", fp);
	t(fp, c->domain);
	fprintf(fp, ": phase <b>%s</b> since %s.</p>\n<table class=\"cutover\">"
	    "\n", cutover_phase_name(c->phase), rpt_time(b, sizeof(b),
	    c->phase_since));
	th(fp, ch, 4);
	for (k = 0; k < c->nhist; k++) {
		fputs("<tr>", fp);
		td(fp, rpt_time(b, sizeof(b), c->hist[k].at));
		td(fp, cutover_phase_name(c->hist[k].from));
		td(fp, cutover_phase_name(c->hist[k].to));
		td(fp, c->hist[k].why);
		fputs("</tr>\n", fp);
	}
	fputs("</table>\n", fp);
}

static void
verdict_html(FILE *fp, int accepted, const char (*reasons)[RPT_TEXT_MAX],
    size_t n)
{
	size_t k;

	fprintf(fp, "<p class=\"verdict %s\">Verdict: <b>%s</b></p>\n",
	    accepted ? "ok" : "bad", accepted ? "accepted" : "not accepted");
	if (n == 0)
		return;
	fputs("<ul class=\"reasons\">\n", fp);
	for (k = 0; k < n; k++) {
		fputs("<li>", fp);
		t(fp, reasons[k]);
		fputs("</li>\n", fp);
	}
	fputs("</ul>\n", fp);
}

int
rpt_render_html(FILE *fp, const struct rpt *r)
{
	static const char *const toth[] = { "#Accounts", "#Verified",
	    "#Accepted", "#Source msgs", "#Dest msgs", "#Source bytes",
	    "#Dest bytes", "#Missing", "#Extra", "#Different", "#Policy",
	    "#Passes", "#Copied", "#Failed" };
	char b[64];
	size_t i;

	fprintf(fp, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
	    "<meta charset=\"utf-8\">\n<title>Acceptance report</title>\n"
	    "<style>%s</style>\n</head>\n<body>\n"
	    "<h1>Acceptance report</h1>\n<p>Generated %s from ", style,
	    rpt_time(b, sizeof(b), r->generated));
	t(fp, r->config_path);
	fprintf(fp, ".</p>\n<p class=\"verdict %s\">Verdict: <b>%s</b> (%zu of "
	    "%zu account%s accepted)</p>\n", r->accepted == r->n ? "ok" :
	    "bad", r->accepted == r->n ? "accepted" : "not accepted",
	    r->accepted, r->n, r->n == 1 ? "" : "s");
	fputs("<h2>Total</h2>\n<table class=\"totals\">\n", fp);
	th(fp, toth, sizeof(toth) / sizeof(toth[0]));
	fputs("<tr>", fp);
	tdn(fp, r->n);
	tdn(fp, r->verified);
	tdn(fp, r->accepted);
	tdn(fp, r->src_messages);
	tdn(fp, r->dst_messages);
	tdn(fp, r->src_bytes);
	tdn(fp, r->dst_bytes);
	tdn(fp, r->missing);
	tdn(fp, r->extra);
	tdn(fp, r->different);
	tdn(fp, r->policy);
	tdn(fp, r->passes);
	tdn(fp, r->copied);
	tdn(fp, r->failed);
	fputs("</tr>\n</table>\n<p>Content digest over every account "
	    "(SHA-256): <code>", fp);
	t(fp, r->digest[0] ? r->digest : "none (an account has none)");
	fputs("</code></p>\n<table class=\"relay\">\n", fp);
	th(fp, relay_head, sizeof(relay_head) / sizeof(relay_head[0]));
	relay_row(fp, "every account's addresses", &r->relay);
	fputs("</table>\n", fp);
	if (r->relay_overflow)
		fprintf(fp, "<p>%" PRIu64 " messages went to addresses past "
		    "the relay's bound of %d and are not counted.</p>\n",
		    r->relay_overflow, ADDR_STATS_MAX);
	for (i = 0; i < r->n; i++) {
		const struct rpt_acct *a = &r->a[i];

		fputs("<section class=\"account\">\n<h2>Account ", fp);
		t(fp, a->src_user);
		fputs(" → ", fp);
		t(fp, a->dst_user);
		fputs("</h2>\n", fp);
		verdict_html(fp, a->accepted, a->reasons, a->nreasons);
		verify_html(fp, a->v);
		passes_html(fp, a->ph);
		relay_html(fp, a);
		cutover_html(fp, a);
		fputs("</section>\n", fp);
	}
	fputs("</body>\n</html>\n", fp);
	return (ferror(fp) ? -1 : 0);
}
