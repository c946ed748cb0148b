/*
 * cutover_state.h - the cutover record of one domain (LMDB "cutover",
 * key: the domain, lower case), the "safe to retire" verdict over it,
 * and the status rendering ferryctl and the relay's GET /cutover share.
 *
 * ferry-syncd (syncd/cutover.c) is the only writer: its MX watcher fills
 * the resolver answers, its pass hooks the sync evidence, and it moves
 * the phase.  ferryctl and the relay only read, and evaluate the verdict
 * again at read time with the relay's evidence of that moment
 * (relay_view.h), so what they show is never staler than the store.
 *
 * The verdict (cutover_verdict_eval) holds when all four hold:
 *   1. every resolver has answered `new` for at least quiet_period;
 *   2. the relay's last inbound message for the domain is older than
 *      quiet_period (or there never was one);
 *   3. the relay's queue holds nothing for the domain (queued, deferred
 *      or held);
 *   4. a pass that started after the relay's last inbound message
 *      finished with 0 copied, 0 missing and 0 failed for every account
 *      of the domain, and it is the latest finished pass (a later one
 *      that copied something shows mail still reaching the old host).
 * Otherwise it lists what is outstanding, one sentence per item, in
 * words an admin acts on.  It is a pure function: no I/O, no clock.
 *
 * RECORD FORMAT (STORE_DB_CUTOVER, key = domain; integers big-endian;
 * str8 = byte len + bytes, str16 = u16 len + bytes, never a NUL inside)
 *   byte 'C', byte version (1)
 *   str8 domain
 *   byte phase, i64 phase_since, i64 switch_seen_at, i64 all_new_since
 *   byte n (<= CUTOVER_RESOLVERS_MAX), n x {
 *       str8 resolver, byte class, u32 ttl, i64 asked_at, i64 new_since,
 *       byte m (<= CUTOVER_MX_MAX), m x str8 host, str8 error }
 *   i64 full_done_at, i64 last_started, i64 last_finished,
 *   i64 running_since, u64 copied, u64 missing, u64 failed,
 *   u32 accounts, i64 clean_started,
 *   byte n (<= CUTOVER_FAIL_MAX), n x { str16 user, u64 failed,
 *       str16 reason }
 *   u16 n (<= CUTOVER_HISTORY_MAX), n x { i64 at, byte from, byte to,
 *       str16 why }
 *   nothing after that.  Every enum in range, every length within its
 *   field: cutover_record_decode() refuses anything else.
 *
 * Ownership: a struct cutover_record is plain data (no pointers), large
 * (tens of KiB): allocate it.  The status structs borrow everything.
 * Threading: no global state; every function may run on any thread.
 */
#ifndef FERRY_CUTOVER_STATE_H
#define FERRY_CUTOVER_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "json.h"
#include "relay_view.h"
#include "store.h"
#include "util.h"

#define CUTOVER_RECORD_VERSION	1
#define CUTOVER_DOMAIN_MAX	254	/* bytes of a domain, NUL excluded */
#define CUTOVER_RESOLVERS_MAX	8
#define CUTOVER_MX_MAX		16	/* hosts kept per answer */
#define CUTOVER_HOST_MAX	255	/* bytes of an MX host */
#define CUTOVER_LABEL_MAX	127	/* "host:port" or "system" */
#define CUTOVER_ERROR_MAX	127
#define CUTOVER_FAIL_MAX	8	/* failing accounts kept */
#define CUTOVER_USER_MAX	255
#define CUTOVER_TEXT_MAX	255	/* reasons, history "why" */
#define CUTOVER_HISTORY_MAX	64	/* the newest are kept */
#define CUTOVER_OUTSTANDING_MAX	24
#define CUTOVER_TTL_WARN	300	/* seconds; warned about in synced */
#define CUTOVER_RESOLVER_SYSTEM	"system"	/* /etc/resolv.conf */

