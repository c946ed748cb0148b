/*
 * verify.c - ferry-syncd --verify (verify.h): per account one connection
 * pair (sync_side.c) and the folder plan of the copy (acct_plan), then
 * per destination folder the metadata of its source folders and of
 * itself (UID FLAGS INTERNALDATE RFC822.SIZE and the identity header
 * fields), the body hashes the matching needs (verify_match.c), streamed
 * with BODY.PEEK[] so only the hash state is kept, never a body, and the
 * account's result (verify_report.c).
 *
 * Read-only: mailboxes are EXAMINEd on both sides (side_select with
 * rw 0), bodies fetched with BODY.PEEK, no CREATE, STORE or EXPUNGE.
 * A connection that fails is not retried: an unreachable server is
 * reported at once and the account is "not verified".
 *
 * SECURITY: header fields go through msgid.c; the Subject is cut and
 * its control bytes replaced before it reaches a terminal.
 */

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "verify_p.h"

#define SUBJECT_MAX	200		/* bytes of a Subject shown */
#define HASH_CHUNK	100		/* UIDs per hashing FETCH */

void
vlist_free(struct vlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].flags);
		free(l->v[i].msgid);
		free(l->v[i].date);
		free(l->v[i].from);
		free(l->v[i].subject);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int
vmsg_uid_cmp(const void *x, const void *y)
{
	const struct vmsg *a = *(const struct vmsg *const *)x;
	const struct vmsg *b = *(const struct vmsg *const *)y;

	return (a->uid < b->uid ? -1 : a->uid > b->uid);
}

/* ---- metadata ------------------------------------------------------------ */

struct vfetch {
	struct wres	 r;		/* first: wres_done fills it */
	struct vlist	*out;
	size_t		 folder;
	char		*hdr;
	size_t		 hlen;
	struct msg_ident *id;
	int		 oom;
};

/*
 * subject_of - the Subject field of a header block, unfolded, whitespace
 * collapsed, cut at SUBJECT_MAX bytes; bytes outside printable ASCII
 * become '?' (the value is shown as it is, RFC 2047 words undecoded)
 */
static char *
subject_of(const char *h, size_t len)
{
	char out[SUBJECT_MAX + 1];
	size_t i = 0, o = 0;
	int bol = 1, in = 0, sp = 0;

	while (i < len) {
		char c = h[i];

		if (bol) {
			if (in && (c == ' ' || c == '\t')) {
				bol = 0;
				continue;
			}
			in = 0;
			if (len - i >= 8 && strncasecmp(h + i, "subject:", 8) ==
			    0) {
				in = 1;
				i += 8;
				bol = 0;
				continue;
			}
			bol = 0;
		}
		if (c == '\n') {
			bol = 1;
			i++;
			continue;
		}
		if (in && c != '\r') {
			if (c == ' ' || c == '\t')
				sp = 1;
			else if (o < SUBJECT_MAX) {
				if (sp && o > 0 && o < SUBJECT_MAX)
					out[o++] = ' ';
				sp = 0;
				if (o < SUBJECT_MAX)
					out[o++] = (unsigned char)c >= 0x20 &&
					    (unsigned char)c < 0x7f ? c : '?';
			}
		}
		i++;
	}
	out[o] = '\0';
	return (strdup(out));
}

/* printable - the same treatment for Date and From */
static char *
printable(const char *s)
{
	char *p = strdup(s), *q;

	if (p == NULL)
		return (NULL);
	for (q = p; *q; q++)
		if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
			*q = '?';
	return (p);
}

static void
vf_body_begin(struct imap_client *c, const struct imap_fetch_msg *m,
    const char *section, uint64_t size, void *arg)
{
	struct vfetch *f = arg;

	(void)c;
	(void)m;
	(void)section;
	(void)size;
	f->hlen = 0;
}

static void
vf_body_data(struct imap_client *c, const void *data, size_t len, void *arg)
{
	struct vfetch *f = arg;

	(void)c;
	hdr_capture(f->hdr, &f->hlen, data, len);
}

