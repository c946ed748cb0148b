/*
 * control.c - the relay's admin interfaces: HTTP GET / (the status
 * page, control_page.c), GET /metrics (Prometheus text format), GET
 * /status (JSON) and GET /cutover (the cutover document of `ferryctl
 * status --json`, common/cutover_state.h, read from the shared LMDB, so it
 * shows syncd's record even while syncd is stopped; ferry-syncd's own
 * listener serves only its metrics) on [control] http, and the UNIX
 * control socket ferryctl uses to act on the queue.
 *
 * Control socket protocol: one request line per connection, one reply
 * line, then the relay closes.
 *	retry ID | retry all | hold ID | release ID | delete ID | stats |
 *	drain
 *	-> "ok[ TEXT]" | "error TEXT"; stats and drain answer "ok " + a
 *	JSON object on one line (drain: {"now", "queue", "drain"}, the
 *	last being drain_json(), null when the relay keeps no drain view).
 * IDs are 16 lower-case hex digits (QUEUE_ID_LEN).
 *
 * SECURITY: both listeners take input from other local processes.  HTTP
 * binds only where [control] http says (loopback by default); it is
 * read-only, serves four fixed paths (/ is the status page of
 * control_page.c), reads no body and caps header sizes and time; with
 * [control] auth_* set, every path needs the credentials (control_auth.c).  The socket is created mode 0600 (umask around bind(), since
 * fchmod() on a socket does not restrict connect()), peers must be root
 * or our own user (SO_PEERCRED), and request lines are hostile: at most
 * CTL_LINE_MAX bytes, printable ASCII only, every ID checked for exactly
 * 16 hex digits before it reaches the queue; replies carry our own
 * error strings, sanitised all the same.  At most CTL_MAX_CONNS
 * connections at once, each with a timeout.
 *
 * Ownership and threads: struct control belongs to struct relay (main.c
 * creates it after the store and the queue, frees it before them) and
 * runs on the relay's loop.  It owns the evhttp server, the listener,
 * every open ferryctl connection and the socket file, which it removes
 * on control_free().  Queue numbers are read from LMDB in one read-only
 * transaction per request; nothing is cached.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "control.h"
#include "control_cap.h"
#include "control_auth.h"
#include "control_page.h"
#include "cutover_state.h"
#include "drain.h"
#include "http_text.h"
#include "json.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "smtp_server.h"
#include "spool.h"
#include "store.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION	"unknown"
#endif

#define CTL_LINE_MAX	256	/* longest request line, without CRLF */
#define CTL_MAX_CONNS	16	/* ferryctl connections at once */
#define CTL_TIMEOUT	10	/* seconds for a request or its reply */
#define CTL_HTTP_TIMEOUT 10	/* seconds per HTTP connection */
#define CTL_HTTP_MAXHDR	8192	/* bytes of request headers */

/* Prometheus label values, in enum reject_reason order. */
static const char *const reject_names[REJ_NREASONS] = {
	[REJ_RELAY_DENIED] = "relay_denied",
	[REJ_UNKNOWN_USER] = "unknown_user",
	[REJ_SIZE] = "size",
	[REJ_TOO_MANY_RCPTS] = "too_many_rcpts",
	[REJ_SYNTAX] = "syntax",
	[REJ_BARE_LF] = "bare_lf",
	[REJ_CONN_LIMIT] = "conn_limit",
	[REJ_TEMPFAIL] = "tempfail",
	[REJ_POLICY] = "policy",
};

/* One ferryctl connection on the control socket. */
struct ctl_conn {
	struct control		*ctl;
	struct bufferevent	*bev;
	int			 replied;	/* reply queued; close when sent */
	TAILQ_ENTRY(ctl_conn)	 entry;
};

struct control {
	struct relay		*relay;
	struct evhttp		*http;		/* NULL: [control] http empty */
	struct http_cap		*http_cap;	/* [control] max_connections */
	struct control_auth	*auth;		/* NULL: no HTTP auth */
	struct evconnlistener	*listener;	/* the control socket */
	char			*sock_path;	/* the file we created, or NULL */
	TAILQ_HEAD(, ctl_conn)	 conns;
	size_t			 nconns;
};

/* What the queue holds now, from one read of the LMDB "queue" DB. */
struct queue_counts {
	uint64_t	total;
	uint64_t	by_state[4];	/* enum qr_state */
	uint64_t	bytes;
	uint64_t	unreadable;	/* records that did not decode */
	int64_t		oldest;		/* arrival of the oldest; 0: none */
};

