/*
 * sync.c - the pass engine of ferry-syncd (see sync.h): per account,
 * connect both servers, list and plan folders, create and subscribe on
 * the destination, then per folder compare the source with the state,
 * copy what is missing (FETCH BODY.PEEK[] literal streamed into APPEND,
 * MULTIAPPEND batches), apply flag changes and optional deletions.
 *
 * The operations of a pass, in order, and the file that holds each:
 *   sync.c          sync_pass_run: accounts started, [syncd] parallel at
 *                   a time; acct_thread: the account's kept connection
 *                   pair taken (keep_take) or a new one, and a slot
 *   sync_acct.c     acct_setup: connect, NAMESPACE, LIST(-STATUS), plan,
 *                   CREATE, SUBSCRIBE, the jobs, biggest first
 *   sync.c          extra connection pairs (extra_pairs_wanted), one
 *                   worker thread each; worker_loop takes the folders
 *   sync_folder.c   sync_folder, per folder:
 *     load, validity  the state record, both mailboxes selected and
 *                     their UIDVALIDITY checked (sync_fctx.c)
 *     scan            intents settled (sync_fctx.c), source metadata
 *                     (sync_scan.c), content matching (sync_fctx.c)
 *     flags           a flag scan (sync_scan.c), STOREs
 *     todo            the ledger (sync_ledger.c), copying (sync_copy.c)
 *     deletions       UID EXPUNGE of syncd's own copies
 *     finish, end     the folder record, the report row
 *   sync.c          keep_put: the first pair kept for the next pass, or
 *                   worker_free (sync_side.c): LOGOUT
 * Under all of them: commands run to their end through the blocking
 * facade (sync_side.c), pacing and progress (sync_pace.c).  The private
 * interface between these files is sync_p.h.
 *
 * Exactly-once: before each APPEND batch the engine commits one intent
 * record per message (state.h); when the APPEND completes the intents
 * are replaced by map entries in one transaction.  At the start of a
 * folder every intent left over (crash, kill -9, dropped connection) is
 * looked up on the destination by Message-ID (else size) and checked
 * against size and INTERNALDATE; found means mapped, not found means
 * "copy again".  So a message is never copied twice and never skipped.
 *
 * Code shape: each worker thread owns an event_base and drives its
 * clients in a blocking style (queue a command, run the loop until its
 * done callback fired).  That keeps the per-folder logic a straight
 * sequence; the parallelism comes from threads, one connection pair
 * each.  Streaming copies still run inside the loop with the client's
 * flow control: the source is paused while the destination is behind,
 * so memory does not grow with message size.
 *
 * SECURITY: everything from the servers is untrusted: folder names go
 * through the planner and the client's encoders, header fields through
 * msgid.c, numbers are range-checked, SEARCH criteria are built only
 * from printable ASCII (sync_scan.c).  The source is only EXAMINEd and
 * read with BODY.PEEK: nothing here can change it.  Passwords are wiped
 * after use (explicit_bzero).
 *
 * Ownership/threading: see sync.h.  A worker's clients and event_base
 * never leave its thread.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "route_state.h"
#include "sync_p.h"

#define MAX_WORKERS	6		/* connection pairs per account */

/* How much earlier than its ledger entry the old host's copy of a relayed
 * message may be dated, beyond the relay's queue lifetime (clock skew,
 * a sender's own retries). */
#define LEDGER_SLACK	(2 * 86400)

/*
 * extra_pairs_wanted - how many connection pairs besides the first are
 * worth opening: one per MSGS_PER_PAIR messages that may be new (from
 * LIST-STATUS against the state), at most one per changed folder but
 * the first.  A login costs the server two process starts, more than
 * copying a few hundred messages, so a small delta runs on the first
 * pair alone (measured: +100 messages over 20 folders, 0.28 s on one
 * pair, 0.55 s on six) and a no-op delta opens nothing.  A state error
 * counts as work: sync_folder reports it.
 */
#define MSGS_PER_PAIR	250

