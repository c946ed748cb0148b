/*
 * route_state.h - the staged-wave routing table in LMDB: for each wave
 * of the accounts file (syncd/accounts.h, the wave=N column), whether
 * its mail still goes to the old host (pending) or is forwarded to the
 * new provider (migrated).  ferry-relay writes it (`ferryctl wave N
 * migrate|pending` through its control socket) and routes every
 * recipient by it; ferryctl shows it, and ferry-syncd takes a migrated
 * wave's destination to be live (syncd/sync.c).
 *
 * ON-DISK FORMAT (stable).  Database STORE_DB_META, key
 * "route.wave.N" (N decimal, 1..ROUTE_WAVE_MAX, no leading zero),
 * value:
 *	u8	version (ROUTE_STATE_VERSION, 1)
 *	u8	state: 0 pending, 1 migrated
 *	be64	since: when the state was set, seconds since the epoch
 *	be16	length, then that many bytes: why (who set it and how,
 *		printable ASCII, at most ROUTE_WHY_MAX bytes)
 * and nothing after it: route_wave_decode() refuses anything else
 * (other version, unknown state, since before the epoch, control
 * characters in why, trailing bytes).  A wave without a record is
 * pending, since 0: waves move to the new host only when the admin says
 * so.
 *
 * Ownership: struct route_wave is plain data.  Nothing here logs or
 * keeps global state; the only I/O is through the store.
 */
#ifndef FERRY_ROUTE_STATE_H
#define FERRY_ROUTE_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define ROUTE_STATE_VERSION	1
#define ROUTE_WAVE_MAX		999	/* = ACCOUNTS_WAVE_MAX */
#define ROUTE_WHY_MAX		200
#define ROUTE_WAVE_KEY_PREFIX	"route.wave."
#define ROUTE_WAVE_KEY_MAX	(sizeof(ROUTE_WAVE_KEY_PREFIX) + 3)

enum route_wave_state {
	ROUTE_WAVE_PENDING = 0,		/* to the old host ([forward] copy_to) */
	ROUTE_WAVE_MIGRATED = 1,	/* forwarded to the new provider */
};

struct route_wave {
	unsigned		wave;		/* 1..ROUTE_WAVE_MAX */
	enum route_wave_state	state;
	int64_t			since;		/* 0: never set */
	char			why[ROUTE_WHY_MAX + 1];
};

/* "pending" / "migrated" */
const char	*route_wave_state_name(enum route_wave_state st);
/* route_wave_state_parse - a name above into *st_r: 0, or -1 */
int		 route_wave_state_parse(const char *s,
		    enum route_wave_state *st_r);

/* route_wave_parse - a wave number as ferryctl and the control socket
 * take it: plain decimal 1..ROUTE_WAVE_MAX, no sign, no leading zero;
 * 0 for anything else */
unsigned	route_wave_parse(const char *s);

/* route_wave_init - the default of a wave without a record (pending) */
void	route_wave_init(struct route_wave *w, unsigned wave);

/*
 * route_wave_key - "route.wave.N" into buf (at least ROUTE_WAVE_KEY_MAX
 * bytes): its length, or 0 when wave is out of range.
 */
size_t	route_wave_key(unsigned wave, char *buf, size_t len);

/*
 * route_wave_encode - the value of w into buf (at least
 * ROUTE_WAVE_VALUE_MAX bytes): its length, or 0 when w is not valid
 * (state, since < 0, why too long or not printable).
 */
#define ROUTE_WAVE_VALUE_MAX	(1 + 1 + 8 + 2 + ROUTE_WHY_MAX)
size_t	route_wave_encode(const struct route_wave *w, unsigned char *buf,
	    size_t len);

/*
 * route_wave_decode - a value (see above) into *w for wave: 0, or -1
 * with err for anything not exactly a record of this version.
 */
int	route_wave_decode(struct route_wave *w, unsigned wave, const void *buf,
	    size_t len, char *err, size_t errlen);

/*
 * Inside a transaction: route_wave_get() fills *w with the record, or
 * the default when there is none (0 either way; -1 with the reason set
 * on the transaction, store_txn_seterr(), for an unreadable one);
 * route_wave_put() writes w (0, or -1).
 */
int	route_wave_get(struct store_txn *tx, unsigned wave,
	    struct route_wave *w);
int	route_wave_put(struct store_txn *tx, const struct route_wave *w);

/*
 * route_state_read - every wave's state at once, in one read
 * transaction: waves[N] for N 1..ROUTE_WAVE_MAX (waves[0] unused),
 * defaults where there is no record.  st NULL (no store yet): all
 * defaults.  0, or -1 with err.
 */
int	route_state_read(struct store *st,
	    struct route_wave waves[ROUTE_WAVE_MAX + 1], char *err,
	    size_t errlen);

/*
 * route_accounts_path - the accounts file whose wave column the waves
 * are made of: [relay] accounts, else [syncd] accounts, else NULL.
 */
struct config;
const char *route_accounts_path(const struct config *cfg);

/* route_state_write - w in its own write transaction: 0, or -1 with err */
int	route_state_write(struct store *st, const struct route_wave *w,
	    char *err, size_t errlen);

#endif
