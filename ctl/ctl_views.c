/*
 * ctl_views.c - the daemons' JSON documents as tables: "stats" (the
 * relay's counters, over the control socket), "drain" (what still
 * reaches the old MX: from the running relay, or what it saved in LMDB
 * when it is stopped) and "sync" (ferry-syncd's progress record in LMDB).
 * With --json each prints the document itself, once it has parsed.
 *
 * A document is flattened by json_walk() into path/value pairs
 * ("queue.total", "accounts.3.user") that the tables look up.
 */

#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "json.h"
#include "queue_record.h"
#include "drain.h"
#include "spool.h"
#include "store.h"
#include "ctl.h"

/* The stats document, flattened by json_walk(). */
struct flat {
	char	**paths;
	char	**values;
	size_t	  n;
	size_t	  alloc;
};

static void
flat_clear(struct flat *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		free(f->paths[i]);
		free(f->values[i]);
	}
	free(f->paths);
	free(f->values);
	memset(f, 0, sizeof(*f));
}

static int
flat_add(const char *path, enum json_type type, const char *value, void *arg)
{
	struct flat *f = arg;

	(void)type;
	if (f->n == f->alloc) {
		size_t n = f->alloc ? f->alloc * 2 : 64;
		char **p = reallocarray(f->paths, n, sizeof(*p));

		if (p == NULL)
			return (-2);
		f->paths = p;
		if ((p = reallocarray(f->values, n, sizeof(*p))) == NULL)
			return (-2);
		f->values = p;
		f->alloc = n;
	}
	if ((f->paths[f->n] = strdup(path)) == NULL)
		return (-2);
	if ((f->values[f->n] = strdup(value)) == NULL) {
		free(f->paths[f->n]);
		return (-2);
	}
	f->n++;
	return (0);
}

/* flat_get - the value at path as text, or def */
static const char *
flat_get(const struct flat *f, const char *path, const char *def)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->paths[i], path) == 0)
			return (f->values[i]);
	return (def);
}

static int64_t
flat_int(const struct flat *f, const char *path)
{
	return (strtoll(flat_get(f, path, "0"), NULL, 10));
}

