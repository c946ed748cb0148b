/*
 * test_archive.c - the archive readers behind maildir:// and mbox://
 * sources: the maildir info suffix parser, From_ line recognition, the
 * mbox splitter (mboxrd and mboxcl2), an mbox file indexed and read back
 * unescaped, a big message streamed in chunks against a line-by-line
 * reference, and maildir UIDs that stay put when a file's flags change.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "archive_p.h"

static void
test_maildir_info(void **state)
{
	unsigned fl;
	uint32_t kw;

	(void)state;
	assert_int_equal(arc_maildir_info("123.M1P2.host,S=10:2,FRS", &fl,
	    &kw), 0);
	assert_int_equal(fl, ARC_FLAGGED | ARC_ANSWERED | ARC_SEEN);
	assert_int_equal(kw, 0);
	assert_int_equal(arc_maildir_info("1.x:2,DPTac", &fl, &kw), 0);
	assert_int_equal(fl, ARC_DRAFT | ARC_FORWARDED | ARC_DELETED);
	assert_int_equal(kw, 0x5);
	/* new/ files have no info: no flags */
	assert_int_equal(arc_maildir_info("1.x.host", &fl, &kw), 0);
	assert_int_equal(fl, 0);
	assert_int_equal(arc_maildir_info("1.x:2,", &fl, &kw), 0);
	assert_int_equal(fl, 0);
	/* an experimental ":1," info or junk after the flags: refused */
	assert_int_equal(arc_maildir_info("1.x:1,foo", &fl, &kw), -1);
	assert_int_equal(arc_maildir_info("1.x:2,S,xyz", &fl, &kw), -1);
	assert_int_equal(arc_maildir_info("1.x:2,zz", &fl, &kw), 0);
	assert_int_equal(kw, 1u << 25);
}

static void
test_from_line(void **state)
{
	time_t t = 0;
	const char *l;

	(void)state;
	l = "From a@b.example Mon Mar  2 10:00:00 2020";
	assert_int_equal(arc_mbox_from_line(l, strlen(l), &t), 1);
	assert_int_equal((long long)t, 1583143200LL);
	l = "From MAILER-DAEMON Thu Jan  1 00:00:00 1970 +0000";
	assert_int_equal(arc_mbox_from_line(l, strlen(l), &t), 1);
	assert_int_equal((long long)t, 0);
	/* body text that begins with "From " is no separator */
	l = "From the start of a line";
	assert_int_equal(arc_mbox_from_line(l, strlen(l), NULL), 0);
	l = "From ";
	assert_int_equal(arc_mbox_from_line(l, strlen(l), NULL), 0);
	l = ">From a@b Mon Mar  2 10:00:00 2020";
	assert_int_equal(arc_mbox_from_line(l, strlen(l), NULL), 0);
	/* a NUL inside is refused, not read past */
	assert_int_equal(arc_mbox_from_line("From a\0 Mon Mar  2 10:00:00 2020",
	    32, NULL), 0);
}

static void
test_split_rd(void **state)
{
	const char *b = "Subject: a\n\nFrom the body\nbye\n\n"
	    "From x@y Mon Mar  2 10:00:00 2020\nSubject: b\n";
	size_t len, next;

	(void)state;
	assert_int_equal(arc_mbox_split(b, strlen(b), 0, &len, &next), 0);
	/* the blank line before the From_ line is the separator's */
	assert_int_equal(len, strlen("Subject: a\n\nFrom the body\nbye\n"));
	assert_int_equal(next, strlen("Subject: a\n\nFrom the body\nbye\n\n"));
	/* the last message: up to the end, less the final blank line */
	/* CRLF files: the separator is "\r\n" */
	b = "Subject: a\r\n\r\nx\r\n\r\nFrom x@y Mon Mar  2 10:00:00 2020\r\n";
	assert_int_equal(arc_mbox_split(b, strlen(b), 0, &len, &next), 0);
	assert_int_equal(len, strlen("Subject: a\r\n\r\nx\r\n"));
	assert_int_equal(next, len + 2);
	b = "Subject: c\n\nend\n\n";
	assert_int_equal(arc_mbox_split(b, strlen(b), 0, &len, &next), 0);
	assert_int_equal(len, strlen(b) - 1);
	assert_int_equal(next, strlen(b));
}

static void
test_split_cl2(void **state)
{
	const char *b = "Content-Length: 21\n\nFrom inside the body\n\n"
	    "From x@y Mon Mar  2 10:00:00 2020\n";
	const char *bad = "Content-Length: 5\n\nFrom inside the body\n";
	const char *huge = "Content-Length: 99999999999\n\nx\n";
	size_t len, next;

	(void)state;
	assert_int_equal(arc_mbox_split(b, strlen(b), 1, &len, &next), 0);
	assert_int_equal(len, strlen("Content-Length: 21\n\n") + 21);
	assert_int_equal(next, len + 1);
	/* a Content-Length that does not land on a From_ line: no cl2 */
	assert_int_equal(arc_mbox_split(bad, strlen(bad), 1, &len, &next), -1);
	assert_int_equal(arc_mbox_split(huge, strlen(huge), 1, &len, &next),
	    -1);
	assert_int_equal(arc_mbox_split("Subject: x\n\ny\n", 14, 1, &len,
	    &next), -1);
}

