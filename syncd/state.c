/*
 * state.c - ferry-syncd's sync state in LMDB: folder records, the
 * source-UID to destination-UID map and the APPEND intents.  The on-disk
 * format is documented in state.h.
 *
 * SECURITY: folder names and Message-IDs come from the IMAP servers;
 * every key is built with its length checked (long parts are hashed),
 * and every value read back is checked against its length before a
 * field is taken from it, so a corrupt record is an error, not a read
 * past the end.
 *
 * Ownership and threads: no global state.  Every function runs one
 * transaction through store_txn_run(), which may be called from any
 * thread; the transaction functions only fill caller memory that they
 * reset first (store_txn_run may call them twice).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "bytes.h"
#include "ledger.h"
#include "state.h"
#include "util.h"

/* ---- encoding helpers ------------------------------------------------------ */

/*
 * Every value here is written into a fixed buffer sized for the largest
 * record (struct wbuf with wbuf_init_fixed), so "too long" is the one
 * way an encoder fails.  Strings are u16-prefixed; a string read back
 * is taken as far as its first NUL (none is ever written).
 */

/* put_str - a u16-prefixed string (s NULL: empty) */
static void
put_str(struct wbuf *w, const char *s)
{
	wbuf_str16(w, s, s ? strlen(s) : 0);
}

/* get_str - a u16-prefixed string into out (NUL-terminated); -1 if long */
static int
get_str(struct rbuf *r, char *out, size_t outlen)
{
	size_t n = rbuf_be16(r);
	const unsigned char *p;

	if ((p = rbuf_take(r, n)) == NULL)
		return (-1);
	if (n >= outlen)
		return (rbuf_fail(r, "string too long"));
	memcpy(out, p, n);
	out[n] = '\0';
	return (0);
}

/* get_strdup - a u16-prefixed string, allocated */
static char *
get_strdup(struct rbuf *r)
{
	size_t n = rbuf_be16(r);
	const unsigned char *p;
	char *s;

	if ((p = rbuf_take(r, n)) == NULL)
		return (NULL);
	if ((s = malloc(n + 1)) == NULL) {
		rbuf_fail(r, "out of memory");
		return (NULL);
	}
	memcpy(s, p, n);
	s[n] = '\0';
	return (s);
}

/* ---- keys ------------------------------------------------------------------- */

