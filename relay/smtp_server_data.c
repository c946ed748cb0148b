/*
 * smtp_server_data.c - DATA in the relay's SMTP server (DESIGN.md §4, §5):
 * from the 354 to the final reply.  The envelope (the queue record, every
 * delivery pending) and our Received: header go into the spool file
 * first; the message is then cut by smtp_parse.c's DATA state machine
 * (dot-unstuffing, the end marker, bare CR/LF, NUL, the size and line
 * limits)
 * and passed through checks.c (SPF, DKIM, forged Authentication-Results)
 * to the spool, never held in memory.  After the "." the checks give
 * their verdict; a refusal is answered at once, a message whose relay
 * key is already in the dedupe table is answered 250 and dropped, any
 * other is committed and answered 250 only once the spool says its file
 * is durable (promise 1: persist before acknowledging; the spool files
 * are the truth, and the LMDB record that follows can be rebuilt from
 * one: spool.h, spool_msg_early).  Then the commands
 * the client pipelined after the "." are read.
 *
 * While the commit runs the session reads nothing (S_COMMIT), so replies
 * stay in order; a client that leaves meanwhile is marked dead and the
 * session freed when the spool answers, since the spool holds it as its
 * callback's argument.  Loop thread only.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "addr_stats.h"
#include "log.h"
#include "rfc5322.h"
#include "route.h"
#include "srs.h"
#include "smtp_server_p.h"

static void	session_checks_done(struct smtp_session *, const char *,
		    enum reject_reason);

/* ---- the start of DATA ------------------------------------------------- */

/*
 * tx_route - where each recipient goes (route.h): choice[i], and the
 * log line of every one that goes to the old host only
 */
static int
tx_route(struct smtp_session *s, struct smtp_tx *tx,
    struct route_choice *choice)
{
	struct relay *r = s->server->relay;
	unsigned char *skip = NULL;
	char err[256];
	size_t i;
	int rc;

	/* Our SRS addresses (bounces to reverse) keep their own route. */
	if (r->srs != NULL && tx->rcpts.count > 0) {
		if ((skip = calloc(tx->rcpts.count, 1)) == NULL)
			return (-1);
		for (i = 0; i < tx->rcpts.count; i++)
			skip[i] = srs_is_srs(r->srs, tx->rcpts.items[i]) != 0;
	}
	rc = relay_routes_decide(r->routes, r->store, skip, tx->rcpts.items,
	    tx->rcpts.count, choice, err, sizeof(err));
	free(skip);
	if (rc == -1) {
		log_warnx("%s: cannot route the recipients: %s",
		    spool_msg_id(tx->msg), err);
		return (-1);
	}
	for (i = 0; i < tx->rcpts.count; i++) {
		const struct route_choice *c = &choice[i];

		if (c->local && c->rollback)
			log_info("%s: to=<%s>, route=copy_to (its domain is in "
			    "rollback)", spool_msg_id(tx->msg),
			    tx->rcpts.items[i]);
		else if (c->local)
			log_info("%s: to=<%s>, route=copy_to (wave %u not "
			    "migrated)", spool_msg_id(tx->msg),
			    tx->rcpts.items[i], c->wave);
		else if (c->rollback)
			log_warnx("%s: to=<%s>: its domain is in rollback but "
			    "[forward] copy_to is not set: forwarded upstream",
			    spool_msg_id(tx->msg), tx->rcpts.items[i]);
	}
	return (0);
}

/*
 * tx_envelope - the queue record of the transaction (all pending): an
 * upstream delivery per recipient routed to the new provider, and with
 * copy_to one copy_to delivery per recipient (the only one of a
 * recipient routed to the old host)
 */
