/*
 * spool_rebuild.c - the spool files are the truth, LMDB the index
 * (DESIGN.md §4): reconciling the two at start-up (tmp/ leftovers
 * removed, a queue/ID file without a record indexed again, a record
 * without a file dropped) and rebuilding the whole index from the files
 * (ferry-relay --rebuild-index).  A rebuilt record is what the SMTP
 * server made at reception, with the dedupe key and pending ledger
 * entries a round would have put, in the same transaction.
 *
 * Threading: start-up only, on the loop thread, before the writer runs.
 */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "checks.h"
#include "ledger.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "spool.h"
#include "spool_p.h"
#include "relay_view.h"
#include "store.h"
#include "wakeup.h"

struct idlist {
	char	(*ids)[QUEUE_ID_LEN + 1];
	size_t	  count;
	size_t	  alloc;
};

static int
idlist_add(struct idlist *l, const char *id, size_t len)
{
	void *n;

	if (l->count == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 64;

		if ((n = reallocarray(l->ids, na, sizeof(*l->ids))) == NULL)
			return (-1);
		l->ids = n;
		l->alloc = na;
	}
	memcpy(l->ids[l->count], id, len);
	l->ids[l->count][len] = '\0';
	l->count++;
	return (0);
}

static int
idcmp(const void *a, const void *b)
{
	return (strcmp(a, b));
}

static int
idlist_has(const struct idlist *l, const char *id)
{
	return (l->count > 0 &&
	    bsearch(id, l->ids, l->count, sizeof(*l->ids), idcmp) != NULL);
}

