/*
 * sync_side.c - the blocking facade over the asynchronous imap_client
 * (imap_client.h): a worker owns an event_base and two sides, a source
 * and a destination connection.  A command is queued with wres_done as
 * its callback and side_wait() runs the loop until that fired; the
 * outcome is copied into a struct wres, so nothing of the client's
 * result outlives the callback.  Above this file the per-folder logic is
 * a straight sequence of commands.
 *
 * Also here: connecting (both logins overlapping, reconnects with
 * backoff), SELECT/EXAMINE of a mailbox unless it is selected already
 * (the source is only ever EXAMINEd: DESIGN.md §1 read-only source),
 * and a worker's life: its one-second tick that hangs up STOP_GRACE
 * seconds after a stop request, and the LOGOUTs at its end.
 *
 * SECURITY: passwords are wiped (explicit_bzero) as soon as the client
 * has taken them.  Threads: a worker, its sides and its loop never leave
 * the thread that runs them.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "archive.h"
#include "sync_p.h"

#define RECONNECT_TRIES	5

const char *const side_name[2] = { "src", "dst" };

void
wres_fill(struct wres *r, const struct imap_result *res)
{
	r->done = 1;
	r->status = res->status;
	r->cls = res->errclass;
	r->backoff_ms = res->backoff_ms;
	snprintf(r->code, sizeof(r->code), "%s", res->code ? res->code : "");
	snprintf(r->text, sizeof(r->text), "%s", res->text ? res->text : "");
	r->appenduid_validity = res->appenduid_validity;
	r->appenduid_first = res->appenduid_first;
	if (res->appenduid_set != NULL) {
		if (strlen(res->appenduid_set) >= sizeof(r->appenduid_set))
			r->appenduid_cut = 1;
		else
			snprintf(r->appenduid_set, sizeof(r->appenduid_set),
			    "%s", res->appenduid_set);
	}
	if (res->mailbox != NULL) {
		r->mb = *res->mailbox;
		r->mb.permflags.v = NULL;
		r->mb.flags.v = NULL;
		r->have_mb = 1;
	}
	if (res->status_info != NULL) {
		r->st = *res->status_info;
		r->st.mailbox = NULL;
		r->have_st = 1;
	}
}

/* "NO [CANNOT] text" for reports and logs */
void
wres_reason(const struct wres *r, char *buf, size_t len)
{
	if (r->code[0])
		snprintf(buf, len, "%s [%s] %s", imap_status_name(r->status),
		    r->code, r->text);
	else
		snprintf(buf, len, "%s %s", imap_status_name(r->status),
		    r->text);
}

int
wres_temp(const struct wres *r)
{
	return (r->status == IMAP_ERROR || r->status == IMAP_CANCELLED ||
	    r->cls == IMAP_ERR_TEMP);
}

void
wres_done(struct imap_client *c, const struct imap_result *res, void *arg)
{
	(void)c;
	wres_fill(arg, res);
}

static void
conn_cb(struct imap_client *c, enum imap_client_event ev,
    const struct imap_result *res, void *arg)
{
	struct side *s = arg;

	(void)c;
	if (ev == IMAP_CLIENT_READY) {
		s->state = 1;
		return;
	}
	s->state = -1;
	wres_fill(&s->closed, res);
	s->selected[0] = '\0';
}

/* run the loop until *flag is set; -1 when the loop has nothing left */
int
side_loop_until(struct worker *w, const int *flag)
{
	while (!*flag) {
		if (event_base_loop(w->base, EVLOOP_ONCE) != 0)
			return (*flag ? 0 : -1);
	}
	return (0);
}

static int
state_nonzero(const struct side *s)
{
	return (s->state != 0);
}

void
side_close(struct side *s)
{
	imap_client_free(&s->c);
	s->state = -1;
	s->selected[0] = '\0';
}