static void
sha256_hex(const void *d, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	size_t i;

	EVP_Digest(d, n, md, &mdlen, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* key_part - append s (or "#" + its hash when longer than max) */
static void
key_part(struct wbuf *w, const char *s, size_t max, int lower)
{
	size_t n = strlen(s), i;
	char hex[66];

	if (n > max) {
		hex[0] = '#';
		sha256_hex(s, n, hex + 1);
		wbuf_bytes(w, hex, 65);
		return;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (lower && c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		wbuf_u8(w, c);
	}
}

int
state_folder_key(struct state_key *k, const char *account,
    const char *folder, char *err, size_t errlen)
{
	struct wbuf w;

	wbuf_init_fixed(&w, k->buf, sizeof(k->buf));
	k->len = 0;
	if (account == NULL || folder == NULL || *account == '\0') {
		errbuf_set(err, errlen, "state key: empty account");
		return (-1);
	}
	key_part(&w, account, STATE_ACCOUNT_MAX, 1);
	wbuf_u8(&w, 0);
	key_part(&w, folder, STATE_FOLDER_MAX, 0);
	if (w.failed) {
		errbuf_set(err, errlen, "state key: too long");
		return (-1);
	}
	k->len = w.len;
	return (0);
}

size_t
state_uid_key(const struct state_key *fk, uint64_t uid, unsigned char *out)
{
	struct wbuf w;

	wbuf_init_fixed(&w, out, STATE_KEY_MAX + 9);
	wbuf_bytes(&w, fk->buf, fk->len);
	wbuf_u8(&w, 0);
	wbuf_be64(&w, uid);
	return (w.len);
}

void
state_content_key(const char *msgid, uint64_t size, int64_t internaldate,
    unsigned char out[STATE_CKEY_LEN])
{
	EVP_MD_CTX *ctx;
	char num[64];
	unsigned int len = 0;

	memset(out, 0, STATE_CKEY_LEN);
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, "mailferry-content-v1", 21);	/* with NUL */
	if (msgid != NULL)
		EVP_DigestUpdate(ctx, msgid, strlen(msgid));
	EVP_DigestUpdate(ctx, "", 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)size);
	EVP_DigestUpdate(ctx, num, strlen(num) + 1);
	snprintf(num, sizeof(num), "%lld", (long long)internaldate);
	EVP_DigestUpdate(ctx, num, strlen(num));
	EVP_DigestFinal_ex(ctx, out, &len);
	EVP_MD_CTX_free(ctx);
}

/* ---- folders ---------------------------------------------------------------- */

int
state_folder_decode(const void *v, size_t len, struct state_folder *f)
{
	struct rbuf r;

	memset(f, 0, sizeof(*f));
	rbuf_init(&r, v, len);
	if (rbuf_u8(&r) != STATE_VERSION)
		return (-1);
	f->flags = rbuf_u8(&r);
	f->src_uidvalidity = rbuf_be64(&r);
	f->src_uidnext = rbuf_be64(&r);
	f->src_last_uid = rbuf_be64(&r);
	f->src_highestmodseq = rbuf_be64(&r);
	f->src_messages = rbuf_be64(&r);
	f->dst_uidvalidity = rbuf_be64(&r);
	f->dst_highestmodseq = rbuf_be64(&r);
	f->updated = (int64_t)rbuf_be64(&r);
	get_str(&r, f->dst_name, sizeof(f->dst_name));
	return (r.why != NULL ? -1 : 0);
}

struct folder_get {
	const struct state_key *k;
	struct state_folder *f;
	int corrupt;
};

static int
folder_get_fn(struct store_txn *tx, void *arg)
{
	struct folder_get *g = arg;
	const void *v;
	size_t vlen;
	int rc;

	g->corrupt = 0;
	rc = store_get(tx, STORE_DB_SYNC_FOLDER, g->k->buf, g->k->len, &v,
	    &vlen);
	if (rc != 0)
		return (rc == STORE_NOTFOUND ? STATE_NOTFOUND : -1);
	if (state_folder_decode(v, vlen, g->f) == -1) {
		g->corrupt = 1;
		return (-1);
	}
	return (0);
}

int
state_folder_get(struct store *st, const struct state_key *k,
    struct state_folder *f, char *err, size_t errlen)
{
	struct folder_get g = { k, f, 0 };
	int rc;

	memset(f, 0, sizeof(*f));
	rc = store_txn_run(st, 1, folder_get_fn, &g, err, errlen);
	if (rc == -1 && g.corrupt)
		errbuf_set(err, errlen, "sync_folder: corrupt record");
	return (rc);
}

struct blob_put {
	enum store_db db;
	const void *key;
	size_t klen;
	const void *val;
	size_t vlen;
};

static int
blob_put_fn(struct store_txn *tx, void *arg)
{
	struct blob_put *b = arg;

	return (store_put(tx, b->db, b->key, b->klen, b->val, b->vlen, 0) ==
	    0 ? 0 : -1);
}

static size_t
folder_encode(const struct state_folder *f, unsigned char *buf, size_t cap)
{
	struct wbuf w;

	wbuf_init_fixed(&w, buf, cap);
	wbuf_u8(&w, STATE_VERSION);
	wbuf_u8(&w, f->flags);
	wbuf_be64(&w, f->src_uidvalidity);
	wbuf_be64(&w, f->src_uidnext);
	wbuf_be64(&w, f->src_last_uid);
	wbuf_be64(&w, f->src_highestmodseq);
	wbuf_be64(&w, f->src_messages);
	wbuf_be64(&w, f->dst_uidvalidity);
	wbuf_be64(&w, f->dst_highestmodseq);
	wbuf_be64(&w, (uint64_t)f->updated);
	put_str(&w, f->dst_name);
	return (w.failed ? 0 : w.len);
}

int
state_folder_put(struct store *st, const struct state_key *k,
    const struct state_folder *f, char *err, size_t errlen)
{
	unsigned char buf[128 + STATE_NAME_MAX];
	struct blob_put b;
	size_t len;

	if ((len = folder_encode(f, buf, sizeof(buf))) == 0) {
		errbuf_set(err, errlen, "sync_folder: record too long");
		return (-1);
	}
	b = (struct blob_put){ STORE_DB_SYNC_FOLDER, k->buf, k->len, buf,
	    len };
	return (store_txn_run(st, 0, blob_put_fn, &b, err, errlen));
}

/* Collect keys under a prefix, then delete them (no write while walking). */
struct keylist {
	unsigned char (*v)[STATE_KEY_MAX + 9];
	size_t		*len;
	size_t		 n, alloc;
	int		 oom;
};

static int
collect_fn(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct keylist *l = arg;
	void *p, *q;

	(void)val;
	(void)vlen;
	if (klen > STATE_KEY_MAX + 9)
		return (0);
	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 64;

		p = reallocarray(l->v, na, sizeof(*l->v));
		if (p == NULL) {
			l->oom = 1;
			return (-1);
		}
		l->v = p;
		q = reallocarray(l->len, na, sizeof(*l->len));
		if (q == NULL) {
			l->oom = 1;
			return (-1);
		}
		l->len = q;
		l->alloc = na;
	}
	memcpy(l->v[l->n], key, klen);
	l->len[l->n++] = klen;
	return (0);
}

