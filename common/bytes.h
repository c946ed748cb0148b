/*
 * bytes.h - the byte codec every on-disk record is written and read
 * with: a write buffer (struct wbuf) and a strict read cursor (struct
 * rbuf), big-endian integers of 1, 2, 4 and 8 bytes, LEB128 varints
 * (and zigzag for signed ones), length-prefixed strings and raw bytes.
 *
 * The records themselves (queue_record.c, cutover_state.c, ledger.c,
 * relay_view.c, syncd/state.c, relay/drain.c, the store's expiry
 * header) keep their own layouts, documented where they are defined;
 * this module only spells the fields, so a given sequence of calls
 * always writes the same bytes.
 *
 * Writing: every wbuf_* call appends; a failure (allocation, a fixed
 * buffer's capacity, a string too long for its prefix) sets w->failed
 * and turns every later call into a no-op, so an encoder makes its
 * calls and checks the flag once at the end.
 *
 * Reading: every rbuf_* getter takes its field from the cursor or, when
 * the bytes are not there (or a check fails), records the first reason
 * in r->why (a static string) and returns 0 / NULL; once r->why is set
 * every later getter fails too and the cursor stops moving, so r->off is
 * where the first problem was.  A decoder reads every field, checks
 * r->why once, and calls rbuf_end() where "nothing may follow".
 *
 * Ownership: a growing wbuf owns w->p until wbuf_finish() hands it over
 * (or wbuf_free() drops it); a fixed wbuf writes into caller memory and
 * never allocates.  An rbuf borrows its bytes: they must stay valid (and
 * unchanged) while it is read; pointers from rbuf_take() point into
 * them.  Threading: no global state.
 */
#ifndef FERRY_BYTES_H
#define FERRY_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* ---- raw big-endian integers at a pointer ------------------------------- */

void		be16_put(void *p, uint16_t v);
void		be32_put(void *p, uint32_t v);
void		be64_put(void *p, uint64_t v);
uint16_t	be16_get(const void *p);
uint32_t	be32_get(const void *p);
uint64_t	be64_get(const void *p);

/* ---- writing ------------------------------------------------------------- */

struct wbuf {
	unsigned char	*p;
	size_t		 len;
	size_t		 cap;
	int		 fixed;		/* caller memory: never grown */
	int		 failed;	/* a call failed; later calls do nothing */
};

void	wbuf_init(struct wbuf *w);			/* growing, empty */
void	wbuf_init_fixed(struct wbuf *w, void *buf, size_t cap);
/* wbuf_finish - hand a growing buffer's bytes to the caller (who frees
 * *buf_r; NULL with *len_r 0 when nothing was written): 0, or -1 when a
 * call failed (the buffer is freed, *buf_r NULL) */
int	wbuf_finish(struct wbuf *w, unsigned char **buf_r, size_t *len_r);
void	wbuf_free(struct wbuf *w);	/* a growing buffer's bytes; NULL ok */
/* wbuf_fail - mark w failed (an encoder's own check) */
void	wbuf_fail(struct wbuf *w);

void	wbuf_bytes(struct wbuf *w, const void *data, size_t n);
void	wbuf_u8(struct wbuf *w, unsigned v);	/* the low 8 bits */
void	wbuf_be16(struct wbuf *w, uint16_t v);
void	wbuf_be32(struct wbuf *w, uint32_t v);
void	wbuf_be64(struct wbuf *w, uint64_t v);
void	wbuf_varint(struct wbuf *w, uint64_t v);	/* LEB128, <= 10 bytes */
void	wbuf_zigzag(struct wbuf *w, int64_t v);		/* then a varint */
/* n bytes of s after an 8-bit, 16-bit or varint length; a length that
 * does not fit its prefix fails w */
void	wbuf_str8(struct wbuf *w, const char *s, size_t n);
void	wbuf_str16(struct wbuf *w, const char *s, size_t n);
void	wbuf_strv(struct wbuf *w, const char *s, size_t n);

/* ---- reading ------------------------------------------------------------- */

struct rbuf {
	const unsigned char *p;
	size_t		 len;
	size_t		 off;		/* bytes taken so far */
	const char	*why;		/* the first failure; NULL: none */
};

/* buf may be NULL (then len is taken as 0) */
void		rbuf_init(struct rbuf *r, const void *buf, size_t len);
/* rbuf_fail - record why (unless a failure is recorded already): -1 */
int		rbuf_fail(struct rbuf *r, const char *why);
size_t		rbuf_left(const struct rbuf *r);
/* rbuf_end - "nothing may follow": 0, or -1 ("trailing bytes") */
int		rbuf_end(struct rbuf *r);

/* The next n bytes, in place ("truncated" when fewer are left). */
const unsigned char *rbuf_take(struct rbuf *r, size_t n);
int		rbuf_bytes(struct rbuf *r, void *out, size_t n);
unsigned	rbuf_u8(struct rbuf *r);
uint16_t	rbuf_be16(struct rbuf *r);
uint32_t	rbuf_be32(struct rbuf *r);
uint64_t	rbuf_be64(struct rbuf *r);
/* at most 10 bytes that fit 64 bits ("integer too long", "integer
 * overflow"); 0 or -1 */
int		rbuf_varint(struct rbuf *r, uint64_t *v_r);
int		rbuf_zigzag(struct rbuf *r, int64_t *v_r);

/*
 * Strings of n bytes (the caller read the length) that may hold no NUL:
 * rbuf_strcpy into out[outsize] (n < outsize), rbuf_strdup into a new
 * string of at most max bytes (the caller frees it).  Reasons, in the
 * order they are checked: "string too long", "truncated string", "NUL
 * in string" and, for rbuf_strdup, "out of memory".
 */
int		rbuf_strcpy(struct rbuf *r, uint64_t n, char *out, size_t outsize);
char		*rbuf_strdup(struct rbuf *r, uint64_t n, size_t max);

#endif
