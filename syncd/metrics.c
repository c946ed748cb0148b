/*
 * metrics.c - ferry-syncd's Prometheus counters and their exposition
 * (see metrics.h).
 *
 * Names follow the relay's (relay/control.c): the prefix mailferry_syncd_,
 * counters end in _total, times are seconds, timestamps are Unix seconds
 * and end in _timestamp_seconds, a state is a gauge per label value with
 * 1 for the current one.  Every label value with a fixed set is always
 * written (0 included), so that rate() and alerts see the series before
 * the first event.
 *
 * SECURITY: account names come from the accounts file and are escaped as
 * label values; nothing from the IMAP servers reaches a label.
 *
 * Threads: everything below is under m.mu; the attached progress's
 * counters under its own mutex, taken after m.mu (the engine never calls
 * in here holding the progress mutex).
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include <event2/buffer.h>

#include "cutover_state.h"
#include "http_text.h"
#include "metrics.h"
#include "sync.h"

#define NSTATES	4	/* enum sync_acct_state */

struct hist {
	uint64_t	 bucket[METRICS_IMAP_NBUCKETS];	/* the larger set */
	uint64_t	 count;
	double		 sum;
};

struct acct_row {
	char		*user;
	enum metrics_result res;
	time_t		 finished;
};

static struct {
	pthread_mutex_t	 mu;
	time_t		 started;
	uint64_t	 copied, copied_bytes, policy;
	uint64_t	 dst_checks_skipped;
	uint64_t	 dups[METRICS_NDUPS];
	uint64_t	 failed[METRICS_NFAILS];
	uint64_t	 reconnects[METRICS_NSERVERS];
	uint64_t	 throttle[METRICS_NTHROTTLES];
	double		 throttle_secs[METRICS_NTHROTTLES];
	uint64_t	 mx[MX_CLASS_NCLASSES];
	struct hist	 imap[METRICS_NSERVERS];
	struct hist	 pass;
	uint64_t	 passes[METRICS_NRESULTS];
	int		 running, have_last;
	time_t		 pass_started, last_end, last_activity;
	enum metrics_result last_result;
	/* the running pass's progress, or the last one's final numbers */
	struct sync_progress *pr;
	uint64_t	 acc_state[NSTATES];
	uint64_t	 msgs_total, msgs_done, bytes_done;
	struct acct_row	*acc;
	size_t		 nacc, aacc;
} m = { .mu = PTHREAD_MUTEX_INITIALIZER };

static const double pass_bounds[METRICS_PASS_NBUCKETS] = METRICS_PASS_BUCKETS;
static const double imap_bounds[METRICS_IMAP_NBUCKETS] = METRICS_IMAP_BUCKETS;
static int server_ids[METRICS_NSERVERS] = { METRICS_SOURCE,
	METRICS_DESTINATION };

static const char *const server_names[METRICS_NSERVERS] = {
	"source", "destination" };
static const char *const dup_names[METRICS_NDUPS] = {
	"already_there", "ledger" };
static const char *const fail_names[METRICS_NFAILS] = {
	"refused", "source", "temporary", "over_quota", "altered" };
static const char *const throttle_names[METRICS_NTHROTTLES] = {
	"rate_limit", "server_backoff" };
static const char *const result_names[METRICS_NRESULTS] = {
	"complete", "missing", "error" };
static const char *const state_names[NSTATES] = {
	"waiting", "running", "done", "failed" };

const char *
metrics_result_name(enum metrics_result r)
{
	return ((unsigned)r < METRICS_NRESULTS ? result_names[r] : "error");
}

/* hist_add - one observation; bounds has n upper bounds, ascending */
static void
hist_add(struct hist *h, const double *bounds, size_t n, double v)
{
	size_t i;

	if (v < 0)
		v = 0;
	for (i = 0; i < n; i++)
		if (v <= bounds[i])
			h->bucket[i]++;	/* cumulative, as exposed */
	h->count++;
	h->sum += v;
}

