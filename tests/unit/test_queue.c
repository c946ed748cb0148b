/*
 * test_queue.c - the delivery scheduler against a fake SMTP client: a
 * message the upstream accepts (250) is finished (record and spool file
 * gone) and its ledger entry is delivered; a 4xx defers it with the
 * backoff of DESIGN.md §5 and ferryctl retry sends it again; a 5xx
 * bounces it (the DSN is spooled and goes out over dsn_relay, the
 * pending ledger entry goes); an upstream that cannot be reached is
 * paused as a whole (one connection attempt, every waiting message
 * deferred once in LMDB) and comes back on retry; copy_to is not held
 * up by a dead upstream; hold and release; shutdown reports done.
 *
 * The fake stands in for smtp_client.h at link time: this file defines
 * every smtp_client_* function queue.c calls, so librelay.a's
 * smtp_client.o is never linked in.  Each fake connection reports on the
 * loop (never from inside the call, as the real one), and answers by
 * the first endpoint's host name: what a host does is set per test in
 * the hosts[] table.  The spool and the LMDB store are real, in a
 * mkdtemp() directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "config.h"
#include "ledger.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "smtp_client.h"
#include "spool.h"
#include "store.h"
#include "tmpdir.h"

/* ---- the fake SMTP client ------------------------------------------------- */

/* What one fake host does, and what it saw. */
struct fake_host {
	const char	*name;
	int		 refuse;	/* connections fail */
	int		 code;		/* the reply to every RCPT */
	int		 nconnect;	/* connection attempts */
	int		 nsend;		/* transactions */
	int		 nrcpt;		/* recipients over all transactions */
	char		 sender[256];	/* last MAIL FROM */
	char		 rcpt[256];	/* last transaction's first RCPT */
	int		 headers;	/* last transaction had extra headers */
	int		 nheld;		/* transactions whose dot was held */
	int		 ninflight;	/* QR_INFLIGHT records seen at the dots */
};

static struct store *fake_store;	/* the fixture's, for count_inflight */

static int
inflight_one(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct queue_record rec;
	char err[128];

	(void)key;
	(void)klen;
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == 0) {
		if (rec.flags & QR_INFLIGHT)
			(*(int *)arg)++;
		queue_record_clear(&rec);
	}
	return (0);
}

static int
txn_inflight(struct store_txn *tx, void *arg)
{
	return (store_foreach(tx, STORE_DB_QUEUE, NULL, 0, inflight_one, arg));
}

/* count_inflight - records marked in flight now (committed) */
static int
count_inflight(void)
{
	char err[128];
	int n = 0;

	assert_int_equal(store_txn_run(fake_store, 1, txn_inflight, &n, err,
	    sizeof(err)), 0);
	return (n);
}

static struct fake_host hosts[] = {
	{ "up.test", 0, 250, 0, 0, 0, "", "", 0, 0, 0 },
	{ "copy.test", 0, 250, 0, 0, 0, "", "", 0, 0, 0 },
	{ "dsn.test", 0, 250, 0, 0, 0, "", "", 0, 0, 0 },
};
#define H_UP	(&hosts[0])
#define H_COPY	(&hosts[1])
#define H_DSN	(&hosts[2])

enum fake_state { FK_CONNECTING, FK_IDLE, FK_SENDING };

struct smtp_client_ctx {
	struct event_base	*base;
	struct smtp_client	*list;
};

struct smtp_client {
	struct smtp_client	*next;
	struct smtp_client_ctx	*ctx;
	struct fake_host	*h;
	enum fake_state		 state;
	struct event		*ev;
	smtp_client_cb		*cb;
	void			*arg;
	struct smtp_tx		*tx;
	smtp_tx_cb		*tx_cb;
	void			*tx_arg;
	char			 peer[300];
};

static int nclients;	/* live fake connections */

static void
fake_free(struct smtp_client *c)
{
	struct smtp_client **pp;

	for (pp = &c->ctx->list; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	event_free(c->ev);
	free(c);
	nclients--;
}

static void
fake_ev(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	size_t i;

	(void)fd;
	(void)what;
	if (c->state == FK_CONNECTING) {
		if (c->h == NULL || c->h->refuse) {
			c->cb(c, SMTP_CLIENT_FAILED, "connect to fake: "
			    "Connection refused", c->arg);
			fake_free(c);
			return;
		}
		c->state = FK_IDLE;
		c->cb(c, SMTP_CLIENT_READY, NULL, c->arg);
		return;
	}
	if (c->state != FK_SENDING)
		return;
	if (c->tx->hold_dot) {
		/* the dot waits for smtp_client_release_dot() */
		c->h->nheld++;
		return;
	}
	c->h->ninflight += count_inflight();
	c->h->nsend++;
	c->h->nrcpt += (int)c->tx->nrcpt;
	c->h->headers = c->tx->headers != NULL;
	snprintf(c->h->sender, sizeof(c->h->sender), "%s", c->tx->sender);
	snprintf(c->h->rcpt, sizeof(c->h->rcpt), "%s", c->tx->rcpt[0]);
	for (i = 0; i < c->tx->nrcpt; i++) {
		struct smtp_reply *r = &c->tx->result[i];

		r->code = c->h->code;
		r->synthetic = 0;
		snprintf(r->status, sizeof(r->status), "%d.0.0",
		    c->h->code / 100);
		snprintf(r->text, sizeof(r->text), "%d %d.0.0 fake says %d",
		    c->h->code, c->h->code / 100, c->h->code);
	}
	c->tx->elapsed = 0.001;
	c->state = FK_IDLE;
	c->tx_cb(c, c->tx, c->tx_arg);
}

struct smtp_client_ctx *
smtp_client_ctx_new(struct event_base *base, const char *helo_name,
    const char *ca_file, char *err, size_t errlen)
{
	struct smtp_client_ctx *ctx;

	(void)helo_name;
	(void)ca_file;
	(void)err;
	(void)errlen;
	if ((ctx = calloc(1, sizeof(*ctx))) != NULL)
		ctx->base = base;
	return (ctx);
}

void
smtp_client_ctx_set_resolver(struct smtp_client_ctx *ctx,
    struct dns_resolver *dns)
{
	(void)ctx;
	(void)dns;
}

void
smtp_client_ctx_free(struct smtp_client_ctx **ctxp)
{
	struct smtp_client_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	*ctxp = NULL;
	while (ctx->list != NULL)
		fake_free(ctx->list);
	free(ctx);
}

struct smtp_client *
smtp_client_connect(struct smtp_client_ctx *ctx,
    const struct smtp_client_params *params, smtp_client_cb *cb, void *arg,
    char *err, size_t errlen)
{
	struct smtp_client *c;
	size_t i;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (NULL);
	}
	c->ctx = ctx;
	for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]) && params->nep > 0;
	    i++)
		if (strcmp(hosts[i].name, params->ep[0].host) == 0)
			c->h = &hosts[i];
	if (c->h != NULL)
		c->h->nconnect++;
	snprintf(c->peer, sizeof(c->peer), "%s[127.0.0.1]:%d",
	    params->nep > 0 ? params->ep[0].host : "?",
	    params->nep > 0 ? params->ep[0].port : 0);
	c->cb = cb;
	c->arg = arg;
	c->state = FK_CONNECTING;
	c->ev = event_new(ctx->base, -1, 0, fake_ev, c);
	assert_non_null(c->ev);
	event_active(c->ev, EV_TIMEOUT, 0);
	c->next = ctx->list;
	ctx->list = c;
	nclients++;
	return (c);
}

int
smtp_client_send(struct smtp_client *c, struct smtp_tx *tx, smtp_tx_cb *cb,
    void *arg, char *err, size_t errlen)
{
	if (c->state != FK_IDLE) {
		snprintf(err, errlen, "not idle");
		return (-1);
	}
	assert_true(tx->nrcpt > 0 && tx->nrcpt <= SMTP_TX_RCPT_MAX);
	c->state = FK_SENDING;
	c->tx = tx;
	c->tx_cb = cb;
	c->tx_arg = arg;
	event_active(c->ev, EV_TIMEOUT, 0);
	return (0);
}

void
smtp_client_release_dot(struct smtp_client *c, struct smtp_tx *tx)
{
	tx->hold_dot = 0;
	if (c != NULL && c->state == FK_SENDING && c->tx == tx)
		event_active(c->ev, EV_TIMEOUT, 0);
}

const char *
smtp_client_peer(const struct smtp_client *c)
{
	return (c->peer);
}

const char *
smtp_client_peer_host(const struct smtp_client *c)
{
	return (c->h != NULL ? c->h->name : "?");
}

