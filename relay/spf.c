/*
 * spf.c - SPF verdicts with libspf2 on a worker pool (see spf.h).
 *
 * Shape: spf_check() copies its arguments into a struct spf_job and
 * queues it; one of nworkers threads takes it, runs libspf2 (which is
 * synchronous) and puts the job on the done list; the first job put on
 * an empty done list wakes the loop (common/wakeup.h), which calls the
 * callbacks.
 *
 * DNS: libspf2 asks a DNS "layer" (SPF_dns_server_t) for TXT, A, AAAA,
 * MX and PTR records and reads its answers from an SPF_dns_rr_t.  Ours,
 * layer_lookup(), is a custom layer that asks common/dns with
 * dns_lookup_sync() (one libunbound context and cache for the whole
 * relay, the configured forwarder, the per-look-up timeout) and builds
 * the SPF_dns_rr_t with libspf2's own SPF_dns_rr_new_init() /
 * SPF_dns_rr_buf_realloc(), so libspf2 frees it normally.  Statuses map
 * to the h_errno values libspf2 expects: NXDOMAIN -> HOST_NOT_FOUND,
 * NODATA -> NO_DATA, TEMPFAIL and PERMFAIL (timeout, SERVFAIL, malformed
 * answer) -> TRY_AGAIN, which libspf2 turns into temperror everywhere but
 * in its top-level record look-up (see below).  PTR look-ups (the ptr
 * mechanism and %{p}, which libspf2 validates by asking the names' A or
 * AAAA) go to common/dns too; the obsolete type-99 SPF record is
 * answered NO_DATA without traffic.
 *
 * libspf2 quirks handled here (Debian 12, libspf2 1.2.10):
 *  - A temporary DNS failure on the sender domain's own TXT look-up
 *    comes back as result "invalid" (SPF_RESULT_INVALID, err
 *    SPF_E_DNS_ERROR) with no header comment: mapped to temperror.  Any
 *    other "invalid" is none when libspf2 only found no SPF record
 *    (SPF_E_NOT_SPF and no other error), permerror when the record did
 *    not compile (the compiler's error is in the response), temperror
 *    otherwise: never none or neutral by accident.
 *  - SPF_request_query_mailfrom() gives loopback clients a free "pass";
 *    we run its two steps (SPF_server_get_record(), then
 *    SPF_record_interpret()) ourselves without that shortcut.
 *  - SPF_error() ends in a handler declared noreturn whose default calls
 *    abort().  Ours logs the message and longjmp()s back to the guard
 *    around the libspf2 call on that thread (every call is guarded), so
 *    the check ends as temperror; memory libspf2 had in flight at that
 *    moment may leak (only on out-of-memory or a library bug).  Warning,
 *    info and debug messages go to our log at debug level.
 *  - RFC 7208 rules libspf2 does not apply are applied here, in the
 *    layer, by spf_record.c (spf_p.h): each SPF record is pre-checked
 *    before libspf2 compiles it (redirect= beside all dropped, redirect=
 *    moved last, exp= dropped, two redirect=/exp= or "a:" a permerror,
 *    %{xN} spelled so libspf2 expands it right), and the look-ups of the
 *    whole check are tallied (10 DNS terms over includes and redirects,
 *    2 void look-ups, 10 MX names; PTR names past 10 are dropped).  A
 *    rule broken makes this and every later look-up TRY_AGAIN, so
 *    libspf2 stops, and map_result() turns the check into permerror.
 *  - The default local policy ("include:spf.trusted-forwarder.org") is
 *    disabled and the default explanation, a macro string, is replaced by
 *    a plain one: fewer macro expansions (CVE-2023-42118 is in macro
 *    expansion and Debian's 1.2.10 lacks its fix).
 *
 * SECURITY: SPF records, the HELO name and MAIL FROM come from the
 * network.  libspf2 parses the records (keep it patched; see the CVE
 * note above); look-ups are capped by the tallies above (10 DNS terms,
 * 2 void look-ups, 10 MX and PTR names per term) and by the per-check
 * time budget.  Text copied into a
 * struct spf_result is made printable here, and spf_authres() quotes it
 * for the header.  libspf2 keeps no secrets of ours.
 *
 * Ownership and threading: the checker and its jobs are owned by the
 * loop's thread.  A job belongs to exactly one place at a time: the
 * queue (under mu), a worker (running), the done list (under mu) or the
 * loop's delivery batch; the "live" list is only an index for
 * spf_cancel() and is touched on the loop only.  Workers block every
 * signal.  The SPF_server_t is shared by the workers: libspf2 only reads
 * it during checks.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netdb.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <spf2/spf.h>

#include "dns.h"
#include "log.h"
#include "spf.h"
#include "spf_p.h"
#include "util.h"
#include "wakeup.h"

/* What libspf2 explains a fail with when a record has no exp=: a plain
 * string, so no macro expansion happens for it. */
#define SPF_PLAIN_EXP	"SPF check failed"

/*
 * struct spf_guard - where SPF_error() returns to on this thread.  Set
 * around every call into libspf2; msg receives the library's message.
 */
struct spf_guard {
	jmp_buf		 jb;
	char		 msg[160];
};

static __thread struct spf_guard *tls_guard;
static __thread struct spf_job *tls_job;	/* the job this worker runs */

enum job_state {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_DONE
};

