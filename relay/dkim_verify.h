/*
 * dkim_verify.h - DKIM verification (RFC 6376, RFC 8463 ed25519) of a
 * message while it streams in, on the libevent loop, with libopendkim
 * for canonicalisation and crypto and common/dns for the keys.
 *
 * How a message goes through (all calls on the loop's thread):
 *
 *   m = dkimv_msg_new(lib, queue_id);
 *   dkimv_msg_chunk(m, data, len);    ... the raw message as received
 *                                     (dot-unstuffed, CRLF, before our
 *                                     Received:/Authentication-Results:),
 *                                     in pieces of any size
 *   dkimv_msg_eoh(m, done_cb, arg);   once the chunk holding the empty
 *                                     line after the header block has
 *                                     been fed (or at end of DATA when
 *                                     the message has no empty line):
 *                                     starts one TXT look-up per distinct
 *                                     key "s._domainkey.d"
 *   dkimv_msg_chunk(m, body...);      the body keeps streaming meanwhile;
 *                                     it is hashed as it comes, never
 *                                     buffered here
 *   ... done_cb(m, arg) runs on the loop when every key is in, failed
 *       or timed out (the resolver's per-look-up timeout bounds it) ...
 *   dkimv_msg_eom(m, &res, &n);       after the end of DATA: the verdict,
 *                                     one struct dkimv_result per
 *                                     signature (or one "none")
 *   dkimv_msg_free(&m);               at any point, also mid-message
 *                                     (session dropped): pending look-ups
 *                                     are cancelled, done_cb never runs
 *
 * done_cb contract (same as common/dns): after dkimv_msg_eoh() returned
 * 0, done_cb runs exactly once, from the loop and never from inside a
 * dkimv_* call, unless dkimv_msg_eom() or dkimv_msg_free() comes first
 * (then never).  done_cb may call dkimv_msg_eom() and dkimv_msg_free().
 * dkimv_msg_eom() before done_cb is allowed: keys still outstanding are
 * cancelled and their signatures reported as temperror.
 *
 * Verdicts (RFC 8601 2.7.1 words), per signature:
 *   pass       header signature verified AND body hash matched
 *   fail       signature or body hash did not verify (altered message);
 *              also every signature of a message that repeats a field
 *              RFC 5322 3.6 allows once (From, Date, Subject, To, ...:
 *              an added unsigned From would otherwise ride on a pass);
 *              an oversigned From (h= naming it twice) is not a repeat
 *   neutral    the DKIM-Signature field is unusable: bad or missing tags,
 *              unsupported version, algorithm (also rsa-sha1, RFC 8301)
 *              or query method, expired, dated in the future, l= longer
 *              than the body
 *   permerror  the key: none published (NXDOMAIN/NODATA), revoked,
 *              syntax, type (k=) or hash not matching the signature (a=),
 *              too small, undecodable, several records; or h= without
 *              From
 *   temperror  key look-up failed or timed out (DNS), or a local resource
 *              problem: asking again later may work
 *   none       message not signed (the only result then)
 *
 * Limits (a peer must not make us hash a body a thousand times): the
 * first DKIMV_MAX_SIGS DKIM-Signature fields of up to 8 KiB each are
 * verified and reported, later or longer ones are ignored (counted by
 * dkimv_msg_ignored(); an unsigned-looking result then says so in its
 * reason); a header block over DKIMV_HEADER_MAX bytes or 1000 fields is
 * not verified at all: one permerror "header block too large" (or none
 * when it holds no DKIM-Signature).
 *
 * libopendkim here (Debian 12, 2.11.0~beta2) verifies rsa-sha256 and
 * ed25519-sha256 (DKIM_FEATURE_ED25519 is compiled in); a build without
 * Ed25519 would report such signatures neutral "unsupported algorithm".
 * rsa-sha1 is refused by us (neutral, RFC 8301).
 *
 * Ownership: dkimv_msg_new() copies id.  Results returned by
 * dkimv_msg_eom() belong to the message and stay valid until
 * dkimv_msg_free().  The lib must outlive every message made from it, and
 * the resolver (and event base) must outlive the lib.
 */
#ifndef FERRY_DKIM_VERIFY_H
#define FERRY_DKIM_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "dns.h"

struct event_base;
struct dkimv_lib;
struct dkimv_msg;

#define DKIMV_MAX_SIGS		10
#define DKIMV_HEADER_MAX	(1024 * 1024)

