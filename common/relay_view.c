/*
 * relay_view.c - the relay's evidence for one recipient domain, read
 * straight from the shared store (see relay_view.h), and the per-domain
 * inbound record the relay writes for it.
 *
 * INBOUND RECORD FORMAT (stable; STORE_DB_META, key "inbound:" + the
 * domain in lower case):
 *   byte     'I'               magic
 *   byte     1                 version
 *   8        last inbound      unix time, big-endian
 *   byte     n                 length of the client string (< 128)
 *   n        client            "helo [addr]" of that message, no NUL
 *   24 x {                     the hourly ring, like relay/drain.c's:
 *     4      hour              unix time / 3600, big-endian; the slot
 *                              of hour h is h % 24, a stale tag means 0
 *     4      count             messages accepted in that hour
 *   }
 * Nothing may follow.  A reader that finds another version or a damaged
 * record treats the domain as never seen and says so through err only
 * when the store itself fails: the queue counts still come through.
 *
 * The queue walk decodes every record with queue_record_decode() and
 * counts, per record that is not a DSN of ours, the pending upstream
 * deliveries whose recipient is in the domain: held (QR_HELD) wins,
 * then deferred (tried before), else queued.  copy_to deliveries are
 * the old host's own copies and not evidence about the new one.
 *
 * Exposure: the bytes come from our own database but are distrusted like
 * any on-disk record (lengths checked).  Threading: no state; any thread
 * that may use the store.
 */

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "bytes.h"
#include "queue_record.h"
#include "relay_view.h"
#include "util.h"

#define RV_MAGIC	'I'
#define RV_VERSION	1
#define RV_DOMAIN_MAX	255
#define RV_FIXED	(2 + 8 + 1)
#define RV_BUCKET	8
#define RV_LEN_MAX	(RV_FIXED + (RELAY_VIEW_CLIENT_MAX - 1) + \
			    RELAY_VIEW_HOURS * RV_BUCKET)

struct rv_rec {
	int64_t		last;
	char		client[RELAY_VIEW_CLIENT_MAX];
	uint32_t	hour[RELAY_VIEW_HOURS];
	uint32_t	count[RELAY_VIEW_HOURS];
};

/* rv_key - "inbound:" + lower-case domain; -1 for an unusable domain */
static int
rv_key(const char *domain, char *key, size_t keylen, size_t *len_r)
{
	size_t n = strlen(RELAY_VIEW_KEY_PREFIX), i, dl;

	dl = domain != NULL ? strlen(domain) : 0;
	if (dl == 0 || dl > RV_DOMAIN_MAX || n + dl >= keylen)
		return (-1);
	memcpy(key, RELAY_VIEW_KEY_PREFIX, n);
	for (i = 0; i < dl; i++)
		key[n + i] = (char)tolower((unsigned char)domain[i]);
	key[n + dl] = '\0';
	*len_r = n + dl;
	return (0);
}

static int
rv_decode(const void *val, size_t vlen, struct rv_rec *r)
{
	struct rbuf rb;
	size_t i;

	memset(r, 0, sizeof(*r));
	rbuf_init(&rb, val, vlen);
	if (rbuf_u8(&rb) != RV_MAGIC || rbuf_u8(&rb) != RV_VERSION)
		return (-1);
	r->last = (int64_t)rbuf_be64(&rb);
	rbuf_strcpy(&rb, rbuf_u8(&rb), r->client, sizeof(r->client));
	for (i = 0; i < RELAY_VIEW_HOURS; i++) {
		r->hour[i] = rbuf_be32(&rb);
		r->count[i] = rbuf_be32(&rb);
	}
	if (rbuf_end(&rb) == -1) {
		memset(r, 0, sizeof(*r));
		return (-1);
	}
	return (0);
}

static size_t
rv_encode(const struct rv_rec *r, unsigned char out[RV_LEN_MAX])
{
	struct wbuf w;
	size_t i;

	wbuf_init_fixed(&w, out, RV_LEN_MAX);
	wbuf_u8(&w, RV_MAGIC);
	wbuf_u8(&w, RV_VERSION);
	wbuf_be64(&w, (uint64_t)(r->last > 0 ? r->last : 0));
	/* client < RELAY_VIEW_CLIENT_MAX: the record always fits */
	wbuf_str8(&w, r->client, strlen(r->client));
	for (i = 0; i < RELAY_VIEW_HOURS; i++) {
		wbuf_be32(&w, r->hour[i]);
		wbuf_be32(&w, r->count[i]);
	}
	return (w.len);
}

