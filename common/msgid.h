/*
 * msgid.h - Message-ID normalisation, body hash and message keys.
 *
 * The keys of DESIGN.md §4.  Everything here must give the same answer
 * for the same message whether it was seen by the relay (SMTP, CRLF,
 * the relay's own trace headers on top), fetched from an IMAP server
 * (CRLF, the server's headers on top) or read from a maildir file (LF):
 * a key that differs between two copies of one message is a duplicate
 * in the new mailbox.  Changing any rule or encoding here changes every
 * stored key, so the hashed inputs carry a version tag ("...-v1").
 *
 * Rules, decided once:
 * - Message-ID: the first msg-id of the field; CFWS (whitespace, folding,
 *   comments) removed; angle brackets added when missing; the domain
 *   (after the last '@' outside a quoted string) lower-cased; the local
 *   part, quoted or not, kept byte for byte; a '"' that is never
 *   closed is an ordinary byte.  Normalising a normalised id gives it
 *   back unchanged.  An id without '@' (some
 *   mailers send "<12345.JavaMail.foo>") is kept as it is, bracketed,
 *   with no case change at all.  See msgid.c for the fine print.
 * - Body: everything after the first empty line; line ends made CRLF;
 *   trailing empty lines dropped; an unterminated last line gets a CRLF.
 * - Addresses: surrounding <> and whitespace stripped, domain lower-cased.
 *   The ledger key case-folds the whole mailbox (see msgkey_ledger()).
 *
 * Nothing here logs, allocates beyond what a function says, or keeps
 * global state; all functions are safe to call from any thread.
 */
#ifndef FERRY_MSGID_H
#define FERRY_MSGID_H

#include <stddef.h>

/* Longest canonical Message-ID, brackets included (RFC 5322 line limit). */
#define MSGID_MAXLEN		998
#define MSGID_BUFSIZE		(MSGID_MAXLEN + 1)

/* Date and From are kept up to this many bytes (after unfolding and
 * collapsing whitespace); longer values are cut, the same way on every
 * side, so the fallback key stays deterministic. */
#define MSG_IDENT_FIELD_MAXLEN	998

#define MSGKEY_LEN		32	/* SHA-256 */
#define MSGKEY_HEXSIZE		(2 * MSGKEY_LEN + 1)
#define BODY_HASH_LEN		32

/* What identifies a message apart from its body. */
struct msg_ident {
	char	msgid[MSGID_BUFSIZE];	/* canonical "<...>" or "" */
	char	date[MSG_IDENT_FIELD_MAXLEN + 1];	/* raw, unfolded */
	char	from[MSG_IDENT_FIELD_MAXLEN + 1];	/* raw, unfolded */
	int	has_msgid;
};

/*
 * Streaming body hash.  The struct lives in caller memory (e.g. inside a
 * transaction); body_hash_init() allocates the EVP_MD_CTX it owns.
 * body_hash_final() releases it again, so after a successful or failed
 * final the struct holds nothing.  body_hash_free() releases it on paths
 * that abandon the hash; it is safe on a zeroed struct, after final and
 * twice.  Memory use is constant whatever the message size.  The fields
 * are private to msgid.c.
 */
struct body_hash {
	void		*ctx;		/* EVP_MD_CTX *, owned */
	int		 in_header;	/* still in the header block */
	int		 hdr_bol;	/* header: at the start of a line */
	int		 hdr_cr;	/* header: CR opened the line */
	int		 cr_pending;	/* body: CR, maybe LF next */
	int		 line_open;	/* body: line has content */
	int		 failed;	/* an EVP call failed; final fails */
	unsigned long long blank_lines;	/* body: empty lines held back */
	size_t		 buflen;
	unsigned char	 buf[512];	/* batches small writes to EVP */
};

int	msgid_normalise(const char *value, size_t len, char *out,
	    size_t outlen);
int	msgid_from_header_block(const char *hdrs, size_t len, char *out,
	    size_t outlen);
int	msg_ident_from_headers(const char *hdrs, size_t len,
	    struct msg_ident *id);

int	body_hash_init(struct body_hash *bh);
int	body_hash_update(struct body_hash *bh, const void *data, size_t len);
int	body_hash_final(struct body_hash *bh,
	    unsigned char out[BODY_HASH_LEN]);
void	body_hash_free(struct body_hash *bh);
void	body_hash_hex(const unsigned char sha[BODY_HASH_LEN],
	    char out[MSGKEY_HEXSIZE]);

int	addr_canonical(const char *addr, char *out, size_t outlen);

int	msgkey_relay(const char *norm_msgid, const char *mail_from,
	    const char *const *rcpts, size_t nrcpt,
	    const unsigned char body_sha[BODY_HASH_LEN],
	    unsigned char out[MSGKEY_LEN]);
int	msgkey_ledger(const char *mailbox, const struct msg_ident *id,
	    const unsigned char body_sha[BODY_HASH_LEN],
	    unsigned char out[MSGKEY_LEN]);
void	msgkey_hex(const unsigned char key[MSGKEY_LEN],
	    char out[MSGKEY_HEXSIZE]);

#endif
