/*
 * folders.c - the folder plan: where each source folder goes on the
 * destination (rules and decisions in folders.h).  This file holds the
 * public entry points - folder_plan_build running the steps below, the
 * plan's look-up and description, the names of its enums; the private
 * interface between the files is folders_p.h.
 *
 * How a plan is made (folder_plan_build):
 *   1. the destination list goes into a name set (what exists, which
 *      is \Noselect) and yields the destination's folder for each
 *      special role (flag, else well-known name, else to be created)
 *      [plan_destination, folders_plan.c; the name set is
 *      folders_names.c's, the well-known names folders_roles.c's];
 *   2. each source folder gets its path levels (namespace prefix cut,
 *      split at the source separator, INBOX spelled "INBOX") and the
 *      skips that need no context (bad name, namespace, \Noselect)
 *      [plan_source, folders_plan.c];
 *   3. a sorted index finds duplicates and ancestors; the flagged roles
 *      and the Exchange heuristic are computed over the whole list
 *      [plan_source, folders_plan.c; non-mail names folders_roles.c];
 *   4. each folder gets its anchor: a map rule, INBOX, a special role,
 *      or else its nearest planned ancestor ("parent"), or nothing
 *      ("same"), plus the pattern, virtual and non-mail skips
 *      [plan_anchors, folders_plan.c; patterns and map rules are
 *      folders_rules.c's];
 *   5. destinations are assigned in priority order (tier, depth, path)
 *      so that conflicts are decided the same way on every pass
 *      [plan_destinations, folders_plan.c];
 *   6. the entries are copied out, sorted INBOX first, then by path
 *      [plan_output, folders_plan.c].
 *
 * SECURITY: folder names come from the servers (a hostile or broken
 * server can send anything that decodes).  Nothing here trusts their
 * length or content beyond "NUL-terminated": every buffer is sized from
 * the input, the glob matcher runs in O(pattern x name) time (no
 * backtracking blow-up), and the name set grows with the input only.
 *
 * Ownership: rules own their compiled copies; a plan owns every string
 * it returns.  Pure functions, no global state, thread-safe.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "folders_p.h"
#include "util.h"

/* ---- names of enums ----------------------------------------------------- */

const char *
folder_skip_name(enum folder_skip skip)
{
	switch (skip) {
	case FOLDER_COPY:		return ("copied");
	case FOLDER_SKIP_BADNAME:
		return ("name is not valid modified UTF-7");
	case FOLDER_SKIP_NAMESPACE:
		return ("outside the personal namespace");
	case FOLDER_SKIP_DUPLICATE:	return ("listed twice");
	case FOLDER_SKIP_NOSELECT:	return ("container only (\\Noselect)");
	case FOLDER_SKIP_EXCLUDED:	return ("excluded");
	case FOLDER_SKIP_VIRTUAL:	return ("virtual folder");
	case FOLDER_SKIP_NON_MAIL:	return ("non-mail folder");
	case FOLDER_SKIP_BADLIST:
		return ("its LIST entry did not parse");
	}
	return ("?");
}

int
folder_skip_is_loss(enum folder_skip skip)
{
	return (skip == FOLDER_SKIP_BADNAME || skip == FOLDER_SKIP_BADLIST);
}

const char *
folder_how_name(enum folder_how how)
{
	switch (how) {
	case FOLDER_HOW_NONE:		return ("skipped");
	case FOLDER_HOW_MAP:		return ("map rule");
	case FOLDER_HOW_INBOX:		return ("INBOX");
	case FOLDER_HOW_SPECIAL_USE:	return ("special-use");
	case FOLDER_HOW_SPECIAL_NAME:	return ("well-known name");
	case FOLDER_HOW_PARENT:		return ("below its parent");
	case FOLDER_HOW_SAME:		return ("same path");
	}
	return ("?");
}

/* plan_ctx_free - everything the context allocated */
static void
plan_ctx_free(struct plan_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->n; i++) {
		levels_free(&ctx->w[i].lv);
		free(ctx->w[i].path);
		free(ctx->w[i].dst);
	}
	for (i = 0; i < FOLDER_ROLE_COUNT_; i++)
		free(ctx->special[i].name);
	nameset_free(&ctx->names);
	free(ctx->w);
	free(ctx->by_levels);
}

