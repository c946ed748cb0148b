/*
 * inflight.c - recovery of the messages in flight at an unclean stop
 * (the model is in inflight.h): find the records marked QR_INFLIGHT,
 * ask the destination mailboxes (inflight_imap.c), then settle every
 * record in one write transaction, before the queue loads them.
 *
 * Order, so that a crash during recovery is harmless: the marks are
 * read, IMAP is asked (read-only), and only then is one transaction
 * committed that marks the found deliveries sent (their ledger entries
 * delivered) and clears the marks.  A crash before that commit leaves
 * the marks in place and the next start asks again.
 *
 * Loop thread, at start-up, before the loop runs.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "inflight.h"
#include "ledger.h"
#include "log.h"
#include "queue.h"
#include "queue_record.h"
#include "relay.h"
#include "spool.h"
#include "srs.h"
#include "store.h"
#include "util.h"

#define HDR_READ_MAX	(64 * 1024)	/* header block read from the spool */

/* One marked record; owns everything. */
struct rmsg {
	char			 id[QUEUE_ID_LEN + 1];
	struct queue_record	 rec;
	struct msg_ident	*ident;
	size_t			 first;		/* its probes: first.. */
	size_t			 n;		/*   ..first + n */
	size_t			*dlv;		/* n: index into rec.dlv */
};

struct recovery {
	struct relay		*r;
	struct rmsg		*msgs;
	size_t			 nmsgs, cap;
	struct inflight_probe	*probes;
	size_t			 nprobes;
	int64_t			 now;
	size_t			 found, resent, dups;
};

int
inflight_wanted(const struct relay *r, const struct queue_record *rec,
    size_t i)
{
	const struct delivery *d = &rec->dlv[i];

	return (d->state == DLV_PENDING && d->dest == DLV_UPSTREAM &&
	    !(rec->flags & QR_DSN) &&
	    !(r->srs != NULL && srs_is_srs(r->srs, d->rcpt)));
}

int
inflight_settle(struct queue_record *rec, const int *verdict)
{
	static const char note[] = "250 found in the destination mailbox "
	    "after an unclean stop; not sent again";
	size_t i;
	int dups = 0;

	for (i = 0; i < rec->ndlv; i++) {
		struct delivery *d = &rec->dlv[i];
		char *s;

		if (d->state != DLV_PENDING)
			continue;
		if (verdict[i] == IF_UNKNOWN)
			dups++;
		if (verdict[i] != IF_FOUND)
			continue;
		if ((s = strdup(note)) == NULL)
			return (-1);
		free(d->last_reply);
		d->last_reply = s;
		d->state = DLV_SENT;
	}
	rec->flags &= ~(uint32_t)QR_INFLIGHT;
	return (dups);
}

/* collect_one - remember the id of every marked record */
static int
collect_one(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct recovery *rv = arg;
	struct queue_record rec;
	struct rmsg *m;
	char err[128];

	(void)key;
	(void)klen;
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1)
		return (0);	/* queue_load() reports it */
	if (!(rec.flags & QR_INFLIGHT)) {
		queue_record_clear(&rec);
		return (0);
	}
	if (rv->nmsgs == rv->cap) {
		size_t ncap = rv->cap ? rv->cap * 2 : 16;
		void *n = reallocarray(rv->msgs, ncap, sizeof(*rv->msgs));

		if (n == NULL) {
			queue_record_clear(&rec);
			return (-1);
		}
		rv->msgs = n;
		rv->cap = ncap;
	}
	m = &rv->msgs[rv->nmsgs++];
	memset(m, 0, sizeof(*m));
	memcpy(m->id, rec.id, sizeof(m->id));
	m->rec = rec;		/* moved */
	return (0);
}

static int
txn_collect(struct store_txn *tx, void *arg)
{
	return (store_foreach(tx, STORE_DB_QUEUE, NULL, 0, collect_one, arg));
}

/*
 * read_ident - Message-ID, Date and From of the spooled message (its
 * header block, as the sender sent it).  -1 when the file cannot be read.
 */
