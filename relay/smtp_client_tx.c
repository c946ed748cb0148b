/*
 * smtp_client_tx.c - one transaction of the relay's outbound SMTP client
 * (DESIGN.md §5): the checks made before anything is sent (address
 * bytes, SMTPUTF8, the server's SIZE), RSET on a reused connection, MAIL,
 * one RCPT per recipient and DATA written in one go when the server
 * offers PIPELINING (RFC 2920) or one per round trip, the message
 * streamed from the spool file with dot-stuffing (our header lines
 * first), and the results: one struct smtp_reply per recipient, made up
 * (synthetic) when the connection breaks or we refuse to go on.
 *
 * Memory: the body is read in BODY_CHUNK pieces only while less than
 * BODY_HIWAT bytes wait in the output buffer, so it does not grow with
 * message size (promise 5).  A message that cannot be read in full never
 * gets its final dot: the connection is dropped, the message stays
 * queued.  Loop thread only.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "smtp_client_p.h"
#include "util.h"

static uint64_t	tx_total(const struct smtp_tx *tx);

/* elapsed_since - seconds since t0 (CLOCK_MONOTONIC) */
static double
elapsed_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return ((double)(now.tv_sec - t0->tv_sec) +
	    (double)(now.tv_nsec - t0->tv_nsec) / 1e9);
}

static int
needs_utf8(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return (1);
	return (0);
}

/* bad_address - control characters would let an address inject commands
 * (a quoted local part may hold blanks and angle brackets: allowed) */
static int
bad_address(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return (1);
	return (0);
}

static enum cmd_kind
cmd_kind(const struct smtp_client *c, size_t k, size_t *rcpt_r)
{
	if (c->has_rset) {
		if (k == 0)
			return (CMD_RSET);
		k--;
	}
	if (k == 0)
		return (CMD_MAIL);
	if (k <= c->tx->nrcpt) {
		*rcpt_r = k - 1;
		return (CMD_RCPT);
	}
	return (CMD_DATA);
}

/* write_cmd - write command k of the transaction */
static int
write_cmd(struct smtp_client *c, size_t k)
{
	struct smtp_tx *tx = c->tx;
	char size[32] = "";
	size_t i = 0;
	int utf8 = 0;

	switch (cmd_kind(c, k, &i)) {
	case CMD_RSET:
		return (client_send_line(c, "RSET"));
	case CMD_MAIL:
		utf8 = needs_utf8(tx->sender);
		for (i = 0; i < tx->nrcpt; i++)
			utf8 |= needs_utf8(tx->rcpt[i]);
		if (c->ext & SMTP_EXT_SIZE)
			snprintf(size, sizeof(size), " SIZE=%llu",
			    (unsigned long long)tx_total(tx));
		/* BODY=8BITMIME whenever offered: it says the body MAY hold
		 * 8-bit bytes, true of any message we relay, and saves
		 * reading the message twice to find out. */
		return (client_send_line(c, "MAIL FROM:<%s>%s%s%s", tx->sender,
		    size, (c->ext & SMTP_EXT_8BITMIME) ? " BODY=8BITMIME" : "",
		    utf8 ? " SMTPUTF8" : ""));
	case CMD_RCPT:
		return (client_send_line(c, "RCPT TO:<%s>", tx->rcpt[i]));
	case CMD_DATA:
		return (client_send_line(c, "DATA"));
	}
	return (-1);
}

static int
cmd_timeout(const struct smtp_client *c, size_t k)
{
	size_t i;

	switch (cmd_kind(c, k, &i)) {
	case CMD_DATA:
		return (TMO_DATA_INIT);
	case CMD_RCPT:
		return (TMO_RCPT);
	default:
		return (TMO_MAIL);
	}
}

/* client_tx_finish - hand the results over; the connection stays or goes */
void
client_tx_finish(struct smtp_client *c)
{
	struct smtp_tx *tx = c->tx;
	smtp_tx_cb *cb = c->txcb;
	void *arg = c->txarg;

	tx->elapsed = elapsed_since(c->ntx == 1 ? &c->t_connect : &c->t_tx);
	c->tx = NULL;
	c->txcb = NULL;
	if (tx->closed) {
		client_kill(c);
	} else {
		client_state(c, CS_IDLE);
		client_set_timeouts(c, 0, 0);
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		if (c->idle_timeout > 0) {
			struct timeval tv = { c->idle_timeout, 0 };
			event_add(c->timer, &tv);
		}
	}
	if (cb != NULL)
		cb(c, tx, arg);
}