struct spf_job {
	TAILQ_ENTRY(spf_job)	 qentry;	/* queue or done (under mu) */
	TAILQ_ENTRY(spf_job)	 lentry;	/* live (loop only) */
	struct spf_checker	*chk;
	uint64_t		 id;
	spf_cb			*cb;
	void			*arg;
	int			 state;		/* enum job_state, under mu */
	int			 linked;	/* in live (loop only) */
	atomic_int		 cancelled;
	struct timespec		 deadline;	/* CLOCK_MONOTONIC */
	/* input */
	int			 family;
	struct in_addr		 v4;
	struct in6_addr		 v6;
	char			*helo;
	char			*mail_from;
	/* the worker's scratch while it runs the job */
	struct spf_guard	 guard;
	SPF_request_t		*req;
	SPF_response_t		*resp;
	SPF_record_t		*rec;
	int			 tempfail;	/* a look-up failed temporarily */
	char			 tempfail_why[128];
	/* RFC 7208 rules enforced in the layer (spf_p.h): once permerror
	 * is set every further look-up fails, libspf2 stops, and the
	 * verdict is permerror whatever libspf2 says. */
	struct spf_count	 count;
	int			 permerror;
	char			 permerror_why[128];
	/* output */
	struct spf_result	 res;
};

TAILQ_HEAD(spf_job_list, spf_job);

struct spf_checker {
	struct event_base	*base;
	struct wakeup		*wake;		/* done list: empty -> not */
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct spf_job_list	 queue;		/* under mu */
	struct spf_job_list	 done;		/* under mu */
	size_t			 nqueued;	/* under mu */
	atomic_int		 stopping;	/* set under mu */
	pthread_t		*threads;
	int			 nthreads;
	int			 sync_ok;	/* mu and cv initialised */
	/* loop only */
	struct spf_job_list	 live;
	size_t			 nlive;
	uint64_t		 next_id;
	int			 depth;		/* > 0 while calling back */
	int			 dying;		/* freed from a callback */
	int			 timeout_ms;
	/* libspf2 */
	SPF_server_t		*server;
	SPF_dns_server_t	*layer;		/* the layer we free */
	spf_dns_fn		*fn;
	void			*fn_ctx;
	char			 hostname[SPF_DOMAIN_MAX];
};

static void	checker_destroy(struct spf_checker *chk);

/* --- libspf2's message handlers ---------------------------------------- */

static void lib_error(const char *file, int line, const char *msg)
    __attribute__((noreturn));

/*
 * lib_error - replaces libspf2's SPF_error_handler (which must not
 * return).  Back to the guard of this thread's libspf2 call.
 */
static void
lib_error(const char *file, int line, const char *msg)
{
	struct spf_guard *g = tls_guard;

	log_warnx("spf: libspf2 error: %s (%s:%d)", msg ? msg : "?",
	    file ? file : "?", line);
	if (g != NULL) {
		tls_guard = NULL;
		str_copy(g->msg, msg ? msg : "?", sizeof(g->msg));
		longjmp(g->jb, 1);
	}
	/* Unreachable by construction: every libspf2 call is guarded.  Not
	 * abort(): end this thread only. */
	log_errorx("spf: libspf2 error outside a guarded call; thread ends");
	pthread_exit(NULL);
}

static void
lib_warning(const char *file, int line, const char *msg)
{
	log_debug("spf: libspf2 warning: %s (%s:%d)", msg ? msg : "?",
	    file ? file : "?", line);
}

static void
lib_info(const char *file, int line, const char *msg)
{
	log_debug("spf: libspf2 info: %s (%s:%d)", msg ? msg : "?",
	    file ? file : "?", line);
}

static void
lib_debug(const char *file, int line, const char *msg)
{
	log_debug("spf: libspf2 debug: %s (%s:%d)", msg ? msg : "?",
	    file ? file : "?", line);
}

static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

/* handlers_install - libspf2's handlers are process-wide variables */
static void
handlers_install(void)
{
	SPF_error_handler = lib_error;
	SPF_warning_handler = lib_warning;
	SPF_info_handler = lib_info;
	SPF_debug_handler = lib_debug;
}

/* --- names and text ------------------------------------------------------ */

/* printable - peer text into dst, bytes outside printable ASCII as \xHH */
static void
printable(char *dst, size_t dstlen, const char *src)
{
	str_printable(dst, dstlen, src, strlen(src));
}

static void
explain(struct spf_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
explain(struct spf_result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->explanation, sizeof(r->explanation), fmt, ap);
	va_end(ap);
}

/*
 * explain_verdict - the A-R comment for r->verdict.  detail (may be
 * NULL) says why for the error verdicts.  Wording after RFC 7208's
 * examples and libspf2's Received-SPF comments.
 */
static void
explain_verdict(struct spf_result *r, const char *detail)
{
	const char *who = r->identity == SPF_ID_HELO ? r->domain : r->sender;
	char why[128];

	printable(why, sizeof(why), detail ? detail : "");
	switch (r->verdict) {
	case SPF_VERDICT_PASS:
		explain(r, "domain of %s designates %s as permitted sender",
		    who, r->client);
		break;
	case SPF_VERDICT_FAIL:
		explain(r, "domain of %s does not designate %s as permitted "
		    "sender", who, r->client);
		break;
	case SPF_VERDICT_SOFTFAIL:
		explain(r, "transitioning domain of %s does not designate %s "
		    "as permitted sender", who, r->client);
		break;
	case SPF_VERDICT_NEUTRAL:
		explain(r, "%s is neither permitted nor denied by domain of %s",
		    r->client, who);
		break;
	case SPF_VERDICT_NONE:
		if (why[0] != '\0')
			explain(r, "%s", why);
		else
			explain(r, "domain of %s does not publish an SPF record",
			    who);
		break;
	case SPF_VERDICT_TEMPERROR:
		explain(r, "temporary error checking %s%s%s", who,
		    why[0] ? ": " : "", why);
		break;
	case SPF_VERDICT_PERMERROR:
		explain(r, "permanent error in the SPF record of %s%s%s", who,
		    why[0] ? ": " : "", why);
		break;
	}
}

