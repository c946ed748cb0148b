/*
 * accounts.c - load the accounts file of ferry-syncd (format in
 * accounts.h).
 *
 * SECURITY: the file holds every user's password.  Nothing read from it
 * ever reaches an error message (only line numbers, field names and the
 * paths of secret files); every buffer that held a line or a secret -
 * our line buffer, the stdio buffer the file was read through, the
 * strings of the list - is wiped with explicit_bzero before it is
 * freed or goes out of scope.  The file is trusted as configuration but
 * parsed strictly: lines and fields are bounded, control characters and
 * NUL bytes are refused.
 *
 * Ownership: struct accounts owns all its strings.  Single-threaded use
 * per list; no global state.
 */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accounts.h"
#include "utf8.h"
#include "util.h"

#define NFIELDS		4	/* required */
#define NFIELDS_MAX	5	/* with the optional wave=N */
#define STDIO_BUFSZ	4096

/* Field names for error messages, in line order. */
static const char *const field_names[NFIELDS] = {
	"source user", "source password", "destination user",
	"destination password",
};

/* One parsed field: bytes in the line's field buffer. */
struct field {
	char	*s;		/* NUL-terminated */
	size_t	 len;
	int	 quoted;
};

/* wipe_free - explicit_bzero a string and free it */
static void
wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* secret_clear - wipe and free one secret */
static void
secret_clear(struct account_secret *s)
{
	wipe_free(s->value);
	free(s->file);
	memset(s, 0, sizeof(*s));
}

/* accounts_free - wipe every secret, free the list */
void
accounts_free(struct accounts **listp)
{
	struct accounts *l;
	size_t i;

	if (listp == NULL || (l = *listp) == NULL)
		return;
	for (i = 0; i < l->count; i++) {
		free(l->items[i].src_user);
		secret_clear(&l->items[i].src);
		free(l->items[i].dst_user);
		secret_clear(&l->items[i].dst);
	}
	free(l->items);
	free(l->path);
	free(l);
	*listp = NULL;
}

/*
 * read_line - the next line of fp into buf (without its LF, CR LF
 * reduced to nothing).  Returns 1 for a line, 0 at end of file, -1 when
 * the line is longer than size - 1 bytes (the rest of it is consumed),
 * -2 when it holds a NUL byte, -3 on a read error.
 */
static int
read_line(FILE *fp, char *buf, size_t size, size_t *len_r)
{
	size_t n = 0;
	int c, toolong = 0, nul = 0;

	for (;;) {
		c = getc(fp);
		if (c == EOF) {
			if (ferror(fp))
				return (-3);
			if (n == 0 && !toolong && !nul)
				return (0);
			break;
		}
		if (c == '\n')
			break;
		if (c == '\0')
			nul = 1;
		if (n + 1 < size)
			buf[n++] = (char)c;
		else
			toolong = 1;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*len_r = n;
	if (toolong)
		return (-1);
	if (nul)
		return (-2);
	return (1);
}

/*
 * split_fields - cut line into at most NFIELDS_MAX + 1 fields, unquoting
 * quoted ones in place (unescaping only shrinks).  Returns the number
 * of fields, or -1 with why set.
 */
static int
split_fields(char *line, size_t len, struct field *f, const char **why,
    int *field_r)
{
	size_t i = 0, o;
	int n = 0;

	*field_r = 0;
	for (;;) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i >= len)
			return (n);
		if (n == NFIELDS_MAX + 1)	/* enough to say "too many" */
			return (n);
		*field_r = n;
		f[n].quoted = (line[i] == '"');
		if (!f[n].quoted) {
			f[n].s = line + i;
			while (i < len && line[i] != ' ' && line[i] != '\t')
				i++;
			f[n].len = (size_t)(line + i - f[n].s);
			if (i < len)
				line[i++] = '\0';
			n++;
			continue;
		}
		/* Quoted: unescape towards the front, in place. */
		f[n].s = line + ++i;
		o = i;
		for (;;) {
			if (i >= len) {
				*why = "unterminated quote";
				return (-1);
			}
			if (line[i] == '"')
				break;
			if (line[i] == '\\') {
				if (i + 1 >= len || (line[i + 1] != '"' &&
				    line[i + 1] != '\\')) {
					*why = "bad escape (only \\\" and "
					    "\\\\)";
					return (-1);
				}
				i++;
			}
			line[o++] = line[i++];
		}
		f[n].len = (size_t)(line + o - f[n].s);
		i++;				/* closing quote */
		if (i < len && line[i] != ' ' && line[i] != '\t') {
			*why = "text right after a closing quote";
			return (-1);
		}
		line[o] = '\0';		/* may overwrite the quote: fine */
		if (i < len)
			i++;
		n++;
	}
}

