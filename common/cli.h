/*
 * cli.h - what ferry-relay, ferry-syncd and ferryctl share on their
 * command line: where the configuration is, and loading it with the
 * errors an admin can act on (exit status 2, "file:line: why").
 */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include "config.h"

#define EXIT_RUNTIME	1	/* a runtime failure */
#define EXIT_USAGE	2	/* usage or configuration error */

#define CLI_DEFAULT_CONFIG	FERRY_SYSCONFDIR "/mailferry/mailferry.conf"

int	cli_load_config(const char *prog, const char *path,
	    enum config_user who, struct config *cfg);

#endif
