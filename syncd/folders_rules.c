/*
 * folders_rules.c - the [syncd] folder rules (folders.h, "Rules";
 * decisions 3 and 4): include and exclude patterns and map rules
 * checked and compiled once, then asked per source folder for the
 * include/exclude verdict and for the map rule with the longest source
 * at or above its path; and the IMAP LIST glob matcher the patterns use.
 *
 * SECURITY: rules come from the admin's config, paths from the servers.
 * A pattern is at most PATTERN_MAX bytes and the matcher runs in
 * O(pattern x path) time with no backtracking, whatever either holds.
 *
 * Ownership: compiled rules own their copies and are read-only once
 * made; any number of plans may share them.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "folders_p.h"
#include "utf8.h"
#include "util.h"

#define PATTERN_MAX	1024	/* bytes of an include/exclude pattern */

/* ---- glob ------------------------------------------------------------- */

/*
 * folder_glob_match - IMAP LIST wildcards: "*" matches any run of
 * bytes, "%" any run without "/".  Simulated as a set of pattern
 * positions, so the time is O(len(pattern) x len(path)) whatever the
 * pattern.  Bytes compare exactly (UTF-8 needs nothing special: "%"
 * and "*" only ever stop at ASCII "/").
 */
int
folder_glob_match(const char *pattern, const char *path)
{
	unsigned char a[PATTERN_MAX + 1], b[PATTERN_MAX + 1];
	unsigned char *cur = a, *nxt = b, *t;
	size_t m = strlen(pattern), j;
	const char *s;
	int alive;

	if (m > PATTERN_MAX)
		return (0);
	memset(cur, 0, m + 1);
	cur[0] = 1;
	for (j = 0; j < m; j++)		/* wildcards may match nothing */
		if (cur[j] && (pattern[j] == '*' || pattern[j] == '%'))
			cur[j + 1] = 1;
	for (s = path; *s != '\0'; s++) {
		memset(nxt, 0, m + 1);
		alive = 0;
		for (j = 0; j < m; j++) {
			if (!cur[j])
				continue;
			if (pattern[j] == '*' || (pattern[j] == '%' &&
			    *s != '/'))
				nxt[j] = 1;
			else if (pattern[j] == *s)
				nxt[j + 1] = 1;
		}
		for (j = 0; j <= m; j++) {
			if (j < m && nxt[j] && (pattern[j] == '*' ||
			    pattern[j] == '%'))
				nxt[j + 1] = 1;
			alive |= nxt[j];
		}
		if (!alive)
			return (0);
		t = cur;
		cur = nxt;
		nxt = t;
	}
	return (cur[m]);
}

/* ---- rules ------------------------------------------------------------- */

void
folder_rules_free(struct folder_rules **rulesp)
{
	struct folder_rules *r;
	size_t i;

	if (rulesp == NULL || (r = *rulesp) == NULL)
		return;
	for (i = 0; i < r->ninclude; i++)
		free(r->include[i]);
	for (i = 0; i < r->nexclude; i++)
		free(r->exclude[i]);
	for (i = 0; i < r->nmaps; i++) {
		free(r->maps[i].text);
		levels_free(&r->maps[i].src);
		levels_free(&r->maps[i].dst);
	}
	free(r->include);
	free(r->exclude);
	free(r->maps);
	free(r);
	*rulesp = NULL;
}

/* check_path - a rule path: non-empty levels, valid UTF-8, no controls */
static const char *
check_path(const char *p, int wildcards_ok)
{
	size_t i, len = strlen(p);

	if (len == 0)
		return ("empty folder path");
	if (!utf8_valid(p, len))
		return ("not valid UTF-8");
	for (i = 0; i < len; i++) {
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return ("control character");
		if (!wildcards_ok && (p[i] == '*' || p[i] == '%'))
			return ("wildcards (* %) are for include and exclude");
		if (p[i] == '/' && (i == 0 || i + 1 == len || p[i + 1] == '/'))
			return ("empty level (leading, trailing or double /)");
	}
	return (NULL);
}

/* normalise_inbox - "inbox" or "Inbox/..." at the start becomes INBOX */
static void
normalise_inbox(char *p)
{
	if (strncasecmp(p, "INBOX", 5) == 0 && (p[5] == '\0' || p[5] == '/'))
		memcpy(p, "INBOX", 5);
}

