/*
 * fuzz_imap_parse.c - a fuzz target for syncd/imap_parse.c, the parser
 * every byte from an (untrusted) IMAP server goes through.
 *
 * The input is one server stream.  It is parsed three times with the
 * same limits, and that twice: with the default limits and with small
 * ones (so that the limit checks and the literal streaming are reached
 * with short inputs):
 *   whole     one imap_parse_feed() call;
 *   chunked   pieces of 1..17 bytes (lengths drawn from the input's hash);
 *   paused    chunked, and the callback pauses after every event, the
 *             caller feeding the unconsumed rest again (and, at the end,
 *             nothing, until no event comes: see imap_parse.h).
 * Each run writes a trace of its events (literal data joined, since its
 * chunks follow the feed).  It abort()s when an invariant breaks:
 *   - the three traces differ (event types, values, flags, depth, error
 *     reason);
 *   - a feed call consumes more than it was given, or makes no progress
 *     and emits nothing (a livelock), or a feed after an error succeeds;
 *   - an event's str is not NUL-terminated at len (all but LITERAL_DATA),
 *     a STRING without IMAP_EVF_NUL holds a NUL, LITERAL_DATA points
 *     outside the buffer being fed, a literal's data does not add up to
 *     its announced size, a NUMBER's digits are not its value, depth
 *     exceeds the limit;
 *   - the helpers: a sequence set range with lo > hi; a date-time that
 *     parses but does not format, or formats to text that parses to a
 *     different time.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"
#include "fuzz.h"

struct trace {
	char		*s;
	size_t		 len, cap;
	int		 in_data;	/* last event was LITERAL_DATA */
	uint64_t	 lit_size, lit_got;
	const uint8_t	*feed;		/* the buffer being fed */
	size_t		 feedlen;
	size_t		 events;	/* emitted, for the livelock check */
	unsigned	 max_depth;
	int		 pause;
	int		 failed;	/* out of memory: skip comparison */
};

static void
tr_add(struct trace *t, const void *s, size_t n)
{
	if (t->failed)
		return;
	if (t->len + n + 1 > t->cap) {
		size_t cap = (t->len + n + 1) * 2;
		char *ns = realloc(t->s, cap);

		if (ns == NULL) {
			t->failed = 1;
			return;
		}
		t->s = ns;
		t->cap = cap;
	}
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = '\0';
}

/* tr_num - " N/" */
static void
tr_num(struct trace *t, uint64_t v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64 "/", v);

	if (n > 0 && (size_t)n < sizeof(buf))
		tr_add(t, buf, (size_t)n);
}

/* check_helpers - the value helpers on what the parser delivered */
static void
check_helpers(const struct imap_event *ev)
{
	const char *sp;
	uint64_t lo, hi;
	int64_t t, t2;
	int tz, tz2, rc, n;
	char buf[IMAP_DATE_TIME_MAX];

	if (ev->type == IMAP_EV_ATOM || ev->type == IMAP_EV_NUMBER) {
		sp = ev->str;
		for (n = 0; n < 10000 &&
		    (rc = imap_parse_seqset_next(&sp, &lo, &hi)) == 1; n++)
			if (lo > hi || sp < ev->str || sp > ev->str + ev->len)
				abort();
	}
	if (ev->type == IMAP_EV_STRING && !(ev->flags & IMAP_EVF_NUL) &&
	    imap_parse_date_time(ev->str, &t, &tz) == 0) {
		if (imap_parse_format_date_time(t, tz, buf, sizeof(buf)) != 0 ||
		    imap_parse_date_time(buf, &t2, &tz2) != 0 || t2 != t ||
		    tz2 != tz)
			abort();
	}
}

static int
trace_cb(const struct imap_event *ev, void *arg)
{
	struct trace *t = arg;

	t->events++;
	if (ev->depth > t->max_depth)
		abort();
	if (ev->type == IMAP_EV_LITERAL_DATA) {
		const uint8_t *d = (const uint8_t *)ev->str;

		if (ev->len == 0 || d < t->feed ||
		    d + ev->len > t->feed + t->feedlen)
			abort();
		t->lit_got += ev->len;
		if (t->lit_got > t->lit_size)
			abort();
		if (!t->in_data)
			tr_add(t, " D:", 3);
		tr_add(t, ev->str, ev->len);
		t->in_data = 1;
		return (t->pause ? IMAP_PARSE_PAUSE : 0);
	}
	t->in_data = 0;
	if (ev->str != NULL) {
		if (ev->str[ev->len] != '\0')
			abort();
		if (!(ev->flags & IMAP_EVF_NUL) && strlen(ev->str) != ev->len)
			abort();
	}
	tr_add(t, " ", 1);
	tr_num(t, (uint64_t)ev->type);
	tr_num(t, (uint64_t)ev->flags);
	tr_num(t, (uint64_t)ev->depth);
	tr_num(t, ev->num);
	if (ev->tag != NULL)
		tr_add(t, ev->tag, strlen(ev->tag));
	tr_add(t, "/", 1);
	if (ev->str != NULL)
		tr_add(t, ev->str, ev->len);
	switch (ev->type) {
	case IMAP_EV_NUMBER:
		if (strtoull(ev->str, NULL, 10) != ev->num)
			abort();
		break;
	case IMAP_EV_LITERAL_BEGIN:
		t->lit_size = ev->num;
		t->lit_got = 0;
		break;
	case IMAP_EV_LITERAL_END:
		if (t->lit_got != t->lit_size)
			abort();
		break;
	default:
		break;
	}
	check_helpers(ev);
	return (t->pause ? IMAP_PARSE_PAUSE : 0);
}

