/*
 * verify_match.c - which destination message is the copy of which
 * source message, for ferry-syncd --verify.
 *
 * The identity is the ledger's (DESIGN.md §4, msgid.h): the canonical
 * Message-ID with the body hash, or Date and From with the body hash
 * for a message without one.  Messages are grouped by Message-ID (else
 * Date + From) on both sides.  A group of one source and one
 * destination message of the same RFC822.SIZE is a match without
 * reading the bodies; every other group (several candidates, sizes
 * that differ, no Message-ID) and, with --deep, every group is matched
 * by body hash, preferring equal INTERNALDATEs.  What is left: a source
 * message and a destination message of the same identity are one copy
 * whose body differs; other source messages are missing (or over the
 * destination's APPENDLIMIT: left behind by policy, as the copy does),
 * other destination messages are extra.  A matched pair whose flags
 * (as far as the destination's PERMANENTFLAGS keep them, as the copy
 * applies them; an EXAMINE usually names none, and then every source
 * flag counts) or INTERNALDATE differ is "different".  An extra message
 * the state map names as syncd's copy of a source message deleted since
 * is not extra but kept by policy, and a copy it records as altered by
 * the destination (STATE_ORIGIN_ALTERED) is different (vmatch_gone).
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "verify_p.h"

/* ident_cmp - by identity only: Message-ID, else Date + From */
static int
ident_cmp(const struct vmsg *a, const struct vmsg *b)
{
	int c;

	if ((a->msgid[0] != '\0') != (b->msgid[0] != '\0'))
		return (a->msgid[0] ? -1 : 1);
	if (a->msgid[0])
		return (strcmp(a->msgid, b->msgid));
	if ((c = strcmp(a->date, b->date)) != 0)
		return (c);
	return (strcmp(a->from, b->from));
}

static int
order_cmp(const void *x, const void *y)
{
	const struct vmsg *a = *(const struct vmsg *const *)x;
	const struct vmsg *b = *(const struct vmsg *const *)y;
	int c;

	if ((c = ident_cmp(a, b)) != 0)
		return (c);
	if (a->folder != b->folder)
		return (a->folder < b->folder ? -1 : 1);
	return (a->uid < b->uid ? -1 : a->uid > b->uid);
}

typedef void group_fn(struct vmsg **s, size_t ns, struct vmsg **d,
    size_t nd, void *arg);

/* groups_walk - call fn for each identity on either side; 0, -1 no memory */
static int
groups_walk(struct vlist *s, struct vlist *d, group_fn *fn, void *arg)
{
	struct vmsg **ps, **pd;
	size_t i = 0, j = 0, k;

	ps = calloc(s->n + 1, sizeof(*ps));
	pd = calloc(d->n + 1, sizeof(*pd));
	if (ps == NULL || pd == NULL) {
		free(ps);
		free(pd);
		return (-1);
	}
	for (k = 0; k < s->n; k++)
		ps[k] = &s->v[k];
	for (k = 0; k < d->n; k++)
		pd[k] = &d->v[k];
	sort_n(ps, s->n, sizeof(*ps), order_cmp);
	sort_n(pd, d->n, sizeof(*pd), order_cmp);
	while (i < s->n || j < d->n) {
		const struct vmsg *key;
		size_t ei = i, ej = j;
		int c;

		if (i == s->n)
			c = 1;
		else if (j == d->n)
			c = -1;
		else
			c = ident_cmp(ps[i], pd[j]);
		key = c <= 0 ? ps[i] : pd[j];
		while (ei < s->n && ident_cmp(ps[ei], key) == 0)
			ei++;
		while (ej < d->n && ident_cmp(pd[ej], key) == 0)
			ej++;
		fn(ps + i, ei - i, pd + j, ej - j, arg);
		i = ei;
		j = ej;
	}
	free(ps);
	free(pd);
	return (0);
}

struct prep {
	int		 deep;
};