/* copy_patterns - check and copy include or exclude patterns */
static int
copy_patterns(const struct strlist *l, char ***out_r, size_t *n_r,
    const char *what, char *err, size_t errlen)
{
	const char *why;
	size_t i;

	*out_r = NULL;
	*n_r = 0;
	if (l == NULL || l->count == 0)
		return (0);
	if ((*out_r = calloc(l->count, sizeof(**out_r))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	for (i = 0; i < l->count; i++) {
		if (strlen(l->items[i]) > PATTERN_MAX)
			why = "longer than 1024 bytes";
		else
			why = check_path(l->items[i], 1);
		if (why != NULL) {
			errbuf_set(err, errlen, "%s \"%s\": %s", what,
			    l->items[i], why);
			return (-1);
		}
		if (((*out_r)[i] = strdup(l->items[i])) == NULL) {
			errbuf_set(err, errlen, "out of memory");
			return (-1);
		}
		(*n_r)++;
		normalise_inbox((*out_r)[i]);
	}
	return (0);
}

/* parse_map - "SRC => DST" into a rule */
static int
parse_map(const char *text, struct map_rule *m, char *err, size_t errlen)
{
	char *copy, *arrow, *src, *dst;
	const char *why = NULL;
	size_t i;

	if ((copy = strdup(text)) == NULL || (m->text = strdup(text)) == NULL) {
		free(copy);
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	if ((arrow = strstr(copy, "=>")) == NULL) {
		errbuf_set(err, errlen, "map \"%s\": no \"=>\" (use: map = "
		    "Source/Path => Destination/Path)", text);
		free(copy);
		return (-1);
	}
	*arrow = '\0';
	src = str_trim(copy);
	dst = str_trim(arrow + 2);
	if ((why = check_path(src, 0)) != NULL) {
		errbuf_set(err, errlen, "map \"%s\": source: %s", text, why);
		free(copy);
		return (-1);
	}
	for (i = FOLDER_ROLE_SENT; i < FOLDER_ROLE_COUNT_; i++)
		if (strcasecmp(dst, role_table[i].flag) == 0)
			m->dst_role = (enum folder_role)i;
	if (m->dst_role == FOLDER_ROLE_NONE && dst[0] == '\\')
		why = "unknown special-use name (use \\Sent \\Drafts \\Trash "
		    "\\Junk or \\Archive)";
	else if (m->dst_role == FOLDER_ROLE_NONE)
		why = check_path(dst, 0);
	if (why != NULL) {
		errbuf_set(err, errlen, "map \"%s\": destination: %s", text,
		    why);
		free(copy);
		return (-1);
	}
	normalise_inbox(src);
	normalise_inbox(dst);
	if (levels_split(&m->src, src, '/', 1) == -1 ||
	    (m->dst_role == FOLDER_ROLE_NONE &&
	    levels_split(&m->dst, dst, '/', 1) == -1)) {
		errbuf_set(err, errlen, "out of memory");
		free(copy);
		return (-1);
	}
	free(copy);
	return (0);
}

/* folder_rules_new - compile the [syncd] folder rules */
int
folder_rules_new(struct folder_rules **rules_r, const struct strlist *include,
    const struct strlist *exclude, const struct strlist *map,
    int skip_non_mail, char *err, size_t errlen)
{
	struct folder_rules *r;
	size_t i, k;

	*rules_r = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	r->skip_non_mail = skip_non_mail;
	if (copy_patterns(include, &r->include, &r->ninclude, "include", err,
	    errlen) == -1 || copy_patterns(exclude, &r->exclude, &r->nexclude,
	    "exclude", err, errlen) == -1)
		goto fail;
	if (map != NULL && map->count > 0) {
		if ((r->maps = calloc(map->count, sizeof(*r->maps))) == NULL) {
			errbuf_set(err, errlen, "out of memory");
			goto fail;
		}
		for (i = 0; i < map->count; i++) {
			r->nmaps++;
			if (parse_map(map->items[i], &r->maps[i], err,
			    errlen) == -1)
				goto fail;
			for (k = 0; k < i; k++)
				if (levels_cmp(r->maps[k].src.v,
				    r->maps[k].src.n, r->maps[i].src.v,
				    r->maps[i].src.n) == 0) {
					errbuf_set(err, errlen, "map \"%s\": "
					    "source already mapped by \"%s\"",
					    map->items[i], map->items[k]);
					goto fail;
				}
		}
	}
	*rules_r = r;
	return (0);
fail:
	folder_rules_free(&r);
	return (-1);
}

/* rules_excluded - the include/exclude verdict for a path */
int
rules_excluded(const struct folder_rules *r, const char *path)
{
	size_t i;

	for (i = 0; i < r->nexclude; i++)
		if (folder_glob_match(r->exclude[i], path))
			return (1);
	if (r->ninclude == 0)
		return (0);
	for (i = 0; i < r->ninclude; i++)
		if (folder_glob_match(r->include[i], path))
			return (0);
	return (1);
}

/* rules_find_map - the map rule with the longest source above or at v */
const struct map_rule *
rules_find_map(const struct folder_rules *r, char *const *v, size_t n)
{
	const struct map_rule *best = NULL;
	size_t i;

	for (i = 0; i < r->nmaps; i++) {
		const struct map_rule *m = &r->maps[i];

		if (m->src.n > n || levels_cmp(m->src.v, m->src.n, v,
		    m->src.n) != 0)
			continue;
		if (best == NULL || m->src.n > best->src.n)
			best = m;
	}
	return (best);
}
