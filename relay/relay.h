/*
 * relay.h - ferry-relay's daemon context (struct relay) and its
 * counters (struct relay_stats).  The modules and their headers:
 *
 *   smtp_server.h  sessions, ESMTP, DATA streaming         (receiving)
 *   spool.h        spool files + group-committed LMDB index (durability)
 *   (common/queue_record.c: the LMDB "queue" record codec, read by
 *    ferryctl and ferry-syncd too)
 *   queue.h        scheduler: what to send when, backoff   (delivery)
 *   smtp_client.h  outbound SMTP, STARTTLS, reuse          (delivery)
 *   bounce.h       RFC 3464 DSNs                           (delivery)
 *   control.h      GET /metrics, GET /status, control socket (admin)
 *   drain.h        what still reaches the old MX            (admin)
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

struct control;
struct drain;
struct queue;
struct smtp_server;
struct spool;
struct relay_routes;

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
	REJ_POLICY,		/* SPF reject-fail and other policy */
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
	uint64_t	duplicates;	/* answered 250, not forwarded (dedupe) */
	uint64_t	forwarded;	/* deliveries accepted upstream */
	uint64_t	copied;		/* deliveries accepted by copy_to */
	uint64_t	deferred;	/* delivery attempts that got 4xx/failed */
	uint64_t	bounced;	/* deliveries bounced (5xx or expired) */
	uint64_t	dsn_sent;	/* DSN messages generated */
	uint64_t	latency_count;
	double		latency_sum;
	uint64_t	latency_bucket[LATENCY_NBUCKETS]; /* cumulative: le */
	time_t		last_inbound;	/* last message accepted */
	/* deliveries in flight at an unclean stop, sent again without
	 * knowing whether the new mailbox had them (inflight.h) */
	uint64_t	crash_duplicates;
};

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
	/* Per-recipient routing by wave and rollback (route.h); NULL:
	 * the ordinary routes for every recipient. */
	struct relay_routes	*routes;
};

#endif
