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

#include "queue_record.h"

#define QR_MAGIC	'Q'
#define QR_VERSION	2
#define QR_VERSION_V1	1		/* still decoded */

/* Sanity caps: a record beyond these was not written by us. */
#define QR_STR_MAX	(64 * 1024)	/* any one string */
#define QR_DLV_MIN	6		/* smallest encoded delivery (v1) */

/* ---- encoding ---------------------------------------------------------- */

struct qbuf {
	unsigned char	*p;
	size_t		 len;
	size_t		 cap;
	int		 failed;
};

/* qbuf_reserve - make room for n more bytes */
static int
qbuf_reserve(struct qbuf *b, size_t n)
{
	unsigned char *np;
	size_t ncap;

	if (b->failed)
		return (-1);
	if (n <= b->cap - b->len)
		return (0);
	ncap = b->cap ? b->cap : 128;
	while (ncap - b->len < n) {
		if (ncap > SIZE_MAX / 2) {
			b->failed = 1;
			return (-1);
		}
		ncap *= 2;
	}
	if ((np = realloc(b->p, ncap)) == NULL) {
		b->failed = 1;
		return (-1);
	}
	b->p = np;
	b->cap = ncap;
	return (0);
}

static void
qbuf_bytes(struct qbuf *b, const void *data, size_t n)
{
	if (qbuf_reserve(b, n) == -1)
		return;
	if (n > 0)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void
qbuf_byte(struct qbuf *b, unsigned char c)
{
	qbuf_bytes(b, &c, 1);
}

static void
qbuf_varint(struct qbuf *b, uint64_t v)
{
	unsigned char tmp[10];
	size_t n = 0;

	do {
		tmp[n] = v & 0x7f;
		v >>= 7;
		if (v != 0)
			tmp[n] |= 0x80;
		n++;
	} while (v != 0);
	qbuf_bytes(b, tmp, n);
}

static void
qbuf_zigzag(struct qbuf *b, int64_t v)
{
	qbuf_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void
qbuf_string(struct qbuf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	qbuf_varint(b, n);
	qbuf_bytes(b, s, n);
}

static void
qbuf_ostring(struct qbuf *b, const char *s)
{
	size_t n;

	if (s == NULL) {
		qbuf_varint(b, 0);
		return;
	}
	n = strlen(s);
	qbuf_varint(b, (uint64_t)n + 1);
	qbuf_bytes(b, s, n);
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
	struct qbuf b = { NULL, 0, 0, 0 };
	size_t i;

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

	qbuf_byte(&b, QR_MAGIC);
	qbuf_byte(&b, QR_VERSION);
	qbuf_bytes(&b, rec->id, QUEUE_ID_LEN);
	qbuf_varint(&b, rec->flags);
	qbuf_zigzag(&b, rec->arrived);
	qbuf_varint(&b, rec->size);
	qbuf_string(&b, rec->sender);
	qbuf_string(&b, rec->client);
	qbuf_ostring(&b, rec->headers);
	qbuf_varint(&b, rec->ndlv);
	for (i = 0; i < rec->ndlv; i++) {
		const struct delivery *d = &rec->dlv[i];

		qbuf_byte(&b, d->dest);
		qbuf_byte(&b, d->state);
		qbuf_varint(&b, d->attempts);
		qbuf_zigzag(&b, d->next_try);
		qbuf_string(&b, d->rcpt);
		qbuf_ostring(&b, d->last_reply);
		qbuf_byte(&b, d->has_ledger_key ? 1 : 0);
		if (d->has_ledger_key)
			qbuf_bytes(&b, d->ledger_key, sizeof(d->ledger_key));
	}
	if (b.failed) {
		free(b.p);
		errno = ENOMEM;
		return (-1);
	}
	*buf_r = b.p;
	*len_r = b.len;
	return (0);
}

/* ---- decoding ---------------------------------------------------------- */

struct qread {
	const unsigned char	*p;
	size_t			 left;
	const char		*why;	/* first failure, static string */
};

static int
qread_fail(struct qread *r, const char *why)
{
	if (r->why == NULL)
		r->why = why;
	return (-1);
}

static int
qread_byte(struct qread *r, unsigned char *c)
{
	if (r->why)
		return (-1);
	if (r->left < 1)
		return (qread_fail(r, "truncated"));
	*c = *r->p++;
	r->left--;
	return (0);
}

/* qread_varint - a varint of at most 10 bytes that fits 64 bits */
static int
qread_varint(struct qread *r, uint64_t *v_r)
{
	uint64_t v = 0;
	unsigned shift = 0;
	unsigned char c;

	for (;;) {
		if (qread_byte(r, &c) == -1)
			return (-1);
		if (shift == 63 && (c & 0x7e) != 0)
			return (qread_fail(r, "integer overflow"));
		v |= (uint64_t)(c & 0x7f) << shift;
		if ((c & 0x80) == 0)
			break;
		shift += 7;
		if (shift > 63)
			return (qread_fail(r, "integer too long"));
	}
	*v_r = v;
	return (0);
}

static int
qread_zigzag(struct qread *r, int64_t *v_r)
{
	uint64_t u;

	if (qread_varint(r, &u) == -1)
		return (-1);
	*v_r = (int64_t)((u >> 1) ^ (~(u & 1) + 1));
	return (0);
}

/* qread_strn - n bytes as a new NUL-terminated string; NUL bytes refused */
static int
qread_strn(struct qread *r, uint64_t n, char **s_r)
{
	char *s;

	if (n > QR_STR_MAX)
		return (qread_fail(r, "string too long"));
	if (n > r->left)
		return (qread_fail(r, "truncated string"));
	if (memchr(r->p, '\0', n) != NULL)
		return (qread_fail(r, "NUL in string"));
	if ((s = malloc(n + 1)) == NULL)
		return (qread_fail(r, "out of memory"));
	memcpy(s, r->p, n);
	s[n] = '\0';
	r->p += n;
	r->left -= n;
	*s_r = s;
	return (0);
}

static int
qread_string(struct qread *r, char **s_r)
{
	uint64_t n;

	if (qread_varint(r, &n) == -1)
		return (-1);
	return (qread_strn(r, n, s_r));
}

static int
qread_ostring(struct qread *r, char **s_r)
{
	uint64_t n;

	*s_r = NULL;
	if (qread_varint(r, &n) == -1)
		return (-1);
	if (n == 0)
		return (0);
	return (qread_strn(r, n - 1, s_r));
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
	struct qread r = { buf, len, NULL };
	unsigned char magic = 0, version = 0, dest = 0, state = 0, haskey = 0;
	uint64_t flags, size, ndlv, attempts;
	size_t i;

	memset(rec, 0, sizeof(*rec));
	if (buf == NULL)
		r.left = 0;
	qread_byte(&r, &magic);
	qread_byte(&r, &version);
	if (r.why == NULL && magic != QR_MAGIC)
		qread_fail(&r, "bad magic");
	if (r.why == NULL && version != QR_VERSION && version != QR_VERSION_V1)
		qread_fail(&r, "unknown version");
	if (r.why == NULL) {
		if (r.left < QUEUE_ID_LEN)
			qread_fail(&r, "truncated id");
		else {
			memcpy(rec->id, r.p, QUEUE_ID_LEN);
			rec->id[QUEUE_ID_LEN] = '\0';
			if (strspn(rec->id, "0123456789abcdef") != QUEUE_ID_LEN)
				qread_fail(&r, "bad id");
			r.p += QUEUE_ID_LEN;
			r.left -= QUEUE_ID_LEN;
		}
	}
	if (qread_varint(&r, &flags) == 0 && flags > UINT32_MAX)
		qread_fail(&r, "bad flags");
	rec->flags = (uint32_t)flags;
	qread_zigzag(&r, &rec->arrived);
	if (qread_varint(&r, &size) == 0)
		rec->size = size;
	qread_string(&r, &rec->sender);
	qread_string(&r, &rec->client);
	if (version >= 2)
		qread_ostring(&r, &rec->headers);
	if (qread_varint(&r, &ndlv) == 0) {
		/* Every delivery takes at least QR_DLV_MIN bytes: a count
		 * larger than the rest of the buffer allows is a lie, and
		 * must not become a huge calloc(). */
		if (ndlv > r.left / QR_DLV_MIN)
			qread_fail(&r, "bad delivery count");
		else if (ndlv > 0 &&
		    (rec->dlv = calloc(ndlv, sizeof(*rec->dlv))) == NULL)
			qread_fail(&r, "out of memory");
	}
	for (i = 0; r.why == NULL && i < ndlv; i++) {
		struct delivery *d = &rec->dlv[i];

		rec->ndlv = i + 1;	/* so clear() frees this one too */
		qread_byte(&r, &dest);
		qread_byte(&r, &state);
		if (r.why == NULL && dest > DLV_COPY)
			qread_fail(&r, "bad destination");
		if (r.why == NULL && state > DLV_BOUNCED)
			qread_fail(&r, "bad delivery state");
		d->dest = dest;
		d->state = state;
		if (qread_varint(&r, &attempts) == 0 && attempts > UINT32_MAX)
			qread_fail(&r, "bad attempt count");
		d->attempts = (uint32_t)attempts;
		qread_zigzag(&r, &d->next_try);
		qread_string(&r, &d->rcpt);
		qread_ostring(&r, &d->last_reply);
		if (version >= 2 && qread_byte(&r, &haskey) == 0) {
			if (haskey > 1)
				qread_fail(&r, "bad ledger key flag");
			else if (haskey == 1) {
				if (r.left < sizeof(d->ledger_key))
					qread_fail(&r, "truncated ledger key");
				else {
					memcpy(d->ledger_key, r.p,
					    sizeof(d->ledger_key));
					d->has_ledger_key = 1;
					r.p += sizeof(d->ledger_key);
					r.left -= sizeof(d->ledger_key);
				}
			}
		}
	}
	if (r.why == NULL && r.left != 0)
		qread_fail(&r, "trailing bytes");
	if (r.why != NULL) {
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
