/*
 * sync.c - the pass engine of ferry-syncd (see sync.h): per account,
 * connect both servers, list and plan folders, create and subscribe on
 * the destination, then per folder compare the source with the state,
 * copy what is missing (FETCH BODY.PEEK[] literal streamed into APPEND,
 * MULTIAPPEND batches), apply flag changes and optional deletions.
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
 * from printable ASCII we check here.  The source is only EXAMINEd and
 * read with BODY.PEEK: nothing here can change it.  Passwords are wiped
 * after use (explicit_bzero).
 *
 * Ownership/threading: see sync.h.  A worker's clients and event_base
 * never leave its thread.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "accounts.h"
#include "folders.h"
#include "imap_client.h"
#include "imap_parse.h"
#include "log.h"
#include "msgid.h"
#include "report.h"
#include "state.h"
#include "sync.h"
#include "util.h"

#define SRC	0
#define DST	1

#define BATCH_MSGS	100		/* messages per APPEND batch */
#define BATCH_BYTES	((uint64_t)8 << 20)	/* bytes per batch */
#define HASH_CHUNK	100		/* UIDs per hashing FETCH */
#define HDR_MAX		16384		/* header fields kept for ident */
#define MAX_WORKERS	6		/* connection pairs per account */
#define RECONNECT_TRIES	5
#define TEMP_TRIES	3		/* a message's temp failures */
#define WIRE_MAX	1024

static const char *const side_name[2] = { "src", "dst" };

/* ---- small helpers -------------------------------------------------------- */

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

static void
sleep_ms(uint64_t ms, volatile sig_atomic_t *stop)
{
	while (ms > 0 && !(stop && *stop)) {
		uint64_t step = ms > 200 ? 200 : ms;
		struct timespec ts = { (time_t)(step / 1000),
		    (long)(step % 1000) * 1000000L };

		nanosleep(&ts, NULL);
		ms -= step;
	}
}

/* qsort/bsearch that accept an empty (NULL) array: C leaves that
 * undefined, and UBSan says so */
