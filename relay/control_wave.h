/*
 * control_wave.h - the control socket's "wave N migrate|pending"
 * (control_wave.c): writes the wave's routing record, logs who asked
 * and queues the one reply line ("ok ..." or "error ...") on out.
 * Loop thread only.
 */
#ifndef FERRY_CONTROL_WAVE_H
#define FERRY_CONTROL_WAVE_H

struct evbuffer;
struct relay;

void	control_wave(struct relay *r, const char *nstr, const char *action,
	    unsigned uid, long pid, struct evbuffer *out);

#endif
