/*
 * http.h - ferry-syncd's HTTP listener on [syncd] http: GET /metrics,
 * the Prometheus text exposition of metrics.h plus the cutover's phases
 * and resolvers' answers per domain.
 *
 * Ownership and threads: struct syncd_http belongs to the daemon
 * (scheduler.c opens it on sd->base before the first pass and frees it
 * after the loop); it runs on the loop thread and reads the cutover
 * (loop thread only) and the counters (metrics.h, thread-safe).
 */
#ifndef FERRY_SYNCD_HTTP_H
#define FERRY_SYNCD_HTTP_H

#include <stddef.h>

struct syncd;
struct syncd_http;

/* syncd_http_open - bind [syncd] http; *hp NULL (and 0) when it is
 * empty.  -1 with err when it cannot listen. */
int	syncd_http_open(struct syncd_http **hp, struct syncd *sd, char *err,
	    size_t errlen);
void	syncd_http_free(struct syncd_http **hp);

#endif
