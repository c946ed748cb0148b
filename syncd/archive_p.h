/*
 * archive_p.h - private to archive_imapd.c, archive_maildir.c and
 * archive_mbox.c: the in-memory index of an archive the IMAP server
 * answers from, and the two readers that build it.
 *
 * Ownership: a struct arc_store owns its folders; a folder owns its
 * messages, names and keyword strings.  Everything is rebuilt from the
 * files whenever a folder is opened (EXAMINE, STATUS, LIST), so a
 * delta pass sees what was added since.
 */
#ifndef FERRY_ARCHIVE_P_H
#define FERRY_ARCHIVE_P_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "archive.h"

/* system flags, as bits */
#define ARC_SEEN	0x01u
#define ARC_ANSWERED	0x02u
#define ARC_FLAGGED	0x04u
#define ARC_DELETED	0x08u
#define ARC_DRAFT	0x10u
#define ARC_FORWARDED	0x20u	/* $Forwarded (maildir "P") */

#define ARC_MAX_KW	26	/* maildir keeps 26 keywords a folder */

struct arc_msg {
	uint32_t	 uid;
	unsigned	 flags;		/* ARC_* */
	uint32_t	 kw;		/* bit i = folder keyword i */
	time_t		 idate;
	uint64_t	 off, len;	/* mbox: bytes of the message in
					   the file (after the From_ line) */
	uint64_t	 size;		/* as served (CRLF line ends) */
	char		*file;		/* maildir: path below the folder */
};

struct arc_folder {
	char		*name;		/* wire name, "/" separated */
	char		*path;		/* maildir dir or mbox file */
	uint32_t	 uidvalidity, uidnext;
	struct arc_msg	*v;
	size_t		 n;
	char		*kw[ARC_MAX_KW];
	int		 unescape;	/* mbox: mboxrd ">From " escaping */
	int		 loaded;
	char		 bad[256];	/* why the folder cannot be read */
};

struct arc_store {
	enum archive_kind kind;
	char		 root[1024];
	char		 uiddir[1100];	/* state_dir/archive/<hash> */
	struct arc_folder *f;
	size_t		 nf;
};

/* archive_maildir.c */
int	 arc_maildir_list(struct arc_store *st, char *err, size_t errlen);
int	 arc_maildir_load(struct arc_store *st, struct arc_folder *f);
/* archive_mbox.c */
int	 arc_mbox_list(struct arc_store *st, char *err, size_t errlen);
int	 arc_mbox_load(struct arc_store *st, struct arc_folder *f);

/*
 * A message's bytes in its file: [off, off + len) of fd (owned: close
 * with arc_reader_close), mboxrd escaping to undo when unescape.
 */
struct arc_reader {
	int		 fd;
	uint64_t	 off, len;
	int		 unescape;
};

int	 arc_maildir_open(struct arc_folder *f, const struct arc_msg *m,
	    struct arc_reader *rd, char *err, size_t errlen);
int	 arc_mbox_open(struct arc_folder *f, const struct arc_msg *m,
	    struct arc_reader *rd, char *err, size_t errlen);
/* either of the two, by the store's kind; -1 + err */
int	 arc_open(struct arc_store *st, struct arc_folder *f,
	    const struct arc_msg *m, struct arc_reader *rd, char *err,
	    size_t errlen);
void	 arc_reader_close(struct arc_reader *rd);

/*
 * archive_stream.c: the message as served (escaping undone, bare LF
 * made CRLF), read in chunks and given to fn piece by piece; fn returns
 * 0 for more, 1 when it has had enough, -1 to give up.  0, or -1 + err
 * (a read error, the file shrank, fn gave up).
 */
typedef int (*arc_sink_fn)(void *arg, const char *p, size_t n);
int	 arc_serve(const struct arc_reader *rd, arc_sink_fn fn, void *arg,
	    char *err, size_t errlen);

/* shared helpers (archive_imapd.c) */
uint64_t arc_hash(const char *s, size_t n);
int	 arc_add_folder(struct arc_store *st, const char *name,
	    const char *path);
void	 arc_folder_clear(struct arc_folder *f);
int	 arc_push_msg(struct arc_folder *f, const struct arc_msg *m);
/* snprintf for paths: -1 when it did not fit (out then truncated) */
int	 arc_path(char *out, size_t n, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* a keyword usable as an IMAP flag atom */
int	 arc_keyword_ok(const char *s);

/* mbox splitting, exposed for unit tests: parse the message starting
 * at buf[0] (just after a From_ line) of n bytes; sets *len to the
 * message's bytes and *next to the offset of the next From_ line (or n);
 * cl2 = trust a Content-Length header.  0, or -1 when nothing fits. */
int	 arc_mbox_split(const char *buf, size_t n, int cl2, size_t *len,
	    size_t *next);
/* 1 when line (without its LF) is a mbox separator line "From ..." */
int	 arc_mbox_from_line(const char *line, size_t n, time_t *when);
/* maildir info suffix ":2,FRS..." -> flags and keyword bits; 0 / -1 */
int	 arc_maildir_info(const char *name, unsigned *flags, uint32_t *kw);

#endif
