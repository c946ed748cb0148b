/*
 * inflight_imap.c - does the destination mailbox already have it?  The
 * IMAP half of inflight.h, on ferry-syncd's IMAP client (built into
 * ferry-relay from syncd/, see relay/Makefile.inc).
 *
 * One connection per account that has probes, one after the other, on
 * a private event base driven here until each command completes: the
 * relay's own loop is not running yet.  A timer on that base ends the
 * whole check when [forward] crash_check_timeout is spent; what is not
 * settled by then is IF_UNKNOWN.  Everything is read-only: EXAMINE,
 * BODY.PEEK.
 *
 * Confirmation is the ledger key, not the bytes: the copy in the
 * mailbox carries header fields the spool file has not (our
 * Authentication-Results, the upstream's Received, the store's own),
 * but its Message-ID (or Date and From), its body after the header
 * block and the recipient give the same key the relay wrote for the
 * delivery (common/msgid.h).  The body is hashed as it streams; only
 * the header block (bounded) is kept.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "accounts.h"
#include "imap_client.h"
#include "inflight.h"
#include "log.h"
#include "msgid.h"
#include "tls.h"

#define HDR_MAX		(64 * 1024)	/* header block kept per message */
#define UIDS_MAX	32		/* matches fetched per search */
#define FOLDERS_MAX	1024		/* crash_check = all */

/* The state of one check; lives on inflight_imap_check()'s stack. */
struct ichk {
	struct event_base	*base;
	struct imap_client	*c;
	int			 expired;	/* the time budget is spent */
	int			 conn;		/* 0 waiting, 1 ready, -1 gone */
	char			 why[256];	/* why conn is -1 */
	/* the command being waited for */
	int			 cmd_done;
	enum imap_status	 cmd_status;
	char			 cmd_text[200];
	/* UID SEARCH results */
	uint64_t		 uids[UIDS_MAX];
	size_t			 nuids;
	/* FETCH of one match */
	struct body_hash	 bh;
	int			 bh_open, bh_ok;
	unsigned char		 sha[BODY_HASH_LEN];
	char			*hdr;		/* HDR_MAX + 1 */
	size_t			 hdrlen;
	int			 hdr_done;
	/* LIST */
	char			**folders;
	size_t			 nfolders;
};

static void
expire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ichk *k = arg;

	(void)fd;
	(void)what;
	k->expired = 1;
	event_base_loopbreak(k->base);
}

static void
conn_cb(struct imap_client *c, enum imap_client_event ev,
    const struct imap_result *res, void *arg)
{
	struct ichk *k = arg;

	(void)c;
	if (ev == IMAP_CLIENT_READY)
		k->conn = 1;
	else {
		if (k->conn != -1)
			snprintf(k->why, sizeof(k->why), "%s",
			    res && res->text && res->text[0] ? res->text :
			    "connection closed");
		k->conn = -1;
	}
}

static void
cmd_cb(struct imap_client *c, const struct imap_result *res, void *arg)
{
	struct ichk *k = arg;

	(void)c;
	k->cmd_done = 1;
	k->cmd_status = res->status;
	snprintf(k->cmd_text, sizeof(k->cmd_text), "%s",
	    res->text ? res->text : "");
}

/* drive - run the private loop until *flag is set; -1 when time is up */
static int
drive(struct ichk *k, const int *flag)
{
	while (!*flag && !k->expired)
		if (event_base_loop(k->base, EVLOOP_ONCE) == -1)
			return (-1);
	return (*flag ? 0 : -1);
}

/* wait_cmd - the command just queued (cmd) completes with OK: 0 */
static int
wait_cmd(struct ichk *k, struct imap_cmd *cmd, const char *what)
{
	if (cmd == NULL) {
		snprintf(k->why, sizeof(k->why), "cannot send %s", what);
		return (-1);
	}
	if (drive(k, &k->cmd_done) == -1) {
		/* Time is up with the command pending: the caller frees
		 * the client, which completes it as cancelled. */
		snprintf(k->why, sizeof(k->why), "%s: no answer within "
		    "crash_check_timeout", what);
		return (-1);
	}
	if (k->cmd_status != IMAP_OK) {
		snprintf(k->why, sizeof(k->why), "%s: %s%s%s", what,
		    imap_status_name(k->cmd_status), k->cmd_text[0] ? ": " : "",
		    k->cmd_text);
		return (-1);
	}
	return (0);
}

