/*
 * msgid.c - Message-ID normalisation, body hash and message keys.
 *
 * The relay computes a relay key per message and a ledger key per
 * recipient; syncd computes the ledger key of an IMAP copy and looks it
 * up before it copies (DESIGN.md §4).  Both sides must agree byte for
 * byte, so every rule here is deterministic and spelled out in msgid.h;
 * leniency is fine (a strange Message-ID still yields some key) as long
 * as the same input always yields the same output.
 *
 * SECURITY: every input is attacker-controlled header or body bytes.
 * Parsers never read past the given length, never write past the given
 * buffer, reject NUL and control bytes in ids and bound ids to 998
 * bytes.  The body hash keeps constant state (a counter of held-back
 * empty lines, a 512-byte batch buffer), whatever the message size.
 * Keys hash length-prefixed fields under a version tag, so no two
 * different inputs can meet by concatenation.
 *
 * Ownership and threading: no global state; struct body_hash owns its
 * EVP_MD_CTX (see msgid.h).  msgkey_relay() allocates a scratch copy
 * of the recipients and frees it before returning.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "msgid.h"

#define RELAY_TAG	"mailferry-relay-v1"
#define LEDGER_TAG	"mailferry-ledger-v1"
#define LEDGER_MSGID	"msgid"
#define LEDGER_DATEFROM	"date-from"

/* Longest mailbox the ledger key accepts (RFC 5321 path is 256). */
#define MAILBOX_MAX	998

/* A field of a header block: name and raw value, CRLFs included. */
struct hdr_field {
	const char	*name;
	size_t		 namelen;
	const char	*val;
	size_t		 vallen;
};

/* A Message-ID under construction, without its brackets. */
struct idbuf {
	char	b[MSGID_MAXLEN];
	size_t	n;
	int	overflow;
};

/* The hashed input of a key. */
struct keyhash {
	EVP_MD_CTX	*ctx;
	int		 failed;
};

static int
is_cfws_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static unsigned char
ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* is_ctl - a control byte: never valid in an id or an address */
static int
is_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

/* id_put - append one byte, noting overflow instead of writing past */
static void
id_put(struct idbuf *ib, char c)
{
	/* Room for the two brackets added at the end. */
	if (ib->n >= MSGID_MAXLEN - 2) {
		ib->overflow = 1;
		return;
	}
	ib->b[ib->n++] = c;
}

/* skip_comment - step over a (possibly nested) comment at v[*pos] == '(' */
static void
skip_comment(const char *v, size_t len, size_t *pos)
{
	size_t i = *pos;
	size_t depth = 0;

	while (i < len) {
		char c = v[i];

		if (c == '\\') {	/* quoted-pair: next byte is literal */
			i += 2;
			continue;
		}
		if (c == '(')
			depth++;
		else if (c == ')' && --depth == 0) {
			i++;
			break;
		}
		i++;
	}
	/* An unterminated comment runs to the end of the field. */
	*pos = i > len ? len : i;
}

/* skip_cfws - step over whitespace, folding and comments */
static void
skip_cfws(const char *v, size_t len, size_t *pos)
{
	while (*pos < len) {
		unsigned char c = (unsigned char)v[*pos];

		if (is_cfws_space(c))
			(*pos)++;
		else if (c == '(')
			skip_comment(v, len, pos);
		else
			break;
	}
}

/*
 * copy_quoted - copy a quoted-string at v[*pos] == '"' verbatim
 *
 * Quotes and quoted-pairs are kept as they are: the local part is the
 * sender's and we must not reinterpret it.  CR and LF are folding and
 * are dropped.  Returns 1 when the closing quote was found.
 *
 * A quote that is never closed is an ordinary byte: only the '"' is
 * copied and *pos moves past it, so the caller goes on with the bytes
 * after it (the closing '>' included).  Letting it run to the end of the
 * field instead swallowed that '>' and put it into the id, so "<a@b">"
 * became "<a@b">>", which became "<a@b">>>": no fixed point, and the
 * key of a message would depend on how often its id had been through
 * here.
 */
