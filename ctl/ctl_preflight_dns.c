/*
 * ctl_preflight_dns.c - the DNS a cutover depends on, per [cutover]
 * domain:
 *
 *   MX and its TTL from every [cutover] resolver (the system's when none
 *   is set): a TTL above 300 s means caches keep the old MX that long
 *   after the switch, so it is a warning - lower it a TTL ahead;
 *   SPF (the domain's TXT "v=spf1"): present, exactly one, and naming
 *   every [cutover] new_spf term (an "include:", "ip4:", "ip6:", "a",
 *   "mx" term as written, or a bare host meaning "include:host").  The
 *   record's own terms are compared; includes are not expanded;
 *   DMARC (TXT at _dmarc.DOMAIN): present, and its policy;
 *   DKIM: every [cutover] new_dkim_selectors selector published at
 *   SELECTOR._domainkey.DOMAIN with a key (p= not empty).
 *
 * Look-ups run one at a time on the preflight's event loop (dns.h's
 * async path: only there does the resolver's timeout bound a look-up;
 * a blocking one without a loop waits out libunbound's own retries,
 * some 17 s).  Each is bounded by the preflight timeout; a resolver
 * that timed out on a domain's MX is not asked for its other records,
 * so a dead resolver costs one timeout per domain.  SPF, DMARC and DKIM
 * are asked of the first resolver.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "config.h"
#include "ctl_preflight_p.h"
#include "dns.h"
#include "util.h"

#define TTL_WARN	300

/* What a look-up answered, copied out of the callback. */
struct ans {
	int		 done;
	int		 st;		/* enum dns_status */
	uint32_t	 ttl;
	char		 why[128];
	char		 mx[600];	/* "10 a.example, 20 b.example" */
	struct strlist	 txt;		/* printable copies */
};

/* printable - a TXT record (any bytes) as printable ASCII, "?" for the rest */
static void
printable(char *dst, size_t dlen, const char *src, size_t slen)
{
	size_t i, k = 0;

	for (i = 0; i < slen && k + 1 < dlen; i++)
		dst[k++] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[k] = '\0';
}

/* lookup_cb - copy what the look-up answered before the result is freed */
static void
lookup_cb(int status, const struct dns_result *res, void *arg)
{
	struct ans *a = arg;
	char buf[1024];
	size_t i;

	a->done = 1;
	a->st = status;
	a->ttl = res->ttl;
	str_copy(a->why, res->why, sizeof(a->why));
	if (status != DNS_OK)
		return;
	for (i = 0; res->mx != NULL && i < res->count; i++)
		snprintf(a->mx + strlen(a->mx), sizeof(a->mx) - strlen(a->mx),
		    "%s%u %s", i ? ", " : "", res->mx[i].preference,
		    res->mx[i].host);
	for (i = 0; res->txt != NULL && i < res->count; i++) {
		printable(buf, sizeof(buf), (const char *)res->txt[i].data,
		    res->txt[i].len);
		if (strlist_add(&a->txt, buf, strlen(buf)) == -1) {
			a->st = DNS_TEMPFAIL;
			str_copy(a->why, "out of memory", sizeof(a->why));
			return;
		}
	}
}

/* lookup - one look-up on the loop, waited for (the resolver's timeout
 * ends it); the caller clears a->txt */
static void
lookup(struct preflight *pf, struct dns_resolver *r, const char *name,
    enum dns_type type, struct ans *a)
{
	char e[200];

	memset(a, 0, sizeof(*a));
	if (dns_lookup(r, name, type, lookup_cb, a, NULL, e, sizeof(e)) ==
	    -1) {
		a->st = DNS_PERMFAIL;
		str_copy(a->why, e, sizeof(a->why));
		return;
	}
	while (!a->done && event_base_loop(pf->base, EVLOOP_ONCE) == 0)
		;
	if (!a->done) {
		a->st = DNS_TEMPFAIL;
		str_copy(a->why, "event loop failed", sizeof(a->why));
	}
}

/* txt_find - how many of a's TXT records start with the tag prefix
 * (case-insensitive, then a blank, ";" or the end); the first in *first */
static size_t
txt_find(const struct ans *a, const char *prefix, const char **first)
{
	size_t i, n = 0, plen = strlen(prefix);
	const char *t;

	*first = NULL;
	for (i = 0; a->st == DNS_OK && i < a->txt.count; i++) {
		t = a->txt.items[i];
		if (strncasecmp(t, prefix, plen) == 0 && (t[plen] == '\0' ||
		    t[plen] == ' ' || t[plen] == ';') && n++ == 0)
			*first = t;
	}
	return (n);
}

