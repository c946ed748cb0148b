/*
 * util.h - small parsers and string helpers shared by every module.
 *
 * Everything here is pure: no I/O, no logging, no allocation unless the
 * function says so.  The parsers distrust their input: they reject empty
 * strings, trailing garbage, overflow and control characters.
 */
#ifndef FERRY_UTIL_H
#define FERRY_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define HOSTPORT_HOSTMAX 256

/* One "host:port" endpoint.  host is a DNS name, an IPv4 literal or an
 * IPv6 literal without its brackets. */
struct hostport {
	char	host[HOSTPORT_HOSTMAX];
	int	port;
	int	is_ipv6;	/* written as [addr]:port */
};

/* A growable list of strings; owns every string and the array. */
struct strlist {
	char	**items;
	size_t	  count;
	size_t	  alloc;
};

void	errbuf_set(char *err, size_t errlen, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

int	parse_duration(const char *s, int64_t *secs_r, char *err, size_t errlen);
int	parse_size(const char *s, uint64_t *bytes_r, char *err, size_t errlen);
int	parse_bool(const char *s, int *val_r, char *err, size_t errlen);
int	parse_int(const char *s, int64_t min, int64_t max, int64_t *val_r,
	    char *err, size_t errlen);
int	parse_hostport(const char *s, int default_port, struct hostport *hp,
	    char *err, size_t errlen);
int	hostport_format(const struct hostport *hp, char *buf, size_t len);

int	strlist_add(struct strlist *l, const char *s, size_t len);
int	strlist_split(struct strlist *l, const char *s);
int	strlist_contains_ci(const struct strlist *l, const char *s);
void	strlist_clear(struct strlist *l);

size_t	str_copy(char *dst, const char *src, size_t dstlen);
char   *str_trim(char *s);
/* fmt_age - a duration for people: "45s", "12m05s", "3h05m", "2d04h" */
const char *fmt_age(char *buf, size_t len, int64_t secs);
size_t	str_printable(char *dst, size_t dstlen, const char *src, size_t srclen);
void	str_lower(char *s);
/*
 * array_grow - room for element n of the array v of *alloc elements of
 * size bytes: v itself when n < *alloc, else v reallocated to twice its
 * size (first elements at the start) with *alloc updated; NULL when out
 * of memory, v and *alloc untouched (the caller still owns v).
 */
void   *array_grow(void *v, size_t *alloc, size_t n, size_t size,
	    size_t first);

#endif
