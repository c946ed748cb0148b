/*
 * ctl_report_json.c - the acceptance report as one JSON document:
 *
 *   {"generated": RFC3339, "config": PATH,
 *    "accounts": [{"account", "destination", "domain" (null: none),
 *       "verdict": "accepted"|"not accepted", "reasons": [TEXT...],
 *       "verify": null | {"time", "verdict", "deep", "digest",
 *           "src_messages", "dst_messages", "src_bytes", "dst_bytes",
 *           "missing", "extra", "different", "policy",
 *           "folders": [...], "folders_omitted", "issues": [...],
 *           "issues_omitted"},
 *       "passes": [{"started", "finished", "complete", "src_messages",
 *           "already", "copied", "bytes", "duplicates", "policy",
 *           "failed", "missing", "error", "failures": [{"folder",
 *           "uid", "reason"}]}...],            oldest first
 *       "cutover": null | {"phase", "phase_since", "switch_seen_at",
 *           "timeline": [{"at", "from", "to", "why"}...]},
 *       "relay": {"addresses": [{"address", "received", "forwarded",
 *           "duplicates", "bounced", "last"}...], and the same summed}}],
 *    "total": {"accounts", "verified", "accepted_accounts", the
 *       verification sums, "passes", "copied", "failed", "digest",
 *       "relay" (summed, and "not_counted": messages for addresses
 *       past the relay's bound), "verdict", "reasons"}}
 *
 * Times RFC 3339 UTC, null for never.  json.c escapes every string.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cutover_state.h"
#include "json.h"
#include "ctl_report_p.h"

static void
jtime(struct json *j, const char *key, int64_t t)
{
	char b[64];

	json_key(j, key);
	if (t <= 0)
		json_null(j);
	else
		json_string(j, cutover_format_rfc3339(b, sizeof(b), t));
}

static void
juint(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	json_uint(j, v);
}

static void
jstr(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_string(j, s);
}

static void
verify_json(struct json *j, const struct rpt_verify *v)
{
	size_t i;

	json_object_begin(j);
	jtime(j, "time", v->time);
	jstr(j, "verdict", v->verdict);
	json_key(j, "deep");
	json_bool(j, v->deep);
	jstr(j, "digest", v->digest);
	juint(j, "src_messages", v->src_messages);
	juint(j, "dst_messages", v->dst_messages);
	juint(j, "src_bytes", v->src_bytes);
	juint(j, "dst_bytes", v->dst_bytes);
	juint(j, "missing", v->missing);
	juint(j, "extra", v->extra);
	juint(j, "different", v->different);
	juint(j, "policy", v->policy);
	json_key(j, "folders");
	json_array_begin(j);
	for (i = 0; i < v->nf; i++) {
		const struct rpt_folder *f = &v->f[i];

		json_object_begin(j);
		jstr(j, "src", f->src);
		jstr(j, "dst", f->dst);
		juint(j, "src_messages", f->src_messages);
		juint(j, "dst_messages", f->dst_messages);
		juint(j, "src_bytes", f->src_bytes);
		juint(j, "dst_bytes", f->dst_bytes);
		juint(j, "missing", f->missing);
		juint(j, "extra", f->extra);
		juint(j, "different", f->different);
		juint(j, "policy", f->policy);
		jstr(j, "error", f->error);
		json_object_end(j);
	}
	json_array_end(j);
	juint(j, "folders_omitted", v->folders_omitted);
	json_key(j, "issues");
	json_array_begin(j);
	for (i = 0; i < v->nis; i++) {
		const struct rpt_issue *is = &v->is[i];

		json_object_begin(j);
		jstr(j, "kind", is->kind);
		jstr(j, "folder", is->folder);
		jstr(j, "what", is->what);
		if (is->has_msg) {
			juint(j, "uid", is->uid);
			if (is->dst_uid)
				juint(j, "dst_uid", is->dst_uid);
			juint(j, "size", is->size);
			jstr(j, "internaldate", is->internaldate);
			jstr(j, "date", is->date);
			jstr(j, "from", is->from);
			jstr(j, "subject", is->subject);
		}
		json_object_end(j);
	}
	json_array_end(j);
	juint(j, "issues_omitted", v->issues_omitted);
	json_object_end(j);
}

static void
passes_json(struct json *j, const struct pass_history *h)
{
	size_t i, k;

	json_array_begin(j);
	for (i = 0; h != NULL && i < h->n; i++) {
		const struct pass_entry *e = &h->e[i];

		json_object_begin(j);
		jtime(j, "started", e->started);
		jtime(j, "finished", e->finished);
		json_key(j, "complete");
		json_bool(j, e->complete);
		juint(j, "src_messages", e->src_count);
		juint(j, "already", e->already);
		juint(j, "copied", e->copied);
		juint(j, "bytes", e->bytes);
		juint(j, "duplicates", e->duplicates);
		juint(j, "policy", e->policy);
		juint(j, "failed", e->failed);
		juint(j, "missing", e->missing);
		jstr(j, "error", e->error[0] ? e->error : NULL);
		json_key(j, "failures");
		json_array_begin(j);
		for (k = 0; k < e->nreasons; k++) {
			json_object_begin(j);
			jstr(j, "folder", e->reasons[k].folder);
			json_key(j, "uid");
			if (e->reasons[k].uid)
				json_uint(j, e->reasons[k].uid);
			else
				json_null(j);
			jstr(j, "reason", e->reasons[k].reason);
			json_object_end(j);
		}
		json_array_end(j);
		json_object_end(j);
	}
	json_array_end(j);
}

static void
cutover_json(struct json *j, const struct cutover_record *c)
{
	size_t i;

	if (c == NULL) {
		json_null(j);
		return;
	}
	json_object_begin(j);
	jstr(j, "phase", cutover_phase_name(c->phase));
	jtime(j, "phase_since", c->phase_since);
	jtime(j, "switch_seen_at", c->switch_seen_at);
	json_key(j, "timeline");
	json_array_begin(j);
	for (i = 0; i < c->nhist; i++) {
		json_object_begin(j);
		jtime(j, "at", c->hist[i].at);
		jstr(j, "from", cutover_phase_name(c->hist[i].from));
		jstr(j, "to", cutover_phase_name(c->hist[i].to));
		jstr(j, "why", c->hist[i].why);
		json_object_end(j);
	}
	json_array_end(j);
	json_object_end(j);
}

static void
relay_fields(struct json *j, const struct rpt_relay *r)
{
	juint(j, "received", r->received);
	juint(j, "forwarded", r->forwarded);
	juint(j, "duplicates", r->duplicates);
	juint(j, "bounced", r->bounced);
	jtime(j, "last", r->last);
}

static void
relay_json(struct json *j, const struct rpt_acct *a)
{
	size_t i;

	json_object_begin(j);
	json_key(j, "addresses");
	json_array_begin(j);
	for (i = 0; i < a->naddr; i++) {
		json_object_begin(j);
		jstr(j, "address", a->addr[i].addr);
		relay_fields(j, &a->addr[i].r);
		json_object_end(j);
	}
	json_array_end(j);
	relay_fields(j, &a->relay);
	json_object_end(j);
}

int
rpt_render_json(FILE *fp, const struct rpt *r)
{
	struct json j;
	size_t i, k;

	json_init_file(&j, fp, JSON_PRETTY);
	json_object_begin(&j);
	jtime(&j, "generated", r->generated);
	jstr(&j, "config", r->config_path);
	json_key(&j, "accounts");
	json_array_begin(&j);
	for (i = 0; i < r->n; i++) {
		const struct rpt_acct *a = &r->a[i];

		json_object_begin(&j);
		jstr(&j, "account", a->src_user);
		jstr(&j, "destination", a->dst_user);
		jstr(&j, "domain", a->domain[0] ? a->domain : NULL);
		jstr(&j, "verdict", a->accepted ? "accepted" : "not accepted");
		json_key(&j, "reasons");
		json_array_begin(&j);
		for (k = 0; k < a->nreasons; k++)
			json_string(&j, a->reasons[k]);
		json_array_end(&j);
		json_key(&j, "verify");
		if (a->v != NULL)
			verify_json(&j, a->v);
		else
			json_null(&j);
		json_key(&j, "passes");
		passes_json(&j, a->ph);
		json_key(&j, "cutover");
		cutover_json(&j, a->cut);
		json_key(&j, "relay");
		relay_json(&j, a);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_key(&j, "total");
	json_object_begin(&j);
	juint(&j, "accounts", r->n);
	juint(&j, "verified", r->verified);
	juint(&j, "accepted_accounts", r->accepted);
	juint(&j, "src_messages", r->src_messages);
	juint(&j, "dst_messages", r->dst_messages);
	juint(&j, "src_bytes", r->src_bytes);
	juint(&j, "dst_bytes", r->dst_bytes);
	juint(&j, "missing", r->missing);
	juint(&j, "extra", r->extra);
	juint(&j, "different", r->different);
	juint(&j, "policy", r->policy);
	juint(&j, "passes", r->passes);
	juint(&j, "copied", r->copied);
	juint(&j, "failed", r->failed);
	jstr(&j, "digest", r->digest[0] ? r->digest : NULL);
	json_key(&j, "relay");
	json_object_begin(&j);
	relay_fields(&j, &r->relay);
	juint(&j, "not_counted", r->relay_overflow);
	json_object_end(&j);
	jstr(&j, "verdict", r->accepted == r->n ? "accepted" : "not accepted");
	json_key(&j, "reasons");
	json_array_begin(&j);
	for (i = 0; i < r->n; i++)
		if (!r->a[i].accepted) {
			char b[RPT_TEXT_MAX];

			snprintf(b, sizeof(b), "%.400s: not accepted",
			    r->a[i].src_user);
			json_string(&j, b);
		}
	json_array_end(&j);
	json_object_end(&j);
	json_object_end(&j);
	if (json_end(&j) == -1)
		return (-1);
	return (fputc('\n', fp) == EOF ? -1 : 0);
}
