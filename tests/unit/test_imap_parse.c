/*
 * test_imap_parse.c - the incremental IMAP response parser
 * (syncd/imap_parse.c).
 *
 * Every valid case is fed whole, one byte at a time, and split in two
 * at every offset; the event trace must be the same each time (literal
 * data chunks are joined in the trace, and the split tests check that
 * they arrive exactly as fed).  Invalid cases must end in an error event
 * with the expected reason, and every later feed must fail too.  Then
 * pausing, literal streaming with bounded memory, the limits, the
 * sequence-set and date-time helpers, and a mutation run that only has
 * to stay inside its buffers (ASan/valgrind watch it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_parse.h"

/* A growing trace of events, one short word each. */
struct trace {
	char	*s;
	size_t	 len, cap;
	int	 last_data;	/* previous event was LITERAL_DATA */
	size_t	 max_chunk;	/* largest LITERAL_DATA seen */
	int	 pause_every;	/* pause after every event */
	int	 errors;
};

static void
tr_add(struct trace *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->s = realloc(t->s, t->cap);
		assert_non_null(t->s);
	}
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = '\0';
}

static void
tr_str(struct trace *t, const char *s)
{
	tr_add(t, s, strlen(s));
}

/* tr_esc - bytes made visible: \0, \r, \n, \" */
static void
tr_esc(struct trace *t, const char *s, size_t n)
{
	char b[8];
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0')
			tr_str(t, "\\0");
		else if (c == '\r')
			tr_str(t, "\\r");
		else if (c == '\n')
			tr_str(t, "\\n");
		else if (c < 0x20 || c >= 0x7f) {
			snprintf(b, sizeof(b), "\\x%02x", c);
			tr_str(t, b);
		} else
			tr_add(t, s + i, 1);
	}
}

static int
trace_cb(const struct imap_event *ev, void *arg)
{
	struct trace *t = arg;
	char b[64];

	if (ev->type == IMAP_EV_LITERAL_DATA) {
		if (ev->len > t->max_chunk)
			t->max_chunk = ev->len;
		if (!t->last_data)
			tr_str(t, " D:\"");
		else
			t->len--;	/* reopen the quote */
		tr_esc(t, ev->str, ev->len);
		tr_str(t, "\"");
		t->last_data = 1;
		return (t->pause_every ? IMAP_PARSE_PAUSE : 0);
	}
	t->last_data = 0;
	if (t->len > 0)
		tr_str(t, " ");
	switch (ev->type) {
	case IMAP_EV_UNTAGGED:
		if (ev->flags & IMAP_EVF_NUM)
			snprintf(b, sizeof(b), "U[%llu %s]",
			    (unsigned long long)ev->num, ev->str);
		else
			snprintf(b, sizeof(b), "U[%s]", ev->str);
		tr_str(t, b);
		break;
	case IMAP_EV_TAGGED:
		tr_str(t, "T[");
		tr_str(t, ev->tag);
		tr_str(t, " ");
		tr_str(t, ev->str);
		tr_str(t, "]");
		break;
	case IMAP_EV_CONTINUE:
		tr_str(t, "+");
		break;
	case IMAP_EV_ATOM:
		tr_str(t, "A:");
		tr_esc(t, ev->str, ev->len);
		break;
	case IMAP_EV_NUMBER:
		snprintf(b, sizeof(b), "N:%llu", (unsigned long long)ev->num);
		tr_str(t, b);
		assert_int_equal(strtoull(ev->str, NULL, 10), ev->num);
		break;
	case IMAP_EV_STRING:
		tr_str(t, ev->flags & IMAP_EVF_LITERAL ? "SL" : "S");
		if (ev->flags & IMAP_EVF_BINARY)
			tr_str(t, "8");
		if (ev->flags & IMAP_EVF_NUL)
			tr_str(t, "0");
		tr_str(t, ":\"");
		tr_esc(t, ev->str, ev->len);
		tr_str(t, "\"");
		assert_int_equal(ev->str[ev->len], '\0');
		break;
	case IMAP_EV_NIL:
		tr_str(t, "NIL");
		break;
	case IMAP_EV_LIST_BEGIN:
		tr_str(t, "(");
		break;
	case IMAP_EV_LIST_END:
		tr_str(t, ")");
		break;
	case IMAP_EV_LITERAL_BEGIN:
		snprintf(b, sizeof(b), "L%s{%llu}",
		    ev->flags & IMAP_EVF_BINARY ? "8" : "",
		    (unsigned long long)ev->num);
		tr_str(t, b);
		break;
	case IMAP_EV_LITERAL_END:
		tr_str(t, "LE");
		break;
	case IMAP_EV_CODE_BEGIN:
		tr_str(t, "[");
		tr_str(t, ev->str);
		break;
	case IMAP_EV_CODE_END:
		tr_str(t, "]");
		break;
	case IMAP_EV_TEXT:
		tr_str(t, "X:\"");
		tr_esc(t, ev->str, ev->len);
		tr_str(t, "\"");
		break;
	case IMAP_EV_END:
		tr_str(t, "$");
		break;
	case IMAP_EV_ERROR:
		tr_str(t, "ERR:");
		tr_str(t, ev->str);
		t->errors++;
		break;
	default:
		fail_msg("unknown event %d", ev->type);
	}
	return (t->pause_every ? IMAP_PARSE_PAUSE : 0);
}

