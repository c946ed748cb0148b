/*
 * dkim_verify.c - streaming DKIM verification on the loop (see
 * dkim_verify.h): libopendkim hashes and checks, common/dns fetches keys.
 *
 * Why it never blocks: libopendkim normally looks keys up inside
 * dkim_eoh() (or dkim_eom() with DKIM_LIBFLAGS_DELAYSIGPROC) with a
 * blocking resolver loop.  Here the library runs with DELAYSIGPROC, so
 * dkim_eoh() only parses the signatures and sets up the hashes; we read
 * the signature list, fetch every distinct key asynchronously with our
 * resolver while the body streams into dkim_body(), and dkim_eom() gets
 * its keys from a dkim_set_key_lookup() callback that only copies the
 * TXT record already fetched (it never returns DKIM_CBSTAT_DEFAULT, which
 * would make libopendkim ask DNS itself).
 *
 * Why not dkim_chunk(): for an unsigned message its implicit dkim_eoh()
 * returns DKIM_STAT_NOSIG and the chunk state stays "header", so later
 * body bytes are parsed as header fields; and the caller could not tell
 * where the header block ended.  So the header block is split into
 * fields here (dkim_header() wants one field with its folds and without
 * the final CRLF) and the body goes straight to dkim_body(), which takes
 * any chunking.
 *
 * Verdict of a signature (DESIGN.md 7): pass only when libopendkim set
 * DKIM_SIGFLAG_PASSED (header hash signed by the key) AND the body hash
 * matched (dkim_sig_getbh() == DKIM_SIGBH_MATCH) AND no error was noted;
 * PASSED alone only means the header part verified.  The full mapping is
 * in dkim_verify.h and sig_verdict() below.  DKIM_LIBFLAGS_BADSIGHANDLES
 * keeps malformed signatures in the list so they are reported (neutral)
 * instead of silently making the message look unsigned.
 *
 * SECURITY: every byte comes from the SMTP peer, and the keys from DNS
 * chosen by the peer's d= and s=.  Bounded work: at most DKIMV_MAX_SIGS
 * DKIM-Signature fields (each at most SIGFIELD_MAX bytes) reach
 * libopendkim, so a message cannot make us hash its body a thousand
 * times or start a thousand look-ups; a header block over
 * DKIMV_HEADER_MAX bytes or FIELDS_MAX fields is not verified at all
 * (libopendkim's header selection is quadratic); key names are checked
 * with dns_name_valid() before any look-up; a key record must be one TXT
 * record without NUL bytes that fits libopendkim's 1024-byte buffer.
 * Strings copied into results keep printable ASCII only.
 *
 * Ownership and threading: loop thread only.  A key slot points back to
 * its message and is the argument of its look-up, so dkimv_msg_free()
 * and dkimv_msg_eom() cancel every outstanding look-up first; done_cb is
 * always the last thing a dispatch does, so it may free the message.
 */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <dkim.h>

#include "dkim_verify.h"
#include "dns.h"
#include "util.h"

/* libopendkim hands the key callback a BUFRSZ + 1 (1025) byte buffer. */
#define KEY_RECORD_MAX	1024
#define SIGFIELD_MAX	8192	/* a DKIM-Signature field, bytes */
#define FIELDS_MAX	1000	/* header fields per message */
#define NAME_PROBE	64	/* bytes kept of a field once over limits */

#define SIGHDR		"DKIM-Signature"

/*
 * RFC 5322 3.6: the fields a message has at most one of.  A second one
 * is how an unsigned "From: Mallory" rides on a signature that covers
 * the From below it (a signer hashes the bottom instance, readers show
 * the top one), so a message with any of them repeated gets no pass
 * from any signature.  libopendkim's DKIM_LIBFLAGS_STRICTHDRS is not
 * used for this: it knows only Date and From, also refuses a message
 * without Date or with a From it cannot parse, and then fails dkim_eoh()
 * as a whole so no signature is reported.
 */
static const char *const singletons[] = {
	"Date", "From", "Sender", "Reply-To", "To", "Cc", "Bcc",
	"Message-ID", "In-Reply-To", "References", "Subject"
};
#define NSINGLETONS	(sizeof(singletons) / sizeof(singletons[0]))

struct dkimv_lib {
	DKIM_LIB		*dl;
	struct event_base	*base;
	struct dkimv_key_source	 src;
};

/* One distinct key name of a message and what its look-up found. */
struct dkimv_key {
	struct dkimv_msg	*msg;
	char			 name[DNS_NAME_MAX + 2];
	int			 started;	/* look-up outstanding */
	uint64_t		 id;
	int			 done;
	int			 status;	/* enum dns_status when done */
	enum dkimv_res		 verdict;	/* PASS: record usable */
	char			*record;	/* usable record, NUL-terminated */
	char			 why[128];	/* verdict != PASS */
};

/* One signature as libopendkim listed it, plus what we decided early. */
struct dkimv_sig {
	DKIM_SIGINFO		*si;
	int			 pre_error;	/* sig_error after dkim_eoh() */
	struct dkimv_key	*key;		/* NULL: none fetched */
	enum dkimv_res		 early;		/* != DKIMV_NONE: decided */
	char			 early_why[128];
};

enum msg_state {
	MS_HEADER,	/* splitting header fields */
	MS_BODY,	/* after the empty line */
	MS_DONE		/* dkimv_msg_eom() ran */
};

