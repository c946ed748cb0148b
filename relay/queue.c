/*
 * queue.c - the delivery scheduler: what is sent where, and when.
 *
 * Model.  Every spooled message has deliveries (one per recipient and
 * destination) in its LMDB "queue" record.  In memory the queue keeps
 * only a small struct qmsg per message: its id, arrival time, flags and
 * three slots, one per destination kind (slot 0: [forward] upstream, or
 * for a DSN of ours the DSN route; slot 1: [forward] copy_to; slot 2:
 * recipients that are SRS addresses of ours, see below).  A slot holds
 * the earliest next_try of its pending deliveries and where it waits:
 *   SL_WAIT   in a binary heap ordered by next_try (one timer for all)
 *   SL_READY  in its destination's FIFO, due now, waiting for a
 *             connection (or for a paused destination to come back)
 *   SL_BUSY   a struct qwork is on it: a transaction in flight, a DSN
 *             being spooled, or results waiting to be committed
 *   SL_HELD   the message is held (QR_HELD): never scheduled
 * Records are read from LMDB when work starts and written back when it
 * ends, so memory grows with the queue by ~150 bytes per message only.
 *
 * Destinations (struct dest): upstream, copy_to, dsn_relay, or the MX of
 * one DSN recipient domain.  Each has its own connections (at most
 * [forward] concurrency; idle ones are reused for the next message and
 * closed by smtp_client after IDLE_TIMEOUT), its ready FIFO and its own
 * pause state.  A destination that cannot be reached (every endpoint
 * refused, timed out, greeted 4xx/421, or failed required TLS) is
 * PAUSED as a whole for a backoff that doubles per consecutive failure;
 * when it ends one probe connection is made, and when that succeeds
 * every message waiting for the destination is released at once.
 * Messages that come due while it is paused are deferred in LMDB once
 * (attempts + 1, the reason as last reply), not retried one by one.
 * Upstream and copy_to are independent: one failing never blocks the
 * other.
 *
 * What is sent.  The spool file's message, with the record's extra
 * header lines (queue_record.headers: our Authentication-Results) in
 * front when it goes to the upstream or to copy_to; DSN and SRS routes
 * send the message as received.  With SRS on ([forward] srs_secret,
 * relay->srs), the upstream gets MAIL FROM rewritten by srs_forward()
 * (not <>, not DSNs, not senders already in srs_domain); copy_to, the
 * old local MTA, gets the original sender.
 *
 * SRS bounces.  A recipient that is one of our SRS addresses (a bounce
 * of mail we forwarded with a rewritten sender; smtp_server accepted it
 * after srs_rcpt_check()) is not for the upstream: slot 2 delivers it to
 * the reversed original sender over the DSN route (dsn_relay, else the
 * MX of the original sender's domain), envelope sender unchanged (<>
 * for a bounce).  Such recipients reversing to different domains are
 * sent one route at a time: the slot's destination follows the pending
 * recipient due first.  One that no longer reverses (expired since it
 * was accepted) bounces with 5.1.1.
 *
 * The ledger (common/ledger.h).  The spool commit writes a pending
 * entry per recipient with a ledger key on the upstream route.  When
 * the upstream accepts it, the same LMDB transaction that marks it
 * DLV_SENT makes the entry delivered (ledger_settle()), so ferry-syncd's
 * delta pass never copies the old host's copy into the mailbox; when
 * the relay gives up on it (5xx, expiry, ferryctl delete) the pending
 * entry goes, so the next pass copies the old host's copy instead.  A
 * message held (ferryctl hold, on_expire = hold) stays pending: the
 * relay still holds it.
 *
 * Results.  Per recipient: 2xx -> DLV_SENT; 4xx or a failed connection
 * -> attempts + 1, next_try = now + retry_initial * 2^(attempts-1)
 * capped at retry_max, +-20% jitter; 5xx -> DLV_BOUNCED and an RFC 3464
 * DSN to the sender (bounce.c; never to <>, never about a DSN, and not
 * for copy_to deliveries: the sender's mail did reach the upstream).
 * Past queue_lifetime a delivery bounces with 4.4.7, or the message is
 * held when on_expire = hold.
 *
 * ORDER (no loss, at worst a duplicate): the DSN is durably spooled
 * before its deliveries are marked bounced; results are committed to
 * LMDB (one write transaction per batch of finished work, so fsyncs are
 * shared) before they are logged or acted upon; only when a record has
 * nothing pending is the spool file removed, and then the record deleted
 * (in the next batch).  A crash between any two steps re-sends or
 * re-bounces at worst.
 *
 * SECURITY: nothing here parses network input; replies reach logs and
 * DSNs already escaped by smtp_client.  Runs with the daemon's dropped
 * privileges.
 *
 * Threading: the loop thread only.  LMDB transactions are short and run
 * on the loop (reads: one record; writes: one batch).
 */

#include <sys/queue.h>
#include <arpa/inet.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bounce.h"
#include "dns.h"
#include "ledger.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "smtp_client.h"
#include "spool.h"
#include "srs.h"
#include "store.h"
#include "util.h"

#define NSLOT		3
#define SLOT_MAIN	0	/* DLV_UPSTREAM deliveries */
#define SLOT_COPY	1	/* DLV_COPY deliveries */
#define SLOT_SRS	2	/* DLV_UPSTREAM to one of our SRS addresses */

#define IDLE_TIMEOUT	5	/* seconds an unused connection stays open */
#define SHUTDOWN_GRACE	10	/* seconds in-flight work may take at exit */
#define NOTE_BATCH	512	/* paused-deferrals written per transaction */
#define MX_TTL_MIN	60	/* seconds an MX answer is used at least */

enum sl_state { SL_NONE, SL_WAIT, SL_READY, SL_BUSY, SL_HELD };

struct qslot {
	struct dest	*dest;		/* NULL: no such destination */
	int64_t		 next_try;
	uint32_t	 heap_idx;
	uint8_t		 state;		/* enum sl_state */
	uint8_t		 si;		/* index in qmsg.slot */
	uint8_t		 noted;		/* pause deferral already written */
	TAILQ_ENTRY(qslot) ready;
};
TAILQ_HEAD(slotq, qslot);

struct qmsg {
	struct qmsg	*hnext;
	char		 id[QUEUE_ID_LEN + 1];
	uint8_t		 held;
	uint8_t		 dsn;		/* QR_DSN */
	uint8_t		 deleted;	/* gone from LMDB and spool */
	uint8_t		 no_expire;	/* released after expiry */
	uint8_t		 busy;		/* slots with work in flight */
	int64_t		 arrived;
	struct qslot	 slot[NSLOT];
};

enum dest_kind { DK_UPSTREAM, DK_COPY, DK_DSN_RELAY, DK_MX };
enum conn_state { CN_CONNECTING, CN_IDLE, CN_BUSY };

struct conn {
	TAILQ_ENTRY(conn) entry;
	struct dest	*d;
	struct smtp_client *c;
	enum conn_state	 state;
	int		 probe;
	struct qwork	*w;
};
TAILQ_HEAD(connq, conn);

struct dest {
	TAILQ_ENTRY(dest) entry;
	struct queue	*q;
	enum dest_kind	 kind;
	char		 name[DNS_NAME_MAX + 16];	/* for logs */
	char		 domain[DNS_NAME_MAX + 2];	/* DK_MX */
	struct hostport	*ep;
	size_t		 nep;
	enum cfg_tls_policy tls;
	size_t		 max_conns;
	struct connq	 conns;
	size_t		 nconns, nconnecting;
	struct slotq	 readyq;
	size_t		 nready;
	size_t		 refs;		/* slots pointing here */
	int		 paused;
	unsigned	 npause;
	int64_t		 paused_until;
	struct event	*pause_ev;
	char		 why[512];
	int		 need_note;
	int		 mx_pending;
	uint64_t	 mx_id;
	int64_t		 mx_until;
};
TAILQ_HEAD(destq, dest);

enum action { A_SKIP, A_SENT, A_DEFER, A_BOUNCE };

/* Work on one slot of one message: a transaction or a synthetic result. */
struct qwork {
	TAILQ_ENTRY(qwork) entry;
	struct queue	*q;
	struct qmsg	*m;
	int		 si;
	uint8_t		 dlv_dest;	/* DLV_UPSTREAM or DLV_COPY */
	struct conn	*cn;
	int		 fd;
	uint64_t	 offset, size;
	struct queue_record rec;	/* snapshot when the work began */
	size_t		 n;
	size_t		*idx;		/* rec.dlv indices */
	const char	**rcpt;
	struct smtp_reply *res;
	uint8_t		*action;
	struct smtp_tx	 tx;
	char		 relay[HOSTPORT_HOSTMAX + 16];
	char		 remote[HOSTPORT_HOSTMAX];
	int		 expired;
	int		 ledger;	/* upstream route: write ledger entries */
	char		**fwd;		/* SLOT_SRS: reversed rcpt, owned */
	char		 sender[SRS_ADDR_MAX + 1];	/* MAIL FROM if rewritten */
	/* set by the commit */
	int		 found, done, slot_pending;
	int64_t		 slot_next;
	char		*slot_rcpt;	/* SLOT_SRS: pending rcpt due first */
	uint32_t	*attempts;	/* after the update, per delivery */
};
TAILQ_HEAD(workq, qwork);