static void
prepare_group(struct vmsg **s, size_t ns, struct vmsg **d, size_t nd,
    void *arg)
{
	const struct prep *p = arg;
	size_t k;

	if (ns == 0 || nd == 0)
		return;		/* missing or extra whatever the bodies */
	if (!p->deep && s[0]->msgid[0] && ns == 1 && nd == 1 &&
	    s[0]->size == d[0]->size)
		return;		/* unambiguous */
	for (k = 0; k < ns; k++)
		s[k]->want_sha = 1;
	for (k = 0; k < nd; k++)
		d[k]->want_sha = 1;
}

void
vmatch_prepare(struct vlist *s, struct vlist *d, int deep)
{
	struct prep p = { deep };
	size_t k;

	if (groups_walk(s, d, prepare_group, &p) == -1) {
		/* without memory for the grouping: hash everything */
		for (k = 0; k < s->n; k++)
			s->v[k].want_sha = 1;
		for (k = 0; k < d->n; k++)
			d->v[k].want_sha = 1;
	}
}

/* flag_in - is f one of the space-separated flags of list (any case)? */
static int
flag_in(const char *list, const char *f, size_t n)
{
	const char *p = list;

	while (*p) {
		const char *e = strchr(p, ' ');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == n && strncasecmp(p, f, n) == 0)
			return (1);
		p += len;
		while (*p == ' ')
			p++;
	}
	return (0);
}

/* flags_same - a and b hold the same flags, in any order and case */
static int
flags_same(const char *a, const char *b)
{
	const char *lists[2] = { a, b };
	int k;

	for (k = 0; k < 2; k++) {
		const char *p = lists[k];

		while (*p) {
			const char *e = strchr(p, ' ');
			size_t len = e ? (size_t)(e - p) : strlen(p);

			if (len > 0 && !flag_in(lists[1 - k], p, len))
				return (0);
			p += len;
			while (*p == ' ')
				p++;
		}
	}
	return (1);
}

struct fin {
	const struct side *dside;
	uint64_t	 limit;
};

static void
pair(const struct fin *f, struct vmsg *s, struct vmsg *d, int body)
{
	char *want;

	s->state = d->state = V_MATCH;
	s->peer = d;
	d->peer = s;
	if (body)
		s->diff |= VD_BODY;
	if (s->idate != d->idate)
		s->diff |= VD_IDATE;
	/* EXAMINE answers PERMANENTFLAGS () (read-only): the filter only
	 * applies when the server named the flags it keeps */
	want = f->dside->permflags_known && f->dside->permflags.count > 0 ?
	    scan_flags_filter(f->dside, s->flags, 0, NULL, 0) : NULL;
	if (!flags_same(want ? want : s->flags, d->flags))
		s->diff |= VD_FLAGS;
	free(want);
	d->diff = s->diff;
}

static int
same_body(const struct vmsg *s, const struct vmsg *d)
{
	if (s->have_sha && d->have_sha)
		return (memcmp(s->sha, d->sha, BODY_HASH_LEN) == 0);
	/* a hash that could not be taken: the size stands in */
	return (s->size == d->size);
}

static void
finish_group(struct vmsg **s, size_t ns, struct vmsg **d, size_t nd,
    void *arg)
{
	const struct fin *f = arg;
	size_t i, j;
	int round;

	if (ns == 1 && nd == 1 && !s[0]->want_sha) {
		pair(f, s[0], d[0], 0);
		return;
	}
	/* by body: first with the same INTERNALDATE, then any */
	for (round = 0; round < 2; round++)
		for (i = 0; i < ns; i++) {
			if (s[i]->state != V_OPEN)
				continue;
			for (j = 0; j < nd; j++)
				if (d[j]->state == V_OPEN &&
				    (round == 1 || s[i]->idate == d[j]->idate) &&
				    same_body(s[i], d[j])) {
					pair(f, s[i], d[j], 0);
					break;
				}
		}
	/* same identity, different body: one copy that changed */
	for (i = 0, j = 0; i < ns; i++) {
		if (s[i]->state != V_OPEN)
			continue;
		while (j < nd && d[j]->state != V_OPEN)
			j++;
		if (j == nd)
			break;
		pair(f, s[i], d[j], 1);
	}
	for (i = 0; i < ns; i++)
		if (s[i]->state == V_OPEN)
			s[i]->state = f->limit > 0 && s[i]->size > f->limit ?
			    V_POLICY : V_MISSING;
	/* an extra message of an identity the source has: a second copy;
	 * peer names the source message, for the listing */
	for (j = 0; j < nd; j++)
		if (d[j]->state == V_OPEN) {
			d[j]->state = V_EXTRA;
			d[j]->peer = ns > 0 ? s[0] : NULL;
		}
}

