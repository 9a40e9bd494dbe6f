"""Shared fixtures. Tests run the real thing: real files, real kernel
interfaces, real loop devices. A test that cannot run here skips, except
under KIT_STRICT=1 (CI), where a missing capability fails it."""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STRICT = os.environ.get("KIT_STRICT") == "1"
KIT = os.path.join(os.path.dirname(sys.executable), "kit")


def require(condition, why):
    """Skip when this machine cannot run the test; fail under KIT_STRICT=1."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"KIT_STRICT=1 and {why}")
    pytest.skip(why)


@pytest.fixture
def scratch(tmp_path):
    """A directory on a real disk filesystem (O_DIRECT works, page cache applies)."""
    d = tmp_path / "scratch"
    d.mkdir()
    return str(d)


def run_kit(*args, cwd=None, timeout=120, env=None):
    """The installed `kit` command, as a user runs it."""
    return subprocess.run([KIT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def _stop_signal_held(pid):
    """'blocked' (kit's launcher holds SIGTERM while Python starts), 'caught'
    (kit's handler is in place), 'gone', or None: the dynamic loader's ~1 ms
    after exec, before the launcher's first line, when no program can hold
    a signal and the kernel's default ends it, fio as much as kit."""
    bit = 1 << (signal.SIGTERM - 1)
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status)
    except (FileNotFoundError, ProcessLookupError):
        return "gone"
    if int(fields["SigBlk"], 16) & bit:
        return "blocked"
    return "caught" if int(fields["SigCgt"], 16) & bit else None


def kit_started(proc):
    """Waits until the `kit` just started holds SIGTERM (its launcher's first
    line); returns how it holds it. A test that signals kit must not signal
    the dynamic loader before it."""
    import time
    deadline = time.monotonic() + 5
    while not (held := _stop_signal_held(proc.pid)):
        assert time.monotonic() < deadline, "kit never blocked nor caught SIGTERM"
    return held


def interrupt_kit(args, signum, after):
    """Starts `kit ARGS`, sends signum after `after` seconds; returns (seconds
    from the signal to the exit, exit code, stdout, stderr)."""
    import time
    proc = subprocess.Popen([KIT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kit_started(proc)
    time.sleep(after)
    sent = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    return time.monotonic() - sent, proc.returncode, out, err


@contextlib.contextmanager
def loop_device(size_mb=64, fs=None):
    """A loop device over a file in /dev/shm: a real block device (through the
    block layer), detached and deleted afterwards. With fs='ext4' it is
    formatted and mounted; yields (device, mount point or None)."""
    require(os.geteuid() == 0, "loop devices need root")
    require(shutil.which("losetup") is not None, "losetup is not installed")
    image = f"/dev/shm/kit-test-{uuid.uuid4().hex[:8]}.img"
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    dev = mnt = None
    try:
        dev = subprocess.run(["losetup", "-f", "--show", image], capture_output=True,
                             text=True, check=True).stdout.strip()
        if fs:
            # ext4: inode tables and journal zeroed now, not by ext4lazyinit in
            # the background, which would be other I/O during a test's runs
            lazy = ["-E", "lazy_itable_init=0,lazy_journal_init=0"] if fs == "ext4" else []
            subprocess.run([f"mkfs.{fs}", "-q", "-F", *lazy, dev], check=True, capture_output=True)
            mnt = f"/dev/shm/kit-test-mnt-{uuid.uuid4().hex[:8]}"
            os.mkdir(mnt)
            subprocess.run(["mount", dev, mnt], check=True, capture_output=True)
        yield dev, mnt
    finally:
        if mnt:
            subprocess.run(["umount", mnt], capture_output=True)
            os.rmdir(mnt)
        if dev:
            subprocess.run(["losetup", "-d", dev], capture_output=True)
        os.unlink(image)


@contextlib.contextmanager
def small_tmpfs(mnt, size):
    """A tmpfs of `size` mounted on the new directory mnt: a disk that fills up."""
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    os.mkdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.fixture
def loopdev():
    with loop_device() as (dev, _mnt):
        yield dev


@pytest.fixture
def mounted_loopdev():
    with loop_device(fs="ext4") as (dev, mnt):
        yield dev, mnt


# ---- counting generated cases (the fuzz tests report how many they tried)

_CASES = {}


def count_case(kind):
    _CASES[kind] = _CASES.get(kind, 0) + 1


def pytest_terminal_summary(terminalreporter):
    if _CASES:
        terminalreporter.write_line("fuzzed bad input, cases tried: "
                                    + ", ".join(f"{k} {v}" for k, v in sorted(_CASES.items())))
    for text in _FIGURES:
        terminalreporter.write_line(text)


_FIGURES = []


def report_figure(text):
    """A measured figure worth seeing in the test summary (leak checks)."""
    _FIGURES.append(text)

