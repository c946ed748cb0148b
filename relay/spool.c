/*
 * spool.c - spool files and their group-committed LMDB index.
 *
 * A message is durable when its spool file is fsync'd and renamed into
 * spool/queue/, that directory is fsync'd and its LMDB "queue" record is
 * committed (DESIGN.md §4).  Only then does the SMTP server answer 250.
 *
 * Group commit.  spool_msg_commit() only queues the message; a writer
 * thread takes every queued message at once and runs one round: flush and
 * fsync each file, rename each tmp/ID to queue/ID, fsync the queue
 * directory once, put every record in ONE LMDB write transaction, then
 * hand the round back to the loop, which calls each commit callback.
 * Messages committed while a round runs wait for the next one, so N
 * sessions finishing DATA together share one directory fsync and one
 * LMDB commit, and the loop never blocks on fsync.  A message that fails
 * anywhere (write error, ENOSPC, fsync, rename, LMDB) gets status -1 and
 * its file is removed from wherever it is: nothing half-written stays.
 *
 * Dedupe (issue 4, DESIGN.md §4).  A message whose record carries a relay
 * key (rec->has_relay_key) also puts that key into STORE_DB_DEDUPE, with
 * MDB_NOOVERWRITE and expiring after [dedupe] ttl, in the SAME LMDB
 * transaction as its queue record.  If the key is already there (another
 * copy was committed first, maybe in this very round), the message is a
 * duplicate: no queue record, its file is removed, and its callback gets
 * status 1 with the first copy's queue id as why.  The SMTP server looks
 * the key up before committing (spool_dedupe_lookup()); the put here
 * settles the race of two copies finishing DATA at the same time.
 *
 * The ledger (common/ledger.h).  Every recipient the ledger tracks
 * (queue_ledger_tracked(): a ledger key, the upstream route) gets a
 * pending STORE_DB_LEDGER entry in the same transaction as the record:
 * from the 250 on, a delta pass knows the relay holds that copy.
 *
 * The same transaction counts the message in the inbound record of each
 * of its recipient domains (common/relay_view.h): the cutover verdict's
 * "no inbound for the quiet period" reads them.
 *
 * DEDUPE VALUE FORMAT (stable; STORE_DB_DEDUPE, key = the 32-byte relay
 * key, the store adds its expiry header in front):
 *   byte  1                  version
 *   8     first seen         unix time, big-endian
 *   16    queue id           of the copy that was queued
 *
 * Start-up (spool_open): files left in spool/tmp are removed (their
 * sessions got no 250); a queue/ID file without a record gets one rebuilt
 * from the file (a crash between rename and commit: the client got no
 * 250 and may send again - a duplicate, never a loss); a record without
 * a file is dropped with a log line.  spool_rebuild_index() rebuilds the
 * whole index from the files with every delivery pending: a message that
 * was already delivered may be sent again, none is lost.  A rebuilt
 * record is what the SMTP server made at reception (spool_file_record():
 * the envelope, and the relay and ledger keys computed again from the
 * message), and the same transaction puts what round_put() would have:
 * its dedupe key (unless one is there) and its pending ledger entries.
 * A record that goes removes the pending ledger entries it wrote.
 *
 * SPOOL FILE FORMAT (stable; spool/queue/ID, mode 0600)
 *   An envelope header of text lines, each ending in LF:
 *     mailferry-spool 1                 magic and format version
 *     id 0123456789abcdef               must equal the file name
 *     arrived 1700000000                unix time
 *     flags 0                           QR_* (QR_DSN marks our bounces)
 *     client mail.example.org [192.0.2.1]
 *     sender bob@example.org            empty value for <>
 *     rcpt upstream alice@example.com   one line per delivery:
 *     rcpt copy alice@example.com       destination, then the address
 *   then one empty line, then the message exactly as it is forwarded:
 *   our Received: header and the client's message, CRLF line endings,
 *   dot-unstuffed, up to the end of the file.  A value is everything
 *   after the first space of its line; the bytes '%', 0x00-0x1f and
 *   0x7f in a value are written as %XX (hex).  Readers ignore keys they
 *   do not know, so a key can be added without a version bump.
 *
 * Exposure: the header values come from SMTP clients (HELO name,
 * addresses); the escaping keeps each on its line.  Ids are checked to be
 * 16 hex digits before they become a file name.
 *
 * Threading: every function runs on the loop thread.  The writer thread
 * touches only messages handed to it (spool_msg_commit gives up the
 * caller's pointer) and the store (MDB_NOTLS: any thread may commit); it
 * never logs and never calls back: the loop does both.
 */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "checks.h"
#include "ledger.h"
#include "log.h"
#include "relay.h"
#include "relay_view.h"
#include "store.h"
#include "wakeup.h"

#define SPOOL_MAGIC	"mailferry-spool 1"
#define SPOOL_BUFSZ	(16 * 1024)	/* write buffer, DATA sessions only */
#define SPOOL_LINEMAX	8192		/* longest header line */
#define DEDUPE_VALUE_VERSION	1
/* Test hook: when set (to anything) in the relay's environment at start,
 * the writer thread ends the process with _exit(SPOOL_TEST_CRASH_STATUS)
 * after a round's files are durable and before its LMDB transaction: the
 * crash the start-up rebuild exists for, on demand, for
 * tests/integration/test_relay_pending.sh.  Unset (production), nothing
 * is different. */
#define SPOOL_TEST_CRASH_ENV	"MAILFERRY_TEST_CRASH_BEFORE_COMMIT"
#define SPOOL_TEST_CRASH_STATUS	86
#define DEDUPE_VALUE_LEN	(1 + 8 + QUEUE_ID_LEN)

enum msg_where { IN_TMP, IN_QUEUE, GONE };

struct spool_msg {
	TAILQ_ENTRY(spool_msg) entry;
	struct spool	*spool;
	char		 id[QUEUE_ID_LEN + 1];
	int		 fd;
	enum msg_where	 where;
	char		*buf;		/* pending bytes, lazily allocated */
	size_t		 buflen;
	int		 env_written;	/* header is at the start of the file */
	uint64_t	 body;		/* message bytes accepted */
	int		 werr;		/* first write errno, 0 if none */
	/* set at commit */
	char		*env;		/* header to put in front (no envelope call) */
	size_t		 envlen;
	unsigned char	*enc;		/* the encoded queue record */
	size_t		 enclen;
	spool_commit_cb	*cb;
	void		*arg;
	int		 status;	/* 0, -1, or 1: duplicate */
	char		 why[320];
	/* dedupe: the relay key, put with the record */
	int		 has_key;
	unsigned char	 key[32];
	int64_t		 arrived;
	int		 dup;		/* round_put: key already there */
	char		 first_id[QUEUE_ID_LEN + 1];
	/* the ledger: one pending entry per key, put with the record */
	unsigned char	(*lkey)[MSGKEY_LEN];
	size_t		 nlkey;
	time_t		 lexpires;
	/* the per-domain inbound records (relay_view.h) */
	char		*vclient;	/* "helo [addr]" */
	char		*vdomains;	/* "a.example\0b.example\0" */
	size_t		 vdomlen;
};
TAILQ_HEAD(msgq, spool_msg);

