/*
 * cutover.c - the cutover inside ferry-syncd (DESIGN.md §6/§8): the MX
 * watcher, the phase of every [cutover] domain, when catch-up passes
 * run, and the "safe to retire" verdict.  The record, the verdict and
 * the rendering are common/cutover_state.c's: ferryctl and the relay
 * show them too.
 *
 * The watcher.  One common/dns.c resolver per [cutover] resolvers entry
 * (its forwarder; none configured: one on /etc/resolv.conf, named
 * "system").  Every check_interval, the first at once, each is asked for
 * the MX of each domain.  An answer is classed (cutover_mx_class): `new`
 * when every host matches new_mx, `old` when every host matches old_mx,
 * `mixed`, `unknown` (a host matching neither: a resolver that lies) or
 * `error` (timeout, SERVFAIL, NXDOMAIN, no MX).  Only `new` counts as
 * the switch; `error` and `unknown` never move a phase forward.
 *
 * The phases, per domain, one function changes them (cutover_enter_
 * phase: one log line with the resolvers' answers, one history entry):
 *   presync        the first full pass of the domain's accounts has not
 *                  finished
 *   synced         it has, and every resolver answers old
 *   switching      at least one resolver answers new
 *   dual-reception every resolver answers new
 *   closed         the verdict holds (cutover_state.h: four conditions)
 *   rollback       with [cutover] rollback = yes: every resolver answers
 *                  old again after the switch was seen; the daemon runs
 *                  reverse passes (sync_reverse.h) for the domain's
 *                  accounts instead of forward ones, the relay delivers
 *                  its mail locally.  A `new` answer leaves it, straight
 *                  to switching or dual-reception; nothing else does,
 *                  and it is never closed from here.
 * Forward moves from synced go one phase at a time (each with its own
 * history entry, even when two happen on one answer); moves back go
 * straight: every resolver old again (a DNS rollback, log_warnx) goes
 * back to synced, and closed goes back to dual-reception when the
 * verdict stops holding (new inbound mail at the relay, say).  While
 * the relay's records cannot be read, nothing moves into or out of
 * closed.
 *
 * Catch-up.  The first `new` answer for a domain (since the last
 * rollback) calls hooks->request_pass at once; from then until the
 * domain is closed, cutover_pass_interval() answers catchup_interval.
 * cutover_dest_live() is true from the first `new` answer on: passes
 * then never delete on the destination and never overwrite its flags.
 *
 * Persistence.  Every change to a domain's record is written to LMDB
 * ("cutover", key: domain) before the function that made it returns,
 * in one write transaction, so a kill -9 loses at most the answer being
 * processed; the watcher asks again after a restart.  A record that does
 * not decode is replaced by a fresh one (presync), loudly: a closed
 * phase is never invented.
 *
 * Ownership: struct cutover borrows the event base, the store, the
 * config and the accounts (all must outlive it) and owns its resolvers,
 * timer, queries and records.  Threading: loop thread only.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "accounts.h"
#include "config.h"
#include "cutover.h"
#include "cutover_p.h"
#include "cutover_state.h"
#include "dns.h"
#include "log.h"
#include "metrics.h"
#include "relay_view.h"
#include "store.h"
#include "util.h"

/* One MX look-up: resolver res for domain dom. */
struct cutover_query {
	struct cutover	*c;
	size_t		 res, dom;
	uint64_t	 id;
	int		 pending;	/* a callback is still due */
};

struct cutover_resolver {
	char			 label[CUTOVER_LABEL_MAX + 1];
	struct dns_resolver	*dns;	/* owned; NULL without a watcher */
};

struct cutover_domain {
	char			 name[CUTOVER_DOMAIN_MAX + 1];
	struct cutover_record	*rec;	/* owned, always set */
	size_t			 naccounts;	/* accounts of the domain */
};

struct cutover {
	struct event_base	*base;	/* borrowed; NULL: no watcher */
	struct store		*st;	/* borrowed */
	const struct config	*cfg;	/* borrowed */
	const struct accounts	*acc;	/* borrowed */
	struct cutover_hooks	 hooks;
	struct cutover_resolver	 res[CUTOVER_RESOLVERS_MAX];
	size_t			 nres;
	struct cutover_domain	*dom;	/* owned, ndom */
	size_t			 ndom;
	int			*acct_dom;	/* owned: per account, the
						   domain index or -1 */
	struct cutover_query	*q;	/* owned: nres x ndom */
	struct event		*tick;	/* owned; NULL without a watcher */
};

