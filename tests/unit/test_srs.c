/*
 * test_srs.c - relay/srs: known answers (hash and day stamp computed
 * independently with Python's hmac/base64), forward/reverse round trips
 * (local parts with '=', '+', upper case, UTF-8; lower- and upper-cased
 * SRS addresses), senders left alone, tampering with every field,
 * expiry, addresses that are not ours, malformed ones, small buffers and
 * set-up errors.
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

#include "smtp_parse.h"
#include "srs.h"

#define SECRET	"0123456789abcdef-test-secret"
#define DOMAIN	"srs.example.net"
#define NOW	((time_t)1700000000)	/* day 19675, stamp 219 = "G3" */
#define DAY	((time_t)86400)

static int
setup(void **state)
{
	char err[128];

	*state = srs_new(SECRET, DOMAIN, err, sizeof(err));
	return (*state == NULL ? -1 : 0);
}

static int
teardown(void **state)
{
	struct srs *srs = *state;

	srs_free(&srs);
	assert_null(srs);
	return (0);
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static void
upper(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 'a' + 'A');
}

/* Python: base32(hmac(SECRET, "g3\0example.com\0alice", sha256)[:5]) */
static void
test_known_answers(void **state)
{
	struct srs *srs = *state;
	char out[256];

	assert_int_equal(srs_forward(srs, "alice@example.com", NOW, out,
	    sizeof(out)), SRS_OK);
	assert_string_equal(out,
	    "SRS0=SOD5J7HX=G3=example.com=alice@srs.example.net");
	/* the hash input is lower-cased, the address keeps its case */
	assert_int_equal(srs_forward(srs, "A=B+c@Example.COM", NOW, out,
	    sizeof(out)), SRS_OK);
	assert_string_equal(out,
	    "SRS0=QJRUV7TJ=G3=Example.COM=A=B+c@srs.example.net");
	/* day stamps: day 0 is "AA", day 1023 is "77", day 1024 wraps */
	assert_int_equal(srs_forward(srs, "a@b.example", 0, out, sizeof(out)),
	    SRS_OK);
	assert_non_null(strstr(out, "=AA=b.example=a@"));
	assert_int_equal(srs_forward(srs, "a@b.example", 1023 * DAY + 5, out,
	    sizeof(out)), SRS_OK);
	assert_non_null(strstr(out, "=77=b.example=a@"));
	assert_int_equal(srs_forward(srs, "a@b.example", 1024 * DAY, out,
	    sizeof(out)), SRS_OK);
	assert_non_null(strstr(out, "=AA=b.example=a@"));
}

static void
test_round_trips(void **state)
{
	static const char *senders[] = {
		"alice@example.com",
		"a=b@example.com",
		"x=y==z=@sub.example.org",
		"first.last+tag@example.com",
		"Mixed.Case@Example.COM",
		"o'brien@example.ie",
		"!#$%&*+/?^_`{|}~-@example.com",
		"j\xc3\xb6rg@example.de",
		"user@xn--bcher-kva.example",
		"bounces@mail_host.example.com",
		/* already SRS0 of another forwarder: wrapped again */
		"SRS0=ABCD=G3=orig.example=u@fwd.example",
	};
	struct srs *srs = *state;
	char fwd[512], back[512], cased[512], want[512];
	size_t i;

	for (i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
		const char *s = senders[i];

		if (srs_forward(srs, s, NOW, fwd, sizeof(fwd)) != SRS_OK)
			fail_msg("%zu %s: not rewritten", i, s);
		if (strncmp(fwd, "SRS0=", 5) != 0 ||
		    strcmp(fwd + strlen(fwd) - strlen("@" DOMAIN),
		    "@" DOMAIN) != 0)
			fail_msg("%zu %s: %s", i, s, fwd);
		assert_true(srs_is_srs(srs, fwd));
		if (srs_reverse(srs, fwd, NOW + 3 * DAY, back, sizeof(back)) !=
		    SRS_OK || strcmp(back, s) != 0)
			fail_msg("%zu %s: reversed to \"%s\"", i, s, back);
		/* an MTA lower-cased the whole bounce address */
		snprintf(cased, sizeof(cased), "%s", fwd);
		lower(cased);
		snprintf(want, sizeof(want), "%s", s);
		lower(want);
		if (srs_reverse(srs, cased, NOW, back, sizeof(back)) != SRS_OK ||
		    strcmp(back, want) != 0)
			fail_msg("%zu %s: lower-cased %s reversed to \"%s\"", i,
			    s, cased, back);
		/* or upper-cased it */
		snprintf(cased, sizeof(cased), "%s", fwd);
		upper(cased);
		snprintf(want, sizeof(want), "%s", s);
		upper(want);
		if (srs_reverse(srs, cased, NOW, back, sizeof(back)) != SRS_OK ||
		    strcmp(back, want) != 0)
			fail_msg("%zu %s: upper-cased %s reversed to \"%s\"", i,
			    s, cased, back);
	}
}

