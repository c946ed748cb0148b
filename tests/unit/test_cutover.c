/*
 * test_cutover.c - syncd/cutover.c without DNS: the account -> domain
 * rule, the phase machine driven through cutover_note_answer() and the
 * pass hooks (errors and lies never advance, the first `new` asks for a
 * catch-up pass once, a rollback goes back to synced, closed only with
 * the verdict and back out when the relay sees mail again), and the
 * records surviving a reopen of the store.  The watcher against a real
 * DNS server is the end-to-end test's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "accounts.h"
#include "config.h"
#include "cutover.h"
#include "cutover_p.h"
#include "cutover_state.h"
#include "dns.h"
#include "relay_view.h"
#include "store.h"

#define T0	((time_t)1800000000)

struct fx {
	char			 dir[64];
	char			 db[96];
	char			 conf[96];
	struct config		 cfg;
	struct accounts		*acc;
	struct store		*st;
	struct cutover		*c;
	struct cutover_hooks	 hooks;
	struct relay_domain_view rv;	/* what the fake relay says */
	int			 requests;
	char			 last_why[256];
};

static void
request_pass(void *arg, const char *why)
{
	struct fx *fx = arg;

	fx->requests++;
	snprintf(fx->last_why, sizeof(fx->last_why), "%s", why);
}

static int
fake_relay_view(void *arg, const char *domain, time_t now,
    struct relay_domain_view *v, char *err, size_t errlen)
{
	struct fx *fx = arg;

	(void)domain;
	(void)now;
	(void)err;
	(void)errlen;
	*v = fx->rv;
	return (0);
}

static const char conf_text[] =
    "[global]\nstate_dir = %s\n"
    "[relay]\nhostname = old-mx.example.com\n"
    "[cutover]\ndomains = example.com other.example\n"
    "resolvers = 127.0.0.1:5353 127.0.0.1:5354\n"
    "new_mx = *.new.example\ncheck_interval = 10s\nquiet_period = 1h\n"
    "catchup_interval = 30s\n";

static const char accounts_text[] =
    "alice@example.com pw alice@example.com pw\n"
    "bob pw bob@other.example pw\n";

