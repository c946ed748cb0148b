/*
 * imap_client.c - asynchronous, pipelined IMAP client connection (see
 * imap_client.h for the contract).
 *
 * Layers, bottom up: a socket bufferevent; an OpenSSL filter for
 * implicit TLS or after STARTTLS; a zlib filter after COMPRESS=DEFLATE.
 * c->top is the uppermost; freeing it frees the rest (CLOSE_ON_FREE).
 * Every layer has read and write high-water marks, so memory held in
 * buffers is bounded whatever the server or the caller does.
 *
 * Read side: bytes from c->top go through the incremental parser
 * (imap_parse.c); its events build the current response in c->r.
 * Small responses (LIST, STATUS, CAPABILITY, tagged completions) are
 * collected as tokens in a bounded arena and dispatched at their end;
 * FETCH and SEARCH are handled as a stream, so a body literal or a
 * 200,000-UID SEARCH never sits in memory.  The parser stops right after
 * any event when the caller pauses, so back-pressure takes effect in
 * the middle of a literal.
 *
 * Write side: commands wait in two queues (internal setup commands
 * first, the caller's after READY) and are started when fewer than
 * `window` are in flight.  The writer (c->writer) is the one command
 * whose bytes are going out; it keeps the wire until its last segment
 * is written, because nothing may be interleaved with a command that
 * waits for a "+" continuation or whose APPEND literal the caller is
 * still streaming.  Commands that change the stream (STARTTLS, COMPRESS,
 * AUTHENTICATE) or end it (LOGOUT) are barriers: nothing is started
 * after them until their tagged response.
 *
 * Lifetime: every entry from libevent increments c->busy; failures
 * only mark the client and schedule c->ev_later, which tears the
 * connection down (completing each command, then the CLOSED callback)
 * outside any parser or bufferevent callback; imap_client_free() inside
 * a callback is deferred the same way.  So no callback ever runs with a
 * freed client or a freed input buffer below it.
 *
 * SECURITY: every byte from the server is untrusted: the parser bounds
 * tokens, lists and lines; this file bounds collected responses
 * (RESP_TOKENS_MAX, RESP_ARENA_MAX), flags per message, and refuses a
 * tag it did not send, a continuation nobody asked for, and any data
 * after a STARTTLS or COMPRESS response (command injection, as in
 * CVE-2011-0411 for SMTP).  TLS verifies the certificate and host name
 * unless the caller turns it off.  The secret is wiped after it is
 * rendered into the authentication command; command logging masks it.
 * Text from the server is passed through str_printable() before it
 * reaches a log line or a result.
 *
 * Threading: one event loop, no global state.
 */
#include <sys/queue.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <zlib.h>

#include "imap_client.h"
#include "imap_parse.h"
#include "log.h"
#include "mutf7.h"
#include "tls.h"
#include "util.h"

#define DEF_WINDOW		8
#define DEF_TIMEOUT		120
#define DEF_OUT_HIWAT		(256 * 1024)
#define DEF_LITERAL_PLUS_MAX	(256 * 1024)
#define LITERAL_MINUS_MAX	4096	/* RFC 7888 */
#define READ_HIWAT		(256 * 1024)	/* per layer */
#define LOWER_WRITE_HIWAT	(256 * 1024)	/* below the top layer */
#define RESP_TOKENS_MAX		(256 * 1024)	/* collected response */
#define RESP_ARENA_MAX		(2 * 1024 * 1024)
#define RESP_KEEP		(64 * 1024)	/* arena kept when idle */
#define FLAGS_MAX		4096	/* flags in one FETCH/LIST */
#define ESEARCH_RANGE_MAX	(UINT64_C(10000000))
#define ARG_MAX			8192	/* caller's raw text arguments */
#define TEXT_MAX		512	/* sanitised server text */
#define LOGLINE_MAX		300
#define Z_CHUNK			16384

/* ---- types ---------------------------------------------------------------- */

enum cmd_kind {
	K_GENERIC = 0, K_CAPABILITY, K_STARTTLS, K_LOGIN, K_AUTH, K_COMPRESS,
	K_ID, K_ENABLE, K_SELECT, K_LIST, K_LSUB, K_STATUS, K_NAMESPACE,
	K_FETCH, K_SEARCH, K_STORE, K_APPEND, K_LOGOUT,
};

enum cmd_state { CMD_QUEUED = 0, CMD_INFLIGHT, CMD_DONE };

enum cstate {
	CS_CONNECTING = 0, CS_TLS_HANDSHAKE, CS_GREETING, CS_SETUP, CS_READY,
};

/* One piece of a command's output; a "+" is awaited after it when sync
 * is set, and `literal` bytes of caller data follow it (APPEND). */
struct seg {
	struct evbuffer	*buf;
	uint64_t	 literal;
	int		 has_literal;
	int		 sync;
};

/* Mailbox state collected for SELECT (owns its strings). */
struct mbox_acc {
	struct imap_mailbox	 mb;
	struct strlist		 permflags;
	struct strlist		 flags;
};

struct imap_cmd {
	TAILQ_ENTRY(imap_cmd)	 q;
	struct imap_client	*c;
	enum cmd_kind		 kind;
	enum cmd_state		 st;
	int			 setup;		/* internal command */
	int			 barrier;
	unsigned		 tagnum;
	char			 tag[16];
	char			 logline[LOGLINE_MAX];

	struct seg		*segs;
	size_t			 nsegs, segcap, segi;
	int			 waiting_cont;

	imap_done_cb		 done;
	void			*arg;

	/* handlers */
	struct imap_fetch_cbs	 fcbs;
	int			 has_fcbs;
	struct imap_list_cbs	 lcbs;
	void			(*search_uid)(struct imap_client *, uint64_t,
				    void *);
	struct imap_append_cbs	 acbs;

	/* results */
	char			*mailbox;	/* SELECT, STATUS: wire name */
	struct mbox_acc		*mbox;
	struct imap_status_info	 stinfo;
	int			 st_answered;
	char			*ns_prefix;
	char			 ns_delim;
	int			 ns_have;
	uint64_t		 search_modseq;
	char			*auth_challenge;

	/* APPEND streaming */
	uint64_t		 lit_next;	/* literal after the "+" */
	uint64_t		 app_left;	/* literal bytes due on the wire */
	uint64_t		 app_owed;	/* bytes the caller still owes */
	struct evbuffer		*app_pending;
	size_t			 app_nmsgs;
	int			 app_ended;
	int			 app_want_writable;
};

TAILQ_HEAD(cmdq, imap_cmd);

/* A collected token; its text is at arena + off (NUL-terminated). */
struct ctok {
	enum imap_ev_type	 type;
	unsigned		 depth;
	uint64_t		 num;
	size_t			 off, len;
};

enum rkind {
	R_NONE = 0, R_TAGGED, R_CONT, R_STATUS, R_COLLECT, R_FETCH, R_SEARCH,
};

enum fstage {
	F_START = 0, F_NAME, F_VALUE, F_FLAGS, F_MODSEQ, F_SKIP, F_SKIP_LIT,
	F_BODY, F_DONE,
};

struct fetch_state {
	enum fstage		 stage;
	char			 item[256];	/* current item, as sent */
	unsigned		 skip_depth;
	struct imap_fetch_msg	 m;
	struct strlist		 flags;
	char			*internaldate;
	int			 body_open;
};

/* The response being parsed. */
struct resp {
	enum rkind		 kind;
	char			 name[64];	/* untagged name */
	uint64_t		 num;
	int			 has_num;
	char			 tag[64];
	enum imap_status	 tstatus;
	char			 code[64];
	int			 in_code;
	size_t			 code_t0, code_t1;	/* its tokens */
	size_t			 text_off, text_len;
	int			 have_text;
	struct ctok		*toks;
	size_t			 ntoks, captoks;
	char			*arena;
	size_t			 alen, acap;
	int			 lit_open;	/* collecting a literal */
	struct imap_cmd		*target;
	int			 search_in_list, search_modseq_next;
	struct fetch_state	 f;
};

struct imap_client {
	struct event_base	*base;
	imap_client_cb		 cb;
	void			*cbarg;

	/* options, copied */
	char			*host;
	int			 port;
	enum imap_tls_mode	 tls;
	SSL_CTX			*ssl_ctx;
	int			 verify;
	char			*tls_name;
	struct evdns_base	*dns;
	char			*user;
	char			*secret;
	enum imap_auth_mech	 auth;
	unsigned		 want_enable;
	int			 want_compress;
	char			*id_name, *id_version;
	unsigned		 window;
	int			 timeout;
	size_t			 out_hiwat;
	uint64_t		 literal_plus_max;
	char			 id[96];	/* log prefix */

	enum cstate		 state;
	struct bufferevent	*top;
	SSL			*ssl;		/* owned by its bufferevent */
	int			 tls_active, z_active;
	struct imap_parse	*parser;
	struct event		*ev_later;

	struct cmdq		 setupq, userq, inflight;
	unsigned		 ninflight;
	unsigned		 nexttag;
	struct imap_cmd		*writer;

	struct strlist		 caps;
	uint64_t		 capbits;
	int			 caps_known;
	uint64_t		 appendlimit;
	unsigned		 enabled;
	int			 authenticated;
	int			 compress_tried, id_sent, enable_sent;
	unsigned		 enable_asked;	/* ENABLE in flight: assumed */
	unsigned		 enable_confirmed; /* ENABLED reply so far */

	struct mbox_acc		 cur;
	int			 have_cur;

	struct resp		 r;

	int			 paused;
	int			 resume_pending;
	int			 writable_pending;
	int			 switch_to;	/* SW_* after this response */

	int			 busy;
	int			 failed;	/* teardown scheduled */
	int			 closed;	/* teardown done */
	int			 free_pending;
	int			 logout_sent;
	int			 logout_ok;
	int			 eof_seen;

	enum imap_errclass	 err_class;
	char			 err_text[TEXT_MAX];
	char			 err_code[64];
	uint64_t		 err_backoff;
	char			 bye_text[TEXT_MAX];
	char			 bye_code[64];

	struct imap_unsolicited_cbs ucbs;
	void			*uarg;
};

#define SW_TLS	1
#define SW_Z	2

static const struct {
	const char	*name;
	enum imap_cap	 cap;
} cap_names[] = {
	{ "IMAP4REV1", IMAP_CAP_IMAP4REV1 },
	{ "IMAP4REV2", IMAP_CAP_IMAP4REV2 },
	{ "STARTTLS", IMAP_CAP_STARTTLS },
	{ "LOGINDISABLED", IMAP_CAP_LOGINDISABLED },
	{ "AUTH=PLAIN", IMAP_CAP_AUTH_PLAIN },
	{ "AUTH=XOAUTH2", IMAP_CAP_AUTH_XOAUTH2 },
	{ "SASL-IR", IMAP_CAP_SASL_IR },
	{ "LITERAL+", IMAP_CAP_LITERAL_PLUS },
	{ "LITERAL-", IMAP_CAP_LITERAL_MINUS },
	{ "MULTIAPPEND", IMAP_CAP_MULTIAPPEND },
	{ "UIDPLUS", IMAP_CAP_UIDPLUS },
	{ "CONDSTORE", IMAP_CAP_CONDSTORE },
	{ "QRESYNC", IMAP_CAP_QRESYNC },
	{ "ENABLE", IMAP_CAP_ENABLE },
	{ "SPECIAL-USE", IMAP_CAP_SPECIAL_USE },
	{ "CREATE-SPECIAL-USE", IMAP_CAP_CREATE_SPECIAL_USE },
	{ "LIST-EXTENDED", IMAP_CAP_LIST_EXTENDED },
	{ "LIST-STATUS", IMAP_CAP_LIST_STATUS },
	{ "ID", IMAP_CAP_ID },
	{ "COMPRESS=DEFLATE", IMAP_CAP_COMPRESS_DEFLATE },
	{ "UTF8=ACCEPT", IMAP_CAP_UTF8_ACCEPT },
	{ "NAMESPACE", IMAP_CAP_NAMESPACE },
	{ "APPENDLIMIT", IMAP_CAP_APPENDLIMIT },
	{ "ESEARCH", IMAP_CAP_ESEARCH },
	{ "MOVE", IMAP_CAP_MOVE },
	{ "UNSELECT", IMAP_CAP_UNSELECT },
	{ "IDLE", IMAP_CAP_IDLE },
	{ "STATUS=SIZE", IMAP_CAP_STATUS_SIZE },
	{ "OBJECTID", IMAP_CAP_OBJECTID },
	{ "BINARY", IMAP_CAP_BINARY },
};

static const struct {
	const char	*name;
	unsigned	 bit;
} mbox_attrs[] = {
	{ "\\NOSELECT", IMAP_MBOX_NOSELECT },
	{ "\\NONEXISTENT", IMAP_MBOX_NONEXISTENT | IMAP_MBOX_NOSELECT },
	{ "\\NOINFERIORS", IMAP_MBOX_NOINFERIORS },
	{ "\\HASCHILDREN", IMAP_MBOX_HASCHILDREN },
	{ "\\HASNOCHILDREN", IMAP_MBOX_HASNOCHILDREN },
	{ "\\SUBSCRIBED", IMAP_MBOX_SUBSCRIBED },
	{ "\\MARKED", IMAP_MBOX_MARKED },
	{ "\\REMOTE", IMAP_MBOX_REMOTE },
	{ "\\ALL", IMAP_MBOX_ALL },
	{ "\\ARCHIVE", IMAP_MBOX_ARCHIVE },
	{ "\\DRAFTS", IMAP_MBOX_DRAFTS },
	{ "\\FLAGGED", IMAP_MBOX_FLAGGED },
	{ "\\JUNK", IMAP_MBOX_JUNK },
	{ "\\SENT", IMAP_MBOX_SENT },
	{ "\\TRASH", IMAP_MBOX_TRASH },
	{ "\\IMPORTANT", IMAP_MBOX_IMPORTANT },
};

static void	client_fail(struct imap_client *c, enum imap_errclass cl,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void	seterr(char *err, size_t errlen, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
static void	cmd_add(struct imap_cmd *cmd, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
static void	writer_run(struct imap_client *c);
static void	setup_next(struct imap_client *c);
static void	arm_timeouts(struct imap_client *c);
static void	schedule_later(struct imap_client *c);
static int	client_leave(struct imap_client *c);
static void	setup_cb(struct imap_client *c, const struct imap_result *res,
		    void *arg);
static void	read_cb(struct bufferevent *b, void *arg);
static void	write_cb(struct bufferevent *b, void *arg);
static void	event_cb(struct bufferevent *b, short what, void *arg);

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* sappend - append to a NUL-terminated buffer, truncating safely */
static void	sappend(char *buf, size_t len, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));

static void
sappend(char *buf, size_t len, const char *fmt, ...)
{
	size_t o = strlen(buf);
	va_list ap;

	if (o + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + o, len - o, fmt, ap);
	va_end(ap);
}

/* sanitize - server text made safe for a log line or a result */
static void
sanitize(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	(void)str_printable(dst, dstlen, src, srclen);
}

/* ---- small helpers --------------------------------------------------------- */

const char *
imap_status_name(enum imap_status st)
{
	switch (st) {
	case IMAP_OK:
		return ("OK");
	case IMAP_NO:
		return ("NO");
	case IMAP_BAD:
		return ("BAD");
	case IMAP_ERROR:
		return ("ERROR");
	case IMAP_CANCELLED:
		return ("CANCELLED");
	}
	return ("?");
}

const char *
imap_errclass_name(enum imap_errclass cl)
{
	switch (cl) {
	case IMAP_ERR_NONE:
		return ("none");
	case IMAP_ERR_TEMP:
		return ("temporary");
	case IMAP_ERR_PERM:
		return ("permanent");
	case IMAP_ERR_AUTH:
		return ("auth");
	}
	return ("?");
}

/*
 * imap_backoff_from_text - Microsoft 365 says "Request is throttled.
 * Suggested Backoff Time: 299609 milliseconds"; take the number.
 */
uint64_t
imap_backoff_from_text(const char *text)
{
	static const char key[] = "suggested backoff time:";
	const char *p;
	uint64_t v = 0;

	if (text == NULL)
		return (0);
	for (p = text; *p != '\0'; p++)
		if (strncasecmp(p, key, sizeof(key) - 1) == 0)
			break;
	if (*p == '\0')
		return (0);
	p += sizeof(key) - 1;
	while (*p == ' ')
		p++;
	if (*p < '0' || *p > '9')
		return (0);
	while (*p >= '0' && *p <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return (0);
		v = v * 10 + (uint64_t)(*p++ - '0');
	}
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "milliseconds", 12) == 0 || strncasecmp(p, "ms", 2)
	    == 0)
		return (v);
	if (strncasecmp(p, "seconds", 7) == 0 && v <= UINT64_MAX / 1000)
		return (v * 1000);
	return (v);
}

