/*
 * ctl_preflight_server.c - one IMAP server before any login: is the
 * port reachable, does the TLS handshake succeed and does the
 * certificate verify for the configured name, what does CAPABILITY
 * say.
 *
 * syncd's IMAP client only reports a connection once it has logged in,
 * and it refuses an unverified certificate outright; the checklist
 * wants each of these steps as its own verdict, and without a password.
 * So this is a probe, not a client: greeting, STARTTLS when the URL
 * asks for it, CAPABILITY, LOGOUT - line by line, with every wait
 * bounded by the preflight timeout (poll() on a non-blocking socket),
 * so a host that drops packets or a server that greets and then stays
 * silent costs one timeout, not a hang.  The handshake verifies nothing
 * itself (SSL_VERIFY_NONE) so that it completes; the verdict is
 * OpenSSL's verification result read afterwards, which is what
 * ferry-syncd would have refused the connection on.
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ctl.h"
#include "ctl_preflight_p.h"
#include "tls.h"
#include "util.h"

#define LINE_MAX_PROBE	8192	/* a CAPABILITY line is far shorter */

struct probe {
	int		 fd;
	SSL		*ssl;
	int64_t		 deadline_ms;	/* of the current step */
	char		 in[LINE_MAX_PROBE];
	size_t		 inlen;
};

/* now_ms - a monotonic clock in milliseconds */
static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* wait_fd - poll for events until the deadline; 0, or -1 on timeout */
static int
wait_fd(struct probe *p, short events)
{
	struct pollfd pfd;
	int64_t left;
	int n;

	for (;;) {
		if ((left = p->deadline_ms - now_ms()) <= 0)
			return (-1);
		pfd.fd = p->fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return (0);
		if (n == 0)
			return (-1);
		if (errno != EINTR)
			return (-1);
	}
}

/* tcp_connect - every address of host in turn, each within the step */
static int
tcp_connect(struct probe *p, const char *host, int port, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	char pstr[16];
	socklen_t sl;
	int rc, soerr = 0, fd;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(pstr, sizeof(pstr), "%d", port);
	if ((rc = getaddrinfo(host, pstr, &hints, &res)) != 0) {
		errbuf_set(err, errlen, "cannot resolve: %s",
		    gai_strerror(rc));
		return (-1);
	}
	errbuf_set(err, errlen, "no address");
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol)) == -1) {
			errbuf_set(err, errlen, "socket: %s", strerror(errno));
			continue;
		}
		p->fd = fd;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno != EINPROGRESS) {
			errbuf_set(err, errlen, "%s", strerror(errno));
		} else if (wait_fd(p, POLLOUT) == -1) {
			errbuf_set(err, errlen, "no answer within the timeout");
		} else {
			sl = sizeof(soerr);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
			    &sl) == 0 && soerr == 0)
				break;
			errbuf_set(err, errlen, "%s", strerror(soerr ? soerr :
			    errno));
		}
		close(fd);
		p->fd = -1;
	}
	freeaddrinfo(res);
	return (p->fd == -1 ? -1 : 0);
}

/* tls_handshake - the handshake within the step; verification is judged
 * afterwards */
static int
tls_handshake(struct probe *p, SSL_CTX *ctx, const char *host, char *err,
    size_t errlen)
{
	char ebuf[200];
	int rc, e;

	if ((p->ssl = tls_client_ssl_new(ctx, host, 0, err, errlen)) == NULL)
		return (-1);
	if (SSL_set_fd(p->ssl, p->fd) != 1) {
		errbuf_set(err, errlen, "SSL_set_fd failed");
		return (-1);
	}
	for (;;) {
		ERR_clear_error();
		if ((rc = SSL_connect(p->ssl)) == 1)
			return (0);
		e = SSL_get_error(p->ssl, rc);
		if (e == SSL_ERROR_WANT_READ) {
			if (wait_fd(p, POLLIN) == -1)
				break;
		} else if (e == SSL_ERROR_WANT_WRITE) {
			if (wait_fd(p, POLLOUT) == -1)
				break;
		} else {
			errbuf_set(err, errlen, "handshake failed: %s",
			    tls_error_string(ebuf, sizeof(ebuf)));
			return (-1);
		}
	}
	errbuf_set(err, errlen, "handshake not finished within the timeout");
	return (-1);
}

