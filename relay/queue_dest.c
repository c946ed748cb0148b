/*
 * queue_dest.c - where deliveries go and the destinations that take
 * them (queue.c's model; DESIGN.md §5: a dead upstream is paused as a
 * whole, not retried message by message).
 *
 * Routes: which slot a delivery belongs to (dest_slot()), the MX route of
 * a DSN recipient's domain, and the route of one of our SRS addresses
 * (the DSN route of the address it reverses to).
 *
 * Destinations: each has its connections (at most [forward]
 * concurrency; idle ones reused), its FIFO of ready slots and a state,
 * enum dest_state, changed only by dest_enter_state(), which logs it:
 *
 *   UP --every attempt fails, 421, no MX--> PAUSED --pause over--> PROBING
 *   PROBING --probe connects--> UP     PROBING --probe fails--> PAUSED
 *   PAUSED/PROBING --ferryctl retry--> UP
 *
 * The pause doubles per consecutive failure (the scheduler's backoff).
 * Slots that come due while paused are deferred in LMDB once per pause
 * (dest_note: attempts + 1, next_try = the end of the pause, the reason
 * as last reply), then wait in the FIFO for the probe.  MX destinations
 * look their MX up first, and again when its TTL has run out.
 *
 * Loop thread only.
 */

#include <arpa/inet.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "dns.h"
#include "log.h"
#include "queue_p.h"
#include "relay.h"
#include "smtp_client.h"
#include "srs.h"
#include "store.h"
#include "util.h"

static void	dest_note(struct dest *d);
static void	conn_event(struct smtp_client *c, int event, const char *why,
		    void *arg);
static void	mx_resolve(struct dest *d);

/* ---- routes ---- */

/* dest_resolver - the relay's shared resolver (relay->resolver, made by
 * main.c from [checks] dns and dns_timeout); NULL only without one */
struct dns_resolver *
dest_resolver(struct queue *q)
{
	return (q->dns);
}

static int
is_literal(const struct hostport *hp)
{
	unsigned char buf[16];

	return (inet_pton(AF_INET, hp->host, buf) == 1 ||
	    inet_pton(AF_INET6, hp->host, buf) == 1);
}

/* dest_tls_soft - copy_to and DSN routes: TLS when possible, never required */
enum cfg_tls_policy
dest_tls_soft(enum cfg_tls_policy p)
{
	return (p == CFG_TLS_NONE ? CFG_TLS_NONE : CFG_TLS_OPPORTUNISTIC);
}

/* is_srs_rcpt - rcpt is one of our SRS addresses (SRS on, no hash check) */
static int
is_srs_rcpt(const struct queue *q, const char *rcpt)
{
	return (q->srs != NULL && srs_is_srs(q->srs, rcpt));
}

/* dest_slot - which slot of its message a delivery belongs to */
int
dest_slot(const struct queue *q, const struct delivery *d)
{
	if (d->dest == DLV_COPY)
		return (SLOT_COPY);
	return (is_srs_rcpt(q, d->rcpt) ? SLOT_SRS : SLOT_MAIN);
}

/* dest_srs_orig - the original sender behind our SRS address rcpt; -1: none */
int
dest_srs_orig(const struct queue *q, const char *rcpt, char *orig, size_t len)
{
	return (srs_reverse(q->srs, rcpt, time(NULL), orig, len) == SRS_OK ?
	    0 : -1);
}

/*
 * dest_srs - the route of an SRS recipient: the DSN route of the address
 * it reverses to (made on first use); NULL when it does not reverse.
 */
struct dest *
dest_srs(struct queue *q, const char *rcpt)
{
	char orig[SRS_ADDR_MAX + 1];

	if (dest_srs_orig(q, rcpt, orig, sizeof(orig)) == -1)
		return (NULL);
	return (dest_mx(q, orig));
}

/*
 * dest_srs_same_route - rcpt (an SRS address) goes to d (NULL: the
 * recipients without a route), without creating destinations.
 */
