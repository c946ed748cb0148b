/*
 * archive_imapd.c - the read-only IMAP server over a local archive (see
 * archive.h).  It speaks the subset of IMAP4rev1 the sync engine uses on
 * a source: greeting, CAPABILITY, LOGIN/AUTHENTICATE PLAIN (any
 * credentials: the archive is local and the account name only picks the
 * path), ID, NAMESPACE, LIST/LSUB, STATUS, EXAMINE/SELECT (always
 * read-only), FETCH/UID FETCH, SEARCH/UID SEARCH (ALL, UID set), NOOP,
 * CHECK, CLOSE, UNSELECT, LOGOUT.  Anything else gets BAD.
 *
 * Messages are served with CRLF line ends, as an IMAP server stores
 * them, streamed from their files (archive_stream.c): never held whole
 * in memory, whatever their size; RFC822.SIZE is the size served.  A message that cannot be read
 * (unreadable file, NUL bytes) makes the FETCH that
 * asked for its body fail with NO naming the file and the reason, so the
 * engine reports the folder as not fully copied instead of skipping it.
 *
 * One blocking thread per session; the session state changes through
 * sess_state(), which logs it.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "archive_p.h"

#define LINE_MAX_IN	(64 * 1024)
#define MAX_TOKS	32
#define OUTBUF		(64 * 1024)

enum sess_state { SS_NOAUTH, SS_AUTH, SS_SELECTED, SS_LOGOUT };
static const char *const state_name[] = { "not authenticated",
	"authenticated", "selected", "logout" };

enum tok_kind { TK_ATOM, TK_STRING, TK_LIST };
struct tok {
	enum tok_kind	 kind;
	char		*s;		/* NUL terminated (owned by sess) */
	size_t		 n;
};

struct sess {
	int		 fd;
	char		 in[16384];
	size_t		 inpos, inlen;
	char		 out[OUTBUF];
	size_t		 outlen;
	int		 dead;
	enum sess_state	 state;
	struct arc_store st;
	struct arc_folder *sel;
	char		 user[256];
	char		 path[1024];
	char		 state_dir[1024];
	char		*line;		/* current command, tokens point in */
	struct tok	 t[MAX_TOKS];
	size_t		 nt;
	char		*lits[MAX_TOKS];
	size_t		 nlits;
};

static void
sess_state(struct sess *s, enum sess_state to)
{
	if (s->state != to)
		log_debug("archive %s: %s -> %s", s->st.root,
		    state_name[s->state], state_name[to]);
	s->state = to;
}

/* ---- output ----------------------------------------------------- */

static void
out_flush(struct sess *s)
{
	size_t o = 0;
	ssize_t w;

	while (!s->dead && o < s->outlen) {
		w = send(s->fd, s->out + o, s->outlen - o, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			s->dead = 1;
			break;
		}
		o += (size_t)w;
	}
	s->outlen = 0;
}

static void
out_bytes(struct sess *s, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0 && !s->dead) {
		size_t k = sizeof(s->out) - s->outlen;

		if (k > n)
			k = n;
		memcpy(s->out + s->outlen, c, k);
		s->outlen += k;
		c += k;
		n -= k;
		if (s->outlen == sizeof(s->out))
			out_flush(s);
	}
}

static void __attribute__((format(printf, 2, 3)))
out_fmt(struct sess *s, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	out_bytes(s, buf, (size_t)n < sizeof(buf) ? (size_t)n :
	    sizeof(buf) - 1);
}

/* a quoted string, or a literal when it cannot be quoted */
static void
out_string(struct sess *s, const char *v)
{
	const char *p;

	for (p = v; *p; p++)
		if (*p == '\r' || *p == '\n' || (unsigned char)*p >= 0x80)
			break;
	if (*p != '\0') {
		out_fmt(s, "{%zu}\r\n", strlen(v));
		out_bytes(s, v, strlen(v));
		return;
	}
	out_bytes(s, "\"", 1);
	for (p = v; *p; p++) {
		if (*p == '"' || *p == '\\')
			out_bytes(s, "\\", 1);
		out_bytes(s, p, 1);
	}
	out_bytes(s, "\"", 1);
}

/* text of a response: no CR/LF from file names or errors */
static void
out_text(struct sess *s, const char *v)
{
	for (; *v; v++)
		out_bytes(s, (*v == '\r' || *v == '\n' ||
		    (unsigned char)*v < 0x20) ? "?" : v, 1);
}

/* ---- input ------------------------------------------------------ */

static int
in_byte(struct sess *s)
{
	ssize_t r;

	if (s->inpos == s->inlen) {
		do
			r = recv(s->fd, s->in, sizeof(s->in), 0);
		while (r < 0 && errno == EINTR);
		if (r <= 0)
			return (-1);
		s->inpos = 0;
		s->inlen = (size_t)r;
	}
	return ((unsigned char)s->in[s->inpos++]);
}