static int
tx_envelope(struct smtp_session *s, struct smtp_tx *tx)
{
	struct config *cfg = server_cfg(s->server);
	struct queue_record *rec = &tx->rec;
	struct route_choice *choice;
	size_t i, k, n, ncopy = cfg->forward.copy_to.count > 0 ? 1 : 0;
	time_t now = time(NULL);
	char client[512];
	int rc = -1;

	queue_record_clear(rec);
	snprintf(client, sizeof(client), "%s [%s]", s->helo, s->addr);
	rec->arrived = now;
	if ((rec->sender = strdup(tx->sender)) == NULL ||
	    (rec->client = strdup(client)) == NULL)
		return (-1);
	if ((choice = calloc(tx->rcpts.count ? tx->rcpts.count : 1,
	    sizeof(*choice))) == NULL)
		return (-1);
	if (tx_route(s, tx, choice) == -1)
		goto out;
	n = tx->rcpts.count * (1 + ncopy);
	if ((rec->dlv = calloc(n, sizeof(*rec->dlv))) == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		struct delivery *d;

		k = i % tx->rcpts.count;
		if (i < tx->rcpts.count && choice[k].local)
			continue;	/* to the old host only */
		d = &rec->dlv[rec->ndlv];
		d->dest = i < tx->rcpts.count ? DLV_UPSTREAM : DLV_COPY;
		d->state = DLV_PENDING;
		d->next_try = now;
		if ((d->rcpt = strdup(tx->rcpts.items[k])) == NULL)
			goto out;
		rec->ndlv++;
	}
	rc = 0;
out:
	free(choice);
	return (rc);
}

/* received_header - our trace header, RFC 5321 §4.4 */
static int
received_header(struct smtp_session *s, struct smtp_tx *tx, char *buf,
    size_t len)
{
	const char *proto;
	char date[64], forpart[SMTP_PATH_MAX + 16] = "";
	int n;

	if (tx->smtputf8)
		proto = s->tls ? "UTF8SMTPS" : "UTF8SMTP";
	else if (s->esmtp)
		proto = s->tls ? "ESMTPS" : "ESMTP";
	else
		proto = s->tls ? "SMTPS" : "SMTP";
	/* English day and month names whatever the locale (rfc5322.h) */
	(void)rfc5322_date(time(NULL), date, sizeof(date));
	/* One recipient only: naming several would disclose them all. */
	if (tx->rcpts.count == 1)
		snprintf(forpart, sizeof(forpart), "\r\n\tfor <%s>",
		    tx->rcpts.items[0]);
	n = snprintf(buf, len, "Received: from %s ([%s])\r\n"
	    "\tby %s (mailferry) with %s id %s%s;\r\n\t%s\r\n",
	    s->helo, s->addr, s->server->hostname, proto,
	    spool_msg_id(tx->msg), forpart, date);
	return (n < 0 || (size_t)n >= len ? -1 : n);
}

/* tx_sink - the bytes checks.c passes on go to the spool file */
static int
tx_sink(const void *data, size_t len, void *arg)
{
	struct smtp_tx *tx = arg;

	return (spool_msg_write(tx->msg, data, len));
}

/*
 * session_data_start - DATA accepted: open the spool file, write the
 * envelope and our Received: header, start the checks, answer 354
 */
