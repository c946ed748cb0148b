/*
 * dkim_tool - sign messages with libopendkim and verify them through
 * relay/dkim_verify against a real DNS server, for the integration tests
 * (tests/integration/test_dkim.sh, and the relay tests that re-verify
 * what reaches the sink).
 *
 *   dkim_tool pubkey -k KEY
 *       print the DNS TXT value for KEY (a PEM private key, RSA or
 *       Ed25519): "v=DKIM1; k=rsa; p=..." or "v=DKIM1; k=ed25519; p=..."
 *   dkim_tool sign -k KEY -s SELECTOR -d DOMAIN [-a ALG] [-c CANON] [FILE]
 *       print FILE (default stdin) with a DKIM-Signature field on top.
 *       ALG: rsa-sha256 or ed25519-sha256 (default: from the key type);
 *       CANON: header/body canonicalisation, default relaxed/relaxed.
 *       The signature covers libopendkim's default header list (From,
 *       To, Subject, Date, ...).
 *   dkim_tool verify -S HOST:PORT [-t TIMEOUT_MS] [FILE]
 *       verify FILE (default stdin) with dkimv_* in a libevent loop, keys
 *       asked from the DNS server HOST:PORT (common/dns, timeout default
 *       5000 ms); print one line per signature:
 *         dkim=pass header.d=example.test header.s=sel header.b=abcdefgh
 *       followed by " (reason)" when there is one; an unsigned message
 *       prints "dkim=none".  The body is fed while the keys are being
 *       fetched, in 512-byte pieces, as the SMTP server does.
 *
 * Input may have LF or CRLF line ends: a bare LF becomes CRLF (what a
 * message is on the wire; smtp-sink stores LF).  Output is CRLF.
 * Exit: 0 success (verify: every signature passed); 1 verify: some
 * result other than pass (also none); 2 usage, file or key errors.
 *
 * Test code: trusts its arguments; the message and DNS are the inputs
 * under test.  LeakSanitizer: see __lsan_default_suppressions below.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dkim.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dkim_verify.h"
#include "dns.h"

/*
 * libopendkim 2.11.0~beta2 leaks the private key of every Ed25519
 * signing handle (dkim_free() releases RSA key material only, see
 * tests/integration/data/dkim/README); that is the library's, so
 * LeakSanitizer is told to ignore allocations made under
 * dkim_privkey_load() (and what hangs off them).  The allocations
 * happen inside OpenSSL, built without frame pointers: only the slow
 * unwinder sees dkim_privkey_load on their stacks.  Both hooks are read
 * by ASan builds only; elsewhere they are unused functions.
 */
const char *__lsan_default_suppressions(void);
const char *__asan_default_options(void);

const char *
__lsan_default_suppressions(void)
{
	return ("leak:dkim_privkey_load\n");
}

const char *
__asan_default_options(void)
{
	return ("fast_unwind_on_malloc=0");
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: dkim_tool pubkey -k KEY\n"
	    "       dkim_tool sign -k KEY -s SELECTOR -d DOMAIN [-a ALG] "
	    "[-c CANON] [FILE]\n"
	    "       dkim_tool verify -S HOST:PORT [-t TIMEOUT_MS] [FILE]\n");
	exit(2);
}

static void	die(const char *fmt, ...)
		    __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dkim_tool: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

/* slurp - a whole file (or stdin for NULL/"-"), NUL-terminated */
static char *
slurp(const char *path, size_t *len_r)
{
	FILE *f = stdin;
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0, n;

	if (path != NULL && strcmp(path, "-") != 0 &&
	    (f = fopen(path, "rb")) == NULL)
		die("cannot open %s", path);
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			if ((nb = realloc(buf, cap + 1)) == NULL)
				die("%s", "out of memory");
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f))
		die("cannot read %s", path != NULL ? path : "stdin");
	if (f != stdin)
		fclose(f);
	buf[len] = '\0';
	*len_r = len;
	return (buf);
}

/* crlf - bare LF to CRLF */
static char *
crlf(const char *in, size_t len, size_t *len_r)
{
	char *out = malloc(2 * len + 1);
	size_t i, n = 0;

	if (out == NULL)
		die("%s", "out of memory");
	for (i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			out[n++] = '\r';
		out[n++] = in[i];
	}
	out[n] = '\0';
	*len_r = n;
	return (out);
}

static EVP_PKEY *
key_read(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *pk;

	if (f == NULL)
		die("cannot open %s", path);
	pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pk == NULL)
		die("%s: not a PEM private key", path);
	return (pk);
}