static size_t
extra_pairs_wanted(struct acct *a)
{
	struct store *st = a->p->o->store;
	struct state_folder sf;
	struct state_key key;
	char err[256], sname[REVERSE_USER_MAX];
	size_t i, folders = 0, want;
	uint64_t msgs = 0;

	for (i = 0; i < a->njobs; i++) {
		struct fjob *j = &a->jobs[i];
		int have;

		if (j->skip)
			continue;
		have = st != NULL && state_folder_key(&key,
		    reverse_state_user(a, sname, sizeof(sname)),
		    j->m->src_path, err, sizeof(err)) == 0 &&
		    state_folder_get(st, &key, &sf, err, sizeof(err)) == 0;
		if (have && sync_folder_unchanged(j, &sf))
			continue;
		folders++;
		if (!j->have_sst || !(j->sst.have & IMAP_STATUS_MESSAGES))
			j->est_msgs = MSGS_PER_PAIR;	/* unknown: assume work */
		else if (have && (sf.flags & STATE_F_COMPLETE) &&
		    (j->sst.have & IMAP_STATUS_UIDNEXT) &&
		    j->sst.uidvalidity == sf.src_uidvalidity)
			j->est_msgs = j->sst.uidnext > sf.src_uidnext ?
			    j->sst.uidnext - sf.src_uidnext : 0;
		else
			j->est_msgs = j->sst.messages;
		msgs += j->est_msgs;
	}
	want = (size_t)(msgs / MSGS_PER_PAIR);
	if (folders == 0)
		return (0);
	if (want > folders - 1)
		want = folders - 1;
	return (want);
}

/* The account's extra connection pairs, each on its own thread. */
struct pairs {
	pthread_t	 tid[MAX_WORKERS];
	size_t		 n;
};

static void worker_loop(struct worker *w, struct pairs *px);

static void *
worker_thread(void *arg)
{
	struct worker *w = arg;

	worker_loop(w, NULL);
	worker_free(&w);
	return (NULL);
}

/* pair_start - one more connection pair for the account, if a slot is
 * free: 0 started, -1 not */
static int
pair_start(struct acct *a, struct pairs *px)
{
	struct worker *x;

	if (px->n >= MAX_WORKERS - 1 || a->p->o->dry_run ||
	    !pace_slot_take(a->p, 0))
		return (-1);
	if ((x = worker_new(a)) == NULL) {
		pace_slot_give(a->p);
		return (-1);
	}
	x->holds_slot = 1;
	if (pthread_create(&px->tid[px->n], NULL, worker_thread, x) != 0) {
		worker_free(&x);
		return (-1);
	}
	px->n++;
	return (0);
}

/*
 * worker_loop - take folders off the account's list until none is left;
 * on the account's own thread (px set), after each folder, open another
 * pair when the copies so far say the rest would take long on the pairs
 * there are (sync_pairs.c: a slow-APPEND server gets more)
 */
static void
worker_loop(struct worker *w, struct pairs *px)
{
	struct acct *a = w->a;

	for (;;) {
		struct fjob *j = NULL;

		pthread_mutex_lock(&a->mu);
		if (a->next < a->njobs && !pace_stopping(a))
			j = &a->jobs[a->next++];
		pthread_mutex_unlock(&a->mu);
		if (j == NULL)
			break;
		if (!j->skip)
			sync_folder(w, j);
		prog_folder_done(a);
		if (px != NULL && pairs_more(a, px->n + 1) &&
		    pair_start(a, px) == 0)
			log_info("%s: %.0f ms a message so far: one more "
			    "connection pair (%zu)", a->acc->src_user,
			    a->app_msgs ? 1000.0 * a->app_secs /
			    (double)a->app_msgs : 0.0, px->n + 1);
	}
	sync_folder_settle(w, 1);
}

/* ---- connections kept between passes (daemon mode) ------------------------------ */

/*
 * The first connection pair of an account stays logged in between the
 * daemon's passes: a delta pass then costs one LIST-STATUS a side, not
 * two logins (each of which costs a server like Dovecot two process
 * starts).  At most [syncd] keep_connections pairs are held, so the
 * servers see at most connections_per_server working connections plus
 * keep_connections idle ones from this host; with more accounts than
 * that, the first accounts to finish a pass keep theirs and the rest log
 * out as before.  "held" counts the pairs in the pool and those taken out
 * of it by a running account (w->kept): a pair goes back to its place.
 * A pair the server closed meanwhile is noticed when the next pass looks
 * at it (keep_take) and logged in again by side_ensure.  A pair no pass
 * over all accounts took (its account left the accounts file) is logged
 * out at the end of that pass (keep_sweep).
 */
