/*
 * tls_probe - drive common/tls through libevent's bufferevent_openssl
 * against a real server, for tests/integration/test_tls.sh.
 *
 *   tls_probe [-s imap] [-C cafile] [-n hostname] [-k] [-g] [-t secs] PORT
 *
 * Connects to 127.0.0.1:PORT.  Without -s the connection starts with the
 * TLS handshake (implicit TLS, e.g. IMAPS); "-s imap" first reads the
 * IMAP greeting, sends "a STARTTLS", waits for "a OK" and only then
 * starts TLS on the same socket; bytes received after that reply and
 * before the handshake are a protocol error (CVE-2011-0411 class), and
 * after the handshake it proves the channel with "b LOGOUT".
 * -C: trust this CA file (default: the system store).  -n: the name the
 * certificate must carry (default localhost; an IP literal checks an IP
 * SAN).  -k: opportunistic, complete the handshake even when
 * verification fails.  -g: after the handshake, read and print one line
 * (the IMAPS greeting).  -t: give up after secs (default 10).
 *
 * Prints "tls: <tls_describe line>" and "verify: <tls_verify_error>",
 * or "handshake failed: ..." .  Exit 0 only when the handshake completed
 * and, unless -k, the certificate verified for the name; 1 otherwise;
 * 2 on usage errors.
 *
 * Test code: trusts its arguments; bounds what it reads from the server.
 */

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"

enum probe_state {
	ST_GREETING,		/* -s imap: waiting for "* OK" */
	ST_STARTTLS,		/* -s imap: waiting for "a OK" */
	ST_HANDSHAKE,
	ST_FIRST_LINE,		/* -g */
	ST_LOGOUT		/* -s imap after TLS */
};

static struct event_base	*base;
static struct bufferevent	*bev;
static SSL_CTX			*ctx;
static enum probe_state		 state;
static const char		*hostname = "localhost";
static int			 starttls, insecure, read_first;
static int			 result = 1;

static void	tls_start(evutil_socket_t fd);

static void
usage(void)
{
	fprintf(stderr, "usage: tls_probe [-s imap] [-C cafile] "
	    "[-n hostname] [-k] [-g] [-t secs] PORT\n");
	exit(2);
}

static void
finish(int rc)
{
	result = rc;
	event_base_loopbreak(base);
}

/* read_line - one CRLF line (without it) or NULL when incomplete */
static char *
read_line(struct bufferevent *b)
{
	struct evbuffer *in = bufferevent_get_input(b);
	char *line;

	line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
	if (line == NULL && evbuffer_get_length(in) > 8192) {
		printf("line too long from server\n");
		finish(1);
	}
	return (line);
}

static void
plain_read(struct bufferevent *b, void *arg)
{
	evutil_socket_t fd;
	char *line;

	(void)arg;
	while ((line = read_line(b)) != NULL) {
		if (state == ST_GREETING) {
			if (strncmp(line, "* OK", 4) != 0) {
				printf("bad greeting: %.200s\n", line);
				free(line);
				finish(1);
				return;
			}
			state = ST_STARTTLS;
			bufferevent_write(b, "a STARTTLS\r\n", 12);
		} else if (state == ST_STARTTLS) {
			if (strncmp(line, "a ", 2) != 0) {
				free(line);	/* untagged: skip */
				continue;
			}
			if (strncmp(line, "a OK", 4) != 0) {
				printf("STARTTLS refused: %.200s\n", line);
				free(line);
				finish(1);
				return;
			}
			free(line);
			if (evbuffer_get_length(bufferevent_get_input(b)) > 0) {
				printf("data after the STARTTLS reply\n");
				finish(1);
				return;
			}
			/* hand the socket over to TLS */
			fd = bufferevent_getfd(b);
			bufferevent_free(b);	/* no CLOSE_ON_FREE */
			bev = NULL;
			tls_start(fd);
			return;
		}
		free(line);
	}
}

static void
plain_event(struct bufferevent *b, short what, void *arg)
{
	(void)b;
	(void)arg;
	if (what & BEV_EVENT_CONNECTED)
		return;
	printf("connection failed before TLS (%s)\n",
	    what & BEV_EVENT_EOF ? "closed" : "error");
	finish(1);
}

static void
tls_read(struct bufferevent *b, void *arg)
{
	char *line;

	(void)arg;
	while ((line = read_line(b)) != NULL) {
		if (state == ST_FIRST_LINE) {
			printf("line: %.200s\n", line);
			free(line);
			if (starttls) {
				state = ST_LOGOUT;
				bufferevent_write(b, "b LOGOUT\r\n", 10);
				continue;
			}
			finish(result);
			return;
		}
		if (state == ST_LOGOUT && strncmp(line, "b ", 2) == 0) {
			printf("imap: %.200s\n", line);
			if (strncmp(line, "b OK", 4) != 0)
				result = 1;
			free(line);
			finish(result);
			return;
		}
		free(line);
	}
}

