/*
 * state.h - ferry-syncd's sync state in the shared LMDB (DESIGN.md §4;
 * §1, "No duplicates"): what each source folder looked like at the end
 * of the last pass, which source message became which destination
 * message, and the APPENDs begun but not yet confirmed (intents), so a
 * crash or a dropped connection mid-copy never duplicates or skips a
 * message.
 *
 * ON-DISK FORMAT (stable; ferryctl and later versions read it).  All
 * integers are big-endian; "u64" unsigned, "i64"/"i32" two's complement.
 *
 *   Folder key ("fkey"):  ACCOUNT 0x00 FOLDER
 *       ACCOUNT is the source user name, ASCII lower-cased (accounts are
 *       unique case-insensitively, accounts.h).  FOLDER is the source
 *       folder's path as the folder plan spells it (folders.h: "/"
 *       between levels, UTF-8).  When ACCOUNT is longer than 200 bytes
 *       or FOLDER longer than 250 bytes, that part is replaced by "#"
 *       and the 64 lower-case hex digits of its SHA-256.  Neither part
 *       contains a NUL byte.
 *
 *   sync_folder:  key = fkey
 *       value = u8 version (1) | u8 flags (STATE_F_*) |
 *               u64 src_uidvalidity | u64 src_uidnext |
 *               u64 src_last_uid (highest source UID handled) |
 *               u64 src_highestmodseq (0 = none) | u64 src_messages |
 *               u64 dst_uidvalidity | u64 dst_highestmodseq |
 *               i64 updated (unix time) |
 *               u16 n | n bytes: destination folder, wire name
 *
 *   sync_map:  key = fkey 0x00 u64 src_uid
 *       value = u8 version (1) | u8 origin (STATE_ORIGIN_*) |
 *               u64 dst_uid (0 = no destination copy: ledger duplicate) |
 *               u64 dst_uidvalidity | u64 size | i64 internaldate |
 *               32 bytes content key | u16 n | n bytes: the source
 *               flags last applied, space-separated ("\Seen $Label")
 *
 *   sync_intent:  key = fkey 0x00 u64 src_uid
 *       value = u8 version (1) | u64 size | i64 internaldate |
 *               i32 internaldate zone (minutes east of UTC) |
 *               i64 created (unix time) | 32 bytes content key |
 *               u16 n | n bytes: canonical Message-ID ("" = none) |
 *               u16 n | n bytes: destination folder, wire name
 *       Written in one transaction per APPEND batch BEFORE the APPEND is
 *       sent, replaced by the sync_map entry when the APPEND completes.
 *       An intent found at start means "this APPEND may or may not have
 *       happened": the engine looks for it on the destination (by
 *       Message-ID, else by size and date) before copying anything.
 *
 *   meta "syncd.acct:" ACCOUNT (ACCOUNT as in the folder key): what
 *       the account's source looked like at the end of its last complete
 *       forward pass, so that a pass whose source shows exactly that may
 *       leave the destination unchecked (sync_skip.c).  value =
 *       u8 version (1) | u8 flags (STATE_ACCT_*) | i64 pass_at (unix
 *       time the pass started) | i64 dst_checked (unix time the
 *       destination was last logged in to and compared) |
 *       32 bytes: SHA-256 of what maps folders (sync_skip.c) |
 *       u32 n | n times: u16 n | source folder, wire name | u32 LIST
 *         attributes (imap_types.h) | u32 STATUS items present |
 *         u64 UIDVALIDITY | u64 UIDNEXT | u64 MESSAGES | u64 HIGHESTMODSEQ |
 *       u32 n | n times (the pass's report rows): u16 n | source path |
 *         u16 n | destination path ("" = skipped) | u16 n | why skipped |
 *         u64 src_count | u64 dst_count | u64 already | u64 duplicates
 *       Deleted by every forward pass of the account that does not end
 *       complete.
 *
 *   meta "syncd.progress": the JSON progress object of ferry-syncd
 *       (see syncd/main.c), read by `ferryctl sync`.
 *
 *   Content key (what identifies a message across UIDVALIDITY changes
 *   and on the destination): SHA-256 over "mailferry-content-v1" 0x00
 *   canonical Message-ID ("" when none) 0x00 size as decimal 0x00
 *   internaldate (unix seconds) as decimal.
 *
 * Every function runs its own transaction through store_txn_run() (safe
 * from any thread) and returns 0, STATE_NOTFOUND where noted, or -1 with
 * a reason in err.  A value with an unknown version or a bad length is
 * an error ("corrupt"), never read past its end.
 *
 * Ownership: struct state_map and struct state_intents own their arrays
 * and strings; free them with the *_free() functions (NULL-safe).  No
 * logging, no global state.
 */
