/*
 * ctl_preflight_imap.c - every account on both servers, through
 * ferry-syncd's own IMAP client (syncd/imap_client.h) and folder
 * planner (syncd/folders.h), so what preflight reports is what a pass
 * would meet: the same login, the same LIST, the same plan.
 *
 * One "side job" per account and server: log in; NAMESPACE and LIST;
 * on the source, per selectable folder STATUS (MESSAGES SIZE) when the
 * server has STATUS=SIZE, EXAMINE and UID FETCH 1:* (RFC822.SIZE) for
 * the count, the bytes and the largest message; on the destination,
 * GETQUOTAROOT INBOX when it has QUOTA, and APPENDLIMIT from its
 * capabilities.  Jobs run in parallel, at most connections_per_server
 * at a time on each server, on one event loop; each connection is
 * closed when its job ends.  EXAMINE, never SELECT: nothing changes on
 * either side, not even \Recent.
 *
 * Then the connection limit probe: connections_per_server connections
 * to each server with the first account that logged in there, opened
 * one after the other and all kept open, each counted once a NOOP after
 * login succeeded.  One at a time because servers count a connection
 * once its login is through: logins racing each other would all pass
 * (Dovecot's mail_max_userip_connections, answered with NO [LIMIT] to
 * the LOGIN over it), while syncd's long-lived connections would not.
 *
 * Every wait is bounded by the client's timeout (the preflight
 * timeout: seconds without progress), so a server that hangs after its
 * greeting fails its jobs, in their rows, after that long.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "accounts.h"
#include "archive.h"
#include "ctl.h"
#include "ctl_preflight_p.h"
#include "folders.h"
#include "imap_client.h"
#include "log.h"
#include "util.h"

enum { SRC = 0, DST = 1 };
static const char *const side_names[] = { "source", "destination" };

/* One folder as listed; sizes filled on the source. */
struct pf_folder {
	char		*name;		/* UTF-8, NULL when it did not decode */
	char		*wire;
	unsigned	 attrs;
	int		 counted;	/* messages/bytes known */
	uint64_t	 messages, bytes, largest;
	char		 err[160];	/* EXAMINE / FETCH refused */
};

enum side_state { SS_PENDING = 0, SS_CONNECTING, SS_WORKING, SS_DONE };

struct pf_acct;

/* One account on one server (owned by its pf_acct). */
struct pf_side {
	struct pf_acct	*a;
	struct run	*run;
	int		 side;
	enum side_state	 st;
	struct imap_client *c;
	int		 login_ok;
	int		 finished;	/* the job's last step completed */
	char		 why[300];	/* login or later failure */
	struct pf_folder *f;
	size_t		 nf, fcap;
	int		 list_ok;
	char		 sep, ns_sep;
	char		 prefix[256];
	size_t		 cur;		/* source: folder being counted */
	uint64_t	 fx_n, fx_bytes, fx_max;	/* current FETCH */
	uint64_t	 appendlimit;	/* destination */
	int		 has_quota;	/* QUOTA capability */
	int		 quota_known;
	uint64_t	 quota_used_k, quota_limit_k;
	char		 quota_root[128];
	char		 quota_err[160];	/* GETQUOTAROOT refused */
	int		 oom;
};

struct pf_acct {
	const struct account *acc;
	struct pf_side	 s[2];
};

struct run {
	struct preflight *pf;
	struct pf_acct	*a;
	size_t		 na;
	int		 limit;
	int		 active[2];
	size_t		 next[2];
	size_t		 left;		/* side jobs not done */
};

static void	job_next_folder(struct pf_side *s);
static void	start_more(struct run *r, int side);

/* ---- job plumbing ----------------------------------------------------- */

/* result_text - "NO [CODE]: text" for a row */
static void
result_text(const struct imap_result *res, char *buf, size_t len)
{
	int code = res->code != NULL && *res->code != '\0';

	snprintf(buf, len, "%s%s%s%s", imap_status_name(res->status),
	    code ? " [" : "", code ? res->code : "", code ? "]" : "");
	if (res->text != NULL && *res->text != '\0')
		snprintf(buf + strlen(buf), len - strlen(buf), ": %s",
		    res->text);
}

/* job_end - a side job is over: close its connection, start the next */
static void
job_end(struct pf_side *s)
{
	struct run *r = s->run;

	if (s->st == SS_DONE)
		return;
	s->st = SS_DONE;
	imap_client_free(&s->c);
	r->active[s->side]--;
	r->left--;
	start_more(r, s->side);
}

