/*
 * fuzz_smtp_parse.c - a fuzz target for relay/smtp_parse.c, the first
 * code every client byte meets.
 *
 * The input runs through the command parser line by line (LF-separated,
 * a CR before the LF dropped, as smtp_server.c splits them) and through
 * the DATA machine twice: all at once and byte by byte.  It abort()s
 * when an invariant breaks:
 *   - an accepted command's address or argument is longer than its
 *     buffer's limit (SMTP_PATH_MAX, SMTP_CMDLINE_MAX);
 *   - an accepted MAIL or RCPT path fails smtp_mailbox_valid() (unless
 *     it is <> or <postmaster>);
 *   - the DATA machine consumes more than its input, writes more than it
 *     consumed, or writes more than one byte for one input byte;
 *   - chunking changes anything: bytes consumed, bytes written, the
 *     bytes themselves, done, error or the counted size.
 */

#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"
#include "fuzz.h"

/* fuzz_smtp_parse - see fuzz.h */
int
fuzz_smtp_parse(const uint8_t *data, size_t size)
{
	struct smtp_cmd cmd;
	struct smtp_data a, b;
	unsigned char *outa, *outb;
	size_t i, start, na = 0, nb = 0, ca, cb = 0, o;

	for (start = i = 0; i <= size; i++) {
		if (i == size || data[i] == '\n') {
			size_t l = i - start;

			if (l > 0 && data[start + l - 1] == '\r')
				l--;
			if (smtp_cmd_parse((const char *)data + start, l,
			    &cmd) == NULL) {
				if (strlen(cmd.addr) > SMTP_PATH_MAX - 2 ||
				    strlen(cmd.arg) >= SMTP_CMDLINE_MAX)
					abort();
				if ((cmd.verb == SMTP_CMD_MAIL ||
				    cmd.verb == SMTP_CMD_RCPT) &&
				    cmd.addr[0] != '\0' && !cmd.postmaster &&
				    smtp_mailbox_valid(cmd.addr,
				    strlen(cmd.addr), 1, NULL) != 0)
					abort();
			}
			start = i + 1;
		}
	}

	outa = malloc(size + 1);
	outb = malloc(size + 1);
	if (outa == NULL || outb == NULL) {
		free(outa);
		free(outb);
		return (0);
	}
	smtp_data_init(&a, size / 2 + 1, 64);
	smtp_data_init(&b, size / 2 + 1, 64);
	ca = smtp_data_feed(&a, data, size, outa, &na);
	if (ca > size || na > ca)
		abort();
	for (i = 0; i < size && !b.done && b.error != SMTP_DATA_BARE_NL; i++) {
		cb += smtp_data_feed(&b, data + i, 1, outb + nb, &o);
		if (o > 1)
			abort();
		nb += o;
	}
	if (ca != cb || na != nb || a.done != b.done || a.error != b.error ||
	    a.size != b.size || memcmp(outa, outb, na) != 0 ||
	    (a.done && a.error == SMTP_DATA_OK && a.size != na))
		abort();
	free(outa);
	free(outb);
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return (fuzz_smtp_parse(data, size));
}