int
dest_srs_same_route(const struct queue *q, const struct dest *d,
    const char *rcpt)
{
	char orig[SRS_ADDR_MAX + 1], domain[DNS_NAME_MAX + 2];
	const char *at;

	if (dest_srs_orig(q, rcpt, orig, sizeof(orig)) == -1)
		return (d == NULL);
	if (q->dsn_relay != NULL)
		return (d == q->dsn_relay);
	at = strrchr(orig, '@');
	if (at == NULL || strlen(at + 1) == 0 ||
	    strlen(at + 1) >= sizeof(domain))
		return (d == NULL);
	snprintf(domain, sizeof(domain), "%s", at + 1);
	str_lower(domain);
	if (!dns_name_valid(domain))
		return (d == NULL);
	return (d != NULL && d->kind == DK_MX && strcmp(d->domain, domain) == 0);
}

/* dest_mx - the destination "MX of domain", made on first use */
struct dest *
dest_mx(struct queue *q, const char *rcpt)
{
	const char *at = strrchr(rcpt, '@');
	char domain[DNS_NAME_MAX + 2], name[DNS_NAME_MAX + 8];
	struct dest *d;

	if (q->dsn_relay != NULL)
		return (q->dsn_relay);
	if (at == NULL || strlen(at + 1) == 0 ||
	    strlen(at + 1) >= sizeof(domain))
		return (NULL);
	snprintf(domain, sizeof(domain), "%s", at + 1);
	str_lower(domain);
	if (!dns_name_valid(domain))
		return (NULL);
	TAILQ_FOREACH(d, &q->mx, entry)
		if (strcmp(d->domain, domain) == 0)
			return (d);
	snprintf(name, sizeof(name), "mx:%s", domain);
	if ((d = dest_new(q, DK_MX, name, NULL,
	    dest_tls_soft(q->cfg->forward.tls))) == NULL)
		return (NULL);
	snprintf(d->domain, sizeof(d->domain), "%s", domain);
	TAILQ_INSERT_TAIL(&q->mx, d, entry);
	return (d);
}

/* ---- destinations and their connections ---- */

static void
pause_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dest_kick(arg);
}

struct dest *
dest_new(struct queue *q, enum dest_kind kind, const char *name,
    const struct hostport_list *eps, enum cfg_tls_policy tls)
{
	struct dest *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return (NULL);
	d->q = q;
	d->kind = kind;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->tls = tls;
	d->max_conns = (size_t)(q->cfg->forward.concurrency > 0 ?
	    q->cfg->forward.concurrency : 1);
	TAILQ_INIT(&d->conns);
	TAILQ_INIT(&d->readyq);
	if (eps != NULL && eps->count > 0) {
		if ((d->ep = calloc(eps->count, sizeof(*d->ep))) == NULL)
			goto fail;
		memcpy(d->ep, eps->items, eps->count * sizeof(*d->ep));
		d->nep = eps->count;
	}
	if ((d->pause_ev = evtimer_new(q->relay->base, pause_cb, d)) == NULL)
		goto fail;
	return (d);
fail:
	free(d->ep);
	free(d);
	return (NULL);
}

void
dest_conn_unlink(struct conn *cn)
{
	struct dest *d = cn->d;

	if (cn->state == CN_CONNECTING)
		d->nconnecting--;
	TAILQ_REMOVE(&d->conns, cn, entry);
	d->nconns--;
	free(cn);
}

void
dest_free(struct dest *d)
{
	struct conn *cn;

	if (d == NULL)
		return;
	while ((cn = TAILQ_FIRST(&d->conns)) != NULL) {
		smtp_client_abort(&cn->c);
		if (cn->w != NULL) {
			cn->w->cn = NULL;
			work_free(cn->w);
		}
		dest_conn_unlink(cn);
	}
	if (d->mx_pending && d->q->dns != NULL)
		dns_cancel(d->q->dns, d->mx_id);
	if (d->pause_ev != NULL)
		event_free(d->pause_ev);
	free(d->ep);
	free(d);
}

/* dest_mx_gc - forget MX destinations nobody waits for (called from timers) */
void
dest_mx_gc(struct queue *q)
{
	struct dest *d, *next;

	for (d = TAILQ_FIRST(&q->mx); d != NULL; d = next) {
		next = TAILQ_NEXT(d, entry);
		if (d->refs == 0 && d->nconns == 0 && !d->mx_pending) {
			TAILQ_REMOVE(&q->mx, d, entry);
			dest_free(d);
		}
	}
}