/* job_fail - a side job failed at step what */
static void
job_fail(struct pf_side *s, const char *what, const struct imap_result *res)
{
	char t[240];

	if (s->st == SS_DONE)
		return;
	result_text(res, t, sizeof(t));
	snprintf(s->why, sizeof(s->why), "%s: %s", what, t);
	job_end(s);
}

/* job_finish - a side job completed its last step */
static void
job_finish(struct pf_side *s)
{
	s->finished = 1;
	job_end(s);
}

/* ---- LIST and NAMESPACE ------------------------------------------------ */

/* list_mailbox - keep one LIST entry */
static void
list_mailbox(struct imap_client *c, const struct imap_list_entry *e,
    void *arg)
{
	struct pf_side *s = arg;
	struct pf_folder *f;

	(void)c;
	if (s->nf == s->fcap) {
		size_t nc = s->fcap ? s->fcap * 2 : 16;
		void *p = reallocarray(s->f, nc, sizeof(*s->f));

		if (p == NULL) {
			s->oom = 1;
			return;
		}
		s->f = p;
		s->fcap = nc;
	}
	f = &s->f[s->nf];
	memset(f, 0, sizeof(*f));
	f->name = e->name_utf8 ? strdup(e->name_utf8) : NULL;
	f->wire = strdup(e->name);
	f->attrs = e->attrs;
	if (f->wire == NULL || (e->name_utf8 != NULL && f->name == NULL)) {
		free(f->name);
		free(f->wire);
		s->oom = 1;
		return;
	}
	if (s->sep == 0 && e->delim)
		s->sep = e->delim;
	s->nf++;
}

/* ns_done - the personal namespace's prefix (decoded) and separator */
static void
ns_done(struct imap_client *c, const struct imap_result *res, void *arg)
{
	struct pf_side *s = arg;

	if (res->status == IMAP_OK && res->ns_prefix != NULL) {
		s->ns_sep = res->ns_delim;
		if (imap_client_mailbox_decode(c, res->ns_prefix, s->prefix,
		    sizeof(s->prefix), NULL, 0) == -1)
			str_copy(s->prefix, res->ns_prefix, sizeof(s->prefix));
	}
}

/* quota_cb - the STORAGE resource of a quota root; the tightest root wins */
static void
quota_cb(struct imap_client *c, const struct imap_quota *q, void *arg)
{
	struct pf_side *s = arg;

	(void)c;
	if (strcasecmp(q->resource, "STORAGE") != 0)
		return;
	/* several roots: the tightest one decides */
	if (!s->quota_known || q->limit - (q->usage < q->limit ? q->usage :
	    q->limit) < s->quota_limit_k - s->quota_used_k) {
		s->quota_known = 1;
		s->quota_used_k = q->usage < q->limit ? q->usage : q->limit;
		s->quota_limit_k = q->limit;
		str_copy(s->quota_root, q->root, sizeof(s->quota_root));
	}
}

/* quota_done - GETQUOTAROOT over: the destination's job is done */
static void
quota_done(struct imap_client *c, const struct imap_result *res, void *arg)
{
	struct pf_side *s = arg;

	(void)c;
	if (res->status == IMAP_CANCELLED)
		return;
	if (res->status != IMAP_OK && res->status != IMAP_NO) {
		job_fail(s, "GETQUOTAROOT", res);
		return;
	}
	if (res->status == IMAP_NO)
		result_text(res, s->quota_err, sizeof(s->quota_err));
	job_finish(s);
}

/* list_done - LIST over: count the source's folders, or ask the quota */
static void
list_done(struct imap_client *c, const struct imap_result *res, void *arg)
{
	struct pf_side *s = arg;

	if (res->status == IMAP_CANCELLED)
		return;
	if (res->status != IMAP_OK || s->oom) {
		if (s->oom)
			snprintf(s->why, sizeof(s->why), "out of memory");
		job_fail(s, "LIST", res);
		return;
	}
	s->list_ok = 1;
	if (s->side == SRC) {
		s->cur = 0;
		job_next_folder(s);
		return;
	}
	s->appendlimit = imap_client_appendlimit(c);
	s->has_quota = imap_client_has_capability(c, "QUOTA");
	if (!s->has_quota ||
	    imap_client_getquotaroot(c, "INBOX", quota_cb, quota_done, s) ==
	    NULL)
		job_finish(s);
}

