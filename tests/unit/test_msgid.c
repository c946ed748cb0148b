/*
 * test_msgid.c - unit tests for common/msgid.c.
 *
 * Table-driven: every failure names the row.  The oracles are
 * independent of the code under test where that is possible: expected
 * body hashes are SHA-256 of canonical bodies written out by hand (or
 * built by a simple second implementation), and the key encodings are
 * pinned by golden tests that rebuild the documented byte layout, so a
 * change of encoding (which would orphan every stored key) fails here.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "msgid.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
/* A string literal and its length, embedded NULs included. */
#define S(x)		x, sizeof(x) - 1

/* sha256 - one-shot SHA-256 through EVP, the oracle for body hashes */
static void
sha256(const void *p, size_t n, unsigned char out[32])
{
	unsigned int len = 0;

	assert_int_equal(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
}

/* hash_chunks - body hash of msg fed in chunks of the given sizes */
static void
hash_chunks(const char *msg, size_t len, const size_t *sizes, size_t nsizes,
    unsigned char out[32])
{
	struct body_hash bh;
	size_t pos = 0, k = 0;

	assert_int_equal(body_hash_init(&bh), 0);
	while (pos < len) {
		size_t n = nsizes > 0 ? sizes[k++ % nsizes] : len - pos;

		if (n > len - pos)
			n = len - pos;
		assert_int_equal(body_hash_update(&bh, msg + pos, n), 0);
		pos += n;
	}
	assert_int_equal(body_hash_final(&bh, out), 0);
}

static void
hash_whole(const char *msg, size_t len, unsigned char out[32])
{
	hash_chunks(msg, len, NULL, 0, out);
}

/* ---- msgid_normalise ---- */

struct norm_case {
	const char	*in;
	size_t		 len;
	const char	*want;	/* NULL: must fail */
};

static const struct norm_case norm_cases[] = {
	{ S("<abc@example.com>"), "<abc@example.com>" },
	{ S("  <abc@example.com>  "), "<abc@example.com>" },
	{ S("<abc@Example.COM>"), "<abc@example.com>" },
	{ S("<ABC.Def@EXAMPLE.COM>"), "<ABC.Def@example.com>" },
	{ S("abc@Example.com"), "<abc@example.com>" },
	{ S("\r\n <abc@example.com>"), "<abc@example.com>" },
	{ S("\n\t<abc@example.com>\n"), "<abc@example.com>" },
	{ S("<abc@exa\r\n mple.com>"), "<abc@example.com>" },
	{ S("<abc.very.long.local.part\r\n\t@example.com>"),
	    "<abc.very.long.local.part@example.com>" },
	{ S("<abc@example.com\r\n >"), "<abc@example.com>" },
	{ S("(comment) <abc@example.com>"), "<abc@example.com>" },
	{ S("<abc@example.com> (comment)"), "<abc@example.com>" },
	{ S("(outer (nested) still outer) <a@b.c>"), "<a@b.c>" },
	{ S("(escaped \\) paren) <a@b.c>"), "<a@b.c>" },
	{ S("(a)(b)\r\n (c (d (e))) a@b.c (f)"), "<a@b.c>" },
	{ S("<a(inner comment)@b.c>"), "<a@b.c>" },
	{ S("<a@b.c> trailing garbage here"), "<a@b.c>" },
	{ S("<a@b.c>;x"), "<a@b.c>" },
	{ S("<\"quoted local\"@Example.com>"),
	    "<\"quoted local\"@example.com>" },
	{ S("<\"Q@X\"@Example.com>"), "<\"Q@X\"@example.com>" },
	{ S("<\"a\\\"B\"@X.com>"), "<\"a\\\"B\"@x.com>" },
	{ S("\"quoted (not a comment)\"@X.com"),
	    "<\"quoted (not a comment)\"@x.com>" },
	{ S("<12345.JavaMail.Foo>"), "<12345.JavaMail.Foo>" },
	{ S("12345.JavaMail.Foo"), "<12345.JavaMail.Foo>" },
	{ S("<\"Q@X\">"), "<\"Q@X\">" },
	/* An unclosed quote is an ordinary byte; the '>' still closes. */
	{ S("<a@X\">"), "<a@x\">" },
	{ S("<\"a@X>"), "<\"a@X>" },
	{ S("a\"b@X>"), "<a\"b@X>" },
	{ S("<a\"b\"c\"@X>"), "<a\"b\"c\"@X>" },
	{ S("<a@b.c> <d@e.f>"), "<a@b.c>" },
	{ S("<a@b.c>,<d@e.f>"), "<a@b.c>" },
	{ S("a@b.c d@e.f"), "<a@b.c>" },
	{ S("<> <a@b.c>"), "<a@b.c>" },
	{ S("< > (x) <a@b.c>"), "<a@b.c>" },
	{ S("<<a@b.c>>"), "<a@b.c>" },
	{ S("<a@b.c"), "<a@b.c>" },
	{ S("<a@b.c d@e.f"), "<a@b.c>" },
	{ S("a@b.c>"), "<a@b.c>" },
	{ S("a@b.c>d@e.f"), "<a@b.c>" },
	{ S(">\xd9x@Y"), "<\xd9x@y>" },
	{ S("> > <a@b.c>"), "<a@b.c>" },
	{ S("<\"a\\\r\n b\"@X>"), "<\"a b\"@x>" },
	{ S("<a@[192.0.2.1]>"), "<a@[192.0.2.1]>" },
	{ S("<a@B@C.Com>"), "<a@B@c.com>" },
	{ S("<\xc3\x9c" "x@Ex\xc3\xa4MPLE.com>"),
	    "<\xc3\x9c" "x@ex\xc3\xa4mple.com>" },
	{ S(""), NULL },
	{ S("   "), NULL },
	{ S("\r\n "), NULL },
	{ S("(only a comment)"), NULL },
	{ S("(unterminated <a@b.c>"), NULL },
	{ S("<>"), NULL },
	{ S("< >"), NULL },
	{ S(">"), NULL },
	{ S("<a@b\x01.c>"), NULL },
	{ S("<a\x7f@b.c>"), NULL },
	{ S("<a@b.c>\x1b"), NULL },
	{ S("<a\0b@c.d>"), NULL },
};

static void
test_normalise_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(norm_cases); i++) {
		const struct norm_case *c = &norm_cases[i];
		char out[MSGID_BUFSIZE];
		int r;

		memset(out, 'Z', sizeof(out));
		r = msgid_normalise(c->in, c->len, out, sizeof(out));
		if (c->want == NULL) {
			if (r != -1)
				fail_msg("case %zu: want -1, got %d \"%s\"",
				    i, r, out);
			continue;
		}
		if (r < 0)
			fail_msg("case %zu: want \"%s\", got -1", i, c->want);
		if (strcmp(out, c->want) != 0 || (size_t)r != strlen(c->want))
			fail_msg("case %zu: want \"%s\", got %d \"%s\"",
			    i, c->want, r, out);
	}
}

