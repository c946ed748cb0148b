/*
 * ctl_preflight_p.h - what the files of "ferryctl preflight" share.
 *
 *   ctl_preflight.c         the command: options, the run, the tables,
 *                           the verdict, text and JSON output
 *   ctl_preflight_server.c  one server's TCP, TLS, certificate and
 *                           CAPABILITY, before any login
 *   ctl_preflight_imap.c    every account on both sides through
 *                           syncd's IMAP client: credentials, folders,
 *                           sizes, quota, APPENDLIMIT, the folder plan,
 *                           and the connection limit probe
 *   ctl_preflight_dns.c     per [cutover] domain: MX and TTL from each
 *                           resolver, SPF, DMARC, DKIM selectors
 *
 * Everything is read-only on both servers: LIST, STATUS, EXAMINE, UID
 * FETCH of RFC822.SIZE, GETQUOTAROOT, LOGOUT.  Nothing is created,
 * selected read-write, flagged or appended.
 *
 * Each check ends as rows of a table, each row with a level: ok, warn
 * (printed, not counted against the cutover) or block (counted in the
 * verdict line).  A check that cannot finish (host unreachable, wrong
 * password, a server that stops answering, a DNS timeout) says so in its
 * row within the timeout; it never stops the other checks.
 *
 * Secrets: passwords and tokens go to the IMAP client only (which wipes
 * its copy after use); no row, log line or JSON value holds one.
 *
 * Ownership: struct preflight owns its tables and every string in them;
 * the rows copy what they are given.
 */
#ifndef FERRY_CTL_PREFLIGHT_P_H
#define FERRY_CTL_PREFLIGHT_P_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config.h"

struct accounts;
struct event_base;

enum pf_level { PF_OK = 0, PF_WARN, PF_BLOCK };

enum pf_table_id {
	PF_T_SERVERS = 0,
	PF_T_CREDS,
	PF_T_ACCOUNTS,
	PF_T_SPECIAL,
	PF_T_FOLDERS,
	PF_T_CONNS,
	PF_T_MX,
	PF_T_RECORDS,
	PF_T_COUNT_
};

#define PF_COLS_MAX	12	/* a column named "_x" is JSON only, as a
				   number "x" (exact bytes behind "1.1M") */

/* One section's table: nrows rows of ncols cells (owned strings). */
struct pf_table {
	const char	*name;		/* JSON key, e.g. "servers" */
	const char	*title;		/* heading of the text table */
	const char	*cols[PF_COLS_MAX];
	size_t		 ncols;
	char		**cells;	/* row-major, nrows * ncols */
	enum pf_level	*levels;
	size_t		 nrows, cap;
	int		 oom;
};

struct preflight {
	const struct config *cfg;
	const struct accounts *accts;
	const char	*only;		/* --account: that source user only */
	int		 timeout;	/* seconds per network step */
	SSL_CTX		*ssl_ctx;
	struct event_base *base;
	struct pf_table	 t[PF_T_COUNT_];
};

/* ctl_preflight.c: add a row of t->ncols cells (NULL = ""). */
void	pf_row(struct preflight *pf, enum pf_table_id id, enum pf_level lv,
	    ...);
/* a printf-formatted cell in a caller's buffer */
const char *pf_fmt(char *buf, size_t len, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
const char *pf_size(char *buf, size_t len, uint64_t n);

/* ctl_preflight_server.c: both servers' rows in PF_T_SERVERS */
void	pf_servers(struct preflight *pf);

/* ctl_preflight_imap.c: PF_T_CREDS .. PF_T_CONNS */
int	pf_accounts(struct preflight *pf, char *err, size_t errlen);

/* ctl_preflight_dns.c: PF_T_MX and PF_T_RECORDS */
void	pf_dns(struct preflight *pf);

#endif
