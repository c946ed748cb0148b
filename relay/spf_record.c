/*
 * spf_record.c - the RFC 7208 rules libspf2 1.2.10 misses, applied in
 * relay/spf's DNS layer (see spf_p.h): the record pre-check of section 6
 * and the look-up limits of section 4.6.4.
 *
 * SECURITY: the records come from the network.  The pre-check only
 * splits on spaces and compares names; it never writes past out[outlen]
 * and never makes a record more permissive than libspf2 would read it
 * (it removes modifiers that the RFC says to ignore, or moves one).
 */

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "spf_p.h"
#include "util.h"

#define SPF_VERSION	"v=spf1"

int
spf_is_record(const char *txt)
{
	size_t l = sizeof(SPF_VERSION) - 1;

	return (strncasecmp(txt, SPF_VERSION, l) == 0 &&
	    (txt[l] == ' ' || txt[l] == '\0'));
}

/*
 * modifier_name - the length of the name when term is a modifier
 * ("name=...", name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )), else 0
 */
static size_t
modifier_name(const char *term, size_t len)
{
	size_t i;

	if (len == 0 || !isalpha((unsigned char)term[0]))
		return (0);
	for (i = 1; i < len; i++) {
		unsigned char c = (unsigned char)term[i];

		if (c == '=')
			return (i);
		if (!isalnum(c) && c != '-' && c != '_' && c != '.')
			return (0);
	}
	return (0);
}

static int
term_is(const char *term, size_t len, const char *name)
{
	return (strlen(name) == len && strncasecmp(term, name, len) == 0);
}

/* is_all - the "all" mechanism, with or without a qualifier */
static int
is_all(const char *term, size_t len)
{
	if (len > 0 && strchr("+-~?", term[0]) != NULL) {
		term++;
		len--;
	}
	return (term_is(term, len, "all"));
}

/*
 * empty_argument - a mechanism with ":" and no domain-spec or address
 * after it ("a:", "mx:/24", "include:"): a syntax error (section 12's
 * ABNF) that libspf2 reads as the mechanism without argument.
 */
static int
empty_argument(const char *term, size_t len)
{
	static const char *const mech[] = { "a", "mx", "ptr", "include",
	    "exists", "ip4", "ip6", NULL };
	const char *colon;
	size_t i, n;

	if (len > 0 && strchr("+-~?", term[0]) != NULL) {
		term++;
		len--;
	}
	if ((colon = memchr(term, ':', len)) == NULL)
		return (0);
	n = (size_t)(colon - term);
	for (i = 0; mech[i] != NULL; i++)
		if (term_is(term, n, mech[i]))
			return (n + 1 == len || colon[1] == '/');
	return (0);
}

/* parts - how many parts delims (default ".") cut value into */
static size_t
parts(const char *value, const char *delims, size_t ndelims)
{
	size_t n = 1;

	for (; *value != '\0'; value++)
		if (ndelims == 0 ? *value == '.' :
		    memchr(delims, *value, ndelims) != NULL)
			n++;
	return (n);
}

/*
 * out_macro_term - append term to out at *pos, each "%{xNr...}" whose
 * N is at least the number of parts of x's value (env) written without
 * N: the same expansion (all parts), which libspf2 1.2.10 gets wrong
 * (it drops the first character).  Unknown values (env NULL, %{p}) and
 * anything that does not parse are copied as they are; libspf2 judges
 * the syntax.
 */
static void
out_macro_term(char *out, size_t *pos, const char *term, size_t len,
    const struct spf_macro_env *env)
{
	size_t i = 0, j, dstart, ndig, n;
	const char *value;
	unsigned long num;

	out[(*pos)++] = ' ';
	while (i < len) {
		if (term[i] == '%' && i + 1 < len && term[i + 1] != '{') {
			/* "%%", "%_", "%-" (or junk): two characters */
			out[(*pos)++] = term[i++];
			out[(*pos)++] = term[i++];
			continue;
		}
		if (term[i] != '%' || i + 3 >= len || term[i + 1] != '{' ||
		    !isalpha((unsigned char)term[i + 2])) {
			out[(*pos)++] = term[i++];
			continue;
		}
		j = i + 3;
		for (ndig = 0; j < len && isdigit((unsigned char)term[j]); j++)
			ndig++;
		dstart = j;
		if (j < len && (term[j] == 'r' || term[j] == 'R'))
			j++;
		n = j;		/* delimiters start here */
		while (j < len && strchr(".-+,/_=", term[j]) != NULL)
			j++;
		value = env != NULL ? env->v[tolower((unsigned char)
		    term[i + 2]) - 'a'] : NULL;
		num = ndig > 0 && ndig < 4 ? strtoul(term + i + 3, NULL, 10) :
		    0;
		if (j >= len || term[j] != '}' || value == NULL || num == 0 ||
		    num < parts(value, term + n, j - n)) {
			out[(*pos)++] = term[i++];
			continue;
		}
		/* "%{x" + [r] + delimiters + "}" */
		memcpy(out + *pos, term + i, 3);
		*pos += 3;
		memcpy(out + *pos, term + dstart, j + 1 - dstart);
		*pos += j + 1 - dstart;
		i = j + 1;
	}
	out[*pos] = '\0';
}

