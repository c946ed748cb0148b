/*
 * test_spf.c - relay/spf without a DNS server.
 *
 *   zone     libspf2's own SPF_dns_zone layer filled by the test: every
 *            verdict (pass, fail, softfail, neutral, none, permerror,
 *            temperror incl. libspf2's "invalid" quirk), include: chains,
 *            a/mx mechanisms, the HELO identity for <>, IPv6, loopback.
 *   fake     our own DNS layer (the one production uses) fed by a fake
 *            resolver function: the status mapping (NXDOMAIN, NODATA,
 *            TEMPFAIL, PERMFAIL), TXT/A/AAAA/MX answers, no look-up for
 *            an address-literal HELO, and a libspf2 error (our layer
 *            returning NULL) that must end as temperror, logged, with no
 *            abort().
 *   life     the worker pool: cancel a queued and a running check, the
 *            per-check time budget, freeing the checker with checks in
 *            flight and from inside a callback, argument errors.
 *   authres  the RFC 8601 text: quoting, comment escaping, truncation.
 *   rules    spf_record.c's record pre-check and look-up tallies (RFC
 *            7208 sections 4.6.4 and 6), alone and through the fake
 *            rows (redirect beside all, duplicate modifiers, void
 *            look-ups, the 10-term limit over includes, ptr and %{p}).
 * Real DNS (dnsmasq) is tests/integration/test_spf.sh.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netdb.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <spf2/spf.h>
#include <spf2/spf_dns_zone.h>

#include "dns.h"
#include "log.h"
#include "spf.h"
#include "spf_p.h"

/* --- running checks ------------------------------------------------------ */

struct got {
	int			 calls;
	struct spf_result	 r;
	struct event_base	*base;
	int			 stop_after;	/* loopbreak after this many */
};

static void
got_cb(const struct spf_result *r, void *arg)
{
	struct got *g = arg;

	g->calls++;
	g->r = *r;
	if (g->calls >= g->stop_after)
		event_base_loopbreak(g->base);
}

static void
give_up_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* run_loop - dispatch until loopbreak or ms pass; 1 if it timed out */
static int
run_loop(struct event_base *base, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *t = evtimer_new(base, give_up_cb, base);
	int timed_out;

	evtimer_add(t, &tv);
	event_base_dispatch(base);
	timed_out = !evtimer_pending(t, NULL);
	event_free(t);
	return (timed_out);
}

static void
set_addr(struct sockaddr_storage *ss, const char *ip)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
}

/* check_one - one spf_check, run to its callback; fills *r */
static void
check_one(struct spf_checker *chk, struct event_base *base, const char *ip,
    const char *helo, const char *from, struct spf_result *r)
{
	struct sockaddr_storage ss;
	struct got g = { 0, { 0 }, base, 1 };
	uint64_t id;

	set_addr(&ss, ip);
	assert_int_equal(spf_check(chk, (struct sockaddr *)&ss, helo, from,
	    got_cb, &g, &id), 0);
	assert_int_equal(spf_pending(chk), 1);
	assert_int_equal(run_loop(base, 10000), 0);
	assert_int_equal(g.calls, 1);
	assert_int_equal(spf_pending(chk), 0);
	*r = g.r;
}

/* --- rows -------------------------------------------------------------- */

struct row {
	const char		*what;
	const char		*ip;
	const char		*helo;
	const char		*from;
	enum spf_verdict	 want;
	const char		*authres;	/* NULL: not compared */
	const char		*explain;	/* substring; NULL: not checked */
};