/*
 * client_tx_fail_rest - every recipient without a result yet gets this one
 * (synthetic); used when the connection breaks or we refuse to go on.
 */
void
client_tx_fail_rest(struct smtp_client *c, int code, const char *status,
    const char *fmt, ...)
{
	struct smtp_tx *tx = c->tx;
	struct smtp_reply r;
	char text[SMTP_REPLY_TEXTMAX];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	client_reply_synth(&r, code, status, text);
	for (i = 0; i < tx->nrcpt; i++)
		if (tx->result[i].code == 0)
			tx->result[i] = r;
}

static const char *
state_doing(const struct smtp_client *c)
{
	size_t i;

	switch (c->state) {
	case CS_TX:
		switch (cmd_kind(c, c->cmd_done, &i)) {
		case CMD_RSET:
			return ("RSET");
		case CMD_MAIL:
			return ("MAIL FROM");
		case CMD_RCPT:
			return ("RCPT TO");
		case CMD_DATA:
			return ("DATA");
		}
		break;
	case CS_BODY:
		return ("message body");
	case CS_DOT:
		return ("end of data");
	default:
		break;
	}
	return ("commands");
}

/* client_tx_broken - the connection died during a transaction */
void
client_tx_broken(struct smtp_client *c, const char *what)
{
	client_tx_fail_rest(c, 451, "4.4.2", "lost connection with %s while "
	    "sending %s: %s", c->peer, state_doing(c), what);
	c->tx->closed = 1;
	client_tx_finish(c);
}

/* tx_total - bytes of the message as sent: our header lines + the file */
static uint64_t
tx_total(const struct smtp_tx *tx)
{
	return ((uint64_t)(tx->headers != NULL ? tx->hlen : 0) + tx->size);
}

/*
 * body_read - up to want bytes of the message at position pos of the
 * stream "headers, then file" into buf; the number read, 0 at a short
 * file, -1 on a read error (errno set).
 */
static ssize_t
body_read(const struct smtp_tx *tx, uint64_t pos, char *buf, size_t want)
{
	size_t hlen = tx->headers != NULL ? tx->hlen : 0;
	ssize_t n;

	if (pos < hlen) {
		size_t k = hlen - (size_t)pos;

		if (k > want)
			k = want;
		memcpy(buf, tx->headers + pos, k);
		return ((ssize_t)k);
	}
	do
		n = pread(tx->fd, buf, want, (off_t)(tx->offset + (pos - hlen)));
	while (n == -1 && errno == EINTR);
	return (n);
}

/*
 * client_body_fill - stream more of the message, dot-stuffed, up to
 * BODY_HIWAT
 */
void
client_body_fill(struct smtp_client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct smtp_tx *tx = c->tx;
	uint64_t total = tx_total(tx);
	char in[BODY_CHUNK], stuffed[2 * BODY_CHUNK];
	ssize_t n;
	size_t i, o, end;

	while (evbuffer_get_length(out) < BODY_HIWAT && c->body_pos < total) {
		uint64_t left = total - c->body_pos;
		size_t want = left < sizeof(in) ? (size_t)left : sizeof(in);

		n = body_read(tx, c->body_pos, in, want);
		if (n <= 0) {
			/* Never send the final dot of a truncated message:
			 * drop the connection, the message stays queued. */
			client_tx_fail_rest(c, 451, "4.3.0", "cannot read the "
			    "spooled message: %s", n == 0 ? "file too short" :
			    strerror(errno));
			tx->closed = 1;
			client_tx_finish(c);
			return;
		}
		/* Line by line (memchr), one copy per line. */
		for (i = 0, o = 0; i < (size_t)n; i = end) {
			const char *nl = memchr(in + i, '\n', (size_t)n - i);

			end = nl != NULL ? (size_t)(nl - in) + 1 : (size_t)n;
			if (c->body_bol && in[i] == '.')
				stuffed[o++] = '.';
			memcpy(stuffed + o, in + i, end - i);
			o += end - i;
			c->body_bol = (nl != NULL);
		}
		if (n >= 2) {
			c->body_last[0] = in[n - 2];
			c->body_last[1] = in[n - 1];
		} else {
			c->body_last[0] = c->body_last[1];
			c->body_last[1] = in[0];
		}
		c->body_pos += (uint64_t)n;
		if (evbuffer_add(out, stuffed, o) == -1) {
			client_tx_fail_rest(c, 451, "4.3.0", "out of memory");
			tx->closed = 1;
			client_tx_finish(c);
			return;
		}
	}
	if (c->body_pos < total || tx->hold_dot)
		return;		/* more to come, or the dot is held */
	/* The message should end with CRLF; if not, the CRLF before the
	 * dot is ours. */
	if (total > 0 && (c->body_last[0] != '\r' || c->body_last[1] != '\n'))
		evbuffer_add(out, "\r\n", 2);
	if (evbuffer_add(out, ".\r\n", 3) == -1) {
		client_tx_fail_rest(c, 451, "4.3.0", "out of memory");
		tx->closed = 1;
		client_tx_finish(c);
		return;
	}
	client_state(c, CS_DOT);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	client_set_timeouts(c, TMO_DATA_TERM, TMO_DATA_BLOCK);
}

