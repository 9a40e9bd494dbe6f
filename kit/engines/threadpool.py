"""threadpool (threadpool.c): the job thread hands each I/O to worker
threads doing blocking pread/pwrite. No fio twin."""
import errno

from ..options import Option

FIO = None

OPTIONS = (
    Option("threads", "int", 0, "worker threads (default iodepth)", lo=0, hi=4096, param="threads", fio=None),
)


def setup_hint(job, err):
    if err == errno.EAGAIN:
        return " — cannot create more threads (ulimit -u, kernel.threads-max); lower threads or numjobs"
    return ""
