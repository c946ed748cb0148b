/*
 * json.c - the JSON writer and the flattening reader (see json.h).
 *
 * SECURITY: the writer's strings often come from the network (envelope
 * addresses, SMTP replies), so the escaper accepts any bytes and never
 * emits anything but valid JSON in valid UTF-8.  The reader parses
 * documents another of our processes sent over a local socket; it is
 * written as if they were hostile: recursion depth and path length are
 * bounded, every index is checked against the length, and a malformed
 * document is an error, never a crash or a read past the end.
 *
 * Ownership: struct json owns its buffer; json_walk() allocates only
 * for the value it is reporting and frees it before returning.  A
 * stream writer (json_init_file) owns nothing: the FILE * is the
 * caller's.  No global state; thread-safe per struct json.
 */

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

#define JSON_INIT_CAP	256
#define JSON_PATHMAX	512

/* json_init - an empty document */
void
json_init(struct json *j, int flags)
{
	memset(j, 0, sizeof(*j));
	j->flags = flags;
}

/* json_init_file - an empty document written to fp as it is made */
void
json_init_file(struct json *j, FILE *fp, int flags)
{
	json_init(j, flags);
	j->fp = fp;
}

/* json_clear - free the buffer; j may be initialised again */
void
json_clear(struct json *j)
{
	free(j->buf);
	memset(j, 0, sizeof(*j));
}

/* json_reserve - room for n more bytes and a NUL */
static int
json_reserve(struct json *j, size_t n)
{
	size_t cap;
	char *p;

	if (j->failed)
		return (-1);
	if (n > SIZE_MAX / 2 - j->len - 1) {
		j->failed = 1;
		return (-1);
	}
	if (j->len + n + 1 <= j->cap)
		return (0);
	cap = j->cap ? j->cap : JSON_INIT_CAP;
	while (cap < j->len + n + 1)
		cap *= 2;
	if ((p = realloc(j->buf, cap)) == NULL) {
		j->failed = 1;
		return (-1);
	}
	j->buf = p;
	j->cap = cap;
	return (0);
}

/* json_put - append n raw bytes (to the stream, or to the buffer) */
static void
json_put(struct json *j, const char *s, size_t n)
{
	if (j->fp != NULL) {
		if (j->failed)
			return;
		if (n > 0 && fwrite(s, 1, n, j->fp) != n)
			j->failed = 1;
		j->len += n;
		return;
	}
	if (json_reserve(j, n) == -1)
		return;
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

/* json_putc - append one raw byte */
static void
json_putc(struct json *j, char c)
{
	json_put(j, &c, 1);
}

/* json_printf - append formatted raw text (numbers only) */
static void __attribute__((format(printf, 2, 3)))
json_printf(struct json *j, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		j->failed = 1;
		return;
	}
	json_put(j, tmp, (size_t)n);
}

/* json_newline - in pretty mode, a newline and the current indentation */
static void
json_newline(struct json *j)
{
	int i;

	if (!(j->flags & JSON_PRETTY))
		return;
	json_putc(j, '\n');
	for (i = 0; i < j->depth; i++)
		json_put(j, "  ", 2);
}

/*
 * json_value_prefix - what goes before a value: nothing after a key, a
 * comma between array items; a value where none may go is misuse.
 */
static void
json_value_prefix(struct json *j)
{
	if (j->after_key) {
		j->after_key = 0;
		return;
	}
	if (j->depth == 0) {
		if (j->len > 0)		/* a second top-level value */
			j->failed = 1;
		return;
	}
	if (!j->is_array[j->depth - 1]) {	/* object value without key */
		j->failed = 1;
		return;
	}
	if (j->nitems[j->depth - 1])
		json_putc(j, ',');
	j->nitems[j->depth - 1] = 1;
	json_newline(j);
}

/* json_open - begin an object or an array */
static void
json_open(struct json *j, int is_array)
{
	json_value_prefix(j);
	if (j->depth >= JSON_MAXDEPTH) {
		j->failed = 1;
		return;
	}
	json_putc(j, is_array ? '[' : '{');
	j->is_array[j->depth] = (unsigned char)is_array;
	j->nitems[j->depth] = 0;
	j->depth++;
}

