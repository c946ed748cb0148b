/*
 * folders_plan.c - the plan's six steps (folders.c lists them; the
 * decisions are folders.h's): the destination's names and its folder
 * for each special role (plan_destination), each source folder's
 * levels, context-free skips, duplicates and the Exchange heuristic
 * (plan_source), the rule-driven skips and each folder's anchor
 * (plan_anchors), the destinations assigned in priority order with
 * conflicts and merges settled (plan_destinations), and the entries
 * copied out sorted (plan_output); with the helpers that turn levels
 * into destination names and back (namespace prefix, escaped
 * separators, INBOX).
 *
 * Determinism: who wins a contested destination is decided by sorts on
 * tier, depth, levels and names (folders.h, "Conflicts"), not by the
 * order of the LIST responses, so the next pass - which sees the
 * folders this one created - decides the same way.
 *
 * SECURITY: names come from the servers; every name is built in memory
 * sized from its parts (asprintf, levels_join), never in a fixed buffer.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "folders_p.h"

/* ---- the plan ---------------------------------------------------------- */

/* Tiers: who gets a contested destination first. */
static const int anchor_tier[] = {
	[ANCHOR_NONE] = 9, [ANCHOR_INBOX] = 0, [ANCHOR_MAP] = 1,
	[ANCHOR_SPECIAL_USE] = 2, [ANCHOR_SPECIAL_NAME] = 3,
	[ANCHOR_PARENT] = 9, [ANCHOR_SAME] = 4,
};

/* prefix_strip - the name below prefix, or NULL if outside it; INBOX in
 * the prefix compares case-insensitively */
static const char *
prefix_strip(const char *name, const char *prefix)
{
	size_t len = strlen(prefix);

	if (len == 0)
		return (name);
	if (strncasecmp(prefix, "INBOX", 5) == 0 && len >= 5) {
		if (strncasecmp(name, prefix, 5) != 0 ||
		    strncmp(name + 5, prefix + 5, len - 5) != 0)
			return (NULL);
	} else if (strncmp(name, prefix, len) != 0)
		return (NULL);
	return (name + len);
}

/* escape_level - a copy of one level, made safe for the destination */
static char *
escape_level(const char *level, char dsep, unsigned *warn)
{
	char *out, *p;
	char sub = (dsep == '_') ? '-' : '_';

	if (level[0] == '\0') {
		*warn |= FOLDER_W_EMPTY_LEVEL;
		return (strdup("_"));
	}
	if ((out = strdup(level)) == NULL)
		return (NULL);
	if (dsep != '\0')
		for (p = out; *p != '\0'; p++)
			if (*p == dsep) {
				*p = sub;
				*warn |= FOLDER_W_ESCAPED;
			}
	return (out);
}

/*
 * dst_append - base + separator + the escaped levels v[0..n); base NULL
 * builds a name from the levels alone: "INBOX..." when the first level
 * is INBOX, else under the destination's namespace prefix.
 */
static char *
dst_append(const struct plan_ctx *ctx, const char *base, char *const *v,
    size_t n, unsigned *warn)
{
	char **esc, *joined = NULL, *out = NULL;
	char sep = ctx->dsep ? ctx->dsep : '/';
	size_t i;
	int inbox;

	if (n == 0)
		return (strdup(base != NULL ? base : ""));
	if ((esc = calloc(n, sizeof(*esc))) == NULL)
		return (NULL);
	for (i = 0; i < n; i++)
		if ((esc[i] = escape_level(v[i], ctx->dsep, warn)) == NULL)
			goto out;
	if ((joined = levels_join(esc, n, sep)) == NULL)
		goto out;
	if (base != NULL) {
		if (asprintf(&out, "%s%c%s", base, sep, joined) == -1)
			out = NULL;
		goto out;
	}
	inbox = strcasecmp(esc[0], "INBOX") == 0;
	if (inbox)
		memcpy(joined, "INBOX", 5);
	if (asprintf(&out, "%s%s", inbox ? "" : ctx->dprefix, joined) == -1)
		out = NULL;
out:
	for (i = 0; i < n; i++)
		free(esc[i]);
	free(esc);
	free(joined);
	return (out);
}