/* --- the DNS layer ------------------------------------------------------- */

/* job_expired - the check ran out of its budget, or nobody waits for it */
static int
job_expired(struct spf_job *job, const char **why_r)
{
	struct timespec now;

	if (atomic_load(&job->cancelled) ||
	    atomic_load(&job->chk->stopping)) {
		*why_r = "check cancelled";
		return (1);
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec > job->deadline.tv_sec ||
	    (now.tv_sec == job->deadline.tv_sec &&
	    now.tv_nsec >= job->deadline.tv_nsec)) {
		*why_r = "check timed out";
		return (1);
	}
	return (0);
}

static void
job_tempfail(struct spf_job *job, const char *name, ns_type type,
    const char *why)
{
	if (job == NULL || job->tempfail)
		return;
	job->tempfail = 1;
	/* (errbuf_set: truncation is fine here) */
	errbuf_set(job->tempfail_why, sizeof(job->tempfail_why), "%s %s: %s",
	    SPF_strrrtype(type), name, why);
}

static void
job_permerror(struct spf_job *job, const char *why)
{
	if (job == NULL || job->permerror)
		return;
	job->permerror = 1;
	str_copy(job->permerror_why, why, sizeof(job->permerror_why));
}

/*
 * struct macro_vals - text behind a struct spf_macro_env: the values of
 * %{s}, %{l}, %{o}, %{h}, %{i} and %{v} for one job (section 7.3).
 */
struct macro_vals {
	char		 s[SPF_SENDER_MAX + 16];
	char		 l[SPF_SENDER_MAX + 16];
	char		 i[72];
};

/* macro_env - env for a record of domain d, checked by job */
static void
macro_env(const struct spf_job *job, const char *d, struct macro_vals *mv,
    struct spf_macro_env *env)
{
	const char *at;
	int k, o = 0;

	memset(env, 0, sizeof(*env));
	if (job->mail_from[0] != '\0')
		str_copy(mv->s, job->mail_from, sizeof(mv->s));
	else
		snprintf(mv->s, sizeof(mv->s), "postmaster@%s", job->helo);
	str_copy(mv->l, mv->s, sizeof(mv->l));
	if ((at = strrchr(mv->s, '@')) == NULL)
		return;		/* cannot happen: leave every value unknown */
	mv->l[at - mv->s] = '\0';
	if (job->family == AF_INET)
		inet_ntop(AF_INET, &job->v4, mv->i, sizeof(mv->i));
	else
		for (k = 0; k < 16; k++)
			o += snprintf(mv->i + o, sizeof(mv->i) - (size_t)o,
			    "%s%x.%x", k ? "." : "", job->v6.s6_addr[k] >> 4,
			    job->v6.s6_addr[k] & 0xf);
	env->v['d' - 'a'] = d;
	env->v['s' - 'a'] = mv->s;
	env->v['l' - 'a'] = mv->l;
	env->v['o' - 'a'] = at + 1;
	env->v['h' - 'a'] = job->helo[0] != '\0' ? job->helo : "unknown";
	env->v['i' - 'a'] = mv->i;
	env->v['v' - 'a'] = job->family == AF_INET ? "in-addr" : "ip6";
}

/*
 * txt_fill - one TXT string of domain into rr slot n, through the record
 * pre-check (spf_p.h); -1 on out of memory, -2 when the record is a
 * permerror (job->permerror set).
 */
static int
txt_fill(struct spf_job *job, SPF_dns_rr_t *rr, int n, const char *domain,
    const struct dns_txt *t)
{
	struct spf_macro_env env;
	struct macro_vals mv;
	char why[128], *d, *out;
	size_t k;
	int rc = 0;

	if (SPF_dns_rr_buf_realloc(rr, n, t->len + 1) != SPF_E_SUCCESS)
		return (-1);
	d = rr->rr[n]->txt;
	for (k = 0; k < t->len; k++)
		d[k] = t->data[k] ? (char)t->data[k] : '\x7f';
	d[t->len] = '\0';
	if (!spf_is_record(d))
		return (0);
	if ((out = malloc(SPF_PRE_OUTLEN(t->len))) == NULL)
		return (-1);
	if (job != NULL)
		macro_env(job, domain, &mv, &env);
	switch (spf_record_precheck(d, job != NULL ? &env : NULL, out,
	    SPF_PRE_OUTLEN(t->len), why, sizeof(why))) {
	case SPF_PRE_KEEP:
		break;
	case SPF_PRE_REWRITTEN:
		k = strlen(out);
		if (k > t->len && SPF_dns_rr_buf_realloc(rr, n, k + 1) !=
		    SPF_E_SUCCESS) {
			rc = -1;
			break;
		}
		memcpy(rr->rr[n]->txt, out, k + 1);
		break;
	case SPF_PRE_PERMERROR:
		job_permerror(job, why);
		rc = -2;
		break;
	}
	free(out);
	return (rc);
}

/*
 * rr_fill - copy a DNS_OK answer into rr (rr_type already set); -1 on
 * out of memory, -2 when an SPF record in it is a permerror.  TXT:
 * libspf2 wants a C string, so a NUL inside a TXT record becomes DEL,
 * which no SPF record may contain (the record then fails to compile
 * instead of being cut short).  PTR: the first SPF_NAMES_MAX names only
 * (RFC 7208 4.6.4: the rest MUST be ignored; libspf2 would permerror).
 */
