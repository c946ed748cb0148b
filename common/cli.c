/*
 * cli.c - loading the configuration for a program (see cli.h).
 */

#include <stdio.h>

#include "cli.h"

/*
 * cli_load_config - load and check path for program who; on error print
 * "prog: file:line: why" to stderr and return EXIT_USAGE, else 0.
 */
int
cli_load_config(const char *prog, const char *path, enum config_user who,
    struct config *cfg)
{
	char err[1024];

	if (path == NULL)
		path = CLI_DEFAULT_CONFIG;
	if (config_load(cfg, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return (EXIT_USAGE);
	}
	if (config_require(cfg, who, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", prog, err);
		config_free(cfg);
		return (EXIT_USAGE);
	}
	return (0);
}
