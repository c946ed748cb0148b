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
		na = scan_flags_filter(&w->s[DST], changed->v[i].flags, 0, NULL, 0);
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
			    "+FLAGS.SILENT", add, 0, NULL, wres_done, &rs[nrs++])
			    == NULL ? (void)(rs[nrs - 1].done = 1) : (void)0;
		if (del[0])
			imap_client_uid_store(w->s[DST].c, set,
			    "-FLAGS.SILENT", del, 0, NULL, wres_done, &rs[nrs++])
			    == NULL ? (void)(rs[nrs - 1].done = 1) : (void)0;
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

		if (e->origin != STATE_ORIGIN_COPIED || e->dst_uid == 0 ||
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

int
sync_folder(struct worker *w, struct fjob *j)
{
	struct acct *a = w->a;
	struct fctx fc;
	struct report_folder *rf = j->rf;
	struct smsgv msgs, todo, flags;
	struct state_map old;
	struct wres r;
	char err[256], set[64];
	double t0 = pace_now();
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
	if (sync_folder_unchanged(j, fc.have_state ? &fc.sf : NULL)) {
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
	    j->sst.uidvalidity == fc.sf.src_uidvalidity ? fc_delta_prefetch :
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
		fc_prefetch_drop(&fc);	/* the prediction was wrong */
	if (!delta) {
		pthread_mutex_lock(&a->p->pr->mu);
		a->p->pr->full = 1;
		pthread_mutex_unlock(&a->p->pr->mu);
	}

	if (fc.dst_exists && fc_resolve_intents(&fc) == -1)
		goto out;
	if (fc_ready(&fc, 0) == -1)
		goto out;

	/* the source messages to look at */
	if (delta && fc.pf_new_q) {
		/* queued behind the EXAMINE: "n:*" covers whatever arrived
		 * since the LIST-STATUS too */
		int frc;

		fc.pf_new_q = 0;
		frc = scan_meta_end(w, &fc.pf_new, &r);
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
		    scan_meta(w, SRC, set, fc.sf.src_last_uid + 1, 1, &msgs,
		    &r) == -1) {
			fc_fail(&fc, "FETCH source", &r);
			goto out;
		}
	} else if (fc.smb.exists > 0 && scan_meta(w, SRC, "1:*", 0, 1,
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
	    fc.map.n < fc.dmb.exists && fc_match_content(&fc, &msgs,
	    rebuild ? &old : NULL) == -1)
		goto out;

	/* flags */
	if (fc.dst_exists) {
		if (delta) {
			uint64_t since = fc_flags_since(&fc,
			    fc.smb.highestmodseq);
			int need = since == 0 || fc.smb.highestmodseq != since;
			struct metafetch mf;

			if (fc.pf_flags_q) {
				/* queued behind the EXAMINE: used when it
				 * asked what would be asked now */
				fc.pf_flags_q = 0;
				if (side_wait(w, fc.pf_flags.queued,
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
				(void)scan_flags_begin(w, set, since, &flags,
				    &mf);
				if (side_wait(w, mf.queued, &mf.r) == -1 ||
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
		if (side_wait(w, imap_client_uid_search(w->s[SRC].c, "ALL",
		    scan_uid_cb, wres_done, &live), &live.r) == -1 || live.oom) {
			free(live.v);
			fc_fail(&fc, "SEARCH source", &live.r);
			goto out;
		}
		sort_n(live.v, live.n, sizeof(*live.v), scan_uid_cmp);
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
			if (side_wait(w, imap_client_status(w->s[DST].c,
			    j->dst_wire, IMAP_STATUS_MESSAGES |
			    IMAP_STATUS_UIDVALIDITY, wres_done, &r), &r) == 0 &&
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
	rf->seconds = pace_now() - t0;
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
	fc_prefetch_drop(&fc);
	smsgv_free(&msgs);
	smsgv_free(&todo);
	smsgv_free(&flags);
	state_map_free(&fc.map);
	state_map_free(&old);
	return (rc);
}
