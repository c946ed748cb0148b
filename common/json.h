/*
 * json.h - a small JSON writer, and a reader that flattens a document.
 *
 * The writer builds one document, in memory (json_init: ferryctl prints
 * it, the daemons send it over HTTP or the control socket) or straight
 * into a FILE * (json_init_file: ferry-syncd's report, which may list
 * thousands of folders, never holds it whole).  Every string goes
 * through one escaper that produces valid JSON from any bytes: quotes,
 * backslashes and control characters are escaped, and bytes that are
 * not valid UTF-8 (a peer's address or reply may hold anything) become
 * U+FFFD, so the output is always valid UTF-8 and always parses.
 *
 * Usage:
 *	struct json j;
 *	json_init(&j, 0);
 *	json_object_begin(&j);
 *	json_key(&j, "id");  json_string(&j, id);
 *	json_key(&j, "size"); json_uint(&j, size);
 *	json_object_end(&j);
 *	if ((doc = json_finish(&j, &len)) == NULL) ... out of memory or
 *	    unbalanced (a programming error);
 *	fwrite(doc, 1, len, stdout);
 *	json_clear(&j);
 * or, writing to a stream:
 *	json_init_file(&j, stdout, JSON_PRETTY);
 *	... the same calls ...
 *	if (json_end(&j) == -1) ... write error or unbalanced;
 * Commas and the ':' after a key are placed by the writer.  A failed
 * allocation or write is remembered and reported once by json_finish()
 * or json_end(): callers need not check each call.  After the first
 * failure nothing more is written.
 *
 * Numbers: integers exactly; doubles in the shortest form that reads
 * back to the same value ("0.1", not "0.10000000000000001"), always
 * with a '.' whatever LC_NUMERIC says; NaN and infinities (which JSON
 * cannot express) become null.
 *
 * The reader (json_walk) is for documents our own programs wrote, e.g.
 * ferryctl rendering the relay's stats as a table; it still treats its
 * input as untrusted (bounded depth, every length checked).  It calls
 * back once per scalar with its path, e.g. "queue.pending" or
 * "items.3.id", and its value as text (strings unescaped).
 *
 * Ownership: struct json owns its buffer until json_clear(); a stream
 * given to json_init_file() stays the caller's (never closed or
 * flushed here).  Nothing here logs or keeps global state; the only
 * I/O is writing to that stream.
 */
#ifndef FERRY_JSON_H
#define FERRY_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAXDEPTH	32

/* json_init() flags. */
#define JSON_PRETTY	0x01	/* newlines and two-space indentation */

struct json {
	char		*buf;		/* NUL-terminated while not failed */
	FILE		*fp;		/* json_init_file(): output goes here */
	size_t		 len;		/* bytes produced so far */
	size_t		 cap;
	int		 flags;
	int		 failed;	/* out of memory or misuse */
	int		 depth;
	int		 after_key;	/* a key was written, value expected */
	unsigned char	 nitems[JSON_MAXDEPTH];	/* 0: container still empty */
	unsigned char	 is_array[JSON_MAXDEPTH];
};

void	json_init(struct json *j, int flags);
void	json_init_file(struct json *j, FILE *fp, int flags);
void	json_clear(struct json *j);
/* In memory: the document, or NULL (misuse, no memory; also always
 * NULL for a json_init_file() writer). */
const char *json_finish(struct json *j, size_t *len_r);
/* Either kind: 0 when the calls made one complete document and every
 * byte was stored or written (ferror() checked), else -1. */
int	json_end(struct json *j);

void	json_object_begin(struct json *j);
void	json_object_end(struct json *j);
void	json_array_begin(struct json *j);
void	json_array_end(struct json *j);
void	json_key(struct json *j, const char *key);

void	json_string(struct json *j, const char *s);	/* NULL: null */
void	json_string_n(struct json *j, const char *s, size_t len);
void	json_int(struct json *j, int64_t v);
void	json_uint(struct json *j, uint64_t v);
void	json_double(struct json *j, double v);	/* NaN/inf: null */
void	json_bool(struct json *j, int v);
void	json_null(struct json *j);

/* Append the escaped body of a JSON string (no quotes) for len bytes. */
void	json_escape(struct json *j, const char *s, size_t len);

/* The value types json_walk() reports. */
enum json_type {
	JSON_T_STRING,
	JSON_T_NUMBER,
	JSON_T_BOOL,
	JSON_T_NULL,
};

/*
 * json_walk callback: path and value are NUL-terminated and valid only
 * during the call.  Return 0 to go on, anything else to stop the walk
 * (json_walk then returns that value).
 */
typedef int json_walk_fn(const char *path, enum json_type type,
    const char *value, void *arg);

int	json_walk(const char *doc, size_t len, json_walk_fn *cb, void *arg,
	    char *err, size_t errlen);

#endif
