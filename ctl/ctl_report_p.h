/*
 * ctl_report_p.h - `ferryctl report`, the acceptance report: what the
 * files share.
 *
 *   ctl_report.c          options, the output file (a temporary file
 *                         renamed into place), the renderer's choice
 *   ctl_report_gather.c   everything read from the store, per account:
 *                         the verification record (syncd/verify.h), the
 *                         pass history (common/pass_history.h), the
 *                         cutover record of the account's domain
 *                         (common/cutover_state.h), the relay's figures;
 *                         and the verdicts
 *   ctl_report_escape.c   text from the mail made safe for Markdown and
 *                         HTML
 *   ctl_report_json.c, ctl_report_md.c, ctl_report_html.c
 *                         one renderer each, from the gathered struct
 *
 * Ownership: struct rpt owns everything in it (rpt_free()).  Strings
 * from the verification record came from the mail (subjects, from):
 * every renderer escapes them for its format.
 */
#ifndef FERRY_CTL_REPORT_P_H
#define FERRY_CTL_REPORT_P_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "addr_stats.h"
#include "cutover_state.h"
#include "pass_history.h"

#define RPT_REASONS_MAX	16
#define RPT_TEXT_MAX	512

/* One folder of the verification record. */
struct rpt_folder {
	char		*src, *dst, *error;	/* error NULL: read */
	uint64_t	 src_messages, dst_messages, src_bytes, dst_bytes;
	uint64_t	 missing, extra, different, policy;
};

/* One issue of the verification record (verify --json's objects). */
struct rpt_issue {
	char		*kind, *folder, *what;
	char		*internaldate, *date, *from, *subject;
	uint64_t	 uid, dst_uid, size;
	int		 has_msg;	/* the message fields are there */
};

/* The account's latest verification record. */
struct rpt_verify {
	int64_t		 time;
	char		*verdict;	/* "complete" | "incomplete" */
	int		 deep;
	uint64_t	 src_messages, dst_messages, missing, extra;
	uint64_t	 different, policy, src_bytes, dst_bytes;
	char		*digest;	/* hex, NULL: none */
	struct rpt_folder *f;
	size_t		 nf, af;
	uint64_t	 folders_omitted;
	struct rpt_issue *is;
	size_t		 nis, ais;
	uint64_t	 issues_omitted;
};

/* The relay's figures (addr_stats.h), for one address or summed. */
struct rpt_relay {
	int		 known;		/* 0: no store to read them from */
	uint64_t	 received, forwarded, duplicates, bounced;
	int64_t		 last;		/* last change, 0: never */
};

/* One address of an account: src_user and dst_user when they are
 * addresses, else the user at the account's [cutover] domain. */
#define RPT_ADDRS_MAX	4
struct rpt_addr {
	char		 addr[ADDR_STATS_ADDR_MAX + 1];
	struct rpt_relay r;
};

struct rpt_acct {
	char		*src_user, *dst_user;	/* owned copies */
	char		 domain[CUTOVER_DOMAIN_MAX + 1];  /* "" : none */
	struct rpt_verify *v;		/* NULL: never verified */
	struct pass_history *ph;	/* NULL: no pass recorded */
	struct cutover_record *cut;	/* NULL: no record */
	struct rpt_addr	 addr[RPT_ADDRS_MAX];
	size_t		 naddr;
	struct rpt_relay relay;		/* summed over addr[] */
	int		 accepted;
	size_t		 nreasons;
	char		 reasons[RPT_REASONS_MAX][RPT_TEXT_MAX];
};

struct rpt {
	int64_t		 generated;
	const char	*config_path;
	struct rpt_acct	*a;
	size_t		 n;
	/* the totals over every account shown */
	uint64_t	 src_messages, dst_messages, missing, extra;
	uint64_t	 different, policy, src_bytes, dst_bytes;
	uint64_t	 passes, copied, failed;
	size_t		 verified, accepted;
	char		 digest[2 * 32 + 1];	/* over the accounts' digests,
						   "" when one has none */
	struct rpt_relay relay;		/* summed */
	uint64_t	 relay_overflow;	/* messages for addresses past
					   the relay's bound: not counted */
};

struct ctl;

/* ctl_report_gather.c: 0, or EXIT_USAGE / EXIT_RUNTIME with the error
 * printed (an unknown account, an unreadable store or record). */
int	rpt_gather(const struct ctl *ctl, const char *account, struct rpt *r);
void	rpt_free(struct rpt *r);

/* ctl_report_escape.c: each writes s escaped to fp; -1 on a write
 * error.  md: inline text (a table cell or a line); control characters
 * become \xNN in both. */
int	rpt_md_text(FILE *fp, const char *s);
int	rpt_html_text(FILE *fp, const char *s);

/* the renderers: 0, or -1 on a write error */
int	rpt_render_json(FILE *fp, const struct rpt *r);
int	rpt_render_md(FILE *fp, const struct rpt *r);
int	rpt_render_html(FILE *fp, const struct rpt *r);

/* rpt_time - RFC 3339 UTC, "never" for 0 */
const char *rpt_time(char *buf, size_t len, int64_t t);

#endif
