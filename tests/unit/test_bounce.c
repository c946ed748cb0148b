/*
 * test_bounce.c - DSN generation (relay/bounce.c): the generated message
 * is parsed back (headers, MIME boundaries, the three parts, the
 * delivery-status fields, the header-only copy of the original) and the
 * "never bounce to <>, never bounce a bounce" rule is checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bounce.h"
#include "relay.h"
#include "spool.h"
#include "queue.h"

/* ---- helpers ------------------------------------------------------------ */

struct mem {
	char	*p;
	size_t	 len;
	int	 fail_after;	/* > 0: fail the n-th write */
	int	 writes;
};

static int
mem_write(void *arg, const void *data, size_t len)
{
	struct mem *m = arg;
	char *np;

	if (m->fail_after > 0 && ++m->writes >= m->fail_after)
		return (-1);
	if ((np = realloc(m->p, m->len + len + 1)) == NULL)
		return (-1);
	m->p = np;
	memcpy(m->p + m->len, data, len);
	m->len += len;
	m->p[m->len] = '\0';
	return (0);
}

static char tmpdir[64];

/* original - a temporary file holding prefix + msg; returns an open fd */
static int
original(const char *prefix, const char *msg)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/orig", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, prefix, strlen(prefix)),
	    (ssize_t)strlen(prefix));
	assert_int_equal(write(fd, msg, strlen(msg)), (ssize_t)strlen(msg));
	unlink(path);
	return (fd);
}

/* A parsed DSN: top headers, the boundary and the parts. */
struct dsn {
	char	*headers;	/* top header section, unfolded */
	char	 boundary[200];
	size_t	 nparts;
	char	*part_hdr[8];
	char	*part_body[8];
	int	 closed;	/* saw --boundary-- */
};

static void
dsn_free(struct dsn *d)
{
	size_t i;

	free(d->headers);
	for (i = 0; i < d->nparts; i++) {
		free(d->part_hdr[i]);
		free(d->part_body[i]);
	}
	memset(d, 0, sizeof(*d));
}

/* header - the value of header name in a CRLF header block, or NULL
 * (static buffer) */
static const char *
header(const char *block, const char *name)
{
	static char val[2048];
	size_t nl = strlen(name);
	const char *p = block;

	while (p != NULL && *p) {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *e = strstr(p, "\r\n");
			const char *v = p + nl + 1;

			while (*v == ' ')
				v++;
			snprintf(val, sizeof(val), "%.*s",
			    (int)((e ? e : v + strlen(v)) - v), v);
			return (val);
		}
		p = strstr(p, "\r\n");
		if (p != NULL)
			p += 2;
	}
	return (NULL);
}

/* parse - split a DSN; fails the test on any structural error */
static void
parse(const char *msg, struct dsn *d)
{
	const char *sep, *b, *p;
	char *h, *w;
	char delim[210];
	size_t i;

	memset(d, 0, sizeof(*d));
	/* Every line ends in CRLF: no bare LF, no bare CR. */
	for (i = 0; msg[i]; i++) {
		if (msg[i] == '\n')
			assert_true(i > 0 && msg[i - 1] == '\r');
		if (msg[i] == '\r')
			assert_int_equal(msg[i + 1], '\n');
	}
	sep = strstr(msg, "\r\n\r\n");
	assert_non_null(sep);
	h = strndup(msg, (size_t)(sep - msg) + 2);
	/* unfold */
	for (w = h; (w = strstr(w, "\r\n\t")) != NULL;)
		memmove(w, w + 2, strlen(w + 2) + 1);
	d->headers = h;
	p = header(h, "Content-Type");
	assert_non_null(p);
	assert_non_null(strstr(p, "multipart/report"));
	assert_non_null(strstr(p, "report-type=delivery-status"));
	b = strstr(p, "boundary=\"");
	assert_non_null(b);
	b += 10;
	assert_non_null(strchr(b, '"'));
	snprintf(d->boundary, sizeof(d->boundary), "%.*s",
	    (int)(strchr(b, '"') - b), b);
	assert_true(strlen(d->boundary) > 10);

	snprintf(delim, sizeof(delim), "\r\n--%s", d->boundary);
	p = strstr(sep + 2, delim);	/* preamble ends at the first */
	assert_non_null(p);
	for (;;) {
		const char *start, *next, *body;

		p += strlen(delim);
		if (strncmp(p, "--\r\n", 4) == 0) {
			d->closed = 1;
			assert_string_equal(p + 4, "");	/* nothing after */
			break;
		}
		assert_true(strncmp(p, "\r\n", 2) == 0);
		start = p + 2;
		next = strstr(start, delim);
		assert_non_null(next);
		assert_true(d->nparts < 8);
		body = strstr(start, "\r\n\r\n");
		assert_non_null(body);
		assert_true(body < next);
		d->part_hdr[d->nparts] = strndup(start,
		    (size_t)(body - start) + 2);
		body += 4;
		d->part_body[d->nparts] = strndup(body, (size_t)(next - body));
		d->nparts++;
		p = next;
	}
}