/* dst_normalise - a destination name as listed, with INBOX spelled
 * "INBOX" when it or its first level is INBOX */
static char *
dst_normalise(const char *name, char dsep)
{
	char *out = strdup(name);

	if (out != NULL && strncasecmp(out, "INBOX", 5) == 0 &&
	    (out[5] == '\0' || (dsep != '\0' && out[5] == dsep)))
		memcpy(out, "INBOX", 5);
	return (out);
}

/* one_level_name - the level a well-known name must be: the top level,
 * or the level right below INBOX; NULL otherwise */
static const char *
one_level_name(char *const *v, size_t n)
{
	if (n == 1)
		return (v[0]);
	if (n == 2 && strcmp(v[0], "INBOX") == 0)
		return (v[1]);
	return (NULL);
}

/* plan_destination - the destination's names and special folders */
int
plan_destination(struct plan_ctx *ctx)
{
	const struct folder_list *d = ctx->dst;
	size_t best_rank[FOLDER_ROLE_COUNT_], rank, i;
	int best_flag[FOLDER_ROLE_COUNT_];
	enum folder_role role;
	struct levels lv;
	struct slot *s;
	const char *rel, *one;
	char *norm;
	unsigned warn = 0;
	int flagged;

	for (i = 0; i < FOLDER_ROLE_COUNT_; i++) {
		best_rank[i] = SIZE_MAX;
		best_flag[i] = 0;
	}
	/* INBOX exists even when a LIST pattern did not show it, and
	 * creating it is an error (RFC 3501 §6.3.3). */
	if ((s = nameset_get(&ctx->names, "INBOX")) == NULL)
		return (-1);
	s->exists = 1;
	for (i = 0; i < d->n; i++) {
		if (d->v[i].name == NULL)
			continue;
		if ((norm = dst_normalise(d->v[i].name, ctx->dsep)) == NULL)
			return (-1);
		if ((s = nameset_get(&ctx->names, norm)) == NULL) {
			free(norm);
			return (-1);
		}
		s->exists = 1;
		s->attrs |= d->v[i].attrs;
		if (d->v[i].attrs & (IMAP_MBOX_NOSELECT | VIRTUAL_ATTRS)) {
			free(norm);
			continue;
		}
		/* A candidate for a role: by flag (any depth) or by name. */
		role = role_of_attrs(d->v[i].attrs);
		flagged = role != FOLDER_ROLE_NONE;
		rank = SIZE_MAX;
		if ((rel = prefix_strip(norm, ctx->dprefix)) == NULL)
			rel = norm;
		if (levels_split(&lv, rel, ctx->dsep, 1) == -1) {
			free(norm);
			return (-1);
		}
		if ((one = one_level_name(lv.v, lv.n)) != NULL) {
			enum folder_role r2 = role_lookup(one, &rank);

			if (!flagged)
				role = r2;
			else if (r2 != role)
				rank = SIZE_MAX - 1;
		} else if (flagged)
			rank = SIZE_MAX - 1;
		levels_free(&lv);
		if (role == FOLDER_ROLE_NONE ||
		    best_flag[role] > flagged ||
		    (best_flag[role] == flagged && rank > best_rank[role]) ||
		    (best_flag[role] == flagged && rank == best_rank[role] &&
		    ctx->special[role].name != NULL &&
		    strcmp(norm, ctx->special[role].name) >= 0)) {
			free(norm);
			continue;
		}
		free(ctx->special[role].name);
		ctx->special[role].name = norm;
		ctx->special[role].found = 1;
		best_flag[role] = flagged;
		best_rank[role] = rank;
	}
	/* Roles the destination lacks: the conventional name, created. */
	for (i = FOLDER_ROLE_SENT; i < FOLDER_ROLE_COUNT_; i++) {
		char *v[1];

		if (ctx->special[i].name != NULL)
			continue;
		v[0] = (char *)role_table[i].create;
		if ((ctx->special[i].name = dst_append(ctx, NULL, v, 1,
		    &warn)) == NULL)
			return (-1);
	}
	if ((ctx->special[FOLDER_ROLE_INBOX].name = strdup("INBOX")) == NULL)
		return (-1);
	ctx->special[FOLDER_ROLE_INBOX].found = 1;
	return (0);
}