int
relay_view_note(struct store_txn *tx, const char *domain, time_t when,
    const char *client)
{
	char key[sizeof(RELAY_VIEW_KEY_PREFIX) + RV_DOMAIN_MAX];
	unsigned char buf[RV_LEN_MAX];
	struct rv_rec r;
	const void *val;
	size_t klen, vlen, slot;
	uint32_t hour = when > 0 ? (uint32_t)(when / 3600) : 0;
	int rc;

	if (rv_key(domain, key, sizeof(key), &klen) == -1)
		return (-1);
	rc = store_get(tx, STORE_DB_META, key, klen, &val, &vlen);
	if (rc == -1)
		return (-1);
	/* Missing, or of another version: start afresh. */
	if (rc != 0 || rv_decode(val, vlen, &r) == -1)
		memset(&r, 0, sizeof(r));
	if ((int64_t)when >= r.last) {
		r.last = (int64_t)when;
		snprintf(r.client, sizeof(r.client), "%s",
		    client != NULL ? client : "");
	}
	slot = hour % RELAY_VIEW_HOURS;
	if (r.hour[slot] != hour) {
		r.hour[slot] = hour;
		r.count[slot] = 0;
	}
	if (r.count[slot] < UINT32_MAX)
		r.count[slot]++;
	vlen = rv_encode(&r, buf);
	return (store_put(tx, STORE_DB_META, key, klen, buf, vlen, 0) == 0 ?
	    0 : -1);
}

/* ---- reading ------------------------------------------------------------ */

struct rv_walk {
	const char			*domain;
	time_t				 now;
	struct relay_domain_view	*v;
};

/* in_domain - rcpt's domain is domain, case-insensitively and exactly */
static int
in_domain(const char *rcpt, const char *domain)
{
	const char *at = strrchr(rcpt, '@');

	return (at != NULL && strcasecmp(at + 1, domain) == 0);
}

static int
walk_one(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct rv_walk *w = arg;
	struct queue_record rec;
	char err[128];
	size_t i;
	int counted = 0;

	(void)key;
	(void)klen;
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1)
		return (0);	/* the relay reports damaged records */
	for (i = 0; !(rec.flags & QR_DSN) && i < rec.ndlv; i++) {
		const struct delivery *d = &rec.dlv[i];

		if (d->state != DLV_PENDING || d->dest != DLV_UPSTREAM ||
		    !in_domain(d->rcpt, w->domain))
			continue;
		if (rec.flags & QR_HELD)
			w->v->held++;
		else if (d->attempts > 0)
			w->v->deferred++;
		else
			w->v->queued++;
		counted = 1;
	}
	if (counted && (w->v->oldest == 0 || rec.arrived < w->v->oldest))
		w->v->oldest = (time_t)rec.arrived;
	queue_record_clear(&rec);
	return (0);
}

static int
view_fn(struct store_txn *tx, void *arg)
{
	struct rv_walk *w = arg;
	char key[sizeof(RELAY_VIEW_KEY_PREFIX) + RV_DOMAIN_MAX];
	struct rv_rec r;
	const void *val;
	size_t klen, vlen, i;
	uint32_t hour = w->now > 0 ? (uint32_t)(w->now / 3600) : 0;
	int rc;

	memset(w->v, 0, sizeof(*w->v));
	if (rv_key(w->domain, key, sizeof(key), &klen) == -1) {
		store_txn_seterr(tx, "bad domain");
		return (-1);
	}
	rc = store_get(tx, STORE_DB_META, key, klen, &val, &vlen);
	if (rc == -1)
		return (-1);
	if (rc == 0 && rv_decode(val, vlen, &r) == 0) {
		w->v->last_inbound = (time_t)r.last;
		snprintf(w->v->last_client, sizeof(w->v->last_client), "%s",
		    r.client);
		for (i = 0; i < RELAY_VIEW_HOURS; i++) {
			/* The hour now is in (a clock hour), and the 23
			 * before it; a tag from the future (clock stepped
			 * back) counts for neither. */
			if (r.hour[i] > hour || hour - r.hour[i] >=
			    RELAY_VIEW_HOURS)
				continue;
			w->v->arrivals_24h += r.count[i];
			if (r.hour[i] == hour)
				w->v->arrivals_1h += r.count[i];
		}
	}
	return (store_foreach(tx, STORE_DB_QUEUE, NULL, 0, walk_one, w) == 0 ?
	    0 : -1);
}

int
relay_view_domain(struct store *st, const char *domain, time_t now,
    struct relay_domain_view *v, char *err, size_t errlen)
{
	struct rv_walk w = { domain, now, v };

	memset(v, 0, sizeof(*v));
	if (store_txn_run(st, 1, view_fn, &w, err, errlen) != 0) {
		memset(v, 0, sizeof(*v));
		return (-1);
	}
	return (0);
}