/* side_start - begin one connection attempt (READY comes later) */
static int
side_start(struct worker *w, int i, char *err, size_t errlen)
{
	struct acct *a = w->a;
	const struct config *cfg = a->p->o->cfg;
	const struct imap_url *u = i == SRC ? &cfg->syncd.source :
	    &cfg->syncd.destination;
	const struct account_secret *sec = i == SRC ? &a->acc->src :
	    &a->acc->dst;
	struct imap_client_opts o;
	struct side *s = &w->s[i];
	char secret[ACCOUNTS_SECRET_MAX + 1], logid[128], e[256];

	side_close(s);
	memset(&o, 0, sizeof(o));
	o.host = u->addr.host;
	o.port = u->addr.port;
	o.tls = u->tls == CFG_IMAP_TLS_IMPLICIT ? IMAP_TLS_IMPLICIT :
	    u->tls == CFG_IMAP_TLS_STARTTLS ? IMAP_TLS_STARTTLS :
	    IMAP_TLS_NONE;
	o.ssl_ctx = i == SRC ? a->p->o->src_ctx : a->p->o->dst_ctx;
	o.tls_no_verify = !cfg->syncd.tls_verify;
	o.user = i == SRC ? a->acc->src_user : a->acc->dst_user;
	if (accounts_secret(sec, secret, sizeof(secret), e, sizeof(e)) ==
	    -1) {
		errbuf_set(err, errlen, "%s secret: %s", side_name[i], e);
		return (-1);
	}
	o.secret = secret;
	o.auth = sec->auth == ACCOUNT_AUTH_XOAUTH2 ? IMAP_AUTH_XOAUTH2 :
	    IMAP_AUTH_AUTO;
	/*
	 * UTF8=ACCEPT on the destination (RFC 6855), where offered: a
	 * message with 8-bit header bytes is appended in the UTF8 form, so
	 * the server keeps it as sent instead of rewriting what it takes
	 * for a broken header; the session's mailbox names are then UTF-8
	 * (the client converts both ways).
	 */
	o.enable = IMAP_ENABLE_CONDSTORE | (i == DST ? IMAP_ENABLE_UTF8 : 0);
	o.id_name = "mailferry";
	o.id_version = PACKAGE_VERSION;
	o.window = 16;
	snprintf(logid, sizeof(logid), "%s:%s", side_name[i], o.user);
	o.log_id = logid;
	o.timing = metrics_imap_timing;
	o.timing_arg = metrics_server_arg(i == SRC ? METRICS_SOURCE :
	    METRICS_DESTINATION);
	if (u->kind != CFG_IMAP_KIND_IMAP) {
		/* a local archive: the built-in reader on a socketpair */
		if (archive_imapd_start(u->kind == CFG_IMAP_KIND_MAILDIR ?
		    ARCHIVE_MAILDIR : ARCHIVE_MBOX, u->path, o.user,
		    cfg->global.state_dir, &o.fd, e, sizeof(e)) == -1) {
			explicit_bzero(secret, sizeof(secret));
			errbuf_set(err, errlen, "%s: %s", side_name[i], e);
			return (-1);
		}
		o.have_fd = 1;
	}
	s->state = 0;
	s->c = imap_client_new(w->base, &o, conn_cb, s, e, sizeof(e));
	explicit_bzero(secret, sizeof(secret));
	if (s->c == NULL && o.have_fd)
		close(o.fd);
	if (s->c == NULL) {
		s->state = -1;
		errbuf_set(err, errlen, "%s: %s", side_name[i], e);
		return (-1);
	}
	return (0);
}

/* side_finish - wait for a started connection; 0 ready, -1, -2 (auth
 * or permanent: no retry) */
static int
side_finish(struct worker *w, int i, char *err, size_t errlen)
{
	struct acct *a = w->a;
	const struct config *cfg = a->p->o->cfg;
	struct side *s = &w->s[i];
	int flag;

	for (;;) {
		flag = state_nonzero(s);
		if (flag)
			break;
		if (event_base_loop(w->base, EVLOOP_ONCE) != 0)
			break;
	}
	if (s->state != 1) {
		char why[400];

		wres_reason(&s->closed, why, sizeof(why));
		errbuf_set(err, errlen, "%s %s@%s: %s", side_name[i],
		    i == SRC ? a->acc->src_user : a->acc->dst_user,
		    i == SRC ? cfg->syncd.source.addr.host :
		    cfg->syncd.destination.addr.host, why);
		return (s->closed.cls == IMAP_ERR_AUTH ||
		    s->closed.cls == IMAP_ERR_PERM ? -2 : -1);
	}
	return (0);
}

/* side_connect - one connection attempt; 0 when ready */
static int
side_connect(struct worker *w, int i, char *err, size_t errlen)
{
	if (side_start(w, i, err, errlen) == -1)
		return (-1);
	return (side_finish(w, i, err, errlen));
}

/*
 * sides_connect - both connections at once (logins overlap); a side
 * that fails is left to side_ensure()'s retries.  ready (may be NULL)
 * is called for each side as soon as it is ready, so that its first
 * commands need not wait for the other side's login.
 */

