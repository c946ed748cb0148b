/*
 * http_text.h - the small pieces of HTTP that ferry-relay's control
 * listener and ferry-syncd's metrics listener answer alike: a short
 * plain-text reply (errors, 404, 405) and the HELP/TYPE lines of a
 * Prometheus text-format metric family.
 *
 * Loop thread of the caller's event base, like every evhttp call.
 */
#ifndef FERRY_HTTP_TEXT_H
#define FERRY_HTTP_TEXT_H

struct evbuffer;
struct evhttp_request;

/* http_text_reply - send TEXT and a newline as text/plain with code and
 * reason; out of memory sends the status line without a body. */
void	http_text_reply(struct evhttp_request *req, int code,
	    const char *reason, const char *text);

/* http_metric_family - "# HELP PREFIX_NAME HELP" and "# TYPE PREFIX_NAME
 * TYPE" (PREFIX e.g. "mailferry_relay"). */
void	http_metric_family(struct evbuffer *b, const char *prefix,
	    const char *name, const char *type, const char *help);

#endif
