/*
 * cutover_probe.c - syncd/cutover.c's MX watcher on a real loop against
 * a real DNS server, for test_cutover_watch.sh:
 *
 *	cutover_probe -c FILE SECONDS [--pass]
 *
 * loads the configuration, opens state_dir/db, starts the watcher with
 * no accounts, optionally reports one empty pass at once (so every
 * domain leaves presync), runs the loop for SECONDS and exits.  Each
 * request for a catch-up pass is printed as "REQUEST why".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "cutover.h"
#include "log.h"
#include "store.h"

static void
request_pass(void *arg, const char *why)
{
	(void)arg;
	printf("REQUEST %s\n", why);
	fflush(stdout);
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int
main(int argc, char *argv[])
{
	struct config cfg;
	struct store *st = NULL;
	struct cutover *c = NULL;
	struct cutover_hooks h = { request_pass, NULL, NULL };
	struct cutover_pass_result r;
	struct event_base *base;
	struct event *stop;
	struct timeval tv = { 0, 0 };
	char err[512], path[4096];

	if (argc < 4 || strcmp(argv[1], "-c") != 0) {
		fprintf(stderr, "usage: cutover_probe -c FILE SECONDS [--pass]\n");
		return (2);
	}
	log_open("cutover_probe", LOG_DEST_STDERR, 0, LOG_LVL_DEBUG);
	if (config_load(&cfg, argv[2], err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return (2);
	}
	if (config_state_path(&cfg, "db", path, sizeof(path)) == -1 ||
	    store_open(&st, path, 0, err, sizeof(err)) == -1) {
		fprintf(stderr, "store: %s\n", err);
		return (1);
	}
	if ((base = event_base_new()) == NULL)
		return (1);
	if (cutover_new(&c, base, st, &cfg, NULL, &h, err, sizeof(err)) == -1) {
		fprintf(stderr, "cutover_new: %s\n", err);
		return (1);
	}
	if (argc > 4 && strcmp(argv[4], "--pass") == 0) {
		memset(&r, 0, sizeof(r));
		r.started = time(NULL);
		cutover_pass_started(c, r.started);
		r.finished = time(NULL);
		cutover_pass_done(c, &r);
	}
	tv.tv_sec = atoi(argv[3]);
	stop = evtimer_new(base, stop_cb, base);
	evtimer_add(stop, &tv);
	event_base_dispatch(base);
	event_free(stop);
	cutover_free(&c);
	event_base_free(base);
	store_close(&st);
	config_free(&cfg);
	return (0);
}