/* send_line - write a command line within the step */
static int
send_line(struct probe *p, const char *line, char *err, size_t errlen)
{
	size_t len = strlen(line), off = 0;
	ssize_t n;
	int e;

	while (off < len) {
		if (p->ssl != NULL) {
			ERR_clear_error();
			n = SSL_write(p->ssl, line + off, (int)(len - off));
			if (n <= 0) {
				e = SSL_get_error(p->ssl, (int)n);
				if ((e == SSL_ERROR_WANT_WRITE &&
				    wait_fd(p, POLLOUT) == 0) ||
				    (e == SSL_ERROR_WANT_READ &&
				    wait_fd(p, POLLIN) == 0))
					continue;
				goto fail;
			}
		} else {
			n = send(p->fd, line + off, len - off, MSG_NOSIGNAL);
			if (n == -1) {
				if ((errno == EAGAIN || errno == EINTR) &&
				    wait_fd(p, POLLOUT) == 0)
					continue;
				goto fail;
			}
		}
		off += (size_t)n;
	}
	return (0);
fail:
	errbuf_set(err, errlen, "cannot send to the server");
	return (-1);
}

/* read_line - one response line without CRLF into out; 0 or -1 */
static int
read_line(struct probe *p, char *out, size_t outlen, char *err,
    size_t errlen)
{
	char *nl;
	ssize_t n;
	size_t len;
	int e;

	for (;;) {
		if ((nl = memchr(p->in, '\n', p->inlen)) != NULL) {
			len = (size_t)(nl - p->in);
			if (len > 0 && p->in[len - 1] == '\r')
				len--;
			if (len >= outlen)
				len = outlen - 1;
			memcpy(out, p->in, len);
			out[len] = '\0';
			len = (size_t)(nl - p->in) + 1;
			memmove(p->in, p->in + len, p->inlen - len);
			p->inlen -= len;
			return (0);
		}
		if (p->inlen == sizeof(p->in)) {
			errbuf_set(err, errlen, "response line too long");
			return (-1);
		}
		if (p->ssl != NULL) {
			ERR_clear_error();
			n = SSL_read(p->ssl, p->in + p->inlen,
			    (int)(sizeof(p->in) - p->inlen));
			if (n <= 0) {
				e = SSL_get_error(p->ssl, (int)n);
				if (e == SSL_ERROR_WANT_READ) {
					if (wait_fd(p, POLLIN) == 0)
						continue;
					goto timeout;
				}
				if (e == SSL_ERROR_WANT_WRITE) {
					if (wait_fd(p, POLLOUT) == 0)
						continue;
					goto timeout;
				}
				goto closed;
			}
		} else {
			n = recv(p->fd, p->in + p->inlen,
			    sizeof(p->in) - p->inlen, 0);
			if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
				if (wait_fd(p, POLLIN) == 0)
					continue;
				goto timeout;
			}
			if (n <= 0)
				goto closed;
		}
		p->inlen += (size_t)n;
	}
timeout:
	errbuf_set(err, errlen, "no answer within the timeout");
	return (-1);
closed:
	errbuf_set(err, errlen, "connection closed by the server");
	return (-1);
}

/* tagged - read until the line of tag; caps collects "* CAPABILITY" */
static int
tagged(struct probe *p, const char *tag, char *caps, size_t capslen,
    char *err, size_t errlen)
{
	char line[LINE_MAX_PROBE];
	size_t tl = strlen(tag);

	for (;;) {
		if (read_line(p, line, sizeof(line), err, errlen) == -1)
			return (-1);
		if (strncasecmp(line, "* CAPABILITY ", 13) == 0 && caps != NULL)
			str_copy(caps, line + 13, capslen);
		if (strncmp(line, tag, tl) == 0 && line[tl] == ' ') {
			if (strncasecmp(line + tl + 1, "OK", 2) == 0)
				return (0);
			errbuf_set(err, errlen, "refused: %.200s", line + tl + 1);
			return (-1);
		}
	}
}

/* greeting - the server's first line: "* OK" or "* PREAUTH", with caps */
static int
greeting(struct probe *p, char *caps, size_t capslen, char *err,
    size_t errlen)
{
	char line[LINE_MAX_PROBE], *e;

	if (read_line(p, line, sizeof(line), err, errlen) == -1) {
		errbuf_set(err, errlen, "no greeting within the timeout");
		return (-1);
	}
	if (strncasecmp(line, "* OK", 4) != 0 &&
	    strncasecmp(line, "* PREAUTH", 9) != 0) {
		errbuf_set(err, errlen, "bad greeting: %.200s", line);
		return (-1);
	}
	if (strncasecmp(line, "* OK [CAPABILITY ", 17) == 0) {
		str_copy(caps, line + 17, capslen);
		if ((e = strchr(caps, ']')) != NULL)
			*e = '\0';
	}
	return (0);
}

/* step - the next network step gets the whole timeout */
static void
step(struct probe *p, int timeout)
{
	p->deadline_ms = now_ms() + (int64_t)timeout * 1000;
}

