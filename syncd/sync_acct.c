/*
 * sync_acct.c - an account's set-up on its first connection pair:
 * connect both sides, NAMESPACE and LIST (with LIST-STATUS when offered,
 * else one STATUS a folder; LSUB without LIST-EXTENDED), the folder plan
 * (folders.h), CREATE (with special-use) and SUBSCRIBE on the
 * destination pipelined, and the folder jobs the workers take, biggest
 * first.
 *
 * SECURITY: folder names from either server reach the planner and the
 * client's encoders only (folders.h, imap_client.h).
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "sync_p.h"

struct listing {
	struct wres	 r;		/* first: wres_done fills it */
	struct imap_cmd	*queued;	/* the LIST, until done */
	struct folder_info *v;
	size_t		 n, alloc;
	char		 sep;
	int		 sep_set;
	struct imap_status_info *st;
	char		**st_names;
	size_t		 nst, stalloc;
	int		 oom;
};

static void
listing_free(struct listing *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free((char *)l->v[i].name);
		free((char *)l->v[i].wire);
	}
	for (i = 0; i < l->nst; i++)
		free(l->st_names[i]);
	free(l->v);
	free(l->st);
	free(l->st_names);
	memset(l, 0, sizeof(*l));
}

static void
list_mailbox(struct imap_client *c, const struct imap_list_entry *e,
    void *arg)
{
	struct listing *l = arg;
	struct folder_info *fi;

	(void)c;
	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 32;
		void *p = reallocarray(l->v, na, sizeof(*l->v));

		if (p == NULL) {
			l->oom = 1;
			return;
		}
		l->v = p;
		l->alloc = na;
	}
	fi = &l->v[l->n];
	fi->name = e->name_utf8 && !e->bad ? strdup(e->name_utf8) : NULL;
	fi->wire = strdup(e->name);
	fi->attrs = e->bad ? IMAP_MBOX_UNPARSED : e->attrs;
	if (fi->wire == NULL || (e->name_utf8 && fi->name == NULL)) {
		free((char *)fi->name);
		free((char *)fi->wire);
		l->oom = 1;
		return;
	}
	if (!l->sep_set && e->delim) {
		l->sep = e->delim;
		l->sep_set = 1;
	}
	l->n++;
}

static void
list_status(struct imap_client *c, const struct imap_status_info *st,
    void *arg)
{
	struct listing *l = arg;

	(void)c;
	if (l->nst == l->stalloc) {
		size_t na = l->stalloc ? l->stalloc * 2 : 32;
		void *p = reallocarray(l->st, na, sizeof(*l->st));
		void *q;

		if (p == NULL) {
			l->oom = 1;
			return;
		}
		l->st = p;
		q = reallocarray(l->st_names, na, sizeof(*l->st_names));
		if (q == NULL) {
			l->oom = 1;
			return;
		}
		l->st_names = q;
		l->stalloc = na;
	}
	if ((l->st_names[l->nst] = strdup(st->mailbox)) == NULL) {
		l->oom = 1;
		return;
	}
	l->st[l->nst] = *st;
	l->st[l->nst].mailbox = l->st_names[l->nst];
	l->nst++;
}

static const struct imap_status_info *
listing_status(const struct listing *l, const char *wire)
{
	size_t i;

	for (i = 0; i < l->nst; i++)
		if (strcmp(l->st_names[i], wire) == 0)
			return (&l->st[i]);
	return (NULL);
}

#define STATUS_ITEMS	(IMAP_STATUS_MESSAGES | IMAP_STATUS_UIDNEXT | \
	IMAP_STATUS_UIDVALIDITY | IMAP_STATUS_HIGHESTMODSEQ)

static const struct imap_list_cbs list_cbs = { list_mailbox, list_status };

static unsigned
list_opts(struct imap_client *c)
{
	unsigned opts = IMAP_LIST_SPECIAL_USE | IMAP_LIST_RETURN_SUBSCRIBED;

	if (!imap_client_has_cap(c, IMAP_CAP_LIST_EXTENDED))
		opts &= ~(unsigned)IMAP_LIST_RETURN_SUBSCRIBED;
	if (imap_client_has_cap(c, IMAP_CAP_LIST_STATUS))
		opts |= IMAP_LIST_STATUS;
	return (opts);
}

/* list_start - queue the LIST (both sides' LISTs then overlap) */
static void
list_start(struct worker *w, int i, struct listing *l)
{
	struct imap_client *c = w->s[i].c;
	unsigned opts = list_opts(c);

	l->queued = imap_client_list(c, "", "*", opts,
	    (opts & IMAP_LIST_STATUS) ? STATUS_ITEMS : 0, &list_cbs, wres_done,
	    l);
}

