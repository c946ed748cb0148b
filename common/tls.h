/*
 * tls.h - OpenSSL 3 contexts and per-connection objects with the
 * project's TLS policy: TLS 1.2 or newer, certificate verification on
 * by default, host names checked against the certificate.
 *
 * Ownership: tls_*_ctx_new() return an SSL_CTX the caller frees with
 * tls_ctx_free(); tls_client_ssl_new() returns an SSL the caller frees
 * with SSL_free() (or hands to a bufferevent with BEV_OPT_CLOSE_ON_FREE,
 * which then frees it).  Strings returned by tls_describe() live in the
 * caller's buffer; tls_verify_error() returns a static string.
 *
 * Threading: an SSL_CTX may be shared by threads once built; an SSL
 * belongs to one connection and one thread at a time.
 */
#ifndef FERRY_TLS_H
#define FERRY_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#define TLS_DESCRIBE_MAX	128	/* enough for any tls_describe() */

SSL_CTX	*tls_client_ctx_new(const char *ca_file, char *err, size_t errlen);
SSL_CTX	*tls_server_ctx_new(const char *cert_file, const char *key_file,
	    char *err, size_t errlen);
void	 tls_ctx_free(SSL_CTX **ctxp);

SSL	*tls_client_ssl_new(SSL_CTX *ctx, const char *hostname, int verify,
	    char *err, size_t errlen);

const char *tls_describe(SSL *ssl, char *buf, size_t len);
int	 tls_peer_verified(SSL *ssl);
const char *tls_verify_error(SSL *ssl);
const char *tls_error_string(char *buf, size_t len);

#endif
