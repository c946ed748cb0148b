/*
 * smtp_parse.c - the SMTP command parser and the DATA state machine.
 *
 * Pure functions: no I/O, no allocation, no logging.  See smtp_parse.h
 * for the contracts; tests/fuzz/fuzz_smtp_parse.c fuzzes them.
 *
 * Exposure: this is the first code every client byte meets.  Lengths are
 * checked before anything is copied; addresses are checked against the
 * RFC 5321 §4.1.2 grammar (Dot-string or Quoted-string local part,
 * domain or address literal, optional source route which is dropped);
 * DATA accepts only <CR><LF>.<CR><LF> as its end and refuses any bare CR
 * or LF (SMTP smuggling, CVE-2023-51764 class) and any NUL (a hop that
 * drops NULs would see "<CR><LF><NUL>.<CR><LF>" as the end).
 *
 * Threading: none; reentrant.
 */

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_parse.h"
#include "utf8.h"

/* ---- replies the parser gives -------------------------------------------- */

#define R_TOO_LONG	"500 5.5.2 Line too long"
#define R_BAD_CHARS	"500 5.5.2 Invalid character in command"
#define R_UNKNOWN	"500 5.5.1 Command unrecognized"
#define R_NOT_IMPL	"502 5.5.1 Command not implemented"
#define R_MAIL_SYNTAX	"501 5.5.4 Syntax: MAIL FROM:<address>"
#define R_RCPT_SYNTAX	"501 5.5.4 Syntax: RCPT TO:<address>"
#define R_BAD_SENDER	"501 5.1.7 Bad sender address syntax"
#define R_BAD_RCPT	"501 5.1.3 Bad recipient address syntax"
#define R_SENDER_LONG	"501 5.1.7 Path too long"
#define R_RCPT_LONG	"501 5.1.3 Path too long"
#define R_NULL_RCPT	"501 5.1.3 Null recipient not allowed"
#define R_PARAM		"555 5.5.4 Unsupported parameter"
#define R_PARAM_SYNTAX	"501 5.5.4 Bad parameter syntax"
#define R_PARAM_DUP	"501 5.5.4 Duplicate parameter"
#define R_SIZE_SYNTAX	"501 5.5.4 Bad SIZE parameter"
#define R_BODY_SYNTAX	"501 5.5.4 Bad BODY parameter"
#define R_NEED_UTF8	"553 5.6.7 Non-ASCII address requires SMTPUTF8"

/* ---- verbs ---------------------------------------------------------------- */

enum argkind {
	ARG_NONE,	/* nothing may follow */
	ARG_ANY,	/* optional, kept */
	ARG_REQ,	/* required, kept */
	ARG_HOST,	/* HELO/EHLO: one required token */
	ARG_PATH,	/* MAIL FROM:/RCPT TO: */
};

static const struct {
	const char	*name;
	enum argkind	 arg;
	const char	*syntax;	/* reply when the argument is wrong */
} verbs[SMTP_CMD_NVERBS] = {
	[SMTP_CMD_HELO] = { "HELO", ARG_HOST, "501 5.5.4 Syntax: HELO hostname" },
	[SMTP_CMD_EHLO] = { "EHLO", ARG_HOST, "501 5.5.4 Syntax: EHLO hostname" },
	[SMTP_CMD_MAIL] = { "MAIL", ARG_PATH, R_MAIL_SYNTAX },
	[SMTP_CMD_RCPT] = { "RCPT", ARG_PATH, R_RCPT_SYNTAX },
	[SMTP_CMD_DATA] = { "DATA", ARG_NONE, "501 5.5.4 Syntax: DATA" },
	[SMTP_CMD_RSET] = { "RSET", ARG_NONE, "501 5.5.4 Syntax: RSET" },
	[SMTP_CMD_NOOP] = { "NOOP", ARG_ANY, NULL },
	[SMTP_CMD_QUIT] = { "QUIT", ARG_NONE, "501 5.5.4 Syntax: QUIT" },
	[SMTP_CMD_VRFY] = { "VRFY", ARG_REQ, "501 5.5.4 Syntax: VRFY address" },
	[SMTP_CMD_HELP] = { "HELP", ARG_ANY, NULL },
	[SMTP_CMD_STARTTLS] = { "STARTTLS", ARG_NONE,
	    "501 5.5.4 Syntax: STARTTLS" },
};

/* Verbs we know and refuse to implement: a clearer answer than 500. */
static const char *const not_implemented[] = {
	"EXPN", "AUTH", "BDAT", "ETRN", "TURN", "ATRN", "SEND", "SOML", "SAML",
	NULL
};