void
vmatch_finish(struct vlist *s, struct vlist *d, const struct side *dside,
    uint64_t appendlimit)
{
	struct fin f = { dside, appendlimit };
	size_t k;

	if (groups_walk(s, d, finish_group, &f) == -1) {
		/* no memory: nothing can be proven; say so loudly */
		for (k = 0; k < s->n; k++)
			s->v[k].state = V_MISSING;
		for (k = 0; k < d->n; k++)
			d->v[k].state = V_EXTRA;
	}
}

/*
 * vmatch_gone - a destination message nothing matched, that the state
 * map of source folder `folder` says is syncd's copy (or a match) of a
 * source UID no longer in s: deleted on the source after the copy and
 * kept on the destination ([syncd] delete = no, or not yet applied).
 * Only entries of the destination's current UIDVALIDITY count.
 */
/*
 * altered - the state map says the destination stored other bytes than
 * the copy sent for this pair: different, whatever the matching found
 * (the source message missing and the copy extra become one pair)
 */
static void
altered(struct vmsg *s, struct vmsg *d)
{
	if (s->state == V_MATCH) {
		if (s->peer != d)
			return;	/* matched another copy: d stays as it is */
	} else if (s->state != V_MISSING || d->state != V_EXTRA)
		return;
	s->state = d->state = V_MATCH;
	s->peer = d;
	d->peer = s;
	s->diff |= VD_ALTERED;
	d->diff = s->diff;
}

void
vmatch_gone(struct vlist *s, size_t folder, struct vlist *d,
    const struct state_map *map, uint64_t dst_uidvalidity)
{
	struct vmsg **ps, **pd, key, *kp = &key, **hit, **sh;
	size_t i, k, ns = 0;

	ps = calloc(s->n + 1, sizeof(*ps));
	pd = calloc(d->n + 1, sizeof(*pd));
	if (ps == NULL || pd == NULL)
		goto out;	/* no memory: they stay extra, nothing hidden */
	for (k = 0; k < s->n; k++)
		if (s->v[k].folder == folder)
			ps[ns++] = &s->v[k];
	for (k = 0; k < d->n; k++)
		pd[k] = &d->v[k];
	sort_n(ps, ns, sizeof(*ps), vmsg_uid_cmp);
	sort_n(pd, d->n, sizeof(*pd), vmsg_uid_cmp);
	for (i = 0; i < map->n; i++) {
		const struct state_map_entry *e = &map->v[i];

		if (e->dst_uid == 0 || e->dst_uidvalidity != dst_uidvalidity)
			continue;
		key.uid = e->dst_uid;
		hit = find_n(&kp, pd, d->n, sizeof(*pd), vmsg_uid_cmp);
		if (hit == NULL)
			continue;
		key.uid = e->src_uid;
		sh = find_n(&kp, ps, ns, sizeof(*ps), vmsg_uid_cmp);
		if (e->origin == STATE_ORIGIN_ALTERED && sh != NULL) {
			altered(*sh, *hit);
			continue;
		}
		if ((*hit)->state != V_EXTRA || sh != NULL)
			continue;	/* matched, or a true second copy */
		(*hit)->state = V_GONE;
		(*hit)->gone_uid = e->src_uid;
		(*hit)->folder = folder;
	}
out:
	free(ps);
	free(pd);
}

