/*
 * imap_client_cmd.c - the IMAP client's commands (see imap_client.h and
 * imap_client_p.h): building a command line in segments, the writer
 * that puts them on the wire within the window and the barriers, the
 * completion of a command, the public command functions and APPEND
 * streaming.
 *
 * SECURITY: every caller argument is checked by imap_wire.c's
 * validators before it is formatted, so no argument can carry a CRLF
 * and a second command; strings are quoted or sent as literals; the
 * command log masks secrets.
 *
 * Threading: one event loop, no global state.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "imap_client_p.h"
#include "log.h"

/* ---- building commands --------------------------------------------- */

/* imapc_cmd_new_seg - start a new output segment */
int
imapc_cmd_new_seg(struct imap_cmd *cmd)
{
	struct seg *s;
	size_t n;

	if (cmd->nsegs == cmd->segcap) {
		n = cmd->segcap ? cmd->segcap * 2 : 2;
		if ((s = reallocarray(cmd->segs, n, sizeof(*s))) == NULL)
			return (-1);
		cmd->segs = s;
		cmd->segcap = n;
	}
	s = &cmd->segs[cmd->nsegs];
	memset(s, 0, sizeof(*s));
	if ((s->buf = evbuffer_new()) == NULL)
		return (-1);
	cmd->nsegs++;
	return (0);
}

void
imapc_cmd_free(struct imap_cmd *cmd)
{
	size_t i;

	if (cmd == NULL)
		return;
	for (i = 0; i < cmd->nsegs; i++)
		evbuffer_free(cmd->segs[i].buf);
	free(cmd->segs);
	if (cmd->app_pending != NULL)
		evbuffer_free(cmd->app_pending);
	if (cmd->mbox != NULL) {
		imapc_mbox_clear(cmd->mbox);
		free(cmd->mbox);
	}
	free(cmd->mailbox);
	free(cmd->ns_prefix);
	free(cmd->auth_challenge);
	free(cmd);
}

/* imapc_cmd_log - append to the command's log line, marking truncation */
void
imapc_cmd_log(struct imap_cmd *cmd, const char *s)
{
	size_t have = strlen(cmd->logline), n = strlen(s);

	if (have + n >= sizeof(cmd->logline)) {
		if (have + 4 < sizeof(cmd->logline))
			memcpy(cmd->logline + have, "...", 4);
		return;
	}
	memcpy(cmd->logline + have, s, n + 1);
}

void
imapc_cmd_add(struct imap_cmd *cmd, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf)) {
		/* long raw arguments: format again into the buffer */
		va_start(ap, fmt);
		(void)evbuffer_add_vprintf(cmd_seg(cmd)->buf, fmt, ap);
		va_end(ap);
		imapc_cmd_log(cmd, "...");
		return;
	}
	evbuffer_add(cmd_seg(cmd)->buf, buf, (size_t)n);
	imapc_cmd_log(cmd, buf);
}

/* nonsync_ok - may a literal of n bytes be sent without waiting? */
static int
nonsync_ok(const struct imap_client *c, uint64_t n)
{
	return (imap_wire_nonsync_ok(n, c->literal_plus_max,
	    has_cap(c, IMAP_CAP_LITERAL_PLUS),
	    has_cap(c, IMAP_CAP_LITERAL_MINUS)));
}

/*
 * imapc_cmd_add_astring - s as a quoted string when it can be one (7-bit, or
 * UTF-8 under UTF8=ACCEPT; no CR, LF, NUL), otherwise as a literal:
 * non-synchronizing when allowed, else a new segment sent after "+".
 * A secret is logged as <hidden>.
 */
int
imapc_cmd_add_astring(struct imap_cmd *cmd, const char *s, size_t len,
    int secret)
{
	struct imap_client *c = cmd->c;
	struct evbuffer *b = cmd_seg(cmd)->buf;
	char shown[128];

	if (imap_wire_quotable(s, len, utf8_mode(c)))
		imap_wire_add_quoted(b, s, len);
	else if (nonsync_ok(c, len)) {
		evbuffer_add_printf(b, "{%zu+}\r\n", len);
		evbuffer_add(b, s, len);
	} else {
		evbuffer_add_printf(b, "{%zu}\r\n", len);
		cmd_seg(cmd)->sync = 1;
		if (imapc_cmd_new_seg(cmd) == -1)
			return (-1);
		evbuffer_add(cmd_seg(cmd)->buf, s, len);
	}
	if (secret)
		imapc_cmd_log(cmd, "<hidden>");
	else {
		imapc_cmd_log(cmd, "\"");
		sanitize(shown, sizeof(shown), s, len);
		imapc_cmd_log(cmd, shown);
		imapc_cmd_log(cmd, "\"");
	}
	return (0);
}