static void
tr_reset(struct trace *t)
{
	free(t->s);
	memset(t, 0, sizeof(*t));
	tr_str(t, "");
}

/* A small inline limit so that the literal cases below stream. */
static const struct imap_parse_limits small_inline = {
	.max_inline_literal = 8,
};

/* run - feed in[0..n) in chunks of the given sizes (0 = the rest) */
static ssize_t
run(struct trace *t, const struct imap_parse_limits *lim, const char *in,
    size_t n, const size_t *splits, size_t nsplits)
{
	struct imap_parse *p;
	size_t off = 0, k, chunk;
	ssize_t r = 0;

	tr_reset(t);
	p = imap_parse_new(lim, trace_cb, t);
	assert_non_null(p);
	for (k = 0; off < n || k == 0; k++) {
		chunk = k < nsplits && splits[k] != 0 ? splits[k] : n - off;
		if (chunk > n - off)
			chunk = n - off;
		r = imap_parse_feed(p, in + off, chunk);
		if (r < 0)
			break;
		assert_int_equal((size_t)r, chunk);
		off += chunk;
	}
	imap_parse_free(&p);
	assert_null(p);
	return (r);
}

static const struct {
	const char *in;
	const char *want;
} valid[] = {
	/* 0 */ { "* OK [UIDVALIDITY 5] Ok\r\n",
	    "U[OK] [UIDVALIDITY N:5 ] X:\"Ok\" $" },
	{ "* 23 EXISTS\r\n", "U[23 EXISTS] $" },
	{ "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n",
	    "U[LIST] ( A:\\HasNoChildren A:\\Sent ) S:\"/\" S:\"Sent\" $" },
	{ "* STATUS \"INBOX\" (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 1 "
	    "HIGHESTMODSEQ 9)\r\n",
	    "U[STATUS] S:\"INBOX\" ( A:MESSAGES N:3 A:UIDNEXT N:4 "
	    "A:UIDVALIDITY N:1 A:HIGHESTMODSEQ N:9 ) $" },
	{ "* 5 FETCH (UID 9 FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 "
	    "02:44:25 -0700\" RFC822.SIZE 12 MODSEQ (12) BODY[] {12}\r\n"
	    "Hello\r\nworld)\r\n",
	    "U[5 FETCH] ( A:UID N:9 A:FLAGS ( A:\\Seen ) A:INTERNALDATE "
	    "S:\"17-Jul-1996 02:44:25 -0700\" A:RFC822.SIZE N:12 A:MODSEQ "
	    "( N:12 ) A:BODY[] L{12} D:\"Hello\\r\\nworld\" LE ) $" },
	/* 5 */ { "* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN SASL-IR\r\n",
	    "U[CAPABILITY] A:IMAP4rev1 A:LITERAL+ A:AUTH=PLAIN A:SASL-IR $" },
	{ "* ENABLED CONDSTORE QRESYNC\r\n",
	    "U[ENABLED] A:CONDSTORE A:QRESYNC $" },
	{ "* ENABLED\r\n", "U[ENABLED] $" },
	{ "* SEARCH 2 84 882\r\n", "U[SEARCH] N:2 N:84 N:882 $" },
	{ "* SEARCH\r\n* SEARCH \r\n", "U[SEARCH] $ U[SEARCH] $" },
	/* 10 */ { "* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3\r\n",
	    "U[ESEARCH] ( A:TAG S:\"A282\" ) A:UID A:MIN N:2 A:COUNT N:3 $" },
	{ "* VANISHED (EARLIER) 41,43:116\r\n* VANISHED 405\r\n",
	    "U[VANISHED] ( A:EARLIER ) A:41,43:116 $ U[VANISHED] N:405 $" },
	{ "A001 OK [APPENDUID 38505 3955] APPEND completed\r\n",
	    "T[A001 OK] [APPENDUID N:38505 N:3955 ] X:\"APPEND completed\" $" },
	{ "A002 NO [UNAVAILABLE] Suggested Backoff Time: 299609 "
	    "milliseconds\r\n",
	    "T[A002 NO] [UNAVAILABLE ] X:\"Suggested Backoff Time: 299609 "
	    "milliseconds\" $" },
	{ "+ Ready for literal data\r\n+\r\n+ dGVzdA==\r\n",
	    "+ X:\"Ready for literal data\" $ + X:\"\" $ + X:\"dGVzdA==\" $" },
	/* 15 */ { "A3 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
	    "T[A3 OK] [COPYUID N:38505 A:304,319:320 A:3956:3958 ] "
	    "X:\"Done\" $" },
	{ "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n",
	    "U[OK] [PERMANENTFLAGS ( A:\\Deleted A:\\Seen A:\\* ) ] "
	    "X:\"Limited\" $" },
	{ "* OK [HIGHESTMODSEQ 18446744073709551615] x\r\n"
	    "* OK [HIGHESTMODSEQ 18446744073709551616] y\r\n",
	    "U[OK] [HIGHESTMODSEQ N:18446744073709551615 ] X:\"x\" $ "
	    "U[OK] [HIGHESTMODSEQ A:18446744073709551616 ] X:\"y\" $" },
	{ "* OK [REFERRAL imap://user@x/INBOX] try there\r\n",
	    "U[OK] [REFERRAL X:\"imap://user@x/INBOX\" ] X:\"try there\" $" },
	{ "* BYE Logging out\r\n", "U[BYE] X:\"Logging out\" $" },
	/* 20 */ { "* PREAUTH [CAPABILITY IMAP4rev1 IDLE] ok\r\n",
	    "U[PREAUTH] [CAPABILITY A:IMAP4rev1 A:IDLE ] X:\"ok\" $" },
	{ "* LIST () \"\\\\\" \"a \\\"b\\\" \\\\c\"\r\n",
	    "U[LIST] ( ) S:\"\\\" S:\"a \"b\" \\c\" $" },
	{ "* 1 FETCH (BINARY[] ~{3}\r\nab\0)\r\n",
	    "U[1 FETCH] ( A:BINARY[] SL80:\"ab\\0\" ) $" },
	{ "* 1 FETCH (BODY[HEADER.FIELDS (DATE FROM)] {5}\r\nabcde "
	    "BODY[TEXT]<0> \"x\")\r\n",
	    "U[1 FETCH] ( A:BODY[HEADER.FIELDS (DATE FROM)] SL:\"abcde\" "
	    "A:BODY[TEXT]<0> S:\"x\" ) $" },
	{ "* LIST (\\Noselect) NIL \"\"\r\n* LIST () nil Nil\r\n",
	    "U[LIST] ( A:\\Noselect ) NIL S:\"\" $ U[LIST] ( ) NIL NIL $" },
	/* 25 */ { "* ID (\"name\" \"Dovecot\" \"version\" NIL)\r\n",
	    "U[ID] ( S:\"name\" S:\"Dovecot\" S:\"version\" NIL ) $" },
	{ "* LIST () \"/\" {4}\r\nSent\r\n",
	    "U[LIST] ( ) S:\"/\" SL:\"Sent\" $" },
	{ "* 1 EXISTS\n* 2 RECENT\n", "U[1 EXISTS] $ U[2 RECENT] $" },
	{ "a1 ok done\r\n", "T[a1 OK] X:\"done\" $" },
	{ "* LIST () \"/\" ~peter/mail\r\n",
	    "U[LIST] ( ) S:\"/\" A:~peter/mail $" },
	/* 30 */ { "* LIST (\\HasNoChildren) \"/\" \"[Gmail]/Sent Mail\"\r\n"
	    "* LIST () \".\" [Foo\r\n* LIST () \".\" a]b\r\n",
	    "U[LIST] ( A:\\HasNoChildren ) S:\"/\" S:\"[Gmail]/Sent Mail\" $ "
	    "U[LIST] ( ) S:\".\" A:[Foo $ U[LIST] ( ) S:\".\" A:a]b $" },
	{ "* OK [ALERT]text\r\n* NO [ALERT]\r\n",
	    "U[OK] [ALERT ] X:\"text\" $ U[NO] [ALERT ] X:\"\" $" },
	{ "A4 OK\r\n", "T[A4 OK] X:\"\" $" },
	{ "* 3 FETCH (UID 7 BODY[] {0}\r\n)\r\n",
	    "U[3 FETCH] ( A:UID N:7 A:BODY[] SL:\"\" ) $" },
	{ "* 3 FETCH (BODY[] {9}\r\n(\r\n{5}\r\n\")\r\n",
	    "U[3 FETCH] ( A:BODY[] L{9} D:\"(\\r\\n{5}\\r\\n\"\" LE ) $" },
	/* 35 */ { "* NAMESPACE ((\"\" \"/\")) NIL ((\"#shared/\" \"/\"))\r\n",
	    "U[NAMESPACE] ( ( S:\"\" S:\"/\" ) ) NIL ( ( S:\"#shared/\" "
	    "S:\"/\" ) ) $" },
	{ "* OK [BADCHARSET (UTF-8 \"x y\")] no\r\n",
	    "U[OK] [BADCHARSET ( A:UTF-8 S:\"x y\" ) ] X:\"no\" $" },
	{ "* FLAGS (\\Answered $Forwarded Junk)\r\n",
	    "U[FLAGS] ( A:\\Answered A:$Forwarded A:Junk ) $" },
	{ "* OK [READ-ONLY] EXAMINE\r\n* ok lower\r\n",
	    "U[OK] [READ-ONLY ] X:\"EXAMINE\" $ U[OK] X:\"lower\" $" },
	{ "* 9 EXPUNGE\r\n* 1 FETCH (FLAGS (\\Seen) UID 4 MODSEQ (7))\r\n",
	    "U[9 EXPUNGE] $ U[1 FETCH] ( A:FLAGS ( A:\\Seen ) A:UID N:4 "
	    "A:MODSEQ ( N:7 ) ) $" },
	/* 40 */ { "* OK [UNAVAILABLE  ] t\r\n",
	    "U[OK] [UNAVAILABLE X:\" \" ] X:\"t\" $" },
	{ "* OK caf\xc3\xa9 8-bit text\r\n",
	    "U[OK] X:\"caf\\xc3\\xa9 8-bit text\" $" },
	{ "* OK [MAILBOXID (F2212ea87)] Ok\r\n",
	    "U[OK] [MAILBOXID ( A:F2212ea87 ) ] X:\"Ok\" $" },
	{ "* 2 FETCH (BODY[] {9}\r\n123456789 UID 3)\r\n",
	    "U[2 FETCH] ( A:BODY[] L{9} D:\"123456789\" LE A:UID N:3 ) $" },
};

