/*
 * cutover_state.c - the per-domain cutover record, its codec, the
 * verdict and the status rendering (see cutover_state.h for the record
 * format and the verdict's four conditions).
 *
 * Why here and not in syncd/: three programs read the record (syncd
 * writes it, ferryctl and the relay's GET /cutover show it), and all
 * three must reach the same verdict from the same evidence, so the
 * evaluation is one pure function they share.
 *
 * SECURITY: resolver answers (MX host names, error texts) and account
 * failure reasons come from the network.  The decoder checks every
 * length against its field before copying; the JSON writer escapes
 * everything; the text form passes every such string through
 * str_printable().
 *
 * Threading: no global state.
 */

#include <ctype.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bytes.h"
#include "config.h"
#include "cutover_state.h"
#include "json.h"
#include "relay_view.h"
#include "store.h"
#include "util.h"

static const char *const phase_names[CUTOVER_NPHASES] = {
	[CUTOVER_PRESYNC] = "presync",
	[CUTOVER_SYNCED] = "synced",
	[CUTOVER_SWITCHING] = "switching",
	[CUTOVER_DUAL] = "dual-reception",
	[CUTOVER_CLOSED] = "closed",
	[CUTOVER_ROLLBACK] = "rollback",
};

static const char *const class_names[MX_CLASS_NCLASSES] = {
	[MX_CLASS_NEW] = "new",
	[MX_CLASS_OLD] = "old",
	[MX_CLASS_MIXED] = "mixed",
	[MX_CLASS_UNKNOWN] = "unknown",
	[MX_CLASS_ERROR] = "error",
};

const char *
cutover_phase_name(enum cutover_phase p)
{
	return ((unsigned)p < CUTOVER_NPHASES ? phase_names[p] : "?");
}

const char *
cutover_class_name(enum cutover_class c)
{
	return ((unsigned)c < MX_CLASS_NCLASSES ? class_names[c] : "?");
}

/* cutover_record_init - a fresh record: presync since now */
void
cutover_record_init(struct cutover_record *r, const char *domain,
    time_t now)
{
	memset(r, 0, sizeof(*r));
	str_copy(r->domain, domain, sizeof(r->domain));
	str_lower(r->domain);
	r->phase = CUTOVER_PRESYNC;
	r->phase_since = (int64_t)now;
}

/* cutover_record_history - append one entry, dropping the oldest */
void
cutover_record_history(struct cutover_record *r, time_t at,
    enum cutover_phase from, enum cutover_phase to, const char *why)
{
	struct cutover_hist *h;

	if (r->nhist == CUTOVER_HISTORY_MAX) {
		memmove(&r->hist[0], &r->hist[1],
		    (CUTOVER_HISTORY_MAX - 1) * sizeof(r->hist[0]));
		r->nhist--;
	}
	h = &r->hist[r->nhist++];
	memset(h, 0, sizeof(*h));
	h->at = (int64_t)at;
	h->from = from;
	h->to = to;
	str_copy(h->why, why ? why : "", sizeof(h->why));
}

/* ---- the codec ------------------------------------------------------------ */

/* put_str - a length-prefixed string (width 1 or 2), cut to max */
static void
put_str(struct wbuf *w, const char *s, size_t width, size_t max)
{
	size_t n = strnlen(s, max);

	if (width == 1)
		wbuf_str8(w, s, n);
	else
		wbuf_str16(w, s, n);
}

/* cutover_record_encode - the record's bytes; -1 when out of memory */
int
cutover_record_encode(const struct cutover_record *r, unsigned char **buf_r,
    size_t *len_r)
{
	struct wbuf w;
	const struct cutover_answer *a;
	const struct cutover_sync *s = &r->sync;
	size_t i, k, m, n;

	wbuf_init(&w);
	wbuf_u8(&w, 'C');
	wbuf_u8(&w, CUTOVER_RECORD_VERSION);
	put_str(&w, r->domain, 1, CUTOVER_DOMAIN_MAX);
	wbuf_u8(&w, r->phase);
	wbuf_be64(&w, (uint64_t)r->phase_since);
	wbuf_be64(&w, (uint64_t)r->switch_seen_at);
	wbuf_be64(&w, (uint64_t)r->all_new_since);
	n = r->nanswers < CUTOVER_RESOLVERS_MAX ? r->nanswers :
	    CUTOVER_RESOLVERS_MAX;
	wbuf_u8(&w, (unsigned)n);
	for (i = 0; i < n; i++) {
		a = &r->answers[i];
		put_str(&w, a->resolver, 1, CUTOVER_LABEL_MAX);
		wbuf_u8(&w, a->class);
		wbuf_be32(&w, a->ttl);
		wbuf_be64(&w, (uint64_t)a->asked_at);
		wbuf_be64(&w, (uint64_t)a->new_since);
		k = a->nmx < CUTOVER_MX_MAX ? a->nmx : CUTOVER_MX_MAX;
		wbuf_u8(&w, (unsigned)k);
		for (m = 0; m < k; m++)
			put_str(&w, a->mx[m], 1, CUTOVER_HOST_MAX);
		put_str(&w, a->error, 1, CUTOVER_ERROR_MAX);
	}
	wbuf_be64(&w, (uint64_t)s->full_done_at);
	wbuf_be64(&w, (uint64_t)s->last_started);
	wbuf_be64(&w, (uint64_t)s->last_finished);
	wbuf_be64(&w, (uint64_t)s->running_since);
	wbuf_be64(&w, s->copied);
	wbuf_be64(&w, s->missing);
	wbuf_be64(&w, s->failed);
	wbuf_be32(&w, s->accounts);
	wbuf_be64(&w, (uint64_t)s->clean_started);
	n = s->nfail < CUTOVER_FAIL_MAX ? s->nfail : CUTOVER_FAIL_MAX;
	wbuf_u8(&w, (unsigned)n);
	for (i = 0; i < n; i++) {
		put_str(&w, s->fail[i].user, 2, CUTOVER_USER_MAX);
		wbuf_be64(&w, s->fail[i].failed);
		put_str(&w, s->fail[i].reason, 2, CUTOVER_TEXT_MAX);
	}
	n = r->nhist < CUTOVER_HISTORY_MAX ? r->nhist : CUTOVER_HISTORY_MAX;
	wbuf_be16(&w, (uint16_t)n);
	for (i = 0; i < n; i++) {
		wbuf_be64(&w, (uint64_t)r->hist[i].at);
		wbuf_u8(&w, r->hist[i].from);
		wbuf_u8(&w, r->hist[i].to);
		put_str(&w, r->hist[i].why, 2, CUTOVER_TEXT_MAX);
	}
	return (wbuf_finish(&w, buf_r, len_r));
}

