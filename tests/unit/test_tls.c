/*
 * test_tls.c - common/tls: context construction, error texts, and real
 * handshakes between our client and server contexts inside one process
 * (a BIO pair, no sockets).
 *
 * The PKI is made here with OpenSSL's C API into a mkdtemp() directory
 * that the group teardown removes: a test CA, a server certificate for
 * localhost / 127.0.0.1 signed by it, an unrelated key, and a second
 * ("rogue") CA with its own localhost certificate.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h"

static char dir[64];
static char ca_pem[128], srv_pem[128], srv_key[128], other_key[128];
static char rogue_ca_pem[128], rogue_pem[128], rogue_key[128];
static char garbage[128], missing[128], enc_key[128];

static const char *made[] = {
	ca_pem, srv_pem, srv_key, other_key, rogue_ca_pem, rogue_pem,
	rogue_key, garbage, enc_key,
};

/* --- PKI -------------------------------------------------------------- */

static void
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL || X509_add_ext(cert, ext, -1) != 1)
		fail_msg("extension %d=%s", nid, value);
	X509_EXTENSION_free(ext);
}

/*
 * make_cert - a certificate for key, CN cn, signed by issuer/ikey (NULL:
 * self-signed).  san NULL makes a CA.
 */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey,
    const char *san)
{
	X509 *c = X509_new();
	X509_NAME *name = X509_NAME_new();
	static long serial = 1;

	assert_non_null(c);
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
	X509_gmtime_adj(X509_getm_notBefore(c), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c), 86400L * 7);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(c, name);
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
	X509_NAME_free(name);
	X509_set_pubkey(c, key);
	if (issuer == NULL) {
		issuer = c;
		ikey = key;
	}
	add_ext(c, issuer, NID_subject_key_identifier, "hash");
	if (san == NULL) {
		add_ext(c, issuer, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(c, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(c, issuer, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(c, issuer, NID_key_usage,
		    "critical,digitalSignature,keyEncipherment");
		add_ext(c, issuer, NID_ext_key_usage, "serverAuth");
		add_ext(c, issuer, NID_subject_alt_name, san);
		add_ext(c, issuer, NID_authority_key_identifier, "keyid");
	}
	if (X509_sign(c, ikey, EVP_sha256()) == 0)
		fail_msg("X509_sign");
	return (c);
}

static void
write_cert(const char *path, X509 *c)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(PEM_write_X509(fp, c), 1);
	assert_int_equal(fclose(fp), 0);
}

static void
write_key(const char *path, EVP_PKEY *k)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL,
	    NULL), 1);
	assert_int_equal(fclose(fp), 0);
}

static EVP_PKEY *
new_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (k == NULL)
		fail_msg("EVP_PKEY_Q_keygen");
	return (k);
}

static int
group_setup(void **state)
{
	EVP_PKEY *cak, *sk, *ok, *rcak, *rk;
	X509 *ca, *srv, *rca, *rsrv;
	FILE *fp;

	(void)state;
	strcpy(dir, "/tmp/test_tls.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return (-1);
#define P(var, file) snprintf(var, sizeof(var), "%s/%s", dir, file)
	P(ca_pem, "ca.pem");
	P(srv_pem, "server.pem");
	P(srv_key, "server.key");
	P(other_key, "other.key");
	P(rogue_ca_pem, "rogue-ca.pem");
	P(rogue_pem, "rogue.pem");
	P(rogue_key, "rogue.key");
	P(garbage, "garbage.pem");
	P(missing, "missing.pem");
	P(enc_key, "encrypted.key");
#undef P
	cak = new_key();
	sk = new_key();
	ok = new_key();
	rcak = new_key();
	rk = new_key();
	ca = make_cert(cak, "test CA", NULL, NULL, NULL);
	srv = make_cert(sk, "localhost", ca, cak, "DNS:localhost,IP:127.0.0.1");
	rca = make_cert(rcak, "rogue CA", NULL, NULL, NULL);
	rsrv = make_cert(rk, "localhost", rca, rcak,
	    "DNS:localhost,IP:127.0.0.1");
	write_cert(ca_pem, ca);
	write_cert(srv_pem, srv);
	write_key(srv_key, sk);
	write_key(other_key, ok);
	write_cert(rogue_ca_pem, rca);
	write_cert(rogue_pem, rsrv);
	write_key(rogue_key, rk);
	fp = fopen(enc_key, "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_PrivateKey(fp, sk, EVP_aes_256_cbc(),
	    (unsigned char *)"secret", 6, NULL, NULL), 1);
	fclose(fp);
	fp = fopen(garbage, "w");
	assert_non_null(fp);
	fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
	    "-----END CERTIFICATE-----\n", fp);
	fclose(fp);
	X509_free(ca);
	X509_free(srv);
	X509_free(rca);
	X509_free(rsrv);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(sk);
	EVP_PKEY_free(ok);
	EVP_PKEY_free(rcak);
	EVP_PKEY_free(rk);
	return (0);
}

