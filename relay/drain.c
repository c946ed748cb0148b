/*
 * drain.c - the drain view: what still reaches the old MX.
 *
 * Before retiring the old host an admin wants evidence that nothing
 * arrives there any more: when the last message came in, how many came
 * per hour lately, and from which sending domains and client addresses
 * (those senders still use the old MX: stale DNS caches, hard-wired
 * smarthosts).  The SMTP server calls drain_note() once per message it
 * answers with 250; control.c and ferryctl render drain_json().
 *
 * Counters:
 *   - the time of the last inbound message;
 *   - arrivals per hour over the last DRAIN_HOURS hours: a ring of hourly
 *     buckets, each tagged with its hour number (unix time / 3600), so a
 *     bucket left over from an older lap of the ring reads as 0 and is
 *     reset when its slot is reused;
 *   - the sending domains and the client addresses, each in a table of
 *     DRAIN_TOP_MAX entries (name, count, last seen).  When a table is
 *     full, a new name evicts the entry with the smallest count (the
 *     least recently seen of those): the heavy hitters stay, a long tail
 *     of one-off senders churns at the bottom.  The counts are exact for
 *     as long as an entry stays in the table.
 *
 * JSON (drain_json), one object:
 *   {
 *     "last_inbound": 1700000000,       unix time, null when never
 *     "seconds_since_last": 42,         now - last_inbound, null when never
 *     "hours": 72,                      DRAIN_HOURS
 *     "hourly": [0, 3, ..., 5],         72 counts, oldest hour first; the
 *                                       last one is the current hour
 *     "total": 123,                     the sum of "hourly"
 *     "top_domains": [                  at most DRAIN_TOP_SHOWN, largest
 *       {"name": "example.com", "count": 12, "last_seen": 1700000000},
 *       ...                             count first (ties: most recent)
 *     ],
 *     "top_clients": [
 *       {"name": "192.0.2.1", "count": 7, "last_seen": 1700000000}, ...
 *     ]
 *   }
 *
 * Persistence: drain_save() writes the whole state to STORE_DB_META under
 * the key "drain"; drain_new() reads it back, so a restart keeps the
 * history.  A record that does not decode strictly is ignored (logged):
 * the drain view is evidence for a human, never a reason not to start.
 *
 * RECORD FORMAT (STORE_DB_META "drain"; integers big-endian)
 *   byte  'D', byte version (1)
 *   i64   last inbound (unix time, 0: never)
 *   u16   n, then n x { u64 hour number, u64 count }   (non-zero buckets,
 *         n <= DRAIN_HOURS, distinct ring slots)
 *   u16   n, then n x { byte len (1..255), len bytes name,
 *         u64 count (>= 1), i64 last seen }              (domains)
 *   u16   n, the same                                    (client addresses)
 *   nothing after that.  Names: printable ASCII, no space, distinct.
 *
 * Exposure: names come from peers (MAIL FROM domain, HELO name); they
 * are lower-cased, cut to DRAIN_NAME_MAX and made printable before they
 * are stored, and the JSON writer escapes them again.  Memory is fixed:
 * two tables of DRAIN_TOP_MAX entries.
 *
 * Threading: loop thread only (drain_save runs one short LMDB write).
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bytes.h"
#include "drain.h"
#include "json.h"
#include "log.h"
#include "relay.h"
#include "store.h"
#include "util.h"

#define DRAIN_KEY	"drain"
#define DRAIN_VERSION	1

#if DRAIN_NAME_MAX > 255
#error "a name's length is one byte in the record"
#endif

struct drain_entry {
	char		name[DRAIN_NAME_MAX + 1];	/* "" : slot unused */
	uint64_t	count;
	int64_t		last;
};

struct drain_table {
	struct drain_entry	e[DRAIN_TOP_MAX];
	size_t			n;
};

struct drain {
	struct store		*store;
	int64_t			 last;			/* 0: never */
	uint64_t		 hour_of[DRAIN_HOURS];	/* slot's hour */
	uint64_t		 count[DRAIN_HOURS];
	struct drain_table	 domains;
	struct drain_table	 clients;
};

