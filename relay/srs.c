/*
 * srs.c - Sender Rewriting Scheme, SRS0 form (see srs.h for the format).
 *
 * Written from the scheme's description (Shevek's "Sender Rewriting
 * Scheme" paper, libsrs2's documented address layout): SRS0=hash=tt=
 * domain=local@srs_domain, with our own choices for the hash (HMAC-SHA256
 * through OpenSSL, 40 bits in base32) and for case handling.
 *
 * SECURITY: srs_reverse() reads addresses from the network (RCPT TO of
 * bounces) and decides whether the relay forwards a bounce to the
 * decoded address: a forged SRS address would make us a relay for
 * bounces.  The HMAC covers day stamp, domain and local part; the
 * comparison is constant-time (CRYPTO_memcmp); every field is bounds-
 * checked and nothing is written past outlen.  The secret is kept in
 * memory we wipe on free (OPENSSL_cleanse) and never logged.
 *
 * Ownership and threading: see srs.h.
 */

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "relay.h"
#include "smtp_parse.h"
#include "srs.h"
#include "util.h"

#define SRS_DAY		86400
#define SRS_STAMP_MOD	1024	/* two base32 characters */

struct srs {
	unsigned char	*secret;
	size_t		 secret_len;
	char		 domain[256];
	int		 max_age;
};

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* b32_value - the 5-bit value of a base32 character, either case; -1 */
static int
b32_value(unsigned char c)
{
	if (c >= 'a' && c <= 'z')
		return (c - 'a');
	if (c >= 'A' && c <= 'Z')
		return (c - 'A');
	if (c >= '2' && c <= '7')
		return (c - '2' + 26);
	return (-1);
}

const char *
srs_strerror(int status)
{
	switch (status) {
	case SRS_OK:		return ("ok");
	case SRS_UNCHANGED:	return ("not rewritten");
	case SRS_ENOTSRS:	return ("not an SRS address");
	case SRS_EBADHASH:	return ("bad SRS hash");
	case SRS_EEXPIRED:	return ("SRS address expired");
	case SRS_EMALFORMED:	return ("malformed SRS address");
	case SRS_ETOOSMALL:	return ("buffer too small");
	case SRS_EINVAL:	return ("invalid argument");
	case SRS_ETOOLONG:	return ("sender too long for SRS (local part "
				    "over 64 or path over 256 octets)");
	}
	return ("unknown SRS status");
}

struct srs *
srs_new(const char *secret, const char *domain, char *err, size_t errlen)
{
	struct srs *srs;
	size_t len;

	if (secret == NULL || (len = strlen(secret)) < SRS_SECRET_MIN) {
		errbuf_set(err, errlen, "the SRS secret must be at least %d "
		    "bytes", SRS_SECRET_MIN);
		return (NULL);
	}
	if (domain == NULL || domain[0] == '\0' ||
	    strlen(domain) >= sizeof(srs->domain) ||
	    strpbrk(domain, "@= \t\r\n\"") != NULL) {
		errbuf_set(err, errlen, "invalid SRS domain");
		return (NULL);
	}
	if ((srs = calloc(1, sizeof(*srs))) == NULL ||
	    (srs->secret = malloc(len)) == NULL) {
		free(srs);
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	memcpy(srs->secret, secret, len);
	srs->secret_len = len;
	str_copy(srs->domain, domain, sizeof(srs->domain));
	srs->max_age = SRS_MAX_AGE_DEFAULT;
	return (srs);
}

void
srs_free(struct srs **srsp)
{
	struct srs *srs;

	if (srsp == NULL || (srs = *srsp) == NULL)
		return;
	*srsp = NULL;
	OPENSSL_cleanse(srs->secret, srs->secret_len);
	free(srs->secret);
	free(srs);
}

int
srs_set_max_age(struct srs *srs, int days)
{
	/* below the 1024-day wrap of the stamp, with room for the skew */
	if (srs == NULL || days < 1 || days > 1000)
		return (-1);
	srs->max_age = days;
	return (0);
}

/* day_stamp - days since the epoch modulo 1024 */
static unsigned
day_stamp(time_t now)
{
	long long day = (long long)now / SRS_DAY;

	if (day < 0)
		day = 0;
	return ((unsigned)(day % SRS_STAMP_MOD));
}

/* lower_into - ASCII lower-case copy of s[0..len) at *p, advancing it */
static void
lower_into(unsigned char **p, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		*(*p)++ = (unsigned char)tolower((unsigned char)s[i]);
}

/*
 * srs_hash - the SRS_HASH_LEN base32 characters (upper case, NUL-
 * terminated) for the day stamp tt (2 characters), domain and local.
 * Case-insensitive in every input.  -1 only if OpenSSL fails.
 */
static int
srs_hash(const struct srs *srs, const char *tt, const char *domain,
    size_t dlen, const char *local, size_t llen, char out[SRS_HASH_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE], *buf, *p;
	unsigned int mdlen = 0;
	uint64_t bits = 0;
	int i;

	if ((buf = malloc(2 + 1 + dlen + 1 + llen)) == NULL)
		return (-1);
	p = buf;
	lower_into(&p, tt, 2);
	*p++ = '\0';
	lower_into(&p, domain, dlen);
	*p++ = '\0';
	lower_into(&p, local, llen);
	if (HMAC(EVP_sha256(), srs->secret, (int)srs->secret_len, buf,
	    (size_t)(p - buf), md, &mdlen) == NULL || mdlen < 5) {
		free(buf);
		return (-1);
	}
	free(buf);
	/* 40 bits = the first 5 bytes = 8 base32 characters */
	for (i = 0; i < 5; i++)
		bits = bits << 8 | md[i];
	for (i = 0; i < SRS_HASH_LEN; i++)
		out[i] = b32[(bits >> (35 - 5 * i)) & 31];
	out[SRS_HASH_LEN] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
	return (0);
}

/* is_atext - RFC 5321 atext (and '.') or a UTF-8 byte (SMTPUTF8) */
static int
is_atext(unsigned char c)
{
	return (isalnum(c) || c >= 0x80 ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL));
}