/* Idempotence: a canonical id normalises to itself. */
static void
test_normalise_idempotent(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(norm_cases); i++) {
		char a[MSGID_BUFSIZE], b[MSGID_BUFSIZE];
		int ra, rb;

		if (norm_cases[i].want == NULL)
			continue;
		ra = msgid_normalise(norm_cases[i].in, norm_cases[i].len, a,
		    sizeof(a));
		rb = msgid_normalise(a, (size_t)ra, b, sizeof(b));
		if (rb != ra || strcmp(a, b) != 0)
			fail_msg("case %zu: \"%s\" became \"%s\"", i, a, b);
	}
}

/*
 * Awkward ids: each is normalised, the result normalised again, and the
 * two must be equal (and a third round changes nothing either).  The
 * ledger key is built from the normalised id, and syncd may see an id
 * that already went through a normaliser (a relay's copy, a rewritten
 * header), so a second pass that moves the id would be a duplicate.
 */
static const char *const twice_cases[] = {
	"<a@X\">", "<a@x\">", "<a@x\">>", "<\"a@X>", "\"a@X>", "a\"b@X",
	"<a\"b@X", "<\"a\\\"@X>", "<\"\">", "<\">", "\"", "\">", "<\"<>",
	"<a(\")@X>", "<a\"(b@X>", "<\"a(\\\"x)@b>", "<\"a\"b\"@X>",
	"<<a@X>>", "<<<a@X>", "<a<b@X>>", "<a@X><", "<a@X",
	"<a@X d@Y", "<\"x>y\"@B c", "a@B>d@E", "><a@B>",
	"(c) <a@B> (d)", "<a(x(y)z)@B>", "<a(unterminated@B>", "(\\) <a@B>",
	"<a\\(b)@B>", "<a\\\"@B>", "<\"a\\\r\n b\"@X>", "<\"a\r\n\"@X>",
	"\r\n\t<a@B\r\n >", "  \"a b\"@X  ", "<\"a b@X>", "<A@B@C.COM>",
	"<\"A@B\"@C.COM>", "<\"A@B@C.COM>", "<A@\"B@C\".COM>",
	"<ABC.Def@EXAMPLE.COM>", "<12345.JavaMail.Foo>",
};

static void
test_normalise_twice(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(twice_cases); i++) {
		const char *in = twice_cases[i];
		char a[MSGID_BUFSIZE], b[MSGID_BUFSIZE], c[MSGID_BUFSIZE];
		int ra, rb, rc;

		ra = msgid_normalise(in, strlen(in), a, sizeof(a));
		if (ra < 0)
			continue;	/* no id at all: nothing to repeat */
		rb = msgid_normalise(a, (size_t)ra, b, sizeof(b));
		if (rb != ra || strcmp(a, b) != 0)
			fail_msg("case %zu: first \"%s\", second \"%s\"",
			    i, a, rb < 0 ? "(failed)" : b);
		rc = msgid_normalise(b, (size_t)rb, c, sizeof(c));
		if (rc != rb || strcmp(b, c) != 0)
			fail_msg("case %zu: second \"%s\", third \"%s\"",
			    i, b, rc < 0 ? "(failed)" : c);
	}
}

/*
 * Every string of up to six bytes over the bytes that mean something to
 * the parser: normalising twice gives what normalising once gave.
 */
static void
test_normalise_twice_exhaustive(void **state)
{
	static const char alpha[] = "<>\"\\() @aX\r";
	const size_t na = sizeof(alpha) - 1;
	char in[8], a[MSGID_BUFSIZE], b[MSGID_BUFSIZE];
	size_t len, k, idx[8];

	(void)state;
	for (len = 1; len <= 6; len++) {
		memset(idx, 0, sizeof(idx));
		for (;;) {
			int ra, rb;

			for (k = 0; k < len; k++)
				in[k] = alpha[idx[k]];
			ra = msgid_normalise(in, len, a, sizeof(a));
			if (ra >= 0) {
				rb = msgid_normalise(a, (size_t)ra, b,
				    sizeof(b));
				if (rb != ra || strcmp(a, b) != 0)
					fail_msg("\"%.*s\": first \"%s\", "
					    "second \"%s\"", (int)len, in, a,
					    rb < 0 ? "(failed)" : b);
			}
			for (k = 0; k < len && ++idx[k] == na; k++)
				idx[k] = 0;
			if (k == len)
				break;
		}
	}
}

