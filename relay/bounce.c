/*
 * bounce.c - RFC 3464 delivery status notifications (see bounce.h).
 *
 * Layout of a DSN (RFC 3462 multipart/report, RFC 3464 fields):
 *   headers        From: MAILER-DAEMON@hostname, To: <sender>, Date,
 *                  Message-ID, Auto-Submitted: auto-replied (RFC 3834),
 *                  MIME-Version, Content-Type: multipart/report;
 *                  report-type=delivery-status
 *   part 1         text/plain: what happened, one line per recipient
 *   part 2         message/delivery-status: Reporting-MTA, Arrival-Date,
 *                  then per recipient Final-Recipient, Action: failed,
 *                  Status, Remote-MTA, Diagnostic-Code
 *   part 3         text/rfc822-headers: the original header section
 * A recipient address with non-ASCII bytes (SMTPUTF8) makes part 2
 * message/global-delivery-status with "utf-8;" address types (RFC 6533).
 *
 * SECURITY: addresses and reply texts come from the network (envelope,
 * remote servers).  Every value written into a header or report field is
 * stripped of control characters, so no value can start a new header
 * line or a MIME part; the boundary carries 64 random bits, so the
 * copied original headers cannot end a part.  The original is copied
 * header section only, at most BOUNCE_HEADERS_MAX bytes.
 *
 * Ownership and threading: see bounce.h.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "relay.h"
#include "rfc5322.h"
#include "util.h"

struct out {
	bounce_write_fn	*fn;
	void		*arg;
	int		 failed;
};

static void	outf(struct out *o, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

static void
outb(struct out *o, const void *data, size_t len)
{
	if (o->failed || len == 0)
		return;
	if (o->fn(o->arg, data, len) == -1)
		o->failed = 1;
}

static void
outf(struct out *o, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0) {
		o->failed = 1;
		return;
	}
	outb(o, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/*
 * clean - a copy of s fit for one header or report line: control
 * characters (CR, LF, TAB, DEL, ...) become '?', at most len - 1 bytes.
 */