/* ---- the counters ----------------------------------------------------------- */

static uint64_t
hour_number(time_t when)
{
	return (when < 0 ? 0 : (uint64_t)when / 3600);
}

/*
 * clean_name - what is stored for a peer-supplied name: lower case,
 * printable, no blanks, at most DRAIN_NAME_MAX bytes; "" if nothing is
 * left
 */
static void
clean_name(const char *in, char out[DRAIN_NAME_MAX + 1])
{
	size_t i, n = 0;

	for (i = 0; in != NULL && in[i] != '\0' && n < DRAIN_NAME_MAX; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		else if (c <= 0x20 || c >= 0x7f)
			c = '?';
		out[n++] = (char)c;
	}
	out[n] = '\0';
}

/* table_note - count one more for name (already cleaned, non-empty) */
static void
table_note(struct drain_table *t, const char *name, int64_t when)
{
	struct drain_entry *victim = NULL;
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->e[i].name, name) == 0) {
			t->e[i].count++;
			if (when > t->e[i].last)
				t->e[i].last = when;
			return;
		}
	if (t->n < DRAIN_TOP_MAX)
		victim = &t->e[t->n++];
	else {
		/* Full: the smallest count goes, the stalest of those. */
		victim = &t->e[0];
		for (i = 1; i < t->n; i++)
			if (t->e[i].count < victim->count ||
			    (t->e[i].count == victim->count &&
			    t->e[i].last < victim->last))
				victim = &t->e[i];
	}
	memcpy(victim->name, name, strlen(name) + 1);
	victim->count = 1;
	victim->last = when;
}

/* drain_note - one message accepted at when */
void
drain_note(struct drain *d, time_t when, const char *sender_domain,
    const char *client_addr)
{
	char name[DRAIN_NAME_MAX + 1];
	uint64_t h = hour_number(when);
	size_t slot = (size_t)(h % DRAIN_HOURS);

	if (d == NULL)
		return;
	if ((int64_t)when > d->last)
		d->last = when;
	if (d->hour_of[slot] != h) {
		if (d->hour_of[slot] > h)
			goto tables;	/* older than the ring: not counted */
		d->hour_of[slot] = h;
		d->count[slot] = 0;
	}
	d->count[slot]++;
tables:
	clean_name(sender_domain, name);
	if (name[0] != '\0')
		table_note(&d->domains, name, when);
	clean_name(client_addr, name);
	if (name[0] != '\0')
		table_note(&d->clients, name, when);
}

/* drain_hourly - the DRAIN_HOURS counts up to now, oldest first */
void
drain_hourly(const struct drain *d, time_t now, uint64_t out[DRAIN_HOURS])
{
	uint64_t h = hour_number(now), hh;
	size_t i, slot;

	for (i = 0; i < DRAIN_HOURS; i++) {
		out[i] = 0;
		if (h + 1 < DRAIN_HOURS - i)
			continue;	/* before the epoch */
		hh = h + 1 - (DRAIN_HOURS - i);
		slot = (size_t)(hh % DRAIN_HOURS);
		if (d->hour_of[slot] == hh)
			out[i] = d->count[slot];
	}
}

/* drain_last - unix time of the last inbound message, 0 when never */
time_t
drain_last(const struct drain *d)
{
	return ((time_t)d->last);
}

/* ---- JSON --------------------------------------------------------------------- */

static int
entry_rank(const void *a, const void *b)
{
	const struct drain_entry *x = *(const struct drain_entry *const *)a;
	const struct drain_entry *y = *(const struct drain_entry *const *)b;

	if (x->count != y->count)
		return (x->count > y->count ? -1 : 1);
	if (x->last != y->last)
		return (x->last > y->last ? -1 : 1);
	return (strcmp(x->name, y->name));
}

/* table_top - up to max entries of a table, largest count first */
static size_t
table_top(const struct drain_table *t, const struct drain_entry **out,
    size_t max)
{
	const struct drain_entry *all[DRAIN_TOP_MAX];
	size_t i;

	for (i = 0; i < t->n; i++)
		all[i] = &t->e[i];
	if (t->n > 1)
		qsort(all, t->n, sizeof(*all), entry_rank);
	for (i = 0; i < t->n && i < max; i++)
		out[i] = all[i];
	return (i);
}