/* ---- reading the queue -------------------------------------------------- */

/* counts_one - store_foreach callback: classify one record */
static int
counts_one(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct queue_counts *qc = arg;
	struct queue_record rec;
	char err[128];

	(void)key;
	(void)klen;
	qc->total++;
	memset(&rec, 0, sizeof(rec));
	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1) {
		queue_record_clear(&rec);
		qc->unreadable++;
		return (0);
	}
	qc->by_state[qr_state(&rec)]++;
	qc->bytes += rec.size;
	if (rec.arrived > 0 && (qc->oldest == 0 || rec.arrived < qc->oldest))
		qc->oldest = rec.arrived;
	queue_record_clear(&rec);
	return (0);
}

/* counts_txn - read-only transaction body; may run more than once */
static int
counts_txn(struct store_txn *tx, void *arg)
{
	struct queue_counts *qc = arg;

	memset(qc, 0, sizeof(*qc));
	return (store_foreach(tx, STORE_DB_QUEUE, NULL, 0, counts_one, qc));
}

/* control_queue_counts - walk the queue DB once */
static int
control_queue_counts(struct control *ctl, struct queue_counts *qc,
    char *err, size_t errlen)
{
	memset(qc, 0, sizeof(*qc));
	if (ctl->relay->store == NULL) {
		snprintf(err, errlen, "the queue database is not open");
		return (-1);
	}
	return (store_txn_run(ctl->relay->store, 1, counts_txn, qc, err,
	    errlen) == 0 ? 0 : -1);
}

/* ---- the documents ------------------------------------------------------ */

/* control_queue_json - the "queue" object of /status, stats and drain */
static void
control_queue_json(const struct queue_counts *qc, time_t now, struct json *j)
{
	int i;

	json_object_begin(j);
	json_key(j, "total");
	json_uint(j, qc->total);
	for (i = 0; i < 4; i++) {
		json_key(j, qr_state_name((enum qr_state)i));
		json_uint(j, qc->by_state[i]);
	}
	json_key(j, "unreadable");
	json_uint(j, qc->unreadable);
	json_key(j, "bytes");
	json_uint(j, qc->bytes);
	json_key(j, "oldest_age");
	if (qc->oldest)
		json_int(j, (int64_t)now - qc->oldest);
	else
		json_null(j);
	json_object_end(j);
}

/*
 * control_status_json - what /status and "stats" report; with_counters
 * adds relay_stats (ferryctl stats shows both).
 */
static void
control_status_json(struct control *ctl, const struct queue_counts *qc,
    struct json *j, int with_counters)
{
	const struct relay *relay = ctl->relay;
	const struct relay_stats *st = &relay->stats;
	time_t now = time(NULL);
	int i;

	json_object_begin(j);
	json_key(j, "version");
	json_string(j, PACKAGE_VERSION);
	json_key(j, "pid");
	json_int(j, (int64_t)getpid());
	json_key(j, "now");
	json_int(j, (int64_t)now);
	json_key(j, "started");
	json_int(j, (int64_t)relay->started);
	json_key(j, "uptime");
	json_int(j, (int64_t)(now - relay->started));
	json_key(j, "sessions");
	json_uint(j, relay->server ? smtp_server_sessions(relay->server) : 0);
	json_key(j, "last_inbound");
	if (st->last_inbound)
		json_int(j, (int64_t)st->last_inbound);
	else
		json_null(j);
	json_key(j, "last_inbound_age");
	if (st->last_inbound)
		json_int(j, (int64_t)(now - st->last_inbound));
	else
		json_null(j);

	json_key(j, "queue");
	control_queue_json(qc, now, j);