enum spf_precheck
spf_record_precheck(const char *rec, const struct spf_macro_env *env,
    char *out, size_t outlen, char *why, size_t whylen)
{
	const char *p, *redirect = NULL;
	size_t vlen = sizeof(SPF_VERSION) - 1, pos, rlen = 0, len, n;
	int nredirect = 0, nexp = 0, all = 0;

	if (!spf_is_record(rec))
		return (SPF_PRE_KEEP);
	/* First pass: count. */
	for (p = rec + vlen; *p != '\0'; p += len) {
		while (*p == ' ')
			p++;
		len = strcspn(p, " ");
		if (len == 0)
			break;
		n = modifier_name(p, len);
		if (n > 0 && term_is(p, n, "redirect")) {
			nredirect++;
			redirect = p;
			rlen = len;
		} else if (n > 0 && term_is(p, n, "exp"))
			nexp++;
		else if (n == 0 && is_all(p, len))
			all = 1;
		else if (n == 0 && empty_argument(p, len)) {
			errbuf_set(why, whylen, "no argument after \"%.*s\"",
			    (int)(len > 40 ? 40 : len), p);
			return (SPF_PRE_PERMERROR);
		}
	}
	if (nredirect > 1) {
		errbuf_set(why, whylen, "more than one redirect= modifier");
		return (SPF_PRE_PERMERROR);
	}
	if (nexp > 1) {
		errbuf_set(why, whylen, "more than one exp= modifier");
		return (SPF_PRE_PERMERROR);
	}
	if (outlen < strlen(rec) + 1) {
		errbuf_set(why, whylen, "record too long");
		return (SPF_PRE_PERMERROR);
	}
	/* Second pass: copy all but exp= and redirect=, then redirect=.
	 * Nothing written is longer than what it was read from. */
	memcpy(out, rec, vlen);
	out[vlen] = '\0';
	pos = vlen;
	for (p = rec + vlen; *p != '\0'; p += len) {
		while (*p == ' ')
			p++;
		len = strcspn(p, " ");
		if (len == 0)
			break;
		n = modifier_name(p, len);
		if (n > 0 && (term_is(p, n, "redirect") || term_is(p, n, "exp")))
			continue;
		out_macro_term(out, &pos, p, len, env);
	}
	if (redirect != NULL && !all)
		out_macro_term(out, &pos, redirect, rlen, env);
	if (strcmp(out, rec) == 0)
		return (SPF_PRE_KEEP);
	return (SPF_PRE_REWRITTEN);
}

int
spf_count_query(struct spf_count *c, enum dns_type type, const char *name,
    int cached, char *why, size_t whylen)
{
	if (type == DNS_TXT && !c->txt_seen) {
		c->txt_seen = 1;	/* the check's own record */
		return (0);
	}
	if ((type == DNS_A || type == DNS_AAAA) && c->ifollow < c->nfollow &&
	    strcasecmp(name, c->follow[c->ifollow]) == 0) {
		c->ifollow++;		/* an address of an MX or PTR name */
		return (0);
	}
	c->nfollow = c->ifollow = 0;
	if (type == DNS_PTR && !cached)
		return (0);		/* %{p}: part of another term */
	if (++c->terms > SPF_TERMS_MAX) {
		errbuf_set(why, whylen, "more than %d DNS-querying terms",
		    SPF_TERMS_MAX);
		return (-1);
	}
	return (0);
}

int
spf_count_answer(struct spf_count *c, enum dns_type type, int status,
    const struct dns_result *res, char *why, size_t whylen)
{
	size_t i;

	if (type != DNS_TXT && (status == DNS_NXDOMAIN ||
	    status == DNS_NODATA) && ++c->voids > SPF_VOIDS_MAX) {
		errbuf_set(why, whylen, "more than %d void look-ups",
		    SPF_VOIDS_MAX);
		return (-1);
	}
	if (status != DNS_OK || res == NULL)
		return (0);
	if (type == DNS_MX) {
		if (res->count > SPF_NAMES_MAX) {
			errbuf_set(why, whylen, "more than %d MX records for %s",
			    SPF_NAMES_MAX, res->name);
			return (-1);
		}
		for (i = 0; i < res->count; i++)
			str_copy(c->follow[i], res->mx[i].host,
			    sizeof(c->follow[i]));
		c->nfollow = res->count;
		c->ifollow = 0;
	} else if (type == DNS_PTR) {
		for (i = 0; i < res->count && i < SPF_NAMES_MAX; i++)
			str_copy(c->follow[i], res->ptr[i].host,
			    sizeof(c->follow[i]));
		c->nfollow = i;
		c->ifollow = 0;
	}
	return (0);
}