#define CMD(k, call, what) \
	((k)->cmd_done = 0, wait_cmd((k), (call), (what)))

static void
search_uid(struct imap_client *c, uint64_t uid, void *arg)
{
	struct ichk *k = arg;

	(void)c;
	if (k->nuids < UIDS_MAX)
		k->uids[k->nuids++] = uid;
}

static void
list_mailbox(struct imap_client *c, const struct imap_list_entry *e,
    void *arg)
{
	struct ichk *k = arg;
	char *n;

	(void)c;
	if ((e->attrs & (IMAP_MBOX_NOSELECT | IMAP_MBOX_NONEXISTENT)) ||
	    k->nfolders >= FOLDERS_MAX || strcasecmp(e->name, "INBOX") == 0)
		return;
	if ((n = strdup(e->name)) == NULL)
		return;
	k->folders[k->nfolders++] = n;
}

static void
body_begin(struct imap_client *c, const struct imap_fetch_msg *m,
    const char *section, uint64_t size, void *arg)
{
	struct ichk *k = arg;

	(void)c;
	(void)m;
	(void)section;
	(void)size;
	if (k->bh_open)
		body_hash_free(&k->bh);
	k->bh_open = body_hash_init(&k->bh) == 0;
	k->bh_ok = 0;
	k->hdrlen = 0;
	k->hdr_done = 0;
}

static void
body_data(struct imap_client *c, const void *data, size_t len, void *arg)
{
	struct ichk *k = arg;
	size_t take;

	(void)c;
	if (!k->bh_open)
		return;
	body_hash_update(&k->bh, data, len);
	if (k->hdr_done || k->hdrlen >= HDR_MAX)
		return;
	take = len < HDR_MAX - k->hdrlen ? len : HDR_MAX - k->hdrlen;
	memcpy(k->hdr + k->hdrlen, data, take);
	k->hdrlen += take;
	k->hdr[k->hdrlen] = '\0';
	/* Keep the header block only; a rough end test is enough, the
	 * ident parser stops at the blank line itself. */
	if (strstr(k->hdr, "\r\n\r\n") != NULL ||
	    strstr(k->hdr, "\n\n") != NULL)
		k->hdr_done = 1;
}

static void
fetch_msg(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	struct ichk *k = arg;

	(void)c;
	(void)m;
	if (!k->bh_open)
		return;
	k->bh_open = 0;
	k->bh_ok = body_hash_final(&k->bh, k->sha) == 0;
}

/* quote - s as an IMAP quoted string; -1 when it has no such form */
static int
quote(const char *s, char *out, size_t outsize)
{
	size_t o = 0;

	if (o + 1 >= outsize)
		return (-1);
	out[o++] = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch > 0x7e)
			return (-1);	/* criteria are printable ASCII */
		if (ch == '"' || ch == '\\') {
			if (o + 1 >= outsize)
				return (-1);
			out[o++] = '\\';
		}
		if (o + 1 >= outsize)
			return (-1);
		out[o++] = (char)ch;
	}
	if (o + 2 > outsize)
		return (-1);
	out[o++] = '"';
	out[o] = '\0';
	return (0);
}

/*
 * search_term - what to give HEADER: the Message-ID without its angle
 * brackets (a substring of the field however the sender spelled the
 * brackets, case or whitespace around it), or the longest blank-free
 * run of the Date (the raw field may have more blanks than the
 * collapsed one).  Candidates are confirmed by their ledger key, so a
 * wide term costs a FETCH, never a wrong verdict; a narrow one that
 * missed would be a silent duplicate.
 */
static int
search_term(const struct inflight_probe *p, char *out, size_t outsize)
{
	const char *s, *best = NULL;
	size_t len, bestlen = 0;

	if (p->msgid[0] != '\0') {
		s = p->msgid + (p->msgid[0] == '<');
		len = strlen(s);
		if (len > 0 && s[len - 1] == '>')
			len--;
		if (len == 0 || len >= outsize)
			return (-1);
		memcpy(out, s, len);
		out[len] = '\0';
		return (0);
	}
	for (s = p->date; *s; s += len) {
		len = strcspn(s, " \t");
		if (len > bestlen) {
			best = s;
			bestlen = len;
		}
		if (s[len] != '\0')
			len++;
	}
	if (best == NULL || bestlen >= outsize)
		return (-1);
	memcpy(out, best, bestlen);
	out[bestlen] = '\0';
	return (0);
}

