/*
 * script_peer.h - a scripted fake server on a loopback socket, for the
 * protocol client tests (Dovecot's test-imapc-client.c style): it
 * accepts one connection and walks a script of steps, each waiting for
 * one line from the client and then answering with bytes of its own.
 * Everything runs on the test's event loop; no threads.
 *
 * A step's expect is matched against one CRLF-terminated line from the
 * client (without the CRLF): exactly, or as a prefix when it ends in
 * '*'; "~TEXT" skips lines until one equals TEXT (an SMTP body up to
 * "."); NULL expects nothing.  Then send is written, after delay_ms when
 * given (so that the client reads it apart from what came before), and
 * the server half-closes the connection when close is set (the last
 * step).  single_line makes the step fail when the client has already
 * sent more than that one line (a command pipelined although the server
 * did not allow it).
 *
 * A mismatch closes the connection and is kept in peer->error.  Bytes
 * the client sends after the last step are counted in peer->extra.
 */
#ifndef FERRY_TEST_SCRIPT_PEER_H
#define FERRY_TEST_SCRIPT_PEER_H

#include <stddef.h>

struct event_base;
struct script_peer;

struct peer_step {
	const char	*expect;
	const char	*send;
	unsigned	 delay_ms;
	int		 close;
	int		 single_line;
};

/* peer_new - listen on 127.0.0.1, any port; NULL on failure */
struct script_peer *peer_new(struct event_base *base,
	    const struct peer_step *steps, size_t nsteps);
int	 peer_port(const struct script_peer *p);
/* "" when the script ran as written so far, else what went wrong */
const char *peer_error(const struct script_peer *p);
/* steps completed */
size_t	 peer_steps_done(const struct script_peer *p);
/* bytes received after the last step */
size_t	 peer_extra(const struct script_peer *p);
/* 1 once the client closed its side */
int	 peer_client_closed(const struct script_peer *p);
void	 peer_free(struct script_peer **pp);

#endif