static const char *
clean(const char *s, char *buf, size_t len)
{
	size_t i;

	if (s == NULL)
		s = "";
	for (i = 0; s[i] != '\0' && i + 1 < len; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	buf[i] = '\0';
	return (buf);
}

static int
non_ascii(const char *s)
{
	for (; s != NULL && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return (1);
	return (0);
}

/*
 * bounce_allowed - 1 when a DSN may be sent about a message with this
 * envelope sender and these QR_* flags: never to <> (RFC 5321 §4.5.5)
 * and never about a DSN of ours (that is how bounce loops start).
 */
int
bounce_allowed(const char *sender, uint32_t flags)
{
	if (sender == NULL || *sender == '\0')
		return (0);
	if (flags & QR_DSN)
		return (0);
	return (1);
}

/*
 * copy_headers - the original's header section: up to (and without) the
 * empty line that ends it, cut at a line end after BOUNCE_HEADERS_MAX,
 * always ending in CRLF.
 */
static void
copy_headers(struct out *o, const struct bounce *b)
{
	char in[4096], buf[4096 + 2];
	uint64_t pos = 0, limit = b->size;
	size_t i, n_out;
	ssize_t n;
	int bol = 1, cr_bol = 0, last_nl = 1, done = 0;

	if (limit > BOUNCE_HEADERS_MAX)
		limit = BOUNCE_HEADERS_MAX;
	while (pos < limit && !done && !o->failed) {
		size_t want = sizeof(in);

		if (limit - pos < want)
			want = (size_t)(limit - pos);
		n = pread(b->fd, in, want, (off_t)(b->offset + pos));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		pos += (uint64_t)n;
		for (i = 0, n_out = 0; i < (size_t)n && !done; i++) {
			char c = in[i];

			/* An empty line (CRLF, or a bare LF) ends the
			 * header section; hold a CR at a line start until
			 * we know. */
			if (cr_bol) {
				cr_bol = 0;
				if (c == '\n') {
					done = 1;
					break;
				}
				buf[n_out++] = '\r';
				last_nl = 0;
			} else if (bol && c == '\n') {
				done = 1;
				break;
			} else if (bol && c == '\r') {
				cr_bol = 1;
				bol = 0;
				continue;
			}
			buf[n_out++] = c;
			bol = (c == '\n');
			last_nl = bol;
		}
		outb(o, buf, n_out);
	}
	if (!last_nl)
		outb(o, "\r\n", 2);	/* cut inside a line, or no line end */
}

/*
 * bounce_format - write the whole DSN (headers and body, CRLF line
 * ends, no dot-stuffing) through fn.
 */
int
bounce_format(const struct bounce *b, bounce_write_fn *fn, void *arg,
    char *err, size_t errlen)
{
	struct out o = { fn, arg, 0 };
	char host[256], sender[1024], boundary[128], date[64], arrival[64];
	char rcpt[1024], v1[1024], v2[1024];
	uint64_t rnd[2];
	int utf8 = non_ascii(b->sender);
	size_t i;

	if (b->nrcpt == 0) {
		errbuf_set(err, errlen, "no failed recipient");
		return (-1);
	}
	for (i = 0; i < b->nrcpt; i++)
		utf8 |= non_ascii(b->rcpt[i].rcpt);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		rnd[0] = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		rnd[1] = (uint64_t)(uintptr_t)&o;
	}
	clean(b->hostname, host, sizeof(host));
	clean(b->sender, sender, sizeof(sender));
	snprintf(boundary, sizeof(boundary), "%s.%016" PRIx64 "/%.60s",
	    b->queue_id, rnd[0], host);
	/* UTC: a DSN reads the same whatever TZ the relay runs under. */
	(void)rfc5322_date_utc((time_t)b->now, date, sizeof(date));
	(void)rfc5322_date_utc((time_t)b->arrived, arrival, sizeof(arrival));

	outf(&o, "Date: %s\r\n", date);
	outf(&o, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
	outf(&o, "To: <%s>\r\n", sender);
	outf(&o, "Subject: Undelivered Mail Returned to Sender\r\n");
	outf(&o, "Message-ID: <%s.%016" PRIx64 ".dsn@%s>\r\n", b->queue_id,
	    rnd[1], host);
	outf(&o, "Auto-Submitted: auto-replied\r\n");
	outf(&o, "MIME-Version: 1.0\r\n");
	outf(&o, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary);
	outf(&o, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	/* 1: for people */
	outf(&o, "--%s\r\n", boundary);
	outf(&o, "Content-Description: Notification\r\n");
	outf(&o, "Content-Type: text/plain; charset=%s\r\n\r\n",
	    utf8 ? "utf-8" : "us-ascii");
	outf(&o, "This is the mail system at host %s.\r\n\r\n", host);
	outf(&o, "I'm sorry to have to inform you that your message could "
	    "not\r\nbe delivered to one or more recipients. It's attached "
	    "below.\r\n\r\n");
	for (i = 0; i < b->nrcpt; i++) {
		const struct bounce_rcpt *r = &b->rcpt[i];

		clean(r->rcpt, rcpt, sizeof(rcpt));
		if (r->reason != NULL)
			outf(&o, "<%s>: %s\r\n", rcpt, clean(r->reason, v1,
			    sizeof(v1)));
		else if (r->remote_mta != NULL)
			outf(&o, "<%s>: host %s said: %s\r\n", rcpt,
			    clean(r->remote_mta, v1, sizeof(v1)),
			    clean(r->diagnostic, v2, sizeof(v2)));
		else
			outf(&o, "<%s>: %s\r\n", rcpt, clean(r->diagnostic,
			    v2, sizeof(v2)));
	}
	outf(&o, "\r\n");

	/* 2: for programs */
	outf(&o, "--%s\r\n", boundary);
	outf(&o, "Content-Description: Delivery report\r\n");
	outf(&o, "Content-Type: message/%sdelivery-status\r\n\r\n",
	    utf8 ? "global-" : "");
	outf(&o, "Reporting-MTA: dns; %s\r\n", host);
	outf(&o, "X-Ferry-Queue-ID: %s\r\n", b->queue_id);
	outf(&o, "Arrival-Date: %s\r\n", arrival);
	for (i = 0; i < b->nrcpt; i++) {
		const struct bounce_rcpt *r = &b->rcpt[i];

		clean(r->rcpt, rcpt, sizeof(rcpt));
		outf(&o, "\r\nFinal-Recipient: %s; %s\r\n",
		    non_ascii(r->rcpt) ? "utf-8" : "rfc822", rcpt);
		outf(&o, "Action: failed\r\n");
		outf(&o, "Status: %s\r\n", clean(r->status != NULL ?
		    r->status : "5.0.0", v1, sizeof(v1)));
		if (r->remote_mta != NULL)
			outf(&o, "Remote-MTA: dns; %s\r\n", clean(r->remote_mta,
			    v1, sizeof(v1)));
		if (r->diagnostic != NULL)
			outf(&o, "Diagnostic-Code: smtp; %s\r\n",
			    clean(r->diagnostic, v2, sizeof(v2)));
	}
	outf(&o, "\r\n");

	/* 3: the original's headers */
	outf(&o, "--%s\r\n", boundary);
	outf(&o, "Content-Description: Undelivered Message Headers\r\n");
	outf(&o, "Content-Type: %s\r\n\r\n", utf8 ?
	    "message/global-headers" : "text/rfc822-headers");
	if (b->fd >= 0)
		copy_headers(&o, b);
	outf(&o, "\r\n--%s--\r\n", boundary);
	if (o.failed) {
		errbuf_set(err, errlen, "cannot write the DSN");
		return (-1);
	}
	return (0);
}

static int
spool_writer(void *arg, const void *data, size_t len)
{
	return (spool_msg_write(arg, data, len) == 0 ? 0 : -1);
}

/*
 * bounce_spool - make the DSN and spool it as a new message (QR_DSN,
 * sender <>, one delivery to b->sender).  Returns 0 when the commit is
 * under way (cb reports it, later, on the loop), 1 when no DSN may be
 * sent (sender <> or orig_flags has QR_DSN; nothing was done), -1 on
 * failure (err says why; nothing is left in the spool).
 */
int
bounce_spool(struct spool *spool, const struct bounce *b, uint32_t orig_flags,
    spool_commit_cb *cb, void *arg, char *err, size_t errlen)
{
	struct spool_msg *msg;
	struct queue_record rec;
	struct delivery dlv;
	char client[] = "ferry-relay (DSN)";
	char empty[] = "";

	if (!bounce_allowed(b->sender, orig_flags))
		return (1);
	if ((msg = spool_msg_new(spool, err, errlen)) == NULL)
		return (-1);
	if (bounce_format(b, spool_writer, msg, err, errlen) == -1) {
		spool_msg_abort(&msg);
		return (-1);
	}
	memset(&dlv, 0, sizeof(dlv));
	dlv.rcpt = (char *)(uintptr_t)b->sender;
	dlv.dest = DLV_UPSTREAM;	/* for a QR_DSN: the DSN route */
	dlv.state = DLV_PENDING;
	dlv.next_try = b->now;
	memset(&rec, 0, sizeof(rec));
	rec.arrived = b->now;
	rec.flags = QR_DSN;
	rec.sender = empty;
	rec.client = client;
	rec.ndlv = 1;
	rec.dlv = &dlv;
	if (spool_msg_commit(&msg, &rec, cb, arg) == -1) {
		errbuf_set(err, errlen, "cannot commit the DSN to the spool");
		return (-1);
	}
	return (0);
}
