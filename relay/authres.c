/*
 * authres.c - build our Authentication-Results field and recognise
 * (and filter out) the ones that claim to be ours (see authres.h).
 *
 * Syntax followed (RFC 8601 2.2, values from RFC 2045 and RFC 5322):
 *   field     = "Authentication-Results:" authserv-id 1*resinfo CRLF
 *   resinfo   = ";" CFWS method "=" result [CFWS comment] *(CFWS propspec)
 *   value     = token / quoted-string        (RFC 2045 token: no
 *               SPACE, CTLs or tspecials ()<>@,;:\"/[]?= )
 *   pvalue    = value / [local-part] "@" domain-name
 * Folding: a line is broken by turning the space before an atom into
 * CRLF TAB; atoms are never split, so a quoted-string is never folded
 * (folding inside one would change it), and a comment only between its
 * words.  A line gets longer than AUTHRES_WIDTH only when a single atom
 * is.
 *
 * SECURITY: the DKIM strings (d=, s=, b=, reasons with DNS texts) come
 * from the peer or from DNS the peer chose.  They are written as a
 * token only when every byte is a token character, else as a
 * quoted-string with '"' and '\' escaped; comments get '(' ')' '\' and
 * every control or non-ASCII byte replaced, so nothing can end the
 * comment, start a new resinfo or a new header line.  The SPF string is
 * the SPF module's: it is refused (EINVAL), not repaired, when it holds
 * control characters or an unquoted ';'.  Parsing foreign fields
 * (authres_claims_ours) never reads past len and decides on the first
 * token only.
 *
 * Ownership: authres_build()/authres_pvalue() write only into the
 * caller's buffer; the filter owns its hold buffer and copies the
 * authserv-id.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "authres.h"
#include "dkim_verify.h"

/* --- character classes ------------------------------------------------- */

static int
is_ctl(unsigned char c)
{
	return (c < 0x20 || c == 0x7f);
}

/* RFC 2045 token character (ASCII); tspecials excluded */
static int
is_token(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return (0);
	return (strchr("()<>@,;:\\\"/[]?=", c) == NULL);
}

/* RFC 5322 atext, for a dot-atom local-part */
static int
is_atext(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return (0);
	return (strchr("()<>[]:;@\\,.\"", c) == NULL);
}

static int
is_dotatom(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return (0);
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return (0);
		} else if (!is_atext((unsigned char)s[i]))
			return (0);
	}
	return (1);
}

/* a domain-name as RFC 8601 means it: letters, digits, '-', '.', '_' */
static int
is_domain(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return (0);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return (0);
	}
	return (is_dotatom(s, len));
}

/* --- output with folding ----------------------------------------------- */

struct ob {
	char	*p;
	size_t	 len, cap;	/* cap: bytes usable before the NUL */
	size_t	 col;		/* column of the current line */
	int	 full;
};

static void
ob_raw(struct ob *o, const char *s, size_t n)
{
	size_t i;

	if (o->full || n > o->cap - o->len) {
		o->full = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	for (i = 0; i < n; i++) {
		if (s[i] == '\n')
			o->col = 0;
		else if (s[i] == '\t')
			o->col = (o->col / 8 + 1) * 8;
		else
			o->col++;
	}
}

static void
ob_str(struct ob *o, const char *s)
{
	ob_raw(o, s, strlen(s));
}

/* ob_atom - an atom, preceded by a space or, if it would not fit, by a
 * fold (CRLF TAB); first: the atom starts a fresh line already */
static void
ob_atom(struct ob *o, const char *s, size_t n, int first)
{
	if (!first) {
		if (o->col + 1 + n > AUTHRES_WIDTH)
			ob_raw(o, "\r\n\t", 3);
		else
			ob_raw(o, " ", 1);
	}
	ob_raw(o, s, n);
}

/*
 * value_write - v as a token, or as a quoted-string when it is empty or
 * has a non-token byte; control bytes are left out (our strings never
 * have any, this is the last line of defence).
 */
static size_t
value_write(char *out, size_t outlen, const char *v, size_t n)
{
	size_t i, w = 0;
	int token = n > 0;

	for (i = 0; i < n; i++)
		if (!is_token((unsigned char)v[i]))
			token = 0;
	if (token) {
		if (n < outlen) {
			memcpy(out, v, n);
			w = n;
		}
		return (w == n ? n : (size_t)-1);
	}
	if (outlen < 3)
		return ((size_t)-1);
	out[w++] = '"';
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (is_ctl(c))
			continue;
		if (w + 4 > outlen)
			return ((size_t)-1);
		if (c == '"' || c == '\\')
			out[w++] = '\\';
		out[w++] = (char)c;
	}
	out[w++] = '"';
	return (w);
}

