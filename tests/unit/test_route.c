/*
 * test_route.c - the relay's per-recipient routing (relay/route.c):
 * recipients of a wave that is pending go to copy_to only, of a
 * migrated wave or without a wave to the upstream; a domain whose
 * cutover record is in rollback goes to copy_to; matching by source or
 * destination user, by local part for a user without '@', case-
 * insensitively; waves without copy_to refused at load with file:line;
 * an unreadable routing record refuses the decision.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "config.h"
#include "cutover_state.h"
#include "route.h"
#include "route_state.h"
#include "store.h"
#include "tmpdir.h"

struct fx {
	char		 dir[64];
	struct store	*st;
	struct config	 cfg;
};

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, 0600), 0);
}

/* load_conf - the configuration with an accounts file and copy_to or not */
static void
load_conf(struct fx *f, const char *accounts, int copy)
{
	char conf[128], acc[128], text[1024], err[512];

	snprintf(acc, sizeof(acc), "%s/accounts", f->dir);
	write_file(acc, accounts);
	snprintf(conf, sizeof(conf), "%s/mailferry.conf", f->dir);
	snprintf(text, sizeof(text), "[global]\nstate_dir = %s\n[relay]\n"
	    "domains = example.test, rb.test\naccounts = %s\n[forward]\n"
	    "upstream = 127.0.0.1:2525\n%s", f->dir, acc,
	    copy ? "copy_to = 127.0.0.1:2526\n" : "");
	write_file(conf, text);
	config_free(&f->cfg);
	if (config_load(&f->cfg, conf, err, sizeof(err)) == -1)
		fail_msg("config_load: %s", err);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char db[128], err[256];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_route.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(db, sizeof(db), "%s/db", f->dir);
	assert_int_equal(store_open(&f->st, db, 0, err, sizeof(err)), 0);
	assert_int_equal(config_load_defaults(&f->cfg, err, sizeof(err)), 0);
	*state = f;
	return (0);
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	store_close(&f->st);
	config_free(&f->cfg);
	(void)tmpdir_remove(f->dir);
	free(f);
	return (0);
}

static const char accounts[] =
    "w1@example.test  p  w1.new@example.test  p  wave=1\n"
    "W2@Example.Test  p  w2@example.test      p  wave=2\n"
    "carol            p  carol@new.example    p  wave=1\n"
    "free@example.test p free@example.test    p\n"
    "rb1@rb.test      p  rb1@rb.test          p  wave=2\n";

static int
put_cutover(struct store_txn *tx, void *arg)
{
	return (cutover_record_put(tx, arg));
}

/* set_phase - the cutover record of domain in phase */
static void
set_phase(struct fx *f, const char *domain, enum cutover_phase p)
{
	struct cutover_record *r = malloc(sizeof(*r));
	char err[256];

	assert_non_null(r);
	cutover_record_init(r, domain, 1800000000);
	r->phase = p;
	assert_int_equal(store_txn_run(f->st, 0, put_cutover, r, err,
	    sizeof(err)), 0);
	free(r);
}

static void
set_wave(struct fx *f, unsigned wave, enum route_wave_state s)
{
	struct route_wave w;
	char err[256];

	route_wave_init(&w, wave);
	w.state = s;
	w.since = 1800000000;
	assert_int_equal(route_state_write(f->st, &w, err, sizeof(err)), 0);
}

/* where - "LLU...": L local, U upstream, for each of rcpts */
static void
where(struct fx *f, struct relay_routes *rt, char *const *rcpts, size_t n,
    const char *want)
{
	struct route_choice c[8];
	char got[9], err[256];
	size_t i;

	assert_int_equal(relay_routes_decide(rt, f->st, NULL, rcpts, n, c,
	    err, sizeof(err)), 0);
	for (i = 0; i < n; i++)
		got[i] = c[i].local ? 'L' : 'U';
	got[n] = '\0';
	assert_string_equal(got, want);
}

