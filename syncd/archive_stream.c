/*
 * archive_stream.c - a message of a local archive as the IMAP reader
 * serves it, read from its file in chunks: mboxrd's ">From " escaping
 * undone (one '>' off a line of '>'s followed by "From "), bare LF made
 * CRLF.  Memory is two chunks whatever the message's size, so a message
 * of any size is served (DESIGN.md §1 promise 5); the reader passes over
 * the file once to learn the served size and the header's end, then
 * again for each section it writes.
 */
#include "config.h"

#include <sys/types.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "archive_p.h"

#define RD_CHUNK	(64 * 1024)

static const char from_[5] = { 'F', 'r', 'o', 'm', ' ' };

/*
 * The conversion between file and sink.  A line's leading '>'s and the
 * start of a "From " after them are held back (ngt, nfrom) until the
 * line shows whether one '>' goes.
 */
struct conv {
	arc_sink_fn	 fn;
	void		*arg;
	int		 unescape;
	int		 bol;		/* at a line's start */
	size_t		 ngt;		/* '>'s held at the line's start */
	size_t		 nfrom;		/* bytes of "From " held after them */
	unsigned char	 prev;		/* last byte served, before CRs */
	int		 stop;		/* the sink's 1 or -1 */
	size_t		 on;
	char		 out[2 * RD_CHUNK + 8];
};

static void
flush(struct conv *cv)
{
	if (cv->on > 0 && cv->stop == 0)
		cv->stop = cv->fn(cv->arg, cv->out, cv->on);
	cv->on = 0;
}

/* put - one unescaped byte, CR added before a bare LF */
static void
put(struct conv *cv, unsigned char c)
{
	if (c == '\n' && cv->prev != '\r')
		cv->out[cv->on++] = '\r';
	cv->out[cv->on++] = (char)c;
	cv->prev = c;
	if (cv->on >= sizeof(cv->out) - 2)
		flush(cv);
}

/* held - the bytes held at a line's start, as they were (less one '>') */
static void
held(struct conv *cv, size_t drop)
{
	size_t i;

	for (i = drop; i < cv->ngt; i++)
		put(cv, '>');
	for (i = 0; i < cv->nfrom; i++)
		put(cv, (unsigned char)from_[i]);
	cv->ngt = cv->nfrom = 0;
}

static void
conv_bytes(struct conv *cv, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && cv->stop == 0; i++) {
		unsigned char c = p[i];

		if (cv->unescape && cv->bol) {
			if (cv->nfrom == 0 && c == '>') {
				cv->ngt++;
				continue;
			}
			if (cv->ngt > 0) {
				if (c == (unsigned char)from_[cv->nfrom]) {
					if (++cv->nfrom == sizeof(from_)) {
						held(cv, 1);
						cv->bol = 0;
					}
					continue;
				}
				held(cv, 0);
			}
			cv->bol = 0;
		}
		put(cv, c);
		if (c == '\n')
			cv->bol = 1;
	}
}

int
arc_serve(const struct arc_reader *rd, arc_sink_fn fn, void *arg,
    char *err, size_t errlen)
{
	struct conv *cv;
	unsigned char *buf;
	uint64_t done = 0;
	ssize_t r;
	int rc = 0;

	cv = calloc(1, sizeof(*cv));
	buf = malloc(RD_CHUNK);
	if (cv == NULL || buf == NULL) {
		free(cv);
		free(buf);
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	cv->fn = fn;
	cv->arg = arg;
	cv->unescape = rd->unescape;
	cv->bol = 1;
	while (done < rd->len && cv->stop == 0) {
		size_t want = rd->len - done < RD_CHUNK ?
		    (size_t)(rd->len - done) : RD_CHUNK;

		r = pread(rd->fd, buf, want, (off_t)(rd->off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errbuf_set(err, errlen, "%s", r < 0 ? strerror(errno) :
			    "the file shrank while read");
			rc = -1;
			break;
		}
		conv_bytes(cv, buf, (size_t)r);
		done += (uint64_t)r;
	}
	if (rc == 0 && cv->stop == 0)
		held(cv, 0);	/* a line of '>'s at the very end */
	flush(cv);
	if (rc == 0 && cv->stop == -1) {
		errbuf_set(err, errlen, "the reader's client went away");
		rc = -1;
	}
	free(buf);
	free(cv);
	return (rc);
}

void
arc_reader_close(struct arc_reader *rd)
{
	if (rd->fd != -1)
		close(rd->fd);
	rd->fd = -1;
}