/*
 * imapc_cmd_new - a command of the given kind with one empty segment, not
 * queued yet.  NULL when the client is closing or out of memory.
 */
struct imap_cmd *
imapc_cmd_new(struct imap_client *c, enum cmd_kind kind, imap_done_cb done,
    void *arg)
{
	struct imap_cmd *cmd;

	if (c == NULL || imapc_failed(c) ||
	    c->state == ICS_LOGOUT)
		return (NULL);
	if ((cmd = calloc(1, sizeof(*cmd))) == NULL)
		return (NULL);
	cmd->c = c;
	cmd->kind = kind;
	cmd->done = done;
	cmd->arg = arg;
	if (imapc_cmd_new_seg(cmd) == -1) {
		imapc_cmd_free(cmd);
		return (NULL);
	}
	return (cmd);
}

/* imapc_cmd_queue - finish the command line and queue it */
struct imap_cmd *
imapc_cmd_queue(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->c;

	if (cmd->kind != K_APPEND)
		evbuffer_add(cmd_seg(cmd)->buf, "\r\n", 2);
	if (cmd->kind == K_STARTTLS || cmd->kind == K_COMPRESS ||
	    cmd->kind == K_AUTH || cmd->kind == K_LOGIN ||
	    cmd->kind == K_LOGOUT)
		cmd->barrier = 1;
	if (cmd->setup)
		TAILQ_INSERT_TAIL(&c->setupq, cmd, q);
	else
		TAILQ_INSERT_TAIL(&c->userq, cmd, q);
	imapc_writer_run(c);
	return (cmd);
}

/* ---- the writer ---------------------------------------------------- */

/* next_cmd - the next command that may start now, or NULL */
static struct imap_cmd *
next_cmd(struct imap_client *c)
{
	struct imap_cmd *cmd;

	TAILQ_FOREACH(cmd, &c->inflight, q)
		if (cmd->barrier)
			return (NULL);
	if (c->ninflight >= c->window)
		return (NULL);
	if ((cmd = TAILQ_FIRST(&c->setupq)) != NULL)
		return (cmd);
	if (c->state != ICS_READY && c->state != ICS_LOGOUT)
		return (NULL);
	return (TAILQ_FIRST(&c->userq));
}

/* cmd_clock - monotonic seconds, for the timing option */
static double
cmd_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

/* start_cmd - give the command its tag and put it in flight */
static void
start_cmd(struct imap_client *c, struct imap_cmd *cmd)
{
	char tagsp[20];

	TAILQ_REMOVE(cmd->setup ? &c->setupq : &c->userq, cmd, q);
	cmd->tagnum = ++c->nexttag;
	snprintf(cmd->tag, sizeof(cmd->tag), "A%u", cmd->tagnum);
	snprintf(tagsp, sizeof(tagsp), "%s ", cmd->tag);
	evbuffer_prepend(cmd->segs[0].buf, tagsp, strlen(tagsp));
	cmd->st = CMD_INFLIGHT;
	cmd->sent_at = cmd_clock();
	TAILQ_INSERT_TAIL(&c->inflight, cmd, q);
	c->ninflight++;
	c->writer = cmd;
	if (cmd->kind == K_LOGOUT)
		imapc_state(c, ICS_LOGOUT);
	log_debug("%s: C: %s %s", c->id, cmd->tag, cmd->logline);
	imapc_arm_timeouts(c);
}

/*
 * imapc_writable_now - the writer is an APPEND whose streamer was told to
 * stop and may go on now: nothing held back, output below the mark.
 * (When the output is above the mark, write_cb calls back later.)
 */
int
imapc_writable_now(struct imap_client *c)
{
	struct imap_cmd *w = c->writer;

	return (w != NULL && w->kind == K_APPEND && w->app_want_writable &&
	    !w->waiting_cont && !imapc_failed(c) &&
	    c->top != NULL && evbuffer_get_length(w->app_pending) == 0 &&
	    imap_client_output_pending(c) <= c->out_hiwat);
}