/* ---- persistence ---------------------------------------------------------- */

struct rec_io {
	struct cutover_record	*rec;
	const char		*domain;
	int			 found;
};

static int
load_txn(struct store_txn *tx, void *arg)
{
	struct rec_io *io = arg;
	int rc;

	rc = cutover_record_get(tx, io->domain, io->rec);
	io->found = rc == 0;
	return (rc == STORE_NOTFOUND ? 0 : rc);
}

static int
save_txn(struct store_txn *tx, void *arg)
{
	struct rec_io *io = arg;

	return (cutover_record_put(tx, io->rec));
}

/* domain_save - write the domain's record now */
static int
domain_save(struct cutover *c, struct cutover_domain *d)
{
	struct rec_io io = { d->rec, d->name, 0 };
	char err[256];

	if (store_txn_run(c->st, 0, save_txn, &io, err, sizeof(err)) != 0) {
		log_warnx("cutover: %s: cannot save the cutover record: %s",
		    d->name, err);
		return (-1);
	}
	return (0);
}

/* ---- evidence in words ---------------------------------------------------- */

static void
textf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* textf - snprintf for sentences that may be cut to fit (they are
 * evidence for a human, bounded by the record's field) */
static void
textf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* answers_text - "127.0.0.1:5353 new (mx.new.example ttl 60), ..." */
static const char *
answers_text(const struct cutover_record *r, char *buf, size_t len)
{
	const struct cutover_answer *a;
	size_t i, k, n;

	buf[0] = '\0';
	if (r->nanswers == 0)
		str_copy(buf, "no resolver has answered", len);
	for (i = 0; i < r->nanswers; i++) {
		a = &r->answers[i];
		n = strlen(buf);
		snprintf(buf + n, len - n, "%s%s %s (", i ? "; " : "",
		    a->resolver, cutover_class_name(a->class));
		if (a->class == MX_CLASS_ERROR) {
			n = strlen(buf);
			snprintf(buf + n, len - n, "%s", a->error);
		}
		for (k = 0; k < a->nmx; k++) {
			n = strlen(buf);
			snprintf(buf + n, len - n, "%s%s", k ? " " : "",
			    a->mx[k]);
		}
		n = strlen(buf);
		if (a->class != MX_CLASS_ERROR)
			snprintf(buf + n, len - n, " ttl %" PRIu32 ")", a->ttl);
		else
			snprintf(buf + n, len - n, ")");
	}
	return (buf);
}

/* ---- phases --------------------------------------------------------------- */

/*
 * cutover_enter_phase - the one place a domain's phase changes: one log
 * line with the evidence, one history entry.  The caller saves.
 */
static void
cutover_enter_phase(struct cutover *c, struct cutover_domain *d,
    enum cutover_phase to, const char *why, time_t now)
{
	struct cutover_record *r = d->rec;
	enum cutover_phase from = r->phase;
	char ev[1024];

	(void)c;
	if (from == to)
		return;
	answers_text(r, ev, sizeof(ev));
	if (to < from || to == CUTOVER_ROLLBACK)
		log_warnx("cutover: %s: phase %s -> %s (BACK): %s; resolvers: %s",
		    d->name, cutover_phase_name(from), cutover_phase_name(to),
		    why, ev);
	else
		log_notice("cutover: %s: phase %s -> %s: %s; resolvers: %s",
		    d->name, cutover_phase_name(from), cutover_phase_name(to),
		    why, ev);
	cutover_record_history(r, now, from, to, why);
	r->phase = to;
	r->phase_since = (int64_t)now;
	if (to == CUTOVER_SYNCED && from > CUTOVER_SYNCED)
		r->switch_seen_at = 0;	/* a new switch gets a new catch-up */
}

/* What the resolvers say together. */
struct dns_summary {
	size_t	nnew, nold, nanswered;
	int	all_new, any_new, all_old;
};

static void
summarise(const struct cutover *c, const struct cutover_record *r,
    struct dns_summary *s)
{
	size_t i;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < r->nanswers; i++) {
		s->nanswered++;
		if (r->answers[i].class == MX_CLASS_NEW)
			s->nnew++;
		else if (r->answers[i].class == MX_CLASS_OLD)
			s->nold++;
	}
	s->any_new = s->nnew > 0;
	s->all_new = s->nanswered == c->nres && s->nnew == c->nres;
	s->all_old = s->nanswered == c->nres && s->nold == c->nres;
}

/*
 * target_phase - where the evidence points; *why says why.  relay_ok 0:
 * the relay's records could not be read, closed neither entered nor
 * left.
 */
