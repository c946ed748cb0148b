/*
 * ctl_queue.c - the relay's queue: "queue" and "show ID" read LMDB (and
 * the spool file) directly, read-only, so they work with the relay
 * stopped; "retry", "hold", "release" and "delete" ask the running relay
 * over the control socket, since the daemon owns the queue.
 *
 * SECURITY: senders, recipients, replies and headers came from the
 * network: tables show them through clean() or print_field(); the spool
 * file is opened O_NOFOLLOW and read up to HDR_MAX_BYTES.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "json.h"
#include "queue_record.h"
#include "spool.h"
#include "store.h"
#include "util.h"
#include "ctl.h"

#define HDR_MAX_BYTES	(256 * 1024)	/* headers shown by "show" */
#define HDR_MAX_LINES	2000

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
int
valid_id(const char *s)
{
	return (strlen(s) == QUEUE_ID_LEN &&
	    strspn(s, "0123456789abcdef") == QUEUE_ID_LEN);
}

/* ---- reading the queue -------------------------------------------------- */

void
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
int
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
int
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
int
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

/* action_fields - "command" and "id" of the request "CMD ID" */
static void
action_fields(struct json *j, const void *arg)
{
	const char *req = arg, *sp = strchr(req, ' ');

	json_key(j, "command");
	json_string_n(j, req, (size_t)(sp - req));
	json_key(j, "id");
	json_string(j, sp + 1);
}

/* cmd_action - retry, hold, release, delete through the relay */
int
cmd_action(struct ctl *ctl, const char *cmd, const char *arg)
{
	char req[64], *reply, *text, buf[512];
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
	ctl_show_reply(ctl, req, rc, text, action_fields, req);
	free(reply);
	return (rc == 0 ? 0 : EXIT_RUNTIME);
}
