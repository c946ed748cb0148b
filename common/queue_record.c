/*
 * queue_record.c - the LMDB "queue" record: encoding, decoding, queue ids.
 *
 * Exposure: the bytes decoded here come from our own database, but a
 * damaged file, a bug in an older version or another program writing
 * the environment can put anything there.  The decoder therefore
 * distrusts every length and count: a corrupt record yields an error,
 * never a read past the buffer or a huge allocation.
 *
 * Threading: pure functions, except queue_id_new(), which keeps a
 * per-process counter (not thread-safe: call it on the loop only).
 *
 * ON-DISK FORMAT (stable; bump QR_VERSION and keep decoding old versions
 * when it changes).  All integers are unsigned LEB128 varints (7 bits per
 * byte, low group first, at most 10 bytes); signed times are zigzag
 * encoded first.  A string is a varint length then that many bytes, no
 * NUL; an optional string stores length + 1, 0 meaning "absent".
 *
 *   byte    'Q'              magic
 *   byte    QR_VERSION       format version (2; 1 is still decoded)
 *   16      id               16 lower-case hex digits (the key, repeated
 *                            so a record is self-describing)
 *   varint  flags            QR_*
 *   zigzag  arrived          unix time
 *   varint  size             message bytes
 *   string  sender           "" for <>
 *   string  client
 *   ostring headers          (version 2) fields prepended when
 *                            forwarding, CRLF-terminated
 *   varint  ndlv
 *   ndlv x {
 *     byte    dest           enum dlv_dest
 *     byte    state          enum dlv_state
 *     varint  attempts
 *     zigzag  next_try
 *     string  rcpt
 *     ostring last_reply
 *     byte    has_key        (version 2) 0, or 1 and then:
 *     32      ledger_key
 *   }
 * Nothing may follow the last delivery.  Version 1 is the same without
 * the fields marked (version 2): headers absent, no ledger keys.
 * rec->relay_key is not part of the record (it lives in "dedupe").
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "queue_record.h"

#define QR_MAGIC	'Q'
#define QR_VERSION	2
#define QR_VERSION_V1	1		/* still decoded */

/* Sanity caps: a record beyond these was not written by us. */
#define QR_STR_MAX	(64 * 1024)	/* any one string */
#define QR_DLV_MIN	6		/* smallest encoded delivery (v1) */

/* ---- encoding ---------------------------------------------------------- */

/* put_ostring - an optional string: length + 1, or 0 for "absent" */
static void
put_ostring(struct wbuf *w, const char *s)
{
	size_t n;

	if (s == NULL) {
		wbuf_varint(w, 0);
		return;
	}
	n = strlen(s);
	wbuf_varint(w, (uint64_t)n + 1);
	wbuf_bytes(w, s, n);
}

/*
 * queue_record_encode - serialise rec into a malloc'd buffer
 *
 * Refuses (-1, errno EINVAL) a record whose id is not a queue id or
 * whose strings are longer than the decoder accepts, so nothing is ever
 * written that cannot be read back.  ENOMEM on allocation failure.
 */
