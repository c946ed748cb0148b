/*
 * zlib_filter.c - raw deflate as a bufferevent filter (see
 * zlib_filter.h).
 *
 * SECURITY: the compressed input comes from the network: inflate()
 * bounds every step by the output space it is given, and z_input stops
 * after about `lim` bytes of output per call, so what a small input can
 * expand to waits in the lower layer instead of memory.
 */
#include <limits.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <zlib.h>

#include "util.h"
#include "zlib_filter.h"

#define Z_CHUNK		16384

/* The state of one filter: a raw deflate stream each way. */
struct zctx {
	z_stream	 in, out;
	int		 in_ok, out_ok;
	int		 in_ended;	/* the server sent Z_FINISH */
	int		 dirty;		/* deflated data not flushed yet */
};

static void
z_free(void *arg)
{
	struct zctx *z = arg;

	if (z->in_ok)
		inflateEnd(&z->in);
	if (z->out_ok)
		deflateEnd(&z->out);
	free(z);
}

/*
 * z_input - inflate what the server sent, at most about `lim` bytes
 * per call (a deflate bomb stays within the read high-water mark).
 */
static enum bufferevent_filter_result
z_input(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
    enum bufferevent_flush_mode mode, void *arg)
{
	struct zctx *z = arg;
	struct evbuffer_iovec in, out;
	size_t consumed, produced, added = 0;
	int r, more = 1;

	(void)mode;
	if (z->in_ended) {
		if (evbuffer_get_length(src) > 0)
			return (BEV_ERROR);
		return (BEV_OK);
	}
	while (more) {
		if (lim >= 0 && added >= (size_t)lim)
			break;
		if (evbuffer_peek(src, -1, NULL, &in, 1) < 1) {
			in.iov_base = NULL;
			in.iov_len = 0;
		}
		if (in.iov_len > UINT_MAX)
			in.iov_len = UINT_MAX;
		if (evbuffer_reserve_space(dst, Z_CHUNK, &out, 1) < 1)
			return (BEV_ERROR);
		if (out.iov_len > UINT_MAX)
			out.iov_len = UINT_MAX;
		z->in.next_in = in.iov_base;
		z->in.avail_in = (uInt)in.iov_len;
		z->in.next_out = out.iov_base;
		z->in.avail_out = (uInt)out.iov_len;
		r = inflate(&z->in, Z_SYNC_FLUSH);
		consumed = in.iov_len - z->in.avail_in;
		produced = out.iov_len - z->in.avail_out;
		out.iov_len = produced;
		evbuffer_commit_space(dst, &out, 1);
		if (consumed > 0)
			evbuffer_drain(src, consumed);
		added += produced;
		if (r == Z_STREAM_END) {
			/* the server finished its stream (it is closing):
			 * what it sent so far counts, nothing may follow */
			z->in_ended = 1;
			return (BEV_OK);
		}
		if (r != Z_OK && r != Z_BUF_ERROR)
			return (BEV_ERROR);
		more = z->in.avail_out == 0 || (evbuffer_get_length(src) > 0 &&
		    (consumed > 0 || produced > 0));
	}
	return (BEV_OK);
}

/* z_output - deflate what we write, flushing whenever the input runs dry
 * so that every command reaches the server whole */
static enum bufferevent_filter_result
z_output(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
    enum bufferevent_flush_mode mode, void *arg)
{
	struct zctx *z = arg;
	struct evbuffer_iovec in, out;
	size_t consumed, produced, added = 0;
	int r;

	(void)mode;
	for (;;) {
		if (lim >= 0 && added >= (size_t)lim)
			return (BEV_OK);
		if (evbuffer_peek(src, -1, NULL, &in, 1) < 1)
			break;
		if (in.iov_len > UINT_MAX)
			in.iov_len = UINT_MAX;
		if (evbuffer_reserve_space(dst, Z_CHUNK, &out, 1) < 1)
			return (BEV_ERROR);
		if (out.iov_len > UINT_MAX)
			out.iov_len = UINT_MAX;
		z->out.next_in = in.iov_base;
		z->out.avail_in = (uInt)in.iov_len;
		z->out.next_out = out.iov_base;
		z->out.avail_out = (uInt)out.iov_len;
		r = deflate(&z->out, Z_NO_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR)
			return (BEV_ERROR);
		consumed = in.iov_len - z->out.avail_in;
		produced = out.iov_len - z->out.avail_out;
		out.iov_len = produced;
		evbuffer_commit_space(dst, &out, 1);
		evbuffer_drain(src, consumed);
		added += produced;
		z->dirty = 1;
		if (consumed == 0 && produced == 0)
			return (BEV_ERROR);
	}
	while (z->dirty) {
		if (evbuffer_reserve_space(dst, Z_CHUNK, &out, 1) < 1)
			return (BEV_ERROR);
		if (out.iov_len > UINT_MAX)
			out.iov_len = UINT_MAX;
		z->out.next_in = NULL;
		z->out.avail_in = 0;
		z->out.next_out = out.iov_base;
		z->out.avail_out = (uInt)out.iov_len;
		r = deflate(&z->out, Z_SYNC_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR)
			return (BEV_ERROR);
		produced = out.iov_len - z->out.avail_out;
		out.iov_len = produced;
		evbuffer_commit_space(dst, &out, 1);
		if (z->out.avail_out != 0)
			z->dirty = 0;
	}
	return (BEV_OK);
}

struct bufferevent *
zlib_filter_new(struct bufferevent *under, int options, char *err,
    size_t errlen)
{
	struct bufferevent *nb;
	struct zctx *z;

	if ((z = calloc(1, sizeof(*z))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	if (inflateInit2(&z->in, -15) != Z_OK) {
		free(z);
		errbuf_set(err, errlen, "cannot start inflate");
		return (NULL);
	}
	z->in_ok = 1;
	if (deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK) {
		z_free(z);
		errbuf_set(err, errlen, "cannot start deflate");
		return (NULL);
	}
	z->out_ok = 1;
	nb = bufferevent_filter_new(under, z_input, z_output, options, z_free,
	    z);
	if (nb == NULL) {
		z_free(z);
		errbuf_set(err, errlen, "cannot start compression");
		return (NULL);
	}
	return (nb);
}