void
metrics_start(time_t now)
{
	pthread_mutex_lock(&m.mu);
	m.started = now;
	pthread_mutex_unlock(&m.mu);
}

void
metrics_copied(uint64_t bytes)
{
	pthread_mutex_lock(&m.mu);
	m.copied++;
	m.copied_bytes += bytes;
	m.last_activity = time(NULL);
	pthread_mutex_unlock(&m.mu);
}

void
metrics_duplicates(enum metrics_dup why, uint64_t n)
{
	if ((unsigned)why >= METRICS_NDUPS || n == 0)
		return;
	pthread_mutex_lock(&m.mu);
	m.dups[why] += n;
	m.last_activity = time(NULL);
	pthread_mutex_unlock(&m.mu);
}

void
metrics_policy(uint64_t n)
{
	pthread_mutex_lock(&m.mu);
	m.policy += n;
	pthread_mutex_unlock(&m.mu);
}

void
metrics_dst_check_skipped(void)
{
	pthread_mutex_lock(&m.mu);
	m.dst_checks_skipped++;
	pthread_mutex_unlock(&m.mu);
}

void
metrics_failed(enum metrics_fail why)
{
	if ((unsigned)why >= METRICS_NFAILS)
		return;
	pthread_mutex_lock(&m.mu);
	m.failed[why]++;
	m.last_activity = time(NULL);
	pthread_mutex_unlock(&m.mu);
}

void
metrics_reconnect(enum metrics_server s)
{
	if ((unsigned)s >= METRICS_NSERVERS)
		return;
	pthread_mutex_lock(&m.mu);
	m.reconnects[s]++;
	pthread_mutex_unlock(&m.mu);
}

void
metrics_throttle(enum metrics_throttle why, double seconds)
{
	if ((unsigned)why >= METRICS_NTHROTTLES)
		return;
	pthread_mutex_lock(&m.mu);
	m.throttle[why]++;
	m.throttle_secs[why] += seconds > 0 ? seconds : 0;
	pthread_mutex_unlock(&m.mu);
}

void
metrics_imap_command(enum metrics_server s, double seconds)
{
	if ((unsigned)s >= METRICS_NSERVERS)
		return;
	pthread_mutex_lock(&m.mu);
	hist_add(&m.imap[s], imap_bounds, METRICS_IMAP_NBUCKETS, seconds);
	pthread_mutex_unlock(&m.mu);
}

void *
metrics_server_arg(enum metrics_server s)
{
	return ((unsigned)s < METRICS_NSERVERS ? &server_ids[s] : NULL);
}

void
metrics_imap_timing(void *arg, double seconds)
{
	if (arg != NULL)
		metrics_imap_command((enum metrics_server)*(int *)arg, seconds);
}

void
metrics_mx_answer(int cls)
{
	if (cls < 0 || cls >= MX_CLASS_NCLASSES)
		return;
	pthread_mutex_lock(&m.mu);
	m.mx[cls]++;
	pthread_mutex_unlock(&m.mu);
}

void
metrics_pass_begin(time_t now)
{
	pthread_mutex_lock(&m.mu);
	m.running = 1;
	m.pass_started = now;
	m.last_activity = now;
	m.pr = NULL;
	memset(m.acc_state, 0, sizeof(m.acc_state));
	m.msgs_total = m.msgs_done = m.bytes_done = 0;
	pthread_mutex_unlock(&m.mu);
}

void
metrics_pass_attach(struct sync_progress *pr)
{
	pthread_mutex_lock(&m.mu);
	m.pr = pr;
	pthread_mutex_unlock(&m.mu);
}

/* progress_read - the attached progress into the kept numbers (m.mu held) */
static void
progress_read(void)
{
	struct sync_progress *pr = m.pr;
	size_t i;

	if (pr == NULL)
		return;
	pthread_mutex_lock(&pr->mu);
	memset(m.acc_state, 0, sizeof(m.acc_state));
	for (i = 0; i < pr->nacc; i++)
		if ((unsigned)pr->acc[i].state < NSTATES)
			m.acc_state[pr->acc[i].state]++;
	m.msgs_total = pr->messages_total;
	m.msgs_done = pr->messages_done;
	m.bytes_done = pr->bytes;
	pthread_mutex_unlock(&pr->mu);
}