/* is_atom_char - ATOM-CHAR of RFC 3501 (no specials, no wildcards) */
static int
is_atom_char(unsigned char c)
{
	return (c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' &&
	    c != '%' && c != '*' && c != '"' && c != '\\' && c != ']');
}

int
imap_flag_settable(const char *flag)
{
	static const char *const sys[] = {
		"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft",
	};
	const char *p;
	size_t i;

	if (flag == NULL || *flag == '\0')
		return (0);
	if (*flag == '\\') {
		for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
			if (strcasecmp(flag, sys[i]) == 0)
				return (1);
		return (0);
	}
	if (strlen(flag) > 1000)
		return (0);
	for (p = flag; *p != '\0'; p++)
		if (!is_atom_char((unsigned char)*p))
			return (0);
	return (1);
}

/* valid_flag_list - space-separated settable flags, or empty */
static int
valid_flag_list(const char *s, char *err, size_t errlen)
{
	char word[1024];
	size_t n;

	while (*s != '\0') {
		while (*s == ' ')
			s++;
		n = strcspn(s, " ");
		if (n == 0)
			break;
		if (n >= sizeof(word)) {
			seterr(err, errlen, "flag too long");
			return (-1);
		}
		memcpy(word, s, n);
		word[n] = '\0';
		if (!imap_flag_settable(word)) {
			char shown[64];

			sanitize(shown, sizeof(shown), word, n);
			seterr(err, errlen, "flag \"%s\" cannot be set", shown);
			return (-1);
		}
		s += n;
	}
	return (0);
}

/* valid_text - printable ASCII, 1..ARG_MAX bytes (raw command text) */
static int
valid_text(const char *s)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return (0);
	for (; *s != '\0'; s++, n++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e ||
		    n >= ARG_MAX)
			return (0);
	return (1);
}

/* valid_uidset - digits, ":", ",", "*" only */
static int
valid_uidset(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > ARG_MAX)
		return (0);
	return (strspn(s, "0123456789:,*") == strlen(s));
}

static int
has_cap(const struct imap_client *c, enum imap_cap cap)
{
	return ((c->capbits >> cap) & 1);
}

int
imap_client_has_cap(const struct imap_client *c, enum imap_cap cap)
{
	if ((unsigned)cap >= IMAP_CAP_COUNT_)
		return (0);
	return (has_cap(c, cap));
}

int
imap_client_has_capability(const struct imap_client *c, const char *name)
{
	return (strlist_contains_ci(&c->caps, name));
}

uint64_t
imap_client_appendlimit(const struct imap_client *c)
{
	return (c->appendlimit);
}

unsigned
imap_client_enabled(const struct imap_client *c)
{
	return (c->enabled);
}

int
imap_client_compressed(const struct imap_client *c)
{
	return (c->z_active);
}

int
imap_client_tls(const struct imap_client *c)
{
	return (c->tls_active);
}

const struct imap_mailbox *
imap_client_mailbox(const struct imap_client *c)
{
	return (c->have_cur ? &c->cur.mb : NULL);
}

static int
utf8_mode(const struct imap_client *c)
{
	return ((c->enabled & IMAP_ENABLE_UTF8) != 0);
}

int
imap_client_mailbox_encode(const struct imap_client *c, const char *utf8,
    char *out, size_t outsize, char *err, size_t errlen)
{
	size_t n = strlen(utf8);

	if (utf8_mode(c)) {
		if (!utf8_valid(utf8, n) || memchr(utf8, '\r', n) ||
		    memchr(utf8, '\n', n)) {
			seterr(err, errlen, "invalid UTF-8 mailbox name");
			return (-1);
		}
		if (n + 1 > outsize) {
			seterr(err, errlen, "mailbox name too long");
			return (-1);
		}
		memcpy(out, utf8, n + 1);
		return (0);
	}
	return (mutf7_encode(utf8, n, out, outsize, NULL, err, errlen));
}

int
imap_client_mailbox_decode(const struct imap_client *c, const char *wire,
    char *out, size_t outsize, char *err, size_t errlen)
{
	size_t n = strlen(wire);

	if (utf8_mode(c)) {
		if (!utf8_valid(wire, n)) {
			seterr(err, errlen, "invalid UTF-8 mailbox name");
			return (-1);
		}
		if (n + 1 > outsize) {
			seterr(err, errlen, "mailbox name too long");
			return (-1);
		}
		memcpy(out, wire, n + 1);
		return (0);
	}
	return (mutf7_decode(wire, n, out, outsize, NULL, err, errlen));
}

/* ---- mailbox accumulator ------------------------------------------------- */

static void
mbox_clear(struct mbox_acc *a)
{
	strlist_clear(&a->permflags);
	strlist_clear(&a->flags);
	memset(&a->mb, 0, sizeof(a->mb));
}

/* mbox_views - point the public string vectors at the owned lists */
static void
mbox_views(struct mbox_acc *a)
{
	a->mb.permflags.v = (const char *const *)a->permflags.items;
	a->mb.permflags.n = a->permflags.count;
	a->mb.flags.v = (const char *const *)a->flags.items;
	a->mb.flags.n = a->flags.count;
}

static int
mbox_copy(struct mbox_acc *dst, const struct mbox_acc *src)
{
	size_t i;

	mbox_clear(dst);
	dst->mb = src->mb;
	for (i = 0; i < src->permflags.count; i++)
		if (strlist_add(&dst->permflags, src->permflags.items[i],
		    strlen(src->permflags.items[i])) == -1)
			return (-1);
	for (i = 0; i < src->flags.count; i++)
		if (strlist_add(&dst->flags, src->flags.items[i],
		    strlen(src->flags.items[i])) == -1)
			return (-1);
	mbox_views(dst);
	return (0);
}

/* ---- commands: building ---------------------------------------------------- */

static struct seg *
cmd_seg(struct imap_cmd *cmd)
{
	return (&cmd->segs[cmd->nsegs - 1]);
}

/* cmd_new_seg - start a new output segment */
static int
cmd_new_seg(struct imap_cmd *cmd)
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

static void
cmd_free(struct imap_cmd *cmd)
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
		mbox_clear(cmd->mbox);
		free(cmd->mbox);
	}
	free(cmd->mailbox);
	free(cmd->ns_prefix);
	free(cmd->auth_challenge);
	free(cmd);
}

/* log_add - append to the command's log line, marking truncation */
static void
log_add(struct imap_cmd *cmd, const char *s)
{
	size_t have = strlen(cmd->logline), n = strlen(s);

	if (have + n >= sizeof(cmd->logline)) {
		if (have + 4 < sizeof(cmd->logline))
			memcpy(cmd->logline + have, "...", 4);
		return;
	}
	memcpy(cmd->logline + have, s, n + 1);
}

static void
cmd_add(struct imap_cmd *cmd, const char *fmt, ...)
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
		log_add(cmd, "...");
		return;
	}
	evbuffer_add(cmd_seg(cmd)->buf, buf, (size_t)n);
	log_add(cmd, buf);
}

/* nonsync_ok - may a literal of n bytes be sent without waiting? */
static int
nonsync_ok(const struct imap_client *c, uint64_t n)
{
	if (n > c->literal_plus_max)
		return (0);
	if (has_cap(c, IMAP_CAP_LITERAL_PLUS))
		return (1);
	return (has_cap(c, IMAP_CAP_LITERAL_MINUS) && n <= LITERAL_MINUS_MAX);
}

/*
 * cmd_add_astring - s as a quoted string when it can be one (7-bit, or
 * UTF-8 under UTF8=ACCEPT; no CR, LF, NUL), otherwise as a literal:
 * non-synchronizing when allowed, else a new segment sent after "+".
 * A secret is logged as <hidden>.
 */
static int
cmd_add_astring(struct imap_cmd *cmd, const char *s, size_t len, int secret)
{
	struct imap_client *c = cmd->c;
	struct evbuffer *b = cmd_seg(cmd)->buf;
	char shown[128];
	int quotable = 1;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\0' || ch == '\r' || ch == '\n' ||
		    (ch >= 0x80 && !utf8_mode(c))) {
			quotable = 0;
			break;
		}
	}
	if (quotable && utf8_mode(c) && !utf8_valid(s, len))
		quotable = 0;
	if (quotable) {
		evbuffer_add(b, "\"", 1);
		for (i = 0; i < len; i++) {
			if (s[i] == '"' || s[i] == '\\')
				evbuffer_add(b, "\\", 1);
			evbuffer_add(b, s + i, 1);
		}
		evbuffer_add(b, "\"", 1);
	} else if (nonsync_ok(c, len)) {
		evbuffer_add_printf(b, "{%zu+}\r\n", len);
		evbuffer_add(b, s, len);
	} else {
		evbuffer_add_printf(b, "{%zu}\r\n", len);
		cmd_seg(cmd)->sync = 1;
		if (cmd_new_seg(cmd) == -1)
			return (-1);
		evbuffer_add(cmd_seg(cmd)->buf, s, len);
	}
	if (secret)
		log_add(cmd, "<hidden>");
	else {
		log_add(cmd, "\"");
		sanitize(shown, sizeof(shown), s, len);
		log_add(cmd, shown);
		log_add(cmd, "\"");
	}
	return (0);
}

/*
 * cmd_new - a command of the given kind with one empty segment, not
 * queued yet.  NULL when the client is closing or out of memory.
 */
static struct imap_cmd *
cmd_new(struct imap_client *c, enum cmd_kind kind, imap_done_cb done,
    void *arg)
{
	struct imap_cmd *cmd;

	if (c == NULL || c->failed || c->free_pending || c->logout_sent)
		return (NULL);
	if ((cmd = calloc(1, sizeof(*cmd))) == NULL)
		return (NULL);
	cmd->c = c;
	cmd->kind = kind;
	cmd->done = done;
	cmd->arg = arg;
	if (cmd_new_seg(cmd) == -1) {
		cmd_free(cmd);
		return (NULL);
	}
	return (cmd);
}

/* cmd_queue - finish the command line and queue it */
static struct imap_cmd *
cmd_queue(struct imap_cmd *cmd)
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
	writer_run(c);
	return (cmd);
}

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
	if (c->state != CS_READY)
		return (NULL);
	return (TAILQ_FIRST(&c->userq));
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
	TAILQ_INSERT_TAIL(&c->inflight, cmd, q);
	c->ninflight++;
	c->writer = cmd;
	if (cmd->kind == K_LOGOUT)
		c->logout_sent = 1;
	log_debug("%s: C: %s %s", c->id, cmd->tag, cmd->logline);
	arm_timeouts(c);
}

/*
 * writable_now - the writer is an APPEND whose streamer was told to
 * stop and may go on now: nothing held back, output below the mark.
 * (When the output is above the mark, write_cb calls back later.)
 */
static int
writable_now(struct imap_client *c)
{
	struct imap_cmd *w = c->writer;

	return (w != NULL && w->kind == K_APPEND && w->app_want_writable &&
	    !w->waiting_cont && !c->failed && !c->free_pending &&
	    c->top != NULL && evbuffer_get_length(w->app_pending) == 0 &&
	    imap_client_output_pending(c) <= c->out_hiwat);
}

/*
 * writer_run - move queued output onto the wire as far as the rules
 * allow: window, barriers, "+" continuations, streamed literals.
 */
static void
writer_run(struct imap_client *c)
{
	struct evbuffer *out;
	struct imap_cmd *w;
	struct seg *s;
	size_t n;

	if (c->failed || c->free_pending || c->top == NULL || c->switch_to ||
	    c->state == CS_CONNECTING || c->state == CS_TLS_HANDSHAKE)
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
				if (writable_now(c))
					schedule_later(c);
				return;
			}
			arm_timeouts(c);
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
			if (writable_now(c))
				schedule_later(c);
			return;
		}
		c->writer = NULL;
		arm_timeouts(c);
	}
}

/* find_inflight_tag - the command a tagged response belongs to */
static struct imap_cmd *
find_inflight_tag(struct imap_client *c, const char *tag)
{
	struct imap_cmd *cmd;

	TAILQ_FOREACH(cmd, &c->inflight, q)
		if (strcmp(cmd->tag, tag) == 0)
			return (cmd);
	return (NULL);
}

/* oldest_kind - oldest command in flight of one of two kinds */
static struct imap_cmd *
oldest_kind(struct imap_client *c, enum cmd_kind k1, enum cmd_kind k2)
{
	struct imap_cmd *cmd;

	TAILQ_FOREACH(cmd, &c->inflight, q)
		if (cmd->kind == k1 || cmd->kind == k2)
			return (cmd);
	return (NULL);
}

static struct imap_cmd *
oldest_fetcher(struct imap_client *c)
{
	struct imap_cmd *cmd;

	TAILQ_FOREACH(cmd, &c->inflight, q)
		if (cmd->has_fcbs)
			return (cmd);
	return (NULL);
}

static int
inbox_eq(const char *a, const char *b)
{
	if (strcasecmp(a, "INBOX") == 0 && strcasecmp(b, "INBOX") == 0)
		return (1);
	return (strcmp(a, b) == 0);
}

/*
 * classify - the retry class of a failed command (see imap_client.h);
 * RFC 5530 codes first, then the texts throttling servers send.
 */