static void
conn_open(struct dest *d, int probe)
{
	struct queue *q = d->q;
	struct smtp_client_params p;
	struct conn *cn;
	char err[256];
	size_t i;

	for (i = 0; i < d->nep; i++)
		if (!is_literal(&d->ep[i])) {
			dest_resolver(q);
			break;
		}
	if ((cn = calloc(1, sizeof(*cn))) == NULL) {
		snprintf(d->why, sizeof(d->why), "out of memory");
		dest_pause(d);
		return;
	}
	memset(&p, 0, sizeof(p));
	p.ep = d->ep;
	p.nep = d->nep;
	p.tls = d->tls;
	p.connect_timeout = q->cfg->forward.connect_timeout;
	p.idle_timeout = IDLE_TIMEOUT;
	cn->d = d;
	cn->probe = probe;
	cn->state = CN_CONNECTING;
	cn->c = smtp_client_connect(q->cli, &p, conn_event, cn, err,
	    sizeof(err));
	if (cn->c == NULL) {
		free(cn);
		snprintf(d->why, sizeof(d->why), "%s", err);
		dest_pause(d);
		return;
	}
	TAILQ_INSERT_TAIL(&d->conns, cn, entry);
	d->nconns++;
	d->nconnecting++;
}

/*
 * dest_kick - give ready slots to idle connections, open connections up
 * to the limit, or probe a paused destination whose pause has ended.
 */
void
dest_kick(struct dest *d)
{
	struct queue *q = d->q;
	struct conn *cn;
	int64_t now = now_s();

	if (q->stopping)
		return;
	if (dest_paused(d)) {
		if (now < d->paused_until || d->nconns > 0 || d->nready == 0 ||
		    d->mx_pending)
			return;
		/* The probe; an MX route looks its MX up again first. */
		dest_enter_state(d, DEST_PROBING);
		if (d->kind == DK_MX && (d->ep == NULL || d->mx_until <= now))
			mx_resolve(d);
		else
			conn_open(d, 1);
		return;
	}
	while (d->nready > 0) {
		TAILQ_FOREACH(cn, &d->conns, entry)
			if (cn->state == CN_IDLE)
				break;
		if (cn == NULL)
			break;
		{
			struct qslot *s = TAILQ_FIRST(&d->readyq);

			TAILQ_REMOVE(&d->readyq, s, ready);
			d->nready--;
			s->state = SL_NONE;
			work_start(cn, s);
		}
		/* work_start() may come back here: a slot it could not
		 * take is scheduled again, and one due at once is ready
		 * again and kicks d, whose connect may fail and pause it. */
		if (dest_paused(d))
			return;
	}
	if (d->kind == DK_MX && d->nready > d->nconnecting &&
	    (d->ep == NULL || (d->nconns == 0 && d->mx_until <= now))) {
		if (!d->mx_pending)
			mx_resolve(d);
		return;
	}
	while (d->nready > d->nconnecting && d->nconns < d->max_conns &&
	    !dest_paused(d))
		conn_open(d, 0);
}

/* ---- paused: deferring what waits ---- */

/*
 * dest_note - the destination is paused: defer every ready slot not yet
 * deferred during this pause (one LMDB transaction), expire the old ones.
 */
struct note_arg {
	struct queue	*q;
	struct dest	*d;
	struct qslot	**s;
	size_t		 n;
	int64_t		 now;
	/* for the logs, refilled on every run of the txn */
	struct note_log {
		struct qmsg	*m;
		char		*rcpt;
	}		*log;
	size_t		 nlog, logcap;
};

static void
note_log_clear(struct note_arg *na)
{
	size_t i;

	for (i = 0; i < na->nlog; i++)
		free(na->log[i].rcpt);
	na->nlog = 0;
}

