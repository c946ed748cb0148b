/*
 * utf8.c - the strict UTF-8 decoder (see utf8.h for what "strict" is).
 *
 * Exposure: every byte comes from the network (SMTP envelopes, IMAP
 * mailbox names) or from configuration; nothing is read past len.
 */

#include "utf8.h"

uint32_t
utf8_next(const void *s, size_t len, size_t *ip)
{
	const unsigned char *u = s;
	size_t i = *ip, need, k;
	unsigned char c = u[i];
	unsigned char lo = 0x80, hi = 0xbf;
	uint32_t cp;

	if (c < 0x80) {
		*ip = i + 1;
		return (c);
	}
	/* The first continuation byte's range rules out the overlong
	 * forms, the surrogates and what lies above U+10FFFF. */
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		cp = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (c == 0xed)
			hi = 0x9f;	/* UTF-16 surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		cp = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;	/* overlong */
		else if (c == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else
		return (UTF8_INVALID);
	if (len - i - 1 < need)
		return (UTF8_INVALID);
	for (k = 1; k <= need; k++) {
		unsigned char cc = u[i + k];

		if (cc < lo || cc > hi)
			return (UTF8_INVALID);
		lo = 0x80;
		hi = 0xbf;
		cp = (cp << 6) | (cc & 0x3f);
	}
	*ip = i + 1 + need;
	return (cp);
}

int
utf8_valid(const void *s, size_t len)
{
	size_t i = 0;

	while (i < len)
		if (utf8_next(s, len, &i) == UTF8_INVALID)
			return (0);
	return (1);
}
