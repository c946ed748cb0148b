/*
 * test_accounts.c - the accounts file (syncd/accounts.c): every syntax
 * the format allows, secret files and XOAUTH2 token files re-read at
 * each use, the file-permission warning, lookups, and one table of
 * broken files, each of which must fail with "file:line: why" and none
 * of which may leak the password into the message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "accounts.h"

#define PW	"S3cr3tPW"	/* must never appear in an error */

static char tmpdir[] = "/tmp/test_accounts.XXXXXX";

/* write_file - create dir/name with content (len bytes), return path */
static char *
write_file(const char *name, const char *content, size_t len, mode_t mode)
{
	char *path;
	FILE *fp;

	assert_true(asprintf(&path, "%s/%s", tmpdir, name) > 0);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(content, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
	return (path);
}

static int
setup(void **state)
{
	(void)state;
	return (mkdtemp(tmpdir) == NULL ? -1 : 0);
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return (system(cmd) == 0 ? 0 : -1);
}

static void
test_good(void **state)
{
	static const char text[] =
	    "# source              password   destination     password\n"
	    "\n"
	    "   # indented comment\n"
	    "alice@old.example\t" PW "\talice@new.example   pw2\n"
	    "bob  \"pass with  blanks\"  bob@new  \"q\\\"uote\\\\back\"\r\n"
	    "DOMAIN\\carol pa#ss\"word carol@new @pwfile\n"
	    "dave @/ABS/pwfile2 dave@new xoauth2:@token\n"
	    "erin \"@home\" erin@new XOAUTH2:literal-token\n"
	    "j\xc3\xbcrgen \"\" x y\n";
	char *acc, *pwfile, *pwfile2, *token, *content, err[512], buf[256];
	const struct account *a;
	struct accounts *l;
	size_t n;

	(void)state;
	pwfile = write_file("pwfile", "from-file\r\n", 11, 0600);
	pwfile2 = write_file("pwfile2", "second\nignored\n", 15, 0600);
	token = write_file("token", "tok-1\n", 6, 0600);
	/* the absolute path of pwfile2 replaces /ABS/pwfile2 */
	assert_true(asprintf(&content, "%.*s%s%s", (int)(strstr(text,
	    "/ABS/pwfile2") - text), text, pwfile2, strstr(text,
	    "/ABS/pwfile2") + strlen("/ABS/pwfile2")) > 0);
	/* the last line has an empty password: drop it for this test */
	*strstr(content, "j\xc3\xbcrgen") = '\0';
	acc = write_file("accounts", content, strlen(content), 0600);

	assert_int_equal(accounts_load(acc, &l, err, sizeof(err)), 0);
	assert_int_equal(l->count, 5);
	assert_int_equal(l->insecure, 0);
	assert_string_equal(l->path, acc);

	a = &l->items[0];
	assert_string_equal(a->src_user, "alice@old.example");
	assert_string_equal(a->src.value, PW);
	assert_null(a->src.file);
	assert_int_equal(a->src.auth, ACCOUNT_AUTH_PASSWORD);
	assert_string_equal(a->dst_user, "alice@new.example");
	assert_string_equal(a->dst.value, "pw2");
	assert_int_equal(a->line, 4);

	a = &l->items[1];
	assert_string_equal(a->src.value, "pass with  blanks");
	assert_string_equal(a->dst_user, "bob@new");
	assert_string_equal(a->dst.value, "q\"uote\\back");

	a = &l->items[2];
	assert_string_equal(a->src_user, "DOMAIN\\carol");
	assert_string_equal(a->src.value, "pa#ss\"word");
	assert_string_equal(a->dst.value, "from-file");
	assert_string_equal(a->dst.file, pwfile);	/* relative to the file */

	a = &l->items[3];
	assert_string_equal(a->src.value, "second");
	assert_int_equal(a->dst.auth, ACCOUNT_AUTH_XOAUTH2);
	assert_null(a->dst.value);			/* read at each use */
	assert_string_equal(a->dst.file, token);
	assert_int_equal(accounts_secret(&a->dst, buf, sizeof(buf), err,
	    sizeof(err)), 0);
	assert_string_equal(buf, "tok-1");
	free(write_file("token", "tok-2\n", 6, 0600));	/* refreshed */
	assert_int_equal(accounts_secret(&a->dst, buf, sizeof(buf), err,
	    sizeof(err)), 0);
	assert_string_equal(buf, "tok-2");
	assert_int_equal(unlink(token), 0);		/* gone: an error */
	assert_int_equal(accounts_secret(&a->dst, buf, sizeof(buf), err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(accounts_secret(&a->src, buf, sizeof(buf), err,
	    sizeof(err)), 0);
	assert_string_equal(buf, "second");
	assert_int_equal(accounts_secret(&a->src, buf, 4, err, sizeof(err)),
	    -1);

	a = &l->items[4];
	assert_string_equal(a->src.value, "@home");	/* quoted: literal */
	assert_null(a->src.file);
	assert_int_equal(a->dst.auth, ACCOUNT_AUTH_XOAUTH2);
	assert_string_equal(a->dst.value, "literal-token");

	assert_ptr_equal(accounts_find(l, "ALICE@old.EXAMPLE"), &l->items[0]);
	assert_ptr_equal(accounts_find(l, "erin"), &l->items[4]);
	assert_null(accounts_find(l, "alice"));
	assert_null(accounts_find(NULL, "alice"));

	accounts_free(&l);
	assert_null(l);
	accounts_free(&l);				/* NULL-safe */
	accounts_free(NULL);

	/* Readable by others: loaded, flagged. */
	free(write_file("token", "tok-3\n", 6, 0600));
	assert_int_equal(chmod(acc, 0644), 0);
	assert_int_equal(accounts_load(acc, &l, err, sizeof(err)), 0);
	assert_int_equal(l->insecure, 1);
	accounts_free(&l);

	/* Non-ASCII user names are fine. */
	n = strlen("j\xc3\xbcrgen pw x@y pw\n");
	free(acc);
	acc = write_file("accounts", "j\xc3\xbcrgen pw x@y pw\n", n, 0600);
	assert_int_equal(accounts_load(acc, &l, err, sizeof(err)), 0);
	assert_string_equal(l->items[0].src_user, "j\xc3\xbcrgen");
	accounts_free(&l);

	free(acc);
	free(content);
	free(pwfile);
	free(pwfile2);
	free(token);
}

/* Broken files: the error names the line and never the password. */
static void
test_errors(void **state)
{
	static char longline[ACCOUNTS_LINE_MAX + 64];
	static char longuser[ACCOUNTS_USER_MAX + 64];
	static const struct {
		const char	*text;
		size_t		 len;		/* 0: strlen(text) */
		const char	*want;		/* after "path" */
	} t[] = {
		{ "# ok\nalice " PW " alice@new\n", 0,
		  ":2: expected 4 fields (src_user src_pass dst_user "
		  "dst_pass) and an optional wave=N, found 3" },
		{ "alice " PW " a@new " PW " extra\n", 0,
		  ":1: wave: expected wave=N with N from 1 to 999" },
		{ "alice " PW " a@new " PW " wave=1 more\n", 0,
		  ":1: expected 4 fields (src_user src_pass dst_user "
		  "dst_pass) and an optional wave=N, found more than 5" },
		{ "a b c d wave=0\n", 0, ":1: wave: expected wave=N" },
		{ "a b c d wave=1000\n", 0, ":1: wave: expected wave=N" },
		{ "a b c d wave=01\n", 0, ":1: wave: expected wave=N" },
		{ "a b c d wave=\n", 0, ":1: wave: expected wave=N" },
		{ "a b c d wave=-1\n", 0, ":1: wave: expected wave=N" },
		{ "a b c d wave=2x\n", 0, ":1: wave: expected wave=N" },
		{ "a b c d WAVE=2\n", 0, ":1: wave: expected wave=N" },
		{ "a b c d \"wave=2\"\n", 0, ":1: wave: expected wave=N" },
		{ "a b c d wave=3\ne f g h wave=99999999999\n", 0,
		  ":2: wave: expected wave=N" },
		{ "alice " PW " a@new " PW " extra more\n", 0,
		  ":1: expected 4 fields" },
		{ "alice\n", 0, ":1: expected 4 fields (src_user src_pass "
		  "dst_user dst_pass) and an optional wave=N, found 1" },
		{ "alice \"" PW " a@new x\n", 0,
		  ":1: source password: unterminated quote" },
		{ "alice \"" PW "\\n\" a@new x\n", 0,
		  ":1: source password: bad escape (only \\\" and \\\\)" },
		{ "alice \"" PW "\"x a@new x\n", 0,
		  ":1: source password: text right after a closing quote" },
		{ "alice " PW "\x01 a@new x\n", 0,
		  ":1: source password: control character" },
		{ "alice a a@new \"" PW "\tx\"\n", 0,
		  ":1: destination password: control character" },
		{ "alice\x7f " PW " a@new x\n", 0,
		  ":1: source user: control character" },
		{ "alice " PW "\rx a@new x\n", 0,
		  ":1: source password: control character" },
		{ "a b c d\nalice " PW "\0 a@new x\n",
		  sizeof("a b c d\nalice " PW "\0 a@new x\n") - 1,
		  ":2: NUL byte" },
		{ longline, 0, ":2: line longer than 8192 bytes" },
		{ longuser, 0, ":1: source user: longer than 512 bytes" },
		{ "a " PW " b c\n#\nA\t" PW " c d\nalice x y z\n"
		  "alice 1 2 3\n", 0,
		  ":3: duplicate source user (first on line 1)" },
		{ "", 0, ": no account in the file" },
		{ "# only\n\n   \n", 0, ": no account in the file" },
		{ "alice @missing a@new " PW "\n", 0,
		  ":1: source password file DIR/missing: No such file or "
		  "directory" },
		{ "alice " PW " a@new @empty\n", 0,
		  ":1: destination password file DIR/empty: empty" },
		{ "alice " PW " a@new xoauth2:@nl\n", 0,
		  ":1: destination password file DIR/nl: empty" },
		{ "alice @ a@new " PW "\n", 0,
		  ":1: source password: \"@\" without a file name" },
		{ "\"\" " PW " a@new x\n", 0, ":1: source user: empty" },
		{ "alice \"\" a@new " PW "\n", 0, ":1: source password: empty" },
		{ "alice " PW " a@new xoauth2:\n", 0,
		  ":1: destination password: empty" },
		{ "al\xff " PW " a@new x\n", 0,
		  ":1: source user: not valid UTF-8" },
		{ "alice " PW " a@new @ctl\n", 0,
		  ":1: destination password file DIR/ctl: control character "
		  "or NUL byte" },
	};
	char *path, *empty, *nl, *ctl, err[1024], want[1024];
	struct accounts *l;
	size_t i, len;

	(void)state;
	/* line 1 fine, line 2 too long */
	memcpy(longline, "a b c d\n", 8);
	memset(longline + 8, 'x', sizeof(longline) - 9);
	memset(longuser, 'u', ACCOUNTS_USER_MAX + 1);
	memcpy(longuser + ACCOUNTS_USER_MAX + 1, " " PW " b c\n", 14);
	empty = write_file("empty", "", 0, 0600);
	nl = write_file("nl", "\nsecond line\n", 13, 0600);
	ctl = write_file("ctl", PW "\x02\n", strlen(PW) + 2, 0600);

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *w;
		char *p;

		len = t[i].len ? t[i].len : strlen(t[i].text);
		path = write_file("accounts", t[i].text, len, 0600);
		l = (struct accounts *)1;
		err[0] = '\0';
		if (accounts_load(path, &l, err, sizeof(err)) != -1)
			fail_msg("case %zu: loaded", i);
		if (l != NULL)
			fail_msg("case %zu: list not NULL", i);
		/* "DIR" in the expectation stands for the temp dir */
		want[0] = '\0';
		for (w = t[i].want; (p = strstr(w, "DIR")) != NULL; w = p + 3)
			snprintf(want + strlen(want), sizeof(want) -
			    strlen(want), "%.*s%s", (int)(p - w), w, tmpdir);
		snprintf(want + strlen(want), sizeof(want) - strlen(want),
		    "%s", w);
		if (strncmp(err, path, strlen(path)) != 0 ||
		    strncmp(err + strlen(path), want, strlen(want)) != 0)
			fail_msg("case %zu: got \"%s\" want \"%s%s\"", i, err,
			    path, want);
		if (strstr(err, PW) != NULL)
			fail_msg("case %zu: password in \"%s\"", i, err);
		free(path);
	}

	/* No file, or not a regular file. */
	assert_int_equal(accounts_load("/nonexistent/accounts", &l, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/accounts: No such file or "
	    "directory");
	assert_int_equal(accounts_load(tmpdir, &l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ": not a regular file"));
	free(empty);
	free(nl);
	free(ctl);
}

/* The stream entry point resolves relative files against basedir. */
static void
test_load_fp(void **state)
{
	static const char text[] = "\xef\xbb\xbfu1 @pw u2 p2\n";
	struct accounts *l;
	char err[256], *pw;
	FILE *fp;

	(void)state;
	pw = write_file("pw", "filepw\n", 7, 0600);
	fp = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(fp);
	assert_int_equal(accounts_load_fp(fp, "mem", tmpdir, &l, err,
	    sizeof(err)), 0);
	fclose(fp);
	assert_string_equal(l->items[0].src_user, "u1");	/* no BOM */
	assert_string_equal(l->items[0].src.value, "filepw");
	assert_string_equal(l->items[0].src.file, pw);
	accounts_free(&l);

	fp = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(fp);
	assert_int_equal(accounts_load_fp(fp, "mem", "/nonexistent", &l, err,
	    sizeof(err)), -1);
	fclose(fp);
	assert_string_equal(err, "mem:1: source password file "
	    "/nonexistent/pw: No such file or directory");
	free(pw);
}

/* The optional wave column, and the relay's load without secrets. */
static void
test_waves(void **state)
{
	static const char text[] =
	    "u1 @missing-pw d1@new p1 wave=1\n"
	    "u2 p2 d2@new p2\n"
	    "u3 p3 d3@new xoauth2:@missing-token wave=999\n"
	    "u4 p4 d4@new p4 wave=1\n";
	struct accounts *l;
	char err[256];
	FILE *fp;

	(void)state;
	fp = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(fp);
	/* With secrets the missing password file is an error... */
	assert_int_equal(accounts_load_fp(fp, "mem", tmpdir, &l, err,
	    sizeof(err)), -1);
	fclose(fp);
	/* ...without them it is never read. */
	fp = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(fp);
	assert_int_equal(accounts_load_fp_opts(fp, "mem", tmpdir,
	    ACCOUNTS_NO_SECRETS, &l, err, sizeof(err)), 0);
	fclose(fp);
	assert_int_equal(l->count, 4);
	assert_int_equal(l->nwaved, 3);
	assert_int_equal(l->items[0].wave, 1);
	assert_int_equal(l->items[1].wave, 0);
	assert_int_equal(l->items[2].wave, 999);
	assert_null(l->items[0].src.value);
	assert_null(l->items[0].src.file);
	assert_null(l->items[1].src.value);
	assert_int_equal(accounts_wave_count(l, 1), 2);
	assert_int_equal(accounts_wave_count(l, 999), 1);
	assert_int_equal(accounts_wave_count(l, 2), 0);
	assert_int_equal(accounts_wave_count(l, 0), 0);
	accounts_free(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_waves),
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_load_fp),
	};

	return (cmocka_run_group_tests(tests, setup, teardown));
}