/*
 * probe_folder - look for p in the folder just examined: 1 found, 0 not
 * there, -1 the connection or time failed, -2 p cannot be searched for
 * (k->why).
 */
static int
probe_folder(struct ichk *k, struct inflight_probe *p, const char *folder)
{
	static const struct imap_fetch_cbs fcbs = { body_begin, body_data,
	    NULL, fetch_msg, NULL };
	char crit[2200], q[2100], term[1024], set[32];
	struct msg_ident *id;
	unsigned char key[MSGKEY_LEN];
	size_t i;
	int found = 0;

	if (search_term(p, term, sizeof(term)) == -1 ||
	    quote(term, q, sizeof(q)) == -1) {
		snprintf(k->why, sizeof(k->why), "no term to search for");
		return (-2);
	}
	snprintf(crit, sizeof(crit), "HEADER %s %s",
	    p->msgid[0] ? "Message-ID" : "Date", q);
	k->nuids = 0;
	if (CMD(k, imap_client_uid_search(k->c, crit, search_uid, cmd_cb, k),
	    "UID SEARCH") == -1)
		return (-1);
	if ((id = calloc(1, sizeof(*id))) == NULL) {
		snprintf(k->why, sizeof(k->why), "out of memory");
		return (-1);
	}
	for (i = 0; i < k->nuids && !found; i++) {
		snprintf(set, sizeof(set), "%llu", (unsigned long long)k->uids[i]);
		k->bh_ok = 0;
		if (CMD(k, imap_client_uid_fetch(k->c, set, "(UID BODY.PEEK[])",
		    0, 0, &fcbs, cmd_cb, k), "UID FETCH") == -1) {
			if (k->bh_open)
				body_hash_free(&k->bh);
			k->bh_open = 0;
			free(id);
			return (-1);
		}
		if (!k->bh_ok)
			continue;
		memset(id, 0, sizeof(*id));
		if (msg_ident_from_headers(k->hdr, k->hdrlen, id) == -1)
			continue;
		if (msgkey_ledger(p->rcpt, id, k->sha, key) == -1)
			continue;
		if (memcmp(key, p->ledger_key, MSGKEY_LEN) == 0) {
			found = 1;
			snprintf(p->why, sizeof(p->why), "%s uid %llu", folder,
			    (unsigned long long)k->uids[i]);
		}
	}
	free(id);
	return (found);
}

/* account_of - the account whose mailbox rcpt is, or NULL */
static const struct account *
account_of(const struct accounts *acc, const char *rcpt)
{
	size_t i;

	for (i = 0; acc != NULL && i < acc->count; i++)
		if (strcasecmp(acc->items[i].dst_user, rcpt) == 0 ||
		    strcasecmp(acc->items[i].src_user, rcpt) == 0)
			return (&acc->items[i]);
	return (NULL);
}

/* set_unknown - every unsettled probe of a (NULL: all) gets IF_UNKNOWN */
static void
set_unknown(const struct accounts *acc, const struct account *a,
    struct inflight_probe *p, size_t n, const char *why)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i].verdict == IF_UNCHECKED &&
		    (a == NULL || account_of(acc, p[i].rcpt) == a)) {
			p[i].verdict = IF_UNKNOWN;
			snprintf(p[i].why, sizeof(p[i].why), "%s", why);
		}
}

/*
 * check_account - settle every probe of account a on one connection;
 * on failure they are IF_UNKNOWN with the reason.
 */
static void
check_account(struct ichk *k, const struct config *cfg, SSL_CTX *ctx,
    const struct accounts *acc, const struct account *a,
    struct inflight_probe *p, size_t n)
{
	static const struct imap_list_cbs lcbs = { list_mailbox, NULL };
	const struct imap_url *u = &cfg->syncd.destination;
	struct imap_client_opts o;
	char secret[ACCOUNTS_SECRET_MAX + 1], e[256], why[400];
	size_t i, f;
	int rc;

