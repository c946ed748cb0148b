/*
 * relay.h - ferry-relay's modules and the seams between them.
 *
 *   smtp_server.c  sessions, ESMTP, DATA streaming         (receiving)
 *   spool.c        spool files + group-committed LMDB index (durability)
 *   queue_record.c the LMDB "queue" record codec            (on-disk format)
 *   queue.c        scheduler: what to send when, backoff   (delivery)
 *   smtp_client.c  outbound SMTP, STARTTLS, reuse          (delivery)
 *   bounce.c       RFC 3464 DSNs                           (delivery)
 *   control.c      GET /metrics, GET /status, control socket (admin)
 *   main.c         daemon: config, privileges, signals, start-up order
 *
 * One process, one libevent loop; everything here runs on that loop's
 * thread unless a function says otherwise.  Data flow:
 *   smtp_server --spool_msg_*--> spool --(250 sent)--> queue_enqueued()
 *   queue --smtp_client--> upstream / copy_to; 5xx or expiry -> bounce
 *   control/ferryctl --queue_retry()/hold()/release()/delete()--> queue
 */
#ifndef FERRY_RELAY_H
#define FERRY_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "store.h"

struct dns_resolver;
struct spf_checker;
struct dkimv_lib;
struct srs;

struct relay;		/* the daemon context, at the end of this file */

/* "%016" PRIx64-style: 16 lower-case hex digits; sorts by arrival. */
#define QUEUE_ID_LEN	16

/* ---- counters (relay_stats) ------------------------------------------ */

enum reject_reason {
	REJ_RELAY_DENIED,	/* 550 5.7.1 recipient domain not ours */
	REJ_UNKNOWN_USER,	/* 550 5.1.1 not in the recipient list */
	REJ_SIZE,		/* 552 5.3.4 */
	REJ_TOO_MANY_RCPTS,	/* 452 4.5.3 */
	REJ_SYNTAX,		/* 500/501 */
	REJ_BARE_LF,		/* bare CR or LF in DATA */
	REJ_CONN_LIMIT,		/* 421 4.7.0 too many connections */
	REJ_TEMPFAIL,		/* 451 4.3.0 spool or store failure */
	REJ_POLICY,		/* SPF reject-fail and other policy (issue 4) */
	REJ_NREASONS
};

/* Upstream latency histogram bucket upper bounds, seconds. */
#define LATENCY_BUCKETS	{ 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
#define LATENCY_NBUCKETS 11

/* Counters since start; owned by struct relay, written on the loop only. */
struct relay_stats {
	uint64_t	connections;
	uint64_t	accepted;	/* messages answered 250 */
	uint64_t	rejected[REJ_NREASONS];
	uint64_t	duplicates;	/* answered 250, not forwarded (issue 4) */
	uint64_t	forwarded;	/* deliveries accepted upstream */
	uint64_t	copied;		/* deliveries accepted by copy_to */
	uint64_t	deferred;	/* delivery attempts that got 4xx/failed */
	uint64_t	bounced;	/* deliveries bounced (5xx or expired) */
	uint64_t	dsn_sent;	/* DSN messages generated */
	uint64_t	latency_count;
	double		latency_sum;
	uint64_t	latency_bucket[LATENCY_NBUCKETS]; /* cumulative: le */
	time_t		last_inbound;	/* last message accepted */
};

/* ---- the LMDB "queue" record (queue_record.c) -------------------------- */

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
	/* Issue 4: header fields prepended when the message is forwarded
	 * (our Authentication-Results), CRLF-terminated; owned, may be NULL.
	 * Known only at the end of DATA, after the spool file is written,
	 * hence kept in the record and not in the file: a queue rebuilt
	 * from the files alone forwards without it. */
	char		*headers;
	/* Issue 4: the relay key (DESIGN.md §4), put into STORE_DB_DEDUPE
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

/* ---- the spool (spool.c) ---------------------------------------------- */

