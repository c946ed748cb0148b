/*
 * ctl_preflight.c - "ferryctl preflight": the checklist before a
 * cutover, walked by a machine (ferryctl(8)).
 *
 * The run: both IMAP servers before login (ctl_preflight_server.c),
 * every account on both sides and the connection limit
 * (ctl_preflight_imap.c), every [cutover] domain's DNS
 * (ctl_preflight_dns.c).  Each check adds rows to its section's table;
 * this file prints the tables (or one JSON document) and the verdict
 * line, "ready" or "N blocking problems".
 *
 * Exit status: 0 ready, 1 blocking problems, 2 configuration error
 * (no [syncd] source/destination/accounts, an unreadable accounts file,
 * --account naming nobody).
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "accounts.h"
#include "cli.h"
#include "ctl.h"
#include "ctl_preflight_p.h"
#include "json.h"
#include "log.h"
#include "tls.h"
#include "util.h"

static const struct {
	const char	*name;
	const char	*title;
	const char	*cols[PF_COLS_MAX];
} table_defs[PF_T_COUNT_] = {
	[PF_T_SERVERS] = { "servers", "IMAP servers",
	    { "side", "server", "tcp", "tls", "certificate", "capabilities" } },
	[PF_T_CREDS] = { "credentials", "Credentials",
	    { "account", "side", "user", "login" } },
	[PF_T_ACCOUNTS] = { "accounts", "Accounts",
	    { "account", "folders", "messages", "size", "largest",
	      "dest_free", "appendlimit", "note", "_size_bytes",
	      "_largest_bytes", "_dest_free_bytes", "_appendlimit_bytes" } },
	[PF_T_SPECIAL] = { "special_folders", "Special folders",
	    { "account", "side", "sent", "drafts", "trash", "junk",
	      "archive" } },
	[PF_T_FOLDERS] = { "folders", "Folder mapping",
	    { "account", "source", "messages", "destination", "action" } },
	[PF_T_CONNS] = { "connections", "Connection limit",
	    { "side", "server", "wanted", "opened", "note" } },
	[PF_T_MX] = { "mx", "MX per resolver",
	    { "domain", "resolver", "mx", "ttl", "note" } },
	[PF_T_RECORDS] = { "dns_records", "SPF, DMARC, DKIM",
	    { "domain", "check", "record", "result" } },
};

static const char *const level_names[] = { "ok", "warn", "block" };

/* pf_fmt - a printf-formatted cell in the caller's buffer; returns buf */
const char *
pf_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return (buf);
}

/* pf_size - bytes for people, "1.5 MiB" (exact count in JSON too) */
const char *
pf_size(char *buf, size_t len, uint64_t n)
{
	return (fmt_size(buf, len, n));
}

/* pf_row - append a row to table id: its ncols cells (copied) and level */
void
pf_row(struct preflight *pf, enum pf_table_id id, enum pf_level lv, ...)
{
	struct pf_table *t = &pf->t[id];
	const char *s;
	va_list ap;
	size_t i;

	if (t->oom)
		return;
	if (t->nrows == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 8;
		char **c = reallocarray(t->cells, nc * t->ncols, sizeof(*c));
		enum pf_level *l;

		if (c == NULL) {
			t->oom = 1;
			return;
		}
		t->cells = c;
		if ((l = reallocarray(t->levels, nc, sizeof(*l))) == NULL) {
			t->oom = 1;
			return;
		}
		t->levels = l;
		t->cap = nc;
	}
	va_start(ap, lv);
	for (i = 0; i < t->ncols; i++) {
		s = va_arg(ap, const char *);
		t->cells[t->nrows * t->ncols + i] = strdup(s ? s : "");
		if (t->cells[t->nrows * t->ncols + i] == NULL)
			t->oom = 1;
	}
	va_end(ap);
	t->levels[t->nrows++] = lv;
}

/* tables_free - every table's cells and rows */
static void
tables_free(struct preflight *pf)
{
	size_t i, k;

	for (i = 0; i < PF_T_COUNT_; i++) {
		for (k = 0; k < pf->t[i].nrows * pf->t[i].ncols; k++)
			free(pf->t[i].cells[k]);
		free(pf->t[i].cells);
		free(pf->t[i].levels);
	}
}

/* count_levels - blocking and warning rows over all tables */
static void
count_levels(const struct preflight *pf, size_t *block_r, size_t *warn_r)
{
	size_t i, k;

	*block_r = *warn_r = 0;
	for (i = 0; i < PF_T_COUNT_; i++)
		for (k = 0; k < pf->t[i].nrows; k++) {
			if (pf->t[i].levels[k] == PF_BLOCK)
				(*block_r)++;
			else if (pf->t[i].levels[k] == PF_WARN)
				(*warn_r)++;
		}
}

/* ---- output ------------------------------------------------------- */

#define CELL_WIDTH	60	/* text tables: longer cells are cut, */
#define LAST_WIDTH	120	/* the last column (notes) less so */

/* print_table - one section as an aligned text table; every cell through
 * clean() (server text may hold anything), "_" columns left out */
static void
print_table(const struct pf_table *t)
{
	size_t w[PF_COLS_MAX + 1], i, k, n, last;
	char buf[LAST_WIDTH * 4 + 8];

	if (t->nrows == 0)
		return;
	printf("%s\n", t->title);
	for (last = t->ncols; last > 0 && t->cols[last - 1][0] == '_'; last--)
		;
	for (i = 0; i < t->ncols; i++)
		w[i] = strlen(t->cols[i]);
	for (k = 0; k < t->nrows; k++)
		for (i = 0; i < last; i++) {
			clean(buf, sizeof(buf), t->cells[k * t->ncols + i],
			    i + 1 == last ? LAST_WIDTH : CELL_WIDTH);
			if ((n = strlen(buf)) > w[i])
				w[i] = n;
		}
	printf("  ");
	for (i = 0; i < last; i++)
		printf("%-*s  ", (int)w[i], t->cols[i]);
	printf("status\n");
	for (k = 0; k < t->nrows; k++) {
		printf("  ");
		for (i = 0; i < last; i++)
			printf("%-*s  ", (int)w[i], clean(buf, sizeof(buf),
			    t->cells[k * t->ncols + i], i + 1 == last ?
			    LAST_WIDTH : CELL_WIDTH));
		printf("%s\n", t->levels[k] == PF_BLOCK ? "BLOCK" :
		    level_names[t->levels[k]]);
	}
	printf("\n");
}

/* json_cell - one cell; a "_name" column is the number "name" (null
 * when the cell is empty: not known) */
static void
json_cell(struct json *j, const char *col, const char *v)
{
	unsigned long long n;
	char *end;

	if (col[0] != '_') {
		json_key(j, col);
		json_string(j, v);
		return;
	}
	json_key(j, col + 1);
	n = strtoull(v, &end, 10);
	if (*v == '\0' || *end != '\0')
		json_null(j);
	else
		json_uint(j, n);
}

/* print_json - the whole run as one JSON document on stdout */
static int
print_json(const struct preflight *pf, size_t nblock, size_t nwarn)
{
	struct json j;
	size_t i, k, c;

	json_init(&j, JSON_PRETTY);
	json_object_begin(&j);
	for (i = 0; i < PF_T_COUNT_; i++) {
		const struct pf_table *t = &pf->t[i];

		json_key(&j, t->name);
		json_array_begin(&j);
		for (k = 0; k < t->nrows; k++) {
			json_object_begin(&j);
			for (c = 0; c < t->ncols; c++)
				json_cell(&j, t->cols[c],
				    t->cells[k * t->ncols + c]);
			json_key(&j, "status");
			json_string(&j, level_names[t->levels[k]]);
			json_object_end(&j);
		}
		json_array_end(&j);
	}
	json_key(&j, "blocking");
	json_uint(&j, nblock);
	json_key(&j, "warnings");
	json_uint(&j, nwarn);
	json_key(&j, "verdict");
	json_string(&j, nblock == 0 ? "ready" : "blocking problems");
	json_object_end(&j);
	return (json_print(&j));
}

/* ---- the command ---------------------------------------------------- */

