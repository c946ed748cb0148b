/*
 * fuzz_main.c - a plain driver for a fuzz target, for compilers without
 * libFuzzer: runs LLVMFuzzerTestOneInput() once on each input and exits.
 *
 *   fuzz_TARGET FILE|DIR...   every FILE, and every regular file in each
 *                             DIR (not recursive), in the order given
 *   fuzz_TARGET               standard input, as one input
 *
 * Arguments starting with '-' (libFuzzer's options) are ignored, so a
 * command line written for the libFuzzer build runs here too, once.
 * Prints "fuzz: N inputs" to stderr and exits 0; a broken invariant
 * abort()s in the target, so the exit status is the verdict.  Inputs are
 * read whole, up to FUZZ_INPUT_MAX bytes (the rest is ignored, as with
 * libFuzzer's -max_len).
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define FUZZ_INPUT_MAX	(1024 * 1024)

static size_t	 ninputs;

/* run_stream - one input from fp; -1 on a read error (message printed) */
static int
run_stream(FILE *fp, const char *name)
{
	uint8_t *buf;
	size_t len;

	if ((buf = malloc(FUZZ_INPUT_MAX)) == NULL) {
		fprintf(stderr, "fuzz: out of memory\n");
		return (-1);
	}
	len = fread(buf, 1, FUZZ_INPUT_MAX, fp);
	if (ferror(fp)) {
		fprintf(stderr, "fuzz: %s: read error\n", name);
		free(buf);
		return (-1);
	}
	/* The exact size, so reads past the input stay visible to ASan. */
	if (len > 0) {
		uint8_t *exact = malloc(len);

		if (exact == NULL) {
			fprintf(stderr, "fuzz: out of memory\n");
			free(buf);
			return (-1);
		}
		memcpy(exact, buf, len);
		free(buf);
		buf = exact;
	}
	(void)LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	ninputs++;
	return (0);
}

/* run_file - one input from the file at path */
static int
run_file(const char *path)
{
	FILE *fp;
	int rc;

	if ((fp = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
		return (-1);
	}
	rc = run_stream(fp, path);
	fclose(fp);
	return (rc);
}

/* run_path - a file, or every regular file in a directory */
static int
run_path(const char *path)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	char sub[4096];
	int rc = 0;

	if (stat(path, &st) == -1) {
		fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
		return (-1);
	}
	if (!S_ISDIR(st.st_mode))
		return (run_file(path));
	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
		return (-1);
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path,
		    de->d_name) >= sizeof(sub)) {
			fprintf(stderr, "fuzz: %s/%s: path too long\n", path,
			    de->d_name);
			rc = -1;
			continue;
		}
		if (stat(sub, &st) == 0 && S_ISREG(st.st_mode) &&
		    run_file(sub) == -1)
			rc = -1;
	}
	closedir(d);
	return (rc);
}

int
main(int argc, char *argv[])
{
	int i, rc = 0, any = 0;

	for (i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			continue;
		any = 1;
		if (run_path(argv[i]) == -1)
			rc = 1;
	}
	if (!any && run_stream(stdin, "<stdin>") == -1)
		rc = 1;
	fprintf(stderr, "fuzz: %zu input%s\n", ninputs,
	    ninputs == 1 ? "" : "s");
	return (rc);
}
