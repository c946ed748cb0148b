/*
 * report.c - the pass report, its verdicts, its two writers and the
 * progress line (see report.h).
 *
 * SECURITY: folder names, subjects and server replies in a report come
 * from the servers and from message headers, i.e. from anyone who can
 * send mail.  The text writer passes every such string through
 * text_clean() (control characters, including ESC and the C1 range,
 * become "?", invalid UTF-8 becomes U+FFFD) so a subject cannot move the
 * cursor or retitle the admin's terminal; the JSON writer escapes
 * everything through json.c.  Buffers are sized from the input.
 *
 * Ownership: the report owns everything in it.  Single-threaded (the
 * engine's event loop); no global state.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "report.h"
#include "util.h"

/* ---- building -------------------------------------------------------- */

/* sdup - strdup that records a failure in the report */
static char *
sdup(struct report *r, const char *s)
{
	char *d;

	if (s == NULL)
		return (NULL);
	if ((d = strdup(s)) == NULL)
		r->oom = 1;
	return (d);
}

struct report *
report_new(int dry_run)
{
	struct report *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return (NULL);
	r->dry_run = dry_run;
	return (r);
}

static void
folder_free(struct report_folder *f)
{
	size_t i;

	for (i = 0; i < f->nproblems; i++) {
		free(f->problems[i].subject);
		free(f->problems[i].reason);
	}
	free(f->problems);
	free(f->src);
	free(f->dst);
	free(f->skipped);
	free(f->error);
	free(f);
}

void
report_free(struct report **rp)
{
	struct report *r;
	struct report_account *a;
	size_t i, k;

	if (rp == NULL || (r = *rp) == NULL)
		return;
	for (i = 0; i < r->naccounts; i++) {
		a = r->accounts[i];
		for (k = 0; k < a->nfolders; k++)
			folder_free(a->folders[k]);
		free(a->folders);
		free(a->src_user);
		free(a->dst_user);
		free(a->error);
		free(a);
	}
	free(r->accounts);
	free(r);
	*rp = NULL;
}

struct report_account *
report_account_add(struct report *r, const char *src_user,
    const char *dst_user)
{
	struct report_account *a, **v;

	if ((v = array_grow(r->accounts, &r->accounts_alloc, r->naccounts,
	    sizeof(*v), 8)) == NULL) {
		r->oom = 1;
		return (NULL);
	}
	r->accounts = v;
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		r->oom = 1;
		return (NULL);
	}
	a->report = r;
	a->src_user = sdup(r, src_user);
	a->dst_user = sdup(r, dst_user);
	r->accounts[r->naccounts++] = a;
	return (a);
}

struct report_folder *
report_folder_add(struct report_account *a, const char *src, const char *dst)
{
	struct report *r = a->report;
	struct report_folder *f, **v;

	if ((v = array_grow(a->folders, &a->folders_alloc, a->nfolders,
	    sizeof(*v), 8)) == NULL) {
		r->oom = 1;
		return (NULL);
	}
	a->folders = v;
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		r->oom = 1;
		return (NULL);
	}
	f->report = r;
	f->src = sdup(r, src);
	f->dst = sdup(r, dst);
	f->src_count = REPORT_UNKNOWN;
	f->dst_count = REPORT_UNKNOWN;
	a->folders[a->nfolders++] = f;
	return (f);
}

struct report_folder *
report_folder_add_map(struct report_account *a, const struct folder_map *m)
{
	struct report_folder *f;

	if ((f = report_folder_add(a, m->src_path, m->dst_path)) == NULL)
		return (NULL);
	if (folder_skip_is_loss(m->skip))
		report_folder_not_copied(f, folder_skip_name(m->skip));
	else if (m->skip != FOLDER_COPY)
		report_folder_skip(f, folder_skip_name(m->skip));
	f->created = m->create;
	return (f);
}

/* vset - replace *dst with a formatted string */
static void __attribute__((format(printf, 3, 0)))
vset(struct report *r, char **dst, const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) == -1) {
		r->oom = 1;
		return;
	}
	free(*dst);
	*dst = s;
}

void
report_account_error(struct report_account *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(a->report, &a->error, fmt, ap);
	va_end(ap);
}

void
report_folder_error(struct report_folder *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(f->report, &f->error, fmt, ap);
	va_end(ap);
}

void
report_folder_skip(struct report_folder *f, const char *reason)
{
	free(f->skipped);
	f->skipped = sdup(f->report, reason != NULL ? reason : "skipped");
	free(f->dst);
	f->dst = NULL;
}

void
report_folder_not_copied(struct report_folder *f, const char *reason)
{
	report_folder_error(f, "not copied: %s", reason != NULL ? reason :
	    "unknown");
	f->not_copied = 1;
	free(f->skipped);
	f->skipped = NULL;
	free(f->dst);
	f->dst = NULL;
	f->created = 0;
}

void
report_problem(struct report_folder *f, enum report_problem_kind kind,
    uint64_t uid, const char *subject, uint64_t size, const char *reason)
{
	struct report_problem *p, *v;

	if (kind == REPORT_POLICY)
		f->policy++;
	else if (kind == REPORT_FAILED)
		f->failed++;
	if (f->nproblems >= REPORT_MAX_PROBLEMS) {
		f->problems_omitted++;
		return;
	}
	if ((v = array_grow(f->problems, &f->problems_alloc, f->nproblems,
	    sizeof(*v), 8)) == NULL) {
		f->report->oom = 1;
		f->problems_omitted++;
		return;
	}
	f->problems = v;
	p = &f->problems[f->nproblems++];
	p->kind = kind;
	p->uid = uid;
	p->size = size;
	p->subject = sdup(f->report, subject);
	p->reason = sdup(f->report, reason != NULL ? reason : "unknown");
}

