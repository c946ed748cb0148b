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

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

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

static const char *skip_qualifier(const char *term, size_t *len);

/* is_all - the "all" mechanism, with or without a qualifier */
static int
is_all(const char *term, size_t len)
{
	term = skip_qualifier(term, &len);
	return (term_is(term, len, "all"));
}

/* struct wbuf - bounded output: full is set instead of overflowing */
struct wbuf {
	char	*buf;
	size_t	 len;
	size_t	 pos;
	int	 full;
};

static void
wb_put(struct wbuf *w, const char *s, size_t n)
{
	if (w->full || n >= w->len - w->pos) {
		w->full = 1;
		return;
	}
	memcpy(w->buf + w->pos, s, n);
	w->pos += n;
	w->buf[w->pos] = '\0';
}

/* skip_qualifier - past a leading + - ~ ? */
static const char *
skip_qualifier(const char *term, size_t *len)
{
	if (*len > 0 && strchr("+-~?", term[0]) != NULL) {
		(*len)--;
		return (term + 1);
	}
	return (term);
}

/*
 * spec_end - where the domain-spec at s (n bytes) ends for a mechanism
 * that may have a cidr-length after it: the first "/" outside a macro
 * ("%{l/}" has one inside).
 */
static size_t
spec_end(const char *s, size_t n)
{
	size_t i;
	int in_macro = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 1 < n && s[i + 1] == '{')
			in_macro = 1;
		else if (s[i] == '}')
			in_macro = 0;
		else if (s[i] == '/' && !in_macro)
			return (i);
	}
	return (n);
}

/*
 * domain_spec_ok - section 7.1: domain-spec = macro-string domain-end,
 * domain-end = ( "." toplabel [ "." ] ) / macro-expand, toplabel =
 * ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" )
 * alphanum ).  libspf2 checks less ("a:", "a:192.0.2.1" pass it).  The
 * macro-string itself is left to libspf2.
 */
static int
domain_spec_ok(const char *s, size_t n)
{
	size_t i, dot;
	int alpha = 0, dash = 0;

	if (n == 0)
		return (0);
	if (s[n - 1] == '}' || (n >= 2 && s[n - 2] == '%' &&
	    strchr("%_-", s[n - 1]) != NULL))
		return (1);		/* ends in a macro-expand */
	if (s[n - 1] == '.')
		n--;
	for (dot = n; dot > 0 && s[dot - 1] != '.'; dot--)
		;
	if (dot == 0 || dot == n)
		return (0);		/* no "." toplabel */
	for (i = dot; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalpha(c))
			alpha = 1;
		else if (c == '-')
			dash = 1;
		else if (!isdigit(c))
			return (0);
	}
	if (s[dot] == '-' || s[n - 1] == '-')
		return (0);
	return (alpha || dash);
}

/*
 * bad_argument - a DNS mechanism or a redirect=/exp= whose domain-spec
 * is missing or does not end as section 7.1 says ("a:", "mx:/24",
 * "include:", "a:192.0.2.1", "exp=").  name is its length n.
 */
static int
bad_argument(const char *term, size_t len, size_t modifier)
{
	static const char *const opt[] = { "a", "mx", "ptr", NULL };
	static const char *const req[] = { "include", "exists", NULL };
	const char *arg;
	size_t i, n;

	if (modifier > 0)
		return ((term_is(term, modifier, "redirect") ||
		    term_is(term, modifier, "exp")) &&
		    !domain_spec_ok(term + modifier + 1, len - modifier - 1));
	term = skip_qualifier(term, &len);
	for (n = 0; n < len && term[n] != ':' && term[n] != '/'; n++)
		;
	arg = n < len && term[n] == ':' ? term + n + 1 : NULL;
	for (i = 0; req[i] != NULL; i++)
		if (term_is(term, n, req[i]))
			return (arg == NULL || !domain_spec_ok(arg,
			    len - n - 1));
	for (i = 0; opt[i] != NULL; i++)
		if (term_is(term, n, opt[i]))
			return (arg != NULL && !domain_spec_ok(arg,
			    spec_end(arg, len - n - 1)));
	return (0);
}

/*
 * whole_range - "ip4:ADDR/0" or "ip6:ADDR/0" (RFC 7208 5.6 allows a
 * length of 0; libspf2 1.2.10 refuses it): written as the two halves of
 * the address space, which match the same clients.  1 if written.
 */
