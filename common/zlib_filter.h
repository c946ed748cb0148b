/*
 * zlib_filter.h - a libevent bufferevent filter that compresses what is
 * written and decompresses what is read with raw deflate (RFC 1951, no
 * zlib or gzip framing), as IMAP COMPRESS=DEFLATE (RFC 4978) wants.
 *
 * Every write is flushed (Z_SYNC_FLUSH) once the filter has consumed
 * what was given, so a command reaches the peer whole; input is
 * inflated at most about one read high-water mark per call, so a
 * deflate bomb stays bounded by the watermarks of the layer above.
 * Once the peer finishes its stream (Z_STREAM_END), any further input is
 * an error.
 *
 * Ownership: the filter owns its zlib state, freed with the bufferevent;
 * with BEV_OPT_CLOSE_ON_FREE it frees the layer below too.
 * Threading: that of the bufferevent.
 */
#ifndef FERRY_ZLIB_FILTER_H
#define FERRY_ZLIB_FILTER_H

#include <stddef.h>

struct bufferevent;

/*
 * zlib_filter_new - a deflate filter on top of under, with the
 * bufferevent options (BEV_OPT_*) given; NULL (reason in err) when zlib
 * or libevent cannot start one.
 */
struct bufferevent *zlib_filter_new(struct bufferevent *under, int options,
	    char *err, size_t errlen);

#endif
