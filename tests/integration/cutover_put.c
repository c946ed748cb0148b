/*
 * cutover_put.c - write one domain's cutover record in a phase, the way
 * ferry-syncd's watcher stores it, for the relay's routing tests:
 *
 *	cutover_put STATE_DIR DOMAIN PHASE
 *
 * opens STATE_DIR/db (created if missing) and puts a fresh record of
 * DOMAIN (lower-cased) in PHASE (presync, synced, switching,
 * dual-reception, closed, rollback) since now, with that change in its
 * history.  Exit 0, 1 on failure, 2 on usage errors.  Test tool only: a
 * local store, no network.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cutover_state.h"
#include "store.h"
#include "util.h"

static int
put_txn(struct store_txn *tx, void *arg)
{
	return (cutover_record_put(tx, arg));
}

int
main(int argc, char *argv[])
{
	struct cutover_record *r;
	struct store *st = NULL;
	char dir[4096], dom[CUTOVER_DOMAIN_MAX + 1], err[512];
	time_t now = time(NULL);
	int p;

	if (argc != 4) {
		fprintf(stderr, "usage: cutover_put STATE_DIR DOMAIN PHASE\n");
		return (2);
	}
	for (p = 0; p < CUTOVER_NPHASES; p++)
		if (strcmp(cutover_phase_name((enum cutover_phase)p),
		    argv[3]) == 0)
			break;
	if (p == CUTOVER_NPHASES || strlen(argv[2]) > CUTOVER_DOMAIN_MAX) {
		fprintf(stderr, "cutover_put: bad phase or domain\n");
		return (2);
	}
	snprintf(dom, sizeof(dom), "%s", argv[2]);
	str_lower(dom);
	snprintf(dir, sizeof(dir), "%s/db", argv[1]);
	if ((r = malloc(sizeof(*r))) == NULL)
		return (1);
	cutover_record_init(r, dom, now);
	cutover_record_history(r, now, r->phase, (enum cutover_phase)p,
	    "cutover_put");
	r->phase = (enum cutover_phase)p;
	r->phase_since = now;
	if (store_open(&st, dir, 0, err, sizeof(err)) == -1 ||
	    store_txn_run(st, 0, put_txn, r, err, sizeof(err)) != 0) {
		fprintf(stderr, "cutover_put: %s\n", err);
		store_close(&st);
		free(r);
		return (1);
	}
	store_close(&st);
	free(r);
	return (0);
}