/* dir_list - names in dirfd: valid ids into ids, others counted */
static int
dir_list(int dirfd, struct idlist *ids, size_t *others_r, char *err,
    size_t errlen)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if (others_r)
		*others_r = 0;
	if ((fd = dup(dirfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		if (fd != -1)
			close(fd);
		return (-1);
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (spool_id_valid(de->d_name)) {
			if (idlist_add(ids, de->d_name, QUEUE_ID_LEN) == -1) {
				snprintf(err, errlen, "out of memory");
				closedir(d);
				return (-1);
			}
		} else if (others_r)
			(*others_r)++;
	}
	closedir(d);
	if (ids->count > 0)
		qsort(ids->ids, ids->count, sizeof(*ids->ids), idcmp);
	return (0);
}

/* spool_clean_tmp - remove everything in spool/tmp: nobody got a 250 */
int
spool_clean_tmp(struct spool *sp, char *err, size_t errlen)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d;
	int fd;

	if ((fd = dup(sp->tmpfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		snprintf(err, errlen, "spool/tmp: %s", strerror(errno));
		if (fd != -1)
			close(fd);
		return (-1);
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(sp->tmpfd, de->d_name, 0) == 0)
			n++;
		else
			log_warn("spool/tmp/%s: cannot remove", de->d_name);
	}
	closedir(d);
	if (n > 0)
		log_info("spool: removed %zu unfinished message(s) from spool/tmp",
		    n);
	return (0);
}

static int
collect_key(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct idlist *l = arg;
	char id[QUEUE_ID_LEN + 1];

	/* A malformed key names no file; the scheduler reports it. */
	if (klen != QUEUE_ID_LEN)
		return (0);
	memcpy(id, key, QUEUE_ID_LEN);
	id[QUEUE_ID_LEN] = '\0';
	if (!spool_id_valid(id))
		return (0);
	return (idlist_add(l, id, QUEUE_ID_LEN));
}

static int
txn_collect_keys(struct store_txn *tx, void *arg)
{
	struct idlist *l = arg;

	l->count = 0;
	return (store_foreach(tx, STORE_DB_QUEUE, NULL, 0, collect_key, l));
}

/* What a record rebuilt from its file puts besides itself. */
struct fixup_keys {
	int64_t		 arrived;
	int		 has_rkey;
	unsigned char	 rkey[MSGKEY_LEN];	/* the relay key: dedupe */
	unsigned char	(*lkey)[MSGKEY_LEN];	/* pending ledger entries */
	size_t		 nlkey;
};

/* Records to put and keys to delete in one write transaction. */
struct fixup {
	struct idlist	 del;		/* ids whose record goes */
	struct idlist	 put;		/* ids whose record comes */
	unsigned char	**enc;		/* put[i]'s encoded record */
	size_t		*enclen;
	struct fixup_keys *keys;	/* put[i]'s keys */
	int		 wipe;		/* delete every record first */
	struct store	*store;
	struct relay	*relay;
	size_t		 deleted;
};

/*
 * release_one - a record that goes takes its pending ledger entries with
 * it: nobody will deliver those copies (a record rebuilt from its file
 * puts its own again).  A damaged record has nothing to release.
 */
static int
release_one(struct store_txn *tx, struct relay *relay, const void *val,
    size_t vlen)
{
	struct queue_record rec;
	char err[128];
	size_t i;
	int rc = 0;

	if (queue_record_decode(val, vlen, &rec, err, sizeof(err)) == -1)
		return (0);
	for (i = 0; rc == 0 && i < rec.ndlv; i++)
		if (rec.dlv[i].state == DLV_PENDING &&
		    queue_ledger_tracked(relay, &rec, &rec.dlv[i]) &&
		    ledger_del(tx, rec.dlv[i].ledger_key, rec.id) == -1)
			rc = -1;
	queue_record_clear(&rec);
	return (rc);
}

struct release_all {
	struct store_txn	*tx;
	struct relay		*relay;
};

static int
release_all_one(const void *key, size_t klen, const void *val, size_t vlen,
    void *arg)
{
	struct release_all *ra = arg;

	(void)key;
	(void)klen;
	/* Writes STORE_DB_LEDGER only, not the database being walked. */
	return (release_one(ra->tx, ra->relay, val, vlen));
}

static int
txn_fixup(struct store_txn *tx, void *arg)
{
	struct fixup *f = arg;
	struct release_all ra = { tx, f->relay };
	const void *val;
	unsigned char dval[DEDUPE_VALUE_LEN];
	int64_t ttl = f->relay->cfg->dedupe.ttl;
	size_t i, vlen;
	int rc;

	f->deleted = 0;
	if (f->wipe && store_foreach(tx, STORE_DB_QUEUE, NULL, 0,
	    release_all_one, &ra) != 0)
		return (-1);
	for (i = 0; !f->wipe && i < f->del.count; i++) {
		rc = store_get(tx, STORE_DB_QUEUE, f->del.ids[i], QUEUE_ID_LEN,
		    &val, &vlen);
		if (rc == -1)
			return (-1);
		if (rc == 0 && release_one(tx, f->relay, val, vlen) == -1)
			return (-1);
	}
	if (f->wipe) {
		/* Everything goes, malformed keys included. */
		if (store_count(tx, STORE_DB_QUEUE, &f->deleted) == -1)
			return (-1);
		rc = mdb_drop(store_txn_mdb(tx), store_dbi(f->store,
		    STORE_DB_QUEUE), 0);
		if (rc != 0)
			return (store_txn_mdb_err(tx, rc, "mdb_drop"));
	}
	for (i = 0; i < f->del.count; i++) {
		rc = store_del(tx, STORE_DB_QUEUE, f->del.ids[i], QUEUE_ID_LEN);
		if (rc == -1)
			return (-1);
		if (rc == 0)
			f->deleted++;
	}
	for (i = 0; i < f->put.count; i++) {
		const struct fixup_keys *k = &f->keys[i];

		if (store_put(tx, STORE_DB_QUEUE, f->put.ids[i], QUEUE_ID_LEN,
		    f->enc[i], f->enclen[i], 0) != 0)
			return (-1);
		/* As at reception (round_put): the relay key, so a copy the
		 * client sends again is a duplicate; an existing key (this
		 * very message, when the index is rebuilt) stays. */
		if (k->has_rkey && ttl > 0) {
			spool_dedupe_value(dval, k->arrived, f->put.ids[i]);
			rc = store_put_expiring(tx, STORE_DB_DEDUPE, k->rkey,
			    sizeof(k->rkey), dval, sizeof(dval),
			    store_txn_now(tx) + (time_t)ttl, MDB_NOOVERWRITE);
			if (rc == -1)
				return (-1);
		}
		if (spool_ledger_pending(tx, f->put.ids[i], k->arrived,
		    (const unsigned char (*)[MSGKEY_LEN])k->lkey, k->nlkey,
		    queue_ledger_expiry(f->relay->cfg, k->arrived,
		    LEDGER_PENDING)) == -1)
			return (-1);
	}
	return (0);
}

static void
fixup_free(struct fixup *f)
{
	size_t i;

	for (i = 0; i < f->put.count; i++) {
		free(f->enc[i]);
		free(f->keys[i].lkey);
	}
	free(f->enc);
	free(f->enclen);
	free(f->keys);
	free(f->put.ids);
	free(f->del.ids);
	memset(f, 0, sizeof(*f));
}

/*
 * spool_file_record - the queue record of queue/ID rebuilt from the file
 * alone, as the SMTP server made it at reception: the envelope from the
 * header, every delivery pending and due at now, and the keys computed
 * from the message (checks_spooled_keys(): the relay key, a ledger key
 * per upstream recipient).  What cannot come back: delivery progress
 * and our Authentication-Results (known only after DATA, kept in the
 * record alone).  -1 with err when the file cannot be read.
 */
static int
spool_file_record(struct spool *sp, const char *id, time_t now,
    struct queue_record *rec, char *err, size_t errlen)
{
	uint64_t off, size;
	size_t i;
	int fd;

	if (spool_file_read(sp, id, rec, &fd, &off, &size, err, errlen) == -1)
		return (-1);
	for (i = 0; i < rec->ndlv; i++)
		rec->dlv[i].next_try = now;
	if (checks_spooled_keys(fd, size, rec, err, errlen) == -1) {
		close(fd);
		queue_record_clear(rec);
		return (-1);
	}
	close(fd);
	return (0);
}

/* fixup_add_file - read queue/ID and plan to put its record and keys */
static int
fixup_add_file(struct spool *sp, struct fixup *f, const char *id, time_t now)
{
	struct queue_record rec;
	struct fixup_keys k, *nkeys;
	unsigned char *enc, **nenc;
	size_t enclen, *nlen;
	char err[256];

	if (spool_file_record(sp, id, now, &rec, err, sizeof(err)) == -1) {
		log_warnx("%s: spool file unreadable, left in spool/queue: %s",
		    id, err);
		return (0);
	}
	memset(&k, 0, sizeof(k));
	k.arrived = rec.arrived;
	if ((k.has_rkey = rec.has_relay_key))
		memcpy(k.rkey, rec.relay_key, sizeof(k.rkey));
	if (spool_ledger_keys(sp->relay, &rec, &k.lkey, &k.nlkey) == -1) {
		queue_record_clear(&rec);
		return (-1);
	}
	if (queue_record_encode(&rec, &enc, &enclen) == -1) {
		log_warnx("%s: spool file: cannot encode its record", id);
		queue_record_clear(&rec);
		free(k.lkey);
		return (0);
	}
	queue_record_clear(&rec);
	nkeys = reallocarray(f->keys, f->put.count + 1, sizeof(*nkeys));
	if (nkeys == NULL) {
		free(enc);
		free(k.lkey);
		return (-1);
	}
	f->keys = nkeys;
	f->keys[f->put.count] = k;	/* f frees it once put counts it */
	nenc = reallocarray(f->enc, f->put.count + 1, sizeof(*nenc));
	if (nenc == NULL) {
		free(enc);
		free(k.lkey);
		return (-1);
	}
	f->enc = nenc;
	nlen = reallocarray(f->enclen, f->put.count + 1, sizeof(*nlen));
	if (nlen == NULL) {
		free(enc);
		free(k.lkey);
		return (-1);
	}
	f->enclen = nlen;
	if (idlist_add(&f->put, id, QUEUE_ID_LEN) == -1) {
		free(enc);
		free(k.lkey);
		return (-1);
	}
	f->enc[f->put.count - 1] = enc;
	f->enclen[f->put.count - 1] = enclen;
	return (0);
}

/*
 * spool_reconcile - make the index match the files after a crash
 *
 * queue/ files without a record get one; records without a file go.
 */
int
spool_reconcile(struct spool *sp, char *err, size_t errlen)
{
	struct idlist files = { NULL, 0, 0 }, keys = { NULL, 0, 0 };
	struct fixup f;
	time_t now = time(NULL);
	size_t i, others;
	int rc = -1;

	memset(&f, 0, sizeof(f));
	f.relay = sp->relay;
	if (dir_list(sp->queuefd, &files, &others, err, errlen) == -1)
		goto out;
	if (others > 0)
		log_warnx("spool: %zu file(s) in spool/queue are not named "
		    "like queue ids; ignored", others);
	if (store_txn_run(sp->relay->store, 1, txn_collect_keys, &keys, err,
	    errlen) != 0)
		goto out;
	if (keys.count > 0)
		qsort(keys.ids, keys.count, sizeof(*keys.ids), idcmp);
	for (i = 0; i < keys.count; i++) {
		if (idlist_has(&files, keys.ids[i]))
			continue;
		if (idlist_add(&f.del, keys.ids[i], QUEUE_ID_LEN) == -1)
			goto nomem;
	}
	for (i = 0; i < files.count; i++) {
		if (idlist_has(&keys, files.ids[i]))
			continue;
		if (fixup_add_file(sp, &f, files.ids[i], now) == -1)
			goto nomem;
	}
	if (f.del.count == 0 && f.put.count == 0) {
		rc = 0;
		goto out;
	}
	if (store_txn_run(sp->relay->store, 0, txn_fixup, &f, err,
	    errlen) != 0)
		goto out;
	for (i = 0; i < f.del.count; i++)
		log_warnx("%s: removed (queue record without a spool file)",
		    f.del.ids[i]);
	for (i = 0; i < f.put.count; i++)
		log_notice("%s: queue record rebuilt from its spool file",
		    f.put.ids[i]);
	rc = 0;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	fixup_free(&f);
	free(files.ids);
	free(keys.ids);
	return (rc);
}

/* spool_rebuild_index - replace the whole queue index by the files' */
int
spool_rebuild_index(struct spool *sp, size_t *count_r, char *err,
    size_t errlen)
{
	struct idlist files = { NULL, 0, 0 };
	struct fixup f;
	time_t now = time(NULL);
	size_t i, others;
	int rc = -1;

	memset(&f, 0, sizeof(f));
	f.relay = sp->relay;
	if (count_r)
		*count_r = 0;
	if (dir_list(sp->queuefd, &files, &others, err, errlen) == -1)
		goto out;
	for (i = 0; i < files.count; i++)
		if (fixup_add_file(sp, &f, files.ids[i], now) == -1) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	f.wipe = 1;
	f.store = sp->relay->store;
	if (store_txn_run(sp->relay->store, 0, txn_fixup, &f, err,
	    errlen) != 0)
		goto out;
	log_notice("spool: queue index rebuilt: %zu message(s) from spool "
	    "files, %zu old record(s) replaced", f.put.count, f.deleted);
	if (count_r)
		*count_r = f.put.count;
	rc = 0;
out:
	fixup_free(&f);
	free(files.ids);
	return (rc);
}
