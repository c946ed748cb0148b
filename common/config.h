/*
 * config.h - mailferry.conf: the INI file of DESIGN.md §8.
 *
 * One table in config.c declares every section and key with its type,
 * default and documentation; defaults go through the same parsers as
 * the file, so a default can never be a value the file would refuse.
 * Errors name the file and line: "mailferry.conf:12: [relay] max_recipients:
 * bad number \"ten\"".
 *
 * Ownership: struct config owns every string and list in it;
 * config_free() releases them.  A loaded config is read-only.
 */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "util.h"

enum cfg_log_dest	{ CFG_LOG_SYSLOG, CFG_LOG_STDERR };
enum cfg_tls_policy	{ CFG_TLS_REQUIRE, CFG_TLS_OPPORTUNISTIC, CFG_TLS_NONE };
enum cfg_on_expire	{ CFG_EXPIRE_BOUNCE, CFG_EXPIRE_HOLD };
enum cfg_spf_policy	{ CFG_SPF_TAG, CFG_SPF_REJECT_FAIL, CFG_SPF_OFF };
enum cfg_dkim_policy	{ CFG_DKIM_TAG, CFG_DKIM_OFF };
/* [forward] crash_check: where to look for a message that was in flight
 * when the relay stopped uncleanly, before sending it again */
enum cfg_crash_check	{ CFG_CRASH_CHECK_INBOX, CFG_CRASH_CHECK_ALL,
			  CFG_CRASH_CHECK_OFF };

/* "imaps://host:port" or "imap://host:port" (STARTTLS unless ?tls=none) */
enum cfg_imap_tls	{ CFG_IMAP_TLS_IMPLICIT, CFG_IMAP_TLS_STARTTLS, CFG_IMAP_TLS_NONE };
/* A [syncd] source may also be a local archive, "maildir:///path" or
 * "mbox:///path" (read by a built-in read-only IMAP server; then addr
 * holds the scheme name as host, port 0, tls NONE).  path may hold
 * "%u", the account's src_user. */
enum cfg_imap_kind	{ CFG_IMAP_KIND_IMAP, CFG_IMAP_KIND_MAILDIR, CFG_IMAP_KIND_MBOX };
#define CFG_ARCHIVE_PATHMAX	1024
struct imap_url {
	int		set;
	enum cfg_imap_tls tls;
	struct hostport	addr;
	enum cfg_imap_kind kind;
	char		path[CFG_ARCHIVE_PATHMAX];
};

/* A list of endpoints, e.g. "mx1:25, [::1]:2525". */
struct hostport_list {
	struct hostport	*items;
	size_t		 count;
};

struct config {
	char		*path;

	struct {
		char		*state_dir;
		char		*user;
		enum cfg_log_dest log;
		int		 log_level;	/* enum log_level */
		int		 log_facility;	/* syslog LOG_* facility */
		uint64_t	 map_size;	/* LMDB map: the most it may
						   grow to, bytes */
	} global;

	struct {
		struct hostport_list listen;
		char		*hostname;
		struct strlist	 domains;
		char		*recipients;
		uint64_t	 max_message_size;
		int64_t		 max_recipients;
		int64_t		 max_connections;
		int64_t		 max_connections_per_ip;
		uint64_t	 max_line_length;
		int64_t		 timeout;
		int64_t		 data_timeout;
		char		*tls_cert;
		char		*tls_key;
		char		*pid_file;
		int64_t		 command_deadline; /* a whole command line */
		int64_t		 min_data_rate;	/* DATA bytes/s past
						   data_timeout; 0: none */
		int64_t		 stress_threshold; /* % of max_connections */
		int64_t		 stress_timeout;
		int64_t		 stress_max_connections_per_ip;
		char		*accounts;	/* routes recipients by wave;
						   "": [syncd] accounts */
	} relay;

	struct {
		struct hostport_list upstream;
		enum cfg_tls_policy tls;
		char		*ca_file;
		char		*helo_name;
		struct hostport_list copy_to;
		int64_t		 concurrency;
		int64_t		 connect_timeout;
		int64_t		 retry_initial;
		int64_t		 retry_max;
		int64_t		 queue_lifetime;
		enum cfg_on_expire on_expire;
		struct hostport_list dsn_relay;	/* empty: the sender domain's MX */
		char		*srs_secret;
		char		*srs_domain;
		enum cfg_crash_check crash_check;
		int64_t		 crash_check_timeout;
		int64_t		 crash_check_settle; /* look again that long */
	} forward;

	struct {
		enum cfg_spf_policy spf;
		enum cfg_dkim_policy dkim;
		struct hostport_list dns;
		int64_t		 dns_timeout;
		char		*authserv_id;
	} checks;

	struct {
		int64_t		 ttl;
	} dedupe;

	struct {
		struct imap_url	 source;
		struct imap_url	 destination;
		char		*accounts;
		int64_t		 parallel;
		int64_t		 connections_per_server;
		int64_t		 keep_connections;
		int64_t		 interval;
		/* an account whose source is unchanged since its last
		 * complete pass logs in to the destination only when
		 * its last check is this old (0: every pass) */
		int64_t		 destination_check_interval;
		int		 delete;
		struct strlist	 include;
		struct strlist	 exclude;
		struct strlist	 map;
		int		 skip_non_mail;
		int		 accept_altered;	/* a copy the destination
						   changed is not a failure */
		int		 tls_verify;
		char		*ca_file;
		uint64_t	 max_bytes_per_second;
		int64_t		 max_messages_per_second;
		char		*pid_file;
		struct hostport_list http;	/* GET /metrics; empty: none */
	} syncd;

	struct {
		struct strlist	 domains;
		struct hostport_list resolvers;
		struct strlist	 new_mx;	/* patterns: the new MX hosts */
		struct strlist	 old_mx;	/* patterns; default: [relay]
						   hostname */
		int64_t		 check_interval;
		int64_t		 quiet_period;
		int64_t		 catchup_interval; /* between passes from the
						      switch until closed */
		struct strlist	 new_spf;	/* what the domains' SPF must
						   authorize: "include:x",
						   "ip4:...", or a host */
		struct strlist	 new_dkim_selectors; /* the new provider's
						       DKIM selectors */
		int		 rollback;	/* MX back to old after the
						   switch: phase rollback,
						   reverse passes */
	} cutover;

	struct {
		char		*socket;
		struct hostport_list http;
		int64_t		 max_connections; /* HTTP, at once */
		/* HTTP authentication: a bearer token and/or basic auth;
		 * the secrets stay in their files (read by the daemon). */
		char		*auth_token_file;
		char		*auth_user;
		char		*auth_password_file;
	} control;
};

/* Which program is asking: each requires its own keys. */
enum config_user { CONFIG_FOR_RELAY, CONFIG_FOR_SYNCD, CONFIG_FOR_CTL };

int	config_load(struct config *cfg, const char *path, char *err,
	    size_t errlen);
int	config_load_defaults(struct config *cfg, char *err, size_t errlen);
int	config_require(const struct config *cfg, enum config_user who,
	    char *err, size_t errlen);
void	config_free(struct config *cfg);
size_t	config_diff(const struct config *a, const struct config *b,
	    void (*changed)(const char *section, const char *key, void *arg),
	    void *arg);
int	config_host_is_loopback(const char *host);
int	config_state_path(const struct config *cfg, const char *name,
	    char *buf, size_t len);

#endif
