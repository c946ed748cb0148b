/*
 * sync_copy.c - copying: each body streamed from the source's FETCH
 * BODY.PEEK[] literal into the destination's APPEND literal (one
 * MULTIAPPEND a batch when offered), with the client's flow control
 * pausing the source while the destination is behind, so memory does
 * not grow with message size (DESIGN.md §1 promise 5).  Before a batch
 * its intents are committed; its outcome is settled per message
 * (copied, vanished, failed, temporary, retried alone); temporary
 * failures reconnect and settle the intents before going on; messages
 * over the destination's APPENDLIMIT are reported, never fetched.
 *
 * Threads: copy_split may copy parts of one folder on helper threads,
 * each with its own worker (off by default: SPLIT_MAX).
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "sync_p.h"

#define BATCH_MSGS	100		/* messages per APPEND batch */
#define BATCH_BYTES	((uint64_t)8 << 20)	/* bytes per batch */
#define TEMP_TRIES	3		/* a message's temp failures */
#define TAIL_MSGS	12		/* a folder's last batch, at most */
#define HOLD_MAX	(64u << 10)	/* header bytes held for UTF8 APPEND */

enum cm_state { CM_PENDING = 0, CM_OK, CM_GONE, CM_FAIL, CM_TEMP,
	CM_RETRY_ONE, CM_QUOTA };

/*
 * Permanent refusals of an APPEND (RFC 5530), which no retry cures:
 * [OVERQUOTA] ends the account's APPENDs to that server for the pass;
 * [TOOBIG] fails the message as it is; [LIMIT] (an implementation limit,
 * such as the number of keywords) fails it after the usual retry
 * without keywords.  The IMAP client classes [LIMIT] as temporary, which
 * is right for a login or a SELECT but not for an APPEND.
 */
enum refusal { REFUSE_NONE = 0, REFUSE_QUOTA, REFUSE_TOOBIG, REFUSE_LIMIT };

struct batch;
struct cmsg;

static int	cm_declare(struct batch *b, struct cmsg *cm, int utf8);

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
	struct faith	 fh;		/* what was sent, for faith_check */
	uint64_t	 lit;		/* the body's size, as the FETCH said */
	int		 holding;	/* header held back until its end */
	char		*held;		/* ... here (owned) */
	size_t		 nheld;
	int		 altered;	/* the destination's copy differs */
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
	int		 hold;		/* intents not durable: no APPEND */
	int		 dst_dead;
	size_t		*order;		/* declared order -> index */
	/* a check in flight (settled by batch_finish): owned */
	struct faith_item *fv;
	size_t		 fn;
	struct faith_q	*fq;
	double		 t0;		/* deferred: the transfer's seconds */
	struct state_map_entry *ev;	/* settled map entries */
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

/*
 * size_mismatch - the body literal is not the RFC822.SIZE the scan got.
 * What was received is copied: the literal is the message as the server
 * delivers it, RFC822.SIZE only its claim (servers compute it from a
 * cache or an LF file, and some get it wrong); refusing would leave the
 * message behind for good.  It is flagged instead: a warning naming the
 * folder and UID, a note in the report and the folder's size_mismatch
 * count.  The scan's size stays the message's identity in the state.
 */
static void
size_mismatch(struct fctx *fc, const struct smsg *s, uint64_t got)
{
	char why[200];

	log_warnx("%s: %s: uid %" PRIu64 ": RFC822.SIZE is %" PRIu64 " but "
	    "the body received is %" PRIu64 " bytes: copied as received",
	    fc->a->acc->src_user, fc->j->m->src_path, s->uid, s->size, got);
	snprintf(why, sizeof(why), "RFC822.SIZE %" PRIu64 " but the body "
	    "received was %" PRIu64 " bytes: copied as received", s->size,
	    got);
	fc_rf_lock(fc);
	fc->rf->size_mismatch++;
	report_problem(fc->rf, REPORT_NOTE, s->uid, NULL, got, why);
	fc_rf_unlock(fc);
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
	struct imap_cmd *app;

	(void)c;
	(void)section;
	if (b->hold)
		return;		/* the intents' commit failed: no APPEND */
	b->cur = cm = batch_find(b, m);
	if (cm == NULL)
		return;
	cm->got_body = 1;
	b->nseen++;
	/* out of memory: the copy is left unverified, never failed */
	(void)faith_begin(&cm->fh);
	if (size != cm->s->size)
		size_mismatch(b->fc, cm->s, size);
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
	cm->lit = size;
	if (imap_client_enabled(dst) & IMAP_ENABLE_UTF8) {
		/* whether the header has 8-bit bytes (the UTF8 form of
		 * APPEND) is known at its end: held back until then */
		cm->holding = 1;
		return;
	}
	(void)cm_declare(b, cm, 0);
}

