/*
 * ledger_put.c - write one ledger entry the way ferry-relay does, for the
 * syncd integration tests.
 *
 *   ledger_put [-p] STATE_DIR MAILBOX FILE [TTL_SECONDS]
 *
 * Opens the LMDB environment STATE_DIR/db (created if missing), reads the
 * message FILE (LF or CRLF line ends), computes its identity
 * (msg_ident_from_headers), its body hash and the ledger key
 * msgkey_ledger(MAILBOX, ...), and stores the entry in STORE_DB_LEDGER
 * through common/ledger.c, as the relay does: delivered now, or with -p
 * pending (the relay still holds it), expiring after TTL_SECONDS
 * (default 14 days).  Prints the key in hex.  Exit 0,
 * 1 on failure, 2 on usage errors.
 *
 * Test tool only: reads a local file and writes a local store; no
 * network.  Single-threaded; the whole message is read into memory
 * (test messages are small).
 */

#include <sys/stat.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger.h"
#include "msgid.h"
#include "store.h"

#define LEDGER_TTL_DEFAULT	(14 * 86400)
#define LEDGER_FILE_MAX		(64 * 1024 * 1024)

struct ledger_arg {
	unsigned char	key[MSGKEY_LEN];
	struct ledger_entry e;
	time_t		expires;
};

static int
ledger_txn(struct store_txn *tx, void *arg)
{
	struct ledger_arg *a = arg;

	return (ledger_put(tx, a->key, &a->e, a->expires) == -1 ? -1 : 0);
}

/* read_file - the whole file into a malloc'd buffer */
static char *
read_file(const char *path, size_t *len_r)
{
	FILE *fp;
	char *buf = NULL;
	size_t len = 0, alloc = 0, n;

	if ((fp = fopen(path, "rb")) == NULL)
		return (NULL);
	for (;;) {
		if (len == alloc) {
			char *nb;

			alloc = alloc ? alloc * 2 : 65536;
			if (alloc > LEDGER_FILE_MAX ||
			    (nb = realloc(buf, alloc)) == NULL) {
				free(buf);
				fclose(fp);
				return (NULL);
			}
			buf = nb;
		}
		n = fread(buf + len, 1, alloc - len, fp);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(fp)) {
		free(buf);
		fclose(fp);
		return (NULL);
	}
	fclose(fp);
	*len_r = len;
	return (buf);
}

int
main(int argc, char *argv[])
{
	struct ledger_arg a;
	struct msg_ident id;
	struct body_hash bh;
	struct store *store = NULL;
	unsigned char sha[BODY_HASH_LEN];
	char dir[4096], err[256], hex[MSGKEY_HEXSIZE];
	long long ttl = LEDGER_TTL_DEFAULT;
	uint64_t now = (uint64_t)time(NULL);
	size_t len;
	char *msg;
	int pending = 0;

	if (argc > 1 && strcmp(argv[1], "-p") == 0) {
		pending = 1;
		argc--;
		argv++;
	}
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: ledger_put [-p] STATE_DIR MAILBOX FILE "
		    "[TTL_SECONDS]\n");
		return (2);
	}
	if (argc == 5 && (ttl = atoll(argv[4])) < 0) {
		fprintf(stderr, "ledger_put: bad TTL\n");
		return (2);
	}
	if ((size_t)snprintf(dir, sizeof(dir), "%s/db", argv[1]) >=
	    sizeof(dir)) {
		fprintf(stderr, "ledger_put: state dir too long\n");
		return (2);
	}
	if ((msg = read_file(argv[3], &len)) == NULL) {
		fprintf(stderr, "ledger_put: cannot read %s\n", argv[3]);
		return (1);
	}
	if (msg_ident_from_headers(msg, len, &id) == -1 ||
	    body_hash_init(&bh) == -1) {
		fprintf(stderr, "ledger_put: cannot parse %s\n", argv[3]);
		free(msg);
		return (1);
	}
	if (body_hash_update(&bh, msg, len) == -1 ||
	    body_hash_final(&bh, sha) == -1) {
		body_hash_free(&bh);
		free(msg);
		fprintf(stderr, "ledger_put: body hash failed\n");
		return (1);
	}
	free(msg);
	if (msgkey_ledger(argv[2], &id, sha, a.key) == -1) {
		fprintf(stderr, "ledger_put: bad mailbox %s\n", argv[2]);
		return (1);
	}
	memset(&a.e, 0, sizeof(a.e));
	a.e.when = (int64_t)now;
	a.e.status = pending ? LEDGER_PENDING : LEDGER_DELIVERED;
	/* A queue id of the relay's shape; its value does not matter. */
	memcpy(a.e.queue_id, "0123456789abcdef", LEDGER_ID_LEN + 1);
	a.expires = ttl > 0 ? (time_t)(now + (uint64_t)ttl) : 0;

	if (mkdir(argv[1], 0700) == -1 && errno != EEXIST) {
		fprintf(stderr, "ledger_put: mkdir %s: %s\n", argv[1],
		    strerror(errno));
		return (1);
	}
	if (store_open(&store, dir, 0, err, sizeof(err)) == -1) {
		fprintf(stderr, "ledger_put: %s: %s\n", dir, err);
		return (1);
	}
	if (store_txn_run(store, 0, ledger_txn, &a, err, sizeof(err)) != 0) {
		fprintf(stderr, "ledger_put: store: %s\n", err);
		store_close(&store);
		return (1);
	}
	store_close(&store);
	msgkey_hex(a.key, hex);
	printf("%s\n", hex);
	return (0);
}
