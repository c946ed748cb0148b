/*
 * tls.c - OpenSSL 3 contexts with the project's TLS policy (see tls.h).
 *
 * Policy, in one place: TLS 1.2 is the floor both ways (RFC 8996);
 * clients verify the server's chain against a CA file or the system
 * store and check the host name (DNS SAN/CN with no partial wildcards, or
 * an IP SAN for an IP literal); "opportunistic" connections (verify = 0)
 * complete the handshake whatever the certificate, but the verification
 * still runs, so tls_peer_verified() and tls_verify_error() tell the
 * truth for the logs.  Renegotiation is off (it has only ever brought
 * CVEs to mail servers).
 *
 * SECURITY: the private key is read by OpenSSL straight from key_file;
 * this module never copies, prints or logs key material, and error texts
 * carry file names and OpenSSL reasons only.  OpenSSL's per-thread error
 * queue is always drained after a failure, so a stale error never turns
 * up in an unrelated later call.
 *
 * Ownership and threading: see tls.h.  No global state here.
 */

#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "util.h"


/*
 * tls_error_string - empty this thread's OpenSSL error queue and describe
 * its first (root-cause) entry: "reason (library)".  "unknown error" when
 * the queue was empty.  Returns buf.
 */
const char *
tls_error_string(char *buf, size_t len)
{
	unsigned long e, first = 0;
	const char *reason, *lib;

	while ((e = ERR_get_error()) != 0)
		if (first == 0)
			first = e;
	if (len == 0)
		return (buf);
	if (first == 0) {
		snprintf(buf, len, "unknown error");
		return (buf);
	}
	reason = ERR_reason_error_string(first);
	lib = ERR_lib_error_string(first);
	if (reason == NULL)
		snprintf(buf, len, "OpenSSL error %lx", first);
	else if (lib != NULL)
		snprintf(buf, len, "%s (%s)", reason, lib);
	else
		snprintf(buf, len, "%s", reason);
	return (buf);
}

/* readable - a clear errno message naming the file beats OpenSSL's */
static int
readable(const char *what, const char *file, char *err, size_t errlen)
{
	struct stat st;
	FILE *fp;

	if (file == NULL || *file == '\0') {
		errbuf_set(err, errlen, "no %s file given", what);
		return (-1);
	}
	if ((fp = fopen(file, "r")) == NULL) {
		errbuf_set(err, errlen, "%s: %s", file, strerror(errno));
		return (-1);
	}
	if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(fp);
		errbuf_set(err, errlen, "%s: is a directory, not a %s file", file,
		    what);
		return (-1);
	}
	fclose(fp);
	return (0);
}

/*
 * no_passphrase - OpenSSL's default would prompt on the terminal for an
 * encrypted key and hang a daemon; refuse instead (keys must be stored
 * unencrypted, readable by the daemon only).
 */
static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return (-1);
}

/* load_reason - OpenSSL's reason, or plainer words for the usual ones */
static const char *
load_reason(const char *what, char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();

	if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
		ERR_clear_error();
		snprintf(buf, len, "no PEM %s found", what);
		return (buf);
	}
	return (tls_error_string(buf, len));
}

/* ctx_common - what client and server contexts share */
static int
ctx_common(SSL_CTX *ctx, char *err, size_t errlen)
{
	char ebuf[160];

	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		errbuf_set(err, errlen, "cannot set TLS 1.2 minimum: %s",
		    tls_error_string(ebuf, sizeof(ebuf)));
		return (-1);
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	return (0);
}

/*
 * tls_client_ctx_new - a context for outgoing connections that verifies
 * servers against ca_file (a PEM bundle, or a directory of hashed
 * certificates) or, when ca_file is NULL, the system's default store.
 */
SSL_CTX *
tls_client_ctx_new(const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	struct stat st;
	char ebuf[160];

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		errbuf_set(err, errlen, "cannot create TLS client context: %s",
		    tls_error_string(ebuf, sizeof(ebuf)));
		return (NULL);
	}
	if (ctx_common(ctx, err, errlen) == -1)
		goto fail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file == NULL) {
		if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			errbuf_set(err, errlen, "cannot load the system CA "
			    "store: %s", tls_error_string(ebuf, sizeof(ebuf)));
			goto fail;
		}
	} else if (stat(ca_file, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (SSL_CTX_load_verify_dir(ctx, ca_file) != 1) {
			errbuf_set(err, errlen, "%s: cannot use as CA directory: "
			    "%s", ca_file, tls_error_string(ebuf, sizeof(ebuf)));
			goto fail;
		}
	} else {
		if (readable("CA", ca_file, err, errlen) == -1)
			goto fail;
		if (SSL_CTX_load_verify_file(ctx, ca_file) != 1) {
			errbuf_set(err, errlen, "%s: cannot load CA certificates: "
			    "%s", ca_file, tls_error_string(ebuf, sizeof(ebuf)));
			goto fail;
		}
	}
	return (ctx);
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return (NULL);
}

/*
 * tls_server_ctx_new - a context for incoming STARTTLS / implicit TLS
 * with the certificate chain of cert_file (PEM, leaf first) and the
 * private key of key_file (PEM, unencrypted), which must match.
 */