/* ---- the source's sizes ---------------------------------------------- */

/* fetch_msg - one message's RFC822.SIZE */
static void
fetch_msg(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	struct pf_side *s = arg;

	(void)c;
	if (!(m->have & IMAP_FETCH_SIZE))
		return;
	s->fx_n++;
	s->fx_bytes += m->size;
	if (m->size > s->fx_max)
		s->fx_max = m->size;
}

/* fetch_done - a folder counted: on to the next */
static void
fetch_done(struct imap_client *c, const struct imap_result *res, void *arg)
{
	struct pf_side *s = arg;
	struct pf_folder *f;

	(void)c;
	if (res->status == IMAP_CANCELLED)
		return;
	if (res->status == IMAP_ERROR) {
		job_fail(s, "FETCH", res);
		return;
	}
	f = &s->f[s->cur];
	if (res->status != IMAP_OK)
		result_text(res, f->err, sizeof(f->err));
	else {
		if (!f->counted) {	/* no STATUS=SIZE */
			f->messages = s->fx_n;
			f->bytes = s->fx_bytes;
			f->counted = 1;
		}
		f->largest = s->fx_max;
	}
	s->cur++;
	job_next_folder(s);
}

/* examine_done - a folder opened read-only: fetch its sizes unless empty */
static void
examine_done(struct imap_client *c, const struct imap_result *res, void *arg)
{
	static const struct imap_fetch_cbs fcbs = { NULL, NULL, NULL,
	    fetch_msg, NULL };
	struct pf_side *s = arg;
	struct pf_folder *f;

	if (res->status == IMAP_CANCELLED)
		return;
	if (res->status == IMAP_ERROR) {
		job_fail(s, "EXAMINE", res);
		return;
	}
	f = &s->f[s->cur];
	if (res->status != IMAP_OK) {
		result_text(res, f->err, sizeof(f->err));
	} else if (res->mailbox != NULL && res->mailbox->exists > 0) {
		s->fx_n = s->fx_bytes = s->fx_max = 0;
		if (imap_client_uid_fetch(c, "1:*", "(UID RFC822.SIZE)", 0, 0,
		    &fcbs, fetch_done, s) != NULL)
			return;
		snprintf(f->err, sizeof(f->err), "cannot send FETCH");
	} else if (!f->counted) {
		f->counted = 1;
	}
	s->cur++;
	job_next_folder(s);
}

/* status_done - STATUS MESSAGES SIZE of a folder (STATUS=SIZE servers) */
static void
status_done(struct imap_client *c, const struct imap_result *res, void *arg)
{
	struct pf_side *s = arg;
	const struct imap_status_info *st = res->status_info;
	size_t i;

	(void)c;
	if (res->status != IMAP_OK || st == NULL)
		return;		/* EXAMINE after it reports the trouble */
	for (i = 0; i < s->nf; i++)
		if (strcmp(s->f[i].wire, st->mailbox) == 0 &&
		    (st->have & IMAP_STATUS_SIZE) &&
		    (st->have & IMAP_STATUS_MESSAGES)) {
			s->f[i].messages = st->messages;
			s->f[i].bytes = st->size;
			s->f[i].counted = 1;
		}
}

/* job_next_folder - count the next selectable folder, or finish */
static void
job_next_folder(struct pf_side *s)
{
	struct pf_folder *f;

	for (; s->cur < s->nf; s->cur++) {
		f = &s->f[s->cur];
		if (f->attrs & (IMAP_MBOX_NOSELECT | IMAP_MBOX_NONEXISTENT))
			continue;
		if (imap_client_has_cap(s->c, IMAP_CAP_STATUS_SIZE))
			(void)imap_client_status(s->c, f->wire,
			    IMAP_STATUS_MESSAGES | IMAP_STATUS_SIZE,
			    status_done, s);
		if (imap_client_select(s->c, f->wire, IMAP_SELECT_READONLY,
		    NULL, NULL, examine_done, s) != NULL)
			return;
		snprintf(f->err, sizeof(f->err), "cannot send EXAMINE");
	}
	job_finish(s);
}

/* ---- connection ------------------------------------------------------- */