/* json_close - end the innermost container, which must be of this kind */
static void
json_close(struct json *j, int is_array)
{
	int empty;

	if (j->depth == 0 || j->after_key ||
	    j->is_array[j->depth - 1] != is_array) {
		j->failed = 1;
		return;
	}
	empty = !j->nitems[j->depth - 1];
	j->depth--;
	if (!empty)
		json_newline(j);
	json_putc(j, is_array ? ']' : '}');
}

void
json_object_begin(struct json *j)
{
	json_open(j, 0);
}

void
json_object_end(struct json *j)
{
	json_close(j, 0);
}

void
json_array_begin(struct json *j)
{
	json_open(j, 1);
}

void
json_array_end(struct json *j)
{
	json_close(j, 1);
}

/* json_key - the next member's name, in an object */
void
json_key(struct json *j, const char *key)
{
	if (j->depth == 0 || j->is_array[j->depth - 1] || j->after_key) {
		j->failed = 1;
		return;
	}
	if (j->nitems[j->depth - 1])
		json_putc(j, ',');
	j->nitems[j->depth - 1] = 1;
	json_newline(j);
	json_putc(j, '"');
	json_escape(j, key, strlen(key));
	if (j->flags & JSON_PRETTY)
		json_put(j, "\": ", 3);
	else
		json_put(j, "\":", 2);
	j->after_key = 1;
}

/* json_escape - append s[0..len) as the inside of a JSON string */
void
json_escape(struct json *j, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run, n;

	while (i < len) {
		/* Copy runs of plain ASCII in one go. */
		for (run = i; run < len && p[run] >= 0x20 && p[run] < 0x7f &&
		    p[run] != '"' && p[run] != '\\'; run++)
			;
		if (run > i) {
			json_put(j, s + i, run - i);
			i = run;
			continue;
		}
		switch (p[i]) {
		case '"':  json_put(j, "\\\"", 2); break;
		case '\\': json_put(j, "\\\\", 2); break;
		case '\n': json_put(j, "\\n", 2); break;
		case '\r': json_put(j, "\\r", 2); break;
		case '\t': json_put(j, "\\t", 2); break;
		case '\b': json_put(j, "\\b", 2); break;
		case '\f': json_put(j, "\\f", 2); break;
		default:
			if (p[i] < 0x20 || p[i] == 0x7f) {
				json_printf(j, "\\u%04x", p[i]);
				break;
			}
			/* p[i] >= 0x80 here: a whole sequence, or U+FFFD */
			n = i;
			if (utf8_next(p, len, &n) == UTF8_INVALID) {
				json_put(j, "\xef\xbf\xbd", 3);	/* U+FFFD */
				break;
			}
			json_put(j, s + i, n - i);
			i = n;
			continue;
		}
		i++;
	}
}

void
json_string(struct json *j, const char *s)
{
	if (s == NULL) {
		json_null(j);
		return;
	}
	json_string_n(j, s, strlen(s));
}

void
json_string_n(struct json *j, const char *s, size_t len)
{
	json_value_prefix(j);
	json_putc(j, '"');
	json_escape(j, s, len);
	json_putc(j, '"');
}

void
json_int(struct json *j, int64_t v)
{
	json_value_prefix(j);
	json_printf(j, "%" PRId64, v);
}

void
json_uint(struct json *j, uint64_t v)
{
	json_value_prefix(j);
	json_printf(j, "%" PRIu64, v);
}

/*
 * json_double - the shortest of %.15g, %.16g and %.17g that reads back as
 * v (17 significant digits always do for an IEEE double), so 0.1 is
 * "0.1".  A locale with a decimal comma (LC_NUMERIC) makes printf and
 * strtod agree on ',', which JSON spells '.'.
 */
