/*
 * asio.cpp - Boost.Asio's own file I/O (the seed's §5.1), in one of two forms:
 *
 * asio_backend=io_uring (default): random_access_file::async_read_some_at /
 *   async_write_some_at on Asio's io_uring backend (BOOST_ASIO_HAS_IO_URING,
 *   with epoll disabled so io_uring serves everything), completions delivered
 *   by an io_context the job thread runs.
 * asio_backend=thread_pool: what most Asio programs do with files today:
 *   a blocking pread/pwrite posted to an asio::thread_pool, its completion
 *   posted back to the job thread's io_context.
 *
 * Asio runs one operation at a time per I/O object and direction (a second
 * read on a file waits in the object's queue until the first completes), so
 * iodepth operations in flight need iodepth file objects: one per I/O slot
 * and file, all on the job's descriptors (released, never closed, at the end).
 *
 * Asio posts its io_uring submission as a handler of the io_context (it
 * batches SQEs until the loop runs), so commit() runs the ready handlers.
 * The engine ABI is C: everything C++ stays in this file, and no exception
 * crosses it.
 */
#define BOOST_ASIO_HAS_IO_URING 1
#define BOOST_ASIO_DISABLE_EPOLL 1
#include <boost/asio/buffer.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/random_access_file.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/version.hpp>

#include <cerrno>
#include <memory>
#include <new>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/prctl.h>

extern "C" {
#include "engine.h"
}

#if !defined(BOOST_ASIO_HAS_FILE) || !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#error "Boost.Asio without its io_uring file support: Boost >= 1.78 and liburing needed"
#endif

namespace asio = boost::asio;

/* Asio submits by itself, inside async_*_some_at, once this many SQEs wait
 * (Boost 1.81's io_uring_service::submit_batch_size, private; see
 * post_submit_sqes_op): the driver commits before, so that each I/O's issue
 * time is its submission's */
#define ASIO_SUBMIT_BATCH 128

/* asio_backend's values, in the order kit/engines/asio.py declares them */
enum { BACKEND_IO_URING = 0, BACKEND_THREAD_POOL = 1 };

namespace {

/* "Boost.Asio 1.81.0", from BOOST_VERSION (108100), at compile time */
struct framework_text {
	char s[32] = {};

	constexpr explicit framework_text(unsigned v)
	{
		const char prefix[] = "Boost.Asio ";
		const unsigned parts[3] = { v / 100000, v / 100 % 1000, v % 100 };
		unsigned n = 0;

		for (unsigned i = 0; prefix[i]; i++)
			s[n++] = prefix[i];
		for (unsigned k = 0; k < 3; k++) {
			char digits[8] = {};
			unsigned x = parts[k], d = 0;

			do
				digits[d++] = (char)('0' + x % 10);
			while (x /= 10);
			while (d)
				s[n++] = digits[--d];
			if (k < 2)
				s[n++] = '.';
		}
	}
};

constexpr framework_text boost_version(BOOST_VERSION);

struct asio_engine {
	explicit asio_engine(unsigned depth) : ctx(1), work(ctx.get_executor()), done(depth) {}

	/* the job thread is the only one running it: concurrency hint 1 */
	asio::io_context ctx;
	/* keeps run_one() waiting while the pool holds I/Os (no op of the
	 * context's own is pending then) */
	asio::executor_work_guard<asio::io_context::executor_type> work;
	std::vector<std::unique_ptr<asio::random_access_file>> files;   /* [slot * nfiles + file] */
	std::optional<asio::thread_pool> pool;
	/* the pool's threads, kit's own, attached to it: a pool that starts its
	 * own and fails at the nth joins the others in its constructor, which
	 * never return (Boost 1.81) -- a job hung for good under a thread limit */
	std::vector<std::thread> workers;
	std::vector<kit_io *> done;     /* completed, not yet reaped, in order */
	unsigned ndone = 0;

	void stop_workers()
	{
		pool->stop();           /* every I/O is back: nothing waits in it */
		for (auto &w : workers)
			if (w.joinable())
				w.join();
		workers.clear();
	}

