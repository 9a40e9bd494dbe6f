"""Faults and limits: a failing device, files shrinking or vanishing under a
run, a full filesystem, SIGTERM, too few descriptors or too little locked
memory. Each gives one clear line (which file, which offset, which limit and
how to raise it), nothing hangs, nothing is left half-written."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

import kit
from kit.engines import diskless, engine_names, registry
from conftest import KIT, interrupt_kit, require, run_kit, small_tmpfs


def _later(seconds, action):
    t = threading.Timer(seconds, action)
    t.start()
    return t


def test_eio_from_a_device_that_shrinks(loopdev):
    """The loop device's backing file is cut to a quarter mid-run: a read past
    the new end fails with EIO (in flight when the device shrank) or reads
    nothing (a block device's end of file, once its size is updated); either
    way one line names the device and the offset, beyond the new end."""
    image = subprocess.run(["losetup", "-n", "-O", "BACK-FILE", loopdev], capture_output=True, text=True,
                           check=True).stdout.strip()

    def shrink():
        os.truncate(image, 16 << 20)
        subprocess.run(["losetup", "-c", loopdev], check=True)
    timer = _later(0.7, shrink)
    start = time.monotonic()
    p = run_kit("run", f"--filename={loopdev}", "--rw=randread", "--direct=1", "--ioengine=io_uring",
                "--iodepth=4", "--runtime=20", "--time_based", "--output-format=json")
    timer.join()
    assert time.monotonic() - start < 10
    assert p.returncode == 1
    line = p.stderr.strip().splitlines()[-1]
    assert (f"{loopdev}: read failed: Input/output error at offset" in line
            or f"{loopdev}: short read: 0 of 4096 bytes at offset" in line), line
    offset = int(line.rsplit(" ", 1)[1])
    assert offset >= 16 << 20                       # beyond the new end
    data = json.loads(p.stdout)
    assert data["error"]["kind"] in ("io", "short") and data["error"]["offset"] == offset
    assert data["total"]["read"]["total_ios"] > 0   # what was measured before is kept


@pytest.mark.parametrize("engine", [e for e in engine_names() if not diskless(e)])
def test_short_read_when_a_file_shrinks(scratch, engine):
    kit.run(kit.Job(size="8m", directory=scratch), progress=False, machine=False)
    path = os.path.join(scratch, "kit.0.0")
    timer = _later(0.3, lambda: os.truncate(path, 1 << 20))
    with pytest.raises(kit.RunError) as e:
        kit.run(kit.Job(ioengine=engine, iodepth=4, rw="randread", size="8m", runtime=10, time_based=True,
                        directory=scratch), progress=False, machine=False)
    timer.join()
    message = str(e.value)
    assert message.startswith(f"{path}: short read: 0 of 4096 bytes at offset")
    assert int(message.rsplit(" ", 1)[1]) >= 1 << 20
    assert e.value.result.data["error"]["kind"] == "short"


def test_a_file_deleted_mid_run(scratch):
    kit.run(kit.Job(size="4m", directory=scratch), progress=False, machine=False)
    path = os.path.join(scratch, "kit.0.0")
    timer = _later(0.2, lambda: os.unlink(path))
    r = kit.run(kit.Job(rw="randread", size="4m", runtime=0.6, time_based=True, directory=scratch),
                progress=False, machine=False)
    timer.join()
    assert r.ios > 1000 and r.data["error"] is None
    assert f"{path} was deleted during the run (its open descriptors kept working)" in r.data["notes"]
    # the next run makes the file again
    r = kit.run(kit.Job(rw="randread", size="4m", number_ios=10, directory=scratch), progress=False, machine=False)
    assert r.ios == 10 and os.path.exists(path)


@pytest.fixture(name="small_tmpfs")
def small_tmpfs_4m(tmp_path):
    with small_tmpfs(tmp_path / "small", "4m") as mnt:
        yield str(mnt)


def test_disk_full_is_refused_before_writing(small_tmpfs):
    p = run_kit("run", "--size=8m", f"--directory={small_tmpfs}/kit")
    assert p.returncode == 2
    assert "kit's files need 8,388,608 more bytes" in p.stderr and "free" in p.stderr
    assert os.listdir(small_tmpfs) == []
    p = run_kit("run", "--size=2m", f"--directory={small_tmpfs}/kit", "--number_ios=10")
    assert p.returncode == 0, p.stderr


def test_disk_filling_up_during_the_prefill(small_tmpfs):
    """Someone else takes the space between kit's check and its writes:
    ENOSPC names the file, and the next run (with room) fills it again."""
    hog = os.path.join(small_tmpfs, "hog")

    def fill_disk():
        fd = os.open(hog, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"x" * (4 << 20))      # as much as fits
        except OSError:
            pass
        finally:
            os.close(fd)
    # the hog writes as soon as kit has planned (3 MiB free then) and starts filling
    from kit import target
    real_fill = target._fill_all

    def hog_then_fill(to_fill, progress):
        fill_disk()
        return real_fill(to_fill, progress)
    target._fill_all = hog_then_fill
    try:
        with pytest.raises(kit.RunError, match=r"pre-filling .*kit\.0\.0: No space left on device"):
            kit.run(kit.Job(size="3m", directory=os.path.join(small_tmpfs, "kit")), progress=False, machine=False)
    finally:
        target._fill_all = real_fill
    os.unlink(hog)
    r = kit.run(kit.Job(size="3m", verify="crc32c", directory=os.path.join(small_tmpfs, "kit")),
                progress=False, machine=False)
    assert r.ios == 768 and r.total["kit"]["verified_bytes"] == 3 << 20


def test_sigterm_stops_a_traced_run_and_detaches(scratch):
    from kit.tracers import status
    require(status()["usable"], f"tracing: {status()['reason']}")
    took, code, out, err = interrupt_kit(["run", "--rw=randread", "--size=8m", "--runtime=60", "--time_based",
                                          "--trace=sched", "--output-format=json", f"--directory={scratch}"],
                                         signal.SIGTERM, 2.5)
    assert took < 2.5
    assert code == 130, err
    data = json.loads(out)
    assert data["interrupted"] is True and data["traced"] is True
    assert data["trace"]["sched"]["roles"]["job"]["switches"] > 0


def test_killed_prefill_is_filled_again(scratch):
    """kit killed outright (SIGKILL) while pre-filling: the file is still
    kit's (the manifest says "filling"), and the next run fills it again."""
    from kit import target
    proc = subprocess.Popen([KIT, "run", "--size=1g", "--number_ios=1", f"--directory={scratch}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = os.path.join(scratch, "kit.0.0")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not os.path.exists(path) or os.path.getsize(path) < 64 << 20):
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert target.read_manifest(scratch)["kit.0.0"]["pattern"] == "filling"
    assert os.path.getsize(path) < 1 << 30
    r = kit.run(kit.Job(rw="randread", size="4m", verify="crc32c", directory=scratch), progress=False,
                machine=False)
    assert r.ios == 1024 and r.total["kit"]["verified_bytes"] == 4 << 20
    assert target.read_manifest(scratch)["kit.0.0"]["pattern"] == "intact"


def test_too_few_file_descriptors(scratch):
    p = subprocess.run(["prlimit", "--nofile=100:100", KIT, "run", "--numjobs=8", "--nrfiles=8", "--size=64k",
                        "--filesize=8k", f"--directory={scratch}"], capture_output=True, text=True)
    assert p.returncode == 2                    # known before a file is made
    line = p.stderr.strip().splitlines()[-1]
    assert "64 open files need about 192 descriptors" in line and "ulimit -n" in line
    assert os.listdir(scratch) == []
    # the limit found only while opening (other descriptors in use): one line, and every
    # file made so far recorded as kit's, so the next run fills them instead of refusing them
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(80)]
    try:
        p = subprocess.run(["prlimit", "--nofile=140:140", KIT, "run", "--numjobs=1", "--nrfiles=30", "--size=30k",
                            "--filesize=1k", "--bs=1k", f"--directory={scratch}"], capture_output=True, text=True,
                           pass_fds=held)
    finally:
        for fd in held:
            os.close(fd)
    assert p.returncode == 1, p.stderr
    assert "too many open files" in p.stderr.strip().splitlines()[-1]
    made = [n for n in os.listdir(scratch) if not n.startswith(".")]
    from kit.target import read_manifest
    assert made and set(made) <= set(read_manifest(scratch))
    r = kit.run(kit.Job(numjobs=1, nrfiles=30, size="30k", filesize="1k", bs="1k", directory=scratch),
                progress=False, machine=False)
    assert r.ios == 30


def test_locked_memory_too_small_for_registered_buffers(scratch):
    """Without CAP_IPC_LOCK, io_uring charges registered buffers to the
    locked-memory limit: root is made to lack it, with a 64 KiB limit."""
    require(os.geteuid() == 0, "dropping a capability needs root")
    p = subprocess.run(["setpriv", "--bounding-set=-ipc_lock", "--inh-caps=-ipc_lock",
                        "prlimit", "--memlock=65536:65536", KIT, "run", "--ioengine=io_uring", "--fixedbufs",
                        "--iodepth=64", "--bs=64k", "--size=8m", f"--directory={scratch}"],
                       capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert "registering 64 buffers" in line and "ulimit -l is 64 KiB" in line and "raise it" in line


@pytest.mark.parametrize("engine", [e for e in engine_names() if not registry()[e]["sync"]])
def test_interrupted_run_tears_everything_down(scratch, engine):
    """Ctrl-C in the middle: in-flight I/O reaped, rings, AIO contexts and
    worker threads gone, the partial result marked interrupted."""
    from test_endurance import LEAKS, settle, settled_like, snapshot
    kit.run(kit.Job(ioengine=engine, iodepth=16, rw="randread", size="8m", number_ios=64, direct=True,
                    directory=scratch), progress=False, machine=False)
    from kit.tracers import release, status
    trace = ["sched"] if engine == "io_uring" and status()["usable"] else None   # tracers detach too
    release()           # a program kept from an earlier trace is not this run's to account for
    if engine == "posixaio":
        settle()        # glibc's AIO helpers outlive a run by a second; no other engine leaves a thread behind
    before = snapshot()
    timer = _later(0.5 + (1.0 if trace else 0), lambda: signal.raise_signal(signal.SIGINT))
    start = time.monotonic()
    r = kit.run(kit.Job(ioengine=engine, iodepth=16, rw="randread", size="8m", direct=True, runtime=30,
                        time_based=True, directory=scratch), progress=False, machine=False, trace=trace)
    timer.join()
    assert time.monotonic() - start < 1.5 + (1.0 if trace else 0)
    assert r.data["interrupted"] is True and r.ios > 0 and r.data["traced"] == bool(trace)
    issued_levels = r.total["kit"]["iodepth_level_exact"]
    assert r.ios == r.total["read"]["clat_ns"]["N"] and issued_levels    # every issued I/O came back
    release()           # the trace's program is kept loaded, detached, for the next trace: unload it
    after = settled_like(before)
    for key in LEAKS:
        assert after[key] == before[key], (key, before, after)


def test_interrupt_during_a_long_prefill_exits_at_once(scratch):
    proc = subprocess.Popen([KIT, "run", "--size=4g", f"--directory={scratch}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    path = os.path.join(scratch, "kit.0.0")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not os.path.exists(path) or os.path.getsize(path) < 32 << 20):
        time.sleep(0.01)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert time.monotonic() - sent < 1.0
    assert proc.returncode == 130 and "interrupted" in err
    assert os.path.getsize(path) < 4 << 30
