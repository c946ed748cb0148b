/*
 * test_queue_record.c - the LMDB queue record codec and queue ids:
 * round trips (table of records), every truncation and every single-byte
 * corruption of a valid record decodes to an error or a valid record
 * (never an overread: run under ASan/valgrind), crafted lies (huge
 * counts and lengths, overlong varints, trailing bytes), encoder
 * refusals, queue_record_done(), and queue ids that are well formed,
 * unique and increasing.  Format version 2 (the headers to prepend, the
 * per-delivery ledger keys: the format at the top of
 * common/queue_record.c) round-trips; version 1 records (no headers, no
 * ledger keys) still decode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "relay.h"

static struct delivery dlv_two[] = {
	{ "alice@example.com", DLV_UPSTREAM, DLV_PENDING, 0, 1700000000, NULL,
	    0, { 0 } },
	{ "alice@example.com", DLV_COPY, DLV_SENT, 3, 1700000100,
	    "250 2.0.0 Ok: queued as X", 0, { 0 } },
};
static struct delivery dlv_neg[] = {
	{ "b@x.org", DLV_UPSTREAM, DLV_BOUNCED, UINT32_MAX, -5, "", 0, { 0 } },
};

static struct delivery dlv_keys[] = {
	{ "alice@example.com", DLV_UPSTREAM, DLV_PENDING, 0, 1700000000, NULL,
	    1, { 0x00, 0x01, 0x02, 0xfe, 0xff, [31] = 0x80 } },
	{ "alice@example.com", DLV_COPY, DLV_PENDING, 0, 1700000000, NULL,
	    0, { 0 } },
	{ "carol@example.com", DLV_UPSTREAM, DLV_SENT, 1, 1700000000, "250 ok",
	    1, { [0 ... 31] = 0xa5 } },
};

static const struct queue_record records[] = {
	{ "0123456789abcdef", 1700000000, 4096, 0, "bob@example.org",
	    "mail.example.org [192.0.2.1]", 2, dlv_two, NULL, 0, { 0 } },
	{ "ffffffffffffffff", 0, 0, QR_HELD | QR_DSN, "", "", 0, NULL, NULL,
	    0, { 0 } },
	{ "0000000000000000", INT64_MIN, UINT64_MAX, UINT32_MAX,
	    "\"odd local\"@example.org", "h [::1]", 1, dlv_neg, NULL, 0,
	    { 0 } },
	{ "00000000000000a1", INT64_MAX, 1, 0, "x", "y", 1, dlv_neg, NULL, 0,
	    { 0 } },
	/* version 2: the A-R header to prepend and ledger keys */
	{ "00000000000000b2", 1700000000, 100, 0, "bob@example.org",
	    "h [192.0.2.1]", 3, dlv_keys,
	    "Authentication-Results: relay.test;\r\n"
	    "\tspf=pass smtp.mailfrom=example.org\r\n", 0, { 0 } },
	{ "00000000000000b3", 1, 1, 0, "", "", 1, dlv_neg, "", 0, { 0 } },
};

static void
assert_records_equal(const struct queue_record *a, const struct queue_record *b)
{
	size_t i;

	assert_string_equal(a->id, b->id);
	assert_true(a->arrived == b->arrived);
	assert_true(a->size == b->size);
	assert_int_equal(a->flags, b->flags);
	assert_string_equal(a->sender, b->sender);
	assert_string_equal(a->client, b->client);
	if (a->headers == NULL)
		assert_null(b->headers);
	else
		assert_string_equal(a->headers, b->headers);
	assert_int_equal(a->ndlv, b->ndlv);
	for (i = 0; i < a->ndlv; i++) {
		assert_string_equal(a->dlv[i].rcpt, b->dlv[i].rcpt);
		assert_int_equal(a->dlv[i].dest, b->dlv[i].dest);
		assert_int_equal(a->dlv[i].state, b->dlv[i].state);
		assert_int_equal(a->dlv[i].attempts, b->dlv[i].attempts);
		assert_true(a->dlv[i].next_try == b->dlv[i].next_try);
		if (a->dlv[i].last_reply == NULL)
			assert_null(b->dlv[i].last_reply);
		else
			assert_string_equal(a->dlv[i].last_reply,
			    b->dlv[i].last_reply);
		assert_int_equal(a->dlv[i].has_ledger_key,
		    b->dlv[i].has_ledger_key);
		if (a->dlv[i].has_ledger_key)
			assert_memory_equal(a->dlv[i].ledger_key,
			    b->dlv[i].ledger_key, 32);
	}
}