/* name_cmp - listed names, a missing one first */
static int
name_cmp(const struct work *x, const struct work *y)
{
	if (x->in->name == NULL || y->in->name == NULL)
		return ((x->in->name != NULL) - (y->in->name != NULL));
	return (strcmp(x->in->name, y->in->name));
}

/*
 * work_levels_cmp - by levels, then by name (two spellings of INBOX
 * give equal levels), then by listing order: only the repeats of one
 * name depend on the order of the LIST responses, and they are equal.
 */
static int
work_levels_cmp(const void *a, const void *b)
{
	const struct work *x = *(const struct work *const *)a;
	const struct work *y = *(const struct work *const *)b;
	int c = levels_cmp(x->lv.v, x->lv.n, y->lv.v, y->lv.n);

	if (c != 0)
		return (c);
	if ((c = name_cmp(x, y)) != 0)
		return (c);
	return (x->index < y->index ? -1 : x->index > y->index);
}

/* find_levels - the planned (not skipped) folder with exactly these
 * levels, or NULL */
static struct work *
find_levels(const struct plan_ctx *ctx, char *const *v, size_t n)
{
	size_t lo = 0, hi = ctx->n, mid;
	struct work *w;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		w = ctx->by_levels[mid];
		if (w->lv.v == NULL)
			c = -1;		/* no levels sort first */
		else
			c = levels_cmp(w->lv.v, w->lv.n, v, n);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Equal levels: the first not skipped (duplicates come later). */
	for (; lo < ctx->n; lo++) {
		w = ctx->by_levels[lo];
		if (w->lv.v == NULL || levels_cmp(w->lv.v, w->lv.n, v, n) != 0)
			return (NULL);
		if (w->skip == FOLDER_COPY)
			return (w);
	}
	return (NULL);
}

/* plan_source - levels, context-free skips, index, roles flagged */
int
plan_source(struct plan_ctx *ctx)
{
	const struct folder_list *s = ctx->src;
	unsigned kinds = 0;
	const char *rel;
	struct work *w;
	size_t i;

	for (i = 0; i < ctx->n; i++) {
		w = &ctx->w[i];
		w->index = i;
		w->in = &s->v[i];
		if (w->in->attrs & IMAP_MBOX_UNPARSED) {
			w->skip = FOLDER_SKIP_BADLIST;
			continue;
		}
		if (w->in->name == NULL) {
			w->skip = FOLDER_SKIP_BADNAME;
			continue;
		}
		if (strcasecmp(w->in->name, "INBOX") == 0) {
			w->is_inbox = 1;
			rel = "INBOX";
		} else if ((rel = prefix_strip(w->in->name, ctx->sprefix)) ==
		    NULL || rel[0] == '\0') {
			w->skip = FOLDER_SKIP_NAMESPACE;
			rel = w->in->name;
		}
		/* Below INBOX only when INBOX is not the namespace itself. */
		if (levels_split(&w->lv, rel, ctx->ssep, ctx->sprefix[0] ==
		    '\0' || w->is_inbox) == -1)
			return (-1);
		if ((w->path = levels_join(w->lv.v, w->lv.n, '/')) == NULL)
			return (-1);
		if (w->skip == FOLDER_COPY &&
		    (w->in->attrs & (IMAP_MBOX_NOSELECT |
		    IMAP_MBOX_NONEXISTENT)))
			w->skip = FOLDER_SKIP_NOSELECT;
	}
	if ((ctx->by_levels = calloc(ctx->n ? ctx->n : 1,
	    sizeof(*ctx->by_levels))) == NULL)
		return (-1);
	for (i = 0; i < ctx->n; i++)
		ctx->by_levels[i] = &ctx->w[i];
	qsort(ctx->by_levels, ctx->n, sizeof(*ctx->by_levels),
	    work_levels_cmp);
	/* The same name listed twice: keep the first.  Equal names have
	 * equal levels, so they sit in one run, in listing order. */
	for (i = 1; i < ctx->n; i++) {
		struct work *b = ctx->by_levels[i], *a;
		size_t k;

		if (b->in->name == NULL)
			continue;
		for (k = i; k-- > 0;) {
			a = ctx->by_levels[k];
			if (a->in->name == NULL || levels_cmp(a->lv.v, a->lv.n,
			    b->lv.v, b->lv.n) != 0)
				break;
			if (strcmp(a->in->name, b->in->name) == 0) {
				b->skip = FOLDER_SKIP_DUPLICATE;
				break;
			}
		}
	}
	for (i = 0; i < ctx->n; i++) {
		w = &ctx->w[i];
		if (w->skip == FOLDER_SKIP_BADNAME ||
		    w->skip == FOLDER_SKIP_BADLIST ||
		    w->skip == FOLDER_SKIP_NAMESPACE ||
		    w->skip == FOLDER_SKIP_DUPLICATE)
			continue;
		if (role_of_attrs(w->in->attrs) != FOLDER_ROLE_NONE)
			ctx->flagged |= 1u << role_of_attrs(w->in->attrs);
		if (w->lv.n == 1)
			kinds |= non_mail_kind(w->lv.v[0]);
	}
	/* Exchange always lists Calendar, Contacts, Tasks, Notes, Journal. */
	kinds &= NM_CORE;
	ctx->exchange = (ctx->opts & FOLDER_OPT_EXCHANGE) ||
	    (kinds & (kinds - 1)) != 0;
	return (0);
}