static int
txn_note(struct store_txn *tx, void *arg)
{
	struct note_arg *na = arg;
	struct queue_record rec;
	const void *val;
	size_t vlen, blen, i, j;
	unsigned char *buf;
	char err[128];
	int rc;

	note_log_clear(na);
	for (i = 0; i < na->n; i++) {
		struct qmsg *m = slot_msg(na->s[i]);
		int si = na->s[i]->si;

		rc = store_get(tx, STORE_DB_QUEUE, m->id, QUEUE_ID_LEN, &val,
		    &vlen);
		if (rc == STORE_NOTFOUND)
			continue;
		if (rc != 0)
			return (-1);
		if (queue_record_decode(val, vlen, &rec, err,
		    sizeof(err)) == -1)
			continue;
		for (j = 0; j < rec.ndlv; j++) {
			struct delivery *d = &rec.dlv[j];

			if (d->state != DLV_PENDING ||
			    dest_slot(na->q, d) != si || (si == SLOT_SRS &&
			    !dest_srs_same_route(na->q, na->d, d->rcpt)))
				continue;
			if (d->attempts < UINT32_MAX)
				d->attempts++;
			d->next_try = na->d->paused_until;
			free(d->last_reply);
			d->last_reply = strdup(na->d->why);
			if (na->nlog == na->logcap) {
				size_t ncap = na->logcap ? na->logcap * 2 : 64;
				void *nl = reallocarray(na->log, ncap,
				    sizeof(*na->log));

				if (nl != NULL) {
					na->log = nl;
					na->logcap = ncap;
				}
			}
			if (na->nlog < na->logcap) {
				na->log[na->nlog].m = m;
				na->log[na->nlog].rcpt = strdup(d->rcpt);
				na->nlog++;
			}
		}
		rc = queue_record_encode(&rec, &buf, &blen);
		queue_record_clear(&rec);
		if (rc == -1)
			return (-1);
		rc = store_put(tx, STORE_DB_QUEUE, m->id, QUEUE_ID_LEN, buf,
		    blen, 0);
		free(buf);
		if (rc != 0)
			return (-1);
	}
	return (0);
}

static void
dest_note(struct dest *d)
{
	struct queue *q = d->q;
	struct note_arg na;
	struct qslot *s, *next;
	char err[256];
	size_t i;
	int64_t now = now_s();

	d->need_note = 0;
	if (!dest_paused(d) || q->stopping)
		return;
	/* Expired first: they leave the FIFO. */
	for (s = TAILQ_FIRST(&d->readyq); s != NULL; s = next) {
		struct qmsg *m = slot_msg(s);

		next = TAILQ_NEXT(s, ready);
		if (!m->no_expire && now >= sched_expiry(q, m->arrived))
			sched_expire(q, s);
	}
	memset(&na, 0, sizeof(na));
	na.q = q;
	na.d = d;
	na.now = now;
	if ((na.s = calloc(NOTE_BATCH, sizeof(*na.s))) == NULL)
		return;
	TAILQ_FOREACH(s, &d->readyq, ready) {
		if (s->noted)
			continue;
		if (na.n == NOTE_BATCH) {
			d->need_note = 1;	/* the rest next time */
			event_active(q->note_ev, EV_TIMEOUT, 0);
			break;
		}
		na.s[na.n++] = s;
	}
	if (na.n > 0) {
		if (store_txn_run(q->relay->store, 0, txn_note, &na, err,
		    sizeof(err)) != 0)
			log_errorx("%s: cannot record deferrals: %s", d->name,
			    err);
		else {
			for (i = 0; i < na.n; i++)
				na.s[i]->noted = 1;
			for (i = 0; i < na.nlog; i++) {
				work_log_delivery(na.log[i].m, na.log[i].rcpt,
				    NULL, "none", "deferred", d->why);
				q->relay->stats.deferred++;
			}
		}
	}
	note_log_clear(&na);
	free(na.log);
	free(na.s);
}

void
dest_note_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	struct dest *d;

	(void)fd;
	(void)what;
	if (q->upstream != NULL && q->upstream->need_note)
		dest_note(q->upstream);
	if (q->copy != NULL && q->copy->need_note)
		dest_note(q->copy);
	if (q->dsn_relay != NULL && q->dsn_relay->need_note)
		dest_note(q->dsn_relay);
	TAILQ_FOREACH(d, &q->mx, entry)
		if (d->need_note)
			dest_note(d);
}

static const char *const dest_state_names[] = { "UP", "PAUSED", "PROBING" };

const char *
dest_strstate(enum dest_state st)
{
	if ((size_t)st >=
	    sizeof(dest_state_names) / sizeof(dest_state_names[0]))
		return ("?");
	return (dest_state_names[st]);
}

/*
 * dest_enter_state - the one place a destination changes state.  Every
 * change is logged at debug level; a pause (again, after a failed probe,
 * too) is a warning with its length and reason, the way back up a
 * notice-worthy info line.
 */