static int
rr_fill(struct spf_job *job, SPF_dns_rr_t *rr, const char *domain,
    const struct dns_result *res)
{
	size_t i;
	int n = 0, rc;

	for (i = 0; i < res->count && n < INT16_MAX; i++) {
		switch (rr->rr_type) {
		case ns_t_a:
		case ns_t_aaaa: {
			const struct sockaddr_storage *ss = &res->addr[i];

			if (rr->rr_type == ns_t_a && ss->ss_family == AF_INET) {
				if (SPF_dns_rr_buf_realloc(rr, n,
				    sizeof(struct in_addr)) != SPF_E_SUCCESS)
					return (-1);
				rr->rr[n++]->a = ((const struct sockaddr_in *)
				    (const void *)ss)->sin_addr;
			} else if (rr->rr_type == ns_t_aaaa &&
			    ss->ss_family == AF_INET6) {
				if (SPF_dns_rr_buf_realloc(rr, n,
				    sizeof(struct in6_addr)) != SPF_E_SUCCESS)
					return (-1);
				rr->rr[n++]->aaaa = ((const struct sockaddr_in6 *)
				    (const void *)ss)->sin6_addr;
			}
			break;
		}
		case ns_t_mx: {
			size_t l = strlen(res->mx[i].host);

			if (SPF_dns_rr_buf_realloc(rr, n, l + 1) !=
			    SPF_E_SUCCESS)
				return (-1);
			memcpy(rr->rr[n++]->mx, res->mx[i].host, l + 1);
			break;
		}
		case ns_t_txt:
			if ((rc = txt_fill(job, rr, n, domain, &res->txt[i])) != 0)
				return (rc);
			n++;
			break;
		case ns_t_ptr: {
			size_t l = strlen(res->ptr[i].host);

			if (n >= SPF_NAMES_MAX)
				break;
			if (SPF_dns_rr_buf_realloc(rr, n, l + 1) !=
			    SPF_E_SUCCESS)
				return (-1);
			memcpy(rr->rr[n++]->ptr, res->ptr[i].host, l + 1);
			break;
		}
		default:
			break;
		}
		rr->num_rr = n;
	}
	if (n == 0)
		rr->herrno = NO_DATA;
	return (0);
}

/*
 * layer_lookup - our SPF_dns_server_t.lookup: one question to common/dns
 * (or the test's function), answered as an SPF_dns_rr_t that libspf2
 * frees.  NULL only on out of memory (libspf2 then calls SPF_error()).
 */
static SPF_dns_rr_t *
layer_lookup(SPF_dns_server_t *layer, const char *domain, ns_type rr_type,
    int should_cache)
{
	struct spf_checker *chk = layer->hook;
	struct spf_job *job = tls_job;
	struct dns_result *res = NULL;
	SPF_dns_rr_t *rr;
	enum dns_type type;
	const char *why;
	char limit[128];
	int status, herrno, rc;

	/* common/dns caches by TTL; should_cache tells a %{p} look-up
	 * from the ptr mechanism's (spf_count_query()). */
	switch (rr_type) {
	case ns_t_a:	type = DNS_A;		break;
	case ns_t_aaaa:	type = DNS_AAAA;	break;
	case ns_t_mx:	type = DNS_MX;		break;
	case ns_t_txt:	type = DNS_TXT;		break;
	case ns_t_ptr:	type = DNS_PTR;		break;
	default:
		/* type 99 (obsolete): not asked (see the file comment) */
		return (SPF_dns_rr_new_init(layer, domain, rr_type, 0,
		    NO_DATA));
	}
	/* After a permerror every look-up fails, so libspf2 stops. */
	if (job != NULL && job->permerror)
		return (SPF_dns_rr_new_init(layer, domain, rr_type, 0,
		    TRY_AGAIN));
	/* A name no resolver could ask for (a bad macro expansion): no
	 * such name, as RFC 7208 4.3/4.6.4 would have it. */
	if (!dns_name_valid(domain))
		return (SPF_dns_rr_new_init(layer, domain, rr_type, 0,
		    HOST_NOT_FOUND));
	if (job != NULL && job_expired(job, &why)) {
		job_tempfail(job, domain, rr_type, why);
		return (SPF_dns_rr_new_init(layer, domain, rr_type, 0,
		    TRY_AGAIN));
	}
	if (job != NULL && spf_count_query(&job->count, type, domain,
	    should_cache, limit, sizeof(limit)) == -1) {
		job_permerror(job, limit);
		return (SPF_dns_rr_new_init(layer, domain, rr_type, 0,
		    TRY_AGAIN));
	}
	if (chk->fn(chk->fn_ctx, domain, type, &res, &status) == -1)
		return (NULL);
	if (job != NULL && spf_count_answer(&job->count, type, status, res,
	    limit, sizeof(limit)) == -1) {
		job_permerror(job, limit);
		dns_result_free(&res);
		return (SPF_dns_rr_new_init(layer, domain, rr_type, 0,
		    TRY_AGAIN));
	}
	switch (status) {
	case DNS_OK:		herrno = NETDB_SUCCESS;		break;
	case DNS_NXDOMAIN:	herrno = HOST_NOT_FOUND;	break;
	case DNS_NODATA:	herrno = NO_DATA;		break;
	default:
		/* TEMPFAIL (timeout, SERVFAIL...) and PERMFAIL (a malformed
		 * answer): never a reason to reject mail permanently. */
		herrno = TRY_AGAIN;
		job_tempfail(job, domain, rr_type,
		    res != NULL && res->why[0] ? res->why :
		    dns_status_name(status));
		break;
	}
	rr = SPF_dns_rr_new_init(layer, domain, rr_type,
	    res != NULL ? (int)(res->ttl > INT32_MAX ? INT32_MAX : res->ttl) :
	    0, herrno);
	if (rr != NULL && herrno == NETDB_SUCCESS && res != NULL &&
	    (rc = rr_fill(job, rr, domain, res)) != 0) {
		SPF_dns_rr_free(rr);
		rr = rc == -2 ? SPF_dns_rr_new_init(layer, domain, rr_type, 0,
		    TRY_AGAIN) : NULL;
	}
	dns_result_free(&res);
	return (rr);
}