void
sides_connect(struct worker *w, side_ready_fn ready, void *arg)
{
	char err[400];
	int i, pending, started[2] = { 0, 0 };

	for (i = 0; i < 2; i++)
		if (w->s[i].c == NULL || w->s[i].state != 1)
			started[i] = side_start(w, i, err, sizeof(err)) == 0;
		else if (ready != NULL)
			ready(w, i, arg);
	for (;;) {
		pending = 0;
		for (i = 0; i < 2; i++) {
			if (!started[i])
				continue;
			if (w->s[i].state == 0) {
				pending = 1;
				continue;
			}
			started[i] = 0;
			if (w->s[i].state == 1 && ready != NULL)
				ready(w, i, arg);
		}
		if (!pending || event_base_loop(w->base, EVLOOP_ONCE) != 0)
			break;
	}
}

/*
 * side_ensure - a ready connection, reconnecting with backoff (1 s,
 * doubling, or the server's suggested time) when it dropped.
 * 0, or -1 with err (not retried for authentication errors).
 */
int
side_ensure(struct worker *w, int i, char *err, size_t errlen)
{
	uint64_t delay = 1000;
	int tries, rc;

	if (w->s[i].c != NULL && w->s[i].state == 1)
		return (0);
	for (tries = 0; tries < RECONNECT_TRIES; tries++) {
		if (tries > 0) {
			uint64_t d = w->s[i].closed.backoff_ms > delay ?
			    w->s[i].closed.backoff_ms : delay;

			if (d > 60000)
				d = 60000;
			if (w->s[i].closed.backoff_ms > delay)
				metrics_throttle(METRICS_THROTTLE_SERVER,
				    (double)d / 1000.0);
			log_info("%s: %s: reconnecting in %" PRIu64 " ms "
			    "(%s)", w->a->acc->src_user, side_name[i], d, err);
			pace_sleep_ms(d, w->a->p->o->stop);
			delay *= 2;
		}
		if (pace_stopping(w->a)) {
			errbuf_set(err, errlen, "interrupted");
			return (-1);
		}
		metrics_reconnect(i == SRC ? METRICS_SOURCE :
		    METRICS_DESTINATION);
		rc = side_connect(w, i, err, errlen);
		if (rc == 0)
			return (0);
		if (rc == -2)
			return (-1);	/* auth or permanent: no retry */
	}
	return (-1);
}

/* run a queued command to its end */
int
side_wait(struct worker *w, struct imap_cmd *cmd, struct wres *r)
{
	if (cmd == NULL) {
		r->done = 1;
		r->status = IMAP_ERROR;
		r->cls = IMAP_ERR_TEMP;
		snprintf(r->text, sizeof(r->text), "command not queued");
		return (-1);
	}
	if (side_loop_until(w, &r->done) == -1) {
		r->status = IMAP_ERROR;
		r->cls = IMAP_ERR_TEMP;
		snprintf(r->text, sizeof(r->text), "event loop empty");
		return (-1);
	}
	return (r->status == IMAP_OK ? 0 : -1);
}

/*
 * side_select_begin - queue EXAMINE (SELECT when rw, never on the
 * source) unless that mailbox is selected already: 1 = already there
 * (r filled), 0 = queued (finish with side_select_end), -1 = not
 * queued.  Split so that both sides' selects can overlap.
 */
int
side_select_begin(struct worker *w, int i, const char *wire, int rw,
    struct wres *r)
{
	struct side *s = &w->s[i];
	const struct imap_mailbox *mb;
	unsigned flags;

	memset(r, 0, sizeof(*r));
	if (i == SRC)
		rw = 0;		/* never SELECT the source */
	if (s->c != NULL && s->state == 1 && strcmp(s->selected, wire) == 0 &&
	    (s->selected_rw || !rw) && (mb = imap_client_mailbox(s->c)) !=
	    NULL) {
		r->done = 1;
		r->status = IMAP_OK;
		r->mb = *mb;
		r->have_mb = 1;
		return (1);
	}
	flags = rw ? 0 : IMAP_SELECT_READONLY;
	if (i == SRC && w->a->src_condstore)
		flags |= IMAP_SELECT_CONDSTORE;
	s->selected[0] = '\0';
	if (s->c == NULL || imap_client_select(s->c, wire, flags, NULL, NULL,
	    wres_done, r) == NULL) {
		r->done = 1;
		r->status = IMAP_ERROR;
		r->cls = IMAP_ERR_TEMP;
		snprintf(r->text, sizeof(r->text), "not connected");
		return (-1);
	}
	return (0);
}

