/*
 * sync_reverse.h - the reverse pass of ferry-syncd: mail that reached
 * the destination (the new host) on its own is copied back to the
 * source (the old host), so switching the MX back loses nothing.
 *
 * It is the forward engine (sync.h) run with the two sides swapped: the
 * new host is read (EXAMINE, BODY.PEEK only), the old host written to
 * (APPEND, and CREATE for a folder only the new host has: never a
 * deletion, never a flag change of a message already there), folder by
 * folder through the forward folder plan inverted.  A message of the
 * new host is NOT copied back when
 *   - ferry-syncd copied it there (the forward sync map has its UID),
 *   - the relay delivered it there (the ledger, as the forward pass
 *     looks it up, sync_ledger.c),
 *   - it is on the old host already (content key, as a full copy
 *     matches), or the reverse pass copied it before (its own state,
 *     kept under the account name "#reverse:" + the new host's user, a
 *     name no accounts file line can produce),
 *   - its INTERNALDATE is before the account's "since".
 * Messages passed over for their date are not recorded as done, so a
 * later pass with an earlier "since" still finds them.  The forward
 * pass in turn never copies the reverse pass's copies forward again.
 *
 * Ownership: everything is borrowed for the duration of the call.
 */
#ifndef FERRY_SYNC_REVERSE_H
#define FERRY_SYNC_REVERSE_H

#include <stdint.h>

#include "accounts.h"
#include "report.h"
#include "sync.h"

/* the prefix of the reverse pass's state account names */
#define REVERSE_STATE_PREFIX	"#reverse:"

struct sync_reverse {
	/*
	 * The accounts to copy back, and from when: the INTERNALDATE (unix
	 * time) a message must have at least, 0 for every message, -1 to
	 * leave the account out.  NULL: every account (or only_account),
	 * since below.
	 */
	int64_t		(*since_fn)(void *arg, const struct account *a);
	void		*since_arg;
	int64_t		 since;
	/* private to sync_reverse.c: set in the copy it runs with */
	const struct accounts *swapped;
	const int64_t	*since_v;	/* per swapped account */
};

/*
 * reverse_pass_run - one reverse pass with o's configuration (o->reverse
 * must be set; o->only_account names the source user of the accounts
 * file as for a forward pass).  The report's rows name the new host's
 * user first.  0 when the pass ran, -1 with err (no account, an archive
 * as source, no memory).
 */
int	reverse_pass_run(const struct sync_pass_opts *o, struct report *r,
	    struct sync_progress *p, char *err, size_t errlen);

/*
 * reverse_parse_since - "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM[:SS][Z]" (a
 * space for the T too), UTC, into unix time; -1 with err otherwise.
 */
int	reverse_parse_since(const char *s, int64_t *out, char *err,
	    size_t errlen);

#endif
