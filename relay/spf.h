/*
 * spf.h - SPF (RFC 7208) verdicts for ferry-relay, computed by libspf2 on
 * a small pool of worker threads so the libevent loop never blocks.
 *
 * Use (all on the loop's thread):
 *
 *   struct spf_checker *chk;
 *   spf_checker_new(&chk, base, resolver, 4, "oldmx.example.net", err, len);
 *   ...
 *   spf_check(chk, (struct sockaddr *)&peer, helo, mail_from, done, sess,
 *       &sess->spf_id);            // at MAIL FROM (or at DATA, as you like)
 *   ...
 *   static void done(const struct spf_result *r, void *arg) {
 *       // on the loop; r is valid only during the call: copy what you keep
 *       char ar[512];
 *       spf_authres(r, ar, sizeof(ar));  // "spf=pass (...) smtp.mailfrom=..."
 *   }
 *   ...
 *   spf_cancel(chk, sess->spf_id);   // the session went away first
 *   spf_checker_free(&chk);          // at shutdown
 *
 * Contract of a check: spf_check() returns 0 and its callback then runs
 * exactly once, on the loop and never from inside spf_check(), unless
 * spf_cancel() or spf_checker_free() comes first (then never).  On -1
 * nothing was started and no callback will run.  A callback may call
 * spf_check(), spf_cancel() (also for other checks) and even
 * spf_checker_free().
 *
 * What is checked (RFC 7208 section 2.3/2.4): the MAIL FROM identity when
 * mail_from is an address; when mail_from is "" (the null path <>), the
 * HELO identity, i.e. "postmaster@<helo>".  An identity whose domain is
 * not a multi-label domain name (an address literal, a bare word) gets
 * "none" without any DNS traffic (section 4.3).  A loopback client is
 * evaluated like any other address: libspf2's "localhost is always
 * allowed" free ride is not used, so tests on 127.0.0.1 see real verdicts.
 *
 * DNS: every look-up goes through common/dns (dns_lookup_sync() on the
 * worker threads, so the resolver's per-look-up timeout and its TTL cache
 * apply).  A timeout, SERVFAIL or malformed answer anywhere in the
 * evaluation makes the verdict temperror, never none or neutral; so does
 * an internal libspf2 error (its error handler is replaced: nothing in
 * libspf2 can abort() the daemon).  The "ptr" mechanism and the %{p}
 * macro use PTR look-ups and accept only forward-confirmed names
 * (section 5.5).  On top of libspf2 (see spf.c): redirect= is ignored in
 * a record with an "all" mechanism and applies only after every
 * mechanism (6.1); two redirect= or exp= modifiers are a permerror (6);
 * more than 10 DNS-querying terms over the whole check (includes and
 * redirects count), more than 2 void look-ups or more than 10 MX names
 * are a permerror (4.6.4).  exp= is never looked up: the explanation is
 * not used.
 * A whole check is bounded by spf_checker_set_timeout() (default
 * SPF_TIMEOUT_DEFAULT_MS): look-ups that would start after it are
 * answered as temporary failures.
 *
 * Threading: every function here runs on the loop's thread, except
 * spf_authres() and the name helpers (pure, any thread).  The loop must
 * keep running while checks are outstanding: dns_lookup_sync() needs it.
 * The event_base does not need evthread_use_pthreads(): results come back
 * through a pipe watched by the loop.
 */
#ifndef FERRY_SPF_H
#define FERRY_SPF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns.h"

struct event_base;
struct SPF_dns_server_struct;		/* libspf2's SPF_dns_server_t */
struct spf_checker;

/* RFC 7208 section 2.6 results; spf_verdict_name() gives the RFC 8601
 * result word. */
enum spf_verdict {
	SPF_VERDICT_NONE,
	SPF_VERDICT_NEUTRAL,
	SPF_VERDICT_PASS,
	SPF_VERDICT_FAIL,
	SPF_VERDICT_SOFTFAIL,
	SPF_VERDICT_TEMPERROR,
	SPF_VERDICT_PERMERROR
};

/* Which identity was checked: RFC 8601 ptype.property smtp.mailfrom or
 * smtp.helo. */
enum spf_identity {
	SPF_ID_MAILFROM,
	SPF_ID_HELO
};

#define SPF_SENDER_MAX		320	/* local-part@domain, truncated */
#define SPF_DOMAIN_MAX		256
#define SPF_EXPLAIN_MAX		256
#define SPF_TIMEOUT_DEFAULT_MS	20000	/* RFC 7208 4.6.4: at least 20 s */
#define SPF_WORKERS_MAX		64
#define SPF_QUEUE_MAX		4096	/* checks waiting for a worker */

