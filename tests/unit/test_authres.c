/*
 * test_authres.c - relay/authres: golden Authentication-Results fields
 * (SPF only, SPF with two DKIM results, values that need quoting, hostile
 * reasons), folding width, errors, authres_pvalue(), the
 * authres_claims_ours() truth table and the streaming filter.
 */

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "authres.h"
#include "dkim_verify.h"

static struct dkimv_result
res(enum dkimv_res r, const char *d, const char *s, const char *b,
    const char *reason)
{
	struct dkimv_result x;

	memset(&x, 0, sizeof(x));
	x.result = r;
	snprintf(x.domain, sizeof(x.domain), "%s", d);
	snprintf(x.selector, sizeof(x.selector), "%s", s);
	snprintf(x.b, sizeof(x.b), "%s", b);
	snprintf(x.reason, sizeof(x.reason), "%s", reason);
	return (x);
}

/* every line at most AUTHRES_WIDTH columns (tab = 8), CRLF only */
static void
assert_folded(const char *s, size_t idx)
{
	size_t col = 0;

	for (; *s != '\0'; s++) {
		if (*s == '\r') {
			if (s[1] != '\n')
				fail_msg("case %zu: bare CR", idx);
			continue;
		}
		if (*s == '\n') {
			if (s[-1] != '\r')
				fail_msg("case %zu: bare LF", idx);
			if (s[1] != '\0' && s[1] != '\t' && s[1] != ' ')
				fail_msg("case %zu: line not folded", idx);
			col = 0;
			continue;
		}
		col = *s == '\t' ? (col / 8 + 1) * 8 : col + 1;
		if (col > AUTHRES_WIDTH)
			fail_msg("case %zu: line over %d columns", idx,
			    AUTHRES_WIDTH);
	}
}

/* --- golden fields --------------------------------------------------- */

static void
test_build_golden(void **state)
{
	struct dkimv_result two[2], odd[2], none[1];
	static const char *const golden[] = {
		/* 0: SPF only */
		"Authentication-Results: mx.example.net;\r\n"
		"\tspf=pass smtp.mailfrom=example.com\r\n",
		/* 1: SPF and two DKIM results */
		"Authentication-Results: mx.example.net;\r\n"
		"\tspf=softfail smtp.mailfrom=alice@example.com;\r\n"
		"\tdkim=pass header.d=example.com header.s=sel header.b=abcdefgh;\r\n"
		"\tdkim=fail (body hash mismatch) header.d=example.org header.s=s1\r\n"
		"\theader.b=\"ab/cd+ef\"\r\n",
		/* 2: values and reasons that need care */
		"Authentication-Results: \"mx example\";\r\n"
		"\tdkim=temperror (key look-up: timeout [after] 5000 ms? ??X-Injected:\r\n"
		"\tyes) header.d=example.com header.s=\"sel(x)\" header.b=\"a\\\"b\\\\c=d;\";\r\n"
		"\tdkim=neutral ([?[0m]) header.d=\"a\\\\b\" header.b=\"=/\"\r\n",
		/* 3: nothing to say */
		"Authentication-Results: mx.example.net; none\r\n",
		/* 4: DKIM only, unsigned message */
		"Authentication-Results: mx.example.net;\r\n"
		"\tdkim=none\r\n",
	};
	char out[2048];
	ssize_t n;
	size_t i;

	(void)state;
	two[0] = res(DKIMV_PASS, "example.com", "sel", "abcdefgh", "");
	two[1] = res(DKIMV_FAIL, "example.org", "s1", "ab/cd+ef",
	    "body hash mismatch");
	odd[0] = res(DKIMV_TEMPERROR, "example.com", "sel(x)", "a\"b\\c=d;",
	    "key look-up: timeout (after) 5000 ms\\ \r\nX-Injected: yes");
	odd[1] = res(DKIMV_NEUTRAL, "a\\b", "", "=/", "(\x1b[0m)");
	none[0] = res(DKIMV_NONE, "", "", "", "");

	for (i = 0; i < sizeof(golden) / sizeof(golden[0]); i++) {
		switch (i) {
		case 0:
			n = authres_build("mx.example.net",
			    "spf=pass smtp.mailfrom=example.com", NULL, 0, out,
			    sizeof(out));
			break;
		case 1:
			n = authres_build("mx.example.net",
			    "spf=softfail   smtp.mailfrom=alice@example.com",
			    two, 2, out, sizeof(out));
			break;
		case 2:
			n = authres_build("mx example", NULL, odd, 2, out,
			    sizeof(out));
			break;
		case 3:
			n = authres_build("mx.example.net", "", NULL, 0, out,
			    sizeof(out));
			break;
		default:
			n = authres_build("mx.example.net", NULL, none, 1, out,
			    sizeof(out));
			break;
		}
		if (n < 0)
			fail_msg("case %zu: -1 errno %d", i, errno);
		if (strcmp(out, golden[i]) != 0)
			fail_msg("case %zu:\n got: %s\nwant: %s", i, out,
			    golden[i]);
		assert_int_equal((size_t)n, strlen(golden[i]));
		assert_folded(out, i);
	}
}