/* get_str - a length-prefixed string (width 1 or 2) into out[max + 1];
 * no NUL inside */
static void
get_str(struct rbuf *r, size_t width, char *out, size_t max)
{
	size_t n = width == 1 ? rbuf_u8(r) : rbuf_be16(r);
	const unsigned char *p;

	out[0] = '\0';
	if (r->why == NULL && n > max)
		rbuf_fail(r, "string too long");
	if ((p = rbuf_take(r, n)) == NULL)
		return;
	memcpy(out, p, n);
	out[n] = '\0';
	if (memchr(out, '\0', n) != NULL)
		rbuf_fail(r, "NUL in a string");
}

/* get_enum - a byte below limit */
static unsigned
get_enum(struct rbuf *r, unsigned limit, const char *what)
{
	unsigned v = rbuf_u8(r);

	if (v >= limit)
		rbuf_fail(r, what);
	return (v < limit ? v : 0);
}

/* cutover_record_decode - strictly one record of this version */
int
cutover_record_decode(struct cutover_record *rec, const void *buf,
    size_t len, char *err, size_t errlen)
{
	struct rbuf r;
	struct cutover_answer *a;
	struct cutover_sync *s = &rec->sync;
	size_t i, k;

	memset(rec, 0, sizeof(*rec));
	rbuf_init(&r, buf, len);
	if (rbuf_u8(&r) != 'C')
		rbuf_fail(&r, "not a cutover record");
	if (rbuf_u8(&r) != CUTOVER_RECORD_VERSION)
		rbuf_fail(&r, "unknown record version");
	get_str(&r, 1, rec->domain, CUTOVER_DOMAIN_MAX);
	if (rec->domain[0] == '\0')
		rbuf_fail(&r, "empty domain");
	rec->phase = get_enum(&r, CUTOVER_NPHASES, "bad phase");
	rec->phase_since = (int64_t)rbuf_be64(&r);
	rec->switch_seen_at = (int64_t)rbuf_be64(&r);
	rec->all_new_since = (int64_t)rbuf_be64(&r);
	rec->nanswers = rbuf_u8(&r);
	if (rec->nanswers > CUTOVER_RESOLVERS_MAX)
		rbuf_fail(&r, "too many resolvers");
	for (i = 0; r.why == NULL && i < rec->nanswers; i++) {
		a = &rec->answers[i];
		get_str(&r, 1, a->resolver, CUTOVER_LABEL_MAX);
		a->class = get_enum(&r, MX_CLASS_NCLASSES, "bad class");
		a->ttl = rbuf_be32(&r);
		a->asked_at = (int64_t)rbuf_be64(&r);
		a->new_since = (int64_t)rbuf_be64(&r);
		a->nmx = rbuf_u8(&r);
		if (a->nmx > CUTOVER_MX_MAX)
			rbuf_fail(&r, "too many MX hosts");
		for (k = 0; r.why == NULL && k < a->nmx; k++)
			get_str(&r, 1, a->mx[k], CUTOVER_HOST_MAX);
		get_str(&r, 1, a->error, CUTOVER_ERROR_MAX);
	}
	s->full_done_at = (int64_t)rbuf_be64(&r);
	s->last_started = (int64_t)rbuf_be64(&r);
	s->last_finished = (int64_t)rbuf_be64(&r);
	s->running_since = (int64_t)rbuf_be64(&r);
	s->copied = rbuf_be64(&r);
	s->missing = rbuf_be64(&r);
	s->failed = rbuf_be64(&r);
	s->accounts = rbuf_be32(&r);
	s->clean_started = (int64_t)rbuf_be64(&r);
	s->nfail = rbuf_u8(&r);
	if (s->nfail > CUTOVER_FAIL_MAX)
		rbuf_fail(&r, "too many failures");
	for (i = 0; r.why == NULL && i < s->nfail; i++) {
		get_str(&r, 2, s->fail[i].user, CUTOVER_USER_MAX);
		s->fail[i].failed = rbuf_be64(&r);
		get_str(&r, 2, s->fail[i].reason, CUTOVER_TEXT_MAX);
	}
	rec->nhist = rbuf_be16(&r);
	if (rec->nhist > CUTOVER_HISTORY_MAX)
		rbuf_fail(&r, "history too long");
	for (i = 0; r.why == NULL && i < rec->nhist; i++) {
		rec->hist[i].at = (int64_t)rbuf_be64(&r);
		rec->hist[i].from = get_enum(&r, CUTOVER_NPHASES, "bad phase");
		rec->hist[i].to = get_enum(&r, CUTOVER_NPHASES, "bad phase");
		get_str(&r, 2, rec->hist[i].why, CUTOVER_TEXT_MAX);
	}
	if (rbuf_left(&r) != 0)
		rbuf_fail(&r, "bytes after the record");
	if (r.why != NULL) {
		errbuf_set(err, errlen, "cutover record: %s (byte %zu of %zu)",
		    r.why, r.off, r.len);
		memset(rec, 0, sizeof(*rec));
		return (-1);
	}
	return (0);
}