/* has_control - 1 when s holds a byte < 0x20 or 0x7f */
static int
has_control(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return (1);
	return (0);
}

/* resolve - basedir/path for a relative path, else a copy of path */
static char *
resolve(const char *basedir, const char *path)
{
	char *out;

	if (path[0] == '/' || basedir == NULL || basedir[0] == '\0')
		return (strdup(path));
	if (asprintf(&out, "%s/%s", basedir, path) == -1)
		return (NULL);
	return (out);
}

/*
 * read_secret_file - the first line of path into buf (len bytes, NUL
 * included), without CR/LF.  Everything read passes through buffers
 * that are wiped here.  0, or -1 with the reason in err.
 */
static int
read_secret_file(const char *path, char *buf, size_t len, char *err,
    size_t errlen)
{
	char iobuf[STDIO_BUFSZ];
	size_t n;
	FILE *fp;
	int rc = -1, r;

	if ((fp = fopen(path, "re")) == NULL) {
		errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
		return (-1);
	}
	setvbuf(fp, iobuf, _IOFBF, sizeof(iobuf));
	r = read_line(fp, buf, len, &n);
	if (r == 0 || (r == 1 && n == 0))
		errbuf_set(err, errlen, "%s: empty", path);
	else if (r == -1)
		errbuf_set(err, errlen, "%s: first line longer than %zu bytes",
		    path, len - 1);
	else if (r == -2 || (r == 1 && has_control(buf, n)))
		errbuf_set(err, errlen, "%s: control character or NUL byte",
		    path);
	else if (r == -3)
		errbuf_set(err, errlen, "%s: read error", path);
	else
		rc = 0;
	fclose(fp);
	explicit_bzero(iobuf, sizeof(iobuf));
	if (rc == -1)
		explicit_bzero(buf, len);
	return (rc);
}

/* accounts_secret - the secret to use now (see accounts.h) */
int
accounts_secret(const struct account_secret *s, char *buf, size_t len,
    char *err, size_t errlen)
{
	if (s->value != NULL) {
		if (strlen(s->value) >= len) {
			errbuf_set(err, errlen, "secret longer than the "
			    "buffer");
			return (-1);
		}
		memcpy(buf, s->value, strlen(s->value) + 1);
		return (0);
	}
	if (s->file == NULL || len == 0) {
		errbuf_set(err, errlen, "no secret");
		return (-1);
	}
	return (read_secret_file(s->file, buf, len, err, errlen));
}

/*
 * parse_wave - "wave=N" (N 1..ACCOUNTS_WAVE_MAX, plain decimal) into
 * *wave_r.  0, or -1 with why set.
 */
static int
parse_wave(const struct field *f, unsigned *wave_r, const char **why)
{
	unsigned v = 0;
	size_t i;

	*why = "wave: expected wave=N with N from 1 to 999";
	if (f->quoted || f->len < 6 || f->len > 8 ||
	    strncmp(f->s, "wave=", 5) != 0 || f->s[5] == '0')
		return (-1);
	for (i = 5; i < f->len; i++) {
		if (f->s[i] < '0' || f->s[i] > '9')
			return (-1);
		v = v * 10 + (unsigned)(f->s[i] - '0');
	}
	if (v < 1 || v > ACCOUNTS_WAVE_MAX)
		return (-1);
	*wave_r = v;
	return (0);
}

