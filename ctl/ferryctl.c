/*
 * ferryctl.c - the admin's commands (DESIGN.md §8).
 *
 *   queue              the relay's queue, read from LMDB directly
 *   show ID            one message: record, envelope, headers
 *   retry ID|all, hold ID, release ID, delete ID
 *                      changes, sent to the running relay over its
 *                      control socket (the daemon owns the queue)
 *   stats              the relay's counters, over the control socket
 *   sync               ferry-syncd's progress ("syncd.progress" in the
 *                      META database, written by the running syncd),
 *                      read from LMDB directly
 *   status             the cutover per [cutover] domain: phase, the
 *                      resolvers' answers, the relay's and the passes'
 *                      evidence, and the verdict evaluated now
 *                      (common/cutover_state.h); LMDB read directly, so
 *                      it works with both daemons stopped
 *
 * Every command prints a table by default and JSON with --json.  Exit
 * status: 0 ok, 1 runtime failure (relay not running, unknown ID,
 * unreadable queue), 2 usage or configuration error.
 *
 * It reads the same configuration as the daemons, so it knows where the
 * state directory and the control socket are.  The read-only views open
 * the LMDB environment with STORE_RDONLY beside the running relay (or
 * without it: they work while the relay is stopped) and the spool file
 * read-only; ferryctl never writes to either.
 *
 * SECURITY: what it prints came from the network (addresses, replies,
 * headers): table output passes every such string through
 * print_clean(), which turns control characters into \xNN so nothing
 * can drive the admin's terminal; JSON output is escaped by json.c.
 * Replies from the control socket are length-limited and parsed as
 * untrusted.
 */

#include <sys/types.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "cutover_state.h"
#include "drain.h"
#include "json.h"
#include "spool.h"
#include "store.h"
#include "util.h"

#define CTL_REPLY_MAX	(1024 * 1024)	/* longest reply we accept */
#define CTL_WAIT_MS	30000		/* for the relay's answer */
#define HDR_MAX_BYTES	(256 * 1024)	/* headers shown by "show" */
#define HDR_MAX_LINES	2000

/* What every command gets. */
struct ctl {
	struct config	cfg;
	int		json;
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ferryctl [-ht] [-c FILE] [--json] COMMAND [ARG]\n"
	    "  -c FILE  configuration file (default %s)\n"
	    "  -t       check the configuration and exit\n"
	    "  --json   print JSON instead of a table\n"
	    "  -h       show this help\n"
	    "commands:\n"
	    "  queue             list the relay's queue\n"
	    "  show ID           one queued message in detail\n"
	    "  retry ID|all      try to deliver now\n"
	    "  hold ID           keep a message from being delivered\n"
	    "  release ID        undo hold\n"
	    "  delete ID         remove a message without delivering it\n"
	    "  stats             the relay's counters\n"
	    "  drain             what still reaches the old MX; is it drained?\n"
	    "  sync              ferry-syncd's progress and last pass\n"
	    "  status            the cutover per domain: phase, evidence, verdict\n",
	    CLI_DEFAULT_CONFIG);
}

/* ---- output helpers ----------------------------------------------------- */

/*
 * clean - s made safe for a terminal into buf: printable ASCII kept,
 * everything else \xNN; cut to width characters with "..." when longer
 * (width 0: no limit but buf's size).
 */
static const char *
clean(char *buf, size_t len, const char *s, size_t width)
{
	size_t n;

	if (s == NULL)
		s = "";
	n = str_printable(buf, len, s, strlen(s));
	if (width > 3 && n > width) {
		/* str_printable may have cut inside an escape: fine, we cut
		 * before it anyway. */
		buf[width - 3] = '\0';
		strcat(buf, "...");
	}
	return (buf);
}

/* fmt_age - "45s", "12m05s", "3h05m", "2d04h" */
static const char *
fmt_age(char *buf, size_t len, int64_t secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, len, "%" PRId64 "s", secs);
	else if (secs < 3600)
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", secs / 60,
		    secs % 60);
	else if (secs < 86400)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", secs / 3600,
		    secs % 3600 / 60);
	else
		snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", secs / 86400,
		    secs % 86400 / 3600);
	return (buf);
}

