/*
 * imap_probe.c - drives syncd/imap_client.c against a real server for
 * tests/integration/test_imap_client.sh: a tiny interpreter that logs
 * in, runs the commands given as arguments one after the other, prints
 * one line per result and exits 0 (all good), 1 (a command failed),
 * 2 (the connection failed) or 3 (usage).
 *
 *   imap_probe [options] HOST PORT USER PASS 'COMMAND ARGS' ...
 *
 * Options: --tls implicit|starttls|none (default none), --ca FILE,
 * --no-verify, --tls-name NAME, --auth auto|plain|login|xoauth2,
 * --compress, --enable condstore,qresync,utf8, --window N, --timeout S,
 * --literal-plus-max N, --debug (command log on stderr).
 *
 * Commands (a leading "-" lets the command fail without failing the run):
 *   caps | noop | logout | hwm | namespace
 *   list [PATTERN]           special-use and subscription attributes
 *   liststatus               LIST "" "*" RETURN (STATUS (MESSAGES UIDNEXT))
 *   lsub
 *   create NAME [\Use]       NAME in UTF-8, sent in the server's form
 *   delete NAME | subscribe NAME
 *   select NAME | examine NAME
 *   status NAME
 *   append NAME FILE [FLAGS [DATE]]   FILE streamed from disk
 *   multiappend NAME FILE...          one APPEND command (MULTIAPPEND)
 *   fetch NAME UIDSET        bodies streamed into SHA-256
 *   fetchslow NAME UIDSET    the same, pausing the read after each chunk
 *   meta NAME UIDSET         UID FLAGS INTERNALDATE RFC822.SIZE
 *   changed NAME MODSEQ      flag changes (and VANISHED with QRESYNC)
 *   expunge NAME UIDSET      UID STORE +FLAGS \Deleted, UID EXPUNGE
 *   search NAME CRITERIA
 *   store NAME UIDSET ACTION FLAGS
 *   pipeline N NAME          N STATUS commands queued at once
 *   copy SRC UIDSET DST DSTUSER DSTPASS   FETCH streamed into APPEND over
 *                            a second connection, with flow control
 *
 * The probe never holds a message in memory: "hwm" prints VmHWM so the
 * test can check that streaming 20 MB costs next to nothing.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "imap_client.h"
#include "log.h"
#include "tls.h"

#define CHUNK	65536

struct probe;

/* One message of a copy job. */
struct copy_msg {
	uint64_t	 uid;
	uint64_t	 size;
	char		 flags[1024];
	char		 date[40];
};

struct probe {
	struct event_base	*base;
	struct imap_client_opts	 o;
	SSL_CTX			*ctx;
	struct imap_client	*c;
	struct imap_client	*dst;		/* copy's destination */
	char			**cmds;
	int			 ncmds, next;
	int			 rc;
	int			 may_fail;
	const char		*cur;		/* command being run */
	char			 words[16][4096];
	int			 nwords;

	/* append from files */
	struct imap_cmd		*app;
	int			 fd;
	int			 app_files_next, app_files_end;
	int			 app_reading;

	/* fetch */
	EVP_MD_CTX		*md;
	uint64_t		 body_bytes;
	int			 slow;
	struct event		*ev_resume;
	unsigned		 fetched;

	/* pipeline */
	unsigned		 pl_total, pl_done, pl_ok, pl_max;

	/* copy */
	struct copy_msg		*msgs;
	size_t			 nmsgs, amsgs, mi;
	struct imap_cmd		*capp;
	int			 dst_ready;
	int			 src_paused;
	unsigned		 pauses;
};

static void	run_next(struct probe *p);
static void	cmd_done(struct imap_client *c, const struct imap_result *r,
		    void *arg);

static void
finish(struct probe *p)
{
	imap_client_free(&p->dst);
	imap_client_free(&p->c);
	event_base_loopexit(p->base, NULL);
}

static void
print_result(const char *what, const struct imap_result *r)
{
	printf("%s: status=%s class=%s code=%s args=%s backoff=%" PRIu64
	    " text=%s\n", what, imap_status_name(r->status),
	    imap_errclass_name(r->errclass), r->code[0] ? r->code : "-",
	    r->code_args[0] ? r->code_args : "-", r->backoff_ms, r->text);
}

/* step_failed - a command failed: go on when allowed, else stop */
static void
step_failed(struct probe *p, const struct imap_result *r)
{
	print_result("error", r);
	fflush(stdout);
	if (r->status == IMAP_ERROR || !p->may_fail) {
		if (!p->may_fail || p->rc == 0)
			p->rc = r->status == IMAP_ERROR ? 2 : 1;
		if (r->status == IMAP_ERROR || !p->may_fail) {
			finish(p);
			return;
		}
	}
	run_next(p);
}

