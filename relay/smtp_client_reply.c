/*
 * smtp_client_reply.c - reading the server's replies in the relay's
 * outbound SMTP client (RFC 5321 §4.2, DESIGN.md §5): cutting the input
 * into lines, checking each ("ddd text", "ddd-text", "ddd"), putting the
 * lines of a multi-line reply together, noting the EHLO keywords, and
 * making the struct smtp_reply that callers, logs and DSNs see (the
 * enhanced status code found or defaulted, the text kept printable).
 * Each complete reply goes to client_got_reply() (smtp_client.c).
 *
 * SECURITY: every byte here comes from the server.  A line longer than
 * SMTP_LINE_MAX, a reply of more than SMTP_REPLY_LINES_MAX lines, a code
 * outside 2xx..5xx or a continuation whose code changes ends the
 * session; what is kept of the text is bounded and escaped
 * (str_printable).  Loop thread only.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "smtp_client_p.h"

/*
 * smtp_reply_line - check one reply line: "ddd text", "ddd-text" or
 * "ddd".  The code must be 2xx..5xx with a second digit 0..5 (RFC 5321
 * §4.2).  Returns 1 for a last line, 0 for a continuation, -1 if bad.
 */
int
smtp_reply_line(const char *line, size_t len, int *code_r, const char **text_r)
{
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '5' || line[2] < '0' || line[2] > '9')
		return (-1);
	*code_r = (line[0] - '0') * 100 + (line[1] - '0') * 10 + line[2] - '0';
	if (len == 3) {
		*text_r = line + 3;
		return (1);
	}
	*text_r = line + 4;
	if (line[3] == ' ')
		return (1);
	if (line[3] == '-')
		return (0);
	return (-1);
}

/*
 * reply_status - the enhanced status code at the start of text when it
 * is well formed and of the reply's class ("5.1.1" for a 550), else the
 * class default "5.0.0".
 */
static void
reply_status(int code, const char *text, char *status, size_t len)
{
	const char *p = text;
	size_t n;
	int i;

	if (p[0] == (char)('0' + code / 100) && p[1] == '.') {
		p += 2;
		for (i = 0; i < 2; i++) {
			n = 0;
			while (p[n] >= '0' && p[n] <= '9' && n < 3)
				n++;
			if (n == 0 || (p[n] != '.' && i == 0))
				goto dflt;
			p += n;
			if (i == 0)
				p++;
		}
		if (*p == '\0' || *p == ' ') {
			n = (size_t)(p - text);
			if (n < len) {
				memcpy(status, text, n);
				status[n] = '\0';
				return;
			}
		}
	}
dflt:
	snprintf(status, len, "%d.0.0", code / 100);
}

/* client_reply_make - a struct smtp_reply from the reply just read */
void
client_reply_make(const struct smtp_client *c, struct smtp_reply *r)
{
	const char *text;

	memset(r, 0, sizeof(*r));
	r->code = c->rcode;
	snprintf(r->text, sizeof(r->text), "%d%s%s", c->rcode,
	    c->rlen ? " " : "", c->rtext);
	text = c->rtext;
	reply_status(r->code, text, r->status, sizeof(r->status));
}

/* client_reply_synth - a reply of our own making */
void
client_reply_synth(struct smtp_reply *r, int code, const char *status,
    const char *text)
{
	memset(r, 0, sizeof(*r));
	r->code = code;
	r->synthetic = 1;
	snprintf(r->status, sizeof(r->status), "%s", status);
	snprintf(r->text, sizeof(r->text), "%d %.15s %.480s", code, status,
	    text);
}

/* ehlo_line - note one extension keyword of the EHLO reply */
static void
ehlo_line(struct smtp_client *c, const char *text)
{
	static const struct {
		const char *kw;
		unsigned flag;
	} kws[] = {
		{ "STARTTLS", SMTP_EXT_STARTTLS },
		{ "PIPELINING", SMTP_EXT_PIPELINING },
		{ "SIZE", SMTP_EXT_SIZE },
		{ "8BITMIME", SMTP_EXT_8BITMIME },
		{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
		{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCED },
	};
	size_t i, n = strcspn(text, " ");

	for (i = 0; i < sizeof(kws) / sizeof(kws[0]); i++) {
		if (strlen(kws[i].kw) != n ||
		    strncasecmp(text, kws[i].kw, n) != 0)
			continue;
		c->ext |= kws[i].flag;
		if (kws[i].flag == SMTP_EXT_SIZE && text[n] == ' ') {
			char *end;
			unsigned long long v;

			errno = 0;
			v = strtoull(text + n + 1, &end, 10);
			if (errno == 0 && end != text + n + 1 &&
			    (*end == '\0' || *end == ' '))
				c->size_max = v;
		}
	}
}

/* client_readcb - every complete reply in the input, in order */
void
client_readcb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	const char *text;
	size_t len, n;
	int code, last;

	client_ref(c);
	while (!c->dead && c->bev == bev) {
		struct evbuffer_ptr eol;

		eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF);
		if (eol.pos == -1) {
			if (evbuffer_get_length(in) > SMTP_LINE_MAX)
				client_protocol_error(c, "reply line too long");
			break;
		}
		if ((size_t)eol.pos > SMTP_LINE_MAX) {
			client_protocol_error(c, "reply line too long");
			break;
		}
		if ((line = evbuffer_readln(in, &len,
		    EVBUFFER_EOL_CRLF)) == NULL)
			break;
		last = smtp_reply_line(line, len, &code, &text);
		if (last == -1 || (c->rlines > 0 && code != c->rcode) ||
		    ++c->rlines > SMTP_REPLY_LINES_MAX) {
			free(line);
			client_protocol_error(c, "malformed reply");
			break;
		}
		c->rcode = code;
		if (c->state == CS_EHLO || c->state == CS_EHLO_TLS) {
			if (c->rlines > 1 && memchr(text, '\0',
			    len - (size_t)(text - line)) == NULL)
				ehlo_line(c, text);
		}
		/* Keep the text of every line, joined by blanks. */
		if (c->rlen + 2 < sizeof(c->rtext)) {
			if (c->rlen > 0)
				c->rtext[c->rlen++] = ' ';
			n = str_printable(c->rtext + c->rlen,
			    sizeof(c->rtext) - c->rlen, text,
			    len - (size_t)(text - line));
			c->rlen += n;
			c->rtext[c->rlen] = '\0';
		}
		free(line);
		if (!last)
			continue;
		/* An EHLO reply's first line is the server's name: keep
		 * only that in the text we show. */
		c->rlines = 0;
		client_got_reply(c);
		if (!c->dead)
			c->rlen = 0, c->rtext[0] = '\0';
	}
	client_unref(c);
}