static int
group_teardown(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(made) / sizeof(made[0]); i++)
		unlink(made[i]);
	return (rmdir(dir));
}

/* --- helpers ---------------------------------------------------------- */

/*
 * handshake - run client and server against each other over a BIO pair
 * until both finish (0) or either fails (-1).
 */
static int
handshake(SSL *client, SSL *server)
{
	BIO *b1, *b2;
	int i, cdone = 0, sdone = 0, rc, e;

	assert_int_equal(BIO_new_bio_pair(&b1, 0, &b2, 0), 1);
	SSL_set_bio(client, b1, b1);
	SSL_set_bio(server, b2, b2);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	for (i = 0; i < 100 && !(cdone && sdone); i++) {
		if (!cdone) {
			rc = SSL_do_handshake(client);
			if (rc == 1)
				cdone = 1;
			else {
				e = SSL_get_error(client, rc);
				if (e != SSL_ERROR_WANT_READ &&
				    e != SSL_ERROR_WANT_WRITE)
					goto fail;
			}
		}
		if (!sdone) {
			rc = SSL_do_handshake(server);
			if (rc == 1)
				sdone = 1;
			else {
				e = SSL_get_error(server, rc);
				if (e != SSL_ERROR_WANT_READ &&
				    e != SSL_ERROR_WANT_WRITE)
					goto fail;
			}
		}
	}
	ERR_clear_error();
	return (cdone && sdone ? 0 : -1);
fail:
	ERR_clear_error();
	return (-1);
}

static void
assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* --- contexts --------------------------------------------------------- */

static void
test_server_ctx_ok(void **state)
{
	char err[256] = "";
	SSL_CTX *ctx;

	(void)state;
	ctx = tls_server_ctx_new(srv_pem, srv_key, err, sizeof(err));
	if (ctx == NULL)
		fail_msg("server ctx: %s", err);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
	assert_int_equal(ERR_peek_error(), 0);
	tls_ctx_free(&ctx);
	assert_null(ctx);
	tls_ctx_free(&ctx);	/* NULL is fine */
	tls_ctx_free(NULL);
}

/* Every way the server's files can be wrong, and what err must name. */
static const struct server_bad_case {
	const char	*cert;
	const char	*key;
	const char	*want1;		/* both must be in err */
	const char	*want2;
} server_bad[] = {
	{ srv_pem, other_key, other_key, "does not match" },
	{ srv_pem, rogue_key, rogue_key, srv_pem },
	{ missing, srv_key, missing, "No such file" },
	{ srv_pem, missing, missing, "No such file" },
	{ garbage, srv_key, garbage, "certificate" },
	{ srv_pem, garbage, garbage, "private key" },
	{ srv_key, srv_key, srv_key, "certificate" },
	{ dir, srv_key, dir, "directory" },
	{ srv_pem, dir, dir, "directory" },
	/* encrypted key: refused, never a passphrase prompt */
	{ srv_pem, enc_key, enc_key, "private key" },
	{ "", srv_key, "no certificate file", "" },
};