/* server_probe - one server's row: TCP, TLS, certificate, CAPABILITY */
static void
server_probe(struct preflight *pf, const char *side, const struct imap_url *u)
{
	char where[HOSTPORT_HOSTMAX + 16], tcp[160], tls[400], cert[400];
	char caps[LINE_MAX_PROBE], err[300], desc[TLS_DESCRIBE_MAX];
	int port = u->addr.port;
	enum pf_level lv = PF_OK;
	struct probe p;
	int64_t t0;

	if (u->kind != CFG_IMAP_KIND_IMAP) {
		/* a local archive: no network; the logins below open it */
		pf_row(pf, PF_T_SERVERS, PF_OK, side, u->path, "local archive",
		    "-", "-", "built-in read-only reader");
		return;
	}
	memset(&p, 0, sizeof(p));
	p.fd = -1;
	if (port == 0)
		port = u->tls == CFG_IMAP_TLS_IMPLICIT ? 993 : 143;
	snprintf(where, sizeof(where), "%s%s%s:%d", u->addr.is_ipv6 ? "[" : "",
	    u->addr.host, u->addr.is_ipv6 ? "]" : "", port);
	snprintf(tls, sizeof(tls), "-");
	snprintf(cert, sizeof(cert), "-");
	caps[0] = '\0';

	t0 = now_ms();
	step(&p, pf->timeout);
	if (tcp_connect(&p, u->addr.host, port, err, sizeof(err)) == -1) {
		pf_row(pf, PF_T_SERVERS, PF_BLOCK, side, where, err, tls, cert,
		    "");
		return;
	}
	snprintf(tcp, sizeof(tcp), "ok (%lld ms)", (long long)(now_ms() - t0));
	if (u->tls == CFG_IMAP_TLS_STARTTLS) {
		step(&p, pf->timeout);
		if (greeting(&p, caps, sizeof(caps), err, sizeof(err)) == -1 ||
		    send_line(&p, "P1 STARTTLS\r\n", err, sizeof(err)) == -1 ||
		    tagged(&p, "P1", NULL, 0, err, sizeof(err)) == -1) {
			snprintf(tls, sizeof(tls), "STARTTLS: %s", err);
			lv = PF_BLOCK;
			goto done;
		}
		caps[0] = '\0';
	}
	if (u->tls != CFG_IMAP_TLS_NONE) {
		step(&p, pf->timeout);
		if (tls_handshake(&p, pf->ssl_ctx, u->addr.host, err,
		    sizeof(err)) == -1) {
			str_copy(tls, err, sizeof(tls));
			lv = PF_BLOCK;
			goto done;
		}
		str_copy(tls, tls_describe(p.ssl, desc, sizeof(desc)),
		    sizeof(tls));
		if (tls_peer_verified(p.ssl))
			snprintf(cert, sizeof(cert), "verified for %s",
			    u->addr.host);
		else {
			snprintf(cert, sizeof(cert), "NOT verified: %s%s",
			    tls_verify_error(p.ssl), pf->cfg->syncd.tls_verify ?
			    "" : " (tls_verify = no)");
			lv = pf->cfg->syncd.tls_verify ? PF_BLOCK : PF_WARN;
		}
	} else {
		snprintf(tls, sizeof(tls), "none (plain text)");
		lv = PF_WARN;
	}
	step(&p, pf->timeout);
	if (u->tls != CFG_IMAP_TLS_STARTTLS &&
	    greeting(&p, caps, sizeof(caps), err, sizeof(err)) == -1) {
		snprintf(caps, sizeof(caps), "%s", err);
		lv = PF_BLOCK;
		goto done;
	}
	caps[0] = '\0';
	step(&p, pf->timeout);
	if (send_line(&p, "P2 CAPABILITY\r\n", err, sizeof(err)) == -1 ||
	    tagged(&p, "P2", caps, sizeof(caps), err, sizeof(err)) == -1) {
		snprintf(caps, sizeof(caps), "CAPABILITY: %s", err);
		lv = PF_BLOCK;
		goto done;
	}
	if (strcasestr(caps, "IMAP4rev1") == NULL &&
	    strcasestr(caps, "IMAP4rev2") == NULL) {
		snprintf(err, sizeof(err), "%.200s (no IMAP4rev1)", caps);
		str_copy(caps, err, sizeof(caps));
		lv = PF_BLOCK;
	}
	step(&p, 1);
	(void)send_line(&p, "P3 LOGOUT\r\n", err, sizeof(err));
done:
	pf_row(pf, PF_T_SERVERS, lv, side, where, tcp, tls, cert, caps);
	if (p.ssl != NULL)
		SSL_free(p.ssl);
	if (p.fd != -1)
		close(p.fd);
}

/* pf_servers - both servers' rows */
void
pf_servers(struct preflight *pf)
{
	server_probe(pf, "source", &pf->cfg->syncd.source);
	server_probe(pf, "destination", &pf->cfg->syncd.destination);
}
