/*
 * dns_probe - drive common/dns against a real DNS server for the
 * integration tests (tests/integration/test_dns.sh).
 *
 *   dns_probe [-t timeout_ms] [-S] [-v] [-r repeat [-w ms]] SERVER TYPE NAME
 *   dns_probe [-t timeout_ms] [-S] [-v] [-r repeat [-w ms]] SERVER TYPE:NAME...
 *
 * SERVER is the forwarder, "addr:port" or "[v6]:port"; TYPE is MX, TXT,
 * A, AAAA or ADDR (A and AAAA together).  The first form prints bare
 * answer lines; the second starts every look-up at once in one loop (to
 * show they run concurrently) and prefixes each line with "TYPE:NAME ",
 * printing in completion order.  Lines:
 *   MX 10 mx1.example.test | TXT <value> | A 192.0.2.1 | AAAA 2001:db8::1
 *   NXDOMAIN | NODATA | TEMPFAIL <why> | PERMFAIL <why>
 * TXT values print bytes 0x20..0x7e as they are, except a backslash as
 * "\\"; every other byte as \DDD (decimal), so the output is byte-exact.
 * -v adds a "TTL n" line after each answer.  -S uses dns_lookup_sync()
 * from one worker thread per look-up while the loop runs.  -r N repeats
 * each look-up N times, one after the other, -w ms apart (cache checks).
 * Lifetime checks (second form): -C cancels every look-up but the last
 * right after starting them and prints "cancelled N"; -F frees the
 * resolver from inside the first callback, prints "freed", and keeps the
 * loop running past the timeout so a stray callback would show.
 * Exit: 0 when every look-up had answers, 1 otherwise, 2 on usage errors.
 *
 * Test code: trusts its arguments, not the network.
 */

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns.h"

struct probe_query {
	const char		*label;		/* "TYPE:NAME" or NULL */
	enum dns_type		 type;
	char			 name[DNS_NAME_MAX + 2];
	int			 left;		/* repeats still to run */
	int			 failed;
	struct event		*again;		/* -w: next repeat */
	uint64_t		 id;
	/* -S */
	pthread_t		 thread;
	struct dns_resolver	*r;
	int			 wake_fd;
	char			*out;		/* what the thread found */
	size_t			 outlen;
};

static struct event_base	*base;
static struct dns_resolver	*resolver;
static int			 verbose;
static int			 outstanding;
static int			 wait_ms;
static int			 free_in_cb;
static struct event		*linger;

static void	start_one(struct probe_query *pq);

static void
usage(void)
{
	fprintf(stderr, "usage: dns_probe [-t timeout_ms] [-S] [-v] "
	    "[-r repeat [-w ms]] SERVER TYPE NAME\n"
	    "       dns_probe [-t timeout_ms] [-S] [-v] [-r repeat [-w ms]] "
	    "SERVER TYPE:NAME...\n");
	exit(2);
}

static int
parse_type(const char *s, enum dns_type *t)
{
	static const struct { const char *name; enum dns_type type; } tab[] = {
		{ "MX", DNS_MX }, { "TXT", DNS_TXT }, { "A", DNS_A },
		{ "AAAA", DNS_AAAA }, { "ADDR", DNS_ADDR },
	};
	size_t i;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcasecmp(s, tab[i].name) == 0) {
			*t = tab[i].type;
			return (0);
		}
	return (-1);
}

static void
print_txt(FILE *fp, const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\\')
			fputs("\\\\", fp);
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			fputc(p[i], fp);
		else
			fprintf(fp, "\\%03u", p[i]);
	}
}

