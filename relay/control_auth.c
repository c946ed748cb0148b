/*
 * control_auth.c - credentials for the control HTTP listener (see
 * control_auth.h).
 *
 * SECURITY: the secrets are read once at start from files root (or the
 * package) wrote; only their SHA-256 digests are kept, and a request's
 * credentials are hashed the same way and compared with CRYPTO_memcmp(),
 * so neither the comparison's time nor its length says how much of a
 * guess was right.  The Authorization header is hostile input: its
 * length is capped by evhttp's header limit (control.c), a basic
 * credential is decoded into a bounded buffer, and neither the header
 * nor anything decoded from it is ever logged.  A refused request is
 * logged with the peer's address and the (sanitised) path only.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "config.h"
#include "control_auth.h"
#include "http_text.h"
#include "log.h"
#include "util.h"

struct control_auth {
	int		has_token;
	unsigned char	token[SHA256_DIGEST_LENGTH];	/* of the token */
	int		has_basic;
	unsigned char	basic[SHA256_DIGEST_LENGTH];	/* of "user:pass" */
};

/*
 * read_secret - the first line of path (without its line end) into buf
 * (at least CONTROL_AUTH_SECRET_MAX + 1 bytes); key names the setting
 * for the errors.  The file must be a regular file others cannot read.
 */
static int
read_secret(const char *key, const char *path, char *buf, char *err,
    size_t errlen)
{
	struct stat sb;
	char tmp[CONTROL_AUTH_SECRET_MAX + 2];
	ssize_t n;
	size_t len;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		snprintf(err, errlen, "[control] %s %s: %s", key, path,
		    strerror(errno));
		return (-1);
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "[control] %s %s: not a regular file",
		    key, path);
		close(fd);
		return (-1);
	}
	if (sb.st_mode & (S_IROTH | S_IWOTH)) {
		snprintf(err, errlen, "[control] %s %s: readable or writable "
		    "by everyone (chmod o-rw)", key, path);
		close(fd);
		return (-1);
	}
	do
		n = read(fd, tmp, sizeof(tmp) - 1);
	while (n == -1 && errno == EINTR);
	close(fd);
	if (n == -1) {
		snprintf(err, errlen, "[control] %s %s: %s", key, path,
		    strerror(errno));
		return (-1);
	}
	tmp[n] = '\0';
	len = strcspn(tmp, "\r\n");
	if (len == 0 || len > CONTROL_AUTH_SECRET_MAX) {
		snprintf(err, errlen, "[control] %s %s: the first line must "
		    "hold the secret (1 to %d bytes)", key, path,
		    CONTROL_AUTH_SECRET_MAX);
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return (-1);
	}
	memcpy(buf, tmp, len);
	buf[len] = '\0';
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return (0);
}

