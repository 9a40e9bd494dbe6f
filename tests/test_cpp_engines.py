"""The C++ engines (the seed's §5): Boost.Asio's files on io_uring and on its
thread pool, std::async. The registry-wide tests (test_engines, test_faults,
test_endurance) cover their default forms; these hold what is theirs."""
import os
import re

import pytest

import kit
from conftest import require, run_kit
from test_engines import BS, SIZE, _check_counts, _run


def _boost_version():
    with open("/usr/include/boost/version.hpp") as fh:
        v = int(re.search(r"#define BOOST_VERSION (\d+)", fh.read()).group(1))
    return f"{v // 100000}.{v // 100 % 1000}.{v % 100}"


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
@pytest.mark.parametrize("rw", ["randread", "randwrite", "randrw"])
def test_asio_thread_pool_moves_the_right_bytes(scratch, rw, direct):
    """asio_backend=thread_pool: verified reads, writes read back (crc32c),
    every block once, on a pool of `threads` workers named for the tracer."""
    r = _run(scratch, "asio", rw, direct, asio_backend="thread_pool", threads=3)
    _check_counts(r)
    reads, writes = r.total["read"], r.total["write"]
    assert reads["total_ios"] == SIZE // BS
    # each block once, written blocks read back once more (the verify phase)
    assert (reads["total_ios"] - writes["total_ios"]) + writes["total_ios"] == SIZE // BS
    assert (writes["total_ios"] > 0) == (rw != "randread")
    # a mixed job's own reads are not checked (fio's td_rw): the verify phase's are
    assert r.total["kit"]["verified_bytes"] == (writes["io_bytes"] if rw == "randrw" else reads["io_bytes"])
    assert r.data["label"] == "asio+thread_pool"
    proc = r.data["process"]
    assert proc["threads_started"] == 3 and r.data["jobs"][0]["kit"]["threads_started"] == 3
    assert proc["helper_threads"].get("kit-asio-pool") == 3


def test_asio_keeps_iodepth_in_flight_on_the_device(mounted_loopdev):
    """Asio runs one operation at a time per file object: kit gives each I/O
    slot its own, so iodepth=8 reaches the device 8 deep (block tracer; a
    loop device of its own, which no other process's I/O deepens)."""
    _dev, scratch = mounted_loopdev
    from kit.tracers import status
    s = status()
    require(s["usable"], f"tracing unavailable: {s.get('reason')}")
    deep = {}
    for iodepth in (1, 8):
        r = kit.run(kit.Job(ioengine="asio", iodepth=iodepth, rw="randread", size="16m", direct=True,
                            runtime=0.5, time_based=True, directory=scratch),
                    progress=False, machine=False, trace=["block"])
        devices = r.data["trace"]["block"]["devices"]
        require(devices, "the scratch directory has no block device to trace")
        hist = next(iter(devices.values()))["ops"]["read"]["depth"]
        # the device is shared (other processes' I/O adds to its depth): shares, not maxima
        deep[iodepth] = sum(n for d, n in hist.items() if int(d) >= 4) / sum(hist.values())
        assert max(int(k) for k in r.total["kit"]["iodepth_level_exact"]) == iodepth
    assert deep[1] < 0.05 and deep[8] > 0.2, deep


def test_results_carry_the_frameworks_version(scratch, tmp_path):
    r = kit.run(kit.Job(ioengine="asio", iodepth=4, rw="randread", size="1m", number_ios=64, directory=scratch),
                progress=False, machine=False)
    assert r.data["jobs"][0]["kit"]["framework"] == f"Boost.Asio {_boost_version()}"
    path = tmp_path / "r.json"
    r.save(path)
    assert kit.Result.load(path).data["jobs"][0]["kit"]["framework"] == f"Boost.Asio {_boost_version()}"
    r = kit.run(kit.Job(ioengine="stdasync", iodepth=4, rw="randread", size="1m", number_ios=64,
                        directory=scratch), progress=False, machine=False)
    assert re.fullmatch(r"libstdc\+\+ \d+ \(\d{8}\)", r.data["jobs"][0]["kit"]["framework"])
    r = kit.run(kit.Job(ioengine="psync", rw="randread", size="1m", number_ios=64, directory=scratch),
                progress=False, machine=False)
    assert "framework" not in r.data["jobs"][0]["kit"]          # plain system calls: no library to name