static enum cutover_phase
target_phase(const struct cutover *c, const struct cutover_record *r,
    const struct cutover_verdict *v, int relay_ok, char *why, size_t len)
{
	struct dns_summary s;
	enum cutover_phase cur = r->phase;

	summarise(c, r, &s);
	if (r->sync.full_done_at == 0) {
		str_copy(why, "the first full pass has not finished", len);
		return (CUTOVER_PRESYNC);
	}
	if (!relay_ok && cur == CUTOVER_CLOSED) {
		str_copy(why, "the relay's records cannot be read", len);
		return (CUTOVER_CLOSED);
	}
	if (cur == CUTOVER_ROLLBACK && !s.any_new) {
		/* only a new answer ends a rollback: old, errors, lies */
		str_copy(why, "every resolver answers old: rolled back", len);
		return (CUTOVER_ROLLBACK);
	}
	if (relay_ok && v->safe && cur != CUTOVER_ROLLBACK) {
		str_copy(why, "verdict safe-to-retire: every resolver answers "
		    "new for the quiet period, no inbound mail at the relay "
		    "for the quiet period, nothing queued, and a pass after "
		    "the last inbound message found nothing to copy", len);
		return (CUTOVER_CLOSED);
	}
	if (s.all_new) {
		if (cur == CUTOVER_CLOSED)
			textf(why, len, "the verdict no longer holds: %s",
			    v->n ? v->outstanding[0] : "?");
		else
			str_copy(why, "every resolver answers new", len);
		return (CUTOVER_DUAL);
	}
	if (s.any_new) {
		snprintf(why, len, "%zu of %zu resolvers answer new", s.nnew,
		    c->nres);
		return (CUTOVER_SWITCHING);
	}
	if (s.all_old) {
		if (c->cfg->cutover.rollback && r->switch_seen_at != 0 &&
		    cur > CUTOVER_SYNCED) {
			str_copy(why, "every resolver answers old again after "
			    "the switch: rollback (mail that reached the new "
			    "host is copied back)", len);
			return (CUTOVER_ROLLBACK);
		}
		if (cur > CUTOVER_SYNCED)
			str_copy(why, "every resolver answers old again: the "
			    "DNS change was rolled back", len);
		else
			str_copy(why, "first full pass done, every resolver "
			    "answers old", len);
		return (CUTOVER_SYNCED);
	}
	/* Errors, lies, mixed answers: no move, except out of presync
	 * (never into a phase the answers do not support) and out of
	 * closed (the verdict no longer holds). */
	if (cur == CUTOVER_CLOSED) {
		textf(why, len, "the verdict no longer holds: %s",
		    v->n ? v->outstanding[0] : "?");
		return (CUTOVER_DUAL);
	}
	str_copy(why, "no clear answer", len);
	return (cur == CUTOVER_PRESYNC ? CUTOVER_PRESYNC : cur);
}

/* relay_evidence - the relay's view of the domain; 0 or -1 (logged) */
static int
relay_evidence(struct cutover *c, const char *domain, time_t now,
    struct relay_domain_view *rv)
{
	char err[256];
	int rc;

	memset(rv, 0, sizeof(*rv));
	if (c->hooks.relay_view != NULL)
		rc = c->hooks.relay_view(c->hooks.arg, domain, now, rv, err,
		    sizeof(err));
	else
		rc = relay_view_domain(c->st, domain, now, rv, err,
		    sizeof(err));
	if (rc == -1)
		log_warnx("cutover: %s: cannot read the relay's records: %s",
		    domain, err);
	return (rc == -1 ? -1 : 0);
}

/* domain_evaluate - move d toward the phase its evidence asks for */
static int
domain_evaluate(struct cutover *c, struct cutover_domain *d, time_t now,
    int force_save)
{
	struct relay_domain_view rv;
	struct cutover_verdict v;
	enum cutover_phase target, next, before = d->rec->phase;
	char why[CUTOVER_TEXT_MAX + 1];
	int relay_ok, guard;

	relay_ok = relay_evidence(c, d->name, now, &rv) == 0;
	cutover_verdict_eval(d->rec, relay_ok ? &rv : NULL, now,
	    c->cfg->cutover.quiet_period, &v);
	for (guard = 0; guard < CUTOVER_NPHASES; guard++) {
		target = target_phase(c, d->rec, &v, relay_ok, why,
		    sizeof(why));
		if (target == d->rec->phase)
			break;
		next = target;
		/* into and out of rollback: straight */
		if (target == CUTOVER_ROLLBACK ||
		    d->rec->phase == CUTOVER_ROLLBACK)
			next = target;
		else if (target > d->rec->phase &&
		    d->rec->phase >= CUTOVER_SYNCED)
			next = d->rec->phase + 1;
		else if (d->rec->phase == CUTOVER_PRESYNC &&
		    target == CUTOVER_CLOSED)
			next = CUTOVER_DUAL;
		if (next != target)
			str_copy(why, next == CUTOVER_SWITCHING ?
			    "at least one resolver answers new" :
			    "every resolver answers new", sizeof(why));
		cutover_enter_phase(c, d, next, why, now);
	}
	if (d->rec->phase != before || force_save)
		return (domain_save(c, d));
	return (0);
}

