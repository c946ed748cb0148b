/*
 * imap_client.h - one asynchronous IMAP client connection on a libevent
 * loop: connect (implicit TLS, STARTTLS or plain), greeting, CAPABILITY,
 * authentication (LOGIN, AUTHENTICATE PLAIN with SASL-IR, XOAUTH2),
 * COMPRESS=DEFLATE, ID, ENABLE, then pipelined tagged commands with a
 * bounded window.  Message bodies stream both ways: FETCH literals reach
 * the caller chunk by chunk as they arrive, APPEND literals are written
 * from chunks the caller supplies, with flow control in both
 * directions, so memory never grows with message size.
 *
 * This is the protocol layer of ferry-syncd.  It has no sync policy: it
 * never retries, never reconnects, never decides which flags to copy.
 * The sync layer builds on it roughly like this:
 *
 *   src = imap_client_new(base, &src_opts, conn_cb, job);  (READY later)
 *   imap_client_list(src, "", "*", IMAP_LIST_SPECIAL_USE, 0, &lcbs, ...)
 *   imap_client_select(src, name, IMAP_SELECT_READONLY, NULL, NULL, ...)
 *   imap_client_uid_fetch(src, "1:*", "(UID FLAGS INTERNALDATE
 *       RFC822.SIZE)", 0, 0, &meta_cbs, ...)           plan, APPENDLIMIT
 *   for each message (tests/integration/imap_probe.c "copy" does this):
 *     a = imap_client_append(dst, dstname, &acbs, append_done, msg);
 *     imap_client_uid_fetch(src, "<uid>", "(UID BODY.PEEK[])", ...):
 *       body_begin(size)  -> imap_client_append_msg(dst, a, {flags,
 *                            internaldate, size})
 *       body_data(chunk)  -> if (imap_client_append_data(dst, a, chunk)
 *                                == 1) imap_client_pause_read(src);
 *       acbs.writable()   -> imap_client_resume_read(src);
 *       body_end()        -> imap_client_append_end(dst, a);
 *     append_done(res)    -> res->appenduid_* gives the destination UID
 *   (MULTIAPPEND: several append_msg calls before append_end.  The size
 *   given to append_msg is the FETCH literal's, which is exact;
 *   RFC822.SIZE need not be.  A failed FETCH (done with an error after
 *   body_begin) means the APPEND cannot be finished: free dst.)
 *
 * Flow control, the two sides:  a server faster than the caller is held
 * back by imap_client_pause_read() (the parser stops after the current
 * chunk, libevent stops reading at its high-water mark, TCP pushes back
 * on the server); a caller faster than the server is held back by the
 * return value 1 of imap_client_append_data() and released by the
 * writable callback.  Every buffer on the way has a high-water mark, so
 * a copy costs a few hundred KiB whatever the message size.
 *
 * Mailbox names.  Every mailbox argument and every name in a result is
 * the name exactly as this server spells it on the wire ("wire name"):
 * modified UTF-7 (RFC 3501 §5.1.3), or UTF-8 once UTF8=ACCEPT is
 * enabled (RFC 6855).  imap_client_mailbox_encode()/_decode() convert
 * between UTF-8 and this connection's wire form; LIST entries carry
 * both.  Keeping wire names lets a caller still address a folder whose
 * name does not decode (legacy 8-bit names on some servers).
 *
 * Routing of untagged data.  IMAP does not tie untagged responses to
 * commands, so with pipelining the client routes them: STATUS by
 * mailbox name to the STATUS command that asked for it (else to a LIST
 * with LIST-STATUS); ESEARCH by its TAG correlator; FETCH, LIST, LSUB,
 * SEARCH and VANISHED to the OLDEST command in flight that has handlers
 * for that response kind; EXISTS/RECENT/FLAGS and the OK codes of a
 * SELECT to the SELECT in flight.  Servers answer pipelined commands in
 * order, so this is exact when a caller does not pipeline two commands
 * whose FETCH responses it must tell apart by anything else than the UID
 * each response carries.  Data no command claims is dropped (EXISTS,
 * EXPUNGE and VANISHED still update the selected mailbox's count).
 *
 * Errors.  Every command ends with exactly one call of its done
 * callback, with an imap_result: OK, NO or BAD with the response code
 * and text, IMAP_ERROR when the connection failed first, or
 * IMAP_CANCELLED from imap_client_free().  Each failure carries a class
 * for the retry policy: IMAP_ERR_TEMP (disconnect, BYE, timeout,
 * [UNAVAILABLE], [LIMIT], [INUSE], [SERVERBUG], "Suggested Backoff Time"
 * or other throttling text: back off and retry, backoff_ms when the
 * server named one), IMAP_ERR_AUTH (login refused, [AUTHENTICATIONFAILED]
 * etc.: do not retry with the same credentials), IMAP_ERR_PERM (anything
 * else: [OVERQUOTA], [TOOBIG], [CANNOT], certificate not verified,
 * missing capability...).  When the connection fails, every pending
 * command is completed with IMAP_ERROR first, then the connection
 * callback gets IMAP_CLIENT_CLOSED.  A client never reconnects: make a
 * new one (re-reading an OAuth token then is the caller's business).
 *
 * Secrets.  The password or XOAUTH2 token is copied, used once for
 * authentication and wiped right after.  No log line ever holds it: the
 * command log (debug level) shows LOGIN and AUTHENTICATE arguments as
 * <hidden>, and only the user name is logged.
 *
 * Callbacks and lifetime.  Callbacks run from the event loop, never from
 * inside the API call that queued the work (except IMAP_CANCELLED from
 * imap_client_free).  Inside any callback the caller may issue commands,
 * pause or resume reading, stream APPEND data and free this or any other
 * client; freeing is deferred to a safe point internally.  Every pointer
 * passed to a callback is valid during that call only.  The caller's
 * option strings are copied by imap_client_new(); the struct imap_cmd
 * handle returned by a command function is owned by the client and is
 * valid until its done callback has returned.
 *
 * Types: the structs and constants named here live in imap_types.h,
 * which this header includes.
 *
 * Threading: one event loop thread; no global state.
 */