static int
copy_quoted(const char *v, size_t len, size_t *pos, struct idbuf *ib)
{
	size_t i = *pos + 1;
	size_t mark = ib->n;
	int overflow = ib->overflow;

	id_put(ib, '"');
	while (i < len) {
		char c = v[i];

		if (c == '\r' || c == '\n') {
			i++;
		} else if (c == '\\' && i + 1 < len) {
			/* A backslash before folding escapes nothing. */
			if (v[i + 1] == '\r' || v[i + 1] == '\n') {
				i++;
				continue;
			}
			id_put(ib, c);
			id_put(ib, v[i + 1]);
			i += 2;
		} else if (c == '"') {
			id_put(ib, c);
			*pos = i + 1;
			return 1;
		} else {
			id_put(ib, c);
			i++;
		}
	}
	/* Unterminated: undo all but the quote itself. */
	ib->n = mark;
	ib->overflow = overflow;
	id_put(ib, '"');
	*pos = *pos + 1;
	return 0;
}

/*
 * parse_bare - an id written without brackets, from v[*pos]
 *
 * The token ends at whitespace, a comment, a '<' or a '>' (which is
 * consumed), so "a@b>" (lost opening bracket) means "<a@b>" and a
 * stray ">" is an empty token.
 */
static void
parse_bare(const char *v, size_t len, size_t *pos, struct idbuf *ib)
{
	size_t i = *pos;

	while (i < len) {
		unsigned char c = (unsigned char)v[i];

		if (is_cfws_space(c) || c == '(' || c == '<')
			break;
		if (c == '>') {
			i++;
			break;
		}
		if (c == '"')
			(void)copy_quoted(v, len, &i, ib);
		else {
			id_put(ib, (char)c);
			i++;
		}
	}
	*pos = i;
}

/*
 * parse_angle - an id in brackets, from v[*pos] == '<'
 *
 * Inside the brackets whitespace, folding and comments are dropped (the
 * obsolete syntax of RFC 5322 §4.5.4 allows CFWS there, and long ids are
 * folded in the wild).  A second '<' starts over, so "<<a@b>>" is
 * "<a@b>".  Without a closing '>' the id is the bare token after the
 * last '<': "<a@b c@d" is "<a@b>".
 */
static void
parse_angle(const char *v, size_t len, size_t *pos, struct idbuf *ib)
{
	size_t i = *pos + 1;
	size_t start = i;

	ib->n = 0;
	while (i < len) {
		unsigned char c = (unsigned char)v[i];

		if (c == '>') {
			*pos = i + 1;
			return;
		}
		if (c == '<') {
			ib->n = 0;
			ib->overflow = 0;
			start = ++i;
		} else if (is_cfws_space(c))
			i++;
		else if (c == '(')
			skip_comment(v, len, &i);
		else if (c == '"')
			(void)copy_quoted(v, len, &i, ib);
		else {
			id_put(ib, (char)c);
			i++;
		}
	}
	/* No closing bracket: fall back to the bare token. */
	ib->n = 0;
	ib->overflow = 0;
	*pos = start;
	parse_bare(v, len, pos, ib);
}

/* lower_domain - lower-case after the last '@' outside a quoted string */
static void
lower_domain(char *s, size_t n)
{
	size_t i, at = n;
	int inq = 0;

	for (i = 0; i < n; i++) {
		if (inq && s[i] == '\\')
			i++;
		else if (s[i] == '"')
			inq = !inq;
		else if (!inq && s[i] == '@')
			at = i;
	}
	for (i = at; i < n; i++)
		s[i] = (char)ascii_lower((unsigned char)s[i]);
}

/*
 * msgid_normalise - canonical "<local@domain>" from a Message-ID value
 *
 * value is the raw field body (after the colon), possibly folded.  The
 * first usable msg-id wins; empty ones ("<>") are skipped, anything
 * after the id is ignored.  Returns the length written to out (NUL
 * terminated), or -1: no id, a NUL or control byte anywhere in the
 * value, an id longer than MSGID_MAXLEN, or out too small.
 */