struct spool {
	struct relay	*relay;
	int		 tmpfd;		/* spool/tmp */
	int		 queuefd;	/* spool/queue */
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct msgq	 pending;	/* waiting for the next round (mu) */
	struct msgq	 done;		/* finished, for the loop (mu) */
	int		 stop;		/* (mu) */
	pthread_t	 thread;
	int		 thread_started;
	struct wakeup	*wake;		/* writer -> loop: "done is not empty" */
	int		 test_crash;	/* SPOOL_TEST_CRASH_ENV was set */
};

/* ---- small helpers ------------------------------------------------------ */

static int
id_valid(const char *id)
{
	return (id != NULL && strlen(id) == QUEUE_ID_LEN &&
	    strspn(id, "0123456789abcdef") == QUEUE_ID_LEN);
}

/* write_all - write everything or fail with errno */
static int
write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		if (n == 0) {
			errno = EIO;
			return (-1);
		}
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

/* msg_fail - record the first failure of a message */
static void
msg_fail(struct spool_msg *m, const char *what, int errnum)
{
	if (m->status == -1)
		return;
	m->status = -1;
	if (errnum)
		snprintf(m->why, sizeof(m->why), "%s: %s", what, strerror(errnum));
	else
		snprintf(m->why, sizeof(m->why), "%s", what);
}

/* msg_flush - write out the buffer; sticky failure in m->werr */
static int
msg_flush(struct spool_msg *m)
{
	if (m->werr)
		return (-1);
	if (m->buflen > 0 && write_all(m->fd, m->buf, m->buflen) == -1) {
		m->werr = errno;
		return (-1);
	}
	m->buflen = 0;
	return (0);
}

static int
msg_put(struct spool_msg *m, const void *data, size_t len)
{
	if (m->werr)
		return (-1);
	if (m->buf == NULL && (m->buf = malloc(SPOOL_BUFSZ)) == NULL) {
		m->werr = ENOMEM;
		return (-1);
	}
	if (len > SPOOL_BUFSZ - m->buflen) {
		if (msg_flush(m) == -1)
			return (-1);
		if (len >= SPOOL_BUFSZ) {
			if (write_all(m->fd, data, len) == -1) {
				m->werr = errno;
				return (-1);
			}
			return (0);
		}
	}
	memcpy(m->buf + m->buflen, data, len);
	m->buflen += len;
	return (0);
}

static void
msg_free(struct spool_msg *m)
{
	if (m == NULL)
		return;
	if (m->fd != -1)
		close(m->fd);
	free(m->buf);
	free(m->env);
	free(m->enc);
	free(m->lkey);
	free(m->vclient);
	free(m->vdomains);
	free(m);
}

/* msg_unlink - remove the message's file wherever it is */
static void
msg_unlink(struct spool *sp, struct spool_msg *m)
{
	if (m->where == IN_TMP)
		(void)unlinkat(sp->tmpfd, m->id, 0);
	else if (m->where == IN_QUEUE)
		(void)unlinkat(sp->queuefd, m->id, 0);
	m->where = GONE;
}

/* ---- the envelope header ------------------------------------------------- */

static void
env_value(FILE *fp, const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)(s ? s : ""); *p != '\0'; p++) {
		if (*p == '%' || *p < 0x20 || *p == 0x7f)
			fprintf(fp, "%%%02X", *p);
		else
			fputc(*p, fp);
	}
}

/* env_build - the header text of rec under the name id */
static int
env_build(const struct queue_record *rec, const char *id, char **text_r,
    size_t *len_r)
{
	FILE *fp;
	size_t i;

	*text_r = NULL;
	if ((fp = open_memstream(text_r, len_r)) == NULL)
		return (-1);
	fprintf(fp, "%s\nid %s\narrived %" PRId64 "\nflags %" PRIu32 "\nclient ",
	    SPOOL_MAGIC, id, rec->arrived, rec->flags);
	env_value(fp, rec->client);
	fputs("\nsender ", fp);
	env_value(fp, rec->sender);
	fputc('\n', fp);
	for (i = 0; i < rec->ndlv; i++) {
		fprintf(fp, "rcpt %s ",
		    rec->dlv[i].dest == DLV_COPY ? "copy" : "upstream");
		env_value(fp, rec->dlv[i].rcpt);
		fputc('\n', fp);
	}
	fputc('\n', fp);
	if (ferror(fp)) {
		fclose(fp);
		free(*text_r);
		*text_r = NULL;
		return (-1);
	}
	if (fclose(fp) != 0) {
		free(*text_r);
		*text_r = NULL;
		return (-1);
	}
	return (0);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

/* env_unescape - decode %XX in place; NUL bytes refused */
static int
env_unescape(char *s)
{
	char *r, *w;
	int hi, lo;

	for (r = w = s; *r != '\0'; r++) {
		if (*r != '%') {
			*w++ = *r;
			continue;
		}
		if ((hi = hexval(r[1])) == -1 || (lo = hexval(r[2])) == -1)
			return (-1);
		if (hi == 0 && lo == 0)
			return (-1);
		*w++ = (char)(hi << 4 | lo);
		r += 2;
	}
	*w = '\0';
	return (0);
}

static int
parse_i64(const char *s, int64_t *v_r)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return (-1);
	*v_r = v;
	return (0);
}

/*
 * env_parse - read the header of a spool file from fp into rec
 *
 * id is the file's name; the header must say the same.  On success fp is
 * positioned at the first byte of the message and every delivery is
 * pending, due now.  On failure rec is cleared.
 */