int
cutover_evaluate(struct cutover *c, size_t dom, time_t now)
{
	if (dom >= c->ndom)
		return (-1);
	return (domain_evaluate(c, &c->dom[dom], now, 0));
}

/* ---- answers -------------------------------------------------------------- */

/* answer_slot - the record's entry for resolver label, made if new */
static struct cutover_answer *
answer_slot(struct cutover_record *r, const char *label)
{
	struct cutover_answer *a;
	size_t i;

	for (i = 0; i < r->nanswers; i++)
		if (strcmp(r->answers[i].resolver, label) == 0)
			return (&r->answers[i]);
	if (r->nanswers == CUTOVER_RESOLVERS_MAX)
		return (NULL);
	a = &r->answers[r->nanswers++];
	memset(a, 0, sizeof(*a));
	str_copy(a->resolver, label, sizeof(a->resolver));
	return (a);
}

int
cutover_note_answer(struct cutover *c, size_t dom, size_t res, int status,
    const char *const *hosts, size_t nhosts, uint32_t ttl, const char *why,
    time_t now)
{
	struct cutover_domain *d;
	struct cutover_record *r;
	struct cutover_answer *a, prev;
	struct dns_summary s;
	char msg[CUTOVER_TEXT_MAX + 1];
	size_t i;

	if (dom >= c->ndom || res >= c->nres)
		return (-1);
	d = &c->dom[dom];
	r = d->rec;
	if ((a = answer_slot(r, c->res[res].label)) == NULL)
		return (-1);
	prev = *a;
	memset(a, 0, sizeof(*a));
	str_copy(a->resolver, c->res[res].label, sizeof(a->resolver));
	a->asked_at = (int64_t)now;
	if (status == DNS_OK) {
		a->class = cutover_mx_class(hosts, nhosts, &c->cfg->cutover.new_mx,
		    &c->cfg->cutover.old_mx);
		a->ttl = ttl;
		for (i = 0; i < nhosts && i < CUTOVER_MX_MAX; i++)
			str_copy(a->mx[i], hosts[i], sizeof(a->mx[i]));
		a->nmx = i;
		if (a->class == MX_CLASS_ERROR)
			str_copy(a->error, "null MX or no host", sizeof(a->error));
	} else {
		a->class = MX_CLASS_ERROR;
		snprintf(a->error, sizeof(a->error), "%s%s%s",
		    dns_status_name(status), why && *why ? ": " : "",
		    why ? why : "");
	}
	metrics_mx_answer((int)a->class);
	if (a->class == MX_CLASS_NEW)
		a->new_since = prev.class == MX_CLASS_NEW && prev.new_since ?
		    prev.new_since : (int64_t)now;
	if (a->class != prev.class || prev.asked_at == 0)
		log_info("cutover: %s: resolver %s answers %s%s%s", d->name,
		    a->resolver, cutover_class_name(a->class),
		    a->class == MX_CLASS_ERROR ? ": " : "",
		    a->class == MX_CLASS_ERROR ? a->error : "");
	if (a->class == MX_CLASS_UNKNOWN && prev.class != MX_CLASS_UNKNOWN)
		log_warnx("cutover: %s: resolver %s answers an MX host that "
		    "matches neither new_mx nor old_mx (%s): ignored", d->name,
		    a->resolver, a->nmx ? a->mx[0] : "?");
	if (r->phase <= CUTOVER_SYNCED && a->class != MX_CLASS_ERROR &&
	    a->ttl > CUTOVER_TTL_WARN &&
	    (prev.asked_at == 0 || prev.ttl <= CUTOVER_TTL_WARN))
		log_warnx("cutover: %s: resolver %s reports an MX TTL of %"
		    PRIu32 " s: lower it to %d s or less 24-48 h before the "
		    "switch", d->name, a->resolver, a->ttl, CUTOVER_TTL_WARN);

	/* every resolver new since the latest of their new_since */
	summarise(c, r, &s);
	r->all_new_since = 0;
	if (s.all_new)
		for (i = 0; i < r->nanswers; i++)
			if (r->answers[i].new_since > r->all_new_since)
				r->all_new_since = r->answers[i].new_since;

	/* the first new answer: the catch-up pass, at once */
	if (a->class == MX_CLASS_NEW && r->switch_seen_at == 0) {
		r->switch_seen_at = (int64_t)now;
		textf(msg, sizeof(msg), "cutover: resolver %s answers new "
		    "for %s", a->resolver, d->name);
		log_notice("%s: catch-up pass now", msg);
		if (c->hooks.request_pass != NULL)
			c->hooks.request_pass(c->hooks.arg, msg);
	}
	return (domain_evaluate(c, d, now, 1));
}

