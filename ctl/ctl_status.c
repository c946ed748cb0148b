/*
 * ctl_status.c - "status": the cutover of every [cutover] domain, as
 * common/cutover_state.c renders it from LMDB (phase, the resolvers'
 * answers, the relay's and the passes' evidence, the verdict evaluated
 * now).  Read-only, so it works with both daemons stopped.
 */

#include <sys/types.h>
#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "cutover_state.h"
#include "json.h"
#include "spool.h"
#include "store.h"
#include "ctl.h"

/* ---- the cutover ------------------------------------------------------------ */

/*
 * relay_running - whether a ferry-relay holds its pid file's lock (it
 * keeps an exclusive flock for its life): 1 yes, 0 no, -1 unknown.
 */
static int
relay_running(const struct ctl *ctl)
{
	const char *path = ctl->cfg.relay.pid_file;
	int fd, rc;

	if (path == NULL || *path == '\0')
		return (-1);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return (errno == ENOENT ? 0 : -1);
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		(void)flock(fd, LOCK_UN);
		rc = 0;
	} else
		rc = errno == EWOULDBLOCK ? 1 : -1;
	close(fd);
	return (rc);
}

/*
 * cmd_status - the cutover of every [cutover] domain, from LMDB: the
 * record ferry-syncd keeps, the relay's evidence and the verdict
 * evaluated now.  Works with both daemons stopped.
 */
int
cmd_status(struct ctl *ctl, const char *arg)
{
	struct store *store = NULL;
	struct ctl_waves wv;
	struct json j;
	char path[4096], err[512];
	int rc;

	(void)arg;
	if (config_state_path(&ctl->cfg, RELAY_DB_DIR, path, sizeof(path)) ==
	    -1) {
		fprintf(stderr, "ferryctl: [global] state_dir is too long\n");
		return (EXIT_USAGE);
	}
	if (access(path, F_OK) == -1 && errno == ENOENT)
		store = NULL;	/* neither daemon has run: nothing recorded */
	else if (store_open(&store, path, STORE_RDONLY, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "ferryctl: cannot open the database %s: %s\n",
		    path, err);
		return (EXIT_RUNTIME);
	}
	/* The staged waves too; an accounts file that does not load is
	 * said once and leaves them out. */
	if (ctl_waves_load(ctl, &wv, 0) != 0 && !wv.error) {
		ctl_waves_clear(&wv);
		store_close(&store);
		return (EXIT_RUNTIME);
	}
	if (ctl->json) {
		json_init(&j, JSON_PRETTY);
		rc = cutover_status_render_more(store, &ctl->cfg, time(NULL),
		    relay_running(ctl), &j, NULL, ctl_waves_json, &wv, err,
		    sizeof(err));
		store_close(&store);
		ctl_waves_clear(&wv);
		if (rc == -1) {
			json_clear(&j);
			fprintf(stderr, "ferryctl: status: %s\n", err);
			return (EXIT_RUNTIME);
		}
		return (json_print(&j) == 0 ? 0 : EXIT_RUNTIME);
	}
	rc = cutover_status_render(store, &ctl->cfg, time(NULL),
	    relay_running(ctl), NULL, stdout, err, sizeof(err));
	store_close(&store);
	if (rc == 0 && wv.n > 0) {
		printf("\nstaged waves (%s):\n", wv.path);
		if (ctl_waves_text(stdout, &wv) == -1)
			rc = -1;
	}
	ctl_waves_clear(&wv);
	if (rc == -1) {
		fprintf(stderr, "ferryctl: status: %s\n", err);
		return (EXIT_RUNTIME);
	}
	return (0);
}
