/*
 * checks.c - one message's SPF and DKIM verdicts, the removal of forged
 * Authentication-Results fields, and the identity/body hash behind the
 * dedupe and ledger keys (see checks.h for the life of a struct
 * msg_checks).
 *
 * The byte path during DATA:
 *
 *   checks_data() --header lines--> authres_filter --kept--> out()
 *                 --body---------------------------------->  out()
 *   out(): sink (the spool), DKIM (dkimv_msg_chunk), body hash
 *
 * Header lines are assembled whole before the filter sees them (it
 * works line by line); the body passes through untouched in the pieces
 * it came in.  The Message-ID, Date and From fields are copied aside
 * (bounded) for msg_ident_from_headers().  DKIM sees the header block as
 * it is forwarded (a forged A-R removed), which is what the new provider
 * will verify too; the key look-ups start at the empty line
 * (dkimv_msg_eoh) and run while the body streams.
 *
 * Exposure: everything fed here is the peer's; lengths are bounded
 * (header line: [relay] max_line_length, the filter's hold buffer, the
 * captured fields: CHECKS_CAPTURE_MAX), verdict strings from libspf2 and
 * libopendkim are quoted by authres.c.
 *
 * Threading: loop thread; SPF runs on spf.c's workers and reports back
 * on the loop.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "authres.h"
#include "checks.h"
#include "dkim_verify.h"
#include "log.h"
#include "relay.h"
#include "spf.h"
#include "util.h"

#define CHECKS_CAPTURE_MAX	(16 * 1024)	/* Message-ID, Date, From */
#define CHECKS_AUTHRES_MAX	4096

enum spf_state { SPF_OFF, SPF_PENDING, SPF_DONE };

struct msg_checks {
	struct relay		*relay;		/* borrowed */
	struct sockaddr_storage	 client;
	char			*helo;		/* owned */
	char			*sender;	/* owned; "" for <> */
	char			 id[QUEUE_ID_LEN + 1];
	char			 authserv_id[256];

	/* SPF */
	enum spf_state		 spf_state;
	uint64_t		 spf_id;
	struct spf_result	 spf;

	/* DKIM: msg owned; results owned by it after dkimv_msg_eom() */
	struct dkimv_msg	*dkim;
	int			 eoh_sent;	/* dkimv_msg_eoh() called */
	const struct dkimv_result *dres;
	size_t			 ndres;

	/* the byte path */
	checks_sink_fn		*sink;
	void			*sink_arg;
	int			 sink_failed;
	struct authres_filter	*filter;	/* owned; NULL after headers */
	int			 in_header;
	char			*line;		/* owned; one header line */
	size_t			 linelen, linecap, linemax;
	char			*hdrs;		/* owned; captured fields */
	size_t			 hdrlen, hdrcap;
	int			 capturing;
	struct body_hash	 bh;
	int			 bh_live;

	/* the end */
	checks_done_fn		*done;
	void			*done_arg;
	struct event		*ev;		/* owned; defers done */
	int			 ended, scheduled, finished;
	unsigned char		 body_sha[BODY_HASH_LEN];
	int			 body_ok;
	struct msg_ident	 ident;
	int			 ident_ok;
	char			 summary[256];
};

static const struct config *
cfg_of(const struct msg_checks *c)
{
	return (c->relay->cfg);
}

static void	maybe_finish(struct msg_checks *);

/* ---- SPF ------------------------------------------------------------------ */

static void
spf_done(const struct spf_result *r, void *arg)
{
	struct msg_checks *c = arg;

	c->spf = *r;
	c->spf_state = SPF_DONE;
	maybe_finish(c);
}

static void
spf_start(struct msg_checks *c)
{
	if (cfg_of(c)->checks.spf == CFG_SPF_OFF || c->relay->spf == NULL)
		return;
	c->spf_state = SPF_PENDING;
	if (spf_check(c->relay->spf, (struct sockaddr *)&c->client, c->helo,
	    c->sender, spf_done, c, &c->spf_id) == 0)
		return;
	/* Not started (the checker's queue is full, or no memory): a
	 * temporary error, never a permanent verdict. */
	memset(&c->spf, 0, sizeof(c->spf));
	c->spf.verdict = SPF_VERDICT_TEMPERROR;
	c->spf.identity = c->sender[0] ? SPF_ID_MAILFROM : SPF_ID_HELO;
	snprintf(c->spf.explanation, sizeof(c->spf.explanation),
	    "SPF check not started: %s", strerror(errno));
	c->spf_state = SPF_DONE;
}

/* spf_policy_refusal - the reply the SPF verdict earns under our policy */
static const char *
spf_policy_refusal(const struct msg_checks *c)
{
	if (c->spf_state != SPF_DONE ||
	    cfg_of(c)->checks.spf != CFG_SPF_REJECT_FAIL)
		return (NULL);
	switch (c->spf.verdict) {
	case SPF_VERDICT_FAIL:
		return ("550 5.7.23 SPF validation failed: the sender's domain "
		    "does not designate this client");
	case SPF_VERDICT_TEMPERROR:
		return ("451 4.7.0 Temporary SPF validation error; try again "
		    "later");
	default:
		return (NULL);
	}
}

/* ---- life ------------------------------------------------------------------- */

static void
authserv_id_init(struct msg_checks *c)
{
	const struct config *cfg = cfg_of(c);

	if (cfg->checks.authserv_id && cfg->checks.authserv_id[0] != '\0')
		str_copy(c->authserv_id, cfg->checks.authserv_id,
		    sizeof(c->authserv_id));
	else if (cfg->relay.hostname && cfg->relay.hostname[0] != '\0')
		str_copy(c->authserv_id, cfg->relay.hostname,
		    sizeof(c->authserv_id));
	else if (gethostname(c->authserv_id, sizeof(c->authserv_id) - 1) ==
	    -1 || c->authserv_id[0] == '\0')
		str_copy(c->authserv_id, "localhost", sizeof(c->authserv_id));
}

struct msg_checks *
checks_new(struct relay *relay, const struct sockaddr *client,
    const char *helo, const char *sender)
{
	struct msg_checks *c;
	size_t salen;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (NULL);
	c->relay = relay;
	salen = client->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	memcpy(&c->client, client, salen);
	if ((c->helo = strdup(helo ? helo : "")) == NULL ||
	    (c->sender = strdup(sender ? sender : "")) == NULL) {
		checks_free(&c);
		return (NULL);
	}
	authserv_id_init(c);
	spf_start(c);
	return (c);
}

void
checks_free(struct msg_checks **cp)
{
	struct msg_checks *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	if (c->spf_state == SPF_PENDING && c->relay->spf != NULL)
		(void)spf_cancel(c->relay->spf, c->spf_id);
	dkimv_msg_free(&c->dkim);
	authres_filter_free(&c->filter);
	if (c->bh_live)
		body_hash_free(&c->bh);
	if (c->ev != NULL)
		event_free(c->ev);
	free(c->line);
	free(c->hdrs);
	free(c->helo);
	free(c->sender);
	free(c);
}

const char *
checks_spf_refusal(const struct msg_checks *c)
{
	return (spf_policy_refusal(c));
}

/* ---- the byte path ---------------------------------------------------------- */

/* out - bytes that are part of the forwarded message */
static void
out(struct msg_checks *c, const void *data, size_t len)
{
	if (len == 0)
		return;
	if (!c->sink_failed && c->sink(data, len, c->sink_arg) == -1)
		c->sink_failed = 1;
	if (c->dkim != NULL)
		(void)dkimv_msg_chunk(c->dkim, data, len);
	if (c->bh_live && body_hash_update(&c->bh, data, len) == -1) {
		body_hash_free(&c->bh);
		c->bh_live = 0;
	}
}

static void
filter_emit(const char *data, size_t len, void *arg)
{
	out(arg, data, len);
}

/* field_wanted - a header line starting a field msgid.c needs */
static int
field_wanted(const char *line, size_t len)
{
	static const char *const names[] = { "message-id", "date", "from" };
	size_t i, n;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		n = strlen(names[i]);
		if (len > n && strncasecmp(line, names[i], n) == 0) {
			while (n < len && (line[n] == ' ' || line[n] == '\t'))
				n++;
			if (n < len && line[n] == ':')
				return (1);
		}
	}
	return (0);
}

/* capture - keep Message-ID, Date and From (with their folds) aside */
static void
capture(struct msg_checks *c, const char *line, size_t len)
{
	if (len > 0 && line[0] != ' ' && line[0] != '\t')
		c->capturing = field_wanted(line, len);
	if (!c->capturing || c->hdrlen + len > CHECKS_CAPTURE_MAX)
		return;
	if (c->hdrlen + len > c->hdrcap) {
		/* three short fields as a rule: grow from 512 bytes */
		size_t cap = c->hdrcap ? c->hdrcap : 512;
		char *n;

		while (cap < c->hdrlen + len)
			cap *= 2;
		if (cap > CHECKS_CAPTURE_MAX)
			cap = CHECKS_CAPTURE_MAX;
		if ((n = realloc(c->hdrs, cap)) == NULL)
			return;	/* out of memory: the keys are made
				   without this field */
		c->hdrs = n;
		c->hdrcap = cap;
	}
	memcpy(c->hdrs + c->hdrlen, line, len);
	c->hdrlen += len;
}

static void
dkim_keys_in(struct dkimv_msg *m, void *arg)
{
	(void)m;
	maybe_finish(arg);
}

/* dkim_eoh - the header block is complete: start the key look-ups */
static void
dkim_eoh(struct msg_checks *c)
{
	if (c->dkim == NULL || c->eoh_sent)
		return;
	if (dkimv_msg_eoh(c->dkim, dkim_keys_in, c) == 0)
		c->eoh_sent = 1;
}

/* header_line - one whole header line (with its line end, if any) */
static void
header_line(struct msg_checks *c, const char *line, size_t len)
{
	capture(c, line, len);
	if (authres_filter_line(c->filter, line, len) == 1) {
		/* The empty line: it went out; the body follows. */
		c->in_header = 0;
		dkim_eoh(c);
	}
}

int
checks_data_begin(struct msg_checks *c, const char *id,
    checks_sink_fn *sink, void *arg)
{
	const struct config *cfg = cfg_of(c);

	str_copy(c->id, id, sizeof(c->id));
	c->sink = sink;
	c->sink_arg = arg;
	c->in_header = 1;
	c->linemax = (size_t)cfg->relay.max_line_length + 2;
	if ((c->filter = authres_filter_new(c->authserv_id, filter_emit,
	    c)) == NULL)
		return (-1);
	if (body_hash_init(&c->bh) == -1)
		return (-1);
	c->bh_live = 1;
	if (cfg->checks.dkim != CFG_DKIM_OFF && c->relay->dkim != NULL &&
	    (c->dkim = dkimv_msg_new(c->relay->dkim, id)) == NULL)
		return (-1);
	return (0);
}

/* line_add - append to the header line being assembled; -1: too long */
static int
line_add(struct msg_checks *c, const char *p, size_t n)
{
	size_t want = c->linelen + n;
	char *nl;

	if (want > c->linemax)
		return (-1);
	if (want > c->linecap) {
		size_t cap = c->linecap ? c->linecap : 256;

		while (cap < want)
			cap *= 2;
		if (cap > c->linemax)
			cap = c->linemax;
		if ((nl = realloc(c->line, cap)) == NULL)
			return (-1);
		c->line = nl;
		c->linecap = cap;
	}
	memcpy(c->line + c->linelen, p, n);
	c->linelen = want;
	return (0);
}

void
checks_data(struct msg_checks *c, const void *data, size_t len)
{
	const char *p = data, *nl;
	size_t n;

	while (len > 0 && c->in_header) {
		nl = memchr(p, '\n', len);
		n = nl ? (size_t)(nl - p) + 1 : len;
		if (line_add(c, p, n) == -1) {
			/* Over max_line_length (the message will be refused
			 * for it) or no memory: let the line go as it is. */
			if (c->linelen > 0)
				header_line(c, c->line, c->linelen);
			c->linelen = 0;
			header_line(c, p, n);
		} else if (nl != NULL) {
			header_line(c, c->line, c->linelen);
			c->linelen = 0;
		}
		p += n;
		len -= n;
	}
	out(c, p, len);
}

int
checks_sink_failed(const struct msg_checks *c)
{
	return (c->sink_failed);
}

/* ---- the end ---------------------------------------------------------------- */