static void
test_valid(void **state)
{
	struct trace t = { 0 };
	size_t i, n, k, sp[2];

	(void)state;
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		n = strlen(valid[i].in);
		if (i == 22)	/* holds a NUL */
			n = sizeof("* 1 FETCH (BINARY[] ~{3}\r\nab\0)\r\n") - 1;
		/* whole */
		if (run(&t, &small_inline, valid[i].in, n, NULL, 0) < 0 ||
		    strcmp(t.s, valid[i].want) != 0)
			fail_msg("case %zu whole:\n got  %s\n want %s", i, t.s,
			    valid[i].want);
		/* split in two at every offset */
		for (k = 1; k < n; k++) {
			sp[0] = k;
			sp[1] = 0;
			if (run(&t, &small_inline, valid[i].in, n, sp, 2) < 0 ||
			    strcmp(t.s, valid[i].want) != 0)
				fail_msg("case %zu split at %zu:\n got  %s\n "
				    "want %s", i, k, t.s, valid[i].want);
		}
		/* one byte at a time */
		{
			size_t *ones = malloc(n * sizeof(*ones));

			assert_non_null(ones);
			for (k = 0; k < n; k++)
				ones[k] = 1;
			if (run(&t, &small_inline, valid[i].in, n, ones, n) < 0
			    || strcmp(t.s, valid[i].want) != 0)
				fail_msg("case %zu bytewise:\n got  %s\n want %s",
				    i, t.s, valid[i].want);
			if (strstr(valid[i].want, " D:") != NULL &&
			    t.max_chunk != 1)
				fail_msg("case %zu: literal data held back", i);
			free(ones);
		}
	}
	tr_reset(&t);
	free(t.s);
}

