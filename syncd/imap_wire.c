/*
 * imap_wire.c - the text of the IMAP protocol without a connection (see
 * imap_wire.h): what may be sent (validators, quoting, the choice of a
 * literal), how server words map to our constants (capabilities,
 * mailbox attributes, error classes), base64 for SASL.
 *
 * SECURITY: the validators are what keeps a caller's argument from
 * carrying CRLF and a second command; server text reaches results and
 * logs only through str_printable().
 *
 * Threading: pure functions and constant tables.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "imap_client.h"
#include "imap_wire.h"
#include "mutf7.h"
#include "utf8.h"
#include "util.h"

#define LITERAL_MINUS_MAX	4096	/* RFC 7888 */

static const struct {
	const char	*name;
	enum imap_cap	 cap;
} cap_names[] = {
	{ "IMAP4REV1", IMAP_CAP_IMAP4REV1 },
	{ "IMAP4REV2", IMAP_CAP_IMAP4REV2 },
	{ "STARTTLS", IMAP_CAP_STARTTLS },
	{ "LOGINDISABLED", IMAP_CAP_LOGINDISABLED },
	{ "AUTH=PLAIN", IMAP_CAP_AUTH_PLAIN },
	{ "AUTH=XOAUTH2", IMAP_CAP_AUTH_XOAUTH2 },
	{ "SASL-IR", IMAP_CAP_SASL_IR },
	{ "LITERAL+", IMAP_CAP_LITERAL_PLUS },
	{ "LITERAL-", IMAP_CAP_LITERAL_MINUS },
	{ "MULTIAPPEND", IMAP_CAP_MULTIAPPEND },
	{ "UIDPLUS", IMAP_CAP_UIDPLUS },
	{ "CONDSTORE", IMAP_CAP_CONDSTORE },
	{ "QRESYNC", IMAP_CAP_QRESYNC },
	{ "ENABLE", IMAP_CAP_ENABLE },
	{ "SPECIAL-USE", IMAP_CAP_SPECIAL_USE },
	{ "CREATE-SPECIAL-USE", IMAP_CAP_CREATE_SPECIAL_USE },
	{ "LIST-EXTENDED", IMAP_CAP_LIST_EXTENDED },
	{ "LIST-STATUS", IMAP_CAP_LIST_STATUS },
	{ "ID", IMAP_CAP_ID },
	{ "COMPRESS=DEFLATE", IMAP_CAP_COMPRESS_DEFLATE },
	{ "UTF8=ACCEPT", IMAP_CAP_UTF8_ACCEPT },
	{ "NAMESPACE", IMAP_CAP_NAMESPACE },
	{ "APPENDLIMIT", IMAP_CAP_APPENDLIMIT },
	{ "ESEARCH", IMAP_CAP_ESEARCH },
	{ "MOVE", IMAP_CAP_MOVE },
	{ "UNSELECT", IMAP_CAP_UNSELECT },
	{ "IDLE", IMAP_CAP_IDLE },
	{ "STATUS=SIZE", IMAP_CAP_STATUS_SIZE },
	{ "OBJECTID", IMAP_CAP_OBJECTID },
	{ "BINARY", IMAP_CAP_BINARY },
};

static const struct {
	const char	*name;
	unsigned	 bit;
} mbox_attrs[] = {
	{ "\\NOSELECT", IMAP_MBOX_NOSELECT },
	{ "\\NONEXISTENT", IMAP_MBOX_NONEXISTENT | IMAP_MBOX_NOSELECT },
	{ "\\NOINFERIORS", IMAP_MBOX_NOINFERIORS },
	{ "\\HASCHILDREN", IMAP_MBOX_HASCHILDREN },
	{ "\\HASNOCHILDREN", IMAP_MBOX_HASNOCHILDREN },
	{ "\\SUBSCRIBED", IMAP_MBOX_SUBSCRIBED },
	{ "\\MARKED", IMAP_MBOX_MARKED },
	{ "\\REMOTE", IMAP_MBOX_REMOTE },
	{ "\\ALL", IMAP_MBOX_ALL },
	{ "\\ARCHIVE", IMAP_MBOX_ARCHIVE },
	{ "\\DRAFTS", IMAP_MBOX_DRAFTS },
	{ "\\FLAGGED", IMAP_MBOX_FLAGGED },
	{ "\\JUNK", IMAP_MBOX_JUNK },
	{ "\\SENT", IMAP_MBOX_SENT },
	{ "\\TRASH", IMAP_MBOX_TRASH },
	{ "\\IMPORTANT", IMAP_MBOX_IMPORTANT },
};

