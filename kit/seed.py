"""The seed article's two fio tables (async-io-frameworks.md §4.4), as kit
Jobs. jobs/seed-direct.fio and jobs/seed-buffered.fio say the same in fio's
language; tests check that both agree.

1 KiB random reads, iodepth 8, every job reading 4 files, several jobs per
CPU, one engine after another: once with O_DIRECT, once with every read a
page-cache hit. Engines: sync, posix-aio, linux-aio, io_uring basic and
"enhanced" (registered buffers and files), the C++ ways of §5 (Boost.Asio's
files on io_uring, Asio's thread pool, std::async), optionally kit's thread
pool. fio has no twin of the C++ rows: only kit runs them.
"""
import os

from .job import Job

SEED_ENGINES = (
    ("sync", {"ioengine": "sync"}),
    ("posix-aio", {"ioengine": "posixaio"}),
    ("linux-aio", {"ioengine": "libaio"}),
    ("io_uring", {"ioengine": "io_uring"}),
    ("io_uring-enhanced", {"ioengine": "io_uring", "fixedbufs": True, "registerfiles": True}),
    ("boost-asio", {"ioengine": "asio"}),
    ("boost-asio-pool", {"ioengine": "asio", "asio_backend": "thread_pool"}),
    ("std-async", {"ioengine": "stdasync"}),
)
THREADPOOL = ("threadpool", {"ioengine": "threadpool"})


def seed_jobs(direct=True, jobs_per_cpu=4, filesize="16m", runtime=10, threadpool=False, directory=None,
              ramp_time=0):
    """The jobs of one of the seed's tables, scaled to this machine."""
    common = dict(rw="randread", bs="1k", iodepth=8, nrfiles=4, filesize=filesize,
                  numjobs=jobs_per_cpu * (os.cpu_count() or 1), direct=direct, runtime=runtime,
                  time_based=True, filename_format="seed.$jobnum.$filenum", group_reporting=True,
                  invalidate=True, iodepth_batch_submit=1,     # fio's defaults, as the job files mean
                  iodepth_batch_complete_max=1)
    if ramp_time:
        common["ramp_time"] = ramp_time
    if not direct:
        common.update(pre_read=True, invalidate=False)   # 100 % page-cache hits
    if directory:
        common["directory"] = directory
    engines = SEED_ENGINES + ((THREADPOOL,) if threadpool else ())
    return [Job(name=name, **common, **extra) for name, extra in engines]
