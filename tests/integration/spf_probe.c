/*
 * spf_probe - drive relay/spf against a real DNS server for the
 * integration tests (tests/integration/test_spf.sh).
 *
 *   spf_probe [-t dns_timeout_ms] [-w workers] [-T check_timeout_ms]
 *             [-C] SERVER CHECK...
 *
 * SERVER is the DNS forwarder, "addr:port"; each CHECK is
 * "CLIENT_IP,HELO,MAIL_FROM" (MAIL_FROM empty for <>, e.g.
 * "192.0.2.1,mta.example.test,").  Every check starts at once in one
 * libevent loop; each result prints when its callback runs:
 *   one CHECK:   "VERDICT A-R"         e.g. "pass spf=pass (...) ..."
 *   several:     "N VERDICT A-R"       N = the CHECK's position, from 1
 * -C cancels every check but the last right after starting them and
 * prints "cancelled N" first: only the last may print a result (the loop
 * then runs 2 s longer, so a stray callback would show).
 * Exit: 0 when every (uncancelled) check called back, 1 if one could not
 * start, 2 on usage errors.
 *
 * Test code: trusts its arguments, not the network.
 */

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns.h"
#include "log.h"
#include "spf.h"

struct probe_check {
	int			 n;
	char			*spec;		/* owned copy, cut in place */
	struct sockaddr_storage	 client;
	const char		*helo;
	const char		*from;
	uint64_t		 id;
};

static struct event_base	*base;
static int			 outstanding;
static int			 several;

static void
usage(void)
{
	fprintf(stderr, "usage: spf_probe [-t dns_timeout_ms] [-w workers] "
	    "[-T check_timeout_ms] [-C] SERVER IP,HELO,MAILFROM...\n");
	exit(2);
}

static void
done(const struct spf_result *r, void *arg)
{
	struct probe_check *pc = arg;
	char ar[1024];

	if (spf_authres(r, ar, sizeof(ar)) == -1)
		snprintf(ar, sizeof(ar), "(A-R does not fit)");
	if (several)
		printf("%d %s %s\n", pc->n, spf_verdict_name(r->verdict), ar);
	else
		printf("%s %s\n", spf_verdict_name(r->verdict), ar);
	fflush(stdout);
	if (--outstanding == 0)
		event_base_loopbreak(base);
}

/* parse_check - "IP,HELO,FROM" into pc; -1 on a bad spec */
static int
parse_check(struct probe_check *pc, const char *spec)
{
	char *c1, *c2;

	if ((pc->spec = strdup(spec)) == NULL)
		return (-1);
	if ((c1 = strchr(pc->spec, ',')) == NULL ||
	    (c2 = strchr(c1 + 1, ',')) == NULL)
		return (-1);
	*c1 = '\0';
	*c2 = '\0';
	pc->helo = c1 + 1;
	pc->from = c2 + 1;
	memset(&pc->client, 0, sizeof(pc->client));
	if (strchr(pc->spec, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&pc->client;

		s6->sin6_family = AF_INET6;
		return (inet_pton(AF_INET6, pc->spec, &s6->sin6_addr) == 1 ?
		    0 : -1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&pc->client;

		s4->sin_family = AF_INET;
		return (inet_pton(AF_INET, pc->spec, &s4->sin_addr) == 1 ?
		    0 : -1);
	}
}

int
main(int argc, char **argv)
{
	struct dns_options opt;
	struct dns_resolver *resolver = NULL;
	struct spf_checker *chk = NULL;
	struct probe_check *checks;
	char err[256];
	int ch, i, n, workers = 4, check_ms = 0, cancel = 0, rc = 0;

	memset(&opt, 0, sizeof(opt));
	while ((ch = getopt(argc, argv, "t:w:T:C")) != -1) {
		switch (ch) {
		case 't':
			opt.timeout_ms = atoi(optarg);
			break;
		case 'w':
			workers = atoi(optarg);
			break;
		case 'T':
			check_ms = atoi(optarg);
			break;
		case 'C':
			cancel = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		usage();
	log_open("spf_probe", LOG_DEST_STDERR, 0, LOG_LVL_WARNING);
	opt.forwarder = argv[0];
	n = argc - 1;
	several = n > 1;
	if ((checks = calloc((size_t)n, sizeof(*checks))) == NULL)
		return (1);
	for (i = 0; i < n; i++) {
		checks[i].n = i + 1;
		if (parse_check(&checks[i], argv[i + 1]) == -1) {
			fprintf(stderr, "spf_probe: bad check \"%s\"\n",
			    argv[i + 1]);
			usage();
		}
	}
	if ((base = event_base_new()) == NULL)
		return (1);
	resolver = dns_resolver_new(base, &opt, err, sizeof(err));
	if (resolver == NULL) {
		fprintf(stderr, "spf_probe: %s\n", err);
		return (2);
	}
	if (spf_checker_new(&chk, base, resolver, workers, "oldmx.example.net",
	    err, sizeof(err)) == -1) {
		fprintf(stderr, "spf_probe: %s\n", err);
		return (2);
	}
	if (check_ms > 0)
		spf_checker_set_timeout(chk, check_ms);
	for (i = 0; i < n; i++) {
		if (spf_check(chk, (struct sockaddr *)&checks[i].client,
		    checks[i].helo, checks[i].from, done, &checks[i],
		    &checks[i].id) == -1) {
			printf("%d error: cannot start\n", i + 1);
			rc = 1;
			continue;
		}
		outstanding++;
	}
	if (cancel) {
		int cancelled = 0;

		for (i = 0; i < n - 1; i++)
			if (spf_cancel(chk, checks[i].id) == 0)
				cancelled++;
		outstanding -= cancelled;
		printf("cancelled %d\n", cancelled);
		fflush(stdout);
	}
	if (outstanding > 0)
		event_base_dispatch(base);
	if (cancel) {
		/* Keep the loop going a while: a cancelled check that
		 * called back anyway would print and drive this negative. */
		struct timeval linger = { 2, 0 };

		event_base_loopexit(base, &linger);
		event_base_dispatch(base);
	}
	if (outstanding != 0 || spf_pending(chk) != 0) {
		printf("lost %d callbacks\n", outstanding);
		rc = 1;
	}
	spf_checker_free(&chk);
	dns_resolver_free(&resolver);
	event_base_free(base);
	for (i = 0; i < n; i++)
		free(checks[i].spec);
	free(checks);
	return (rc);
}
