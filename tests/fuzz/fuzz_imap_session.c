/*
 * fuzz_imap_session.c - a session fuzzer for syncd's IMAP client
 * (syncd/imap_client*.c over imap_parse.c): the input is everything a
 * hostile server says in one session, from its greeting on.
 *
 * A peer on a loopback socket (127.0.0.1, any port) accepts the client's
 * connection, writes the whole input, closes its sending side and reads
 * and drops what the client sends.  The client logs in (LOGIN) and has
 * queued, from the start, the commands a sync pass sends: LIST with
 * SPECIAL-USE and STATUS, EXAMINE, a metadata UID FETCH, a body UID
 * FETCH, UID SEARCH, STATUS, NAMESPACE and LOGOUT.  The seeds are
 * sessions a real server would send for them (tags A1, A2...).  It
 * abort()s when an invariant breaks:
 *   - the client does not close within 4 s after the peer's end (it
 *     must notice a server that stops talking, or talks nonsense);
 *   - a command's done callback runs more than once, or not at all by
 *     imap_client_free() (which cancels what is pending);
 *   - a body's data does not add up to the size body_begin announced
 *     when body_end comes, or body calls nest;
 *   - a LIST entry has no name, or a bad one a decoded name;
 *   - a message callback gives UID 0 as present.
 * ASan and UBSan watch the rest (buffers, lifetimes, frees inside
 * callbacks).
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "imap_client.h"
#include "log.h"
#include "fuzz.h"

#define NCMDS		16

struct session;

/* One queued command: its done and data callbacks get its slot. */
struct slot {
	struct session	*s;
	int		 done;		/* done calls */
};

struct session {
	struct event_base *base;
	struct imap_client *c;
	int		 lfd, pfd;	/* listener, peer's connection */
	struct event	*lev, *pev, *wev;
	const uint8_t	*data;
	size_t		 size, off;
	int		 closed;
	struct slot	 cmd[NCMDS];
	int		 ncmds;
	int		 in_body;
	uint64_t	 body_size, body_got;
};

static void
done_cb(struct imap_client *c, const struct imap_result *res, void *arg)
{
	struct slot *k = arg;

	(void)c;
	(void)res;
	if (++k->done > 1)
		abort();
}

static void
conn_cb(struct imap_client *c, enum imap_client_event ev,
    const struct imap_result *res, void *arg)
{
	struct session *s = arg;

	(void)c;
	(void)res;
	if (ev == IMAP_CLIENT_CLOSED) {
		s->closed = 1;
		event_base_loopexit(s->base, NULL);
	}
}

static void
body_begin(struct imap_client *c, const struct imap_fetch_msg *m,
    const char *section, uint64_t size, void *arg)
{
	struct session *s = ((struct slot *)arg)->s;

	(void)c;
	(void)m;
	if (s->in_body || section == NULL)
		abort();
	s->in_body = 1;
	s->body_size = size;
	s->body_got = 0;
}

static void
body_data(struct imap_client *c, const void *data, size_t len, void *arg)
{
	struct session *s = ((struct slot *)arg)->s;

	(void)c;
	if (!s->in_body || (len > 0 && data == NULL))
		abort();
	s->body_got += len;
	if (s->body_got > s->body_size)
		abort();
}

static void
body_end(struct imap_client *c, void *arg)
{
	struct session *s = ((struct slot *)arg)->s;

	(void)c;
	if (!s->in_body || s->body_got != s->body_size)
		abort();
	s->in_body = 0;
}

static void
fetch_msg(struct imap_client *c, const struct imap_fetch_msg *m, void *arg)
{
	(void)c;
	(void)arg;
	if ((m->have & IMAP_FETCH_UID) && m->uid == 0)
		abort();
}

static void
list_mailbox(struct imap_client *c, const struct imap_list_entry *e,
    void *arg)
{
	(void)c;
	(void)arg;
	if (e->name == NULL || (e->bad != NULL && e->name_utf8 != NULL))
		abort();
}

static void
list_status(struct imap_client *c, const struct imap_status_info *st,
    void *arg)
{
	(void)c;
	(void)st;
	(void)arg;
}

static void
search_uid(struct imap_client *c, uint64_t uid, void *arg)
{
	(void)c;
	(void)uid;
	(void)arg;
}

/* peer_cb - the peer writes the input, then drops what it reads */
static void
peer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	char buf[4096];
	ssize_t n;

	if (what & EV_WRITE) {
		if (s->off < s->size) {
			n = write(fd, s->data + s->off, s->size - s->off);
			if (n > 0)
				s->off += (size_t)n;
			else if (n == -1 && errno != EAGAIN)
				s->off = s->size;
		}
		if (s->off >= s->size) {
			shutdown(fd, SHUT_WR);
			event_del(s->wev);
		}
	}
	if (what & EV_READ) {
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			;
		if (n == 0)
			event_del(s->pev);
	}
}