/* one line without CRLF into a fresh buffer; NULL on EOF; *toolong */
static char *
in_line(struct sess *s, size_t *len, int *toolong)
{
	char *b;
	size_t n = 0;
	int c;

	*toolong = 0;
	if ((b = malloc(LINE_MAX_IN + 1)) == NULL)
		return (NULL);
	for (;;) {
		if ((c = in_byte(s)) == -1) {
			free(b);
			return (NULL);
		}
		if (c == '\n')
			break;
		if (n < LINE_MAX_IN)
			b[n++] = (char)c;
		else
			*toolong = 1;
	}
	if (n > 0 && b[n - 1] == '\r')
		n--;
	b[n] = '\0';
	*len = n;
	return (b);
}

static void
toks_free(struct sess *s)
{
	size_t i;

	for (i = 0; i < s->nlits; i++)
		free(s->lits[i]);
	s->nlits = 0;
	s->nt = 0;
	free(s->line);
	s->line = NULL;
}

/*
 * tokenize - split s->line (modified in place) into tokens; a literal
 * "{n}" / "{n+}" at the end of the line is read, then the next line
 * continues the command.  0, or -1 (message in why).
 */
static int
tokenize(struct sess *s, const char **why)
{
	char *p = s->line, *q;
	size_t len, i;
	int toolong;

	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return (0);
		if (s->nt == MAX_TOKS) {
			*why = "too many arguments";
			return (-1);
		}
		if (*p == '"') {
			s->t[s->nt].kind = TK_STRING;
			s->t[s->nt].s = q = ++p;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				*q++ = *p++;
			}
			if (*p != '"') {
				*why = "unterminated string";
				return (-1);
			}
			*q = '\0';
			s->t[s->nt].n = (size_t)(q - s->t[s->nt].s);
			p++;
			s->nt++;
		} else if (*p == '{') {
			unsigned long long n;
			int sync;
			char *lit, *next, *end;

			n = strtoull(p + 1, &end, 10);
			sync = *end != '+';
			if (!sync)
				end++;
			if (*end != '}' || end[1] != '\0' || n > LINE_MAX_IN) {
				*why = "bad literal";
				return (-1);
			}
			if (sync) {
				out_fmt(s, "+ go ahead\r\n");
				out_flush(s);
			}
			if ((lit = malloc(n + 1)) == NULL) {
				*why = "out of memory";
				return (-1);
			}
			for (i = 0; i < n; i++) {
				int c = in_byte(s);

				if (c == -1) {
					free(lit);
					*why = "connection closed";
					return (-1);
				}
				lit[i] = (char)c;
			}
			lit[n] = '\0';
			s->lits[s->nlits++] = lit;
			s->t[s->nt].kind = TK_STRING;
			s->t[s->nt].s = lit;
			s->t[s->nt].n = n;
			s->nt++;
			if ((next = in_line(s, &len, &toolong)) == NULL) {
				*why = "connection closed";
				return (-1);
			}
			if (toolong || s->nlits == MAX_TOKS) {
				free(next);
				*why = "command too long";
				return (-1);
			}
			s->lits[s->nlits++] = next;
			p = next;
		} else {
			int depth = 0, br = 0;

			s->t[s->nt].kind = *p == '(' ? TK_LIST : TK_ATOM;
			s->t[s->nt].s = p;
			for (; *p; p++) {
				if (*p == '(')
					depth++;
				else if (*p == ')')
					depth--;
				else if (*p == '[')
					br++;
				else if (*p == ']')
					br--;
				else if (*p == ' ' && depth <= 0 && br <= 0)
					break;
				if (depth == 0 && s->t[s->nt].kind == TK_LIST &&
				    *p == ')') {
					p++;
					break;
				}
			}
			s->t[s->nt].n = (size_t)(p - s->t[s->nt].s);
			if (*p)
				*p++ = '\0';
			s->nt++;
		}
	}
}

/* ---- folders ---------------------------------------------------- */

static int
store_list(struct sess *s, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < s->st.nf; i++) {
		arc_folder_clear(&s->st.f[i]);
		free(s->st.f[i].name);
		free(s->st.f[i].path);
	}
	free(s->st.f);
	s->st.f = NULL;
	s->st.nf = 0;
	s->sel = NULL;
	return (s->st.kind == ARCHIVE_MAILDIR ? arc_maildir_list(&s->st, err,
	    errlen) : arc_mbox_list(&s->st, err, errlen));
}

static struct arc_folder *
find_folder(struct sess *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->st.nf; i++)
		if (strcmp(s->st.f[i].name, name) == 0 ||
		    (strcasecmp(name, "INBOX") == 0 &&
		    strcmp(s->st.f[i].name, "INBOX") == 0))
			return (&s->st.f[i]);
	return (NULL);
}

static int
folder_load(struct sess *s, struct arc_folder *f)
{
	return (s->st.kind == ARCHIVE_MAILDIR ? arc_maildir_load(&s->st, f) :
	    arc_mbox_load(&s->st, f));
}

/* IMAP LIST wildcard match: '*' anything, '%' anything but '/' */
static int
wild(const char *p, const char *n)
{
	if (*p == '\0')
		return (*n == '\0');
	if (*p == '*' || *p == '%') {
		for (;; n++) {
			if (wild(p + 1, n))
				return (1);
			if (*n == '\0' || (*p == '%' && *n == '/'))
				return (0);
		}
	}
	return (*p == *n && wild(p + 1, n + 1));
}

