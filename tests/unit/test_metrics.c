/*
 * test_metrics.c - ferry-syncd's counters and their exposition
 * (syncd/metrics.c): every family present with zeros before the first
 * event; counts by reason and server; cumulative histogram buckets with
 * _sum and _count; accounts by state read from an attached progress and
 * kept after the pass ends; per-account rows updated in place; label
 * escaping; counting from many threads at once loses nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "metrics.h"
#include "sync.h"

/* render - the exposition as a NUL-terminated string, malloc'd */
static char *
render(void)
{
	struct evbuffer *b = evbuffer_new();
	char *s;
	size_t n;

	assert_non_null(b);
	assert_int_equal(metrics_render(b, 1000), 0);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	assert_non_null(s);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return (s);
}

/* sample - the value of the sample line "NAME{LABELS} v", or -1 */
static double
sample(const char *text, const char *name)
{
	size_t n = strlen(name);
	const char *p = text;

	while ((p = strstr(p, name)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return (strtod(p + n + 1, NULL));
		p += n;
	}
	return (-1);
}

static int
setup(void **state)
{
	(void)state;
	metrics_reset();
	return (0);
}

static void
test_zeros(void **state)
{
	char *s;

	(void)state;
	s = render();
	assert_true(sample(s, "mailferry_syncd_copied_messages_total") == 0);
	assert_true(sample(s, "mailferry_syncd_failed_total{reason=\"refused\"}") == 0);
	assert_true(sample(s, "mailferry_syncd_duplicates_total{reason=\"ledger\"}") == 0);
	assert_true(sample(s, "mailferry_syncd_mx_answers_total{class=\"mixed\"}") == 0);
	assert_true(sample(s, "mailferry_syncd_reconnects_total{server=\"destination\"}") == 0);
	assert_true(sample(s, "mailferry_syncd_last_pass_result{result=\"complete\"}") == 0);
	assert_true(sample(s, "mailferry_syncd_pass_running") == 0);
	assert_non_null(strstr(s, "# TYPE mailferry_syncd_copied_messages_total counter\n"));
	assert_non_null(strstr(s, "# TYPE mailferry_syncd_pass_duration_seconds histogram\n"));
	/* no uptime before metrics_start */
	assert_null(strstr(s, "mailferry_syncd_uptime_seconds"));
	free(s);
}

static void
test_counts(void **state)
{
	char *s;

	(void)state;
	metrics_start(900);
	metrics_copied(100);
	metrics_copied(23);
	metrics_duplicates(METRICS_DUP_ALREADY, 3);
	metrics_duplicates(METRICS_DUP_LEDGER, 1);
	metrics_duplicates(METRICS_NDUPS, 5);		/* out of range: ignored */
	metrics_policy(2);
	metrics_failed(METRICS_FAIL_SOURCE);
	metrics_failed(METRICS_FAIL_TEMPORARY);
	metrics_failed(METRICS_FAIL_TEMPORARY);
	metrics_reconnect(METRICS_DESTINATION);
	metrics_throttle(METRICS_THROTTLE_RATE, 0.5);
	metrics_throttle(METRICS_THROTTLE_RATE, 0.25);
	metrics_mx_answer(1);	/* MX_CLASS_OLD */
	metrics_mx_answer(99);	/* ignored */
	s = render();
	assert_true(sample(s, "mailferry_syncd_uptime_seconds") == 100);
	assert_true(sample(s, "mailferry_syncd_copied_messages_total") == 2);
	assert_true(sample(s, "mailferry_syncd_copied_bytes_total") == 123);
	assert_true(sample(s, "mailferry_syncd_duplicates_total{reason=\"already_there\"}") == 3);
	assert_true(sample(s, "mailferry_syncd_duplicates_total{reason=\"ledger\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_policy_skipped_total") == 2);
	assert_true(sample(s, "mailferry_syncd_failed_total{reason=\"refused\"}") == 0);
	assert_true(sample(s, "mailferry_syncd_failed_total{reason=\"source\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_failed_total{reason=\"temporary\"}") == 2);
	assert_true(sample(s, "mailferry_syncd_reconnects_total{server=\"source\"}") == 0);
	assert_true(sample(s, "mailferry_syncd_reconnects_total{server=\"destination\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_throttle_waits_total{reason=\"rate_limit\"}") == 2);
	assert_true(sample(s, "mailferry_syncd_throttle_seconds_total{reason=\"rate_limit\"}") == 0.75);
	assert_true(sample(s, "mailferry_syncd_mx_answers_total{class=\"old\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_mx_answers_total{class=\"new\"}") == 0);
	free(s);
}

static void
test_histograms(void **state)
{
	char *s;

	(void)state;
	metrics_imap_timing(metrics_server_arg(METRICS_SOURCE), 0.003);
	metrics_imap_timing(metrics_server_arg(METRICS_SOURCE), 0.2);
	metrics_imap_timing(metrics_server_arg(METRICS_SOURCE), 100);
	metrics_imap_command(METRICS_DESTINATION, 0.02);
	metrics_imap_timing(NULL, 1);		/* no server: ignored */
	s = render();
	assert_true(sample(s, "mailferry_syncd_imap_command_seconds_bucket{server=\"source\",le=\"0.005\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_imap_command_seconds_bucket{server=\"source\",le=\"0.25\"}") == 2);
	assert_true(sample(s, "mailferry_syncd_imap_command_seconds_bucket{server=\"source\",le=\"30\"}") == 2);
	assert_true(sample(s, "mailferry_syncd_imap_command_seconds_bucket{server=\"source\",le=\"+Inf\"}") == 3);
	assert_true(sample(s, "mailferry_syncd_imap_command_seconds_count{server=\"source\"}") == 3);
	assert_true(sample(s, "mailferry_syncd_imap_command_seconds_sum{server=\"source\"}") > 100.2);
	assert_true(sample(s, "mailferry_syncd_imap_command_seconds_bucket{server=\"destination\",le=\"0.01\"}") == 0);
	assert_true(sample(s, "mailferry_syncd_imap_command_seconds_bucket{server=\"destination\",le=\"0.025\"}") == 1);
	free(s);
}

static void
test_pass(void **state)
{
	struct sync_progress pr;
	struct sync_acct_progress acc[3];
	char *s;

	(void)state;
	memset(&pr, 0, sizeof(pr));
	memset(acc, 0, sizeof(acc));
	pthread_mutex_init(&pr.mu, NULL);
	acc[0].state = SYNC_ACCT_DONE;
	acc[1].state = SYNC_ACCT_RUNNING;
	acc[2].state = SYNC_ACCT_WAITING;
	pr.acc = acc;
	pr.nacc = 3;
	pr.messages_total = 10;
	pr.messages_done = 4;
	pr.bytes = 4096;

	metrics_pass_begin(950);
	metrics_pass_attach(&pr);
	s = render();
	assert_true(sample(s, "mailferry_syncd_pass_running") == 1);
	assert_true(sample(s, "mailferry_syncd_pass_start_timestamp_seconds") == 950);
	assert_true(sample(s, "mailferry_syncd_accounts{state=\"done\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_accounts{state=\"running\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_accounts{state=\"waiting\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_pass_messages_planned") == 10);
	assert_true(sample(s, "mailferry_syncd_pass_messages_done") == 4);
	free(s);

	acc[1].state = SYNC_ACCT_FAILED;
	acc[2].state = SYNC_ACCT_DONE;
	pr.messages_done = 10;
	metrics_pass_end(METRICS_MISSING, 42, 992);
	/* the progress is gone: what the pass ended with is kept */
	memset(acc, 0xff, sizeof(acc));
	pthread_mutex_destroy(&pr.mu);
	assert_int_equal(metrics_account_result("alice", METRICS_COMPLETE, 990), 0);
	assert_int_equal(metrics_account_result("bo\"b\\", METRICS_ERROR, 991), 0);
	assert_int_equal(metrics_account_result("alice", METRICS_MISSING, 992), 0);
	s = render();
	assert_true(sample(s, "mailferry_syncd_pass_running") == 0);
	assert_true(sample(s, "mailferry_syncd_accounts{state=\"done\"}") == 2);
	assert_true(sample(s, "mailferry_syncd_accounts{state=\"failed\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_pass_messages_done") == 10);
	assert_true(sample(s, "mailferry_syncd_passes_total{result=\"missing\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_passes_total{result=\"complete\"}") == 0);
	assert_true(sample(s, "mailferry_syncd_last_pass_result{result=\"missing\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_last_pass_result{result=\"complete\"}") == 0);
	assert_true(sample(s, "mailferry_syncd_last_pass_end_timestamp_seconds") == 992);
	assert_true(sample(s, "mailferry_syncd_pass_duration_seconds_bucket{le=\"15\"}") == 0);
	assert_true(sample(s, "mailferry_syncd_pass_duration_seconds_bucket{le=\"60\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_pass_duration_seconds_sum") == 42);
	/* one row per account, updated in place, its name escaped */
	assert_true(sample(s, "mailferry_syncd_account_last_pass_result{account=\"alice\",result=\"missing\"}") == 1);
	assert_true(sample(s, "mailferry_syncd_account_last_pass_result{account=\"alice\",result=\"complete\"}") == 0);
	assert_true(sample(s, "mailferry_syncd_account_last_pass_end_timestamp_seconds{account=\"alice\"}") == 992);
	assert_true(sample(s, "mailferry_syncd_account_last_pass_result{account=\"bo\\\"b\\\\\",result=\"error\"}") == 1);
	assert_null(strstr(strstr(s, "account=\"alice\"") + 1,
	    "end_timestamp_seconds{account=\"alice\"}"));
	free(s);
}

static void
test_label(void **state)
{
	char buf[16];

	(void)state;
	assert_string_equal(metrics_label("a\"b\\c\nd", buf, sizeof(buf)),
	    "a\\\"b\\\\c\\nd");
	/* cut to fit, never half an escape */
	assert_string_equal(metrics_label("\"\"\"\"\"\"\"\"\"\"", buf, 8),
	    "\\\"\\\"\\\"");
}

static void *
counter_thread(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 20000; i++) {
		metrics_copied(2);
		metrics_imap_command(METRICS_SOURCE, 0.001);
	}
	return (NULL);
}

static void
test_threads(void **state)
{
	pthread_t t[4];
	char *s;
	int i;

	(void)state;
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, counter_thread,
		    NULL), 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	s = render();
	assert_true(sample(s, "mailferry_syncd_copied_messages_total") == 80000);
	assert_true(sample(s, "mailferry_syncd_copied_bytes_total") == 160000);
	assert_true(sample(s, "mailferry_syncd_imap_command_seconds_count{server=\"source\"}") == 80000);
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_zeros, setup),
		cmocka_unit_test_setup(test_counts, setup),
		cmocka_unit_test_setup(test_histograms, setup),
		cmocka_unit_test_setup(test_pass, setup),
		cmocka_unit_test_setup(test_label, setup),
		cmocka_unit_test_setup(test_threads, setup),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	metrics_reset();
	return (rc);
}