static int
reset_fn(struct store_txn *tx, void *arg)
{
	const struct state_key *k = arg;
	static const enum store_db dbs[2] = { STORE_DB_SYNC_MAP,
	    STORE_DB_SYNC_INTENT };
	unsigned char prefix[STATE_KEY_MAX + 1];
	struct keylist l;
	size_t i, d;
	int rc;

	memcpy(prefix, k->buf, k->len);
	prefix[k->len] = 0;
	for (d = 0; d < 2; d++) {
		memset(&l, 0, sizeof(l));
		rc = store_foreach(tx, dbs[d], prefix, k->len + 1, collect_fn,
		    &l);
		for (i = 0; rc == 0 && i < l.n; i++)
			if (store_del(tx, dbs[d], l.v[i], l.len[i]) == -1)
				rc = -1;
		free(l.v);
		free(l.len);
		if (rc != 0)
			return (-1);
	}
	rc = store_del(tx, STORE_DB_SYNC_FOLDER, k->buf, k->len);
	return (rc == -1 ? -1 : 0);
}

int
state_folder_reset(struct store *st, const struct state_key *k, char *err,
    size_t errlen)
{
	return (store_txn_run(st, 0, reset_fn, (void *)(uintptr_t)k, err,
	    errlen));
}

/* ---- map ---------------------------------------------------------------------- */

static size_t
map_encode(const struct state_map_entry *e, unsigned char *buf, size_t cap)
{
	struct wbuf w;
	const char *fl = e->flags ? e->flags : "";
	char tmp[STATE_FLAGS_MAX];

	/* flags beyond the limit are cut at a space: a flags scan then
	 * sees a difference and applies them again, harmless */
	if (strlen(fl) >= sizeof(tmp)) {
		char *sp;

		memcpy(tmp, fl, sizeof(tmp) - 1);
		tmp[sizeof(tmp) - 1] = '\0';
		if ((sp = strrchr(tmp, ' ')) != NULL)
			*sp = '\0';
		fl = tmp;
	}
	wbuf_init_fixed(&w, buf, cap);
	wbuf_u8(&w, STATE_VERSION);
	wbuf_u8(&w, (unsigned)e->origin);
	wbuf_be64(&w, e->dst_uid);
	wbuf_be64(&w, e->dst_uidvalidity);
	wbuf_be64(&w, e->size);
	wbuf_be64(&w, (uint64_t)e->internaldate);
	wbuf_bytes(&w, e->ckey, STATE_CKEY_LEN);
	put_str(&w, fl);
	return (w.failed ? 0 : w.len);
}

int
state_map_decode(const void *v, size_t len, struct state_map_entry *e)
{
	struct rbuf r;
	const unsigned char *ck;

	memset(e, 0, sizeof(*e));
	rbuf_init(&r, v, len);
	if (rbuf_u8(&r) != STATE_VERSION)
		return (-1);
	e->origin = (enum state_origin)rbuf_u8(&r);
	e->dst_uid = rbuf_be64(&r);
	e->dst_uidvalidity = rbuf_be64(&r);
	e->size = rbuf_be64(&r);
	e->internaldate = (int64_t)rbuf_be64(&r);
	if ((ck = rbuf_take(&r, STATE_CKEY_LEN)) != NULL)
		memcpy(e->ckey, ck, STATE_CKEY_LEN);
	e->flags = get_strdup(&r);
	if (r.why != NULL || e->flags == NULL || rbuf_left(&r) != 0 ||
	    e->origin < STATE_ORIGIN_COPIED ||
	    e->origin > STATE_ORIGIN_ALTERED) {
		free(e->flags);
		e->flags = NULL;
		return (-1);
	}
	return (0);
}

/* key_uid - the big-endian source UID that ends a map or intent key */
static uint64_t
key_uid(const unsigned char *key, size_t klen)
{
	return (be64_get(key + klen - 8));
}

struct map_load {
	struct state_map *m;
	size_t prefixlen;
	int corrupt;
};