static const struct {
	const char *in;
	const char *why;
	struct imap_parse_limits lim;
} invalid[] = {
	/* 0 */ { "* 1 FETCH (UID 1\r\n", "unterminated list", { 0 } },
	{ "* X ((((((((((((((((((((((((((((((((((\r\n", "nested too deeply",
	    { 0 } },
	{ "A1 MAYBE x\r\n", "not OK, NO or BAD", { 0 } },
	{ "* OK [UIDNEXT 5 x\r\n", "unterminated response code", { 0 } },
	{ "* OK [ALERT x\r\n", "unterminated response code", { 0 } },
	/* 5 */ { "*x\r\n", "no space", { 0 } },
	{ "* 1 FETCH (BODY[] {12x}\r\n", "bad literal size", { 0 } },
	{ "* 1 FETCH (BODY[] {}\r\n", "bad literal size", { 0 } },
	{ "* 1 FETCH (BODY[] {99999999999999999999}\r\n", "literal too large",
	    { 0 } },
	{ "* 1 FETCH (BODY[] {101}\r\n", "literal too large",
	    { .max_literal = 100 } },
	/* 10 */ { "* OK x\ry\r\n", "CR not followed by LF", { 0 } },
	{ "* 1 FETCH (BODY[] {3}\rabc)\r\n", "CR not followed by LF",
	    { 0 } },
	{ "* 1 FETCH (BODY[] {3} abc)\r\n", "not followed by CRLF", { 0 } },
	{ "* LIST () \"a\r\n", "unterminated quoted string", { 0 } },
	{ "* X )\r\n", "unbalanced", { 0 } },
	/* 15 */ { "* CAPABILITY IMAP4rev1 ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n",
	    "token too long", { .max_token = 70 } },
	{ "* SEARCH 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\r\n",
	    "response too long", { .max_response = 30 } },
	{ "* SEARCH 1 2 3 4 5 6\r\n", "too many tokens", { .max_tokens = 5 } },
	{ "* OK a\0b\r\n", "NUL in response text", { 0 } },
	{ "* X a\x01" "b\r\n", "control character in atom", { 0 } },
	/* 20 */ { "\r\n", "empty response line", { 0 } },
	{ "a+1 OK x\r\n", "bad character in tag", { 0 } },
	{ "* 5\r\n", "no response name", { 0 } },
	{ "* \r\n", "without a name", { 0 } },
	{ "A1\r\n", "without a status", { 0 } },
	/* 25 */ { "* OK [] x\r\n", "empty response code", { 0 } },
	{ "* 1 FETCH (BODY[HEADER.FIELDS (A)\r\n", "unterminated section",
	    { 0 } },
	{ "* X \"a\\\r\n", "bad escape", { 0 } },
	{ "* X \"a\0\"\r\n", "NUL in quoted", { 0 } },
	{ "* OK [PERMANENTFLAGS (\\Seen] x\r\n", "unterminated list in "
	    "response code", { 0 } },
	/* 30 */ { "* X \x01\r\n", "control character between tokens",
	    { 0 } },
	{ "* OK [A\x01] x\r\n", "bad response code name", { 0 } },
	{ "* OK [REFERRAL a\0] x\r\n", "NUL in response code", { 0 } },
	{ "\xff\xfe\r\n", "bad character in tag", { 0 } },
	{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "A OK\r\n", "tag too long", { 0 } },
};

