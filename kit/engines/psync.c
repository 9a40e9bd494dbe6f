/*
 * psync.c - pread(2)/pwrite(2): one blocking system call per I/O.
 */
#include "engine.h"

static int psync_setup(struct kit_thread *t)
{
	(void)t;
	return 0;
}

static int psync_queue(struct kit_thread *t, struct kit_io *io)
{
	kit_io_pread_pwrite(t, io);
	return KIT_COMPLETED;
}

static void psync_teardown(struct kit_thread *t)
{
	(void)t;
}

const struct kit_engine kit_engine_psync = {
	.name = "psync",
	.sync = 1,
	.setup = psync_setup,
	.queue = psync_queue,
	.teardown = psync_teardown,
};
