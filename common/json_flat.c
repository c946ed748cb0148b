/*
 * json_flat.c - a JSON document as path/value pairs (json_flat.h).
 */

#include <stdlib.h>
#include <string.h>

#include "json_flat.h"

void
json_flat_clear(struct json_flat *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		free(f->paths[i]);
		free(f->values[i]);
	}
	free(f->paths);
	free(f->values);
	memset(f, 0, sizeof(*f));
}

int
json_flat_push(struct json_flat *f, const char *path, const char *value)
{
	char **p;
	size_t n;

	if (f->n == f->alloc) {
		n = f->alloc ? f->alloc * 2 : 64;
		if ((p = reallocarray(f->paths, n, sizeof(*p))) == NULL)
			return (-2);
		f->paths = p;
		if ((p = reallocarray(f->values, n, sizeof(*p))) == NULL)
			return (-2);
		f->values = p;
		f->alloc = n;
	}
	if ((f->paths[f->n] = strdup(path)) == NULL)
		return (-2);
	if ((f->values[f->n] = strdup(value)) == NULL) {
		free(f->paths[f->n]);
		return (-2);
	}
	f->n++;
	return (0);
}

int
json_flat_walk(const char *path, enum json_type type, const char *value,
    void *arg)
{
	(void)type;
	return (json_flat_push(arg, path, value));
}

const char *
json_flat_get(const struct json_flat *f, const char *path, const char *def)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->paths[i], path) == 0)
			return (f->values[i]);
	return (def);
}
