/*
 * imap_parse.c - incremental IMAP response parser (see imap_parse.h).
 *
 * One byte-driven state machine.  Each step of the loop in
 * imap_parse_feed() looks at the next byte, consumes it or not, and
 * emits at most one event, so the callback can pause the parser after
 * any event and the unconsumed bytes stay with the caller.  Literal
 * bodies are not scanned byte by byte: the largest available chunk is
 * handed to the callback in one event, pointing into the caller's
 * buffer.
 *
 * The grammar knowledge is deliberately small: what a response starts
 * with (tag, "*", "+"), which responses carry resp-text (status
 * responses, continuations, tagged completions) and which resp-text-
 * codes have structured arguments.  Everything else is a token stream
 * the consumer interprets.
 *
 * SECURITY: every byte comes from the IMAP server, which we do not
 * trust.  Memory held is one token buffer (bounded by max_token) and a
 * fixed-size struct; every count (token length, response length, token
 * number, list depth, literal size, number value) is checked before it
 * grows; nothing is ever read outside [buf, buf + len).
 *
 * Ownership: the parser owns its token buffer; events point into it or
 * into the caller's feed buffer and are valid during the callback only.
 * Not thread-safe; one parser per connection.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"

#define DEF_MAX_TOKEN		(1024 * 1024)
#define DEF_MAX_INLINE		4096
#define DEF_MAX_LITERAL		(UINT64_C(4) << 30)
#define DEF_MAX_RESPONSE	(UINT64_C(64) << 20)
#define DEF_MAX_TOKENS		(UINT64_C(4) << 20)
#define DEF_MAX_DEPTH		32

#define TAG_MAX		64	/* our tags are short; a server's echo too */
#define KEYWORD_MAX	64	/* response, status and code names */

enum pstate {
	PS_LINE_START,
	PS_UNTAGGED_SP,
	PS_UNTAGGED_KW1,
	PS_UNTAGGED_KW2,
	PS_TAG,
	PS_TAG_STATUS,
	PS_CONT_SP,
	PS_RESP_TEXT,
	PS_CODE_NAME,
	PS_CODE_RAW,
	PS_CODE_CLOSE,
	PS_AFTER_CODE,
	PS_TEXT,
	PS_GENERIC,
	PS_ATOM,
	PS_ATOM_SECTION,
	PS_QUOTED,
	PS_QUOTED_ESC,
	PS_TILDE,
	PS_LIT_SIZE,
	PS_LIT_CR,
	PS_LIT_LF,
	PS_LIT_INLINE,
	PS_LIT_DATA,
	PS_EOL_LF,
	PS_DEAD,
};

struct imap_parse {
	struct imap_parse_limits lim;
	imap_parse_cb	 cb;
	void		*arg;
	enum pstate	 state;
	int		 paused;

	char		*tok;		/* current token, NUL-terminated */
	size_t		 toklen;
	size_t		 tokcap;

	char		 tag[TAG_MAX + 1];
	uint64_t	 untagged_num;
	int		 has_num;

	unsigned	 depth;		/* open lists */
	int		 in_code;	/* inside a structured "[...]" */

	uint64_t	 lit_size;	/* literal being read */
	uint64_t	 lit_left;
	int		 lit_digits;
	int		 lit_binary;
	int		 lit_nul;

	uint64_t	 resp_bytes;	/* non-literal bytes of this response */
	uint64_t	 resp_tokens;
};

/* Codes whose arguments are tokenised; any other code's are raw text. */
static const char *const structured_codes[] = {
	"APPENDUID", "BADCHARSET", "CAPABILITY", "COPYUID", "HIGHESTMODSEQ",
	"MAILBOXID", "MODIFIED", "PERMANENTFLAGS", "UIDNEXT", "UIDVALIDITY",
	"UNSEEN", "APPENDLIMIT",
};

/* Atoms after which "[" opens a section that may hold spaces. */
static const char *const section_atoms[] = {
	"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE",
};

static const char *const untagged_status[] = {
	"OK", "NO", "BAD", "BYE", "PREAUTH",
};

static int
in_list(const char *s, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(s, list[i]) == 0)
			return (1);
	return (0);
}

#define IN_LIST(s, l)	in_list((s), (l), sizeof(l) / sizeof((l)[0]))

static int
is_ctl(unsigned char c)
{
	return (c < 0x20 || c == 0x7f);
}

