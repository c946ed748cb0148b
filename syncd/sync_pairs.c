/*
 * sync_pairs.c - whether an account should copy over one more connection
 * pair, from what its copies so far cost.  Up front, sync.c opens pairs
 * by the amount of work (one per 250 messages that may be new): right
 * for a server that appends in a few milliseconds, where a login costs
 * more than a small delta.  A server that takes tens of milliseconds an
 * APPEND (a slow disk, a remote store) spends most of a pass waiting,
 * and the same count leaves it on one or two pairs; so after each folder
 * the account's own thread asks pairs_more() with the measured time per
 * message.
 *
 * Thread-safe: reads the account's counters under a->mu.
 */

#include <stdint.h>

#include "sync_p.h"

#define PAIRS_SAMPLE	20	/* messages measured before deciding */
#define PAIRS_ETA	2.0	/* seconds of work left that a pair is
				   worth opening for (a login is ~50 ms
				   to a local server, more to a remote) */

/*
 * pairs_more - 1 when another pair is worth it: enough copies measured,
 * a folder left for it to take, and the messages still to copy would
 * take more than PAIRS_ETA on the running pairs at the rate seen
 */
int
pairs_more(struct acct *a, size_t running)
{
	uint64_t msgs, left = 0;
	double secs;
	size_t i, folders = 0;

	if (running == 0)
		return (0);
	pthread_mutex_lock(&a->mu);
	msgs = a->app_msgs;
	secs = a->app_secs;
	for (i = a->next; i < a->njobs; i++)
		if (!a->jobs[i].skip && a->jobs[i].est_msgs > 0) {
			left += a->jobs[i].est_msgs;
			folders++;
		}
	pthread_mutex_unlock(&a->mu);
	/* the new pair needs a folder of its own beside the running ones'
	 * next ones */
	if (msgs < PAIRS_SAMPLE || folders < 2)
		return (0);
	return ((double)left * (secs / (double)msgs) / (double)running >
	    PAIRS_ETA);
}
