/*
 * route.h - ferry-relay's per-recipient routing: which recipients of a
 * message go to the new provider ([forward] upstream, with the copy to
 * [forward] copy_to when dual reception is on) and which go to the old
 * host only ([forward] copy_to).
 *
 * A recipient goes to the old host only when
 *   (a) its account in the accounts file (route_accounts_path():
 *       [relay] accounts, else [syncd] accounts; syncd/accounts.h) has a wave (wave=N) whose
 *       routing record (common/route_state.h) is not `migrated`, or
 *   (b) the cutover record of its domain (STORE_DB_CUTOVER, key = the
 *       domain in lower case) is in phase `rollback`: the MX went back
 *       to the old host, so the new provider gets nothing more.
 * Every other recipient - no account, an account without a wave, a
 * wave that is migrated, one of our SRS addresses - keeps the ordinary
 * routes.  A recipient is an account's when it equals its source or
 * destination user, ASCII case-insensitively, or, for a user without
 * '@', when its local part does.
 *
 * The decision is made once per message when DATA starts, from one
 * read transaction, so `ferryctl wave N migrate` applies to the next
 * message without a restart, and it is kept in the message's envelope
 * (its deliveries): what was accepted for the old host stays so after
 * a restart or --rebuild-index.  A recipient for the old host only has
 * no upstream delivery, so no ledger entry: ferry-syncd copies the old
 * host's copy into the new mailbox when the wave migrates.
 *
 * Waves need [forward] copy_to: relay_routes_load() refuses an accounts
 * file with waves without it.  A domain in rollback without copy_to is
 * forwarded as before (there is nowhere else to deliver), with a
 * warning.
 *
 * Ownership: struct relay_routes owns its accounts list and its
 * look-up table; relay_routes_free() releases them.  Loop thread only
 * (relay_routes_decide() reuses one cutover record buffer).
 */
#ifndef FERRY_RELAY_ROUTE_H
#define FERRY_RELAY_ROUTE_H

#include <stddef.h>

#include "config.h"
#include "store.h"

struct accounts;
struct relay_routes;

/* Why a recipient goes where it goes (relay_routes_decide()). */
struct route_choice {
	int		 local;		/* 1: to copy_to only */
	unsigned	 wave;		/* its wave, 0: none */
	int		 rollback;	/* its domain is in rollback */
};

/*
 * relay_routes_load - read the accounts file (users and waves only, no
 * secrets) and check it against the configuration.  *rt_r is always
 * set on success (also without an accounts file: rollback routing
 * needs none).  -1 with err "file:line: why" on a bad file, or on waves
 * without [forward] copy_to.
 */
int	relay_routes_load(const struct config *cfg, struct relay_routes **rt_r,
	    char *err, size_t errlen);
void	relay_routes_free(struct relay_routes **rtp);

/* The accounts routed by (NULL: none); borrowed from rt. */
const struct accounts *relay_routes_accounts(const struct relay_routes *rt);

/* Accounts in wave (0 for a wave no account is in; rt may be NULL). */
size_t	relay_routes_wave_count(const struct relay_routes *rt, unsigned wave);

/* "1, 2, 5": the waves with accounts, into buf ("none" without). */
const char *relay_routes_wave_list(const struct relay_routes *rt, char *buf,
	    size_t len);

/* The wave of rcpt's account, 0 when none (rt may be NULL). */
unsigned relay_routes_wave(const struct relay_routes *rt, const char *rcpt);

/*
 * relay_routes_decide - where each of rcpts[0..n) goes, from one read
 * transaction on st: choice[i].  skip (NULL: none) marks recipients
 * that keep their own route whatever the rules (our SRS addresses:
 * bounces to reverse).  0, or -1 with err (a store error or an
 * unreadable record: the caller refuses the message with a 4xx rather
 * than guess).
 */
int	relay_routes_decide(struct relay_routes *rt, struct store *st,
	    const unsigned char *skip, char *const *rcpts, size_t n,
	    struct route_choice *choice, char *err, size_t errlen);

#endif