int
side_select_end(struct worker *w, int i, const char *wire, int rw,
    struct wres *r)
{
	struct side *s = &w->s[i];
	const struct imap_mailbox *mb;
	size_t k;

	if (i == SRC)
		rw = 0;
	if (side_loop_until(w, &r->done) == -1 || r->status != IMAP_OK)
		return (-1);
	snprintf(s->selected, sizeof(s->selected), "%s", wire);
	s->selected_rw = rw;
	if (i == DST && (mb = imap_client_mailbox(s->c)) != NULL) {
		strlist_clear(&s->permflags);
		s->permflags_known = mb->permflags_known;
		s->perm_keywords = mb->perm_keywords;
		for (k = 0; k < mb->permflags.n; k++)
			strlist_add(&s->permflags, mb->permflags.v[k],
			    strlen(mb->permflags.v[k]));
	}
	return (0);
}

/* side_select - EXAMINE (or SELECT when rw) unless already there */
int
side_select(struct worker *w, int i, const char *wire, int rw,
    struct wres *r)
{
	int rc = side_select_begin(w, i, wire, rw, r);

	if (rc != 0)
		return (rc == 1 ? 0 : -1);
	return (side_select_end(w, i, wire, rw, r));
}

#define STOP_GRACE	5.0	/* seconds a command may finish after SIGTERM */

/*
 * worker_tick - once a second: after a stop request, give the command
 * in progress STOP_GRACE seconds, then hang up both connections.  Every
 * pending command then completes (cancelled), the blocking loops return
 * and the folder ends "interrupted"; an APPEND cut this way is settled
 * by its intent record on the next start.
 */
static void
worker_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if (w->a == NULL || !pace_stopping(w->a))
		return;	/* kept between passes, or running */
	if (w->stop_seen == 0) {
		w->stop_seen = pace_now();
		return;
	}
	if (pace_now() - w->stop_seen >= STOP_GRACE) {
		side_close(&w->s[SRC]);
		side_close(&w->s[DST]);
	}
}

/* logout_deadline - the LOGOUTs of worker_free took too long: hang up */
static void
logout_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	side_close(&w->s[SRC]);
	side_close(&w->s[DST]);
}

struct worker *
worker_new(struct acct *a)
{
	struct worker *w = calloc(1, sizeof(*w));
	struct timeval tv = { 1, 0 };

	if (w == NULL)
		return (NULL);
	w->a = a;
	if ((w->base = event_base_new()) == NULL) {
		free(w);
		return (NULL);
	}
	if ((w->tick = event_new(w->base, -1, EV_PERSIST, worker_tick, w)) ==
	    NULL || event_add(w->tick, &tv) == -1) {
		if (w->tick != NULL)
			event_free(w->tick);
		event_base_free(w->base);
		free(w);
		return (NULL);
	}
	w->s[SRC].state = w->s[DST].state = -1;
	return (w);
}

void
worker_free(struct worker **wp)
{
	struct worker *w = *wp;
	struct imap_cmd *out[2] = { NULL, NULL };
	struct event *deadline = NULL;
	struct timeval grace = { (time_t)STOP_GRACE, 0 };
	struct wres r[2];
	int i;

	if (w == NULL)
		return;
	sync_folder_settle(w, 1);	/* a folder's last check, if still out */
	/* both LOGOUTs at once: one round trip, not two; a server that
	 * does not answer gets STOP_GRACE seconds (logout_deadline) */
	memset(r, 0, sizeof(r));
	for (i = 0; i < 2; i++)
		if (w->s[i].c != NULL && w->s[i].state == 1)
			out[i] = imap_client_logout(w->s[i].c, wres_done,
			    &r[i]);
	if ((out[0] != NULL || out[1] != NULL) &&
	    (deadline = evtimer_new(w->base, logout_deadline, w)) != NULL)
		evtimer_add(deadline, &grace);
	for (i = 0; i < 2; i++) {
		if (out[i] != NULL)
			side_wait(w, out[i], &r[i]);
		imap_client_free(&w->s[i].c);
		strlist_clear(&w->s[i].permflags);
	}
	if (deadline != NULL)
		event_free(deadline);
	event_free(w->tick);
	event_base_free(w->base);
	if (w->holds_slot)
		pace_slot_give(w->a->p);
	free(w);
	*wp = NULL;
}
