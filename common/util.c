/*
 * util.c - small parsers and string helpers (see util.h).
 *
 * SECURITY: the parsers see configuration values and, through callers,
 * bytes from the network; every one bounds its output, checks for
 * overflow and rejects trailing garbage rather than guessing.
 */

#include <inttypes.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "util.h"

/* errbuf_set - fill an optional caller error buffer (NULL/0 = ignore) */
void
errbuf_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* parse_u64_prefix - read decimal digits, refusing overflow */
static int
parse_u64_prefix(const char **sp, uint64_t *v_r)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return (-1);
	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return (-1);
		v = v * 10 + d;
		s++;
	}
	*sp = s;
	*v_r = v;
	return (0);
}

/*
 * parse_duration - "90s", "5m", "2h", "3d", "1h30m" or plain seconds.
 * Units may be combined in decreasing order; each number needs a unit
 * except when the whole value is a bare number.
 */
int
parse_duration(const char *s, int64_t *secs_r, char *err, size_t errlen)
{
	const char *p = s;
	uint64_t total = 0, v, mult;
	uint64_t last = UINT64_MAX;

	if (s == NULL || *s == '\0') {
		errbuf_set(err, errlen, "empty duration");
		return (-1);
	}
	if (s[strspn(s, "0123456789")] == '\0') {
		/* a bare number: seconds */
		if (parse_u64_prefix(&p, &v) == -1 || v > (uint64_t)INT64_MAX) {
			errbuf_set(err, errlen, "duration too large: \"%s\"", s);
			return (-1);
		}
		*secs_r = (int64_t)v;
		return (0);
	}
	while (*p != '\0') {
		if (parse_u64_prefix(&p, &v) == -1)
			goto bad;
		switch (*p) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		case 'w': mult = 7 * 86400; break;
		default:
			goto bad;
		}
		if (mult >= last)
			goto bad;	/* "5m2h" or "1s1s" */
		last = mult;
		p++;
		if (v > (uint64_t)INT64_MAX / mult ||
		    total > (uint64_t)INT64_MAX - v * mult) {
			errbuf_set(err, errlen, "duration too large: \"%s\"", s);
			return (-1);
		}
		total += v * mult;
	}
	*secs_r = (int64_t)total;
	return (0);
bad:
	errbuf_set(err, errlen,
	    "bad duration \"%s\" (use a number with s, m, h, d or w, e.g. 90s, 5m, 2h, 3d)", s);
	return (-1);
}

/* parse_size - "512", "10K", "50M", "1G" (powers of 1024) */
int
parse_size(const char *s, uint64_t *bytes_r, char *err, size_t errlen)
{
	const char *p = s;
	uint64_t v, mult = 1;

	if (s == NULL || parse_u64_prefix(&p, &v) == -1)
		goto bad;
	switch (*p) {
	case '\0': break;
	case 'k': case 'K': mult = 1024; p++; break;
	case 'm': case 'M': mult = 1024 * 1024; p++; break;
	case 'g': case 'G': mult = 1024 * 1024 * 1024; p++; break;
	default: goto bad;
	}
	if (*p == 'B' || *p == 'b')
		p++;
	if (*p != '\0')
		goto bad;
	if (v > UINT64_MAX / mult) {
		errbuf_set(err, errlen, "size too large: \"%s\"", s);
		return (-1);
	}
	*bytes_r = v * mult;
	return (0);
bad:
	errbuf_set(err, errlen, "bad size \"%s\" (use a number with K, M or G, e.g. 10K, 50M)",
	    s ? s : "");
	return (-1);
}

/* parse_bool - yes/no, true/false, on/off, 1/0 */
int
parse_bool(const char *s, int *val_r, char *err, size_t errlen)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; s != NULL && i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*val_r = 1;
			return (0);
		}
		if (strcasecmp(s, no[i]) == 0) {
			*val_r = 0;
			return (0);
		}
	}
	errbuf_set(err, errlen, "bad boolean \"%s\" (use yes or no)", s ? s : "");
	return (-1);
}

/* parse_int - a decimal integer within [min, max] */
int
parse_int(const char *s, int64_t min, int64_t max, int64_t *val_r,
    char *err, size_t errlen)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		goto bad;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		goto bad;
	if (v < min || v > max) {
		errbuf_set(err, errlen, "%lld is out of range %lld..%lld", v,
		    (long long)min, (long long)max);
		return (-1);
	}
	*val_r = v;
	return (0);
bad:
	errbuf_set(err, errlen, "bad number \"%s\"", s ? s : "");
	return (-1);
}

/* valid_hostname - letters, digits, '-', '_' and dots; no empty label */
static int
valid_hostname(const char *h, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len >= HOSTPORT_HOSTMAX)
		return (0);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)h[i];
		if (c == '.') {
			if (label == 0)
				return (0);
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return (0);
		if (++label > 63)
			return (0);
	}
	return (1);
}

/*
 * parse_hostport - "host:port", "[v6addr]:port", "1.2.3.4:port", or a bare
 * host when default_port > 0.  A bare IPv6 literal must be bracketed:
 * "::1:25" is ambiguous.
 */
