/*
 * bounce.h - delivery status notifications (RFC 3464) for mail the relay
 * could not deliver.
 *
 * A DSN is a new message from <> to the original envelope sender:
 * multipart/report with a human-readable part, a message/delivery-status
 * part (one block per failed recipient) and the original message's
 * header section as text/rfc822-headers (never its body).  It is spooled
 * like any received message, with QR_DSN set, so the queue delivers it
 * and never bounces it in turn.
 *
 * The rule that keeps bounces from looping: no DSN is ever made for a
 * message whose envelope sender is <> or that is itself a DSN
 * (bounce_allowed()).
 *
 * Ownership: struct bounce and everything it points to belong to the
 * caller and are only read during the call; the original message's file
 * descriptor stays open and is read with pread() (its offset is not
 * moved).  Threading: loop thread (bounce_spool); bounce_format() is
 * pure apart from reading the descriptor.
 */
#ifndef FERRY_BOUNCE_H
#define FERRY_BOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "relay.h"
#include "spool.h"

/* The original header section is copied up to this many bytes (cut at
 * a line end); a DSN is a notice, not an archive. */
#define BOUNCE_HEADERS_MAX	(64 * 1024)

/* One failed recipient. */
struct bounce_rcpt {
	const char	*rcpt;		/* address without <> */
	const char	*status;	/* RFC 3463 code: "5.1.1", "4.4.7" */
	const char	*remote_mta;	/* host that refused it; NULL: none */
	const char	*diagnostic;	/* the server's reply ("550 5.1.1 ..."),
					   NULL when there was none */
	const char	*reason;	/* our words for the human part, e.g.
					   "delivery time expired"; NULL: use
					   the diagnostic */
};

/* What a DSN is about. */
struct bounce {
	const char		*hostname;	/* Reporting-MTA, From: domain */
	const char		*queue_id;	/* the original message */
	const char		*sender;	/* its envelope sender: the DSN's
						   recipient */
	int64_t			 arrived;	/* Arrival-Date */
	int64_t			 now;		/* Date: */
	const struct bounce_rcpt *rcpt;
	size_t			 nrcpt;
	int			 fd;		/* the original message, or -1 */
	uint64_t		 offset;
	uint64_t		 size;
};

/* Where formatted bytes go: return 0, or -1 to stop with an error. */
typedef int bounce_write_fn(void *arg, const void *data, size_t len);

int	bounce_allowed(const char *sender, uint32_t flags);
int	bounce_format(const struct bounce *b, bounce_write_fn *fn, void *arg,
	    char *err, size_t errlen);
int	bounce_spool(struct spool *spool, const struct bounce *b,
	    uint32_t orig_flags, spool_commit_cb *cb, void *arg, char *err,
	    size_t errlen);

#endif