struct dkimv_msg {
	struct dkimv_lib	*lib;
	DKIM			*dkim;
	char			*id;
	enum msg_state		 state;

	/* header splitter */
	char			*field;		/* current field, line ends kept */
	size_t			 flen, fcap;
	int			 at_bol;	/* next byte starts a line */
	int			 cr_at_bol;	/* a line started with CR */
	size_t			 hdr_bytes;
	size_t			 nfields;
	int			 overflow;	/* header block over the limits */
	size_t			 nsigfields;	/* DKIM-Signature fields seen */
	size_t			 nsigfed;	/* ... given to libopendkim */
	size_t			 nignored;
	unsigned char		 nsingle[NSINGLETONS];	/* counts, max 2 */

	/* after the header block */
	int			 eoh_ran;	/* header_end() ran */
	DKIM_STAT		 eoh_stat;
	int			 body_on;	/* feed dkim_body() */
	int			 body_any;	/* body bytes were fed */
	char			 body_tail[2];	/* its last two bytes */
	int			 failed;	/* local trouble: temperror */
	char			 failwhy[128];

	struct dkimv_sig	*sigs;
	size_t			 nsigs;
	struct dkimv_key	*keys;		/* never reallocated */
	size_t			 nkeys;
	size_t			 npending;

	int			 eoh_called;	/* dkimv_msg_eoh() ran */
	dkimv_done_cb		*done_cb;
	void			*done_arg;
	int			 done_fired;
	struct event		*done_ev;

	struct dkimv_result	*res;
	size_t			 nres;
};

static void	fire_done(struct dkimv_msg *msg);

const char *
dkimv_result_name(enum dkimv_res res)
{
	switch (res) {
	case DKIMV_NONE:	return ("none");
	case DKIMV_PASS:	return ("pass");
	case DKIMV_FAIL:	return ("fail");
	case DKIMV_NEUTRAL:	return ("neutral");
	case DKIMV_TEMPERROR:	return ("temperror");
	case DKIMV_PERMERROR:	return ("permerror");
	}
	return ("?");
}

/* --- the library handle ------------------------------------------------ */

static int
dns_source_start(void *ctx, const char *name, dns_cb cb, void *arg,
    uint64_t *id_r, char *err, size_t errlen)
{
	return (dns_lookup(ctx, name, DNS_TXT, cb, arg, id_r, err, errlen));
}

static void
dns_source_cancel(void *ctx, uint64_t id)
{
	(void)dns_cancel(ctx, id);
}

static struct dkimv_sig *
sig_find(struct dkimv_msg *msg, DKIM_SIGINFO *si)
{
	size_t i;

	for (i = 0; i < msg->nsigs; i++)
		if (msg->sigs[i].si == si)
			return (&msg->sigs[i]);
	return (NULL);
}

/*
 * key_type_ok - does the key record's k= (default rsa, RFC 6376 3.6.1)
 * fit the signature's algorithm?  libopendkim decodes p= by a= alone, so
 * a k=ed25519 record holding an RSA key would verify rsa-sha256.  A k=
 * we do not know is left to libopendkim (key type unknown).
 */
static int
key_type_ok(const char *rec, DKIM_SIGINFO *si, char *why, size_t whylen)
{
	const char *p = rec, *v, *e, *want;
	size_t n;
	dkim_alg_t alg;

	if (dkim_sig_getsignalg(si, &alg) != DKIM_STAT_OK)
		return (1);
	if (alg == DKIM_SIGN_RSASHA256 || alg == DKIM_SIGN_RSASHA1)
		want = "rsa";
	else if (alg == DKIM_SIGN_ED25519SHA256)
		want = "ed25519";
	else
		return (1);
	v = "rsa";
	n = 3;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		e = strchr(p, ';');
		if (e == NULL)
			e = p + strlen(p);
		if (*p == 'k') {
			v = p + 1;
			while (v < e && (*v == ' ' || *v == '\t' ||
			    *v == '\r' || *v == '\n'))
				v++;
			if (v < e && *v == '=') {
				v++;
				while (v < e && (*v == ' ' || *v == '\t' ||
				    *v == '\r' || *v == '\n'))
					v++;
				for (n = (size_t)(e - v); n > 0 &&
				    (v[n - 1] == ' ' || v[n - 1] == '\t' ||
				    v[n - 1] == '\r' || v[n - 1] == '\n'); n--)
					continue;
				break;
			}
			v = "rsa";	/* "kx=...": another tag */
			n = 3;
		}
		p = *e == ';' ? e + 1 : e;
	}
	if ((n == 3 && strncasecmp(v, "rsa", 3) == 0) ||
	    (n == 7 && strncasecmp(v, "ed25519", 7) == 0)) {
		if (n == strlen(want) && strncasecmp(v, want, n) == 0)
			return (1);
		(void)snprintf(why, whylen, "key type k=%.*s does not fit "
		    "a=%s", (int)n, v, alg == DKIM_SIGN_ED25519SHA256 ?
		    "ed25519-sha256" : alg == DKIM_SIGN_RSASHA1 ? "rsa-sha1" :
		    "rsa-sha256");
		return (0);
	}
	return (1);
}

/*
 * key_lookup_cb - libopendkim wants a key inside dkim_eom(): hand over
 * the record fetched earlier.  NOTFOUND makes libopendkim note "no key";
 * ERROR leaves the signature unprocessed and sig_verdict() reports what
 * the look-up found.  Never DKIM_CBSTAT_DEFAULT: that would block in DNS.
 */
