/*
 * json_flat.h - a document read by json_walk() as path/value pairs
 * ("queue.total" -> "3", "domains.0.phase" -> "synced"), for programs that
 * show one they did not write themselves the struct for: ferryctl's views
 * and the relay's status page.  Values are the scalars' text as json_walk
 * gives them ("null" included).
 *
 * Ownership: the struct owns every string; json_flat_clear() frees them.
 */
#ifndef MAILFERRY_JSON_FLAT_H
#define MAILFERRY_JSON_FLAT_H

#include <stddef.h>

#include "json.h"

struct json_flat {
	char	**paths;
	char	**values;
	size_t	  n, alloc;
};

void	json_flat_clear(struct json_flat *f);
/* 0, or -2 when out of memory (json_walk then stops with -2) */
int	json_flat_push(struct json_flat *f, const char *path,
	    const char *value);
/* json_walk callback: every scalar into the json_flat at arg */
int	json_flat_walk(const char *path, enum json_type type,
	    const char *value, void *arg);
/* the value at path as text, or def when there is none */
const char *json_flat_get(const struct json_flat *f, const char *path,
	    const char *def);

#endif