static void
sort_n(void *base, size_t n, size_t size, int (*cmp)(const void *,
    const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

static void *
find_n(const void *key, const void *base, size_t n, size_t size,
    int (*cmp)(const void *, const void *))
{
	if (n == 0 || base == NULL)
		return (NULL);
	return (bsearch(key, base, n, size, cmp));
}

/* A command's outcome, copied out of the callback. */
struct wres {
	int		 done;
	enum imap_status status;
	enum imap_errclass cls;
	uint64_t	 backoff_ms;
	char		 code[32];
	char		 text[300];
	uint64_t	 appenduid_validity;
	uint64_t	 appenduid_first;
	char		 appenduid_set[2048];
	int		 appenduid_cut;		/* set did not fit */
	struct imap_mailbox mb;		/* scalars only */
	int		 have_mb;
	struct imap_status_info st;	/* mailbox pointer cleared */
	int		 have_st;
};

static void
wres_fill(struct wres *r, const struct imap_result *res)
{
	r->done = 1;
	r->status = res->status;
	r->cls = res->errclass;
	r->backoff_ms = res->backoff_ms;
	snprintf(r->code, sizeof(r->code), "%s", res->code ? res->code : "");
	snprintf(r->text, sizeof(r->text), "%s", res->text ? res->text : "");
	r->appenduid_validity = res->appenduid_validity;
	r->appenduid_first = res->appenduid_first;
	if (res->appenduid_set != NULL) {
		if (strlen(res->appenduid_set) >= sizeof(r->appenduid_set))
			r->appenduid_cut = 1;
		else
			snprintf(r->appenduid_set, sizeof(r->appenduid_set),
			    "%s", res->appenduid_set);
	}
	if (res->mailbox != NULL) {
		r->mb = *res->mailbox;
		r->mb.permflags.v = NULL;
		r->mb.flags.v = NULL;
		r->have_mb = 1;
	}
	if (res->status_info != NULL) {
		r->st = *res->status_info;
		r->st.mailbox = NULL;
		r->have_st = 1;
	}
}

/* "NO [CANNOT] text" for reports and logs */
static void
wres_reason(const struct wres *r, char *buf, size_t len)
{
	if (r->code[0])
		snprintf(buf, len, "%s [%s] %s", imap_status_name(r->status),
		    r->code, r->text);
	else
		snprintf(buf, len, "%s %s", imap_status_name(r->status),
		    r->text);
}

static int
wres_temp(const struct wres *r)
{
	return (r->status == IMAP_ERROR || r->status == IMAP_CANCELLED ||
	    r->cls == IMAP_ERR_TEMP);
}

static void
done_cb(struct imap_client *c, const struct imap_result *res, void *arg)
{
	(void)c;
	wres_fill(arg, res);
}

/* ---- pass, account, worker ------------------------------------------------- */

struct pass;
struct acct;

struct fjob {
	const struct folder_map *m;
	struct report_folder *rf;
	char		 src_wire[WIRE_MAX];
	char		 dst_wire[WIRE_MAX];
	struct imap_status_info sst, dst;	/* LIST-STATUS / STATUS */
	int		 have_sst, have_dst;
	int		 skip;		/* CREATE failed: reported */
	const char	*special;	/* CREATE ... (USE (flag)) */
};

struct side {
	struct imap_client *c;
	int		 state;		/* 0 connecting, 1 ready, -1 closed */
	struct wres	 closed;
	char		 selected[WIRE_MAX];
	int		 selected_rw;
	/* PERMANENTFLAGS of the selected destination mailbox */
	struct strlist	 permflags;
	int		 permflags_known, perm_keywords;
};

struct worker {
	struct acct	*a;
	struct event_base *base;
	struct event	*tick;		/* 1 s: notices a stop request */
	double		 stop_seen;
	struct side	 s[2];
	int		 holds_slot;
};

struct acct {
	struct pass	*p;
	const struct account *acc;
	struct report_account *ra;
	size_t		 idx;
	char		 lc_user[ACCOUNTS_USER_MAX + 1];
	struct folder_plan *plan;
	struct fjob	*jobs;
	size_t		 njobs, next;
	pthread_mutex_t	 mu;
	int		 failed;
	double		 t0;
	/* destination capabilities (from the first connection) */
	int		 dst_multi, dst_uidplus, dst_condstore;
	int		 src_condstore;
	uint64_t	 dst_appendlimit;
	int		 ledger;	/* ledger non-empty: look bodies up */
	int64_t		 ledger_since;	/* ...of messages dated from then on */
};

struct pass {
	const struct sync_pass_opts *o;
	struct report	*r;
	struct sync_progress *pr;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 slots;		/* free connection pairs */
	int		 running;	/* account threads alive */
	/* rate limiter */
	pthread_mutex_t	 rmu;
	double		 rstart;
	uint64_t	 rmsgs, rbytes;
};

static int
stopping(const struct acct *a)
{
	return (a->p->o->stop != NULL && *a->p->o->stop);
}

/* Connection slots: one per pair; blocking for the account's first. */
static int
slot_take(struct pass *p, int wait)
{
	int ok = 0;

	pthread_mutex_lock(&p->mu);
	while (p->slots == 0 && wait && !(p->o->stop && *p->o->stop)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	if (p->slots > 0) {
		p->slots--;
		ok = 1;
	}
	pthread_mutex_unlock(&p->mu);
	return (ok);
}

static void
slot_give(struct pass *p)
{
	pthread_mutex_lock(&p->mu);
	p->slots++;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* rate_wait - hold the caller until msgs/bytes fit the configured rates */
static void
rate_wait(struct acct *a, uint64_t msgs, uint64_t bytes)
{
	struct pass *p = a->p;
	const struct config *cfg = p->o->cfg;
	double need = 0, t, wait;
	uint64_t mps = (uint64_t)cfg->syncd.max_messages_per_second;
	uint64_t bps = cfg->syncd.max_bytes_per_second;

	if (mps == 0 && bps == 0)
		return;
	/* a batch goes out once the time its messages and bytes are worth
	 * has passed since the pass began (counting every batch before
	 * it, of every thread): the rates are never exceeded */
	pthread_mutex_lock(&p->rmu);
	p->rmsgs += msgs;
	p->rbytes += bytes;
	if (mps)
		need = (double)p->rmsgs / (double)mps;
	if (bps && (double)p->rbytes / (double)bps > need)
		need = (double)p->rbytes / (double)bps;
	t = now_mono() - p->rstart;
	pthread_mutex_unlock(&p->rmu);
	wait = need - t;
	if (wait > 0)
		sleep_ms((uint64_t)(wait * 1000), p->o->stop);
}

/* progress helpers (all under the pass's progress mutex) */
static void
prog_add(struct acct *a, uint64_t copied, uint64_t dups, uint64_t policy,
    uint64_t failed, uint64_t bytes)
{
	struct sync_progress *pr = a->p->pr;
	struct sync_acct_progress *ap = &pr->acc[a->idx];

	pthread_mutex_lock(&pr->mu);
	pr->copied += copied;
	pr->duplicates += dups;
	pr->policy += policy;
	pr->failed += failed;
	/* streamed messages were counted as they went (prog_stream); a
	 * dry run streams nothing */
	pr->bytes += bytes;
	pr->messages_done += dups + policy + (bytes ? copied : 0);
	if (pr->messages_done > pr->messages_total)
		pr->messages_done = pr->messages_total;
	ap->copied += copied;
	ap->failed += failed;
	pthread_mutex_unlock(&pr->mu);
}

/* prog_stream - one message body went through to the destination */
static void
prog_stream(struct acct *a, uint64_t bytes)
{
	struct sync_progress *pr = a->p->pr;

	pthread_mutex_lock(&pr->mu);
	pr->bytes += bytes;
	if (pr->messages_done < pr->messages_total)
		pr->messages_done++;
	pthread_mutex_unlock(&pr->mu);
}

static void
prog_total(struct acct *a, uint64_t msgs)
{
	struct sync_progress *pr = a->p->pr;

	pthread_mutex_lock(&pr->mu);
	pr->messages_total += msgs;
	pthread_mutex_unlock(&pr->mu);
}

/* ---- connections ----------------------------------------------------------- */

static void
conn_cb(struct imap_client *c, enum imap_client_event ev,
    const struct imap_result *res, void *arg)
{
	struct side *s = arg;

	(void)c;
	if (ev == IMAP_CLIENT_READY) {
		s->state = 1;
		return;
	}
	s->state = -1;
	wres_fill(&s->closed, res);
	s->selected[0] = '\0';
}

/* run the loop until *flag is set; -1 when the loop has nothing left */
static int
loop_until(struct worker *w, const int *flag)
{
	while (!*flag) {
		if (event_base_loop(w->base, EVLOOP_ONCE) != 0)
			return (*flag ? 0 : -1);
	}
	return (0);
}

static int
state_nonzero(const struct side *s)
{
	return (s->state != 0);
}

static void
side_close(struct side *s)
{
	imap_client_free(&s->c);
	s->state = -1;
	s->selected[0] = '\0';
}

/* side_start - begin one connection attempt (READY comes later) */
static int
side_start(struct worker *w, int i, char *err, size_t errlen)
{
	struct acct *a = w->a;
	const struct config *cfg = a->p->o->cfg;
	const struct imap_url *u = i == SRC ? &cfg->syncd.source :
	    &cfg->syncd.destination;
	const struct account_secret *sec = i == SRC ? &a->acc->src :
	    &a->acc->dst;
	struct imap_client_opts o;
	struct side *s = &w->s[i];
	char secret[ACCOUNTS_SECRET_MAX + 1], logid[128], e[256];

	side_close(s);
	memset(&o, 0, sizeof(o));
	o.host = u->addr.host;
	o.port = u->addr.port;
	o.tls = u->tls == CFG_IMAP_TLS_IMPLICIT ? IMAP_TLS_IMPLICIT :
	    u->tls == CFG_IMAP_TLS_STARTTLS ? IMAP_TLS_STARTTLS :
	    IMAP_TLS_NONE;
	o.ssl_ctx = i == SRC ? a->p->o->src_ctx : a->p->o->dst_ctx;
	o.tls_no_verify = !cfg->syncd.tls_verify;
	o.user = i == SRC ? a->acc->src_user : a->acc->dst_user;
	if (accounts_secret(sec, secret, sizeof(secret), e, sizeof(e)) ==
	    -1) {
		errbuf_set(err, errlen, "%s secret: %s", side_name[i], e);
		return (-1);
	}
	o.secret = secret;
	o.auth = sec->auth == ACCOUNT_AUTH_XOAUTH2 ? IMAP_AUTH_XOAUTH2 :
	    IMAP_AUTH_AUTO;
	o.enable = IMAP_ENABLE_CONDSTORE;
	o.id_name = "mailferry";
	o.id_version = PACKAGE_VERSION;
	o.window = 16;
	snprintf(logid, sizeof(logid), "%s:%s", side_name[i], o.user);
	o.log_id = logid;
	s->state = 0;
	s->c = imap_client_new(w->base, &o, conn_cb, s, e, sizeof(e));
	explicit_bzero(secret, sizeof(secret));
	if (s->c == NULL) {
		s->state = -1;
		errbuf_set(err, errlen, "%s: %s", side_name[i], e);
		return (-1);
	}
	return (0);
}

/* side_finish - wait for a started connection; 0 ready, -1, -2 (auth
 * or permanent: no retry) */
static int
side_finish(struct worker *w, int i, char *err, size_t errlen)
{
	struct acct *a = w->a;
	const struct config *cfg = a->p->o->cfg;
	struct side *s = &w->s[i];
	int flag;

	for (;;) {
		flag = state_nonzero(s);
		if (flag)
			break;
		if (event_base_loop(w->base, EVLOOP_ONCE) != 0)
			break;
	}
	if (s->state != 1) {
		char why[400];

		wres_reason(&s->closed, why, sizeof(why));
		errbuf_set(err, errlen, "%s %s@%s: %s", side_name[i],
		    i == SRC ? a->acc->src_user : a->acc->dst_user,
		    i == SRC ? cfg->syncd.source.addr.host :
		    cfg->syncd.destination.addr.host, why);
		return (s->closed.cls == IMAP_ERR_AUTH ||
		    s->closed.cls == IMAP_ERR_PERM ? -2 : -1);
	}
	return (0);
}

/* side_connect - one connection attempt; 0 when ready */
static int
side_connect(struct worker *w, int i, char *err, size_t errlen)
{
	if (side_start(w, i, err, errlen) == -1)
		return (-1);
	return (side_finish(w, i, err, errlen));
}

/*
 * sides_connect - both connections at once (logins overlap); a side
 * that fails is left to side_ensure()'s retries.  ready (may be NULL)
 * is called for each side as soon as it is ready, so that its first
 * commands need not wait for the other side's login.
 */
typedef void (*side_ready_fn)(struct worker *w, int i, void *arg);

static void
sides_connect(struct worker *w, side_ready_fn ready, void *arg)
{
	char err[400];
	int i, pending, started[2] = { 0, 0 };

	for (i = 0; i < 2; i++)
		if (w->s[i].c == NULL || w->s[i].state != 1)
			started[i] = side_start(w, i, err, sizeof(err)) == 0;
		else if (ready != NULL)
			ready(w, i, arg);
	for (;;) {
		pending = 0;
		for (i = 0; i < 2; i++) {
			if (!started[i])
				continue;
			if (w->s[i].state == 0) {
				pending = 1;
				continue;
			}
			started[i] = 0;
			if (w->s[i].state == 1 && ready != NULL)
				ready(w, i, arg);
		}
		if (!pending || event_base_loop(w->base, EVLOOP_ONCE) != 0)
			break;
	}
}

/*
 * side_ensure - a ready connection, reconnecting with backoff (1 s,
 * doubling, or the server's suggested time) when it dropped.
 * 0, or -1 with err (not retried for authentication errors).
 */
static int
side_ensure(struct worker *w, int i, char *err, size_t errlen)
{
	uint64_t delay = 1000;
	int tries, rc;

	if (w->s[i].c != NULL && w->s[i].state == 1)
		return (0);
	for (tries = 0; tries < RECONNECT_TRIES; tries++) {
		if (tries > 0) {
			uint64_t d = w->s[i].closed.backoff_ms > delay ?
			    w->s[i].closed.backoff_ms : delay;

			if (d > 60000)
				d = 60000;
			log_info("%s: %s: reconnecting in %" PRIu64 " ms "
			    "(%s)", w->a->acc->src_user, side_name[i], d, err);
			sleep_ms(d, w->a->p->o->stop);
			delay *= 2;
		}
		if (stopping(w->a)) {
			errbuf_set(err, errlen, "interrupted");
			return (-1);
		}
		rc = side_connect(w, i, err, errlen);
		if (rc == 0)
			return (0);
		if (rc == -2)
			return (-1);	/* auth or permanent: no retry */
	}
	return (-1);
}

/* run a queued command to its end */
static int
cmd_wait(struct worker *w, struct imap_cmd *cmd, struct wres *r)
{
	if (cmd == NULL) {
		r->done = 1;
		r->status = IMAP_ERROR;
		r->cls = IMAP_ERR_TEMP;
		snprintf(r->text, sizeof(r->text), "command not queued");
		return (-1);
	}
	if (loop_until(w, &r->done) == -1) {
		r->status = IMAP_ERROR;
		r->cls = IMAP_ERR_TEMP;
		snprintf(r->text, sizeof(r->text), "event loop empty");
		return (-1);
	}
	return (r->status == IMAP_OK ? 0 : -1);
}

/* side_select - EXAMINE (or SELECT when rw) unless already there */
/*
 * side_select_begin - queue EXAMINE (SELECT when rw, never on the
 * source) unless that mailbox is selected already: 1 = already there
 * (r filled), 0 = queued (finish with side_select_end), -1 = not
 * queued.  Split so that both sides' selects can overlap.
 */
static int
side_select_begin(struct worker *w, int i, const char *wire, int rw,
    struct wres *r)
{
	struct side *s = &w->s[i];
	const struct imap_mailbox *mb;
	unsigned flags;

	memset(r, 0, sizeof(*r));
	if (i == SRC)
		rw = 0;		/* never SELECT the source */
	if (s->c != NULL && s->state == 1 && strcmp(s->selected, wire) == 0 &&
	    (s->selected_rw || !rw) && (mb = imap_client_mailbox(s->c)) !=
	    NULL) {
		r->done = 1;
		r->status = IMAP_OK;
		r->mb = *mb;
		r->have_mb = 1;
		return (1);
	}
	flags = rw ? 0 : IMAP_SELECT_READONLY;
	if (i == SRC && w->a->src_condstore)
		flags |= IMAP_SELECT_CONDSTORE;
	s->selected[0] = '\0';
	if (s->c == NULL || imap_client_select(s->c, wire, flags, NULL, NULL,
	    done_cb, r) == NULL) {
		r->done = 1;
		r->status = IMAP_ERROR;
		r->cls = IMAP_ERR_TEMP;
		snprintf(r->text, sizeof(r->text), "not connected");
		return (-1);
	}
	return (0);
}

static int
side_select_end(struct worker *w, int i, const char *wire, int rw,
    struct wres *r)
{
	struct side *s = &w->s[i];
	const struct imap_mailbox *mb;
	size_t k;

	if (i == SRC)
		rw = 0;
	if (loop_until(w, &r->done) == -1 || r->status != IMAP_OK)
		return (-1);
	snprintf(s->selected, sizeof(s->selected), "%s", wire);
	s->selected_rw = rw;
	if (i == DST && (mb = imap_client_mailbox(s->c)) != NULL) {
		strlist_clear(&s->permflags);
		s->permflags_known = mb->permflags_known;
		s->perm_keywords = mb->perm_keywords;
		for (k = 0; k < mb->permflags.n; k++)
			strlist_add(&s->permflags, mb->permflags.v[k],
			    strlen(mb->permflags.v[k]));
	}
	return (0);
}

static int
side_select(struct worker *w, int i, const char *wire, int rw,
    struct wres *r)
{
	int rc = side_select_begin(w, i, wire, rw, r);

	if (rc != 0)
		return (rc == 1 ? 0 : -1);
	return (side_select_end(w, i, wire, rw, r));
}

/* ---- source messages -------------------------------------------------------- */

struct smsg {
	uint64_t	 uid, size;
	int64_t		 idate;
	int		 tz;
	char		 idate_s[IMAP_DATE_TIME_MAX];
	char		*flags;		/* settable flags, space-separated */
	char		*msgid;		/* canonical, or "" */
	char		*date, *from;	/* only without a Message-ID */
	unsigned char	 ckey[STATE_CKEY_LEN];
	int		 in_map;
	int		 done;		/* accounted for in this pass */
	int		 temp_fails;
	int		 no_keywords;	/* retry without keywords */
};

struct smsgv {
	struct smsg	*v;
	size_t		 n, alloc;
};

static void
smsgv_free(struct smsgv *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].flags);
		free(l->v[i].msgid);
		free(l->v[i].date);
		free(l->v[i].from);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* flags_join - the settable flags of a FETCH, space-separated */
static char *
flags_join(const struct imap_strv *fl)
{
	size_t i, len = 1;
	char *s;

	for (i = 0; i < fl->n; i++)
		len += strlen(fl->v[i]) + 1;
	if ((s = malloc(len)) == NULL)
		return (NULL);
	s[0] = '\0';
	for (i = 0; i < fl->n; i++) {
		if (!imap_flag_settable(fl->v[i]))
			continue;
		if (s[0])
			strcat(s, " ");
		strcat(s, fl->v[i]);
	}
	return (s);
}

struct metafetch {
	struct wres	 r;		/* first: done_cb fills it */
	struct imap_cmd	*queued;	/* the FETCH, until done */
	struct smsgv	*out;
	uint64_t	 min_uid;	/* drop UIDs below (the "n:*" case) */
	char		*hdr;
	size_t		 hlen;
	int		 want_hdr;
	struct msg_ident *id;
	int		 oom;
};

static void
meta_body_begin(struct imap_client *c, const struct imap_fetch_msg *m,
    const char *section, uint64_t size, void *arg)
{
	struct metafetch *mf = arg;

	(void)c;
	(void)m;
	(void)section;
	(void)size;
	mf->hlen = 0;
}

static void
meta_body_data(struct imap_client *c, const void *data, size_t len,
    void *arg)
{
	struct metafetch *mf = arg;
	size_t n = len;

	(void)c;
	if (mf->hlen + n > HDR_MAX)
		n = HDR_MAX - mf->hlen;
	memcpy(mf->hdr + mf->hlen, data, n);
	mf->hlen += n;
}

static void
meta_msg(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	struct metafetch *mf = arg;
	struct smsgv *l = mf->out;
	struct smsg *s;

	(void)c;
	if (!(m->have & IMAP_FETCH_UID) || m->uid < mf->min_uid)
		goto out;
	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 256;
		void *p = reallocarray(l->v, na, sizeof(*l->v));

		if (p == NULL) {
			mf->oom = 1;
			goto out;
		}
		l->v = p;
		l->alloc = na;
	}
	s = &l->v[l->n];
	memset(s, 0, sizeof(*s));
	s->uid = m->uid;
	s->size = m->size;
	if (m->have & IMAP_FETCH_INTERNALDATE) {
		s->idate = m->internaldate_t;
		s->tz = m->internaldate_tz;
		imap_parse_format_date_time(s->idate, s->tz, s->idate_s,
		    sizeof(s->idate_s));
	}
	s->flags = flags_join(&m->flags);
	if (mf->want_hdr) {
		memset(mf->id, 0, sizeof(*mf->id));
		msg_ident_from_headers(mf->hdr, mf->hlen, mf->id);
		s->msgid = strdup(mf->id->has_msgid ? mf->id->msgid : "");
		if (!mf->id->has_msgid) {
			s->date = strdup(mf->id->date);
			s->from = strdup(mf->id->from);
			if (s->date == NULL || s->from == NULL)
				mf->oom = 1;
		}
	} else
		s->msgid = strdup("");
	if (s->flags == NULL || s->msgid == NULL) {
		free(s->flags);
		free(s->msgid);
		free(s->date);
		free(s->from);
		mf->oom = 1;
		goto out;
	}
	state_content_key(s->msgid, s->size, s->idate, s->ckey);
	l->n++;
out:
	mf->hlen = 0;
}

static int
smsg_cmp(const void *x, const void *y)
{
	const struct smsg *a = x, *b = y;

	return (a->uid < b->uid ? -1 : a->uid > b->uid);
}

/*
 * fetch_meta_begin - queue a FETCH of UID, FLAGS, INTERNALDATE,
 * RFC822.SIZE and (want_hdr) the identity header fields of uidset on
 * side i; fetch_meta_end waits for it and sorts `out` by UID.  mf is the
 * caller's and must live until fetch_meta_end.  Split so that a delta
 * pass can queue its FETCHes behind the EXAMINE (one round trip).
 */
static int
fetch_meta_begin(struct worker *w, int i, const char *uidset,
    uint64_t min_uid, int want_hdr, struct smsgv *out,
    struct metafetch *mf)
{
	static const struct imap_fetch_cbs cbs = { meta_body_begin,
	    meta_body_data, NULL, meta_msg, NULL };

	memset(mf, 0, sizeof(*mf));
	mf->out = out;
	mf->min_uid = min_uid;
	mf->want_hdr = want_hdr;
	mf->hdr = malloc(HDR_MAX);
	mf->id = malloc(sizeof(*mf->id));
	if (mf->hdr == NULL || mf->id == NULL) {
		mf->oom = 1;
		mf->r.done = 1;
		return (-1);
	}
	mf->queued = imap_client_uid_fetch(w->s[i].c, uidset, want_hdr ?
	    "(UID FLAGS INTERNALDATE RFC822.SIZE "
	    "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM)])" :
	    "(UID FLAGS INTERNALDATE RFC822.SIZE)", 0, 0, &cbs, done_cb, mf);
	return (mf->queued == NULL ? -1 : 0);
}

static int
fetch_meta_end(struct worker *w, struct metafetch *mf, struct wres *r)
{
	int rc;

	if (mf->oom && mf->queued == NULL) {
		memset(r, 0, sizeof(*r));
		rc = -1;
	} else {
		rc = cmd_wait(w, mf->queued, &mf->r);
		*r = mf->r;
	}
	free(mf->hdr);
	free(mf->id);
	mf->hdr = NULL;
	mf->id = NULL;
	if (mf->oom) {
		snprintf(r->text, sizeof(r->text), "out of memory");
		r->status = IMAP_ERROR;
		r->cls = IMAP_ERR_PERM;
		return (-1);
	}
	sort_n(mf->out->v, mf->out->n, sizeof(*mf->out->v), smsg_cmp);
	return (rc);
}

/* fetch_meta - fetch_meta_begin and _end in one */
static int
fetch_meta(struct worker *w, int i, const char *uidset, uint64_t min_uid,
    int want_hdr, struct smsgv *out, struct wres *r)
{
	struct metafetch mf;

	(void)fetch_meta_begin(w, i, uidset, min_uid, want_hdr, out, &mf);
	return (fetch_meta_end(w, &mf, r));
}


/* ---- flags ----------------------------------------------------------------------- */

/* flag_allowed - may the selected destination mailbox keep this flag? */
static int
flag_allowed(const struct side *d, const char *f)
{
	size_t i;

	if (!imap_flag_settable(f))
		return (0);
	if (!d->permflags_known)
		return (1);
	for (i = 0; i < d->permflags.count; i++)
		if (strcasecmp(d->permflags.items[i], f) == 0)
			return (1);
	return (f[0] != '\\' && d->perm_keywords);
}

/*
 * flags_filter - the flags of src the destination accepts, into a new
 * string; keywords dropped when no_kw.  *dropped_r (may be NULL) gets
 * the dropped ones, for the report.
 */
static char *
flags_filter(const struct side *d, const char *src, int no_kw,
    char *dropped, size_t dlen)
{
	char *copy, *tok, *save = NULL, *out;
	size_t o = 0;

	if (dropped && dlen)
		dropped[0] = '\0';
	if ((copy = strdup(src ? src : "")) == NULL)
		return (NULL);
	if ((out = malloc(strlen(copy) + 1)) == NULL) {
		free(copy);
		return (NULL);
	}
	out[0] = '\0';
	for (tok = strtok_r(copy, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if ((no_kw && tok[0] != '\\') || !flag_allowed(d, tok)) {
			if (dropped && strlen(dropped) + strlen(tok) + 2 < dlen) {
				if (dropped[0])
					strcat(dropped, " ");
				strcat(dropped, tok);
			}
			continue;
		}
		o += (size_t)sprintf(out + o, "%s%s", o ? " " : "", tok);
	}
	free(copy);
	return (out);
}

static int
flag_in(const char *list, const char *f)
{
	size_t n = strlen(f);
	const char *p = list;

	while (p && *p) {
		const char *e = strchr(p, ' ');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == n && strncasecmp(p, f, n) == 0)
			return (1);
		p = e ? e + 1 : NULL;
	}
	return (0);
}

/* flags_diff - tokens of a not in b, space-separated, into out */
static void
flags_diff(const char *a, const char *b, char *out, size_t len)
{
	char *copy, *tok, *save = NULL;
	size_t o = 0;

	out[0] = '\0';
	if ((copy = strdup(a ? a : "")) == NULL)
		return;
	for (tok = strtok_r(copy, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if (flag_in(b, tok) || o + strlen(tok) + 2 >= len)
			continue;
		o += (size_t)snprintf(out + o, len - o, "%s%s", o ? " " : "",
		    tok);
	}
	free(copy);
}

/* ---- destination look-ups (intents, no UIDPLUS) --------------------------------- */

static int
search_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e ||
		    *s == '"' || *s == '\\')
			return (0);
	return (1);
}

struct uidlist {
	struct wres	 r;		/* first: done_cb fills it */
	uint64_t	*v;
	size_t		 n, alloc;
	int		 oom;
};

static void
uid_cb(struct imap_client *c, uint64_t uid, void *arg)
{
	struct uidlist *l = arg;

	(void)c;
	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 64;
		void *p = reallocarray(l->v, na, sizeof(*l->v));

		if (p == NULL) {
			l->oom = 1;
			return;
		}
		l->v = p;
		l->alloc = na;
	}
	l->v[l->n++] = uid;
}

static int
u64_cmp(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return (a < b ? -1 : a > b);
}

static int
dst_claimed(const struct state_map *map, uint64_t dst_uid)
{
	size_t i;

	for (i = 0; i < map->n; i++)
		if (map->v[i].dst_uid == dst_uid)
			return (1);
	return (0);
}

