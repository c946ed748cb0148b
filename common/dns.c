/*
 * dns.c - MX/TXT/A/AAAA look-ups through libunbound (see dns.h).
 *
 * Why libunbound: libevent's evdns cannot ask for MX or TXT, and
 * libunbound also gives us a TTL-honouring cache, TCP fallback for large
 * answers, a forwarder with a port (tests run a DNS server on 127.0.0.1)
 * and DNSSEC for later DANE.
 *
 * How: libunbound runs the resolution in a background thread it starts
 * itself (ub_ctx_async(ctx, 1)) and writes finished answers to a pipe;
 * ub_fd() is that pipe, watched here by one persistent EV_READ event
 * whose handler calls ub_process(), which runs our per-query callbacks.
 * libunbound has no query timeout of its own, so each look-up also arms
 * an evtimer; whichever fires first wins, the other is cancelled.  (A
 * cancelled query's answer is dropped, but libunbound's thread finishes
 * its own retries, about 17 s for a silent server, in the background.)
 * libunbound prints its own errors, if any, on stderr.
 *
 * Caching: libunbound's own message and RRset caches, shared by every
 * look-up on the context, async or sync.  Entries live for the TTL of the
 * answer (capped at cache-max-ttl, 1 day by default; negative answers for
 * the SOA minimum), and a cached answer reports the remaining TTL in
 * ub_result.ttl.  libunbound counts in whole seconds, so an entry may be
 * served up to a second past its TTL.  Checked against dnsmasq's query
 * log (tests/integration/test_dns.sh): look-ups within the TTL reach the
 * server once, one after it reaches it again.
 *
 * SECURITY: every answer comes from the network.  The rdata is parsed
 * here with explicit bounds checks: fixed-size A/AAAA, an MX preference
 * followed by exactly one uncompressed host name whose labels are
 * letters, digits, '-' and '_', TXT character-strings that must exactly
 * fill the rdata.  Anything else makes the whole answer DNS_PERMFAIL.
 * Names asked for are checked too (length, labels, no escapes or
 * control characters) before libunbound sees them.
 *
 * Ownership and threading: see dns.h.  struct dns_query records live in
 * the resolver's list from dns_lookup() until their callback has run, so
 * dns_cancel() and dns_resolver_free() find everything outstanding;
 * libunbound's per-query argument points at them and ub_cancel() makes
 * sure a cancelled query's answer is dropped, never delivered.  A
 * callback may call dns_resolver_free(): the teardown then waits until
 * the dispatch that called it has unwound (depth counter).
 */

#include <sys/queue.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <unbound.h>

#include "dns.h"
#include "util.h"

#define RR_CLASS_IN	1
#define RR_TYPE_A	1
#define RR_TYPE_PTR	12
#define RR_TYPE_MX	15
#define RR_TYPE_TXT	16
#define RR_TYPE_AAAA	28

#define RCODE_NOERROR	0
#define RCODE_NXDOMAIN	3

#define WIRE_NAME_MAX	255
#define LABEL_MAX	63

struct dns_query {
	TAILQ_ENTRY(dns_query) entry;
	struct dns_resolver	*r;
	uint64_t		 id;
	enum dns_type		 type;
	char			 name[DNS_NAME_MAX + 2];
	dns_cb			 cb;
	void			*arg;
	int			 ub_id;		/* leaf: libunbound's id */
	struct event		*timer;		/* leaf: our timeout */
	struct dns_query	*parent;	/* leaf of a DNS_ADDR query */
	/* allocated up front, so that finishing never needs memory */
	struct dns_result	*res;
	/* DNS_ADDR only: the A and AAAA leaves and what they brought */
	uint64_t		 child_id[2];
	int			 child_status[2];
	char			 child_why[2][sizeof(((struct dns_result *)0)->why)];
	int			 children_left;
};

TAILQ_HEAD(dns_query_list, dns_query);

/*
 * struct dns_resolver - one libunbound context wired into one loop.
 *   ctx	libunbound context, thread-safe; its cache is the cache
 *   base	the loop (NULL: dns_lookup_sync() only)
 *   ev		persistent EV_READ on ub_fd(ctx), calls ub_process()
 *   queries	every outstanding async look-up, leaves and DNS_ADDR parents
 *   depth	> 0 while we are calling out (callbacks, ub_process)
 *   dying	dns_resolver_free() was called at depth > 0: finish later
 */
struct dns_resolver {
	struct ub_ctx		*ctx;
	struct event_base	*base;
	struct event		*ev;
	pthread_t		 loop_thread;
	int			 timeout_ms;
	uint64_t		 next_id;
	struct dns_query_list	 queries;
	size_t			 npending;	/* user-visible queries */
	int			 depth;
	int			 dying;
};

static void	resolver_destroy(struct dns_resolver *r);
static void	query_unlink(struct dns_query *q);
static void	query_free(struct dns_query *q);
static void	query_cancel(struct dns_query *q);
static void	query_done(struct dns_query *q, int status);
static void	addr_child_cb(int status, const struct dns_result *res,
		    void *arg);

static void
setwhy(struct dns_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
setwhy(struct dns_result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->why, sizeof(res->why), fmt, ap);
	va_end(ap);
}