static int
starts_line(const char *text, const char *prefix)
{
	const char *p = text;
	size_t n = strlen(prefix);

	while (p != NULL) {
		if (strncmp(p, prefix, n) == 0)
			return (1);
		p = strstr(p, "\r\n");
		if (p != NULL)
			p += 2;
	}
	return (0);
}

static int
count_lines(const char *text, const char *prefix)
{
	const char *p = text;
	size_t n = strlen(prefix);
	int count = 0;

	while (p != NULL && *p) {
		if (strncmp(p, prefix, n) == 0)
			count++;
		p = strstr(p, "\r\n");
		if (p != NULL)
			p += 2;
	}
	return (count);
}

static void
format(const struct bounce *b, struct mem *m)
{
	char err[128];

	memset(m, 0, sizeof(*m));
	assert_int_equal(bounce_format(b, mem_write, m, err, sizeof(err)), 0);
	assert_non_null(m->p);
}

/* ---- fixtures ------------------------------------------------------------ */

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_bounce.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return (-1);
	return (0);
}

static int
teardown(void **state)
{
	(void)state;
	return (rmdir(tmpdir));
}

#define ORIG_HEADERS \
	"Received: from client (client [192.0.2.1])\r\n" \
	"\tby old-mx.example.com with ESMTP id 0123456789abcdef\r\n" \
	"From: Alice <alice@sender.example>\r\n" \
	"To: bob@example.com\r\n" \
	"Subject: hello\r\n" \
	"Message-ID: <m1@sender.example>\r\n"
#define ORIG_BODY \
	"\r\nThis body must not appear in the DSN.\r\n" \
	"--not-a-boundary\r\n.\r\n"

/* ---- tests ---------------------------------------------------------------- */

