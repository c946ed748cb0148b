/*
 * control_auth.h - who may use the relay's control HTTP listener:
 * [control] auth_token_file (a bearer token) and/or auth_user +
 * auth_password_file (HTTP basic authentication, RFC 7617).  Without
 * either, every request is served (config.c allows that only on a
 * loopback address); with one, every path needs it.
 *
 * Ownership: struct control_auth belongs to struct control (control.c);
 * it holds digests of the secrets, never the secrets themselves, and
 * nothing here logs a secret or what a client sent as one.  Loop thread
 * only.
 */
#ifndef FERRY_CONTROL_AUTH_H
#define FERRY_CONTROL_AUTH_H

#include <stddef.h>

struct config;
struct control_auth;
struct evhttp_request;

#define CONTROL_AUTH_SECRET_MAX	1024	/* bytes of a token or password */

/*
 * control_auth_new - read the secret files named in cfg (their first
 * line; they must be readable by the relay's user and not by everyone).
 * *auth_r is NULL when no authentication is configured.  0, or -1 with
 * err naming the key and the file.
 */
int	control_auth_new(struct control_auth **auth_r,
	    const struct config *cfg, char *err, size_t errlen);
void	control_auth_free(struct control_auth **auth);

/*
 * control_auth_allow - 1: the request carries valid credentials (or none
 * are required) and may go on; 0: it was answered 401 here.  The
 * comparison takes the same time whatever the client sent.
 */
int	control_auth_allow(const struct control_auth *auth,
	    struct evhttp_request *req);

/* control_auth_describe - "bearer token", "basic", "bearer token or
 * basic" or "none", for the log line at start. */
const char *control_auth_describe(const struct control_auth *auth);

#endif
