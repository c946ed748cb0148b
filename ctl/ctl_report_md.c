/*
 * ctl_report_md.c - the acceptance report as Markdown: a heading and a
 * verdict per account, then its verification, copy history, relay
 * figures and cutover timeline as tables, then the total.  Every
 * string that did not come from ferryctl itself goes through
 * rpt_md_text().
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cutover_state.h"
#include "ctl_report_p.h"

static void
t(FILE *fp, const char *s)
{
	(void)rpt_md_text(fp, s);
}

static void
verify_md(FILE *fp, const struct rpt_acct *a)
{
	const struct rpt_verify *v = a->v;
	char b[64];
	size_t i;

	fprintf(fp, "### Verification\n\n");
	if (v == NULL) {
		fprintf(fp, "not verified — run ferry-syncd --verify\n\n");
		return;
	}
	fprintf(fp, "Verified %s (%s): **%s**; source %" PRIu64 " messages, "
	    "%" PRIu64 " bytes; destination %" PRIu64 " messages, %" PRIu64
	    " bytes; missing %" PRIu64 ", extra %" PRIu64 ", different %"
	    PRIu64 ", left by policy %" PRIu64 ".\n\n",
	    rpt_time(b, sizeof(b), v->time), v->deep ? "deep" : "quick",
	    strcmp(v->verdict, "complete") == 0 ? "complete" : "incomplete",
	    v->src_messages, v->src_bytes, v->dst_messages, v->dst_bytes,
	    v->missing, v->extra, v->different, v->policy);
	fprintf(fp, "Content digest (SHA-256): `%s`\n\n",
	    v->digest ? v->digest : "none");
	if (v->nf > 0) {
		fprintf(fp, "| Folder | Destination | Source msgs | Dest msgs "
		    "| Source bytes | Dest bytes | Missing | Extra | Different "
		    "| Policy |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
		for (i = 0; i < v->nf; i++) {
			const struct rpt_folder *f = &v->f[i];

			fprintf(fp, "| ");
			t(fp, f->src);
			fprintf(fp, " | ");
			t(fp, f->dst);
			if (f->error) {
				fprintf(fp, " (not read: ");
				t(fp, f->error);
				fprintf(fp, ")");
			}
			fprintf(fp, " | %" PRIu64 " | %" PRIu64 " | %" PRIu64
			    " | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %"
			    PRIu64 " | %" PRIu64 " |\n", f->src_messages,
			    f->dst_messages, f->src_bytes, f->dst_bytes,
			    f->missing, f->extra, f->different, f->policy);
		}
		if (v->folders_omitted)
			fprintf(fp, "\n%" PRIu64 " more folders not listed.\n",
			    v->folders_omitted);
		fprintf(fp, "\n");
	}
	if (v->nis > 0) {
		fprintf(fp, "| Issue | Folder | UID | Date | From | Subject | "
		    "Size | Detail |\n|---|---|--:|---|---|---|--:|---|\n");
		for (i = 0; i < v->nis; i++) {
			const struct rpt_issue *is = &v->is[i];

			fprintf(fp, "| ");
			t(fp, is->kind);
			fprintf(fp, " | ");
			t(fp, is->folder);
			if (is->has_msg)
				fprintf(fp, " | %" PRIu64, is->uid ? is->uid :
				    is->dst_uid);
			else
				fprintf(fp, " | ");
			fprintf(fp, " | ");
			t(fp, is->date);
			fprintf(fp, " | ");
			t(fp, is->from);
			fprintf(fp, " | ");
			t(fp, is->subject);
			if (is->has_msg)
				fprintf(fp, " | %" PRIu64 " | ", is->size);
			else
				fprintf(fp, " | | ");
			t(fp, is->what);
			fprintf(fp, " |\n");
		}
		if (v->issues_omitted)
			fprintf(fp, "\n%" PRIu64 " more issues not listed.\n",
			    v->issues_omitted);
		fprintf(fp, "\n");
	}
}

static void
passes_md(FILE *fp, const struct pass_history *h)
{
	char b1[64], b2[64];
	size_t i, k;

	fprintf(fp, "### Copy history\n\n");
	if (h == NULL || h->n == 0) {
		fprintf(fp, "no copy pass recorded\n\n");
		return;
	}
	fprintf(fp, "| Started | Finished | Source msgs | Already | Copied | "
	    "Bytes | Duplicates | Policy | Failed | Missing | Complete |\n"
	    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
	for (i = 0; i < h->n; i++) {
		const struct pass_entry *e = &h->e[i];

		fprintf(fp, "| %s | %s | %" PRIu64 " | %" PRIu64 " | %" PRIu64
		    " | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64
		    " | %" PRIu64 " | %s |\n", rpt_time(b1, sizeof(b1),
		    e->started), rpt_time(b2, sizeof(b2), e->finished),
		    e->src_count, e->already, e->copied, e->bytes,
		    e->duplicates, e->policy, e->failed, e->missing,
		    e->complete ? "yes" : "no");
	}
	fprintf(fp, "\n");
	for (i = 0; i < h->n; i++) {
		const struct pass_entry *e = &h->e[i];

		if (e->error[0]) {
			fprintf(fp, "- pass of %s: not synced: ",
			    rpt_time(b1, sizeof(b1), e->started));
			t(fp, e->error);
			fprintf(fp, "\n");
		}
		for (k = 0; k < e->nreasons; k++) {
			fprintf(fp, "- pass of %s: failed in ",
			    rpt_time(b1, sizeof(b1), e->started));
			t(fp, e->reasons[k].folder);
			if (e->reasons[k].uid)
				fprintf(fp, " UID %" PRIu64, e->reasons[k].uid);
			fprintf(fp, ": ");
			t(fp, e->reasons[k].reason);
			fprintf(fp, "\n");
		}
	}
}

static void
relay_row(FILE *fp, const char *addr, const struct rpt_relay *r)
{
	char b[64];

	fprintf(fp, "| ");
	t(fp, addr);
	fprintf(fp, " | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64
	    " | %s |\n", r->received, r->forwarded, r->duplicates, r->bounced,
	    rpt_time(b, sizeof(b), r->last));
}

static const char relay_head[] = "| Address | Received | Forwarded | "
    "Deduplicated | Bounced | Last |\n|---|--:|--:|--:|--:|---|\n";

static void
relay_md(FILE *fp, const struct rpt_acct *a)
{
	size_t i;

	fprintf(fp, "### Relay\n\n");
	if (!a->relay.known) {
		fprintf(fp, "no relay figures recorded\n\n");
		return;
	}
	if (a->naddr == 0) {
		fprintf(fp, "the account's users are not addresses and it is "
		    "in no [cutover] domain: no relay figures\n\n");
		return;
	}
	fputs(relay_head, fp);
	for (i = 0; i < a->naddr; i++)
		relay_row(fp, a->addr[i].addr, &a->addr[i].r);
	fprintf(fp, "\n");
}

static void
cutover_md(FILE *fp, const struct rpt_acct *a)
{
	const struct cutover_record *c = a->cut;
	char b[64];
	size_t i;

	fprintf(fp, "### Cutover timeline\n\n");
	if (a->domain[0] == '\0') {
		fprintf(fp, "the account is in no [cutover] domain\n\n");
		return;
	}
	if (c == NULL) {
		fprintf(fp, "domain ");
		t(fp, a->domain);
		fprintf(fp, ": no cutover record yet\n\n");
		return;
	}
	fprintf(fp, "Domain ");
	t(fp, c->domain);
	fprintf(fp, ": phase **%s** since %s.\n\n",
	    cutover_phase_name(c->phase), rpt_time(b, sizeof(b),
	    c->phase_since));
	fprintf(fp, "| At | From | To | Why |\n|---|---|---|---|\n");
	for (i = 0; i < c->nhist; i++) {
		fprintf(fp, "| %s | %s | %s | ", rpt_time(b, sizeof(b),
		    c->hist[i].at), cutover_phase_name(c->hist[i].from),
		    cutover_phase_name(c->hist[i].to));
		t(fp, c->hist[i].why);
		fprintf(fp, " |\n");
	}
	fprintf(fp, "\n");
}

int
rpt_render_md(FILE *fp, const struct rpt *r)
{
	char b[64];
	size_t i, k;

	fprintf(fp, "# Acceptance report\n\nGenerated %s from ",
	    rpt_time(b, sizeof(b), r->generated));
	t(fp, r->config_path);
	fprintf(fp, ".\n\n**Verdict: %s** (%zu of %zu account%s accepted)\n\n",
	    r->accepted == r->n ? "accepted" : "not accepted", r->accepted,
	    r->n, r->n == 1 ? "" : "s");
	for (i = 0; i < r->n; i++) {
		const struct rpt_acct *a = &r->a[i];

		fprintf(fp, "## Account ");
		t(fp, a->src_user);
		fprintf(fp, " → ");
		t(fp, a->dst_user);
		fprintf(fp, "\n\n**Verdict: %s**\n\n", a->accepted ?
		    "accepted" : "not accepted");
		for (k = 0; k < a->nreasons; k++) {
			fprintf(fp, "- ");
			t(fp, a->reasons[k]);
			fprintf(fp, "\n");
		}
		if (a->nreasons)
			fprintf(fp, "\n");
		verify_md(fp, a);
		passes_md(fp, a->ph);
		relay_md(fp, a);
		cutover_md(fp, a);
	}
	fprintf(fp, "## Total\n\n");
	fprintf(fp, "| Accounts | Verified | Accepted | Source msgs | Dest msgs "
	    "| Source bytes | Dest bytes | Missing | Extra | Different | "
	    "Policy | Passes | Copied | Failed |\n"
	    "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
	    "| %zu | %zu | %zu | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %"
	    PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64
	    " | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " |\n\n", r->n,
	    r->verified, r->accepted, r->src_messages, r->dst_messages,
	    r->src_bytes, r->dst_bytes, r->missing, r->extra, r->different,
	    r->policy, r->passes, r->copied, r->failed);
	fprintf(fp, "Content digest over every account (SHA-256): `%s`\n\n",
	    r->digest[0] ? r->digest : "none (an account has none)");
	fprintf(fp, "### Relay\n\n");
	fputs(relay_head, fp);
	relay_row(fp, "every account's addresses", &r->relay);
	fprintf(fp, "\n");
	if (r->relay_overflow)
		fprintf(fp, "%" PRIu64 " messages went to addresses past the "
		    "relay's bound of %d and are not counted.\n\n",
		    r->relay_overflow, ADDR_STATS_MAX);
	return (ferror(fp) ? -1 : 0);
}
