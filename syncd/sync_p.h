/*
 * sync_p.h - the pass engine's private interface: the structs its files
 * share (pass, account, worker and its two sides, folder job, folder
 * context, source message lists) and the functions one file offers the
 * others.  Only syncd/sync*.c include it; the public API is sync.h.
 *
 * Layers, each using only those above it in this list:
 *   sync_pace.c    the clock, the stop request, connection slots, the
 *                  rate limiter, the progress counters (pace_, prog_)
 *   sync_side.c    the blocking facade over imap_client: a worker's two
 *                  connections, results copied out of callbacks, a
 *                  command run to its end (side_, wres_, worker_)
 *   sync_scan.c    message metadata: FETCH of UID, FLAGS, INTERNALDATE,
 *                  size and identity headers, flag scans and flag lists,
 *                  destination look-ups by SEARCH (scan_, smsg)
 *   sync_fctx.c    the folder context: map writes, intents, both
 *                  mailboxes selected, a delta's prefetch, content
 *                  matching (fc_)
 *   sync_ledger.c  skipping what the relay delivered (ledger_)
 *   sync_copy.c    FETCH literal -> APPEND literal, batches (copy_)
 *   sync_folder.c  one folder's phases (sync_folder)
 *   sync_acct.c    account set-up: NAMESPACE, LIST, plan, CREATE,
 *                  SUBSCRIBE, jobs (acct_)
 *   sync.c         the pass: account threads, folder workers, the
 *                  connections kept between passes (sync_)
 * A function is named after the file that defines it, or after the
 * struct it works on when that struct is the file's own (smsgv_free).
 *
 * Threads: a worker and everything reached through it belong to one
 * thread; struct pass and struct acct are shared, their mutable fields
 * under the mutexes named beside them.
 */
#ifndef FERRY_SYNC_P_H
#define FERRY_SYNC_P_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "accounts.h"
#include "folders.h"
#include "imap_client.h"
#include "imap_parse.h"
#include "msgid.h"
#include "report.h"
#include "state.h"
#include "sync.h"
#include "util.h"

#define SRC	0
#define DST	1

struct batch;		/* sync_copy.c */
struct frun;		/* sync_folder.c */

#define WIRE_MAX	1024

extern const char *const side_name[2];	/* "src", "dst" */

/* qsort/bsearch that accept an empty (NULL) array: C leaves that
 * undefined, and UBSan says so */
