/*
 * test_dns.c - common/dns without a DNS server: the rdata parser fed
 * hand-made (and hostile) wire data, name validation, resolver set-up
 * errors, and the timeout / cancel / free paths against a UDP socket on
 * 127.0.0.1 that never answers.  Answers from a real server are tested
 * in tests/integration/test_dns.sh.
 */

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "dns.h"

/* --- rdata parser ------------------------------------------------------ */

#define R(s)	(s), (int)(sizeof(s) - 1)

static const struct rdata_case {
	enum dns_type	 type;
	const char	*rdata;
	int		 len;
	int		 ok;
	const char	*want;	/* MX host, TXT data, or address text */
	int		 want_len;	/* TXT only */
	int		 pref;	/* MX only */
} rdata_cases[] = {
	/* MX */
	{ DNS_MX, R("\x00\x0a\x03mx1\x07""example\x04test\x00"), 1,
	    "mx1.example.test", 0, 10 },
	{ DNS_MX, R("\xff\xff\x01""a\x00"), 1, "a", 0, 65535 },
	{ DNS_MX, R("\x00\x00\x00"), 1, ".", 0, 0 },	/* null MX */
	{ DNS_MX, R("\x00\x0a\x03_x-\x00"), 1, "_x-", 0, 10 },
	{ DNS_MX, R("\x00"), 0, NULL, 0, 0 },
	{ DNS_MX, R("\x00\x0a"), 0, NULL, 0, 0 },
	{ DNS_MX, R("\x00\x0a\xc0\x0c"), 0, NULL, 0, 0 },	/* pointer */
	{ DNS_MX, R("\x00\x0a\x40""a\x00"), 0, NULL, 0, 0 },	/* 0x40 */
	{ DNS_MX, R("\x00\x0a\x05""ab"), 0, NULL, 0, 0 },	/* past end */
	{ DNS_MX, R("\x00\x0a\x02""ab"), 0, NULL, 0, 0 },	/* no root */
	{ DNS_MX, R("\x00\x0a\x00\x01"), 0, NULL, 0, 0 },	/* trailing */
	{ DNS_MX, R("\x00\x0a\x03""a.b\x00"), 0, NULL, 0, 0 },
	{ DNS_MX, R("\x00\x0a\x03""a b\x00"), 0, NULL, 0, 0 },
	{ DNS_MX, R("\x00\x0a\x03""a\x00""b\x00"), 0, NULL, 0, 0 },
	{ DNS_MX, R("\x00\x0a\x03""a\nb\x00"), 0, NULL, 0, 0 },
	{ DNS_MX, R("\x00\x0a\x03""\xc3\xa9x\x00"), 0, NULL, 0, 0 },
	/* TXT */
	{ DNS_TXT, R("\x03""abc"), 1, "abc", 3, 0 },
	{ DNS_TXT, R("\x00"), 1, "", 0, 0 },
	{ DNS_TXT, R("\x02""ab\x00\x01""c"), 1, "abc", 3, 0 },
	{ DNS_TXT, R("\x03""a\x00""b\x01""c"), 1, "a\0bc", 4, 0 },
	{ DNS_TXT, R(""), 0, NULL, 0, 0 },
	{ DNS_TXT, R("\x05""ab"), 0, NULL, 0, 0 },
	{ DNS_TXT, R("\x01""a\x05"), 0, NULL, 0, 0 },
	{ DNS_TXT, R("\x01""a\x01"), 0, NULL, 0, 0 },
	/* A / AAAA */
	{ DNS_A, R("\xc0\x00\x02\x01"), 1, "192.0.2.1", 0, 0 },
	{ DNS_A, R("\xc0\x00\x02"), 0, NULL, 0, 0 },
	{ DNS_A, R("\xc0\x00\x02\x01\x00"), 0, NULL, 0, 0 },
	{ DNS_AAAA, R("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"), 1,
	    "2001:db8::1", 0, 0 },
	{ DNS_AAAA, R("\xc0\x00\x02\x01"), 0, NULL, 0, 0 },
	/* PTR: one host name, the same rules as an MX host */
	{ DNS_PTR, R("\x04host\x07""example\x04test\x00"), 1,
	    "host.example.test", 0, 0 },
	{ DNS_PTR, R("\x04host\xc0\x0c"), 0, NULL, 0, 0 },
	{ DNS_PTR, R("\x04ho"), 0, NULL, 0, 0 },
	/* no rdata for the pseudo type */
	{ DNS_ADDR, R("\xc0\x00\x02\x01"), 0, NULL, 0, 0 },
};

