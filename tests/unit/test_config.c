/*
 * test_config.c - mailferry.conf: defaults, types, and errors that name
 * the file and line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

static char tmpdir[] = "/tmp/test_config.XXXXXX";
static char path[256];

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return (-1);
	snprintf(path, sizeof(path), "%s/mailferry.conf", tmpdir);
	return (0);
}

static int
teardown(void **state)
{
	(void)state;
	unlink(path);
	return (rmdir(tmpdir));
}

static void
write_conf(const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void
test_example_is_valid(void **state)
{
	struct config cfg;
	char err[1024];

	(void)state;
	if (config_load(&cfg, TOP_SRCDIR "/conf/mailferry.conf.example",
	    err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(config_require(&cfg, CONFIG_FOR_RELAY, err, sizeof(err)), 0);
	assert_int_equal(config_require(&cfg, CONFIG_FOR_SYNCD, err, sizeof(err)), 0);
	assert_int_equal(cfg.relay.listen.count, 1);
	assert_int_equal(cfg.relay.listen.items[0].port, 2525);
	assert_string_equal(cfg.relay.hostname, "old-mx.example.com");
	assert_string_equal(cfg.checks.authserv_id, "old-mx.example.com");
	assert_int_equal(cfg.syncd.source.tls, CFG_IMAP_TLS_IMPLICIT);
	assert_int_equal(cfg.syncd.source.addr.port, 993);
	config_free(&cfg);
}

static void
test_defaults(void **state)
{
	struct config cfg;
	char err[512];

	(void)state;
	write_conf("[relay]\ndomains = example.com\n[forward]\nupstream = mx.new.example\n");
	if (config_load(&cfg, path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_string_equal(cfg.global.state_dir, "/var/lib/mailferry");
	assert_int_equal(cfg.relay.max_message_size, 50 * 1024 * 1024);
	assert_int_equal(cfg.relay.timeout, 300);
	assert_int_equal(cfg.relay.listen.items[0].port, 25);
	assert_string_equal(cfg.relay.listen.items[0].host, "0.0.0.0");
	assert_int_equal(cfg.forward.upstream.items[0].port, 25);
	assert_int_equal(cfg.forward.tls, CFG_TLS_REQUIRE);
	assert_int_equal(cfg.forward.retry_initial, 60);
	assert_int_equal(cfg.forward.retry_max, 1800);
	assert_int_equal(cfg.forward.queue_lifetime, 5 * 86400);
	assert_int_equal(cfg.dedupe.ttl, 14 * 86400);
	assert_int_equal(cfg.checks.spf, CFG_SPF_TAG);
	assert_int_equal(cfg.syncd.delete, 0);
	assert_int_equal(cfg.syncd.skip_non_mail, 1);
	assert_string_equal(cfg.control.socket, "/var/lib/mailferry/control.sock");
	assert_string_equal(cfg.relay.pid_file, "/var/lib/mailferry/ferry-relay.pid");
	assert_true(cfg.relay.hostname[0] != '\0');
	assert_string_equal(cfg.forward.helo_name, cfg.relay.hostname);
	assert_int_equal(cfg.cutover.catchup_interval, 120);
	assert_int_equal(cfg.cutover.old_mx.count, 1);
	assert_string_equal(cfg.cutover.old_mx.items[0], cfg.relay.hostname);
	config_free(&cfg);
}

/* [cutover]: old_mx, catchup_interval, and domains without new_mx */
static void
test_cutover(void **state)
{
	struct config cfg;
	char err[512];

	(void)state;
	write_conf("[relay]\nhostname = old-mx.example.com\n[cutover]\n"
	    "domains = example.com\nnew_mx = *.new.example\n");
	if (config_load(&cfg, path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(cfg.cutover.old_mx.count, 1);
	assert_string_equal(cfg.cutover.old_mx.items[0], "old-mx.example.com");
	assert_int_equal(cfg.cutover.catchup_interval, 120);
	config_free(&cfg);

	write_conf("[cutover]\ndomains = example.com\nnew_mx = *.new.example\n"
	    "old_mx = mx1.example.com mx2.example.com\nold_mx = *.old.example\n"
	    "catchup_interval = 30s\n");
	if (config_load(&cfg, path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(cfg.cutover.old_mx.count, 3);
	assert_string_equal(cfg.cutover.old_mx.items[2], "*.old.example");
	assert_int_equal(cfg.cutover.catchup_interval, 30);
	config_free(&cfg);

	/* domains but no new_mx: refused, naming the domains line */
	write_conf("[relay]\nhostname = x\n\n[cutover]\n; comment\n"
	    "domains = example.com\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "mailferry.conf:6: [cutover] domains: needs new_mx"));

	write_conf("[cutover]\ndomains = example.com\nnew_mx = a.example\n"
	    "catchup_interval = 0s\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":4: [cutover] catchup_interval"));

	write_conf("[cutover]\ncatchup_interval = soon\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: [cutover] catchup_interval"));

	/* no domains: new_mx is not needed */
	write_conf("[cutover]\nresolvers = 127.0.0.1:5353\n");
	if (config_load(&cfg, path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	config_free(&cfg);
}

static void
test_values(void **state)
{
	struct config cfg;
	char err[512];

	(void)state;
	write_conf(
	    "; a comment\n"
	    "[global]\n"
	    "state_dir = /srv/ferry   ; inline comment\n"
	    "log = stderr\n"
	    "log_facility = local3\n"
	    "[relay]\n"
	    "listen = 127.0.0.1:2525, [::1]:2525\n"
	    "domains = example.com, example.org\n"
	    "domains = example.net\n"
	    "max_message_size = 10K\n"
	    "timeout = 90s\n"
	    "[forward]\n"
	    "upstream = a.example:2526 [2001:db8::1]:25\n"
	    "tls = opportunistic\n"
	    "on_expire = hold\n"
	    "[syncd]\n"
	    "source = imap://old.example:1143?tls=none\n"
	    "destination = imap://new.example\n"
	    "include = INBOX\n"
	    "include = Sent Items\n"
	    "delete = yes\n"
	    "[control]\n"
	    "http = [::1]:8025\n");
	if (config_load(&cfg, path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_string_equal(cfg.global.state_dir, "/srv/ferry");
	assert_int_equal(cfg.relay.listen.count, 2);
	assert_int_equal(cfg.relay.listen.items[1].is_ipv6, 1);
	assert_int_equal(cfg.relay.domains.count, 3);
	assert_string_equal(cfg.relay.domains.items[2], "example.net");
	assert_string_equal(cfg.relay.domains.items[1], "example.org");
	assert_int_equal(cfg.relay.max_message_size, 10240);
	assert_int_equal(cfg.relay.timeout, 90);
	assert_int_equal(cfg.forward.upstream.count, 2);
	assert_string_equal(cfg.forward.upstream.items[1].host, "2001:db8::1");
	assert_int_equal(cfg.forward.tls, CFG_TLS_OPPORTUNISTIC);
	assert_int_equal(cfg.forward.on_expire, CFG_EXPIRE_HOLD);
	assert_int_equal(cfg.syncd.source.tls, CFG_IMAP_TLS_NONE);
	assert_int_equal(cfg.syncd.source.addr.port, 1143);
	assert_int_equal(cfg.syncd.destination.tls, CFG_IMAP_TLS_STARTTLS);
	assert_int_equal(cfg.syncd.destination.addr.port, 143);
	assert_int_equal(cfg.syncd.include.count, 2);
	assert_string_equal(cfg.syncd.include.items[1], "Sent Items");
	assert_int_equal(cfg.syncd.delete, 1);
	assert_string_equal(cfg.control.socket, "/srv/ferry/control.sock");
	assert_int_equal(cfg.control.http.items[0].port, 8025);
	config_free(&cfg);
}

/* Each bad file must be refused with "path:LINE: ..." naming the cause. */
static void
test_errors(void **state)
{
	static const struct { const char *text; int line; const char *why; } t[] = {
		{ "[relay]\ndomains = x\nbogus = 1\n", 3, "unknown key \"bogus\" in [relay]" },
		{ "[relay]\ndomains = x\n[nosuch]\nkey = 1\n", 4, "unknown section [nosuch]" },
		{ "[relay]\ntimeout = 5 minutes\n", 2, "bad duration" },
		{ "[relay]\ntimeout = 5x\n", 2, "[relay] timeout" },
		{ "[relay]\nmax_message_size = lots\n", 2, "bad size" },
		{ "[relay]\nmax_recipients = 0\n", 2, "out of range" },
		{ "[relay]\nlisten = ::1:25\n", 2, "[addr]:port" },
		{ "[relay]\nlisten = 127.0.0.1:99999\n", 2, "bad port" },
		{ "[forward]\ntls = maybe\n", 2, "require | opportunistic | none" },
		{ "[syncd]\ndelete = perhaps\n", 2, "bad boolean" },
		{ "[syncd]\nsource = http://x\n", 2, "bad IMAP URL" },
		{ "[relay]\ntimeout = 1m\ntimeout = 2m\n", 3, "set twice" },
		{ "[relay]\nthis line has no equals sign\n", 2, "syntax error" },
		{ "domains = x\n", 1, "outside any [section]" },
		{ "[global]\nlog_facility = kern\n", 2, "facility" },
		{ "[control]\nhttp = a:1, b:2\n", 2, "takes one address" },
	};
	struct config cfg;
	char err[512], want[600];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		write_conf(t[i].text);
		if (config_load(&cfg, path, err, sizeof(err)) == 0) {
			config_free(&cfg);
			fail_msg("case %zu accepted", i);
		}
		snprintf(want, sizeof(want), "%s:%d: ", path, t[i].line);
		if (strncmp(err, want, strlen(want)) != 0 || strstr(err, t[i].why) == NULL)
			fail_msg("case %zu: got \"%s\", want \"%s...%s\"", i, err,
			    want, t[i].why);
	}
}

static void
test_cross_key_and_required(void **state)
{
	struct config cfg;
	char err[512];

	(void)state;
	write_conf("[relay]\ntls_cert = /x.pem\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "tls_cert and tls_key"));

	write_conf("[forward]\nsrs_secret = short\nsrs_domain = srs.example\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "srs_secret must be at least 16"));
	write_conf("[forward]\nsrs_secret = 0123456789abcdef\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "set together"));

	write_conf("[forward]\nupstream = mx.example\n");
	if (config_load(&cfg, path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(config_require(&cfg, CONFIG_FOR_RELAY, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "[relay] domains is required"));
	assert_int_equal(config_require(&cfg, CONFIG_FOR_SYNCD, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "[syncd] source"));
	assert_int_equal(config_require(&cfg, CONFIG_FOR_CTL, err, sizeof(err)), 0);
	config_free(&cfg);

	assert_int_equal(config_load(&cfg, "/nonexistent/mailferry.conf", err,
	    sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/mailferry.conf: No such file or directory");
}

static void
test_long_line(void **state)
{
	struct config cfg;
	char err[512];
	char *text = malloc(20000);

	(void)state;
	assert_non_null(text);
	strcpy(text, "[relay]\ndomains = ");
	memset(text + strlen(text), 'a', 15000);
	strcpy(text + 18 + 15000, "\nbogus = 1\n");
	write_conf(text);
	free(text);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: "));
	assert_non_null(strstr(err, "too long"));
}

static void
test_control_auth(void **state)
{
	static const struct {
		const char	*host;
		int		 loopback;
	} hosts[] = {
		{ "127.0.0.1", 1 }, { "127.3.4.5", 1 }, { "::1", 1 },
		{ "::ffff:127.0.0.1", 1 }, { "localhost", 1 },
		{ "LocalHost", 1 }, { "0.0.0.0", 0 }, { "::", 0 },
		{ "192.0.2.1", 0 }, { "128.0.0.1", 0 }, { "::2", 0 },
		{ "::ffff:192.0.2.1", 0 }, { "localhost.example", 0 },
		{ "mx.example.com", 0 },
	};
	struct config cfg;
	char err[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		if (config_host_is_loopback(hosts[i].host) != hosts[i].loopback)
			fail_msg("row %zu: %s", i, hosts[i].host);

	/* a non-loopback listener needs credentials, named by its line */
	write_conf("[control]\n; the admin network\nhttp = 0.0.0.0:8025\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "mailferry.conf:3: [control] http: 0.0.0.0 "
	    "is not a loopback address"));
	write_conf("[control]\nhttp = [::]:8025\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: [control] http: :: is not a loopback"));
	write_conf("[control]\nhttp = 192.0.2.1:8025\n"
	    "auth_token_file = /etc/mailferry/token\n");
	if (config_load(&cfg, path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_string_equal(cfg.control.auth_token_file, "/etc/mailferry/token");
	config_free(&cfg);
	write_conf("[control]\nhttp = 192.0.2.1:8025\nauth_user = admin\n"
	    "auth_password_file = /etc/mailferry/password\n");
	if (config_load(&cfg, path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	config_free(&cfg);
	/* loopback: no credentials needed; an empty http listens nowhere */
	write_conf("[control]\nhttp = 127.0.0.1:8025\n");
	if (config_load(&cfg, path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_string_equal(cfg.control.auth_user, "");
	config_free(&cfg);
	write_conf("[control]\nhttp =\n");
	if (config_load(&cfg, path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	config_free(&cfg);

	/* basic auth needs both keys; the user name cannot hold ':' */
	write_conf("[control]\n\nauth_user = admin\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":3: [control] auth_user and "
	    "auth_password_file must be set together"));
	write_conf("[control]\nauth_password_file = /p\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: [control] auth_user and"));
	write_conf("[control]\nauth_user = a:b\nauth_password_file = /p\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: [control] auth_user: must not contain"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_is_valid),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_cross_key_and_required),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_cutover),
		cmocka_unit_test(test_control_auth),
	};
	return (cmocka_run_group_tests(tests, setup, teardown));
}