/* list_side - LIST (with statuses when LIST-STATUS), subscriptions */
static int
list_side(struct worker *w, int i, struct listing *l, char *err,
    size_t errlen)
{
	static const struct imap_list_cbs cbs = { list_mailbox, list_status };
	struct imap_client *c = w->s[i].c;
	unsigned opts = list_opts(c);
	char why[400];

	if (side_wait(w, l->queued, &l->r) == -1 || l->oom) {
		wres_reason(&l->r, why, sizeof(why));
		errbuf_set(err, errlen, "%s LIST: %s", side_name[i],
		    l->oom ? "out of memory" : why);
		return (-1);
	}
	/* subscriptions without LIST-EXTENDED: LSUB */
	if (!(opts & IMAP_LIST_RETURN_SUBSCRIBED)) {
		struct listing sub;
		size_t a, b;

		memset(&sub, 0, sizeof(sub));
		if (side_wait(w, imap_client_lsub(c, "", "*", &cbs, wres_done,
		    &sub), &sub.r) == 0)
			for (a = 0; a < sub.n; a++)
				for (b = 0; b < l->n; b++)
					if (strcmp(sub.v[a].wire,
					    l->v[b].wire) == 0)
						l->v[b].attrs |=
						    IMAP_MBOX_SUBSCRIBED;
		listing_free(&sub);
	}
	return (0);
}

/* namespace prefix: taken from NAMESPACE via a dedicated callback */
struct nsres {
	int		 done;
	char		 prefix[256];
	char		 delim;
};

static void
ns_done(struct imap_client *c, const struct imap_result *res, void *arg)
{
	struct nsres *n = arg;

	(void)c;
	n->done = 1;
	if (res->status == IMAP_OK && res->ns_prefix != NULL) {
		snprintf(n->prefix, sizeof(n->prefix), "%s", res->ns_prefix);
		n->delim = res->ns_delim;
	}
}

/* ns_start - queue NAMESPACE (when offered); ns_finish takes the answer */
static void
ns_start(struct worker *w, int i, struct nsres *n)
{
	memset(n, 0, sizeof(*n));
	if (!imap_client_has_cap(w->s[i].c, IMAP_CAP_NAMESPACE) ||
	    imap_client_namespace(w->s[i].c, ns_done, n) == NULL)
		n->done = 1;
}

static void
ns_finish(struct worker *w, int i, struct nsres *n, char *prefix,
    size_t plen, char *delim)
{
	side_loop_until(w, &n->done);
	prefix[0] = '\0';
	*delim = n->delim;
	/* the prefix is on the wire: decode it to UTF-8 for the planner */
	if (n->prefix[0] != '\0' && imap_client_mailbox_decode(w->s[i].c,
	    n->prefix, prefix, plen, NULL, 0) == -1)
		snprintf(prefix, plen, "%s", n->prefix);
}

static const char *
special_flag(unsigned bits)
{
	if (bits & IMAP_MBOX_SENT)
		return ("\\Sent");
	if (bits & IMAP_MBOX_DRAFTS)
		return ("\\Drafts");
	if (bits & IMAP_MBOX_TRASH)
		return ("\\Trash");
	if (bits & IMAP_MBOX_JUNK)
		return ("\\Junk");
	if (bits & IMAP_MBOX_ARCHIVE)
		return ("\\Archive");
	return (NULL);
}

static int
fjob_cmp(const void *x, const void *y)
{
	const struct fjob *a = x, *b = y;
	uint64_t na = a->have_sst ? a->sst.messages : 0;
	uint64_t nb = b->have_sst ? b->sst.messages : 0;

	if (na != nb)
		return (na > nb ? -1 : 1);
	return (strcmp(a->src_wire, b->src_wire));
}

/* one side's NAMESPACE and LIST, queued as soon as that side is ready */
struct side_listing {
	struct nsres	 ns;
	struct listing	 l;
	int		 queued;
};

static void
listing_begin(struct worker *w, int i, void *arg)
{
	struct side_listing *sl = &((struct side_listing *)arg)[i];

	if (sl->queued || w->s[i].c == NULL || w->s[i].state != 1)
		return;
	sl->queued = 1;
	ns_start(w, i, &sl->ns);
	list_start(w, i, &sl->l);
}

/*
 * listing_drain - wait for both sides' NAMESPACE and LIST to be done
 * (on a side that failed they are cancelled, so done) and free what
 * they listed
 */
