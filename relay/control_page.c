/*
 * control_page.c - the status page of GET / (see control_page.h).
 *
 * Sources, read once per request:
 *   - the cutover document: cutover_status_render() (common/
 *     cutover_state.h), the very JSON of `ferryctl status --json` and
 *     GET /cutover, walked with json_walk();
 *   - the queue: one read-only walk of STORE_DB_QUEUE (counts by state,
 *     bytes, the oldest message), as /status counts it;
 *   - arrivals: the drain view's 72 hourly counters (relay/drain.h);
 *   - ferry-syncd's progress: its "syncd.progress" META record, the
 *     document `ferryctl sync --json` prints.
 *
 * SECURITY: nearly every string on the page came from the network (MX
 * hosts from DNS, envelope senders and recipients, upstream replies,
 * IMAP user names and errors) or from another process's record.  Each
 * one goes through control_page_escape() before it reaches the page,
 * in text and in attribute values alike (always double-quoted); ids and
 * classes are our own words and numbers only.  The page loads nothing
 * from anywhere: a Content-Security-Policy header forbids it, and the
 * one inline script is ours.
 */

#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "control_page.h"
#include "cutover_state.h"
#include "drain.h"
#include "http_text.h"
#include "json.h"
#include "json_flat.h"
#include "log.h"
#include "queue_record.h"
#include "relay.h"
#include "store.h"
#include "utf8.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION	"unknown"
#endif

#define PAGE_PROGRESS_KEY	"syncd.progress"	/* syncd/pass.c */
#define PAGE_PROGRESS_MAX	(4 * 1024 * 1024)
#define PAGE_REFRESH_SECS	15
#define PAGE_ACCOUNTS_MAX	100000	/* rows kept from the progress record */

/* ---- output helpers ----------------------------------------------------- */

/* out - our own text (never data from elsewhere: that is esc()'s) */
static void out(struct evbuffer *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
out(struct evbuffer *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(b, fmt, ap);
	va_end(ap);
}

void
control_page_escape(struct evbuffer *b, const char *s)
{
	size_t len = strlen(s), i = 0, start;
	uint32_t cp;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '&':
			evbuffer_add(b, "&amp;", 5);
			i++;
			continue;
		case '<':
			evbuffer_add(b, "&lt;", 4);
			i++;
			continue;
		case '>':
			evbuffer_add(b, "&gt;", 4);
			i++;
			continue;
		case '"':
			evbuffer_add(b, "&quot;", 6);
			i++;
			continue;
		case '\'':
			evbuffer_add(b, "&#39;", 5);
			i++;
			continue;
		default:
			break;
		}
		start = i;
		cp = utf8_next(s, len, &i);
		if (cp == UTF8_INVALID || cp < 0x20 || cp == 0x7f ||
		    (cp >= 0x80 && cp < 0xa0)) {
			evbuffer_add(b, "\xef\xbf\xbd", 3);	/* U+FFFD */
			if (i == start)
				i++;
			continue;
		}
		evbuffer_add(b, s + start, i - start);
	}
}

/* esc - shorthand */
static void
esc(struct evbuffer *b, const char *s)
{
	control_page_escape(b, s != NULL ? s : "");
}

/* fmt_mb - bytes as MB ("0.01", "12.3", "2048") */
static const char *
fmt_mb(char *buf, size_t len, uint64_t n)
{
	double mb = (double)n / (1024.0 * 1024.0);

	snprintf(buf, len, mb < 10 ? "%.2f" : mb < 1000 ? "%.1f" : "%.0f", mb);
	return (buf);
}

/* num_cell - <td id=ID data-value=N>N</td> */
static void
num_cell(struct evbuffer *b, const char *id, uint64_t v)
{
	out(b, "<td class=\"num\" id=\"%s\" data-value=\"%" PRIu64 "\">%"
	    PRIu64 "</td>", id, v, v);
}

/* ---- a JSON document as path/value pairs -------------------------------- */

/* flat_get - the value at path, or def (a JSON null reads as def too) */
static const char *
flat_get(const struct json_flat *f, const char *path, const char *def)
{
	const char *v = json_flat_get(f, path, NULL);

	return (v == NULL || strcmp(v, "null") == 0 ? def : v);
}