	if (with_counters) {
		json_key(j, "counters");
		json_object_begin(j);
		json_key(j, "connections");
		json_uint(j, st->connections);
		json_key(j, "accepted");
		json_uint(j, st->accepted);
		json_key(j, "rejected");
		json_object_begin(j);
		for (i = 0; i < REJ_NREASONS; i++) {
			json_key(j, reject_names[i]);
			json_uint(j, st->rejected[i]);
		}
		json_object_end(j);
		json_key(j, "duplicates");
		json_uint(j, st->duplicates);
		json_key(j, "forwarded");
		json_uint(j, st->forwarded);
		json_key(j, "copied");
		json_uint(j, st->copied);
		json_key(j, "deferred");
		json_uint(j, st->deferred);
		json_key(j, "bounced");
		json_uint(j, st->bounced);
		json_key(j, "dsn_sent");
		json_uint(j, st->dsn_sent);
		json_key(j, "crash_duplicates");
		json_uint(j, st->crash_duplicates);
		json_object_end(j);

		json_key(j, "upstream_latency");
		json_object_begin(j);
		json_key(j, "count");
		json_uint(j, st->latency_count);
		json_key(j, "sum");
		json_double(j, st->latency_sum);
		json_key(j, "mean");
		json_double(j, st->latency_count ?
		    st->latency_sum / (double)st->latency_count : 0.0);
		json_object_end(j);
	}
	json_key(j, "drain");
	if (relay->drain != NULL)
		drain_json(relay->drain, now, j);
	else
		json_null(j);
	json_object_end(j);
}


/*
 * control_drain_json - the "drain" command's document: the drain view
 * and the queue, read at the same moment (ferryctl drain's verdict
 * needs both)
 */
static void
control_drain_json(struct control *ctl, const struct queue_counts *qc,
    struct json *j)
{
	time_t now = time(NULL);

	json_object_begin(j);
	json_key(j, "now");
	json_int(j, (int64_t)now);
	json_key(j, "source");
	json_string(j, "relay");
	json_key(j, "queue");
	control_queue_json(qc, now, j);
	json_key(j, "drain");
	if (ctl->relay->drain != NULL)
		drain_json(ctl->relay->drain, now, j);
	else
		json_null(j);
	json_object_end(j);
}

/* metric - HELP and TYPE lines of one metric family */
static void
metric(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	http_metric_family(b, "mailferry_relay", name, type, help);
}

/* counter - a family with one unlabelled sample */
static void
counter(struct evbuffer *b, const char *name, const char *help, uint64_t v)
{
	metric(b, name, "counter", help);
	evbuffer_add_printf(b, "mailferry_relay_%s %" PRIu64 "\n", name, v);
}

/* control_metrics - the Prometheus text exposition (format 0.0.4) */
static void
control_metrics(struct control *ctl, const struct queue_counts *qc,
    struct evbuffer *b)
{
	static const double bounds[LATENCY_NBUCKETS] = LATENCY_BUCKETS;
	const struct relay *relay = ctl->relay;
	const struct relay_stats *st = &relay->stats;
	time_t now = time(NULL), last;
	int i;

	metric(b, "info", "gauge", "Version of the running relay.");
	evbuffer_add_printf(b, "mailferry_relay_info{version=\"%s\"} 1\n",
	    PACKAGE_VERSION);
	metric(b, "uptime_seconds", "gauge", "Seconds since the relay started.");
	evbuffer_add_printf(b, "mailferry_relay_uptime_seconds %" PRId64 "\n",
	    (int64_t)(now - relay->started));
	metric(b, "sessions", "gauge", "SMTP sessions open now.");
	evbuffer_add_printf(b, "mailferry_relay_sessions %zu\n",
	    relay->server ? smtp_server_sessions(relay->server) : (size_t)0);

	metric(b, "queue_messages", "gauge",
	    "Messages in the queue by state (deferred: tried and failed "
	    "temporarily).");
	for (i = 0; i < 4; i++)
		evbuffer_add_printf(b,
		    "mailferry_relay_queue_messages{state=\"%s\"} %" PRIu64 "\n",
		    qr_state_name((enum qr_state)i), qc->by_state[i]);
	metric(b, "queue_bytes", "gauge", "Bytes of spooled messages.");
	evbuffer_add_printf(b, "mailferry_relay_queue_bytes %" PRIu64 "\n",
	    qc->bytes);
	metric(b, "queue_unreadable", "gauge",
	    "Queue records that could not be decoded.");
	evbuffer_add_printf(b, "mailferry_relay_queue_unreadable %" PRIu64 "\n",
	    qc->unreadable);
	metric(b, "queue_oldest_age_seconds", "gauge",
	    "Age of the oldest queued message (0: queue empty).");
	evbuffer_add_printf(b, "mailferry_relay_queue_oldest_age_seconds %"
	    PRId64 "\n", qc->oldest ? (int64_t)now - qc->oldest : 0);
	metric(b, "last_inbound_timestamp_seconds", "gauge",
	    "When the last message was accepted (0: none since start).");
	evbuffer_add_printf(b,
	    "mailferry_relay_last_inbound_timestamp_seconds %" PRId64 "\n",
	    (int64_t)st->last_inbound);
	/* The drain view's time survives restarts; the counter's does not.
	 * No sample while nothing ever arrived: an age would be a lie. */
	last = relay->drain != NULL ? drain_last(relay->drain) : 0;
	if (last == 0)
		last = st->last_inbound;
	metric(b, "last_inbound_age_seconds", "gauge",
	    "Seconds since the last message was accepted (the drain view; "
	    "absent when none ever was).");
	if (last > 0)
		evbuffer_add_printf(b,
		    "mailferry_relay_last_inbound_age_seconds %" PRId64 "\n",
		    now > last ? (int64_t)(now - last) : (int64_t)0);
	if (relay->drain != NULL) {
		uint64_t hourly[DRAIN_HOURS], total = 0;

		drain_hourly(relay->drain, now, hourly);
		for (i = 0; i < DRAIN_HOURS; i++)
			total += hourly[i];
		metric(b, "inbound_recent_messages", "gauge",
		    "Messages accepted in the last 72 hours (the drain view).");
		evbuffer_add_printf(b,
		    "mailferry_relay_inbound_recent_messages %" PRIu64 "\n",
		    total);
	}