static void
finish(struct msg_checks *c)
{
	const char *ar;
	size_t i;
	int n;

	c->finished = 1;
	if (c->dkim != NULL)
		(void)dkimv_msg_eom(c->dkim, &c->dres, &c->ndres);
	if (c->bh_live) {
		c->bh_live = 0;
		c->body_ok = body_hash_final(&c->bh, c->body_sha) == 0;
	}
	c->ident_ok = msg_ident_from_headers(c->hdrs ? c->hdrs : "",
	    c->hdrlen, &c->ident) == 0;

	n = 0;
	c->summary[0] = '\0';
	if (c->spf_state == SPF_DONE)
		n = snprintf(c->summary, sizeof(c->summary), "spf=%s",
		    spf_verdict_name(c->spf.verdict));
	for (i = 0; i < c->ndres && n >= 0 &&
	    (size_t)n < sizeof(c->summary); i++)
		n += snprintf(c->summary + n, sizeof(c->summary) - (size_t)n,
		    "%sdkim=%s%s%s", n ? " " : "",
		    dkimv_result_name(c->dres[i].result),
		    c->dres[i].domain[0] ? "/" : "", c->dres[i].domain);
	if ((ar = spf_policy_refusal(c)) != NULL)
		log_info("%s: reject: %s; from=<%s> helo=%s", c->id, ar,
		    c->sender, c->helo);
}

static void
done_ev(evutil_socket_t fd, short what, void *arg)
{
	struct msg_checks *c = arg;

	(void)fd;
	(void)what;
	finish(c);
	c->done(c, c->done_arg);
}

/* maybe_finish - SPF in, DKIM keys in, "." seen: report (from the loop) */
static void
maybe_finish(struct msg_checks *c)
{
	if (!c->ended || c->finished || c->scheduled || c->ev == NULL)
		return;
	if (c->spf_state == SPF_PENDING)
		return;
	if (c->dkim != NULL && c->eoh_sent && !dkimv_msg_ready(c->dkim))
		return;
	c->scheduled = 1;
	event_active(c->ev, EV_TIMEOUT, 0);
}

void
checks_data_end(struct msg_checks *c, checks_done_fn *done, void *arg)
{
	if (c->in_header) {
		/* No empty line: the message is all header. */
		if (c->linelen > 0)
			header_line(c, c->line, c->linelen);
		c->linelen = 0;
		c->in_header = 0;
		dkim_eoh(c);
	}
	authres_filter_end(c->filter);
	c->done = done;
	c->done_arg = arg;
	c->ended = 1;
	if ((c->ev = event_new(c->relay->base, -1, 0, done_ev, c)) == NULL) {
		/* Cannot defer: the caller still needs its callback, and
		 * the loop is our only way to give it.  Give up on waiting:
		 * whatever is outstanding counts as a temporary error. */
		log_warnx("%s: checks: cannot create an event", c->id);
		if (c->spf_state == SPF_PENDING) {
			(void)spf_cancel(c->relay->spf, c->spf_id);
			c->spf.verdict = SPF_VERDICT_TEMPERROR;
			c->spf_state = SPF_DONE;
		}
		finish(c);
		done(c, arg);
		return;
	}
	maybe_finish(c);
}

const char *
checks_refusal(const struct msg_checks *c)
{
	return (spf_policy_refusal(c));
}

int
checks_authres(const struct msg_checks *c, char *buf, size_t len)
{
	const struct config *cfg = cfg_of(c);
	char spf[1024];
	ssize_t n;
	int dkim_on = cfg->checks.dkim != CFG_DKIM_OFF && c->dkim != NULL;

	if (c->spf_state != SPF_DONE && !dkim_on)
		return (0);
	spf[0] = '\0';
	if (c->spf_state == SPF_DONE && spf_authres(&c->spf, spf,
	    sizeof(spf)) == -1)
		spf[0] = '\0';
	n = authres_build(c->authserv_id, spf, dkim_on ? c->dres : NULL,
	    dkim_on ? c->ndres : 0, buf, len);
	if (n < 0) {
		log_warnx("%s: cannot build Authentication-Results: %s", c->id,
		    strerror(errno));
		return (-1);
	}
	return (1);
}

size_t
checks_removed(const struct msg_checks *c)
{
	return (c->filter ? authres_filter_dropped(c->filter) : 0);
}

const char *
checks_summary(const struct msg_checks *c)
{
	return (c->summary);
}

int
checks_relay_key(const struct msg_checks *c, const char *sender,
    const char *const *rcpts, size_t nrcpt, unsigned char key[MSGKEY_LEN])
{
	if (!c->finished || !c->body_ok)
		return (-1);
	return (msgkey_relay(c->ident_ok && c->ident.has_msgid ?
	    c->ident.msgid : "", sender, rcpts, nrcpt, c->body_sha, key));
}

