/*
 * posixaio.c - glibc's POSIX AIO: aio_read/aio_write, then aio_suspend and an
 * aio_error scan to find what finished (fio's posixaio engine does the same).
 * glibc runs these on its own helper threads and serializes requests that
 * share a file descriptor, which is why its depth and switches look as they do.
 */
#define _GNU_SOURCE
#include <aio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

struct paio {
	struct aiocb *cbs;              /* one per kit_io, by index */
	struct kit_io **inflight;
	const struct aiocb **waitlist;  /* aio_suspend's view of inflight */
	unsigned n;
};

static int posixaio_setup(struct kit_thread *t)
{
	unsigned depth = t->p->iodepth;
	struct paio *pa = calloc(1, sizeof(*pa));

	if (pa) {
		pa->cbs = calloc(depth, sizeof(*pa->cbs));
		pa->inflight = calloc(depth, sizeof(*pa->inflight));
		pa->waitlist = calloc(depth, sizeof(*pa->waitlist));
	}
	if (!pa || !pa->cbs || !pa->inflight || !pa->waitlist) {
		if (pa) {
			free(pa->cbs);
			free(pa->inflight);
			free(pa->waitlist);
		}
		free(pa);
		return kit_fail(t, -ENOMEM, "posixaio: allocating %u control blocks", depth);
	}
	t->engine_data = pa;
	return 0;
}

static int posixaio_queue(struct kit_thread *t, struct kit_io *io)
{
	struct paio *pa = t->engine_data;
	struct aiocb *cb = &pa->cbs[io->index];
	int r;

	memset(cb, 0, sizeof(*cb));
	cb->aio_fildes = t->p->fds[io->file];
	cb->aio_buf = io->buf;
	cb->aio_nbytes = io->len;
	cb->aio_offset = (off_t)io->offset;
	cb->aio_sigevent.sigev_notify = SIGEV_NONE;
	r = io->ddir == KIT_DDIR_READ ? aio_read(cb) : aio_write(cb);
	if (r < 0)
		return -errno;
	pa->inflight[pa->n++] = io;
	return KIT_QUEUED;
}

/* Moves every finished request to done[], keeping the rest in order. */
static unsigned collect(struct kit_thread *t, unsigned max, struct kit_io **done)
{
	struct paio *pa = t->engine_data;
	unsigned i = 0, n = 0;

	while (i < pa->n && n < max) {
		struct kit_io *io = pa->inflight[i];
		struct aiocb *cb = &pa->cbs[io->index];
		int e = aio_error(cb);

		if (e == EINPROGRESS) {
			i++;
			continue;
		}
		io->result = e ? -e : (int64_t)aio_return(cb);
		done[n++] = io;
		pa->inflight[i] = pa->inflight[--pa->n];
	}
	return n;
}

static int posixaio_reap(struct kit_thread *t, unsigned min, unsigned max,
			 struct kit_io **done)
{
	struct paio *pa = t->engine_data;
	unsigned n, i;

	/* like fio's posixaio: every finished request is taken (max is ignored),
	 * or each extra completion would cost another aio_error scan */
	max = t->p->iodepth;
	n = collect(t, max, done);

	while (n < min) {
		for (i = 0; i < pa->n; i++)
			pa->waitlist[i] = &pa->cbs[pa->inflight[i]->index];
		if (aio_suspend(pa->waitlist, (int)pa->n, NULL) < 0 &&
		    errno != EINTR && errno != EAGAIN)
			return -errno;
		n += collect(t, max - n, done + n);
	}
	return (int)n;
}

static void posixaio_teardown(struct kit_thread *t)
{
	struct paio *pa = t->engine_data;

	free(pa->cbs);
	free(pa->inflight);
	free(pa->waitlist);
	free(pa);
}

const struct kit_engine kit_engine_posixaio = {
	.name = "posixaio",
	.setup = posixaio_setup,
	.queue = posixaio_queue,
	.reap = posixaio_reap,
	.teardown = posixaio_teardown,
	.shared_files = 1,      /* glibc's AIO threads outlive the run and serve later ones */
};
