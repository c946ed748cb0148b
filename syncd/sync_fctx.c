/*
 * sync_fctx.c - the folder context (struct fctx) and what keeps a copy
 * exactly-once: map entries written to the store (at once, or pending
 * until the next commit: one fsync a batch), the intent records
 * committed before an APPEND and settled at the start of a folder or
 * after a reconnect (fc_resolve_intents), both mailboxes selected with
 * their UIDVALIDITY checked (fc_ready_then), a delta's FETCH queued
 * behind the EXAMINE (fc_delta_prefetch), and the matching of source
 * messages onto destination messages by content key (fc_match_content).
 *
 * Threads: an fctx belongs to one worker; while a folder is copied over
 * several connections the report row is shared under fc->rmu
 * (fc_rf_lock) and each part settles only its own intents (fc->own).
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "sync_p.h"

void
fc_rf_lock(struct fctx *fc)
{
	if (fc->rmu != NULL)
		pthread_mutex_lock(fc->rmu);
}

void
fc_rf_unlock(struct fctx *fc)
{
	if (fc->rmu != NULL)
		pthread_mutex_unlock(fc->rmu);
}

void
fc_fail(struct fctx *fc, const char *what, const struct wres *r)
{
	char why[400];

	wres_reason(r, why, sizeof(why));
	snprintf(fc->err, sizeof(fc->err), "%s: %s", what, why);
}

/* fc_map_put - record entries in memory and in the store (one txn) */
int
fc_map_put(struct fctx *fc, const struct state_map_entry *e, size_t n)
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

/* fc_pend_add - finished copies: in memory now, in the store with the
 * next commit */
int
fc_pend_add(struct fctx *fc, const struct state_map_entry *e, size_t n)
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
int
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

int
fc_ready_then(struct fctx *fc, int dst_rw, fc_queued_fn queued)
{
	struct worker *w = fc->w;
	struct wres r, rd;
	char err[400];
	int qd, qs;

	/* a check left in flight on a destination connection that is gone:
	 * asked again now, before anything else is queued there */
	if (w->deferred != NULL && (w->s[DST].c == NULL ||
	    w->s[DST].state != 1))
		sync_folder_settle(w, 1);
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
	/* the folder before, its last check answered while these are */
	sync_folder_settle(w, 0);
	if (qs == -1 || (qs == 0 && side_select_end(w, SRC, fc->j->src_wire,
	    0, &r) == -1)) {
		if (qd == 0)
			side_loop_until(w, &rd.done);
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

int
fc_ready(struct fctx *fc, int dst_rw)
{
	return (fc_ready_then(fc, dst_rw, NULL));
}

/* fc_flags_since - the CHANGEDSINCE of a delta's flag look (0: a full
 * flags scan), given the source's HIGHESTMODSEQ now (0 if unknown) */
uint64_t
fc_flags_since(const struct fctx *fc, uint64_t highestmodseq)
{
	uint64_t since = fc->sf.src_highestmodseq;

	if (!(fc->a->src_condstore && since > 0 && highestmodseq > 0))
		return (0);
	return (since);
}

/*
 * fc_delta_prefetch - fc_ready_then's hook for a folder whose state says
 * "delta": the new-UID FETCH and the flag look, as far as this pass's
 * LIST-STATUS predicts them, go out right behind the EXAMINE; sync_folder
 * checks the prediction against the EXAMINE before using it.
 */
void
fc_delta_prefetch(struct fctx *fc)
{
	const struct fjob *j = fc->j;
	const struct state_folder *sf = &fc->sf;
	uint64_t hms = (j->sst.have & IMAP_STATUS_HIGHESTMODSEQ) ?
	    j->sst.highestmodseq : 0;
	char set[64];
	int want_new, want_flags;

	fc->pf_since = fc_flags_since(fc, hms);
	want_new = (j->sst.have & IMAP_STATUS_UIDNEXT) &&
	    j->sst.uidnext > sf->src_last_uid + 1;
	want_flags = fc->dst_exists && (fc->pf_since == 0 ||
	    hms != fc->pf_since);
	snprintf(set, sizeof(set), "1:%" PRIu64, sf->src_last_uid);
	/*
	 * The untagged FETCH responses of two pipelined FETCHes may
	 * interleave (RFC 3501 5.5; Dovecot runs UID FETCHes concurrently)
	 * and are given to the older one: both looks together go through
	 * scan_pair_begin, which sorts them by UID.
	 */
	if (want_new && want_flags) {
		fc->pf_new_q = fc->pf_flags_q = 1;
		(void)scan_pair_begin(fc->w, sf->src_last_uid + 1, set,
		    fc->pf_since, &fc->pf_newv, &fc->pf_flagsv, &fc->pf_new,
		    &fc->pf_flags);
	} else if (want_new) {
		snprintf(set, sizeof(set), "%" PRIu64 ":*",
		    sf->src_last_uid + 1);
		fc->pf_new_q = 1;
		(void)scan_meta_begin(fc->w, SRC, set, sf->src_last_uid + 1,
		    1, &fc->pf_newv, &fc->pf_new);
	} else if (want_flags) {
		fc->pf_flags_q = 1;
		(void)scan_flags_begin(fc->w, set, fc->pf_since,
		    &fc->pf_flagsv, &fc->pf_flags);
	}
}

/* fc_prefetch_drop - wait for what fc_delta_prefetch queued and forget it */
void
fc_prefetch_drop(struct fctx *fc)
{
	struct wres r;

	if (fc->pf_new_q) {
		(void)scan_meta_end(fc->w, &fc->pf_new, &r);
		fc->pf_new_q = 0;
	}
	if (fc->pf_flags_q) {
		(void)scan_flags_end(fc->w, &fc->pf_flags, &r);
		fc->pf_flags_q = 0;
	}
	smsgv_free(&fc->pf_newv);
	smsgv_free(&fc->pf_flagsv);
}

/* fc_resolve_intents - settle APPENDs a previous run may have done */
int
fc_resolve_intents(struct fctx *fc)
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
		if (scan_dst_find(fc->w, &fc->map, in->msgid, in->size,
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
		if (fc_map_put(fc, &e, 1) == -1)
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
 * fc_match_content - map source messages that are not in the map onto
 * unclaimed destination messages with the same content key (first
 * pass over a non-empty destination, UIDVALIDITY change).  old: the
 * map before a UIDVALIDITY reset, so syncd's own copies stay deletable.
 */
int
fc_match_content(struct fctx *fc, struct smsgv *src,
    const struct state_map *old)
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
	if (scan_meta(fc->w, DST, "1:*", 0, 1, &dm, &r) == -1) {
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
	sort_n(claimed, nclaimed, sizeof(*claimed), scan_uid_cmp);
	for (i = 0; i < dm.n; i++) {
		if (find_n(&dm.v[i].uid, claimed, nclaimed, sizeof(*claimed),
		    scan_uid_cmp) != NULL)
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
		metrics_duplicates(METRICS_DUP_ALREADY, ne);
		if (fc_map_put(fc, ev, ne) == -1)
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