/* One refused recipient: the whole structure, field by field. */
static void
test_structure(void **state)
{
	struct bounce_rcpt r = { "bob@example.com", "5.1.1", "mx.new.example",
	    "550 5.1.1 <bob@example.com>: Recipient address rejected", NULL };
	struct bounce b = { "old-mx.example.com", "0123456789abcdef",
	    "alice@sender.example", 1700000000, 1700000100, &r, 1, -1, 7, 0 };
	const char *junk = "JUNKJUN";	/* the spool's envelope, skipped */
	struct mem m;
	struct dsn d;
	const char *v;

	(void)state;
	b.fd = original(junk, ORIG_HEADERS ORIG_BODY);
	b.size = strlen(ORIG_HEADERS ORIG_BODY);
	format(&b, &m);
	parse(m.p, &d);

	/* top headers */
	assert_string_equal(header(d.headers, "From"),
	    "Mail Delivery System <MAILER-DAEMON@old-mx.example.com>");
	assert_string_equal(header(d.headers, "To"), "<alice@sender.example>");
	assert_string_equal(header(d.headers, "Auto-Submitted"),
	    "auto-replied");
	assert_string_equal(header(d.headers, "MIME-Version"), "1.0");
	assert_string_equal(header(d.headers, "Date"),
	    "Tue, 14 Nov 2023 22:15:00 +0000");
	v = header(d.headers, "Message-ID");
	assert_non_null(v);
	assert_true(v[0] == '<' && v[strlen(v) - 1] == '>');
	assert_non_null(strstr(v, "@old-mx.example.com>"));
	assert_non_null(header(d.headers, "Subject"));

	/* three parts, properly closed */
	assert_true(d.closed);
	assert_int_equal(d.nparts, 3);
	assert_non_null(strstr(header(d.part_hdr[0], "Content-Type"),
	    "text/plain"));
	assert_string_equal(header(d.part_hdr[1], "Content-Type"),
	    "message/delivery-status");
	assert_string_equal(header(d.part_hdr[2], "Content-Type"),
	    "text/rfc822-headers");

	/* human part names the recipient and the reply */
	assert_non_null(strstr(d.part_body[0], "<bob@example.com>"));
	assert_non_null(strstr(d.part_body[0], "Recipient address rejected"));

	/* delivery-status: per-message block, then one per recipient */
	assert_string_equal(header(d.part_body[1], "Reporting-MTA"),
	    "dns; old-mx.example.com");
	assert_string_equal(header(d.part_body[1], "Arrival-Date"),
	    "Tue, 14 Nov 2023 22:13:20 +0000");
	assert_string_equal(header(d.part_body[1], "Final-Recipient"),
	    "rfc822; bob@example.com");
	assert_string_equal(header(d.part_body[1], "Action"), "failed");
	assert_string_equal(header(d.part_body[1], "Status"), "5.1.1");
	assert_string_equal(header(d.part_body[1], "Remote-MTA"),
	    "dns; mx.new.example");
	assert_string_equal(header(d.part_body[1], "Diagnostic-Code"),
	    "smtp; 550 5.1.1 <bob@example.com>: Recipient address rejected");
	/* the per-recipient block is separated by an empty line */
	assert_non_null(strstr(d.part_body[1], "\r\n\r\nFinal-Recipient:"));

	/* the original's headers, exactly, and nothing of its body */
	assert_string_equal(d.part_body[2], ORIG_HEADERS);
	assert_null(strstr(m.p, "must not appear"));
	assert_null(strstr(m.p, "JUNK"));
	/* the original's fake boundary did not end anything */
	assert_int_equal(count_lines(m.p, "--"), 4);

	dsn_free(&d);
	free(m.p);
	close(b.fd);
}

/* Several recipients, expiry (no remote MTA, no diagnostic). */
static void
test_expired_many(void **state)
{
	struct bounce_rcpt r[3] = {
		{ "a@example.com", "4.4.7", NULL, NULL,
		    "delivery time expired" },
		{ "b@example.com", "4.4.7", NULL, "451 4.3.0 try later",
		    "delivery time expired" },
		{ "c@example.com", "5.2.2", "mx.new.example",
		    "552 5.2.2 mailbox full", NULL },
	};
	struct bounce b = { "relay.test", "00000000000000aa", "s@x.test",
	    1, 2, r, 3, -1, 0, 0 };
	struct mem m;
	struct dsn d;
	size_t i;

	(void)state;
	format(&b, &m);
	parse(m.p, &d);
	assert_int_equal(d.nparts, 3);
	assert_int_equal(count_lines(d.part_body[1], "Final-Recipient: "), 3);
	assert_int_equal(count_lines(d.part_body[1], "Action: failed"), 3);
	assert_int_equal(count_lines(d.part_body[1], "Status: 4.4.7"), 2);
	assert_int_equal(count_lines(d.part_body[1], "Status: 5.2.2"), 1);
	assert_int_equal(count_lines(d.part_body[1], "Remote-MTA: "), 1);
	assert_int_equal(count_lines(d.part_body[1], "Diagnostic-Code: "), 2);
	for (i = 0; i < 3; i++) {
		char want[64];

		snprintf(want, sizeof(want), "<%s>: ", r[i].rcpt);
		assert_true(starts_line(d.part_body[0], want));
	}
	assert_non_null(strstr(d.part_body[0], "delivery time expired"));
	/* no original available: the headers part is empty */
	assert_string_equal(d.part_body[2], "");
	dsn_free(&d);
	free(m.p);
}