	counter(b, "connections_total", "SMTP connections accepted.",
	    st->connections);
	counter(b, "accepted_total", "Messages answered 250 after DATA.",
	    st->accepted);
	metric(b, "rejected_total", "counter",
	    "Commands and messages refused, by reason.");
	for (i = 0; i < REJ_NREASONS; i++)
		evbuffer_add_printf(b,
		    "mailferry_relay_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
		    reject_names[i], st->rejected[i]);
	counter(b, "duplicates_total",
	    "Messages accepted but not forwarded again (duplicates).",
	    st->duplicates);
	counter(b, "forwarded_total",
	    "Deliveries accepted by the upstream (per recipient).",
	    st->forwarded);
	counter(b, "copied_total",
	    "Deliveries accepted by copy_to (per recipient).", st->copied);
	counter(b, "deferred_total",
	    "Delivery attempts that failed temporarily.", st->deferred);
	counter(b, "bounced_total",
	    "Deliveries refused permanently or expired.", st->bounced);
	counter(b, "dsn_sent_total", "Delivery status notifications made.",
	    st->dsn_sent);
	counter(b, "crash_duplicates_total", "Possible duplicates after "
	    "crash: deliveries in flight at an unclean stop, sent again "
	    "without a look into the new mailbox.", st->crash_duplicates);

	metric(b, "upstream_latency_seconds", "histogram",
	    "Time from connecting to the destination's answer to DATA.");
	for (i = 0; i < LATENCY_NBUCKETS; i++)
		evbuffer_add_printf(b,
		    "mailferry_relay_upstream_latency_seconds_bucket{le=\"%g\"} %"
		    PRIu64 "\n", bounds[i], st->latency_bucket[i]);
	evbuffer_add_printf(b,
	    "mailferry_relay_upstream_latency_seconds_bucket{le=\"+Inf\"} %"
	    PRIu64 "\n", st->latency_count);
	evbuffer_add_printf(b, "mailferry_relay_upstream_latency_seconds_sum %.6f\n"
	    "mailferry_relay_upstream_latency_seconds_count %" PRIu64 "\n",
	    st->latency_sum, st->latency_count);
}

/* ---- HTTP --------------------------------------------------------------- */