struct queue {
	struct relay	*relay;
	struct config	*cfg;
	struct smtp_client_ctx *cli;
	struct dns_resolver *dns;	/* relay->resolver: borrowed */
	struct srs	*srs;		/* relay->srs: NULL when SRS is off */
	struct dest	*upstream, *copy, *dsn_relay;
	struct destq	 mx;
	/* messages by id */
	struct qmsg	**hash;
	size_t		 hsize, nmsgs;
	/* SL_WAIT slots by next_try */
	struct qslot	**heap;
	size_t		 nheap, heapcap;
	struct event	*timer;
	/* committing */
	struct workq	 batch;
	char		(*dels)[QUEUE_ID_LEN + 1];	/* records to delete */
	size_t		 ndels, delcap;
	struct event	*flush_ev;
	struct event	*note_ev;
	/* shutting down */
	int		 stopping;
	size_t		 ntx;		/* transactions in flight */
	size_t		 nops;		/* DSNs being spooled */
	void		(*done)(void *);
	void		*done_arg;
	struct event	*done_ev;
	struct event	*grace_ev;
};

static void	dest_kick(struct dest *d);
static void	dest_pause(struct dest *d);
static void	slot_schedule(struct queue *q, struct qslot *s);
static void	slot_due(struct queue *q, struct qslot *s, int64_t now);
static void	work_finish(struct qwork *w);
static void	work_free(struct qwork *w);
static void	maybe_done(struct queue *q);
static void	msg_release_slot(struct queue *q, struct qmsg *m, int si);

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int64_t
now_s(void)
{
	return ((int64_t)time(NULL));
}

static struct qmsg *
slot_msg(struct qslot *s)
{
	return ((struct qmsg *)(void *)((char *)(s - s->si) -
	    offsetof(struct qmsg, slot)));
}

/*
 * backoff - the delay before try n+1 after n failures: retry_initial *
 * 2^(n-1), capped at retry_max, then +-20% jitter so a crowd of messages
 * deferred together does not come back together.
 */
static int64_t
backoff(const struct queue *q, unsigned n)
{
	int64_t d = q->cfg->forward.retry_initial, max = q->cfg->forward.retry_max;
	int64_t span;

	if (d < 1)
		d = 1;
	while (n-- > 1 && d < max)
		d *= 2;
	if (d > max)
		d = max;
	span = d * 2 / 5;
	if (span > 0)
		d = d - d / 5 + (int64_t)arc4random_uniform(
		    (uint32_t)(span < UINT32_MAX ? span + 1 : UINT32_MAX));
	return (d < 1 ? 1 : d);
}

/* expiry - when a message's deliveries give up */
static int64_t
expiry(const struct queue *q, int64_t arrived)
{
	return (arrived + q->cfg->forward.queue_lifetime);
}

/* ---- messages by id ---------------------------------------------------- */

static size_t
id_hash(const struct queue *q, const char *id)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return ((size_t)(h & (q->hsize - 1)));
}

static struct qmsg *
msg_find(const struct queue *q, const char *id)
{
	struct qmsg *m;

	for (m = q->hash[id_hash(q, id)]; m != NULL; m = m->hnext)
		if (strcmp(m->id, id) == 0)
			return (m);
	return (NULL);
}

static int
msg_insert(struct queue *q, struct qmsg *m)
{
	size_t i, h;

	if (q->nmsgs + 1 > q->hsize) {
		size_t nsize = q->hsize * 2;
		struct qmsg **nh = calloc(nsize, sizeof(*nh)), *p, *next;
		size_t osize = q->hsize;

		if (nh == NULL)
			return (-1);
		q->hsize = nsize;
		for (i = 0; i < osize; i++)
			for (p = q->hash[i]; p != NULL; p = next) {
				next = p->hnext;
				h = id_hash(q, p->id);
				p->hnext = nh[h];
				nh[h] = p;
			}
		free(q->hash);
		q->hash = nh;
	}
	h = id_hash(q, m->id);
	m->hnext = q->hash[h];
	q->hash[h] = m;
	q->nmsgs++;
	return (0);
}

static void
msg_unhash(struct queue *q, struct qmsg *m)
{
	struct qmsg **pp;

	for (pp = &q->hash[id_hash(q, m->id)]; *pp != NULL;
	    pp = &(*pp)->hnext)
		if (*pp == m) {
			*pp = m->hnext;
			q->nmsgs--;
			return;
		}
}

/* ---- the heap of waiting slots ----------------------------------------- */

static void
heap_set(struct queue *q, size_t i, struct qslot *s)
{
	q->heap[i] = s;
	s->heap_idx = (uint32_t)i;
}

static void
heap_up(struct queue *q, size_t i)
{
	struct qslot *s = q->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (q->heap[parent]->next_try <= s->next_try)
			break;
		heap_set(q, i, q->heap[parent]);
		i = parent;
	}
	heap_set(q, i, s);
}

static void
heap_down(struct queue *q, size_t i)
{
	struct qslot *s = q->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		int64_t best = s->next_try;

		if (l < q->nheap && q->heap[l]->next_try < best)
			m = l, best = q->heap[l]->next_try;
		if (r < q->nheap && q->heap[r]->next_try < best)
			m = r;
		if (m == i)
			break;
		heap_set(q, i, q->heap[m]);
		i = m;
	}
	heap_set(q, i, s);
}

static void
timer_arm(struct queue *q)
{
	struct timeval tv = { 0, 0 };
	int64_t d;

	if (q->nheap == 0 || q->stopping) {
		event_del(q->timer);
		return;
	}
	d = q->heap[0]->next_try - now_s();
	tv.tv_sec = d > 0 ? (time_t)d : 0;
	event_add(q->timer, &tv);
}

static int
heap_push(struct queue *q, struct qslot *s)
{
	if (q->nheap == q->heapcap) {
		size_t ncap = q->heapcap ? q->heapcap * 2 : 256;
		struct qslot **nh = reallocarray(q->heap, ncap, sizeof(*nh));

		if (nh == NULL)
			return (-1);
		q->heap = nh;
		q->heapcap = ncap;
	}
	s->state = SL_WAIT;
	heap_set(q, q->nheap++, s);
	heap_up(q, q->nheap - 1);
	if (s->heap_idx == 0)
		timer_arm(q);
	return (0);
}

static void
heap_del(struct queue *q, struct qslot *s)
{
	size_t i = s->heap_idx;
	struct qslot *last;

	last = q->heap[--q->nheap];
	if (i < q->nheap) {
		heap_set(q, i, last);
		heap_down(q, i);
		heap_up(q, last->heap_idx);
	}
	s->state = SL_NONE;
	if (i == 0)
		timer_arm(q);
}

/* slot_unlink - take a slot out of the heap or a ready FIFO */
static void
slot_unlink(struct queue *q, struct qslot *s)
{
	if (s->state == SL_WAIT)
		heap_del(q, s);
	else if (s->state == SL_READY) {
		TAILQ_REMOVE(&s->dest->readyq, s, ready);
		s->dest->nready--;
		s->state = SL_NONE;
	}
}

/* ---- the resolver -------------------------------------------------------- */

/* resolver - the relay's shared resolver (relay->resolver, made by
 * main.c from [checks] dns and dns_timeout); NULL only without one */
static struct dns_resolver *
resolver(struct queue *q)
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

/* ---- destinations -------------------------------------------------------- */

static void
pause_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dest_kick(arg);
}

static struct dest *
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

static void
conn_unlink(struct conn *cn)
{
	struct dest *d = cn->d;

	if (cn->state == CN_CONNECTING)
		d->nconnecting--;
	TAILQ_REMOVE(&d->conns, cn, entry);
	d->nconns--;
	free(cn);
}

static void
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
		conn_unlink(cn);
	}
	if (d->mx_pending && d->q->dns != NULL)
		dns_cancel(d->q->dns, d->mx_id);
	if (d->pause_ev != NULL)
		event_free(d->pause_ev);
	free(d->ep);
	free(d);
}

/* tls_soft - copy_to and DSN routes: TLS when possible, never required */
static enum cfg_tls_policy
tls_soft(enum cfg_tls_policy p)
{
	return (p == CFG_TLS_NONE ? CFG_TLS_NONE : CFG_TLS_OPPORTUNISTIC);
}

/* mx_dest - the destination "MX of domain", made on first use */
static struct dest *
mx_dest(struct queue *q, const char *rcpt)
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
	    tls_soft(q->cfg->forward.tls))) == NULL)
		return (NULL);
	snprintf(d->domain, sizeof(d->domain), "%s", domain);
	TAILQ_INSERT_TAIL(&q->mx, d, entry);
	return (d);
}

/* ---- SRS routes ------------------------------------------------------------ */

/* is_srs_rcpt - rcpt is one of our SRS addresses (SRS on, no hash check) */
static int
is_srs_rcpt(const struct queue *q, const char *rcpt)
{
	return (q->srs != NULL && srs_is_srs(q->srs, rcpt));
}

/* dlv_slot - which slot of its message a delivery belongs to */
static int
dlv_slot(const struct queue *q, const struct delivery *d)
{
	if (d->dest == DLV_COPY)
		return (SLOT_COPY);
	return (is_srs_rcpt(q, d->rcpt) ? SLOT_SRS : SLOT_MAIN);
}

/* srs_orig - the original sender behind our SRS address rcpt; -1: none */
static int
srs_orig(const struct queue *q, const char *rcpt, char *orig, size_t len)
{
	return (srs_reverse(q->srs, rcpt, time(NULL), orig, len) == SRS_OK ?
	    0 : -1);
}

/*
 * srs_dest - the route of an SRS recipient: the DSN route of the address
 * it reverses to (made on first use); NULL when it does not reverse.
 */
static struct dest *
srs_dest(struct queue *q, const char *rcpt)
{
	char orig[SRS_ADDR_MAX + 1];

	if (srs_orig(q, rcpt, orig, sizeof(orig)) == -1)
		return (NULL);
	return (mx_dest(q, orig));
}

