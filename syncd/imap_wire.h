/*
 * imap_wire.h - the text of the IMAP protocol, without a connection:
 * argument validators, quoting and the choice of a literal, capability
 * and mailbox-attribute names, the retry class of an answer, base64 for
 * SASL.  Private to syncd/imap_client*.c; pure functions (imap_wire.c).
 * The public helpers of the same layer (imap_status_name,
 * imap_errclass_name, imap_backoff_from_text, imap_flag_settable) are
 * declared in imap_client.h.
 */
#ifndef FERRY_IMAP_WIRE_H
#define FERRY_IMAP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "imap_types.h"

struct evbuffer;

#define IMAP_WIRE_ARG_MAX	8192	/* caller's raw text arguments */
#define IMAP_WIRE_TEXT_MAX	512	/* sanitised server text */

/* Validators of the caller's arguments: 1 when usable, else 0.
 * text: printable ASCII, 1..IMAP_WIRE_ARG_MAX bytes (raw command text);
 * uidset: digits, ':', ',' and '*'; mailbox: no CR or LF, not empty. */
int	 imap_wire_text_valid(const char *s);
int	 imap_wire_uidset_valid(const char *s);
int	 imap_wire_mailbox_valid(const char *m);
/* space-separated settable flags (imap_flag_settable), or empty: 0 / -1 */
int	 imap_wire_flag_list_valid(const char *s, char *err, size_t errlen);
/* the same mailbox name: equal, or both INBOX in any case */
int	 imap_wire_mailbox_eq(const char *a, const char *b);

/* Quoting and literals. */
int	 imap_wire_quotable(const char *s, size_t len, int utf8);
void	 imap_wire_add_quoted(struct evbuffer *b, const char *s, size_t len);
int	 imap_wire_nonsync_ok(uint64_t n, uint64_t max, int literal_plus,
	    int literal_minus);

/* Mailbox names: UTF-8 <-> wire form (mUTF-7, or UTF-8 when utf8). */
int	 imap_wire_mailbox_encode(int utf8, const char *name, char *out,
	    size_t outsize, char *err, size_t errlen);
int	 imap_wire_mailbox_decode(int utf8, const char *wire, char *out,
	    size_t outsize, char *err, size_t errlen);

/* Names from the server. */
int	 imap_wire_cap(const char *upper_name);
unsigned imap_wire_mbox_attr(const char *attr);
void	 imap_wire_status_items(unsigned items, int condstore,
	    int status_size, int appendlimit, char *buf, size_t len);
/* the retry class of a NO/BAD (see imap_client.h, "Errors"); auth_cmd:
 * the answer was to LOGIN or AUTHENTICATE */
enum imap_errclass imap_wire_classify(int auth_cmd, enum imap_status st,
	    const char *code, const char *text);

/* base64 of s[0..n) / a server challenge decoded for a message
 * (printable, at most IMAP_WIRE_TEXT_MAX); new strings, NULL when out
 * of memory */
char	*imap_wire_b64(const void *s, size_t n);
char	*imap_wire_unb64_text(const char *s, size_t n);

/* append to a NUL-terminated buffer, truncating safely */
void	 imap_wire_sappend(char *buf, size_t len, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif
