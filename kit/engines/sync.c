/*
 * sync.c - read(2)/write(2) at the file position, seeking only when the next
 * offset is not where the previous I/O left the position (fio's sync engine).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine.h"

struct sync_data {
	uint64_t *pos;       /* where each file's position is, UINT64_MAX: unknown */
};

static int sync_setup(struct kit_thread *t)
{
	struct sync_data *sd = calloc(1, sizeof(*sd));
	int i;

	if (sd)
		sd->pos = calloc(t->p->nfiles, sizeof(*sd->pos));
	if (!sd || !sd->pos) {
		free(sd);
		return kit_fail(t, -ENOMEM, "sync: allocating file positions");
	}
	for (i = 0; i < t->p->nfiles; i++)
		sd->pos[i] = UINT64_MAX;
	t->engine_data = sd;
	return 0;
}

static int sync_queue(struct kit_thread *t, struct kit_io *io)
{
	struct sync_data *sd = t->engine_data;
	int fd = t->p->fds[io->file];
	ssize_t r;

	if (sd->pos[io->file] != io->offset &&
	    lseek(fd, (off_t)io->offset, SEEK_SET) < 0) {
		io->result = -errno;
		sd->pos[io->file] = UINT64_MAX;
		return KIT_COMPLETED;
	}
	do {
		if (io->ddir == KIT_DDIR_READ)
			r = read(fd, io->buf, io->len);
		else
			r = write(fd, io->buf, io->len);
	} while (r < 0 && errno == EINTR);
	io->result = r < 0 ? -errno : r;
	sd->pos[io->file] = r < 0 ? UINT64_MAX : io->offset + (uint64_t)r;
	return KIT_COMPLETED;
}

static void sync_teardown(struct kit_thread *t)
{
	struct sync_data *sd = t->engine_data;

	free(sd->pos);
	free(sd);
}

const struct kit_engine kit_engine_sync = {
	.name = "sync",
	.sync = 1,
	.setup = sync_setup,
	.queue = sync_queue,
	.teardown = sync_teardown,
};