const char *
smtp_verb_name(enum smtp_verb verb)
{
	if ((unsigned)verb >= SMTP_CMD_NVERBS)
		return ("?");
	return (verbs[verb].name);
}

/* ---- character classes ---------------------------------------------------- */

static int
is_alpha(unsigned char c)
{
	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
}

static int
is_digit(unsigned char c)
{
	return (c >= '0' && c <= '9');
}

/* atext, RFC 5322 §3.2.3 */
static int
is_atext(unsigned char c)
{
	return (is_alpha(c) || is_digit(c) || (c != '\0' &&
	    strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL));
}

/* ---- addresses ------------------------------------------------------------ */

/* domain_valid - sub-domain *("." sub-domain), or an address literal */
static int
domain_valid(const unsigned char *d, size_t len, int allow_8bit)
{
	size_t i, lab = 0;
	char buf[64];

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return (0);
	if (d[0] == '[') {
		/* address-literal */
		if (len < 3 || d[len - 1] != ']' || len - 2 >= sizeof(buf))
			return (0);
		memcpy(buf, d + 1, len - 2);
		buf[len - 2] = '\0';
		if (strncasecmp(buf, "IPv6:", 5) == 0) {
			struct in6_addr a6;

			return (inet_pton(AF_INET6, buf + 5, &a6) == 1);
		}
		if (is_digit((unsigned char)buf[0])) {
			struct in_addr a4;

			return (inet_pton(AF_INET, buf, &a4) == 1);
		}
		/* General-address-literal: Ldh-str ":" 1*dcontent */
		for (i = 0; buf[i] != '\0' && buf[i] != ':'; i++)
			if (!is_alpha(buf[i]) && !is_digit(buf[i]) && buf[i] != '-')
				return (0);
		if (i == 0 || buf[i] != ':' || buf[i + 1] == '\0' || buf[i - 1] == '-')
			return (0);
		for (i++; buf[i] != '\0'; i++) {
			unsigned char c = buf[i];

			if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
				return (0);
		}
		return (1);
	}
	for (i = 0; i <= len; i++) {
		unsigned char c = i < len ? d[i] : '.';

		if (c == '.') {
			/* a label: let-dig [ldh-str let-dig], 1..63 octets */
			if (lab == 0 || lab > 63 || d[i - 1] == '-' ||
			    d[i - lab] == '-')
				return (0);
			lab = 0;
			continue;
		}
		if (is_alpha(c) || is_digit(c) || c == '-' ||
		    (c >= 0x80 && allow_8bit))
			lab++;
		else
			return (0);
	}
	return (1);
}

/*
 * local_end - length of the local part at the start of s (Dot-string or
 * Quoted-string), 0 when it is not one
 */
static size_t
local_end(const unsigned char *s, size_t len, int allow_8bit)
{
	size_t i;

	if (len == 0)
		return (0);
	if (s[0] == '"') {
		for (i = 1; i < len; i++) {
			unsigned char c = s[i];

			if (c == '"')
				return (i + 1);
			if (c == '\\') {
				if (i + 1 >= len || s[i + 1] < 32 || s[i + 1] > 126)
					return (0);
				i++;
				continue;
			}
			if (c >= 0x80 && allow_8bit)
				continue;
			if (c < 32 || c > 126)
				return (0);
		}
		return (0);	/* unterminated */
	}
	for (i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (c == '.') {
			if (i == 0 || s[i - 1] == '.')
				return (0);
			continue;
		}
		if (is_atext(c) || (c >= 0x80 && allow_8bit))
			continue;
		break;
	}
	if (i == 0 || s[i - 1] == '.')
		return (0);
	return (i);
}

/* smtp_mailbox_valid - Local-part "@" ( Domain / address-literal ) */
int
smtp_mailbox_valid(const char *addr, size_t len, int allow_8bit,
    int *is_8bit_r)
{
	const unsigned char *s = (const unsigned char *)addr;
	size_t i, l;
	int eight = 0;

	for (i = 0; i < len; i++)
		if (s[i] >= 0x80)
			eight = 1;
	if (is_8bit_r)
		*is_8bit_r = eight;
	if (eight && (!allow_8bit || !utf8_valid(s, len)))
		return (-1);
	if (len + 2 > SMTP_PATH_MAX)
		return (-1);
	if ((l = local_end(s, len, allow_8bit)) == 0 || l > SMTP_LOCAL_MAX)
		return (-1);
	if (l >= len || s[l] != '@')
		return (-1);
	if (!domain_valid(s + l + 1, len - l - 1, allow_8bit))
		return (-1);
	return (0);
}