/* cutover_record_get - the record of domain, in a transaction */
int
cutover_record_get(struct store_txn *tx, const char *domain,
    struct cutover_record *r)
{
	char key[CUTOVER_DOMAIN_MAX + 1], err[256];
	const void *val;
	size_t vlen;
	int rc;

	str_copy(key, domain, sizeof(key));
	str_lower(key);
	rc = store_get(tx, STORE_DB_CUTOVER, key, strlen(key), &val, &vlen);
	if (rc != 0)
		return (rc);
	if (cutover_record_decode(r, val, vlen, err, sizeof(err)) == -1) {
		store_txn_seterr(tx, "%s: %s", key, err);
		return (-1);
	}
	if (strcmp(r->domain, key) != 0) {
		store_txn_seterr(tx, "%s: the record is for %s", key, r->domain);
		return (-1);
	}
	return (0);
}

/* cutover_record_put - write r under its domain */
int
cutover_record_put(struct store_txn *tx, const struct cutover_record *r)
{
	unsigned char *buf;
	size_t len;
	int rc;

	if (cutover_record_encode(r, &buf, &len) == -1) {
		store_txn_seterr(tx, "out of memory");
		return (-1);
	}
	rc = store_put(tx, STORE_DB_CUTOVER, r->domain, strlen(r->domain), buf,
	    len, 0);
	free(buf);
	return (rc);
}

/* ---- classing an MX answer ----------------------------------------------- */

/* cutover_host_matches - whether host matches one of the patterns */
int
cutover_host_matches(const struct strlist *patterns, const char *host)
{
	char h[CUTOVER_HOST_MAX + 1], pat[CUTOVER_HOST_MAX + 1];
	size_t i, n;

	str_copy(h, host, sizeof(h));
	str_lower(h);
	n = strlen(h);
	if (n > 0 && h[n - 1] == '.')
		h[n - 1] = '\0';
	for (i = 0; i < patterns->count; i++) {
		str_copy(pat, patterns->items[i], sizeof(pat));
		str_lower(pat);
		n = strlen(pat);
		if (n > 0 && pat[n - 1] == '.')
			pat[n - 1] = '\0';
		if (fnmatch(pat, h, 0) == 0)
			return (1);
	}
	return (0);
}

/* cutover_mx_class - new, old, mixed or unknown; error without hosts */
enum cutover_class
cutover_mx_class(const char *const *hosts, size_t n,
    const struct strlist *new_mx, const struct strlist *old_mx)
{
	size_t i, nnew = 0, nold = 0;

	if (n == 0)
		return (MX_CLASS_ERROR);
	for (i = 0; i < n; i++) {
		if (strcmp(hosts[i], ".") == 0 || hosts[i][0] == '\0')
			return (MX_CLASS_ERROR);	/* null MX: no mail */
		if (cutover_host_matches(new_mx, hosts[i]))
			nnew++;
		else if (cutover_host_matches(old_mx, hosts[i]))
			nold++;
		else
			return (MX_CLASS_UNKNOWN);
	}
	if (nnew == n)
		return (MX_CLASS_NEW);
	if (nold == n)
		return (MX_CLASS_OLD);
	return (MX_CLASS_MIXED);
}

/* ---- the verdict ---------------------------------------------------------- */

