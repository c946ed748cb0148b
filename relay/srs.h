/*
 * srs.h - the Sender Rewriting Scheme for forwarded mail.
 *
 * Forwarding from the old host breaks SPF at the new provider: the
 * envelope sender's domain does not list us.  With SRS the relay sends
 * with a sender in its own domain ([forward] srs_domain) that encodes the
 * original one, so SPF is checked against us, and a bounce to that
 * address can be turned back into the original sender:
 *
 *   alice@example.com  ->  SRS0=HHHHHHHH=TT=example.com=alice@srs.example.net
 *
 *   HHHHHHHH  the first 40 bits of HMAC-SHA256(secret, tt NUL domain NUL
 *             local), lower-cased ASCII, in RFC 4648 base32 (A-Z 2-7):
 *             8 characters.  Base32 rather than base64 because some MTAs
 *             lower-case the local part of a bounce address; base32 loses
 *             nothing to that, and the input of the hash is lower-cased
 *             for the same reason, so a lower-cased SRS address still
 *             verifies (and reverses to the lower-cased original).
 *   TT        the day the address was made, days since 1970 modulo 1024,
 *             two base32 characters.  srs_reverse() accepts addresses up
 *             to max_age days old (default SRS_MAX_AGE_DEFAULT) and one
 *             day in the future (clock skew between relays).
 *   domain    the original domain, then "=", then the original local part
 *             as is (it may itself contain "=": everything after the
 *             domain's "=" is the local part).
 *
 * Length: the result must be a mailbox our own SMTP server (and any
 * RFC 5321 peer) takes back in RCPT TO when the bounce comes home, i.e.
 * a local part of at most 64 octets (SMTP_LOCAL_MAX) and a path of at
 * most 256 with its angle brackets.  "SRS0=HHHHHHHH=TT=" and the "="
 * after the domain take 18 octets, so the original domain and local part
 * together may have at most 46.  Longer senders are not rewritten
 * (SRS_ETOOLONG, a clear reason for the log): the mail goes out with
 * its original envelope sender, so a bounce goes straight back to that
 * sender and nothing is lost; only the SPF alignment that SRS would have
 * given is missing for it.  Shortening the tail by a hash (as some SRS
 * implementations do) would need a lookup table to reverse, i.e. state
 * shared by every relay that may receive the bounce; refusing keeps the
 * scheme stateless and every address we make reversible.
 *
 * Only the SRS0 form is made.  SRS1 (re-forwarding an address that is
 * already SRS0 of another forwarder) is not implemented: such a sender
 * is simply wrapped in a new SRS0, which reverses correctly hop by hop
 * (just longer); srs_reverse() answers SRS_ENOTSRS for SRS1 addresses,
 * which we never make.
 *
 * Threading: a struct srs is read-only after srs_new(); every function
 * may be called from any thread.  Addresses are without angle brackets.
 */
#ifndef FERRY_SRS_H
#define FERRY_SRS_H

#include <stddef.h>
#include <time.h>

struct srs;

#define SRS_SECRET_MIN		16	/* bytes */
#define SRS_MAX_AGE_DEFAULT	21	/* days */
#define SRS_HASH_LEN		8	/* base32 characters: 40 bits */
#define SRS_ADDR_MAX		1024	/* longest address handled */

/* Results: >= 0 success, < 0 failure.  srs_strerror() names them. */
enum srs_status {
	SRS_OK = 0,		/* rewritten / reversed: out holds the result */
	SRS_UNCHANGED = 1,	/* srs_forward: not rewritten, out = sender */
	SRS_ENOTSRS = -1,	/* srs_reverse: not one of our SRS addresses */
	SRS_EBADHASH = -2,	/* the hash does not match: forged/tampered */
	SRS_EEXPIRED = -3,	/* the day stamp is older than max_age */
	SRS_EMALFORMED = -4,	/* SRS0 prefix at our domain, fields broken */
	SRS_ETOOSMALL = -5,	/* out is too small (out set to "") */
	SRS_EINVAL = -6,	/* NULL or overlong argument */
	SRS_ETOOLONG = -7	/* srs_forward: result would exceed the
				   RFC 5321 limits; send the sender as is */
};

/*
 * srs_new - secret (at least SRS_SECRET_MIN bytes; copied, wiped on free)
 * and the domain that SRS addresses are made in.  NULL with err filled
 * on bad arguments or out of memory.
 */
struct srs *srs_new(const char *secret, const char *domain, char *err,
	    size_t errlen);
void	srs_free(struct srs **srsp);

/* srs_set_max_age - accept day stamps up to days old (1..1000) */
int	srs_set_max_age(struct srs *srs, int days);

/*
 * srs_forward - the envelope sender to use for sender at time now.
 * SRS_OK: out holds the SRS0 address.  SRS_UNCHANGED: out holds sender
 * as is, because it is the null path "", has no "@", an empty local part
 * or domain, is already in our srs_domain, or its local part or domain is
 * not plain enough to be embedded in a local part (a quoted local part,
 * an address literal).  SRS_ETOOLONG: the SRS0 address would have a
 * local part over 64 octets or a path over 256 (see "Length" above);
 * out is "" and the caller sends sender unchanged.  Every SRS_OK result
 * is a valid RFC 5321 Mailbox (smtp_mailbox_valid()) and srs_reverse()
 * turns it back into sender.  SRS_ETOOSMALL / SRS_EINVAL: out is "".
 */
int	srs_forward(const struct srs *srs, const char *sender, time_t now,
	    char *out, size_t outlen);

/*
 * srs_reverse - the original sender encoded in addr (e.g. the recipient
 * of a bounce) at time now.  SRS_OK: out holds "local@domain".  Failures:
 * SRS_ENOTSRS (not "SRS0=...@" our srs_domain, case-insensitive),
 * SRS_EMALFORMED (missing or empty fields, bad day stamp), SRS_EBADHASH
 * (any change to hash, stamp, domain or local part, compared in constant
 * time), SRS_EEXPIRED (authentic but too old), SRS_ETOOSMALL; out is ""
 * on every failure.
 */
int	srs_reverse(const struct srs *srs, const char *addr, time_t now,
	    char *out, size_t outlen);

/* srs_is_srs - addr looks like one of our SRS addresses (no hash check) */
int	srs_is_srs(const struct srs *srs, const char *addr);

const char *srs_strerror(int status);

/*
 * srs_rcpt_check - for smtp_server at RCPT TO: is rcpt one of relay's
 * SRS addresses ("SRS0=...@" [forward] srs_domain, relay->srs), i.e. a
 * bounce of mail we forwarded with a rewritten sender?
 *   0  no (or SRS is off): apply the normal recipient rules
 *   1  yes, authentic and not expired: accept it (whatever [relay]
 *      domains say); the queue delivers it to the original sender,
 *      copied into orig (may be NULL) for the log
 *  -1  yes, but tampered, expired or malformed: refuse 550 5.1.1
 * The queue routes exactly the recipients for which this says 1: it
 * makes the same srs_is_srs() test (queue_dest.c's dest_slot()).
 */
struct relay;
int	srs_rcpt_check(const struct relay *relay, const char *rcpt,
	    char *orig, size_t origlen);

#endif
