/*
 * queue_record.h - the relay's LMDB "queue" record: what the relay knows
 * about one spooled message, its codec and queue ids.  The relay's
 * on-disk format (layout at the top of queue_record.c); ferry-relay
 * writes it, ferryctl and ferry-syncd's cutover view (relay_view.c)
 * read it, hence common/.
 */
#ifndef FERRY_QUEUE_RECORD_H
#define FERRY_QUEUE_RECORD_H

#include <stddef.h>
#include <stdint.h>

/* "%016" PRIx64-style: 16 lower-case hex digits; sorts by arrival. */
#define QUEUE_ID_LEN	16

enum dlv_dest {
	DLV_UPSTREAM = 0,	/* [forward] upstream: the new provider */
	DLV_COPY = 1,		/* [forward] copy_to: the old local MTA */
};

enum dlv_state {
	DLV_PENDING = 0,	/* to be tried at next_try */
	DLV_SENT = 1,		/* accepted by the destination */
	DLV_BOUNCED = 2,	/* refused (5xx) or expired; DSN queued/sent */
};

/* One recipient at one destination. */
struct delivery {
	char		*rcpt;		/* address without <>; owned */
	uint8_t		 dest;		/* enum dlv_dest */
	uint8_t		 state;		/* enum dlv_state */
	uint32_t	 attempts;
	int64_t		 next_try;	/* unix time */
	char		*last_reply;	/* last answer or error; owned, may be NULL */
	/* The ledger key (msgkey_ledger of this recipient, the message's
	 * identity and body hash): its STORE_DB_LEDGER entry is pending
	 * from the spool commit and delivered on the upstream's 250, so
	 * ferry-syncd's delta pass skips the copy the old host also kept
	 * (common/ledger.h).  Encoded only when set. */
	uint8_t		 has_ledger_key;
	unsigned char	 ledger_key[32];
};

#define QR_HELD		0x01	/* ferryctl hold, or on_expire = hold */
#define QR_DSN		0x02	/* this message is itself a DSN we made */
/* An upstream transaction was begun and its result not yet committed:
 * set (and committed) before MAIL FROM goes out, cleared in the commit
 * of the result.  Found at start, it means the relay stopped uncleanly
 * while the upstream may have accepted the message (relay/inflight.c
 * looks in the destination mailboxes before sending it again). */
#define QR_INFLIGHT	0x04

/*
 * What the relay knows about one spooled message.  The spool file
 * (spool/queue/ID) alone can rebuild everything except delivery
 * progress; the record adds that progress.  Owns every pointer.
 */
struct queue_record {
	char		 id[QUEUE_ID_LEN + 1];
	int64_t		 arrived;	/* unix time of the 250 */
	uint64_t	 size;		/* message bytes in the spool file */
	uint32_t	 flags;		/* QR_* */
	char		*sender;	/* MAIL FROM without <>; "" for <> */
	char		*client;	/* "helo [addr]" for logs and DSNs */
	size_t		 ndlv;
	struct delivery	*dlv;
	/* The checks: header fields prepended when the message is forwarded
	 * (our Authentication-Results), CRLF-terminated; owned, may be NULL.
	 * Known only at the end of DATA, after the spool file is written,
	 * hence kept in the record and not in the file: a queue rebuilt
	 * from the files alone forwards without it. */
	char		*headers;
	/* The relay key (DESIGN.md §4), put into STORE_DB_DEDUPE
	 * with MDB_NOOVERWRITE in the same LMDB transaction as this record.
	 * Not encoded in the record. */
	uint8_t		 has_relay_key;
	unsigned char	 relay_key[32];
};

int	queue_record_encode(const struct queue_record *rec, unsigned char **buf_r,
	    size_t *len_r);
int	queue_record_decode(const void *buf, size_t len, struct queue_record *rec,
	    char *err, size_t errlen);
void	queue_record_clear(struct queue_record *rec);
int	queue_record_done(const struct queue_record *rec);	/* nothing pending */
int	queue_id_new(char id[QUEUE_ID_LEN + 1]);

/* The one-word state an admin sees (ferryctl queue, /metrics, /status). */
enum qr_state {
	QR_STATE_PENDING,	/* not tried yet */
	QR_STATE_DEFERRED,	/* tried, a delivery failed temporarily */
	QR_STATE_HELD,		/* QR_HELD: not tried until released */
	QR_STATE_DONE,		/* nothing pending; about to be removed */
};

/* qr_state - classify rec (held wins; any retried delivery: deferred) */
static inline enum qr_state
qr_state(const struct queue_record *rec)
{
	int pending = 0, tried = 0;
	size_t i;

	if (rec->flags & QR_HELD)
		return (QR_STATE_HELD);
	for (i = 0; i < rec->ndlv; i++)
		if (rec->dlv[i].state == DLV_PENDING) {
			pending = 1;
			if (rec->dlv[i].attempts > 0)
				tried = 1;
		}
	if (!pending)
		return (QR_STATE_DONE);
	return (tried ? QR_STATE_DEFERRED : QR_STATE_PENDING);
}

static inline const char *
qr_state_name(enum qr_state st)
{
	static const char *const names[] = {
		"pending", "deferred", "held", "done"
	};

	return ((unsigned)st < 4 ? names[st] : "?");
}

#endif