/*
 * cm_declare - the message declared in its APPEND (RFC 6855's UTF8 form
 * when utf8): -1 when it could not be, the destination then hung up
 */
static int
cm_declare(struct batch *b, struct cmsg *cm, int utf8)
{
	struct imap_client *dst = b->w->s[DST].c;
	struct imap_cmd *app = b->multi ? b->app : cm->app;
	struct imap_append_msg am;
	char err[256];

	memset(&am, 0, sizeof(am));
	am.flags = cm->flags;
	am.internaldate = cm->s->idate_s[0] ? cm->s->idate_s : NULL;
	am.size = cm->lit;
	am.utf8 = utf8;
	if (dst == NULL || app == NULL || imap_client_append_msg(dst, app,
	    &am, err, sizeof(err)) == -1) {
		/* an APPEND without its message cannot be closed cleanly:
		 * hang up, the batch is retried after a reconnect */
		snprintf(cm->reason, sizeof(cm->reason), "APPEND: %s",
		    dst == NULL || app == NULL ? "not connected" : err);
		b->dst_dead = 1;
		side_close(&b->w->s[DST]);
		return (-1);
	}
	cm->declared = 1;
	b->order[b->ndeclared++] = (size_t)(cm - b->v);
	return (0);
}

/*
 * cm_release - the held header goes out: declared (UTF8 when it has
 * 8-bit bytes) and its bytes sent.  1 when the destination wants the
 * source paused, -1 when the message could not be declared.
 */
static int
cm_release(struct batch *b, struct cmsg *cm)
{
	int rc = 0;

	cm->holding = 0;
	if (cm_declare(b, cm, cm->fh.eightbit) == -1) {
		free(cm->held);
		cm->held = NULL;
		return (-1);
	}
	if (cm->nheld > 0)
		rc = imap_client_append_data(b->w->s[DST].c, b->multi ? b->app :
		    cm->app, cm->held, cm->nheld);
	free(cm->held);
	cm->held = NULL;
	cm->nheld = 0;
	return (rc);
}

/* cm_hold - header bytes kept until the header ends (HOLD_MAX at most) */
static int
cm_hold(struct cmsg *cm, const void *data, size_t len)
{
	char *p;

	if ((p = realloc(cm->held, cm->nheld + len)) == NULL)
		return (-1);
	memcpy(p + cm->nheld, data, len);
	cm->held = p;
	cm->nheld += len;
	return (0);
}