const char *
dns_type_name(enum dns_type type)
{
	switch (type) {
	case DNS_A:	return ("A");
	case DNS_AAAA:	return ("AAAA");
	case DNS_MX:	return ("MX");
	case DNS_TXT:	return ("TXT");
	case DNS_ADDR:	return ("ADDR");
	case DNS_PTR:	return ("PTR");
	}
	return ("?");
}

const char *
dns_status_name(int status)
{
	switch (status) {
	case DNS_OK:		return ("OK");
	case DNS_NXDOMAIN:	return ("NXDOMAIN");
	case DNS_NODATA:	return ("NODATA");
	case DNS_TEMPFAIL:	return ("TEMPFAIL");
	case DNS_PERMFAIL:	return ("PERMFAIL");
	}
	return ("?");
}

static int
rr_type(enum dns_type type)
{
	switch (type) {
	case DNS_A:	return (RR_TYPE_A);
	case DNS_AAAA:	return (RR_TYPE_AAAA);
	case DNS_MX:	return (RR_TYPE_MX);
	case DNS_TXT:	return (RR_TYPE_TXT);
	case DNS_PTR:	return (RR_TYPE_PTR);
	case DNS_ADDR:	break;
	}
	return (-1);
}

/*
 * dns_name_valid - may this text be asked for?  1..253 characters (one
 * final dot allowed on top), labels of 1..63, printable ASCII without
 * blanks or backslashes: libunbound would read a backslash as an escape,
 * and nothing we look up (domains, DKIM selectors, SPF macro expansions)
 * needs one.
 */
int
dns_name_valid(const char *name)
{
	size_t len, label = 0, i;

	if (name == NULL)
		return (0);
	len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return (0);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return (0);
			label = 0;
			continue;
		}
		if (c <= 0x20 || c >= 0x7f || c == '\\')
			return (0);
		if (++label > LABEL_MAX)
			return (0);
	}
	return (1);
}

int
dns_reverse_name(int family, const void *addr, char *buf, size_t len)
{
	const unsigned char *a = addr;
	size_t o = 0;
	int i;

	if (family == AF_INET) {
		if (len < sizeof("255.255.255.255.in-addr.arpa"))
			return (-1);
		snprintf(buf, len, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2],
		    a[1], a[0]);
		return (0);
	}
	if (family != AF_INET6 || len < 32 * 2 + sizeof("ip6.arpa"))
		return (-1);
	for (i = 15; i >= 0; i--) {
		buf[o++] = "0123456789abcdef"[a[i] & 0xf];
		buf[o++] = '.';
		buf[o++] = "0123456789abcdef"[a[i] >> 4];
		buf[o++] = '.';
	}
	memcpy(buf + o, "ip6.arpa", sizeof("ip6.arpa"));
	return (0);
}

static int
host_char(unsigned char c)
{
	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_');
}

/*
 * wire_name - read one uncompressed wire-format name that must fill
 * buf[0..len) exactly, into text (no final dot; the root is ".").
 */
static int
wire_name(const unsigned char *buf, size_t len, char *out, size_t outlen,
    struct dns_result *res)
{
	size_t pos = 0, o = 0, i;

	for (;;) {
		size_t l;

		if (pos >= len) {
			setwhy(res, "name runs past the rdata");
			return (-1);
		}
		l = buf[pos];
		if (l & 0xc0) {
			setwhy(res, "compressed or extended label in rdata");
			return (-1);
		}
		pos++;
		if (l == 0)
			break;
		if (l > len - pos) {
			setwhy(res, "label runs past the rdata");
			return (-1);
		}
		if (pos + l + 1 > WIRE_NAME_MAX) {
			setwhy(res, "name longer than 255 octets");
			return (-1);
		}
		if (o > 0)
			out[o++] = '.';
		for (i = 0; i < l; i++) {
			if (!host_char(buf[pos + i])) {
				setwhy(res, "bad character in host name");
				return (-1);
			}
			/* 255 wire octets make at most 253 characters */
			if (o + 1 >= outlen) {
				setwhy(res, "name too long");
				return (-1);
			}
			out[o++] = (char)buf[pos + i];
		}
		pos += l;
	}
	if (pos != len) {
		setwhy(res, "trailing octets after name");
		return (-1);
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	return (0);
}

static int
parse_mx(const unsigned char *p, size_t len, struct dns_mx *mx,
    struct dns_result *res)
{
	if (len < 3) {
		setwhy(res, "MX rdata too short");
		return (-1);
	}
	mx->preference = (uint16_t)((p[0] << 8) | p[1]);
	return (wire_name(p + 2, len - 2, mx->host, sizeof(mx->host), res));
}

static int
parse_txt(const unsigned char *p, size_t len, struct dns_txt *txt,
    struct dns_result *res)
{
	size_t pos, total = 0, o = 0;