def test_stdasync_starts_a_thread_per_io(scratch):
    """libstdc++'s std::async(std::launch::async) is a new thread per call:
    the process figures count them and their switches (fio's per-thread
    view does not)."""
    n = 400
    r = kit.run(kit.Job(ioengine="stdasync", iodepth=4, rw="randread", size="2m", number_ios=n,
                        directory=scratch), progress=False, machine=False)
    assert r.ios == n
    proc, job = r.data["process"], r.data["jobs"][0]
    assert proc["threads_started"] == n == job["kit"]["threads_started"]
    # the job thread waits on futures; a std::async thread that never blocks
    # adds nothing to getrusage (its one switch, as it ends, comes after the
    # kernel folded its counters into the process's): the sched tracer sees it
    assert proc["ctx"] >= job["ctx"] > 0
    p = run_kit("run", "--ioengine=stdasync", "--iodepth=2", "--rw=randread", "--size=1m", "--number_ios=50",
                f"--directory={scratch}")
    assert p.returncode == 0, p.stderr
    assert "50 started by the engine" in p.stdout


def test_stdasync_threads_are_the_runs_helpers_in_the_sched_tracer(scratch):
    from kit.tracers import status
    s = status()
    require(s["usable"], f"tracing unavailable: {s.get('reason')}")
    n = 300
    r = kit.run(kit.Job(ioengine="stdasync", iodepth=4, rw="randread", size="1m", number_ios=n,
                        directory=scratch), progress=False, machine=False, trace=["sched"])
    helper = r.data["trace"]["sched"]["roles"]["helper"]
    # a thread that never left a CPU before it ended is not seen; most are
    assert n // 2 <= helper["threads"] <= n + 4, helper
    assert helper["switches"] >= helper["threads"] and "kit-stdasync" in helper["comms"]


def test_asio_backend_is_checked(scratch):
    p = run_kit("run", "--ioengine=asio", "--asio_backend=epoll", f"--directory={scratch}")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "asio_backend" in p.stderr and "io_uring, thread_pool" in p.stderr
    assert not os.listdir(scratch)
    p = run_kit("run", "--ioengine=psync", "--asio_backend=thread_pool", f"--directory={scratch}")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "asio_backend" in p.stderr
    assert not os.listdir(scratch)
    # the pool's size where there is no pool was taken and ignored
    p = run_kit("run", "--ioengine=asio", "--threads=4", f"--directory={scratch}")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "--threads: is the size of asio_backend=thread_pool's pool" in p.stderr
    assert not os.listdir(scratch)
    with pytest.raises(kit.OptionError, match="threads"):
        kit.Job(ioengine="asio", asio_backend="io_uring", threads=2)
    assert kit.Job(ioengine="asio", asio_backend="thread_pool", threads=2).threads == 2


@pytest.mark.parametrize("backend, iodepth", [("thread_pool", 16), ("io_uring", 1024)])
def test_asio_submission_latency_ends_when_the_io_is_under_way(scratch, backend, iodepth):
    """slat is preparing and submitting; what the I/O itself takes is clat.
    A pool thread starts an I/O as it is posted (it was issued only at the
    next commit, so the I/O's own time was slat: 135 us slat, 31 us clat);
    Asio's io_uring submits by itself inside the 128th async call, so kit
    commits before (at iodepth 4096 it was slat 38 ms, clat 94 us)."""
    job = kit.Job(ioengine="asio", asio_backend=backend, iodepth=iodepth, rw="randread", bs="4k", size="128m",
                  number_ios=20 * iodepth, directory=scratch)
    r = kit.run(job, progress=False, machine=False)
    read = r.total["read"]
    assert read["total_ios"] == 20 * iodepth
    assert read["slat_ns"]["mean"] < read["clat_ns"]["mean"], (read["slat_ns"]["mean"], read["clat_ns"]["mean"])
    assert abs(read["slat_ns"]["mean"] + read["clat_ns"]["mean"] - read["lat_ns"]["mean"]) < 0.01 * read["lat_ns"]["mean"]