static uint32_t
folder_unseen(const struct arc_folder *f)
{
	uint32_t u = 0;
	size_t i;

	for (i = 0; i < f->n; i++)
		if (!(f->v[i].flags & ARC_SEEN))
			u++;
	return (u);
}

/* ---- commands --------------------------------------------------- */

static void
tagged(struct sess *s, const char *tag, const char *st, const char *text)
{
	out_fmt(s, "%s %s ", tag, st);
	out_text(s, text);
	out_bytes(s, "\r\n", 2);
	out_flush(s);
}

static const char CAPS[] = "IMAP4rev1 LITERAL+ ID NAMESPACE UNSELECT "
    "AUTH=PLAIN SASL-IR";

static void
cmd_list(struct sess *s, const char *tag, int lsub)
{
	char err[300];
	const char *pat;
	size_t i, a = 1;

	if (s->nt > 2 && s->t[2].kind == TK_LIST)
		a = 3;		/* LIST (selection options) ref pattern */
	else
		a = 2;
	if (s->nt < a + 2) {
		tagged(s, tag, "BAD", "LIST needs a reference and a pattern");
		return;
	}
	pat = s->t[a + 1].s;
	if (*pat == '\0') {
		out_fmt(s, "* %s (\\Noselect) \"/\" \"\"\r\n", lsub ? "LSUB" :
		    "LIST");
		tagged(s, tag, "OK", "LIST done");
		return;
	}
	if (s->sel == NULL && store_list(s, err, sizeof(err)) == -1) {
		tagged(s, tag, "NO", err);
		return;
	}
	for (i = 0; i < s->st.nf; i++) {
		if (!wild(pat, s->st.f[i].name))
			continue;
		out_fmt(s, "* %s () \"/\" ", lsub ? "LSUB" : "LIST");
		out_string(s, s->st.f[i].name);
		out_bytes(s, "\r\n", 2);
	}
	tagged(s, tag, "OK", "LIST done");
}

static void
cmd_status(struct sess *s, const char *tag)
{
	struct arc_folder *f;
	char *items, *w, *save = NULL;
	int first = 1;

	if (s->nt < 4 || s->t[3].kind != TK_LIST) {
		tagged(s, tag, "BAD", "STATUS needs a mailbox and items");
		return;
	}
	if ((f = find_folder(s, s->t[2].s)) == NULL) {
		tagged(s, tag, "NO", "[NONEXISTENT] no such folder");
		return;
	}
	if (f != s->sel && folder_load(s, f) == -1) {
		tagged(s, tag, "NO", f->bad);
		return;
	}
	out_fmt(s, "* STATUS ");
	out_string(s, f->name);
	out_fmt(s, " (");
	items = s->t[3].s + 1;
	if (*items && items[strlen(items) - 1] == ')')
		items[strlen(items) - 1] = '\0';
	for (w = strtok_r(items, " ", &save); w != NULL;
	    w = strtok_r(NULL, " ", &save)) {
		uint64_t v;

		if (strcasecmp(w, "MESSAGES") == 0)
			v = f->n;
		else if (strcasecmp(w, "UIDNEXT") == 0)
			v = f->uidnext;
		else if (strcasecmp(w, "UIDVALIDITY") == 0)
			v = f->uidvalidity;
		else if (strcasecmp(w, "UNSEEN") == 0)
			v = folder_unseen(f);
		else if (strcasecmp(w, "RECENT") == 0)
			v = 0;
		else
			continue;
		out_fmt(s, "%s%s %" PRIu64, first ? "" : " ", w, v);
		first = 0;
	}
	out_fmt(s, ")\r\n");
	tagged(s, tag, "OK", "STATUS done");
}

static void
cmd_select(struct sess *s, const char *tag)
{
	struct arc_folder *f;
	size_t i;

	s->sel = NULL;
	sess_state(s, SS_AUTH);
	if (s->nt < 3) {
		tagged(s, tag, "BAD", "EXAMINE needs a mailbox");
		return;
	}
	if ((f = find_folder(s, s->t[2].s)) == NULL) {
		tagged(s, tag, "NO", "[NONEXISTENT] no such folder");
		return;
	}
	if (folder_load(s, f) == -1) {
		tagged(s, tag, "NO", f->bad);
		return;
	}
	out_fmt(s, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft"
	    " $Forwarded");
	for (i = 0; i < ARC_MAX_KW; i++)
		if (f->kw[i] != NULL)
			out_fmt(s, " %s", f->kw[i]);
	out_fmt(s, ")\r\n* OK [PERMANENTFLAGS ()] read-only\r\n"
	    "* %zu EXISTS\r\n* 0 RECENT\r\n"
	    "* OK [UIDVALIDITY %" PRIu32 "] UIDs valid\r\n"
	    "* OK [UIDNEXT %" PRIu32 "] predicted next UID\r\n",
	    f->n, f->uidvalidity, f->uidnext);
	s->sel = f;
	sess_state(s, SS_SELECTED);
	tagged(s, tag, "OK", "[READ-ONLY] EXAMINE done");
}