	if (len == 0) {
		setwhy(res, "empty TXT rdata");
		return (-1);
	}
	for (pos = 0; pos < len; pos += 1 + p[pos]) {
		if (p[pos] > len - pos - 1) {
			setwhy(res, "TXT string runs past the rdata");
			return (-1);
		}
		total += p[pos];
	}
	if ((txt->data = malloc(total + 1)) == NULL) {
		setwhy(res, "out of memory");
		return (-1);
	}
	for (pos = 0; pos < len; pos += 1 + p[pos]) {
		memcpy(txt->data + o, p + pos + 1, p[pos]);
		o += p[pos];
	}
	txt->data[o] = '\0';
	txt->len = o;
	return (0);
}

static int
parse_addr(int family, const unsigned char *p, size_t len,
    struct sockaddr_storage *ss, struct dns_result *res)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (len != sizeof(sin->sin_addr)) {
			setwhy(res, "A rdata is %zu octets, not 4", len);
			return (-1);
		}
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, p, len);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (len != sizeof(sin6->sin6_addr)) {
			setwhy(res, "AAAA rdata is %zu octets, not 16", len);
			return (-1);
		}
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, p, len);
	}
	return (0);
}

/* mx_cmp - by preference, ties in answer order (qsort is not stable) */
static int
mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;

	if (x->preference != y->preference)
		return (x->preference < y->preference ? -1 : 1);
	return (x < y ? -1 : x > y);
}

static void
result_clear_records(struct dns_result *res)
{
	size_t i;

	if (res->txt != NULL)
		for (i = 0; i < res->count; i++)
			free(res->txt[i].data);
	free(res->mx);
	free(res->txt);
	free(res->addr);
	free(res->ptr);
	res->mx = NULL;
	res->txt = NULL;
	res->addr = NULL;
	res->ptr = NULL;
	res->count = 0;
}

/*
 * dns_rdata_parse - turn libunbound's rdata list (NULL-terminated data[],
 * lengths in len[]) into res->mx / txt / addr and res->count.  On a
 * malformed record: -1, res->why says why and res holds no records.
 */
int
dns_rdata_parse(enum dns_type type, char *const *data, const int *len,
    struct dns_result *res)
{
	size_t n = 0, i;
	int rc = 0;

	result_clear_records(res);
	while (data != NULL && data[n] != NULL)
		n++;
	if (n == 0)
		return (0);
	for (i = 0; i < n; i++)
		if (len[i] < 0) {
			setwhy(res, "negative rdata length");
			return (-1);
		}
	switch (type) {
	case DNS_MX:
		res->mx = calloc(n, sizeof(*res->mx));
		break;
	case DNS_TXT:
		res->txt = calloc(n, sizeof(*res->txt));
		break;
	case DNS_A:
	case DNS_AAAA:
		res->addr = calloc(n, sizeof(*res->addr));
		break;
	case DNS_PTR:
		res->ptr = calloc(n, sizeof(*res->ptr));
		break;
	case DNS_ADDR:
		setwhy(res, "no rdata for ADDR");
		return (-1);
	}
	if (res->mx == NULL && res->txt == NULL && res->addr == NULL &&
	    res->ptr == NULL) {
		setwhy(res, "out of memory");
		return (-1);
	}
	res->count = n;	/* so that a failure frees every TXT string */
	for (i = 0; i < n && rc == 0; i++) {
		const unsigned char *p = (const unsigned char *)data[i];
		size_t l = (size_t)len[i];

		switch (type) {
		case DNS_MX:
			rc = parse_mx(p, l, &res->mx[i], res);
			break;
		case DNS_TXT:
			rc = parse_txt(p, l, &res->txt[i], res);
			break;
		case DNS_A:
			rc = parse_addr(AF_INET, p, l, &res->addr[i], res);
			break;
		case DNS_AAAA:
			rc = parse_addr(AF_INET6, p, l, &res->addr[i], res);
			break;
		case DNS_PTR:
			rc = wire_name(p, l, res->ptr[i].host,
			    sizeof(res->ptr[i].host), res);
			break;
		case DNS_ADDR:
			break;
		}
	}
	if (rc == -1) {
		result_clear_records(res);
		return (-1);
	}
	if (type == DNS_MX)
		qsort(res->mx, n, sizeof(*res->mx), mx_cmp);
	return (0);
}

static struct dns_result *
result_new(enum dns_type type, const char *name)
{
	struct dns_result *res;

	if ((res = calloc(1, sizeof(*res))) == NULL)
		return (NULL);
	res->type = type;
	res->rcode = -1;
	str_copy(res->name, name, sizeof(res->name));
	return (res);
}

void
dns_result_free(struct dns_result **resp)
{
	if (resp == NULL || *resp == NULL)
		return;
	result_clear_records(*resp);
	free(*resp);
	*resp = NULL;
}

static const char *
rcode_name(int rcode)
{
	static const char *names[] = {
		"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
		"REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
		"NOTZONE",
	};

	if (rcode >= 0 && (size_t)rcode < sizeof(names) / sizeof(names[0]))
		return (names[rcode]);
	return ("unknown rcode");
}

/*
 * result_from_ub - classify and parse one libunbound answer into res;
 * returns the dns_status.  Takes no ownership of ub.
 */