static void
test_waves(void **state)
{
	struct fx *f = *state;
	struct relay_routes *rt;
	char *rcpts[] = { "w1@example.test", "w1.NEW@example.test",
	    "w2@example.test", "carol@example.test", "free@example.test",
	    "other@example.test", "rb1@rb.test" };
	char err[512];

	load_conf(f, accounts, 1);
	assert_int_equal(relay_routes_load(&f->cfg, &rt, err, sizeof(err)), 0);
	assert_int_equal(relay_routes_wave(rt, "W1@EXAMPLE.TEST"), 1);
	assert_int_equal(relay_routes_wave(rt, "carol@anything.test"), 1);
	assert_int_equal(relay_routes_wave(rt, "free@example.test"), 0);
	assert_int_equal(relay_routes_wave_count(rt, 1), 2);
	assert_int_equal(relay_routes_wave_count(rt, 2), 2);
	assert_int_equal(relay_routes_wave_count(rt, 3), 0);

	/* every wave starts pending */
	where(f, rt, rcpts, 7, "LLLLUUL");
	set_wave(f, 1, ROUTE_WAVE_MIGRATED);
	where(f, rt, rcpts, 7, "UULUUUL");
	set_wave(f, 2, ROUTE_WAVE_MIGRATED);
	where(f, rt, rcpts, 7, "UUUUUUU");
	set_wave(f, 1, ROUTE_WAVE_PENDING);
	where(f, rt, rcpts, 7, "LLULUUU");

	/* a domain in rollback: all of it to copy_to, whatever the wave */
	set_phase(f, "rb.test", CUTOVER_ROLLBACK);
	set_phase(f, "example.test", CUTOVER_DUAL);
	where(f, rt, rcpts, 7, "LLULUUL");
	set_phase(f, "example.test", CUTOVER_ROLLBACK);
	where(f, rt, rcpts, 7, "LLLLLLL");
	relay_routes_free(&rt);
	assert_null(rt);
}

static void
test_refusals(void **state)
{
	struct fx *f = *state;
	struct relay_routes *rt;
	struct route_choice c[1];
	char *rcpt[] = { "w1@example.test" };
	char err[512];

	/* waves without copy_to: the first account in a wave, file:line */
	load_conf(f, "free@example.test p f p\nw1@example.test p w p wave=3\n",
	    0);
	assert_int_equal(relay_routes_load(&f->cfg, &rt, err, sizeof(err)),
	    -1);
	assert_null(rt);
	assert_non_null(strstr(err, "/accounts:2: this account is in wave 3"));
	assert_non_null(strstr(err, "copy_to"));

	/* no waves and no copy_to: fine, and rollback cannot go local */
	load_conf(f, "free@example.test p f p\n", 0);
	assert_int_equal(relay_routes_load(&f->cfg, &rt, err, sizeof(err)), 0);
	set_phase(f, "example.test", CUTOVER_ROLLBACK);
	assert_int_equal(relay_routes_decide(rt, f->st, NULL, rcpt, 1, c, err,
	    sizeof(err)), 0);
	assert_int_equal(c[0].local, 0);
	assert_int_equal(c[0].rollback, 1);
	relay_routes_free(&rt);

	/* a malformed accounts line */
	load_conf(f, "w1@example.test p w p wave=0\n", 1);
	assert_int_equal(relay_routes_load(&f->cfg, &rt, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "/accounts:1: "));
}

static int
put_bad(struct store_txn *tx, void *arg)
{
	(void)arg;
	return (store_put(tx, STORE_DB_META, "route.wave.1", 12, "\x01\x07",
	    2, 0) != 0 ? -1 : 0);
}

static void
test_unreadable(void **state)
{
	struct fx *f = *state;
	struct relay_routes *rt;
	struct route_choice c[2];
	char *rcpts[] = { "free@example.test", "w1@example.test" };
	char err[512];

	load_conf(f, accounts, 1);
	assert_int_equal(relay_routes_load(&f->cfg, &rt, err, sizeof(err)), 0);
	assert_int_equal(store_txn_run(f->st, 0, put_bad, NULL, err,
	    sizeof(err)), 0);
	/* free@ alone needs no wave record */
	assert_int_equal(relay_routes_decide(rt, f->st, NULL, rcpts, 1, c,
	    err, sizeof(err)), 0);
	assert_int_equal(relay_routes_decide(rt, f->st, NULL, rcpts, 2, c,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "wave 1: bad routing record"));
	relay_routes_free(&rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_waves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unreadable, setup,
		    teardown),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