/* plan_anchors - skips that need the rules, and each folder's anchor */
void
plan_anchors(struct plan_ctx *ctx)
{
	static const struct folder_rules none = { .skip_non_mail = 1 };
	const struct folder_rules *r = ctx->rules ? ctx->rules : &none;
	const char *one;
	struct work *w;
	size_t i;

	for (i = 0; i < ctx->n; i++) {
		w = &ctx->w[i];
		if (w->skip != FOLDER_COPY)
			continue;
		/* The folder's own role, whatever decides its place. */
		if (w->is_inbox)
			w->role = FOLDER_ROLE_INBOX;
		else if ((w->role = role_of_attrs(w->in->attrs)) ==
		    FOLDER_ROLE_NONE && (one = one_level_name(w->lv.v,
		    w->lv.n)) != NULL) {
			w->role = role_lookup(one, &w->role_rank);
			if (ctx->flagged & (1u << w->role))
				w->role = FOLDER_ROLE_NONE;
		}
		if (rules_excluded(r, w->path)) {
			w->skip = FOLDER_SKIP_EXCLUDED;
			continue;
		}
		if ((w->rule = rules_find_map(r, w->lv.v, w->lv.n)) != NULL) {
			w->anchor = ANCHOR_MAP;
			w->via_map = 1;
			continue;
		}
		if (w->in->attrs & VIRTUAL_ATTRS) {
			w->skip = FOLDER_SKIP_VIRTUAL;
			continue;
		}
		if (r->skip_non_mail && ctx->exchange && !w->is_inbox &&
		    non_mail_kind(w->lv.v[0]) != 0) {
			w->skip = FOLDER_SKIP_NON_MAIL;
			continue;
		}
		if (w->is_inbox)
			w->anchor = ANCHOR_INBOX;
		else if (role_of_attrs(w->in->attrs) != FOLDER_ROLE_NONE)
			w->anchor = ANCHOR_SPECIAL_USE;
		else if (w->role != FOLDER_ROLE_NONE)
			w->anchor = ANCHOR_SPECIAL_NAME;
	}
}

static int
work_depth_cmp(const void *a, const void *b)
{
	const struct work *x = *(const struct work *const *)a;
	const struct work *y = *(const struct work *const *)b;

	if (x->lv.n != y->lv.n)
		return (x->lv.n < y->lv.n ? -1 : 1);
	return (x->index < y->index ? -1 : x->index > y->index);
}