static void
test_rdata_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rdata_cases) / sizeof(rdata_cases[0]); i++) {
		const struct rdata_case *c = &rdata_cases[i];
		struct dns_result res;
		char *data[2] = { (char *)c->rdata, NULL };
		int len[1] = { c->len }, rc;
		char ip[INET6_ADDRSTRLEN];

		memset(&res, 0, sizeof(res));
		res.type = c->type;
		rc = dns_rdata_parse(c->type, data, len, &res);
		if ((rc == 0) != c->ok)
			fail_msg("case %zu: parse %s (%s)", i,
			    rc == 0 ? "accepted" : "refused", res.why);
		if (!c->ok) {
			if (res.count != 0 || res.mx || res.txt || res.addr ||
			    res.ptr)
				fail_msg("case %zu: records left on failure", i);
			if (res.why[0] == '\0')
				fail_msg("case %zu: no reason", i);
			continue;
		}
		assert_int_equal(res.count, 1);
		switch (c->type) {
		case DNS_MX:
			assert_int_equal(res.mx[0].preference, c->pref);
			if (strcmp(res.mx[0].host, c->want) != 0)
				fail_msg("case %zu: host %s", i,
				    res.mx[0].host);
			break;
		case DNS_PTR:
			if (strcmp(res.ptr[0].host, c->want) != 0)
				fail_msg("case %zu: PTR %s", i,
				    res.ptr[0].host);
			break;
		case DNS_TXT:
			assert_int_equal(res.txt[0].len, c->want_len);
			if (memcmp(res.txt[0].data, c->want,
			    (size_t)c->want_len) != 0)
				fail_msg("case %zu: TXT data", i);
			assert_int_equal(res.txt[0].data[c->want_len], '\0');
			break;
		default:
			if (res.addr[0].ss_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)
				    &res.addr[0])->sin_addr, ip, sizeof(ip));
			else
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)
				    &res.addr[0])->sin6_addr, ip, sizeof(ip));
			if (strcmp(ip, c->want) != 0)
				fail_msg("case %zu: address %s", i, ip);
			break;
		}
		/* parse again into the same result: old records freed */
		assert_int_equal(dns_rdata_parse(c->type, data, len, &res), 0);
		free(res.mx);
		if (res.txt)
			free(res.txt[0].data);
		free(res.txt);
		free(res.addr);
		free(res.ptr);
	}
}

/* one label of n 'a's, in wire form, at p; returns the bytes written */
static size_t
label(unsigned char *p, size_t n)
{
	p[0] = (unsigned char)n;
	memset(p + 1, 'a', n);
	return (n + 1);
}

static void
test_rdata_name_limits(void **state)
{
	unsigned char buf[600];
	char *data[2] = { (char *)buf, NULL };
	struct dns_result res;
	size_t o;
	int len[1];

	(void)state;
	/* 255 wire octets: 63+63+63+61, fine; 253 characters */
	memset(&res, 0, sizeof(res));
	buf[0] = 0;
	buf[1] = 5;
	o = 2;
	o += label(buf + o, 63);
	o += label(buf + o, 63);
	o += label(buf + o, 63);
	o += label(buf + o, 61);
	buf[o++] = 0;
	len[0] = (int)o;
	assert_int_equal(dns_rdata_parse(DNS_MX, data, len, &res), 0);
	assert_int_equal(strlen(res.mx[0].host), 253);
	free(res.mx);

	/* one octet more: refused */
	memset(&res, 0, sizeof(res));
	o = 2;
	o += label(buf + o, 63);
	o += label(buf + o, 63);
	o += label(buf + o, 63);
	o += label(buf + o, 62);
	buf[o++] = 0;
	len[0] = (int)o;
	assert_int_equal(dns_rdata_parse(DNS_MX, data, len, &res), -1);
	assert_null(res.mx);

	/* a negative length from the library is refused, not trusted */
	len[0] = -1;
	assert_int_equal(dns_rdata_parse(DNS_MX, data, len, &res), -1);

	/* two maximal TXT strings make one 510-byte record */
	memset(&res, 0, sizeof(res));
	o = label(buf, 255);
	o += label(buf + o, 255);
	len[0] = (int)o;
	assert_int_equal(dns_rdata_parse(DNS_TXT, data, len, &res), 0);
	assert_int_equal(res.txt[0].len, 510);
	free(res.txt[0].data);
	free(res.txt);
}

