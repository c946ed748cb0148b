/*
 * inflight.h - exactly once across an unclean stop of the relay.
 *
 * SMTP has no idempotency: when the relay dies after the upstream
 * answered 250 to the final dot and before the relay committed that
 * answer, the delivery is still pending in LMDB and would be sent
 * again.  The relay can do better than an MTA because it can read the
 * new mailboxes: ferry-syncd's accounts give it IMAP access to them.
 *
 * Recording: before an upstream transaction starts, the queue commits
 * QR_INFLIGHT on the message's record (common/queue_record.h); the
 * commit of the transaction's result clears it.  A clean stop waits for
 * every transaction, so a record found with QR_INFLIGHT at start means
 * the relay stopped uncleanly while that transaction ran.
 *
 * Recovery (inflight_recover(), at start, before the queue loads): for
 * each such record and each of its pending upstream deliveries,
 *   - the recipient is a syncd account (its dst_user or src_user, ASCII
 *     case-insensitive): log in to [syncd] destination as dst_user,
 *     UID SEARCH HEADER Message-ID (Date when there is none) in INBOX
 *     (every folder with [forward] crash_check = all), fetch each match
 *     and compare its ledger key (recipient, Message-ID or Date + From,
 *     SHA-256 of the body after the header block: the headers the relay
 *     and the upstream add do not count) with the delivery's.  Found:
 *     the delivery is marked sent and its ledger entry delivered, and it
 *     is not sent again.  Not found: it is sent again, and that is safe.
 *   - otherwise (no account for the recipient, no ledger key, IMAP
 *     unreachable or refused, [forward] crash_check = off, the time
 *     budget crash_check_timeout spent): it is sent again and counted as
 *     a possible duplicate (relay_stats.crash_duplicates, a log line).
 *
 * The IMAP half (inflight_imap.c) is ferry-syncd's IMAP client, built
 * into ferry-relay; it runs on a private event base so the relay's loop
 * is not running yet, and every step is bounded by the time budget.
 *
 * Loop thread, at start-up only.
 */
#ifndef FERRY_INFLIGHT_H
#define FERRY_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "msgid.h"

struct relay;
struct accounts;

enum inflight_verdict {
	IF_UNCHECKED = 0,
	IF_FOUND,		/* the destination mailbox has it */
	IF_ABSENT,		/* looked, not there: send it */
	IF_UNKNOWN,		/* cannot tell: send it, count it */
};

/* One delivery to look for.  Strings are borrowed from the caller. */
struct inflight_probe {
	const char	*rcpt;		/* the delivery's recipient */
	const char	*msgid;		/* canonical "<...>", or "" */
	const char	*date;		/* raw Date when there is no msgid */
	int		 has_key;
	unsigned char	 ledger_key[MSGKEY_LEN];
	int		 verdict;	/* enum inflight_verdict */
	char		 why[512];	/* where it was found / why unknown */
};

/*
 * inflight_imap_check - fill every probe's verdict (never IF_UNCHECKED
 * on return).  acc may be NULL (no accounts: every probe IF_UNKNOWN).
 * Blocks for at most [forward] crash_check_timeout.  Logs.
 */
void	inflight_imap_check(const struct config *cfg,
	    const struct accounts *acc, struct inflight_probe *p, size_t n);

/*
 * inflight_accounts_load - [syncd] accounts for the check, read before
 * privileges are dropped (the file holds passwords).  *acc_r is NULL
 * when none is configured or it cannot be read (logged: the check then
 * counts every in-flight delivery as a possible duplicate).
 */
void	inflight_accounts_load(const struct config *cfg,
	    struct accounts **acc_r);
void	inflight_accounts_free(struct accounts **accp);

/*
 * inflight_recover - the recovery above, on r->store and r->spool;
 * frees *accp (the secrets are not kept).  Adds the possible duplicates
 * to r->stats.crash_duplicates.  -1 (err) only on a store failure.
 */
int	inflight_recover(struct relay *r, struct accounts **accp, char *err,
	    size_t errlen);

/*
 * inflight_settle - what recovery writes for one record (pure, for the
 * tests): every pending upstream delivery whose probe says IF_FOUND
 * becomes sent with a note in last_reply; QR_INFLIGHT is cleared.
 * verdict[i] belongs to rec->dlv[i] (IF_UNCHECKED for deliveries not
 * looked at).  Returns how many deliveries were counted as possible
 * duplicates (IF_UNKNOWN), or -1 out of memory.
 */
struct queue_record;
int	inflight_settle(struct queue_record *rec, const int *verdict);

/*
 * inflight_wanted - 1 when rec->dlv[i] is a delivery the in-flight
 * transaction may have carried to the new provider: pending, upstream,
 * and not a DSN or SRS route (the queue's upstream slot).
 */
int	inflight_wanted(const struct relay *r, const struct queue_record *rec,
	    size_t i);

#endif