/* mx_cb - a look-up is done (DNS callback, on the loop) */
static void
mx_cb(int status, const struct dns_result *res, void *arg)
{
	struct cutover_query *q = arg;
	const char *hosts[CUTOVER_MX_MAX];
	size_t i, n = 0;

	q->pending = 0;
	if (status == DNS_OK && res->mx != NULL)
		for (i = 0; i < res->count && n < CUTOVER_MX_MAX; i++)
			hosts[n++] = res->mx[i].host;
	if (status == DNS_OK && n == 0)
		status = DNS_NODATA;
	(void)cutover_note_answer(q->c, q->dom, q->res, status, hosts, n,
	    res->ttl, res->why, time(NULL));
}

/* tick_cb - every check_interval: re-evaluate, then ask every resolver */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cutover *c = arg;
	struct cutover_query *q;
	time_t now = time(NULL);
	char err[256];
	size_t i;

	(void)fd;
	(void)what;
	/* the quiet period may elapse with no answer changing */
	for (i = 0; i < c->ndom; i++)
		(void)domain_evaluate(c, &c->dom[i], now, 0);
	for (i = 0; i < c->nres * c->ndom; i++) {
		q = &c->q[i];
		if (q->pending)
			continue;	/* the last one has not come back */
		if (dns_lookup(c->res[q->res].dns, c->dom[q->dom].name, DNS_MX,
		    mx_cb, q, &q->id, err, sizeof(err)) == -1) {
			(void)cutover_note_answer(c, q->dom, q->res,
			    DNS_TEMPFAIL, NULL, 0, 0, err, now);
			continue;
		}
		q->pending = 1;
	}
}

/* ---- the account -> domain map ------------------------------------------- */

/* domain_of - the part after the last '@', or NULL */
static const char *
domain_of(const char *user)
{
	const char *at = strrchr(user, '@');

	return (at != NULL && at[1] != '\0' ? at + 1 : NULL);
}

static int
domain_index(const struct config *cfg, const char *dom)
{
	size_t i;

	if (dom == NULL)
		return (-1);
	for (i = 0; i < cfg->cutover.domains.count; i++)
		if (strcasecmp(cfg->cutover.domains.items[i], dom) == 0)
			return ((int)i);
	return (-1);
}

int
cutover_account_domain(const struct config *cfg, const struct account *a)
{
	int i;

	if ((i = domain_index(cfg, domain_of(a->dst_user))) != -1)
		return (i);
	if ((i = domain_index(cfg, domain_of(a->src_user))) != -1)
		return (i);
	return (cfg->cutover.domains.count == 1 ? 0 : -1);
}

/* ---- life ----------------------------------------------------------------- */

