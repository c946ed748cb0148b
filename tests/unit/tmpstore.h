/*
 * tmpstore.h - a cmocka fixture for unit tests that need one empty LMDB
 * store in a temporary directory: setup opens it, teardown closes it
 * and removes the directory.  A test reaches it as
 * ((struct tmpstore *)*state)->st.
 */
#ifndef FERRY_TEST_TMPSTORE_H
#define FERRY_TEST_TMPSTORE_H

#include <stdio.h>
#include <stdlib.h>

#include "store.h"
#include "tmpdir.h"

struct tmpstore {
	char		 tmp[64];
	struct store	*st;
};

/* tmpstore_open - *state = a fresh store under /tmp/NAME.XXXXXX */
static inline int
tmpstore_open(void **state, const char *name)
{
	struct tmpstore *fx;
	char dir[128], err[256];

	if ((fx = calloc(1, sizeof(*fx))) == NULL)
		return (-1);
	snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/%s.XXXXXX", name);
	if (mkdtemp(fx->tmp) == NULL) {
		free(fx);
		return (-1);
	}
	snprintf(dir, sizeof(dir), "%s/db", fx->tmp);
	if (store_open(&fx->st, dir, 0, err, sizeof(err)) == -1) {
		fprintf(stderr, "store_open: %s\n", err);
		(void)tmpdir_remove(fx->tmp);
		free(fx);
		return (-1);
	}
	*state = fx;
	return (0);
}

static inline int
tmpstore_close(void **state)
{
	struct tmpstore *fx = *state;

	store_close(&fx->st);
	(void)tmpdir_remove(fx->tmp);
	free(fx);
	return (0);
}

#endif
