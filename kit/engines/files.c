/*
 * files.c - a file's birth time (statx), which together with its inode tells
 * kit's own files from a file that took over a freed inode number.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "kit.h"

_Static_assert(KIT_AT_FDCWD == AT_FDCWD && KIT_AT_EMPTY_PATH == AT_EMPTY_PATH &&
	       KIT_AT_SYMLINK_NOFOLLOW == AT_SYMLINK_NOFOLLOW, "statx flags");

int kit_file_birth_ns(int dirfd, const char *path, int flags, int64_t *birth_ns)
{
	struct statx stx;

	if (statx(dirfd, path, flags, STATX_BTIME | STATX_INO, &stx) < 0)
		return -errno;
	if (!(stx.stx_mask & STATX_BTIME))
		return -EOPNOTSUPP;
	*birth_ns = (int64_t)stx.stx_btime.tv_sec * 1000000000LL + stx.stx_btime.tv_nsec;
	return 0;
}
