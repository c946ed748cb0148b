/*
 * route.c - per-recipient routing by staged wave and rollback (rules
 * in route.h).
 *
 * The accounts are read once, at start (before the privilege drop),
 * into a table of lower-cased addresses sorted for bsearch(); a
 * message's recipients cost one read transaction: the routing record
 * of each wave that appears (route_state.h) and the cutover record of
 * each domain (cutover_state.h), every one read at most once per
 * message.
 *
 * SECURITY: recipients are the ones smtp_server accepted (syntax
 * checked, in our domains); records read from LMDB go through the
 * strict decoders, and an unreadable one refuses the message (4xx)
 * rather than route it by guess.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "accounts.h"
#include "cutover_state.h"
#include "log.h"
#include "route.h"
#include "route_state.h"
#include "util.h"

/* One address of an account: the user, lower case, and its wave. */
struct route_addr {
	char		*addr;
	unsigned	 wave;
};

struct relay_routes {
	struct accounts		*acc;		/* NULL: no accounts file */
	struct route_addr	*addrs;		/* sorted by addr */
	size_t			 naddrs;
	int			 have_copy;	/* [forward] copy_to is set */
	struct cutover_record	*cut;		/* decide()'s buffer */
};

static int
addr_cmp(const void *a, const void *b)
{
	return (strcmp(((const struct route_addr *)a)->addr,
	    ((const struct route_addr *)b)->addr));
}

/* add_addr - user (lower-cased copy) in wave */
static int
add_addr(struct relay_routes *rt, const char *user, unsigned wave)
{
	struct route_addr *a = &rt->addrs[rt->naddrs];

	if ((a->addr = strdup(user)) == NULL)
		return (-1);
	str_lower(a->addr);
	a->wave = wave;
	rt->naddrs++;
	return (0);
}

int
relay_routes_load(const struct config *cfg, struct relay_routes **rt_r,
    char *err, size_t errlen)
{
	struct relay_routes *rt;
	const char *path = route_accounts_path(cfg);
	size_t i;

	*rt_r = NULL;
	if ((rt = calloc(1, sizeof(*rt))) == NULL ||
	    (rt->cut = malloc(sizeof(*rt->cut))) == NULL) {
		free(rt);
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	rt->have_copy = cfg->forward.copy_to.count > 0;
	/* the relay needs no accounts file: one named for ferry-syncd that
	 * is not there yet (a fresh install) means no waves, said at start;
	 * one named in [relay] accounts must be there */
	if (path != NULL && path != cfg->relay.accounts &&
	    access(path, F_OK) == -1 && errno == ENOENT) {
		log_notice("[syncd] accounts %s does not exist (yet): no "
		    "routing by wave", path);
		path = NULL;
	}
	if (path != NULL && accounts_load_opts(path, ACCOUNTS_NO_SECRETS,
	    &rt->acc, err, errlen) == -1) {
		relay_routes_free(&rt);
		return (-1);
	}
	if (rt->acc != NULL && rt->acc->nwaved > 0) {
		if (!rt->have_copy) {
			for (i = 0; rt->acc->items[i].wave == 0; i++)
				;
			errbuf_set(err, errlen, "%s:%u: this account is in "
			    "wave %u, and routing by wave needs [forward] "
			    "copy_to in %s (where mail of a wave not migrated "
			    "yet goes)", rt->acc->path,
			    rt->acc->items[i].line, rt->acc->items[i].wave,
			    cfg->path);
			relay_routes_free(&rt);
			return (-1);
		}
		if ((rt->addrs = calloc(rt->acc->count * 2,
		    sizeof(*rt->addrs))) == NULL) {
			relay_routes_free(&rt);
			errbuf_set(err, errlen, "out of memory");
			return (-1);
		}
		for (i = 0; i < rt->acc->count; i++) {
			const struct account *a = &rt->acc->items[i];

			if (a->wave == 0)
				continue;
			if (add_addr(rt, a->src_user, a->wave) == -1 ||
			    (strcasecmp(a->src_user, a->dst_user) != 0 &&
			    add_addr(rt, a->dst_user, a->wave) == -1)) {
				relay_routes_free(&rt);
				errbuf_set(err, errlen, "out of memory");
				return (-1);
			}
		}
		if (rt->naddrs > 0)
			qsort(rt->addrs, rt->naddrs, sizeof(*rt->addrs),
			    addr_cmp);
	}
	*rt_r = rt;
	return (0);
}

void
relay_routes_free(struct relay_routes **rtp)
{
	struct relay_routes *rt = *rtp;
	size_t i;

	if (rt == NULL)
		return;
	for (i = 0; i < rt->naddrs; i++)
		free(rt->addrs[i].addr);
	free(rt->addrs);
	accounts_free(&rt->acc);
	free(rt->cut);
	free(rt);
	*rtp = NULL;
}

const struct accounts *
relay_routes_accounts(const struct relay_routes *rt)
{
	return (rt != NULL ? rt->acc : NULL);
}

size_t
relay_routes_wave_count(const struct relay_routes *rt, unsigned wave)
{
	if (rt == NULL || rt->acc == NULL || wave < 1 ||
	    wave > ACCOUNTS_WAVE_MAX)
		return (0);
	return (accounts_wave_count(rt->acc, wave));
}

const char *
relay_routes_wave_list(const struct relay_routes *rt, char *buf, size_t len)
{
	size_t o = 0;
	unsigned w;
	int n;

	buf[0] = '\0';
	for (w = 1; w <= ACCOUNTS_WAVE_MAX && o < len; w++) {
		if (relay_routes_wave_count(rt, w) == 0)
			continue;
		n = snprintf(buf + o, len - o, "%s%u", o ? ", " : "", w);
		if (n < 0 || (size_t)n >= len - o)
			break;
		o += (size_t)n;
	}
	if (o == 0)
		snprintf(buf, len, "none");
	return (buf);
}

/* lookup - the wave of key (lower case), 0 when not an account's */
static unsigned
lookup(const struct relay_routes *rt, const char *key)
{
	struct route_addr k, *hit;

	k.addr = (char *)(uintptr_t)key;
	hit = bsearch(&k, rt->addrs, rt->naddrs, sizeof(*rt->addrs),
	    addr_cmp);
	return (hit != NULL ? hit->wave : 0);
}

unsigned
relay_routes_wave(const struct relay_routes *rt, const char *rcpt)
{
	char key[ACCOUNTS_USER_MAX + 1];
	const char *at;
	unsigned w;
	int n;

	if (rt == NULL || rt->naddrs == 0)
		return (0);
	n = snprintf(key, sizeof(key), "%s", rcpt);
	if (n < 0 || (size_t)n >= sizeof(key))
		return (0);
	str_lower(key);
	if ((w = lookup(rt, key)) != 0)
		return (w);
	/* a user without '@' is the local part of the address */
	if ((at = strrchr(key, '@')) == NULL || at == key)
		return (0);
	key[at - key] = '\0';
	return (lookup(rt, key));
}

/* One decision: what the transaction reads, once per wave and domain. */
struct decide {
	struct relay_routes	*rt;
	const unsigned char	*skip;
	char *const		*rcpts;
	size_t			 n;
	struct route_choice	*choice;
};

/* domain_of - rcpt's domain, lower case, into buf; 0, or -1 */
static int
domain_of(const char *rcpt, char *buf, size_t len)
{
	const char *at = strrchr(rcpt, '@');
	int n;

	if (at == NULL || at[1] == '\0')
		return (-1);
	n = snprintf(buf, len, "%s", at + 1);
	if (n < 0 || (size_t)n >= len)
		return (-1);
	str_lower(buf);
	return (0);
}

/* rollback_of - 1 when domain's cutover record is in rollback, 0, -1 */
static int
rollback_of(struct store_txn *tx, struct relay_routes *rt, const char *domain)
{
	int rc = cutover_record_get(tx, domain, rt->cut);

	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0)
		return (-1);
	return (rt->cut->phase == CUTOVER_ROLLBACK);
}

