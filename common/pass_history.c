/*
 * pass_history.c - the per-account pass history record: its codec and
 * its key (layout in pass_history.h).
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "pass_history.h"
#include "util.h"

void
pass_history_add(struct pass_history *h, const struct pass_entry *e)
{
	if (h->n == PASS_HISTORY_MAX) {
		memmove(&h->e[0], &h->e[1], (PASS_HISTORY_MAX - 1) *
		    sizeof(h->e[0]));
		h->n--;
	}
	h->e[h->n++] = *e;
}

void
pass_history_text(char dst[PASS_HISTORY_TEXT_MAX + 1], const char *s)
{
	size_t n;

	if (s == NULL)
		s = "";
	n = strlen(s);
	if (n > PASS_HISTORY_TEXT_MAX) {
		n = PASS_HISTORY_TEXT_MAX;
		/* do not end inside a UTF-8 sequence */
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}

int
pass_history_key(char *buf, size_t len, const char *account)
{
	size_t i, p = strlen(PASS_HISTORY_KEY_PREFIX);
	int n;

	n = snprintf(buf, len, "%s%s", PASS_HISTORY_KEY_PREFIX, account);
	if (n < 0 || (size_t)n >= len || account[0] == '\0')
		return (-1);
	for (i = p; buf[i] != '\0'; i++)
		buf[i] = (char)tolower((unsigned char)buf[i]);
	return (0);
}

static void
put_text(struct wbuf *w, const char *s)
{
	size_t n = strlen(s);

	if (n > PASS_HISTORY_TEXT_MAX)
		wbuf_fail(w);
	else
		wbuf_str16(w, s, n);
}

int
pass_history_encode(const struct pass_history *h, unsigned char **buf_r,
    size_t *len_r)
{
	struct wbuf w;
	size_t i, k;

	*buf_r = NULL;
	*len_r = 0;
	if (h->n > PASS_HISTORY_MAX)
		return (-1);
	wbuf_init(&w);
	wbuf_u8(&w, 'H');
	wbuf_u8(&w, PASS_HISTORY_VERSION);
	wbuf_be16(&w, (uint16_t)h->n);
	for (i = 0; i < h->n; i++) {
		const struct pass_entry *e = &h->e[i];

		wbuf_be64(&w, (uint64_t)e->started);
		wbuf_be64(&w, (uint64_t)e->finished);
		wbuf_u8(&w, e->complete ? 1 : 0);
		wbuf_be64(&w, e->src_count);
		wbuf_be64(&w, e->already);
		wbuf_be64(&w, e->copied);
		wbuf_be64(&w, e->bytes);
		wbuf_be64(&w, e->duplicates);
		wbuf_be64(&w, e->policy);
		wbuf_be64(&w, e->failed);
		wbuf_be64(&w, e->missing);
		put_text(&w, e->error);
		if (e->nreasons > PASS_HISTORY_REASONS_MAX)
			wbuf_fail(&w);
		wbuf_u8(&w, (unsigned)e->nreasons);
		for (k = 0; k < e->nreasons &&
		    k < PASS_HISTORY_REASONS_MAX; k++) {
			put_text(&w, e->reasons[k].folder);
			wbuf_be64(&w, e->reasons[k].uid);
			put_text(&w, e->reasons[k].reason);
		}
	}
	return (wbuf_finish(&w, buf_r, len_r));
}

static int
get_text(struct rbuf *r, char out[PASS_HISTORY_TEXT_MAX + 1])
{
	uint16_t n = rbuf_be16(r);

	return (rbuf_strcpy(r, n, out, PASS_HISTORY_TEXT_MAX + 1));
}

int
pass_history_decode(struct pass_history *h, const void *buf, size_t len,
    char *err, size_t errlen)
{
	struct rbuf r;
	unsigned c;
	size_t i, k, n;

	memset(h, 0, sizeof(*h));
	rbuf_init(&r, buf, len);
	if (rbuf_u8(&r) != 'H') {
		errbuf_set(err, errlen, "pass history: not a pass history");
		return (-1);
	}
	if ((c = rbuf_u8(&r)) != PASS_HISTORY_VERSION) {
		errbuf_set(err, errlen, "pass history: %s", r.why ? r.why :
		    "unknown version");
		return (-1);
	}
	n = rbuf_be16(&r);
	if (n > PASS_HISTORY_MAX)
		rbuf_fail(&r, "too many passes");
	for (i = 0; i < n && r.why == NULL; i++) {
		struct pass_entry *e = &h->e[i];

		e->started = (int64_t)rbuf_be64(&r);
		e->finished = (int64_t)rbuf_be64(&r);
		if ((c = rbuf_u8(&r)) > 1)
			rbuf_fail(&r, "bad complete flag");
		e->complete = (int)c;
		e->src_count = rbuf_be64(&r);
		e->already = rbuf_be64(&r);
		e->copied = rbuf_be64(&r);
		e->bytes = rbuf_be64(&r);
		e->duplicates = rbuf_be64(&r);
		e->policy = rbuf_be64(&r);
		e->failed = rbuf_be64(&r);
		e->missing = rbuf_be64(&r);
		(void)get_text(&r, e->error);
		if ((c = rbuf_u8(&r)) > PASS_HISTORY_REASONS_MAX)
			rbuf_fail(&r, "too many reasons");
		for (k = 0; k < c && r.why == NULL; k++) {
			(void)get_text(&r, e->reasons[k].folder);
			e->reasons[k].uid = rbuf_be64(&r);
			(void)get_text(&r, e->reasons[k].reason);
		}
		e->nreasons = r.why == NULL ? c : 0;
	}
	if (r.why == NULL)
		(void)rbuf_end(&r);
	if (r.why != NULL) {
		errbuf_set(err, errlen, "pass history: %s", r.why);
		memset(h, 0, sizeof(*h));
		return (-1);
	}
	h->n = n;
	return (0);
}