/* chunk_len - the next piece length, 1..17, from a xorshift state */
static size_t
chunk_len(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return (1 + (size_t)(*state % 17));
}

/*
 * run - parse data in the given mode into t; 0 when the stream parsed,
 * 1 when it ended in an error, -1 out of memory.
 */
static int
run(const struct imap_parse_limits *lim, const uint8_t *data, size_t size,
    int chunked, int pause, uint64_t seed, struct trace *t)
{
	struct imap_parse *p;
	size_t off = 0, n;
	ssize_t r;
	int err = 0;

	memset(t, 0, sizeof(*t));
	t->pause = pause;
	t->max_depth = lim != NULL && lim->max_depth != 0 ? lim->max_depth :
	    32;
	tr_add(t, "", 0);
	if ((p = imap_parse_new(lim, trace_cb, t)) == NULL)
		return (-1);
	while (off < size) {
		size_t before = t->events;

		n = chunked ? chunk_len(&seed) : size - off;
		if (n > size - off)
			n = size - off;
		t->feed = data + off;
		t->feedlen = n;
		/* feed the piece until consumed; a pause returns early */
		while (n > 0) {
			before = t->events;
			r = imap_parse_feed(p, t->feed, n);
			if (r < 0) {
				err = 1;
				break;
			}
			if ((size_t)r > n)
				abort();
			if (r == 0 && t->events == before)
				abort();
			t->feed += r;
			t->feedlen -= (size_t)r;
			off += (size_t)r;
			n -= (size_t)r;
		}
		if (err)
			break;
	}
	/* A pause right after the last byte leaves the events that need
	 * no input (LITERAL_END) to the next call, which may be empty. */
	while (!err && pause) {
		size_t before = t->events;

		t->feed = (const uint8_t *)"";
		t->feedlen = 0;
		if (imap_parse_feed(p, "", 0) < 0)
			err = 1;
		else if (t->events == before)
			break;
	}
	if (err && imap_parse_feed(p, "A OK x\r\n", 8) != -1)
		abort();
	imap_parse_free(&p);
	if (p != NULL)
		abort();
	if (t->failed)
		return (-1);
	return (err);
}

/* report - where trace y (result ry) first differs from x (rx) */
static void
report(const char *what, int rx, const struct trace *x, int ry,
    const struct trace *y)
{
	size_t i, n = x->len < y->len ? x->len : y->len;

	for (i = 0; i < n && x->s[i] == y->s[i]; i++)
		;
	if (rx == ry && x->len == y->len && i == n)
		return;
	fprintf(stderr, "whole (%d, %zu bytes) and %s (%d, %zu bytes) differ "
	    "at %zu:\n  whole: ...%.60s\n  %s: ...%.60s\n", rx, x->len, what,
	    ry, y->len, i, x->s + (i > 20 ? i - 20 : 0), what,
	    y->s + (i > 20 ? i - 20 : 0));
}

/* fuzz_imap_parse - see fuzz.h */
int
fuzz_imap_parse(const uint8_t *data, size_t size)
{
	static const struct imap_parse_limits small = {
		.max_token = 64,
		.max_inline_literal = 8,
		.max_literal = 1024,
		.max_response = 2048,
		.max_tokens = 200,
		.max_depth = 4,
	};
	const struct imap_parse_limits *lims[2] = { NULL, &small };
	struct trace whole, chunked, paused;
	uint64_t seed = 1469598103934665603ULL;
	size_t i;
	int a, b, c;

	for (i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 1099511628211ULL;
	if (seed == 0)
		seed = 1;
	for (i = 0; i < 2; i++) {
		a = run(lims[i], data, size, 0, 0, seed, &whole);
		b = run(lims[i], data, size, 1, 0, seed, &chunked);
		c = run(lims[i], data, size, 1, 1, seed, &paused);
		if (a >= 0 && b >= 0 && c >= 0 &&
		    (a != b || a != c || whole.len != chunked.len ||
		    whole.len != paused.len ||
		    memcmp(whole.s, chunked.s, whole.len) != 0 ||
		    memcmp(whole.s, paused.s, whole.len) != 0)) {
			report("chunked", a, &whole, b, &chunked);
			report("paused", a, &whole, c, &paused);
			abort();
		}
		free(whole.s);
		free(chunked.s);
		free(paused.s);
	}
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return (fuzz_imap_parse(data, size));
}