/*
 * dst_find - the destination UID (selected mailbox) of a message with
 * this Message-ID, size and INTERNALDATE that no map entry claims yet:
 * 0 = not there, -1 = error (r says why).  The highest match wins.
 */
static int
dst_find(struct worker *w, const struct state_map *map, const char *msgid,
    uint64_t size, int64_t idate, uint64_t *uid_r, struct wres *r)
{
	struct uidlist l;
	struct smsgv meta;
	char crit[MSGID_BUFSIZE + 64], set[64];
	size_t i;
	int rc;

	*uid_r = 0;
	memset(&l, 0, sizeof(l));
	memset(r, 0, sizeof(*r));
	if (msgid != NULL && msgid[0] && search_safe(msgid))
		snprintf(crit, sizeof(crit), "HEADER Message-ID \"%s\"",
		    msgid);
	else
		snprintf(crit, sizeof(crit), "LARGER %" PRIu64 " SMALLER %"
		    PRIu64, size > 0 ? size - 1 : 0, size + 1);
	rc = cmd_wait(w, imap_client_uid_search(w->s[DST].c, crit, uid_cb,
	    done_cb, &l), &l.r);
	*r = l.r;
	if (rc == -1 || l.oom) {
		free(l.v);
		return (-1);
	}
	sort_n(l.v, l.n, sizeof(*l.v), u64_cmp);
	for (i = l.n; i-- > 0;) {
		if (dst_claimed(map, l.v[i]))
			continue;
		memset(&meta, 0, sizeof(meta));
		snprintf(set, sizeof(set), "%" PRIu64, l.v[i]);
		rc = fetch_meta(w, DST, set, 0, 0, &meta, r);
		if (rc == -1) {
			smsgv_free(&meta);
			free(l.v);
			return (-1);
		}
		if (meta.n == 1 && meta.v[0].size == size &&
		    meta.v[0].idate == idate) {
			*uid_r = l.v[i];
			smsgv_free(&meta);
			break;
		}
		smsgv_free(&meta);
	}
	free(l.v);
	return (0);
}

/* ---- the folder ------------------------------------------------------------------ */

struct fctx {
	struct worker	*w;
	struct acct	*a;
	struct fjob	*j;
	struct report_folder *rf;
	struct store	*st;		/* NULL in a dry run */
	int		 dry;
	struct state_key key;
	struct state_folder sf;
	int		 have_state;
	struct state_map map;
	struct imap_mailbox smb, dmb;
	int		 dst_exists;
	int		 problems;	/* failures: not complete */
	uint64_t	 flags_dropped;	/* copies without some flags (the
					   destination's PERMANENTFLAGS) */
	/* map entries of finished APPENDs, committed with the next batch's
	 * intents or the folder record (state_commit): one fsync a batch */
	struct state_map_entry *pend;
	size_t		 npend, apend;
	/* set while the folder is copied by several connections */
	pthread_mutex_t	*rmu;		/* guards rf */
	const struct smsgv *own;	/* this part's messages (sorted) */
	uint64_t	 max_uid;
	/* a delta's FETCHes, queued behind the EXAMINE on the strength of
	 * the LIST-STATUS (delta_prefetch); used once the EXAMINE confirms
	 * the delta, else waited for and dropped (prefetch_drop) */
	struct metafetch pf_new, pf_flags;
	struct smsgv	 pf_newv, pf_flagsv;
	int		 pf_new_q, pf_flags_q;
	uint64_t	 pf_since;
	char		 err[512];
};

static void
rf_lock(struct fctx *fc)
{
	if (fc->rmu != NULL)
		pthread_mutex_lock(fc->rmu);
}

static void
rf_unlock(struct fctx *fc)
{
	if (fc->rmu != NULL)
		pthread_mutex_unlock(fc->rmu);
}

static void
fc_fail(struct fctx *fc, const char *what, const struct wres *r)
{
	char why[400];

	wres_reason(r, why, sizeof(why));
	snprintf(fc->err, sizeof(fc->err), "%s: %s", what, why);
}

/* map_put - record entries in memory and in the store (one txn) */
static int
map_put(struct fctx *fc, const struct state_map_entry *e, size_t n)
{
	char err[256];
	size_t i;

	for (i = 0; i < n; i++)
		if (state_map_set(&fc->map, &e[i]) == -1) {
			snprintf(fc->err, sizeof(fc->err), "out of memory");
			return (-1);
		}
	if (fc->st == NULL || fc->dry)
		return (0);
	if (state_map_commit(fc->st, &fc->key, e, n, NULL, 0, err,
	    sizeof(err)) == -1) {
		snprintf(fc->err, sizeof(fc->err), "state: %s", err);
		return (-1);
	}
	return (0);
}

/* pend_add - finished copies: in memory now, in the store with the
 * next commit */
static int
pend_add(struct fctx *fc, const struct state_map_entry *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (state_map_set(&fc->map, &e[i]) == -1)
			goto oom;
	if (fc->st == NULL || fc->dry)
		return (0);
	if (fc->npend + n > fc->apend) {
		size_t na = (fc->npend + n) * 2;
		void *p = reallocarray(fc->pend, na, sizeof(*fc->pend));

		if (p == NULL)
			goto oom;
		fc->pend = p;
		fc->apend = na;
	}
	memcpy(fc->pend + fc->npend, e, n * sizeof(*e));
	fc->npend += n;
	return (0);
oom:
	snprintf(fc->err, sizeof(fc->err), "out of memory");
	return (-1);
}

/* fc_commit - pending map entries, new intents, the folder record: one
 * transaction */
static int
fc_commit(struct fctx *fc, const struct state_intent *in, size_t nin,
    const struct state_folder *f)
{
	char err[256];

	if (fc->st == NULL || fc->dry)
		return (0);
	if (state_commit(fc->st, &fc->key, fc->pend, fc->npend, in, nin, f,
	    err, sizeof(err)) == -1) {
		snprintf(fc->err, sizeof(fc->err), "state: %s", err);
		return (-1);
	}
	fc->npend = 0;
	return (0);
}

/*
 * fc_ready_then - both connections and the folder selected on each
 * side; queued (may be NULL) is called once both selects are queued and
 * before they are answered, to queue what should follow them at once.
 */
typedef void (*fc_queued_fn)(struct fctx *fc);

static int
fc_ready_then(struct fctx *fc, int dst_rw, fc_queued_fn queued)
{
	struct worker *w = fc->w;
	struct wres r, rd;
	char err[400];
	int qd, qs;

	if (fc->dst_exists && (w->s[SRC].c == NULL || w->s[SRC].state != 1) &&
	    (w->s[DST].c == NULL || w->s[DST].state != 1))
		sides_connect(w, NULL, NULL);
	if (side_ensure(w, SRC, err, sizeof(err)) == -1 ||
	    (fc->dst_exists && side_ensure(w, DST, err, sizeof(err)) == -1)) {
		snprintf(fc->err, sizeof(fc->err), "%s", err);
		return (-1);
	}
	/* both sides' selects overlap; always SELECT the destination: an
	 * EXAMINEd mailbox reports PERMANENTFLAGS (), which would filter
	 * away every flag */
	(void)dst_rw;
	qd = fc->dst_exists ? side_select_begin(w, DST, fc->j->dst_wire, 1,
	    &rd) : 1;
	qs = side_select_begin(w, SRC, fc->j->src_wire, 0, &r);
	if (qs == 0 && queued != NULL)
		queued(fc);
	if (qs == -1 || (qs == 0 && side_select_end(w, SRC, fc->j->src_wire,
	    0, &r) == -1)) {
		if (qd == 0)
			loop_until(w, &rd.done);
		fc_fail(fc, "EXAMINE source", &r);
		return (-1);
	}
	if (fc->smb.uidvalidity && r.mb.uidvalidity != fc->smb.uidvalidity) {
		snprintf(fc->err, sizeof(fc->err), "source UIDVALIDITY "
		    "changed during the pass");
		return (-1);
	}
	fc->smb = r.mb;
	if (!fc->dst_exists)
		return (0);
	if (qd == -1 || (qd == 0 && side_select_end(w, DST, fc->j->dst_wire,
	    1, &rd) == -1)) {
		fc_fail(fc, "SELECT destination", &rd);
		return (-1);
	}
	if (fc->dmb.uidvalidity && rd.mb.uidvalidity != fc->dmb.uidvalidity) {
		snprintf(fc->err, sizeof(fc->err), "destination UIDVALIDITY "
		    "changed during the pass");
		return (-1);
	}
	fc->dmb = rd.mb;
	return (0);
}

static int
fc_ready(struct fctx *fc, int dst_rw)
{
	return (fc_ready_then(fc, dst_rw, NULL));
}

static const struct imap_fetch_cbs flag_fetch_cbs = { NULL, NULL, NULL,
    meta_msg, NULL };

/* flags_fetch_begin - queue UID FETCH set (UID FLAGS) [CHANGEDSINCE] */
static int
flags_fetch_begin(struct worker *w, const char *set, uint64_t since,
    struct smsgv *out, struct metafetch *mf)
{
	memset(mf, 0, sizeof(*mf));
	mf->out = out;
	mf->queued = imap_client_uid_fetch(w->s[SRC].c, set, "(UID FLAGS)",
	    since, 0, &flag_fetch_cbs, done_cb, mf);
	return (mf->queued == NULL ? -1 : 0);
}

/* flags_since - the CHANGEDSINCE of a delta's flag look (0: a full
 * flags scan), given the source's HIGHESTMODSEQ now (0 if unknown) */
static uint64_t
flags_since(const struct fctx *fc, uint64_t highestmodseq)
{
	uint64_t since = fc->sf.src_highestmodseq;

	if (!(fc->a->src_condstore && since > 0 && highestmodseq > 0))
		return (0);
	return (since);
}

/*
 * delta_prefetch - fc_ready_then's hook for a folder whose state says
 * "delta": the new-UID FETCH, or when nothing is new the flag look, goes
 * out right behind the EXAMINE, predicted from this pass's LIST-STATUS;
 * sync_folder checks the prediction against the EXAMINE before using
 * it.
 */
static void
delta_prefetch(struct fctx *fc)
{
	const struct fjob *j = fc->j;
	const struct state_folder *sf = &fc->sf;
	uint64_t hms = (j->sst.have & IMAP_STATUS_HIGHESTMODSEQ) ?
	    j->sst.highestmodseq : 0;
	char set[64];

	if ((j->sst.have & IMAP_STATUS_UIDNEXT) &&
	    j->sst.uidnext > sf->src_last_uid + 1) {
		snprintf(set, sizeof(set), "%" PRIu64 ":*",
		    sf->src_last_uid + 1);
		fc->pf_new_q = 1;
		(void)fetch_meta_begin(fc->w, SRC, set, sf->src_last_uid + 1,
		    1, &fc->pf_newv, &fc->pf_new);
	}
	/*
	 * One FETCH at most: the untagged FETCH responses of two pipelined
	 * FETCHes may interleave (RFC 3501 5.5; Dovecot runs UID FETCHes
	 * concurrently) and would be given to the older one.
	 */
	fc->pf_since = flags_since(fc, hms);
	if (!fc->pf_new_q && fc->dst_exists && (fc->pf_since == 0 ||
	    hms != fc->pf_since)) {
		snprintf(set, sizeof(set), "1:%" PRIu64, sf->src_last_uid);
		fc->pf_flags_q = 1;
		(void)flags_fetch_begin(fc->w, set, fc->pf_since,
		    &fc->pf_flagsv, &fc->pf_flags);
	}
}

/* prefetch_drop - wait for what delta_prefetch queued and forget it */
static void
prefetch_drop(struct fctx *fc)
{
	struct wres r;

	if (fc->pf_new_q) {
		(void)fetch_meta_end(fc->w, &fc->pf_new, &r);
		fc->pf_new_q = 0;
	}
	if (fc->pf_flags_q) {
		(void)cmd_wait(fc->w, fc->pf_flags.queued, &fc->pf_flags.r);
		fc->pf_flags_q = 0;
	}
	smsgv_free(&fc->pf_newv);
	smsgv_free(&fc->pf_flagsv);
}

/* resolve_intents - settle APPENDs a previous run may have done */
static int
resolve_intents(struct fctx *fc)
{
	struct state_intents il;
	struct state_map_entry e;
	struct wres r;
	char err[256];
	uint64_t uid;
	size_t i;

	if (fc->st == NULL || fc->dry)
		return (0);
	/* finished copies first: their intents must not look unsettled */
	if (fc_commit(fc, NULL, 0, NULL) == -1)
		return (-1);
	memset(&il, 0, sizeof(il));
	if (state_intent_load(fc->st, &fc->key, &il, err, sizeof(err)) ==
	    -1) {
		snprintf(fc->err, sizeof(fc->err), "state: %s", err);
		return (-1);
	}
	for (i = 0; i < il.n; i++) {
		struct state_intent *in = &il.v[i];
		struct smsg key;

		/* while the folder is split, another connection's intents
		 * may be in flight: settle only this part's */
		key.uid = in->src_uid;
		if (fc->own != NULL && find_n(&key, fc->own->v, fc->own->n,
		    sizeof(key), smsg_cmp) == NULL)
			continue;
		if (state_map_find(&fc->map, in->src_uid) != NULL) {
			state_intent_del(fc->st, &fc->key, in->src_uid, err,
			    sizeof(err));
			continue;
		}
		if (fc_ready(fc, 0) == -1)
			goto fail;
		if (dst_find(fc->w, &fc->map, in->msgid, in->size,
		    in->internaldate, &uid, &r) == -1) {
			fc_fail(fc, "SEARCH destination", &r);
			goto fail;
		}
		if (uid == 0) {
			log_info("%s: %s: uid %" PRIu64 " was not appended "
			    "before the interruption: copying it again",
			    fc->a->acc->src_user, fc->j->m->src_path,
			    in->src_uid);
			if (state_intent_del(fc->st, &fc->key, in->src_uid,
			    err, sizeof(err)) == -1) {
				snprintf(fc->err, sizeof(fc->err), "state: %s",
				    err);
				goto fail;
			}
			continue;
		}
		memset(&e, 0, sizeof(e));
		e.src_uid = in->src_uid;
		e.dst_uid = uid;
		e.dst_uidvalidity = fc->dmb.uidvalidity;
		e.size = in->size;
		e.internaldate = in->internaldate;
		e.origin = STATE_ORIGIN_COPIED;
		memcpy(e.ckey, in->ckey, sizeof(e.ckey));
		e.flags = (char *)"";	/* unknown: the flags check fixes it */
		log_info("%s: %s: uid %" PRIu64 " was appended before the "
		    "interruption (destination uid %" PRIu64 ")",
		    fc->a->acc->src_user, fc->j->m->src_path, in->src_uid,
		    uid);
		if (map_put(fc, &e, 1) == -1)
			goto fail;
	}
	state_intents_free(&il);
	return (0);
fail:
	state_intents_free(&il);
	return (-1);
}

/* ckey index of destination messages, for content matching */
struct dkey {
	unsigned char	 ckey[STATE_CKEY_LEN];
	uint64_t	 uid;
	int		 used;
};

static int
dkey_cmp(const void *x, const void *y)
{
	const struct dkey *a = x, *b = y;
	int c = memcmp(a->ckey, b->ckey, STATE_CKEY_LEN);

	if (c)
		return (c);
	return (a->uid < b->uid ? -1 : a->uid > b->uid);
}