/* Header sections in odd shapes: the copy stops at the right place. */
static void
test_original_shapes(void **state)
{
	static const struct {
		const char	*msg;
		const char	*want;
	} cases[] = {
		/* no body at all: everything is header */
		{ "Subject: x\r\nFrom: y\r\n", "Subject: x\r\nFrom: y\r\n" },
		/* no final line end */
		{ "Subject: x", "Subject: x\r\n" },
		/* a bare-LF empty line (not ours, but cut there all the same) */
		{ "Subject: x\r\n\nbody\r\n", "Subject: x\r\n" },
		/* empty header section */
		{ "\r\nbody only\r\n", "" },
		/* a CR inside a header line is kept */
		{ "Subject: a\rb\r\n\r\nbody\r\n", "Subject: a\rb\r\n" },
	};
	struct bounce_rcpt r = { "b@example.com", "5.0.0", NULL, "550 no",
	    NULL };
	struct bounce b = { "h.test", "00000000000000bb", "s@x.test", 1, 2,
	    &r, 1, -1, 0, 0 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mem m;
		char *p, *end;
		char delim[220];

		b.fd = original("", cases[i].msg);
		b.offset = 0;
		b.size = strlen(cases[i].msg);
		format(&b, &m);
		p = strstr(m.p, "text/rfc822-headers\r\n\r\n");
		assert_non_null(p);
		p += strlen("text/rfc822-headers\r\n\r\n");
		end = strstr(p, "\r\n--");
		assert_non_null(end);
		/* the CRLF before "--boundary" belongs to the delimiter */
		snprintf(delim, sizeof(delim), "%.*s", (int)(end - p), p);
		if (strcmp(delim, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\"", i, delim);
		free(m.p);
		close(b.fd);
	}
}

/* A huge header section is cut at a line end, and the DSN stays sane. */
static void
test_header_limit(void **state)
{
	struct bounce_rcpt r = { "b@example.com", "5.0.0", NULL, "550 no",
	    NULL };
	struct bounce b = { "h.test", "00000000000000cc", "s@x.test", 1, 2,
	    &r, 1, -1, 0, 0 };
	size_t n = 2 * BOUNCE_HEADERS_MAX / 40, i;
	char *msg = malloc(n * 40 + 64), *p = msg;
	struct mem m;
	struct dsn d;

	(void)state;
	for (i = 0; i < n; i++)
		p += sprintf(p, "X-Filler-%06zu: %-20s\r\n", i, "abc");
	strcpy(p, "\r\nbody\r\n");
	b.fd = original("", msg);
	b.size = strlen(msg);
	format(&b, &m);
	parse(m.p, &d);
	assert_int_equal(d.nparts, 3);
	assert_true(strlen(d.part_body[2]) <= BOUNCE_HEADERS_MAX + 2);
	assert_true(strlen(d.part_body[2]) > BOUNCE_HEADERS_MAX - 100);
	assert_true(starts_line(d.part_body[2], "X-Filler-000000: "));
	dsn_free(&d);
	free(m.p);
	free(msg);
	close(b.fd);
}

/* Values from the network cannot add header lines or MIME parts. */
static void
test_injection(void **state)
{
	struct bounce_rcpt r = { "b@example.com\r\nBcc: victim@x.test",
	    "5.1.1\r\nX-Evil: 1", "mx\r\n--", "550 no\r\n\r\nFake-Field: 1",
	    NULL };
	struct bounce b = { "h.test", "00000000000000dd",
	    "s@x.test\r\nBcc: victim2@x.test", 1, 2, &r, 1, -1, 0, 0 };
	struct mem m;
	struct dsn d;

	(void)state;
	format(&b, &m);
	parse(m.p, &d);
	assert_int_equal(d.nparts, 3);
	assert_false(starts_line(m.p, "Bcc:"));
	assert_false(starts_line(m.p, "X-Evil:"));
	assert_false(starts_line(m.p, "Fake-Field:"));
	assert_int_equal(count_lines(m.p, "--"), 4);
	dsn_free(&d);
	free(m.p);
}

/* An SMTPUTF8 recipient makes the report a global one (RFC 6533). */
static void
test_utf8(void **state)
{
	struct bounce_rcpt r = { "j\xc3\xb6rg@example.com", "5.1.1", NULL,
	    "550 5.1.1 unknown", NULL };
	struct bounce b = { "h.test", "00000000000000ee", "s@x.test", 1, 2,
	    &r, 1, -1, 0, 0 };
	struct mem m;
	struct dsn d;

	(void)state;
	format(&b, &m);
	parse(m.p, &d);
	assert_string_equal(header(d.part_hdr[1], "Content-Type"),
	    "message/global-delivery-status");
	assert_string_equal(header(d.part_body[1], "Final-Recipient"),
	    "utf-8; j\xc3\xb6rg@example.com");
	assert_non_null(strstr(header(d.part_hdr[0], "Content-Type"),
	    "utf-8"));
	dsn_free(&d);
	free(m.p);
}

/* Errors: no recipient, a failing writer. */
static void
test_errors(void **state)
{
	struct bounce_rcpt r = { "b@example.com", "5.0.0", NULL, "550 no",
	    NULL };
	struct bounce b = { "h.test", "00000000000000ff", "s@x.test", 1, 2,
	    &r, 0, -1, 0, 0 };
	struct mem m = { NULL, 0, 0, 0 };
	char err[128] = "";
	int i;

	(void)state;
	assert_int_equal(bounce_format(&b, mem_write, &m, err, sizeof(err)),
	    -1);
	assert_string_not_equal(err, "");
	b.nrcpt = 1;
	for (i = 1; i < 6; i++) {
		memset(&m, 0, sizeof(m));
		m.fail_after = i;
		assert_int_equal(bounce_format(&b, mem_write, &m, err,
		    sizeof(err)), -1);
		free(m.p);
	}
}

/* Never to <>, never about a DSN; everything else may bounce. */
static void
test_never_to_null_sender(void **state)
{
	static const struct {
		const char	*sender;
		uint32_t	 flags;
		int		 allowed;
	} cases[] = {
		{ "", 0, 0 },
		{ NULL, 0, 0 },
		{ "", QR_DSN, 0 },
		{ "a@x.test", QR_DSN, 0 },
		{ "a@x.test", QR_DSN | QR_HELD, 0 },
		{ "a@x.test", 0, 1 },
		{ "a@x.test", QR_HELD, 1 },
	};
	struct bounce_rcpt r = { "b@example.com", "5.0.0", NULL, "550 no",
	    NULL };
	struct bounce b = { "h.test", "0000000000000011", NULL, 1, 2, &r, 1,
	    -1, 0, 0 };
	char err[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (bounce_allowed(cases[i].sender, cases[i].flags) !=
		    cases[i].allowed)
			fail_msg("case %zu: bounce_allowed wrong", i);
		if (cases[i].allowed)
			continue;
		/* bounce_spool() refuses before touching the spool: a NULL
		 * spool would crash if it did. */
		b.sender = cases[i].sender;
		if (bounce_spool(NULL, &b, cases[i].flags, NULL, NULL, err,
		    sizeof(err)) != 1)
			fail_msg("case %zu: bounce_spool did not refuse", i);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_expired_many),
		cmocka_unit_test(test_original_shapes),
		cmocka_unit_test(test_header_limit),
		cmocka_unit_test(test_injection),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_never_to_null_sender),
	};

	return (cmocka_run_group_tests(tests, setup, teardown));
}