static int
result_from_ub(struct dns_result *res, int err, const struct ub_result *ub)
{
	if (err != 0 || ub == NULL) {
		setwhy(res, "resolver: %s", ub_strerror(err));
		return (DNS_TEMPFAIL);
	}
	res->rcode = ub->rcode;
	res->ttl = ub->ttl > 0 ? (uint32_t)ub->ttl : 0;
	res->secure = ub->secure;
	if (ub->bogus) {
		setwhy(res, "DNSSEC validation failed: %.80s",
		    ub->why_bogus ? ub->why_bogus : "bogus");
		return (DNS_TEMPFAIL);
	}
	if (ub->rcode == RCODE_NXDOMAIN || ub->nxdomain) {
		setwhy(res, "NXDOMAIN");
		return (DNS_NXDOMAIN);
	}
	if (ub->rcode != RCODE_NOERROR) {
		setwhy(res, "%s", rcode_name(ub->rcode));
		return (DNS_TEMPFAIL);
	}
	if (!ub->havedata || ub->data == NULL || ub->data[0] == NULL) {
		setwhy(res, "no %s record", dns_type_name(res->type));
		return (DNS_NODATA);
	}
	if (dns_rdata_parse(res->type, ub->data, ub->len, res) == -1)
		return (DNS_PERMFAIL);
	return (DNS_OK);
}

/*
 * addr_merge - fold a finished A or AAAA leaf into a DNS_ADDR result,
 * whichever came first: IPv4 addresses go in front, IPv6 at the end; the
 * smaller TTL is kept.
 */
static int
addr_merge(struct dns_result *into, int status, const struct dns_result *leaf)
{
	struct sockaddr_storage *a;

	if (status != DNS_OK || leaf->count == 0)
		return (0);
	a = reallocarray(into->addr, into->count + leaf->count, sizeof(*a));
	if (a == NULL)
		return (-1);
	if (leaf->type == DNS_A) {
		memmove(a + leaf->count, a, into->count * sizeof(*a));
		memcpy(a, leaf->addr, leaf->count * sizeof(*a));
	} else
		memcpy(a + into->count, leaf->addr, leaf->count * sizeof(*a));
	into->addr = a;
	if (into->count == 0 || leaf->ttl < into->ttl)
		into->ttl = leaf->ttl;
	into->count += leaf->count;
	into->secure = into->secure && leaf->secure;
	return (0);
}

/*
 * addr_status - the DNS_ADDR verdict once both leaves are in: any
 * address is success (one family is enough to connect); else a
 * temporary failure wins (asking again may bring addresses), then
 * NXDOMAIN, then a malformed answer, then NODATA.
 */
static int
addr_status(struct dns_result *m, const int st[2], const char *why[2])
{
	static const int order[] = {
		DNS_TEMPFAIL, DNS_NXDOMAIN, DNS_PERMFAIL, DNS_NODATA
	};
	size_t i;
	int k;

	if (m->count > 0) {
		m->why[0] = '\0';
		return (DNS_OK);
	}
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		for (k = 0; k < 2; k++)
			if (st[k] == order[i]) {
				if (order[i] == DNS_NODATA)
					setwhy(m, "no A or AAAA record");
				else
					setwhy(m, "%s: %s", k ? "AAAA" : "A",
					    why[k]);
				return (st[k]);
			}
	setwhy(m, "no address");
	return (DNS_NODATA);
}

/* --- the async path ------------------------------------------------- */

static struct dns_query *
query_find(struct dns_resolver *r, uint64_t id)
{
	struct dns_query *q;

	TAILQ_FOREACH(q, &r->queries, entry)
		if (q->id == id)
			return (q);
	return (NULL);
}

static void
query_unlink(struct dns_query *q)
{
	TAILQ_REMOVE(&q->r->queries, q, entry);
	if (q->parent == NULL)
		q->r->npending--;
	if (q->timer != NULL) {
		event_free(q->timer);
		q->timer = NULL;
	}
}

/* query_cancel - forget a query without calling anyone back */
static void
query_cancel(struct dns_query *q)
{
	struct dns_resolver *r = q->r;
	int k;

	if (q->type == DNS_ADDR) {
		for (k = 0; k < 2; k++) {
			struct dns_query *c = query_find(r, q->child_id[k]);

			if (c != NULL)
				query_cancel(c);
		}
	} else if (q->ub_id != 0) {
		/* With the threaded background worker, ub_cancel() marks
		 * the query so its answer is dropped even if already in
		 * the pipe; it only fails for an id that was delivered,
		 * which cannot be one still in our list. */
		(void)ub_cancel(r->ctx, q->ub_id);
	}
	query_unlink(q);
	query_free(q);
}

static void
query_free(struct dns_query *q)
{
	dns_result_free(&q->res);
	free(q);
}

/*
 * query_done - a leaf or DNS_ADDR query is finished: take it out of the
 * list, call back, free.  The resolver may be freed by the callback;
 * then resolver_destroy() runs here, unless an outer dispatch is still
 * on the stack.
 */
static void
query_done(struct dns_query *q, int status)
{
	struct dns_resolver *r = q->r;

	query_unlink(q);
	r->depth++;
	q->cb(status, q->res, q->arg);
	r->depth--;
	query_free(q);
	if (r->dying && r->depth == 0)
		resolver_destroy(r);
}

