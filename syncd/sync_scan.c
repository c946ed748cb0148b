/*
 * sync_scan.c - message metadata without bodies: FETCH (UID FLAGS
 * INTERNALDATE RFC822.SIZE and the Message-ID/Date/From header fields)
 * into sorted struct smsg lists with their content keys (state.h), flag
 * scans (UID FLAGS, CHANGEDSINCE with CONDSTORE), the flag-list
 * arithmetic against the destination's PERMANENTFLAGS, and the
 * destination look-ups by SEARCH that settle intents and find copies
 * made without UIDPLUS.
 *
 * SECURITY: header fields go through msgid.c; a header is cut at
 * HDR_MAX; SEARCH criteria are built only from printable ASCII checked
 * here (search_safe), else from sizes.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "sync_p.h"


void
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

	(void)c;
	hdr_capture(mf->hdr, &mf->hlen, data, len);
}

void
hdr_capture(char *hdr, size_t *hlen, const void *data, size_t len)
{
	if (*hlen >= HDR_MAX)
		return;
	if (len > HDR_MAX - *hlen)
		len = HDR_MAX - *hlen;
	memcpy(hdr + *hlen, data, len);
	*hlen += len;
}

static void
meta_msg(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	struct metafetch *mf = arg;
	struct smsgv *l = mf->out;
	struct smsg *s;
	int want_hdr = mf->want_hdr;
	void *p;

	(void)c;
	if (!(m->have & IMAP_FETCH_UID))
		goto out;
	if (m->uid < mf->min_uid) {
		/* the "n:*" case answers with INTERNALDATE, the flag look
		 * beside without */
		if (mf->flags_out == NULL || (m->have & IMAP_FETCH_INTERNALDATE))
			goto out;
		l = mf->flags_out;
		want_hdr = 0;
	}
	if ((p = array_grow(l->v, &l->alloc, l->n, sizeof(*l->v), 256)) ==
	    NULL) {
		mf->oom = 1;
		goto out;
	}
	l->v = p;
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
	s->flags = imap_flags_join_settable(&m->flags);
	if (want_hdr) {
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

/*
 * smsgv_dedupe - l sorted by UID, each UID once: a server that answers
 * one UID twice in a FETCH must not make the second look like a message
 * of its own (copied twice) or, when its body comes once, like one that
 * vanished from the source.  Keeps the first of each run; sets
 * l->dup_uids and l->dup_first and returns the number dropped.
 */
size_t
smsgv_dedupe(struct smsgv *l)
{
	size_t i, o, dropped = 0;

	for (i = o = 0; i < l->n; i++) {
		if (o > 0 && l->v[o - 1].uid == l->v[i].uid) {
			if (dropped == 0 || l->v[i].uid < l->dup_first)
				l->dup_first = l->v[i].uid;
			free(l->v[i].flags);
			free(l->v[i].msgid);
			free(l->v[i].date);
			free(l->v[i].from);
			dropped++;
			continue;
		}
		if (o != i)
			l->v[o] = l->v[i];
		o++;
	}
	l->n = o;
	l->dup_uids += dropped;
	return (dropped);
}

/*
 * uidlist_dedupe - the same for a sorted SEARCH answer: returns the
 * number dropped, *first_r the lowest UID that came twice
 */
size_t
uidlist_dedupe(struct uidlist *l, uint64_t *first_r)
{
	size_t i, o, dropped = 0;

	for (i = o = 0; i < l->n; i++) {
		if (o > 0 && l->v[o - 1] == l->v[i]) {
			if (dropped++ == 0)
				*first_r = l->v[i];
			continue;
		}
		l->v[o++] = l->v[i];
	}
	l->n = o;
	return (dropped);
}

int
smsg_cmp(const void *x, const void *y)
{
	const struct smsg *a = x, *b = y;

	return (a->uid < b->uid ? -1 : a->uid > b->uid);
}

/*
 * scan_meta_begin - queue a FETCH of UID, FLAGS, INTERNALDATE,
 * RFC822.SIZE and (want_hdr) the identity header fields of uidset on
 * side i; scan_meta_end waits for it and sorts `out` by UID.  mf is the
 * caller's and must live until scan_meta_end.  Split so that a delta
 * pass can queue its FETCHes behind the EXAMINE (one round trip).
 */
static const struct imap_fetch_cbs meta_fetch_cbs = { meta_body_begin,
    meta_body_data, NULL, meta_msg, NULL };

/* metafetch_init - mf set up for meta_fetch_cbs, its header buffers
 * allocated; -1 (mf marked out of memory and done) when they are not */
static int
metafetch_init(struct metafetch *mf, int side, struct smsgv *out,
    uint64_t min_uid, int want_hdr)
{
	memset(mf, 0, sizeof(*mf));
	mf->out = out;
	mf->side = side;
	mf->min_uid = min_uid;
	mf->want_hdr = want_hdr;
	mf->hdr = malloc(HDR_MAX);
	mf->id = malloc(sizeof(*mf->id));
	if (mf->hdr == NULL || mf->id == NULL) {
		mf->oom = 1;
		mf->r.done = 1;
		return (-1);
	}
	return (0);
}

int
scan_meta_begin(struct worker *w, int i, const char *uidset,
    uint64_t min_uid, int want_hdr, struct smsgv *out,
    struct metafetch *mf)
{
	if (metafetch_init(mf, i, out, min_uid, want_hdr) == -1)
		return (-1);
	mf->queued = imap_client_uid_fetch(w->s[i].c, uidset, want_hdr ?
	    "(UID FLAGS INTERNALDATE RFC822.SIZE "
	    "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM)])" :
	    "(UID FLAGS INTERNALDATE RFC822.SIZE)", 0, 0, &meta_fetch_cbs,
	    wres_done, mf);
	return (mf->queued == NULL ? -1 : 0);
}

/* metafetch_wait - the FETCH answered (or never queued), its buffers
 * freed; -1 when it failed or ran out of memory (r says which) */
static int
metafetch_wait(struct worker *w, struct metafetch *mf, struct wres *r)
{
	int rc;

	if (mf->oom && mf->queued == NULL) {
		memset(r, 0, sizeof(*r));
		rc = -1;
	} else {
		rc = side_wait(w, mf->queued, &mf->r);
		*r = mf->r;
	}
	mf->queued = NULL;
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
	return (rc);
}

int
scan_meta_end(struct worker *w, struct metafetch *mf, struct wres *r)
{
	int rc;

	rc = metafetch_wait(w, mf, r);
	if (mf->oom)
		return (-1);
	sort_n(mf->out->v, mf->out->n, sizeof(*mf->out->v), smsg_cmp);
	if (smsgv_dedupe(mf->out) > 0)
		log_warnx("%s: %s: the %s server sent %zu UID%s more than "
		    "once in one FETCH response (UID %" PRIu64 " first): "
		    "each counted once", w->a->acc->src_user,
		    w->s[mf->side].selected,
		    mf->side == SRC ? "source" : "destination",
		    mf->out->dup_uids, mf->out->dup_uids == 1 ? "" : "s",
		    mf->out->dup_first);
	return (rc);
}

/* scan_meta - scan_meta_begin and _end in one */
int
scan_meta(struct worker *w, int i, const char *uidset, uint64_t min_uid,
    int want_hdr, struct smsgv *out, struct wres *r)
{
	struct metafetch mf;

	(void)scan_meta_begin(w, i, uidset, min_uid, want_hdr, out, &mf);
	return (scan_meta_end(w, &mf, r));
}

static const struct imap_fetch_cbs flag_fetch_cbs = { NULL, NULL, NULL,
    meta_msg, NULL };

/* scan_flags_begin - queue UID FETCH set (UID FLAGS) [CHANGEDSINCE] */
int
scan_flags_begin(struct worker *w, const char *set, uint64_t since,
    struct smsgv *out, struct metafetch *mf)
{
	memset(mf, 0, sizeof(*mf));
	mf->out = out;
	mf->queued = imap_client_uid_fetch(w->s[SRC].c, set, "(UID FLAGS)",
	    since, 0, &flag_fetch_cbs, wres_done, mf);
	return (mf->queued == NULL ? -1 : 0);
}

/*
 * scan_pair_begin - a delta's two looks in one round trip: the new
 * messages (UID min_uid:*, as scan_meta_begin) and, queued right behind,
 * the flags of fset (as scan_flags_begin).  The client gives untagged
 * FETCH responses to the oldest FETCH in flight, and a server may run
 * the two at once and interleave them, so both FETCHes sort what they
 * are given by UID into newv or flagsv.  Each is ended on its own:
 * scan_meta_end(mnew), scan_flags_end(mflags).
 */
int
scan_pair_begin(struct worker *w, uint64_t min_uid, const char *fset,
    uint64_t since, struct smsgv *newv, struct smsgv *flagsv,
    struct metafetch *mnew, struct metafetch *mflags)
{
	char set[32];

	snprintf(set, sizeof(set), "%" PRIu64 ":*", min_uid);
	memset(mflags, 0, sizeof(*mflags));
	if (scan_meta_begin(w, SRC, set, min_uid, 1, newv, mnew) == -1) {
		mflags->r.done = 1;
		return (-1);
	}
	mnew->flags_out = flagsv;
	/* the same callbacks and routing as the first: either FETCH may be
	 * handed the other's responses */
	if (metafetch_init(mflags, SRC, newv, min_uid, 1) == -1)
		return (-1);
	mflags->flags_out = flagsv;
	mflags->queued = imap_client_uid_fetch(w->s[SRC].c, fset,
	    "(UID FLAGS)", since, 0, &meta_fetch_cbs, wres_done, mflags);
	return (mflags->queued == NULL ? -1 : 0);
}

/* scan_flags_end - wait for a flag look (scan_flags_begin or the second
 * of scan_pair_begin) and free what it held; -1 when it failed */
int
scan_flags_end(struct worker *w, struct metafetch *mf, struct wres *r)
{
	return (metafetch_wait(w, mf, r));
}

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
 * scan_flags_filter - the flags of src the destination accepts, into a new
 * string; keywords dropped when no_kw.  *dropped_r (may be NULL) gets
 * the dropped ones, for the report.
 */
char *
scan_flags_filter(const struct side *d, const char *src, int no_kw,
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

/* scan_flags_diff - tokens of a not in b, space-separated, into out */
void
scan_flags_diff(const char *a, const char *b, char *out, size_t len)
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

static int
search_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e ||
		    *s == '"' || *s == '\\')
			return (0);
	return (1);
}