/* report_kind_text - how the text report names a problem's kind */
static const char *
report_kind_text(enum report_problem_kind kind)
{
	switch (kind) {
	case REPORT_POLICY:
		return ("skipped by policy");
	case REPORT_NOTE:
		return ("copied, note");
	default:
		return ("failed");
	}
}

/* ---- counting -------------------------------------------------------- */

/* folder_missing - source messages not on the destination (report.h) */
static uint64_t
folder_missing(const struct report_folder *f)
{
	uint64_t ok, missing = 0, floor;

	if (f->skipped != NULL || f->report->dry_run)
		return (0);
	ok = f->already + f->copied + f->duplicates;
	if (f->src_count != REPORT_UNKNOWN && f->src_count > ok)
		missing = f->src_count - ok;
	floor = f->failed + f->policy;
	return (missing > floor ? missing : floor);
}

/* folder_failed - planned but not synced: an error, or never examined
 * (the pass was cut short); a dry run need not examine */
static int
folder_failed(const struct report_folder *f)
{
	if (f->skipped != NULL)
		return (0);
	return (f->error != NULL || (f->src_count == REPORT_UNKNOWN &&
	    !f->report->dry_run));
}

int
report_folder_complete(const struct report_folder *f)
{
	return (!folder_failed(f) && folder_missing(f) == 0);
}

void
report_folder_totals(const struct report_folder *f, struct report_totals *t)
{
	t->folders++;
	if (f->skipped != NULL) {
		t->folders_skipped++;
		return;
	}
	if (folder_failed(f))
		t->folders_failed++;
	if (f->not_copied) {
		t->folders_not_copied++;
		if (f->src_count != REPORT_UNKNOWN)
			t->not_copied += f->src_count;
	}
	if (f->created)
		t->folders_created++;
	if (f->src_count != REPORT_UNKNOWN)
		t->src_count += f->src_count;
	if (f->dst_count != REPORT_UNKNOWN)
		t->dst_count += f->dst_count;
	t->already += f->already;
	t->copied += f->copied;
	t->duplicates += f->duplicates;
	t->policy += f->policy;
	t->failed += f->failed;
	t->missing += folder_missing(f);
	t->bytes += f->bytes;
	t->seconds += f->seconds;
}

void
report_account_totals(const struct report_account *a, struct report_totals *t)
{
	size_t i;

	memset(t, 0, sizeof(*t));
	t->accounts = 1;
	t->accounts_failed = (a->error != NULL);
	for (i = 0; i < a->nfolders; i++)
		report_folder_totals(a->folders[i], t);
	t->seconds = a->seconds;
}

void
report_totals(const struct report *r, struct report_totals *t)
{
	struct report_totals at;
	size_t i;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < r->naccounts; i++) {
		report_account_totals(r->accounts[i], &at);
		t->accounts++;
		t->accounts_failed += at.accounts_failed;
		t->folders += at.folders;
		t->folders_skipped += at.folders_skipped;
		t->folders_failed += at.folders_failed;
		t->folders_created += at.folders_created;
		t->folders_not_copied += at.folders_not_copied;
		t->not_copied += at.not_copied;
		t->src_count += at.src_count;
		t->dst_count += at.dst_count;
		t->already += at.already;
		t->copied += at.copied;
		t->duplicates += at.duplicates;
		t->policy += at.policy;
		t->failed += at.failed;
		t->missing += at.missing;
		t->bytes += at.bytes;
	}
	t->seconds = r->seconds;
}

int
report_account_complete(const struct report_account *a)
{
	size_t i;

	if (a->error != NULL)
		return (0);
	for (i = 0; i < a->nfolders; i++)
		if (!report_folder_complete(a->folders[i]))
			return (0);
	return (1);
}

int
report_missing(const struct report *r)
{
	size_t i;

	if (r->oom)
		return (1);
	for (i = 0; i < r->naccounts; i++)
		if (!report_account_complete(r->accounts[i]))
			return (1);
	return (0);
}

/* ---- formatting helpers ----------------------------------------------- */

static const char *
plural(uint64_t n, const char *one, const char *many)
{
	return (n == 1 ? one : many);
}

/* report_fmt_bytes - decimal units: "512 B", "12.3 kB", "4.5 MB" */
int
report_fmt_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *const unit[] = { "kB", "MB", "GB", "TB", "PB" };
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1000)
		return (snprintf(buf, len, "%" PRIu64 " B", bytes));
	v /= 1000;
	while (v >= 999.95 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1000;
		u++;
	}
	return (snprintf(buf, len, "%.1f %s", v, unit[u]));
}

/* report_fmt_duration - "0.4s", "12.3s", "4m05s", "2h07m", "3d04h" */
int
report_fmt_duration(double seconds, char *buf, size_t len)
{
	uint64_t s;

	if (!(seconds >= 0) || seconds > 1e12)
		return (snprintf(buf, len, "?"));
	if (seconds < 59.95)
		return (snprintf(buf, len, "%.1fs", seconds));
	s = (uint64_t)(seconds + 0.5);
	if (s < 3600)
		return (snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s",
		    s / 60, s % 60));
	if (s < 86400)
		return (snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m",
		    s / 3600, s % 3600 / 60));
	return (snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", s / 86400,
	    s % 86400 / 3600));
}

/*
 * Rounding without libm (the daemon links no -lm for two calls): only
 * for values >= 0; beyond 2^50 a double has no fraction left anyway.
 */