SSL_CTX *
tls_server_ctx_new(const char *cert_file, const char *key_file, char *err,
    size_t errlen)
{
	static const unsigned char sid_ctx[] = "mailferry";
	SSL_CTX *ctx;
	char ebuf[160];

	ERR_clear_error();
	if (readable("certificate", cert_file, err, errlen) == -1 ||
	    readable("key", key_file, err, errlen) == -1)
		return (NULL);
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		errbuf_set(err, errlen, "cannot create TLS server context: %s",
		    tls_error_string(ebuf, sizeof(ebuf)));
		return (NULL);
	}
	if (ctx_common(ctx, err, errlen) == -1)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Session resumption needs an id context once a verify mode is
	 * ever set on a server SSL; set it now so that never fails. */
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		errbuf_set(err, errlen, "%s: cannot load certificate chain: %s",
		    cert_file, load_reason("certificate", ebuf, sizeof(ebuf)));
		goto fail;
	}
	/* OpenSSL itself refuses a key that does not match the leaf
	 * certificate here; SSL_CTX_check_private_key() below says so
	 * for the odd case where it did not. */
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		unsigned long e = ERR_peek_last_error();

		if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
		    ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH) {
			ERR_clear_error();
			errbuf_set(err, errlen, "%s: private key does not match "
			    "the certificate in %s", key_file, cert_file);
		} else
			errbuf_set(err, errlen, "%s: cannot load private key "
			    "(unencrypted PEM expected): %s", key_file,
			    tls_error_string(ebuf, sizeof(ebuf)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		errbuf_set(err, errlen, "%s: private key does not match the "
		    "certificate in %s", key_file, cert_file);
		goto fail;
	}
	return (ctx);
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return (NULL);
}

/* tls_ctx_free - free *ctxp (NULL is fine) and set it to NULL */
void
tls_ctx_free(SSL_CTX **ctxp)
{
	if (ctxp == NULL || *ctxp == NULL)
		return;
	SSL_CTX_free(*ctxp);
	*ctxp = NULL;
}

/*
 * tls_client_ssl_new - one outgoing connection's SSL, in connect state.
 * hostname (a DNS name, or a bare IPv4/IPv6 literal) is sent as SNI
 * (names only, RFC 6066) and checked against the certificate.  verify:
 * 1 = the handshake fails unless chain and name verify; 0 = it completes
 * anyway (opportunistic TLS) and the outcome is left for
 * tls_peer_verified().  verify = 1 needs a hostname.
 */
SSL *
tls_client_ssl_new(SSL_CTX *ctx, const char *hostname, int verify, char *err,
    size_t errlen)
{
	SSL *ssl;
	char host[256], ebuf[160];
	struct in6_addr a6;
	struct in_addr a4;
	size_t len;

	ERR_clear_error();
	if (hostname != NULL && *hostname != '\0') {
		len = strlen(hostname);
		if (hostname[len - 1] == '.')	/* "mx.example.com." */
			len--;
		if (len == 0 || len >= sizeof(host)) {
			errbuf_set(err, errlen, "bad TLS host name");
			return (NULL);
		}
		memcpy(host, hostname, len);
		host[len] = '\0';
	} else if (verify) {
		errbuf_set(err, errlen, "verification needs a host name");
		return (NULL);
	} else
		host[0] = '\0';

	if ((ssl = SSL_new(ctx)) == NULL) {
		errbuf_set(err, errlen, "cannot create TLS connection: %s",
		    tls_error_string(ebuf, sizeof(ebuf)));
		return (NULL);
	}
	if (host[0] != '\0') {
		if (inet_pton(AF_INET, host, &a4) == 1 ||
		    inet_pton(AF_INET6, host, &a6) == 1) {
			if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
			    host) != 1)
				goto fail;
		} else {
			SSL_set_hostflags(ssl,
			    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set_tlsext_host_name(ssl, host) != 1 ||
			    SSL_set1_host(ssl, host) != 1)
				goto fail;
		}
	}
	SSL_set_verify(ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	SSL_set_connect_state(ssl);
	return (ssl);
fail:
	errbuf_set(err, errlen, "cannot set TLS host name \"%s\": %s", host,
	    tls_error_string(ebuf, sizeof(ebuf)));
	SSL_free(ssl);
	return (NULL);
}

/*
 * tls_peer_verified - 1 when the peer presented a certificate whose chain
 * verified and (client side, hostname given) whose name matched.
 */
int
tls_peer_verified(SSL *ssl)
{
	return (ssl != NULL && SSL_get0_peer_certificate(ssl) != NULL &&
	    SSL_get_verify_result(ssl) == X509_V_OK);
}

/*
 * tls_verify_error - why the peer is not verified, "ok" when it is.
 * Also right after a handshake that verification made fail: OpenSSL then
 * keeps the result but not the certificate.
 */
const char *
tls_verify_error(SSL *ssl)
{
	long rc;

	if (ssl == NULL)
		return ("no TLS");
	if ((rc = SSL_get_verify_result(ssl)) != X509_V_OK)
		return (X509_verify_cert_error_string(rc));
	if (SSL_get0_peer_certificate(ssl) == NULL)
		return ("no peer certificate");
	return ("ok");
}

/*
 * tls_describe - one line for logs and Received: headers, e.g.
 * "TLSv1.3 TLS_AES_256_GCM_SHA384 verified"; the last word is
 * "verified", "unverified" or "no-peer-cert" (a client without one, the
 * usual case for inbound SMTP).  Returns buf.
 */
const char *
tls_describe(SSL *ssl, char *buf, size_t len)
{
	const char *state;

	if (ssl == NULL || !SSL_is_init_finished(ssl)) {
		snprintf(buf, len, "no TLS");
		return (buf);
	}
	if (SSL_get0_peer_certificate(ssl) == NULL)
		state = "no-peer-cert";
	else if (SSL_get_verify_result(ssl) == X509_V_OK)
		state = "verified";
	else
		state = "unverified";
	snprintf(buf, len, "%s %s %s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl), state);
	return (buf);
}