/* a sequence set as ranges; '*' = max.  -1 when malformed */
struct range { uint64_t lo, hi; };

static int
parse_set(const char *p, uint64_t max, struct range **out, size_t *nout)
{
	struct range *r = NULL, *nr;
	size_t n = 0;
	char *end;

	for (;;) {
		uint64_t a, b;

		if (*p == '*') {
			a = max;
			p++;
		} else {
			if (!isdigit((unsigned char)*p))
				goto bad;
			a = strtoull(p, &end, 10);
			p = end;
		}
		b = a;
		if (*p == ':') {
			p++;
			if (*p == '*') {
				b = max;
				p++;
			} else {
				if (!isdigit((unsigned char)*p))
					goto bad;
				b = strtoull(p, &end, 10);
				p = end;
			}
		}
		if ((nr = realloc(r, (n + 1) * sizeof(*r))) == NULL)
			goto bad;
		r = nr;
		r[n].lo = a < b ? a : b;
		r[n].hi = a < b ? b : a;
		n++;
		if (*p == '\0')
			break;
		if (*p++ != ',')
			goto bad;
	}
	*out = r;
	*nout = n;
	return (0);
bad:
	free(r);
	return (-1);
}

static int
in_set(const struct range *r, size_t n, uint64_t v)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v >= r[i].lo && v <= r[i].hi)
			return (1);
	return (0);
}

static void
fmt_date(time_t t, char *buf, size_t len)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
	    mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	    tm.tm_sec);
}

/* the header fields named in list "(A B C)" of message b (CRLF) */
static void
out_fields(struct sess *s, const char *b, size_t n, const char *list,
    int not)
{
	char names[1024], *w, *save = NULL, *sel;
	const char *p = b, *end = b + n, *hend;
	size_t k = 0, cap = n + 2;
	int keep = 0;

	snprintf(names, sizeof(names), "%s", list);
	if ((sel = malloc(cap + 2)) == NULL) {
		out_fmt(s, "{2}\r\n\r\n");
		return;
	}
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t ln;

		hend = eol ? eol + 1 : end;
		ln = (size_t)(hend - p);
		if (ln <= 2 && (*p == '\r' || *p == '\n'))
			break;		/* end of header */
		if (*p != ' ' && *p != '\t') {
			const char *colon = memchr(p, ':', ln);
			char tmp[1024];

			keep = not;
			snprintf(tmp, sizeof(tmp), "%s", names);
			save = NULL;
			for (w = strtok_r(tmp, " ()", &save); colon && w;
			    w = strtok_r(NULL, " ()", &save))
				if (strlen(w) == (size_t)(colon - p) &&
				    strncasecmp(w, p, strlen(w)) == 0) {
					keep = !not;
					break;
				}
		}
		if (keep) {
			memcpy(sel + k, p, ln);
			k += ln;
		}
		p = hend;
	}
	memcpy(sel + k, "\r\n", 2);
	k += 2;
	out_fmt(s, "{%zu}\r\n", k);
	out_bytes(s, sel, k);
	free(sel);
}

/* ---- serving a message from its file ----------------------------- */

/* what a pass over a message found: its size as served, where its
 * header ends (through the blank line; n when none), NUL bytes */
struct meas {
	uint64_t	 n, h;
	int		 hfound, nul;
	unsigned char	 p1, p2;	/* the two bytes before */
};

static int
meas_sink(void *arg, const char *p, size_t len)
{
	struct meas *me = arg;
	size_t i;

	if (memchr(p, '\0', len) != NULL)
		me->nul = 1;
	for (i = 0; i < len && !me->hfound; i++) {
		unsigned char c = (unsigned char)p[i];

		/* LF LF, or LF CR LF: the header's end */
		if (c == '\n' && (me->p1 == '\n' || (me->p1 == '\r' &&
		    me->p2 == '\n'))) {
			me->h = me->n + i + 1;
			me->hfound = 1;
		}
		me->p2 = me->p1;
		me->p1 = c;
	}
	me->n += len;
	return (0);
}

/* served bytes [lo, hi) to the client, or into buf when buf != NULL */
struct win {
	struct sess	*s;
	char		*buf;
	uint64_t	 pos, lo, hi;
};

static int
win_sink(void *arg, const char *p, size_t len)
{
	struct win *w = arg;
	uint64_t a = w->pos, b = w->pos + len;

	w->pos = b;
	if (b > w->lo && a < w->hi) {
		uint64_t from = a < w->lo ? w->lo - a : 0;
		uint64_t to = (b > w->hi ? w->hi : b) - a;

		if (w->buf != NULL)
			memcpy(w->buf + (a + from - w->lo), p + from,
			    (size_t)(to - from));
		else
			out_bytes(w->s, p + from, (size_t)(to - from));
	}
	if (w->buf == NULL && w->s->dead)
		return (-1);
	return (b >= w->hi ? 1 : 0);
}