static void
test_roundtrip(void **state)
{
	struct queue_record out;
	unsigned char *buf;
	size_t len, i;
	char err[128];

	(void)state;
	for (i = 0; i < sizeof(records) / sizeof(records[0]); i++) {
		assert_int_equal(queue_record_encode(&records[i], &buf, &len), 0);
		assert_int_equal(queue_record_decode(buf, len, &out, err,
		    sizeof(err)), 0);
		assert_records_equal(&records[i], &out);
		queue_record_clear(&out);
		queue_record_clear(&out);	/* idempotent */
		free(buf);
	}
}

/* A record with no sender pointer encodes as "" (the <> sender). */
static void
test_null_sender(void **state)
{
	struct queue_record in = records[1], out;
	unsigned char *buf;
	size_t len;
	char err[128];

	(void)state;
	in.sender = NULL;
	in.client = NULL;
	assert_int_equal(queue_record_encode(&in, &buf, &len), 0);
	assert_int_equal(queue_record_decode(buf, len, &out, err, sizeof(err)), 0);
	assert_string_equal(out.sender, "");
	assert_string_equal(out.client, "");
	queue_record_clear(&out);
	free(buf);
}

/* Every prefix of a valid record is an error; a copy in a buffer of the
 * exact size makes ASan catch any read past the end. */
static void
test_truncated(void **state)
{
	struct queue_record out;
	unsigned char *buf, *cut;
	size_t len, n;
	char err[128];

	(void)state;
	assert_int_equal(queue_record_encode(&records[4], &buf, &len), 0);
	for (n = 0; n < len; n++) {
		cut = malloc(n ? n : 1);
		assert_non_null(cut);
		memcpy(cut, buf, n);
		err[0] = '\0';
		assert_int_equal(queue_record_decode(cut, n, &out, err,
		    sizeof(err)), -1);
		assert_true(strncmp(err, "queue record: ", 14) == 0);
		assert_null(out.dlv);
		assert_null(out.sender);
		free(cut);
	}
	assert_int_equal(queue_record_decode(NULL, 0, &out, err, sizeof(err)),
	    -1);
	free(buf);
}

/* Flip every byte to every value: decode must either fail cleanly or
 * produce a record that re-encodes (no crash, no leak, no overread). */
static void
test_corrupt_bytes(void **state)
{
	struct queue_record out;
	unsigned char *buf, *copy, *re;
	size_t len, relen, i;
	unsigned v;
	char err[128];

	(void)state;
	assert_int_equal(queue_record_encode(&records[4], &buf, &len), 0);
	copy = malloc(len);
	assert_non_null(copy);
	for (i = 0; i < len; i++) {
		for (v = 0; v < 256; v++) {
			memcpy(copy, buf, len);
			copy[i] = (unsigned char)v;
			if (queue_record_decode(copy, len, &out, err,
			    sizeof(err)) == 0) {
				assert_int_equal(queue_record_encode(&out, &re,
				    &relen), 0);
				free(re);
				queue_record_clear(&out);
			}
		}
	}
	free(copy);
	free(buf);
}

