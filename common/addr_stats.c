/*
 * addr_stats.c - the relay's per-address counters (addr_stats.h): the
 * record's codec, the bound, the writer's and the reader's side.
 */

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "addr_stats.h"
#include "bytes.h"
#include "store.h"

#define COUNT_LEN	18

static int
key_of(const char *addr, char *key, size_t len, size_t *klen)
{
	size_t p = strlen(ADDR_STATS_KEY_PREFIX), n = strlen(addr), i;

	if (n == 0 || n > ADDR_STATS_ADDR_MAX || p + n + 1 > len)
		return (-1);
	memcpy(key, ADDR_STATS_KEY_PREFIX, p);
	for (i = 0; i < n; i++)
		key[p + i] = (char)tolower((unsigned char)addr[i]);
	key[p + n] = '\0';
	*klen = p + n;
	return (0);
}

static int
decode(const void *val, size_t vlen, struct addr_stats *s)
{
	const unsigned char *b = val;

	if (vlen != ADDR_STATS_LEN || b[0] != 'A' || b[1] != ADDR_STATS_VERSION)
		return (-1);
	s->received = be64_get(b + 2);
	s->forwarded = be64_get(b + 10);
	s->duplicates = be64_get(b + 18);
	s->bounced = be64_get(b + 26);
	s->last = (int64_t)be64_get(b + 34);
	return (0);
}

static int
count_get(struct store_txn *tx, uint64_t *n, uint64_t *over)
{
	const void *val;
	const unsigned char *b;
	size_t vlen;
	int rc;

	*n = *over = 0;
	rc = store_get(tx, STORE_DB_META, ADDR_STATS_COUNT_KEY,
	    strlen(ADDR_STATS_COUNT_KEY), &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0)
		return (-1);
	b = val;
	if (vlen != COUNT_LEN || b[0] != 'N' || b[1] != ADDR_STATS_VERSION)
		return (0);	/* damaged: counted again from here */
	*n = be64_get(b + 2);
	*over = be64_get(b + 10);
	return (0);
}

static int
count_put(struct store_txn *tx, uint64_t n, uint64_t over)
{
	unsigned char b[COUNT_LEN];

	b[0] = 'N';
	b[1] = ADDR_STATS_VERSION;
	be64_put(b + 2, n);
	be64_put(b + 10, over);
	return (store_put(tx, STORE_DB_META, ADDR_STATS_COUNT_KEY,
	    strlen(ADDR_STATS_COUNT_KEY), b, sizeof(b), 0) == 0 ? 0 : -1);
}

int
addr_stats_note(struct store_txn *tx, const char *addr,
    enum addr_stats_kind kind, time_t when)
{
	char key[sizeof(ADDR_STATS_KEY_PREFIX) + ADDR_STATS_ADDR_MAX];
	unsigned char b[ADDR_STATS_LEN];
	struct addr_stats s;
	const void *val;
	size_t klen, vlen;
	uint64_t n, over;
	int rc;

	if (key_of(addr, key, sizeof(key), &klen) == -1)
		return (0);
	rc = store_get(tx, STORE_DB_META, key, klen, &val, &vlen);
	if (rc == -1)
		return (-1);
	if (rc == 0 && decode(val, vlen, &s) == 0)
		;
	else {
		memset(&s, 0, sizeof(s));
		if (rc == STORE_NOTFOUND) {
			/* a new address: within the bound, or not kept */
			if (count_get(tx, &n, &over) == -1)
				return (-1);
			if (n >= ADDR_STATS_MAX)
				return (count_put(tx, n, over + 1));
			if (count_put(tx, n + 1, over) == -1)
				return (-1);
		}
	}
	switch (kind) {
	case ADDR_RECEIVED:
		s.received++;
		break;
	case ADDR_FORWARDED:
		s.forwarded++;
		break;
	case ADDR_DUPLICATE:
		s.duplicates++;
		break;
	case ADDR_BOUNCED:
		s.bounced++;
		break;
	}
	if ((int64_t)when > s.last)
		s.last = (int64_t)when;
	b[0] = 'A';
	b[1] = ADDR_STATS_VERSION;
	be64_put(b + 2, s.received);
	be64_put(b + 10, s.forwarded);
	be64_put(b + 18, s.duplicates);
	be64_put(b + 26, s.bounced);
	be64_put(b + 34, (uint64_t)s.last);
	return (store_put(tx, STORE_DB_META, key, klen, b, sizeof(b), 0) == 0 ?
	    0 : -1);
}

int
addr_stats_get(struct store_txn *tx, const char *addr, struct addr_stats *s)
{
	char key[sizeof(ADDR_STATS_KEY_PREFIX) + ADDR_STATS_ADDR_MAX];
	const void *val;
	size_t klen, vlen;
	int rc;

	memset(s, 0, sizeof(*s));
	if (key_of(addr, key, sizeof(key), &klen) == -1)
		return (STORE_NOTFOUND);
	rc = store_get(tx, STORE_DB_META, key, klen, &val, &vlen);
	if (rc != 0)
		return (rc);
	if (decode(val, vlen, s) == -1) {
		store_txn_seterr(tx, "%s: not a per-address record", key);
		memset(s, 0, sizeof(*s));
		return (-1);
	}
	return (0);
}

int
addr_stats_overflow(struct store_txn *tx, uint64_t *addresses,
    uint64_t *overflow)
{
	return (count_get(tx, addresses, overflow));
}