/*
 * srs_same_route - rcpt (an SRS address) goes to d (NULL: the
 * recipients without a route), without creating destinations.
 */
static int
srs_same_route(const struct queue *q, const struct dest *d, const char *rcpt)
{
	char orig[SRS_ADDR_MAX + 1], domain[DNS_NAME_MAX + 2];
	const char *at;

	if (srs_orig(q, rcpt, orig, sizeof(orig)) == -1)
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

/* mx_gc - forget MX destinations nobody waits for (called from timers) */
static void
mx_gc(struct queue *q)
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

static void	conn_event(struct smtp_client *c, int event, const char *why,
		    void *arg);

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
			resolver(q);
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

/* ---- committing results ------------------------------------------------ */

/* One transaction for every finished piece of work in the batch. */
struct flush_arg {
	struct queue	*q;
	int64_t		 now;
};

/*
 * queue_ledger_tracked - see relay.h.  The same test as the routing
 * (dlv_slot(), m->dsn): what the spool commit marks pending is exactly
 * what a DK_UPSTREAM transaction later settles.
 */
int
queue_ledger_tracked(const struct relay *relay, const struct queue_record *rec,
    const struct delivery *d)
{
	return (d->has_ledger_key && d->dest == DLV_UPSTREAM &&
	    !(rec->flags & QR_DSN) &&
	    !(relay->srs != NULL && srs_is_srs(relay->srs, d->rcpt)));
}

time_t
queue_ledger_expiry(const struct config *cfg, int64_t now, int status)
{
	int64_t ttl = cfg->dedupe.ttl;

	if (ttl <= 0)
		return (0);
	if (status == LEDGER_PENDING && ttl < cfg->forward.queue_lifetime)
		ttl = cfg->forward.queue_lifetime;
	return ((time_t)(now + ttl));
}

/*
 * ledger_settle - inside the write txn that records the upstream's
 * answer for d: a 250 makes its ledger entry delivered (so ferry-syncd's
 * delta pass never copies the old host's copy), a bounce removes the
 * pending one this message wrote (so the next pass does copy it).  The
 * entry's layout is common/ledger.c's.  A later acceptance of the same
 * key (the message sent again under another queue id, or re-sent after
 * a crash) overwrites it: "the new mailbox has it" stays true.
 */
static int
ledger_settle(struct store_txn *tx, struct queue *q, const struct delivery *d,
    const char *id, int action, int64_t now)
{
	struct ledger_entry e;

	if (action == A_BOUNCE)
		return (ledger_del(tx, d->ledger_key, id) == -1 ? -1 : 0);
	if (action != A_SENT)
		return (0);
	memset(&e, 0, sizeof(e));
	e.when = now;
	e.status = LEDGER_DELIVERED;
	memcpy(e.queue_id, id, QUEUE_ID_LEN + 1);
	return (ledger_put(tx, d->ledger_key, &e, queue_ledger_expiry(q->cfg,
	    now, LEDGER_DELIVERED)) == -1 ? -1 : 0);
}

/*
 * work_gone - the record was deleted (ferryctl delete) while w was in
 * flight: whatever the upstream accepted is in the new mailbox all the
 * same, and the ledger must say so.
 */
static int
work_gone(struct store_txn *tx, struct queue *q, struct qwork *w, int64_t now)
{
	size_t i;

	for (i = 0; w->ledger && i < w->n; i++) {
		const struct delivery *d;

		if (w->action[i] != A_SENT || w->idx[i] >= w->rec.ndlv)
			continue;
		d = &w->rec.dlv[w->idx[i]];
		if (d->has_ledger_key &&
		    ledger_settle(tx, q, d, w->m->id, A_SENT, now) == -1)
			return (-1);
	}
	return (0);
}

/* work_apply - inside the write txn: apply w's results to its record */
static int
work_apply(struct store_txn *tx, struct queue *q, struct qwork *w, int64_t now)
{
	struct queue_record rec;
	const void *val;
	size_t vlen, i;
	unsigned char *buf;
	size_t blen;
	char err[128];
	int rc;

	w->found = w->done = w->slot_pending = 0;
	w->slot_next = INT64_MAX;
	free(w->slot_rcpt);
	w->slot_rcpt = NULL;
	rc = store_get(tx, STORE_DB_QUEUE, w->m->id, QUEUE_ID_LEN, &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (work_gone(tx, q, w, now));	/* deleted meanwhile */
	if (rc != 0)
		return (-1);
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1) {
		store_txn_seterr(tx, "%s: %s", w->m->id, err);
		return (0);		/* leave a damaged record alone */
	}
	w->found = 1;
	for (i = 0; i < w->n; i++) {
		struct delivery *d;

		w->attempts[i] = 0;
		if (w->idx[i] >= rec.ndlv)
			continue;
		d = &rec.dlv[w->idx[i]];
		if (d->dest != w->dlv_dest || d->state != DLV_PENDING ||
		    strcmp(d->rcpt, w->rcpt[i]) != 0)
			continue;
		if (w->ledger && d->has_ledger_key && ledger_settle(tx, q, d,
		    w->m->id, w->action[i], now) == -1) {
			queue_record_clear(&rec);
			return (-1);
		}
		switch (w->action[i]) {
		case A_SENT:
			d->state = DLV_SENT;
			break;
		case A_BOUNCE:
			d->state = DLV_BOUNCED;
			break;
		case A_DEFER: {
			int64_t next, exp = expiry(q, rec.arrived);

			if (d->attempts < UINT32_MAX)
				d->attempts++;
			next = now + backoff(q, d->attempts);
			/* come back in time to expire */
			if (next > exp && exp > now && !w->m->no_expire)
				next = exp;
			d->next_try = next;
			break;
		}
		default:
			continue;
		}
		w->attempts[i] = d->attempts;
		free(d->last_reply);
		d->last_reply = strdup(w->res[i].text);
	}
	for (i = 0; i < rec.ndlv; i++)
		if (rec.dlv[i].state == DLV_PENDING &&
		    dlv_slot(q, &rec.dlv[i]) == w->si) {
			w->slot_pending = 1;
			if (rec.dlv[i].next_try < w->slot_next) {
				w->slot_next = rec.dlv[i].next_try;
				if (w->si == SLOT_SRS) {
					free(w->slot_rcpt);
					w->slot_rcpt = strdup(rec.dlv[i].rcpt);
				}
			}
		}
	w->done = queue_record_done(&rec);
	if (queue_record_encode(&rec, &buf, &blen) == -1) {
		queue_record_clear(&rec);
		store_txn_seterr(tx, "%s: cannot encode the record", w->m->id);
		return (-1);
	}
	queue_record_clear(&rec);
	rc = store_put(tx, STORE_DB_QUEUE, w->m->id, QUEUE_ID_LEN, buf, blen, 0);
	free(buf);
	return (rc == 0 ? 0 : -1);
}

static int
txn_flush(struct store_txn *tx, void *arg)
{
	struct flush_arg *fa = arg;
	struct queue *q = fa->q;
	struct qwork *w;
	size_t i;
	int rc;

	TAILQ_FOREACH(w, &q->batch, entry)
		if (work_apply(tx, q, w, fa->now) == -1)
			return (-1);
	for (i = 0; i < q->ndels; i++) {
		rc = store_del(tx, STORE_DB_QUEUE, q->dels[i], QUEUE_ID_LEN);
		if (rc == -1)
			return (-1);
	}
	return (0);
}

/* log_delivery - one result; orig_to: the SRS address rcpt came from */
static void
log_delivery(const struct qmsg *m, const char *rcpt, const char *orig_to,
    const char *relay, const char *status, const char *text)
{
	if (orig_to != NULL)
		log_info("%s: to=<%s> orig_to=<%s> relay=%s delay=%" PRId64
		    " status=%s (%s)", m->id, rcpt, orig_to, relay,
		    now_s() - m->arrived, status, text);
	else
		log_info("%s: to=<%s> relay=%s delay=%" PRId64 " status=%s "
		    "(%s)", m->id, rcpt, relay, now_s() - m->arrived, status,
		    text);
}

/* slot_set_dest - point an unscheduled slot at d (NULL: no route) */
static void
slot_set_dest(struct qslot *s, struct dest *d)
{
	if (s->dest == d)
		return;
	if (s->dest != NULL)
		s->dest->refs--;
	s->dest = d;
	if (d != NULL)
		d->refs++;
}

/* msg_free - forget a message (its slots are no longer scheduled) */
static void
msg_free(struct queue *q, struct qmsg *m)
{
	int si;

	for (si = 0; si < NSLOT; si++)
		msg_release_slot(q, m, si);
	msg_unhash(q, m);
	free(m);
}

/* msg_release_slot - the slot has nothing pending any more */
static void
msg_release_slot(struct queue *q, struct qmsg *m, int si)
{
	struct qslot *s = &m->slot[si];

	slot_unlink(q, s);
	s->state = SL_NONE;
	if (s->dest != NULL) {
		s->dest->refs--;
		s->dest = NULL;
	}
}

static void
dels_add(struct queue *q, const char *id)
{
	if (q->ndels == q->delcap) {
		size_t ncap = q->delcap ? q->delcap * 2 : 64;
		void *n = reallocarray(q->dels, ncap, sizeof(*q->dels));

		if (n == NULL) {
			/* The record stays; the next start removes it (it
			 * has nothing pending and no spool file). */
			return;
		}
		q->dels = n;
		q->delcap = ncap;
	}
	memcpy(q->dels[q->ndels++], id, QUEUE_ID_LEN + 1);
	event_active(q->flush_ev, EV_TIMEOUT, 0);
}

/*
 * msg_done - every delivery is final and committed: remove the spool
 * file, then (next batch) the record.
 */
static void
msg_done(struct queue *q, struct qmsg *m)
{
	if (spool_remove(q->relay->spool, m->id) == -1)
		log_warn("%s: cannot remove the spool file", m->id);
	else {
		log_info("%s: removed", m->id);
		dels_add(q, m->id);
	}
	msg_free(q, m);
}

/* work_committed - after the commit: log, count, reschedule or remove */
static void
work_committed(struct queue *q, struct qwork *w)
{
	struct qmsg *m = w->m;
	struct qslot *s = &m->slot[w->si];
	struct relay_stats *st = &q->relay->stats;
	size_t i;

	m->busy--;
	s->state = SL_NONE;
	if (!w->found || m->deleted) {
		if (m->deleted && m->busy == 0)
			msg_free(q, m);
		return;
	}
	for (i = 0; i < w->n; i++) {
		const char *status;

		switch (w->action[i]) {
		case A_SENT:
			status = "sent";
			if (m->dsn || w->si == SLOT_SRS)
				;	/* not the sender's mail to us */
			else if (w->dlv_dest == DLV_COPY)
				st->copied++;
			else
				st->forwarded++;
			break;
		case A_DEFER:
			status = "deferred";
			st->deferred++;
			break;
		case A_BOUNCE:
			status = "bounced";
			st->bounced++;
			break;
		default:
			continue;
		}
		if (w->fwd != NULL && w->fwd[i] != NULL)
			log_delivery(m, w->fwd[i], w->rcpt[i], w->relay, status,
			    w->res[i].text);
		else
			log_delivery(m, w->rcpt[i], NULL, w->relay, status,
			    w->res[i].text);
	}
	if (w->done && m->busy == 0) {
		msg_done(q, m);
		return;
	}
	if (!w->slot_pending) {
		msg_release_slot(q, m, w->si);
		return;
	}
	if (w->si == SLOT_SRS && w->slot_rcpt != NULL)
		slot_set_dest(s, srs_dest(q, w->slot_rcpt));
	s->next_try = w->slot_next;
	slot_schedule(q, s);
}

/* queue_flush - commit the batch: one LMDB write transaction */
static void
queue_flush(struct queue *q)
{
	struct flush_arg fa = { q, now_s() };
	struct workq done;
	struct qwork *w;
	char err[256];

	if (TAILQ_EMPTY(&q->batch) && q->ndels == 0)
		return;
	if (store_txn_run(q->relay->store, 0, txn_flush, &fa, err,
	    sizeof(err)) != 0) {
		/* Nothing was written.  The results are lost, not the mail:
		 * treat the work as deferred in memory; the deliveries are
		 * still pending in LMDB and will be tried again. */
		log_errorx("queue: cannot commit delivery results: %s", err);
		TAILQ_INIT(&done);
		TAILQ_CONCAT(&done, &q->batch, entry);
		while ((w = TAILQ_FIRST(&done)) != NULL) {
			TAILQ_REMOVE(&done, w, entry);
			w->m->busy--;
			w->m->slot[w->si].state = SL_NONE;
			if (w->m->deleted) {
				if (w->m->busy == 0)
					msg_free(q, w->m);
			} else {
				w->m->slot[w->si].next_try = fa.now +
				    backoff(q, 1);
				slot_schedule(q, &w->m->slot[w->si]);
			}
			work_free(w);
		}
		return;
	}
	q->ndels = 0;
	TAILQ_INIT(&done);
	TAILQ_CONCAT(&done, &q->batch, entry);
	while ((w = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, w, entry);
		work_committed(q, w);
		work_free(w);
	}
	maybe_done(q);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	queue_flush(arg);
}

/* ---- work: one slot of one message --------------------------------------- */

static int
txn_load(struct store_txn *tx, void *arg)
{
	struct qwork *w = arg;
	const void *val;
	size_t vlen;
	char err[128];
	int rc;

	queue_record_clear(&w->rec);
	rc = store_get(tx, STORE_DB_QUEUE, w->m->id, QUEUE_ID_LEN, &val, &vlen);
	if (rc != 0)
		return (rc == STORE_NOTFOUND ? 1 : -1);
	if (queue_record_decode(val, vlen, &w->rec, err, sizeof(err)) == -1) {
		store_txn_seterr(tx, "%s", err);
		return (2);
	}
	return (0);
}

static void
work_free(struct qwork *w)
{
	size_t i;

	if (w == NULL)
		return;
	if (w->fd != -1)
		close(w->fd);
	queue_record_clear(&w->rec);
	if (w->fwd != NULL)
		for (i = 0; i < w->n; i++)
			free(w->fwd[i]);
	free(w->fwd);
	free(w->slot_rcpt);
	free(w->idx);
	free(w->rcpt);
	free(w->res);
	free(w->action);
	free(w->attempts);
	free(w);
}

/*
 * srs_reroute - the SRS slot's route has nothing left, but other SRS
 * recipients are pending: point the slot at the route of the one due
 * first.  Returns work_new()'s why: 5 (schedule the slot again) or 2.
 */
static int
srs_reroute(struct queue *q, struct qwork *w)
{
	struct qslot *s = &w->m->slot[SLOT_SRS];
	const struct delivery *best = NULL;
	struct dest *d;
	size_t i;

	for (i = 0; i < w->rec.ndlv; i++) {
		const struct delivery *dv = &w->rec.dlv[i];

		if (dv->state == DLV_PENDING && dlv_slot(q, dv) == SLOT_SRS &&
		    (best == NULL || dv->next_try < best->next_try))
			best = dv;
	}
	if (best == NULL)
		return (2);
	d = srs_dest(q, best->rcpt);
	if (d == s->dest) {
		/* Cannot happen (routes are computed alike); never spin. */
		s->next_try = now_s() + backoff(q, 1);
		return (5);
	}
	slot_set_dest(s, d);
	s->next_try = best->next_try;
	return (5);
}

/* work_wants - w (slot si of its message) takes this delivery */
static int
work_wants(const struct qwork *w, const struct delivery *d)
{
	const struct queue *q = w->q;

	if (d->state != DLV_PENDING || dlv_slot(q, d) != w->si)
		return (0);
	/* SRS recipients: only those of the slot's current route. */
	return (w->si != SLOT_SRS ||
	    srs_same_route(q, w->m->slot[SLOT_SRS].dest, d->rcpt));
}

/*
 * work_new - load the record and pick the pending deliveries of slot si
 * (at most SMTP_TX_RCPT_MAX; for the SRS slot those of its current
 * route).  Returns NULL when there is nothing to do (*why_r says: 1 no
 * record, 2 nothing pending here, 3 held, 4 nothing pending at all, -1
 * error).
 */
static struct qwork *
work_new(struct queue *q, struct qmsg *m, int si, int *why_r)
{
	struct qwork *w;
	char err[256], orig[SRS_ADDR_MAX + 1];
	size_t i, n = 0;
	int rc;

	*why_r = -1;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return (NULL);
	w->q = q;
	w->m = m;
	w->si = si;
	w->fd = -1;
	w->dlv_dest = si == SLOT_COPY ? DLV_COPY : DLV_UPSTREAM;
	snprintf(w->relay, sizeof(w->relay), "none");
	rc = store_txn_run(q->relay->store, 1, txn_load, w, err, sizeof(err));
	if (rc != 0) {
		if (rc == 1)
			*why_r = 1;
		else
			log_warnx("%s: cannot read the queue record: %s", m->id,
			    err);
		work_free(w);
		return (NULL);
	}
	if (w->rec.flags & QR_HELD) {
		*why_r = 3;
		work_free(w);
		return (NULL);
	}
	for (i = 0; i < w->rec.ndlv; i++)
		if (work_wants(w, &w->rec.dlv[i]))
			n++;
	if (n == 0) {
		*why_r = queue_record_done(&w->rec) ? 4 : 2;
		if (*why_r == 2 && si == SLOT_SRS)
			*why_r = srs_reroute(q, w);
		work_free(w);
		return (NULL);
	}
	if (n > SMTP_TX_RCPT_MAX)
		n = SMTP_TX_RCPT_MAX;
	w->idx = calloc(n, sizeof(*w->idx));
	w->rcpt = calloc(n, sizeof(*w->rcpt));
	w->res = calloc(n, sizeof(*w->res));
	w->action = calloc(n, sizeof(*w->action));
	w->attempts = calloc(n, sizeof(*w->attempts));
	if (si == SLOT_SRS)
		w->fwd = calloc(n, sizeof(*w->fwd));
	if (w->idx == NULL || w->rcpt == NULL || w->res == NULL ||
	    w->action == NULL || w->attempts == NULL ||
	    (si == SLOT_SRS && w->fwd == NULL)) {
		work_free(w);
		return (NULL);
	}
	for (i = 0; i < w->rec.ndlv && w->n < n; i++)
		if (work_wants(w, &w->rec.dlv[i])) {
			w->idx[w->n] = i;
			w->rcpt[w->n] = w->rec.dlv[i].rcpt;
			/* No original (the slot has no route): nothing
			 * is sent, the result is logged under the SRS
			 * address. */
			if (w->fwd != NULL && srs_orig(q, w->rcpt[w->n], orig,
			    sizeof(orig)) == 0 &&
			    (w->fwd[w->n] = strdup(orig)) == NULL) {
				work_free(w);
				return (NULL);
			}
			w->n++;
		}
	m->busy++;
	m->slot[si].state = SL_BUSY;
	return (w);
}

/* work_nothing - work_new() found nothing to do: settle the slot */
static void
work_nothing(struct queue *q, struct qmsg *m, int si, int why)
{
	struct qslot *s = &m->slot[si];
	int o, others_busy = 0;

	for (o = 0; o < NSLOT; o++)
		if (o != si && m->slot[o].state == SL_BUSY)
			others_busy = 1;

	switch (why) {
	case 1:		/* the record is gone */
		log_warnx("%s: queue record vanished", m->id);
		m->deleted = 1;
		if (m->busy == 0)
			msg_free(q, m);
		break;
	case 2:		/* nothing pending for this slot */
		msg_release_slot(q, m, si);
		break;
	case 4:		/* nothing pending at all */
		msg_release_slot(q, m, si);
		if (m->busy == 0 && !others_busy)
			msg_done(q, m);
		break;
	case 3:		/* held */
		m->held = 1;
		s->state = SL_HELD;
		break;
	case 5:		/* SRS slot: another route now */
		slot_schedule(q, s);
		break;
	default:	/* could not read it: try again later */
		s->next_try = now_s() + backoff(q, 1);
		slot_schedule(q, s);
		break;
	}
}

static void
dsn_committed(int status, const char *id, const char *why, void *arg)
{
	struct qwork *w = arg;
	struct queue *q = w->q;
	size_t i;

	q->nops--;
	if (status == 0) {
		log_info("%s: sender non-delivery notification: %s", w->m->id,
		    id);
		q->relay->stats.dsn_sent++;
		queue_enqueued(q, id);
	} else {
		/* No DSN, no bounce: the refused deliveries stay pending
		 * and are tried (and refused, and bounced) again. */
		log_warnx("%s: cannot queue the DSN: %s", w->m->id,
		    why ? why : "spool error");
		for (i = 0; i < w->n; i++)
			if (w->action[i] == A_BOUNCE)
				w->action[i] = A_DEFER;
	}
	TAILQ_INSERT_TAIL(&q->batch, w, entry);
	event_active(q->flush_ev, EV_TIMEOUT, 0);
}

/*
 * work_finish - results are in w->action/res: spool a DSN first when a
 * delivery bounces (and one may be sent), then queue for the commit.
 */
static void
work_finish(struct qwork *w)
{
	struct queue *q = w->q;
	struct bounce_rcpt *br;
	struct bounce b;
	char err[256], reason[128];
	size_t i, nb = 0;
	int rc;

	for (i = 0; i < w->n; i++)
		if (w->action[i] == A_BOUNCE)
			nb++;
	if (nb == 0 || w->dlv_dest == DLV_COPY)
		goto commit;
	if (!bounce_allowed(w->rec.sender, w->rec.flags)) {
		log_info("%s: no DSN: %s", w->m->id, (w->rec.flags & QR_DSN) ?
		    "the message is itself a DSN" : "the sender is <>");
		goto commit;
	}
	if ((br = calloc(nb, sizeof(*br))) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	snprintf(reason, sizeof(reason), "delivery time expired");
	for (i = 0, nb = 0; i < w->n; i++) {
		const struct smtp_reply *r = &w->res[i];

		if (w->action[i] != A_BOUNCE)
			continue;
		br[nb].rcpt = w->rcpt[i];
		br[nb].status = r->status;
		if (w->expired) {
			const char *last = w->rec.dlv[w->idx[i]].last_reply;

			br[nb].reason = reason;
			if (last != NULL && last[0] >= '2' && last[0] <= '5')
				br[nb].diagnostic = last;
		} else if (r->synthetic) {
			br[nb].reason = r->text;
		} else {
			br[nb].diagnostic = r->text;
			br[nb].remote_mta = w->remote[0] ? w->remote : NULL;
		}
		nb++;
	}
	memset(&b, 0, sizeof(b));
	b.hostname = q->cfg->relay.hostname;
	b.queue_id = w->m->id;
	b.sender = w->rec.sender;
	b.arrived = w->rec.arrived;
	b.now = now_s();
	b.rcpt = br;
	b.nrcpt = nb;
	b.fd = w->fd;
	b.offset = w->offset;
	b.size = w->size;
	if (b.fd == -1 && spool_msg_open(q->relay->spool, w->m->id, &w->fd,
	    &w->offset, &w->size) == 0) {
		b.fd = w->fd;
		b.offset = w->offset;
		b.size = w->size;
	}
	rc = bounce_spool(q->relay->spool, &b, w->rec.flags, dsn_committed, w,
	    err, sizeof(err));
	free(br);
	if (rc == 0) {
		q->nops++;
		return;		/* dsn_committed() continues */
	}
	if (rc == 1)
		goto commit;
fail:
	log_warnx("%s: cannot make the DSN: %s", w->m->id, err);
	for (i = 0; i < w->n; i++)
		if (w->action[i] == A_BOUNCE)
			w->action[i] = A_DEFER;
commit:
	TAILQ_INSERT_TAIL(&q->batch, w, entry);
	event_active(q->flush_ev, EV_TIMEOUT, 0);
}

/* classify - what a reply means for its delivery */
static enum action
classify(int code)
{
	if (code >= 200 && code < 300)
		return (A_SENT);
	if (code >= 500 && code < 600)
		return (A_BOUNCE);
	return (A_DEFER);
}

/*
 * slot_fail - a result for every pending delivery of the slot without a
 * transaction (expiry, no route, spool file unreadable).
 */
static void
slot_fail(struct queue *q, struct qslot *s, int code, const char *status,
    const char *text, int expired)
{
	struct qmsg *m = slot_msg(s);
	struct qwork *w;
	size_t i;
	int why;

	slot_unlink(q, s);
	if ((w = work_new(q, m, s->si, &why)) == NULL) {
		work_nothing(q, m, s->si, why);
		return;
	}
	w->expired = expired;
	for (i = 0; i < w->n; i++) {
		w->res[i].code = code;
		w->res[i].synthetic = 1;
		snprintf(w->res[i].status, sizeof(w->res[i].status), "%s",
		    status);
		snprintf(w->res[i].text, sizeof(w->res[i].text), "%s", text);
		w->action[i] = classify(code);
	}
	work_finish(w);
}

/* set_held - write QR_HELD (set or cleared) into the record */
struct held_arg {
	const char	*id;
	int		 hold;
};

static int
txn_held(struct store_txn *tx, void *arg)
{
	struct held_arg *ha = arg;
	struct queue_record rec;
	const void *val;
	size_t vlen, blen;
	unsigned char *buf;
	char err[128];
	int rc;

	rc = store_get(tx, STORE_DB_QUEUE, ha->id, QUEUE_ID_LEN, &val, &vlen);
	if (rc != 0)
		return (rc == STORE_NOTFOUND ? 1 : -1);
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1) {
		store_txn_seterr(tx, "%s", err);
		return (2);
	}
	if (ha->hold)
		rec.flags |= QR_HELD;
	else
		rec.flags &= ~(uint32_t)QR_HELD;
	rc = queue_record_encode(&rec, &buf, &blen);
	queue_record_clear(&rec);
	if (rc == -1)
		return (-1);
	rc = store_put(tx, STORE_DB_QUEUE, ha->id, QUEUE_ID_LEN, buf, blen, 0);
	free(buf);
	return (rc == 0 ? 0 : -1);
}

static int
set_held(struct queue *q, const char *id, int hold, char *err, size_t errlen)
{
	struct held_arg ha = { id, hold };
	int rc;

	rc = store_txn_run(q->relay->store, 0, txn_held, &ha, err, errlen);
	if (rc == 1)
		seterr(err, errlen, "unknown id");
	return (rc == 0 ? 0 : -1);
}

/* msg_hold - QR_HELD is committed: stop scheduling the message */
static void
msg_hold(struct queue *q, struct qmsg *m)
{
	int si;

	m->held = 1;
	for (si = 0; si < NSLOT; si++) {
		struct qslot *s = &m->slot[si];

		if (s->state == SL_WAIT || s->state == SL_READY) {
			slot_unlink(q, s);
			s->state = SL_HELD;
		}
	}
}

/* slot_expire - the message outlived queue_lifetime */
static void
slot_expire(struct queue *q, struct qslot *s)
{
	struct qmsg *m = slot_msg(s);
	char err[256];

	if (q->cfg->forward.on_expire == CFG_EXPIRE_HOLD) {
		slot_unlink(q, s);
		if (set_held(q, m->id, 1, err, sizeof(err)) == -1) {
			log_warnx("%s: cannot hold: %s", m->id, err);
			s->next_try = now_s() + backoff(q, 1);
			slot_schedule(q, s);
			return;
		}
		log_info("%s: held: queue lifetime exceeded", m->id);
		msg_hold(q, m);
		return;
	}
	slot_fail(q, s, 554, "4.4.7", "delivery time expired", 1);
}

/* ---- transactions ---------------------------------------------------------- */

static void
tx_done(struct smtp_client *c, struct smtp_tx *tx, void *arg)
{
	struct qwork *w = arg;
	struct queue *q = w->q;
	struct conn *cn = w->cn;
	struct dest *d = cn->d;
	struct relay_stats *st = &q->relay->stats;
	static const double bounds[LATENCY_NBUCKETS] = LATENCY_BUCKETS;
	size_t i;

	q->ntx--;
	cn->w = NULL;
	w->cn = NULL;
	snprintf(w->relay, sizeof(w->relay), "%s", smtp_client_peer(c));
	snprintf(w->remote, sizeof(w->remote), "%s", smtp_client_peer_host(c));
	for (i = 0; i < w->n; i++)
		w->action[i] = classify(w->res[i].code);
	if (d->kind == DK_UPSTREAM) {
		st->latency_count++;
		st->latency_sum += tx->elapsed;
		for (i = 0; i < LATENCY_NBUCKETS; i++)
			if (tx->elapsed <= bounds[i])
				st->latency_bucket[i]++;
	}
	if (tx->closed)
		conn_unlink(cn);	/* the client is gone */
	else if (q->stopping) {
		smtp_client_close(&cn->c);	/* QUIT, in the background */
		conn_unlink(cn);
	} else
		cn->state = CN_IDLE;
	work_finish(w);
	if (tx->unavailable) {
		/* 421: the server asked us to go away for now. */
		snprintf(d->why, sizeof(d->why), "%s", w->res[0].text);
		dest_pause(d);
	}
	dest_kick(d);
	maybe_done(q);
}

/*
 * work_sender - MAIL FROM for w at d: with SRS on, the upstream gets the
 * rewritten sender (srs_forward() leaves <>, DSNs' <> and senders in our
 * srs_domain alone); every other route the original one.
 */
static const char *
work_sender(struct qwork *w, const struct dest *d)
{
	struct queue *q = w->q;
	int rc;

	if (q->srs == NULL || d->kind != DK_UPSTREAM ||
	    w->rec.sender[0] == '\0' || (w->rec.flags & QR_DSN))
		return (w->rec.sender);
	rc = srs_forward(q->srs, w->rec.sender, time(NULL), w->sender,
	    sizeof(w->sender));
	if (rc == SRS_OK) {
		log_info("%s: srs: from=<%s> sent as <%s>", w->m->id,
		    w->rec.sender, w->sender);
		return (w->sender);
	}
	if (rc != SRS_UNCHANGED)
		log_warnx("%s: srs: cannot rewrite <%s>: %s; sent as is",
		    w->m->id, w->rec.sender, srs_strerror(rc));
	return (w->rec.sender);
}

/* work_defer_all - no transaction after all: every delivery 451 (why) */
static void
work_defer_all(struct qwork *w, const char *why)
{
	size_t i;

	for (i = 0; i < w->n; i++) {
		w->res[i].code = 451;
		w->res[i].synthetic = 1;
		snprintf(w->res[i].status, sizeof(w->res[i].status), "4.3.0");
		snprintf(w->res[i].text, sizeof(w->res[i].text),
		    "451 4.3.0 %s", why);
		w->action[i] = A_DEFER;
	}
	work_finish(w);
}

/* work_start - take a ready slot onto an idle connection */
static void
work_start(struct conn *cn, struct qslot *s)
{
	struct dest *d = cn->d;
	struct queue *q = d->q;
	struct qmsg *m = slot_msg(s);
	struct qwork *w;
	char err[256];
	size_t i;
	int why;

	if ((w = work_new(q, m, s->si, &why)) == NULL) {
		work_nothing(q, m, s->si, why);
		return;
	}
	s->noted = 0;
	for (i = 0; w->fwd != NULL && i < w->n; i++)
		if (w->fwd[i] == NULL) {
			/* Expired since it was routed: next time it has
			 * no route and bounces. */
			snprintf(err, sizeof(err), "the SRS address %s no "
			    "longer reverses", w->rcpt[i]);
			work_defer_all(w, err);
			return;
		}
	if (spool_msg_open(q->relay->spool, m->id, &w->fd, &w->offset,
	    &w->size) == -1) {
		snprintf(err, sizeof(err), "cannot open the spool file: %s",
		    strerror(errno));
		work_defer_all(w, err);
		return;
	}
	memset(&w->tx, 0, sizeof(w->tx));
	w->tx.sender = work_sender(w, d);
	w->tx.rcpt = w->fwd != NULL ? (const char **)w->fwd : w->rcpt;
	w->tx.nrcpt = w->n;
	w->tx.fd = w->fd;
	w->tx.offset = w->offset;
	w->tx.size = w->size;
	w->tx.result = w->res;
	/* Our Authentication-Results: for the new provider, and for the
	 * old MTA's copy (the same message); DSN and SRS routes carry
	 * the message as received. */
	if ((d->kind == DK_UPSTREAM || d->kind == DK_COPY) &&
	    w->rec.headers != NULL) {
		w->tx.headers = w->rec.headers;
		w->tx.hlen = strlen(w->rec.headers);
	}
	w->ledger = d->kind == DK_UPSTREAM;
	if (smtp_client_send(cn->c, &w->tx, tx_done, w, err,
	    sizeof(err)) == -1) {
		/* Cannot happen on an idle connection; be safe anyway. */
		work_defer_all(w, err);
		return;
	}
	cn->state = CN_BUSY;
	cn->w = w;
	w->cn = cn;
	q->ntx++;
}

/* ---- the destination state machine --------------------------------------- */

static void	mx_resolve(struct dest *d);

/*
 * dest_kick - give ready slots to idle connections, open connections up
 * to the limit, or probe a paused destination whose pause has ended.
 */
static void
dest_kick(struct dest *d)
{
	struct queue *q = d->q;
	struct conn *cn;
	int64_t now = now_s();

	if (q->stopping)
		return;
	if (d->paused) {
		if (now < d->paused_until || d->nconns > 0 || d->nready == 0 ||
		    d->mx_pending)
			return;
		/* The probe; an MX route looks its MX up again first. */
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
		if (d->paused)	/* work_start may pause (it cannot today) */
			return;
	}
	if (d->kind == DK_MX && d->nready > d->nconnecting &&
	    (d->ep == NULL || (d->nconns == 0 && d->mx_until <= now))) {
		if (!d->mx_pending)
			mx_resolve(d);
		return;
	}
	while (d->nready > d->nconnecting && d->nconns < d->max_conns &&
	    !d->paused)
		conn_open(d, 0);
}

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
			    dlv_slot(na->q, d) != si || (si == SLOT_SRS &&
			    !srs_same_route(na->q, na->d, d->rcpt)))
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
	if (!d->paused || q->stopping)
		return;
	/* Expired first: they leave the FIFO. */
	for (s = TAILQ_FIRST(&d->readyq); s != NULL; s = next) {
		struct qmsg *m = slot_msg(s);

		next = TAILQ_NEXT(s, ready);
		if (!m->no_expire && now >= expiry(q, m->arrived))
			slot_expire(q, s);
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
				log_delivery(na.log[i].m, na.log[i].rcpt, NULL,
				    "none", "deferred", d->why);
				q->relay->stats.deferred++;
			}
		}
	}
	note_log_clear(&na);
	free(na.log);
	free(na.s);
}