/* cmd_done - the generic completion of one probe command */
static void
cmd_done(struct imap_client *c, const struct imap_result *r, void *arg)
{
	struct probe *p = arg;

	(void)c;
	if (r->status == IMAP_CANCELLED)
		return;
	if (r->status != IMAP_OK) {
		step_failed(p, r);
		return;
	}
	if (r->mailbox != NULL)
		printf("select: exists=%" PRIu64 " uidvalidity=%" PRIu64
		    " uidnext=%" PRIu64 " highestmodseq=%" PRIu64
		    " readonly=%d permflags=%zu\n", r->mailbox->exists,
		    r->mailbox->uidvalidity, r->mailbox->uidnext,
		    r->mailbox->highestmodseq, r->mailbox->readonly,
		    r->mailbox->permflags.n);
	if (r->status_info != NULL)
		printf("status: mailbox=%s messages=%" PRIu64 " uidnext=%" PRIu64
		    " uidvalidity=%" PRIu64 " highestmodseq=%" PRIu64 "\n",
		    r->status_info->mailbox, r->status_info->messages,
		    r->status_info->uidnext, r->status_info->uidvalidity,
		    r->status_info->highestmodseq);
	if (r->appenduid_validity != 0)
		printf("append: uidvalidity=%" PRIu64 " uid=%" PRIu64
		    " set=%s\n", r->appenduid_validity, r->appenduid_first,
		    r->appenduid_set);
	if (r->ns_prefix != NULL)
		printf("namespace: prefix=\"%s\" delim=%c\n", r->ns_prefix,
		    r->ns_delim ? r->ns_delim : '-');
	printf("ok: %s\n", p->cur);
	fflush(stdout);
	run_next(p);
}

/* ---- list ----------------------------------------------------------------------- */

static void
list_cb(struct imap_client *c, const struct imap_list_entry *e, void *arg)
{
	size_t i;

	(void)c;
	(void)arg;
	printf("list: name=%s wire=%s delim=%c attrs=", e->name_utf8 ?
	    e->name_utf8 : "(undecodable)", e->name, e->delim ? e->delim : '-');
	for (i = 0; i < e->attributes.n; i++)
		printf("%s%s", i ? "," : "", e->attributes.v[i]);
	printf("%s%s\n", e->attrs & IMAP_MBOX_SUBSCRIBED ? " subscribed" : "",
	    e->attrs & IMAP_MBOX_SENT ? " special=sent" :
	    e->attrs & IMAP_MBOX_TRASH ? " special=trash" :
	    e->attrs & IMAP_MBOX_DRAFTS ? " special=drafts" :
	    e->attrs & IMAP_MBOX_JUNK ? " special=junk" : "");
}

static void
list_status_cb(struct imap_client *c, const struct imap_status_info *st,
    void *arg)
{
	(void)c;
	(void)arg;
	printf("list-status: mailbox=%s messages=%" PRIu64 " uidnext=%" PRIu64
	    "\n", st->mailbox, st->messages, st->uidnext);
}

/* ---- append from files --------------------------------------------------------- */

static void	append_pump(struct probe *p);

static void
append_writable(struct imap_client *c, struct imap_cmd *cmd, void *arg)
{
	(void)c;
	(void)cmd;
	append_pump(arg);
}

/* append_open - declare the next file as the next message */
static int
append_open(struct probe *p)
{
	struct imap_append_msg m;
	struct stat st;
	char err[256];
	const char *file = p->words[p->app_files_next];

	if ((p->fd = open(file, O_RDONLY)) == -1 || fstat(p->fd, &st) == -1) {
		printf("error: %s: %s\n", file, strerror(errno));
		return (-1);
	}
	memset(&m, 0, sizeof(m));
	m.size = (uint64_t)st.st_size;
	if (p->app_files_end == p->app_files_next + 1 && p->nwords > 3 &&
	    strcmp(p->words[0], "append") == 0) {
		m.flags = p->words[3];
		if (p->nwords > 4)
			m.internaldate = p->words[4];
	}
	if (imap_client_append_msg(p->c, p->app, &m, err, sizeof(err)) == -1) {
		printf("error: append_msg: %s\n", err);
		return (-1);
	}
	p->app_files_next++;
	return (0);
}

/*
 * append_pump - read the file and hand chunks to the client until it
 * says stop (1) or the file is done; re-entered from writable().
 */