static int
map_load_cb(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct map_load *ml = arg;
	struct state_map *m = ml->m;
	struct state_map_entry e;

	if (klen != ml->prefixlen + 8)
		return (0);	/* not ours: a longer folder name */
	if (state_map_decode(val, vlen, &e) == -1) {
		ml->corrupt = 1;
		return (-1);
	}
	e.src_uid = key_uid(key, klen);
	if (m->n == m->alloc) {
		size_t na = m->alloc ? m->alloc * 2 : 256;
		void *p = reallocarray(m->v, na, sizeof(*m->v));

		if (p == NULL) {
			free(e.flags);
			return (-1);
		}
		m->v = p;
		m->alloc = na;
	}
	m->v[m->n++] = e;	/* keys come sorted: BE uid after prefix */
	return (0);
}

static void
map_clear(struct state_map *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		free(m->v[i].flags);
	m->n = 0;
}

struct map_load_arg {
	struct map_load ml;
	const struct state_key *k;
};

static int
map_load_fn2(struct store_txn *tx, void *arg)
{
	struct map_load_arg *a = arg;
	unsigned char prefix[STATE_KEY_MAX + 1];

	map_clear(a->ml.m);
	a->ml.corrupt = 0;
	memcpy(prefix, a->k->buf, a->k->len);
	prefix[a->k->len] = 0;
	a->ml.prefixlen = a->k->len + 1;
	return (store_foreach(tx, STORE_DB_SYNC_MAP, prefix, a->k->len + 1,
	    map_load_cb, &a->ml) == 0 ? 0 : -1);
}

int
state_map_load(struct store *st, const struct state_key *k,
    struct state_map *m, char *err, size_t errlen)
{
	struct map_load_arg a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.ml.m = m;
	a.k = k;
	rc = store_txn_run(st, 1, map_load_fn2, &a, err, errlen);
	if (rc != 0) {
		if (a.ml.corrupt)
			errbuf_set(err, errlen, "sync_map: corrupt record");
		else if (err != NULL && errlen > 0 && err[0] == '\0')
			errbuf_set(err, errlen, "sync_map: out of memory");
		map_clear(m);
	}
	return (rc == 0 ? 0 : -1);
}

struct state_map_entry *
state_map_find(const struct state_map *m, uint64_t src_uid)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->v[mid].src_uid == src_uid)
			return (&m->v[mid]);
		if (m->v[mid].src_uid < src_uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (NULL);
}

int
state_map_set(struct state_map *m, const struct state_map_entry *e)
{
	struct state_map_entry *x;
	char *fl;
	size_t lo = 0, hi = m->n;

	if ((fl = strdup(e->flags ? e->flags : "")) == NULL)
		return (-1);
	if ((x = state_map_find(m, e->src_uid)) != NULL) {
		free(x->flags);
		*x = *e;
		x->flags = fl;
		return (0);
	}
	if (m->n == m->alloc) {
		size_t na = m->alloc ? m->alloc * 2 : 256;
		void *p = reallocarray(m->v, na, sizeof(*m->v));

		if (p == NULL) {
			free(fl);
			return (-1);
		}
		m->v = p;
		m->alloc = na;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->v[mid].src_uid < e->src_uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&m->v[lo + 1], &m->v[lo], (m->n - lo) * sizeof(*m->v));
	m->v[lo] = *e;
	m->v[lo].flags = fl;
	m->n++;
	return (0);
}