/*
 * imapc_writer_run - move queued output onto the wire as far as the rules
 * allow: window, barriers, "+" continuations, streamed literals.
 */
void
imapc_writer_run(struct imap_client *c)
{
	struct evbuffer *out;
	struct imap_cmd *w;
	struct seg *s;
	size_t n;

	if (imapc_failed(c) || c->top == NULL || c->switch_to ||
	    c->state == ICS_CONNECTING || c->state == ICS_TLS_HANDSHAKE)
		return;
	out = bufferevent_get_output(c->top);
	for (;;) {
		if ((w = c->writer) == NULL) {
			if ((w = next_cmd(c)) == NULL)
				return;
			start_cmd(c, w);
		}
		if (w->waiting_cont)
			return;
		if (w->app_left > 0) {
			n = evbuffer_get_length(w->app_pending);
			if (n > w->app_left)
				n = (size_t)w->app_left;
			if (n > 0) {
				evbuffer_remove_buffer(w->app_pending, out, n);
				w->app_left -= n;
			}
			if (w->app_left > 0) {
				if (imapc_writable_now(c))
					imapc_schedule_later(c);
				return;
			}
			imapc_arm_timeouts(c);
			continue;
		}
		if (w->segi < w->nsegs) {
			s = &w->segs[w->segi++];
			evbuffer_add_buffer(out, s->buf);
			if (s->sync) {
				w->waiting_cont = 1;
				w->lit_next = s->literal;
				return;
			}
			if (s->has_literal) {
				w->app_left = s->literal;
				if (w->app_left == 0)
					continue;
				/* data may be waiting already */
				continue;
			}
			continue;
		}
		if (w->kind == K_APPEND && !w->app_ended) {
			if (imapc_writable_now(c))
				imapc_schedule_later(c);
			return;
		}
		c->writer = NULL;
		imapc_arm_timeouts(c);
	}
}

/* ---- commands in flight -------------------------------------------- */

/* imapc_find_tag - the command a tagged response belongs to */
struct imap_cmd *
imapc_find_tag(struct imap_client *c, const char *tag)
{
	struct imap_cmd *cmd;

	TAILQ_FOREACH(cmd, &c->inflight, q)
		if (strcmp(cmd->tag, tag) == 0)
			return (cmd);
	return (NULL);
}

/* imapc_oldest_kind - oldest command in flight of one of two kinds */
struct imap_cmd *
imapc_oldest_kind(struct imap_client *c, enum cmd_kind k1, enum cmd_kind k2)
{
	struct imap_cmd *cmd;

	TAILQ_FOREACH(cmd, &c->inflight, q)
		if (cmd->kind == k1 || cmd->kind == k2)
			return (cmd);
	return (NULL);
}

struct imap_cmd *
imapc_oldest_fetcher(struct imap_client *c)
{
	struct imap_cmd *cmd;

	TAILQ_FOREACH(cmd, &c->inflight, q)
		if (cmd->has_fcbs)
			return (cmd);
	return (NULL);
}

/* cb_done - call a command's done callback unless the client is going */
static void
cb_done(struct imap_client *c, struct imap_cmd *cmd,
    const struct imap_result *res)
{
	if (cmd->done != NULL)
		cmd->done(c, res, cmd->arg);
}

/*
 * imapc_complete - take cmd out of its queue and report res; frees cmd.
 * The done callback may queue new commands or free the client (that is
 * deferred while busy).
 */
void
imapc_complete(struct imap_client *c, struct imap_cmd *cmd,
    struct imap_result *res)
{
	switch (cmd->st) {
	case CMD_INFLIGHT:
		TAILQ_REMOVE(&c->inflight, cmd, q);
		c->ninflight--;
		break;
	case CMD_QUEUED:
		TAILQ_REMOVE(cmd->setup ? &c->setupq : &c->userq, cmd, q);
		break;
	case CMD_DONE:
		return;
	}
	cmd->st = CMD_DONE;
	if (c->writer == cmd)
		c->writer = NULL;
	if (c->r.target == cmd)
		c->r.target = NULL;
	if (cmd->mbox != NULL) {
		imapc_mbox_views(cmd->mbox);
		if (res->status == IMAP_OK)
			res->mailbox = &cmd->mbox->mb;
	}
	if (cmd->kind == K_STATUS && res->status == IMAP_OK)
		res->status_info = &cmd->stinfo;
	if (cmd->kind == K_NAMESPACE && cmd->ns_have) {
		res->ns_prefix = cmd->ns_prefix;
		res->ns_delim = cmd->ns_delim;
	}
	res->search_modseq = cmd->search_modseq;
	/* a tagged reply only: a lost connection is no answer time */
	if (c->timing != NULL && cmd->sent_at > 0 &&
	    (res->status == IMAP_OK || res->status == IMAP_NO ||
	    res->status == IMAP_BAD))
		c->timing(c->timing_arg, cmd_clock() - cmd->sent_at);
	cb_done(c, cmd, res);
	imapc_cmd_free(cmd);
}

