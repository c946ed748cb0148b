/*
 * queue_p.h - the inside of the delivery scheduler (queue.h): the
 * in-memory model (struct qmsg and its slots, struct dest and its
 * connections, struct qwork, struct queue) that queue.c describes, and
 * the calls between its four files:
 *
 *   queue.c        public API, messages by id, loading at start,
 *                  hold/release/delete, shutdown
 *   queue_sched.c  scheduling: backoff, the heap of waiting slots and
 *                  its timer, where a slot goes when it comes due
 *   queue_dest.c   routes (which slot and destination a delivery
 *                  belongs to, SRS and MX routes) and destinations:
 *                  connections, the dest_state machine, pause/probe,
 *                  deferring what waits for a paused one
 *   queue_work.c   work on one slot of one message (load, transaction,
 *                  DSN) and committing results to LMDB, the ledger
 *                  included
 *
 * Private to those files; nothing else includes it.  Loop thread only.
 */
#ifndef FERRY_QUEUE_P_H
#define FERRY_QUEUE_P_H

#include <sys/queue.h>

#include <pthread.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "dns.h"
#include "queue.h"
#include "queue_record.h"
#include "smtp_client.h"
#include "srs.h"
#include "store.h"
#include "util.h"

struct relay;

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

/*
 * A destination's reachability, changed only by dest_enter_state():
 *   DEST_UP       reachable (or not tried yet): connections open as
 *                 ready slots need them
 *   DEST_PAUSED   unreachable: nothing is tried until paused_until, and
 *                 slots that come due are deferred in LMDB once
 *   DEST_PROBING  the pause is over and one probe is out (an MX look-up
 *                 or one connection); success is DEST_UP and releases
 *                 every waiting slot, failure DEST_PAUSED for longer
 */
enum dest_state { DEST_UP, DEST_PAUSED, DEST_PROBING };

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
	enum dest_state	 state;
	unsigned	 npause;	/* consecutive pauses */
	int64_t		 paused_until;
	int64_t		 pause_for;	/* seconds of the current pause */
	struct event	*pause_ev;
	char		 why[512];
	int		 need_note;
	int		 mx_pending;
	uint64_t	 mx_id;
	int64_t		 mx_until;
};
TAILQ_HEAD(destq, dest);

enum action { A_SKIP, A_SENT, A_DEFER, A_BOUNCE };

/* Why work_new() made no work for a slot; work_nothing() acts on it. */
enum work_none {
	WN_ERROR,	/* the record could not be read: try again later */
	WN_GONE,	/* no record any more */
	WN_SLOT_DONE,	/* nothing pending for this slot */
	WN_HELD,	/* the record says QR_HELD */
	WN_ALL_DONE,	/* nothing pending at all */
	WN_REROUTED,	/* SRS slot: pointed at another route, schedule it */
};

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
	/* queue_mark.c: the in-flight mark of an upstream transaction */
	TAILQ_ENTRY(qwork) mentry;	/* in mark.waiting while mark_wait */
	uint64_t	 mark_seq;
	int		 mark_wait;	/* submitted, not reported yet */
	int		 mark_finish;	/* the result waits for the report */
};
TAILQ_HEAD(workq, qwork);

/* queue_mark.c: one record to mark, and one round of the thread */
struct qmark_req {
	char		 id[QUEUE_ID_LEN + 1];
	uint64_t	 seq;
};
struct qmark_round {
	struct qmark_req *req;
	size_t		 n;
};

/*
 * The mark thread's state (queue_mark.c).  Under mu: req/nreq/reqcap
 * (the loop appends), spare/sparecap (an array handed back), seq_done,
 * seq_failed, why, stop.  Loop only: waiting, npending, seq_next,
 * seq_warned.
 */
struct qmark {
	pthread_t	 thread;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 running, mu_ok, cv_ok, stop;
	struct wakeup	*wake;
	struct qmark_req *req, *spare;
	size_t		 nreq, reqcap, sparecap;
	uint64_t	 seq_next, seq_done, seq_failed, seq_warned;
	int		 round_ok;
	char		 why[256];
	struct workq	 waiting;	/* linked through mentry */
	size_t		 npending;
};

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
	/* QUEUE_TEST_CRASH_ENV: end after this many upstream transactions
	 * got a 2xx (0: never), and how many did so far */
	unsigned long	 test_crash_after, test_crash_n;
	struct qmark	 mark;		/* queue_mark.c */
};