static void
json_table(struct json *j, const char *key, const struct drain_table *t)
{
	const struct drain_entry *top[DRAIN_TOP_SHOWN];
	size_t i, n = table_top(t, top, DRAIN_TOP_SHOWN);

	json_key(j, key);
	json_array_begin(j);
	for (i = 0; i < n; i++) {
		json_object_begin(j);
		json_key(j, "name");
		json_string(j, top[i]->name);
		json_key(j, "count");
		json_uint(j, top[i]->count);
		json_key(j, "last_seen");
		json_int(j, top[i]->last);
		json_object_end(j);
	}
	json_array_end(j);
}

/* drain_json - the object documented at the top of this file */
void
drain_json(const struct drain *d, time_t now, struct json *j)
{
	uint64_t hourly[DRAIN_HOURS], total = 0;
	size_t i;

	json_object_begin(j);
	json_key(j, "last_inbound");
	if (d->last > 0)
		json_int(j, d->last);
	else
		json_null(j);
	json_key(j, "seconds_since_last");
	if (d->last > 0)
		json_int(j, (int64_t)now > d->last ? (int64_t)now - d->last : 0);
	else
		json_null(j);
	json_key(j, "hours");
	json_uint(j, DRAIN_HOURS);
	drain_hourly(d, now, hourly);
	json_key(j, "hourly");
	json_array_begin(j);
	for (i = 0; i < DRAIN_HOURS; i++) {
		json_uint(j, hourly[i]);
		total += hourly[i];
	}
	json_array_end(j);
	json_key(j, "total");
	json_uint(j, total);
	json_table(j, "top_domains", &d->domains);
	json_table(j, "top_clients", &d->clients);
	json_object_end(j);
}

/* ---- the record ---------------------------------------------------------------- */

static void
put_table(struct wbuf *w, const struct drain_table *t)
{
	size_t i;

	wbuf_be16(w, (uint16_t)t->n);
	for (i = 0; i < t->n; i++) {
		/* names are cut to DRAIN_NAME_MAX (255) when noted */
		wbuf_str8(w, t->e[i].name, strlen(t->e[i].name));
		wbuf_be64(w, t->e[i].count);
		wbuf_be64(w, (uint64_t)t->e[i].last);
	}
}

/* drain_encode - the record of d into a malloc'd buffer */
static int
drain_encode(const struct drain *d, unsigned char **buf_r, size_t *len_r)
{
	struct wbuf w;
	uint16_t n = 0;
	size_t i;

	wbuf_init(&w);
	wbuf_u8(&w, 'D');
	wbuf_u8(&w, DRAIN_VERSION);
	wbuf_be64(&w, (uint64_t)d->last);
	for (i = 0; i < DRAIN_HOURS; i++)
		if (d->count[i] > 0)
			n++;
	wbuf_be16(&w, n);
	for (i = 0; i < DRAIN_HOURS; i++)
		if (d->count[i] > 0) {
			wbuf_be64(&w, d->hour_of[i]);
			wbuf_be64(&w, d->count[i]);
		}
	put_table(&w, &d->domains);
	put_table(&w, &d->clients);
	return (wbuf_finish(&w, buf_r, len_r));
}

static int
get_table(struct rbuf *r, struct drain_table *t)
{
	size_t i, k, len, n = rbuf_be16(r);

	if (r->why != NULL || n > DRAIN_TOP_MAX)
		return (-1);
	for (i = 0; i < n; i++) {
		struct drain_entry *e = &t->e[i];

		/* len <= 255 == DRAIN_NAME_MAX: the name always fits */
		len = rbuf_u8(r);
		if (r->why != NULL || len == 0 ||
		    rbuf_bytes(r, e->name, len) == -1)
			return (-1);
		e->name[len] = '\0';
		for (k = 0; k < len; k++)
			if ((unsigned char)e->name[k] <= 0x20 ||
			    (unsigned char)e->name[k] >= 0x7f)
				return (-1);
		e->count = rbuf_be64(r);
		e->last = (int64_t)rbuf_be64(r);
		if (r->why != NULL || e->count == 0)
			return (-1);
		for (k = 0; k < i; k++)
			if (strcmp(t->e[k].name, e->name) == 0)
				return (-1);
	}
	t->n = n;
	return (0);
}