static void
append_pump(struct probe *p)
{
	char buf[CHUNK];
	ssize_t n;
	int r;

	if (p->app_reading)
		return;		/* no recursion: the loop below goes on */
	p->app_reading = 1;
	for (;;) {
		if (p->fd == -1) {
			if (p->app_files_next == p->app_files_end) {
				if (imap_client_append_end(p->c, p->app) == -1)
					printf("error: append_end refused\n");
				break;
			}
			if (append_open(p) == -1) {
				p->rc = 1;
				finish(p);
				break;
			}
		}
		if ((n = read(p->fd, buf, sizeof(buf))) <= 0) {
			close(p->fd);
			p->fd = -1;
			continue;
		}
		r = imap_client_append_data(p->c, p->app, buf, (size_t)n);
		if (r == -1)
			break;		/* done() reports why */
		if (r == 1)
			break;		/* wait for writable() */
	}
	p->app_reading = 0;
}

static void
append_done(struct imap_client *c, const struct imap_result *r, void *arg)
{
	struct probe *p = arg;

	if (p->fd != -1) {
		close(p->fd);
		p->fd = -1;
	}
	p->app = NULL;
	cmd_done(c, r, arg);
}

static int
start_append(struct probe *p, int first, int end)
{
	static const struct imap_append_cbs acbs = { append_writable };

	p->fd = -1;
	p->app_files_next = first;
	p->app_files_end = end;
	if ((p->app = imap_client_append(p->c, p->words[1], &acbs,
	    append_done, p)) == NULL)
		return (-1);
	append_pump(p);
	return (0);
}

/* ---- fetch ------------------------------------------------------------------------ */

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;

	(void)fd;
	(void)what;
	imap_client_resume_read(p->c);
}

static void
body_begin(struct imap_client *c, const struct imap_fetch_msg *m,
    const char *section, uint64_t size, void *arg)
{
	struct probe *p = arg;

	(void)c;
	(void)m;
	(void)section;
	(void)size;
	EVP_DigestInit_ex(p->md, EVP_sha256(), NULL);
	p->body_bytes = 0;
}

static void
body_data(struct imap_client *c, const void *data, size_t len, void *arg)
{
	struct probe *p = arg;
	struct timeval tv = { 0, 0 };

	EVP_DigestUpdate(p->md, data, len);
	p->body_bytes += len;
	if (p->slow) {
		/* a slow consumer: stop the flow, go on in the next loop */
		imap_client_pause_read(c);
		p->pauses++;
		evtimer_add(p->ev_resume, &tv);
	}
}

static void
body_end(struct imap_client *c, void *arg)
{
	(void)c;
	(void)arg;
}

static void
print_msg(const char *what, const struct imap_fetch_msg *m)
{
	size_t i;

	printf("%s: uid=%" PRIu64 " flags=(", what, m->uid);
	for (i = 0; i < m->flags.n; i++)
		printf("%s%s", i ? " " : "", m->flags.v[i]);
	printf(") date=\"%s\" size=%" PRIu64, m->internaldate ?
	    m->internaldate : "", m->size);
}

static void
fetch_msg(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	struct probe *p = arg;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0, i;

	(void)c;
	if (!(m->have & IMAP_FETCH_BODY)) {
		print_msg("meta", m);
		printf("\n");
		return;
	}
	EVP_DigestFinal_ex(p->md, md, &mdlen);
	printf("fetch: uid=%" PRIu64 " bytes=%" PRIu64 " sha256=", m->uid,
	    p->body_bytes);
	for (i = 0; i < mdlen; i++)
		printf("%02x", md[i]);
	printf("\n");
	p->fetched++;
}

static void
vanished(struct imap_client *c, uint64_t lo, uint64_t hi, int earlier,
    void *arg)
{
	(void)c;
	(void)arg;
	printf("vanished: %" PRIu64 ":%" PRIu64 " earlier=%d\n", lo, hi,
	    earlier);
}

static void
changed_msg(struct imap_client *c, const struct imap_fetch_msg *m,
    void *arg)
{
	(void)c;
	(void)arg;
	print_msg("changed", m);
	printf(" modseq=%" PRIu64 "\n", m->modseq);
}

static const struct imap_fetch_cbs fetch_cbs = {
	body_begin, body_data, body_end, fetch_msg, NULL,
};
static const struct imap_fetch_cbs changed_cbs = {
	NULL, NULL, NULL, changed_msg, vanished,
};

static void
fetch_done(struct imap_client *c, const struct imap_result *r, void *arg)
{
	struct probe *p = arg;

	if (p->slow)
		printf("fetchslow: pauses=%u\n", p->pauses);
	cmd_done(c, r, arg);
}

/* ---- search ------------------------------------------------------------------------ */

static void
search_uid(struct imap_client *c, uint64_t uid, void *arg)
{
	(void)c;
	(void)arg;
	printf("search: uid=%" PRIu64 "\n", uid);
}

/* ---- pipeline ---------------------------------------------------------------------- */