static void
vf_msg(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	struct vfetch *f = arg;
	struct vlist *l = f->out;
	struct vmsg *s;
	void *p;

	(void)c;
	if (!(m->have & IMAP_FETCH_UID))
		goto out;
	if ((p = array_grow(l->v, &l->alloc, l->n, sizeof(*l->v), 256)) ==
	    NULL) {
		f->oom = 1;
		goto out;
	}
	l->v = p;
	s = &l->v[l->n];
	memset(s, 0, sizeof(*s));
	s->uid = m->uid;
	s->size = m->size;
	s->folder = f->folder;
	if (m->have & IMAP_FETCH_INTERNALDATE) {
		s->idate = m->internaldate_t;
		s->tz = m->internaldate_tz;
	}
	memset(f->id, 0, sizeof(*f->id));
	msg_ident_from_headers(f->hdr, f->hlen, f->id);
	s->flags = imap_flags_join_settable(&m->flags);
	s->msgid = strdup(f->id->has_msgid ? f->id->msgid : "");
	s->date = printable(f->id->date);
	s->from = printable(f->id->from);
	s->subject = subject_of(f->hdr, f->hlen);
	if (s->flags == NULL || s->msgid == NULL || s->date == NULL ||
	    s->from == NULL || s->subject == NULL) {
		free(s->flags);
		free(s->msgid);
		free(s->date);
		free(s->from);
		free(s->subject);
		f->oom = 1;
		goto out;
	}
	l->n++;
out:
	f->hlen = 0;
}

/* fetch_meta - every message of the selected mailbox on side i */
static int
fetch_meta(struct worker *w, int i, size_t folder, struct vlist *out,
    struct wres *r)
{
	static const struct imap_fetch_cbs cbs = { vf_body_begin,
	    vf_body_data, NULL, vf_msg, NULL };
	struct vfetch f;
	int rc;

	memset(&f, 0, sizeof(f));
	f.out = out;
	f.folder = folder;
	f.hdr = malloc(HDR_MAX);
	f.id = malloc(sizeof(*f.id));
	if (f.hdr == NULL || f.id == NULL) {
		free(f.hdr);
		free(f.id);
		memset(r, 0, sizeof(*r));
		snprintf(r->text, sizeof(r->text), "out of memory");
		return (-1);
	}
	rc = side_wait(w, imap_client_uid_fetch(w->s[i].c, "1:*",
	    "(UID FLAGS INTERNALDATE RFC822.SIZE "
	    "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)])", 0, 0,
	    &cbs, wres_done, &f), &f.r);
	*r = f.r;
	free(f.hdr);
	free(f.id);
	if (f.oom) {
		snprintf(r->text, sizeof(r->text), "out of memory");
		return (-1);
	}
	return (rc);
}

/* ---- body hashes --------------------------------------------------------- */

struct vhash {
	struct wres	 r;		/* first: wres_done fills it */
	struct vmsg	**v;		/* sorted by UID */
	size_t		 n;
	struct hash_sink hs;
	uint64_t	 done;
};

static void
vh_begin(struct imap_client *c, const struct imap_fetch_msg *m,
    const char *section, uint64_t size, void *arg)
{
	struct vhash *h = arg;

	(void)c;
	(void)m;
	(void)section;
	(void)size;
	hash_sink_begin(&h->hs);
}

static void
vh_data(struct imap_client *c, const void *data, size_t len, void *arg)
{
	struct vhash *h = arg;

	(void)c;
	hash_sink_data(&h->hs, data, len);
}

static void
vh_msg(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	struct vhash *h = arg;
	struct vmsg key, *kp = &key, **s;

	(void)c;
	key.uid = m->uid;
	s = (m->have & IMAP_FETCH_UID) ? find_n(&kp, h->v, h->n,
	    sizeof(*h->v), vmsg_uid_cmp) : NULL;
	if (hash_sink_end(&h->hs, s != NULL ? (*s)->sha : NULL) == 0) {
		(*s)->have_sha = 1;
		h->done++;
	}
}

