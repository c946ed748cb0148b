/*
 * spool_file.c - the spool file's envelope header (DESIGN.md §4: the
 * file alone is enough to rebuild the queue): writing it from a queue
 * record, and reading a file back into one.
 *
 * SPOOL FILE FORMAT (stable; spool/queue/ID and, until its record is
 * committed, spool/pool/ID; mode 0600)
 *   An envelope header of text lines, each ending in LF:
 *     mailferry-spool 1                 magic and format version
 *     id 0123456789abcdef               must equal the file name
 *     arrived 1700000000                unix time
 *     flags 0                           QR_* (QR_DSN marks our bounces)
 *     size 00000000000000004396         the message's length in bytes,
 *                                       SPOOL_SIZE_DIGITS digits, written
 *                                       (over zeros) last, just before the
 *                                       file's sync: what makes a file a
 *                                       committed message.  A file whose
 *                                       message is not as long is cut
 *                                       short and refused; in spool/pool
 *                                       such a file, or one with no size
 *                                       line or a header cut short, is
 *                                       unfinished and emptied for reuse
 *                                       (absent in older queue/ files:
 *                                       not checked)
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
 *   An empty file in spool/pool is a free pool file (spool_pool.c).
 *   The header is the same in both places: a pool file is renamed, never
 *   rewritten, to become spool/queue/ID.
 *
 * Exposure: the header values come from SMTP clients (HELO name,
 * addresses); the escaping keeps each on its line, and a file read back
 * is checked line by line (SPOOL_LINEMAX, its id against its name).
 *
 * Threading: pure apart from the file it reads; called on the loop.
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
#include "queue.h"
#include "relay.h"
#include "spool.h"
#include "spool_p.h"
#include "relay_view.h"
#include "store.h"
#include "wakeup.h"

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

/* spool_env_size_off - where the size value is in a header text */
size_t
spool_env_size_off(const char *text, size_t len)
{
	const char *p = memmem(text, len, "\nsize ", 6);

	return (p == NULL ? 0 : (size_t)(p - text) + 6);
}

/* spool_env_build - the header text of rec under the name id */
int
spool_env_build(const struct queue_record *rec, const char *id, char **text_r,
    size_t *len_r)
{
	FILE *fp;
	size_t i;

	*text_r = NULL;
	if ((fp = open_memstream(text_r, len_r)) == NULL)
		return (-1);
	fprintf(fp, "%s\nid %s\narrived %" PRId64 "\nflags %" PRIu32
	    "\nsize %0*" PRIu64 "\nclient ", SPOOL_MAGIC, id, rec->arrived,
	    rec->flags, SPOOL_SIZE_DIGITS, rec->size);
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
env_parse(FILE *fp, const char *id, struct queue_record *rec,
    uint64_t *size_r, int *have_size_r, char *err, size_t errlen)
{
	char line[SPOOL_LINEMAX], *val;
	struct delivery *d;
	int64_t v;
	size_t len, lineno = 0;
	int have_id = 0, have_arrived = 0, have_sender = 0, end = 0;

	memset(rec, 0, sizeof(*rec));
	*have_size_r = 0;
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
		} else if (strcmp(line, "size") == 0) {
			if (parse_i64(val, &v) == -1 || v < 0)
				goto bad;
			*size_r = (uint64_t)v;
			*have_size_r = 1;
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
int
spool_file_read(struct spool *sp, const char *id, struct queue_record *rec,
    int *fd_r, uint64_t *offset_r, uint64_t *size_r, char *err, size_t errlen)
{
	struct queue_record tmp;
	struct stat st;
	FILE *fp;
	off_t off;
	uint64_t want = 0;
	int fd, dfd, saved, have_size;

	if (!spool_id_valid(id)) {
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
	if (env_parse(fp, id, &tmp, &want, &have_size, err, errlen) == -1) {
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
	if (have_size && want != tmp.size) {
		/* Renamed into spool/queue before its fsync and cut short
		 * by a crash: never acknowledged (spool_writer.c). */
		snprintf(err, errlen, "truncated: %" PRIu64 " of %" PRIu64
		    " message bytes", tmp.size, want);
		queue_record_clear(&tmp);
		close(fd);
		errno = EINVAL;
		return (-1);
	}
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

/*
 * spool_file_check - a pool file at start-up (spool_pool.c): 1 when it
 * holds a whole message - its header parses, has a size line and the
 * message after it is exactly that long - else 0 (empty, or written in
 * part: a crash came before its fdatasync returned, so nobody got a
 * 250 for it).  A pool file is only ever written by spool.c, and its
 * size line is the last thing written before the fdatasync, so anything
 * short of that is unfinished, whatever the damage looks like.  -1 when
 * the file cannot be read at all (err, errno).
 */
int
spool_file_check(int dirfd, const char *id, char *err, size_t errlen)
{
	struct queue_record tmp;
	struct stat st;
	FILE *fp;
	off_t off;
	uint64_t want = 0;
	int fd, saved, have_size, rc;

	if ((fd = openat(dirfd, id, O_RDONLY | O_CLOEXEC)) == -1) {
		saved = errno;
		snprintf(err, errlen, "open: %s", strerror(errno));
		errno = saved;
		return (-1);
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		snprintf(err, errlen, "fstat: %s", strerror(errno));
		close(fd);
		errno = saved;
		return (-1);
	}
	if (st.st_size == 0) {
		close(fd);
		return (0);
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		saved = errno;
		snprintf(err, errlen, "%s", strerror(errno));
		close(fd);
		errno = saved;
		return (-1);
	}
	if (env_parse(fp, id, &tmp, &want, &have_size, err, errlen) == -1) {
		fclose(fp);
		return (0);
	}
	queue_record_clear(&tmp);
	off = ftello(fp);
	fclose(fp);
	rc = have_size && want > 0 && off >= 0 && off <= st.st_size &&
	    (uint64_t)(st.st_size - off) == want;
	if (!rc)
		snprintf(err, errlen, "%s", !have_size ? "no size line" :
		    "message shorter or longer than its size line");
	return (rc);
}