/* fmt_size - "812", "4.1K", "12M" */
static const char *
fmt_size(char *buf, size_t len, uint64_t n)
{
	if (n < 1024)
		snprintf(buf, len, "%" PRIu64, n);
	else if (n < 10 * 1024)
		snprintf(buf, len, "%.1fK", (double)n / 1024);
	else if (n < 1024 * 1024)
		snprintf(buf, len, "%" PRIu64 "K", n / 1024);
	else if (n < 10 * 1024 * 1024)
		snprintf(buf, len, "%.1fM", (double)n / (1024 * 1024));
	else
		snprintf(buf, len, "%" PRIu64 "M", n / (1024 * 1024));
	return (buf);
}

/* fmt_time - local time as "2024-05-01 12:34:56" */
static const char *
fmt_time(char *buf, size_t len, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "-");
	return (buf);
}

/* json_print - print a finished document and a newline; -1 if none */
static int
json_print(struct json *j)
{
	const char *doc;
	size_t len;

	if ((doc = json_finish(j, &len)) == NULL) {
		fprintf(stderr, "ferryctl: out of memory\n");
		json_clear(j);
		return (-1);
	}
	fwrite(doc, 1, len, stdout);
	fputc('\n', stdout);
	json_clear(j);
	return (0);
}

static const char *
dest_name(unsigned dest)
{
	return (dest == DLV_COPY ? "copy_to" : "upstream");
}

static const char *
dlv_state_name(unsigned state)
{
	switch (state) {
	case DLV_PENDING:
		return ("pending");
	case DLV_SENT:
		return ("sent");
	case DLV_BOUNCED:
		return ("bounced");
	}
	return ("?");
}

/* valid_id - exactly QUEUE_ID_LEN lower-case hex digits */
static int
valid_id(const char *s)
{
	return (strlen(s) == QUEUE_ID_LEN &&
	    strspn(s, "0123456789abcdef") == QUEUE_ID_LEN);
}

/* ---- reading the queue -------------------------------------------------- */

/* The records of one read, in key (= arrival) order. */
struct qlist {
	struct queue_record	*recs;
	size_t			 n;
	size_t			 alloc;
	size_t			 unreadable;
	const char		*want;	/* show: only this id */
};

static void
qlist_clear(struct qlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		queue_record_clear(&l->recs[i]);
	free(l->recs);
	l->recs = NULL;
	l->n = l->alloc = l->unreadable = 0;
}

/* qlist_one - store_foreach callback: decode and keep one record */
static int
qlist_one(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct qlist *l = arg;
	struct queue_record *recs;
	char err[128];

	(void)key;
	(void)klen;
	if (l->n == l->alloc) {
		size_t n = l->alloc ? l->alloc * 2 : 64;

		if ((recs = reallocarray(l->recs, n, sizeof(*recs))) == NULL)
			return (2);	/* "out of memory" in queue_read() */
		l->recs = recs;
		l->alloc = n;
	}
	if (queue_record_decode(val, vlen, &l->recs[l->n], err,
	    sizeof(err)) == -1) {
		l->unreadable++;
		return (0);
	}
	l->n++;
	return (0);
}

/* qlist_txn - read every record (or the wanted one); may run again */
static int
qlist_txn(struct store_txn *tx, void *arg)
{
	struct qlist *l = arg;
	const void *val;
	size_t vlen;
	int rc;

	qlist_clear(l);
	if (l->want == NULL)
		return (store_foreach(tx, STORE_DB_QUEUE, NULL, 0, qlist_one, l));
	rc = store_get(tx, STORE_DB_QUEUE, l->want, strlen(l->want), &val,
	    &vlen);
	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0)
		return (-1);
	return (qlist_one(l->want, strlen(l->want), val, vlen, l));
}

