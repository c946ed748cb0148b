/*
 * hex.h - the golden-bytes helper of the codec tests: a record's bytes
 * as lower-case hex, so a failed comparison prints both sides readably
 * (and a new golden value can be copied from the failure).
 *
 * Returns a static buffer (one call's result at a time); bytes beyond
 * HEX_MAX are not shown, so an over-long record fails its comparison.
 */
#ifndef FERRY_TEST_HEX_H
#define FERRY_TEST_HEX_H

#include <stddef.h>
#include <stdio.h>

#define HEX_MAX	4000

static inline const char *
hex(const void *buf, size_t len)
{
	static char out[2 * HEX_MAX + 1];
	const unsigned char *p = buf;
	size_t i;

	if (len > HEX_MAX)
		len = HEX_MAX;
	for (i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
	out[2 * len] = '\0';
	return (out);
}

#endif