static void
note_cb(evutil_socket_t fd, short what, void *arg)
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

/* dest_pause - unreachable: wait, then probe with one connection */
static void
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
			conn_unlink(cn);
		}
	}
	d->npause++;
	delay = backoff(q, d->npause);
	d->paused = 1;
	d->paused_until = now_s() + delay;
	tv.tv_sec = (time_t)delay;
	event_add(d->pause_ev, &tv);
	log_warnx("%s: destination paused for %" PRId64 "s: %s", d->name,
	    delay, d->why);
	dest_note(d);
}

static void
dest_resume(struct dest *d)
{
	if (!d->paused && d->npause == 0)
		return;
	if (d->paused)
		log_info("%s: destination is reachable again", d->name);
	d->paused = 0;
	d->npause = 0;
	event_del(d->pause_ev);
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
			conn_unlink(cn);
			maybe_done(q);
			return;
		}
		dest_kick(d);
		break;
	case SMTP_CLIENT_FAILED:
		probe = cn->probe;
		conn_unlink(cn);
		snprintf(d->why, sizeof(d->why), "%s", why);
		TAILQ_FOREACH(o, &d->conns, entry)
			if (o->state != CN_CONNECTING)
				established++;
		/* With other sessions working this was a hiccup (or a
		 * connection limit); with none, the destination is down.
		 * Several attempts failing together pause it once. */
		if (established == 0 && !q->stopping &&
		    (!d->paused || probe)) {
			if (probe)
				log_warnx("%s: probe failed", d->name);
			dest_pause(d);
		}
		maybe_done(q);
		break;
	case SMTP_CLIENT_CLOSED:
		conn_unlink(cn);
		dest_kick(d);
		maybe_done(q);
		break;
	}
}