const char *
smtp_client_tls(const struct smtp_client *c)
{
	(void)c;
	return ("no TLS");
}

const char *
smtp_client_skipped(const struct smtp_client *c)
{
	(void)c;
	return ("");
}

void
smtp_client_close(struct smtp_client **cp)
{
	if (*cp != NULL)
		fake_free(*cp);
	*cp = NULL;
}

void
smtp_client_abort(struct smtp_client **cp)
{
	smtp_client_close(cp);
}

/* ---- fixture -------------------------------------------------------------- */

struct fx {
	char		 tmp[64];
	struct config	 cfg;
	struct relay	 relay;
	int		 ncommit;
	char		 last_id[QUEUE_ID_LEN + 1];
	int		 done;
};

static void
set_host(struct hostport_list *l, const char *host)
{
	l->items = calloc(1, sizeof(*l->items));
	assert_non_null(l->items);
	snprintf(l->items[0].host, sizeof(l->items[0].host), "%s", host);
	l->items[0].port = 25;
	l->count = 1;
}

static int
setup(void **state)
{
	struct fx *fx;
	char err[256], db[300];
	size_t i;

	if ((fx = calloc(1, sizeof(*fx))) == NULL)
		return (-1);
	for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		hosts[i].refuse = 0;
		hosts[i].code = 250;
		hosts[i].nconnect = hosts[i].nsend = hosts[i].nrcpt = 0;
		hosts[i].sender[0] = hosts[i].rcpt[0] = '\0';
		hosts[i].headers = 0;
		hosts[i].nheld = hosts[i].ninflight = 0;
	}
	snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/test_queue.XXXXXX");
	if (mkdtemp(fx->tmp) == NULL)
		return (-1);
	if (config_load_defaults(&fx->cfg, err, sizeof(err)) == -1)
		return (-1);
	free(fx->cfg.global.state_dir);
	fx->cfg.global.state_dir = strdup(fx->tmp);
	set_host(&fx->cfg.forward.upstream, "up.test");
	set_host(&fx->cfg.forward.copy_to, "copy.test");
	set_host(&fx->cfg.forward.dsn_relay, "dsn.test");
	fx->cfg.forward.concurrency = 1;
	fx->cfg.forward.retry_initial = 100;
	fx->cfg.forward.retry_max = 1000;
	fx->relay.cfg = &fx->cfg;
	fx->relay.base = event_base_new();
	log_open("test_queue", LOG_DEST_STDERR, 0, LOG_LVL_ERROR);
	if (fx->relay.base == NULL)
		return (-1);
	snprintf(db, sizeof(db), "%s/db", fx->tmp);
	if (store_open(&fx->relay.store, db, 0, err, sizeof(err)) == -1 ||
	    spool_open(&fx->relay.spool, &fx->relay, err, sizeof(err)) == -1) {
		fprintf(stderr, "setup: %s\n", err);
		return (-1);
	}
	if (queue_new(&fx->relay.queue, &fx->relay, err, sizeof(err)) == -1) {
		fprintf(stderr, "queue_new: %s\n", err);
		return (-1);
	}
	fake_store = fx->relay.store;
	*state = fx;
	return (0);
}

static void
shutdown_done(void *arg)
{
	struct fx *fx = arg;

	fx->done = 1;
}

static void
spin_until(struct fx *fx, int *flag);

static int
teardown(void **state)
{
	struct fx *fx = *state;

	queue_shutdown(fx->relay.queue, shutdown_done, fx);
	spin_until(fx, &fx->done);
	queue_free(&fx->relay.queue);
	assert_int_equal(nclients, 0);
	spool_close(&fx->relay.spool);
	store_close(&fx->relay.store);
	event_base_free(fx->relay.base);
	config_free(&fx->cfg);
	tmpdir_remove(fx->tmp);
	free(fx);
	return (0);
}

/* spin - run the loop without blocking, n rounds (the spool's writer
 * thread gets a little time between them) */
static void
spin(struct fx *fx, int n)
{
	while (n-- > 0) {
		event_base_loop(fx->relay.base, EVLOOP_NONBLOCK);
		usleep(100);
	}
}

/* spin_until - run the loop until *flag is set (at most ~2 s) */
static void
spin_until(struct fx *fx, int *flag)
{
	int n = 0;

	while (!*flag && n++ < 20000) {
		event_base_loop(fx->relay.base, EVLOOP_NONBLOCK);
		usleep(100);
	}
	assert_true(*flag);
}

/* spin_while - run the loop while *v == was (at most ~2 s) */
static void
spin_while(struct fx *fx, const int *v, int was)
{
	int n = 0;

	while (*v == was && n++ < 20000) {
		event_base_loop(fx->relay.base, EVLOOP_NONBLOCK);
		usleep(100);
	}
	assert_int_not_equal(*v, was);
}

static void
commit_cb(int status, const char *id, const char *why, void *arg)
{
	struct fx *fx = arg;

	(void)why;
	assert_int_equal(status, 0);
	memcpy(fx->last_id, id, QUEUE_ID_LEN + 1);
	fx->ncommit++;
}

static const char body[] = "From: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n";

static void
ledger_key_of(unsigned char key[32], int n)
{
	memset(key, 0, 32);
	key[0] = 0xa5;
	key[31] = (unsigned char)n;
}

/*
 * spool_one - spool a message from bob@example.org to rcpt (upstream,
 * with ledger key n) and, with copy, to copy_to; enqueue it unless
 * told not to.
 */
static void
spool_one(struct fx *fx, const char *rcpt, int n, int copy, int enqueue,
    char id_r[QUEUE_ID_LEN + 1])
{
	struct delivery dlv[2];
	struct queue_record rec;
	struct spool_msg *m;
	char err[128];
	int was = fx->ncommit;

	memset(dlv, 0, sizeof(dlv));
	dlv[0].rcpt = (char *)rcpt;
	dlv[0].dest = DLV_UPSTREAM;
	dlv[0].has_ledger_key = 1;
	ledger_key_of(dlv[0].ledger_key, n);
	dlv[1].rcpt = (char *)rcpt;
	dlv[1].dest = DLV_COPY;
	memset(&rec, 0, sizeof(rec));
	rec.sender = (char *)"bob@example.org";
	rec.client = (char *)"helo [192.0.2.1]";
	rec.headers = (char *)"Authentication-Results: x; none\r\n";
	rec.ndlv = copy ? 2 : 1;
	rec.dlv = dlv;
	m = spool_msg_new(fx->relay.spool, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(spool_msg_envelope(m, &rec), 0);
	assert_int_equal(spool_msg_write(m, body, sizeof(body) - 1), 0);
	assert_int_equal(spool_msg_commit(&m, &rec, commit_cb, fx), 0);
	spin_while(fx, &fx->ncommit, was);
	memcpy(id_r, fx->last_id, QUEUE_ID_LEN + 1);
	if (enqueue)
		queue_enqueued(fx->relay.queue, id_r);
}

struct getrec {
	const char		*id;
	struct queue_record	 rec;
	int			 found;
	const unsigned char	*lkey;
	int			 lstatus;
};

static int
txn_get(struct store_txn *tx, void *arg)
{
	struct getrec *g = arg;
	const void *val;
	size_t vlen;
	char err[128];
	int rc;

	queue_record_clear(&g->rec);
	g->found = 0;
	if (g->lkey != NULL && (g->lstatus = ledger_get(tx, g->lkey,
	    NULL)) == -1)
		return (-1);
	if (g->id == NULL)
		return (0);
	rc = store_get(tx, STORE_DB_QUEUE, g->id, strlen(g->id), &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0 || queue_record_decode(val, vlen, &g->rec, err,
	    sizeof(err)) != 0)
		return (-1);
	g->found = 1;
	return (0);
}

/* get_rec - 1 and the record (cleared by the caller) when id is queued */
static int
get_rec(struct fx *fx, const char *id, struct queue_record *rec)
{
	struct getrec g;
	char err[256];

	memset(&g, 0, sizeof(g));
	g.id = id;
	assert_int_equal(store_txn_run(fx->relay.store, 1, txn_get, &g, err,
	    sizeof(err)), 0);
	if (rec != NULL)
		*rec = g.rec;
	else
		queue_record_clear(&g.rec);
	return (g.found);
}

/* ledger_status - the ledger's status for key n */
static int
ledger_status(struct fx *fx, int n)
{
	struct getrec g;
	unsigned char key[32];
	char err[256];

	memset(&g, 0, sizeof(g));
	ledger_key_of(key, n);
	g.lkey = key;
	assert_int_equal(store_txn_run(fx->relay.store, 1, txn_get, &g, err,
	    sizeof(err)), 0);
	return (g.lstatus);
}

static int
spool_file(struct fx *fx, const char *id)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/spool/queue/%s", fx->tmp, id);
	return (stat(path, &st) == 0);
}

