/*
 * sync_reverse.c - the reverse pass (sync_reverse.h): the forward
 * engine with the sides swapped, its folder plan the forward plan
 * inverted, its state apart, and the filter that keeps what came from
 * the old host or through the relay where it is.  The same filter, run
 * in the forward direction, keeps the reverse pass's copies from going
 * forward again.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "sync_p.h"
#include "sync_reverse.h"

/* ---- the state's account name -------------------------------------------- */

static const char *
state_user_of(const char *user, int reverse, char *buf, size_t len)
{
	if (!reverse)
		return (user);
	snprintf(buf, len, "%s%s", REVERSE_STATE_PREFIX, user);
	return (buf);
}

/*
 * reverse_state_user - the account name of a's folder state: the source
 * user, prefixed on a reverse pass so that the two directions of one
 * mailbox never share a record (buf: REVERSE_USER_MAX bytes)
 */
const char *
reverse_state_user(const struct acct *a, char *buf, size_t len)
{
	return (state_user_of(a->acc->src_user, a->p->o->reverse != NULL,
	    buf, len));
}

/* ---- the plan ------------------------------------------------------------ */

static char *
dup_or_null(const char *s)
{
	return (s != NULL ? strdup(s) : NULL);
}

/*
 * reverse_plan - src is the new host's listing, dst the old host's: the
 * forward plan (old onto new, with the [syncd] rules) is made as the
 * forward pass makes it and inverted: each old folder copied to a new
 * folder that exists becomes that new folder copied back to it.  Where
 * several old folders were merged into one, the first in the plan gets
 * the new folder's mail.  A folder only the new host has is planned as
 * a forward pass from the new host would plan it (created on the old
 * host, logged): its mail is not left behind.
 */
int
reverse_plan(struct acct *a, const struct folder_list *src,
    const struct folder_list *dst, char *err, size_t errlen)
{
	struct folder_plan *fwd = NULL, *rev = NULL, *own = NULL;
	char why[400];
	size_t i, k, w;

	if (folder_plan_build(a->p->o->rules, dst, src, 0, &fwd, why,
	    sizeof(why)) == -1 ||
	    folder_plan_build(a->p->o->rules, src, dst, 0, &own, why,
	    sizeof(why)) == -1) {
		folder_plan_free(&fwd);
		errbuf_set(err, errlen, "folder plan: %s", why);
		return (-1);
	}
	if ((rev = calloc(1, sizeof(*rev))) == NULL ||
	    (rev->maps = calloc(fwd->n + own->n + 1, sizeof(*rev->maps))) ==
	    NULL)
		goto oom;
	for (i = 0; i < fwd->n; i++) {
		const struct folder_map *f = &fwd->maps[i];
		struct folder_map *m;
		int taken = 0;

		if (f->skip != FOLDER_COPY || f->dst_name == NULL)
			continue;
		for (k = 0; k < rev->n; k++)
			if (strcmp(rev->maps[k].src_name, f->dst_name) == 0)
				taken = 1;
		if (taken)
			continue;
		for (w = 0; w < src->n; w++)
			if (src->v[w].name != NULL &&
			    strcmp(src->v[w].name, f->dst_name) == 0)
				break;
		if (w == src->n) {
			log_info("%s: reverse: %s is not on the destination: "
			    "nothing to copy back to %s", a->acc->src_user,
			    f->dst_path, f->src_path);
			continue;
		}
		m = &rev->maps[rev->n];
		m->src_index = w;
		m->src_name = strdup(f->dst_name);
		m->src_wire = dup_or_null(src->v[w].wire);
		m->src_path = strdup(f->dst_path);
		m->src_attrs = src->v[w].attrs;
		m->role = f->role;
		m->skip = FOLDER_COPY;
		m->how = FOLDER_HOW_MAP;
		m->dst_name = strdup(f->src_name);
		m->dst_path = strdup(f->src_path);
		m->dst_exists = 1;
		rev->n++;
		if (m->src_name == NULL || m->src_path == NULL ||
		    m->dst_name == NULL || m->dst_path == NULL ||
		    (src->v[w].wire != NULL && m->src_wire == NULL))
			goto oom;
		rev->ncopy++;
	}
	/* A folder the users made on the new host: planned as a forward
	 * pass would plan it from the new host onto the old one (created
	 * there), so that its mail is not left behind either. */
	for (i = 0; i < own->n; i++) {
		struct folder_map *f = &own->maps[i];
		int planned = 0;

		if (f->skip != FOLDER_COPY || f->src_name == NULL ||
		    f->dst_name == NULL)
			continue;
		for (k = 0; k < rev->n && !planned; k++)
			planned = strcmp(rev->maps[k].src_name,
			    f->src_name) == 0;
		if (planned)
			continue;
		log_info("%s: reverse: folder %s is only on the destination: "
		    "copied back to %s%s", a->acc->src_user, f->src_path,
		    f->dst_path, f->dst_exists ? "" : " (created)");
		rev->maps[rev->n] = *f;		/* the strings move */
		f->src_name = f->src_wire = f->src_path = NULL;
		f->dst_name = f->dst_path = f->conflict_with = NULL;
		if (rev->maps[rev->n].create)
			rev->ncreate++;
		rev->n++;
		rev->ncopy++;
	}
	folder_plan_free(&own);
	a->plan = rev;
	a->fwd_plan = fwd;
	return (0);
oom:
	folder_plan_free(&own);
	folder_plan_free(&rev);
	folder_plan_free(&fwd);
	errbuf_set(err, errlen, "out of memory");
	return (-1);
}