int
queue_record_encode(const struct queue_record *rec, unsigned char **buf_r,
    size_t *len_r)
{
	struct wbuf w;
	size_t i;

	wbuf_init(&w);
	*buf_r = NULL;
	*len_r = 0;
	if (strlen(rec->id) != QUEUE_ID_LEN ||
	    strspn(rec->id, "0123456789abcdef") != QUEUE_ID_LEN ||
	    (rec->ndlv > 0 && rec->dlv == NULL) ||
	    (rec->sender && strlen(rec->sender) > QR_STR_MAX) ||
	    (rec->client && strlen(rec->client) > QR_STR_MAX) ||
	    (rec->headers && strlen(rec->headers) >= QR_STR_MAX)) {
		errno = EINVAL;
		return (-1);
	}
	for (i = 0; i < rec->ndlv; i++) {
		const struct delivery *d = &rec->dlv[i];

		if (d->rcpt == NULL || strlen(d->rcpt) > QR_STR_MAX ||
		    (d->last_reply && strlen(d->last_reply) >= QR_STR_MAX)) {
			errno = EINVAL;
			return (-1);
		}
	}

	wbuf_u8(&w, QR_MAGIC);
	wbuf_u8(&w, QR_VERSION);
	wbuf_bytes(&w, rec->id, QUEUE_ID_LEN);
	wbuf_varint(&w, rec->flags);
	wbuf_zigzag(&w, rec->arrived);
	wbuf_varint(&w, rec->size);
	wbuf_strv(&w, rec->sender, rec->sender ? strlen(rec->sender) : 0);
	wbuf_strv(&w, rec->client, rec->client ? strlen(rec->client) : 0);
	put_ostring(&w, rec->headers);
	wbuf_varint(&w, rec->ndlv);
	for (i = 0; i < rec->ndlv; i++) {
		const struct delivery *d = &rec->dlv[i];

		wbuf_u8(&w, d->dest);
		wbuf_u8(&w, d->state);
		wbuf_varint(&w, d->attempts);
		wbuf_zigzag(&w, d->next_try);
		wbuf_strv(&w, d->rcpt, strlen(d->rcpt));
		put_ostring(&w, d->last_reply);
		wbuf_u8(&w, d->has_ledger_key ? 1 : 0);
		if (d->has_ledger_key)
			wbuf_bytes(&w, d->ledger_key, sizeof(d->ledger_key));
	}
	if (wbuf_finish(&w, buf_r, len_r) == -1) {
		errno = ENOMEM;
		return (-1);
	}
	return (0);
}

/* ---- decoding ---------------------------------------------------------- */

static void
get_string(struct rbuf *r, char **s_r)
{
	uint64_t n;

	if (rbuf_varint(r, &n) == 0)
		*s_r = rbuf_strdup(r, n, QR_STR_MAX);
}

static void
get_ostring(struct rbuf *r, char **s_r)
{
	uint64_t n;

	*s_r = NULL;
	if (rbuf_varint(r, &n) == 0 && n > 0)
		*s_r = rbuf_strdup(r, n - 1, QR_STR_MAX);
}

/*
 * queue_record_decode - parse buf into rec (cleared first)
 *
 * On failure rec is left cleared (nothing to free) and err says why.
 */
int
queue_record_decode(const void *buf, size_t len, struct queue_record *rec,
    char *err, size_t errlen)
{
	struct rbuf r;
	const unsigned char *p;
	unsigned magic, version, dest, state, haskey;
	uint64_t flags = 0, size = 0, ndlv = 0, attempts = 0;
	size_t i;

	memset(rec, 0, sizeof(*rec));
	rbuf_init(&r, buf, len);
	magic = rbuf_u8(&r);
	version = rbuf_u8(&r);
	if (r.why == NULL && magic != QR_MAGIC)
		rbuf_fail(&r, "bad magic");
	if (r.why == NULL && version != QR_VERSION && version != QR_VERSION_V1)
		rbuf_fail(&r, "unknown version");
	if (r.why == NULL && rbuf_left(&r) < QUEUE_ID_LEN)
		rbuf_fail(&r, "truncated id");
	if ((p = rbuf_take(&r, QUEUE_ID_LEN)) != NULL) {
		memcpy(rec->id, p, QUEUE_ID_LEN);
		rec->id[QUEUE_ID_LEN] = '\0';
		if (strspn(rec->id, "0123456789abcdef") != QUEUE_ID_LEN)
			rbuf_fail(&r, "bad id");
	}
	if (rbuf_varint(&r, &flags) == 0 && flags > UINT32_MAX)
		rbuf_fail(&r, "bad flags");
	rec->flags = (uint32_t)flags;
	rbuf_zigzag(&r, &rec->arrived);
	if (rbuf_varint(&r, &size) == 0)
		rec->size = size;
	get_string(&r, &rec->sender);
	get_string(&r, &rec->client);
	if (version >= 2)
		get_ostring(&r, &rec->headers);
	if (rbuf_varint(&r, &ndlv) == 0) {
		/* Every delivery takes at least QR_DLV_MIN bytes: a count
		 * larger than the rest of the buffer allows is a lie, and
		 * must not become a huge calloc(). */
		if (ndlv > rbuf_left(&r) / QR_DLV_MIN)
			rbuf_fail(&r, "bad delivery count");
		else if (ndlv > 0 &&
		    (rec->dlv = calloc(ndlv, sizeof(*rec->dlv))) == NULL)
			rbuf_fail(&r, "out of memory");
	}
	for (i = 0; r.why == NULL && i < ndlv; i++) {
		struct delivery *d = &rec->dlv[i];

		rec->ndlv = i + 1;	/* so clear() frees this one too */
		dest = rbuf_u8(&r);
		state = rbuf_u8(&r);
		if (r.why == NULL && dest > DLV_COPY)
			rbuf_fail(&r, "bad destination");
		if (r.why == NULL && state > DLV_BOUNCED)
			rbuf_fail(&r, "bad delivery state");
		d->dest = (uint8_t)dest;
		d->state = (uint8_t)state;
		if (rbuf_varint(&r, &attempts) == 0 && attempts > UINT32_MAX)
			rbuf_fail(&r, "bad attempt count");
		d->attempts = (uint32_t)attempts;
		rbuf_zigzag(&r, &d->next_try);
		get_string(&r, &d->rcpt);
		get_ostring(&r, &d->last_reply);
		if (version < 2)
			continue;
		haskey = rbuf_u8(&r);
		if (r.why == NULL && haskey > 1)
			rbuf_fail(&r, "bad ledger key flag");
		if (r.why == NULL && haskey == 1) {
			if (rbuf_left(&r) < sizeof(d->ledger_key))
				rbuf_fail(&r, "truncated ledger key");
			else if (rbuf_bytes(&r, d->ledger_key,
			    sizeof(d->ledger_key)) == 0)
				d->has_ledger_key = 1;
		}
	}
	if (rbuf_end(&r) == -1) {
		snprintf(err, errlen, "queue record: %s", r.why);
		queue_record_clear(rec);
		return (-1);
	}
	return (0);
}