/* --- pubkey -------------------------------------------------------------- */

static int
cmd_pubkey(int argc, char **argv)
{
	const char *keyfile = NULL;
	unsigned char der[2048], *p = der;
	char b64[4096];
	size_t rawlen = sizeof(der);
	EVP_PKEY *pk;
	int c, len, ed;

	while ((c = getopt(argc, argv, "k:")) != -1) {
		if (c != 'k')
			usage();
		keyfile = optarg;
	}
	if (keyfile == NULL || optind != argc)
		usage();
	pk = key_read(keyfile);
	ed = EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519;
	if (ed) {	/* RFC 8463: the raw 32-byte key */
		if (EVP_PKEY_get_raw_public_key(pk, der, &rawlen) != 1)
			die("%s: no raw public key", keyfile);
		len = (int)rawlen;
	} else if ((len = i2d_PUBKEY(pk, &p)) <= 0 ||
	    (size_t)len > sizeof(der))
		die("%s: cannot encode the public key", keyfile);
	EVP_EncodeBlock((unsigned char *)b64, der, len);
	printf("v=DKIM1; k=%s; p=%s\n", ed ? "ed25519" : "rsa", b64);
	EVP_PKEY_free(pk);
	return (0);
}

/* --- sign ---------------------------------------------------------------- */

static dkim_canon_t
canon_code(const char *s)
{
	if (strcmp(s, "relaxed") == 0)
		return (DKIM_CANON_RELAXED);
	if (strcmp(s, "simple") == 0)
		return (DKIM_CANON_SIMPLE);
	die("unknown canonicalisation %s", s);
}

static int
cmd_sign(int argc, char **argv)
{
	const char *keyfile = NULL, *sel = NULL, *dom = NULL, *alg = NULL;
	char canon[64] = "relaxed/relaxed", *slash, *key, *raw, *msg;
	size_t keylen, rawlen, len, hlen;
	dkim_canon_t hc, bc;
	dkim_alg_t a;
	DKIM_LIB *lib;
	DKIM *d;
	DKIM_STAT st;
	unsigned char *hdr;
	EVP_PKEY *pk;
	int c;

	while ((c = getopt(argc, argv, "k:s:d:a:c:")) != -1) {
		switch (c) {
		case 'k': keyfile = optarg; break;
		case 's': sel = optarg; break;
		case 'd': dom = optarg; break;
		case 'a': alg = optarg; break;
		case 'c':
			if (strlen(optarg) >= sizeof(canon))
				usage();
			strcpy(canon, optarg);
			break;
		default: usage();
		}
	}
	if (keyfile == NULL || sel == NULL || dom == NULL || argc - optind > 1)
		usage();
	if (alg == NULL) {
		pk = key_read(keyfile);
		alg = EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519 ?
		    "ed25519-sha256" : "rsa-sha256";
		EVP_PKEY_free(pk);
	}
	if (strcmp(alg, "rsa-sha256") == 0)
		a = DKIM_SIGN_RSASHA256;
	else if (strcmp(alg, "ed25519-sha256") == 0)
		a = DKIM_SIGN_ED25519SHA256;
	else
		die("unsupported algorithm %s", alg);
	if ((slash = strchr(canon, '/')) != NULL)
		*slash++ = '\0';
	hc = canon_code(canon);
	bc = canon_code(slash != NULL ? slash : "simple");

	key = slurp(keyfile, &keylen);
	raw = slurp(argc > optind ? argv[optind] : NULL, &rawlen);
	msg = crlf(raw, rawlen, &len);
	free(raw);

	if ((lib = dkim_init(NULL, NULL)) == NULL)
		die("%s", "dkim_init failed");
	d = dkim_sign(lib, (const u_char *)"dkim_tool", NULL,
	    (dkim_sigkey_t)key, (const u_char *)sel, (const u_char *)dom, hc,
	    bc, a, -1, &st);
	if (d == NULL)
		die("dkim_sign: %s", dkim_getresultstr(st));
	if ((st = dkim_chunk(d, (u_char *)msg, len)) != DKIM_STAT_OK ||
	    (st = dkim_chunk(d, NULL, 0)) != DKIM_STAT_OK ||
	    (st = dkim_eom(d, NULL)) != DKIM_STAT_OK ||
	    (st = dkim_getsighdr_d(d, strlen("DKIM-Signature: "), &hdr,
	    &hlen)) != DKIM_STAT_OK) {
		fprintf(stderr, "dkim_tool: signing failed: %s: %s\n",
		    dkim_getresultstr(st), dkim_geterror(d) != NULL ?
		    dkim_geterror(d) : "");
		exit(2);
	}
	fputs("DKIM-Signature: ", stdout);
	fwrite(hdr, 1, hlen, stdout);
	fputs("\r\n", stdout);
	fwrite(msg, 1, len, stdout);
	dkim_free(d);
	dkim_close(lib);
	free(msg);
	free(key);
	return (fflush(stdout) == 0 ? 0 : 2);
}