void
json_double(struct json *j, double v)
{
	char tmp[40], *p;
	int prec, n = 0;

	if (!isfinite(v)) {
		json_null(j);
		return;
	}
	json_value_prefix(j);
	for (prec = 15; prec <= 17; prec++) {
		n = snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (n < 0 || (size_t)n >= sizeof(tmp)) {
			j->failed = 1;
			return;
		}
		if (strtod(tmp, NULL) == v)
			break;
	}
	for (p = tmp; *p != '\0'; p++)
		if (*p == ',')
			*p = '.';
	json_put(j, tmp, (size_t)n);
}

void
json_bool(struct json *j, int v)
{
	json_value_prefix(j);
	if (v)
		json_put(j, "true", 4);
	else
		json_put(j, "false", 5);
}

void
json_null(struct json *j)
{
	json_value_prefix(j);
	json_put(j, "null", 4);
}

/*
 * json_finish - the document, or NULL if memory ran out or the calls did
 * not make one complete value (a programming error).
 */
const char *
json_finish(struct json *j, size_t *len_r)
{
	if (j->fp != NULL || j->failed || j->depth != 0 || j->after_key ||
	    j->len == 0)
		return (NULL);
	if (len_r != NULL)
		*len_r = j->len;
	return (j->buf);
}

/*
 * json_end - 0 when one complete document was made and every byte of it
 * stored (in memory) or handed to the stream without error.
 */
int
json_end(struct json *j)
{
	if (j->failed || j->depth != 0 || j->after_key || j->len == 0)
		return (-1);
	if (j->fp != NULL && ferror(j->fp))
		return (-1);
	return (0);
}

/* ---- the reader -------------------------------------------------------- */

struct walk {
	const char	*s;
	size_t		 len;
	size_t		 pos;
	json_walk_fn	*cb;
	void		*arg;
	char		 path[JSON_PATHMAX];
	char		*err;
	size_t		 errlen;
	int		 stop;		/* callback's non-zero answer */
};

static int walk_value(struct walk *w, size_t pathlen, int depth);

/* walk_fail - record a parse error at the current position */
static int
walk_fail(struct walk *w, const char *why)
{
	snprintf(w->err, w->errlen, "JSON offset %zu: %s", w->pos, why);
	return (-1);
}

static void
walk_ws(struct walk *w)
{
	while (w->pos < w->len && (w->s[w->pos] == ' ' ||
	    w->s[w->pos] == '\t' || w->s[w->pos] == '\n' ||
	    w->s[w->pos] == '\r'))
		w->pos++;
}

/* hex4 - four hex digits at s, or -1 */
static long
hex4(const char *s)
{
	long v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return (-1);
	}
	return (v);
}

/* put_utf8 - encode code point cp at out, return bytes written (<= 4) */
static size_t
put_utf8(char *out, unsigned long cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return (1);
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return (2);
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return (3);
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return (4);
}

/*
 * walk_string - parse a string at pos (on its opening quote); *out_r is
 * a malloc'd unescaped copy.  An escaped string never grows when
 * unescaped (\uXXXX is 6 bytes for at most 3, a pair 12 for 4), so the
 * raw length bounds the buffer.
 */
