/*
 * io_uring.c - liburing (the seed's §4). The options map to ring features:
 * registerfiles -> io_uring_register_files + IOSQE_FIXED_FILE,
 * fixedbufs     -> io_uring_register_buffers + READ/WRITE_FIXED,
 * sqthread_poll -> IORING_SETUP_SQPOLL (a kernel thread consumes the SQ),
 * hipri         -> IORING_SETUP_IOPOLL (completions polled, no interrupts),
 * force_async=N -> IOSQE_ASYNC on every Nth SQE (punted to io-wq workers).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>

#include "engine.h"

struct uring {
	struct io_uring ring;
	struct io_uring_cqe **cqes;
	struct iovec *iovecs;
	unsigned queued;        /* SQEs prepared since the last submit */
	uint64_t prepared;      /* all SQEs so far, for force_async */
};

static void uring_free(struct uring *u)
{
	free(u->cqes);
	free(u->iovecs);
	free(u);
}

/* Asks for what fio 3.33 asks for (a bigger CQ, cooperative task running,
 * single issuer with deferred task work) and drops those hints one at a time
 * on kernels that refuse them, so kit's "basic" ring is fio's basic ring. */
static int init_ring(unsigned depth, struct io_uring *ring, struct io_uring_params *prm)
{
	static const unsigned hints[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_CQSIZE,
	};
	unsigned wanted = prm->flags, i;
	int r;

	prm->flags |= IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
	if (!(prm->flags & IORING_SETUP_SQPOLL))
		prm->flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	prm->cq_entries = depth * 2;
	for (i = 0;; i++) {
		r = io_uring_queue_init_params(depth, ring, prm);
		if (r != -EINVAL || i == sizeof(hints) / sizeof(hints[0]))
			break;
		prm->flags &= ~hints[i];
		prm->flags |= wanted;
	}
	return r;
}

static int io_uring_setup_ring(struct kit_thread *t)
{
	const struct kit_params *p = t->p;
	struct io_uring_params prm = {0};
	struct uring *u = calloc(1, sizeof(*u));
	unsigned i;
	int r;

	if (u)
		u->cqes = calloc(p->iodepth, sizeof(*u->cqes));
	if (!u || !u->cqes) {
		free(u);
		return kit_fail(t, -ENOMEM, "io_uring: allocating completion slots");
	}
	if (p->hipri)
		prm.flags |= IORING_SETUP_IOPOLL;
	if (p->sqthread_poll) {
		prm.flags |= IORING_SETUP_SQPOLL;
		if (p->sqthread_poll_cpu >= 0) {
			prm.flags |= IORING_SETUP_SQ_AFF;
			prm.sq_thread_cpu = (unsigned)p->sqthread_poll_cpu;
		}
	}
	r = init_ring(p->iodepth, &u->ring, &prm);
	t->s->ring_flags = prm.flags;
	if (r < 0) {
		uring_free(u);
		return kit_fail(t, r, "io_uring: io_uring_queue_init(%u, flags=0x%x)",
				p->iodepth, prm.flags);
	}
	if (p->fixedbufs) {
		u->iovecs = calloc(p->iodepth, sizeof(*u->iovecs));
		if (!u->iovecs)
			r = -ENOMEM;
		for (i = 0; u->iovecs && i < p->iodepth; i++) {
			u->iovecs[i].iov_base = t->ios[i].buf;
			u->iovecs[i].iov_len = t->buf_stride;
		}
		if (!r)
			r = io_uring_register_buffers(&u->ring, u->iovecs, p->iodepth);
		if (r < 0) {
			io_uring_queue_exit(&u->ring);
			uring_free(u);
			return kit_fail(t, r, "io_uring: registering %u buffers of %zu bytes (fixedbufs)",
					p->iodepth, t->buf_stride);
		}
	}
	if (p->registerfiles) {
		r = io_uring_register_files(&u->ring, p->fds, (unsigned)p->nfiles);
		if (r < 0) {
			io_uring_queue_exit(&u->ring);
			uring_free(u);
			return kit_fail(t, r, "io_uring: registering %d files (registerfiles)",
					p->nfiles);
		}
	}
	t->engine_data = u;
	return 0;
}

