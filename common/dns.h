/*
 * dns.h - asynchronous DNS look-ups (MX, TXT, A, AAAA) from a libevent
 * loop, built on libunbound, with a blocking variant for worker threads.
 *
 * One struct dns_resolver per process: it owns a libunbound context (its
 * cache is shared by every look-up, async or sync, and honours the TTLs
 * of the answers), a background resolver thread started by libunbound on
 * the first async look-up, and one persistent read event on the loop.
 *
 * Contract of an async look-up: dns_lookup() returns 0 and its callback
 * then runs exactly once, from the loop and never from inside
 * dns_lookup(), unless dns_cancel() or dns_resolver_free() comes first
 * (then never).  On -1 nothing was started and no callback will run.
 *
 * Ownership: a struct dns_result passed to a callback belongs to the
 * resolver and is freed when the callback returns: copy what you keep.
 * A result returned by dns_lookup_sync() belongs to the caller, who frees
 * it with dns_result_free().
 *
 * Threading: dns_resolver_new(), dns_lookup(), dns_cancel() and
 * dns_resolver_free() run on the loop's thread only; callbacks run there
 * too.  dns_lookup_sync() may run on any thread, concurrently, as long as
 * the resolver outlives the call.
 */
#ifndef FERRY_DNS_H
#define FERRY_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct dns_resolver;

/* What to ask.  DNS_ADDR asks A and AAAA at once and merges them.
 * DNS_PTR asks the name as given: the caller builds the in-addr.arpa /
 * ip6.arpa name (dns_reverse_name()). */
enum dns_type {
	DNS_A,
	DNS_AAAA,
	DNS_MX,
	DNS_TXT,
	DNS_ADDR,
	DNS_PTR
};

/*
 * The outcome of one look-up.  Only DNS_OK carries records; the others
 * carry a reason in dns_result.why.
 *   DNS_OK        the name has records of the type (count >= 1)
 *   DNS_NXDOMAIN  the name does not exist
 *   DNS_NODATA    the name exists but has no record of the type
 *   DNS_TEMPFAIL  SERVFAIL, REFUSED, timeout, network or resource trouble:
 *                 asking again later may work
 *   DNS_PERMFAIL  the answer was malformed (bad rdata, bad name)
 */
enum dns_status {
	DNS_OK,
	DNS_NXDOMAIN,
	DNS_NODATA,
	DNS_TEMPFAIL,
	DNS_PERMFAIL
};

#define DNS_NAME_MAX		253	/* text form, without the final dot */
#define DNS_TIMEOUT_DEFAULT_MS	10000

/*
 * Resolver settings.  Zero every field (memset or = { 0 }) and set what
 * you need; the strings are copied by dns_resolver_new().
 */
struct dns_options {
	/* "addr:port", "[v6addr]:port" or "addr" (port 53): every query
	 * goes there, recursion desired.  An IP address, never a name.
	 * NULL or "": the nameservers of resolv_conf. */
	const char	*forwarder;
	/* NULL: /etc/resolv.conf.  Ignored when forwarder is set. */
	const char	*resolv_conf;
	/* A hosts(5) file whose entries answer A/AAAA; NULL: none. */
	const char	*hosts_file;
	/* A DNSSEC trust anchor file (DS/DNSKEY records); NULL: no
	 * validation, and dns_result.secure is always 0. */
	const char	*trust_anchor_file;
	/* Per look-up limit in milliseconds, 0: DNS_TIMEOUT_DEFAULT_MS.
	 * An async look-up that runs over it is cancelled and reported as
	 * DNS_TEMPFAIL "timeout". */
	int		 timeout_ms;
};

/* One MX record.  A null MX (RFC 7505: "0 .") has host ".". */
struct dns_mx {
	uint16_t	 preference;
	char		 host[DNS_NAME_MAX + 2];
};

/* One PTR record: the host name it points to (no final dot). */
struct dns_ptr {
	char		 host[DNS_NAME_MAX + 2];
};

/* One TXT record: its character-strings concatenated.  May contain NUL
 * bytes, so use len; data[len] is a NUL for convenience. */
struct dns_txt {
	unsigned char	*data;
	size_t		 len;
};

/*
 * A parsed answer.  The array that matches the type is set, the others
 * are NULL: mx (DNS_MX, sorted by preference, ties in answer order), txt
 * (DNS_TXT, answer order), addr (DNS_A, DNS_AAAA, DNS_ADDR: IPv4 first,
 * then IPv6; ss_family AF_INET or AF_INET6, port 0), ptr (DNS_PTR, answer
 * order).
 */
struct dns_result {
	enum dns_type	 type;
	char		 name[DNS_NAME_MAX + 2];	/* as asked */
	int		 rcode;		/* DNS RCODE of the answer, -1: none */
	uint32_t	 ttl;		/* seconds; DNS_ADDR: the smaller */
	int		 secure;	/* DNSSEC-validated */
	char		 why[128];	/* status != DNS_OK: a short reason */
	size_t		 count;		/* number of records */
	struct dns_mx	*mx;
	struct dns_txt	*txt;
	struct sockaddr_storage *addr;
	struct dns_ptr	*ptr;
};

/* A look-up's callback: status is an enum dns_status, res is never NULL
 * and is valid only during the call. */
typedef void (*dns_cb)(int status, const struct dns_result *res, void *arg);

struct dns_resolver *dns_resolver_new(struct event_base *base,
	    const struct dns_options *opt, char *err, size_t errlen);
void	dns_resolver_free(struct dns_resolver **rp);

int	dns_lookup(struct dns_resolver *r, const char *name,
	    enum dns_type type, dns_cb cb, void *arg, uint64_t *id_r,
	    char *err, size_t errlen);
int	dns_lookup_addr(struct dns_resolver *r, const char *name, dns_cb cb,
	    void *arg, uint64_t *id_r, char *err, size_t errlen);
int	dns_cancel(struct dns_resolver *r, uint64_t id);
size_t	dns_pending(const struct dns_resolver *r);

int	dns_lookup_sync(struct dns_resolver *r, const char *name,
	    enum dns_type type, struct dns_result **res_r, int *status_r);
void	dns_result_free(struct dns_result **resp);

int	dns_name_valid(const char *name);
/*
 * dns_reverse_name - the PTR query name of an address (AF_INET: 4 bytes,
 * "d.c.b.a.in-addr.arpa"; AF_INET6: 16 bytes, 32 nibbles + "ip6.arpa")
 * into buf (at least 74 bytes); 0, or -1 for another family or a short
 * buffer.
 */
int	dns_reverse_name(int family, const void *addr, char *buf,
	    size_t len);
int	dns_rdata_parse(enum dns_type type, char *const *data, const int *len,
	    struct dns_result *res);
const char *dns_type_name(enum dns_type type);
const char *dns_status_name(int status);

#endif