/* queue_read - open the store read-only and read the queue into l */
static int
queue_read(const struct ctl *ctl, struct qlist *l)
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
		fprintf(stderr, "ferryctl: no queue database at %s: has "
		    "ferry-relay run with this state_dir?\n", path);
		return (-1);
	}
	if (store_open(&store, path, STORE_RDONLY, err, sizeof(err)) == -1) {
		fprintf(stderr, "ferryctl: cannot open the queue database %s: "
		    "%s\n", path, err);
		return (-1);
	}
	rc = store_txn_run(store, 1, qlist_txn, l, err, sizeof(err));
	store_close(&store);
	if (rc != 0) {
		fprintf(stderr, "ferryctl: reading the queue: %s\n",
		    rc == -1 ? err : "out of memory");
		qlist_clear(l);
		return (-1);
	}
	return (0);
}

/*
 * A message's summary over its deliveries: the pending ones decide
 * (most attempts, earliest next try, the latest reply); when none is
 * pending, all of them.
 */
struct summary {
	size_t		 nrcpt;		/* upstream recipients */
	uint32_t	 attempts;
	int64_t		 next_try;	/* 0: none pending */
	const char	*last_reply;
	enum qr_state	 state;
};

static void
summarise(const struct queue_record *rec, struct summary *s)
{
	size_t i, ncopy = 0;
	int any_pending = 0;

	memset(s, 0, sizeof(*s));
	s->state = qr_state(rec);
	for (i = 0; i < rec->ndlv; i++)
		if (rec->dlv[i].state == DLV_PENDING)
			any_pending = 1;
	for (i = 0; i < rec->ndlv; i++) {
		const struct delivery *d = &rec->dlv[i];

		if (d->dest == DLV_UPSTREAM)
			s->nrcpt++;
		else
			ncopy++;
		if (any_pending && d->state != DLV_PENDING)
			continue;
		if (d->attempts >= s->attempts) {
			s->attempts = d->attempts;
			if (d->last_reply != NULL)
				s->last_reply = d->last_reply;
		} else if (s->last_reply == NULL && d->last_reply != NULL)
			s->last_reply = d->last_reply;
		if (d->state == DLV_PENDING &&
		    (s->next_try == 0 || d->next_try < s->next_try))
			s->next_try = d->next_try;
	}
	if (s->nrcpt == 0)
		s->nrcpt = ncopy;
}

/* json_delivery - one delivery as a JSON object */
static void
json_delivery(struct json *j, const struct delivery *d)
{
	json_object_begin(j);
	json_key(j, "rcpt");
	json_string(j, d->rcpt);
	json_key(j, "dest");
	json_string(j, dest_name(d->dest));
	json_key(j, "state");
	json_string(j, dlv_state_name(d->state));
	json_key(j, "attempts");
	json_uint(j, d->attempts);
	json_key(j, "next_try");
	if (d->state == DLV_PENDING)
		json_int(j, d->next_try);
	else
		json_null(j);
	json_key(j, "last_reply");
	json_string(j, d->last_reply);
	json_object_end(j);
}

/* json_message - the fields of one record, inside an open object */
static void
json_message(struct json *j, const struct queue_record *rec, time_t now)
{
	struct summary s;
	size_t i;

	summarise(rec, &s);
	json_key(j, "id");
	json_string(j, rec->id);
	json_key(j, "arrived");
	json_int(j, rec->arrived);
	json_key(j, "age");
	json_int(j, (int64_t)now - rec->arrived);
	json_key(j, "size");
	json_uint(j, rec->size);
	json_key(j, "sender");
	json_string(j, rec->sender);
	json_key(j, "client");
	json_string(j, rec->client);
	json_key(j, "recipients");
	json_uint(j, s.nrcpt);
	json_key(j, "state");
	json_string(j, qr_state_name(s.state));
	json_key(j, "held");
	json_bool(j, (rec->flags & QR_HELD) != 0);
	json_key(j, "dsn");
	json_bool(j, (rec->flags & QR_DSN) != 0);
	json_key(j, "attempts");
	json_uint(j, s.attempts);
	json_key(j, "next_try");
	if (s.next_try != 0 && s.state != QR_STATE_HELD)
		json_int(j, s.next_try);
	else
		json_null(j);
	json_key(j, "last_reply");
	json_string(j, s.last_reply);
	json_key(j, "deliveries");
	json_array_begin(j);
	for (i = 0; i < rec->ndlv; i++)
		json_delivery(j, &rec->dlv[i]);
	json_array_end(j);
}