/* --- verify -------------------------------------------------------------- */

struct vstate {
	struct event_base	*base;
	int			 done;
};

static void
done_cb(struct dkimv_msg *msg, void *arg)
{
	struct vstate *v = arg;

	(void)msg;
	v->done = 1;
	event_base_loopbreak(v->base);
}

static int
cmd_verify(int argc, char **argv)
{
	const char *server = NULL;
	struct dns_options opt;
	struct dns_resolver *resolver;
	struct dkimv_lib *lib;
	struct dkimv_msg *msg;
	const struct dkimv_result *res;
	struct vstate v = { NULL, 0 };
	char err[256], *raw, *text, *e;
	size_t rawlen, len, hend, off, n, i;
	int c, timeout_ms = 5000, allpass = 1;

	while ((c = getopt(argc, argv, "S:t:")) != -1) {
		switch (c) {
		case 'S': server = optarg; break;
		case 't': timeout_ms = atoi(optarg); break;
		default: usage();
		}
	}
	if (server == NULL || timeout_ms <= 0 || argc - optind > 1)
		usage();
	raw = slurp(argc > optind ? argv[optind] : NULL, &rawlen);
	text = crlf(raw, rawlen, &len);
	free(raw);
	e = strstr(text, "\r\n\r\n");
	hend = e != NULL ? (size_t)(e - text) + 4 : len;

	if ((v.base = event_base_new()) == NULL)
		die("%s", "event_base_new failed");
	memset(&opt, 0, sizeof(opt));
	opt.forwarder = server;
	opt.timeout_ms = timeout_ms;
	if ((resolver = dns_resolver_new(v.base, &opt, err,
	    sizeof(err))) == NULL)
		die("resolver: %s", err);
	if (dkimv_lib_new(&lib, v.base, resolver, err, sizeof(err)) == -1)
		die("dkimv_lib_new: %s", err);
	if ((msg = dkimv_msg_new(lib, "dkim_tool")) == NULL)
		die("%s", "out of memory");

	/* the header block, then the key look-ups start while the body
	 * follows in pieces, the loop turning in between */
	(void)dkimv_msg_chunk(msg, text, hend);
	if (dkimv_msg_eoh(msg, done_cb, &v) == -1)
		die("%s", "dkimv_msg_eoh failed");
	for (off = hend; off < len; off += n) {
		n = len - off < 512 ? len - off : 512;
		(void)dkimv_msg_chunk(msg, text + off, n);
		(void)event_base_loop(v.base, EVLOOP_NONBLOCK);
	}
	while (!v.done)
		if (event_base_dispatch(v.base) == -1)
			die("%s", "event loop failed");
	(void)dkimv_msg_eom(msg, &res, &n);
	for (i = 0; i < n; i++) {
		if (res[i].result != DKIMV_PASS)
			allpass = 0;
		printf("dkim=%s", dkimv_result_name(res[i].result));
		if (res[i].domain[0] != '\0')
			printf(" header.d=%s", res[i].domain);
		if (res[i].selector[0] != '\0')
			printf(" header.s=%s", res[i].selector);
		if (res[i].b[0] != '\0')
			printf(" header.b=%s", res[i].b);
		if (res[i].reason[0] != '\0')
			printf(" (%s)", res[i].reason);
		printf("\n");
	}
	if (dkimv_msg_ignored(msg) > 0)
		printf("ignored %zu\n", dkimv_msg_ignored(msg));
	dkimv_msg_free(&msg);
	dkimv_lib_free(&lib);
	dns_resolver_free(&resolver);
	event_base_free(v.base);
	free(text);
	if (fflush(stdout) != 0)
		return (2);
	return (allpass ? 0 : 1);
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	argc--;
	argv++;
	if (strcmp(argv[0], "pubkey") == 0)
		return (cmd_pubkey(argc, argv));
	if (strcmp(argv[0], "sign") == 0)
		return (cmd_sign(argc, argv));
	if (strcmp(argv[0], "verify") == 0)
		return (cmd_verify(argc, argv));
	usage();
	return (2);
}