void
metrics_pass_end(enum metrics_result res, double seconds, time_t now)
{
	if ((unsigned)res >= METRICS_NRESULTS)
		res = METRICS_ERROR;
	pthread_mutex_lock(&m.mu);
	progress_read();
	m.pr = NULL;
	m.running = 0;
	m.passes[res]++;
	hist_add(&m.pass, pass_bounds, METRICS_PASS_NBUCKETS, seconds);
	m.have_last = 1;
	m.last_result = res;
	m.last_end = now;
	m.last_activity = now;
	pthread_mutex_unlock(&m.mu);
}

int
metrics_account_result(const char *user, enum metrics_result res,
    time_t finished)
{
	struct acct_row *row = NULL;
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&m.mu);
	for (i = 0; i < m.nacc; i++)
		if (strcmp(m.acc[i].user, user) == 0) {
			row = &m.acc[i];
			break;
		}
	if (row == NULL) {
		if (m.nacc == m.aacc) {
			size_t na = m.aacc ? m.aacc * 2 : 16;
			void *p = reallocarray(m.acc, na, sizeof(*m.acc));

			if (p == NULL) {
				rc = -1;
				goto out;
			}
			m.acc = p;
			m.aacc = na;
		}
		row = &m.acc[m.nacc];
		if ((row->user = strdup(user)) == NULL) {
			rc = -1;
			goto out;
		}
		m.nacc++;
	}
	row->res = (unsigned)res < METRICS_NRESULTS ? res : METRICS_ERROR;
	row->finished = finished;
out:
	pthread_mutex_unlock(&m.mu);
	return (rc);
}

void
metrics_reset(void)
{
	size_t i;

	pthread_mutex_lock(&m.mu);
	for (i = 0; i < m.nacc; i++)
		free(m.acc[i].user);
	free(m.acc);
	m.started = 0;
	m.copied = m.copied_bytes = m.policy = 0;
	m.dst_checks_skipped = 0;
	memset(m.dups, 0, sizeof(m.dups));
	memset(m.failed, 0, sizeof(m.failed));
	memset(m.reconnects, 0, sizeof(m.reconnects));
	memset(m.throttle, 0, sizeof(m.throttle));
	memset(m.throttle_secs, 0, sizeof(m.throttle_secs));
	memset(m.mx, 0, sizeof(m.mx));
	memset(m.imap, 0, sizeof(m.imap));
	memset(&m.pass, 0, sizeof(m.pass));
	memset(m.passes, 0, sizeof(m.passes));
	m.running = m.have_last = 0;
	m.pass_started = m.last_end = m.last_activity = 0;
	m.last_result = METRICS_COMPLETE;
	m.pr = NULL;
	memset(m.acc_state, 0, sizeof(m.acc_state));
	m.msgs_total = m.msgs_done = m.bytes_done = 0;
	m.acc = NULL;
	m.nacc = m.aacc = 0;
	pthread_mutex_unlock(&m.mu);
}

/* ---- exposition --------------------------------------------------------- */

void
metrics_family(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	http_metric_family(b, "mailferry_syncd", name, type, help);
}