static char dir[64];

static void
writef(const char *path, const char *s)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(s, fp);
	fclose(fp);
}

struct grow {
	char	*b;
	size_t	 n;
};

static int
grow_sink(void *arg, const char *p, size_t n)
{
	struct grow *g = arg;

	g->b = realloc(g->b, g->n + n + 1);
	assert_non_null(g->b);
	memcpy(g->b + g->n, p, n);
	g->n += n;
	return (0);
}

/* served - everything arc_serve gives for an open reader (rc: the open's) */
static char *
served(int rc, struct arc_reader *rd, size_t *n)
{
	struct grow g = { NULL, 0 };
	char err[256];

	assert_int_equal(rc, 0);
	assert_int_equal(arc_serve(rd, grow_sink, &g, err, sizeof(err)), 0);
	arc_reader_close(rd);
	*n = g.n;
	return (g.b != NULL ? g.b : calloc(1, 1));
}

/* ref_serve - what arc_serve must give: line by line, one '>' off
 * ">...From ", then bare LF made CRLF */
static char *
ref_serve(const char *in, size_t n, size_t *outn)
{
	char *u = malloc(n + 1), *o = malloc(2 * n + 1);
	size_t i = 0, k = 0, j, q = 0;

	assert_non_null(u);
	assert_non_null(o);
	while (i < n) {
		const char *e = memchr(in + i, '\n', n - i);
		size_t end = e ? (size_t)(e - in) + 1 : n, g = i;

		while (g < end && in[g] == '>')
			g++;
		if (g > i && end - g >= 5 && memcmp(in + g, "From ", 5) == 0)
			i++;
		memcpy(u + k, in + i, end - i);
		k += end - i;
		i = end;
	}
	for (j = 0; j < k; j++) {
		if (u[j] == '\n' && (j == 0 || u[j - 1] != '\r'))
			o[q++] = '\r';
		o[q++] = u[j];
	}
	free(u);
	*outn = q;
	return (o);
}

/* a big message streamed in chunks: escapes across chunk boundaries */
static void
test_serve_chunks(void **state)
{
	static const char *const pieces[] = { ">From x\n", ">>From y\n",
	    ">Fro\n", "From z\n", "plain line\n", "\n", ">\n", ">>>",
	    "From ", "a\r\n", ">From", " \n", "x" };
	char path[128], *in, *got, *want;
	size_t n = 0, cap = 300000, gn, wn, i;
	struct arc_reader rd;
	unsigned seed = 7;
	FILE *fp;

	(void)state;
	snprintf(path, sizeof(path), "%s/big", dir);
	in = malloc(cap + 16);
	assert_non_null(in);
	while (n < cap) {
		const char *p;

		seed = seed * 1103515245u + 12345u;
		p = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(*pieces))];
		memcpy(in + n, p, strlen(p));
		n += strlen(p);
	}
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(in, 1, n, fp), n);
	fclose(fp);
	/* every start and length near the chunk size */
	for (i = 0; i < 4; i++) {
		size_t off = i * 3, len = n - off - i * 65531 % 7;

		rd.fd = open(path, O_RDONLY);
		rd.off = off;
		rd.len = len;
		rd.unescape = 1;
		got = served(rd.fd == -1 ? -1 : 0, &rd, &gn);
		want = ref_serve(in + off, len, &wn);
		assert_int_equal(gn, wn);
		assert_memory_equal(got, want, wn);
		free(got);
		free(want);
	}
	free(in);
	unlink(path);
}

