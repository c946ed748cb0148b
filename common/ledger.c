/*
 * ledger.c - the STORE_DB_LEDGER value layout and its state rules (see
 * ledger.h for the format and what pending and delivered mean).
 *
 * Exposure: values come from our own database, but another program or
 * an older version may have written them; a value is trusted only as
 * far as its length, never read past.
 *
 * Threading: no state; every call runs in the caller's transaction.
 */

#include <string.h>

#include "bytes.h"
#include "ledger.h"

void
ledger_encode(const struct ledger_entry *e, unsigned char v[LEDGER_VALUE_LEN])
{
	struct wbuf w;

	wbuf_init_fixed(&w, v, LEDGER_VALUE_LEN);
	wbuf_be64(&w, e->when > 0 ? (uint64_t)e->when : 0);
	wbuf_bytes(&w, e->queue_id, LEDGER_ID_LEN);
	wbuf_u8(&w, e->status);
}

int
ledger_decode(const void *val, size_t vlen, struct ledger_entry *e)
{
	struct rbuf r;
	uint64_t t;

	memset(e, 0, sizeof(*e));
	rbuf_init(&r, val, vlen);
	t = rbuf_be64(&r);
	if (r.why != NULL)
		return (-1);
	e->when = t > INT64_MAX ? INT64_MAX : (int64_t)t;
	if (rbuf_bytes(&r, e->queue_id, LEDGER_ID_LEN) == -1) {
		e->queue_id[0] = '\0';
		return (-1);
	}
	e->queue_id[LEDGER_ID_LEN] = '\0';
	if (strspn(e->queue_id, "0123456789abcdef") != LEDGER_ID_LEN)
		e->queue_id[0] = '\0';
	if (rbuf_left(&r) == 0) {
		/* Before pending entries existed only 250s were written. */
		e->status = LEDGER_DELIVERED;
		return (0);
	}
	/* Bytes after the status are for later additions: not read. */
	e->status = (uint8_t)rbuf_u8(&r);
	if (e->status != LEDGER_DELIVERED && e->status != LEDGER_PENDING) {
		e->status = LEDGER_NONE;
		return (-1);
	}
	return (0);
}

int
ledger_get(struct store_txn *tx, const unsigned char key[MSGKEY_LEN],
    struct ledger_entry *e_r)
{
	struct ledger_entry e;
	const void *val;
	size_t vlen;
	int rc;

	rc = store_get(tx, STORE_DB_LEDGER, key, MSGKEY_LEN, &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (LEDGER_NONE);
	if (rc != 0)
		return (-1);
	if (ledger_decode(val, vlen, &e) == -1)
		e.status = LEDGER_DELIVERED;
	if (e_r != NULL)
		*e_r = e;
	return (e.status);
}

int
ledger_put(struct store_txn *tx, const unsigned char key[MSGKEY_LEN],
    const struct ledger_entry *e, time_t expires_at)
{
	unsigned char v[LEDGER_VALUE_LEN];
	int rc;

	if ((e->status != LEDGER_PENDING && e->status != LEDGER_DELIVERED) ||
	    strlen(e->queue_id) != LEDGER_ID_LEN)
		return (-1);
	if (e->status == LEDGER_PENDING) {
		if ((rc = ledger_get(tx, key, NULL)) == -1)
			return (-1);
		if (rc == LEDGER_DELIVERED)
			return (1);
	}
	ledger_encode(e, v);
	rc = store_put_expiring(tx, STORE_DB_LEDGER, key, MSGKEY_LEN, v,
	    sizeof(v), expires_at, 0);
	return (rc == 0 ? 0 : -1);
}

int
ledger_del(struct store_txn *tx, const unsigned char key[MSGKEY_LEN],
    const char *queue_id)
{
	struct ledger_entry e;
	int rc;

	if ((rc = ledger_get(tx, key, &e)) == -1)
		return (-1);
	if (rc != LEDGER_PENDING ||
	    (queue_id != NULL && strcmp(e.queue_id, queue_id) != 0))
		return (STORE_NOTFOUND);
	rc = store_del(tx, STORE_DB_LEDGER, key, MSGKEY_LEN);
	if (rc == -1)
		return (-1);
	return (rc == 0 ? 0 : STORE_NOTFOUND);
}