struct imap_parse *
imap_parse_new(const struct imap_parse_limits *limits, imap_parse_cb cb,
    void *arg)
{
	struct imap_parse *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return (NULL);
	if (limits != NULL)
		p->lim = *limits;
	if (p->lim.max_token == 0)
		p->lim.max_token = DEF_MAX_TOKEN;
	if (p->lim.max_token < KEYWORD_MAX)
		p->lim.max_token = KEYWORD_MAX;
	if (p->lim.max_inline_literal == 0)
		p->lim.max_inline_literal = DEF_MAX_INLINE;
	if (p->lim.max_inline_literal > p->lim.max_token)
		p->lim.max_inline_literal = p->lim.max_token;
	if (p->lim.max_literal == 0)
		p->lim.max_literal = DEF_MAX_LITERAL;
	if (p->lim.max_response == 0)
		p->lim.max_response = DEF_MAX_RESPONSE;
	if (p->lim.max_tokens == 0)
		p->lim.max_tokens = DEF_MAX_TOKENS;
	if (p->lim.max_depth == 0)
		p->lim.max_depth = DEF_MAX_DEPTH;
	p->tokcap = 256;
	if ((p->tok = malloc(p->tokcap)) == NULL) {
		free(p);
		return (NULL);
	}
	p->tok[0] = '\0';
	p->cb = cb;
	p->arg = arg;
	p->state = PS_LINE_START;
	return (p);
}

void
imap_parse_free(struct imap_parse **pp)
{
	if (pp == NULL || *pp == NULL)
		return;
	free((*pp)->tok);
	free(*pp);
	*pp = NULL;
}

int
imap_parse_in_literal(const struct imap_parse *p, uint64_t *left_r)
{
	if (p->state != PS_LIT_DATA)
		return (0);
	if (left_r != NULL)
		*left_r = p->lit_left;
	return (1);
}

int
imap_parse_at_start(const struct imap_parse *p)
{
	return (p->state == PS_LINE_START);
}

/* emit - deliver one event; a pause request stops the feed loop */
static void
emit(struct imap_parse *p, enum imap_ev_type type, const char *str,
    size_t len, uint64_t num, unsigned flags)
{
	struct imap_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.str = str;
	ev.len = len;
	ev.num = num;
	ev.flags = flags;
	ev.depth = p->depth;
	if (type == IMAP_EV_TAGGED)
		ev.tag = p->tag;
	if (p->cb(&ev, p->arg) == IMAP_PARSE_PAUSE)
		p->paused = 1;
}

/* fail - report the error once and refuse everything from now on */
static void
fail(struct imap_parse *p, const char *reason)
{
	p->state = PS_DEAD;
	emit(p, IMAP_EV_ERROR, reason, strlen(reason), 0, 0);
}

/* token - emit a token event, counting it against max_tokens */
static int
token(struct imap_parse *p, enum imap_ev_type type, uint64_t num,
    unsigned flags)
{
	if (++p->resp_tokens > p->lim.max_tokens) {
		fail(p, "too many tokens in one response");
		return (-1);
	}
	emit(p, type, p->tok, p->toklen, num, flags);
	return (0);
}

static void
tok_reset(struct imap_parse *p)
{
	p->toklen = 0;
	p->tok[0] = '\0';
}

/* tok_add - append n bytes to the token, within max_token */
static int
tok_add(struct imap_parse *p, const char *s, size_t n)
{
	size_t cap;
	char *t;

	if (n > p->lim.max_token - p->toklen) {
		fail(p, "token too long");
		return (-1);
	}
	if (p->toklen + n + 1 > p->tokcap) {
		cap = p->tokcap;
		while (cap < p->toklen + n + 1)
			cap *= 2;
		if (cap > p->lim.max_token + 1)
			cap = p->lim.max_token + 1;
		if ((t = realloc(p->tok, cap)) == NULL) {
			fail(p, "out of memory");
			return (-1);
		}
		p->tok = t;
		p->tokcap = cap;
	}
	memcpy(p->tok + p->toklen, s, n);
	p->toklen += n;
	p->tok[p->toklen] = '\0';
	return (0);
}

static int
tok_put(struct imap_parse *p, unsigned char c)
{
	char ch = (char)c;

	return (tok_add(p, &ch, 1));
}

static void
tok_upper(struct imap_parse *p)
{
	size_t i;

	for (i = 0; i < p->toklen; i++)
		if (p->tok[i] >= 'a' && p->tok[i] <= 'z')
			p->tok[i] = (char)(p->tok[i] - 'a' + 'A');
}