static int
work_order_cmp(const void *a, const void *b)
{
	const struct work *x = *(const struct work *const *)a;
	const struct work *y = *(const struct work *const *)b;
	int c;

	if (x->tier != y->tier)
		return (x->tier < y->tier ? -1 : 1);
	if (x->lv.n != y->lv.n)
		return (x->lv.n < y->lv.n ? -1 : 1);
	/*
	 * Two well-known names of one role: the one whose own name is the
	 * destination's folder for the role takes it (a user's "Entwürfe"
	 * stays "Entwürfe" although "Drafts" ranks higher), else the
	 * preferred name first.
	 */
	if (x->anchor == ANCHOR_SPECIAL_NAME && y->anchor ==
	    ANCHOR_SPECIAL_NAME && x->exact_special != y->exact_special)
		return (x->exact_special ? -1 : 1);
	if (x->anchor == ANCHOR_SPECIAL_NAME && y->anchor ==
	    ANCHOR_SPECIAL_NAME && x->role_rank != y->role_rank)
		return (x->role_rank < y->role_rank ? -1 : 1);
	if ((c = levels_cmp(x->lv.v, x->lv.n, y->lv.v, y->lv.n)) != 0)
		return (c);
	if ((c = name_cmp(x, y)) != 0)
		return (c);
	return (x->index < y->index ? -1 : x->index > y->index);
}

/* wanted - the destination a folder asks for, before conflicts */
static char *
wanted(struct plan_ctx *ctx, struct work *w)
{
	const struct map_rule *m;

	switch (w->anchor) {
	case ANCHOR_MAP:
		m = w->rule;
		if (m->dst_role != FOLDER_ROLE_NONE)
			return (dst_append(ctx, ctx->special[m->dst_role].name,
			    w->lv.v + m->src.n, w->lv.n - m->src.n,
			    &w->warnings));
		{
			/* The rule's levels, then the folder's below SRC. */
			size_t n = m->dst.n + w->lv.n - m->src.n, i;
			char **v = calloc(n, sizeof(*v));
			char *out;

			if (v == NULL)
				return (NULL);
			for (i = 0; i < m->dst.n; i++)
				v[i] = m->dst.v[i];
			for (i = m->src.n; i < w->lv.n; i++)
				v[m->dst.n + i - m->src.n] = w->lv.v[i];
			out = dst_append(ctx, NULL, v, n, &w->warnings);
			free(v);
			return (out);
		}
	case ANCHOR_INBOX:
		return (strdup("INBOX"));
	case ANCHOR_SPECIAL_USE:
	case ANCHOR_SPECIAL_NAME:
		return (strdup(ctx->special[w->role].name));
	case ANCHOR_PARENT:
		return (dst_append(ctx, w->parent->dst,
		    w->lv.v + w->parent->lv.n, w->lv.n - w->parent->lv.n,
		    &w->warnings));
	case ANCHOR_SAME:
	case ANCHOR_NONE:
		break;
	}
	return (dst_append(ctx, NULL, w->lv.v, w->lv.n, &w->warnings));
}

/* may_merge - may w share a destination already taken by other? */
static int
may_merge(const struct plan_ctx *ctx, const struct work *w,
    const struct work *other)
{
	if (w->via_map || other->via_map)
		return (1);		/* the admin asked for it */
	if ((ctx->opts & FOLDER_OPT_MERGE_SPECIAL) &&
	    w->role > FOLDER_ROLE_INBOX && w->role == other->role &&
	    (w->anchor == ANCHOR_SPECIAL_USE ||
	    w->anchor == ANCHOR_SPECIAL_NAME))
		return (1);
	return (0);
}

