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
 * Look-ups are blocking (dns_lookup_sync), each bounded by the
 * preflight timeout; a resolver that timed out on a domain's MX is not
 * asked for its other records, so a dead resolver costs one timeout per
 * domain.  SPF, DMARC and DKIM are asked of the first resolver.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "ctl_preflight_p.h"
#include "dns.h"
#include "util.h"

#define TTL_WARN	300

/* txt_find - the records of res starting with prefix (case-insensitive);
 * returns how many, the first in *first */
static size_t
txt_find(const struct dns_result *res, const char *prefix, size_t plen,
    const char **first, size_t *flen)
{
	size_t i, n = 0;

	*first = NULL;
	*flen = 0;
	for (i = 0; res != NULL && i < res->count; i++) {
		const struct dns_txt *t = &res->txt[i];

		if (t->len >= plen && strncasecmp((const char *)t->data, prefix,
		    plen) == 0 && (t->len == plen || t->data[plen] == ' ' ||
		    t->data[plen] == ';')) {
			if (n++ == 0) {
				*first = (const char *)t->data;
				*flen = t->len;
			}
		}
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

static const char *
status_text(int st, const struct dns_result *res, char *buf, size_t len)
{
	if (st == DNS_NXDOMAIN)
		return ("no such domain");
	if (st == DNS_NODATA)
		return ("no record");
	snprintf(buf, len, "%s: %s", dns_status_name(st), res && res->why[0] ?
	    res->why : "failed");
	return (buf);
}

static void
printable(char *dst, size_t dlen, const char *src, size_t slen)
{
	size_t i, k = 0;

	for (i = 0; i < slen && k + 1 < dlen; i++)
		dst[k++] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[k] = '\0';
}

static void
check_spf(struct preflight *pf, const char *dom, struct dns_resolver *r)
{
	const struct strlist *want = &pf->cfg->cutover.new_spf;
	struct dns_result *res = NULL;
	const char *first;
	char rec[1024], buf[600], e[200];
	size_t n, flen, i;
	int st;

	if (dns_lookup_sync(r, dom, DNS_TXT, &res, &st) == -1 ||
	    (st != DNS_OK && st != DNS_NODATA)) {
		pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, "SPF", "",
		    status_text(st, res, e, sizeof(e)));
		goto out;
	}
	n = txt_find(st == DNS_OK ? res : NULL, "v=spf1", 6, &first, &flen);
	if (n == 0) {
		pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, "SPF", "",
		    "no SPF record: the new provider's mail fails SPF");
		goto out;
	}
	printable(rec, sizeof(rec), first, flen);
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
		char note[700];

		snprintf(note, sizeof(note), "does not authorize the new "
		    "provider: missing %s", buf);
		pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, "SPF", rec, note);
	} else
		pf_row(pf, PF_T_RECORDS, PF_OK, dom, "SPF", rec,
		    "authorizes the new provider");
out:
	dns_result_free(&res);
}

static void
check_dmarc(struct preflight *pf, const char *dom, struct dns_resolver *r)
{
	struct dns_result *res = NULL;
	const char *first, *p;
	char name[DNS_NAME_MAX + 16], rec[1024], pol[64], e[200];
	size_t n, flen, k;
	int st;

	snprintf(name, sizeof(name), "_dmarc.%s", dom);
	if (dns_lookup_sync(r, name, DNS_TXT, &res, &st) == -1 ||
	    (st != DNS_OK && st != DNS_NODATA && st != DNS_NXDOMAIN)) {
		pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, "DMARC", "",
		    status_text(st, res, e, sizeof(e)));
		goto out;
	}
	n = txt_find(st == DNS_OK ? res : NULL, "v=DMARC1", 8, &first, &flen);
	if (n == 0) {
		pf_row(pf, PF_T_RECORDS, PF_WARN, dom, "DMARC", "",
		    "no DMARC record at _dmarc");
		goto out;
	}
	printable(rec, sizeof(rec), first, flen);
	str_copy(pol, "policy missing", sizeof(pol));
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
	dns_result_free(&res);
}

