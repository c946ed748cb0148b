/*
 * archive.h - a read-only IMAP view of a local mail archive (a Maildir++
 * tree or mbox files), served on one end of a socketpair so that the
 * sync engine reads an archive exactly as it reads an IMAP source: the
 * same state, report and delta passes.
 *
 * archive_imapd_start() makes the socketpair, starts a detached thread
 * that serves the IMAP session on one end and hands the other end to
 * the caller (who owns it; closing it ends the session and the thread).
 * The thread never writes below path; it keeps its UID lists below
 * state_dir/archive.  "%u" in path is replaced by user.
 *
 * Threading: the server thread shares nothing with the caller but the
 * socket; two sessions on one archive serialise their UID list updates
 * with flock().
 */
#ifndef FERRY_ARCHIVE_H
#define FERRY_ARCHIVE_H

#include <stddef.h>

enum archive_kind { ARCHIVE_MAILDIR, ARCHIVE_MBOX };

/* 0 and *fd set, or -1 with the reason in err */
int	archive_imapd_start(enum archive_kind kind, const char *path,
	    const char *user, const char *state_dir, int *fd, char *err,
	    size_t errlen);

#endif