/* spf_has - is term one of the record's terms (qualifier "+" allowed)? */
static int
spf_has(const char *rec, const char *want)
{
	char term[300], *w, *save = NULL, buf[1024];
	const char *t;

	if (strchr(want, ':') == NULL && strchr(want, '=') == NULL &&
	    strcasecmp(want, "a") != 0 && strcasecmp(want, "mx") != 0)
		snprintf(term, sizeof(term), "include:%s", want);
	else
		str_copy(term, want, sizeof(term));
	str_copy(buf, rec, sizeof(buf));
	for (w = strtok_r(buf, " \t", &save); w != NULL;
	    w = strtok_r(NULL, " \t", &save)) {
		t = *w == '+' ? w + 1 : w;
		if (strcasecmp(t, term) == 0)
			return (1);
	}
	return (0);
}

/* status_text - why a look-up gave nothing, for the row */
static const char *
status_text(const struct ans *a, char *buf, size_t len)
{
	if (a->st == DNS_NXDOMAIN)
		return ("no such domain");
	if (a->st == DNS_NODATA)
		return ("no record");
	snprintf(buf, len, "%s: %s", dns_status_name(a->st), a->why[0] ?
	    a->why : "failed");
	return (buf);
}

/* check_spf - the domain's one SPF record names every new_spf term */
static void
check_spf(struct preflight *pf, const char *dom, struct dns_resolver *r)
{
	const struct strlist *want = &pf->cfg->cutover.new_spf;
	struct ans a;
	const char *rec;
	char buf[600], e[200], note[700];
	size_t n, i;

	lookup(pf, r, dom, DNS_TXT, &a);
	if (a.st != DNS_OK && a.st != DNS_NODATA) {
		pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, "SPF", "",
		    status_text(&a, e, sizeof(e)));
		goto out;
	}
	if ((n = txt_find(&a, "v=spf1", &rec)) == 0) {
		pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, "SPF", "",
		    "no SPF record: the new provider's mail fails SPF");
		goto out;
	}
	if (n > 1) {
		pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, "SPF", rec,
		    "more than one SPF record (permerror)");
		goto out;
	}
	if (want->count == 0) {
		pf_row(pf, PF_T_RECORDS, PF_WARN, dom, "SPF", rec,
		    "present; [cutover] new_spf not set: not compared");
		goto out;
	}
	buf[0] = '\0';
	for (i = 0; i < want->count; i++)
		if (!spf_has(rec, want->items[i]))
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
			    "%s%s", buf[0] ? ", " : "", want->items[i]);
	if (buf[0] != '\0') {
		snprintf(note, sizeof(note), "does not authorize the new "
		    "provider: missing %s", buf);
		pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, "SPF", rec, note);
	} else
		pf_row(pf, PF_T_RECORDS, PF_OK, dom, "SPF", rec,
		    "authorizes the new provider");
out:
	strlist_clear(&a.txt);
}

/* check_dmarc - a DMARC record at _dmarc.DOMAIN, and its policy */
static void
check_dmarc(struct preflight *pf, const char *dom, struct dns_resolver *r)
{
	struct ans a;
	const char *rec, *p;
	char name[DNS_NAME_MAX + 16], pol[64], e[200];
	size_t n, k;

	snprintf(name, sizeof(name), "_dmarc.%s", dom);
	lookup(pf, r, name, DNS_TXT, &a);
	if (a.st != DNS_OK && a.st != DNS_NODATA && a.st != DNS_NXDOMAIN) {
		pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, "DMARC", "",
		    status_text(&a, e, sizeof(e)));
		goto out;
	}
	if ((n = txt_find(&a, "v=DMARC1", &rec)) == 0) {
		pf_row(pf, PF_T_RECORDS, PF_WARN, dom, "DMARC", "",
		    "no DMARC record at _dmarc");
		goto out;
	}
	str_copy(pol, "no policy (p=) in the record", sizeof(pol));
	for (p = rec; (p = strcasestr(p, "p=")) != NULL; p += 2)
		if (p == rec || p[-1] == ';' || p[-1] == ' ') {
			for (k = 0; p[2 + k] && p[2 + k] != ';' &&
			    p[2 + k] != ' ' && k < 30; k++)
				;
			snprintf(pol, sizeof(pol), "policy %.*s", (int)k,
			    p + 2);
			break;
		}
	pf_row(pf, PF_T_RECORDS, n > 1 ? PF_WARN : PF_OK, dom, "DMARC", rec,
	    n > 1 ? "more than one DMARC record" : pol);
out:
	strlist_clear(&a.txt);
}

/* key_empty - a DKIM record without a key: no "p=", or "p=" empty */
static int
key_empty(const char *rec)
{
	const char *p;

	for (p = rec; (p = strstr(p, "p=")) != NULL; p += 2)
		if (p == rec || p[-1] == ';' || p[-1] == ' ') {
			p += 2;
			while (*p == ' ')
				p++;
			return (*p == '\0' || *p == ';');
		}
	return (1);
}

