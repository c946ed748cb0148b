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

/* out_term - append " term" to out at *pos (room is checked by caller) */
static void
out_term(char *out, size_t *pos, const char *term, size_t len)
{
	out[(*pos)++] = ' ';
	memcpy(out + *pos, term, len);
	*pos += len;
	out[*pos] = '\0';
}

enum spf_precheck
spf_record_precheck(const char *rec, char *out, size_t outlen, char *why,
    size_t whylen)
{
	const char *p, *redirect = NULL;
	size_t vlen = sizeof(SPF_VERSION) - 1, pos, rlen = 0, len, n;
	int nredirect = 0, nexp = 0, all = 0, last_is_redirect = 0;

	if (!spf_is_record(rec))
		return (SPF_PRE_KEEP);
	/* First pass: count. */
	for (p = rec + vlen; *p != '\0'; p += len) {
		while (*p == ' ')
			p++;
		len = strcspn(p, " ");
		if (len == 0)
			break;
		last_is_redirect = 0;
		n = modifier_name(p, len);
		if (n > 0 && term_is(p, n, "redirect")) {
			nredirect++;
			redirect = p;
			rlen = len;
			last_is_redirect = 1;
		} else if (n > 0 && term_is(p, n, "exp"))
			nexp++;
		else if (n == 0 && is_all(p, len))
			all = 1;
	}
	if (nredirect > 1) {
		errbuf_set(why, whylen, "more than one redirect= modifier");
		return (SPF_PRE_PERMERROR);
	}
	if (nexp > 1) {
		errbuf_set(why, whylen, "more than one exp= modifier");
		return (SPF_PRE_PERMERROR);
	}
	if (nexp == 0 && (nredirect == 0 || (!all && last_is_redirect)))
		return (SPF_PRE_KEEP);
	if (outlen < strlen(rec) + 1) {
		errbuf_set(why, whylen, "record too long");
		return (SPF_PRE_PERMERROR);
	}
	/* Second pass: copy all but exp= and redirect=, then redirect=. */
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
		out_term(out, &pos, p, len);
	}
	if (redirect != NULL && !all)
		out_term(out, &pos, redirect, rlen);
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
