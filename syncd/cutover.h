/*
 * cutover.h - the cutover of DESIGN.md §6/§8 inside ferry-syncd: the MX
 * watcher, the phases per domain, when catch-up passes run, and the
 * "safe to retire" verdict.  The record kept per domain, the verdict's
 * evaluation and the status rendering live in common/cutover_state.h,
 * because ferryctl and the relay's HTTP listener show them too.
 *
 * The daemon (syncd/main.c) owns the pass schedule; this module tells it
 * when a pass is wanted (request_pass: at once, after the first `new`
 * answer) and how long to wait between passes (cutover_pass_interval:
 * [cutover] catchup_interval from the switch until the domain closes),
 * and is told when a pass starts and what it found.
 *
 * Threading: loop thread only; the pass runs on its own thread, and the
 * daemon calls cutover_pass_started/done from the loop thread.
 */
#ifndef FERRY_CUTOVER_H
#define FERRY_CUTOVER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "accounts.h"
#include "config.h"
#include "relay_view.h"
#include "store.h"

struct event_base;
struct cutover;
struct cutover_record;

/* One account's outcome in one pass, as the verdict needs it. */
struct cutover_acct_result {
	const char	*user;		/* source user, borrowed */
	uint64_t	 copied;	/* messages APPENDed in this pass */
	uint64_t	 missing;	/* on the source, not on the
					   destination after the pass */
	uint64_t	 failed;	/* failures (folders or messages) */
	int		 error;		/* the account could not be synced */
	char		 reason[256];	/* first failure in words, "" */
};

struct cutover_pass_result {
	time_t		 started, finished;
	int		 full;		/* some folder had no state */
	const struct cutover_acct_result *acc;	/* borrowed, nacc rows */
	size_t		 nacc;
};

struct cutover_hooks {
	/* A pass is wanted now (the running one does not count: it may
	 * have started before the evidence); why goes to the log. */
	void	(*request_pass)(void *arg, const char *why);
	/* The relay's evidence for a domain; NULL: relay_view_domain()
	 * on the store (tests put their own here). */
	int	(*relay_view)(void *arg, const char *domain, time_t now,
		    struct relay_domain_view *v, char *err, size_t errlen);
	void	*arg;
};

/*
 * cutover_new - NULL in *cp (and 0) when [cutover] domains is empty.
 * Loads the persisted phases, maps every account to its domain (the
 * domain of dst_user, else of src_user, else the only [cutover] domain)
 * and starts the watcher: the first MX check at once, then one every
 * [cutover] check_interval.  -1 with err on a bad set-up (a resolver that
 * cannot be created, more than CUTOVER_RESOLVERS_MAX resolvers, no
 * memory).  base NULL: no watcher (no resolver, no timer) - the unit
 * tests feed answers through cutover_p.h.  st, cfg and acc are borrowed
 * and must outlive the struct; *h is copied.  Records are saved to st
 * after every change, so the store must be writable.
 */
int	cutover_new(struct cutover **cp, struct event_base *base,
	    struct store *st, const struct config *cfg,
	    const struct accounts *acc, const struct cutover_hooks *h,
	    char *err, size_t errlen);
void	cutover_free(struct cutover **cp);

/* Seconds from the end of a pass to the next one: catchup_interval while
 * any domain is switching or in dual reception (or has seen a `new`
 * answer and is not closed, e.g. still in presync), else interval; never
 * more than interval.  c NULL: interval. */
int64_t	cutover_pass_interval(const struct cutover *c, int64_t interval);

/* The account's domain is past `synced` (or a resolver has answered
 * `new` for it): users work on the destination now, so a pass never
 * deletes there and never changes flags of messages already there.
 * 0 for c NULL or an account in no [cutover] domain. */
int	cutover_dest_live(const struct cutover *c, const struct account *a);

/* The account's domain is in the rollback phase: the daemon runs
 * reverse passes for it, not forward ones.  0 for c NULL. */
int	cutover_in_rollback(const struct cutover *c, const struct account *a);

/* From when a reverse pass copies the account's mail back: when its
 * domain first saw the switch (the cutover record's switch_seen_at, read
 * from st on any thread) less [cutover] check_interval and
 * CUTOVER_SWITCH_MARGIN, since senders whose resolvers saw the new MX
 * first delivered there before the watcher noticed; 0: never, no record,
 * no [cutover] domain for it, or the record cannot be read (logged). */
#define CUTOVER_SWITCH_MARGIN	3600	/* seconds: DNS caches */
int64_t	cutover_switch_time(struct store *st, const struct config *cfg,
	    const struct account *a);

/* A pass began (every domain: "a pass is running since"); saved. */
void	cutover_pass_started(struct cutover *c, time_t started);
/* A pass ended: per-domain evidence from r (rows matched to accounts by
 * source user through accounts_find(); a domain none of whose accounts
 * is in r, e.g. --account, keeps its evidence), the verdict evaluated at
 * r->finished, the phase moved, saved.  Both NULL-safe on c. */
void	cutover_pass_done(struct cutover *c,
	    const struct cutover_pass_result *r);

/* The phases and answers as they stand (the metrics listener, loop
 * thread): domain dom's record, owned by c, valid until the next call
 * into c; NULL past the last domain or for c NULL. */
const struct cutover_record *cutover_domain_record(const struct cutover *c,
	    size_t dom);
size_t	cutover_ndomains(const struct cutover *c);

#endif