/* imap_wire_sappend - append to a NUL-terminated buffer, truncating safely */
void
imap_wire_sappend(char *buf, size_t len, const char *fmt, ...)
{
	size_t o = strlen(buf);
	va_list ap;

	if (o + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + o, len - o, fmt, ap);
	va_end(ap);
}

const char *
imap_status_name(enum imap_status st)
{
	switch (st) {
	case IMAP_OK:
		return ("OK");
	case IMAP_NO:
		return ("NO");
	case IMAP_BAD:
		return ("BAD");
	case IMAP_ERROR:
		return ("ERROR");
	case IMAP_CANCELLED:
		return ("CANCELLED");
	}
	return ("?");
}

const char *
imap_errclass_name(enum imap_errclass cl)
{
	switch (cl) {
	case IMAP_ERR_NONE:
		return ("none");
	case IMAP_ERR_TEMP:
		return ("temporary");
	case IMAP_ERR_PERM:
		return ("permanent");
	case IMAP_ERR_AUTH:
		return ("auth");
	}
	return ("?");
}

/*
 * imap_backoff_from_text - Microsoft 365 says "Request is throttled.
 * Suggested Backoff Time: 299609 milliseconds"; take the number.
 */
uint64_t
imap_backoff_from_text(const char *text)
{
	static const char key[] = "suggested backoff time:";
	const char *p;
	uint64_t v = 0;

	if (text == NULL)
		return (0);
	for (p = text; *p != '\0'; p++)
		if (strncasecmp(p, key, sizeof(key) - 1) == 0)
			break;
	if (*p == '\0')
		return (0);
	p += sizeof(key) - 1;
	while (*p == ' ')
		p++;
	if (*p < '0' || *p > '9')
		return (0);
	while (*p >= '0' && *p <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return (0);
		v = v * 10 + (uint64_t)(*p++ - '0');
	}
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "milliseconds", 12) == 0 || strncasecmp(p, "ms", 2)
	    == 0)
		return (v);
	if (strncasecmp(p, "seconds", 7) == 0 && v <= UINT64_MAX / 1000)
		return (v * 1000);
	return (v);
}

/* is_atom_char - ATOM-CHAR of RFC 3501 (no specials, no wildcards) */
static int
is_atom_char(unsigned char c)
{
	return (c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' &&
	    c != '%' && c != '*' && c != '"' && c != '\\' && c != ']');
}

int
imap_flag_settable(const char *flag)
{
	static const char *const sys[] = {
		"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft",
	};
	const char *p;
	size_t i;

	if (flag == NULL || *flag == '\0')
		return (0);
	if (*flag == '\\') {
		for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
			if (strcasecmp(flag, sys[i]) == 0)
				return (1);
		return (0);
	}
	if (strlen(flag) > 1000)
		return (0);
	for (p = flag; *p != '\0'; p++)
		if (!is_atom_char((unsigned char)*p))
			return (0);
	return (1);
}

char *
imap_flags_join_settable(const struct imap_strv *fl)
{
	size_t i, len = 1;
	char *s;

	for (i = 0; i < fl->n; i++)
		len += strlen(fl->v[i]) + 1;
	if ((s = malloc(len)) == NULL)
		return (NULL);
	s[0] = '\0';
	for (i = 0; i < fl->n; i++) {
		if (!imap_flag_settable(fl->v[i]))
			continue;
		if (s[0])
			strcat(s, " ");
		strcat(s, fl->v[i]);
	}
	return (s);
}

/* imap_wire_flag_list_valid - space-separated settable flags, or empty */
int
imap_wire_flag_list_valid(const char *s, char *err, size_t errlen)
{
	char word[1024];
	size_t n;

	while (*s != '\0') {
		while (*s == ' ')
			s++;
		n = strcspn(s, " ");
		if (n == 0)
			break;
		if (n >= sizeof(word)) {
			errbuf_set(err, errlen, "flag too long");
			return (-1);
		}
		memcpy(word, s, n);
		word[n] = '\0';
		if (!imap_flag_settable(word)) {
			char shown[64];

			(void)str_printable(shown, sizeof(shown), word, n);
			errbuf_set(err, errlen, "flag \"%s\" cannot be set",
			    shown);
			return (-1);
		}
		s += n;
	}
	return (0);
}