/* imapc_fail_all - complete every command with res (connection gone) */
void
imapc_fail_all(struct imap_client *c, struct imap_result *res)
{
	struct imap_cmd *cmd;

	while ((cmd = TAILQ_FIRST(&c->inflight)) != NULL ||
	    (cmd = TAILQ_FIRST(&c->setupq)) != NULL ||
	    (cmd = TAILQ_FIRST(&c->userq)) != NULL)
		imapc_complete(c, cmd, res);
}

/* ---- commands ------------------------------------------------------ */

static int
add_mailbox(struct imap_cmd *cmd, const char *mailbox)
{
	return (imapc_cmd_add_astring(cmd, mailbox, strlen(mailbox), 0));
}

/* status_items - the STATUS items the server can give, as text */
static void
status_items(const struct imap_client *c, unsigned items, char *buf,
    size_t len)
{
	imap_wire_status_items(items, has_cap(c, IMAP_CAP_CONDSTORE),
	    has_cap(c, IMAP_CAP_STATUS_SIZE), has_cap(c, IMAP_CAP_APPENDLIMIT),
	    buf, len);
}

struct imap_cmd *
imap_client_select(struct imap_client *c, const char *mailbox,
    unsigned flags, const struct imap_qresync *qr,
    const struct imap_fetch_cbs *qr_cbs, imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if (!imap_wire_mailbox_valid(mailbox))
		return (NULL);
	if (qr != NULL && (!(c->enabled & IMAP_ENABLE_QRESYNC) ||
	    qr->uidvalidity == 0 || (qr->known_uids != NULL &&
	    !imap_wire_uidset_valid(qr->known_uids))))
		return (NULL);
	if ((cmd = imapc_cmd_new(c, K_SELECT, done, arg)) == NULL)
		return (NULL);
	if ((cmd->mbox = calloc(1, sizeof(*cmd->mbox))) == NULL ||
	    (cmd->mailbox = strdup(mailbox)) == NULL)
		goto fail;
	imapc_cmd_add(cmd, "%s ", flags & IMAP_SELECT_READONLY ? "EXAMINE" :
	    "SELECT");
	if (add_mailbox(cmd, mailbox) == -1)
		goto fail;
	if (qr != NULL) {
		imapc_cmd_add(cmd, " (QRESYNC (%llu %llu%s%s))",
		    (unsigned long long)qr->uidvalidity,
		    (unsigned long long)qr->modseq,
		    qr->known_uids ? " " : "",
		    qr->known_uids ? qr->known_uids : "");
		cmd->has_fcbs = 1;
		if (qr_cbs != NULL)
			cmd->fcbs = *qr_cbs;
	} else if ((flags & IMAP_SELECT_CONDSTORE) &&
	    has_cap(c, IMAP_CAP_CONDSTORE))
		imapc_cmd_add(cmd, " (CONDSTORE)");
	return (imapc_cmd_queue(cmd));
fail:
	imapc_cmd_free(cmd);
	return (NULL);
}

