/*
 * control.h - the relay's admin interfaces: HTTP / (the status page,
 * control_page.h), /metrics, /status and /cutover, and the UNIX
 * control socket ferryctl drives the queue through (DESIGN.md §5,
 * "Control"; the protocol is described in control.c).
 *
 * Ownership: struct control belongs to struct relay; main.c makes it
 * after the store and the queue and frees it before them.  Loop thread
 * only.
 */
#ifndef FERRY_CONTROL_H
#define FERRY_CONTROL_H

#include <stddef.h>

struct relay;
struct control;

int	control_new(struct control **control_r, struct relay *relay,
	    char *err, size_t errlen);
void	control_free(struct control **control);

#endif