static inline void
sort_n(void *base, size_t n, size_t size, int (*cmp)(const void *,
    const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

static inline void *
find_n(const void *key, const void *base, size_t n, size_t size,
    int (*cmp)(const void *, const void *))
{
	if (n == 0 || base == NULL)
		return (NULL);
	return (bsearch(key, base, n, size, cmp));
}

/*
 * What a streaming FETCH keeps of a message while its body arrives.
 * hdr_capture() appends a BODY.PEEK[HEADER] chunk to a buffer of
 * HDR_MAX bytes (the fields a message's identity is read from; the rest
 * is cut).  struct hash_sink hashes a body chunk by chunk and owns the
 * digest context between hash_sink_begin() and hash_sink_end(), which
 * gives the digest (0) or releases the context when the message was not
 * wanted (out NULL) or hashing failed (-1).
 */
#define HDR_MAX		16384
void	hdr_capture(char *hdr, size_t *hlen, const void *data, size_t len);

struct hash_sink {
	struct body_hash bh;
	int		 open;
};
void	hash_sink_begin(struct hash_sink *hs);
void	hash_sink_data(struct hash_sink *hs, const void *data, size_t len);
int	hash_sink_end(struct hash_sink *hs, unsigned char *out);

/* ---- results, pass, account, worker -------------------------------------- */

/* A command's outcome, copied out of the callback. */
struct wres {
	int		 done;
	enum imap_status status;
	enum imap_errclass cls;
	uint64_t	 backoff_ms;
	char		 code[32];
	char		 text[300];
	uint64_t	 appenduid_validity;
	uint64_t	 appenduid_first;
	char		 appenduid_set[2048];
	int		 appenduid_cut;		/* set did not fit */
	struct imap_mailbox mb;		/* scalars only */
	int		 have_mb;
	struct imap_status_info st;	/* mailbox pointer cleared */
	int		 have_st;
};

struct pass;
struct acct;

struct fjob {
	const struct folder_map *m;
	struct report_folder *rf;
	char		 src_wire[WIRE_MAX];
	char		 dst_wire[WIRE_MAX];
	struct imap_status_info sst, dst;	/* LIST-STATUS / STATUS */
	int		 have_sst, have_dst;
	int		 skip;		/* CREATE failed: reported */
	const char	*special;	/* CREATE ... (USE (flag)) */
	uint64_t	 est_msgs;	/* messages that may be new (0 when
					   the folder is unchanged) */
};

struct side {
	struct imap_client *c;
	int		 state;		/* 0 connecting, 1 ready, -1 closed */
	struct wres	 closed;
	char		 selected[WIRE_MAX];
	int		 selected_rw;
	/* PERMANENTFLAGS of the selected destination mailbox */
	struct strlist	 permflags;
	int		 permflags_known, perm_keywords;
};

struct worker {
	struct acct	*a;
	struct event_base *base;
	struct event	*tick;		/* 1 s: notices a stop request */
	double		 stop_seen;
	struct side	 s[2];
	int		 holds_slot;
	int		 kept;		/* counted in the keep's "held" */
	/* the folder before this one, whose last check is still in flight
	 * on the destination: settled (sync_folder_settle) once the next
	 * folder's EXAMINE and SELECT are out, or after the last folder */
	struct frun	*deferred;	/* owned */
};

struct acct {
	struct pass	*p;
	const struct account *acc;
	struct report_account *ra;
	size_t		 idx;
	char		 lc_user[ACCOUNTS_USER_MAX + 1];
	struct folder_plan *plan;
	struct fjob	*jobs;
	size_t		 njobs, next;
	pthread_mutex_t	 mu;
	int		 failed;
	double		 t0;
	/* destination capabilities (from the first connection) */
	int		 dst_multi, dst_uidplus, dst_condstore;
	int		 src_condstore;
	uint64_t	 dst_appendlimit;
	int64_t		 ledger_since;	/* ledger: look up messages dated
					 * from then on */
	int		 dest_live;	/* sync_pass_opts.dest_live said so */
	/*
	 * The destination refused an APPEND with [OVERQUOTA]: no more
	 * APPENDs for this account to that server in this pass (set under
	 * mu; read unlocked by the folders' copies, which only ever see it
	 * go from 0 to 1).  quota_single: a MULTIAPPEND was refused for
	 * quota, so what still fits is found one message at a time.
	 */
	int		 over_quota;
	int		 quota_single;
	/* the copies so far, for sync_pairs.c (under mu): messages
	 * settled and the wall time their batches took on one pair */
	uint64_t	 app_msgs;
	double		 app_secs;
	char		 quota_text[300];	/* the server's words */
	/* a reverse pass: the forward plan (old host onto new host) the
	 * reverse plan was inverted from (sync_reverse.c) */
	struct folder_plan *fwd_plan;
	/*
	 * The destination check (sync_skip.c), on the account's thread
	 * only: recording, skip_begin found this pass may write the
	 * record (0 for --verify's accounts, which never call it); rec, the record of its last complete pass (have_rec);
	 * may_skip, this pass may leave the destination unchecked if the
	 * source shows what rec does; snap, the source's listing in this
	 * pass (have_snap); dst_skipped, it did.
	 */
	struct state_acct rec, snap;
	int		 recording, have_rec, have_snap, may_skip;
	int		 dst_skipped;
	int64_t		 started;	/* unix time */
};

struct pass {
	const struct sync_pass_opts *o;
	struct report	*r;
	struct sync_progress *pr;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 slots;		/* free connection pairs */
	int		 running;	/* account threads alive */
	size_t		 naccounts;	/* in this pass */
	/* rate limiter */
	pthread_mutex_t	 rmu;
	double		 rstart;
	uint64_t	 rmsgs, rbytes;
};

/* ---- source messages ----------------------------------------------------- */

struct smsg {
	uint64_t	 uid, size;
	int64_t		 idate;
	int		 tz;
	char		 idate_s[IMAP_DATE_TIME_MAX];
	char		*flags;		/* settable flags, space-separated */
	char		*msgid;		/* canonical, or "" */
	char		*date, *from;	/* only without a Message-ID */
	unsigned char	 ckey[STATE_CKEY_LEN];
	int		 in_map;
	int		 done;		/* accounted for in this pass */
	int		 temp_fails;
	int		 no_keywords;	/* retry without keywords */
	int		 intent_ahead;	/* its intent committed with the batch
					 * before it (sync_copy.c) */
};

struct smsgv {
	struct smsg	*v;
	size_t		 n, alloc;
	/* UIDs the server sent more than once in the response (each kept
	 * once, see scan_meta_end); the lowest of them */
	size_t		 dup_uids;
	uint64_t	 dup_first;
};


struct metafetch {
	struct wres	 r;		/* first: wres_done fills it */
	struct imap_cmd	*queued;	/* the FETCH, until done */
	struct smsgv	*out;
	uint64_t	 min_uid;	/* drop UIDs below (the "n:*" case) */
	/* a flag look queued beside (scan_pair_begin): UIDs below min_uid
	 * answered without INTERNALDATE go here, whichever of the two
	 * FETCHes the client hands them to */
	struct smsgv	*flags_out;
	char		*hdr;
	size_t		 hlen;
	int		 want_hdr;
	struct msg_ident *id;
	int		 side;		/* SRC or DST, for the log */
	int		 oom;
};

struct uidlist {
	struct wres	 r;		/* first: wres_done fills it */
	uint64_t	*v;
	size_t		 n, alloc;
	int		 oom;
};

/* ---- the folder ---------------------------------------------------------- */

struct fctx {
	struct worker	*w;
	struct acct	*a;
	struct fjob	*j;
	struct report_folder *rf;
	struct store	*st;		/* NULL in a dry run */
	int		 dry;
	struct state_key key;
	struct state_folder sf;
	int		 have_state;
	struct state_map map;
	struct imap_mailbox smb, dmb;
	int		 dst_exists;
	int		 problems;	/* failures: not complete */
	uint64_t	 flags_dropped;	/* copies without some flags (the
					   destination's PERMANENTFLAGS) */
	/* map entries of finished APPENDs, committed with the next batch's
	 * intents or the folder record (state_commit): one fsync a batch */
	struct state_map_entry *pend;
	size_t		 npend, apend;
	/* set while the folder is copied by several connections */
	pthread_mutex_t	*rmu;		/* guards rf */
	const struct smsgv *own;	/* this part's messages (sorted) */
	uint64_t	 max_uid;
	/* a delta's FETCHes, queued behind the EXAMINE on the strength of
	 * the LIST-STATUS (fc_delta_prefetch); used once the EXAMINE confirms
	 * the delta, else waited for and dropped (fc_prefetch_drop) */
	struct metafetch pf_new, pf_flags;
	struct smsgv	 pf_newv, pf_flagsv;
	int		 pf_new_q, pf_flags_q;
	uint64_t	 pf_since;
	/* messages left because the destination is over quota (refused
	 * or never tried), for the folder's one log line */
	uint64_t	 quota_n, quota_lo, quota_hi;
	/* the folder's last batch, its check still in flight, left by
	 * copy_all when may_defer: settled by copy_settle */
	int		 may_defer;
	struct batch	*deferred;	/* owned */
	char		 err[512];
};

/*
 * A message as sent to the destination: its size (a lone LF counted as
 * CRLF) and the SHA-256 of its header section (sync_faithful.c).
 */
struct faith {
	EVP_MD_CTX	*ctx;		/* while it streams; owned */
	unsigned char	 md[32];
	int		 ready;		/* md holds the digest */
	uint64_t	 nbytes;
	int		 eightbit;	/* a byte >= 0x80 in the header */
	int		 hdr_done, line_empty;
	unsigned char	 last;
};

/* One copy to check: filled by faith_check. */
struct faith_item {
	uint64_t	 dst_uid;
	const struct faith *sent;
	void		*owner;		/* the caller's */
	int		 got_size, got_header, header_same;
	uint64_t	 dst_size;
	int		 checked;	/* the destination answered for it */
	int		 altered;
	char		 why[300];
};

typedef void (*side_ready_fn)(struct worker *w, int i, void *arg);
typedef void (*fc_queued_fn)(struct fctx *fc);

/* sync_pace.c */
double	pace_now(void);
void	pace_sleep_ms(uint64_t ms, volatile sig_atomic_t *stop);
int	pace_stopping(const struct acct *a);
int	pace_slot_take(struct pass *p, int wait);
void	pace_slot_give(struct pass *p);
void	pace_rate_wait(struct acct *a, uint64_t msgs, uint64_t bytes);
void	prog_add(struct acct *a, uint64_t copied, uint64_t dups,
	    uint64_t policy, uint64_t failed, uint64_t bytes);
void	prog_stream(struct acct *a, uint64_t bytes);
void	prog_total(struct acct *a, uint64_t msgs);
void	prog_folder_done(struct acct *a);

/* sync_pairs.c */
int	pairs_more(struct acct *a, size_t running);

/* sync_faithful.c */
int	faith_begin(struct faith *f);
void	faith_feed(struct faith *f, const void *data, size_t len);
void	faith_end(struct faith *f);
void	faith_free(struct faith *f);
int	faith_check(struct worker *w, const char *wire,
	    struct faith_item *v, size_t n, char *err, size_t errlen);
struct faith_q;
int	faith_check_send(struct worker *w, const char *wire,
	    struct faith_item *v, size_t n, struct faith_q **qp, char *err,
	    size_t errlen);
int	faith_check_collect(struct worker *w, struct faith_q *q, char *err,
	    size_t errlen);

/* sync_side.c */
void	wres_fill(struct wres *r, const struct imap_result *res);
void	wres_reason(const struct wres *r, char *buf, size_t len);
int	wres_temp(const struct wres *r);
void	wres_done(struct imap_client *c, const struct imap_result *res,
	    void *arg);
int	side_loop_until(struct worker *w, const int *flag);
void	side_close(struct side *s);
void	sides_connect(struct worker *w, side_ready_fn ready, void *arg);
int	side_ensure(struct worker *w, int i, char *err, size_t errlen);
int	side_wait(struct worker *w, struct imap_cmd *cmd, struct wres *r);
int	side_select_begin(struct worker *w, int i, const char *wire, int rw,
	    struct wres *r);
int	side_select_end(struct worker *w, int i, const char *wire, int rw,
	    struct wres *r);
int	side_select(struct worker *w, int i, const char *wire, int rw,
	    struct wres *r);
struct worker *worker_new(struct acct *a);
void	worker_free(struct worker **wp);

/* sync_scan.c */
void	smsgv_free(struct smsgv *l);
int	smsg_cmp(const void *x, const void *y);
int	scan_meta_begin(struct worker *w, int i, const char *uidset,
	    uint64_t min_uid, int want_hdr, struct smsgv *out,
	    struct metafetch *mf);
int	scan_meta_end(struct worker *w, struct metafetch *mf, struct wres *r);
size_t	smsgv_dedupe(struct smsgv *l);
size_t	uidlist_dedupe(struct uidlist *l, uint64_t *first_r);
int	scan_meta(struct worker *w, int i, const char *uidset, uint64_t min_uid,
	    int want_hdr, struct smsgv *out, struct wres *r);
int	scan_flags_begin(struct worker *w, const char *set, uint64_t since,
	    struct smsgv *out, struct metafetch *mf);
int	scan_pair_begin(struct worker *w, uint64_t min_uid, const char *fset,
	    uint64_t since, struct smsgv *newv, struct smsgv *flagsv,
	    struct metafetch *mnew, struct metafetch *mflags);
int	scan_flags_end(struct worker *w, struct metafetch *mf,
	    struct wres *r);
char *scan_flags_filter(const struct side *d, const char *src, int no_kw,
	    char *dropped, size_t dlen);
void	scan_flags_diff(const char *a, const char *b, char *out, size_t len);
void	scan_uid_cb(struct imap_client *c, uint64_t uid, void *arg);
int	scan_uid_cmp(const void *x, const void *y);
int	scan_dst_find(struct worker *w, const struct state_map *map,
	    const char *msgid, uint64_t size, int64_t idate, uint64_t *uid_r,
	    struct wres *r);

/* sync_fctx.c */
void	fc_rf_lock(struct fctx *fc);
void	fc_rf_unlock(struct fctx *fc);
void	fc_fail(struct fctx *fc, const char *what, const struct wres *r);
int	fc_map_put(struct fctx *fc, const struct state_map_entry *e, size_t n);
int	fc_pend_add(struct fctx *fc, const struct state_map_entry *e, size_t n);
int	fc_commit(struct fctx *fc, const struct state_intent *in, size_t nin,
	    const struct state_folder *f);
int	fc_ready_then(struct fctx *fc, int dst_rw, fc_queued_fn queued);
int	fc_ready(struct fctx *fc, int dst_rw);
uint64_t	fc_flags_since(const struct fctx *fc, uint64_t highestmodseq);
void	fc_delta_prefetch(struct fctx *fc);
void	fc_prefetch_drop(struct fctx *fc);
int	fc_resolve_intents(struct fctx *fc);
int	fc_match_content(struct fctx *fc, struct smsgv *src,
	    const struct state_map *old);

/* sync_ledger.c */
int	ledger_check(struct fctx *fc, struct smsgv *todo);

/* sync_copy.c */
int	copy_split(struct fctx *fc, struct smsgv *todo);
int	copy_settle(struct fctx *fc, int may_ask_again);
uint64_t copy_deferred_count(const struct fctx *fc);

/* sync_folder.c */
int	sync_folder_unchanged(const struct fjob *j,
	    const struct state_folder *s);
int	sync_folder(struct worker *w, struct fjob *j);
void	sync_folder_settle(struct worker *w, int may_ask_again);

/* sync_acct.c */
int	acct_setup(struct worker *w, char *err, size_t errlen);
int	acct_plan(struct worker *w, char *err, size_t errlen);

/* sync_skip.c: leaving the destination of an unchanged account
 * unchecked */
void	skip_begin(struct acct *a);
int	skip_snap(struct acct *a, const struct folder_info *v, size_t n,
	    const struct imap_status_info *st, size_t nst, int condstore);
int	skip_source_unchanged(struct acct *a);
void	skip_fill(struct acct *a);
void	skip_end(struct acct *a, int complete);

/* sync_reverse.c: the state's account name (a reverse pass keeps its
 * state apart from the forward pass's), the reverse plan, and the
 * messages either direction must not copy back */
#define REVERSE_USER_MAX	(ACCOUNTS_USER_MAX + 32)
const char *reverse_state_user(const struct acct *a, char *buf,
	    size_t len);
int	reverse_plan(struct acct *a, const struct folder_list *src,
	    const struct folder_list *dst, char *err, size_t errlen);
int	reverse_skip(struct fctx *fc, struct smsgv *msgs);
#endif