void
state_map_free(struct state_map *m)
{
	if (m == NULL)
		return;
	map_clear(m);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

struct map_commit {
	const struct state_key *k;
	const struct state_map_entry *e;
	size_t n;
	const uint64_t *del;
	size_t del_n;
};

static int
map_commit_fn(struct store_txn *tx, void *arg)
{
	struct map_commit *c = arg;
	unsigned char key[STATE_KEY_MAX + 9];
	unsigned char val[64 + STATE_FLAGS_MAX];
	size_t i, klen, vlen;

	for (i = 0; i < c->n; i++) {
		klen = state_uid_key(c->k, c->e[i].src_uid, key);
		if ((vlen = map_encode(&c->e[i], val, sizeof(val))) == 0) {
			store_txn_seterr(tx, "sync_map: record too long");
			return (-1);
		}
		if (store_put(tx, STORE_DB_SYNC_MAP, key, klen, val, vlen,
		    0) != 0)
			return (-1);
		if (store_del(tx, STORE_DB_SYNC_INTENT, key, klen) == -1)
			return (-1);
	}
	for (i = 0; i < c->del_n; i++) {
		klen = state_uid_key(c->k, c->del[i], key);
		if (store_del(tx, STORE_DB_SYNC_MAP, key, klen) == -1)
			return (-1);
	}
	return (0);
}

int
state_map_commit(struct store *st, const struct state_key *k,
    const struct state_map_entry *e, size_t n, const uint64_t *del_uids,
    size_t del_n, char *err, size_t errlen)
{
	struct map_commit c = { k, e, n, del_uids, del_n };

	if (n == 0 && del_n == 0)
		return (0);
	return (store_txn_run(st, 0, map_commit_fn, &c, err, errlen));
}

/* ---- intents -------------------------------------------------------------------- */

struct intent_put {
	const struct state_key *k;
	const struct state_intent *in;
	size_t n;
};

static int
intent_put_fn(struct store_txn *tx, void *arg)
{
	struct intent_put *p = arg;
	unsigned char key[STATE_KEY_MAX + 9];
	unsigned char val[128 + MSGID_BUFSIZE + STATE_NAME_MAX];
	size_t i, klen;

	for (i = 0; i < p->n; i++) {
		const struct state_intent *in = &p->in[i];
		struct wbuf w;

		wbuf_init_fixed(&w, val, sizeof(val));
		wbuf_u8(&w, STATE_VERSION);
		wbuf_be64(&w, in->size);
		wbuf_be64(&w, (uint64_t)in->internaldate);
		wbuf_be32(&w, (uint32_t)(int32_t)in->tz);
		wbuf_be64(&w, (uint64_t)in->created);
		wbuf_bytes(&w, in->ckey, STATE_CKEY_LEN);
		put_str(&w, in->msgid ? in->msgid : "");
		put_str(&w, in->dst_name ? in->dst_name : "");
		if (w.failed) {
			store_txn_seterr(tx, "sync_intent: record too long");
			return (-1);
		}
		klen = state_uid_key(p->k, in->src_uid, key);
		if (store_put(tx, STORE_DB_SYNC_INTENT, key, klen, val, w.len,
		    0) != 0)
			return (-1);
	}
	return (0);
}

int
state_intent_put(struct store *st, const struct state_key *k,
    const struct state_intent *in, size_t n, char *err, size_t errlen)
{
	struct intent_put p = { k, in, n };

	if (n == 0)
		return (0);
	return (store_txn_run(st, 0, intent_put_fn, &p, err, errlen));
}

struct commit {
	const struct state_key *k;
	const struct state_map_entry *e;
	size_t n;
	const struct state_intent *in;
	size_t nin;
	const struct state_folder *f;
};

static int
commit_fn(struct store_txn *tx, void *arg)
{
	struct commit *c = arg;
	struct map_commit mc = { c->k, c->e, c->n, NULL, 0 };
	struct intent_put ip = { c->k, c->in, c->nin };
	unsigned char buf[128 + STATE_NAME_MAX];
	size_t len;

	if (c->n > 0 && map_commit_fn(tx, &mc) != 0)
		return (-1);
	if (c->nin > 0 && intent_put_fn(tx, &ip) != 0)
		return (-1);
	if (c->f != NULL) {
		if ((len = folder_encode(c->f, buf, sizeof(buf))) == 0) {
			store_txn_seterr(tx, "sync_folder: record too long");
			return (-1);
		}
		if (store_put(tx, STORE_DB_SYNC_FOLDER, c->k->buf, c->k->len,
		    buf, len, 0) != 0)
			return (-1);
	}
	return (0);
}

int
state_commit(struct store *st, const struct state_key *k,
    const struct state_map_entry *e, size_t n,
    const struct state_intent *in, size_t nin,
    const struct state_folder *f, char *err, size_t errlen)
{
	struct commit c = { k, e, n, in, nin, f };

	if (n == 0 && nin == 0 && f == NULL)
		return (0);
	return (store_txn_run(st, 0, commit_fn, &c, err, errlen));
}

static void
intents_clear(struct state_intents *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].msgid);
		free(l->v[i].dst_name);
	}
	l->n = 0;
}

struct intent_load {
	struct state_intents *l;
	const struct state_key *k;
	size_t prefixlen;
	int corrupt;
};

