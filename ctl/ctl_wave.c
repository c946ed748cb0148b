/*
 * ctl_wave.c - "wave": the staged waves of the accounts file (the
 * wave=N column, syncd/accounts.h) and where each one's mail goes
 * (common/route_state.h).  "wave" lists them from the accounts file and
 * LMDB, read-only, so it works with the relay stopped; "wave N migrate"
 * and "wave N pending" ask the running relay over the control socket:
 * it writes the record and logs the change (relay/control_wave.c).
 * "status" shows the same list (ctl_waves_text(), ctl_waves_json()).
 *
 * Bad input - a wave that is not a number in 1..ROUTE_WAVE_MAX, one no
 * account is in, an unknown action, an accounts file that does not load
 * - is a usage error (exit 2) and nothing is asked of the relay.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "accounts.h"
#include "cli.h"
#include "config.h"
#include "cutover_state.h"
#include "json.h"
#include "route_state.h"
#include "spool.h"
#include "store.h"
#include "ctl.h"

/* ctl_waves_load - the waves with their state and account counts */
int
ctl_waves_load(const struct ctl *ctl, struct ctl_waves *wv, int quiet)
{
	const char *path = route_accounts_path(&ctl->cfg);
	struct store *store = NULL;
	char dbpath[4096], err[1024];
	unsigned w;
	int rc = -1;

	memset(wv, 0, sizeof(*wv));
	if ((wv->state = calloc(ROUTE_WAVE_MAX + 1,
	    sizeof(*wv->state))) == NULL ||
	    (wv->count = calloc(ROUTE_WAVE_MAX + 1,
	    sizeof(*wv->count))) == NULL) {
		fprintf(stderr, "ferryctl: out of memory\n");
		return (EXIT_RUNTIME);
	}
	wv->path = path;
	if (path != NULL) {
		if (accounts_load_opts(path, ACCOUNTS_NO_SECRETS, &wv->acc,
		    err, sizeof(err)) == -1) {
			if (!quiet)
				fprintf(stderr, "ferryctl: %s\n", err);
			wv->error = 1;
			return (EXIT_USAGE);
		}
		for (w = 1; w <= ROUTE_WAVE_MAX; w++)
			if ((wv->count[w] = accounts_wave_count(wv->acc,
			    w)) > 0)
				wv->n++;
	}
	if (config_state_path(&ctl->cfg, RELAY_DB_DIR, dbpath,
	    sizeof(dbpath)) == -1) {
		fprintf(stderr, "ferryctl: [global] state_dir is too long\n");
		return (EXIT_USAGE);
	}
	if (access(dbpath, F_OK) == -1 && errno == ENOENT)
		store = NULL;	/* nothing recorded yet: every wave pending */
	else if (store_open(&store, dbpath, STORE_RDONLY, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "ferryctl: cannot open the database %s: %s\n",
		    dbpath, err);
		return (EXIT_RUNTIME);
	}
	if (route_state_read(store, wv->state, err, sizeof(err)) == -1)
		fprintf(stderr, "ferryctl: %s\n", err);
	else
		rc = 0;
	store_close(&store);
	return (rc == 0 ? 0 : EXIT_RUNTIME);
}

void
ctl_waves_clear(struct ctl_waves *wv)
{
	accounts_free(&wv->acc);
	free(wv->state);
	free(wv->count);
	memset(wv, 0, sizeof(*wv));
}

/* ctl_waves_json - "waves": [{"wave", "state", "since", "why",
 * "accounts"}], in wave order (a key of the caller's object) */
void
ctl_waves_json(struct json *j, void *arg)
{
	const struct ctl_waves *wv = arg;
	char t[32];
	unsigned w;

	json_key(j, "waves");
	json_array_begin(j);
	for (w = 1; wv->count != NULL && w <= ROUTE_WAVE_MAX; w++) {
		const struct route_wave *r = &wv->state[w];

		if (wv->count[w] == 0)
			continue;
		json_object_begin(j);
		json_key(j, "wave");
		json_uint(j, w);
		json_key(j, "state");
		json_string(j, route_wave_state_name(r->state));
		json_key(j, "since");
		if (r->since > 0)
			json_string(j, cutover_format_rfc3339(t, sizeof(t),
			    r->since));
		else
			json_null(j);
		json_key(j, "why");
		if (r->why[0])
			json_string(j, r->why);
		else
			json_null(j);
		json_key(j, "accounts");
		json_uint(j, wv->count[w]);
		json_object_end(j);
	}
	json_array_end(j);
}

