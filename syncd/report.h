/*
 * report.h - what a sync pass did, per account and folder (DESIGN.md
 * §6, "Report per account and folder"): the report printed at the end
 * of a pass (a table for people, JSON for scripts), the verdict that
 * decides the exit status, and the progress line shown while the pass
 * runs.
 *
 * The sync engine fills the report as it goes:
 *
 *	r = report_new(dry_run);
 *	a = report_account_add(r, src_user, dst_user);
 *	for each entry m of the folder plan:
 *		f = report_folder_add_map(a, m);	(skips come filled,
 *			not-copied folders too: set f->src_count if known)
 *		f->src_count = EXISTS on the source;
 *		f->already = source messages the state says are copied;
 *		for each message: f->copied++, f->bytes += size;
 *		    or f->duplicates++ (the ledger: the relay delivered it),
 *		    or report_problem(f, REPORT_POLICY, uid, subject, size,
 *		        "over APPENDLIMIT (35651584 bytes)"),
 *		    or report_problem(f, REPORT_FAILED, ..., "NO [CANNOT] ...");
 *		f->dst_count = EXISTS on the destination afterwards;
 *		f->seconds = time spent;   (or report_folder_error(f, ...))
 *	a->seconds = ...;   (or report_account_error(a, "login: ..."))
 *	r->seconds = ...;
 *	report_write_text(r, stdout) or report_write_json(r, stdout, 1);
 *	exit(report_missing(r) ? 1 : 0);
 *
 * Counting.  A folder's messages are "accounted for" when they were
 * already on the destination, copied now, or skipped as duplicates
 * (the relay's ledger says that mailbox has them).  Missing =
 * src_count - accounted, and never less than failed + skipped by
 * policy: a message that could not be copied is missing whatever the
 * arithmetic says.  A folder is complete when it was examined
 * (src_count known), had no error and misses nothing; skipped folders
 * (excluded, non-mail...) are complete by definition.  A folder the
 * plan could not copy for no rule (folder_skip_is_loss: its name did
 * not decode) is not skipped but "not copied": it fails, and its
 * source messages, when the server gave their number, are missing.  An account is
 * complete when it had no error and all its folders are; the report
 * when all accounts are and nothing ran out of memory.
 *
 * Dry run: copied and bytes mean "would copy"; "created" means "would
 * create"; nothing is missing, only errors make the report incomplete.
 *
 * Problems (failed or policy-skipped messages) are kept with their UID,
 * subject, size and reason, at most REPORT_MAX_PROBLEMS per folder (the
 * counters stay exact; the rest is counted as omitted).  The table shows
 * REPORT_TEXT_PROBLEMS of them per folder, the JSON all that were kept.
 *
 * Text output is for terminals: names and subjects from the servers are
 * shown in UTF-8 with control characters replaced by "?" and invalid
 * bytes by U+FFFD, and columns are aligned by display width (accents,
 * combining marks, CJK).  Sizes are decimal (1 MB = 1,000,000 bytes).
 *
 * Ownership: the report owns copies of every string; report_free()
 * releases everything.  Out of memory while filling it is remembered
 * (r->oom): the report then says it is incomplete and report_missing()
 * is 1.  Only the writers do I/O, to the FILE * they are given.  No
 * clock: the caller supplies every duration.  No global state.
 */
#ifndef FERRY_REPORT_H
#define FERRY_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "folders.h"

#define REPORT_UNKNOWN		UINT64_MAX	/* src_count, dst_count */
#define REPORT_MAX_PROBLEMS	1000
#define REPORT_TEXT_PROBLEMS	20

enum report_problem_kind {
	REPORT_FAILED = 0,	/* tried, refused or broken */
	REPORT_POLICY,		/* not tried: size, APPENDLIMIT, rules */
	REPORT_NOTE,		/* copied, but not quite as it was (a
				   keyword the destination refused): listed
				   for the admin, counts as nothing */
};

struct report_problem {
	enum report_problem_kind kind;
	uint64_t	 uid;		/* source UID */
	uint64_t	 size;		/* bytes, 0 = unknown */
	char		*subject;	/* NULL = unknown */
	char		*reason;
};

struct report_folder {
	char		*src;		/* source path ("/" between levels) */
	char		*dst;		/* destination path; NULL if skipped */
	char		*skipped;	/* why not copied (plan), or NULL */
	char		*error;		/* why it could not be synced, or NULL */
	int		 not_copied;	/* left behind by the plan for no rule
					   (error says why): incomplete */
	int		 created;	/* destination created by this pass */

	/* Filled by the engine. */
	uint64_t	 src_count;	/* REPORT_UNKNOWN until examined */
	uint64_t	 dst_count;	/* REPORT_UNKNOWN until known */
	uint64_t	 already;	/* on the destination before the pass */
	uint64_t	 copied;	/* copied now (dry run: to copy) */
	uint64_t	 duplicates;	/* not copied: the ledger has them */
	uint64_t	 policy;	/* not copied by policy */
	uint64_t	 failed;	/* tried and failed */
	uint64_t	 bytes;		/* bytes copied (dry run: to copy) */
	uint64_t	 size_mismatch;	/* copied, but the body received was
					   not the RFC822.SIZE announced (each
					   also a REPORT_NOTE) */
	double		 seconds;	/* time spent on the folder */

