/*
 * checks.h - what ferry-relay judges about one message while it streams
 * in (DESIGN.md §5): SPF of MAIL FROM (HELO for <>), every DKIM
 * signature, the removal of Authentication-Results fields that claim our
 * authserv-id, and the identity and body hash that dedupe and the ledger
 * are keyed on.
 *
 * One struct msg_checks per SMTP transaction, made at MAIL FROM (SPF
 * starts right away, so its DNS look-ups overlap RCPT and DATA):
 *
 *   c = checks_new(relay, client, helo, sender);            MAIL
 *   checks_spf_refusal(c)          -> a reply to refuse DATA with, when
 *                                     the SPF verdict is already known
 *                                     and the policy refuses it
 *   checks_data_begin(c, id, sink, arg);                    DATA
 *   checks_data(c, bytes, len) ...  the message (dot-unstuffed, CRLF) in
 *                                     pieces of any size; what is to be
 *                                     spooled comes back through sink,
 *                                     in order (a forged A-R left out)
 *   checks_data_end(c, done, arg);  after the "."; done runs from the
 *                                     loop once SPF and the DKIM keys are
 *                                     in (never inside this call)
 *   checks_refusal(c)              -> NULL to accept, or the reply
 *   checks_authres(c, buf, len)    -> our Authentication-Results field
 *   checks_relay_key(c, ...), checks_ledger_key(c, rcpt, ...)
 *   checks_free(&c);                any time; pending work is cancelled
 *
 * Policy ([checks] spf / dkim): spf = reject-fail refuses an SPF fail
 * with 550 5.7.23 and answers a temperror 451 4.7.0 (never a permanent
 * refusal for a DNS problem); tag and off never refuse.  DKIM is only
 * recorded.  With spf and dkim both off no Authentication-Results field
 * is added, but forged ones are still removed.
 *
 * Memory per message: the A-R filter's hold buffer (8 KiB), one header
 * line (max_line_length), the Message-ID/Date/From fields (bounded);
 * the body is never held.  Loop thread only.
 */
#ifndef FERRY_CHECKS_H
#define FERRY_CHECKS_H

#include <stddef.h>
#include <sys/socket.h>

#include "msgid.h"

struct relay;
struct msg_checks;

/* Where the filtered message bytes go (the spool); -1 marks a failure
 * that checks_data() remembers (checks_sink_failed()). */
typedef int checks_sink_fn(const void *data, size_t len, void *arg);
typedef void checks_done_fn(struct msg_checks *c, void *arg);

/* NULL when out of memory.  Strings are copied. */
struct msg_checks *checks_new(struct relay *relay,
	    const struct sockaddr *client, const char *helo,
	    const char *sender);
void	checks_free(struct msg_checks **cp);

const char *checks_spf_refusal(const struct msg_checks *c);

int	checks_data_begin(struct msg_checks *c, const char *id,
	    checks_sink_fn *sink, void *arg);
void	checks_data(struct msg_checks *c, const void *data, size_t len);
int	checks_sink_failed(const struct msg_checks *c);
void	checks_data_end(struct msg_checks *c, checks_done_fn *done,
	    void *arg);

const char *checks_refusal(const struct msg_checks *c);
/* 1 with the field in buf (CRLF-terminated), 0 when none is added,
 * -1 when it cannot be built (logged; the message goes without). */
int	checks_authres(const struct msg_checks *c, char *buf, size_t len);
/* Fields removed by the A-R filter, and a one-line summary for the log
 * ("spf=pass dkim=pass"). */
size_t	checks_removed(const struct msg_checks *c);
const char *checks_summary(const struct msg_checks *c);

int	checks_relay_key(const struct msg_checks *c, const char *sender,
	    const char *const *rcpts, size_t nrcpt,
	    unsigned char key[MSGKEY_LEN]);
int	checks_ledger_key(const struct msg_checks *c, const char *rcpt,
	    unsigned char key[MSGKEY_LEN]);

/*
 * checks_spooled_keys - the keys of a message read back from its spool
 * file (fd at its first byte, size bytes: our Received: header, then the
 * client's message as checks_data() passed it on), made exactly as
 * during DATA: the same captured fields (our Received: carries none of
 * them), the same body hash.  Sets rec->relay_key (sender and the
 * DLV_UPSTREAM recipients, as tx_keys() does) and the ledger key of
 * every DLV_UPSTREAM delivery; a key that cannot be made (no
 * Message-ID, Date nor From) is left unset, as at reception.  Reads fd
 * (its offset moves); 0, or -1 with err on a read error or no memory.
 * Safe on any thread: it touches nothing but its arguments.
 */
struct queue_record;
int	checks_spooled_keys(int fd, uint64_t size, struct queue_record *rec,
	    char *err, size_t errlen);

#endif