/* is_plain_domain - letters, digits, '-', '_', '.' or UTF-8 bytes */
static int
is_plain_domain(const char *d, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];

		if (!isalnum(c) && c < 0x80 && c != '-' && c != '_' &&
		    c != '.')
			return (0);
	}
	return (len > 0 && d[0] != '.');
}

static int
copy_out(char *out, size_t outlen, const char *s)
{
	if (strlen(s) >= outlen) {
		out[0] = '\0';
		return (SRS_ETOOSMALL);
	}
	memcpy(out, s, strlen(s) + 1);
	return (SRS_OK);
}

int
srs_forward(const struct srs *srs, const char *sender, time_t now, char *out,
    size_t outlen)
{
	const char *at, *domain;
	char tt[3], hash[SRS_HASH_LEN + 1];
	size_t llen, dlen, i;
	unsigned stamp;
	int n;

	if (out == NULL || outlen == 0)
		return (SRS_EINVAL);
	out[0] = '\0';
	if (srs == NULL || sender == NULL || strlen(sender) > SRS_ADDR_MAX)
		return (SRS_EINVAL);
	at = strrchr(sender, '@');
	if (at == NULL || at == sender || at[1] == '\0')
		goto unchanged;		/* <>, no domain, no local part */
	domain = at + 1;
	llen = (size_t)(at - sender);
	dlen = strlen(domain);
	if (strcasecmp(domain, srs->domain) == 0)
		goto unchanged;		/* ours already (also our SRS0) */
	if (!is_plain_domain(domain, dlen))
		goto unchanged;		/* address literal, odd bytes */
	for (i = 0; i < llen; i++)
		if (!is_atext((unsigned char)sender[i]))
			goto unchanged;	/* quoted local part */

	/* "SRS0=" hash "=" tt "=" domain "=" local, then "@" srs_domain:
	 * within RFC 5321's 64-octet local part and 254-octet mailbox
	 * (256 with <>), or the bounce could not come back (see srs.h) */
	if (5 + SRS_HASH_LEN + 1 + 2 + 1 + dlen + 1 + llen > SMTP_LOCAL_MAX ||
	    5 + SRS_HASH_LEN + 1 + 2 + 1 + dlen + 1 + llen + 1 +
	    strlen(srs->domain) > SMTP_PATH_MAX - 2)
		return (SRS_ETOOLONG);

	stamp = day_stamp(now);
	tt[0] = b32[stamp >> 5];
	tt[1] = b32[stamp & 31];
	tt[2] = '\0';
	if (srs_hash(srs, tt, domain, dlen, sender, llen, hash) == -1)
		return (SRS_EINVAL);
	n = snprintf(out, outlen, "SRS0=%s=%s=%s=%.*s@%s", hash, tt, domain,
	    (int)llen, sender, srs->domain);
	if (n < 0 || (size_t)n >= outlen) {
		out[0] = '\0';
		return (SRS_ETOOSMALL);
	}
	/* The local part was checked as atext only; a Dot-string also
	 * forbids "..", and a trailing "." now sits inside our local part.
	 * Such a sender never passed our MAIL parser; if one comes from
	 * elsewhere, send it as is rather than make what we cannot take
	 * back. */
	if (smtp_mailbox_valid(out, (size_t)n, 1, NULL) != 0)
		goto unchanged;
	return (SRS_OK);
unchanged:
	return (copy_out(out, outlen, sender) == SRS_OK ? SRS_UNCHANGED :
	    SRS_ETOOSMALL);
}

/* The fields of an SRS0 address: pointers into it, with lengths. */
struct srs_fields {
	const char	*hash, *tt, *domain, *local;
	size_t		 hlen, dlen, llen;
};