static void
c_body_data(struct imap_client *c, const void *data, size_t len, void *arg)
{
	struct batch *b = arg;
	struct cmsg *cm = b->cur;
	struct imap_cmd *app;
	int rc;

	if (cm == NULL || b->dst_dead)
		return;
	if (cm->holding) {
		faith_feed(&cm->fh, data, len);
		if (cm_hold(cm, data, len) == -1) {
			snprintf(cm->reason, sizeof(cm->reason), "out of "
			    "memory");
			b->dst_dead = 1;
			side_close(&b->w->s[DST]);
			return;
		}
		if (!cm->fh.hdr_done && cm->nheld < HOLD_MAX)
			return;
		rc = cm_release(b, cm);
	} else {
		if (!cm->declared)
			return;
		if ((app = b->multi ? b->app : cm->app) == NULL)
			return;
		faith_feed(&cm->fh, data, len);
		rc = imap_client_append_data(b->w->s[DST].c, app, data, len);
	}
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
	if (cm->holding && !b->dst_dead && cm_release(b, cm) == 1 &&
	    !b->src_paused) {
		b->src_paused = 1;
		imap_client_pause_read(c);
	}
	faith_end(&cm->fh);
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
	if (res->status != IMAP_OK && b->cur != NULL && (b->cur->declared ||
	    b->cur->holding) && !b->dst_dead) {
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

/* intent_fill - the intent record of a message about to be appended */
static void
intent_fill(const struct fctx *fc, const struct smsg *s,
    struct state_intent *in)
{
	in->src_uid = s->uid;
	in->size = s->size;
	in->internaldate = s->idate;
	in->tz = s->tz;
	in->created = (int64_t)time(NULL);
	memcpy(in->ckey, s->ckey, STATE_CKEY_LEN);
	in->msgid = s->msgid;
	in->dst_name = fc->j->dst_wire;
}

/*
 * batch_prepare - each message's flags filtered for the destination and
 * its intent record filled; *bytes_r gets the batch's size.  -1: out of
 * memory (fc->err).
 */
static int
batch_prepare(struct fctx *fc, struct batch *b, struct smsg **msgs,
    struct state_intent *in, uint64_t *bytes_r)
{
	struct worker *w = fc->w;
	uint64_t bytes = 0;
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct cmsg *cm = &b->v[i];

		cm->s = msgs[i];
		cm->b = b;
		cm->flags = scan_flags_filter(&w->s[DST], msgs[i]->flags,
		    msgs[i]->no_keywords, cm->dropped, sizeof(cm->dropped));
		if (cm->flags == NULL) {
			snprintf(fc->err, sizeof(fc->err), "out of memory");
			return (-1);
		}
		intent_fill(fc, msgs[i], &in[i]);
		bytes += msgs[i]->size;
	}
	*bytes_r = bytes;
	return (0);
}

static enum refusal
refusal_of(const struct wres *r)
{
	if (!r->done || r->status != IMAP_NO)
		return (REFUSE_NONE);
	if (strcasecmp(r->code, "OVERQUOTA") == 0)
		return (REFUSE_QUOTA);
	if (strcasecmp(r->code, "TOOBIG") == 0)
		return (REFUSE_TOOBIG);
	if (strcasecmp(r->code, "LIMIT") == 0)
		return (REFUSE_LIMIT);
	/* servers older than RFC 5530 say it in words only */
	if (r->code[0] == '\0' && (strcasestr(r->text, "quota exceeded") ||
	    strcasestr(r->text, "over quota")))
		return (REFUSE_QUOTA);
	return (REFUSE_NONE);
}

/* quota_note - the account is over quota on the destination: say so once */
static void
quota_note(struct fctx *fc, const struct wres *r)
{
	struct acct *a = fc->a;

	pthread_mutex_lock(&a->mu);
	if (!a->over_quota) {
		wres_reason(r, a->quota_text, sizeof(a->quota_text));
		a->over_quota = 1;
	}
	pthread_mutex_unlock(&a->mu);
}

/* quota_left - count a message left behind for quota (rf locked) */
static void
quota_left(struct fctx *fc, struct smsg *s, const char *why)
{
	s->done = 1;
	fc->problems++;
	report_problem(fc->rf, REPORT_FAILED, s->uid, NULL, s->size, why);
	prog_add(fc->a, 0, 0, 0, 1, 0);
	metrics_failed(METRICS_FAIL_OVER_QUOTA);
	if (fc->quota_n == 0 || s->uid < fc->quota_lo)
		fc->quota_lo = s->uid;
	if (s->uid > fc->quota_hi)
		fc->quota_hi = s->uid;
	fc->quota_n++;
}

/* quota_skip - every message of todo not settled yet: not tried */
static void
quota_skip(struct fctx *fc, struct smsgv *todo)
{
	char why[400];
	size_t i;

	snprintf(why, sizeof(why), "not tried: over quota on the destination "
	    "(%s)", fc->a->quota_text);
	fc_rf_lock(fc);
	for (i = 0; i < todo->n; i++)
		if (!todo->v[i].done && !todo->v[i].in_map)
			quota_left(fc, &todo->v[i], why);
	fc_rf_unlock(fc);
}

/* batch_outcome - each message's state once the FETCH and APPENDs ended */
static void
batch_outcome(struct batch *b)
{
	size_t i, nbody = 0;

	for (i = 0; i < b->n; i++)
		if (b->v[i].got_body)
			nbody++;
	for (i = 0; i < b->n; i++) {
		struct cmsg *cm = &b->v[i];
		const struct wres *ar = b->multi ? &b->ares : &cm->ares;

		if (b->fres.status != IMAP_OK && !(cm->body_done &&
		    cm->declared && ar->done && ar->status == IMAP_OK)) {
			cm->state = wres_temp(&b->fres) ? CM_TEMP : CM_FAIL;
			wres_reason(&b->fres, cm->reason, sizeof(cm->reason));
		} else if (!cm->got_body) {
			cm->state = CM_GONE;
		} else if (!b->dst_dead && refusal_of(ar) != REFUSE_NONE &&
		    !(b->multi && nbody > 1)) {
			/* a refusal of this very message, for good */
			wres_reason(ar, cm->reason, sizeof(cm->reason));
			switch (refusal_of(ar)) {
			case REFUSE_QUOTA:
				cm->state = CM_QUOTA;
				quota_note(b->fc, ar);
				break;
			case REFUSE_LIMIT:
				cm->state = CM_FAIL;
				cm->append_failed = 1;
				break;
			default:
				cm->state = CM_FAIL;
				break;
			}
		} else if (!b->dst_dead && b->multi && nbody > 1 &&
		    refusal_of(ar) != REFUSE_NONE) {
			/* MULTIAPPEND is all or nothing: what fits, or which
			 * one is too big, is found one message at a time */
			cm->state = CM_RETRY_ONE;
			if (refusal_of(ar) == REFUSE_QUOTA)
				b->fc->a->quota_single = 1;
		} else if (b->dst_dead || !ar->done || wres_temp(ar)) {
			cm->state = CM_TEMP;
			if (ar->done && ar->status != IMAP_OK)
				wres_reason(ar, cm->reason, sizeof(cm->reason));
			else
				snprintf(cm->reason, sizeof(cm->reason),
				    "connection lost during APPEND");
		} else if (ar->status == IMAP_OK && cm->declared) {
			cm->state = CM_OK;
			if (!b->multi && ar->appenduid_validity)
				cm->dst_uid = ar->appenduid_first;
		} else if (b->multi && nbody > 1) {
			/* MULTIAPPEND is all or nothing: find the culprit */
			cm->state = CM_RETRY_ONE;
		} else {
			cm->state = CM_FAIL;
			cm->append_failed = 1;
			if (!cm->reason[0])
				wres_reason(ar, cm->reason, sizeof(cm->reason));
		}
	}
}

/* batch_lookup - without UIDPLUS: look the copies up by Message-ID */
static void
batch_lookup(struct fctx *fc, struct batch *b)
{
	struct worker *w = fc->w;
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct cmsg *cm = &b->v[i];
		struct wres r;

		if (cm->state != CM_OK || cm->dst_uid != 0 || fc->dry)
			continue;
		if (side_select(w, DST, fc->j->dst_wire, 0, &r) == 0)
			scan_dst_find(w, &fc->map, cm->s->msgid, cm->s->size,
			    cm->s->idate, &cm->dst_uid, &r);
	}
}