struct kept {
	char		 user[ACCOUNTS_USER_MAX + 1];
	struct worker	*w;		/* owned; w->a is NULL while kept */
	unsigned	 gen;		/* the pass that put it */
};

struct sync_keep {
	pthread_mutex_t	 mu;
	struct kept	*v;
	size_t		 n, alloc;
	size_t		 held;		/* in v, plus taken out (w->kept) */
	size_t		 cap;		/* at most this many held */
	unsigned	 gen;		/* the pass running */
};

struct sync_keep *
sync_keep_new(size_t cap)
{
	struct sync_keep *k = calloc(1, sizeof(*k));

	if (k != NULL) {
		pthread_mutex_init(&k->mu, NULL);
		k->cap = cap;
	}
	return (k);
}

void
sync_keep_free(struct sync_keep **kp)
{
	struct sync_keep *k = *kp;
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; i < k->n; i++)
		worker_free(&k->v[i].w);	/* LOGOUT */
	free(k->v);
	pthread_mutex_destroy(&k->mu);
	free(k);
	*kp = NULL;
}

/* keep_take - the account's kept pair, made current; NULL if none */
static struct worker *
keep_take(struct acct *a)
{
	struct sync_keep *k = a->p->o->keep;
	struct worker *w = NULL;
	size_t i;
	int round, side;

	if (k == NULL)
		return (NULL);
	pthread_mutex_lock(&k->mu);
	for (i = 0; i < k->n; i++)
		if (strcmp(k->v[i].user, a->acc->src_user) == 0) {
			w = k->v[i].w;
			k->v[i] = k->v[--k->n];
			break;
		}
	pthread_mutex_unlock(&k->mu);
	if (w == NULL)
		return (NULL);
	w->a = a;
	w->stop_seen = 0;
	w->kept = 1;
	/* what arrived while nobody listened: a BYE, a close */
	for (round = 0; round < 4; round++)
		if (event_base_loop(w->base, EVLOOP_NONBLOCK) != 0)
			break;
	for (side = 0; side < 2; side++)
		w->s[side].selected[0] = '\0';	/* SELECT again: news */
	return (w);
}

/* keep_drop - a pair taken out of the pool is logged out, not put back */
static void
keep_drop(struct acct *a, struct worker *w)
{
	struct sync_keep *k = a->p->o->keep;

	if (k == NULL || w == NULL || !w->kept)
		return;
	pthread_mutex_lock(&k->mu);
	k->held--;
	pthread_mutex_unlock(&k->mu);
	w->kept = 0;
}