enum dkimv_res {
	DKIMV_NONE,
	DKIMV_PASS,
	DKIMV_FAIL,
	DKIMV_NEUTRAL,
	DKIMV_TEMPERROR,
	DKIMV_PERMERROR
};

/*
 * One signature's verdict.  The strings are always NUL-terminated and
 * hold printable ASCII only (0x21..0x7e, whitespace removed), as found in
 * the DKIM-Signature field: they are peer data, quote them when writing
 * them out (authres.c does).  Empty when the tag was absent.
 */
struct dkimv_result {
	enum dkimv_res	 result;
	char		 domain[DNS_NAME_MAX + 1];	/* header.d (d=) */
	char		 selector[DNS_NAME_MAX + 1];	/* header.s (s=) */
	char		 b[9];		/* header.b: first 8 characters of b= */
	char		 algorithm[24];	/* a=: "rsa-sha256", "ed25519-sha256" */
	unsigned int	 keybits;	/* RSA size, 256 for ed25519; 0 when no
					   key was used */
	int		 testkey;	/* pass with a t=y (testing) key */
	char		 reason[128];	/* why, for logs and the A-R comment;
					   "" for a plain pass or none */
};

/* The RFC 8601 word for a result: "pass", "fail", ... */
const char *dkimv_result_name(enum dkimv_res res);

/* done_cb of dkimv_msg_eoh(): every key is in (or failed, or timed out). */
typedef void dkimv_done_cb(struct dkimv_msg *msg, void *arg);

/*
 * Where keys come from.  The default (dkimv_lib_new) asks the resolver
 * for TXT records with dns_lookup(); tests plug in a table.  start() and
 * cancel() follow dns_lookup()/dns_cancel(): after start() returned 0,
 * cb runs once, later, from the loop, unless cancel(id) comes first; a
 * struct dns_result of type DNS_TXT carries the records.
 */
struct dkimv_key_source {
	int	(*start)(void *ctx, const char *name, dns_cb cb, void *arg,
		    uint64_t *id_r, char *err, size_t errlen);
	void	(*cancel)(void *ctx, uint64_t id);
	void	 *ctx;
};

/* One per process.  base: the loop; resolver: where keys are asked
 * (NULL only if dkimv_lib_set_key_source() follows).  -1 and err on
 * failure. */
int	dkimv_lib_new(struct dkimv_lib **lib_r, struct event_base *base,
	    struct dns_resolver *resolver, char *err, size_t errlen);
void	dkimv_lib_set_key_source(struct dkimv_lib *lib,
	    const struct dkimv_key_source *src);
void	dkimv_lib_free(struct dkimv_lib **lib);

/* A verification of one message; NULL when out of memory. */
struct dkimv_msg *dkimv_msg_new(struct dkimv_lib *lib, const char *id);

/*
 * Feed the next len bytes of the message.  Returns 0; -1 only when the
 * message is already finished (after dkimv_msg_eom()).  Local trouble
 * (memory) is remembered and reported as temperror by dkimv_msg_eom(),
 * so the caller never has to handle it here.
 */
int	dkimv_msg_chunk(struct dkimv_msg *msg, const void *data, size_t len);

/*
 * The header block has been fed: start the key look-ups.  Bytes fed
 * after this call are body.  0: done_cb will run (see above); -1: called
 * twice or after dkimv_msg_eom() (done_cb will not run).
 */
int	dkimv_msg_eoh(struct dkimv_msg *msg, dkimv_done_cb *done_cb,
	    void *arg);

/* 1 once done_cb is due (every key is in), else 0. */
int	dkimv_msg_ready(const struct dkimv_msg *msg);

/*
 * The message is complete: verify.  *results_r points to *n_r results
 * (n >= 1) owned by msg.  A second call returns the same results.
 * Calls dkimv_msg_eoh()'s work itself if it never ran (then every key
 * counts as not fetched: temperror).  Returns 0; -1 only for msg NULL.
 */
int	dkimv_msg_eom(struct dkimv_msg *msg,
	    const struct dkimv_result **results_r, size_t *n_r);

/* Signatures beyond DKIMV_MAX_SIGS that were ignored. */
size_t	dkimv_msg_ignored(const struct dkimv_msg *msg);

/* Cancel what is pending, free everything, set *msg to NULL.  NULL ok. */
void	dkimv_msg_free(struct dkimv_msg **msg);

#endif