/* tok_number - 1 and *v_r when the token is digits that fit 64 bits */
static int
tok_number(const struct imap_parse *p, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;
	unsigned d;

	if (p->toklen == 0)
		return (0);
	for (i = 0; i < p->toklen; i++) {
		if (p->tok[i] < '0' || p->tok[i] > '9')
			return (0);
		d = (unsigned)(p->tok[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return (0);
		v = v * 10 + d;
	}
	*v_r = v;
	return (1);
}

/* atom_done - classify and emit the finished atom */
static void
atom_done(struct imap_parse *p)
{
	uint64_t v;

	p->state = PS_GENERIC;
	if (tok_number(p, &v))
		(void)token(p, IMAP_EV_NUMBER, v, 0);
	else if (strcasecmp(p->tok, "NIL") == 0)
		(void)token(p, IMAP_EV_NIL, 0, 0);
	else
		(void)token(p, IMAP_EV_ATOM, 0, 0);
}

/* keyword_char - may c continue a response keyword or tag? */
static int
keyword_char(unsigned char c)
{
	return (!is_ctl(c) && c != ' ' && c != '(' && c != ')' && c != '{' &&
	    c != '"' && c != '\\' && c < 0x80);
}

/* untagged_keyword_done - the response name is known: emit UNTAGGED */
static void
untagged_keyword_done(struct imap_parse *p)
{
	int status;

	tok_upper(p);
	status = IN_LIST(p->tok, untagged_status);
	/* A status response has no number ("* 5 OK" is not one). */
	if (status && p->has_num)
		status = 0;
	p->state = status ? PS_RESP_TEXT : PS_GENERIC;
	if (++p->resp_tokens > p->lim.max_tokens) {
		fail(p, "too many tokens in one response");
		return;
	}
	emit(p, IMAP_EV_UNTAGGED, p->tok, p->toklen, p->untagged_num,
	    p->has_num ? IMAP_EVF_NUM : 0);
}

/* response_done - CRLF seen: reset the per-response state */
static void
response_done(struct imap_parse *p)
{
	p->state = PS_LINE_START;
	p->resp_bytes = 0;
	p->resp_tokens = 0;
	p->depth = 0;
	p->in_code = 0;
	p->has_num = 0;
	p->untagged_num = 0;
	p->tag[0] = '\0';
	tok_reset(p);
	emit(p, IMAP_EV_END, "", 0, 0, 0);
}

/* generic - between tokens: dispatch on the first byte of the next */
static int
generic(struct imap_parse *p, unsigned char c)
{
	switch (c) {
	case ' ':
		return (1);
	case '\r':
	case '\n':
		if (p->in_code) {
			fail(p, "unterminated response code");
			return (0);
		}
		if (p->depth > 0) {
			fail(p, "unterminated list");
			return (0);
		}
		p->state = PS_EOL_LF;
		return (c == '\r');
	case '(':
		if (p->depth >= p->lim.max_depth) {
			fail(p, "lists nested too deeply");
			return (0);
		}
		tok_reset(p);
		if (token(p, IMAP_EV_LIST_BEGIN, 0, 0) == 0)
			p->depth++;
		return (1);
	case ')':
		if (p->depth == 0) {
			fail(p, "unbalanced \")\"");
			return (0);
		}
		p->depth--;
		tok_reset(p);
		emit(p, IMAP_EV_LIST_END, p->tok, 0, 0, 0);
		return (1);
	case '"':
		tok_reset(p);
		p->state = PS_QUOTED;
		return (1);
	case '{':
		p->lit_binary = 0;
		p->lit_size = 0;
		p->lit_digits = 0;
		p->state = PS_LIT_SIZE;
		return (1);
	case '~':
		tok_reset(p);
		p->state = PS_TILDE;
		return (1);
	case ']':
		if (p->in_code) {
			if (p->depth > 0) {
				fail(p, "unterminated list in response code");
				return (0);
			}
			p->state = PS_CODE_CLOSE;
			return (0);
		}
		break;
	default:
		break;
	}
	if (is_ctl(c)) {
		fail(p, "control character between tokens");
		return (0);
	}
	tok_reset(p);
	p->state = PS_ATOM;
	return (0);
}

/* literal_start - the "{n}CRLF" header is complete */
static void
literal_start(struct imap_parse *p)
{
	p->lit_left = p->lit_size;
	p->lit_nul = 0;
	if (p->lit_size <= p->lim.max_inline_literal) {
		tok_reset(p);
		p->state = PS_LIT_INLINE;
		return;
	}
	p->state = PS_LIT_DATA;
	tok_reset(p);
	(void)token(p, IMAP_EV_LITERAL_BEGIN, p->lit_size,
	    p->lit_binary ? IMAP_EVF_BINARY : 0);
}

/*
 * step - one byte in a non-literal state: returns 1 when consumed, 0
 * when the byte must be looked at again (state changed), and leaves the
 * parser dead on error.
 */
static int
step(struct imap_parse *p, unsigned char c)
{
	uint64_t v;

	switch (p->state) {
	case PS_LINE_START:
		if (c == '*') {
			p->state = PS_UNTAGGED_SP;
			return (1);
		}
		if (c == '+') {
			p->state = PS_CONT_SP;
			tok_reset(p);
			emit(p, IMAP_EV_CONTINUE, p->tok, 0, 0, 0);
			return (1);
		}
		if (c == '\r' || c == '\n') {
			fail(p, "empty response line");
			return (0);
		}
		tok_reset(p);
		p->state = PS_TAG;
		return (0);

	case PS_UNTAGGED_SP:
		if (c != ' ') {
			fail(p, "no space after \"*\"");
			return (0);
		}
		tok_reset(p);
		p->state = PS_UNTAGGED_KW1;
		return (1);

	case PS_UNTAGGED_KW1:
	case PS_UNTAGGED_KW2:
		if (c == ' ' || c == '\r' || c == '\n' || c == '(' ||
		    c == '[') {
			if (p->toklen == 0) {
				fail(p, "untagged response without a name");
				return (0);
			}
			if (p->state == PS_UNTAGGED_KW1 && tok_number(p, &v)) {
				if (c != ' ') {
					fail(p, "no response name after the "
					    "number");
					return (0);
				}
				p->untagged_num = v;
				p->has_num = 1;
				tok_reset(p);
				p->state = PS_UNTAGGED_KW2;
				return (1);
			}
			untagged_keyword_done(p);
			return (c == ' ');
		}
		if (!keyword_char(c)) {
			fail(p, "bad character in response name");
			return (0);
		}
		if (p->toklen >= KEYWORD_MAX) {
			fail(p, "response name too long");
			return (0);
		}
		(void)tok_put(p, c);
		return (1);

	case PS_TAG:
		if (c == ' ') {
			if (p->toklen == 0) {
				fail(p, "empty tag");
				return (0);
			}
			memcpy(p->tag, p->tok, p->toklen + 1);
			tok_reset(p);
			p->state = PS_TAG_STATUS;
			return (1);
		}
		if (c == '\r' || c == '\n') {
			fail(p, "tagged response without a status");
			return (0);
		}
		if (!keyword_char(c) || c == '+') {
			fail(p, "bad character in tag");
			return (0);
		}
		if (p->toklen >= TAG_MAX) {
			fail(p, "tag too long");
			return (0);
		}
		(void)tok_put(p, c);
		return (1);

	case PS_TAG_STATUS:
		if (c == ' ' || c == '\r' || c == '\n') {
			tok_upper(p);
			if (strcmp(p->tok, "OK") != 0 &&
			    strcmp(p->tok, "NO") != 0 &&
			    strcmp(p->tok, "BAD") != 0) {
				fail(p, "tagged status is not OK, NO or BAD");
				return (0);
			}
			p->state = PS_RESP_TEXT;
			if (++p->resp_tokens > p->lim.max_tokens) {
				fail(p, "too many tokens in one response");
				return (0);
			}
			emit(p, IMAP_EV_TAGGED, p->tok, p->toklen, 0, 0);
			return (c == ' ');
		}
		if (!keyword_char(c) || p->toklen >= KEYWORD_MAX) {
			fail(p, "bad tagged status");
			return (0);
		}
		(void)tok_put(p, c);
		return (1);

	case PS_CONT_SP:
		p->state = PS_RESP_TEXT;
		return (c == ' ');

	case PS_RESP_TEXT:
		tok_reset(p);
		if (c == '[') {
			p->state = PS_CODE_NAME;
			return (1);
		}
		p->state = PS_TEXT;
		return (0);

	case PS_CODE_NAME:
		if (c == ']' || c == ' ') {
			if (p->toklen == 0) {
				fail(p, "empty response code");
				return (0);
			}
			tok_upper(p);
			if (c == ']')
				p->state = PS_CODE_CLOSE;
			else if (IN_LIST(p->tok, structured_codes)) {
				p->in_code = 1;
				p->state = PS_GENERIC;
			} else
				p->state = PS_CODE_RAW;
			(void)token(p, IMAP_EV_CODE_BEGIN, 0, 0);
			tok_reset(p);
			return (c == ' ');
		}
		if (c == '\r' || c == '\n') {
			fail(p, "unterminated response code");
			return (0);
		}
		if (!keyword_char(c) || c == '[' || p->toklen >= KEYWORD_MAX) {
			fail(p, "bad response code name");
			return (0);
		}
		(void)tok_put(p, c);
		return (1);

	case PS_CODE_RAW:
		if (c == ']') {
			p->state = PS_CODE_CLOSE;
			(void)token(p, IMAP_EV_TEXT, 0, 0);
			return (0);
		}
		if (c == '\r' || c == '\n') {
			fail(p, "unterminated response code");
			return (0);
		}
		if (c == '\0') {
			fail(p, "NUL in response code");
			return (0);
		}
		(void)tok_put(p, c);
		return (1);

	case PS_CODE_CLOSE:
		/* only ever entered looking at "]" */
		p->in_code = 0;
		p->state = PS_AFTER_CODE;
		tok_reset(p);
		emit(p, IMAP_EV_CODE_END, p->tok, 0, 0, 0);
		return (1);

	case PS_AFTER_CODE:
		tok_reset(p);
		p->state = PS_TEXT;
		return (c == ' ');

	case PS_TEXT:
		if (c == '\r' || c == '\n') {
			p->state = PS_EOL_LF;
			(void)token(p, IMAP_EV_TEXT, 0, 0);
			return (c == '\r');
		}
		if (c == '\0') {
			fail(p, "NUL in response text");
			return (0);
		}
		(void)tok_put(p, c);
		return (1);

	case PS_GENERIC:
		return (generic(p, c));

	case PS_ATOM:
		if (c == ' ' || c == '\r' || c == '\n' || c == '(' ||
		    c == ')' || (c == ']' && p->in_code)) {
			if (p->toklen == 0) {
				fail(p, "empty atom");
				return (0);
			}
			atom_done(p);
			return (0);
		}
		if (is_ctl(c)) {
			fail(p, "control character in atom");
			return (0);
		}
		if (c == '[' && !p->in_code && IN_LIST(p->tok, section_atoms))
			p->state = PS_ATOM_SECTION;
		(void)tok_put(p, c);
		return (1);

	case PS_ATOM_SECTION:
		if (c == '\r' || c == '\n' || c == '\0') {
			fail(p, "unterminated section in fetch item");
			return (0);
		}
		if (c == ']')
			p->state = PS_ATOM;
		(void)tok_put(p, c);
		return (1);

	case PS_QUOTED:
		if (c == '"') {
			p->state = PS_GENERIC;
			(void)token(p, IMAP_EV_STRING, 0, 0);
			return (1);
		}
		if (c == '\\') {
			p->state = PS_QUOTED_ESC;
			return (1);
		}
		if (c == '\r' || c == '\n') {
			fail(p, "unterminated quoted string");
			return (0);
		}
		if (c == '\0') {
			fail(p, "NUL in quoted string");
			return (0);
		}
		(void)tok_put(p, c);
		return (1);

	case PS_QUOTED_ESC:
		/* RFC 9051 escapes only \ and "; take any other byte as
		 * itself, as Dovecot's and isync's parsers do. */
		if (c == '\r' || c == '\n' || c == '\0') {
			fail(p, "bad escape in quoted string");
			return (0);
		}
		p->state = PS_QUOTED;
		(void)tok_put(p, c);
		return (1);

	case PS_TILDE:
		if (c == '{') {
			p->lit_binary = 1;
			p->lit_size = 0;
			p->lit_digits = 0;
			p->state = PS_LIT_SIZE;
			return (1);
		}
		/* not a literal8: an atom that starts with "~" */
		p->state = PS_ATOM;
		(void)tok_put(p, '~');
		return (0);

	case PS_LIT_SIZE:
		if (c >= '0' && c <= '9') {
			if (p->lit_size > p->lim.max_literal / 10 ||
			    p->lit_size * 10 + (uint64_t)(c - '0') >
			    p->lim.max_literal) {
				fail(p, "literal too large");
				return (0);
			}
			p->lit_size = p->lit_size * 10 + (uint64_t)(c - '0');
			p->lit_digits++;
			return (1);
		}
		if (c == '}' && p->lit_digits > 0) {
			p->state = PS_LIT_CR;
			return (1);
		}
		fail(p, "bad literal size");
		return (0);

	case PS_LIT_CR:
		if (c == '\r' || c == '\n') {
			p->state = PS_LIT_LF;
			return (c == '\r');
		}
		fail(p, "literal size not followed by CRLF");
		return (0);

	case PS_LIT_LF:
		if (c != '\n') {
			fail(p, "CR not followed by LF");
			return (0);
		}
		literal_start(p);
		return (1);

	case PS_EOL_LF:
		if (c != '\n') {
			fail(p, "CR not followed by LF");
			return (0);
		}
		response_done(p);
		return (1);

	case PS_LIT_INLINE:
	case PS_LIT_DATA:
	case PS_DEAD:
		break;
	}
	fail(p, "internal parser error");
	return (0);
}

ssize_t
imap_parse_feed(struct imap_parse *p, const void *buf, size_t len)
{
	const unsigned char *s = buf;
	size_t i = 0, n;

	if (p->state == PS_DEAD)
		return (-1);
	p->paused = 0;
	for (;;) {
		if (p->state == PS_DEAD)
			return (-1);
		if (p->paused)
			break;
		/* Transitions that need no input byte come first, so a
		 * literal that ends with the buffer is closed now. */
		if (p->state == PS_LIT_DATA && p->lit_left == 0) {
			p->state = PS_GENERIC;
			tok_reset(p);
			emit(p, IMAP_EV_LITERAL_END, p->tok, 0, p->lit_size,
			    p->lit_binary ? IMAP_EVF_BINARY : 0);
			continue;
		}
		if (p->state == PS_LIT_INLINE && p->lit_left == 0) {
			p->state = PS_GENERIC;
			(void)token(p, IMAP_EV_STRING, 0, IMAP_EVF_LITERAL |
			    (p->lit_binary ? IMAP_EVF_BINARY : 0) |
			    (p->lit_nul ? IMAP_EVF_NUL : 0));
			continue;
		}
		if (i >= len)
			break;
		if (p->state == PS_LIT_DATA || p->state == PS_LIT_INLINE) {
			n = len - i;
			if (n > p->lit_left)
				n = (size_t)p->lit_left;
			if (p->state == PS_LIT_DATA) {
				emit(p, IMAP_EV_LITERAL_DATA,
				    (const char *)s + i, n, 0,
				    p->lit_binary ? IMAP_EVF_BINARY : 0);
			} else {
				if (memchr(s + i, '\0', n) != NULL)
					p->lit_nul = 1;
				if (tok_add(p, (const char *)s + i, n) == -1)
					return (-1);
			}
			p->lit_left -= n;
			i += n;
			continue;
		}
		if (step(p, s[i])) {
			i++;
			if (p->state != PS_LINE_START &&
			    ++p->resp_bytes > p->lim.max_response) {
				fail(p, "response too long");
				return (-1);
			}
		}
	}
	return ((ssize_t)i);
}

/*
 * imap_parse_seqset_next - next range of a sequence set (see header).
 */
int
imap_parse_seqset_next(const char **sp, uint64_t *lo_r, uint64_t *hi_r)
{
	const char *s = *sp;
	uint64_t v[2];
	int k, n = 0;

	if (*s == '\0')
		return (0);
	for (k = 0; k < 2; k++) {
		if (*s < '0' || *s > '9')
			return (-1);
		v[k] = 0;
		while (*s >= '0' && *s <= '9') {
			unsigned d = (unsigned)(*s - '0');

			if (v[k] > (UINT64_MAX - d) / 10)
				return (-1);
			v[k] = v[k] * 10 + d;
			s++;
		}
		if (v[k] == 0)
			return (-1);
		n++;
		if (*s != ':')
			break;
		if (k == 1)
			return (-1);
		s++;
	}
	if (n == 1)
		v[1] = v[0];
	if (*s == ',') {
		s++;
		if (*s == '\0')
			return (-1);
	} else if (*s != '\0')
		return (-1);
	*lo_r = v[0] < v[1] ? v[0] : v[1];
	*hi_r = v[0] < v[1] ? v[1] : v[0];
	*sp = s;
	return (1);
}