/*
 * match_content - map source messages that are not in the map onto
 * unclaimed destination messages with the same content key (first
 * pass over a non-empty destination, UIDVALIDITY change).  old: the
 * map before a UIDVALIDITY reset, so syncd's own copies stay deletable.
 */
static int
match_content(struct fctx *fc, struct smsgv *src, const struct state_map *old)
{
	struct smsgv dm;
	struct dkey *dk = NULL;
	struct state_map_entry *ev = NULL;
	uint64_t *claimed = NULL;
	size_t nclaimed = 0;
	struct wres r;
	size_t i, n = 0, ne = 0;
	int rc = -1;

	memset(&dm, 0, sizeof(dm));
	if (fc_ready(fc, 0) == -1)
		return (-1);
	if (fetch_meta(fc->w, DST, "1:*", 0, 1, &dm, &r) == -1) {
		fc_fail(fc, "FETCH destination", &r);
		goto out;
	}
	if (dm.n == 0) {
		rc = 0;
		goto out;
	}
	if ((dk = calloc(dm.n, sizeof(*dk))) == NULL ||
	    (ev = calloc(src->n ? src->n : 1, sizeof(*ev))) == NULL) {
		snprintf(fc->err, sizeof(fc->err), "out of memory");
		goto out;
	}
	if ((claimed = calloc(fc->map.n + 1, sizeof(*claimed))) == NULL) {
		snprintf(fc->err, sizeof(fc->err), "out of memory");
		goto out;
	}
	for (i = 0; i < fc->map.n; i++)
		claimed[nclaimed++] = fc->map.v[i].dst_uid;
	sort_n(claimed, nclaimed, sizeof(*claimed), u64_cmp);
	for (i = 0; i < dm.n; i++) {
		if (find_n(&dm.v[i].uid, claimed, nclaimed, sizeof(*claimed),
		    u64_cmp) != NULL)
			continue;
		memcpy(dk[n].ckey, dm.v[i].ckey, STATE_CKEY_LEN);
		dk[n++].uid = dm.v[i].uid;
	}
	sort_n(dk, n, sizeof(*dk), dkey_cmp);
	for (i = 0; i < src->n; i++) {
		struct smsg *s = &src->v[i];
		struct dkey k, *hit;
		size_t lo = 0, hi = n, j;

		if (s->in_map)
			continue;
		memcpy(k.ckey, s->ckey, STATE_CKEY_LEN);
		/* first entry with this ckey */
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (memcmp(dk[mid].ckey, k.ckey, STATE_CKEY_LEN) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		hit = NULL;
		for (j = lo; j < n && memcmp(dk[j].ckey, k.ckey,
		    STATE_CKEY_LEN) == 0; j++)
			if (!dk[j].used) {
				hit = &dk[j];
				break;
			}
		if (hit == NULL)
			continue;
		hit->used = 1;
		ev[ne].src_uid = s->uid;
		ev[ne].dst_uid = hit->uid;
		ev[ne].dst_uidvalidity = fc->dmb.uidvalidity;
		ev[ne].size = s->size;
		ev[ne].internaldate = s->idate;
		ev[ne].origin = STATE_ORIGIN_MATCHED;
		if (old != NULL) {
			size_t q;

			for (q = 0; q < old->n; q++)
				if (old->v[q].dst_uid == hit->uid &&
				    old->v[q].dst_uidvalidity ==
				    fc->dmb.uidvalidity &&
				    old->v[q].origin == STATE_ORIGIN_COPIED)
					ev[ne].origin = STATE_ORIGIN_COPIED;
		}
		memcpy(ev[ne].ckey, s->ckey, STATE_CKEY_LEN);
		ev[ne].flags = s->flags;
		s->in_map = 1;
		ne++;
	}
	if (ne > 0) {
		log_info("%s: %s: %zu message(s) already on the destination "
		    "(matched by content)", fc->a->acc->src_user,
		    fc->j->m->src_path, ne);
		if (map_put(fc, ev, ne) == -1)
			goto out;
	}
	rc = 0;
out:
	free(claimed);
	free(dk);
	free(ev);
	smsgv_free(&dm);
	return (rc);
}

/* ---- flag changes ---------------------------------------------------------------- */

static int
apply_flags(struct fctx *fc, struct smsgv *changed)
{
	struct worker *w = fc->w;
	struct state_map_entry *ev;
	struct wres *rs;
	size_t i, ne = 0, nc = 0, nrs = 0;
	char add[STATE_FLAGS_MAX], del[STATE_FLAGS_MAX], set[32];
	int rc = 0;

	if (changed->n == 0)
		return (0);
	for (i = 0; i < changed->n; i++) {
		struct state_map_entry *e = state_map_find(&fc->map,
		    changed->v[i].uid);

		if (e != NULL && e->dst_uid != 0 &&
		    strcmp(e->flags, changed->v[i].flags) != 0)
			nc++;
	}
	if (nc == 0)
		return (0);
	if (fc->dry) {
		log_info("%s: %s: would change the flags of %zu message(s)",
		    fc->a->acc->src_user, fc->j->m->src_path, nc);
		return (0);
	}
	if (fc_ready(fc, 1) == -1)
		return (-1);
	ev = calloc(nc, sizeof(*ev));
	rs = calloc(2 * nc, sizeof(*rs));
	if (ev == NULL || rs == NULL) {
		free(ev);
		free(rs);
		snprintf(fc->err, sizeof(fc->err), "out of memory");
		return (-1);
	}
	for (i = 0; i < changed->n; i++) {
		struct state_map_entry *e = state_map_find(&fc->map,
		    changed->v[i].uid);
		char *na, *oa;

		if (e == NULL || e->dst_uid == 0 ||
		    strcmp(e->flags, changed->v[i].flags) == 0)
			continue;
		na = flags_filter(&w->s[DST], changed->v[i].flags, 0, NULL, 0);
		oa = flags_filter(&w->s[DST], e->flags, 0, NULL, 0);
		if (na == NULL || oa == NULL) {
			free(na);
			free(oa);
			continue;
		}
		flags_diff(na, oa, add, sizeof(add));
		flags_diff(oa, na, del, sizeof(del));
		free(na);
		free(oa);
		snprintf(set, sizeof(set), "%" PRIu64, e->dst_uid);
		if (add[0])
			imap_client_uid_store(w->s[DST].c, set,
			    "+FLAGS.SILENT", add, 0, NULL, done_cb, &rs[nrs++])
			    == NULL ? (void)(rs[nrs - 1].done = 1) : (void)0;
		if (del[0])
			imap_client_uid_store(w->s[DST].c, set,
			    "-FLAGS.SILENT", del, 0, NULL, done_cb, &rs[nrs++])
			    == NULL ? (void)(rs[nrs - 1].done = 1) : (void)0;
		ev[ne] = *e;
		ev[ne].flags = changed->v[i].flags;
		ne++;
	}
	for (i = 0; i < nrs; i++) {
		if (loop_until(w, &rs[i].done) == -1 ||
		    rs[i].status != IMAP_OK) {
			fc_fail(fc, "STORE flags on the destination", &rs[i]);
			rc = -1;
		}
	}
	if (rc == 0 && ne > 0) {
		log_info("%s: %s: flags changed on %zu message(s)",
		    fc->a->acc->src_user, fc->j->m->src_path, ne);
		rc = map_put(fc, ev, ne);
	}
	free(ev);
	free(rs);
	return (rc);
}

/* ---- deletions ------------------------------------------------------------------- */

static int
apply_deletions(struct fctx *fc, const uint64_t *live, size_t nlive)
{
	struct worker *w = fc->w;
	uint64_t *gone = NULL;
	size_t i, ng = 0;
	struct wres r;
	char *set = NULL;
	size_t so = 0, sa = 0;
	char err[256];
	int rc = 0;

	for (i = 0; i < fc->map.n; i++) {
		const struct state_map_entry *e = &fc->map.v[i];
		uint64_t *x;

		if (e->origin != STATE_ORIGIN_COPIED || e->dst_uid == 0 ||
		    e->src_uid > fc->max_uid)
			continue;
		if (find_n(&e->src_uid, live, nlive, sizeof(*live),
		    u64_cmp) != NULL)
			continue;
		if ((x = reallocarray(gone, ng + 1, sizeof(*gone))) == NULL) {
			rc = -1;
			goto out;
		}
		gone = x;
		gone[ng++] = e->src_uid;
		if (so + 24 >= sa) {
			char *y = realloc(set, sa ? sa * 2 : 256);

			if (y == NULL) {
				rc = -1;
				goto out;
			}
			set = y;
			sa = sa ? sa * 2 : 256;
		}
		so += (size_t)snprintf(set + so, sa - so, "%s%" PRIu64,
		    so ? "," : "", e->dst_uid);
	}
	if (ng == 0)
		goto out;
	if (fc->dry) {
		log_info("%s: %s: would delete %zu message(s) on the "
		    "destination", fc->a->acc->src_user, fc->j->m->src_path, ng);
		goto out;
	}
	if (!imap_client_has_cap(w->s[DST].c, IMAP_CAP_UIDPLUS)) {
		log_warnx("%s: %s: %zu message(s) deleted on the source stay "
		    "on the destination: it has no UIDPLUS (UID EXPUNGE)",
		    fc->a->acc->src_user, fc->j->m->src_path, ng);
		goto out;
	}
	if (fc_ready(fc, 1) == -1) {
		rc = -1;
		goto out;
	}
	memset(&r, 0, sizeof(r));
	if (cmd_wait(w, imap_client_uid_store(w->s[DST].c, set,
	    "+FLAGS.SILENT", "\\Deleted", 0, NULL, done_cb, &r), &r) == -1) {
		fc_fail(fc, "STORE \\Deleted", &r);
		rc = -1;
		goto out;
	}
	memset(&r, 0, sizeof(r));
	if (cmd_wait(w, imap_client_uid_expunge(w->s[DST].c, set, done_cb,
	    &r), &r) == -1) {
		fc_fail(fc, "UID EXPUNGE", &r);
		rc = -1;
		goto out;
	}
	log_info("%s: %s: deleted %zu message(s) on the destination "
	    "(deleted on the source)", fc->a->acc->src_user,
	    fc->j->m->src_path, ng);
	if (fc->st && state_map_commit(fc->st, &fc->key, NULL, 0, gone, ng,
	    err, sizeof(err)) == -1) {
		snprintf(fc->err, sizeof(fc->err), "state: %s", err);
		rc = -1;
	}
out:
	free(gone);
	free(set);
	return (rc);
}

/* ---- ledger ---------------------------------------------------------------------- */

/* How much earlier than its ledger entry the old host's copy of a relayed
 * message may be dated, beyond the relay's queue lifetime (clock skew,
 * a sender's own retries). */
#define LEDGER_SLACK	(2 * 86400)

struct hashfetch {
	struct wres	 r;		/* first: done_cb fills it */
	struct smsgv	*msgs;
	struct body_hash bh;
	int		 open;
	unsigned char	(*sha)[BODY_HASH_LEN];
	int		*have;
};

static void
hash_begin(struct imap_client *c, const struct imap_fetch_msg *m,
    const char *section, uint64_t size, void *arg)
{
	struct hashfetch *h = arg;

	(void)c;
	(void)m;
	(void)section;
	(void)size;
	if (h->open)
		body_hash_free(&h->bh);
	h->open = body_hash_init(&h->bh) == 0;
}

static void
hash_data(struct imap_client *c, const void *data, size_t len, void *arg)
{
	struct hashfetch *h = arg;

	(void)c;
	if (h->open)
		body_hash_update(&h->bh, data, len);
}

static void
hash_msg(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	struct hashfetch *h = arg;
	struct smsg key, *s;

	(void)c;
	if (!h->open)
		return;
	h->open = 0;
	key.uid = m->uid;
	s = (m->have & IMAP_FETCH_UID) ? find_n(&key, h->msgs->v,
	    h->msgs->n, sizeof(key), smsg_cmp) : NULL;
	if (s == NULL) {
		body_hash_free(&h->bh);
		return;
	}
	if (body_hash_final(&h->bh, h->sha[s - h->msgs->v]) == 0)
		h->have[s - h->msgs->v] = 1;
}

/*
 * ledger_check - hash the bodies of the messages to copy (a first
 * streaming FETCH; only the hash state is kept) and skip those the
 * relay already delivered to this mailbox (DESIGN.md §4).
 */
static int
ledger_check(struct fctx *fc, struct smsgv *todo)
{
	static const struct imap_fetch_cbs cbs = { hash_begin, hash_data,
	    NULL, hash_msg, NULL };
	struct hashfetch h;
	struct msg_ident *id;
	size_t i, start;
	char set[HASH_CHUNK * 22], err[256];
	int rc = 0;

	if (todo->n == 0)
		return (0);
	memset(&h, 0, sizeof(h));
	h.msgs = todo;
	h.sha = calloc(todo->n, sizeof(*h.sha));
	h.have = calloc(todo->n, sizeof(*h.have));
	id = calloc(1, sizeof(*id));
	if (h.sha == NULL || h.have == NULL || id == NULL) {
		rc = -1;
		snprintf(fc->err, sizeof(fc->err), "out of memory");
		goto out;
	}
	for (start = 0; start < todo->n; start = i) {
		size_t o = 0, nset = 0;

		/* Only messages the relay could have delivered: dated no
		 * earlier than the ledger's oldest entry (less the relay's
		 * queue lifetime, a copy's longest way to the provider). */
		for (i = start; i < todo->n && nset < HASH_CHUNK; i++) {
			if (todo->v[i].idate < fc->a->ledger_since)
				continue;
			o += (size_t)snprintf(set + o, sizeof(set) - o,
			    "%s%" PRIu64, o ? "," : "", todo->v[i].uid);
			nset++;
		}
		if (nset == 0)
			continue;
		if (fc_ready(fc, 0) == -1) {
			rc = -1;
			goto out;
		}
		memset(&h.r, 0, sizeof(h.r));
		if (cmd_wait(fc->w, imap_client_uid_fetch(fc->w->s[SRC].c, set,
		    "(UID BODY.PEEK[])", 0, 0, &cbs, done_cb, &h), &h.r) == -1) {
			if (h.open)
				body_hash_free(&h.bh);
			h.open = 0;
			fc_fail(fc, "FETCH source (ledger hash)", &h.r);
			rc = -1;
			goto out;
		}
	}
	for (i = 0; i < todo->n; i++) {
		struct smsg *s = &todo->v[i];
		const char *mb[2] = { fc->a->acc->dst_user,
		    fc->a->acc->src_user };
		int k, hit = 0;

		if (!h.have[i])
			continue;
		memset(id, 0, sizeof(*id));
		if (s->msgid[0]) {
			snprintf(id->msgid, sizeof(id->msgid), "%s", s->msgid);
			id->has_msgid = 1;
		} else {
			snprintf(id->date, sizeof(id->date), "%s",
			    s->date ? s->date : "");
			snprintf(id->from, sizeof(id->from), "%s",
			    s->from ? s->from : "");
		}
		for (k = 0; k < 2 && hit <= 0; k++) {
			if (k == 1 && strcasecmp(mb[0], mb[1]) == 0)
				break;
			hit = state_ledger_hit(fc->st, mb[k], id, h.sha[i], err,
			    sizeof(err));
		}
		if (hit == STATE_LEDGER_PENDING) {
			/* This pass only, no map entry: the relay drops the
			 * entry if it gives up, and the folder, left
			 * incomplete, is looked at again next pass. */
			s->done = 1;
			fc->problems++;
			fc->rf->duplicates++;
			log_info("%s: %s: uid %" PRIu64 " skipped for this "
			    "pass: the relay still holds it (ledger)",
			    fc->a->acc->src_user, fc->j->m->src_path, s->uid);
			continue;
		}
		if (hit == STATE_LEDGER_DELIVERED) {
			struct state_map_entry e;

			memset(&e, 0, sizeof(e));
			e.src_uid = s->uid;
			e.size = s->size;
			e.internaldate = s->idate;
			e.origin = STATE_ORIGIN_LEDGER;
			memcpy(e.ckey, s->ckey, STATE_CKEY_LEN);
			e.flags = s->flags;
			s->done = 1;
			s->in_map = 1;
			fc->rf->duplicates++;
			prog_add(fc->a, 0, 1, 0, 0, 0);
			log_info("%s: %s: uid %" PRIu64 " skipped: the relay "
			    "already delivered it (ledger)",
			    fc->a->acc->src_user, fc->j->m->src_path, s->uid);
			if (map_put(fc, &e, 1) == -1) {
				rc = -1;
				goto out;
			}
		}
	}
out:
	free(h.sha);
	free(h.have);
	free(id);
	return (rc);
}

/* ---- copying: FETCH literal -> APPEND literal ------------------------------------- */

enum cm_state { CM_PENDING = 0, CM_OK, CM_GONE, CM_FAIL, CM_TEMP,
	CM_RETRY_ONE };

struct batch;

struct cmsg {
	struct smsg	*s;
	struct batch	*b;
	char		*flags;		/* filtered for the destination */
	char		 dropped[256];	/* flags the destination lacks */
	int		 declared;
	int		 got_body;
	int		 append_failed;	/* the APPEND said NO */
	enum cm_state	 state;
	uint64_t	 dst_uid;
	struct imap_cmd	*app;		/* single APPEND */
	struct wres	 ares;
	int		 body_done;	/* the whole literal arrived */
	char		 reason[400];
};

struct batch {
	struct wres	 fres;		/* first: the FETCH's outcome */
	struct worker	*w;
	struct fctx	*fc;
	struct cmsg	*v;
	size_t		 n;
	int		 multi;
	struct imap_cmd	*app;		/* MULTIAPPEND */
	struct wres	 ares;
	int		 app_started;
	struct cmsg	*cur;		/* body being streamed */
	size_t		 ndeclared;
	size_t		 nseen;		/* bodies begun */
	int		 src_paused;
	int		 dst_dead;
	size_t		*order;		/* declared order -> index */
};

static void
b_writable(struct imap_client *c, struct imap_cmd *cmd, void *arg)
{
	struct batch *b = arg;

	(void)c;
	(void)cmd;
	if (b->src_paused && b->w->s[SRC].c != NULL) {
		b->src_paused = 0;
		imap_client_resume_read(b->w->s[SRC].c);
	}
}

/* the same for a single APPEND, whose callbacks get the message */
static void
cm_writable(struct imap_client *c, struct imap_cmd *cmd, void *arg)
{
	struct cmsg *cm = arg;

	b_writable(c, cmd, cm->b);
}

static void
multi_done(struct imap_client *c, const struct imap_result *res, void *arg)
{
	struct batch *b = arg;

	(void)c;
	wres_fill(&b->ares, res);
	b->app = NULL;
	b_writable(c, NULL, b);
}

static void
single_done(struct imap_client *c, const struct imap_result *res,
    void *arg)
{
	struct cmsg *cm = arg;

	(void)c;
	wres_fill(&cm->ares, res);
	cm->app = NULL;
	b_writable(c, NULL, cm->b);
}

/*
 * Which message a body belongs to: by the UID sent before it (Dovecot
 * and most servers send UID first when it is asked first), else the
 * next one in UID order - servers answer in sequence order, and the
 * batch is sorted by UID.  One FETCH command carries the whole batch:
 * with several pipelined FETCHes a server may interleave their
 * responses, and the client could not route them to the right one.
 */
static struct cmsg *
batch_find(struct batch *b, const struct imap_fetch_msg *m)
{
	size_t i;

	if (m->have & IMAP_FETCH_UID) {
		for (i = 0; i < b->n; i++)
			if (b->v[i].s->uid == m->uid)
				return (b->v[i].got_body ? NULL : &b->v[i]);
		return (NULL);
	}
	for (i = 0; i < b->n; i++)
		if (!b->v[i].got_body)
			return (&b->v[i]);
	return (NULL);
}

static void
c_body_begin(struct imap_client *c, const struct imap_fetch_msg *m,
    const char *section, uint64_t size, void *arg)
{
	static const struct imap_append_cbs acbs = { b_writable };
	static const struct imap_append_cbs cm_acbs = { cm_writable };
	struct batch *b = arg;
	struct cmsg *cm;
	struct imap_client *dst = b->w->s[DST].c;
	struct imap_append_msg am;
	struct imap_cmd *app;
	char err[256];

	(void)c;
	(void)section;
	b->cur = cm = batch_find(b, m);
	if (cm == NULL)
		return;
	cm->got_body = 1;
	b->nseen++;
	if (b->dst_dead || dst == NULL)
		return;
	if (b->multi) {
		if (!b->app_started) {
			b->app = imap_client_append(dst, b->fc->j->dst_wire,
			    &acbs, multi_done, b);
			b->app_started = 1;
			if (b->app == NULL) {
				b->ares.done = 1;
				b->ares.status = IMAP_ERROR;
				b->ares.cls = IMAP_ERR_TEMP;
				snprintf(b->ares.text, sizeof(b->ares.text),
				    "APPEND not queued");
			}
		}
		app = b->app;
	} else {
		cm->app = imap_client_append(dst, b->fc->j->dst_wire, &cm_acbs,
		    single_done, cm);
		if (cm->app == NULL) {
			cm->ares.done = 1;
			cm->ares.status = IMAP_ERROR;
			cm->ares.cls = IMAP_ERR_TEMP;
			snprintf(cm->ares.text, sizeof(cm->ares.text),
			    "APPEND not queued");
		}
		app = cm->app;
	}
	if (app == NULL)
		return;
	memset(&am, 0, sizeof(am));
	am.flags = cm->flags;
	am.internaldate = cm->s->idate_s[0] ? cm->s->idate_s : NULL;
	am.size = size;
	if (imap_client_append_msg(dst, app, &am, err, sizeof(err)) == -1) {
		/* an APPEND without its message cannot be closed cleanly:
		 * hang up, the batch is retried after a reconnect */
		snprintf(cm->reason, sizeof(cm->reason), "APPEND: %s", err);
		b->dst_dead = 1;
		side_close(&b->w->s[DST]);
		return;
	}
	cm->declared = 1;
	b->order[b->ndeclared++] = (size_t)(cm - b->v);
}

static void
c_body_data(struct imap_client *c, const void *data, size_t len, void *arg)
{
	struct batch *b = arg;
	struct cmsg *cm = b->cur;
	struct imap_cmd *app;
	int rc;

	if (cm == NULL || !cm->declared || b->dst_dead)
		return;
	if ((app = b->multi ? b->app : cm->app) == NULL)
		return;
	rc = imap_client_append_data(b->w->s[DST].c, app, data, len);
	if (rc == 1 && !b->src_paused) {
		b->src_paused = 1;
		imap_client_pause_read(c);
	}
}

static void
c_body_end(struct imap_client *c, void *arg)
{
	struct batch *b = arg;
	struct cmsg *cm = b->cur;

	(void)c;
	if (cm == NULL)
		return;
	cm->body_done = 1;
	prog_stream(b->fc->a, cm->s->size);
	if (!b->multi && cm->declared && cm->app != NULL && !b->dst_dead)
		imap_client_append_end(b->w->s[DST].c, cm->app);
	b->cur = NULL;
}

static void
c_fetch_done(struct imap_client *c, const struct imap_result *res,
    void *arg)
{
	struct batch *b = arg;

	(void)c;
	wres_fill(&b->fres, res);
	if (res->status != IMAP_OK && b->cur != NULL && b->cur->declared &&
	    !b->dst_dead) {
		/* the source broke mid-literal: the APPEND cannot be
		 * finished; the server discards it when we hang up */
		b->dst_dead = 1;
		side_close(&b->w->s[DST]);
		return;
	}
	if (b->multi && b->app != NULL && !b->dst_dead && b->ndeclared > 0)
		imap_client_append_end(b->w->s[DST].c, b->app);
	if (b->src_paused && res->status != IMAP_OK)
		b->src_paused = 0;
}

static int
batch_finished(const struct batch *b)
{
	size_t i;

	if (!b->fres.done)
		return (0);
	if (b->multi)
		return (b->app == NULL && (!b->app_started || b->ares.done ||
		    b->dst_dead));
	for (i = 0; i < b->n; i++)
		if (b->v[i].app != NULL && !b->dst_dead)
			return (0);
	return (1);
}

static void
batch_loop(struct batch *b)
{
	while (!batch_finished(b)) {
		if (event_base_loop(b->w->base, EVLOOP_ONCE) != 0)
			break;
	}
}

/* 1 when a flag list holds a keyword (no backslash) */
static int
has_keyword(const char *flags)
{
	const char *p = flags;

	while (p && *p) {
		if (*p != '\\' && *p != ' ')
			return (1);
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return (0);
}

/* assign APPENDUID set to the declared messages in order */
static void
assign_uids(struct batch *b, const struct wres *r)
{
	const char *sp = r->appenduid_set;
	uint64_t lo, hi, u = 0, end = 0;
	size_t k;
	int have = 0;

	if (!r->appenduid_validity || r->appenduid_cut)
		return;
	for (k = 0; k < b->ndeclared; k++) {
		if (!have || u > end) {
			if (imap_parse_seqset_next(&sp, &lo, &hi) != 1)
				return;
			u = lo;
			end = hi;
			have = 1;
		}
		b->v[b->order[k]].dst_uid = u++;
	}
}

/*
 * copy_batch - copy n messages in one go: intents committed, FETCHes
 * pipelined on the source, each body streamed into the APPEND
 * (MULTIAPPEND when multi), outcome per message in cm->state.
 */
static int
copy_batch(struct fctx *fc, struct smsg **msgs, size_t n, int multi)
{
	static const struct imap_fetch_cbs fcbs = { c_body_begin, c_body_data,
	    c_body_end, NULL, NULL };
	struct worker *w = fc->w;
	struct batch b;
	struct state_intent *in = NULL;
	struct state_map_entry *ev = NULL;
	char err[256], set[BATCH_MSGS * 22];
	size_t i, ne = 0, nbody, so;
	uint64_t bytes = 0;
	int rc = 0;

	memset(&b, 0, sizeof(b));
	b.w = w;
	b.fc = fc;
	b.n = n;
	b.multi = multi && n > 1;
	b.v = calloc(n, sizeof(*b.v));
	b.order = calloc(n, sizeof(*b.order));
	in = calloc(n, sizeof(*in));
	ev = calloc(n, sizeof(*ev));
	if (b.v == NULL || b.order == NULL || in == NULL || ev == NULL) {
		snprintf(fc->err, sizeof(fc->err), "out of memory");
		rc = -1;
		goto out;
	}
	if (fc_ready(fc, 0) == -1) {
		for (i = 0; i < n; i++)
			msgs[i]->temp_fails++;
		rc = -1;
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct cmsg *cm = &b.v[i];

		cm->s = msgs[i];
		cm->b = &b;
		cm->flags = flags_filter(&w->s[DST], msgs[i]->flags,
		    msgs[i]->no_keywords, cm->dropped, sizeof(cm->dropped));
		if (cm->flags == NULL) {
			snprintf(fc->err, sizeof(fc->err), "out of memory");
			rc = -1;
			goto out;
		}
		in[i].src_uid = msgs[i]->uid;
		in[i].size = msgs[i]->size;
		in[i].internaldate = msgs[i]->idate;
		in[i].tz = msgs[i]->tz;
		in[i].created = (int64_t)time(NULL);
		memcpy(in[i].ckey, msgs[i]->ckey, STATE_CKEY_LEN);
		in[i].msgid = msgs[i]->msgid;
		in[i].dst_name = fc->j->dst_wire;
		bytes += msgs[i]->size;
	}
	rate_wait(fc->a, n, bytes);
	/* the intents: committed before any byte of the APPEND is sent
	 * (with the previous batch's map entries, one transaction) */
	if (fc_commit(fc, in, n, NULL) == -1) {
		rc = -1;
		goto out;
	}
	for (i = 0, so = 0; i < n; i++)
		so += (size_t)snprintf(set + so, sizeof(set) - so, "%s%" PRIu64,
		    i ? "," : "", msgs[i]->uid);
	if (imap_client_uid_fetch(w->s[SRC].c, set, "(UID BODY.PEEK[])", 0,
	    0, &fcbs, c_fetch_done, &b) == NULL) {
		b.fres.done = 1;
		b.fres.status = IMAP_ERROR;
		b.fres.cls = IMAP_ERR_TEMP;
		snprintf(b.fres.text, sizeof(b.fres.text), "FETCH not queued");
	}
	batch_loop(&b);
	if (b.multi && b.ares.status == IMAP_OK && b.ares.done && !b.dst_dead)
		assign_uids(&b, &b.ares);

	/* outcome per message */
	nbody = 0;
	for (i = 0; i < n; i++)
		if (b.v[i].got_body)
			nbody++;
	for (i = 0; i < n; i++) {
		struct cmsg *cm = &b.v[i];
		const struct wres *ar = b.multi ? &b.ares : &cm->ares;

		if (b.fres.status != IMAP_OK && !(cm->body_done &&
		    cm->declared && ar->done && ar->status == IMAP_OK)) {
			cm->state = wres_temp(&b.fres) ? CM_TEMP : CM_FAIL;
			wres_reason(&b.fres, cm->reason, sizeof(cm->reason));
		} else if (!cm->got_body) {
			cm->state = CM_GONE;
		} else if (b.dst_dead || !ar->done || wres_temp(ar)) {
			cm->state = CM_TEMP;
			if (ar->done && ar->status != IMAP_OK)
				wres_reason(ar, cm->reason, sizeof(cm->reason));
			else
				snprintf(cm->reason, sizeof(cm->reason),
				    "connection lost during APPEND");
		} else if (ar->status == IMAP_OK && cm->declared) {
			cm->state = CM_OK;
			if (!b.multi && ar->appenduid_validity)
				cm->dst_uid = ar->appenduid_first;
		} else if (b.multi && nbody > 1) {
			/* MULTIAPPEND is all or nothing: find the culprit */
			cm->state = CM_RETRY_ONE;
		} else {
			cm->state = CM_FAIL;
			cm->append_failed = 1;
			if (!cm->reason[0])
				wres_reason(ar, cm->reason, sizeof(cm->reason));
		}
	}
	/* without UIDPLUS: look the copies up by Message-ID */
	for (i = 0; i < n; i++) {
		struct cmsg *cm = &b.v[i];
		struct wres r;

		if (cm->state != CM_OK || cm->dst_uid != 0 || fc->dry)
			continue;
		if (side_select(w, DST, fc->j->dst_wire, 0, &r) == 0)
			dst_find(w, &fc->map, cm->s->msgid, cm->s->size,
			    cm->s->idate, &cm->dst_uid, &r);
	}
	rf_lock(fc);
	for (i = 0; i < n; i++) {
		struct cmsg *cm = &b.v[i];
		struct smsg *s = cm->s;

		switch (cm->state) {
		case CM_OK:
			ev[ne].src_uid = s->uid;
			ev[ne].dst_uid = cm->dst_uid;
			ev[ne].dst_uidvalidity = fc->dmb.uidvalidity;
			ev[ne].size = s->size;
			ev[ne].internaldate = s->idate;
			ev[ne].origin = STATE_ORIGIN_COPIED;
			memcpy(ev[ne].ckey, s->ckey, STATE_CKEY_LEN);
			ev[ne].flags = s->flags;
			ne++;
			s->done = 1;
			s->in_map = 1;
			if (cm->dropped[0] && !s->no_keywords)
				fc->flags_dropped++;
			fc->rf->copied++;
			fc->rf->bytes += s->size;
			prog_add(fc->a, 1, 0, 0, 0, 0);
			if (s->no_keywords) {
				char why[400];

				snprintf(why, sizeof(why), "copied without "
				    "its keywords (%s): the destination "
				    "refused them", cm->dropped);
				/* listed for the admin, but not missing: the
				 * message itself is on the destination */
				report_problem(fc->rf, REPORT_NOTE, s->uid,
				    NULL, s->size, why);
			}
			break;
		case CM_GONE:
			s->done = 1;
			log_info("%s: %s: uid %" PRIu64 " vanished from the "
			    "source during the pass", fc->a->acc->src_user,
			    fc->j->m->src_path, s->uid);
			if (fc->st)
				state_intent_del(fc->st, &fc->key, s->uid, err,
				    sizeof(err));
			break;
		case CM_FAIL:
			if (cm->append_failed && !s->no_keywords &&
			    has_keyword(cm->flags)) {
				/* a keyword may be what was refused: try
				 * again without them, and say so */
				s->no_keywords = 1;
			} else {
				s->done = 1;
				fc->problems++;
				report_problem(fc->rf, REPORT_FAILED, s->uid,
				    NULL, s->size, cm->reason);
				prog_add(fc->a, 0, 0, 0, 1, 0);
				log_warnx("%s: %s: uid %" PRIu64 " not copied: "
				    "%s", fc->a->acc->src_user,
				    fc->j->m->src_path, s->uid, cm->reason);
			}
			if (fc->st)
				state_intent_del(fc->st, &fc->key, s->uid, err,
				    sizeof(err));
			break;
		case CM_TEMP:
			s->temp_fails++;
			if (s->temp_fails >= TEMP_TRIES) {
				s->done = 1;
				fc->problems++;
				report_problem(fc->rf, REPORT_FAILED, s->uid,
				    NULL, s->size, cm->reason);
				prog_add(fc->a, 0, 0, 0, 1, 0);
			}
			rc = -1;	/* caller reconnects, resolves intents */
			break;
		case CM_RETRY_ONE:
		case CM_PENDING:
			if (fc->st)
				state_intent_del(fc->st, &fc->key, s->uid, err,
				    sizeof(err));
			break;
		}
	}
	rf_unlock(fc);
	if (ne > 0 && pend_add(fc, ev, ne) == -1)
		rc = -2;
	for (i = 0; i < n; i++)
		if (b.v[i].state == CM_RETRY_ONE)
			rc = rc == 0 ? 1 : rc;
	if (b.dst_dead || w->s[DST].state != 1)
		side_close(&w->s[DST]);
out:
	if (b.src_paused && w->s[SRC].c != NULL)
		imap_client_resume_read(w->s[SRC].c);
	if (b.v != NULL)
		for (i = 0; i < n; i++)
			free(b.v[i].flags);
	free(b.v);
	free(b.order);
	free(in);
	free(ev);
	return (rc);
}

/*
 * copy_all - copy every message of todo not done yet, in batches;
 * temporary failures reconnect (with backoff), settle the intents and
 * go on; a MULTIAPPEND refused as a whole is retried one by one.
 */
static int
copy_all(struct fctx *fc, struct smsgv *todo)
{
	struct smsg **bv;
	uint64_t limit = fc->a->dst_appendlimit, maxbytes = BATCH_BYTES;
	size_t i, nb, maxmsgs = BATCH_MSGS;
	int rounds = 0, one = 0, rc;

	if ((bv = calloc(BATCH_MSGS, sizeof(*bv))) == NULL) {
		snprintf(fc->err, sizeof(fc->err), "out of memory");
		return (-1);
	}
	/* policy first: nothing is fetched that cannot be appended */
	rf_lock(fc);
	for (i = 0; i < todo->n; i++) {
		struct smsg *s = &todo->v[i];
		char why[128];

		if (s->done || limit == 0 || s->size <= limit)
			continue;
		snprintf(why, sizeof(why), "over the destination's "
		    "APPENDLIMIT (%" PRIu64 " bytes)", limit);
		report_problem(fc->rf, REPORT_POLICY, s->uid, NULL, s->size,
		    why);
		prog_add(fc->a, 0, 0, 1, 0, 0);
		fc->problems++;
		s->done = 1;
	}
	rf_unlock(fc);
	/* with rate limits, a batch is at most one second's worth */
	{
		const struct config *cfg = fc->a->p->o->cfg;

		if (cfg->syncd.max_messages_per_second > 0 &&
		    (uint64_t)cfg->syncd.max_messages_per_second < maxmsgs)
			maxmsgs = (size_t)cfg->syncd.max_messages_per_second;
		if (cfg->syncd.max_bytes_per_second > 0 &&
		    cfg->syncd.max_bytes_per_second < maxbytes)
			maxbytes = cfg->syncd.max_bytes_per_second;
	}
	while (!stopping(fc->a)) {
		uint64_t bytes = 0;

		nb = 0;
		for (i = 0; i < todo->n && nb < (one ? 1u : maxmsgs); i++) {
			struct smsg *s = &todo->v[i];

			if (s->done || s->in_map)
				continue;
			if (nb > 0 && bytes + s->size > maxbytes)
				break;
			bv[nb++] = s;
			bytes += s->size;
		}
		if (nb == 0)
			break;
		if (fc->dry) {
			for (i = 0; i < nb; i++) {
				bv[i]->done = 1;
				fc->rf->copied++;
				fc->rf->bytes += bv[i]->size;
				prog_add(fc->a, 1, 0, 0, 0, bv[i]->size);
			}
			continue;
		}
		rc = copy_batch(fc, bv, nb, fc->a->dst_multi && !one);
		if (rc == 1) {
			one = 1;	/* MULTIAPPEND refused: one by one */
			continue;
		}
		if (rc == -2) {
			free(bv);
			return (-1);
		}
		if (rc == -1) {
			char err[400];

			if (++rounds > 50) {
				free(bv);
				return (-1);
			}
			/* reconnect and settle what the server may have
			 * done before the connection dropped */
			log_info("%s: %s: %s; reconnecting",
			    fc->a->acc->src_user, fc->j->m->src_path,
			    fc->err[0] ? fc->err : "connection lost");
			if (side_ensure(fc->w, SRC, err, sizeof(err)) == -1 ||
			    side_ensure(fc->w, DST, err, sizeof(err)) == -1) {
				snprintf(fc->err, sizeof(fc->err), "%s", err);
				free(bv);
				return (-1);
			}
			fc->err[0] = '\0';
			if (resolve_intents(fc) == -1) {
				free(bv);
				return (-1);
			}
			rf_lock(fc);
			for (i = 0; i < todo->n; i++)
				if (!todo->v[i].in_map &&
				    state_map_find(&fc->map, todo->v[i].uid)) {
					todo->v[i].in_map = 1;
					todo->v[i].done = 1;
					fc->rf->copied++;
					fc->rf->bytes += todo->v[i].size;
					prog_add(fc->a, 1, 0, 0, 0, 0);
				}
			rf_unlock(fc);
			continue;
		}
		one = 0;
	}
	free(bv);
	if (stopping(fc->a)) {
		snprintf(fc->err, sizeof(fc->err), "interrupted");
		return (-1);
	}
	return (0);
}

/*
 * copy_split - copy a big folder over several connection pairs: the
 * destination's APPEND is the bottleneck, and a server works one
 * connection's commands in turn.  The messages are cut into contiguous
 * UID ranges; this thread copies the first, helper threads (each with
 * its own event loop and connections, while the per-server limit
 * leaves slots) the others.  Shared: the report row (under a mutex),
 * the store; each part settles only its own intents.  Without UIDPLUS
 * (copies found again by Message-ID) the folder is not split.
 *
 * OFF (SPLIT_MAX 1): against Dovecot/maildir, parallel APPENDs into one
 * mailbox were measured slower than one stream (they queue on the
 * mailbox's uidlist lock); folders run in parallel instead, biggest
 * first.  Raise SPLIT_MAX for servers that append in parallel.
 */
#define SPLIT_MIN	60	/* messages per part, at least */
#define SPLIT_MAX	1	/* parts; 1 = never split */

struct helper {
	struct fctx	 fc;
	struct smsgv	 part;		/* a view: strings belong to todo */
	pthread_t	 tid;
	int		 started;
	int		 rc;
};

static struct worker *worker_new(struct acct *a);
static void	 worker_free(struct worker **wp);

static void *
helper_thread(void *arg)
{
	struct helper *h = arg;

	h->rc = copy_all(&h->fc, &h->part);
	if (fc_commit(&h->fc, NULL, 0, NULL) == -1)
		h->rc = -1;
	return (NULL);
}

static int
copy_split(struct fctx *fc, struct smsgv *todo)
{
	struct helper h[SPLIT_MAX];
	struct smsgv first;
	pthread_mutex_t mu;
	size_t k, nparts, nh = 0, lo, hi;
	int rc;

	nparts = todo->n / SPLIT_MIN;
	if (nparts > SPLIT_MAX)
		nparts = SPLIT_MAX;
	if (fc->dry || nparts < 2 || !fc->a->dst_uidplus)
		return (copy_all(fc, todo));
	memset(h, 0, sizeof(h));
	pthread_mutex_init(&mu, NULL);
	for (k = 1; k < nparts; k++) {
		struct worker *w;

		if (!slot_take(fc->a->p, 0))
			break;
		if ((w = worker_new(fc->a)) == NULL) {
			slot_give(fc->a->p);
			break;
		}
		w->holds_slot = 1;
		h[nh].fc = *fc;
		memset(&h[nh].fc.map, 0, sizeof(h[nh].fc.map));
		h[nh].fc.pend = NULL;
		h[nh].fc.npend = h[nh].fc.apend = 0;
		h[nh].fc.w = w;
		h[nh].fc.err[0] = '\0';
		h[nh].fc.problems = 0;
		h[nh].fc.flags_dropped = 0;
		h[nh].fc.rmu = &mu;
		nh++;
	}
	if (nh == 0) {
		pthread_mutex_destroy(&mu);
		return (copy_all(fc, todo));
	}
	nparts = nh + 1;
	/* part 0 here, part k+1 on helper k */
	lo = 0;
	hi = todo->n / nparts;
	first.v = todo->v;
	first.n = hi;
	first.alloc = hi;
	for (k = 0; k < nh; k++) {
		lo = todo->n * (k + 1) / nparts;
		hi = todo->n * (k + 2) / nparts;
		h[k].part.v = todo->v + lo;
		h[k].part.n = hi - lo;
		h[k].part.alloc = hi - lo;
		h[k].fc.own = &h[k].part;
	}
	fc->rmu = &mu;
	fc->own = &first;
	for (k = 0; k < nh; k++)
		h[k].started = pthread_create(&h[k].tid, NULL, helper_thread,
		    &h[k]) == 0;
	log_info("%s: %s: %zu messages to copy over %zu connections",
	    fc->a->acc->src_user, fc->j->m->src_path, todo->n, nparts);
	rc = copy_all(fc, &first);
	for (k = 0; k < nh; k++) {
		if (h[k].started)
			pthread_join(h[k].tid, NULL);
		else {
			h[k].rc = copy_all(&h[k].fc, &h[k].part);
			if (fc_commit(&h[k].fc, NULL, 0, NULL) == -1)
				h[k].rc = -1;
		}
		free(h[k].fc.pend);
		fc->problems += h[k].fc.problems;
		fc->flags_dropped += h[k].fc.flags_dropped;
		if (h[k].rc == -1 && rc == 0) {
			snprintf(fc->err, sizeof(fc->err), "%s",
			    h[k].fc.err[0] ? h[k].fc.err : "copy failed");
			rc = -1;
		}
		/* the part's map entries are in the store; keep them in
		 * memory too for what follows (deletions) */
		{
			size_t q;

			for (q = 0; q < h[k].fc.map.n; q++)
				state_map_set(&fc->map, &h[k].fc.map.v[q]);
		}
		state_map_free(&h[k].fc.map);
		worker_free(&h[k].fc.w);
	}
	fc->rmu = NULL;
	fc->own = NULL;
	pthread_mutex_destroy(&mu);
	return (rc);
}

/* ---- one folder -------------------------------------------------------------------- */

/*
 * folder_unchanged - the source's status matches the state of a complete
 * earlier pass (s, NULL when there is none): nothing to do
 */
static int
folder_unchanged(const struct fjob *j, const struct state_folder *s)
{
	if (s == NULL || !(s->flags & STATE_F_COMPLETE) ||
	    !j->have_sst || !j->have_dst)
		return (0);
	if (!(j->sst.have & IMAP_STATUS_UIDVALIDITY) ||
	    !(j->sst.have & IMAP_STATUS_UIDNEXT) ||
	    !(j->sst.have & IMAP_STATUS_MESSAGES) ||
	    !(j->dst.have & IMAP_STATUS_UIDVALIDITY))
		return (0);
	if (j->sst.uidvalidity != s->src_uidvalidity ||
	    j->sst.uidnext != s->src_uidnext ||
	    j->sst.messages != s->src_messages ||
	    j->dst.uidvalidity != s->dst_uidvalidity)
		return (0);
	/* without HIGHESTMODSEQ (no CONDSTORE) a flag change shows nowhere
	 * in the status: only a flags scan can tell */
	if (!(j->sst.have & IMAP_STATUS_HIGHESTMODSEQ) ||
	    j->sst.highestmodseq != s->src_highestmodseq)
		return (0);
	return (1);
}

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
	char err[256];
	size_t i, folders = 0, want;
	uint64_t msgs = 0;

	for (i = 0; i < a->njobs; i++) {
		const struct fjob *j = &a->jobs[i];
		int have;

		if (j->skip)
			continue;
		have = st != NULL && state_folder_key(&key, a->acc->src_user,
		    j->m->src_path, err, sizeof(err)) == 0 &&
		    state_folder_get(st, &key, &sf, err, sizeof(err)) == 0;
		if (have && folder_unchanged(j, &sf))
			continue;
		folders++;
		if (!j->have_sst || !(j->sst.have & IMAP_STATUS_MESSAGES))
			msgs += MSGS_PER_PAIR;	/* unknown: assume work */
		else if (have && (sf.flags & STATE_F_COMPLETE) &&
		    (j->sst.have & IMAP_STATUS_UIDNEXT) &&
		    j->sst.uidvalidity == sf.src_uidvalidity)
			msgs += j->sst.uidnext > sf.src_uidnext ?
			    j->sst.uidnext - sf.src_uidnext : 0;
		else
			msgs += j->sst.messages;
	}
	want = (size_t)(msgs / MSGS_PER_PAIR);
	if (folders == 0)
		return (0);
	if (want > folders - 1)
		want = folders - 1;
	return (want);
}

static int
sync_folder(struct worker *w, struct fjob *j)
{
	struct acct *a = w->a;
	struct fctx fc;
	struct report_folder *rf = j->rf;
	struct smsgv msgs, todo, flags;
	struct state_map old;
	struct wres r;
	char err[256], set[64];
	double t0 = now_mono();
	int delta = 0, rebuild = 0, rc = -1;
	uint64_t already = 0;
	size_t i;

	memset(&fc, 0, sizeof(fc));
	memset(&msgs, 0, sizeof(msgs));
	memset(&todo, 0, sizeof(todo));
	memset(&flags, 0, sizeof(flags));
	memset(&old, 0, sizeof(old));
	fc.w = w;
	fc.a = a;
	fc.j = j;
	fc.rf = rf;
	fc.dry = a->p->o->dry_run;
	fc.st = a->p->o->store;
	fc.dst_exists = j->m->dst_exists || (rf->created && !fc.dry);
	if (state_folder_key(&fc.key, a->acc->src_user, j->m->src_path, err,
	    sizeof(err)) == -1) {
		snprintf(fc.err, sizeof(fc.err), "%s", err);
		goto out;
	}
	if (fc.st != NULL) {
		int g = state_folder_get(fc.st, &fc.key, &fc.sf, err,
		    sizeof(err));

		if (g == -1) {
			snprintf(fc.err, sizeof(fc.err), "state: %s", err);
			goto out;
		}
		fc.have_state = g == 0;
	}
	if (folder_unchanged(j, fc.have_state ? &fc.sf : NULL)) {
		rf->src_count = j->sst.messages;
		rf->already = j->sst.messages;
		rf->dst_count = (j->dst.have & IMAP_STATUS_MESSAGES) ?
		    j->dst.messages : REPORT_UNKNOWN;
		rc = 0;
		goto out;
	}
	if (fc_ready_then(&fc, 0, fc.have_state &&
	    (fc.sf.flags & STATE_F_COMPLETE) && fc.sf.src_last_uid > 0 &&
	    j->have_sst && (j->sst.have & IMAP_STATUS_UIDVALIDITY) &&
	    j->sst.uidvalidity == fc.sf.src_uidvalidity ? delta_prefetch :
	    NULL) == -1)
		goto out;
	rf->src_count = fc.smb.exists;
	if (fc.st != NULL && state_map_load(fc.st, &fc.key, &fc.map, err,
	    sizeof(err)) == -1) {
		snprintf(fc.err, sizeof(fc.err), "state: %s", err);
		goto out;
	}
	if (fc.have_state && (fc.sf.src_uidvalidity != fc.smb.uidvalidity ||
	    (fc.dst_exists && fc.sf.dst_uidvalidity != fc.dmb.uidvalidity))) {
		log_notice("%s: %s: UIDVALIDITY changed (source %" PRIu64
		    " -> %" PRIu64 ", destination %" PRIu64 " -> %" PRIu64
		    "): rebuilding the map by content", a->acc->src_user,
		    j->m->src_path, fc.sf.src_uidvalidity, fc.smb.uidvalidity,
		    fc.sf.dst_uidvalidity, fc.dmb.uidvalidity);
		rebuild = 1;
		old = fc.map;
		memset(&fc.map, 0, sizeof(fc.map));
		if (!fc.dry && state_folder_reset(fc.st, &fc.key, err,
		    sizeof(err)) == -1) {
			snprintf(fc.err, sizeof(fc.err), "state: %s", err);
			goto out;
		}
		fc.have_state = 0;
	}
	if (!fc.have_state) {
		memset(&fc.sf, 0, sizeof(fc.sf));
		fc.sf.src_uidvalidity = fc.smb.uidvalidity;
		fc.sf.dst_uidvalidity = fc.dmb.uidvalidity;
		snprintf(fc.sf.dst_name, sizeof(fc.sf.dst_name), "%s",
		    j->dst_wire);
		fc.sf.updated = (int64_t)time(NULL);
		if (fc.st != NULL && !fc.dry && state_folder_put(fc.st,
		    &fc.key, &fc.sf, err, sizeof(err)) == -1) {
			snprintf(fc.err, sizeof(fc.err), "state: %s", err);
			goto out;
		}
	} else if ((fc.sf.flags & STATE_F_COMPLETE) && fc.sf.src_last_uid > 0)
		delta = 1;
	if (!delta)
		prefetch_drop(&fc);	/* the prediction was wrong */
	if (!delta) {
		pthread_mutex_lock(&a->p->pr->mu);
		a->p->pr->full = 1;
		pthread_mutex_unlock(&a->p->pr->mu);
	}

	if (fc.dst_exists && resolve_intents(&fc) == -1)
		goto out;
	if (fc_ready(&fc, 0) == -1)
		goto out;

	/* the source messages to look at */
	if (delta && fc.pf_new_q) {
		/* queued behind the EXAMINE: "n:*" covers whatever arrived
		 * since the LIST-STATUS too */
		int frc;

		fc.pf_new_q = 0;
		frc = fetch_meta_end(w, &fc.pf_new, &r);
		msgs = fc.pf_newv;
		memset(&fc.pf_newv, 0, sizeof(fc.pf_newv));
		if (frc == -1) {
			fc_fail(&fc, "FETCH source", &r);
			goto out;
		}
	} else if (delta) {
		snprintf(set, sizeof(set), "%" PRIu64 ":*",
		    fc.sf.src_last_uid + 1);
		if (fc.smb.uidnext > fc.sf.src_last_uid + 1 &&
		    fetch_meta(w, SRC, set, fc.sf.src_last_uid + 1, 1, &msgs,
		    &r) == -1) {
			fc_fail(&fc, "FETCH source", &r);
			goto out;
		}
	} else if (fc.smb.exists > 0 && fetch_meta(w, SRC, "1:*", 0, 1,
	    &msgs, &r) == -1) {
		fc_fail(&fc, "FETCH source", &r);
		goto out;
	}
	fc.max_uid = fc.sf.src_last_uid;
	for (i = 0; i < msgs.n; i++) {
		if (msgs.v[i].uid > fc.max_uid)
			fc.max_uid = msgs.v[i].uid;
		msgs.v[i].in_map = state_map_find(&fc.map, msgs.v[i].uid) !=
		    NULL;
	}
	/* a destination with messages we know nothing of */
	if (!delta && fc.dst_exists && fc.dmb.exists > 0 &&
	    fc.map.n < fc.dmb.exists && match_content(&fc, &msgs,
	    rebuild ? &old : NULL) == -1)
		goto out;

	/* flags */
	if (fc.dst_exists) {
		if (delta) {
			uint64_t since = flags_since(&fc,
			    fc.smb.highestmodseq);
			int need = since == 0 || fc.smb.highestmodseq != since;
			struct metafetch mf;

			if (fc.pf_flags_q) {
				/* queued behind the EXAMINE: used when it
				 * asked what would be asked now */
				fc.pf_flags_q = 0;
				if (cmd_wait(w, fc.pf_flags.queued,
				    &fc.pf_flags.r) == -1 || fc.pf_flags.oom) {
					fc_fail(&fc, "FETCH flags",
					    &fc.pf_flags.r);
					goto out;
				}
				if (fc.pf_since == since) {
					flags = fc.pf_flagsv;
					memset(&fc.pf_flagsv, 0,
					    sizeof(fc.pf_flagsv));
					need = 0;
				} else
					smsgv_free(&fc.pf_flagsv);
			}
			if (need) {
				snprintf(set, sizeof(set), "1:%" PRIu64,
				    fc.sf.src_last_uid);
				if (fc_ready(&fc, 0) == -1)
					goto out;
				(void)flags_fetch_begin(w, set, since, &flags,
				    &mf);
				if (cmd_wait(w, mf.queued, &mf.r) == -1 ||
				    mf.oom) {
					fc_fail(&fc, "FETCH flags", &mf.r);
					goto out;
				}
			}
			sort_n(flags.v, flags.n, sizeof(*flags.v), smsg_cmp);
			if (apply_flags(&fc, &flags) == -1)
				goto out;
		} else if (apply_flags(&fc, &msgs) == -1)
			goto out;
	}

	/* what to copy */
	for (i = 0; i < msgs.n; i++) {
		struct smsg *s = &msgs.v[i];

		if (s->in_map) {
			already++;
			continue;
		}
		if (todo.n == todo.alloc) {
			size_t na = todo.alloc ? todo.alloc * 2 : 64;
			void *p = reallocarray(todo.v, na, sizeof(*todo.v));

			if (p == NULL) {
				snprintf(fc.err, sizeof(fc.err),
				    "out of memory");
				goto out;
			}
			todo.v = p;
			todo.alloc = na;
		}
		todo.v[todo.n++] = *s;
		/* ownership of the strings moves to todo */
		s->flags = s->msgid = s->date = s->from = NULL;
	}
	if (delta)
		rf->already = fc.smb.exists > todo.n ? fc.smb.exists - todo.n :
		    0;
	else
		rf->already = already;
	prog_total(a, todo.n);
	if (todo.n > 0 && a->ledger && fc.st != NULL && !fc.dry &&
	    ledger_check(&fc, &todo) == -1)
		goto out;
	if (todo.n > 0 && copy_split(&fc, &todo) == -1)
		goto out;

	/* deletions: only with delete = yes, only syncd's own copies */
	if (a->p->o->cfg->syncd.delete && fc.dst_exists) {
		struct uidlist live;

		memset(&live, 0, sizeof(live));
		if (fc_ready(&fc, 0) == -1)
			goto out;
		if (cmd_wait(w, imap_client_uid_search(w->s[SRC].c, "ALL",
		    uid_cb, done_cb, &live), &live.r) == -1 || live.oom) {
			free(live.v);
			fc_fail(&fc, "SEARCH source", &live.r);
			goto out;
		}
		sort_n(live.v, live.n, sizeof(*live.v), u64_cmp);
		rc = apply_deletions(&fc, live.v, live.n);
		free(live.v);
		if (rc == -1)
			goto out;
		rc = -1;
	}

	/* destination count and the new state */
	if (fc.dst_exists && w->s[DST].c != NULL && w->s[DST].state == 1 &&
	    strcmp(w->s[DST].selected, j->dst_wire) == 0 &&
	    imap_client_mailbox(w->s[DST].c) != NULL && fc.rmu == NULL &&
	    imap_client_mailbox(w->s[DST].c)->exists >= fc.dmb.exists +
	    rf->copied) {
		/* nothing appended, or the server announced our APPENDs
		 * with EXISTS (RFC 3501 6.3.11 SHOULD): it is current */
		rf->dst_count = imap_client_mailbox(w->s[DST].c)->exists;
	} else if (fc.dst_exists) {
		if (side_ensure(w, DST, err, sizeof(err)) == 0) {
			memset(&r, 0, sizeof(r));
			if (cmd_wait(w, imap_client_status(w->s[DST].c,
			    j->dst_wire, IMAP_STATUS_MESSAGES |
			    IMAP_STATUS_UIDVALIDITY, done_cb, &r), &r) == 0 &&
			    r.have_st)
				rf->dst_count = r.st.messages;
		}
	} else
		rf->dst_count = 0;
	if (fc.st != NULL && !fc.dry) {
		fc.sf.flags = fc.problems == 0 ? STATE_F_COMPLETE : 0;
		fc.sf.src_uidvalidity = fc.smb.uidvalidity;
		fc.sf.src_uidnext = fc.smb.uidnext;
		fc.sf.src_last_uid = fc.max_uid;
		fc.sf.src_highestmodseq = fc.smb.highestmodseq;
		fc.sf.src_messages = fc.smb.exists;
		fc.sf.dst_uidvalidity = fc.dmb.uidvalidity;
		fc.sf.dst_highestmodseq = fc.dmb.highestmodseq;
		fc.sf.updated = (int64_t)time(NULL);
		snprintf(fc.sf.dst_name, sizeof(fc.sf.dst_name), "%s",
		    j->dst_wire);
		/* the pass's own flag STOREs and APPENDs moved the source
		 * not at all; a new STATUS next pass compares with this */
		if (j->have_sst && fc.smb.uidnext == j->sst.uidnext &&
		    fc.smb.exists == j->sst.messages &&
		    (j->sst.have & IMAP_STATUS_HIGHESTMODSEQ) &&
		    fc.smb.highestmodseq == 0)
			fc.sf.src_highestmodseq = j->sst.highestmodseq;
		if (fc_commit(&fc, NULL, 0, &fc.sf) == -1)
			goto out;
	}
	rc = 0;
out:
	if (fc.npend > 0 && fc.st != NULL && !fc.dry) {
		/* what was copied is recorded even when the folder failed */
		char e2[256];

		state_commit(fc.st, &fc.key, fc.pend, fc.npend, NULL, 0, NULL,
		    e2, sizeof(e2));
	}
	free(fc.pend);
	if (rc == -1) {
		report_folder_error(rf, "%s", fc.err[0] ? fc.err : "failed");
		log_warnx("%s: %s: %s", a->acc->src_user, j->m->src_path,
		    fc.err[0] ? fc.err : "failed");
	}
	rf->seconds = now_mono() - t0;
	if (fc.flags_dropped > 0)
		log_warnx("%s: %s: %" PRIu64 " message(s) copied without some "
		    "of their flags: the destination's PERMANENTFLAGS lack "
		    "them", a->acc->src_user, j->m->src_path, fc.flags_dropped);
	log_info("%s: %s -> %s: source=%" PRIu64 " copied=%" PRIu64
	    " already=%" PRIu64 " duplicates=%" PRIu64 " failed=%" PRIu64
	    " policy=%" PRIu64 "%s", a->acc->src_user, j->m->src_path,
	    j->m->dst_path, rf->src_count == REPORT_UNKNOWN ? 0 :
	    rf->src_count, rf->copied, rf->already, rf->duplicates,
	    rf->failed, rf->policy, delta ? " (delta)" : "");
	prefetch_drop(&fc);
	smsgv_free(&msgs);
	smsgv_free(&todo);
	smsgv_free(&flags);
	state_map_free(&fc.map);
	state_map_free(&old);
	return (rc);
}

/* ---- account setup --------------------------------------------------------------- */

struct listing {
	struct wres	 r;		/* first: done_cb fills it */
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
	fi->name = e->name_utf8 ? strdup(e->name_utf8) : NULL;
	fi->wire = strdup(e->name);
	fi->attrs = e->attrs;
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
	    (opts & IMAP_LIST_STATUS) ? STATUS_ITEMS : 0, &list_cbs, done_cb,
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

	if (cmd_wait(w, l->queued, &l->r) == -1 || l->oom) {
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
		if (cmd_wait(w, imap_client_lsub(c, "", "*", &cbs, done_cb,
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
	loop_until(w, &n->done);
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

#define STOP_GRACE	5.0	/* seconds a command may finish after SIGTERM */

/*
 * worker_tick - once a second: after a stop request, give the command
 * in progress STOP_GRACE seconds, then hang up both connections.  Every
 * pending command then completes (cancelled), the blocking loops return
 * and the folder ends "interrupted"; an APPEND cut this way is settled
 * by its intent record on the next start.
 */
static void
worker_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if (w->a == NULL || !stopping(w->a))
		return;	/* kept between passes, or running */
	if (w->stop_seen == 0) {
		w->stop_seen = now_mono();
		return;
	}
	if (now_mono() - w->stop_seen >= STOP_GRACE) {
		side_close(&w->s[SRC]);
		side_close(&w->s[DST]);
	}
}

/* logout_deadline - the LOGOUTs of worker_free took too long: hang up */
static void
logout_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	side_close(&w->s[SRC]);
	side_close(&w->s[DST]);
}

static struct worker *
worker_new(struct acct *a)
{
	struct worker *w = calloc(1, sizeof(*w));
	struct timeval tv = { 1, 0 };

	if (w == NULL)
		return (NULL);
	w->a = a;
	if ((w->base = event_base_new()) == NULL) {
		free(w);
		return (NULL);
	}
	if ((w->tick = event_new(w->base, -1, EV_PERSIST, worker_tick, w)) ==
	    NULL || event_add(w->tick, &tv) == -1) {
		if (w->tick != NULL)
			event_free(w->tick);
		event_base_free(w->base);
		free(w);
		return (NULL);
	}
	w->s[SRC].state = w->s[DST].state = -1;
	return (w);
}

static void
worker_free(struct worker **wp)
{
	struct worker *w = *wp;
	struct imap_cmd *out[2] = { NULL, NULL };
	struct event *deadline = NULL;
	struct timeval grace = { (time_t)STOP_GRACE, 0 };
	struct wres r[2];
	int i;

	if (w == NULL)
		return;
	/* both LOGOUTs at once: one round trip, not two; a server that
	 * does not answer gets STOP_GRACE seconds (logout_deadline) */
	memset(r, 0, sizeof(r));
	for (i = 0; i < 2; i++)
		if (w->s[i].c != NULL && w->s[i].state == 1)
			out[i] = imap_client_logout(w->s[i].c, done_cb, &r[i]);
	if ((out[0] != NULL || out[1] != NULL) &&
	    (deadline = evtimer_new(w->base, logout_deadline, w)) != NULL)
		evtimer_add(deadline, &grace);
	for (i = 0; i < 2; i++) {
		if (out[i] != NULL)
			cmd_wait(w, out[i], &r[i]);
		imap_client_free(&w->s[i].c);
		strlist_clear(&w->s[i].permflags);
	}
	if (deadline != NULL)
		event_free(deadline);
	event_free(w->tick);
	event_base_free(w->base);
	if (w->holds_slot)
		slot_give(w->a->p);
	free(w);
	*wp = NULL;
}

static void
folder_done_progress(struct acct *a)
{
	struct sync_progress *pr = a->p->pr;

	pthread_mutex_lock(&pr->mu);
	pr->folders_done++;
	pr->acc[a->idx].folders_done++;
	pthread_mutex_unlock(&pr->mu);
}

/* worker_loop - take folders off the account's list until none is left */
static void
worker_loop(struct worker *w)
{
	struct acct *a = w->a;

	for (;;) {
		struct fjob *j = NULL;

		pthread_mutex_lock(&a->mu);
		if (a->next < a->njobs && !stopping(a))
			j = &a->jobs[a->next++];
		pthread_mutex_unlock(&a->mu);
		if (j == NULL)
			break;
		if (!j->skip)
			sync_folder(w, j);
		folder_done_progress(a);
	}
}

static void *
worker_thread(void *arg)
{
	struct worker *w = arg;

	worker_loop(w);
	worker_free(&w);
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

/* acct_setup - connect, list, plan, create, subscribe; jobs made */
static int
acct_setup(struct worker *w, char *err, size_t errlen)
{
	struct acct *a = w->a;
	const struct sync_pass_opts *o = a->p->o;
	struct side_listing sl[2];
	struct listing *ls = &sl[SRC].l, *ld = &sl[DST].l;
	struct folder_list fs, fd;
	struct wres *cr = NULL, *sr = NULL;
	char sprefix[256], dprefix[256], sdelim = 0, ddelim = 0, why[400];
	size_t i, k;
	int rc = -1;

	memset(sl, 0, sizeof(sl));
	sides_connect(w, listing_begin, sl);
	if (side_ensure(w, SRC, err, errlen) == -1 ||
	    side_ensure(w, DST, err, errlen) == -1)
		goto out;
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
	ns_finish(w, SRC, &sl[SRC].ns, sprefix, sizeof(sprefix), &sdelim);
	ns_finish(w, DST, &sl[DST].ns, dprefix, sizeof(dprefix), &ddelim);
	if (list_side(w, SRC, ls, err, errlen) == -1 ||
	    list_side(w, DST, ld, err, errlen) == -1)
		goto out;
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
	if (folder_plan_build(o->rules, &fs, &fd, 0, &a->plan, why,
	    sizeof(why)) == -1) {
		errbuf_set(err, errlen, "folder plan: %s", why);
		goto out;
	}
	cr = calloc(a->plan->n + 1, sizeof(*cr));
	sr = calloc(a->plan->n + 1, sizeof(*sr));
	if (cr == NULL || sr == NULL || (a->jobs = calloc(a->plan->n ?
	    a->plan->n : 1, sizeof(*a->jobs))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i <= a->plan->n; i++)
		cr[i].done = sr[i].done = 1;	/* nothing queued yet */
	for (i = 0; i < a->plan->n; i++) {
		const struct folder_map *m = &a->plan->maps[i];
		struct report_folder *rf = report_folder_add_map(a->ra, m);
		struct fjob *j;
		const struct imap_status_info *st;
		char line[512];

		if (rf == NULL) {
			errbuf_set(err, errlen, "out of memory");
			goto out;
		}
		folder_map_describe(m, line, sizeof(line));
		log_info("%s: plan: %s", a->acc->src_user, line);
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
		if ((st = listing_status(ls, j->src_wire)) != NULL) {
			j->sst = *st;
			j->have_sst = 1;
		}
		if ((st = listing_status(ld, j->dst_wire)) != NULL) {
			j->dst = *st;
			j->have_dst = 1;
		}
		/* without LIST-STATUS: one STATUS per folder */
		if (!j->have_sst) {
			struct wres r;

			memset(&r, 0, sizeof(r));
			if (cmd_wait(w, imap_client_status(w->s[SRC].c,
			    j->src_wire, STATUS_ITEMS, done_cb, &r), &r) == 0 &&
			    r.have_st) {
				j->sst = r.st;
				j->have_sst = 1;
			}
		}
		if (!j->have_dst && m->dst_exists) {
			struct wres r;

			memset(&r, 0, sizeof(r));
			if (cmd_wait(w, imap_client_status(w->s[DST].c,
			    j->dst_wire, STATUS_ITEMS, done_cb, &r), &r) == 0 &&
			    r.have_st) {
				j->dst = r.st;
				j->have_dst = 1;
			}
		}
		/* CREATE (and subscribe) on the destination: queued here,
		 * pipelined, checked below */
		if (m->create) {
			if (o->dry_run)
				rf->created = 1;
			else {
				j->special = special_flag(m->create_special);
				cr[a->njobs].done = 0;
				if (imap_client_create(w->s[DST].c, j->dst_wire,
				    j->special, done_cb, &cr[a->njobs]) == NULL) {
					cr[a->njobs].done = 1;
					cr[a->njobs].status = IMAP_ERROR;
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
				sr[a->njobs].done = 0;
				if (imap_client_subscribe(w->s[DST].c,
				    j->dst_wire, 1, done_cb, &sr[a->njobs]) ==
				    NULL)
					sr[a->njobs].done = 1;
			}
		}
		a->njobs++;
	}
	for (i = 0; i < a->njobs; i++) {
		struct fjob *j = &a->jobs[i];

		if (j->m->create && !o->dry_run) {
			struct wres *r = &cr[i];

			loop_until(w, &r->done);
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
		loop_until(w, &sr[i].done);
	}
	/* biggest folders first: the pass ends when its longest folder
	 * does, so that one must not start last */
	sort_n(a->jobs, a->njobs, sizeof(*a->jobs), fjob_cmp);
	rc = 0;
out:
	free(cr);
	free(sr);
	for (i = 0; i < 2; i++) {
		/* a side that failed: its commands are done (cancelled) */
		if (sl[i].queued) {
			loop_until(w, &sl[i].ns.done);
			if (sl[i].l.queued != NULL)
				loop_until(w, &sl[i].l.r.done);
		}
		listing_free(&sl[i].l);
	}
	return (rc);
}

/* ---- connections kept between passes (daemon mode) ------------------------------ */

/*
 * The first connection pair of each account stays logged in between the
 * daemon's passes: a delta pass then costs one LIST-STATUS a side, not
 * two logins (each of which costs a server like Dovecot two process
 * starts).  Only when every account's pair fits in
 * connections_per_server, so kept connections never exceed it.  A pair
 * the server closed meanwhile is noticed when the next pass looks at it
 * (keep_take) and logged in again by side_ensure.
 */
struct kept {
	char		 user[ACCOUNTS_USER_MAX + 1];
	struct worker	*w;		/* owned; w->a is NULL while kept */
};

struct sync_keep {
	pthread_mutex_t	 mu;
	struct kept	*v;
	size_t		 n, alloc;
};

struct sync_keep *
sync_keep_new(void)
{
	struct sync_keep *k = calloc(1, sizeof(*k));

	if (k != NULL)
		pthread_mutex_init(&k->mu, NULL);
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
	/* what arrived while nobody listened: a BYE, a close */
	for (round = 0; round < 4; round++)
		if (event_base_loop(w->base, EVLOOP_NONBLOCK) != 0)
			break;
	for (side = 0; side < 2; side++)
		w->s[side].selected[0] = '\0';	/* SELECT again: news */
	return (w);
}

/* keep_put - keep the account's first pair for the next pass: 1 kept */
static int
keep_put(struct acct *a, struct worker *w)
{
	struct sync_keep *k = a->p->o->keep;
	const struct sync_pass_opts *o = a->p->o;
	int i, kept = 0;

	if (k == NULL || o->dry_run || stopping(a) ||
	    o->cfg->syncd.connections_per_server < 0 ||
	    o->accounts->count >
	    (size_t)o->cfg->syncd.connections_per_server ||
	    w->s[SRC].c == NULL || w->s[SRC].state != 1 ||
	    w->s[DST].c == NULL || w->s[DST].state != 1)
		return (0);
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
		if (cmd_wait(w, imap_client_command(sd->c, cmd, done_cb, &r),
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
		k->v[k->n++].w = w;
		kept = 1;
	}
	pthread_mutex_unlock(&k->mu);
	if (kept) {
		if (w->holds_slot)
			slot_give(a->p);
		w->holds_slot = 0;
		w->a = NULL;
	}
	return (kept);
}

static void *
acct_thread(void *arg)
{
	struct acct *a = arg;
	struct pass *p = a->p;
	struct sync_progress *pr = p->pr;
	struct worker *w0;
	pthread_t tid[MAX_WORKERS];
	char err[512];
	size_t nx = 0, i, want;
	int ok;

	a->t0 = now_mono();
	pthread_mutex_lock(&pr->mu);
	pr->acc[a->idx].state = SYNC_ACCT_RUNNING;
	pthread_mutex_unlock(&pr->mu);
	err[0] = '\0';
	if ((w0 = keep_take(a)) == NULL && (w0 = worker_new(a)) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	w0->holds_slot = slot_take(p, 1);
	if (!w0->holds_slot) {
		snprintf(err, sizeof(err), "interrupted");
		goto fail;
	}
	if (acct_setup(w0, err, sizeof(err)) == -1)
		goto fail;
	pthread_mutex_lock(&pr->mu);
	pr->folders_total += a->njobs;
	pr->acc[a->idx].folders_total = a->njobs;
	pthread_mutex_unlock(&pr->mu);

	/* extra connection pairs for parallel folders */
	want = extra_pairs_wanted(a);
	if (want > MAX_WORKERS - 1)
		want = MAX_WORKERS - 1;
	for (i = 0; i < want && !p->o->dry_run; i++) {
		struct worker *x;

		if (!slot_take(p, 0))
			break;
		if ((x = worker_new(a)) == NULL) {
			slot_give(p);
			break;
		}
		x->holds_slot = 1;
		if (pthread_create(&tid[nx], NULL, worker_thread, x) != 0) {
			worker_free(&x);
			break;
		}
		nx++;
	}
	worker_loop(w0);
	for (i = 0; i < nx; i++)
		pthread_join(tid[i], NULL);
	if (!keep_put(a, w0))
		worker_free(&w0);
	w0 = NULL;
	a->ra->seconds = now_mono() - a->t0;
	ok = report_account_complete(a->ra);
	pthread_mutex_lock(&pr->mu);
	pr->accounts_done++;
	pr->acc[a->idx].state = ok ? SYNC_ACCT_DONE : SYNC_ACCT_FAILED;
	pthread_mutex_unlock(&pr->mu);
	goto done;
fail:
	worker_free(&w0);
	report_account_error(a->ra, "%s", err);
	log_warnx("%s: %s", a->acc->src_user, err);
	a->ra->seconds = now_mono() - a->t0;
	pthread_mutex_lock(&pr->mu);
	pr->accounts_done++;
	pr->acc[a->idx].state = SYNC_ACCT_FAILED;
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

int
sync_pass_run(const struct sync_pass_opts *o, struct report *r,
    struct sync_progress *pr, char *err, size_t errlen)
{
	struct pass p;
	struct acct *accts = NULL;
	pthread_t *tids = NULL;
	size_t i, n = 0, started = 0, joined = 0;
	int parallel = (int)o->cfg->syncd.parallel, ledger = 0;
	int64_t oldest = 0;
	char e[256];

	memset(pr, 0, sizeof(*pr));
	pthread_mutex_init(&pr->mu, NULL);
	memset(&p, 0, sizeof(p));
	p.o = o;
	p.r = r;
	p.pr = pr;
	p.slots = (int)o->cfg->syncd.connections_per_server;
	p.rstart = now_mono();
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	pthread_mutex_init(&p.rmu, NULL);
	if (o->store != NULL) {
		/* unreadable: look at every message rather than none */
		if (state_ledger_oldest(o->store, &oldest, e, sizeof(e)) == -1)
			oldest = 1;
		ledger = oldest != 0;
	}

	for (i = 0; i < o->accounts->count; i++)
		if (o->only_account == NULL || strcasecmp(o->only_account,
		    o->accounts->items[i].src_user) == 0)
			n++;
	if (n == 0) {
		errbuf_set(err, errlen, "no account %s in %s",
		    o->only_account ? o->only_account : "",
		    o->accounts->path);
		goto fail;
	}
	accts = calloc(n, sizeof(*accts));
	tids = calloc(n, sizeof(*tids));
	pr->acc = calloc(n, sizeof(*pr->acc));
	if (accts == NULL || tids == NULL || pr->acc == NULL) {
		errbuf_set(err, errlen, "out of memory");
		goto fail;
	}
	pr->nacc = n;
	pr->accounts_total = n;
	for (i = 0, n = 0; i < o->accounts->count; i++) {
		const struct account *ac = &o->accounts->items[i];
		struct acct *a;

		if (o->only_account != NULL && strcasecmp(o->only_account,
		    ac->src_user) != 0)
			continue;
		a = &accts[n];
		a->p = &p;
		a->acc = ac;
		a->idx = n;
		a->ledger = ledger;
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
	for (i = 0; i < n; i++) {
		folder_plan_free(&accts[i].plan);
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
