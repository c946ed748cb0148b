/*
 * control_cap.h - a cap on the connections of the control HTTP listener.
 *
 * libevent 2.1's evhttp accepts without limit (evhttp_set_max_connections
 * came with 2.2), and every connection is a descriptor the SMTP server
 * and the spool need.  http_cap_new() hooks an evhttp: each connection
 * it accepts is counted; one over max is closed at once (before a
 * request is read) and the refusals are logged at most once a minute
 * with a count.
 *
 * Ownership: the struct http_cap belongs to the caller; free it with
 * http_cap_free() after evhttp_free() (connections closed by evhttp_free
 * report to it).  Loop thread only.
 */
#ifndef FERRY_CONTROL_CAP_H
#define FERRY_CONTROL_CAP_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>

struct http_cap;

/* http_cap_new - count and cap the connections of http; NULL on ENOMEM */
struct http_cap *http_cap_new(struct evhttp *http, struct event_base *base,
	    size_t max);
void	http_cap_free(struct http_cap **capp);

/* http_cap_open - connections open now; http_cap_refused - total refused */
size_t	http_cap_open(const struct http_cap *cap);
uint64_t http_cap_refused(const struct http_cap *cap);

#endif
