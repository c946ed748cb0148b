/*
 * imap_parse.h - incremental IMAP4rev1/IMAP4rev2 response parser
 * (RFC 3501 §7 and §9, RFC 9051), push style: the caller feeds bytes
 * exactly as they arrive, split anywhere, and a callback receives one
 * event per syntactic element.  Pure: no I/O, no logging, no globals.
 *
 * Event grammar (every response ends with IMAP_EV_END):
 *
 *   untagged status   "* OK [UIDVALIDITY 5] Ok"
 *       UNTAGGED(str="OK") [CODE_BEGIN(str="UIDVALIDITY") NUMBER(5)
 *       CODE_END] TEXT("Ok") END          (also NO, BAD, BYE, PREAUTH)
 *   untagged data     "* 23 EXISTS", "* 5 FETCH (UID 9 BODY[] {1234}..."
 *       UNTAGGED(num=23, IMAP_EVF_NUM, str="EXISTS") END
 *       UNTAGGED(num=5, str="FETCH") LIST_BEGIN ATOM("UID") NUMBER(9)
 *       ATOM("BODY[]") LITERAL_BEGIN(num=1234) LITERAL_DATA...
 *       LITERAL_END LIST_END END
 *   untagged other    "* LIST (\HasNoChildren \Sent) "/" Sent"
 *       UNTAGGED(str="LIST") then the remaining tokens, then END
 *   tagged            "A001 OK [APPENDUID 38505 3955] APPEND completed"
 *       TAGGED(tag="A001", str="OK") [CODE...] TEXT END
 *   continuation      "+ Ready" / "+ base64" / "+"
 *       CONTINUE [CODE...] TEXT END
 *
 * Keywords (the UNTAGGED name, the TAGGED status, the CODE name) are
 * upper-cased; everything else is delivered as the server sent it.  A
 * status response always carries exactly one TEXT event (possibly empty)
 * after its optional code.
 *
 * Tokens:
 *   ATOM     any other atom, incl. flags ("\Seen", "\*"), sequence sets
 *            ("1:5,7") and fetch items; "BODY[...]<n>", "BINARY[...]" and
 *            "BINARY.SIZE[...]" are one atom even when the section holds
 *            spaces or parentheses ("BODY[HEADER.FIELDS (DATE FROM)]").
 *   NUMBER   an atom of digits that fits in 64 bits: num holds the value
 *            and str the digits (so a mailbox named "2024" can still be
 *            read as a string).  Longer digit strings come as ATOM: a
 *            consumer that wants a number and gets an ATOM has detected
 *            an overflow.
 *   NIL      the atom NIL (any case); str is "NIL".  An astring consumer
 *            (a mailbox called NIL) may take str.
 *   STRING   a quoted string (escapes removed), or a literal of at most
 *            limits.max_inline_literal bytes (IMAP_EVF_LITERAL set, and
 *            IMAP_EVF_BINARY for a literal8 "~{n}").  A literal STRING may
 *            contain NUL bytes: IMAP_EVF_NUL is then set and only len is
 *            meaningful.
 *   LIST_BEGIN / LIST_END   "(" and ")"; depth counts the open lists
 *            (the tokens inside a list carry depth >= 1).
 *   LITERAL_BEGIN(num = size) LITERAL_DATA... LITERAL_END   a literal
 *            larger than max_inline_literal (IMAP_EVF_BINARY for "~{n}").
 *            The data events point into the caller's feed buffer, in
 *            chunks exactly as fed: the parser never holds a literal,
 *            so memory is bounded whatever the size.  A literal of
 *            size 0 .. max_inline_literal is always a STRING instead, so
 *            a consumer of message bodies must accept both.
 *   CODE_BEGIN / CODE_END   a resp-text-code "[NAME args]".  The args of
 *            the codes whose syntax is known (APPENDUID, BADCHARSET,
 *            CAPABILITY, COPYUID, HIGHESTMODSEQ, MAILBOXID, MODIFIED,
 *            PERMANENTFLAGS, UIDNEXT, UIDVALIDITY, UNSEEN, APPENDLIMIT)
 *            come as tokens; any other code's args (RFC 3501: any text
 *            but "]") come as one TEXT event, none when it has no args.
 *   TEXT     human-readable text; may hold any byte but NUL, CR and LF;
 *            sanitise before logging.
 *
 * Tolerated deviations seen in real servers: several spaces between
 * tokens, a trailing space before CRLF, a bare LF as line end, a missing
 * space after "+" or after a code.  Everything else that breaks the
 * grammar is an error.
 *
 * Limits (struct imap_parse_limits, 0 fields take the defaults): the
 * length of one token (atom, quoted string, text, inline literal), the
 * non-literal bytes of one response (SEARCH responses can be long: they
 * are never held, only counted), tokens per response, list depth, and
 * the size of a literal.  Exceeding one is an error.
 *
 * Errors: the callback receives IMAP_EV_ERROR with a reason in str, and
 * imap_parse_feed() returns -1, now and on every later call: after a
 * grammar error the position of literals is unknown, so the stream
 * cannot be trusted again; drop the connection.
 *
 * Ownership: every pointer in an event is valid only during the callback.
 * LITERAL_DATA points into the buffer passed to imap_parse_feed().  The
 * callback must not free the parser nor the buffer being fed (defer
 * that until imap_parse_feed() has returned).
 */
