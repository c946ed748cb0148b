/*
 * test_dkim_verify.c - relay/dkim_verify with real signatures: RSA ones
 * made here with libopendkim's signing API (rsa-sha256, and rsa-sha1 to
 * see it refused), Ed25519 ones from fixtures made once with the same API
 * through tests/integration/dkim_tool (tests/integration/data/dkim/README
 * says how, and why Ed25519 signing is not done in this process: the
 * library leaks every Ed25519 signing key).  Keys are served by a fake
 * key source: a table answered from the event loop, like the resolver
 * would, so the async path (look-ups outstanding while the body streams,
 * cancellation, a done callback that frees the message) is the real one.
 * DNS itself is tested in tests/integration/test_dkim.sh.
 *
 * Fixtures are read from $top_srcdir/tests/integration/data/dkim (the
 * environment variable, else TOP_SRCDIR from the build, else ".").
 */

#include <sys/queue.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <dkim.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "dkim_verify.h"
#include "dns.h"

/* --- keys and signing ---------------------------------------------------- */

struct testkey {
	char	*pem;		/* private key, PEM (what dkim_sign takes) */
	char	*record;	/* "v=DKIM1; k=...; p=..." */
};

static struct testkey	 rsa_key, ed_key;
static DKIM_LIB		*sign_lib;
static DKIM_LIB		*oversign_lib;	/* h= lists From once more */
static char		*edrsa_record;	/* k=ed25519 holding the RSA key */

static char *
b64(const unsigned char *der, int len)
{
	char *out = malloc((size_t)(4 * ((len + 2) / 3) + 1));

	assert_non_null(out);
	EVP_EncodeBlock((unsigned char *)out, der, len);
	return (out);
}

/* fixture - a file of tests/integration/data/dkim, bare LF made CRLF */
static char *
fixture(const char *name)
{
	const char *top = getenv("top_srcdir");
	char path[4096], *buf, *out;
	size_t len, i, n = 0;
	FILE *f;
	long sz;

#ifdef TOP_SRCDIR
	if (top == NULL)
		top = TOP_SRCDIR;
#endif
	if (top == NULL)
		top = ".";
	snprintf(path, sizeof(path), "%s/tests/integration/data/dkim/%s",
	    top, name);
	if ((f = fopen(path, "rb")) == NULL)
		fail_msg("cannot open fixture %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	sz = ftell(f);
	assert_true(sz >= 0);
	rewind(f);
	buf = malloc((size_t)sz + 1);
	assert_non_null(buf);
	len = fread(buf, 1, (size_t)sz, f);
	fclose(f);
	out = malloc(2 * len + 1);
	assert_non_null(out);
	for (i = 0; i < len; i++) {
		if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
			out[n++] = '\r';
		out[n++] = buf[i];
	}
	out[n] = '\0';
	free(buf);
	return (out);
}

/* key_load - a fixture private key and its DNS record */
static void
key_load(struct testkey *k, const char *name)
{
	EVP_PKEY *pk;
	BIO *bio;
	unsigned char raw[1024], *p = raw;
	size_t rawlen = sizeof(raw);
	char *pub;
	int len, ed;

	k->pem = fixture(name);
	bio = BIO_new_mem_buf(k->pem, -1);
	assert_non_null(bio);
	pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(pk);
	ed = EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519;
	if (ed) {	/* RFC 8463: p= is the raw 32-byte public key */
		assert_true(EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) == 1);
		len = (int)rawlen;
	} else {	/* RFC 6376: SubjectPublicKeyInfo, DER */
		len = i2d_PUBKEY(pk, &p);
		assert_true(len > 0);
	}
	pub = b64(raw, len);
	assert_true(asprintf(&k->record, "v=DKIM1; k=%s; p=%s",
	    ed ? "ed25519" : "rsa", pub) > 0);
	free(pub);
	EVP_PKEY_free(pk);
}

/* sign - text signed with the RSA key as s=selector, d=example.test;
 * the new DKIM-Signature field goes on top.  Returns a malloc'd message.
 * (Ed25519 signatures come from fixtures, see the top of this file.) */
static char *
sign_with(DKIM_LIB *sl, const char *text, const struct testkey *k,
    dkim_alg_t alg, const char *selector)
{
	assert_int_not_equal(alg, DKIM_SIGN_ED25519SHA256);
	DKIM *d;
	DKIM_STAT st;
	unsigned char *hdr;
	size_t hlen;
	char *out;

	d = dkim_sign(sl, (const u_char *)"test", NULL,
	    (dkim_sigkey_t)k->pem, (const u_char *)selector,
	    (const u_char *)"example.test", DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED, alg, -1, &st);
	assert_non_null(d);
	assert_int_equal(dkim_chunk(d, (u_char *)text, strlen(text)),
	    DKIM_STAT_OK);
	assert_int_equal(dkim_chunk(d, NULL, 0), DKIM_STAT_OK);
	assert_int_equal(dkim_eom(d, NULL), DKIM_STAT_OK);
	assert_int_equal(dkim_getsighdr_d(d, strlen("DKIM-Signature: "),
	    &hdr, &hlen), DKIM_STAT_OK);
	assert_true(asprintf(&out, "DKIM-Signature: %.*s\r\n%s", (int)hlen,
	    (char *)hdr, text) > 0);
	dkim_free(d);
	return (out);
}

static char *
sign(const char *text, const struct testkey *k, dkim_alg_t alg,
    const char *selector)
{
	return (sign_with(sign_lib, text, k, alg, selector));
}

/* replace - text with the first from replaced by to (malloc'd) */
static char *
replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	char *out;

	assert_non_null(at);
	assert_true(asprintf(&out, "%.*s%s%s", (int)(at - text), text, to,
	    at + strlen(from)) > 0);
	return (out);
}

/* bprefix - the first 8 characters of b= in the first DKIM-Signature
 * field of text */