/* route_end - length of an A-d-l source route "@dom,@dom:" at s, or 0 */
static size_t
route_end(const unsigned char *s, size_t len)
{
	size_t i = 0, start;

	for (;;) {
		if (i >= len || s[i] != '@')
			return (0);
		start = ++i;
		while (i < len && s[i] != ',' && s[i] != ':')
			i++;
		if (i >= len || !domain_valid(s + start, i - start, 1))
			return (0);
		if (s[i] == ':')
			return (i + 1);
		i++;	/* ',' */
	}
}

/*
 * parse_path - "<" [ A-d-l ":" ] Mailbox ">" at p, then parameters
 *
 * Returns the reply on error.  *rest_r points past the '>'.
 */
static const char *
parse_path(const char *p, const char *end, struct smtp_cmd *cmd, int is_mail,
    const char **rest_r)
{
	const unsigned char *s, *e;
	size_t i, len, r;
	int quoted = 0;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;	/* "MAIL FROM: <a@b>" is common enough to accept */
	if (p >= end || *p != '<')
		return (is_mail ? R_MAIL_SYNTAX : R_RCPT_SYNTAX);
	s = (const unsigned char *)p + 1;
	e = (const unsigned char *)end;
	/* Find the closing '>' outside a quoted local part. */
	for (i = 0; s + i < e; i++) {
		if (quoted && s[i] == '\\' && s + i + 1 < e) {
			i++;
			continue;
		}
		if (s[i] == '"')
			quoted = !quoted;
		else if (s[i] == '>' && !quoted)
			break;
	}
	if (s + i >= e)
		return (is_mail ? R_MAIL_SYNTAX : R_RCPT_SYNTAX);
	len = i;
	*rest_r = (const char *)s + len + 1;
	if (len + 2 > SMTP_PATH_MAX)
		return (is_mail ? R_SENDER_LONG : R_RCPT_LONG);
	if (len == 0) {
		if (!is_mail)
			return (R_NULL_RCPT);
		cmd->addr[0] = '\0';
		return (NULL);
	}
	if (!is_mail && len == 10 && strncasecmp((const char *)s, "postmaster",
	    10) == 0) {
		memcpy(cmd->addr, "postmaster", 11);
		cmd->postmaster = 1;
		return (NULL);
	}
	if (s[0] == '@') {
		if ((r = route_end(s, len)) == 0)
			return (is_mail ? R_BAD_SENDER : R_BAD_RCPT);
		s += r;
		len -= r;
		cmd->source_route = 1;
	}
	if (smtp_mailbox_valid((const char *)s, len, 1, &cmd->addr_8bit) == -1)
		return (is_mail ? R_BAD_SENDER : R_BAD_RCPT);
	memcpy(cmd->addr, s, len);
	cmd->addr[len] = '\0';
	return (NULL);
}

/* parse_params - SP esmtp-param *(SP esmtp-param) for MAIL or RCPT */
static const char *
parse_params(const char *p, const char *end, struct smtp_cmd *cmd, int is_mail)
{
	const char *kw, *kwend, *val, *valend;
	size_t klen, vlen, i;

	for (;;) {
		if (p >= end)
			return (NULL);
		if (*p != ' ' && *p != '\t')
			return (R_PARAM_SYNTAX);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p >= end)
			return (NULL);	/* trailing blanks */
		kw = p;
		while (p < end && (is_alpha(*p) || is_digit(*p) || *p == '-'))
			p++;
		kwend = p;
		klen = (size_t)(kwend - kw);
		val = valend = NULL;
		if (p < end && *p == '=') {
			val = ++p;
			while (p < end && (unsigned char)*p >= 33 &&
			    (unsigned char)*p <= 126 && *p != '=')
				p++;
			valend = p;
			if (valend == val)
				return (R_PARAM_SYNTAX);
		}
		if (klen == 0 || !is_alpha(kw[0]) ||
		    (p < end && *p != ' ' && *p != '\t'))
			return (R_PARAM_SYNTAX);
		vlen = val ? (size_t)(valend - val) : 0;
		if (!is_mail)
			return (R_PARAM);
		if (klen == 4 && strncasecmp(kw, "SIZE", 4) == 0) {
			uint64_t v = 0;

			if (cmd->has_size)
				return (R_PARAM_DUP);
			if (val == NULL || vlen > 20)
				return (R_SIZE_SYNTAX);
			for (i = 0; i < vlen; i++) {
				if (!is_digit(val[i]))
					return (R_SIZE_SYNTAX);
				if (v > (UINT64_MAX - 9) / 10)
					v = UINT64_MAX;	/* just "too big" */
				else
					v = v * 10 + (uint64_t)(val[i] - '0');
			}
			cmd->has_size = 1;
			cmd->size = v;
		} else if (klen == 4 && strncasecmp(kw, "BODY", 4) == 0) {
			if (cmd->body != SMTP_BODY_NONE)
				return (R_PARAM_DUP);
			if (val && vlen == 4 && strncasecmp(val, "7BIT", 4) == 0)
				cmd->body = SMTP_BODY_7BIT;
			else if (val && vlen == 8 &&
			    strncasecmp(val, "8BITMIME", 8) == 0)
				cmd->body = SMTP_BODY_8BITMIME;
			else
				return (R_BODY_SYNTAX);
		} else if (klen == 8 && strncasecmp(kw, "SMTPUTF8", 8) == 0) {
			if (cmd->smtputf8)
				return (R_PARAM_DUP);
			if (val != NULL)
				return (R_PARAM_SYNTAX);
			cmd->smtputf8 = 1;
		} else
			return (R_PARAM);
	}
}

