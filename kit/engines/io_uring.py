"""io_uring (io_uring.c): its options, what this machine must offer it, and
what its setup errors mean."""
import errno
import os
import resource

from ..errors import RunError
from ..host import capabilities, read_sysctl
from ..machine import describe_target
from ..options import UINT32_MAX, Option

FIO = "io_uring"
# ways of running it worth measuring on their own (kit report's anatomy)
VARIANTS = {"sqpoll": {"sqthread_poll": True}, "async": {"force_async": 1}}

OPTIONS = (
    Option("fixedbufs", "bool", False, "register the I/O buffers", flag=True, param="fixedbufs", label=True,
           probe={}),
    Option("registerfiles", "bool", False, "register the files", flag=True, param="registerfiles", label=True,
           probe={}),
    Option("sqthread_poll", "bool", False, "a kernel thread polls the submission queue (SQPOLL)", flag=True,
           param="sqthread_poll", label=True, probe={}, implies=("registerfiles",)),
    Option("sqthread_poll_cpu", "int", None, "CPU of the SQPOLL thread", lo=0,
           hi=lambda: (os.cpu_count() or 1) - 1, param="sqthread_poll_cpu", c_none=-1,
           requires=(("sqthread_poll", "needs sqthread_poll=1"),)),
    Option("hipri", "bool", False, "poll for completions (IOPOLL; needs direct=1 and device poll queues)",
           flag=True, param="hipri", label=True, probe={"direct": True},
           requires=(("direct", "polled completions (IOPOLL) need direct=1"),)),
    Option("force_async", "int", 0, "every Nth I/O skips the inline attempt and goes to io-wq (IOSQE_ASYNC)",
           lo=0, hi=UINT32_MAX, param="force_async", label=True),
)


def check_machine(job, paths):
    """What this kernel or device lacks for the job, said before anything is
    written (RunError). paths: where the job's files are, or would be."""
    why = _refused()
    if why:
        raise RunError(f"ioengine=io_uring: {why}; `sysctl -w kernel.io_uring_disabled=0` as root, "
                       "or choose another ioengine")
    if job.hipri:
        for path in paths:
            why = _no_poll_queues(path)
            if why:
                raise RunError(f"hipri: polled completions (IOPOLL) cannot work on {path}: {why}. "
                               "Run without hipri, or on an NVMe device with poll queues (nvme.poll_queues=N)")


def _refused():
    """kernel.io_uring_disabled: 2 refuses everyone, 1 all but CAP_SYS_ADMIN
    and members of kernel.io_uring_group."""
    disabled = read_sysctl("kernel.io_uring_disabled")
    if disabled == "2":
        return "io_uring is disabled on this kernel (kernel.io_uring_disabled=2)"
    if disabled == "1":
        group = read_sysctl("kernel.io_uring_group")
        member = group not in (None, "-1") and int(group) in os.getgroups() + [os.getegid()]
        if not capabilities()["CAP_SYS_ADMIN"] and not member:
            return (f"io_uring is limited to CAP_SYS_ADMIN and group {group} on this kernel "
                    "(kernel.io_uring_disabled=1)")
    return None


def _no_poll_queues(path):
    info = describe_target(path) or {}
    dev = info.get("device")
    if not dev:
        fs = (info.get("filesystem") or {}).get("type", "this filesystem")
        return f"it is on {fs}, which has no block device to poll"
    if str(dev.get("io_poll")) != "1":
        return (f"its device /dev/{dev.get('name')} ({dev.get('kind') or dev.get('driver') or 'unknown driver'}) "
                f"has no poll queues (queue/io_poll={dev.get('io_poll')})")
    return None


def setup_hint(job, err):
    if err in (errno.ENOMEM, errno.ENOBUFS):
        soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        return (f" — the locked-memory limit is too small for the ring"
                f"{' and registered buffers' if job.fixedbufs else ''} "
                f"(ulimit -l is {'unlimited' if soft < 0 else soft // 1024} KiB); raise it with `ulimit -l`")
    if err == errno.EPERM:
        return " — io_uring is not permitted for this user (kernel.io_uring_disabled, or a seccomp/container policy)"
    if err == errno.EINVAL and job.sqthread_poll_cpu is not None:
        return f" — sqthread_poll_cpu={job.sqthread_poll_cpu} is not an online CPU"
    return ""


def io_hint(job, err):
    if err == errno.EOPNOTSUPP and job.hipri:
        return " — hipri: the device does not support polled I/O (no poll queues)"
    return ""
