"""asio (asio.cpp): Boost.Asio's random_access_file on its io_uring backend,
or (asio_backend=thread_pool) blocking pread/pwrite posted to an
asio::thread_pool. No fio twin."""
from ..errors import OptionError
from ..options import Option
from . import io_uring, threadpool

FIO = None
# the form most Asio programs use for files today, measured on its own (kit report's anatomy)
VARIANTS = {"thread_pool": {"asio_backend": "thread_pool"}}

OPTIONS = (
    Option("asio_backend", "choice", "io_uring",
           "io_uring: random_access_file's async_read_some_at/async_write_some_at on Asio's io_uring backend; "
           "thread_pool: blocking pread/pwrite posted to an asio::thread_pool",
           choices=("io_uring", "thread_pool"), param="asio_backend", fio=None, label=True),
    *threadpool.OPTIONS,        # threads: the thread_pool's size (default iodepth)
)


def check_options(job):
    """threads sizes the thread_pool backend's pool: with io_uring it would
    be taken and ignored."""
    if job.asio_backend == "io_uring" and job.threads:
        raise OptionError("threads", f"is the size of asio_backend=thread_pool's pool; asio_backend=io_uring "
                                     f"starts no threads (got threads={job.threads}): set asio_backend=thread_pool, "
                                     "or leave threads out")


def check_machine(job, paths):
    if job.asio_backend == "io_uring":
        io_uring.check_machine(job, paths)


def setup_hint(job, err):
    if job.asio_backend == "io_uring":
        return io_uring.setup_hint(job, err)
    return threadpool.setup_hint(job, err)
