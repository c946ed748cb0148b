/*
 * archive_mbox.c - mbox files as archive folders.  mbox:///path/FILE is
 * one folder, INBOX; mbox:///path/DIR is a tree of them, one folder per
 * file named by its path below DIR ("Work/2019"; Thunderbird's ".sbd"
 * directories and ".msf" summaries are understood, and readpst -r's
 * "Folder/mbox" files name their directory's folder; a file named
 * "inbox" in any case is INBOX).  Names are UTF-8 on disk and go on the
 * wire as modified UTF-7.
 *
 * Format, per file: mboxcl2 when every message has a Content-Length that
 * lands exactly on the next From_ line or the end of the file (then
 * bodies are taken as they are); else mboxrd: a message ends at the next
 * line that is a well-formed From_ line ("From " addr asctime-date), the
 * blank line before it belongs to the separator, and ">From " lines lose
 * one ">".  Flags from Status:/X-Status:/X-Keywords:; INTERNALDATE from
 * the From_ line's date (the file's mtime when it has none).
 *
 * UIDs: the message's ordinal in the file; UIDVALIDITY a hash of the
 * file's inode and its first message's length, so an mbox that is only
 * appended to keeps its UIDs (a delta pass copies the new tail), and a
 * rewritten one gets a new UIDVALIDITY (the engine then matches by
 * content and copies nothing twice).
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "mutf7.h"
#include "archive_p.h"

#define MAX_DEPTH	8

int
arc_mbox_from_line(const char *line, size_t n, time_t *when)
{
	char buf[256], *p;
	struct tm tm;

	if (n < 5 || memcmp(line, "From ", 5) != 0 || n >= sizeof(buf))
		return (0);
	memcpy(buf, line, n);
	buf[n] = '\0';
	if (memchr(buf, '\0', n) != NULL)
		return (0);
	p = buf + 5;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return (0);
	p += strcspn(p, " ");		/* the envelope sender */
	while (*p == ' ')
		p++;
	memset(&tm, 0, sizeof(tm));
	if (strptime(p, "%a %b %d %H:%M:%S %Y", &tm) == NULL)
		return (0);
	if (when != NULL)
		*when = timegm(&tm);
	return (1);
}

/* next_line - offset just after the LF ending the line at p, or n */
static size_t
next_line(const char *b, size_t p, size_t n)
{
	const char *e = memchr(b + p, '\n', n - p);

	return (e ? (size_t)(e - b) + 1 : n);
}

/* header_end - offset of the body (after the blank line), or n */
static size_t
hdr_end(const char *b, size_t n)
{
	size_t p = 0;

	while (p < n) {
		if (b[p] == '\n' || (b[p] == '\r' && p + 1 < n &&
		    b[p + 1] == '\n'))
			return (next_line(b, p, n));
		p = next_line(b, p, n);
	}
	return (n);
}

/* value of header field name in the header b[0..h), or NULL */
static const char *
hdr_find(const char *b, size_t h, const char *name, size_t *vlen)
{
	size_t p = 0, nl = strlen(name);

	while (p < h) {
		size_t e = next_line(b, p, h);

		if (e - p > nl + 1 && strncasecmp(b + p, name, nl) == 0 &&
		    b[p + nl] == ':') {
			size_t v = p + nl + 1;

			while (v < e && (b[v] == ' ' || b[v] == '\t'))
				v++;
			*vlen = e - v;
			while (*vlen > 0 && (b[v + *vlen - 1] == '\n' ||
			    b[v + *vlen - 1] == '\r'))
				(*vlen)--;
			return (b + v);
		}
		p = e;
	}
	return (NULL);
}

/* sep_trim - the message's length without the separator's blank line
 * (LF or CRLF) before a From_ line or the end of the file */
static size_t
sep_trim(const char *b, size_t p)
{
	if (p >= 2 && b[p - 1] == '\n' && b[p - 2] == '\n')
		return (p - 1);
	if (p >= 4 && memcmp(b + p - 4, "\r\n\r\n", 4) == 0)
		return (p - 2);
	return (p);
}

int
arc_mbox_split(const char *buf, size_t n, int cl2, size_t *len,
    size_t *next)
{
	size_t p;

	if (cl2) {
		size_t h = hdr_end(buf, n), vl, e;
		const char *v = hdr_find(buf, h, "Content-Length", &vl);
		char num[24], *end;
		unsigned long long cl;

		if (v == NULL || vl == 0 || vl >= sizeof(num))
			return (-1);
		memcpy(num, v, vl);
		num[vl] = '\0';
		cl = strtoull(num, &end, 10);
		if (*end != '\0' || cl > n - h)
			return (-1);
		e = h + (size_t)cl;
		*len = e;
		if (e == n) {
			*next = n;
			return (0);
		}
		if (buf[e] == '\n')
			e++;
		if (e == n || (n - e >= 5 && memcmp(buf + e, "From ", 5) ==
		    0)) {
			*next = e;
			return (0);
		}
		return (-1);
	}
	for (p = next_line(buf, 0, n); p < n; p = next_line(buf, p, n)) {
		size_t e = next_line(buf, p, n);

		if (buf[p] == 'F' && arc_mbox_from_line(buf + p, e - p -
		    (buf[e - 1] == '\n'), NULL)) {
			*next = p;
			*len = sep_trim(buf, p);
			return (0);
		}
	}
	*next = n;
	*len = sep_trim(buf, n);
	return (0);
}

