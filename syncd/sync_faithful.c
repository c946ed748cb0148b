/*
 * sync_faithful.c - is the destination's copy what was sent?  A server
 * may accept an APPEND and store something else: Cyrus (munge8bit: 1,
 * its default) replaces 8-bit header bytes with 'X' and keeps the size.
 * While a body streams into the APPEND, faith_feed() hashes its header
 * section (SHA-256) and notes 8-bit bytes in it; after the batch,
 * faith_check() asks the destination for RFC822.SIZE and BODY.PEEK[HEADER]
 * of every new copy in one pipelined UID FETCH and compares.  Lone LF
 * counts as CRLF on both sides (a server may store either and must send
 * CRLF), so a message is "altered" only when its bytes really changed.
 *
 * SECURITY: the header bytes come from both servers; they are hashed as
 * they stream (no buffer grows with them) and never logged.
 */

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "log.h"
#include "sync_p.h"

/* ---- hashing a header section as it streams ------------------------------ */

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
/*
 * SHA-256 fetched from the provider once for the process: EVP_sha256()
 * makes every EVP_DigestInit_ex() look the algorithm up again (a lock, a
 * table lookup, a reference taken and dropped), and two inits a copied
 * message (the header sent, the header the destination holds) made that
 * lookup a visible part of the check's CPU.  Never freed: it lives as
 * long as the process, like OpenSSL's own tables.
 */
static EVP_MD *sha256_fetched;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}
#endif

/* sha256 - the digest the check compares (the pre-fetched one if any) */
static const EVP_MD *
sha256(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	if (pthread_once(&sha256_once, sha256_fetch) == 0 &&
	    sha256_fetched != NULL)
		return (sha256_fetched);
#endif
	return (EVP_sha256());
}

/*
 * hdr_run - a run of header bytes without LF: hashed in one update
 * (per byte, the digest's call overhead was most of the check's CPU),
 * 8-bit bytes and a non-empty line noted
 */
static void
hdr_run(struct faith *f, const unsigned char *p, size_t n)
{
	size_t i;

	if (n == 0)
		return;
	for (i = 0; i < n; i++) {
		if (p[i] >= 0x80)
			f->eightbit = 1;
		if (p[i] != '\r')
			f->line_empty = 0;
	}
	EVP_DigestUpdate(f->ctx, p, n);
	f->nbytes += n;
	f->last = p[n - 1];
}