/* cmd_stats - the relay's counters */
int
cmd_stats(struct ctl *ctl, const char *arg)
{
	static const char *const counters[] = {
		"connections", "accepted", "duplicates", "forwarded", "copied",
		"deferred", "bounced", "dsn_sent",
	};
	struct flat f = { 0 };
	char *reply, *text, err[256], b1[64], b2[64];
	const char *v;
	size_t i;
	int rc, any;

	(void)arg;
	if (ctl_request(ctl, "stats", &reply) == -1)
		return (EXIT_RUNTIME);
	if ((rc = reply_split(reply, &text)) != 0) {
		fprintf(stderr, "ferryctl: stats: %s\n", rc == 1 ?
		    clean(err, sizeof(err), text, 0) :
		    "unexpected reply from the relay");
		free(reply);
		return (EXIT_RUNTIME);
	}
	rc = json_walk(text, strlen(text), flat_add, &f, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "ferryctl: stats: bad reply from the relay: %s\n",
		    rc == -1 ? err : "out of memory");
		flat_clear(&f);
		free(reply);
		return (EXIT_RUNTIME);
	}
	if (ctl->json) {
		/* The relay's document, checked above, as it came. */
		printf("%s\n", text);
		flat_clear(&f);
		free(reply);
		return (0);
	}
	printf("ferry-relay %s, pid %s, up %s, %s SMTP session%s open\n",
	    clean(err, sizeof(err), flat_get(&f, "version", "?"), 20),
	    flat_get(&f, "pid", "?"),
	    fmt_age(b1, sizeof(b1), flat_int(&f, "uptime")),
	    flat_get(&f, "sessions", "0"),
	    flat_int(&f, "sessions") == 1 ? "" : "s");
	if (flat_int(&f, "last_inbound") > 0)
		printf("last message accepted %s ago (%s)\n",
		    fmt_age(b1, sizeof(b1), flat_int(&f, "last_inbound_age")),
		    fmt_time(b2, sizeof(b2), flat_int(&f, "last_inbound")));
	else
		printf("no message accepted since the start\n");
	printf("\nqueue: %" PRId64 " message%s (pending %" PRId64 ", deferred %"
	    PRId64 ", held %" PRId64 ")", flat_int(&f, "queue.total"),
	    flat_int(&f, "queue.total") == 1 ? "" : "s",
	    flat_int(&f, "queue.pending"), flat_int(&f, "queue.deferred"),
	    flat_int(&f, "queue.held"));
	v = flat_get(&f, "queue.oldest_age", "null");
	if (strcmp(v, "null") != 0)
		printf(", %s, oldest %s", fmt_size(b2, sizeof(b2),
		    (uint64_t)flat_int(&f, "queue.bytes")),
		    fmt_age(b1, sizeof(b1), flat_int(&f, "queue.oldest_age")));
	printf("\n\n");
	for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		snprintf(b1, sizeof(b1), "counters.%s", counters[i]);
		printf("  %-12s %10" PRId64 "\n", counters[i], flat_int(&f, b1));
	}
	printf("  %-12s", "rejected");
	any = 0;
	for (i = 0; i < f.n; i++)
		if (strncmp(f.paths[i], "counters.rejected.", 18) == 0 &&
		    strcmp(f.values[i], "0") != 0) {
			printf("%s%s %s", any ? ", " : " ",
			    clean(b1, sizeof(b1), f.paths[i] + 18, 30),
			    clean(b2, sizeof(b2), f.values[i], 20));
			any = 1;
		}
	printf("%s\n", any ? "" : " 0");
	printf("  possible duplicates after crash: %" PRId64 "\n",
	    flat_int(&f, "counters.crash_duplicates"));
	if (flat_int(&f, "upstream_latency.count") > 0)
		printf("\nupstream latency: %" PRId64 " deliveries, mean %.1f ms\n",
		    flat_int(&f, "upstream_latency.count"),
		    strtod(flat_get(&f, "upstream_latency.mean", "0"), NULL) *
		    1000);
	flat_clear(&f);
	free(reply);
	return (0);
}

/* ---- the drain view ------------------------------------------------------- */

/*
 * drain_offline - the drain document when the relay is not running: the
 * drain view it saved (STORE_DB_META "drain", written every few minutes
 * and at exit) and the queue as the database holds it.  The same shape
 * as the relay's "drain" reply, with "source": "store".  Returns the
 * JSON text (malloc'd) or NULL (message printed).
 */
