/*
 * sync.h - the ferry-syncd pass engine: one pass
 * over every account, a full copy for folders without state and a
 * delta for folders with state, with exactly-once APPENDs through the
 * intent records of state.h, and a report (report.h) filled as it goes.
 *
 * Concurrency.  A pass runs [syncd] parallel accounts at once; each
 * account runs on its own thread with its own libevent loop and one
 * source and one destination connection, and copies further folders in
 * parallel on extra threads, each with its own connection pair, while
 * the per-server connection limit allows.  Threads share nothing but
 * the store (LMDB, thread-safe), the progress counters (a mutex) and
 * the rate limiter (a mutex); every report row is written by exactly
 * one thread.  sync_pass_run() blocks the calling thread until the
 * pass is over and calls tick() on it about once a second meanwhile
 * (progress output).
 *
 * Ownership: the options and everything they point to are borrowed for
 * the duration of sync_pass_run(); the report and the progress belong
 * to the caller.
 */
#ifndef FERRY_SYNC_H
#define FERRY_SYNC_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "accounts.h"
#include "config.h"
#include "folders.h"
#include "report.h"
#include "store.h"

struct sync_keep;
struct sync_reverse;

struct sync_pass_opts {
	const struct config *cfg;
	struct store	*store;		/* NULL: no state (dry run only) */
	const struct accounts *accounts;
	const char	*only_account;	/* --account, or NULL */
	unsigned	 only_wave;	/* --wave N, or 0: every account */
	int		 dry_run;
	SSL_CTX		*src_ctx;	/* NULL when the URL is plain */
	SSL_CTX		*dst_ctx;
	const struct folder_rules *rules;
	volatile sig_atomic_t *stop;	/* set: finish the batch, stop */
	struct sync_keep *keep;		/* daemon: connections kept between
					   passes (sync_keep_new); NULL:
					   log out after each pass */
	void		(*tick)(void *arg);
	void		*tick_arg;
	/* An account whose destination is live (its cutover domain is past
	 * synced): the pass copies what is new but never deletes there and
	 * never changes the flags of messages already there.  Asked once
	 * per account when the pass starts; NULL: never live. */
	int		(*dest_live)(void *arg, const struct account *a);
	void		*dest_live_arg;
	/* A reverse pass (sync_reverse.h): set by reverse_pass_run, which
	 * swaps the sides; NULL: the forward pass. */
	const struct sync_reverse *reverse;
	/* Which accounts the pass takes besides only_account/only_wave
	 * (the daemon leaves out those in rollback); NULL: all. */
	int		(*selects)(void *arg, const struct account *a);
	void		*selects_arg;
};

enum sync_acct_state {
	SYNC_ACCT_WAITING = 0,
	SYNC_ACCT_RUNNING,
	SYNC_ACCT_DONE,
	SYNC_ACCT_FAILED,
};

struct sync_acct_progress {
	const char	*user;		/* borrowed from the accounts list */
	enum sync_acct_state state;
	uint64_t	 folders_done, folders_total;
	uint64_t	 copied, failed;
	char		 error[256];	/* "" = none */
	/* the account's share of the pass's counters below, for a rate
	 * and an ETA per account: unix times, 0 = not yet */
	uint64_t	 messages_total, messages_done, bytes;
	int64_t		 started, finished;
};

/* Live counters of a pass; read them under mu. */
struct sync_progress {
	pthread_mutex_t	 mu;
	int		 full;		/* some folder had no state */
	uint64_t	 accounts_total, accounts_done;
	uint64_t	 folders_total, folders_done;
	uint64_t	 messages_total, messages_done;
	uint64_t	 copied, duplicates, policy, failed, bytes;
	uint64_t	 dst_skipped;	/* accounts whose destination was
					   left unchecked (sync_skip.c) */
	struct sync_acct_progress *acc;
	size_t		 nacc;
};

/*
 * sync_pass_run - one pass; fills r (one account row per account, in
 * the accounts file's order) and p (initialised here; free it with
 * sync_progress_free).  Returns 0 when the pass ran (whatever it found:
 * see report_missing), -1 with err when it could not start (no account
 * matches --account, no memory, no thread).
 */
/*
 * sync_pass_selects - whether account i of o->accounts is in the pass
 * (all, or the --account one); sync_pass_count - how many are: at least
 * one, or 0 with err naming what was asked for and the accounts file.
 */
int	sync_pass_selects(const struct sync_pass_opts *o, size_t i);
size_t	sync_pass_count(const struct sync_pass_opts *o, char *err,
	    size_t errlen);
int	sync_pass_run(const struct sync_pass_opts *o, struct report *r,
	    struct sync_progress *p, char *err, size_t errlen);
void	sync_progress_free(struct sync_progress *p);

/* connections kept between passes, at most cap pairs ([syncd]
 * keep_connections); sync_keep_free logs them out */
struct sync_keep *sync_keep_new(size_t cap);
void	sync_keep_free(struct sync_keep **kp);

#endif