/* Lengths around the 998-byte limit, and output buffers that are short. */
static void
test_normalise_limits(void **state)
{
	static const struct {
		size_t	idlen;	/* bytes between the brackets */
		int	brackets;
		int	ok;
	} cases[] = {
		{ 996, 1, 1 }, { 997, 1, 0 }, { 996, 0, 1 }, { 997, 0, 0 },
		{ 5000, 1, 0 }, { 5000, 0, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		char *in = malloc(cases[i].idlen + 3);
		char out[8192];	/* the limit is the function's */
		size_t n = 0;
		int r;

		assert_non_null(in);
		if (cases[i].brackets)
			in[n++] = '<';
		memset(in + n, 'a', cases[i].idlen - 4);
		n += cases[i].idlen - 4;
		memcpy(in + n, "@B.C", 4);
		n += 4;
		if (cases[i].brackets)
			in[n++] = '>';
		r = msgid_normalise(in, n, out, sizeof(out));
		if (cases[i].ok) {
			if (r != (int)cases[i].idlen + 2 || out[0] != '<' ||
			    out[r - 1] != '>' || out[r] != '\0' ||
			    strcmp(out + r - 5, "@b.c>") != 0)
				fail_msg("case %zu: want %zu bytes, got %d", i,
				    cases[i].idlen + 2, r);
		} else if (r != -1)
			fail_msg("case %zu: overlong id accepted (%d)", i, r);
		free(in);
	}
}

static void
test_normalise_outlen(void **state)
{
	char out[16];

	(void)state;
	/* "<a@b.c>" needs 7 bytes plus the NUL. */
	assert_int_equal(msgid_normalise(S("a@b.c"), out, 7), -1);
	assert_int_equal(msgid_normalise(S("a@b.c"), out, 8), 7);
	assert_string_equal(out, "<a@b.c>");
	assert_int_equal(msgid_normalise(S("a@b.c"), out, 0), -1);
	assert_int_equal(msgid_normalise(NULL, 0, out, sizeof(out)), -1);
	assert_int_equal(msgid_normalise(S("a@b.c"), NULL, 8), -1);
}

/* ---- header block scanner ---- */

struct hdr_case {
	const char	*in;
	size_t		 len;
	const char	*want;	/* NULL: no Message-ID */
};

static const struct hdr_case hdr_cases[] = {
	{ S("From: a@b\r\nMessage-ID: <x@Y.com>\r\nSubject: s\r\n\r\nbody\r\n"),
	    "<x@y.com>" },
	{ S("From: a@b\r\nSubject: s\r\n\r\n"), NULL },
	{ S("From: a@b\r\nSubject: s\r\n\r\nMessage-ID: <in@body>\r\n"), NULL },
	{ S("From: a@b\n\nMessage-ID: <in@body>\n"), NULL },
	{ S("Message-ID:\r\n <x@y.com>\r\n\r\n"), "<x@y.com>" },
	{ S("Message-ID:\r\n\t<x@y.com>\r\n\r\n"), "<x@y.com>" },
	{ S("Message-ID:\n <x@y.com>\n\n"), "<x@y.com>" },
	{ S("Message-ID:\n\t<x@y.com>\n\n"), "<x@y.com>" },
	{ S("Message-ID: <very-long-local-part\n @Example.com>\nX: y\n\n"),
	    "<very-long-local-part@example.com>" },
	{ S("Message-ID: <a@b.c>\r\n (comment on the\r\n\tnext lines)\r\n"
	    "Subject: s\r\n\r\n"), "<a@b.c>" },
	{ S("Message-ID: (nothing here)\r\nMessage-ID: <second@x.com>\r\n\r\n"),
	    "<second@x.com>" },
	{ S("Message-ID: <first@x.com>\r\nMessage-ID: <second@x.com>\r\n\r\n"),
	    "<first@x.com>" },
	{ S("Message-ID: <bad\0nul@x>\r\nMessage-ID: <good@x>\r\n\r\n"),
	    "<good@x>" },
	{ S("MESSAGE-ID: <a@b>\r\n\r\n"), "<a@b>" },
	{ S("Message-Id: <a@b>\r\n\r\n"), "<a@b>" },
	{ S("message-id:<a@b>\r\n\r\n"), "<a@b>" },
	{ S("Message-ID : <a@b>\r\n\r\n"), "<a@b>" },
	{ S("Message-ID: a@B\r\n\r\n"), "<a@b>" },
	{ S("X-Message-ID: <x@x>\r\n\r\n"), NULL },
	{ S("Message-IDx: <x@x>\r\n\r\n"), NULL },
	{ S("Resent-Message-ID: <r@x>\r\nMessage-ID: <m@x>\r\n\r\n"), "<m@x>" },
	{ S("Subject: foo\r\n Message-ID: <fake@x>\r\n\r\n"), NULL },
	{ S(" Message-ID: <fake@x>\r\n\r\n"), NULL },
	{ S("From sender@x Mon Jan  1 00:00:00 2024\nMessage-ID: <a@b>\n\n"),
	    "<a@b>" },
	{ S("Message-ID: <a@b>"), "<a@b>" },
	{ S("Subject: x\r\nMessage-ID: <a@b>\r"), "<a@b>" },
	{ S(""), NULL },
	{ S("\r\nMessage-ID: <a@b>\r\n"), NULL },
	{ S("\nMessage-ID: <a@b>\n"), NULL },
	{ S("Message-ID:\r\n\r\nMessage-ID: <a@b>\r\n"), NULL },
};

static void
test_header_block_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(hdr_cases); i++) {
		const struct hdr_case *c = &hdr_cases[i];
		struct msg_ident id;
		char out[MSGID_BUFSIZE];
		int r;

		r = msgid_from_header_block(c->in, c->len, out, sizeof(out));
		if (c->want == NULL && r != -1)
			fail_msg("case %zu: want none, got \"%s\"", i, out);
		if (c->want != NULL && (r < 0 || strcmp(out, c->want) != 0))
			fail_msg("case %zu: want \"%s\", got %d \"%s\"", i,
			    c->want, r, r < 0 ? "" : out);

		/* msg_ident_from_headers must agree. */
		if (msg_ident_from_headers(c->in, c->len, &id) != 0)
			fail_msg("case %zu: msg_ident failed", i);
		if (id.has_msgid != (c->want != NULL) ||
		    strcmp(id.msgid, c->want != NULL ? c->want : "") != 0)
			fail_msg("case %zu: msg_ident has_msgid=%d \"%s\"", i,
			    id.has_msgid, id.msgid);
	}
}

struct ident_case {
	const char	*in;
	size_t		 len;
	const char	*date;
	const char	*from;
};

static const struct ident_case ident_cases[] = {
	{ S("Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nFrom: a@b\r\n\r\n"),
	    "Mon, 1 Jan 2024 10:00:00 +0000", "a@b" },
	{ S("Date:   Mon, 1 Jan 2024\r\n   10:00:00\t +0000  \r\n"
	    "From:  \"Foo   Bar\"\r\n\t<foo@x>\r\n\r\n"),
	    "Mon, 1 Jan 2024 10:00:00 +0000", "\"Foo Bar\" <foo@x>" },
	{ S("Date: Mon, 1 Jan 2024\n 10:00:00 +0000\nFrom: \"Foo Bar\"\n"
	    " <foo@x>\n\n"),
	    "Mon, 1 Jan 2024 10:00:00 +0000", "\"Foo Bar\" <foo@x>" },
	{ S("DATE: d1\r\ndate: d2\r\nfrom: f1\r\nFrom: f2\r\n\r\n"),
	    "d1", "f1" },
	{ S("Subject: s\r\n\r\nDate: d\r\nFrom: f\r\n"), "", "" },
	{ S("From f@x Mon Jan  1 00:00:00 2024\nResent-From: r\nX-Date: x\n\n"),
	    "", "" },
	{ S("Date:\r\nFrom:   \r\n\r\n"), "", "" },
	{ S("From: a\0b\r\n\r\n"), "", "a b" },
};