static void
test_unchanged(void **state)
{
	static const char *senders[] = {
		"",				/* <> */
		"postmaster",			/* no domain */
		"user@",
		"@example.com",
		"user@srs.example.net",		/* ours already */
		"User@SRS.Example.NET",
		"SRS0=SOD5J7HX=G3=example.com=alice@srs.example.net",
		"\"quoted local\"@example.com",
		"a\"b@example.com",
		"a b@example.com",
		"user@[192.0.2.1]",
		"user@.example.com",
		"user@exa mple.com",
	};
	struct srs *srs = *state;
	char out[256];
	size_t i;

	for (i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
		memset(out, 'x', sizeof(out));
		if (srs_forward(srs, senders[i], NOW, out, sizeof(out)) !=
		    SRS_UNCHANGED || strcmp(out, senders[i]) != 0)
			fail_msg("%zu \"%s\": got \"%s\"", i, senders[i], out);
	}
}

/* replace - copy addr with the n-th occurrence of field (after the
 * first "SRS0=") replaced; used to tamper with one field at a time */
static void
tamper(char *dst, size_t len, const char *addr, int field, const char *with)
{
	const char *p = addr + 5, *e;
	int k;

	for (k = 0; k < field; k++)
		p = strchr(p, '=') + 1;
	e = field < 3 ? strchr(p, '=') : strrchr(p, '@');
	snprintf(dst, len, "%.*s%s%s", (int)(p - addr), addr, with, e);
}

static void
test_tampering(void **state)
{
	static const struct {
		int		 field;		/* 0 hash 1 stamp 2 domain 3 local */
		const char	*with;
	} cases[] = {
		{ 0, "SOD5J7HY" },	/* last hash character */
		{ 0, "AOD5J7HX" },	/* first */
		{ 0, "SOD5J7H" },	/* truncated */
		{ 0, "SOD5J7HXA" },	/* extended */
		{ 0, "SOD5J7H1" },	/* not base32 */
		{ 0, "X" },
		{ 1, "G4" },		/* a newer day */
		{ 1, "G2" },		/* an older one */
		{ 2, "example.org" },
		{ 2, "evil.example" },
		{ 2, "example.com.evil.example" },
		{ 3, "bob" },
		{ 3, "alice2" },
		{ 3, "alice=x" },
	};
	struct srs *srs = *state;
	char fwd[256], bad[256], out[256];
	size_t i;
	int rc;

	assert_int_equal(srs_forward(srs, "alice@example.com", NOW, fwd,
	    sizeof(fwd)), SRS_OK);
	assert_string_equal(fwd,
	    "SRS0=SOD5J7HX=G3=example.com=alice@srs.example.net");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tamper(bad, sizeof(bad), fwd, cases[i].field, cases[i].with);
		assert_string_not_equal(bad, fwd);
		strcpy(out, "junk");
		rc = srs_reverse(srs, bad, NOW, out, sizeof(out));
		if (rc != SRS_EBADHASH || out[0] != '\0')
			fail_msg("case %zu %s: %s (%s)", i, bad,
			    srs_strerror(rc), out);
	}
	/* the same address under another secret */
	{
		char err[64];
		struct srs *other = srs_new("another-secret-0123456789", DOMAIN,
		    err, sizeof(err));

		assert_non_null(other);
		assert_int_equal(srs_reverse(other, fwd, NOW, out,
		    sizeof(out)), SRS_EBADHASH);
		srs_free(&other);
	}
	/* and the untouched one still reverses */
	assert_int_equal(srs_reverse(srs, fwd, NOW, out, sizeof(out)), SRS_OK);
	assert_string_equal(out, "alice@example.com");
}