void
session_data_start(struct smtp_session *s)
{
	struct config *cfg = server_cfg(s->server);
	struct smtp_tx *tx = s->tx;
	char err[256], hdr[1024];
	int n;

	if ((tx->msg = spool_msg_new(s->server->relay->spool, err,
	    sizeof(err))) == NULL) {
		log_warnx("spool: %s", err);
		session_reply(s, "451 4.3.0 Local error, try again later");
		session_count_reject(s, REJ_TEMPFAIL);
		session_reset(s);
		return;
	}
	if (tx_envelope(s, tx) == -1 ||
	    spool_msg_envelope(tx->msg, &tx->rec) == -1 ||
	    (n = received_header(s, tx, hdr, sizeof(hdr))) == -1 ||
	    spool_msg_write(tx->msg, hdr, (size_t)n) == -1 ||
	    checks_data_begin(tx->checks, spool_msg_id(tx->msg), tx_sink,
	    tx) == -1) {
		log_warnx("%s: cannot start the spool file",
		    spool_msg_id(tx->msg));
		session_reply(s, "451 4.3.0 Local error, try again later");
		session_count_reject(s, REJ_TEMPFAIL);
		session_reset(s);
		return;
	}
	log_info("%s: client=%s[%s]%s", spool_msg_id(tx->msg), s->helo,
	    s->addr, s->tls ? " tls=yes" : "");
	smtp_data_init(&tx->data, cfg->relay.max_message_size,
	    cfg->relay.max_line_length);
	session_state(s, S_DATA);
	session_set_timeouts(s, cfg->relay.data_timeout);
	session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* ---- the end of DATA and the commit ------------------------------------ */

/* sender_domain - for the drain view: the domain of MAIL FROM, or NULL */
static const char *
sender_domain(const struct smtp_tx *tx)
{
	const char *at;

	if (tx == NULL || (at = strrchr(tx->sender, '@')) == NULL)
		return (NULL);
	return (at + 1);
}

/*
 * tx_answered - the transaction's final reply is out (or the client is
 * gone): free it, go on with what the client pipelined after the ".".
 */
static void
tx_answered(struct smtp_session *s)
{
	if (s->dead) {
		session_free(s);
		return;
	}
	session_flush(s);
	session_reset(s);
	session_set_timeouts(s, server_cfg(s->server)->relay.timeout);
	if (s->quit_after_tx) {
		session_reply(s, "421 4.3.2 %s Service shutting down",
		    s->server->hostname);
		session_close(s);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);
	session_process(s);	/* commands pipelined after the "." */
	session_flush(s);
}

/* dup_addr_txn - the per-address counters of a duplicate (addr_stats.h) */
static int
dup_addr_txn(struct store_txn *stx, void *arg)
{
	const struct smtp_tx *tx = arg;
	size_t i;

	for (i = 0; i < tx->rcpts.count; i++)
		if (addr_stats_note(stx, tx->rcpts.items[i], ADDR_DUPLICATE,
		    store_txn_now(stx)) == -1)
			return (-1);
	return (0);
}

/*
 * tx_duplicate - the message is one we queued before (same relay key):
 * 250, so the sender stops retrying, but nothing is forwarded again.
 */
static void
tx_duplicate(struct smtp_session *s, const char *id, const char *first)
{
	struct relay *relay = s->server->relay;
	struct smtp_tx *tx = s->tx;
	time_t now = time(NULL);

	relay->stats.duplicates++;
	relay->stats.last_inbound = now;
	/* One short write on the loop, as drain_save() does: a duplicate
	 * has no spool commit to ride along with, and is rare. */
	if (tx != NULL && relay->store != NULL) {
		char err[256];

		if (store_txn_run(relay->store, 0, dup_addr_txn, tx, err,
		    sizeof(err)) != 0)
			log_warnx("%s: per-address counters: %s", id, err);
	}
	if (relay->drain != NULL)
		drain_note(relay->drain, now, sender_domain(tx), s->addr);
	log_info("%s: duplicate of %s; from=<%s> nrcpt=%zu, not forwarded",
	    id, first, tx ? tx->sender : "?", tx ? tx->rcpts.count : 0);
	if (!s->dead)
		session_reply(s, "250 2.0.0 Ok: duplicate of %s, already "
		    "queued", first);
	tx_answered(s);
}

/*
 * indexed_cb - the record of an acknowledged message is committed: the
 * queue may send it now.  The session may be long gone (arg: the relay).
 * 1: another copy's record won the race (spool.c); the spool removed
 * this one's file and logged it; -1 came with durable_cb's -1.
 */
static void
indexed_cb(int status, const char *id, const char *why, void *arg)
{
	struct relay *relay = arg;

	(void)why;
	if (status == 1)
		relay->stats.duplicates++;
	else if (status == 0 && relay->queue != NULL)
		queue_enqueued(relay->queue, id);
}

/* durable_cb - the spool file is durable (0) or failed (-1): answer */
static void
durable_cb(int status, const char *id, const char *why, void *arg)
{
	struct smtp_session *s = arg;
	struct relay *relay = s->server->relay;
	struct smtp_tx *tx = s->tx;
	time_t now = time(NULL);

	(void)why;
	if (status == 0) {
		relay->stats.accepted++;
		relay->stats.last_inbound = now;
		if (relay->drain != NULL)
			drain_note(relay->drain, now, sender_domain(tx),
			    s->addr);
		log_info("%s: from=<%s> size=%llu nrcpt=%zu%s%s", id,
		    tx ? tx->sender : "?",
		    (unsigned long long)(tx ? tx->rec.size : 0),
		    tx ? tx->rcpts.count : (size_t)0,
		    tx && checks_summary(tx->checks)[0] ? " " : "",
		    tx ? checks_summary(tx->checks) : "");
		if (!s->dead)
			session_reply(s, "250 2.0.0 Ok: queued as %s", id);
		else
			log_info("%s: client gone before the reply; queued "
			    "all the same", id);
	} else {
		session_count_reject(s, REJ_TEMPFAIL);
		if (!s->dead && session_store_full(s))
			session_reply(s, "452 4.3.1 Insufficient system "
			    "storage");
		else if (!s->dead)
			session_reply(s, "451 4.3.0 Local error, try again "
			    "later");
	}
	tx_answered(s);
}

/*
 * tx_keys - after the checks: our Authentication-Results for the queue
 * record, the relay key (dedupe) and a ledger key per upstream
 * recipient.  -1 only when out of memory.
 */
static int
tx_keys(struct smtp_tx *tx)
{
	struct queue_record *rec = &tx->rec;
	char ar[4096];
	size_t i;

	if (checks_authres(tx->checks, ar, sizeof(ar)) == 1 &&
	    (rec->headers = strdup(ar)) == NULL)
		return (-1);
	if (checks_relay_key(tx->checks, tx->sender,
	    (const char *const *)tx->rcpts.items, tx->rcpts.count,
	    rec->relay_key) == 0)
		rec->has_relay_key = 1;
	for (i = 0; i < rec->ndlv; i++) {
		struct delivery *d = &rec->dlv[i];

		if (d->dest == DLV_UPSTREAM &&
		    checks_ledger_key(tx->checks, d->rcpt, d->ledger_key) == 0)
			d->has_ledger_key = 1;
	}
	return (0);
}

/* checks_done_cb - SPF and DKIM are in: refuse, drop a duplicate, or
 * commit */
static void
checks_done_cb(struct msg_checks *c, void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;
	const char *refusal, *id = spool_msg_id(tx->msg);
	char first[QUEUE_ID_LEN + 1], err[256];
	int rc;

	if (checks_removed(c) > 0)
		log_info("%s: dropped %zu forged Authentication-Results "
		    "field(s) naming us", id, checks_removed(c));
	if ((refusal = checks_refusal(c)) != NULL) {
		session_checks_done(s, refusal, REJ_POLICY);
		return;
	}
	if (tx_keys(tx) == -1) {
		log_warnx("%s: out of memory after the checks", id);
		session_checks_done(s, "451 4.3.0 Local error, try again "
		    "later", REJ_TEMPFAIL);
		return;
	}
	if (tx->rec.has_relay_key) {
		rc = spool_dedupe_lookup(s->server->relay->spool,
		    tx->rec.relay_key, first, err, sizeof(err));
		if (rc == 1) {
			/* Keep the id for the log: the spool file goes. */
			char mine[QUEUE_ID_LEN + 1];

			str_copy(mine, id, sizeof(mine));
			spool_msg_abort(&tx->msg);
			tx_duplicate(s, mine, first);
			return;
		}
		if (rc == -1)	/* the commit's put still catches a copy */
			log_warnx("%s: dedupe look-up: %s", id, err);
	}
	session_checks_done(s, NULL, REJ_NREASONS);
}

/* session_checks_done - refuse (refusal, counted as why) or commit */
static void
session_checks_done(struct smtp_session *s, const char *refusal,
    enum reject_reason why)
{
	struct smtp_tx *tx = s->tx;

	if (refusal != NULL) {
		session_count_reject(s, why);
		if (!s->dead)
			session_reply(s, "%s", refusal);
		tx_answered(s);
		return;
	}
	/* durable_cb answers: 250 once the spool file is durable; the
	 * record follows (spool_msg_early), then indexed_cb queues it. */
	spool_msg_early(tx->msg, durable_cb, s);
	spool_msg_commit(&tx->msg, &tx->rec, indexed_cb, s->server->relay);
}

/* data_end - the "." has arrived (or DATA failed): answer or commit */
static void
data_end(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	const char *id = spool_msg_id(tx->msg);

	switch (tx->data.error) {
	case SMTP_DATA_OK:
		break;
	case SMTP_DATA_TOO_BIG:
		log_info("%s: reject: message too big (over %llu bytes) from "
		    "%s[%s]", id, (unsigned long long)tx->data.max_size,
		    s->helo, s->addr);
		session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		session_count_reject(s, REJ_SIZE);
		goto refused;
	case SMTP_DATA_LINE_TOO_LONG:
		log_info("%s: reject: line longer than %llu bytes from %s[%s]",
		    id, (unsigned long long)tx->data.max_line, s->helo,
		    s->addr);
		session_reply(s, "552 5.3.4 Message line too long");
		session_count_reject(s, REJ_SIZE);
		goto refused;
	case SMTP_DATA_NUL:
		/* Refused, not stripped: a hop that drops NULs reads
		 * "<CR><LF><NUL>.<CR><LF>" as the end (smuggling). */
		log_info("%s: reject: NUL character in message from %s[%s]",
		    id, s->helo, s->addr);
		session_reply(s, "554 5.6.0 Message contains NUL characters");
		session_count_reject(s, REJ_SYNTAX);
		goto refused;
	case SMTP_DATA_BARE_NL:
		log_info("%s: reject: bare CR or LF in message from %s[%s]", id,
		    s->helo, s->addr);
		session_reply(s, "521 5.5.2 Bare CR or LF in message; use "
		    "CRLF");
		session_count_reject(s, REJ_BARE_LF);
		session_tx_free(&s->tx);
		session_close(s);
		return;
	}
	if (checks_sink_failed(tx->checks)) {
		log_warnx("%s: spool write failed", id);
		session_reply(s, "451 4.3.0 Local error, try again later");
		session_count_reject(s, REJ_TEMPFAIL);
		goto refused;
	}
	session_state(s, S_COMMIT);	/* first: stress mode spares COMMIT */
	session_set_timeouts(s, server_cfg(s->server)->relay.timeout);
	bufferevent_disable(s->bev, EV_READ);
	checks_data_end(tx->checks, checks_done_cb, s);
	return;
refused:
	session_reset(s);
	session_set_timeouts(s, server_cfg(s->server)->relay.timeout);
	if (s->quit_after_tx) {
		session_reply(s, "421 4.3.2 %s Service shutting down",
		    s->server->hostname);
		session_close(s);
	}
}

/* session_data - stream all the input holds; 1 when DATA has ended */
int
session_data(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct smtp_tx *tx = s->tx;
	struct evbuffer_iovec v[8];
	size_t consumed, used, outlen, chunk;
	int nv, i;

	while (evbuffer_get_length(in) > 0 && !tx->data.done &&
	    tx->data.error != SMTP_DATA_BARE_NL) {
		consumed = 0;
		nv = evbuffer_peek(in, -1, NULL, v, 8);
		if (nv > 8)
			nv = 8;	/* the rest on the next turn of this loop */
		for (i = 0; i < nv && !tx->data.done &&
		    tx->data.error != SMTP_DATA_BARE_NL; i++) {
			const unsigned char *p = v[i].iov_base;
			size_t left = v[i].iov_len;

			while (left > 0 && !tx->data.done &&
			    tx->data.error != SMTP_DATA_BARE_NL) {
				chunk = left < SMTP_SCRATCH ? left : SMTP_SCRATCH;
				used = smtp_data_feed(&tx->data, p, chunk,
				    s->server->scratch, &outlen);
				if (outlen > 0)
					checks_data(tx->checks,
					    s->server->scratch, outlen);
				p += used;
				left -= used;
				consumed += used;
			}
		}
		evbuffer_drain(in, consumed);
	}
	if (tx->data.done || tx->data.error == SMTP_DATA_BARE_NL) {
		data_end(s);
		return (1);
	}
	return (0);
}