static void
bprefix(const char *text, char out[9])
{
	const char *p = strstr(text, "DKIM-Signature:"), *e;
	char flat[8192];
	size_t n = 0;

	assert_non_null(p);
	for (e = p; *e != '\0'; e++) {
		if (e[0] == '\n' && e[1] != ' ' && e[1] != '\t')
			break;
		if ((unsigned char)*e > ' ' && n + 1 < sizeof(flat))
			flat[n++] = *e;
	}
	flat[n] = '\0';
	p = strstr(flat, ";b=");
	assert_non_null(p);
	snprintf(out, 9, "%s", p + 3);
}

/* --- the fake key source ------------------------------------------------- */

enum fake_kind { F_TXT, F_NXDOMAIN, F_NODATA, F_TEMP, F_PERM, F_NEVER };

struct fake_rec {
	const char	*name;
	enum fake_kind	 kind;
	const char	*txt[2];	/* F_TXT: one or two records */
};

struct fake_query {
	TAILQ_ENTRY(fake_query) entry;
	uint64_t	 id;
	dns_cb		 cb;
	void		*arg;
	const struct fake_rec *rec;
	char		 name[DNS_NAME_MAX + 2];
	struct event	*ev;		/* NULL: never answers */
};

static struct {
	struct event_base *base;
	struct fake_rec	 recs[16];
	size_t		 nrecs;
	TAILQ_HEAD(, fake_query) queries;
	uint64_t	 next_id;
	int		 starts, cancels;
} fake;

static void
fake_add(const char *name, enum fake_kind kind, const char *txt0,
    const char *txt1)
{
	struct fake_rec *r = &fake.recs[fake.nrecs++];

	r->name = name;
	r->kind = kind;
	r->txt[0] = txt0;
	r->txt[1] = txt1;
}

static void
fake_answer(evutil_socket_t fd, short what, void *arg)
{
	struct fake_query *q = arg;
	struct dns_result res;
	struct dns_txt txt[2];
	int status = DNS_NXDOMAIN;
	size_t i;

	(void)fd;
	(void)what;
	TAILQ_REMOVE(&fake.queries, q, entry);
	memset(&res, 0, sizeof(res));
	res.type = DNS_TXT;
	snprintf(res.name, sizeof(res.name), "%s", q->name);
	if (q->rec != NULL)
		switch (q->rec->kind) {
		case F_TXT:
			status = DNS_OK;
			for (i = 0; i < 2 && q->rec->txt[i] != NULL; i++) {
				txt[i].data = (unsigned char *)q->rec->txt[i];
				txt[i].len = strlen(q->rec->txt[i]);
			}
			res.count = i;
			res.txt = txt;
			break;
		case F_NODATA:
			status = DNS_NODATA;
			break;
		case F_TEMP:
			status = DNS_TEMPFAIL;
			snprintf(res.why, sizeof(res.why), "timeout after 5000 ms");
			break;
		case F_PERM:
			status = DNS_PERMFAIL;
			snprintf(res.why, sizeof(res.why), "bad rdata");
			break;
		default:
			break;
		}
	q->cb(status, &res, q->arg);
	event_free(q->ev);
	free(q);
}

static int
fake_start(void *ctx, const char *name, dns_cb cb, void *arg,
    uint64_t *id_r, char *err, size_t errlen)
{
	struct fake_query *q;
	struct timeval tv = { 0, 1000 };
	size_t i;

	(void)ctx;
	(void)err;
	(void)errlen;
	fake.starts++;
	q = calloc(1, sizeof(*q));
	assert_non_null(q);
	q->id = ++fake.next_id;
	q->cb = cb;
	q->arg = arg;
	snprintf(q->name, sizeof(q->name), "%s", name);
	for (i = 0; i < fake.nrecs; i++)
		if (strcasecmp(fake.recs[i].name, name) == 0)
			q->rec = &fake.recs[i];
	if (q->rec == NULL || q->rec->kind != F_NEVER) {
		q->ev = evtimer_new(fake.base, fake_answer, q);
		assert_non_null(q->ev);
		evtimer_add(q->ev, &tv);
	}
	TAILQ_INSERT_TAIL(&fake.queries, q, entry);
	*id_r = q->id;
	return (0);
}

static void
fake_cancel(void *ctx, uint64_t id)
{
	struct fake_query *q;

	(void)ctx;
	TAILQ_FOREACH(q, &fake.queries, entry)
		if (q->id == id) {
			TAILQ_REMOVE(&fake.queries, q, entry);
			if (q->ev != NULL)
				event_free(q->ev);
			free(q);
			fake.cancels++;
			return;
		}
	fail_msg("cancel of unknown look-up %llu", (unsigned long long)id);
}

/* --- fixture ----------------------------------------------------------- */

static struct dkimv_lib	*lib;
static char		*plain;		/* the unsigned test message */

static int
group_setup(void **state)
{
	struct dkimv_key_source src = { fake_start, fake_cancel, NULL };
	char err[128];

	(void)state;
	key_load(&rsa_key, "rsa.private");
	key_load(&ed_key, "ed25519.private");
	sign_lib = dkim_init(NULL, NULL);
	assert_non_null(sign_lib);
	oversign_lib = dkim_init(NULL, NULL);
	assert_non_null(oversign_lib);
	{
		static const char *over[] = { "from", NULL };

		assert_int_equal(dkim_options(oversign_lib, DKIM_OP_SETOPT,
		    DKIM_OPTS_OVERSIGNHDRS, over, sizeof(char **)), DKIM_STAT_OK);
	}
	edrsa_record = replace(rsa_key.record, "k=rsa", "k=ed25519");

	fake.base = event_base_new();
	assert_non_null(fake.base);
	TAILQ_INIT(&fake.queries);
	fake_add("rsa._domainkey.example.test", F_TXT, rsa_key.record, NULL);
	fake_add("ed._domainkey.example.test", F_TXT, ed_key.record, NULL);
	fake_add("nodata._domainkey.example.test", F_NODATA, NULL, NULL);
	fake_add("temp._domainkey.example.test", F_TEMP, NULL, NULL);
	fake_add("perm._domainkey.example.test", F_PERM, NULL, NULL);
	fake_add("slow._domainkey.example.test", F_NEVER, NULL, NULL);
	fake_add("garbage._domainkey.example.test", F_TXT,
	    "v=DKIM1; k=rsa; p=!!!not base64!!!", NULL);
	fake_add("revoked._domainkey.example.test", F_TXT,
	    "v=DKIM1; k=rsa; p=", NULL);
	fake_add("novalue._domainkey.example.test", F_TXT, "v=DKIM1; k", NULL);
	fake_add("multi._domainkey.example.test", F_TXT, rsa_key.record,
	    rsa_key.record);
	fake_add("mismatch._domainkey.example.test", F_TXT, ed_key.record,
	    NULL);
	fake_add("edrsa._domainkey.example.test", F_TXT, edrsa_record, NULL);
	fake_add("web._domainkey.example.test", F_TXT, "v=DKIM1; k=rsa; "
	    "s=web; p=AAAA", NULL);
	/* "nokey" is in no table: NXDOMAIN */

	assert_int_equal(dkimv_lib_new(&lib, fake.base, NULL, err,
	    sizeof(err)), 0);
	dkimv_lib_set_key_source(lib, &src);

	/* about 4 KiB: long enough for chunking to matter; the Ed25519
	 * fixtures are this message signed */
	plain = fixture("plain.eml");
	return (0);
}