static void
test_expiry(void **state)
{
	static const struct {
		time_t	 at;		/* reverse time, from the day's start */
		int	 want;
	} cases[] = {
		{ 0, SRS_OK },
		{ DAY - 1, SRS_OK },
		{ 21 * DAY, SRS_OK },
		{ 22 * DAY - 1, SRS_OK },	/* last second of day 21 */
		{ 22 * DAY, SRS_EEXPIRED },
		{ 30 * DAY, SRS_EEXPIRED },
		{ 500 * DAY, SRS_EEXPIRED },
		{ -1, SRS_OK },			/* made "tomorrow": skew */
		{ -DAY, SRS_OK },
		{ -DAY - 1, SRS_EEXPIRED },	/* two days ahead */
	};
	struct srs *srs = *state;
	char fwd[256], out[256];
	time_t day0 = NOW - NOW % DAY;
	size_t i;
	int rc;

	assert_int_equal(srs_forward(srs, "a=b@example.com", NOW, fwd,
	    sizeof(fwd)), SRS_OK);
	/* the issue's case: a month later */
	assert_int_equal(srs_reverse(srs, fwd, NOW + 30 * DAY, out,
	    sizeof(out)), SRS_EEXPIRED);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = srs_reverse(srs, fwd, day0 + cases[i].at, out, sizeof(out));
		if (rc != cases[i].want)
			fail_msg("case %zu (+%lld s): %s, want %s", i,
			    (long long)cases[i].at, srs_strerror(rc),
			    srs_strerror(cases[i].want));
	}
	/* a shorter lifetime */
	assert_int_equal(srs_set_max_age(srs, 5), 0);
	assert_int_equal(srs_reverse(srs, fwd, day0 + 5 * DAY, out,
	    sizeof(out)), SRS_OK);
	assert_int_equal(srs_reverse(srs, fwd, day0 + 6 * DAY, out,
	    sizeof(out)), SRS_EEXPIRED);
	assert_string_equal(out, "");
	assert_int_equal(srs_set_max_age(srs, 0), -1);
	assert_int_equal(srs_set_max_age(srs, 1001), -1);
	assert_int_equal(srs_set_max_age(srs, SRS_MAX_AGE_DEFAULT), 0);
}

