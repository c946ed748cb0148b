/*
 * imap_types.h - the values syncd/imap_client.h passes in and out:
 * options, results, capabilities, mailbox, LIST, STATUS and FETCH data,
 * APPEND declarations, and the callback types.  No functions; see
 * imap_client.h for the contract (lifetime of every pointer here:
 * valid during the callback that receives it).
 */
#ifndef FERRY_IMAP_TYPES_H
#define FERRY_IMAP_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct evdns_base;
struct imap_client;
struct imap_cmd;

/* ---- options ----------------------------------------------------------- */

enum imap_tls_mode {
	IMAP_TLS_IMPLICIT = 0,	/* IMAPS, port 993 */
	IMAP_TLS_STARTTLS,	/* plain, then STARTTLS (refused if not offered) */
	IMAP_TLS_NONE,		/* plain text; tests and localhost only */
};

enum imap_auth_mech {
	IMAP_AUTH_AUTO = 0,	/* AUTHENTICATE PLAIN if offered, else LOGIN */
	IMAP_AUTH_PLAIN,
	IMAP_AUTH_LOGIN,
	IMAP_AUTH_XOAUTH2,	/* secret is the OAuth2 access token */
};

/* Extensions to ENABLE when the server offers them (RFC 5161). */
#define IMAP_ENABLE_CONDSTORE	0x01
#define IMAP_ENABLE_QRESYNC	0x02	/* implies CONDSTORE */
#define IMAP_ENABLE_UTF8	0x04	/* UTF8=ACCEPT: names in UTF-8 */

struct imap_client_opts {
	const char	*host;		/* name or IP literal */
	int		 port;		/* 0 = 993 (implicit TLS) or 143 */
	enum imap_tls_mode tls;
	SSL_CTX		*ssl_ctx;	/* borrowed; needed unless TLS_NONE */
	int		 tls_no_verify;	/* 1 = accept any certificate */
	const char	*tls_name;	/* name to verify; NULL = host */
	struct evdns_base *dns;		/* NULL = blocking getaddrinfo */
	int		 have_fd;	/* 1: talk over fd, an already */
	int		 fd;		/*   connected stream socket the
					   client owns once imap_client_new
					   returned non-NULL; host only names
					   it in logs; no TLS) */

	const char	*user;
	const char	*secret;	/* password or OAuth2 token */
	enum imap_auth_mech auth;

	unsigned	 enable;	/* IMAP_ENABLE_* wanted */
	int		 compress;	/* COMPRESS=DEFLATE when offered */
	const char	*id_name;	/* ID ("name" ... ) when offered; */
	const char	*id_version;	/*   NULL = send no ID */

	unsigned	 window;	/* commands in flight; 0 = 8 */
	int		 timeout;	/* seconds without progress; 0 = 120 */
	size_t		 out_hiwat;	/* APPEND backpressure; 0 = 256 KiB */
	uint64_t	 literal_plus_max; /* largest non-synchronizing
					   literal; 0 = 256 KiB */
	const char	*log_id;	/* prefix of log lines, e.g. "src:alice" */

	/* Called on the loop thread with each command's time from its
	 * first byte written to its tagged reply (OK, NO or BAD; never for
	 * a command that was not sent, was cancelled or lost with the
	 * connection); NULL: not timed. */
	void		(*timing)(void *arg, double seconds);
	void		*timing_arg;
};

/* ---- results ----------------------------------------------------- */

enum imap_status {
	IMAP_OK = 0,
	IMAP_NO,
	IMAP_BAD,
	IMAP_ERROR,	/* connection failed or protocol error */
	IMAP_CANCELLED,	/* imap_client_free() with the command pending */
};

enum imap_errclass {
	IMAP_ERR_NONE = 0,
	IMAP_ERR_TEMP,
	IMAP_ERR_PERM,
	IMAP_ERR_AUTH,
};

/* A list of strings (flags, capabilities...) valid during the callback. */
struct imap_strv {
	const char *const *v;
	size_t		 n;
};

/* SELECT / EXAMINE outcome; also kept as the client's current mailbox. */
struct imap_mailbox {
	uint64_t	 exists;
	uint64_t	 recent;
	uint64_t	 uidvalidity;	/* 0 = not sent */
	uint64_t	 uidnext;	/* 0 = not sent */
	uint64_t	 highestmodseq;	/* 0 = not sent or NOMODSEQ */
	uint64_t	 unseen;	/* first unseen seq, 0 = not sent */
	int		 readonly;	/* [READ-ONLY] */
	int		 nomodseq;	/* [NOMODSEQ] */
	int		 permflags_known; /* [PERMANENTFLAGS] was sent */
	int		 perm_keywords;	/* \* in PERMANENTFLAGS */
	struct imap_strv permflags;	/* as sent, \* included */
	struct imap_strv flags;		/* FLAGS */
};