static void
listing_drain(struct worker *w, struct side_listing sl[2])
{
	size_t i;

	for (i = 0; i < 2; i++) {
		if (sl[i].queued) {
			side_loop_until(w, &sl[i].ns.done);
			if (sl[i].l.queued != NULL)
				side_loop_until(w, &sl[i].l.r.done);
		}
		listing_free(&sl[i].l);
	}
}

/*
 * acct_list - both sides connected (each side's NAMESPACE and LIST
 * queued as soon as it is ready), the destination's capabilities noted,
 * and the folder plan made from both listings
 */
static int
acct_list(struct worker *w, struct side_listing *sl, char *err,
    size_t errlen)
{
	struct acct *a = w->a;
	struct listing *ls = &sl[SRC].l, *ld = &sl[DST].l;
	struct folder_list fs, fd;
	char sprefix[256], dprefix[256], sdelim = 0, ddelim = 0, why[400];
	int src_listed = 0;

	/*
	 * The source alone first when the destination may stay unchecked
	 * (sync_skip.c): unchanged since the last complete pass, the
	 * destination is not logged in to at all.
	 */
	if (a->may_skip) {
		if (side_ensure(w, SRC, err, errlen) == -1)
			return (-1);
		listing_begin(w, SRC, sl);
		ns_finish(w, SRC, &sl[SRC].ns, sprefix, sizeof(sprefix),
		    &sdelim);
		if (list_side(w, SRC, ls, err, errlen) == -1)
			return (-1);
		src_listed = 1;
		a->src_condstore = imap_client_has_cap(w->s[SRC].c,
		    IMAP_CAP_CONDSTORE);
		if (skip_snap(a, ls->v, ls->n, ls->st, ls->nst,
		    a->src_condstore) == 0 && skip_source_unchanged(a))
			return (1);
	}
	sides_connect(w, listing_begin, sl);
	if (side_ensure(w, SRC, err, errlen) == -1 ||
	    side_ensure(w, DST, err, errlen) == -1)
		return (-1);
	a->src_condstore = imap_client_has_cap(w->s[SRC].c,
	    IMAP_CAP_CONDSTORE);
	a->dst_multi = imap_client_has_cap(w->s[DST].c, IMAP_CAP_MULTIAPPEND);
	a->dst_uidplus = imap_client_has_cap(w->s[DST].c, IMAP_CAP_UIDPLUS);
	a->dst_condstore = imap_client_has_cap(w->s[DST].c,
	    IMAP_CAP_CONDSTORE);
	a->dst_appendlimit = imap_client_appendlimit(w->s[DST].c);
	/* a side that needed a reconnect has not listed yet */
	listing_begin(w, SRC, sl);
	listing_begin(w, DST, sl);
	if (!src_listed)
		ns_finish(w, SRC, &sl[SRC].ns, sprefix, sizeof(sprefix),
		    &sdelim);
	ns_finish(w, DST, &sl[DST].ns, dprefix, sizeof(dprefix), &ddelim);
	if ((!src_listed && list_side(w, SRC, ls, err, errlen) == -1) ||
	    list_side(w, DST, ld, err, errlen) == -1)
		return (-1);
	/* what the record of a complete pass keeps of the source */
	if (!src_listed && skip_snap(a, ls->v, ls->n, ls->st, ls->nst,
	    a->src_condstore) == -1)
		log_warnx("%s: out of memory: no account record",
		    a->acc->src_user);
	memset(&fs, 0, sizeof(fs));
	memset(&fd, 0, sizeof(fd));
	fs.v = ls->v;
	fs.n = ls->n;
	fs.sep = sdelim ? sdelim : ls->sep;
	fs.prefix = sprefix;
	fd.v = ld->v;
	fd.n = ld->n;
	fd.sep = ddelim ? ddelim : ld->sep;
	fd.prefix = dprefix;
	if (a->p->o->reverse != NULL)
		return (reverse_plan(a, &fs, &fd, err, errlen));
	if (folder_plan_build(a->p->o->rules, &fs, &fd, 0, &a->plan, why,
	    sizeof(why)) == -1) {
		errbuf_set(err, errlen, "folder plan: %s", why);
		return (-1);
	}
	return (0);
}

/*
 * job_status - the folder's status on side i: from LIST-STATUS, else
 * one STATUS (on the destination only when the folder exists there)
 */