static int
env_parse(FILE *fp, const char *id, struct queue_record *rec, char *err,
    size_t errlen)
{
	char line[SPOOL_LINEMAX], *val;
	struct delivery *d;
	int64_t v;
	size_t len, lineno = 0;
	int have_id = 0, have_arrived = 0, have_sender = 0, end = 0;

	memset(rec, 0, sizeof(*rec));
	while (!end && fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		len = strlen(line);
		if (len == 0 || line[len - 1] != '\n') {
			snprintf(err, errlen, "line %zu: too long or unterminated",
			    lineno);
			goto fail;
		}
		line[--len] = '\0';
		if (lineno == 1) {
			if (strcmp(line, SPOOL_MAGIC) != 0) {
				snprintf(err, errlen, "not a spool file (or an "
				    "unknown version)");
				goto fail;
			}
			continue;
		}
		if (len == 0) {
			end = 1;
			break;
		}
		if ((val = strchr(line, ' ')) == NULL) {
			snprintf(err, errlen, "line %zu: no value", lineno);
			goto fail;
		}
		*val++ = '\0';
		if (env_unescape(val) == -1) {
			snprintf(err, errlen, "line %zu: bad escape", lineno);
			goto fail;
		}
		if (strcmp(line, "id") == 0) {
			if (strcmp(val, id) != 0) {
				snprintf(err, errlen, "id %s does not match "
				    "the file name", val);
				goto fail;
			}
			have_id = 1;
		} else if (strcmp(line, "arrived") == 0) {
			if (parse_i64(val, &rec->arrived) == -1)
				goto bad;
			have_arrived = 1;
		} else if (strcmp(line, "flags") == 0) {
			if (parse_i64(val, &v) == -1 || v < 0 || v > UINT32_MAX)
				goto bad;
			rec->flags = (uint32_t)v;
		} else if (strcmp(line, "client") == 0) {
			free(rec->client);
			if ((rec->client = strdup(val)) == NULL)
				goto nomem;
		} else if (strcmp(line, "sender") == 0) {
			free(rec->sender);
			if ((rec->sender = strdup(val)) == NULL)
				goto nomem;
			have_sender = 1;
		} else if (strcmp(line, "rcpt") == 0) {
			char *addr = strchr(val, ' ');
			uint8_t dest;

			if (addr == NULL || addr[1] == '\0')
				goto bad;
			*addr++ = '\0';
			if (strcmp(val, "upstream") == 0)
				dest = DLV_UPSTREAM;
			else if (strcmp(val, "copy") == 0)
				dest = DLV_COPY;
			else
				goto bad;
			d = reallocarray(rec->dlv, rec->ndlv + 1, sizeof(*d));
			if (d == NULL)
				goto nomem;
			rec->dlv = d;
			d = &rec->dlv[rec->ndlv];
			memset(d, 0, sizeof(*d));
			if ((d->rcpt = strdup(addr)) == NULL)
				goto nomem;
			d->dest = dest;
			d->state = DLV_PENDING;
			rec->ndlv++;
		}
		/* other keys: written by a newer version, ignored */
	}
	if (!end) {
		snprintf(err, errlen, ferror(fp) ? "read error" :
		    "truncated header");
		goto fail;
	}
	if (!have_id || !have_arrived || !have_sender || rec->ndlv == 0) {
		snprintf(err, errlen, "header lacks id, arrived, sender or rcpt");
		goto fail;
	}
	if (rec->client == NULL && (rec->client = strdup("")) == NULL)
		goto nomem;
	memcpy(rec->id, id, QUEUE_ID_LEN + 1);
	return (0);
bad:
	snprintf(err, errlen, "line %zu: bad %s", lineno, line);
	goto fail;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	queue_record_clear(rec);
	return (-1);
}

/*
 * spool_file_read - parse the header of queue/ID
 *
 * With rec != NULL the rebuilt record (size filled in) is returned.  With
 * fd_r != NULL the open descriptor is returned positioned at the message.
 */
static int
spool_file_read(struct spool *sp, const char *id, struct queue_record *rec,
    int *fd_r, uint64_t *offset_r, uint64_t *size_r, char *err, size_t errlen)
{
	struct queue_record tmp;
	struct stat st;
	FILE *fp;
	off_t off;
	int fd, dfd, saved;

	if (!id_valid(id)) {
		snprintf(err, errlen, "bad queue id");
		errno = EINVAL;
		return (-1);
	}
	if ((fd = openat(sp->queuefd, id, O_RDONLY | O_CLOEXEC)) == -1) {
		saved = errno;
		snprintf(err, errlen, "open: %s", strerror(errno));
		errno = saved;
		return (-1);
	}
	if (fstat(fd, &st) == -1 || (dfd = dup(fd)) == -1) {
		saved = errno;
		snprintf(err, errlen, "%s", strerror(errno));
		close(fd);
		errno = saved;
		return (-1);
	}
	if ((fp = fdopen(dfd, "r")) == NULL) {
		saved = errno;
		snprintf(err, errlen, "%s", strerror(errno));
		close(dfd);
		close(fd);
		errno = saved;
		return (-1);
	}
	if (env_parse(fp, id, &tmp, err, errlen) == -1) {
		fclose(fp);
		close(fd);
		errno = EINVAL;
		return (-1);
	}
	off = ftello(fp);
	fclose(fp);
	if (off < 0 || off > st.st_size) {
		snprintf(err, errlen, "bad header length");
		queue_record_clear(&tmp);
		close(fd);
		errno = EINVAL;
		return (-1);
	}
	tmp.size = (uint64_t)(st.st_size - off);
	if (offset_r)
		*offset_r = (uint64_t)off;
	if (size_r)
		*size_r = tmp.size;
	if (fd_r) {
		if (lseek(fd, off, SEEK_SET) == -1) {
			saved = errno;
			snprintf(err, errlen, "lseek: %s", strerror(errno));
			queue_record_clear(&tmp);
			close(fd);
			errno = saved;
			return (-1);
		}
		*fd_r = fd;
	} else
		close(fd);
	if (rec)
		*rec = tmp;
	else
		queue_record_clear(&tmp);
	return (0);
}

/* ---- the writer thread ----------------------------------------------------- */