int
msgid_normalise(const char *value, size_t len, char *out, size_t outlen)
{
	struct idbuf ib;
	size_t i, pos = 0;

	if (value == NULL || out == NULL)
		return -1;
	for (i = 0; i < len; i++)
		if (is_ctl((unsigned char)value[i]))
			return -1;

	for (;;) {
		skip_cfws(value, len, &pos);
		if (pos >= len)
			return -1;
		ib.n = 0;
		ib.overflow = 0;
		if (value[pos] == '<')
			parse_angle(value, len, &pos, &ib);
		else
			parse_bare(value, len, &pos, &ib);
		if (ib.overflow)
			return -1;
		if (ib.n > 0)
			break;
	}

	lower_domain(ib.b, ib.n);
	if (ib.n + 3 > outlen)
		return -1;
	out[0] = '<';
	memcpy(out + 1, ib.b, ib.n);
	out[ib.n + 1] = '>';
	out[ib.n + 2] = '\0';
	return (int)(ib.n + 2);
}

/* is_ftext - a byte allowed in a header field name (RFC 5322 §3.6.8) */
static int
is_ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

/* line_end - index just after the LF ending the line at pos, or len */
static size_t
line_end(const char *h, size_t len, size_t pos)
{
	const char *nl = memchr(h + pos, '\n', len - pos);

	return nl == NULL ? len : (size_t)(nl - h) + 1;
}

/*
 * hdr_next - the next field of a header block
 *
 * Continuation lines (starting with SP or HT) belong to the field above.
 * Lines that are not "name:" fields (an mbox "From " line, junk) are
 * skipped.  The block ends at the first empty line, CRLF or LF, which
 * is the same boundary body_hash uses.  Returns 1 with *f filled, or 0
 * at the end of the header block.
 */
static int
hdr_next(const char *h, size_t len, size_t *posp, struct hdr_field *f)
{
	size_t pos = *posp;

	for (;;) {
		size_t start, end, i, vend;

		if (pos >= len || h[pos] == '\n')
			return 0;
		if (h[pos] == '\r' && (pos + 1 >= len || h[pos + 1] == '\n'))
			return 0;

		start = pos;
		end = line_end(h, len, pos);
		while (end < len && (h[end] == ' ' || h[end] == '\t'))
			end = line_end(h, len, end);
		pos = end;
		*posp = end;

		for (i = start; i < end && is_ftext((unsigned char)h[i]); i++)
			;
		f->name = h + start;
		f->namelen = i - start;
		/* RFC 5322 §4.5 obsolete syntax: WSP before the colon. */
		while (i < end && (h[i] == ' ' || h[i] == '\t'))
			i++;
		if (f->namelen == 0 || i >= end || h[i] != ':')
			continue;

		vend = end;
		if (vend > i + 1 && h[vend - 1] == '\n')
			vend--;
		if (vend > i + 1 && h[vend - 1] == '\r')
			vend--;
		f->val = h + i + 1;
		f->vallen = vend - (i + 1);
		return 1;
	}
}

/* name_is - case-insensitive comparison of a field name */
static int
name_is(const struct hdr_field *f, const char *name)
{
	size_t i, n = strlen(name);

	if (f->namelen != n)
		return 0;
	for (i = 0; i < n; i++)
		if (ascii_lower((unsigned char)f->name[i]) !=
		    ascii_lower((unsigned char)name[i]))
			return 0;
	return 1;
}

/*
 * collapse - unfold a raw value and collapse whitespace runs
 *
 * CR, LF, HT, SP and other control bytes all count as whitespace; runs
 * become one SP, ends are trimmed.  Output is cut at outsz - 1 bytes.
 */
static void
collapse(const char *v, size_t n, char *out, size_t outsz)
{
	size_t i, o = 0;
	int sp = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c <= 0x20) {
			sp = 1;
			continue;
		}
		if (sp && o > 0) {
			if (o + 2 >= outsz)
				break;
			out[o++] = ' ';
		}
		sp = 0;
		if (o + 1 >= outsz)
			break;
		out[o++] = (char)c;
	}
	out[o] = '\0';
}