/* Hand-made lies. */
static const struct {
	const char	*name;
	const char	*bytes;
	size_t		 len;
	const char	*why;
} bad[] = {
#define ID "0123456789abcdef"
#define B(s) s, sizeof(s) - 1
	{ "empty", B(""), "truncated" },
	{ "magic", B("X\001" ID "\0\0\0\0\0\0"), "bad magic" },
	{ "version 0", B("Q\000" ID "\0\0\0\0\0\0"), "unknown version" },
	{ "version 3", B("Q\003" ID "\0\0\0\0\0\0\0"), "unknown version" },
	/* version 2: headers (an ostring) before ndlv, a key flag (and
	 * the key) after each delivery */
	{ "v2 headers lie", B("Q\002" ID "\0\0\0\0\0" "\011ab"),
	    "truncated string" },
	{ "v2 no key flag", B("Q\002" ID "\0\0\0\0\0\0" "\001"
	    "\0\0\0\0\001a\0"), "truncated" },
	{ "v2 bad key flag", B("Q\002" ID "\0\0\0\0\0\0" "\001"
	    "\0\0\0\0\001a\0\002"), "bad ledger key flag" },
	{ "v2 key truncated", B("Q\002" ID "\0\0\0\0\0\0" "\001"
	    "\0\0\0\0\001a\0\001" "0123456789abcdef0123456789abcde"),
	    "truncated ledger key" },
	{ "v2 trailing", B("Q\002" ID "\0\0\0\0\0\0\0" "x"),
	    "trailing bytes" },
	{ "id not hex", B("Q\001" "0123456789abcdeX" "\0\0\0\0\0\0"),
	    "bad id" },
	{ "id upper", B("Q\001" "0123456789ABCDEF" "\0\0\0\0\0\0"), "bad id" },
	{ "huge ndlv", B("Q\001" ID "\0\0\0\0\0" "\xff\xff\xff\xff\x0f"),
	    "bad delivery count" },
	{ "ndlv beyond data",
	    B("Q\001" ID "\0\0\0\0\0" "\002" "\0\0\0\0\0\0"),
	    "bad delivery count" },
	{ "sender length lie", B("Q\001" ID "\0\0\0" "\x7f" "ab"),
	    "truncated string" },
	{ "string too long", B("Q\001" ID "\0\0\0" "\xff\xff\x7f" "ab"),
	    "string too long" },
	{ "varint 11 bytes", B("Q\001" ID "\x80\x80\x80\x80\x80\x80\x80"
	    "\x80\x80\x80\x01"), "integer too long" },
	{ "varint overflow", B("Q\001" ID "\x80\x80\x80\x80\x80\x80\x80"
	    "\x80\x80\x02"), "integer overflow" },
	{ "flags > 32 bits", B("Q\001" ID "\x80\x80\x80\x80\x10" "\0\0\0\0\0"),
	    "bad flags" },
	{ "NUL in sender", B("Q\001" ID "\0\0\0" "\002a\0" "\0\0"),
	    "NUL in string" },
	{ "trailing", B("Q\001" ID "\0\0\0\0\0\0" "x"), "trailing bytes" },
	{ "bad dest", B("Q\001" ID "\0\0\0\0\0" "\001" "\002\0\0\0\001a\0"),
	    "bad destination" },
	{ "bad state", B("Q\001" ID "\0\0\0\0\0" "\001" "\0\003\0\0\001a\0"),
	    "bad delivery state" },
	{ "reply length lie",
	    B("Q\001" ID "\0\0\0\0\0" "\001" "\0\0\0\0\001a\011"),
	    "truncated string" },
#undef B
#undef ID
};

static void
test_bad(void **state)
{
	struct queue_record out;
	char err[128], want[128];
	unsigned char *copy;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		copy = malloc(bad[i].len ? bad[i].len : 1);
		assert_non_null(copy);
		memcpy(copy, bad[i].bytes, bad[i].len);
		err[0] = '\0';
		if (queue_record_decode(copy, bad[i].len, &out, err,
		    sizeof(err)) != -1)
			fail_msg("case %zu (%s): decoded", i, bad[i].name);
		snprintf(want, sizeof(want), "queue record: %s", bad[i].why);
		if (strcmp(err, want) != 0)
			fail_msg("case %zu (%s): \"%s\", want \"%s\"", i,
			    bad[i].name, err, want);
		free(copy);
	}
}

/* A minimal valid hand-made record, so the table above tests what it
 * means to (the lies differ from a good record in one place). */
static void
test_good_minimal(void **state)
{
	static const char good[] = "Q\001" "0123456789abcdef" "\0\0\0\0\0"
	    "\001" "\001\002\005\003\001a\002z";
	struct queue_record out;
	char err[128];

	(void)state;
	assert_int_equal(queue_record_decode(good, sizeof(good) - 1, &out, err,
	    sizeof(err)), 0);
	assert_int_equal(out.ndlv, 1);
	assert_int_equal(out.dlv[0].dest, DLV_COPY);
	assert_int_equal(out.dlv[0].state, DLV_BOUNCED);
	assert_int_equal(out.dlv[0].attempts, 5);
	assert_true(out.dlv[0].next_try == -2);
	assert_string_equal(out.dlv[0].rcpt, "a");
	assert_string_equal(out.dlv[0].last_reply, "z");
	assert_null(out.headers);	/* version 1: none */
	assert_int_equal(out.dlv[0].has_ledger_key, 0);
	queue_record_clear(&out);
}