static void
test_ident_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(ident_cases); i++) {
		const struct ident_case *c = &ident_cases[i];
		struct msg_ident id;

		memset(&id, 'Z', sizeof(id));
		if (msg_ident_from_headers(c->in, c->len, &id) != 0)
			fail_msg("case %zu: failed", i);
		if (strcmp(id.date, c->date) != 0)
			fail_msg("case %zu: date \"%s\", want \"%s\"", i,
			    id.date, c->date);
		if (strcmp(id.from, c->from) != 0)
			fail_msg("case %zu: from \"%s\", want \"%s\"", i,
			    id.from, c->from);
		if (id.has_msgid || id.msgid[0] != '\0')
			fail_msg("case %zu: phantom msgid \"%s\"", i,
			    id.msgid);
	}
}

/* A huge From is cut at MSG_IDENT_FIELD_MAXLEN, deterministically. */
static void
test_ident_long_field(void **state)
{
	size_t n = 5000, i;
	char *h = malloc(n + 32);
	struct msg_ident id;

	(void)state;
	assert_non_null(h);
	memcpy(h, "From: ", 6);
	for (i = 0; i < n; i++)
		h[6 + i] = (char)('a' + i % 26);
	memcpy(h + 6 + n, "\r\n\r\n", 4);
	assert_int_equal(msg_ident_from_headers(h, n + 10, &id), 0);
	assert_int_equal(strlen(id.from), MSG_IDENT_FIELD_MAXLEN);
	assert_memory_equal(id.from, h + 6, MSG_IDENT_FIELD_MAXLEN);
	assert_int_equal(msg_ident_from_headers(NULL, 0, &id), -1);
	assert_int_equal(msg_ident_from_headers(h, 0, NULL), -1);
	free(h);
}

/* ---- body hash ---- */

struct body_case {
	const char	*msg;
	size_t		 len;
	const char	*canon;	/* canonical body, hashed as oracle */
	size_t		 canonlen;
};

#define BODY_HW		"Hello\r\nWorld\r\n"
static const struct body_case body_cases[] = {
	/* 0-9: the same body through relay, IMAP and maildir */
	{ S("Received: from x\r\nSubject: s\r\n\r\nHello\r\nWorld\r\n"),
	    S(BODY_HW) },
	{ S("Return-Path: <a@b>\nDelivered-To: c@d\nSubject: s\n\n"
	    "Hello\nWorld\n"), S(BODY_HW) },
	{ S("X-Other: 1\r\nX-More: 2\r\n  folded\r\n\r\nHello\r\nWorld\r\n"
	    "\r\n\r\n"), S(BODY_HW) },
	{ S("Subject: s\n\nHello\nWorld"), S(BODY_HW) },
	{ S("Subject: s\n\nHello\r\nWorld\n\n\r\n\n"), S(BODY_HW) },
	{ S("\r\nHello\r\nWorld\r\n"), S(BODY_HW) },
	{ S("\nHello\nWorld\n\n"), S(BODY_HW) },
	{ S("S: s\r\r\n\r\nHello\r\nWorld\r\n"), S(BODY_HW) },
	{ S("\rX: y\r\n\r\nHello\r\nWorld\r\n"), S(BODY_HW) },
	{ S("S: s\r\n\r\nHello\r\nWorld\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"),
	    S(BODY_HW) },
	/* 10-11: inner empty lines are significant */
	{ S("S: s\r\n\r\nHello\r\n\r\nWorld\r\n"),
	    S("Hello\r\n\r\nWorld\r\n") },
	{ S("S: s\n\nHello\n\nWorld\n\n"), S("Hello\r\n\r\nWorld\r\n") },
	/* 12-13: so are leading ones */
	{ S("S: s\r\n\r\n\r\nHello\r\nWorld\r\n"),
	    S("\r\nHello\r\nWorld\r\n") },
	{ S("S: s\n\n\n\nHello\nWorld\n"), S("\r\n\r\nHello\r\nWorld\r\n") },
	/* 14: a trailing line of spaces is not empty */
	{ S("S: s\r\n\r\nHello\r\nWorld\r\n \r\n\r\n"),
	    S("Hello\r\nWorld\r\n \r\n") },
	/* 15-21: empty bodies */
	{ S("S: s\r\n\r\n"), S("") },
	{ S("S: s\n\n\n\n"), S("") },
	{ S("S: s\r\n"), S("") },
	{ S("S: s"), S("") },
	{ S(""), S("") },
	{ S("\r\n"), S("") },
	{ S("\n\r\n\n"), S("") },
	/* 22-23: a bare CR is content */
	{ S("S: s\r\n\r\nA\rB\r\n"), S("A\rB\r\n") },
	{ S("S: s\n\nA\rB\n"), S("A\rB\r\n") },
	/* 24-25: a CR before the end, and at the very end */
	{ S("S: s\n\nA\r\r\n"), S("A\r\r\n") },
	{ S("S: s\n\nA\r"), S("A\r\r\n") },
	/* 26: case is significant */
	{ S("S: s\r\n\r\nhello\r\nworld\r\n"), S("hello\r\nworld\r\n") },
	/* 27: a header that looks like a blank line but is a fold */
	{ S("S: s\r\n \r\nX: y\r\n\r\nHello\r\nWorld\r\n"), S(BODY_HW) },
	/* 28: NUL bytes are content */
	{ S("S: s\n\nA\0B\n"), S("A\0B\r\n") },
	/* 29: a header line holding a bare CR is not the empty line */
	{ S("S: s\r\n\r\r\nX: y\r\n\r\nHello\r\nWorld\r\n"), S(BODY_HW) },
};

static size_t
canon_len(size_t i)
{
	return body_cases[i].canonlen;
}

static void
test_body_hash_oracle(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(body_cases); i++) {
		unsigned char got[32], want[32];
		char hg[65], hw[65];

		hash_whole(body_cases[i].msg, body_cases[i].len, got);
		sha256(body_cases[i].canon, canon_len(i), want);
		if (memcmp(got, want, 32) != 0) {
			body_hash_hex(got, hg);
			body_hash_hex(want, hw);
			fail_msg("case %zu: got %s want %s", i, hg, hw);
		}
	}
}