static int io_uring_queue_io(struct kit_thread *t, struct kit_io *io)
{
	const struct kit_params *p = t->p;
	struct uring *u = t->engine_data;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	int fd = p->registerfiles ? io->file : p->fds[io->file];

	/* SQPOLL: the kernel thread can post an I/O's completion before it
	 * moves the SQ head past it, so a reaped slot may not be free yet */
	while (!sqe && p->sqthread_poll) {
		int r = io_uring_sqring_wait(&u->ring);

		if (r < 0 && r != -EINTR)
			return r;
		sqe = io_uring_get_sqe(&u->ring);
	}
	if (!sqe)
		return -EBUSY;
	if (p->fixedbufs) {
		if (io->ddir == KIT_DDIR_READ)
			io_uring_prep_read_fixed(sqe, fd, io->buf, io->len, io->offset, io->index);
		else
			io_uring_prep_write_fixed(sqe, fd, io->buf, io->len, io->offset, io->index);
	} else {
		if (io->ddir == KIT_DDIR_READ)
			io_uring_prep_read(sqe, fd, io->buf, io->len, io->offset);
		else
			io_uring_prep_write(sqe, fd, io->buf, io->len, io->offset);
	}
	if (p->registerfiles)
		sqe->flags |= IOSQE_FIXED_FILE;
	/* fio's force_async: skip the inline attempt, go straight to io-wq */
	if (p->force_async && ++u->prepared % p->force_async == 0)
		sqe->flags |= IOSQE_ASYNC;
	sqe->user_data = (uint64_t)io->index;
	u->queued++;
	return KIT_QUEUED;
}

static int io_uring_commit(struct kit_thread *t)
{
	struct uring *u = t->engine_data;

	/* With DEFER_TASKRUN, completions that io-wq finished wait as task
	 * work until the ring is entered for events: submitting with
	 * GETEVENTS (and no wait) posts them now, so the reap that follows
	 * takes every completion there is without a second system call. */
	int get_events = (u->ring.flags & IORING_SETUP_DEFER_TASKRUN) != 0;

	/* count what was handed over, not what the SQ still shows: with SQPOLL
	 * the kernel thread drains the ring on its own schedule */
	while (u->queued) {
		int r = get_events ? io_uring_submit_and_get_events(&u->ring) : io_uring_submit(&u->ring);

		if (r == -EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? r : -EAGAIN;
		u->queued -= (unsigned)r < u->queued ? (unsigned)r : u->queued;
	}
	return 0;
}

static int io_uring_reap(struct kit_thread *t, unsigned min, unsigned max,
			 struct kit_io **done)
{
	struct uring *u = t->engine_data;
	unsigned n, i;

	if (min) {
		struct io_uring_cqe *cqe;
		int r;

		do
			r = io_uring_wait_cqe_nr(&u->ring, &cqe, min);
		while (r == -EINTR);
		if (r < 0)
			return r;
	}
	n = io_uring_peek_batch_cqe(&u->ring, u->cqes, max);
	for (i = 0; i < n; i++) {
		struct kit_io *io = &t->ios[u->cqes[i]->user_data];

		io->result = u->cqes[i]->res;
		done[i] = io;
	}
	io_uring_cq_advance(&u->ring, n);
	return (int)n;
}

static void io_uring_teardown(struct kit_thread *t)
{
	struct uring *u = t->engine_data;

	io_uring_queue_exit(&u->ring);
	uring_free(u);
}

const struct kit_engine kit_engine_io_uring = {
	.name = "io_uring",
	.setup = io_uring_setup_ring,
	.queue = io_uring_queue_io,
	.commit = io_uring_commit,
	.reap = io_uring_reap,
	.teardown = io_uring_teardown,
};
