/*
 * verify.h - ferry-syncd --verify: prove a migration complete by
 * comparing every source folder with its destination folder, through
 * the folder plan the copy uses (folders.h), message by message.
 *
 * Read-only on both servers: mailboxes are only EXAMINEd, bodies read
 * with BODY.PEEK, nothing is created, stored or expunged.  The only
 * write is one record per verified account in the store's META table,
 *   key "syncd.verify.ACCOUNT" (ACCOUNT lower-cased), value JSON:
 *   {"time":UNIX,"verdict":"complete"|"incomplete","deep":BOOL,
 *    "src_messages":N,"dst_messages":N,"missing":N,"extra":N,
 *    "different":N,"policy":N}
 * for ferryctl and the acceptance report.  An account that could not be
 * verified (server unreachable, login refused) gets no record.
 *
 * Ownership: everything in o is borrowed for the call.
 */
#ifndef FERRY_VERIFY_H
#define FERRY_VERIFY_H

#include <stdio.h>

#include "sync.h"

#define VERIFY_COMPLETE		0	/* exit 0: nothing missing or different */
#define VERIFY_INCOMPLETE	1	/* exit 1: something is, or an account
					   could not be verified */

/*
 * verify_run - verify every account (o->only_account: that one) and
 * print the result to out: text tables, or one JSON document (json).
 * deep: hash every body, not only the ambiguous ones.  store_path: the
 * store the records go to, opened only when the first account has been
 * verified (NULL: no records).  o->store is not used.  Returns
 * VERIFY_COMPLETE, VERIFY_INCOMPLETE, or -1 with err when it could not
 * start (no memory, no such account).
 */
int	verify_run(const struct sync_pass_opts *o, int deep, int json,
	    FILE *out, const char *store_path, char *err, size_t errlen);

#endif
