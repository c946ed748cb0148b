/*
 * imap_client_p.h - what the files of the IMAP client share: the
 * connection, command and response structs and the functions one file
 * calls in another.  Private to syncd/imap_client*.c.
 *
 *   imap_client.c       lifecycle: state, failure and teardown, timeouts,
 *                       session setup (STARTTLS, auth, COMPRESS, ID,
 *                       ENABLE), stream layers, libevent callbacks
 *   imap_client_cmd.c   building commands, the writer, completion, the
 *                       public command functions, APPEND streaming
 *   imap_client_resp.c  the response being parsed: collection, FETCH
 *                       and SEARCH as streams, untagged dispatch,
 *                       tagged completions, continuations
 *   imap_wire.c         protocol text without a connection
 */
#ifndef FERRY_IMAP_CLIENT_P_H
#define FERRY_IMAP_CLIENT_P_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include "imap_client.h"
#include "imap_parse.h"
#include "imap_wire.h"
#include "util.h"

struct bufferevent;
struct event;

#define DEF_WINDOW		8
#define DEF_TIMEOUT		120
#define DEF_OUT_HIWAT		(256 * 1024)
#define DEF_LITERAL_PLUS_MAX	(256 * 1024)
#define READ_HIWAT		(256 * 1024)	/* per layer */
#define READ_MORE		(128 * 1024)	/* read_more(): one recv, at most */
#define LIBEVENT_READ		4096	/* what evbuffer_read takes a call */
#define LOWER_WRITE_HIWAT	(256 * 1024)	/* below the top layer */
#define RESP_TOKENS_MAX		(256 * 1024)	/* collected response */
#define RESP_ARENA_MAX		(2 * 1024 * 1024)
#define RESP_KEEP		(64 * 1024)	/* arena kept when idle */
#define FLAGS_MAX		4096	/* flags in one FETCH/LIST */
#define ESEARCH_RANGE_MAX	(UINT64_C(10000000))
#define TEXT_MAX		IMAP_WIRE_TEXT_MAX
#define LOGLINE_MAX		300

/* ---- types ------------------------------------------------------- */

enum cmd_kind {
	K_GENERIC = 0, K_CAPABILITY, K_STARTTLS, K_LOGIN, K_AUTH, K_COMPRESS,
	K_ID, K_ENABLE, K_SELECT, K_LIST, K_LSUB, K_STATUS, K_NAMESPACE,
	K_FETCH, K_SEARCH, K_STORE, K_APPEND, K_LOGOUT, K_QUOTA,
};

enum cmd_state { CMD_QUEUED = 0, CMD_INFLIGHT, CMD_DONE };

/*
 * The life of a connection, in order; changed only by imapc_state(),
 * which logs every change.  Forward only, except SETUP -> TLS_HANDSHAKE
 * -> SETUP for STARTTLS.  FAILED can come from any state before it;
 * FREED from any state at all (imap_client_free()).
 */
enum imapc_state {
	ICS_CONNECTING = 0,	/* DNS and TCP connect */
	ICS_TLS_HANDSHAKE,	/* implicit TLS, or after STARTTLS's OK */
	ICS_GREETING,		/* waiting for "* OK" or "* PREAUTH" */
	ICS_SETUP,		/* CAPABILITY, STARTTLS, auth, COMPRESS */
	ICS_READY,		/* the caller's commands go out */
	ICS_LOGOUT,		/* LOGOUT sent: nothing may be queued */
	ICS_FAILED,		/* unusable; ev_later will tear it down */
	ICS_CLOSED,		/* torn down: commands done, CLOSED said */
	ICS_FREED,		/* imap_client_free() called: the memory
				   goes when the outermost callback ends */
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
	double			 sent_at;	/* monotonic; 0: not sent */

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
	void			(*quota)(struct imap_client *,
				    const struct imap_quota *, void *);
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
	int			 app_utf8;	/* the last message's "UTF8 (" is
						   closed by the next segment */
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
	void			(*timing)(void *, double);
	void			*timing_arg;
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