/* take - give w the destination name (consumed), settling conflicts */
static int
take(struct plan_ctx *ctx, struct work *w, char *name)
{
	struct slot *s;
	char *alt;
	unsigned k;
	int reserved;

	if ((s = nameset_get(&ctx->names, name)) == NULL) {
		free(name);
		return (-1);
	}
	/* INBOX itself belongs to the source's INBOX, listed or not. */
	reserved = strcmp(name, "INBOX") == 0 && w->anchor != ANCHOR_INBOX &&
	    !w->via_map;
	if (reserved || (s->taken != NULL && s->taken != w &&
	    !may_merge(ctx, w, s->taken))) {
		w->warnings |= FOLDER_W_CONFLICT;
		w->conflict = s->taken;
		/* Its own path, else its own path with " (k)" added. */
		free(name);
		if ((name = dst_append(ctx, NULL, w->lv.v, w->lv.n,
		    &w->warnings)) == NULL ||
		    (s = nameset_get(&ctx->names, name)) == NULL) {
			free(name);
			return (-1);
		}
		for (k = 2; s->taken != NULL || strcmp(name, "INBOX") == 0;
		    k++) {
			if (asprintf(&alt, "%s (%u)", name, k) == -1) {
				free(name);
				return (-1);
			}
			if ((s = nameset_get(&ctx->names, alt)) == NULL) {
				free(alt);
				free(name);
				return (-1);
			}
			if (s->taken == NULL) {
				free(name);
				name = alt;
				break;
			}
			free(alt);
		}
	} else if (s->taken != NULL) {
		w->warnings |= FOLDER_W_MERGED;
		s->taken->warnings |= FOLDER_W_MERGED;
	}
	if (s->taken == NULL)
		s->taken = w;
	w->dst = name;
	if (s->exists && (s->attrs & IMAP_MBOX_NOSELECT))
		w->warnings |= FOLDER_W_DEST_NOSELECT;
	w->dst_exists = s->exists && !(s->attrs & IMAP_MBOX_NOSELECT);
	if (!w->dst_exists && !s->create_planned) {
		s->create_planned = 1;
		w->create = 1;
		/* A special folder the destination lacks: CREATE-SPECIAL-USE */
		for (k = FOLDER_ROLE_SENT; k < FOLDER_ROLE_COUNT_; k++)
			if (!ctx->special[k].found &&
			    strcmp(name, ctx->special[k].name) == 0 &&
			    (w->anchor == ANCHOR_SPECIAL_USE ||
			    w->anchor == ANCHOR_SPECIAL_NAME ||
			    (w->anchor == ANCHOR_MAP &&
			    w->rule->dst_role == (enum folder_role)k)))
				w->create_special = role_table[k].attr;
	}
	return (0);
}

/* plan_destinations - parents, tiers, then every destination in order */
int
plan_destinations(struct plan_ctx *ctx)
{
	struct work **v, *w, *p;
	size_t i, k;
	int rc = -1;

	if ((v = calloc(ctx->n ? ctx->n : 1, sizeof(*v))) == NULL)
		return (-1);
	for (i = 0; i < ctx->n; i++)
		v[i] = &ctx->w[i];
	/* Shallow first: a parent's tier is known before its children's. */
	qsort(v, ctx->n, sizeof(*v), work_depth_cmp);
	for (i = 0; i < ctx->n; i++) {
		w = v[i];
		if (w->skip != FOLDER_COPY)
			continue;
		if (w->anchor == ANCHOR_NONE) {
			for (k = w->lv.n - 1, p = NULL; k > 0 && p == NULL; k--)
				p = find_levels(ctx, w->lv.v, k);
			if (p != NULL) {
				w->anchor = ANCHOR_PARENT;
				w->parent = p;
				w->tier = p->tier;
				w->via_map = p->via_map;
				continue;
			}
			w->anchor = ANCHOR_SAME;
		}
		w->tier = anchor_tier[w->anchor];
		if (w->anchor == ANCHOR_SPECIAL_NAME &&
		    ctx->special[w->role].found) {
			unsigned warn = 0;
			char *own = dst_append(ctx, NULL, w->lv.v, w->lv.n,
			    &warn);

			if (own == NULL)
				goto out;
			w->exact_special = strcmp(own,
			    ctx->special[w->role].name) == 0;
			free(own);
		}
	}
	qsort(v, ctx->n, sizeof(*v), work_order_cmp);
	for (i = 0; i < ctx->n; i++) {
		char *name;

		w = v[i];
		if (w->skip != FOLDER_COPY)
			continue;
		if ((name = wanted(ctx, w)) == NULL || take(ctx, w, name) == -1)
			goto out;
	}
	rc = 0;
out:
	free(v);
	return (rc);
}