/*
 * hash_bodies - the body hash of every message of l with want_sha from
 * folder `folder` (SIZE_MAX: any) of the mailbox selected on side i,
 * streamed in FETCHes of HASH_CHUNK UIDs.  Returns the number hashed,
 * or -1 with r filled.
 */
static int64_t
hash_bodies(struct worker *w, int i, struct vlist *l, size_t folder,
    struct wres *r)
{
	static const struct imap_fetch_cbs cbs = { vh_begin, vh_data, NULL,
	    vh_msg, NULL };
	struct vhash h;
	char set[HASH_CHUNK * 22];
	size_t k, start;

	memset(&h, 0, sizeof(h));
	memset(r, 0, sizeof(*r));
	if ((h.v = calloc(l->n + 1, sizeof(*h.v))) == NULL) {
		snprintf(r->text, sizeof(r->text), "out of memory");
		return (-1);
	}
	for (k = 0; k < l->n; k++)
		if (l->v[k].want_sha && !l->v[k].have_sha &&
		    (folder == SIZE_MAX || l->v[k].folder == folder))
			h.v[h.n++] = &l->v[k];
	sort_n(h.v, h.n, sizeof(*h.v), vmsg_uid_cmp);
	for (start = 0; start < h.n; start = k) {
		size_t o = 0;

		for (k = start; k < h.n && k - start < HASH_CHUNK; k++)
			o += (size_t)snprintf(set + o, sizeof(set) - o,
			    "%s%" PRIu64, o ? "," : "", h.v[k]->uid);
		memset(&h.r, 0, sizeof(h.r));
		if (side_wait(w, imap_client_uid_fetch(w->s[i].c, set,
		    "(UID BODY.PEEK[])", 0, 0, &cbs, wres_done, &h), &h.r) ==
		    -1) {
			(void)hash_sink_end(&h.hs, NULL);
			*r = h.r;
			free(h.v);
			return (-1);
		}
	}
	free(h.v);
	return ((int64_t)h.done);
}

/* ---- folders ------------------------------------------------------------- */

static struct vfolder *
vfolder_add(struct vacct *va, const struct folder_map *m)
{
	struct vfolder *f;

	if (va->nf == va->af) {
		size_t na = va->af ? va->af * 2 : 16;
		void *p = reallocarray(va->f, na, sizeof(*va->f));

		if (p == NULL)
			return (NULL);
		va->f = p;
		va->af = na;
	}
	f = &va->f[va->nf];
	memset(f, 0, sizeof(*f));
	if ((f->src = strdup(m->src_path ? m->src_path : "?")) == NULL)
		return (NULL);
	if (m->skip == FOLDER_COPY && (f->dst = strdup(m->dst_path)) == NULL) {
		free(f->src);
		return (NULL);
	}
	va->nf++;
	return (f);
}

static void
vfolder_fail(struct vfolder *f, const char *what, const struct wres *r)
{
	char why[400];

	wres_reason(r, why, sizeof(why));
	f->error = 1;
	errbuf_set(f->err, sizeof(f->err), "%s: %s", what, why);
}

/*
 * skipped_folder - a folder the plan does not copy: its message count
 * (STATUS; nothing for containers and virtual folders), counted as
 * left behind on purpose, or as missing when no rule skipped it
 */