/* The NUL cases need their real length. */
static size_t
invalid_len(size_t i)
{
	switch (i) {
	case 18:
		return (sizeof("* OK a\0b\r\n") - 1);
	case 28:
		return (sizeof("* X \"a\0\"\r\n") - 1);
	case 32:
		return (sizeof("* OK [REFERRAL a\0] x\r\n") - 1);
	default:
		return (strlen(invalid[i].in));
	}
}

static void
test_invalid(void **state)
{
	struct trace t = { 0 };
	struct imap_parse *p;
	size_t i, n, k;
	ssize_t r;

	(void)state;
	for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		n = invalid_len(i);
		tr_reset(&t);
		p = imap_parse_new(&invalid[i].lim, trace_cb, &t);
		assert_non_null(p);
		r = imap_parse_feed(p, invalid[i].in, n);
		if (r != -1 || t.errors != 1 ||
		    strstr(t.s, invalid[i].why) == NULL)
			fail_msg("case %zu: r=%zd trace: %s (want \"%s\")", i,
			    r, t.s, invalid[i].why);
		/* dead for good, without a second error event */
		if (imap_parse_feed(p, "* OK x\r\n", 8) != -1 || t.errors != 1)
			fail_msg("case %zu: parser revived", i);
		imap_parse_free(&p);
		/* byte by byte: the same error, at the same place */
		tr_reset(&t);
		p = imap_parse_new(&invalid[i].lim, trace_cb, &t);
		for (k = 0; k < n; k++)
			if (imap_parse_feed(p, invalid[i].in + k, 1) == -1)
				break;
		if (k == n || t.errors != 1 ||
		    strstr(t.s, invalid[i].why) == NULL)
			fail_msg("case %zu bytewise: %s", i, t.s);
		imap_parse_free(&p);
	}
	tr_reset(&t);
	free(t.s);
	imap_parse_free(&p);	/* NULL is fine */
}