#ifndef FERRY_IMAP_CLIENT_H
#define FERRY_IMAP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "imap_types.h"

struct event_base;

/*
 * imap_client_new - start connecting now.  Returns NULL (reason in err)
 * only for bad options or no memory; every later failure arrives as
 * IMAP_CLIENT_CLOSED.  Commands may be queued at once: they are sent
 * after READY.
 */
struct imap_client *imap_client_new(struct event_base *base,
	    const struct imap_client_opts *opts, imap_client_cb cb, void *arg,
	    char *err, size_t errlen);

/*
 * imap_client_free - close at once (no LOGOUT) and free; pending
 * commands get IMAP_CANCELLED first.  Safe inside callbacks and on NULL;
 * sets *cp to NULL.
 */
void	 imap_client_free(struct imap_client **cp);

/* Capabilities (valid from READY; refreshed after STARTTLS and login). */
int	 imap_client_has_cap(const struct imap_client *c, enum imap_cap cap);
/* any capability by name, e.g. "X-GM-EXT-1" (case-insensitive) */
int	 imap_client_has_capability(const struct imap_client *c,
	    const char *name);
/* APPENDLIMIT=n from CAPABILITY; 0 = none announced */
uint64_t imap_client_appendlimit(const struct imap_client *c);
/* IMAP_ENABLE_* the server confirmed with "* ENABLED" */
unsigned imap_client_enabled(const struct imap_client *c);
/* 1 when the session is compressed / protected by TLS */
int	 imap_client_compressed(const struct imap_client *c);
int	 imap_client_tls(const struct imap_client *c);
/* the selected mailbox (last successful SELECT/EXAMINE, kept current
 * with EXISTS), or NULL */
const struct imap_mailbox *imap_client_mailbox(const struct imap_client *c);

/* UTF-8 <-> this connection's wire form of a mailbox name (0 / -1) */
int	 imap_client_mailbox_encode(const struct imap_client *c,
	    const char *utf8, char *out, size_t outsize, char *err,
	    size_t errlen);
int	 imap_client_mailbox_decode(const struct imap_client *c,
	    const char *wire, char *out, size_t outsize, char *err,
	    size_t errlen);

/*
 * Flow control of the read side.  pause_read stops taking input from
 * the server (also in the middle of a FETCH literal: the parser stops
 * right after the current event; the kernel's socket buffer then pushes
 * back on the server); resume_read continues with whatever is already
 * buffered.  Reading is not timed out while paused.
 */
void	 imap_client_pause_read(struct imap_client *c);
void	 imap_client_resume_read(struct imap_client *c);
/* bytes written by us and not yet handed to the kernel */
size_t	 imap_client_output_pending(const struct imap_client *c);
/* commands sent and not yet completed */
unsigned imap_client_in_flight(const struct imap_client *c);