/* handshake_done - report, then go on or stop */
static void
handshake_done(struct bufferevent *b)
{
	SSL *ssl = bufferevent_openssl_get_ssl(b);
	char desc[TLS_DESCRIBE_MAX];

	printf("tls: %s\n", tls_describe(ssl, desc, sizeof(desc)));
	printf("verify: %s\n", tls_verify_error(ssl));
	result = insecure || tls_peer_verified(ssl) ? 0 : 1;
	if (read_first) {
		state = ST_FIRST_LINE;
		return;
	}
	if (starttls) {
		state = ST_LOGOUT;
		bufferevent_write(b, "b LOGOUT\r\n", 10);
		return;
	}
	finish(result);
}

static void
tls_event(struct bufferevent *b, short what, void *arg)
{
	unsigned long e;

	(void)arg;
	if (what & BEV_EVENT_CONNECTED) {
		handshake_done(b);
		return;
	}
	if (state == ST_HANDSHAKE) {
		SSL *ssl = bufferevent_openssl_get_ssl(b);
		int n = 0;

		printf("handshake failed:");
		while ((e = bufferevent_get_openssl_error(b)) != 0)
			if (ERR_reason_error_string(e) != NULL) {
				printf(" %s;", ERR_reason_error_string(e));
				n++;
			}
		if (n == 0)
			printf(" %s;", what & BEV_EVENT_EOF ?
			    "connection closed" :
			    evutil_socket_error_to_string(
			    EVUTIL_SOCKET_ERROR()));
		printf(" verify: %s\n", tls_verify_error(ssl));
	} else
		printf("connection %s after the handshake\n",
		    what & BEV_EVENT_EOF ? "closed" : "failed");
	finish(1);
}

/* tls_start - TLS on fd (or, fd -1, on a new connection) */
static void
tls_start(evutil_socket_t fd)
{
	char err[256];
	SSL *ssl;

	ssl = tls_client_ssl_new(ctx, hostname, !insecure, err, sizeof(err));
	if (ssl == NULL) {
		printf("tls_client_ssl_new: %s\n", err);
		finish(1);
		return;
	}
	state = ST_HANDSHAKE;
	/* with CLOSE_ON_FREE the bufferevent frees ssl too */
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		if (fd != -1)
			close(fd);
		printf("bufferevent_openssl_socket_new failed\n");
		finish(1);
		return;
	}
	bufferevent_setcb(bev, tls_read, NULL, tls_event, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	printf("timeout\n");
	finish(1);
}

int
main(int argc, char **argv)
{
	const char *cafile = NULL;
	struct sockaddr_in sin;
	struct event *timer;
	struct timeval tv = { 10, 0 };
	char err[256];
	int ch, port;

	while ((ch = getopt(argc, argv, "C:gkn:s:t:")) != -1) {
		switch (ch) {
		case 'C':
			cafile = optarg;
			break;
		case 'g':
			read_first = 1;
			break;
		case 'k':
			insecure = 1;
			break;
		case 'n':
			hostname = optarg;
			break;
		case 's':
			if (strcmp(optarg, "imap") != 0)
				usage();
			starttls = 1;
			break;
		case 't':
			tv.tv_sec = atoi(optarg);
			if (tv.tv_sec <= 0)
				usage();
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 1)
		usage();
	port = atoi(argv[optind]);
	if (port <= 0 || port > 65535)
		usage();

	if ((ctx = tls_client_ctx_new(cafile, err, sizeof(err))) == NULL) {
		printf("tls_client_ctx_new: %s\n", err);
		return (1);
	}
	if ((base = event_base_new()) == NULL)
		abort();
	timer = evtimer_new(base, timeout_cb, NULL);
	if (timer == NULL || evtimer_add(timer, &tv) == -1)
		abort();

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (starttls) {
		state = ST_GREETING;
		bev = bufferevent_socket_new(base, -1, 0);
		if (bev == NULL)
			abort();
		bufferevent_setcb(bev, plain_read, NULL, plain_event, NULL);
		bufferevent_enable(bev, EV_READ | EV_WRITE);
	} else
		tls_start(-1);
	if (bev != NULL && bufferevent_socket_connect(bev,
	    (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		printf("connect to 127.0.0.1:%d failed\n", port);
		result = 1;
	} else if (bev != NULL)
		event_base_dispatch(base);

	if (bev != NULL)
		bufferevent_free(bev);
	event_free(timer);
	event_base_free(base);
	tls_ctx_free(&ctx);
	return (result);
}