/* Under [global] state_dir; ferryctl reads both without the daemon. */
#define RELAY_DB_DIR		"db"		/* the LMDB environment */
#define RELAY_SPOOL_QUEUE_DIR	"spool/queue"	/* spool files by id */

struct spool;
struct spool_msg;

/* Called on the loop once the message is durable (status 0) or failed
 * (-1, with a reason for the log; nothing of it is left on disk), or
 * (1) found to be a duplicate: its relay key was already in
 * STORE_DB_DEDUPE, why is the first copy's queue id ("?" if unknown), and
 * nothing of it is left on disk. */
typedef void spool_commit_cb(int status, const char *id, const char *why,
    void *arg);

int	spool_open(struct spool **spool_r, struct relay *relay, char *err,
	    size_t errlen);
void	spool_close(struct spool **spool);
struct spool_msg *spool_msg_new(struct spool *spool, char *err, size_t errlen);
const char *spool_msg_id(const struct spool_msg *msg);
/* Optional, before the first spool_msg_write(): write the envelope header
 * (sender, client, flags, deliveries of rec; rec->id is ignored) now, so
 * the body streams straight after it.  Without it, spool_msg_commit()
 * rewrites the file with the header in front (fine for small messages
 * such as DSNs).  spool_msg_commit() fills rec->id and rec->size, encodes
 * rec at once (the caller keeps ownership) and always reports through cb
 * later on the loop, never from inside the call. */
int	spool_msg_envelope(struct spool_msg *msg, const struct queue_record *rec);
int	spool_msg_write(struct spool_msg *msg, const void *data, size_t len);
int	spool_msg_commit(struct spool_msg **msg, struct queue_record *rec,
	    spool_commit_cb *cb, void *arg);
void	spool_msg_abort(struct spool_msg **msg);
int	spool_msg_open(struct spool *spool, const char *id, int *fd_r,
	    uint64_t *offset_r, uint64_t *size_r);
int	spool_remove(struct spool *spool, const char *id);
int	spool_rebuild_index(struct spool *spool, size_t *count_r, char *err,
	    size_t errlen);
/* 1: key is a live dedupe key (first_id: the queued copy, "?" if
 * unknown); 0: not there; -1: store error. */
int	spool_dedupe_lookup(struct spool *spool, const unsigned char key[32],
	    char first_id[QUEUE_ID_LEN + 1], char *err, size_t errlen);

/* ---- the scheduler (queue.c) ------------------------------------------ */

struct queue;

int	queue_new(struct queue **queue_r, struct relay *relay, char *err,
	    size_t errlen);
void	queue_free(struct queue **queue);
void	queue_enqueued(struct queue *queue, const char *id);
/* The control socket's commands (control.c); id is 16 hex digits,
 * validated by the caller.  queue_retry() with id NULL retries every
 * message that is not held ("ferryctl retry all").  An unknown id is
 * -1 with err "unknown id". */
int	queue_retry(struct queue *queue, const char *id, char *err, size_t errlen);
int	queue_hold(struct queue *queue, const char *id, char *err, size_t errlen);
int	queue_release(struct queue *queue, const char *id, char *err, size_t errlen);
int	queue_delete(struct queue *queue, const char *id, char *err, size_t errlen);
void	queue_shutdown(struct queue *queue, void (*done)(void *), void *arg);
/*
 * srs_rcpt_check (queue.c) - for smtp_server at RCPT TO: is rcpt one of
 * our SRS addresses ("SRS0=...@" [forward] srs_domain), i.e. a bounce
 * of mail we forwarded with a rewritten sender?
 *   0  no (or SRS is off): apply the normal recipient rules
 *   1  yes, authentic and not expired: accept it (whatever [relay]
 *      domains say); the queue delivers it to the original sender,
 *      copied into orig (may be NULL) for the log
 *  -1  yes, but tampered, expired or malformed: refuse 550 5.1.1
 * The queue routes exactly the recipients for which this says 1.
 */