static struct imap_cmd *
list_common(struct imap_client *c, enum cmd_kind kind, const char *ref,
    const char *pattern, unsigned opts, unsigned items,
    const struct imap_list_cbs *cbs, imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;
	char ret[256], st[160];
	int ext = has_cap(c, IMAP_CAP_LIST_EXTENDED);

	if (ref == NULL || pattern == NULL ||
	    strlen(ref) > IMAP_WIRE_ARG_MAX ||
	    !imap_wire_mailbox_valid(pattern) || strchr(ref, '\r') ||
	    strchr(ref, '\n'))
		return (NULL);
	if ((cmd = imapc_cmd_new(c, kind, done, arg)) == NULL)
		return (NULL);
	if (cbs != NULL)
		cmd->lcbs = *cbs;
	imapc_cmd_add(cmd, "%s ", kind == K_LSUB ? "LSUB" : "LIST");
	if (kind == K_LIST && (opts & IMAP_LIST_SUBSCRIBED_ONLY))
		imapc_cmd_add(cmd, "(SUBSCRIBED) ");
	if (imapc_cmd_add_astring(cmd, ref, strlen(ref), 0) == -1)
		goto fail;
	imapc_cmd_add(cmd, " ");
	if (imapc_cmd_add_astring(cmd, pattern, strlen(pattern), 0) == -1)
		goto fail;
	ret[0] = '\0';
	if (kind == K_LIST) {
		if ((opts & IMAP_LIST_RETURN_SUBSCRIBED) && ext)
			imap_wire_sappend(ret, sizeof(ret), "SUBSCRIBED");
		if ((opts & IMAP_LIST_SPECIAL_USE) && ext &&
		    has_cap(c, IMAP_CAP_SPECIAL_USE))
			imap_wire_sappend(ret, sizeof(ret), "%sSPECIAL-USE",
			    ret[0] ? " " : "");
		status_items(c, items, st, sizeof(st));
		if ((opts & IMAP_LIST_STATUS) && st[0] != '\0' &&
		    has_cap(c, IMAP_CAP_LIST_STATUS))
			imap_wire_sappend(ret, sizeof(ret), "%sSTATUS (%s)",
			    ret[0] ? " " : "", st);
	}
	if (ret[0] != '\0')
		imapc_cmd_add(cmd, " RETURN (%s)", ret);
	return (imapc_cmd_queue(cmd));
fail:
	imapc_cmd_free(cmd);
	return (NULL);
}

struct imap_cmd *
imap_client_list(struct imap_client *c, const char *ref, const char *pattern,
    unsigned opts, unsigned status_items_mask, const struct imap_list_cbs *cbs,
    imap_done_cb done, void *arg)
{
	if ((opts & IMAP_LIST_SUBSCRIBED_ONLY) &&
	    !has_cap(c, IMAP_CAP_LIST_EXTENDED))
		return (list_common(c, K_LSUB, ref, pattern, 0, 0, cbs, done,
		    arg));
	return (list_common(c, K_LIST, ref, pattern, opts, status_items_mask,
	    cbs, done, arg));
}

struct imap_cmd *
imap_client_lsub(struct imap_client *c, const char *ref, const char *pattern,
    const struct imap_list_cbs *cbs, imap_done_cb done, void *arg)
{
	return (list_common(c, K_LSUB, ref, pattern, 0, 0, cbs, done, arg));
}

struct imap_cmd *
imap_client_status(struct imap_client *c, const char *mailbox,
    unsigned items, imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;
	char st[160];

	if (!imap_wire_mailbox_valid(mailbox))
		return (NULL);
	status_items(c, items, st, sizeof(st));
	if (st[0] == '\0')
		return (NULL);
	if ((cmd = imapc_cmd_new(c, K_STATUS, done, arg)) == NULL)
		return (NULL);
	if ((cmd->mailbox = strdup(mailbox)) == NULL)
		goto fail;
	cmd->stinfo.mailbox = cmd->mailbox;
	imapc_cmd_add(cmd, "STATUS ");
	if (add_mailbox(cmd, mailbox) == -1)
		goto fail;
	imapc_cmd_add(cmd, " (%s)", st);
	return (imapc_cmd_queue(cmd));
fail:
	imapc_cmd_free(cmd);
	return (NULL);
}

struct imap_cmd *
imap_client_namespace(struct imap_client *c, imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if ((cmd = imapc_cmd_new(c, K_NAMESPACE, done, arg)) == NULL)
		return (NULL);
	imapc_cmd_add(cmd, "NAMESPACE");
	return (imapc_cmd_queue(cmd));
}

struct imap_cmd *
imap_client_getquotaroot(struct imap_client *c, const char *mailbox,
    void (*quota)(struct imap_client *, const struct imap_quota *, void *),
    imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if (!imap_wire_mailbox_valid(mailbox))
		return (NULL);
	if ((cmd = imapc_cmd_new(c, K_QUOTA, done, arg)) == NULL)
		return (NULL);
	cmd->quota = quota;
	imapc_cmd_add(cmd, "GETQUOTAROOT ");
	if (add_mailbox(cmd, mailbox) == -1) {
		imapc_cmd_free(cmd);
		return (NULL);
	}
	return (imapc_cmd_queue(cmd));
}

