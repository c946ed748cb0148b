/*
 * ctl_report_gather.c - what the acceptance report shows, read from the
 * store in one read transaction (so the parts agree with each other),
 * and the verdict per account and in total.
 *
 * An account is accepted when all of these hold:
 *   - it has a verification record (ferry-syncd --verify) whose verdict
 *     is "complete" and which carries a content digest;
 *   - its last recorded copy pass synced it without failures;
 *   - no pass that finished after the verification copied anything (the
 *     verification would no longer describe the destination; times are
 *     in seconds, so a pass finished in the second the verification
 *     is dated counts as before it).
 * Each that fails is one reason, in words an admin acts on.  The total
 * is accepted when every account shown is.
 */

#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "accounts.h"
#include "addr_stats.h"
#include "cli.h"
#include "config.h"
#include "cutover_state.h"
#include "json.h"
#include "pass_history.h"
#include "spool.h"
#include "store.h"
#include "ctl.h"
#include "ctl_report_p.h"
#include "cutover_p.h"

#define VERIFY_KEY_PREFIX	"syncd.verify."
#define VERIFY_RECORD_MAX	(16 * 1024 * 1024)

const char *
rpt_time(char *buf, size_t len, int64_t t)
{
	if (t <= 0) {
		snprintf(buf, len, "never");
		return (buf);
	}
	return (cutover_format_rfc3339(buf, len, t));
}

static void
verify_free(struct rpt_verify *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->nf; i++) {
		free(v->f[i].src);
		free(v->f[i].dst);
		free(v->f[i].error);
	}
	for (i = 0; i < v->nis; i++) {
		free(v->is[i].kind);
		free(v->is[i].folder);
		free(v->is[i].what);
		free(v->is[i].internaldate);
		free(v->is[i].date);
		free(v->is[i].from);
		free(v->is[i].subject);
	}
	free(v->f);
	free(v->is);
	free(v->verdict);
	free(v->digest);
	free(v);
}

void
rpt_free(struct rpt *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		free(r->a[i].src_user);
		free(r->a[i].dst_user);
		verify_free(r->a[i].v);
		free(r->a[i].ph);
		free(r->a[i].cut);
	}
	free(r->a);
	memset(r, 0, sizeof(*r));
}

/* ---- the verification record --------------------------------------------- */

struct vwalk {
	struct rpt_verify *v;
	int		 oom;
};

static int
set_str(char **dst, enum json_type type, const char *value)
{
	free(*dst);
	*dst = NULL;
	if (type == JSON_T_NULL)
		return (0);
	return ((*dst = strdup(value)) == NULL ? -2 : 0);
}

/* index_field - "N.name" of path after prefix: N into *idx, the name */
static const char *
index_field(const char *path, const char *prefix, size_t *idx)
{
	size_t n = strlen(prefix);
	char *end;

	if (strncmp(path, prefix, n) != 0 || !isdigit((unsigned char)path[n]))
		return (NULL);
	errno = 0;
	*idx = (size_t)strtoul(path + n, &end, 10);
	if (errno != 0 || *end != '.')
		return (NULL);
	return (end + 1);
}

/* grow - make room for index idx in an array of elem-sized items */
static int
grow(void **arr, size_t *n, size_t *alloc, size_t idx, size_t elem)
{
	if (idx > 100000)
		return (-1);
	if (idx >= *alloc) {
		size_t na = idx + 16;
		char *p = realloc(*arr, na * elem);

		if (p == NULL)
			return (-2);
		memset(p + *alloc * elem, 0, (na - *alloc) * elem);
		*arr = p;
		*alloc = na;
	}
	if (idx >= *n)
		*n = idx + 1;
	return (0);
}

static uint64_t
num(const char *s)
{
	return ((uint64_t)strtoull(s, NULL, 10));
}