static enum imap_errclass
classify(enum cmd_kind kind, enum imap_status st, const char *code,
    const char *text)
{
	static const char *const temp_codes[] = {
		"UNAVAILABLE", "LIMIT", "INUSE", "SERVERBUG",
	};
	static const char *const auth_codes[] = {
		"AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED",
		"PRIVACYREQUIRED", "CONTACTADMIN",
	};
	static const char *const temp_texts[] = {
		"suggested backoff time", "throttl", "server unavailable",
		"try again later", "temporarily unavailable",
	};
	size_t i, j;

	if (st == IMAP_OK)
		return (IMAP_ERR_NONE);
	if (st == IMAP_CANCELLED)
		return (IMAP_ERR_TEMP);
	for (i = 0; i < sizeof(temp_codes) / sizeof(temp_codes[0]); i++)
		if (strcasecmp(code, temp_codes[i]) == 0)
			return (IMAP_ERR_TEMP);
	for (i = 0; i < sizeof(temp_texts) / sizeof(temp_texts[0]); i++)
		for (j = 0; text[j] != '\0'; j++)
			if (strncasecmp(text + j, temp_texts[i],
			    strlen(temp_texts[i])) == 0)
				return (IMAP_ERR_TEMP);
	for (i = 0; i < sizeof(auth_codes) / sizeof(auth_codes[0]); i++)
		if (strcasecmp(code, auth_codes[i]) == 0)
			return (IMAP_ERR_AUTH);
	if (kind == K_LOGIN || kind == K_AUTH)
		return (IMAP_ERR_AUTH);
	return (IMAP_ERR_PERM);
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
 * complete_cmd - take cmd out of its queue and report res; frees cmd.
 * The done callback may queue new commands or free the client (that is
 * deferred while busy).
 */
static void
complete_cmd(struct imap_client *c, struct imap_cmd *cmd,
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
		mbox_views(cmd->mbox);
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
	cb_done(c, cmd, res);
	cmd_free(cmd);
}

/* fail_all - complete every command with res (connection gone) */
static void
fail_all(struct imap_client *c, struct imap_result *res)
{
	struct imap_cmd *cmd;

	while ((cmd = TAILQ_FIRST(&c->inflight)) != NULL ||
	    (cmd = TAILQ_FIRST(&c->setupq)) != NULL ||
	    (cmd = TAILQ_FIRST(&c->userq)) != NULL)
		complete_cmd(c, cmd, res);
}

/* ---- failure and teardown ------------------------------------------------ */

/*
 * client_fail - the connection is unusable: remember the first reason,
 * stop all I/O and let ev_later tear down outside any callback.
 */
static void
client_fail(struct imap_client *c, enum imap_errclass cl, const char *fmt,
    ...)
{
	va_list ap;

	if (c->failed)
		return;
	c->failed = 1;
	c->err_class = cl;
	va_start(ap, fmt);
	vsnprintf(c->err_text, sizeof(c->err_text), fmt, ap);
	va_end(ap);
	if (c->top != NULL)
		bufferevent_disable(c->top, EV_READ | EV_WRITE);
	if (c->free_pending)
		;
	else if (cl == IMAP_ERR_NONE)
		log_info("%s: %s", c->id, c->err_text);
	else
		log_notice("%s: connection failed (%s): %s", c->id,
		    imap_errclass_name(cl), c->err_text);
	schedule_later(c);
}

static void
schedule_later(struct imap_client *c)
{
	if (c->ev_later != NULL)
		event_active(c->ev_later, EV_TIMEOUT, 0);
}

/* teardown - free the connection, fail the commands, say CLOSED */
static void
teardown(struct imap_client *c)
{
	struct imap_result res;

	c->closed = 1;
	if (c->top != NULL) {
		bufferevent_free(c->top);
		c->top = NULL;
		c->ssl = NULL;
	}
	memset(&res, 0, sizeof(res));
	if (c->logout_ok && c->err_class == IMAP_ERR_NONE) {
		res.status = IMAP_OK;
		res.text = "logged out";
	} else {
		res.status = IMAP_ERROR;
		res.errclass = c->err_class;
		res.text = c->err_text;
		res.code = c->err_code;
		res.backoff_ms = c->err_backoff;
	}
	res.code = res.code != NULL ? res.code : "";
	res.code_args = "";
	fail_all(c, &res);
	if (!c->free_pending && c->cb != NULL)
		c->cb(c, IMAP_CLIENT_CLOSED, &res, c->cbarg);
}

/* ---- timeouts and flow control ---------------------------------------------- */

/*
 * arm_timeouts - the read timeout runs only while an answer is due: a
 * command in flight, reading not paused, and not while we stream an
 * APPEND literal (the server is silent then; the write timeout covers
 * it).  The write timeout only ever fires with output pending.
 */
static void
arm_timeouts(struct imap_client *c)
{
	struct timeval tv = { c->timeout, 0 };
	int need_read;
	struct imap_cmd *w = c->writer;

	if (c->top == NULL || c->failed)
		return;
	need_read = c->ninflight > 0 && !c->paused;
	if (w != NULL && w->kind == K_APPEND && !w->waiting_cont &&
	    (w->app_left > 0 || !w->app_ended))
		need_read = 0;
	if (c->state != CS_READY)
		need_read = !c->paused;
	bufferevent_set_timeouts(c->top, need_read ? &tv : NULL, &tv);
}

void
imap_client_pause_read(struct imap_client *c)
{
	if (c == NULL || c->paused)
		return;
	c->paused = 1;
	c->resume_pending = 0;
	if (c->top != NULL && !c->failed)
		bufferevent_disable(c->top, EV_READ);
	arm_timeouts(c);
}

void
imap_client_resume_read(struct imap_client *c)
{
	if (c == NULL || !c->paused)
		return;
	c->paused = 0;
	if (c->top != NULL && !c->failed) {
		bufferevent_enable(c->top, EV_READ);
		arm_timeouts(c);
		/* input may be buffered already: no read event would come */
		c->resume_pending = 1;
		schedule_later(c);
	}
}

size_t
imap_client_output_pending(const struct imap_client *c)
{
	if (c->top == NULL)
		return (0);
	return (evbuffer_get_length(bufferevent_get_output(c->top)));
}

unsigned
imap_client_in_flight(const struct imap_client *c)
{
	return (c->ninflight);
}

unsigned
imap_client_queued(const struct imap_client *c)
{
	const struct imap_cmd *cmd;
	unsigned n = 0;

	TAILQ_FOREACH(cmd, &c->setupq, q)
		n++;
	TAILQ_FOREACH(cmd, &c->userq, q)
		n++;
	return (n);
}

void
imap_client_set_unsolicited(struct imap_client *c,
    const struct imap_unsolicited_cbs *cbs, void *arg)
{
	if (cbs != NULL)
		c->ucbs = *cbs;
	else
		memset(&c->ucbs, 0, sizeof(c->ucbs));
	c->uarg = arg;
}

/* ---- response collection ------------------------------------------------- */

static void
resp_reset(struct imap_client *c)
{
	struct resp *r = &c->r;

	strlist_clear(&r->f.flags);
	free(r->f.internaldate);
	memset(&r->f, 0, sizeof(r->f));
	r->kind = R_NONE;
	r->name[0] = r->tag[0] = r->code[0] = '\0';
	r->num = 0;
	r->has_num = 0;
	r->in_code = 0;
	r->code_t0 = r->code_t1 = 0;
	r->text_off = r->text_len = 0;
	r->have_text = 0;
	r->ntoks = 0;
	r->alen = 0;
	r->lit_open = 0;
	r->target = NULL;
	r->search_in_list = r->search_modseq_next = 0;
	/* do not keep a big arena around after one large response */
	if (r->acap > RESP_KEEP) {
		free(r->arena);
		r->arena = NULL;
		r->acap = 0;
	}
	if (r->captoks > RESP_KEEP / sizeof(struct ctok)) {
		free(r->toks);
		r->toks = NULL;
		r->captoks = 0;
	}
}

/* arena_reserve - room for n more bytes in the arena, or fail */
static int
arena_reserve(struct imap_client *c, size_t n)
{
	struct resp *r = &c->r;
	size_t cap;
	char *a;

	if (n > RESP_ARENA_MAX || r->alen > RESP_ARENA_MAX - n) {
		client_fail(c, IMAP_ERR_TEMP, "response from server too large");
		return (-1);
	}
	if (r->alen + n > r->acap) {
		cap = r->acap ? r->acap : 1024;
		while (cap < r->alen + n)
			cap *= 2;
		if ((a = realloc(r->arena, cap)) == NULL) {
			client_fail(c, IMAP_ERR_TEMP, "out of memory");
			return (-1);
		}
		r->arena = a;
		r->acap = cap;
	}
	return (0);
}

/* arena_add - append s[0..n) and a NUL to the arena; its offset */
static int
arena_add(struct imap_client *c, const char *s, size_t n, size_t *off_r)
{
	struct resp *r = &c->r;

	if (arena_reserve(c, n + 1) == -1)
		return (-1);
	if (off_r != NULL)
		*off_r = r->alen;
	if (n > 0)
		memcpy(r->arena + r->alen, s, n);
	r->alen += n;
	r->arena[r->alen++] = '\0';
	return (0);
}

/* arena_extend_last - grow the string that ends the arena by s[0..n) */
static int
arena_extend_last(struct imap_client *c, const char *s, size_t n)
{
	struct resp *r = &c->r;

	if (arena_reserve(c, n) == -1)
		return (-1);
	memcpy(r->arena + r->alen - 1, s, n);
	r->alen += n;
	r->arena[r->alen - 1] = '\0';
	return (0);
}

/* collect_tok - collect one token */
static int
collect_tok(struct imap_client *c, enum imap_ev_type type, unsigned depth,
    uint64_t num, const char *s, size_t n)
{
	struct resp *r = &c->r;
	struct ctok *t;
	size_t cap;

	if (r->ntoks >= RESP_TOKENS_MAX) {
		client_fail(c, IMAP_ERR_TEMP, "response from server has too "
		    "many tokens");
		return (-1);
	}
	if (r->ntoks == r->captoks) {
		cap = r->captoks ? r->captoks * 2 : 64;
		if ((t = reallocarray(r->toks, cap, sizeof(*t))) == NULL) {
			client_fail(c, IMAP_ERR_TEMP, "out of memory");
			return (-1);
		}
		r->toks = t;
		r->captoks = cap;
	}
	t = &r->toks[r->ntoks];
	t->type = type;
	t->depth = depth;
	t->num = num;
	t->len = n;
	if (arena_add(c, s, n, &t->off) == -1)
		return (-1);
	r->ntoks++;
	return (0);
}

static const char *
tstr(const struct imap_client *c, const struct ctok *t)
{
	return (c->r.arena + t->off);
}

/* is_string - a token usable as an astring (mailbox name etc.) */
static int
is_string(const struct ctok *t)
{
	return (t->type == IMAP_EV_STRING || t->type == IMAP_EV_ATOM ||
	    t->type == IMAP_EV_NUMBER || t->type == IMAP_EV_NIL);
}

/* collect_event - a token of a collected response */
static void
collect_event(struct imap_client *c, const struct imap_event *ev)
{
	struct resp *r = &c->r;

	switch (ev->type) {
	case IMAP_EV_CODE_BEGIN:
		str_copy(r->code, ev->str, sizeof(r->code));
		r->in_code = 1;
		r->code_t0 = r->ntoks;
		return;
	case IMAP_EV_CODE_END:
		r->in_code = 0;
		r->code_t1 = r->ntoks;
		return;
	case IMAP_EV_TEXT:
		if (r->in_code) {
			(void)collect_tok(c, IMAP_EV_ATOM, 0, 0, ev->str,
			    ev->len);
			return;
		}
		if (arena_add(c, ev->str, ev->len, &r->text_off) == 0) {
			r->text_len = ev->len;
			r->have_text = 1;
		}
		return;
	case IMAP_EV_LITERAL_BEGIN:
		/* a big literal where a small string belongs: keep it as a
		 * string, bounded by the arena */
		if (collect_tok(c, IMAP_EV_STRING, ev->depth, 0, "", 0) == 0)
			r->lit_open = 1;
		return;
	case IMAP_EV_LITERAL_DATA:
		if (!r->lit_open || r->ntoks == 0)
			return;
		if (arena_extend_last(c, ev->str, ev->len) == 0)
			r->toks[r->ntoks - 1].len += ev->len;
		return;
	case IMAP_EV_LITERAL_END:
		r->lit_open = 0;
		return;
	default:
		(void)collect_tok(c, ev->type, ev->depth, ev->num, ev->str,
		    ev->len);
		return;
	}
}

/* code_args_text - the code's arguments as one line of text */
static void
code_args_text(const struct imap_client *c, char *buf, size_t len)
{
	const struct resp *r = &c->r;
	char piece[TEXT_MAX];
	size_t i, o = 0, n;
	int sep = 0;

	buf[0] = '\0';
	for (i = r->code_t0; i < r->code_t1; i++) {
		const struct ctok *t = &r->toks[i];

		if (t->type == IMAP_EV_LIST_BEGIN) {
			snprintf(piece, sizeof(piece), "%s(", sep ? " " : "");
			sep = 0;
		} else if (t->type == IMAP_EV_LIST_END) {
			snprintf(piece, sizeof(piece), ")");
			sep = 1;
		} else {
			char v[TEXT_MAX - 2];

			sanitize(v, sizeof(v), tstr(c, t), t->len);
			snprintf(piece, sizeof(piece), "%s%s", sep ? " " : "",
			    v);
			sep = 1;
		}
		n = strlen(piece);
		if (o + n + 1 > len)
			break;
		memcpy(buf + o, piece, n + 1);
		o += n;
	}
}

/* ---- capabilities ------------------------------------------------------------ */

/* caps_set - replace the capability list by the ATOM tokens [t0, t1) */
static void
caps_set(struct imap_client *c, size_t t0, size_t t1)
{
	const struct ctok *t;
	char name[128];
	size_t i, k;
	uint64_t v;
	const char *p;

	strlist_clear(&c->caps);
	c->capbits = 0;
	c->appendlimit = 0;
	for (i = t0; i < t1; i++) {
		t = &c->r.toks[i];
		if (t->type != IMAP_EV_ATOM || t->len >= sizeof(name))
			continue;
		memcpy(name, tstr(c, t), t->len + 1);
		for (k = 0; name[k] != '\0'; k++)
			if (name[k] >= 'a' && name[k] <= 'z')
				name[k] = (char)(name[k] - 'a' + 'A');
		if (strlist_add(&c->caps, name, t->len) == -1) {
			client_fail(c, IMAP_ERR_TEMP, "out of memory");
			return;
		}
		for (k = 0; k < sizeof(cap_names) / sizeof(cap_names[0]); k++)
			if (strcmp(name, cap_names[k].name) == 0)
				c->capbits |= UINT64_C(1) << cap_names[k].cap;
		if (strncmp(name, "APPENDLIMIT=", 12) == 0) {
			c->capbits |= UINT64_C(1) << IMAP_CAP_APPENDLIMIT;
			v = 0;
			for (p = name + 12; *p >= '0' && *p <= '9'; p++) {
				if (v > (UINT64_MAX - 9) / 10)
					break;
				v = v * 10 + (uint64_t)(*p - '0');
			}
			if (*p == '\0')
				c->appendlimit = v;
		}
	}
	/* RFC 7162: QRESYNC implies CONDSTORE */
	if (has_cap(c, IMAP_CAP_QRESYNC))
		c->capbits |= UINT64_C(1) << IMAP_CAP_CONDSTORE;
	c->caps_known = 1;
}

/* code_apply_caps - a [CAPABILITY ...] code replaces the list */
static void
code_apply_caps(struct imap_client *c)
{
	if (strcmp(c->r.code, "CAPABILITY") == 0)
		caps_set(c, c->r.code_t0, c->r.code_t1);
}

/* ---- SELECT state from codes and untagged data ----------------------------- */

/* select_target - the mailbox state untagged data updates */
static struct mbox_acc *
select_target(struct imap_client *c)
{
	struct imap_cmd *sel = oldest_kind(c, K_SELECT, K_SELECT);

	if (sel != NULL)
		return (sel->mbox);
	return (c->have_cur ? &c->cur : NULL);
}

/* code_number - the first argument of the code when it is a number */
static int
code_number(const struct imap_client *c, uint64_t *v_r)
{
	const struct resp *r = &c->r;

	if (r->code_t1 <= r->code_t0 ||
	    r->toks[r->code_t0].type != IMAP_EV_NUMBER)
		return (0);
	*v_r = r->toks[r->code_t0].num;
	return (1);
}

/* code_apply_mbox - SELECT-related response codes */
static void
code_apply_mbox(struct imap_client *c, struct mbox_acc *a)
{
	const struct resp *r = &c->r;
	const struct ctok *t;
	uint64_t v;
	size_t i;

	if (a == NULL || r->code[0] == '\0')
		return;
	if (strcmp(r->code, "UIDVALIDITY") == 0 && code_number(c, &v))
		a->mb.uidvalidity = v;
	else if (strcmp(r->code, "UIDNEXT") == 0 && code_number(c, &v))
		a->mb.uidnext = v;
	else if (strcmp(r->code, "UNSEEN") == 0 && code_number(c, &v))
		a->mb.unseen = v;
	else if (strcmp(r->code, "HIGHESTMODSEQ") == 0 && code_number(c, &v))
		a->mb.highestmodseq = v;
	else if (strcmp(r->code, "NOMODSEQ") == 0) {
		a->mb.nomodseq = 1;
		a->mb.highestmodseq = 0;
	} else if (strcmp(r->code, "READ-ONLY") == 0)
		a->mb.readonly = 1;
	else if (strcmp(r->code, "READ-WRITE") == 0)
		a->mb.readonly = 0;
	else if (strcmp(r->code, "PERMANENTFLAGS") == 0) {
		strlist_clear(&a->permflags);
		a->mb.perm_keywords = 0;
		a->mb.permflags_known = 1;
		for (i = r->code_t0; i < r->code_t1; i++) {
			t = &r->toks[i];
			if (t->type != IMAP_EV_ATOM || t->depth != 1)
				continue;
			if (a->permflags.count >= FLAGS_MAX)
				break;
			if (strcmp(tstr(c, t), "\\*") == 0)
				a->mb.perm_keywords = 1;
			if (strlist_add(&a->permflags, tstr(c, t), t->len) == -1)
				client_fail(c, IMAP_ERR_TEMP, "out of memory");
		}
	}
	mbox_views(a);
}

/* ---- FETCH as a stream --------------------------------------------------------- */

static int
is_body_item(const char *item)
{
	return (strncasecmp(item, "BODY[", 5) == 0 ||
	    strncasecmp(item, "BINARY[", 7) == 0 ||
	    strcasecmp(item, "RFC822") == 0 ||
	    strcasecmp(item, "RFC822.HEADER") == 0 ||
	    strcasecmp(item, "RFC822.TEXT") == 0);
}

/* fetch_view - point the public message at the collected items */
static const struct imap_fetch_msg *
fetch_view(struct fetch_state *f)
{
	f->m.flags.v = (const char *const *)f->flags.items;
	f->m.flags.n = f->flags.count;
	f->m.internaldate = f->internaldate;
	return (&f->m);
}

static const struct imap_fetch_cbs *
fetch_cbs(struct imap_client *c, void **arg_r)
{
	struct imap_cmd *t = c->r.target;

	if (c->free_pending || t == NULL || !t->has_fcbs)
		return (NULL);
	*arg_r = t->arg;
	return (&t->fcbs);
}

static void
fetch_body_begin(struct imap_client *c, uint64_t size)
{
	struct fetch_state *f = &c->r.f;
	const struct imap_fetch_cbs *cbs;
	void *arg = NULL;

	f->m.body_size = size;
	f->m.body_nil = 0;
	f->m.have |= IMAP_FETCH_BODY;
	f->body_open = 1;
	if ((cbs = fetch_cbs(c, &arg)) != NULL && cbs->body_begin != NULL)
		cbs->body_begin(c, fetch_view(f), f->item, size, arg);
}

static void
fetch_body_data(struct imap_client *c, const void *data, size_t len)
{
	const struct imap_fetch_cbs *cbs;
	void *arg = NULL;

	if ((cbs = fetch_cbs(c, &arg)) != NULL && cbs->body_data != NULL &&
	    len > 0)
		cbs->body_data(c, data, len, arg);
}

static void
fetch_body_end(struct imap_client *c)
{
	const struct imap_fetch_cbs *cbs;
	void *arg = NULL;

	c->r.f.body_open = 0;
	if ((cbs = fetch_cbs(c, &arg)) != NULL && cbs->body_end != NULL)
		cbs->body_end(c, arg);
}

/* fetch_value - the value of the item just named */
static int
fetch_value(struct imap_client *c, const struct imap_event *ev)
{
	struct fetch_state *f = &c->r.f;
	const char *item = f->item;

	f->stage = F_NAME;
	if (is_body_item(item)) {
		if (ev->type == IMAP_EV_STRING) {
			fetch_body_begin(c, ev->len);
			fetch_body_data(c, ev->str, ev->len);
			fetch_body_end(c);
		} else if (ev->type == IMAP_EV_NIL) {
			f->m.body_nil = 1;
		} else if (ev->type == IMAP_EV_LITERAL_BEGIN) {
			fetch_body_begin(c, ev->num);
			f->stage = F_BODY;
		} else
			return (-1);
		return (0);
	}
	if (strcasecmp(item, "UID") == 0) {
		if (ev->type != IMAP_EV_NUMBER || ev->num == 0)
			return (-1);
		f->m.uid = ev->num;
		f->m.have |= IMAP_FETCH_UID;
	} else if (strcasecmp(item, "RFC822.SIZE") == 0) {
		if (ev->type != IMAP_EV_NUMBER)
			return (-1);
		f->m.size = ev->num;
		f->m.have |= IMAP_FETCH_SIZE;
	} else if (strcasecmp(item, "INTERNALDATE") == 0) {
		if (ev->type != IMAP_EV_STRING)
			return (-1);
		if (imap_parse_date_time(ev->str, &f->m.internaldate_t,
		    &f->m.internaldate_tz) == 0) {
			free(f->internaldate);
			if ((f->internaldate = strdup(ev->str)) == NULL)
				return (-1);
			f->m.have |= IMAP_FETCH_INTERNALDATE;
		} else
			log_debug("%s: ignoring malformed INTERNALDATE",
			    c->id);
	} else if (strcasecmp(item, "FLAGS") == 0) {
		if (ev->type != IMAP_EV_LIST_BEGIN)
			return (-1);
		strlist_clear(&f->flags);
		f->stage = F_FLAGS;
	} else if (strcasecmp(item, "MODSEQ") == 0) {
		if (ev->type != IMAP_EV_LIST_BEGIN)
			return (-1);
		f->stage = F_MODSEQ;
	} else if (ev->type == IMAP_EV_LIST_BEGIN) {
		f->skip_depth = ev->depth;
		f->stage = F_SKIP;
	} else if (ev->type == IMAP_EV_LITERAL_BEGIN)
		f->stage = F_SKIP_LIT;
	else if (ev->type == IMAP_EV_LIST_END)
		return (-1);
	return (0);
}

/* fetch_event - one event inside "* n FETCH (...)" */
static void
fetch_event(struct imap_client *c, const struct imap_event *ev)
{
	struct fetch_state *f = &c->r.f;

	switch (f->stage) {
	case F_START:
		if (ev->type != IMAP_EV_LIST_BEGIN || ev->depth != 0)
			break;
		f->stage = F_NAME;
		return;
	case F_NAME:
		if (ev->type == IMAP_EV_LIST_END && ev->depth == 0) {
			f->stage = F_DONE;
			return;
		}
		if (ev->type != IMAP_EV_ATOM || ev->depth != 1)
			break;
		str_copy(f->item, ev->str, sizeof(f->item));
		f->stage = F_VALUE;
		return;
	case F_VALUE:
		if (fetch_value(c, ev) == -1)
			break;
		return;
	case F_FLAGS:
		if (ev->type == IMAP_EV_LIST_END && ev->depth == 1) {
			f->m.have |= IMAP_FETCH_FLAGS;
			f->stage = F_NAME;
			return;
		}
		if (ev->type != IMAP_EV_ATOM || ev->depth != 2)
			break;
		if (f->flags.count >= FLAGS_MAX) {
			client_fail(c, IMAP_ERR_TEMP, "too many flags in a "
			    "FETCH response");
			return;
		}
		if (strlist_add(&f->flags, ev->str, ev->len) == -1)
			client_fail(c, IMAP_ERR_TEMP, "out of memory");
		return;
	case F_MODSEQ:
		if (ev->type == IMAP_EV_NUMBER && ev->depth == 2) {
			f->m.modseq = ev->num;
			f->m.have |= IMAP_FETCH_MODSEQ;
			return;
		}
		if (ev->type == IMAP_EV_LIST_END && ev->depth == 1) {
			f->stage = F_NAME;
			return;
		}
		break;
	case F_SKIP:
		if (ev->type == IMAP_EV_LIST_END && ev->depth == f->skip_depth)
			f->stage = F_NAME;
		return;
	case F_SKIP_LIT:
		if (ev->type == IMAP_EV_LITERAL_END)
			f->stage = F_NAME;
		return;
	case F_BODY:
		if (ev->type == IMAP_EV_LITERAL_DATA) {
			fetch_body_data(c, ev->str, ev->len);
			return;
		}
		if (ev->type == IMAP_EV_LITERAL_END) {
			fetch_body_end(c);
			f->stage = F_NAME;
			return;
		}
		break;
	case F_DONE:
		break;
	}
	client_fail(c, IMAP_ERR_TEMP, "malformed FETCH response from server");
}

/* fetch_done - the FETCH response is complete */
static void
fetch_done(struct imap_client *c)
{
	struct fetch_state *f = &c->r.f;
	const struct imap_fetch_cbs *cbs;
	void *arg = NULL;

	if (f->stage != F_DONE) {
		client_fail(c, IMAP_ERR_TEMP, "malformed FETCH response from "
		    "server");
		return;
	}
	f->m.seq = c->r.num;
	if ((cbs = fetch_cbs(c, &arg)) != NULL) {
		if (cbs->msg != NULL)
			cbs->msg(c, fetch_view(f), arg);
	} else if (c->r.target == NULL && c->ucbs.fetch != NULL &&
	    !c->free_pending)
		c->ucbs.fetch(c, fetch_view(f), c->uarg);
}

/* search_event - "* SEARCH 2 84 882 [(MODSEQ 917162500)]" as a stream */
static void
search_event(struct imap_client *c, const struct imap_event *ev)
{
	struct resp *r = &c->r;
	struct imap_cmd *t = r->target;

	switch (ev->type) {
	case IMAP_EV_NUMBER:
		if (ev->depth == 0) {
			if (t != NULL && t->search_uid != NULL &&
			    !c->free_pending)
				t->search_uid(c, ev->num, t->arg);
		} else if (r->search_modseq_next && t != NULL)
			t->search_modseq = ev->num;
		r->search_modseq_next = 0;
		return;
	case IMAP_EV_ATOM:
		r->search_modseq_next = r->search_in_list &&
		    strcasecmp(ev->str, "MODSEQ") == 0;
		return;
	case IMAP_EV_LIST_BEGIN:
		r->search_in_list = 1;
		return;
	case IMAP_EV_LIST_END:
		r->search_in_list = 0;
		return;
	default:
		client_fail(c, IMAP_ERR_TEMP, "malformed SEARCH response");
		return;
	}
}

/* ---- collected untagged responses ---------------------------------------- */

/*
 * list_done - "* LIST (attrs) delim name [ext]" or LSUB: decode and
 * give it to the LIST/LSUB command in flight.
 */
static void
list_done(struct imap_client *c, int lsub)
{
	struct resp *r = &c->r;
	struct imap_list_entry e;
	struct strlist attrs = { 0 };
	struct imap_cmd *t;
	const struct ctok *tk;
	char *utf8 = NULL, err[128];
	size_t i = 0, k, n;

	memset(&e, 0, sizeof(e));
	e.lsub = lsub;
	if (r->ntoks < 4 || r->toks[0].type != IMAP_EV_LIST_BEGIN)
		goto bad;
	for (i = 1; i < r->ntoks && r->toks[i].depth == 1; i++) {
		tk = &r->toks[i];
		if (tk->type != IMAP_EV_ATOM)
			goto bad;
		if (attrs.count >= FLAGS_MAX)
			continue;
		if (strlist_add(&attrs, tstr(c, tk), tk->len) == -1)
			goto oom;
		for (k = 0; k < sizeof(mbox_attrs) / sizeof(mbox_attrs[0]); k++)
			if (strcasecmp(tstr(c, tk), mbox_attrs[k].name) == 0)
				e.attrs |= mbox_attrs[k].bit;
	}
	if (i + 2 >= r->ntoks || r->toks[i].type != IMAP_EV_LIST_END)
		goto bad;
	i++;
	tk = &r->toks[i++];
	if (tk->type == IMAP_EV_STRING && tk->len == 1)
		e.delim = tstr(c, tk)[0];
	else if (tk->type != IMAP_EV_NIL)
		goto bad;
	if (i >= r->ntoks || !is_string(&r->toks[i]) || r->toks[i].depth != 0)
		goto bad;
	tk = &r->toks[i];
	if (memchr(tstr(c, tk), '\0', tk->len) != NULL || tk->len == 0)
		goto bad;
	e.name = tstr(c, tk);
	n = tk->len;
	if (strcasecmp(e.name, "INBOX") == 0)
		e.name_utf8 = e.name;
	else if ((utf8 = malloc(MUTF7_DECODE_MAX(n))) == NULL)
		goto oom;
	else if (imap_client_mailbox_decode(c, e.name, utf8,
	    MUTF7_DECODE_MAX(n), err, sizeof(err)) == 0)
		e.name_utf8 = utf8;
	else {
		char shown[128];

		sanitize(shown, sizeof(shown), e.name, n);
		log_info("%s: mailbox name \"%s\" does not decode: %s", c->id,
		    shown, err);
	}
	e.attributes.v = (const char *const *)attrs.items;
	e.attributes.n = attrs.count;
	t = oldest_kind(c, lsub ? K_LSUB : K_LIST, lsub ? K_LSUB : K_LIST);
	if (lsub)
		e.attrs |= IMAP_MBOX_SUBSCRIBED;
	if (t != NULL && t->lcbs.mailbox != NULL && !c->free_pending)
		t->lcbs.mailbox(c, &e, t->arg);
	free(utf8);
	strlist_clear(&attrs);
	return;
bad:
	strlist_clear(&attrs);
	client_fail(c, IMAP_ERR_TEMP, "malformed %s response from server",
	    lsub ? "LSUB" : "LIST");
	return;
oom:
	strlist_clear(&attrs);
	client_fail(c, IMAP_ERR_TEMP, "out of memory");
}

/* status_resp_done - "* STATUS name (MESSAGES 3 UIDNEXT 4 ...)" */
static void
status_resp_done(struct imap_client *c)
{
	static const struct {
		const char	*name;
		unsigned	 bit;
		size_t		 off;
	} items[] = {
		{ "MESSAGES", IMAP_STATUS_MESSAGES,
		    offsetof(struct imap_status_info, messages) },
		{ "UIDNEXT", IMAP_STATUS_UIDNEXT,
		    offsetof(struct imap_status_info, uidnext) },
		{ "UIDVALIDITY", IMAP_STATUS_UIDVALIDITY,
		    offsetof(struct imap_status_info, uidvalidity) },
		{ "UNSEEN", IMAP_STATUS_UNSEEN,
		    offsetof(struct imap_status_info, unseen) },
		{ "HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ,
		    offsetof(struct imap_status_info, highestmodseq) },
		{ "SIZE", IMAP_STATUS_SIZE,
		    offsetof(struct imap_status_info, size) },
		{ "APPENDLIMIT", IMAP_STATUS_APPENDLIMIT,
		    offsetof(struct imap_status_info, appendlimit) },
	};
	struct resp *r = &c->r;
	struct imap_status_info st;
	struct imap_cmd *cmd, *t = NULL;
	const struct ctok *name, *v;
	size_t i, k;

	memset(&st, 0, sizeof(st));
	if (r->ntoks < 2 || !is_string(&r->toks[0]) ||
	    r->toks[1].type != IMAP_EV_LIST_BEGIN)
		goto bad;
	st.mailbox = tstr(c, &r->toks[0]);
	for (i = 2; i + 1 < r->ntoks && r->toks[i].depth == 1; i += 2) {
		name = &r->toks[i];
		v = &r->toks[i + 1];
		if (name->type != IMAP_EV_ATOM)
			goto bad;
		if (v->type != IMAP_EV_NUMBER) {
			/* APPENDLIMIT NIL: no limit */
			if (v->type == IMAP_EV_NIL)
				continue;
			goto bad;
		}
		for (k = 0; k < sizeof(items) / sizeof(items[0]); k++)
			if (strcasecmp(tstr(c, name), items[k].name) == 0) {
				st.have |= items[k].bit;
				memcpy((char *)&st + items[k].off, &v->num,
				    sizeof(v->num));
			}
	}
	if (i >= r->ntoks || r->toks[i].type != IMAP_EV_LIST_END)
		goto bad;
	/*
	 * To the STATUS command that named this mailbox.  A server may
	 * spell the name differently (case, normalisation): then to the
	 * oldest of a LIST-STATUS or a STATUS still without an answer,
	 * since servers answer in order.
	 */
	TAILQ_FOREACH(cmd, &c->inflight, q)
		if (cmd->kind == K_STATUS && !cmd->st_answered &&
		    cmd->mailbox != NULL && inbox_eq(cmd->mailbox, st.mailbox)) {
			t = cmd;
			break;
		}
	if (t == NULL)
		TAILQ_FOREACH(cmd, &c->inflight, q)
			if ((cmd->kind == K_STATUS && !cmd->st_answered) ||
			    (cmd->kind == K_LIST && cmd->lcbs.status != NULL)) {
				t = cmd;
				break;
			}
	if (t == NULL)
		return;
	if (t->kind == K_STATUS) {
		st.mailbox = t->mailbox;
		t->stinfo = st;
		t->st_answered = 1;
		return;
	}
	if (!c->free_pending)
		t->lcbs.status(c, &st, t->arg);
	return;
bad:
	client_fail(c, IMAP_ERR_TEMP, "malformed STATUS response from server");
}

/* vanished_done - "* VANISHED [(EARLIER)] set" */
static void
vanished_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct imap_cmd *t;
	const char *set;
	uint64_t lo, hi;
	size_t i = 0;
	int earlier = 0, rc;

	if (r->ntoks >= 3 && r->toks[0].type == IMAP_EV_LIST_BEGIN) {
		earlier = r->toks[1].type == IMAP_EV_ATOM &&
		    strcasecmp(tstr(c, &r->toks[1]), "EARLIER") == 0;
		i = 3;
	}
	if (i >= r->ntoks || (r->toks[i].type != IMAP_EV_ATOM &&
	    r->toks[i].type != IMAP_EV_NUMBER)) {
		client_fail(c, IMAP_ERR_TEMP, "malformed VANISHED response");
		return;
	}
	set = tstr(c, &r->toks[i]);
	t = oldest_fetcher(c);
	while ((rc = imap_parse_seqset_next(&set, &lo, &hi)) == 1) {
		if (!earlier && c->have_cur) {
			uint64_t n = hi - lo + 1;

			c->cur.mb.exists = c->cur.mb.exists > n ?
			    c->cur.mb.exists - n : 0;
		}
		if (c->free_pending)
			continue;
		if (t != NULL && t->fcbs.vanished != NULL)
			t->fcbs.vanished(c, lo, hi, earlier, t->arg);
		else if (t == NULL && c->ucbs.vanished != NULL)
			c->ucbs.vanished(c, lo, hi, c->uarg);
	}
	if (rc == -1)
		client_fail(c, IMAP_ERR_TEMP, "malformed VANISHED set");
}