/* fmt_next - when the next try is due, for the table */
static const char *
fmt_next(char *buf, size_t len, const struct summary *s, time_t now)
{
	char age[32];

	if (s->state == QR_STATE_HELD || s->state == QR_STATE_DONE ||
	    s->next_try == 0)
		snprintf(buf, len, "-");
	else if (s->next_try <= now)
		snprintf(buf, len, "now");
	else
		snprintf(buf, len, "in %s", fmt_age(age, sizeof(age),
		    s->next_try - now));
	return (buf);
}

/* cmd_queue - the whole queue */
static int
cmd_queue(struct ctl *ctl, const char *arg)
{
	struct qlist l = { 0 };
	struct summary s;
	struct json j;
	time_t now = time(NULL);
	uint64_t bytes = 0;
	size_t i;
	char age[32], size[32], sender[128], next[40], reply[256];

	(void)arg;
	if (queue_read(ctl, &l) == -1)
		return (EXIT_RUNTIME);
	if (ctl->json) {
		json_init(&j, JSON_PRETTY);
		json_object_begin(&j);
		json_key(&j, "count");
		json_uint(&j, l.n);
		json_key(&j, "unreadable");
		json_uint(&j, l.unreadable);
		json_key(&j, "messages");
		json_array_begin(&j);
		for (i = 0; i < l.n; i++) {
			json_object_begin(&j);
			json_message(&j, &l.recs[i], now);
			json_object_end(&j);
		}
		json_array_end(&j);
		json_object_end(&j);
		qlist_clear(&l);
		return (json_print(&j) == 0 ? 0 : EXIT_RUNTIME);
	}
	if (l.n == 0)
		printf("The queue is empty.\n");
	else
		printf("%-16s %7s %6s %-30s %5s %-8s %5s %-9s %s\n", "ID", "AGE",
		    "SIZE", "SENDER", "RCPTS", "STATE", "TRIES", "NEXT TRY",
		    "LAST REPLY");
	for (i = 0; i < l.n; i++) {
		const struct queue_record *rec = &l.recs[i];

		summarise(rec, &s);
		bytes += rec->size;
		printf("%-16s %7s %6s %-30s %5zu %-8s %5" PRIu32 " %-9s %s\n",
		    rec->id, fmt_age(age, sizeof(age), (int64_t)now - rec->arrived),
		    fmt_size(size, sizeof(size), rec->size),
		    rec->sender[0] ? clean(sender, sizeof(sender), rec->sender,
		    30) : "<>", s.nrcpt, qr_state_name(s.state), s.attempts,
		    fmt_next(next, sizeof(next), &s, now),
		    s.last_reply ? clean(reply, sizeof(reply), s.last_reply,
		    70) : "-");
	}
	if (l.n > 0)
		printf("-- %zu message%s, %s\n", l.n, l.n == 1 ? "" : "s",
		    fmt_size(size, sizeof(size), bytes));
	if (l.unreadable > 0)
		fprintf(stderr, "ferryctl: %zu queue record%s could not be "
		    "read\n", l.unreadable, l.unreadable == 1 ? "" : "s");
	qlist_clear(&l);
	return (0);
}

/* ---- show ---------------------------------------------------------------- */

/* The header section of a spooled message, field by field. */
struct headers {
	struct strlist	fields;		/* each with its folded lines, LF */
	int		truncated;
	char		errbuf[256];	/* why the spool could not be read */
};

/*
 * spool_skip_envelope - the start of the message in a spool file's
 * first len bytes, or NULL when it does not start with the envelope
 * header or the header's empty line is not within them.  FORMAT: the top
 * of relay/spool.c: "mailferry-spool N" and key-value lines, each ending
 * in LF (values escaped, so no bare LF inside one), then an empty line.
 */
static char *
spool_skip_envelope(char *buf, size_t len)
{
	static const char magic[] = "mailferry-spool ";
	char *p;

	if (len < sizeof(magic) - 1 || memcmp(buf, magic, sizeof(magic) - 1) != 0)
		return (NULL);
	p = memmem(buf, len, "\n\n", 2);
	return (p ? p + 2 : NULL);
}