/* layer_destroy - SPF_dns_free() of our layer: the struct only */
static void
layer_destroy(SPF_dns_server_t *layer)
{
	free(layer);
}

/* resolver_fn - the production spf_dns_fn: common/dns, blocking */
static int
resolver_fn(void *ctx, const char *name, enum dns_type type,
    struct dns_result **res_r, int *status_r)
{
	return (dns_lookup_sync(ctx, name, type, res_r, status_r));
}

/* --- one check, on a worker ---------------------------------------------- */

/*
 * identity_domain - the domain of the identity, or NULL when it has none
 * that could hold an SPF record (not a multi-label name of letters,
 * digits, "-" and "_", e.g. an address literal or a bare word): RFC 7208
 * 4.3 makes that "none".
 */
static const char *
identity_domain(const char *identity)
{
	const char *at = strrchr(identity, '@');
	const char *d = at != NULL ? at + 1 : identity;
	size_t i, len = strlen(d), dots = 0;

	if (len > 0 && d[len - 1] == '.')
		len--;		/* the root label */
	if (!dns_name_valid(d))
		return (NULL);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == '.')
			dots++;
		else if (!isalnum(c) && c != '-' && c != '_')
			return (NULL);
	}
	return (dots > 0 ? d : NULL);
}

/*
 * map_result - libspf2's result and error code (plus what our layer saw)
 * to a verdict; rc is what libspf2's last call returned.  *detail_r gets
 * a reason for the error verdicts.
 */
static enum spf_verdict
map_result(struct spf_job *job, SPF_response_t *resp, SPF_errcode_t rc,
    const char **detail_r)
{
	SPF_result_t result = SPF_response_result(resp);
	SPF_errcode_t err = SPF_response_errcode(resp);
	int i, n, other = -1;

	/* SPF_server_get_record() reports some failures only through its
	 * return code (SPF_response_add_error() leaves resp->err alone). */
	if (err == SPF_E_SUCCESS)
		err = rc;

	*detail_r = NULL;
	if (job->permerror) {
		*detail_r = job->permerror_why;
		return (SPF_VERDICT_PERMERROR);
	}
	switch (result) {
	case SPF_RESULT_PASS:		return (SPF_VERDICT_PASS);
	case SPF_RESULT_FAIL:		return (SPF_VERDICT_FAIL);
	case SPF_RESULT_SOFTFAIL:	return (SPF_VERDICT_SOFTFAIL);
	case SPF_RESULT_NEUTRAL:	return (SPF_VERDICT_NEUTRAL);
	case SPF_RESULT_NONE:
		return (SPF_VERDICT_NONE);
	case SPF_RESULT_TEMPERROR:
		*detail_r = job->tempfail ? job->tempfail_why :
		    SPF_strerror(err);
		return (SPF_VERDICT_TEMPERROR);
	case SPF_RESULT_PERMERROR:
		*detail_r = SPF_strerror(err);
		return (SPF_VERDICT_PERMERROR);
	case SPF_RESULT_INVALID:
	default:
		break;
	}
	/* "invalid": libspf2 stopped before evaluating a record. */
	if (job->tempfail || err == SPF_E_DNS_ERROR) {
		*detail_r = job->tempfail ? job->tempfail_why :
		    "DNS failure";
		return (SPF_VERDICT_TEMPERROR);
	}
	n = SPF_response_messages(resp);
	for (i = 0; i < n; i++) {
		SPF_error_t *e = SPF_response_message(resp, i);

		if (SPF_error_errorp(e) && SPF_error_code(e) != SPF_E_NOT_SPF &&
		    SPF_error_code(e) != SPF_E_SUCCESS) {
			other = i;
			break;
		}
	}
	if (err == SPF_E_NOT_SPF && other == -1)
		return (SPF_VERDICT_NONE);
	if (err == SPF_E_NOT_SPF && other >= 0) {
		/* the record did not compile: a syntax error */
		*detail_r = SPF_error_message(SPF_response_message(resp,
		    other));
		return (SPF_VERDICT_PERMERROR);
	}
	*detail_r = err != SPF_E_SUCCESS ? SPF_strerror(err) :
	    "unexpected libspf2 result";
	return (SPF_VERDICT_TEMPERROR);
}

/*
 * job_evaluate - libspf2 on one job; called under the job's guard, so
 * everything it allocates hangs off the job for job_run() to free.
 */
static void
job_evaluate(struct spf_checker *chk, struct spf_job *job, const char *domain)
{
	const char *detail = NULL;
	SPF_errcode_t err;

	if ((job->req = SPF_request_new(chk->server)) == NULL)
		goto oom;
	if (job->family == AF_INET)
		SPF_request_set_ipv4(job->req, job->v4);
	else
		SPF_request_set_ipv6(job->req, job->v6);
	/* %{h} must expand to something even if the client sent MAIL
	 * FROM without HELO (the SMTP server should not allow that). */
	if (SPF_request_set_helo_dom(job->req, job->helo[0] != '\0' ?
	    job->helo : "unknown") != SPF_E_SUCCESS)
		goto oom;
	/* "" with a HELO name: libspf2 checks postmaster@<helo>. */
	if (SPF_request_set_env_from(job->req, job->mail_from) != 0)
		goto oom;
	if ((job->resp = SPF_response_new(job->req)) == NULL)
		goto oom;
	/* SPF_request_query_mailfrom() minus its loopback shortcut. */
	job->req->use_helo = 0;
	job->req->cur_dom = job->req->env_from_dp;
	if (job->req->cur_dom == NULL || strcasecmp(job->req->cur_dom,
	    domain) != 0) {
		job->res.verdict = SPF_VERDICT_TEMPERROR;
		explain_verdict(&job->res, "libspf2 chose another domain");
		return;
	}
	err = SPF_server_get_record(chk->server, job->req, job->resp,
	    &job->rec);
	if (err == SPF_E_SUCCESS && job->rec != NULL) {
		job->resp->spf_record_exp = job->rec;
		err = SPF_record_interpret(job->rec, job->req, job->resp, 0);
	}
	job->res.verdict = map_result(job, job->resp, err, &detail);
	explain_verdict(&job->res, detail);
	return;
oom:
	job->res.verdict = SPF_VERDICT_TEMPERROR;
	explain_verdict(&job->res, "out of memory");
}