/* feed - bytes of a message into f: all counted, the header hashed */
static void
feed(struct faith *f, const unsigned char *p, size_t len)
{
	static const unsigned char crlf[2] = { '\r', '\n' };
	const unsigned char *q, *end = p + len;

	while (p < end && !f->hdr_done) {
		if ((q = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			hdr_run(f, p, (size_t)(end - p));
			return;
		}
		hdr_run(f, p, (size_t)(q - p));
		if (f->last != '\r') {
			/* lone LF: counted and hashed as CRLF */
			EVP_DigestUpdate(f->ctx, crlf, 2);
			f->nbytes += 2;
		} else {
			EVP_DigestUpdate(f->ctx, crlf + 1, 1);
			f->nbytes++;
		}
		/* the header ends with an empty line: LF (CR) LF */
		if (f->line_empty)
			f->hdr_done = 1;
		f->line_empty = 1;
		f->last = '\n';
		p = q + 1;
	}
	if (p == end)
		return;
	/* the body: only counted, a lone LF as two bytes */
	f->nbytes += (size_t)(end - p);
	for (; p < end && (q = memchr(p, '\n', (size_t)(end - p))); p = q + 1) {
		if ((q == p ? f->last : q[-1]) != '\r')
			f->nbytes++;
		f->last = '\n';
	}
	f->last = end[-1];
}

/* faith_begin - start hashing one message; -1 when out of memory */
int
faith_begin(struct faith *f)
{
	memset(f, 0, sizeof(*f));
	f->line_empty = 1;	/* no header at all: an empty line first */
	if ((f->ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(f->ctx, sha256(), NULL) != 1) {
		EVP_MD_CTX_free(f->ctx);
		f->ctx = NULL;
		return (-1);
	}
	return (0);
}

void
faith_feed(struct faith *f, const void *data, size_t len)
{
	if (f->ctx != NULL)
		feed(f, data, len);
}

/* faith_end - the message ended: the digest of its header section */
void
faith_end(struct faith *f)
{
	unsigned int n = 0;

	if (f->ctx == NULL)
		return;
	EVP_DigestFinal_ex(f->ctx, f->md, &n);
	EVP_MD_CTX_free(f->ctx);
	f->ctx = NULL;
	f->ready = n == sizeof(f->md);
}

void
faith_free(struct faith *f)
{
	EVP_MD_CTX_free(f->ctx);
	f->ctx = NULL;
}

/* ---- asking the destination ---------------------------------------------- */

/*
 * A FETCH response's items may come in any order (Cyrus sends UID after
 * the body), so a header is hashed as it streams and matched to its copy
 * by UID when the whole response is in (k_msg).
 */
struct check {
	struct wres	 r;		/* first: wres_done fills it */
	struct faith_item *v;
	size_t		 n;
	struct faith	 got;		/* the header streaming now */
	int		 streaming;
	int		 have_md;	/* got.md: this response's header */
	int		 oom;
};

static struct faith_item *
item_of(struct check *k, uint64_t uid)
{
	size_t i;

	for (i = 0; i < k->n; i++)
		if (k->v[i].dst_uid == uid)
			return (&k->v[i]);
	return (NULL);
}

static void
k_body_begin(struct imap_client *c, const struct imap_fetch_msg *m,
    const char *section, uint64_t size, void *arg)
{
	struct check *k = arg;

	(void)c;
	(void)m;
	(void)size;
	k->streaming = 0;
	k->have_md = 0;
	/* the item as the server named it: "BODY[HEADER]" */
	if (section == NULL || strcasestr(section, "[HEADER]") == NULL)
		return;
	faith_free(&k->got);
	if (faith_begin(&k->got) == -1) {
		k->oom = 1;
		return;
	}
	k->streaming = 1;
}

static void
k_body_data(struct imap_client *c, const void *data, size_t len, void *arg)
{
	struct check *k = arg;

	(void)c;
	if (k->streaming)
		faith_feed(&k->got, data, len);
}

static void
k_body_end(struct imap_client *c, void *arg)
{
	struct check *k = arg;

	(void)c;
	if (!k->streaming)
		return;
	/* BODY[HEADER] is the header section with its empty line: the
	 * whole literal is hashed */
	faith_end(&k->got);
	k->have_md = k->got.ready;
	k->streaming = 0;
}

static void
k_msg(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	struct check *k = arg;
	struct faith_item *it;

	(void)c;
	if (!(m->have & IMAP_FETCH_UID) || (it = item_of(k, m->uid)) == NULL) {
		k->have_md = 0;
		return;
	}
	if (m->have & IMAP_FETCH_SIZE) {
		it->got_size = 1;
		it->dst_size = m->size;
	}
	if (k->have_md) {
		it->got_header = 1;
		it->header_same = memcmp(k->got.md, it->sent->md,
		    sizeof(k->got.md)) == 0;
	}
	k->have_md = 0;
}

/* uidset_of - "3,7,9:12" of the items' destination UIDs (ascending) */
static char *
uidset_of(const struct faith_item *v, size_t n)
{
	char *s;
	size_t i, o = 0, cap = n * 21 + 1;

	if ((s = malloc(cap)) == NULL)
		return (NULL);
	s[0] = '\0';
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, cap - o, "%s%" PRIu64,
		    i ? "," : "", v[i].dst_uid);
	return (s);
}

static int
item_cmp(const void *a, const void *b)
{
	const struct faith_item *x = a, *y = b;

	return (x->dst_uid < y->dst_uid ? -1 : x->dst_uid > y->dst_uid);
}

/* judge - each answered item against what was sent */
static void
judge(struct worker *w, struct faith_item *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct faith_item *it = &v[i];
		const struct faith *s = it->sent;

		it->checked = it->got_size && it->got_header;
		if (!it->checked)
			continue;
		if (!it->header_same) {
			it->altered = 1;
			if (s->eightbit && (w->s[DST].c == NULL ||
			    !(imap_client_enabled(w->s[DST].c) &
			    IMAP_ENABLE_UTF8)))
				snprintf(it->why, sizeof(it->why), "altered by "
				    "the destination: its header differs from "
				    "the one sent, which has 8-bit bytes and "
				    "the server does not offer UTF8=ACCEPT "
				    "(Cyrus: set munge8bit: no in imapd.conf "
				    "before copying)");
			else
				snprintf(it->why, sizeof(it->why), "altered by "
				    "the destination: its header differs from "
				    "the one sent");
		} else if (it->dst_size != s->nbytes) {
			it->altered = 1;
			snprintf(it->why, sizeof(it->why), "altered by the "
			    "destination: RFC822.SIZE %" PRIu64 ", %" PRIu64
			    " bytes sent", it->dst_size, s->nbytes);
		}
	}
}

