/*
 * folders.h - which source folder goes where on the destination: the
 * folder plan of a sync pass (DESIGN.md §6, "map folders").
 *
 * Input: both servers' folder lists as LIST gave them (names decoded to
 * UTF-8, attributes as imap_client.h's IMAP_MBOX_* bits, the hierarchy
 * separator and the personal namespace prefix), and the [syncd] rules
 * (include, exclude, map, skip_non_mail).  Output: one decision per
 * source folder, skipped with a reason or mapped to a destination name
 * (UTF-8, in the destination's separator and namespace), flagged when
 * it must be created.  Encoding names for the wire (modified UTF-7 or
 * UTF-8) stays the IMAP layer's business.  Pure: no I/O, no logging.
 *
 * Paths.  Rules, the report and the logs name folders by their "path":
 * the name relative to the personal namespace, with "/" between levels,
 * whatever the server uses ("INBOX.Archive.2019" on a Courier server
 * with prefix "INBOX." and separator "." is "Archive/2019").  INBOX is
 * always spelled "INBOX", and so is the first level of a path below it
 * (INBOX is case-insensitive, RFC 3501 §5.1); every other name is
 * compared exactly as the server spells it.
 *
 * Rules (folder_rules_new; config values are kept whole, one per line):
 *   include PATTERN   only folders matching one include pattern are
 *                     copied (no include: every folder);
 *   exclude PATTERN   folders matching an exclude pattern are not (wins
 *                     over include and over map).  Patterns are IMAP
 *                     LIST wildcards on the path: "*" matches anything,
 *                     "%" anything but "/".  "Archive" matches that one
 *                     folder and "Archive" followed by "/" and "*" its
 *                     descendants, so dropping a whole tree takes both
 *                     patterns;
 *   map SRC => DST    SRC and everything below it goes to DST (and
 *                     below), e.g. "Old Archive => Archive/Old": the
 *                     longest matching SRC wins.  DST may be a
 *                     special-use name - \Sent \Drafts \Trash \Junk
 *                     \Archive - meaning "the destination's folder for
 *                     that role, whatever its name".  A map rule beats
 *                     every automatic decision, including the non-mail
 *                     and virtual-folder skips, and several sources may
 *                     be mapped onto one destination (merged);
 *   skip_non_mail     skip Exchange's non-mail folders (below).
 *
 * The decisions, in order:
 *   1. a name that did not decode (name NULL): skipped, bad name -
 *      not a policy: the report counts it as a folder not copied;
 *      outside the personal namespace (e.g. "#shared", "Public
 *      Folders" when the prefix is "INBOX."): skipped;
 *   2. \Noselect or \NonExistent: skipped (a container; its children
 *      are planned on their own, and CREATE of a child creates it);
 *   3. exclude / include patterns;
 *   4. a map rule on the folder or an ancestor: mapped by it;
 *   5. \All, \Flagged, \Important (Gmail's "[Gmail]/All Mail",
 *      "Starred", "Important"): skipped as virtual - their messages are
 *      the other folders' again; map All Mail explicitly to copy it;
 *   6. with skip_non_mail, Exchange's Calendar, Contacts, Tasks, Notes,
 *      Journal, Outbox, Sync Issues, Conversation History, RSS Feeds...
 *      in English, German, French, Italian, Spanish and Dutch, with
 *      everything below them: skipped as non-mail.  Only when the
 *      source looks like Exchange - at least two of Calendar, Contacts,
 *      Tasks, Notes, Journal at the top - or FOLDER_OPT_EXCHANGE says it
 *      is, so that a Dovecot user's own "Notes" folder is copied;
 *   7. INBOX goes to INBOX;
 *   8. special folders go to the destination's folder of the same role:
 *      the source role comes from its SPECIAL-USE flag (\Sent \Drafts
 *      \Trash \Junk \Archive) or, for a role no source folder is flagged
 *      with, from a well-known name at the top level or right below
 *      INBOX ("Sent Items",
 *      "Gesendete Elemente", "Éléments envoyés", "Posta inviata",
 *      "Deleted Items", "Papierkorb", "Junk E-mail", "Entwürfe"...);
 *      the destination's folder is the one with that SPECIAL-USE flag,
 *      else one with a well-known name, else a new one with the
 *      conventional English name (Sent, Drafts, Trash, Junk, Archive),
 *      created with CREATE-SPECIAL-USE when the server has it;
 *   9. any other folder keeps its place below its nearest planned
 *      ancestor ("Sent Items/2019" follows "Sent Items" to "Sent/2019")
 *      or, at the top, its own path.
 * Well-known names match case-insensitively, ignoring blanks, "-", "_"
 * and apostrophes, and ignoring accents (precomposed or decomposed:
 * "Elements envoyes", "ÉLÉMENTS ENVOYÉS" and "E\u0301le\u0301ments
 * envoye\u0301s" are one name).
 *
 * Separators.  Each path level becomes one level on the destination.
 * A level that contains the destination's separator (a folder "a/b" on
 * a "." server going to a "/" server) gets that character replaced by
 * "_" ("-" when the separator is "_"); an empty level becomes "_"; both
 * set a warning bit.  The replacement is deterministic, so every pass
 * finds the same folder again.
 *
 * Conflicts.  When a destination is already taken by another source
 * folder, a mapped or special folder falls back to its own path, and
 * if that is taken too (or is the same), " (2)", " (3)"... is appended
 * to its last level; FOLDER_W_CONFLICT is set and conflict_with names
 * the winner.  Who wins is deterministic (not the LIST order): INBOX,
 * then map rules, then SPECIAL-USE, then well-known names, then the
 * rest - a folder placed below an ancestor ranks with that ancestor -,
 * each by depth and then by path.  Merging two sources into one
 * destination happens only on purpose: through map rules, or for
 * special folders of one role with FOLDER_OPT_MERGE_SPECIAL.
 *
 * The plan depends only on the two lists and the rules, so the next
 * pass - which sees the folders this one created - makes the same
 * decisions.  Subscriptions: each entry carries the source folder's
 * \Subscribed state for the caller to mirror.
 *
 * Ownership: a plan owns copies of every string; the inputs may go
 * away after folder_plan_build().  Rules are read-only once made and
 * may be shared by any number of plans.  No global state; thread-safe.
 */