/* ub_answer_cb - libunbound delivers an answer (from ub_process) */
static void
ub_answer_cb(void *arg, int err, struct ub_result *ub)
{
	struct dns_query *q = arg;
	int status;

	q->ub_id = 0;
	status = result_from_ub(q->res, err, ub);
	ub_resolve_free(ub);
	query_done(q, status);
}

/* query_timeout - our limit ran out before libunbound answered */
static void
query_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	(void)fd;
	(void)what;
	if (q->ub_id != 0) {
		(void)ub_cancel(q->r->ctx, q->ub_id);
		q->ub_id = 0;
	}
	setwhy(q->res, "timeout after %d ms", q->r->timeout_ms);
	query_done(q, DNS_TEMPFAIL);
}

/* ub_readable - libunbound's answer pipe has data: dispatch answers */
static void
ub_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	(void)fd;
	(void)what;
	r->depth++;
	/* A failure here means the background worker is gone; pending
	 * queries then end through their timers. */
	(void)ub_process(r->ctx);
	r->depth--;
	if (r->dying && r->depth == 0)
		resolver_destroy(r);
}

static struct dns_query *
query_new(struct dns_resolver *r, const char *name, enum dns_type type,
    dns_cb cb, void *arg, struct dns_query *parent)
{
	struct dns_query *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return (NULL);
	if ((q->res = result_new(type, name)) == NULL) {
		free(q);
		return (NULL);
	}
	q->r = r;
	q->id = r->next_id++;
	q->type = type;
	str_copy(q->name, name, sizeof(q->name));
	q->cb = cb;
	q->arg = arg;
	q->parent = parent;
	TAILQ_INSERT_TAIL(&r->queries, q, entry);
	if (parent == NULL)
		r->npending++;
	return (q);
}