/* The phases; the numbers are on disk. */
enum cutover_phase {
	CUTOVER_PRESYNC = 0,	/* first full pass not finished */
	CUTOVER_SYNCED,		/* full pass done, every resolver old */
	CUTOVER_SWITCHING,	/* at least one resolver answers new */
	CUTOVER_DUAL,		/* every resolver answers new */
	CUTOVER_CLOSED,		/* the verdict holds: safe to retire */
	CUTOVER_ROLLBACK,	/* the MX went back to the old host after
				   the switch ([cutover] rollback = yes):
				   the relay delivers the domain's mail
				   locally, reverse passes bring back
				   what reached the new host */
	CUTOVER_NPHASES
};

/* How one MX answer reads; the numbers are on disk. */
enum cutover_class {
	MX_CLASS_NEW = 0,	/* every host matches new_mx */
	MX_CLASS_OLD,		/* every host matches old_mx */
	MX_CLASS_MIXED,		/* some of each */
	MX_CLASS_UNKNOWN,	/* a host matching neither: a lie */
	MX_CLASS_ERROR,		/* timeout, SERVFAIL, NXDOMAIN, no MX */
	MX_CLASS_NCLASSES
};

/* One resolver's last answer. */
struct cutover_answer {
	char		 resolver[CUTOVER_LABEL_MAX + 1];
	enum cutover_class class;
	uint32_t	 ttl;		/* seconds, 0 for errors */
	int64_t		 asked_at;	/* when the answer came */
	int64_t		 new_since;	/* answering new without a break
					   since; 0: not new now */
	size_t		 nmx;
	char		 mx[CUTOVER_MX_MAX][CUTOVER_HOST_MAX + 1];
					/* by preference */
	char		 error[CUTOVER_ERROR_MAX + 1];	/* class error */
};

/* One account's failures in the last pass. */
struct cutover_failure {
	char		 user[CUTOVER_USER_MAX + 1];
	uint64_t	 failed;
	char		 reason[CUTOVER_TEXT_MAX + 1];
};

/* What the passes showed for the domain's accounts. */
struct cutover_sync {
	int64_t		 full_done_at;	/* first pass with every account of
					   the domain synced; 0: not yet */
	int64_t		 last_started;	/* last finished pass */
	int64_t		 last_finished;	/* 0: none finished */
	int64_t		 running_since;	/* a pass is running; 0: none */
	uint64_t	 copied, missing, failed;	/* last pass, summed */
	uint32_t	 accounts;	/* of the domain, in the last pass */
	int64_t		 clean_started;	/* start of the latest pass that
					   finished 0/0/0 for every account
					   of the domain; 0: none */
	size_t		 nfail;
	struct cutover_failure fail[CUTOVER_FAIL_MAX];
};

struct cutover_hist {
	int64_t		 at;
	enum cutover_phase from, to;
	char		 why[CUTOVER_TEXT_MAX + 1];
};

struct cutover_record {
	char		 domain[CUTOVER_DOMAIN_MAX + 1];	/* lower case */
	enum cutover_phase phase;
	int64_t		 phase_since;
	int64_t		 switch_seen_at;	/* first new answer (since the
						   last rollback); 0: none */
	int64_t		 all_new_since;	/* every resolver new since; 0 */
	size_t		 nanswers;
	struct cutover_answer answers[CUTOVER_RESOLVERS_MAX];
	struct cutover_sync sync;
	size_t		 nhist;		/* oldest first */
	struct cutover_hist hist[CUTOVER_HISTORY_MAX];
};

/* The verdict and what stands in its way. */
struct cutover_verdict {
	int		 safe;		/* 1: safe-to-retire */
	size_t		 n;
	char		 outstanding[CUTOVER_OUTSTANDING_MAX][CUTOVER_TEXT_MAX + 1];
	char		 notes[4][CUTOVER_TEXT_MAX + 1];	/* warnings
					   that do not block (the TTL) */
	size_t		 nnotes;
};

const char *cutover_phase_name(enum cutover_phase p);
const char *cutover_class_name(enum cutover_class c);

/* cutover_record_init - a fresh record: presync since now. */
void	cutover_record_init(struct cutover_record *r, const char *domain,
	    time_t now);

/* cutover_record_history - append a history entry (the oldest dropped
 * beyond CUTOVER_HISTORY_MAX); why is cut to fit. */
void	cutover_record_history(struct cutover_record *r, time_t at,
	    enum cutover_phase from, enum cutover_phase to, const char *why);