/* Pausing after every event loses nothing and repeats nothing. */
static void
test_pause(void **state)
{
	struct trace t = { 0 };
	struct imap_parse *p;
	size_t i, n, off, steps;
	ssize_t r;

	(void)state;
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		n = strlen(valid[i].in);
		if (i == 22)
			continue;
		tr_reset(&t);
		t.pause_every = 1;
		p = imap_parse_new(&small_inline, trace_cb, &t);
		off = 0;
		steps = 0;
		while (off < n) {
			r = imap_parse_feed(p, valid[i].in + off, n - off);
			assert_true(r >= 0);
			off += (size_t)r;
			assert_true(++steps < 10000);
		}
		/* whatever is due without input (a literal's end) */
		while (imap_parse_feed(p, "", 0) == 0 && steps++ < 10)
			;
		if (strcmp(t.s, valid[i].want) != 0)
			fail_msg("case %zu paused:\n got  %s\n want %s", i, t.s,
			    valid[i].want);
		assert_true(imap_parse_at_start(p));
		imap_parse_free(&p);
	}
	tr_reset(&t);
	free(t.s);
}

struct stream_count {
	uint64_t	 data;
	size_t		 chunks;
	size_t		 max_chunk;
	int		 begin, end, text_end;
	uint64_t	 size;
};

static int
stream_cb(const struct imap_event *ev, void *arg)
{
	struct stream_count *c = arg;

	switch (ev->type) {
	case IMAP_EV_LITERAL_BEGIN:
		c->begin++;
		c->size = ev->num;
		break;
	case IMAP_EV_LITERAL_DATA:
		c->data += ev->len;
		c->chunks++;
		if (ev->len > c->max_chunk)
			c->max_chunk = ev->len;
		break;
	case IMAP_EV_LITERAL_END:
		c->end++;
		break;
	case IMAP_EV_END:
		c->text_end++;
		break;
	case IMAP_EV_ERROR:
		fail_msg("error: %s", ev->str);
		break;
	default:
		break;
	}
	return (0);
}

/*
 * A 64 MiB literal goes through in 64 KiB feeds: every chunk is passed
 * on as it arrives (none larger than a feed), and in_literal() reports
 * the bytes still due.
 */
static void
test_literal_stream(void **state)
{
	static char chunk[65536];
	struct stream_count c = { 0 };
	struct imap_parse *p;
	const char *head = "* 1 FETCH (UID 5 BODY[] {67108864}\r\n";
	const char *tail = ")\r\n";
	uint64_t total = 67108864, sent = 0, left;

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	p = imap_parse_new(NULL, stream_cb, &c);
	assert_int_equal(imap_parse_feed(p, head, strlen(head)),
	    (ssize_t)strlen(head));
	assert_int_equal(c.begin, 1);
	assert_int_equal(c.size, total);
	while (sent < total) {
		assert_true(imap_parse_in_literal(p, &left));
		assert_int_equal(left, total - sent);
		assert_int_equal(imap_parse_feed(p, chunk, sizeof(chunk)),
		    (ssize_t)sizeof(chunk));
		sent += sizeof(chunk);
	}
	/* the end is reported as soon as the last byte is in */
	assert_int_equal(c.end, 1);
	assert_false(imap_parse_in_literal(p, NULL));
	assert_int_equal(imap_parse_feed(p, tail, 3), 3);
	assert_int_equal(c.data, total);
	assert_int_equal(c.max_chunk, sizeof(chunk));
	assert_int_equal(c.chunks, total / sizeof(chunk));
	assert_int_equal(c.text_end, 1);
	imap_parse_free(&p);
}