/* ---- the filter ---------------------------------------------------------- */

/* one message of the other direction's map: its UID on this pass's
 * source, and the message it is on this pass's destination */
struct other {
	uint64_t	 uid;		/* this pass's source UID */
	uint64_t	 peer_uid;	/* this pass's destination UID */
	uint64_t	 peer_validity;
};

static int
other_cmp(const void *x, const void *y)
{
	const struct other *a = x, *b = y;

	return (a->uid < b->uid ? -1 : a->uid > b->uid);
}

struct others {
	struct other	*v;
	size_t		 n, alloc;
};

static int
others_add(struct others *o, uint64_t uid, uint64_t peer, uint64_t pv)
{
	if (o->n == o->alloc) {
		size_t na = o->alloc ? o->alloc * 2 : 64;
		void *p = reallocarray(o->v, na, sizeof(*o->v));

		if (p == NULL)
			return (-1);
		o->v = p;
		o->alloc = na;
	}
	o->v[o->n].uid = uid;
	o->v[o->n].peer_uid = peer;
	o->v[o->n].peer_validity = pv;
	o->n++;
	return (0);
}

/*
 * load_other - the entries of the other direction's folder (user,
 * path) whose destination is this pass's source folder (validity):
 * what it copied and what it found there already (the same message on
 * both hosts, matched by content key)
 */
static int
load_other(struct fctx *fc, const char *user, const char *path,
    uint64_t validity, struct others *out)
{
	struct state_key k;
	struct state_folder sf;
	struct state_map m;
	char err[256];
	uint64_t pv = 0;
	size_t i;
	int rc = 0;

	if (state_folder_key(&k, user, path, err, sizeof(err)) == -1)
		return (0);	/* no such key can have been written */
	if (state_folder_get(fc->st, &k, &sf, err, sizeof(err)) == 0)
		pv = sf.src_uidvalidity;
	memset(&m, 0, sizeof(m));
	if (state_map_load(fc->st, &k, &m, err, sizeof(err)) == -1) {
		snprintf(fc->err, sizeof(fc->err), "state: %s", err);
		return (-1);
	}
	for (i = 0; i < m.n && rc == 0; i++) {
		const struct state_map_entry *e = &m.v[i];

		if (e->dst_uid == 0 || e->dst_uidvalidity != validity)
			continue;
		if (others_add(out, e->dst_uid, e->src_uid, pv) == -1) {
			snprintf(fc->err, sizeof(fc->err), "out of memory");
			rc = -1;
		}
	}
	state_map_free(&m);
	return (rc);
}