/* smtp_cmd_parse - see smtp_parse.h */
const char *
smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd)
{
	const char *p, *end, *arg, *reply, *rest;
	size_t i, vlen, alen;
	int v;

	memset(cmd, 0, sizeof(*cmd));
	if (len > SMTP_CMDLINE_MAX - 2)
		return (R_TOO_LONG);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if ((c < 32 && c != '\t') || c == 127)
			return (R_BAD_CHARS);
	}
	end = line + len;
	while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (p = line; p < end && is_alpha(*p); p++)
		;
	vlen = (size_t)(p - line);
	if (p < end && *p != ' ' && *p != '\t' && *p != ':')
		return (R_UNKNOWN);
	for (v = 0; v < SMTP_CMD_NVERBS; v++)
		if (strlen(verbs[v].name) == vlen &&
		    strncasecmp(line, verbs[v].name, vlen) == 0)
			break;
	if (v == SMTP_CMD_NVERBS) {
		for (i = 0; not_implemented[i] != NULL; i++)
			if (strlen(not_implemented[i]) == vlen &&
			    strncasecmp(line, not_implemented[i], vlen) == 0)
				return (R_NOT_IMPL);
		return (R_UNKNOWN);
	}
	cmd->verb = (enum smtp_verb)v;

	if (verbs[v].arg == ARG_PATH) {
		const char *kw = v == SMTP_CMD_MAIL ? " FROM:" : " TO:";
		size_t kwlen = strlen(kw);

		if ((size_t)(end - p) < kwlen || strncasecmp(p, kw, kwlen) != 0)
			return (verbs[v].syntax);
		if ((reply = parse_path(p + kwlen, end, cmd, v == SMTP_CMD_MAIL,
		    &rest)) != NULL)
			return (reply);
		if ((reply = parse_params(rest, end, cmd, v == SMTP_CMD_MAIL)) !=
		    NULL)
			return (reply);
		if (v == SMTP_CMD_MAIL && cmd->addr_8bit && !cmd->smtputf8)
			return (R_NEED_UTF8);
		return (NULL);
	}
	if (p < end && *p == ':')
		return (verbs[v].syntax ? verbs[v].syntax : R_UNKNOWN);
	arg = p;
	while (arg < end && (*arg == ' ' || *arg == '\t'))
		arg++;
	alen = (size_t)(end - arg);
	switch (verbs[v].arg) {
	case ARG_NONE:
		if (alen != 0)
			return (verbs[v].syntax);
		break;
	case ARG_REQ:
		if (alen == 0)
			return (verbs[v].syntax);
		break;
	case ARG_HOST:
		/* One token; trailing words are tolerated and dropped. */
		for (i = 0; i < alen && arg[i] != ' ' && arg[i] != '\t'; i++)
			;
		alen = i;
		if (alen == 0 || alen > SMTP_DOMAIN_MAX)
			return (verbs[v].syntax);
		break;
	default:
		break;
	}
	memcpy(cmd->arg, arg, alen);	/* alen < SMTP_CMDLINE_MAX */
	cmd->arg[alen] = '\0';
	return (NULL);
}

/* ---- DATA ----------------------------------------------------------------- */

enum {
	D_BOL = 0,	/* at the start of a line */
	D_TEXT,		/* inside a line */
	D_CR,		/* after a CR inside a line */
	D_DOT,		/* after a '.' at the start of a line */
	D_DOTCR,	/* after ".<CR>" at the start of a line */
};

