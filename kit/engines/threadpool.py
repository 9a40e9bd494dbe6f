"""threadpool (threadpool.c): the job thread hands each I/O to worker
threads doing blocking pread/pwrite. No fio twin."""
import errno

from ..options import Option

FIO = None

OPTIONS = (
    # in job files "threads" is fio's (no-op) tiobench option: there it is threadpool_threads
    Option("threads", "int", 0, "worker threads (default iodepth)", lo=0, hi=4096, param="threads", fio=None,
           aliases=("threadpool_threads",)),
)


def setup_hint(job, err):
    if err == errno.EAGAIN:
        return " — cannot create more threads (ulimit -u, kernel.threads-max); lower threads or numjobs"
    return ""