static int
name_cmp(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/* walk - add every mbox file below dir; rel is the folder name so far */
static int
walk(struct arc_store *st, const char *dir, const char *rel, int depth,
    char *err, size_t errlen)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL, **nn;
	size_t n = 0, i;
	int rc = 0;

	if (depth > MAX_DEPTH) {
		log_warnx("mbox %s: deeper than %d levels; not read", dir,
		    MAX_DEPTH);
		return (0);
	}
	if ((d = opendir(dir)) == NULL) {
		errbuf_set(err, errlen, "cannot read %s: %s", dir,
		    strerror(errno));
		return (-1);
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((nn = realloc(names, (n + 1) * sizeof(*nn))) == NULL ||
		    (nn[n] = strdup(de->d_name)) == NULL) {
			if (nn != NULL)
				names = nn;
			rc = -1;
			errbuf_set(err, errlen, "out of memory");
			break;
		}
		names = nn;
		n++;
	}
	closedir(d);
	if (rc == 0 && n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; rc == 0 && i < n; i++) {
		char path[1200], fname[1024], *wire, e[200];
		struct stat sb;
		size_t l = strlen(names[i]);

		arc_path(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &sb) == -1)
			continue;
		if (l > 4 && (strcmp(names[i] + l - 4, ".msf") == 0 ||
		    strcmp(names[i] + l - 5, ".lock") == 0))
			continue;
		if (S_ISDIR(sb.st_mode)) {
			if (l > 4 && strcmp(names[i] + l - 4, ".sbd") == 0)
				names[i][l - 4] = '\0';
			arc_path(fname, sizeof(fname), "%s%s%s", rel,
			    *rel ? "/" : "", names[i]);
			rc = walk(st, path, fname, depth + 1, err, errlen);
			continue;
		}
		if (!S_ISREG(sb.st_mode))
			continue;
		if (*rel && strcmp(names[i], "mbox") == 0)
			/* readpst -r: DIR/Folder/mbox is folder "Folder" */
			arc_path(fname, sizeof(fname), "%s", rel);
		else
			arc_path(fname, sizeof(fname), "%s%s%s", rel,
			    *rel ? "/" : "", names[i]);
		if (strcasecmp(fname, "inbox") == 0)
			wire = strdup("INBOX");
		else if ((wire = mutf7_encode_dup(fname, e, sizeof(e))) ==
		    NULL) {
			log_warnx("mbox %s: name is not UTF-8 (%s); not read",
			    path, e);
			continue;
		}
		if (wire == NULL || arc_add_folder(st, wire, path) == -1) {
			free(wire);
			errbuf_set(err, errlen, "out of memory");
			rc = -1;
			break;
		}
		free(wire);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return (rc);
}

int
arc_mbox_list(struct arc_store *st, char *err, size_t errlen)
{
	struct stat sb;

	if (stat(st->root, &sb) == -1) {
		errbuf_set(err, errlen, "cannot read mbox %s: %s", st->root,
		    strerror(errno));
		return (-1);
	}
	if (S_ISREG(sb.st_mode))
		return (arc_add_folder(st, "INBOX", st->root) == -1 ?
		    (errbuf_set(err, errlen, "out of memory"), -1) : 0);
	if (!S_ISDIR(sb.st_mode)) {
		errbuf_set(err, errlen, "mbox %s is neither a file nor a "
		    "directory", st->root);
		return (-1);
	}
	return (walk(st, st->root, "", 0, err, errlen));
}