/* leaf_start - one libunbound query with its timer */
static struct dns_query *
leaf_start(struct dns_resolver *r, const char *name, enum dns_type type,
    dns_cb cb, void *arg, struct dns_query *parent, char *err, size_t errlen)
{
	struct dns_query *q;
	struct timeval tv;
	int rc;

	if ((q = query_new(r, name, type, cb, arg, parent)) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	tv.tv_sec = r->timeout_ms / 1000;
	tv.tv_usec = (r->timeout_ms % 1000) * 1000;
	if ((q->timer = evtimer_new(r->base, query_timeout, q)) == NULL ||
	    evtimer_add(q->timer, &tv) == -1) {
		errbuf_set(err, errlen, "cannot arm the query timer");
		query_unlink(q);
		query_free(q);
		return (NULL);
	}
	rc = ub_resolve_async(r->ctx, q->name, rr_type(type), RR_CLASS_IN, q,
	    ub_answer_cb, &q->ub_id);
	if (rc != 0) {
		errbuf_set(err, errlen, "libunbound: %s", ub_strerror(rc));
		q->ub_id = 0;
		query_unlink(q);
		query_free(q);
		return (NULL);
	}
	return (q);
}

/* addr_child_cb - one family of a DNS_ADDR query is in */
static void
addr_child_cb(int status, const struct dns_result *res, void *arg)
{
	struct dns_query *p = arg;
	int k = res->type == DNS_AAAA;
	const char *why[2];

	p->child_id[k] = 0;
	p->child_status[k] = status;
	str_copy(p->child_why[k], res->why, sizeof(p->child_why[k]));
	if (addr_merge(p->res, status, res) == -1) {
		p->child_status[k] = DNS_TEMPFAIL;
		str_copy(p->child_why[k], "out of memory",
		    sizeof(p->child_why[k]));
	}
	if (--p->children_left > 0)
		return;
	why[0] = p->child_why[0];
	why[1] = p->child_why[1];
	query_done(p, addr_status(p->res, p->child_status, why));
}

/*
 * dns_lookup - start an async look-up of (name, type).  On 0 the callback
 * runs exactly once, later, from the loop (never from inside this call),
 * unless dns_cancel() or dns_resolver_free() comes first; *id_r (may be
 * NULL) names the look-up for dns_cancel().  On -1 nothing was started
 * and err says why (bad name, no loop, out of memory).
 */
int
dns_lookup(struct dns_resolver *r, const char *name, enum dns_type type,
    dns_cb cb, void *arg, uint64_t *id_r, char *err, size_t errlen)
{
	struct dns_query *p;
	int k;

	if (r->base == NULL || r->dying) {
		errbuf_set(err, errlen, "resolver has no event loop");
		return (-1);
	}
	if (cb == NULL) {
		errbuf_set(err, errlen, "no callback");
		return (-1);
	}
	if (!dns_name_valid(name)) {
		errbuf_set(err, errlen, "invalid domain name");
		return (-1);
	}
	if (type != DNS_ADDR) {
		p = leaf_start(r, name, type, cb, arg, NULL, err, errlen);
		if (p == NULL)
			return (-1);
		if (id_r != NULL)
			*id_r = p->id;
		return (0);
	}
	if ((p = query_new(r, name, DNS_ADDR, cb, arg, NULL)) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	p->res->secure = 1;
	for (k = 0; k < 2; k++) {
		struct dns_query *c = leaf_start(r, name, k ? DNS_AAAA : DNS_A,
		    addr_child_cb, p, p, err, errlen);

		if (c == NULL) {
			query_cancel(p);
			return (-1);
		}
		p->child_id[k] = c->id;
		p->children_left++;
	}
	if (id_r != NULL)
		*id_r = p->id;
	return (0);
}

/* dns_lookup_addr - A and AAAA of name in one look-up (DNS_ADDR) */
int
dns_lookup_addr(struct dns_resolver *r, const char *name, dns_cb cb,
    void *arg, uint64_t *id_r, char *err, size_t errlen)
{
	return (dns_lookup(r, name, DNS_ADDR, cb, arg, id_r, err, errlen));
}

/*
 * dns_cancel - forget look-up id: its callback will not run.  -1 when
 * the id is unknown (finished, cancelled, or never was).  Safe from a
 * callback.
 */
int
dns_cancel(struct dns_resolver *r, uint64_t id)
{
	struct dns_query *q;

	if (r == NULL || (q = query_find(r, id)) == NULL || q->parent != NULL)
		return (-1);
	query_cancel(q);
	return (0);
}

/* dns_pending - how many look-ups started by dns_lookup() are running */
size_t
dns_pending(const struct dns_resolver *r)
{
	return (r->npending);
}

/* --- the blocking path ---------------------------------------------- */

/*
 * A blocking look-up from a thread other than the loop's goes through the
 * same background worker and cache as the async ones: ub_resolve_async()
 * with sync_answer_cb(), run by the loop's ub_process(), which hands the
 * answer over under a mutex.  The caller waits on a condition variable
 * until the resolver's timeout and cancels what is left.  ub_cancel() and
 * libunbound's answer dispatch decide under one lock: either the cancel
 * wins (the callback never runs) or the callback runs; in the latter
 * case we wait for it to finish before our stack frame goes away.
 * DNS_ADDR sends A and AAAA together, under one deadline.
 */
struct sync_wait;

struct sync_slot {
	struct sync_wait	*w;
	int			 rrtype;
	int			 ub_id;
	int			 started;
	int			 done;
	int			 cancelled;	/* our timeout won */
	int			 err;
	struct ub_result	*ub;
};

struct sync_wait {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct sync_slot	 slot[2];
};

static void
sync_answer_cb(void *arg, int err, struct ub_result *ub)
{
	struct sync_slot *s = arg;
	struct sync_wait *w = s->w;

	pthread_mutex_lock(&w->mu);
	s->err = err;
	s->ub = ub;
	s->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* sync_pending - slots still owed an answer; call with w->mu held */
static int
sync_pending(const struct sync_wait *w, int n)
{
	int k, left = 0;

	for (k = 0; k < n; k++)
		if (w->slot[k].started && !w->slot[k].done &&
		    !w->slot[k].cancelled)
			left++;
	return (left);
}

/*
 * sync_resolve - n (1 or 2) blocking queries for name; fills each slot's
 * err/ub (as ub_resolve would) or sets its cancelled flag on timeout.
 */
static void
sync_resolve(struct dns_resolver *r, const char *name, struct sync_wait *w,
    int n)
{
	pthread_condattr_t ca;
	struct timespec deadline;
	int k, rc;

	if (r->base == NULL ||
	    pthread_equal(pthread_self(), r->loop_thread)) {
		/* No loop to run ub_process(), or we are that loop: this
		 * thread resolves by itself.  libunbound bounds that by its
		 * retry schedule only (see dns_lookup_sync). */
		for (k = 0; k < n; k++)
			w->slot[k].err = ub_resolve(r->ctx, name,
			    w->slot[k].rrtype, RR_CLASS_IN, &w->slot[k].ub);
		return;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += r->timeout_ms / 1000;
	deadline.tv_nsec += (long)(r->timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	for (k = 0; k < n; k++) {
		struct sync_slot *s = &w->slot[k];

		s->w = w;
		rc = ub_resolve_async(r->ctx, name, s->rrtype, RR_CLASS_IN, s,
		    sync_answer_cb, &s->ub_id);
		if (rc != 0) {
			s->err = rc;
			s->done = 1;
		} else
			s->started = 1;
	}
	pthread_mutex_lock(&w->mu);
	while (sync_pending(w, n) > 0) {
		if (pthread_cond_timedwait(&w->cv, &w->mu, &deadline) !=
		    ETIMEDOUT)
			continue;
		/* Out of time: cancel what has not come.  Our mutex is
		 * dropped around ub_cancel(): no lock of ours is ever held
		 * while taking one of libunbound's. */
		for (k = 0; k < n; k++) {
			struct sync_slot *s = &w->slot[k];

			if (!s->started || s->done)
				continue;
			pthread_mutex_unlock(&w->mu);
			rc = ub_cancel(r->ctx, s->ub_id);
			pthread_mutex_lock(&w->mu);
			if (rc == 0 && !s->done)
				s->cancelled = 1;
			/* else: already being delivered, wait for it */
		}
		while (sync_pending(w, n) > 0)
			pthread_cond_wait(&w->cv, &w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}

/* sync_result - turn one finished slot into res; returns the status */
static int
sync_result(struct dns_resolver *r, struct sync_slot *s,
    struct dns_result *res)
{
	int status;

	if (s->cancelled) {
		setwhy(res, "timeout after %d ms", r->timeout_ms);
		return (DNS_TEMPFAIL);
	}
	status = result_from_ub(res, s->err, s->ub);
	ub_resolve_free(s->ub);
	s->ub = NULL;
	return (status);
}

/*
 * dns_lookup_sync - blocking look-up for worker threads.  0: *status_r
 * holds the dns_status and *res_r a result the caller frees with
 * dns_result_free(); -1: invalid name or out of memory, nothing set.
 *
 * Timeout: honoured when called from a thread other than the loop's
 * while the loop runs (the worker-pool case): the queries go through the
 * loop's ub_process().  If the loop is not running, such a call ends as
 * a TEMPFAIL timeout.  From the loop's own thread, or on a resolver made
 * without a loop, the calling thread resolves by itself with
 * ub_resolve(), which only libunbound's retry schedule bounds (measured:
 * about 17 s for a forwarder that never answers): avoid that on a loop.
 */
int
dns_lookup_sync(struct dns_resolver *r, const char *name, enum dns_type type,
    struct dns_result **res_r, int *status_r)
{
	struct sync_wait w;
	struct dns_result *res, *leaf[2] = { NULL, NULL };
	int st[2], k, n = type == DNS_ADDR ? 2 : 1;
	const char *why[2];

	if (!dns_name_valid(name))
		return (-1);
	if ((res = result_new(type, name)) == NULL)
		return (-1);
	memset(&w, 0, sizeof(w));
	if (type == DNS_ADDR) {
		for (k = 0; k < 2; k++)
			if ((leaf[k] = result_new(k ? DNS_AAAA : DNS_A,
			    name)) == NULL) {
				dns_result_free(&leaf[0]);
				dns_result_free(&res);
				return (-1);
			}
		w.slot[0].rrtype = RR_TYPE_A;
		w.slot[1].rrtype = RR_TYPE_AAAA;
	} else
		w.slot[0].rrtype = rr_type(type);
	sync_resolve(r, name, &w, n);
	if (type != DNS_ADDR) {
		*status_r = sync_result(r, &w.slot[0], res);
		*res_r = res;
		return (0);
	}
	res->secure = 1;
	for (k = 0; k < 2; k++) {
		st[k] = sync_result(r, &w.slot[k], leaf[k]);
		if (addr_merge(res, st[k], leaf[k]) == -1) {
			st[k] = DNS_TEMPFAIL;
			setwhy(leaf[k], "out of memory");
		}
		why[k] = leaf[k]->why;
	}
	*status_r = addr_status(res, st, why);
	for (k = 0; k < 2; k++)
		dns_result_free(&leaf[k]);
	*res_r = res;
	return (0);
}

/* --- set-up and teardown -------------------------------------------- */

static int
ub_set(struct ub_ctx *ctx, const char *opt, const char *val, char *err,
    size_t errlen)
{
	int rc;

	if ((rc = ub_ctx_set_option(ctx, opt, val)) != 0) {
		errbuf_set(err, errlen, "libunbound option %s %s: %s", opt, val,
		    ub_strerror(rc));
		return (-1);
	}
	return (0);
}

/* libunbound's default local zones we make transparent (see above) */
static const char *const doc_reverse[] = {
	"2.0.192.in-addr.arpa. transparent",
	"100.51.198.in-addr.arpa. transparent",
	"113.0.203.in-addr.arpa. transparent",
	"8.b.d.0.1.0.0.2.ip6.arpa. transparent",
	NULL
};

/*
 * forwarder_set - "addr:port" / "[v6]:port" / "addr" into libunbound's
 * "addr@port".  Only IP literals: resolving the resolver's own address
 * would need a resolver.
 */
static int
forwarder_set(struct ub_ctx *ctx, const char *fwd, char *err, size_t errlen)
{
	struct hostport hp;
	struct in6_addr a6;
	struct in_addr a4;
	char spec[HOSTPORT_HOSTMAX + 8];
	int rc;

	if (parse_hostport(fwd, 53, &hp, err, errlen) == -1)
		return (-1);
	if (inet_pton(AF_INET, hp.host, &a4) != 1 &&
	    inet_pton(AF_INET6, hp.host, &a6) != 1) {
		errbuf_set(err, errlen,
		    "forwarder \"%s\" must be an IP address, not a name", fwd);
		return (-1);
	}
	snprintf(spec, sizeof(spec), "%s@%d", hp.host, hp.port);
	if ((rc = ub_ctx_set_fwd(ctx, spec)) != 0) {
		errbuf_set(err, errlen, "forwarder \"%s\": %s", fwd,
		    ub_strerror(rc));
		return (-1);
	}
	return (0);
}

/*
 * dns_resolver_new - a resolver for base (NULL: blocking look-ups only)
 * with opt (NULL: all defaults).  Nothing is sent until the first
 * look-up.  NULL and err filled on failure.
 */
struct dns_resolver *
dns_resolver_new(struct event_base *base, const struct dns_options *opt,
    char *err, size_t errlen)
{
	static const struct dns_options defaults;
	struct dns_resolver *r;
	int rc, fd;
	size_t i;

	if (opt == NULL)
		opt = &defaults;
	if (opt->timeout_ms < 0) {
		errbuf_set(err, errlen, "negative timeout");
		return (NULL);
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	TAILQ_INIT(&r->queries);
	r->base = base;
	r->loop_thread = pthread_self();
	r->next_id = 1;
	r->timeout_ms = opt->timeout_ms ? opt->timeout_ms :
	    DNS_TIMEOUT_DEFAULT_MS;
	if ((r->ctx = ub_ctx_create()) == NULL) {
		errbuf_set(err, errlen, "cannot create libunbound context");
		goto fail;
	}
	/* A thread, not a forked process: shared cache, no zombie, and
	 * ub_cancel() drops answers already on their way. */
	if ((rc = ub_ctx_async(r->ctx, 1)) != 0) {
		errbuf_set(err, errlen, "libunbound async: %s", ub_strerror(rc));
		goto fail;
	}
	/* Forwarders on 127.0.0.1 (a local cache, our tests) are fine. */
	if (ub_set(r->ctx, "do-not-query-localhost:", "no", err, errlen) == -1)
		goto fail;
	/* libunbound answers RFC 6761's "test." itself (NXDOMAIN); ask
	 * the servers instead, so that test setups (example.test on a
	 * local forwarder) resolve.  Real servers answer NXDOMAIN anyway. */
	if (ub_set(r->ctx, "local-zone:", "test. transparent", err,
	    errlen) == -1)
		goto fail;
	/* The same for the reverse zones of the documentation networks
	 * (RFC 5737, RFC 3849), so that PTR look-ups of test addresses
	 * reach the servers too. */
	for (i = 0; doc_reverse[i] != NULL; i++)
		if (ub_set(r->ctx, "local-zone:", doc_reverse[i], err,
		    errlen) == -1)
			goto fail;
	if (opt->trust_anchor_file != NULL) {
		if ((rc = ub_ctx_add_ta_file(r->ctx,
		    opt->trust_anchor_file)) != 0) {
			errbuf_set(err, errlen, "trust anchor %s: %s",
			    opt->trust_anchor_file, ub_strerror(rc));
			goto fail;
		}
	} else if (ub_set(r->ctx, "module-config:", "iterator", err,
	    errlen) == -1) {
		/* no anchor: the validator would only cost time */
		goto fail;
	}
	if (opt->forwarder != NULL && opt->forwarder[0] != '\0') {
		if (forwarder_set(r->ctx, opt->forwarder, err, errlen) == -1)
			goto fail;
	} else if ((rc = ub_ctx_resolvconf(r->ctx, opt->resolv_conf)) != 0) {
		errbuf_set(err, errlen, "%s: %s", opt->resolv_conf ?
		    opt->resolv_conf : "/etc/resolv.conf",
		    rc == UB_READFILE ? strerror(errno) : ub_strerror(rc));
		goto fail;
	}
	if (opt->hosts_file != NULL &&
	    (rc = ub_ctx_hosts(r->ctx, opt->hosts_file)) != 0) {
		errbuf_set(err, errlen, "%s: %s", opt->hosts_file,
		    rc == UB_READFILE ? strerror(errno) : ub_strerror(rc));
		goto fail;
	}
	if (base != NULL) {
		if ((fd = ub_fd(r->ctx)) == -1) {
			errbuf_set(err, errlen, "libunbound has no answer pipe");
			goto fail;
		}
		r->ev = event_new(base, fd, EV_READ | EV_PERSIST, ub_readable,
		    r);
		if (r->ev == NULL || event_add(r->ev, NULL) == -1) {
			errbuf_set(err, errlen, "cannot watch the answer pipe");
			goto fail;
		}
	}
	return (r);
fail:
	resolver_destroy(r);
	return (NULL);
}

static void
resolver_destroy(struct dns_resolver *r)
{
	struct dns_query *q;

	while ((q = TAILQ_FIRST(&r->queries)) != NULL)
		query_cancel(q);
	if (r->ev != NULL)
		event_free(r->ev);
	/* Stops and joins the background thread; queries still in
	 * libunbound are freed without their callbacks. */
	if (r->ctx != NULL)
		ub_ctx_delete(r->ctx);
	free(r);
}

/*
 * dns_resolver_free - cancel every outstanding look-up (their callbacks
 * are NOT called) and free everything.  May be called from a dns
 * callback: the teardown then finishes when that dispatch returns.  No
 * dns_lookup_sync() may be running.  Sets *rp to NULL; NULL is fine.
 */
void
dns_resolver_free(struct dns_resolver **rp)
{
	struct dns_resolver *r;
	struct dns_query *q;

	if (rp == NULL || (r = *rp) == NULL)
		return;
	*rp = NULL;
	if (r->depth > 0) {
		while ((q = TAILQ_FIRST(&r->queries)) != NULL)
			query_cancel(q);
		r->dying = 1;
		return;
	}
	resolver_destroy(r);
}