static void
test_not_srs_and_malformed(void **state)
{
	static const struct {
		const char	*addr;
		int		 want;
	} cases[] = {
		{ "alice@example.com", SRS_ENOTSRS },
		{ "bounce@srs.example.net", SRS_ENOTSRS },
		{ "", SRS_ENOTSRS },
		{ "srs.example.net", SRS_ENOTSRS },
		{ "SRS0=SOD5J7HX=G3=example.com=alice@other.example",
		    SRS_ENOTSRS },
		{ "SRS0=SOD5J7HX=G3=example.com=alice@srs.example.net.evil",
		    SRS_ENOTSRS },
		{ "SRS1=HHHH=fwd.example==SOD5J7HX=G3=example.com=alice"
		    "@srs.example.net", SRS_ENOTSRS },
		{ "SRS0+SOD5J7HX=G3=example.com=alice@srs.example.net",
		    SRS_ENOTSRS },
		{ "SRS0=@srs.example.net", SRS_EMALFORMED },
		{ "SRS0=SOD5J7HX@srs.example.net", SRS_EMALFORMED },
		{ "SRS0==G3=example.com=alice@srs.example.net",
		    SRS_EMALFORMED },
		{ "SRS0=SOD5J7HX=G=example.com=alice@srs.example.net",
		    SRS_EMALFORMED },
		{ "SRS0=SOD5J7HX=G33=example.com=alice@srs.example.net",
		    SRS_EMALFORMED },
		{ "SRS0=SOD5J7HX=G1=example.com=alice@srs.example.net",
		    SRS_EMALFORMED },
		{ "SRS0=SOD5J7HX=G3==alice@srs.example.net", SRS_EMALFORMED },
		{ "SRS0=SOD5J7HX=G3=example.com=@srs.example.net",
		    SRS_EMALFORMED },
		{ "SRS0=SOD5J7HX=G3=example.com@srs.example.net",
		    SRS_EMALFORMED },
		{ "SRS0=SOD5J7HX=G3=exa mple.com=alice@srs.example.net",
		    SRS_EMALFORMED },
		{ "SRS0=SOD5J7HX=G3@srs.example.net", SRS_EMALFORMED },
	};
	struct srs *srs = *state;
	char out[256];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		strcpy(out, "junk");
		rc = srs_reverse(srs, cases[i].addr, NOW, out, sizeof(out));
		if (rc != cases[i].want || out[0] != '\0')
			fail_msg("case %zu \"%s\": %s, want %s", i,
			    cases[i].addr, srs_strerror(rc),
			    srs_strerror(cases[i].want));
		assert_int_equal(srs_is_srs(srs, cases[i].addr),
		    cases[i].want != SRS_ENOTSRS);
	}
}

static void
test_buffers_and_arguments(void **state)
{
	struct srs *srs = *state;
	char fwd[256], out[256], big[SRS_ADDR_MAX + 64];
	size_t need;

	assert_int_equal(srs_forward(srs, "alice@example.com", NOW, fwd,
	    sizeof(fwd)), SRS_OK);
	need = strlen(fwd) + 1;
	assert_int_equal(srs_forward(srs, "alice@example.com", NOW, out, need),
	    SRS_OK);
	assert_string_equal(out, fwd);
	assert_int_equal(srs_forward(srs, "alice@example.com", NOW, out,
	    need - 1), SRS_ETOOSMALL);
	assert_string_equal(out, "");
	/* unchanged senders need room too */
	assert_int_equal(srs_forward(srs, "user@srs.example.net", NOW, out,
	    5), SRS_ETOOSMALL);
	assert_string_equal(out, "");
	assert_int_equal(srs_forward(srs, "", NOW, out, 1), SRS_UNCHANGED);
	/* reverse: "alice@example.com" needs 18 bytes */
	assert_int_equal(srs_reverse(srs, fwd, NOW, out, 18), SRS_OK);
	assert_int_equal(srs_reverse(srs, fwd, NOW, out, 17), SRS_ETOOSMALL);
	assert_string_equal(out, "");
	/* arguments */
	assert_int_equal(srs_forward(srs, "a@b.example", NOW, out, 0),
	    SRS_EINVAL);
	assert_int_equal(srs_forward(srs, "a@b.example", NOW, NULL, 10),
	    SRS_EINVAL);
	assert_int_equal(srs_forward(NULL, "a@b.example", NOW, out,
	    sizeof(out)), SRS_EINVAL);
	assert_int_equal(srs_forward(srs, NULL, NOW, out, sizeof(out)),
	    SRS_EINVAL);
	assert_int_equal(srs_reverse(srs, NULL, NOW, out, sizeof(out)),
	    SRS_EINVAL);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big + 100, "@example.com", 12);
	assert_int_equal(srs_forward(srs, big, NOW, out, sizeof(out)),
	    SRS_EINVAL);
	assert_int_equal(srs_reverse(srs, big, NOW, out, sizeof(out)),
	    SRS_EINVAL);
	assert_false(srs_is_srs(NULL, fwd));
	assert_false(srs_is_srs(srs, NULL));
}