static void
check_dkim(struct preflight *pf, const char *dom, struct dns_resolver *r)
{
	const struct strlist *sel = &pf->cfg->cutover.new_dkim_selectors;
	struct dns_result *res = NULL;
	char name[DNS_NAME_MAX + 80], what[120], rec[1024], e[200];
	const char *first;
	size_t i, flen;
	int st;

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
		if (dns_lookup_sync(r, name, DNS_TXT, &res, &st) == -1 ||
		    (st != DNS_OK && st != DNS_NODATA && st != DNS_NXDOMAIN)) {
			pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, what, "",
			    status_text(st, res, e, sizeof(e)));
		} else if (st != DNS_OK || res->count == 0) {
			pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, what, "",
			    "selector not published: the new provider's "
			    "signatures will not verify");
		} else {
			first = (const char *)res->txt[0].data;
			flen = res->txt[0].len;
			printable(rec, sizeof(rec), first, flen);
			if (strstr(rec, "p=;") != NULL ||
			    (strlen(rec) >= 2 && strcmp(rec + strlen(rec) - 2,
			    "p=") == 0) || strstr(rec, "p=") == NULL)
				pf_row(pf, PF_T_RECORDS, PF_BLOCK, dom, what,
				    rec, "no key (p= empty: revoked)");
			else
				pf_row(pf, PF_T_RECORDS, PF_OK, dom, what, rec,
				    "published");
		}
		dns_result_free(&res);
	}
}

/* check_mx - one domain on one resolver; -1 when the resolver timed out
 * or failed (its other records are then not asked) */
static int
check_mx(struct preflight *pf, const char *dom, struct dns_resolver *r,
    const char *label)
{
	struct dns_result *res = NULL;
	char mx[600], ttl[32], e[200], note[200];
	enum pf_level lv = PF_OK;
	size_t i;
	int st, rc = 0;

	if (dns_lookup_sync(r, dom, DNS_MX, &res, &st) == -1 ||
	    st == DNS_TEMPFAIL || st == DNS_PERMFAIL) {
		pf_row(pf, PF_T_MX, PF_BLOCK, dom, label, "", "",
		    status_text(st, res, e, sizeof(e)));
		dns_result_free(&res);
		return (-1);
	}
	if (st != DNS_OK) {
		pf_row(pf, PF_T_MX, PF_BLOCK, dom, label, "", "",
		    status_text(st, res, e, sizeof(e)));
		dns_result_free(&res);
		return (0);
	}
	mx[0] = '\0';
	for (i = 0; i < res->count; i++)
		snprintf(mx + strlen(mx), sizeof(mx) - strlen(mx), "%s%u %s",
		    i ? ", " : "", res->mx[i].preference, res->mx[i].host);
	snprintf(ttl, sizeof(ttl), "%u", res->ttl);
	note[0] = '\0';
	if (res->ttl > TTL_WARN) {
		lv = PF_WARN;
		snprintf(note, sizeof(note), "TTL above %d s: lower it at "
		    "least %u s before the switch", TTL_WARN, res->ttl);
	}
	pf_row(pf, PF_T_MX, lv, dom, label, mx, ttl, note);
	dns_result_free(&res);
	return (rc);
}

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
	int *dead;

	if (cfg->cutover.domains.count == 0)
		return;
	r = calloc(nres, sizeof(*r));
	label = calloc(nres, sizeof(*label));
	dead = calloc(nres, sizeof(*dead));
	if (r == NULL || label == NULL || dead == NULL) {
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
		if ((r[i] = dns_resolver_new(NULL, &opt, e, sizeof(e))) ==
		    NULL) {
			pf_row(pf, PF_T_MX, PF_BLOCK, "-", label[i], "", "", e);
			dead[i] = 1;
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
	free(dead);
}
