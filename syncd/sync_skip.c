/*
 * sync_skip.c - an account whose source is exactly as its last complete
 * forward pass left it is not logged in to on the destination, as long
 * as the destination was checked less than [syncd]
 * destination_check_interval ago.  A no-op pass then costs one login
 * (the source's) instead of two, and the servers' logins are what a
 * no-op pass costs.
 *
 * The record (state.h, meta "syncd.acct:"): the source's LIST with the
 * LIST-STATUS (or STATUS) of every folder at the end of the last
 * complete pass, when that pass checked the destination, a digest of
 * what maps folders, and the pass's report rows, which a pass that
 * leaves the destination unchecked reports again.
 *
 * Never skipped: without CONDSTORE on the source (a flag change leaves
 * UIDNEXT, MESSAGES and UIDVALIDITY as they were: only HIGHESTMODSEQ
 * shows it), in a dry run, a reverse pass or --verify (which never come
 * here: acct_plan), when the last pass of the account was not complete
 * (its record is deleted: skip_end), when what maps folders changed, and
 * for an account whose cutover domain has seen the MX switch (the
 * destination is live: mail reaches it directly, and the cutover's
 * verdict rests on passes that compared both sides).
 *
 * Threads: every function runs on the account's thread; the record
 * belongs to the struct acct.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "log.h"
#include "metrics.h"
#include "sync_p.h"

/* skip_digest - SHA-256 of what decides the folder plan and what a pass
 * does on the destination; any change makes the next pass check it */
static void
skip_digest(const struct acct *a, unsigned char out[32])
{
	const struct config *c = a->p->o->cfg;
	const struct strlist *lists[3] = { &c->syncd.include,
	    &c->syncd.exclude, &c->syncd.map };
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int mdlen = 0;
	char num[96];
	size_t i, k;

	memset(out, 0, 32);
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return;		/* all zero: never equal to a written one */
	}
	EVP_DigestUpdate(ctx, "mailferry-skip-v1", 18);
	for (i = 0; i < 3; i++) {
		snprintf(num, sizeof(num), "list %zu %zu", i,
		    lists[i]->count);
		EVP_DigestUpdate(ctx, num, strlen(num) + 1);
		for (k = 0; k < lists[i]->count; k++)
			EVP_DigestUpdate(ctx, lists[i]->items[k],
			    strlen(lists[i]->items[k]) + 1);
	}
	snprintf(num, sizeof(num), "nonmail %d delete %d altered %d port %d",
	    c->syncd.skip_non_mail, c->syncd.delete,
	    c->syncd.accept_altered, c->syncd.destination.addr.port);
	EVP_DigestUpdate(ctx, num, strlen(num) + 1);
	EVP_DigestUpdate(ctx, c->syncd.destination.addr.host,
	    strlen(c->syncd.destination.addr.host) + 1);
	EVP_DigestUpdate(ctx, a->acc->dst_user, strlen(a->acc->dst_user) + 1);
	if (EVP_DigestFinal_ex(ctx, out, &mdlen) != 1)
		memset(out, 0, 32);
	EVP_MD_CTX_free(ctx);
}

/* what a pass of this account may record and skip at all */
static int
skip_applies(const struct acct *a)
{
	const struct sync_pass_opts *o = a->p->o;

	return (o->store != NULL && !o->dry_run && o->reverse == NULL);
}

/* skip_begin - the record loaded; may_skip when nothing but the source's
 * listing stands in the way */
void
skip_begin(struct acct *a)
{
	const struct sync_pass_opts *o = a->p->o;
	int64_t ival = o->cfg->syncd.destination_check_interval;
	unsigned char dg[32];
	char err[256];
	int rc;

	a->may_skip = 0;
	a->started = (int64_t)time(NULL);
	if (!(a->recording = skip_applies(a)))
		return;
	/*
	 * A pass with no more accounts than [syncd] parallel starts them
	 * all at once: nothing waits for a slot, so a destination login
	 * saved saves no time, while waiting for the source's listing
	 * before logging in there puts a whole login (connect, greeting,
	 * TLS, AUTHENTICATE) in front of every changed account.  Only a
	 * pass that queues accounts has something to gain from the skip.
	 */
	if (a->p->naccounts <= (size_t)o->cfg->syncd.parallel)
		return;
	rc = state_acct_get(o->store, a->acc->src_user, &a->rec, err,
	    sizeof(err));
	if (rc == -1)
		log_warnx("%s: account record: %s (the destination is "
		    "checked)", a->acc->src_user, err);
	a->have_rec = rc == 0;
	if (!a->have_rec || ival <= 0 || a->dest_live ||
	    !(a->rec.flags & STATE_ACCT_CONDSTORE))
		return;
	skip_digest(a, dg);
	if (memcmp(dg, a->rec.digest, sizeof(dg)) != 0)
		return;
	/* a clock set back counts as "checked long ago" */
	if (a->rec.dst_checked > a->started ||
	    a->started - a->rec.dst_checked >= ival)
		return;
	a->may_skip = 1;
}