/* esearch_done - "* ESEARCH (TAG "A5") UID ALL 1:3,7" for UID SEARCH */
static void
esearch_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct imap_cmd *t = NULL;
	const char *set;
	uint64_t lo, hi, u;
	size_t i = 0;
	int rc;

	if (r->ntoks >= 4 && r->toks[0].type == IMAP_EV_LIST_BEGIN &&
	    r->toks[1].type == IMAP_EV_ATOM &&
	    strcasecmp(tstr(c, &r->toks[1]), "TAG") == 0 &&
	    is_string(&r->toks[2])) {
		t = find_inflight_tag(c, tstr(c, &r->toks[2]));
		i = 4;
	}
	if (t == NULL || t->kind != K_SEARCH)
		return;
	for (; i + 1 < r->ntoks; i++) {
		if (r->toks[i].type != IMAP_EV_ATOM ||
		    strcasecmp(tstr(c, &r->toks[i]), "ALL") != 0)
			continue;
		set = tstr(c, &r->toks[i + 1]);
		while ((rc = imap_parse_seqset_next(&set, &lo, &hi)) == 1) {
			if (hi - lo >= ESEARCH_RANGE_MAX) {
				client_fail(c, IMAP_ERR_TEMP, "ESEARCH range "
				    "too large");
				return;
			}
			for (u = lo; !c->free_pending && t->search_uid != NULL;
			    u++) {
				t->search_uid(c, u, t->arg);
				if (u == hi)
					break;
			}
		}
		if (rc == -1)
			client_fail(c, IMAP_ERR_TEMP, "malformed ESEARCH set");
		return;
	}
}