/* queue_record_clear - free what rec owns and zero it; idempotent */
void
queue_record_clear(struct queue_record *rec)
{
	size_t i;

	if (rec == NULL)
		return;
	for (i = 0; rec->dlv != NULL && i < rec->ndlv; i++) {
		free(rec->dlv[i].rcpt);
		free(rec->dlv[i].last_reply);
	}
	free(rec->dlv);
	free(rec->sender);
	free(rec->client);
	free(rec->headers);
	memset(rec, 0, sizeof(*rec));
}

/* queue_record_done - 1 when no delivery is still pending */
int
queue_record_done(const struct queue_record *rec)
{
	size_t i;

	for (i = 0; i < rec->ndlv; i++)
		if (rec->dlv[i].state == DLV_PENDING)
			return (0);
	return (1);
}

/* ---- queue ids --------------------------------------------------------- */

/*
 * queue_id_new - a new queue id: 16 lower-case hex digits
 *
 * The 64-bit value is (microseconds since the epoch << 12) | low, so ids
 * sort by arrival (the time part lasts until the year 2112).  The 12 low
 * bits start at a random value per process and count up; when two ids
 * fall in the same microsecond the value is bumped past the last one, so
 * one process's ids are strictly increasing even when the clock stalls
 * or steps back.  Across restarts the clock has moved on; between two
 * relays on one host a clash needs the same microsecond and the same 12
 * random bits (and the spool still refuses an existing name with
 * O_EXCL, the caller then asks again).
 */
int
queue_id_new(char id[QUEUE_ID_LEN + 1])
{
	static uint64_t last;
	static uint16_t low;
	static int seeded;
	struct timeval tv;
	uint64_t v;

	if (!seeded) {
		if (getrandom(&low, sizeof(low), GRND_NONBLOCK) !=
		    (ssize_t)sizeof(low))
			low = (uint16_t)(getpid() ^ time(NULL));
		seeded = 1;
	}
	if (gettimeofday(&tv, NULL) == -1)
		return (-1);
	low = (low + 1) & 0xfff;
	v = (((uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec) << 12) |
	    low;
	if (v <= last)
		v = last + 1;
	last = v;
	snprintf(id, QUEUE_ID_LEN + 1, "%016" PRIx64, v);
	return (0);
}