static int
group_teardown(void **state)
{
	(void)state;
	dkimv_lib_free(&lib);
	assert_null(lib);
	assert_true(TAILQ_EMPTY(&fake.queries));
	event_base_free(fake.base);
	dkim_close(sign_lib);
	dkim_close(oversign_lib);
	free(edrsa_record);
	free(rsa_key.pem);
	free(rsa_key.record);
	free(ed_key.pem);
	free(ed_key.record);
	free(plain);
	return (0);
}

static int
test_setup(void **state)
{
	(void)state;
	fake.starts = fake.cancels = 0;
	return (0);
}

/* --- the driver ---------------------------------------------------------- */

enum chunking { CH_WHOLE, CH_BYTES, CH_RANDOM, CH_ALL_THEN_EOH };

struct run {
	struct dkimv_msg *msg;
	int		 done_calls;
	int		 in_eoh;	/* set while dkimv_msg_eoh() runs */
	int		 done_in_eoh;
	int		 free_in_done;	/* eom + free from done_cb */
	const struct dkimv_result *res;
	size_t		 n;
	struct dkimv_result copy[DKIMV_MAX_SIGS];
};

static void
done_cb(struct dkimv_msg *msg, void *arg)
{
	struct run *r = arg;
	const struct dkimv_result *res;
	size_t n;

	assert_ptr_equal(msg, r->msg);
	r->done_calls++;
	if (r->in_eoh)
		r->done_in_eoh = 1;
	if (r->free_in_done) {
		assert_int_equal(dkimv_msg_eom(msg, &res, &n), 0);
		r->n = n;
		memcpy(r->copy, res, n * sizeof(*res));
		dkimv_msg_free(&r->msg);
	}
}

/* feed - bytes [from, to) of text in pieces; the loop runs in between
 * so look-ups answer while the body is still coming */
static void
feed(struct run *r, const char *text, size_t from, size_t to,
    enum chunking how, unsigned *seed)
{
	size_t n;

	/* r->msg NULL: done_cb freed the message (free_in_done) */
	while (from < to && r->msg != NULL) {
		switch (how) {
		case CH_BYTES:
			n = 1;
			break;
		case CH_RANDOM:
			n = 1 + (size_t)(rand_r(seed) % 97);
			break;
		default:
			n = to - from;
			break;
		}
		if (n > to - from)
			n = to - from;
		assert_int_equal(dkimv_msg_chunk(r->msg, text + from, n), 0);
		from += n;
		(void)event_base_loop(fake.base, EVLOOP_NONBLOCK);
	}
}

/* verify_run - the whole flow; results in r->res / r->n (or r->copy
 * when done_cb freed the message) */
static void
verify_run(struct run *r, const char *text, enum chunking how)
{
	const char *e = strstr(text, "\r\n\r\n");
	size_t len = strlen(text), hend = e != NULL ? (size_t)(e - text) + 4 :
	    len;
	unsigned seed = 42;
	int spins;

	r->msg = dkimv_msg_new(lib, "0123456789abcdef");
	assert_non_null(r->msg);
	if (how == CH_ALL_THEN_EOH)
		feed(r, text, 0, len, CH_WHOLE, &seed);
	else
		feed(r, text, 0, hend, how, &seed);
	r->in_eoh = 1;
	assert_int_equal(dkimv_msg_eoh(r->msg, done_cb, r), 0);
	r->in_eoh = 0;
	assert_int_equal(r->done_calls, 0);	/* never from inside */
	if (how != CH_ALL_THEN_EOH)
		feed(r, text, hend, len, how, &seed);
	for (spins = 0; r->done_calls == 0 && spins < 1000; spins++)
		(void)event_base_loop(fake.base, EVLOOP_ONCE);
	assert_int_equal(r->done_calls, 1);
	assert_int_equal(r->done_in_eoh, 0);
	if (r->msg == NULL) {
		r->res = r->copy;
		return;
	}
	assert_true(dkimv_msg_ready(r->msg));
	assert_int_equal(dkimv_msg_eom(r->msg, &r->res, &r->n), 0);
	assert_true(r->n >= 1);
}

static void
run_free(struct run *r)
{
	dkimv_msg_free(&r->msg);
	assert_null(r->msg);
	/* nothing may call back later */
	(void)event_base_loop(fake.base, EVLOOP_NONBLOCK);
	assert_true(r->done_calls <= 1);
}

/* --- table-driven verdicts ------------------------------------------------ */

struct want {
	enum dkimv_res	 res;
	const char	*selector;
	const char	*reason;	/* substring; NULL: don't care */
};

struct vcase {
	const char	*name;
	const char	*base;		/* fixture to start from; NULL: plain */
	/* RSA signatures added on top, in order (the last one on top) */
	struct { const char *sel; dkim_alg_t alg; } sig[2];
	int		 nsig;
	const char	*from, *to;	/* change after signing, or NULL */
	struct want	 want[2];	/* in header order: top first */
	int		 nwant;
	int		 lookups;	/* look-ups expected */
};