/* job_run - one check on a worker thread; fills job->res */
static void
job_run(struct spf_checker *chk, struct spf_job *job)
{
	struct spf_result *r = &job->res;
	const char *domain, *why;

	r->identity = job->mail_from[0] != '\0' ? SPF_ID_MAILFROM : SPF_ID_HELO;
	if (r->identity == SPF_ID_MAILFROM) {
		printable(r->sender, sizeof(r->sender), job->mail_from);
		domain = identity_domain(job->mail_from);
		printable(r->domain, sizeof(r->domain),
		    strrchr(job->mail_from, '@') ?
		    strrchr(job->mail_from, '@') + 1 : job->mail_from);
	} else {
		char tmp[SPF_SENDER_MAX];

		snprintf(tmp, sizeof(tmp), "postmaster@%s", job->helo);
		printable(r->sender, sizeof(r->sender), tmp);
		domain = identity_domain(job->helo);
		printable(r->domain, sizeof(r->domain), job->helo);
	}
	if (domain == NULL) {
		r->verdict = SPF_VERDICT_NONE;
		explain(r, "%s is not a domain name that can publish SPF",
		    r->identity == SPF_ID_HELO ? "HELO" : "the sender domain");
		return;
	}
	if (job_expired(job, &why)) {
		r->verdict = SPF_VERDICT_TEMPERROR;
		explain_verdict(r, why);
		return;
	}
	tls_job = job;
	if (setjmp(job->guard.jb) == 0) {
		tls_guard = &job->guard;
		job_evaluate(chk, job, domain);
		tls_guard = NULL;
	} else {
		/* lib_error() jumped here: libspf2 gave up on this check */
		r->verdict = SPF_VERDICT_TEMPERROR;
		explain_verdict(r, "internal error in the SPF library");
	}
	tls_job = NULL;
	/* Freeing is guarded too: a libspf2 error here only leaks. */
	if (setjmp(job->guard.jb) == 0) {
		tls_guard = &job->guard;
		if (job->rec != NULL)
			SPF_record_free(job->rec);
		if (job->resp != NULL)
			SPF_response_free(job->resp);
		if (job->req != NULL)
			SPF_request_free(job->req);
	}
	tls_guard = NULL;
	job->rec = NULL;
	job->resp = NULL;
	job->req = NULL;
}

/* worker_main - take queued jobs until the checker stops */
static void *
worker_main(void *arg)
{
	struct spf_checker *chk = arg;
	struct spf_job *job;
	int wake;

	pthread_mutex_lock(&chk->mu);
	for (;;) {
		while (!atomic_load(&chk->stopping) &&
		    TAILQ_EMPTY(&chk->queue))
			pthread_cond_wait(&chk->cv, &chk->mu);
		if (atomic_load(&chk->stopping))
			break;
		job = TAILQ_FIRST(&chk->queue);
		TAILQ_REMOVE(&chk->queue, job, qentry);
		chk->nqueued--;
		job->state = JOB_RUNNING;
		pthread_mutex_unlock(&chk->mu);

		job_run(chk, job);

		pthread_mutex_lock(&chk->mu);
		job->state = JOB_DONE;
		wake = TAILQ_EMPTY(&chk->done);
		TAILQ_INSERT_TAIL(&chk->done, job, qentry);
		/* The loop drains the wake-up before it takes the done
		 * list, so one per empty->non-empty edge is enough. */
		if (wake)
			wakeup_signal(chk->wake);
	}
	pthread_mutex_unlock(&chk->mu);
	return (NULL);
}

/* --- the loop side ----------------------------------------------------- */

static void
job_free(struct spf_job *job)
{
	if (job == NULL)
		return;
	free(job->helo);
	free(job->mail_from);
	free(job);
}

static void
job_unlink(struct spf_checker *chk, struct spf_job *job)
{
	if (!job->linked)
		return;
	TAILQ_REMOVE(&chk->live, job, lentry);
	job->linked = 0;
	chk->nlive--;
}

/* done_cb - woken up: call back every finished job */
static void
done_cb(void *arg)
{
	struct spf_checker *chk = arg;
	struct spf_job_list batch;
	struct spf_job *job;

	TAILQ_INIT(&batch);
	pthread_mutex_lock(&chk->mu);
	TAILQ_CONCAT(&batch, &chk->done, qentry);
	pthread_mutex_unlock(&chk->mu);

	chk->depth++;
	while ((job = TAILQ_FIRST(&batch)) != NULL) {
		TAILQ_REMOVE(&batch, job, qentry);
		/* A callback may cancel later jobs of this batch or free
		 * the checker: both are seen here before the call. */
		if (!atomic_load(&job->cancelled) && !chk->dying) {
			job_unlink(chk, job);
			job->cb(&job->res, job->arg);
		}
		job_free(job);
	}
	chk->depth--;
	if (chk->dying && chk->depth == 0)
		checker_destroy(chk);
}

