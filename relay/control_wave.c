/*
 * control_wave.c - the control socket's "wave N migrate|pending": the
 * admin moves a staged wave's mail to the new provider (migrated) or
 * back to the old host (pending).  The routing record
 * (common/route_state.h) is written in its own LMDB transaction and
 * read by the next message's routing (route.h), so it applies without
 * a restart; the change is logged with who asked (the peer's uid and
 * pid, SO_PEERCRED) and kept in the record's why.
 *
 * Only a wave some account of the relay's accounts file is in may be
 * changed: anything else is "error unknown wave ...", nothing written.
 *
 * SECURITY: the arguments come from the control socket (already checked
 * printable ASCII by control.c); the wave is parsed strictly (1 to
 * ROUTE_WAVE_MAX, decimal, no sign or leading zero).  Loop thread only.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "control_wave.h"
#include "log.h"
#include "relay.h"
#include "route.h"
#include "route_state.h"
#include "util.h"


void
control_wave(struct relay *r, const char *nstr, const char *action,
    unsigned uid, long pid, struct evbuffer *out)
{
	enum route_wave_state to;
	struct route_wave w, cur[1];
	char err[512], list[256];
	unsigned wave;
	struct route_wave *all;

	if (nstr == NULL || action == NULL) {
		evbuffer_add_printf(out, "error usage: wave N migrate|"
		    "pending\n");
		return;
	}
	if (route_wave_state_parse(strcmp(action, "migrate") == 0 ?
	    "migrated" : action, &to) == -1) {
		evbuffer_add_printf(out, "error unknown action: want migrate "
		    "or pending\n");
		return;
	}
	if ((wave = route_wave_parse(nstr)) == 0 ||
	    relay_routes_wave_count(r->routes, wave) == 0) {
		str_printable(err, 16, nstr, strlen(nstr));
		evbuffer_add_printf(out, "error unknown wave %s: the accounts "
		    "file has wave(s) %s\n", err, relay_routes_wave_list(
		    r->routes, list, sizeof(list)));
		return;
	}
	/* The current state, for the log line and a change that is none. */
	if ((all = calloc(ROUTE_WAVE_MAX + 1, sizeof(*all))) == NULL) {
		evbuffer_add_printf(out, "error out of memory\n");
		return;
	}
	if (route_state_read(r->store, all, err, sizeof(err)) == -1) {
		free(all);
		log_warnx("control: wave %u: %s", wave, err);
		evbuffer_add_printf(out, "error cannot read the routing "
		    "table\n");
		return;
	}
	cur[0] = all[wave];
	free(all);
	if (cur[0].state == to && cur[0].since != 0) {
		evbuffer_add_printf(out, "ok wave %u is already %s\n", wave,
		    route_wave_state_name(to));
		return;
	}
	route_wave_init(&w, wave);
	w.state = to;
	w.since = (int64_t)time(NULL);
	snprintf(w.why, sizeof(w.why), "ferryctl wave %u %s (uid %u, pid %ld)",
	    wave, action, uid, pid);
	if (route_state_write(r->store, &w, err, sizeof(err)) == -1) {
		log_warnx("control: wave %u: cannot write its routing record: "
		    "%s", wave, err);
		evbuffer_add_printf(out, "error cannot write the routing "
		    "record\n");
		return;
	}
	log_notice("wave %u: %s -> %s (%zu account(s)), by ferryctl (uid %u, "
	    "pid %ld): %s", wave, route_wave_state_name(cur[0].state),
	    route_wave_state_name(to), relay_routes_wave_count(r->routes,
	    wave), uid, pid, to == ROUTE_WAVE_MIGRATED ? "its recipients are "
	    "forwarded to the new provider" : "its recipients go to copy_to "
	    "only");
	evbuffer_add_printf(out, "ok wave %u %s\n", wave,
	    route_wave_state_name(to));
}
