/*
 * mutf7.c - modified UTF-7 (RFC 3501 §5.1.3) <-> UTF-8, strict both ways.
 *
 * Mailbox names come from the server (LIST) and are sent back to it
 * (SELECT, CREATE, APPEND); the sync layer maps them in UTF-8.  Being
 * strict keeps that mapping a bijection: every accepted mUTF-7 name has
 * exactly one UTF-8 form and back, so a folder is never created twice
 * under two spellings (see mutf7.h for the list of refusals).
 *
 * SECURITY: the input comes from the network (LIST responses) or from
 * configuration.  Every output byte is bounds-checked against dstsize;
 * the decoder never reads past srclen.  Ownership: pure functions, the
 * caller owns every buffer; the *_dup variants return malloc'd memory.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutf7.h"
#include "utf8.h"
#include "util.h"

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (c - 'A');
	if (c >= 'a' && c <= 'z')
		return (c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (c - '0' + 52);
	if (c == '+')
		return (62);
	if (c == ',')
		return (63);
	return (-1);
}

/* is_control - C0, DEL and C1: never part of a sane mailbox name */
static int
is_control(uint32_t cp)
{
	return (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f));
}

/* out_put - append one byte, keeping room for the final NUL */
static int
out_put(char *dst, size_t dstsize, size_t *o, char c)
{
	if (*o + 1 >= dstsize)
		return (-1);
	dst[(*o)++] = c;
	return (0);
}

/* out_utf8 - append code point cp as UTF-8 */
static int
out_utf8(char *dst, size_t dstsize, size_t *o, uint32_t cp)
{
	char b[4];
	size_t n, k;

	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	for (k = 0; k < n; k++)
		if (out_put(dst, dstsize, o, b[k]) == -1)
			return (-1);
	return (0);
}

/*
 * mutf7_decode - modified UTF-7 src[0..srclen) to UTF-8 in dst (NUL-
 * terminated, length in *dstlen_r when not NULL).
 */
int
mutf7_decode(const char *src, size_t srclen, char *dst, size_t dstsize,
    size_t *dstlen_r, char *err, size_t errlen)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0, shift_end = SIZE_MAX, start;
	uint32_t bits, hi, u, cp;
	unsigned nbits;
	int v;

	if (dstsize == 0) {
		errbuf_set(err, errlen, "no room for the result");
		return (-1);
	}
	while (i < srclen) {
		if (s[i] < 0x20 || s[i] > 0x7e) {
			errbuf_set(err, errlen, "byte 0x%02x at offset %zu is not "
			    "modified UTF-7", s[i], i);
			return (-1);
		}
		if (s[i] != '&') {
			if (out_put(dst, dstsize, &o, (char)s[i]) == -1)
				goto full;
			i++;
			continue;
		}
		start = i++;
		if (i < srclen && s[i] == '-') {
			if (out_put(dst, dstsize, &o, '&') == -1)
				goto full;
			i++;
			continue;
		}
		if (shift_end == start) {
			errbuf_set(err, errlen, "adjacent shifts at offset %zu "
			    "(must be one)", start);
			return (-1);
		}
		bits = 0;
		nbits = 0;
		hi = 0;
		for (;;) {
			if (i >= srclen) {
				errbuf_set(err, errlen, "unterminated shift at "
				    "offset %zu", start);
				return (-1);
			}
			if (s[i] == '-') {
				i++;
				break;
			}
			if ((v = b64val(s[i])) < 0) {
				errbuf_set(err, errlen, "byte 0x%02x at offset %zu "
				    "is not modified BASE64", s[i], i);
				return (-1);
			}
			i++;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits < 16)
				continue;
			nbits -= 16;
			u = (bits >> nbits) & 0xffff;
			bits &= (1u << nbits) - 1;
			if (hi != 0) {
				if (u < 0xdc00 || u > 0xdfff) {
					errbuf_set(err, errlen, "unpaired high "
					    "surrogate in shift at offset %zu",
					    start);
					return (-1);
				}
				cp = 0x10000 + ((hi - 0xd800) << 10) +
				    (u - 0xdc00);
				hi = 0;
			} else if (u >= 0xd800 && u <= 0xdbff) {
				hi = u;
				continue;
			} else if (u >= 0xdc00 && u <= 0xdfff) {
				errbuf_set(err, errlen, "unpaired low surrogate in "
				    "shift at offset %zu", start);
				return (-1);
			} else
				cp = u;
			if (cp >= 0x20 && cp <= 0x7e) {
				errbuf_set(err, errlen, "shift at offset %zu "
				    "encodes printable ASCII 0x%02x "
				    "(non-canonical)", start, (unsigned)cp);
				return (-1);
			}
			if (is_control(cp)) {
				errbuf_set(err, errlen, "control character U+%04X "
				    "in shift at offset %zu", (unsigned)cp,
				    start);
				return (-1);
			}
			if (out_utf8(dst, dstsize, &o, cp) == -1)
				goto full;
		}
		if (nbits >= 6) {
			errbuf_set(err, errlen, "superfluous BASE64 in shift at "
			    "offset %zu", start);
			return (-1);
		}
		if (bits != 0) {
			errbuf_set(err, errlen, "non-zero padding bits in shift "
			    "at offset %zu", start);
			return (-1);
		}
		if (hi != 0) {
			errbuf_set(err, errlen, "unpaired high surrogate at end "
			    "of shift at offset %zu", start);
			return (-1);
		}
		shift_end = i;
	}
	dst[o] = '\0';
	if (dstlen_r != NULL)
		*dstlen_r = o;
	return (0);