/*
 * serve_range - served bytes [lo, hi) of the message to the client
 * (buf NULL: the literal's size is written already) or into buf.  The
 * file changing between two passes would leave a literal short: the
 * connection is then closed, which the engine takes as a temporary
 * failure and retries.  0, or -1 + why.
 */
static int
serve_range(struct sess *s, const struct arc_reader *rd, uint64_t lo,
    uint64_t hi, char *buf, char *why, size_t wlen)
{
	struct win w;

	memset(&w, 0, sizeof(w));
	w.s = s;
	w.buf = buf;
	w.lo = lo;
	w.hi = hi;
	if (hi <= lo)
		return (0);
	if (arc_serve(rd, win_sink, &w, why, wlen) == -1 || w.pos < hi) {
		if (w.pos < hi && !s->dead)
			errbuf_set(why, wlen, "the file changed while read");
		if (buf == NULL)
			s->dead = 1;
		return (-1);
	}
	return (0);
}

/* open_msg - the message's file open and measured into *me */
static int
open_msg(struct sess *s, struct arc_msg *m, struct arc_reader *rd,
    struct meas *me, char *why, size_t wlen)
{
	memset(me, 0, sizeof(*me));
	if (arc_open(&s->st, s->sel, m, rd, why, wlen) == -1)
		return (-1);
	if (arc_serve(rd, meas_sink, me, why, wlen) == -1) {
		arc_reader_close(rd);
		return (-1);
	}
	if (me->nul) {
		arc_reader_close(rd);
		errbuf_set(why, wlen, "contains NUL bytes");
		return (-1);
	}
	if (!me->hfound)
		me->h = me->n;
	m->size = me->n;
	return (0);
}

/* the header's bytes, for HEADER.FIELDS: at most this many held */
#define HDR_HOLD	(16u << 20)

static int
fetch_one(struct sess *s, size_t seq, struct arc_msg *m, const char *items,
    int uidcmd, char *why, size_t wlen)
{
	char date[64];
	const char *p = items;
	struct arc_reader rd;
	struct meas me;
	int first = 1, opened = 0, i;

	rd.fd = -1;

	out_fmt(s, "* %zu FETCH (", seq);
	if (uidcmd) {
		out_fmt(s, "UID %" PRIu32, m->uid);
		first = 0;
	}
	while (*p) {
		char item[1100];
		size_t k = 0;
		int br = 0;

		while (*p == ' ' || *p == '(' || *p == ')')
			p++;
		while (*p && (br || (*p != ' ' && *p != ')')) && k + 1 <
		    sizeof(item)) {
			if (*p == '[')
				br++;
			else if (*p == ']')
				br--;
			item[k++] = *p++;
		}
		item[k] = '\0';
		if (k == 0)
			break;
		if (strcasecmp(item, "UID") == 0) {
			if (uidcmd)
				continue;
			out_fmt(s, "%sUID %" PRIu32, first ? "" : " ", m->uid);
		} else if (strcasecmp(item, "FLAGS") == 0) {
			static const struct { unsigned b; const char *n; } fl[]
			    = { { ARC_SEEN, "\\Seen" }, { ARC_ANSWERED,
			    "\\Answered" }, { ARC_FLAGGED, "\\Flagged" },
			    { ARC_DELETED, "\\Deleted" }, { ARC_DRAFT,
			    "\\Draft" }, { ARC_FORWARDED, "$Forwarded" } };
			int f1 = 1;
			size_t j;

			out_fmt(s, "%sFLAGS (", first ? "" : " ");
			for (j = 0; j < sizeof(fl) / sizeof(fl[0]); j++)
				if (m->flags & fl[j].b) {
					out_fmt(s, "%s%s", f1 ? "" : " ",
					    fl[j].n);
					f1 = 0;
				}
			for (i = 0; i < ARC_MAX_KW; i++)
				if ((m->kw & (1u << i)) && s->sel->kw[i]) {
					out_fmt(s, "%s%s", f1 ? "" : " ",
					    s->sel->kw[i]);
					f1 = 0;
				}
			out_fmt(s, ")");
		} else if (strcasecmp(item, "INTERNALDATE") == 0) {
			fmt_date(m->idate, date, sizeof(date));
			out_fmt(s, "%sINTERNALDATE \"%s\"", first ? "" : " ",
			    date);
		} else if (strcasecmp(item, "RFC822.SIZE") == 0 ||
		    strncasecmp(item, "BODY", 4) == 0 ||
		    strcasecmp(item, "RFC822") == 0) {
			if (!opened && open_msg(s, m, &rd, &me, why, wlen) ==
			    -1)
				return (-1);
			opened = 1;
			if (strcasecmp(item, "RFC822.SIZE") == 0) {
				out_fmt(s, "%sRFC822.SIZE %" PRIu64, first ?
				    "" : " ", me.n);
			} else {
				const char *sec = strchr(item, '['), *e;
				uint64_t h = me.h, n = me.n;
				char *hb = NULL;
				int sk = -1, rc = 0;

				if (strcasecmp(item, "RFC822") == 0)
					sec = "[]";
				if (sec != NULL && (e = strrchr(sec, ']')) !=
				    NULL && e[1] == '\0') {
					if (strcmp(sec, "[]") == 0)
						sk = 0;
					else if (strcasecmp(sec, "[HEADER]") == 0)
						sk = 1;
					else if (strcasecmp(sec, "[TEXT]") == 0)
						sk = 2;
					else if (strncasecmp(sec,
					    "[HEADER.FIELDS.NOT (", 20) == 0)
						sk = 4;
					else if (strncasecmp(sec,
					    "[HEADER.FIELDS (", 16) == 0)
						sk = 3;
				}
				if (sk == -1) {
					arc_reader_close(&rd);
					errbuf_set(why, wlen, "unsupported "
					    "FETCH item %s", item);
					return (-2);
				}
				if (sk >= 3) {
					/* the fields are picked from the
					 * header held in memory */
					if (h > HDR_HOLD ||
					    (hb = malloc((size_t)h + 1)) ==
					    NULL) {
						arc_reader_close(&rd);
						errbuf_set(why, wlen, "%s", h >
						    HDR_HOLD ? "header over 16 "
						    "MiB" : "out of memory");
						return (-1);
					}
					if (serve_range(s, &rd, 0, h, hb, why,
					    wlen) == -1) {
						free(hb);
						arc_reader_close(&rd);
						return (-1);
					}
				}
				out_fmt(s, "%sBODY%s ", first ? "" : " ", sec);
				if (sk == 0) {
					out_fmt(s, "{%" PRIu64 "}\r\n", n);
					rc = serve_range(s, &rd, 0, n, NULL,
					    why, wlen);
				} else if (sk == 1) {
					out_fmt(s, "{%" PRIu64 "}\r\n", h);
					rc = serve_range(s, &rd, 0, h, NULL,
					    why, wlen);
				} else if (sk == 2) {
					out_fmt(s, "{%" PRIu64 "}\r\n", n - h);
					rc = serve_range(s, &rd, h, n, NULL,
					    why, wlen);
				} else
					out_fields(s, hb, (size_t)h, sec +
					    (sk == 4 ? 19 : 15), sk == 4);
				free(hb);
				if (rc == -1) {
					arc_reader_close(&rd);
					return (-1);
				}
			}
		} else {
			arc_reader_close(&rd);
			errbuf_set(why, wlen, "unsupported FETCH item %s", item);
			return (-2);
		}
		first = 0;
	}
	arc_reader_close(&rd);
	out_fmt(s, ")\r\n");
	return (0);
}