#ifndef FERRY_FOLDERS_H
#define FERRY_FOLDERS_H

#include <stddef.h>

#include "imap_client.h"	/* IMAP_MBOX_* attribute bits */
#include "util.h"		/* struct strlist */

/* Roles of special folders. */
enum folder_role {
	FOLDER_ROLE_NONE = 0,
	FOLDER_ROLE_INBOX,
	FOLDER_ROLE_SENT,
	FOLDER_ROLE_DRAFTS,
	FOLDER_ROLE_TRASH,
	FOLDER_ROLE_JUNK,
	FOLDER_ROLE_ARCHIVE,
	FOLDER_ROLE_COUNT_
};

/* Why a source folder is not copied; FOLDER_COPY when it is. */
enum folder_skip {
	FOLDER_COPY = 0,
	FOLDER_SKIP_BADNAME,	/* name did not decode to UTF-8 */
	FOLDER_SKIP_NAMESPACE,	/* outside the personal namespace */
	FOLDER_SKIP_DUPLICATE,	/* the server listed it twice */
	FOLDER_SKIP_NOSELECT,	/* \Noselect / \NonExistent container */
	FOLDER_SKIP_EXCLUDED,	/* exclude pattern, or no include pattern */
	FOLDER_SKIP_VIRTUAL,	/* \All \Flagged \Important */
	FOLDER_SKIP_NON_MAIL,	/* Exchange calendar, contacts... */
	FOLDER_SKIP_BADLIST,	/* its LIST entry did not parse */
};

/* How the destination was chosen. */
enum folder_how {
	FOLDER_HOW_NONE = 0,	/* skipped */
	FOLDER_HOW_MAP,		/* a map rule on it or an ancestor */
	FOLDER_HOW_INBOX,
	FOLDER_HOW_SPECIAL_USE,	/* its SPECIAL-USE flag */
	FOLDER_HOW_SPECIAL_NAME, /* its well-known name */
	FOLDER_HOW_PARENT,	/* below an ancestor that moved */
	FOLDER_HOW_SAME,	/* its own path */
};

/* Warning bits of a plan entry. */
#define FOLDER_W_ESCAPED	0x01	/* separator in a name replaced */
#define FOLDER_W_EMPTY_LEVEL	0x02	/* empty level replaced by "_" */
#define FOLDER_W_CONFLICT	0x04	/* wanted destination taken */
#define FOLDER_W_MERGED		0x08	/* shares its destination, on purpose */
#define FOLDER_W_DEST_NOSELECT	0x10	/* destination exists as \Noselect */

/* folder_plan_build() options. */
#define FOLDER_OPT_EXCHANGE	  0x01	/* source is Exchange: skip non-mail
					   folders without the heuristic */
#define FOLDER_OPT_MERGE_SPECIAL  0x02	/* sources of one special role may
					   share the destination's folder */
#define FOLDER_OPT_DEST_CASEFOLD  0x04	/* destination names clash when they
					   differ in ASCII case only (Exchange,
					   O365: "trash" is "Trash") */