	~asio_engine()
	{
		if (pool)
			stop_workers();
		/* the descriptors are the job's: handed back, not closed */
		for (auto &f : files) {
			boost::system::error_code ec;

			if (f)
				f->release(ec);
		}
	}
};

int error_result(const boost::system::error_code &ec)
{
	if (ec == asio::error::eof)
		return 0;               /* nothing read: a short read, said so by the driver */
	if (ec.category() == boost::system::system_category() && ec.value() > 0)
		return -ec.value();
	return -EIO;
}

void complete(asio_engine *e, kit_io *io)
{
	e->done[e->ndone++] = io;
}

/* what the pool's threads are called: the sched tracer's helpers */
void name_pool_thread()
{
	prctl(PR_SET_NAME, "kit-asio-pool", 0, 0, 0);
}

int asio_setup_impl(kit_thread *t)
{
	const kit_params *p = t->p;
	auto e = std::make_unique<asio_engine>(p->iodepth);

	if (p->asio_backend == BACKEND_THREAD_POOL) {
		unsigned n = p->threads ? p->threads : p->iodepth;

		e->pool.emplace(0);
		try {
			for (unsigned i = 0; i < n; i++)
				e->workers.emplace_back([pool = &*e->pool] {
					name_pool_thread();
					pool->attach();
				});
		} catch (...) {
			e->stop_workers();      /* those that started leave at once */
			throw;                  /* guarded(): one line, -errno */
		}
		t->s->threads_started = n;
	} else {
		e->files.reserve((size_t)p->iodepth * p->nfiles);
		for (unsigned slot = 0; slot < p->iodepth; slot++)
			for (int f = 0; f < p->nfiles; f++)
				e->files.push_back(std::make_unique<asio::random_access_file>(e->ctx, p->fds[f]));
	}
	t->engine_data = e.release();
	return 0;
}

int asio_queue_impl(kit_thread *t, kit_io *io)
{
	auto *e = static_cast<asio_engine *>(t->engine_data);

	if (e->pool) {
		/* a pool thread takes it up at once: issued now, not at commit() */
		asio::post(*e->pool, [e, t, io] {
			kit_io_pread_pwrite(t, io);
			asio::post(e->ctx, [e, io] { complete(e, io); });
		});
		return KIT_STARTED;
	}
	auto &file = *e->files[(size_t)io->index * t->p->nfiles + io->file];
	auto handler = [e, io](const boost::system::error_code &ec, std::size_t n) {
		io->result = ec ? error_result(ec) : (int64_t)n;
		complete(e, io);
	};
	if (io->ddir == KIT_DDIR_READ)
		file.async_read_some_at(io->offset, asio::buffer(io->buf, io->len), handler);
	else
		file.async_write_some_at(io->offset, asio::const_buffer(io->buf, io->len), handler);
	return KIT_QUEUED;
}

int asio_reap_impl(kit_thread *t, unsigned min, unsigned max, kit_io **done)
{
	auto *e = static_cast<asio_engine *>(t->engine_data);
	unsigned n, i;

	while (e->ndone < min)
		e->ctx.run_one();
	n = e->ndone < max ? e->ndone : max;
	for (i = 0; i < n; i++)
		done[i] = e->done[i];
	for (i = n; i < e->ndone; i++)
		e->done[i - n] = e->done[i];
	e->ndone -= n;
	return (int)n;
}

/* exceptions end at the C boundary as -errno */
template <typename F> int guarded(kit_thread *t, const char *what, F f)
{
	try {
		return f();
	} catch (const boost::system::system_error &err) {
		int code = err.code().category() == boost::system::system_category() ? err.code().value() : EIO;

		return kit_fail(t, -code, "asio: %s: %s", what, err.what());
	} catch (const std::system_error &err) {
		/* its text is the errno's, which the error line adds */
		return kit_fail(t, -err.code().value(), "asio: %s", what);
	} catch (const std::bad_alloc &) {
		return kit_fail(t, -ENOMEM, "asio: %s: out of memory", what);
	} catch (const std::exception &err) {
		return kit_fail(t, -EIO, "asio: %s: %s", what, err.what());
	}
}

} // namespace

extern "C" {

static int asio_setup(struct kit_thread *t)
{
	return guarded(t, "setting up", [t] { return asio_setup_impl(t); });
}

static int asio_queue(struct kit_thread *t, struct kit_io *io)
{
	return guarded(t, "starting an operation", [t, io] { return asio_queue_impl(t, io); });
}

static int asio_commit(struct kit_thread *t)
{
	/* Asio submits its batched SQEs from a handler: let the loop run it */
	return guarded(t, "running the io_context", [t] {
		static_cast<asio_engine *>(t->engine_data)->ctx.poll();
		return 0;
	});
}

static int asio_reap(struct kit_thread *t, unsigned min, unsigned max, struct kit_io **done)
{
	return guarded(t, "running the io_context", [=] { return asio_reap_impl(t, min, max, done); });
}

static void asio_teardown(struct kit_thread *t)
{
	delete static_cast<asio_engine *>(t->engine_data);
}

extern const struct kit_engine kit_engine_asio;
const struct kit_engine kit_engine_asio = {
	.name = "asio",
	.sync = 0,
	.setup = asio_setup,
	.queue = asio_queue,
	.commit = asio_commit,
	.reap = asio_reap,
	.teardown = asio_teardown,
	.framework = boost_version.s,
	.shared_files = 0,
	.max_batch = ASIO_SUBMIT_BATCH - 1,
};

}