static void
cmd_fetch(struct sess *s, const char *tag, int uidcmd, size_t a)
{
	struct range *r;
	size_t nr, i;
	char why[600], msg[900];
	int rc;

	if (s->sel == NULL) {
		tagged(s, tag, "BAD", "no folder selected");
		return;
	}
	if (s->nt < a + 2) {
		tagged(s, tag, "BAD", "FETCH needs a set and items");
		return;
	}
	if (parse_set(s->t[a].s, uidcmd ? (s->sel->n ? s->sel->v[s->sel->n -
	    1].uid : 0) : s->sel->n, &r, &nr) == -1) {
		tagged(s, tag, "BAD", "bad sequence set");
		return;
	}
	for (i = 0; i < s->sel->n; i++) {
		struct arc_msg *m = &s->sel->v[i];

		if (!in_set(r, nr, uidcmd ? m->uid : i + 1))
			continue;
		if ((rc = fetch_one(s, i + 1, m, s->t[a + 1].s, uidcmd, why,
		    sizeof(why))) < 0) {
			free(r);
			/* the partial FETCH line is cut by the tagged reply's
			 * CRLF; the client then sees the NO */
			out_fmt(s, ")\r\n");
			errbuf_set(msg, sizeof(msg), "%s UID %" PRIu32 " (%s%s%s):"
			    " %s", rc == -2 ? "cannot fetch" :
			    "cannot read message", m->uid, s->sel->name,
			    m->file ? "/" : "", m->file ? m->file : "", why);
			log_warnx("archive %s: %s", s->st.root, msg);
			tagged(s, tag, rc == -2 ? "BAD" : "NO", msg);
			return;
		}
	}
	free(r);
	tagged(s, tag, "OK", "FETCH done");
}

static void
cmd_search(struct sess *s, const char *tag, int uidcmd, size_t a)
{
	struct range *r = NULL;
	size_t nr = 0, i;
	int all = 0;

	if (s->sel == NULL) {
		tagged(s, tag, "BAD", "no folder selected");
		return;
	}
	if (s->nt == a + 1 && strcasecmp(s->t[a].s, "ALL") == 0)
		all = 1;
	else if (s->nt == a + 2 && strcasecmp(s->t[a].s, "UID") == 0) {
		if (parse_set(s->t[a + 1].s, s->sel->n ? s->sel->v[s->sel->n -
		    1].uid : 0, &r, &nr) == -1) {
			tagged(s, tag, "BAD", "bad UID set");
			return;
		}
	} else {
		tagged(s, tag, "BAD", "only SEARCH ALL and SEARCH UID set");
		return;
	}
	out_fmt(s, "* SEARCH");
	for (i = 0; i < s->sel->n; i++)
		if (all || in_set(r, nr, s->sel->v[i].uid))
			out_fmt(s, " %" PRIu64, uidcmd ?
			    (uint64_t)s->sel->v[i].uid : (uint64_t)i + 1);
	out_fmt(s, "\r\n");
	free(r);
	tagged(s, tag, "OK", "SEARCH done");
}

