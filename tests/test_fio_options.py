"""The options fio users reach for (block sizes, regions, pacing, syncing,
distributions, trim, exitall): each run by kit and, where fio runs it, by fio
on the same job, with independent witnesses (strace's system calls, the
file's holes, the wall clock)."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

import kit
from kit.errors import RunError
from kit.job import Job
from kit.runner import run_together

from conftest import KIT, require


def both(job):
    return kit.run(job, progress=False), kit.run(job, runner="fio", progress=False)


def avg_bs(r, d):
    t = r.total[d]
    return t["io_bytes"] / t["total_ios"]


# ---- block sizes ---------------------------------------------------------------

def test_bs_per_direction_as_fio(scratch):
    """bs=4k,16k: reads 4k, writes (and trims) 16k, in kit and fio alike."""
    job = Job(rw="randrw", bs="4k,16k", size="4m", directory=scratch)
    for r in both(job):
        assert avg_bs(r, "read") == 4096 and avg_bs(r, "write") == 16384, r.data["runner"]
        assert r.total["read"]["total_ios"] > 50 and r.total["write"]["total_ios"] > 50


@pytest.mark.parametrize("sizes, mean", [
    (dict(bssplit="4k/10:64k/"), 0.11 * 4096 + 0.89 * 65536),       # fio gives the missing share: 11/89 (1% steps)
    (dict(bsrange="4k-10k"), 0.405 * 4096 + 0.395 * 8192 + 0.20 * 10240),   # fio's own split, aligned down to 4k
    (dict(bsrange="1k-8k"), sum(range(1, 9)) * 1024 / 8),
])
def test_variable_block_sizes_spread_as_fio(sizes, mean):
    """With the null engine many thousand I/Os cost nothing: the mean size
    must be fio's within 2 %, for kit and for fio's own null engine."""
    job = Job(ioengine="null", rw="randread", norandommap=1, size="2g", **sizes)
    for r in both(job):
        assert avg_bs(r, "read") == pytest.approx(mean, rel=0.02), r.data["runner"]


# ---- where and how much ---------------------------------------------------------

def _holes(path):
    """The byte ranges of a file that hold no data (what trims punched)."""
    out, fd = [], os.open(path, os.O_RDONLY)
    try:
        size, pos = os.fstat(fd).st_size, 0
        while pos < size:
            hole = os.lseek(fd, pos, os.SEEK_HOLE)
            if hole >= size:
                break
            try:
                data = os.lseek(fd, hole, os.SEEK_DATA)
            except OSError:
                data = size
            out.append((hole, data))
            pos = data
    finally:
        os.close(fd)
    return out


def test_offset_and_offset_increment_place_each_thread(scratch):
    """A trim punches holes exactly where it worked: each thread (fio's
    subjob) offset_increment further than the one before."""
    kit.run(Job(rw="write", size="16m", directory=scratch), progress=False)
    path = os.path.join(scratch, "kit.0.0")
    r = kit.run(Job(filename=path, rw="trim", bs="64k", offset="1m", offset_increment="4m", size="1m", numjobs=3),
                progress=False)
    assert r.total["trim"]["total_ios"] == 3 * 16
    m = 1 << 20
    assert _holes(path) == [(1 * m, 2 * m), (5 * m, 6 * m), (9 * m, 10 * m)]


def test_trim_punches_holes_and_fio_refusal_names_it(scratch):
    kit.run(Job(rw="write", size="4m", directory=scratch), progress=False)
    path = os.path.join(scratch, "kit.0.0")
    r = kit.run(Job(filename=path, rw="randtrim", bs="128k", size="2m"), progress=False)
    t = r.total["trim"]
    assert (t["total_ios"], t["io_bytes"]) == (16, 2 << 20)
    assert t["clat_ns"]["N"] == 16 and t["clat_ns"]["min"] > 0
    assert _holes(path) == [(0, 2 << 20)]
    with pytest.raises(kit.OptionError, match="rw: fio 3.33 trims block devices only"):
        kit.run(Job(filename=path, rw="trim", size="1m"), runner="fio", progress=False)


def test_size_percent_loops_and_io_size_as_fio(scratch):
    kit.run(Job(rw="write", size="8m", directory=scratch), progress=False)
    path = os.path.join(scratch, "kit.0.0")
    for options, nbytes in ((dict(size="25%", offset="50%"), 2 << 20), (dict(size="1m", loops=3), 3 << 20),
                            (dict(size="1m", io_size="3m"), 3 << 20), (dict(io_limit="50%"), 4 << 20)):
        for r in both(Job.from_options(dict(filename=path, rw="read", **options))):
            assert r.total["read"]["io_bytes"] == nbytes, (options, r.data["runner"])


def test_region_beyond_a_file_kit_did_not_create_is_refused(tmp_path):
    victim = tmp_path / "theirs"
    victim.write_bytes(b"x" * (1 << 20))
    before = victim.stat()
    with pytest.raises(kit.OptionError, match="fewer than the 1310720 asked for, and kit does not extend files it did not create"):
        kit.run(Job(filename=str(victim), rw="read", offset="768k", size="512k"), progress=False)
    assert victim.stat().st_mtime_ns == before.st_mtime_ns and victim.read_bytes() == b"x" * (1 << 20)


def test_startdelay_waits_outside_the_runtime(scratch):
    job = Job(rw="read", size="1m", startdelay="1", directory=scratch)
    kit.run(job.replace(startdelay=0), progress=False)       # files made and warm
    t0 = time.monotonic()
    r = kit.run(job, progress=False)
    assert time.monotonic() - t0 >= 1.0
    assert r.total["read"]["runtime"] < 500
    assert Job(startdelay="1-3").startdelay == (1.0, 3.0)


def _zero_blocks(path, bs=4096):
    with open(path, "rb") as fh:
        data = fh.read()
    return sum(data[i:i + bs] == bytes(bs) for i in range(0, len(data), bs))


def test_a_write_job_on_a_new_file_allocates_it_as_fio_does(tmp_path):
    """fio's extend_file lays out no data for a job that only writes: it
    creates the file and fallocates it (fallocate=native), and the job
    writes into unwritten extents. kit did the same job over its own
    pattern (every block written before the job began). Now both files
    are allocated in full and hold the job's 64 blocks among zeros; and a
    later read job of kit's fills the file first (fio would read the
    unwritten extents' zeros without the device doing any I/O)."""
    text = "[w]\nioengine=psync\nrw=randwrite\nbs=4k\nsize=16m\nnumber_ios=64\nfilename=data\n"
    (tmp_path / "w.fio").write_text(text)
    for d in ("fio", "kit"):
        (tmp_path / d).mkdir()
    p = subprocess.run(["fio", "--output=/dev/null", "../w.fio"], cwd=tmp_path / "fio", capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([KIT, "run", "../w.fio", "--output=/dev/null", "--progress=0"], cwd=tmp_path / "kit",
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for d in ("fio", "kit"):
        st = os.stat(tmp_path / d / "data")
        assert st.st_size == 16 << 20 and st.st_blocks * 512 >= 16 << 20, (d, st)
        assert _zero_blocks(tmp_path / d / "data") == 4096 - 64, d

    def pattern():
        return json.loads((tmp_path / "kit" / ".kit-files.json").read_text())["files"]["data"]["pattern"]
    assert pattern() == "allocated"
    (tmp_path / "r.fio").write_text(text.replace("randwrite", "randread"))
    p = subprocess.run([KIT, "run", "../r.fio", "--output=/dev/null", "--progress=0"], cwd=tmp_path / "kit",
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert pattern() == "intact" and _zero_blocks(tmp_path / "kit" / "data") == 0


# ---- pacing ----------------------------------------------------------------------

@pytest.mark.parametrize("options, seconds", [
    (dict(rate="4m", size="1m"), 0.25),
    (dict(rate_iops=400, size="400k"), 0.25),
    (dict(thinktime="50ms", size="64k"), 0.80),           # 16 I/Os, a think after each (the last too)
    (dict(thinktime="50ms", thinktime_blocks=4, size="64k"), 0.20),
])
def test_pacing_takes_the_time_fio_takes(scratch, options, seconds):
    job = Job(rw="read", directory=scratch, **options)
    for r in both(job):
        assert r.total["read"]["runtime"] / 1000 == pytest.approx(seconds, rel=0.15, abs=0.02), r.data["runner"]


def test_poisson_pacing_keeps_the_mean_and_varies_the_gaps():
    job = Job(ioengine="null", rw="read", rate_iops=2000, size="2m", rate_process="poisson")
    r = kit.run(job, progress=False)
    assert r.total["read"]["runtime"] / 1000 == pytest.approx(512 / 2000, rel=0.25)


def test_rate_min_ends_the_job_with_fio_line():
    """thinktime slows the job to about 400 KB/s: after 2 s of grace and one
    rate_cycle the job fails with fio's message."""
    job = Job(name="slow", ioengine="null", rw="read", size="1m", thinktime="10ms", rate_min="1m", runtime=5,
              time_based=1)
    t0 = time.monotonic()
    with pytest.raises(RunError) as e:
        kit.run(job, progress=False)
    assert 2.9 <= time.monotonic() - t0 <= 3.8
    assert re.fullmatch(r"slow: rate_min=1048576B/s not met, got \d+B/s", str(e.value).splitlines()[0])


def test_exitall_stops_the_jobs_running_with_it(scratch):
    quick = Job(name="quick", ioengine="null", rw="read", size="64k", thinktime="20ms", exitall=1)
    slow = Job(name="slow", ioengine="null", rw="read", size="64m", thinktime="20ms")
    t0 = time.monotonic()
    a, b = run_together([quick, slow], progress=False)
    assert time.monotonic() - t0 < 2
    assert a.total["read"]["total_ios"] == 16
    assert 10 <= b.total["read"]["total_ios"] <= 20 and b.data["error"] is None


# ---- syncing: strace counts the system calls -----------------------------------

def _syscalls(args, cwd, paths):
    """The job's fsync, fdatasync and open calls on its data files."""
    require(shutil.which("strace") is not None, "strace is not installed")
    p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync,openat"]
                       + [f"-P{path}" for path in paths] + [KIT, "run", *args],
                       capture_output=True, text=True, cwd=cwd, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stderr


@pytest.mark.parametrize("engine", ["psync", "libaio"])
def test_end_fsync_fdatasync_and_sync_reach_the_kernel(scratch, engine):
    common = ["--ioengine", engine, "--rw=write", "--size=1m", "--nrfiles=2", f"--directory={scratch}"]
    files = [os.path.join(scratch, f"kit.0.{i}") for i in range(2)]
    _syscalls(common, scratch, files)                           # kit's files made (and synced) first
    trace = _syscalls(common + ["--end_fsync=1"], scratch, files)
    assert len(re.findall(r"\bfsync\(", trace)) == 2, trace    # once per file, at the end
    trace = _syscalls(common + ["--fdatasync=8"], scratch, files)
    assert len(re.findall(r"\bfdatasync\(", trace)) == 31 and not re.search(r"\bfsync\(", trace), trace
    trace = _syscalls(common + ["--sync=dsync"], scratch, [])   # kit re-opens its checked descriptors
    assert len(re.findall(r'openat\(AT_FDCWD, "/proc/self/fd/\d+", O_RDWR\|O_DSYNC', trace)) == 2, trace


def test_fdatasync_and_end_fsync_in_the_results(scratch):
    job = Job(rw="write", size="1m", fdatasync=8, end_fsync=1, directory=scratch)
    k, f = both(job)
    # kit counts each fdatasync under sync; fio 3.33 times them there but
    # counts them in read.short_ios (fixed after 3.33)
    assert k.total["sync"]["total_ios"] == 31 and k.total["sync"]["lat_ns"]["N"] == 31
    assert f.total["sync"]["lat_ns"]["N"] == 31


# ---- random_distribution ---------------------------------------------------------

def _offsets_from_lat_log(job_args, cwd):
    """Every I/O's offset, from kit's own lat log (log_offset=1 puts it in
    the fifth column, as fio's)."""
    p = subprocess.run([KIT, "run", *job_args, "--write_lat_log=dist", "--log_offset=1"], cwd=cwd,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return np.loadtxt(os.path.join(cwd, "dist_clat.1.log"), delimiter=",", usecols=4, dtype=np.int64)


def _hot_share(offsets, bs, top):
    """Share of the hits the hottest `top` of the blocks hit get (fio-genzipf's
    rows are the blocks hit, hottest first)."""
    counts = np.sort(np.unique(offsets // bs, return_counts=True)[1])[::-1]
    return counts[:int(np.ceil(len(counts) * top))].sum() / counts.sum()


np = pytest.importorskip("numpy")


def test_zipf_matches_fio_genzipf(tmp_path):
    """fio-genzipf -t zipf -i 1.2 -b 4096 -g 1 -o 10: the hottest 10 % of a
    1 GiB file's blocks get 88.76 % of the hits. kit's zipf, drawn with
    fio's formula, must give the same share within a point."""
    require(shutil.which("fio-genzipf") is not None, "fio-genzipf (Debian's fio) is not installed")
    out = subprocess.run(["fio-genzipf", "-t", "zipf", "-i", "1.2", "-b", "4096", "-g", "1", "-o", "10"],
                         capture_output=True, text=True, timeout=120).stdout
    top10 = float(re.search(r"Top\s+10\.00%:?\s+([\d.]+)%", out).group(1)) / 100
    offsets = _offsets_from_lat_log(["--ioengine=null", "--rw=randread", "--size=1g", "--number_ios=262144",
                                     "--random_distribution=zipf:1.2"], tmp_path)
    assert len(offsets) == 262144
    assert _hot_share(offsets, 4096, 0.10) == pytest.approx(top10, abs=0.01)


@pytest.mark.parametrize("distribution", ["pareto:0.3", "normal:10"])
def test_pareto_and_normal_are_skewed_like_fios(tmp_path, distribution):
    """The same job in fio (null engine, per-I/O lat log with offsets) and in
    kit: the hottest 10 % of blocks get the same share within 3 points."""
    args = ["--ioengine=null", "--rw=randread", "--size=64m", "--number_ios=65536",
            f"--random_distribution={distribution}"]
    mine = _offsets_from_lat_log(args, tmp_path)
    fio_dir = tmp_path / "fio"
    fio_dir.mkdir()
    subprocess.run(["fio", "--name=dist", *args, "--write_lat_log=dist", "--log_offset=1",
                    "--output=/dev/null"], cwd=fio_dir, check=True, timeout=120)
    theirs = np.loadtxt(fio_dir / "dist_clat.1.log", delimiter=",", usecols=4, dtype=np.int64)
    assert _hot_share(mine, 4096, 0.10) == pytest.approx(_hot_share(theirs, 4096, 0.10), abs=0.03)
    assert len(np.unique(mine // 4096)) == pytest.approx(len(np.unique(theirs // 4096)), rel=0.1)


def test_trim_discards_on_a_block_device_as_fio(tmp_path):
    """On a real block device (a loop device over /dev/shm) a trim is a
    discard: the region reads back as zeros, and fio, which trims block
    devices too, counts the same; without allow_destructive it is refused."""
    from conftest import loop_device
    with loop_device(size_mb=16) as (dev, _mnt):
        with open(dev, "r+b") as f:
            f.write(b"\xa5" * (4 << 20))
        with pytest.raises(kit.OptionError, match="block device and rw=trim writes to it"):
            kit.run(Job(filename=dev, rw="trim", size="1m"), progress=False)
        job = Job(filename=dev, rw="trim", bs="256k", offset="1m", size="2m", allow_destructive=True)
        for r in both(job):
            t = r.total["trim"]
            assert (t["total_ios"], t["io_bytes"]) == (8, 2 << 20), r.data["runner"]
        with open(dev, "rb") as f:
            data = f.read(4 << 20)
        assert data[:1 << 20] == b"\xa5" * (1 << 20) and data[3 << 20:] == b"\xa5" * (1 << 20)
        assert data[1 << 20:3 << 20] == bytes(2 << 20)


# ---- found by a hostile review ----------------------------------------------------

@pytest.mark.parametrize("options, nbytes", [
    (dict(rw="read", bs="3k", size="10k"), 9216),                    # the 4th would not fit: the file is done
    (dict(rw="write", bsrange="1k-7k", size="1m"), 1 << 20),         # the last one shrinks to what fits
    (dict(rw="randwrite", bssplit="4k/50:16k/50", size="1m"), 1 << 20),  # the map shrinks I/Os to free blocks
    (dict(rw="randread", bs="3k", size="10k"), 9216),
])
def test_a_job_ends_where_its_region_does_as_fio(scratch, options, nbytes):
    job = Job(directory=scratch, **options)
    d = "read" if "read" in job.rw else "write"
    for r in both(job):
        assert r.total[d]["io_bytes"] == nbytes, r.data["runner"]


def test_a_rate_limited_direction_lets_the_other_go_first_as_fio():
    """randrw with only reads capped: fio issues writes while reads wait, so
    the job is done at once with almost every I/O a write."""
    job = Job(ioengine="null", rw="randrw", size="2m", rate="1m,")
    for r in both(job):
        assert r.total["read"]["total_ios"] <= 4 and r.total["write"]["total_ios"] >= 508, r.data["runner"]
        assert r.total["write"]["runtime"] < 200


def test_ctrl_c_during_thinktime_spin_stops_at_once(scratch):
    from conftest import interrupt_kit
    import signal
    kit.run(Job(rw="read", size="1m", directory=scratch), progress=False)
    waited, code, out, err = interrupt_kit(["run", "--rw=read", "--size=1m", "--thinktime=10s",
                                            "--thinktime_spin=9s", f"--directory={scratch}"], signal.SIGINT, 2)
    assert code == 130 and waited < 1.5, (waited, err)


def test_a_failed_job_carries_its_errno_in_the_json():
    job = Job(name="slow", ioengine="null", rw="read", size="1m", thinktime="100ms", rate_min="1m", runtime=5,
              time_based=1)
    with pytest.raises(RunError) as e:
        kit.run(job, progress=False)
    assert e.value.result.data["jobs"][0]["error"] == 5          # EIO, as fio's check_min_rate


def test_null_engine_trims_without_a_file():
    r = kit.run(Job(ioengine="null", rw="randtrim", size="1m"), progress=False)
    assert r.total["trim"]["total_ios"] == 256 and r.data["error"] is None


# ---- fio's units and number_ios --------------------------------------------------------

SIZE_TEXTS = ("4k", "4K", "4kb", "4KB", "4kB", "4KiB", "4kib", "3m", "3MiB", "3MB", "200MiB", "200mb", "4096", "512b")


def test_sizes_read_as_fio_reads_them_in_either_kb_base(tmp_path):
    """fio 3.33 (parse.c __get_mult_bytes) is the reference: one fio run of
    a job per spelling and kb_base, each one I/O of bs=size bytes."""
    sections = [(f"s{i}", text, base) for i, (text, base) in
                enumerate((t, b) for b in (1024, 1000) for t in SIZE_TEXTS)]
    path = tmp_path / "units.fio"
    path.write_text("[global]\nioengine=null\n" + "".join(f"[{name}]\nkb_base={base}\nsize={text}\nbs={text}\n"
                                                           for name, text, base in sections))
    p = subprocess.run(["fio", "--output-format=json", str(path)], capture_output=True, text=True, timeout=60)
    fio = {j["jobname"]: j["read"]["io_bytes"] for j in json.loads(p.stdout)["jobs"]}
    kit_jobs = {j.name: j for j in kit.fio.read_job_file(str(path)).jobs}
    for name, text, base in sections:
        assert kit_jobs[name].size == kit_jobs[name].bs == fio[name], (text, base, fio[name])
        assert Job(size=text, bs=text, kb_base=base).size == fio[name], (text, base)
    assert fio["s5"] == 4000 and fio[f"s{len(SIZE_TEXTS) + 5}"] == 4096      # 4KiB: 1000-based, then 1024


@pytest.mark.parametrize("rw, number_ios, loops, ios", [
    ("read", 20, 2, 32),        # each pass ends at the region's end: 16 + 16 of the 40 allowed
    ("read", 10, 2, 20),        # the second pass stops at 20 in all
    ("randread", 5, 3, 15),
])
def test_number_ios_with_loops_as_fio(rw, number_ios, loops, ios):
    """fio 3.33 stops at number_ios times loops I/Os in all (backend.c
    exceeds_number_ios); 16 blocks here."""
    job = Job(ioengine="null", rw=rw, size="64k", number_ios=number_ios, loops=loops)
    for r in both(job):
        assert r.total["read"]["total_ios"] == ios, r.data["runner"]


# ---- the job threads' CPUs and priorities ----------------------------------------

def _threads_during(job):
    """Runs job in this process and watches /proc meanwhile: {tid: (CPUs
    allowed, nice, ioprio)} of every thread born during the run, as the
    kernel reports them (ioprio_get is the witness for prio)."""
    import ctypes
    import threading
    libc = ctypes.CDLL(None, use_errno=True)
    SYS_ioprio_get = 252

    def look(tid):
        try:
            status = open(f"/proc/self/task/{tid}/status").read()
            stat = open(f"/proc/self/task/{tid}/stat").read()
        except OSError:
            return None
        cpus = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.M).group(1)
        prio = libc.syscall(SYS_ioprio_get, 1, int(tid))
        return None if prio < 0 else (cpus, int(stat.rsplit(")", 1)[1].split()[16]), prio)   # < 0: it ended

    before, seen = set(os.listdir("/proc/self/task")), {}
    runner = threading.Thread(target=lambda: kit.run(job, progress=False, machine=False))
    runner.start()
    while runner.is_alive():
        for tid in set(os.listdir("/proc/self/task")) - before - {str(runner.native_id)}:
            state = look(tid)
            if state:
                seen[tid] = state
        time.sleep(0.02)
    return seen


def test_cpus_allowed_nice_and_prio_hold_for_the_job_threads_and_what_they_start(scratch):
    """cpus_allowed=1 nice=5 prio=3 (fio: best-effort level 3): both job
    threads run only on CPU 1, at nice 5, with ioprio BE/3; kit's own
    threads keep the process's. With threadpool and
    cpus_allowed_policy=split each job thread gets its own CPU (fio's thread
    1 the first, thread 2 the second), and its pool workers inherit it."""
    require((os.cpu_count() or 1) >= 2, "needs 2 CPUs")
    common = dict(rw="randread", size="4m", runtime=0.4, time_based=True, numjobs=2, directory=scratch)
    seen = _threads_during(Job(ioengine="psync", cpus_allowed="1", nice=5, prio=3, **common))
    jobs = [s for s in seen.values() if s[1] == 5]
    assert len(jobs) == 2 and set(jobs) == {("1", 5, 2 << 13 | 3)}, seen
    assert all(s[0] != "1" and s[1] == 0 for s in seen.values() if s not in jobs), seen

    seen = _threads_during(Job(ioengine="threadpool", iodepth=2, cpus_allowed="0-1", cpus_allowed_policy="split",
                               nice=5, prioclass=3, **common))
    ours = sorted(s[0] for s in seen.values() if s[1] == 5 and s[2] == 3 << 13)
    assert ours == ["0"] * 3 + ["1"] * 3, seen         # per job thread: itself and 2 pool workers


@pytest.mark.parametrize("args, option", [
    (["--cpus_allowed=9"], "--cpus_allowed: CPU 9 is not on this machine"),
    (["--cpus_allowed=1-0"], "--cpus_allowed: 1-0: a range goes from low to high"),
    (["--cpus_allowed=a"], "--cpus_allowed: must be CPUs and ranges"),
    (["--cpumask=4"], "--cpumask: CPU 2 is not on this machine"),
    (["--cpumask=1", "--cpus_allowed=0"], "--cpumask: sets the same CPUs as cpus_allowed"),
    (["--cpus_allowed_policy=spread"], "--cpus_allowed_policy"),
    (["--nice=20"], "--nice"),
    (["--prio=8"], "--prio"),
    (["--prioclass=4"], "--prioclass"),
])
def test_bad_cpus_and_priorities_are_one_line(tmp_path, args, option):
    require((os.cpu_count() or 1) == 2, "the messages name this 2-CPU machine's CPUs")
    p = subprocess.run([KIT, "run", "--ioengine=null", "--size=1m", *args], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and option in p.stderr, p.stderr
    assert os.listdir(tmp_path) == []


def test_fio_takes_the_same_cpus_and_priorities_from_kit():
    require(shutil.which("fio") is not None, "fio is not installed")
    job = Job(ioengine="null", rw="read", size="1m", cpus_allowed="0-1", cpus_allowed_policy="split", numjobs=2,
              nice=1, prio=4, prioclass=2)
    for r in both(job):
        assert r.total["read"]["io_bytes"] == 2 << 20 and r.data["error"] is None, r.data["runner"]


# ---- what writes carry --------------------------------------------------------------

def _content(path):
    """(4 KiB blocks, distinct ones, zlib's size ratio, share of zero bytes) of a file."""
    import hashlib
    import zlib
    data = open(path, "rb").read()
    distinct = {hashlib.sha1(data[i:i + 4096]).digest() for i in range(0, len(data), 4096)}
    return len(data) // 4096, len(distinct), len(zlib.compress(data, 1)) / len(data), data.count(0) / len(data)


@pytest.mark.parametrize("args, distinct, ratio, zeros", [
    ([], 1024, None, None),                                        # fio's default scramble: no two blocks alike
    (["--scramble_buffers=0"], 1, 0.02, None),                     # one buffer, written over and over
    (["--zero_buffers=1"], 1, 0.01, 1.0),
    (["--zero_buffers=1", "--scramble_buffers=1"], 1024, 0.05, 0.96),
    (["--refill_buffers=1"], 1024, 1.0, 0.0),
    (["--buffer_compress_percentage=50"], 1024, 0.51, 0.5),       # refills every write, half of each 512 zeros
    (["--buffer_compress_percentage=70", "--buffer_compress_chunk=4k"], 1024, 0.31, 0.7),
    (["--buffer_compress_percentage=100"], 1, 0.01, 1.0),
    # a chunk that does not divide the write: its last piece is half zeros too (fio's fill_random_buf_percentage)
    (["--buffer_compress_percentage=50", "--buffer_compress_chunk=3k"], 1024, 0.51, 0.5),
    (["--zero_buffers=1", "--buffer_compress_percentage=50"], 1024, 0.51, 0.5),  # fio's fill_io_buffer: compress first
])
def test_write_content_is_fios(tmp_path, args, distinct, ratio, zeros):
    """What a written file holds, for kit and fio alike: how many of its 4 KiB
    blocks differ (deduplicating storage), how well it compresses, how much
    is zeros. kit used to write one buffer's bytes into every block of a
    depth-1 job: 1 distinct block where fio writes all distinct."""
    require(shutil.which("fio") is not None, "fio is not installed")
    seen = {}
    for who in ("kit", "fio"):
        d = tmp_path / who
        d.mkdir()
        command = [KIT, "run", "--progress=0"] if who == "kit" else ["fio"]
        p = subprocess.run(command + ["--name=w", "--rw=write", "--size=4m", f"--directory={d}", "--output=/dev/null",
                                      *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        seen[who] = _content(d / "w.0.0")
        blocks, alike, compressed, zero_share = seen[who]
        assert blocks == 1024 and alike == distinct, (who, seen)
        if ratio is not None:
            assert compressed == pytest.approx(ratio, abs=0.03), (who, seen)
        if zeros is not None:
            assert zero_share == pytest.approx(zeros, abs=0.03), (who, seen)
    assert seen["kit"][2] == pytest.approx(seen["fio"][2], abs=0.03), seen


@pytest.mark.parametrize("option", ["--zero_buffers=1", "--buffer_compress_percentage=50"])
def test_verify_with_chosen_content_is_one_line(tmp_path, option):
    p = subprocess.run([KIT, "run", "--rw=write", "--size=1m", "--verify=crc32c", option], capture_output=True,
                       text=True, cwd=tmp_path, timeout=60)
    name = option[2:].split("=")[0]
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and f"--{name}: verify=crc32c writes kit's own" \
        in p.stderr, p.stderr
    assert os.listdir(tmp_path) == []


def test_each_direction_of_a_sequential_mix_has_its_own_offset_as_fio(tmp_path):
    """rw=rw: reads go 0, 1, 2... and writes 0, 1, 2..., each direction
    starting over at the end on its own, across loops too (fio's
    last_pos[ddir]); kit used to share one offset: r@0 w@1 w@2 r@3... strace
    says which offsets each tool read and wrote."""
    require(shutil.which("strace") is not None, "strace is not installed")
    require(shutil.which("fio") is not None, "fio is not installed")
    job = tmp_path / "mix.fio"
    job.write_text("[j]\nioengine=psync\nrw=rw\nbs=256k\nsize=2m\nloops=2\n")
    for tool in ([KIT, "run", "--progress=0"], ["fio"]):
        where = tmp_path / os.path.basename(tool[0])
        where.mkdir()
        p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=pread64,pwrite64", "-o", str(where / "st"), *tool,
                            str(job), "--output=/dev/null"], cwd=where, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        calls = re.findall(r"p(read|write)64\(\d+, .*, 262144, (\d+)\) = 262144", (where / "st").read_text())
        for direction in ("read", "write"):
            blocks = [int(offset) // 262144 for d, offset in calls if d == direction]
            assert blocks == [i % 8 for i in range(len(blocks))], (tool[0], direction, blocks)
        assert len(calls) == 16, (tool[0], calls)


def test_verify_takes_refill_buffers_as_fio(tmp_path):
    """fio turns refill_buffers on for every verify job (init.c) and fills
    each write with its verify pattern whatever refill says, so a job file
    that says both is fio's default: kit runs and verifies it (it used to
    refuse it), and so does fio."""
    require(shutil.which("fio") is not None, "fio is not installed")
    for who in ("kit", "fio"):
        d = tmp_path / who
        d.mkdir()
        command = [KIT, "run", "--progress=0", "--output-format=json"] if who == "kit" else \
            ["fio", "--output-format=json"]
        p = subprocess.run(command + ["--name=v", "--rw=randwrite", "--size=1m", "--verify=crc32c",
                                      "--refill_buffers=1", f"--directory={d}"], capture_output=True, text=True,
                           cwd=d, timeout=60)      # fio leaves its verify state file in its cwd
        assert p.returncode == 0, (who, p.stderr)
        entry = json.loads(p.stdout)["jobs"][0]
        assert entry["write"]["io_bytes"] == entry["read"]["io_bytes"] == 1 << 20, (who, entry["read"])
        if who == "kit":
            assert entry["kit"]["verified_bytes"] == 1 << 20


def test_a_sections_cpumask_replaces_globals_cpus_allowed_as_fio(tmp_path):
    """fio keeps one CPU set per job, the one it parsed last: a section's
    cpumask replaces [global]'s cpus_allowed (kit refused the file); in one
    section both stay one line."""
    require((os.cpu_count() or 1) >= 2, "needs 2 CPUs")
    path = tmp_path / "cpus.fio"
    path.write_text("[global]\nioengine=null\nsize=1m\ncpus_allowed=0-1\n[pinned]\ncpumask=2\n[free]\n")
    p = subprocess.run(["fio", "--parse-only", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    pinned, free = kit.fio.read_job_file(str(path)).jobs
    assert (pinned.cpus(1), free.cpus(2)) == ([1], [0, 1])
    path.write_text("[both]\nioengine=null\nsize=1m\ncpus_allowed=0-1\ncpumask=2\n")
    p = subprocess.run([KIT, "run", str(path)], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert p.returncode == 2 and "cpumask: sets the same CPUs as cpus_allowed" in p.stderr, p.stderr


def test_the_fio_runner_gives_each_thread_the_cpu_its_job_file_gives_it(tmp_path):
    """cpus_allowed_policy=split counts fio's thread numbers across the whole
    job file; the fio runner runs a group at a time, one section per thread,
    so it names each section's CPU itself (fio would start counting again
    in every group and every section: section b of a stonewalled file ran on
    CPU 0 under kit's fio runner, on CPU 1 under fio)."""
    from kit import target
    from kit.fio import runner_job_file
    require((os.cpu_count() or 1) >= 2, "needs 2 CPUs")
    require(shutil.which("fio") is not None, "fio is not installed")
    job = Job(ioengine="null", size="1m", numjobs=2, cpus_allowed="0-1", cpus_allowed_policy="split")
    plan = target.plan(job)
    with target.prepare([plan]) as prepared:
        text, _fds = runner_job_file([job], [plan], prepared, first_thread=2)     # the file's second group
    sections = dict(re.findall(r"\[(kit\.0\.\d)\][^\[]*?cpus_allowed=(\S+)", text))
    assert sections == {"kit.0.0": "1", "kit.0.1": "0"} and "cpus_allowed_policy" not in text, text
    (tmp_path / "runner.fio").write_text(text)
    p = subprocess.run(["fio", "--parse-only", str(tmp_path / "runner.fio")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
