/*
 * sync_pace.c - when the pass engine may go on: the monotonic clock,
 * the stop request (SIGTERM), the connection slots that keep a pass
 * within [syncd] connections_per_server, the rate limiter of
 * max_messages_per_second / max_bytes_per_second, and the progress
 * counters that ferryctl and the progress line read (sync.h).
 *
 * Threads: called from every account and worker thread.  The slots are
 * under the pass's mu/cv, the rate limiter under its rmu, the progress
 * counters under the progress's mu; no lock is held across I/O (the
 * rate limiter sleeps after unlocking).
 */

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "metrics.h"
#include "sync_p.h"

double
pace_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

void
pace_sleep_ms(uint64_t ms, volatile sig_atomic_t *stop)
{
	while (ms > 0 && !(stop && *stop)) {
		uint64_t step = ms > 200 ? 200 : ms;
		struct timespec ts = { (time_t)(step / 1000),
		    (long)(step % 1000) * 1000000L };

		nanosleep(&ts, NULL);
		ms -= step;
	}
}

int
pace_stopping(const struct acct *a)
{
	return (a->p->o->stop != NULL && *a->p->o->stop);
}

/* Connection slots: one per pair; blocking for the account's first. */
int
pace_slot_take(struct pass *p, int wait)
{
	int ok = 0;

	pthread_mutex_lock(&p->mu);
	while (p->slots == 0 && wait && !(p->o->stop && *p->o->stop)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	if (p->slots > 0) {
		p->slots--;
		ok = 1;
	}
	pthread_mutex_unlock(&p->mu);
	return (ok);
}

void
pace_slot_give(struct pass *p)
{
	pthread_mutex_lock(&p->mu);
	p->slots++;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* pace_rate_wait - hold the caller until msgs/bytes fit the configured rates */
void
pace_rate_wait(struct acct *a, uint64_t msgs, uint64_t bytes)
{
	struct pass *p = a->p;
	const struct config *cfg = p->o->cfg;
	double need = 0, t, wait;
	uint64_t mps = (uint64_t)cfg->syncd.max_messages_per_second;
	uint64_t bps = cfg->syncd.max_bytes_per_second;

	if (mps == 0 && bps == 0)
		return;
	/* a batch goes out once the time its messages and bytes are worth
	 * has passed since the pass began (counting every batch before
	 * it, of every thread): the rates are never exceeded */
	pthread_mutex_lock(&p->rmu);
	p->rmsgs += msgs;
	p->rbytes += bytes;
	if (mps)
		need = (double)p->rmsgs / (double)mps;
	if (bps && (double)p->rbytes / (double)bps > need)
		need = (double)p->rbytes / (double)bps;
	t = pace_now() - p->rstart;
	pthread_mutex_unlock(&p->rmu);
	wait = need - t;
	if (wait > 0) {
		metrics_throttle(METRICS_THROTTLE_RATE, wait);
		pace_sleep_ms((uint64_t)(wait * 1000), p->o->stop);
	}
}

/* progress helpers (all under the pass's progress mutex) */
void
prog_add(struct acct *a, uint64_t copied, uint64_t dups, uint64_t policy,
    uint64_t failed, uint64_t bytes)
{
	struct sync_progress *pr = a->p->pr;
	struct sync_acct_progress *ap = &pr->acc[a->idx];

	pthread_mutex_lock(&pr->mu);
	pr->copied += copied;
	pr->duplicates += dups;
	pr->policy += policy;
	pr->failed += failed;
	/* streamed messages were counted as they went (prog_stream); a
	 * dry run streams nothing */
	pr->bytes += bytes;
	pr->messages_done += dups + policy + (bytes ? copied : 0);
	if (pr->messages_done > pr->messages_total)
		pr->messages_done = pr->messages_total;
	ap->copied += copied;
	ap->failed += failed;
	ap->bytes += bytes;
	ap->messages_done += dups + policy + (bytes ? copied : 0);
	if (ap->messages_done > ap->messages_total)
		ap->messages_done = ap->messages_total;
	pthread_mutex_unlock(&pr->mu);
}

/* prog_stream - one message body went through to the destination */
void
prog_stream(struct acct *a, uint64_t bytes)
{
	struct sync_progress *pr = a->p->pr;

	pthread_mutex_lock(&pr->mu);
	pr->bytes += bytes;
	if (pr->messages_done < pr->messages_total)
		pr->messages_done++;
	pr->acc[a->idx].bytes += bytes;
	if (pr->acc[a->idx].messages_done < pr->acc[a->idx].messages_total)
		pr->acc[a->idx].messages_done++;
	pthread_mutex_unlock(&pr->mu);
}

void
prog_total(struct acct *a, uint64_t msgs)
{
	struct sync_progress *pr = a->p->pr;

	pthread_mutex_lock(&pr->mu);
	pr->messages_total += msgs;
	pr->acc[a->idx].messages_total += msgs;
	pthread_mutex_unlock(&pr->mu);
}

void
prog_folder_done(struct acct *a)
{
	struct sync_progress *pr = a->p->pr;

	pthread_mutex_lock(&pr->mu);
	pr->folders_done++;
	pr->acc[a->idx].folders_done++;
	pthread_mutex_unlock(&pr->mu);
}