/* ---- MX routes (DSNs without dsn_relay) ---------------------------------- */

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
			slot_fail(q, s, status == -2 ? 556 : 550,
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
	struct dns_resolver *r = resolver(d->q);
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

/* ---- scheduling -------------------------------------------------------------- */

/* slot_ready - due now: into the destination's FIFO */
static void
slot_ready(struct queue *q, struct qslot *s)
{
	struct dest *d = s->dest;

	s->state = SL_READY;
	s->noted = 0;
	TAILQ_INSERT_TAIL(&d->readyq, s, ready);
	d->nready++;
	if (d->paused) {
		/* Deferred in LMDB once, then it waits for the probe. */
		d->need_note = 1;
		event_active(q->note_ev, EV_TIMEOUT, 0);
	}
	dest_kick(d);	/* paused: probes when the pause is over */
}

/* slot_due - a slot's time has come */
static void
slot_due(struct queue *q, struct qslot *s, int64_t now)
{
	struct qmsg *m = slot_msg(s);

	if (!m->no_expire && now >= expiry(q, m->arrived)) {
		slot_expire(q, s);
		return;
	}
	if (s->dest == NULL && s->si == SLOT_SRS) {
		slot_fail(q, s, 550, "5.1.1", "550 5.1.1 the SRS address has "
		    "expired or does not reverse to a routable address", 0);
		return;
	}
	if (s->dest == NULL) {
		slot_fail(q, s, 554, "5.4.4", s->si == SLOT_COPY ?
		    "554 5.4.4 copy_to is not configured" :
		    "554 5.4.4 no route to the recipient's domain", 0);
		return;
	}
	slot_ready(q, s);
}

/* slot_schedule - put a slot with pending deliveries where it belongs */
static void
slot_schedule(struct queue *q, struct qslot *s)
{
	struct qmsg *m = slot_msg(s);
	int64_t now = now_s();

	if (m->deleted)
		return;
	if (m->held) {
		s->state = SL_HELD;
		return;
	}
	if (!m->no_expire && s->next_try > expiry(q, m->arrived))
		s->next_try = expiry(q, m->arrived);
	if (s->next_try <= now || q->stopping) {
		if (q->stopping) {
			s->state = SL_NONE;	/* it stays pending in LMDB */
			return;
		}
		slot_due(q, s, now);
		return;
	}
	if (heap_push(q, s) == -1) {
		/* No memory for the heap: try it now rather than never. */
		slot_due(q, s, now);
	}
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	int64_t now = now_s();
	struct qslot *s;

	(void)fd;
	(void)what;
	while (q->nheap > 0 && q->heap[0]->next_try <= now && !q->stopping) {
		s = q->heap[0];
		heap_del(q, s);
		slot_due(q, s, now);
	}
	mx_gc(q);
	timer_arm(q);
}

/* ---- loading ------------------------------------------------------------------ */

/*
 * msg_add - track a record (decoded) in memory and, if schedule, schedule
 * its pending deliveries.  Returns 1 when the record has nothing pending
 * (the caller removes it), 0 when tracked, -1 on error.
 */
static int
msg_add(struct queue *q, const struct queue_record *rec, int schedule)
{
	struct qmsg *m;
	const char *srs_first = NULL;
	size_t i;
	int si, any = 0, seen[NSLOT] = { 0 };

	if (queue_record_done(rec))
		return (1);
	if (msg_find(q, rec->id) != NULL)
		return (0);
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return (-1);
	memcpy(m->id, rec->id, sizeof(m->id));
	m->arrived = rec->arrived;
	m->held = (rec->flags & QR_HELD) != 0;
	m->dsn = (rec->flags & QR_DSN) != 0;
	for (si = 0; si < NSLOT; si++) {
		m->slot[si].si = (uint8_t)si;
		m->slot[si].next_try = INT64_MAX;
	}
	for (i = 0; i < rec->ndlv; i++) {
		const struct delivery *d = &rec->dlv[i];
		struct qslot *s;
		int sl;

		if (d->state != DLV_PENDING)
			continue;
		sl = dlv_slot(q, d);
		s = &m->slot[sl];
		if (!seen[sl]) {
			seen[sl] = 1;
			if (sl == SLOT_COPY)
				s->dest = q->copy;
			else if (sl == SLOT_SRS)
				s->dest = NULL;		/* below */
			else if (m->dsn)
				s->dest = mx_dest(q, d->rcpt);
			else
				s->dest = q->upstream;
			if (s->dest != NULL)
				s->dest->refs++;
		}
		if (d->next_try < s->next_try) {
			s->next_try = d->next_try;
			if (sl == SLOT_SRS)
				srs_first = d->rcpt;
		}
		any = 1;
	}
	/* The SRS slot follows the recipient due first. */
	if (srs_first != NULL) {
		m->slot[SLOT_SRS].dest = srs_dest(q, srs_first);
		if (m->slot[SLOT_SRS].dest != NULL)
			m->slot[SLOT_SRS].dest->refs++;
	}
	if (!any) {
		free(m);
		return (1);
	}
	if (msg_insert(q, m) == -1) {
		for (si = 0; si < NSLOT; si++)
			if (m->slot[si].dest != NULL)
				m->slot[si].dest->refs--;
		free(m);
		return (-1);
	}
	if (schedule)
		for (si = 0; si < NSLOT; si++)
			if (m->slot[si].next_try != INT64_MAX)
				slot_schedule(q, &m->slot[si]);
	return (0);
}

struct load_arg {
	struct queue	*q;
	char		(*done)[QUEUE_ID_LEN + 1];	/* nothing pending */
	size_t		 ndone, cap;
	size_t		 nheld;
};

/* load_one - one record into memory (no scheduling inside the txn) */
static int
load_one(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct load_arg *la = arg;
	struct queue_record rec;
	char err[128];
	int rc;

	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1) {
		log_warnx("%.*s: damaged queue record: %s", (int)(klen < 64 ?
		    klen : 64), (const char *)key, err);
		return (0);
	}
	rc = msg_add(la->q, &rec, 0);
	if (rc == 1) {
		if (la->ndone == la->cap) {
			size_t ncap = la->cap ? la->cap * 2 : 64;
			void *n = reallocarray(la->done, ncap,
			    sizeof(*la->done));

			if (n == NULL) {
				queue_record_clear(&rec);
				return (-1);
			}
			la->done = n;
			la->cap = ncap;
		}
		memcpy(la->done[la->ndone++], rec.id, QUEUE_ID_LEN + 1);
	} else if (rc == 0 && (rec.flags & QR_HELD))
		la->nheld++;
	queue_record_clear(&rec);
	return (rc == -1 ? -1 : 0);
}