/* the other direction's messages in this folder, sorted by uid */
static int
gather(struct fctx *fc, struct others *o)
{
	const struct acct *a = fc->a;
	const struct folder_map *jm = fc->j->m;
	uint64_t validity = fc->smb.uidvalidity;
	char name[REVERSE_USER_MAX];
	size_t i;

	if (a->p->o->reverse != NULL) {
		/* every old folder the forward pass copies into this one:
		 * whatever it put here */
		for (i = 0; a->fwd_plan != NULL && i < a->fwd_plan->n; i++) {
			const struct folder_map *f = &a->fwd_plan->maps[i];

			if (f->skip != FOLDER_COPY || f->dst_name == NULL ||
			    strcmp(f->dst_name, jm->src_name) != 0)
				continue;
			if (load_other(fc, a->acc->dst_user, f->src_path,
			    validity, o) == -1)
				return (-1);
		}
	} else if (jm->dst_path != NULL && load_other(fc, state_user_of(
	    a->acc->dst_user, 1, name, sizeof(name)), jm->dst_path, validity,
	    o) == -1)
		return (-1);
	sort_n(o->v, o->n, sizeof(*o->v), other_cmp);
	return (0);
}

/*
 * reverse_skip - before the messages not in the map are copied: those
 * the other direction's map says came from this pass's destination are
 * mapped (origin "matched": found there) and not copied; on a reverse
 * pass, those older than the account's since are passed over for this
 * pass only (done, listed in the report as policy, and the folder stays
 * incomplete, so the next pass looks at them again)
 */
int
reverse_skip(struct fctx *fc, struct smsgv *msgs)
{
	const struct sync_reverse *rv = fc->a->p->o->reverse;
	struct others o;
	int64_t since = 0;
	uint64_t skipped = 0, old = 0;
	size_t i;
	int rc = 0;

	if (fc->st == NULL || fc->dry || msgs->n == 0)
		return (0);
	if (rv != NULL && rv->swapped != NULL && rv->since_v != NULL)
		since = rv->since_v[fc->a->acc - rv->swapped->items];
	memset(&o, 0, sizeof(o));
	if (gather(fc, &o) == -1) {
		free(o.v);
		return (-1);
	}
	for (i = 0; i < msgs->n && rc == 0; i++) {
		struct smsg *s = &msgs->v[i];
		struct other key, *hit;
		struct state_map_entry e;

		if (s->in_map)
			continue;
		key.uid = s->uid;
		hit = find_n(&key, o.v, o.n, sizeof(key), other_cmp);
		if (hit != NULL) {
			memset(&e, 0, sizeof(e));
			e.src_uid = s->uid;
			e.dst_uid = hit->peer_uid;
			e.dst_uidvalidity = hit->peer_validity;
			e.size = s->size;
			e.internaldate = s->idate;
			e.origin = STATE_ORIGIN_MATCHED;
			memcpy(e.ckey, s->ckey, STATE_CKEY_LEN);
			e.flags = s->flags;
			s->in_map = 1;
			skipped++;
			rc = fc_pend_add(fc, &e, 1);
			continue;
		}
		if (rv != NULL && since > 0 && s->idate < since) {
			/* not recorded: see above; the report lists it */
			fc_rf_lock(fc);
			report_problem(fc->rf, REPORT_POLICY, s->uid, NULL,
			    s->size, "older than --since: not copied by this "
			    "pass");
			fc_rf_unlock(fc);
			s->done = 1;
			fc->problems++;
			old++;
		}
	}
	free(o.v);
	if (skipped > 0)
		log_info("%s: %s: %" PRIu64 " message(s) not copied: %s",
		    fc->a->acc->src_user, fc->j->m->src_path, skipped,
		    rv != NULL ? "ferry-syncd copied them from the old host" :
		    "the reverse pass copied them from the new host");
	if (old > 0)
		log_info("%s: %s: %" PRIu64 " message(s) older than --since "
		    "passed over", fc->a->acc->src_user, fc->j->m->src_path,
		    old);
	return (rc);
}

/* ---- the pass ------------------------------------------------------------ */

static int
always_live(void *arg, const struct account *a)
{
	(void)arg;
	(void)a;
	return (1);
}