int
control_auth_new(struct control_auth **auth_r, const struct config *cfg,
    char *err, size_t errlen)
{
	struct control_auth *a;
	char secret[CONTROL_AUTH_SECRET_MAX + 1];
	char pair[2 * CONTROL_AUTH_SECRET_MAX + 2];
	const char *tf = cfg->control.auth_token_file;
	const char *user = cfg->control.auth_user;
	const char *pf = cfg->control.auth_password_file;
	int n;

	*auth_r = NULL;
	if ((tf == NULL || tf[0] == '\0') && (user == NULL || user[0] == '\0'))
		return (0);
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	if (tf != NULL && tf[0] != '\0') {
		if (read_secret("auth_token_file", tf, secret, err,
		    errlen) == -1)
			goto fail;
		SHA256((const unsigned char *)secret, strlen(secret), a->token);
		a->has_token = 1;
	}
	if (user != NULL && user[0] != '\0') {
		if (pf == NULL || pf[0] == '\0') {
			snprintf(err, errlen, "[control] auth_user needs "
			    "auth_password_file");
			goto fail;
		}
		if (read_secret("auth_password_file", pf, secret, err,
		    errlen) == -1)
			goto fail;
		n = snprintf(pair, sizeof(pair), "%s:%s", user, secret);
		if (n < 0 || (size_t)n >= sizeof(pair)) {
			snprintf(err, errlen, "[control] auth_user is too long");
			goto fail;
		}
		SHA256((const unsigned char *)pair, (size_t)n, a->basic);
		a->has_basic = 1;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(pair, sizeof(pair));
	*auth_r = a;
	return (0);
fail:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(pair, sizeof(pair));
	free(a);
	return (-1);
}

void
control_auth_free(struct control_auth **auth)
{
	if (*auth == NULL)
		return;
	OPENSSL_cleanse(*auth, sizeof(**auth));
	free(*auth);
	*auth = NULL;
}

const char *
control_auth_describe(const struct control_auth *auth)
{
	if (auth == NULL)
		return ("none");
	if (auth->has_token && auth->has_basic)
		return ("bearer token or basic");
	return (auth->has_token ? "bearer token" : "basic");
}

/* digest_equal - SHA-256 of s[0..len) against want, in constant time */
static int
digest_equal(const void *s, size_t len, const unsigned char *want)
{
	unsigned char got[SHA256_DIGEST_LENGTH];

	SHA256(s, len, got);
	return (CRYPTO_memcmp(got, want, sizeof(got)) == 0);
}

/*
 * basic_ok - "Basic B64" credentials: decode (padded base64, as RFC
 * 7617 clients send it) and compare "user:pass"
 */
static int
basic_ok(const struct control_auth *auth, const char *b64)
{
	unsigned char out[(2 * CONTROL_AUTH_SECRET_MAX + 2) * 3 / 4 + 4];
	size_t len = strlen(b64);
	int n, ok;

	while (len > 0 && (b64[len - 1] == ' ' || b64[len - 1] == '\t'))
		len--;
	if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(out) - 1)
		return (0);
	if ((n = EVP_DecodeBlock(out, (const unsigned char *)b64,
	    (int)len)) < 0)
		return (0);
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (b64[len - 1] == '=')
		n--;
	if (b64[len - 2] == '=')
		n--;
	ok = n > 0 && digest_equal(out, (size_t)n, auth->basic);
	OPENSSL_cleanse(out, sizeof(out));
	return (ok);
}

/* credentials_ok - does the Authorization value match a secret? */
static int
credentials_ok(const struct control_auth *auth, const char *value)
{
	const char *p;

	if (strncasecmp(value, "Bearer ", 7) == 0 && auth->has_token) {
		for (p = value + 7; *p == ' '; p++)
			;
		return (*p != '\0' && digest_equal(p, strlen(p), auth->token));
	}
	if (strncasecmp(value, "Basic ", 6) == 0 && auth->has_basic) {
		for (p = value + 6; *p == ' '; p++)
			;
		return (basic_ok(auth, p));
	}
	return (0);
}

int
control_auth_allow(const struct control_auth *auth,
    struct evhttp_request *req)
{
	struct evkeyvalq *out;
	const char *value, *uri;
	char *peer = NULL, clean[128];
	ev_uint16_t port = 0;

	if (auth == NULL)
		return (1);
	value = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (value != NULL && credentials_ok(auth, value))
		return (1);
	if (evhttp_request_get_connection(req) != NULL)
		evhttp_connection_get_peer(evhttp_request_get_connection(req),
		    &peer, &port);
	uri = evhttp_request_get_uri(req);
	str_printable(clean, sizeof(clean), uri ? uri : "?",
	    uri ? strlen(uri) : 1);
	log_info("control: HTTP %s from %s: %s", clean, peer ? peer : "?",
	    value == NULL ? "no credentials" : "wrong credentials");
	out = evhttp_request_get_output_headers(req);
	if (auth->has_basic)
		evhttp_add_header(out, "WWW-Authenticate",
		    "Basic realm=\"mailferry\", charset=\"UTF-8\"");
	if (auth->has_token)
		evhttp_add_header(out, "WWW-Authenticate",
		    "Bearer realm=\"mailferry\"");
	evhttp_add_header(out, "Cache-Control", "no-store");
	http_text_reply(req, 401, "Unauthorized", "authentication required");
	return (0);
}