static int
intent_load_cb(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct intent_load *il = arg;
	struct state_intents *l = il->l;
	struct state_intent in;
	struct rbuf r;
	const unsigned char *ck;

	if (klen != il->prefixlen + 8)
		return (0);
	memset(&in, 0, sizeof(in));
	rbuf_init(&r, val, vlen);
	if (rbuf_u8(&r) != STATE_VERSION) {
		il->corrupt = 1;
		return (-1);
	}
	in.src_uid = key_uid(key, klen);
	in.size = rbuf_be64(&r);
	in.internaldate = (int64_t)rbuf_be64(&r);
	in.tz = (int)(int32_t)rbuf_be32(&r);
	in.created = (int64_t)rbuf_be64(&r);
	if ((ck = rbuf_take(&r, STATE_CKEY_LEN)) != NULL)
		memcpy(in.ckey, ck, STATE_CKEY_LEN);
	in.msgid = get_strdup(&r);
	in.dst_name = get_strdup(&r);
	if (r.why != NULL || in.msgid == NULL || in.dst_name == NULL ||
	    rbuf_left(&r) != 0) {
		free(in.msgid);
		free(in.dst_name);
		il->corrupt = 1;
		return (-1);
	}
	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 16;
		void *p = reallocarray(l->v, na, sizeof(*l->v));

		if (p == NULL) {
			free(in.msgid);
			free(in.dst_name);
			return (-1);
		}
		l->v = p;
		l->alloc = na;
	}
	l->v[l->n++] = in;
	return (0);
}

static int
intent_load_fn(struct store_txn *tx, void *arg)
{
	struct intent_load *il = arg;
	unsigned char prefix[STATE_KEY_MAX + 1];

	intents_clear(il->l);
	il->corrupt = 0;
	memcpy(prefix, il->k->buf, il->k->len);
	prefix[il->k->len] = 0;
	il->prefixlen = il->k->len + 1;
	return (store_foreach(tx, STORE_DB_SYNC_INTENT, prefix,
	    il->k->len + 1, intent_load_cb, il) == 0 ? 0 : -1);
}

int
state_intent_load(struct store *st, const struct state_key *k,
    struct state_intents *out, char *err, size_t errlen)
{
	struct intent_load il;
	int rc;

	memset(&il, 0, sizeof(il));
	il.l = out;
	il.k = k;
	rc = store_txn_run(st, 1, intent_load_fn, &il, err, errlen);
	if (rc != 0) {
		if (il.corrupt)
			errbuf_set(err, errlen, "sync_intent: corrupt record");
		intents_clear(out);
		return (-1);
	}
	return (0);
}

struct blob_del {
	enum store_db db;
	const void *key;
	size_t klen;
};

static int
blob_del_fn(struct store_txn *tx, void *arg)
{
	struct blob_del *b = arg;

	return (store_del(tx, b->db, b->key, b->klen) == -1 ? -1 : 0);
}

int
state_intent_del(struct store *st, const struct state_key *k,
    uint64_t src_uid, char *err, size_t errlen)
{
	unsigned char key[STATE_KEY_MAX + 9];
	struct blob_del b = { STORE_DB_SYNC_INTENT, key, 0 };

	b.klen = state_uid_key(k, src_uid, key);
	return (store_txn_run(st, 0, blob_del_fn, &b, err, errlen));
}

void
state_intents_free(struct state_intents *in)
{
	if (in == NULL)
		return;
	intents_clear(in);
	free(in->v);
	memset(in, 0, sizeof(*in));
}

/* ---- ledger and meta ---------------------------------------------------------- */

struct ledger_look {
	const unsigned char	*key;
	int			 status;
};

static int
ledger_look_fn(struct store_txn *tx, void *arg)
{
	struct ledger_look *g = arg;

	g->status = ledger_get(tx, g->key, NULL);
	return (g->status == -1 ? -1 : 0);
}

int
state_ledger_hit(struct store *st, const char *mailbox,
    const struct msg_ident *id, const unsigned char sha[BODY_HASH_LEN],
    char *err, size_t errlen)
{
	unsigned char key[MSGKEY_LEN];
	struct ledger_look g = { key, LEDGER_NONE };

	if (msgkey_ledger(mailbox, id, sha, key) != 0) {
		errbuf_set(err, errlen, "ledger key: cannot compute");
		return (-1);
	}
	if (store_txn_run(st, 1, ledger_look_fn, &g, err, errlen) != 0)
		return (-1);
	switch (g.status) {
	case LEDGER_DELIVERED:
		return (STATE_LEDGER_DELIVERED);
	case LEDGER_PENDING:
		return (STATE_LEDGER_PENDING);
	default:
		return (STATE_LEDGER_NONE);
	}
}

/* ledger_oldest_one - every value starts with its entry's time
 * (common/ledger.h: delivered or, for a pending one, arrived); a value
 * without one counts as "the beginning of time" */
static int
ledger_oldest_one(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct ledger_entry e;
	int64_t *oldest = arg, t;

	(void)key;
	(void)klen;
	(void)ledger_decode(val, vlen, &e);
	t = e.when;
	if (t <= 0)
		t = 1;
	if (*oldest == 0 || t < *oldest)
		*oldest = t;
	return (0);
}