/* domain_load - the persisted record, or a fresh one (saved) */
static int
domain_load(struct cutover *c, struct cutover_domain *d, time_t now,
    char *err, size_t errlen)
{
	struct rec_io io;
	char why[256];
	size_t i, k, keep;

	if ((d->rec = calloc(1, sizeof(*d->rec))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	io.rec = d->rec;
	io.domain = d->name;
	io.found = 0;
	if (store_txn_run(c->st, 1, load_txn, &io, why, sizeof(why)) != 0) {
		log_warnx("cutover: %s: the saved record is unreadable (%s): "
		    "starting again from presync", d->name, why);
		io.found = 0;
	}
	if (!io.found) {
		cutover_record_init(d->rec, d->name, now);
		return (domain_save(c, d) == -1 ?
		    (errbuf_set(err, errlen, "%s: cannot save the cutover "
		    "record", d->name), -1) : 0);
	}
	/* answers of resolvers no longer configured go */
	for (i = 0, keep = 0; i < d->rec->nanswers; i++) {
		for (k = 0; k < c->nres; k++)
			if (strcmp(d->rec->answers[i].resolver,
			    c->res[k].label) == 0)
				break;
		if (k == c->nres)
			continue;
		if (keep != i)
			d->rec->answers[keep] = d->rec->answers[i];
		keep++;
	}
	d->rec->nanswers = keep;
	d->rec->sync.running_since = 0;	/* that pass died with us */
	log_info("cutover: %s: phase %s since %" PRId64 " (from the store)",
	    d->name, cutover_phase_name(d->rec->phase), d->rec->phase_since);
	return (0);
}

int
cutover_new(struct cutover **cp, struct event_base *base, struct store *st,
    const struct config *cfg, const struct accounts *acc,
    const struct cutover_hooks *h, char *err, size_t errlen)
{
	struct cutover *c;
	struct dns_options opt;
	struct timeval tv;
	char fwd[CUTOVER_LABEL_MAX + 1];
	size_t i, k;
	time_t now = time(NULL);
	int di;

	*cp = NULL;
	if (cfg->cutover.domains.count == 0)
		return (0);
	if (cfg->cutover.resolvers.count > CUTOVER_RESOLVERS_MAX) {
		errbuf_set(err, errlen, "[cutover] resolvers: at most %d",
		    CUTOVER_RESOLVERS_MAX);
		return (-1);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto nomem;
	c->base = base;
	c->st = st;
	c->cfg = cfg;
	c->acc = acc;
	if (h != NULL)
		c->hooks = *h;
	c->nres = cfg->cutover.resolvers.count ? cfg->cutover.resolvers.count : 1;
	for (i = 0; i < c->nres; i++) {
		if (cfg->cutover.resolvers.count == 0)
			str_copy(c->res[i].label, CUTOVER_RESOLVER_SYSTEM,
			    sizeof(c->res[i].label));
		else
			hostport_format(&cfg->cutover.resolvers.items[i],
			    c->res[i].label, sizeof(c->res[i].label));
	}
	c->ndom = cfg->cutover.domains.count;
	if ((c->dom = calloc(c->ndom, sizeof(*c->dom))) == NULL ||
	    (c->q = calloc(c->ndom * c->nres, sizeof(*c->q))) == NULL)
		goto nomem;
	if (acc != NULL && acc->count > 0 &&
	    (c->acct_dom = calloc(acc->count, sizeof(*c->acct_dom))) == NULL)
		goto nomem;
	for (i = 0; acc != NULL && i < acc->count; i++) {
		di = cutover_account_domain(cfg, &acc->items[i]);
		c->acct_dom[i] = di;
		if (di >= 0)
			c->dom[di].naccounts++;
	}
	for (i = 0; i < c->ndom; i++) {
		if (strlen(cfg->cutover.domains.items[i]) > CUTOVER_DOMAIN_MAX) {
			errbuf_set(err, errlen, "[cutover] domains: name too long");
			goto fail;
		}
		str_copy(c->dom[i].name, cfg->cutover.domains.items[i],
		    sizeof(c->dom[i].name));
		str_lower(c->dom[i].name);
		for (k = 0; k < c->nres; k++) {
			c->q[i * c->nres + k].c = c;
			c->q[i * c->nres + k].dom = i;
			c->q[i * c->nres + k].res = k;
		}
		if (domain_load(c, &c->dom[i], now, err, errlen) == -1)
			goto fail;
		if (c->dom[i].naccounts == 0)
			log_warnx("cutover: %s: no account belongs to this "
			    "domain (dst_user, src_user)", c->dom[i].name);
	}
	if (base != NULL) {
		for (i = 0; i < c->nres; i++) {
			memset(&opt, 0, sizeof(opt));
			if (cfg->cutover.resolvers.count > 0) {
				str_copy(fwd, c->res[i].label, sizeof(fwd));
				opt.forwarder = fwd;
			}
			if (cfg->cutover.check_interval < 20)
				opt.timeout_ms = (int)cfg->cutover.check_interval * 500;
			if ((c->res[i].dns = dns_resolver_new(base, &opt, err,
			    errlen)) == NULL)
				goto fail;
		}
		if ((c->tick = event_new(base, -1, EV_PERSIST, tick_cb, c)) ==
		    NULL) {
			errbuf_set(err, errlen, "cannot create the MX timer");
			goto fail;
		}
		tv.tv_sec = cfg->cutover.check_interval;
		tv.tv_usec = 0;
		if (event_add(c->tick, &tv) == -1) {
			errbuf_set(err, errlen, "cannot arm the MX timer");
			goto fail;
		}
		event_active(c->tick, EV_TIMEOUT, 0);	/* the first at once */
		log_notice("cutover: watching the MX of %zu domain%s through "
		    "%zu resolver%s every %" PRId64 " s", c->ndom,
		    c->ndom == 1 ? "" : "s", c->nres, c->nres == 1 ? "" : "s",
		    cfg->cutover.check_interval);
	}
	*cp = c;
	return (0);
nomem:
	errbuf_set(err, errlen, "out of memory");
fail:
	cutover_free(&c);
	return (-1);
}

void
cutover_free(struct cutover **cp)
{
	struct cutover *c = *cp;
	size_t i;

	if (c == NULL)
		return;
	if (c->tick != NULL)
		event_free(c->tick);
	for (i = 0; c->q != NULL && i < c->nres * c->ndom; i++)
		if (c->q[i].pending && c->res[c->q[i].res].dns != NULL)
			(void)dns_cancel(c->res[c->q[i].res].dns, c->q[i].id);
	for (i = 0; i < c->nres; i++)
		dns_resolver_free(&c->res[i].dns);
	for (i = 0; c->dom != NULL && i < c->ndom; i++)
		free(c->dom[i].rec);
	free(c->dom);
	free(c->q);
	free(c->acct_dom);
	free(c);
	*cp = NULL;
}

/* ---- what the daemon asks and tells -------------------------------------- */

int64_t
cutover_pass_interval(const struct cutover *c, int64_t interval)
{
	size_t i;

	if (c == NULL)
		return (interval);
	for (i = 0; i < c->ndom; i++)
		if (c->dom[i].rec->phase != CUTOVER_CLOSED &&
		    (c->dom[i].rec->switch_seen_at != 0 ||
		    c->dom[i].rec->phase == CUTOVER_SWITCHING ||
		    c->dom[i].rec->phase == CUTOVER_DUAL))
			return (c->cfg->cutover.catchup_interval < interval ?
			    c->cfg->cutover.catchup_interval : interval);
	return (interval);
}

/* account_index - a's position in the accounts list, or -1 */
static long
account_index(const struct cutover *c, const struct account *a)
{
	if (c->acc == NULL || a < c->acc->items ||
	    a >= c->acc->items + c->acc->count)
		return (-1);
	return ((long)(a - c->acc->items));
}

int
cutover_dest_live(const struct cutover *c, const struct account *a)
{
	const struct cutover_record *r;
	long i;
	int di;

	if (c == NULL || a == NULL)
		return (0);
	if ((i = account_index(c, a)) >= 0)
		di = c->acct_dom[i];
	else
		di = cutover_account_domain(c->cfg, a);
	if (di < 0)
		return (0);
	r = c->dom[di].rec;
	return (r->phase >= CUTOVER_SWITCHING || r->switch_seen_at != 0);
}

void
cutover_pass_started(struct cutover *c, time_t started)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->ndom; i++) {
		c->dom[i].rec->sync.running_since = (int64_t)started;
		(void)domain_save(c, &c->dom[i]);
	}
}

/* domain_of_result - the domain index of one result row, or -1 */
static int
domain_of_result(const struct cutover *c, const struct cutover_acct_result *ar)
{
	const struct account *a;
	long i;

	if (c->acc == NULL || ar->user == NULL ||
	    (a = accounts_find(c->acc, ar->user)) == NULL ||
	    (i = account_index(c, a)) < 0)
		return (-1);
	return (c->acct_dom[i]);
}

void
cutover_pass_done(struct cutover *c, const struct cutover_pass_result *r)
{
	const struct cutover_acct_result *ar;
	struct cutover_sync *s;
	struct cutover_failure *f;
	uint64_t failed;
	size_t i, k, seen;
	int errors;

	if (c == NULL || r == NULL)
		return;
	for (k = 0; k < c->ndom; k++) {
		s = &c->dom[k].rec->sync;
		s->running_since = 0;
		seen = 0;
		errors = 0;
		for (i = 0; i < r->nacc; i++)
			if (domain_of_result(c, &r->acc[i]) == (int)k)
				seen++;
		if (seen == 0 && c->dom[k].naccounts == 0) {
			/* no account to copy: every pass is full and clean */
			if (s->full_done_at == 0)
				s->full_done_at = (int64_t)r->finished;
			s->last_started = (int64_t)r->started;
			s->last_finished = (int64_t)r->finished;
			s->copied = s->missing = s->failed = 0;
			s->accounts = 0;
			s->nfail = 0;
			if ((int64_t)r->started > s->clean_started)
				s->clean_started = (int64_t)r->started;
			(void)domain_evaluate(c, &c->dom[k], r->finished, 1);
			continue;
		}
		if (seen == 0) {
			/* the pass did not touch this domain (--account) */
			(void)domain_evaluate(c, &c->dom[k], r->finished, 1);
			continue;
		}
		s->last_started = (int64_t)r->started;
		s->last_finished = (int64_t)r->finished;
		s->copied = s->missing = s->failed = 0;
		s->accounts = (uint32_t)seen;
		s->nfail = 0;
		for (i = 0; i < r->nacc; i++) {
			ar = &r->acc[i];
			if (domain_of_result(c, ar) != (int)k)
				continue;
			failed = ar->failed;
			if (ar->error) {
				errors++;
				if (failed == 0)
					failed = 1;
			}
			s->copied += ar->copied;
			s->missing += ar->missing;
			s->failed += failed;
			if (failed > 0 && s->nfail < CUTOVER_FAIL_MAX) {
				f = &s->fail[s->nfail++];
				str_copy(f->user, ar->user, sizeof(f->user));
				f->failed = failed;
				str_copy(f->reason, ar->reason[0] ? ar->reason :
				    ar->error ? "the account could not be synced" :
				    "?", sizeof(f->reason));
			}
		}
		if (seen == c->dom[k].naccounts && errors == 0) {
			if (s->full_done_at == 0) {
				s->full_done_at = (int64_t)r->finished;
				log_notice("cutover: %s: first full pass of its "
				    "%zu account%s done", c->dom[k].name, seen,
				    seen == 1 ? "" : "s");
			}
			if (s->copied == 0 && s->missing == 0 &&
			    s->failed == 0 &&
			    (int64_t)r->started > s->clean_started)
				s->clean_started = (int64_t)r->started;
		}
		log_info("cutover: %s: pass done: %zu account%s, copied %"
		    PRIu64 ", missing %" PRIu64 ", failed %" PRIu64,
		    c->dom[k].name, seen, seen == 1 ? "" : "s", s->copied,
		    s->missing, s->failed);
		(void)domain_evaluate(c, &c->dom[k], r->finished, 1);
	}
}

/* ---- for the tests -------------------------------------------------------- */

const struct cutover_record *
cutover_domain_record(const struct cutover *c, size_t dom)
{
	return (c != NULL && dom < c->ndom ? c->dom[dom].rec : NULL);
}

size_t
cutover_ndomains(const struct cutover *c)
{
	return (c ? c->ndom : 0);
}

size_t
cutover_nresolvers(const struct cutover *c)
{
	return (c ? c->nres : 0);
}

int
cutover_in_rollback(const struct cutover *c, const struct account *a)
{
	long i;
	int di;

	if (c == NULL || a == NULL)
		return (0);
	if ((i = account_index(c, a)) >= 0)
		di = c->acct_dom[i];
	else
		di = cutover_account_domain(c->cfg, a);
	return (di >= 0 && c->dom[di].rec->phase == CUTOVER_ROLLBACK);
}

int64_t
cutover_switch_time(struct store *st, const struct config *cfg,
    const struct account *a)
{
	struct rec_io g;
	char err[256], dom[CUTOVER_DOMAIN_MAX + 1];
	int64_t t = 0;
	int di;

	if (st == NULL || (di = cutover_account_domain(cfg, a)) < 0)
		return (0);
	memset(&g, 0, sizeof(g));
	str_copy(dom, cfg->cutover.domains.items[di], sizeof(dom));
	str_lower(dom);
	g.domain = dom;
	if ((g.rec = calloc(1, sizeof(*g.rec))) == NULL)
		return (0);
	if (store_txn_run(st, 1, load_txn, &g, err, sizeof(err)) != 0)
		log_warnx("cutover: %s: cannot read the cutover record: %s",
		    g.domain, err);
	else if (g.found && g.rec->switch_seen_at != 0) {
		/* senders may have seen the new MX before the watcher did:
		 * up to a check_interval, and a DNS cache's worth */
		t = g.rec->switch_seen_at - cfg->cutover.check_interval -
		    CUTOVER_SWITCH_MARGIN;
		if (t < 1)
			t = 1;
	}
	free(g.rec);
	return (t);
}