static int
vwalk_fn(const char *path, enum json_type type, const char *value, void *arg)
{
	struct rpt_verify *v = ((struct vwalk *)arg)->v;
	const char *name;
	size_t idx;
	int rc;

	if ((name = index_field(path, "folders.", &idx)) != NULL) {
		struct rpt_folder *f;

		if ((rc = grow((void **)&v->f, &v->nf, &v->af, idx,
		    sizeof(*v->f))) != 0)
			return (rc);
		f = &v->f[idx];
		if (strcmp(name, "src") == 0)
			return (set_str(&f->src, type, value));
		if (strcmp(name, "dst") == 0)
			return (set_str(&f->dst, type, value));
		if (strcmp(name, "error") == 0)
			return (set_str(&f->error, type, value));
		if (strcmp(name, "src_messages") == 0)
			f->src_messages = num(value);
		else if (strcmp(name, "dst_messages") == 0)
			f->dst_messages = num(value);
		else if (strcmp(name, "src_bytes") == 0)
			f->src_bytes = num(value);
		else if (strcmp(name, "dst_bytes") == 0)
			f->dst_bytes = num(value);
		else if (strcmp(name, "missing") == 0)
			f->missing = num(value);
		else if (strcmp(name, "extra") == 0)
			f->extra = num(value);
		else if (strcmp(name, "different") == 0)
			f->different = num(value);
		else if (strcmp(name, "policy") == 0)
			f->policy = num(value);
		return (0);
	}
	if ((name = index_field(path, "issues.", &idx)) != NULL) {
		struct rpt_issue *is;

		if ((rc = grow((void **)&v->is, &v->nis, &v->ais, idx,
		    sizeof(*v->is))) != 0)
			return (rc);
		is = &v->is[idx];
		if (strcmp(name, "kind") == 0)
			return (set_str(&is->kind, type, value));
		if (strcmp(name, "folder") == 0)
			return (set_str(&is->folder, type, value));
		if (strcmp(name, "what") == 0)
			return (set_str(&is->what, type, value));
		if (strcmp(name, "internaldate") == 0)
			return (set_str(&is->internaldate, type, value));
		if (strcmp(name, "date") == 0) {
			is->has_msg = 1;
			return (set_str(&is->date, type, value));
		}
		if (strcmp(name, "from") == 0)
			return (set_str(&is->from, type, value));
		if (strcmp(name, "subject") == 0)
			return (set_str(&is->subject, type, value));
		if (strcmp(name, "uid") == 0)
			is->uid = num(value);
		else if (strcmp(name, "dst_uid") == 0)
			is->dst_uid = num(value);
		else if (strcmp(name, "size") == 0)
			is->size = num(value);
		return (0);
	}
	if (strcmp(path, "time") == 0)
		v->time = (int64_t)num(value);
	else if (strcmp(path, "verdict") == 0)
		return (set_str(&v->verdict, type, value));
	else if (strcmp(path, "deep") == 0)
		v->deep = strcmp(value, "true") == 0;
	else if (strcmp(path, "digest") == 0)
		return (set_str(&v->digest, type, value));
	else if (strcmp(path, "src_messages") == 0)
		v->src_messages = num(value);
	else if (strcmp(path, "dst_messages") == 0)
		v->dst_messages = num(value);
	else if (strcmp(path, "missing") == 0)
		v->missing = num(value);
	else if (strcmp(path, "extra") == 0)
		v->extra = num(value);
	else if (strcmp(path, "different") == 0)
		v->different = num(value);
	else if (strcmp(path, "policy") == 0)
		v->policy = num(value);
	else if (strcmp(path, "src_bytes") == 0)
		v->src_bytes = num(value);
	else if (strcmp(path, "dst_bytes") == 0)
		v->dst_bytes = num(value);
	else if (strcmp(path, "folders_omitted") == 0)
		v->folders_omitted = num(value);
	else if (strcmp(path, "issues_omitted") == 0)
		v->issues_omitted = num(value);
	return (0);
}