/* ---- commands ---------------------------------------------------------- */
/*
 * Every function returns the command's handle, or NULL when the command
 * cannot be queued (bad argument, client closed, no memory); done is
 * then NOT called.  Arguments are copied.
 */

/* SELECT (read-write) or EXAMINE (IMAP_SELECT_READONLY); with QRESYNC
 * (qr, see imap_types.h) FETCH and VANISHED data go to qr_cbs. */
struct imap_cmd *imap_client_select(struct imap_client *c,
	    const char *mailbox, unsigned flags, const struct imap_qresync *qr,
	    const struct imap_fetch_cbs *qr_cbs, imap_done_cb done, void *arg);

/* LIST (options IMAP_LIST_*, see imap_types.h) and LSUB. */
struct imap_cmd *imap_client_list(struct imap_client *c, const char *ref,
	    const char *pattern, unsigned opts, unsigned status_items,
	    const struct imap_list_cbs *cbs, imap_done_cb done, void *arg);
struct imap_cmd *imap_client_lsub(struct imap_client *c, const char *ref,
	    const char *pattern, const struct imap_list_cbs *cbs,
	    imap_done_cb done, void *arg);

/* STATUS; items the server cannot give (HIGHESTMODSEQ without
 * CONDSTORE, SIZE, APPENDLIMIT) are left out: check `have`.  NULL when
 * no item is left. */
struct imap_cmd *imap_client_status(struct imap_client *c,
	    const char *mailbox, unsigned items, imap_done_cb done, void *arg);

/* GETQUOTAROOT mailbox (QUOTA, RFC 9208): quota() once per resource of
 * every QUOTA response; QUOTAROOT itself is not passed on. */
struct imap_cmd *imap_client_getquotaroot(struct imap_client *c,
	    const char *mailbox, void (*quota)(struct imap_client *c,
	    const struct imap_quota *q, void *arg), imap_done_cb done,
	    void *arg);

/* NAMESPACE (result: ns_prefix, ns_delim). */
struct imap_cmd *imap_client_namespace(struct imap_client *c,
	    imap_done_cb done, void *arg);

/* CREATE, with "(USE (\Sent))" when special_use is given and the server
 * has CREATE-SPECIAL-USE (otherwise the folder is created plain). */
struct imap_cmd *imap_client_create(struct imap_client *c,
	    const char *mailbox, const char *special_use, imap_done_cb done,
	    void *arg);
struct imap_cmd *imap_client_delete(struct imap_client *c,
	    const char *mailbox, imap_done_cb done, void *arg);
struct imap_cmd *imap_client_subscribe(struct imap_client *c,
	    const char *mailbox, int subscribe, imap_done_cb done, void *arg);

/*
 * UID FETCH.  items is the fetch-att list as text, e.g. "(UID FLAGS
 * INTERNALDATE RFC822.SIZE)" or "(UID BODY.PEEK[])" (printable ASCII).
 * changedsince > 0 adds (CHANGEDSINCE n), with VANISHED when
 * vanished is set (QRESYNC enabled).
 *
 * For each FETCH response: body_begin/body_data.../body_end for every
 * body item (BODY[...], BINARY[...], RFC822*), as the bytes arrive, then
 * msg with all items.  m in body_begin holds the items that came before
 * the body only (Dovecot sends UID first; servers need not).  A body
 * sent as NIL gives no body calls and m->body_nil in msg.  Call
 * imap_client_pause_read() in body_data to stop the flow.
 */
struct imap_cmd *imap_client_uid_fetch(struct imap_client *c,
	    const char *uidset, const char *items, uint64_t changedsince,
	    int vanished, const struct imap_fetch_cbs *cbs, imap_done_cb done,
	    void *arg);

/* UID SEARCH criteria (printable ASCII, e.g. "UID 100:*" or "ALL");
 * uid() once per match, as the numbers arrive. */
struct imap_cmd *imap_client_uid_search(struct imap_client *c,
	    const char *criteria, void (*uid)(struct imap_client *c,
	    uint64_t uid, void *arg), imap_done_cb done, void *arg);

/* UID STORE uidset action (flags), e.g. action "+FLAGS.SILENT" and
 * flags "\Seen $Forwarded"; unchangedsince > 0 adds the CONDSTORE
 * modifier ([MODIFIED set] then comes in code/code_args).  FETCH
 * responses (without .SILENT) go to cbs->msg. */