/* authres_pvalue - local-part@domain as it is, else value_write() */
int
authres_pvalue(char *out, size_t outlen, const char *value)
{
	const char *at = strrchr(value, '@');
	size_t n = strlen(value), w, i;

	for (i = 0; i < n; i++)
		if (is_ctl((unsigned char)value[i]))
			return (-1);
	/* [local-part] "@" domain-name, local-part a dot-atom */
	if (at != NULL && is_domain(at + 1, n - (size_t)(at - value) - 1) &&
	    (at == value || is_dotatom(value, (size_t)(at - value)))) {
		if (n >= outlen)
			return (-1);
		memcpy(out, value, n + 1);
		return ((int)n);
	}
	w = value_write(out, outlen, value, n);
	if (w == (size_t)-1 || w >= outlen)
		return (-1);
	out[w] = '\0';
	return ((int)w);
}

/* ob_prop - "name=value" as one atom; absent (empty) values are left out */
static void
ob_prop(struct ob *o, const char *name, const char *v)
{
	char buf[600];
	size_t n = strlen(name), w;

	if (*v == '\0')
		return;		/* no such tag: leave the property out */
	memcpy(buf, name, n);
	w = value_write(buf + n, sizeof(buf) - n, v, strlen(v));
	if (w == (size_t)-1) {
		o->full = 1;
		return;
	}
	ob_atom(o, buf, n + w, 0);
}

/*
 * ob_comment - reason as a comment, one atom per word so that it can
 * fold between words; nothing in it can close it early.
 */
static void
ob_comment(struct ob *o, const char *reason)
{
	char clean[256], word[260];
	size_t n = 0, i, j, k;
	int first = 1;

	for (i = 0; reason[i] != '\0' && n + 1 < sizeof(clean); i++) {
		unsigned char c = (unsigned char)reason[i];

		if (c == '(')
			c = '[';
		else if (c == ')')
			c = ']';
		else if (c == '\t')
			c = ' ';
		else if (c == '\\' || is_ctl(c) || c >= 0x80)
			c = '?';
		clean[n++] = (char)c;
	}
	clean[n] = '\0';
	for (i = 0; i < n; i = j) {
		while (i < n && clean[i] == ' ')
			i++;
		if (i == n)
			break;
		for (j = i; j < n && clean[j] != ' '; j++)
			continue;
		k = 0;
		if (first)
			word[k++] = '(';
		first = 0;
		memcpy(word + k, clean + i, j - i);
		k += j - i;
		if (clean[j + strspn(clean + j, " ")] == '\0')
			word[k++] = ')';	/* the last word */
		ob_atom(o, word, k, 0);
	}
}

/*
 * spf_check - the SPF module's string must be one resinfo: no control
 * characters, no ';' outside quoted-strings and comments, balanced.
 */
static int
spf_check(const char *s)
{
	int quoted = 0, depth = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (is_ctl(c) && c != '\t')
			return (-1);
		if (c == '\\' && (quoted || depth > 0)) {
			if (s[1] == '\0' || is_ctl((unsigned char)s[1]))
				return (-1);
			s++;
		} else if (quoted) {
			if (c == '"')
				quoted = 0;
		} else if (c == '"' && depth == 0)
			quoted = 1;
		else if (c == '(')
			depth++;
		else if (c == ')') {
			if (depth-- == 0)
				return (-1);
		} else if (c == ';' && depth == 0)
			return (-1);
	}
	return (quoted || depth != 0 ? -1 : 0);
}

/* ob_spf - the SPF string split into atoms at blanks outside quotes */
static void
ob_spf(struct ob *o, const char *s)
{
	const char *start;
	int quoted, first = 1;

	while (*s != '\0') {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		start = s;
		quoted = 0;
		while (*s != '\0' && (quoted || (*s != ' ' && *s != '\t'))) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			else if (*s == '"')
				quoted = !quoted;
			s++;
		}
		ob_atom(o, start, (size_t)(s - start), first);
		first = 0;
	}
}

