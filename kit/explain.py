"""What an errno means for a job, in one clause a user can act on: the limit
it hit and how to raise it. Shared by kit's runner and the fio runner, so
the same failure reads the same whoever ran the job."""
import errno
import resource

from .host import read_sysctl


def setup_hint(job, err):
    """' — why, and what to do' for an engine that could not start, or ''."""
    if job.ioengine == "libaio" and err == errno.EAGAIN:
        return (f" — not enough AIO slots (fs.aio-nr={read_sysctl('fs.aio-nr')} of "
                f"fs.aio-max-nr={read_sysctl('fs.aio-max-nr')}; this job needs {job.iodepth * job.numjobs}); "
                "raise it with `sysctl -w fs.aio-max-nr=N`, or lower iodepth or numjobs")
    if job.ioengine == "io_uring" and err in (errno.ENOMEM, errno.ENOBUFS):
        soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        return (f" — the locked-memory limit is too small for the ring"
                f"{' and registered buffers' if job.fixedbufs else ''} "
                f"(ulimit -l is {'unlimited' if soft < 0 else soft // 1024} KiB); raise it with `ulimit -l`")
    if job.ioengine == "io_uring" and err == errno.EPERM:
        return " — io_uring is not permitted for this user (kernel.io_uring_disabled, or a seccomp/container policy)"
    if job.ioengine == "io_uring" and err == errno.EINVAL and job.sqthread_poll_cpu is not None:
        return f" — sqthread_poll_cpu={job.sqthread_poll_cpu} is not an online CPU"
    if job.ioengine == "threadpool" and err == errno.EAGAIN:
        return " — cannot create more threads (ulimit -u, kernel.threads-max); lower threads or numjobs"
    return ""


def io_hint(job, err):
    """' — why' for an I/O that failed, or ''."""
    if err == errno.EOPNOTSUPP and job.hipri:
        return " — hipri: the device does not support polled I/O (no poll queues)"
    if err == errno.EINVAL and job.direct:
        return " — direct I/O needs bs and offsets aligned to the device's logical block size"
    if err == errno.ENOSPC:
        return " — the filesystem is full"
    return ""
