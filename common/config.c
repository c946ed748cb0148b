/*
 * config.c - load and validate mailferry.conf (see config.h).
 *
 * SECURITY: the file is trusted to the extent that root wrote it, but it
 * is still parsed defensively: every value is typed and range-checked,
 * unknown sections and keys are refused (a typo must not silently fall
 * back to a default during a cutover), and nothing is half-applied: a
 * failed load leaves the caller with nothing to free but the struct.
 */

#include <arpa/inet.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "log.h"
#include "util.h"

enum cfg_type {
	CT_STRING,	/* char * */
	CT_INT,		/* int64_t within [min, max] */
	CT_BOOL,	/* int */
	CT_DURATION,	/* int64_t seconds */
	CT_SIZE,	/* uint64_t bytes */
	CT_ENUM,	/* int, index into enums[] */
	CT_HOSTPORTS,	/* struct hostport_list */
	CT_LIST,	/* struct strlist */
	CT_IMAP_URL,	/* struct imap_url */
	CT_FACILITY,	/* int, a syslog facility */
};

#define CK_MULTI	0x01	/* the key may repeat; values accumulate */
#define CK_SINGLE	0x02	/* CT_HOSTPORTS: exactly one endpoint */
#define CK_WHOLE	0x04	/* CT_LIST: the whole value is one item */

struct cfg_key {
	const char	 *section;
	const char	 *name;
	enum cfg_type	  type;
	const char	 *def;		/* default, parsed like a file value */
	size_t		  off;		/* offset in struct config */
	const char *const *enums;	/* CT_ENUM: names, NULL-terminated */
	int64_t		  min, max;	/* CT_INT */
	int		  default_port;	/* CT_HOSTPORTS */
	unsigned	  flags;
};

static const char *const log_dests[] = { "syslog", "stderr", NULL };
static const char *const log_levels[] = {
	"debug", "info", "notice", "warning", "error", NULL };
static const char *const tls_policies[] = {
	"require", "opportunistic", "none", NULL };
static const char *const on_expire[] = { "bounce", "hold", NULL };
static const char *const crash_checks[] = { "inbox", "all", "off", NULL };
static const char *const spf_policies[] = {
	"tag", "reject-fail", "off", NULL };
static const char *const dkim_policies[] = { "tag", "off", NULL };

#define OFF(f)	offsetof(struct config, f)
#define KEY(sec, name, type, def, f)	{ sec, name, type, def, OFF(f), NULL, 0, 0, 0, 0 }
#define KINT(sec, name, def, f, lo, hi)	{ sec, name, CT_INT, def, OFF(f), NULL, lo, hi, 0, 0 }
#define KENUM(sec, name, def, f, e)	{ sec, name, CT_ENUM, def, OFF(f), e, 0, 0, 0, 0 }
#define KHOST(sec, name, def, f, port, fl) \
	{ sec, name, CT_HOSTPORTS, def, OFF(f), NULL, 0, 0, port, fl }
/* Lists may repeat: inih reads lines of at most 200 bytes, so a long
 * domain list is written over several "domains =" lines. */
#define KLIST(sec, name, f)		{ sec, name, CT_LIST, "", OFF(f), NULL, 0, 0, 0, CK_MULTI }
#define KPATTERNS(sec, name, f)		{ sec, name, CT_LIST, "", OFF(f), NULL, 0, 0, 0, CK_MULTI | CK_WHOLE }

/*
 * Every key mailferry knows.  Keep this table, conf/mailferry.conf.example
 * and man/mailferry.conf.5 in step: a key missing from the example is a
 * key admins never find.
 */
