/*
 * folders_p.h - the inside of the folder plan (folders.h): path levels,
 * the compiled rules, the destination's name set, the special-use role
 * table, the plan context with one struct work per source folder, and
 * the calls between the files that build a plan:
 *
 *   folders.c        the public entry points: folder_plan_build runs
 *                    the steps in order, frees, finds and describes
 *   folders_rules.c  the glob matcher, the rules (include, exclude,
 *                    map) compiled and queried (rules_)
 *   folders_names.c  path levels and the name set of destination
 *                    names, existing or planned (levels_, nameset_)
 *   folders_roles.c  special-use roles: the well-known localised names,
 *                    Exchange's non-mail names, the role table (role_,
 *                    non_mail_)
 *   folders_plan.c   the plan's six steps, from the destination's names
 *                    to the sorted entries (plan_)
 *
 * Private to those files.  Pure functions, no global state beyond the
 * read-only tables; a plan context belongs to one folder_plan_build().
 */
#ifndef FERRY_FOLDERS_P_H
#define FERRY_FOLDERS_P_H

#include <stddef.h>

#include "folders.h"

/* ---- path levels (folders_names.c) ------------------------------------- */

struct levels {
	char	*buf;		/* the levels, NUL-separated */
	char	**v;
	size_t	 n;
};

void	levels_free(struct levels *l);
int	levels_split(struct levels *l, const char *s, char sep,
	    int inbox_first);
char	*levels_join(char *const *v, size_t n, char sep);
int	levels_cmp(char *const *a, size_t na, char *const *b, size_t nb);

/* ---- the destination's names (folders_names.c) ------------------------- */

/* One destination name, existing or planned. */
struct slot {
	char		*key;		/* normalised name; NULL = free slot */
	int		 exists;	/* listed on the destination */
	unsigned	 attrs;		/* its attributes if it exists */
	struct work	*taken;		/* planned for this source folder */
	int		 create_planned;
};

struct nameset {
	struct slot	*slots;
	size_t		 cap;		/* power of two */
	size_t		 count;
	int		 fold;		/* ASCII case-insensitive */
};

void	nameset_free(struct nameset *ns);
struct slot *nameset_get(struct nameset *ns, const char *name);

/* ---- rules (folders_rules.c) ------------------------------------------- */

struct map_rule {
	char		*text;		/* "SRC => DST" as configured */
	struct levels	 src;
	struct levels	 dst;		/* unused when dst_role is set */
	enum folder_role dst_role;	/* "\Sent" etc., or NONE */
};

struct folder_rules {
	char		**include;
	size_t		 ninclude;
	char		**exclude;
	size_t		 nexclude;
	struct map_rule	*maps;
	size_t		 nmaps;
	int		 skip_non_mail;
};

int	rules_excluded(const struct folder_rules *r, const char *path);
const struct map_rule *rules_find_map(const struct folder_rules *r,
	    char *const *v, size_t n);

/* ---- special roles and well-known names (folders_roles.c) -------------- */

/* Exchange's non-mail folders; the first five kinds drive detection. */
#define NM_CALENDAR	0x01
#define NM_CONTACTS	0x02
#define NM_TASKS	0x04
#define NM_NOTES	0x08
#define NM_JOURNAL	0x10
#define NM_OTHER	0x20
#define NM_CORE		0x1f

#define VIRTUAL_ATTRS \
	(IMAP_MBOX_ALL | IMAP_MBOX_FLAGGED | IMAP_MBOX_IMPORTANT)

/* What each role is called, flagged, created as. */
struct role_info {
	const char	*name;
	const char	*flag;
	const char	*create;	/* conventional English name */
	unsigned	 attr;		/* IMAP_MBOX_* */
};
extern const struct role_info role_table[FOLDER_ROLE_COUNT_];

enum folder_role role_lookup(const char *name, size_t *rank_r);
enum folder_role role_of_attrs(unsigned attrs);
unsigned non_mail_kind(const char *name);

/* ---- the plan (folders_plan.c) ----------------------------------------- */

enum anchor {
	ANCHOR_NONE = 0,
	ANCHOR_MAP,
	ANCHOR_INBOX,
	ANCHOR_SPECIAL_USE,
	ANCHOR_SPECIAL_NAME,
	ANCHOR_PARENT,
	ANCHOR_SAME,
};

/* One source folder while the plan is made. */
struct work {
	size_t		 index;
	const struct folder_info *in;
	struct levels	 lv;		/* path levels */
	char		*path;		/* "/" path */
	int		 is_inbox;
	enum folder_skip skip;
	enum folder_role role;
	size_t		 role_rank;	/* in role_names, for name matches */
	int		 exact_special;	/* its own name is its role's folder */
	enum anchor	 anchor;
	const struct map_rule *rule;	/* ANCHOR_MAP */
	struct work	*parent;	/* ANCHOR_PARENT */
	int		 tier;
	int		 via_map;	/* on a map rule, its own or above */
	char		*dst;		/* final destination name */
	unsigned	 warnings;
	struct work	*conflict;
	int		 create;
	unsigned	 create_special;
	int		 dst_exists;
};

/* The destination's folder for each role. */
struct special {
	char		*name;		/* full destination name */
	int		 found;		/* exists (by flag or by name) */
};

struct plan_ctx {
	const struct folder_rules *rules;
	const struct folder_list *src, *dst;
	unsigned	 opts;
	char		 ssep, dsep;
	const char	*sprefix, *dprefix;
	struct nameset	 names;
	struct special	 special[FOLDER_ROLE_COUNT_];
	struct work	*w;
	size_t		 n;
	struct work	**by_levels;	/* sorted for look-ups */
	unsigned	 flagged;	/* 1 << role: a folder has the flag */
	int		 exchange;
};

/* The steps, in the order folder_plan_build() runs them (folders.c). */
int	plan_destination(struct plan_ctx *ctx);		/* 1 */
int	plan_source(struct plan_ctx *ctx);		/* 2, 3 */
void	plan_anchors(struct plan_ctx *ctx);		/* 4 */
int	plan_destinations(struct plan_ctx *ctx);	/* 5 */
int	plan_output(struct plan_ctx *ctx, struct folder_plan *plan); /* 6 */

#endif