static int
txn_load_all(struct store_txn *tx, void *arg)
{
	struct load_arg *la = arg;

	/* msg_add() skips ids it knows, so a second run adds nothing. */
	la->ndone = 0;
	la->nheld = 0;
	return (store_foreach(tx, STORE_DB_QUEUE, NULL, 0, load_one, la));
}

/*
 * queue_load - every record into memory at start: one struct qmsg each
 * (records are decoded one at a time, never all at once), then the
 * schedule, then the removal of records that were finished when the
 * relay stopped.
 */
static int
queue_load(struct queue *q, char *err, size_t errlen)
{
	struct load_arg la;
	struct qmsg *m;
	size_t i;
	int si;

	memset(&la, 0, sizeof(la));
	la.q = q;
	if (store_txn_run(q->relay->store, 1, txn_load_all, &la, err,
	    errlen) != 0) {
		free(la.done);
		return (-1);
	}
	/* Everything goes into the heap, due or not: the timer takes the
	 * due ones from the loop, once start-up is over. */
	for (i = 0; i < q->hsize; i++)
		for (m = q->hash[i]; m != NULL; m = m->hnext)
			for (si = 0; si < NSLOT; si++) {
				struct qslot *sl = &m->slot[si];

				if (sl->state != SL_NONE ||
				    sl->next_try == INT64_MAX)
					continue;
				if (m->held)
					sl->state = SL_HELD;
				else if (heap_push(q, sl) == -1) {
					seterr(err, errlen, "out of memory");
					free(la.done);
					return (-1);
				}
			}
	for (i = 0; i < la.ndone; i++) {
		/* Finished before a crash or stop: finish removing. */
		if (spool_remove(q->relay->spool, la.done[i]) == 0) {
			log_info("%s: removed", la.done[i]);
			dels_add(q, la.done[i]);
		}
	}
	log_info("queue: %zu messages queued (%zu held), %zu finished",
	    q->nmsgs, la.nheld, la.ndone);
	free(la.done);
	return (0);
}

