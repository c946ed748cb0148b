/*
 * http.c - ferry-syncd's HTTP listener (see http.h): GET /metrics only.
 *
 * SECURITY: binds only where [syncd] http says (loopback by default); it
 * is read-only, serves one fixed path, reads no body and caps header
 * sizes and time, like the relay's control listener.  Domain names come
 * from the configuration and are escaped as label values.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "cutover.h"
#include "cutover_state.h"
#include "http.h"
#include "http_text.h"
#include "log.h"
#include "metrics.h"
#include "syncd.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION	"unknown"
#endif

#define HTTP_TIMEOUT	10	/* seconds per connection */
#define HTTP_MAXHDR	8192	/* bytes of request headers */

struct syncd_http {
	struct syncd	*sd;
	struct evhttp	*http;
};

/* cutover_metrics - the phase and the resolvers' classes per domain */
static void
cutover_metrics(const struct cutover *c, struct evbuffer *b)
{
	const struct cutover_record *r;
	char dom[2 * CUTOVER_DOMAIN_MAX + 8];
	uint64_t n[MX_CLASS_NCLASSES];
	size_t d, i;

	metrics_family(b, "cutover_phase", "gauge",
	    "Cutover phase per [cutover] domain: 1 for the current phase.");
	for (d = 0; (r = cutover_domain_record(c, d)) != NULL; d++) {
		metrics_label(r->domain, dom, sizeof(dom));
		for (i = 0; i < CUTOVER_NPHASES; i++)
			evbuffer_add_printf(b, "mailferry_syncd_cutover_phase"
			    "{domain=\"%s\",phase=\"%s\"} %d\n", dom,
			    cutover_phase_name((enum cutover_phase)i),
			    r->phase == (enum cutover_phase)i);
	}
	metrics_family(b, "cutover_phase_since_timestamp_seconds", "gauge",
	    "Since when each domain is in its phase.");
	for (d = 0; (r = cutover_domain_record(c, d)) != NULL; d++)
		evbuffer_add_printf(b, "mailferry_syncd_cutover_phase_since_"
		    "timestamp_seconds{domain=\"%s\"} %" PRId64 "\n",
		    metrics_label(r->domain, dom, sizeof(dom)), r->phase_since);
	metrics_family(b, "cutover_resolvers", "gauge",
	    "Resolvers per domain by the class of their last MX answer.");
	for (d = 0; (r = cutover_domain_record(c, d)) != NULL; d++) {
		memset(n, 0, sizeof(n));
		for (i = 0; i < r->nanswers; i++)
			if ((unsigned)r->answers[i].class < MX_CLASS_NCLASSES)
				n[r->answers[i].class]++;
		metrics_label(r->domain, dom, sizeof(dom));
		for (i = 0; i < MX_CLASS_NCLASSES; i++)
			evbuffer_add_printf(b, "mailferry_syncd_cutover_resolvers"
			    "{domain=\"%s\",class=\"%s\"} %" PRIu64 "\n", dom,
			    cutover_class_name((enum cutover_class)i), n[i]);
	}
}

/* http_cb - every request: GET /metrics, else 404 or 405 */
static void
http_cb(struct evhttp_request *req, void *arg)
{
	struct syncd_http *h = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	struct evbuffer *b;

	if (path == NULL || strcmp(path, "/metrics") != 0) {
		http_text_reply(req, HTTP_NOTFOUND, "Not Found",
		    "not found: try /metrics");
		return;
	}
	/* Not even HEAD: libevent 2.1 would send the body after it. */
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_add_header(hdr, "Allow", "GET");
		http_text_reply(req, 405, "Method Not Allowed",
		    "method not allowed: GET only");
		return;
	}
	if ((b = evbuffer_new()) == NULL) {
		http_text_reply(req, HTTP_INTERNAL, "Internal Server Error",
		    "out of memory");
		return;
	}
	metrics_family(b, "info", "gauge", "Version of the running ferry-syncd.");
	evbuffer_add_printf(b, "mailferry_syncd_info{version=\"%s\"} 1\n",
	    PACKAGE_VERSION);
	metrics_render(b, time(NULL));
	cutover_metrics(h->sd->cutover, b);
	evhttp_add_header(hdr, "Cache-Control", "no-store");
	evhttp_add_header(hdr, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

int
syncd_http_open(struct syncd_http **hp, struct syncd *sd, char *err,
    size_t errlen)
{
	const struct hostport_list *l = &sd->cfg.syncd.http;
	char where[HOSTPORT_HOSTMAX + 16];
	struct syncd_http *h;

	*hp = NULL;
	if (l->count == 0)
		return (0);
	hostport_format(&l->items[0], where, sizeof(where));
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	h->sd = sd;
	if ((h->http = evhttp_new(sd->base)) == NULL) {
		snprintf(err, errlen, "evhttp_new failed");
		free(h);
		return (-1);
	}
	/* Allow every method so that we, not libevent, answer 405. */
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_timeout(h->http, HTTP_TIMEOUT);
	evhttp_set_max_headers_size(h->http, HTTP_MAXHDR);
	evhttp_set_max_body_size(h->http, 4096);
	evhttp_set_gencb(h->http, http_cb, h);
	errno = 0;
	if (evhttp_bind_socket_with_handle(h->http, l->items[0].host,
	    (ev_uint16_t)l->items[0].port) == NULL) {
		snprintf(err, errlen, "[syncd] http: cannot listen on %s: %s",
		    where, errno ? strerror(errno) : "bind failed");
		evhttp_free(h->http);
		free(h);
		return (-1);
	}
	log_info("HTTP /metrics on %s", where);
	*hp = h;
	return (0);
}

void
syncd_http_free(struct syncd_http **hp)
{
	struct syncd_http *h = *hp;

	if (h == NULL)
		return;
	evhttp_free(h->http);
	free(h);
	*hp = NULL;
}