static int
decide_txn(struct store_txn *tx, void *arg)
{
	struct decide *d = arg;
	struct relay_routes *rt = d->rt;
	char dom[CUTOVER_DOMAIN_MAX + 1], prev[CUTOVER_DOMAIN_MAX + 1] = "";
	struct route_wave w;
	unsigned last_wave = 0;
	int last_migrated = 0, prev_rb = 0;
	size_t i;

	for (i = 0; i < d->n; i++) {
		struct route_choice *c = &d->choice[i];
		const char *rcpt = d->rcpts[i];

		memset(c, 0, sizeof(*c));
		if (d->skip != NULL && d->skip[i])
			continue;	/* e.g. a bounce to reverse */
		if ((c->wave = relay_routes_wave(rt, rcpt)) != 0) {
			/* recipients are mostly grouped: read a wave once
			 * for a run of them */
			if (c->wave != last_wave) {
				if (route_wave_get(tx, c->wave, &w) == -1)
					return (-1);
				last_wave = c->wave;
				last_migrated = w.state == ROUTE_WAVE_MIGRATED;
			}
			if (!last_migrated)
				c->local = 1;
		}
		if (domain_of(rcpt, dom, sizeof(dom)) == 0) {
			if (strcmp(dom, prev) != 0) {
				if ((prev_rb = rollback_of(tx, rt, dom)) == -1)
					return (-1);
				memcpy(prev, dom, sizeof(prev));
			}
			c->rollback = prev_rb;
			if (prev_rb && rt->have_copy)
				c->local = 1;
		}
	}
	return (0);
}

int
relay_routes_decide(struct relay_routes *rt, struct store *st,
    const unsigned char *skip, char *const *rcpts, size_t n,
    struct route_choice *choice, char *err, size_t errlen)
{
	struct decide d;

	memset(choice, 0, n * sizeof(*choice));
	if (rt == NULL || n == 0)
		return (0);
	d.rt = rt;
	d.skip = skip;
	d.rcpts = rcpts;
	d.n = n;
	d.choice = choice;
	if (store_txn_run(st, 1, decide_txn, &d, err, errlen) != 0)
		return (-1);
	return (0);
}