static void
run_rows(struct spf_checker *chk, struct event_base *base,
    const struct row *rows, size_t n)
{
	struct spf_result r;
	char ar[600];
	size_t i;
	int bad = 0;

	for (i = 0; i < n; i++) {
		const struct row *w = &rows[i];

		check_one(chk, base, w->ip, w->helo, w->from, &r);
		assert_true(spf_authres(&r, ar, sizeof(ar)) > 0);
		if (getenv("TEST_SPF_VERBOSE") != NULL)
			printf("# %zu %s: %s\n", i, w->what, ar);
		if (r.verdict != w->want) {
			print_error("row %zu (%s): verdict %s, want %s [%s]\n",
			    i, w->what, spf_verdict_name(r.verdict),
			    spf_verdict_name(w->want), ar);
			bad++;
			continue;
		}
		if (w->authres != NULL && strcmp(ar, w->authres) != 0) {
			print_error("row %zu (%s): A-R\n  got  %s\n  want %s\n",
			    i, w->what, ar, w->authres);
			bad++;
		}
		if (w->explain != NULL &&
		    strstr(r.explanation, w->explain) == NULL) {
			print_error("row %zu (%s): explanation \"%s\" lacks "
			    "\"%s\"\n", i, w->what, r.explanation, w->explain);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* --- libspf2's zone layer ----------------------------------------------- */

struct zone_rec {
	const char	*name;
	ns_type		 type;
	int		 herrno;
	const char	*data;
};

static const struct zone_rec zone_recs[] = {
	{ "example.test", ns_t_txt, NETDB_SUCCESS,
	    "v=spf1 ip4:192.0.2.0/24 -all" },
	{ "soft.test", ns_t_txt, NETDB_SUCCESS,
	    "v=spf1 ip4:192.0.2.0/24 ~all" },
	{ "neutral.test", ns_t_txt, NETDB_SUCCESS, "v=spf1 ?all" },
	{ "default.test", ns_t_txt, NETDB_SUCCESS, "v=spf1 ip4:192.0.2.1" },
	{ "txtonly.test", ns_t_txt, NETDB_SUCCESS, "google-site-verification=x" },
	{ "two.test", ns_t_txt, NETDB_SUCCESS, "v=spf1 -all" },
	{ "two.test", ns_t_txt, NETDB_SUCCESS, "v=spf1 +all" },
	{ "syntax.test", ns_t_txt, NETDB_SUCCESS, "v=spf1 bogus:x.test -all" },
	{ "badip.test", ns_t_txt, NETDB_SUCCESS, "v=spf1 ip4:300.1.1.1 -all" },
	{ "inc.test", ns_t_txt, NETDB_SUCCESS,
	    "v=spf1 include:_spf.inc.test -all" },
	{ "_spf.inc.test", ns_t_txt, NETDB_SUCCESS,
	    "v=spf1 include:_spf2.inc.test ip4:203.0.113.0/25 -all" },
	{ "_spf2.inc.test", ns_t_txt, NETDB_SUCCESS,
	    "v=spf1 ip4:203.0.113.200 -all" },
	{ "incnone.test", ns_t_txt, NETDB_SUCCESS,
	    "v=spf1 include:nxdomain.test -all" },
	{ "mx.test", ns_t_txt, NETDB_SUCCESS, "v=spf1 mx -all" },
	{ "mx.test", ns_t_mx, NETDB_SUCCESS, "10 mail.mx.test" },
	{ "mail.mx.test", ns_t_a, NETDB_SUCCESS, "198.51.100.25" },
	{ "a.test", ns_t_txt, NETDB_SUCCESS,
	    "v=spf1 a a:host.a.test/28 -all" },
	{ "a.test", ns_t_a, NETDB_SUCCESS, "198.51.100.30" },
	{ "a.test", ns_t_aaaa, NETDB_SUCCESS, "2001:db8::30" },
	{ "host.a.test", ns_t_a, NETDB_SUCCESS, "198.51.100.64" },
	{ "redir.test", ns_t_txt, NETDB_SUCCESS, "v=spf1 redirect=example.test" },
	{ "mta.helo.test", ns_t_txt, NETDB_SUCCESS,
	    "v=spf1 ip4:192.0.2.0/24 -all" },
	{ "lo.test", ns_t_txt, NETDB_SUCCESS, "v=spf1 ip4:127.0.0.1 -all" },
	/* temporary failures (SERVFAIL, timeout) */
	{ "temp.test", ns_t_any, TRY_AGAIN, NULL },
	{ "inctemp.test", ns_t_txt, NETDB_SUCCESS,
	    "v=spf1 include:temp.test -all" },
	{ "atemp.test", ns_t_txt, NETDB_SUCCESS, "v=spf1 a:temp.test -all" },
	{ "mxtemp.test", ns_t_txt, NETDB_SUCCESS, "v=spf1 mx:temp.test -all" },
};

static const struct row zone_rows[] = {
	{ "pass", "192.0.2.10", "mta.example.test", "user@example.test",
	    SPF_VERDICT_PASS,
	    "spf=pass (domain of user@example.test designates 192.0.2.10 as "
	    "permitted sender) smtp.mailfrom=example.test", NULL },
	{ "fail", "198.51.100.1", "mta.example.test", "user@example.test",
	    SPF_VERDICT_FAIL,
	    "spf=fail (domain of user@example.test does not designate "
	    "198.51.100.1 as permitted sender) smtp.mailfrom=example.test",
	    NULL },
	{ "domain case", "192.0.2.10", "x", "User@EXAMPLE.test",
	    SPF_VERDICT_PASS, NULL, NULL },
	{ "softfail", "198.51.100.1", "h.test", "a@soft.test",
	    SPF_VERDICT_SOFTFAIL, NULL, "transitioning domain of a@soft.test" },
	{ "neutral", "198.51.100.1", "h.test", "a@neutral.test",
	    SPF_VERDICT_NEUTRAL,
	    "spf=neutral (198.51.100.1 is neither permitted nor denied by "
	    "domain of a@neutral.test) smtp.mailfrom=neutral.test", NULL },
	{ "no match, no all: neutral", "198.51.100.1", "h.test",
	    "a@default.test", SPF_VERDICT_NEUTRAL, NULL, NULL },
	{ "none: no such domain", "192.0.2.10", "h.test", "a@nxdomain.test",
	    SPF_VERDICT_NONE,
	    "spf=none (domain of a@nxdomain.test does not publish an SPF "
	    "record) smtp.mailfrom=nxdomain.test", NULL },
	{ "none: TXT but no SPF", "192.0.2.10", "h.test", "a@txtonly.test",
	    SPF_VERDICT_NONE, NULL, NULL },
	{ "permerror: two records", "192.0.2.10", "h.test", "a@two.test",
	    SPF_VERDICT_PERMERROR, NULL, "permanent error" },
	{ "permerror: unknown mechanism", "192.0.2.10", "h.test",
	    "a@syntax.test", SPF_VERDICT_PERMERROR, NULL, "permanent error" },
	{ "permerror: bad ip4", "192.0.2.10", "h.test", "a@badip.test",
	    SPF_VERDICT_PERMERROR, NULL, NULL },
	{ "include chain: inner pass", "203.0.113.200", "h.test", "a@inc.test",
	    SPF_VERDICT_PASS, NULL, NULL },
	{ "include chain: middle pass", "203.0.113.5", "h.test", "a@inc.test",
	    SPF_VERDICT_PASS, NULL, NULL },
	{ "include chain: fail", "203.0.113.130", "h.test", "a@inc.test",
	    SPF_VERDICT_FAIL, NULL, NULL },
	{ "include of a missing domain: permerror", "192.0.2.1", "h.test",
	    "a@incnone.test", SPF_VERDICT_PERMERROR, NULL, NULL },
	{ "redirect", "192.0.2.10", "h.test", "a@redir.test",
	    SPF_VERDICT_PASS, NULL, NULL },
	{ "mx", "198.51.100.25", "h.test", "a@mx.test", SPF_VERDICT_PASS,
	    NULL, NULL },
	{ "mx: other ip", "198.51.100.26", "h.test", "a@mx.test",
	    SPF_VERDICT_FAIL, NULL, NULL },
	{ "a", "198.51.100.30", "h.test", "a@a.test", SPF_VERDICT_PASS,
	    NULL, NULL },
	{ "a:host/28", "198.51.100.70", "h.test", "a@a.test", SPF_VERDICT_PASS,
	    NULL, NULL },
	{ "a: outside /28", "198.51.100.80", "h.test", "a@a.test",
	    SPF_VERDICT_FAIL, NULL, NULL },
	{ "a: IPv6 client, AAAA", "2001:db8::30", "h.test", "a@a.test",
	    SPF_VERDICT_PASS,
	    "spf=pass (domain of a@a.test designates 2001:db8::30 as "
	    "permitted sender) smtp.mailfrom=a.test", NULL },
	{ "IPv4-mapped IPv6 is IPv4", "::ffff:192.0.2.10", "h.test",
	    "a@example.test", SPF_VERDICT_PASS, NULL, "192.0.2.10 as" },
	{ "<>: the HELO identity", "192.0.2.10", "mta.helo.test", "",
	    SPF_VERDICT_PASS,
	    "spf=pass (domain of mta.helo.test designates 192.0.2.10 as "
	    "permitted sender) smtp.helo=mta.helo.test", NULL },
	{ "<>: HELO fails", "198.51.100.1", "mta.helo.test", "",
	    SPF_VERDICT_FAIL, NULL, NULL },
	{ "<>: address-literal HELO", "192.0.2.10", "[192.0.2.10]", "",
	    SPF_VERDICT_NONE,
	    "spf=none (HELO is not a domain name that can publish SPF) "
	    "smtp.helo=\"[192.0.2.10]\"", NULL },
	{ "<>: empty HELO", "192.0.2.10", "", "", SPF_VERDICT_NONE, NULL,
	    NULL },
	{ "sender domain is one label", "192.0.2.10", "h.test", "a@localhost",
	    SPF_VERDICT_NONE, NULL, NULL },
	{ "sender domain is a literal", "192.0.2.10", "h.test",
	    "a@[192.0.2.10]", SPF_VERDICT_NONE, NULL, NULL },
	{ "loopback gets no free pass", "127.0.0.1", "h.test",
	    "a@example.test", SPF_VERDICT_FAIL, NULL, NULL },
	{ "loopback listed", "127.0.0.1", "h.test", "a@lo.test",
	    SPF_VERDICT_PASS, NULL, NULL },
	/* libspf2 answers "invalid" with no header here: temperror */
	{ "temperror: sender domain SERVFAIL", "192.0.2.10", "h.test",
	    "a@temp.test", SPF_VERDICT_TEMPERROR,
	    "spf=temperror (temporary error checking a@temp.test: DNS "
	    "failure) smtp.mailfrom=temp.test", NULL },
	{ "temperror: include SERVFAIL", "192.0.2.10", "h.test",
	    "a@inctemp.test", SPF_VERDICT_TEMPERROR, NULL, NULL },
	{ "temperror: a: SERVFAIL", "192.0.2.10", "h.test", "a@atemp.test",
	    SPF_VERDICT_TEMPERROR, NULL, NULL },
	{ "temperror: mx: SERVFAIL", "192.0.2.10", "h.test", "a@mxtemp.test",
	    SPF_VERDICT_TEMPERROR, NULL, NULL },
	{ "temperror: HELO SERVFAIL", "192.0.2.10", "temp.test", "",
	    SPF_VERDICT_TEMPERROR, NULL, NULL },
};

struct fixture {
	struct event_base	*base;
	struct spf_checker	*chk;
};

static void
test_zone_verdicts(void **state)
{
	struct fixture f = { 0 };
	SPF_dns_server_t *zone;
	char err[256];
	size_t i;

	(void)state;
	f.base = event_base_new();
	assert_non_null(f.base);
	zone = SPF_dns_zone_new(NULL, "test-zone", 0);
	assert_non_null(zone);
	for (i = 0; i < sizeof(zone_recs) / sizeof(zone_recs[0]); i++) {
		const struct zone_rec *z = &zone_recs[i];

		assert_int_equal(SPF_dns_zone_add_str(zone, z->name, z->type,
		    z->herrno, z->data), SPF_E_SUCCESS);
	}
	assert_int_equal(spf_checker_new_with(&f.chk, f.base, NULL, NULL, zone,
	    3, "oldmx.example.net", err, sizeof(err)), 0);
	run_rows(f.chk, f.base, zone_rows,
	    sizeof(zone_rows) / sizeof(zone_rows[0]));
	spf_checker_free(&f.chk);
	assert_null(f.chk);
	event_base_free(f.base);
}

/* --- our DNS layer over a fake resolver ---------------------------------- */

struct fake_rec {
	const char	*name;
	enum dns_type	 type;
	int		 status;	/* enum dns_status, or -1: return -1 */
	const char	*data[12];	/* TXT strings, addresses, "pref host",
					 * PTR names */
	int		 delay_ms;
};

static const struct fake_rec fake_recs[] = {
	{ "ok.test", DNS_TXT, DNS_OK, { "v=spf1 a mx:mx.ok.test "
	    "ip6:2001:db8:1::/48 -all" }, 0 },
	{ "ok.test", DNS_A, DNS_OK, { "192.0.2.1", "192.0.2.2" }, 0 },
	{ "ok.test", DNS_AAAA, DNS_OK, { "2001:db8::1" }, 0 },
	{ "mx.ok.test", DNS_MX, DNS_OK, { "10 mx1.ok.test", "20 mx2.ok.test" },
	    0 },
	{ "mx1.ok.test", DNS_A, DNS_NODATA, { NULL }, 0 },
	{ "mx2.ok.test", DNS_A, DNS_OK, { "198.51.100.2" }, 0 },
	{ "mx2.ok.test", DNS_AAAA, DNS_OK, { "2001:db8:2::2" }, 0 },
	{ "nodata.test", DNS_TXT, DNS_NODATA, { NULL }, 0 },
	{ "servfail.test", DNS_TXT, DNS_TEMPFAIL, { NULL }, 0 },
	{ "garbled.test", DNS_TXT, DNS_PERMFAIL, { NULL }, 0 },
	{ "mxfail.test", DNS_TXT, DNS_OK, { "v=spf1 mx -all" }, 0 },
	{ "mxfail.test", DNS_MX, DNS_OK, { "10 mx.mxfail.test" }, 0 },
	{ "mx.mxfail.test", DNS_A, DNS_TEMPFAIL, { NULL }, 0 },
	{ "incslow.test", DNS_TXT, DNS_OK, { "v=spf1 include:slow.test "
	    "-all" }, 0 },
	{ "slow.test", DNS_TXT, DNS_TEMPFAIL, { NULL }, 300 },
	{ "chain.test", DNS_TXT, DNS_OK, { "v=spf1 a:s1.test a:s2.test "
	    "a:s3.test a:s4.test -all" }, 0 },
	{ "s1.test", DNS_A, DNS_OK, { "10.0.0.1" }, 150 },
	{ "s2.test", DNS_A, DNS_OK, { "10.0.0.1" }, 150 },
	{ "s3.test", DNS_A, DNS_OK, { "10.0.0.1" }, 150 },
	{ "s4.test", DNS_A, DNS_OK, { "10.0.0.1" }, 150 },
	{ "gate.test", DNS_TXT, DNS_NODATA, { NULL }, -1 },
	{ "oom.test", DNS_TXT, -1, { NULL }, 0 },
	{ "nul.test", DNS_TXT, DNS_OK, { "v=spf1 +all\x01" }, 0 },
	{ "exp.test", DNS_TXT, DNS_OK, { "v=spf1 -all exp=why.exp.test" }, 0 },
	{ "why.exp.test", DNS_TXT, DNS_TEMPFAIL, { NULL }, 0 },
	{ "ptr.test", DNS_TXT, DNS_OK, { "v=spf1 ptr -all" }, 0 },
	{ "macro.test", DNS_TXT, DNS_OK, { "v=spf1 exists:%{i}.%{p}.e.test "
	    "-all" }, 0 },
	{ "192.0.2.1.unknown.e.test", DNS_A, DNS_OK, { "127.0.0.2" }, 0 },
	{ "helomacro.test", DNS_TXT, DNS_OK, { "v=spf1 exists:%{h}.e.test "
	    "-all" }, 0 },
	{ "unknown.e.test", DNS_A, DNS_OK, { "127.0.0.2" }, 0 },
	/* RFC 7208 rules our layer adds to libspf2 (spf_p.h) */
	{ "redirall.test", DNS_TXT, DNS_OK, { "v=spf1 ip4:192.0.2.1 "
	    "redirect=open.test -all" }, 0 },
	{ "open.test", DNS_TXT, DNS_OK, { "v=spf1 +all" }, 0 },
	{ "redirfirst.test", DNS_TXT, DNS_OK, { "v=spf1 redirect=closed.test "
	    "ip4:192.0.2.1" }, 0 },
	{ "closed.test", DNS_TXT, DNS_OK, { "v=spf1 -all" }, 0 },
	{ "tworedir.test", DNS_TXT, DNS_OK, { "v=spf1 redirect=open.test "
	    "redirect=open.test" }, 0 },
	{ "twoexp.test", DNS_TXT, DNS_OK, { "v=spf1 ip4:192.0.2.1 "
	    "exp=e1.test exp=e2.test -all" }, 0 },
	{ "inctwoexp.test", DNS_TXT, DNS_OK, { "v=spf1 ip4:192.0.2.1 "
	    "include:twoexp.test -all" }, 0 },
	{ "expsrv.test", DNS_TXT, DNS_OK, { "v=spf1 a:v1.test a:v2.test "
	    "-all exp=v3.test" }, 0 },
	{ "void2.test", DNS_TXT, DNS_OK, { "v=spf1 a:v1.test mx:v2.test "
	    "+all" }, 0 },
	{ "void3.test", DNS_TXT, DNS_OK, { "v=spf1 a:v1.test mx:v2.test "
	    "exists:v3.test +all" }, 0 },
	{ "v2.test", DNS_A, DNS_OK, { "10.0.0.1" }, 0 },
	{ "ptrok.test", DNS_TXT, DNS_OK, { "v=spf1 ptr:good.test -all" },
	    0 },
	{ "5.2.0.192.in-addr.arpa", DNS_PTR, DNS_OK, { "host.bad.test",
	    "host.good.test" }, 0 },
	{ "6.2.0.192.in-addr.arpa", DNS_PTR, DNS_OK, { "host.good.test" },
	    0 },
	{ "7.2.0.192.in-addr.arpa", DNS_PTR, DNS_OK, { "h.test", "h.test",
	    "h.test", "h.test", "h.test", "h.test", "h.test", "h.test",
	    "h.test", "h.test", "host2.good.test" }, 0 },
	{ "8.2.0.192.in-addr.arpa", DNS_PTR, DNS_OK, { "host3.good.test" },
	    0 },
	{ "host3.good.test", DNS_A, DNS_OK, { "192.0.2.8" }, 0 },
	{ "host.good.test", DNS_A, DNS_OK, { "192.0.2.5" }, 0 },
	{ "host.bad.test", DNS_A, DNS_OK, { "192.0.2.5" }, 0 },
	{ "host2.good.test", DNS_A, DNS_OK, { "192.0.2.7" }, 0 },
	{ "pmacro.test", DNS_TXT, DNS_OK, { "v=spf1 exists:%{p}.p.test "
	    "-all" }, 0 },
	{ "host3.good.test.p.test", DNS_A, DNS_OK, { "127.0.0.2" }, 0 },
	{ "terms.test", DNS_TXT, DNS_OK, { "v=spf1 include:t1.test "
	    "include:t2.test include:t3.test -all" }, 0 },
	{ "t1.test", DNS_TXT, DNS_OK, { "v=spf1 a:h.test a:h.test a:h.test "
	    "?all" }, 0 },
	{ "t2.test", DNS_TXT, DNS_OK, { "v=spf1 a:h.test a:h.test a:h.test "
	    "?all" }, 0 },
	{ "t3.test", DNS_TXT, DNS_OK, { "v=spf1 a:h.test a:h.test a:h.test "
	    "?all" }, 0 },
	{ "terms10.test", DNS_TXT, DNS_OK, { "v=spf1 include:t1.test "
	    "include:t2.test a:h.test a:h.test -all" }, 0 },
	{ "h.test", DNS_A, DNS_OK, { "10.0.0.1" }, 0 },
	{ "mx11.test", DNS_TXT, DNS_OK, { "v=spf1 mx -all" }, 0 },
	{ "mx11.test", DNS_MX, DNS_OK, { "1 h.test", "2 h.test", "3 h.test",
	    "4 h.test", "5 h.test", "6 h.test", "7 h.test", "8 h.test",
	    "9 h.test", "10 h.test", "11 h.test" }, 0 },
};

static atomic_int fake_calls;
static atomic_int fake_in_slow;	/* a delayed look-up has started */
static atomic_int fake_gate;	/* releases the "gate.test" look-up */

static int
fake_add(struct dns_result *res, enum dns_type type, const char *s)
{
	size_t n = res->count;

	switch (type) {
	case DNS_TXT:
		res->txt = realloc(res->txt, (n + 1) * sizeof(*res->txt));
		res->txt[n].len = strlen(s);
		res->txt[n].data = (unsigned char *)strdup(s);
		/* \x01 stands for a NUL byte inside the record */
		if (strchr(s, '\x01') != NULL)
			*strchr((char *)res->txt[n].data, '\x01') = '\0';
		break;
	case DNS_PTR:
		res->ptr = realloc(res->ptr, (n + 1) * sizeof(*res->ptr));
		snprintf(res->ptr[n].host, sizeof(res->ptr[n].host), "%s", s);
		break;
	case DNS_MX:
		res->mx = realloc(res->mx, (n + 1) * sizeof(*res->mx));
		res->mx[n].preference = (uint16_t)atoi(s);
		snprintf(res->mx[n].host, sizeof(res->mx[n].host), "%s",
		    strchr(s, ' ') + 1);
		break;
	default: {
		struct sockaddr_storage *ss;

		res->addr = realloc(res->addr, (n + 1) * sizeof(*res->addr));
		ss = &res->addr[n];
		memset(ss, 0, sizeof(*ss));
		if (strchr(s, ':') != NULL) {
			ss->ss_family = AF_INET6;
			inet_pton(AF_INET6, s,
			    &((struct sockaddr_in6 *)ss)->sin6_addr);
		} else {
			ss->ss_family = AF_INET;
			inet_pton(AF_INET, s,
			    &((struct sockaddr_in *)ss)->sin_addr);
		}
		break;
	}
	}
	res->count = n + 1;
	return (0);
}

/* fake_fn - an spf_dns_fn answering from fake_recs; else NXDOMAIN */
static int
fake_fn(void *ctx, const char *name, enum dns_type type,
    struct dns_result **res_r, int *status_r)
{
	struct dns_result *res;
	size_t i, k;
	int seen_name = 0;

	(void)ctx;
	atomic_fetch_add(&fake_calls, 1);
	res = calloc(1, sizeof(*res));
	res->type = type;
	res->rcode = 0;
	snprintf(res->name, sizeof(res->name), "%s", name);
	*status_r = DNS_NXDOMAIN;
	for (i = 0; i < sizeof(fake_recs) / sizeof(fake_recs[0]); i++) {
		const struct fake_rec *f = &fake_recs[i];

		size_t nl = strlen(name);

		/* a resolver ignores the root label */
		if (nl > 0 && name[nl - 1] == '.')
			nl--;
		if (strncasecmp(f->name, name, nl) != 0 ||
		    f->name[nl] != '\0')
			continue;
		seen_name = 1;
		if (f->type != type)
			continue;
		if (f->delay_ms > 0) {
			atomic_store(&fake_in_slow, 1);
			usleep((useconds_t)f->delay_ms * 1000);
		}
		if (f->delay_ms == -1) {
			/* held until the test opens the gate */
			atomic_store(&fake_in_slow, 1);
			while (!atomic_load(&fake_gate))
				usleep(1000);
		}
		if (f->status == -1) {
			free(res);
			return (-1);
		}
		*status_r = f->status;
		if (f->status == DNS_TEMPFAIL)
			snprintf(res->why, sizeof(res->why), "timeout after "
			    "1000 ms");
		if (f->status == DNS_PERMFAIL)
			snprintf(res->why, sizeof(res->why), "bad rdata");
		for (k = 0; k < 12 && f->data[k] != NULL; k++)
			fake_add(res, type, f->data[k]);
		*res_r = res;
		return (0);
	}
	if (seen_name)
		*status_r = DNS_NODATA;
	*res_r = res;
	return (0);
}

static const struct row fake_rows[] = {
	{ "a: first of two A", "192.0.2.1", "h.test", "x@ok.test",
	    SPF_VERDICT_PASS, NULL, NULL },
	{ "a: second of two A", "192.0.2.2", "h.test", "x@ok.test",
	    SPF_VERDICT_PASS, NULL, NULL },
	{ "a: AAAA", "2001:db8::1", "h.test", "x@ok.test", SPF_VERDICT_PASS,
	    NULL, NULL },
	{ "mx: second MX host (first has no A)", "198.51.100.2", "h.test",
	    "x@ok.test", SPF_VERDICT_PASS, NULL, NULL },
	{ "mx: AAAA of an MX host", "2001:db8:2::2", "h.test", "x@ok.test",
	    SPF_VERDICT_PASS, NULL, NULL },
	{ "ip6 range", "2001:db8:1:ffff::9", "h.test", "x@ok.test",
	    SPF_VERDICT_PASS, NULL, NULL },
	{ "no match: fail", "203.0.113.9", "h.test", "x@ok.test",
	    SPF_VERDICT_FAIL, NULL, NULL },
	{ "NXDOMAIN: none", "192.0.2.1", "h.test", "x@nowhere.test",
	    SPF_VERDICT_NONE, NULL, NULL },
	{ "NODATA: none", "192.0.2.1", "h.test", "x@nodata.test",
	    SPF_VERDICT_NONE, NULL, NULL },
	{ "TEMPFAIL on the sender's TXT: temperror, not invalid",
	    "192.0.2.1", "h.test", "x@servfail.test", SPF_VERDICT_TEMPERROR,
	    "spf=temperror (temporary error checking x@servfail.test: TXT "
	    "servfail.test: timeout after 1000 ms) "
	    "smtp.mailfrom=servfail.test", NULL },
	{ "PERMFAIL (malformed answer): temperror", "192.0.2.1", "h.test",
	    "x@garbled.test", SPF_VERDICT_TEMPERROR, NULL, "bad rdata" },
	{ "TEMPFAIL on an MX host's A: temperror", "192.0.2.1", "h.test",
	    "x@mxfail.test", SPF_VERDICT_TEMPERROR, NULL, "mx.mxfail.test" },
	{ "include: TEMPFAIL: temperror", "192.0.2.1", "h.test",
	    "x@incslow.test", SPF_VERDICT_TEMPERROR, NULL, NULL },
	{ "NUL inside a record: no truncation to +all", "192.0.2.1", "h.test",
	    "x@nul.test", SPF_VERDICT_PERMERROR, NULL, NULL },
	{ "exp= look-up failing keeps the fail", "192.0.2.1", "h.test",
	    "x@exp.test", SPF_VERDICT_FAIL, NULL, NULL },
	{ "ptr: no PTR record, no match", "192.0.2.1", "h.test",
	    "x@ptr.test", SPF_VERDICT_FAIL, NULL, NULL },
	{ "%{p} without a PTR record expands to \"unknown\"", "192.0.2.1",
	    "h.test", "x@macro.test", SPF_VERDICT_PASS, NULL, NULL },
	{ "%{p} with another ip", "192.0.2.9", "h.test", "x@macro.test",
	    SPF_VERDICT_FAIL, NULL, NULL },
	{ "<>: HELO with a trailing dot", "192.0.2.1", "ok.test.", "",
	    SPF_VERDICT_PASS, NULL, NULL },
	{ "no HELO at all: %{h} is \"unknown\"", "192.0.2.1", "",
	    "x@helomacro.test", SPF_VERDICT_PASS, NULL, NULL },
	{ "6.1: redirect= ignored beside all: fail", "192.0.2.9", "h.test",
	    "x@redirall.test", SPF_VERDICT_FAIL, NULL, NULL },
	{ "6.1: the record's own mechanisms still match", "192.0.2.1",
	    "h.test", "x@redirall.test", SPF_VERDICT_PASS, NULL, NULL },
	{ "6.1: redirect= written first applies last", "192.0.2.1", "h.test",
	    "x@redirfirst.test", SPF_VERDICT_PASS, NULL, NULL },
	{ "6.1: ... and still applies", "192.0.2.9", "h.test",
	    "x@redirfirst.test", SPF_VERDICT_FAIL, NULL, NULL },
	{ "6: two redirect= modifiers: permerror", "192.0.2.9", "h.test",
	    "x@tworedir.test", SPF_VERDICT_PERMERROR, NULL,
	    "more than one redirect= modifier" },
	{ "6: two exp= modifiers: permerror, even where ip4 matches",
	    "192.0.2.1", "h.test", "x@twoexp.test", SPF_VERDICT_PERMERROR,
	    NULL, "more than one exp= modifier" },
	{ "6: two exp= in an included record: permerror", "192.0.2.9",
	    "h.test", "x@inctwoexp.test", SPF_VERDICT_PERMERROR, NULL,
	    "more than one exp=" },
	{ "6: an included record is not fetched after a match", "192.0.2.1",
	    "h.test", "x@inctwoexp.test", SPF_VERDICT_PASS, NULL, NULL },
	{ "6.2: exp= is not looked up, so no third void", "192.0.2.9",
	    "h.test", "x@expsrv.test", SPF_VERDICT_FAIL, NULL, NULL },
	{ "4.6.4: two void look-ups are allowed", "192.0.2.9", "h.test",
	    "x@void2.test", SPF_VERDICT_PASS, NULL, NULL },
	{ "4.6.4: a third void look-up is a permerror", "192.0.2.9",
	    "h.test", "x@void3.test", SPF_VERDICT_PERMERROR, NULL,
	    "more than 2 void look-ups" },
	{ "5.5: ptr matches a validated name", "192.0.2.8", "h.test",
	    "x@ptrok.test", SPF_VERDICT_PASS, NULL, NULL },
	{ "5.5: ptr: the second PTR name validates", "192.0.2.5", "h.test",
	    "x@ptrok.test", SPF_VERDICT_PASS, NULL, NULL },
	{ "5.5: ptr: a name whose A is elsewhere does not count",
	    "192.0.2.6", "h.test", "x@ptrok.test", SPF_VERDICT_FAIL, NULL,
	    NULL },
	{ "5.5: ptr: no PTR record", "192.0.2.9", "h.test", "x@ptrok.test",
	    SPF_VERDICT_FAIL, NULL, NULL },
	{ "4.6.4: PTR names past the tenth are ignored", "192.0.2.7",
	    "h.test", "x@ptrok.test", SPF_VERDICT_FAIL, NULL, NULL },
	{ "7.3: %{p} is the validated name", "192.0.2.8", "h.test",
	    "x@pmacro.test", SPF_VERDICT_PASS, NULL, NULL },
	{ "7.3: %{p} is \"unknown\" when no name validates", "192.0.2.6",
	    "h.test", "x@pmacro.test", SPF_VERDICT_FAIL, NULL, NULL },
	{ "4.6.4: 10 DNS terms over includes are fine", "192.0.2.9",
	    "h.test", "x@terms10.test", SPF_VERDICT_FAIL, NULL, NULL },
	{ "4.6.4: 12 DNS terms over includes: permerror", "192.0.2.9",
	    "h.test", "x@terms.test", SPF_VERDICT_PERMERROR, NULL,
	    "more than 10 DNS-querying terms" },
	{ "4.6.4: more than 10 MX records: permerror", "10.0.0.1", "h.test",
	    "x@mx11.test", SPF_VERDICT_PERMERROR, NULL,
	    "more than 10 MX records" },
};

static void
new_fake(struct fixture *f, int workers)
{
	char err[256];

	f->base = event_base_new();
	assert_non_null(f->base);
	assert_int_equal(spf_checker_new_with(&f->chk, f->base, fake_fn, NULL,
	    NULL, workers, "oldmx.example.net", err, sizeof(err)), 0);
}

static void
free_fake(struct fixture *f)
{
	spf_checker_free(&f->chk);
	assert_null(f->chk);
	event_base_free(f->base);
}

static void
test_fake_verdicts(void **state)
{
	struct fixture f = { 0 };

	(void)state;
	new_fake(&f, 2);
	run_rows(f.chk, f.base, fake_rows,
	    sizeof(fake_rows) / sizeof(fake_rows[0]));
	free_fake(&f);
}

static void
test_no_lookup_without_domain(void **state)
{
	struct fixture f = { 0 };
	struct spf_result r;
	int before;

	(void)state;
	new_fake(&f, 1);
	before = atomic_load(&fake_calls);
	check_one(f.chk, f.base, "192.0.2.1", "[192.0.2.1]", "", &r);
	assert_int_equal(r.verdict, SPF_VERDICT_NONE);
	assert_int_equal(r.identity, SPF_ID_HELO);
	check_one(f.chk, f.base, "192.0.2.1", "h.test", "user@[192.0.2.1]",
	    &r);
	assert_int_equal(r.verdict, SPF_VERDICT_NONE);
	assert_int_equal(r.identity, SPF_ID_MAILFROM);
	assert_int_equal(atomic_load(&fake_calls), before);
	/* and a checked one does ask */
	check_one(f.chk, f.base, "192.0.2.1", "h.test", "x@ok.test", &r);
	assert_true(atomic_load(&fake_calls) > before);
	free_fake(&f);
}

/* A libspf2 error (our layer returns NULL: SPF_dns_lookup() calls
 * SPF_error()) must not abort: temperror, and the message in our log. */
static void
test_library_error_is_temperror(void **state)
{
	struct fixture f = { 0 };
	struct spf_result r;
	char line[512];
	FILE *fp;
	int found = 0;

	(void)state;
	fp = tmpfile();
	assert_non_null(fp);
	log_open("test_spf", LOG_DEST_STREAM, 0, LOG_LVL_DEBUG);
	log_set_stream(fp);
	new_fake(&f, 1);
	check_one(f.chk, f.base, "192.0.2.1", "h.test", "x@oom.test", &r);
	assert_int_equal(r.verdict, SPF_VERDICT_TEMPERROR);
	assert_non_null(strstr(r.explanation, "internal error"));
	/* (Not from inside an include: libspf2 would leak the buffers it
	 * had in flight, as spf.c says, and fail the leak checkers.) */
	/* the worker survived: it still answers */
	check_one(f.chk, f.base, "192.0.2.1", "h.test", "x@ok.test", &r);
	assert_int_equal(r.verdict, SPF_VERDICT_PASS);
	free_fake(&f);
	fflush(fp);
	rewind(fp);
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strstr(line, "libspf2 error") != NULL &&
		    strstr(line, "return NULL") != NULL)
			found++;
	log_open("test_spf", LOG_DEST_STDERR, 0, LOG_LVL_WARNING);
	fclose(fp);
	assert_int_equal(found, 1);
}

/* --- lifetime ------------------------------------------------------------ */

static void
count_cb(const struct spf_result *r, void *arg)
{
	int *n = arg;

	(void)r;
	(*n)++;
}

/* Two checks on one worker: the first is slow, the second waits in the
 * queue and is cancelled there; then the running one is cancelled. */
static void
test_cancel(void **state)
{
	struct fixture f = { 0 };
	struct sockaddr_storage ss;
	struct got g;
	uint64_t slow, queued;
	int n_slow = 0, n_queued = 0;

	(void)state;
	new_fake(&f, 1);
	set_addr(&ss, "192.0.2.1");
	atomic_store(&fake_in_slow, 0);
	assert_int_equal(spf_check(f.chk, (struct sockaddr *)&ss, "h.test",
	    "x@incslow.test", count_cb, &n_slow, &slow), 0);
	assert_int_equal(spf_check(f.chk, (struct sockaddr *)&ss, "h.test",
	    "x@ok.test", count_cb, &n_queued, &queued), 0);
	assert_int_not_equal(slow, queued);
	assert_int_equal(spf_pending(f.chk), 2);
	assert_int_equal(spf_cancel(f.chk, queued), 0);
	assert_int_equal(spf_cancel(f.chk, queued), -1);
	assert_int_equal(spf_pending(f.chk), 1);
	/* wait until the worker is inside the slow look-up, then cancel */
	while (!atomic_load(&fake_in_slow))
		usleep(1000);
	assert_int_equal(spf_cancel(f.chk, slow), 0);
	assert_int_equal(spf_pending(f.chk), 0);
	/* a third check completes after the cancelled one: by then a
	 * stray callback would have run */
	memset(&g, 0, sizeof(g));
	g.base = f.base;
	g.stop_after = 1;
	assert_int_equal(spf_check(f.chk, (struct sockaddr *)&ss, "h.test",
	    "x@ok.test", got_cb, &g, NULL), 0);
	assert_int_equal(run_loop(f.base, 5000), 0);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.r.verdict, SPF_VERDICT_PASS);
	assert_int_equal(n_slow, 0);
	assert_int_equal(n_queued, 0);
	assert_int_equal(spf_cancel(f.chk, 987654), -1);
	free_fake(&f);
}

/* Four 150 ms look-ups against a 250 ms budget: temperror, and well
 * before the 600 ms they would take. */
static void
test_time_budget(void **state)
{
	struct fixture f = { 0 };
	struct spf_result r;
	struct timespec t0, t1;
	long ms;

	(void)state;
	new_fake(&f, 1);
	spf_checker_set_timeout(f.chk, 250);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	check_one(f.chk, f.base, "192.0.2.1", "h.test", "x@chain.test", &r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) /
	    1000000;
	assert_int_equal(r.verdict, SPF_VERDICT_TEMPERROR);
	assert_non_null(strstr(r.explanation, "timed out"));
	assert_true(ms >= 250 && ms < 550);
	/* with the default budget the same record fails normally */
	spf_checker_set_timeout(f.chk, SPF_TIMEOUT_DEFAULT_MS);
	check_one(f.chk, f.base, "192.0.2.1", "h.test", "x@chain.test", &r);
	assert_int_equal(r.verdict, SPF_VERDICT_FAIL);
	free_fake(&f);
}

struct freer {
	struct spf_checker	**chk;
	int			  calls;
};

static void
free_in_cb(const struct spf_result *r, void *arg)
{
	struct freer *fr = arg;

	(void)r;
	fr->calls++;
	spf_checker_free(fr->chk);
}

/* Freeing from inside a callback: no other callback runs, no leak. */
static void
test_free_from_callback(void **state)
{
	struct fixture f = { 0 };
	struct sockaddr_storage ss;
	struct freer fr = { &f.chk, 0 };
	int i;

	(void)state;
	new_fake(&f, 4);
	set_addr(&ss, "192.0.2.1");
	for (i = 0; i < 20; i++)
		assert_int_equal(spf_check(f.chk, (struct sockaddr *)&ss,
		    "h.test", i == 19 ? "x@incslow.test" : "x@ok.test",
		    free_in_cb, &fr, NULL), 0);
	/* the loop has nothing left to wait for once the checker is gone */
	run_loop(f.base, 3000);
	assert_null(f.chk);
	assert_int_equal(fr.calls, 1);
	event_base_free(f.base);
}

/* Freeing with checks queued and running: no callback, no leak. */
static void
test_free_with_checks_in_flight(void **state)
{
	struct fixture f = { 0 };
	struct sockaddr_storage ss;
	int calls = 0, i;

	(void)state;
	new_fake(&f, 2);
	set_addr(&ss, "2001:db8::1");
	atomic_store(&fake_in_slow, 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(spf_check(f.chk, (struct sockaddr *)&ss,
		    "h.test", "x@incslow.test", count_cb, &calls, NULL), 0);
	while (!atomic_load(&fake_in_slow))
		usleep(1000);
	free_fake(&f);
	assert_int_equal(calls, 0);
}

static void
test_arguments(void **state)
{
	struct fixture f = { 0 };
	struct spf_checker *chk = (struct spf_checker *)&f;
	struct sockaddr_storage ss;
	struct sockaddr_un_like {
		sa_family_t	family;
		char		path[14];
	} un = { AF_UNIX, "x" };
	struct event_base *base;
	char err[256];
	int calls = 0;

	(void)state;
	base = event_base_new();
	err[0] = '\0';
	assert_int_equal(spf_checker_new(&chk, base, NULL, 2, "mx.test", err,
	    sizeof(err)), -1);
	assert_null(chk);
	assert_string_equal(err, "no resolver");
	assert_int_equal(spf_checker_new_with(&chk, base, fake_fn, NULL, NULL,
	    0, "mx.test", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "workers"));
	assert_int_equal(spf_checker_new_with(&chk, base, fake_fn, NULL, NULL,
	    SPF_WORKERS_MAX + 1, "mx.test", err, sizeof(err)), -1);
	assert_int_equal(spf_checker_new_with(&chk, base, fake_fn, NULL, NULL,
	    1, "bad host", err, sizeof(err)), -1);
	assert_int_equal(spf_checker_new_with(&chk, base, NULL, NULL, NULL,
	    1, "mx.test", err, sizeof(err)), -1);
	assert_null(chk);
	event_base_free(base);

	new_fake(&f, 1);
	set_addr(&ss, "192.0.2.1");
	errno = 0;
	assert_int_equal(spf_check(f.chk, (struct sockaddr *)&un, "h.test",
	    "x@ok.test", count_cb, &calls, NULL), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spf_check(f.chk, (struct sockaddr *)&ss, NULL,
	    "x@ok.test", count_cb, &calls, NULL), -1);
	assert_int_equal(spf_check(f.chk, (struct sockaddr *)&ss, "h.test",
	    NULL, count_cb, &calls, NULL), -1);
	assert_int_equal(spf_check(f.chk, (struct sockaddr *)&ss, "h.test",
	    "x@ok.test", NULL, &calls, NULL), -1);
	assert_int_equal(spf_check(NULL, (struct sockaddr *)&ss, "h.test",
	    "x@ok.test", count_cb, &calls, NULL), -1);
	assert_int_equal(spf_pending(f.chk), 0);
	assert_int_equal(spf_pending(NULL), 0);
	free_fake(&f);
	spf_checker_free(NULL);
	assert_int_equal(calls, 0);
}

/* The queue is bounded: SPF_QUEUE_MAX waiting checks, then EAGAIN. */
static void
test_queue_bound(void **state)
{
	struct fixture f = { 0 };
	struct sockaddr_storage ss;
	int calls = 0, i;

	(void)state;
	new_fake(&f, 1);
	set_addr(&ss, "192.0.2.1");
	atomic_store(&fake_in_slow, 0);
	atomic_store(&fake_gate, 0);
	assert_int_equal(spf_check(f.chk, (struct sockaddr *)&ss, "h.test",
	    "x@gate.test", count_cb, &calls, NULL), 0);
	while (!atomic_load(&fake_in_slow))
		usleep(1000);
	/* the only worker is held at the gate: everything else waits */
	for (i = 0; i < SPF_QUEUE_MAX; i++)
		assert_int_equal(spf_check(f.chk, (struct sockaddr *)&ss,
		    "h.test", "x@ok.test", count_cb, &calls, NULL), 0);
	errno = 0;
	assert_int_equal(spf_check(f.chk, (struct sockaddr *)&ss, "h.test",
	    "x@ok.test", count_cb, &calls, NULL), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(spf_pending(f.chk), SPF_QUEUE_MAX + 1);
	atomic_store(&fake_gate, 1);
	free_fake(&f);
	assert_int_equal(calls, 0);
}

/* --- Authentication-Results text --------------------------------------- */

static void
test_authres(void **state)
{
	static const struct {
		enum spf_verdict	 v;
		enum spf_identity	 id;
		const char		*domain;
		const char		*explain;
		const char		*want;
	} cases[] = {
		{ SPF_VERDICT_PASS, SPF_ID_MAILFROM, "example.com", "",
		    "spf=pass smtp.mailfrom=example.com" },
		{ SPF_VERDICT_SOFTFAIL, SPF_ID_HELO, "mx.example.com", "x",
		    "spf=softfail (x) smtp.helo=mx.example.com" },
		{ SPF_VERDICT_NONE, SPF_ID_HELO, "[192.0.2.1]", "",
		    "spf=none smtp.helo=\"[192.0.2.1]\"" },
		{ SPF_VERDICT_NEUTRAL, SPF_ID_HELO, "a\"b\\c d", "",
		    "spf=neutral smtp.helo=\"a\\\"b\\\\c d\"" },
		{ SPF_VERDICT_TEMPERROR, SPF_ID_MAILFROM, "", "a(b)c\\",
		    "spf=temperror (a\\(b\\)c\\\\) smtp.mailfrom=\"\"" },
		{ SPF_VERDICT_PERMERROR, SPF_ID_MAILFROM, "x;y.test", "",
		    "spf=permerror smtp.mailfrom=\"x;y.test\"" },
		{ SPF_VERDICT_FAIL, SPF_ID_MAILFROM, "\xc3\xa9.test", "\n",
		    "spf=fail (?) smtp.mailfrom=\"??.test\"" },
		{ SPF_VERDICT_PASS, SPF_ID_MAILFROM, "a.test", "\"q\"; x",
		    "spf=pass ('q'; x) smtp.mailfrom=a.test" },
	};
	struct spf_result r;
	char buf[256];
	size_t i, need;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&r, 0, sizeof(r));
		r.verdict = cases[i].v;
		r.identity = cases[i].id;
		snprintf(r.domain, sizeof(r.domain), "%s", cases[i].domain);
		snprintf(r.explanation, sizeof(r.explanation), "%s",
		    cases[i].explain);
		if (spf_authres(&r, buf, sizeof(buf)) !=
		    (int)strlen(cases[i].want) ||
		    strcmp(buf, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, buf,
			    cases[i].want);
	}
	/* exactly fitting, one byte short */
	need = strlen(cases[1].want) + 1;
	r.verdict = cases[1].v;
	r.identity = cases[1].id;
	snprintf(r.domain, sizeof(r.domain), "%s", cases[1].domain);
	snprintf(r.explanation, sizeof(r.explanation), "%s", cases[1].explain);
	assert_int_equal(spf_authres(&r, buf, need), (int)need - 1);
	assert_int_equal(spf_authres(&r, buf, need - 1), -1);
	assert_string_equal(buf, "");
	assert_int_equal(spf_authres(&r, buf, 0), -1);

	assert_string_equal(spf_verdict_name(SPF_VERDICT_NONE), "none");
	assert_string_equal(spf_verdict_name(SPF_VERDICT_NEUTRAL), "neutral");
	assert_string_equal(spf_verdict_name(SPF_VERDICT_PASS), "pass");
	assert_string_equal(spf_verdict_name(SPF_VERDICT_FAIL), "fail");
	assert_string_equal(spf_verdict_name(SPF_VERDICT_SOFTFAIL),
	    "softfail");
	assert_string_equal(spf_verdict_name(SPF_VERDICT_TEMPERROR),
	    "temperror");
	assert_string_equal(spf_verdict_name(SPF_VERDICT_PERMERROR),
	    "permerror");
	assert_string_equal(spf_identity_name(SPF_ID_MAILFROM), "mailfrom");
	assert_string_equal(spf_identity_name(SPF_ID_HELO), "helo");
}

/* --- spf_record.c on its own -------------------------------------------- */

struct pre_row {
	const char		*in;
	enum spf_precheck	 want;
	const char		*out;	/* REWRITTEN: the text; PERMERROR: why */
};

static const struct pre_row pre_rows[] = {
	{ "v=spf1 -all", SPF_PRE_KEEP, NULL },
	{ "site-verification=x redirect=a redirect=b", SPF_PRE_KEEP, NULL },
	{ "v=spf10 redirect=a redirect=b", SPF_PRE_KEEP, NULL },
	{ "v=spf1 a mx redirect=x.test", SPF_PRE_KEEP, NULL },
	{ "v=spf1 ip4:192.0.2.1 redirect=x.test -all", SPF_PRE_REWRITTEN,
	    "v=spf1 ip4:192.0.2.1 -all" },
	{ "V=SPF1 REDIRECT=x.test ?ALL", SPF_PRE_REWRITTEN, "V=SPF1 ?ALL" },
	{ "v=spf1 all redirect=x.test", SPF_PRE_REWRITTEN, "v=spf1 all" },
	{ "v=spf1 redirect=x.test  a  mx", SPF_PRE_REWRITTEN,
	    "v=spf1 a mx redirect=x.test" },
	{ "v=spf1 a -all exp=why.test", SPF_PRE_REWRITTEN, "v=spf1 a -all" },
	{ "v=spf1 a:all.test redirect=x.test", SPF_PRE_KEEP, NULL },
	{ "v=spf1 include:all.test redirect=x.test", SPF_PRE_KEEP, NULL },
	{ "v=spf1 redirect=a.test redirect=b.test", SPF_PRE_PERMERROR,
	    "more than one redirect= modifier" },
	{ "v=spf1 -all Exp=a.test exp=b.test", SPF_PRE_PERMERROR,
	    "more than one exp= modifier" },
	{ "v=spf1 a:x.test/24=1 redirect=x.test", SPF_PRE_KEEP, NULL },
	{ "v=spf1 foo=1 foo=2 -all", SPF_PRE_KEEP, NULL },
	{ "v=spf1", SPF_PRE_KEEP, NULL },
	{ "v=spf1 a: -all", SPF_PRE_PERMERROR, "bad domain-spec in \"a:\"" },
	{ "v=spf1 ?include: -all", SPF_PRE_PERMERROR,
	    "bad domain-spec in \"?include:\"" },
	{ "v=spf1 mx:/24 -all", SPF_PRE_PERMERROR,
	    "bad domain-spec in \"mx:/24\"" },
	{ "v=spf1 a:/24 -all x:", SPF_PRE_PERMERROR,
	    "bad domain-spec in \"a:/24\"" },
	{ "v=spf1 exists -all", SPF_PRE_PERMERROR,
	    "bad domain-spec in \"exists\"" },
	{ "v=spf1 a:192.0.2.1 -all", SPF_PRE_PERMERROR,
	    "bad domain-spec in \"a:192.0.2.1\"" },
	{ "v=spf1 a:localhost -all", SPF_PRE_PERMERROR,
	    "bad domain-spec in \"a:localhost\"" },
	{ "v=spf1 a:x.-test -all", SPF_PRE_PERMERROR,
	    "bad domain-spec in \"a:x.-test\"" },
	{ "v=spf1 mx:%{d}. -all", SPF_PRE_PERMERROR,
	    "bad domain-spec in \"mx:%{d}.\"" },
	{ "v=spf1 -all exp=", SPF_PRE_PERMERROR,
	    "bad domain-spec in \"exp=\"" },
	{ "v=spf1 redirect=x", SPF_PRE_PERMERROR,
	    "bad domain-spec in \"redirect=x\"" },
	{ "v=spf1 a:x.test. mx:x.te-st a:x.123-4 ptr ptr:x.test a/24 "
	    "a:%{l/}.x.test/24//64 exists:%{i}.%{d} include:x.test%%",
	    SPF_PRE_KEEP, NULL },
	/* a length of 0 */
	{ "v=spf1 ip4:192.0.2.1/0 -ip6:2001:db8::/0 -all", SPF_PRE_REWRITTEN,
	    "v=spf1 ip4:0.0.0.0/1 ip4:128.0.0.0/1 -ip6:::/1 -ip6:8000::/1 "
	    "-all" },
	{ "v=spf1 ip4:192.0.2.1/00 ip4:300.0.0.1/0 -all", SPF_PRE_KEEP, NULL },
	/* %{xN}: N dropped when it covers every part */
	{ "v=spf1 exists:%{d2}.%{d1}.%{d3r}.x.test", SPF_PRE_REWRITTEN,
	    "v=spf1 exists:%{d}.%{d1}.%{dr}.x.test" },
	{ "v=spf1 exists:%{l2-}.%{l1-}.%{l2}.%{i4}.%{i3}.x", SPF_PRE_REWRITTEN,
	    "v=spf1 exists:%{l-}.%{l1-}.%{l}.%{i}.%{i3}.x" },
	{ "v=spf1 exists:%{p2}.%{d0}.%{d2x}.x.test", SPF_PRE_KEEP, NULL },
	{ "v=spf1 exists:%%{d2}.x", SPF_PRE_KEEP, NULL },
	{ "v=spf1 exists:%-%{d2}.x", SPF_PRE_REWRITTEN,
	    "v=spf1 exists:%-%{d}.x" },
};

static void
test_record_precheck(void **state)
{
	struct spf_macro_env env = { { NULL } };
	char out[256], why[128];
	size_t i;

	(void)state;
	env.v['d' - 'a'] = "mdom.test";
	env.v['l' - 'a'] = "first-second";
	env.v['i' - 'a'] = "192.0.2.1";
	for (i = 0; i < sizeof(pre_rows) / sizeof(pre_rows[0]); i++) {
		const struct pre_row *r = &pre_rows[i];
		enum spf_precheck got;

		why[0] = out[0] = '\0';
		got = spf_record_precheck(r->in, &env, out, sizeof(out), why,
		    sizeof(why));
		if (got != r->want || (got == SPF_PRE_REWRITTEN &&
		    strcmp(out, r->out) != 0) || (got == SPF_PRE_PERMERROR &&
		    strcmp(why, r->out) != 0))
			fail_msg("\"%s\": got %d \"%s\" \"%s\"", r->in, got,
			    out, why);
	}
	/* no room: refused rather than cut */
	assert_int_equal(spf_record_precheck("v=spf1 exp=x -all", NULL, out, 4,
	    why,
	    sizeof(why)), SPF_PRE_PERMERROR);
}

static void
test_count(void **state)
{
	struct spf_count c;
	struct dns_result mx = { 0 };
	struct dns_mx hosts[11];
	char why[128];
	int i;

	(void)state;
	memset(&c, 0, sizeof(c));
	/* the identity's own TXT is free, then 10 terms, the 11th fails */
	assert_int_equal(spf_count_query(&c, DNS_TXT, "d.test", 1, why,
	    sizeof(why)), 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(spf_count_query(&c, i % 2 ? DNS_TXT : DNS_A,
		    "x.test", 1, why, sizeof(why)), 0);
	assert_int_equal(spf_count_query(&c, DNS_MX, "x.test", 1, why,
	    sizeof(why)), -1);
	assert_string_equal(why, "more than 10 DNS-querying terms");

	/* MX follow-ups and the %{p} PTR are not terms */
	memset(&c, 0, sizeof(c));
	c.txt_seen = 1;
	memset(hosts, 0, sizeof(hosts));
	for (i = 0; i < 11; i++)
		snprintf(hosts[i].host, sizeof(hosts[i].host), "m%d.test", i);
	mx.type = DNS_MX;
	mx.count = 2;
	mx.mx = hosts;
	assert_int_equal(spf_count_query(&c, DNS_MX, "x.test", 1, why,
	    sizeof(why)), 0);
	assert_int_equal(spf_count_answer(&c, DNS_MX, DNS_OK, &mx, why,
	    sizeof(why)), 0);
	assert_int_equal(spf_count_query(&c, DNS_A, "M0.test", 1, why,
	    sizeof(why)), 0);
	assert_int_equal(spf_count_query(&c, DNS_A, "m1.test", 1, why,
	    sizeof(why)), 0);
	assert_int_equal(spf_count_query(&c, DNS_PTR, "1.2.0.192.in-addr.arpa",
	    0, why, sizeof(why)), 0);
	assert_int_equal(c.terms, 1);
	/* a name after the list is a term again */
	assert_int_equal(spf_count_query(&c, DNS_A, "m1.test", 1, why,
	    sizeof(why)), 0);
	assert_int_equal(c.terms, 2);
	mx.count = 11;
	assert_int_equal(spf_count_answer(&c, DNS_MX, DNS_OK, &mx, why,
	    sizeof(why)), -1);

	/* voids: NXDOMAIN and NODATA count, TXT does not, the third fails */
	memset(&c, 0, sizeof(c));
	assert_int_equal(spf_count_answer(&c, DNS_TXT, DNS_NXDOMAIN, NULL, why,
	    sizeof(why)), 0);
	assert_int_equal(spf_count_answer(&c, DNS_A, DNS_NXDOMAIN, NULL, why,
	    sizeof(why)), 0);
	assert_int_equal(spf_count_answer(&c, DNS_TXT, DNS_NODATA, NULL, why,
	    sizeof(why)), 0);
	assert_int_equal(spf_count_answer(&c, DNS_A, DNS_TEMPFAIL, NULL, why,
	    sizeof(why)), 0);
	assert_int_equal(spf_count_answer(&c, DNS_PTR, DNS_NODATA, NULL, why,
	    sizeof(why)), 0);
	assert_int_equal(spf_count_answer(&c, DNS_MX, DNS_NODATA, NULL, why,
	    sizeof(why)), -1);
	assert_string_equal(why, "more than 2 void look-ups");
}

/* Sender text from the network is stored printable. */
static void
test_printable_result(void **state)
{
	struct fixture f = { 0 };
	struct spf_result r;
	char ar[600];

	(void)state;
	new_fake(&f, 1);
	check_one(f.chk, f.base, "192.0.2.1", "h.test",
	    "a\x01(b)@nowhere.test", &r);
	assert_int_equal(r.verdict, SPF_VERDICT_NONE);
	assert_string_equal(r.sender, "a\\x01(b)@nowhere.test");
	assert_true(spf_authres(&r, ar, sizeof(ar)) > 0);
	assert_string_equal(ar, "spf=none (domain of a\\\\x01\\(b\\)@nowhere."
	    "test does not publish an SPF record) smtp.mailfrom=nowhere.test");
	free_fake(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zone_verdicts),
		cmocka_unit_test(test_fake_verdicts),
		cmocka_unit_test(test_no_lookup_without_domain),
		cmocka_unit_test(test_library_error_is_temperror),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_time_budget),
		cmocka_unit_test(test_free_from_callback),
		cmocka_unit_test(test_free_with_checks_in_flight),
		cmocka_unit_test(test_arguments),
		cmocka_unit_test(test_queue_bound),
		cmocka_unit_test(test_authres),
		cmocka_unit_test(test_printable_result),
		cmocka_unit_test(test_record_precheck),
		cmocka_unit_test(test_count),
	};

	log_open("test_spf", LOG_DEST_STDERR, 0, LOG_LVL_WARNING);
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