#define RSA256	DKIM_SIGN_RSASHA256
#define ED	"plain.ed.eml"		/* plain, ed25519 s=ed */
#define RSA_ED	"plain.rsa-ed.eml"	/* plain, rsa s=rsa, then ed25519 */

static const struct vcase vcases[] = {
	{ "rsa-sha256 pass", NULL, { { "rsa", RSA256 } }, 1, NULL, NULL,
	    { { DKIMV_PASS, "rsa", "" } }, 1, 1 },
	{ "ed25519-sha256 pass", ED, { { 0 } }, 0, NULL, NULL,
	    { { DKIMV_PASS, "ed", "" } }, 1, 1 },
	{ "rsa and ed25519 both pass", RSA_ED, { { 0 } }, 0, NULL, NULL,
	    { { DKIMV_PASS, "ed", "" }, { DKIMV_PASS, "rsa", "" } }, 2, 2 },
	{ "rsa: body altered after signing", NULL, { { "rsa", RSA256 } }, 1,
	    "the lazy dog", "the lazy cat",
	    { { DKIMV_FAIL, "rsa", "body hash mismatch" } }, 1, 1 },
	{ "ed25519: body altered after signing", ED, { { 0 } }, 0,
	    "Hello Bob", "Hello Eve",
	    { { DKIMV_FAIL, "ed", "body hash mismatch" } }, 1, 1 },
	{ "rsa: signed header altered", NULL, { { "rsa", RSA256 } }, 1,
	    "Subject: a test", "Subject: a tost",
	    { { DKIMV_FAIL, "rsa", "signature did not verify" } }, 1, 1 },
	{ "ed25519: signed header altered", ED, { { 0 } }, 0,
	    "alice@example.test", "mallory@example.test",
	    { { DKIMV_FAIL, "ed", "signature did not verify" } }, 1, 1 },
	{ "trace header prepended: still pass", NULL, { { "rsa", RSA256 } },
	    1, "DKIM-Signature:", "Received: from x by y; Mon, 23 Nov 2026 "
	    "10:00:01 +0000\r\nDKIM-Signature:",
	    { { DKIMV_PASS, "rsa", "" } }, 1, 1 },
	{ "trace header prepended: both still pass", RSA_ED, { { 0 } }, 0,
	    "DKIM-Signature:", "Authentication-Results: x; none\r\n"
	    "DKIM-Signature:",
	    { { DKIMV_PASS, "ed", "" }, { DKIMV_PASS, "rsa", "" } }, 2, 2 },
	{ "relaxed body: trailing blanks changed, still pass", NULL,
	    { { "rsa", RSA256 } }, 1, "dog \t \r\n", "dog\r\n",
	    { { DKIMV_PASS, "rsa", "" } }, 1, 1 },
	{ "no key (NXDOMAIN)", NULL, { { "nokey", RSA256 } }, 1, NULL, NULL,
	    { { DKIMV_PERMERROR, "nokey", "NXDOMAIN" } }, 1, 1 },
	{ "no key (NODATA)", NULL, { { "nodata", RSA256 } }, 1, NULL, NULL,
	    { { DKIMV_PERMERROR, "nodata", "no TXT" } }, 1, 1 },
	{ "key look-up temporary failure", NULL, { { "temp", RSA256 } }, 1,
	    NULL, NULL, { { DKIMV_TEMPERROR, "temp", "timeout" } }, 1, 1 },
	{ "malformed DNS answer", NULL, { { "perm", RSA256 } }, 1, NULL, NULL,
	    { { DKIMV_PERMERROR, "perm", "bad rdata" } }, 1, 1 },
	{ "key not base64", NULL, { { "garbage", RSA256 } }, 1, NULL, NULL,
	    { { DKIMV_PERMERROR, "garbage", NULL } }, 1, 1 },
	{ "key record syntax", NULL, { { "novalue", RSA256 } }, 1, NULL,
	    NULL, { { DKIMV_PERMERROR, "novalue", NULL } }, 1, 1 },
	{ "key revoked", NULL, { { "revoked", RSA256 } }, 1, NULL, NULL,
	    { { DKIMV_PERMERROR, "revoked", "revoked" } }, 1, 1 },
	{ "two key records", NULL, { { "multi", RSA256 } }, 1, NULL, NULL,
	    { { DKIMV_PERMERROR, "multi", "2 key records" } }, 1, 1 },
	{ "rsa signature, ed25519 key", NULL, { { "mismatch", RSA256 } }, 1,
	    NULL, NULL, { { DKIMV_PERMERROR, "mismatch", NULL } }, 1, 1 },
	{ "unsigned From above the signed From: fail", NULL,
	    { { "rsa", RSA256 } }, 1, "From: Alice", "From: Mallory "
	    "<mallory@evil.test>\r\nFrom: Alice",
	    { { DKIMV_FAIL, "rsa", "2 From fields" } }, 1, 1 },
	{ "unsigned From below the signed From: fail", NULL,
	    { { "rsa", RSA256 } }, 1, "To: bob", "From: Mallory "
	    "<mallory@evil.test>\r\nTo: bob",
	    { { DKIMV_FAIL, "rsa", "2 From fields" } }, 1, 1 },
	{ "second From, two signatures: both fail", RSA_ED, { { 0 } }, 0,
	    "From: Alice", "From: Mallory <mallory@evil.test>\r\nFrom: Alice",
	    { { DKIMV_FAIL, "ed", "2 From fields" },
	      { DKIMV_FAIL, "rsa", "2 From fields" } }, 2, 2 },
	{ "second Subject above the signed one: fail", NULL,
	    { { "rsa", RSA256 } }, 1, "Subject: a test", "Subject: urgent\r\n"
	    "Subject: a test",
	    { { DKIMV_FAIL, "rsa", "2 Subject fields" } }, 1, 1 },
	{ "second Date, lower case name: fail", NULL, { { "rsa", RSA256 } },
	    1, "\r\nDate: Mon", "\r\ndate : Tue, 24 Nov 2026 10:00:00 +0000"
	    "\r\nDate: Mon",
	    { { DKIMV_FAIL, "rsa", "2 Date fields" } }, 1, 1 },
	{ "second Message-ID: fail", NULL, { { "rsa", RSA256 } }, 1,
	    "Message-ID: <1", "Message-ID: <2@evil.test>\r\nMessage-ID: <1",
	    { { DKIMV_FAIL, "rsa", "2 Message-ID fields" } }, 1, 1 },
	{ "repeated trace fields are allowed: pass", NULL,
	    { { "rsa", RSA256 } }, 1, "DKIM-Signature:", "Received: a\r\n"
	    "Received: b\r\nX-Note: 1\r\nX-Note: 2\r\nDKIM-Signature:",
	    { { DKIMV_PASS, "rsa", "" } }, 1, 1 },
	{ "rsa signature, k=ed25519 record holding an RSA key", NULL,
	    { { "edrsa", RSA256 } }, 1, NULL, NULL,
	    { { DKIMV_PERMERROR, "edrsa", "k=ed25519" } }, 1, 1 },
	{ "key not for e-mail (s=web)", NULL, { { "web", RSA256 } }, 1, NULL,
	    NULL, { { DKIMV_PERMERROR, "web", NULL } }, 1, 1 },
	{ "rsa-sha1: neutral, no look-up", NULL, { { "rsa",
	    DKIM_SIGN_RSASHA1 } }, 1, NULL, NULL,
	    { { DKIMV_NEUTRAL, "rsa", "rsa-sha1" } }, 1, 0 },
	{ "one good (ed25519), one bad (no key)", ED,
	    { { "nokey", RSA256 } }, 1, NULL, NULL,
	    { { DKIMV_PERMERROR, "nokey", "NXDOMAIN" },
	      { DKIMV_PASS, "ed", "" } }, 2, 2 },
	{ "one good (rsa), one bad (temperror)", NULL, { { "rsa", RSA256 },
	    { "temp", RSA256 } }, 2, NULL, NULL,
	    { { DKIMV_TEMPERROR, "temp", "timeout" },
	      { DKIMV_PASS, "rsa", "" } }, 2, 2 },
	{ "two signatures, same key: one look-up", NULL, { { "rsa", RSA256 },
	    { "rsa", RSA256 } }, 2, NULL, NULL,
	    { { DKIMV_PASS, "rsa", "" }, { DKIMV_PASS, "rsa", "" } }, 2, 1 },
	{ "body altered, two signatures: both fail", RSA_ED, { { 0 } }, 0,
	    "line 07", "line 7",
	    { { DKIMV_FAIL, "ed", "body hash" },
	      { DKIMV_FAIL, "rsa", "body hash" } }, 2, 2 },
};