static int
whole_range(struct wbuf *w, const char *term, size_t len)
{
	const char *t, *halves[2];
	char addr[INET6_ADDRSTRLEN + 1], qual[2] = { 0, 0 };
	unsigned char bin[16];
	size_t n = len, alen;
	int family, i;

	t = skip_qualifier(term, &n);
	if (t != term)
		qual[0] = term[0];
	if (n < 7 || memcmp(t + n - 2, "/0", 2) != 0)
		return (0);
	if (strncasecmp(t, "ip4:", 4) == 0) {
		family = AF_INET;
		halves[0] = "ip4:0.0.0.0/1";
		halves[1] = "ip4:128.0.0.0/1";
	} else if (strncasecmp(t, "ip6:", 4) == 0) {
		family = AF_INET6;
		halves[0] = "ip6:::/1";
		halves[1] = "ip6:8000::/1";
	} else
		return (0);
	alen = n - 6;
	if (alen >= sizeof(addr))
		return (0);
	memcpy(addr, t + 4, alen);
	addr[alen] = '\0';
	if (inet_pton(family, addr, bin) != 1)
		return (0);
	for (i = 0; i < 2; i++) {
		wb_put(w, " ", 1);
		wb_put(w, qual, strlen(qual));
		wb_put(w, halves[i], strlen(halves[i]));
	}
	return (1);
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
 * out_macro_term - append " term" to w, each "%{xNr...}" whose N is at
 * least the number of parts of x's value (env) written without N: the
 * same expansion (all parts), which libspf2 1.2.10 gets wrong (it drops
 * the first character).  Unknown values (env NULL, %{p}) and anything
 * that does not parse are copied as they are; libspf2 judges the syntax.
 */
static void
out_macro_term(struct wbuf *w, const char *term, size_t len,
    const struct spf_macro_env *env)
{
	size_t i = 0, j, dstart, ndig, n;
	const char *value;
	unsigned long num;

	wb_put(w, " ", 1);
	while (i < len) {
		if (term[i] == '%' && i + 1 < len && term[i + 1] != '{') {
			/* "%%", "%_", "%-" (or junk): two characters */
			wb_put(w, term + i, 2);
			i += 2;
			continue;
		}
		/* the letter indexes env->v: ASCII only, whatever the
		 * locale says isalpha() is */
		if (term[i] != '%' || i + 3 >= len || term[i + 1] != '{' ||
		    (term[i + 2] | 0x20) < 'a' || (term[i + 2] | 0x20) > 'z') {
			wb_put(w, term + i++, 1);
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
		value = env != NULL ? env->v[(term[i + 2] | 0x20) - 'a'] :
		    NULL;
		num = ndig > 0 && ndig < 4 ? strtoul(term + i + 3, NULL, 10) :
		    0;
		if (j >= len || term[j] != '}' || value == NULL || num == 0 ||
		    num < parts(value, term + n, j - n)) {
			wb_put(w, term + i++, 1);
			continue;
		}
		/* "%{x" + [r] + delimiters + "}" */
		wb_put(w, term + i, 3);
		wb_put(w, term + dstart, j + 1 - dstart);
		i = j + 1;
	}
}

enum spf_precheck
spf_record_precheck(const char *rec, const struct spf_macro_env *env,
    char *out, size_t outlen, char *why, size_t whylen)
{
	struct wbuf w = { out, outlen, 0, 0 };
	const char *p, *redirect = NULL;
	size_t vlen = sizeof(SPF_VERSION) - 1, rlen = 0, len, n;
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
		if (bad_argument(p, len, n)) {
			errbuf_set(why, whylen, "bad domain-spec in \"%.*s\"",
			    (int)(len > 60 ? 60 : len), p);
			return (SPF_PRE_PERMERROR);
		}
		if (n > 0 && term_is(p, n, "redirect")) {
			nredirect++;
			redirect = p;
			rlen = len;
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
	/* Second pass: copy all but exp= and redirect=, then redirect=. */
	if (outlen == 0) {
		errbuf_set(why, whylen, "record too long");
		return (SPF_PRE_PERMERROR);
	}
	out[0] = '\0';
	wb_put(&w, rec, vlen);
	for (p = rec + vlen; *p != '\0'; p += len) {
		while (*p == ' ')
			p++;
		len = strcspn(p, " ");
		if (len == 0)
			break;
		n = modifier_name(p, len);
		if (n > 0 && (term_is(p, n, "redirect") || term_is(p, n, "exp")))
			continue;
		if (n == 0 && whole_range(&w, p, len))
			continue;
		out_macro_term(&w, p, len, env);
	}
	if (redirect != NULL && !all)
		out_macro_term(&w, redirect, rlen, env);
	if (w.full) {
		errbuf_set(why, whylen, "record too long");
		return (SPF_PRE_PERMERROR);
	}
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