/* authres_build - authserv-id, then one resinfo per method, CRLF */
ssize_t
authres_build(const char *authserv_id, const char *spf,
    const struct dkimv_result *dkim, size_t ndkim, char *out,
    size_t outlen)
{
	struct ob o;
	char idbuf[600], word[64];
	size_t i, w, n;
	int any = 0;

	if (authserv_id == NULL || *authserv_id == '\0' ||
	    (spf != NULL && spf_check(spf) == -1)) {
		errno = EINVAL;
		return (-1);
	}
	for (i = 0; authserv_id[i] != '\0'; i++)
		if (is_ctl((unsigned char)authserv_id[i])) {
			errno = EINVAL;
			return (-1);
		}
	if (out == NULL || outlen == 0) {
		errno = ENOSPC;
		return (-1);
	}
	memset(&o, 0, sizeof(o));
	o.p = out;
	o.cap = outlen - 1;

	ob_str(&o, AUTHRES_FIELD ": ");
	w = value_write(idbuf, sizeof(idbuf), authserv_id, strlen(authserv_id));
	if (w == (size_t)-1)
		o.full = 1;
	else
		ob_raw(&o, idbuf, w);

	if (spf != NULL && spf[strspn(spf, " \t")] != '\0') {
		ob_str(&o, ";\r\n\t");
		ob_spf(&o, spf);
		any = 1;
	}
	for (i = 0; i < ndkim; i++) {
		const struct dkimv_result *r = &dkim[i];

		ob_str(&o, ";\r\n\t");
		any = 1;
		n = (size_t)snprintf(word, sizeof(word), "dkim=%s",
		    dkimv_result_name(r->result));
		ob_atom(&o, word, n, 1);
		if (r->reason[0] != '\0')
			ob_comment(&o, r->reason);
		ob_prop(&o, "header.d=", r->domain);
		ob_prop(&o, "header.s=", r->selector);
		ob_prop(&o, "header.b=", r->b);
	}
	if (!any)
		ob_str(&o, "; none");
	ob_str(&o, "\r\n");
	if (o.full) {
		errno = ENOSPC;
		return (-1);
	}
	out[o.len] = '\0';
	return ((ssize_t)o.len);
}

/* --- recognising our own ----------------------------------------------- */

/*
 * skip_cfws - past blanks, line ends and (nested) comments; *cut is set
 * when the input ends inside a comment.
 */
static size_t
skip_cfws(const char *p, size_t len, size_t i, int *cut)
{
	int depth;

	*cut = 0;
	while (i < len) {
		if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' ||
		    p[i] == '\n') {
			i++;
			continue;
		}
		if (p[i] != '(')
			break;
		for (depth = 0; i < len; i++) {
			if (p[i] == '\\') {
				i++;
				continue;
			}
			if (p[i] == '(')
				depth++;
			else if (p[i] == ')' && --depth == 0)
				break;
		}
		if (i >= len) {
			*cut = 1;
			return (len);
		}
		i++;
	}
	return (i);
}

/* same_id - case-insensitive, a final dot on either side ignored */
static int
same_id(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	if (alen > 0 && a[alen - 1] == '.')
		alen--;
	if (blen > 0 && b[blen - 1] == '.')
		blen--;
	return (alen > 0 && alen == blen && strncasecmp(a, b, alen) == 0);
}

/*
 * claims - authres_claims_ours() with a twist for the filter: partial
 * means the body may have been cut; then anything that could still turn
 * out to be our id (input ending in the comments or in the id itself)
 * counts as ours.
 */
static int
claims(const char *p, size_t len, const char *id, int partial)
{
	char q[512];
	size_t i, start, n = 0;
	int cut;

	if (p == NULL || id == NULL || *id == '\0')
		return (0);
	i = skip_cfws(p, len, 0, &cut);
	if (i >= len)
		return (partial);	/* the id may still come */
	if (p[i] == '"') {
		for (i++; i < len && p[i] != '"'; i++) {
			if (p[i] == '\\' && i + 1 < len)
				i++;
			if (n + 1 >= sizeof(q))
				return (0);	/* longer than any id of ours */
			q[n++] = p[i];
		}
		if (i >= len)
			return (partial);
		return (same_id(q, n, id));
	}
	start = i;
	/* a token; bytes >= 0x80 too (a U-label authserv-id, RFC 8601) */
	while (i < len && (is_token((unsigned char)p[i]) ||
	    (unsigned char)p[i] >= 0x80))
		i++;
	if (i == len && partial)
		return (1);
	return (same_id(p + start, i - start, id));
}

int
authres_claims_ours(const char *body, size_t len, const char *authserv_id)
{
	return (claims(body, len, authserv_id, 0));
}

/* --- the streaming filter ---------------------------------------------- */