/* build - the signed (and altered) message of a case */
static char *
build(const struct vcase *c)
{
	char *text = c->base != NULL ? fixture(c->base) : strdup(plain);
	char *next;
	int i;

	for (i = 0; i < c->nsig; i++) {
		next = sign(text, &rsa_key, c->sig[i].alg, c->sig[i].sel);
		free(text);
		text = next;
	}
	if (c->from != NULL) {
		next = replace(text, c->from, c->to);
		free(text);
		text = next;
	}
	return (text);
}

static void
check_results(const struct vcase *c, size_t idx, const struct run *r,
    const char *text)
{
	char b[9];
	size_t i;

	if (r->n != (size_t)c->nwant)
		fail_msg("case %zu (%s): %zu results, want %d", idx, c->name,
		    r->n, c->nwant);
	for (i = 0; i < r->n; i++) {
		const struct dkimv_result *g = &r->res[i];
		const struct want *w = &c->want[i];

		if (g->result != w->res)
			fail_msg("case %zu (%s) sig %zu: %s (%s), want %s", idx,
			    c->name, i, dkimv_result_name(g->result),
			    g->reason, dkimv_result_name(w->res));
		assert_string_equal(g->domain, "example.test");
		assert_string_equal(g->selector, w->selector);
		if (w->reason != NULL && (*w->reason == '\0' ?
		    g->reason[0] != '\0' : strstr(g->reason, w->reason) ==
		    NULL))
			fail_msg("case %zu (%s) sig %zu: reason \"%s\", want "
			    "\"%s\"", idx, c->name, i, g->reason, w->reason);
	}
	/* header.b of the top signature is the top b= */
	bprefix(text, b);
	assert_string_equal(r->res[0].b, b);
	assert_int_equal(strlen(r->res[0].b), 8);
}

static void
test_verdicts(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
		const struct vcase *c = &vcases[i];
		char *text = build(c);
		struct run r;

		memset(&r, 0, sizeof(r));
		fake.starts = fake.cancels = 0;
		verify_run(&r, text, CH_WHOLE);
		check_results(c, i, &r, text);
		if (fake.starts != c->lookups)
			fail_msg("case %zu (%s): %d look-ups, want %d", i,
			    c->name, fake.starts, c->lookups);
		assert_int_equal(fake.cancels, 0);
		run_free(&r);
		free(text);
	}
}

/* Every chunking gives the same verdicts: bytes, random pieces, the
 * whole message before dkimv_msg_eoh(). */
static void
test_chunking(void **state)
{
	static const enum chunking hows[] = {
		CH_BYTES, CH_RANDOM, CH_ALL_THEN_EOH
	};
	size_t i, h, k;

	(void)state;
	for (i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
		char *text = build(&vcases[i]);
		struct run whole;

		memset(&whole, 0, sizeof(whole));
		verify_run(&whole, text, CH_WHOLE);
		for (h = 0; h < sizeof(hows) / sizeof(hows[0]); h++) {
			struct run r;

			memset(&r, 0, sizeof(r));
			verify_run(&r, text, hows[h]);
			if (r.n != whole.n)
				fail_msg("case %zu chunking %zu: %zu results, "
				    "want %zu", i, h, r.n, whole.n);
			for (k = 0; k < r.n; k++)
				if (memcmp(&r.res[k], &whole.res[k],
				    sizeof(r.res[k])) != 0)
					fail_msg("case %zu chunking %zu sig %zu:"
					    " %s (%s), whole message gave %s "
					    "(%s)", i, h, k,
					    dkimv_result_name(r.res[k].result),
					    r.res[k].reason, dkimv_result_name(
					    whole.res[k].result),
					    whole.res[k].reason);
			run_free(&r);
		}
		run_free(&whole);
		free(text);
	}
}

