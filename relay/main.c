/*
 * main.c - ferry-relay: the SMTP relay that runs on the old MX during a
 * cutover (DESIGN.md §5).
 *
 * This entry point parses the command line and validates the whole
 * configuration; -t stops there, like "nginx -t".
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "config.h"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ferry-relay [-dht] [-c FILE]\n"
	    "  -c FILE  configuration file (default %s)\n"
	    "  -d       stay in the foreground and log to stderr\n"
	    "  -t       check the configuration and exit\n"
	    "  -h       show this help\n", CLI_DEFAULT_CONFIG);
}

int
main(int argc, char *argv[])
{
	const char *conf = NULL;
	struct config cfg;
	int c, rc, test_only = 0;

	while ((c = getopt(argc, argv, "c:dht")) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'd':
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
	if (optind != argc) {
		usage(stderr);
		return (EXIT_USAGE);
	}
	if ((rc = cli_load_config("ferry-relay", conf, CONFIG_FOR_RELAY, &cfg)) != 0)
		return (rc);
	if (test_only) {
		printf("ferry-relay: configuration %s is valid\n", cfg.path);
		config_free(&cfg);
		return (0);
	}
	fprintf(stderr, "ferry-relay: serving mail is not part of this build yet; "
	    "only -t (configuration check) is available\n");
	config_free(&cfg);
	return (EXIT_RUNTIME);
}