static void
test_rdata_mx_sorted(void **state)
{
	char *data[5] = {
		(char *)"\x00\x14\x01""b\x00",
		(char *)"\x00\x0a\x01""a\x00",
		(char *)"\x00\x14\x01""c\x00",
		(char *)"\x00\x05\x01""d\x00",
		NULL,
	};
	int len[4] = { 5, 5, 5, 5 };
	struct dns_result res;

	(void)state;
	memset(&res, 0, sizeof(res));
	assert_int_equal(dns_rdata_parse(DNS_MX, data, len, &res), 0);
	assert_int_equal(res.count, 4);
	assert_string_equal(res.mx[0].host, "d");
	assert_string_equal(res.mx[1].host, "a");
	assert_string_equal(res.mx[2].host, "b");	/* ties: answer order */
	assert_string_equal(res.mx[3].host, "c");
	free(res.mx);

	/* one bad record spoils the answer, and frees what was parsed */
	data[2] = (char *)"\x00\x14\xc0\x00";
	len[2] = 4;
	memset(&res, 0, sizeof(res));
	assert_int_equal(dns_rdata_parse(DNS_MX, data, len, &res), -1);
	assert_null(res.mx);
	assert_int_equal(res.count, 0);
}

static void
test_rdata_txt_partial_failure(void **state)
{
	char *data[3] = { (char *)"\x02""ok", (char *)"\x09""short", NULL };
	int len[2] = { 3, 6 };
	struct dns_result res;

	(void)state;
	memset(&res, 0, sizeof(res));
	/* the first record's buffer must be freed (ASan/valgrind check) */
	assert_int_equal(dns_rdata_parse(DNS_TXT, data, len, &res), -1);
	assert_null(res.txt);
}

/* --- names ----------------------------------------------------------- */

static void
test_name_valid(void **state)
{
	static const struct { const char *name; int ok; } cases[] = {
		{ "example.com", 1 },
		{ "example.com.", 1 },
		{ "sel._domainkey.example.com", 1 },
		{ "a", 1 },
		{ "1.0.0.127.in-addr.arpa", 1 },
		{ "user+tag=x.example.com", 1 },	/* SPF macros */
		{ "", 0 },
		{ ".", 0 },
		{ "..", 0 },
		{ "a..b", 0 },
		{ ".a", 0 },
		{ "a b", 0 },
		{ "a\\.b", 0 },
		{ "a\tb", 0 },
		{ "a\x7f", 0 },
		{ "caf\xc3\xa9.example", 0 },
	};
	char big[300];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (dns_name_valid(cases[i].name) != cases[i].ok)
			fail_msg("case %zu: \"%s\"", i, cases[i].name);
	assert_int_equal(dns_name_valid(NULL), 0);

	/* label length: 63 yes, 64 no */
	memset(big, 'a', 64);
	big[63] = '\0';
	assert_int_equal(dns_name_valid(big), 1);
	big[63] = 'a';
	big[64] = '\0';
	assert_int_equal(dns_name_valid(big), 0);

	/* total: 253 characters yes (plus a final dot), 254 no */
	for (i = 0; i < 253; i++)
		big[i] = (i % 50 == 49) ? '.' : 'a';
	big[253] = '\0';
	assert_int_equal(dns_name_valid(big), 1);
	big[253] = '.';
	big[254] = '\0';
	assert_int_equal(dns_name_valid(big), 1);
	big[253] = 'a';
	assert_int_equal(dns_name_valid(big), 0);
}