void
smtp_data_init(struct smtp_data *d, uint64_t max_size, uint64_t max_line)
{
	memset(d, 0, sizeof(*d));
	d->state = D_BOL;
	d->max_size = max_size;
	d->max_line = max_line;
}

/* data_emit - one message byte: counted always, written until an error */
static inline void
data_emit(struct smtp_data *d, unsigned char c, unsigned char *out, size_t *n)
{
	d->seen++;
	if (d->error != SMTP_DATA_OK)
		return;
	if (d->max_size != 0 && d->size >= d->max_size) {
		d->error = SMTP_DATA_TOO_BIG;
		return;
	}
	out[(*n)++] = c;
	d->size++;
}

/* data_text - a byte that is neither CR nor LF, inside a line */
static inline void
data_text(struct smtp_data *d, unsigned char c, unsigned char *out, size_t *n)
{
	d->line++;
	if (c == '\0' && d->error == SMTP_DATA_OK)
		d->error = SMTP_DATA_NUL;
	if (d->max_line != 0 && d->line > d->max_line &&
	    d->error == SMTP_DATA_OK)
		d->error = SMTP_DATA_LINE_TOO_LONG;
	data_emit(d, c, out, n);
	d->state = D_TEXT;
}

/*
 * data_run - the bytes from p on that are plain text (no CR, LF or NUL)
 * inside a line, at once: what data_text() does byte by byte, the same
 * counts and the same first error, with one copy.  Returns how many it
 * took (at least 1: p[0] is such a byte).
 */
static size_t
data_run(struct smtp_data *d, const unsigned char *p, size_t len,
    unsigned char *out, size_t *n)
{
	size_t k = 0, emit, lim;
	int err = SMTP_DATA_OK;

	while (k < len && p[k] != '\r' && p[k] != '\n' && p[k] != '\0')
		k++;
	emit = k;
	if (d->error == SMTP_DATA_OK) {
		/* The byte that makes the line too long is not written, nor
		 * the one past the size; the line check comes first. */
		if (d->max_line != 0) {
			lim = d->line >= d->max_line ? 0 :
			    (size_t)(d->max_line - d->line);
			if (lim < emit) {
				emit = lim;
				err = SMTP_DATA_LINE_TOO_LONG;
			}
		}
		if (d->max_size != 0) {
			lim = d->size >= d->max_size ? 0 :
			    (size_t)(d->max_size - d->size);
			if (lim < emit) {
				emit = lim;
				err = SMTP_DATA_TOO_BIG;
			}
		}
		memcpy(out + *n, p, emit);
		*n += emit;
		d->size += emit;
		if (err != SMTP_DATA_OK)
			d->error = err;
	}
	d->line += k;
	d->seen += k;
	return (k);
}

/* smtp_data_feed - see smtp_parse.h */
size_t
smtp_data_feed(struct smtp_data *d, const void *in, size_t len, void *outv,
    size_t *outlen_r)
{
	const unsigned char *p = in;
	unsigned char *out = outv;
	size_t i, n = 0;

	*outlen_r = 0;
	if (d->done || d->error == SMTP_DATA_BARE_NL)
		return (0);
	for (i = 0; i < len; i++) {
		unsigned char c = p[i];

		switch (d->state) {
		case D_BOL:
			d->line = 0;
			if (c == '.') {
				d->line = 1;
				d->state = D_DOT;
				break;
			}
			/* FALLTHROUGH */
		case D_TEXT:
			if (c != '\r' && c != '\n' && c != '\0' &&
			    d->state == D_TEXT) {
				i += data_run(d, p + i, len - i, out, &n) - 1;
				break;
			}
			if (c == '\r') {
				data_emit(d, c, out, &n);
				d->state = D_CR;
			} else if (c == '\n')
				goto bare;
			else
				data_text(d, c, out, &n);
			break;
		case D_CR:
			if (c != '\n')
				goto bare;
			data_emit(d, c, out, &n);
			d->state = D_BOL;
			break;
		case D_DOT:
			if (c == '\r') {
				d->state = D_DOTCR;
				break;
			}
			if (c == '\n')
				goto bare;
			/* A leading dot with more on the line is stuffing:
			 * the dot goes, the rest stays (RFC 5321 §4.5.2). */
			data_text(d, c, out, &n);
			break;
		case D_DOTCR:
			if (c != '\n')
				goto bare;
			d->done = 1;
			*outlen_r = n;
			return (i + 1);
		}
	}
	*outlen_r = n;
	return (len);
bare:
	d->error = SMTP_DATA_BARE_NL;
	*outlen_r = n;
	return (i + 1);
}
