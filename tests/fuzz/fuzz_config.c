/*
 * fuzz_config.c - a fuzz target for common/config.c, mailferry.conf's
 * parser (an operator's file, but one typo must give a clear error, not
 * a crash or a half-read configuration).
 *
 * The input is the file's text, written to an anonymous in-memory file
 * (memfd) and loaded through /proc/self/fd/N as a path, as the daemons
 * load theirs.  It abort()s when an invariant breaks:
 *   - config_load() fails without an error message, or succeeds with
 *     one, or leaves anything to free after a failure (LeakSanitizer and
 *     valgrind see that);
 *   - a loaded configuration differs from itself (config_diff() != 0),
 *     or a second load of the same text differs from the first;
 *   - config_require() fails without a message, for any program.
 */

#include <sys/mman.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static void
changed(const char *section, const char *key, void *arg)
{
	(void)section;
	(void)key;
	(void)arg;
}

/* fuzz_config - see fuzz.h */
int
fuzz_config(const uint8_t *data, size_t size)
{
	struct config a, b;
	char path[64], err[1024];
	int fd, ra, rb;
	size_t off = 0;
	ssize_t w;

	if ((fd = memfd_create("fuzz-config", 0)) == -1)
		return (0);
	while (off < size) {
		if ((w = write(fd, data + off, size - off)) <= 0) {
			close(fd);
			return (0);
		}
		off += (size_t)w;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	err[0] = '\0';
	ra = config_load(&a, path, err, sizeof(err));
	if (ra != 0 && ra != -1)
		abort();
	if ((ra == -1) != (err[0] != '\0'))
		abort();
	err[0] = '\0';
	rb = config_load(&b, path, err, sizeof(err));
	if (rb != ra)
		abort();
	if (ra == 0) {
		enum config_user who;

		if (config_diff(&a, &a, changed, NULL) != 0 ||
		    config_diff(&a, &b, changed, NULL) != 0)
			abort();
		for (who = CONFIG_FOR_RELAY; who <= CONFIG_FOR_CTL; who++) {
			err[0] = '\0';
			if (config_require(&a, who, err, sizeof(err)) != 0 &&
			    err[0] == '\0')
				abort();
		}
		config_free(&a);
		config_free(&b);
	}
	close(fd);
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return (fuzz_config(data, size));
}