static void
pipeline_done(struct imap_client *c, const struct imap_result *r, void *arg)
{
	struct probe *p = arg;
	unsigned inflight = imap_client_in_flight(c);

	if (r->status == IMAP_CANCELLED)
		return;
	/* this one is out already: the others still in flight */
	if (inflight + 1 > p->pl_max)
		p->pl_max = inflight + 1;
	p->pl_done++;
	if (r->status == IMAP_OK && r->status_info != NULL &&
	    r->status_info->have & IMAP_STATUS_MESSAGES)
		p->pl_ok++;
	if (r->status == IMAP_ERROR) {
		if (p->pl_done == 1)
			step_failed(p, r);
		return;
	}
	if (p->pl_done == p->pl_total) {
		printf("pipeline: n=%u ok=%u max_inflight=%u\n", p->pl_total,
		    p->pl_ok, p->pl_max);
		if (p->pl_ok != p->pl_total)
			p->rc = 1;
		printf("ok: %s\n", p->cur);
		run_next(p);
	}
}

/* ---- copy: FETCH streamed into APPEND -------------------------------------------- */

static void	copy_next(struct probe *p);

static void
copy_meta(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	struct probe *p = arg;
	struct copy_msg *cm;
	size_t i, o = 0;

	(void)c;
	if (!(m->have & IMAP_FETCH_UID) || !(m->have & IMAP_FETCH_SIZE))
		return;
	if (p->nmsgs == p->amsgs) {
		p->amsgs = p->amsgs ? p->amsgs * 2 : 16;
		p->msgs = reallocarray(p->msgs, p->amsgs, sizeof(*p->msgs));
		if (p->msgs == NULL)
			abort();
	}
	cm = &p->msgs[p->nmsgs++];
	memset(cm, 0, sizeof(*cm));
	cm->uid = m->uid;
	cm->size = m->size;
	/* only what the destination may set: the sync layer filters by
	 * PERMANENTFLAGS too */
	for (i = 0; i < m->flags.n; i++)
		if (imap_flag_settable(m->flags.v[i]) &&
		    o + strlen(m->flags.v[i]) + 2 < sizeof(cm->flags))
			o += (size_t)snprintf(cm->flags + o,
			    sizeof(cm->flags) - o, "%s%s", o ? " " : "",
			    m->flags.v[i]);
	if (m->internaldate != NULL)
		snprintf(cm->date, sizeof(cm->date), "%s", m->internaldate);
}

static void
copy_writable(struct imap_client *c, struct imap_cmd *cmd, void *arg)
{
	struct probe *p = arg;

	(void)c;
	(void)cmd;
	if (p->src_paused) {
		p->src_paused = 0;
		imap_client_resume_read(p->c);
	}
}

static void
copy_body_begin(struct imap_client *c, const struct imap_fetch_msg *m,
    const char *section, uint64_t size, void *arg)
{
	struct probe *p = arg;
	struct copy_msg *cm = &p->msgs[p->mi];
	struct imap_append_msg am;
	char err[256];

	(void)c;
	(void)m;
	(void)section;
	memset(&am, 0, sizeof(am));
	am.flags = cm->flags;
	am.internaldate = cm->date[0] ? cm->date : NULL;
	/* the literal's length is exact; RFC822.SIZE need not be */
	am.size = size;
	if (imap_client_append_msg(p->dst, p->capp, &am, err,
	    sizeof(err)) == -1)
		printf("error: copy append_msg: %s\n", err);
}

static void
copy_body_data(struct imap_client *c, const void *data, size_t len,
    void *arg)
{
	struct probe *p = arg;

	if (imap_client_append_data(p->dst, p->capp, data, len) == 1 &&
	    !p->src_paused) {
		/* the destination is behind: stop reading the source */
		p->src_paused = 1;
		p->pauses++;
		imap_client_pause_read(c);
	}
}

static void
copy_body_end(struct imap_client *c, void *arg)
{
	struct probe *p = arg;

	(void)c;
	if (imap_client_append_end(p->dst, p->capp) == -1)
		printf("error: copy append_end refused\n");
}

static void
copy_fetch_done(struct imap_client *c, const struct imap_result *r,
    void *arg)
{
	struct probe *p = arg;

	(void)c;
	if (r->status != IMAP_OK && r->status != IMAP_CANCELLED) {
		/* the source failed mid-body: abandon the destination */
		imap_client_free(&p->dst);
		step_failed(p, r);
	}
}