/* batch_copied - a message on the destination: its map entry into ev */
static void
batch_copied(struct fctx *fc, struct cmsg *cm, struct state_map_entry *ev)
{
	struct smsg *s = cm->s;

	ev->src_uid = s->uid;
	ev->dst_uid = cm->dst_uid;
	ev->dst_uidvalidity = fc->dmb.uidvalidity;
	ev->size = s->size;
	ev->internaldate = s->idate;
	ev->origin = STATE_ORIGIN_COPIED;
	memcpy(ev->ckey, s->ckey, STATE_CKEY_LEN);
	ev->flags = s->flags;
	s->done = 1;
	s->in_map = 1;
	if (cm->dropped[0] && !s->no_keywords)
		fc->flags_dropped++;
	if (cm->altered) {
		/* on the destination, so never copied again, but not what
		 * was sent: no faithful copy, unless the admin accepts it */
		int accept = fc->a->p->o->cfg->syncd.accept_altered;

		ev->origin = STATE_ORIGIN_ALTERED;
		log_warnx("%s: %s: uid %" PRIu64 " %s%s", fc->a->acc->src_user,
		    fc->j->m->src_path, s->uid, cm->reason,
		    accept ? " (accepted: accept_altered = yes)" : "");
		if (!accept) {
			fc->problems++;
			report_problem(fc->rf, REPORT_FAILED, s->uid, NULL,
			    s->size, cm->reason);
			prog_add(fc->a, 0, 0, 0, 1, 0);
			metrics_failed(METRICS_FAIL_ALTERED);
			return;
		}
		report_problem(fc->rf, REPORT_NOTE, s->uid, NULL, s->size,
		    cm->reason);
	}
	fc->rf->copied++;
	fc->rf->bytes += s->size;
	prog_add(fc->a, 1, 0, 0, 0, 0);
	metrics_copied(s->size);
	if (s->no_keywords) {
		char why[400];

		snprintf(why, sizeof(why), "copied without its keywords "
		    "(%s): the destination refused them", cm->dropped);
		/* listed for the admin, but not missing: the message
		 * itself is on the destination */
		report_problem(fc->rf, REPORT_NOTE, s->uid, NULL, s->size,
		    why);
	}
}

/*
 * batch_check_items - the copies of b to check (b->fv, b->fn): each
 * message appended with a UID and a digest of what was sent.  -1 when
 * out of memory (the copies then stay unverified).
 */