static int
skipped_folder(struct worker *w, struct vacct *va, const struct folder_map *m)
{
	struct vfolder *f;
	struct vissue *is;
	const char *wire = m->src_wire ? m->src_wire : m->src_name;
	uint64_t n = 0;
	char what[160];

	if ((f = vfolder_add(va, m)) == NULL)
		return (-1);
	f->skipped = folder_skip_name(m->skip);
	f->loss = folder_skip_is_loss(m->skip);
	if (m->skip == FOLDER_SKIP_NOSELECT || m->skip == FOLDER_SKIP_VIRTUAL ||
	    m->skip == FOLDER_SKIP_DUPLICATE || wire == NULL)
		return (0);
	{
		struct wres r;

		memset(&r, 0, sizeof(r));
		if (side_wait(w, imap_client_status(w->s[SRC].c, wire,
		    IMAP_STATUS_MESSAGES, wres_done, &r), &r) == 0 &&
		    r.have_st && (r.st.have & IMAP_STATUS_MESSAGES))
			n = r.st.messages;
	}
	f->src_n = n;
	if (n == 0)
		return (0);
	if (f->loss)
		f->missing = n;
	else
		f->policy = n;
	if (va->nis == va->ais) {
		size_t na = va->ais ? va->ais * 2 : 16;
		void *p = reallocarray(va->is, na, sizeof(*va->is));

		if (p == NULL)
			return (-1);
		va->is = p;
		va->ais = na;
	}
	is = &va->is[va->nis];
	memset(is, 0, sizeof(*is));
	is->kind = f->loss ? VI_MISSING : VI_POLICY;
	snprintf(what, sizeof(what), "folder not copied (%s): %" PRIu64
	    " %s", f->skipped, n, n == 1 ? "message" : "messages");
	if ((is->folder = strdup(f->src)) == NULL ||
	    (is->what = strdup(what)) == NULL) {
		free(is->folder);
		return (-1);
	}
	va->nis++;
	return (0);
}

/*
 * verify_group - one destination folder against its source folders
 * (several only when the plan merges them into one)
 */
static int
verify_group(struct worker *w, struct vacct *va, int deep, struct store *st,
    const struct folder_map *const *ms, size_t nm, uint64_t appendlimit)
{
	struct vlist s, d;
	struct vfolder **vf;
	struct wres r;
	char dwire[WIRE_MAX], why[400];
	size_t k;
	int rc = -1, ok = 1;
	int64_t got;
	uint64_t duv = 0;

	memset(&s, 0, sizeof(s));
	memset(&d, 0, sizeof(d));
	if ((vf = calloc(nm, sizeof(*vf))) == NULL)
		return (-1);
	for (k = 0; k < nm; k++)
		if ((vf[k] = vfolder_add(va, ms[k])) == NULL)
			goto out;
	/* vfolder_add may move the array: take the pointers again */
	for (k = 0; k < nm; k++)
		vf[k] = &va->f[va->nf - nm + k];
	for (k = 0; k < nm; k++) {
		const char *wire = ms[k]->src_wire ? ms[k]->src_wire :
		    ms[k]->src_name;
		size_t before = s.n, x;

		if (side_select(w, SRC, wire, 0, &r) == -1) {
			vfolder_fail(vf[k], "EXAMINE source", &r);
			ok = 0;
			continue;
		}
		if (r.have_mb && r.mb.exists == 0)
			continue;	/* empty: "1:*" is an error on some servers */
		if (fetch_meta(w, SRC, k, &s, &r) == -1) {
			vfolder_fail(vf[k], "FETCH source", &r);
			ok = 0;
			continue;
		}
		for (x = before; x < s.n; x++) {
			vf[k]->src_n++;
			vf[k]->src_bytes += s.v[x].size;
		}
	}
	if (ms[0]->dst_exists) {
		if (imap_client_mailbox_encode(w->s[DST].c, ms[0]->dst_name,
		    dwire, sizeof(dwire), why, sizeof(why)) == -1) {
			vf[0]->error = 1;
			errbuf_set(vf[0]->err, sizeof(vf[0]->err),
			    "destination name: %s", why);
			ok = 0;
		} else if (side_select(w, DST, dwire, 0, &r) == -1) {
			vfolder_fail(vf[0], "EXAMINE destination", &r);
			ok = 0;
		} else {
			duv = r.have_mb ? r.mb.uidvalidity : 0;
			if (!(r.have_mb && r.mb.exists == 0) &&
			    fetch_meta(w, DST, 0, &d, &r) == -1) {
				vfolder_fail(vf[0], "FETCH destination", &r);
				ok = 0;
			}
		}
		for (k = 0; k < d.n; k++) {
			vf[0]->dst_n++;
			vf[0]->dst_bytes += d.v[k].size;
		}
	}
	if (!ok) {
		/* a side not read completely proves nothing */
		rc = 0;
		goto out;
	}
	vmatch_prepare(&s, &d, deep);
	for (k = 0; k < nm; k++) {
		const char *wire = ms[k]->src_wire ? ms[k]->src_wire :
		    ms[k]->src_name;

		if (side_select(w, SRC, wire, 0, &r) == -1 ||
		    (got = hash_bodies(w, SRC, &s, k, &r)) == -1) {
			vfolder_fail(vf[k], "FETCH source (body hash)", &r);
			rc = 0;
			goto out;
		}
		va->hashed += (uint64_t)got;
	}
	if (d.n > 0) {
		if (side_select(w, DST, dwire, 0, &r) == -1 ||
		    (got = hash_bodies(w, DST, &d, SIZE_MAX, &r)) == -1) {
			vfolder_fail(vf[0], "FETCH destination (body hash)",
			    &r);
			rc = 0;
			goto out;
		}
		va->hashed += (uint64_t)got;
	}
	vmatch_finish(&s, &d, &w->s[DST], appendlimit);
	for (k = 0; k < nm && st != NULL && duv != 0; k++) {
		struct state_key key;
		struct state_map map;
		char e[256];

		memset(&map, 0, sizeof(map));
		if (state_folder_key(&key, va->src_user, ms[k]->src_path, e,
		    sizeof(e)) == 0 && state_map_load(st, &key, &map, e,
		    sizeof(e)) == 0)
			vmatch_gone(&s, k, &d, &map, duv);
		state_map_free(&map);
	}
	rc = vmatch_collect(va, vf, &s, &d, ms[0]->dst_path, appendlimit);
out:
	free(vf);
	vlist_free(&s);
	vlist_free(&d);
	return (rc);
}