/* job_conn_cb - logged in (READY): list; closed: the job ends with why */
static void
job_conn_cb(struct imap_client *c, enum imap_client_event ev,
    const struct imap_result *res, void *arg)
{
	static const struct imap_list_cbs cbs = { list_mailbox, NULL };
	struct pf_side *s = arg;
	unsigned opts = IMAP_LIST_SPECIAL_USE;

	if (ev == IMAP_CLIENT_READY) {
		s->login_ok = 1;
		s->st = SS_WORKING;
		if (imap_client_has_cap(c, IMAP_CAP_NAMESPACE))
			(void)imap_client_namespace(c, ns_done, s);
		if (imap_client_list(c, "", "*", opts, 0, &cbs, list_done,
		    s) == NULL) {
			snprintf(s->why, sizeof(s->why), "cannot send LIST");
			job_end(s);
		}
		return;
	}
	if (s->st == SS_DONE)
		return;
	if (res != NULL && s->why[0] == '\0') {
		char t[240];

		result_text(res, t, sizeof(t));
		snprintf(s->why, sizeof(s->why), "%s", res->text && *res->text ?
		    res->text : t);
	}
	if (s->why[0] == '\0')
		snprintf(s->why, sizeof(s->why), "connection closed");
	job_end(s);
}

/* client_opts - what ferry-syncd would use for this account and side;
 * secret is the caller's buffer, wiped by the caller */
static int
client_opts(struct preflight *pf, const struct account *acc, int side,
    struct imap_client_opts *o, char *secret, size_t slen, char *logid,
    size_t llen, char *err, size_t errlen)
{
	const struct config *cfg = pf->cfg;
	const struct imap_url *u = side == SRC ? &cfg->syncd.source :
	    &cfg->syncd.destination;
	const struct account_secret *sec = side == SRC ? &acc->src : &acc->dst;

	memset(o, 0, sizeof(*o));
	o->host = u->addr.host;
	o->port = u->addr.port;
	o->tls = u->tls == CFG_IMAP_TLS_IMPLICIT ? IMAP_TLS_IMPLICIT :
	    u->tls == CFG_IMAP_TLS_STARTTLS ? IMAP_TLS_STARTTLS :
	    IMAP_TLS_NONE;
	o->ssl_ctx = pf->ssl_ctx;
	o->tls_no_verify = !cfg->syncd.tls_verify;
	o->user = side == SRC ? acc->src_user : acc->dst_user;
	if (accounts_secret(sec, secret, slen, err, errlen) == -1)
		return (-1);
	o->secret = secret;
	o->auth = sec->auth == ACCOUNT_AUTH_XOAUTH2 ? IMAP_AUTH_XOAUTH2 :
	    IMAP_AUTH_AUTO;
	o->window = 4;
	o->timeout = pf->timeout;
	if (u->kind != CFG_IMAP_KIND_IMAP) {
		/* a local archive: the reader ferry-syncd would use */
		if (archive_imapd_start(u->kind == CFG_IMAP_KIND_MAILDIR ?
		    ARCHIVE_MAILDIR : ARCHIVE_MBOX, u->path, o->user,
		    cfg->global.state_dir, &o->fd, err, errlen) == -1) {
			explicit_bzero(secret, slen);
			return (-1);
		}
		o->have_fd = 1;
	}
	snprintf(logid, llen, "preflight %s:%s", side == SRC ? "src" : "dst",
	    o->user);
	o->log_id = logid;
	return (0);
}

/* start_more - start side jobs up to connections_per_server on this side */
static void
start_more(struct run *r, int side)
{
	struct imap_client_opts o;
	char secret[ACCOUNTS_SECRET_MAX + 1], logid[128], e[256];
	struct pf_side *s;

	while (r->active[side] < r->limit && r->next[side] < r->na) {
		s = &r->a[r->next[side]++].s[side];
		r->active[side]++;
		s->st = SS_CONNECTING;
		if (client_opts(r->pf, s->a->acc, side, &o, secret,
		    sizeof(secret), logid, sizeof(logid), e, sizeof(e)) == -1) {
			explicit_bzero(secret, sizeof(secret));
			snprintf(s->why, sizeof(s->why), "secret: %s", e);
			job_end(s);
			continue;
		}
		s->c = imap_client_new(r->pf->base, &o, job_conn_cb, s, e,
		    sizeof(e));
		explicit_bzero(secret, sizeof(secret));
		if (s->c == NULL && o.have_fd)
			close(o.fd);
		if (s->c == NULL) {
			snprintf(s->why, sizeof(s->why), "%s", e);
			job_end(s);
		}
	}
}