/* --- single cases ------------------------------------------------------- */

static void
test_unsigned(void **state)
{
	static const enum chunking hows[] = { CH_WHOLE, CH_BYTES, CH_RANDOM };
	size_t h;

	(void)state;
	for (h = 0; h < 3; h++) {
		struct run r;

		memset(&r, 0, sizeof(r));
		verify_run(&r, plain, hows[h]);
		assert_int_equal(r.n, 1);
		assert_int_equal(r.res[0].result, DKIMV_NONE);
		assert_string_equal(r.res[0].domain, "");
		assert_string_equal(r.res[0].reason, "");
		assert_int_equal(fake.starts, 0);
		run_free(&r);
	}
}

static void
test_result_fields(void **state)
{
	char *t1 = sign(plain, &rsa_key, RSA256, "rsa");
	char *t2 = fixture(ED);
	struct run r;

	(void)state;
	memset(&r, 0, sizeof(r));
	verify_run(&r, t1, CH_WHOLE);
	assert_string_equal(r.res[0].algorithm, "rsa-sha256");
	assert_int_equal(r.res[0].keybits, 2048);
	assert_int_equal(r.res[0].testkey, 0);
	run_free(&r);
	memset(&r, 0, sizeof(r));
	verify_run(&r, t2, CH_WHOLE);
	assert_string_equal(r.res[0].algorithm, "ed25519-sha256");
	assert_int_equal(r.res[0].keybits, 256);
	run_free(&r);
	free(t1);
	free(t2);
}

/* The Ed25519 fixtures are plain.eml signed: if someone edits one and
 * not the other, say so here rather than in a puzzling verdict. */
static void
test_fixtures(void **state)
{
	static const char *const names[] = { ED, RSA_ED };
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		char *t = fixture(names[i]), *from = strstr(t, "\r\nFrom: ");

		assert_non_null(from);
		if (strcmp(from + 2, plain) != 0)
			fail_msg("%s is not plain.eml signed: regenerate it "
			    "(data/dkim/README)", names[i]);
		free(t);
	}
}

/* An oversigned From (h= names From twice, RFC 6376 8.15) is not a
 * repeated From: it passes; a From added to it breaks the signature. */
static void
test_oversigned_from(void **state)
{
	char *text = sign_with(oversign_lib, plain, &rsa_key, RSA256, "rsa");
	char *two = replace(text, "From: Alice", "From: Mallory "
	    "<mallory@evil.test>\r\nFrom: Alice");
	const char *h = strstr(text, "h=");
	struct run r;

	(void)state;
	assert_non_null(h);
	assert_non_null(strcasestr(strcasestr(h, "from"), ":from"));
	memset(&r, 0, sizeof(r));
	verify_run(&r, text, CH_WHOLE);
	assert_int_equal(r.n, 1);
	if (r.res[0].result != DKIMV_PASS)
		fail_msg("oversigned From: %s (%s), want pass",
		    dkimv_result_name(r.res[0].result), r.res[0].reason);
	run_free(&r);
	memset(&r, 0, sizeof(r));
	verify_run(&r, two, CH_WHOLE);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.res[0].result, DKIMV_FAIL);
	run_free(&r);
	free(text);
	free(two);
}

/* Signature fields libopendkim cannot use are reported, not dropped. */
static void
test_malformed_signatures(void **state)
{
	static const struct {
		const char	*sigfield;
		enum dkimv_res	 res;
		const char	*reason;
	} cases[] = {
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa;"
		    " h=from; b=AAAA", DKIMV_NEUTRAL, NULL },	/* no bh= */
		{ "DKIM-Signature: v=1; a=rsa-md5; d=example.test; s=rsa; "
		    "h=from; bh=AAAA; b=AAAA", DKIMV_NEUTRAL, "algorithm" },
		{ "DKIM-Signature: v=2; a=rsa-sha256; d=example.test; s=rsa; "
		    "h=from; bh=AAAA; b=AAAA", DKIMV_NEUTRAL, "version" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa; "
		    "h=subject; bh=AAAA; b=AAAA", DKIMV_PERMERROR, "From" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa; "
		    "h=from; bh=AAAA; b=AAAA; x=1000", DKIMV_NEUTRAL,
		    "expired" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa; "
		    "q=http/well-known; h=from; bh=AAAA; b=AAAA", DKIMV_NEUTRAL,
		    "query method" },
		{ "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=a..b; "
		    "h=from; bh=AAAA; b=AAAA", DKIMV_PERMERROR, "key name" },
		{ "DKIM-Signature: garbage", DKIMV_NEUTRAL, NULL },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text;
		struct run r;

		assert_true(asprintf(&text, "%s\r\n%s", cases[i].sigfield,
		    plain) > 0);
		memset(&r, 0, sizeof(r));
		verify_run(&r, text, CH_RANDOM);
		assert_int_equal(r.n, 1);
		if (r.res[0].result != cases[i].res ||
		    (cases[i].reason != NULL &&
		    strstr(r.res[0].reason, cases[i].reason) == NULL))
			fail_msg("case %zu: %s (%s)", i,
			    dkimv_result_name(r.res[0].result),
			    r.res[0].reason);
		run_free(&r);
		free(text);
	}
}

/* Only DKIMV_MAX_SIGS signatures reach libopendkim (hashing and look-ups
 * are bounded); identical keys are fetched once. */