static DKIM_CBSTAT
key_lookup_cb(DKIM *dkim, DKIM_SIGINFO *si, u_char *buf, size_t buflen)
{
	struct dkimv_msg *msg = dkim_get_user_context(dkim);
	struct dkimv_sig *s;
	struct dkimv_key *k;
	size_t len;

	if (msg == NULL || (s = sig_find(msg, si)) == NULL ||
	    (k = s->key) == NULL || !k->done)
		return (DKIM_CBSTAT_ERROR);
	if (k->record != NULL) {
		/* decided here: sig_verdict() reports early first */
		if (!key_type_ok(k->record, si, s->early_why,
		    sizeof(s->early_why))) {
			s->early = DKIMV_PERMERROR;
			return (DKIM_CBSTAT_ERROR);
		}
		len = strlen(k->record);
		if (len >= buflen)
			return (DKIM_CBSTAT_ERROR);
		memcpy(buf, k->record, len + 1);
		return (DKIM_CBSTAT_CONTINUE);
	}
	if (k->status == DNS_NXDOMAIN || k->status == DNS_NODATA)
		return (DKIM_CBSTAT_NOTFOUND);
	return (DKIM_CBSTAT_ERROR);
}

/*
 * dkimv_lib_new - the process's libopendkim handle, set up so that it
 * never does DNS itself: signatures are processed in dkim_eom()
 * (DELAYSIGPROC) and keys come from key_lookup_cb.
 */
int
dkimv_lib_new(struct dkimv_lib **lib_r, struct event_base *base,
    struct dns_resolver *resolver, char *err, size_t errlen)
{
	struct dkimv_lib *lib;
	u_int flags = DKIM_LIBFLAGS_DELAYSIGPROC | DKIM_LIBFLAGS_BADSIGHANDLES;