/*
 * parse_secret - one secret field into s.  Files named by "@path" are
 * read now; "xoauth2:@path" is only checked now and read at each use.
 * why receives a static reason, or err a full one (*why == NULL).
 */
static int
parse_secret(const struct field *f, const char *basedir, int flags,
    struct account_secret *s, const char **why, char *ferr, size_t ferrlen)
{
	char tmp[ACCOUNTS_SECRET_MAX + 1];
	const char *v = f->s;

	memset(s, 0, sizeof(*s));
	*why = NULL;
	if (!f->quoted && strncasecmp(v, "xoauth2:", 8) == 0) {
		s->auth = ACCOUNT_AUTH_XOAUTH2;
		v += 8;
	}
	if (f->quoted || v[0] != '@') {
		if (v[0] == '\0') {
			*why = "empty";
			return (-1);
		}
		if (flags & ACCOUNTS_NO_SECRETS)
			return (0);
		if ((s->value = strdup(v)) == NULL) {
			*why = "out of memory";
			return (-1);
		}
		return (0);
	}
	if (v[1] == '\0') {
		*why = "\"@\" without a file name";
		return (-1);
	}
	if (flags & ACCOUNTS_NO_SECRETS)
		return (0);
	if ((s->file = resolve(basedir, v + 1)) == NULL) {
		*why = "out of memory";
		return (-1);
	}
	if (read_secret_file(s->file, tmp, sizeof(tmp), ferr, ferrlen) == -1) {
		secret_clear(s);
		return (-1);
	}
	if (s->auth == ACCOUNT_AUTH_PASSWORD &&
	    (s->value = strdup(tmp)) == NULL) {
		explicit_bzero(tmp, sizeof(tmp));
		secret_clear(s);
		*why = "out of memory";
		return (-1);
	}
	explicit_bzero(tmp, sizeof(tmp));
	return (0);
}

/* list_grow - room for one more account */
static int
list_grow(struct accounts *l, size_t *alloc)
{
	struct account *p;
	size_t n;

	if (l->count < *alloc)
		return (0);
	n = *alloc ? *alloc * 2 : 16;
	if ((p = reallocarray(l->items, n, sizeof(*p))) == NULL)
		return (-1);
	l->items = p;
	*alloc = n;
	return (0);
}

/*
 * parse_line - one non-comment line into a (zeroed) account.  0, or -1
 * with the message (without "file:line: ") in err.
 */
static int
parse_line(char *line, size_t len, const char *basedir, int flags,
    struct account *a, char *err, size_t errlen)
{
	struct field f[NFIELDS_MAX + 1];
	char ferr[512];
	const char *why = NULL;
	int n, i, which;

