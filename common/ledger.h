/*
 * ledger.h - the relay's ledger (STORE_DB_LEDGER): which messages the
 * new mailbox has, or will have, through the relay.  The one place for
 * the value layout; ferry-relay writes it, ferry-syncd's delta pass and
 * the test tools read it (DESIGN.md §4, §9: one module, so a remote
 * look-up is a transport change).
 *
 * Key: the 32-byte ledger key of DESIGN.md §4 (msgkey_ledger(): the
 * recipient mailbox, the normalised Message-ID, or Date + From when
 * there is none, and the body's SHA-256).
 *
 * An entry has a status:
 *   LEDGER_PENDING    the relay has spooled the message for that
 *                     recipient and will forward it to the new
 *                     provider.  Written in the spool commit's LMDB
 *                     transaction, so it exists from the moment the
 *                     sender got 250: a delta pass that finds the old
 *                     host's copy must not copy it (the relay's would
 *                     follow), but must look again on a later pass.
 *   LEDGER_DELIVERED  the new provider answered 250 for that recipient;
 *                     the new mailbox has it for good.
 * When the relay gives up on the recipient (5xx, expiry, ferryctl
 * delete) it removes its pending entry, so a later pass copies the old
 * host's copy instead.
 *
 * VALUE FORMAT (stable; the store adds and strips its own 8-byte expiry
 * header, see store.h):
 *   8   when       unix seconds, unsigned big-endian: delivered: the
 *                  upstream's 250; pending: the arrival at the relay.
 *                  Always the first 8 bytes (state_ledger_oldest()
 *                  relies on it: both are no later than the old host's
 *                  copy plus the queue lifetime).
 *   16  queue id   the relay's queue id, lower-case hex, no NUL
 *   1   status     1 delivered, 2 pending
 * 25 bytes in all.  A 24-byte value (written before the status existed)
 * is a delivered entry; readers ignore bytes after the 25th, for later
 * additions.
 *
 * Every function runs inside the caller's store transaction (store.h):
 * they may be called from any thread that runs one, keep no state and
 * never log.
 */
#ifndef FERRY_LEDGER_H
#define FERRY_LEDGER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "msgid.h"
#include "store.h"

#define LEDGER_ID_LEN		16	/* the relay's QUEUE_ID_LEN */
#define LEDGER_VALUE_LEN	(8 + LEDGER_ID_LEN + 1)
#define LEDGER_VALUE_V0_LEN	(8 + LEDGER_ID_LEN)	/* no status byte */

enum ledger_status {
	LEDGER_NONE = 0,	/* no live entry */
	LEDGER_DELIVERED = 1,
	LEDGER_PENDING = 2,
};

struct ledger_entry {
	int64_t		when;		/* see the value format */
	char		queue_id[LEDGER_ID_LEN + 1];	/* "" if unreadable */
	uint8_t		status;		/* enum ledger_status */
};

/* ledger_encode - e as a value; e->queue_id must be LEDGER_ID_LEN long */
void	ledger_encode(const struct ledger_entry *e,
	    unsigned char v[LEDGER_VALUE_LEN]);
/*
 * ledger_decode - a stored value (expiry header already stripped) into
 * *e.  -1 when it is too short to hold a time or has an unknown status;
 * *e is then zeroed except that a readable time is kept.
 */
int	ledger_decode(const void *val, size_t vlen, struct ledger_entry *e);

/*
 * ledger_put - write e (status LEDGER_PENDING or LEDGER_DELIVERED) under
 * key, expiring at expires_at (0: never).  A pending entry never
 * replaces a live delivered one (the new mailbox has the message
 * already): that is 1, nothing written.  A pending entry of another
 * queue id is replaced (the newest copy is the one still waiting).
 * Returns 0 written, 1 kept, -1 on a store error or a bad e.
 */
int	ledger_put(struct store_txn *tx, const unsigned char key[MSGKEY_LEN],
	    const struct ledger_entry *e, time_t expires_at);

/*
 * ledger_get - the live entry under key: LEDGER_NONE (0),
 * LEDGER_DELIVERED (1) or LEDGER_PENDING (2), or -1 on a store error.
 * e_r (may be NULL) is filled when there is one.  An unreadable value
 * counts as delivered: something wrote it, and a duplicate in the new
 * mailbox is the worse mistake.
 */
int	ledger_get(struct store_txn *tx, const unsigned char key[MSGKEY_LEN],
	    struct ledger_entry *e_r);

/*
 * ledger_del - the relay gives up on a recipient: remove the pending
 * entry under key if queue_id wrote it (queue_id NULL: whoever did).  A
 * delivered entry, or one pending for another queue id, stays.
 * Returns 0 removed, STORE_NOTFOUND nothing to remove, -1 on error.
 */
int	ledger_del(struct store_txn *tx, const unsigned char key[MSGKEY_LEN],
	    const char *queue_id);

#endif