/* verify_parse - the record's JSON into *v_r; -1 with err */
static int
verify_parse(const void *val, size_t len, struct rpt_verify **v_r,
    char *err, size_t errlen)
{
	struct vwalk w = { 0 };
	size_t i;
	int rc;

	*v_r = NULL;
	if (len > VERIFY_RECORD_MAX) {
		snprintf(err, errlen, "too large");
		return (-1);
	}
	if ((w.v = calloc(1, sizeof(*w.v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	snprintf(err, errlen, "malformed");	/* json_walk's, if it says */
	rc = json_walk(val, len, vwalk_fn, &w, err, errlen);
	if (rc == 0 && (w.v->verdict == NULL || w.v->time <= 0)) {
		snprintf(err, errlen, "no time or verdict");
		rc = -1;
	}
	for (i = 0; rc == 0 && i < w.v->nf; i++)
		if (w.v->f[i].src == NULL || w.v->f[i].dst == NULL) {
			snprintf(err, errlen, "a folder without its names");
			rc = -1;
		}
	for (i = 0; rc == 0 && i < w.v->nis; i++)
		if (w.v->is[i].kind == NULL || w.v->is[i].folder == NULL) {
			snprintf(err, errlen, "an issue without its kind");
			rc = -1;
		}
	if (rc != 0) {
		if (rc != -1)
			snprintf(err, errlen, rc == -2 ? "out of memory" :
			    "malformed");
		verify_free(w.v);
		return (-1);
	}
	*v_r = w.v;
	return (0);
}

/* ---- the read transaction ------------------------------------------------ */

struct gather {
	struct rpt	*r;
	const struct config *cfg;
	char		 err[512];
};

static int
meta_get(struct store_txn *tx, const char *prefix, const char *user,
    const void **val, size_t *vlen)
{
	char key[64 + ACCOUNTS_USER_MAX + 1];
	size_t i, p = strlen(prefix);

	if (snprintf(key, sizeof(key), "%s%s", prefix, user) >= (int)sizeof(key))
		return (STORE_NOTFOUND);
	for (i = p; key[i] != '\0'; i++)
		key[i] = (char)tolower((unsigned char)key[i]);
	return (store_get(tx, STORE_DB_META, key, strlen(key), val, vlen));
}

static void
acct_reset(struct rpt_acct *a)
{
	verify_free(a->v);
	a->v = NULL;
	free(a->ph);
	a->ph = NULL;
	free(a->cut);
	a->cut = NULL;
	memset(&a->relay, 0, sizeof(a->relay));
}

/* addr_add - one address of the account, once */
static void
addr_add(struct rpt_acct *a, const char *user, const char *domain)
{
	char b[ADDR_STATS_ADDR_MAX + 1];
	size_t i;
	int n;

	if (strchr(user, '@') != NULL)
		n = snprintf(b, sizeof(b), "%s", user);
	else if (domain[0] != '\0')
		n = snprintf(b, sizeof(b), "%s@%s", user, domain);
	else
		return;
	if (n < 0 || (size_t)n >= sizeof(b) || a->naddr == RPT_ADDRS_MAX)
		return;
	for (i = 0; b[i] != '\0'; i++)
		b[i] = (char)tolower((unsigned char)b[i]);
	for (i = 0; i < a->naddr; i++)
		if (strcmp(a->addr[i].addr, b) == 0)
			return;
	memcpy(a->addr[a->naddr++].addr, b, strlen(b) + 1);
}

/* relay_acct - the relay's per-address figures of the account */
static int
relay_acct(struct store_txn *tx, struct rpt_acct *a)
{
	struct addr_stats s;
	size_t i;
	int rc;

	a->relay.known = 1;
	for (i = 0; i < a->naddr; i++) {
		struct rpt_relay *r = &a->addr[i].r;

		memset(r, 0, sizeof(*r));
		r->known = 1;
		if ((rc = addr_stats_get(tx, a->addr[i].addr, &s)) == -1)
			return (-1);
		if (rc == STORE_NOTFOUND)
			continue;
		r->received = s.received;
		r->forwarded = s.forwarded;
		r->duplicates = s.duplicates;
		r->bounced = s.bounced;
		r->last = s.last;
		a->relay.received += s.received;
		a->relay.forwarded += s.forwarded;
		a->relay.duplicates += s.duplicates;
		a->relay.bounced += s.bounced;
		if (s.last > a->relay.last)
			a->relay.last = s.last;
	}
	return (0);
}

static int
gather_acct(struct store_txn *tx, struct gather *g, struct rpt_acct *a)
{
	const void *val;
	size_t vlen;
	char why[256];
	int rc;

	acct_reset(a);
	rc = meta_get(tx, VERIFY_KEY_PREFIX, a->src_user, &val, &vlen);
	if (rc == 0 && verify_parse(val, vlen, &a->v, why, sizeof(why)) == -1) {
		snprintf(g->err, sizeof(g->err), "%s: the verification "
		    "record cannot be read: %s", a->src_user, why);
		return (2);
	}
	if (rc != 0 && rc != STORE_NOTFOUND)
		return (-1);
	rc = meta_get(tx, PASS_HISTORY_KEY_PREFIX, a->src_user, &val, &vlen);
	if (rc == 0) {
		if ((a->ph = malloc(sizeof(*a->ph))) == NULL)
			return (3);
		if (pass_history_decode(a->ph, val, vlen, why,
		    sizeof(why)) == -1) {
			snprintf(g->err, sizeof(g->err), "%s: %s",
			    a->src_user, why);
			return (2);
		}
	} else if (rc != STORE_NOTFOUND)
		return (-1);
	if (a->domain[0] != '\0') {
		if ((a->cut = malloc(sizeof(*a->cut))) == NULL)
			return (3);
		rc = cutover_record_get(tx, a->domain, a->cut);
		if (rc == STORE_NOTFOUND) {
			free(a->cut);
			a->cut = NULL;
		} else if (rc != 0)
			return (-1);
	}
	return (relay_acct(tx, a));
}

static int
gather_txn(struct store_txn *tx, void *arg)
{
	struct gather *g = arg;
	size_t i;
	int rc;

	uint64_t naddr;

	for (i = 0; i < g->r->n; i++)
		if ((rc = gather_acct(tx, g, &g->r->a[i])) != 0)
			return (rc);
	return (addr_stats_overflow(tx, &naddr, &g->r->relay_overflow));
}

/* ---- the verdicts -------------------------------------------------------- */

static void
reason(struct rpt_acct *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reason(struct rpt_acct *a, const char *fmt, ...)
{
	va_list ap;

	if (a->nreasons == RPT_REASONS_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(a->reasons[a->nreasons++], RPT_TEXT_MAX, fmt, ap);
	va_end(ap);
}

static void
verdict(struct rpt_acct *a)
{
	const struct pass_entry *last = NULL;
	uint64_t after = 0;
	size_t i;

	a->nreasons = 0;
	if (a->ph != NULL && a->ph->n > 0)
		last = &a->ph->e[a->ph->n - 1];
	if (a->v == NULL)
		reason(a, "not verified — run ferry-syncd --verify");
	else {
		if (strcmp(a->v->verdict, "complete") != 0 || a->v->missing ||
		    a->v->extra || a->v->different)
			reason(a, "the verification found %" PRIu64 " missing, "
			    "%" PRIu64 " extra and %" PRIu64 " different "
			    "on the destination", a->v->missing, a->v->extra,
			    a->v->different);
		for (i = 0; i < a->v->nf; i++)
			if (a->v->f[i].error != NULL)
				reason(a, "folder %.200s could not be verified",
				    a->v->f[i].src);
		if (a->v->digest == NULL)
			reason(a, "the verification has no content digest");
		for (i = 0; a->ph != NULL && i < a->ph->n; i++)
			if (a->ph->e[i].finished > a->v->time)
				after += a->ph->e[i].copied;
		if (after > 0)
			reason(a, "%" PRIu64 " message%s copied after the "
			    "verification — run ferry-syncd --verify again",
			    after, after == 1 ? "" : "s");
	}
	if (last == NULL)
		reason(a, "no copy pass recorded");
	else if (last->error[0] != '\0')
		reason(a, "the last pass did not sync the account: %.200s",
		    last->error);
	else if (last->failed > 0)
		reason(a, "the last pass failed %" PRIu64 " message%s",
		    last->failed, last->failed == 1 ? "" : "s");
	a->accepted = a->nreasons == 0;
}

/* totals - the sums, and a digest over the accounts' digests */
static void
totals(struct rpt *r)
{
	static const char x[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0, k;
	EVP_MD_CTX *ctx;
	size_t i, j;
	int ok;

	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
	for (i = 0; i < r->n; i++) {
		const struct rpt_acct *a = &r->a[i];

		if (a->accepted)
			r->accepted++;
		if (a->v != NULL) {
			r->verified++;
			r->src_messages += a->v->src_messages;
			r->dst_messages += a->v->dst_messages;
			r->missing += a->v->missing;
			r->extra += a->v->extra;
			r->different += a->v->different;
			r->policy += a->v->policy;
			r->src_bytes += a->v->src_bytes;
			r->dst_bytes += a->v->dst_bytes;
		}
		if (a->v == NULL || a->v->digest == NULL)
			ok = 0;
		else if (ok)
			ok = EVP_DigestUpdate(ctx, a->src_user,
			    strlen(a->src_user)) == 1 &&
			    EVP_DigestUpdate(ctx, "\t", 1) == 1 &&
			    EVP_DigestUpdate(ctx, a->v->digest,
			    strlen(a->v->digest)) == 1 &&
			    EVP_DigestUpdate(ctx, "\n", 1) == 1;
		for (j = 0; a->ph != NULL && j < a->ph->n; j++) {
			r->passes++;
			r->copied += a->ph->e[j].copied;
			r->failed += a->ph->e[j].failed;
		}
		r->relay.known |= a->relay.known;
		r->relay.received += a->relay.received;
		r->relay.forwarded += a->relay.forwarded;
		r->relay.duplicates += a->relay.duplicates;
		r->relay.bounced += a->relay.bounced;
		if (a->relay.last > r->relay.last)
			r->relay.last = a->relay.last;
	}
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32;
	EVP_MD_CTX_free(ctx);
	r->digest[0] = '\0';
	for (k = 0; ok && k < mdlen; k++) {
		r->digest[2 * k] = x[md[k] >> 4];
		r->digest[2 * k + 1] = x[md[k] & 15];
		r->digest[2 * k + 2] = '\0';
	}
}

/* ---- the whole ----------------------------------------------------------- */

int
rpt_gather(const struct ctl *ctl, const char *account, struct rpt *r)
{
	struct accounts *acc = NULL;
	struct store *store = NULL;
	struct gather g;
	char path[4096], err[1024];
	size_t i;
	int di, rc = EXIT_USAGE;

	memset(r, 0, sizeof(*r));
	r->generated = (int64_t)time(NULL);
	r->config_path = ctl->cfg.path;
	if (ctl->cfg.syncd.accounts == NULL ||
	    ctl->cfg.syncd.accounts[0] == '\0') {
		fprintf(stderr, "ferryctl: report: [syncd] accounts is not "
		    "set: no account to report on\n");
		return (EXIT_USAGE);
	}
	if (accounts_load_opts(ctl->cfg.syncd.accounts, ACCOUNTS_NO_SECRETS,
	    &acc, err, sizeof(err)) == -1) {
		fprintf(stderr, "ferryctl: report: %s\n", err);
		return (EXIT_USAGE);
	}
	if ((r->a = calloc(acc->count, sizeof(*r->a))) == NULL)
		goto oom;
	for (i = 0; i < acc->count; i++) {
		const struct account *ac = &acc->items[i];
		struct rpt_acct *a = &r->a[r->n];

		if (account != NULL && strcasecmp(account, ac->src_user) != 0)
			continue;
		r->n++;
		if ((a->src_user = strdup(ac->src_user)) == NULL ||
		    (a->dst_user = strdup(ac->dst_user)) == NULL)
			goto oom;
		if ((di = cutover_account_domain(&ctl->cfg, ac)) != -1)
			snprintf(a->domain, sizeof(a->domain), "%s",
			    ctl->cfg.cutover.domains.items[di]);
		for (char *p = a->domain; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		addr_add(a, ac->src_user, a->domain);
		addr_add(a, ac->dst_user, a->domain);
	}
	if (r->n == 0) {
		fprintf(stderr, "ferryctl: report: no account \"%s\" in %s\n",
		    clean(err, sizeof(err), account, 80), acc->path);
		goto out;
	}
	if (config_state_path(&ctl->cfg, RELAY_DB_DIR, path, sizeof(path)) ==
	    -1) {
		fprintf(stderr, "ferryctl: [global] state_dir is too long\n");
		goto out;
	}
	if (access(path, F_OK) == -1 && errno == ENOENT)
		store = NULL;	/* neither daemon has run: nothing recorded */
	else if (store_open(&store, path, STORE_RDONLY, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "ferryctl: report: cannot open the database "
		    "%s: %s\n", path, err);
		goto out;
	}
	if (store != NULL) {
		memset(&g, 0, sizeof(g));
		g.r = r;
		g.cfg = &ctl->cfg;
		rc = store_txn_run(store, 1, gather_txn, &g, err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "ferryctl: report: %s\n", rc == 3 ?
			    "out of memory" : rc == 2 ? g.err : err);
			rc = EXIT_USAGE;
			goto out;
		}
	}
	for (i = 0; i < r->n; i++)
		verdict(&r->a[i]);
	totals(r);
	rc = 0;
	goto out;
oom:
	fprintf(stderr, "ferryctl: report: out of memory\n");
	rc = EXIT_RUNTIME;
out:
	store_close(&store);
	accounts_free(&acc);
	if (rc != 0)
		rpt_free(r);
	return (rc);
}
