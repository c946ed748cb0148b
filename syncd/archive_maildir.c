/*
 * archive_maildir.c - a Maildir++ tree as archive folders: the root's
 * cur/ and new/ are INBOX, each ".A.B" directory with a cur/ is folder
 * "A/B" (names are modified UTF-7 on disk already, as on the wire).
 * Flags come from the info suffix ":2,DFPRST" plus Dovecot's keyword
 * letters a-z named by the folder's dovecot-keywords file; INTERNALDATE
 * is the file's mtime (what Dovecot uses too).
 *
 * UIDs: a message is known by its base name (the file name without the
 * ":2,..." info, which changes with its flags).  Each folder's base name
 * -> UID list lives in uiddir/<hash of the folder name>.uids with the
 * UIDVALIDITY fixed when the folder was first read; files seen for the
 * first time get the next UIDs in (mtime, name) order.  The list only
 * grows, so a UID is never given to another message.  Two sessions on
 * one archive serialise through flock() on a .lock file beside it.
 */
#include "config.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "archive_p.h"

int
arc_maildir_info(const char *name, unsigned *flags, uint32_t *kw)
{
	const char *p = strstr(name, ":2,");

	*flags = 0;
	*kw = 0;
	if (p == NULL)
		return (strchr(name, ':') != NULL ? -1 : 0);
	for (p += 3; *p; p++) {
		switch (*p) {
		case 'D': *flags |= ARC_DRAFT; break;
		case 'F': *flags |= ARC_FLAGGED; break;
		case 'P': *flags |= ARC_FORWARDED; break;
		case 'R': *flags |= ARC_ANSWERED; break;
		case 'S': *flags |= ARC_SEEN; break;
		case 'T': *flags |= ARC_DELETED; break;
		default:
			if (*p >= 'a' && *p <= 'z')
				*kw |= 1u << (*p - 'a');
			else if (*p == ',' || *p == ':')
				return (-1);	/* not an info we know */
			break;
		}
	}
	return (0);
}

static int
is_maildir(const char *dir)
{
	char p[1200];
	struct stat sb;

	arc_path(p, sizeof(p), "%s/cur", dir);
	return (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode));
}

static int
name_cmp(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

int
arc_maildir_list(struct arc_store *st, char *err, size_t errlen)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL, **nn, path[1200];
	size_t n = 0, i;
	int rc = -1;

	if (!is_maildir(st->root)) {
		errbuf_set(err, errlen, "%s is not a maildir (no cur/ "
		    "directory): %s", st->root, strerror(errno));
		return (-1);
	}
	if ((d = opendir(st->root)) == NULL) {
		errbuf_set(err, errlen, "cannot read %s: %s", st->root,
		    strerror(errno));
		return (-1);
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 || de->d_name[1] == '.')
			continue;
		arc_path(path, sizeof(path), "%s/%s", st->root, de->d_name);
		if (!is_maildir(path))
			continue;
		if ((nn = realloc(names, (n + 1) * sizeof(*nn))) == NULL ||
		    (nn[n] = strdup(de->d_name + 1)) == NULL) {
			if (nn != NULL)
				names = nn;
			errbuf_set(err, errlen, "out of memory");
			goto out;
		}
		names = nn;
		n++;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	if (arc_add_folder(st, "INBOX", st->root) == -1) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		char *wire, *p;

		arc_path(path, sizeof(path), "%s/.%s", st->root, names[i]);
		if ((wire = strdup(names[i])) == NULL) {
			errbuf_set(err, errlen, "out of memory");
			goto out;
		}
		for (p = wire; *p; p++)
			if (*p == '.')
				*p = '/';
		if (strcasecmp(wire, "INBOX") == 0) {
			log_warnx("maildir %s: folder .%s shadows INBOX; "
			    "not read", st->root, names[i]);
			free(wire);
			continue;
		}
		if (arc_add_folder(st, wire, path) == -1) {
			free(wire);
			errbuf_set(err, errlen, "out of memory");
			goto out;
		}
		free(wire);
	}
	rc = 0;
out:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return (rc);
}

