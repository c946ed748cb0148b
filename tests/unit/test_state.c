/*
 * test_state.c - syncd/state.c: keys, folder records, the UID map,
 * intents, the ledger look-up and the stability of the on-disk format.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hex.h"
#include "msgid.h"
#include "ledger.h"
#include "state.h"
#include "store.h"

struct fx {
	char		 dir[64];
	struct store	*st;
};

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char err[256];

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_state.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	assert_int_equal(store_open(&fx->st, fx->dir, 0, err, sizeof(err)), 0);
	*state = fx;
	return (0);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	store_close(&fx->st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		return (-1);
	free(fx);
	return (0);
}

static void
test_folder_key(void **state)
{
	struct state_key k, k2;
	char big[600];
	char err[128];

	(void)state;
	assert_int_equal(state_folder_key(&k, "Alice@Example.COM", "INBOX",
	    err, sizeof(err)), 0);
	assert_int_equal(k.len, strlen("alice@example.com") + 1 + 5);
	assert_memory_equal(k.buf, "alice@example.com\0INBOX", k.len);
	/* the folder part keeps its case */
	assert_int_equal(state_folder_key(&k2, "alice@example.com", "inbox",
	    err, sizeof(err)), 0);
	assert_memory_not_equal(k.buf, k2.buf, k.len);
	/* long parts are hashed, deterministically */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(state_folder_key(&k, "a", big, err, sizeof(err)), 0);
	assert_int_equal(k.len, 1 + 1 + 65);
	assert_int_equal(k.buf[2], '#');
	assert_int_equal(state_folder_key(&k2, "a", big, err, sizeof(err)), 0);
	assert_memory_equal(k.buf, k2.buf, k.len);
	assert_int_equal(state_folder_key(&k, "", "x", err, sizeof(err)), -1);
}