static double
round_up(double v)
{
	uint64_t i;

	if (!(v < 1125899906842624.0))
		return (v);
	i = (uint64_t)v;
	return ((double)i < v ? (double)(i + 1) : (double)i);
}

static double
round_tenth(double v)
{
	if (!(v * 10 < 1125899906842624.0))
		return (v);
	return ((double)(uint64_t)(v * 10 + 0.5) / 10);
}

/* rate - n per second over seconds, or a negative value if unknown */
static double
rate(uint64_t n, double seconds)
{
	if (!(seconds > 0))
		return (-1);
	return ((double)n / seconds);
}

/*
 * utf8_next - the code point at s[*i] (advancing *i), or U+FFFD for a
 * byte that does not start a valid sequence (advancing by one byte).
 */
static uint32_t
utf8_next(const unsigned char *s, size_t len, size_t *i)
{
	unsigned char c = s[*i];
	uint32_t cp, min;
	size_t n, k;

	if (c < 0x80) {
		(*i)++;
		return (c);
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2; cp = c & 0x1f; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3; cp = c & 0x0f; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4; cp = c & 0x07; min = 0x10000;
	} else {
		(*i)++;
		return (0xfffd);
	}
	if (*i + n > len) {
		(*i)++;
		return (0xfffd);
	}
	for (k = 1; k < n; k++) {
		if ((s[*i + k] & 0xc0) != 0x80) {
			(*i)++;
			return (0xfffd);
		}
		cp = cp << 6 | (s[*i + k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
		(*i)++;
		return (0xfffd);
	}
	*i += n;
	return (cp);
}

/* cp_width - display columns of a code point: 0, 1 or 2 */
static int
cp_width(uint32_t cp)
{
	static const struct { uint32_t lo, hi; } zero[] = {
		{ 0x0300, 0x036f }, { 0x0483, 0x0489 }, { 0x0591, 0x05bd },
		{ 0x0610, 0x061a }, { 0x064b, 0x065f }, { 0x0e31, 0x0e31 },
		{ 0x0e34, 0x0e3a }, { 0x0e47, 0x0e4e }, { 0x1ab0, 0x1aff },
		{ 0x1dc0, 0x1dff }, { 0x200b, 0x200f }, { 0x2028, 0x202e },
		{ 0x2060, 0x2064 }, { 0x20d0, 0x20ff }, { 0xfe00, 0xfe0f },
		{ 0xfe20, 0xfe2f }, { 0xfeff, 0xfeff },
	}, wide[] = {
		{ 0x1100, 0x115f }, { 0x2e80, 0x303e }, { 0x3041, 0x33ff },
		{ 0x3400, 0x4dbf }, { 0x4e00, 0x9fff }, { 0xa000, 0xa4cf },
		{ 0xac00, 0xd7a3 }, { 0xf900, 0xfaff }, { 0xfe30, 0xfe4f },
		{ 0xff00, 0xff60 }, { 0xffe0, 0xffe6 }, { 0x1f300, 0x1f64f },
		{ 0x1f900, 0x1f9ff }, { 0x20000, 0x3fffd },
	};
	size_t i;

	for (i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
		if (cp >= zero[i].lo && cp <= zero[i].hi)
			return (0);
	for (i = 0; i < sizeof(wide) / sizeof(wide[0]); i++)
		if (cp >= wide[i].lo && cp <= wide[i].hi)
			return (2);
	return (1);
}

/* is_control - C0, DEL and C1 controls: never sent to a terminal */
static int
is_control(uint32_t cp)
{
	return (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f));
}

/* put_cp - UTF-8 of cp at out */
static size_t
put_cp(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return (1);
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return (2);
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return (3);
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return (4);
}

/*
 * text_clean - a malloc'd copy of s fit for a terminal (controls "?",
 * bad bytes U+FFFD), cut to maxcols display columns with "..." when
 * longer; *cols_r = its width.  NULL when out of memory.
 */
static char *
text_clean(const char *s, size_t maxcols, size_t *cols_r)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len = strlen(s), i = 0, o = 0, cols = 0, mark_o = 0,
	    mark_cols = 0;
	char *out;
	uint32_t cp;
	int w;

	/* each input byte yields at most 3 output bytes (U+FFFD) */
	if ((out = malloc(len * 3 + 4)) == NULL)
		return (NULL);
	while (i < len) {
		cp = utf8_next(u, len, &i);
		if (is_control(cp))
			cp = '?';
		w = cp_width(cp);
		if (cols + (size_t)w > maxcols) {
			/* cut back to leave room for "..." */
			o = mark_o;
			cols = mark_cols;
			memcpy(out + o, "...", 3);
			o += 3;
			cols += 3;
			break;
		}
		o += put_cp(out + o, cp);
		cols += (size_t)w;
		if (cols + 3 <= maxcols) {
			mark_o = o;
			mark_cols = cols;
		}
	}
	out[o] = '\0';
	if (cols_r != NULL)
		*cols_r = cols;
	return (out);
}

/* report_text_width - display columns of s as the text writer shows it */
size_t
report_text_width(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len = strlen(s), i = 0, cols = 0;
	uint32_t cp;

	while (i < len) {
		cp = utf8_next(u, len, &i);
		cols += is_control(cp) ? 1 : (size_t)cp_width(cp);
	}
	return (cols);
}

/* ---- verdicts ----------------------------------------------------------- */

/* A growing line: snprintf semantics across several appends. */
struct line {
	char	*buf;
	size_t	 len;
	int	 n;		/* what it wanted so far */
};

static void __attribute__((format(printf, 2, 3)))
line_add(struct line *l, const char *fmt, ...)
{
	va_list ap;
	size_t at = (size_t)l->n;
	int k;

	va_start(ap, fmt);
	if (at < l->len)
		k = vsnprintf(l->buf + at, l->len - at, fmt, ap);
	else
		k = vsnprintf(NULL, 0, fmt, ap);	/* only measure */
	va_end(ap);
	if (k > 0)
		l->n += k;
}

/* missing_detail - " in INBOX (2), Sent (1): 2 failed, 1 skipped by
 * policy" (the folders only for an account) */
static void
missing_detail(struct line *l, const struct report_totals *t,
    const struct report_account *a)
{
	const char *sep = ": ";
	uint64_t other, m;
	size_t i, shown = 0;

	for (i = 0; a != NULL && i < a->nfolders; i++) {
		if ((m = folder_missing(a->folders[i])) == 0)
			continue;
		if (shown == 3) {
			line_add(l, ", ...");
			break;
		}
		line_add(l, "%s%s (%" PRIu64 ")", shown ? ", " : " in ",
		    a->folders[i]->src, m);
		shown++;
	}
	other = t->missing - (t->failed + t->policy < t->missing ?
	    t->failed + t->policy : t->missing);
	if (t->not_copied > 0) {
		m = t->not_copied < other ? t->not_copied : other;
		other -= m;
		line_add(l, "%s%" PRIu64 " in %s not copied", sep, m,
		    plural(t->folders_not_copied, "a folder", "folders"));
		sep = ", ";
	}
	if (t->failed) {
		line_add(l, "%s%" PRIu64 " failed", sep, t->failed);
		sep = ", ";
	}
	if (t->policy) {
		line_add(l, "%s%" PRIu64 " skipped by policy", sep, t->policy);
		sep = ", ";
	}
	if (other)
		line_add(l, "%s%" PRIu64 " not accounted for", sep, other);
}

/* not_copied_list - "folder X (12 messages) not copied: why" for the
 * first few folders the plan left behind, sep before each; *shown
 * counts across calls (three at most, then "...") */
static void
not_copied_list(struct line *l, const struct report_account *a,
    const char *sep, size_t *shown)
{
	const struct report_folder *f;
	size_t i;

	for (i = 0; i < a->nfolders; i++) {
		f = a->folders[i];
		if (!f->not_copied)
			continue;
		if (*shown == 3) {
			line_add(l, ", ...");
			(*shown)++;
		}
		if (*shown > 3)
			return;
		line_add(l, "%sfolder %s", *shown ? ", " : sep,
		    f->src != NULL ? f->src : "?");
		if (f->src_count != REPORT_UNKNOWN)
			line_add(l, " (%" PRIu64 " %s)", f->src_count,
			    plural(f->src_count, "message", "messages"));
		line_add(l, " %s", f->error != NULL ? f->error :
		    "not copied");
		(*shown)++;
	}
}

int
report_account_verdict(const struct report_account *a, char *buf, size_t len)
{
	struct report_totals t;
	struct line l = { buf, len, 0 };
	size_t i, shown = 0;

	if (len > 0)
		buf[0] = '\0';
	if (a->error != NULL) {
		line_add(&l, "not synced: %s", a->error);
		return (l.n);
	}
	report_account_totals(a, &t);
	if (a->report->dry_run) {
		char b[32];

		report_fmt_bytes(t.bytes, b, sizeof(b));
		line_add(&l, "dry run: %" PRIu64 " %s to copy (%s), %" PRIu64
		    " %s to create", t.copied, plural(t.copied, "message",
		    "messages"), b, t.folders_created,
		    plural(t.folders_created, "folder", "folders"));
	} else if (t.missing == 0 && t.folders_failed == 0) {
		line_add(&l, "all %" PRIu64 " %s of the source %s on the "
		    "destination (%" PRIu64 " copied, %" PRIu64 " already "
		    "there, %" PRIu64 " skipped as %s)", t.src_count,
		    plural(t.src_count, "message", "messages"),
		    plural(t.src_count, "is", "are"), t.copied, t.already,
		    t.duplicates, plural(t.duplicates, "duplicate",
		    "duplicates"));
		return (l.n);
	} else if (t.missing > 0) {
		line_add(&l, "%" PRIu64 " %s missing", t.missing,
		    plural(t.missing, "message", "messages"));
		missing_detail(&l, &t, a);
	}
	if (t.folders_not_copied > 0)
		not_copied_list(&l, a, l.n > 0 ? "; " : "", &shown);
	if (t.folders_failed == t.folders_not_copied)
		return (l.n);
	shown = 0;
	t.folders_failed -= t.folders_not_copied;
	line_add(&l, "%s%" PRIu64 " %s not synced", l.n > 0 ? "; " : "",
	    t.folders_failed, plural(t.folders_failed, "folder", "folders"));
	for (i = 0; i < a->nfolders; i++) {
		const struct report_folder *f = a->folders[i];

		if (!folder_failed(f) || f->not_copied)
			continue;
		if (shown == 3) {
			line_add(&l, ", ...");
			break;
		}
		line_add(&l, "%s%s (%s)", shown ? ", " : ": ", f->src,
		    f->error != NULL ? f->error : "not examined");
		shown++;
	}
	return (l.n);
}

int
report_verdict(const struct report *r, char *buf, size_t len)
{
	struct report_totals t;
	struct line l = { buf, len, 0 };
	uint64_t incomplete = 0;
	size_t i;

	if (len > 0)
		buf[0] = '\0';
	report_totals(r, &t);
	for (i = 0; i < r->naccounts; i++)
		if (!report_account_complete(r->accounts[i]))
			incomplete++;
	if (r->dry_run && incomplete == 0 && !r->oom) {
		line_add(&l, "dry run: %" PRIu64 " %s to copy in %" PRIu64
		    " %s, %" PRIu64 " %s to create", t.copied,
		    plural(t.copied, "message", "messages"), t.accounts,
		    plural(t.accounts, "account", "accounts"),
		    t.folders_created, plural(t.folders_created, "folder",
		    "folders"));
		return (l.n);
	}
	if (incomplete == 0 && !r->oom) {
		line_add(&l, "all %" PRIu64 " %s of the source %s on the "
		    "destination (%" PRIu64 " %s)", t.src_count,
		    plural(t.src_count, "message", "messages"),
		    plural(t.src_count, "is", "are"), t.accounts,
		    plural(t.accounts, "account", "accounts"));
		return (l.n);
	}
	line_add(&l, "incomplete: ");
	if (t.folders_not_copied > 0) {
		size_t shown = 0;

		for (i = 0; i < r->naccounts; i++)
			not_copied_list(&l, r->accounts[i], "", &shown);
		line_add(&l, "; ");
	}
	if (t.missing > 0) {
		line_add(&l, "%" PRIu64 " %s missing", t.missing,
		    plural(t.missing, "message", "messages"));
		missing_detail(&l, &t, NULL);
		line_add(&l, "; ");
	}
	line_add(&l, "%" PRIu64 " of %" PRIu64 " %s incomplete", incomplete,
	    t.accounts, plural(t.accounts, "account", "accounts"));
	if (t.accounts_failed > 0)
		line_add(&l, " (%" PRIu64 " not synced at all)",
		    t.accounts_failed);
	if (t.folders_failed > t.folders_not_copied)
		line_add(&l, "; %" PRIu64 " %s not synced", t.folders_failed -
		    t.folders_not_copied, plural(t.folders_failed -
		    t.folders_not_copied, "folder", "folders"));
	if (t.folders_not_copied > 0)
		line_add(&l, "; %" PRIu64 " %s not copied",
		    t.folders_not_copied, plural(t.folders_not_copied,
		    "folder", "folders"));
	if (r->oom)
		line_add(&l, "; out of memory while reporting");
	return (l.n);
}

/* ---- the text writer ------------------------------------------------- */

enum {
	C_FOLDER, C_DEST, C_SOURCE, C_DCOUNT, C_COPIED, C_ALREADY, C_DUP,
	C_POLICY, C_FAILED, C_BYTES, C_RATE, C_NOTE, NCOLS
};

static const char *const col_head[NCOLS] = {
	"FOLDER", "DESTINATION", "SOURCE", "DEST", "COPIED", "ALREADY",
	"DUPLICATE", "POLICY", "FAILED", "BYTES", "MSG/S", "NOTE",
};

/* One table: cells are cleaned strings with their widths. */
struct table {
	char	**cell;
	size_t	*width;
	size_t	 nrows, alloc;
	size_t	 colw[NCOLS];
	int	 oom;
};

static void
table_free(struct table *t)
{
	size_t i;

	for (i = 0; i < t->nrows * NCOLS; i++)
		free(t->cell[i]);
	free(t->cell);
	free(t->width);
}

/* table_row - add one row; values are raw (cleaned here), NULL = "" */
static void
table_row(struct table *t, const char *const v[NCOLS])
{
	size_t c, base, na;
	char **nc;
	size_t *nw;

	if (t->nrows == t->alloc) {
		na = t->alloc ? t->alloc * 2 : 16;
		if ((nc = reallocarray(t->cell, na * NCOLS,
		    sizeof(*nc))) == NULL) {
			t->oom = 1;
			return;
		}
		t->cell = nc;
		if ((nw = reallocarray(t->width, na * NCOLS,
		    sizeof(*nw))) == NULL) {
			t->oom = 1;
			return;
		}
		t->width = nw;
		t->alloc = na;
	}
	base = t->nrows * NCOLS;
	for (c = 0; c < NCOLS; c++) {
		t->width[base + c] = 0;
		t->cell[base + c] = text_clean(v[c] != NULL ? v[c] : "",
		    SIZE_MAX, &t->width[base + c]);
		if (t->cell[base + c] == NULL)
			t->oom = 1;
		if (t->width[base + c] > t->colw[c])
			t->colw[c] = t->width[base + c];
	}
	t->nrows++;
}

/* table_print - aligned rows, numbers right-aligned, no trailing blanks */
static void
table_print(const struct table *t, FILE *fp, const char *indent)
{
	size_t r, c, k, pad, last;
	int right;

	for (r = 0; r < t->nrows; r++) {
		const size_t base = r * NCOLS;

		/* the last non-empty cell ends the line */
		for (last = NCOLS; last > 0 && t->width[base + last - 1] == 0;
		    last--)
			;
		fputs(indent, fp);
		for (c = 0; c < last; c++) {
			const char *s = t->cell[base + c];

			if (s == NULL)
				s = "";

			right = c >= C_SOURCE && c <= C_RATE;
			pad = t->colw[c] - t->width[base + c];
			if (c > 0)
				fputs("  ", fp);
			if (right)
				for (k = 0; k < pad; k++)
					fputc(' ', fp);
			fputs(s, fp);
			if (!right && c + 1 < last)
				for (k = 0; k < pad; k++)
					fputc(' ', fp);
		}
		fputc('\n', fp);
	}
}

/* fmt_count - a count, or "?" when unknown */
static const char *
fmt_count(uint64_t n, char *buf, size_t len)
{
	if (n == REPORT_UNKNOWN)
		snprintf(buf, len, "?");
	else
		snprintf(buf, len, "%" PRIu64, n);
	return (buf);
}

/* folder_row - the table row of one folder */
static void
folder_row(struct table *t, const struct report *r,
    const struct report_folder *f)
{
	char b[NCOLS][48], *note = NULL;
	const char *v[NCOLS];
	double rt;
	int c;

	for (c = 0; c < NCOLS; c++)
		v[c] = NULL;
	v[C_FOLDER] = f->src ? f->src : "?";
	v[C_DEST] = f->dst ? f->dst : "-";
	if (f->skipped != NULL) {
		for (c = C_SOURCE; c <= C_RATE; c++)
			v[c] = "-";
		if (asprintf(&note, "skipped: %s", f->skipped) == -1)
			note = NULL;
	} else {
#define COUNT(col, n)	(v[col] = fmt_count((n), b[col], sizeof(b[0])))
		COUNT(C_SOURCE, f->src_count);
		COUNT(C_DCOUNT, f->dst_count);
		COUNT(C_COPIED, f->copied);
		COUNT(C_ALREADY, f->already);
		COUNT(C_DUP, f->duplicates);
		COUNT(C_POLICY, f->policy);
		COUNT(C_FAILED, f->failed);
#undef COUNT
		report_fmt_bytes(f->bytes, b[C_BYTES], sizeof(b[0]));
		v[C_BYTES] = b[C_BYTES];
		if ((rt = rate(f->copied, f->seconds)) >= 0 && !r->dry_run) {
			snprintf(b[C_RATE], sizeof(b[0]), "%.1f", rt);
			v[C_RATE] = b[C_RATE];
		} else
			v[C_RATE] = "-";
		if (f->not_copied && f->error != NULL)
			note = strdup(f->error);
		else if (f->error != NULL) {
			if (asprintf(&note, "error: %s", f->error) == -1)
				note = NULL;
		} else if (f->src_count == REPORT_UNKNOWN && !r->dry_run)
			note = strdup("not examined");
		else if (f->created)
			note = strdup(r->dry_run ? "to create" : "created");
	}
	v[C_NOTE] = note;
	table_row(t, v);
	free(note);
}

/* write_problems - the kept problems of an account, a few per folder */
static void
write_problems(const struct report_account *a, FILE *fp)
{
	const struct report_folder *f;
	const struct report_problem *p;
	char *name, *subj, *why, size[32];
	size_t i, k, header = 0;
	uint64_t more;

	for (i = 0; i < a->nfolders; i++) {
		f = a->folders[i];
		for (k = 0; k < f->nproblems && k < REPORT_TEXT_PROBLEMS; k++) {
			p = &f->problems[k];
			if (!header++)
				fprintf(fp, "  messages not copied:\n");
			name = text_clean(f->src ? f->src : "?", SIZE_MAX,
			    NULL);
			subj = p->subject ? text_clean(p->subject, 60, NULL) :
			    NULL;
			why = text_clean(p->reason, SIZE_MAX, NULL);
			fprintf(fp, "    %s uid %" PRIu64, name ? name : "?",
			    p->uid);
			if (p->size > 0) {
				report_fmt_bytes(p->size, size, sizeof(size));
				fprintf(fp, " (%s)", size);
			}
			if (subj != NULL)
				fprintf(fp, " \"%s\"", subj);
			fprintf(fp, ": %s: %s\n", report_kind_text(p->kind),
			    why ? why : "?");
			free(name);
			free(subj);
			free(why);
		}
		more = (uint64_t)(f->nproblems - k) + f->problems_omitted;
		if (more > 0) {
			name = text_clean(f->src ? f->src : "?", SIZE_MAX,
			    NULL);
			fprintf(fp, "    ... and %" PRIu64 " more in %s (see "
			    "--json)\n", more, name ? name : "?");
			free(name);
		}
	}
}

/* write_account - header, table, problems, verdict of one account */
static void
write_account(const struct report *r, const struct report_account *a,
    FILE *fp)
{
	struct table t;
	char dur[32], *su, *du, *line;
	const char *v[NCOLS];
	size_t i;
	int n;

	su = text_clean(a->src_user ? a->src_user : "?", SIZE_MAX, NULL);
	du = text_clean(a->dst_user ? a->dst_user : "?", SIZE_MAX, NULL);
	report_fmt_duration(a->seconds, dur, sizeof(dur));
	fprintf(fp, "%saccount %s -> %s (%s)\n", r->reverse ? "reverse " : "",
	    su ? su : "?", du ? du : "?", dur);
	free(su);
	free(du);
	if (a->nfolders > 0) {
		memset(&t, 0, sizeof(t));
		for (i = 0; i < NCOLS; i++)
			v[i] = col_head[i];
		if (r->dry_run)
			v[C_COPIED] = "TO COPY";
		table_row(&t, v);
		for (i = 0; i < a->nfolders; i++)
			folder_row(&t, r, a->folders[i]);
		table_print(&t, fp, "  ");
		if (t.oom)
			fprintf(fp, "  (out of memory: rows missing)\n");
		table_free(&t);
		write_problems(a, fp);
	}
	n = report_account_verdict(a, NULL, 0);
	if ((line = malloc((size_t)n + 1)) != NULL) {
		report_account_verdict(a, line, (size_t)n + 1);
		su = text_clean(line, SIZE_MAX, NULL);
		fprintf(fp, "  verdict: %s\n", su ? su : "?");
		free(su);
		free(line);
	}
}

int
report_write_text(const struct report *r, FILE *fp)
{
	struct report_totals t;
	char bytes[32], dur[32], *line, *clean;
	double rt;
	size_t i;
	int n;

	report_totals(r, &t);
	report_fmt_bytes(t.bytes, bytes, sizeof(bytes));
	report_fmt_duration(r->seconds, dur, sizeof(dur));
	fprintf(fp, "ferry-syncd %s%s: %" PRIu64 " %s, %" PRIu64 " %s, %" PRIu64
	    " source %s, %" PRIu64 " %s (%s) in %s", r->reverse ? "reverse " :
	    "", r->dry_run ? "dry run" : "pass", t.accounts, plural(t.accounts, "account", "accounts"),
	    t.folders - t.folders_skipped, plural(t.folders -
	    t.folders_skipped, "folder", "folders"), t.src_count,
	    plural(t.src_count, "message", "messages"), t.copied,
	    r->dry_run ? "to copy" : "copied", bytes, dur);
	if (!r->dry_run && (rt = rate(t.copied, r->seconds)) >= 0)
		fprintf(fp, " (%.1f msg/s)", rt);
	fprintf(fp, "\n");
	for (i = 0; i < r->naccounts; i++) {
		fprintf(fp, "\n");
		write_account(r, r->accounts[i], fp);
	}
	n = report_verdict(r, NULL, 0);
	if ((line = malloc((size_t)n + 1)) == NULL)
		fprintf(fp, "\nverdict: incomplete: out of memory\n");
	else {
		report_verdict(r, line, (size_t)n + 1);
		clean = text_clean(line, SIZE_MAX, NULL);
		fprintf(fp, "\nverdict: %s\n", clean ? clean : "?");
		free(clean);
		free(line);
	}
	return (ferror(fp) ? -1 : 0);
}

/* ---- the JSON writer ------------------------------------------------- */

static void
json_kv_u64(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	if (v == REPORT_UNKNOWN)
		json_null(j);
	else
		json_uint(j, v);
}

static void
json_kv_str(struct json *j, const char *key, const char *v)
{
	json_key(j, key);
	json_string(j, v);
}

/* json_rate - msgs/s rounded to 0.1, null when unknown */
static void
json_kv_rate(struct json *j, const char *key, uint64_t n, double seconds)
{
	double rt = rate(n, seconds);

	json_key(j, key);
	if (rt < 0)
		json_null(j);
	else
		json_double(j, round_tenth(rt));
}

static void
json_totals(struct json *j, const struct report_totals *t, int top)
{
	json_key(j, "totals");
	json_object_begin(j);
	if (top) {
		json_kv_u64(j, "accounts", t->accounts);
		json_kv_u64(j, "accounts_failed", t->accounts_failed);
	}
	json_kv_u64(j, "folders", t->folders);
	json_kv_u64(j, "folders_skipped", t->folders_skipped);
	json_kv_u64(j, "folders_failed", t->folders_failed);
	json_kv_u64(j, "folders_created", t->folders_created);
	json_kv_u64(j, "folders_not_copied", t->folders_not_copied);
	json_kv_u64(j, "source_count", t->src_count);
	json_kv_u64(j, "destination_count", t->dst_count);
	json_kv_u64(j, "already", t->already);
	json_kv_u64(j, "copied", t->copied);
	json_kv_u64(j, "duplicates", t->duplicates);
	json_kv_u64(j, "skipped_policy", t->policy);
	json_kv_u64(j, "failed", t->failed);
	json_kv_u64(j, "missing", t->missing);
	json_kv_u64(j, "bytes", t->bytes);
	json_kv_rate(j, "messages_per_second", t->copied, t->seconds);
	json_object_end(j);
}

static void
json_folder(struct json *j, const struct report_folder *f)
{
	const struct report_problem *p;
	size_t i;

	json_object_begin(j);
	json_kv_str(j, "source", f->src);
	json_kv_str(j, "destination", f->dst);
	json_key(j, "created");
	json_bool(j, f->created);
	json_kv_str(j, "skipped", f->skipped);
	json_kv_str(j, "error", f->error);
	json_key(j, "not_copied");
	json_bool(j, f->not_copied);
	json_key(j, "complete");
	json_bool(j, report_folder_complete(f));
	json_kv_u64(j, "source_count", f->skipped ? REPORT_UNKNOWN :
	    f->src_count);
	json_kv_u64(j, "destination_count", f->skipped ? REPORT_UNKNOWN :
	    f->dst_count);
	json_kv_u64(j, "already", f->already);
	json_kv_u64(j, "copied", f->copied);
	json_kv_u64(j, "duplicates", f->duplicates);
	json_kv_u64(j, "skipped_policy", f->policy);
	json_kv_u64(j, "failed", f->failed);
	json_kv_u64(j, "size_mismatch", f->size_mismatch);
	json_kv_u64(j, "missing", folder_missing(f));
	json_kv_u64(j, "bytes", f->bytes);
	json_key(j, "seconds");
	json_double(j, f->seconds);
	json_kv_rate(j, "messages_per_second", f->copied, f->seconds);
	json_key(j, "problems");
	json_array_begin(j);
	for (i = 0; i < f->nproblems; i++) {
		p = &f->problems[i];
		json_object_begin(j);
		json_kv_str(j, "kind", p->kind == REPORT_POLICY ? "policy" :
		    p->kind == REPORT_NOTE ? "note" : "failed");
		json_kv_u64(j, "uid", p->uid);
		json_key(j, "size");
		if (p->size > 0)
			json_uint(j, p->size);
		else
			json_null(j);
		json_kv_str(j, "subject", p->subject);
		json_kv_str(j, "reason", p->reason);
		json_object_end(j);
	}
	json_array_end(j);
	json_kv_u64(j, "problems_omitted", f->problems_omitted);
	json_object_end(j);
}

/* json_verdict - a verdict line as a string member */
static void
json_verdict(struct json *j, const struct report *r,
    const struct report_account *a)
{
	char *line;
	int n;

	n = a ? report_account_verdict(a, NULL, 0) : report_verdict(r, NULL, 0);
	json_key(j, "verdict");
	if ((line = malloc((size_t)n + 1)) == NULL) {
		json_null(j);
		return;
	}
	if (a)
		report_account_verdict(a, line, (size_t)n + 1);
	else
		report_verdict(r, line, (size_t)n + 1);
	json_string(j, line);
	free(line);
}

int
report_write_json(const struct report *r, FILE *fp, int pretty)
{
	struct report_totals t;
	const struct report_account *a;
	struct json j;
	size_t i, k;
	int rc;

	json_init_file(&j, fp, pretty ? JSON_PRETTY : 0);
	json_object_begin(&j);
	json_key(&j, "dry_run");
	json_bool(&j, r->dry_run);
	if (r->reverse) {
		json_key(&j, "direction");
		json_string(&j, "reverse");
	}
	json_key(&j, "complete");
	json_bool(&j, !report_missing(r));
	json_verdict(&j, r, NULL);
	json_key(&j, "seconds");
	json_double(&j, r->seconds);
	report_totals(r, &t);
	json_totals(&j, &t, 1);
	json_key(&j, "accounts");
	json_array_begin(&j);
	for (i = 0; i < r->naccounts; i++) {
		a = r->accounts[i];
		json_object_begin(&j);
		json_kv_str(&j, "source_user", a->src_user);
		json_kv_str(&j, "destination_user", a->dst_user);
		json_kv_str(&j, "error", a->error);
		json_key(&j, "complete");
		json_bool(&j, report_account_complete(a));
		json_verdict(&j, r, a);
		json_key(&j, "seconds");
		json_double(&j, a->seconds);
		report_account_totals(a, &t);
		json_totals(&j, &t, 0);
		json_key(&j, "folders");
		json_array_begin(&j);
		for (k = 0; k < a->nfolders; k++)
			json_folder(&j, a->folders[k]);
		json_array_end(&j);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	rc = json_end(&j);
	json_clear(&j);
	if (rc == 0 && fputc('\n', fp) == EOF)
		rc = -1;
	return (rc);
}

/* ---- the progress line ------------------------------------------------ */

/* frac - "done/total", or "done" when the total is unknown */
static const char *
frac(uint64_t done, uint64_t total, char *buf, size_t len)
{
	if (total > 0)
		snprintf(buf, len, "%" PRIu64 "/%" PRIu64, done, total);
	else
		snprintf(buf, len, "%" PRIu64, done);
	return (buf);
}

int
report_progress_format(const struct report_progress *p, int style,
    char *buf, size_t len)
{
	char fa[48], ff[48], fm[48];
	double mrate = p->msgs_rate, brate = p->bytes_rate, eta = -1;
	char eta_s[32], mb[32], mbs[32], pct[16] = "";

	if (!(mrate > 0))
		mrate = rate(p->msgs_done, p->elapsed);
	if (!(brate > 0))
		brate = rate(p->bytes_done, p->elapsed);
	if (p->bytes_total > 0 && brate > 0)
		eta = p->bytes_done >= p->bytes_total ? 0 :
		    (double)(p->bytes_total - p->bytes_done) / brate;
	else if (p->msgs_total > 0 && mrate > 0)
		eta = p->msgs_done >= p->msgs_total ? 0 :
		    (double)(p->msgs_total - p->msgs_done) / mrate;
	if (style == REPORT_PROGRESS_LOG) {
		if (eta >= 0)
			snprintf(eta_s, sizeof(eta_s), "%.0f", round_up(eta));
		else
			snprintf(eta_s, sizeof(eta_s), "-");
		return (snprintf(buf, len, "progress accounts=%" PRIu64 "/%"
		    PRIu64 " folders=%" PRIu64 "/%" PRIu64 " messages=%" PRIu64
		    "/%" PRIu64 " bytes=%" PRIu64 "/%" PRIu64
		    " msgs_per_s=%.1f bytes_per_s=%.0f elapsed=%.0f eta=%s",
		    p->accounts_done, p->accounts_total, p->folders_done,
		    p->folders_total, p->msgs_done, p->msgs_total,
		    p->bytes_done, p->bytes_total, mrate > 0 ? mrate : 0.0,
		    brate > 0 ? brate : 0.0, p->elapsed, eta_s));
	}
	if (eta >= 0 && round_up(eta) < 60)
		snprintf(eta_s, sizeof(eta_s), "%.0fs", round_up(eta));
	else if (eta >= 0)
		report_fmt_duration(round_up(eta), eta_s, sizeof(eta_s));
	else
		snprintf(eta_s, sizeof(eta_s), "?");
	report_fmt_bytes(p->bytes_done, mb, sizeof(mb));
	report_fmt_bytes(brate > 0 ? (uint64_t)brate : 0, mbs, sizeof(mbs));
	if (p->msgs_total > 0)
		snprintf(pct, sizeof(pct), " %" PRIu64 "%%",
		    p->msgs_done >= p->msgs_total ? 100 :
		    p->msgs_done * 100 / p->msgs_total);
	if (mrate < 0)
		mrate = 0;
	return (snprintf(buf, len, "accounts %s  folders %s  msgs %s%s  %s  "
	    "%.*f msg/s  %s/s  ETA %s",
	    frac(p->accounts_done, p->accounts_total, fa, sizeof(fa)),
	    frac(p->folders_done, p->folders_total, ff, sizeof(ff)),
	    frac(p->msgs_done, p->msgs_total, fm, sizeof(fm)), pct, mb,
	    mrate < 9.95 ? 1 : 0, mrate, mbs, eta_s));
}