int
reverse_pass_run(const struct sync_pass_opts *o, struct report *r,
    struct sync_progress *p, char *err, size_t errlen)
{
	struct sync_pass_opts ro;
	struct sync_reverse rv;
	struct config cfg;
	struct accounts sw;
	int64_t *since_v = NULL;
	size_t i;
	int rc;

	if (o->reverse == NULL) {
		errbuf_set(err, errlen, "reverse pass without its options");
		return (-1);
	}
	if (o->cfg->syncd.source.kind != CFG_IMAP_KIND_IMAP) {
		errbuf_set(err, errlen, "--reverse: the source is an archive, "
		    "not a server: there is nothing to copy back to");
		return (-1);
	}
	memset(&sw, 0, sizeof(sw));
	sw.path = o->accounts->path;
	sw.items = calloc(o->accounts->count ? o->accounts->count : 1,
	    sizeof(*sw.items));
	since_v = calloc(o->accounts->count ? o->accounts->count : 1,
	    sizeof(*since_v));
	if (sw.items == NULL || since_v == NULL) {
		free(sw.items);
		free(since_v);
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	for (i = 0; i < o->accounts->count; i++) {
		const struct account *a = &o->accounts->items[i];
		struct account *s = &sw.items[sw.count];
		int64_t since = o->reverse->since;

		if (o->only_account != NULL &&
		    strcasecmp(o->only_account, a->src_user) != 0)
			continue;
		if (o->reverse->since_fn != NULL &&
		    (since = o->reverse->since_fn(o->reverse->since_arg, a)) <
		    0)
			continue;
		*s = *a;
		s->src_user = a->dst_user;
		s->src = a->dst;
		s->dst_user = a->src_user;
		s->dst = a->src;
		since_v[sw.count] = since;
		sw.count++;
	}
	if (sw.count == 0) {
		free(sw.items);
		free(since_v);
		errbuf_set(err, errlen, "no account %s in %s to copy back",
		    o->only_account ? o->only_account : "",
		    o->accounts->path);
		return (-1);
	}
	cfg = *o->cfg;
	cfg.syncd.source = o->cfg->syncd.destination;
	cfg.syncd.destination = o->cfg->syncd.source;
	cfg.syncd.delete = 0;
	rv = *o->reverse;
	rv.swapped = &sw;
	rv.since_v = since_v;
	ro = *o;
	ro.cfg = &cfg;
	ro.accounts = &sw;
	ro.only_account = NULL;
	ro.src_ctx = o->dst_ctx;
	ro.dst_ctx = o->src_ctx;
	ro.keep = NULL;		/* kept pairs face the other way */
	ro.dest_live = always_live;
	ro.dest_live_arg = NULL;
	ro.reverse = &rv;
	ro.selects = NULL;	/* since_fn chose the accounts */
	ro.selects_arg = NULL;
	rc = sync_pass_run(&ro, r, p, err, errlen);
	free(sw.items);
	free(since_v);
	return (rc);
}

/* ---- --since ------------------------------------------------------------- */

/* digits - exactly n decimal digits at *p, advanced; -1 otherwise */
static int
digits(const char **p, int n, int *out)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return (-1);
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return (0);
}

int
reverse_parse_since(const char *s, int64_t *out, char *err, size_t errlen)
{
	const char *p = s;
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31 };
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (digits(&p, 4, &y) == -1 || *p++ != '-' ||
	    digits(&p, 2, &mo) == -1 || *p++ != '-' ||
	    digits(&p, 2, &d) == -1)
		goto bad;
	if (*p == 'T' || *p == ' ') {
		p++;
		if (digits(&p, 2, &h) == -1 || *p++ != ':' ||
		    digits(&p, 2, &mi) == -1)
			goto bad;
		if (*p == ':' && (p++, digits(&p, 2, &sec) == -1))
			goto bad;
		if (*p == 'Z')
			p++;
	}
	if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] || (mo == 2 && d == 29 && (y % 4 != 0 ||
	    (y % 100 == 0 && y % 400 != 0))) || h > 23 || mi > 59 ||
	    sec > 59)
		goto bad;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1)
		goto bad;
	*out = (int64_t)t;
	return (0);
bad:
	errbuf_set(err, errlen, "--since: \"%s\" is not a date: want "
	    "YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z] (UTC)", s);
	return (-1);
}