static const struct cfg_key keys[] = {
	KEY("global", "state_dir", CT_STRING, "/var/lib/mailferry", global.state_dir),
	KEY("global", "user", CT_STRING, "", global.user),
	KENUM("global", "log", "syslog", global.log, log_dests),
	KENUM("global", "log_level", "info", global.log_level, log_levels),
	KEY("global", "log_facility", CT_FACILITY, "mail", global.log_facility),
	KEY("global", "map_size", CT_SIZE, "16G", global.map_size),

	KHOST("relay", "listen", "0.0.0.0:25", relay.listen, 25, 0),
	KEY("relay", "hostname", CT_STRING, "", relay.hostname),
	KLIST("relay", "domains", relay.domains),
	KEY("relay", "recipients", CT_STRING, "", relay.recipients),
	KEY("relay", "max_message_size", CT_SIZE, "50M", relay.max_message_size),
	KINT("relay", "max_recipients", "1000", relay.max_recipients, 1, 100000),
	KINT("relay", "max_connections", "1000", relay.max_connections, 1, 1000000),
	KINT("relay", "max_connections_per_ip", "50", relay.max_connections_per_ip, 1, 1000000),
	KEY("relay", "max_line_length", CT_SIZE, "64K", relay.max_line_length),
	KEY("relay", "timeout", CT_DURATION, "5m", relay.timeout),
	KEY("relay", "data_timeout", CT_DURATION, "10m", relay.data_timeout),
	KEY("relay", "tls_cert", CT_STRING, "", relay.tls_cert),
	KEY("relay", "tls_key", CT_STRING, "", relay.tls_key),
	KEY("relay", "pid_file", CT_STRING, "", relay.pid_file),
	KEY("relay", "command_deadline", CT_DURATION, "5m", relay.command_deadline),
	KINT("relay", "min_data_rate", "500", relay.min_data_rate, 0, 1000000000),
	KINT("relay", "stress_threshold", "80", relay.stress_threshold, 1, 100),
	KEY("relay", "stress_timeout", CT_DURATION, "10s", relay.stress_timeout),
	KINT("relay", "stress_max_connections_per_ip", "10", relay.stress_max_connections_per_ip, 1, 1000000),
	KEY("relay", "accounts", CT_STRING, "", relay.accounts),

	KHOST("forward", "upstream", "", forward.upstream, 25, 0),
	KENUM("forward", "tls", "require", forward.tls, tls_policies),
	KEY("forward", "ca_file", CT_STRING, "", forward.ca_file),
	KEY("forward", "helo_name", CT_STRING, "", forward.helo_name),
	KHOST("forward", "copy_to", "", forward.copy_to, 25, CK_SINGLE),
	KINT("forward", "concurrency", "10", forward.concurrency, 1, 1000),
	KEY("forward", "connect_timeout", CT_DURATION, "30s", forward.connect_timeout),
	KEY("forward", "retry_initial", CT_DURATION, "1m", forward.retry_initial),
	KEY("forward", "retry_max", CT_DURATION, "30m", forward.retry_max),
	KEY("forward", "queue_lifetime", CT_DURATION, "5d", forward.queue_lifetime),
	KENUM("forward", "on_expire", "bounce", forward.on_expire, on_expire),
	KHOST("forward", "dsn_relay", "", forward.dsn_relay, 25, CK_SINGLE),
	KEY("forward", "srs_secret", CT_STRING, "", forward.srs_secret),
	KEY("forward", "srs_domain", CT_STRING, "", forward.srs_domain),
	KENUM("forward", "crash_check", "inbox", forward.crash_check, crash_checks),
	KEY("forward", "crash_check_timeout", CT_DURATION, "1m", forward.crash_check_timeout),
	KEY("forward", "crash_check_settle", CT_DURATION, "10s", forward.crash_check_settle),

	KENUM("checks", "spf", "tag", checks.spf, spf_policies),
	KENUM("checks", "dkim", "tag", checks.dkim, dkim_policies),
	KHOST("checks", "dns", "", checks.dns, 53, CK_SINGLE),
	KEY("checks", "dns_timeout", CT_DURATION, "5s", checks.dns_timeout),
	KEY("checks", "authserv_id", CT_STRING, "", checks.authserv_id),

	KEY("dedupe", "ttl", CT_DURATION, "14d", dedupe.ttl),

	KEY("syncd", "source", CT_IMAP_URL, "", syncd.source),
	KEY("syncd", "destination", CT_IMAP_URL, "", syncd.destination),
	KEY("syncd", "accounts", CT_STRING, "", syncd.accounts),
	KINT("syncd", "parallel", "4", syncd.parallel, 1, 256),
	KINT("syncd", "connections_per_server", "8", syncd.connections_per_server, 1, 1024),
	KINT("syncd", "keep_connections", "256", syncd.keep_connections, 0, 100000),
	KEY("syncd", "interval", CT_DURATION, "15m", syncd.interval),
	KEY("syncd", "destination_check_interval", CT_DURATION, "1h", syncd.destination_check_interval),
	KEY("syncd", "delete", CT_BOOL, "no", syncd.delete),
	KPATTERNS("syncd", "include", syncd.include),
	KPATTERNS("syncd", "exclude", syncd.exclude),
	KPATTERNS("syncd", "map", syncd.map),
	KEY("syncd", "skip_non_mail", CT_BOOL, "yes", syncd.skip_non_mail),
	KEY("syncd", "accept_altered", CT_BOOL, "no", syncd.accept_altered),
	KEY("syncd", "tls_verify", CT_BOOL, "yes", syncd.tls_verify),
	KEY("syncd", "ca_file", CT_STRING, "", syncd.ca_file),
	KEY("syncd", "max_bytes_per_second", CT_SIZE, "0", syncd.max_bytes_per_second),
	KINT("syncd", "max_messages_per_second", "0", syncd.max_messages_per_second, 0, 1000000),
	KEY("syncd", "pid_file", CT_STRING, "", syncd.pid_file),
	KHOST("syncd", "http", "127.0.0.1:8026", syncd.http, 0, CK_SINGLE),

	KLIST("cutover", "domains", cutover.domains),
	KHOST("cutover", "resolvers", "", cutover.resolvers, 53, 0),
	KLIST("cutover", "new_mx", cutover.new_mx),
	KLIST("cutover", "old_mx", cutover.old_mx),
	KEY("cutover", "check_interval", CT_DURATION, "5m", cutover.check_interval),
	KEY("cutover", "quiet_period", CT_DURATION, "24h", cutover.quiet_period),
	KEY("cutover", "catchup_interval", CT_DURATION, "2m", cutover.catchup_interval),
	KLIST("cutover", "new_spf", cutover.new_spf),
	KLIST("cutover", "new_dkim_selectors", cutover.new_dkim_selectors),
	KEY("cutover", "rollback", CT_BOOL, "no", cutover.rollback),

	KEY("control", "socket", CT_STRING, "", control.socket),
	KHOST("control", "http", "127.0.0.1:8025", control.http, 0, CK_SINGLE),
	KINT("control", "max_connections", "32", control.max_connections, 1, 100000),
	KEY("control", "auth_token_file", CT_STRING, "", control.auth_token_file),
	KEY("control", "auth_user", CT_STRING, "", control.auth_user),
	KEY("control", "auth_password_file", CT_STRING, "", control.auth_password_file),
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

static const struct {
	const char *name;
	int facility;
} facilities[] = {
	{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
	{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
	{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

/* The parse in progress: inih calls back with no line number, so the
 * line reader counts lines itself. */
struct cfg_parse {
	struct config	*cfg;
	FILE		*fp;
	unsigned	 line;		/* physical line last read */
	unsigned	 err_line;	/* first error's line, 0 = none */
	char		 err[512];
	unsigned char	 seen[NKEYS];
	unsigned	 key_line[NKEYS]; /* line each key was first set on */
	int		 overlong;	/* the current line did not fit */
};

#define FIELD(cfg, k, type)	((type *)(void *)((char *)(cfg) + (k)->off))

/* hostport_list_clear - free the endpoints */
static void
hostport_list_clear(struct hostport_list *l)
{
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

/* key_clear - release whatever a key's field holds */
static void
key_clear(struct config *cfg, const struct cfg_key *k)
{
	switch (k->type) {
	case CT_STRING:
		free(*FIELD(cfg, k, char *));
		*FIELD(cfg, k, char *) = NULL;
		break;
	case CT_HOSTPORTS:
		hostport_list_clear(FIELD(cfg, k, struct hostport_list));
		break;
	case CT_LIST:
		strlist_clear(FIELD(cfg, k, struct strlist));
		break;
	default:
		break;
	}
}

/* parse_archive_url - maildir:///abs/path, mbox:///abs/path[/] */
static int
parse_archive_url(const char *s, struct imap_url *u, char *err,
    size_t errlen)
{
	int md = strncmp(s, "maildir://", 10) == 0;
	const char *p = s + (md ? 10 : 7), *q;

	if (*p != '/') {
		snprintf(err, errlen, "bad archive URL \"%s\": the path must be "
		    "absolute (%s:///path)", s, md ? "maildir" : "mbox");
		return (-1);
	}
	if (strlen(p) >= sizeof(u->path)) {
		snprintf(err, errlen, "bad archive URL \"%s\": path too long", s);
		return (-1);
	}
	for (q = p; *q != '\0'; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f) {
			snprintf(err, errlen, "bad archive URL: control "
			    "character in the path");
			return (-1);
		}
	if (strstr(p, "/../") != NULL || (strlen(p) >= 3 &&
	    strcmp(p + strlen(p) - 3, "/..") == 0)) {
		snprintf(err, errlen, "bad archive URL \"%s\": \"..\" in the "
		    "path", s);
		return (-1);
	}
	memcpy(u->path, p, strlen(p) + 1);
	u->kind = md ? CFG_IMAP_KIND_MAILDIR : CFG_IMAP_KIND_MBOX;
	u->tls = CFG_IMAP_TLS_NONE;
	snprintf(u->addr.host, sizeof(u->addr.host), "%s",
	    md ? "maildir" : "mbox");
	u->addr.port = 0;
	u->set = 1;
	return (0);
}

/* parse_imap_url - imaps://host[:993], imap://host[:143][?tls=none] */
static int
parse_imap_url(const char *s, struct imap_url *u, char *err, size_t errlen)
{
	char hostpart[HOSTPORT_HOSTMAX + 16];
	const char *rest, *q;
	size_t n;

	memset(u, 0, sizeof(*u));
	if (*s == '\0')
		return (0);	/* unset */
	if (strncmp(s, "maildir://", 10) == 0 || strncmp(s, "mbox://", 7) == 0)
		return (parse_archive_url(s, u, err, errlen));
	if (strncmp(s, "imaps://", 8) == 0) {
		u->tls = CFG_IMAP_TLS_IMPLICIT;
		rest = s + 8;
	} else if (strncmp(s, "imap://", 7) == 0) {
		u->tls = CFG_IMAP_TLS_STARTTLS;
		rest = s + 7;
	} else {
		snprintf(err, errlen,
		    "bad IMAP URL \"%s\" (use imaps://host[:port] or imap://host[:port])", s);
		return (-1);
	}
	q = rest + strcspn(rest, "/?");
	n = (size_t)(q - rest);
	if (n >= sizeof(hostpart)) {
		snprintf(err, errlen, "bad IMAP URL \"%s\": host too long", s);
		return (-1);
	}
	memcpy(hostpart, rest, n);
	hostpart[n] = '\0';
	if (*q == '/')
		q++;
	if (strcmp(q, "?tls=none") == 0) {
		if (u->tls == CFG_IMAP_TLS_IMPLICIT) {
			snprintf(err, errlen, "bad IMAP URL \"%s\": imaps:// always uses TLS", s);
			return (-1);
		}
		u->tls = CFG_IMAP_TLS_NONE;
	} else if (*q != '\0') {
		snprintf(err, errlen, "bad IMAP URL \"%s\": only \"?tls=none\" may follow the host", s);
		return (-1);
	}
	if (parse_hostport(hostpart, u->tls == CFG_IMAP_TLS_IMPLICIT ? 993 : 143,
	    &u->addr, err, errlen) == -1)
		return (-1);
	u->set = 1;
	return (0);
}

/* parse_hostports - a comma/blank separated list of endpoints */
static int
parse_hostports(const struct cfg_key *k, const char *v,
    struct hostport_list *out, char *err, size_t errlen)
{
	struct strlist words = { 0 };
	struct hostport *items = NULL;
	size_t i;

	if (strlist_split(&words, v) == -1) {
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	if ((k->flags & CK_SINGLE) && words.count > 1) {
		snprintf(err, errlen, "takes one address, not %zu", words.count);
		goto fail;
	}
	if (words.count > 0 &&
	    (items = calloc(words.count, sizeof(*items))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (i = 0; i < words.count; i++)
		if (parse_hostport(words.items[i], k->default_port, &items[i],
		    err, errlen) == -1)
			goto fail;
	out->items = items;
	out->count = words.count;
	strlist_clear(&words);
	return (0);
fail:
	free(items);
	strlist_clear(&words);
	return (-1);
}

/* key_set - parse v for key k into cfg; the old value is replaced */
static int
key_set(struct config *cfg, const struct cfg_key *k, const char *v,
    char *err, size_t errlen)
{
	int64_t i64;
	uint64_t u64;
	int b;
	size_t i;
	char *s;

	switch (k->type) {
	case CT_STRING:
		if ((s = strdup(v)) == NULL)
			goto nomem;
		key_clear(cfg, k);
		*FIELD(cfg, k, char *) = s;
		return (0);
	case CT_INT:
		if (parse_int(v, k->min, k->max, &i64, err, errlen) == -1)
			return (-1);
		*FIELD(cfg, k, int64_t) = i64;
		return (0);
	case CT_BOOL:
		if (parse_bool(v, &b, err, errlen) == -1)
			return (-1);
		*FIELD(cfg, k, int) = b;
		return (0);
	case CT_DURATION:
		if (parse_duration(v, &i64, err, errlen) == -1)
			return (-1);
		*FIELD(cfg, k, int64_t) = i64;
		return (0);
	case CT_SIZE:
		if (parse_size(v, &u64, err, errlen) == -1)
			return (-1);
		*FIELD(cfg, k, uint64_t) = u64;
		return (0);
	case CT_ENUM:
		for (i = 0; k->enums[i] != NULL; i++)
			if (strcmp(v, k->enums[i]) == 0) {
				*FIELD(cfg, k, int) = (int)i;
				return (0);
			}
		{
			char list[256] = "";
			for (i = 0; k->enums[i] != NULL; i++) {
				if (i > 0)
					strncat(list, " | ", sizeof(list) - strlen(list) - 1);
				strncat(list, k->enums[i], sizeof(list) - strlen(list) - 1);
			}
			snprintf(err, errlen, "bad value \"%s\" (use %s)", v, list);
		}
		return (-1);
	case CT_FACILITY:
		for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
			if (strcmp(v, facilities[i].name) == 0) {
				*FIELD(cfg, k, int) = facilities[i].facility;
				return (0);
			}
		snprintf(err, errlen,
		    "bad syslog facility \"%s\" (use mail, daemon, user or local0..local7)", v);
		return (-1);
	case CT_HOSTPORTS: {
		struct hostport_list l = { 0 };
		if (parse_hostports(k, v, &l, err, errlen) == -1)
			return (-1);
		key_clear(cfg, k);
		*FIELD(cfg, k, struct hostport_list) = l;
		return (0);
	}
	case CT_LIST: {
		struct strlist *l = FIELD(cfg, k, struct strlist);
		if (!(k->flags & CK_MULTI))
			key_clear(cfg, k);
		if (k->flags & CK_WHOLE) {
			/* one whole value per line: folder names may hold blanks */
			if (*v != '\0' && strlist_add(l, v, strlen(v)) == -1)
				goto nomem;
		} else if (strlist_split(l, v) == -1)
			goto nomem;
		return (0);
	}
	case CT_IMAP_URL:
		return (parse_imap_url(v, FIELD(cfg, k, struct imap_url), err, errlen));
	}
	snprintf(err, errlen, "internal error: unknown key type");
	return (-1);
nomem:
	snprintf(err, errlen, "out of memory");
	return (-1);
}

/* find_key - the table entry for [section] name, or NULL */
static const struct cfg_key *
find_key(const char *section, const char *name, int *section_known_r)
{
	size_t i;

	*section_known_r = 0;
	for (i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) != 0)
			continue;
		*section_known_r = 1;
		if (strcmp(keys[i].name, name) == 0)
			return (&keys[i]);
	}
	return (NULL);
}

/* parse_error - remember the first error of the file */
static void
parse_error(struct cfg_parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
parse_error(struct cfg_parse *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err_line != 0)
		return;
	p->err_line = p->line ? p->line : 1;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
}

/* ini_handler - inih's callback for each "name = value" */
static int
cfg_ini_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct cfg_parse *p = user;
	const struct cfg_key *k;
	char why[384];
	int known;
	size_t idx;

	if (p->overlong) {
		parse_error(p, "line too long");
		return (0);
	}
	if (*section == '\0') {
		parse_error(p, "\"%s\" is outside any [section]", name);
		return (0);
	}
	k = find_key(section, name, &known);
	if (k == NULL) {
		if (known)
			parse_error(p, "unknown key \"%s\" in [%s]", name, section);
		else
			parse_error(p, "unknown section [%s]", section);
		return (0);
	}
	idx = (size_t)(k - keys);
	if (p->seen[idx] && !(k->flags & CK_MULTI)) {
		parse_error(p, "[%s] %s is set twice", section, name);
		return (0);
	}
	if (!p->seen[idx])
		p->key_line[idx] = p->line ? p->line : 1;
	p->seen[idx] = 1;
	why[0] = '\0';
	if (key_set(p->cfg, k, value, why, sizeof(why)) == -1) {
		parse_error(p, "[%s] %s: %s", section, name, why);
		return (0);
	}
	return (1);
}

/* cfg_ini_reader - fgets that counts lines and notices overlong ones */
static char *
cfg_ini_reader(char *buf, int num, void *stream)
{
	struct cfg_parse *p = stream;
	size_t len;
	int c;

	if (fgets(buf, num, p->fp) == NULL)
		return (NULL);
	p->line++;
	p->overlong = 0;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] != '\n' && !feof(p->fp)) {
		/* Swallow the rest so the next call starts a new line. */
		p->overlong = 1;
		while ((c = fgetc(p->fp)) != EOF && c != '\n')
			;
		parse_error(p, "line too long (at most %d bytes)", num - 2);
	}
	return (buf);
}

/* config_apply_defaults - every key to its documented default */
static int
config_apply_defaults(struct config *cfg, char *err, size_t errlen)
{
	char why[384];
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (key_set(cfg, &keys[i], keys[i].def, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "default of [%s] %s: %s",
			    keys[i].section, keys[i].name, why);
			return (-1);
		}
	return (0);
}

/* set_derived - fill keys whose default depends on another key */
static int
set_derived(struct config *cfg, char *err, size_t errlen)
{
	char host[256], path[4096];
	struct {
		char **field;
		const char *file;
	} paths[] = {
		{ &cfg->relay.pid_file, "ferry-relay.pid" },
		{ &cfg->syncd.pid_file, "ferry-syncd.pid" },
		{ &cfg->control.socket, "control.sock" },
	};
	size_t i;

	if (cfg->relay.hostname[0] == '\0') {
		if (gethostname(host, sizeof(host)) == -1) {
			snprintf(err, errlen, "gethostname: %s", strerror(errno));
			return (-1);
		}
		host[sizeof(host) - 1] = '\0';
		free(cfg->relay.hostname);
		if ((cfg->relay.hostname = strdup(host)) == NULL)
			goto nomem;
	}
	if (cfg->forward.helo_name[0] == '\0') {
		free(cfg->forward.helo_name);
		if ((cfg->forward.helo_name = strdup(cfg->relay.hostname)) == NULL)
			goto nomem;
	}
	if (cfg->cutover.old_mx.count == 0 &&
	    strlist_add(&cfg->cutover.old_mx, cfg->relay.hostname,
	    strlen(cfg->relay.hostname)) == -1)
		goto nomem;
	if (cfg->checks.authserv_id[0] == '\0') {
		free(cfg->checks.authserv_id);
		if ((cfg->checks.authserv_id = strdup(cfg->relay.hostname)) == NULL)
			goto nomem;
	}
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		if ((*paths[i].field)[0] != '\0')
			continue;
		if (config_state_path(cfg, paths[i].file, path, sizeof(path)) == -1) {
			snprintf(err, errlen, "[global] state_dir is too long");
			return (-1);
		}
		free(*paths[i].field);
		if ((*paths[i].field = strdup(path)) == NULL)
			goto nomem;
	}
	return (0);
nomem:
	snprintf(err, errlen, "out of memory");
	return (-1);
}

/* key_line - the line [section] name was first set on, 0: not in the file */
static unsigned
key_line(const unsigned *lines, const char *section, const char *name)
{
	size_t i;

	if (lines == NULL)
		return (0);
	for (i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0)
			return (lines[i]);
	return (0);
}

/*
 * config_host_is_loopback - whether a listener on host is reachable
 * from this machine only: 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z)
 * or "localhost".  Anything else, names and wildcards included, counts
 * as reachable from the network.
 */
int
config_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0)
		return (1);
	if (inet_pton(AF_INET, host, &a4) == 1)
		return ((ntohl(a4.s_addr) >> 24) == 127);
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return (IN6_IS_ADDR_LOOPBACK(&a6) ||
		    (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127));
	return (0);
}

/* check_control_auth - [control] auth_* and the non-loopback rule */
static int
check_control_auth(const struct config *cfg, const unsigned *lines,
    char *err, size_t errlen)
{
	const char *path = cfg->path ? cfg->path : "(defaults)";
	const struct hostport_list *http = &cfg->control.http;
	int user = cfg->control.auth_user[0] != '\0';
	int pass = cfg->control.auth_password_file[0] != '\0';
	int token = cfg->control.auth_token_file[0] != '\0';
	unsigned line;

	if (user != pass) {
		line = key_line(lines, "control", user ? "auth_user" :
		    "auth_password_file");
		snprintf(err, errlen, "%s:%u: [control] auth_user and "
		    "auth_password_file must be set together", path,
		    line ? line : 1);
		return (-1);
	}
	if (user && strchr(cfg->control.auth_user, ':') != NULL) {
		line = key_line(lines, "control", "auth_user");
		snprintf(err, errlen, "%s:%u: [control] auth_user: must not "
		    "contain ':' (HTTP basic authentication)", path,
		    line ? line : 1);
		return (-1);
	}
	if (http->count > 0 && !user && !token &&
	    !config_host_is_loopback(http->items[0].host)) {
		/* Queue, senders and accounts must not be open to the
		 * network: refuse before anything binds. */
		line = key_line(lines, "control", "http");
		snprintf(err, errlen, "%s:%u: [control] http: %s is not a "
		    "loopback address: set auth_token_file or auth_user and "
		    "auth_password_file, or listen on 127.0.0.1", path,
		    line ? line : 1, http->items[0].host[0] ?
		    http->items[0].host : "(every address)");
		return (-1);
	}
	return (0);
}

/*
 * check_consistency - rules that span keys, checked after the whole
 * file; lines (NULL for defaults) gives each key's line for the errors
 * that can name one.
 */
static int
check_consistency(const struct config *cfg, const unsigned *lines,
    char *err, size_t errlen)
{
	const char *path = cfg->path ? cfg->path : "(defaults)";
	unsigned line;

	if (cfg->global.state_dir[0] == '\0') {
		snprintf(err, errlen, "%s: [global] state_dir must not be empty", path);
		return (-1);
	}
	if ((cfg->relay.tls_cert[0] == '\0') != (cfg->relay.tls_key[0] == '\0')) {
		snprintf(err, errlen,
		    "%s: [relay] tls_cert and tls_key must be set together", path);
		return (-1);
	}
	if (cfg->forward.retry_initial <= 0 ||
	    cfg->forward.retry_max < cfg->forward.retry_initial) {
		snprintf(err, errlen,
		    "%s: [forward] retry_max must be at least retry_initial (> 0)", path);
		return (-1);
	}
	if ((cfg->forward.srs_secret[0] == '\0') != (cfg->forward.srs_domain[0] == '\0')) {
		snprintf(err, errlen,
		    "%s: [forward] srs_secret and srs_domain must be set together", path);
		return (-1);
	}
	if (cfg->forward.srs_secret[0] != '\0' &&
	    strlen(cfg->forward.srs_secret) < 16) {
		snprintf(err, errlen,
		    "%s: [forward] srs_secret must be at least 16 characters", path);
		return (-1);
	}
	if (cfg->relay.max_line_length < 1000) {
		snprintf(err, errlen,
		    "%s: [relay] max_line_length must be at least 1000 (RFC 5321)", path);
		return (-1);
	}
	if (cfg->cutover.domains.count > 0 && cfg->cutover.new_mx.count == 0) {
		/* Without it no answer can ever read as the switch. */
		line = key_line(lines, "cutover", "domains");
		snprintf(err, errlen, "%s:%u: [cutover] domains: needs new_mx "
		    "(the new provider's MX host patterns), or no answer can "
		    "ever count as the switch", path, line ? line : 1);
		return (-1);
	}
	if (cfg->cutover.domains.count > 0 &&
	    (cfg->cutover.check_interval <= 0 ||
	    cfg->cutover.catchup_interval <= 0)) {
		line = key_line(lines, "cutover", cfg->cutover.check_interval <= 0 ?
		    "check_interval" : "catchup_interval");
		snprintf(err, errlen, "%s:%u: [cutover] %s: must be more than 0",
		    path, line ? line : 1, cfg->cutover.check_interval <= 0 ?
		    "check_interval" : "catchup_interval");
		return (-1);
	}
	if (check_control_auth(cfg, lines, err, errlen) == -1)
		return (-1);
	return (0);
}

/* config_load_defaults - a config made of defaults alone */
int
config_load_defaults(struct config *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	if (config_apply_defaults(cfg, err, errlen) == -1 ||
	    set_derived(cfg, err, errlen) == -1) {
		config_free(cfg);
		return (-1);
	}
	return (0);
}

/*
 * config_load - read path; on error err holds "path:line: why" (or
 * "path: why") and cfg holds nothing to free.
 */
int
config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct cfg_parse p;
	char why[384];
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	if (config_apply_defaults(cfg, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	if ((cfg->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if ((p.fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	rc = ini_parse_stream(cfg_ini_reader, &p, cfg_ini_handler, &p);
	if (ferror(p.fp)) {
		snprintf(err, errlen, "%s: read error", path);
		fclose(p.fp);
		goto fail;
	}
	fclose(p.fp);
	if (p.err_line != 0) {
		snprintf(err, errlen, "%s:%u: %s", path, p.err_line, p.err);
		goto fail;
	}
	if (rc != 0) {
		/* inih's own complaint: no '=' or an unclosed [section]. */
		snprintf(err, errlen, "%s:%d: syntax error (expected \"key = value\" or \"[section]\")",
		    path, rc);
		goto fail;
	}
	if (set_derived(cfg, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	if (check_consistency(cfg, p.key_line, err, errlen) == -1)
		goto fail;
	return (0);
fail:
	config_free(cfg);
	return (-1);
}

/* config_require - the keys a program cannot run without */
int
config_require(const struct config *cfg, enum config_user who, char *err,
    size_t errlen)
{
	const char *path = cfg->path ? cfg->path : "(defaults)";

	switch (who) {
	case CONFIG_FOR_RELAY:
		if (cfg->relay.domains.count == 0) {
			snprintf(err, errlen,
			    "%s: [relay] domains is required: the relay accepts mail only for these domains", path);
			return (-1);
		}
		if (cfg->relay.listen.count == 0) {
			snprintf(err, errlen, "%s: [relay] listen is empty", path);
			return (-1);
		}
		if (cfg->forward.upstream.count == 0) {
			snprintf(err, errlen,
			    "%s: [forward] upstream is required: where accepted mail goes", path);
			return (-1);
		}
		return (0);
	case CONFIG_FOR_SYNCD:
		if (!cfg->syncd.source.set || !cfg->syncd.destination.set) {
			snprintf(err, errlen,
			    "%s: [syncd] source and destination are required", path);
			return (-1);
		}
		if (cfg->syncd.destination.kind != CFG_IMAP_KIND_IMAP) {
			snprintf(err, errlen, "%s: [syncd] destination must be "
			    "an IMAP server (maildir:// and mbox:// are read-only "
			    "sources)", path);
			return (-1);
		}
		if (cfg->syncd.accounts[0] == '\0') {
			snprintf(err, errlen, "%s: [syncd] accounts is required", path);
			return (-1);
		}
		return (0);
	case CONFIG_FOR_CTL:
		return (0);
	}
	return (0);
}

/* config_state_path - state_dir/name */
int
config_state_path(const struct config *cfg, const char *name, char *buf,
    size_t len)
{
	int n = snprintf(buf, len, "%s/%s", cfg->global.state_dir, name);

	return (n < 0 || (size_t)n >= len ? -1 : 0);
}

/* config_free - release everything; cfg may be reused or freed again */
void
config_free(struct config *cfg)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		key_clear(cfg, &keys[i]);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

/* key_equal - do a and b hold the same value for k? */
static int
key_equal(const struct config *a, const struct config *b,
    const struct cfg_key *k)
{
	const char *sa, *sb;
	const struct strlist *la, *lb;
	const struct hostport_list *ha, *hb;
	const struct imap_url *ua, *ub;
	size_t i;

	switch (k->type) {
	case CT_STRING:
		sa = *FIELD(a, k, char *);
		sb = *FIELD(b, k, char *);
		return (strcmp(sa ? sa : "", sb ? sb : "") == 0);
	case CT_INT:
	case CT_DURATION:
		return (*FIELD(a, k, int64_t) == *FIELD(b, k, int64_t));
	case CT_SIZE:
		return (*FIELD(a, k, uint64_t) == *FIELD(b, k, uint64_t));
	case CT_BOOL:
	case CT_ENUM:
	case CT_FACILITY:
		return (*FIELD(a, k, int) == *FIELD(b, k, int));
	case CT_LIST:
		la = FIELD(a, k, struct strlist);
		lb = FIELD(b, k, struct strlist);
		if (la->count != lb->count)
			return (0);
		for (i = 0; i < la->count; i++)
			if (strcmp(la->items[i], lb->items[i]) != 0)
				return (0);
		return (1);
	case CT_HOSTPORTS:
		ha = FIELD(a, k, struct hostport_list);
		hb = FIELD(b, k, struct hostport_list);
		if (ha->count != hb->count)
			return (0);
		for (i = 0; i < ha->count; i++)
			if (strcmp(ha->items[i].host, hb->items[i].host) != 0 ||
			    ha->items[i].port != hb->items[i].port)
				return (0);
		return (1);
	case CT_IMAP_URL:
		ua = FIELD(a, k, struct imap_url);
		ub = FIELD(b, k, struct imap_url);
		return (ua->set == ub->set && ua->tls == ub->tls &&
		    strcmp(ua->addr.host, ub->addr.host) == 0 &&
		    ua->addr.port == ub->addr.port && ua->kind == ub->kind &&
		    strcmp(ua->path, ub->path) == 0);
	}
	return (0);
}

/*
 * config_diff - call changed(section, key) for every key whose value
 * differs between a and b (a reload's old and new configuration); returns
 * how many differ.
 */
size_t
config_diff(const struct config *a, const struct config *b,
    void (*changed)(const char *section, const char *key, void *arg),
    void *arg)
{
	size_t i, n = 0;

	for (i = 0; i < NKEYS; i++) {
		if (key_equal(a, b, &keys[i]))
			continue;
		n++;
		if (changed != NULL)
			changed(keys[i].section, keys[i].name, arg);
	}
	return (n);
}