/* keep_put - keep the account's first pair for the next pass: 1 kept */
static int
keep_put(struct acct *a, struct worker *w)
{
	struct sync_keep *k = a->p->o->keep;
	const struct sync_pass_opts *o = a->p->o;
	int i, kept = 0;

	/* a pair whose destination was never logged in to (the source was
	 * unchanged: sync_skip.c) is kept too; the pass that needs the
	 * destination logs in there (sides_connect) */
	if (k == NULL || o->dry_run || pace_stopping(a) ||
	    w->s[SRC].c == NULL || w->s[SRC].state != 1 ||
	    (w->s[DST].c != NULL && w->s[DST].state != 1))
		return (0);
	if (!w->kept) {
		pthread_mutex_lock(&k->mu);
		if (k->held < k->cap) {
			k->held++;	/* its place, before the UNSELECTs */
			w->kept = 1;
		}
		pthread_mutex_unlock(&k->mu);
		if (!w->kept)
			return (0);
	}
	/*
	 * Nothing may stay selected: LIST-STATUS of the selected mailbox
	 * may give the session's old view (Dovecot does, RFC 3501 6.3.10),
	 * and the next pass would never see that folder change.
	 */
	for (i = 0; i < 2; i++) {
		struct side *sd = &w->s[i];
		const char *cmd;
		struct wres r;

		if (sd->selected[0] == '\0')
			continue;
		if (imap_client_has_cap(sd->c, IMAP_CAP_UNSELECT))
			cmd = "UNSELECT";
		else if (i == SRC)
			cmd = "CLOSE";	/* EXAMINEd: CLOSE expunges nothing */
		else
			return (0);
		memset(&r, 0, sizeof(r));
		if (side_wait(w, imap_client_command(sd->c, cmd, wres_done, &r),
		    &r) == -1)
			return (0);
		sd->selected[0] = '\0';
	}
	pthread_mutex_lock(&k->mu);
	if (k->n == k->alloc) {
		size_t na = k->alloc ? k->alloc * 2 : 8;
		void *p = reallocarray(k->v, na, sizeof(*k->v));

		if (p != NULL) {
			k->v = p;
			k->alloc = na;
		}
	}
	if (k->n < k->alloc) {
		snprintf(k->v[k->n].user, sizeof(k->v[k->n].user), "%s",
		    a->acc->src_user);
		k->v[k->n].gen = k->gen;
		k->v[k->n++].w = w;
		kept = 1;
	}
	pthread_mutex_unlock(&k->mu);
	if (kept) {
		if (w->holds_slot)
			pace_slot_give(a->p);
		w->holds_slot = 0;
		w->a = NULL;
	}
	return (kept);
}

/*
 * keep_sweep - after a pass over every account: log out the pairs that
 * pass did not take (their accounts are gone); then the next pass's
 * number.  Runs when no account thread is left.
 */
static void
keep_sweep(struct sync_keep *k, int every_account)
{
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; every_account && i < k->n;) {
		if (k->v[i].gen != k->gen) {
			worker_free(&k->v[i].w);
			k->v[i] = k->v[--k->n];
			k->held--;
			continue;
		}
		i++;
	}
	k->gen++;
}