/*
 * The outcome of one check.  Strings are NUL-terminated; sender, domain
 * and explanation hold peer-supplied text made printable (bytes outside
 * printable ASCII appear as "\xHH"), but may contain any printable
 * character: spf_authres() does the RFC 8601 quoting.
 *   sender       the identity as evaluated: the MAIL FROM address, or
 *                "postmaster@<helo>" for SPF_ID_HELO
 *   domain       its domain: smtp.mailfrom=<domain> / smtp.helo=<helo>
 *   client       the client address checked, text form
 *   explanation  a short reason for the A-R comment, e.g. "domain of
 *                x@example.com designates 192.0.2.1 as permitted sender"
 */
struct spf_result {
	enum spf_verdict	 verdict;
	enum spf_identity	 identity;
	char			 sender[SPF_SENDER_MAX];
	char			 domain[SPF_DOMAIN_MAX];
	char			 client[48];
	char			 explanation[SPF_EXPLAIN_MAX];
};

/* A check's callback, on the loop; r is valid only during the call. */
typedef void spf_cb(const struct spf_result *r, void *arg);

/*
 * spf_checker_new - a checker with nworkers threads (1..SPF_WORKERS_MAX)
 * whose look-ups go to resolver (which must outlive the checker and be
 * bound to the same base).  hostname is our receiving host name (libspf2's
 * rec_dom, the %{r} macro).  Installs libspf2's process-wide message
 * handlers (see spf.c).  0 and *chk_r set, or -1 with err filled.
 */
int	spf_checker_new(struct spf_checker **chk_r, struct event_base *base,
	    struct dns_resolver *resolver, int nworkers, const char *hostname,
	    char *err, size_t errlen);

/*
 * spf_dns_fn - where the checker's DNS layer gets its answers; the shape
 * of dns_lookup_sync() (see dns.h for the meaning of every field), with
 * an opaque first argument.  Called on worker threads, concurrently.
 * Returning -1 means "out of memory": the check ends as temperror.
 */
typedef int spf_dns_fn(void *ctx, const char *name, enum dns_type type,
    struct dns_result **res_r, int *status_r);

/*
 * spf_checker_new_with - the same, with another DNS source, for tests:
 * either fn/fn_ctx (a fake resolver: each answer goes through our
 * libspf2 DNS layer exactly like a real one), or a libspf2 DNS layer
 * (e.g. SPF_dns_zone_new() filled with SPF_dns_zone_add_str()), which
 * the checker then owns and frees (also on failure).  Give exactly one.
 */
int	spf_checker_new_with(struct spf_checker **chk_r,
	    struct event_base *base, spf_dns_fn *fn, void *fn_ctx,
	    struct SPF_dns_server_struct *layer, int nworkers,
	    const char *hostname, char *err, size_t errlen);

/* spf_checker_set_timeout - the time budget of one check (ms, > 0) */
void	spf_checker_set_timeout(struct spf_checker *chk, int timeout_ms);

/*
 * spf_check - start checking a message from client (AF_INET or AF_INET6;
 * IPv4-mapped IPv6 counts as IPv4) that said HELO/EHLO helo and MAIL
 * FROM:<mail_from> (without the angle brackets; "" for <>).  The strings
 * are copied.  0: started, *id_r (may be NULL) names it for
 * spf_cancel(); -1: not started (errno EINVAL: bad argument, EAGAIN:
 * SPF_QUEUE_MAX checks already waiting, ENOMEM).
 */
int	spf_check(struct spf_checker *chk, const struct sockaddr *client,
	    const char *helo, const char *mail_from, spf_cb *cb, void *arg,
	    uint64_t *id_r);

/*
 * spf_cancel - forget a check: its callback will never run.  A check
 * still waiting for a worker is dropped at once; a running one finishes
 * early (its remaining look-ups fail fast) and is discarded.  Unknown or
 * finished ids are ignored.  0 if the check was pending, else -1.
 */
int	spf_cancel(struct spf_checker *chk, uint64_t id);

/* spf_pending - checks started and not yet called back or cancelled */
size_t	spf_pending(const struct spf_checker *chk);

/*
 * spf_checker_free - cancel every check (no callback runs), stop and join
 * the workers, free everything; *chk_r becomes NULL, NULL is fine.  A
 * worker in the middle of a look-up finishes it first, and that look-up
 * needs the loop we are blocking, so this may block for up to one
 * resolver timeout (shutdown only).  May be called from a check's
 * callback.  Free the checker before its resolver.
 */
void	spf_checker_free(struct spf_checker **chk_r);

/*
 * spf_authres - the SPF part of an Authentication-Results header (RFC
 * 8601), e.g. "spf=pass (domain of x@example.com designates 192.0.2.1 as
 * permitted sender) smtp.mailfrom=example.com", or "... smtp.helo=...".
 * The comment is escaped and the value quoted when it is not a token.
 * Returns the length written, or -1 (buf set to "" when len > 0) if it
 * does not fit.
 */
int	spf_authres(const struct spf_result *r, char *buf, size_t len);

const char *spf_verdict_name(enum spf_verdict v);	/* "pass", ... */
const char *spf_identity_name(enum spf_identity id);	/* "mailfrom"/"helo" */

#endif