static char *
drain_offline(const struct ctl *ctl)
{
	struct qlist l = { 0 };
	struct store *store = NULL;
	struct drain *d = NULL;
	struct json j;
	const char *text;
	char path[4096], err[512], *doc;
	uint64_t by_state[4] = { 0 }, bytes = 0;
	int64_t oldest = 0;
	time_t now = time(NULL);
	size_t i, len;
	int k;

	if (queue_read(ctl, &l) == -1)
		return (NULL);
	if (config_state_path(&ctl->cfg, RELAY_DB_DIR, path, sizeof(path)) ==
	    -1 || store_open(&store, path, STORE_RDONLY, err,
	    sizeof(err)) == -1 || drain_new(&d, store, err, sizeof(err)) == -1) {
		fprintf(stderr, "ferryctl: drain: cannot read the saved drain "
		    "view: %s\n", err);
		store_close(&store);
		qlist_clear(&l);
		return (NULL);
	}
	for (i = 0; i < l.n; i++) {
		by_state[qr_state(&l.recs[i])]++;
		bytes += l.recs[i].size;
		if (oldest == 0 || l.recs[i].arrived < oldest)
			oldest = l.recs[i].arrived;
	}
	json_init(&j, 0);
	json_object_begin(&j);
	json_key(&j, "now");
	json_int(&j, (int64_t)now);
	json_key(&j, "source");
	json_string(&j, "store");
	json_key(&j, "queue");
	json_object_begin(&j);
	json_key(&j, "total");
	json_uint(&j, l.n);
	for (k = 0; k < 4; k++) {
		json_key(&j, qr_state_name((enum qr_state)k));
		json_uint(&j, by_state[k]);
	}
	json_key(&j, "bytes");
	json_uint(&j, bytes);
	json_key(&j, "oldest_age");
	if (oldest)
		json_int(&j, (int64_t)now - oldest);
	else
		json_null(&j);
	json_object_end(&j);
	json_key(&j, "drain");
	drain_json(d, now, &j);
	json_object_end(&j);
	if ((text = json_finish(&j, &len)) != NULL)
		doc = strndup(text, len);
	else
		doc = NULL;
	json_clear(&j);
	drain_free(&d);
	store_close(&store);
	qlist_clear(&l);
	if (doc == NULL)
		fprintf(stderr, "ferryctl: drain: out of memory\n");
	return (doc);
}

/* drain_table - one top table ("top_domains" / "top_clients") */
static void
drain_table(const struct flat *f, const char *key, const char *title,
    time_t now)
{
	char path[128], b1[64], b2[300];
	const char *name;
	int i;

	printf("\n%s:\n", title);
	for (i = 0; i < DRAIN_TOP_SHOWN; i++) {
		snprintf(path, sizeof(path), "drain.%s.%d.name", key, i);
		if ((name = flat_get(f, path, NULL)) == NULL)
			break;
		snprintf(path, sizeof(path), "drain.%s.%d.count", key, i);
		printf("  %-40s %8" PRId64, clean(b2, sizeof(b2), name, 40),
		    flat_int(f, path));
		snprintf(path, sizeof(path), "drain.%s.%d.last_seen", key, i);
		printf("  last %s ago\n", fmt_age(b1, sizeof(b1),
		    (int64_t)now - flat_int(f, path)));
	}
	if (i == 0)
		printf("  (none)\n");
}

/*
 * cmd_drain - is the old MX drained?  Asks the running relay; when it is
 * not running, reads what it saved.
 */