static void
test_server_ctx_bad(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(server_bad) / sizeof(server_bad[0]); i++) {
		const struct server_bad_case *c = &server_bad[i];
		char err[256] = "";
		SSL_CTX *ctx;

		ctx = tls_server_ctx_new(c->cert, c->key, err, sizeof(err));
		if (ctx != NULL)
			fail_msg("case %zu: accepted %s + %s", i, c->cert,
			    c->key);
		if (strstr(err, c->want1) == NULL ||
		    strstr(err, c->want2) == NULL)
			fail_msg("case %zu: error \"%s\" lacks \"%s\"/\"%s\"",
			    i, err, c->want1, c->want2);
		/* the error queue was drained */
		assert_int_equal(ERR_peek_error(), 0);
	}
}

static void
test_client_ctx(void **state)
{
	char err[256] = "";
	SSL_CTX *ctx;

	(void)state;
	ctx = tls_client_ctx_new(ca_pem, err, sizeof(err));
	if (ctx == NULL)
		fail_msg("client ctx: %s", err);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
	tls_ctx_free(&ctx);

	ctx = tls_client_ctx_new(NULL, err, sizeof(err));
	if (ctx == NULL)
		fail_msg("client ctx with the system store: %s", err);
	tls_ctx_free(&ctx);

	ctx = tls_client_ctx_new(dir, err, sizeof(err));	/* a directory */
	if (ctx == NULL)
		fail_msg("client ctx with a CA directory: %s", err);
	tls_ctx_free(&ctx);

	err[0] = '\0';
	assert_null(tls_client_ctx_new(missing, err, sizeof(err)));
	assert_contains(err, missing);
	assert_contains(err, "No such file");

	err[0] = '\0';
	assert_null(tls_client_ctx_new(garbage, err, sizeof(err)));
	assert_contains(err, garbage);
	assert_int_equal(ERR_peek_error(), 0);
}

