/*
 * smtp_server.h - ferry-relay's SMTP listener and its sessions (the
 * state machine and reply codes are described at the top of
 * smtp_server.c): bound before the privilege drop, started once the
 * spool and the queue exist, stopped gracefully on SIGTERM.
 */
#ifndef FERRY_SMTP_SERVER_H
#define FERRY_SMTP_SERVER_H

#include <stddef.h>

struct relay;
struct smtp_server;

int	smtp_server_new(struct smtp_server **server_r, struct relay *relay,
	    char *err, size_t errlen);	/* binds: call before dropping root */
int	smtp_server_start(struct smtp_server *server, char *err, size_t errlen);
void	smtp_server_shutdown(struct smtp_server *server, void (*done)(void *),
	    void *arg);		/* stop accepting; finish transactions */
void	smtp_server_free(struct smtp_server **server);
size_t	smtp_server_sessions(const struct smtp_server *server);
/* SIGHUP: re-read the [relay] recipients file; the old list stays on error. */
int	smtp_server_reload(struct smtp_server *server, char *err, size_t errlen);

#endif
