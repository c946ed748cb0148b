/*
 * ferryctl.c - the admin's commands (DESIGN.md §8).
 *
 *   queue              the relay's queue, read from LMDB directly
 *   show ID            one message: record, envelope, headers
 *   retry ID|all, hold ID, release ID, delete ID
 *                      changes, sent to the running relay over its
 *                      control socket (the daemon owns the queue)
 *   stats              the relay's counters, over the control socket
 *   drain              what still reaches the old MX: asked of the
 *                      running relay, or read from what it saved
 *   sync               ferry-syncd's progress ("syncd.progress" in the
 *                      META database, written by the running syncd),
 *                      read from LMDB directly
 *   status             the cutover per [cutover] domain: phase, the
 *                      resolvers' answers, the relay's and the passes'
 *                      evidence, and the verdict evaluated now
 *                      (common/cutover_state.h); LMDB read directly, so
 *                      it works with both daemons stopped
 *   report             the acceptance report per account and in total
 *                      (ctl_report*.c), Markdown, JSON or HTML
 *   preflight          the checklist before a cutover: both IMAP
 *                      servers, every account, the connection limit,
 *                      each [cutover] domain's DNS (ctl_preflight.c);
 *                      exit 1 when something blocks the cutover
 *
 * Every command prints a table by default and JSON with --json.  Exit
 * status: 0 ok, 1 runtime failure (relay not running, unknown ID,
 * unreadable queue), 2 usage or configuration error.
 *
 * It reads the same configuration as the daemons, so it knows where the
 * state directory and the control socket are.  The read-only views open
 * the LMDB environment with STORE_RDONLY beside the running relay (or
 * without it: they work while the relay is stopped) and the spool file
 * read-only; ferryctl never writes to either.
 *
 * SECURITY: what it prints came from the network (addresses, replies,
 * headers): table output passes every such string through clean()
 * (ctl_output.c), which turns control characters into \xNN so nothing
 * can drive the admin's terminal; JSON output is escaped by json.c.
 * Replies from the control socket are length-limited and parsed as
 * untrusted.
 *
 * This file holds the options, the command table and main(); the
 * commands live in ctl_*.c, one file per family, behind ctl.h.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "ctl.h"
#include "util.h"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ferryctl [-ht] [-c FILE] [--json] COMMAND [ARG]\n"
	    "  -c FILE  configuration file (default %s)\n"
	    "  -t       check the configuration and exit\n"
	    "  --json   print JSON instead of a table\n"
	    "  -h       show this help\n"
	    "commands:\n"
	    "  queue             list the relay's queue\n"
	    "  show ID           one queued message in detail\n"
	    "  retry ID|all      try to deliver now\n"
	    "  hold ID           keep a message from being delivered\n"
	    "  release ID        undo hold\n"
	    "  delete ID         remove a message without delivering it\n"
	    "  stats             the relay's counters\n"
	    "  drain             what still reaches the old MX; is it drained?\n"
	    "  sync              ferry-syncd's progress and last pass\n"
	    "  status            the cutover per domain: phase, evidence, verdict\n"
	    "  wave              the staged waves: state, since, accounts\n"
	    "  wave N migrate|pending\n"
	    "                    forward wave N's mail to the new provider, or not\n"
	    "  preflight [--account USER] [--timeout SECS]\n"
	    "                    check servers, accounts, quota, DNS before a cutover\n"
	    "  report [--format html|json|md] [--account USER] [-o FILE]\n"
	    "                    the acceptance report for the sign-off\n",
	    CLI_DEFAULT_CONFIG);
}

/* ---- main ----------------------------------------------------------------- */

