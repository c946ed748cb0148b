/*
 * ctl_socket.c - one request line to the running relay over its control
 * socket ([control] socket) and its one-line reply, "ok TEXT" or
 * "error TEXT" (relay/control.c).
 *
 * SECURITY: the reply is untrusted: at most CTL_REPLY_MAX bytes, waited
 * for at most CTL_WAIT_MS, and shown only through clean().
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "ctl.h"

#define CTL_REPLY_MAX	(1024 * 1024)	/* longest reply we accept */
#define CTL_WAIT_MS	30000		/* for the relay's answer */

/* ---- the control socket -------------------------------------------------- */

/*
 * ctl_request_opt - send one request line to the relay, read its
 * one-line reply into *reply_r (malloc'd, without the newline).  Returns
 * 0 when the relay answered, -1 when it could not be asked (message
 * printed), and with quiet set -2 without a message when nothing listens
 * on the socket (the relay is not running: the caller has a fallback).
 */
int
ctl_request_opt(const struct ctl *ctl, const char *req, char **reply_r,
    int quiet)
{
	const char *path = ctl->cfg.control.socket;
	struct sockaddr_un sun;
	struct pollfd pfd;
	char *buf = NULL, *nl;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd, saved;

	*reply_r = NULL;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path == NULL || path[0] == '\0' ||
	    str_copy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		fprintf(stderr, "ferryctl: [control] socket is empty or too "
		    "long\n");
		return (-1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fprintf(stderr, "ferryctl: socket: %s\n", strerror(errno));
		return (-1);
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		close(fd);
		if (quiet && (saved == ENOENT || saved == ECONNREFUSED))
			return (-2);
		if (saved == ENOENT || saved == ECONNREFUSED)
			fprintf(stderr, "ferryctl: the relay is not running "
			    "(nothing answers on %s)\n", path);
		else if (saved == EACCES || saved == EPERM)
			fprintf(stderr, "ferryctl: %s: %s (run ferryctl as "
			    "root or as the relay's user)\n", path,
			    strerror(saved));
		else
			fprintf(stderr, "ferryctl: %s: %s\n", path,
			    strerror(saved));
		return (-1);
	}
	n = (ssize_t)strlen(req);
	if (write(fd, req, (size_t)n) != n || write(fd, "\n", 1) != 1) {
		fprintf(stderr, "ferryctl: sending to the relay: %s\n",
		    strerror(errno));
		close(fd);
		return (-1);
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *nb;

			if (cap >= CTL_REPLY_MAX) {
				fprintf(stderr, "ferryctl: the relay's reply "
				    "is too long\n");
				goto fail;
			}
			cap = cap ? cap * 2 : 8192;
			if ((nb = realloc(buf, cap)) == NULL) {
				fprintf(stderr, "ferryctl: out of memory\n");
				goto fail;
			}
			buf = nb;
		}
		n = poll(&pfd, 1, CTL_WAIT_MS);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0) {
			fprintf(stderr, "ferryctl: the relay did not answer "
			    "within %d s\n", CTL_WAIT_MS / 1000);
			goto fail;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fprintf(stderr, "ferryctl: reading the relay's reply: "
			    "%s\n", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (memchr(buf, '\n', len) != NULL)
			break;
	}
	close(fd);
	if (buf == NULL || len == 0 || (nl = memchr(buf, '\n', len)) == NULL) {
		fprintf(stderr, "ferryctl: the relay closed the connection "
		    "without an answer\n");
		free(buf);
		return (-1);
	}
	*nl = '\0';
	if (nl > buf && nl[-1] == '\r')
		nl[-1] = '\0';
	*reply_r = buf;
	return (0);
fail:
	close(fd);
	free(buf);
	return (-1);
}

int
ctl_request(const struct ctl *ctl, const char *req, char **reply_r)
{
	return (ctl_request_opt(ctl, req, reply_r, 0));
}

void
ctl_show_reply(const struct ctl *ctl, const char *what, int rc,
    const char *text, void (*fields)(struct json *, const void *),
    const void *arg)
{
	char buf[512];
	struct json j;

	if (ctl->json) {
		json_init(&j, JSON_PRETTY);
		json_object_begin(&j);
		json_key(&j, "ok");
		json_bool(&j, rc == 0);
		if (fields != NULL)
			fields(&j, arg);
		json_key(&j, rc == 0 ? "result" : "error");
		json_string(&j, text);
		json_object_end(&j);
		(void)json_print(&j);
	} else if (rc == 0)
		printf("%s\n", clean(buf, sizeof(buf), text, 0));
	else
		fprintf(stderr, "ferryctl: %s: %s\n", what,
		    rc == 1 ? clean(buf, sizeof(buf), text, 0) :
		    "unexpected reply from the relay");
}

/*
 * reply_split - "ok TEXT" -> 0 and TEXT, "error TEXT" -> 1 and TEXT,
 * anything else -> -1.
 */
int
reply_split(char *reply, char **text_r)
{
	if (strncmp(reply, "ok", 2) == 0 && (reply[2] == '\0' ||
	    reply[2] == ' ')) {
		*text_r = reply + (reply[2] ? 3 : 2);
		return (0);
	}
	if (strncmp(reply, "error", 5) == 0 && (reply[5] == '\0' ||
	    reply[5] == ' ')) {
		*text_r = reply + (reply[5] ? 6 : 5);
		return (1);
	}
	*text_r = reply;
	return (-1);
}