/* gone - the message's record is deleted (that comes one batch after the
 * spool file's removal) */
static void
wait_gone(struct fx *fx, const char *id)
{
	int n = 0;

	while (get_rec(fx, id, NULL) && n++ < 20000) {
		event_base_loop(fx->relay.base, EVLOOP_NONBLOCK);
		usleep(100);
	}
	assert_int_equal(get_rec(fx, id, NULL), 0);
}

/* ---- tests ---------------------------------------------------------------- */

static void
test_delivered(void **state)
{
	struct fx *fx = *state;
	char id[QUEUE_ID_LEN + 1];

	spool_one(fx, "alice@example.com", 1, 1, 0, id);
	assert_int_equal(ledger_status(fx, 1), LEDGER_PENDING);
	queue_enqueued(fx->relay.queue, id);
	spin_while(fx, &H_UP->nsend, 0);
	spin_while(fx, &H_COPY->nsend, 0);
	wait_gone(fx, id);
	assert_false(spool_file(fx, id));
	assert_int_equal(ledger_status(fx, 1), LEDGER_DELIVERED);
	assert_int_equal(H_UP->nconnect, 1);
	assert_int_equal(H_UP->nsend, 1);
	assert_string_equal(H_UP->sender, "bob@example.org");
	assert_string_equal(H_UP->rcpt, "alice@example.com");
	assert_true(H_UP->headers);	/* our Authentication-Results */
	assert_true(H_COPY->headers);
	assert_string_equal(H_COPY->rcpt, "alice@example.com");
	assert_int_equal(H_DSN->nconnect, 0);
	/* The upstream's dot waited for the in-flight mark, which was
	 * committed by then; the result's commit cleared it.  copy_to's
	 * transaction is not marked. */
	assert_int_equal(H_UP->nheld, 1);
	assert_int_equal(H_UP->ninflight, 1);
	assert_int_equal(H_COPY->nheld, 0);
	assert_int_equal(count_inflight(), 0);
	assert_int_equal(fx->relay.stats.forwarded, 1);
	assert_int_equal(fx->relay.stats.copied, 1);
	assert_int_equal(fx->relay.stats.deferred, 0);
	assert_int_equal(fx->relay.stats.latency_count, 1);
	/* A second message reuses the idle connection. */
	spool_one(fx, "carol@example.com", 2, 0, 1, id);
	spin_while(fx, &H_UP->nsend, 1);
	wait_gone(fx, id);
	assert_int_equal(H_UP->nconnect, 1);
	assert_int_equal(fx->relay.stats.forwarded, 2);
	/* Enqueued twice: scheduled once. */
	queue_enqueued(fx->relay.queue, id);
	spin(fx, 50);
	assert_int_equal(H_UP->nsend, 2);
}

static void
test_deferred(void **state)
{
	struct fx *fx = *state;
	struct queue_record rec;
	char id[QUEUE_ID_LEN + 1], err[128];
	int64_t now = (int64_t)time(NULL);

	H_UP->code = 451;
	spool_one(fx, "alice@example.com", 1, 0, 1, id);
	spin_while(fx, &H_UP->nsend, 0);
	spin(fx, 400);	/* past the results' batching delay (queue_work.c) */
	assert_int_equal(get_rec(fx, id, &rec), 1);
	assert_int_equal(rec.dlv[0].state, DLV_PENDING);
	assert_int_equal(rec.dlv[0].attempts, 1);
	/* retry_initial 100 s, +-20 % */
	assert_true(rec.dlv[0].next_try >= now + 80);
	assert_true(rec.dlv[0].next_try <= now + 121);
	assert_non_null(rec.dlv[0].last_reply);
	assert_string_equal(rec.dlv[0].last_reply, "451 4.0.0 fake says 451");
	queue_record_clear(&rec);
	assert_true(spool_file(fx, id));
	assert_int_equal(ledger_status(fx, 1), LEDGER_PENDING);
	assert_int_equal(fx->relay.stats.deferred, 1);
	assert_int_equal(fx->relay.stats.forwarded, 0);
	/* Not tried again before its time. */
	spin(fx, 100);
	assert_int_equal(H_UP->nsend, 1);
	/* A second 4xx: the delay doubles. */
	assert_int_equal(queue_retry(fx->relay.queue, id, err, sizeof(err)), 0);
	spin_while(fx, &H_UP->nsend, 1);
	spin(fx, 400);
	assert_int_equal(get_rec(fx, id, &rec), 1);
	assert_int_equal(rec.dlv[0].attempts, 2);
	assert_true(rec.dlv[0].next_try >= now + 160);
	assert_true(rec.dlv[0].next_try <= now + 242);
	queue_record_clear(&rec);
	/* ferryctl retry: now, and the upstream takes it. */
	H_UP->code = 250;
	assert_int_equal(queue_retry(fx->relay.queue, id, err, sizeof(err)), 0);
	spin_while(fx, &H_UP->nsend, 2);
	wait_gone(fx, id);
	assert_int_equal(ledger_status(fx, 1), LEDGER_DELIVERED);
	assert_int_equal(fx->relay.stats.forwarded, 1);
	assert_int_equal(fx->relay.stats.deferred, 2);
	assert_int_equal(queue_retry(fx->relay.queue, "0123456789abcdef", err,
	    sizeof(err)), -1);
	assert_string_equal(err, "unknown id");
}

