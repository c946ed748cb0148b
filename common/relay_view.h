/*
 * relay_view.h - what the relay's LMDB records say about one recipient
 * domain: the evidence the cutover verdict (syncd/cutover.c) and
 * `ferryctl status` need from the relay, read straight from the shared
 * store, so it works while the relay is stopped.
 *
 * Sources: the per-domain inbound record the relay updates in every
 * spool commit (last inbound time, the client it came from, hourly
 * arrival counts), and the queue database (every recipient of the
 * domain not yet delivered, by state).
 *
 * A domain is compared case-insensitively and exactly: "example.com"
 * does not cover "sub.example.com".
 */
#ifndef FERRY_RELAY_VIEW_H
#define FERRY_RELAY_VIEW_H

#include <stdint.h>
#include <time.h>

#include "store.h"

#define RELAY_VIEW_CLIENT_MAX	128

struct relay_domain_view {
	time_t		 last_inbound;	/* last 250 for a recipient of the
					   domain; 0: never */
	char		 last_client[RELAY_VIEW_CLIENT_MAX];
					/* "helo-name [addr]" of that message */
	uint64_t	 arrivals_1h;	/* accepted in the last hour */
	uint64_t	 arrivals_24h;	/* ... the last 24 hours */
	uint64_t	 queued;	/* recipients waiting for a first try */
	uint64_t	 deferred;	/* recipients waiting for a retry */
	uint64_t	 held;		/* recipients on hold */
	time_t		 oldest;	/* arrival of the oldest of those three
					   kinds, 0: none */
};

/*
 * relay_view_domain - fill *v for domain at time now (for the hourly
 * counts).  Returns 0 (a domain the relay never saw is all zeroes), or
 * -1 with err when the store cannot be read.
 */
int	relay_view_domain(struct store *st, const char *domain, time_t now,
	    struct relay_domain_view *v, char *err, size_t errlen);

/*
 * The writer's side (ferry-relay, inside its spool commit transaction):
 * relay_view_note() counts one message accepted at when for a recipient
 * of domain from client ("helo [addr]", cut to RELAY_VIEW_CLIENT_MAX - 1
 * bytes) in the domain's inbound record.  0, or -1 (a store error, or a
 * domain that cannot be a key).  May run more than once per transaction
 * attempt like any store_txn_fn body: it only reads and writes the store.
 */
struct store_txn;
int	relay_view_note(struct store_txn *tx, const char *domain, time_t when,
	    const char *client);

/* The inbound record's STORE_DB_META key: RELAY_VIEW_KEY_PREFIX + domain
 * in lower case. */
#define RELAY_VIEW_KEY_PREFIX	"inbound:"
#define RELAY_VIEW_HOURS	24	/* the hourly ring */

#endif
