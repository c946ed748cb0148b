/*
 * bytes.c - the byte codec: write buffer, strict read cursor, big-endian
 * and varint integers, length-prefixed strings (see bytes.h).
 *
 * Exposure: the decoders built on the read cursor parse records from our
 * own database, which a damaged file or another program may have filled
 * with anything; no getter reads past r->len, and no length read from
 * the bytes is trusted before it is compared with what is left.
 *
 * Threading: no global state.
 */

#include <stdlib.h>
#include <string.h>

#include "bytes.h"

/* ---- raw big-endian integers ------------------------------------------------ */

/* be_put - v as n big-endian bytes at p */
static void
be_put(unsigned char *p, uint64_t v, size_t n)
{
	while (n > 0) {
		p[--n] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

/* be_get - n big-endian bytes at p */
static uint64_t
be_get(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return (v);
}

void
be16_put(void *p, uint16_t v)
{
	be_put(p, v, 2);
}

void
be32_put(void *p, uint32_t v)
{
	be_put(p, v, 4);
}

void
be64_put(void *p, uint64_t v)
{
	be_put(p, v, 8);
}

uint16_t
be16_get(const void *p)
{
	return ((uint16_t)be_get(p, 2));
}

uint32_t
be32_get(const void *p)
{
	return ((uint32_t)be_get(p, 4));
}

uint64_t
be64_get(const void *p)
{
	return (be_get(p, 8));
}

/* ---- writing ------------------------------------------------------------------ */

void
wbuf_init(struct wbuf *w)
{
	memset(w, 0, sizeof(*w));
}

void
wbuf_init_fixed(struct wbuf *w, void *buf, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->p = buf;
	w->cap = cap;
	w->fixed = 1;
}

void
wbuf_free(struct wbuf *w)
{
	if (w == NULL)
		return;
	if (!w->fixed)
		free(w->p);
	w->p = NULL;
	w->len = w->cap = 0;
}

int
wbuf_finish(struct wbuf *w, unsigned char **buf_r, size_t *len_r)
{
	*buf_r = NULL;
	*len_r = 0;
	if (w->failed || w->fixed) {
		wbuf_free(w);
		return (-1);
	}
	*buf_r = w->p;
	*len_r = w->len;
	w->p = NULL;
	w->len = w->cap = 0;
	return (0);
}

void
wbuf_fail(struct wbuf *w)
{
	w->failed = 1;
}

/* wbuf_reserve - room for n more bytes; -1 (w failed) when there is none */
static int
wbuf_reserve(struct wbuf *w, size_t n)
{
	unsigned char *np;
	size_t ncap;

	if (w->failed)
		return (-1);
	if (n <= w->cap - w->len)
		return (0);
	if (w->fixed) {
		w->failed = 1;
		return (-1);
	}
	ncap = w->cap ? w->cap : 128;
	while (ncap - w->len < n) {
		if (ncap > SIZE_MAX / 2) {
			w->failed = 1;
			return (-1);
		}
		ncap *= 2;
	}
	if ((np = realloc(w->p, ncap)) == NULL) {
		w->failed = 1;
		return (-1);
	}
	w->p = np;
	w->cap = ncap;
	return (0);
}

void
wbuf_bytes(struct wbuf *w, const void *data, size_t n)
{
	if (wbuf_reserve(w, n) == -1)
		return;
	if (n > 0)
		memcpy(w->p + w->len, data, n);
	w->len += n;
}

/* wbuf_be - v as n big-endian bytes */
static void
wbuf_be(struct wbuf *w, uint64_t v, size_t n)
{
	unsigned char b[8];

	be_put(b, v, n);
	wbuf_bytes(w, b, n);
}

void
wbuf_u8(struct wbuf *w, unsigned v)
{
	wbuf_be(w, v & 0xff, 1);
}

void
wbuf_be16(struct wbuf *w, uint16_t v)
{
	wbuf_be(w, v, 2);
}

void
wbuf_be32(struct wbuf *w, uint32_t v)
{
	wbuf_be(w, v, 4);
}

void
wbuf_be64(struct wbuf *w, uint64_t v)
{
	wbuf_be(w, v, 8);
}

/* wbuf_varint - unsigned LEB128: 7 bits a byte, low group first */
void
wbuf_varint(struct wbuf *w, uint64_t v)
{
	unsigned char b[10];
	size_t n = 0;

	do {
		b[n] = v & 0x7f;
		v >>= 7;
		if (v != 0)
			b[n] |= 0x80;
		n++;
	} while (v != 0);
	wbuf_bytes(w, b, n);
}

/* wbuf_zigzag - a signed value folded so small magnitudes stay short */
void
wbuf_zigzag(struct wbuf *w, int64_t v)
{
	wbuf_varint(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void
wbuf_str8(struct wbuf *w, const char *s, size_t n)
{
	if (n > 0xff) {
		w->failed = 1;
		return;
	}
	wbuf_u8(w, (unsigned)n);
	wbuf_bytes(w, s, n);
}

void
wbuf_str16(struct wbuf *w, const char *s, size_t n)
{
	if (n > 0xffff) {
		w->failed = 1;
		return;
	}
	wbuf_be16(w, (uint16_t)n);
	wbuf_bytes(w, s, n);
}

void
wbuf_strv(struct wbuf *w, const char *s, size_t n)
{
	wbuf_varint(w, n);
	wbuf_bytes(w, s, n);
}

/* ---- reading ------------------------------------------------------------------ */

void
rbuf_init(struct rbuf *r, const void *buf, size_t len)
{
	r->p = buf;
	r->len = buf != NULL ? len : 0;
	r->off = 0;
	r->why = NULL;
}

int
rbuf_fail(struct rbuf *r, const char *why)
{
	if (r->why == NULL)
		r->why = why;
	return (-1);
}

size_t
rbuf_left(const struct rbuf *r)
{
	return (r->len - r->off);
}

int
rbuf_end(struct rbuf *r)
{
	if (r->why != NULL)
		return (-1);
	if (r->off != r->len)
		return (rbuf_fail(r, "trailing bytes"));
	return (0);
}

const unsigned char *
rbuf_take(struct rbuf *r, size_t n)
{
	const unsigned char *p;

	if (r->why != NULL)
		return (NULL);
	if (r->len - r->off < n) {
		rbuf_fail(r, "truncated");
		return (NULL);
	}
	p = r->p + r->off;
	r->off += n;
	return (p);
}

int
rbuf_bytes(struct rbuf *r, void *out, size_t n)
{
	const unsigned char *p;

	if ((p = rbuf_take(r, n)) == NULL)
		return (-1);
	if (n > 0)
		memcpy(out, p, n);
	return (0);
}

/* rbuf_be - n big-endian bytes, 0 on failure */
static uint64_t
rbuf_be(struct rbuf *r, size_t n)
{
	const unsigned char *p = rbuf_take(r, n);

	return (p != NULL ? be_get(p, n) : 0);
}

unsigned
rbuf_u8(struct rbuf *r)
{
	return ((unsigned)rbuf_be(r, 1));
}

uint16_t
rbuf_be16(struct rbuf *r)
{
	return ((uint16_t)rbuf_be(r, 2));
}

uint32_t
rbuf_be32(struct rbuf *r)
{
	return ((uint32_t)rbuf_be(r, 4));
}

uint64_t
rbuf_be64(struct rbuf *r)
{
	return (rbuf_be(r, 8));
}

int
rbuf_varint(struct rbuf *r, uint64_t *v_r)
{
	const unsigned char *p;
	uint64_t v = 0;
	unsigned shift = 0;

	for (;;) {
		if ((p = rbuf_take(r, 1)) == NULL)
			return (-1);
		/* The tenth byte may only carry the 64th bit. */
		if (shift == 63 && (*p & 0x7e) != 0)
			return (rbuf_fail(r, "integer overflow"));
		v |= (uint64_t)(*p & 0x7f) << shift;
		if ((*p & 0x80) == 0)
			break;
		shift += 7;
		if (shift > 63)
			return (rbuf_fail(r, "integer too long"));
	}
	*v_r = v;
	return (0);
}

int
rbuf_zigzag(struct rbuf *r, int64_t *v_r)
{
	uint64_t u;

	if (rbuf_varint(r, &u) == -1)
		return (-1);
	*v_r = (int64_t)((u >> 1) ^ (~(u & 1) + 1));
	return (0);
}

/* str_take - n bytes of a string no longer than max, without a NUL */
static const unsigned char *
str_take(struct rbuf *r, uint64_t n, size_t max)
{
	const unsigned char *p;

	if (r->why != NULL)
		return (NULL);
	if (n > max) {
		rbuf_fail(r, "string too long");
		return (NULL);
	}
	if (n > rbuf_left(r)) {
		rbuf_fail(r, "truncated string");
		return (NULL);
	}
	if (memchr(r->p + r->off, '\0', (size_t)n) != NULL) {
		rbuf_fail(r, "NUL in string");
		return (NULL);
	}
	p = r->p + r->off;
	r->off += (size_t)n;
	return (p);
}

int
rbuf_strcpy(struct rbuf *r, uint64_t n, char *out, size_t outsize)
{
	const unsigned char *p;

	if (outsize == 0)
		return (rbuf_fail(r, "string too long"));
	if ((p = str_take(r, n, outsize - 1)) == NULL)
		return (-1);
	memcpy(out, p, (size_t)n);
	out[n] = '\0';
	return (0);
}

char *
rbuf_strdup(struct rbuf *r, uint64_t n, size_t max)
{
	const unsigned char *p;
	char *s;

	if ((p = str_take(r, n, max)) == NULL)
		return (NULL);
	if ((s = malloc((size_t)n + 1)) == NULL) {
		rbuf_fail(r, "out of memory");
		return (NULL);
	}
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	return (s);
}