static void
test_too_many_signatures(void **state)
{
	char *one = sign(plain, &rsa_key, RSA256, "rsa");
	const char *end = strstr(one, "\r\nFrom:");
	char *text = NULL, *next;
	struct run r;
	size_t i;

	(void)state;
	assert_non_null(end);
	/* 12 copies of the same signature field on top of the message */
	text = strdup(plain);
	for (i = 0; i < DKIMV_MAX_SIGS + 2; i++) {
		assert_true(asprintf(&next, "%.*s\r\n%s", (int)(end - one),
		    one, text) > 0);
		free(text);
		text = next;
	}
	memset(&r, 0, sizeof(r));
	verify_run(&r, text, CH_RANDOM);
	assert_int_equal(r.n, DKIMV_MAX_SIGS);
	for (i = 0; i < r.n; i++)
		assert_int_equal(r.res[i].result, DKIMV_PASS);
	assert_int_equal(dkimv_msg_ignored(r.msg), 2);
	assert_int_equal(fake.starts, 1);
	run_free(&r);
	free(text);
	free(one);
}

static void
test_header_limits(void **state)
{
	char *sigd = sign(plain, &rsa_key, RSA256, "rsa");
	char *junk, *p, *text;
	struct run r;
	size_t i;

	(void)state;
	junk = malloc(1100 * 16 + 1);
	assert_non_null(junk);
	for (i = 0, p = junk; i < 1100; i++)
		p += sprintf(p, "X-Junk: %05zu\r\n", i);
	/* signed: one permerror */
	assert_true(asprintf(&text, "%s%s", junk, sigd) > 0);
	memset(&r, 0, sizeof(r));
	verify_run(&r, text, CH_RANDOM);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.res[0].result, DKIMV_PERMERROR);
	assert_non_null(strstr(r.res[0].reason, "too large"));
	assert_int_equal(fake.starts, 0);
	run_free(&r);
	free(text);
	/* unsigned: still none */
	assert_true(asprintf(&text, "%s%s", junk, plain) > 0);
	memset(&r, 0, sizeof(r));
	verify_run(&r, text, CH_WHOLE);
	assert_int_equal(r.res[0].result, DKIMV_NONE);
	run_free(&r);
	free(text);
	free(junk);
	free(sigd);
}

/* A message without an empty line (no body): dkimv_msg_eoh() at the end
 * of DATA closes the header block. */
static void
test_no_body(void **state)
{
	const char *h = "From: a@example.test\r\nSubject: headers only\r\n";
	char *text = sign(h, &rsa_key, RSA256, "rsa");
	struct run r;
	unsigned seed = 7;
	int spins;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.msg = dkimv_msg_new(lib, "nobody");
	feed(&r, text, 0, strlen(text), CH_RANDOM, &seed);
	assert_int_equal(dkimv_msg_eoh(r.msg, done_cb, &r), 0);
	for (spins = 0; r.done_calls == 0 && spins < 100; spins++)
		(void)event_base_loop(fake.base, EVLOOP_ONCE);
	assert_int_equal(dkimv_msg_eom(r.msg, &r.res, &r.n), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.res[0].result, DKIMV_PASS);
	run_free(&r);
	free(text);
}

/* A body without its final CRLF (a file, not SMTP) gets one, as the
 * canonicalisations say; libopendkim alone would give up. */
static void
test_body_without_crlf(void **state)
{
	char *text = sign("From: a@example.test\r\nSubject: x\r\n\r\n"
	    "last line\r\n", &rsa_key, RSA256, "rsa");
	static const enum chunking hows[] = { CH_WHOLE, CH_BYTES };
	size_t h;

	(void)state;
	text[strlen(text) - 2] = '\0';
	for (h = 0; h < 2; h++) {
		struct run r;

		memset(&r, 0, sizeof(r));
		verify_run(&r, text, hows[h]);
		assert_int_equal(r.n, 1);
		if (r.res[0].result != DKIMV_PASS)
			fail_msg("%s (%s)", dkimv_result_name(r.res[0].result),
			    r.res[0].reason);
		run_free(&r);
	}
	free(text);
}

/* dkimv_msg_eom() while a key is still being fetched: temperror, the
 * look-up is cancelled and done_cb never runs. */
static void
test_eom_before_keys(void **state)
{
	char *a = sign(plain, &rsa_key, RSA256, "slow");
	char *text = sign(a, &rsa_key, RSA256, "rsa");
	const char *e = strstr(text, "\r\n\r\n");
	struct run r;
	struct timeval tv = { 0, 20000 };

	(void)state;
	memset(&r, 0, sizeof(r));
	r.msg = dkimv_msg_new(lib, "slow");
	assert_int_equal(dkimv_msg_chunk(r.msg, text, (size_t)(e - text) + 4),
	    0);
	assert_int_equal(dkimv_msg_eoh(r.msg, done_cb, &r), 0);
	assert_int_equal(dkimv_msg_chunk(r.msg, e + 4, strlen(e + 4)), 0);
	(void)event_base_loopexit(fake.base, &tv);
	(void)event_base_dispatch(fake.base);	/* "rsa" answers, "slow" not */
	assert_int_equal(r.done_calls, 0);
	assert_false(dkimv_msg_ready(r.msg));
	assert_int_equal(dkimv_msg_eom(r.msg, &r.res, &r.n), 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.res[0].result, DKIMV_PASS);		/* rsa */
	assert_int_equal(r.res[1].result, DKIMV_TEMPERROR);	/* slow */
	assert_non_null(strstr(r.res[1].reason, "unfinished"));
	assert_int_equal(fake.cancels, 1);
	assert_int_equal(dkimv_msg_chunk(r.msg, "x", 1), -1);
	assert_int_equal(dkimv_msg_eoh(r.msg, done_cb, &r), -1);
	/* a second eom gives the same results */
	{
		const struct dkimv_result *res2;
		size_t n2;

		assert_int_equal(dkimv_msg_eom(r.msg, &res2, &n2), 0);
		assert_ptr_equal(res2, r.res);
		assert_int_equal(n2, r.n);
	}
	run_free(&r);
	assert_int_equal(r.done_calls, 0);
	free(a);
	free(text);
}

