/*
 * test_report_escape.c - ctl/ctl_report_escape.c: text from the mail in
 * the Markdown and HTML reports.  Markup and table syntax become plain
 * text, control characters \xNN (a line stays a line), UTF-8 and
 * ordinary text pass unchanged, NULL is empty.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ctl_report_p.h"

/* run - fn(s) into a memory stream, the result compared with want */
static void
run(int (*fn)(FILE *, const char *), const char *s, const char *want)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	assert_int_equal(fn(fp, s), 0);
	assert_int_equal(fclose(fp), 0);
	assert_string_equal(buf, want);
	free(buf);
}

static void
test_md(void **state)
{
	(void)state;
	run(rpt_md_text, "plain text, 2024-03-04 10:00",
	    "plain text, 2024-03-04 10:00");
	run(rpt_md_text, "a | b", "a \\| b");
	run(rpt_md_text, "<script>alert(1)</script>",
	    "\\<script\\>alert\\(1\\)\\</script\\>");
	run(rpt_md_text, "*bold* _it_ `code` [l](u) ![i](x) ~s~ # h",
	    "\\*bold\\* \\_it\\_ \\`code\\` \\[l\\]\\(u\\) \\!\\[i\\]\\(x\\) "
	    "\\~s\\~ \\# h");
	run(rpt_md_text, "a\\b &amp; $x {y}", "a\\\\b \\&amp; \\$x \\{y\\}");
	run(rpt_md_text, "two\r\nlines\t\x7f", "two\\x0D\\x0Alines\\x09\\x7F");
	run(rpt_md_text, "Gr\xc3\xbc\xc3\x9f \xe2\x82\xac",
	    "Gr\xc3\xbc\xc3\x9f \xe2\x82\xac");
	run(rpt_md_text, NULL, "");
	run(rpt_md_text, "", "");
}

static void
test_html(void **state)
{
	(void)state;
	run(rpt_html_text, "plain | *text*", "plain | *text*");
	run(rpt_html_text, "<script>alert('x')</script>",
	    "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
	run(rpt_html_text, "\"Eve\" <eve@x> & co",
	    "&quot;Eve&quot; &lt;eve@x&gt; &amp; co");
	run(rpt_html_text, "&amp;", "&amp;amp;");
	run(rpt_html_text, "a\nb\x01", "a\\x0Ab\\x01");
	run(rpt_html_text, "Gr\xc3\xbc\xc3\x9f", "Gr\xc3\xbc\xc3\x9f");
	run(rpt_html_text, NULL, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_md),
		cmocka_unit_test(test_html),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
