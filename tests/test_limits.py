"""Kernel limits and disabled features: one line saying which, why, and how to
change it; never a hang or a traceback. These tests change a system setting
for a moment and restore it."""
import contextlib
import os

from conftest import require, run_kit


def _sysctl_path(name):
    return "/proc/sys/" + name.replace(".", "/")


def _read(name):
    with open(_sysctl_path(name)) as fh:
        return fh.read().strip()


@contextlib.contextmanager
def sysctl(name, value):
    path = _sysctl_path(name)
    require(os.path.exists(path), f"this kernel has no {name}")
    require(os.geteuid() == 0 and os.access(path, os.W_OK), f"setting {name} needs root")
    old = _read(name)
    with open(path, "w") as fh:
        fh.write(str(value))
    try:
        yield
    finally:
        with open(path, "w") as fh:
            fh.write(old)


def _one_line(p):
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def test_libaio_out_of_aio_slots(scratch):
    with sysctl("fs.aio-max-nr", int(_read("fs.aio-nr")) + 8):
        p = run_kit("run", "--ioengine=libaio", "--iodepth=64", "--rw=randread", "--size=1M",
                    f"--directory={scratch}")
    line = _one_line(p)
    assert p.returncode == 1
    assert "io_setup(64)" in line and "fs.aio-max-nr" in line and "sysctl -w fs.aio-max-nr" in line


def test_io_uring_disabled(scratch):
    with sysctl("kernel.io_uring_disabled", 2):
        p = run_kit("run", "--ioengine=io_uring", "--rw=randread", "--size=1M", f"--directory={scratch}")
    line = _one_line(p)
    assert p.returncode == 1
    assert "kernel.io_uring_disabled=2" in line and "choose another ioengine" in line
    assert os.listdir(scratch) == []
    # the same job runs once it is enabled again
    p = run_kit("run", "--ioengine=io_uring", "--rw=randread", "--size=1M", f"--directory={scratch}")
    assert p.returncode == 0, p.stderr
