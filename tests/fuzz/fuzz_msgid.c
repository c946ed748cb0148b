/*
 * fuzz_msgid.c - a fuzz target for common/msgid.c (Message-ID
 * normalisation, header fields, the body hash, canonical addresses) and
 * common/rfc5322.c (the Date we write).  These make the keys of
 * DESIGN.md §4, so a key that changes with the way a message was seen is
 * a duplicate in the new mailbox.
 *
 * The input is a Message-ID field value, a header block (or a whole
 * message) and an address all at once.  It abort()s when an invariant
 * breaks:
 *   - msgid_normalise(): its output is not "<...>" of the length it
 *     returned, or does not fit MSGID_MAXLEN, or normalising it again
 *     gives anything else (normalisation is idempotent), or it needs
 *     more room than its length + 1;
 *   - msgid_from_header_block() gives an id that is not canonical (not a
 *     fixed point of msgid_normalise());
 *   - for an input without CR: the same message with CRLF line ends
 *     gives another Message-ID, Date, From or body hash (the relay sees
 *     CRLF, a maildir LF);
 *   - the body hash differs when the message is fed byte by byte;
 *   - addr_canonical() is not idempotent (on a result without <> and
 *     blanks at its ends: it strips one pair, and blanks outside it);
 *   - rfc5322_date()/rfc5322_date_utc() write past RFC5322_DATE_MAX.
 */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msgid.h"
#include "rfc5322.h"
#include "fuzz.h"

/* check_canonical - id (len n) is a fixed point of msgid_normalise() */
static void
check_canonical(const char *id, int n)
{
	char again[MSGID_BUFSIZE];
	int m;

	if (n < 2 || (size_t)n > MSGID_MAXLEN || strlen(id) != (size_t)n ||
	    id[0] != '<' || id[n - 1] != '>')
		abort();
	m = msgid_normalise(id, (size_t)n, again, sizeof(again));
	if (m != n || memcmp(again, id, (size_t)n + 1) != 0)
		abort();
	/* exactly n + 1 bytes are enough, n are not */
	if (msgid_normalise(id, (size_t)n, again, (size_t)n + 1) != n ||
	    msgid_normalise(id, (size_t)n, again, (size_t)n) != -1)
		abort();
}

/* hash - the body hash of data fed in pieces of step bytes (0: whole) */
static int
hash(const uint8_t *data, size_t size, size_t step,
    unsigned char out[BODY_HASH_LEN])
{
	struct body_hash bh;
	size_t off, n;

	memset(&bh, 0, sizeof(bh));
	if (body_hash_init(&bh) == -1)
		return (-1);
	for (off = 0; off < size; off += n) {
		n = step == 0 ? size - off : step;
		if (n > size - off)
			n = size - off;
		if (body_hash_update(&bh, data + off, n) == -1) {
			body_hash_free(&bh);
			return (-1);
		}
	}
	return (body_hash_final(&bh, out));
}

/* to_crlf - data with every LF made CRLF (data holds no CR); malloc'd */
static uint8_t *
to_crlf(const uint8_t *data, size_t size, size_t *len_r)
{
	uint8_t *out;
	size_t i, o = 0;

	if ((out = malloc(2 * size + 1)) == NULL)
		return (NULL);
	for (i = 0; i < size; i++) {
		if (data[i] == '\n')
			out[o++] = '\r';
		out[o++] = data[i];
	}
	*len_r = o;
	return (out);
}

static void
check_dates(const uint8_t *data, size_t size)
{
	char buf[RFC5322_DATE_MAX];
	time_t t = 0;

	memcpy(&t, data, size < sizeof(t) ? size : sizeof(t));
	(void)rfc5322_date(t, buf, sizeof(buf));
	if (strlen(buf) >= sizeof(buf))
		abort();
	(void)rfc5322_date_utc(t, buf, sizeof(buf));
	if (strlen(buf) >= sizeof(buf))
		abort();
}

/* fuzz_msgid - see fuzz.h */
int
fuzz_msgid(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char id[MSGID_BUFSIZE], id2[MSGID_BUFSIZE];
	char *addr, a1[1100], a2[1100];
	unsigned char h1[BODY_HASH_LEN], h2[BODY_HASH_LEN];
	struct msg_ident *mi1, *mi2;
	uint8_t *crlf;
	size_t crlflen;
	int n, n2, r1, r2;

	if ((n = msgid_normalise(s, size, id, sizeof(id))) >= 0)
		check_canonical(id, n);
	if ((n = msgid_from_header_block(s, size, id, sizeof(id))) >= 0)
		check_canonical(id, n);

	r1 = hash(data, size, 0, h1);
	r2 = hash(data, size, 1, h2);
	if (r1 != r2 || (r1 == 0 && memcmp(h1, h2, sizeof(h1)) != 0))
		abort();

	mi1 = calloc(1, sizeof(*mi1));
	mi2 = calloc(1, sizeof(*mi2));
	if (mi1 != NULL && mi2 != NULL &&
	    msg_ident_from_headers(s, size, mi1) == 0) {
		if (mi1->has_msgid)
			check_canonical(mi1->msgid, (int)strlen(mi1->msgid));
		if (memchr(data, '\r', size) == NULL &&
		    (crlf = to_crlf(data, size, &crlflen)) != NULL) {
			n2 = msgid_from_header_block((const char *)crlf,
			    crlflen, id2, sizeof(id2));
			if (n2 != n || (n >= 0 && strcmp(id, id2) != 0))
				abort();
			if (msg_ident_from_headers((const char *)crlf, crlflen,
			    mi2) != 0 || mi1->has_msgid != mi2->has_msgid ||
			    strcmp(mi1->msgid, mi2->msgid) != 0 ||
			    strcmp(mi1->date, mi2->date) != 0 ||
			    strcmp(mi1->from, mi2->from) != 0)
				abort();
			r2 = hash(crlf, crlflen, 0, h2);
			if (r1 != r2 ||
			    (r1 == 0 && memcmp(h1, h2, sizeof(h1)) != 0))
				abort();
			free(crlf);
		}
	}
	free(mi1);
	free(mi2);

	/* addr_canonical takes a C string: the input up to a NUL */
	if ((addr = malloc(size + 1)) != NULL) {
		memcpy(addr, data, size);
		addr[size] = '\0';
		/* one pair of <> is stripped, and blanks only outside
		 * it, so only a result without brackets and without
		 * blanks at its ends is a fixed point */
		if ((n = addr_canonical(addr, a1, sizeof(a1))) >= 0 &&
		    strpbrk(a1, "<>") == NULL &&
		    (n == 0 || (a1[0] != ' ' && a1[0] != '\t' &&
		    a1[n - 1] != ' ' && a1[n - 1] != '\t')) &&
		    (addr_canonical(a1, a2, sizeof(a2)) < 0 ||
		    strcmp(a1, a2) != 0))
			abort();
		free(addr);
	}
	check_dates(data, size);
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return (fuzz_msgid(data, size));
}
