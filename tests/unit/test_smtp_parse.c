/*
 * test_smtp_parse.c - the SMTP command parser and the DATA state
 * machine, table-driven: verbs and their argument rules, MAIL/RCPT paths
 * (null sender, postmaster, quoted local parts, source routes, address
 * literals, RFC 5321 length limits, UTF-8), ESMTP parameters; DATA end
 * detection, dot-unstuffing, bare CR/LF refusal, size and line limits,
 * and that any chunking gives the same result (every split point of
 * every case).  The fuzz target's invariants (tests/fuzz/
 * fuzz_smtp_parse.c) are checked over the tables too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fuzz.h"
#include "smtp_parse.h"

/* ---- commands ------------------------------------------------------------- */

#define OK	NULL

static const struct cmd_case {
	const char	*line;
	const char	*reply;		/* NULL: accepted; else prefix expected */
	enum smtp_verb	 verb;
	const char	*addr;		/* expected addr (MAIL/RCPT) or arg */
} cmd_cases[] = {
	/* verbs and arguments */
	{ "EHLO client.example", OK, SMTP_CMD_EHLO, "client.example" },
	{ "ehlo [192.0.2.1]", OK, SMTP_CMD_EHLO, "[192.0.2.1]" },
	{ "HELO a b c", OK, SMTP_CMD_HELO, "a" },
	{ "EHLO", "501 5.5.4", 0, NULL },
	{ "EHLO   ", "501 5.5.4", 0, NULL },
	{ "DATA", OK, SMTP_CMD_DATA, "" },
	{ "data  ", OK, SMTP_CMD_DATA, "" },
	{ "DATA x", "501 5.5.4", 0, NULL },
	{ "RSET", OK, SMTP_CMD_RSET, "" },
	{ "QUIT", OK, SMTP_CMD_QUIT, "" },
	{ "NOOP whatever", OK, SMTP_CMD_NOOP, "whatever" },
	{ "HELP", OK, SMTP_CMD_HELP, "" },
	{ "VRFY bob", OK, SMTP_CMD_VRFY, "bob" },
	{ "VRFY", "501 5.5.4", 0, NULL },
	{ "STARTTLS", OK, SMTP_CMD_STARTTLS, "" },
	{ "STARTTLS now", "501 5.5.4", 0, NULL },
	{ "EXPN list", "502 5.5.1", 0, NULL },
	{ "AUTH PLAIN", "502 5.5.1", 0, NULL },
	{ "BDAT 10 LAST", "502 5.5.1", 0, NULL },
	{ "FOO", "500 5.5.1", 0, NULL },
	{ "", "500 5.5.1", 0, NULL },
	{ "GET / HTTP/1.1", "500 5.5.1", 0, NULL },
	{ "MAILX FROM:<a@b.c>", "500 5.5.1", 0, NULL },
	{ "NOOP \001", "500 5.5.2", 0, NULL },
	{ "NOOP \177", "500 5.5.2", 0, NULL },
	/* MAIL */
	{ "MAIL FROM:<bob@example.org>", OK, SMTP_CMD_MAIL, "bob@example.org" },
	{ "mail from:<bob@example.org>", OK, SMTP_CMD_MAIL, "bob@example.org" },
	{ "MAIL FROM: <bob@example.org>", OK, SMTP_CMD_MAIL, "bob@example.org" },
	{ "MAIL FROM:<>", OK, SMTP_CMD_MAIL, "" },
	{ "MAIL FROM:bob@example.org", "501 5.5.4", 0, NULL },
	{ "MAIL FROM:<bob@example.org", "501 5.5.4", 0, NULL },
	{ "MAIL TO:<bob@example.org>", "501 5.5.4", 0, NULL },
	{ "MAIL", "501 5.5.4", 0, NULL },
	{ "MAIL FROM:<bob>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<@example.org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<bob@>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<bob@-x.org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<bob@x-.org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<bob@x..org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<bob@x.org.>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<bob@x_y.org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<.bob@x.org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<bob.@x.org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<b..ob@x.org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<b ob@x.org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<b(ob@x.org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<a.b+c-d_e!#$%&'*/=?^`{|}~@x.org>", OK, SMTP_CMD_MAIL,
	    "a.b+c-d_e!#$%&'*/=?^`{|}~@x.org" },
	{ "MAIL FROM:<\"john doe\"@x.org>", OK, SMTP_CMD_MAIL, "\"john doe\"@x.org" },
	{ "MAIL FROM:<\"a>b@c\"@x.org>", OK, SMTP_CMD_MAIL, "\"a>b@c\"@x.org" },
	{ "MAIL FROM:<\"a\\\"b\"@x.org>", OK, SMTP_CMD_MAIL, "\"a\\\"b\"@x.org" },
	{ "MAIL FROM:<\"unterminated@x.org>", "501 5.5.4", 0, NULL },
	{ "MAIL FROM:<\"a\"b@x.org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<@relay1.org,@relay2.org:bob@x.org>", OK, SMTP_CMD_MAIL,
	    "bob@x.org" },
	{ "MAIL FROM:<@relay1.org:bob@x.org>", OK, SMTP_CMD_MAIL, "bob@x.org" },
	{ "MAIL FROM:<@relay1.org,bob@x.org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<@:bob@x.org>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<bob@[192.0.2.1]>", OK, SMTP_CMD_MAIL, "bob@[192.0.2.1]" },
	{ "MAIL FROM:<bob@[IPv6:2001:db8::1]>", OK, SMTP_CMD_MAIL,
	    "bob@[IPv6:2001:db8::1]" },
	{ "MAIL FROM:<bob@[192.0.2.256]>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<bob@[IPv6:zz]>", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<bob@[x-tag:stuff]>", OK, SMTP_CMD_MAIL, "bob@[x-tag:stuff]" },
	{ "MAIL FROM:<bob@[]>", "501 5.1.7", 0, NULL },
	/* parameters */
	{ "MAIL FROM:<a@b.org> SIZE=1000", OK, SMTP_CMD_MAIL, "a@b.org" },
	{ "MAIL FROM:<a@b.org> SIZE=1000 BODY=8BITMIME SMTPUTF8", OK,
	    SMTP_CMD_MAIL, "a@b.org" },
	{ "MAIL FROM:<a@b.org> body=7bit", OK, SMTP_CMD_MAIL, "a@b.org" },
	{ "MAIL FROM:<a@b.org> SIZE=", "501 5.5.4", 0, NULL },
	{ "MAIL FROM:<a@b.org> SIZE", "501 5.5.4", 0, NULL },
	{ "MAIL FROM:<a@b.org> SIZE=12a", "501 5.5.4", 0, NULL },
	{ "MAIL FROM:<a@b.org> SIZE=1 SIZE=2", "501 5.5.4", 0, NULL },
	{ "MAIL FROM:<a@b.org> SIZE=123456789012345678901", "501 5.5.4", 0,
	    NULL },
	{ "MAIL FROM:<a@b.org> BODY=BINARYMIME", "501 5.5.4", 0, NULL },
	{ "MAIL FROM:<a@b.org> SMTPUTF8=yes", "501 5.5.4", 0, NULL },
	{ "MAIL FROM:<a@b.org> RET=FULL", "555 5.5.4", 0, NULL },
	{ "MAIL FROM:<a@b.org>SIZE=1", "501 5.5.4", 0, NULL },
	{ "MAIL FROM:<a@b.org> =1", "501 5.5.4", 0, NULL },
	{ "MAIL FROM:<a@b.org>   ", OK, SMTP_CMD_MAIL, "a@b.org" },
	/* UTF-8 */
	{ "MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc.org> SMTPUTF8", OK, SMTP_CMD_MAIL,
	    "j\xc3\xb6rg@b\xc3\xbc.org" },
	{ "MAIL FROM:<j\xc3\xb6rg@b.org>", "553 5.6.7", 0, NULL },
	{ "MAIL FROM:<j\xc3rg@b.org> SMTPUTF8", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<j\xc0\x80rg@b.org> SMTPUTF8", "501 5.1.7", 0, NULL },
	{ "MAIL FROM:<j\xed\xa0\x80rg@b.org> SMTPUTF8", "501 5.1.7", 0, NULL },
	/* RCPT */
	{ "RCPT TO:<alice@example.com>", OK, SMTP_CMD_RCPT, "alice@example.com" },
	{ "rcpt to:<Alice@Example.COM>", OK, SMTP_CMD_RCPT, "Alice@Example.COM" },
	{ "RCPT TO:<postmaster>", OK, SMTP_CMD_RCPT, "postmaster" },
	{ "RCPT TO:<PostMaster>", OK, SMTP_CMD_RCPT, "postmaster" },
	{ "RCPT TO:<postmaster@example.com>", OK, SMTP_CMD_RCPT,
	    "postmaster@example.com" },
	{ "RCPT TO:<alice>", "501 5.1.3", 0, NULL },
	{ "RCPT TO:<>", "501 5.1.3", 0, NULL },
	{ "RCPT TO:<a@b.org> NOTIFY=NEVER", "555 5.5.4", 0, NULL },
	{ "RCPT TO:<a@b.org> SIZE=1", "555 5.5.4", 0, NULL },
	{ "RCPT FROM:<a@b.org>", "501 5.5.4", 0, NULL },
	{ "RCPT TO:<@hop.org:alice@example.com>", OK, SMTP_CMD_RCPT,
	    "alice@example.com" },
	{ "RCPT TO:<j\xc3\xb6rg@example.com>", OK, SMTP_CMD_RCPT,
	    "j\xc3\xb6rg@example.com" },
};

/* A source route is dropped from the address, and said to be there. */
static void
test_cmd_source_route(void **state)
{
	struct smtp_cmd cmd;

	(void)state;
	assert_null(smtp_cmd_parse("RCPT TO:<@hop.org,@b.org:a@example.com>",
	    39, &cmd));
	assert_string_equal(cmd.addr, "a@example.com");
	assert_true(cmd.source_route);
	assert_null(smtp_cmd_parse("RCPT TO:<a@example.com>", 23, &cmd));
	assert_false(cmd.source_route);
	/* A NUL in a command line is refused, not cut there. */
	assert_string_equal(smtp_cmd_parse("NOOP a\0b", 8, &cmd),
	    "500 5.5.2 Invalid character in command");
	assert_string_equal(smtp_cmd_parse("RCPT TO:<a@example.com>\0x", 25,
	    &cmd), "500 5.5.2 Invalid character in command");
}

static void
test_cmd_table(void **state)
{
	struct smtp_cmd cmd;
	const char *reply;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		const struct cmd_case *c = &cmd_cases[i];

		reply = smtp_cmd_parse(c->line, strlen(c->line), &cmd);
		if (c->reply == NULL) {
			if (reply != NULL)
				fail_msg("case %zu \"%s\": refused: %s", i,
				    c->line, reply);
			if (cmd.verb != c->verb)
				fail_msg("case %zu \"%s\": verb %s", i, c->line,
				    smtp_verb_name(cmd.verb));
			if (strcmp(c->verb == SMTP_CMD_MAIL ||
			    c->verb == SMTP_CMD_RCPT ? cmd.addr : cmd.arg,
			    c->addr) != 0)
				fail_msg("case %zu \"%s\": got \"%s\"/\"%s\"", i,
				    c->line, cmd.addr, cmd.arg);
		} else {
			if (reply == NULL)
				fail_msg("case %zu \"%s\": accepted", i, c->line);
			if (strncmp(reply, c->reply, strlen(c->reply)) != 0)
				fail_msg("case %zu \"%s\": \"%s\", want \"%s\"",
				    i, c->line, reply, c->reply);
		}
	}
}

static void
test_cmd_params(void **state)
{
	struct smtp_cmd cmd;
	const char *l = "MAIL FROM:<a@b.org> SIZE=18446744073709551615 "
	    "BODY=8BITMIME SMTPUTF8";
	const char *l2 = "MAIL FROM:<a@b.org> SIZE=99999999999999999999";

	(void)state;
	assert_null(smtp_cmd_parse(l, strlen(l), &cmd));
	assert_true(cmd.has_size);
	assert_true(cmd.size == UINT64_MAX);
	assert_int_equal(cmd.body, SMTP_BODY_8BITMIME);
	assert_true(cmd.smtputf8);
	assert_null(smtp_cmd_parse(l2, strlen(l2), &cmd));
	assert_true(cmd.size == UINT64_MAX);	/* saturates: "too big" */
	l = "RCPT TO:<j\xc3\xb6rg@example.com>";
	assert_null(smtp_cmd_parse(l, strlen(l), &cmd));
	assert_true(cmd.addr_8bit);
	l = "RCPT TO:<postmaster>";
	assert_null(smtp_cmd_parse(l, strlen(l), &cmd));
	assert_true(cmd.postmaster);
	assert_false(cmd.addr_8bit);
	/* a NUL byte inside the line */
	assert_non_null(smtp_cmd_parse("NOOP a\0b", 8, &cmd));
}

/* RFC 5321 §4.5.3.1 limits, exactly at and one past each. */
static void
test_cmd_limits(void **state)
{
	struct smtp_cmd cmd;
	char line[1024], local[128], dom[512];
	const char *r;

	(void)state;
	/* local part: 64 ok, 65 refused */
	memset(local, 'l', 64);
	local[64] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<%s@x.org>", local);
	assert_null(smtp_cmd_parse(line, strlen(line), &cmd));
	snprintf(line, sizeof(line), "RCPT TO:<%sl@x.org>", local);
	assert_non_null(smtp_cmd_parse(line, strlen(line), &cmd));
	/* a label of 63 ok, 64 refused */
	memset(dom, 'd', 63);
	dom[63] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<a@%s.org>", dom);
	assert_null(smtp_cmd_parse(line, strlen(line), &cmd));
	snprintf(line, sizeof(line), "RCPT TO:<a@%sd.org>", dom);
	assert_non_null(smtp_cmd_parse(line, strlen(line), &cmd));
	/* path: 256 octets with <> ok, 257 refused */
	memset(dom, 'd', 250);		/* labels of 63: d{63}.d{63}.d{63}.d{58} */
	dom[63] = dom[127] = dom[191] = '.';
	memcpy(dom + 250, "xy", 3);	/* "<a@" + 252 + ">" = 256 */
	snprintf(line, sizeof(line), "RCPT TO:<a@%s>", dom);
	assert_int_equal(strlen(line), 8 + 256);
	assert_null(smtp_cmd_parse(line, strlen(line), &cmd));
	snprintf(line, sizeof(line), "RCPT TO:<ab@%s>", dom);
	r = smtp_cmd_parse(line, strlen(line), &cmd);
	assert_non_null(r);
	assert_string_equal(r, "501 5.1.3 Path too long");
	/* command line: 510 octets ok, 511 refused */
	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	assert_null(smtp_cmd_parse(line, 510, &cmd));
	r = smtp_cmd_parse(line, 511, &cmd);
	assert_non_null(r);
	assert_string_equal(r, "500 5.5.2 Line too long");
}

static const struct mbox_case {
	const char	*addr;
	int		 utf8;
	int		 ok;
} mbox_cases[] = {
	{ "a@b", 0, 1 },
	{ "a@b.c", 0, 1 },
	{ "a@1.2.3.4", 0, 1 },		/* a (numeric) domain name */
	{ "a", 0, 0 },
	{ "@b", 0, 0 },
	{ "a@", 0, 0 },
	{ "a@b@c", 0, 0 },
	{ "\"a@b\"@c", 0, 1 },
	{ "\"\"@c", 0, 1 },
	{ "\"a\\\x01\"@c", 0, 0 },
	{ "\xc3\xa9@c", 0, 0 },
	{ "\xc3\xa9@c", 1, 1 },
	{ "a@\xc3\xa9.fr", 1, 1 },
	{ "\xf4\x90\x80\x80@c", 1, 0 },	/* > U+10FFFF */
	{ "\xe0\x80\x80@c", 1, 0 },	/* overlong */
};

static void
test_mailbox(void **state)
{
	size_t i;
	int eight;

	(void)state;
	for (i = 0; i < sizeof(mbox_cases) / sizeof(mbox_cases[0]); i++) {
		const struct mbox_case *c = &mbox_cases[i];
		int rc = smtp_mailbox_valid(c->addr, strlen(c->addr), c->utf8,
		    &eight);

		if ((rc == 0) != c->ok)
			fail_msg("case %zu \"%s\": %d", i, c->addr, rc);
	}
}

/* ---- DATA ------------------------------------------------------------------ */

static const struct data_case {
	const char	*name;
	const char	*in;
	size_t		 inlen;		/* 0: strlen */
	const char	*out;		/* unstuffed message */
	size_t		 outlen;	/* 0: strlen */
	size_t		 consumed;	/* 0: all of in */
	int		 done;
	enum smtp_data_err err;
	uint64_t	 max_size;
	uint64_t	 max_line;
} data_cases[] = {
	{ "simple", "Subject: x\r\n\r\nbody\r\n.\r\n", 0,
	    "Subject: x\r\n\r\nbody\r\n", 0, 0, 1, SMTP_DATA_OK, 0, 0 },
	{ "empty message", ".\r\n", 0, "", 0, 0, 1, SMTP_DATA_OK, 0, 0 },
	{ "next command kept", "a\r\n.\r\nQUIT\r\n", 0, "a\r\n", 0, 6, 1,
	    SMTP_DATA_OK, 0, 0 },
	{ "dot stuffed", "..leading\r\n...\r\n.x\r\n.\r\n", 0,
	    ".leading\r\n..\r\nx\r\n", 0, 0, 1, SMTP_DATA_OK, 0, 0 },
	{ "lone dot stuffed", "..\r\n.\r\n", 0, ".\r\n", 0, 0, 1, SMTP_DATA_OK,
	    0, 0 },
	{ "dot mid line", "a.b\r\n a.\r\n.\r\n", 0, "a.b\r\n a.\r\n", 0, 0, 1,
	    SMTP_DATA_OK, 0, 0 },
	{ "not ended", "a\r\n.", 0, "a\r\n", 0, 0, 0, SMTP_DATA_OK, 0, 0 },
	{ "not ended 2", "a\r\n.\r", 0, "a\r\n", 0, 0, 0, SMTP_DATA_OK, 0, 0 },
	{ "8bit kept", "\xc3\xa9x\r\n.\r\n", 0, "\xc3\xa9x\r\n", 0, 0, 1,
	    SMTP_DATA_OK, 0, 0 },
	/* a NUL: output stops, the end is still looked for */
	{ "NUL", "\xc3\xa9\0x\r\n.\r\n", 9, "\xc3\xa9", 0, 0, 1,
	    SMTP_DATA_NUL, 0, 0 },
	{ "NUL dot is no end", "a\r\n\0.\r\nX\r\n.\r\nQUIT\r\n", 19, "a\r\n", 0,
	    13, 1, SMTP_DATA_NUL, 0, 0 },
	{ "dot NUL", ".\0\r\n.\r\n", 7, "", 0, 0, 1, SMTP_DATA_NUL, 0, 0 },
	{ "NUL then bare LF", "a\0b\nc\r\n.\r\n", 10, "a", 0, 4, 0,
	    SMTP_DATA_BARE_NL, 0, 0 },
	/* smuggling attempts: every bare CR or LF is refused */
	{ "bare LF", "a\nb\r\n.\r\n", 0, "a", 0, 2, 0, SMTP_DATA_BARE_NL, 0, 0 },
	{ "bare LF dot", "a\r\n.\n", 0, "a\r\n", 0, 5, 0, SMTP_DATA_BARE_NL, 0, 0 },
	{ "LF dot CRLF", "a\n.\r\nMAIL FROM:<x@y>\r\n", 0, "a", 0, 2, 0,
	    SMTP_DATA_BARE_NL, 0, 0 },
	{ "bare CR", "a\rb\r\n.\r\n", 0, "a\r", 0, 3, 0, SMTP_DATA_BARE_NL, 0, 0 },
	{ "CR dot CR", "a\r.\r\n", 0, "a\r", 0, 3, 0, SMTP_DATA_BARE_NL, 0, 0 },
	{ "dot CR x", "a\r\n.\rx\r\n.\r\n", 0, "a\r\n", 0, 6, 0,
	    SMTP_DATA_BARE_NL, 0, 0 },
	{ "first line bare LF", "\n.\r\n", 0, "", 0, 1, 0, SMTP_DATA_BARE_NL, 0, 0 },
	{ "dot LF first", ".\n", 0, "", 0, 2, 0, SMTP_DATA_BARE_NL, 0, 0 },
	{ "CR CR LF", "a\r\r\n.\r\n", 0, "a\r", 0, 3, 0, SMTP_DATA_BARE_NL, 0, 0 },
	/* limits */
	{ "size exact", "abc\r\n.\r\n", 0, "abc\r\n", 0, 0, 1, SMTP_DATA_OK, 5, 0 },
	{ "size over", "abcd\r\n.\r\n", 0, "abcd\r", 0, 0, 1, SMTP_DATA_TOO_BIG,
	    5, 0 },
	{ "size over then bare LF", "abcd\r\nx\ny\r\n.\r\n", 0, "abcd\r", 0, 8, 0,
	    SMTP_DATA_BARE_NL, 5, 0 },
	{ "line exact", "abc\r\n..b\r\n.\r\n", 0, "abc\r\n.b\r\n", 0, 0, 1,
	    SMTP_DATA_OK, 0, 3 },
	{ "line over", "abcd\r\nok\r\n.\r\n", 0, "abc", 0, 0, 1,
	    SMTP_DATA_LINE_TOO_LONG, 0, 3 },
	{ "line over stuffed", "...b\r\n.\r\n", 0, "..", 0, 0, 1,
	    SMTP_DATA_LINE_TOO_LONG, 0, 3 },
};

/* run one case with the input split at every pair of points */
static void
run_data_case(size_t idx, const struct data_case *c, size_t split1,
    size_t split2)
{
	struct smtp_data d;
	size_t inlen = c->inlen ? c->inlen : strlen(c->in);
	size_t outlen = c->outlen ? c->outlen : strlen(c->out);
	size_t consumed = 0, n, o, total = 0;
	size_t cuts[3] = { split1, split2, inlen }, prev = 0, k;
	unsigned char out[256];

	smtp_data_init(&d, c->max_size, c->max_line);
	for (k = 0; k < 3; k++) {
		if (cuts[k] < prev)
			continue;
		n = smtp_data_feed(&d, c->in + prev, cuts[k] - prev,
		    out + total, &o);
		total += o;
		consumed += n;
		if (n < cuts[k] - prev)
			break;
		prev = cuts[k];
	}
	if (consumed != (c->consumed ? c->consumed : inlen) ||
	    total != outlen || memcmp(out, c->out, outlen) != 0 ||
	    d.done != c->done || d.error != c->err)
		fail_msg("data case %zu (%s) split %zu/%zu: consumed %zu out "
		    "%zu done %d err %d", idx, c->name, split1, split2, consumed,
		    total, d.done, d.error);
	if (d.error == SMTP_DATA_OK && d.size != outlen)
		fail_msg("data case %zu (%s): size %llu", idx, c->name,
		    (unsigned long long)d.size);
}

static void
test_data_table(void **state)
{
	size_t i, a, b, inlen;

	(void)state;
	for (i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
		inlen = data_cases[i].inlen ? data_cases[i].inlen :
		    strlen(data_cases[i].in);
		for (a = 0; a <= inlen; a++)
			for (b = a; b <= inlen; b++)
				run_data_case(i, &data_cases[i], a, b);
	}
}

/* Nothing is fed after the end or a bare newline. */
static void
test_data_after_end(void **state)
{
	struct smtp_data d;
	unsigned char out[16];
	size_t o;

	(void)state;
	smtp_data_init(&d, 0, 0);
	assert_int_equal(smtp_data_feed(&d, ".\r\n", 3, out, &o), 3);
	assert_true(d.done);
	assert_int_equal(smtp_data_feed(&d, "abc", 3, out, &o), 0);
	assert_int_equal(o, 0);
	smtp_data_init(&d, 0, 0);
	assert_int_equal(smtp_data_feed(&d, "a\nb", 3, out, &o), 2);
	assert_int_equal(smtp_data_feed(&d, "abc", 3, out, &o), 0);
}

/* A big message in odd chunks counts every byte and never buffers. */
static void
test_data_big(void **state)
{
	struct smtp_data d;
	static unsigned char in[300000], out[300000];
	size_t i, pos = 0, o, total = 0, n;

	(void)state;
	for (i = 0; i + 5 < sizeof(in); i++)
		in[i] = (i % 100 == 98) ? '\r' : (i % 100 == 99) ? '\n' : 'x';
	memcpy(in + 299900, "\r\n.\r\n", 5);
	smtp_data_init(&d, 0, 1000);
	while (!d.done && pos < 299905) {
		size_t chunk = 1 + (pos * 7) % 4099;

		if (chunk > 299905 - pos)
			chunk = 299905 - pos;
		n = smtp_data_feed(&d, in + pos, chunk, out + total, &o);
		pos += n;
		total += o;
	}
	assert_true(d.done);
	assert_int_equal(d.error, SMTP_DATA_OK);
	assert_int_equal(pos, 299905);
	assert_int_equal(total, 299902);
	assert_true(d.size == 299902);
	assert_memory_equal(out, in, 299902);
}

static void
test_fuzz_entry(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++)
		fuzz_smtp_parse((const uint8_t *)cmd_cases[i].line,
		    strlen(cmd_cases[i].line));
	for (i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++)
		fuzz_smtp_parse((const uint8_t *)data_cases[i].in,
		    data_cases[i].inlen ? data_cases[i].inlen :
		    strlen(data_cases[i].in));
	/* some pseudo-random garbage made of SMTP-ish bytes */
	{
		static const char alphabet[] = "\r\n.<>@:\" MAILFROM\\x\xc3";
		uint8_t buf[512];
		unsigned seed = 1;
		size_t j;

		for (i = 0; i < 2000; i++) {
			for (j = 0; j < sizeof(buf); j++) {
				seed = seed * 1103515245 + 12345;
				buf[j] = (uint8_t)alphabet[(seed >> 16) %
				    (sizeof(alphabet) - 1)];
			}
			fuzz_smtp_parse(buf, (seed >> 8) % sizeof(buf));
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmd_table),
		cmocka_unit_test(test_cmd_source_route),
		cmocka_unit_test(test_cmd_params),
		cmocka_unit_test(test_cmd_limits),
		cmocka_unit_test(test_mailbox),
		cmocka_unit_test(test_data_table),
		cmocka_unit_test(test_data_after_end),
		cmocka_unit_test(test_data_big),
		cmocka_unit_test(test_fuzz_entry),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