static void
fx_open(struct fx *fx)
{
	char err[512];

	assert_int_equal(store_open(&fx->st, fx->db, 0, err, sizeof(err)), 0);
	fx->hooks.request_pass = request_pass;
	fx->hooks.relay_view = fake_relay_view;
	fx->hooks.arg = fx;
	if (cutover_new(&fx->c, NULL, fx->st, &fx->cfg, fx->acc, &fx->hooks,
	    err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_non_null(fx->c);
}

static void
fx_close(struct fx *fx)
{
	cutover_free(&fx->c);
	store_close(&fx->st);
}

static int
setup_with(void **state, const char *extra)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char err[512];
	FILE *fp;

	if (fx == NULL)
		return (-1);
	strcpy(fx->dir, "/tmp/test_cutover.XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return (-1);
	snprintf(fx->db, sizeof(fx->db), "%s/db", fx->dir);
	snprintf(fx->conf, sizeof(fx->conf), "%s/mailferry.conf", fx->dir);
	if ((fp = fopen(fx->conf, "w")) == NULL)
		return (-1);
	fprintf(fp, conf_text, fx->dir);
	fputs(extra, fp);
	fclose(fp);
	if (config_load(&fx->cfg, fx->conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return (-1);
	}
	if ((fp = fmemopen((void *)accounts_text, strlen(accounts_text),
	    "r")) == NULL)
		return (-1);
	if (accounts_load_fp(fp, "accounts", NULL, &fx->acc, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		fclose(fp);
		return (-1);
	}
	fclose(fp);
	fx_open(fx);
	*state = fx;
	return (0);
}

static int
setup(void **state)
{
	return (setup_with(state, ""));
}

static int
setup_rollback(void **state)
{
	return (setup_with(state, "rollback = yes\n"));
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	fx_close(fx);
	accounts_free(&fx->acc);
	config_free(&fx->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		return (-1);
	free(fx);
	return (0);
}

/* answer - resolver res says hosts (DNS_OK) for example.com at t */
static void
answer(struct fx *fx, size_t res, const char *host, time_t t)
{
	const char *hosts[1] = { host };

	assert_int_equal(cutover_note_answer(fx->c, 0, res, DNS_OK, hosts, 1,
	    60, NULL, t), 0);
}

static enum cutover_phase
phase(struct fx *fx)
{
	return (cutover_domain_record(fx->c, 0)->phase);
}

/* pass - a pass over both accounts from t to t + 10 */
static void
pass(struct fx *fx, time_t t, uint64_t copied, uint64_t failed)
{
	struct cutover_acct_result acc[2];
	struct cutover_pass_result r;

	memset(acc, 0, sizeof(acc));
	acc[0].user = "alice@example.com";
	acc[0].copied = copied;
	acc[0].failed = failed;
	if (failed)
		strcpy(acc[0].reason, "APPEND too large");
	acc[1].user = "bob";
	memset(&r, 0, sizeof(r));
	r.started = t;
	r.finished = t + 10;
	r.acc = acc;
	r.nacc = 2;
	cutover_pass_started(fx->c, t);
	cutover_pass_done(fx->c, &r);
}

static void
test_account_domain(void **state)
{
	struct fx *fx = *state;
	struct config one;
	struct account a;
	char err[512];
	FILE *fp;

	memset(&a, 0, sizeof(a));
	a.src_user = "alice";
	a.dst_user = "alice@Example.COM";
	assert_int_equal(cutover_account_domain(&fx->cfg, &a), 0);
	a.src_user = "bob@other.example";
	a.dst_user = "bob";
	assert_int_equal(cutover_account_domain(&fx->cfg, &a), 1);
	a.src_user = "carol";
	a.dst_user = "carol@elsewhere.example";
	assert_int_equal(cutover_account_domain(&fx->cfg, &a), -1);

	/* one domain: every account belongs to it */
	assert_non_null(fp = fopen(fx->conf, "w"));
	fprintf(fp, "[cutover]\ndomains = example.com\nnew_mx = x.new.example\n");
	fclose(fp);
	if (config_load(&one, fx->conf, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(cutover_account_domain(&one, &a), 0);
	config_free(&one);
	assert_non_null(fp = fopen(fx->conf, "w"));
	fprintf(fp, conf_text, fx->dir);
	fclose(fp);
}

static void
test_phases(void **state)
{
	struct fx *fx = *state;
	const struct cutover_record *r;
	const char *none[1] = { NULL };
	time_t t = T0;

	assert_int_equal(cutover_ndomains(fx->c), 2);
	assert_int_equal(cutover_nresolvers(fx->c), 2);
	assert_int_equal(phase(fx), CUTOVER_PRESYNC);
	assert_int_equal(cutover_pass_interval(fx->c, 900), 900);

	/* old answers before the full pass: still presync */
	answer(fx, 0, "old-mx.example.com", t);
	answer(fx, 1, "old-mx.example.com.", t);
	assert_int_equal(phase(fx), CUTOVER_PRESYNC);
	/* the full pass: synced */
	pass(fx, t += 10, 500, 0);
	assert_int_equal(phase(fx), CUTOVER_SYNCED);
	r = cutover_domain_record(fx->c, 0);
	assert_int_equal(r->sync.full_done_at, t + 10);
	assert_int_equal(r->sync.copied, 500);
	assert_int_equal(r->sync.accounts, 1);

	/* errors and lies never advance */
	assert_int_equal(cutover_note_answer(fx->c, 0, 0, DNS_TEMPFAIL, none, 0,
	    0, "timeout", t += 60), 0);
	assert_int_equal(phase(fx), CUTOVER_SYNCED);
	assert_string_equal(r->answers[0].error, "TEMPFAIL: timeout");
	assert_int_equal(cutover_note_answer(fx->c, 0, 1, DNS_NXDOMAIN, none, 0,
	    0, NULL, t), 0);
	answer(fx, 0, "evil.example", t += 60);
	assert_int_equal(r->answers[0].class, MX_CLASS_UNKNOWN);
	assert_int_equal(phase(fx), CUTOVER_SYNCED);
	assert_int_equal(fx->requests, 0);
	assert_int_equal(cutover_dest_live(fx->c, &fx->acc->items[0]), 0);

	/* the first new answer: switching, one catch-up request */
	answer(fx, 1, "old-mx.example.com", t);
	answer(fx, 0, "mx1.new.example", t += 60);
	assert_int_equal(phase(fx), CUTOVER_SWITCHING);
	assert_int_equal(fx->requests, 1);
	assert_non_null(strstr(fx->last_why, "127.0.0.1:5353 answers new"));
	assert_int_equal(r->switch_seen_at, t);
	assert_int_equal(cutover_pass_interval(fx->c, 900), 30);
	assert_int_equal(cutover_dest_live(fx->c, &fx->acc->items[0]), 1);
	assert_int_equal(cutover_dest_live(fx->c, &fx->acc->items[1]), 0);
	answer(fx, 0, "mx1.new.example", t += 10);
	assert_int_equal(fx->requests, 1);

	/* rollback: every resolver old again -> synced */
	answer(fx, 0, "old-mx.example.com", t += 60);
	assert_int_equal(phase(fx), CUTOVER_SYNCED);
	assert_int_equal(r->switch_seen_at, 0);
	assert_non_null(strstr(r->hist[r->nhist - 1].why, "rolled back"));
	assert_int_equal(cutover_pass_interval(fx->c, 900), 900);

	/* the switch again: switching, dual-reception */
	answer(fx, 0, "mx1.new.example", t += 60);
	assert_int_equal(fx->requests, 2);
	answer(fx, 1, "mx2.new.example", t += 60);
	assert_int_equal(phase(fx), CUTOVER_DUAL);
	assert_int_equal(r->all_new_since, t);

	/* a pass that failed somewhere is not clean */
	fx->rv.last_inbound = t - 5;
	pass(fx, t += 60, 0, 1);
	assert_int_equal(r->sync.clean_started, 0);
	assert_int_equal(r->sync.nfail, 1);
	assert_string_equal(r->sync.fail[0].reason, "APPEND too large");
	assert_int_equal(r->sync.failed, 1);
	/* a clean pass, but the quiet period has not passed: dual */
	pass(fx, t += 60, 0, 0);
	assert_int_equal(phase(fx), CUTOVER_DUAL);
	assert_int_equal(r->sync.clean_started, t);
	/* the quiet period elapses with no pass: closed on a tick */
	assert_int_equal(cutover_evaluate(fx->c, 0, t + 3600), 0);
	assert_int_equal(phase(fx), CUTOVER_CLOSED);
	assert_int_equal(cutover_pass_interval(fx->c, 900), 900);
	t += 3600;

	/* a straggler at the relay: back to dual-reception */
	fx->rv.last_inbound = t + 5;
	fx->rv.arrivals_1h = 1;
	strcpy(fx->rv.last_client, "mail.example.org [192.0.2.1]");
	assert_int_equal(cutover_evaluate(fx->c, 0, t + 10), 0);
	assert_int_equal(phase(fx), CUTOVER_DUAL);
	assert_non_null(strstr(r->hist[r->nhist - 1].why,
	    "relay received 1 message"));
	/* an old clean pass does not close it again, even when quiet */
	fx->rv.arrivals_1h = 0;
	assert_int_equal(cutover_evaluate(fx->c, 0, t + 7200), 0);
	assert_int_equal(phase(fx), CUTOVER_DUAL);
	/* a clean pass after the straggler does */
	pass(fx, t + 7200, 0, 0);
	assert_int_equal(phase(fx), CUTOVER_CLOSED);

	/* the other domain has no MX answers: presync -> stays without one */
	assert_int_equal(cutover_domain_record(fx->c, 1)->phase,
	    CUTOVER_PRESYNC);
}

static void
test_persistence(void **state)
{
	struct fx *fx = *state;
	const struct cutover_record *r;
	size_t nhist;

	pass(fx, T0, 10, 0);
	answer(fx, 0, "old-mx.example.com", T0 + 20);
	answer(fx, 1, "old-mx.example.com", T0 + 20);
	answer(fx, 0, "mx1.new.example", T0 + 30);
	cutover_pass_started(fx->c, T0 + 40);
	assert_int_equal(phase(fx), CUTOVER_SWITCHING);
	nhist = cutover_domain_record(fx->c, 0)->nhist;
	fx_close(fx);	/* as a kill -9 would: nothing more is written */

	fx_open(fx);
	r = cutover_domain_record(fx->c, 0);
	assert_int_equal(r->phase, CUTOVER_SWITCHING);
	assert_int_equal(r->nhist, nhist);
	assert_int_equal(r->switch_seen_at, T0 + 30);
	assert_int_equal(r->nanswers, 2);
	assert_int_equal(r->answers[0].class, MX_CLASS_NEW);
	assert_int_equal(r->sync.full_done_at, T0 + 10);
	assert_int_equal(r->sync.running_since, 0);	/* died with us */
	assert_int_equal(cutover_pass_interval(fx->c, 900), 30);
	/* no second catch-up request for the same switch */
	answer(fx, 0, "mx1.new.example", T0 + 50);
	assert_int_equal(fx->requests, 1);
}

/* [cutover] rollback = yes: old again after the switch -> rollback, kept
 * through old answers, errors, a quiet relay and a restart; new leaves */
static void
test_rollback(void **state)
{
	struct fx *fx = *state;
	const struct cutover_record *r;
	const char *none[1] = { NULL };
	time_t t = T0, seen;

	answer(fx, 0, "old-mx.example.com", t);
	answer(fx, 1, "old-mx.example.com", t);
	pass(fx, t += 10, 5, 0);
	assert_int_equal(phase(fx), CUTOVER_SYNCED);
	r = cutover_domain_record(fx->c, 0);
	assert_int_equal(cutover_switch_time(fx->st, &fx->cfg,
	    &fx->acc->items[0]), 0);
	answer(fx, 0, "mx1.new.example", t += 60);
	answer(fx, 1, "mx1.new.example", t += 10);
	assert_int_equal(phase(fx), CUTOVER_DUAL);
	seen = r->switch_seen_at;
	assert_true(seen != 0);
	assert_int_equal(cutover_in_rollback(fx->c, &fx->acc->items[0]), 0);

	/* one resolver old: not a rollback yet */
	answer(fx, 0, "old-mx.example.com", t += 60);
	assert_int_equal(phase(fx), CUTOVER_SWITCHING);
	/* every resolver old: rollback, the switch time kept */
	answer(fx, 1, "old-mx.example.com", t += 60);
	assert_int_equal(phase(fx), CUTOVER_ROLLBACK);
	assert_int_equal(r->switch_seen_at, seen);
	assert_non_null(strstr(r->hist[r->nhist - 1].why, "rollback"));
	assert_int_equal(cutover_in_rollback(fx->c, &fx->acc->items[0]), 1);
	assert_int_equal(cutover_in_rollback(fx->c, &fx->acc->items[1]), 0);
	assert_int_equal(cutover_dest_live(fx->c, &fx->acc->items[0]), 1);
	assert_int_equal(cutover_pass_interval(fx->c, 900), 30);
	assert_int_equal(cutover_switch_time(fx->st, &fx->cfg,
	    &fx->acc->items[0]), seen - 10 - CUTOVER_SWITCH_MARGIN);

	/* errors, old answers, clean passes, a quiet relay: still rollback,
	 * never closed */
	assert_int_equal(cutover_note_answer(fx->c, 0, 0, DNS_TEMPFAIL, none, 0,
	    0, "timeout", t += 60), 0);
	answer(fx, 0, "old-mx.example.com", t += 60);
	pass(fx, t += 60, 0, 0);
	assert_int_equal(cutover_evaluate(fx->c, 0, t + 86400), 0);
	assert_int_equal(phase(fx), CUTOVER_ROLLBACK);

	/* kept over a restart */
	fx_close(fx);
	fx_open(fx);
	r = cutover_domain_record(fx->c, 0);
	assert_int_equal(phase(fx), CUTOVER_ROLLBACK);
	assert_int_equal(cutover_in_rollback(fx->c, &fx->acc->items[0]), 1);

	/* the MX new again: out of rollback, straight */
	answer(fx, 0, "old-mx.example.com", t += 60);
	answer(fx, 1, "old-mx.example.com", t);
	answer(fx, 0, "mx1.new.example", t += 60);
	assert_int_equal(phase(fx), CUTOVER_SWITCHING);
	assert_int_equal(r->hist[r->nhist - 1].from, CUTOVER_ROLLBACK);
	assert_int_equal(cutover_in_rollback(fx->c, &fx->acc->items[0]), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_account_domain, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_phases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rollback, setup_rollback,
		    teardown),
	};
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