static void
test_bounced(void **state)
{
	struct fx *fx = *state;
	char id[QUEUE_ID_LEN + 1];

	H_UP->code = 550;
	spool_one(fx, "alice@example.com", 1, 0, 1, id);
	spin_while(fx, &H_UP->nsend, 0);
	/* The DSN goes to the sender over dsn_relay, from <>. */
	spin_while(fx, &H_DSN->nsend, 0);
	assert_string_equal(H_DSN->sender, "");
	assert_string_equal(H_DSN->rcpt, "bob@example.org");
	assert_false(H_DSN->headers);	/* sent as made */
	wait_gone(fx, id);
	assert_false(spool_file(fx, id));
	assert_int_equal(ledger_status(fx, 1), LEDGER_NONE);
	assert_int_equal(fx->relay.stats.bounced, 1);
	assert_int_equal(fx->relay.stats.dsn_sent, 1);
	assert_int_equal(fx->relay.stats.forwarded, 0);
	/* The DSN itself is finished too (and not counted as forwarded). */
	spin(fx, 100);
	assert_int_equal(H_DSN->nsend, 1);
	assert_int_equal(H_UP->nsend, 1);
}

static void
test_paused(void **state)
{
	struct fx *fx = *state;
	struct queue_record rec;
	char id[3][QUEUE_ID_LEN + 1], err[128];
	int64_t now = (int64_t)time(NULL), next = 0;
	int i;

	H_UP->refuse = 1;
	for (i = 0; i < 3; i++)
		spool_one(fx, "alice@example.com", 1 + i, 1, 1, id[i]);
	spin(fx, 200);
	/* One attempt for the whole destination, not one per message. */
	assert_int_equal(H_UP->nconnect, 1);
	assert_int_equal(H_UP->nsend, 0);
	/* copy_to is its own destination: not held up. */
	assert_int_equal(H_COPY->nsend, 3);
	assert_int_equal(fx->relay.stats.copied, 3);
	/* Every waiting message deferred once, until the probe. */
	assert_int_equal(fx->relay.stats.deferred, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(get_rec(fx, id[i], &rec), 1);
		assert_int_equal(rec.ndlv, 2);
		assert_int_equal(rec.dlv[0].state, DLV_PENDING);
		assert_int_equal(rec.dlv[0].attempts, 1);
		assert_int_equal(rec.dlv[1].state, DLV_SENT);
		assert_true(rec.dlv[0].next_try >= now + 80);
		assert_true(rec.dlv[0].next_try <= now + 121);
		if (i > 0)	/* the same pause for all */
			assert_true(rec.dlv[0].next_try == next);
		next = rec.dlv[0].next_try;
		assert_non_null(rec.dlv[0].last_reply);
		assert_non_null(strstr(rec.dlv[0].last_reply,
		    "Connection refused"));
		queue_record_clear(&rec);
		assert_int_equal(ledger_status(fx, 1 + i), LEDGER_PENDING);
	}
	/* A message arriving while it is paused waits too. */
	spool_one(fx, "dave@example.com", 9, 0, 1, id[0]);
	spin(fx, 100);
	assert_int_equal(H_UP->nconnect, 1);
	assert_int_equal(fx->relay.stats.deferred, 4);
	/* The upstream is back; ferryctl retry all: one connection
	 * delivers everything. */
	H_UP->refuse = 0;
	assert_int_equal(queue_retry(fx->relay.queue, NULL, err, sizeof(err)),
	    0);
	spin(fx, 300);
	assert_int_equal(H_UP->nconnect, 2);
	assert_int_equal(H_UP->nsend, 4);
	assert_int_equal(fx->relay.stats.forwarded, 4);
	wait_gone(fx, id[0]);
	wait_gone(fx, id[2]);
	for (i = 0; i < 3; i++)
		assert_int_equal(ledger_status(fx, 1 + i), LEDGER_DELIVERED);
}