/* Default inline limit: 4096 bytes inline, 4097 streamed. */
static void
test_inline_threshold(void **state)
{
	struct trace t = { 0 };
	char *buf;
	size_t n;

	(void)state;
	buf = malloc(8192 + 100);
	assert_non_null(buf);
	n = (size_t)sprintf(buf, "* LIST () \"/\" {4096}\r\n");
	memset(buf + n, 'a', 4096);
	n += 4096;
	memcpy(buf + n, "\r\n", 2);
	n += 2;
	run(&t, NULL, buf, n, NULL, 0);
	assert_non_null(strstr(t.s, " SL:\"aaaa"));
	n = (size_t)sprintf(buf, "* LIST () \"/\" {4097}\r\n");
	memset(buf + n, 'a', 4097);
	n += 4097;
	memcpy(buf + n, "\r\n", 2);
	n += 2;
	run(&t, NULL, buf, n, NULL, 0);
	assert_non_null(strstr(t.s, " L{4097} D:\"aaaa"));
	free(buf);
	tr_reset(&t);
	free(t.s);
}

/* A long SEARCH response is counted, not held: 200k numbers go through
 * with the default limits. */
static void
test_long_search(void **state)
{
	struct stream_count c = { 0 };
	struct imap_parse *p;
	char num[32];
	int i;

	(void)state;
	p = imap_parse_new(NULL, stream_cb, &c);
	assert_int_equal(imap_parse_feed(p, "* SEARCH", 8), 8);
	for (i = 1; i <= 200000; i++) {
		int n = snprintf(num, sizeof(num), " %d", i);

		assert_int_equal(imap_parse_feed(p, num, (size_t)n), n);
	}
	assert_int_equal(imap_parse_feed(p, "\r\n", 2), 2);
	assert_int_equal(c.text_end, 1);
	imap_parse_free(&p);
}

static void
test_seqset(void **state)
{
	static const struct {
		const char *in;
		int ok;
		const char *want;	/* "lo-hi lo-hi" */
	} t[] = {
		{ "1", 1, "1-1" }, { "3955:3957", 1, "3955-3957" },
		{ "304,319:320", 1, "304-304 319-320" },
		{ "9:8,1", 1, "8-9 1-1" }, { "", 1, "" },
		{ "18446744073709551615", 1,
		    "18446744073709551615-18446744073709551615" },
		{ "18446744073709551616", 0, "" }, { "0", 0, "" },
		{ "1,", 0, "" }, { ",1", 0, "" }, { "1:", 0, "" },
		{ "1:2:3", 0, "" }, { "*", 0, "" }, { "1:*", 0, "" },
		{ "1 2", 0, "" }, { "a", 0, "" },
	};
	char got[256];
	const char *s;
	uint64_t lo, hi;
	size_t i, n;
	int r;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		s = t[i].in;
		got[0] = '\0';
		n = 0;
		while ((r = imap_parse_seqset_next(&s, &lo, &hi)) == 1)
			n += (size_t)snprintf(got + n, sizeof(got) - n,
			    "%s%llu-%llu", n ? " " : "",
			    (unsigned long long)lo, (unsigned long long)hi);
		if ((r == 0) != t[i].ok)
			fail_msg("case %zu \"%s\": r=%d", i, t[i].in, r);
		if (t[i].ok && strcmp(got, t[i].want) != 0)
			fail_msg("case %zu: got \"%s\"", i, got);
	}
}