static const char *
flat_getf(const struct json_flat *f, const char *def, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static const char *
flat_getf(const struct json_flat *f, const char *def, const char *fmt, ...)
{
	char path[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return (flat_get(f, path, def));
}

static uint64_t
to_u64(const char *v)
{
	return (v == NULL ? 0 : strtoull(v, NULL, 10));
}

/* ---- reading the queue -------------------------------------------------- */

struct page_queue {
	uint64_t	 total, by_state[4], bytes, unreadable;
	/* the oldest message (by arrival); oldest.arrived 0: none */
	struct {
		int64_t	 arrived;
		char	 id[QUEUE_ID_LEN + 1];
		char	 sender[256];
		char	 rcpt[256];
		size_t	 nrcpt;
		uint32_t attempts;
		enum qr_state state;
		char	 reply[256];
	} oldest;
};

static int
queue_one(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct page_queue *q = arg;
	struct queue_record rec;
	char err[128];
	size_t i;

	(void)key;
	(void)klen;
	q->total++;
	memset(&rec, 0, sizeof(rec));
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1) {
		queue_record_clear(&rec);
		q->unreadable++;
		return (0);
	}
	q->by_state[qr_state(&rec)]++;
	q->bytes += rec.size;
	if (rec.arrived > 0 && (q->oldest.arrived == 0 ||
	    rec.arrived < q->oldest.arrived)) {
		q->oldest.arrived = rec.arrived;
		str_copy(q->oldest.id, rec.id, sizeof(q->oldest.id));
		str_copy(q->oldest.sender, rec.sender ? rec.sender : "",
		    sizeof(q->oldest.sender));
		q->oldest.state = qr_state(&rec);
		q->oldest.nrcpt = rec.ndlv;
		q->oldest.rcpt[0] = q->oldest.reply[0] = '\0';
		q->oldest.attempts = 0;
		for (i = 0; i < rec.ndlv; i++) {
			if (i == 0 && rec.dlv[i].rcpt != NULL)
				str_copy(q->oldest.rcpt, rec.dlv[i].rcpt,
				    sizeof(q->oldest.rcpt));
			if (rec.dlv[i].attempts > q->oldest.attempts)
				q->oldest.attempts = rec.dlv[i].attempts;
			if (rec.dlv[i].state == DLV_PENDING &&
			    rec.dlv[i].last_reply != NULL &&
			    q->oldest.reply[0] == '\0')
				str_copy(q->oldest.reply, rec.dlv[i].last_reply,
				    sizeof(q->oldest.reply));
		}
	}
	queue_record_clear(&rec);
	return (0);
}

/* queue_txn - may run more than once */
static int
queue_txn(struct store_txn *tx, void *arg)
{
	memset(arg, 0, sizeof(struct page_queue));
	return (store_foreach(tx, STORE_DB_QUEUE, NULL, 0, queue_one, arg));
}

/* ---- reading ferry-syncd's progress ------------------------------------- */

struct progress_doc {
	char	*doc;
	size_t	 len;
	int	 too_large;
};

static int
progress_txn(struct store_txn *tx, void *arg)
{
	struct progress_doc *d = arg;
	const void *val;
	size_t vlen;
	int rc;

	free(d->doc);
	d->doc = NULL;
	d->len = 0;
	d->too_large = 0;
	rc = store_get(tx, STORE_DB_META, PAGE_PROGRESS_KEY,
	    strlen(PAGE_PROGRESS_KEY), &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0)
		return (-1);
	if (vlen > PAGE_PROGRESS_MAX) {
		d->too_large = 1;
		return (0);
	}
	if ((d->doc = malloc(vlen + 1)) == NULL)
		return (2);
	memcpy(d->doc, val, vlen);
	d->doc[vlen] = '\0';
	d->len = vlen;
	return (0);
}

/* One account of the progress record. */
struct page_acct {
	char		*user, *state, *error;
	uint64_t	 folders_done, folders_total, copied, failed;
	uint64_t	 messages_done, messages_total, bytes;
	int		 has_messages;	/* the record has the three above */
	double		 rate_msgs, rate_bytes;
	int		 has_rate;
	int64_t		 eta;		/* -1: unknown */
};

struct page_sync {
	struct json_flat	  top;		/* everything but "accounts." */
	struct page_acct *acc;
	size_t		  nacc, alloc;
};

static void
page_sync_clear(struct page_sync *s)
{
	size_t i;

	for (i = 0; i < s->nacc; i++) {
		free(s->acc[i].user);
		free(s->acc[i].state);
		free(s->acc[i].error);
	}
	free(s->acc);
	json_flat_clear(&s->top);
	memset(s, 0, sizeof(*s));
}

/* sync_walk - json_walk callback: accounts.N.FIELD into rows */
static int
sync_walk(const char *path, enum json_type type, const char *value,
    void *arg)
{
	struct page_sync *s = arg;
	struct page_acct *a;
	char *end, **str = NULL;
	unsigned long idx;
	const char *field;

	if (strncmp(path, "accounts.", 9) != 0)
		return (json_flat_push(&s->top, path, value));
	idx = strtoul(path + 9, &end, 10);
	if (*end != '.' || idx >= PAGE_ACCOUNTS_MAX)
		return (0);
	field = end + 1;
	if (idx >= s->nacc) {
		if (idx != s->nacc)
			return (0);	/* arrays come in order */
		if (s->nacc == s->alloc) {
			size_t n = s->alloc ? s->alloc * 2 : 16;

			a = reallocarray(s->acc, n, sizeof(*a));
			if (a == NULL)
				return (-2);
			s->acc = a;
			s->alloc = n;
		}
		memset(&s->acc[s->nacc], 0, sizeof(s->acc[0]));
		s->acc[s->nacc].eta = -1;
		s->nacc++;
	}
	a = &s->acc[idx];
	if (strcmp(field, "user") == 0)
		str = &a->user;
	else if (strcmp(field, "state") == 0)
		str = &a->state;
	else if (strcmp(field, "error") == 0 && type == JSON_T_STRING)
		str = &a->error;
	else if (strcmp(field, "folders_done") == 0)
		a->folders_done = to_u64(value);
	else if (strcmp(field, "folders_total") == 0)
		a->folders_total = to_u64(value);
	else if (strcmp(field, "copied") == 0)
		a->copied = to_u64(value);
	else if (strcmp(field, "failed") == 0)
		a->failed = to_u64(value);
	else if (strcmp(field, "messages_done") == 0) {
		a->messages_done = to_u64(value);
		a->has_messages = 1;
	} else if (strcmp(field, "messages_total") == 0)
		a->messages_total = to_u64(value);
	else if (strcmp(field, "bytes") == 0)
		a->bytes = to_u64(value);
	else if (strcmp(field, "rate_msgs") == 0) {
		a->rate_msgs = strtod(value, NULL);
		a->has_rate = 1;
	} else if (strcmp(field, "rate_bytes") == 0)
		a->rate_bytes = strtod(value, NULL);
	else if (strcmp(field, "eta_seconds") == 0 && type == JSON_T_NUMBER)
		a->eta = strtoll(value, NULL, 10);
	if (str != NULL) {
		free(*str);
		if ((*str = strdup(value)) == NULL)
			return (-2);
	}
	return (0);
}

/* ---- the sections ------------------------------------------------------- */

static const char page_css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;"
    "color:#1d2330}"
    "header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;"
    "justify-content:space-between;align-items:baseline;flex-wrap:wrap}"
    "header h1{font-size:18px;margin:0}header small{color:#b8c0d0}"
    "main{padding:8px 24px 24px}"
    "section{background:#fff;border-radius:6px;padding:12px 16px;"
    "margin:16px 0;box-shadow:0 1px 2px rgba(0,0,0,.08)}"
    "h2{font-size:16px;margin:0 0 8px}h3{font-size:15px;margin:8px 0}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e3e6ec;"
    "vertical-align:top}"
    "th{font-weight:600;color:#4a5468;font-size:12px;text-transform:uppercase}"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".badge{display:inline-block;padding:1px 8px;border-radius:10px;"
    "font-size:12px;font-weight:600;background:#e3e6ec}"
    ".safe{background:#cdeccf;color:#175c1c}"
    ".notyet{background:#fde2c4;color:#7a3d00}"
    ".new{color:#175c1c}.old{color:#4a5468}.mixed,.unknown,.error,"
    ".failed{color:#a11}"
    ".domain{border-left:4px solid #e3e6ec;padding-left:12px;margin:12px 0}"
    ".domain.is-safe{border-color:#4caf50}"
    ".domain.is-notyet{border-color:#f0a04b}"
    "ul{margin:4px 0;padding-left:20px}"
    ".muted{color:#6b7488}.mono{font-family:ui-monospace,monospace}"
    "svg{display:block;max-width:100%;height:auto}"
    "svg rect.bar{fill:#3d7bd9}svg text{font-size:10px;fill:#6b7488}"
    ".bar-wrap{overflow-x:auto}";

/* The auto-refresh: reload every PAGE_REFRESH_SECS unless unticked (the
 * choice survives the reload in sessionStorage). */
#define PAGE_JS \
    "(function(){var c=document.getElementById('autorefresh')," \
    "k='mailferry.autorefresh';try{if(sessionStorage.getItem(k)==='0')" \
    "c.checked=false;}catch(e){}c.addEventListener('change',function(){" \
    "try{sessionStorage.setItem(k,c.checked?'1':'0');}catch(e){}});" \
    "setTimeout(function(){if(c.checked)location.reload();}," \
    "%d000);})();"

static void
page_head(struct evbuffer *b, const struct relay *relay, time_t now)
{
	char when[40], up[32];

	out(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	    "<meta name=\"viewport\" content=\"width=device-width, "
	    "initial-scale=1\"><title>mailferry: ");
	esc(b, relay->cfg->relay.hostname);
	out(b, "</title><style>%s</style></head>\n<body data-now=\"%" PRId64
	    "\"><header><h1>mailferry status: ", page_css, (int64_t)now);
	esc(b, relay->cfg->relay.hostname);
	out(b, "</h1><small>ferry-relay ");
	esc(b, PACKAGE_VERSION);
	out(b, ", pid %ld, up %s &middot; <span id=\"generated\">%s</span> "
	    "&middot; <label><input type=\"checkbox\" id=\"autorefresh\" "
	    "checked> refresh every %d s</label></small></header>\n<main>\n",
	    (long)getpid(), fmt_age(up, sizeof(up), (int64_t)(now -
	    relay->started)), cutover_format_rfc3339(when, sizeof(when),
	    (int64_t)now), PAGE_REFRESH_SECS);
}

/* time_or - an RFC 3339 value from a document, or "never" */
static void
time_or(struct evbuffer *b, const char *v, const char *none)
{
	if (v == NULL || strcmp(v, "null") == 0)
		out(b, "<span class=\"muted\">%s</span>", none);
	else
		esc(b, v);
}

/* page_cutover_domain - one domain of the cutover document */
static void
page_cutover_domain(struct evbuffer *b, const struct json_flat *f, size_t d)
{
	const char *domain, *phase, *verdict, *v, *cls;
	size_t i, k, n;
	int safe;

	domain = flat_getf(f, "", "domains.%zu.domain", d);
	phase = flat_getf(f, "?", "domains.%zu.phase", d);
	verdict = flat_getf(f, "not-yet", "domains.%zu.verdict", d);
	safe = strcmp(verdict, "safe-to-retire") == 0;
	out(b, "<div class=\"domain %s\" id=\"domain-%zu\" data-domain=\"",
	    safe ? "is-safe" : "is-notyet", d);
	esc(b, domain);
	out(b, "\" data-phase=\"");
	esc(b, phase);
	out(b, "\" data-verdict=\"");
	esc(b, verdict);
	out(b, "\"><h3>");
	esc(b, domain);
	out(b, " &nbsp;<span class=\"badge phase\">");
	esc(b, phase);
	out(b, "</span> <span class=\"badge verdict %s\">", safe ? "safe" :
	    "notyet");
	esc(b, verdict);
	out(b, "</span></h3><p class=\"muted\">phase since ");
	time_or(b, flat_getf(f, NULL, "domains.%zu.phase_since", d), "never");
	out(b, "; switch first seen ");
	time_or(b, flat_getf(f, NULL, "domains.%zu.switch_seen_at", d),
	    "not yet");
	out(b, "</p>");

	for (n = 0; flat_getf(f, NULL, "domains.%zu.outstanding.%zu", d,
	    n) != NULL; n++)
		;
	out(b, "<div>Outstanding (<span class=\"outstanding-count\">%zu"
	    "</span>):</div><ul class=\"outstanding\" data-count=\"%zu\">",
	    n, n);
	for (i = 0; i < n; i++) {
		out(b, "<li>");
		esc(b, flat_getf(f, "", "domains.%zu.outstanding.%zu", d, i));
		out(b, "</li>");
	}
	if (n == 0)
		out(b, "<li class=\"muted\">nothing: the evidence is "
		    "complete</li>");
	out(b, "</ul>");
	for (i = 0; (v = flat_getf(f, NULL, "domains.%zu.notes.%zu", d, i)) !=
	    NULL; i++) {
		out(b, "<p class=\"note muted\">note: ");
		esc(b, v);
		out(b, "</p>");
	}

	out(b, "<table class=\"resolvers\"><tr><th>Resolver</th><th>Answer"
	    "</th><th>MX hosts</th><th class=\"num\">TTL</th><th>Asked at"
	    "</th><th>New since</th></tr>");
	for (i = 0; (v = flat_getf(f, NULL, "domains.%zu.resolvers.%zu."
	    "resolver", d, i)) != NULL; i++) {
		cls = flat_getf(f, "?", "domains.%zu.resolvers.%zu.class", d, i);
		out(b, "<tr class=\"resolver\" data-resolver=\"");
		esc(b, v);
		out(b, "\" data-class=\"");
		esc(b, cls);
		out(b, "\" data-mx=\"");
		for (k = 0; flat_getf(f, NULL, "domains.%zu.resolvers.%zu.mx.%zu",
		    d, i, k) != NULL; k++) {
			if (k > 0)
				out(b, " ");
			esc(b, flat_getf(f, "", "domains.%zu.resolvers.%zu.mx.%zu",
			    d, i, k));
		}
		out(b, "\"><td class=\"mono\">");
		esc(b, v);
		/* the class names are ours: new old mixed unknown error */
		out(b, "</td><td class=\"");
		esc(b, cls);
		out(b, "\">");
		esc(b, cls);
		out(b, "</td><td class=\"mono\">");
		for (k = 0; (v = flat_getf(f, NULL, "domains.%zu.resolvers.%zu."
		    "mx.%zu", d, i, k)) != NULL; k++) {
			if (k > 0)
				out(b, "<br>");
			esc(b, v);
		}
		if ((v = flat_getf(f, NULL, "domains.%zu.resolvers.%zu.error",
		    d, i)) != NULL) {
			out(b, "<span class=\"error\">");
			esc(b, v);
			out(b, "</span>");
		} else if (k == 0)
			out(b, "<span class=\"muted\">none</span>");
		out(b, "</td><td class=\"num\">%" PRIu64 "</td><td>",
		    to_u64(flat_getf(f, "0", "domains.%zu.resolvers.%zu.ttl",
		    d, i)));
		time_or(b, flat_getf(f, NULL, "domains.%zu.resolvers.%zu."
		    "asked_at", d, i), "never");
		out(b, "</td><td>");
		time_or(b, flat_getf(f, NULL, "domains.%zu.resolvers.%zu."
		    "new_since", d, i), "&mdash;");
		out(b, "</td></tr>");
	}
	if (i == 0)
		out(b, "<tr><td colspan=\"6\" class=\"muted\">no answer "
		    "recorded yet (ferry-syncd watches the MX)</td></tr>");
	out(b, "</table></div>\n");
}

static int
page_cutover(struct evbuffer *b, struct relay *relay, time_t now, char *err,
    size_t errlen)
{
	struct json_flat f = { 0 };
	struct json j;
	const char *doc;
	size_t len, d;
	int rc;

	out(b, "<section id=\"cutover\"><h2>Cutover</h2>");
	if (relay->cfg->cutover.domains.count == 0) {
		out(b, "<p class=\"muted\">No [cutover] domains are "
		    "configured.</p></section>\n");
		return (0);
	}
	json_init(&j, 0);
	if (cutover_status_render(relay->store, relay->cfg, now, 1, &j, NULL,
	    err, errlen) == -1) {
		json_clear(&j);
		return (-1);
	}
	if ((doc = json_finish(&j, &len)) == NULL) {
		json_clear(&j);
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	rc = json_walk(doc, len, json_flat_walk, &f, err, errlen);
	json_clear(&j);
	if (rc != 0) {
		if (rc != -1)
			snprintf(err, errlen, "out of memory");
		json_flat_clear(&f);
		return (-1);
	}
	for (d = 0; flat_getf(&f, NULL, "domains.%zu.domain", d) != NULL; d++)
		page_cutover_domain(b, &f, d);
	out(b, "</section>\n");
	json_flat_clear(&f);
	return (0);
}

static const char *const state_titles[4] = {
	"pending", "deferred", "held", "done",
};

static int
page_queue(struct evbuffer *b, struct relay *relay, time_t now, char *err,
    size_t errlen)
{
	struct page_queue q;
	char id[32], age[32], when[40], mb[32];
	int i;

	memset(&q, 0, sizeof(q));
	if (relay->store == NULL) {
		snprintf(err, errlen, "the queue database is not open");
		return (-1);
	}
	if (store_txn_run(relay->store, 1, queue_txn, &q, err, errlen) != 0)
		return (-1);
	out(b, "<section id=\"queue\"><h2>Relay queue</h2><table><tr>");
	for (i = 0; i < 4; i++)
		out(b, "<th class=\"num\">%s</th>", state_titles[i]);
	out(b, "<th class=\"num\">total</th><th class=\"num\">MB</th>"
	    "<th class=\"num\">unreadable</th></tr><tr>");
	for (i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "queue-%s", state_titles[i]);
		num_cell(b, id, q.by_state[i]);
	}
	num_cell(b, "queue-total", q.total);
	out(b, "<td class=\"num\" id=\"queue-bytes\" data-value=\"%" PRIu64
	    "\">%s</td>", q.bytes, fmt_mb(mb, sizeof(mb), q.bytes));
	num_cell(b, "queue-unreadable", q.unreadable);
	out(b, "</tr></table>");
	if (q.oldest.arrived == 0) {
		out(b, "<p id=\"queue-oldest\" data-id=\"\">The queue is "
		    "empty.</p></section>\n");
		return (0);
	}
	out(b, "<h3>Oldest message</h3><table id=\"queue-oldest\" "
	    "data-id=\"%s\" data-age=\"%" PRId64 "\" data-arrived=\"%" PRId64
	    "\"><tr><th>ID</th><th>Arrived</th><th>Age</th><th>State</th>"
	    "<th>From</th><th>To</th><th class=\"num\">Attempts</th>"
	    "<th>Last reply</th></tr><tr><td class=\"mono\">%s</td><td>%s</td>"
	    "<td>%s</td><td>%s</td><td class=\"mono\">", q.oldest.id,
	    (int64_t)now - q.oldest.arrived, q.oldest.arrived, q.oldest.id,
	    cutover_format_rfc3339(when, sizeof(when), q.oldest.arrived),
	    fmt_age(age, sizeof(age), (int64_t)now - q.oldest.arrived),
	    qr_state_name(q.oldest.state));
	if (q.oldest.sender[0] != '\0')
		esc(b, q.oldest.sender);
	else
		out(b, "&lt;&gt;");
	out(b, "</td><td class=\"mono\">");
	esc(b, q.oldest.rcpt);
	if (q.oldest.nrcpt > 1)
		out(b, " <span class=\"muted\">+%zu</span>",
		    q.oldest.nrcpt - 1);
	out(b, "</td><td class=\"num\">%" PRIu32 "</td><td>", q.oldest.attempts);
	esc(b, q.oldest.reply);
	out(b, "</td></tr></table></section>\n");
	return (0);
}

/* page_arrivals - the drain view's 72 hours as an inline SVG bar chart */
static void
page_arrivals(struct evbuffer *b, struct relay *relay, time_t now)
{
	enum { BAR = 15, GAP = 3, H = 120, TOP = 14, AXIS = 16 };
	uint64_t hourly[DRAIN_HOURS], max = 0, total = 0, last24 = 0;
	char when[40], ago[32];
	time_t last;
	int i, w = DRAIN_HOURS * BAR;

	out(b, "<section id=\"arrivals\"><h2>Arrivals per hour "
	    "(the last 72 hours, UTC)</h2>");
	if (relay->drain == NULL) {
		out(b, "<p class=\"muted\">The relay keeps no drain view."
		    "</p></section>\n");
		return;
	}
	drain_hourly(relay->drain, now, hourly);
	for (i = 0; i < DRAIN_HOURS; i++) {
		total += hourly[i];
		if (i >= DRAIN_HOURS - 24)
			last24 += hourly[i];
		if (hourly[i] > max)
			max = hourly[i];
	}
	last = drain_last(relay->drain);
	out(b, "<p>Total <span id=\"arrivals-total\" data-value=\"%" PRIu64
	    "\">%" PRIu64 "</span>, last 24 h <span id=\"arrivals-24h\" "
	    "data-value=\"%" PRIu64 "\">%" PRIu64 "</span>, this hour <span "
	    "id=\"arrivals-1h\" data-value=\"%" PRIu64 "\">%" PRIu64 "</span>;"
	    " last inbound message <span id=\"last-inbound\" data-value=\"%"
	    PRId64 "\">", total, total, last24, last24,
	    hourly[DRAIN_HOURS - 1], hourly[DRAIN_HOURS - 1], (int64_t)last);
	if (last > 0)
		out(b, "%s (%s ago)", cutover_format_rfc3339(when, sizeof(when),
		    (int64_t)last), fmt_age(ago, sizeof(ago), (int64_t)(now -
		    last)));
	else
		out(b, "never");
	out(b, "</span></p><div class=\"bar-wrap\"><svg id=\"arrivals-chart\" "
	    "xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
	    "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"arrivals per "
	    "hour\" data-max=\"%" PRIu64 "\">", w, TOP + H + AXIS, w,
	    TOP + H + AXIS, max);
	out(b, "<line x1=\"0\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#c5cad5\"/>",
	    TOP + H, w, TOP + H);
	if (max > 0)
		out(b, "<text x=\"0\" y=\"10\">max %" PRIu64 "/h</text>", max);
	for (i = 0; i < DRAIN_HOURS; i++) {
		int64_t start = ((int64_t)now / 3600 - (DRAIN_HOURS - 1 - i)) *
		    3600;
		int h = max ? (int)((double)hourly[i] * H / (double)max + 0.5) : 0;

		if (hourly[i] > 0 && h < 1)
			h = 1;
		out(b, "<rect class=\"bar\" data-hour=\"%d\" data-start=\"%" PRId64
		    "\" data-count=\"%" PRIu64 "\" x=\"%d\" y=\"%d\" width=\"%d\" "
		    "height=\"%d\"><title>%s: %" PRIu64 "</title></rect>", i,
		    start, hourly[i], i * BAR + GAP / 2, TOP + H - h, BAR - GAP, h,
		    cutover_format_rfc3339(when, sizeof(when), start), hourly[i]);
		if (i % 12 == 0)
			out(b, "<text x=\"%d\" y=\"%d\">-%dh</text>", i * BAR,
			    TOP + H + 12, DRAIN_HOURS - i);
	}
	out(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">now</text>",
	    w, TOP + H + 12);
	out(b, "</svg></div></section>\n");
}

/* sync_num - a top-level number of the progress record as a cell */
static void
sync_num(struct evbuffer *b, const struct page_sync *s, const char *key)
{
	char id[64];

	snprintf(id, sizeof(id), "sync-%s", key);
	num_cell(b, id, to_u64(flat_get(&s->top, key, "0")));
}

/* fmt_eta - seconds or "unknown" (-1) */
static const char *
fmt_eta(char *buf, size_t len, int64_t eta)
{
	if (eta < 0)
		return (str_copy(buf, "&mdash;", len), buf);
	return (fmt_age(buf, len, eta));
}

static void
page_sync_account(struct evbuffer *b, const struct page_acct *a)
{
	char mb[32], rate[64], eta[32];
	int failed = a->failed > 0 || a->error != NULL ||
	    (a->state != NULL && strcmp(a->state, "failed") == 0);

	out(b, "<tr class=\"account%s\" data-user=\"", failed ? " failed" : "");
	esc(b, a->user);
	out(b, "\" data-state=\"");
	esc(b, a->state);
	out(b, "\" data-folders-done=\"%" PRIu64 "\" data-folders-total=\"%"
	    PRIu64 "\" data-copied=\"%" PRIu64 "\" data-failed=\"%" PRIu64
	    "\"", a->folders_done, a->folders_total, a->copied, a->failed);
	if (a->has_messages)
		out(b, " data-messages-done=\"%" PRIu64 "\" data-messages-total="
		    "\"%" PRIu64 "\" data-bytes=\"%" PRIu64 "\"",
		    a->messages_done, a->messages_total, a->bytes);
	out(b, "><td class=\"mono\">");
	esc(b, a->user);
	out(b, "</td><td>");
	esc(b, a->state);
	out(b, "</td><td class=\"num\">%" PRIu64 "/%" PRIu64 "</td>",
	    a->folders_done, a->folders_total);
	if (a->has_messages)
		out(b, "<td class=\"num\">%" PRIu64 " / %" PRIu64 "</td><td "
		    "class=\"num\">%s</td>", a->messages_done, a->messages_total,
		    fmt_mb(mb, sizeof(mb), a->bytes));
	else
		out(b, "<td class=\"num\">&mdash;</td><td class=\"num\">"
		    "&mdash;</td>");
	out(b, "<td class=\"num\">%" PRIu64 "</td>", a->copied);
	if (a->has_rate && a->rate_msgs > 0)
		snprintf(rate, sizeof(rate), "%.1f msg/s, %.2f MB/s",
		    a->rate_msgs, a->rate_bytes / (1024.0 * 1024.0));
	else
		str_copy(rate, "&mdash;", sizeof(rate));
	out(b, "<td class=\"num\">%s</td><td class=\"num\">%s</td>", rate,
	    fmt_eta(eta, sizeof(eta), a->eta));
	out(b, "<td class=\"num%s\">%" PRIu64 "</td><td>", a->failed ?
	    " failed" : "", a->failed);
	if (a->error != NULL) {
		out(b, "<span class=\"error\">");
		esc(b, a->error);
		out(b, "</span>");
	}
	out(b, "</td></tr>");
}

static int
page_sync(struct evbuffer *b, struct relay *relay, time_t now, char *err,
    size_t errlen)
{
	struct progress_doc d = { NULL, 0, 0 };
	struct page_sync s;
	const char *v;
	char t1[40], t2[32], mb[32];
	uint64_t pid;
	int64_t eta;
	size_t i;
	int rc, running;

	memset(&s, 0, sizeof(s));
	out(b, "<section id=\"sync\"><h2>Mailbox sync (ferry-syncd)</h2>");
	rc = store_txn_run(relay->store, 1, progress_txn, &d, err, errlen);
	if (rc != 0) {
		if (rc != -1)
			snprintf(err, errlen, "out of memory");
		free(d.doc);
		return (-1);
	}
	if (d.doc == NULL) {
		out(b, "<p class=\"muted\" id=\"sync-none\">%s</p></section>\n",
		    d.too_large ? "ferry-syncd's progress record is too large "
		    "to show." : "ferry-syncd has not run with this state_dir "
		    "yet.");
		return (0);
	}
	rc = json_walk(d.doc, d.len, sync_walk, &s, err, errlen);
	free(d.doc);
	if (rc != 0) {
		out(b, "<p class=\"error\">ferry-syncd's progress record is "
		    "unreadable: ");
		esc(b, rc == -1 ? err : "out of memory");
		out(b, "</p></section>\n");
		page_sync_clear(&s);
		return (0);
	}
	running = strcmp(flat_get(&s.top, "running", "false"), "true") == 0;
	out(b, "<p id=\"sync-state\" data-running=\"%d\" data-pass=\"",
	    running);
	esc(b, flat_get(&s.top, "pass", "?"));
	out(b, "\" data-pass-number=\"%" PRIu64 "\">", to_u64(flat_get(&s.top,
	    "pass_number", "0")));
	pid = to_u64(flat_get(&s.top, "pid", "0"));
	if (running && (pid == 0 || pid > INT32_MAX ||
	    (kill((pid_t)pid, 0) == -1 && errno == ESRCH)))
		out(b, "ferry-syncd pid %" PRIu64 " is gone without finishing "
		    "(killed?); pass #%" PRIu64 " ", pid, to_u64(flat_get(&s.top,
		    "pass_number", "0")));
	else if (running)
		out(b, "ferry-syncd pid %" PRIu64 " (%s), pass #%" PRIu64 " ",
		    to_u64(flat_get(&s.top, "pid", "0")),
		    strcmp(flat_get(&s.top, "mode", ""), "daemon") == 0 ?
		    "daemon" : "one pass", to_u64(flat_get(&s.top,
		    "pass_number", "0")));
	else
		out(b, "ferry-syncd is not running; last pass #%" PRIu64 " ",
		    to_u64(flat_get(&s.top, "pass_number", "0")));
	out(b, "(");
	esc(b, flat_get(&s.top, "pass", "?"));
	out(b, ") started %s, record updated %s ago.</p>",
	    cutover_format_rfc3339(t1, sizeof(t1), (int64_t)to_u64(
	    flat_get(&s.top, "started", "0"))), fmt_age(t2, sizeof(t2),
	    (int64_t)now - (int64_t)to_u64(flat_get(&s.top, "updated", "0"))));

	out(b, "<table><tr><th class=\"num\">accounts</th><th class=\"num\">"
	    "of</th><th class=\"num\">folders</th><th class=\"num\">of</th>"
	    "<th class=\"num\">messages</th><th class=\"num\">of</th>"
	    "<th class=\"num\">copied</th><th class=\"num\">duplicates</th>"
	    "<th class=\"num\">failed</th><th class=\"num\">MB</th>"
	    "<th class=\"num\">rate</th><th class=\"num\">ETA</th></tr><tr>");
	sync_num(b, &s, "accounts_done");
	sync_num(b, &s, "accounts_total");
	sync_num(b, &s, "folders_done");
	sync_num(b, &s, "folders_total");
	sync_num(b, &s, "messages_done");
	sync_num(b, &s, "messages_total");
	sync_num(b, &s, "copied");
	sync_num(b, &s, "duplicates");
	sync_num(b, &s, "failed");
	v = flat_get(&s.top, "bytes", "0");
	out(b, "<td class=\"num\" id=\"sync-bytes\" data-value=\"%" PRIu64
	    "\">%s</td>", to_u64(v), fmt_mb(mb, sizeof(mb), to_u64(v)));
	out(b, "<td class=\"num\" id=\"sync-rate\">%.1f msg/s, %.2f MB/s</td>",
	    strtod(flat_get(&s.top, "rate_msgs", "0"), NULL),
	    strtod(flat_get(&s.top, "rate_bytes", "0"), NULL) /
	    (1024.0 * 1024.0));
	v = flat_get(&s.top, "eta_seconds", NULL);
	eta = v != NULL ? strtoll(v, NULL, 10) : -1;
	out(b, "<td class=\"num\" id=\"sync-eta\" data-value=\"%" PRId64
	    "\">%s</td></tr></table>", eta, fmt_eta(t2, sizeof(t2), eta));
	if ((v = flat_get(&s.top, "last_pass.finished", NULL)) != NULL) {
		out(b, "<p id=\"sync-last-pass\" data-complete=\"%d\">Last "
		    "finished pass: %s, ", strcmp(flat_get(&s.top,
		    "last_pass.complete", "false"), "true") == 0,
		    cutover_format_rfc3339(t1, sizeof(t1),
		    (int64_t)to_u64(v)));
		esc(b, flat_get(&s.top, "last_pass.verdict", ""));
		out(b, "</p>");
	}

	out(b, "<table id=\"sync-accounts\" data-count=\"%zu\"><tr>"
	    "<th>Account</th><th>State</th><th class=\"num\">Folders</th>"
	    "<th class=\"num\">Messages</th><th class=\"num\">MB</th>"
	    "<th class=\"num\">Copied</th><th class=\"num\">Rate</th>"
	    "<th class=\"num\">ETA</th><th class=\"num\">Failed</th>"
	    "<th>Error</th></tr>", s.nacc);
	for (i = 0; i < s.nacc; i++)
		page_sync_account(b, &s.acc[i]);
	if (s.nacc == 0)
		out(b, "<tr><td colspan=\"10\" class=\"muted\">no accounts yet"
		    "</td></tr>");
	out(b, "</table></section>\n");
	page_sync_clear(&s);
	return (0);
}

/* ---- the page ----------------------------------------------------------- */

int
control_page_render(struct relay *relay, time_t now, struct evbuffer *b,
    char *err, size_t errlen)
{
	if (relay->store == NULL) {
		snprintf(err, errlen, "the database is not open");
		return (-1);
	}
	page_head(b, relay, now);
	if (page_cutover(b, relay, now, err, errlen) == -1 ||
	    page_queue(b, relay, now, err, errlen) == -1)
		return (-1);
	page_arrivals(b, relay, now);
	if (page_sync(b, relay, now, err, errlen) == -1)
		return (-1);
	out(b, "<p class=\"muted\">The same data as JSON: <a href=\"/status\">"
	    "/status</a>, <a href=\"/cutover\">/cutover</a>; Prometheus: "
	    "<a href=\"/metrics\">/metrics</a>.</p></main>\n<script>");
	out(b, PAGE_JS, PAGE_REFRESH_SECS);
	out(b, "</script></body></html>\n");
	return (0);
}

void
control_page_reply(struct relay *relay, struct evhttp_request *req)
{
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	struct evbuffer *b;
	char err[256], clean[256], msg[300];

	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	if (control_page_render(relay, time(NULL), b, err, sizeof(err)) == -1) {
		log_warnx("control: the status page: %s", err);
		evbuffer_free(b);
		str_printable(clean, sizeof(clean), err, strlen(err));
		snprintf(msg, sizeof(msg), "the status page: %s", clean);
		http_text_reply(req, HTTP_INTERNAL, "Internal Server Error",
		    msg);
		return;
	}
	evhttp_add_header(hdr, "Content-Type", "text/html; charset=utf-8");
	evhttp_add_header(hdr, "Cache-Control", "no-store");
	/* Nothing from elsewhere: no image, font, frame or script but the
	 * page's own inline ones. */
	evhttp_add_header(hdr, "Content-Security-Policy",
	    "default-src 'none'; style-src 'unsafe-inline'; "
	    "script-src 'unsafe-inline'; img-src data:; "
	    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
	evhttp_add_header(hdr, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(hdr, "Referrer-Policy", "no-referrer");
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}