int
cmd_drain(struct ctl *ctl, const char *arg)
{
	struct flat f = { 0 };
	char *reply = NULL, *doc, *text, err[256], b1[64], b2[64], path[64];
	int64_t last, since, quiet = ctl->cfg.cutover.quiet_period, total24;
	time_t now;
	int rc, i;

	(void)arg;
	rc = ctl_request_opt(ctl, "drain", &reply, 1);
	if (rc == -1)
		return (EXIT_RUNTIME);
	if (rc == -2) {
		if ((doc = drain_offline(ctl)) == NULL)
			return (EXIT_RUNTIME);
		text = doc;
	} else {
		if ((rc = reply_split(reply, &text)) != 0) {
			fprintf(stderr, "ferryctl: drain: %s\n", rc == 1 ?
			    clean(err, sizeof(err), text, 0) :
			    "unexpected reply from the relay");
			free(reply);
			return (EXIT_RUNTIME);
		}
		doc = NULL;
	}
	rc = json_walk(text, strlen(text), flat_add, &f, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "ferryctl: drain: bad document: %s\n",
		    rc == -1 ? err : "out of memory");
		flat_clear(&f);
		free(reply);
		free(doc);
		return (EXIT_RUNTIME);
	}
	if (ctl->json) {
		printf("%s\n", text);
		goto out;
	}
	now = (time_t)flat_int(&f, "now");
	last = flat_int(&f, "drain.last_inbound");
	since = flat_int(&f, "drain.seconds_since_last");
	printf("drain view of the old MX (%s)\n\n",
	    strcmp(flat_get(&f, "source", ""), "store") == 0 ?
	    "ferry-relay is not running: as last saved" : "live");
	if (last > 0)
		printf("last inbound message: %s ago (%s)\n",
		    fmt_age(b1, sizeof(b1), since),
		    fmt_time(b2, sizeof(b2), last));
	else
		printf("last inbound message: never\n");
	total24 = 0;
	for (i = 48; i < 72; i++) {
		snprintf(path, sizeof(path), "drain.hourly.%d", i);
		total24 += flat_int(&f, path);
	}
	printf("arrivals: %" PRId64 " in the last 72 h, %" PRId64
	    " in the last 24 h, %" PRId64 " this hour\n",
	    flat_int(&f, "drain.total"), total24,
	    flat_int(&f, "drain.hourly.71"));
	printf("per hour, last 24 h (oldest first):");
	for (i = 48; i < 72; i++) {
		snprintf(path, sizeof(path), "drain.hourly.%d", i);
		printf(" %" PRId64, flat_int(&f, path));
	}
	printf("\n");
	drain_table(&f, "top_domains", "sending domains still using the old MX",
	    now);
	drain_table(&f, "top_clients", "client addresses", now);
	printf("\nqueue: ");
	if (flat_int(&f, "queue.total") == 0)
		printf("empty\n");
	else
		printf("%" PRId64 " message%s (deferred %" PRId64 ", held %"
		    PRId64 ")\n", flat_int(&f, "queue.total"),
		    flat_int(&f, "queue.total") == 1 ? "" : "s",
		    flat_int(&f, "queue.deferred"), flat_int(&f, "queue.held"));
	if (flat_int(&f, "queue.total") == 0 && (last == 0 || since >= quiet))
		printf("\nverdict: drained: nothing arrived for %s ([cutover] "
		    "quiet_period) and the queue is empty\n",
		    last == 0 ? "ever" : fmt_age(b1, sizeof(b1), since));
	else
		printf("\nverdict: not drained yet: %s\n",
		    flat_int(&f, "queue.total") > 0 ? "the queue is not empty" :
		    "mail arrived within [cutover] quiet_period");
out:
	flat_clear(&f);
	free(reply);
	free(doc);
	return (0);
}

/* ---- ferry-syncd's progress --------------------------------------------- */

/* The META key ferry-syncd keeps its progress object under (state.h). */
#define SYNCD_PROGRESS_KEY	"syncd.progress"
#define SYNCD_PROGRESS_MAX	(4 * 1024 * 1024)

/* What sync_read_txn() copies out of the map. */
struct sync_doc {
	char	*doc;
	size_t	 len;
};

/* sync_read_txn - copy the progress record; may run again */
static int
sync_read_txn(struct store_txn *tx, void *arg)
{
	struct sync_doc *d = arg;
	const void *val;
	size_t vlen;
	int rc;

	free(d->doc);
	d->doc = NULL;
	d->len = 0;
	rc = store_get(tx, STORE_DB_META, SYNCD_PROGRESS_KEY,
	    strlen(SYNCD_PROGRESS_KEY), &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0)
		return (-1);
	if (vlen > SYNCD_PROGRESS_MAX)
		return (3);
	if ((d->doc = malloc(vlen + 1)) == NULL)
		return (2);
	memcpy(d->doc, val, vlen);
	d->doc[vlen] = '\0';
	d->len = vlen;
	return (0);
}

/*
 * sync_read - the progress record from the store, opened read-only;
 * 0 with d->doc set, 1 when no ferry-syncd has written one (message
 * printed), -1 on errors (message printed).
 */