/* mailbox_cmd - VERB mailbox [suffix] */
static struct imap_cmd *
mailbox_cmd(struct imap_client *c, const char *verb, const char *mailbox,
    const char *suffix, imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if (!imap_wire_mailbox_valid(mailbox))
		return (NULL);
	if ((cmd = imapc_cmd_new(c, K_GENERIC, done, arg)) == NULL)
		return (NULL);
	imapc_cmd_add(cmd, "%s ", verb);
	if (add_mailbox(cmd, mailbox) == -1) {
		imapc_cmd_free(cmd);
		return (NULL);
	}
	if (suffix != NULL)
		imapc_cmd_add(cmd, "%s", suffix);
	return (imapc_cmd_queue(cmd));
}

struct imap_cmd *
imap_client_create(struct imap_client *c, const char *mailbox,
    const char *special_use, imap_done_cb done, void *arg)
{
	char suffix[96];

	suffix[0] = '\0';
	if (special_use != NULL) {
		if (special_use[0] != '\\' || strlen(special_use) > 64 ||
		    !imap_flag_settable(special_use + 1))
			return (NULL);
		if (has_cap(c, IMAP_CAP_CREATE_SPECIAL_USE))
			snprintf(suffix, sizeof(suffix), " (USE (%s))",
			    special_use);
	}
	return (mailbox_cmd(c, "CREATE", mailbox, suffix, done, arg));
}

struct imap_cmd *
imap_client_delete(struct imap_client *c, const char *mailbox,
    imap_done_cb done, void *arg)
{
	return (mailbox_cmd(c, "DELETE", mailbox, NULL, done, arg));
}

struct imap_cmd *
imap_client_subscribe(struct imap_client *c, const char *mailbox,
    int subscribe, imap_done_cb done, void *arg)
{
	return (mailbox_cmd(c, subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE",
	    mailbox, NULL, done, arg));
}

struct imap_cmd *
imap_client_uid_fetch(struct imap_client *c, const char *uidset,
    const char *items, uint64_t changedsince, int vanished,
    const struct imap_fetch_cbs *cbs, imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if (!imap_wire_uidset_valid(uidset) || !imap_wire_text_valid(items))
		return (NULL);
	if (vanished && (changedsince == 0 ||
	    !(c->enabled & IMAP_ENABLE_QRESYNC)))
		return (NULL);
	if ((cmd = imapc_cmd_new(c, K_FETCH, done, arg)) == NULL)
		return (NULL);
	cmd->has_fcbs = 1;
	if (cbs != NULL)
		cmd->fcbs = *cbs;
	imapc_cmd_add(cmd, "UID FETCH %s %s", uidset, items);
	if (changedsince > 0)
		imapc_cmd_add(cmd, " (CHANGEDSINCE %llu%s)",
		    (unsigned long long)changedsince,
		    vanished ? " VANISHED" : "");
	return (imapc_cmd_queue(cmd));
}

struct imap_cmd *
imap_client_uid_search(struct imap_client *c, const char *criteria,
    void (*uid)(struct imap_client *, uint64_t, void *), imap_done_cb done,
    void *arg)
{
	struct imap_cmd *cmd;

	if (!imap_wire_text_valid(criteria))
		return (NULL);
	if ((cmd = imapc_cmd_new(c, K_SEARCH, done, arg)) == NULL)
		return (NULL);
	cmd->search_uid = uid;
	imapc_cmd_add(cmd, "UID SEARCH %s", criteria);
	return (imapc_cmd_queue(cmd));
}