enum fstate {
	F_NONE,		/* before the first field */
	F_OTHER,	/* in a field we keep */
	F_HOLD,		/* in an A-R field, held */
	F_KEEP,		/* in an A-R field judged foreign, streaming */
	F_DROP,		/* in an A-R field judged ours */
	F_BODY		/* after the empty line */
};

struct authres_filter {
	char		*id;
	authres_emit_fn	*emit;
	void		*arg;
	enum fstate	 state;
	size_t		 dropped;
	size_t		 hlen;
	size_t		 body_at;	/* where the field body starts */
	char		 hold[AUTHRES_HOLD_MAX];
};

/* authres_filter_new - the hold buffer is part of the struct: no
 * allocation happens while lines are filtered */
struct authres_filter *
authres_filter_new(const char *authserv_id, authres_emit_fn *emit,
    void *arg)
{
	struct authres_filter *f;

	if (emit == NULL || (f = calloc(1, sizeof(*f))) == NULL)
		return (NULL);
	if ((f->id = strdup(authserv_id != NULL ? authserv_id : "")) == NULL) {
		free(f);
		return (NULL);
	}
	f->emit = emit;
	f->arg = arg;
	f->state = F_NONE;
	return (f);
}

/* ar_colon - offset just past "Authentication-Results" [WSP] ":", or 0 */
static size_t
ar_colon(const char *line, size_t len)
{
	size_t n = sizeof(AUTHRES_FIELD) - 1, i;

	if (len <= n || strncasecmp(line, AUTHRES_FIELD, n) != 0)
		return (0);
	for (i = n; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
		continue;
	return (i < len && line[i] == ':' ? i + 1 : 0);
}

/* decide - the held field is complete (or the hold is full) */
static void
decide(struct authres_filter *f, int partial)
{
	size_t at = f->body_at < f->hlen ? f->body_at : f->hlen;
	const char *body = f->hold + at;
	size_t blen = f->hlen - at;

	if (claims(body, blen, f->id, partial)) {
		f->dropped++;
		f->state = F_DROP;
	} else {
		f->emit(f->hold, f->hlen, f->arg);
		f->state = F_KEEP;
	}
	f->hlen = 0;
}

/* hold_add - hold more of the field; full: judge on what we have */
static void
hold_add(struct authres_filter *f, const char *line, size_t len)
{
	size_t room = sizeof(f->hold) - f->hlen;

	if (len <= room) {
		memcpy(f->hold + f->hlen, line, len);
		f->hlen += len;
		return;
	}
	memcpy(f->hold + f->hlen, line, room);
	f->hlen += room;
	decide(f, 1);
	/* emit the rest of this line only if the field is kept: decide()
	 * has emitted the held part, which held the line's start */
	if (f->state == F_KEEP)
		f->emit(line + room, len - room, f->arg);
}

/*
 * authres_filter_line - one line: a continuation goes where its field
 * went (held, dropped or emitted); anything else first completes a held
 * field (decide), then is the empty line (body from here on), a new
 * Authentication-Results field (held) or another field (emitted).
 */
int
authres_filter_line(struct authres_filter *f, const char *line, size_t len)
{
	size_t colon;

	if (f->state == F_BODY) {
		f->emit(line, len, f->arg);
		return (1);
	}
	if (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
		switch (f->state) {
		case F_HOLD:
			hold_add(f, line, len);
			break;
		case F_DROP:
			break;
		default:
			f->emit(line, len, f->arg);
			break;
		}
		return (0);
	}
	/* a new field, or the end of the header block: the previous field
	 * is complete */
	if (f->state == F_HOLD)
		decide(f, 0);
	if ((len == 2 && line[0] == '\r' && line[1] == '\n') ||
	    (len == 1 && line[0] == '\n') || len == 0) {
		f->state = F_BODY;
		f->emit(line, len, f->arg);
		return (1);
	}
	if ((colon = ar_colon(line, len)) != 0) {
		f->state = F_HOLD;
		f->hlen = 0;
		f->body_at = colon;
		hold_add(f, line, len);
		return (0);
	}
	f->state = F_OTHER;
	f->emit(line, len, f->arg);
	return (0);
}

void
authres_filter_end(struct authres_filter *f)
{
	if (f != NULL && f->state == F_HOLD)
		decide(f, 0);
}

size_t
authres_filter_dropped(const struct authres_filter *f)
{
	return (f != NULL ? f->dropped : 0);
}

void
authres_filter_free(struct authres_filter **fp)
{
	struct authres_filter *f;

	if (fp == NULL || (f = *fp) == NULL)
		return;
	*fp = NULL;
	free(f->id);
	free(f);
}