/* check_dkim - every new_dkim_selectors selector published with a key */
static void
check_dkim(struct preflight *pf, const char *dom, struct dns_resolver *r)
{
	const struct strlist *sel = &pf->cfg->cutover.new_dkim_selectors;
	char name[DNS_NAME_MAX + 80], what[120], e[200];
	const char *rec;
	struct ans a;
	size_t i;

	if (sel->count == 0) {
		pf_row(pf, PF_T_RECORDS, PF_WARN, dom, "DKIM", "",
		    "[cutover] new_dkim_selectors not set: not checked");
		return;
	}
	for (i = 0; i < sel->count; i++) {
		snprintf(name, sizeof(name), "%s._domainkey.%s",
		    sel->items[i], dom);
		snprintf(what, sizeof(what), "DKIM %s", sel->items[i]);
		if (!dns_name_valid(name)) {
			pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, what, "",
			    "bad selector name");
			continue;
		}
		lookup(pf, r, name, DNS_TXT, &a);
		if (a.st != DNS_OK && a.st != DNS_NODATA &&
		    a.st != DNS_NXDOMAIN)
			pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, what, "",
			    status_text(&a, e, sizeof(e)));
		else if (a.st != DNS_OK || a.txt.count == 0)
			pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, what, "",
			    "selector not published: the new provider's "
			    "signatures will not verify");
		else {
			rec = a.txt.items[0];
			if (key_empty(rec))
				pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, what,
				    rec, "no key (p= empty: revoked)");
			else
				pf_row(pf, PF_T_RECORDS, PF_OK, dom, what, rec,
				    "published");
		}
		strlist_clear(&a.txt);
	}
}

/* check_mx - one domain on one resolver; -1 when the resolver timed out
 * or failed (its other records are then not asked) */
static int
check_mx(struct preflight *pf, const char *dom, struct dns_resolver *r,
    const char *label)
{
	struct ans a;
	char ttl[32], e[200], note[200];
	enum pf_level lv = PF_OK;
	int rc = 0;

	lookup(pf, r, dom, DNS_MX, &a);
	if (a.st != DNS_OK) {
		pf_row(pf, PF_T_MX, PF_BLOCK, dom, label, "", "",
		    status_text(&a, e, sizeof(e)));
		rc = a.st == DNS_TEMPFAIL || a.st == DNS_PERMFAIL ? -1 : 0;
		goto out;
	}
	snprintf(ttl, sizeof(ttl), "%u", a.ttl);
	note[0] = '\0';
	if (a.ttl > TTL_WARN) {
		lv = PF_WARN;
		snprintf(note, sizeof(note), "above %d s: caches may keep "
		    "this answer %u s after the switch; lower the TTL first",
		    TTL_WARN, a.ttl);
	}
	pf_row(pf, PF_T_MX, lv, dom, label, a.mx, ttl, note);
out:
	strlist_clear(&a.txt);
	return (rc);
}

/* pf_dns - MX per resolver, then SPF, DMARC and DKIM, per [cutover] domain */
void
pf_dns(struct preflight *pf)
{
	const struct config *cfg = pf->cfg;
	const struct hostport_list *rl = &cfg->cutover.resolvers;
	size_t nres = rl->count ? rl->count : 1, i, k;
	struct dns_resolver **r;
	struct dns_options opt;
	char (*label)[HOSTPORT_HOSTMAX + 16];
	char e[256];

	if (cfg->cutover.domains.count == 0)
		return;
	r = calloc(nres, sizeof(*r));
	label = calloc(nres, sizeof(*label));
	if (r == NULL || label == NULL) {
		pf_row(pf, PF_T_MX, PF_BLOCK, "-", "-", "", "",
		    "out of memory");
		goto out;
	}
	for (i = 0; i < nres; i++) {
		memset(&opt, 0, sizeof(opt));
		if (rl->count) {
			const struct hostport *h = &rl->items[i];

			snprintf(label[i], sizeof(label[i]), "%s%s%s:%d",
			    h->is_ipv6 ? "[" : "", h->host,
			    h->is_ipv6 ? "]" : "", h->port ? h->port : 53);
			opt.forwarder = label[i];
		} else
			snprintf(label[i], sizeof(label[i]), "system");
		opt.timeout_ms = pf->timeout * 1000;
		if ((r[i] = dns_resolver_new(pf->base, &opt, e, sizeof(e))) ==
		    NULL) {
			pf_row(pf, PF_T_MX, PF_BLOCK, "-", label[i], "", "", e);
		}
	}
	for (k = 0; k < cfg->cutover.domains.count; k++) {
		const char *dom = cfg->cutover.domains.items[k];
		int first_dead = 1;

		for (i = 0; i < nres; i++) {
			if (r[i] == NULL)
				continue;
			if (check_mx(pf, dom, r[i], label[i]) == -1) {
				if (i == 0)
					first_dead = 1;
				continue;
			}
			if (i == 0)
				first_dead = 0;
		}
		if (r[0] == NULL || first_dead) {
			pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, "SPF DMARC DKIM",
			    "", "not checked: the first resolver did not "
			    "answer");
			continue;
		}
		check_spf(pf, dom, r[0]);
		check_dmarc(pf, dom, r[0]);
		check_dkim(pf, dom, r[0]);
	}
out:
	for (i = 0; r != NULL && i < nres; i++)
		dns_resolver_free(&r[i]);
	free(r);
	free(label);
}