static int
walk_string(struct walk *w, char **out_r)
{
	size_t start = ++w->pos, n = 0;
	char *out;
	long cp, lo;

	*out_r = NULL;
	while (w->pos < w->len && w->s[w->pos] != '"') {
		if (w->s[w->pos] == '\\')
			w->pos++;
		w->pos++;
	}
	if (w->pos >= w->len)
		return (walk_fail(w, "unterminated string"));
	if ((out = malloc(w->pos - start + 1)) == NULL)
		return (walk_fail(w, "out of memory"));
	for (size_t i = start; i < w->pos; i++) {
		unsigned char c = (unsigned char)w->s[i];

		if (c < 0x20) {
			free(out);
			return (walk_fail(w, "control character in string"));
		}
		if (c != '\\') {
			out[n++] = (char)c;
			continue;
		}
		switch (w->s[++i]) {
		case '"': out[n++] = '"'; break;
		case '\\': out[n++] = '\\'; break;
		case '/': out[n++] = '/'; break;
		case 'b': out[n++] = '\b'; break;
		case 'f': out[n++] = '\f'; break;
		case 'n': out[n++] = '\n'; break;
		case 'r': out[n++] = '\r'; break;
		case 't': out[n++] = '\t'; break;
		case 'u':
			if (w->pos - i < 5 || (cp = hex4(w->s + i + 1)) == -1) {
				free(out);
				return (walk_fail(w, "bad \\u escape"));
			}
			i += 4;
			if (cp >= 0xd800 && cp <= 0xdbff && w->pos - i >= 7 &&
			    w->s[i + 1] == '\\' && w->s[i + 2] == 'u' &&
			    (lo = hex4(w->s + i + 3)) >= 0xdc00 && lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
				i += 6;
			} else if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd;	/* lone surrogate */
			n += put_utf8(out + n, (unsigned long)cp);
			break;
		default:
			free(out);
			return (walk_fail(w, "bad escape"));
		}
	}
	out[n] = '\0';
	w->pos++;		/* closing quote */
	*out_r = out;
	return (0);
}

/* walk_emit - report one scalar to the callback */
static int
walk_emit(struct walk *w, enum json_type type, const char *value)
{
	int rc;

	if ((rc = w->cb(w->path, type, value, w->arg)) != 0) {
		w->stop = rc;
		return (-1);
	}
	return (0);
}

/* walk_path_push - append ".name" (or "name" at the root) to the path */
static int
walk_path_push(struct walk *w, size_t pathlen, const char *name)
{
	int n = snprintf(w->path + pathlen, sizeof(w->path) - pathlen, "%s%s",
	    pathlen ? "." : "", name);

	if (n < 0 || (size_t)n >= sizeof(w->path) - pathlen)
		return (walk_fail(w, "path too long"));
	return (0);
}

/* walk_number - validate a JSON number at pos and report it */
static int
walk_number(struct walk *w)
{
	size_t start = w->pos, digits;
	char buf[64];

	if (w->pos < w->len && w->s[w->pos] == '-')
		w->pos++;
	if (w->pos < w->len && w->s[w->pos] == '0') {
		w->pos++;		/* no leading zeros */
		digits = 1;
	} else
		for (digits = 0; w->pos < w->len && w->s[w->pos] >= '0' &&
		    w->s[w->pos] <= '9'; digits++)
			w->pos++;
	if (digits == 0)
		return (walk_fail(w, "bad number"));
	if (w->pos < w->len && w->s[w->pos] == '.') {
		w->pos++;
		for (digits = 0; w->pos < w->len && w->s[w->pos] >= '0' &&
		    w->s[w->pos] <= '9'; digits++)
			w->pos++;
		if (digits == 0)
			return (walk_fail(w, "bad number"));
	}
	if (w->pos < w->len && (w->s[w->pos] == 'e' || w->s[w->pos] == 'E')) {
		w->pos++;
		if (w->pos < w->len && (w->s[w->pos] == '+' ||
		    w->s[w->pos] == '-'))
			w->pos++;
		for (digits = 0; w->pos < w->len && w->s[w->pos] >= '0' &&
		    w->s[w->pos] <= '9'; digits++)
			w->pos++;
		if (digits == 0)
			return (walk_fail(w, "bad number"));
	}
	if (w->pos - start >= sizeof(buf))
		return (walk_fail(w, "number too long"));
	memcpy(buf, w->s + start, w->pos - start);
	buf[w->pos - start] = '\0';
	return (walk_emit(w, JSON_T_NUMBER, buf));
}

/* walk_word - one of true, false, null */
static int
walk_word(struct walk *w, const char *word, enum json_type type)
{
	size_t n = strlen(word);

	if (w->len - w->pos < n || memcmp(w->s + w->pos, word, n) != 0)
		return (walk_fail(w, "unexpected character"));
	w->pos += n;
	return (walk_emit(w, type, word));
}

