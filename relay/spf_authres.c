/*
 * spf_authres.c - the text relay/spf gives out (see spf.h): the RFC 8601
 * result words and the SPF part of an Authentication-Results header.
 * Pure functions, any thread.
 *
 * SECURITY: the explanation and the domain hold peer-supplied text
 * (made printable by spf.c); here it is escaped as a comment or quoted as
 * a value, so it cannot end the comment, the resinfo or the header.
 */

#include <stddef.h>
#include <string.h>

#include "spf.h"

const char *
spf_verdict_name(enum spf_verdict v)
{
	switch (v) {
	case SPF_VERDICT_NONE:		return ("none");
	case SPF_VERDICT_NEUTRAL:	return ("neutral");
	case SPF_VERDICT_PASS:		return ("pass");
	case SPF_VERDICT_FAIL:		return ("fail");
	case SPF_VERDICT_SOFTFAIL:	return ("softfail");
	case SPF_VERDICT_TEMPERROR:	return ("temperror");
	case SPF_VERDICT_PERMERROR:	return ("permerror");
	}
	return ("temperror");
}

const char *
spf_identity_name(enum spf_identity id)
{
	return (id == SPF_ID_HELO ? "helo" : "mailfrom");
}

/* --- RFC 8601 output ----------------------------------------------------- */

struct out {
	char	*buf;
	size_t	 len;
	size_t	 pos;
	int	 full;
};

static void
out_c(struct out *o, char c)
{
	if (o->pos + 1 >= o->len) {
		o->full = 1;
		return;
	}
	o->buf[o->pos++] = c;
	o->buf[o->pos] = '\0';
}

static void
out_s(struct out *o, const char *s)
{
	while (*s != '\0')
		out_c(o, *s++);
}

/* is_token_char - RFC 2045 token: CHAR minus SPACE, CTLs and tspecials */
static int
is_token_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return (0);
	return (strchr("()<>@,;:\\\"/[]?=", c) == NULL);
}

/* out_value - an RFC 8601 pvalue: a token as is, else a quoted-string */
static void
out_value(struct out *o, const char *s)
{
	const char *p;
	int token = *s != '\0';

	for (p = s; *p != '\0' && token; p++)
		token = is_token_char((unsigned char)*p);
	if (token) {
		out_s(o, s);
		return;
	}
	out_c(o, '"');
	for (p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c >= 0x7f)
			c = '?';
		if (c == '"' || c == '\\')
			out_c(o, '\\');
		out_c(o, (char)c);
	}
	out_c(o, '"');
}

/*
 * out_comment - an RFC 5322 comment; ( ) \ escaped as quoted-pairs.  A
 * '"' is legal in a comment but becomes '\'': header code that looks
 * for quoted-strings without tracking comments cannot be misled.
 */
static void
out_comment(struct out *o, const char *s)
{
	out_c(o, '(');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f)
			c = '?';
		if (c == '"')
			c = '\'';
		if (c == '(' || c == ')' || c == '\\')
			out_c(o, '\\');
		out_c(o, (char)c);
	}
	out_c(o, ')');
}

int
spf_authres(const struct spf_result *r, char *buf, size_t len)
{
	struct out o = { buf, len, 0, 0 };

	if (len == 0)
		return (-1);
	buf[0] = '\0';
	out_s(&o, "spf=");
	out_s(&o, spf_verdict_name(r->verdict));
	if (r->explanation[0] != '\0') {
		out_c(&o, ' ');
		out_comment(&o, r->explanation);
	}
	out_s(&o, r->identity == SPF_ID_HELO ? " smtp.helo=" :
	    " smtp.mailfrom=");
	out_value(&o, r->domain);
	if (o.full) {
		buf[0] = '\0';
		return (-1);
	}
	return ((int)o.pos);
}