static void
test_client_ssl_args(void **state)
{
	char err[256] = "";
	SSL_CTX *ctx = tls_client_ctx_new(ca_pem, err, sizeof(err));
	SSL *ssl;

	(void)state;
	assert_non_null(ctx);
	assert_null(tls_client_ssl_new(ctx, NULL, 1, err, sizeof(err)));
	assert_contains(err, "host name");
	assert_null(tls_client_ssl_new(ctx, "", 1, err, sizeof(err)));
	assert_null(tls_client_ssl_new(ctx, ".", 0, err, sizeof(err)));

	/* opportunistic without a name is allowed */
	ssl = tls_client_ssl_new(ctx, NULL, 0, err, sizeof(err));
	assert_non_null(ssl);
	assert_int_equal(SSL_get_verify_mode(ssl), SSL_VERIFY_NONE);
	SSL_free(ssl);

	/* SNI carries names, never IP literals (RFC 6066) */
	ssl = tls_client_ssl_new(ctx, "mx.example.com.", 1, err, sizeof(err));
	assert_non_null(ssl);
	assert_string_equal(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name),
	    "mx.example.com");
	assert_int_equal(SSL_get_verify_mode(ssl), SSL_VERIFY_PEER);
	SSL_free(ssl);
	ssl = tls_client_ssl_new(ctx, "127.0.0.1", 1, err, sizeof(err));
	assert_non_null(ssl);
	assert_null(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
	SSL_free(ssl);
	ssl = tls_client_ssl_new(ctx, "::1", 1, err, sizeof(err));
	assert_non_null(ssl);
	assert_null(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
	SSL_free(ssl);
	tls_ctx_free(&ctx);
}

/* --- handshakes ------------------------------------------------------- */

static const struct hs_case {
	const char	*ca;		/* client trusts */
	const char	*cert;		/* server presents */
	const char	*key;
	const char	*host;
	int		 verify;
	int		 want_ok;	/* handshake completes */
	long		 want_result;	/* SSL_get_verify_result */
	int		 want_verified;	/* tls_peer_verified */
} hs_cases[] = {
	/* 0: the good case */
	{ ca_pem, srv_pem, srv_key, "localhost", 1, 1, X509_V_OK, 1 },
	/* 1: case and the final dot do not matter */
	{ ca_pem, srv_pem, srv_key, "LocalHost.", 1, 1, X509_V_OK, 1 },
	/* 2: wrong name: refused */
	{ ca_pem, srv_pem, srv_key, "wrong.example", 1, 0,
	    X509_V_ERR_HOSTNAME_MISMATCH, 0 },
	/* 3: IP literal matched against the IP SAN */
	{ ca_pem, srv_pem, srv_key, "127.0.0.1", 1, 1, X509_V_OK, 1 },
	/* 4: wrong IP: refused */
	{ ca_pem, srv_pem, srv_key, "127.0.0.2", 1, 0,
	    X509_V_ERR_IP_ADDRESS_MISMATCH, 0 },
	/* 5: untrusted CA: refused */
	{ ca_pem, rogue_pem, rogue_key, "localhost", 1, 0,
	    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, 0 },
	/* 6: the rogue CA trusted instead: fine */
	{ rogue_ca_pem, rogue_pem, rogue_key, "localhost", 1, 1,
	    X509_V_OK, 1 },
	/* 7: opportunistic, wrong name: completes, not verified */
	{ ca_pem, srv_pem, srv_key, "wrong.example", 0, 1,
	    X509_V_ERR_HOSTNAME_MISMATCH, 0 },
	/* 8: opportunistic, untrusted CA: completes, not verified */
	{ ca_pem, rogue_pem, rogue_key, "localhost", 0, 1,
	    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, 0 },
	/* 9: opportunistic, all good: completes and says verified */
	{ ca_pem, srv_pem, srv_key, "localhost", 0, 1, X509_V_OK, 1 },
};

static void
test_handshakes(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(hs_cases) / sizeof(hs_cases[0]); i++) {
		const struct hs_case *c = &hs_cases[i];
		char err[256] = "", desc[TLS_DESCRIBE_MAX];
		SSL_CTX *cctx, *sctx;
		SSL *cl, *sv;
		int ok;

		cctx = tls_client_ctx_new(c->ca, err, sizeof(err));
		sctx = tls_server_ctx_new(c->cert, c->key, err, sizeof(err));
		if (cctx == NULL || sctx == NULL)
			fail_msg("case %zu: %s", i, err);
		cl = tls_client_ssl_new(cctx, c->host, c->verify, err,
		    sizeof(err));
		if (cl == NULL)
			fail_msg("case %zu: %s", i, err);
		sv = SSL_new(sctx);
		assert_non_null(sv);
		ok = handshake(cl, sv) == 0;
		if (ok != c->want_ok)
			fail_msg("case %zu (%s): handshake %s", i, c->host,
			    ok ? "completed" : "failed");
		if (SSL_get_verify_result(cl) != c->want_result)
			fail_msg("case %zu: verify result %ld (%s), want %ld",
			    i, SSL_get_verify_result(cl), tls_verify_error(cl),
			    c->want_result);
		if (!ok) {
			/* the reason survives the failed handshake */
			assert_string_equal(tls_verify_error(cl),
			    X509_verify_cert_error_string(c->want_result));
			assert_int_equal(tls_peer_verified(cl), 0);
		} else {
			if (tls_peer_verified(cl) != c->want_verified)
				fail_msg("case %zu: tls_peer_verified %d", i,
				    tls_peer_verified(cl));
			tls_describe(cl, desc, sizeof(desc));
			assert_contains(desc, "TLSv1.");
			assert_contains(desc, SSL_get_cipher_name(cl));
			assert_contains(desc, c->want_verified ?
			    " verified" : " unverified");
			if (c->want_verified)
				assert_string_equal(tls_verify_error(cl), "ok");
			else
				assert_string_equal(tls_verify_error(cl),
				    X509_verify_cert_error_string(
				    c->want_result));
			/* the server side: no client certificate */
			tls_describe(sv, desc, sizeof(desc));
			assert_contains(desc, "no-peer-cert");
			assert_int_equal(tls_peer_verified(sv), 0);
		}
		SSL_free(cl);
		SSL_free(sv);
		tls_ctx_free(&cctx);
		tls_ctx_free(&sctx);
	}
}

