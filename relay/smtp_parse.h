/*
 * smtp_parse.h - SMTP command lines and the DATA stream, as pure
 * functions: no I/O, no allocation, no logging.
 *
 * smtp_cmd_parse() takes one command line (without its line ending) and
 * fills a struct smtp_cmd, or returns the complete reply the server
 * should send (e.g. "501 5.1.3 Bad recipient address syntax").
 *
 * struct smtp_data is the DATA state machine: feed it the bytes that
 * follow the 354 in chunks of any size; it writes the dot-unstuffed
 * message, finds the end (only <CR><LF>.<CR><LF>, or ".<CR><LF>" as the
 * very first line), refuses a bare CR or bare LF anywhere, marks a
 * message that holds a NUL byte (refused after its end), and counts
 * bytes and line lengths against the limits without buffering anything.
 *
 * Exposure: every byte here comes from an SMTP client.  Lengths follow
 * RFC 5321 §4.5.3.1; nothing is trusted, nothing is copied unbounded.
 */
#ifndef FERRY_SMTP_PARSE_H
#define FERRY_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 §4.5.3.1 size limits (octets). */
#define SMTP_LOCAL_MAX		64	/* local part */
#define SMTP_DOMAIN_MAX		255	/* domain */
#define SMTP_PATH_MAX		256	/* reverse/forward path incl. <> */
#define SMTP_CMDLINE_MAX	512	/* command line incl. CRLF */

enum smtp_verb {
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_NVERBS
};

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

/* One parsed command.  Strings are NUL-terminated copies. */
struct smtp_cmd {
	enum smtp_verb	 verb;
	/* HELO/EHLO: the name; VRFY/HELP/NOOP: the argument ("" if none) */
	char		 arg[SMTP_CMDLINE_MAX];
	/* MAIL/RCPT: the mailbox without <> or source route; "" for <> */
	char		 addr[SMTP_PATH_MAX + 1];
	int		 addr_8bit;	/* addr has bytes >= 0x80 (SMTPUTF8) */
	int		 postmaster;	/* RCPT TO:<postmaster>, no domain */
	int		 source_route;	/* "<@a,@b:...>" was given (dropped) */
	/* MAIL parameters */
	int		 has_size;
	uint64_t	 size;
	enum smtp_body	 body;
	int		 smtputf8;
};

/*
 * smtp_cmd_parse - parse one command line (line ending removed)
 *
 * Returns NULL and fills cmd, or returns the reply to send (a static
 * string like "501 5.5.4 Syntax: MAIL FROM:<address>"; cmd is then
 * undefined).  A line longer than SMTP_CMDLINE_MAX - 2 is refused with
 * "500 5.5.2 Line too long".  Checks syntax only: whether an address is
 * acceptable (our domain, a known user) is the server's business.
 */
const char *smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd);

const char *smtp_verb_name(enum smtp_verb verb);

/* Address syntax alone (no <>): 0 when addr is a valid RFC 5321
 * Mailbox within the length limits, -1 when not.  allow_8bit accepts
 * UTF-8 (RFC 6531); *is_8bit_r (may be NULL) says if any was seen. */
int	smtp_mailbox_valid(const char *addr, size_t len, int allow_8bit,
	    int *is_8bit_r);

/* ---- DATA ----------------------------------------------------------------- */

enum smtp_data_err {
	SMTP_DATA_OK = 0,
	SMTP_DATA_TOO_BIG,	/* more than max_size bytes: keep scanning */
	SMTP_DATA_LINE_TOO_LONG, /* a line over max_line: keep scanning */
	SMTP_DATA_BARE_NL,	/* bare CR or LF: stop at once */
	SMTP_DATA_NUL,		/* a NUL byte: keep scanning */
};

struct smtp_data {
	int		 state;		/* internal */
	int		 done;		/* the end marker was consumed */
	enum smtp_data_err error;	/* first error; output stops there */
	uint64_t	 size;		/* message bytes written (unstuffed) */
	uint64_t	 seen;		/* message bytes seen, past errors too */
	uint64_t	 line;		/* bytes in the current line */
	uint64_t	 max_size;	/* 0: no limit */
	uint64_t	 max_line;	/* without CRLF; 0: no limit */
};

void	smtp_data_init(struct smtp_data *d, uint64_t max_size,
	    uint64_t max_line);

/*
 * smtp_data_feed - run len input bytes through the machine
 *
 * Writes the unstuffed message bytes to out (room for len bytes always
 * suffices: output never exceeds input) and their count to *outlen_r.
 * Returns how many input bytes were consumed: all of them, unless the end
 * marker (d->done) or a bare CR/LF (d->error == SMTP_DATA_BARE_NL) came
 * first; the bytes after it are the next command, or garbage.  After
 * SMTP_DATA_TOO_BIG, SMTP_DATA_LINE_TOO_LONG or SMTP_DATA_NUL nothing
 * more is written (the NUL itself never is) but the end marker is still
 * looked for.  A NUL is a text byte: it neither ends a line nor makes
 * the "." after it the start of one.
 */
size_t	smtp_data_feed(struct smtp_data *d, const void *in, size_t len,
	    void *out, size_t *outlen_r);

#endif