full:
	errbuf_set(err, errlen, "result does not fit in %zu bytes", dstsize);
	return (-1);
}

/*
 * mutf7_encode - UTF-8 src[0..srclen) to modified UTF-7 in dst (NUL-
 * terminated, length in *dstlen_r when not NULL).  Runs of non-ASCII
 * characters share one shift, as canonical form requires.
 */
int
mutf7_encode(const char *src, size_t srclen, char *dst, size_t dstsize,
    size_t *dstlen_r, char *err, size_t errlen)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0, at;
	uint32_t cp, bits, units[2];
	unsigned nbits, nu, k;

	if (dstsize == 0) {
		errbuf_set(err, errlen, "no room for the result");
		return (-1);
	}
	while (i < srclen) {
		if (s[i] < 0x80) {
			if (is_control(s[i])) {
				errbuf_set(err, errlen, "control character 0x%02x "
				    "at offset %zu", s[i], i);
				return (-1);
			}
			if (out_put(dst, dstsize, &o, (char)s[i]) == -1 ||
			    (s[i] == '&' && out_put(dst, dstsize, &o, '-') == -1))
				goto full;
			i++;
			continue;
		}
		if (out_put(dst, dstsize, &o, '&') == -1)
			goto full;
		bits = 0;
		nbits = 0;
		while (i < srclen && s[i] >= 0x80) {
			at = i;
			if ((cp = utf8_next(s, srclen, &i)) == UTF8_INVALID) {
				errbuf_set(err, errlen, "invalid UTF-8 at offset "
				    "%zu", at);
				return (-1);
			}
			if (is_control(cp)) {
				errbuf_set(err, errlen, "control character U+%04X "
				    "at offset %zu", (unsigned)cp, at);
				return (-1);
			}
			if (cp >= 0x10000) {
				units[0] = 0xd800 + ((cp - 0x10000) >> 10);
				units[1] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
				nu = 2;
			} else {
				units[0] = cp;
				nu = 1;
			}
			for (k = 0; k < nu; k++) {
				bits = (bits << 16) | units[k];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					if (out_put(dst, dstsize, &o,
					    b64chars[(bits >> nbits) & 63]) == -1)
						goto full;
				}
				bits &= (1u << nbits) - 1;
			}
		}
		if (nbits > 0 && out_put(dst, dstsize, &o,
		    b64chars[(bits << (6 - nbits)) & 63]) == -1)
			goto full;
		if (out_put(dst, dstsize, &o, '-') == -1)
			goto full;
	}
	dst[o] = '\0';
	if (dstlen_r != NULL)
		*dstlen_r = o;
	return (0);
full:
	errbuf_set(err, errlen, "result does not fit in %zu bytes", dstsize);
	return (-1);
}

/* mutf7_decode_dup - mutf7_decode of a C string into malloc'd memory */
char *
mutf7_decode_dup(const char *src, char *err, size_t errlen)
{
	size_t n = strlen(src);
	char *dst;

	if ((dst = malloc(MUTF7_DECODE_MAX(n))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	if (mutf7_decode(src, n, dst, MUTF7_DECODE_MAX(n), NULL, err,
	    errlen) == -1) {
		free(dst);
		return (NULL);
	}
	return (dst);
}

/* mutf7_encode_dup - mutf7_encode of a C string into malloc'd memory */
char *
mutf7_encode_dup(const char *src, char *err, size_t errlen)
{
	size_t n = strlen(src);
	char *dst;

	if (n > (SIZE_MAX - 3) / 5 * 2) {
		errbuf_set(err, errlen, "name too long");
		return (NULL);
	}
	if ((dst = malloc(MUTF7_ENCODE_MAX(n))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	if (mutf7_encode(src, n, dst, MUTF7_ENCODE_MAX(n), NULL, err,
	    errlen) == -1) {
		free(dst);
		return (NULL);
	}
	return (dst);
}