#ifndef FERRY_IMAP_PARSE_H
#define FERRY_IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

enum imap_ev_type {
	IMAP_EV_UNTAGGED = 1,
	IMAP_EV_TAGGED,
	IMAP_EV_CONTINUE,
	IMAP_EV_ATOM,
	IMAP_EV_NUMBER,
	IMAP_EV_STRING,
	IMAP_EV_NIL,
	IMAP_EV_LIST_BEGIN,
	IMAP_EV_LIST_END,
	IMAP_EV_LITERAL_BEGIN,
	IMAP_EV_LITERAL_DATA,
	IMAP_EV_LITERAL_END,
	IMAP_EV_CODE_BEGIN,
	IMAP_EV_CODE_END,
	IMAP_EV_TEXT,
	IMAP_EV_END,
	IMAP_EV_ERROR,
};

#define IMAP_EVF_NUM		0x01	/* UNTAGGED: "* <num> NAME" */
#define IMAP_EVF_LITERAL	0x02	/* STRING: came as a literal */
#define IMAP_EVF_BINARY		0x04	/* literal8 "~{n}" */
#define IMAP_EVF_NUL		0x08	/* STRING holds a NUL byte */

struct imap_event {
	enum imap_ev_type type;
	const char	*str;	/* see above; NUL-terminated except DATA */
	size_t		 len;	/* bytes at str, NUL not counted */
	uint64_t	 num;	/* NUMBER value, literal size, "* n" */
	const char	*tag;	/* TAGGED: the tag */
	unsigned	 flags;	/* IMAP_EVF_* */
	unsigned	 depth;	/* open lists around this token */
};

struct imap_parse_limits {
	size_t		 max_token;		/* default 1 MiB */
	size_t		 max_inline_literal;	/* default 4 KiB */
	uint64_t	 max_literal;		/* default 4 GiB */
	uint64_t	 max_response;		/* default 64 MiB */
	uint64_t	 max_tokens;		/* default 4 Mi */
	unsigned	 max_depth;		/* default 32 */
};

/*
 * The callback returns 0 to go on, or IMAP_PARSE_PAUSE to make
 * imap_parse_feed() return right after this event (flow control: the
 * caller keeps the unconsumed bytes and feeds them again later).
 * An event that needs no input byte (the LITERAL_END after the last
 * byte of a literal) comes with the next call after a pause, even one
 * of 0 bytes.
 * After IMAP_EV_ERROR the return value is ignored.
 */
#define IMAP_PARSE_PAUSE	1
typedef int	(*imap_parse_cb)(const struct imap_event *ev, void *arg);

struct imap_parse;

/* NULL limits = defaults.  Returns NULL when out of memory. */
struct imap_parse *imap_parse_new(const struct imap_parse_limits *limits,
	    imap_parse_cb cb, void *arg);
void	 imap_parse_free(struct imap_parse **pp);

/*
 * imap_parse_feed - parse up to len bytes; returns the number consumed
 * (len unless the callback paused), or -1 on error (now or earlier).
 */
ssize_t	 imap_parse_feed(struct imap_parse *p, const void *buf, size_t len);

/* 1 between LITERAL_BEGIN and LITERAL_END; *left_r = bytes still due */
int	 imap_parse_in_literal(const struct imap_parse *p, uint64_t *left_r);
/* 1 at the start of a response (nothing of the next one consumed yet) */
int	 imap_parse_at_start(const struct imap_parse *p);

/*
 * Helpers for the values inside responses.
 *
 * imap_parse_seqset_next - iterate a sequence set "1:5,7,9:8": sets
 * *lo_r <= *hi_r for the next range and advances *sp; returns 1 for a
 * range, 0 at the end, -1 on a syntax error.  "*" is refused (servers
 * never send it in UIDPLUS or VANISHED sets).
 */
int	 imap_parse_seqset_next(const char **sp, uint64_t *lo_r, uint64_t *hi_r);

/* INTERNALDATE text: imap_parse_date_time(), imap_parse_format_date_time() */
#include "imap_date.h"

#endif