static void
copy_append_done(struct imap_client *c, const struct imap_result *r,
    void *arg)
{
	struct probe *p = arg;

	(void)c;
	p->capp = NULL;
	if (r->status == IMAP_CANCELLED)
		return;
	if (r->status != IMAP_OK) {
		step_failed(p, r);
		return;
	}
	printf("copy: uid=%" PRIu64 " -> uid=%" PRIu64 " size=%" PRIu64 "\n",
	    p->msgs[p->mi].uid, r->appenduid_first, p->msgs[p->mi].size);
	p->mi++;
	copy_next(p);
}

static void
copy_next(struct probe *p)
{
	static const struct imap_append_cbs acbs = { copy_writable };
	static const struct imap_fetch_cbs fcbs = {
		copy_body_begin, copy_body_data, copy_body_end, NULL, NULL,
	};
	char uid[32];

	if (p->mi == p->nmsgs) {
		printf("copy: done n=%zu pauses=%u\n", p->nmsgs, p->pauses);
		imap_client_free(&p->dst);
		printf("ok: %s\n", p->cur);
		run_next(p);
		return;
	}
	snprintf(uid, sizeof(uid), "%" PRIu64, p->msgs[p->mi].uid);
	p->capp = imap_client_append(p->dst, p->words[3], &acbs,
	    copy_append_done, p);
	if (p->capp == NULL || imap_client_uid_fetch(p->c, uid,
	    "(UID BODY.PEEK[])", 0, 0, &fcbs, copy_fetch_done, p) == NULL) {
		printf("error: cannot queue copy commands\n");
		p->rc = 1;
		finish(p);
	}
}

static void
copy_meta_done(struct imap_client *c, const struct imap_result *r,
    void *arg)
{
	struct probe *p = arg;

	(void)c;
	if (r->status != IMAP_OK) {
		step_failed(p, r);
		return;
	}
	if (p->dst_ready)
		copy_next(p);
	else
		p->dst_ready = -1;	/* metadata first: wait for dst */
}

static void
dst_event(struct imap_client *c, enum imap_client_event ev,
    const struct imap_result *r, void *arg)
{
	struct probe *p = arg;

	(void)c;
	if (ev == IMAP_CLIENT_READY) {
		if (p->dst_ready == -1) {
			p->dst_ready = 1;
			copy_next(p);
		} else
			p->dst_ready = 1;
		return;
	}
	if (r->status != IMAP_OK) {
		print_result("closed-dst", r);
		p->rc = 2;
		finish(p);
	}
}

static int
start_copy(struct probe *p)
{
	static const struct imap_fetch_cbs mcbs = {
		NULL, NULL, NULL, copy_meta, NULL,
	};
	struct imap_client_opts d = p->o;
	char err[256];

	d.user = p->words[4];
	d.secret = p->words[5];
	d.log_id = "dst";
	p->nmsgs = p->mi = 0;
	p->dst_ready = 0;
	if ((p->dst = imap_client_new(p->base, &d, dst_event, p, err,
	    sizeof(err))) == NULL) {
		printf("error: %s\n", err);
		return (-1);
	}
	if (imap_client_select(p->c, p->words[1], IMAP_SELECT_READONLY, NULL,
	    NULL, NULL, NULL) == NULL ||
	    imap_client_uid_fetch(p->c, p->words[2], "(UID FLAGS INTERNALDATE "
	    "RFC822.SIZE)", 0, 0, &mcbs, copy_meta_done, p) == NULL)
		return (-1);
	return (0);
}

/* ---- the interpreter --------------------------------------------------------------- */

static int
split(struct probe *p, const char *cmd)
{
	const char *s = cmd;
	size_t n;

	p->nwords = 0;
	while (*s != '\0') {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		if (p->nwords == 16)
			return (-1);
		if (*s == '\'') {	/* 'a quoted word' */
			s++;
			n = strcspn(s, "'");
		} else
			n = strcspn(s, " ");
		if (n >= sizeof(p->words[0]))
			return (-1);
		memcpy(p->words[p->nwords], s, n);
		p->words[p->nwords++][n] = '\0';
		s += n;
		if (*s == '\'')
			s++;
	}
	return (p->nwords > 0 ? 0 : -1);
}