/* control_cutover_reply - GET /cutover: the cutover per [cutover] domain */
static void
control_cutover_reply(struct control *ctl, struct evhttp_request *req)
{
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	struct evbuffer *b;
	struct json j;
	const char *doc;
	char err[256], msg[300];
	size_t len;

	json_init(&j, JSON_PRETTY);
	if (cutover_status_render(ctl->relay->store, ctl->relay->cfg,
	    time(NULL), 1, &j, NULL, err, sizeof(err)) == -1) {
		json_clear(&j);
		log_warnx("control: reading the cutover records: %s", err);
		snprintf(msg, sizeof(msg), "reading the cutover records: %s",
		    err);
		http_text_reply(req, HTTP_INTERNAL, "Internal Server Error", msg);
		return;
	}
	if ((doc = json_finish(&j, &len)) == NULL ||
	    (b = evbuffer_new()) == NULL) {
		json_clear(&j);
		http_text_reply(req, HTTP_INTERNAL, "Internal Server Error",
		    "out of memory");
		return;
	}
	evhttp_add_header(hdr, "Cache-Control", "no-store");
	evhttp_add_header(hdr, "Content-Type", "application/json");
	evbuffer_add(b, doc, len);
	evbuffer_add(b, "\n", 1);
	json_clear(&j);
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

/* control_http_cb - every request: three paths, GET only */
static void
control_http_cb(struct evhttp_request *req, void *arg)
{
	struct control *ctl = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	struct queue_counts qc;
	struct evbuffer *b;
	struct json j;
	const char *doc;
	char err[256], msg[300];
	size_t len;
	int is_metrics;

	if (!control_auth_allow(ctl->auth, req))
		return;		/* answered 401 */
	if (path != NULL && strcmp(path, "/") == 0 &&
	    cmd == EVHTTP_REQ_GET) {
		control_page_reply(ctl->relay, req);
		return;
	}
	if (path == NULL || (strcmp(path, "/metrics") != 0 &&
	    strcmp(path, "/status") != 0 && strcmp(path, "/cutover") != 0 &&
	    strcmp(path, "/") != 0)) {
		http_text_reply(req, HTTP_NOTFOUND, "Not Found",
		    "not found: try /, /metrics, /status or /cutover");
		return;
	}
	/* Not even HEAD: libevent 2.1 would send the body after it. */
	if (cmd != EVHTTP_REQ_GET) {
		evhttp_add_header(hdr, "Allow", "GET");
		http_text_reply(req, 405, "Method Not Allowed",
		    "method not allowed: GET only");
		return;
	}
	if (strcmp(path, "/cutover") == 0) {
		control_cutover_reply(ctl, req);
		return;
	}
	is_metrics = strcmp(path, "/metrics") == 0;
	if (control_queue_counts(ctl, &qc, err, sizeof(err)) == -1) {
		log_warnx("control: reading the queue: %s", err);
		snprintf(msg, sizeof(msg), "reading the queue: %s", err);
		http_text_reply(req, HTTP_INTERNAL, "Internal Server Error", msg);
		return;
	}
	if ((b = evbuffer_new()) == NULL) {
		http_text_reply(req, HTTP_INTERNAL, "Internal Server Error",
		    "out of memory");
		return;
	}
	evhttp_add_header(hdr, "Cache-Control", "no-store");
	if (is_metrics) {
		evhttp_add_header(hdr, "Content-Type",
		    "text/plain; version=0.0.4; charset=utf-8");
		control_metrics(ctl, &qc, b);
	} else {
		json_init(&j, JSON_PRETTY);
		control_status_json(ctl, &qc, &j, 1);
		if ((doc = json_finish(&j, &len)) == NULL) {
			json_clear(&j);
			evbuffer_free(b);
			http_text_reply(req, HTTP_INTERNAL, "Internal Server Error",
			    "out of memory");
			return;
		}
		evhttp_add_header(hdr, "Content-Type", "application/json");
		evbuffer_add(b, doc, len);
		evbuffer_add(b, "\n", 1);
		json_clear(&j);
	}
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

/* control_http_open - bind [control] http */
static int
control_http_open(struct control *ctl, const struct hostport *hp, char *err,
    size_t errlen)
{
	char where[HOSTPORT_HOSTMAX + 16];

	hostport_format(hp, where, sizeof(where));
	if ((ctl->http = evhttp_new(ctl->relay->base)) == NULL) {
		snprintf(err, errlen, "evhttp_new failed");
		return (-1);
	}
	ctl->http_cap = http_cap_new(ctl->http, ctl->relay->base,
	    (size_t)ctl->relay->cfg->control.max_connections);
	if (ctl->http_cap == NULL) {
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	/* Allow every method so that we, not libevent, answer 405. */
	evhttp_set_allowed_methods(ctl->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_timeout(ctl->http, CTL_HTTP_TIMEOUT);
	evhttp_set_max_headers_size(ctl->http, CTL_HTTP_MAXHDR);
	evhttp_set_max_body_size(ctl->http, 4096);
	evhttp_set_gencb(ctl->http, control_http_cb, ctl);
	errno = 0;
	if (evhttp_bind_socket_with_handle(ctl->http, hp->host,
	    (ev_uint16_t)hp->port) == NULL) {
		snprintf(err, errlen, "[control] http: cannot listen on %s: %s",
		    where, errno ? strerror(errno) : "bind failed");
		return (-1);
	}
	log_info("control: HTTP /, /metrics, /status and /cutover on %s "
	    "(authentication: %s)", where, control_auth_describe(ctl->auth));
	return (0);
}

/* ---- the control socket ------------------------------------------------- */

/* conn_free - close one ferryctl connection */
static void
conn_free(struct ctl_conn **connp)
{
	struct ctl_conn *conn = *connp;

	if (conn == NULL)
		return;
	TAILQ_REMOVE(&conn->ctl->conns, conn, entry);
	conn->ctl->nconns--;
	bufferevent_free(conn->bev);
	free(conn);
	*connp = NULL;
}

/* valid_id - exactly QUEUE_ID_LEN lower-case hex digits */
static int
valid_id(const char *s)
{
	size_t i;

	for (i = 0; i < QUEUE_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return (0);
	return (s[i] == '\0');
}

/* reply_error - "error TEXT\n", TEXT made printable and one line */
static void
reply_error(struct evbuffer *out, const char *text)
{
	char clean[256];

	str_printable(clean, sizeof(clean), text, strlen(text));
	evbuffer_add_printf(out, "error %s\n", clean);
}

/* The documents a control-socket command answers with. */
typedef void control_doc_fn(struct control *, const struct queue_counts *,
    struct json *);

static void
stats_doc(struct control *ctl, const struct queue_counts *qc, struct json *j)
{
	control_status_json(ctl, qc, j, 1);
}

/*
 * control_doc_reply - "ok {json}" with the document build() writes from
 * the queue counts read now, or "error TEXT" ("stats", "drain")
 */
static void
control_doc_reply(struct control *ctl, struct evbuffer *out,
    control_doc_fn *build)
{
	struct queue_counts qc;
	struct json j;
	const char *doc;
	char err[256];
	size_t len;

	if (control_queue_counts(ctl, &qc, err, sizeof(err)) == -1) {
		reply_error(out, err);
		return;
	}
	json_init(&j, 0);
	build(ctl, &qc, &j);
	if ((doc = json_finish(&j, &len)) == NULL)
		reply_error(out, "out of memory");
	else {
		evbuffer_add(out, "ok ", 3);
		evbuffer_add(out, doc, len);
		evbuffer_add(out, "\n", 1);
	}
	json_clear(&j);
}

/*
 * control_command - run one request line (NUL-terminated, no EOL) and
 * queue the reply on out.
 */
static void
control_command(struct control *ctl, char *line, size_t len,
    struct evbuffer *out)
{
	static const struct {
		const char *name;
		int (*fn)(struct queue *, const char *, char *, size_t);
		const char *done;
	} acts[] = {
		{ "retry", queue_retry, "scheduled for delivery now" },
		{ "hold", queue_hold, "held" },
		{ "release", queue_release, "released" },
		{ "delete", queue_delete, "deleted" },
	};
	char *cmd, *arg, *extra, *save = NULL, err[256];
	const char *id;
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] > 0x7e) {	/* NUL too */
			reply_error(out, "request must be printable ASCII");
			return;
		}
	cmd = strtok_r(line, " ", &save);
	arg = strtok_r(NULL, " ", &save);
	extra = strtok_r(NULL, " ", &save);
	if (cmd == NULL) {
		reply_error(out, "empty request");
		return;
	}
	if (extra != NULL) {
		reply_error(out, "too many arguments");
		return;
	}
	if (strcmp(cmd, "stats") == 0) {
		if (arg != NULL)
			reply_error(out, "stats takes no argument");
		else
			control_doc_reply(ctl, out, stats_doc);
		return;
	}
	if (strcmp(cmd, "drain") == 0) {
		if (arg != NULL)
			reply_error(out, "drain takes no argument");
		else
			control_doc_reply(ctl, out, control_drain_json);
		return;
	}
	for (i = 0; i < sizeof(acts) / sizeof(acts[0]); i++)
		if (strcmp(cmd, acts[i].name) == 0)
			break;
	if (i == sizeof(acts) / sizeof(acts[0])) {
		reply_error(out, "unknown command");
		return;
	}
	if (arg == NULL) {
		reply_error(out, "a queue ID is required");
		return;
	}
	if (acts[i].fn == queue_retry && strcmp(arg, "all") == 0)
		id = NULL;
	else if (valid_id(arg))
		id = arg;
	else {
		reply_error(out, "bad queue ID: want 16 hex digits");
		return;
	}
	if (ctl->relay->queue == NULL) {
		reply_error(out, "the queue is not running");
		return;
	}
	err[0] = '\0';
	if (acts[i].fn(ctl->relay->queue, id, err, sizeof(err)) == -1) {
		log_info("control: %s %s: %s", cmd, arg, err);
		reply_error(out, err[0] ? err : "failed");
		return;
	}
	/* The queue logs the action itself. */
	evbuffer_add_printf(out, "ok %s %s\n", id ? id : "all messages",
	    acts[i].done);
}

/* conn_read_cb - a request line arrived (or part of one) */
static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *conn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	struct evbuffer_ptr eol;
	char line[CTL_LINE_MAX + 1];
	size_t eol_len = 0;

	if (conn->replied) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (eol.pos == -1) {
		if (evbuffer_get_length(in) <= CTL_LINE_MAX)
			return;		/* wait for the rest */
		reply_error(out, "request too long");
	} else if ((size_t)eol.pos > CTL_LINE_MAX) {
		reply_error(out, "request too long");
	} else {
		evbuffer_remove(in, line, (size_t)eol.pos);
		line[eol.pos] = '\0';
		evbuffer_drain(in, eol_len);
		control_command(conn->ctl, line, (size_t)eol.pos, out);
	}
	conn->replied = 1;
	bufferevent_disable(bev, EV_READ);
	/* conn_write_cb closes once the reply has left. */
}

/*
 * conn_last_line - EOF after a request without its newline ("printf
 * stats | socat"): answer it all the same; the write side is still open.
 */
static int
conn_last_line(struct ctl_conn *conn)
{
	struct evbuffer *in = bufferevent_get_input(conn->bev);
	size_t len = evbuffer_get_length(in);
	char line[CTL_LINE_MAX + 1];

	if (conn->replied || len == 0 || len > CTL_LINE_MAX)
		return (-1);
	evbuffer_remove(in, line, len);
	line[len] = '\0';
	control_command(conn->ctl, line, len, bufferevent_get_output(conn->bev));
	conn->replied = 1;
	bufferevent_disable(conn->bev, EV_READ);
	return (0);
}

/* conn_write_cb - the output buffer drained: done after the reply */
static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *conn = arg;

	(void)bev;
	if (conn->replied)
		conn_free(&conn);
}

/* conn_event_cb - EOF, error or timeout: drop the connection */
static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn *conn = arg;

	(void)bev;
	if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) &&
	    conn_last_line(conn) == 0)
		return;		/* conn_write_cb closes after the reply */
	if (what & BEV_EVENT_TIMEOUT)
		log_info("control: connection timed out");
	conn_free(&conn);
}