/* imap_wire_text_valid - printable ASCII, 1..IMAP_WIRE_ARG_MAX bytes */
int
imap_wire_text_valid(const char *s)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return (0);
	for (; *s != '\0'; s++, n++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e ||
		    n >= IMAP_WIRE_ARG_MAX)
			return (0);
	return (1);
}

/* imap_wire_uidset_valid - digits, ":", ",", "*" only */
int
imap_wire_uidset_valid(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > IMAP_WIRE_ARG_MAX)
		return (0);
	return (strspn(s, "0123456789:,*") == strlen(s));
}

int
imap_wire_mailbox_valid(const char *m)
{
	return (m != NULL && *m != '\0' && strlen(m) <= IMAP_WIRE_ARG_MAX &&
	    strchr(m, '\r') == NULL && strchr(m, '\n') == NULL);
}

int
imap_wire_mailbox_eq(const char *a, const char *b)
{
	if (strcasecmp(a, "INBOX") == 0 && strcasecmp(b, "INBOX") == 0)
		return (1);
	return (strcmp(a, b) == 0);
}

/*
 * imap_wire_classify - the retry class of a failed command (see imap_client.h);
 * RFC 5530 codes first, then the texts throttling servers send.
 */
enum imap_errclass
imap_wire_classify(int auth_cmd, enum imap_status st, const char *code,
    const char *text)
{
	static const char *const temp_codes[] = {
		"UNAVAILABLE", "LIMIT", "INUSE", "SERVERBUG",
	};
	static const char *const auth_codes[] = {
		"AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED",
		"PRIVACYREQUIRED", "CONTACTADMIN",
	};
	static const char *const temp_texts[] = {
		"suggested backoff time", "throttl", "server unavailable",
		"try again later", "temporarily unavailable",
	};
	size_t i, j;

	if (st == IMAP_OK)
		return (IMAP_ERR_NONE);
	if (st == IMAP_CANCELLED)
		return (IMAP_ERR_TEMP);
	for (i = 0; i < sizeof(temp_codes) / sizeof(temp_codes[0]); i++)
		if (strcasecmp(code, temp_codes[i]) == 0)
			return (IMAP_ERR_TEMP);
	for (i = 0; i < sizeof(temp_texts) / sizeof(temp_texts[0]); i++)
		for (j = 0; text[j] != '\0'; j++)
			if (strncasecmp(text + j, temp_texts[i],
			    strlen(temp_texts[i])) == 0)
				return (IMAP_ERR_TEMP);
	for (i = 0; i < sizeof(auth_codes) / sizeof(auth_codes[0]); i++)
		if (strcasecmp(code, auth_codes[i]) == 0)
			return (IMAP_ERR_AUTH);
	if (auth_cmd)
		return (IMAP_ERR_AUTH);
	return (IMAP_ERR_PERM);
}

/* imap_wire_b64 - base64 of s[0..n) into a new string */
char *
imap_wire_b64(const void *s, size_t n)
{
	char *out;

	if (n > INT_MAX / 2 || (out = malloc(4 * ((n + 2) / 3) + 1)) == NULL)
		return (NULL);
	EVP_EncodeBlock((unsigned char *)out, s, (int)n);
	return (out);
}

/* imap_wire_unb64_text - a server challenge decoded for a message */
char *
imap_wire_unb64_text(const char *s, size_t n)
{
	unsigned char *raw;
	char *out;
	int len;

	if (n > INT_MAX / 2 || (raw = malloc(n / 4 * 3 + 4)) == NULL)
		return (NULL);
	len = EVP_DecodeBlock(raw, (const unsigned char *)s, (int)n);
	if (len < 0)
		len = 0;
	while (len > 0 && raw[len - 1] == '\0')	/* padding */
		len--;
	if ((out = malloc(IMAP_WIRE_TEXT_MAX)) != NULL)
		(void)str_printable(out, IMAP_WIRE_TEXT_MAX, (const char *)raw,
		    (size_t)len);
	free(raw);
	return (out);
}

/* imap_wire_cap - the IMAP_CAP_* of a capability name in upper case, or
 * -1 for one we have no bit for (APPENDLIMIT=n: see caps_set) */
int
imap_wire_cap(const char *name)
{
	size_t k;

	for (k = 0; k < sizeof(cap_names) / sizeof(cap_names[0]); k++)
		if (strcmp(name, cap_names[k].name) == 0)
			return ((int)cap_names[k].cap);
	return (-1);
}