/* One folder as listed. */
struct folder_info {
	const char	*name;	/* UTF-8, full name as listed (prefix and
				   server separator included); NULL when it
				   did not decode */
	const char	*wire;	/* the server's spelling, carried through
				   for the caller (may be NULL) */
	unsigned	 attrs;	/* IMAP_MBOX_*, IMAP_MBOX_SUBSCRIBED too;
				   IMAP_MBOX_UNPARSED: its LIST entry did
				   not parse (name NULL, wire what could
				   be read of it) */
};

/* One server's folder list. */
struct folder_list {
	const struct folder_info *v;
	size_t		 n;
	char		 sep;		/* hierarchy separator, 0 = flat */
	const char	*prefix;	/* personal namespace prefix, e.g.
					   "INBOX." (NULL or "" = none) */
};

/* The decision for one source folder. */
struct folder_map {
	size_t		 src_index;	/* position in the source list */
	const char	*src_name;	/* as listed (UTF-8), NULL if bad */
	const char	*src_wire;	/* as listed on the wire, or NULL */
	const char	*src_path;	/* "/" path (the wire name when bad) */
	unsigned	 src_attrs;
	int		 subscribed;	/* \Subscribed on the source */
	enum folder_role role;		/* the source folder's own role */
	enum folder_skip skip;		/* FOLDER_COPY or why not */
	enum folder_how	 how;

	/* Set when skip == FOLDER_COPY, else NULL / 0. */
	const char	*dst_name;	/* full name: prefix, separator */
	const char	*dst_path;	/* "/" path, for people */
	int		 dst_exists;	/* listed on the destination */
	int		 create;	/* CREATE it (first entry needing it) */
	unsigned	 create_special; /* IMAP_MBOX_SENT...: CREATE with
					   (USE (\Sent)); 0 = plain */
	unsigned	 warnings;	/* FOLDER_W_* */
	const char	*conflict_with;	/* src_path that took the wanted
					   destination first, or NULL */
};

/* The plan: entries sorted INBOX first, then by src_path. */
struct folder_plan {
	struct folder_map *maps;
	size_t		 n;
	size_t		 ncopy;		/* entries with FOLDER_COPY */
	size_t		 ncreate;	/* entries with create set */
	int		 exchange;	/* non-mail skipping was active */
};

struct folder_rules;

/*
 * folder_rules_new - check and compile the [syncd] rules; any list may
 * be NULL.  Errors name the offending value: "map \"x\": no \"=>\"".
 */
int	folder_rules_new(struct folder_rules **rules_r,
	    const struct strlist *include, const struct strlist *exclude,
	    const struct strlist *map, int skip_non_mail, char *err,
	    size_t errlen);
void	folder_rules_free(struct folder_rules **rulesp);

/*
 * folder_plan_build - the plan for src onto dst.  rules NULL = no
 * patterns, no maps, skip_non_mail on.  Fails only without memory or
 * with an unusable separator (NUL is "flat"; a separator must be
 * printable ASCII).
 */
int	folder_plan_build(const struct folder_rules *rules,
	    const struct folder_list *src, const struct folder_list *dst,
	    unsigned opts, struct folder_plan **plan_r, char *err,
	    size_t errlen);
void	folder_plan_free(struct folder_plan **planp);

/* The entry for a source name as listed (exact), or NULL. */
const struct folder_map *folder_plan_find(const struct folder_plan *plan,
	    const char *src_name);

/*
 * folder_map_describe - one line for people and logs, e.g.
 *   "Sent Items -> Sent (special-use \Sent, create)"
 *   "Calendar: skipped (non-mail folder)"
 * Returns the length it wanted (snprintf semantics).
 */
int	folder_map_describe(const struct folder_map *m, char *buf,
	    size_t len);

/* Helpers, exposed for tests and the report. */
int	folder_glob_match(const char *pattern, const char *path);
enum folder_role folder_role_by_name(const char *name);	/* one level */
int	folder_is_non_mail_name(const char *name);		/* one level */
const char *folder_role_name(enum folder_role role);	/* "Sent" */
const char *folder_role_flag(enum folder_role role);	/* "\Sent" */
const char *folder_skip_name(enum folder_skip skip);	/* "excluded" */
/* 1 when a skip leaves messages behind that no rule asked to leave (a
 * name that did not decode): the report counts the folder as not
 * copied and the pass is incomplete.  0 for FOLDER_COPY and for the
 * deliberate skips (rules, namespace, containers, virtual, non-mail)
 * and for a name listed twice (its first listing is copied). */
int	folder_skip_is_loss(enum folder_skip skip);
const char *folder_how_name(enum folder_how how);	/* "special-use" */

#endif
