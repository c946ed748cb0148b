/*
 * addr_stats.h - the relay's figures per recipient address, for the
 * acceptance report (`ferryctl report`): messages received for the
 * address, forwarded to it upstream, dropped as duplicates, bounced.
 *
 * ferry-relay is the only writer, inside transactions it runs anyway:
 * received and duplicates in the spool commit (relay/spool_writer.c),
 * forwarded and bounced in the commit of delivery results
 * (relay/queue_work.c).  A transaction body may run more than once;
 * the counts are read and written in the same transaction, so a retry
 * counts once.  ferryctl only reads.
 *
 * Bounded: at most ADDR_STATS_MAX addresses get a record (the count is
 * kept under ADDR_STATS_COUNT_KEY); past that a new address is not
 * recorded and the relay's per-address figures are incomplete, which
 * the count record says (its overflow field).  An address the relay's
 * own DSNs went to is not counted: those are not mail for the account.
 *
 * RECORD (STORE_DB_META, key ADDR_STATS_KEY_PREFIX + the address in
 * ASCII lower case; integers big-endian):
 *   byte 'A', byte version (1), u64 received, u64 forwarded,
 *   u64 duplicates, u64 bounced, i64 last (unix time of the last
 *   change, 0: never); exactly ADDR_STATS_LEN bytes.
 * COUNT RECORD (ADDR_STATS_COUNT_KEY): byte 'N', byte version (1),
 *   u64 addresses, u64 overflow (messages for an address not recorded).
 *
 * Ownership: plain data.  No I/O but the store, no logging, no global
 * state.
 */
#ifndef FERRY_ADDR_STATS_H
#define FERRY_ADDR_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ADDR_STATS_VERSION	1
#define ADDR_STATS_MAX		100000
#define ADDR_STATS_ADDR_MAX	320	/* bytes of an address */
#define ADDR_STATS_KEY_PREFIX	"addr:"
#define ADDR_STATS_COUNT_KEY	"addr.count"
#define ADDR_STATS_LEN		42

enum addr_stats_kind {
	ADDR_RECEIVED = 0,
	ADDR_FORWARDED,
	ADDR_DUPLICATE,
	ADDR_BOUNCED,
};

struct addr_stats {
	uint64_t	 received, forwarded, duplicates, bounced;
	int64_t		 last;
};

struct store_txn;

/*
 * addr_stats_note - count one kind for addr at when, in tx.  0 (also
 * when the address is not recorded: past the bound, or too long), or
 * -1 on a store error.
 */
int	addr_stats_note(struct store_txn *tx, const char *addr,
	    enum addr_stats_kind kind, time_t when);

/*
 * addr_stats_get - addr's figures into *s: 0, STORE_NOTFOUND (all zero:
 * never seen, or not recorded), or -1 (a store error, or a record that
 * does not decode).
 */
int	addr_stats_get(struct store_txn *tx, const char *addr,
	    struct addr_stats *s);

/* addr_stats_overflow - the count record: addresses recorded, messages
 * not recorded past the bound.  0 or -1. */
int	addr_stats_overflow(struct store_txn *tx, uint64_t *addresses,
	    uint64_t *overflow);

#endif