/* fill - n bytes of a shape into dst: k selects letters, digits and
 * the atext specials, dots between atoms, '=' and UTF-8 */
static void
fill(char *dst, size_t n, int k, int is_domain)
{
	static const char *alpha[] = {
		"abcdefghij", "ABCdef0123", "x=y+z-w_v", "a.b.c.d.e.f",
		"\xc3\xb6\xc3\xa4\xc3\xbc.", "Q!#$%&'*+/?^`{|}~",
	};
	static const char *dalpha[] = {
		"abcdefghij", "ABC-def012", "host.sub.", "a_b-c.d9",
		"\xc3\xb6x\xc3\xa4y.", "mail.example",
	};
	const char *a = is_domain ? dalpha[k % 6] : alpha[k % 6];
	size_t alen = strlen(a), i;

	for (i = 0; i < n; i++)
		dst[i] = a[i % alen];
	dst[n] = '\0';
	/* no dot first or last, none doubled, no label over 63; a UTF-8
	 * sequence cut at the end becomes a letter */
	for (i = 0; i < n; i++) {
		if (dst[i] == '.' && (i == 0 || i == n - 1 ||
		    dst[i - 1] == '.'))
			dst[i] = 'q';
		if (i % 50 == 49 && is_domain)
			dst[i] = '.';
	}
	if (n > 0 && dst[n - 1] == '.')
		dst[n - 1] = 'r';
	for (i = n; i > 0 && (unsigned char)dst[i - 1] >= 0x80; i--)
		;
	if (i < n && (n - i) % 2 != 0)
		dst[n - 1] = 's';
}

/* parses_as - "verb<addr>" parses with smtp_cmd_parse() to exactly addr */
static int
parses_as(const char *verb, const char *addr, int utf8)
{
	char line[1200];
	struct smtp_cmd cmd;
	int n;

	n = snprintf(line, sizeof(line), "%s<%s>%s", verb, addr,
	    utf8 ? " SMTPUTF8" : "");
	if (n < 0 || (size_t)n >= sizeof(line))
		return (0);
	if (smtp_cmd_parse(line, (size_t)n, &cmd) != NULL)
		return (0);
	return (strcmp(cmd.addr, addr) == 0);
}

/*
 * Every address srs_forward() makes must come back through our own
 * parser (MAIL FROM when it goes out, RCPT TO when the bounce returns)
 * and reverse to the sender; anything longer is refused, not made.
 */