void
dest_enter_state(struct dest *d, enum dest_state st)
{
	enum dest_state old = d->state;

	if (old != st)
		log_debug("%s: destination %s -> %s", d->name,
		    dest_strstate(old), dest_strstate(st));
	d->state = st;
	switch (st) {
	case DEST_PAUSED:
		log_warnx("%s: destination paused for %" PRId64 "s: %s",
		    d->name, d->pause_for, d->why);
		break;
	case DEST_UP:
		if (old != DEST_UP)
			log_info("%s: destination is reachable again",
			    d->name);
		break;
	case DEST_PROBING:
		break;
	}
}

/* dest_pause - unreachable: wait, then probe with one connection */
void
dest_pause(struct dest *d)
{
	struct queue *q = d->q;
	struct timeval tv = { 0, 0 };
	int64_t delay;
	struct conn *cn, *next;

	/* Idle sessions would keep the probe from starting. */
	for (cn = TAILQ_FIRST(&d->conns); cn != NULL; cn = next) {
		next = TAILQ_NEXT(cn, entry);
		if (cn->state == CN_IDLE) {
			smtp_client_close(&cn->c);
			dest_conn_unlink(cn);
		}
	}
	d->npause++;
	delay = sched_backoff(q, d->npause);
	d->paused_until = now_s() + delay;
	d->pause_for = delay;
	tv.tv_sec = (time_t)delay;
	event_add(d->pause_ev, &tv);
	dest_enter_state(d, DEST_PAUSED);
	dest_note(d);
}

/* dest_resume - reachable (or the admin says so): up, pause forgotten */
void
dest_resume(struct dest *d)
{
	if (d->state == DEST_UP)
		return;
	dest_enter_state(d, DEST_UP);
	d->npause = 0;
	event_del(d->pause_ev);
}

void
dest_resume_all(struct queue *q)
{
	struct dest *d;

	if (q->upstream != NULL)
		dest_resume(q->upstream);
	if (q->copy != NULL)
		dest_resume(q->copy);
	if (q->dsn_relay != NULL)
		dest_resume(q->dsn_relay);
	TAILQ_FOREACH(d, &q->mx, entry)
		dest_resume(d);
	if (q->upstream != NULL)
		dest_kick(q->upstream);
	if (q->copy != NULL)
		dest_kick(q->copy);
	if (q->dsn_relay != NULL)
		dest_kick(q->dsn_relay);
	TAILQ_FOREACH(d, &q->mx, entry)
		dest_kick(d);
}

static void
conn_event(struct smtp_client *c, int event, const char *why, void *arg)
{
	struct conn *cn = arg;
	struct dest *d = cn->d;
	struct queue *q = d->q;
	struct conn *o;
	int established = 0, probe;

	switch (event) {
	case SMTP_CLIENT_READY:
		cn->state = CN_IDLE;
		d->nconnecting--;
		if (*smtp_client_skipped(c) != '\0')
			log_info("%s: connected to %s (%s) after: %s", d->name,
			    smtp_client_peer(c), smtp_client_tls(c),
			    smtp_client_skipped(c));
		else
			log_info("%s: connected to %s (%s)", d->name,
			    smtp_client_peer(c), smtp_client_tls(c));
		dest_resume(d);
		cn->probe = 0;
		if (q->stopping) {
			smtp_client_close(&cn->c);
			dest_conn_unlink(cn);
			queue_maybe_done(q);
			return;
		}
		dest_kick(d);
		break;
	case SMTP_CLIENT_FAILED:
		probe = cn->probe;
		dest_conn_unlink(cn);
		snprintf(d->why, sizeof(d->why), "%s", why);
		TAILQ_FOREACH(o, &d->conns, entry)
			if (o->state != CN_CONNECTING)
				established++;
		/* With other sessions working this was a hiccup (or a
		 * connection limit); with none, the destination is down.
		 * Several attempts failing together pause it once. */
		if (established == 0 && !q->stopping &&
		    (!dest_paused(d) || probe)) {
			if (probe)
				log_warnx("%s: probe failed", d->name);
			dest_pause(d);
		}
		queue_maybe_done(q);
		break;
	case SMTP_CLIENT_CLOSED:
		dest_conn_unlink(cn);
		dest_kick(d);
		queue_maybe_done(q);
		break;
	}
}