int
parse_hostport(const char *s, int default_port, struct hostport *hp,
    char *err, size_t errlen)
{
	const char *host, *colon, *portstr = NULL;
	size_t hostlen;
	struct in6_addr a6;
	int64_t port;

	memset(hp, 0, sizeof(*hp));
	if (s == NULL || *s == '\0') {
		errbuf_set(err, errlen, "empty address");
		return (-1);
	}
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL)
			goto bad;
		host = s + 1;
		hostlen = (size_t)(close - host);
		if (hostlen == 0 || hostlen >= HOSTPORT_HOSTMAX)
			goto bad;
		memcpy(hp->host, host, hostlen);
		hp->host[hostlen] = '\0';
		if (inet_pton(AF_INET6, hp->host, &a6) != 1)
			goto bad;
		hp->is_ipv6 = 1;
		if (close[1] == ':')
			portstr = close + 2;
		else if (close[1] != '\0')
			goto bad;
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			errbuf_set(err, errlen,
			    "bad address \"%s\": write IPv6 addresses as [addr]:port", s);
			return (-1);
		}
		hostlen = colon ? (size_t)(colon - s) : strlen(s);
		if (!valid_hostname(s, hostlen))
			goto bad;
		memcpy(hp->host, s, hostlen);
		hp->host[hostlen] = '\0';
		if (colon != NULL)
			portstr = colon + 1;
	}
	if (portstr == NULL) {
		if (default_port <= 0) {
			errbuf_set(err, errlen, "address \"%s\" needs a port (host:port)", s);
			return (-1);
		}
		hp->port = default_port;
		return (0);
	}
	if (parse_int(portstr, 1, 65535, &port, NULL, 0) == -1) {
		errbuf_set(err, errlen, "bad port in \"%s\" (1..65535)", s);
		return (-1);
	}
	hp->port = (int)port;
	return (0);
bad:
	errbuf_set(err, errlen, "bad address \"%s\" (use host:port or [ipv6]:port)", s);
	return (-1);
}

/* hostport_format - print an endpoint the way parse_hostport reads it */
int
hostport_format(const struct hostport *hp, char *buf, size_t len)
{
	return (snprintf(buf, len, hp->is_ipv6 ? "[%s]:%d" : "%s:%d",
	    hp->host, hp->port));
}

/* strlist_add - append a copy of s[0..len) */
int
strlist_add(struct strlist *l, const char *s, size_t len)
{
	char *copy;

	if (l->count == l->alloc) {
		size_t n = l->alloc ? l->alloc * 2 : 8;
		char **items = reallocarray(l->items, n, sizeof(*items));
		if (items == NULL)
			return (-1);
		l->items = items;
		l->alloc = n;
	}
	if ((copy = strndup(s, len)) == NULL)
		return (-1);
	l->items[l->count++] = copy;
	return (0);
}

/* strlist_split - append every comma- or blank-separated word of s */
int
strlist_split(struct strlist *l, const char *s)
{
	const char *sep = ", \t";
	size_t n;

	while (*s != '\0') {
		s += strspn(s, sep);
		n = strcspn(s, sep);
		if (n > 0 && strlist_add(l, s, n) == -1)
			return (-1);
		s += n;
	}
	return (0);
}

/* strlist_contains_ci - case-insensitive membership */
int
strlist_contains_ci(const struct strlist *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		if (strcasecmp(l->items[i], s) == 0)
			return (1);
	return (0);
}

/* strlist_clear - free every item and the array; the list is reusable */
void
strlist_clear(struct strlist *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* str_copy - strlcpy: returns strlen(src); truncated when >= dstlen */
size_t
str_copy(char *dst, const char *src, size_t dstlen)
{
	size_t n = strlen(src);

	if (dstlen > 0) {
		size_t c = n < dstlen - 1 ? n : dstlen - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return (n);
}

/* str_trim - strip leading and trailing blanks in place */
char *
str_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return (s);
}

/*
 * str_printable - copy for a log line: bytes outside printable ASCII become
 * "\xHH" so a peer cannot forge log lines or hide text with controls.
 * Returns the length written (dst always terminated when dstlen > 0).
 */
size_t
str_printable(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	if (dstlen == 0)
		return (0);
	for (i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 >= dstlen)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return (o);
}

/* str_lower - ASCII lower-case in place */
void
str_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

void *
array_grow(void *v, size_t *alloc, size_t n, size_t size, size_t first)
{
	size_t na;
	void *p;

	if (n < *alloc)
		return (v);
	na = *alloc ? *alloc * 2 : first;
	if (na <= n)
		na = n + 1;
	if ((p = reallocarray(v, na, size)) == NULL)
		return (NULL);
	*alloc = na;
	return (p);
}

/* fmt_age - "45s", "12m05s", "3h05m", "2d04h" */
const char *
fmt_age(char *buf, size_t len, int64_t secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, len, "%" PRId64 "s", secs);
	else if (secs < 3600)
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", secs / 60,
		    secs % 60);
	else if (secs < 86400)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", secs / 3600,
		    secs % 3600 / 60);
	else
		snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", secs / 86400,
		    secs % 86400 / 3600);
	return (buf);
}