/* ---- the connection limit probe ----------------------------------------- */

struct probe_conn {
	struct imap_client *c;
	int		*ok, *done;
	int		 over;
	char		*why;
	size_t		 whylen;
};

/* probe_end - one probe connection counted, as opened or refused */
static void
probe_end(struct probe_conn *p, int ok, const char *why)
{
	if (p->over)
		return;
	p->over = 1;
	(*p->done)++;
	if (ok)
		(*p->ok)++;
	else if (why != NULL && p->why[0] == '\0')
		snprintf(p->why, p->whylen, "%s", why);
}

/* probe_noop_done - the NOOP after login: the connection really is usable */
static void
probe_noop_done(struct imap_client *c, const struct imap_result *res,
    void *arg)
{
	(void)c;
	if (res->status == IMAP_CANCELLED)
		return;
	probe_end(arg, res->status == IMAP_OK, res->text);
}

/* probe_conn_cb - a probe connection logged in, or was refused */
static void
probe_conn_cb(struct imap_client *c, enum imap_client_event ev,
    const struct imap_result *res, void *arg)
{
	struct probe_conn *p = arg;

	if (ev == IMAP_CLIENT_READY) {
		if (imap_client_noop(c, probe_noop_done, p) == NULL)
			probe_end(p, 0, "cannot send NOOP");
		return;
	}
	probe_end(p, 0, res != NULL && res->text ? res->text :
	    "connection closed");
}

/* probe_side - the connection limit probe on one server */
static void
probe_side(struct run *r, int side)
{
	struct preflight *pf = r->pf;
	const struct imap_url *u = side == SRC ? &pf->cfg->syncd.source :
	    &pf->cfg->syncd.destination;
	const struct account *acc = NULL;
	struct probe_conn *pc;
	struct imap_client_opts o;
	char secret[ACCOUNTS_SECRET_MAX + 1], logid[128], e[256];
	char where[HOSTPORT_HOSTMAX + 16], want[16], got[32], why[300];
	int n = r->limit, ok = 0, done = 0, i;
	size_t k;

	snprintf(where, sizeof(where), "%s", u->addr.host);
	snprintf(want, sizeof(want), "%d", n);
	for (k = 0; k < r->na && acc == NULL; k++)
		if (r->a[k].s[side].login_ok)
			acc = r->a[k].acc;
	if (acc == NULL) {
		pf_row(pf, PF_T_CONNS, PF_BLOCK, side_names[side], where, want,
		    "-", "not probed: no account could log in");
		return;
	}
	if ((pc = calloc((size_t)n, sizeof(*pc))) == NULL) {
		pf_row(pf, PF_T_CONNS, PF_BLOCK, side_names[side], where, want,
		    "-", "out of memory");
		return;
	}
	why[0] = '\0';
	for (i = 0; i < n; i++) {
		pc[i].ok = &ok;
		pc[i].done = &done;
		pc[i].why = why;
		pc[i].whylen = sizeof(why);
		if (client_opts(pf, acc, side, &o, secret, sizeof(secret),
		    logid, sizeof(logid), e, sizeof(e)) == -1 ||
		    (pc[i].c = imap_client_new(pf->base, &o, probe_conn_cb,
		    &pc[i], e, sizeof(e))) == NULL) {
			if (o.have_fd && pc[i].c == NULL)
				close(o.fd);
			probe_end(&pc[i], 0, e);
		}
		explicit_bzero(secret, sizeof(secret));
		while (!pc[i].over &&
		    event_base_loop(pf->base, EVLOOP_ONCE) == 0)
			;
		if (ok <= i)
			break;	/* the limit: no point in more */
	}
	for (i = 0; i < n; i++)
		imap_client_free(&pc[i].c);
	free(pc);
	snprintf(got, sizeof(got), "%d", ok);
	if (ok == n)
		pf_row(pf, PF_T_CONNS, PF_OK, side_names[side], where, want,
		    got, "");
	else {
		char note[400];

		snprintf(note, sizeof(note), "%s; lower [syncd] "
		    "connections_per_server to %d or raise the server's limit",
		    why[0] ? why : "refused", ok);
		pf_row(pf, PF_T_CONNS, PF_BLOCK, side_names[side], where, want,
		    got, note);
	}
}

/* ---- rows ---------------------------------------------------------------- */

/* folder_infos - one side's listing as the planner's input */
static void
folder_infos(const struct pf_side *s, struct folder_info *fi,
    struct folder_list *l)
{
	size_t i;