static int
folder_cmp(const void *x, const void *y)
{
	const struct state_acct_folder *a = x, *b = y;

	return (strcmp(a->wire, b->wire));
}

/*
 * skip_snap - the source's listing of this pass, sorted by name: every
 * LIST entry with its status (LIST-STATUS; none for a \Noselect folder).
 * 0, or -1 out of memory (nothing recorded then).
 */
int
skip_snap(struct acct *a, const struct folder_info *v, size_t n,
    const struct imap_status_info *st, size_t nst, int condstore)
{
	struct state_acct *s = &a->snap;
	size_t i, k;

	state_acct_free(s);
	a->have_snap = 0;
	if (!a->recording)
		return (0);
	if (n > 0 && (s->f = calloc(n, sizeof(*s->f))) == NULL)
		return (-1);
	for (i = 0; i < n; i++) {
		struct state_acct_folder *f = &s->f[i];

		if (v[i].wire == NULL || (f->wire = strdup(v[i].wire)) ==
		    NULL) {
			state_acct_free(s);
			return (-1);
		}
		s->nf++;
		f->attrs = v[i].attrs;
		for (k = 0; k < nst; k++)
			if (strcmp(st[k].mailbox, v[i].wire) == 0) {
				f->have = st[k].have;
				f->uidvalidity = st[k].uidvalidity;
				f->uidnext = st[k].uidnext;
				f->messages = st[k].messages;
				f->highestmodseq = st[k].highestmodseq;
				break;
			}
	}
	sort_n(s->f, s->nf, sizeof(*s->f), folder_cmp);
	s->flags = condstore ? STATE_ACCT_CONDSTORE : 0;
	a->have_snap = 1;
	return (0);
}

/* \Marked says "new since the last SELECT": the copy's own EXAMINE
 * clears it, and a new message shows in UIDNEXT anyway */
#define VOLATILE	IMAP_MBOX_MARKED

#define SKIP_NEEDS	(IMAP_STATUS_MESSAGES | IMAP_STATUS_UIDNEXT | \
	IMAP_STATUS_UIDVALIDITY | IMAP_STATUS_HIGHESTMODSEQ)

/*
 * skip_source_unchanged - 1 when this pass's source listing is the
 * record's: the same folders with the same attributes (subscriptions
 * too), each selectable one with all four values known and equal
 */
int
skip_source_unchanged(struct acct *a)
{
	const struct state_acct *r = &a->rec, *s = &a->snap;
	size_t i;

	if (!a->may_skip || !a->have_snap || !(s->flags &
	    STATE_ACCT_CONDSTORE) || r->nf != s->nf)
		return (0);
	for (i = 0; i < s->nf; i++) {
		const struct state_acct_folder *x = &r->f[i], *y = &s->f[i];

		if (strcmp(x->wire, y->wire) != 0 ||
		    (x->attrs & ~VOLATILE) != (y->attrs & ~VOLATILE) ||
		    x->have != y->have)
			return (0);
		if (y->attrs & IMAP_MBOX_NOSELECT)
			continue;
		if ((y->have & SKIP_NEEDS) != SKIP_NEEDS ||
		    x->uidvalidity != y->uidvalidity ||
		    x->uidnext != y->uidnext ||
		    x->messages != y->messages ||
		    x->highestmodseq != y->highestmodseq)
			return (0);
	}
	return (1);
}

static void
fmt_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%" PRId64, t);
}

/*
 * skip_fill - the pass ends here: the report rows of the record's pass,
 * everything already there, one line in the log, the counters
 */
