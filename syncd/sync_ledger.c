/*
 * sync_ledger.c - skip the messages the relay already delivered to this
 * mailbox (DESIGN.md §4, promise 2 of §1): the bodies of the messages to
 * copy are hashed in a first streaming FETCH (only the hash state is
 * kept, never a body) and looked up in the relay's ledger with their
 * identity; a hit is mapped with origin "ledger" and not copied.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "metrics.h"
#include "sync_p.h"

#define HASH_CHUNK	100		/* UIDs per hashing FETCH */

struct hashfetch {
	struct wres	 r;		/* first: wres_done fills it */
	struct smsgv	*msgs;
	struct hash_sink hs;
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
	hash_sink_begin(&h->hs);
}

void
hash_sink_begin(struct hash_sink *hs)
{
	if (hs->open)
		body_hash_free(&hs->bh);
	hs->open = body_hash_init(&hs->bh) == 0;
}

void
hash_sink_data(struct hash_sink *hs, const void *data, size_t len)
{
	if (hs->open)
		body_hash_update(&hs->bh, data, len);
}

int
hash_sink_end(struct hash_sink *hs, unsigned char *out)
{
	if (!hs->open)
		return (-1);
	hs->open = 0;
	if (out == NULL) {
		body_hash_free(&hs->bh);
		return (-1);
	}
	return (body_hash_final(&hs->bh, out) == 0 ? 0 : -1);
}

static void
hash_data(struct imap_client *c, const void *data, size_t len, void *arg)
{
	struct hashfetch *h = arg;

	(void)c;
	hash_sink_data(&h->hs, data, len);
}

static void
hash_msg(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	struct hashfetch *h = arg;
	struct smsg key, *s;

	(void)c;
	key.uid = m->uid;
	s = (m->have & IMAP_FETCH_UID) ? find_n(&key, h->msgs->v,
	    h->msgs->n, sizeof(key), smsg_cmp) : NULL;
	if (hash_sink_end(&h->hs, s != NULL ? h->sha[s - h->msgs->v] :
	    NULL) == 0)
		h->have[s - h->msgs->v] = 1;
}

/*
 * ledger_check - hash the bodies of the messages to copy (a first
 * streaming FETCH; only the hash state is kept) and skip those the
 * relay already delivered to this mailbox (DESIGN.md §4).
 */
int
ledger_check(struct fctx *fc, struct smsgv *todo)
{
	static const struct imap_fetch_cbs cbs = { hash_begin, hash_data,
	    NULL, hash_msg, NULL };
	struct hashfetch h;
	struct msg_ident *id;
	size_t i, start;
	char set[HASH_CHUNK * 22], err[256];
	int rc = 0, empty;

	if (todo->n == 0)
		return (0);
	/*
	 * Counted after the folder was listed: the relay writes an entry
	 * (pending) in the spool commit, before its copy can reach the old
	 * host, so a listed message that came through the relay has its
	 * entry by now even when the ledger was empty as the pass began.
	 * Empty now, nothing listed can be a relay delivery: no hashing.
	 * Unreadable: look, rather than copy blind.
	 */
	if (state_ledger_empty(fc->st, &empty, err, sizeof(err)) == 0 && empty)
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
		if (side_wait(fc->w, imap_client_uid_fetch(fc->w->s[SRC].c, set,
		    "(UID BODY.PEEK[])", 0, 0, &cbs, wres_done, &h), &h.r) ==
		    -1) {
			(void)hash_sink_end(&h.hs, NULL);
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
			metrics_duplicates(METRICS_DUP_LEDGER, 1);
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
			metrics_duplicates(METRICS_DUP_LEDGER, 1);
			log_info("%s: %s: uid %" PRIu64 " skipped: the relay "
			    "already delivered it (ledger)",
			    fc->a->acc->src_user, fc->j->m->src_path, s->uid);
			if (fc_map_put(fc, &e, 1) == -1) {
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