	if ((n = split_fields(line, len, f, &why, &which)) == -1) {
		errbuf_set(err, errlen, "%s: %s", which < NFIELDS ?
		    field_names[which] : "extra field", why);
		return (-1);
	}
	if (n < NFIELDS || n > NFIELDS_MAX) {
		errbuf_set(err, errlen, "expected 4 fields (src_user src_pass "
		    "dst_user dst_pass) and an optional wave=N, found %s%d",
		    n > NFIELDS_MAX ? "more than " : "",
		    n > NFIELDS_MAX ? NFIELDS_MAX : n);
		return (-1);
	}
	if (n == NFIELDS_MAX && parse_wave(&f[NFIELDS], &a->wave, &why) ==
	    -1) {
		errbuf_set(err, errlen, "%s", why);
		return (-1);
	}
	for (i = 0; i < NFIELDS; i++) {
		size_t max = (i % 2 == 0) ? ACCOUNTS_USER_MAX :
		    ACCOUNTS_SECRET_MAX;

		if (f[i].len > max) {
			errbuf_set(err, errlen, "%s: longer than %zu bytes",
			    field_names[i], max);
			return (-1);
		}
		if (has_control(f[i].s, f[i].len)) {
			errbuf_set(err, errlen, "%s: control character",
			    field_names[i]);
			return (-1);
		}
		if (i % 2 == 0 && f[i].len == 0) {
			errbuf_set(err, errlen, "%s: empty", field_names[i]);
			return (-1);
		}
		if (i % 2 == 0 && !utf8_valid(f[i].s, f[i].len)) {
			errbuf_set(err, errlen, "%s: not valid UTF-8",
			    field_names[i]);
			return (-1);
		}
	}
	if ((a->src_user = strdup(f[0].s)) == NULL ||
	    (a->dst_user = strdup(f[2].s)) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	for (i = 1; i < NFIELDS; i += 2) {
		struct account_secret *s = (i == 1) ? &a->src : &a->dst;

		ferr[0] = '\0';
		if (parse_secret(&f[i], basedir, flags, s, &why, ferr,
		    sizeof(ferr)) == -1) {
			if (why != NULL)
				errbuf_set(err, errlen, "%s: %s",
				    field_names[i], why);
			else
				errbuf_set(err, errlen, "%s file %s",
				    field_names[i], ferr);
			return (-1);
		}
	}
	return (0);
}

/* user_cmp - order for duplicate detection: user (ci), then line */
static int
user_cmp(const void *a, const void *b)
{
	const struct account *x = *(const struct account *const *)a;
	const struct account *y = *(const struct account *const *)b;
	int c = strcasecmp(x->src_user, y->src_user);

	if (c != 0)
		return (c);
	return (x->line < y->line ? -1 : x->line > y->line);
}

/*
 * check_duplicates - report the duplicate source user on the earliest
 * line, as "name:line: duplicate ...".  0 if there is none.  Sorting
 * keeps this O(n log n) for the many-thousand-account files of an ISP.
 */
static int
check_duplicates(const struct accounts *l, const char *name, char *err,
    size_t errlen)
{
	const struct account **v, *dup = NULL, *first = NULL;
	size_t i;

	if (l->count < 2)
		return (0);
	if ((v = calloc(l->count, sizeof(*v))) == NULL) {
		errbuf_set(err, errlen, "%s: out of memory", name);
		return (-1);
	}
	for (i = 0; i < l->count; i++)
		v[i] = &l->items[i];
	qsort(v, l->count, sizeof(*v), user_cmp);
	/* In a run of equal users, v[start] has the smallest line. */
	for (i = 1; i < l->count; i++) {
		size_t start = i - 1;

		if (strcasecmp(v[start]->src_user, v[i]->src_user) != 0)
			continue;
		if (dup == NULL || v[i]->line < dup->line) {
			dup = v[i];
			first = v[start];
		}
		while (i + 1 < l->count &&
		    strcasecmp(v[i]->src_user, v[i + 1]->src_user) == 0)
			i++;
	}
	if (dup != NULL)
		errbuf_set(err, errlen, "%s:%u: duplicate source user (first "
		    "on line %u)", name, dup->line, first->line);
	free(v);
	return (dup != NULL ? -1 : 0);
}

/* accounts_load_fp - parse a stream (see accounts.h) */
int
accounts_load_fp(FILE *fp, const char *name, const char *basedir,
    struct accounts **list_r, char *err, size_t errlen)
{
	return (accounts_load_fp_opts(fp, name, basedir, 0, list_r, err,
	    errlen));
}

/* accounts_load_fp_opts - parse a stream with ACCOUNTS_* flags */
int
accounts_load_fp_opts(FILE *fp, const char *name, const char *basedir,
    int flags, struct accounts **list_r, char *err, size_t errlen)
{
	char line[ACCOUNTS_LINE_MAX + 1], why[768];
	struct accounts *l;
	size_t len, alloc = 0, i;
	unsigned lineno = 0;
	int r, rc = -1;

	*list_r = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->path = strdup(name)) == NULL) {
		free(l);
		errbuf_set(err, errlen, "%s: out of memory", name);
		return (-1);
	}
	for (;;) {
		r = read_line(fp, line, sizeof(line), &len);
		if (r == 0)
			break;
		lineno++;
		if (r == -1) {
			errbuf_set(err, errlen, "%s:%u: line longer than %d "
			    "bytes", name, lineno, ACCOUNTS_LINE_MAX);
			goto out;
		}
		if (r == -2) {
			errbuf_set(err, errlen, "%s:%u: NUL byte", name,
			    lineno);
			goto out;
		}
		if (r == -3) {
			errbuf_set(err, errlen, "%s: read error", name);
			goto out;
		}
		/* A byte order mark some Windows editors put first. */
		if (lineno == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf",
		    3) == 0) {
			memmove(line, line + 3, len - 2);
			len -= 3;
		}
		for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
			;
		if (i == len || line[i] == '#')
			continue;
		if (list_grow(l, &alloc) == -1) {
			errbuf_set(err, errlen, "%s: out of memory", name);
			goto out;
		}
		memset(&l->items[l->count], 0, sizeof(l->items[0]));
		l->items[l->count].line = lineno;
		l->count++;		/* so that accounts_free() sees it */
		if (parse_line(line, len, basedir, flags,
		    &l->items[l->count - 1], why, sizeof(why)) == -1) {
			errbuf_set(err, errlen, "%s:%u: %s", name, lineno, why);
			goto out;
		}
		if (l->items[l->count - 1].wave != 0)
			l->nwaved++;
	}
	if (l->count == 0) {
		errbuf_set(err, errlen, "%s: no account in the file", name);
		goto out;
	}
	if (check_duplicates(l, name, err, errlen) == -1)
		goto out;
	*list_r = l;
	l = NULL;
	rc = 0;