/* verify_folders - every entry of the plan, destination by destination */
static int
verify_folders(struct worker *w, struct vacct *va, int deep, struct store *st)
{
	const struct folder_plan *plan = w->a->plan;
	const struct folder_map **ms;
	uint64_t limit = imap_client_appendlimit(w->s[DST].c);
	unsigned char *done;
	size_t i, k, nm;
	int rc = 0;

	ms = calloc(plan->n + 1, sizeof(*ms));
	done = calloc(plan->n + 1, 1);
	if (ms == NULL || done == NULL) {
		free(ms);
		free(done);
		return (-1);
	}
	for (i = 0; i < plan->n && rc == 0; i++) {
		const struct folder_map *m = &plan->maps[i];

		if (done[i])
			continue;
		if (m->skip != FOLDER_COPY) {
			rc = skipped_folder(w, va, m);
			continue;
		}
		nm = 0;
		for (k = i; k < plan->n; k++)
			if (!done[k] && plan->maps[k].skip == FOLDER_COPY &&
			    strcmp(plan->maps[k].dst_name, m->dst_name) == 0) {
				ms[nm++] = &plan->maps[k];
				done[k] = 1;
			}
		rc = verify_group(w, va, deep, st, ms, nm, limit);
		if (pace_stopping(w->a)) {
			snprintf(va->err, sizeof(va->err), "interrupted");
			va->error = 1;
			break;
		}
	}
	free(ms);
	free(done);
	return (rc);
}