static int
read_ident(struct relay *r, const char *id, struct msg_ident *ident)
{
	char *buf;
	uint64_t off, size;
	ssize_t got;
	size_t want;
	int fd;

	if (spool_msg_open(r->spool, id, &fd, &off, &size) == -1)
		return (-1);
	want = size < HDR_READ_MAX ? (size_t)size : HDR_READ_MAX;
	if ((buf = malloc(want + 1)) == NULL) {
		close(fd);
		return (-1);
	}
	got = pread(fd, buf, want, (off_t)off);
	close(fd);
	if (got < 0) {
		free(buf);
		return (-1);
	}
	buf[got] = '\0';
	msg_ident_from_headers(buf, (size_t)got, ident);
	free(buf);
	return (0);
}

/* build_probes - one probe per delivery that may have been carried */
static int
build_probes(struct recovery *rv)
{
	size_t i, j, total = 0;

	for (i = 0; i < rv->nmsgs; i++)
		total += rv->msgs[i].rec.ndlv;
	if (total > 0 &&
	    (rv->probes = calloc(total, sizeof(*rv->probes))) == NULL)
		return (-1);
	for (i = 0; i < rv->nmsgs; i++) {
		struct rmsg *m = &rv->msgs[i];

		if ((m->ident = calloc(1, sizeof(*m->ident))) == NULL ||
		    (m->rec.ndlv > 0 &&
		    (m->dlv = calloc(m->rec.ndlv, sizeof(*m->dlv))) == NULL))
			return (-1);
		if (read_ident(rv->r, m->id, m->ident) == -1)
			log_warn("%s: cannot read the spool file's header "
			    "block", m->id);
		m->first = rv->nprobes;
		for (j = 0; j < m->rec.ndlv; j++) {
			struct inflight_probe *p;
			const struct delivery *d = &m->rec.dlv[j];

			if (!inflight_wanted(rv->r, &m->rec, j))
				continue;
			p = &rv->probes[rv->nprobes++];
			p->rcpt = d->rcpt;
			p->msgid = m->ident->has_msgid ? m->ident->msgid : "";
			p->date = m->ident->date;
			p->has_key = d->has_ledger_key;
			memcpy(p->ledger_key, d->ledger_key, MSGKEY_LEN);
			m->dlv[m->n++] = j;
		}
	}
	return (0);
}

/* settle_one - inside the write txn: apply the verdicts to m's record */
static int
settle_one(struct store_txn *tx, struct recovery *rv, struct rmsg *m)
{
	struct queue_record rec;
	const void *val;
	size_t vlen, i;
	unsigned char *buf;
	size_t blen;
	int *verdict, rc, dups;
	char err[128];

	rc = store_get(tx, STORE_DB_QUEUE, m->id, QUEUE_ID_LEN, &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0)
		return (-1);
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1)
		return (0);
	if ((verdict = calloc(rec.ndlv ? rec.ndlv : 1, sizeof(*verdict))) ==
	    NULL) {
		queue_record_clear(&rec);
		return (-1);
	}
	for (i = 0; i < m->n; i++) {
		size_t j = m->dlv[i];

		/* Nothing else runs yet: the record is the one read
		 * before; match by recipient anyway. */
		if (j < rec.ndlv && strcmp(rec.dlv[j].rcpt,
		    m->rec.dlv[j].rcpt) == 0)
			verdict[j] = rv->probes[m->first + i].verdict;
	}
	for (i = 0; i < rec.ndlv; i++) {
		struct delivery *d = &rec.dlv[i];
		struct ledger_entry e;

		if (verdict[i] != IF_FOUND || d->state != DLV_PENDING ||
		    !queue_ledger_tracked(rv->r, &rec, d))
			continue;
		memset(&e, 0, sizeof(e));
		e.when = rv->now;
		e.status = LEDGER_DELIVERED;
		memcpy(e.queue_id, m->id, QUEUE_ID_LEN + 1);
		if (ledger_put(tx, d->ledger_key, &e, queue_ledger_expiry(
		    rv->r->cfg, rv->now, LEDGER_DELIVERED)) == -1) {
			free(verdict);
			queue_record_clear(&rec);
			return (-1);
		}
	}
	dups = inflight_settle(&rec, verdict);
	free(verdict);
	if (dups == -1 || queue_record_encode(&rec, &buf, &blen) == -1) {
		queue_record_clear(&rec);
		store_txn_seterr(tx, "%s: out of memory", m->id);
		return (-1);
	}
	queue_record_clear(&rec);
	rc = store_put(tx, STORE_DB_QUEUE, m->id, QUEUE_ID_LEN, buf, blen, 0);
	free(buf);
	return (rc == 0 ? 0 : -1);
}