struct imap_cmd *imap_client_uid_store(struct imap_client *c,
	    const char *uidset, const char *action, const char *flags,
	    uint64_t unchangedsince, const struct imap_fetch_cbs *cbs,
	    imap_done_cb done, void *arg);

/* UID EXPUNGE uidset (UIDPLUS), NOOP, LOGOUT. */
struct imap_cmd *imap_client_uid_expunge(struct imap_client *c,
	    const char *uidset, imap_done_cb done, void *arg);
struct imap_cmd *imap_client_noop(struct imap_client *c, imap_done_cb done,
	    void *arg);
struct imap_cmd *imap_client_logout(struct imap_client *c, imap_done_cb done,
	    void *arg);

/* Any other command without literals, e.g. "UNSELECT" (printable ASCII,
 * no tag, no CRLF).  Untagged data it brings is not passed on (EXISTS,
 * EXPUNGE and VANISHED still keep imap_client_mailbox() current). */
struct imap_cmd *imap_client_command(struct imap_client *c,
	    const char *line, imap_done_cb done, void *arg);

/*
 * APPEND / MULTIAPPEND with streamed bodies.
 *
 * imap_client_append() queues the command; then, for each message,
 * imap_client_append_msg() declares its flags, date and exact size and
 * imap_client_append_data() supplies exactly that many bytes in chunks
 * of any size; imap_client_append_end() closes the command.  More than
 * one message per command needs MULTIAPPEND (refused otherwise).
 *
 * Literals are non-synchronizing ({n+}) when the server offers LITERAL+
 * (or LITERAL- and n <= 4096) and n <= literal_plus_max; otherwise the
 * client waits for the server's "+" before sending the bytes, so a
 * server refusing a big message (quota, size) costs no transfer.
 *
 * append_data returns 0 when the caller may go on, 1 when it should
 * stop until cbs->writable is called (output above out_hiwat, or the
 * literal is not open yet: command queued behind others or waiting for
 * "+"; the chunk is kept either way), -1 when the command is over
 * (completed early, e.g. NO instead of "+", or the connection failed:
 * done has been or will be called) or the data exceeds the size.
 *
 * Once started on the wire, an APPEND holds the connection's output
 * until imap_client_append_end(): queue it when its first message can
 * be declared soon (the sync layer does so when the source's body
 * literal begins), and never let it wait on a command queued behind it
 * on the same connection.
 *
 * A message cannot be withdrawn once its literal has started: to abandon
 * an APPEND midway (the source failed), free the client; the server
 * discards the incomplete command.  After done has been called the
 * handle is gone: drop it (the functions below return -1 for a NULL
 * handle), e.g. when the server refused a synchronizing literal with NO
 * while the source is still streaming that body.
 *
 * flags: space-separated flag atoms ("\Seen $Label"); \Recent and
 * anything that is not a valid flag are refused (-1).  internaldate:
 * an IMAP date-time or NULL.
 */
struct imap_cmd *imap_client_append(struct imap_client *c,
	    const char *mailbox, const struct imap_append_cbs *cbs,
	    imap_done_cb done, void *arg);
int	 imap_client_append_msg(struct imap_client *c, struct imap_cmd *cmd,
	    const struct imap_append_msg *m, char *err, size_t errlen);
int	 imap_client_append_data(struct imap_client *c, struct imap_cmd *cmd,
	    const void *data, size_t len);
int	 imap_client_append_end(struct imap_client *c, struct imap_cmd *cmd);

/* ---- helpers ------------------------------------------------------------- */

const char *imap_status_name(enum imap_status st);
const char *imap_errclass_name(enum imap_errclass cl);
/* "Suggested Backoff Time: 299609 milliseconds" -> 299609, else 0 */
uint64_t imap_backoff_from_text(const char *text);
/* 1 when flag may be given to APPEND or STORE: \Seen \Answered
 * \Flagged \Deleted \Draft or a keyword atom ($Forwarded, Junk...);
 * 0 for \Recent, other backslash flags and anything that is no atom */
int	 imap_flag_settable(const char *flag);
/* the settable flags of fl (imap_flag_settable), space-separated, in a
 * string the caller frees; NULL when out of memory */
char	*imap_flags_join_settable(const struct imap_strv *fl);

#endif
