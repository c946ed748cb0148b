/*
 * smtp_server_cmd.c - the commands of the relay's SMTP server
 * (DESIGN.md §5): EHLO/HELO and the extensions offered, MAIL, RCPT with
 * the recipient policy, DATA's preconditions, RSET, NOOP, QUIT, VRFY,
 * HELP, and the dispatch of one parsed command line (syntax is
 * smtp_parse.c's business; DATA itself is smtp_server_data.c's, STARTTLS
 * smtp_server_tls.c's).
 *
 * The recipient policy (no open relay): a recipient is accepted when it
 * is at one of the [relay] domains and, when a recipient list is set,
 * listed in it (loaded at start and on SIGHUP, kept sorted and lower
 * case); postmaster, bare or at one of our domains, always; an address
 * of our SRS domain when srs_rcpt_check() vouches for it.  Never one
 * with sender-specified routing (user%elsewhere@ours, elsewhere!user@ours,
 * <@hop:user@ours>), as Postfix refuses them by default: the upstream
 * trusts us as a gateway and might route it on.
 *
 * Exposure: the HELO name and addresses come from the client; the HELO
 * name is sanitised before it is kept (it goes to logs and the Received:
 * header).  Loop thread only.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtp_server_p.h"

/* sanitize - a peer-supplied name safe for logs and trace headers */
static char *
sanitize(const char *in)
{
	char *out = strdup(in), *p;

	if (out == NULL)
		return (NULL);
	for (p = out; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr(".-_:[]", c) != NULL))
			*p = '?';
	}
	return (out);
}

/* ---- recipients -------------------------------------------------------- */

static int
strcmp_p(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/* rcptlist_load - one address per line; '#' comments; lower-cased, sorted */
static int
rcptlist_load(const char *path, struct strlist *l, char *err, size_t errlen)
{
	char line[1024], *p;
	FILE *fp;
	size_t lineno = 0;

	memset(l, 0, sizeof(*l));
	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return (-1);
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			snprintf(err, errlen, "%s:%zu: line too long", path,
			    lineno);
			goto fail;
		}
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		p = str_trim(line);
		if (*p == '\0')
			continue;
		if (*p == '<' && p[strlen(p) - 1] == '>') {
			p[strlen(p) - 1] = '\0';
			p++;
		}
		if (smtp_mailbox_valid(p, strlen(p), 1, NULL) == -1) {
			snprintf(err, errlen, "%s:%zu: bad address", path,
			    lineno);
			goto fail;
		}
		str_lower(p);
		if (strlist_add(l, p, strlen(p)) == -1) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	fclose(fp);
	if (l->count > 0)
		qsort(l->items, l->count, sizeof(*l->items), strcmp_p);
	return (0);
fail:
	fclose(fp);
	strlist_clear(l);
	return (-1);
}

static int
rcptlist_has(const struct strlist *l, const char *lower)
{
	return (l->count > 0 && bsearch(&lower, l->items, l->count,
	    sizeof(*l->items), strcmp_p) != NULL);
}

/* smtp_server_reload - re-read the recipient list (SIGHUP) */
int
smtp_server_reload(struct smtp_server *server, char *err, size_t errlen)
{
	const char *path = server_cfg(server)->relay.recipients;
	struct strlist l;

	if (path == NULL || path[0] == '\0')
		return (0);
	if (rcptlist_load(path, &l, err, errlen) == -1)
		return (-1);
	strlist_clear(&server->rcptlist);
	server->rcptlist = l;
	server->have_rcptlist = 1;
	log_info("recipient list %s: %zu address(es)", path, l.count);
	return (0);
}

/* strpbrk_n - does any of the len bytes at p occur in set? */
static int
strpbrk_n(const char *p, size_t len, const char *set)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != '\0' && strchr(set, p[i]) != NULL)
			return (1);
	return (0);
}

/*
 * rcpt_check - may we accept addr?  NULL or the refusal reply.
 * postmaster (bare, or at one of our domains) is always accepted.
 */
static const char *
rcpt_check(struct smtp_session *s, const struct smtp_cmd *cmd,
    enum reject_reason *why_r)
{
	struct smtp_server *server = s->server;
	const char *at, *domain;
	char lower[SMTP_PATH_MAX + 1];