/* peer_allowed - root or the relay's own user only */
static int
peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return (0);
	return (cred.uid == 0 || cred.uid == geteuid());
}

/* control_accept_cb - a new ferryctl connection */
static void
control_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control *ctl = arg;
	struct ctl_conn *conn;

	(void)lev;
	(void)sa;
	(void)salen;
	if (ctl->nconns >= CTL_MAX_CONNS) {
		log_warnx("control: too many connections, refusing one");
		close(fd);
		return;
	}
	if (!peer_allowed(fd)) {
		log_warnx("control: refused a connection from another user");
		close(fd);
		return;
	}
	if ((conn = calloc(1, sizeof(*conn))) == NULL) {
		close(fd);
		return;
	}
	conn->ctl = ctl;
	conn->bev = bufferevent_socket_new(ctl->relay->base, fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (conn->bev == NULL) {
		close(fd);
		free(conn);
		return;
	}
	TAILQ_INSERT_TAIL(&ctl->conns, conn, entry);
	ctl->nconns++;
	{
		struct timeval tv = { CTL_TIMEOUT, 0 };

		bufferevent_set_timeouts(conn->bev, &tv, &tv);
	}
	/* Stop reading once a too-long line has arrived. */
	bufferevent_setwatermark(conn->bev, EV_READ, 0, CTL_LINE_MAX + 2);
	bufferevent_setcb(conn->bev, conn_read_cb, conn_write_cb, conn_event_cb,
	    conn);
	bufferevent_enable(conn->bev, EV_READ);
}