/* verify_account - connect (no retries), plan, compare every folder */
static void
verify_account(struct acct *a, struct vacct *va, int deep, struct store *st)
{
	const struct config *cfg = a->p->o->cfg;
	struct worker *w;
	double t0 = pace_now();
	char err[512];
	int i;

	va->src_user = a->acc->src_user;
	va->dst_user = a->acc->dst_user;
	if ((w = worker_new(a)) == NULL) {
		va->error = 1;
		snprintf(va->err, sizeof(va->err), "out of memory");
		return;
	}
	sides_connect(w, NULL, NULL);
	for (i = 0; i < 2; i++) {
		char why[400];

		if (w->s[i].c != NULL && w->s[i].state == 1)
			continue;
		wres_reason(&w->s[i].closed, why, sizeof(why));
		va->error = 1;
		errbuf_set(va->err, sizeof(va->err), "%s %s@%s:%u: %s",
		    i == SRC ? "source" : "destination",
		    i == SRC ? a->acc->src_user : a->acc->dst_user,
		    i == SRC ? cfg->syncd.source.addr.host :
		    cfg->syncd.destination.addr.host,
		    (unsigned)(i == SRC ? cfg->syncd.source.addr.port :
		    cfg->syncd.destination.addr.port), why);
		goto out;
	}
	if (acct_plan(w, err, sizeof(err)) == -1) {
		va->error = 1;
		snprintf(va->err, sizeof(va->err), "%s", err);
		goto out;
	}
	if (verify_folders(w, va, deep, st) == -1 && !va->error) {
		va->error = 1;
		snprintf(va->err, sizeof(va->err), "out of memory");
	}
out:
	va->seconds = pace_now() - t0;
	worker_free(&w);
	folder_plan_free(&a->plan);
}

/* records - one verification record per verified account, the store
 * opened read-write only when there is one to write */
static void
records(const char *store_path, const struct vacct *va, size_t n, int deep)
{
	struct store *st = NULL;
	char err[512];
	size_t i, want = 0;

	for (i = 0; i < n; i++)
		want += !va[i].error;
	if (want == 0 || store_path == NULL)
		return;
	if (store_open(&st, store_path, 0, err, sizeof(err)) == -1) {
		log_warnx("store %s: %s: no verification record written",
		    store_path, err);
		return;
	}
	for (i = 0; i < n; i++)
		if (!va[i].error)
			verify_record(st, &va[i], deep);
	store_close(&st);
}

int
verify_run(const struct sync_pass_opts *o, int deep, int json, FILE *out,
    const char *store_path, char *err, size_t errlen)
{
	struct store *st = NULL;
	struct pass p;
	struct vacct *va;
	char e[512];
	size_t i, n = 0;
	int rc = VERIFY_COMPLETE;

	if ((n = sync_pass_count(o, err, errlen)) == 0)
		return (-1);
	if ((va = calloc(n, sizeof(*va))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	/* the state maps, read-only: a state_dir without a store stays so */
	if (store_path != NULL && store_open(&st, store_path, STORE_RDONLY, e,
	    sizeof(e)) == -1)
		st = NULL;
	memset(&p, 0, sizeof(p));
	p.o = o;
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	pthread_mutex_init(&p.rmu, NULL);
	for (i = 0, n = 0; i < o->accounts->count; i++) {
		struct acct a;

		if (!sync_pass_selects(o, i))
			continue;
		memset(&a, 0, sizeof(a));
		a.p = &p;
		a.acc = &o->accounts->items[i];
		a.idx = n;
		pthread_mutex_init(&a.mu, NULL);
		verify_account(&a, &va[n], deep, st);
		pthread_mutex_destroy(&a.mu);
		if (va[n].error)
			log_warnx("%s: not verified: %s", a.acc->src_user,
			    va[n].err);
		if (!vacct_complete(&va[n]))
			rc = VERIFY_INCOMPLETE;
		n++;
		if (o->stop != NULL && *o->stop)
			break;
	}
	if (o->stop != NULL && *o->stop) {
		log_notice("interrupted after %zu %s", n, n == 1 ? "account" :
		    "accounts");
		rc = VERIFY_INCOMPLETE;
	}
	store_close(&st);
	records(store_path, va, n, deep);
	if (json)
		verify_print_json(out, va, n, deep);
	else
		verify_print_text(out, va, n, deep);
	for (i = 0; i < n; i++)
		vacct_free(&va[i]);
	free(va);
	pthread_mutex_destroy(&p.mu);
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.rmu);
	return (rc);
}