	if (cmd->postmaster)
		return (NULL);
	if ((at = strrchr(cmd->addr, '@')) == NULL) {
		*why_r = REJ_SYNTAX;
		return ("501 5.1.3 Bad recipient address syntax");
	}
	domain = at + 1;
	/* A bounce to one of our SRS addresses: ours whatever the domain
	 * list says, as long as its hash and day stamp hold. */
	switch (srs_rcpt_check(server->relay, cmd->addr, NULL, 0)) {
	case 1:
		return (NULL);
	case -1:
		*why_r = REJ_UNKNOWN_USER;
		return ("550 5.1.1 Invalid or expired SRS address");
	default:
		break;
	}
	/* Sender-specified routing: a '%', '!' or '@' in the local part
	 * (quoted or not) or a source route would have a hop behind us
	 * relay onward to a domain that is not ours. */
	if (cmd->source_route || strpbrk_n(cmd->addr,
	    (size_t)(at - cmd->addr), "%!@")) {
		*why_r = REJ_RELAY_DENIED;
		return ("550 5.7.1 Relay access denied: sender-specified "
		    "routing");
	}
	if (!strlist_contains_ci(&server_cfg(server)->relay.domains, domain)) {
		*why_r = REJ_RELAY_DENIED;
		return ("550 5.7.1 Relay access denied");
	}
	if (cmd->addr_8bit && !(s->tx && s->tx->smtputf8)) {
		*why_r = REJ_SYNTAX;
		return ("553 5.6.7 Non-ASCII address requires SMTPUTF8");
	}
	if ((size_t)(at - cmd->addr) == 10 &&
	    strncasecmp(cmd->addr, "postmaster", 10) == 0)
		return (NULL);
	if (server->have_rcptlist) {
		str_copy(lower, cmd->addr, sizeof(lower));
		str_lower(lower);
		if (!rcptlist_has(&server->rcptlist, lower)) {
			*why_r = REJ_UNKNOWN_USER;
			return ("550 5.1.1 User unknown");
		}
	}
	return (NULL);
}

/* ---- commands ---------------------------------------------------------- */

static void
cmd_helo(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct smtp_server *server = s->server;
	char *helo;

	if ((helo = sanitize(cmd->arg)) == NULL) {
		session_reply(s, "451 4.3.0 Local error, try again later");
		return;
	}
	free(s->helo);
	s->helo = helo;
	session_tx_free(&s->tx);
	s->esmtp = cmd->verb == SMTP_CMD_EHLO;
	session_state(s, S_READY);
	if (!s->esmtp) {
		session_reply(s, "250 %s", server->hostname);
		return;
	}
	session_reply(s, "250-%s", server->hostname);
	session_reply(s, "250-PIPELINING");
	session_reply(s, "250-SIZE %llu",
	    (unsigned long long)server_cfg(server)->relay.max_message_size);
	session_reply(s, "250-8BITMIME");
	session_reply(s, "250-SMTPUTF8");
	if (server->tls_ctx != NULL && !s->tls)
		session_reply(s, "250-STARTTLS");
	session_reply(s, "250 ENHANCEDSTATUSCODES");
}

