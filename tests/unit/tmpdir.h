/*
 * tmpdir.h - the unit tests' temporary directories: removed, with all
 * they hold, by one call (the stores and spools the tests create).
 */
#ifndef FERRY_TEST_TMPDIR_H
#define FERRY_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int
tmpdir_rm_entry(const char *path, const struct stat *sb, int type,
    struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return (remove(path));
}

/* tmpdir_remove - dir and everything under it; 0 or -1 (nftw's) */
static inline int
tmpdir_remove(const char *dir)
{
	return (nftw(dir, tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS));
}

#endif
