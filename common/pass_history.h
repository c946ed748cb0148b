/*
 * pass_history.h - the copy passes of one account, newest last: the
 * record ferry-syncd writes at the end of every pass it runs (not in a
 * dry run, not for a reverse pass) and `ferryctl report` reads for the acceptance report.
 *
 * STORE_DB_META key PASS_HISTORY_KEY_PREFIX + the source user name in
 * ASCII lower case (accounts are unique case-insensitively).  At most
 * PASS_HISTORY_MAX passes are kept: the oldest goes first.
 *
 * RECORD FORMAT (integers big-endian; str16 = u16 len + bytes, never a
 * NUL inside, at most PASS_HISTORY_TEXT_MAX bytes)
 *   byte 'H', byte version (1)
 *   u16 n (<= PASS_HISTORY_MAX), n x {
 *       i64 started, i64 finished, byte complete (0 or 1),
 *       u64 src_count, u64 already, u64 copied, u64 bytes,
 *       u64 duplicates, u64 policy, u64 failed, u64 missing,
 *       str16 error (the account was not synced: why; "" otherwise),
 *       byte m (<= PASS_HISTORY_REASONS_MAX), m x {
 *           str16 folder, u64 uid, str16 reason } }
 *   nothing after that.  pass_history_decode() refuses anything else.
 *
 * Ownership: plain data, no pointers; a struct pass_history is large
 * (about 100 KiB): allocate it.  No I/O, no logging, no global state.
 */
#ifndef FERRY_PASS_HISTORY_H
#define FERRY_PASS_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#define PASS_HISTORY_VERSION	1
#define PASS_HISTORY_MAX	32	/* passes kept per account */
#define PASS_HISTORY_REASONS_MAX 4	/* failed messages kept per pass */
#define PASS_HISTORY_TEXT_MAX	255	/* bytes of a folder, reason, error */
#define PASS_HISTORY_KEY_PREFIX	"syncd.passes."
#define PASS_HISTORY_KEY_MAX	(sizeof(PASS_HISTORY_KEY_PREFIX) + 512)

/* One message a pass could not copy, and why. */
struct pass_reason {
	char		 folder[PASS_HISTORY_TEXT_MAX + 1];
	uint64_t	 uid;
	char		 reason[PASS_HISTORY_TEXT_MAX + 1];
};

/* One pass over the account (report.h's totals). */
struct pass_entry {
	int64_t		 started, finished;	/* unix time */
	int		 complete;	/* nothing missing or failed */
	uint64_t	 src_count, already, copied, bytes;
	uint64_t	 duplicates, policy, failed, missing;
	char		 error[PASS_HISTORY_TEXT_MAX + 1];
	size_t		 nreasons;
	struct pass_reason reasons[PASS_HISTORY_REASONS_MAX];
};

struct pass_history {
	size_t		 n;		/* oldest first */
	struct pass_entry e[PASS_HISTORY_MAX];
};

/* pass_history_add - append e, dropping the oldest beyond the maximum */
void	pass_history_add(struct pass_history *h, const struct pass_entry *e);

/* pass_history_text - copy s into a text field, cut to fit (at a UTF-8
 * character boundary) and with NUL bytes impossible by construction */
void	pass_history_text(char dst[PASS_HISTORY_TEXT_MAX + 1], const char *s);

/*
 * pass_history_key - the META key of account into buf; -1 when it does
 * not fit.
 */
int	pass_history_key(char *buf, size_t len, const char *account);

/*
 * The codec.  pass_history_encode(): *buf_r malloc'd, the caller frees
 * it; -1 only when out of memory or a field out of range.
 * pass_history_decode(): 0, or -1 with err for anything that is not
 * exactly a record of this version.
 */
int	pass_history_encode(const struct pass_history *h,
	    unsigned char **buf_r, size_t *len_r);
int	pass_history_decode(struct pass_history *h, const void *buf,
	    size_t len, char *err, size_t errlen);

#endif