void
folder_plan_free(struct folder_plan **planp)
{
	struct folder_plan *p;
	size_t i;

	if (planp == NULL || (p = *planp) == NULL)
		return;
	for (i = 0; i < p->n; i++) {
		free((char *)p->maps[i].src_name);
		free((char *)p->maps[i].src_wire);
		free((char *)p->maps[i].src_path);
		free((char *)p->maps[i].dst_name);
		free((char *)p->maps[i].dst_path);
		free((char *)p->maps[i].conflict_with);
	}
	free(p->maps);
	free(p);
	*planp = NULL;
}

/* sep_ok - a usable hierarchy separator: none, or printable ASCII */
static int
sep_ok(char c)
{
	return (c == '\0' || (c > 0x20 && c < 0x7f));
}

/* folder_plan_build - the plan (see folders.h) */
int
folder_plan_build(const struct folder_rules *rules,
    const struct folder_list *src, const struct folder_list *dst,
    unsigned opts, struct folder_plan **plan_r, char *err, size_t errlen)
{
	struct plan_ctx ctx;
	struct folder_plan *plan = NULL;
	int rc = -1;

	*plan_r = NULL;
	if (!sep_ok(src->sep) || !sep_ok(dst->sep)) {
		errbuf_set(err, errlen, "unusable hierarchy separator");
		return (-1);
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.rules = rules;
	ctx.src = src;
	ctx.dst = dst;
	ctx.opts = opts;
	ctx.ssep = src->sep;
	ctx.dsep = dst->sep;
	ctx.sprefix = src->prefix ? src->prefix : "";
	ctx.dprefix = dst->prefix ? dst->prefix : "";
	ctx.names.fold = (opts & FOLDER_OPT_DEST_CASEFOLD) != 0;
	ctx.n = src->n;
	if ((ctx.w = calloc(ctx.n ? ctx.n : 1, sizeof(*ctx.w))) == NULL ||
	    (plan = calloc(1, sizeof(*plan))) == NULL)
		goto out;
	if (plan_destination(&ctx) == -1 || plan_source(&ctx) == -1)
		goto out;
	plan_anchors(&ctx);
	if (plan_destinations(&ctx) == -1 || plan_output(&ctx, plan) == -1)
		goto out;
	*plan_r = plan;
	plan = NULL;
	rc = 0;
out:
	if (rc == -1)
		errbuf_set(err, errlen, "out of memory");
	folder_plan_free(&plan);
	plan_ctx_free(&ctx);
	return (rc);
}

/* folder_plan_find - the entry of a source name as listed */
const struct folder_map *
folder_plan_find(const struct folder_plan *plan, const char *src_name)
{
	size_t i;

	if (plan == NULL || src_name == NULL)
		return (NULL);
	for (i = 0; i < plan->n; i++)
		if (plan->maps[i].src_name != NULL &&
		    strcmp(plan->maps[i].src_name, src_name) == 0)
			return (&plan->maps[i]);
	return (NULL);
}

/* folder_map_describe - one line for people (see folders.h) */
int
folder_map_describe(const struct folder_map *m, char *buf, size_t len)
{
	char how[128], notes[256];
	size_t n = 0;

	if (m->skip != FOLDER_COPY)
		return (snprintf(buf, len, "%s: skipped (%s)", m->src_path,
		    folder_skip_name(m->skip)));
	if (m->how == FOLDER_HOW_SPECIAL_USE || m->how ==
	    FOLDER_HOW_SPECIAL_NAME)
		snprintf(how, sizeof(how), "%s %s", folder_how_name(m->how),
		    folder_role_flag(m->role));
	else
		snprintf(how, sizeof(how), "%s", folder_how_name(m->how));
	notes[0] = '\0';
#define NOTE(...) do {							\
	n = strlen(notes);						\
	snprintf(notes + n, sizeof(notes) - n, __VA_ARGS__);		\
} while (0)
	if (m->create)
		NOTE(", create%s", m->create_special ? " as special-use" : "");
	if (m->warnings & FOLDER_W_CONFLICT)
		NOTE(", wanted destination taken by %s", m->conflict_with ?
		    m->conflict_with : "another folder");
	if (m->warnings & FOLDER_W_MERGED)
		NOTE(", shared with another source folder");
	if (m->warnings & FOLDER_W_ESCAPED)
		NOTE(", separator in name replaced");
	if (m->warnings & FOLDER_W_EMPTY_LEVEL)
		NOTE(", empty level replaced");
	if (m->warnings & FOLDER_W_DEST_NOSELECT)
		NOTE(", destination exists as \\Noselect");
#undef NOTE
	return (snprintf(buf, len, "%s -> %s (%s%s)", m->src_path, m->dst_path,
	    how, notes));
}