/* namespace_done - first personal namespace: (("prefix" "delim") ...) */
static void
namespace_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct imap_cmd *t = oldest_kind(c, K_NAMESPACE, K_NAMESPACE);

	if (t == NULL || t->ns_have)
		return;
	if (r->ntoks >= 5 && r->toks[0].type == IMAP_EV_LIST_BEGIN &&
	    r->toks[1].type == IMAP_EV_LIST_BEGIN &&
	    is_string(&r->toks[2]) && (r->toks[3].type == IMAP_EV_NIL ||
	    (r->toks[3].type == IMAP_EV_STRING && r->toks[3].len == 1))) {
		if ((t->ns_prefix = strdup(tstr(c, &r->toks[2]))) == NULL) {
			client_fail(c, IMAP_ERR_TEMP, "out of memory");
			return;
		}
		t->ns_delim = r->toks[3].type == IMAP_EV_NIL ? 0 :
		    tstr(c, &r->toks[3])[0];
		t->ns_have = 1;
	}
}

/* id_done - log the server's ID ("name" "Dovecot" ...) */
static void
id_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	char line[TEXT_MAX], v[128];
	size_t i;

	line[0] = '\0';
	for (i = 1; i < r->ntoks && r->toks[i].depth == 1; i++) {
		sanitize(v, sizeof(v), tstr(c, &r->toks[i]), r->toks[i].len);
		sappend(line, sizeof(line), "%s%s", i % 2 ? (i > 1 ? " " : "") :
		    "=", v);
	}
	log_info("%s: server id: %s", c->id, line[0] ? line : "NIL");
}

/* collect_done - dispatch a collected untagged data response */
static void
collect_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct mbox_acc *a;
	const char *n = r->name;
	size_t i;

	if (strcmp(n, "CAPABILITY") == 0)
		caps_set(c, 0, r->ntoks);
	else if (strcmp(n, "ENABLED") == 0) {
		for (i = 0; i < r->ntoks; i++) {
			const char *s = tstr(c, &r->toks[i]);

			if (strcasecmp(s, "CONDSTORE") == 0)
				c->enable_confirmed |= IMAP_ENABLE_CONDSTORE;
			else if (strcasecmp(s, "QRESYNC") == 0)
				c->enable_confirmed |= IMAP_ENABLE_QRESYNC |
				    IMAP_ENABLE_CONDSTORE;
			else if (strcasecmp(s, "UTF8=ACCEPT") == 0)
				c->enable_confirmed |= IMAP_ENABLE_UTF8;
		}
	} else if (strcmp(n, "LIST") == 0)
		list_done(c, 0);
	else if (strcmp(n, "LSUB") == 0)
		list_done(c, 1);
	else if (strcmp(n, "STATUS") == 0)
		status_resp_done(c);
	else if (strcmp(n, "FLAGS") == 0) {
		if ((a = select_target(c)) == NULL)
			return;
		strlist_clear(&a->flags);
		for (i = 0; i < r->ntoks; i++)
			if (r->toks[i].type == IMAP_EV_ATOM &&
			    r->toks[i].depth == 1 && a->flags.count < FLAGS_MAX &&
			    strlist_add(&a->flags, tstr(c, &r->toks[i]),
			    r->toks[i].len) == -1)
				client_fail(c, IMAP_ERR_TEMP, "out of memory");
		mbox_views(a);
	} else if (strcmp(n, "EXISTS") == 0 && r->has_num) {
		struct imap_cmd *sel = oldest_kind(c, K_SELECT, K_SELECT);

		if (sel != NULL)
			sel->mbox->mb.exists = r->num;
		else {
			if (c->have_cur)
				c->cur.mb.exists = r->num;
			if (c->ucbs.exists != NULL && !c->free_pending)
				c->ucbs.exists(c, r->num, c->uarg);
		}
	} else if (strcmp(n, "RECENT") == 0 && r->has_num) {
		if ((a = select_target(c)) != NULL)
			a->mb.recent = r->num;
	} else if (strcmp(n, "EXPUNGE") == 0 && r->has_num) {
		if (c->have_cur && c->cur.mb.exists > 0)
			c->cur.mb.exists--;
		if (c->ucbs.expunge != NULL && !c->free_pending)
			c->ucbs.expunge(c, r->num, c->uarg);
	} else if (strcmp(n, "VANISHED") == 0)
		vanished_done(c);
	else if (strcmp(n, "ESEARCH") == 0)
		esearch_done(c);
	else if (strcmp(n, "NAMESPACE") == 0)
		namespace_done(c);
	else if (strcmp(n, "ID") == 0)
		id_done(c);
	else
		log_debug("%s: ignoring untagged %s", c->id, n);
}

/* ---- status responses, completions, continuations ------------------------ */

static void
greeting(struct imap_client *c)
{
	struct resp *r = &c->r;
	char text[TEXT_MAX];

	sanitize(text, sizeof(text), r->arena + r->text_off, r->text_len);
	if (strcmp(r->name, "BYE") == 0) {
		str_copy(c->err_code, r->code, sizeof(c->err_code));
		client_fail(c, IMAP_ERR_TEMP, "server refused the connection: "
		    "%s", text);
		return;
	}
	if (strcmp(r->name, "OK") != 0 && strcmp(r->name, "PREAUTH") != 0) {
		client_fail(c, IMAP_ERR_TEMP, "bad greeting from server: %s %s",
		    r->name, text);
		return;
	}
	code_apply_caps(c);
	if (strcmp(r->name, "PREAUTH") == 0) {
		if (c->tls == IMAP_TLS_STARTTLS && !c->tls_active) {
			client_fail(c, IMAP_ERR_PERM, "server sent PREAUTH, "
			    "STARTTLS is impossible");
			return;
		}
		c->authenticated = 1;
	}
	log_debug("%s: greeting: %s %s", c->id, r->name, text);
	c->state = CS_SETUP;
	setup_next(c);
}

/* status_done - untagged OK / NO / BAD / BYE / PREAUTH */
static void
status_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	char text[TEXT_MAX];

	if (c->state == CS_GREETING) {
		greeting(c);
		return;
	}
	sanitize(text, sizeof(text), r->arena + r->text_off, r->text_len);
	code_apply_caps(c);
	code_apply_mbox(c, select_target(c));
	if (strcmp(r->code, "ALERT") == 0)
		log_warnx("%s: server alert: %s", c->id, text);
	if (strcmp(r->name, "BYE") == 0) {
		str_copy(c->bye_text, text, sizeof(c->bye_text));
		str_copy(c->bye_code, r->code, sizeof(c->bye_code));
		if (!c->logout_sent)
			log_notice("%s: server says BYE: %s%s%s%s", c->id,
			    r->code[0] ? "[" : "", r->code,
			    r->code[0] ? "] " : "", text);
	} else if (strcmp(r->name, "OK") != 0)
		log_info("%s: server says %s: %s", c->id, r->name, text);
}

/*
 * tagged_done - a command is complete: build its result and report it.
 */
static void
tagged_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct imap_result res;
	struct imap_cmd *cmd;
	char text[TEXT_MAX], args[TEXT_MAX], shown[64];
	int midwrite;

	if ((cmd = find_inflight_tag(c, r->tag)) == NULL) {
		sanitize(shown, sizeof(shown), r->tag, strlen(r->tag));
		client_fail(c, IMAP_ERR_TEMP, "server completed tag \"%s\" we "
		    "did not send", shown);
		return;
	}
	sanitize(text, sizeof(text), r->arena + r->text_off, r->text_len);
	code_args_text(c, args, sizeof(args));
	memset(&res, 0, sizeof(res));
	res.status = r->tstatus;
	res.code = r->code;
	res.code_args = args;
	res.text = text;
	res.errclass = classify(cmd->kind, res.status, r->code, text);
	if (res.status != IMAP_OK)
		res.backoff_ms = imap_backoff_from_text(text);
	if (res.status == IMAP_OK)
		code_apply_caps(c);
	if (cmd->kind == K_SELECT) {
		code_apply_mbox(c, cmd->mbox);
		if (res.status == IMAP_OK) {
			if (mbox_copy(&c->cur, cmd->mbox) == -1) {
				client_fail(c, IMAP_ERR_TEMP, "out of memory");
				return;
			}
			c->have_cur = 1;
		} else
			c->have_cur = 0;	/* a failed SELECT deselects */
	}
	if (cmd->kind == K_APPEND && res.status == IMAP_OK &&
	    strcmp(r->code, "APPENDUID") == 0 && r->code_t1 >= r->code_t0 + 2 &&
	    r->toks[r->code_t0].type == IMAP_EV_NUMBER) {
		const struct ctok *st = &r->toks[r->code_t0 + 1];
		const char *set = tstr(c, st);
		uint64_t lo, hi;

		if (imap_parse_seqset_next(&set, &lo, &hi) == 1) {
			res.appenduid_validity = r->toks[r->code_t0].num;
			res.appenduid_first = lo;
			res.appenduid_set = tstr(c, st);
		}
	}
	if (res.status == IMAP_OK && cmd->kind == K_STARTTLS)
		c->switch_to = SW_TLS;
	if (res.status == IMAP_OK && cmd->kind == K_COMPRESS)
		c->switch_to = SW_Z;
	if (res.status == IMAP_OK && cmd->kind == K_LOGOUT)
		c->logout_ok = 1;
	if (res.status == IMAP_OK && cmd->kind == K_AUTH &&
	    cmd->auth_challenge != NULL)
		free(cmd->auth_challenge), cmd->auth_challenge = NULL;
	if (res.status != IMAP_OK && cmd->kind == K_AUTH &&
	    cmd->auth_challenge != NULL) {
		/* XOAUTH2's JSON error says more than "NO" */
		size_t tl = strlen(text);

		snprintf(text + tl, sizeof(text) - tl, " (%s)",
		    cmd->auth_challenge);
	}
	/* Did the server answer before the command was fully sent? */
	midwrite = c->writer == cmd && !cmd->waiting_cont &&
	    (cmd->app_left > 0 || cmd->segi < cmd->nsegs ||
	    (cmd->kind == K_APPEND && !cmd->app_ended));
	if (res.status == IMAP_OK)
		log_debug("%s: S: %s OK%s%s%s %s", c->id, cmd->tag,
		    r->code[0] ? " [" : "", r->code, r->code[0] ? "]" : "",
		    text);
	else
		log_info("%s: %s: %s%s%s%s %s (%s)", c->id, cmd->logline,
		    imap_status_name(res.status), r->code[0] ? " [" : "",
		    r->code, r->code[0] ? "]" : "", text,
		    imap_errclass_name(res.errclass));
	complete_cmd(c, cmd, &res);
	if (midwrite)
		client_fail(c, IMAP_ERR_TEMP, "server completed a command "
		    "before it was fully sent");
	else if (c->logout_ok)
		/* nothing can follow: close now rather than wait for the
		 * server to do it */
		client_fail(c, IMAP_ERR_NONE, "logged out");
	writer_run(c);
}

/* b64 - base64 of s[0..n) into a new string */
static char *
b64(const void *s, size_t n)
{
	char *out;

	if (n > INT_MAX / 2 || (out = malloc(4 * ((n + 2) / 3) + 1)) == NULL)
		return (NULL);
	EVP_EncodeBlock((unsigned char *)out, s, (int)n);
	return (out);
}

/* unb64_text - decode a server challenge for a message (best effort) */
static char *
unb64_text(const char *s, size_t n)
{
	unsigned char *raw;
	char *out;
	int len;

	if (n > INT_MAX / 2 || (raw = malloc(n / 4 * 3 + 4)) == NULL)
		return (NULL);
	len = EVP_DecodeBlock(raw, (const unsigned char *)s, (int)n);
	if (len < 0)
		len = 0;
	while (len > 0 && raw[len - 1] == '\0')	/* padding */
		len--;
	if ((out = malloc(TEXT_MAX)) != NULL)
		sanitize(out, TEXT_MAX, (const char *)raw, (size_t)len);
	free(raw);
	return (out);
}

/* cont_done - a "+" continuation request */
static void
cont_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct imap_cmd *w = c->writer, *auth;

	if (w != NULL && w->waiting_cont) {
		w->waiting_cont = 0;
		if (w->segi > 0 && w->segs[w->segi - 1].has_literal)
			w->app_left = w->lit_next;
		writer_run(c);
		arm_timeouts(c);
		return;
	}
	/* a SASL challenge after our response: only errors are expected
	 * (XOAUTH2 sends its JSON status); answer so that the server
	 * sends its tagged NO */
	if ((auth = oldest_kind(c, K_AUTH, K_AUTH)) != NULL) {
		free(auth->auth_challenge);
		auth->auth_challenge = unb64_text(r->arena + r->text_off,
		    r->text_len);
		if (c->auth == IMAP_AUTH_XOAUTH2)
			bufferevent_write(c->top, "\r\n", 2);
		else
			bufferevent_write(c->top, "*\r\n", 3);
		return;
	}
	client_fail(c, IMAP_ERR_TEMP, "unexpected continuation request from "
	    "server");
}

/* resp_end - the response is complete: dispatch it */
static void
resp_end(struct imap_client *c)
{
	struct resp *r = &c->r;

	if (c->state == CS_GREETING && r->kind != R_STATUS) {
		client_fail(c, IMAP_ERR_TEMP, "server did not greet");
		return;
	}
	switch (r->kind) {
	case R_TAGGED:
		tagged_done(c);
		break;
	case R_CONT:
		cont_done(c);
		break;
	case R_STATUS:
		status_done(c);
		break;
	case R_COLLECT:
		collect_done(c);
		break;
	case R_FETCH:
		fetch_done(c);
		break;
	case R_SEARCH:
	case R_NONE:
		break;
	}
	resp_reset(c);
}

/*
 * on_event - the parser's callback: start, feed or finish the current
 * response.  Returns IMAP_PARSE_PAUSE when the parser must stop (reading
 * paused by the caller, failure, or a stream layer to switch).
 */
static int
on_event(const struct imap_event *ev, void *arg)
{
	struct imap_client *c = arg;
	struct resp *r = &c->r;

	if (c->failed || c->free_pending)
		return (IMAP_PARSE_PAUSE);
	switch (ev->type) {
	case IMAP_EV_ERROR:
		client_fail(c, IMAP_ERR_TEMP, "protocol error: %s", ev->str);
		return (IMAP_PARSE_PAUSE);
	case IMAP_EV_UNTAGGED:
		str_copy(r->name, ev->str, sizeof(r->name));
		r->num = ev->num;
		r->has_num = (ev->flags & IMAP_EVF_NUM) != 0;
		if (strcmp(r->name, "FETCH") == 0 && r->has_num) {
			r->kind = R_FETCH;
			r->target = oldest_fetcher(c);
		} else if (strcmp(r->name, "SEARCH") == 0) {
			r->kind = R_SEARCH;
			r->target = oldest_kind(c, K_SEARCH, K_SEARCH);
		} else if (!r->has_num && (strcmp(r->name, "OK") == 0 ||
		    strcmp(r->name, "NO") == 0 || strcmp(r->name, "BAD") == 0 ||
		    strcmp(r->name, "BYE") == 0 ||
		    strcmp(r->name, "PREAUTH") == 0))
			r->kind = R_STATUS;
		else
			r->kind = R_COLLECT;
		break;
	case IMAP_EV_TAGGED:
		r->kind = R_TAGGED;
		str_copy(r->tag, ev->tag, sizeof(r->tag));
		r->tstatus = strcmp(ev->str, "OK") == 0 ? IMAP_OK :
		    strcmp(ev->str, "NO") == 0 ? IMAP_NO : IMAP_BAD;
		break;
	case IMAP_EV_CONTINUE:
		r->kind = R_CONT;
		break;
	case IMAP_EV_END:
		resp_end(c);
		break;
	default:
		if (r->kind == R_FETCH)
			fetch_event(c, ev);
		else if (r->kind == R_SEARCH)
			search_event(c, ev);
		else
			collect_event(c, ev);
		break;
	}
	return (c->paused || c->failed || c->free_pending || c->switch_to ?
	    IMAP_PARSE_PAUSE : 0);
}