/* how_of - what the report says about how a destination was chosen */
static enum folder_how
how_of(const struct plan_ctx *ctx, const struct work *w)
{
	const struct work *p;
	char *own;
	unsigned warn = 0;
	enum folder_how how = FOLDER_HOW_SAME;

	switch (w->anchor) {
	case ANCHOR_MAP:		return (FOLDER_HOW_MAP);
	case ANCHOR_INBOX:		return (FOLDER_HOW_INBOX);
	case ANCHOR_SPECIAL_USE:	return (FOLDER_HOW_SPECIAL_USE);
	case ANCHOR_SPECIAL_NAME:	return (FOLDER_HOW_SPECIAL_NAME);
	case ANCHOR_PARENT:
		/* "below its parent" only when the parent moved */
		p = w->parent;
		own = dst_append(ctx, NULL, p->lv.v, p->lv.n, &warn);
		if (own == NULL || strcmp(own, p->dst) != 0)
			how = FOLDER_HOW_PARENT;
		free(own);
		return (how);
	case ANCHOR_SAME:
	case ANCHOR_NONE:
		break;
	}
	return (FOLDER_HOW_SAME);
}

/* dst_path_of - the "/" path of a destination name, for people */
static char *
dst_path_of(const struct plan_ctx *ctx, const char *name)
{
	const char *rel;
	struct levels lv;
	char *out;

	if (ctx->dprefix[0] == '\0' ||
	    (rel = prefix_strip(name, ctx->dprefix)) == NULL)
		rel = name;
	if (ctx->dsep == '\0' || ctx->dsep == '/')
		return (strdup(rel));
	if (levels_split(&lv, rel, ctx->dsep, 0) == -1)
		return (NULL);
	out = levels_join(lv.v, lv.n, '/');
	levels_free(&lv);
	return (out);
}

static int
map_order_cmp(const void *a, const void *b)
{
	const struct folder_map *x = a, *y = b;
	int xi = x->role == FOLDER_ROLE_INBOX;
	int yi = y->role == FOLDER_ROLE_INBOX;
	int c;

	if (xi != yi)
		return (xi ? -1 : 1);
	if ((c = strcmp(x->src_path, y->src_path)) != 0)
		return (c);
	if (x->src_name != NULL && y->src_name != NULL &&
	    (c = strcmp(x->src_name, y->src_name)) != 0)
		return (c);
	return (x->src_index < y->src_index ? -1 : x->src_index > y->src_index);
}

static char *
dup_or_null(const char *s, int *fail)
{
	char *d;

	if (s == NULL)
		return (NULL);
	if ((d = strdup(s)) == NULL)
		*fail = 1;
	return (d);
}

/* plan_output - the entries of the plan, sorted */
int
plan_output(struct plan_ctx *ctx, struct folder_plan *plan)
{
	struct folder_map *m;
	struct work *w;
	size_t i;
	int fail = 0;

	if ((plan->maps = calloc(ctx->n ? ctx->n : 1,
	    sizeof(*plan->maps))) == NULL)
		return (-1);
	plan->exchange = ctx->exchange;
	for (i = 0; i < ctx->n && !fail; i++) {
		w = &ctx->w[i];
		m = &plan->maps[plan->n++];
		m->src_index = w->index;
		m->src_name = dup_or_null(w->in->name, &fail);
		m->src_wire = dup_or_null(w->in->wire, &fail);
		m->src_path = dup_or_null(w->path != NULL ? w->path :
		    (w->in->wire != NULL ? w->in->wire : "?"), &fail);
		m->src_attrs = w->in->attrs;
		m->subscribed = (w->in->attrs & IMAP_MBOX_SUBSCRIBED) != 0;
		m->role = w->role;
		m->skip = w->skip;
		if (w->skip != FOLDER_COPY)
			continue;
		m->how = how_of(ctx, w);
		m->dst_name = dup_or_null(w->dst, &fail);
		if ((m->dst_path = dst_path_of(ctx, w->dst)) == NULL)
			fail = 1;
		m->dst_exists = w->dst_exists;
		m->create = w->create;
		m->create_special = w->create_special;
		m->warnings = w->warnings;
		if (w->conflict != NULL)
			m->conflict_with = dup_or_null(w->conflict->path,
			    &fail);
		plan->ncopy++;
		if (m->create)
			plan->ncreate++;
	}
	if (fail)
		return (-1);
	qsort(plan->maps, plan->n, sizeof(*plan->maps), map_order_cmp);
	return (0);
}