static struct vissue *
issue_add(struct vacct *va, enum vkind kind, const char *folder,
    const struct vmsg *m, const char *what)
{
	struct vissue *is;

	if (va->nis == va->ais) {
		size_t na = va->ais ? va->ais * 2 : 16;
		void *p = reallocarray(va->is, na, sizeof(*va->is));

		if (p == NULL)
			return (NULL);
		va->is = p;
		va->ais = na;
	}
	is = &va->is[va->nis];
	memset(is, 0, sizeof(*is));
	is->kind = kind;
	is->uid = m->uid;
	is->size = m->size;
	is->idate = m->idate;
	is->tz = m->tz;
	is->folder = strdup(folder);
	is->date = strdup(m->date);
	is->from = strdup(m->from);
	is->subject = strdup(m->subject);
	is->what = strdup(what ? what : "");
	if (is->folder == NULL || is->date == NULL || is->from == NULL ||
	    is->subject == NULL || is->what == NULL) {
		free(is->folder);
		free(is->date);
		free(is->from);
		free(is->subject);
		free(is->what);
		return (NULL);
	}
	va->nis++;
	return (is);
}

/* diff_text - what differs in a matched pair, for people */
static void
diff_text(const struct vmsg *s, char *buf, size_t len)
{
	const struct vmsg *d = s->peer;
	char a[IMAP_DATE_TIME_MAX], b[IMAP_DATE_TIME_MAX];
	size_t o = 0;

	buf[0] = '\0';
	if (s->diff & VD_ALTERED)
		o += (size_t)snprintf(buf + o, len - o, "altered by the "
		    "destination (it stored other bytes than were sent)");
	if ((s->diff & VD_BODY) && o < len)
		o += (size_t)snprintf(buf + o, len - o, "%sbody differs",
		    o ? "; " : "");
	if ((s->diff & VD_FLAGS) && o < len)
		o += (size_t)snprintf(buf + o, len - o, "%sflags different: "
		    "source (%s) destination (%s)", o ? "; " : "", s->flags,
		    d->flags);
	if ((s->diff & VD_IDATE) && o < len) {
		imap_parse_format_date_time(s->idate, s->tz, a, sizeof(a));
		imap_parse_format_date_time(d->idate, d->tz, b, sizeof(b));
		snprintf(buf + o, len - o, "%sINTERNALDATE different: source \""
		    "%s\" destination \"%s\"", o ? "; " : "", a, b);
	}
}

int
vmatch_collect(struct vacct *va, struct vfolder *const *vf,
    const struct vlist *s, const struct vlist *d, const char *dst_path,
    uint64_t appendlimit)
{
	char what[1200];
	size_t k;

	for (k = 0; k < s->n; k++) {
		const struct vmsg *m = &s->v[k];
		struct vfolder *f = vf[m->folder];
		struct vissue *is = NULL;

		switch (m->state) {
		case V_MATCH:
			f->matched++;
			if (m->diff == 0)
				break;
			f->different++;
			diff_text(m, what, sizeof(what));
			if ((is = issue_add(va, VI_DIFFERENT, f->src, m,
			    what)) == NULL)
				return (-1);
			is->dst_uid = m->peer->uid;
			break;
		case V_POLICY:
			f->policy++;
			snprintf(what, sizeof(what), "over the destination's "
			    "APPENDLIMIT (%" PRIu64 " bytes)", appendlimit);
			if (issue_add(va, VI_POLICY, f->src, m, what) == NULL)
				return (-1);
			break;
		default:
			f->missing++;
			if (issue_add(va, VI_MISSING, f->src, m, NULL) == NULL)
				return (-1);
			break;
		}
	}
	for (k = 0; k < d->n; k++) {
		const struct vmsg *m = &d->v[k];

		if (m->state == V_MATCH)
			continue;
		if (m->state == V_GONE) {
			vf[m->folder]->policy++;
			snprintf(what, sizeof(what), "deleted on the source "
			    "(%s uid %" PRIu64 ") after the copy; kept on the "
			    "destination", vf[m->folder]->src, m->gone_uid);
			if (issue_add(va, VI_POLICY, dst_path, m, what) ==
			    NULL)
				return (-1);
			continue;
		}
		vf[0]->extra++;
		what[0] = '\0';
		if (m->peer != NULL)
			snprintf(what, sizeof(what), "another copy of source "
			    "%s uid %" PRIu64, vf[m->peer->folder]->src,
			    m->peer->uid);
		if (issue_add(va, VI_EXTRA, dst_path, m, what) == NULL)
			return (-1);
	}
	return (0);
}