/* ---- MX routes (DSNs without dsn_relay) ---- */

static void
mx_done(int status, const struct dns_result *res, void *arg)
{
	struct dest *d = arg;
	struct queue *q = d->q;
	struct qslot *s;
	size_t i;

	d->mx_pending = 0;
	if (status == DNS_OK && res->count == 1 &&
	    strcmp(res->mx[0].host, ".") == 0)
		status = -2;	/* null MX, RFC 7505 */
	if (status == DNS_NXDOMAIN || status == -2) {
		char text[SMTP_REPLY_TEXTMAX];

		snprintf(text, sizeof(text), "%s %s: %s", status == -2 ?
		    "556 5.1.10" : "550 5.1.2", d->domain, status == -2 ?
		    "the domain accepts no mail (null MX)" :
		    "the domain does not exist");
		while ((s = TAILQ_FIRST(&d->readyq)) != NULL)
			work_fail_slot(q, s, status == -2 ? 556 : 550,
			    status == -2 ? "5.1.10" : "5.1.2", text, 0);
		return;
	}
	if (status != DNS_OK && status != DNS_NODATA) {
		snprintf(d->why, sizeof(d->why), "MX lookup for %.253s: %.127s",
		    d->domain, res->why);
		dest_pause(d);
		return;
	}
	free(d->ep);
	d->nep = 0;
	if ((d->ep = calloc(status == DNS_OK ? res->count : 1,
	    sizeof(*d->ep))) == NULL) {
		snprintf(d->why, sizeof(d->why), "out of memory");
		dest_pause(d);
		return;
	}
	if (status == DNS_NODATA) {
		/* No MX: the domain's own address (RFC 5321 §5.1). */
		snprintf(d->ep[0].host, sizeof(d->ep[0].host), "%s",
		    d->domain);
		d->ep[0].port = 25;
		d->nep = 1;
	} else
		for (i = 0; i < res->count; i++) {
			snprintf(d->ep[i].host, sizeof(d->ep[i].host), "%s",
			    res->mx[i].host);
			d->ep[i].port = 25;
			d->nep++;
		}
	d->mx_until = now_s() + (res->ttl > MX_TTL_MIN ? res->ttl : MX_TTL_MIN);
	dest_kick(d);
}

static void
mx_resolve(struct dest *d)
{
	struct dns_resolver *r = dest_resolver(d->q);
	char err[256];

	if (r == NULL) {
		snprintf(d->why, sizeof(d->why), "no DNS resolver");
		dest_pause(d);
		return;
	}
	d->mx_pending = 1;
	if (dns_lookup(r, d->domain, DNS_MX, mx_done, d, &d->mx_id, err,
	    sizeof(err)) == -1) {
		d->mx_pending = 0;
		snprintf(d->why, sizeof(d->why), "MX lookup for %.253s: %.200s",
		    d->domain, err);
		dest_pause(d);
	}
}

/* ---- shutting down ---- */

/* dest_abort - shutdown grace is over: drop every connection of d */
void
dest_abort(struct queue *q, struct dest *d)
{
	struct conn *cn;

	if (d == NULL)
		return;
	while ((cn = TAILQ_FIRST(&d->conns)) != NULL) {
		if (cn->w != NULL) {
			/* Nothing was committed for it: its deliveries
			 * stay pending in LMDB, nothing is lost. */
			log_warnx("%s: delivery aborted at shutdown; it stays "
			    "queued", cn->w->m->id);
			cn->w->m->busy--;
			work_free(cn->w);
			cn->w = NULL;
			q->ntx--;
		}
		smtp_client_abort(&cn->c);
		dest_conn_unlink(cn);
	}
}

/* dest_close_idle - at shutdown: idle connections QUIT, connecting ones go */
void
dest_close_idle(struct dest *d)
{
	struct conn *cn, *next;

	if (d == NULL)
		return;
	event_del(d->pause_ev);
	for (cn = TAILQ_FIRST(&d->conns); cn != NULL; cn = next) {
		next = TAILQ_NEXT(cn, entry);
		if (cn->state == CN_IDLE)
			smtp_client_close(&cn->c);
		else if (cn->state == CN_CONNECTING)
			smtp_client_abort(&cn->c);
		else
			continue;
		dest_conn_unlink(cn);
	}
}