static int
ledger_oldest_fn(struct store_txn *tx, void *arg)
{
	*(int64_t *)arg = 0;
	return (store_foreach(tx, STORE_DB_LEDGER, NULL, 0, ledger_oldest_one,
	    arg) == 0 ? 0 : -1);
}

int
state_ledger_oldest(struct store *st, int64_t *oldest_r, char *err,
    size_t errlen)
{
	*oldest_r = 0;
	return (store_txn_run(st, 1, ledger_oldest_fn, oldest_r, err,
	    errlen) != 0 ? -1 : 0);
}

static int
ledger_count_fn(struct store_txn *tx, void *arg)
{
	return (store_count(tx, STORE_DB_LEDGER, arg) == 0 ? 0 : -1);
}

int
state_ledger_empty(struct store *st, int *empty_r, char *err, size_t errlen)
{
	size_t n = 0;

	*empty_r = 0;
	if (store_txn_run(st, 1, ledger_count_fn, &n, err, errlen) != 0)
		return (-1);
	*empty_r = n == 0;
	return (0);
}

int
state_meta_put(struct store *st, const char *key, const void *val,
    size_t len, char *err, size_t errlen)
{
	struct blob_put b = { STORE_DB_META, key, strlen(key), val, len };

	return (store_txn_run(st, 0, blob_put_fn, &b, err, errlen));
}

/* ---- the account record --------------------------------------------------- */

#define ACCT_KEY_MAX	(sizeof(STATE_ACCT_KEY_PREFIX) + 66)

static size_t
acct_key(unsigned char *buf, size_t cap, const char *account)
{
	struct wbuf w;

	wbuf_init_fixed(&w, buf, cap);
	wbuf_bytes(&w, STATE_ACCT_KEY_PREFIX, strlen(STATE_ACCT_KEY_PREFIX));
	key_part(&w, account, STATE_ACCOUNT_MAX, 1);
	return (w.failed ? 0 : w.len);
}

void
state_acct_free(struct state_acct *a)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < a->nf; i++)
		free(a->f[i].wire);
	for (i = 0; i < a->nrows; i++) {
		free(a->rows[i].src);
		free(a->rows[i].dst);
		free(a->rows[i].skipped);
	}
	free(a->f);
	free(a->rows);
	memset(a, 0, sizeof(*a));
}

/* each folder takes at least 2 + 4 + 4 + 32 bytes, each row 6 + 32:
 * a count the value cannot hold is corrupt, not an allocation */
#define ACCT_FOLDER_MIN	42
#define ACCT_ROW_MIN	38

int
state_acct_decode(const void *v, size_t len, struct state_acct *a)
{
	struct rbuf r;
	size_t i, n;

	memset(a, 0, sizeof(*a));
	rbuf_init(&r, v, len);
	if (rbuf_u8(&r) != STATE_VERSION)
		return (-1);
	a->flags = rbuf_u8(&r);
	a->pass_at = (int64_t)rbuf_be64(&r);
	a->dst_checked = (int64_t)rbuf_be64(&r);
	rbuf_bytes(&r, a->digest, sizeof(a->digest));
	n = rbuf_be32(&r);
	if (r.why != NULL || n > rbuf_left(&r) / ACCT_FOLDER_MIN)
		goto bad;
	if (n > 0 && (a->f = calloc(n, sizeof(*a->f))) == NULL)
		goto bad;
	for (i = 0; i < n; i++) {
		struct state_acct_folder *f = &a->f[i];

		if ((f->wire = get_strdup(&r)) == NULL)
			goto bad;
		a->nf++;
		f->attrs = rbuf_be32(&r);
		f->have = rbuf_be32(&r);
		f->uidvalidity = rbuf_be64(&r);
		f->uidnext = rbuf_be64(&r);
		f->messages = rbuf_be64(&r);
		f->highestmodseq = rbuf_be64(&r);
	}
	n = rbuf_be32(&r);
	if (r.why != NULL || n > rbuf_left(&r) / ACCT_ROW_MIN)
		goto bad;
	if (n > 0 && (a->rows = calloc(n, sizeof(*a->rows))) == NULL)
		goto bad;
	for (i = 0; i < n; i++) {
		struct state_acct_row *w = &a->rows[i];

		a->nrows++;
		if ((w->src = get_strdup(&r)) == NULL ||
		    (w->dst = get_strdup(&r)) == NULL ||
		    (w->skipped = get_strdup(&r)) == NULL)
			goto bad;
		w->src_count = rbuf_be64(&r);
		w->dst_count = rbuf_be64(&r);
		w->already = rbuf_be64(&r);
		w->duplicates = rbuf_be64(&r);
	}
	if (r.why != NULL || rbuf_end(&r) == -1)
		goto bad;
	return (0);
bad:
	state_acct_free(a);
	return (-1);
}