out:
	explicit_bzero(line, sizeof(line));
	explicit_bzero(why, sizeof(why));
	accounts_free(&l);
	return (rc);
}

/* accounts_load - open path and parse it (see accounts.h) */
int
accounts_load(const char *path, struct accounts **list_r, char *err,
    size_t errlen)
{
	return (accounts_load_opts(path, 0, list_r, err, errlen));
}

/* accounts_load_opts - open path and parse it with ACCOUNTS_* flags */
int
accounts_load_opts(const char *path, int flags, struct accounts **list_r,
    char *err, size_t errlen)
{
	char iobuf[STDIO_BUFSZ], *dir, *slash;
	struct stat st;
	FILE *fp;
	int rc;

	*list_r = NULL;
	if ((fp = fopen(path, "re")) == NULL) {
		errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
		return (-1);
	}
	if (fstat(fileno(fp), &st) == -1 || !S_ISREG(st.st_mode)) {
		errbuf_set(err, errlen, "%s: not a regular file", path);
		fclose(fp);
		return (-1);
	}
	if ((dir = strdup(path)) == NULL) {
		errbuf_set(err, errlen, "%s: out of memory", path);
		fclose(fp);
		return (-1);
	}
	if ((slash = strrchr(dir, '/')) == NULL)
		dir[0] = '\0';
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	setvbuf(fp, iobuf, _IOFBF, sizeof(iobuf));
	rc = accounts_load_fp_opts(fp, path, dir, flags, list_r, err, errlen);
	fclose(fp);
	explicit_bzero(iobuf, sizeof(iobuf));
	free(dir);
	if (rc == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
		(*list_r)->insecure = 1;
	return (rc);
}

/* accounts_find - the account of src_user (ASCII case-insensitive) */
const struct account *
accounts_find(const struct accounts *list, const char *src_user)
{
	size_t i;

	if (list == NULL || src_user == NULL)
		return (NULL);
	for (i = 0; i < list->count; i++)
		if (strcasecmp(list->items[i].src_user, src_user) == 0)
			return (&list->items[i]);
	return (NULL);
}

/* accounts_wave_count - accounts in wave */
size_t
accounts_wave_count(const struct accounts *list, unsigned wave)
{
	size_t i, n = 0;

	if (list == NULL || wave == 0)
		return (0);
	for (i = 0; i < list->count; i++)
		if (list->items[i].wave == wave)
			n++;
	return (n);
}