	for (i = 0; i < s->nf; i++) {
		fi[i].name = s->f[i].name;
		fi[i].wire = s->f[i].wire;
		fi[i].attrs = s->f[i].attrs;
	}
	memset(l, 0, sizeof(*l));
	l->v = fi;
	l->n = s->nf;
	l->sep = s->ns_sep ? s->ns_sep : s->sep;
	l->prefix = s->prefix;
}

/* the destination folder flagged with a role's SPECIAL-USE, or NULL */
static const char *
dst_special(const struct pf_side *d, enum folder_role role)
{
	static const unsigned bits[FOLDER_ROLE_COUNT_] = {
		[FOLDER_ROLE_SENT] = IMAP_MBOX_SENT,
		[FOLDER_ROLE_DRAFTS] = IMAP_MBOX_DRAFTS,
		[FOLDER_ROLE_TRASH] = IMAP_MBOX_TRASH,
		[FOLDER_ROLE_JUNK] = IMAP_MBOX_JUNK,
		[FOLDER_ROLE_ARCHIVE] = IMAP_MBOX_ARCHIVE,
	};
	size_t i;

	for (i = 0; i < d->nf; i++)
		if (bits[role] && (d->f[i].attrs & bits[role]) &&
		    d->f[i].name != NULL)
			return (d->f[i].name);
	return (NULL);
}

/* special_rows - Sent, Drafts, Trash, Junk, Archive on each side */
static void
special_rows(struct preflight *pf, const char *user,
    const struct folder_plan *plan, const struct pf_side *d)
{
	char cell[2][FOLDER_ROLE_COUNT_][200];
	const struct folder_map *m;
	const char *n;
	int r;
	size_t i;

	memset(cell, 0, sizeof(cell));
	for (i = 0; i < plan->n; i++) {
		m = &plan->maps[i];
		r = (int)m->role;
		if (r <= FOLDER_ROLE_INBOX || r >= FOLDER_ROLE_COUNT_ ||
		    cell[0][r][0] != '\0')
			continue;
		str_copy(cell[0][r], m->src_path, sizeof(cell[0][r]));
		if (m->skip == FOLDER_COPY)
			snprintf(cell[1][r], sizeof(cell[1][r]), "%s%s",
			    m->dst_path, m->create ? " (new)" : "");
	}
	for (r = FOLDER_ROLE_SENT; r < FOLDER_ROLE_COUNT_; r++)
		if (cell[1][r][0] == '\0' &&
		    (n = dst_special(d, (enum folder_role)r)) != NULL)
			str_copy(cell[1][r], n, sizeof(cell[1][r]));
	for (i = 0; i < 2; i++)
		pf_row(pf, PF_T_SPECIAL, PF_OK, user, side_names[i],
		    cell[i][FOLDER_ROLE_SENT], cell[i][FOLDER_ROLE_DRAFTS],
		    cell[i][FOLDER_ROLE_TRASH], cell[i][FOLDER_ROLE_JUNK],
		    cell[i][FOLDER_ROLE_ARCHIVE]);
}

/* special_flag - the SPECIAL-USE flag of a CREATE, without the backslash */
static const char *
special_flag(unsigned bits)
{
	if (bits & IMAP_MBOX_SENT)
		return ("Sent");
	if (bits & IMAP_MBOX_DRAFTS)
		return ("Drafts");
	if (bits & IMAP_MBOX_TRASH)
		return ("Trash");
	if (bits & IMAP_MBOX_JUNK)
		return ("Junk");
	if (bits & IMAP_MBOX_ARCHIVE)
		return ("Archive");
	return ("");
}