#ifndef FERRY_STATE_H
#define FERRY_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "msgid.h"
#include "store.h"

#define STATE_NOTFOUND		1
#define STATE_VERSION		1
#define STATE_KEY_MAX		480	/* fkey + 0x00 + 8 fits LMDB's 511 */
#define STATE_ACCOUNT_MAX	200
#define STATE_FOLDER_MAX	250
#define STATE_NAME_MAX		1024	/* destination wire names */
#define STATE_FLAGS_MAX		4096	/* flags text kept in a map entry */
#define STATE_CKEY_LEN		32

/* struct state_folder flags */
#define STATE_F_COMPLETE	0x01	/* every source message up to
					   src_last_uid is accounted for */

/* How a map entry came to be. */
enum state_origin {
	STATE_ORIGIN_COPIED = 1,	/* syncd APPENDed it (deletable) */
	STATE_ORIGIN_MATCHED = 2,	/* found on the destination by
					   content key (not deletable) */
	STATE_ORIGIN_LEDGER = 3,	/* the relay delivered it: no copy */
	STATE_ORIGIN_ALTERED = 4,	/* syncd APPENDed it, but the
					   destination holds other bytes
					   (sync_faithful.c): reported by
					   every pass, never copied again */
};

struct state_key {
	unsigned char	 buf[STATE_KEY_MAX];
	size_t		 len;
};

struct state_folder {
	unsigned	 flags;
	uint64_t	 src_uidvalidity;
	uint64_t	 src_uidnext;
	uint64_t	 src_last_uid;
	uint64_t	 src_highestmodseq;
	uint64_t	 src_messages;
	uint64_t	 dst_uidvalidity;
	uint64_t	 dst_highestmodseq;
	int64_t		 updated;
	char		 dst_name[STATE_NAME_MAX];
};

struct state_map_entry {
	uint64_t	 src_uid;
	uint64_t	 dst_uid;
	uint64_t	 dst_uidvalidity;
	uint64_t	 size;
	int64_t		 internaldate;
	enum state_origin origin;
	unsigned char	 ckey[STATE_CKEY_LEN];
	char		*flags;		/* owned; "" when none */
};

/* One folder's map, sorted by src_uid. */
struct state_map {
	struct state_map_entry *v;
	size_t		 n;
	size_t		 alloc;
};

struct state_intent {
	uint64_t	 src_uid;
	uint64_t	 size;
	int64_t		 internaldate;
	int		 tz;
	int64_t		 created;
	unsigned char	 ckey[STATE_CKEY_LEN];
	char		*msgid;		/* owned; "" when none */
	char		*dst_name;	/* owned */
};

struct state_intents {
	struct state_intent *v;
	size_t		 n;
	size_t		 alloc;
};

/* Keys. */
int	state_folder_key(struct state_key *k, const char *account,
	    const char *folder, char *err, size_t errlen);
/* fkey 0x00 u64 uid, in out (STATE_KEY_MAX + 9 bytes); returns length */
size_t	state_uid_key(const struct state_key *fk, uint64_t uid,
	    unsigned char *out);
void	state_content_key(const char *msgid, uint64_t size,
	    int64_t internaldate, unsigned char out[STATE_CKEY_LEN]);

/* Folders. */
int	state_folder_get(struct store *st, const struct state_key *k,
	    struct state_folder *f, char *err, size_t errlen);
int	state_folder_put(struct store *st, const struct state_key *k,
	    const struct state_folder *f, char *err, size_t errlen);
/* Delete the folder record, every map entry and every intent of it. */
int	state_folder_reset(struct store *st, const struct state_key *k,
	    char *err, size_t errlen);

/* Maps. */
int	state_map_load(struct store *st, const struct state_key *k,
	    struct state_map *m, char *err, size_t errlen);
struct state_map_entry *state_map_find(const struct state_map *m,
	    uint64_t src_uid);
/* add or replace in memory, keeping the order; copies e->flags */
int	state_map_set(struct state_map *m, const struct state_map_entry *e);
void	state_map_free(struct state_map *m);

/*
 * state_map_commit - in ONE transaction: write the n map entries,
 * delete the intents of the same source UIDs and, if del_n > 0, delete
 * the map entries of del_uids.  Either all of it happens or nothing.
 */
int	state_map_commit(struct store *st, const struct state_key *k,
	    const struct state_map_entry *e, size_t n, const uint64_t *del_uids,
	    size_t del_n, char *err, size_t errlen);

