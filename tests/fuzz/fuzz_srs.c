/*
 * fuzz_srs.c - a fuzz target for relay/srs.c: the sender rewriting that
 * bounces must be able to come back through.
 *
 * The input is an envelope sender as a client sends it: the bytes up to
 * the first NUL or line end go into "MAIL FROM:<...>" and through
 * relay/smtp_parse.c; only a sender the relay would accept is rewritten
 * (what the parser refuses never reaches srs_forward()).  The raw input
 * is also given to srs_reverse() as a bounce recipient.  It abort()s when
 * an invariant breaks:
 *   - srs_forward() answers SRS_OK with an address that
 *       * is not one of ours (srs_is_srs()),
 *       * the relay's own parser refuses in "MAIL FROM:<...>" or
 *         "RCPT TO:<...>" (a bounce to it could not come back), or
 *         parses to another address,
 *       * srs_reverse() does not turn back into the sender, now, at
 *         max_age days later, and lower-cased (to the lower-cased
 *         sender: some MTAs lower-case a bounce address);
 *   - srs_forward() answers SRS_UNCHANGED with anything but the sender;
 *   - any answer outside enum srs_status, or an out not "" on failure;
 *   - srs_reverse() of the raw input answers SRS_OK with an address the
 *     parser refuses in MAIL FROM (the queue would send to it).
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"
#include "srs.h"
#include "fuzz.h"

#define FUZZ_SECRET	"fuzz-secret-0123456789abcdef"
#define FUZZ_DOMAIN	"srs.example.net"
#define FUZZ_NOW	((time_t)1796000000)	/* 2026-11 */
#define DAY		86400

static struct srs *srs;

/* parses - verb_line "MAIL FROM:<addr>" or "RCPT TO:<addr>" is accepted
 * and gives addr back */
static int
parses(const char *verb, const char *addr, int utf8)
{
	struct smtp_cmd cmd;
	char line[SMTP_CMDLINE_MAX * 2];
	int n;

	n = snprintf(line, sizeof(line), "%s<%s>%s", verb, addr,
	    utf8 && verb[0] == 'M' ? " SMTPUTF8" : "");
	if (n < 0 || (size_t)n >= sizeof(line))
		return (0);
	if (smtp_cmd_parse(line, (size_t)n, &cmd) != NULL)
		return (0);
	return (strcmp(cmd.addr, addr) == 0);
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x80)
			*s = (char)tolower((unsigned char)*s);
}

static int
status_ok(int st)
{
	return (st >= SRS_ETOOLONG && st <= SRS_UNCHANGED);
}

/* fuzz_srs - see fuzz.h */
int
fuzz_srs(const uint8_t *data, size_t size)
{
	struct smtp_cmd cmd;
	char *raw, line[SMTP_CMDLINE_MAX * 2], out[SRS_ADDR_MAX + 1];
	char back[SRS_ADDR_MAX + 1], low[SRS_ADDR_MAX + 1];
	char want[SMTP_PATH_MAX + 1], err[256];
	size_t n;
	int st, len;

	if (srs == NULL &&
	    (srs = srs_new(FUZZ_SECRET, FUZZ_DOMAIN, err, sizeof(err))) == NULL)
		abort();

	if ((raw = malloc(size + 1)) == NULL)
		return (0);
	memcpy(raw, data, size);
	raw[size] = '\0';

	/* the raw input as the recipient of a bounce */
	st = srs_reverse(srs, raw, FUZZ_NOW, back, sizeof(back));
	if (!status_ok(st) || st == SRS_UNCHANGED ||
	    (st < 0 && back[0] != '\0'))
		abort();
	if (st == SRS_OK && !parses("MAIL FROM:", back, 1))
		abort();

	/* the sender, as far as a line goes */
	n = strcspn(raw, "\r\n");
	len = snprintf(line, sizeof(line), "MAIL FROM:<%.*s>", (int)n, raw);
	free(raw);
	if (len < 0 || (size_t)len >= sizeof(line) ||
	    smtp_cmd_parse(line, (size_t)len, &cmd) != NULL ||
	    cmd.verb != SMTP_CMD_MAIL)
		return (0);

	st = srs_forward(srs, cmd.addr, FUZZ_NOW, out, sizeof(out));
	if (!status_ok(st) || (st < 0 && out[0] != '\0'))
		abort();
	if (st == SRS_UNCHANGED && strcmp(out, cmd.addr) != 0)
		abort();
	if (st != SRS_OK)
		return (0);
	if (!srs_is_srs(srs, out)) {
		fprintf(stderr, "srs_forward(%s) = %s: not ours\n", cmd.addr,
		    out);
		abort();
	}
	if (!parses("MAIL FROM:", out, cmd.addr_8bit) ||
	    !parses("RCPT TO:", out, cmd.addr_8bit)) {
		fprintf(stderr, "srs_forward(%s) = %s (%zu bytes): our own "
		    "parser refuses it\n", cmd.addr, out, strlen(out));
		abort();
	}
	st = srs_reverse(srs, out, FUZZ_NOW, back, sizeof(back));
	if (st != SRS_OK || strcmp(back, cmd.addr) != 0) {
		fprintf(stderr, "srs_reverse(%s) = %d %s, not %s\n", out, st,
		    back, cmd.addr);
		abort();
	}
	if (srs_reverse(srs, out, FUZZ_NOW + SRS_MAX_AGE_DEFAULT * DAY, back,
	    sizeof(back)) != SRS_OK || strcmp(back, cmd.addr) != 0)
		abort();
	snprintf(low, sizeof(low), "%s", out);
	lower(low);
	snprintf(want, sizeof(want), "%s", cmd.addr);
	lower(want);
	if (srs_reverse(srs, low, FUZZ_NOW, back, sizeof(back)) != SRS_OK ||
	    strcmp(back, want) != 0) {
		fprintf(stderr, "srs_reverse(%s) = %s, not %s\n", low, back,
		    want);
		abort();
	}
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return (fuzz_srs(data, size));
}