/* A long SPF comment folds between its words; quoted strings never. */
static void
test_build_fold_spf(void **state)
{
	const char *spf = "spf=pass (mx.example.net: domain of "
	    "bounce+abc@lists.example.com designates 192.0.2.1 as permitted "
	    "sender) smtp.mailfrom=\"very long local part with spaces inside"
	    "\"@lists.example.com smtp.helo=mail.lists.example.com";
	char out[2048], flat[2048];
	size_t i, n = 0;

	(void)state;
	assert_true(authres_build("mx.example.net", spf, NULL, 0, out,
	    sizeof(out)) > 0);
	assert_non_null(strstr(out, "\"very long local part with spaces "
	    "inside\"@lists.example.com"));
	/* unfolding gives the string back, blanks normalised */
	for (i = strlen("Authentication-Results: mx.example.net;\r\n\t");
	    out[i] != '\0'; i++) {
		if (out[i] == '\r' || out[i] == '\n')
			continue;
		flat[n++] = out[i] == '\t' ? ' ' : out[i];
	}
	flat[n] = '\0';
	assert_string_equal(flat, spf);
	/* lines other than the one with the quoted-string fit */
	{
		char *line, *save = NULL;

		for (line = strtok_r(out, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			if (strchr(line, '"') == NULL)
				assert_true(strlen(line) <= AUTHRES_WIDTH);
	}
}

/* Many results of every kind: always folded, always parseable. */
static void
test_build_width(void **state)
{
	static const char *const doms[] = {
		"a.example", "example.com",
		"a-rather-long-subdomain.of-an-organisation.example.com",
	};
	struct dkimv_result r[DKIMV_MAX_SIGS];
	char out[4096];
	size_t i, k;

	(void)state;
	for (k = 0; k < 3; k++) {
		for (i = 0; i < DKIMV_MAX_SIGS; i++)
			r[i] = res((enum dkimv_res)(i % 6), doms[(i + k) % 3],
			    i % 2 ? "selector-2026-11" : "s", "AbCd+/12",
			    i % 3 ? "key look-up: timeout after 5000 ms" : "");
		assert_true(authres_build("mx.example.net",
		    "spf=pass smtp.mailfrom=example.com", r, DKIMV_MAX_SIGS,
		    out, sizeof(out)) > 0);
		assert_folded(out, k);
		/* and our own field is recognised as ours */
		assert_int_equal(authres_claims_ours(out + strlen(AUTHRES_FIELD)
		    + 1, strlen(out) - strlen(AUTHRES_FIELD) - 1,
		    "MX.example.net"), 1);
		/* 2048 bytes fit DKIMV_MAX_SIGS ordinary results */
		assert_true(strlen(out) < 2048);
	}
}

static void
test_build_errors(void **state)
{
	struct dkimv_result one = res(DKIMV_PASS, "example.com", "sel",
	    "abcdefgh", "");
	static const char *const bad_spf[] = {
		"spf=pass\r\nX-Injected: yes",
		"spf=pass smtp.mailfrom=a@b; dkim=pass",
		"spf=pass (unbalanced",
		"spf=pass close)",
		"spf=pass smtp.mailfrom=\"unterminated",
		"spf=pass \x7f",
		"spf=pass smtp.mailfrom=\"a\\\r\"",
	};
	char out[512];
	ssize_t n, full;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_spf) / sizeof(bad_spf[0]); i++) {
		errno = 0;
		if (authres_build("mx", bad_spf[i], NULL, 0, out,
		    sizeof(out)) != -1 || errno != EINVAL)
			fail_msg("bad spf %zu accepted", i);
	}
	/* ';' inside quotes or comments is fine */
	assert_true(authres_build("mx", "spf=pass (a; b) smtp.mailfrom="
	    "\"a;b\"@example.com", NULL, 0, out, sizeof(out)) > 0);
	errno = 0;
	assert_int_equal(authres_build("", NULL, NULL, 0, out, sizeof(out)),
	    -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(authres_build(NULL, NULL, NULL, 0, out, sizeof(out)),
	    -1);
	assert_int_equal(authres_build("mx\r\nX: y", NULL, NULL, 0, out,
	    sizeof(out)), -1);
	/* the exact size fits, one byte less does not */
	full = authres_build("mx.example.net", "spf=none", &one, 1, out,
	    sizeof(out));
	assert_true(full > 0);
	n = authres_build("mx.example.net", "spf=none", &one, 1, out,
	    (size_t)full + 1);
	assert_int_equal(n, full);
	errno = 0;
	assert_int_equal(authres_build("mx.example.net", "spf=none", &one, 1,
	    out, (size_t)full), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(authres_build("mx.example.net", NULL, NULL, 0, out, 0),
	    -1);
}

static void
test_pvalue(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;	/* NULL: -1 */
	} t[] = {
		{ "example.com", "example.com" },
		{ "alice@example.com", "alice@example.com" },
		{ "first.last+tag@sub.example.com", "first.last+tag@sub.example.com" },
		{ "@example.com", "@example.com" },
		{ "postmaster", "postmaster" },
		{ "a b@example.com", "\"a b@example.com\"" },
		{ "a..b@example.com", "\"a..b@example.com\"" },
		{ "a@b@example.com", "\"a@b@example.com\"" },
		{ "alice@[192.0.2.1]", "\"alice@[192.0.2.1]\"" },
		{ "", "\"\"" },
		{ "x\"y\\z", "\"x\\\"y\\\\z\"" },
		{ "a;b", "\"a;b\"" },
		{ "a\r\nb", NULL },
		{ "tab\there", NULL },
	};
	char out[128];
	size_t i;
	int n;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		n = authres_pvalue(out, sizeof(out), t[i].in);
		if (t[i].out == NULL) {
			if (n != -1)
				fail_msg("case %zu: accepted", i);
			continue;
		}
		if (n < 0 || strcmp(out, t[i].out) != 0)
			fail_msg("case %zu: got %d \"%s\", want \"%s\"", i, n,
			    n < 0 ? "" : out, t[i].out);
		assert_int_equal(n, strlen(t[i].out));
	}
	assert_int_equal(authres_pvalue(out, 5, "example.com"), -1);
	assert_int_equal(authres_pvalue(out, 12, "example.com"), 11);
	assert_int_equal(authres_pvalue(out, 11, "example.com"), -1);
	assert_int_equal(authres_pvalue(out, 4, "a b"), -1);
}