static void
accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)what;
	if (s->pfd != -1)
		return;
	if ((s->pfd = accept(fd, NULL, NULL)) == -1)
		return;
	evutil_make_socket_nonblocking(s->pfd);
	s->pev = event_new(s->base, s->pfd, EV_READ | EV_PERSIST, peer_cb, s);
	s->wev = event_new(s->base, s->pfd, EV_WRITE | EV_PERSIST, peer_cb,
	    s);
	event_add(s->pev, NULL);
	event_add(s->wev, NULL);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	/* the peer said all it had and closed: the client must be gone */
	if (s->pfd != -1 && s->off >= s->size)
		abort();
	event_base_loopexit(s->base, NULL);
}

static int
listen_any(int *port_r)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd, on = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return (-1);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 4) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1) {
		close(fd);
		return (-1);
	}
	evutil_make_socket_nonblocking(fd);
	*port_r = ntohs(sin.sin_port);
	return (fd);
}

/* queue - one command of the pass, its done count slot */
#define QUEUE(call) do {						\
	s.cmd[s.ncmds].s = &s;						\
	if (s.ncmds < NCMDS && (call) != NULL)				\
		s.ncmds++;						\
} while (0)

/* fuzz_imap_session - see fuzz.h */
int
fuzz_imap_session(const uint8_t *data, size_t size)
{
	static const struct imap_fetch_cbs meta = { body_begin, body_data,
	    body_end, fetch_msg, NULL };
	static const struct imap_list_cbs lcbs = { list_mailbox, list_status };
	static int logging;
	struct imap_client_opts o;
	struct session s;
	struct timeval tv = { 4, 0 };
	struct event *tev;
	char err[256];
	int port, i;

	if (!logging) {
		/* the client's log says what it thinks of the server:
		 * errors only, so that a long run stays readable */
		log_open("fuzz_imap_session", LOG_DEST_STDERR, 0,
		    LOG_LVL_ERROR);
		logging = 1;
	}
	memset(&s, 0, sizeof(s));
	s.data = data;
	s.size = size;
	s.pfd = -1;
	if ((s.base = event_base_new()) == NULL)
		return (0);
	if ((s.lfd = listen_any(&port)) == -1) {
		event_base_free(s.base);
		return (0);
	}
	s.lev = event_new(s.base, s.lfd, EV_READ | EV_PERSIST, accept_cb, &s);
	event_add(s.lev, NULL);
	tev = evtimer_new(s.base, timeout_cb, &s);
	evtimer_add(tev, &tv);

	memset(&o, 0, sizeof(o));
	o.host = "127.0.0.1";
	o.port = port;
	o.tls = IMAP_TLS_NONE;
	o.user = "alice";
	o.secret = "pw";
	o.auth = IMAP_AUTH_LOGIN;
	o.timeout = 3;
	o.log_id = "fuzz";
	if ((s.c = imap_client_new(s.base, &o, conn_cb, &s, err,
	    sizeof(err))) == NULL)
		abort();
	QUEUE(imap_client_list(s.c, "", "*", IMAP_LIST_SPECIAL_USE,
	    IMAP_STATUS_MESSAGES | IMAP_STATUS_UIDNEXT, &lcbs, done_cb,
	    &s.cmd[s.ncmds]));
	QUEUE(imap_client_select(s.c, "INBOX", IMAP_SELECT_READONLY, NULL,
	    NULL, done_cb, &s.cmd[s.ncmds]));
	QUEUE(imap_client_uid_fetch(s.c, "1:*", "(UID FLAGS INTERNALDATE "
	    "RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM)])",
	    0, 0, &meta, done_cb, &s.cmd[s.ncmds]));
	QUEUE(imap_client_uid_fetch(s.c, "1:*", "(UID BODY.PEEK[])", 0, 0,
	    &meta, done_cb, &s.cmd[s.ncmds]));
	QUEUE(imap_client_uid_search(s.c, "ALL", search_uid, done_cb,
	    &s.cmd[s.ncmds]));
	QUEUE(imap_client_status(s.c, "Sent", IMAP_STATUS_MESSAGES |
	    IMAP_STATUS_UIDVALIDITY, done_cb, &s.cmd[s.ncmds]));
	QUEUE(imap_client_namespace(s.c, done_cb, &s.cmd[s.ncmds]));
	QUEUE(imap_client_logout(s.c, done_cb, &s.cmd[s.ncmds]));

	event_base_dispatch(s.base);
	imap_client_free(&s.c);
	for (i = 0; i < s.ncmds; i++)
		if (s.cmd[i].done != 1)
			abort();

	event_free(tev);
	event_free(s.lev);
	if (s.pfd != -1) {
		event_free(s.pev);
		event_free(s.wev);
		close(s.pfd);
	}
	close(s.lfd);
	event_base_free(s.base);
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return (fuzz_imap_session(data, size));
}
