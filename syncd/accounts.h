/*
 * accounts.h - the accounts file of ferry-syncd ([syncd] accounts,
 * DESIGN.md §8): which source mailbox is copied into which destination
 * mailbox, with the credentials for both.
 *
 * Format, one account a line:
 *
 *	src_user  src_secret  dst_user  dst_secret  [wave=N]
 *
 *   - the optional fifth field puts the account in staged wave N (1 to
 *     ACCOUNTS_WAVE_MAX, decimal, no sign or leading zero): "wave=" in
 *     lower case, then the number, nothing else; anything else in a
 *     fifth field is an error.  An account without it belongs to no wave
 *     (wave 0): the relay forwards its mail as if there were no waves,
 *     and ferry-syncd --wave never selects it;
 *   - fields are separated by blanks (spaces or tabs, any number);
 *   - a line whose first non-blank character is '#' is a comment, blank
 *     lines are ignored; there are no trailing comments (a '#' later on
 *     the line belongs to its field, passwords contain them);
 *   - a field that starts with '"' is quoted: it ends at the next
 *     unescaped '"', which must be followed by a blank or the end of the
 *     line; inside, \" stands for " and \\ for \, any other backslash is
 *     an error.  A quoted field may hold blanks.  No field may be
 *     empty (not even as "").
 *     Unquoted fields take every byte literally, backslashes and quotes
 *     included (DOMAIN\user, shared@x\user@x);
 *   - CRLF line ends and a UTF-8 byte order mark at the start are
 *     accepted; any other control character (tab inside a quoted field
 *     included) is an error.
 *
 * A secret (src_secret, dst_secret) is one of:
 *
 *	password		the password itself
 *	@/path/file		the password is the first line of that file
 *				(read once, at load; trailing CR/LF dropped)
 *	xoauth2:@/path/file	authenticate with XOAUTH2; the access token is
 *				the first line of that file, read again at
 *				every connection (accounts_secret()), so an
 *				external tool can refresh it during a long run
 *	xoauth2:TOKEN		XOAUTH2 with this literal token (tests)
 *
 * The @ and xoauth2: forms apply to unquoted fields only: a quoted
 * field is always a literal password, so "@home" is the password
 * "@home".  A relative path is taken relative to the directory of the
 * accounts file.  Paths cannot contain blanks.
 *
 * Parsing is strict: a bad line stops the load with "file:line: why"
 * (wrong number of fields, unterminated quote, bad escape, control
 * character, field or line too long, a source user listed twice -
 * compared case-insensitively, as servers do -, an unreadable or empty
 * password file, no account at all).  No error message ever contains a
 * field's text: a misplaced field could be a password.  User names must
 * be valid UTF-8.
 *
 * Secrets: passwords live in memory only as long as the list does and
 * are wiped (explicit_bzero) by accounts_free(); so are the line
 * buffers and the stdio buffers the file was read through.
 *
 * Ownership: struct accounts owns every string in it; accounts_free()
 * releases it.  The only I/O is reading the accounts file and the
 * secret files.  No logging, no global state.
 */
#ifndef FERRY_ACCOUNTS_H
#define FERRY_ACCOUNTS_H

#include <stddef.h>
#include <stdio.h>

#define ACCOUNTS_LINE_MAX	8192	/* bytes of one line, end excluded */
#define ACCOUNTS_USER_MAX	512	/* bytes of a user name */
#define ACCOUNTS_SECRET_MAX	8192	/* bytes of a password or token */
#define ACCOUNTS_WAVE_MAX	999	/* highest wave number */

/* accounts_load_opts() flags. */
#define ACCOUNTS_NO_SECRETS	0x01	/* check the secret fields' syntax
					   only: no secret file is read and
					   no secret kept (both values and
					   files stay NULL); for the relay
					   and ferryctl, which need the
					   users and waves only */

enum account_auth {
	ACCOUNT_AUTH_PASSWORD = 0,	/* LOGIN / AUTHENTICATE PLAIN */
	ACCOUNT_AUTH_XOAUTH2,		/* AUTHENTICATE XOAUTH2 */
};

struct account_secret {
	enum account_auth auth;
	char		*value;	/* password or token; NULL when it must be
				   read from file at each use */
	char		*file;	/* the file it came from, NULL if inline;
				   absolute or relative to the cwd */
};

struct account {
	char		*src_user;
	struct account_secret src;
	char		*dst_user;
	struct account_secret dst;
	unsigned	 line;		/* in the accounts file */
	unsigned	 wave;		/* 1..ACCOUNTS_WAVE_MAX, 0: none */
};

struct accounts {
	struct account	*items;
	size_t		 count;
	char		*path;
	int		 insecure;	/* the file is readable by group or
					   others: the caller should warn */
	unsigned	 nwaved;	/* accounts with a wave */
};

/*
 * accounts_load - read and check the whole file; on success *list_r is
 * a new list with at least one account.  On failure *list_r is NULL and
 * err holds "path:line: why" (or "path: why").
 */
int	accounts_load(const char *path, struct accounts **list_r, char *err,
	    size_t errlen);

/* accounts_load_opts - the same with ACCOUNTS_* flags. */
int	accounts_load_opts(const char *path, int flags,
	    struct accounts **list_r, char *err, size_t errlen);

/*
 * accounts_load_fp - the same from an open stream; name is used in
 * errors and basedir (NULL = the cwd) resolves relative secret files.
 * The stream stays the caller's.
 */
int	accounts_load_fp(FILE *fp, const char *name, const char *basedir,
	    struct accounts **list_r, char *err, size_t errlen);
int	accounts_load_fp_opts(FILE *fp, const char *name, const char *basedir,
	    int flags, struct accounts **list_r, char *err, size_t errlen);

/* accounts_wave_count - accounts in wave (1..ACCOUNTS_WAVE_MAX). */
size_t	accounts_wave_count(const struct accounts *list, unsigned wave);

/* The account of this source user (ASCII case-insensitive), or NULL. */
const struct account *accounts_find(const struct accounts *list,
	    const char *src_user);

/*
 * accounts_secret - the secret to authenticate with now: the value in
 * memory, or the first line of the file read again (XOAUTH2 tokens).
 * The caller wipes buf (explicit_bzero) when done.  0, or -1 with err.
 */
int	accounts_secret(const struct account_secret *s, char *buf,
	    size_t len, char *err, size_t errlen);

/* Wipe every secret and free; NULL-safe; sets *listp to NULL. */
void	accounts_free(struct accounts **listp);

#endif