static const struct command {
	const char	*name;
	int		 nargs;		/* 0 or 1 */
	int		(*fn)(struct ctl *, const char *);
} commands[] = {
	{ "queue", 0, cmd_queue },
	{ "show", 1, cmd_show },
	{ "retry", 1, NULL },
	{ "hold", 1, NULL },
	{ "release", 1, NULL },
	{ "delete", 1, NULL },
	{ "stats", 0, cmd_stats },
	{ "sync", 0, cmd_sync },
	{ "drain", 0, cmd_drain },
	{ "status", 0, cmd_status },
	{ "preflight", 0, cmd_preflight },
	{ "wave", 0, cmd_wave },	/* or 2: wave N migrate|pending */
	{ "report", 0, cmd_report },
};

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "account", required_argument, NULL, 'a' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "format", required_argument, NULL, 'F' },
		{ "output", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *cmd = NULL;
	const char *conf = NULL, *arg = NULL;
	struct ctl ctl;
	char buf[64];
	size_t i;
	int c, rc, test_only = 0;

	memset(&ctl, 0, sizeof(ctl));
	/* Options may follow the command too: "ferryctl queue --json". */
	while ((c = getopt_long(argc, argv, "c:hto:", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'j':
			ctl.json = 1;
			break;
		case 't':
			test_only = 1;
			break;
		case 'a':
			ctl.account = optarg;
			break;
		case 'F':
			ctl.format = optarg;
			break;
		case 'o':
			ctl.output = optarg;
			break;
		case 'T': {
			int64_t v;

			if (parse_int(optarg, 1, 3600, &v, buf,
			    sizeof(buf)) == -1) {
				fprintf(stderr, "ferryctl: --timeout: %s\n",
				    buf);
				return (EXIT_USAGE);
			}
			ctl.timeout = (int)v;
			break;
		}
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (EXIT_USAGE);
		}
	}
	if (!test_only) {
		if (optind == argc) {
			usage(stderr);
			return (EXIT_USAGE);
		}
		for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (strcmp(argv[optind], commands[i].name) == 0)
				cmd = &commands[i];
		if (cmd == NULL) {
			fprintf(stderr, "ferryctl: unknown command \"%s\"\n",
			    clean(buf, sizeof(buf), argv[optind], 40));
			usage(stderr);
			return (EXIT_USAGE);
		}
		if (strcmp(cmd->name, "wave") == 0 && argc - optind - 1 == 2) {
			ctl.wave_args[0] = argv[optind + 1];
			ctl.wave_args[1] = argv[optind + 2];
			ctl.nwave_args = 2;
		} else if (strcmp(cmd->name, "wave") == 0 &&
		    argc - optind - 1 != 0) {
			fprintf(stderr, "ferryctl: wave takes no argument, or "
			    "N migrate|pending\n");
			usage(stderr);
			return (EXIT_USAGE);
		} else if (argc - optind - 1 != cmd->nargs) {
			fprintf(stderr, "ferryctl: %s takes %s\n", cmd->name,
			    cmd->nargs ? (strcmp(cmd->name, "retry") == 0 ?
			    "a queue ID or \"all\"" : "a queue ID") :
			    "no argument");
			usage(stderr);
			return (EXIT_USAGE);
		}
		if ((ctl.account != NULL && strcmp(cmd->name, "preflight") !=
		    0 && strcmp(cmd->name, "report") != 0) || (ctl.timeout != 0
		    && strcmp(cmd->name, "preflight") != 0)) {
			fprintf(stderr, "ferryctl: --account is for preflight "
			    "and report, --timeout for preflight only\n");
			return (EXIT_USAGE);
		}
		if ((ctl.format != NULL || ctl.output != NULL) &&
		    strcmp(cmd->name, "report") != 0) {
			fprintf(stderr, "ferryctl: --format and -o are for "
			    "report only\n");
			return (EXIT_USAGE);
		}
		if (cmd->nargs)
			arg = argv[optind + 1];
		if (strcmp(cmd->name, "show") == 0 && !valid_id(arg)) {
			fprintf(stderr, "ferryctl: show: bad queue ID \"%s\" "
			    "(16 hex digits)\n", clean(buf, sizeof(buf), arg,
			    40));
			return (EXIT_USAGE);
		}
	}
	if ((rc = cli_load_config("ferryctl", conf, CONFIG_FOR_CTL,
	    &ctl.cfg)) != 0)
		return (rc);
	if (test_only) {
		printf("ferryctl: configuration %s is valid\n", ctl.cfg.path);
		config_free(&ctl.cfg);
		return (0);
	}
	if (cmd->fn != NULL)
		rc = cmd->fn(&ctl, arg);
	else
		rc = cmd_action(&ctl, cmd->name, arg);
	fflush(stdout);
	config_free(&ctl.cfg);
	return (rc);
}
