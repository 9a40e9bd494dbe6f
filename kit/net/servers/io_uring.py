"""io_uring (io_uring.c): one thread ("net-loop") with one ring: accept,
recv and send (UDP: recvmsg and sendmsg) are SQEs, their results CQEs; one
io_uring_enter per batch. Options as fio's io_uring engine names them where
it has them (registerfiles, sqthread_poll, sqthread_poll_cpu); multishot is
kit's. With sqthread_poll the kernel's "iou-sqp-<pid>" thread submits."""
import os

from ...options import Option

NAME = "io_uring"
DOC = "one thread, one ring: accept/recv/send SQEs and their CQEs (multishot + provided buffers, fixed files, SQPOLL)"
PROTOCOLS = ("tcp", "udp")
PKG_CONFIG = "liburing"     # kit.net.build adds its --cflags/--libs

OPTIONS = (
    Option("multishot", "bool", False,
           "one multishot accept, and one multishot recv per connection (UDP: recvmsg) taking its buffers "
           "from a provided-buffer ring (kernel 6.0+)", fio=None, flag=True, label=True),
    Option("registerfiles", "bool", False,
           "connections as direct descriptors: accepted straight into a registered file table "
           "(UDP: the socket registered)", flag=True, label=True),
    Option("sqthread_poll", "bool", False,
           "a kernel thread (iou-sqp) polls the submission queue (SQPOLL): submissions make no system call",
           flag=True, label=True),
    Option("sqthread_poll_cpu", "int", None, "the CPU the SQPOLL thread runs on", lo=0,
           hi=lambda: (os.cpu_count() or 1) - 1,
           requires=(("sqthread_poll", "needs sqthread_poll=1"),)),
)


def LIBRARY():
    from ..build import pkg_config_version
    version = pkg_config_version("liburing")
    return f"liburing {version}" if version else None
