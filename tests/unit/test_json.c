/*
 * test_json.c - the JSON writer's escaping and structure, in memory and
 * into a stream, its numbers, and the flattening reader (common/json.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <locale.h>

#include "json.h"

/* escaped - one string value through the writer */
static char *
escaped(const char *s, size_t len)
{
	struct json j;
	const char *doc;
	char *copy;

	json_init(&j, 0);
	json_string_n(&j, s, len);
	doc = json_finish(&j, NULL);
	assert_non_null(doc);
	copy = strdup(doc);
	json_clear(&j);
	return (copy);
}

static void
test_escape(void **state)
{
	static const struct { const char *in; size_t len; const char *out; } t[] = {
		{ "plain", 5, "\"plain\"" },
		{ "", 0, "\"\"" },
		{ "a\"b\\c", 5, "\"a\\\"b\\\\c\"" },
		{ "l1\nl2\r\t", 7, "\"l1\\nl2\\r\\t\"" },
		{ "\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"" },
		{ "nul\0x", 5, "\"nul\\u0000x\"" },
		{ "caf\xc3\xa9", 5, "\"caf\xc3\xa9\"" },		/* é kept */
		{ "\xe2\x82\xac", 3, "\"\xe2\x82\xac\"" },		/* € kept */
		{ "\xf0\x9f\x93\xa7", 4, "\"\xf0\x9f\x93\xa7\"" },	/* U+1F4E7 */
		{ "\xff", 1, "\"\xef\xbf\xbd\"" },			/* never valid */
		{ "\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"" },	/* overlong / */
		{ "\xed\xa0\x80", 3,					/* surrogate */
		  "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "\xf4\x90\x80\x80", 4,				/* > U+10FFFF */
		  "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "ab\xc3", 3, "\"ab\xef\xbf\xbd\"" },			/* truncated */
		{ "</script>", 9, "\"</script>\"" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *got = escaped(t[i].in, t[i].len);

		if (strcmp(got, t[i].out) != 0)
			fail_msg("case %zu: got %s want %s", i, got, t[i].out);
		free(got);
	}
}

static void
test_structure(void **state)
{
	struct json j;
	const char *doc;
	size_t len;

	(void)state;
	json_init(&j, 0);
	json_object_begin(&j);
	json_key(&j, "id");
	json_string(&j, "0123456789abcdef");
	json_key(&j, "n");
	json_int(&j, -42);
	json_key(&j, "u");
	json_uint(&j, UINT64_MAX);
	json_key(&j, "list");
	json_array_begin(&j);
	json_bool(&j, 1);
	json_bool(&j, 0);
	json_null(&j);
	json_string(&j, NULL);
	json_double(&j, 0.25);
	json_double(&j, 1.0 / 0.0);
	json_array_end(&j);
	json_key(&j, "empty");
	json_object_begin(&j);
	json_object_end(&j);
	json_key(&j, "none");
	json_array_begin(&j);
	json_array_end(&j);
	json_object_end(&j);
	doc = json_finish(&j, &len);
	assert_non_null(doc);
	assert_string_equal(doc, "{\"id\":\"0123456789abcdef\",\"n\":-42,"
	    "\"u\":18446744073709551615,\"list\":[true,false,null,null,0.25,"
	    "null],\"empty\":{},\"none\":[]}");
	assert_int_equal(len, strlen(doc));
	json_clear(&j);

	json_init(&j, JSON_PRETTY);
	json_object_begin(&j);
	json_key(&j, "a");
	json_array_begin(&j);
	json_int(&j, 1);
	json_int(&j, 2);
	json_array_end(&j);
	json_object_end(&j);
	doc = json_finish(&j, NULL);
	assert_non_null(doc);
	assert_string_equal(doc, "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
	json_clear(&j);
}

/* Misuse leaves no half document behind: json_finish() says NULL. */
static void
test_misuse(void **state)
{
	struct json j;

	(void)state;
	json_init(&j, 0);			/* nothing written */
	assert_null(json_finish(&j, NULL));
	json_clear(&j);

	json_init(&j, 0);			/* unclosed */
	json_object_begin(&j);
	assert_null(json_finish(&j, NULL));
	json_clear(&j);

	json_init(&j, 0);			/* value without a key */
	json_object_begin(&j);
	json_int(&j, 1);
	json_object_end(&j);
	assert_null(json_finish(&j, NULL));
	json_clear(&j);

	json_init(&j, 0);			/* key without a value */
	json_object_begin(&j);
	json_key(&j, "k");
	json_object_end(&j);
	assert_null(json_finish(&j, NULL));
	json_clear(&j);

	json_init(&j, 0);			/* mismatched close */
	json_array_begin(&j);
	json_object_end(&j);
	assert_null(json_finish(&j, NULL));
	json_clear(&j);

	json_init(&j, 0);			/* two top-level values */
	json_int(&j, 1);
	json_int(&j, 2);
	assert_null(json_finish(&j, NULL));
	json_clear(&j);
}

struct collect {
	char	buf[1024];
	int	stop_at;	/* stop with 7 at this call (1-based), 0: never */
	int	calls;
};

static int
collect_cb(const char *path, enum json_type type, const char *value, void *arg)
{
	struct collect *c = arg;
	static const char types[] = { 's', 'n', 'b', 'z' };
	size_t len = strlen(c->buf);

	snprintf(c->buf + len, sizeof(c->buf) - len, "%s=%c:%s;", path,
	    types[type], value);
	if (++c->calls == c->stop_at)
		return (7);
	return (0);
}

static void
test_walk(void **state)
{
	static const struct { const char *in; int rc; const char *out; } t[] = {
		{ "{\"a\":1,\"b\":{\"c\":\"x\",\"d\":[true,null,-1.5e3]}}", 0,
		  "a=n:1;b.c=s:x;b.d.0=b:true;b.d.1=z:null;b.d.2=n:-1.5e3;" },
		{ " [ ] ", 0, "" },
		{ "{}", 0, "" },
		{ "\"q\\\"\\\\\\/\\n\\u00e9\\ud83d\\udce7\\udc00\"", 0,
		  "=s:q\"\\/\n\xc3\xa9\xf0\x9f\x93\xa7\xef\xbf\xbd;" },
		{ "{\"a\":[{\"b\":2}]}", 0, "a.0.b=n:2;" },
		{ "", -1, "" },
		{ "{", -1, "" },
		{ "{\"a\"}", -1, "" },
		{ "{\"a\":1,}", -1, "a=n:1;" },
		{ "[1 2]", -1, "0=n:1;" },
		{ "\"abc", -1, "" },
		{ "\"a\\", -1, "" },
		{ "\"\\u12\"", -1, "" },
		{ "\"\\x\"", -1, "" },
		{ "\"a\nb\"", -1, "" },
		{ "01", -1, "=n:0;" },
		{ "-", -1, "" },
		{ "1.", -1, "" },
		{ "1e", -1, "" },
		{ "tru", -1, "" },
		{ "{} x", -1, "" },
		{ "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]"
		  "]]]]]]]]]]]]]]]]]]]]", -1, "" },
	};
	struct collect c;
	char err[128];
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&c, 0, sizeof(c));
		err[0] = '\0';
		rc = json_walk(t[i].in, strlen(t[i].in), collect_cb, &c, err,
		    sizeof(err));
		if (rc != t[i].rc)
			fail_msg("case %zu: rc %d want %d (%s)", i, rc, t[i].rc, err);
		if (strcmp(c.buf, t[i].out) != 0)
			fail_msg("case %zu: got %s want %s", i, c.buf, t[i].out);
		if (rc == -1 && err[0] == '\0')
			fail_msg("case %zu: no error message", i);
	}

	/* The callback can stop the walk and its value comes back. */
	memset(&c, 0, sizeof(c));
	c.stop_at = 2;
	rc = json_walk("[1,2,3]", 7, collect_cb, &c, err, sizeof(err));
	assert_int_equal(rc, 7);
	assert_string_equal(c.buf, "0=n:1;1=n:2;");
}

/* What the writer makes, the reader reads back unchanged. */
static void
test_roundtrip(void **state)
{
	static const char nasty[] = "x\"\\\x01\n\xc3\xa9\xff<>";
	struct json j;
	struct collect c;
	const char *doc;
	char err[128];
	size_t len;

	(void)state;
	json_init(&j, JSON_PRETTY);
	json_object_begin(&j);
	json_key(&j, "k\"ey");
	json_string(&j, nasty);
	json_object_end(&j);
	doc = json_finish(&j, &len);
	assert_non_null(doc);
	memset(&c, 0, sizeof(c));
	assert_int_equal(json_walk(doc, len, collect_cb, &c, err, sizeof(err)), 0);
	assert_string_equal(c.buf, "k\"ey=s:x\"\\\x01\n\xc3\xa9\xef\xbf\xbd<>;");
	json_clear(&j);
}

/*
 * double_in_comma_locale - where a decimal-comma locale is installed, a
 * double must still be written with '.'.  (Minimal systems have none;
 * the check then has nothing to test: a TAP "skip" would count as a
 * failure in our harness.)
 */
static void
double_in_comma_locale(void)
{
	static const char *const names[] = { "de_DE.UTF-8", "de_DE.utf8",
	    "fr_FR.UTF-8", "fr_FR.utf8", "de_DE", "fr_FR" };
	struct json j;
	const char *doc;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (setlocale(LC_NUMERIC, names[i]) != NULL)
			break;
	if (i == sizeof(names) / sizeof(names[0]))
		return;
	json_init(&j, 0);
	json_double(&j, 1.5);
	doc = json_finish(&j, NULL);
	assert_non_null(doc);
	assert_string_equal(doc, "1.5");
	json_clear(&j);
	setlocale(LC_NUMERIC, "C");
}

/* Doubles: shortest round-trip form, integers without a dot, exponents. */
static void
test_double(void **state)
{
	static const struct { double v; const char *out; } t[] = {
		{ 0.0, "0" },
		{ -0.0, "-0" },
		{ 0.1, "0.1" },
		{ 0.25, "0.25" },
		{ 1.0 / 3.0, "0.3333333333333333" },
		{ 2.0 / 3.0, "0.6666666666666666" },
		{ 123456789012.0, "123456789012" },
		{ 1e21, "1e+21" },
		{ 1.5e-7, "1.5e-07" },
		{ -2.5, "-2.5" },
		{ 5e-324, "4.94065645841247e-324" },
		{ 1.7976931348623157e308, "1.7976931348623157e+308" },
	};
	struct json j;
	const char *doc;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		json_init(&j, 0);
		json_double(&j, t[i].v);
		doc = json_finish(&j, NULL);
		assert_non_null(doc);
		if (strcmp(doc, t[i].out) != 0)
			fail_msg("case %zu: got %s want %s", i, doc, t[i].out);
		if (strtod(doc, NULL) != t[i].v)
			fail_msg("case %zu: %s does not read back", i, doc);
		json_clear(&j);
	}
	double_in_comma_locale();
}

/* The stream writer produces the same bytes as the memory writer. */
static void
test_file(void **state)
{
	struct json j, m;
	char *out = NULL;
	size_t outlen = 0;
	const char *doc;
	size_t len;
	FILE *fp;
	int pretty;

	(void)state;
	for (pretty = 0; pretty <= JSON_PRETTY; pretty += JSON_PRETTY) {
		fp = open_memstream(&out, &outlen);
		assert_non_null(fp);
		json_init_file(&j, fp, pretty);
		json_init(&m, pretty);
		for (int k = 0; k < 2; k++) {
			struct json *w = k ? &m : &j;

			json_object_begin(w);
			json_key(w, "name");
			json_string(w, "Entw\xc3\xbcrfe \"x\"\n\xff");
			json_key(w, "n");
			json_array_begin(w);
			json_uint(w, 7);
			json_double(w, 0.5);
			json_null(w);
			json_array_end(w);
			json_object_end(w);
		}
		assert_int_equal(json_end(&j), 0);
		assert_null(json_finish(&j, NULL));	/* not in memory */
		assert_int_equal(json_end(&m), 0);
		doc = json_finish(&m, &len);
		assert_non_null(doc);
		assert_int_equal(fclose(fp), 0);
		assert_int_equal(outlen, len);
		assert_memory_equal(out, doc, len);
		free(out);
		out = NULL;
		json_clear(&j);
		json_clear(&m);
	}

	/* Unbalanced: json_end() says so. */
	fp = open_memstream(&out, &outlen);
	assert_non_null(fp);
	json_init_file(&j, fp, 0);
	json_array_begin(&j);
	assert_int_equal(json_end(&j), -1);
	json_clear(&j);
	fclose(fp);
	free(out);
}

/* A stream that cannot be written makes json_end() fail. */
static void
test_file_error(void **state)
{
	struct json j;
	FILE *fp;
	char big[8192];

	(void)state;
	fp = fopen("/dev/full", "w");		/* Linux: every write fails */
	assert_non_null(fp);
	setvbuf(fp, NULL, _IONBF, 0);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	json_init_file(&j, fp, 0);
	json_array_begin(&j);
	json_string(&j, big);
	json_array_end(&j);
	assert_int_equal(json_end(&j), -1);
	json_clear(&j);
	fclose(fp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_double),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_file_error),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
