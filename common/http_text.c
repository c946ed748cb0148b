/*
 * http_text.c - see http_text.h.
 */

#include <event2/buffer.h>
#include <event2/http.h>

#include "http_text.h"

void
http_text_reply(struct evhttp_request *req, int code, const char *reason,
    const char *text)
{
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	if (b != NULL)
		evbuffer_add_printf(b, "%s\n", text);
	evhttp_send_reply(req, code, reason, b);
	if (b != NULL)
		evbuffer_free(b);
}

void
http_metric_family(struct evbuffer *b, const char *prefix, const char *name,
    const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s_%s %s\n# TYPE %s_%s %s\n", prefix,
	    name, help, prefix, name, type);
}