/* STATUS items (request mask and presence mask). */
#define IMAP_STATUS_MESSAGES		0x01
#define IMAP_STATUS_UIDNEXT		0x02
#define IMAP_STATUS_UIDVALIDITY		0x04
#define IMAP_STATUS_UNSEEN		0x08
#define IMAP_STATUS_HIGHESTMODSEQ	0x10	/* needs CONDSTORE */
#define IMAP_STATUS_SIZE		0x20	/* needs STATUS=SIZE */
#define IMAP_STATUS_APPENDLIMIT		0x40	/* needs APPENDLIMIT */

struct imap_status_info {
	const char	*mailbox;	/* wire name */
	unsigned	 have;		/* IMAP_STATUS_* present */
	uint64_t	 messages, uidnext, uidvalidity, unseen;
	uint64_t	 highestmodseq, size, appendlimit;
};

struct imap_result {
	enum imap_status status;
	enum imap_errclass errclass;
	const char	*code;		/* resp-text-code name, "" if none */
	const char	*code_args;	/* its arguments as text, "" if none */
	const char	*text;		/* human text, sanitised for logs */
	uint64_t	 backoff_ms;	/* "Suggested Backoff Time", 0 = none */

	/* APPEND with UIDPLUS: [APPENDUID validity uid-set] */
	uint64_t	 appenduid_validity;	/* 0 = none */
	uint64_t	 appenduid_first;
	const char	*appenduid_set;	/* "3955" or "3955:3957" */

	/* SELECT/EXAMINE (OK only) and STATUS */
	const struct imap_mailbox *mailbox;
	const struct imap_status_info *status_info;

	/* NAMESPACE: first personal namespace, NULL when none */
	const char	*ns_prefix;
	char		 ns_delim;	/* 0 = none (NIL) */

	/* UID SEARCH with CONDSTORE: (MODSEQ n), 0 = none */
	uint64_t	 search_modseq;
};

typedef void	(*imap_done_cb)(struct imap_client *c,
		    const struct imap_result *res, void *arg);

/* ---- connection ---------------------------------------------------------- */

enum imap_client_event {
	IMAP_CLIENT_READY = 1,	/* authenticated, ENABLE done: send away
				   (res->status is IMAP_OK) */
	IMAP_CLIENT_CLOSED,	/* connection gone; res says why (status
				   IMAP_OK after a clean LOGOUT) */
};

typedef void	(*imap_client_cb)(struct imap_client *c,
		    enum imap_client_event ev, const struct imap_result *res,
		    void *arg);

/* Capabilities (valid from READY; refreshed after STARTTLS and login). */
enum imap_cap {
	IMAP_CAP_IMAP4REV1 = 0, IMAP_CAP_IMAP4REV2, IMAP_CAP_STARTTLS,
	IMAP_CAP_LOGINDISABLED, IMAP_CAP_AUTH_PLAIN, IMAP_CAP_AUTH_XOAUTH2,
	IMAP_CAP_SASL_IR, IMAP_CAP_LITERAL_PLUS, IMAP_CAP_LITERAL_MINUS,
	IMAP_CAP_MULTIAPPEND, IMAP_CAP_UIDPLUS, IMAP_CAP_CONDSTORE,
	IMAP_CAP_QRESYNC, IMAP_CAP_ENABLE, IMAP_CAP_SPECIAL_USE,
	IMAP_CAP_CREATE_SPECIAL_USE, IMAP_CAP_LIST_EXTENDED,
	IMAP_CAP_LIST_STATUS, IMAP_CAP_ID, IMAP_CAP_COMPRESS_DEFLATE,
	IMAP_CAP_UTF8_ACCEPT, IMAP_CAP_NAMESPACE, IMAP_CAP_APPENDLIMIT,
	IMAP_CAP_ESEARCH, IMAP_CAP_MOVE, IMAP_CAP_UNSELECT, IMAP_CAP_IDLE,
	IMAP_CAP_STATUS_SIZE, IMAP_CAP_OBJECTID, IMAP_CAP_BINARY,
	IMAP_CAP_COUNT_
};

/* SELECT (read-write) or EXAMINE (IMAP_SELECT_READONLY). */
#define IMAP_SELECT_READONLY	0x01
#define IMAP_SELECT_CONDSTORE	0x02	/* (CONDSTORE) parameter */
struct imap_qresync {			/* SELECT ... (QRESYNC (v m [uids])) */
	uint64_t	 uidvalidity;
	uint64_t	 modseq;
	const char	*known_uids;	/* NULL or a UID set */
};
struct imap_fetch_cbs;

/* LIST.  Options are used as far as the server's capabilities allow
 * (check imap_client_has_cap): SPECIAL-USE needs LIST-EXTENDED and
 * SPECIAL-USE (plain LIST on Dovecot and others carries the attributes
 * anyway); STATUS needs LIST-STATUS; SUBSCRIBED_ONLY falls back to LSUB
 * without LIST-EXTENDED; RETURN_SUBSCRIBED needs LIST-EXTENDED. */