static void
test_uid_key(void **state)
{
	struct state_key k;
	unsigned char out[STATE_KEY_MAX + 9];
	static const unsigned char want[] = { 'a', 0, 'B', 0, 0, 0, 0, 0, 0,
	    0, 0x01, 0x02 };

	(void)state;
	assert_int_equal(state_folder_key(&k, "a", "B", NULL, 0), 0);
	assert_int_equal(state_uid_key(&k, 0x102, out), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

static void
test_content_key(void **state)
{
	unsigned char a[32], b[32], c[32], d[32];

	(void)state;
	state_content_key("<x@y>", 100, 1700000000, a);
	state_content_key("<x@y>", 100, 1700000000, b);
	state_content_key("<x@y>", 101, 1700000000, c);
	state_content_key("", 100, 1700000000, d);
	assert_memory_equal(a, b, 32);
	assert_memory_not_equal(a, c, 32);
	assert_memory_not_equal(a, d, 32);
	state_content_key(NULL, 100, 1700000000, b);
	assert_memory_equal(b, d, 32);
}

static void
test_folder_roundtrip(void **state)
{
	struct fx *fx = *state;
	struct state_key k;
	struct state_folder f, g;
	char err[256];

	assert_int_equal(state_folder_key(&k, "alice", "Sent Items", err,
	    sizeof(err)), 0);
	assert_int_equal(state_folder_get(fx->st, &k, &g, err, sizeof(err)),
	    STATE_NOTFOUND);
	memset(&f, 0, sizeof(f));
	f.flags = STATE_F_COMPLETE;
	f.src_uidvalidity = 1234567890;
	f.src_uidnext = 101;
	f.src_last_uid = 100;
	f.src_highestmodseq = 5000000000ULL;
	f.src_messages = 99;
	f.dst_uidvalidity = 42;
	f.dst_highestmodseq = 7;
	f.updated = 1700000000;
	snprintf(f.dst_name, sizeof(f.dst_name), "Sent");
	assert_int_equal(state_folder_put(fx->st, &k, &f, err, sizeof(err)),
	    0);
	assert_int_equal(state_folder_get(fx->st, &k, &g, err, sizeof(err)),
	    0);
	assert_memory_equal(&f, &g, sizeof(f));
}

/* The bytes of a folder record are the documented format. */
static void
test_folder_format(void **state)
{
	static const unsigned char rec[] = {
		1, 1,
		0, 0, 0, 0, 0, 0, 0, 5,		/* uidvalidity */
		0, 0, 0, 0, 0, 0, 0, 11,	/* uidnext */
		0, 0, 0, 0, 0, 0, 0, 10,	/* last uid */
		0, 0, 0, 0, 0, 0, 0, 0,		/* hms */
		0, 0, 0, 0, 0, 0, 0, 9,		/* messages */
		0, 0, 0, 0, 0, 0, 0, 3,		/* dst uidvalidity */
		0, 0, 0, 0, 0, 0, 0, 0,		/* dst hms */
		0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00, /* updated */
		0, 4, 'S', 'e', 'n', 't',
	};
	struct state_folder f;

	(void)state;
	assert_int_equal(state_folder_decode(rec, sizeof(rec), &f), 0);
	assert_int_equal(f.flags, STATE_F_COMPLETE);
	assert_int_equal(f.src_uidvalidity, 5);
	assert_int_equal(f.src_uidnext, 11);
	assert_int_equal(f.src_last_uid, 10);
	assert_int_equal(f.src_messages, 9);
	assert_int_equal(f.dst_uidvalidity, 3);
	assert_int_equal(f.updated, 0x6553f100);
	assert_string_equal(f.dst_name, "Sent");
	/* truncated, bad version */
	assert_int_equal(state_folder_decode(rec, sizeof(rec) - 1, &f), -1);
	assert_int_equal(state_folder_decode("\2", 1, &f), -1);
}

static void
test_map(void **state)
{
	struct fx *fx = *state;
	struct state_key k, k2;
	struct state_map m = { 0 };
	struct state_map_entry e[3];
	struct state_intent in;
	struct state_intents il = { 0 };
	char err[256];
	uint64_t del = 7;
	size_t i;

	assert_int_equal(state_folder_key(&k, "alice", "A", err,
	    sizeof(err)), 0);
	/* "A.B" must not show up in the map of "A" */
	assert_int_equal(state_folder_key(&k2, "alice", "A.B", err,
	    sizeof(err)), 0);
	memset(e, 0, sizeof(e));
	for (i = 0; i < 3; i++) {
		e[i].src_uid = (i == 0) ? 300 : (i == 1 ? 7 : 256);
		e[i].dst_uid = 1000 + i;
		e[i].dst_uidvalidity = 9;
		e[i].size = 10 * i;
		e[i].internaldate = -5 + (int64_t)i;
		e[i].origin = STATE_ORIGIN_COPIED;
		e[i].ckey[0] = (unsigned char)i;
		e[i].flags = (char *)(i == 0 ? "\\Seen $Label1" : "");
	}
	/* an intent for uid 300, replaced by the commit */
	memset(&in, 0, sizeof(in));
	in.src_uid = 300;
	in.size = 1234;
	in.internaldate = 1700000000;
	in.tz = -420;
	in.msgid = (char *)"<a@b>";
	in.dst_name = (char *)"A";
	assert_int_equal(state_intent_put(fx->st, &k, &in, 1, err,
	    sizeof(err)), 0);
	assert_int_equal(state_intent_load(fx->st, &k, &il, err,
	    sizeof(err)), 0);
	assert_int_equal(il.n, 1);
	assert_int_equal(il.v[0].src_uid, 300);
	assert_int_equal(il.v[0].size, 1234);
	assert_int_equal(il.v[0].tz, -420);
	assert_string_equal(il.v[0].msgid, "<a@b>");
	assert_string_equal(il.v[0].dst_name, "A");

	assert_int_equal(state_map_commit(fx->st, &k, e, 3, NULL, 0, err,
	    sizeof(err)), 0);
	assert_int_equal(state_map_commit(fx->st, &k2, e, 1, NULL, 0, err,
	    sizeof(err)), 0);
	assert_int_equal(state_intent_load(fx->st, &k, &il, err,
	    sizeof(err)), 0);
	assert_int_equal(il.n, 0);

	assert_int_equal(state_map_load(fx->st, &k, &m, err, sizeof(err)), 0);
	assert_int_equal(m.n, 3);
	assert_int_equal(m.v[0].src_uid, 7);	/* sorted by uid */
	assert_int_equal(m.v[1].src_uid, 256);
	assert_int_equal(m.v[2].src_uid, 300);
	assert_string_equal(m.v[2].flags, "\\Seen $Label1");
	assert_int_equal(m.v[2].internaldate, -5);
	assert_non_null(state_map_find(&m, 256));
	assert_null(state_map_find(&m, 255));

	/* in-memory set keeps the order */
	e[0].src_uid = 100;
	assert_int_equal(state_map_set(&m, &e[0]), 0);
	assert_int_equal(m.n, 4);
	assert_int_equal(m.v[1].src_uid, 100);
	e[0].dst_uid = 77;
	assert_int_equal(state_map_set(&m, &e[0]), 0);
	assert_int_equal(m.n, 4);
	assert_int_equal(state_map_find(&m, 100)->dst_uid, 77);
	state_map_free(&m);

	/* delete one */
	assert_int_equal(state_map_commit(fx->st, &k, NULL, 0, &del, 1, err,
	    sizeof(err)), 0);
	assert_int_equal(state_map_load(fx->st, &k, &m, err, sizeof(err)), 0);
	assert_int_equal(m.n, 2);
	state_map_free(&m);

	/* reset drops map, intents and the folder record */
	assert_int_equal(state_intent_put(fx->st, &k, &in, 1, err,
	    sizeof(err)), 0);
	assert_int_equal(state_folder_reset(fx->st, &k, err, sizeof(err)), 0);
	assert_int_equal(state_map_load(fx->st, &k, &m, err, sizeof(err)), 0);
	assert_int_equal(m.n, 0);
	assert_int_equal(state_intent_load(fx->st, &k, &il, err,
	    sizeof(err)), 0);
	assert_int_equal(il.n, 0);
	/* the other folder is untouched */
	assert_int_equal(state_map_load(fx->st, &k2, &m, err, sizeof(err)), 0);
	assert_int_equal(m.n, 1);
	state_map_free(&m);
	state_intents_free(&il);

	assert_int_equal(state_intent_put(fx->st, &k, &in, 1, err,
	    sizeof(err)), 0);
	assert_int_equal(state_intent_del(fx->st, &k, 300, err, sizeof(err)),
	    0);
	assert_int_equal(state_intent_load(fx->st, &k, &il, err,
	    sizeof(err)), 0);
	assert_int_equal(il.n, 0);
	state_intents_free(&il);
}

static void
test_map_decode_bad(void **state)
{
	struct state_map_entry e;
	unsigned char v[64 + 2];

	(void)state;
	memset(v, 0, sizeof(v));
	v[0] = 1;
	v[1] = STATE_ORIGIN_COPIED;
	/* header 2 + 4*8 + 32 = 66, then the u16 length is missing */
	assert_int_equal(state_map_decode(v, sizeof(v), &e), -1);
	v[1] = 9;	/* bad origin */
	assert_int_equal(state_map_decode(v, sizeof(v), &e), -1);
}

/* state_commit: map entries (their intents deleted), new intents and
 * the folder record in one transaction */
static void
test_commit(void **state)
{
	struct fx *fx = *state;
	struct state_key k;
	struct state_map_entry e;
	struct state_intent in[2];
	struct state_intents il = { 0 };
	struct state_map m = { 0 };
	struct state_folder f, g;
	char err[256];

	assert_int_equal(state_folder_key(&k, "alice", "INBOX", err,
	    sizeof(err)), 0);
	memset(in, 0, sizeof(in));
	in[0].src_uid = 1;
	in[1].src_uid = 2;
	in[0].msgid = in[1].msgid = (char *)"";
	in[0].dst_name = in[1].dst_name = (char *)"INBOX";
	/* batch 1: intents only */
	assert_int_equal(state_commit(fx->st, &k, NULL, 0, in, 1, NULL, err,
	    sizeof(err)), 0);
	/* batch 2: batch 1's map entry with batch 2's intent */
	memset(&e, 0, sizeof(e));
	e.src_uid = 1;
	e.dst_uid = 10;
	e.origin = STATE_ORIGIN_COPIED;
	e.flags = (char *)"\\Seen";
	assert_int_equal(state_commit(fx->st, &k, &e, 1, &in[1], 1, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(state_intent_load(fx->st, &k, &il, err,
	    sizeof(err)), 0);
	assert_int_equal(il.n, 1);
	assert_int_equal(il.v[0].src_uid, 2);
	/* the end: last map entry with the folder record */
	e.src_uid = 2;
	e.dst_uid = 11;
	memset(&f, 0, sizeof(f));
	f.flags = STATE_F_COMPLETE;
	f.src_uidvalidity = 7;
	f.src_last_uid = 2;
	snprintf(f.dst_name, sizeof(f.dst_name), "INBOX");
	assert_int_equal(state_commit(fx->st, &k, &e, 1, NULL, 0, &f, err,
	    sizeof(err)), 0);
	assert_int_equal(state_intent_load(fx->st, &k, &il, err,
	    sizeof(err)), 0);
	assert_int_equal(il.n, 0);
	assert_int_equal(state_map_load(fx->st, &k, &m, err, sizeof(err)), 0);
	assert_int_equal(m.n, 2);
	assert_int_equal(m.v[1].dst_uid, 11);
	assert_int_equal(state_folder_get(fx->st, &k, &g, err, sizeof(err)),
	    0);
	assert_memory_equal(&f, &g, sizeof(f));
	/* nothing to do is no transaction at all */
	assert_int_equal(state_commit(fx->st, &k, NULL, 0, NULL, 0, NULL, err,
	    sizeof(err)), 0);
	state_map_free(&m);
	state_intents_free(&il);
}

struct ledger_put {
	unsigned char key[MSGKEY_LEN];
	int64_t when;
	int status;		/* 0: the 24-byte value of the first layout */
};

static int
ledger_put_fn(struct store_txn *tx, void *arg)
{
	struct ledger_put *p = arg;
	struct ledger_entry e;
	unsigned char val[24] = { 0 };
	int i;

	if (p->status != 0) {
		memset(&e, 0, sizeof(e));
		e.when = p->when;
		e.status = (uint8_t)p->status;
		memcpy(e.queue_id, "0123456789abcdef", LEDGER_ID_LEN + 1);
		return (ledger_put(tx, p->key, &e, time(NULL) + 3600) == 0 ?
		    0 : -1);
	}
	for (i = 0; i < 8; i++)	/* the relay's accept time, big-endian */
		val[i] = (unsigned char)((uint64_t)p->when >> (56 - 8 * i));
	return (store_put_expiring(tx, STORE_DB_LEDGER, p->key, MSGKEY_LEN,
	    val, sizeof(val), time(NULL) + 3600, 0));
}

static void
test_ledger(void **state)
{
	struct fx *fx = *state;
	struct msg_ident id;
	struct ledger_put p;
	unsigned char sha[BODY_HASH_LEN];
	char err[256];

	memset(&id, 0, sizeof(id));
	memset(sha, 0xab, sizeof(sha));
	snprintf(id.msgid, sizeof(id.msgid), "<m1@example.com>");
	id.has_msgid = 1;
	int64_t oldest = -1;

	assert_int_equal(state_ledger_oldest(fx->st, &oldest, err,
	    sizeof(err)), 0);
	assert_int_equal(oldest, 0);		/* empty */
	assert_int_equal(state_ledger_hit(fx->st, "bob@example.com", &id, sha,
	    err, sizeof(err)), 0);
	assert_int_equal(msgkey_ledger("bob@example.com", &id, sha, p.key), 0);
	p.when = 1700000000;
	p.status = 0;
	assert_int_equal(store_txn_run(fx->st, 0, ledger_put_fn, &p, err,
	    sizeof(err)), 0);
	assert_int_equal(state_ledger_oldest(fx->st, &oldest, err,
	    sizeof(err)), 0);
	assert_int_equal(oldest, 1700000000);
	/* an earlier one (another recipient) becomes the oldest */
	assert_int_equal(msgkey_ledger("carol@example.org", &id, sha, p.key), 0);
	p.when = 1600000000;
	assert_int_equal(store_txn_run(fx->st, 0, ledger_put_fn, &p, err,
	    sizeof(err)), 0);
	assert_int_equal(state_ledger_oldest(fx->st, &oldest, err,
	    sizeof(err)), 0);
	assert_int_equal(oldest, 1600000000);
	/* the mailbox is case-folded by the key */
	assert_int_equal(state_ledger_hit(fx->st, "Bob@Example.com", &id, sha,
	    err, sizeof(err)), 1);
	assert_int_equal(state_ledger_hit(fx->st, "carol@example.com", &id,
	    sha, err, sizeof(err)), STATE_LEDGER_NONE);
	assert_int_equal(state_ledger_hit(fx->st, "carol@example.org", &id,
	    sha, err, sizeof(err)), STATE_LEDGER_DELIVERED);
	/* pending (the relay still holds it) is told apart, and a pending
	 * entry's arrival time counts for the oldest */
	assert_int_equal(msgkey_ledger("dave@example.org", &id, sha, p.key), 0);
	p.when = 1500000000;
	p.status = LEDGER_PENDING;
	assert_int_equal(store_txn_run(fx->st, 0, ledger_put_fn, &p, err,
	    sizeof(err)), 0);
	assert_int_equal(state_ledger_hit(fx->st, "dave@example.org", &id,
	    sha, err, sizeof(err)), STATE_LEDGER_PENDING);
	assert_int_equal(state_ledger_oldest(fx->st, &oldest, err,
	    sizeof(err)), 0);
	assert_int_equal(oldest, 1500000000);
	/* then delivered */
	p.when = 1500000100;
	p.status = LEDGER_DELIVERED;
	assert_int_equal(store_txn_run(fx->st, 0, ledger_put_fn, &p, err,
	    sizeof(err)), 0);
	assert_int_equal(state_ledger_hit(fx->st, "dave@example.org", &id,
	    sha, err, sizeof(err)), STATE_LEDGER_DELIVERED);
	assert_int_equal(state_meta_put(fx->st, "syncd.progress", "{}", 2,
	    err, sizeof(err)), 0);
}


struct raw {
	enum store_db	 db;
	unsigned char	 key[STATE_KEY_MAX + 9];
	size_t		 klen;
	unsigned char	 val[8192];
	size_t		 vlen;
};

static int
raw_get_fn(struct store_txn *tx, void *arg)
{
	struct raw *r = arg;
	const void *v;
	size_t vlen;

	if (store_get(tx, r->db, r->key, r->klen, &v, &vlen) != 0 ||
	    vlen > sizeof(r->val))
		return (-1);
	memcpy(r->val, v, vlen);
	r->vlen = vlen;
	return (0);
}

/* raw_hex - the stored value under key in db, as hex */
static const char *
raw_hex(struct fx *fx, enum store_db db, const void *key, size_t klen)
{
	struct raw r;
	char err[256];

	memset(&r, 0, sizeof(r));
	r.db = db;
	memcpy(r.key, key, klen);
	r.klen = klen;
	if (store_txn_run(fx->st, 1, raw_get_fn, &r, err, sizeof(err)) != 0)
		fail_msg("raw get: %s", err);
	return (hex(r.val, r.vlen));
}

/* The bytes written for each record kind, pinned (the format in
 * state.h): a codec change that alters them fails here. */
static void
test_record_golden(void **state)
{
	struct fx *fx = *state;
	struct state_key k;
	struct state_folder f;
	struct state_map_entry e;
	struct state_intent in;
	unsigned char key[STATE_KEY_MAX + 9];
	size_t klen;
	char err[256];

	assert_int_equal(state_folder_key(&k, "Bob", "INBOX/x", err,
	    sizeof(err)), 0);
	assert_string_equal(hex(k.buf, k.len), "626f6200494e424f582f78");
	klen = state_uid_key(&k, 0x0102030405060708ULL, key);
	assert_string_equal(hex(key, klen), "626f6200494e424f582f78000102030405060708");

	memset(&f, 0, sizeof(f));
	f.flags = STATE_F_COMPLETE;
	f.src_uidvalidity = 1;
	f.src_uidnext = 0x1122334455667788ULL;
	f.src_last_uid = 3;
	f.src_highestmodseq = 4;
	f.src_messages = 5;
	f.dst_uidvalidity = 6;
	f.dst_highestmodseq = 7;
	f.updated = -2;
	strcpy(f.dst_name, "Dst");
	assert_int_equal(state_folder_put(fx->st, &k, &f, err, sizeof(err)),
	    0);
	assert_string_equal(raw_hex(fx, STORE_DB_SYNC_FOLDER, k.buf, k.len),
	    "01010000000000000001112233445566778800000000000000030000"
	        "00000000000400000000000000050000000000000006000000000000"
	        "0007fffffffffffffffe0003447374");

	memset(&in, 0, sizeof(in));
	in.src_uid = 9;
	in.size = 10;
	in.internaldate = -11;
	in.tz = -420;
	in.created = 12;
	memset(in.ckey, 0xab, sizeof(in.ckey));
	in.msgid = (char *)"<m@x>";
	in.dst_name = (char *)"D";
	assert_int_equal(state_intent_put(fx->st, &k, &in, 1, err,
	    sizeof(err)), 0);
	klen = state_uid_key(&k, 9, key);
	assert_string_equal(raw_hex(fx, STORE_DB_SYNC_INTENT, key, klen),
	    "01000000000000000afffffffffffffff5fffffe5c00000000000000"
	        "0cababababababababababababababababababababababababababab"
	        "ababababab00053c6d40783e000144");

	memset(&e, 0, sizeof(e));
	e.src_uid = 9;
	e.dst_uid = 13;
	e.dst_uidvalidity = 14;
	e.size = 15;
	e.internaldate = -16;
	e.origin = STATE_ORIGIN_MATCHED;
	memset(e.ckey, 0xcd, sizeof(e.ckey));
	e.flags = (char *)"\\Seen";
	assert_int_equal(state_map_commit(fx->st, &k, &e, 1, NULL, 0, err,
	    sizeof(err)), 0);
	assert_string_equal(raw_hex(fx, STORE_DB_SYNC_MAP, key, klen),
	    "0102000000000000000d000000000000000e000000000000000fffff"
	        "fffffffffff0cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
	        "cdcdcdcdcdcdcdcdcdcd00055c5365656e");
}

/* the account record: written, read back, deleted; a value cut short
 * or claiming more folders than it holds is corrupt */
static void
test_acct_record(void **state)
{
	struct fx *fx = *state;
	struct state_acct_folder f[2] = {
		{ "Archive", 0x40, 0x1f, 7, 21, 20, 99 },
		{ "INBOX", 0, 0x1f, 8, 5, 4, 12 },
	};
	struct state_acct_row rows[1] = {
		{ "INBOX", "INBOX", "", 4, 4, 4, 0 },
	};
	struct state_acct a, b;
	unsigned char bad[64];
	char err[256];

	memset(&a, 0, sizeof(a));
	a.flags = STATE_ACCT_CONDSTORE;
	a.pass_at = 1700000000;
	a.dst_checked = 1700000001;
	memset(a.digest, 0xab, sizeof(a.digest));
	a.f = f;
	a.nf = 2;
	a.rows = rows;
	a.nrows = 1;
	assert_int_equal(state_acct_get(fx->st, "Alice", &b, err,
	    sizeof(err)), STATE_NOTFOUND);
	assert_int_equal(state_acct_put(fx->st, "Alice", &a, err,
	    sizeof(err)), 0);
	/* the key is the account lower-cased, as the folder keys */
	assert_int_equal(state_acct_get(fx->st, "alice", &b, err,
	    sizeof(err)), 0);
	assert_int_equal(b.flags, STATE_ACCT_CONDSTORE);
	assert_int_equal(b.pass_at, 1700000000);
	assert_int_equal(b.dst_checked, 1700000001);
	assert_memory_equal(b.digest, a.digest, sizeof(a.digest));
	assert_int_equal(b.nf, 2);
	assert_string_equal(b.f[0].wire, "Archive");
	assert_int_equal(b.f[0].attrs, 0x40);
	assert_int_equal(b.f[0].highestmodseq, 99);
	assert_int_equal(b.f[1].uidnext, 5);
	assert_int_equal(b.nrows, 1);
	assert_string_equal(b.rows[0].dst, "INBOX");
	assert_string_equal(b.rows[0].skipped, "");
	assert_int_equal(b.rows[0].already, 4);
	state_acct_free(&b);
	assert_int_equal(state_acct_del(fx->st, "ALICE", err, sizeof(err)),
	    0);
	assert_int_equal(state_acct_get(fx->st, "alice", &b, err,
	    sizeof(err)), STATE_NOTFOUND);
	/* version 1, flags, two times, digest, then 1,000,000 folders */
	memset(bad, 0, sizeof(bad));
	bad[0] = 1;
	bad[50] = 0x0f;
	bad[51] = 0x42;
	bad[52] = 0x40;
	assert_int_equal(state_acct_decode(bad, 54, &b), -1);
	assert_int_equal(state_acct_decode(bad, 10, &b), -1);
	bad[0] = 2;
	assert_int_equal(state_acct_decode(bad, sizeof(bad), &b), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_folder_key),
		cmocka_unit_test(test_uid_key),
		cmocka_unit_test(test_content_key),
		cmocka_unit_test(test_folder_format),
		cmocka_unit_test(test_map_decode_bad),
		cmocka_unit_test_setup_teardown(test_folder_roundtrip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_map, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_golden, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ledger, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acct_record, setup,
		    teardown),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