/* folder_rows - one row per source folder: where it goes, or why not */
static void
folder_rows(struct preflight *pf, const char *user,
    const struct folder_plan *plan, const struct pf_side *s)
{
	const struct folder_map *m;
	const struct pf_folder *f;
	char act[300], msgs[32];
	enum pf_level lv;
	size_t i;

	for (i = 0; i < plan->n; i++) {
		m = &plan->maps[i];
		f = m->src_index < s->nf ? &s->f[m->src_index] : NULL;
		lv = PF_OK;
		msgs[0] = '\0';
		if (f != NULL && f->counted)
			snprintf(msgs, sizeof(msgs), "%llu",
			    (unsigned long long)f->messages);
		if (m->skip != FOLDER_COPY) {
			snprintf(act, sizeof(act), "skipped (%s)",
			    folder_skip_name(m->skip));
			if (folder_skip_is_loss(m->skip)) {
				lv = PF_BLOCK;
				snprintf(act, sizeof(act), "cannot be mapped "
				    "(%s)", folder_skip_name(m->skip));
			}
		} else {
			snprintf(act, sizeof(act), "%s (%s%s%s)%s",
			    m->create ? "create" : "exists",
			    folder_how_name(m->how),
			    m->create_special ? ", USE " : "",
			    special_flag(m->create_special),
			    m->warnings & FOLDER_W_CONFLICT ? ", name taken" :
			    m->warnings & FOLDER_W_MERGED ? ", merged" : "");
			if (m->warnings & FOLDER_W_CONFLICT)
				lv = PF_WARN;
		}
		if (f != NULL && f->err[0] != '\0') {
			snprintf(act + strlen(act), sizeof(act) - strlen(act),
			    "; cannot be read: %s", f->err);
			lv = PF_BLOCK;
		}
		pf_row(pf, PF_T_FOLDERS, lv, user, m->src_path, msgs,
		    m->skip == FOLDER_COPY ? m->dst_path : "-", act);
	}
}

/* account_rows - credentials, totals, quota, APPENDLIMIT and the plan of
 * one account */
static void
account_rows(struct preflight *pf, struct pf_acct *a,
    const struct folder_rules *rules)
{
	struct pf_side *s = &a->s[SRC], *d = &a->s[DST];
	const char *user = a->acc->src_user;
	struct folder_info *fs = NULL, *fd = NULL;
	struct folder_list ls, ld;
	struct folder_plan *plan = NULL;
	uint64_t msgs = 0, bytes = 0, largest = 0, freeb = 0;
	char c1[32], c2[32], c3[32], c4[32], c5[64], c6[64], note[400];
	char n1[24], n2[24], n3[24], n4[24];
	char why[300];
	enum pf_level lv = PF_OK;
	size_t i, nfold = 0;
	int i2;

	for (i2 = SRC; i2 <= DST; i2++) {
		struct pf_side *x = &a->s[i2];

		if (x->login_ok) {
			char t[340];

			snprintf(t, sizeof(t), "logged in, then %s", x->why);
			pf_row(pf, PF_T_CREDS, x->finished ? PF_OK : PF_BLOCK,
			    user, side_names[i2], i2 == SRC ? a->acc->src_user :
			    a->acc->dst_user, x->finished ? "ok" : t);
		}
		else
			pf_row(pf, PF_T_CREDS, PF_BLOCK, user, side_names[i2],
			    i2 == SRC ? a->acc->src_user : a->acc->dst_user,
			    x->why[0] ? x->why : "not tried");
	}
	if (!s->finished || !d->finished) {
		pf_row(pf, PF_T_ACCOUNTS, PF_WARN, user, "-", "-", "-", "-",
		    "-", "-", s->login_ok && d->login_ok ? "not checked: a "
		    "server stopped answering (see Credentials)" :
		    "not checked: login failed (see Credentials)", "", "", "",
		    "");
		return;
	}
	for (i = 0; i < s->nf; i++) {
		if (s->f[i].attrs & (IMAP_MBOX_NOSELECT | IMAP_MBOX_NONEXISTENT))
			continue;
		nfold++;
		msgs += s->f[i].messages;
		bytes += s->f[i].bytes;
		if (s->f[i].largest > largest)
			largest = s->f[i].largest;
	}
	snprintf(c1, sizeof(c1), "%zu", nfold);
	snprintf(c2, sizeof(c2), "%llu", (unsigned long long)msgs);
	pf_size(c3, sizeof(c3), bytes);
	pf_size(c4, sizeof(c4), largest);
	note[0] = '\0';
	if (d->quota_known && d->quota_limit_k > 0) {
		freeb = (d->quota_limit_k - d->quota_used_k) * 1024;
		pf_size(c5, sizeof(c5), freeb);
		if (freeb < bytes) {
			lv = PF_BLOCK;
			snprintf(note, sizeof(note), "quota: %s to copy, %s free",
			    c3, c5);
		}
	} else if (d->quota_err[0] != '\0') {
		snprintf(c5, sizeof(c5), "unknown");
		snprintf(note, sizeof(note), "GETQUOTAROOT: %s", d->quota_err);
		lv = PF_WARN;
	} else
		snprintf(c5, sizeof(c5), d->has_quota ? "unlimited" :
		    "unknown (no QUOTA)");
	if (d->appendlimit > 0) {
		pf_size(c6, sizeof(c6), d->appendlimit);
		if (largest > d->appendlimit) {
			lv = PF_BLOCK;
			snprintf(note + strlen(note), sizeof(note) -
			    strlen(note), "%slargest message %s over "
			    "APPENDLIMIT %s", note[0] ? "; " : "", c4, c6);
		}
	} else
		snprintf(c6, sizeof(c6), "none");
	snprintf(n1, sizeof(n1), "%llu", (unsigned long long)bytes);
	snprintf(n2, sizeof(n2), "%llu", (unsigned long long)largest);
	n3[0] = n4[0] = '\0';
	if (d->quota_known && d->quota_limit_k > 0)
		snprintf(n3, sizeof(n3), "%llu", (unsigned long long)freeb);
	if (d->appendlimit > 0)
		snprintf(n4, sizeof(n4), "%llu",
		    (unsigned long long)d->appendlimit);
	pf_row(pf, PF_T_ACCOUNTS, lv, user, c1, c2, c3, c4, c5, c6, note,
	    n1, n2, n3, n4);

	fs = calloc(s->nf ? s->nf : 1, sizeof(*fs));
	fd = calloc(d->nf ? d->nf : 1, sizeof(*fd));
	if (fs == NULL || fd == NULL) {
		pf_row(pf, PF_T_FOLDERS, PF_BLOCK, user, "-", "", "-",
		    "out of memory");
		goto out;
	}
	folder_infos(s, fs, &ls);
	folder_infos(d, fd, &ld);
	if (folder_plan_build(rules, &ls, &ld, 0, &plan, why,
	    sizeof(why)) == -1) {
		pf_row(pf, PF_T_FOLDERS, PF_BLOCK, user, "-", "", "-", why);
		goto out;
	}
	special_rows(pf, user, plan, d);
	folder_rows(pf, user, plan, s);
out:
	folder_plan_free(&plan);
	free(fs);
	free(fd);
}