void
skip_fill(struct acct *a)
{
	struct sync_progress *pr = a->p->pr;
	char tp[32], tc[32];
	size_t i;

	for (i = 0; i < a->rec.nrows; i++) {
		const struct state_acct_row *w = &a->rec.rows[i];
		struct report_folder *f;

		if ((f = report_folder_add(a->ra, w->src, w->dst[0] ?
		    w->dst : NULL)) == NULL)
			return;
		if (w->skipped[0] != '\0')
			report_folder_skip(f, w->skipped);
		f->src_count = w->src_count;
		f->dst_count = w->dst_count;
		f->already = w->already;
		f->duplicates = w->duplicates;
	}
	a->dst_skipped = 1;
	fmt_time(a->rec.pass_at, tp, sizeof(tp));
	fmt_time(a->rec.dst_checked, tc, sizeof(tc));
	log_info("%s: source unchanged since the pass of %s, destination "
	    "not checked (checked %s)", a->acc->src_user, tp, tc);
	metrics_dst_check_skipped();
	pthread_mutex_lock(&pr->mu);
	pr->dst_skipped++;
	pthread_mutex_unlock(&pr->mu);
}

/*
 * folders_complete - every folder the pass copied has a state record
 * that says complete: a message skipped for this pass only (the relay
 * still holds it) leaves the report complete but its folder not, and
 * such a pass must not be the one an unchanged source is compared with
 */
static int
folders_complete(struct acct *a)
{
	struct state_folder sf;
	struct state_key key;
	char err[256], sname[REVERSE_USER_MAX];
	size_t i;

	for (i = 0; i < a->njobs; i++) {
		const struct fjob *j = &a->jobs[i];

		if (j->skip || state_folder_key(&key, reverse_state_user(a,
		    sname, sizeof(sname)), j->m->src_path, err,
		    sizeof(err)) == -1 || state_folder_get(a->p->o->store,
		    &key, &sf, err, sizeof(err)) != 0 ||
		    !(sf.flags & STATE_F_COMPLETE))
			return (0);
	}
	return (1);
}

/*
 * skip_end - after the account's pass: a complete one that checked the
 * destination writes the record; one that did not check it keeps the
 * record as it was; any other deletes it, so that the next pass checks
 * both sides whatever the source shows
 */
void
skip_end(struct acct *a, int complete)
{
	struct store *st = a->p->o->store;
	const struct report_account *ra = a->ra;
	struct state_acct *s = &a->snap;
	char err[256];
	size_t i;

	if (!a->recording || a->dst_skipped)
		goto out;
	/* deleted even when it could not be read: it may be there */
	if (!complete || !a->have_snap || pace_stopping(a) ||
	    !folders_complete(a)) {
		log_debug("%s: no account record: %s", a->acc->src_user,
		    !complete ? "the pass was not complete" : !a->have_snap ?
		    "no source listing" : pace_stopping(a) ? "stopping" :
		    "a folder is not complete");
		goto del;
	}
	s->pass_at = a->started;
	s->dst_checked = a->started;
	skip_digest(a, s->digest);
	if (ra->nfolders > 0 && (s->rows = calloc(ra->nfolders,
	    sizeof(*s->rows))) == NULL)
		goto oom;
	for (i = 0; i < ra->nfolders; i++) {
		const struct report_folder *f = ra->folders[i];
		struct state_acct_row *w = &s->rows[i];

		s->nrows++;
		if ((w->src = strdup(f->src ? f->src : "")) == NULL ||
		    (w->dst = strdup(f->dst ? f->dst : "")) == NULL ||
		    (w->skipped = strdup(f->skipped ? f->skipped : "")) ==
		    NULL)
			goto oom;
		w->src_count = f->src_count;
		w->dst_count = f->dst_count;
		w->already = f->already + f->copied;
		w->duplicates = f->duplicates;
	}
	if (state_acct_put(st, a->acc->src_user, s, err, sizeof(err)) == 0)
		goto out;
	log_warnx("%s: account record not written: %s", a->acc->src_user,
	    err);
	goto del;
oom:
	log_warnx("%s: account record: out of memory", a->acc->src_user);
del:
	if (state_acct_del(st, a->acc->src_user, err, sizeof(err)) == -1)
		log_warnx("%s: account record not deleted: %s",
		    a->acc->src_user, err);
out:
	state_acct_free(&a->rec);
	state_acct_free(&a->snap);
	a->have_rec = a->have_snap = 0;
}