static void
test_hold_release(void **state)
{
	struct fx *fx = *state;
	struct queue_record rec;
	char id[QUEUE_ID_LEN + 1], err[128];

	spool_one(fx, "alice@example.com", 1, 0, 1, id);
	/* Held before the connection is up: never sent. */
	assert_int_equal(queue_hold(fx->relay.queue, id, err, sizeof(err)), 0);
	spin(fx, 100);
	assert_int_equal(H_UP->nsend, 0);
	assert_int_equal(get_rec(fx, id, &rec), 1);
	assert_true(rec.flags & QR_HELD);
	assert_int_equal(rec.dlv[0].attempts, 0);
	queue_record_clear(&rec);
	assert_int_equal(ledger_status(fx, 1), LEDGER_PENDING);
	assert_int_equal(queue_retry(fx->relay.queue, id, err, sizeof(err)),
	    -1);
	assert_string_equal(err, "held: release it first");
	/* retry all leaves held messages alone */
	assert_int_equal(queue_retry(fx->relay.queue, NULL, err, sizeof(err)),
	    0);
	spin(fx, 100);
	assert_int_equal(H_UP->nsend, 0);
	assert_int_equal(queue_release(fx->relay.queue, id, err, sizeof(err)),
	    0);
	assert_int_equal(get_rec(fx, id, &rec), 1);
	assert_false(rec.flags & QR_HELD);
	queue_record_clear(&rec);
	spin_while(fx, &H_UP->nsend, 0);
	wait_gone(fx, id);
	assert_int_equal(ledger_status(fx, 1), LEDGER_DELIVERED);
	assert_int_equal(queue_hold(fx->relay.queue, id, err, sizeof(err)), -1);
	assert_string_equal(err, "unknown id");
	assert_int_equal(queue_release(fx->relay.queue, "0123456789abcdef",
	    err, sizeof(err)), -1);
	assert_string_equal(err, "unknown id");
}

static void
test_delete(void **state)
{
	struct fx *fx = *state;
	char id[QUEUE_ID_LEN + 1], err[128];

	H_UP->code = 451;
	spool_one(fx, "alice@example.com", 1, 0, 1, id);
	spin_while(fx, &H_UP->nsend, 0);
	spin(fx, 50);
	assert_int_equal(queue_delete(fx->relay.queue, id, err, sizeof(err)),
	    0);
	assert_int_equal(get_rec(fx, id, NULL), 0);
	assert_false(spool_file(fx, id));
	/* The relay gave up on it: the next delta pass copies it. */
	assert_int_equal(ledger_status(fx, 1), LEDGER_NONE);
	assert_int_equal(queue_delete(fx->relay.queue, id, err, sizeof(err)),
	    -1);
	assert_string_equal(err, "unknown id");
}

/* A restart loads what is queued: a message spooled but never enqueued
 * is delivered by the next queue_new(). */
static void
test_load(void **state)
{
	struct fx *fx = *state;
	char id[QUEUE_ID_LEN + 1], err[256];

	spool_one(fx, "alice@example.com", 1, 0, 0, id);
	spin(fx, 50);
	assert_int_equal(H_UP->nsend, 0);
	queue_free(&fx->relay.queue);
	assert_int_equal(queue_new(&fx->relay.queue, &fx->relay, err,
	    sizeof(err)), 0);
	spin_while(fx, &H_UP->nsend, 0);
	wait_gone(fx, id);
	assert_int_equal(ledger_status(fx, 1), LEDGER_DELIVERED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_delivered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deferred, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_release, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load, setup, teardown),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