/* --- claims_ours ---------------------------------------------------------- */

static void
test_claims_ours(void **state)
{
	static const struct {
		const char	*body;
		int		 want;
	} t[] = {
		{ " ours.example; spf=pass smtp.mailfrom=a.example", 1 },
		{ "ours.example;spf=pass", 1 },
		{ " OURS.Example; dkim=pass", 1 },			/* case */
		{ " (x) ours.example; spf=pass", 1 },			/* comment */
		{ " (a (nested) comment) ours.example; none", 1 },
		{ " (a \\) b) ours.example; none", 1 },		/* quoted-pair */
		{ "\r\n\tours.example;\r\n\tspf=fail\r\n", 1 },	/* folded */
		{ " ours.example 1; spf=pass", 1 },			/* version */
		{ " ours.example (c) 1 (d); none", 1 },
		{ " ours.example(c); none", 1 },
		{ " \"ours.example\"; none", 1 },			/* quoted */
		{ " \"ours\\.example\"; none", 1 },
		{ " ours.example.; none", 1 },			/* final dot */
		{ " ours.example", 1 },
		{ " ours.example/evil; none", 1 },	/* then garbage: ours */
		{ " other.example; spf=pass", 0 },
		{ " ours.example.evil; spf=pass", 0 },		/* prefix only */
		{ " ours.examplex; none", 0 },
		{ " evil.ours.example; none", 0 },
		{ " ours.exampl; none", 0 },
		{ " ours; none", 0 },
		{ " (ours.example) other.example; none", 0 },
		{ " \"ours.example.evil\"; none", 0 },
		{ "", 0 },
		{ "   \r\n\t ", 0 },
		{ ";;;", 0 },
		{ " =ours.example", 0 },
		{ " (unterminated ours.example; none", 0 },
		{ " \"ours.example", 0 },
		{ " ours..example; none", 0 },
		{ " \xff\xfe; none", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (authres_claims_ours(t[i].body, strlen(t[i].body),
		    "ours.example") != t[i].want)
			fail_msg("case %zu \"%s\": want %d", i, t[i].body,
			    t[i].want);
	/* len is honoured: the bytes after it do not count */
	assert_int_equal(authres_claims_ours(" ours.example.evil", 13,
	    "ours.example"), 1);
	assert_int_equal(authres_claims_ours(" ours.exam", 10,
	    "ours.example"), 0);
	/* an authserv-id of ours with a final dot */
	assert_int_equal(authres_claims_ours(" ours.example; none", 19,
	    "ours.example."), 1);
	assert_int_equal(authres_claims_ours(" ours.example", 13, ""), 0);
	assert_int_equal(authres_claims_ours(" ours.example", 13, NULL), 0);
	assert_int_equal(authres_claims_ours(NULL, 0, "ours.example"), 0);
}

/* --- the streaming filter ------------------------------------------------ */

struct sink {
	char	*buf;
	size_t	 len;
};

static void
emit(const char *data, size_t len, void *arg)
{
	struct sink *s = arg;

	s->buf = realloc(s->buf, s->len + len + 1);
	assert_non_null(s->buf);
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
}

/* run_filter - feed text line by line; returns the kept bytes */
static char *
run_filter(const char *text, size_t *dropped, int *eoh_line)
{
	struct authres_filter *f;
	struct sink s = { NULL, 0 };
	const char *p = text, *nl;
	size_t len;
	int line = 0, rc;

	f = authres_filter_new("ours.example", emit, &s);
	assert_non_null(f);
	*eoh_line = -1;
	while (*p != '\0') {
		nl = strchr(p, '\n');
		len = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);
		rc = authres_filter_line(f, p, len);
		if (rc == 1 && *eoh_line == -1)
			*eoh_line = line;
		p += len;
		line++;
	}
	authres_filter_end(f);
	*dropped = authres_filter_dropped(f);
	authres_filter_free(&f);
	assert_null(f);
	if (s.buf == NULL)
		s.buf = strdup("");
	return (s.buf);
}

static void
test_filter(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;
		size_t		 dropped;
		int		 eoh_line;
	} t[] = {
		/* 0: two of ours (one folded, one with a comment), one
		 * foreign; order and bytes of the rest kept */
		{ "Received: from a by b;\r\n\tMon, 23 Nov 2026\r\n"
		  "Authentication-Results: ours.example;\r\n\tspf=pass\r\n"
		  "From: a@example.com\r\n"
		  "authentication-results : (forged) OURS.example; dkim=pass\r\n"
		  "Authentication-Results: other.example; spf=fail\r\n"
		  "\tsmtp.mailfrom=x\r\n"
		  "Subject: hi\r\n"
		  "\r\n"
		  "Authentication-Results: ours.example; in the body\r\n",
		  "Received: from a by b;\r\n\tMon, 23 Nov 2026\r\n"
		  "From: a@example.com\r\n"
		  "Authentication-Results: other.example; spf=fail\r\n"
		  "\tsmtp.mailfrom=x\r\n"
		  "Subject: hi\r\n"
		  "\r\n"
		  "Authentication-Results: ours.example; in the body\r\n",
		  2, 9 },
		/* 1: the id only on the continuation line; ours last */
		{ "From: a@example.com\r\nAuthentication-Results:\r\n"
		  "\t(c) ours.example;\r\n\tnone\r\n\r\nbody\r\n",
		  "From: a@example.com\r\n\r\nbody\r\n", 1, 4 },
		/* 2: no empty line: end() judges the held field */
		{ "From: a@example.com\r\nAuthentication-Results: ours.example;"
		  " none\r\n",
		  "From: a@example.com\r\n", 1, -1 },
		{ "From: a@example.com\r\nAuthentication-Results: x.example;"
		  " none",
		  "From: a@example.com\r\nAuthentication-Results: x.example;"
		  " none", 0, -1 },
		/* 4: look-alike field names are not A-R */
		{ "Authentication-Results-Original: ours.example; none\r\n"
		  "X-Authentication-Results: ours.example; none\r\n\r\n",
		  "Authentication-Results-Original: ours.example; none\r\n"
		  "X-Authentication-Results: ours.example; none\r\n\r\n",
		  0, 2 },
		/* 5: three in a row, all ours (CVE-2022-48521 class) */
		{ "Authentication-Results: ours.example; a\r\n"
		  "Authentication-Results: ours.example; b\r\n"
		  "Authentication-Results: ours.example; c\r\n"
		  "To: b@example.com\r\n\r\n",
		  "To: b@example.com\r\n\r\n", 3, 4 },
		/* 6: bare LF lines work the same */
		{ "Authentication-Results: ours.example; a\n\tb\nTo: x\n\nbody\n",
		  "To: x\n\nbody\n", 1, 3 },
		/* 7: a continuation before any field is kept */
		{ " odd start\r\nAuthentication-Results: ours.example\r\n\r\n",
		  " odd start\r\n\r\n", 1, 2 },
		/* 8: an empty field body is foreign */
		{ "Authentication-Results:\r\n\r\n",
		  "Authentication-Results:\r\n\r\n", 0, 1 },
	};
	size_t i, dropped;
	int eoh;
	char *out;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		out = run_filter(t[i].in, &dropped, &eoh);
		if (strcmp(out, t[i].out) != 0)
			fail_msg("case %zu:\n got: %s\nwant: %s", i, out,
			    t[i].out);
		if (dropped != t[i].dropped || eoh != t[i].eoh_line)
			fail_msg("case %zu: dropped %zu (want %zu), empty line "
			    "at %d (want %d)", i, dropped, t[i].dropped, eoh,
			    t[i].eoh_line);
		free(out);
	}
}