/*
 * TLS 1.1 is refused both ways.  OpenSSL 3 forbids TLS < 1.2 at the
 * default security level anyway, so the peer's and our side's level is
 * lowered to 0: then only tls.c's TLS 1.2 floor can refuse.  A control
 * run without our contexts proves this OpenSSL can still speak TLS 1.1
 * at level 0; where it cannot, the test is skipped (nothing to prove).
 */
static SSL_CTX *
tls11_ctx(int server)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() :
	    TLS_client_method());

	assert_non_null(ctx);
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
	SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
	if (server) {
		assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx,
		    srv_pem), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, srv_key,
		    SSL_FILETYPE_PEM), 1);
	}
	return (ctx);
}

static void
test_tls11_refused(void **state)
{
	char err[256];
	SSL_CTX *old_c, *old_s, *our_c, *our_s;
	SSL *c, *s;
	int ok;

	(void)state;
	old_c = tls11_ctx(0);
	old_s = tls11_ctx(1);

	/* control: old client + old server */
	c = SSL_new(old_c);
	s = SSL_new(old_s);
	ok = handshake(c, s) == 0;
	if (ok && SSL_version(c) != TLS1_1_VERSION)
		ok = 0;
	SSL_free(c);
	SSL_free(s);
	if (!ok) {
		SSL_CTX_free(old_c);
		SSL_CTX_free(old_s);
		skip();	/* this OpenSSL cannot speak TLS 1.1 at all */
	}

	our_c = tls_client_ctx_new(ca_pem, err, sizeof(err));
	our_s = tls_server_ctx_new(srv_pem, srv_key, err, sizeof(err));
	assert_non_null(our_c);
	assert_non_null(our_s);

	/* old client -> our server */
	c = SSL_new(old_c);
	s = SSL_new(our_s);
	SSL_set_security_level(s, 0);
	SSL_set_cipher_list(s, "DEFAULT:@SECLEVEL=0");
	assert_int_equal(handshake(c, s), -1);
	SSL_free(c);
	SSL_free(s);

	/* our client -> old server (opportunistic, so only the version
	 * can make it fail) */
	c = tls_client_ssl_new(our_c, "localhost", 0, err, sizeof(err));
	assert_non_null(c);
	SSL_set_security_level(c, 0);
	SSL_set_cipher_list(c, "DEFAULT:@SECLEVEL=0");
	s = SSL_new(old_s);
	assert_int_equal(handshake(c, s), -1);
	SSL_free(c);
	SSL_free(s);

	tls_ctx_free(&our_c);
	tls_ctx_free(&our_s);
	SSL_CTX_free(old_c);
	SSL_CTX_free(old_s);
}

static void
test_describe_edges(void **state)
{
	char buf[TLS_DESCRIBE_MAX], err[256] = "";
	SSL_CTX *ctx = tls_client_ctx_new(ca_pem, err, sizeof(err));
	SSL *ssl;

	(void)state;
	assert_string_equal(tls_describe(NULL, buf, sizeof(buf)), "no TLS");
	assert_non_null(ctx);
	ssl = tls_client_ssl_new(ctx, "localhost", 1, err, sizeof(err));
	assert_non_null(ssl);
	/* before the handshake */
	assert_string_equal(tls_describe(ssl, buf, sizeof(buf)), "no TLS");
	assert_int_equal(tls_peer_verified(ssl), 0);
	assert_string_equal(tls_verify_error(ssl), "no peer certificate");
	assert_int_equal(tls_peer_verified(NULL), 0);
	assert_string_equal(tls_verify_error(NULL), "no TLS");
	SSL_free(ssl);
	tls_ctx_free(&ctx);

	ERR_clear_error();
	assert_string_equal(tls_error_string(buf, sizeof(buf)),
	    "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_ctx_ok),
		cmocka_unit_test(test_server_ctx_bad),
		cmocka_unit_test(test_client_ctx),
		cmocka_unit_test(test_client_ssl_args),
		cmocka_unit_test(test_handshakes),
		cmocka_unit_test(test_tls11_refused),
		cmocka_unit_test(test_describe_edges),
	};

	return (cmocka_run_group_tests(tests, group_setup, group_teardown));
}