static int
batch_check_items(struct batch *b)
{
	size_t i;

	b->fn = 0;
	if ((b->fv = calloc(b->n, sizeof(*b->fv))) == NULL)
		return (-1);
	for (i = 0; i < b->n; i++) {
		struct cmsg *cm = &b->v[i];

		if (cm->state != CM_OK || cm->dst_uid == 0 || !cm->fh.ready)
			continue;
		b->fv[b->fn].dst_uid = cm->dst_uid;
		b->fv[b->fn].sent = &cm->fh;
		b->fv[b->fn].owner = cm;
		b->fn++;
	}
	return (0);
}

/* batch_check_apply - the check's verdicts into the messages */
static void
batch_check_apply(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->fn; i++) {
		struct cmsg *cm = b->fv[i].owner;

		if (b->fv[i].altered) {
			cm->altered = 1;
			snprintf(cm->reason, sizeof(cm->reason), "%s",
			    b->fv[i].why);
		}
	}
	free(b->fv);
	b->fv = NULL;
	b->fn = 0;
}

/* check_lost - the destination did not answer a check: say so */
static void
check_lost(struct fctx *fc, size_t n, const char *err)
{
	log_warnx("%s: %s: %zu cop%s not verified on the destination: %s",
	    fc->a->acc->src_user, fc->j->m->src_path, n, n == 1 ? "y" :
	    "ies", err);
}

/*
 * batch_verify - what the destination holds of each new copy, against
 * what was sent (sync_faithful.c): one UID FETCH a batch, waited for
 */
static void
batch_verify(struct fctx *fc, struct batch *b)
{
	char err[300];

	if (fc->dry || b->dst_dead || fc->w->s[DST].state != 1)
		return;
	if (batch_check_items(b) == -1)
		return;
	if (b->fn > 0 && faith_check(fc->w, fc->j->dst_wire, b->fv, b->fn,
	    err, sizeof(err)) == -1)
		check_lost(fc, b->fn, err);
	batch_check_apply(b);
}

/*
 * batch_settle - each message's outcome into the report, the progress
 * and the state: map entries of the copies into ev (*ne_r of them),
 * intents of the rest dropped.  -1 when a temporary failure wants a
 * reconnect (the caller then resolves the intents), else 0.
 */