/* imap_wire_mbox_attr - the IMAP_MBOX_* bits of a LIST attribute */
unsigned
imap_wire_mbox_attr(const char *attr)
{
	unsigned bits = 0;
	size_t k;

	for (k = 0; k < sizeof(mbox_attrs) / sizeof(mbox_attrs[0]); k++)
		if (strcasecmp(attr, mbox_attrs[k].name) == 0)
			bits |= mbox_attrs[k].bit;
	return (bits);
}

/*
 * imap_wire_nonsync_ok - may a literal of n bytes be sent without
 * waiting for "+"?  LITERAL+ up to max; LITERAL- (RFC 7888) up to 4096.
 */
int
imap_wire_nonsync_ok(uint64_t n, uint64_t max, int literal_plus,
    int literal_minus)
{
	if (n > max)
		return (0);
	if (literal_plus)
		return (1);
	return (literal_minus && n <= LITERAL_MINUS_MAX);
}

/*
 * imap_wire_quotable - s[0..len) can be a quoted string: no NUL, CR or
 * LF, and 7-bit unless utf8 (UTF8=ACCEPT), then valid UTF-8.
 */
int
imap_wire_quotable(const char *s, size_t len, int utf8)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\0' || ch == '\r' || ch == '\n' ||
		    (ch >= 0x80 && !utf8))
			return (0);
	}
	if (utf8 && !utf8_valid(s, len))
		return (0);
	return (1);
}

/* imap_wire_add_quoted - s as a quoted string, '"' and '\' escaped */
void
imap_wire_add_quoted(struct evbuffer *b, const char *s, size_t len)
{
	size_t i;

	evbuffer_add(b, "\"", 1);
	for (i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			evbuffer_add(b, "\\", 1);
		evbuffer_add(b, s + i, 1);
	}
	evbuffer_add(b, "\"", 1);
}

/*
 * imap_wire_status_items - the STATUS items of the mask the server can
 * give, as text ("MESSAGES UIDNEXT"): HIGHESTMODSEQ needs CONDSTORE,
 * SIZE needs STATUS=SIZE, APPENDLIMIT needs APPENDLIMIT.
 */
void
imap_wire_status_items(unsigned items, int condstore, int status_size,
    int appendlimit, char *buf, size_t len)
{
	buf[0] = '\0';
#define ITEM(bit, name, ok) \
	if ((items & (bit)) && (ok)) \
		imap_wire_sappend(buf, len, "%s%s", buf[0] ? " " : "", name)
	ITEM(IMAP_STATUS_MESSAGES, "MESSAGES", 1);
	ITEM(IMAP_STATUS_UIDNEXT, "UIDNEXT", 1);
	ITEM(IMAP_STATUS_UIDVALIDITY, "UIDVALIDITY", 1);
	ITEM(IMAP_STATUS_UNSEEN, "UNSEEN", 1);
	ITEM(IMAP_STATUS_HIGHESTMODSEQ, "HIGHESTMODSEQ", condstore);
	ITEM(IMAP_STATUS_SIZE, "SIZE", status_size);
	ITEM(IMAP_STATUS_APPENDLIMIT, "APPENDLIMIT", appendlimit);
#undef ITEM
}

/*
 * imap_wire_mailbox_encode/_decode - UTF-8 <-> the wire form of a
 * mailbox name: modified UTF-7, or UTF-8 itself when utf8 (UTF8=ACCEPT
 * enabled).
 */
int
imap_wire_mailbox_encode(int utf8, const char *name, char *out,
    size_t outsize, char *err, size_t errlen)
{
	size_t n = strlen(name);

	if (utf8) {
		if (!utf8_valid(name, n) || memchr(name, '\r', n) ||
		    memchr(name, '\n', n)) {
			errbuf_set(err, errlen, "invalid UTF-8 mailbox name");
			return (-1);
		}
		if (n + 1 > outsize) {
			errbuf_set(err, errlen, "mailbox name too long");
			return (-1);
		}
		memcpy(out, name, n + 1);
		return (0);
	}
	return (mutf7_encode(name, n, out, outsize, NULL, err, errlen));
}

int
imap_wire_mailbox_decode(int utf8, const char *wire, char *out,
    size_t outsize, char *err, size_t errlen)
{
	size_t n = strlen(wire);

	if (utf8) {
		if (!utf8_valid(wire, n)) {
			errbuf_set(err, errlen, "invalid UTF-8 mailbox name");
			return (-1);
		}
		if (n + 1 > outsize) {
			errbuf_set(err, errlen, "mailbox name too long");
			return (-1);
		}
		memcpy(out, wire, n + 1);
		return (0);
	}
	return (mutf7_decode(wire, n, out, outsize, NULL, err, errlen));
}