	enum imapc_state	 state;
	struct bufferevent	*top;
	int			 top_is_socket;	/* no filter above the socket */
	int			 sock_fd;	/* the TCP socket, else -1 */
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
	int			 switch_to;	/* SW_* after this response */

	/*
	 * Re-entrancy depth, not a state: every entry from libevent (and
	 * imap_client_free) counts itself in and out, so that a free
	 * requested inside a callback waits until the outermost one
	 * returns (client_leave).
	 */
	int			 busy;
	int			 logout_ok;	/* LOGOUT answered OK */
	int			 eof_seen;

	enum imap_errclass	 err_class;
	char			 err_text[TEXT_MAX];
	char			 err_code[64];
	uint64_t		 err_backoff;
	char			 bye_text[TEXT_MAX];
	char			 bye_code[64];
};

#define SW_TLS	1
#define SW_Z	2

#define SW_TLS	1
#define SW_Z	2

static inline int
has_cap(const struct imap_client *c, enum imap_cap cap)
{
	return ((c->capbits >> cap) & 1);
}

/* utf8_mode - UTF8=ACCEPT is enabled: names and strings in UTF-8 */
static inline int
utf8_mode(const struct imap_client *c)
{
	return ((c->enabled & IMAP_ENABLE_UTF8) != 0);
}

/* imapc_failed - unusable: FAILED, CLOSED or FREED */
static inline int
imapc_failed(const struct imap_client *c)
{
	return (c->state >= ICS_FAILED);
}

/* imapc_freed - imap_client_free() was called: no more callbacks */
static inline int
imapc_freed(const struct imap_client *c)
{
	return (c->state == ICS_FREED);
}

/* sanitize - server text made safe for a log line or a result */
static inline void
sanitize(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	(void)str_printable(dst, dstlen, src, srclen);
}

static inline struct seg *
cmd_seg(struct imap_cmd *cmd)
{
	return (&cmd->segs[cmd->nsegs - 1]);
}

/* imap_client.c */
void	 imapc_state(struct imap_client *c, enum imapc_state st);
void	 imapc_fail(struct imap_client *c, enum imap_errclass cl,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void	 imapc_schedule_later(struct imap_client *c);
void	 imapc_arm_timeouts(struct imap_client *c);
void	 imapc_setup_next(struct imap_client *c);

/* imap_client_cmd.c */
struct imap_cmd *imapc_cmd_new(struct imap_client *c, enum cmd_kind kind,
	    imap_done_cb done, void *arg);
int	 imapc_cmd_new_seg(struct imap_cmd *cmd);
void	 imapc_cmd_free(struct imap_cmd *cmd);
void	 imapc_cmd_log(struct imap_cmd *cmd, const char *s);
void	 imapc_cmd_add(struct imap_cmd *cmd, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	 imapc_cmd_add_astring(struct imap_cmd *cmd, const char *s, size_t len,
	    int secret);
struct imap_cmd *imapc_cmd_queue(struct imap_cmd *cmd);
int	 imapc_writable_now(struct imap_client *c);
void	 imapc_writer_run(struct imap_client *c);
struct imap_cmd *imapc_find_tag(struct imap_client *c, const char *tag);
struct imap_cmd *imapc_oldest_kind(struct imap_client *c, enum cmd_kind k1,
	    enum cmd_kind k2);
struct imap_cmd *imapc_oldest_fetcher(struct imap_client *c);
void	 imapc_complete(struct imap_client *c, struct imap_cmd *cmd,
	    struct imap_result *res);
void	 imapc_fail_all(struct imap_client *c, struct imap_result *res);

/* imap_client_resp.c */
void	 imapc_mbox_clear(struct mbox_acc *a);
void	 imapc_mbox_views(struct mbox_acc *a);
void	 imapc_resp_reset(struct imap_client *c);
int	 imapc_on_event(const struct imap_event *ev, void *arg);

#endif