static void
job_status(struct worker *w, struct fjob *j, const struct side_listing *sl)
{
	const struct imap_status_info *st;

	if ((st = listing_status(&sl[SRC].l, j->src_wire)) != NULL) {
		j->sst = *st;
		j->have_sst = 1;
	}
	if ((st = listing_status(&sl[DST].l, j->dst_wire)) != NULL) {
		j->dst = *st;
		j->have_dst = 1;
	}
	/* without LIST-STATUS: one STATUS per folder */
	if (!j->have_sst) {
		struct wres r;

		memset(&r, 0, sizeof(r));
		if (side_wait(w, imap_client_status(w->s[SRC].c,
		    j->src_wire, STATUS_ITEMS, wres_done, &r), &r) == 0 &&
		    r.have_st) {
			j->sst = r.st;
			j->have_sst = 1;
		}
	}
	if (!j->have_dst && j->m->dst_exists) {
		struct wres r;

		memset(&r, 0, sizeof(r));
		if (side_wait(w, imap_client_status(w->s[DST].c,
		    j->dst_wire, STATUS_ITEMS, wres_done, &r), &r) == 0 &&
		    r.have_st) {
			j->dst = r.st;
			j->have_dst = 1;
		}
	}
}

/*
 * job_queue - CREATE (and subscribe) on the destination: queued here,
 * pipelined, checked by acct_created; cr, sr: the job's results
 */
static void
job_queue(struct worker *w, struct fjob *j, const struct listing *ld,
    struct wres *cr, struct wres *sr)
{
	const struct sync_pass_opts *o = w->a->p->o;
	const struct folder_map *m = j->m;
	size_t k;

	if (m->create) {
		if (o->dry_run)
			j->rf->created = 1;
		else {
			j->special = special_flag(m->create_special);
			cr->done = 0;
			if (imap_client_create(w->s[DST].c, j->dst_wire,
			    j->special, wres_done, cr) == NULL) {
				cr->done = 1;
				cr->status = IMAP_ERROR;
			}
		}
	}
	if (m->subscribed && !o->dry_run) {
		int dsub = 0;

		for (k = 0; k < ld->n; k++)
			if (ld->v[k].wire && strcmp(ld->v[k].wire,
			    j->dst_wire) == 0 &&
			    (ld->v[k].attrs & IMAP_MBOX_SUBSCRIBED))
				dsub = 1;
		if (!dsub) {
			sr->done = 0;
			if (imap_client_subscribe(w->s[DST].c, j->dst_wire, 1,
			    wres_done, sr) == NULL)
				sr->done = 1;
		}
	}
}

/*
 * lost_folder - a folder the plan leaves behind for no rule: a failed
 * report row with the reason and, when the server gives it, its message
 * count (from LIST-STATUS, else one STATUS), and a warning in the log
 */
static void
lost_folder(struct worker *w, const struct folder_map *m,
    struct report_folder *rf, const struct side_listing *sl)
{
	const struct imap_status_info *st;
	const char *wire = m->src_wire ? m->src_wire : m->src_path;
	const char *why = folder_skip_name(m->skip);
	struct wres r;

	if (m->skip == FOLDER_SKIP_BADNAME &&
	    (imap_client_enabled(w->s[SRC].c) & IMAP_ENABLE_UTF8))
		why = "name is not valid UTF-8";
	report_folder_not_copied(rf, why);
	/* a LIST entry that did not parse has no name to ask STATUS of */
	if (wire == NULL || m->skip == FOLDER_SKIP_BADLIST)
		st = NULL;
	else if ((st = listing_status(&sl[SRC].l, wire)) == NULL) {
		memset(&r, 0, sizeof(r));
		if (side_wait(w, imap_client_status(w->s[SRC].c, wire,
		    STATUS_ITEMS, wres_done, &r), &r) == 0 && r.have_st)
			st = &r.st;
	}
	if (st != NULL && (st->have & IMAP_STATUS_MESSAGES))
		rf->src_count = st->messages;
	if (rf->src_count != REPORT_UNKNOWN)
		log_warnx("%s: folder \"%s\" (%" PRIu64 " %s) not "
		    "copied: %s", w->a->acc->src_user, rf->src, rf->src_count,
		    rf->src_count == 1 ? "message" : "messages",
		    why);
	else
		log_warnx("%s: folder \"%s\" not copied: %s",
		    w->a->acc->src_user, rf->src, why);
}

/*
 * acct_jobs - a report row for every folder of the plan, and a job for
 * each one to copy, with its status and its CREATE/SUBSCRIBE queued
 */
static int
acct_jobs(struct worker *w, struct side_listing *sl, struct wres *cr,
    struct wres *sr, char *err, size_t errlen)
{
	struct acct *a = w->a;
	char why[400];
	size_t i;