/*
 * spool_headers - read the message headers of spool/queue/ID.  The file
 * starts with the relay's envelope block (see relay/spool.c), which
 * spool_skip_envelope() steps over; the message follows unchanged, CRLF
 * line ends.  Reads at most HDR_MAX_BYTES.
 */
static int
spool_headers(const struct ctl *ctl, const char *id, char *path,
    size_t pathlen, struct headers *h)
{
	char name[64], *buf = NULL, *p, *end, *eol;
	size_t len = 0, lines = 0;
	ssize_t n;
	int fd;

	snprintf(name, sizeof(name), "%s/%s", RELAY_SPOOL_QUEUE_DIR, id);
	if (config_state_path(&ctl->cfg, name, path, pathlen) == -1) {
		snprintf(h->errbuf, sizeof(h->errbuf), "path too long");
		return (-1);
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		snprintf(h->errbuf, sizeof(h->errbuf), "%s", strerror(errno));
		return (-1);
	}
	if ((buf = malloc(HDR_MAX_BYTES + 1)) == NULL) {
		close(fd);
		snprintf(h->errbuf, sizeof(h->errbuf), "out of memory");
		return (-1);
	}
	while (len < HDR_MAX_BYTES) {
		n = read(fd, buf + len, HDR_MAX_BYTES - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(h->errbuf, sizeof(h->errbuf), "%s",
			    strerror(errno));
			close(fd);
			free(buf);
			return (-1);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if ((p = spool_skip_envelope(buf, len)) == NULL) {
		snprintf(h->errbuf, sizeof(h->errbuf),
		    "not a spool file (no envelope)");
		free(buf);
		return (-1);
	}
	end = buf + len;
	h->truncated = 1;
	while (p < end) {
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;			/* cut by HDR_MAX_BYTES */
		if (eol == p || (eol == p + 1 && *p == '\r')) {
			h->truncated = 0;	/* the empty line */
			break;
		}
		if (++lines > HDR_MAX_LINES)
			break;
		if ((*p == ' ' || *p == '\t') && h->fields.count > 0) {
			/* A folded line continues the previous field. */
			char **last = &h->fields.items[h->fields.count - 1];
			size_t a = strlen(*last), b = (size_t)(eol - p);
			char *joined = realloc(*last, a + b + 2);

			if (joined == NULL)
				break;
			joined[a] = '\n';
			memcpy(joined + a + 1, p, b);
			joined[a + 1 + b] = '\0';
			if (b > 0 && joined[a + b] == '\r')
				joined[a + b] = '\0';
			*last = joined;
		} else {
			size_t b = (size_t)(eol - p);

			if (b > 0 && p[b - 1] == '\r')
				b--;
			if (strlist_add(&h->fields, p, b) == -1)
				break;
		}
		p = eol + 1;
	}
	if (p >= end)
		h->truncated = 0;
	free(buf);
	return (0);
}

/*
 * print_field - one header field, each folded line on its own line:
 * printable ASCII and tabs as they are, any other byte as \xNN.
 */
static void
print_field(const char *f)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;

	fputs("    ", stdout);
	for (p = (const unsigned char *)f; *p != '\0'; p++) {
		if (*p == '\n')
			fputs("\n    ", stdout);
		else if (*p == '\t' || (*p >= 0x20 && *p < 0x7f && *p != '\\'))
			putchar(*p);
		else
			printf("\\x%c%c", hex[*p >> 4], hex[*p & 15]);
	}
	putchar('\n');
}

/* cmd_show - one message in detail */
static int
cmd_show(struct ctl *ctl, const char *id)
{
	struct qlist l = { 0 };
	struct headers h;
	struct queue_record *rec;
	struct summary s;
	struct json j;
	time_t now = time(NULL);
	char path[4096], b1[256], b2[64], b3[64];
	int have_spool;
	size_t i;

	l.want = id;
	if (queue_read(ctl, &l) == -1)
		return (EXIT_RUNTIME);
	if (l.n == 0) {
		if (l.unreadable)
			fprintf(stderr, "ferryctl: the queue record of %s is "
			    "damaged\n", id);
		else
			fprintf(stderr, "ferryctl: no message %s in the queue\n",
			    id);
		qlist_clear(&l);
		return (EXIT_RUNTIME);
	}
	rec = &l.recs[0];
	memset(&h, 0, sizeof(h));
	have_spool = spool_headers(ctl, id, path, sizeof(path), &h) == 0;
	summarise(rec, &s);

	if (ctl->json) {
		json_init(&j, JSON_PRETTY);
		json_object_begin(&j);
		json_message(&j, rec, now);
		json_key(&j, "spool_file");
		json_string(&j, path);
		json_key(&j, "spool_error");
		json_string(&j, have_spool ? NULL : h.errbuf);
		json_key(&j, "headers");
		json_array_begin(&j);
		for (i = 0; i < h.fields.count; i++)
			json_string(&j, h.fields.items[i]);
		json_array_end(&j);
		json_key(&j, "headers_truncated");
		json_bool(&j, h.truncated);
		json_object_end(&j);
		strlist_clear(&h.fields);
		qlist_clear(&l);
		return (json_print(&j) == 0 ? 0 : EXIT_RUNTIME);
	}

	printf("id:          %s\n", rec->id);
	printf("state:       %s%s\n", qr_state_name(s.state),
	    (rec->flags & QR_DSN) ? " (a delivery status notification)" : "");
	printf("arrived:     %s (%s ago)\n", fmt_time(b2, sizeof(b2),
	    rec->arrived), fmt_age(b3, sizeof(b3), (int64_t)now - rec->arrived));
	printf("size:        %" PRIu64 " bytes\n", rec->size);
	printf("client:      %s\n", clean(b1, sizeof(b1), rec->client, 0));
	printf("envelope:\n");
	printf("  from:      <%s>\n", clean(b1, sizeof(b1), rec->sender, 0));
	for (i = 0; i < rec->ndlv; i++) {
		const struct delivery *d = &rec->dlv[i];

		printf("  to:        <%s>  %s %s, %" PRIu32 " attempt%s",
		    clean(b1, sizeof(b1), d->rcpt, 0), dest_name(d->dest),
		    dlv_state_name(d->state), d->attempts,
		    d->attempts == 1 ? "" : "s");
		if (d->state == DLV_PENDING && !(rec->flags & QR_HELD))
			printf(", next try %s", d->next_try <= now ? "now" :
			    fmt_time(b2, sizeof(b2), d->next_try));
		printf("\n");
		if (d->last_reply != NULL)
			printf("             last reply: %s\n",
			    clean(b1, sizeof(b1), d->last_reply, 0));
	}
	printf("spool file:  %s%s%s\n", path, have_spool ? "" : ": ",
	    have_spool ? "" : h.errbuf);
	if (have_spool) {
		printf("headers:\n");
		for (i = 0; i < h.fields.count; i++)
			print_field(h.fields.items[i]);
		if (h.truncated)
			printf("    ... (more headers not shown)\n");
	}
	strlist_clear(&h.fields);
	qlist_clear(&l);
	return (0);
}

/* ---- the control socket -------------------------------------------------- */

/*
 * ctl_request_opt - send one request line to the relay, read its
 * one-line reply into *reply_r (malloc'd, without the newline).  Returns
 * 0 when the relay answered, -1 when it could not be asked (message
 * printed), and with quiet set -2 without a message when nothing listens
 * on the socket (the relay is not running: the caller has a fallback).
 */
static int
ctl_request_opt(const struct ctl *ctl, const char *req, char **reply_r,
    int quiet)
{
	const char *path = ctl->cfg.control.socket;
	struct sockaddr_un sun;
	struct pollfd pfd;
	char *buf = NULL, *nl;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd, saved;

	*reply_r = NULL;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path == NULL || path[0] == '\0' ||
	    str_copy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		fprintf(stderr, "ferryctl: [control] socket is empty or too "
		    "long\n");
		return (-1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fprintf(stderr, "ferryctl: socket: %s\n", strerror(errno));
		return (-1);
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		close(fd);
		if (quiet && (saved == ENOENT || saved == ECONNREFUSED))
			return (-2);
		if (saved == ENOENT || saved == ECONNREFUSED)
			fprintf(stderr, "ferryctl: the relay is not running "
			    "(nothing answers on %s)\n", path);
		else if (saved == EACCES || saved == EPERM)
			fprintf(stderr, "ferryctl: %s: %s (run ferryctl as "
			    "root or as the relay's user)\n", path,
			    strerror(saved));
		else
			fprintf(stderr, "ferryctl: %s: %s\n", path,
			    strerror(saved));
		return (-1);
	}
	n = (ssize_t)strlen(req);
	if (write(fd, req, (size_t)n) != n || write(fd, "\n", 1) != 1) {
		fprintf(stderr, "ferryctl: sending to the relay: %s\n",
		    strerror(errno));
		close(fd);
		return (-1);
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *nb;

			if (cap >= CTL_REPLY_MAX) {
				fprintf(stderr, "ferryctl: the relay's reply "
				    "is too long\n");
				goto fail;
			}
			cap = cap ? cap * 2 : 8192;
			if ((nb = realloc(buf, cap)) == NULL) {
				fprintf(stderr, "ferryctl: out of memory\n");
				goto fail;
			}
			buf = nb;
		}
		n = poll(&pfd, 1, CTL_WAIT_MS);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0) {
			fprintf(stderr, "ferryctl: the relay did not answer "
			    "within %d s\n", CTL_WAIT_MS / 1000);
			goto fail;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fprintf(stderr, "ferryctl: reading the relay's reply: "
			    "%s\n", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (memchr(buf, '\n', len) != NULL)
			break;
	}
	close(fd);
	if (buf == NULL || len == 0 || (nl = memchr(buf, '\n', len)) == NULL) {
		fprintf(stderr, "ferryctl: the relay closed the connection "
		    "without an answer\n");
		free(buf);
		return (-1);
	}
	*nl = '\0';
	if (nl > buf && nl[-1] == '\r')
		nl[-1] = '\0';
	*reply_r = buf;
	return (0);
fail:
	close(fd);
	free(buf);
	return (-1);
}

static int
ctl_request(const struct ctl *ctl, const char *req, char **reply_r)
{
	return (ctl_request_opt(ctl, req, reply_r, 0));
}

/*
 * reply_split - "ok TEXT" -> 0 and TEXT, "error TEXT" -> 1 and TEXT,
 * anything else -> -1.
 */
static int
reply_split(char *reply, char **text_r)
{
	if (strncmp(reply, "ok", 2) == 0 && (reply[2] == '\0' ||
	    reply[2] == ' ')) {
		*text_r = reply + (reply[2] ? 3 : 2);
		return (0);
	}
	if (strncmp(reply, "error", 5) == 0 && (reply[5] == '\0' ||
	    reply[5] == ' ')) {
		*text_r = reply + (reply[5] ? 6 : 5);
		return (1);
	}
	*text_r = reply;
	return (-1);
}

/* cmd_action - retry, hold, release, delete through the relay */
static int
cmd_action(struct ctl *ctl, const char *cmd, const char *arg)
{
	char req[64], *reply, *text, buf[512];
	struct json j;
	int rc;

	if (!valid_id(arg) && !(strcmp(cmd, "retry") == 0 &&
	    strcmp(arg, "all") == 0)) {
		fprintf(stderr, "ferryctl: %s: bad queue ID \"%s\" (16 hex "
		    "digits%s)\n", cmd, clean(buf, sizeof(buf), arg, 40),
		    strcmp(cmd, "retry") == 0 ? " or \"all\"" : "");
		return (EXIT_USAGE);
	}
	snprintf(req, sizeof(req), "%s %s", cmd, arg);
	if (ctl_request(ctl, req, &reply) == -1)
		return (EXIT_RUNTIME);
	rc = reply_split(reply, &text);
	if (ctl->json) {
		json_init(&j, JSON_PRETTY);
		json_object_begin(&j);
		json_key(&j, "ok");
		json_bool(&j, rc == 0);
		json_key(&j, "command");
		json_string(&j, cmd);
		json_key(&j, "id");
		json_string(&j, arg);
		json_key(&j, rc == 0 ? "result" : "error");
		json_string(&j, text);
		json_object_end(&j);
		(void)json_print(&j);
	} else if (rc == 0)
		printf("%s\n", clean(buf, sizeof(buf), text, 0));
	if (rc != 0 && !ctl->json)
		fprintf(stderr, "ferryctl: %s %s: %s\n", cmd, arg,
		    rc == 1 ? clean(buf, sizeof(buf), text, 0) :
		    "unexpected reply from the relay");
	free(reply);
	return (rc == 0 ? 0 : EXIT_RUNTIME);
}

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
static int
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
static int
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
static int
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
static int
cmd_status(struct ctl *ctl, const char *arg)
{
	struct store *store = NULL;
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
	if (ctl->json) {
		json_init(&j, JSON_PRETTY);
		rc = cutover_status_render(store, &ctl->cfg, time(NULL),
		    relay_running(ctl), &j, NULL, err, sizeof(err));
		store_close(&store);
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
	if (rc == -1) {
		fprintf(stderr, "ferryctl: status: %s\n", err);
		return (EXIT_RUNTIME);
	}
	return (0);
}

/* ---- main ----------------------------------------------------------------- */

static const struct command {
	const char	*name;
	int		 nargs;		/* 0 or 1 */
	int		(*fn)(struct ctl *, const char *);
} commands[] = {
	{ "queue", 0, cmd_queue },
	{ "show", 1, cmd_show },
	{ "retry", 1, NULL },
	{ "hold", 1, NULL },
	{ "release", 1, NULL },
	{ "delete", 1, NULL },
	{ "stats", 0, cmd_stats },
	{ "sync", 0, cmd_sync },
	{ "drain", 0, cmd_drain },
	{ "status", 0, cmd_status },
};

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *cmd = NULL;
	const char *conf = NULL, *arg = NULL;
	struct ctl ctl;
	char buf[64];
	size_t i;
	int c, rc, test_only = 0;

	memset(&ctl, 0, sizeof(ctl));
	/* Options may follow the command too: "ferryctl queue --json". */
	while ((c = getopt_long(argc, argv, "c:ht", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'j':
			ctl.json = 1;
			break;
		case 't':
			test_only = 1;
			break;
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (EXIT_USAGE);
		}
	}
	if (!test_only) {
		if (optind == argc) {
			usage(stderr);
			return (EXIT_USAGE);
		}
		for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (strcmp(argv[optind], commands[i].name) == 0)
				cmd = &commands[i];
		if (cmd == NULL) {
			fprintf(stderr, "ferryctl: unknown command \"%s\"\n",
			    clean(buf, sizeof(buf), argv[optind], 40));
			usage(stderr);
			return (EXIT_USAGE);
		}
		if (argc - optind - 1 != cmd->nargs) {
			fprintf(stderr, "ferryctl: %s takes %s\n", cmd->name,
			    cmd->nargs ? (strcmp(cmd->name, "retry") == 0 ?
			    "a queue ID or \"all\"" : "a queue ID") :
			    "no argument");
			usage(stderr);
			return (EXIT_USAGE);
		}
		if (cmd->nargs)
			arg = argv[optind + 1];
		if (strcmp(cmd->name, "show") == 0 && !valid_id(arg)) {
			fprintf(stderr, "ferryctl: show: bad queue ID \"%s\" "
			    "(16 hex digits)\n", clean(buf, sizeof(buf), arg,
			    40));
			return (EXIT_USAGE);
		}
	}
	if ((rc = cli_load_config("ferryctl", conf, CONFIG_FOR_CTL,
	    &ctl.cfg)) != 0)
		return (rc);
	if (test_only) {
		printf("ferryctl: configuration %s is valid\n", ctl.cfg.path);
		config_free(&ctl.cfg);
		return (0);
	}
	if (cmd->fn != NULL)
		rc = cmd->fn(&ctl, arg);
	else
		rc = cmd_action(&ctl, cmd->name, arg);
	fflush(stdout);
	config_free(&ctl.cfg);
	return (rc);
}