/* login - the account is known: open the archive */
static void
do_login(struct sess *s, const char *tag)
{
	char err[600];

	if (store_list(s, err, sizeof(err)) == -1) {
		log_warnx("archive %s: %s", s->st.root, err);
		tagged(s, tag, "NO", err);
		return;
	}
	sess_state(s, SS_AUTH);
	out_fmt(s, "%s OK [CAPABILITY %s] logged in\r\n", tag, CAPS);
	out_flush(s);
}

static void
dispatch(struct sess *s)
{
	const char *tag, *cmd;
	int uid = 0;
	size_t a = 1;

	if (s->nt < 2) {
		tagged(s, s->nt ? s->t[0].s : "*", "BAD", "no command");
		return;
	}
	tag = s->t[0].s;
	cmd = s->t[1].s;
	if (strcasecmp(cmd, "UID") == 0 && s->nt >= 3) {
		uid = 1;
		cmd = s->t[2].s;
		a = 2;
	}
	if (strcasecmp(cmd, "CAPABILITY") == 0) {
		out_fmt(s, "* CAPABILITY %s\r\n", CAPS);
		tagged(s, tag, "OK", "CAPABILITY done");
	} else if (strcasecmp(cmd, "NOOP") == 0 ||
	    strcasecmp(cmd, "CHECK") == 0) {
		if (s->sel != NULL)
			out_fmt(s, "* %zu EXISTS\r\n", s->sel->n);
		tagged(s, tag, "OK", "done");
	} else if (strcasecmp(cmd, "LOGOUT") == 0) {
		out_fmt(s, "* BYE archive closing\r\n");
		tagged(s, tag, "OK", "LOGOUT done");
		sess_state(s, SS_LOGOUT);
	} else if (s->state == SS_NOAUTH) {
		if (strcasecmp(cmd, "LOGIN") == 0 && s->nt == 4)
			do_login(s, tag);
		else if (strcasecmp(cmd, "AUTHENTICATE") == 0 && s->nt >= 3 &&
		    strcasecmp(s->t[2].s, "PLAIN") == 0) {
			if (s->nt == 3) {
				size_t n;
				int tl;
				char *l;

				out_fmt(s, "+ \r\n");
				out_flush(s);
				if ((l = in_line(s, &n, &tl)) == NULL) {
					s->dead = 1;
					return;
				}
				explicit_bzero(l, n);
				free(l);
			}
			do_login(s, tag);
		} else if (strcasecmp(cmd, "ID") == 0) {
			out_fmt(s, "* ID (\"name\" \"mailferry archive\")\r\n");
			tagged(s, tag, "OK", "ID done");
		} else
			tagged(s, tag, "BAD", "log in first");
	} else if (strcasecmp(cmd, "ID") == 0) {
		out_fmt(s, "* ID (\"name\" \"mailferry archive\")\r\n");
		tagged(s, tag, "OK", "ID done");
	} else if (strcasecmp(cmd, "ENABLE") == 0)
		tagged(s, tag, "OK", "nothing enabled");
	else if (strcasecmp(cmd, "NAMESPACE") == 0) {
		out_fmt(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
		tagged(s, tag, "OK", "NAMESPACE done");
	} else if (strcasecmp(cmd, "LIST") == 0)
		cmd_list(s, tag, 0);
	else if (strcasecmp(cmd, "LSUB") == 0)
		cmd_list(s, tag, 1);
	else if (strcasecmp(cmd, "STATUS") == 0)
		cmd_status(s, tag);
	else if (strcasecmp(cmd, "EXAMINE") == 0 ||
	    strcasecmp(cmd, "SELECT") == 0)
		cmd_select(s, tag);
	else if (strcasecmp(cmd, "FETCH") == 0)
		cmd_fetch(s, tag, uid, a + 1);
	else if (strcasecmp(cmd, "SEARCH") == 0)
		cmd_search(s, tag, uid, a + 1);
	else if (strcasecmp(cmd, "CLOSE") == 0 ||
	    strcasecmp(cmd, "UNSELECT") == 0) {
		s->sel = NULL;
		sess_state(s, SS_AUTH);
		tagged(s, tag, "OK", "closed");
	} else
		tagged(s, tag, "BAD", "not supported by the archive reader "
		    "(read-only)");
}

static void
expand_path(struct sess *s)
{
	const char *p;
	size_t k = 0;

	for (p = s->path; *p && k + 1 < sizeof(s->st.root); p++) {
		if (p[0] == '%' && p[1] == 'u') {
			size_t ul = strlen(s->user);

			if (k + ul >= sizeof(s->st.root))
				break;
			memcpy(s->st.root + k, s->user, ul);
			k += ul;
			p++;
		} else
			s->st.root[k++] = *p;
	}
	s->st.root[k] = '\0';
	snprintf(s->st.uiddir, sizeof(s->st.uiddir), "%s/archive/%016" PRIx64,
	    s->state_dir, arc_hash(s->st.root, strlen(s->st.root)));
}

static void *
sess_main(void *arg)
{
	struct sess *s = arg;
	size_t len, i;
	int toolong;
	const char *why;

	expand_path(s);
	out_fmt(s, "* OK [CAPABILITY %s] mailferry archive reader\r\n", CAPS);
	out_flush(s);
	while (!s->dead && s->state != SS_LOGOUT) {
		if ((s->line = in_line(s, &len, &toolong)) == NULL)
			break;
		if (toolong) {
			tagged(s, "*", "BAD", "line too long");
			toks_free(s);
			continue;
		}
		why = NULL;
		if (tokenize(s, &why) == -1) {
			tagged(s, s->nt ? s->t[0].s : "*", "BAD", why);
			if (strcmp(why, "connection closed") == 0)
				s->dead = 1;
		} else
			dispatch(s);
		toks_free(s);
	}
	toks_free(s);
	for (i = 0; i < s->st.nf; i++) {
		arc_folder_clear(&s->st.f[i]);
		free(s->st.f[i].name);
		free(s->st.f[i].path);
	}
	free(s->st.f);
	close(s->fd);
	free(s);
	return (NULL);
}

int
archive_imapd_start(enum archive_kind kind, const char *path,
    const char *user, const char *state_dir, int *fd, char *err,
    size_t errlen)
{
	struct sess *s;
	pthread_t t;
	pthread_attr_t at;
	int sv[2], e;

	if (strchr(path, '%') != NULL && (strchr(user, '/') != NULL ||
	    strcmp(user, ".") == 0 || strcmp(user, "..") == 0 ||
	    *user == '\0')) {
		errbuf_set(err, errlen, "user \"%s\" cannot name an archive path",
		    user);
		return (-1);
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		errbuf_set(err, errlen, "socketpair: %s", strerror(errno));
		free(s);
		return (-1);
	}
	s->fd = sv[1];
	s->st.kind = kind;
	snprintf(s->path, sizeof(s->path), "%s", path);
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->state_dir, sizeof(s->state_dir), "%s", state_dir);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	e = pthread_create(&t, &at, sess_main, s);
	pthread_attr_destroy(&at);
	if (e != 0) {
		errbuf_set(err, errlen, "cannot start the archive reader: %s",
		    strerror(e));
		close(sv[0]);
		close(sv[1]);
		free(s);
		return (-1);
	}
	*fd = sv[0];
	return (0);
}