/* ---- session setup ------------------------------------------------------------ */

static struct imap_cmd *
setup_cmd(struct imap_client *c, enum cmd_kind kind)
{
	struct imap_cmd *cmd;

	if ((cmd = cmd_new(c, kind, setup_cb, (void *)(uintptr_t)kind)) ==
	    NULL) {
		client_fail(c, IMAP_ERR_TEMP, "out of memory");
		return (NULL);
	}
	cmd->setup = 1;
	return (cmd);
}

/* wipe_secret - the secret has been used: forget it */
static void
wipe_secret(struct imap_client *c)
{
	if (c->secret != NULL) {
		explicit_bzero(c->secret, strlen(c->secret));
		free(c->secret);
		c->secret = NULL;
	}
}

/* auth_start - authenticate with the best mechanism allowed */
static void
auth_start(struct imap_client *c)
{
	struct imap_cmd *cmd;
	enum imap_auth_mech mech = c->auth;
	const char *name;
	char *raw, *enc;
	size_t ul, sl, n;

	if (c->secret == NULL) {
		client_fail(c, IMAP_ERR_AUTH, "no secret left to authenticate");
		return;
	}
	if (mech == IMAP_AUTH_AUTO)
		mech = has_cap(c, IMAP_CAP_AUTH_PLAIN) ? IMAP_AUTH_PLAIN :
		    IMAP_AUTH_LOGIN;
	c->auth = mech;
	if (mech == IMAP_AUTH_LOGIN) {
		if (has_cap(c, IMAP_CAP_LOGINDISABLED)) {
			client_fail(c, IMAP_ERR_PERM, "server allows no "
			    "authentication we can do (LOGINDISABLED, no "
			    "AUTH=PLAIN)");
			return;
		}
		if ((cmd = setup_cmd(c, K_LOGIN)) == NULL)
			return;
		cmd_add(cmd, "LOGIN ");
		if (cmd_add_astring(cmd, c->user, strlen(c->user), 0) == -1)
			goto oom;
		cmd_add(cmd, " ");
		if (cmd_add_astring(cmd, c->secret, strlen(c->secret), 1) == -1)
			goto oom;
		wipe_secret(c);
		cmd_queue(cmd);
		return;
	}
	if (mech == IMAP_AUTH_PLAIN && !has_cap(c, IMAP_CAP_AUTH_PLAIN)) {
		client_fail(c, IMAP_ERR_PERM, "server does not offer "
		    "AUTH=PLAIN");
		return;
	}
	if (mech == IMAP_AUTH_XOAUTH2 && !has_cap(c, IMAP_CAP_AUTH_XOAUTH2)) {
		client_fail(c, IMAP_ERR_PERM, "server does not offer "
		    "AUTH=XOAUTH2");
		return;
	}
	ul = strlen(c->user);
	sl = strlen(c->secret);
	if (ul > 4096 || sl > 65536) {
		client_fail(c, IMAP_ERR_PERM, "user name or secret too long");
		return;
	}
	n = ul + sl + 32;
	if ((raw = malloc(n)) == NULL) {
		client_fail(c, IMAP_ERR_TEMP, "out of memory");
		return;
	}
	if (mech == IMAP_AUTH_PLAIN) {
		/* RFC 4616: authzid NUL authcid NUL passwd */
		raw[0] = '\0';
		memcpy(raw + 1, c->user, ul);
		raw[ul + 1] = '\0';
		memcpy(raw + ul + 2, c->secret, sl);
		n = ul + sl + 2;
		name = "PLAIN";
	} else {
		n = (size_t)snprintf(raw, n, "user=%s\001auth=Bearer %s\001\001",
		    c->user, c->secret);
		name = "XOAUTH2";
	}
	enc = b64(raw, n);
	explicit_bzero(raw, n);
	free(raw);
	wipe_secret(c);
	if (enc == NULL || (cmd = setup_cmd(c, K_AUTH)) == NULL) {
		free(enc);
		client_fail(c, IMAP_ERR_TEMP, "out of memory");
		return;
	}
	cmd_add(cmd, "AUTHENTICATE %s", name);
	if (has_cap(c, IMAP_CAP_SASL_IR))
		evbuffer_add(cmd_seg(cmd)->buf, " ", 1);
	else {
		/* wait for the server's empty challenge "+ " */
		evbuffer_add(cmd_seg(cmd)->buf, "\r\n", 2);
		cmd_seg(cmd)->sync = 1;
		if (cmd_new_seg(cmd) == -1) {
			explicit_bzero(enc, strlen(enc));
			free(enc);
			cmd_free(cmd);
			client_fail(c, IMAP_ERR_TEMP, "out of memory");
			return;
		}
	}
	evbuffer_add(cmd_seg(cmd)->buf, enc, strlen(enc));
	log_add(cmd, " <hidden>");
	explicit_bzero(enc, strlen(enc));
	free(enc);
	cmd_queue(cmd);
	return;
oom:
	cmd_free(cmd);
	client_fail(c, IMAP_ERR_TEMP, "out of memory");
}

static void
client_ready(struct imap_client *c)
{
	struct imap_result res;

	c->state = CS_READY;
	log_info("%s: ready as %s%s%s%s%s", c->id, c->user,
	    c->tls_active ? ", TLS" : "", c->z_active ? ", compressed" : "",
	    c->enabled & IMAP_ENABLE_QRESYNC ? ", QRESYNC" :
	    c->enabled & IMAP_ENABLE_CONDSTORE ? ", CONDSTORE" : "",
	    c->enabled & IMAP_ENABLE_UTF8 ? ", UTF8=ACCEPT" : "");
	arm_timeouts(c);
	memset(&res, 0, sizeof(res));
	res.status = IMAP_OK;
	res.code = res.code_args = res.text = "";
	if (c->cb != NULL && !c->free_pending)
		c->cb(c, IMAP_CLIENT_READY, &res, c->cbarg);
	writer_run(c);
}

/*
 * setup_next - the next step from greeting to READY, one command at a
 * time: [CAPABILITY] [STARTTLS, CAPABILITY] auth [CAPABILITY] [COMPRESS]
 * [ID] [ENABLE].
 */
static void
setup_next(struct imap_client *c)
{
	struct imap_cmd *cmd;
	char list[128];

	if (c->failed || c->free_pending || c->state != CS_SETUP)
		return;
	if (c->tls == IMAP_TLS_STARTTLS && !c->tls_active) {
		if (!c->caps_known) {
			if ((cmd = setup_cmd(c, K_CAPABILITY)) != NULL) {
				cmd_add(cmd, "CAPABILITY");
				cmd_queue(cmd);
			}
			return;
		}
		if (!has_cap(c, IMAP_CAP_STARTTLS)) {
			client_fail(c, IMAP_ERR_PERM, "server does not offer "
			    "STARTTLS");
			return;
		}
		if ((cmd = setup_cmd(c, K_STARTTLS)) != NULL) {
			cmd_add(cmd, "STARTTLS");
			cmd_queue(cmd);
		}
		return;
	}
	if (!c->caps_known) {
		if ((cmd = setup_cmd(c, K_CAPABILITY)) != NULL) {
			cmd_add(cmd, "CAPABILITY");
			cmd_queue(cmd);
		}
		return;
	}
	if (!c->authenticated) {
		auth_start(c);
		return;
	}
	wipe_secret(c);
	if (c->want_compress && !c->z_active && !c->compress_tried &&
	    has_cap(c, IMAP_CAP_COMPRESS_DEFLATE)) {
		c->compress_tried = 1;
		if ((cmd = setup_cmd(c, K_COMPRESS)) != NULL) {
			cmd_add(cmd, "COMPRESS DEFLATE");
			cmd_queue(cmd);
		}
		return;
	}
	/*
	 * ID and ENABLE are the last steps: both are queued at once and the
	 * connection is READY without waiting for either.  Their replies
	 * arrive before those of any later command, and RFC 5161/7162 oblige
	 * a server that announces an extension to enable it, so what ENABLE
	 * asks for is taken as enabled now and corrected by the ENABLED
	 * reply (enable_done).  Saves two round trips per connection, which
	 * is most of a no-op delta pass's client-side time.
	 */
	if (c->id_name != NULL && !c->id_sent && has_cap(c, IMAP_CAP_ID)) {
		c->id_sent = 1;
		if ((cmd = setup_cmd(c, K_ID)) == NULL)
			return;
		cmd_add(cmd, "ID (\"name\" ");
		(void)cmd_add_astring(cmd, c->id_name, strlen(c->id_name), 0);
		if (c->id_version != NULL) {
			cmd_add(cmd, " \"version\" ");
			(void)cmd_add_astring(cmd, c->id_version,
			    strlen(c->id_version), 0);
		}
		cmd_add(cmd, ")");
		cmd_queue(cmd);
	}
	if (c->want_enable != 0 && !c->enable_sent &&
	    has_cap(c, IMAP_CAP_ENABLE)) {
		unsigned bits = 0;

		c->enable_sent = 1;
		list[0] = '\0';
		if ((c->want_enable & IMAP_ENABLE_QRESYNC) &&
		    has_cap(c, IMAP_CAP_QRESYNC)) {
			strcat(list, " QRESYNC");
			bits |= IMAP_ENABLE_QRESYNC | IMAP_ENABLE_CONDSTORE;
		} else if ((c->want_enable & (IMAP_ENABLE_CONDSTORE |
		    IMAP_ENABLE_QRESYNC)) && has_cap(c, IMAP_CAP_CONDSTORE)) {
			strcat(list, " CONDSTORE");
			bits |= IMAP_ENABLE_CONDSTORE;
		}
		if ((c->want_enable & IMAP_ENABLE_UTF8) &&
		    has_cap(c, IMAP_CAP_UTF8_ACCEPT)) {
			strcat(list, " UTF8=ACCEPT");
			bits |= IMAP_ENABLE_UTF8;
		}
		if (list[0] != '\0') {
			if ((cmd = setup_cmd(c, K_ENABLE)) == NULL)
				return;
			cmd_add(cmd, "ENABLE%s", list);
			cmd_queue(cmd);
			c->enable_asked = bits;
			c->enable_confirmed = 0;
			c->enabled |= bits;
		}
	}
	client_ready(c);
}

/*
 * enable_done - ENABLE is complete: what the server confirmed in its
 * ENABLED reply replaces what setup_next assumed.
 */
static void
enable_done(struct imap_client *c, const struct imap_result *res)
{
	unsigned got = res->status == IMAP_OK ? c->enable_confirmed : 0;

	if (res->status != IMAP_OK)
		log_warnx("%s: ENABLE refused: %s: continuing without",
		    c->id, res->text);
	else if (got != c->enable_asked)
		log_warnx("%s: ENABLE: the server enabled less than it "
		    "announced: continuing without the rest", c->id);
	c->enabled = (c->enabled & ~c->enable_asked) | got;
}

/* setup_cb - an internal command is complete */
static void
setup_cb(struct imap_client *c, const struct imap_result *res, void *arg)
{
	enum cmd_kind kind = (enum cmd_kind)(uintptr_t)arg;

	if (res->status == IMAP_ERROR || res->status == IMAP_CANCELLED)
		return;		/* the connection is going anyway */
	switch (kind) {
	case K_CAPABILITY:
		if (res->status != IMAP_OK || !c->caps_known) {
			client_fail(c, IMAP_ERR_PERM, "CAPABILITY failed: %s",
			    res->text);
			return;
		}
		break;
	case K_STARTTLS:
		if (res->status != IMAP_OK)
			client_fail(c, IMAP_ERR_PERM, "STARTTLS refused: %s",
			    res->text);
		return;		/* OK: the handshake continues the setup */
	case K_LOGIN:
	case K_AUTH:
		if (res->status != IMAP_OK) {
			c->err_backoff = res->backoff_ms;
			str_copy(c->err_code, res->code, sizeof(c->err_code));
			client_fail(c, res->errclass == IMAP_ERR_TEMP ?
			    IMAP_ERR_TEMP : IMAP_ERR_AUTH, "authentication as "
			    "%s failed: %s%s%s%s", c->user, res->code[0] ? "[" :
			    "", res->code, res->code[0] ? "] " : "", res->text);
			return;
		}
		c->authenticated = 1;
		log_info("%s: logged in as %s", c->id, c->user);
		if (strcmp(res->code, "CAPABILITY") != 0)
			c->caps_known = 0;	/* may have changed */
		break;
	case K_COMPRESS:
		if (res->status == IMAP_OK)
			return;		/* do_switch continues */
		log_info("%s: COMPRESS refused: %s", c->id, res->text);
		break;
	case K_ENABLE:
		enable_done(c, res);
		return;		/* sent after the setup was over */
	case K_ID:
		return;		/* likewise; the reply is only logged */
	default:
		break;
	}
	setup_next(c);
}

/* ---- stream layers ------------------------------------------------------------ */