static void
test_lengths_parse(void **state)
{
	struct srs *srs = *state;
	char local[300], domain[300], sender[700], fwd[1200], back[1200];
	size_t ll, dl, ok = 0, toolong = 0;
	int k, utf8, rc;

	for (k = 0; k < 6; k++) {
		for (ll = 1; ll <= 120; ll += (ll < 60 ? 1 : 7)) {
			for (dl = 1; dl <= 260; dl += (dl < 60 ? 1 : 13)) {
				fill(local, ll, k, 0);
				fill(domain, dl, k + (int)ll, 1);
				snprintf(sender, sizeof(sender), "%s@%s",
				    local, domain);
				if (smtp_mailbox_valid(sender, strlen(sender),
				    1, &utf8) != 0)
					continue;	/* not a sender */
				rc = srs_forward(srs, sender, NOW, fwd,
				    sizeof(fwd));
				if (rc == SRS_ETOOLONG) {
					if (18 + ll + dl <= SMTP_LOCAL_MAX)
						fail_msg("%s: refused", sender);
					assert_string_equal(fwd, "");
					toolong++;
					continue;
				}
				if (rc != SRS_OK)
					fail_msg("%s: %s", sender,
					    srs_strerror(rc));
				if (!parses_as("MAIL FROM:", fwd, utf8))
					fail_msg("%s: MAIL FROM:<%s> refused",
					    sender, fwd);
				if (!parses_as("RCPT TO:", fwd, 0))
					fail_msg("%s: RCPT TO:<%s> refused",
					    sender, fwd);
				if (srs_reverse(srs, fwd, NOW + DAY, back,
				    sizeof(back)) != SRS_OK ||
				    strcmp(back, sender) != 0)
					fail_msg("%s: %s reversed to \"%s\"",
					    sender, fwd, back);
				ok++;
			}
		}
	}
	/* both sides of the bound were reached */
	assert_true(ok > 500);
	assert_true(toolong > 500);
	/* the bound itself: 46 octets of domain and local part */
	memset(local, 'l', 30);
	local[30] = '\0';
	snprintf(sender, sizeof(sender), "%s@%s", local, "example.test");
	assert_int_equal(srs_forward(srs, sender, NOW, fwd, sizeof(fwd)),
	    SRS_OK);
	assert_int_equal(strchr(fwd, '@') - fwd, 60);
	snprintf(sender, sizeof(sender), "%.34s@%s",
	    "0123456789012345678901234567890123", "example.test");
	assert_int_equal(srs_forward(srs, sender, NOW, fwd, sizeof(fwd)),
	    SRS_OK);
	assert_int_equal(strchr(fwd, '@') - fwd, 64);
	snprintf(sender, sizeof(sender), "%.35s@%s",
	    "01234567890123456789012345678901234", "example.test");
	assert_int_equal(srs_forward(srs, sender, NOW, fwd, sizeof(fwd)),
	    SRS_ETOOLONG);
	assert_non_null(strstr(srs_strerror(SRS_ETOOLONG), "64"));
	/* a sender our parser would not take (".." in a Dot-string) is
	 * passed as is rather than embedded */
	assert_int_equal(srs_forward(srs, "a..b@example.com", NOW, fwd,
	    sizeof(fwd)), SRS_UNCHANGED);
	assert_string_equal(fwd, "a..b@example.com");
}

static void
test_new_errors(void **state)
{
	char err[128];
	struct srs *srs;

	(void)state;
	err[0] = '\0';
	assert_null(srs_new("short", DOMAIN, err, sizeof(err)));
	assert_non_null(strstr(err, "at least 16"));
	assert_null(srs_new(NULL, DOMAIN, err, sizeof(err)));
	assert_null(srs_new(SECRET, "", err, sizeof(err)));
	assert_string_equal(err, "invalid SRS domain");
	assert_null(srs_new(SECRET, NULL, err, sizeof(err)));
	assert_null(srs_new(SECRET, "a@b", err, sizeof(err)));
	assert_null(srs_new(SECRET, "a=b", err, sizeof(err)));
	srs = srs_new("0123456789abcdef", DOMAIN, err, sizeof(err));
	assert_non_null(srs);
	srs_free(&srs);
	assert_null(srs);
	srs_free(&srs);
	srs_free(NULL);
	assert_string_equal(srs_strerror(SRS_EBADHASH), "bad SRS hash");
	assert_string_equal(srs_strerror(SRS_EEXPIRED), "SRS address expired");
	assert_string_equal(srs_strerror(SRS_ENOTSRS), "not an SRS address");
	assert_string_equal(srs_strerror(SRS_EMALFORMED),
	    "malformed SRS address");
	assert_string_equal(srs_strerror(42), "unknown SRS status");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_known_answers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_round_trips, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unchanged, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tampering, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_srs_and_malformed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffers_and_arguments,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_lengths_parse, setup,
		    teardown),
		cmocka_unit_test(test_new_errors),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
