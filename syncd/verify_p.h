/*
 * verify_p.h - the private interface of ferry-syncd --verify (verify.h)
 * between its files:
 *   verify.c         the account's connection pair and folder plan, the
 *                    metadata FETCHes and the streamed body hashes
 *   verify_match.c   matching source and destination messages by ledger
 *                    key, and classifying what does not match
 *   verify_report.c  the text tables, the JSON document, the record
 *
 * Ownership: a struct vacct owns its folders, each folder its messages
 * and issues and every string in them (vacct_free).
 */
#ifndef FERRY_VERIFY_P_H
#define FERRY_VERIFY_P_H

#include <stdint.h>
#include <stdio.h>

#include "msgid.h"
#include "sync_p.h"
#include "verify.h"

/* what became of one message */
enum vstate {
	V_OPEN = 0,	/* not decided yet */
	V_MATCH,	/* a copy on the destination */
	V_MISSING,	/* source message without a copy */
	V_EXTRA,	/* destination message without a source */
	V_POLICY,	/* left behind on purpose (APPENDLIMIT) */
	V_GONE,		/* destination copy (state map) of a source
			   message deleted since: kept, delete = no */
};

/* differences of a matched pair */
#define VD_FLAGS	0x01
#define VD_IDATE	0x02
#define VD_BODY		0x04	/* same identity, different body */
#define VD_ALTERED	0x08	/* the copy pass saw the destination store
				   other bytes than it sent (state map) */

struct vmsg {
	uint64_t	 uid, size;
	int64_t		 idate;
	int		 tz;
	size_t		 folder;	/* index into the group's sources */
	char		*flags;		/* settable flags, space-separated */
	char		*msgid;		/* canonical, or "" */
	char		*date, *from, *subject;	/* raw header values */
	unsigned char	 sha[BODY_HASH_LEN];
	int		 have_sha;
	int		 want_sha;
	enum vstate	 state;
	unsigned	 diff;
	struct vmsg	*peer;		/* the matched message */
	uint64_t	 gone_uid;	/* V_GONE: the source UID it had */
};

struct vlist {
	struct vmsg	*v;
	size_t		 n, alloc;
};

enum vkind {
	VI_MISSING = 0,
	VI_EXTRA,
	VI_DIFFERENT,
	VI_POLICY,
};

/* One line of the lists under the tables. */
struct vissue {
	enum vkind	 kind;
	char		*folder;	/* source path (extra: destination) */
	uint64_t	 uid;		/* source UID (extra: destination) */
	uint64_t	 dst_uid;	/* different: the destination copy */
	uint64_t	 size;
	int64_t		 idate;
	int		 tz;
	char		*date, *from, *subject;
	char		*what;		/* "flags: ...", the policy's reason */
};

/* One source folder (or a folder the plan skips). */
struct vfolder {
	char		*src, *dst;	/* "/" paths; dst NULL when skipped */
	const char	*skipped;	/* folder_skip_name, or NULL */
	int		 loss;		/* skipped against every rule */
	int		 error;
	char		 err[300];
	uint64_t	 src_n, src_bytes, dst_n, dst_bytes;
	uint64_t	 matched, missing, extra, different, policy;
};

struct vacct {
	const char	*src_user, *dst_user;	/* borrowed */
	int		 error;		/* not verified */
	char		 err[512];
	struct vfolder	*f;
	size_t		 nf, af;
	struct vissue	*is;
	size_t		 nis, ais;
	uint64_t	 src_n, src_bytes, dst_n, dst_bytes;
	uint64_t	 matched, missing, extra, different, policy;
	double		 seconds;
	uint64_t	 hashed;	/* bodies hashed */
};

/* verify.c */
void	vlist_free(struct vlist *l);
int	vmsg_uid_cmp(const void *x, const void *y);

/* verify_match.c: vmatch_gone marks the extra destination messages the
 * state map names as copies of source messages no longer there, and
 * the copies it records as altered by the destination as different */
void	vmatch_gone(struct vlist *s, size_t folder, struct vlist *d,
	    const struct state_map *map, uint64_t dst_uidvalidity);
/* mark what needs a body hash (before the hashes) and
 * decide every message (after); s, d hold one destination folder's
 * sources and its destination messages */
void	vmatch_prepare(struct vlist *s, struct vlist *d, int deep);
void	vmatch_finish(struct vlist *s, struct vlist *d,
	    const struct side *dside, uint64_t appendlimit);
/* issues of one destination group into the account; -1 out of memory */
int	vmatch_collect(struct vacct *va, struct vfolder *const *vf,
	    const struct vlist *s, const struct vlist *d, const char *dst_path,
	    uint64_t appendlimit);

/* verify_report.c */
void	vacct_free(struct vacct *va);
int	vacct_complete(const struct vacct *va);
void	verify_print_text(FILE *out, const struct vacct *va, size_t n,
	    int deep);
void	verify_print_json(FILE *out, const struct vacct *va, size_t n,
	    int deep);
void	verify_record(struct store *st, const struct vacct *va, int deep);

#endif
