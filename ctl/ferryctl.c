/*
 * ferryctl.c - the admin's commands (DESIGN.md §8).
 *
 * It reads the same configuration as the daemons, so it knows where
 * their state and control socket are.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ferryctl [-ht] [-c FILE] [--json] COMMAND [ARG]\n"
	    "  -c FILE  configuration file (default %s)\n"
	    "  -t       check the configuration and exit\n"
	    "  --json   print JSON instead of a table\n"
	    "  -h       show this help\n", CLI_DEFAULT_CONFIG);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = NULL;
	struct config cfg;
	int c, rc, test_only = 0;

	while ((c = getopt_long(argc, argv, "+c:ht", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'j':
			break;
		case 't':
			test_only = 1;
			break;
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (EXIT_USAGE);
		}
	}
	if (!test_only && optind == argc) {
		usage(stderr);
		return (EXIT_USAGE);
	}
	if ((rc = cli_load_config("ferryctl", conf, CONFIG_FOR_CTL, &cfg)) != 0)
		return (rc);
	if (test_only) {
		printf("ferryctl: configuration %s is valid\n", cfg.path);
		config_free(&cfg);
		return (0);
	}
	fprintf(stderr, "ferryctl: unknown command \"%s\"\n", argv[optind]);
	usage(stderr);
	config_free(&cfg);
	return (EXIT_USAGE);
}
