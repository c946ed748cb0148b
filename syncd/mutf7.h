/*
 * mutf7.h - IMAP's modified UTF-7 (RFC 3501 §5.1.3) to and from UTF-8.
 *
 * IMAP4rev1 servers spell mailbox names in modified UTF-7: printable
 * US-ASCII stands for itself except "&", which is written "&-"; every
 * other character is written as UTF-16 in a modified BASE64 ("," instead
 * of "/", no padding) between "&" and "-".  A server that accepted
 * "ENABLE UTF8=ACCEPT" (RFC 6855), and any IMAP4rev2 server (RFC 9051),
 * uses plain UTF-8 instead: the caller decides which applies
 * (imap_client.h does it per connection), these functions only convert.
 *
 * Both directions are strict, so a name survives a round trip unchanged
 * and two different spellings never map to the same folder:
 *   decoding refuses bytes outside printable ASCII, an unterminated
 *   shift, a BASE64 character outside the modified alphabet, non-zero or
 *   superfluous padding bits, an empty shift other than "&-", two
 *   adjacent shifts ("&AOk-&AOk-" must be "&AOkA6Q-"), a shifted
 *   character that has a direct spelling ("&AGE-" for "a"), unpaired
 *   UTF-16 surrogates, and control characters (U+0000-U+001F, U+007F-
 *   U+009F), which have no business in a mailbox name;
 *   encoding refuses invalid UTF-8 (overlong forms, surrogates, code
 *   points above U+10FFFF, truncated sequences) and control characters.
 *
 * Output is always NUL-terminated.  Functions return 0 on success, -1 on
 * failure with a short reason in err (when err is not NULL); on failure
 * the contents of dst are unspecified.  No allocation except in the
 * *_dup variants, which return a malloc'd string the caller frees.
 * Pure functions: no I/O, no global state, thread-safe.
 */
#ifndef FERRY_MUTF7_H
#define FERRY_MUTF7_H

#include <stddef.h>

/*
 * Upper bounds of the output size (bytes, NUL included) for an input of
 * n bytes, so a caller can size a buffer once: encoding grows at most
 * 5/2 (a two-byte UTF-8 character becomes "&AOk-"), decoding never grows.
 */
#define MUTF7_ENCODE_MAX(n)	((n) / 2 * 5 + ((n) % 2) * 2 + 1)
#define MUTF7_DECODE_MAX(n)	((n) + 1)

int	 mutf7_decode(const char *src, size_t srclen, char *dst, size_t dstsize,
	    size_t *dstlen_r, char *err, size_t errlen);
int	 mutf7_encode(const char *src, size_t srclen, char *dst, size_t dstsize,
	    size_t *dstlen_r, char *err, size_t errlen);

char	*mutf7_decode_dup(const char *src, char *err, size_t errlen);
char	*mutf7_encode_dup(const char *src, char *err, size_t errlen);

#endif
