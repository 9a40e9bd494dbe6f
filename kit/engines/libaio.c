/*
 * libaio.c - Linux native AIO (the seed's §3): io_setup, io_submit in
 * batches, io_getevents. Completions are reaped by the system call; the
 * events carry the kit_io pointer in their data field.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libaio.h>
#include <stdlib.h>

#include "engine.h"

struct laio {
	io_context_t ctx;
	struct iocb *cbs;        /* one per kit_io, by index */
	struct iocb **batch;     /* queued, not yet submitted */
	unsigned nbatch;
	struct io_event *events;
};

static void laio_free(struct laio *la)
{
	free(la->cbs);
	free(la->batch);
	free(la->events);
	free(la);
}

static int libaio_setup(struct kit_thread *t)
{
	unsigned depth = t->p->iodepth;
	struct laio *la = calloc(1, sizeof(*la));
	int r;

	if (la) {
		la->cbs = calloc(depth, sizeof(*la->cbs));
		la->batch = calloc(depth, sizeof(*la->batch));
		la->events = calloc(depth, sizeof(*la->events));
	}
	if (!la || !la->cbs || !la->batch || !la->events) {
		if (la)
			laio_free(la);
		return kit_fail(t, -ENOMEM, "libaio: allocating %u control blocks", depth);
	}
	r = io_setup((int)depth, &la->ctx);
	if (r < 0) {
		laio_free(la);
		return kit_fail(t, r, "libaio: io_setup(%u)", depth);
	}
	t->engine_data = la;
	return 0;
}

static int libaio_queue(struct kit_thread *t, struct kit_io *io)
{
	struct laio *la = t->engine_data;
	struct iocb *cb = &la->cbs[io->index];
	int fd = t->p->fds[io->file];

	if (io->ddir == KIT_DDIR_READ)
		io_prep_pread(cb, fd, io->buf, io->len, (long long)io->offset);
	else
		io_prep_pwrite(cb, fd, io->buf, io->len, (long long)io->offset);
	cb->data = io;
	la->batch[la->nbatch++] = cb;
	return KIT_QUEUED;
}

static int libaio_commit(struct kit_thread *t)
{
	struct laio *la = t->engine_data;
	unsigned done = 0;

	while (done < la->nbatch) {
		int r = io_submit(la->ctx, (long)(la->nbatch - done), la->batch + done);

		if (r == -EINTR)
			continue;
		if (r <= 0) {
			la->nbatch = 0;
			return r < 0 ? r : -EAGAIN;
		}
		done += (unsigned)r;
	}
	la->nbatch = 0;
	return 0;
}

static int libaio_reap(struct kit_thread *t, unsigned min, unsigned max,
		       struct kit_io **done)
{
	struct laio *la = t->engine_data;
	int r, i;

	do
		r = io_getevents(la->ctx, (long)min, (long)max, la->events, NULL);
	while (r == -EINTR);
	if (r < 0)
		return r;
	for (i = 0; i < r; i++) {
		struct kit_io *io = la->events[i].data;

		io->result = (long)la->events[i].res;
		done[i] = io;
	}
	return r;
}

static void libaio_teardown(struct kit_thread *t)
{
	struct laio *la = t->engine_data;

	io_destroy(la->ctx);
	laio_free(la);
}

const struct kit_engine kit_engine_libaio = {
	.name = "libaio",
	.setup = libaio_setup,
	.queue = libaio_queue,
	.commit = libaio_commit,
	.reap = libaio_reap,
	.teardown = libaio_teardown,
};
