/*
 * test_control_page.c - the status page: HTML escaping, and a page
 * rendered from records full of markup (an MX host, an envelope sender,
 * an IMAP user and error) that must reach it as text only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "config.h"
#include "control_page.h"
#include "cutover_state.h"
#include "drain.h"
#include "queue_record.h"
#include "relay.h"
#include "store.h"
#include "tmpstore.h"

static int
setup(void **state)
{
	return (tmpstore_open(state, "test_control_page"));
}

static int
teardown(void **state)
{
	return (tmpstore_close(state));
}

/* escaped - control_page_escape(s) as a malloc'd string */
static char *
escaped(const char *s)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *out;

	assert_non_null(b);
	control_page_escape(b, s);
	len = evbuffer_get_length(b);
	out = malloc(len + 1);
	assert_non_null(out);
	evbuffer_remove(b, out, len);
	out[len] = '\0';
	evbuffer_free(b);
	return (out);
}

static void
test_escape(void **state)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "", "" },
		{ "plain text", "plain text" },
		{ "a&b", "a&amp;b" },
		{ "<script>x</script>", "&lt;script&gt;x&lt;/script&gt;" },
		{ "\"'", "&quot;&#39;" },
		{ "o'brien&co@example.org", "o&#39;brien&amp;co@example.org" },
		{ "&amp;", "&amp;amp;" },
		{ "caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac" },
		{ "a\x01" "b", "a\xef\xbf\xbd" "b" },
		{ "tab\tnl\n", "tab\xef\xbf\xbdnl\xef\xbf\xbd" },
		{ "\x7f", "\xef\xbf\xbd" },
		{ "\xc2\x85", "\xef\xbf\xbd" },		/* C1 NEL */
		{ "\xff<", "\xef\xbf\xbd&lt;" },
		{ "cut \xc3", "cut \xef\xbf\xbd" },
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
	};
	size_t i;
	char *got;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		got = escaped(t[i].in);
		if (strcmp(got, t[i].out) != 0)
			fail_msg("row %zu: got \"%s\", want \"%s\"", i, got,
			    t[i].out);
		free(got);
	}
}

#define EVIL_MX		"<script>alert(1)</script>.example"
#define EVIL_SENDER	"\"><img src=x onerror=alert(2)>@example.org"
#define EVIL_USER	"<img src=x onerror=alert(3)>"
#define EVIL_ERROR	"'><svg onload=alert(4)>"

static int
fill_fn(struct store_txn *tx, void *arg)
{
	struct cutover_record *r;
	struct queue_record q;
	struct delivery d;
	unsigned char *buf;
	size_t len;
	const char *doc = arg;
	time_t now = time(NULL);
	int rc;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return (2);
	cutover_record_init(r, "example.test", now - 60);
	r->nanswers = 1;
	snprintf(r->answers[0].resolver, sizeof(r->answers[0].resolver),
	    "127.0.0.1:53");
	r->answers[0].class = MX_CLASS_UNKNOWN;
	r->answers[0].asked_at = now;
	r->answers[0].nmx = 1;
	snprintf(r->answers[0].mx[0], sizeof(r->answers[0].mx[0]), "%s",
	    EVIL_MX);
	rc = cutover_record_put(tx, r);
	free(r);
	if (rc != 0)
		return (rc);

	memset(&q, 0, sizeof(q));
	memset(&d, 0, sizeof(d));
	snprintf(q.id, sizeof(q.id), "0123456789abcdef");
	q.arrived = now - 30;
	q.size = 1234;
	q.sender = EVIL_SENDER;
	q.client = "client.test [127.0.0.1]";
	d.rcpt = "alice@example.test";
	d.attempts = 1;
	d.next_try = now + 600;
	d.last_reply = "451 <b>busy</b>";
	q.ndlv = 1;
	q.dlv = &d;
	if (queue_record_encode(&q, &buf, &len) == -1)
		return (2);
	rc = store_put(tx, STORE_DB_QUEUE, q.id, strlen(q.id), buf, len, 0);
	free(buf);
	if (rc != 0)
		return (rc);
	return (store_put(tx, STORE_DB_META, "syncd.progress", 14, doc,
	    strlen(doc), 0));
}