static void
body_start(struct smtp_client *c)
{
	client_state(c, CS_BODY);
	c->body_pos = 0;
	c->body_bol = 1;
	c->body_last[0] = c->body_last[1] = '\0';
	client_set_timeouts(c, 0, TMO_DATA_BLOCK);
	bufferevent_setwatermark(c->bev, EV_WRITE, BODY_LOWAT, 0);
	if (c->discard) {
		/* RFC 2920 §3.1: 354 although no recipient was accepted:
		 * send an empty message, the results are already known. */
		evbuffer_add(bufferevent_get_output(c->bev), ".\r\n", 3);
		client_state(c, CS_DOT);
		client_set_timeouts(c, TMO_DATA_TERM, TMO_DATA_BLOCK);
		return;
	}
	client_body_fill(c);
}

void
smtp_client_release_dot(struct smtp_client *c, struct smtp_tx *tx)
{
	tx->hold_dot = 0;
	if (c == NULL || c->dead || c->tx != tx || c->state != CS_BODY)
		return;		/* not there yet, or over */
	if (c->body_pos >= tx_total(tx))
		client_body_fill(c);	/* waiting for us: the dot now */
}

/* client_tx_reply - one reply to the transaction's commands */
void
client_tx_reply(struct smtp_client *c)
{
	struct smtp_tx *tx = c->tx;
	struct smtp_reply r;
	size_t i = 0, k = c->cmd_done++;

	client_reply_make(c, &r);
	if (r.code == 421)
		tx->unavailable = 1;
	switch (cmd_kind(c, k, &i)) {
	case CMD_RSET:
		if (r.code / 100 != 2) {
			client_tx_fail_rest(c, r.code / 100 == 5 ? 451 : r.code,
			    "4.4.2", "%s refused RSET: %s", c->peer, r.text);
			tx->closed = 1;
			client_tx_finish(c);
			return;
		}
		break;
	case CMD_MAIL:
		c->mail_ok = (r.code / 100 == 2);
		if (!c->mail_ok) {
			for (i = 0; i < tx->nrcpt; i++)
				tx->result[i] = r;
			if (!c->pipelined || r.code == 421) {
				tx->closed = (r.code == 421);
				client_tx_finish(c);
				return;
			}
		}
		break;
	case CMD_RCPT:
		if (c->mail_ok) {
			/* An accepted recipient's result is the reply to
			 * the final dot, not this one. */
			if (r.code / 100 == 2) {
				c->accepted[i] = 1;
				c->naccepted++;
			} else
				tx->result[i] = r;
		}
		if (r.code == 421) {
			for (i = 0; i < tx->nrcpt; i++)
				if (tx->result[i].code == 0)
					tx->result[i] = r;
			tx->closed = 1;
			client_tx_finish(c);
			return;
		}
		if (!c->pipelined && i + 1 == tx->nrcpt && c->naccepted == 0) {
			client_tx_finish(c);
			return;
		}
		break;
	case CMD_DATA:
		if (r.code == 354) {
			c->discard = !(c->mail_ok && c->naccepted > 0);
			body_start(c);
			return;
		}
		/* The accepted recipients get DATA's refusal. */
		if (r.code / 100 == 2) {
			client_reply_synth(&r, 451, "4.5.0", "unexpected 2xx "
			    "reply to DATA");
			tx->closed = 1;
		}
		for (i = 0; i < tx->nrcpt; i++)
			if (c->accepted[i])
				tx->result[i] = r;
		tx->closed |= (r.code == 421);
		client_tx_finish(c);
		return;
	}
	if (c->cmd_done == c->ncmd) {	/* cannot happen: DATA is last */
		client_tx_finish(c);
		return;
	}
	if (!c->pipelined) {
		client_set_timeouts(c, cmd_timeout(c, c->cmd_sent), TMO_MAIL);
		if (write_cmd(c, c->cmd_sent++) == -1) {
			client_tx_fail_rest(c, 451, "4.3.0", "out of memory");
			tx->closed = 1;
			client_tx_finish(c);
		}
	} else
		client_set_timeouts(c, cmd_timeout(c, c->cmd_done), TMO_MAIL);
}