/*
 * msgid_from_header_block - the canonical Message-ID of a header block
 *
 * hdrs may be the header block alone or the whole message: scanning
 * stops at the first empty line.  With several Message-ID fields the
 * first one that normalises wins.  Returns as msgid_normalise().
 */
int
msgid_from_header_block(const char *hdrs, size_t len, char *out,
    size_t outlen)
{
	struct hdr_field f;
	size_t pos = 0;
	int r;

	if (hdrs == NULL || out == NULL)
		return -1;
	while (hdr_next(hdrs, len, &pos, &f)) {
		if (!name_is(&f, "Message-ID"))
			continue;
		r = msgid_normalise(f.val, f.vallen, out, outlen);
		if (r >= 0)
			return r;
	}
	return -1;
}

/*
 * msg_ident_from_headers - Message-ID, Date and From of a header block
 *
 * The first Message-ID that normalises, the first Date and the first
 * From (unfolded, whitespace collapsed, cut at MSG_IDENT_FIELD_MAXLEN).
 * Missing fields are left empty; that is not an error.  Returns 0, or
 * -1 on NULL arguments.
 */
int
msg_ident_from_headers(const char *hdrs, size_t len, struct msg_ident *id)
{
	struct hdr_field f;
	size_t pos = 0;
	int have_date = 0, have_from = 0;

	if (hdrs == NULL || id == NULL)
		return -1;
	memset(id, 0, sizeof(*id));
	while (hdr_next(hdrs, len, &pos, &f)) {
		if (!id->has_msgid && name_is(&f, "Message-ID")) {
			if (msgid_normalise(f.val, f.vallen, id->msgid,
			    sizeof(id->msgid)) >= 0)
				id->has_msgid = 1;
			else
				id->msgid[0] = '\0';
		} else if (!have_date && name_is(&f, "Date")) {
			collapse(f.val, f.vallen, id->date, sizeof(id->date));
			have_date = 1;
		} else if (!have_from && name_is(&f, "From")) {
			collapse(f.val, f.vallen, id->from, sizeof(id->from));
			have_from = 1;
		}
	}
	return 0;
}

/* bh_flush - hand the batch buffer to the digest */
static void
bh_flush(struct body_hash *bh)
{
	if (bh->buflen == 0)
		return;
	if (EVP_DigestUpdate(bh->ctx, bh->buf, bh->buflen) != 1)
		bh->failed = 1;
	bh->buflen = 0;
}

/* bh_put - add canonical bytes, batching small writes */
static void
bh_put(struct body_hash *bh, const void *p, size_t n)
{
	if (bh->buflen + n > sizeof(bh->buf))
		bh_flush(bh);
	if (n >= sizeof(bh->buf)) {
		if (EVP_DigestUpdate(bh->ctx, p, n) != 1)
			bh->failed = 1;
		return;
	}
	memcpy(bh->buf + bh->buflen, p, n);
	bh->buflen += n;
}

/* bh_content - body bytes of a line: first release held-back empty lines */
static void
bh_content(struct body_hash *bh, const void *p, size_t n)
{
	for (; bh->blank_lines > 0; bh->blank_lines--)
		bh_put(bh, "\r\n", 2);
	bh_put(bh, p, n);
	bh->line_open = 1;
}

/*
 * bh_eol - a line ended
 *
 * A line with content is finished at once; an empty line is only
 * counted, since it is dropped if nothing but empty lines follows.
 */
static void
bh_eol(struct body_hash *bh)
{
	if (bh->line_open) {
		bh_put(bh, "\r\n", 2);
		bh->line_open = 0;
	} else
		bh->blank_lines++;
}

/*
 * body_hash_init - start hashing a message
 *
 * Returns 0, or -1 when OpenSSL cannot allocate or set up SHA-256.
 */
int
body_hash_init(struct body_hash *bh)
{
	EVP_MD_CTX *ctx;

	if (bh == NULL)
		return -1;
	memset(bh, 0, sizeof(*bh));
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return -1;
	}
	bh->ctx = ctx;
	bh->in_header = 1;
	bh->hdr_bol = 1;
	return 0;
}