/* ---- helpers shared by the readers ------------------------------ */

uint64_t
arc_hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a */
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return (h);
}

int
arc_add_folder(struct arc_store *st, const char *name, const char *path)
{
	struct arc_folder *nf;

	if ((nf = realloc(st->f, (st->nf + 1) * sizeof(*nf))) == NULL)
		return (-1);
	st->f = nf;
	nf = &st->f[st->nf];
	memset(nf, 0, sizeof(*nf));
	nf->name = strdup(name);
	nf->path = strdup(path);
	if (nf->name == NULL || nf->path == NULL) {
		free(nf->name);
		free(nf->path);
		return (-1);
	}
	st->nf++;
	return (0);
}

void
arc_folder_clear(struct arc_folder *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		free(f->v[i].file);
	free(f->v);
	f->v = NULL;
	f->n = 0;
	for (i = 0; i < ARC_MAX_KW; i++) {
		free(f->kw[i]);
		f->kw[i] = NULL;
	}
	f->loaded = 0;
}

int
arc_push_msg(struct arc_folder *f, const struct arc_msg *m)
{
	struct arc_msg *nv;

	if (f->n == 0 || (f->n >= 16 && (f->n & (f->n - 1)) == 0)) {
		size_t cap = f->n ? f->n * 2 : 16;

		if ((nv = realloc(f->v, cap * sizeof(*nv))) == NULL)
			return (-1);
		f->v = nv;
	}
	f->v[f->n++] = *m;
	return (0);
}

int
arc_keyword_ok(const char *s)
{
	const char *p;

	if (*s == '\0' || *s == '\\' || strlen(s) > 100)
		return (0);
	for (p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("(){%*\"\\]", *p) != NULL)
			return (0);
	return (1);
}

int
arc_open(struct arc_store *st, struct arc_folder *f, const struct arc_msg *m,
    struct arc_reader *rd, char *err, size_t errlen)
{
	return (st->kind == ARCHIVE_MAILDIR ? arc_maildir_open(f, m, rd, err,
	    errlen) : arc_mbox_open(f, m, rd, err, errlen));
}

int
arc_path(char *out, size_t n, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(out, n, fmt, ap);
	va_end(ap);
	return (r < 0 || (size_t)r >= n ? -1 : 0);
}