/* format_result - the answer lines of one look-up into fp */
static void
format_result(FILE *fp, const char *label, int status,
    const struct dns_result *res)
{
	char ip[INET6_ADDRSTRLEN];
	const char *pre = label ? label : "";
	const char *sp = label ? " " : "";
	size_t i;

	switch (status) {
	case DNS_OK:
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		fprintf(fp, "%s%s%s\n", pre, sp, dns_status_name(status));
		return;
	default:
		fprintf(fp, "%s%s%s %s\n", pre, sp, dns_status_name(status),
		    res->why);
		return;
	}
	for (i = 0; i < res->count; i++) {
		fprintf(fp, "%s%s", pre, sp);
		if (res->mx != NULL) {
			fprintf(fp, "MX %u %s", res->mx[i].preference,
			    res->mx[i].host);
		} else if (res->txt != NULL) {
			fputs("TXT ", fp);
			print_txt(fp, res->txt[i].data, res->txt[i].len);
		} else if (res->addr[i].ss_family == AF_INET) {
			const struct sockaddr_in *sin =
			    (const struct sockaddr_in *)&res->addr[i];

			inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
			fprintf(fp, "A %s", ip);
		} else {
			const struct sockaddr_in6 *sin6 =
			    (const struct sockaddr_in6 *)&res->addr[i];

			inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
			fprintf(fp, "AAAA %s", ip);
		}
		fputc('\n', fp);
	}
	if (verbose)
		fprintf(fp, "%s%sTTL %u\n", pre, sp, res->ttl);
}

static void
one_finished(struct probe_query *pq, int status)
{
	if (status != DNS_OK)
		pq->failed = 1;
	if (--pq->left > 0) {
		struct timeval tv = { wait_ms / 1000, (wait_ms % 1000) * 1000 };

		if (wait_ms == 0)
			start_one(pq);
		else if (evtimer_add(pq->again, &tv) == -1)
			abort();
		return;
	}
	if (--outstanding == 0)
		event_base_loopbreak(base);
}

/* --- async mode ----------------------------------------------------- */

static void
linger_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

static void
lookup_cb(int status, const struct dns_result *res, void *arg)
{
	struct probe_query *pq = arg;

	format_result(stdout, pq->label, status, res);
	fflush(stdout);
	if (free_in_cb) {
		/* -F: everything still running must vanish silently */
		struct timeval tv = { 0, 0 };

		dns_resolver_free(&resolver);
		printf("freed\n");
		fflush(stdout);
		free_in_cb = 0;
		tv.tv_sec = wait_ms / 1000 + 1;
		tv.tv_usec = (wait_ms % 1000) * 1000;
		if (status != DNS_OK)
			pq->failed = 1;
		if (evtimer_add(linger, &tv) == -1)
			abort();
		return;
	}
	one_finished(pq, status);
}

/* --- sync mode (-S) ------------------------------------------------- */

static void *
sync_thread(void *arg)
{
	struct probe_query *pq = arg;
	struct dns_result *res = NULL;
	int status = DNS_TEMPFAIL;
	FILE *fp;
	char byte = 0;

	fp = open_memstream(&pq->out, &pq->outlen);
	if (fp == NULL)
		abort();
	if (dns_lookup_sync(pq->r, pq->name, pq->type, &res, &status) == -1) {
		status = DNS_PERMFAIL;
		fprintf(fp, "%s%serror: lookup refused\n",
		    pq->label ? pq->label : "", pq->label ? " " : "");
	} else
		format_result(fp, pq->label, status, res);
	fclose(fp);
	dns_result_free(&res);
	pq->failed = status != DNS_OK;	/* read after pthread_join */
	if (write(pq->wake_fd, &byte, 1) != 1)
		abort();
	return (NULL);
}

/* sync_wake - a worker finished: print in argument order when all did */
static void
sync_wake(evutil_socket_t fd, short what, void *arg)
{
	char byte;

	(void)what;
	(void)arg;
	while (read(fd, &byte, 1) == 1) {
		if (--outstanding == 0) {
			event_base_loopbreak(base);
			return;
		}
	}
}

static void
again_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_one(arg);
}

static void
start_one(struct probe_query *pq)
{
	char err[256];

	if (dns_lookup(resolver, pq->name, pq->type, lookup_cb, pq, &pq->id,
	    err, sizeof(err)) == -1) {
		printf("%s%serror: %s\n", pq->label ? pq->label : "",
		    pq->label ? " " : "", err);
		pq->failed = 1;
		pq->left = 1;
		one_finished(pq, DNS_PERMFAIL);
	}
}

