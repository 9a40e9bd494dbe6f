"""libaio (libaio.c): Linux AIO, io_setup / io_submit / io_getevents."""
import errno

from ..host import read_sysctl

FIO = "libaio"
OPTIONS = ()


def setup_hint(job, err):
    if err == errno.EAGAIN:
        return (f" — not enough AIO slots (fs.aio-nr={read_sysctl('fs.aio-nr')} of "
                f"fs.aio-max-nr={read_sysctl('fs.aio-max-nr')}; this job needs {job.iodepth * job.numjobs}); "
                "raise it with `sysctl -w fs.aio-max-nr=N`, or lower iodepth or numjobs")
    return ""