static void
print_hwm(void)
{
	char line[256];
	FILE *fp;

	if ((fp = fopen("/proc/self/status", "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0)
			printf("hwm: kb=%ld\n", strtol(line + 6, NULL, 10));
	fclose(fp);
}

/* wire - the UTF-8 name in this server's form */
static const char *
wire(struct probe *p, const char *utf8, char *buf, size_t len)
{
	char err[128];

	if (imap_client_mailbox_encode(p->c, utf8, buf, len, err,
	    sizeof(err)) == -1) {
		printf("error: name: %s\n", err);
		return (NULL);
	}
	return (buf);
}

static void
run_next(struct probe *p)
{
	static const struct imap_list_cbs lcbs = { list_cb, list_status_cb };
	static const struct imap_fetch_cbs mcbs = {
		NULL, NULL, NULL, fetch_msg, NULL,
	};
	const char *cmd, *w0;
	struct imap_cmd *q = NULL;
	char name[1024];
	unsigned i;
	size_t k;

	for (;;) {
		if (p->c == NULL)
			return;
		if (p->next == p->ncmds) {
			if (imap_client_logout(p->c, NULL, NULL) == NULL)
				finish(p);
			return;
		}
		cmd = p->cmds[p->next++];
		p->may_fail = cmd[0] == '-';
		if (p->may_fail)
			cmd++;
		p->cur = cmd;
		if (split(p, cmd) == -1)
			goto usage;
		w0 = p->words[0];
		printf("> %s\n", cmd);
		fflush(stdout);
		if (strcmp(w0, "caps") == 0) {
			static const char *const names[] = {
				"IMAP4rev1", "LITERAL+", "LITERAL-",
				"MULTIAPPEND", "UIDPLUS", "CONDSTORE", "QRESYNC",
				"SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS",
				"COMPRESS=DEFLATE", "ID", "ENABLE", "SASL-IR",
				"UTF8=ACCEPT", "NAMESPACE", "APPENDLIMIT",
			};
			printf("caps:");
			for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
				if (imap_client_has_capability(p->c, names[k]))
					printf(" %s", names[k]);
			printf("\ncaps: tls=%d compressed=%d enabled=%u\n",
			    imap_client_tls(p->c), imap_client_compressed(p->c),
			    imap_client_enabled(p->c));
			continue;
		}
		if (strcmp(w0, "hwm") == 0) {
			print_hwm();
			continue;
		}
		if (strcmp(w0, "noop") == 0)
			q = imap_client_noop(p->c, cmd_done, p);
		else if (strcmp(w0, "logout") == 0) {
			p->next = p->ncmds;
			q = imap_client_logout(p->c, NULL, NULL);
			if (q != NULL)
				return;
		} else if (strcmp(w0, "namespace") == 0)
			q = imap_client_namespace(p->c, cmd_done, p);
		else if (strcmp(w0, "list") == 0)
			q = imap_client_list(p->c, "", p->nwords > 1 ?
			    p->words[1] : "*", IMAP_LIST_SPECIAL_USE |
			    IMAP_LIST_RETURN_SUBSCRIBED, 0, &lcbs, cmd_done, p);
		else if (strcmp(w0, "liststatus") == 0)
			q = imap_client_list(p->c, "", "*", IMAP_LIST_STATUS,
			    IMAP_STATUS_MESSAGES | IMAP_STATUS_UIDNEXT, &lcbs,
			    cmd_done, p);
		else if (strcmp(w0, "lsub") == 0)
			q = imap_client_lsub(p->c, "", "*", &lcbs, cmd_done, p);
		else if (p->nwords < 2)
			goto usage;
		else if (wire(p, p->words[1], name, sizeof(name)) == NULL)
			goto fail;
		else if (snprintf(p->words[1], sizeof(p->words[1]), "%s",
		    name) < 0)
			goto fail;
		else if (strcmp(w0, "create") == 0)
			q = imap_client_create(p->c, name, p->nwords > 2 ?
			    p->words[2] : NULL, cmd_done, p);
		else if (strcmp(w0, "delete") == 0)
			q = imap_client_delete(p->c, name, cmd_done, p);
		else if (strcmp(w0, "subscribe") == 0)
			q = imap_client_subscribe(p->c, name, 1, cmd_done, p);
		else if (strcmp(w0, "select") == 0 ||
		    strcmp(w0, "examine") == 0)
			q = imap_client_select(p->c, name, strcmp(w0,
			    "examine") == 0 ? IMAP_SELECT_READONLY |
			    IMAP_SELECT_CONDSTORE : IMAP_SELECT_CONDSTORE, NULL,
			    NULL, cmd_done, p);
		else if (strcmp(w0, "status") == 0)
			q = imap_client_status(p->c, name, IMAP_STATUS_MESSAGES |
			    IMAP_STATUS_UIDNEXT | IMAP_STATUS_UIDVALIDITY |
			    IMAP_STATUS_HIGHESTMODSEQ, cmd_done, p);
		else if (strcmp(w0, "pipeline") == 0) {
			p->pl_total = (unsigned)strtoul(p->words[1], NULL, 10);
			p->pl_done = p->pl_ok = p->pl_max = 0;
			if (p->nwords < 3 || wire(p, p->words[2], name,
			    sizeof(name)) == NULL || p->pl_total == 0)
				goto usage;
			for (i = 0; i < p->pl_total; i++)
				if (imap_client_status(p->c, name,
				    IMAP_STATUS_MESSAGES, pipeline_done,
				    p) == NULL)
					goto fail;
			return;
		} else if (strcmp(w0, "append") == 0) {
			if (p->nwords < 3 || start_append(p, 2, 3) == -1)
				goto fail;
			return;
		} else if (strcmp(w0, "multiappend") == 0) {
			if (p->nwords < 3 || start_append(p, 2,
			    p->nwords) == -1)
				goto fail;
			return;
		} else if (p->nwords < 3)
			goto usage;
		else if (strcmp(w0, "fetch") == 0 ||
		    strcmp(w0, "fetchslow") == 0) {
			p->slow = strcmp(w0, "fetchslow") == 0;
			p->pauses = 0;
			if (imap_client_select(p->c, name, IMAP_SELECT_READONLY,
			    NULL, NULL, NULL, NULL) == NULL)
				goto fail;
			q = imap_client_uid_fetch(p->c, p->words[2],
			    "(UID BODY.PEEK[])", 0, 0, &fetch_cbs, fetch_done,
			    p);
		} else if (strcmp(w0, "meta") == 0) {
			if (imap_client_select(p->c, name, IMAP_SELECT_READONLY,
			    NULL, NULL, NULL, NULL) == NULL)
				goto fail;
			q = imap_client_uid_fetch(p->c, p->words[2],
			    "(UID FLAGS INTERNALDATE RFC822.SIZE)", 0, 0, &mcbs,
			    cmd_done, p);
		} else if (strcmp(w0, "changed") == 0) {
			/* UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE n [VANISHED]) */
			if (imap_client_select(p->c, name, IMAP_SELECT_READONLY |
			    IMAP_SELECT_CONDSTORE, NULL, NULL, NULL, NULL) == NULL)
				goto fail;
			q = imap_client_uid_fetch(p->c, "1:*", "(UID FLAGS)",
			    strtoull(p->words[2], NULL, 10),
			    (imap_client_enabled(p->c) & IMAP_ENABLE_QRESYNC) != 0,
			    &changed_cbs, cmd_done, p);
		} else if (strcmp(w0, "expunge") == 0) {
			if (imap_client_select(p->c, name, 0, NULL, NULL, NULL,
			    NULL) == NULL || imap_client_uid_store(p->c,
			    p->words[2], "+FLAGS.SILENT", "\\Deleted", 0, NULL,
			    NULL, NULL) == NULL)
				goto fail;
			q = imap_client_uid_expunge(p->c, p->words[2], cmd_done,
			    p);
		} else if (strcmp(w0, "search") == 0) {
			if (imap_client_select(p->c, name, IMAP_SELECT_READONLY,
			    NULL, NULL, NULL, NULL) == NULL)
				goto fail;
			q = imap_client_uid_search(p->c, p->words[2],
			    search_uid, cmd_done, p);
		} else if (strcmp(w0, "store") == 0 && p->nwords == 5) {
			if (imap_client_select(p->c, name, 0, NULL, NULL, NULL,
			    NULL) == NULL)
				goto fail;
			q = imap_client_uid_store(p->c, p->words[2],
			    p->words[3], p->words[4], 0, NULL, cmd_done, p);
		} else if (strcmp(w0, "copy") == 0 && p->nwords == 6) {
			if (wire(p, p->words[3], name, sizeof(name)) == NULL)
				goto fail;
			snprintf(p->words[3], sizeof(p->words[3]), "%s", name);
			if (start_copy(p) == -1)
				goto fail;
			return;
		} else
			goto usage;
		if (q == NULL)
			goto fail;
		return;
	}
usage:
	printf("error: bad command \"%s\"\n", p->cur);
	p->rc = 3;
	finish(p);
	return;
fail:
	printf("error: command \"%s\" refused by the client\n", p->cur);
	if (p->may_fail) {
		run_next(p);
		return;
	}
	p->rc = 1;
	finish(p);
}

static void
conn_event(struct imap_client *c, enum imap_client_event ev,
    const struct imap_result *r, void *arg)
{
	struct probe *p = arg;
	static const char *const names[] = { "STARTTLS", "AUTH=PLAIN",
	    "COMPRESS=DEFLATE", "LITERAL+", "MULTIAPPEND", "UIDPLUS" };
	size_t k;

	if (ev == IMAP_CLIENT_READY) {
		printf("ready: tls=%d compressed=%d caps=", imap_client_tls(c),
		    imap_client_compressed(c));
		for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			if (imap_client_has_capability(c, names[k]))
				printf("%s,", names[k]);
		printf("\n");
		fflush(stdout);
		run_next(p);
		return;
	}
	print_result("closed", r);
	if (r->status != IMAP_OK)
		p->rc = 2;
	finish(p);
}

static void
usage(void)
{
	fprintf(stderr, "usage: imap_probe [--tls implicit|starttls|none] "
	    "[--ca FILE] [--no-verify] [--tls-name NAME] [--auth MECH] "
	    "[--compress] [--enable LIST] [--window N] [--timeout S] "
	    "[--literal-plus-max N] [--debug] HOST PORT USER PASS CMD...\n");
	exit(3);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "tls", required_argument, NULL, 't' },
		{ "ca", required_argument, NULL, 'a' },
		{ "no-verify", no_argument, NULL, 'n' },
		{ "tls-name", required_argument, NULL, 'N' },
		{ "auth", required_argument, NULL, 'A' },
		{ "compress", no_argument, NULL, 'z' },
		{ "enable", required_argument, NULL, 'e' },
		{ "window", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "literal-plus-max", required_argument, NULL, 'L' },
		{ "debug", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct probe p;
	const char *ca = NULL;
	char err[256];
	int ch, debug = 0;

	memset(&p, 0, sizeof(p));
	p.fd = -1;
	p.o.tls = IMAP_TLS_NONE;
	while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (ch) {
		case 't':
			if (strcmp(optarg, "implicit") == 0)
				p.o.tls = IMAP_TLS_IMPLICIT;
			else if (strcmp(optarg, "starttls") == 0)
				p.o.tls = IMAP_TLS_STARTTLS;
			else if (strcmp(optarg, "none") == 0)
				p.o.tls = IMAP_TLS_NONE;
			else
				usage();
			break;
		case 'a':
			ca = optarg;
			break;
		case 'n':
			p.o.tls_no_verify = 1;
			break;
		case 'N':
			p.o.tls_name = optarg;
			break;
		case 'A':
			if (strcmp(optarg, "plain") == 0)
				p.o.auth = IMAP_AUTH_PLAIN;
			else if (strcmp(optarg, "login") == 0)
				p.o.auth = IMAP_AUTH_LOGIN;
			else if (strcmp(optarg, "xoauth2") == 0)
				p.o.auth = IMAP_AUTH_XOAUTH2;
			else if (strcmp(optarg, "auto") == 0)
				p.o.auth = IMAP_AUTH_AUTO;
			else
				usage();
			break;
		case 'z':
			p.o.compress = 1;
			break;
		case 'e':
			if (strstr(optarg, "condstore"))
				p.o.enable |= IMAP_ENABLE_CONDSTORE;
			if (strstr(optarg, "qresync"))
				p.o.enable |= IMAP_ENABLE_QRESYNC;
			if (strstr(optarg, "utf8"))
				p.o.enable |= IMAP_ENABLE_UTF8;
			break;
		case 'w':
			p.o.window = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'T':
			p.o.timeout = atoi(optarg);
			break;
		case 'L':
			p.o.literal_plus_max = strtoull(optarg, NULL, 10);
			break;
		case 'd':
			debug = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 4)
		usage();
	log_open("imap_probe", LOG_DEST_STDERR, 0, debug ? LOG_LVL_DEBUG :
	    LOG_LVL_INFO);
	setvbuf(stdout, NULL, _IOLBF, 0);
	p.o.host = argv[0];
	p.o.port = atoi(argv[1]);
	p.o.user = argv[2];
	p.o.secret = argv[3];
	p.o.id_name = "mailferry-imap_probe";
	p.o.id_version = "0";
	p.o.log_id = "src";
	p.cmds = argv + 4;
	p.ncmds = argc - 4;
	p.rc = 2;
	if ((p.base = event_base_new()) == NULL ||
	    (p.md = EVP_MD_CTX_new()) == NULL ||
	    (p.ev_resume = evtimer_new(p.base, resume_cb, &p)) == NULL)
		goto out;
	if (p.o.tls != IMAP_TLS_NONE) {
		if ((p.ctx = tls_client_ctx_new(ca, err, sizeof(err))) == NULL) {
			fprintf(stderr, "imap_probe: %s\n", err);
			goto out;
		}
		p.o.ssl_ctx = p.ctx;
	}
	if ((p.c = imap_client_new(p.base, &p.o, conn_event, &p, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "imap_probe: %s\n", err);
		goto out;
	}
	p.rc = 0;
	event_base_dispatch(p.base);
out:
	imap_client_free(&p.dst);
	imap_client_free(&p.c);
	if (p.fd != -1)
		close(p.fd);
	print_hwm();
	if (p.ev_resume != NULL)
		event_free(p.ev_resume);
	EVP_MD_CTX_free(p.md);
	free(p.msgs);
	tls_ctx_free(&p.ctx);
	if (p.base != NULL)
		event_base_free(p.base);
	return (p.rc);
}