/*
 * drain_decode - a record into d (which keeps its store); strict: any
 * excess, shortfall or impossible value is -1 and d is left cleared
 */
static int
drain_decode(struct drain *d, const void *buf, size_t len)
{
	struct store *store = d->store;
	struct rbuf r;
	size_t i, n;

	memset(d, 0, sizeof(*d));
	d->store = store;
	rbuf_init(&r, buf, len);
	if (rbuf_u8(&r) != 'D' || rbuf_u8(&r) != DRAIN_VERSION)
		goto bad;
	d->last = (int64_t)rbuf_be64(&r);
	if (d->last < 0)
		goto bad;
	n = rbuf_be16(&r);
	if (r.why != NULL || n > DRAIN_HOURS)
		goto bad;
	for (i = 0; i < n; i++) {
		uint64_t h = rbuf_be64(&r), c = rbuf_be64(&r);
		size_t slot = (size_t)(h % DRAIN_HOURS);

		if (r.why != NULL || c == 0 || d->count[slot] != 0)
			goto bad;
		d->hour_of[slot] = h;
		d->count[slot] = c;
	}
	if (get_table(&r, &d->domains) == -1 ||
	    get_table(&r, &d->clients) == -1 || rbuf_end(&r) == -1)
		goto bad;
	return (0);
bad:
	memset(d, 0, sizeof(*d));
	d->store = store;
	return (-1);
}

/* ---- load and save -------------------------------------------------------------- */

struct drain_io {
	struct drain	*d;
	unsigned char	*buf;
	size_t		 len;
	int		 found;
	int		 bad;
};

static int
txn_load(struct store_txn *tx, void *arg)
{
	struct drain_io *io = arg;
	const void *val;
	size_t vlen;
	int rc;

	io->found = 0;
	io->bad = 0;
	rc = store_get(tx, STORE_DB_META, DRAIN_KEY, strlen(DRAIN_KEY), &val,
	    &vlen);
	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0)
		return (-1);
	io->found = 1;
	if (drain_decode(io->d, val, vlen) == -1)
		io->bad = 1;
	return (0);
}

static int
txn_save(struct store_txn *tx, void *arg)
{
	struct drain_io *io = arg;

	return (store_put(tx, STORE_DB_META, DRAIN_KEY, strlen(DRAIN_KEY),
	    io->buf, io->len, 0) == 0 ? 0 : -1);
}

/*
 * drain_new - the drain view, restored from store when it holds one
 * (store may be NULL: nothing is loaded or saved)
 */
int
drain_new(struct drain **drain_r, struct store *store, char *err,
    size_t errlen)
{
	struct drain *d;
	struct drain_io io;

	*drain_r = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	d->store = store;
	if (store != NULL) {
		memset(&io, 0, sizeof(io));
		io.d = d;
		if (store_txn_run(store, 1, txn_load, &io, err, errlen) != 0) {
			free(d);
			return (-1);
		}
		if (io.bad)
			log_warnx("drain: the saved drain view does not decode; "
			    "starting afresh");
	}
	*drain_r = d;
	return (0);
}

/* drain_save - write the state to STORE_DB_META */
int
drain_save(struct drain *d, char *err, size_t errlen)
{
	struct drain_io io;
	int rc;

	if (d == NULL || d->store == NULL)
		return (0);
	memset(&io, 0, sizeof(io));
	io.d = d;
	if (drain_encode(d, &io.buf, &io.len) == -1) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	rc = store_txn_run(d->store, 0, txn_save, &io, err, errlen);
	free(io.buf);
	/* ferry-relay's store skips the meta sync of its commits (main.c) */
	if (rc == 0 && store_sync(d->store, err, errlen) == -1)
		return (-1);
	return (rc == 0 ? 0 : -1);
}

void
drain_free(struct drain **dp)
{
	free(*dp);
	*dp = NULL;
}