/* Fields longer than the hold buffer. */
static void
test_filter_long(void **state)
{
	char *in, *want, *out, *pad;
	size_t dropped, n = AUTHRES_HOLD_MAX + 2000, i;
	int eoh;

	(void)state;
	pad = malloc(n + 1);
	assert_non_null(pad);
	for (i = 0; i < n; i++)
		pad[i] = i % 70 == 69 ? '\n' : 'x';
	pad[n] = '\0';
	/* turn the newlines into folds: "\r\n\t" needs room; rebuild */
	{
		char *q = malloc(2 * n + 1), *w = q;

		assert_non_null(q);
		for (i = 0; i < n; i++) {
			if (pad[i] == '\n') {
				*w++ = '\r';
				*w++ = '\n';
				*w++ = '\t';
			} else
				*w++ = pad[i];
		}
		*w = '\0';
		free(pad);
		pad = q;
	}
	/* ours, long: dropped whole */
	assert_true(asprintf(&in, "A: 1\r\nAuthentication-Results: "
	    "ours.example; x=%s\r\nB: 2\r\n\r\nbody", pad) > 0);
	out = run_filter(in, &dropped, &eoh);
	assert_string_equal(out, "A: 1\r\nB: 2\r\n\r\nbody");
	assert_int_equal(dropped, 1);
	free(out);
	free(in);
	/* foreign, long: kept byte for byte */
	assert_true(asprintf(&in, "A: 1\r\nAuthentication-Results: "
	    "other.example; x=%s\r\nB: 2\r\n\r\nbody", pad) > 0);
	out = run_filter(in, &dropped, &eoh);
	assert_string_equal(out, in);
	assert_int_equal(dropped, 0);
	free(out);
	free(in);
	/* a comment longer than the hold before the id: cannot tell, drop */
	assert_true(asprintf(&in, "Authentication-Results: (%s) "
	    "other.example; none\r\n\r\n", pad) > 0);
	out = run_filter(in, &dropped, &eoh);
	assert_string_equal(out, "\r\n");
	assert_int_equal(dropped, 1);
	free(out);
	free(in);
	/* one single line longer than the hold, foreign */
	want = malloc(n + 100);
	assert_non_null(want);
	memset(want, 'y', n);
	want[n] = '\0';
	assert_true(asprintf(&in, "Authentication-Results: other.example; "
	    "x=%s\r\n\r\n", want) > 0);
	out = run_filter(in, &dropped, &eoh);
	assert_string_equal(out, in);
	free(out);
	free(in);
	free(want);
	free(pad);
}