	memset(&o, 0, sizeof(o));
	o.host = u->addr.host;
	o.port = u->addr.port;
	o.tls = u->tls == CFG_IMAP_TLS_IMPLICIT ? IMAP_TLS_IMPLICIT :
	    u->tls == CFG_IMAP_TLS_STARTTLS ? IMAP_TLS_STARTTLS :
	    IMAP_TLS_NONE;
	o.ssl_ctx = ctx;
	o.tls_no_verify = !cfg->syncd.tls_verify;
	o.user = a->dst_user;
	if (accounts_secret(&a->dst, secret, sizeof(secret), e,
	    sizeof(e)) == -1) {
		snprintf(why, sizeof(why), "destination secret: %s", e);
		set_unknown(acc, a, p, n, why);
		return;
	}
	o.secret = secret;
	o.auth = a->dst.auth == ACCOUNT_AUTH_XOAUTH2 ? IMAP_AUTH_XOAUTH2 :
	    IMAP_AUTH_AUTO;
	o.timeout = cfg->forward.crash_check_timeout < 30 ?
	    (int)cfg->forward.crash_check_timeout : 30;
	o.log_id = "crash-check";
	k->conn = 0;
	k->why[0] = '\0';
	k->c = imap_client_new(k->base, &o, conn_cb, k, e, sizeof(e));
	explicit_bzero(secret, sizeof(secret));
	if (k->c == NULL) {
		snprintf(why, sizeof(why), "IMAP: %s", e);
		set_unknown(acc, a, p, n, why);
		return;
	}
	/* conn becomes 1 (ready) or -1 (gone): wait for either. */
	while (k->conn == 0 && !k->expired)
		if (event_base_loop(k->base, EVLOOP_ONCE) == -1)
			break;
	if (k->conn != 1) {
		snprintf(why, sizeof(why), "IMAP %s as %s: %s", o.host,
		    a->dst_user, k->conn == 0 ? "no answer within "
		    "crash_check_timeout" : k->why);
		goto fail;
	}
	k->nfolders = 0;
	if (cfg->forward.crash_check == CFG_CRASH_CHECK_ALL &&
	    CMD(k, imap_client_list(k->c, "", "*", 0, 0, &lcbs, cmd_cb, k),
	    "LIST") == -1) {
		snprintf(why, sizeof(why), "IMAP %s as %s: %s", o.host,
		    a->dst_user, k->why);
		goto fail;
	}
	for (f = 0; f <= k->nfolders; f++) {
		const char *folder = f == 0 ? "INBOX" : k->folders[f - 1];
		int left = 0;

		for (i = 0; i < n; i++)
			if (p[i].verdict == IF_UNCHECKED &&
			    account_of(acc, p[i].rcpt) == a)
				left = 1;
		if (!left)
			break;
		if (CMD(k, imap_client_select(k->c, folder,
		    IMAP_SELECT_READONLY, NULL, NULL, cmd_cb, k),
		    "EXAMINE") == -1) {
			if (f == 0 || k->conn != 1 || k->expired) {
				snprintf(why, sizeof(why), "IMAP %s as %s: "
				    "%s: %s", o.host, a->dst_user, folder,
				    k->why);
				goto fail;
			}
			log_warnx("crash check: %s: cannot examine %s: %s",
			    a->dst_user, folder, k->why);
			continue;
		}
		for (i = 0; i < n; i++) {
			if (p[i].verdict != IF_UNCHECKED ||
			    account_of(acc, p[i].rcpt) != a)
				continue;
			rc = probe_folder(k, &p[i], folder);
			if (rc == -2) {
				p[i].verdict = IF_UNKNOWN;
				snprintf(p[i].why, sizeof(p[i].why), "%s",
				    k->why);
				continue;
			}
			if (rc == -1) {
				snprintf(why, sizeof(why), "IMAP %s as %s: %s",
				    o.host, a->dst_user, k->why);
				goto fail;
			}
			if (rc == 1)
				p[i].verdict = IF_FOUND;
		}
	}
	for (i = 0; i < n; i++)
		if (p[i].verdict == IF_UNCHECKED &&
		    account_of(acc, p[i].rcpt) == a) {
			p[i].verdict = IF_ABSENT;
			snprintf(p[i].why, sizeof(p[i].why), "not in %s's %s",
			    a->dst_user, cfg->forward.crash_check ==
			    CFG_CRASH_CHECK_ALL ? "folders" : "INBOX");
		}
	if (k->conn == 1) {
		k->cmd_done = 0;
		if (imap_client_logout(k->c, cmd_cb, k) != NULL)
			(void)drive(k, &k->cmd_done);
	}
	goto out;
fail:
	set_unknown(acc, a, p, n, why);
out:
	imap_client_free(&k->c);
	for (f = 0; f < k->nfolders; f++)
		free(k->folders[f]);
	k->nfolders = 0;
}