/* side_free - a side job's connection and listing */
static void
side_free(struct pf_side *s)
{
	size_t i;

	imap_client_free(&s->c);
	for (i = 0; i < s->nf; i++) {
		free(s->f[i].name);
		free(s->f[i].wire);
	}
	free(s->f);
}

/* pf_accounts - every account on both sides, then the connection probe */
int
pf_accounts(struct preflight *pf, char *err, size_t errlen)
{
	const struct accounts *l = pf->accts;
	struct folder_rules *rules = NULL;
	struct run r;
	size_t i, k;
	int side;

	memset(&r, 0, sizeof(r));
	r.pf = pf;
	r.limit = (int)pf->cfg->syncd.connections_per_server;
	if (folder_rules_new(&rules, &pf->cfg->syncd.include,
	    &pf->cfg->syncd.exclude, &pf->cfg->syncd.map,
	    pf->cfg->syncd.skip_non_mail, err, errlen) == -1)
		return (-1);
	if ((r.a = calloc(l->count, sizeof(*r.a))) == NULL) {
		folder_rules_free(&rules);
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	for (i = 0; i < l->count; i++) {
		if (pf->only != NULL && strcasecmp(l->items[i].src_user,
		    pf->only) != 0)
			continue;
		k = r.na++;
		r.a[k].acc = &l->items[i];
		for (side = SRC; side <= DST; side++) {
			r.a[k].s[side].a = &r.a[k];
			r.a[k].s[side].run = &r;
			r.a[k].s[side].side = side;
		}
	}
	if (l->insecure)
		pf_row(pf, PF_T_CREDS, PF_WARN, "-", "-", "-", "the accounts "
		    "file is readable by group or others: chmod 600 it");
	r.left = r.na * 2;
	start_more(&r, SRC);
	start_more(&r, DST);
	while (r.left > 0 && event_base_loop(pf->base, EVLOOP_ONCE) == 0)
		;
	for (i = 0; i < r.na; i++)
		account_rows(pf, &r.a[i], rules);
	probe_side(&r, SRC);
	probe_side(&r, DST);
	for (i = 0; i < r.na; i++) {
		side_free(&r.a[i].s[SRC]);
		side_free(&r.a[i].s[DST]);
	}
	free(r.a);
	folder_rules_free(&rules);
	return (0);
}