/* walk_object - members of an object; pos is on '{' */
static int
walk_object(struct walk *w, size_t pathlen, int depth)
{
	char *key;
	int first = 1;

	w->pos++;
	for (;;) {
		walk_ws(w);
		if (w->pos >= w->len)
			return (walk_fail(w, "unterminated object"));
		if (w->s[w->pos] == '}' && first) {
			w->pos++;
			return (0);
		}
		if (w->s[w->pos] != '"')
			return (walk_fail(w, "member name expected"));
		if (walk_string(w, &key) == -1)
			return (-1);
		if (walk_path_push(w, pathlen, key) == -1) {
			free(key);
			return (-1);
		}
		free(key);
		walk_ws(w);
		if (w->pos >= w->len || w->s[w->pos] != ':')
			return (walk_fail(w, "':' expected"));
		w->pos++;
		if (walk_value(w, strlen(w->path), depth + 1) == -1)
			return (-1);
		w->path[pathlen] = '\0';
		walk_ws(w);
		if (w->pos < w->len && w->s[w->pos] == ',') {
			w->pos++;
			first = 0;
			continue;
		}
		if (w->pos < w->len && w->s[w->pos] == '}') {
			w->pos++;
			return (0);
		}
		return (walk_fail(w, "',' or '}' expected"));
	}
}

/* walk_array - items of an array; pos is on '[' */
static int
walk_array(struct walk *w, size_t pathlen, int depth)
{
	char idx[24];
	size_t i = 0;

	w->pos++;
	walk_ws(w);
	if (w->pos < w->len && w->s[w->pos] == ']') {
		w->pos++;
		return (0);
	}
	for (;; i++) {
		snprintf(idx, sizeof(idx), "%zu", i);
		if (walk_path_push(w, pathlen, idx) == -1)
			return (-1);
		if (walk_value(w, strlen(w->path), depth + 1) == -1)
			return (-1);
		w->path[pathlen] = '\0';
		walk_ws(w);
		if (w->pos < w->len && w->s[w->pos] == ',') {
			w->pos++;
			continue;
		}
		if (w->pos < w->len && w->s[w->pos] == ']') {
			w->pos++;
			return (0);
		}
		return (walk_fail(w, "',' or ']' expected"));
	}
}

/* walk_value - any value at pos; the path names it */
static int
walk_value(struct walk *w, size_t pathlen, int depth)
{
	char *s;
	int rc;

	if (depth > JSON_MAXDEPTH)
		return (walk_fail(w, "nested too deeply"));
	walk_ws(w);
	if (w->pos >= w->len)
		return (walk_fail(w, "value expected"));
	switch (w->s[w->pos]) {
	case '{':
		return (walk_object(w, pathlen, depth));
	case '[':
		return (walk_array(w, pathlen, depth));
	case '"':
		if (walk_string(w, &s) == -1)
			return (-1);
		rc = walk_emit(w, JSON_T_STRING, s);
		free(s);
		return (rc);
	case 't':
		return (walk_word(w, "true", JSON_T_BOOL));
	case 'f':
		return (walk_word(w, "false", JSON_T_BOOL));
	case 'n':
		return (walk_word(w, "null", JSON_T_NULL));
	default:
		return (walk_number(w));
	}
}

/*
 * json_walk - parse doc and call cb for every scalar with its path.
 * Returns 0, the callback's non-zero value, or -1 on a malformed
 * document (err says where).
 */
int
json_walk(const char *doc, size_t len, json_walk_fn *cb, void *arg,
    char *err, size_t errlen)
{
	struct walk w;

	memset(&w, 0, sizeof(w));
	w.s = doc;
	w.len = len;
	w.cb = cb;
	w.arg = arg;
	w.err = err;
	w.errlen = errlen;
	if (walk_value(&w, 0, 0) == -1) {
		if (w.stop)
			return (w.stop);
		return (-1);
	}
	walk_ws(&w);
	if (w.pos != w.len)
		return (walk_fail(&w, "trailing characters"));
	return (0);
}