/*
 * faith_check_send - queue the check of v[0..n) on the destination
 * (folder wire, selected read-only first if it is not selected) and
 * return without waiting: *qp owns the check in flight until
 * faith_check_collect.  The items must stay where they are until then.
 * 0 queued, -1 not (err says why; *qp NULL).
 */
int
faith_check_send(struct worker *w, const char *wire, struct faith_item *v,
    size_t n, struct faith_q **qp, char *err, size_t errlen)
{
	static const struct imap_fetch_cbs cbs = {
		k_body_begin, k_body_data, k_body_end, k_msg, NULL
	};
	struct check *k;
	struct wres r;
	char *set;

	*qp = NULL;
	if (w->s[DST].c == NULL || w->s[DST].state != 1) {
		snprintf(err, errlen, "not connected");
		return (-1);
	}
	if (strcmp(w->s[DST].selected, wire) != 0 &&
	    side_select(w, DST, wire, 0, &r) != 0) {
		wres_reason(&r, err, errlen);
		return (-1);
	}
	qsort(v, n, sizeof(*v), item_cmp);
	if ((set = uidset_of(v, n)) == NULL ||
	    (k = calloc(1, sizeof(*k))) == NULL) {
		free(set);
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	k->v = v;
	k->n = n;
	if (imap_client_uid_fetch(w->s[DST].c, set,
	    "(UID RFC822.SIZE BODY.PEEK[HEADER])", 0, 0, &cbs, wres_done,
	    k) == NULL) {
		free(set);
		free(k);
		snprintf(err, errlen, "FETCH not queued");
		return (-1);
	}
	free(set);
	*qp = (struct faith_q *)k;
	return (0);
}

/*
 * faith_check_collect - wait for a check queued by faith_check_send and
 * fill it->altered and it->why; q is freed.  0 when the check ran (an
 * item may lack an answer: it->checked 0), -1 when the destination's
 * answer was lost (err says why; the caller may ask again).
 */
int
faith_check_collect(struct worker *w, struct faith_q *q, char *err,
    size_t errlen)
{
	struct check *k = (struct check *)q;
	int rc = 0;

	if (side_loop_until(w, &k->r.done) == -1 || k->r.status != IMAP_OK) {
		if (!k->r.done)
			snprintf(err, errlen, "event loop empty");
		else
			wres_reason(&k->r, err, errlen);
		rc = -1;
	} else if (k->oom) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
	} else
		judge(w, k->v, k->n);
	faith_free(&k->got);
	free(k);
	return (rc);
}

/*
 * faith_check - faith_check_send and faith_check_collect in one: 0 when
 * the check ran, -1 when the destination could not be asked (err says
 * why; the copies then stay unverified, not altered).
 */
int
faith_check(struct worker *w, const char *wire, struct faith_item *v,
    size_t n, char *err, size_t errlen)
{
	struct faith_q *q;

	if (n == 0)
		return (0);
	if (faith_check_send(w, wire, v, n, &q, err, errlen) == -1)
		return (-1);
	return (faith_check_collect(w, q, err, errlen));
}
