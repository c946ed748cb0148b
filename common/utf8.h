/*
 * utf8.h - strict UTF-8 (RFC 3629): one decoder for every place that
 * must tell valid UTF-8 from anything else (SMTPUTF8 addresses in the
 * relay, mailbox names and folder rules in syncd, the JSON writer).
 *
 * Strict means: no overlong forms (C0, C1, E0 80..9F, F0 80..8F), no
 * UTF-16 surrogates (ED A0..BF), nothing above U+10FFFF (F4 90.., F5..),
 * no stray continuation byte and no sequence cut short by the end of
 * the input.  U+0000 is valid (a NUL byte is a character here; callers
 * that refuse it check for it themselves).
 *
 * Pure functions on the caller's bytes: no allocation, no state,
 * thread-safe.
 */
#ifndef FERRY_UTF8_H
#define FERRY_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_INVALID	UINT32_MAX	/* utf8_next()'s "not a sequence" */

/* utf8_valid - 1 when s[0..len) is strictly valid UTF-8, else 0 */
int		utf8_valid(const void *s, size_t len);

/*
 * utf8_next - the code point of the sequence at s[*ip] (s holds len
 * bytes, *ip < len), advancing *ip past it; UTF8_INVALID, *ip unmoved,
 * when no valid sequence starts there.
 */
uint32_t	utf8_next(const void *s, size_t len, size_t *ip);

#endif