int
spf_check(struct spf_checker *chk, const struct sockaddr *client,
    const char *helo, const char *mail_from, spf_cb *cb, void *arg,
    uint64_t *id_r)
{
	struct spf_job *job;

	if (chk == NULL || chk->dying || client == NULL || helo == NULL ||
	    mail_from == NULL || cb == NULL) {
		errno = EINVAL;
		return (-1);
	}
	if ((job = calloc(1, sizeof(*job))) == NULL)
		return (-1);
	if (client->sa_family == AF_INET) {
		job->family = AF_INET;
		job->v4 = ((const struct sockaddr_in *)(const void *)client)->
		    sin_addr;
	} else if (client->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)
		    (const void *)client)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {
			job->family = AF_INET;
			memcpy(&job->v4, &a->s6_addr[12], 4);
		} else {
			job->family = AF_INET6;
			job->v6 = *a;
		}
	} else {
		free(job);
		errno = EINVAL;
		return (-1);
	}
	if ((job->helo = strdup(helo)) == NULL ||
	    (job->mail_from = strdup(mail_from)) == NULL) {
		job_free(job);
		errno = ENOMEM;
		return (-1);
	}
	if (job->family == AF_INET)
		inet_ntop(AF_INET, &job->v4, job->res.client,
		    sizeof(job->res.client));
	else
		inet_ntop(AF_INET6, &job->v6, job->res.client,
		    sizeof(job->res.client));
	job->chk = chk;
	job->cb = cb;
	job->arg = arg;
	atomic_init(&job->cancelled, 0);
	clock_gettime(CLOCK_MONOTONIC, &job->deadline);
	job->deadline.tv_sec += chk->timeout_ms / 1000;
	job->deadline.tv_nsec += (long)(chk->timeout_ms % 1000) * 1000000L;
	if (job->deadline.tv_nsec >= 1000000000L) {
		job->deadline.tv_sec++;
		job->deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&chk->mu);
	if (chk->nqueued >= SPF_QUEUE_MAX) {
		pthread_mutex_unlock(&chk->mu);
		job_free(job);
		errno = EAGAIN;
		return (-1);
	}
	job->id = chk->next_id++;
	job->state = JOB_QUEUED;
	TAILQ_INSERT_TAIL(&chk->queue, job, qentry);
	chk->nqueued++;
	pthread_cond_signal(&chk->cv);
	pthread_mutex_unlock(&chk->mu);

	TAILQ_INSERT_TAIL(&chk->live, job, lentry);
	job->linked = 1;
	chk->nlive++;
	if (id_r != NULL)
		*id_r = job->id;
	return (0);
}

int
spf_cancel(struct spf_checker *chk, uint64_t id)
{
	struct spf_job *job;
	int queued;

	if (chk == NULL)
		return (-1);
	TAILQ_FOREACH(job, &chk->live, lentry)
		if (job->id == id)
			break;
	if (job == NULL)
		return (-1);
	job_unlink(chk, job);
	atomic_store(&job->cancelled, 1);
	pthread_mutex_lock(&chk->mu);
	queued = job->state == JOB_QUEUED;
	if (queued) {
		TAILQ_REMOVE(&chk->queue, job, qentry);
		chk->nqueued--;
	}
	pthread_mutex_unlock(&chk->mu);
	/* Running or done: its worker or done_cb() frees it unseen. */
	if (queued)
		job_free(job);
	return (0);
}

size_t
spf_pending(const struct spf_checker *chk)
{
	return (chk != NULL ? chk->nlive : 0);
}

void
spf_checker_set_timeout(struct spf_checker *chk, int timeout_ms)
{
	if (chk != NULL && timeout_ms > 0)
		chk->timeout_ms = timeout_ms;
}

/* --- set-up and teardown ------------------------------------------------- */

/*
 * server_setup - the shared SPF_server_t on layer; under a guard since
 * libspf2 reports some failures here through SPF_error().
 */
static int
server_setup(struct spf_checker *chk, SPF_dns_server_t *layer, char *err,
    size_t errlen)
{
	struct spf_guard g;
	SPF_response_t *resp = NULL;
	SPF_errcode_t e;

	if (setjmp(g.jb) != 0) {
		errbuf_set(err, errlen, "libspf2: %s", g.msg);
		return (-1);
	}
	tls_guard = &g;
	if ((chk->server = SPF_server_new_dns(layer, 0)) == NULL) {
		tls_guard = NULL;
		errbuf_set(err, errlen, "libspf2: out of memory");
		return (-1);
	}
	if (SPF_server_set_rec_dom(chk->server, chk->hostname) !=
	    SPF_E_SUCCESS) {
		tls_guard = NULL;
		errbuf_set(err, errlen, "libspf2: cannot set host name");
		return (-1);
	}
	/* No trusted-forwarder whitelist, no local policy at all. */
	e = SPF_server_set_localpolicy(chk->server, "", 0, &resp);
	if (resp != NULL)
		SPF_response_free(resp);
	resp = NULL;
	if (e == SPF_E_SUCCESS)
		e = SPF_server_set_explanation(chk->server, SPF_PLAIN_EXP,
		    &resp);
	if (resp != NULL)
		SPF_response_free(resp);
	tls_guard = NULL;
	if (e != SPF_E_SUCCESS) {
		errbuf_set(err, errlen, "libspf2: %s", SPF_strerror(e));
		return (-1);
	}
	return (0);
}