/*
 * client_dot_reply - the reply to the final dot: the accepted
 * recipients' fate
 */
void
client_dot_reply(struct smtp_client *c)
{
	struct smtp_tx *tx = c->tx;
	struct smtp_reply r;
	size_t i;

	client_reply_make(c, &r);
	if (r.code == 421)
		tx->unavailable = 1;
	for (i = 0; i < tx->nrcpt; i++)
		if (c->accepted[i])
			tx->result[i] = r;
	tx->closed = (r.code == 421);
	client_tx_finish(c);
}

/*
 * smtp_client_send - start a transaction on an idle connection.  The
 * callback runs later, never from inside this call.
 */
int
smtp_client_send(struct smtp_client *c, struct smtp_tx *tx, smtp_tx_cb *cb,
    void *arg, char *err, size_t errlen)
{
	const char *why = NULL, *status = NULL;
	int code = 0, utf8;
	size_t i, k;

	if (c->dead || c->state != CS_IDLE) {
		errbuf_set(err, errlen, "connection is not idle");
		return (-1);
	}
	if (tx->nrcpt == 0 || tx->nrcpt > SMTP_TX_RCPT_MAX) {
		errbuf_set(err, errlen, "bad recipient count %zu", tx->nrcpt);
		return (-1);
	}
	event_del(c->timer);
	c->tx = tx;
	c->txcb = cb;
	c->txarg = arg;
	c->ntx++;
	clock_gettime(CLOCK_MONOTONIC, &c->t_tx);
	memset(tx->result, 0, tx->nrcpt * sizeof(*tx->result));
	tx->closed = tx->unavailable = 0;
	tx->elapsed = 0;
	c->mail_ok = 0;
	c->naccepted = 0;
	memset(c->accepted, 0, sizeof(c->accepted));
	c->discard = 0;
	c->cmd_done = c->cmd_sent = 0;
	c->has_rset = (c->ntx > 1);
	c->ncmd = (size_t)c->has_rset + 2 + tx->nrcpt;
	c->pipelined = (c->ext & SMTP_EXT_PIPELINING) != 0;

	utf8 = needs_utf8(tx->sender);
	for (i = 0; i < tx->nrcpt; i++)
		utf8 |= needs_utf8(tx->rcpt[i]);
	if (bad_address(tx->sender)) {
		code = 553, status = "5.1.7", why = "bad sender address";
	} else if (utf8 && !(c->ext & SMTP_EXT_SMTPUTF8)) {
		code = 553, status = "5.6.7", why = "SMTPUTF8 is required "
		    "but not supported by the server";
	} else if ((c->ext & SMTP_EXT_SIZE) && c->size_max > 0 &&
	    tx_total(tx) > c->size_max) {
		code = 552, status = "5.3.4", why = "message size exceeds the "
		    "server's limit";
	}
	for (i = 0; code == 0 && i < tx->nrcpt; i++)
		if (bad_address(tx->rcpt[i]))
			client_reply_synth(&tx->result[i], 553, "5.1.3",
			    "bad recipient address");
	if (code != 0) {
		client_tx_fail_rest(c, code, status, "%s (%s)", why, c->peer);
		client_state(c, CS_TXFAIL);
		event_active(c->timer, EV_TIMEOUT, 0);
		return (0);
	}

	client_state(c, CS_TX);
	client_set_timeouts(c, cmd_timeout(c, 0), TMO_MAIL);
	if (c->pipelined) {
		for (k = 0; k < c->ncmd; k++)
			if (write_cmd(c, k) == -1)
				goto nomem;
		c->cmd_sent = c->ncmd;
	} else {
		if (write_cmd(c, 0) == -1)
			goto nomem;
		c->cmd_sent = 1;
	}
	return (0);
nomem:
	/* Nothing reached the wire for sure: give the connection up. */
	client_tx_fail_rest(c, 451, "4.3.0", "out of memory");
	tx->closed = 1;
	client_state(c, CS_TXFAIL);
	event_active(c->timer, EV_TIMEOUT, 0);
	return (0);
}