static void
test_mbox_file(void **state)
{
	struct arc_store st;
	struct arc_folder f;
	char path[128], *b, err[256];
	struct arc_reader rd;
	size_t n;

	(void)state;
	snprintf(path, sizeof(path), "%s/inbox", dir);
	writef(path, "From a@b Mon Mar  2 10:00:00 2020\n"
	    "Status: RO\nX-Status: F\nX-Keywords: Projekt bad\"kw\n\n"
	    ">From escaped\n>>From twice\nbye\n\n"
	    "From a@b Mon Mar  2 10:01:00 2020\nSubject: 2\n\nx\n\n");
	memset(&st, 0, sizeof(st));
	memset(&f, 0, sizeof(f));
	st.kind = ARCHIVE_MBOX;
	f.path = path;
	assert_int_equal(arc_mbox_load(&st, &f), 0);
	assert_int_equal(f.n, 2);
	assert_int_equal(f.unescape, 1);
	assert_int_equal(f.v[0].uid, 1);
	assert_int_equal(f.v[1].uid, 2);
	assert_int_equal(f.uidnext, 3);
	assert_int_equal(f.v[0].flags, ARC_SEEN | ARC_FLAGGED);
	assert_int_equal(f.v[0].kw, 1);
	assert_string_equal(f.kw[0], "Projekt");
	assert_null(f.kw[1]);
	assert_int_equal((long long)f.v[1].idate, 1583143260LL);
	b = served(arc_mbox_open(&f, &f.v[0], &rd, err, sizeof(err)), &rd,
	    &n);
	assert_int_equal(n, strlen("Status: RO\r\nX-Status: F\r\nX-Keywords: "
	    "Projekt bad\"kw\r\n\r\nFrom escaped\r\n>From twice\r\nbye\r\n"));
	assert_memory_equal(b + n - 34,
	    "\r\nFrom escaped\r\n>From twice\r\nbye\r\n", 34);
	free(b);
	arc_folder_clear(&f);

	/* not an mbox: refused with the reason */
	writef(path, "hello\n");
	assert_int_equal(arc_mbox_load(&st, &f), -1);
	assert_non_null(strstr(f.bad, "no From_ line"));
	arc_folder_clear(&f);
	unlink(path);
}

static void
test_maildir_uids(void **state)
{
	struct arc_store st;
	char p[2200], q[2200];
	uint32_t uv;

	(void)state;
	memset(&st, 0, sizeof(st));
	st.kind = ARCHIVE_MAILDIR;
	snprintf(st.root, sizeof(st.root), "%s/md", dir);
	snprintf(st.uiddir, sizeof(st.uiddir), "%s/uids", dir);
	mkdir(st.root, 0700);
	snprintf(p, sizeof(p), "%s/cur", st.root);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/new", st.root);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/cur/100.a.h:2,S", st.root);
	writef(p, "Subject: a\n\nx\n");
	snprintf(p, sizeof(p), "%s/new/200.b.h", st.root);
	writef(p, "Subject: b\n\ny\n");
	assert_int_equal(arc_maildir_list(&st, q, sizeof(q)), 0);
	assert_int_equal(st.nf, 1);
	assert_int_equal(arc_maildir_load(&st, &st.f[0]), 0);
	assert_int_equal(st.f[0].n, 2);
	uv = st.f[0].uidvalidity;
	/* the flag change moves the file: same UID, no new one */
	snprintf(q, sizeof(q), "%s/cur/200.b.h:2,FS", st.root);
	assert_int_equal(rename(p, q), 0);
	snprintf(p, sizeof(p), "%s/cur/300.c.h:2,", st.root);
	writef(p, "Subject: c\n\nz\n");
	assert_int_equal(arc_maildir_load(&st, &st.f[0]), 0);
	assert_int_equal(st.f[0].n, 3);
	assert_int_equal(st.f[0].uidvalidity, uv);
	assert_int_equal(st.f[0].uidnext, 4);
	assert_string_equal(st.f[0].v[1].file, "cur/200.b.h:2,FS");
	assert_int_equal(st.f[0].v[1].uid, 2);
	assert_int_equal(st.f[0].v[1].flags, ARC_FLAGGED | ARC_SEEN);
	assert_int_equal(st.f[0].v[2].uid, 3);
	/* renamed after the scan: still read, by its base name */
	snprintf(q, sizeof(q), "%s/cur/200.b.h:2,FRS", st.root);
	snprintf(p, sizeof(p), "%s/cur/200.b.h:2,FS", st.root);
	assert_int_equal(rename(p, q), 0);
	{
		char *b, e[200];
		size_t n;

		struct arc_reader rd;

		b = served(arc_maildir_open(&st.f[0], &st.f[0].v[1], &rd, e,
		    sizeof(e)), &rd, &n);
		assert_int_equal(n, 17);
		assert_memory_equal(b, "Subject: b\r\n\r\ny\r\n", 17);
		free(b);
	}
	arc_folder_clear(&st.f[0]);
	free(st.f[0].name);
	free(st.f[0].path);
	free(st.f);
	/* not a maildir: a clear error */
	snprintf(st.root, sizeof(st.root), "%s/nothing", dir);
	st.f = NULL;
	st.nf = 0;
	assert_int_equal(arc_maildir_list(&st, q, sizeof(q)), -1);
	assert_non_null(strstr(q, "not a maildir"));
	snprintf(p, sizeof(p), "rm -rf '%s/md' '%s/uids'", dir, dir);
	assert_int_equal(system(p), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maildir_info),
		cmocka_unit_test(test_from_line),
		cmocka_unit_test(test_split_rd),
		cmocka_unit_test(test_split_cl2),
		cmocka_unit_test(test_mbox_file),
		cmocka_unit_test(test_serve_chunks),
		cmocka_unit_test(test_maildir_uids),
	};
	int rc;

	snprintf(dir, sizeof(dir), "/tmp/test_archive.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return (1);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return (rc);
}
