/*
 * queue.h - the relay's delivery scheduler (DESIGN.md §5, "Forwarding"):
 * which spooled message goes to which destination when, and what the
 * answers do to its LMDB record and to the ledger.  queue.c describes
 * the model; queue_p.h is the scheduler's inside.
 *
 * Ownership: struct queue belongs to struct relay (main.c makes it after
 * the spool, shuts it down and frees it before).  Threading: the loop
 * thread only, except where a function says otherwise.
 */
#ifndef FERRY_QUEUE_H
#define FERRY_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "queue_record.h"

struct relay;
struct queue;

/* Loads every queued record and schedules it (delivery starts from the
 * loop, once it runs). */
int	queue_new(struct queue **queue_r, struct relay *relay, char *err,
	    size_t errlen);
void	queue_free(struct queue **queue);
/* A message was just committed to the spool: schedule it. */
void	queue_enqueued(struct queue *queue, const char *id);
/* The control socket's commands (control.c); id is 16 hex digits,
 * validated by the caller.  queue_retry() with id NULL retries every
 * message that is not held ("ferryctl retry all").  An unknown id is
 * -1 with err "unknown id". */
int	queue_retry(struct queue *queue, const char *id, char *err, size_t errlen);
int	queue_hold(struct queue *queue, const char *id, char *err, size_t errlen);
int	queue_release(struct queue *queue, const char *id, char *err, size_t errlen);
int	queue_delete(struct queue *queue, const char *id, char *err, size_t errlen);
/* Stop scheduling, let transactions in flight finish (for a grace
 * period), commit, then done(arg) from the loop. */
void	queue_shutdown(struct queue *queue, void (*done)(void *), void *arg);
/*
 * queue_ledger_tracked - the ledger (common/ledger.h) follows
 * delivery d of rec: it has a ledger key and goes to the upstream route
 * (not a DSN of ours, not one of our SRS addresses: those go back to an
 * original sender, never into a new mailbox).  Safe on any thread.
 * queue_ledger_expiry: when an entry of that status written at now
 * expires (0: never): [dedupe] ttl, for a pending one at least the
 * queue lifetime, so it cannot vanish while the relay still holds the
 * message (a held one may outlive it: then a pass may copy it).
 */
int	queue_ledger_tracked(const struct relay *relay,
	    const struct queue_record *rec, const struct delivery *d);
time_t	queue_ledger_expiry(const struct config *cfg, int64_t now,
	    int status);

#endif