static int
sync_read(const struct ctl *ctl, struct sync_doc *d)
{
	struct store *store = NULL;
	char path[4096], err[512];
	int rc;

	if (config_state_path(&ctl->cfg, RELAY_DB_DIR, path, sizeof(path)) ==
	    -1) {
		fprintf(stderr, "ferryctl: [global] state_dir is too long\n");
		return (-1);
	}
	if (access(path, F_OK) == -1 && errno == ENOENT) {
		fprintf(stderr, "ferryctl: ferry-syncd has never run with this "
		    "state_dir (no database at %s)\n", path);
		return (1);
	}
	if (store_open(&store, path, STORE_RDONLY, err, sizeof(err)) == -1) {
		fprintf(stderr, "ferryctl: cannot open the database %s: %s\n",
		    path, err);
		return (-1);
	}
	rc = store_txn_run(store, 1, sync_read_txn, d, err, sizeof(err));
	store_close(&store);
	if (rc != 0) {
		fprintf(stderr, "ferryctl: reading ferry-syncd's progress: %s\n",
		    rc == -1 ? err : rc == 3 ? "record too large" :
		    "out of memory");
		free(d->doc);
		d->doc = NULL;
		return (-1);
	}
	if (d->doc == NULL) {
		fprintf(stderr, "ferryctl: ferry-syncd has never run with this "
		    "state_dir (no progress record in %s)\n", path);
		return (1);
	}
	return (0);
}