void
inflight_imap_check(const struct config *cfg, const struct accounts *acc,
    struct inflight_probe *p, size_t n)
{
	struct ichk k;
	struct event *timer = NULL;
	struct timeval tv;
	SSL_CTX *ctx = NULL;
	char err[256];
	size_t i, j;

	/* What cannot be looked up at all. */
	for (i = 0; i < n; i++) {
		p[i].verdict = IF_UNCHECKED;
		p[i].why[0] = '\0';
		if (cfg->forward.crash_check == CFG_CRASH_CHECK_OFF)
			snprintf(p[i].why, sizeof(p[i].why), "[forward] "
			    "crash_check = off");
		else if (!cfg->syncd.destination.set || acc == NULL)
			snprintf(p[i].why, sizeof(p[i].why), "no [syncd] "
			    "destination and accounts to look in");
		else if (account_of(acc, p[i].rcpt) == NULL)
			snprintf(p[i].why, sizeof(p[i].why), "the recipient "
			    "is not a [syncd] account");
		else if (!p[i].has_key)
			snprintf(p[i].why, sizeof(p[i].why), "no ledger key "
			    "to confirm a copy with");
		else if (p[i].msgid[0] == '\0' && p[i].date[0] == '\0')
			snprintf(p[i].why, sizeof(p[i].why), "neither "
			    "Message-ID nor Date to search for");
		if (p[i].why[0] != '\0')
			p[i].verdict = IF_UNKNOWN;
	}
	memset(&k, 0, sizeof(k));
	k.hdr = malloc(HDR_MAX + 1);
	k.folders = calloc(FOLDERS_MAX, sizeof(*k.folders));
	if (k.hdr == NULL || k.folders == NULL ||
	    (k.base = event_base_new()) == NULL) {
		set_unknown(acc, NULL, p, n, "out of memory");
		goto out;
	}
	if (cfg->syncd.destination.tls != CFG_IMAP_TLS_NONE) {
		for (i = 0; i < n && p[i].verdict != IF_UNCHECKED; i++)
			;
		if (i < n && (ctx = tls_client_ctx_new(cfg->syncd.ca_file[0] ?
		    cfg->syncd.ca_file : NULL, err, sizeof(err))) == NULL) {
			char why[300];

			snprintf(why, sizeof(why), "TLS: %s", err);
			set_unknown(acc, NULL, p, n, why);
			goto out;
		}
	}
	timer = evtimer_new(k.base, expire_cb, &k);
	tv.tv_sec = cfg->forward.crash_check_timeout;
	tv.tv_usec = 0;
	if (timer == NULL || evtimer_add(timer, &tv) == -1) {
		set_unknown(acc, NULL, p, n, "cannot set the time budget");
		goto out;
	}
	for (i = 0; i < n; i++) {
		const struct account *a;

		if (p[i].verdict != IF_UNCHECKED)
			continue;
		a = account_of(acc, p[i].rcpt);
		if (k.expired) {
			set_unknown(acc, NULL, p, n, "crash_check_timeout "
			    "spent before this account was looked at");
			break;
		}
		check_account(&k, cfg, ctx, acc, a, p, n);
		for (j = 0; j < n; j++)	/* never leave one unsettled */
			if (p[j].verdict == IF_UNCHECKED &&
			    account_of(acc, p[j].rcpt) == a) {
				p[j].verdict = IF_UNKNOWN;
				snprintf(p[j].why, sizeof(p[j].why),
				    "not looked at");
			}
	}
out:
	if (timer != NULL)
		event_free(timer);
	if (k.bh_open)
		body_hash_free(&k.bh);
	if (k.base != NULL)
		event_base_free(k.base);
	tls_ctx_free(&ctx);
	free(k.hdr);
	free(k.folders);
}

void
inflight_accounts_load(const struct config *cfg, struct accounts **acc_r)
{
	char err[512];

	*acc_r = NULL;
	if (cfg->forward.crash_check == CFG_CRASH_CHECK_OFF ||
	    cfg->syncd.accounts == NULL || cfg->syncd.accounts[0] == '\0' ||
	    !cfg->syncd.destination.set)
		return;
	if (accounts_load(cfg->syncd.accounts, acc_r, err, sizeof(err)) == -1) {
		log_warnx("crash check: cannot read the [syncd] accounts: %s; "
		    "after an unclean stop every message in flight is sent "
		    "again and counted as a possible duplicate", err);
		*acc_r = NULL;
	}
}

void
inflight_accounts_free(struct accounts **accp)
{
	accounts_free(accp);
}