static int
batch_settle(struct fctx *fc, struct batch *b, struct state_map_entry *ev,
    size_t *ne_r)
{
	char err[256];
	size_t i, ne = 0;
	int rc = 0;

	fc_rf_lock(fc);
	for (i = 0; i < b->n; i++) {
		struct cmsg *cm = &b->v[i];
		struct smsg *s = cm->s;

		switch (cm->state) {
		case CM_OK:
			batch_copied(fc, cm, &ev[ne++]);
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
				metrics_failed(cm->append_failed ?
				    METRICS_FAIL_REFUSED : METRICS_FAIL_SOURCE);
				log_warnx("%s: %s: uid %" PRIu64 " not copied: "
				    "%s", fc->a->acc->src_user,
				    fc->j->m->src_path, s->uid, cm->reason);
			}
			if (fc->st)
				state_intent_del(fc->st, &fc->key, s->uid, err,
				    sizeof(err));
			break;
		case CM_QUOTA:
			{
				char why[450];

				snprintf(why, sizeof(why), "over quota on the "
				    "destination: %s", cm->reason);
				quota_left(fc, s, why);
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
				metrics_failed(METRICS_FAIL_TEMPORARY);
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
	fc_rf_unlock(fc);
	*ne_r = ne;
	return (rc);
}

static void
batch_free(struct batch *b)
{
	size_t i;

	if (b == NULL)
		return;
	if (b->v != NULL)
		for (i = 0; i < b->n; i++) {
			free(b->v[i].flags);
			free(b->v[i].held);
			faith_free(&b->v[i].fh);
		}
	free(b->v);
	free(b->order);
	free(b->fv);
	free(b->ev);
	free(b);
}

/* batch_account - map entries of a settled batch pending, its cost noted */
static int
batch_account(struct fctx *fc, struct batch *b, size_t ne, double secs)
{
	/* what a message costs on one pair, for sync_pairs.c */
	pthread_mutex_lock(&fc->a->mu);
	fc->a->app_msgs += ne;
	fc->a->app_secs += secs;
	pthread_mutex_unlock(&fc->a->mu);
	if (ne > 0 && fc_pend_add(fc, b->ev, ne) == -1)
		return (-2);
	return (0);
}

/*
 * batch_finish - a batch whose check was left in flight: its answer
 * collected (asked again, waited for, when the connection was lost in
 * between and may_ask_again), then the batch settled and freed.  0, or
 * -2 (fc->err).  Asking again selects the batch's folder: not while the
 * next folder's SELECT is already out (copy_settle from there).
 */
static int
batch_finish(struct fctx *fc, struct batch *b, int may_ask_again)
{
	struct faith_q *q = b->fq;
	char err[300], e2[300];
	size_t i, ne = 0;
	int rc, lost;

	b->fq = NULL;
	lost = q != NULL && faith_check_collect(fc->w, q, err,
	    sizeof(err)) == -1;
	if (lost && !may_ask_again)
		check_lost(fc, b->fn, err);
	else if (lost) {
		for (i = 0; i < b->fn; i++) {
			struct faith_item *it = &b->fv[i];

			it->got_size = it->got_header = it->header_same = 0;
			it->checked = it->altered = 0;
			it->why[0] = '\0';
		}
		if (side_ensure(fc->w, DST, e2, sizeof(e2)) == -1 ||
		    faith_check(fc->w, fc->j->dst_wire, b->fv, b->fn, e2,
		    sizeof(e2)) == -1)
			check_lost(fc, b->fn, e2);
	}
	batch_check_apply(b);
	(void)batch_settle(fc, b, b->ev, &ne);
	rc = batch_account(fc, b, ne, b->t0);
	batch_free(b);
	return (rc);
}

/* deferrable - every message of b copied or gone: nothing to retry */
static int
deferrable(const struct fctx *fc, const struct batch *b)
{
	size_t i;

	if (fc->dry || b->dst_dead || fc->w->s[DST].c == NULL ||
	    fc->w->s[DST].state != 1)
		return (0);
	for (i = 0; i < b->n; i++)
		if (b->v[i].state != CM_OK && b->v[i].state != CM_GONE)
			return (0);
	return (1);
}

/*
 * copy_batch - copy n messages in one go: intents committed, FETCHes
 * pipelined on the source, each body streamed into the APPEND
 * (MULTIAPPEND when multi), outcome per message in cm->state.
 *
 * The faithful-copy check of a batch that went through cleanly is left
 * in flight on the destination (*prevp): its FETCH is answered while the
 * next batch streams, and the batch is settled after that batch's
 * transfer (batch_finish; the folder's last one by copy_all, or, when
 * fc->may_defer, by copy_settle once the next folder is being selected:
 * sync_folder_settle).  Its messages are marked done at once so that no
 * later batch takes them again.
 *
 * ahead (nahead messages, may be none): the folder's tail, which goes
 * in the next batch; their intents are committed in this batch's
 * transaction, so that the tail's APPEND waits for no commit (and its
 * fsync) of its own.  A batch whose every intent went ahead is appended
 * without a commit; a reconnect resolves every intent and clears the
 * marks (copy_all), so a retried message commits again.
 */
static int
copy_batch(struct fctx *fc, struct smsg **msgs, size_t n, int multi,
    struct batch **prevp, struct smsg **ahead, size_t nahead)
{
	static const struct imap_fetch_cbs fcbs = { c_body_begin, c_body_data,
	    c_body_end, NULL, NULL };
	struct worker *w = fc->w;
	struct batch *b;
	struct state_intent *in = NULL;
	char set[BATCH_MSGS * 22], err[300];
	size_t i, ne = 0, so, nk;
	uint64_t bytes = 0;
	double t0 = pace_now();
	int rc = 0, prc;

	if ((b = calloc(1, sizeof(*b))) == NULL) {
		snprintf(fc->err, sizeof(fc->err), "out of memory");
		rc = -1;
		goto out;
	}
	b->w = w;
	b->fc = fc;
	b->n = n;
	b->multi = multi && n > 1;
	b->v = calloc(n, sizeof(*b->v));
	b->order = calloc(n, sizeof(*b->order));
	in = calloc(n + nahead, sizeof(*in));
	b->ev = calloc(n, sizeof(*b->ev));
	if (b->v == NULL || b->order == NULL || in == NULL || b->ev == NULL) {
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
	if (batch_prepare(fc, b, msgs, in, &bytes) == -1) {
		rc = -1;
		goto out;
	}
	pace_rate_wait(fc->a, n, bytes);
	t0 = pace_now();
	for (i = 0, nk = 0; i < n; i++) {
		nk += msgs[i]->intent_ahead != 0;
		msgs[i]->intent_ahead = 0;
	}
	for (i = 0, so = 0; i < n; i++)
		so += (size_t)snprintf(set + so, sizeof(set) - so, "%s%" PRIu64,
		    i ? "," : "", msgs[i]->uid);
	/*
	 * The FETCH goes out first, with the source's input paused, so the
	 * source reads the bodies while the intents' commit (an fdatasync)
	 * runs; nothing is appended until it is durable, and a commit that
	 * fails appends nothing (b->hold, the bodies read and dropped).
	 */
	b->hold = nk < n && fc->st != NULL && !fc->dry;
	if (b->hold)
		imap_client_pause_read(w->s[SRC].c);
	if (imap_client_uid_fetch(w->s[SRC].c, set, "(UID BODY.PEEK[])", 0,
	    0, &fcbs, c_fetch_done, b) == NULL) {
		b->fres.done = 1;
		b->fres.status = IMAP_ERROR;
		b->fres.cls = IMAP_ERR_TEMP;
		snprintf(b->fres.text, sizeof(b->fres.text),
		    "FETCH not queued");
	} else if (b->hold)
		(void)event_base_loop(w->base, EVLOOP_NONBLOCK);
	/* the intents: committed before any byte of the APPEND is sent
	 * (with the previous batch's map entries, one transaction), unless
	 * every one of them went ahead with the batch before */
	if (nk < n) {
		for (i = 0; i < nahead; i++)
			intent_fill(fc, ahead[i], &in[n + i]);
		prc = fc_commit(fc, in, n + nahead, NULL);
		if (prc == 0)
			for (i = 0; i < nahead; i++)
				ahead[i]->intent_ahead = 1;
	} else
		prc = 0;
	if (b->hold) {
		b->hold = prc == -1;	/* kept: the bodies are dropped */
		if (w->s[SRC].c != NULL)
			imap_client_resume_read(w->s[SRC].c);
	}
	if (prc == -1) {
		batch_loop(b);		/* the FETCH read to its end */
		rc = -1;
		goto out;
	}
	batch_loop(b);
	/* the previous batch's check was answered meanwhile */
	if (*prevp != NULL) {
		prc = batch_finish(fc, *prevp, 1);
		*prevp = NULL;
		if (prc == -2)
			rc = -2;
	}
	if (b->multi && b->ares.status == IMAP_OK && b->ares.done &&
	    !b->dst_dead)
		assign_uids(b, &b->ares);
	batch_outcome(b);
	batch_lookup(fc, b);
	if (rc == 0 && deferrable(fc, b) && batch_check_items(b) == 0 &&
	    b->fn > 0) {
		if (faith_check_send(w, fc->j->dst_wire, b->fv, b->fn, &b->fq,
		    err, sizeof(err)) == -1)
			check_lost(fc, b->fn, err);
		for (i = 0; i < n; i++)
			msgs[i]->done = 1;
		b->t0 = pace_now() - t0;
		if (b->src_paused && w->s[SRC].c != NULL)
			imap_client_resume_read(w->s[SRC].c);
		*prevp = b;
		b = NULL;
		goto out;
	}
	free(b->fv);
	b->fv = NULL;
	batch_verify(fc, b);
	prc = batch_settle(fc, b, b->ev, &ne);
	if (rc == 0)
		rc = prc;
	if (batch_account(fc, b, ne, pace_now() - t0) == -2)
		rc = -2;
	for (i = 0; i < n; i++)
		if (b->v[i].state == CM_RETRY_ONE)
			rc = rc == 0 ? 1 : rc;
	if (b->dst_dead || w->s[DST].state != 1)
		side_close(&w->s[DST]);
out:
	if (b != NULL && b->src_paused && w->s[SRC].c != NULL)
		imap_client_resume_read(w->s[SRC].c);
	if (*prevp != NULL && rc != 0) {
		/* failed before the transfer: settle the previous one */
		if (batch_finish(fc, *prevp, 1) == -2)
			rc = -2;
		*prevp = NULL;
	}
	batch_free(b);
	free(in);
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
	struct batch *prev = NULL;	/* its check in flight */
	uint64_t limit = fc->a->dst_appendlimit, maxbytes = BATCH_BYTES;
	size_t i, nb, nahead, maxmsgs = BATCH_MSGS;
	int rounds = 0, one = 0, rc;

	if ((bv = calloc(BATCH_MSGS, sizeof(*bv))) == NULL) {
		snprintf(fc->err, sizeof(fc->err), "out of memory");
		return (-1);
	}
	/* policy first: nothing is fetched that cannot be appended */
	fc_rf_lock(fc);
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
		metrics_policy(1);
		fc->problems++;
		s->done = 1;
	}
	fc_rf_unlock(fc);
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
	while (!pace_stopping(fc->a)) {
		uint64_t bytes = 0;

		if (fc->a->over_quota && !fc->dry) {
			quota_skip(fc, todo);
			break;
		}
		nb = 0;
		for (i = 0; i < todo->n && nb < (one || fc->a->quota_single ?
		    1u : maxmsgs); i++) {
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
		nahead = 0;
		if (!fc->dry && !one && nb > 2 * TAIL_MSGS) {
			/*
			 * The folder's last batch: its check is the one that
			 * nothing overlaps (each other's is read while the
			 * next batch streams), so a short tail goes alone.
			 */
			size_t k = i;

			while (k < todo->n && (todo->v[k].done ||
			    todo->v[k].in_map))
				k++;
			if (k == todo->n) {
				nb -= TAIL_MSGS;
				nahead = TAIL_MSGS;
			}
		}
		if (fc->dry) {
			for (i = 0; i < nb; i++) {
				bv[i]->done = 1;
				fc->rf->copied++;
				fc->rf->bytes += bv[i]->size;
				prog_add(fc->a, 1, 0, 0, 0, bv[i]->size);
			}
			continue;
		}
		rc = copy_batch(fc, bv, nb, fc->a->dst_multi && !one, &prev,
		    bv + nb, nahead);
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
			for (i = 0; i < todo->n; i++)
				todo->v[i].intent_ahead = 0;
			if (fc_resolve_intents(fc) == -1) {
				free(bv);
				return (-1);
			}
			fc_rf_lock(fc);
			for (i = 0; i < todo->n; i++)
				if (!todo->v[i].in_map &&
				    state_map_find(&fc->map, todo->v[i].uid)) {
					todo->v[i].in_map = 1;
					todo->v[i].done = 1;
					fc->rf->copied++;
					fc->rf->bytes += todo->v[i].size;
					prog_add(fc->a, 1, 0, 0, 0, 0);
					metrics_copied(todo->v[i].size);
				}
			fc_rf_unlock(fc);
			continue;
		}
		one = 0;
	}
	free(bv);
	if (prev != NULL && fc->may_defer && !pace_stopping(fc->a))
		fc->deferred = prev;	/* copy_settle, after the next SELECT */
	else if (prev != NULL && batch_finish(fc, prev, 1) == -2)
		return (-1);
	if (fc->quota_n > 0)
		log_warnx("%s: %s: %" PRIu64 " message%s (uid %" PRIu64 ":%"
		    PRIu64 ") not copied: over quota on the destination: %s",
		    fc->a->acc->src_user, fc->j->m->src_path, fc->quota_n,
		    fc->quota_n == 1 ? "" : "s", fc->quota_lo, fc->quota_hi,
		    fc->a->quota_text);
	if (pace_stopping(fc->a)) {
		snprintf(fc->err, sizeof(fc->err), "interrupted");
		return (-1);
	}
	return (0);
}

/*
 * copy_settle - the batch copy_all left in flight (fc->deferred), if any,
 * collected and settled; its answer is asked for again on a lost
 * connection only when may_ask_again (nothing else is out on the
 * destination).  0, or -1 (fc->err).
 */
int
copy_settle(struct fctx *fc, int may_ask_again)
{
	struct batch *b = fc->deferred;

	fc->deferred = NULL;
	if (b == NULL)
		return (0);
	return (batch_finish(fc, b, may_ask_again) == -2 ? -1 : 0);
}

/* copy_deferred_count - copies in fc->deferred, not in the report yet */
uint64_t
copy_deferred_count(const struct fctx *fc)
{
	const struct batch *b = fc->deferred;
	uint64_t n = 0;
	size_t i;

	for (i = 0; b != NULL && i < b->n; i++)
		if (b->v[i].state == CM_OK)
			n++;
	return (n);
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


static void *
helper_thread(void *arg)
{
	struct helper *h = arg;

	h->rc = copy_all(&h->fc, &h->part);
	if (fc_commit(&h->fc, NULL, 0, NULL) == -1)
		h->rc = -1;
	return (NULL);
}

int
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

		if (!pace_slot_take(fc->a->p, 0))
			break;
		if ((w = worker_new(fc->a)) == NULL) {
			pace_slot_give(fc->a->p);
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
		h[nh].fc.may_defer = 0;
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
	fc->may_defer = 0;	/* the parts are joined here */
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