/* set_top - make b the layer we read from and write to */
static void
set_top(struct imap_client *c, struct bufferevent *b)
{
	c->top = b;
	bufferevent_setcb(b, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(b, EV_READ, 0, READ_HIWAT);
	bufferevent_setwatermark(b, EV_WRITE, c->out_hiwat / 2, 0);
	bufferevent_enable(b, c->paused ? EV_WRITE : EV_READ | EV_WRITE);
	arm_timeouts(c);
}

/* demote - the current top becomes the layer below a new filter */
static struct bufferevent *
demote(struct imap_client *c)
{
	struct bufferevent *under = c->top;

	bufferevent_set_timeouts(under, NULL, NULL);
	bufferevent_setwatermark(under, EV_READ, 0, READ_HIWAT);
	bufferevent_setwatermark(under, EV_WRITE, LOWER_WRITE_HIWAT / 2,
	    LOWER_WRITE_HIWAT);
	return (under);
}

/* start_tls - put an OpenSSL filter on the stream; handshake follows */
static void
start_tls(struct imap_client *c)
{
	struct bufferevent *nb, *under;
	char err[256];
	SSL *ssl;

	if ((ssl = tls_client_ssl_new(c->ssl_ctx, c->tls_name, c->verify, err,
	    sizeof(err))) == NULL) {
		client_fail(c, IMAP_ERR_PERM, "TLS: %s", err);
		return;
	}
	under = demote(c);
	nb = bufferevent_openssl_filter_new(c->base, under, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (nb == NULL) {
		SSL_free(ssl);
		client_fail(c, IMAP_ERR_TEMP, "cannot start TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(nb, 1);
	c->ssl = ssl;
	c->state = CS_TLS_HANDSHAKE;
	set_top(c, nb);
}

/* zlib state of COMPRESS=DEFLATE (RFC 4978: raw deflate both ways). */
struct zctx {
	z_stream	 in, out;
	int		 in_ok, out_ok;
	int		 in_ended;	/* the server sent Z_FINISH */
	int		 dirty;		/* deflated data not flushed yet */
};

static void
z_free(void *arg)
{
	struct zctx *z = arg;

	if (z->in_ok)
		inflateEnd(&z->in);
	if (z->out_ok)
		deflateEnd(&z->out);
	free(z);
}

/*
 * z_input - inflate what the server sent, at most about `lim` bytes
 * per call (a deflate bomb stays within the read high-water mark).
 */
static enum bufferevent_filter_result
z_input(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
    enum bufferevent_flush_mode mode, void *arg)
{
	struct zctx *z = arg;
	struct evbuffer_iovec in, out;
	size_t consumed, produced, added = 0;
	int r, more = 1;

	(void)mode;
	if (z->in_ended) {
		if (evbuffer_get_length(src) > 0)
			return (BEV_ERROR);
		return (BEV_OK);
	}
	while (more) {
		if (lim >= 0 && added >= (size_t)lim)
			break;
		if (evbuffer_peek(src, -1, NULL, &in, 1) < 1) {
			in.iov_base = NULL;
			in.iov_len = 0;
		}
		if (in.iov_len > UINT_MAX)
			in.iov_len = UINT_MAX;
		if (evbuffer_reserve_space(dst, Z_CHUNK, &out, 1) < 1)
			return (BEV_ERROR);
		if (out.iov_len > UINT_MAX)
			out.iov_len = UINT_MAX;
		z->in.next_in = in.iov_base;
		z->in.avail_in = (uInt)in.iov_len;
		z->in.next_out = out.iov_base;
		z->in.avail_out = (uInt)out.iov_len;
		r = inflate(&z->in, Z_SYNC_FLUSH);
		consumed = in.iov_len - z->in.avail_in;
		produced = out.iov_len - z->in.avail_out;
		out.iov_len = produced;
		evbuffer_commit_space(dst, &out, 1);
		if (consumed > 0)
			evbuffer_drain(src, consumed);
		added += produced;
		if (r == Z_STREAM_END) {
			/* the server finished its stream (it is closing):
			 * what it sent so far counts, nothing may follow */
			z->in_ended = 1;
			return (BEV_OK);
		}
		if (r != Z_OK && r != Z_BUF_ERROR)
			return (BEV_ERROR);
		more = z->in.avail_out == 0 || (evbuffer_get_length(src) > 0 &&
		    (consumed > 0 || produced > 0));
	}
	return (BEV_OK);
}

/* z_output - deflate what we write, flushing whenever the input runs dry
 * so that every command reaches the server whole */
static enum bufferevent_filter_result
z_output(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
    enum bufferevent_flush_mode mode, void *arg)
{
	struct zctx *z = arg;
	struct evbuffer_iovec in, out;
	size_t consumed, produced, added = 0;
	int r;

	(void)mode;
	for (;;) {
		if (lim >= 0 && added >= (size_t)lim)
			return (BEV_OK);
		if (evbuffer_peek(src, -1, NULL, &in, 1) < 1)
			break;
		if (in.iov_len > UINT_MAX)
			in.iov_len = UINT_MAX;
		if (evbuffer_reserve_space(dst, Z_CHUNK, &out, 1) < 1)
			return (BEV_ERROR);
		if (out.iov_len > UINT_MAX)
			out.iov_len = UINT_MAX;
		z->out.next_in = in.iov_base;
		z->out.avail_in = (uInt)in.iov_len;
		z->out.next_out = out.iov_base;
		z->out.avail_out = (uInt)out.iov_len;
		r = deflate(&z->out, Z_NO_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR)
			return (BEV_ERROR);
		consumed = in.iov_len - z->out.avail_in;
		produced = out.iov_len - z->out.avail_out;
		out.iov_len = produced;
		evbuffer_commit_space(dst, &out, 1);
		evbuffer_drain(src, consumed);
		added += produced;
		z->dirty = 1;
		if (consumed == 0 && produced == 0)
			return (BEV_ERROR);
	}
	while (z->dirty) {
		if (evbuffer_reserve_space(dst, Z_CHUNK, &out, 1) < 1)
			return (BEV_ERROR);
		if (out.iov_len > UINT_MAX)
			out.iov_len = UINT_MAX;
		z->out.next_in = NULL;
		z->out.avail_in = 0;
		z->out.next_out = out.iov_base;
		z->out.avail_out = (uInt)out.iov_len;
		r = deflate(&z->out, Z_SYNC_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR)
			return (BEV_ERROR);
		produced = out.iov_len - z->out.avail_out;
		out.iov_len = produced;
		evbuffer_commit_space(dst, &out, 1);
		if (z->out.avail_out != 0)
			z->dirty = 0;
	}
	return (BEV_OK);
}

/* start_compress - put the deflate filter on the stream */
static void
start_compress(struct imap_client *c)
{
	struct bufferevent *nb, *under;
	struct zctx *z;

	if ((z = calloc(1, sizeof(*z))) == NULL) {
		client_fail(c, IMAP_ERR_TEMP, "out of memory");
		return;
	}
	if (inflateInit2(&z->in, -15) != Z_OK) {
		free(z);
		client_fail(c, IMAP_ERR_TEMP, "cannot start inflate");
		return;
	}
	z->in_ok = 1;
	if (deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK) {
		z_free(z);
		client_fail(c, IMAP_ERR_TEMP, "cannot start deflate");
		return;
	}
	z->out_ok = 1;
	under = demote(c);
	nb = bufferevent_filter_new(under, z_input, z_output,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, z_free, z);
	if (nb == NULL) {
		z_free(z);
		client_fail(c, IMAP_ERR_TEMP, "cannot start compression");
		return;
	}
	c->z_active = 1;
	set_top(c, nb);
	log_info("%s: COMPRESS=DEFLATE active", c->id);
	setup_next(c);
}

/*
 * do_switch - after the tagged OK of STARTTLS or COMPRESS.  Anything
 * the server sent after that OK was sent in the clear (or uncompressed)
 * and could have been injected: refuse it rather than interpret it in
 * the new layer.
 */
static void
do_switch(struct imap_client *c)
{
	int sw = c->switch_to;

	c->switch_to = 0;
	if (evbuffer_get_length(bufferevent_get_input(c->top)) > 0) {
		client_fail(c, IMAP_ERR_PERM, "server sent data after its %s "
		    "response (injection?)", sw == SW_TLS ? "STARTTLS" :
		    "COMPRESS");
		return;
	}
	if (sw == SW_TLS)
		start_tls(c);
	else
		start_compress(c);
}

/* ---- libevent callbacks ------------------------------------------------------- */

static void
really_free(struct imap_client *c)
{
	if (c->top != NULL)
		bufferevent_free(c->top);
	if (c->ev_later != NULL)
		event_free(c->ev_later);
	imap_parse_free(&c->parser);
	resp_reset(c);
	free(c->r.toks);
	free(c->r.arena);
	strlist_clear(&c->caps);
	mbox_clear(&c->cur);
	wipe_secret(c);
	free(c->host);
	free(c->tls_name);
	free(c->user);
	free(c->id_name);
	free(c->id_version);
	free(c);
}

/* client_leave - end of a callback; 1 when the client is gone */
static int
client_leave(struct imap_client *c)
{
	if (--c->busy == 0 && c->free_pending) {
		really_free(c);
		return (1);
	}
	return (0);
}

/* handle_eof - the server closed its side and we read everything */
static void
handle_eof(struct imap_client *c)
{
	enum imap_errclass cl = IMAP_ERR_TEMP;
	char msg[TEXT_MAX + 128];

	if (c->logout_sent) {
		if (c->logout_ok) {
			client_fail(c, IMAP_ERR_NONE, "logged out");
			return;
		}
		client_fail(c, IMAP_ERR_TEMP, "connection closed during LOGOUT");
		return;
	}
	if (c->bye_text[0] != '\0' || c->bye_code[0] != '\0') {
		cl = classify(K_GENERIC, IMAP_NO, c->bye_code, c->bye_text);
		if (cl == IMAP_ERR_PERM)
			cl = IMAP_ERR_TEMP;	/* a BYE is worth a retry */
		c->err_backoff = imap_backoff_from_text(c->bye_text);
		str_copy(c->err_code, c->bye_code, sizeof(c->err_code));
		snprintf(msg, sizeof(msg), "server closed the connection: BYE "
		    "%s%s%s%s", c->bye_code[0] ? "[" : "", c->bye_code,
		    c->bye_code[0] ? "] " : "", c->bye_text);
	} else if (c->state == CS_TLS_HANDSHAKE)
		snprintf(msg, sizeof(msg), "connection closed by server during "
		    "the TLS handshake");
	else if (c->state == CS_GREETING)
		snprintf(msg, sizeof(msg), "connection closed by server before "
		    "its greeting");
	else if (imap_parse_in_literal(c->parser, NULL))
		snprintf(msg, sizeof(msg), "connection closed by server in "
		    "the middle of a literal");
	else if (!imap_parse_at_start(c->parser))
		snprintf(msg, sizeof(msg), "connection closed by server in "
		    "the middle of a response");
	else
		snprintf(msg, sizeof(msg), "connection closed by server");
	client_fail(c, cl, "%s", msg);
}

/* process_input - feed buffered input to the parser while allowed */
static void
process_input(struct imap_client *c)
{
	struct evbuffer *in;
	struct evbuffer_iovec v;
	ssize_t r;

	while (c->top != NULL && !c->failed && !c->free_pending &&
	    !c->paused && !c->switch_to) {
		in = bufferevent_get_input(c->top);
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		r = imap_parse_feed(c->parser, v.iov_base, v.iov_len);
		if (r < 0)
			break;
		evbuffer_drain(in, (size_t)r);
	}
	if (c->switch_to && !c->failed && !c->free_pending)
		do_switch(c);
	if (c->eof_seen && !c->failed && !c->free_pending && !c->paused &&
	    c->top != NULL &&
	    evbuffer_get_length(bufferevent_get_input(c->top)) == 0)
		handle_eof(c);
}

/* notify_writable - tell a paused APPEND streamer it may go on */
static void
notify_writable(struct imap_client *c)
{
	struct imap_cmd *w = c->writer;

	if (!writable_now(c))
		return;
	w->app_want_writable = 0;
	if (w->acbs.writable != NULL)
		w->acbs.writable(c, w, w->arg);
}

static void
read_cb(struct bufferevent *b, void *arg)
{
	struct imap_client *c = arg;

	(void)b;
	c->busy++;
	process_input(c);
	(void)client_leave(c);
}

static void
write_cb(struct bufferevent *b, void *arg)
{
	struct imap_client *c = arg;

	(void)b;
	c->busy++;
	writer_run(c);
	notify_writable(c);
	(void)client_leave(c);
}

/* on_connected - TCP connected, or TLS handshake done */
static void
on_connected(struct imap_client *c)
{
	char desc[TLS_DESCRIBE_MAX];

	if (c->state == CS_CONNECTING) {
		log_info("%s: connected to %s port %d", c->id, c->host,
		    c->port);
		if (c->tls == IMAP_TLS_IMPLICIT)
			start_tls(c);
		else {
			c->state = CS_GREETING;
			arm_timeouts(c);
		}
		return;
	}
	if (c->state == CS_TLS_HANDSHAKE) {
		c->tls_active = 1;
		log_info("%s: TLS %s", c->id, tls_describe(c->ssl, desc,
		    sizeof(desc)));
		if (c->tls == IMAP_TLS_IMPLICIT)
			c->state = CS_GREETING;
		else {
			c->state = CS_SETUP;
			c->caps_known = 0;	/* RFC 3501 §6.2.1 */
			setup_next(c);
		}
		arm_timeouts(c);
		writer_run(c);
	}
}

/* on_error - say what broke, as precisely as libevent lets us */
static void
on_error(struct imap_client *c, struct bufferevent *b, short what)
{
	char ebuf[256];
	unsigned long e, last = 0;
	int dnserr, serr = EVUTIL_SOCKET_ERROR();

	if (c->state == CS_CONNECTING) {
		if ((dnserr = bufferevent_socket_get_dns_error(b)) != 0)
			client_fail(c, IMAP_ERR_TEMP, "cannot resolve %s: %s",
			    c->host, evutil_gai_strerror(dnserr));
		else
			client_fail(c, IMAP_ERR_TEMP, "cannot connect to %s "
			    "port %d: %s", c->host, c->port,
			    evutil_socket_error_to_string(serr));
		return;
	}
	if (c->ssl != NULL && c->tls_active == 0 && c->verify &&
	    SSL_get_verify_result(c->ssl) != X509_V_OK) {
		/* a configuration matter (CA, name): retrying will not help */
		client_fail(c, IMAP_ERR_PERM, "certificate of %s not verified: "
		    "%s", c->tls_name, X509_verify_cert_error_string(
		    SSL_get_verify_result(c->ssl)));
		return;
	}
	/* libevent hands out its list newest first and puts the
	 * SSL_get_error() code (a small number) in it too: keep the first
	 * entry OpenSSL can name */
	if (c->ssl != NULL)
		while ((e = bufferevent_get_openssl_error(b)) != 0)
			if (last == 0 && ERR_reason_error_string(e) != NULL)
				last = e;
	if (last != 0 || (c->ssl != NULL && !c->tls_active)) {
		const char *why = last ? ERR_reason_error_string(last) : NULL;

		if (why == NULL && last != 0)
			snprintf(ebuf, sizeof(ebuf), "OpenSSL error %lx", last);
		else
			snprintf(ebuf, sizeof(ebuf), "%s", why ? why :
			    serr ? evutil_socket_error_to_string(serr) :
			    "connection closed");
		client_fail(c, IMAP_ERR_TEMP, "TLS %s with %s failed: %s",
		    c->tls_active ? "session" : "handshake", c->host, ebuf);
		return;
	}
	client_fail(c, IMAP_ERR_TEMP, "connection error while %s: %s",
	    what & BEV_EVENT_READING ? "reading" : "writing",
	    serr != 0 ? evutil_socket_error_to_string(serr) : "unknown");
}

static void
event_cb(struct bufferevent *b, short what, void *arg)
{
	struct imap_client *c = arg;

	c->busy++;
	if (c->failed || c->free_pending)
		;
	else if (what & BEV_EVENT_CONNECTED)
		on_connected(c);
	else if (what & BEV_EVENT_EOF) {
		c->eof_seen = 1;
		process_input(c);
	} else if (what & BEV_EVENT_TIMEOUT)
		client_fail(c, IMAP_ERR_TEMP, "no progress for %d seconds "
		    "while %s", c->timeout, what & BEV_EVENT_READING ?
		    "waiting for the server" : "sending");
	else if (what & BEV_EVENT_ERROR)
		on_error(c, b, what);
	(void)client_leave(c);
}

/* later_cb - deferred work: teardown, resumed input, writable calls */
static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_client *c = arg;

	(void)fd;
	(void)what;
	c->busy++;
	if (c->failed) {
		if (!c->closed)
			teardown(c);
	} else if (!c->free_pending) {
		if (c->resume_pending) {
			c->resume_pending = 0;
			process_input(c);
		}
		writer_run(c);
		notify_writable(c);
	}
	(void)client_leave(c);
}

/* ---- construction ------------------------------------------------------------- */

static char *
dup_opt(const char *s, int *bad)
{
	char *d;

	if (s == NULL)
		return (NULL);
	if ((d = strdup(s)) == NULL)
		*bad = 1;
	return (d);
}

struct imap_client *
imap_client_new(struct event_base *base, const struct imap_client_opts *o,
    imap_client_cb cb, void *arg, char *err, size_t errlen)
{
	struct imap_client *c;
	struct bufferevent *b;
	int bad = 0;

	if (base == NULL || o == NULL || o->host == NULL || *o->host == '\0') {
		seterr(err, errlen, "no host given");
		return (NULL);
	}
	if (o->port < 0 || o->port > 65535) {
		seterr(err, errlen, "bad port %d", o->port);
		return (NULL);
	}
	if (o->user == NULL || *o->user == '\0' || o->secret == NULL ||
	    strchr(o->user, '\r') || strchr(o->user, '\n')) {
		seterr(err, errlen, "no user name or secret given");
		return (NULL);
	}
	if (o->tls != IMAP_TLS_NONE && o->ssl_ctx == NULL) {
		seterr(err, errlen, "TLS needs an SSL_CTX");
		return (NULL);
	}
	if ((o->tls_name != NULL && *o->tls_name == '\0') ||
	    (o->id_name != NULL && !valid_text(o->id_name)) ||
	    (o->id_version != NULL && !valid_text(o->id_version))) {
		seterr(err, errlen, "bad TLS name or ID string");
		return (NULL);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		seterr(err, errlen, "out of memory");
		return (NULL);
	}
	c->base = base;
	c->cb = cb;
	c->cbarg = arg;
	c->host = dup_opt(o->host, &bad);
	c->tls = o->tls;
	c->port = o->port ? o->port : o->tls == IMAP_TLS_IMPLICIT ? 993 : 143;
	c->ssl_ctx = o->ssl_ctx;
	c->verify = !o->tls_no_verify;
	c->tls_name = dup_opt(o->tls_name ? o->tls_name : o->host, &bad);
	c->dns = o->dns;
	c->user = dup_opt(o->user, &bad);
	c->secret = dup_opt(o->secret, &bad);
	c->auth = o->auth;
	c->want_enable = o->enable;
	c->want_compress = o->compress;
	c->id_name = dup_opt(o->id_name, &bad);
	c->id_version = dup_opt(o->id_version, &bad);
	c->window = o->window ? o->window : DEF_WINDOW;
	c->timeout = o->timeout > 0 ? o->timeout : DEF_TIMEOUT;
	c->out_hiwat = o->out_hiwat ? o->out_hiwat : DEF_OUT_HIWAT;
	c->literal_plus_max = o->literal_plus_max ? o->literal_plus_max :
	    DEF_LITERAL_PLUS_MAX;
	if (o->log_id != NULL)
		sanitize(c->id, sizeof(c->id), o->log_id, strlen(o->log_id));
	else {
		char who[sizeof(c->id)];

		snprintf(who, sizeof(who), "imap %s@%s", o->user, o->host);
		sanitize(c->id, sizeof(c->id), who, strlen(who));
	}
	TAILQ_INIT(&c->setupq);
	TAILQ_INIT(&c->userq);
	TAILQ_INIT(&c->inflight);
	c->parser = imap_parse_new(NULL, on_event, c);
	c->ev_later = event_new(base, -1, 0, later_cb, c);
	b = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (bad || c->parser == NULL || c->ev_later == NULL || b == NULL) {
		if (b != NULL)
			bufferevent_free(b);
		really_free(c);
		seterr(err, errlen, "out of memory");
		return (NULL);
	}
	c->state = CS_CONNECTING;
	set_top(c, b);
	log_info("%s: connecting to %s port %d (%s)", c->id, c->host, c->port,
	    c->tls == IMAP_TLS_IMPLICIT ? "TLS" : c->tls == IMAP_TLS_STARTTLS ?
	    "STARTTLS" : "plain");
	if (bufferevent_socket_connect_hostname(b, c->dns, AF_UNSPEC, c->host,
	    c->port) == -1)
		client_fail(c, IMAP_ERR_TEMP, "cannot connect to %s port %d",
		    c->host, c->port);
	return (c);
}

void
imap_client_free(struct imap_client **cp)
{
	struct imap_client *c;
	struct imap_result res;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	*cp = NULL;
	if (c->free_pending)
		return;
	c->free_pending = 1;
	c->busy++;
	if (c->top != NULL)
		bufferevent_disable(c->top, EV_READ | EV_WRITE);
	memset(&res, 0, sizeof(res));
	res.status = IMAP_CANCELLED;
	res.errclass = IMAP_ERR_TEMP;
	res.code = res.code_args = "";
	res.text = "cancelled";
	fail_all(c, &res);
	(void)client_leave(c);
}

/* ---- commands ------------------------------------------------------------------ */

static int
add_mailbox(struct imap_cmd *cmd, const char *mailbox)
{
	return (cmd_add_astring(cmd, mailbox, strlen(mailbox), 0));
}

static int
valid_mailbox(const char *m)
{
	return (m != NULL && *m != '\0' && strlen(m) <= ARG_MAX &&
	    strchr(m, '\r') == NULL && strchr(m, '\n') == NULL);
}

/* status_items - the STATUS items the server can give, as text */
static void
status_items(const struct imap_client *c, unsigned items, char *buf,
    size_t len)
{
	buf[0] = '\0';
#define ITEM(bit, name, ok) \
	if ((items & (bit)) && (ok)) \
		sappend(buf, len, "%s%s", buf[0] ? " " : "", name)
	ITEM(IMAP_STATUS_MESSAGES, "MESSAGES", 1);
	ITEM(IMAP_STATUS_UIDNEXT, "UIDNEXT", 1);
	ITEM(IMAP_STATUS_UIDVALIDITY, "UIDVALIDITY", 1);
	ITEM(IMAP_STATUS_UNSEEN, "UNSEEN", 1);
	ITEM(IMAP_STATUS_HIGHESTMODSEQ, "HIGHESTMODSEQ",
	    has_cap(c, IMAP_CAP_CONDSTORE));
	ITEM(IMAP_STATUS_SIZE, "SIZE", has_cap(c, IMAP_CAP_STATUS_SIZE));
	ITEM(IMAP_STATUS_APPENDLIMIT, "APPENDLIMIT",
	    has_cap(c, IMAP_CAP_APPENDLIMIT));
#undef ITEM
}

struct imap_cmd *
imap_client_select(struct imap_client *c, const char *mailbox,
    unsigned flags, const struct imap_qresync *qr,
    const struct imap_fetch_cbs *qr_cbs, imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if (!valid_mailbox(mailbox))
		return (NULL);
	if (qr != NULL && (!(c->enabled & IMAP_ENABLE_QRESYNC) ||
	    qr->uidvalidity == 0 || (qr->known_uids != NULL &&
	    !valid_uidset(qr->known_uids))))
		return (NULL);
	if ((cmd = cmd_new(c, K_SELECT, done, arg)) == NULL)
		return (NULL);
	if ((cmd->mbox = calloc(1, sizeof(*cmd->mbox))) == NULL ||
	    (cmd->mailbox = strdup(mailbox)) == NULL)
		goto fail;
	cmd_add(cmd, "%s ", flags & IMAP_SELECT_READONLY ? "EXAMINE" :
	    "SELECT");
	if (add_mailbox(cmd, mailbox) == -1)
		goto fail;
	if (qr != NULL) {
		cmd_add(cmd, " (QRESYNC (%llu %llu%s%s))",
		    (unsigned long long)qr->uidvalidity,
		    (unsigned long long)qr->modseq,
		    qr->known_uids ? " " : "",
		    qr->known_uids ? qr->known_uids : "");
		cmd->has_fcbs = 1;
		if (qr_cbs != NULL)
			cmd->fcbs = *qr_cbs;
	} else if ((flags & IMAP_SELECT_CONDSTORE) &&
	    has_cap(c, IMAP_CAP_CONDSTORE))
		cmd_add(cmd, " (CONDSTORE)");
	return (cmd_queue(cmd));
fail:
	cmd_free(cmd);
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

	if (ref == NULL || pattern == NULL || strlen(ref) > ARG_MAX ||
	    !valid_mailbox(pattern) || strchr(ref, '\r') || strchr(ref, '\n'))
		return (NULL);
	if ((cmd = cmd_new(c, kind, done, arg)) == NULL)
		return (NULL);
	if (cbs != NULL)
		cmd->lcbs = *cbs;
	cmd_add(cmd, "%s ", kind == K_LSUB ? "LSUB" : "LIST");
	if (kind == K_LIST && (opts & IMAP_LIST_SUBSCRIBED_ONLY))
		cmd_add(cmd, "(SUBSCRIBED) ");
	if (cmd_add_astring(cmd, ref, strlen(ref), 0) == -1)
		goto fail;
	cmd_add(cmd, " ");
	if (cmd_add_astring(cmd, pattern, strlen(pattern), 0) == -1)
		goto fail;
	ret[0] = '\0';
	if (kind == K_LIST) {
		if ((opts & IMAP_LIST_RETURN_SUBSCRIBED) && ext)
			sappend(ret, sizeof(ret), "SUBSCRIBED");
		if ((opts & IMAP_LIST_SPECIAL_USE) && ext &&
		    has_cap(c, IMAP_CAP_SPECIAL_USE))
			sappend(ret, sizeof(ret), "%sSPECIAL-USE",
			    ret[0] ? " " : "");
		status_items(c, items, st, sizeof(st));
		if ((opts & IMAP_LIST_STATUS) && st[0] != '\0' &&
		    has_cap(c, IMAP_CAP_LIST_STATUS))
			sappend(ret, sizeof(ret), "%sSTATUS (%s)",
			    ret[0] ? " " : "", st);
	}
	if (ret[0] != '\0')
		cmd_add(cmd, " RETURN (%s)", ret);
	return (cmd_queue(cmd));
fail:
	cmd_free(cmd);
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

	if (!valid_mailbox(mailbox))
		return (NULL);
	status_items(c, items, st, sizeof(st));
	if (st[0] == '\0')
		return (NULL);
	if ((cmd = cmd_new(c, K_STATUS, done, arg)) == NULL)
		return (NULL);
	if ((cmd->mailbox = strdup(mailbox)) == NULL)
		goto fail;
	cmd->stinfo.mailbox = cmd->mailbox;
	cmd_add(cmd, "STATUS ");
	if (add_mailbox(cmd, mailbox) == -1)
		goto fail;
	cmd_add(cmd, " (%s)", st);
	return (cmd_queue(cmd));
fail:
	cmd_free(cmd);
	return (NULL);
}

struct imap_cmd *
imap_client_namespace(struct imap_client *c, imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if ((cmd = cmd_new(c, K_NAMESPACE, done, arg)) == NULL)
		return (NULL);
	cmd_add(cmd, "NAMESPACE");
	return (cmd_queue(cmd));
}

/* mailbox_cmd - VERB mailbox [suffix] */
static struct imap_cmd *
mailbox_cmd(struct imap_client *c, const char *verb, const char *mailbox,
    const char *suffix, imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if (!valid_mailbox(mailbox))
		return (NULL);
	if ((cmd = cmd_new(c, K_GENERIC, done, arg)) == NULL)
		return (NULL);
	cmd_add(cmd, "%s ", verb);
	if (add_mailbox(cmd, mailbox) == -1) {
		cmd_free(cmd);
		return (NULL);
	}
	if (suffix != NULL)
		cmd_add(cmd, "%s", suffix);
	return (cmd_queue(cmd));
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

	if (!valid_uidset(uidset) || !valid_text(items))
		return (NULL);
	if (vanished && (changedsince == 0 ||
	    !(c->enabled & IMAP_ENABLE_QRESYNC)))
		return (NULL);
	if ((cmd = cmd_new(c, K_FETCH, done, arg)) == NULL)
		return (NULL);
	cmd->has_fcbs = 1;
	if (cbs != NULL)
		cmd->fcbs = *cbs;
	cmd_add(cmd, "UID FETCH %s %s", uidset, items);
	if (changedsince > 0)
		cmd_add(cmd, " (CHANGEDSINCE %llu%s)",
		    (unsigned long long)changedsince,
		    vanished ? " VANISHED" : "");
	return (cmd_queue(cmd));
}

struct imap_cmd *
imap_client_uid_search(struct imap_client *c, const char *criteria,
    void (*uid)(struct imap_client *, uint64_t, void *), imap_done_cb done,
    void *arg)
{
	struct imap_cmd *cmd;

	if (!valid_text(criteria))
		return (NULL);
	if ((cmd = cmd_new(c, K_SEARCH, done, arg)) == NULL)
		return (NULL);
	cmd->search_uid = uid;
	cmd_add(cmd, "UID SEARCH %s", criteria);
	return (cmd_queue(cmd));
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

	if (!valid_uidset(uidset) || action == NULL || flags == NULL ||
	    valid_flag_list(flags, NULL, 0) == -1)
		return (NULL);
	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (strcasecmp(action, actions[i]) == 0)
			break;
	if (i == sizeof(actions) / sizeof(actions[0]))
		return (NULL);
	if ((cmd = cmd_new(c, K_STORE, done, arg)) == NULL)
		return (NULL);
	cmd->has_fcbs = 1;
	if (cbs != NULL)
		cmd->fcbs = *cbs;
	cmd_add(cmd, "UID STORE %s ", uidset);
	if (unchangedsince > 0)
		cmd_add(cmd, "(UNCHANGEDSINCE %llu) ",
		    (unsigned long long)unchangedsince);
	cmd_add(cmd, "%s (%s)", actions[i], flags);
	return (cmd_queue(cmd));
}

struct imap_cmd *
imap_client_uid_expunge(struct imap_client *c, const char *uidset,
    imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if (!valid_uidset(uidset))
		return (NULL);
	if ((cmd = cmd_new(c, K_GENERIC, done, arg)) == NULL)
		return (NULL);
	cmd_add(cmd, "UID EXPUNGE %s", uidset);
	return (cmd_queue(cmd));
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

	if ((cmd = cmd_new(c, K_LOGOUT, done, arg)) == NULL)
		return (NULL);
	cmd_add(cmd, "LOGOUT");
	return (cmd_queue(cmd));
}

struct imap_cmd *
imap_client_command(struct imap_client *c, const char *line,
    imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if (!valid_text(line))
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
	if ((cmd = cmd_new(c, K_GENERIC, done, arg)) == NULL)
		return (NULL);
	cmd_add(cmd, "%s", line);
	return (cmd_queue(cmd));
}

/* ---- APPEND ------------------------------------------------------------------- */

struct imap_cmd *
imap_client_append(struct imap_client *c, const char *mailbox,
    const struct imap_append_cbs *cbs, imap_done_cb done, void *arg)
{
	struct imap_cmd *cmd;

	if (!valid_mailbox(mailbox))
		return (NULL);
	if ((cmd = cmd_new(c, K_APPEND, done, arg)) == NULL)
		return (NULL);
	if (cbs != NULL)
		cmd->acbs = *cbs;
	if ((cmd->app_pending = evbuffer_new()) == NULL)
		goto fail;
	cmd_add(cmd, "APPEND ");
	if (add_mailbox(cmd, mailbox) == -1)
		goto fail;
	return (cmd_queue(cmd));
fail:
	cmd_free(cmd);
	return (NULL);
}

/* append_usable - the command is an APPEND of c that is still going */
static int
append_usable(struct imap_client *c, struct imap_cmd *cmd)
{
	return (c != NULL && cmd != NULL && cmd->c == c &&
	    cmd->kind == K_APPEND && cmd->st != CMD_DONE && !c->failed &&
	    !c->free_pending);
}

int
imap_client_append_msg(struct imap_client *c, struct imap_cmd *cmd,
    const struct imap_append_msg *m, char *err, size_t errlen)
{
	struct seg *s;
	int64_t t;
	int tz;

	if (!append_usable(c, cmd) || cmd->app_ended) {
		seterr(err, errlen, "APPEND command is over");
		return (-1);
	}
	if (cmd->app_owed > 0) {
		seterr(err, errlen, "previous message incomplete");
		return (-1);
	}
	if (cmd->app_nmsgs > 0 && !has_cap(c, IMAP_CAP_MULTIAPPEND)) {
		seterr(err, errlen, "server has no MULTIAPPEND");
		return (-1);
	}
	if (m->flags != NULL && valid_flag_list(m->flags, err, errlen) == -1)
		return (-1);
	if (m->internaldate != NULL &&
	    imap_parse_date_time(m->internaldate, &t, &tz) == -1) {
		seterr(err, errlen, "bad INTERNALDATE");
		return (-1);
	}
	if (cmd_new_seg(cmd) == -1) {
		seterr(err, errlen, "out of memory");
		return (-1);
	}
	cmd->logline[0] = '\0';
	if (m->flags != NULL && strspn(m->flags, " ") != strlen(m->flags))
		cmd_add(cmd, " (%s)", m->flags);
	if (m->internaldate != NULL)
		cmd_add(cmd, " \"%s\"", m->internaldate);
	s = cmd_seg(cmd);
	s->has_literal = 1;
	s->literal = m->size;
	if (nonsync_ok(c, m->size))
		cmd_add(cmd, " {%llu+}\r\n", (unsigned long long)m->size);
	else {
		cmd_add(cmd, " {%llu}\r\n", (unsigned long long)m->size);
		s->sync = 1;
	}
	cmd->logline[strcspn(cmd->logline, "\r")] = '\0';
	log_debug("%s: C: %s message %zu:%s", c->id, cmd->tag[0] ? cmd->tag :
	    "(queued)", cmd->app_nmsgs + 1, cmd->logline);
	cmd->app_owed = m->size;
	cmd->app_nmsgs++;
	writer_run(c);
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
		client_fail(c, IMAP_ERR_PERM, "APPEND data exceeds the "
		    "declared message size");
		return (-1);
	}
	cmd->app_owed -= len;
	direct = c->writer == cmd && !cmd->waiting_cont && cmd->app_left > 0 &&
	    evbuffer_get_length(cmd->app_pending) == 0;
	if (direct) {
		if (bufferevent_write(c->top, data, len) == -1) {
			client_fail(c, IMAP_ERR_TEMP, "out of memory");
			return (-1);
		}
		cmd->app_left -= len;
		if (cmd->app_left == 0)
			writer_run(c);
	} else if (len > 0 && evbuffer_add(cmd->app_pending, data, len) == -1) {
		client_fail(c, IMAP_ERR_TEMP, "out of memory");
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
	if (cmd_new_seg(cmd) == -1) {
		client_fail(c, IMAP_ERR_TEMP, "out of memory");
		return (-1);
	}
	evbuffer_add(cmd_seg(cmd)->buf, "\r\n", 2);
	cmd->app_ended = 1;
	writer_run(c);
	arm_timeouts(c);
	return (0);
}