void
scan_uid_cb(struct imap_client *c, uint64_t uid, void *arg)
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

int
scan_uid_cmp(const void *x, const void *y)
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
 * scan_dst_find - the destination UID (selected mailbox) of a message with
 * this Message-ID, size and INTERNALDATE that no map entry claims yet:
 * 0 = not there, -1 = error (r says why).  The highest match wins.
 */
int
scan_dst_find(struct worker *w, const struct state_map *map, const char *msgid,
    uint64_t size, int64_t idate, uint64_t *uid_r, struct wres *r)
{
	struct uidlist l;
	struct smsgv meta;
	char crit[MSGID_BUFSIZE + 64], set[64];
	uint64_t dup = 0;
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
	rc = side_wait(w, imap_client_uid_search(w->s[DST].c, crit, scan_uid_cb,
	    wres_done, &l), &l.r);
	*r = l.r;
	if (rc == -1 || l.oom) {
		free(l.v);
		return (-1);
	}
	sort_n(l.v, l.n, sizeof(*l.v), scan_uid_cmp);
	if ((i = uidlist_dedupe(&l, &dup)) > 0)
		log_warnx("%s: %s: the destination server sent %zu UID%s "
		    "more than once in one SEARCH response (UID %" PRIu64
		    " first): each looked at once", w->a->acc->src_user,
		    w->s[DST].selected, i, i == 1 ? "" : "s", dup);
	for (i = l.n; i-- > 0;) {
		if (dst_claimed(map, l.v[i]))
			continue;
		memset(&meta, 0, sizeof(meta));
		snprintf(set, sizeof(set), "%" PRIu64, l.v[i]);
		rc = scan_meta(w, DST, set, 0, 0, &meta, r);
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