/* ctl_waves_text - the table (nothing when there are no waves) */
int
ctl_waves_text(FILE *fp, const struct ctl_waves *wv)
{
	char t[32], why[ROUTE_WHY_MAX + 1];
	unsigned w;

	if (wv->n == 0)
		return (0);
	fprintf(fp, "%-5s %-9s %-19s %8s  %s\n", "WAVE", "STATE", "SINCE",
	    "ACCOUNTS", "WHY");
	for (w = 1; w <= ROUTE_WAVE_MAX; w++) {
		const struct route_wave *r = &wv->state[w];

		if (wv->count[w] == 0)
			continue;
		fprintf(fp, "%-5u %-9s %-19s %8zu  %s\n", w,
		    route_wave_state_name(r->state), fmt_time(t, sizeof(t),
		    r->since), wv->count[w], r->why[0] ? clean(why,
		    sizeof(why), r->why, 0) : "-");
	}
	return (ferror(fp) ? -1 : 0);
}

/* wave_list - "wave": every wave of the accounts file */
static int
wave_list(struct ctl *ctl)
{
	struct ctl_waves wv;
	struct json j;
	int rc;

	if ((rc = ctl_waves_load(ctl, &wv, 0)) != 0) {
		ctl_waves_clear(&wv);
		return (rc);
	}
	if (ctl->json) {
		json_init(&j, JSON_PRETTY);
		json_object_begin(&j);
		ctl_waves_json(&j, &wv);
		json_object_end(&j);
		rc = json_print(&j) == 0 ? 0 : EXIT_RUNTIME;
	} else if (wv.n == 0) {
		printf("no staged waves: %s%s\n", wv.path ? wv.path :
		    "no accounts file is configured",
		    wv.path ? " has no account with a wave=N field" : "");
	} else
		rc = ctl_waves_text(stdout, &wv) == 0 ? 0 : EXIT_RUNTIME;
	ctl_waves_clear(&wv);
	return (rc);
}

/* wave_fields - "wave": N */
static void
wave_fields(struct json *j, const void *arg)
{
	json_key(j, "wave");
	json_uint(j, *(const unsigned *)arg);
}

/* wave_set - "wave N migrate|pending" through the relay */
static int
wave_set(struct ctl *ctl, const char *nstr, const char *action)
{
	struct ctl_waves wv;
	char buf[512], req[64], *reply, *text;
	unsigned w;
	int rc;

	if (strcmp(action, "migrate") != 0 && strcmp(action, "pending") != 0) {
		fprintf(stderr, "ferryctl: wave: unknown action \"%s\" (migrate "
		    "or pending)\n", clean(buf, sizeof(buf), action, 40));
		return (EXIT_USAGE);
	}
	if ((w = route_wave_parse(nstr)) == 0) {
		fprintf(stderr, "ferryctl: wave: bad wave \"%s\" (a number "
		    "from 1 to %u)\n", clean(buf, sizeof(buf), nstr, 40),
		    ROUTE_WAVE_MAX);
		return (EXIT_USAGE);
	}
	if ((rc = ctl_waves_load(ctl, &wv, 0)) != 0) {
		ctl_waves_clear(&wv);
		return (rc);
	}
	if (wv.count[w] == 0) {
		size_t o = 0;
		unsigned k;

		buf[0] = '\0';
		for (k = 1; k <= ROUTE_WAVE_MAX && o + 8 < sizeof(buf); k++)
			if (wv.count[k] > 0)
				o += (size_t)snprintf(buf + o, sizeof(buf) - o,
				    "%s%u", o ? ", " : "", k);
		fprintf(stderr, "ferryctl: wave %u: unknown: no account of %s "
		    "is in it (waves: %s)\n", w, wv.path ? wv.path :
		    "the accounts file (none configured)", o ? buf : "none");
		ctl_waves_clear(&wv);
		return (EXIT_USAGE);
	}
	ctl_waves_clear(&wv);
	snprintf(req, sizeof(req), "wave %u %s", w, action);
	if (ctl_request(ctl, req, &reply) == -1)
		return (EXIT_RUNTIME);
	rc = reply_split(reply, &text);
	ctl_show_reply(ctl, req, rc, text, wave_fields, &w);
	/* The relay's accounts may differ from ours (edited since it
	 * started): its "unknown wave" is a usage error too. */
	if (rc == 1 && strncmp(text, "unknown wave", 12) == 0)
		rc = 2;
	free(reply);
	return (rc == 0 ? 0 : rc == 2 ? EXIT_USAGE : EXIT_RUNTIME);
}

/* cmd_wave - "wave" or "wave N migrate|pending" */
int
cmd_wave(struct ctl *ctl, const char *arg)
{
	(void)arg;
	if (ctl->nwave_args == 0)
		return (wave_list(ctl));
	return (wave_set(ctl, ctl->wave_args[0], ctl->wave_args[1]));
}