/*
 * The codec.  cutover_record_encode(): *buf_r malloc'd, the caller
 * frees it; -1 only when out of memory.  cutover_record_decode(): 0, or
 * -1 with err for anything not exactly a record of this version.
 */
int	cutover_record_encode(const struct cutover_record *r,
	    unsigned char **buf_r, size_t *len_r);
int	cutover_record_decode(struct cutover_record *r, const void *buf,
	    size_t len, char *err, size_t errlen);

/*
 * In a transaction: cutover_record_get() returns 0 (decoded into *r),
 * STORE_NOTFOUND, or -1 (store or decode error, with the transaction's
 * error set).  cutover_record_put() writes r under its domain.
 */
int	cutover_record_get(struct store_txn *tx, const char *domain,
	    struct cutover_record *r);
int	cutover_record_put(struct store_txn *tx,
	    const struct cutover_record *r);

/*
 * cutover_mx_class - class MX hosts (DNS_OK answers) with the config's
 * patterns: fnmatch(3) patterns, case-insensitive, a final dot ignored.
 * No host: MX_CLASS_ERROR (a null MX "." also reads as an error).
 */
enum cutover_class cutover_mx_class(const char *const *hosts, size_t n,
	    const struct strlist *new_mx, const struct strlist *old_mx);
int	cutover_host_matches(const struct strlist *patterns,
	    const char *host);

/*
 * cutover_verdict_eval - the verdict for r with the relay's evidence rv
 * (NULL: unreadable, which blocks the verdict) at now.  Pure.
 */
void	cutover_verdict_eval(const struct cutover_record *r,
	    const struct relay_domain_view *rv, time_t now,
	    int64_t quiet_period, struct cutover_verdict *v);

/* One domain as the status shows it; everything borrowed. */
struct cutover_domain_status {
	const char			*domain;
	const struct cutover_record	*rec;	/* NULL: no record yet */
	const struct relay_domain_view	*relay;	/* NULL: unreadable */
	const char			*relay_error;	/* why, or NULL */
	int				 relay_running;	/* 1, 0, -1: unknown */
};

/*
 * cutover_status_json - the document of DESIGN.md §8:
 * {"domains": [{"domain", "phase", "phase_since", "resolvers",
 * "switch_seen_at", "relay", "sync", "verdict", "outstanding", "notes",
 * "history"}]}, RFC 3339 UTC times (null for "never").  The verdict is
 * evaluated here, at now.
 */
void	cutover_status_json(struct json *j,
	    const struct cutover_domain_status *d, size_t n, time_t now,
	    int64_t quiet_period);
/* cutover_status_json_more - the same, with more keys of the caller's
 * (more(), NULL: none) after "domains", so the document grows
 * additively. */
typedef void cutover_json_more_fn(struct json *j, void *arg);
void	cutover_status_json_more(struct json *j,
	    const struct cutover_domain_status *d, size_t n, time_t now,
	    int64_t quiet_period, cutover_json_more_fn *more, void *more_arg);

/* cutover_status_text - the same for a terminal; every string from the
 * network made printable.  -1 on a write error. */
int	cutover_status_text(FILE *fp, const struct cutover_domain_status *d,
	    size_t n, time_t now, int64_t quiet_period);

/*
 * cutover_status_render - for ferryctl and the relay: every [cutover]
 * domain's record and relay evidence (relay_view_domain()) from st,
 * rendered as JSON into j (when not NULL) and/or as text into fp (when
 * not NULL).  st NULL: no store exists yet (neither daemon has run):
 * every domain without a record, the relay's evidence all zero.  relay_running as above.  0, or -1
 * with err when the store cannot be read.
 */
struct config;
int	cutover_status_render(struct store *st, const struct config *cfg,
	    time_t now, int relay_running, struct json *j, FILE *fp,
	    char *err, size_t errlen);
int	cutover_status_render_more(struct store *st,
	    const struct config *cfg, time_t now, int relay_running,
	    struct json *j, FILE *fp, cutover_json_more_fn *more,
	    void *more_arg, char *err, size_t errlen);

/* cutover_format_rfc3339 - "2026-12-06T20:48:29Z" into buf (>= 21). */
const char *cutover_format_rfc3339(char *buf, size_t len, int64_t t);

#endif
