/*
 * relay.h - ferry-relay's modules and the seams between them.
 *
 *   smtp_server.c  sessions, ESMTP, DATA streaming         (receiving)
 *   spool.c        spool files + group-committed LMDB index (durability)
 *   (common/queue_record.c: the LMDB "queue" record codec, read by
 *    ferryctl and ferry-syncd too)
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
#include "queue_record.h"
#include "store.h"

struct dns_resolver;
struct spf_checker;
struct dkimv_lib;
struct srs;

struct relay;		/* the daemon context, at the end of this file */

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

/* The LMDB "queue" record and its codec: common/queue_record.h. */

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
	/* One resolver for every look-up ([checks] dns), the SPF
	 * worker pool, the DKIM library, SRS (NULL when off) and the drain
	 * view's counters; created by main.c, shared by all modules. */
	struct dns_resolver	*resolver;
	struct spf_checker	*spf;
	struct dkimv_lib	*dkim;
	struct srs		*srs;
	struct drain		*drain;
};

#endif