/* ---- public ------------------------------------------------------------------ */

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	void (*done)(void *) = q->done;

	(void)fd;
	(void)what;
	q->done = NULL;
	if (q->grace_ev != NULL)
		event_del(q->grace_ev);
	if (done != NULL)
		done(q->done_arg);
}

/* maybe_done - shutting down and nothing in flight: report (from the loop) */
static void
maybe_done(struct queue *q)
{
	if (!q->stopping || q->done == NULL)
		return;
	if (q->ntx > 0 || q->nops > 0 || !TAILQ_EMPTY(&q->batch))
		return;
	event_active(q->done_ev, EV_TIMEOUT, 0);
}

int
queue_new(struct queue **queue_r, struct relay *relay, char *err,
    size_t errlen)
{
	struct queue *q;
	struct config *cfg = relay->cfg;

	*queue_r = NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		seterr(err, errlen, "out of memory");
		return (-1);
	}
	q->relay = relay;
	q->cfg = cfg;
	TAILQ_INIT(&q->mx);
	TAILQ_INIT(&q->batch);
	q->hsize = 1024;
	if ((q->hash = calloc(q->hsize, sizeof(*q->hash))) == NULL)
		goto nomem;
	q->timer = evtimer_new(relay->base, timer_cb, q);
	q->flush_ev = event_new(relay->base, -1, 0, flush_cb, q);
	q->note_ev = event_new(relay->base, -1, 0, note_cb, q);
	q->done_ev = event_new(relay->base, -1, 0, done_cb, q);
	if (q->timer == NULL || q->flush_ev == NULL || q->note_ev == NULL ||
	    q->done_ev == NULL)
		goto nomem;
	q->cli = smtp_client_ctx_new(relay->base, cfg->forward.helo_name,
	    cfg->forward.ca_file, err, errlen);
	if (q->cli == NULL)
		goto fail;
	q->srs = relay->srs;
	if (relay->resolver != NULL) {
		q->dns = relay->resolver;
		smtp_client_ctx_set_resolver(q->cli, q->dns);
	}
	if (cfg->forward.upstream.count > 0 &&
	    (q->upstream = dest_new(q, DK_UPSTREAM, "upstream",
	    &cfg->forward.upstream, cfg->forward.tls)) == NULL)
		goto nomem;
	if (cfg->forward.copy_to.count > 0 &&
	    (q->copy = dest_new(q, DK_COPY, "copy_to", &cfg->forward.copy_to,
	    tls_soft(cfg->forward.tls))) == NULL)
		goto nomem;
	if (cfg->forward.dsn_relay.count > 0 &&
	    (q->dsn_relay = dest_new(q, DK_DSN_RELAY, "dsn_relay",
	    &cfg->forward.dsn_relay, tls_soft(cfg->forward.tls))) == NULL)
		goto nomem;
	if (queue_load(q, err, errlen) == -1)
		goto fail;
	*queue_r = q;
	return (0);