static void
test_filter_misc(void **state)
{
	struct sink s = { NULL, 0 };
	struct authres_filter *f;

	(void)state;
	assert_null(authres_filter_new("ours.example", NULL, NULL));
	f = authres_filter_new(NULL, emit, &s);	/* no id: nothing is ours */
	assert_non_null(f);
	assert_int_equal(authres_filter_line(f, "Authentication-Results: "
	    "ours.example\r\n", 38), 0);
	assert_int_equal(authres_filter_line(f, "\r\n", 2), 1);
	assert_int_equal(authres_filter_line(f, "x\r\n", 3), 1);
	authres_filter_end(f);
	assert_int_equal(authres_filter_dropped(f), 0);
	assert_string_equal(s.buf, "Authentication-Results: ours.example"
	    "\r\n\r\nx\r\n");
	authres_filter_free(&f);
	authres_filter_free(&f);
	authres_filter_free(NULL);
	authres_filter_end(NULL);
	assert_int_equal(authres_filter_dropped(NULL), 0);
	free(s.buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_golden),
		cmocka_unit_test(test_build_fold_spf),
		cmocka_unit_test(test_build_width),
		cmocka_unit_test(test_build_errors),
		cmocka_unit_test(test_pvalue),
		cmocka_unit_test(test_claims_ours),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_filter_long),
		cmocka_unit_test(test_filter_misc),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