int
checks_ledger_key(const struct msg_checks *c, const char *rcpt,
    unsigned char key[MSGKEY_LEN])
{
	if (!c->finished || !c->body_ok || !c->ident_ok)
		return (-1);
	return (msgkey_ledger(rcpt, &c->ident, c->body_sha, key));
}

/* ---- keys of a spooled message ------------------------------------------- */

#define SPOOLED_READ	8192

/* spooled_line - one header line read back: captured as during DATA */
static void
spooled_line(struct msg_checks *c, const char *line, size_t len)
{
	capture(c, line, len);
}

int
checks_spooled_keys(int fd, uint64_t size, struct queue_record *rec,
    char *err, size_t errlen)
{
	struct msg_checks c;
	char *buf = NULL, *line = NULL;
	const char **rcpts = NULL;
	size_t linelen = 0, nrcpt = 0, i;
	uint64_t left = size;
	int in_header = 1, rc = -1;

	memset(&c, 0, sizeof(c));
	if ((buf = malloc(SPOOLED_READ)) == NULL ||
	    (line = malloc(CHECKS_CAPTURE_MAX)) == NULL ||
	    body_hash_init(&c.bh) == -1) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	c.bh_live = 1;
	while (left > 0) {
		size_t want = left < SPOOLED_READ ? (size_t)left : SPOOLED_READ;
		const char *p = buf, *nl;
		ssize_t n = read(fd, buf, want);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "spool file: %s", n == 0 ?
			    "shorter than its size" : strerror(errno));
			goto out;
		}
		left -= (uint64_t)n;
		if (body_hash_update(&c.bh, buf, (size_t)n) == -1) {
			snprintf(err, errlen, "body hash failed");
			goto out;
		}
		/* Header lines, whole, to capture(); a line longer than the
		 * capture limit is not captured during DATA either. */
		while (in_header && p < buf + n) {
			size_t k;

			nl = memchr(p, '\n', (size_t)(buf + n - p));
			k = nl ? (size_t)(nl - p) + 1 : (size_t)(buf + n - p);
			if (linelen + k <= CHECKS_CAPTURE_MAX) {
				memcpy(line + linelen, p, k);
				linelen += k;
			} else
				linelen = CHECKS_CAPTURE_MAX + 1;
			p += k;
			if (nl == NULL)
				break;
			if (linelen <= CHECKS_CAPTURE_MAX) {
				if ((linelen == 2 && line[0] == '\r') ||
				    linelen == 1)
					in_header = 0;
				else
					spooled_line(&c, line, linelen);
			}
			linelen = 0;
		}
	}
	c.bh_live = 0;
	c.body_ok = body_hash_final(&c.bh, c.body_sha) == 0;
	c.ident_ok = msg_ident_from_headers(c.hdrs ? c.hdrs : "", c.hdrlen,
	    &c.ident) == 0;
	c.finished = 1;
	if (rec->ndlv > 0 && (rcpts = calloc(rec->ndlv,
	    sizeof(*rcpts))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* Every recipient once: its upstream delivery, or its copy_to one
	 * when it was routed to the old host only (route.h). */
	for (i = 0; i < rec->ndlv; i++) {
		size_t j = 0;

		if (rec->dlv[i].dest == DLV_COPY)
			for (j = 0; j < rec->ndlv; j++)
				if (rec->dlv[j].dest == DLV_UPSTREAM &&
				    strcmp(rec->dlv[j].rcpt,
				    rec->dlv[i].rcpt) == 0)
					break;
		if (rec->dlv[i].dest == DLV_UPSTREAM ||
		    (rec->dlv[i].dest == DLV_COPY && j == rec->ndlv))
			rcpts[nrcpt++] = rec->dlv[i].rcpt;
	}
	rec->has_relay_key = checks_relay_key(&c, rec->sender, rcpts, nrcpt,
	    rec->relay_key) == 0;
	for (i = 0; i < rec->ndlv; i++) {
		struct delivery *d = &rec->dlv[i];

		d->has_ledger_key = d->dest == DLV_UPSTREAM &&
		    checks_ledger_key(&c, d->rcpt, d->ledger_key) == 0;
	}
	rc = 0;
out:
	if (c.bh_live)
		body_hash_free(&c.bh);
	free(c.hdrs);
	free(rcpts);
	free(line);
	free(buf);
	return (rc);
}