	for (i = 0; i < a->plan->n; i++) {
		const struct folder_map *m = &a->plan->maps[i];
		struct report_folder *rf = report_folder_add_map(a->ra, m);
		struct fjob *j;
		char line[512];

		if (rf == NULL) {
			errbuf_set(err, errlen, "out of memory");
			return (-1);
		}
		folder_map_describe(m, line, sizeof(line));
		log_info("%s: plan: %s", a->acc->src_user, line);
		if (folder_skip_is_loss(m->skip))
			lost_folder(w, m, rf, sl);
		if (m->skip != FOLDER_COPY)
			continue;
		j = &a->jobs[a->njobs];
		j->m = m;
		j->rf = rf;
		snprintf(j->src_wire, sizeof(j->src_wire), "%s",
		    m->src_wire ? m->src_wire : m->src_name);
		if (imap_client_mailbox_encode(w->s[DST].c, m->dst_name,
		    j->dst_wire, sizeof(j->dst_wire), why, sizeof(why)) == -1) {
			report_folder_error(rf, "destination name: %s", why);
			continue;
		}
		job_status(w, j, sl);
		job_queue(w, j, &sl[DST].l, &cr[a->njobs], &sr[a->njobs]);
		a->njobs++;
	}
	return (0);
}

/* acct_created - the CREATEs and SUBSCRIBEs answered; failed: skipped */
static void
acct_created(struct worker *w, struct wres *cr, struct wres *sr)
{
	struct acct *a = w->a;
	char why[400];
	size_t i;

	for (i = 0; i < a->njobs; i++) {
		struct fjob *j = &a->jobs[i];

		if (j->m->create && !a->p->o->dry_run) {
			struct wres *r = &cr[i];

			side_loop_until(w, &r->done);
			if (r->status != IMAP_OK &&
			    strcasecmp(r->code, "ALREADYEXISTS") != 0) {
				wres_reason(r, why, sizeof(why));
				j->rf->created = 0;
				j->skip = 1;
				report_folder_error(j->rf, "CREATE %s: %s",
				    j->m->dst_path, why);
				log_warnx("%s: CREATE %s: %s", a->acc->src_user,
				    j->m->dst_path, why);
			} else {
				j->rf->created = 1;
				log_info("%s: created %s%s%s", a->acc->src_user,
				    j->m->dst_path, j->special ? " " : "",
				    j->special ? j->special : "");
			}
		}
		side_loop_until(w, &sr[i].done);
	}
}

/*
 * acct_setup - connect, list, plan, create, subscribe; jobs made: 0;
 * 1 when the source is unchanged and the destination stays unchecked
 * (sync_skip.c: nothing connected there, no plan, no jobs); -1 with err
 */
int
acct_setup(struct worker *w, char *err, size_t errlen)
{
	struct acct *a = w->a;
	struct side_listing sl[2];
	struct wres *cr = NULL, *sr = NULL;
	size_t i;
	int rc;

	memset(sl, 0, sizeof(sl));
	if ((rc = acct_list(w, sl, err, errlen)) != 0)
		goto out;
	rc = -1;
	cr = calloc(a->plan->n + 1, sizeof(*cr));
	sr = calloc(a->plan->n + 1, sizeof(*sr));
	if (cr == NULL || sr == NULL || (a->jobs = calloc(a->plan->n ?
	    a->plan->n : 1, sizeof(*a->jobs))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i <= a->plan->n; i++)
		cr[i].done = sr[i].done = 1;	/* nothing queued yet */
	if (acct_jobs(w, sl, cr, sr, err, errlen) == -1)
		goto out;
	acct_created(w, cr, sr);
	/* biggest folders first: the pass ends when its longest folder
	 * does, so that one must not start last */
	sort_n(a->jobs, a->njobs, sizeof(*a->jobs), fjob_cmp);
	rc = 0;
out:
	free(cr);
	free(sr);
	listing_drain(w, sl);
	return (rc);
}

/*
 * acct_plan - the folder plan only: connect, NAMESPACE, LIST on both
 * sides and folder_plan_build, as acct_setup makes it, but nothing
 * created, subscribed or queued on either server (ferry-syncd --verify
 * compares through the same mapping the copy uses).  a->plan is set
 * on success; the caller frees it.
 */
int
acct_plan(struct worker *w, char *err, size_t errlen)
{
	struct side_listing sl[2];
	int rc;

	memset(sl, 0, sizeof(sl));
	rc = acct_list(w, sl, err, errlen);
	listing_drain(w, sl);
	return (rc);
}