int
main(int argc, char **argv)
{
	struct dns_options opt;
	struct probe_query *queries;
	struct event *wake = NULL;
	char err[256];
	int ch, n, i, sync_mode = 0, repeat = 1, rc = 0, fds[2] = { -1, -1 };
	int cancel_mode = 0;

	memset(&opt, 0, sizeof(opt));
	while ((ch = getopt(argc, argv, "CFr:St:vw:")) != -1) {
		switch (ch) {
		case 'C':
			cancel_mode = 1;
			break;
		case 'F':
			free_in_cb = 1;
			break;
		case 'r':
			repeat = atoi(optarg);
			if (repeat < 1)
				usage();
			break;
		case 'S':
			sync_mode = 1;
			break;
		case 't':
			opt.timeout_ms = atoi(optarg);
			if (opt.timeout_ms <= 0)
				usage();
			break;
		case 'v':
			verbose = 1;
			break;
		case 'w':
			wait_ms = atoi(optarg);
			if (wait_ms < 0)
				usage();
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		usage();
	opt.forwarder = argv[0];
	argc--;
	argv++;

	if (argc == 2 && strchr(argv[0], ':') == NULL) {
		n = 1;
		if ((queries = calloc(1, sizeof(*queries))) == NULL)
			abort();
		if (parse_type(argv[0], &queries[0].type) == -1 ||
		    strlen(argv[1]) >= sizeof(queries[0].name))
			usage();
		strcpy(queries[0].name, argv[1]);
	} else {
		n = argc;
		if ((queries = calloc((size_t)n, sizeof(*queries))) == NULL)
			abort();
		for (i = 0; i < n; i++) {
			char *colon = strchr(argv[i], ':');

			if (colon == NULL ||
			    strlen(colon + 1) >= sizeof(queries[i].name))
				usage();
			*colon = '\0';
			if (parse_type(argv[i], &queries[i].type) == -1)
				usage();
			strcpy(queries[i].name, colon + 1);
			*colon = ':';
			queries[i].label = argv[i];
		}
	}

	if ((base = event_base_new()) == NULL) {
		fprintf(stderr, "dns_probe: cannot create event base\n");
		return (2);
	}
	resolver = dns_resolver_new(base, &opt, err, sizeof(err));
	if (resolver == NULL) {
		fprintf(stderr, "dns_probe: %s\n", err);
		event_base_free(base);
		free(queries);
		return (2);
	}
	outstanding = n;
	if (sync_mode) {
		/* -r does not apply: one blocking look-up per thread */
		if (pipe(fds) == -1)
			abort();
		evutil_make_socket_nonblocking(fds[0]);
		wake = event_new(base, fds[0], EV_READ | EV_PERSIST, sync_wake,
		    NULL);
		if (wake == NULL || event_add(wake, NULL) == -1)
			abort();
		for (i = 0; i < n; i++) {
			queries[i].r = resolver;
			queries[i].wake_fd = fds[1];
			if (pthread_create(&queries[i].thread, NULL,
			    sync_thread, &queries[i]) != 0)
				abort();
		}
		event_base_dispatch(base);
		for (i = 0; i < n; i++) {
			pthread_join(queries[i].thread, NULL);
			fwrite(queries[i].out, 1, queries[i].outlen, stdout);
			free(queries[i].out);
		}
		event_free(wake);
		close(fds[0]);
		close(fds[1]);
	} else {
		for (i = 0; i < n; i++) {
			queries[i].left = repeat;
			queries[i].again = evtimer_new(base, again_cb,
			    &queries[i]);
			if (queries[i].again == NULL)
				abort();
			start_one(&queries[i]);
		}
		if (cancel_mode) {
			int c = 0;

			for (i = 0; i + 1 < n; i++)
				if (dns_cancel(resolver, queries[i].id) == 0) {
					c++;
					outstanding--;
				}
			if (dns_cancel(resolver, 0) != -1 ||
			    dns_cancel(resolver, queries[0].id) != -1)
				printf("cancel of an unknown id succeeded\n");
			printf("cancelled %d pending %zu\n", c,
			    dns_pending(resolver));
		}
		if (free_in_cb) {
			wait_ms = opt.timeout_ms ? opt.timeout_ms :
			    DNS_TIMEOUT_DEFAULT_MS;
			if ((linger = evtimer_new(base, linger_done,
			    NULL)) == NULL)
				abort();
		}
		if (outstanding > 0)
			event_base_dispatch(base);
	}
	for (i = 0; i < n; i++) {
		if (queries[i].failed)
			rc = 1;
		if (queries[i].again != NULL)
			event_free(queries[i].again);
	}
	dns_resolver_free(&resolver);
	if (linger != NULL)
		event_free(linger);
	event_base_free(base);
	free(queries);
	return (rc);
}
