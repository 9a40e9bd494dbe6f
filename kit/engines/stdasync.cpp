/*
 * stdasync.cpp - the seed's §5.2 at scale: every I/O is a blocking
 * pread/pwrite launched with std::async(std::launch::async, ...), which in
 * libstdc++ starts a new thread per call (and joins it when the future is
 * done with). iodepth futures are in flight; reap() takes every future that
 * is ready, and when too few are, waits on the oldest: std::future has no
 * "wait for any", so that is what a program written this way does.
 *
 * The threads name themselves kit-stdasync, so the sched tracer counts them
 * as the run's helpers; how many were started is in the result.
 * The engine ABI is C: no exception crosses it.
 */
#include <cerrno>
#include <chrono>
#include <future>
#include <new>
#include <system_error>
#include <vector>

#include <sys/prctl.h>

extern "C" {
#include "engine.h"
}

#define STR2(x) #x
#define STR(x) STR2(x)

namespace {

struct stdasync_engine {
	explicit stdasync_engine(unsigned depth) : futures(depth), inflight(depth) {}

	std::vector<std::future<void>> futures;     /* by kit_io index */
	std::vector<kit_io *> inflight;             /* in launch order */
	unsigned ninflight = 0;
};

int stdasync_setup_impl(kit_thread *t)
{
	t->engine_data = new stdasync_engine(t->p->iodepth);
	return 0;
}

int stdasync_queue_impl(kit_thread *t, kit_io *io)
{
	auto *e = static_cast<stdasync_engine *>(t->engine_data);

	e->futures[io->index] = std::async(std::launch::async, [t, io] {
		prctl(PR_SET_NAME, "kit-stdasync", 0, 0, 0);
		kit_io_pread_pwrite(t, io);
	});
	t->s->threads_started++;
	e->inflight[e->ninflight++] = io;
	return KIT_QUEUED;
}

/* Moves the ready futures' I/Os to done[] (at most max), keeping the order
 * of the rest; get() and the future's release join the thread. */
unsigned collect(stdasync_engine *e, unsigned max, kit_io **done)
{
	unsigned i, kept = 0, n = 0;

	for (i = 0; i < e->ninflight; i++) {
		kit_io *io = e->inflight[i];
		auto &f = e->futures[io->index];

		if (n < max && f.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
			f.get();
			f = std::future<void>();
			done[n++] = io;
		} else {
			e->inflight[kept++] = io;
		}
	}
	e->ninflight = kept;
	return n;
}

int stdasync_reap_impl(kit_thread *t, unsigned min, unsigned max, kit_io **done)
{
	auto *e = static_cast<stdasync_engine *>(t->engine_data);
	unsigned n = collect(e, max, done);

	while (n < min && e->ninflight) {
		e->futures[e->inflight[0]->index].wait();
		n += collect(e, max - n, done + n);
	}
	return (int)n;
}

template <typename F> int guarded(kit_thread *t, const char *what, F f)
{
	try {
		return f();
	} catch (const std::system_error &err) {
		/* std::async reports a thread it could not start as EAGAIN */
		/* its text is the errno's, which the error line adds */
		return kit_fail(t, -err.code().value(), "stdasync: %s", what);
	} catch (const std::bad_alloc &) {
		return kit_fail(t, -ENOMEM, "stdasync: %s: out of memory", what);
	} catch (const std::exception &err) {
		return kit_fail(t, -EIO, "stdasync: %s: %s", what, err.what());
	}
}

} // namespace

extern "C" {

static int stdasync_setup(struct kit_thread *t)
{
	return guarded(t, "allocating futures", [t] { return stdasync_setup_impl(t); });
}

static int stdasync_queue(struct kit_thread *t, struct kit_io *io)
{
	return guarded(t, "launching std::async", [t, io] { return stdasync_queue_impl(t, io); });
}

static int stdasync_reap(struct kit_thread *t, unsigned min, unsigned max, struct kit_io **done)
{
	return guarded(t, "waiting for futures", [=] { return stdasync_reap_impl(t, min, max, done); });
}

static void stdasync_teardown(struct kit_thread *t)
{
	/* the driver reaped every I/O: no future is left running */
	delete static_cast<stdasync_engine *>(t->engine_data);
}

extern const struct kit_engine kit_engine_stdasync;
const struct kit_engine kit_engine_stdasync = {
	.name = "stdasync",
	.sync = 0,
	.setup = stdasync_setup,
	.queue = stdasync_queue,
	.commit = nullptr,
	.reap = stdasync_reap,
	.teardown = stdasync_teardown,
	.framework = "libstdc++ " STR(_GLIBCXX_RELEASE) " (" STR(__GLIBCXX__) ")",
};

}