/* Same canonical body <=> same hash, across every pair of rows. */
static void
test_body_hash_pairs(void **state)
{
	unsigned char h[NELEM(body_cases)][32];
	size_t i, j;

	(void)state;
	for (i = 0; i < NELEM(body_cases); i++)
		hash_whole(body_cases[i].msg, body_cases[i].len, h[i]);
	for (i = 0; i < NELEM(body_cases); i++)
		for (j = i + 1; j < NELEM(body_cases); j++) {
			int same = canon_len(i) == canon_len(j) &&
			    memcmp(body_cases[i].canon, body_cases[j].canon,
			    canon_len(i)) == 0;

			if (same != (memcmp(h[i], h[j], 32) == 0))
				fail_msg("cases %zu and %zu: want %s hashes",
				    i, j, same ? "equal" : "different");
		}
}

/* The empty body has the well-known SHA-256 of "". */
static void
test_body_hash_empty_constant(void **state)
{
	unsigned char h[32];
	char hex[65];

	(void)state;
	hash_whole(S("Subject: x\r\n\r\n\r\n"), h);
	body_hash_hex(h, hex);
	assert_string_equal(hex,
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* Any split of the input gives the same hash as one piece. */
static void
test_body_hash_chunking(void **state)
{
	size_t i, k, split;

	(void)state;
	srand(12345);
	for (i = 0; i < NELEM(body_cases); i++) {
		const char *m = body_cases[i].msg;
		size_t len = body_cases[i].len;
		unsigned char whole[32], got[32];
		size_t one = 1;

		hash_whole(m, len, whole);
		hash_chunks(m, len, &one, 1, got);
		if (memcmp(whole, got, 32) != 0)
			fail_msg("case %zu: byte by byte differs", i);
		for (split = 0; split <= len; split++) {
			size_t two[2] = { split, len };

			if (split == 0)
				continue;
			hash_chunks(m, len, two, 2, got);
			if (memcmp(whole, got, 32) != 0)
				fail_msg("case %zu: split at %zu differs", i,
				    split);
		}
		for (k = 0; k < 50; k++) {
			size_t sizes[7];
			size_t s;

			for (s = 0; s < NELEM(sizes); s++)
				sizes[s] = 1 + (size_t)rand() % 5;
			hash_chunks(m, len, sizes, NELEM(sizes), got);
			if (memcmp(whole, got, 32) != 0)
				fail_msg("case %zu: random chunks %zu differ",
				    i, k);
		}
	}
}

/* A growable byte string for the big-message test. */
struct bytes {
	char	*p;
	size_t	 n;
	size_t	 cap;
};

static void
bytes_add(struct bytes *b, const char *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

/*
 * A ~1 MB message with long and empty lines, built three ways: CRLF
 * message, LF message and the canonical body written directly.  Fed in
 * random chunks up to 64 KB, which exercises the batch buffer both ways.
 */
static void
test_body_hash_big(void **state)
{
	struct bytes crlf = { 0 }, lf = { 0 }, canon = { 0 };
	unsigned char want[32], got[32];
	char line[3000];
	size_t nlines = 2000, i, k, pending_blank = 0;

	(void)state;
	srand(4242);
	bytes_add(&crlf, S("Received: by relay\r\nSubject: big\r\n\r\n"));
	bytes_add(&lf, S("Subject: big\nX-Maildir: yes\n\n"));
	for (i = 0; i < nlines; i++) {
		size_t n = (rand() % 4 == 0) ? 0 : (size_t)rand() % 2000;

		for (k = 0; k < n; k++)
			line[k] = (char)(' ' + rand() % 95);
		bytes_add(&crlf, line, n);
		bytes_add(&crlf, "\r\n", 2);
		bytes_add(&lf, line, n);
		bytes_add(&lf, "\n", 1);
		if (n == 0) {
			pending_blank++;
			continue;
		}
		for (; pending_blank > 0; pending_blank--)
			bytes_add(&canon, "\r\n", 2);
		bytes_add(&canon, line, n);
		bytes_add(&canon, "\r\n", 2);
	}
	for (i = 0; i < 5; i++) {
		bytes_add(&crlf, "\r\n", 2);
		bytes_add(&lf, "\n", 1);
	}
	sha256(canon.p, canon.n, want);

	for (k = 0; k < 20; k++) {
		size_t sizes[5];
		size_t s;

		for (s = 0; s < NELEM(sizes); s++)
			sizes[s] = 1 + (size_t)rand() % 65536;
		hash_chunks(crlf.p, crlf.n, sizes, NELEM(sizes), got);
		if (memcmp(got, want, 32) != 0)
			fail_msg("round %zu: CRLF message differs", k);
		hash_chunks(lf.p, lf.n, sizes, NELEM(sizes), got);
		if (memcmp(got, want, 32) != 0)
			fail_msg("round %zu: LF message differs", k);
	}
	free(crlf.p);
	free(lf.p);
	free(canon.p);
}

static void
test_body_hash_lifecycle(void **state)
{
	struct body_hash bh;
	unsigned char out[32];

	(void)state;
	/* free on a zeroed struct, and twice */
	memset(&bh, 0, sizeof(bh));
	body_hash_free(&bh);
	body_hash_free(&bh);
	body_hash_free(NULL);
	assert_int_equal(body_hash_update(&bh, "x", 1), -1);
	assert_int_equal(body_hash_final(&bh, out), -1);

	/* abandoned midway: free releases the context (ASan/valgrind) */
	assert_int_equal(body_hash_init(&bh), 0);
	assert_int_equal(body_hash_update(&bh, S("S: s\r\n\r\nbody\r\n")), 0);
	body_hash_free(&bh);
	body_hash_free(&bh);

	/* after final: no more input, no second final, free is harmless */
	assert_int_equal(body_hash_init(&bh), 0);
	assert_int_equal(body_hash_update(&bh, NULL, 0), 0);
	assert_int_equal(body_hash_update(&bh, S("S: s\r\n\r\nbody\r\n")), 0);
	assert_int_equal(body_hash_update(&bh, NULL, 1), -1);
	assert_int_equal(body_hash_final(&bh, out), 0);
	assert_null(bh.ctx);
	assert_int_equal(body_hash_update(&bh, "x", 1), -1);
	assert_int_equal(body_hash_final(&bh, out), -1);
	body_hash_free(&bh);
	assert_int_equal(body_hash_init(NULL), -1);
}

/* ---- keys ---- */

static const unsigned char body_a[32] = { 0xaa };
static const unsigned char body_b[32] = { 0xbb };

struct relay_input {
	const char	*msgid;
	const char	*from;
	const char	*rcpts[5];
	size_t		 nrcpt;
	const unsigned char *body;
};

static void
relay_key(const struct relay_input *in, unsigned char out[32])
{
	assert_int_equal(msgkey_relay(in->msgid, in->from, in->rcpts,
	    in->nrcpt, in->body, out), 0);
}

/* Every row names the same envelope and content. */
static const struct relay_input relay_same[] = {
	{ "<m@x>", "s@y", { "a@x.com", "b@y.com", "c@z.com" }, 3, body_a },
	{ "<m@x>", "s@y", { "a@x.com", "c@z.com", "b@y.com" }, 3, body_a },
	{ "<m@x>", "s@y", { "b@y.com", "a@x.com", "c@z.com" }, 3, body_a },
	{ "<m@x>", "s@y", { "b@y.com", "c@z.com", "a@x.com" }, 3, body_a },
	{ "<m@x>", "s@y", { "c@z.com", "a@x.com", "b@y.com" }, 3, body_a },
	{ "<m@x>", "s@y", { "c@z.com", "b@y.com", "a@x.com" }, 3, body_a },
	{ "<m@x>", "s@y", { "a@x.com", "b@y.com", "a@x.com", "c@z.com" }, 4,
	    body_a },
	{ "<m@x>", "s@y", { "<a@x.com>", "b@Y.COM", " c@z.com" }, 3, body_a },
	{ "<m@x>", "s@y", { "c@z.com", "a@X.com", "b@y.com", "<b@y.com>",
	    "A@x.COM" }, 5, body_a },
};

static void
test_relay_key_order(void **state)
{
	unsigned char base[32], k[32];
	size_t i;

	(void)state;
	relay_key(&relay_same[0], base);
	for (i = 1; i < NELEM(relay_same); i++) {
		relay_key(&relay_same[i], k);
		/* The last row has "A@x.COM": a different local part. */
		if ((memcmp(base, k, 32) == 0) != (i != NELEM(relay_same) - 1))
			fail_msg("row %zu: key %s the base key", i,
			    i != NELEM(relay_same) - 1 ? "differs from" :
			    "equals");
	}
}

/* Every row differs from every other: each field counts, no field can
 * borrow bytes from its neighbour. */
static const struct relay_input relay_distinct[] = {
	{ "<m@x>", "s@y", { "a@x.com", "b@y.com" }, 2, body_a },
	{ "<n@x>", "s@y", { "a@x.com", "b@y.com" }, 2, body_a },
	{ "", "s@y", { "a@x.com", "b@y.com" }, 2, body_a },
	{ "<m@x>", "t@y", { "a@x.com", "b@y.com" }, 2, body_a },
	{ "<m@x>", "", { "a@x.com", "b@y.com" }, 2, body_a },
	{ "<m@x>", "s@y", { "a@x.com" }, 1, body_a },
	{ "<m@x>", "s@y", { "a@x.com", "b@y.com", "c@z.com" }, 3, body_a },
	{ "<m@x>", "s@y", { "a@x.com", "B@y.com" }, 2, body_a },
	{ "<m@x>", "s@y", { 0 }, 0, body_a },
	{ "<m@x>", "s@y", { "a@x.com", "b@y.com" }, 2, body_b },
	/* concatenation: from + rcpt */
	{ "", "a", { "bc" }, 1, body_a },
	{ "", "ab", { "c" }, 1, body_a },
	/* concatenation: inside the rcpt set */
	{ "", "", { "a", "bc" }, 2, body_a },
	{ "", "", { "ab", "c" }, 2, body_a },
	{ "", "", { "abc" }, 1, body_a },
	/* concatenation: msgid + from, from + empty set */
	{ "<a>", "", { 0 }, 0, body_a },
	{ "", "<a>", { 0 }, 0, body_a },
	{ "", "", { "<a>" }, 1, body_a },
	{ "", "", { 0 }, 0, body_a },
	{ "", "", { "" }, 1, body_a },
};

static void
test_relay_key_distinct(void **state)
{
	unsigned char k[NELEM(relay_distinct)][32];
	size_t i, j;

	(void)state;
	for (i = 0; i < NELEM(relay_distinct); i++)
		relay_key(&relay_distinct[i], k[i]);
	for (i = 0; i < NELEM(relay_distinct); i++)
		for (j = i + 1; j < NELEM(relay_distinct); j++)
			if (memcmp(k[i], k[j], 32) == 0)
				fail_msg("rows %zu and %zu collide", i, j);
}

static void
test_relay_key_errors(void **state)
{
	const char *bad[] = { "a@x.com", "b\r\n@y.com" };
	const char *lone[] = { "<a@x.com" };
	const char *nul[] = { "a@x.com", NULL };
	unsigned char k[32];

	(void)state;
	assert_int_equal(msgkey_relay("<m@x>", "s@y", bad, 2, body_a, k), -1);
	assert_int_equal(msgkey_relay("<m@x>", "s@y", lone, 1, body_a, k), -1);
	assert_int_equal(msgkey_relay("<m@x>", "s@y", nul, 2, body_a, k), -1);
	assert_int_equal(msgkey_relay("<m@x>", "s@y", NULL, 1, body_a, k), -1);
	assert_int_equal(msgkey_relay("<m@x>", "s@y", NULL, 0, NULL, k), -1);
	assert_int_equal(msgkey_relay("<m@x>", "s@y", NULL, 0, body_a, NULL),
	    -1);
	/* NULL msgid and sender mean "" */
	{
		unsigned char a[32], b[32];

		assert_int_equal(msgkey_relay(NULL, NULL, NULL, 0, body_a, a),
		    0);
		assert_int_equal(msgkey_relay("", "", NULL, 0, body_a, b), 0);
		assert_memory_equal(a, b, 32);
	}
}

/* Golden test: the relay key's byte layout is a stored format. */
static void
kh_field_buf(struct bytes *b, const void *p, size_t n)
{
	unsigned char len[8];
	int i;
	uint64_t v = n;

	for (i = 7; i >= 0; i--) {
		len[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
	bytes_add(b, (const char *)len, 8);
	if (n > 0)
		bytes_add(b, p, n);
}

static void
test_relay_key_golden(void **state)
{
	const char *rcpts[] = { "<Z@B.example>", "a@A.example", "z@b.example" };
	struct bytes b = { 0 };
	unsigned char want[32], got[32];
	unsigned char count[8] = { 0, 0, 0, 0, 0, 0, 0, 2 };

	(void)state;
	kh_field_buf(&b, S("mailferry-relay-v1"));
	kh_field_buf(&b, S("<m@x>"));
	kh_field_buf(&b, S("S@Y"));
	bytes_add(&b, (const char *)count, 8);
	kh_field_buf(&b, S("Z@b.example"));	/* sorted: 'Z' < 'a' */
	kh_field_buf(&b, S("a@a.example"));
	kh_field_buf(&b, body_a, 32);
	sha256(b.p, b.n, want);
	free(b.p);
	/* "z@b.example" differs from "Z@b.example": three recipients */
	assert_int_equal(msgkey_relay("<m@x>", "S@Y", rcpts, 3, body_a, got),
	    0);
	assert_memory_not_equal(got, want, 32);
	assert_int_equal(msgkey_relay("<m@x>", "S@Y", rcpts, 2, body_a, got),
	    0);
	assert_memory_equal(got, want, 32);
}

static void
ident_set(struct msg_ident *id, const char *msgid, const char *date,
    const char *from)
{
	memset(id, 0, sizeof(*id));
	if (msgid != NULL) {
		snprintf(id->msgid, sizeof(id->msgid), "%s", msgid);
		id->has_msgid = 1;
	}
	snprintf(id->date, sizeof(id->date), "%s", date);
	snprintf(id->from, sizeof(id->from), "%s", from);
}

struct ledger_input {
	const char	*mailbox;
	const char	*msgid;		/* NULL: no Message-ID */
	const char	*date;
	const char	*from;
	const unsigned char *body;
};

static void
ledger_key(const struct ledger_input *in, unsigned char out[32])
{
	struct msg_ident id;

	ident_set(&id, in->msgid, in->date, in->from);
	assert_int_equal(msgkey_ledger(in->mailbox, &id, in->body, out), 0);
}

/* Pairs of rows that must give the same key. */
static const struct ledger_input ledger_same[][2] = {
	{ { "user@example.com", "<m@x>", "d", "f", body_a },
	  { "<User@EXAMPLE.com>", "<m@x>", "d", "f", body_a } },
	/* with a Message-ID, Date and From do not count */
	{ { "user@example.com", "<m@x>", "d1", "f1", body_a },
	  { "user@example.com", "<m@x>", "d2", "f2", body_a } },
	{ { "user@example.com", NULL, "d", "f", body_a },
	  { " user@Example.Com ", NULL, "d", "f", body_a } },
};

static void
test_ledger_key_same(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(ledger_same); i++) {
		unsigned char a[32], b[32];

		ledger_key(&ledger_same[i][0], a);
		ledger_key(&ledger_same[i][1], b);
		if (memcmp(a, b, 32) != 0)
			fail_msg("pair %zu: keys differ", i);
	}
}

static const struct ledger_input ledger_distinct[] = {
	{ "user@example.com", "<m@x>", "d", "f", body_a },
	{ "other@example.com", "<m@x>", "d", "f", body_a },
	{ "user@example.com", "<n@x>", "d", "f", body_a },
	{ "user@example.com", "<m@x>", "d", "f", body_b },
	/* the fallback path */
	{ "user@example.com", NULL, "d", "f", body_a },
	{ "user@example.com", NULL, "d2", "f", body_a },
	{ "user@example.com", NULL, "d", "f2", body_a },
	{ "user@example.com", NULL, "d", "f", body_b },
	{ "other@example.com", NULL, "d", "f", body_a },
	/* concatenation inside the fallback */
	{ "u", NULL, "a", "bc", body_a },
	{ "u", NULL, "ab", "c", body_a },
	{ "ua", NULL, "", "bc", body_a },
	/* the two variants never meet */
	{ "u", "<m@x>", "", "", body_a },
	{ "u", NULL, "<m@x>", "", body_a },
	{ "u", NULL, "", "<m@x>", body_a },
	{ "u", NULL, "", "", body_a },
};

static void
test_ledger_key_distinct(void **state)
{
	unsigned char k[NELEM(ledger_distinct)][32];
	size_t i, j;

	(void)state;
	for (i = 0; i < NELEM(ledger_distinct); i++)
		ledger_key(&ledger_distinct[i], k[i]);
	for (i = 0; i < NELEM(ledger_distinct); i++)
		for (j = i + 1; j < NELEM(ledger_distinct); j++)
			if (memcmp(k[i], k[j], 32) == 0)
				fail_msg("rows %zu and %zu collide", i, j);
}

/* Golden test of both ledger layouts. */
static void
test_ledger_key_golden(void **state)
{
	struct msg_ident id;
	struct bytes b = { 0 };
	unsigned char want[32], got[32];

	(void)state;
	kh_field_buf(&b, S("mailferry-ledger-v1"));
	kh_field_buf(&b, S("msgid"));
	kh_field_buf(&b, S("user@example.com"));
	kh_field_buf(&b, S("<m@x>"));
	kh_field_buf(&b, body_b, 32);
	sha256(b.p, b.n, want);
	ident_set(&id, "<m@x>", "d", "f");
	assert_int_equal(msgkey_ledger("<USER@example.com>", &id, body_b, got),
	    0);
	assert_memory_equal(got, want, 32);

	b.n = 0;
	kh_field_buf(&b, S("mailferry-ledger-v1"));
	kh_field_buf(&b, S("date-from"));
	kh_field_buf(&b, S("user@example.com"));
	kh_field_buf(&b, S("Mon, 1 Jan 2024"));
	kh_field_buf(&b, S("A <a@b>"));
	kh_field_buf(&b, body_b, 32);
	sha256(b.p, b.n, want);
	ident_set(&id, NULL, "Mon, 1 Jan 2024", "A <a@b>");
	assert_int_equal(msgkey_ledger("user@example.com", &id, body_b, got),
	    0);
	assert_memory_equal(got, want, 32);
	free(b.p);

	assert_int_equal(msgkey_ledger("u\r@x", &id, body_b, got), -1);
	assert_int_equal(msgkey_ledger(NULL, &id, body_b, got), -1);
	assert_int_equal(msgkey_ledger("u@x", NULL, body_b, got), -1);
}

/*
 * End to end: one message as the relay saw it and as a maildir file on
 * the old host (LF, different top headers, the Message-ID refolded and
 * its domain in another case) gives one ledger key.
 */
static void
test_ledger_end_to_end(void **state)
{
	static const char smtp[] =
	    "Received: from mx.sender.example by old-mx.example.com\r\n"
	    "Authentication-Results: old-mx.example.com; spf=pass\r\n"
	    "From: \"Alice\" <alice@sender.example>\r\n"
	    "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
	    "Message-ID: <abc.123@Sender.Example>\r\n"
	    "Subject: hi\r\n"
	    "\r\n"
	    "Hi Bob,\r\n"
	    "\r\n"
	    "see you.\r\n";
	static const char maildir[] =
	    "Return-Path: <alice@sender.example>\n"
	    "Delivered-To: bob@example.com\n"
	    "Received: from mx.sender.example by old-mx.example.com\n"
	    "From: \"Alice\"\n <alice@sender.example>\n"
	    "Date: Mon, 1 Jan 2024\n\t10:00:00 +0000\n"
	    "Message-Id:\n <abc.123@sender.example>\n"
	    "Subject: hi\n"
	    "\n"
	    "Hi Bob,\n"
	    "\n"
	    "see you.\n"
	    "\n";
	const char *msgs[2] = { smtp, maildir };
	size_t lens[2] = { sizeof(smtp) - 1, sizeof(maildir) - 1 };
	unsigned char key[2][32], nomid[2][32];
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		struct msg_ident id;
		unsigned char body[32];

		assert_int_equal(msg_ident_from_headers(msgs[i], lens[i], &id),
		    0);
		assert_true(id.has_msgid);
		assert_string_equal(id.msgid, "<abc.123@sender.example>");
		assert_string_equal(id.date, "Mon, 1 Jan 2024 10:00:00 +0000");
		assert_string_equal(id.from,
		    "\"Alice\" <alice@sender.example>");
		hash_whole(msgs[i], lens[i], body);
		assert_int_equal(msgkey_ledger(i == 0 ? "Bob@Example.com" :
		    "bob@example.com", &id, body, key[i]), 0);
		id.has_msgid = 0;
		id.msgid[0] = '\0';
		assert_int_equal(msgkey_ledger("bob@example.com", &id, body,
		    nomid[i]), 0);
	}
	assert_memory_equal(key[0], key[1], 32);
	assert_memory_equal(nomid[0], nomid[1], 32);
	assert_memory_not_equal(key[0], nomid[0], 32);
}

/* ---- addresses and hex ---- */

struct addr_case {
	const char	*in;
	const char	*want;	/* NULL: must fail */
};

static const struct addr_case addr_cases[] = {
	{ "<User@Example.COM>", "User@example.com" },
	{ "user@example.com", "user@example.com" },
	{ "  <a@B.c>\t", "a@b.c" },
	{ "<>", "" },
	{ "", "" },
	{ "\"Q@X\"@Ex.com", "\"Q@X\"@ex.com" },
	{ "\"Q@X\"", "\"Q@X\"" },
	{ "postmaster", "postmaster" },
	{ "<@Relay.Example:u@D.Example>", "@Relay.Example:u@d.example" },
	{ "\"a b\"@X", "\"a b\"@x" },
	{ "<a@b", NULL },
	{ "a@b>", NULL },
	{ "<", NULL },
	{ ">", NULL },
	{ "a\r\n@b", NULL },
	{ "a\x7f@b", NULL },
	{ "a@b\x01", NULL },
};

static void
test_addr_canonical_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(addr_cases); i++) {
		char out[64];
		int r = addr_canonical(addr_cases[i].in, out, sizeof(out));

		if (addr_cases[i].want == NULL) {
			if (r != -1)
				fail_msg("case %zu: want -1, got \"%s\"", i,
				    out);
			continue;
		}
		if (r < 0 || strcmp(out, addr_cases[i].want) != 0 ||
		    (size_t)r != strlen(addr_cases[i].want))
			fail_msg("case %zu: want \"%s\", got %d \"%s\"", i,
			    addr_cases[i].want, r, r < 0 ? "" : out);
	}
}

static void
test_addr_canonical_outlen(void **state)
{
	char out[8];

	(void)state;
	assert_int_equal(addr_canonical("<a@B.c>", out, 5), -1);
	assert_int_equal(addr_canonical("<a@B.c>", out, 6), 5);
	assert_string_equal(out, "a@b.c");
	assert_int_equal(addr_canonical(NULL, out, sizeof(out)), -1);
	assert_int_equal(addr_canonical("a@b", NULL, 8), -1);
}

static void
test_hex(void **state)
{
	unsigned char k[32];
	char hex[MSGKEY_HEXSIZE];
	size_t i;

	(void)state;
	for (i = 0; i < 32; i++)
		k[i] = (unsigned char)(i * 8 + 1);
	msgkey_hex(k, hex);
	assert_string_equal(hex,
	    "0109111921293139414951596169717981899199a1a9b1b9c1c9d1d9e1e9f1f9");
	body_hash_hex(k, hex);
	assert_string_equal(hex,
	    "0109111921293139414951596169717981899199a1a9b1b9c1c9d1d9e1e9f1f9");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalise_table),
		cmocka_unit_test(test_normalise_idempotent),
		cmocka_unit_test(test_normalise_twice),
		cmocka_unit_test(test_normalise_twice_exhaustive),
		cmocka_unit_test(test_normalise_limits),
		cmocka_unit_test(test_normalise_outlen),
		cmocka_unit_test(test_header_block_table),
		cmocka_unit_test(test_ident_table),
		cmocka_unit_test(test_ident_long_field),
		cmocka_unit_test(test_body_hash_oracle),
		cmocka_unit_test(test_body_hash_pairs),
		cmocka_unit_test(test_body_hash_empty_constant),
		cmocka_unit_test(test_body_hash_chunking),
		cmocka_unit_test(test_body_hash_big),
		cmocka_unit_test(test_body_hash_lifecycle),
		cmocka_unit_test(test_relay_key_order),
		cmocka_unit_test(test_relay_key_distinct),
		cmocka_unit_test(test_relay_key_errors),
		cmocka_unit_test(test_relay_key_golden),
		cmocka_unit_test(test_ledger_key_same),
		cmocka_unit_test(test_ledger_key_distinct),
		cmocka_unit_test(test_ledger_key_golden),
		cmocka_unit_test(test_ledger_end_to_end),
		cmocka_unit_test(test_addr_canonical_table),
		cmocka_unit_test(test_addr_canonical_outlen),
		cmocka_unit_test(test_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