static void
test_date_time(void **state)
{
	static const struct {
		const char *in;
		int ok;
		int64_t t;
		int tz;
		const char *canon;
	} t[] = {
		{ "17-Jul-1996 02:44:25 -0700", 1, 837596665, -420,
		    "17-Jul-1996 02:44:25 -0700" },
		{ " 7-Jul-1996 02:44:25 +0000", 1, 836707465, 0,
		    "07-Jul-1996 02:44:25 +0000" },
		{ "7-jul-1996 02:44:25 +0000", 1, 836707465, 0,
		    "07-Jul-1996 02:44:25 +0000" },
		{ "01-Jan-1970 00:00:00 +0000", 1, 0, 0,
		    "01-Jan-1970 00:00:00 +0000" },
		{ "29-Feb-2024 23:59:59 +0530", 1, 1709231399, 330,
		    "29-Feb-2024 23:59:59 +0530" },
		{ "31-Dec-1969 23:00:00 -0100", 1, 0, -60,
		    "31-Dec-1969 23:00:00 -0100" },
		{ "29-Feb-2023 00:00:00 +0000", 0, 0, 0, NULL },
		{ "32-Jan-2020 00:00:00 +0000", 0, 0, 0, NULL },
		{ "00-Jan-2020 00:00:00 +0000", 0, 0, 0, NULL },
		{ "01-Foo-2020 00:00:00 +0000", 0, 0, 0, NULL },
		{ "01-Jan-2020 24:00:00 +0000", 0, 0, 0, NULL },
		{ "01-Jan-2020 00:60:00 +0000", 0, 0, 0, NULL },
		{ "01-Jan-2020 00:00:00 +0060", 0, 0, 0, NULL },
		{ "01-Jan-2020 00:00:00 0000", 0, 0, 0, NULL },
		{ "01-Jan-2020 00:00:00 +0000 ", 0, 0, 0, NULL },
		{ "01-Jan-20 00:00:00 +0000", 0, 0, 0, NULL },
		{ "01-Jan-2020 0:00:00 +0000", 0, 0, 0, NULL },
		{ "", 0, 0, 0, NULL },
		{ "01-Jan-2020 00:00:00 +000\r", 0, 0, 0, NULL },
	};
	char buf[IMAP_DATE_TIME_MAX];
	int64_t v;
	size_t i;
	int tz;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int r = imap_parse_date_time(t[i].in, &v, &tz);

		if ((r == 0) != t[i].ok)
			fail_msg("case %zu \"%s\": r=%d", i, t[i].in, r);
		if (!t[i].ok)
			continue;
		if (v != t[i].t || tz != t[i].tz)
			fail_msg("case %zu: %lld %d", i, (long long)v, tz);
		assert_int_equal(imap_parse_format_date_time(v, tz, buf,
		    sizeof(buf)), 0);
		if (strcmp(buf, t[i].canon) != 0)
			fail_msg("case %zu: formatted \"%s\"", i, buf);
	}
	assert_int_equal(imap_parse_format_date_time(0, 0, buf, 26), -1);
	assert_int_equal(imap_parse_format_date_time(0, 24 * 60, buf,
	    sizeof(buf)), -1);
}

/*
 * Mutations of the valid cases (bytes replaced, dropped, duplicated)
 * under tight limits: the parser may accept or refuse, but must stay in
 * bounds (ASan/valgrind) and never report more than one error.
 */
static void
test_mutations(void **state)
{
	struct imap_parse_limits lim = {
		.max_token = 64, .max_inline_literal = 4, .max_depth = 4,
		.max_response = 256, .max_tokens = 32, .max_literal = 64,
	};
	struct trace t = { 0 };
	struct imap_parse *p;
	unsigned char buf[512];
	uint32_t seed = 7;
	size_t i, n, pos, k;
	int round;
	static const char interesting[] = "\r\n ()[]{}~\"\\*+0123456789\x00\xff";

	(void)state;
	for (round = 0; round < 20000; round++) {
		i = (size_t)round % (sizeof(valid) / sizeof(valid[0]));
		n = strlen(valid[i].in);
		memcpy(buf, valid[i].in, n);
		for (k = 0; k < 3; k++) {
			seed = seed * 1103515245u + 12345u;
			pos = (seed >> 8) % n;
			switch ((seed >> 4) % 3) {
			case 0:
				buf[pos] = (unsigned char)interesting[(seed >> 16)
				    % (sizeof(interesting) - 1)];
				break;
			case 1:
				memmove(buf + pos, buf + pos + 1, n - pos - 1);
				n--;
				break;
			default:
				if (n + 1 < sizeof(buf)) {
					memmove(buf + pos + 1, buf + pos, n - pos);
					n++;
				}
				break;
			}
			if (n < 2)
				break;
		}
		tr_reset(&t);
		p = imap_parse_new(&lim, trace_cb, &t);
		/* fed in random splits */
		pos = 0;
		while (pos < n) {
			size_t c;

			seed = seed * 1103515245u + 12345u;
			c = 1 + (seed >> 10) % 17;
			if (c > n - pos)
				c = n - pos;
			if (imap_parse_feed(p, buf + pos, c) == -1)
				break;
			pos += c;
		}
		assert_true(t.errors <= 1);
		imap_parse_free(&p);
	}
	tr_reset(&t);
	free(t.s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_pause),
		cmocka_unit_test(test_literal_stream),
		cmocka_unit_test(test_inline_threshold),
		cmocka_unit_test(test_long_search),
		cmocka_unit_test(test_seqset),
		cmocka_unit_test(test_date_time),
		cmocka_unit_test(test_mutations),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
