/*
 * test_log.c - one line per event, levels, and no line injection; the
 * terminal status line: log lines are written above it (clear, line,
 * redraw in one write), and erasing it leaves plain lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

static char *
capture(FILE *fp)
{
	static char buf[8192];
	size_t n;

	fflush(fp);
	rewind(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	rewind(fp);
	if (ftruncate(fileno(fp), 0) != 0)
		fail_msg("ftruncate");
	return (buf);
}

static void
test_levels(void **state)
{
	FILE *fp = tmpfile();
	char *out;

	(void)state;
	assert_non_null(fp);
	log_open("test", LOG_DEST_STREAM, 0, LOG_LVL_INFO);
	log_set_stream(fp);
	log_debug("hidden %d", 1);
	log_info("ABC123: from=<%s> size=%d", "a@example.com", 42);
	log_warnx("careful");
	out = capture(fp);
	assert_null(strstr(out, "hidden"));
	assert_string_equal(out,
	    "test: info: ABC123: from=<a@example.com> size=42\n"
	    "test: warning: careful\n");
	log_set_level(LOG_LVL_DEBUG);
	log_debug("shown");
	assert_string_equal(capture(fp), "test: debug: shown\n");
	fclose(fp);
}

static void
test_no_injection(void **state)
{
	FILE *fp = tmpfile();
	char *out;

	(void)state;
	log_open("test", LOG_DEST_STREAM, 0, LOG_LVL_INFO);
	log_set_stream(fp);
	/* a HELO name from the network trying to forge a second line */
	log_info("helo=%s", "evil\r\ntest: info: ABC: status=sent");
	out = capture(fp);
	assert_string_equal(out,
	    "test: info: helo=evil\\x0d\\x0atest: info: ABC: status=sent\n");
	assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1);
	fclose(fp);
}

static void
test_errno_and_long(void **state)
{
	FILE *fp = tmpfile();
	char big[LOG_LINE_MAX * 2];
	char *out;

	(void)state;
	log_open("test", LOG_DEST_STREAM, 0, LOG_LVL_INFO);
	log_set_stream(fp);
	errno = ENOSPC;
	log_warn("spool write");
	out = capture(fp);
	assert_non_null(strstr(out, "spool write: No space left on device\n"));
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
	out = capture(fp);
	assert_true(strlen(out) < LOG_LINE_MAX + 64);
	assert_int_equal(out[strlen(out) - 1], '\n');
	assert_string_equal(log_level_name(LOG_LVL_ERROR), "error");
	fclose(fp);
}

/* test_status_line - stderr (fd 2) redirected to a file for the test */
static void
test_status_line(void **state)
{
	FILE *fp = tmpfile();
	int saved = dup(STDERR_FILENO);
	const char *out;

	(void)state;
	assert_non_null(fp);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(fp), STDERR_FILENO) >= 0);
	log_open("test", LOG_DEST_STDERR, 0, LOG_LVL_INFO);
	log_status("1/2 accounts");
	log_info("one");
	log_status("2/2 accounts");
	log_status(NULL);
	log_status(NULL);		/* nothing shown: writes nothing */
	log_info("two");
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	out = capture(fp);
	/* drawn; cleared, the line, drawn again; replaced; erased; plain */
	assert_non_null(strstr(out, "\r\033[K1/2 accounts\r\033[K"));
	assert_non_null(strstr(out, "test["));
	assert_non_null(strstr(out, ": info: one\n1/2 accounts\r\033[K2/2 accounts"
	    "\r\033[K2"));
	assert_null(strstr(strstr(out, "two"), "\033"));
	assert_int_equal(out[strlen(out) - 1], '\n');
	assert_null(strstr(out, "accounts2"));	/* never glued */
	fclose(fp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_no_injection),
		cmocka_unit_test(test_errno_and_long),
		cmocka_unit_test(test_status_line),
	};
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