struct acct_get {
	const unsigned char *key;
	size_t klen;
	struct state_acct *a;
	int corrupt;
};

static int
acct_get_fn(struct store_txn *tx, void *arg)
{
	struct acct_get *g = arg;
	const void *v;
	size_t vlen;
	int rc;

	g->corrupt = 0;
	state_acct_free(g->a);
	rc = store_get(tx, STORE_DB_META, g->key, g->klen, &v, &vlen);
	if (rc != 0)
		return (rc == STORE_NOTFOUND ? STATE_NOTFOUND : -1);
	if (state_acct_decode(v, vlen, g->a) == -1) {
		g->corrupt = 1;
		return (-1);
	}
	return (0);
}

int
state_acct_get(struct store *st, const char *account, struct state_acct *a,
    char *err, size_t errlen)
{
	unsigned char key[ACCT_KEY_MAX];
	struct acct_get g;
	int rc;

	memset(a, 0, sizeof(*a));
	g = (struct acct_get){ key, acct_key(key, sizeof(key), account), a,
	    0 };
	if (g.klen == 0) {
		errbuf_set(err, errlen, "account record: key too long");
		return (-1);
	}
	rc = store_txn_run(st, 1, acct_get_fn, &g, err, errlen);
	if (rc == -1 && g.corrupt)
		errbuf_set(err, errlen, "account record: corrupt");
	return (rc);
}

int
state_acct_put(struct store *st, const char *account,
    const struct state_acct *a, char *err, size_t errlen)
{
	unsigned char key[ACCT_KEY_MAX], *buf = NULL;
	struct blob_put b;
	struct wbuf w;
	size_t i, klen, len = 0;
	int rc;

	if ((klen = acct_key(key, sizeof(key), account)) == 0) {
		errbuf_set(err, errlen, "account record: key too long");
		return (-1);
	}
	wbuf_init(&w);
	wbuf_u8(&w, STATE_VERSION);
	wbuf_u8(&w, a->flags);
	wbuf_be64(&w, (uint64_t)a->pass_at);
	wbuf_be64(&w, (uint64_t)a->dst_checked);
	wbuf_bytes(&w, a->digest, sizeof(a->digest));
	if (a->nf > UINT32_MAX || a->nrows > UINT32_MAX)
		wbuf_fail(&w);
	wbuf_be32(&w, (uint32_t)a->nf);
	for (i = 0; i < a->nf; i++) {
		const struct state_acct_folder *f = &a->f[i];

		put_str(&w, f->wire);
		wbuf_be32(&w, f->attrs);
		wbuf_be32(&w, f->have);
		wbuf_be64(&w, f->uidvalidity);
		wbuf_be64(&w, f->uidnext);
		wbuf_be64(&w, f->messages);
		wbuf_be64(&w, f->highestmodseq);
	}
	wbuf_be32(&w, (uint32_t)a->nrows);
	for (i = 0; i < a->nrows; i++) {
		const struct state_acct_row *r = &a->rows[i];

		put_str(&w, r->src);
		put_str(&w, r->dst);
		put_str(&w, r->skipped);
		wbuf_be64(&w, r->src_count);
		wbuf_be64(&w, r->dst_count);
		wbuf_be64(&w, r->already);
		wbuf_be64(&w, r->duplicates);
	}
	if (wbuf_finish(&w, &buf, &len) == -1) {
		errbuf_set(err, errlen, "account record: too long or out of "
		    "memory");
		return (-1);
	}
	b = (struct blob_put){ STORE_DB_META, key, klen, buf, len };
	rc = store_txn_run(st, 0, blob_put_fn, &b, err, errlen);
	free(buf);
	return (rc);
}

static int
acct_del_fn(struct store_txn *tx, void *arg)
{
	const struct blob_put *b = arg;
	int rc = store_del(tx, b->db, b->key, b->klen);

	return (rc == -1 ? -1 : 0);
}

int
state_acct_del(struct store *st, const char *account, char *err,
    size_t errlen)
{
	unsigned char key[ACCT_KEY_MAX];
	struct blob_put b;
	size_t klen;

	if ((klen = acct_key(key, sizeof(key), account)) == 0) {
		errbuf_set(err, errlen, "account record: key too long");
		return (-1);
	}
	b = (struct blob_put){ STORE_DB_META, key, klen, NULL, 0 };
	return (store_txn_run(st, 0, acct_del_fn, &b, err, errlen));
}