struct imap_cmd *
imap_client_uid_store(struct imap_client *c, const char *uidset,
    const char *action, const char *flags, uint64_t unchangedsince,
    const struct imap_fetch_cbs *cbs, imap_done_cb done, void *arg)
{
	static const char *const actions[] = {
		"FLAGS", "+FLAGS", "-FLAGS", "FLAGS.SILENT", "+FLAGS.SILENT",
		"-FLAGS.SILENT",
	};
	struct imap_cmd *cmd;
	size_t i;

	if (!imap_wire_uidset_valid(uidset) || action == NULL || flags == NULL ||
	    imap_wire_flag_list_valid(flags, NULL, 0) == -1)
		return (NULL);
	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (strcasecmp(action, actions[i]) == 0)
			break;
	if (i == sizeof(actions) / sizeof(actions[0]))
		return (NULL);
	if ((cmd = imapc_cmd_new(c, K_STORE, done, arg)) == NULL)
		return (NULL);
	cmd->has_fcbs = 1;
	if (cbs != NULL)
		cmd->fcbs = *cbs;
	imapc_cmd_add(cmd, "UID STORE %s ", uidset);
	if (unchangedsince > 0)
		imapc_cmd_add(cmd, "(UNCHANGEDSINCE %llu) ",
		    (unsigned long long)unchangedsince);
	imapc_cmd_add(cmd, "%s (%s)", actions[i], flags);
	return (imapc_cmd_queue(cmd));
}

struct imap_cmd *
imap_client_uid_expunge(struct imap_client *c, const char *uidset,
    imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if (!imap_wire_uidset_valid(uidset))
		return (NULL);
	if ((cmd = imapc_cmd_new(c, K_GENERIC, done, arg)) == NULL)
		return (NULL);
	imapc_cmd_add(cmd, "UID EXPUNGE %s", uidset);
	return (imapc_cmd_queue(cmd));
}

struct imap_cmd *
imap_client_noop(struct imap_client *c, imap_done_cb done, void *arg)
{
	return (imap_client_command(c, "NOOP", done, arg));
}

struct imap_cmd *
imap_client_logout(struct imap_client *c, imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if ((cmd = imapc_cmd_new(c, K_LOGOUT, done, arg)) == NULL)
		return (NULL);
	imapc_cmd_add(cmd, "LOGOUT");
	return (imapc_cmd_queue(cmd));
}

struct imap_cmd *
imap_client_command(struct imap_client *c, const char *line,
    imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if (!imap_wire_text_valid(line))
		return (NULL);
	/* these change the stream: only through their own functions */
	if (strncasecmp(line, "STARTTLS", 8) == 0 ||
	    strncasecmp(line, "COMPRESS", 8) == 0 ||
	    strncasecmp(line, "AUTHENTICATE", 12) == 0 ||
	    strncasecmp(line, "LOGIN", 5) == 0 ||
	    strncasecmp(line, "LOGOUT", 6) == 0 ||
	    strncasecmp(line, "IDLE", 4) == 0 ||
	    strncasecmp(line, "APPEND", 6) == 0)
		return (NULL);
	if ((cmd = imapc_cmd_new(c, K_GENERIC, done, arg)) == NULL)
		return (NULL);
	imapc_cmd_add(cmd, "%s", line);
	return (imapc_cmd_queue(cmd));
}

/* ---- APPEND -------------------------------------------------------- */

struct imap_cmd *
imap_client_append(struct imap_client *c, const char *mailbox,
    const struct imap_append_cbs *cbs, imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if (!imap_wire_mailbox_valid(mailbox))
		return (NULL);
	if ((cmd = imapc_cmd_new(c, K_APPEND, done, arg)) == NULL)
		return (NULL);
	if (cbs != NULL)
		cmd->acbs = *cbs;
	if ((cmd->app_pending = evbuffer_new()) == NULL)
		goto fail;
	imapc_cmd_add(cmd, "APPEND ");
	if (add_mailbox(cmd, mailbox) == -1)
		goto fail;
	return (imapc_cmd_queue(cmd));
fail:
	imapc_cmd_free(cmd);
	return (NULL);
}

/* append_usable - the command is an APPEND of c that is still going */
static int
append_usable(struct imap_client *c, struct imap_cmd *cmd)
{
	return (c != NULL && cmd != NULL && cmd->c == c &&
	    cmd->kind == K_APPEND && cmd->st != CMD_DONE && !imapc_failed(c));
}