/* Test hook: a decimal count N read at queue_new(); the N-th upstream
 * transaction answered 2xx ends the process with
 * _exit(QUEUE_TEST_CRASH_STATUS) right after that answer and before its
 * result is committed: the upstream has the message, the queue record
 * still says pending and QR_INFLIGHT (inflight.h), for
 * tests/integration/test_relay_crash.sh.  Unset (production), nothing
 * is different. */
#define QUEUE_TEST_CRASH_ENV	"MAILFERRY_TEST_CRASH_AFTER_DATA"
#define QUEUE_TEST_CRASH_STATUS	137

static inline int64_t
now_s(void)
{
	return ((int64_t)time(NULL));
}

/* slot_msg - the message a slot belongs to */
static inline struct qmsg *
slot_msg(struct qslot *s)
{
	return ((struct qmsg *)(void *)((char *)(s - s->si) -
	    offsetof(struct qmsg, slot)));
}

/* dest_paused - d is not up: paused, or its probe is out */
static inline int
dest_paused(const struct dest *d)
{
	return (d->state != DEST_UP);
}

/* queue.c: messages by id, holding */
void	queue_msg_free(struct queue *q, struct qmsg *m);
void	queue_maybe_done(struct queue *q);
int	queue_set_held(struct queue *q, const char *id, int hold, char *err,
	    size_t errlen);

/* queue_mark.c: the in-flight mark, committed off the loop */
int	mark_init(struct queue *q, char *err, size_t errlen);
void	mark_free(struct queue *q);
int	mark_submit(struct queue *q, struct qwork *w);

/* queue_sched.c: scheduling */
int64_t	sched_backoff(const struct queue *q, unsigned n);
int64_t	sched_expiry(const struct queue *q, int64_t arrived);
int	sched_heap_push(struct queue *q, struct qslot *s);
void	sched_slot_unlink(struct queue *q, struct qslot *s);
void	sched_slot_set_dest(struct qslot *s, struct dest *d);
void	sched_release_slot(struct queue *q, struct qmsg *m, int si);
void	sched_hold(struct queue *q, struct qmsg *m);
void	sched_expire(struct queue *q, struct qslot *s);
void	sched_slot(struct queue *q, struct qslot *s);
void	sched_soon(struct queue *q, struct qslot *s, int64_t now);
void	sched_timer_cb(evutil_socket_t fd, short what, void *arg);

/* queue_dest.c: routes */
struct dns_resolver *dest_resolver(struct queue *q);
enum cfg_tls_policy dest_tls_soft(enum cfg_tls_policy p);
int	dest_slot(const struct queue *q, const struct delivery *d);
int	dest_srs_orig(const struct queue *q, const char *rcpt, char *orig,
	    size_t len);
struct dest *dest_srs(struct queue *q, const char *rcpt);
int	dest_srs_same_route(const struct queue *q, const struct dest *d,
	    const char *rcpt);
struct dest *dest_mx(struct queue *q, const char *rcpt);

/* queue_dest.c: destinations */
struct dest *dest_new(struct queue *q, enum dest_kind kind, const char *name,
	    const struct hostport_list *eps, enum cfg_tls_policy tls);
void	dest_free(struct dest *d);
void	dest_conn_unlink(struct conn *cn);
void	dest_mx_gc(struct queue *q);
void	dest_kick(struct dest *d);
void	dest_enter_state(struct dest *d, enum dest_state st);
const char *dest_strstate(enum dest_state st);
void	dest_pause(struct dest *d);
void	dest_resume(struct dest *d);
void	dest_resume_all(struct queue *q);
void	dest_note_cb(evutil_socket_t fd, short what, void *arg);
void	dest_abort(struct queue *q, struct dest *d);
void	dest_close_idle(struct dest *d);

/* queue_work.c: work on one slot of one message */
int	work_txn_load(struct store_txn *tx, void *arg);
void	work_free(struct qwork *w);
void	work_fail_slot(struct queue *q, struct qslot *s, int code,
	    const char *status, const char *text, int expired);
void	work_start(struct conn *cn, struct qslot *s);
void	work_log_delivery(const struct qmsg *m, const char *rcpt,
	    const char *orig_to, const char *relay, const char *status,
	    const char *text);

/* queue_work.c: committing results */
void	work_dels_add(struct queue *q, const char *id);
void	work_to_batch(struct qwork *w);
void	work_flush(struct queue *q);
void	work_flush_cb(evutil_socket_t fd, short what, void *arg);

#endif