/* dovecot-keywords: "N name" lines, N the letter 'a' + N */
static void
load_keywords(struct arc_folder *f)
{
	char p[1200], line[512];
	FILE *fp;

	arc_path(p, sizeof(p), "%s/dovecot-keywords", f->path);
	if ((fp = fopen(p, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *end, *name;
		long idx = strtol(line, &end, 10);

		line[strcspn(line, "\r\n")] = '\0';
		if (end == line || *end != ' ' || idx < 0 || idx >= ARC_MAX_KW)
			continue;
		name = end + 1;
		if (!arc_keyword_ok(name)) {
			log_warnx("maildir %s: keyword \"%.60s\" is not an "
			    "IMAP flag; not copied", f->path, name);
			continue;
		}
		free(f->kw[idx]);
		f->kw[idx] = strdup(name);
	}
	fclose(fp);
}

struct ent {
	char		*base;
	uint32_t	 uid;
};

static int
ent_cmp(const void *a, const void *b)
{
	return (strcmp(((const struct ent *)a)->base,
	    ((const struct ent *)b)->base));
}

static int
msg_new_cmp(const void *a, const void *b)
{
	const struct arc_msg *x = a, *y = b;

	if (x->uid != y->uid)
		return (x->uid < y->uid ? -1 : 1);
	if (x->idate != y->idate)
		return (x->idate < y->idate ? -1 : 1);
	return (strcmp(x->file, y->file));
}

static int
mkdirs(const char *path)
{
	char p[1200], *s;

	arc_path(p, sizeof(p), "%s", path);
	for (s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			if (mkdir(p, 0700) == -1 && errno != EEXIST)
				return (-1);
			*s = '/';
		}
	return (mkdir(p, 0700) == -1 && errno != EEXIST ? -1 : 0);
}

/* base name of a maildir file: without the ":2,..." info */
static size_t
base_len(const char *name)
{
	const char *c = strchr(name, ':');

	return (c ? (size_t)(c - name) : strlen(name));
}

/* scan_dir - every message file of f's cur/ or new/ */
static int
scan_dir(struct arc_folder *f, const char *sub)
{
	char p[1200], fp[1400];
	DIR *d;
	struct dirent *de;
	struct stat sb;

	arc_path(p, sizeof(p), "%s/%s", f->path, sub);
	if ((d = opendir(p)) == NULL) {
		if (errno == ENOENT && strcmp(sub, "new") == 0)
			return (0);
		errbuf_set(f->bad, sizeof(f->bad), "cannot read %s: %s", p,
		    strerror(errno));
		return (-1);
	}
	while ((de = readdir(d)) != NULL) {
		struct arc_msg m;

		if (de->d_name[0] == '.')
			continue;
		if (strchr(de->d_name, '\n') != NULL ||
		    strchr(de->d_name, '\r') != NULL) {
			log_warnx("maildir %s/%s: file name with a line "
			    "break; not copied", p, "?");
			continue;
		}
		arc_path(fp, sizeof(fp), "%s/%s", p, de->d_name);
		if (stat(fp, &sb) == -1 || !S_ISREG(sb.st_mode))
			continue;
		memset(&m, 0, sizeof(m));
		if (arc_maildir_info(de->d_name, &m.flags, &m.kw) == -1)
			log_warnx("maildir %s: unknown info suffix; copied "
			    "without flags", fp);
		m.idate = sb.st_mtime;
		m.size = (uint64_t)sb.st_size;
		if ((m.file = malloc(strlen(sub) + strlen(de->d_name) + 2)) ==
		    NULL || arc_push_msg(f, &m) == -1) {
			free(m.file);
			closedir(d);
			errbuf_set(f->bad, sizeof(f->bad), "out of memory");
			return (-1);
		}
		sprintf(m.file, "%s/%s", sub, de->d_name);
	}
	closedir(d);
	return (0);
}

/*
 * assign_uids - give every message its UID from the folder's list,
 * append the new ones.  The caller holds the lock.
 */
static int
assign_uids(struct arc_store *st, struct arc_folder *f, const char *lpath)
{
	struct ent *e = NULL, *ne, key, *hit;
	size_t ne_n = 0, i, fresh = 0;
	uint32_t uv = 0, next = 1;
	char line[1200], tmp[1300];
	FILE *fp;

	if ((fp = fopen(lpath, "r")) != NULL) {
		if (fgets(line, sizeof(line), fp) == NULL ||
		    sscanf(line, "V %" SCNu32 " %" SCNu32, &uv, &next) != 2 ||
		    uv == 0 || next == 0) {
			fclose(fp);
			errbuf_set(f->bad, sizeof(f->bad), "UID list %s is "
			    "damaged (remove it: the folder then gets a new "
			    "UIDVALIDITY and is matched by content)", lpath);
			return (-1);
		}
		while (fgets(line, sizeof(line), fp) != NULL) {
			char *sp;
			unsigned long u = strtoul(line, &sp, 10);

			line[strcspn(line, "\n")] = '\0';
			if (*sp != ' ' || u == 0 || u >= next)
				continue;
			if ((ne = realloc(e, (ne_n + 1) * sizeof(*e))) ==
			    NULL || (ne[ne_n].base = strdup(sp + 1)) == NULL) {
				if (ne != NULL)
					e = ne;
				fclose(fp);
				goto oom;
			}
			e = ne;
			e[ne_n++].uid = (uint32_t)u;
		}
		fclose(fp);
	} else if (errno != ENOENT) {
		errbuf_set(f->bad, sizeof(f->bad), "cannot read %s: %s", lpath,
		    strerror(errno));
		return (-1);
	} else {
		uv = (uint32_t)time(NULL);
		if (uv == 0)
			uv = 1;
	}
	if (ne_n > 1)
		qsort(e, ne_n, sizeof(*e), ent_cmp);
	for (i = 0; i < f->n; i++) {
		char *name = strchr(f->v[i].file, '/') + 1;
		char save;
		size_t bl = base_len(name);

		save = name[bl];
		name[bl] = '\0';
		key.base = name;
		hit = ne_n ? bsearch(&key, e, ne_n, sizeof(*e), ent_cmp) :
		    NULL;
		name[bl] = save;
		f->v[i].uid = hit ? hit->uid : UINT32_MAX;
		if (hit == NULL)
			fresh++;
	}
	/* known ones by UID, new ones after them by (mtime, name) */
	if (f->n > 1)
		qsort(f->v, f->n, sizeof(*f->v), msg_new_cmp);
	if (fresh > 0) {
		arc_path(tmp, sizeof(tmp), "%s.tmp", lpath);
		if ((fp = fopen(tmp, "w")) == NULL)
			goto wfail;
		for (i = f->n - fresh; i < f->n; i++)
			f->v[i].uid = next++;
		fprintf(fp, "V %" PRIu32 " %" PRIu32 "\n", uv, next);
		for (i = 0; i < ne_n; i++)
			fprintf(fp, "%" PRIu32 " %s\n", e[i].uid, e[i].base);
		for (i = f->n - fresh; i < f->n; i++) {
			const char *name = strchr(f->v[i].file, '/') + 1;

			fprintf(fp, "%" PRIu32 " %.*s\n", f->v[i].uid,
			    (int)base_len(name), name);
		}
		if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
			fclose(fp);
			goto wfail;
		}
		if (fclose(fp) != 0 || rename(tmp, lpath) == -1)
			goto wfail;
	}
	f->uidvalidity = uv;
	f->uidnext = next;
	for (i = 0; i < ne_n; i++)
		free(e[i].base);
	free(e);
	(void)st;
	return (0);
wfail:
	errbuf_set(f->bad, sizeof(f->bad), "cannot write UID list %s: %s",
	    lpath, strerror(errno));
	for (i = 0; i < ne_n; i++)
		free(e[i].base);
	free(e);
	return (-1);
oom:
	for (i = 0; i < ne_n; i++)
		free(e[i].base);
	free(e);
	errbuf_set(f->bad, sizeof(f->bad), "out of memory");
	return (-1);
}

int
arc_maildir_load(struct arc_store *st, struct arc_folder *f)
{
	char lpath[1300], lock[1300];
	int lfd, rc;
	uint64_t h = arc_hash(f->name, strlen(f->name));

	arc_folder_clear(f);
	f->bad[0] = '\0';
	load_keywords(f);
	if (scan_dir(f, "cur") == -1 || scan_dir(f, "new") == -1)
		return (-1);
	if (mkdirs(st->uiddir) == -1) {
		errbuf_set(f->bad, sizeof(f->bad), "cannot create %s: %s",
		    st->uiddir, strerror(errno));
		return (-1);
	}
	arc_path(lpath, sizeof(lpath), "%s/%016" PRIx64 ".uids", st->uiddir,
	    h);
	arc_path(lock, sizeof(lock), "%s/%016" PRIx64 ".lock", st->uiddir, h);
	if ((lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1 ||
	    flock(lfd, LOCK_EX) == -1) {
		errbuf_set(f->bad, sizeof(f->bad), "cannot lock %s: %s", lock,
		    strerror(errno));
		if (lfd != -1)
			close(lfd);
		return (-1);
	}
	rc = assign_uids(st, f, lpath);
	close(lfd);
	if (rc == 0)
		f->loaded = 1;
	return (rc);
}

/* refind - a file renamed since the scan (new/ -> cur/, or its flags
 * changed): the same base name in cur/ or new/; 0 and path set */
static int
refind(struct arc_folder *f, const char *file, char *path, size_t plen)
{
	static const char *const subs[] = { "cur", "new" };
	const char *name = strchr(file, '/') + 1;
	size_t bl = base_len(name), i;
	struct dirent *de;
	char d[1200];
	DIR *dp;

	for (i = 0; i < 2; i++) {
		arc_path(d, sizeof(d), "%s/%s", f->path, subs[i]);
		if ((dp = opendir(d)) == NULL)
			continue;
		while ((de = readdir(dp)) != NULL)
			if (base_len(de->d_name) == bl &&
			    strncmp(de->d_name, name, bl) == 0) {
				int rc = arc_path(path, plen, "%s/%s", d,
				    de->d_name);

				closedir(dp);
				return (rc);
			}
		closedir(dp);
	}
	errno = ENOENT;
	return (-1);
}

int
arc_maildir_open(struct arc_folder *f, const struct arc_msg *m,
    struct arc_reader *rd, char *err, size_t errlen)
{
	char p[1400];
	struct stat sb;
	int fd;

	rd->fd = -1;
	arc_path(p, sizeof(p), "%s/%s", f->path, m->file);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) == -1 && errno == ENOENT &&
	    refind(f, m->file, p, sizeof(p)) == 0)
		fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		errbuf_set(err, errlen, "%s", strerror(errno));
		return (-1);
	}
	if (fstat(fd, &sb) == -1) {
		errbuf_set(err, errlen, "%s", strerror(errno));
		close(fd);
		return (-1);
	}
	rd->fd = fd;
	rd->off = 0;
	rd->len = (uint64_t)sb.st_size;
	rd->unescape = 0;
	return (0);
}