int
imap_client_append_msg(struct imap_client *c, struct imap_cmd *cmd,
    const struct imap_append_msg *m, char *err, size_t errlen)
{
	struct seg *s;
	int64_t t;
	int tz;

	if (!append_usable(c, cmd) || cmd->app_ended) {
		errbuf_set(err, errlen, "APPEND command is over");
		return (-1);
	}
	if (cmd->app_owed > 0) {
		errbuf_set(err, errlen, "previous message incomplete");
		return (-1);
	}
	if (cmd->app_nmsgs > 0 && !has_cap(c, IMAP_CAP_MULTIAPPEND)) {
		errbuf_set(err, errlen, "server has no MULTIAPPEND");
		return (-1);
	}
	if (m->flags != NULL && imap_wire_flag_list_valid(m->flags, err, errlen) == -1)
		return (-1);
	if (m->internaldate != NULL &&
	    imap_parse_date_time(m->internaldate, &t, &tz) == -1) {
		errbuf_set(err, errlen, "bad INTERNALDATE");
		return (-1);
	}
	if (m->utf8 && !utf8_mode(c)) {
		errbuf_set(err, errlen, "UTF8=ACCEPT is not enabled");
		return (-1);
	}
	if (imapc_cmd_new_seg(cmd) == -1) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	cmd->logline[0] = '\0';
	if (cmd->app_utf8)
		imapc_cmd_add(cmd, ")");
	if (m->flags != NULL && strspn(m->flags, " ") != strlen(m->flags))
		imapc_cmd_add(cmd, " (%s)", m->flags);
	if (m->internaldate != NULL)
		imapc_cmd_add(cmd, " \"%s\"", m->internaldate);
	s = cmd_seg(cmd);
	s->has_literal = 1;
	s->literal = m->size;
	/* RFC 6855 §4: append-data =/ "UTF8" SP "(" literal8 ")" */
	if (m->utf8)
		imapc_cmd_add(cmd, " UTF8 (~");
	else
		imapc_cmd_add(cmd, " ");
	/* literal8's "+" needs BINARY beside LITERAL+ (RFC 4466 §4.3) */
	if (nonsync_ok(c, m->size) && (!m->utf8 || has_cap(c,
	    IMAP_CAP_BINARY)))
		imapc_cmd_add(cmd, "{%llu+}\r\n", (unsigned long long)m->size);
	else {
		imapc_cmd_add(cmd, "{%llu}\r\n", (unsigned long long)m->size);
		s->sync = 1;
	}
	cmd->app_utf8 = m->utf8;
	cmd->logline[strcspn(cmd->logline, "\r")] = '\0';
	log_debug("%s: C: %s message %zu:%s", c->id, cmd->tag[0] ? cmd->tag :
	    "(queued)", cmd->app_nmsgs + 1, cmd->logline);
	cmd->app_owed = m->size;
	cmd->app_nmsgs++;
	imapc_writer_run(c);
	return (0);
}

int
imap_client_append_data(struct imap_client *c, struct imap_cmd *cmd,
    const void *data, size_t len)
{
	int direct, full;

	if (!append_usable(c, cmd) || cmd->app_ended)
		return (-1);
	if (len > cmd->app_owed) {
		imapc_fail(c, IMAP_ERR_PERM, "APPEND data exceeds the "
		    "declared message size");
		return (-1);
	}
	cmd->app_owed -= len;
	direct = c->writer == cmd && !cmd->waiting_cont && cmd->app_left > 0 &&
	    evbuffer_get_length(cmd->app_pending) == 0;
	if (direct) {
		if (bufferevent_write(c->top, data, len) == -1) {
			imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
			return (-1);
		}
		cmd->app_left -= len;
		if (cmd->app_left == 0)
			imapc_writer_run(c);
	} else if (len > 0 && evbuffer_add(cmd->app_pending, data, len) == -1) {
		imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
		return (-1);
	}
	full = c->writer != cmd || cmd->waiting_cont ||
	    evbuffer_get_length(cmd->app_pending) > 0 ||
	    imap_client_output_pending(c) > c->out_hiwat;
	if (full)
		cmd->app_want_writable = 1;
	return (full ? 1 : 0);
}

int
imap_client_append_end(struct imap_client *c, struct imap_cmd *cmd)
{
	if (!append_usable(c, cmd) || cmd->app_ended || cmd->app_owed > 0 ||
	    cmd->app_nmsgs == 0)
		return (-1);
	if (imapc_cmd_new_seg(cmd) == -1) {
		imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
		return (-1);
	}
	if (cmd->app_utf8)
		evbuffer_add(cmd_seg(cmd)->buf, ")", 1);
	evbuffer_add(cmd_seg(cmd)->buf, "\r\n", 2);
	cmd->app_ended = 1;
	imapc_writer_run(c);
	imapc_arm_timeouts(c);
	return (0);
}
