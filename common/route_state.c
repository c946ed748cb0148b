/*
 * route_state.c - the staged-wave routing table's records in LMDB
 * (format and rules in route_state.h).
 *
 * SECURITY: a record is read back from a database another process may
 * write, so decoding is strict and bounded; why is checked to be
 * printable before it is written, so it can be shown and logged as is.
 *
 * Threading: no global state; store transactions as store.h says.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "config.h"
#include "route_state.h"
#include "util.h"

static const char *const state_names[] = { "pending", "migrated" };

/* route_wave_state_name - the name of a state */
const char *
route_wave_state_name(enum route_wave_state st)
{
	if ((unsigned)st < sizeof(state_names) / sizeof(state_names[0]))
		return (state_names[st]);
	return ("?");
}

/* route_wave_state_parse - a state's name into *st_r */
int
route_wave_state_parse(const char *s, enum route_wave_state *st_r)
{
	size_t i;

	for (i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
		if (s != NULL && strcmp(s, state_names[i]) == 0) {
			*st_r = (enum route_wave_state)i;
			return (0);
		}
	return (-1);
}

/* route_wave_init - a wave without a record */
void
route_wave_init(struct route_wave *w, unsigned wave)
{
	memset(w, 0, sizeof(*w));
	w->wave = wave;
	w->state = ROUTE_WAVE_PENDING;
}

/* route_wave_key - "route.wave.N" */
size_t
route_wave_key(unsigned wave, char *buf, size_t len)
{
	int n;

	if (wave < 1 || wave > ROUTE_WAVE_MAX)
		return (0);
	n = snprintf(buf, len, ROUTE_WAVE_KEY_PREFIX "%u", wave);
	return (n < 0 || (size_t)n >= len ? 0 : (size_t)n);
}

/* printable - 1 when s[0..n) is printable ASCII */
static int
printable(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return (0);
	return (1);
}

/* route_wave_encode - the value of w */
size_t
route_wave_encode(const struct route_wave *w, unsigned char *buf,
    size_t len)
{
	struct wbuf wb;
	size_t n = strnlen(w->why, sizeof(w->why));

	if ((w->state != ROUTE_WAVE_PENDING && w->state !=
	    ROUTE_WAVE_MIGRATED) || w->since < 0 || n > ROUTE_WHY_MAX ||
	    !printable(w->why, n))
		return (0);
	wbuf_init_fixed(&wb, buf, len);
	wbuf_u8(&wb, ROUTE_STATE_VERSION);
	wbuf_u8(&wb, (unsigned)w->state);
	wbuf_be64(&wb, (uint64_t)w->since);
	wbuf_str16(&wb, w->why, n);
	return (wb.failed ? 0 : wb.len);
}

/* route_wave_decode - strict: exactly a record of this version */
int
route_wave_decode(struct route_wave *w, unsigned wave, const void *buf,
    size_t len, char *err, size_t errlen)
{
	struct rbuf r;
	unsigned version, state;
	uint64_t since;
	uint16_t n;

	route_wave_init(w, wave);
	rbuf_init(&r, buf, len);
	version = rbuf_u8(&r);
	state = rbuf_u8(&r);
	since = rbuf_be64(&r);
	n = rbuf_be16(&r);
	if (r.why == NULL && version != ROUTE_STATE_VERSION)
		(void)rbuf_fail(&r, "unknown version");
	if (r.why == NULL && state > ROUTE_WAVE_MIGRATED)
		(void)rbuf_fail(&r, "unknown state");
	if (r.why == NULL && since > (uint64_t)INT64_MAX)
		(void)rbuf_fail(&r, "time out of range");
	if (r.why == NULL && n > ROUTE_WHY_MAX)
		(void)rbuf_fail(&r, "reason too long");
	(void)rbuf_strcpy(&r, n, w->why, sizeof(w->why));
	if (r.why == NULL && !printable(w->why, n))
		(void)rbuf_fail(&r, "control character in the reason");
	(void)rbuf_end(&r);
	if (r.why != NULL) {
		errbuf_set(err, errlen, "wave %u: bad routing record: %s at "
		    "byte %zu", wave, r.why, r.off);
		route_wave_init(w, wave);
		return (-1);
	}
	w->state = (enum route_wave_state)state;
	w->since = (int64_t)since;
	return (0);
}

/* route_wave_get - the record of wave, or its default */
int
route_wave_get(struct store_txn *tx, unsigned wave, struct route_wave *w)
{
	char key[ROUTE_WAVE_KEY_MAX], err[256];
	const void *val;
	size_t klen, vlen;
	int rc;

	route_wave_init(w, wave);
	if ((klen = route_wave_key(wave, key, sizeof(key))) == 0) {
		store_txn_seterr(tx, "wave %u out of range", wave);
		return (-1);
	}
	rc = store_get(tx, STORE_DB_META, key, klen, &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0)
		return (-1);
	if (route_wave_decode(w, wave, val, vlen, err, sizeof(err)) == -1) {
		store_txn_seterr(tx, "%s", err);
		return (-1);
	}
	return (0);
}

/* route_wave_put - write the record of w->wave */
int
route_wave_put(struct store_txn *tx, const struct route_wave *w)
{
	char key[ROUTE_WAVE_KEY_MAX];
	unsigned char val[ROUTE_WAVE_VALUE_MAX];
	size_t klen, vlen;

	if ((klen = route_wave_key(w->wave, key, sizeof(key))) == 0 ||
	    (vlen = route_wave_encode(w, val, sizeof(val))) == 0) {
		store_txn_seterr(tx, "wave %u: invalid routing record",
		    w->wave);
		return (-1);
	}
	return (store_put(tx, STORE_DB_META, key, klen, val, vlen, 0) == 0 ?
	    0 : -1);
}

/* One route_state_read(): the records, by key prefix. */
struct read_all {
	struct route_wave	*waves;
	const char		*bad;	/* first unreadable record's reason */
	char			 err[256];
};

/* read_one - one "route.wave.*" record (others in META are skipped) */
static int
read_one(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct read_all *ra = arg;
	const size_t plen = sizeof(ROUTE_WAVE_KEY_PREFIX) - 1;
	const char *k = key;
	unsigned wave = 0;
	size_t i;

	if (klen <= plen || klen > plen + 3 || k[plen] == '0')
		return (0);
	for (i = plen; i < klen; i++) {
		if (k[i] < '0' || k[i] > '9')
			return (0);
		wave = wave * 10 + (unsigned)(k[i] - '0');
	}
	if (wave < 1 || wave > ROUTE_WAVE_MAX)
		return (0);
	if (route_wave_decode(&ra->waves[wave], wave, val, vlen, ra->err,
	    sizeof(ra->err)) == -1)
		return (1);
	return (0);
}

/* read_txn - every record, defaults first */
static int
read_txn(struct store_txn *tx, void *arg)
{
	struct read_all *ra = arg;
	unsigned i;
	int rc;

	for (i = 0; i <= ROUTE_WAVE_MAX; i++)
		route_wave_init(&ra->waves[i], i);
	ra->err[0] = '\0';
	rc = store_foreach(tx, STORE_DB_META, ROUTE_WAVE_KEY_PREFIX,
	    sizeof(ROUTE_WAVE_KEY_PREFIX) - 1, read_one, ra);
	if (rc == 1)
		store_txn_seterr(tx, "%s", ra->err);
	return (rc == 0 ? 0 : -1);
}

/* route_state_read - every wave's state */
int
route_state_read(struct store *st, struct route_wave waves[ROUTE_WAVE_MAX + 1],
    char *err, size_t errlen)
{
	struct read_all ra;
	unsigned i;

	memset(&ra, 0, sizeof(ra));
	ra.waves = waves;
	if (st == NULL) {
		for (i = 0; i <= ROUTE_WAVE_MAX; i++)
			route_wave_init(&waves[i], i);
		return (0);
	}
	if (store_txn_run(st, 1, read_txn, &ra, err, errlen) != 0)
		return (-1);
	return (0);
}

/* write_txn - one record */
static int
write_txn(struct store_txn *tx, void *arg)
{
	return (route_wave_put(tx, arg));
}

/* route_state_write - w in a write transaction of its own */
int
route_state_write(struct store *st, const struct route_wave *w, char *err,
    size_t errlen)
{
	struct route_wave copy = *w;

	return (store_txn_run(st, 0, write_txn, &copy, err, errlen) == 0 ?
	    0 : -1);
}

unsigned
route_wave_parse(const char *s)
{
	unsigned v = 0;
	size_t i, n = strlen(s);

	if (n == 0 || n > 3 || s[0] == '0')
		return (0);
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (0);
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return (v <= ROUTE_WAVE_MAX ? v : 0);
}

/* route_accounts_path - [relay] accounts, else [syncd] accounts */
const char *
route_accounts_path(const struct config *cfg)
{
	if (cfg->relay.accounts != NULL && cfg->relay.accounts[0] != '\0')
		return (cfg->relay.accounts);
	if (cfg->syncd.accounts != NULL && cfg->syncd.accounts[0] != '\0')
		return (cfg->syncd.accounts);
	return (NULL);
}