/* round_prepend - rewrite tmp/ID with the header in front (no envelope call) */
static int
round_prepend(struct spool *sp, struct spool_msg *m)
{
	char name[QUEUE_ID_LEN + 8], buf[8192];
	off_t off = 0;
	ssize_t n;
	int fd2;

	if (msg_flush(m) == -1) {
		msg_fail(m, "write", m->werr);
		return (-1);
	}
	snprintf(name, sizeof(name), "%s.env", m->id);
	fd2 = openat(sp->tmpfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (fd2 == -1) {
		msg_fail(m, "open", errno);
		return (-1);
	}
	if (write_all(fd2, m->env, m->envlen) == -1)
		goto fail;
	for (;;) {
		if ((n = pread(m->fd, buf, sizeof(buf), off)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		if (write_all(fd2, buf, (size_t)n) == -1)
			goto fail;
		off += n;
	}
	if (renameat(sp->tmpfd, name, sp->tmpfd, m->id) == -1)
		goto fail;
	close(m->fd);
	m->fd = fd2;
	return (0);
fail:
	msg_fail(m, "write", errno);
	close(fd2);
	(void)unlinkat(sp->tmpfd, name, 0);
	return (-1);
}

/* dedupe_value - the STORE_DB_DEDUPE value for a message */
static void
dedupe_value(unsigned char v[DEDUPE_VALUE_LEN], int64_t first_seen,
    const char *id)
{
	uint64_t t = (uint64_t)first_seen;
	int i;

	v[0] = DEDUPE_VALUE_VERSION;
	for (i = 8; i >= 1; i--) {
		v[i] = (unsigned char)(t & 0xff);
		t >>= 8;
	}
	memcpy(v + 9, id, QUEUE_ID_LEN);
}

/* dedupe_first_id - the queue id in a dedupe value; "?" if unreadable */
static void
dedupe_first_id(const void *val, size_t vlen, char id[QUEUE_ID_LEN + 1])
{
	const unsigned char *v = val;

	if (vlen == DEDUPE_VALUE_LEN && v[0] == DEDUPE_VALUE_VERSION) {
		memcpy(id, v + 9, QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		if (id_valid(id))
			return;
	}
	memcpy(id, "?", 2);
}

/*
 * ledger_pending - the pending ledger entries of a message whose record
 * is put in this transaction (common/ledger.h): from now on the relay
 * holds its copy for these recipients, and a delta pass must not copy
 * the old host's.
 */
static int
ledger_pending(struct store_txn *tx, const char *id, int64_t arrived,
    const unsigned char (*keys)[MSGKEY_LEN], size_t nkeys, time_t expires)
{
	struct ledger_entry e;
	size_t i;

	memset(&e, 0, sizeof(e));
	e.when = arrived;
	e.status = LEDGER_PENDING;
	memcpy(e.queue_id, id, QUEUE_ID_LEN + 1);
	for (i = 0; i < nkeys; i++)
		if (ledger_put(tx, keys[i], &e, expires) == -1)
			return (-1);
	return (0);
}

/* ledger_keys - the keys of rec's deliveries the ledger tracks */
static int
ledger_keys(const struct relay *relay, const struct queue_record *rec,
    unsigned char (**keys_r)[MSGKEY_LEN], size_t *n_r)
{
	size_t i, n = 0;

	*keys_r = NULL;
	*n_r = 0;
	for (i = 0; i < rec->ndlv; i++)
		if (queue_ledger_tracked(relay, rec, &rec->dlv[i]))
			n++;
	if (n == 0)
		return (0);
	if ((*keys_r = calloc(n, sizeof(**keys_r))) == NULL)
		return (-1);
	for (i = 0; i < rec->ndlv; i++)
		if (queue_ledger_tracked(relay, rec, &rec->dlv[i]))
			memcpy((*keys_r)[(*n_r)++], rec->dlv[i].ledger_key,
			    MSGKEY_LEN);
	return (0);
}

/*
 * view_domains - the distinct recipient domains (lower case) of rec's
 * upstream deliveries, for the inbound records; a DSN of ours is not
 * inbound mail and has none.
 */
static int
view_domains(const struct queue_record *rec, char **list_r, size_t *len_r)
{
	char *list = NULL, *p, dom[256];
	size_t len = 0, i, n;
	const char *at;

	*list_r = NULL;
	*len_r = 0;
	if (rec->flags & QR_DSN)
		return (0);
	for (i = 0; i < rec->ndlv; i++) {
		if (rec->dlv[i].dest != DLV_UPSTREAM ||
		    (at = strrchr(rec->dlv[i].rcpt, '@')) == NULL ||
		    (n = strlen(at + 1)) == 0 || n >= sizeof(dom))
			continue;
		for (n = 0; at[1 + n] != '\0'; n++)
			dom[n] = (char)tolower((unsigned char)at[1 + n]);
		dom[n] = '\0';
		for (p = list; p != NULL && p < list + len; p += strlen(p) + 1)
			if (strcmp(p, dom) == 0)
				break;
		if (p != NULL && p < list + len)
			continue;
		if ((p = realloc(list, len + n + 1)) == NULL) {
			free(list);
			return (-1);
		}
		list = p;
		memcpy(list + len, dom, n + 1);
		len += n + 1;
	}
	*list_r = list;
	*len_r = len;
	return (0);
}

/* view_note - the message counts in its domains' inbound records */
static int
view_note(struct store_txn *tx, const struct spool_msg *m)
{
	const char *p;

	for (p = m->vdomains; p != NULL && p < m->vdomains + m->vdomlen;
	    p += strlen(p) + 1)
		if (relay_view_note(tx, p, (time_t)m->arrived, m->vclient) ==
		    -1)
			return (-1);
	return (0);
}

/*
 * round_put - every message's dedupe key and queue record, one write
 * transaction.  May run more than once (store.h): per-message results
 * are reset first.
 */
static int
round_put(struct store_txn *tx, void *arg)
{
	struct spool *sp = TAILQ_FIRST((struct msgq *)arg)->spool;
	struct msgq *round = arg;
	struct spool_msg *m;
	unsigned char val[DEDUPE_VALUE_LEN];
	const void *old;
	size_t oldlen;
	int64_t ttl = sp->relay->cfg->dedupe.ttl;
	int rc;

	TAILQ_FOREACH(m, round, entry) {
		m->dup = 0;
		if (m->status != 0)
			continue;
		if (m->has_key && ttl > 0) {
			dedupe_value(val, m->arrived, m->id);
			rc = store_put_expiring(tx, STORE_DB_DEDUPE, m->key,
			    sizeof(m->key), val, sizeof(val),
			    store_txn_now(tx) + (time_t)ttl, MDB_NOOVERWRITE);
			if (rc == STORE_EXISTS) {
				m->dup = 1;
				if (store_get(tx, STORE_DB_DEDUPE, m->key,
				    sizeof(m->key), &old, &oldlen) == 0)
					dedupe_first_id(old, oldlen,
					    m->first_id);
				else
					memcpy(m->first_id, "?", 2);
				continue;
			}
			if (rc != 0)
				return (-1);
		}
		if (store_put(tx, STORE_DB_QUEUE, m->id, QUEUE_ID_LEN, m->enc,
		    m->enclen, 0) != 0)
			return (-1);
		if (ledger_pending(tx, m->id, m->arrived, m->lkey, m->nlkey,
		    m->lexpires) == -1)
			return (-1);
		if (view_note(tx, m) == -1)
			return (-1);
	}
	return (0);
}

/*
 * spool_round - make every message of round durable, or fail it
 *
 * The order is DESIGN.md §4's: file fsync, rename, directory fsync, LMDB.
 */
static void
spool_round(struct spool *sp, struct msgq *round)
{
	struct spool_msg *m;
	char err[256];
	int nrenamed = 0, nok = 0, nremoved = 0;

	TAILQ_FOREACH(m, round, entry) {
		if (m->status != 0)
			continue;
		if (m->env != NULL && round_prepend(sp, m) == -1)
			continue;
		if (msg_flush(m) == -1)
			msg_fail(m, "write", m->werr);
		else if (fsync(m->fd) == -1)
			msg_fail(m, "fsync", errno);
	}
	TAILQ_FOREACH(m, round, entry) {
		if (m->status != 0)
			continue;
		if (renameat(sp->tmpfd, m->id, sp->queuefd, m->id) == -1)
			msg_fail(m, "rename", errno);
		else {
			m->where = IN_QUEUE;
			nrenamed++;
		}
	}
	if (nrenamed > 0 && fsync(sp->queuefd) == -1) {
		int saved = errno;

		TAILQ_FOREACH(m, round, entry)
			if (m->status == 0)
				msg_fail(m, "fsync spool/queue", saved);
	}
	TAILQ_FOREACH(m, round, entry)
		if (m->status == 0)
			nok++;
	if (nok > 0 && sp->test_crash)
		_exit(SPOOL_TEST_CRASH_STATUS);
	if (nok > 0 && store_txn_run(sp->relay->store, 0, round_put, round,
	    err, sizeof(err)) != 0) {
		char what[300];

		snprintf(what, sizeof(what), "queue index: %s", err);
		TAILQ_FOREACH(m, round, entry)
			if (m->status == 0)
				msg_fail(m, what, 0);
	} else if (nok > 0) {
		/* Committed: a duplicate has no record; its file goes. */
		TAILQ_FOREACH(m, round, entry)
			if (m->status == 0 && m->dup) {
				m->status = 1;
				snprintf(m->why, sizeof(m->why), "%s",
				    m->first_id);
			}
	}
	TAILQ_FOREACH(m, round, entry) {
		if (m->status != 0) {
			if (m->where == IN_QUEUE)
				nremoved++;
			msg_unlink(sp, m);
		}
		if (m->fd != -1) {
			close(m->fd);
			m->fd = -1;
		}
		free(m->buf);
		m->buf = NULL;
	}
	/* A failed message must not come back after a crash as a queued
	 * one without a record (start-up would rebuild it). */
	if (nremoved > 0)
		(void)fsync(sp->queuefd);
}

static void *
spool_writer(void *arg)
{
	struct spool *sp = arg;
	struct msgq round;

	for (;;) {
		pthread_mutex_lock(&sp->mu);
		while (TAILQ_EMPTY(&sp->pending) && !sp->stop)
			pthread_cond_wait(&sp->cv, &sp->mu);
		if (TAILQ_EMPTY(&sp->pending)) {
			pthread_mutex_unlock(&sp->mu);
			break;
		}
		TAILQ_INIT(&round);
		TAILQ_CONCAT(&round, &sp->pending, entry);
		pthread_mutex_unlock(&sp->mu);

		spool_round(sp, &round);

		pthread_mutex_lock(&sp->mu);
		TAILQ_CONCAT(&sp->done, &round, entry);
		pthread_mutex_unlock(&sp->mu);
		wakeup_signal(sp->wake);
	}
	return (NULL);
}

/* spool_done_cb - on the loop: report finished rounds to their callers */
static void
spool_done_cb(void *arg)
{
	struct spool *sp = arg;
	struct msgq done;
	struct spool_msg *m;

	TAILQ_INIT(&done);
	pthread_mutex_lock(&sp->mu);
	TAILQ_CONCAT(&done, &sp->done, entry);
	pthread_mutex_unlock(&sp->mu);
	while ((m = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, m, entry);
		if (m->status == -1)
			log_warnx("%s: not queued: %s", m->id, m->why);
		if (m->cb)
			m->cb(m->status, m->id, m->status ? m->why : NULL,
			    m->arg);
		msg_free(m);
	}
}

/* ---- messages ---------------------------------------------------------- */

/* spool_msg_new - a new message in spool/tmp with a fresh queue id */
struct spool_msg *
spool_msg_new(struct spool *sp, char *err, size_t errlen)
{
	struct spool_msg *m;
	int tries;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (NULL);
	}
	m->spool = sp;
	m->fd = -1;
	for (tries = 0; tries < 16; tries++) {
		if (queue_id_new(m->id) == -1)
			break;
		/* An id still queued (clock stepped back) is not reused. */
		if (faccessat(sp->queuefd, m->id, F_OK, 0) == 0)
			continue;
		m->fd = openat(sp->tmpfd, m->id,
		    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (m->fd != -1 || errno != EEXIST)
			break;
	}
	if (m->fd == -1) {
		snprintf(err, errlen, "spool/tmp: %s", strerror(errno));
		free(m);
		return (NULL);
	}
	m->where = IN_TMP;
	return (m);
}

const char *
spool_msg_id(const struct spool_msg *msg)
{
	return (msg->id);
}

/* spool_msg_envelope - put the header first, before any message byte */
int
spool_msg_envelope(struct spool_msg *m, const struct queue_record *rec)
{
	struct queue_record tmp = *rec;
	char *text;
	size_t len;
	int rc;

	if (m->env_written || m->body > 0) {
		errno = EINVAL;
		return (-1);
	}
	if (tmp.arrived == 0)
		tmp.arrived = time(NULL);
	if (env_build(&tmp, m->id, &text, &len) == -1) {
		m->werr = ENOMEM;
		return (-1);
	}
	rc = msg_put(m, text, len);
	free(text);
	m->env_written = 1;
	return (rc);
}

/* spool_msg_write - append message bytes; -1 once any write failed */
int
spool_msg_write(struct spool_msg *m, const void *data, size_t len)
{
	if (msg_put(m, data, len) == -1)
		return (-1);
	m->body += len;
	return (0);
}

/*
 * spool_msg_commit - hand the message to the next commit round
 *
 * Takes *msgp (set to NULL).  cb runs later on the loop with 0 once the
 * message is durable, or -1 once every trace of it is gone.
 */
int
spool_msg_commit(struct spool_msg **msgp, struct queue_record *rec,
    spool_commit_cb *cb, void *arg)
{
	struct spool_msg *m = *msgp;
	struct spool *sp;

	if (m == NULL)
		return (-1);
	*msgp = NULL;
	sp = m->spool;
	m->cb = cb;
	m->arg = arg;
	memcpy(rec->id, m->id, sizeof(rec->id));
	rec->size = m->body;
	if (rec->arrived == 0)
		rec->arrived = time(NULL);
	m->arrived = rec->arrived;
	if ((m->has_key = rec->has_relay_key != 0))
		memcpy(m->key, rec->relay_key, sizeof(m->key));
	m->lexpires = queue_ledger_expiry(sp->relay->cfg, m->arrived,
	    LEDGER_PENDING);
	if (m->werr)
		msg_fail(m, "write", m->werr);
	else if (ledger_keys(sp->relay, rec, &m->lkey, &m->nlkey) == -1 ||
	    view_domains(rec, &m->vdomains, &m->vdomlen) == -1 ||
	    (m->vclient = strdup(rec->client ? rec->client : "")) == NULL)
		msg_fail(m, "out of memory", 0);
	else if (!m->env_written &&
	    env_build(rec, m->id, &m->env, &m->envlen) == -1)
		msg_fail(m, "out of memory", 0);
	else if (queue_record_encode(rec, &m->enc, &m->enclen) == -1)
		msg_fail(m, "queue record", errno);
	pthread_mutex_lock(&sp->mu);
	TAILQ_INSERT_TAIL(&sp->pending, m, entry);
	pthread_cond_signal(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	return (0);
}

/* spool_msg_abort - drop a message that will not be committed */
void
spool_msg_abort(struct spool_msg **msgp)
{
	struct spool_msg *m = *msgp;

	if (m == NULL)
		return;
	*msgp = NULL;
	msg_unlink(m->spool, m);
	msg_free(m);
}

/*
 * spool_msg_open - open queue/ID for delivery
 *
 * *fd_r is positioned at the first message byte (*offset_r); *size_r
 * bytes follow.  -1 with errno ENOENT when there is no such file, EINVAL
 * when its header is damaged (logged).
 */
int
spool_msg_open(struct spool *sp, const char *id, int *fd_r, uint64_t *offset_r,
    uint64_t *size_r)
{
	uint64_t off, size;
	char err[256];
	int saved;

	if (spool_file_read(sp, id, NULL, fd_r, &off, &size, err,
	    sizeof(err)) == -1) {
		saved = errno;
		if (saved != ENOENT)
			log_warnx("%s: spool file: %s", id_valid(id) ? id : "?",
			    err);
		errno = saved;
		return (-1);
	}
	if (offset_r)
		*offset_r = off;
	if (size_r)
		*size_r = size;
	return (0);
}

/* spool_remove - delete queue/ID; 0 also when it was already gone */
int
spool_remove(struct spool *sp, const char *id)
{
	if (!id_valid(id)) {
		errno = EINVAL;
		return (-1);
	}
	if (unlinkat(sp->queuefd, id, 0) == -1 && errno != ENOENT)
		return (-1);
	return (0);
}

struct dedupe_get {
	const unsigned char	*key;
	char			*first_id;
	int			 found;
};

static int
txn_dedupe_get(struct store_txn *tx, void *arg)
{
	struct dedupe_get *g = arg;
	const void *val;
	size_t vlen;
	int rc;

	g->found = 0;
	rc = store_get(tx, STORE_DB_DEDUPE, g->key, 32, &val, &vlen);
	if (rc == STORE_NOTFOUND)
		return (0);
	if (rc != 0)
		return (-1);
	dedupe_first_id(val, vlen, g->first_id);
	g->found = 1;
	return (0);
}

/*
 * spool_dedupe_lookup - is a live dedupe key there?  1 and the first
 * copy's queue id ("?" if its value is unreadable), 0 when not, -1 on a
 * store error (err filled).  A read transaction: no writer lock.
 */
int
spool_dedupe_lookup(struct spool *sp, const unsigned char key[32],
    char first_id[QUEUE_ID_LEN + 1], char *err, size_t errlen)
{
	struct dedupe_get g = { key, first_id, 0 };

	if (store_txn_run(sp->relay->store, 1, txn_dedupe_get, &g, err,
	    errlen) != 0)
		return (-1);
	return (g.found);
}

/* ---- start-up and rebuilding -------------------------------------------- */

struct idlist {
	char	(*ids)[QUEUE_ID_LEN + 1];
	size_t	  count;
	size_t	  alloc;
};

static int
idlist_add(struct idlist *l, const char *id, size_t len)
{
	void *n;

	if (l->count == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 64;

		if ((n = reallocarray(l->ids, na, sizeof(*l->ids))) == NULL)
			return (-1);
		l->ids = n;
		l->alloc = na;
	}
	memcpy(l->ids[l->count], id, len);
	l->ids[l->count][len] = '\0';
	l->count++;
	return (0);
}

static int
idcmp(const void *a, const void *b)
{
	return (strcmp(a, b));
}

static int
idlist_has(const struct idlist *l, const char *id)
{
	return (l->count > 0 &&
	    bsearch(id, l->ids, l->count, sizeof(*l->ids), idcmp) != NULL);
}

/* dir_list - names in dirfd: valid ids into ids, others counted */
static int
dir_list(int dirfd, struct idlist *ids, size_t *others_r, char *err,
    size_t errlen)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if (others_r)
		*others_r = 0;
	if ((fd = dup(dirfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		if (fd != -1)
			close(fd);
		return (-1);
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (id_valid(de->d_name)) {
			if (idlist_add(ids, de->d_name, QUEUE_ID_LEN) == -1) {
				snprintf(err, errlen, "out of memory");
				closedir(d);
				return (-1);
			}
		} else if (others_r)
			(*others_r)++;
	}
	closedir(d);
	if (ids->count > 0)
		qsort(ids->ids, ids->count, sizeof(*ids->ids), idcmp);
	return (0);
}

/* spool_clean_tmp - remove everything in spool/tmp: nobody got a 250 */
static int
spool_clean_tmp(struct spool *sp, char *err, size_t errlen)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d;
	int fd;

	if ((fd = dup(sp->tmpfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		snprintf(err, errlen, "spool/tmp: %s", strerror(errno));
		if (fd != -1)
			close(fd);
		return (-1);
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(sp->tmpfd, de->d_name, 0) == 0)
			n++;
		else
			log_warn("spool/tmp/%s: cannot remove", de->d_name);
	}
	closedir(d);
	if (n > 0)
		log_info("spool: removed %zu unfinished message(s) from spool/tmp",
		    n);
	return (0);
}

static int
collect_key(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct idlist *l = arg;
	char id[QUEUE_ID_LEN + 1];

	/* A malformed key names no file; the scheduler reports it. */
	if (klen != QUEUE_ID_LEN)
		return (0);
	memcpy(id, key, QUEUE_ID_LEN);
	id[QUEUE_ID_LEN] = '\0';
	if (!id_valid(id))
		return (0);
	return (idlist_add(l, id, QUEUE_ID_LEN));
}

static int
txn_collect_keys(struct store_txn *tx, void *arg)
{
	struct idlist *l = arg;

	l->count = 0;
	return (store_foreach(tx, STORE_DB_QUEUE, NULL, 0, collect_key, l));
}

/* What a record rebuilt from its file puts besides itself. */
struct fixup_keys {
	int64_t		 arrived;
	int		 has_rkey;
	unsigned char	 rkey[MSGKEY_LEN];	/* the relay key: dedupe */
	unsigned char	(*lkey)[MSGKEY_LEN];	/* pending ledger entries */
	size_t		 nlkey;
};

/* Records to put and keys to delete in one write transaction. */
struct fixup {
	struct idlist	 del;		/* ids whose record goes */
	struct idlist	 put;		/* ids whose record comes */
	unsigned char	**enc;		/* put[i]'s encoded record */
	size_t		*enclen;
	struct fixup_keys *keys;	/* put[i]'s keys */
	int		 wipe;		/* delete every record first */
	struct store	*store;
	struct relay	*relay;
	size_t		 deleted;
};

/*
 * release_one - a record that goes takes its pending ledger entries with
 * it: nobody will deliver those copies (a record rebuilt from its file
 * puts its own again).  A damaged record has nothing to release.
 */
static int
release_one(struct store_txn *tx, struct relay *relay, const void *val,
    size_t vlen)
{
	struct queue_record rec;
	char err[128];
	size_t i;
	int rc = 0;

	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1)
		return (0);
	for (i = 0; rc == 0 && i < rec.ndlv; i++)
		if (rec.dlv[i].state == DLV_PENDING &&
		    queue_ledger_tracked(relay, &rec, &rec.dlv[i]) &&
		    ledger_del(tx, rec.dlv[i].ledger_key, rec.id) == -1)
			rc = -1;
	queue_record_clear(&rec);
	return (rc);
}

struct release_all {
	struct store_txn	*tx;
	struct relay		*relay;
};

static int
release_all_one(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct release_all *ra = arg;

	(void)key;
	(void)klen;
	/* Writes STORE_DB_LEDGER only, not the database being walked. */
	return (release_one(ra->tx, ra->relay, val, vlen));
}

static int
txn_fixup(struct store_txn *tx, void *arg)
{
	struct fixup *f = arg;
	struct release_all ra = { tx, f->relay };
	const void *val;
	unsigned char dval[DEDUPE_VALUE_LEN];
	int64_t ttl = f->relay->cfg->dedupe.ttl;
	size_t i, vlen;
	int rc;

	f->deleted = 0;
	if (f->wipe && store_foreach(tx, STORE_DB_QUEUE, NULL, 0,
	    release_all_one, &ra) != 0)
		return (-1);
	for (i = 0; !f->wipe && i < f->del.count; i++) {
		rc = store_get(tx, STORE_DB_QUEUE, f->del.ids[i], QUEUE_ID_LEN,
		    &val, &vlen);
		if (rc == -1)
			return (-1);
		if (rc == 0 && release_one(tx, f->relay, val, vlen) == -1)
			return (-1);
	}
	if (f->wipe) {
		/* Everything goes, malformed keys included. */
		if (store_count(tx, STORE_DB_QUEUE, &f->deleted) == -1)
			return (-1);
		rc = mdb_drop(store_txn_mdb(tx), store_dbi(f->store,
		    STORE_DB_QUEUE), 0);
		if (rc != 0)
			return (store_txn_mdb_err(tx, rc, "mdb_drop"));
	}
	for (i = 0; i < f->del.count; i++) {
		rc = store_del(tx, STORE_DB_QUEUE, f->del.ids[i], QUEUE_ID_LEN);
		if (rc == -1)
			return (-1);
		if (rc == 0)
			f->deleted++;
	}
	for (i = 0; i < f->put.count; i++) {
		const struct fixup_keys *k = &f->keys[i];

		if (store_put(tx, STORE_DB_QUEUE, f->put.ids[i], QUEUE_ID_LEN,
		    f->enc[i], f->enclen[i], 0) != 0)
			return (-1);
		/* As at reception (round_put): the relay key, so a copy the
		 * client sends again is a duplicate; an existing key (this
		 * very message, when the index is rebuilt) stays. */
		if (k->has_rkey && ttl > 0) {
			dedupe_value(dval, k->arrived, f->put.ids[i]);
			rc = store_put_expiring(tx, STORE_DB_DEDUPE, k->rkey,
			    sizeof(k->rkey), dval, sizeof(dval),
			    store_txn_now(tx) + (time_t)ttl, MDB_NOOVERWRITE);
			if (rc == -1)
				return (-1);
		}
		if (ledger_pending(tx, f->put.ids[i], k->arrived,
		    (const unsigned char (*)[MSGKEY_LEN])k->lkey, k->nlkey,
		    queue_ledger_expiry(f->relay->cfg, k->arrived,
		    LEDGER_PENDING)) == -1)
			return (-1);
	}
	return (0);
}

static void
fixup_free(struct fixup *f)
{
	size_t i;

	for (i = 0; i < f->put.count; i++) {
		free(f->enc[i]);
		free(f->keys[i].lkey);
	}
	free(f->enc);
	free(f->enclen);
	free(f->keys);
	free(f->put.ids);
	free(f->del.ids);
	memset(f, 0, sizeof(*f));
}

/*
 * spool_file_record - the queue record of queue/ID rebuilt from the file
 * alone, as the SMTP server made it at reception: the envelope from the
 * header, every delivery pending and due at now, and the keys computed
 * from the message (checks_spooled_keys(): the relay key, a ledger key
 * per upstream recipient).  What cannot come back: delivery progress
 * and our Authentication-Results (known only after DATA, kept in the
 * record alone).  -1 with err when the file cannot be read.
 */
static int
spool_file_record(struct spool *sp, const char *id, time_t now,
    struct queue_record *rec, char *err, size_t errlen)
{
	uint64_t off, size;
	size_t i;
	int fd;

	if (spool_file_read(sp, id, rec, &fd, &off, &size, err, errlen) == -1)
		return (-1);
	for (i = 0; i < rec->ndlv; i++)
		rec->dlv[i].next_try = now;
	if (checks_spooled_keys(fd, size, rec, err, errlen) == -1) {
		close(fd);
		queue_record_clear(rec);
		return (-1);
	}
	close(fd);
	return (0);
}

/* fixup_add_file - read queue/ID and plan to put its record and keys */
static int
fixup_add_file(struct spool *sp, struct fixup *f, const char *id, time_t now)
{
	struct queue_record rec;
	struct fixup_keys k, *nkeys;
	unsigned char *enc, **nenc;
	size_t enclen, *nlen;
	char err[256];

	if (spool_file_record(sp, id, now, &rec, err, sizeof(err)) == -1) {
		log_warnx("%s: spool file unreadable, left in spool/queue: %s",
		    id, err);
		return (0);
	}
	memset(&k, 0, sizeof(k));
	k.arrived = rec.arrived;
	if ((k.has_rkey = rec.has_relay_key))
		memcpy(k.rkey, rec.relay_key, sizeof(k.rkey));
	if (ledger_keys(sp->relay, &rec, &k.lkey, &k.nlkey) == -1) {
		queue_record_clear(&rec);
		return (-1);
	}
	if (queue_record_encode(&rec, &enc, &enclen) == -1) {
		log_warnx("%s: spool file: cannot encode its record", id);
		queue_record_clear(&rec);
		free(k.lkey);
		return (0);
	}
	queue_record_clear(&rec);
	nkeys = reallocarray(f->keys, f->put.count + 1, sizeof(*nkeys));
	if (nkeys == NULL) {
		free(enc);
		free(k.lkey);
		return (-1);
	}
	f->keys = nkeys;
	f->keys[f->put.count] = k;	/* f frees it once put counts it */
	nenc = reallocarray(f->enc, f->put.count + 1, sizeof(*nenc));
	if (nenc == NULL) {
		free(enc);
		free(k.lkey);
		return (-1);
	}
	f->enc = nenc;
	nlen = reallocarray(f->enclen, f->put.count + 1, sizeof(*nlen));
	if (nlen == NULL) {
		free(enc);
		free(k.lkey);
		return (-1);
	}
	f->enclen = nlen;
	if (idlist_add(&f->put, id, QUEUE_ID_LEN) == -1) {
		free(enc);
		free(k.lkey);
		return (-1);
	}
	f->enc[f->put.count - 1] = enc;
	f->enclen[f->put.count - 1] = enclen;
	return (0);
}

/*
 * spool_reconcile - make the index match the files after a crash
 *
 * queue/ files without a record get one; records without a file go.
 */
static int
spool_reconcile(struct spool *sp, char *err, size_t errlen)
{
	struct idlist files = { NULL, 0, 0 }, keys = { NULL, 0, 0 };
	struct fixup f;
	time_t now = time(NULL);
	size_t i, others;
	int rc = -1;

	memset(&f, 0, sizeof(f));
	f.relay = sp->relay;
	if (dir_list(sp->queuefd, &files, &others, err, errlen) == -1)
		goto out;
	if (others > 0)
		log_warnx("spool: %zu file(s) in spool/queue are not named "
		    "like queue ids; ignored", others);
	if (store_txn_run(sp->relay->store, 1, txn_collect_keys, &keys, err,
	    errlen) != 0)
		goto out;
	if (keys.count > 0)
		qsort(keys.ids, keys.count, sizeof(*keys.ids), idcmp);
	for (i = 0; i < keys.count; i++) {
		if (idlist_has(&files, keys.ids[i]))
			continue;
		if (idlist_add(&f.del, keys.ids[i], QUEUE_ID_LEN) == -1)
			goto nomem;
	}
	for (i = 0; i < files.count; i++) {
		if (idlist_has(&keys, files.ids[i]))
			continue;
		if (fixup_add_file(sp, &f, files.ids[i], now) == -1)
			goto nomem;
	}
	if (f.del.count == 0 && f.put.count == 0) {
		rc = 0;
		goto out;
	}
	if (store_txn_run(sp->relay->store, 0, txn_fixup, &f, err,
	    errlen) != 0)
		goto out;
	for (i = 0; i < f.del.count; i++)
		log_warnx("%s: removed (queue record without a spool file)",
		    f.del.ids[i]);
	for (i = 0; i < f.put.count; i++)
		log_notice("%s: queue record rebuilt from its spool file",
		    f.put.ids[i]);
	rc = 0;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	fixup_free(&f);
	free(files.ids);
	free(keys.ids);
	return (rc);
}

/* spool_rebuild_index - replace the whole queue index by the files' */
int
spool_rebuild_index(struct spool *sp, size_t *count_r, char *err,
    size_t errlen)
{
	struct idlist files = { NULL, 0, 0 };
	struct fixup f;
	time_t now = time(NULL);
	size_t i, others;
	int rc = -1;

	memset(&f, 0, sizeof(f));
	f.relay = sp->relay;
	if (count_r)
		*count_r = 0;
	if (dir_list(sp->queuefd, &files, &others, err, errlen) == -1)
		goto out;
	for (i = 0; i < files.count; i++)
		if (fixup_add_file(sp, &f, files.ids[i], now) == -1) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	f.wipe = 1;
	f.store = sp->relay->store;
	if (store_txn_run(sp->relay->store, 0, txn_fixup, &f, err,
	    errlen) != 0)
		goto out;
	log_notice("spool: queue index rebuilt: %zu message(s) from spool "
	    "files, %zu old record(s) replaced", f.put.count, f.deleted);
	if (count_r)
		*count_r = f.put.count;
	rc = 0;
out:
	fixup_free(&f);
	free(files.ids);
	return (rc);
}

/* ---- open and close ------------------------------------------------------ */

/* open_dir - mkdir -p one level (0700) and open it */
static int
open_dir(int parentfd, const char *parent, const char *name, char *err,
    size_t errlen)
{
	int fd;

	if (mkdirat(parentfd, name, 0700) == 0)
		(void)fsync(parentfd);
	else if (errno != EEXIST) {
		snprintf(err, errlen, "%s/%s: mkdir: %s", parent, name,
		    strerror(errno));
		return (-1);
	}
	fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		snprintf(err, errlen, "%s/%s: %s", parent, name, strerror(errno));
	return (fd);
}

/*
 * spool_open - open (creating) state_dir/spool/{tmp,queue}, recover from
 * a crash, and start the writer thread
 *
 * Needs relay->cfg, relay->store and relay->base.
 */
int
spool_open(struct spool **spool_r, struct relay *relay, char *err,
    size_t errlen)
{
	const char *state = relay->cfg->global.state_dir;
	struct spool *sp;
	int statefd = -1, spoolfd = -1;

	*spool_r = NULL;
	if ((sp = calloc(1, sizeof(*sp))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	sp->relay = relay;
	sp->test_crash = getenv(SPOOL_TEST_CRASH_ENV) != NULL;
	sp->tmpfd = sp->queuefd = -1;
	TAILQ_INIT(&sp->pending);
	TAILQ_INIT(&sp->done);
	pthread_mutex_init(&sp->mu, NULL);
	pthread_cond_init(&sp->cv, NULL);

	statefd = open(state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (statefd == -1) {
		snprintf(err, errlen, "%s: %s", state, strerror(errno));
		goto fail;
	}
	if ((spoolfd = open_dir(statefd, state, "spool", err, errlen)) == -1 ||
	    (sp->tmpfd = open_dir(spoolfd, "spool", "tmp", err, errlen)) == -1 ||
	    (sp->queuefd = open_dir(spoolfd, "spool", "queue", err,
	    errlen)) == -1)
		goto fail;
	if (faccessat(spoolfd, "tmp", W_OK, AT_EACCESS) == -1 ||
	    faccessat(spoolfd, "queue", W_OK, AT_EACCESS) == -1) {
		snprintf(err, errlen, "%s/spool: not writable by this user "
		    "(give state_dir to the [global] user)", state);
		goto fail;
	}
	close(statefd);
	close(spoolfd);
	statefd = spoolfd = -1;

	if (spool_clean_tmp(sp, err, errlen) == -1 ||
	    spool_reconcile(sp, err, errlen) == -1)
		goto fail;

	if (wakeup_new(&sp->wake, relay->base, spool_done_cb, sp, err,
	    errlen) == -1)
		goto fail;
	if (pthread_create(&sp->thread, NULL, spool_writer, sp) != 0) {
		snprintf(err, errlen, "cannot start the spool writer thread");
		goto fail;
	}
	sp->thread_started = 1;
	*spool_r = sp;
	return (0);
fail:
	if (statefd != -1)
		close(statefd);
	if (spoolfd != -1)
		close(spoolfd);
	spool_close(&sp);
	return (-1);
}

/*
 * spool_close - finish the rounds already queued, stop the writer
 *
 * Callbacks of rounds that finished but were not yet reported are NOT
 * called (their callers are gone by now); their messages are durable or
 * removed all the same.
 */
void
spool_close(struct spool **spoolp)
{
	struct spool *sp = *spoolp;
	struct spool_msg *m;

	if (sp == NULL)
		return;
	*spoolp = NULL;
	if (sp->thread_started) {
		pthread_mutex_lock(&sp->mu);
		sp->stop = 1;
		pthread_cond_signal(&sp->cv);
		pthread_mutex_unlock(&sp->mu);
		pthread_join(sp->thread, NULL);
	}
	while ((m = TAILQ_FIRST(&sp->done)) != NULL) {
		TAILQ_REMOVE(&sp->done, m, entry);
		msg_free(m);
	}
	while ((m = TAILQ_FIRST(&sp->pending)) != NULL) {	/* no thread */
		TAILQ_REMOVE(&sp->pending, m, entry);
		msg_unlink(sp, m);
		msg_free(m);
	}
	wakeup_free(&sp->wake);
	if (sp->tmpfd != -1)
		close(sp->tmpfd);
	if (sp->queuefd != -1)
		close(sp->queuefd);
	pthread_mutex_destroy(&sp->mu);
	pthread_cond_destroy(&sp->cv);
	free(sp);
}
