"""Every engine moves the right bytes to the right offsets, on real files,
buffered and direct, and its counts add up."""
import os

import numpy as np
import pytest

import kit
import pattern
from conftest import report_figure
from kit import hist
from kit.engines import diskless, engine_names, registry

ENGINES = [e for e in engine_names() if not diskless(e)]    # a new engine is tested here without editing a list
MODES = ("read", "write", "randread", "randwrite", "randrw")
BS = 4096
NRFILES = 2
SIZE = 1 << 20           # per job: two files of 512 KiB, 128 blocks each


def _run(scratch, engine, rw, direct, **extra):
    options = {} if registry()[engine]["sync"] else {"iodepth": 4}
    options.update(extra)
    job = kit.Job(ioengine=engine, rw=rw, bs=BS, size=SIZE, nrfiles=NRFILES, direct=direct,
                  verify="crc32c", directory=scratch, rwmixread=60, **options)
    return kit.run(job, progress=False, machine=False)


def _check_counts(r):
    for d in ("read", "write"):
        e = r.total[d]
        assert e["io_bytes"] == e["total_ios"] * BS
        if e["total_ios"]:
            # every I/O is in the histograms exactly once
            assert e["clat_ns"]["N"] == e["total_ios"]
            assert sum(e["clat_ns"]["bins"].values()) == e["total_ios"]
            assert e["lat_ns"]["N"] == e["total_ios"]
            assert 0 < e["clat_ns"]["min"] <= e["clat_ns"]["mean"] <= e["clat_ns"]["max"]
            assert e["iops"] > 0 and e["bw_bytes"] > 0


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
@pytest.mark.parametrize("rw", MODES)
@pytest.mark.parametrize("engine", ENGINES)
def test_engine_moves_the_right_bytes(scratch, engine, rw, direct):
    r = _run(scratch, engine, rw, direct)
    _check_counts(r)
    # size-limited: every block of every file exactly once (random map
    # included); a job that writes then reads back each block it wrote (fio's
    # verify phase, counted as reads): so every block is read exactly once
    reads, writes = r.total["read"], r.total["write"]
    assert reads["total_ios"] == SIZE // BS
    verify_reads = writes["total_ios"]
    assert (reads["total_ios"] - verify_reads) + writes["total_ios"] == SIZE // BS
    # each read was checked against the pattern at its own offset; a mixed
    # job's own reads are not (fio: only its verify list's -- one may meet a
    # write to its block still in flight)
    verified = r.total["kit"]["verified_bytes"]
    assert verified == (verify_reads * BS if rw == "randrw" else reads["io_bytes"])
    assert (r.total["kit"]["verify_ns"] > 0) == (writes["total_ios"] > 0)
    if rw in ("read", "randread"):
        assert writes["total_ios"] == 0
    if rw in ("write", "randwrite"):
        assert writes["total_ios"] == SIZE // BS
    if rw == "randrw":
        assert SIZE // BS > writes["total_ios"] > 0
    seed = r.data["jobs"][0]["kit"].get("verify_seed")
    written_units = 0
    for f in range(NRFILES):
        path = os.path.join(scratch, f"kit.0.{f}")
        found = pattern.check(path, SIZE // NRFILES)
        assert found["ok"], f"{path}: malformed units {found['bad_units'][:5]}"
        written_units += int(np.sum(found["seeds"] == np.uint64(seed))) if seed is not None else 0
        if rw in ("read", "randread"):
            assert np.all(found["seeds"] == np.uint64(pattern.PREFILL_SEED))
    # the blocks written are exactly the ones now carrying this job's stamp
    assert written_units == writes["io_bytes"] // pattern.UNIT


def test_sync_engines_record_no_submission_latency(scratch):
    r = _run(scratch, "psync", "randread", False)
    assert r.total["read"]["slat_ns"]["N"] == 0
    assert r.total["read"]["clat_ns"]["N"] == SIZE // BS
    assert r.total["iodepth_level"]["1"] == 100.0


def test_async_engine_keeps_iodepth_in_flight(scratch):
    r = _run(scratch, "io_uring", "randread", True, iodepth=8)
    assert r.total["read"]["slat_ns"]["N"] == SIZE // BS
    exact = {int(k): v for k, v in r.total["kit"]["iodepth_level_exact"].items()}
    assert max(exact) == 8
    # most submissions found the queue full (fill to 8, then one in per one out)
    assert exact[8] > 0.8 * sum(exact.values())


def test_number_ios_and_time_limits(scratch):
    job = kit.Job(ioengine="libaio", rw="randread", bs=BS, size=SIZE, iodepth=4, number_ios=100,
                  directory=scratch)
    assert kit.run(job, progress=False, machine=False).ios == 100
    job = kit.Job(ioengine="psync", rw="randread", bs=BS, size=SIZE, runtime=0.5, time_based=True,
                  directory=scratch)
    r = kit.run(job, progress=False, machine=False)
    runtime_s = r.total["kit"]["runtime_ns"] / 1e9
    assert 0.5 <= runtime_s < 0.8
    # time_based loops over the file: far more I/O than one pass
    assert r.ios > 2 * SIZE // BS


def test_ramp_time_is_not_measured(scratch):
    job = kit.Job(ioengine="psync", rw="randread", bs=BS, size=SIZE, runtime=0.4, ramp_time=0.3,
                  time_based=True, directory=scratch)
    r = kit.run(job, progress=False, machine=False)
    assert 0.4 <= r.total["kit"]["runtime_ns"] / 1e9 < 0.7


def test_fsync_every_n_writes(scratch):
    r = _run(scratch, "io_uring", "write", False, fsync=8)
    writes = r.total["write"]["total_ios"]
    assert writes == SIZE // BS
    assert r.total["sync"]["total_ios"] == writes // 8
    assert r.total["sync"]["lat_ns"]["N"] == writes // 8


def test_same_randseed_same_offsets(scratch):
    """Half a file written twice with the same seed: the same blocks both
    times; with another seed, other blocks."""
    def written(randseed):
        job = kit.Job(ioengine="psync", rw="randwrite", bs=BS, size=SIZE, number_ios=64,
                      randseed=randseed, verify="crc32c", directory=scratch)
        r = kit.run(job, progress=False, machine=False)
        seed = np.uint64(r.data["jobs"][0]["kit"]["verify_seed"])
        units = pattern.check(os.path.join(scratch, "kit.0.0"), SIZE)["seeds"] == seed
        return set(np.nonzero(units)[0] // (BS // pattern.UNIT))

    first, again, other = written(7), written(7), written(8)
    assert len(first) == 64 and first == again
    assert other != first


def test_numjobs_run_at_the_same_time(scratch):
    job = kit.Job(ioengine="psync", rw="randread", bs=BS, size=SIZE, numjobs=2, runtime=1,
                  time_based=True, directory=scratch)
    r = kit.run(job, progress=False, machine=False)
    a, b = (j["kit"] for j in r.data["jobs"])
    assert a["tid"] != b["tid"]
    overlap = min(a["end_ns"], b["end_ns"]) - max(a["start_ns"], b["start_ns"])
    assert overlap > 0.9 * 1e9
    # each job has its own files; the merged total adds both
    assert r.ios == r.data["jobs"][0]["read"]["total_ios"] + r.data["jobs"][1]["read"]["total_ios"]
    assert sorted(os.listdir(scratch)) == [".kit-files.json", "kit.0.0", "kit.1.0"]


def test_helper_threads_show_in_process_switches(scratch):
    """fio counts the job thread only; the thread pool's workers are where
    the switches are, and kit's process figure has them."""
    job = kit.Job(ioengine="threadpool", rw="randread", bs=BS, size=SIZE, iodepth=4,
                  runtime=0.5, time_based=True, directory=scratch)
    r = kit.run(job, progress=False, machine=False)
    thread_ctx = r.total["ctx"]
    proc = r.data["process"]
    assert proc["ctx"] > thread_ctx + r.ios // 2
    assert proc["threads"] >= 1 + 4   # the job thread and its 4 workers were alive


def test_hot_cache_psync_hardly_switches(scratch):
    job = kit.Job(ioengine="psync", rw="randread", bs=BS, size=SIZE, runtime=0.5, time_based=True,
                  pre_read=True, directory=scratch)
    r = kit.run(job, progress=False, machine=False)
    assert r.ios > 10000
    assert r.data["process"]["ctx_voluntary"] < r.ios / 1000


def test_histogram_layout_matches_c(scratch):
    from kit.engines import native
    _ffi, lib = native()
    values = [0, 1, 63, 64, 127, 128, 129, 255, 256, 1000, 4095, 4096, 10**6, 2**33, 2**40]
    c_idx = [lib.kit_plat_val_to_idx(v) for v in values]
    assert c_idx == [int(i) for i in hist.val_to_idx(values)]
    assert [lib.kit_plat_idx_to_val(i) for i in range(hist.PLAT_NR)] == [int(v) for v in hist.BUCKET_VALUES]


def test_fadvise_hint_gives_the_readahead_fio_gives(loopdev, monkeypatch):
    """fio's fadvise_hint (default 1): a sequential job's descriptors get
    POSIX_FADV_SEQUENTIAL, a random job's POSIX_FADV_RANDOM (no readahead),
    for the job's region. The same cold 4 MiB read in order from a loop
    device: one device request per 4 KiB read under the random hint; a few
    large ones under the sequential hint, under 1 (a sequential job) and
    with no hint (the kernel's own readahead)."""
    from kit import host
    st = os.stat(loopdev)
    dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
    requests = {}
    for hint in ("random", "sequential", "1", "0"):
        job = kit.Job(filename=loopdev, rw="read", bs="4k", size="4m", invalidate=True, fadvise_hint=hint)
        before = host.block_stat(dev)
        r = kit.run(job, progress=False, machine=False)
        after = host.block_stat(dev)
        assert r.total["read"]["total_ios"] == 1024
        requests[hint] = after["read_ios"] - before["read_ios"]
    report_figure(f"fadvise_hint: device reads for 1024 sequential 4 KiB reads: {requests}")
    assert requests["random"] >= 1024
    assert max(requests["sequential"], requests["1"], requests["0"]) * 8 <= requests["random"]
    # which advice each job's descriptors get, and for what range
    given = []
    real = os.posix_fadvise
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice: (
        given.append((offset, length, advice)), real(fd, offset, length, advice)))
    for rw, hint in (("randread", "1"), ("read", "1"), ("randread", "sequential"), ("read", "0")):
        kit.run(kit.Job(filename=loopdev, rw=rw, bs="4k", size="1m", offset="2m", number_ios=4, numjobs=2,
                        fadvise_hint=hint), progress=False, machine=False)
    assert given == [(2 << 20, 1 << 20, os.POSIX_FADV_RANDOM)] * 2 + \
        [(2 << 20, 1 << 20, os.POSIX_FADV_SEQUENTIAL)] * 4


@pytest.mark.parametrize("engine", [e for e in ENGINES if not registry()[e]["sync"]])
def test_a_mixed_jobs_own_reads_are_not_verified(scratch, engine):
    """rw=rw with verify at depth 16, buffered: a read of the job's own may
    meet a write to its block still in flight and see half of it. fio checks
    only the verify phase's reads in a mixed job (backend.c: td_rw), kit too
    -- it reported corruption in most runs of asio, io_uring, threadpool."""
    for _ in range(3):
        job = kit.Job(ioengine=engine, rw="rw", bs="4k", iodepth=16, size="8m", verify="crc32c",
                      directory=scratch)
        r = kit.run(job, progress=False, machine=False)
        assert r.data["error"] is None, r.data["error"]
        writes = r.total["write"]["io_bytes"]
        assert writes > 0 and r.total["kit"]["verified_bytes"] == writes     # the verify phase: each write