/* eom without eoh: the keys were never fetched */
static void
test_eom_without_eoh(void **state)
{
	char *text = sign(plain, &rsa_key, RSA256, "rsa");
	struct run r;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.msg = dkimv_msg_new(lib, "x");
	assert_int_equal(dkimv_msg_chunk(r.msg, text, strlen(text)), 0);
	assert_int_equal(dkimv_msg_eom(r.msg, &r.res, &r.n), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.res[0].result, DKIMV_TEMPERROR);
	assert_int_equal(fake.starts, 0);
	run_free(&r);
	free(text);
}

/* The session drops at every stage: nothing leaks, nothing calls back. */
static void
test_free_midway(void **state)
{
	char *a = sign(plain, &rsa_key, RSA256, "slow");
	char *text = sign(a, &rsa_key, RSA256, "rsa");
	size_t len = strlen(text), hend = (size_t)(strstr(text, "\r\n\r\n") -
	    text) + 4;
	int stage;

	(void)state;
	for (stage = 0; stage < 6; stage++) {
		struct run r;

		memset(&r, 0, sizeof(r));
		fake.starts = fake.cancels = 0;
		r.msg = dkimv_msg_new(lib, "drop");
		if (stage >= 1)		/* mid-header */
			(void)dkimv_msg_chunk(r.msg, text, hend / 2);
		if (stage >= 2)
			(void)dkimv_msg_chunk(r.msg, text + hend / 2,
			    hend - hend / 2);
		if (stage >= 3)
			assert_int_equal(dkimv_msg_eoh(r.msg, done_cb, &r), 0);
		if (stage >= 4)		/* mid-body, "rsa" answered */
			(void)dkimv_msg_chunk(r.msg, text + hend, 100);
		if (stage >= 4)
			(void)event_base_loop(fake.base, EVLOOP_ONCE);
		if (stage >= 5)
			(void)dkimv_msg_chunk(r.msg, text + hend + 100,
			    len - hend - 100);
		run_free(&r);
		assert_int_equal(r.done_calls, 0);
		/* stage 3: both look-ups pending; later "rsa" has answered */
		assert_int_equal(fake.cancels, stage < 3 ? 0 : stage == 3 ? 2 :
		    1);
		assert_true(TAILQ_EMPTY(&fake.queries));
	}
	free(a);
	free(text);
}

/* done_cb may take the verdict and free the message. */
static void
test_free_in_done(void **state)
{
	char *text = fixture(ED);
	struct run r;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.free_in_done = 1;
	verify_run(&r, text, CH_ALL_THEN_EOH);
	assert_null(r.msg);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.copy[0].result, DKIMV_PASS);
	/* and with nothing to fetch (the done event path) */
	memset(&r, 0, sizeof(r));
	r.free_in_done = 1;
	verify_run(&r, plain, CH_WHOLE);
	assert_null(r.msg);
	assert_int_equal(r.copy[0].result, DKIMV_NONE);
	free(text);
}

static void
test_odd_input(void **state)
{
	static const char *const texts[] = {
		"",					/* nothing at all */
		"\r\n\r\nbody only\r\n",		/* empty header block */
		"no colon here\r\n\r\nbody\r\n",
		" leading space: x\r\n\r\n",
		"From: a@example.test\r\n\rjunk\r\n\r\nbody",
		"From: a@example.test\nSubject: bare LF\n\nbody\n",
		"From: a@example.test\r\n\tfolded\r\n\r\n\r\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct run r;

		memset(&r, 0, sizeof(r));
		verify_run(&r, texts[i], CH_BYTES);
		assert_int_equal(r.n, 1);
		assert_int_equal(r.res[0].result, DKIMV_NONE);
		run_free(&r);
	}
}

static void
test_names(void **state)
{
	static const struct { enum dkimv_res r; const char *s; } t[] = {
		{ DKIMV_NONE, "none" }, { DKIMV_PASS, "pass" },
		{ DKIMV_FAIL, "fail" }, { DKIMV_NEUTRAL, "neutral" },
		{ DKIMV_TEMPERROR, "temperror" },
		{ DKIMV_PERMERROR, "permerror" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_string_equal(dkimv_result_name(t[i].r), t[i].s);
	assert_string_equal(dkimv_result_name((enum dkimv_res)99), "?");
	dkimv_msg_free(NULL);
	assert_int_equal(dkimv_msg_chunk(NULL, "x", 1), -1);
	assert_int_equal(dkimv_msg_eoh(NULL, done_cb, NULL), -1);
	assert_false(dkimv_msg_ready(NULL));
}

static void
test_lib_new_errors(void **state)
{
	struct dkimv_lib *l = (struct dkimv_lib *)1;
	char err[64];

	(void)state;
	assert_int_equal(dkimv_lib_new(&l, NULL, NULL, err, sizeof(err)), -1);
	assert_null(l);
	assert_string_equal(err, "no event loop");
	dkimv_lib_free(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_verdicts, test_setup),
		cmocka_unit_test_setup(test_chunking, test_setup),
		cmocka_unit_test_setup(test_unsigned, test_setup),
		cmocka_unit_test_setup(test_fixtures, test_setup),
		cmocka_unit_test_setup(test_result_fields, test_setup),
		cmocka_unit_test_setup(test_oversigned_from, test_setup),
		cmocka_unit_test_setup(test_malformed_signatures, test_setup),
		cmocka_unit_test_setup(test_too_many_signatures, test_setup),
		cmocka_unit_test_setup(test_header_limits, test_setup),
		cmocka_unit_test_setup(test_no_body, test_setup),
		cmocka_unit_test_setup(test_body_without_crlf, test_setup),
		cmocka_unit_test_setup(test_eom_before_keys, test_setup),
		cmocka_unit_test_setup(test_eom_without_eoh, test_setup),
		cmocka_unit_test_setup(test_free_midway, test_setup),
		cmocka_unit_test_setup(test_free_in_done, test_setup),
		cmocka_unit_test_setup(test_odd_input, test_setup),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_lib_new_errors),
	};

	return (cmocka_run_group_tests(tests, group_setup, group_teardown));
}