const char *
metrics_label(const char *v, char *buf, size_t len)
{
	size_t o = 0;

	for (; *v != '\0' && o + 3 < len; v++) {
		if (*v == '\\' || *v == '"') {
			buf[o++] = '\\';
			buf[o++] = *v;
		} else if (*v == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else
			buf[o++] = *v;
	}
	buf[o] = '\0';
	return (buf);
}

/* one - a family with one unlabelled sample */
static void
one(struct evbuffer *b, const char *name, const char *type, const char *help,
    uint64_t v)
{
	metrics_family(b, name, type, help);
	evbuffer_add_printf(b, "mailferry_syncd_%s %" PRIu64 "\n", name, v);
}

/* labelled - a family with one sample per name of a fixed set */
static void
labelled(struct evbuffer *b, const char *name, const char *type,
    const char *help, const char *label, const char *const *names,
    const uint64_t *v, size_t n)
{
	size_t i;

	metrics_family(b, name, type, help);
	for (i = 0; i < n; i++)
		evbuffer_add_printf(b, "mailferry_syncd_%s{%s=\"%s\"} %" PRIu64
		    "\n", name, label, names[i], v[i]);
}

/* hist - the samples of one histogram; lbl is "" or `name="value",` */
static void
hist(struct evbuffer *b, const char *name, const char *lbl,
    const struct hist *h, const double *bounds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		evbuffer_add_printf(b, "mailferry_syncd_%s_bucket{%sle=\"%g\"} %"
		    PRIu64 "\n", name, lbl, bounds[i], h->bucket[i]);
	evbuffer_add_printf(b, "mailferry_syncd_%s_bucket{%sle=\"+Inf\"} %"
	    PRIu64 "\n", name, lbl, h->count);
	if (lbl[0] != '\0') {
		char l[64];
		size_t k = strlen(lbl);

		/* `server="x",` -> `{server="x"}` */
		snprintf(l, sizeof(l), "{%.*s}", (int)(k - 1), lbl);
		evbuffer_add_printf(b, "mailferry_syncd_%s_sum%s %.6f\n"
		    "mailferry_syncd_%s_count%s %" PRIu64 "\n", name, l, h->sum,
		    name, l, h->count);
	} else
		evbuffer_add_printf(b, "mailferry_syncd_%s_sum %.6f\n"
		    "mailferry_syncd_%s_count %" PRIu64 "\n", name, h->sum, name,
		    h->count);
}

int
metrics_render(struct evbuffer *b, time_t now)
{
	uint64_t v[METRICS_NRESULTS];
	char lbl[64], user[600];
	size_t i, k;

	pthread_mutex_lock(&m.mu);
	progress_read();
	if (m.started > 0)
		one(b, "uptime_seconds", "gauge",
		    "Seconds since ferry-syncd started.",
		    now > m.started ? (uint64_t)(now - m.started) : 0);
	one(b, "pass_running", "gauge", "1 while a pass runs.",
	    (uint64_t)m.running);
	one(b, "pass_start_timestamp_seconds", "gauge",
	    "When the running or the last pass started (0: none yet).",
	    (uint64_t)m.pass_started);
	one(b, "last_pass_end_timestamp_seconds", "gauge",
	    "When the last pass ended (0: none yet).", (uint64_t)m.last_end);
	for (i = 0; i < METRICS_NRESULTS; i++)
		v[i] = m.have_last && m.last_result == (enum metrics_result)i;
	labelled(b, "last_pass_result", "gauge",
	    "How the last pass ended: 1 for its result (complete: nothing "
	    "missing).", "result", result_names, v, METRICS_NRESULTS);
	one(b, "last_activity_timestamp_seconds", "gauge",
	    "When a message was last copied, skipped or failed, or a pass "
	    "began or ended (0: never).", (uint64_t)m.last_activity);
	labelled(b, "passes_total", "counter", "Passes ended, by result.",
	    "result", result_names, m.passes, METRICS_NRESULTS);
	metrics_family(b, "pass_duration_seconds", "histogram",
	    "Time a pass took, from its start to its report.");
	hist(b, "pass_duration_seconds", "", &m.pass, pass_bounds,
	    METRICS_PASS_NBUCKETS);

	labelled(b, "accounts", "gauge",
	    "Accounts of the running or the last pass, by state.", "state",
	    state_names, m.acc_state, NSTATES);
	one(b, "pass_messages_planned", "gauge",
	    "Messages the running or the last pass found to copy.",
	    m.msgs_total);
	one(b, "pass_messages_done", "gauge",
	    "Of those, messages copied or skipped so far.", m.msgs_done);
	one(b, "pass_bytes_done", "gauge",
	    "Bytes the running or the last pass has copied so far.",
	    m.bytes_done);

	one(b, "copied_messages_total", "counter",
	    "Messages copied to the destination.", m.copied);
	one(b, "copied_bytes_total", "counter",
	    "Bytes of the messages copied to the destination.", m.copied_bytes);
	labelled(b, "duplicates_total", "counter",
	    "Messages not copied because they are duplicates, by reason "
	    "(already_there: found on the destination by content; ledger: "
	    "the relay delivered it).", "reason", dup_names, m.dups,
	    METRICS_NDUPS);
	one(b, "policy_skipped_total", "counter",
	    "Messages not copied by policy (over the destination's "
	    "APPENDLIMIT).", m.policy);
	one(b, "destination_checks_skipped_total", "counter",
	    "Account passes that left the destination unchecked: the "
	    "source was unchanged since the account's last complete pass "
	    "and the destination had been checked within "
	    "destination_check_interval.", m.dst_checks_skipped);
	labelled(b, "failed_total", "counter",
	    "Messages that could not be copied, by reason.", "reason",
	    fail_names, m.failed, METRICS_NFAILS);
	labelled(b, "reconnects_total", "counter",
	    "IMAP connections made again after a drop or a failed attempt.",
	    "server", server_names, m.reconnects, METRICS_NSERVERS);
	labelled(b, "throttle_waits_total", "counter",
	    "Times the engine held back, by reason.", "reason",
	    throttle_names, m.throttle, METRICS_NTHROTTLES);
	metrics_family(b, "throttle_seconds_total", "counter",
	    "Seconds the engine held back, by reason.");
	for (i = 0; i < METRICS_NTHROTTLES; i++)
		evbuffer_add_printf(b, "mailferry_syncd_throttle_seconds_total"
		    "{reason=\"%s\"} %.3f\n", throttle_names[i],
		    m.throttle_secs[i]);
	metrics_family(b, "imap_command_seconds", "histogram",
	    "Time from sending an IMAP command to its tagged reply, by "
	    "server.");
	for (i = 0; i < METRICS_NSERVERS; i++) {
		snprintf(lbl, sizeof(lbl), "server=\"%s\",", server_names[i]);
		hist(b, "imap_command_seconds", lbl, &m.imap[i], imap_bounds,
		    METRICS_IMAP_NBUCKETS);
	}
	metrics_family(b, "mx_answers_total", "counter",
	    "MX answers of the cutover's resolvers, by class.");
	for (i = 0; i < MX_CLASS_NCLASSES; i++)
		evbuffer_add_printf(b, "mailferry_syncd_mx_answers_total"
		    "{class=\"%s\"} %" PRIu64 "\n",
		    cutover_class_name((enum cutover_class)i), m.mx[i]);

	metrics_family(b, "account_last_pass_end_timestamp_seconds", "gauge",
	    "When each account's last pass ended.");
	for (i = 0; i < m.nacc; i++)
		evbuffer_add_printf(b, "mailferry_syncd_account_last_pass_end_"
		    "timestamp_seconds{account=\"%s\"} %" PRId64 "\n",
		    metrics_label(m.acc[i].user, user, sizeof(user)),
		    (int64_t)m.acc[i].finished);
	metrics_family(b, "account_last_pass_result", "gauge",
	    "How each account's last pass ended: 1 for its result.");
	for (i = 0; i < m.nacc; i++) {
		metrics_label(m.acc[i].user, user, sizeof(user));
		for (k = 0; k < METRICS_NRESULTS; k++)
			evbuffer_add_printf(b, "mailferry_syncd_account_last_"
			    "pass_result{account=\"%s\",result=\"%s\"} %d\n",
			    user, result_names[k],
			    m.acc[i].res == (enum metrics_result)k);
	}
	pthread_mutex_unlock(&m.mu);
	return (0);
}