	struct report_problem *problems;
	size_t		 nproblems;
	size_t		 problems_alloc;
	uint64_t	 problems_omitted;
	struct report	*report;	/* back pointer, for r->oom */
};

struct report_account {
	char		*src_user;
	char		*dst_user;
	char		*error;		/* not synced at all: why */
	double		 seconds;
	struct report_folder **folders;
	size_t		 nfolders;
	size_t		 folders_alloc;
	struct report	*report;
};

struct report {
	int		 dry_run;
	int		 reverse;	/* a reverse pass: rows name the new
					   host's user first */
	double		 seconds;	/* the whole pass */
	int		 oom;		/* something could not be recorded */
	struct report_account **accounts;
	size_t		 naccounts;
	size_t		 accounts_alloc;
};

/* Sums over a folder, an account or the whole report. */
struct report_totals {
	uint64_t	 accounts, accounts_failed;
	uint64_t	 folders, folders_skipped, folders_failed;
	uint64_t	 folders_created;
	uint64_t	 folders_not_copied;	/* of folders_failed */
	uint64_t	 not_copied;	/* their source messages, known ones */
	uint64_t	 src_count, dst_count;	/* known ones only */
	uint64_t	 already, copied, duplicates, policy, failed;
	uint64_t	 missing;
	uint64_t	 bytes;
	double		 seconds;
};

struct report	*report_new(int dry_run);
void		 report_free(struct report **rp);

/* New rows; NULL only when out of memory (r->oom is then set). */
struct report_account *report_account_add(struct report *r,
		    const char *src_user, const char *dst_user);
struct report_folder *report_folder_add(struct report_account *a,
		    const char *src, const char *dst);
/* A row for one plan entry: paths, "skipped" reason, created flag. */
struct report_folder *report_folder_add_map(struct report_account *a,
		    const struct folder_map *m);

void	 report_account_error(struct report_account *a, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 report_folder_error(struct report_folder *f, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 report_folder_skip(struct report_folder *f, const char *reason);
/* Left behind by the plan for a reason that is no rule (a name that does
 * not decode): no destination, a failed folder whose src_count, when
 * known, is missing; the verdict names it ("folder X (12 messages) not
 * copied: name is not valid modified UTF-7") and the pass exits 1. */
void	 report_folder_not_copied(struct report_folder *f,
	    const char *reason);

/* A message not copied: counts it (failed or policy) and keeps it. */
void	 report_problem(struct report_folder *f, enum report_problem_kind kind,
	    uint64_t uid, const char *subject, uint64_t size,
	    const char *reason);

void	 report_folder_totals(const struct report_folder *f,
	    struct report_totals *t);
void	 report_account_totals(const struct report_account *a,
	    struct report_totals *t);
void	 report_totals(const struct report *r, struct report_totals *t);

int	 report_folder_complete(const struct report_folder *f);
int	 report_account_complete(const struct report_account *a);
/* 1 when anything is missing or failed: exit status 1 (DESIGN.md §8) */
int	 report_missing(const struct report *r);

/* One-line verdicts (snprintf semantics), e.g. "all 1255 messages of
 * the source are on the destination (30 copied, 1221 already there, 4
 * skipped as duplicates)". */
int	 report_account_verdict(const struct report_account *a, char *buf,
	    size_t len);
int	 report_verdict(const struct report *r, char *buf, size_t len);

/* The writers: 0, or -1 on a write error. */
int	 report_write_text(const struct report *r, FILE *fp);
int	 report_write_json(const struct report *r, FILE *fp, int pretty);

/*
 * The progress line, for a terminal (TTY: short, no newline, meant to
 * be redrawn after "\r") or for the log (LOG: key=value).  Totals of 0
 * are unknown; a rate <= 0 is replaced by the average over elapsed.
 * The ETA comes from bytes when their total is known, else messages.
 */
struct report_progress {
	uint64_t	 accounts_done, accounts_total;
	uint64_t	 folders_done, folders_total;
	uint64_t	 msgs_done, msgs_total;
	uint64_t	 bytes_done, bytes_total;
	double		 elapsed;	/* seconds since the pass began */
	double		 msgs_rate;	/* messages/s now, <= 0: average */
	double		 bytes_rate;	/* bytes/s now, <= 0: average */
};

#define REPORT_PROGRESS_TTY	0
#define REPORT_PROGRESS_LOG	1

int	 report_progress_format(const struct report_progress *p, int style,
	    char *buf, size_t len);

/* Helpers shared with ferryctl sync: "12.3 MB", "4m05s", display width. */
int	 report_fmt_bytes(uint64_t bytes, char *buf, size_t len);
int	 report_fmt_duration(double seconds, char *buf, size_t len);
size_t	 report_text_width(const char *s);

#endif
