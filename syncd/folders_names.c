/*
 * folders_names.c - folder names as the plan handles them (folders.h,
 * "Paths"): path levels (a name cut at its server's separator, INBOX
 * spelled "INBOX", joined and compared level by level), and the name
 * set, an open-addressing hash of every destination name the plan
 * knows - listed on the destination (exists, \Noselect) or planned for
 * a source folder - compared exactly or, with
 * FOLDER_OPT_DEST_CASEFOLD, ignoring ASCII case.
 *
 * SECURITY: every buffer is sized from its input; the set grows with
 * the input only (doubling, at most half full).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "folders_p.h"

/* ---- path levels ------------------------------------------------------- */

void
levels_free(struct levels *l)
{
	free(l->buf);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* levels_split - cut s at sep (0: one level); INBOX spelled "INBOX" in
 * the first level when inbox_first is set */
int
levels_split(struct levels *l, const char *s, char sep, int inbox_first)
{
	size_t i, n = 1, len = strlen(s);

	memset(l, 0, sizeof(*l));
	if (sep != '\0')
		for (i = 0; i < len; i++)
			if (s[i] == sep)
				n++;
	if ((l->buf = strdup(s)) == NULL ||
	    (l->v = calloc(n, sizeof(*l->v))) == NULL) {
		levels_free(l);
		return (-1);
	}
	l->v[0] = l->buf;
	l->n = 1;
	if (sep != '\0')
		for (i = 0; i < len; i++)
			if (l->buf[i] == sep) {
				l->buf[i] = '\0';
				l->v[l->n++] = l->buf + i + 1;
			}
	if (inbox_first && strcasecmp(l->v[0], "INBOX") == 0)
		memcpy(l->v[0], "INBOX", 5);
	return (0);
}

/* levels_join - v[0..n) joined with sep into a new string */
char *
levels_join(char *const *v, size_t n, char sep)
{
	size_t i, len = 0;
	char *out, *p;

	for (i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	if ((out = malloc(len + 1)) == NULL)
		return (NULL);
	p = out;
	for (i = 0; i < n; i++) {
		size_t k = strlen(v[i]);

		if (i > 0)
			*p++ = sep;
		memcpy(p, v[i], k);
		p += k;
	}
	*p = '\0';
	return (out);
}

/* levels_cmp - order of two level vectors: level by level, then depth */
int
levels_cmp(char *const *a, size_t na, char *const *b, size_t nb)
{
	size_t i;
	int c;

	for (i = 0; i < na && i < nb; i++)
		if ((c = strcmp(a[i], b[i])) != 0)
			return (c);
	return (na < nb ? -1 : na > nb);
}

/* ---- the destination's names ------------------------------------------- */

static uint64_t
name_hash(const char *s, int fold)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (fold && c >= 'A' && c <= 'Z')
			c += 32;
		h = (h ^ c) * 1099511628211ULL;
	}
	return (h);
}

void
nameset_free(struct nameset *ns)
{
	size_t i;

	for (i = 0; i < ns->cap; i++)
		free(ns->slots[i].key);
	free(ns->slots);
	memset(ns, 0, sizeof(*ns));
}

/* nameset_find - the slot of name, or the free slot where it would go */
static struct slot *
nameset_find(const struct nameset *ns, const char *name)
{
	size_t i = (size_t)name_hash(name, ns->fold) & (ns->cap - 1);

	while (ns->slots[i].key != NULL) {
		if ((ns->fold ? strcasecmp(ns->slots[i].key, name) :
		    strcmp(ns->slots[i].key, name)) == 0)
			return (&ns->slots[i]);
		i = (i + 1) & (ns->cap - 1);
	}
	return (&ns->slots[i]);
}

/* nameset_get - the slot of name, added when missing; NULL: no memory */
struct slot *
nameset_get(struct nameset *ns, const char *name)
{
	struct slot *s, *old;
	size_t oldcap, i;

	if (ns->cap == 0 || (ns->count + 1) * 2 > ns->cap) {
		old = ns->slots;
		oldcap = ns->cap;
		ns->cap = oldcap ? oldcap * 2 : 64;
		if ((ns->slots = calloc(ns->cap, sizeof(*s))) == NULL) {
			ns->slots = old;
			ns->cap = oldcap;
			return (NULL);
		}
		for (i = 0; i < oldcap; i++)
			if (old[i].key != NULL)
				*nameset_find(ns, old[i].key) = old[i];
		free(old);
	}
	s = nameset_find(ns, name);
	if (s->key == NULL) {
		if ((s->key = strdup(name)) == NULL)
			return (NULL);
		ns->count++;
	}
	return (s);
}