static void *
acct_thread(void *arg)
{
	struct acct *a = arg;
	struct pass *p = a->p;
	struct sync_progress *pr = p->pr;
	struct worker *w0;
	struct pairs px;
	char err[512];
	size_t i, want;
	int ok, rc;

	memset(&px, 0, sizeof(px));
	a->t0 = pace_now();
	pthread_mutex_lock(&pr->mu);
	pr->acc[a->idx].state = SYNC_ACCT_RUNNING;
	pr->acc[a->idx].started = (int64_t)time(NULL);
	pthread_mutex_unlock(&pr->mu);
	err[0] = '\0';
	skip_begin(a);
	if ((w0 = keep_take(a)) == NULL && (w0 = worker_new(a)) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	w0->holds_slot = pace_slot_take(p, 1);
	if (!w0->holds_slot) {
		snprintf(err, sizeof(err), "interrupted");
		goto fail;
	}
	if ((rc = acct_setup(w0, err, sizeof(err))) == -1)
		goto fail;
	if (rc == 1)
		skip_fill(a);	/* the source unchanged: no destination */
	pthread_mutex_lock(&pr->mu);
	pr->folders_total += a->njobs;
	pr->acc[a->idx].folders_total = a->njobs;
	pthread_mutex_unlock(&pr->mu);

	/* extra connection pairs for parallel folders */
	want = rc == 1 ? 0 : extra_pairs_wanted(a);
	if (want > MAX_WORKERS - 1)
		want = MAX_WORKERS - 1;
	for (i = 0; i < want; i++)
		if (pair_start(a, &px) == -1)
			break;
	worker_loop(w0, &px);
	for (i = 0; i < px.n; i++)
		pthread_join(px.tid[i], NULL);
	if (!keep_put(a, w0)) {
		keep_drop(a, w0);
		worker_free(&w0);
	}
	w0 = NULL;
	a->ra->seconds = pace_now() - a->t0;
	ok = report_account_complete(a->ra);
	skip_end(a, ok);
	pthread_mutex_lock(&pr->mu);
	pr->accounts_done++;
	pr->acc[a->idx].state = ok ? SYNC_ACCT_DONE : SYNC_ACCT_FAILED;
	pr->acc[a->idx].finished = (int64_t)time(NULL);
	pthread_mutex_unlock(&pr->mu);
	goto done;
fail:
	keep_drop(a, w0);
	worker_free(&w0);
	report_account_error(a->ra, "%s", err);
	skip_end(a, 0);
	log_warnx("%s: %s", a->acc->src_user, err);
	a->ra->seconds = pace_now() - a->t0;
	pthread_mutex_lock(&pr->mu);
	pr->accounts_done++;
	pr->acc[a->idx].state = SYNC_ACCT_FAILED;
	pr->acc[a->idx].finished = (int64_t)time(NULL);
	(void)str_copy(pr->acc[a->idx].error, err,
	    sizeof(pr->acc[a->idx].error));	/* cut to fit */
	pthread_mutex_unlock(&pr->mu);
done:
	pthread_mutex_lock(&p->mu);
	p->running--;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return (NULL);
}

/* ---- the pass ------------------------------------------------------------------------ */

/*
 * waves_migrated - which waves `ferryctl wave N migrate` has moved to the
 * new provider (common/route_state.h, in the store the relay shares):
 * their users read mail there now, so their destination is live, as
 * after the MX switch.  m[N] is 1 for a migrated wave N; all 0 when no
 * account has a wave or there is no store.  A table that cannot be read
 * counts every wave as migrated (no flag of the old host pushed over a
 * user's), logged.
 */
static void
waves_migrated(const struct sync_pass_opts *o,
    unsigned char m[ROUTE_WAVE_MAX + 1])
{
	struct route_wave *rw;
	char err[256];
	unsigned i;

	memset(m, 0, ROUTE_WAVE_MAX + 1);
	if (o->store == NULL || o->accounts->nwaved == 0)
		return;
	if ((rw = calloc(ROUTE_WAVE_MAX + 1, sizeof(*rw))) == NULL)
		snprintf(err, sizeof(err), "out of memory");
	else if (route_state_read(o->store, rw, err, sizeof(err)) == 0) {
		for (i = 1; i <= ROUTE_WAVE_MAX; i++)
			m[i] = rw[i].state == ROUTE_WAVE_MIGRATED;
		free(rw);
		return;
	}
	free(rw);
	log_warnx("the waves' routing table: %s: every wave taken as "
	    "migrated (the destination is live)", err);
	memset(m, 1, ROUTE_WAVE_MAX + 1);
}

int
sync_pass_selects(const struct sync_pass_opts *o, size_t i)
{
	return ((o->only_account == NULL || strcasecmp(o->only_account,
	    o->accounts->items[i].src_user) == 0) && (o->only_wave == 0 ||
	    o->accounts->items[i].wave == o->only_wave) &&
	    (o->selects == NULL || o->selects(o->selects_arg,
	    &o->accounts->items[i])));
}

size_t
sync_pass_count(const struct sync_pass_opts *o, char *err, size_t errlen)
{
	size_t i, n = 0;

	for (i = 0; i < o->accounts->count; i++)
		if (sync_pass_selects(o, i))
			n++;
	if (n == 0 && o->only_wave != 0)
		errbuf_set(err, errlen, "no account of %s is in wave %u",
		    o->accounts->path, o->only_wave);
	else if (n == 0)
		errbuf_set(err, errlen, "no account %s in %s",
		    o->only_account ? o->only_account : "",
		    o->accounts->path);
	return (n);
}

int
sync_pass_run(const struct sync_pass_opts *o, struct report *r,
    struct sync_progress *pr, char *err, size_t errlen)
{
	struct pass p;
	struct acct *accts = NULL;
	pthread_t *tids = NULL;
	unsigned char migrated[ROUTE_WAVE_MAX + 1];
	size_t i, n = 0, started = 0, joined = 0;
	int parallel = (int)o->cfg->syncd.parallel;
	int64_t oldest = 0;
	char e[256];

	memset(pr, 0, sizeof(*pr));
	pthread_mutex_init(&pr->mu, NULL);
	memset(&p, 0, sizeof(p));
	p.o = o;
	p.r = r;
	p.pr = pr;
	p.slots = (int)o->cfg->syncd.connections_per_server;
	p.rstart = pace_now();
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	pthread_mutex_init(&p.rmu, NULL);
	if (o->store != NULL) {
		/* unreadable: look at every message rather than none */
		if (state_ledger_oldest(o->store, &oldest, e, sizeof(e)) == -1)
			oldest = 1;
		/* Empty now: an entry the relay writes during this pass is
		 * younger than the pass, and so is the old host's copy it
		 * stands for (ledger_check looks whether one came). */
		if (oldest == 0)
			oldest = (int64_t)time(NULL);
	}

	if ((n = sync_pass_count(o, err, errlen)) == 0)
		goto fail;
	accts = calloc(n, sizeof(*accts));
	tids = calloc(n, sizeof(*tids));
	pr->acc = calloc(n, sizeof(*pr->acc));
	if (accts == NULL || tids == NULL || pr->acc == NULL) {
		errbuf_set(err, errlen, "out of memory");
		goto fail;
	}
	pr->nacc = n;
	pr->accounts_total = n;
	p.naccounts = n;
	waves_migrated(o, migrated);
	for (i = 0, n = 0; i < o->accounts->count; i++) {
		const struct account *ac = &o->accounts->items[i];
		struct acct *a;

		if (!sync_pass_selects(o, i))
			continue;
		a = &accts[n];
		a->p = &p;
		a->acc = ac;
		a->idx = n;
		a->dest_live = (o->dest_live != NULL &&
		    o->dest_live(o->dest_live_arg, ac)) ||
		    (ac->wave > 0 && ac->wave <= ROUTE_WAVE_MAX &&
		    migrated[ac->wave]);
		a->ledger_since = oldest - o->cfg->forward.queue_lifetime -
		    LEDGER_SLACK;
		pthread_mutex_init(&a->mu, NULL);
		if ((a->ra = report_account_add(r, ac->src_user,
		    ac->dst_user)) == NULL) {
			errbuf_set(err, errlen, "out of memory");
			pthread_mutex_destroy(&a->mu);
			goto fail;
		}
		pr->acc[n].user = ac->src_user;
		n++;
	}
	/* start accounts, at most `parallel` at once; tick meanwhile */
	pthread_mutex_lock(&p.mu);
	while (joined < n) {
		struct timespec ts;

		while (started < n && p.running < parallel &&
		    !(o->stop && *o->stop)) {
			if (pthread_create(&tids[started], NULL, acct_thread,
			    &accts[started]) != 0) {
				report_account_error(accts[started].ra,
				    "cannot start a thread");
				started++;
				joined++;
				continue;
			}
			p.running++;
			started++;
		}
		if (o->stop && *o->stop && p.running == 0)
			break;
		if (p.running == 0 && started == n)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&p.cv, &p.mu, &ts);
		pthread_mutex_unlock(&p.mu);
		if (o->tick)
			o->tick(o->tick_arg);
		pthread_mutex_lock(&p.mu);
	}
	pthread_mutex_unlock(&p.mu);
	for (i = 0; i < started; i++)
		if (tids[i])
			pthread_join(tids[i], NULL);
	for (i = started; i < n; i++)
		report_account_error(accts[i].ra, "interrupted");
	keep_sweep(o->keep, o->only_account == NULL && o->only_wave == 0 &&
	    started == n &&
	    !(o->stop && *o->stop));
	for (i = 0; i < n; i++) {
		folder_plan_free(&accts[i].plan);
		folder_plan_free(&accts[i].fwd_plan);
		free(accts[i].jobs);
		pthread_mutex_destroy(&accts[i].mu);
	}
	free(accts);
	free(tids);
	pthread_mutex_destroy(&p.mu);
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.rmu);
	return (0);
fail:
	free(accts);
	free(tids);
	pthread_mutex_destroy(&p.mu);
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.rmu);
	return (-1);
}

void
sync_progress_free(struct sync_progress *p)
{
	if (p == NULL)
		return;
	free(p->acc);
	p->acc = NULL;
	p->nacc = 0;
	pthread_mutex_destroy(&p->mu);
}
