/*
 * files.c - a file's birth time (statx), which together with its inode tells
 * kit's own files from a file that took over a freed inode number.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "kit.h"

int kit_file_birth_ns(const char *path, int64_t *birth_ns)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, 0, STATX_BTIME | STATX_INO, &stx) < 0)
		return -errno;
	if (!(stx.stx_mask & STATX_BTIME))
		return -EOPNOTSUPP;
	*birth_ns = (int64_t)stx.stx_btime.tv_sec * 1000000000LL + stx.stx_btime.tv_nsec;
	return 0;
}
