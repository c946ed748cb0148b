/*
 * control_page.h - GET / on the relay's control HTTP listener: one
 * self-contained HTML page (inline CSS, an inline SVG chart, a few lines
 * of JavaScript for the auto-refresh; no external asset) with what an
 * admin watches during a cutover: phase, verdict and outstanding items
 * per [cutover] domain with each resolver's MX answer, the relay queue
 * by state and its oldest message, arrivals per hour over the drain
 * view's 72 hours, and ferry-syncd's progress per account.
 *
 * Everything is read at request time from the shared LMDB store (the
 * cutover records, the queue, ferry-syncd's "syncd.progress" record)
 * and the relay's drain view: the page never disagrees with `ferryctl
 * status|stats|drain|sync --json` of the same moment.  Every number
 * shown also sits in a data-* attribute of an element with a fixed id
 * or class, for scripts and tests.
 *
 * Ownership: borrows the relay; keeps nothing between requests.  Loop
 * thread only.
 */
#ifndef FERRY_CONTROL_PAGE_H
#define FERRY_CONTROL_PAGE_H

#include <time.h>

struct evbuffer;
struct evhttp_request;
struct relay;

/* control_page_reply - answer req with the page (or a 500 text). */
void	control_page_reply(struct relay *relay, struct evhttp_request *req);

/*
 * control_page_render - the page at now into out; 0, or -1 with err
 * (the store could not be read, out of memory).
 */
int	control_page_render(struct relay *relay, time_t now,
	    struct evbuffer *out, char *err, size_t errlen);

/* control_page_escape - s as HTML text or attribute value (& < > " '
 * escaped, control characters and invalid UTF-8 as U+FFFD). */
void	control_page_escape(struct evbuffer *out, const char *s);

#endif