int	srs_rcpt_check(const struct relay *relay, const char *rcpt,
	    char *orig, size_t origlen);
/*
 * queue_ledger_tracked (queue.c) - the ledger (common/ledger.h) follows
 * delivery d of rec: it has a ledger key and goes to the upstream route
 * (not a DSN of ours, not one of our SRS addresses: those go back to an
 * original sender, never into a new mailbox).  Safe on any thread.
 * queue_ledger_expiry: when an entry of that status written at now
 * expires (0: never): [dedupe] ttl, for a pending one at least the
 * queue lifetime, so it cannot vanish while the relay still holds the
 * message (a held one may outlive it: then a pass may copy it).
 */
int	queue_ledger_tracked(const struct relay *relay,
	    const struct queue_record *rec, const struct delivery *d);
time_t	queue_ledger_expiry(const struct config *cfg, int64_t now,
	    int status);

/* ---- the SMTP server (smtp_server.c) ----------------------------------- */

struct smtp_server;

int	smtp_server_new(struct smtp_server **server_r, struct relay *relay,
	    char *err, size_t errlen);	/* binds: call before dropping root */
int	smtp_server_start(struct smtp_server *server, char *err, size_t errlen);
void	smtp_server_shutdown(struct smtp_server *server, void (*done)(void *),
	    void *arg);		/* stop accepting; finish transactions */
void	smtp_server_free(struct smtp_server **server);
size_t	smtp_server_sessions(const struct smtp_server *server);
/* SIGHUP: re-read the [relay] recipients file; the old list stays on error. */
int	smtp_server_reload(struct smtp_server *server, char *err, size_t errlen);

/* ---- control: HTTP and the ferryctl socket (control.c) ----------------- */

struct control;

int	control_new(struct control **control_r, struct relay *relay,
	    char *err, size_t errlen);
void	control_free(struct control **control);

/* ---- the drain view (drain.c) ----------------------------------------- */

/*
 * What still reaches the old MX: time of the last inbound message,
 * arrivals per hour over the last 72 hours, and the top sending domains
 * and client addresses (bounded tables).  Persisted in STORE_DB_META so a
 * restart keeps the history.
 */
struct drain;

#define DRAIN_HOURS	72	/* the hourly ring: 3 days */
#define DRAIN_TOP_MAX	256	/* entries per table (domains, clients) */
#define DRAIN_TOP_SHOWN	10	/* entries drain_json() lists per table */
#define DRAIN_NAME_MAX	255	/* longest name kept */

int	drain_new(struct drain **drain_r, struct store *store, char *err,
	    size_t errlen);
void	drain_free(struct drain **drain);
void	drain_note(struct drain *drain, time_t when, const char *sender_domain,
	    const char *client_addr);
int	drain_save(struct drain *drain, char *err, size_t errlen);
struct json;
/* The JSON object's shape is documented at the top of drain.c. */
void	drain_json(const struct drain *drain, time_t now, struct json *j);
/* Arrivals per hour, the DRAIN_HOURS hours up to now, oldest first. */
void	drain_hourly(const struct drain *drain, time_t now,
	    uint64_t out[DRAIN_HOURS]);
time_t	drain_last(const struct drain *drain);	/* 0: nothing yet */

/* ---- the daemon -------------------------------------------------------- */

/* The relay's context: one per process, owned by main.c. */
struct relay {
	struct config		*cfg;
	struct event_base	*base;
	struct store		*store;
	struct spool		*spool;
	struct queue		*queue;
	struct smtp_server	*server;
	struct control		*control;
	struct relay_stats	 stats;
	time_t			 started;
	/* Issue 4: one resolver for every look-up ([checks] dns), the SPF
	 * worker pool, the DKIM library, SRS (NULL when off) and the drain
	 * view's counters; created by main.c, shared by all modules. */
	struct dns_resolver	*resolver;
	struct spf_checker	*spf;
	struct dkimv_lib	*dkim;
	struct srs		*srs;
	struct drain		*drain;
};

#endif
