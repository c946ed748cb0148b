/*
 * cutover_p.h - the inside of syncd/cutover.c, for its unit tests
 * (tests/unit/test_cutover.c) only: the daemon uses cutover.h.
 *
 * A struct cutover made with base == NULL runs no watcher (no resolver,
 * no timer); tests then feed answers with cutover_note_answer() and move
 * the clock themselves: every function here takes now.
 */
#ifndef FERRY_CUTOVER_P_H
#define FERRY_CUTOVER_P_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cutover.h"
#include "cutover_state.h"

/*
 * cutover_account_domain - the [cutover] domain an account belongs to:
 * the domain of dst_user when it is one, else that of src_user when it
 * is one, else the only domain when exactly one is configured; -1: none
 * (the account takes no part in the cutover).
 */
int	cutover_account_domain(const struct config *cfg,
	    const struct account *a);

/*
 * cutover_note_answer - resolver res answered for domain dom at now:
 * status is an enum dns_status; hosts (by preference) and ttl count only
 * for DNS_OK; why is the resolver's reason otherwise.  Records it,
 * requests the catch-up pass on the first `new`, re-evaluates the phase
 * and persists.  0, or -1 when the record could not be written (logged).
 */
int	cutover_note_answer(struct cutover *c, size_t dom, size_t res,
	    int status, const char *const *hosts, size_t nhosts,
	    uint32_t ttl, const char *why, time_t now);

/* cutover_evaluate - the phase the evidence asks for at now, entered
 * (and persisted) if it differs.  0, or -1 (logged). */
int	cutover_evaluate(struct cutover *c, size_t dom, time_t now);

size_t	cutover_nresolvers(const struct cutover *c);

#endif