	*lib_r = NULL;
	if (base == NULL) {
		errbuf_set(err, errlen, "no event loop");
		return (-1);
	}
	if ((lib = calloc(1, sizeof(*lib))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	lib->base = base;
	lib->src.start = dns_source_start;
	lib->src.cancel = dns_source_cancel;
	lib->src.ctx = resolver;
	if ((lib->dl = dkim_init(NULL, NULL)) == NULL) {
		errbuf_set(err, errlen, "dkim_init failed");
		free(lib);
		return (-1);
	}
	if (dkim_options(lib->dl, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
	    sizeof(flags)) != DKIM_STAT_OK ||
	    dkim_set_key_lookup(lib->dl, key_lookup_cb) != DKIM_STAT_OK) {
		errbuf_set(err, errlen, "cannot set libopendkim options");
		dkim_close(lib->dl);
		free(lib);
		return (-1);
	}
	*lib_r = lib;
	return (0);
}

/* dkimv_lib_set_key_source - fetch keys elsewhere (tests); copied */
void
dkimv_lib_set_key_source(struct dkimv_lib *lib,
    const struct dkimv_key_source *src)
{
	lib->src = *src;
}

void
dkimv_lib_free(struct dkimv_lib **libp)
{
	struct dkimv_lib *lib;

	if (libp == NULL || (lib = *libp) == NULL)
		return;
	*libp = NULL;
	dkim_close(lib->dl);
	free(lib);
}

/* --- a message --------------------------------------------------------- */

static void
done_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fire_done(arg);
}

/* dkimv_msg_new - a libopendkim verifying handle plus our state */
struct dkimv_msg *
dkimv_msg_new(struct dkimv_lib *lib, const char *id)
{
	struct dkimv_msg *msg;
	DKIM_STAT st;

	if ((msg = calloc(1, sizeof(*msg))) == NULL)
		return (NULL);
	msg->lib = lib;
	msg->at_bol = 1;
	msg->state = MS_HEADER;
	/* libopendkim keeps the id pointer, not a copy */
	msg->id = strdup(id != NULL ? id : "-");
	msg->done_ev = event_new(lib->base, -1, 0, done_ev_cb, msg);
	if (msg->id == NULL || msg->done_ev == NULL)
		goto fail;
	msg->dkim = dkim_verify(lib->dl, (const u_char *)msg->id, NULL, &st);
	if (msg->dkim == NULL)
		goto fail;
	if (dkim_set_user_context(msg->dkim, msg) != DKIM_STAT_OK)
		goto fail;
	return (msg);
fail:
	dkimv_msg_free(&msg);
	return (NULL);
}

/* msg_fail - note local trouble; the verdict becomes temperror */
static void
msg_fail(struct dkimv_msg *msg, const char *why, DKIM_STAT st)
{
	if (msg->failed)
		return;
	msg->failed = 1;
	msg->body_on = 0;
	if (st == DKIM_STAT_OK)
		str_copy(msg->failwhy, why, sizeof(msg->failwhy));
	else
		(void)snprintf(msg->failwhy, sizeof(msg->failwhy), "%s: %s",
		    why, dkim_getresultstr(st));
}

/* field_is - does field (name, optional WSP, colon) have this name? */
static int
field_is(const char *f, size_t len, const char *name)
{
	size_t n = strlen(name), i;

	if (len <= n || strncasecmp(f, name, n) != 0)
		return (0);
	for (i = n; i < len && (f[i] == ' ' || f[i] == '\t'); i++)
		continue;
	return (i < len && f[i] == ':');
}

/*
 * field_flush - a header field is complete: hand it to libopendkim
 * without its final line end.  Fields libopendkim rejects (no colon,
 * control characters in the name) are simply not part of any signature;
 * a malformed DKIM-Signature is kept by BADSIGHANDLES and reported.
 */
static void
field_flush(struct dkimv_msg *msg)
{
	size_t len = msg->flen, i;
	int is_sig;
	DKIM_STAT st;

	msg->flen = 0;
	if (len > 0 && msg->field[len - 1] == '\n')
		len--;
	if (len > 0 && msg->field[len - 1] == '\r')
		len--;
	if (len == 0)
		return;
	for (i = 0; i < NSINGLETONS; i++)
		if (field_is(msg->field, len, singletons[i])) {
			if (msg->nsingle[i] < 2)
				msg->nsingle[i]++;
			break;
		}
	is_sig = field_is(msg->field, len, SIGHDR);
	if (is_sig)
		msg->nsigfields++;
	if (msg->overflow || msg->failed)
		return;
	if (++msg->nfields > FIELDS_MAX) {
		msg->overflow = 1;
		return;
	}
	if (is_sig) {
		if (msg->nsigfed >= DKIMV_MAX_SIGS || len > SIGFIELD_MAX) {
			msg->nignored++;
			return;
		}
		msg->nsigfed++;
	}
	st = dkim_header(msg->dkim, (u_char *)msg->field, len);
	if (st != DKIM_STAT_OK && st != DKIM_STAT_SYNTAX)
		msg_fail(msg, "dkim_header", st);
}

/* field_add - keep one more byte of the current field (within limits) */
static void
field_add(struct dkimv_msg *msg, char c)
{
	size_t ncap;
	char *nf;

	if (++msg->hdr_bytes > DKIMV_HEADER_MAX)
		msg->overflow = 1;
	/* Past the limits only the start of each field is kept, enough to
	 * count DKIM-Signature fields (an unsigned message stays "none"). */
	if ((msg->overflow || msg->failed) && msg->flen >= NAME_PROBE)
		return;
	if (msg->flen == msg->fcap) {
		ncap = msg->fcap ? msg->fcap * 2 : 256;
		if ((nf = realloc(msg->field, ncap)) == NULL) {
			msg_fail(msg, "out of memory", DKIM_STAT_OK);
			return;
		}
		msg->field = nf;
		msg->fcap = ncap;
	}
	msg->field[msg->flen++] = c;
}

/*
 * header_feed - split header fields out of the next bytes; returns how
 * many bytes belonged to the header block, and sets *end when they ended
 * with the empty line (which is not part of the body).
 */
static size_t
header_feed(struct dkimv_msg *msg, const char *p, size_t len, int *end)
{
	size_t i;
	char c;

	*end = 0;
	for (i = 0; i < len; i++) {
		c = p[i];
		if (msg->cr_at_bol) {
			msg->cr_at_bol = 0;
			if (c == '\n') {
				*end = 1;
				return (i + 1);
			}
			/* a line starting with a lone CR: junk field */
			field_add(msg, '\r');
		} else if (msg->at_bol) {
			msg->at_bol = 0;
			if ((c == ' ' || c == '\t') && msg->flen > 0) {
				field_add(msg, c);	/* folded */
				continue;
			}
			field_flush(msg);
			if (c == '\r') {
				msg->cr_at_bol = 1;
				continue;
			}
			if (c == '\n') {	/* bare LF empty line */
				*end = 1;
				return (i + 1);
			}
		}
		field_add(msg, c);
		if (c == '\n')
			msg->at_bol = 1;
	}
	return (len);
}

/* sig_tag - a signature's tag value, or "" */
static const char *
sig_tag(DKIM_SIGINFO *si, const char *tag)
{
	const u_char *v = dkim_sig_gettagvalue(si, 0, (u_char *)tag);

	return (v != NULL ? (const char *)v : "");
}

/* q_ok - does q= (absent, or a colon list) offer dns/txt? */
static int
q_ok(const char *q)
{
	const char *p = q, *e;

	if (*q == '\0')
		return (1);
	while (*p != '\0') {
		e = strchr(p, ':');
		if (e == NULL)
			e = p + strlen(p);
		if (e - p == 7 && strncasecmp(p, "dns/txt", 7) == 0)
			return (1);
		p = *e == ':' ? e + 1 : e;
	}
	return (0);
}

/*
 * header_end - the header block is complete: let libopendkim parse the
 * signatures (no key look-ups: DELAYSIGPROC) and decide early what needs
 * no key.
 */
static void
header_end(struct dkimv_msg *msg)
{
	DKIM_SIGINFO **list;
	struct dkimv_sig *s;
	dkim_alg_t alg;
	int n, i;

	if (msg->cr_at_bol) {	/* input ended on a CR at a line start */
		msg->cr_at_bol = 0;
		field_add(msg, '\r');
	}
	field_flush(msg);
	msg->eoh_ran = 1;
	msg->state = MS_BODY;
	if (msg->failed || msg->overflow)
		return;
	msg->eoh_stat = dkim_eoh(msg->dkim);
	if (msg->eoh_stat != DKIM_STAT_OK)
		return;		/* NOSIG (unsigned) or a message error */
	if (dkim_getsiglist(msg->dkim, &list, &n) != DKIM_STAT_OK || n <= 0) {
		msg_fail(msg, "no signature list after dkim_eoh", DKIM_STAT_OK);
		return;
	}
	if ((msg->sigs = calloc((size_t)n, sizeof(*msg->sigs))) == NULL ||
	    (msg->keys = calloc((size_t)n, sizeof(*msg->keys))) == NULL) {
		msg_fail(msg, "out of memory", DKIM_STAT_OK);
		return;
	}
	msg->nsigs = (size_t)n;
	for (i = 0; i < n; i++) {
		s = &msg->sigs[i];
		s->si = list[i];
		s->pre_error = dkim_sig_geterror(list[i]);
		if (s->pre_error != DKIM_SIGERROR_UNKNOWN)
			continue;
		if (!q_ok(sig_tag(s->si, "q"))) {
			s->early = DKIMV_NEUTRAL;
			str_copy(s->early_why, "unsupported query method (q=)",
			    sizeof(s->early_why));
		} else if (dkim_sig_getsignalg(s->si, &alg) == DKIM_STAT_OK &&
		    alg == DKIM_SIGN_RSASHA1) {
			s->early = DKIMV_NEUTRAL;
			str_copy(s->early_why, "rsa-sha1 not accepted (RFC 8301)",
			    sizeof(s->early_why));
		}
		/* decided already: libopendkim need not fetch or check */
		if (s->early != DKIMV_NONE)
			dkim_sig_ignore(s->si);
	}
	msg->body_on = 1;
}

/* dkimv_msg_chunk - split header fields until the empty line, then
 * hash body bytes as they come (nothing is kept) */
int
dkimv_msg_chunk(struct dkimv_msg *msg, const void *data, size_t len)
{
	const char *p = data;
	size_t used;
	int end;
	DKIM_STAT st;

	if (msg == NULL || msg->state == MS_DONE)
		return (-1);
	if (len == 0)
		return (0);
	if (msg->state == MS_HEADER) {
		used = header_feed(msg, p, len, &end);
		if (end)
			header_end(msg);
		p += used;
		len -= used;
	}
	if (len > 0 && msg->body_on && !msg->failed) {
		if (len >= 2)
			memcpy(msg->body_tail, p + len - 2, 2);
		else {
			msg->body_tail[0] = msg->body_tail[1];
			msg->body_tail[1] = p[0];
		}
		msg->body_any = 1;
		st = dkim_body(msg->dkim, (u_char *)p, len);
		if (st != DKIM_STAT_OK)
			msg_fail(msg, "dkim_body", st);
	}
	return (0);
}

/* --- key look-ups ------------------------------------------------------ */

/* key_found - classify a look-up's answer into k->verdict/record/why */
static void
key_found(struct dkimv_key *k, int status, const struct dns_result *res)
{
	k->status = status;
	switch (status) {
	case DNS_OK:
		if (res->count != 1) {
			k->verdict = DKIMV_PERMERROR;
			(void)snprintf(k->why, sizeof(k->why),
			    "%zu key records (RFC 6376 3.6.2.2)", res->count);
		} else if (res->txt[0].len > KEY_RECORD_MAX) {
			k->verdict = DKIMV_PERMERROR;
			str_copy(k->why, "key record too long", sizeof(k->why));
		} else if (memchr(res->txt[0].data, '\0',
		    res->txt[0].len) != NULL) {
			k->verdict = DKIMV_PERMERROR;
			str_copy(k->why, "NUL byte in key record",
			    sizeof(k->why));
		} else if ((k->record = strndup((const char *)
		    res->txt[0].data, res->txt[0].len)) == NULL) {
			k->verdict = DKIMV_TEMPERROR;
			str_copy(k->why, "out of memory", sizeof(k->why));
		} else
			k->verdict = DKIMV_PASS;
		break;
	case DNS_NXDOMAIN:
		k->verdict = DKIMV_PERMERROR;
		str_copy(k->why, "no key (NXDOMAIN)", sizeof(k->why));
		break;
	case DNS_NODATA:
		k->verdict = DKIMV_PERMERROR;
		str_copy(k->why, "no key (no TXT record)", sizeof(k->why));
		break;
	case DNS_PERMFAIL:
		k->verdict = DKIMV_PERMERROR;
		(void)snprintf(k->why, sizeof(k->why), "key look-up: %.100s",
		    res->why);
		break;
	default:
		k->verdict = DKIMV_TEMPERROR;
		(void)snprintf(k->why, sizeof(k->why), "key look-up: %.100s",
		    res->why[0] != '\0' ? res->why : "temporary failure");
		break;
	}
}

/* key_cb - a look-up finished (from the loop) */
static void
key_cb(int status, const struct dns_result *res, void *arg)
{
	struct dkimv_key *k = arg;
	struct dkimv_msg *msg = k->msg;

	k->started = 0;
	k->done = 1;
	key_found(k, status, res);
	if (--msg->npending == 0)
		fire_done(msg);		/* last: it may free msg */
}

/* fire_done - call done_cb once; the caller must not touch msg after */
static void
fire_done(struct dkimv_msg *msg)
{
	if (msg->done_fired)
		return;
	msg->done_fired = 1;
	if (msg->done_cb != NULL)
		msg->done_cb(msg, msg->done_arg);
}

/* key_for - the key slot for name, starting its look-up if new */
static struct dkimv_key *
key_for(struct dkimv_msg *msg, const char *name)
{
	struct dkimv_lib *lib = msg->lib;
	struct dkimv_key *k;
	char err[128];
	size_t i;

	for (i = 0; i < msg->nkeys; i++)
		if (strcasecmp(msg->keys[i].name, name) == 0)
			return (&msg->keys[i]);
	k = &msg->keys[msg->nkeys++];	/* room for one per signature */
	k->msg = msg;
	str_copy(k->name, name, sizeof(k->name));
	if (!dns_name_valid(name)) {
		k->done = 1;
		k->status = DNS_PERMFAIL;
		k->verdict = DKIMV_PERMERROR;
		str_copy(k->why, "invalid key name", sizeof(k->why));
		return (k);
	}
	if (lib->src.start == NULL || lib->src.start(lib->src.ctx, name,
	    key_cb, k, &k->id, err, sizeof(err)) == -1) {
		k->done = 1;
		k->status = DNS_TEMPFAIL;
		k->verdict = DKIMV_TEMPERROR;
		(void)snprintf(k->why, sizeof(k->why), "key look-up: %.100s",
		    lib->src.start == NULL ? "no key source" : err);
		return (k);
	}
	k->started = 1;
	msg->npending++;
	return (k);
}

/*
 * dkimv_msg_eoh - start one look-up per distinct selector._domainkey.d
 * of the signatures libopendkim could parse.  done_cb comes from the
 * loop: from the last look-up's callback, or from done_ev when nothing
 * had to be fetched.
 */
int
dkimv_msg_eoh(struct dkimv_msg *msg, dkimv_done_cb *done_cb, void *arg)
{
	struct dkimv_sig *s;
	char name[DNS_NAME_MAX + 2];
	const char *d, *sel;
	size_t i;
	int n;

	if (msg == NULL || msg->eoh_called || msg->state == MS_DONE)
		return (-1);
	msg->eoh_called = 1;
	msg->done_cb = done_cb;
	msg->done_arg = arg;
	if (!msg->eoh_ran)
		header_end(msg);
	for (i = 0; i < msg->nsigs && !msg->failed; i++) {
		s = &msg->sigs[i];
		if (s->pre_error != DKIM_SIGERROR_UNKNOWN ||
		    s->early != DKIMV_NONE)
			continue;
		d = (const char *)dkim_sig_getdomain(s->si);
		sel = (const char *)dkim_sig_getselector(s->si);
		if (d == NULL || sel == NULL)
			continue;
		n = snprintf(name, sizeof(name), "%s._domainkey.%s", sel, d);
		if (n < 0 || (size_t)n >= sizeof(name))
			str_copy(name, "", sizeof(name));	/* invalid */
		s->key = key_for(msg, name);
	}
	if (msg->npending == 0)
		event_active(msg->done_ev, EV_TIMEOUT, 1);
	return (0);
}

int
dkimv_msg_ready(const struct dkimv_msg *msg)
{
	return (msg != NULL && msg->eoh_called && msg->npending == 0);
}

size_t
dkimv_msg_ignored(const struct dkimv_msg *msg)
{
	return (msg != NULL ? msg->nignored : 0);
}

/* keys_cancel - forget outstanding look-ups; done_cb will not run */
static void
keys_cancel(struct dkimv_msg *msg)
{
	struct dkimv_key *k;
	size_t i;

	for (i = 0; i < msg->nkeys; i++) {
		k = &msg->keys[i];
		if (!k->started)
			continue;
		if (msg->lib->src.cancel != NULL)
			msg->lib->src.cancel(msg->lib->src.ctx, k->id);
		k->started = 0;
		k->done = 1;
		k->status = DNS_TEMPFAIL;
		k->verdict = DKIMV_TEMPERROR;
		str_copy(k->why, "key look-up unfinished", sizeof(k->why));
	}
	msg->npending = 0;
	msg->done_fired = 1;
	if (msg->done_ev != NULL)
		event_del(msg->done_ev);
}

/* --- the verdict ------------------------------------------------------- */

/* copy_printable - keep 0x21..0x7e only (tag values may hold folds) */
static void
copy_printable(char *dst, size_t dstlen, const char *src, size_t max)
{
	size_t n = 0;

	for (; *src != '\0' && n + 1 < dstlen && n < max; src++)
		if (*src > 0x20 && *src < 0x7f)
			dst[n++] = *src;
	dst[n] = '\0';
}

static void
set_reason(struct dkimv_result *r, enum dkimv_res res, const char *why)
{
	r->result = res;
	str_copy(r->reason, why, sizeof(r->reason));
}

/* sigerror_reason - our words for a libopendkim signature error */
static const char *
sigerror_reason(int err)
{
	switch (err) {
	case DKIM_SIGERROR_VERSION:	return ("unsupported version (v=)");
	case DKIM_SIGERROR_DOMAIN:	return ("i= not within d=");
	case DKIM_SIGERROR_EXPIRED:	return ("signature expired (x=)");
	case DKIM_SIGERROR_FUTURE:	return ("signature dated in the future");
	case DKIM_SIGERROR_TIMESTAMPS:	return ("x= before t=");
	case DKIM_SIGERROR_INVALID_A:	return ("unsupported algorithm (a=)");
	case DKIM_SIGERROR_INVALID_H:	return ("h= does not cover From");
	case DKIM_SIGERROR_TOOLARGE_L:	return ("l= longer than the body");
	case DKIM_SIGERROR_NOKEY:	return ("no key");
	case DKIM_SIGERROR_KEYREVOKED:	return ("key revoked (empty p=)");
	case DKIM_SIGERROR_DNSSYNTAX:	return ("key record syntax error");
	case DKIM_SIGERROR_KEYDECODE:	return ("key cannot be decoded");
	case DKIM_SIGERROR_KEYTOOSMALL:	return ("key too small");
	case DKIM_SIGERROR_SUBDOMAIN:	return ("i= subdomain not allowed by key (t=s)");
	}
	return (NULL);
}

/* sigerror_class - which verdict a libopendkim signature error means */
static enum dkimv_res
sigerror_class(int err)
{
	switch (err) {
	case DKIM_SIGERROR_BADSIG:
	case DKIM_SIGERROR_SUBDOMAIN:
	case DKIM_SIGERROR_MBSFAILED:
		return (DKIMV_FAIL);
	case DKIM_SIGERROR_KEYFAIL:
		return (DKIMV_TEMPERROR);
	case DKIM_SIGERROR_INVALID_H:	/* RFC 8601's own permerror example */
	case DKIM_SIGERROR_NOKEY:
	case DKIM_SIGERROR_DNSSYNTAX:
	case DKIM_SIGERROR_MULTIREPLY:
	case DKIM_SIGERROR_KEYVERSION:
	case DKIM_SIGERROR_KEYUNKNOWNHASH:
	case DKIM_SIGERROR_KEYHASHMISMATCH:
	case DKIM_SIGERROR_NOTEMAILKEY:
	case DKIM_SIGERROR_KEYTYPEMISSING:
	case DKIM_SIGERROR_KEYTYPEUNKNOWN:
	case DKIM_SIGERROR_KEYREVOKED:
	case DKIM_SIGERROR_KEYDECODE:
	case DKIM_SIGERROR_KEYTOOSMALL:
		return (DKIMV_PERMERROR);
	}
	return (DKIMV_NEUTRAL);	/* the signature field itself */
}

static void
set_sigerror(struct dkimv_result *r, int err)
{
	const char *why = sigerror_reason(err);

	if (why == NULL)
		why = dkim_sig_geterrorstr(err);
	set_reason(r, sigerror_class(err), why != NULL ? why : "error");
}

/* sig_verdict - one signature's result after dkim_eom() */
static void
sig_verdict(struct dkimv_msg *msg, struct dkimv_sig *s,
    struct dkimv_result *r)
{
	DKIM_SIGINFO *si = s->si;
	unsigned int flags = dkim_sig_getflags(si), bits;
	int bh = dkim_sig_getbh(si), err = dkim_sig_geterror(si);
	const char *e;

