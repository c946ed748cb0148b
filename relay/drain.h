/*
 * drain.h - the drain view (DESIGN.md §5, "Control"): what still
 * reaches the old MX.  Time of the last inbound message, arrivals per
 * hour over the last 72 hours, and the top sending domains and client
 * addresses (bounded tables).  Persisted in STORE_DB_META so a restart
 * keeps the history; drain.c has the JSON shape and the stored layout.
 *
 * Ownership: struct drain belongs to its creator (struct relay in the
 * daemon, ferryctl when the relay is not running).  Not thread-safe: one
 * thread at a time (the relay's loop).
 */
#ifndef FERRY_DRAIN_H
#define FERRY_DRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct drain;
struct json;
struct store;

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
/* The JSON object's shape is documented at the top of drain.c. */
void	drain_json(const struct drain *drain, time_t now, struct json *j);
/* Arrivals per hour, the DRAIN_HOURS hours up to now, oldest first. */
void	drain_hourly(const struct drain *drain, time_t now,
	    uint64_t out[DRAIN_HOURS]);
time_t	drain_last(const struct drain *drain);	/* 0: nothing yet */

#endif
