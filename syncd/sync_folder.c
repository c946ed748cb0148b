/*
 * sync_folder.c - one folder's pass, as phases in this order:
 *   load     the state record; an unchanged folder ends here; both
 *            mailboxes selected (a delta's FETCH queued behind)
 *   validity the map loaded; a UIDVALIDITY change resets the state and
 *            the map is rebuilt by content; full or delta decided
 *   scan     leftover intents settled; the source messages fetched (all,
 *            or those above the last UID); unknown destination messages
 *            matched by content
 *   flags    flag changes stored on the destination
 *   todo     what is not in the map: the ledger's hits skipped, the rest
 *            copied (sync_copy.c)
 *   deletions with delete = yes, syncd's own copies of messages gone
 *            from the source expunged on the destination
 *   finish   the destination's count and the new folder record
 *   end      pending map entries committed even after a failure, the
 *            report row and the log line
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "sync_p.h"

/*
 * sync_folder_unchanged - the source's status matches the state of a complete
 * earlier pass (s, NULL when there is none): nothing to do
 */
int
sync_folder_unchanged(const struct fjob *j, const struct state_folder *s)
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
		na = scan_flags_filter(&w->s[DST], changed->v[i].flags, 0, NULL,
		    0);
		oa = scan_flags_filter(&w->s[DST], e->flags, 0, NULL, 0);
		if (na == NULL || oa == NULL) {
			free(na);
			free(oa);
			continue;
		}
		scan_flags_diff(na, oa, add, sizeof(add));
		scan_flags_diff(oa, na, del, sizeof(del));
		free(na);
		free(oa);
		snprintf(set, sizeof(set), "%" PRIu64, e->dst_uid);
		if (add[0])
			imap_client_uid_store(w->s[DST].c, set,
			    "+FLAGS.SILENT", add, 0, NULL, wres_done,
			    &rs[nrs++]) == NULL ?
			    (void)(rs[nrs - 1].done = 1) : (void)0;
		if (del[0])
			imap_client_uid_store(w->s[DST].c, set,
			    "-FLAGS.SILENT", del, 0, NULL, wres_done,
			    &rs[nrs++]) == NULL ?
			    (void)(rs[nrs - 1].done = 1) : (void)0;
		ev[ne] = *e;
		ev[ne].flags = changed->v[i].flags;
		ne++;
	}
	for (i = 0; i < nrs; i++) {
		if (side_loop_until(w, &rs[i].done) == -1 ||
		    rs[i].status != IMAP_OK) {
			fc_fail(fc, "STORE flags on the destination", &rs[i]);
			rc = -1;
		}
	}
	if (rc == 0 && ne > 0) {
		log_info("%s: %s: flags changed on %zu message(s)",
		    fc->a->acc->src_user, fc->j->m->src_path, ne);
		rc = fc_map_put(fc, ev, ne);
	}
	free(ev);
	free(rs);
	return (rc);
}

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

		if ((e->origin != STATE_ORIGIN_COPIED &&
		    e->origin != STATE_ORIGIN_ALTERED) || e->dst_uid == 0 ||
		    e->src_uid > fc->max_uid)
			continue;
		if (find_n(&e->src_uid, live, nlive, sizeof(*live),
		    scan_uid_cmp) != NULL)
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
	if (side_wait(w, imap_client_uid_store(w->s[DST].c, set,
	    "+FLAGS.SILENT", "\\Deleted", 0, NULL, wres_done, &r), &r) == -1) {
		fc_fail(fc, "STORE \\Deleted", &r);
		rc = -1;
		goto out;
	}
	memset(&r, 0, sizeof(r));
	if (side_wait(w, imap_client_uid_expunge(w->s[DST].c, set, wres_done,
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

/* one folder's pass: its context and what one phase hands the next */
struct frun {
	struct fctx	 fc;
	struct fjob	*j;
	struct smsgv	 msgs;		/* the source messages looked at */
	struct smsgv	 todo;		/* ...of which not in the map */
	struct smsgv	 flags;		/* a delta's flag look */
	struct state_map old;		/* the map before a UIDVALIDITY reset */
	int		 delta;		/* only what is new since the state */
	int		 rebuild;	/* UIDVALIDITY changed */
	double		 t0;
	double		 seconds;	/* set when its last check is deferred */
};

/*
 * phase_load - the folder's state record, then both mailboxes selected
 * (for a complete state whose UIDVALIDITY LIST-STATUS confirms, a
 * delta's FETCH queued behind the EXAMINE): 0 go on, 1 nothing to do
 * (the status matches a complete earlier pass), -1 failed (fc->err)
 */
static int
phase_load(struct frun *fr)
{
	struct fctx *fc = &fr->fc;
	struct fjob *j = fr->j;
	struct report_folder *rf = j->rf;
	char err[256], sname[REVERSE_USER_MAX];

	if (state_folder_key(&fc->key, reverse_state_user(fc->a, sname,
	    sizeof(sname)), j->m->src_path, err, sizeof(err)) == -1) {
		snprintf(fc->err, sizeof(fc->err), "%s", err);
		return (-1);
	}
	if (fc->st != NULL) {
		int g = state_folder_get(fc->st, &fc->key, &fc->sf, err,
		    sizeof(err));

		if (g == -1) {
			snprintf(fc->err, sizeof(fc->err), "state: %s", err);
			return (-1);
		}
		fc->have_state = g == 0;
	}
	if (sync_folder_unchanged(j, fc->have_state ? &fc->sf : NULL)) {
		rf->src_count = j->sst.messages;
		rf->already = j->sst.messages;
		rf->dst_count = (j->dst.have & IMAP_STATUS_MESSAGES) ?
		    j->dst.messages : REPORT_UNKNOWN;
		return (1);
	}
	if (fc_ready_then(fc, 0, fc->have_state &&
	    (fc->sf.flags & STATE_F_COMPLETE) && fc->sf.src_last_uid > 0 &&
	    j->have_sst && (j->sst.have & IMAP_STATUS_UIDVALIDITY) &&
	    j->sst.uidvalidity == fc->sf.src_uidvalidity ?
	    fc_delta_prefetch : NULL) == -1)
		return (-1);
	rf->src_count = fc->smb.exists;
	return (0);
}

/*
 * phase_validity - the map loaded; a UIDVALIDITY change on either side
 * resets the state (the old map kept in fr->old for content matching),
 * a folder without state gets its record; a complete state with a last
 * UID makes a delta, anything else a full look (and the prefetch,
 * predicted as a delta, is dropped)
 */
static int
phase_validity(struct frun *fr)
{
	struct fctx *fc = &fr->fc;
	struct fjob *j = fr->j;
	struct acct *a = fc->a;
	char err[256];

	if (fc->st != NULL && state_map_load(fc->st, &fc->key, &fc->map, err,
	    sizeof(err)) == -1) {
		snprintf(fc->err, sizeof(fc->err), "state: %s", err);
		return (-1);
	}
	if (fc->have_state && (fc->sf.src_uidvalidity !=
	    fc->smb.uidvalidity || (fc->dst_exists &&
	    fc->sf.dst_uidvalidity != fc->dmb.uidvalidity))) {
		log_notice("%s: %s: UIDVALIDITY changed (source %" PRIu64
		    " -> %" PRIu64 ", destination %" PRIu64 " -> %" PRIu64
		    "): rebuilding the map by content", a->acc->src_user,
		    j->m->src_path, fc->sf.src_uidvalidity,
		    fc->smb.uidvalidity, fc->sf.dst_uidvalidity,
		    fc->dmb.uidvalidity);
		fr->rebuild = 1;
		fr->old = fc->map;
		memset(&fc->map, 0, sizeof(fc->map));
		if (!fc->dry && state_folder_reset(fc->st, &fc->key, err,
		    sizeof(err)) == -1) {
			snprintf(fc->err, sizeof(fc->err), "state: %s", err);
			return (-1);
		}
		fc->have_state = 0;
	}
	if (!fc->have_state) {
		memset(&fc->sf, 0, sizeof(fc->sf));
		fc->sf.src_uidvalidity = fc->smb.uidvalidity;
		fc->sf.dst_uidvalidity = fc->dmb.uidvalidity;
		snprintf(fc->sf.dst_name, sizeof(fc->sf.dst_name), "%s",
		    j->dst_wire);
		fc->sf.updated = (int64_t)time(NULL);
		if (fc->st != NULL && !fc->dry && state_folder_put(fc->st,
		    &fc->key, &fc->sf, err, sizeof(err)) == -1) {
			snprintf(fc->err, sizeof(fc->err), "state: %s", err);
			return (-1);
		}
	} else if ((fc->sf.flags & STATE_F_COMPLETE) &&
	    fc->sf.src_last_uid > 0)
		fr->delta = 1;
	if (!fr->delta)
		fc_prefetch_drop(fc);	/* the prediction was wrong */
	if (!fr->delta) {
		pthread_mutex_lock(&a->p->pr->mu);
		a->p->pr->full = 1;
		pthread_mutex_unlock(&a->p->pr->mu);
	}
	return (0);
}

/*
 * phase_scan - intents left over settled, then the source messages to
 * look at (a delta's from its prefetch or above the last UID, else all)
 * marked when the map has them; a destination holding messages the map
 * does not know is matched by content
 */
static int
phase_scan(struct frun *fr)
{
	struct fctx *fc = &fr->fc;
	struct worker *w = fc->w;
	struct wres r;
	char set[64];
	size_t i;

	if (fc->dst_exists && fc_resolve_intents(fc) == -1)
		return (-1);
	if (fc_ready(fc, 0) == -1)
		return (-1);
	if (fr->delta && fc->pf_new_q) {
		/* queued behind the EXAMINE: "n:*" covers whatever arrived
		 * since the LIST-STATUS too */
		int frc;

		fc->pf_new_q = 0;
		frc = scan_meta_end(w, &fc->pf_new, &r);
		fr->msgs = fc->pf_newv;
		memset(&fc->pf_newv, 0, sizeof(fc->pf_newv));
		if (frc == -1) {
			fc_fail(fc, "FETCH source", &r);
			return (-1);
		}
	} else if (fr->delta) {
		snprintf(set, sizeof(set), "%" PRIu64 ":*",
		    fc->sf.src_last_uid + 1);
		if (fc->smb.uidnext > fc->sf.src_last_uid + 1 &&
		    scan_meta(w, SRC, set, fc->sf.src_last_uid + 1, 1,
		    &fr->msgs, &r) == -1) {
			fc_fail(fc, "FETCH source", &r);
			return (-1);
		}
	} else if (fc->smb.exists > 0 && scan_meta(w, SRC, "1:*", 0, 1,
	    &fr->msgs, &r) == -1) {
		fc_fail(fc, "FETCH source", &r);
		return (-1);
	}
	if (fr->msgs.dup_uids > 0) {
		char why[200];

		/* scan_meta_end logged it; kept once, so it is copied
		 * once and not taken for a message that vanished */
		snprintf(why, sizeof(why), "the source sent %zu UID%s more "
		    "than once in one FETCH response (this one first): "
		    "each counted and copied once", fr->msgs.dup_uids,
		    fr->msgs.dup_uids == 1 ? "" : "s");
		report_problem(fc->rf, REPORT_NOTE, fr->msgs.dup_first, NULL,
		    0, why);
	}
	fc->max_uid = fc->sf.src_last_uid;
	for (i = 0; i < fr->msgs.n; i++) {
		struct smsg *s = &fr->msgs.v[i];

		if (s->uid > fc->max_uid)
			fc->max_uid = s->uid;
		s->in_map = state_map_find(&fc->map, s->uid) != NULL;
	}
	/* a destination with messages we know nothing of */
	if (!fr->delta && fc->dst_exists && fc->dmb.exists > 0 &&
	    fc->map.n < fc->dmb.exists && fc_match_content(fc, &fr->msgs,
	    fr->rebuild ? &fr->old : NULL) == -1)
		return (-1);
	return (0);
}

/*
 * phase_flags - flag changes to the destination: a full look compares
 * the messages just fetched; a delta looks at the flags of the messages
 * known already (CHANGEDSINCE with CONDSTORE, from its prefetch when
 * that asked what would be asked now).  Not once the destination is
 * live (the cutover is past synced): users set flags there now, and the
 * old host's are stale; a prefetch already queued is still read off the
 * wire.
 */
static int
phase_flags(struct frun *fr)
{
	struct fctx *fc = &fr->fc;
	struct worker *w = fc->w;
	uint64_t since;
	struct metafetch mf;
	struct wres fw;
	char set[64];
	int need;

	if (!fc->dst_exists)
		return (0);
	if (!fr->delta)
		return (fc->a->dest_live ? 0 : apply_flags(fc, &fr->msgs));
	since = fc_flags_since(fc, fc->smb.highestmodseq);
	need = !fc->a->dest_live &&
	    (since == 0 || fc->smb.highestmodseq != since);
	if (fc->pf_flags_q) {
		/* queued behind the EXAMINE: used when it asked what would
		 * be asked now */
		fc->pf_flags_q = 0;
		if (scan_flags_end(w, &fc->pf_flags, &fw) == -1) {
			fc_fail(fc, "FETCH flags", &fw);
			return (-1);
		}
		if (fc->pf_since == since) {
			fr->flags = fc->pf_flagsv;
			memset(&fc->pf_flagsv, 0, sizeof(fc->pf_flagsv));
			need = 0;
		} else
			smsgv_free(&fc->pf_flagsv);
	}
	if (need) {
		snprintf(set, sizeof(set), "1:%" PRIu64, fc->sf.src_last_uid);
		if (fc_ready(fc, 0) == -1)
			return (-1);
		(void)scan_flags_begin(w, set, since, &fr->flags, &mf);
		if (scan_flags_end(w, &mf, &fw) == -1) {
			fc_fail(fc, "FETCH flags", &fw);
			return (-1);
		}
	}
	if (fc->a->dest_live)
		return (0);
	sort_n(fr->flags.v, fr->flags.n, sizeof(*fr->flags.v), smsg_cmp);
	(void)smsgv_dedupe(&fr->flags);
	return (apply_flags(fc, &fr->flags));
}

/*
 * phase_todo - the messages not in the map move to fr->todo (their
 * strings with them); the ledger's hits are skipped, the rest copied
 */
static int
phase_todo(struct frun *fr)
{
	struct fctx *fc = &fr->fc;
	struct acct *a = fc->a;
	struct report_folder *rf = fr->j->rf;
	struct smsgv *todo = &fr->todo;
	uint64_t already = 0, passed = 0;
	size_t i;
	void *p;

	/* copies an earlier pass found altered stay in every report
	 * (before this pass adds its own copies to the map) */
	if (!a->p->o->cfg->syncd.accept_altered) {
		fc_rf_lock(fc);
		for (i = 0; i < fc->map.n; i++) {
			const struct state_map_entry *e = &fc->map.v[i];

			if (e->origin != STATE_ORIGIN_ALTERED)
				continue;
			fc->problems++;
			report_problem(rf, REPORT_FAILED, e->src_uid, NULL,
			    e->size, "altered by the destination when an "
			    "earlier pass copied it (not copied again)");
		}
		fc_rf_unlock(fc);
	}
	if (reverse_skip(fc, &fr->msgs) == -1)
		return (-1);
	for (i = 0; i < fr->msgs.n; i++) {
		struct smsg *s = &fr->msgs.v[i];

		if (s->done) {		/* passed over (reverse_skip) */
			passed++;
			continue;
		}
		if (s->in_map) {
			already++;
			continue;
		}
		if ((p = array_grow(todo->v, &todo->alloc, todo->n,
		    sizeof(*todo->v), 64)) == NULL) {
			snprintf(fc->err, sizeof(fc->err), "out of memory");
			return (-1);
		}
		todo->v = p;
		todo->v[todo->n++] = *s;
		/* ownership of the strings moves to todo */
		s->flags = s->msgid = s->date = s->from = NULL;
	}
	if (fr->delta)
		rf->already = fc->smb.exists > todo->n + passed ?
		    fc->smb.exists - todo->n - passed : 0;
	else
		rf->already = already;
	prog_total(a, todo->n);
	if (todo->n > 0 && fc->st != NULL && !fc->dry &&
	    ledger_check(fc, todo) == -1)
		return (-1);
	if (todo->n > 0 && copy_split(fc, todo) == -1)
		return (-1);
	return (0);
}

/* phase_deletions - only with delete = yes, only syncd's own copies,
 * and never once the destination is live (see phase_flags) */
static int
phase_deletions(struct frun *fr)
{
	struct fctx *fc = &fr->fc;
	struct worker *w = fc->w;
	struct uidlist live;
	int rc;

	if (!(fc->a->p->o->cfg->syncd.delete && fc->dst_exists) ||
	    fc->a->dest_live)
		return (0);
	memset(&live, 0, sizeof(live));
	if (fc_ready(fc, 0) == -1)
		return (-1);
	if (side_wait(w, imap_client_uid_search(w->s[SRC].c, "ALL",
	    scan_uid_cb, wres_done, &live), &live.r) == -1 || live.oom) {
		free(live.v);
		fc_fail(fc, "SEARCH source", &live.r);
		return (-1);
	}
	sort_n(live.v, live.n, sizeof(*live.v), scan_uid_cmp);
	{
		uint64_t dup = 0;
		size_t nd = uidlist_dedupe(&live, &dup);

		if (nd > 0)
			log_warnx("%s: %s: the source server sent %zu UID%s "
			    "more than once in one SEARCH response (UID %"
			    PRIu64 " first): each counted once",
			    fc->a->acc->src_user, fc->j->m->src_path, nd,
			    nd == 1 ? "" : "s", dup);
	}
	rc = apply_deletions(fc, live.v, live.n);
	free(live.v);
	return (rc);
}

/*
 * count_current - the selected destination mailbox's EXISTS counts every
 * copy of this pass: nothing appended, or the server announced our
 * APPENDs (RFC 3501 6.3.11 SHOULD).  appended: copies not settled yet.
 */
static int
count_current(struct frun *fr, uint64_t appended)
{
	struct fctx *fc = &fr->fc;
	struct worker *w = fc->w;

	return (fc->dst_exists && w->s[DST].c != NULL &&
	    w->s[DST].state == 1 &&
	    strcmp(w->s[DST].selected, fr->j->dst_wire) == 0 &&
	    imap_client_mailbox(w->s[DST].c) != NULL && fc->rmu == NULL &&
	    imap_client_mailbox(w->s[DST].c)->exists >= fc->dmb.exists +
	    fr->j->rf->copied + appended);
}

/* phase_count - the destination's message count */
static void
phase_count(struct frun *fr)
{
	struct fctx *fc = &fr->fc;
	struct worker *w = fc->w;
	struct fjob *j = fr->j;
	struct report_folder *rf = j->rf;
	struct wres r;
	char err[256];

	if (count_current(fr, 0)) {
		rf->dst_count = imap_client_mailbox(w->s[DST].c)->exists;
	} else if (fc->dst_exists) {
		if (side_ensure(w, DST, err, sizeof(err)) == -1)
			;
		else if (strcmp(w->s[DST].selected, j->dst_wire) == 0) {
			/*
			 * STATUS of the selected mailbox may answer from the
			 * session's old view (Courier does until a NOOP; RFC
			 * 3501 6.3.10 allows it): a NOOP brings the view, and
			 * EXISTS with it, up to date.
			 */
			memset(&r, 0, sizeof(r));
			if (side_wait(w, imap_client_noop(w->s[DST].c,
			    wres_done, &r), &r) == 0 &&
			    imap_client_mailbox(w->s[DST].c) != NULL)
				rf->dst_count =
				    imap_client_mailbox(w->s[DST].c)->exists;
		} else {
			memset(&r, 0, sizeof(r));
			if (side_wait(w, imap_client_status(w->s[DST].c,
			    j->dst_wire, IMAP_STATUS_MESSAGES |
			    IMAP_STATUS_UIDVALIDITY, wres_done, &r), &r) == 0 &&
			    r.have_st)
				rf->dst_count = r.st.messages;
		}
	} else
		rf->dst_count = 0;
}

/* phase_state - the folder's new state record (complete or not) */
static int
phase_state(struct frun *fr)
{
	struct fctx *fc = &fr->fc;
	struct fjob *j = fr->j;

	if (fc->st == NULL || fc->dry)
		return (0);
	fc->sf.flags = fc->problems == 0 ? STATE_F_COMPLETE : 0;
	fc->sf.src_uidvalidity = fc->smb.uidvalidity;
	fc->sf.src_uidnext = fc->smb.uidnext;
	fc->sf.src_last_uid = fc->max_uid;
	fc->sf.src_highestmodseq = fc->smb.highestmodseq;
	fc->sf.src_messages = fc->smb.exists;
	fc->sf.dst_uidvalidity = fc->dmb.uidvalidity;
	fc->sf.dst_highestmodseq = fc->dmb.highestmodseq;
	fc->sf.updated = (int64_t)time(NULL);
	snprintf(fc->sf.dst_name, sizeof(fc->sf.dst_name), "%s", j->dst_wire);
	/* the pass's own flag STOREs and APPENDs moved the source not at
	 * all; a new STATUS next pass compares with this */
	if (j->have_sst && fc->smb.uidnext == j->sst.uidnext &&
	    fc->smb.exists == j->sst.messages &&
	    (j->sst.have & IMAP_STATUS_HIGHESTMODSEQ) &&
	    fc->smb.highestmodseq == 0)
		fc->sf.src_highestmodseq = j->sst.highestmodseq;
	return (fc_commit(fc, NULL, 0, &fc->sf));
}

/*
 * phase_end - after the folder, failed (rc -1) or not: what was copied
 * is recorded even when the folder failed; the report row, the log
 * line, and everything the phases held freed
 */
static void
phase_end(struct frun *fr, int rc)
{
	struct fctx *fc = &fr->fc;
	struct acct *a = fc->a;
	struct fjob *j = fr->j;
	struct report_folder *rf = j->rf;

	if (fc->npend > 0 && fc->st != NULL && !fc->dry) {
		char e2[256];

		state_commit(fc->st, &fc->key, fc->pend, fc->npend, NULL, 0,
		    NULL, e2, sizeof(e2));
	}
	free(fc->pend);
	if (rc == -1) {
		report_folder_error(rf, "%s", fc->err[0] ? fc->err : "failed");
		log_warnx("%s: %s: %s", a->acc->src_user, j->m->src_path,
		    fc->err[0] ? fc->err : "failed");
	}
	if (fr->seconds == 0)
		fr->seconds = pace_now() - fr->t0;
	rf->seconds = fr->seconds;
	if (fc->flags_dropped > 0)
		log_warnx("%s: %s: %" PRIu64 " message(s) copied without some "
		    "of their flags: the destination's PERMANENTFLAGS lack "
		    "them", a->acc->src_user, j->m->src_path,
		    fc->flags_dropped);
	/* A dry run counts what it would copy in rf->copied: the log says
	 * so instead of claiming a copy that was never made. */
	log_info("%s: %s -> %s: source=%" PRIu64 " %s=%" PRIu64
	    " already=%" PRIu64 " duplicates=%" PRIu64 " failed=%" PRIu64
	    " policy=%" PRIu64 "%s%s", a->acc->src_user, j->m->src_path,
	    j->m->dst_path, rf->src_count == REPORT_UNKNOWN ? 0 :
	    rf->src_count, fc->dry ? "to_copy" : "copied", rf->copied,
	    rf->already, rf->duplicates, rf->failed, rf->policy,
	    fr->delta ? " (delta)" : "", fc->dry ? " (dry run)" : "");
	fc_prefetch_drop(fc);
	smsgv_free(&fr->msgs);
	smsgv_free(&fr->todo);
	smsgv_free(&fr->flags);
	state_map_free(&fc->map);
	state_map_free(&fr->old);
}

/*
 * sync_folder_settle - the folder whose last check was left in flight
 * (w->deferred), finished: the check's verdicts into its copies, its
 * state record, its report row.  Called once the next folder's EXAMINE
 * and SELECT are out (fc_ready_then, may_ask_again 0: a check asked
 * again now would land behind that SELECT), so that the destination
 * answers the check while the source answers the EXAMINE; and after a
 * worker's last folder (may_ask_again 1).
 */
void
sync_folder_settle(struct worker *w, int may_ask_again)
{
	struct frun *fr = w->deferred;
	int rc = 0;

	if (fr == NULL)
		return;
	w->deferred = NULL;
	if (copy_settle(&fr->fc, may_ask_again) == -1 ||
	    phase_state(fr) == -1)
		rc = -1;
	phase_end(fr, rc);
	free(fr);
}

/* sync_folder - one folder's pass, phase by phase: 0, or -1 (reported) */
int
sync_folder(struct worker *w, struct fjob *j)
{
	struct frun *fr;
	struct fctx *fc;
	int rc;

	if ((fr = calloc(1, sizeof(*fr))) == NULL) {
		sync_folder_settle(w, 1);
		report_folder_error(j->rf, "out of memory");
		return (-1);
	}
	fc = &fr->fc;
	fr->j = j;
	fr->t0 = pace_now();
	fc->w = w;
	fc->a = w->a;
	fc->j = j;
	fc->rf = j->rf;
	fc->dry = w->a->p->o->dry_run;
	fc->st = w->a->p->o->store;
	fc->dst_exists = j->m->dst_exists || (j->rf->created && !fc->dry);
	/* the last check may wait for the next folder (sync_folder_settle),
	 * unless deletions follow the copy */
	fc->may_defer = !fc->dry && fc->st != NULL &&
	    !w->a->p->o->cfg->syncd.delete;
	rc = phase_load(fr);
	if (rc == 0 && (phase_validity(fr) == -1 || phase_scan(fr) == -1 ||
	    phase_flags(fr) == -1 || phase_todo(fr) == -1 ||
	    phase_deletions(fr) == -1))
		rc = -1;
	if (rc == 0 && fc->deferred != NULL && count_current(fr,
	    copy_deferred_count(fc))) {
		phase_count(fr);
		fr->seconds = pace_now() - fr->t0;
		sync_folder_settle(w, 0);	/* fc_ready_then took it */
		w->deferred = fr;
		return (0);
	}
	if (fc->deferred != NULL && copy_settle(fc, 1) == -1 && rc == 0)
		rc = -1;
	if (rc == 0) {
		phase_count(fr);
		if (phase_state(fr) == -1)
			rc = -1;
	}
	if (rc == 1)
		rc = 0;		/* unchanged: nothing to do */
	phase_end(fr, rc);
	free(fr);
	return (rc);
}