/* server_free - SPF_server_free(), then the layer it does not own */
static void
server_free(struct spf_checker *chk)
{
	struct spf_guard g;

	if (setjmp(g.jb) == 0) {
		tls_guard = &g;
		if (chk->server != NULL)
			SPF_server_free(chk->server);
		chk->server = NULL;
		if (chk->layer != NULL)
			SPF_dns_free(chk->layer);
		chk->layer = NULL;
	}
	tls_guard = NULL;
}

int
spf_checker_new_with(struct spf_checker **chk_r, struct event_base *base,
    spf_dns_fn *fn, void *fn_ctx, struct SPF_dns_server_struct *layer,
    int nworkers, const char *hostname, char *err, size_t errlen)
{
	struct spf_checker *chk;
	sigset_t all, old;
	int i, rc;

	*chk_r = NULL;
	if (base == NULL || (fn == NULL) == (layer == NULL) ||
	    hostname == NULL || !dns_name_valid(hostname)) {
		errbuf_set(err, errlen, "invalid arguments");
		if (layer != NULL)
			SPF_dns_free(layer);
		return (-1);
	}
	if (nworkers < 1 || nworkers > SPF_WORKERS_MAX) {
		errbuf_set(err, errlen, "workers must be 1..%d",
		    SPF_WORKERS_MAX);
		if (layer != NULL)
			SPF_dns_free(layer);
		return (-1);
	}
	pthread_once(&handlers_once, handlers_install);
	if ((chk = calloc(1, sizeof(*chk))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		if (layer != NULL)
			SPF_dns_free(layer);
		return (-1);
	}
	chk->base = base;
	TAILQ_INIT(&chk->queue);
	TAILQ_INIT(&chk->done);
	TAILQ_INIT(&chk->live);
	atomic_init(&chk->stopping, 0);
	chk->next_id = 1;
	chk->timeout_ms = SPF_TIMEOUT_DEFAULT_MS;
	str_copy(chk->hostname, hostname, sizeof(chk->hostname));
	chk->layer = layer;
	if (layer == NULL) {
		/* Our layer; libspf2's struct, filled by hand. */
		if ((chk->layer = calloc(1, sizeof(*chk->layer))) == NULL) {
			errbuf_set(err, errlen, "out of memory");
			goto fail;
		}
		chk->layer->destroy = layer_destroy;
		chk->layer->lookup = layer_lookup;
		chk->layer->name = "ferry";
		chk->layer->hook = chk;
		chk->fn = fn;
		chk->fn_ctx = fn_ctx;
	}
	if (server_setup(chk, chk->layer, err, errlen) == -1)
		goto fail;
	if (pthread_mutex_init(&chk->mu, NULL) != 0 ||
	    pthread_cond_init(&chk->cv, NULL) != 0) {
		errbuf_set(err, errlen, "cannot create a mutex");
		goto fail;
	}
	chk->sync_ok = 1;
	if (wakeup_new(&chk->wake, base, done_cb, chk, err, errlen) == -1)
		goto fail;
	if ((chk->threads = calloc((size_t)nworkers,
	    sizeof(*chk->threads))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		goto fail;
	}
	/* Workers take no signals: the loop's thread handles them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < nworkers; i++) {
		if ((rc = pthread_create(&chk->threads[i], NULL, worker_main,
		    chk)) != 0) {
			errbuf_set(err, errlen, "cannot start a worker: %s",
			    strerror(rc));
			break;
		}
		chk->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (chk->nthreads != nworkers)
		goto fail;
	*chk_r = chk;
	return (0);
fail:
	checker_destroy(chk);
	return (-1);
}

int
spf_checker_new(struct spf_checker **chk_r, struct event_base *base,
    struct dns_resolver *resolver, int nworkers, const char *hostname,
    char *err, size_t errlen)
{
	if (resolver == NULL) {
		*chk_r = NULL;
		errbuf_set(err, errlen, "no resolver");
		return (-1);
	}
	return (spf_checker_new_with(chk_r, base, resolver_fn, resolver, NULL,
	    nworkers, hostname, err, errlen));
}

/* checker_destroy - stop and join the workers, free every job and chk */
static void
checker_destroy(struct spf_checker *chk)
{
	struct spf_job *job;
	int i;

	if (chk->sync_ok) {
		pthread_mutex_lock(&chk->mu);
		atomic_store(&chk->stopping, 1);
		pthread_cond_broadcast(&chk->cv);
		pthread_mutex_unlock(&chk->mu);
	}
	for (i = 0; i < chk->nthreads; i++)
		pthread_join(chk->threads[i], NULL);
	free(chk->threads);
	/* Every job is now on one of these two lists (or already freed). */
	while ((job = TAILQ_FIRST(&chk->queue)) != NULL) {
		TAILQ_REMOVE(&chk->queue, job, qentry);
		job_free(job);
	}
	while ((job = TAILQ_FIRST(&chk->done)) != NULL) {
		TAILQ_REMOVE(&chk->done, job, qentry);
		job_free(job);
	}
	wakeup_free(&chk->wake);
	if (chk->sync_ok) {
		pthread_cond_destroy(&chk->cv);
		pthread_mutex_destroy(&chk->mu);
	}
	server_free(chk);
	free(chk);
}

void
spf_checker_free(struct spf_checker **chk_r)
{
	struct spf_checker *chk;
	struct spf_job *job;

	if (chk_r == NULL || (chk = *chk_r) == NULL)
		return;
	*chk_r = NULL;
	/* Nobody may be called back any more; running checks stop early. */
	while ((job = TAILQ_FIRST(&chk->live)) != NULL) {
		job_unlink(chk, job);
		atomic_store(&job->cancelled, 1);
	}
	atomic_store(&chk->stopping, 1);
	if (chk->depth > 0) {
		/* Inside done_cb(): it finishes the teardown. */
		chk->dying = 1;
		return;
	}
	checker_destroy(chk);
}