/*
 * srs_parse - split our SRS0 address addr into its fields; returns
 * SRS_OK, SRS_ENOTSRS or SRS_EMALFORMED.
 */
static int
srs_parse(const struct srs *srs, const char *addr, struct srs_fields *f)
{
	const char *at, *p, *e;

	at = strrchr(addr, '@');
	if (at == NULL || strcasecmp(at + 1, srs->domain) != 0)
		return (SRS_ENOTSRS);
	if (strncasecmp(addr, "SRS0=", 5) != 0)
		return (SRS_ENOTSRS);	/* incl. SRS1, which we never make */
	p = addr + 5;
	/* hash */
	if ((e = memchr(p, '=', (size_t)(at - p))) == NULL || e == p)
		return (SRS_EMALFORMED);
	f->hash = p;
	f->hlen = (size_t)(e - p);
	p = e + 1;
	/* day stamp: exactly two base32 characters */
	if (at - p < 3 || p[2] != '=' || b32_value((unsigned char)p[0]) < 0 ||
	    b32_value((unsigned char)p[1]) < 0)
		return (SRS_EMALFORMED);
	f->tt = p;
	p += 3;
	/* domain: up to the next '=' (a domain has none) */
	if ((e = memchr(p, '=', (size_t)(at - p))) == NULL || e == p)
		return (SRS_EMALFORMED);
	f->domain = p;
	f->dlen = (size_t)(e - p);
	p = e + 1;
	/* local part: the rest, '=' and all */
	if (p >= at)
		return (SRS_EMALFORMED);
	f->local = p;
	f->llen = (size_t)(at - p);
	if (!is_plain_domain(f->domain, f->dlen))
		return (SRS_EMALFORMED);
	return (SRS_OK);
}

int
srs_is_srs(const struct srs *srs, const char *addr)
{
	struct srs_fields f;

	return (srs != NULL && addr != NULL &&
	    srs_parse(srs, addr, &f) != SRS_ENOTSRS);
}

int
srs_reverse(const struct srs *srs, const char *addr, time_t now, char *out,
    size_t outlen)
{
	struct srs_fields f;
	char want[SRS_HASH_LEN + 1], got[SRS_HASH_LEN + 1];
	unsigned stamp, today, age;
	size_t i;
	int rc;

	if (out == NULL || outlen == 0)
		return (SRS_EINVAL);
	out[0] = '\0';
	if (srs == NULL || addr == NULL || strlen(addr) > SRS_ADDR_MAX)
		return (SRS_EINVAL);
	if ((rc = srs_parse(srs, addr, &f)) != SRS_OK)
		return (rc);
	if (srs_hash(srs, f.tt, f.domain, f.dlen, f.local, f.llen, want) == -1)
		return (SRS_EINVAL);
	/* The hash's length and alphabet are public; its value is not:
	 * compare the normalised characters in constant time. */
	if (f.hlen != SRS_HASH_LEN)
		return (SRS_EBADHASH);
	for (i = 0; i < SRS_HASH_LEN; i++)
		got[i] = (char)toupper((unsigned char)f.hash[i]);
	got[SRS_HASH_LEN] = '\0';
	if (CRYPTO_memcmp(got, want, SRS_HASH_LEN) != 0)
		return (SRS_EBADHASH);
	stamp = (unsigned)(b32_value((unsigned char)f.tt[0]) << 5 |
	    b32_value((unsigned char)f.tt[1]));
	today = day_stamp(now);
	age = (today + SRS_STAMP_MOD - stamp) % SRS_STAMP_MOD;
	/* up to max_age days old, or one day ahead (another relay's clock) */
	if (age > (unsigned)srs->max_age && age != SRS_STAMP_MOD - 1)
		return (SRS_EEXPIRED);
	if (f.llen + 1 + f.dlen + 1 > outlen)
		return (SRS_ETOOSMALL);
	memcpy(out, f.local, f.llen);
	out[f.llen] = '@';
	memcpy(out + f.llen + 1, f.domain, f.dlen);
	out[f.llen + 1 + f.dlen] = '\0';
	return (SRS_OK);
}

/*
 * srs_rcpt_check - for smtp_server at RCPT time (see srs.h).  The same
 * test as the queue's routing (dest_slot()), so what the server accepts
 * as an SRS recipient is what the queue routes back to the original
 * sender.
 */
int
srs_rcpt_check(const struct relay *relay, const char *rcpt, char *orig,
    size_t origlen)
{
	char buf[SRS_ADDR_MAX + 1];

	if (orig != NULL && origlen > 0)
		orig[0] = '\0';
	if (relay == NULL || relay->srs == NULL || rcpt == NULL ||
	    !srs_is_srs(relay->srs, rcpt))
		return (0);
	if (srs_reverse(relay->srs, rcpt, time(NULL), buf, sizeof(buf)) !=
	    SRS_OK)
		return (-1);
	if (orig != NULL && origlen > 0)
		snprintf(orig, origlen, "%s", buf);
	return (1);
}