	copy_printable(r->domain, sizeof(r->domain), sig_tag(si, "d"),
	    SIZE_MAX);
	copy_printable(r->selector, sizeof(r->selector), sig_tag(si, "s"),
	    SIZE_MAX);
	copy_printable(r->b, sizeof(r->b), sig_tag(si, "b"), 8);
	copy_printable(r->algorithm, sizeof(r->algorithm), sig_tag(si, "a"),
	    SIZE_MAX);
	if ((flags & DKIM_SIGFLAG_PROCESSED) &&
	    dkim_sig_getkeysize(si, &bits) == DKIM_STAT_OK)
		r->keybits = bits;
	/* libopendkim records RSA sizes only; an ed25519 key that was
	 * used (the crypto ran: PASSED or BADSIG) is 256 bits */
	if (r->keybits == 0 && strcmp(r->algorithm, "ed25519-sha256") == 0 &&
	    ((flags & DKIM_SIGFLAG_PASSED) || err == DKIM_SIGERROR_BADSIG))
		r->keybits = 256;

	if (msg->failed) {
		set_reason(r, DKIMV_TEMPERROR, msg->failwhy);
		return;
	}
	if (s->early != DKIMV_NONE) {
		set_reason(r, s->early, s->early_why);
		return;
	}
	if (s->pre_error != DKIM_SIGERROR_UNKNOWN) {
		set_sigerror(r, s->pre_error);
		return;
	}
	/* THE pass rule: header signature AND body hash, nothing noted */
	if ((flags & DKIM_SIGFLAG_PASSED) && bh == DKIM_SIGBH_MATCH &&
	    err == DKIM_SIGERROR_OK) {
		r->result = DKIMV_PASS;
		if (flags & DKIM_SIGFLAG_TESTKEY) {
			r->testkey = 1;
			str_copy(r->reason, "testing key (t=y)",
			    sizeof(r->reason));
		}
		return;
	}
	if (s->key == NULL) {
		set_reason(r, DKIMV_TEMPERROR, "key not fetched");
		return;
	}
	if (s->key->verdict != DKIMV_PASS) {
		set_reason(r, s->key->verdict, s->key->why);
		return;
	}
	if (err == DKIM_SIGERROR_BADSIG) {
		set_reason(r, DKIMV_FAIL, bh == DKIM_SIGBH_MISMATCH ?
		    "body hash mismatch" : "signature did not verify");
		return;
	}
	if (err == DKIM_SIGERROR_UNKNOWN || err == DKIM_SIGERROR_OK) {
		/* not processed (a libopendkim resource error) */
		e = dkim_geterror(msg->dkim);
		set_reason(r, DKIMV_TEMPERROR, "verification not completed");
		if (e != NULL && *e != '\0')
			(void)snprintf(r->reason, sizeof(r->reason),
			    "verification not completed: %s", e);
		return;
	}
	set_sigerror(r, err);
}

/* results_one - a single message-level result */
static int
results_one(struct dkimv_msg *msg, enum dkimv_res res, const char *why)
{
	if ((msg->res = calloc(1, sizeof(*msg->res))) == NULL)
		return (-1);
	msg->nres = 1;
	set_reason(&msg->res[0], res, why);
	return (0);
}

/* results_make - fill msg->res once the message is complete */
static int
results_make(struct dkimv_msg *msg)
{
	char why[128];
	const char *e;
	size_t i, j;
	DKIM_STAT st;

	if (msg->overflow)
		return (results_one(msg, msg->nsigfields ? DKIMV_PERMERROR :
		    DKIMV_NONE, msg->nsigfields ? "header block too large" :
		    ""));
	if (msg->failed && msg->nsigs == 0)
		return (results_one(msg, msg->nsigfields ? DKIMV_TEMPERROR :
		    DKIMV_NONE, msg->nsigfields ? msg->failwhy : ""));
	if (!msg->failed && msg->eoh_stat != DKIM_STAT_OK) {
		if (msg->eoh_stat == DKIM_STAT_NOSIG || msg->nsigfed == 0) {
			if (msg->nignored > 0) {
				(void)snprintf(why, sizeof(why), "%zu signature%s"
				    " over the limits ignored", msg->nignored,
				    msg->nignored > 1 ? "s" : "");
				return (results_one(msg, DKIMV_NONE, why));
			}
			return (results_one(msg, DKIMV_NONE, ""));
		}
		e = dkim_geterror(msg->dkim);
		(void)snprintf(why, sizeof(why), "%s%s%s",
		    dkim_getresultstr(msg->eoh_stat),
		    e != NULL && *e != '\0' ? ": " : "", e != NULL ? e : "");
		return (results_one(msg, msg->eoh_stat == DKIM_STAT_NORESOURCE ||
		    msg->eoh_stat == DKIM_STAT_INTERNAL ? DKIMV_TEMPERROR :
		    DKIMV_PERMERROR, why));
	}
	/* RFC 6376 3.4.3/3.4.4: a body without a final CRLF gets one
	 * (libopendkim refuses to close it otherwise); SMTP bodies always
	 * have it, files and cut-off tests may not */
	if (!msg->failed && msg->body_any &&
	    memcmp(msg->body_tail, "\r\n", 2) != 0 &&
	    (st = dkim_body(msg->dkim, (u_char *)"\r\n", 2)) != DKIM_STAT_OK)
		msg_fail(msg, "dkim_body", st);
	if (!msg->failed)
		(void)dkim_eom(msg->dkim, NULL);	/* verdicts per sig */
	if ((msg->res = calloc(msg->nsigs, sizeof(*msg->res))) == NULL)
		return (-1);
	msg->nres = msg->nsigs;
	for (i = 0; i < msg->nsigs; i++)
		sig_verdict(msg, &msg->sigs[i], &msg->res[i]);
	/* a repeated RFC 5322 singleton field: nothing passes */
	for (i = 0; i < NSINGLETONS && msg->nsingle[i] < 2; i++)
		continue;
	if (i < NSINGLETONS) {
		(void)snprintf(why, sizeof(why), "2 %s fields (RFC 5322 3.6 "
		    "allows one)", singletons[i]);
		for (j = 0; j < msg->nres; j++)
			set_reason(&msg->res[j], DKIMV_FAIL, why);
	}
	return (0);
}

/* dkimv_msg_eom - stop waiting for keys, run dkim_eom(), classify */
int
dkimv_msg_eom(struct dkimv_msg *msg, const struct dkimv_result **results_r,
    size_t *n_r)
{
	static const struct dkimv_result oom = {
		.result = DKIMV_TEMPERROR, .reason = "out of memory"
	};

	if (msg == NULL)
		return (-1);
	if (msg->state != MS_DONE) {
		if (!msg->eoh_ran)
			header_end(msg);
		msg->eoh_called = 1;
		keys_cancel(msg);
		msg->state = MS_DONE;
		if (results_make(msg) == -1) {
			free(msg->res);
			msg->res = NULL;
			msg->nres = 0;
		}
	}
	if (msg->res == NULL) {
		*results_r = &oom;
		*n_r = 1;
		return (0);
	}
	*results_r = msg->res;
	*n_r = msg->nres;
	return (0);
}

/* dkimv_msg_free - cancel look-ups first: their argument points here */
void
dkimv_msg_free(struct dkimv_msg **msgp)
{
	struct dkimv_msg *msg;
	size_t i;

	if (msgp == NULL || (msg = *msgp) == NULL)
		return;
	*msgp = NULL;
	if (msg->keys != NULL)
		keys_cancel(msg);
	if (msg->done_ev != NULL)
		event_free(msg->done_ev);
	if (msg->dkim != NULL)
		(void)dkim_free(msg->dkim);
	for (i = 0; i < msg->nkeys; i++)
		free(msg->keys[i].record);
	free(msg->keys);
	free(msg->sigs);
	free(msg->res);
	free(msg->field);
	free(msg->id);
	free(msg);
}
