/*
 * fuzz_authres.c - a fuzz target for relay/authres.c: the filter that
 * removes every Authentication-Results field claiming to be ours from a
 * client's message, and the field we add.
 *
 * The input is a message, fed to the filter line by line as DATA does
 * (each line with its LF; the last may lack it).  It abort()s when an
 * invariant breaks:
 *   - the output is not the input minus whole lines, in order (the
 *     filter only drops; it never changes or reorders a byte);
 *   - from the empty line that ends the header block on, anything is
 *     changed (the body passes unchanged);
 *   - filtering the output again drops anything or changes it: what
 *     was kept is not ours, so nothing forged survives one pass;
 *   - a dropped count without a dropped byte, or the reverse;
 *   - our own field: authres_build() with an SPF result whose
 *     smtp.mailfrom is the input's first line (via authres_pvalue())
 *     and a DKIM result naming it (253 bytes at most, as long as the
 *     SMTP path or DNS name the relay puts there), when it succeeds, is
 *     not one CRLF-terminated field that authres_claims_ours()
 *     recognises as ours, or has a line over 998 bytes.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"
#include "fuzz.h"

#define FUZZ_AUTHSERV	"ours.example"

struct sink {
	char	*s;
	size_t	 len, cap;
	int	 failed;
};

static void
emit(const char *data, size_t len, void *arg)
{
	struct sink *k = arg;

	if (k->failed)
		return;
	if (k->len + len > k->cap) {
		size_t cap = (k->len + len) * 2 + 64;
		char *ns = realloc(k->s, cap);

		if (ns == NULL) {
			k->failed = 1;
			return;
		}
		k->s = ns;
		k->cap = cap;
	}
	memcpy(k->s + k->len, data, len);
	k->len += len;
}

/* filter - data through a new filter into k; dropped count in *dropped_r;
 * the offset where the body began (size when never) in *body_r */
static int
filter(const char *data, size_t size, struct sink *k, size_t *dropped_r,
    size_t *body_r)
{
	struct authres_filter *f;
	size_t off = 0, n, out_at_body = (size_t)-1;
	const char *nl;

	memset(k, 0, sizeof(*k));
	if ((f = authres_filter_new(FUZZ_AUTHSERV, emit, k)) == NULL)
		return (-1);
	*body_r = size;
	while (off < size) {
		nl = memchr(data + off, '\n', size - off);
		n = nl == NULL ? size - off : (size_t)(nl - (data + off)) + 1;
		if (authres_filter_line(f, data + off, n) == 1 &&
		    out_at_body == (size_t)-1) {
			*body_r = off;
			out_at_body = 1;
		}
		off += n;
	}
	authres_filter_end(f);
	*dropped_r = authres_filter_dropped(f);
	authres_filter_free(&f);
	if (f != NULL)
		abort();
	return (k->failed ? -1 : 0);
}

/* is_line_subsequence - out is in, less some whole lines */
static int
is_line_subsequence(const char *in, size_t inlen, const char *out,
    size_t outlen)
{
	size_t i = 0, o = 0, n;
	const char *nl;

	while (i < inlen) {
		nl = memchr(in + i, '\n', inlen - i);
		n = nl == NULL ? inlen - i : (size_t)(nl - (in + i)) + 1;
		if (o + n <= outlen && memcmp(in + i, out + o, n) == 0)
			o += n;
		i += n;
	}
	return (o == outlen);
}

/* copy - as much of src as fits dst, NUL-terminated */
static void
copy(char *dst, size_t dstlen, const char *src)
{
	size_t n = strlen(src);

	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void
check_build(const uint8_t *data, size_t size)
{
	struct dkimv_result d;
	char value[512], pv[1100], spf[1200], out[4096];
	const char *body, *p;
	size_t n = 0;
	ssize_t len;

	/* as long as what the relay puts there can be: an SMTP path, a
	 * DNS name (253); longer ones may need lines over 998 bytes */
	while (n < size && n < 253 && data[n] != '\n' && data[n] != '\0')
		n++;
	memcpy(value, data, n);
	value[n] = '\0';
	if (authres_pvalue(pv, sizeof(pv), value) < 0)
		return;
	snprintf(spf, sizeof(spf), "spf=pass smtp.mailfrom=%s", pv);
	memset(&d, 0, sizeof(d));
	d.result = DKIMV_FAIL;
	copy(d.domain, sizeof(d.domain), value);
	copy(d.selector, sizeof(d.selector), value);
	copy(d.b, sizeof(d.b), value);
	copy(d.algorithm, sizeof(d.algorithm), "rsa-sha256");
	copy(d.reason, sizeof(d.reason), value);
	if ((len = authres_build(FUZZ_AUTHSERV, spf, &d, 1, out,
	    sizeof(out))) < 0)
		return;
	if ((size_t)len != strlen(out) ||
	    strncmp(out, AUTHRES_FIELD ":", sizeof(AUTHRES_FIELD)) != 0 ||
	    len < 2 || out[len - 2] != '\r' || out[len - 1] != '\n')
		abort();
	/* one field: every CRLF but the last is followed by a blank */
	for (p = out; (p = strstr(p, "\r\n")) != NULL; p += 2) {
		if (p[2] != '\0' && p[2] != ' ' && p[2] != '\t')
			abort();
	}
	for (p = out; *p != '\0'; p += n + 2) {
		n = (size_t)(strstr(p, "\r\n") - p);
		if (n > 998)
			abort();
	}
	body = out + sizeof(AUTHRES_FIELD);
	if (authres_claims_ours(body, strlen(body), FUZZ_AUTHSERV) != 1)
		abort();
}

/* fuzz_authres - see fuzz.h */
int
fuzz_authres(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct sink a = { 0 }, b = { 0 };
	size_t da, db, body_a, body_b;

	(void)authres_claims_ours(in, size, FUZZ_AUTHSERV);
	if (filter(in, size, &a, &da, &body_a) == 0 &&
	    filter(a.s, a.len, &b, &db, &body_b) == 0) {
		if (!is_line_subsequence(in, size, a.s, a.len))
			abort();
		if ((da == 0) != (a.len == size))
			abort();
		if (size - body_a > a.len || (size > body_a &&
		    memcmp(in + body_a, a.s + a.len - (size - body_a),
		    size - body_a) != 0))
			abort();
		if (db != 0 || b.len != a.len ||
		    (a.len > 0 && memcmp(a.s, b.s, a.len) != 0))
			abort();
	}
	free(a.s);
	free(b.s);
	check_build(data, size);
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return (fuzz_authres(data, size));
}