/* fmt_dur - "45 s", "14 min", "3h05m", "24h", "2d04h" (hours up to 2 days) */
static const char *
fmt_dur(char *buf, size_t len, int64_t s)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, len, "%" PRId64 " s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRId64 " min", s / 60);
	else if (s < 2 * 86400 && s % 3600 / 60 == 0)
		snprintf(buf, len, "%" PRId64 "h", s / 3600);
	else if (s < 2 * 86400)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600,
		    s % 3600 / 60);
	else if (s % 86400 / 3600 == 0)
		snprintf(buf, len, "%" PRId64 "d", s / 86400);
	else
		snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", s / 86400,
		    s % 86400 / 3600);
	return (buf);
}

static void
say(struct cutover_verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* say - one outstanding sentence */
static void
say(struct cutover_verdict *v, const char *fmt, ...)
{
	va_list ap;

	v->safe = 0;
	if (v->n == CUTOVER_OUTSTANDING_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(v->outstanding[v->n], sizeof(v->outstanding[0]), fmt, ap);
	va_end(ap);
	v->n++;
}

static void
note(struct cutover_verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* note - one warning that does not block the verdict */
static void
note(struct cutover_verdict *v, const char *fmt, ...)
{
	va_list ap;

	if (v->nnotes == sizeof(v->notes) / sizeof(v->notes[0]))
		return;
	va_start(ap, fmt);
	vsnprintf(v->notes[v->nnotes], sizeof(v->notes[0]), fmt, ap);
	va_end(ap);
	v->nnotes++;
}

/* mx_list - "a.example, b.example" */
static const char *
mx_list(char *buf, size_t len, const struct cutover_answer *a)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < a->nmx; i++) {
		if (i > 0)
			strncat(buf, ", ", len - strlen(buf) - 1);
		strncat(buf, a->mx[i], len - strlen(buf) - 1);
	}
	return (buf);
}

/* verdict_dns - condition 1: every resolver new for quiet_period */
static void
verdict_dns(const struct cutover_record *r, time_t now, int64_t quiet,
    struct cutover_verdict *v)
{
	const struct cutover_answer *a;
	char d1[32], d2[32], hosts[200];
	size_t i, before = v->n;

	if (r->nanswers == 0) {
		say(v, "no resolver has answered for %s yet", r->domain);
		return;
	}
	for (i = 0; i < r->nanswers; i++) {
		a = &r->answers[i];
		switch (a->class) {
		case MX_CLASS_NEW:
			if (a->new_since == 0 || now - a->new_since < quiet)
				say(v, "resolver %s answered new only %s ago "
				    "(quiet period %s)", a->resolver,
				    fmt_dur(d1, sizeof(d1), a->new_since ?
				    now - a->new_since : 0),
				    fmt_dur(d2, sizeof(d2), quiet));
			break;
		case MX_CLASS_ERROR:
			say(v, "resolver %s: no answer for the MX of %s (%s), "
			    "asked %s ago", a->resolver, r->domain,
			    a->error[0] ? a->error : "error",
			    fmt_dur(d1, sizeof(d1), now - a->asked_at));
			break;
		case MX_CLASS_UNKNOWN:
			say(v, "resolver %s answers a host that is neither "
			    "new_mx nor old_mx: %s", a->resolver,
			    mx_list(hosts, sizeof(hosts), a));
			break;
		default:
			say(v, "resolver %s still answers %s MX: %s",
			    a->resolver, cutover_class_name(a->class),
			    mx_list(hosts, sizeof(hosts), a));
			break;
		}
	}
	/* The watcher knows how many resolvers are configured and sets
	 * all_new_since only when every one answers new. */
	if (v->n == before && r->all_new_since == 0)
		say(v, "not every resolver has answered new for %s yet",
		    r->domain);
	else if (v->n == before && now - r->all_new_since < quiet)
		say(v, "every resolver has answered new only for %s (quiet "
		    "period %s)", fmt_dur(d1, sizeof(d1), now -
		    r->all_new_since), fmt_dur(d2, sizeof(d2), quiet));
}

/* verdict_relay - conditions 2 and 3: no recent inbound, empty queue */
static void
verdict_relay(const struct cutover_record *r,
    const struct relay_domain_view *rv, time_t now, int64_t quiet,
    struct cutover_verdict *v)
{
	char d1[32], d2[32], what[128];
	uint64_t n;

	if (rv == NULL) {
		say(v, "the relay's records for %s cannot be read", r->domain);
		return;
	}
	if (rv->last_inbound != 0 && now - rv->last_inbound < quiet) {
		if (rv->arrivals_1h > 0)
			say(v, "relay received %" PRIu64 " message%s in the "
			    "last hour, the last from %s", rv->arrivals_1h,
			    rv->arrivals_1h == 1 ? "" : "s",
			    rv->last_client[0] ? rv->last_client : "?");
		else
			say(v, "relay received a message for %s %s ago, from "
			    "%s (quiet period %s)", r->domain,
			    fmt_dur(d1, sizeof(d1), now - rv->last_inbound),
			    rv->last_client[0] ? rv->last_client : "?",
			    fmt_dur(d2, sizeof(d2), quiet));
	}
	n = rv->queued + rv->deferred + rv->held;
	if (n > 0) {
		what[0] = '\0';
		if (rv->queued)
			snprintf(what + strlen(what), sizeof(what) -
			    strlen(what), "%" PRIu64 " queued", rv->queued);
		if (rv->deferred)
			snprintf(what + strlen(what), sizeof(what) -
			    strlen(what), "%s%" PRIu64 " deferred",
			    what[0] ? ", " : "", rv->deferred);
		if (rv->held)
			snprintf(what + strlen(what), sizeof(what) -
			    strlen(what), "%s%" PRIu64 " held",
			    what[0] ? ", " : "", rv->held);
		if (rv->oldest != 0)
			say(v, "%s message%s for %s in the relay's queue, "
			    "oldest %s", what, n == 1 ? "" : "s", r->domain,
			    fmt_dur(d1, sizeof(d1), now - rv->oldest));
		else
			say(v, "%s message%s for %s in the relay's queue",
			    what, n == 1 ? "" : "s", r->domain);
	}
}

/* verdict_sync - condition 4: a clean pass after the last inbound */
static void
verdict_sync(const struct cutover_record *r,
    const struct relay_domain_view *rv, time_t now,
    struct cutover_verdict *v)
{
	const struct cutover_sync *s = &r->sync;
	int64_t last_in = rv ? rv->last_inbound : 0, latest;
	int dirty;
	char d1[32];
	size_t i;

	/* The clean pass must also be the latest: a later pass that copied
	 * or missed something shows mail still reaching the old host. */
	if (s->clean_started != 0 && s->clean_started > last_in &&
	    s->clean_started == s->last_started)
		return;
	if (s->full_done_at == 0 && s->last_finished == 0 &&
	    s->running_since == 0) {
		say(v, "no pass yet: the first full pass of %s's accounts "
		    "has not run", r->domain);
		return;
	}
	if (s->full_done_at == 0)
		say(v, "the first full pass of %s's accounts has not "
		    "finished", r->domain);
	latest = s->running_since > s->last_started ? s->running_since :
	    s->last_started;
	if (last_in != 0 && latest <= last_in) {
		say(v, "no delta pass has started since the relay's last "
		    "inbound message (%s ago)", fmt_dur(d1, sizeof(d1),
		    now - last_in));
		return;
	}
	/* A pass started after the last inbound message: what did it do? */
	dirty = s->last_finished != 0 && s->last_started > last_in &&
	    (s->copied || s->missing || s->failed);
	if (dirty) {
		say(v, "the last pass (finished %s ago) copied %" PRIu64
		    ", found %" PRIu64 " missing, %" PRIu64 " failed: a pass "
		    "must find nothing", fmt_dur(d1, sizeof(d1),
		    now - s->last_finished), s->copied, s->missing, s->failed);
		for (i = 0; i < s->nfail; i++)
			say(v, "account %s: %" PRIu64 " message%s failed: %s",
			    s->fail[i].user, s->fail[i].failed,
			    s->fail[i].failed == 1 ? "" : "s",
			    s->fail[i].reason[0] ? s->fail[i].reason : "?");
	}
	if (s->running_since != 0 && s->running_since > last_in)
		say(v, "a pass is running (started %s ago); it must finish "
		    "with nothing to copy", fmt_dur(d1, sizeof(d1),
		    now - s->running_since));
	else if (!dirty)
		say(v, "no pass since the relay's last inbound message has "
		    "finished with nothing to copy for every account of %s",
		    r->domain);
}

/* cutover_verdict_eval - the four conditions, each with its evidence */
void
cutover_verdict_eval(const struct cutover_record *r,
    const struct relay_domain_view *rv, time_t now, int64_t quiet_period,
    struct cutover_verdict *v)
{
	const struct cutover_answer *a;
	size_t i;

	memset(v, 0, sizeof(*v));
	v->safe = 1;
	if (r->phase == CUTOVER_ROLLBACK)
		say(v, "%s is rolled back to the old host: its mail is "
		    "delivered there again", r->domain);
	verdict_dns(r, now, quiet_period, v);
	verdict_relay(r, rv, now, quiet_period, v);
	verdict_sync(r, rv, now, v);
	if (r->phase <= CUTOVER_SYNCED)
		for (i = 0; i < r->nanswers && v->nnotes < 4; i++) {
			a = &r->answers[i];
			if (a->class == MX_CLASS_ERROR ||
			    a->ttl <= CUTOVER_TTL_WARN)
				continue;
			note(v, "resolver %s reports an MX TTL of %" PRIu32 " s "
			    "for %s: lower it to %d s or less 24-48 h before "
			    "the switch", a->resolver, a->ttl, r->domain,
			    CUTOVER_TTL_WARN);
		}
}

/* ---- rendering ------------------------------------------------------------ */

/* cutover_format_rfc3339 - UTC, seconds */
const char *
cutover_format_rfc3339(char *buf, size_t len, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		str_copy(buf, "", len);
	return (buf);
}

/* json_time - an RFC 3339 string, null for 0 */
static void
json_time(struct json *j, const char *key, int64_t t)
{
	char buf[40];

	json_key(j, key);
	if (t == 0)
		json_null(j);
	else
		json_string(j, cutover_format_rfc3339(buf, sizeof(buf), t));
}

static void
json_relay(struct json *j, const struct cutover_domain_status *d)
{
	const struct relay_domain_view *rv = d->relay;

	json_key(j, "relay");
	json_object_begin(j);
	json_key(j, "running");
	if (d->relay_running < 0)
		json_null(j);
	else
		json_bool(j, d->relay_running);
	if (rv == NULL) {
		json_key(j, "error");
		json_string(j, d->relay_error ? d->relay_error : "unreadable");
	} else {
		json_time(j, "last_inbound", rv->last_inbound);
		json_key(j, "last_client");
		if (rv->last_client[0])
			json_string(j, rv->last_client);
		else
			json_null(j);
		json_key(j, "arrivals_1h");
		json_uint(j, rv->arrivals_1h);
		json_key(j, "arrivals_24h");
		json_uint(j, rv->arrivals_24h);
		json_key(j, "queue");
		json_object_begin(j);
		json_key(j, "queued");
		json_uint(j, rv->queued);
		json_key(j, "deferred");
		json_uint(j, rv->deferred);
		json_key(j, "held");
		json_uint(j, rv->held);
		json_time(j, "oldest", rv->oldest);
		json_object_end(j);
	}
	json_object_end(j);
}

static void
json_sync(struct json *j, const struct cutover_record *r)
{
	const struct cutover_sync *s = &r->sync;
	size_t i;

	json_key(j, "sync");
	json_object_begin(j);
	json_key(j, "accounts");
	json_uint(j, s->accounts);
	json_time(j, "full_pass_done_at", s->full_done_at);
	json_time(j, "running_since", s->running_since);
	json_key(j, "last_pass");
	if (s->last_finished == 0)
		json_null(j);
	else {
		json_object_begin(j);
		json_time(j, "started", s->last_started);
		json_time(j, "finished", s->last_finished);
		json_key(j, "copied");
		json_uint(j, s->copied);
		json_key(j, "missing");
		json_uint(j, s->missing);
		json_key(j, "failed");
		json_uint(j, s->failed);
		json_key(j, "failures");
		json_array_begin(j);
		for (i = 0; i < s->nfail; i++) {
			json_object_begin(j);
			json_key(j, "account");
			json_string(j, s->fail[i].user);
			json_key(j, "failed");
			json_uint(j, s->fail[i].failed);
			json_key(j, "reason");
			json_string(j, s->fail[i].reason);
			json_object_end(j);
		}
		json_array_end(j);
		json_object_end(j);
	}
	json_time(j, "clean_pass_started", s->clean_started);
	json_object_end(j);
}

/* json_domain - one element of "domains" */
static void
json_domain(struct json *j, const struct cutover_domain_status *d,
    const struct cutover_record *r, time_t now, int64_t quiet)
{
	struct cutover_verdict v;
	const struct cutover_answer *a;
	size_t i, k;

	cutover_verdict_eval(r, d->relay, now, quiet, &v);
	json_object_begin(j);
	json_key(j, "domain");
	json_string(j, d->domain);
	json_key(j, "phase");
	json_string(j, cutover_phase_name(r->phase));
	json_time(j, "phase_since", r->phase_since);
	json_key(j, "resolvers");
	json_array_begin(j);
	for (i = 0; i < r->nanswers; i++) {
		a = &r->answers[i];
		json_object_begin(j);
		json_key(j, "resolver");
		json_string(j, a->resolver);
		json_key(j, "mx");
		json_array_begin(j);
		for (k = 0; k < a->nmx; k++)
			json_string(j, a->mx[k]);
		json_array_end(j);
		json_key(j, "ttl");
		json_uint(j, a->ttl);
		json_key(j, "class");
		json_string(j, cutover_class_name(a->class));
		json_time(j, "asked_at", a->asked_at);
		if (a->class == MX_CLASS_ERROR) {
			json_key(j, "error");
			json_string(j, a->error);
		}
		json_time(j, "new_since", a->new_since);
		json_object_end(j);
	}
	json_array_end(j);
	json_time(j, "switch_seen_at", r->switch_seen_at);
	json_relay(j, d);
	json_sync(j, r);
	json_key(j, "verdict");
	json_string(j, v.safe ? "safe-to-retire" : "not-yet");
	json_key(j, "outstanding");
	json_array_begin(j);
	for (i = 0; i < v.n; i++)
		json_string(j, v.outstanding[i]);
	json_array_end(j);
	json_key(j, "notes");
	json_array_begin(j);
	for (i = 0; i < v.nnotes; i++)
		json_string(j, v.notes[i]);
	json_array_end(j);
	json_key(j, "history");
	json_array_begin(j);
	for (i = 0; i < r->nhist; i++) {
		json_object_begin(j);
		json_time(j, "at", r->hist[i].at);
		json_key(j, "from");
		json_string(j, cutover_phase_name(r->hist[i].from));
		json_key(j, "to");
		json_string(j, cutover_phase_name(r->hist[i].to));
		json_key(j, "why");
		json_string(j, r->hist[i].why);
		json_object_end(j);
	}
	json_array_end(j);
	json_object_end(j);
}

/* cutover_status_json - {"domains": [...]} */
void
cutover_status_json(struct json *j, const struct cutover_domain_status *d,
    size_t n, time_t now, int64_t quiet_period)
{
	cutover_status_json_more(j, d, n, now, quiet_period, NULL, NULL);
}

void
cutover_status_json_more(struct json *j, const struct cutover_domain_status *d,
    size_t n, time_t now, int64_t quiet_period, cutover_json_more_fn *more,
    void *more_arg)
{
	struct cutover_record *fresh;
	size_t i;

	if ((fresh = malloc(sizeof(*fresh))) == NULL) {
		/* json.h: a failure is remembered and reported by
		 * json_finish()/json_end(); mark it the same way. */
		j->failed = 1;
		return;
	}
	json_object_begin(j);
	json_key(j, "domains");
	json_array_begin(j);
	for (i = 0; i < n; i++) {
		if (d[i].rec == NULL)
			cutover_record_init(fresh, d[i].domain, 0);
		json_domain(j, &d[i], d[i].rec ? d[i].rec : fresh, now,
		    quiet_period);
	}
	json_array_end(j);
	if (more != NULL)
		more(j, more_arg);
	json_object_end(j);
	free(fresh);
}

/* pr - str_printable() into a static-size buffer */
static const char *
pr(char *buf, size_t len, const char *s)
{
	str_printable(buf, len, s, strlen(s));
	return (buf);
}

/* text_domain - one domain for a terminal */
static void
text_domain(FILE *fp, const struct cutover_domain_status *d,
    const struct cutover_record *r, time_t now, int64_t quiet)
{
	const struct cutover_domain_status *dd = d;
	const struct relay_domain_view *rv = dd->relay;
	const struct cutover_sync *s = &r->sync;
	const struct cutover_answer *a;
	struct cutover_verdict v;
	char b1[300], b2[600], t1[40], t2[40];
	size_t i;

	cutover_verdict_eval(r, rv, now, quiet, &v);
	fprintf(fp, "%s: %s", pr(b1, sizeof(b1), d->domain),
	    cutover_phase_name(r->phase));
	if (r->phase_since != 0)
		fprintf(fp, " since %s (%s ago)",
		    cutover_format_rfc3339(t1, sizeof(t1), r->phase_since),
		    fmt_dur(t2, sizeof(t2), now - r->phase_since));
	fprintf(fp, "\n");
	if (r->switch_seen_at != 0)
		fprintf(fp, "  switch first seen %s\n",
		    cutover_format_rfc3339(t1, sizeof(t1), r->switch_seen_at));
	fprintf(fp, "  resolvers:\n");
	if (r->nanswers == 0)
		fprintf(fp, "    (none has answered yet)\n");
	for (i = 0; i < r->nanswers; i++) {
		a = &r->answers[i];
		fprintf(fp, "    %-22s %-7s ", pr(b1, sizeof(b1), a->resolver),
		    cutover_class_name(a->class));
		if (a->class == MX_CLASS_ERROR)
			fprintf(fp, "%s", pr(b2, sizeof(b2), a->error));
		else
			fprintf(fp, "%s ttl %" PRIu32, pr(b2, sizeof(b2),
			    mx_list(b1, sizeof(b1), a)), a->ttl);
		fprintf(fp, " (asked %s ago)\n", fmt_dur(t1, sizeof(t1),
		    now - a->asked_at));
	}
	fprintf(fp, "  relay: %s", d->relay_running < 0 ? "" :
	    d->relay_running ? "running, " : "not running, ");
	if (rv == NULL)
		fprintf(fp, "unreadable: %s\n", pr(b1, sizeof(b1),
		    d->relay_error ? d->relay_error : "?"));
	else {
		if (rv->last_inbound)
			fprintf(fp, "last inbound %s ago from %s",
			    fmt_dur(t1, sizeof(t1), now - rv->last_inbound),
			    pr(b1, sizeof(b1), rv->last_client));
		else
			fprintf(fp, "no inbound message recorded");
		fprintf(fp, ", %" PRIu64 " in 24 h; queue: %" PRIu64
		    " queued, %" PRIu64 " deferred, %" PRIu64 " held\n",
		    rv->arrivals_24h, rv->queued, rv->deferred, rv->held);
	}
	fprintf(fp, "  sync: %" PRIu32 " account%s", s->accounts,
	    s->accounts == 1 ? "" : "s");
	if (s->full_done_at)
		fprintf(fp, ", full pass done %s", cutover_format_rfc3339(t1,
		    sizeof(t1), s->full_done_at));
	if (s->last_finished)
		fprintf(fp, "; last pass %s..%s copied %" PRIu64 " missing %"
		    PRIu64 " failed %" PRIu64, cutover_format_rfc3339(t1,
		    sizeof(t1), s->last_started), cutover_format_rfc3339(t2,
		    sizeof(t2), s->last_finished), s->copied, s->missing,
		    s->failed);
	else
		fprintf(fp, "; no pass yet");
	if (s->running_since)
		fprintf(fp, "; a pass is running since %s",
		    cutover_format_rfc3339(t1, sizeof(t1), s->running_since));
	fprintf(fp, "\n  verdict: %s\n", v.safe ?
	    "safe-to-retire (gap closed: the old host can go)" : "not-yet");
	for (i = 0; i < v.n; i++)
		fprintf(fp, "    - %s\n", pr(b2, sizeof(b2), v.outstanding[i]));
	for (i = 0; i < v.nnotes; i++)
		fprintf(fp, "  warning: %s\n", pr(b2, sizeof(b2), v.notes[i]));
	if (r->nhist > 0)
		fprintf(fp, "  history:\n");
	for (i = 0; i < r->nhist; i++)
		fprintf(fp, "    %s %s -> %s: %s\n", cutover_format_rfc3339(t1,
		    sizeof(t1), r->hist[i].at),
		    cutover_phase_name(r->hist[i].from),
		    cutover_phase_name(r->hist[i].to),
		    pr(b2, sizeof(b2), r->hist[i].why));
}

/* cutover_status_text - every domain, a blank line between */
int
cutover_status_text(FILE *fp, const struct cutover_domain_status *d,
    size_t n, time_t now, int64_t quiet_period)
{
	struct cutover_record *fresh;
	size_t i;

	if ((fresh = malloc(sizeof(*fresh))) == NULL)
		return (-1);
	if (n == 0)
		fprintf(fp, "no [cutover] domains configured\n");
	for (i = 0; i < n; i++) {
		if (i > 0)
			fprintf(fp, "\n");
		if (d[i].rec == NULL)
			cutover_record_init(fresh, d[i].domain, 0);
		text_domain(fp, &d[i], d[i].rec ? d[i].rec : fresh, now,
		    quiet_period);
	}
	free(fresh);
	return (ferror(fp) ? -1 : 0);
}

/* What status_txn() reads: one record per [cutover] domain. */
struct status_read {
	const struct config	*cfg;
	struct cutover_record	*recs;		/* one per domain */
	int			*have;		/* record found */
};

/* status_txn - every domain's record; may run again */
static int
status_txn(struct store_txn *tx, void *arg)
{
	struct status_read *sr = arg;
	size_t i;
	int rc;

	for (i = 0; i < sr->cfg->cutover.domains.count; i++) {
		rc = cutover_record_get(tx, sr->cfg->cutover.domains.items[i],
		    &sr->recs[i]);
		if (rc == -1)
			return (-1);
		sr->have[i] = rc == 0;
	}
	return (0);
}

/* cutover_status_render - read everything, render JSON or text */
int
cutover_status_render(struct store *st, const struct config *cfg,
    time_t now, int relay_running, struct json *j, FILE *fp, char *err,
    size_t errlen)
{
	return (cutover_status_render_more(st, cfg, now, relay_running, j, fp,
	    NULL, NULL, err, errlen));
}

int
cutover_status_render_more(struct store *st, const struct config *cfg,
    time_t now, int relay_running, struct json *j, FILE *fp,
    cutover_json_more_fn *more, void *more_arg, char *err, size_t errlen)
{
	size_t n = cfg->cutover.domains.count, i;
	struct cutover_domain_status *ds = NULL;
	struct relay_domain_view *rv = NULL;
	char (*rverr)[256] = NULL;
	struct status_read sr = { cfg, NULL, NULL };
	int rc = -1;

	if (n > 0 && ((sr.recs = calloc(n, sizeof(*sr.recs))) == NULL ||
	    (sr.have = calloc(n, sizeof(*sr.have))) == NULL ||
	    (ds = calloc(n, sizeof(*ds))) == NULL ||
	    (rv = calloc(n, sizeof(*rv))) == NULL ||
	    (rverr = calloc(n, sizeof(*rverr))) == NULL)) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	if (n > 0 && st != NULL &&
	    store_txn_run(st, 1, status_txn, &sr, err, errlen) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		ds[i].domain = cfg->cutover.domains.items[i];
		ds[i].rec = sr.have[i] ? &sr.recs[i] : NULL;
		ds[i].relay_running = relay_running;
		if (st == NULL)
			ds[i].relay = &rv[i];	/* no store: nothing seen */
		else if (relay_view_domain(st, ds[i].domain, now, &rv[i],
		    rverr[i], sizeof(rverr[i])) == 0)
			ds[i].relay = &rv[i];
		else
			ds[i].relay_error = rverr[i];
	}
	if (j != NULL)
		cutover_status_json_more(j, ds, n, now,
		    cfg->cutover.quiet_period, more, more_arg);
	if (fp != NULL && cutover_status_text(fp, ds, n, now,
	    cfg->cutover.quiet_period) == -1) {
		errbuf_set(err, errlen, "write error");
		goto out;
	}
	rc = 0;
out:
	free(sr.recs);
	free(sr.have);
	free(ds);
	free(rv);
	free(rverr);
	return (rc);
}