/*
 * state_commit - ONE transaction for the copy loop: write the n map
 * entries and delete their intents, write the nin new intents, and the
 * folder record when f is not NULL.  The engine commits a batch's map
 * entries together with the next batch's intents (or the folder record
 * at the end), so a batch costs one fsync.  Until then the finished
 * batch's intents stay on disk, which is safe: an intent found at start
 * is looked up on the destination.
 */
int	state_commit(struct store *st, const struct state_key *k,
	    const struct state_map_entry *e, size_t n,
	    const struct state_intent *in, size_t nin,
	    const struct state_folder *f, char *err, size_t errlen);

/* Intents. */
int	state_intent_put(struct store *st, const struct state_key *k,
	    const struct state_intent *in, size_t n, char *err, size_t errlen);
int	state_intent_load(struct store *st, const struct state_key *k,
	    struct state_intents *out, char *err, size_t errlen);
int	state_intent_del(struct store *st, const struct state_key *k,
	    uint64_t src_uid, char *err, size_t errlen);
void	state_intents_free(struct state_intents *in);

/* Encoders/decoders, exposed for the tests (0 / -1). */
int	state_map_decode(const void *v, size_t len, struct state_map_entry *e);
int	state_folder_decode(const void *v, size_t len, struct state_folder *f);

/*
 * Ledger (written by the relay, DESIGN.md §4, layout in common/ledger.h):
 * state_ledger_hit() looks msgkey_ledger(mailbox, id, body_sha) up and
 * returns
 *   STATE_LEDGER_NONE (0)       no live entry: copy the message
 *   STATE_LEDGER_DELIVERED (1)  the relay delivered it to the new
 *                               mailbox: never copy it
 *   STATE_LEDGER_PENDING (2)    the relay holds its own copy and will
 *                               deliver it: do not copy it now, and do
 *                               not record it as done (the relay may
 *                               still give up; it then removes the entry)
 *   -1                          error (err filled)
 * state_ledger_oldest(): the earliest entry time in the ledger
 * (delivered, or arrived for a pending entry; unix time; 1 for an entry
 * without a readable time), 0 in *oldest_r when the ledger is empty.
 * Source messages whose INTERNALDATE is well before it cannot be relay
 * deliveries, and need not be hashed to look.  state_ledger_empty(): 1
 * in *empty_r when the ledger holds no entry at all (a count, not a
 * scan: cheap enough for every folder).  Both: 0, or -1 with err.
 */
#define STATE_LEDGER_NONE	0
#define STATE_LEDGER_DELIVERED	1
#define STATE_LEDGER_PENDING	2
int	state_ledger_hit(struct store *st, const char *mailbox,
	    const struct msg_ident *id, const unsigned char sha[BODY_HASH_LEN],
	    char *err, size_t errlen);
int	state_ledger_oldest(struct store *st, int64_t *oldest_r, char *err,
	    size_t errlen);
int	state_ledger_empty(struct store *st, int *empty_r, char *err,
	    size_t errlen);

/*
 * The account record (meta "syncd.acct:"): the source's LIST-STATUS at
 * the end of the last complete forward pass, and that pass's report
 * rows.  struct state_acct owns its arrays and strings; state_acct_free
 * releases them (NULL-safe, the struct zeroed).
 */
#define STATE_ACCT_CONDSTORE	0x01	/* the source offered CONDSTORE */
#define STATE_ACCT_KEY_PREFIX	"syncd.acct:"

struct state_acct_folder {
	char		*wire;		/* owned */
	unsigned	 attrs;		/* IMAP_MBOX_* */
	unsigned	 have;		/* IMAP_STATUS_* present */
	uint64_t	 uidvalidity, uidnext, messages, highestmodseq;
};

struct state_acct_row {
	char		*src, *dst, *skipped;	/* owned; "" = none */
	uint64_t	 src_count, dst_count, already, duplicates;
};

struct state_acct {
	unsigned	 flags;
	int64_t		 pass_at;
	int64_t		 dst_checked;
	unsigned char	 digest[32];
	struct state_acct_folder *f;
	size_t		 nf;
	struct state_acct_row *rows;
	size_t		 nrows;
};

int	state_acct_get(struct store *st, const char *account,
	    struct state_acct *a, char *err, size_t errlen);	/* NOTFOUND */
int	state_acct_put(struct store *st, const char *account,
	    const struct state_acct *a, char *err, size_t errlen);
int	state_acct_del(struct store *st, const char *account, char *err,
	    size_t errlen);
int	state_acct_decode(const void *v, size_t len, struct state_acct *a);
void	state_acct_free(struct state_acct *a);

/* META key -> value (e.g. "syncd.progress"). */
int	state_meta_put(struct store *st, const char *key, const void *val,
	    size_t len, char *err, size_t errlen);

#endif