/* bh_skip_header - consume header bytes; returns bytes used */
static size_t
bh_skip_header(struct body_hash *bh, const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		const unsigned char *nl;

		if (bh->hdr_cr) {
			/* A CR opened the line: empty only if LF follows. */
			bh->hdr_cr = 0;
			if (c == '\n') {
				bh->in_header = 0;
				return i + 1;
			}
			bh->hdr_bol = 0;
			continue;	/* look at c again, mid-line */
		}
		if (bh->hdr_bol) {
			if (c == '\n') {
				bh->in_header = 0;
				return i + 1;
			}
			if (c == '\r') {
				bh->hdr_cr = 1;
				i++;
				continue;
			}
		}
		nl = memchr(p + i, '\n', len - i);
		if (nl == NULL) {
			bh->hdr_bol = 0;
			return len;
		}
		i = (size_t)(nl - p) + 1;
		bh->hdr_bol = 1;
	}
	return len;
}

/*
 * body_hash_update - feed the next chunk of the raw message
 *
 * Chunks may split the message anywhere, even between CR and LF.  Feed
 * the message as delivered: after SMTP dot-unstuffing, without the
 * final ".".  Returns 0, or -1 if the hash is not initialised, already
 * finished or failed.
 */
int
body_hash_update(struct body_hash *bh, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i = 0;

	if (bh == NULL || bh->ctx == NULL || bh->failed ||
	    (data == NULL && len > 0))
		return -1;
	if (bh->in_header)
		i = bh_skip_header(bh, p, len);

	while (i < len) {
		unsigned char c = p[i];
		size_t j;

		if (bh->cr_pending) {
			bh->cr_pending = 0;
			if (c == '\n') {
				bh_eol(bh);
				i++;
				continue;
			}
			/* A bare CR is content, not a line end. */
			bh_content(bh, "\r", 1);
			continue;	/* look at c again */
		}
		if (c == '\r') {
			bh->cr_pending = 1;
			i++;
			continue;
		}
		if (c == '\n') {
			bh_eol(bh);
			i++;
			continue;
		}
		for (j = i; j < len && p[j] != '\r' && p[j] != '\n'; j++)
			;
		bh_content(bh, p + i, j - i);
		i = j;
	}
	return bh->failed ? -1 : 0;
}

/*
 * body_hash_final - finish: 32 raw bytes of SHA-256 of the canonical body
 *
 * Held-back trailing empty lines are dropped; an unterminated last line
 * gets its CRLF.  The EVP context is released whatever the outcome.
 * Returns 0, or -1 (not initialised, already finished, EVP failure).
 */
int
body_hash_final(struct body_hash *bh, unsigned char out[BODY_HASH_LEN])
{
	unsigned int mdlen = 0;
	int ok;

	if (bh == NULL || bh->ctx == NULL || out == NULL)
		return -1;
	if (bh->cr_pending) {
		bh->cr_pending = 0;
		bh_content(bh, "\r", 1);
	}
	if (bh->line_open) {
		bh_put(bh, "\r\n", 2);
		bh->line_open = 0;
	}
	bh_flush(bh);
	ok = !bh->failed &&
	    EVP_DigestFinal_ex(bh->ctx, out, &mdlen) == 1 &&
	    mdlen == BODY_HASH_LEN;
	body_hash_free(bh);
	return ok ? 0 : -1;
}

/* body_hash_free - release the EVP context; safe on NULL, zeroed, twice */
void
body_hash_free(struct body_hash *bh)
{
	if (bh == NULL)
		return;
	EVP_MD_CTX_free(bh->ctx);
	bh->ctx = NULL;
}

