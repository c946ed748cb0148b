/*
 * authres.h - the Authentication-Results header field (RFC 8601): the
 * one ferry-relay adds, and the ones it must remove.
 *
 * Adding: authres_build() writes ONE field carrying the SPF result and
 * every DKIM result, folded under 78 columns where the values allow:
 *
 *   Authentication-Results: mx.example.net;\r\n
 *   \tspf=pass smtp.mailfrom=example.com;\r\n
 *   \tdkim=pass header.d=example.com header.s=sel header.b=abcdefgh;\r\n
 *   \tdkim=fail (body hash mismatch) header.d=example.org header.s=s1\r\n
 *   \theader.b="ab/cd+ef"\r\n
 *
 * (the last line is a fold inside the second dkim resinfo).
 *
 * Removing (RFC 8601 5): every existing Authentication-Results field whose
 * authserv-id is ours was forged or left over, and the next hop would
 * trust it as ours: all of them go, not only the first (the
 * CVE-2022-48521 class).  authres_claims_ours() judges one field body;
 * struct authres_filter applies it to a header block streamed line by
 * line.
 *
 * Everything here is pure (no I/O, no logging); the filter allocates its
 * own hold buffer once.  Loop thread or any thread: no shared state.
 */
#ifndef FERRY_AUTHRES_H
#define FERRY_AUTHRES_H

#include <stddef.h>
#include <sys/types.h>

#include "dkim_verify.h"

#define AUTHRES_FIELD		"Authentication-Results"
#define AUTHRES_WIDTH		78	/* fold target, tab counted as 8 */
#define AUTHRES_HOLD_MAX	8192	/* filter: bytes of a field held */

/*
 * authres_build - the whole field, "Authentication-Results: " to the
 * final CRLF, NUL-terminated, into out.
 *   authserv_id  ours ([checks] authserv_id), quoted if it needs it
 *   spf          the SPF method as the SPF module wrote it, e.g.
 *                "spf=pass smtp.mailfrom=example.com", or NULL/"" for
 *                none; it must quote its own values (authres_pvalue())
 *                and may hold comments, but no control characters and
 *                no ';' outside quotes or comments (one resinfo only)
 *   dkim, ndkim  dkimv_msg_eom()'s results, in order; ndkim 0: no DKIM
 *                result (checks off).  Peer strings are quoted; reasons
 *                become comments with parentheses and control
 *                characters replaced.
 * With neither, the field says "none".  Returns the length written
 * (without the NUL), or -1 with errno EINVAL (empty or control
 * characters in authserv_id, bad spf string) or ENOSPC (out too small;
 * 2048 bytes always fit 1 SPF + DKIMV_MAX_SIGS DKIM results of normal
 * length).
 */
ssize_t	authres_build(const char *authserv_id, const char *spf,
	    const struct dkimv_result *dkim, size_t ndkim, char *out,
	    size_t outlen);

/*
 * authres_pvalue - write a property value (RFC 8601 pvalue): as it is
 * when it is an RFC 2045 token or a plain local-part@domain, else as a
 * quoted-string.  For the SPF module's smtp.mailfrom / smtp.helo.
 * Returns the length written (without the NUL) or -1 if out is too
 * small or value holds control characters.
 */
int	authres_pvalue(char *out, size_t outlen, const char *value);

/*
 * authres_claims_ours - 1 when an Authentication-Results field body (the
 * bytes after the colon, folds and final CRLF allowed) names authserv_id
 * as its authserv-id: the first token or quoted-string after optional
 * comments and folding, compared case-insensitively (a final dot
 * ignored), whatever follows it (version number, ';', garbage).  A
 * longer name ("ours.example.evil") is not ours.  0 otherwise, also for
 * an empty or unparseable body.
 */
int	authres_claims_ours(const char *body, size_t len,
	    const char *authserv_id);

/*
 * The streaming filter.  Feed the message line by line, each line with
 * its line end (the last one may lack it); every byte to keep comes back
 * through emit, in order, possibly later than it was fed: an
 * Authentication-Results field is held until it is complete (or
 * AUTHRES_HOLD_MAX bytes long) and then emitted or dropped whole.  Every
 * other line is emitted at once.  Header fields are recognised by name
 * (case-insensitive, blanks before the colon allowed); a line starting
 * with a blank continues the previous field.
 *
 * authres_filter_line() returns 0 inside the header block, 1 from the
 * empty line that ends it on (that line and the following ones are
 * emitted unchanged, so the caller may also stop filtering there).
 * authres_filter_end() flushes a held field when the message ends
 * without an empty line; call it at the end of DATA in any case.
 * authres_filter_dropped() counts the fields removed (for the log).
 * An over-long held field whose authserv-id cannot be read from the
 * first AUTHRES_HOLD_MAX bytes is dropped: removing a foreign A-R is
 * harmless, keeping a forged one is not.
 */
typedef void authres_emit_fn(const char *data, size_t len, void *arg);

struct authres_filter;

struct authres_filter *authres_filter_new(const char *authserv_id,
	    authres_emit_fn *emit, void *arg);
int	authres_filter_line(struct authres_filter *f, const char *line,
	    size_t len);
void	authres_filter_end(struct authres_filter *f);
size_t	authres_filter_dropped(const struct authres_filter *f);
void	authres_filter_free(struct authres_filter **f);

#endif