/*
 * socket_clear_stale - make way for our socket at path: a socket file
 * nobody answers on is left over from a crash and removed; one that
 * answers belongs to a running relay; anything else is not ours.
 */
static int
socket_clear_stale(const struct sockaddr_un *sun, char *err, size_t errlen)
{
	struct stat sb;
	int fd, rc, saved;

	if (lstat(sun->sun_path, &sb) == -1) {
		if (errno == ENOENT)
			return (0);
		snprintf(err, errlen, "[control] socket %s: %s", sun->sun_path,
		    strerror(errno));
		return (-1);
	}
	if (!S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "[control] socket %s exists and is not a "
		    "socket", sun->sun_path);
		return (-1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return (-1);
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	saved = errno;
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "[control] socket %s is in use: is another "
		    "ferry-relay running?", sun->sun_path);
		return (-1);
	}
	if (saved != ECONNREFUSED) {	/* e.g. EAGAIN: alive but busy */
		snprintf(err, errlen, "[control] socket %s: %s", sun->sun_path,
		    strerror(saved));
		return (-1);
	}
	if (unlink(sun->sun_path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "removing stale socket %s: %s",
		    sun->sun_path, strerror(errno));
		return (-1);
	}
	return (0);
}

/* control_socket_open - create, bind and listen on [control] socket */
static int
control_socket_open(struct control *ctl, const char *path, char *err,
    size_t errlen)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd, rc, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		snprintf(err, errlen, "[control] socket %s: path too long (at "
		    "most %zu bytes)", path, sizeof(sun.sun_path) - 1);
		return (-1);
	}
	if (socket_clear_stale(&sun, err, errlen) == -1)
		return (-1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return (-1);
	}
	/* Mode 0600 from birth: chmod() after bind() would leave a window. */
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	saved = errno;
	umask(old);
	if (rc == -1) {
		snprintf(err, errlen, "[control] socket %s: bind: %s", path,
		    strerror(saved));
		close(fd);
		return (-1);
	}
	if ((ctl->sock_path = strdup(path)) == NULL) {
		unlink(path);
		close(fd);
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	if (listen(fd, CTL_MAX_CONNS) == -1) {
		snprintf(err, errlen, "[control] socket %s: listen: %s", path,
		    strerror(errno));
		close(fd);
		return (-1);
	}
	ctl->listener = evconnlistener_new(ctl->relay->base, control_accept_cb,
	    ctl, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (ctl->listener == NULL) {
		snprintf(err, errlen, "[control] socket %s: cannot listen", path);
		close(fd);
		return (-1);
	}
	log_info("control: ferryctl socket %s", path);
	return (0);
}

/* ---- life cycle --------------------------------------------------------- */

/*
 * control_new - open the HTTP listener (when [control] http is set) and
 * the control socket.  Call on the loop's thread, after the store is
 * open.  The socket file belongs to whoever calls this: call it after
 * dropping privileges, or ferryctl will need root.
 */
int
control_new(struct control **control_r, struct relay *relay, char *err,
    size_t errlen)
{
	const struct config *cfg = relay->cfg;
	struct control *ctl;

	*control_r = NULL;
	if ((ctl = calloc(1, sizeof(*ctl))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	ctl->relay = relay;
	TAILQ_INIT(&ctl->conns);
	if (cfg->control.http.count > 0 &&
	    control_auth_new(&ctl->auth, cfg, err, errlen) == -1)
		goto fail;
	if (cfg->control.http.count > 0 &&
	    control_http_open(ctl, &cfg->control.http.items[0], err,
	    errlen) == -1)
		goto fail;
	if (cfg->control.socket != NULL && cfg->control.socket[0] != '\0' &&
	    control_socket_open(ctl, cfg->control.socket, err, errlen) == -1)
		goto fail;
	*control_r = ctl;
	return (0);
fail:
	control_free(&ctl);
	return (-1);
}

/* control_free - close every listener and connection, remove the socket */
void
control_free(struct control **control)
{
	struct control *ctl = *control;
	struct ctl_conn *conn;

	if (ctl == NULL)
		return;
	while ((conn = TAILQ_FIRST(&ctl->conns)) != NULL)
		conn_free(&conn);
	if (ctl->listener != NULL)
		evconnlistener_free(ctl->listener);
	if (ctl->sock_path != NULL) {
		(void)unlink(ctl->sock_path);
		free(ctl->sock_path);
	}
	if (ctl->http != NULL)
		evhttp_free(ctl->http);
	http_cap_free(&ctl->http_cap);	/* after: evhttp_free reports to it */
	control_auth_free(&ctl->auth);
	free(ctl);
	*control = NULL;
}
