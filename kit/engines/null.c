/*
 * null.c - completes every I/O without a system call or a byte moved (fio's
 * null engine): what is left is the cost of kit itself, per I/O -- the floor
 * under every other engine's figures. Queued, committed and reaped like an
 * asynchronous engine, except at iodepth=1, where it completes inline (no
 * submission latency), as fio's does.
 */
#include <errno.h>
#include <stdlib.h>

#include "engine.h"

struct null_data {
	struct kit_io **queued;
	unsigned nqueued;
	struct kit_io **done;
	unsigned ndone;
};

static int null_setup(struct kit_thread *t)
{
	struct null_data *nd = calloc(1, sizeof(*nd));
	unsigned depth = t->p->iodepth;

	if (nd) {
		nd->queued = calloc(depth, sizeof(*nd->queued));
		nd->done = calloc(depth, sizeof(*nd->done));
	}
	if (!nd || !nd->queued || !nd->done) {
		if (nd) {
			free(nd->queued);
			free(nd->done);
		}
		free(nd);
		return kit_fail(t, -ENOMEM, "null: allocating %u slots", depth);
	}
	t->engine_data = nd;
	return 0;
}

static int null_queue(struct kit_thread *t, struct kit_io *io)
{
	struct null_data *nd = t->engine_data;

	io->result = io->len;
	if (t->p->iodepth == 1) {       /* fio's null completes inline at iodepth=1 */
		io->result = io->len;
		return KIT_COMPLETED;
	}
	nd->queued[nd->nqueued++] = io;
	return KIT_QUEUED;
}

static int null_commit(struct kit_thread *t)
{
	struct null_data *nd = t->engine_data;
	unsigned i;

	for (i = 0; i < nd->nqueued; i++)
		nd->done[nd->ndone++] = nd->queued[i];
	nd->nqueued = 0;
	return 0;
}

static int null_reap(struct kit_thread *t, unsigned min, unsigned max, struct kit_io **done)
{
	struct null_data *nd = t->engine_data;
	unsigned i, n = nd->ndone < max ? nd->ndone : max;

	(void)min;              /* everything committed is complete already */
	for (i = 0; i < n; i++)
		done[i] = nd->done[i];
	for (i = n; i < nd->ndone; i++)
		nd->done[i - n] = nd->done[i];
	nd->ndone -= n;
	return (int)n;
}

static void null_teardown(struct kit_thread *t)
{
	struct null_data *nd = t->engine_data;

	free(nd->queued);
	free(nd->done);
	free(nd);
}

const struct kit_engine kit_engine_null = {
	.name = "null",
	.sync = 0,
	.setup = null_setup,
	.queue = null_queue,
	.commit = null_commit,
	.reap = null_reap,
	.teardown = null_teardown,
};