#define IMAP_LIST_SPECIAL_USE		0x01
#define IMAP_LIST_STATUS		0x02
#define IMAP_LIST_SUBSCRIBED_ONLY	0x04
#define IMAP_LIST_RETURN_SUBSCRIBED	0x08

/* Mailbox attributes of a LIST entry. */
#define IMAP_MBOX_NOSELECT	0x0001	/* \Noselect or \NonExistent */
#define IMAP_MBOX_NONEXISTENT	0x0002
#define IMAP_MBOX_NOINFERIORS	0x0004
#define IMAP_MBOX_HASCHILDREN	0x0008
#define IMAP_MBOX_HASNOCHILDREN	0x0010
#define IMAP_MBOX_SUBSCRIBED	0x0020
#define IMAP_MBOX_MARKED	0x0040
#define IMAP_MBOX_REMOTE	0x0080
#define IMAP_MBOX_ALL		0x0100	/* RFC 6154 special uses */
#define IMAP_MBOX_ARCHIVE	0x0200
#define IMAP_MBOX_DRAFTS	0x0400
#define IMAP_MBOX_FLAGGED	0x0800
#define IMAP_MBOX_JUNK		0x1000
#define IMAP_MBOX_SENT		0x2000
#define IMAP_MBOX_TRASH		0x4000
#define IMAP_MBOX_IMPORTANT	0x8000	/* RFC 8457 */
#define IMAP_MBOX_SPECIAL_USE	0xff00
/* Not an attribute: the LIST entry did not parse (imap_list_entry.bad);
 * set by the listing's consumer, never by the client. */
#define IMAP_MBOX_UNPARSED	0x10000

struct imap_list_entry {
	const char	*name;		/* wire name */
	const char	*name_utf8;	/* decoded; NULL if it does not */
	char		 delim;		/* hierarchy separator, 0 = NIL */
	unsigned	 attrs;		/* IMAP_MBOX_* */
	struct imap_strv attributes;	/* every attribute as sent */
	int		 lsub;		/* came as "* LSUB" */
	/* Not NULL: the response did not parse as a LIST entry (why);
	 * name is then what could be read of it, sanitised for the
	 * log ("?" when nothing), name_utf8 NULL, no attributes.  One
	 * such line must cost its folder, not the whole listing.  LSUB
	 * entries that do not parse are logged and not delivered. */
	const char	*bad;
};

struct imap_list_cbs {
	void	(*mailbox)(struct imap_client *c,
		    const struct imap_list_entry *e, void *arg);
	void	(*status)(struct imap_client *c,
		    const struct imap_status_info *st, void *arg);
};

#define IMAP_FETCH_UID		0x01
#define IMAP_FETCH_FLAGS	0x02
#define IMAP_FETCH_INTERNALDATE	0x04
#define IMAP_FETCH_SIZE		0x08
#define IMAP_FETCH_MODSEQ	0x10
#define IMAP_FETCH_BODY		0x20

struct imap_fetch_msg {
	uint64_t	 seq;
	unsigned	 have;		/* IMAP_FETCH_* present */
	uint64_t	 uid;
	struct imap_strv flags;
	const char	*internaldate;	/* as sent */
	int64_t		 internaldate_t; /* seconds since the epoch, UTC */
	int		 internaldate_tz; /* minutes east of UTC */
	uint64_t	 size;		/* RFC822.SIZE */
	uint64_t	 modseq;
	uint64_t	 body_size;	/* bytes of the last body item */
	int		 body_nil;
};

struct imap_fetch_cbs {
	void	(*body_begin)(struct imap_client *c,
		    const struct imap_fetch_msg *m, const char *section,
		    uint64_t size, void *arg);
	void	(*body_data)(struct imap_client *c, const void *data,
		    size_t len, void *arg);
	void	(*body_end)(struct imap_client *c, void *arg);
	void	(*msg)(struct imap_client *c, const struct imap_fetch_msg *m,
		    void *arg);
	void	(*vanished)(struct imap_client *c, uint64_t lo, uint64_t hi,
		    int earlier, void *arg);
};

/* One resource of a "* QUOTA root (resource usage limit ...)" response
 * (RFC 9208); STORAGE is counted in units of 1024 octets. */
struct imap_quota {
	const char	*root;		/* quota root name, "" allowed */
	const char	*resource;	/* "STORAGE", "MESSAGE", ... */
	uint64_t	 usage;
	uint64_t	 limit;
};

struct imap_append_cbs {
	void	(*writable)(struct imap_client *c, struct imap_cmd *cmd,
		    void *arg);
};

struct imap_append_msg {
	const char	*flags;
	const char	*internaldate;
	uint64_t	 size;
	int		 utf8;		/* RFC 6855 §4 "UTF8 (~{n})": a message
					   with UTF-8 in its header, once
					   UTF8=ACCEPT is enabled */
};

#endif