static void
cmd_mail(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct config *cfg = server_cfg(s->server);
	struct smtp_tx *tx;

	if (s->state == S_INIT) {
		session_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		session_error(s);
		return;
	}
	if (s->tx != NULL) {
		session_reply(s, "503 5.5.1 Error: nested MAIL command");
		session_error(s);
		return;
	}
	if (cmd->has_size && cfg->relay.max_message_size != 0 &&
	    cmd->size > cfg->relay.max_message_size) {
		session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		session_count_reject(s, REJ_SIZE);
		return;
	}
	/* RFC 1870 §6: no room now is a 452, before anything is written;
	 * without SIZE the spool's reserve alone must be there. */
	if (!spool_has_room(s->server->relay->spool,
	    cmd->has_size ? cmd->size : 0)) {
		log_info("reject: MAIL from %s[%s]: spool file system full; "
		    "from=<%s>", s->helo, s->addr, cmd->addr);
		session_reply(s, "452 4.3.1 Insufficient system storage");
		session_count_reject(s, REJ_TEMPFAIL);
		return;
	}
	/* The same for the LMDB map at [global] map_size: a commit failed
	 * on it moments ago, so this one would too, after the whole DATA */
	if (session_store_full(s)) {
		log_info("reject: MAIL from %s[%s]: the store is full "
		    "([global] map_size); from=<%s>", s->helo, s->addr,
		    cmd->addr);
		session_reply(s, "452 4.3.1 Insufficient system storage");
		session_count_reject(s, REJ_TEMPFAIL);
		return;
	}
	if ((tx = calloc(1, sizeof(*tx))) == NULL ||
	    (tx->sender = strdup(cmd->addr)) == NULL) {
		free(tx);
		session_reply(s, "451 4.3.0 Local error, try again later");
		return;
	}
	tx->s = s;
	tx->smtputf8 = cmd->smtputf8;
	tx->body = cmd->body;
	s->tx = tx;
	/* SPF starts now: its look-ups overlap RCPT and DATA. */
	if ((tx->checks = checks_new(s->server->relay,
	    (struct sockaddr *)&s->sa, s->helo, tx->sender)) == NULL) {
		session_tx_free(&s->tx);
		session_reply(s, "451 4.3.0 Local error, try again later");
		return;
	}
	session_state(s, S_MAIL);
	session_reply(s, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct config *cfg = server_cfg(s->server);
	enum reject_reason why = REJ_SYNTAX;
	const char *refusal, *addr = cmd->addr;
	char pm[SMTP_PATH_MAX + 16];
	size_t i;

	if (s->tx == NULL) {
		session_reply(s, "503 5.5.1 Error: need MAIL command");
		session_error(s);
		return;
	}
	if ((refusal = rcpt_check(s, cmd, &why)) != NULL) {
		session_reply(s, "%s", refusal);
		session_count_reject(s, why);
		log_info("reject: RCPT from %s[%s]: %s; from=<%s> to=<%s>",
		    s->helo, s->addr, refusal, s->tx->sender, cmd->addr);
		session_error(s);
		return;
	}
	/* Bare <postmaster> (RFC 5321 §4.5.1) is the postmaster of our first
	 * domain: the upstream needs an address with a domain. */
	if (cmd->postmaster && cfg->relay.domains.count > 0) {
		snprintf(pm, sizeof(pm), "postmaster@%s",
		    cfg->relay.domains.items[0]);
		addr = pm;
	}
	for (i = 0; i < s->tx->rcpts.count; i++)
		if (strcasecmp(s->tx->rcpts.items[i], addr) == 0) {
			/* once is enough */
			session_reply(s, "250 2.1.5 Ok");
			return;
		}
	if (s->tx->rcpts.count >= (size_t)cfg->relay.max_recipients) {
		session_reply(s, "452 4.5.3 Too many recipients");
		session_count_reject(s, REJ_TOO_MANY_RCPTS);
		return;
	}
	if (strlist_add(&s->tx->rcpts, addr, strlen(addr)) == -1) {
		session_reply(s, "451 4.3.0 Local error, try again later");
		return;
	}
	session_state(s, S_RCPT);
	session_reply(s, "250 2.1.5 Ok");
}

static void
cmd_data(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	const char *refusal;

	if (tx == NULL) {
		session_reply(s, "503 5.5.1 Error: need MAIL command");
		session_error(s);
		return;
	}
	if (tx->rcpts.count == 0) {
		session_reply(s, "503 5.5.1 Error: need RCPT command");
		session_error(s);
		return;
	}
	if ((refusal = checks_spf_refusal(tx->checks)) != NULL) {
		/* SPF already answered: no need to take the message. */
		log_info("reject: DATA from %s[%s]: %s; from=<%s>", s->helo,
		    s->addr, refusal, tx->sender);
		session_reply(s, "%s", refusal);
		session_count_reject(s, REJ_POLICY);
		session_reset(s);
		return;
	}
	session_data_start(s);
}

/* session_command - one command line */
void
session_command(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_cmd cmd;
	const char *refusal;

	if ((refusal = smtp_cmd_parse(line, len, &cmd)) != NULL) {
		session_reply(s, "%s", refusal);
		session_count_reject(s, REJ_SYNTAX);
		session_error(s);
		return;
	}
	log_debug("smtp: %p [%s]: %s", (void *)s, s->addr,
	    smtp_verb_name(cmd.verb));
	switch (cmd.verb) {
	case SMTP_CMD_HELO:
	case SMTP_CMD_EHLO:
		cmd_helo(s, &cmd);
		break;
	case SMTP_CMD_MAIL:
		cmd_mail(s, &cmd);
		break;
	case SMTP_CMD_RCPT:
		cmd_rcpt(s, &cmd);
		break;
	case SMTP_CMD_DATA:
		cmd_data(s);
		break;
	case SMTP_CMD_RSET:
		session_reset(s);
		session_reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_CMD_NOOP:
		session_reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_CMD_QUIT:
		session_reply(s, "221 2.0.0 Bye");
		session_close(s);
		break;
	case SMTP_CMD_VRFY:
		session_reply(s, "252 2.0.0 Cannot VRFY user; send mail and we "
		    "will try");
		break;
	case SMTP_CMD_HELP:
		session_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA "
		    "RSET NOOP QUIT VRFY HELP%s",
		    s->server->tls_ctx && !s->tls ? " STARTTLS" : "");
		break;
	case SMTP_CMD_STARTTLS:
		session_starttls(s);
		break;
	default:
		session_reply(s, "500 5.5.1 Command unrecognized");
		break;
	}
}