/* config_usable - what preflight needs of [syncd]; 0 or -1 with err */
static int
config_usable(const struct config *cfg, char *err, size_t errlen)
{
	if (!cfg->syncd.source.set || !cfg->syncd.destination.set) {
		errbuf_set(err, errlen, "[syncd] source and destination "
		    "must be set");
		return (-1);
	}
	if (cfg->syncd.accounts == NULL || *cfg->syncd.accounts == '\0') {
		errbuf_set(err, errlen, "[syncd] accounts must be set");
		return (-1);
	}
	return (0);
}

/* cmd_preflight - the command: servers, accounts, DNS, then the verdict */
int
cmd_preflight(struct ctl *ctl, const char *arg)
{
	struct preflight pf;
	struct accounts *accts = NULL;
	const char *ca;
	char err[512];
	size_t i, nblock, nwarn;
	int rc = EXIT_USAGE;

	(void)arg;
	/* the tables say what went wrong; the IMAP client's info lines
	 * would only interleave with them */
	log_set_level(LOG_LVL_ERROR);
	memset(&pf, 0, sizeof(pf));
	for (i = 0; i < PF_T_COUNT_; i++) {
		pf.t[i].name = table_defs[i].name;
		pf.t[i].title = table_defs[i].title;
		memcpy(pf.t[i].cols, table_defs[i].cols, sizeof(pf.t[i].cols));
		while (pf.t[i].ncols < PF_COLS_MAX &&
		    pf.t[i].cols[pf.t[i].ncols] != NULL)
			pf.t[i].ncols++;
	}
	pf.cfg = &ctl->cfg;
	pf.only = ctl->account;
	pf.timeout = ctl->timeout > 0 ? ctl->timeout : 10;
	if (config_usable(&ctl->cfg, err, sizeof(err)) == -1 ||
	    accounts_load(ctl->cfg.syncd.accounts, &accts, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "ferryctl: preflight: %s\n", err);
		goto out;
	}
	pf.accts = accts;
	if (pf.only != NULL && accounts_find(accts, pf.only) == NULL) {
		fprintf(stderr, "ferryctl: preflight: no account \"%s\" in "
		    "%s\n", clean(err, sizeof(err), pf.only, 80),
		    ctl->cfg.syncd.accounts);
		goto out;
	}
	ca = ctl->cfg.syncd.ca_file && *ctl->cfg.syncd.ca_file ?
	    ctl->cfg.syncd.ca_file : NULL;
	if ((pf.ssl_ctx = tls_client_ctx_new(ca, err, sizeof(err))) == NULL) {
		fprintf(stderr, "ferryctl: preflight: %s\n", err);
		goto out;
	}
	if ((pf.base = event_base_new()) == NULL) {
		fprintf(stderr, "ferryctl: preflight: cannot create the event "
		    "loop\n");
		rc = EXIT_RUNTIME;
		goto out;
	}
	pf_servers(&pf);
	if (pf_accounts(&pf, err, sizeof(err)) == -1) {
		fprintf(stderr, "ferryctl: preflight: %s\n", err);
		rc = EXIT_RUNTIME;
		goto out;
	}
	pf_dns(&pf);
	for (i = 0; i < PF_T_COUNT_; i++)
		if (pf.t[i].oom) {
			fprintf(stderr, "ferryctl: preflight: out of memory\n");
			rc = EXIT_RUNTIME;
			goto out;
		}
	count_levels(&pf, &nblock, &nwarn);
	if (ctl->json) {
		if (print_json(&pf, nblock, nwarn) == -1) {
			rc = EXIT_RUNTIME;
			goto out;
		}
	} else {
		for (i = 0; i < PF_T_COUNT_; i++)
			print_table(&pf.t[i]);
		if (nwarn)
			printf("%zu warning%s (not blocking)\n", nwarn,
			    nwarn == 1 ? "" : "s");
		if (nblock == 0)
			printf("ready\n");
		else
			printf("%zu blocking problem%s\n", nblock,
			    nblock == 1 ? "" : "s");
	}
	rc = nblock == 0 ? 0 : EXIT_RUNTIME;
out:
	if (pf.base != NULL)
		event_base_free(pf.base);
	tls_ctx_free(&pf.ssl_ctx);
	accounts_free(&accts);
	tables_free(&pf);
	return (rc);
}