static int
txn_settle(struct store_txn *tx, void *arg)
{
	struct recovery *rv = arg;
	size_t i;

	for (i = 0; i < rv->nmsgs; i++)
		if (settle_one(tx, rv, &rv->msgs[i]) == -1)
			return (-1);
	return (0);
}

/* report - after the commit: one line per delivery, one summary */
static void
report(struct recovery *rv)
{
	size_t i, j;

	for (i = 0; i < rv->nmsgs; i++) {
		struct rmsg *m = &rv->msgs[i];

		for (j = 0; j < m->n; j++) {
			const struct inflight_probe *p =
			    &rv->probes[m->first + j];

			switch (p->verdict) {
			case IF_FOUND:
				rv->found++;
				log_info("%s: to=<%s> status=sent (found in "
				    "the destination mailbox after an unclean "
				    "stop: %s; not sent again)", m->id,
				    p->rcpt, p->why);
				break;
			case IF_ABSENT:
				rv->resent++;
				log_info("%s: to=<%s>: in flight at an unclean "
				    "stop and %s: sending it again", m->id,
				    p->rcpt, p->why);
				break;
			default:
				rv->resent++;
				rv->dups++;
				log_warnx("%s: to=<%s>: possible duplicate "
				    "after crash: in flight at an unclean stop, "
				    "cannot look in the mailbox (%s); sending "
				    "it again", m->id, p->rcpt, p->why);
				break;
			}
		}
	}
	log_warnx("unclean stop: %zu message%s were in flight: %zu "
	    "deliver%s found in the destination mailboxes, %zu to send "
	    "again, %zu of them possible duplicates", rv->nmsgs,
	    rv->nmsgs == 1 ? "" : "s", rv->found, rv->found == 1 ? "y" : "ies",
	    rv->resent, rv->dups);
}

static void
recovery_free(struct recovery *rv)
{
	size_t i;

	for (i = 0; i < rv->nmsgs; i++) {
		queue_record_clear(&rv->msgs[i].rec);
		free(rv->msgs[i].ident);
		free(rv->msgs[i].dlv);
	}
	free(rv->msgs);
	free(rv->probes);
}

int
inflight_recover(struct relay *r, struct accounts **accp, char *err,
    size_t errlen)
{
	struct recovery rv;
	int rc = -1;

	memset(&rv, 0, sizeof(rv));
	rv.r = r;
	if (store_txn_run(r->store, 1, txn_collect, &rv, err, errlen) != 0)
		goto out;
	if (rv.nmsgs == 0) {
		rc = 0;
		goto out;
	}
	log_warnx("unclean stop: %zu message%s in flight to the upstream; "
	    "looking in the destination mailboxes before sending again",
	    rv.nmsgs, rv.nmsgs == 1 ? " was" : "s were");
	if (build_probes(&rv) == -1) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	inflight_imap_check(r->cfg, *accp, rv.probes, rv.nprobes);
	rv.now = (int64_t)time(NULL);
	if (store_txn_run(r->store, 0, txn_settle, &rv, err, errlen) != 0)
		goto out;
	report(&rv);
	r->stats.crash_duplicates += rv.dups;
	rc = 0;
out:
	inflight_accounts_free(accp);
	recovery_free(&rv);
	return (rc);
}