/* pid_alive - whether a process with this id exists (ours or not) */
static int
pid_alive(int64_t pid)
{
	if (pid <= 0 || pid > INT32_MAX)
		return (0);
	return (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* cmd_sync - ferry-syncd's progress: accounts, folders, rate, ETA */
int
cmd_sync(struct ctl *ctl, const char *arg)
{
	struct flat f = { 0 };
	struct sync_doc d = { NULL, 0 };
	char err[256], b1[64], b2[64], b3[64], path[64];
	const char *v;
	int64_t pid, now = (int64_t)time(NULL), n, i;
	int rc, running;

	(void)arg;
	if ((rc = sync_read(ctl, &d)) != 0)
		return (EXIT_RUNTIME);
	rc = json_walk(d.doc, d.len, flat_add, &f, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "ferryctl: sync: unreadable progress record: "
		    "%s\n", rc == -1 ? err : "out of memory");
		flat_clear(&f);
		free(d.doc);
		return (EXIT_RUNTIME);
	}
	if (ctl->json) {
		/* ferry-syncd's document, checked above, as it is stored. */
		printf("%s\n", d.doc);
		flat_clear(&f);
		free(d.doc);
		return (0);
	}

	pid = flat_int(&f, "pid");
	running = strcmp(flat_get(&f, "running", "false"), "true") == 0;
	if (running && !pid_alive(pid))
		printf("ferry-syncd pid %" PRId64 " is gone without finishing "
		    "(killed?); last update %s ago\n", pid,
		    fmt_age(b1, sizeof(b1), now - flat_int(&f, "updated")));
	else if (running)
		printf("ferry-syncd pid %" PRId64 ", %s, %s pass #%" PRId64
		    " running since %s (updated %s ago)\n", pid,
		    strcmp(flat_get(&f, "mode", ""), "daemon") == 0 ?
		    "daemon" : "one pass (--once)",
		    clean(b3, sizeof(b3), flat_get(&f, "pass", "?"), 10),
		    flat_int(&f, "pass_number"),
		    fmt_time(b1, sizeof(b1), flat_int(&f, "started")),
		    fmt_age(b2, sizeof(b2), now - flat_int(&f, "updated")));
	else
		printf("ferry-syncd is not running (pid %" PRId64 ", last "
		    "update %s)\n", pid,
		    fmt_time(b1, sizeof(b1), flat_int(&f, "updated")));

	printf("\n%s pass #%" PRId64 ": accounts %" PRId64 "/%" PRId64
	    ", folders %" PRId64 "/%" PRId64 ", messages %" PRId64 "/%"
	    PRId64 "\n", running ? "current" : "last",
	    flat_int(&f, "pass_number"), flat_int(&f, "accounts_done"),
	    flat_int(&f, "accounts_total"), flat_int(&f, "folders_done"),
	    flat_int(&f, "folders_total"), flat_int(&f, "messages_done"),
	    flat_int(&f, "messages_total"));
	printf("  copied %" PRId64 " (%s), duplicates %" PRId64
	    ", skipped by policy %" PRId64 ", failed %" PRId64 "\n",
	    flat_int(&f, "copied"),
	    fmt_size(b1, sizeof(b1), (uint64_t)flat_int(&f, "bytes")),
	    flat_int(&f, "duplicates"), flat_int(&f, "skipped_policy"),
	    flat_int(&f, "failed"));
	if (running) {
		v = flat_get(&f, "eta_seconds", "null");
		printf("  rate %.1f msgs/s, %s/s, ETA %s\n",
		    strtod(flat_get(&f, "rate_msgs", "0"), NULL),
		    fmt_size(b1, sizeof(b1), (uint64_t)strtod(flat_get(&f,
		    "rate_bytes", "0"), NULL)),
		    strcmp(v, "null") == 0 ? "unknown" :
		    fmt_age(b2, sizeof(b2), strtoll(v, NULL, 10)));
	}
	if (flat_get(&f, "last_pass.finished", NULL) != NULL) {
		printf("\nlast finished pass: %s, %s, copied %" PRId64
		    ", failed %" PRId64 "\n  verdict: %s\n",
		    fmt_time(b1, sizeof(b1), flat_int(&f, "last_pass.finished")),
		    strcmp(flat_get(&f, "last_pass.complete", "false"),
		    "true") == 0 ? "complete" : "INCOMPLETE",
		    flat_int(&f, "last_pass.copied"),
		    flat_int(&f, "last_pass.failed"),
		    clean(err, sizeof(err), flat_get(&f, "last_pass.verdict",
		    "?"), 200));
	} else
		printf("\nno pass has finished yet\n");

	printf("\n%-32s %-8s %9s %9s %7s  %s\n", "ACCOUNT", "STATE",
	    "FOLDERS", "COPIED", "FAILED", "ERROR");
	for (i = 0, n = 0; i < 1000000; i++) {
		char user[64], folders[32];

		snprintf(path, sizeof(path), "accounts.%" PRId64 ".user", i);
		if ((v = flat_get(&f, path, NULL)) == NULL)
			break;
		clean(user, sizeof(user), v, 32);
		snprintf(path, sizeof(path), "accounts.%" PRId64 ".state", i);
		clean(b3, sizeof(b3), flat_get(&f, path, "?"), 8);
		snprintf(path, sizeof(path), "accounts.%" PRId64
		    ".folders_done", i);
		snprintf(folders, sizeof(folders), "%" PRId64, flat_int(&f, path));
		snprintf(path, sizeof(path), "accounts.%" PRId64
		    ".folders_total", i);
		snprintf(folders + strlen(folders), sizeof(folders) -
		    strlen(folders), "/%" PRId64, flat_int(&f, path));
		snprintf(path, sizeof(path), "accounts.%" PRId64 ".copied", i);
		snprintf(b1, sizeof(b1), "%" PRId64, flat_int(&f, path));
		snprintf(path, sizeof(path), "accounts.%" PRId64 ".failed", i);
		snprintf(b2, sizeof(b2), "%" PRId64, flat_int(&f, path));
		snprintf(path, sizeof(path), "accounts.%" PRId64 ".error", i);
		v = flat_get(&f, path, "null");
		printf("%-32s %-8s %9s %9s %7s", user, b3, folders, b1, b2);
		if (strcmp(v, "null") != 0)
			printf("  %s", clean(err, sizeof(err), v, 100));
		printf("\n");
		n++;
	}
	if (n == 0)
		printf("(no accounts yet)\n");
	flat_clear(&f);
	free(d.doc);
	return (0);
}