/* The same, version 2, with headers and a ledger key. */
static void
test_good_minimal_v2(void **state)
{
	static const char good[] = "Q\002" "0123456789abcdef" "\0\0\0\0\0"
	    "\004H\r\n" "\001" "\0\0\005\003\001a\0"
	    "\001" "0123456789abcdef0123456789abcdef";
	struct queue_record out;
	char err[128];

	(void)state;
	assert_int_equal(queue_record_decode(good, sizeof(good) - 1, &out, err,
	    sizeof(err)), 0);
	assert_string_equal(out.headers, "H\r\n");
	assert_int_equal(out.ndlv, 1);
	assert_int_equal(out.dlv[0].dest, DLV_UPSTREAM);
	assert_int_equal(out.dlv[0].state, DLV_PENDING);
	assert_null(out.dlv[0].last_reply);
	assert_int_equal(out.dlv[0].has_ledger_key, 1);
	assert_memory_equal(out.dlv[0].ledger_key,
	    "0123456789abcdef0123456789abcdef", 32);
	queue_record_clear(&out);
}

/* What we write now is version 2, and the relay key is not in it. */
static void
test_writes_v2(void **state)
{
	struct queue_record in = records[4], out;
	unsigned char *buf;
	size_t len;
	char err[128];

	(void)state;
	in.has_relay_key = 1;
	memset(in.relay_key, 0x5a, sizeof(in.relay_key));
	assert_int_equal(queue_record_encode(&in, &buf, &len), 0);
	assert_int_equal(buf[0], 'Q');
	assert_int_equal(buf[1], 2);
	assert_int_equal(queue_record_decode(buf, len, &out, err, sizeof(err)),
	    0);
	assert_int_equal(out.has_relay_key, 0);
	assert_records_equal(&records[4], &out);
	queue_record_clear(&out);
	free(buf);
}

static void
test_encode_refuses(void **state)
{
	struct queue_record r = records[0];
	struct delivery d = dlv_two[0];
	unsigned char *buf = (unsigned char *)"x";
	size_t len = 1;

	(void)state;
	strcpy(r.id, "0123456789ABCDEF");
	assert_int_equal(queue_record_encode(&r, &buf, &len), -1);
	assert_null(buf);
	strcpy(r.id, "0123");
	assert_int_equal(queue_record_encode(&r, &buf, &len), -1);
	r = records[0];
	d.rcpt = NULL;
	r.dlv = &d;
	r.ndlv = 1;
	assert_int_equal(queue_record_encode(&r, &buf, &len), -1);
}

static void
test_done(void **state)
{
	struct delivery d[3] = {
		{ "a", DLV_UPSTREAM, DLV_SENT, 1, 0, NULL, 0, { 0 } },
		{ "a", DLV_COPY, DLV_BOUNCED, 1, 0, NULL, 0, { 0 } },
		{ "b", DLV_UPSTREAM, DLV_PENDING, 0, 0, NULL, 0, { 0 } },
	};
	struct queue_record r = records[1];

	(void)state;
	assert_int_equal(queue_record_done(&r), 1);	/* no deliveries */
	r.dlv = d;
	r.ndlv = 2;
	assert_int_equal(queue_record_done(&r), 1);
	r.ndlv = 3;
	assert_int_equal(queue_record_done(&r), 0);
}

static void
test_ids(void **state)
{
	char prev[QUEUE_ID_LEN + 1] = "", id[QUEUE_ID_LEN + 1];
	int i;

	(void)state;
	for (i = 0; i < 100000; i++) {
		assert_int_equal(queue_id_new(id), 0);
		assert_int_equal(strlen(id), QUEUE_ID_LEN);
		assert_int_equal(strspn(id, "0123456789abcdef"), QUEUE_ID_LEN);
		if (strcmp(prev, id) >= 0)
			fail_msg("id %d: %s after %s", i, id, prev);
		memcpy(prev, id, sizeof(id));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_null_sender),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_corrupt_bytes),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_good_minimal),
		cmocka_unit_test(test_good_minimal_v2),
		cmocka_unit_test(test_writes_v2),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_done),
		cmocka_unit_test(test_ids),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