nomem:
	seterr(err, errlen, "out of memory");
fail:
	queue_free(&q);
	return (-1);
}

/* queue_enqueued - a message was just committed: schedule it */
void
queue_enqueued(struct queue *q, const char *id)
{
	struct qwork tmp;
	struct qmsg fake;
	char err[256];
	int rc;

	if (q == NULL || msg_find(q, id) != NULL)
		return;
	memset(&tmp, 0, sizeof(tmp));
	memset(&fake, 0, sizeof(fake));
	snprintf(fake.id, sizeof(fake.id), "%s", id);
	tmp.m = &fake;
	rc = store_txn_run(q->relay->store, 1, txn_load, &tmp, err,
	    sizeof(err));
	if (rc != 0) {
		log_warnx("%s: cannot schedule: %s", id, rc == 1 ?
		    "no queue record" : err);
		queue_record_clear(&tmp.rec);
		return;
	}
	if (msg_add(q, &tmp.rec, 1) == -1)
		log_warnx("%s: cannot schedule: out of memory (it is "
		    "delivered after a restart)", id);
	queue_record_clear(&tmp.rec);
}

/*
 * slot_soon - due now, but taken from the heap by the timer: callers
 * that hold pointers to several slots never see one freed under them.
 */
static void
slot_soon(struct queue *q, struct qslot *s, int64_t now)
{
	if (s->state == SL_WAIT)
		heap_del(q, s);
	s->next_try = now;
	if (heap_push(q, s) == 0)
		event_active(q->timer, EV_TIMEOUT, 0);
}

static void
resume_all(struct queue *q)
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

/*
 * queue_retry - try now: one message (and unpause its destinations), or
 * with id NULL or "all" every message that is not held (and unpause
 * every destination).
 */
int
queue_retry(struct queue *q, const char *id, char *err, size_t errlen)
{
	struct qmsg *m;
	int64_t now = now_s();
	size_t i;
	int si;

	if (id == NULL || strcmp(id, "all") == 0) {
		/* min(next_try, now) keeps the heap ordered. */
		for (i = 0; i < q->nheap; i++)
			if (q->heap[i]->next_try > now)
				q->heap[i]->next_try = now;
		if (q->nheap > 0)
			event_active(q->timer, EV_TIMEOUT, 0);
		log_info("queue: retry of every message requested");
		resume_all(q);
		return (0);
	}
	if ((m = msg_find(q, id)) == NULL || m->deleted) {
		seterr(err, errlen, "unknown id");
		return (-1);
	}
	if (m->held) {
		seterr(err, errlen, "held: release it first");
		return (-1);
	}
	log_info("%s: retry requested", m->id);
	for (si = 0; si < NSLOT; si++) {
		struct qslot *s = &m->slot[si];

		if (s->dest != NULL && s->dest->paused) {
			dest_resume(s->dest);
			dest_kick(s->dest);
		}
		if (s->state == SL_WAIT)
			slot_soon(q, s, now);
	}
	return (0);
}

int
queue_hold(struct queue *q, const char *id, char *err, size_t errlen)
{
	struct qmsg *m;

	if ((m = msg_find(q, id)) == NULL || m->deleted) {
		seterr(err, errlen, "unknown id");
		return (-1);
	}
	if (set_held(q, id, 1, err, errlen) == -1)
		return (-1);
	log_info("%s: held by admin", id);
	msg_hold(q, m);
	return (0);
}

int
queue_release(struct queue *q, const char *id, char *err, size_t errlen)
{
	struct qmsg *m;
	int64_t now = now_s();
	int si;

	if ((m = msg_find(q, id)) == NULL || m->deleted) {
		seterr(err, errlen, "unknown id");
		return (-1);
	}
	if (set_held(q, id, 0, err, errlen) == -1)
		return (-1);
	log_info("%s: released by admin", id);
	m->held = 0;
	/* Held at expiry and released: the admin wants it tried again. */
	if (now >= expiry(q, m->arrived))
		m->no_expire = 1;
	for (si = 0; si < NSLOT; si++) {
		struct qslot *s = &m->slot[si];

		if (s->state != SL_HELD)
			continue;
		s->state = SL_NONE;
		slot_soon(q, s, now);
	}
	return (0);
}

/*
 * txn_delete - the record goes, and with it the pending ledger entries
 * it wrote: the relay gives up on those recipients, so the next delta
 * pass copies the old host's copy (common/ledger.h).
 */
struct delete_arg {
	struct queue	*q;
	const char	*id;
};

static int
txn_delete(struct store_txn *tx, void *arg)
{
	struct delete_arg *da = arg;
	struct queue_record rec;
	const void *val;
	size_t vlen, i;
	char err[128];
	int rc;

	rc = store_get(tx, STORE_DB_QUEUE, da->id, QUEUE_ID_LEN, &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (1);
	if (rc != 0)
		return (-1);
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == 0) {
		for (i = 0; i < rec.ndlv; i++)
			if (rec.dlv[i].state == DLV_PENDING &&
			    queue_ledger_tracked(da->q->relay, &rec,
			    &rec.dlv[i]) && ledger_del(tx,
			    rec.dlv[i].ledger_key, da->id) == -1) {
				queue_record_clear(&rec);
				return (-1);
			}
		queue_record_clear(&rec);
	}
	rc = store_del(tx, STORE_DB_QUEUE, da->id, QUEUE_ID_LEN);
	return (rc == STORE_NOTFOUND ? 1 : rc);
}

int
queue_delete(struct queue *q, const char *id, char *err, size_t errlen)
{
	struct qmsg *m;
	struct delete_arg da;
	char idbuf[QUEUE_ID_LEN + 1];
	int rc, si;

	if ((m = msg_find(q, id)) == NULL || m->deleted) {
		seterr(err, errlen, "unknown id");
		return (-1);
	}
	snprintf(idbuf, sizeof(idbuf), "%s", m->id);
	da.q = q;
	da.id = idbuf;
	rc = store_txn_run(q->relay->store, 0, txn_delete, &da, err, errlen);
	if (rc < 0)
		return (-1);
	/* The record is gone: nothing can send it after a restart.  A
	 * transaction in flight finishes (its file stays readable through
	 * the open descriptor) and its results are dropped. */
	if (spool_remove(q->relay->spool, idbuf) == -1)
		log_warn("%s: cannot remove the spool file", idbuf);
	log_info("%s: deleted by admin", idbuf);
	m->deleted = 1;
	for (si = 0; si < NSLOT; si++)
		if (m->slot[si].state != SL_BUSY)
			msg_release_slot(q, m, si);
	if (m->busy == 0)
		msg_free(q, m);
	return (0);
}

/* abort_dest - shutdown grace is over: drop every connection of d */
static void
abort_dest(struct queue *q, struct dest *d)
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
		conn_unlink(cn);
	}
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	struct dest *d;

	(void)fd;
	(void)what;
	abort_dest(q, q->upstream);
	abort_dest(q, q->copy);
	abort_dest(q, q->dsn_relay);
	TAILQ_FOREACH(d, &q->mx, entry)
		abort_dest(q, d);
	maybe_done(q);
}

/* close_idle - at shutdown: idle connections QUIT, connecting ones go */
static void
close_idle(struct dest *d)
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
		conn_unlink(cn);
	}
}

/*
 * queue_shutdown - stop scheduling, let transactions in flight finish
 * (at most SHUTDOWN_GRACE seconds, then abort them), commit what
 * finished, then call done(arg) from the loop.
 */
void
queue_shutdown(struct queue *q, void (*done)(void *), void *arg)
{
	struct dest *d;
	struct timeval tv = { SHUTDOWN_GRACE, 0 };

	q->stopping = 1;
	q->done = done;
	q->done_arg = arg;
	event_del(q->timer);
	close_idle(q->upstream);
	close_idle(q->copy);
	close_idle(q->dsn_relay);
	TAILQ_FOREACH(d, &q->mx, entry)
		close_idle(d);
	if ((q->grace_ev = evtimer_new(q->relay->base, grace_cb, q)) != NULL)
		event_add(q->grace_ev, &tv);
	maybe_done(q);
}

void
queue_free(struct queue **qp)
{
	struct queue *q;
	struct qwork *w;
	struct dest *d;
	size_t i;

	if (qp == NULL || (q = *qp) == NULL)
		return;
	*qp = NULL;
	q->stopping = 1;
	q->done = NULL;
	/* Commit what finished (and pending record deletions). */
	if (q->relay->store != NULL && q->hash != NULL)
		queue_flush(q);
	while ((w = TAILQ_FIRST(&q->batch)) != NULL) {
		TAILQ_REMOVE(&q->batch, w, entry);
		work_free(w);
	}
	dest_free(q->upstream);
	dest_free(q->copy);
	dest_free(q->dsn_relay);
	while ((d = TAILQ_FIRST(&q->mx)) != NULL) {
		TAILQ_REMOVE(&q->mx, d, entry);
		dest_free(d);
	}
	smtp_client_ctx_free(&q->cli);
	if (q->hash != NULL)
		for (i = 0; i < q->hsize; i++)
			while (q->hash[i] != NULL) {
				struct qmsg *m = q->hash[i];

				q->hash[i] = m->hnext;
				free(m);
			}
	free(q->hash);
	free(q->heap);
	free(q->dels);
	if (q->timer != NULL)
		event_free(q->timer);
	if (q->flush_ev != NULL)
		event_free(q->flush_ev);
	if (q->note_ev != NULL)
		event_free(q->note_ev);
	if (q->done_ev != NULL)
		event_free(q->done_ev);
	if (q->grace_ev != NULL)
		event_free(q->grace_ev);
	free(q);
}