/* flags and keywords of one message from its header */
static void
msg_flags(struct arc_folder *f, const char *b, size_t h, struct arc_msg *m)
{
	const char *v;
	size_t vl, i;

	if ((v = hdr_find(b, h, "Status", &vl)) != NULL)
		for (i = 0; i < vl; i++)
			if (v[i] == 'R')
				m->flags |= ARC_SEEN;
	if ((v = hdr_find(b, h, "X-Status", &vl)) != NULL)
		for (i = 0; i < vl; i++)
			switch (v[i]) {
			case 'A': m->flags |= ARC_ANSWERED; break;
			case 'F': m->flags |= ARC_FLAGGED; break;
			case 'T': m->flags |= ARC_DRAFT; break;
			case 'D': m->flags |= ARC_DELETED; break;
			}
	if ((v = hdr_find(b, h, "X-Keywords", &vl)) != NULL) {
		char kw[1024], *w, *save = NULL;
		int k;

		snprintf(kw, sizeof(kw), "%.*s", (int)vl, v);
		for (w = strtok_r(kw, " ,\t", &save); w != NULL;
		    w = strtok_r(NULL, " ,\t", &save)) {
			if (!arc_keyword_ok(w)) {
				log_warnx("mbox %s: keyword \"%.60s\" is "
				    "not an IMAP flag; not copied", f->path, w);
				continue;
			}
			for (k = 0; k < ARC_MAX_KW; k++)
				if (f->kw[k] == NULL || strcmp(f->kw[k],
				    w) == 0)
					break;
			if (k == ARC_MAX_KW) {
				log_warnx("mbox %s: more than %d keywords; "
				    "\"%.60s\" not copied", f->path,
				    ARC_MAX_KW, w);
				continue;
			}
			if (f->kw[k] == NULL && (f->kw[k] = strdup(w)) == NULL)
				continue;
			m->kw |= 1u << k;
		}
	}
}

/* index - split the mapped file; cl2 first, mboxrd when it does not fit */
static int
index_file(struct arc_folder *f, const char *b, size_t n, time_t mtime,
    int cl2)
{
	size_t p = 0;

	while (p < n) {
		struct arc_msg m;
		size_t fe = next_line(b, p, n), len, nx;
		time_t when = 0;

		if (!arc_mbox_from_line(b + p, fe - p - (b[fe - 1] == '\n'),
		    &when)) {
			if (cl2)
				return (1);
			errbuf_set(f->bad, sizeof(f->bad), "%s: no From_ line "
			    "at offset %zu: not an mbox file, or damaged",
			    f->path, p);
			return (-1);
		}
		if (arc_mbox_split(b + fe, n - fe, cl2, &len, &nx) == -1)
			return (1);
		memset(&m, 0, sizeof(m));
		m.uid = (uint32_t)f->n + 1;
		m.idate = when ? when : mtime;
		m.off = fe;
		m.len = len;
		m.size = len;
		msg_flags(f, b + fe, hdr_end(b + fe, len), &m);
		if (arc_push_msg(f, &m) == -1) {
			errbuf_set(f->bad, sizeof(f->bad), "out of memory");
			return (-1);
		}
		p = fe + nx;
	}
	return (0);
}

int
arc_mbox_load(struct arc_store *st, struct arc_folder *f)
{
	struct stat sb;
	char *b = NULL;
	int fd, rc;
	uint64_t h;

	(void)st;
	arc_folder_clear(f);
	f->bad[0] = '\0';
	if ((fd = open(f->path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &sb) == -1) {
		errbuf_set(f->bad, sizeof(f->bad), "cannot read %s: %s",
		    f->path, strerror(errno));
		if (fd != -1)
			close(fd);
		return (-1);
	}
	if (sb.st_size > 0 && (b = mmap(NULL, (size_t)sb.st_size, PROT_READ,
	    MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
		errbuf_set(f->bad, sizeof(f->bad), "cannot map %s: %s",
		    f->path, strerror(errno));
		close(fd);
		return (-1);
	}
	close(fd);
	rc = b ? index_file(f, b, (size_t)sb.st_size, sb.st_mtime, 1) : 0;
	f->unescape = 0;
	if (rc == 1) {
		arc_folder_clear(f);
		f->unescape = 1;
		rc = index_file(f, b, (size_t)sb.st_size, sb.st_mtime, 0);
	}
	h = arc_hash((const char *)&sb.st_ino, sizeof(sb.st_ino));
	if (f->n > 0)
		h ^= arc_hash((const char *)&f->v[0].len, sizeof(f->v[0].len));
	f->uidvalidity = (uint32_t)(h ^ (h >> 32));
	if (f->uidvalidity == 0)
		f->uidvalidity = 1;
	f->uidnext = (uint32_t)f->n + 1;
	if (b != NULL)
		munmap(b, (size_t)sb.st_size);
	if (rc == 0)
		f->loaded = 1;
	return (rc == 0 ? 0 : -1);
}

int
arc_mbox_open(struct arc_folder *f, const struct arc_msg *m,
    struct arc_reader *rd, char *err, size_t errlen)
{
	rd->fd = -1;
	if ((rd->fd = open(f->path, O_RDONLY | O_CLOEXEC)) == -1) {
		errbuf_set(err, errlen, "%s", strerror(errno));
		return (-1);
	}
	rd->off = m->off;
	rd->len = m->len;
	rd->unescape = f->unescape;
	return (0);
}