static void
test_render_hostile(void **state)
{
	struct tmpstore *fx = *state;
	struct config cfg;
	struct relay relay;
	struct evbuffer *b;
	char err[512], doc[2048], *page;
	size_t len;

	snprintf(doc, sizeof(doc), "{\"pid\": 1, \"running\": false, "
	    "\"mode\": \"daemon\", \"pass\": \"idle\", \"pass_number\": 1, "
	    "\"started\": 1, \"updated\": 2, \"accounts_total\": 1, "
	    "\"accounts_done\": 1, \"copied\": 5, \"bytes\": 2097152, "
	    "\"eta_seconds\": null, \"last_pass\": null, \"accounts\": [{"
	    "\"user\": \"%s\", \"state\": \"failed\", \"folders_done\": 1, "
	    "\"folders_total\": 2, \"copied\": 5, \"failed\": 1, "
	    "\"error\": \"%s\", \"messages_done\": 6, \"messages_total\": 9, "
	    "\"bytes\": 2097152, \"rate_msgs\": 1.5, \"rate_bytes\": 10.0, "
	    "\"eta_seconds\": 2}]}", EVIL_USER, EVIL_ERROR);
	assert_int_equal(config_load_defaults(&cfg, err, sizeof(err)), 0);
	assert_int_equal(strlist_add(&cfg.cutover.domains, "example.test",
	    12), 0);
	assert_int_equal(store_txn_run(fx->st, 0, fill_fn, doc, err,
	    sizeof(err)), 0);
	memset(&relay, 0, sizeof(relay));
	relay.cfg = &cfg;
	relay.store = fx->st;
	relay.started = time(NULL) - 5;
	assert_int_equal(drain_new(&relay.drain, fx->st, err, sizeof(err)), 0);
	drain_note(relay.drain, time(NULL), "example.org", "127.0.0.1");

	assert_non_null(b = evbuffer_new());
	if (control_page_render(&relay, time(NULL), b, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	len = evbuffer_get_length(b);
	assert_non_null(page = malloc(len + 1));
	evbuffer_remove(b, page, len);
	page[len] = '\0';

	/* markup from the records reaches the page as text only */
	assert_null(strstr(page, "<img"));
	assert_null(strstr(page, "<b>"));
	assert_null(strstr(page, "<svg onload"));
	assert_null(strstr(page, "<script>alert"));
	assert_non_null(strstr(page, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	assert_non_null(strstr(page, "data-user=\"&lt;img src=x "
	    "onerror=alert(3)&gt;\""));
	assert_non_null(strstr(page, "&quot;&gt;&lt;img src=x "
	    "onerror=alert(2)&gt;@example.org"));
	assert_non_null(strstr(page, "&#39;&gt;&lt;svg onload=alert(4)&gt;"));
	assert_non_null(strstr(page, "451 &lt;b&gt;busy&lt;/b&gt;"));
	/* the numbers, in their data attributes */
	assert_non_null(strstr(page, "id=\"queue-deferred\" data-value=\"1\""));
	assert_non_null(strstr(page, "id=\"queue-oldest\" "
	    "data-id=\"0123456789abcdef\""));
	assert_non_null(strstr(page, "data-class=\"unknown\""));
	assert_non_null(strstr(page, "id=\"arrivals-total\" data-value=\"1\""));
	assert_non_null(strstr(page, "data-messages-done=\"6\" "
	    "data-messages-total=\"9\" data-bytes=\"2097152\""));
	assert_non_null(strstr(page, "id=\"sync-eta\" data-value=\"-1\""));
	assert_non_null(strstr(page, "<svg id=\"arrivals-chart\""));
	assert_non_null(strstr(page, "</html>\n"));
	/* one script: ours */
	assert_null(strstr(strstr(page, "<script>") + 1, "<script>"));

	free(page);
	evbuffer_free(b);
	drain_free(&relay.drain);
	config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test_setup_teardown(test_render_hostile, setup,
		    teardown),
	};
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