static void
test_reverse_name(void **state)
{
	unsigned char v4[4] = { 192, 0, 2, 10 }, v6[16];
	char buf[80];

	(void)state;
	assert_int_equal(dns_reverse_name(AF_INET, v4, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "10.2.0.192.in-addr.arpa");
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::ab", v6), 1);
	assert_int_equal(dns_reverse_name(AF_INET6, v6, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	assert_int_equal(dns_name_valid(buf), 1);
	assert_int_equal(dns_reverse_name(AF_INET6, v6, buf, 40), -1);
	assert_int_equal(dns_reverse_name(AF_UNIX, v6, buf, sizeof(buf)), -1);
}

static void
test_names_of_enums(void **state)
{
	(void)state;
	assert_string_equal(dns_type_name(DNS_MX), "MX");
	assert_string_equal(dns_type_name(DNS_ADDR), "ADDR");
	assert_string_equal(dns_type_name(DNS_PTR), "PTR");
	assert_string_equal(dns_status_name(DNS_NXDOMAIN), "NXDOMAIN");
	assert_string_equal(dns_status_name(DNS_TEMPFAIL), "TEMPFAIL");
	assert_string_equal(dns_status_name(42), "?");
}

/* --- resolver set-up --------------------------------------------------- */

static void
test_resolver_options(void **state)
{
	static const struct { const char *fwd; const char *want; } bad[] = {
		{ "dns.example.com:53", "must be an IP address" },
		{ "127.0.0.1:0", "port" },
		{ "127.0.0.1:99999", "port" },
		{ "::1:53", "[addr]:port" },
		{ "[::1", "bad address" },
	};
	struct dns_options opt;
	struct dns_resolver *r;
	struct dns_result *res = NULL;
	char err[256];
	size_t i;
	int status;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&opt, 0, sizeof(opt));
		opt.forwarder = bad[i].fwd;
		err[0] = '\0';
		r = dns_resolver_new(NULL, &opt, err, sizeof(err));
		if (r != NULL || strstr(err, bad[i].want) == NULL)
			fail_msg("case %zu: %s: \"%s\"", i, bad[i].fwd, err);
	}

	memset(&opt, 0, sizeof(opt));
	opt.resolv_conf = "/nonexistent/resolv.conf";
	assert_null(dns_resolver_new(NULL, &opt, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/resolv.conf"));

	memset(&opt, 0, sizeof(opt));
	opt.timeout_ms = -1;
	assert_null(dns_resolver_new(NULL, &opt, err, sizeof(err)));

	/* good forms; nothing is sent by creating a resolver */
	memset(&opt, 0, sizeof(opt));
	opt.forwarder = "127.0.0.1:5353";
	r = dns_resolver_new(NULL, &opt, err, sizeof(err));
	assert_non_null(r);
	/* no loop: async look-ups refused, invalid names too */
	assert_int_equal(dns_lookup(r, "example.com", DNS_MX,
	    NULL, NULL, NULL, err, sizeof(err)), -1);
	assert_int_equal(dns_lookup_sync(r, "a..b", DNS_MX, &res, &status), -1);
	assert_null(res);
	dns_resolver_free(&r);
	assert_null(r);
	dns_resolver_free(&r);
	dns_resolver_free(NULL);

	opt.forwarder = "[::1]:5353";
	r = dns_resolver_new(NULL, &opt, err, sizeof(err));
	assert_non_null(r);
	dns_resolver_free(&r);
	opt.forwarder = "127.0.0.1";
	r = dns_resolver_new(NULL, &opt, err, sizeof(err));
	assert_non_null(r);
	dns_resolver_free(&r);
}

/* --- timeout, cancel, free against a silent server --------------------- */

struct silent {
	int		 fd;
	char		 addr[64];
};

static void
silent_open(struct silent *s)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	s->fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(s->fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u",
	    ntohs(sin.sin_port));
}

struct calls {
	int		 n;
	int		 status;
	char		 why[128];
	struct event_base *base;
	struct dns_resolver **rp;	/* free it from the callback */
};

static void
count_cb(int status, const struct dns_result *res, void *arg)
{
	struct calls *c = arg;

	c->n++;
	c->status = status;
	snprintf(c->why, sizeof(c->why), "%s", res->why);
	if (c->rp != NULL)
		dns_resolver_free(c->rp);
	event_base_loopbreak(c->base);
}

static void
stop_loop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static void
test_timeout_cancel_free(void **state)
{
	struct silent s;
	struct dns_options opt;
	struct dns_resolver *r;
	struct event_base *base = event_base_new();
	struct calls a, b;
	struct event *guard;
	struct timeval tv = { 3, 0 };
	uint64_t ida = 0, idb = 0;
	char err[256];

	(void)state;
	assert_non_null(base);
	silent_open(&s);
	memset(&opt, 0, sizeof(opt));
	opt.forwarder = s.addr;
	opt.timeout_ms = 200;
	r = dns_resolver_new(base, &opt, err, sizeof(err));
	assert_non_null(r);
	guard = evtimer_new(base, stop_loop, base);
	evtimer_add(guard, &tv);

	/* a timeout */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.base = b.base = base;
	assert_int_equal(dns_lookup(r, "a.example.com", DNS_MX, count_cb, &a,
	    &ida, err, sizeof(err)), 0);
	assert_int_equal(dns_lookup_addr(r, "b.example.com", count_cb, &b,
	    &idb, err, sizeof(err)), 0);
	assert_int_not_equal(ida, idb);
	assert_int_equal(dns_pending(r), 2);
	/* callbacks never run from inside dns_lookup */
	assert_int_equal(a.n + b.n, 0);
	/* cancel b: only a calls back */
	assert_int_equal(dns_cancel(r, idb), 0);
	assert_int_equal(dns_cancel(r, idb), -1);
	assert_int_equal(dns_cancel(r, 0), -1);
	assert_int_equal(dns_pending(r), 1);
	event_base_dispatch(base);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	assert_string_equal(a.why, "timeout after 200 ms");
	assert_int_equal(b.n, 0);
	assert_int_equal(dns_pending(r), 0);
	assert_int_equal(dns_cancel(r, ida), -1);	/* finished */

	/* free from inside a callback, with others still pending */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.base = b.base = base;
	a.rp = &r;
	assert_int_equal(dns_lookup(r, "c.example.com", DNS_TXT, count_cb, &a,
	    NULL, err, sizeof(err)), 0);
	/* b starts later than a, so a's timer fires first */
	usleep(50 * 1000);
	assert_int_equal(dns_lookup_addr(r, "d.example.com", count_cb, &b,
	    NULL, err, sizeof(err)), 0);
	event_base_dispatch(base);
	assert_int_equal(a.n, 1);
	assert_null(r);
	/* b must never run: give its timer time to have fired */
	tv.tv_sec = 0;
	tv.tv_usec = 400 * 1000;
	evtimer_add(guard, &tv);
	event_base_dispatch(base);
	assert_int_equal(b.n, 0);

	/* free with look-ups pending, outside any callback */
	r = dns_resolver_new(base, &opt, err, sizeof(err));
	assert_non_null(r);
	memset(&a, 0, sizeof(a));
	a.base = base;
	assert_int_equal(dns_lookup(r, "e.example.com", DNS_A, count_cb, &a,
	    NULL, err, sizeof(err)), 0);
	dns_resolver_free(&r);
	evtimer_add(guard, &tv);
	event_base_dispatch(base);
	assert_int_equal(a.n, 0);

	event_free(guard);
	event_base_free(base);
	close(s.fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rdata_table),
		cmocka_unit_test(test_rdata_name_limits),
		cmocka_unit_test(test_rdata_mx_sorted),
		cmocka_unit_test(test_rdata_txt_partial_failure),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_names_of_enums),
		cmocka_unit_test(test_reverse_name),
		cmocka_unit_test(test_resolver_options),
		cmocka_unit_test(test_timeout_cancel_free),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