/* hex32 - lower-case hex of 32 bytes */
static void
hex32(const unsigned char in[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[64] = '\0';
}

/* body_hash_hex - lower-case hex of a body hash */
void
body_hash_hex(const unsigned char sha[BODY_HASH_LEN],
    char out[MSGKEY_HEXSIZE])
{
	hex32(sha, out);
}

/* msgkey_hex - lower-case hex of a message key */
void
msgkey_hex(const unsigned char key[MSGKEY_LEN], char out[MSGKEY_HEXSIZE])
{
	hex32(key, out);
}

/*
 * addr_canonical - an address as keys see it
 *
 * Surrounding whitespace and one pair of <> are stripped ("<>" gives
 * "", the null sender); the domain, after the last '@' outside a quoted
 * local part, is lower-cased; the local part is kept.  Returns the
 * length written (NUL terminated), or -1: NULL, a control byte, a lone
 * bracket, or out too small.
 */
int
addr_canonical(const char *addr, char *out, size_t outlen)
{
	size_t b, e, n, i;

	if (addr == NULL || out == NULL)
		return -1;
	b = 0;
	e = strlen(addr);
	while (b < e && (addr[b] == ' ' || addr[b] == '\t'))
		b++;
	while (e > b && (addr[e - 1] == ' ' || addr[e - 1] == '\t'))
		e--;
	if (e > b && addr[b] == '<') {
		if (e - b < 2 || addr[e - 1] != '>')
			return -1;
		b++;
		e--;
	} else if (e > b && addr[e - 1] == '>')
		return -1;

	n = e - b;
	for (i = b; i < e; i++)
		if ((unsigned char)addr[i] < 0x20 ||
		    (unsigned char)addr[i] == 0x7f)
			return -1;
	if (n + 1 > outlen)
		return -1;
	memcpy(out, addr + b, n);
	out[n] = '\0';
	lower_domain(out, n);
	return (int)n;
}

/* kh_init - start a key hash */
static int
kh_init(struct keyhash *kh)
{
	kh->failed = 0;
	if ((kh->ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestInit_ex(kh->ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(kh->ctx);
		kh->ctx = NULL;
		return -1;
	}
	return 0;
}

/* kh_u64 - a 64-bit big-endian integer */
static void
kh_u64(struct keyhash *kh, uint64_t v)
{
	unsigned char b[8];
	int i;

	for (i = 7; i >= 0; i--) {
		b[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
	if (EVP_DigestUpdate(kh->ctx, b, sizeof(b)) != 1)
		kh->failed = 1;
}

/*
 * kh_field - one field: its length, then its bytes
 *
 * The length prefix is what makes ("a", "bc") and ("ab", "c") hash to
 * different keys.
 */
static void
kh_field(struct keyhash *kh, const void *p, size_t n)
{
	kh_u64(kh, (uint64_t)n);
	if (n > 0 && EVP_DigestUpdate(kh->ctx, p, n) != 1)
		kh->failed = 1;
}

static void
kh_str(struct keyhash *kh, const char *s)
{
	kh_field(kh, s, strlen(s));
}

/* kh_final - finish into out and release; 0 or -1 */
static int
kh_final(struct keyhash *kh, unsigned char out[MSGKEY_LEN])
{
	unsigned int mdlen = 0;
	int ok;

	ok = !kh->failed && EVP_DigestFinal_ex(kh->ctx, out, &mdlen) == 1 &&
	    mdlen == MSGKEY_LEN;
	EVP_MD_CTX_free(kh->ctx);
	kh->ctx = NULL;
	return ok ? 0 : -1;
}

static int
cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * msgkey_relay - the relay key: (Message-ID, MAIL FROM, RCPT set, body)
 *
 * norm_msgid is a canonical id or "" (NULL is taken as ""); mail_from is
 * hashed as given ("" for <>).  Recipients go through addr_canonical(),
 * then are sorted and de-duplicated here, so RCPT order and repeats do
 * not matter.  Hashed: tag, msgid, mail_from, count, each recipient, body
 * hash, every field length-prefixed.  Returns 0, or -1: a bad recipient,
 * out of memory, EVP failure.
 */
int
msgkey_relay(const char *norm_msgid, const char *mail_from,
    const char *const *rcpts, size_t nrcpt,
    const unsigned char body_sha[BODY_HASH_LEN],
    unsigned char out[MSGKEY_LEN])
{
	struct keyhash kh;
	char **sorted = NULL, *strs = NULL;
	size_t i, total, nuniq;
	int r = -1;

	if ((rcpts == NULL && nrcpt > 0) || body_sha == NULL || out == NULL)
		return -1;
	if (norm_msgid == NULL)
		norm_msgid = "";
	if (mail_from == NULL)
		mail_from = "";

	/* One block: the pointer array, then the canonical strings. */
	if (nrcpt > SIZE_MAX / sizeof(char *))
		return -1;
	total = nrcpt * sizeof(char *);
	for (i = 0; i < nrcpt; i++) {
		size_t n;

		if (rcpts[i] == NULL)
			return -1;
		n = strlen(rcpts[i]) + 1;
		if (total > SIZE_MAX - n)
			return -1;
		total += n;
	}
	if (nrcpt > 0) {
		if ((sorted = malloc(total)) == NULL)
			return -1;
		strs = (char *)(sorted + nrcpt);
	}
	for (i = 0; i < nrcpt; i++) {
		size_t room = strlen(rcpts[i]) + 1;
		int n = addr_canonical(rcpts[i], strs, room);

		if (n < 0)
			goto out;
		sorted[i] = strs;
		strs += (size_t)n + 1;
	}
	if (nrcpt > 1)
		qsort(sorted, nrcpt, sizeof(*sorted), cmp_strp);
	nuniq = 0;
	for (i = 0; i < nrcpt; i++)
		if (nuniq == 0 || strcmp(sorted[nuniq - 1], sorted[i]) != 0)
			sorted[nuniq++] = sorted[i];

	if (kh_init(&kh) == -1)
		goto out;
	kh_str(&kh, RELAY_TAG);
	kh_str(&kh, norm_msgid);
	kh_str(&kh, mail_from);
	kh_u64(&kh, (uint64_t)nuniq);
	for (i = 0; i < nuniq; i++)
		kh_str(&kh, sorted[i]);
	kh_field(&kh, body_sha, BODY_HASH_LEN);
	r = kh_final(&kh, out);
out:
	free(sorted);
	return r;
}

/*
 * msgkey_ledger - the ledger key: (mailbox, Message-ID, body) or, when
 * the message has no Message-ID, (mailbox, Date, From, body)
 *
 * The mailbox is case-folded as a whole, not just its domain: the relay
 * knows it as the sender typed it in RCPT TO, syncd as the account list
 * spells it, and a mismatch there would copy a duplicate.  Two mailboxes
 * that differ only in case are, in practice, one mailbox.  The two
 * variants hash different tags, so an id can never meet a Date/From
 * pair.  Returns 0, or -1: bad mailbox, NULL argument, EVP failure.
 */
int
msgkey_ledger(const char *mailbox, const struct msg_ident *id,
    const unsigned char body_sha[BODY_HASH_LEN],
    unsigned char out[MSGKEY_LEN])
{
	struct keyhash kh;
	char mb[MAILBOX_MAX + 1];
	int i, n;

	if (id == NULL || body_sha == NULL || out == NULL)
		return -1;
	if ((n = addr_canonical(mailbox, mb, sizeof(mb))) < 0)
		return -1;
	for (i = 0; i < n; i++)
		mb[i] = (char)ascii_lower((unsigned char)mb[i]);

	if (kh_init(&kh) == -1)
		return -1;
	kh_str(&kh, LEDGER_TAG);
	if (id->has_msgid && id->msgid[0] != '\0') {
		kh_str(&kh, LEDGER_MSGID);
		kh_field(&kh, mb, (size_t)n);
		kh_field(&kh, id->msgid, strnlen(id->msgid,
		    sizeof(id->msgid)));
	} else {
		kh_str(&kh, LEDGER_DATEFROM);
		kh_field(&kh, mb, (size_t)n);
		kh_field(&kh, id->date, strnlen(id->date, sizeof(id->date)));
		kh_field(&kh, id->from, strnlen(id->from, sizeof(id->from)));
	}
	kh_field(&kh, body_sha, BODY_HASH_LEN);
	return kh_final(&kh, out);
}
