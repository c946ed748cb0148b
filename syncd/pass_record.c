/*
 * pass_record.c - the end of every pass: one entry per account appended
 * to its pass history in the store's META table (common/pass_history.h),
 * read by `ferryctl report` for the copy history of the acceptance
 * report.  Read, append and write in one transaction, so two processes
 * on the same store cannot drop each other's entries; up to
 * RECORD_BATCH accounts share a transaction (one commit, one fsync,
 * instead of one per account: at a thousand accounts those commits were
 * most of a no-op pass's wall time).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pass_history.h"
#include "report.h"
#include "store.h"
#include "syncd.h"

#define RECORD_BATCH	256

struct rec_one {
	char			 key[PASS_HISTORY_KEY_MAX];
	struct pass_entry	 e;
};

struct rec_arg {
	struct pass_history	*h;
	const struct rec_one	*v;
	size_t			 n;
};

static int
rec_fn(struct store_txn *tx, void *arg)
{
	struct rec_arg *a = arg;
	const void *val;
	size_t i, vlen, klen;
	unsigned char *buf;
	char why[256];
	int rc;

	for (i = 0; i < a->n; i++) {
		const char *key = a->v[i].key;

		klen = strlen(key);
		memset(a->h, 0, sizeof(*a->h));
		rc = store_get(tx, STORE_DB_META, key, klen, &val, &vlen);
		if (rc == 0 && pass_history_decode(a->h, val, vlen, why,
		    sizeof(why)) == -1)
			/* an unreadable history is started again, not kept
			 * forever */
			log_warnx("%s: %s: started again", key, why);
		else if (rc != 0 && rc != STORE_NOTFOUND)
			return (-1);
		pass_history_add(a->h, &a->v[i].e);
		if (pass_history_encode(a->h, &buf, &vlen) == -1) {
			store_txn_seterr(tx, "out of memory");
			return (-1);
		}
		rc = store_put(tx, STORE_DB_META, key, klen, buf, vlen, 0);
		free(buf);
		if (rc != 0)
			return (-1);
	}
	return (0);
}

static void
entry_fill(struct pass_entry *e, const struct report_account *ra,
    time_t started, time_t finished)
{
	struct report_totals t;
	size_t i, k;

	memset(e, 0, sizeof(*e));
	report_account_totals(ra, &t);
	e->started = (int64_t)started;
	e->finished = (int64_t)finished;
	e->complete = report_account_complete(ra);
	e->src_count = t.src_count;
	e->already = t.already;
	e->copied = t.copied;
	e->bytes = t.bytes;
	e->duplicates = t.duplicates;
	e->policy = t.policy;
	e->failed = t.failed;
	e->missing = t.missing;
	pass_history_text(e->error, ra->error);
	for (i = 0; i < ra->nfolders; i++) {
		const struct report_folder *f = ra->folders[i];

		if (f->error != NULL && e->nreasons < PASS_HISTORY_REASONS_MAX) {
			struct pass_reason *r = &e->reasons[e->nreasons++];

			pass_history_text(r->folder, f->src);
			r->uid = 0;	/* the folder, not one message */
			pass_history_text(r->reason, f->error);
		}
		for (k = 0; k < f->nproblems; k++) {
			const struct report_problem *p = &f->problems[k];
			struct pass_reason *r;

			if (p->kind != REPORT_FAILED ||
			    e->nreasons == PASS_HISTORY_REASONS_MAX)
				continue;
			r = &e->reasons[e->nreasons++];
			pass_history_text(r->folder, f->src);
			r->uid = p->uid;
			pass_history_text(r->reason, p->reason);
		}
	}
}

void
syncd_pass_record(struct syncd *sd, const struct report *r, time_t started,
    time_t finished)
{
	struct pass_history *h;
	struct rec_one *v;
	struct rec_arg a;
	char err[256];
	size_t i, n;

	/* A reverse pass copies the other way: not the copy history. */
	if (sd->store == NULL || sd->dry_run || r->reverse)
		return;
	h = malloc(sizeof(*h));
	v = calloc(RECORD_BATCH, sizeof(*v));
	if (h == NULL || v == NULL) {
		log_warnx("pass history: out of memory");
		goto out;
	}
	for (i = 0; i < r->naccounts;) {
		for (n = 0; n < RECORD_BATCH && i < r->naccounts; i++) {
			const struct report_account *ra = r->accounts[i];

			if (pass_history_key(v[n].key, sizeof(v[n].key),
			    ra->src_user) == -1)
				continue;
			entry_fill(&v[n].e, ra, started, finished);
			n++;
		}
		a = (struct rec_arg){ h, v, n };
		if (n > 0 && store_txn_run(sd->store, 0, rec_fn, &a, err,
		    sizeof(err)) == -1)
			log_warnx("pass history of %zu accounts (up to %s) not "
			    "written: %s", n, r->accounts[i - 1]->src_user,
			    err);
	}
out:
	free(h);
	free(v);
}
