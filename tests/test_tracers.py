"""The eBPF tracers against the real kernel: real BPF programs, real loop
devices, real engines. Each test checks what the tracers say against an
independent witness where there is one: the kernel's own counters
(/sys/block/<dev>/stat, /proc/stat ctxt), kit's getrusage figures, the
number of I/Os the job did."""
import contextlib
import ctypes
import json
import re
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import kit
from kit import hist
from kit.tracers import Trace, TraceUnavailable, _bpf, sched, status
from conftest import loop_device, report_figure, require

N = 2000


@pytest.fixture(scope="module")
def tracing():
    st = status()
    require(st["usable"], f"tracing is not usable here: {st['reason']}")
    return st


def major_minor(path):
    st = os.stat(path)
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def job_tids(result):
    return [j["kit"]["tid"] for j in result.to_dict()["jobs"]]


def traced(job, devices=None, **tracers):
    """Runs job under a trace; returns (result, summary, trace)."""
    with Trace(devices=devices, **tracers) as t:
        r = kit.run(job, progress=False, machine=False)
    return r, t.summary(pid=os.getpid(), job_tids=job_tids(r)), t


def settle():
    """Let udev finish probing a new loop device, so its reads are not ours."""
    if shutil.which("udevadm"):
        subprocess.run(["udevadm", "settle", "--timeout=5"], capture_output=True)


def disk_stat(dev):
    """/sys/block/<dev>/stat: reads completed, read sectors, writes completed."""
    with open(f"/sys/block/{os.path.basename(dev)}/stat") as fh:
        f = [int(x) for x in fh.read().split()]
    return {"reads": f[0], "read_sectors": f[2], "writes": f[4]}


# ---- without privileges ---------------------------------------------------------

def test_status_never_raises_and_explains():
    st = status()
    assert set(st) >= {"bcc", "bcc_version", "tracefs", "headers", "root", "cap_bpf", "tracepoints",
                       "usable", "reason"}
    assert set(st["tracepoints"]) == {"block", "sched", "uring", "net"}
    assert all(st["tracepoints"].values())     # this kernel has every tracer's tracepoints
    if st["usable"]:
        assert st["reason"] is None
    else:
        assert st["reason"] and "\n" not in st["reason"]


@pytest.mark.parametrize("missing, says", [
    ("bcc", "python3-bpfcc"),
    ("privileges", "root"),
    ("headers", "kernel headers"),
])
def test_cannot_start_says_what_is_missing_in_one_line(monkeypatch, missing, says):
    if missing == "bcc":
        monkeypatch.setattr(_bpf, "import_bcc", lambda: None)
    elif missing == "privileges":
        monkeypatch.setattr(_bpf, "import_bcc", lambda: object())
        monkeypatch.setattr(_bpf, "privileged", lambda: False)
    else:
        monkeypatch.setattr(_bpf, "import_bcc", lambda: object())
        monkeypatch.setattr(_bpf, "privileged", lambda: True)
        monkeypatch.setattr(_bpf, "ensure_tracefs", lambda: None)
        monkeypatch.setattr(_bpf, "headers", lambda: (None, None))
    t = Trace(sched=True)
    with pytest.raises(TraceUnavailable) as e:
        t.start()
    assert isinstance(e.value, kit.KitError)
    assert says in str(e.value) and "\n" not in str(e.value)
    t.stop()                                 # nothing started: a no-op
    assert not t.running


def test_nothing_to_trace_is_an_option_error():
    with pytest.raises(kit.OptionError):
        Trace()


def test_bpf_bucket_function_is_the_engines():
    """The BPF C plat_idx (shift-based msb, no clz) gives the same bucket as
    the engines' plat_val_to_idx for every power of two and its neighbours
    and for random values. Compiled with the host compiler: the arithmetic is
    the same 64-bit C on both sides."""
    require(shutil.which("cc") is not None, "no C compiler")
    from kit.engines import native
    _ffi, lib = native()
    start = _bpf.COMMON_TEXT.index("static __always_inline u32 msb64")
    end = _bpf.COMMON_TEXT.index("/* events a tracer saw")
    src = ("typedef unsigned long long u64; typedef unsigned int u32;\n#define __always_inline inline\n"
           "#define PLAT_BITS 6\n#define PLAT_VAL (1 << PLAT_BITS)\n#define PLAT_NR (29 * PLAT_VAL)\n"
           + _bpf.COMMON_TEXT[start:end].replace("static __always_inline u32 plat_idx", "u32 plat_idx"))
    with tempfile.TemporaryDirectory() as d:
        with open(f"{d}/p.c", "w") as fh:
            fh.write(src)
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", f"{d}/p.so", f"{d}/p.c"], check=True)
        bpf_idx = ctypes.CDLL(f"{d}/p.so").plat_idx
        bpf_idx.restype, bpf_idx.argtypes = ctypes.c_uint32, [ctypes.c_uint64]
        values = list(range(0, 1024))
        for b in range(64):
            values += [(1 << b) - 1, 1 << b, (1 << b) + 1]
        values += [int(v) for v in np.random.default_rng(1).integers(0, 2**63, 20000, dtype=np.uint64)]
        values = [v % 2**64 for v in values]
        bad = [v for v in values if bpf_idx(v) != lib.kit_plat_val_to_idx(v)]
    assert not bad, f"BPF bucket differs for {bad[:5]}"


# ---- block --------------------------------------------------------------------

def test_block_counts_the_jobs_requests_on_a_loop_device(tracing, loopdev):
    """N direct 4k reads are N block read requests of 4096 bytes on that
    device, as the kernel's own disk statistics count them; every completion
    is in the latency histogram, and the device's latency fits inside the
    engine's clat (a pread's issue -> complete happens within the syscall)."""
    settle()
    mm = major_minor(loopdev)
    name = os.path.basename(loopdev)
    job = kit.Job(filename=loopdev, rw="randread", direct=True, bs="4k", number_ios=N, ioengine="psync")
    before = disk_stat(loopdev)
    r, s, t = traced(job, devices=[mm], block=True)
    after = disk_stat(loopdev)
    kernel_reads = after["reads"] - before["reads"]

    assert list(s["block"]["devices"]) == [name]           # the filter kept other disks out
    reads = s["block"]["devices"][name]["ops"]["read"]
    misses = sum(s["lost"]["recursion_misses"].values())
    tolerance = 8                                            # the kernel's own reads (udev, partition scan)
    report_figure(f"tracers block: {N} psync direct 4k reads -> {reads['requests']} requests, "
                  f"{reads['completed']} completions, /sys/block stat {kernel_reads}, lost {s['lost']['total']}, "
                  f"device lat mean {reads['lat_ns']['mean']:.0f} ns vs clat mean "
                  f"{r.to_dict()['jobs'][0]['read']['clat_ns']['mean']:.0f} ns")
    assert N <= reads["requests"] <= N + tolerance
    assert N <= reads["sizes"]["4096"] <= N + tolerance    # "4096": requests of 4096..8191 bytes
    assert reads["bytes"] >= N * 4096
    assert reads["bytes"] - N * 4096 <= tolerance * 128 * 1024
    assert abs(reads["completed"] - kernel_reads) <= misses
    # every completion the trace saw is either timed (in the histogram) or unmatched
    timed = sum(reads["lat_ns"]["bins"].values())
    assert timed == reads["lat_ns"]["N"] == reads["completed"] - reads["unmatched_completions"]
    assert timed >= reads["requests"] - misses
    assert reads["depth"].get("1", 0) >= N - tolerance     # psync: one request in flight
    clat = r.to_dict()["jobs"][0]["read"]["clat_ns"]
    assert 0 < reads["lat_ns"]["mean"] < clat["mean"]
    assert reads["lat_ns"]["percentile"]["50.000000"] <= clat["percentile"]["50.000000"]
    # the same numbers as tidy frames
    f = t.frames()
    ops = f["block_ops"].set_index(["device", "op"])
    assert ops.loc[(name, "read"), "requests"] == reads["requests"]
    lat = f["block_latency"]
    assert lat[(lat.device == name) & (lat.op == "read") & (lat.kind == "lat")]["count"].sum() == timed
    assert set(hist.BUCKET_VALUES[:]).issuperset(lat["bucket_ns"])
    json.dumps(s)


# ---- sched --------------------------------------------------------------------

def _roles(s):
    return s["sched"]["roles"]


def _switches(role):
    return role["voluntary"] + role["involuntary"]


def test_sched_sees_what_getrusage_sees_and_the_whole_machine(tracing, scratch):
    """The job thread's voluntary/involuntary switches agree with kit's
    RUSAGE_THREAD figures, and the machine's switches with /proc/stat ctxt."""
    job = kit.Job(directory=scratch, size="16m", ioengine="threadpool", rw="randread", bs="4k",
                  iodepth=4, number_ios=N, pre_read=True)

    def ctxt():
        with open("/proc/stat") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("ctxt "))
    with Trace(sched=True) as t:
        c0 = ctxt()
        r = kit.run(job, progress=False, machine=False)
        c1 = ctxt()
    s = t.summary(pid=os.getpid(), job_tids=job_tids(r))
    jr = r.to_dict()["jobs"][0]["kit"]
    job = _roles(s)["job"]
    machine = s["sched"]["system"]["switches"]
    report_figure(f"tracers sched: job thread vol/invol {job['voluntary']}/{job['involuntary']} "
                  f"(getrusage {jr['ctx_voluntary']}/{jr['ctx_involuntary']}); machine {machine} "
                  f"switches in the trace, /proc/stat ctxt {c1 - c0} in the run")
    assert job["threads"] == 1
    # the trace also sees the thread's start and end, outside getrusage's window
    assert jr["ctx_voluntary"] <= job["voluntary"] <= jr["ctx_voluntary"] + 20
    assert jr["ctx_involuntary"] <= job["involuntary"] <= jr["ctx_involuntary"] + 20
    # ctxt is summed over the CPUs without a lock while the other CPU goes on
    # switching: a read can be a switch or two off either way. Beyond that a
    # handful in thousands go unseen now and then (up to 7 of ~4,700 in 1 of 6
    # runs on 2026-12-02, none of them the program's recursion misses, the
    # same before and after that day's changes): not pinned down, so allowed
    # up to 0.2 %
    assert machine >= (c1 - c0) * 0.998 - 2 and c1 - c0 > 0
    assert machine <= (c1 - c0) * 1.2 + 2000
    assert job["oncpu_ns"] > 0 and job["offcpu"]["N"] > 0
    frames = t.frames(pid=os.getpid(), job_tids=job_tids(r))
    threads = frames["sched_threads"]
    assert (threads[threads.role == "job"]["tid"] == job_tids(r)[0]).all()
    assert set(frames["sched_roles"]["role"]) == {"job", "helper", "io_uring_wq", "io_uring_sqpoll",
                                                  "kworker", "other"}
    json.dumps(s)


def test_sched_threads_beyond_the_slot_array_are_counted_in_the_hash(tracing, scratch, monkeypatch):
    """With 2 array slots, nearly every thread's statistics go to the hash
    (the slot of its tid's low bits is another's): the job thread's switches
    still agree with RUSAGE_THREAD, and the pool's helpers are all seen."""
    monkeypatch.setattr(sched, "THREAD_SLOTS", 2)
    job = kit.Job(directory=scratch, size="16m", ioengine="threadpool", rw="randread", bs="4k",
                  iodepth=4, number_ios=N, pre_read=True, threads=4)
    with Trace(sched=True) as t:
        r = kit.run(job, progress=False, machine=False)
    s = t.summary(pid=os.getpid(), job_tids=job_tids(r))
    jr = r.to_dict()["jobs"][0]["kit"]
    roles = _roles(s)
    report_figure(f"tracers sched, 2 slots: job vol/invol {roles['job']['voluntary']}/{roles['job']['involuntary']} "
                  f"(getrusage {jr['ctx_voluntary']}/{jr['ctx_involuntary']}); helpers {roles['helper']['threads']}, "
                  f"threads seen {len(t.frames(pid=os.getpid(), job_tids=job_tids(r))['sched_threads'])}")
    assert jr["ctx_voluntary"] <= roles["job"]["voluntary"] <= jr["ctx_voluntary"] + 20
    assert jr["ctx_involuntary"] <= roles["job"]["involuntary"] <= jr["ctx_involuntary"] + 20
    assert roles["helper"]["threads"] == 4


@pytest.mark.parametrize("engine, factor", [
    # glibc serializes requests on one fd: one helper does every pread (and
    # blocks in each), while the job thread sleeps in aio_suspend for most
    # completions, up to 1.5 times per I/O: seen here, for 2000 I/Os, helper
    # 2000-4400 switches, job thread 1300-3100. Not "far more"; the helper's
    # one block per read (below) is what says it does the I/O.
    ("posixaio", 0.5),
    # iodepth workers each block in pread; the job thread sleeps only when it
    # has to wait for a completion: seen helpers 4300-5300 voluntary, job
    # 900-1400 (its involuntary ones are preemptions on a 2-CPU VM running
    # nine busy threads, up to 1700: they say nothing about who does the I/O)
    ("threadpool", 2.0),
])
def test_sched_shows_the_helper_threads_doing_the_io(tracing, loopdev, engine, factor):
    job = kit.Job(filename=loopdev, ioengine=engine, rw="randread", bs="4k", iodepth=8, direct=True,
                  number_ios=N)
    r, s, _t = traced(job, devices=[major_minor(loopdev)], sched=True)
    roles = _roles(s)
    helper, own = roles["helper"], roles["job"]
    report_figure(f"tracers sched {engine}: {N} direct reads; helper threads {helper['threads']} switches "
                  f"{_switches(helper)} (vol {helper['voluntary']}), job thread {_switches(own)}, "
                  f"kworkers {_switches(roles['kworker'])}, machine {s['sched']['system']['switches']}")
    assert helper["threads"] >= 1
    assert helper["voluntary"] >= 0.9 * N        # each direct read blocks in a helper
    assert helper["voluntary"] >= factor * own["voluntary"]
    assert roles["io_uring_wq"]["threads"] == 0 and roles["io_uring_sqpoll"]["threads"] == 0


def test_sched_hot_cache_psync_job_thread_barely_switches(tracing, scratch):
    n = 20000
    job = kit.Job(directory=scratch, size="16m", ioengine="psync", rw="randread", bs="4k", number_ios=n,
                  pre_read=True)
    r, s, _t = traced(job, sched=True)
    own = _roles(s)["job"]
    report_figure(f"tracers sched psync hot cache: {n} reads, job thread switches {_switches(own)} "
                  f"(voluntary {own['voluntary']})")
    assert own["threads"] == 1
    # it never waits for the page cache: what it does switch is other work preempting it (involuntary)
    assert own["voluntary"] <= max(20, n // 500)


# ---- io_uring ---------------------------------------------------------------------

def test_uring_force_async_punts_every_io_to_io_wq(tracing, loopdev):
    job = kit.Job(filename=loopdev, ioengine="io_uring", rw="randread", bs="4k", iodepth=8, direct=True,
                  number_ios=N, force_async=1)
    r, s, _t = traced(job, devices=[major_minor(loopdev)], sched=True, uring=True)
    mine = s["uring"]["process"]
    wq = _roles(s)["io_uring_wq"]
    report_figure(f"tracers uring force_async=1: {N} I/Os -> submit {mine['submit']}, io-wq punts "
                  f"{mine['queue_async_work']}, complete {mine['complete']}; iou-wrk threads {wq['threads']} "
                  f"switches {_switches(wq)}")
    assert mine["submit"] == N and mine["complete"] == N
    assert mine["queue_async_work"] == N           # IOSQE_ASYNC: every SQE goes to io-wq
    assert wq["threads"] >= 1 and _switches(wq) > 0
    assert "iou-wrk" in wq["comms"]


def test_uring_cold_buffered_reads_do_not_punt(tracing):
    """Buffered reads that miss the page cache: on this 6.18 kernel, ext4
    reads them asynchronously (FMODE_BUF_RASYNC: the page-cache wait queue
    completes them through task work, local_work_run with DEFER_TASKRUN) and
    io_uring never hands them to io-wq, although they go to the device (old
    kernels, before 5.9, punted every one). Seen: 0 punts, ~N block reads."""
    with loop_device(256, fs="ext4") as (dev, mnt):
        kit.run(kit.Job(directory=mnt, size="64m", rw="read", bs="1m"), progress=False, machine=False)
        job = kit.Job(directory=mnt, size="64m", ioengine="io_uring", rw="randread", bs="4k", iodepth=8,
                      number_ios=N, invalidate=True)
        r, s, _t = traced(job, devices=[major_minor(dev)], block=True, uring=True)
    mine = s["uring"]["process"]
    reads = s["block"]["devices"][os.path.basename(dev)]["ops"]["read"]
    report_figure(f"tracers uring cold buffered randread on ext4: {N} I/Os -> io-wq punts "
                  f"{mine['queue_async_work']}, block reads {reads['requests']}, local_work_run "
                  f"{mine.get('local_work_run')}")
    assert mine["submit"] == N
    assert reads["requests"] >= 0.9 * N           # the cache was cold: the reads reached the device
    assert mine["queue_async_work"] == 0


def test_uring_sqpoll_thread_is_on_cpu(tracing, loopdev):
    job = kit.Job(filename=loopdev, ioengine="io_uring", rw="randread", bs="4k", iodepth=8, direct=True,
                  number_ios=N, sqthread_poll=True)
    r, s, _t = traced(job, devices=[major_minor(loopdev)], sched=True, uring=True)
    sqp = _roles(s)["io_uring_sqpoll"]
    runtime_ns = r.to_dict()["jobs"][0]["kit"]["runtime_ns"]
    report_figure(f"tracers uring sqpoll: iou-sqp threads {sqp['threads']}, on CPU {sqp['oncpu_ns'] / 1e6:.1f} ms "
                  f"during a {runtime_ns / 1e6:.1f} ms job; submits {s['uring']['process']['submit']}")
    assert sqp["threads"] == 1
    assert sqp["oncpu_ns"] >= 0.5 * runtime_ns      # it polls the SQ for the whole run
    assert s["uring"]["process"]["submit"] >= N


# ---- clean detach -----------------------------------------------------------------

def _bpf_objects():
    """Ids of the BPF programs and maps loaded on the machine, with their
    names (no bpftool here: libbpf through ctypes)."""
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    out = {}
    for kind, name_offset in (("prog", 64), ("map", 24)):
        next_id = getattr(lib, f"bpf_{kind}_get_next_id")
        fd_by_id = getattr(lib, f"bpf_{kind}_get_fd_by_id")
        cur = ctypes.c_uint32(0)
        while next_id(cur, ctypes.byref(cur)) == 0:
            fd = fd_by_id(cur)
            if fd < 0:
                continue
            buf = ctypes.create_string_buffer(256)
            size = ctypes.c_uint32(256)
            lib.bpf_obj_get_info_by_fd(fd, buf, ctypes.byref(size))
            os.close(fd)
            name = buf.raw[name_offset:name_offset + 16].split(b"\0")[0].decode()
            # kit's own (its maps' names, bcc's names of its programs): another
            # tool tracing meanwhile (bpftrace, a second kit) is not ours to count
            if name.startswith(KIT_BPF_NAMES):
                out[(kind, cur.value)] = name
    return out


KIT_BPF_NAMES = ("block_", "sched_", "uring_", "io_uring_", "net_", "lost", "kit_")


def _fds():
    return len(os.listdir("/proc/self/fd"))


def _fd_targets():
    """{fd: what it is} of this process, so a leak names itself."""
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue        # the listing's own descriptor, closed by now
    return out


def _own_bpf_ids():
    """(kind, id) of the BPF programs and maps this process holds open, from
    its own /proc fdinfo (another process's objects are never counted)."""
    out = set()
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            with open(f"/proc/self/fdinfo/{fd}") as fh:
                for line in fh:
                    key, _sep, value = line.partition(":")
                    if key in ("prog_id", "map_id"):
                        out.add((key[:-3], int(value)))
        except OSError:
            continue
    return out


def _still_loaded(ids, wait=5.0):
    """Those of ids the kernel still has (it frees a map an RCU grace period
    after its last program); waits up to `wait` s for them to go."""
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    deadline = time.monotonic() + wait
    while True:
        left = set()
        for kind, obj_id in ids:
            fd = getattr(lib, f"bpf_{kind}_get_fd_by_id")(obj_id)
            if fd >= 0:
                os.close(fd)
                left.add((kind, obj_id))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _attached_prog_ids():
    """Ids of the programs the kernel's BPF links (raw tracepoints) attach now."""
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    out, cur = set(), ctypes.c_uint32(0)
    while lib.bpf_link_get_next_id(cur, ctypes.byref(cur)) == 0:
        fd = lib.bpf_link_get_fd_by_id(cur)
        if fd < 0:
            continue
        info = (ctypes.c_uint32 * 32)()         # struct bpf_link_info: type, id, prog_id, ...
        size = ctypes.c_uint32(ctypes.sizeof(info))
        if lib.bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)) == 0:
            out.add(info[2])
        os.close(fd)
    return out


def test_tracers_detach_cleanly(tracing, scratch):
    """20 traced runs share one loaded program (compiled once, detached
    between runs, re-attached), and once release()d leave no BPF program or
    map loaded and no fd open."""
    from kit import tracers
    job = kit.Job(directory=scratch, size="4m", ioengine="io_uring", rw="randread", bs="4k", number_ios=64,
                  pre_read=True)
    traced(job, block=True, sched=True, uring=True)       # warm up: libbcc's own one-time state
    tracers.release()
    fds = _fds()
    before = _bpf_objects()
    t0 = time.monotonic()
    for i in range(20):
        with Trace(block=True, sched=True, uring=True) as t:
            held = _own_bpf_ids()       # this process's only: another kit may trace meanwhile
            if i == 0:      # the lister does see ours while they are loaded
                ours = {k: v for k, v in _bpf_objects().items() if k not in before and k in held}
                assert {"sched_threads", "block_requests", "uring_counts", "lost"} <= set(ours.values())
                assert sum(kind == "prog" for kind, _id in ours) == len(t._bpf.funcs)
            assert held == set(ours)    # the same programs and maps each time: none compiled again
            kit.run(job, progress=False, machine=False)
        assert not t.running
        kept = _own_bpf_ids()
        assert {("prog", i) for k, i in ours if k == "prog"} <= kept and _bpf.kept() == 1
        assert not {i for k, i in ours if k == "prog"} & _attached_prog_ids()     # kept, detached
    elapsed = time.monotonic() - t0
    assert tracers.release() == 1 and _bpf.kept() == 0
    left = _still_loaded(set(ours))
    report_figure(f"tracers detach: 20 traced runs in {elapsed:.1f} s, one program reused ({len(ours)} BPF "
                  f"objects); left loaded after release() {len(left)}, fds {fds} -> {_fds()}")
    assert not left, f"BPF objects left loaded: {sorted(ours[k] for k in left)[:10]}"
    assert _fds() == fds


def test_a_reused_program_counts_only_its_own_run(tracing, loopdev):
    """The second of two traces with the same text re-attaches the first's
    program: its maps start as a fresh load's, so it counts exactly its own
    reads against /sys/block stat, keeps only its own records (the first
    run's filled and wrapped the ring), sees none of the first run's
    threads, and loses nothing."""
    from kit import tracers
    settle()
    tracers.release()
    mm = major_minor(loopdev)
    name = os.path.basename(loopdev)
    job = kit.Job(filename=loopdev, rw="randread", direct=True, bs="4k", ioengine="psync")
    runs = []
    for n in (N, N // 4):
        before = disk_stat(loopdev)
        t0 = time.monotonic()
        with Trace(block=True, sched=True, devices=[mm], records=N // 2) as t:
            started = time.monotonic() - t0
            program = t._bpf
            r = kit.run(job.replace(number_ios=n), progress=False, machine=False)
        s = t.summary(pid=os.getpid(), job_tids=job_tids(r))
        runs.append((program, s, job_tids(r), disk_stat(loopdev)["reads"] - before["reads"], started))
    (first, s1, tids1, _k1, start1), (second, s2, tids2, kernel_reads, start2) = runs
    report_figure(f"tracers reuse: start {start1:.2f} s compiling, {start2:.2f} s re-attaching the kept program")
    assert second is first                                   # re-attached, not compiled again
    d = s2["block"]["devices"][name]
    reads = d["ops"]["read"]
    misses = sum(s2["lost"]["recursion_misses"].values())
    assert N // 4 <= reads["requests"] <= N // 4 + 8
    assert d["completions"]["seen"] == d["completions"]["stat"] == kernel_reads
    assert reads["lat_ns"]["N"] == reads["completed"] - reads["unmatched_completions"] >= N // 4 - misses
    rec = s2["block"]["requests"]
    assert rec["kept"] == len(rec["lat_ns"]) == reads["requests"] < N // 2
    threads = {row["tid"] for row in t.frames()["sched_threads"].to_dict("records")}
    assert set(tids2) <= threads and not set(tids1) & threads
    assert s2["lost"]["total"] == 0 and s1["block"]["requests"]["kept"] == N // 2
    assert tracers.release() == 1


def test_a_kept_program_that_cannot_be_reset_is_unloaded_and_compiled_afresh(tracing, scratch, monkeypatch):
    from kit import tracers
    tracers.release()
    job = kit.Job(directory=scratch, size="1m", rw="randread", number_ios=100)
    traced(job, sched=True)
    held = {i for k, i in _own_bpf_ids() if k == "prog"}
    assert held and _bpf.kept() == 1

    def broken(bpf):
        raise OSError(5, "map reset failed")
    monkeypatch.setattr(_bpf, "reset_maps", broken)
    _r, s, _t = traced(job, sched=True)
    assert s["sched"]["roles"]["job"]["threads"] == 1 and not _still_loaded({("prog", i) for i in held})
    assert held.isdisjoint(i for k, i in _own_bpf_ids() if k == "prog")      # a new program, the old one gone
    assert tracers.release() == 1


RESET_TEXT = r"""
BPF_ARRAY(t_array, u64, 64);
BPF_PERCPU_ARRAY(t_percpu_array, u64, 4);
BPF_HASH(t_hash, u32, u64, 64);
BPF_PERCPU_HASH(t_percpu_hash, u32, u64, 64);
BPF_TABLE("lru_hash", u32, u64, t_lru_hash, 64);
BPF_STACK_TRACE(t_stacks, 64);
RAW_TRACEPOINT_PROBE(sched_switch)
{
    u32 zero = 0;
    u64 *n = t_array.lookup(&zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    t_stacks.get_stackid(ctx, 0);
    return 0;
}
"""


def test_reset_maps_leaves_every_map_as_a_fresh_load_does(tracing):
    """Arrays (per-CPU too) zeroed, hashes (per-CPU, LRU) and stack maps
    emptied, and the program runs again once re-attached; a program with a
    ring buffer, which cannot be reset, is closed instead of kept."""
    bcc, cflags, source = _bpf.prepare()
    b = _bpf.load(RESET_TEXT, bcc, cflags, source)
    try:
        time.sleep(0.1)                                  # some switches: a count, stacks
        _bpf.detach(b)
        for name in ("t_hash", "t_percpu_hash", "t_lru_hash"):
            table = b[name.encode()]
            for k in range(10):
                table[table.Key(k)] = table.Leaf(*([k + 1] * len(table.Leaf()))) \
                    if isinstance(table.Leaf(), ctypes.Array) else table.Leaf(k + 1)
        arr, pc = b[b"t_array"], b[b"t_percpu_array"]
        arr[arr.Key(63)] = arr.Leaf(7)
        pc[pc.Key(3)] = pc.Leaf(*([9] * len(pc.Leaf())))
        filled = {name: len(list(b[name.encode()].keys())) for name in ("t_hash", "t_percpu_hash", "t_lru_hash",
                                                                       "t_stacks")}
        assert arr[arr.Key(0)].value > 0 and filled["t_stacks"] > 0 and filled["t_hash"] == 10
        assert _bpf.reusable(b)
        _bpf.reset_maps(b)
        assert all(arr[arr.Key(i)].value == 0 for i in range(64))
        assert all(v == 0 for i in range(4) for v in pc[pc.Key(i)])
        for name in filled:
            assert list(b[name.encode()].keys()) == [], name
        _bpf.attach(b)
        time.sleep(0.1)
        _bpf.detach(b)
        assert arr[arr.Key(0)].value > 0                 # attached again, it counted again
    finally:
        _bpf.close(b)
    ring = _bpf.load("BPF_RINGBUF_OUTPUT(t_ring, 1);\n" + RESET_TEXT, bcc, cflags, source)
    _bpf.detach(ring)
    assert not _bpf.reusable(ring)
    ring.kit_key = _bpf.program_key("ring", cflags, source)
    _bpf.put_back(ring)
    assert _bpf.kept() == 0 and _bpf._take(ring.kit_key) is None


def test_release_and_exit_unload_the_kept_programs(tracing, tmp_path):
    """A process that traced and exits (without release()) leaves nothing
    loaded: the kernel frees what its descriptors held."""
    import inspect
    code = ("import ctypes, json, os, time, kit\n"
            "from kit.tracers import Trace, _bpf\n"
            + inspect.getsource(_own_bpf_ids) +
            "job = kit.Job(directory=%r, size='1m', rw='randread', number_ios=50)\n"
            "with Trace('sched'):\n"
            "    kit.run(job, progress=False, machine=False)\n"
            "print(json.dumps(sorted(_own_bpf_ids())), _bpf.kept())\n" % str(tmp_path))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    ids, kept = p.stdout.rsplit(" ", 1)
    ids = {tuple(x) for x in json.loads(ids)}
    assert int(kept) == 1 and any(kind == "prog" for kind, _i in ids)    # kept loaded until exit
    assert not _still_loaded(ids)


# ---- the command line and the Result ----------------------------------------------

def _without_bpf_capabilities(*args, strict):
    from conftest import KIT
    env = dict(os.environ, KIT_STRICT="1" if strict else "0")
    drop = "-bpf,-perfmon,-sys_admin"
    return subprocess.run(["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", KIT, *args],
                          capture_output=True, text=True, env=env)


def test_trace_without_privileges_runs_untraced_or_fails_strict(scratch):
    require(os.geteuid() == 0, "dropping capabilities needs root")
    args = ("run", "--trace=sched", "--size=1M", f"--directory={scratch}", "--output-format=json")
    p = _without_bpf_capabilities(*args, strict=False)
    assert p.returncode == 0, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert "--trace: tracing needs" in line and "running untraced" in line
    data = json.loads(p.stdout)
    assert data["traced"] is False and any(n.startswith("untraced: tracing needs") for n in data["notes"])
    p = _without_bpf_capabilities(*args, strict=True)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "KIT_STRICT=1" in p.stderr


def test_kit_trace_watches_the_whole_machine(tracing, loopdev):
    from conftest import run_kit
    # someone else's I/O: dd reading the device over and over
    load = subprocess.Popen(["sh", "-c", f"while :; do dd if={loopdev} of=/dev/null bs=4k iflag=direct; done"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        p = run_kit("trace", "--duration=1", "--trace=block,sched", f"--device={loopdev}", "--output-format=json")
    finally:
        os.killpg(load.pid, 9)
        load.wait()
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["tracers"] == ["block", "sched"] and s["devices"] == ["%d:%d" % major_minor(loopdev)]
    assert s["block"]["read"]["requests"] > 1000
    assert set(s["block"]["read"]["sizes"]) == {"4096"}
    assert s["sched"]["system"]["switches"] > 1000
    assert run_kit("trace", "--duration=0").returncode == 2


def test_traced_result_has_roles_as_first_class_numbers(tracing, scratch):
    r = kit.run(kit.Job(ioengine="threadpool", iodepth=4, rw="randread", size="4m", direct=True,
                        number_ios=2000, directory=scratch), progress=False, trace=["sched", "block"])
    row = r.to_frame().iloc[0]
    assert row["trace_ctx_system"] >= row["trace_ctx_job"] + row["trace_ctx_helper"]
    assert row["trace_ctx_helper"] > row["trace_ctx_job"]
    share = r.data["trace"]["block"]["device_share"]["read"]
    assert 0 < share < 1
    assert "device latency" in r.summary() and "by role" in r.summary()


# ---- block: raw tracepoints, requests matched by pointer ---------------------------

def test_block_times_flushes_and_matches_each_completion_once(tracing, mounted_loopdev):
    """ext4 on a loop device, libaio qd4 randwrite with fsync=10: flushes are
    requests of their own, timed, 0 bytes; preflush/FUA writes' extra
    completions match nothing (write latency never has more samples than
    write requests); and the device's completions are /sys/block stat's."""
    dev, mnt = mounted_loopdev
    kit.run(kit.Job(directory=mnt, size="8m", rw="write", bs="1m"), progress=False, machine=False)
    job = kit.Job(directory=mnt, size="8m", ioengine="libaio", iodepth=4, rw="randwrite", bs="4k", direct=True,
                  number_ios=1000, fsync=10)
    r, s, _t = traced(job, devices=[major_minor(dev)], block=True)
    d = s["block"]["devices"][os.path.basename(dev)]
    writes, flushes = d["ops"]["write"], d["ops"].get("flush", {})
    report_figure(f"tracers block flushes: {writes['requests']} write requests, {writes['lat_ns']['N']} timed; "
                  f"{flushes.get('requests')} flushes, {flushes.get('lat_ns', {}).get('N')} timed, mean "
                  f"{flushes.get('lat_ns', {}).get('mean', 0):.0f} ns; completions {d['completions']}")
    assert writes["requests"] >= 1000
    assert writes["requests"] - 4 <= writes["lat_ns"]["N"] <= writes["requests"], (d["completions"], s["lost"])
    assert flushes["requests"] >= 99                     # fsync=10 over 1000 writes
    assert flushes["bytes"] == 0 and "1" not in flushes["sizes"]
    assert flushes["requests"] - 2 <= flushes["lat_ns"]["N"] <= flushes["requests"]
    assert flushes["lat_ns"]["mean"] > 0
    c = d["completions"]
    assert c["seen"] <= c["stat"] <= c["seen"] + c["unmatched"]     # none missed; the extra ones apart
    assert d["in_flight_at_end"] == {"trace": 0, "kernel": 0}
    assert "depth_unreliable" not in s["block"]
    # the flushes kblockd issues for every waiting writer are nobody's, not "other processes'"
    unattributed = s["block"]["unattributed"]["flush"]
    assert unattributed["requests"] == flushes["requests"]
    others = (s["block"].get("other_io") or {}).get("processes", {})
    assert not any("kblockd" in p["comm"] for p in others.values()), others
    assert "0" not in others                                  # completions from before the trace are no process


def test_two_traced_runs_each_count_their_own_io(tracing, loopdev):
    """Two kit processes trace the same device at once: each reports its own
    N reads as its I/O, at its own depth, and the other's as other I/O."""
    from conftest import KIT
    settle()
    args = [KIT, "run", f"--filename={loopdev}", "--rw=randread", "--direct=1", "--ioengine=libaio",
            "--iodepth=4", f"--number_ios={N}", "--trace=block", "--output-format=json"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _out, err in outs]
    total = 0
    for out, _err in outs:
        block = json.loads(out)["trace"]["block"]
        reads = block["read"]
        # two adjacent reads submitted together may be one request: the bytes are every read's; the
        # kernel may also merge one process's read into the other's queued request, whose owner it joins
        assert (N - 8) * 4096 <= reads["bytes"] <= N * 4096 + 8 * 128 * 1024
        total += reads["bytes"]
        assert N - 8 <= reads["requests"] <= N + 8
        depth = {int(k): v for k, v in reads["depth"].items()}
        assert max(depth) <= 8                                  # its own 4 and the other's 4, not 15
        if "other_io" in block:                                 # the runs overlapped
            assert block["other_io"]["requests"] <= N + 8
    assert total >= 2 * N * 4096                                # every read of both, in one or the other


def test_another_process_io_while_probes_attach_and_detach_is_never_taken_for_own(tracing, loopdev):
    """fio reads the device without pause while this process traces short
    jobs of its own, so fio's I/O lands in every attach and detach (each
    waits for RCU grace periods, tens of ms). The probes count only once all
    are attached and stop together before any is detached: each trace
    counts exactly its own reads, at no more than both jobs' depth, and
    fio's requests as another process's, every one matched to its
    completion. (Half-attached, a trace counted fio's issues as its own and
    missed their completions: 3,952 "own" requests at depth 33.)"""
    require(shutil.which("fio") is not None, "fio is not installed")
    settle()
    mm = major_minor(loopdev)
    name = os.path.basename(loopdev)
    job = kit.Job(filename=loopdev, rw="randread", direct=True, bs="4k", ioengine="libaio", iodepth=4,
                  number_ios=N // 4)
    fio = subprocess.Popen(["fio", "--name=other", f"--filename={loopdev}", "--rw=randread", "--direct=1",
                            "--ioengine=libaio", "--iodepth=4", "--time_based", "--runtime=60",
                            "--output=/dev/null"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)                     # fio is reading before the first attach
        assert fio.poll() is None, fio.stderr.read()
        for _ in range(4):                  # the kept program re-attaches: more windows
            _r, s, _t = traced(job, devices=[mm], block=True)
            own = s["block"]["read"]
            # every read of its own, as requests (two adjacent ones may merge into one), give or
            # take a few 4k: a request is its first bio's process's, and fio's bio may be merged
            # into one of kit's requests still queued (seen: 500 requests of 501 x 4k, one of
            # them 8k), or kit's into fio's (seen: 499 requests of 4k)
            assert (N // 4 - 8) * 4096 <= own["bytes"] <= (N // 4 + 8) * 4096, own
            assert N // 4 - 8 <= own["requests"] == own["completed"] <= N // 4, own
            assert max(int(k) for k in own["depth"]) <= 8, own["depth"]     # its 4 and fio's 4
            assert own["unmatched_completions"] == 0
            assert "depth_unreliable" not in s["block"], s["block"]["depth_unreliable"]
            others = s["block"]["other_io"]["processes"]
            assert [p["comm"] for p in others.values()] == ["fio"], others
            device = s["block"]["devices"][name]
            assert device["ops"]["read"]["requests"] == own["requests"] + s["block"]["other_io"]["requests"]
            assert device["completions"]["unmatched"] <= 8          # fio's issued before the trace began
    finally:
        stop_fio(fio)


def stop_fio(fio):
    """SIGTERM: fio stops its jobs and exits. (SIGKILL would end only the
    parent: each job is a process of its own session, which would go on
    using the device until its runtime is over.)"""
    fio.terminate()
    try:
        fio.wait(timeout=10)
    except subprocess.TimeoutExpired:
        fio.kill()
        fio.wait()


def test_a_request_merged_away_in_the_scheduler_leaves_no_owner_behind(tracing, loopdev):
    """mq-deadline merges a queued request into its neighbour and frees it
    without issuing it (block_rq_merge); the next request given the same
    struct request is another one, maybe another process's. fio keeps the
    scheduler full of 4k writes that fill gaps between queued ones (merges by
    the thousand a second) while this process reads: each trace counts
    exactly its own reads' bytes, none written, none taken for fio's. (The
    slot a merged request left handed on its owner: 1,982 and 1,991 own
    reads of 2,000, the rest counted as fio's.)"""
    require(shutil.which("fio") is not None, "fio is not installed")
    settle()
    name = os.path.basename(loopdev)
    with open(f"/sys/block/{name}/queue/scheduler", "w") as fh:
        fh.write("mq-deadline")
    mm = major_minor(loopdev)
    job = kit.Job(filename=loopdev, rw="randread", direct=True, bs="4k", ioengine="libaio", iodepth=4,
                  number_ios=N, size="32m")
    fio = subprocess.Popen(["fio", "--name=merging", f"--filename={loopdev}", "--offset=48m", "--size=1m",
                            "--rw=randwrite", "--bs=4k", "--direct=1", "--ioengine=libaio", "--iodepth=256",
                            "--iodepth_batch_submit=64", "--numjobs=2", "--time_based", "--runtime=60",
                            "--output=/dev/null"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        assert fio.poll() is None, fio.stderr.read()
        merges = 0
        for _ in range(4):
            before = open(f"/sys/block/{name}/stat").read().split()
            _r, s, _t = traced(job, devices=[mm], block=True)
            after = open(f"/sys/block/{name}/stat").read().split()
            merges += int(after[5]) - int(before[5])        # write merges, bios' and requests'
            own = s["block"]["read"]
            assert own["bytes"] == N * 4096, own             # its reads, every one
            assert N - 16 <= own["requests"] == own["completed"] <= N, own      # two adjacent ones may merge
            assert "write" not in s["block"], s["block"]["write"]
            assert "depth_unreliable" not in s["block"], s["block"]["depth_unreliable"]
        report_figure(f"tracers block, mq-deadline merging fio's writes: {merges:,} write merges over 4 traces, "
                      f"each counted exactly its {N} own reads")
        assert merges > 100          # the scheduler did merge: the test tested something
    finally:
        stop_fio(fio)


def test_no_completion_is_lost_while_another_bpf_program_runs(tracing, loopdev):
    """bpftrace counts the same completions from classic tracepoints at the
    same time (before raw tracepoints, a completion landing while another
    BPF program ran on the CPU was dropped): kit's count equals
    /sys/block stat's and bpftrace's."""
    require(shutil.which("bpftrace") is not None, "bpftrace is not installed")
    settle()
    mm = major_minor(loopdev)
    witness = subprocess.Popen(
        ["bpftrace", "-e", f"tracepoint:block:block_rq_complete /args->dev == {(mm[0] << 20) | mm[1]}/ "
                           "{ @done = count(); } tracepoint:sched:sched_switch { @switches = count(); }"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)                                   # bpftrace compiles and attaches
        job = kit.Job(filename=str(loopdev), rw="randread", direct=True, ioengine="io_uring", iodepth=8,
                      number_ios=5 * N)
        r, s, _t = traced(job, devices=[mm], block=True, sched=True)
    finally:
        witness.send_signal(2)
        out, _err = witness.communicate(timeout=30)
    seen = int(re.search(r"@done: (\d+)", out).group(1))
    d = s["block"]["devices"][os.path.basename(loopdev)]
    report_figure(f"tracers block beside bpftrace: kit saw {d['completions']['seen']} completions, "
                  f"/sys/block stat {d['completions']['stat']}, bpftrace {seen} (over its longer window)")
    reads = s["block"]["read"]
    # two adjacent random reads in one submission may be merged into one
    # request (9,999 requests for 10,000 reads, kernel and bpftrace alike):
    # the bytes are every read's, merged or not
    assert reads["bytes"] == 5 * N * 4096
    assert d["completions"]["seen"] == d["completions"]["stat"] >= reads["requests"] >= 5 * N - 16
    assert seen >= d["completions"]["seen"]
    assert s["lost"]["recursion_misses"].get("block_rq_complete", 0) == 0
    assert reads["lat_ns"]["N"] == reads["completed"] - reads["unmatched_completions"] == reads["requests"]


def test_block_log2_histogram_in_the_cli_text(tracing, loopdev):
    from kit.tracers import block
    job = kit.Job(filename=loopdev, rw="randread", direct=True, bs="4k", number_ios=500)
    _r, s, _t = traced(job, devices=[major_minor(loopdev)], block=True)
    lines = block.text(s["block"], histograms=True)
    rows = [line for line in lines if "->" in line]
    assert rows and sum(int(line.split(":")[1].split("|")[0]) for line in rows) == s["block"]["read"]["lat_ns"]["N"]


def test_ctrl_c_anywhere_in_start_or_stop_leaves_nothing_loaded(tracing, scratch):
    """SIGINT at random moments while traces start, run and stop: every
    interrupt surfaces as a KeyboardInterrupt, no trace stays active, no BPF
    program or map stays loaded, no descriptor is closed twice (fds as
    before)."""
    import random
    import signal
    import threading
    from kit import tracers
    job = kit.Job(directory=scratch, size="4m", rw="randread", number_ios=200)
    traced(job, block=True, sched=True, uring=True)           # libbcc's one-time state
    tracers.release()
    fds, before = _fd_targets(), _own_bpf_ids()    # this process's: another kit may trace meanwhile
    held = set()                            # every program and map this loop held at some point
    rng = random.Random(7)
    interrupted = 0
    for _ in range(12):
        timer = threading.Timer(rng.uniform(0.0, 1.5), os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        r = None
        try:
            with Trace(block=True, sched=True, uring=True):
                r = kit.run(job, progress=False, machine=False)    # an interrupted run returns, marked
            time.sleep(2)                                   # the signal lands after the trace, here
        except KeyboardInterrupt:
            interrupted += 1
        else:
            interrupted += bool(r.data["interrupted"])
        finally:
            timer.cancel()
        assert tracers.ACTIVE == []
        assert _bpf.kept() <= 1
        now = _own_bpf_ids()
        held |= now
        assert not {i for k, i in now if k == "prog"} & _attached_prog_ids()   # kept ones detached
    tracers.release()
    assert interrupted == 12
    assert _own_bpf_ids() == before and held - before
    assert not _still_loaded(held - before)     # nor anywhere else in the kernel
    after = _fd_targets()
    assert after == fds, {"opened": {fd: after[fd] for fd in set(after) - set(fds)},
                          "closed": {fd: fds[fd] for fd in set(fds) - set(after)}}


# ---- the views bcc users expect ----------------------------------------------------

def test_block_records_are_biosnoops_view(tracing, loopdev):
    """records=500: the last 500 requests one by one, each this process's
    4 KiB read on the loop device, timed, with its sector inside the device."""
    settle()
    job = kit.Job(filename=loopdev, rw="randread", direct=True, bs="4k", number_ios=N, ioengine="psync")
    with Trace(block=True, devices=[major_minor(loopdev)], records=500) as t:
        r = kit.run(job, progress=False, machine=False)
    s = t.summary(pid=os.getpid(), job_tids=job_tids(r))
    rec = s["block"]["requests"]
    size = os.path.getsize(loopdev) if os.path.isfile(loopdev) else int(open(
        f"/sys/block/{os.path.basename(loopdev)}/size").read()) * 512
    assert rec["kept"] == len(rec["lat_ns"]) == 500
    assert set(rec["op"]) == {"read"} and set(rec["bytes"]) == {4096} and set(rec["pid"]) == {os.getpid()}
    assert set(rec["comm"]) == {_job_comm()}
    assert set(rec["device"]) == {os.path.basename(loopdev)}
    assert all(0 < ns < 1e9 for ns in rec["lat_ns"]) and all(0 <= s * 512 < size for s in rec["sector"])
    assert rec["t_ns"][0] == 0 and sorted(rec["t_ns"]) == rec["t_ns"]
    frame = t.frames()["block_requests"]
    assert len(frame) == 500 and frame["lat_ns"].sum() == sum(rec["lat_ns"])
    # a huge ring that stays mostly empty costs nothing to read back
    t0 = time.monotonic()
    with Trace(block=True, devices=[major_minor(loopdev)], records=1 << 20) as t:
        kit.run(job.replace(number_ios=100), progress=False, machine=False)
    assert t.summary(pid=os.getpid())["block"]["requests"]["kept"] == 100
    assert time.monotonic() - t0 < 15
    with pytest.raises(kit.OptionError):
        Trace(block=True, records=-1)


def test_offcpu_stacks_are_offcputimes_folded_view(tracing, loopdev):
    """stacks=True: the job thread leaves the CPU from the kernel's
    scheduling functions, in folded lines a flame graph reads."""
    job = kit.Job(filename=loopdev, rw="randread", direct=True, bs="4k", number_ios=N, ioengine="psync")
    r, s, t = traced(job, sched=True, stacks=True)
    from kit.tracers import sched as sched_tracer
    lines = sched_tracer.folded(t._raw["sched"], t._context("sched", os.getpid(), job_tids(r), None), "job")
    assert lines, "no stacks for the job thread"
    stack, value = lines[0].rsplit(" ", 1)
    assert int(value) > 0 and ";" in stack and any("schedule" in f for f in stack.split(";")), lines[:3]
    total_us = sum(int(line.rsplit(" ", 1)[1]) for line in lines)
    assert total_us * 1000 <= s["sched"]["roles"]["job"]["offcpu_ns"] + 1_000_000
    assert s["sched"]["stacks"] and t.frames()["sched_stacks"]["offcpu_us"].sum() > 0


def test_runq_latency_is_runqlats_view_per_role(tracing, scratch):
    """runq=True: of the job and helper threads' time off CPU, the part spent
    runnable but waiting for a CPU (threadpool: nine threads, two CPUs)."""
    job = kit.Job(directory=scratch, size="16m", ioengine="threadpool", rw="randread", bs="4k", iodepth=8,
                  number_ios=N, pre_read=True)
    r, s, _t = traced(job, sched=True, runq=True)
    roles = s["sched"]["roles"]
    for name in ("job", "helper"):
        runq = roles[name]["runq"]
        assert runq["N"] > 100 and runq["mean"] > 0 and "percentile" in runq
        assert roles[name]["runq_ns"] <= roles[name]["offcpu_ns"] + roles[name]["oncpu_ns"]


def _as_unprivileged_user(tmp_path, cwd, *kit_args, unmount_tracefs=False):
    """kit run by nobody with CAP_BPF and CAP_PERFMON (no root, no
    CAP_SYS_ADMIN), in a mount namespace of its own: there the Python kit
    runs on is made reachable by nobody (it may sit under root's mode-0700
    home), and tracefs can be taken away without touching the machine's."""
    from conftest import KIT
    python = os.path.realpath(sys.executable)
    steps = []
    home = "/root"
    if python.startswith(home + "/"):
        # root's home, opened to nobody only in this namespace: the interpreter's tree bound back in
        top = os.path.join(home, os.path.relpath(python, home).split(os.sep)[0])
        keep = tmp_path / "keep"
        keep.mkdir(exist_ok=True)
        steps += [f"mount --bind {top} {keep}", f"mount -t tmpfs -o mode=755 tmpfs {home}",
                  f"mkdir -p {top}", f"mount --bind {keep} {top}"]
    if unmount_tracefs:
        steps += [f"umount -l {_bpf.TRACEFS}", f"! mountpoint -q {_bpf.DEBUGFS_TRACING} || umount -l {_bpf.DEBUGFS_TRACING}"]
    caps = "--inh-caps=+bpf,+perfmon --ambient-caps=+bpf,+perfmon"
    quoted = " ".join(shlex.quote(a) for a in (KIT, *kit_args))
    steps.append(f"exec setpriv --reuid=65534 --regid=65534 --clear-groups {caps} {quoted}")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-ec", " && ".join(steps)],
                          capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=dict(os.environ, KIT_STRICT="0"))


@pytest.mark.parametrize("unmount_tracefs, why", [(False, "is not readable by this user"),
                                                  (True, "tracefs is not mounted and only root can mount it")])
def test_without_tracefs_access_doctor_and_run_agree(tmp_path, unmount_tracefs, why):
    """A user with CAP_BPF and CAP_PERFMON but no root: where tracefs is
    root's alone (Debian mounts it mode 0700) or not mounted, kit doctor
    says tracing is unavailable and why, and kit run says the same in one
    line and runs untraced, as kit doctor said it would."""
    require(os.geteuid() == 0 and shutil.which("setpriv") and shutil.which("unshare"),
            "switching to nobody with capabilities needs root, setpriv and unshare")
    if not unmount_tracefs:
        require(_bpf.tracefs_dir() == _bpf.TRACEFS and not os.stat(_bpf.TRACEFS).st_mode & 0o005,
                f"{_bpf.TRACEFS} is readable by others here")
    work = tempfile.mkdtemp(prefix="kit-nobody-")      # pytest's own directories are root's alone
    try:
        os.chmod(work, 0o777)
        p = _as_unprivileged_user(tmp_path, work, "doctor", unmount_tracefs=unmount_tracefs)
        assert p.returncode in (0, 1), p.stderr
        (line,) = [l for l in p.stdout.splitlines() if l.startswith("tracing")]
        assert line.split()[1] != "ok" and why in line, line
        p = _as_unprivileged_user(tmp_path, work, "run", "--trace=sched", "--size=64k", "--number_ios=10",
                                  f"--directory={work}/d", "--output-format=json", unmount_tracefs=unmount_tracefs)
        assert p.returncode == 0, p.stderr
        (line,) = p.stderr.strip().splitlines()
        assert why in line and "running untraced" in line, line
        data = json.loads(p.stdout)
        assert data["traced"] is False and data["jobs"][0]["read"]["total_ios"] == 10
    finally:
        shutil.rmtree(work)


def test_in_a_pid_namespace_a_run_is_not_traced_with_pids_it_cannot_match(tmp_path):
    """The tracers meet the kernel's pids; in a PID namespace kit's own are
    others: rather than call its own I/O someone else's, kit says so and
    runs untraced (an error under KIT_STRICT=1)."""
    from conftest import KIT
    require(os.geteuid() == 0 and shutil.which("unshare"), "a PID namespace needs root and unshare")
    args = ["unshare", "--pid", "--fork", "--mount-proc", KIT, "run", "--trace=block,sched", "--size=64k",
            "--number_ios=10", f"--directory={tmp_path / 'd'}", "--output-format=json"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120, env=dict(os.environ, KIT_STRICT="0"))
    assert p.returncode == 0, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert "PID namespace" in line and "running untraced" in line, line
    assert json.loads(p.stdout)["traced"] is False
    p = subprocess.run(args, capture_output=True, text=True, timeout=120, env=dict(os.environ, KIT_STRICT="1"))
    assert p.returncode == 1 and "PID namespace" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    with pytest.raises(TraceUnavailable, match="PID namespace"):
        from kit import runner
        real = _bpf.in_pid_namespace
        try:
            _bpf.in_pid_namespace = lambda: True
            import kit.tracers
            kit.tracers.in_pid_namespace = _bpf.in_pid_namespace
            runner._start_trace("sched", [])
        finally:
            _bpf.in_pid_namespace = kit.tracers.in_pid_namespace = real


@pytest.mark.parametrize("request_text, names, views", [
    ("block,sched", ["block", "sched"], {}),
    ("block,sched,records=2000,stacks,runq", ["block", "sched"], {"records": 2000, "stacks": True, "runq": True}),
])
def test_trace_requests_name_tracers_and_views(request_text, names, views):
    from kit.tracers import split_request
    assert split_request(request_text.split(",")) == (names, views)


@pytest.mark.parametrize("bad, says", [
    ("block,records=0", "records=0"), ("block,records=lots", "records=lots"), ("records=10", "no tracer"),
    ("block,stack", "'stack'"), ("bloc", "'bloc'"),
    # a view of a tracer the request does not have would silently give nothing; a view twice, one of two values
    ("sched,records=10", "view of the block tracer"), ("block,stacks", "view of the sched tracer"),
    ("uring,runq", "view of the sched tracer"), ("block,records=5,records=7", "records twice"),
    ("block,sched,runq,runq", "runq twice"), ("sched,sched", "sched twice")])
def test_bad_trace_requests_are_one_line_exit_2(bad, says, tmp_path):
    from conftest import run_kit
    for command in (("run", "--size=64k", f"--directory={tmp_path / 'd'}"), ("trace", "--duration=0.1")):
        p = run_kit(*command, f"--trace={bad}")
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--trace" in p.stderr, p.stderr
        assert says in p.stderr, p.stderr
        assert not (tmp_path / "d").exists()
    with pytest.raises(kit.OptionError, match="view of the"):
        Trace(sched=True, records=10)


def test_a_job_on_no_block_device_is_not_block_traced_and_says_so(tracing):
    """Files on tmpfs: no block request is the job's own, and every other
    disk's requests are someone else's. The block tracer is left out, in so
    many words, whether alone or beside another (it was once the whole
    machine's when alone, and silently dropped beside sched)."""
    shm = tempfile.mkdtemp(dir="/dev/shm", prefix="kit-test-")
    try:
        job = kit.Job(rw="randread", size="1m", number_ios=200, directory=shm)
        alone = kit.run(job, progress=False, trace="block,records=10")
        both = kit.run(job, progress=False, trace="block,sched")
    finally:
        shutil.rmtree(shm)
    for r in (alone, both):
        assert r.total["read"]["total_ios"] == 200
        (note,) = [n for n in r.data["notes"] if n.startswith("trace=block")]
        assert "no block device" in note and "block was not traced" in note
    assert alone.data["traced"] is False and "nothing was traced" in note_of(alone)
    assert both.data["traced"] is True and both.data["trace"]["tracers"] == ["sched"]
    assert "block" not in both.data["trace"] and "nothing was traced" not in note_of(both)


def note_of(r):
    return next(n for n in r.data["notes"] if n.startswith("trace=block"))


def test_the_devices_share_is_of_what_the_io_waited_for(tracing, loopdev):
    """The device's share of the engine's latency: libaio issues its
    requests inside io_submit, so the device's time falls partly in slat --
    against clat alone the share passed 100 %; against lat it cannot. I/Os
    split into several smaller requests (here above max_sectors_kb) have
    parts in flight side by side: no share is given, and the line says why
    (it said 243 % to 1,272 %)."""
    settle()
    job = kit.Job(filename=loopdev, ioengine="libaio", iodepth=4, rw="randread", bs="4k", direct=True,
                  number_ios=N)
    r = kit.run(job, progress=False, machine=False, trace="block")
    block = r.data["trace"]["block"]
    share, reached = block["device_share"]["read"], block["device_requests"]["read"]
    lat, clat = r.total["read"]["lat_ns"], r.total["read"]["clat_ns"]
    device_sum = block["read"]["lat_ns"]["mean"] * block["read"]["lat_ns"]["N"]
    assert abs(share - device_sum / (lat["mean"] * lat["N"])) < 1e-6
    assert 0 < share <= 1 and reached["ios"] == N and N <= reached["requests"] <= N + 8
    report_figure(f"tracers device share: libaio qd4 {share:.0%} of lat (of clat alone: "
                  f"{device_sum / (clat['mean'] * clat['N']):.0%})")
    assert f"{share:.0%} of the engine's latency" in r.summary()

    limit = f"/sys/block/{os.path.basename(loopdev)}/queue/max_sectors_kb"
    with open(limit) as fh:
        before = fh.read().strip()
    with open(limit, "w") as fh:
        fh.write("64")
    try:
        job = kit.Job(filename=loopdev, ioengine="psync", rw="read", bs="1m", direct=True, size="16m")
        r = kit.run(job, progress=False, machine=False, trace="block")
    finally:
        with open(limit, "w") as fh:
            fh.write(before)
    block = r.data["trace"]["block"]
    reached = block["device_requests"]["read"]
    assert "read" not in block["device_share"] and reached["split"] is True
    assert reached["ios"] == 16 and reached["requests"] >= 16 * 16     # 1 MiB in 64 KiB requests
    assert "no share of the engine's latency: I/Os were split" in r.summary()


def _job_comm():
    """The name kit's job threads carry (what a per-request record of theirs
    says): the process's, which threads inherit."""
    with open("/proc/self/comm") as fh:
        return fh.read().strip()


def test_block_records_pair_each_pid_with_its_own_comm(tracing, mounted_loopdev):
    """On ext4 with fsync: the job's writes, the journal's, and the block
    layer's own flushes. A record's comm is its pid's (a kworker issuing a
    request of kit's left kit's pid beside 'kworker'), and a request no
    process issued has no pid (it said 4294967295)."""
    dev, mnt = mounted_loopdev
    job = kit.Job(directory=mnt, ioengine="libaio", iodepth=4, rw="randwrite", bs="4k", size="8m",
                  number_ios=1000, fsync=10)
    with Trace(block=True, devices=[major_minor(dev)], records=5000) as t:
        kit.run(job, progress=False, machine=False)
    rec = t.summary(pid=os.getpid())["block"]["requests"]
    pairs = set(zip(rec["pid"], rec["comm"]))
    mine = {c for p, c in pairs if p == os.getpid()}
    assert mine and not any(c.startswith(("kworker", "jbd2")) for c in mine), pairs
    assert all(c == "" for p, c in pairs if p is None) and any(p is None for p, _c in pairs), pairs
    assert 4294967295 not in rec["pid"]
    for p, c in pairs:
        if p not in (None, os.getpid()) and os.path.exists(f"/proc/{p}/comm"):
            assert c == open(f"/proc/{p}/comm").read().strip() or c.startswith(("kworker", "jbd2")), (p, c)


def test_a_thread_per_io_keeps_every_off_cpu_sample(tracing, loopdev):
    """stdasync starts a thread per I/O: past the rows of their own (256),
    threads share one, so no sample is lost and the helper role's
    percentiles are of all its N (they were of the first ~256 threads',
    labelled with the N of all, and 3,000 I/Os lost ~3,300 events)."""
    job = kit.Job(filename=loopdev, ioengine="stdasync", iodepth=8, rw="randread", bs="4k", direct=True,
                  number_ios=3000)
    r, s, _t = traced(job, devices=[major_minor(loopdev)], sched=True)
    helper = s["sched"]["roles"]["helper"]
    assert helper["threads"] > sched.OFFCPU_ROWS
    assert s["lost"]["map_full"].get("sched_offcpu_full", 0) == 0
    off = helper["offcpu"]
    assert off["N"] >= 3000 and sum(off["bins"].values()) == off["N"] and "percentile_N" not in off


@pytest.mark.parametrize("signum", [2, 15])
def test_kit_trace_cut_short_says_so(tracing, signum):
    """Ctrl-C or SIGTERM inside kit trace's window: what was seen is printed,
    marked cut short, and the exit code is 130, not success."""
    from conftest import KIT
    proc = subprocess.Popen([KIT, "trace", "--duration=60", "--trace=sched", "--output-format=json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_bpf_programs(proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    s = json.loads(out)
    assert s["interrupted"] is True and s["duration_asked_ns"] == 60 * 10**9
    assert 0.3e9 < s["duration_ns"] < 30e9 and s["sched"]["system"]["switches"] > 0
    from kit.tracers import format_summary
    assert "interrupted: cut short of the 60s asked" in format_summary(s).splitlines()[0]


def test_a_machine_wide_trace_follows_every_disk(tracing):
    """kit trace over the whole machine follows every disk there is, not
    the first 16 (a 24-disk server lost 8 of them, named nowhere)."""
    count = max(20, len(os.listdir("/sys/block")) - 8 + 4)     # more than the floor of 16 and than today's spare
    with contextlib.ExitStack() as stack:
        devs = [stack.enter_context(loop_device(size_mb=4))[0] for _ in range(count)]
        settle()
        from conftest import KIT
        proc = subprocess.Popen([KIT, "trace", "--duration=60", "--trace=block", "--output-format=json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for_bpf_programs(proc)
        for d in devs:
            subprocess.run(["dd", f"if={d}", "of=/dev/null", "bs=4k", "count=50", "iflag=direct", "status=none"],
                           check=True)
        proc.send_signal(2)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    s = json.loads(out)
    seen = s["block"]["devices"]
    assert {os.path.basename(d) for d in devs} <= set(seen), sorted(set(map(os.path.basename, devs)) - set(seen))
    for d in devs:
        assert seen[os.path.basename(d)]["ops"]["read"]["requests"] >= 50
    assert s["lost"]["map_full"].get("block_devices_full", 0) == 0


def _wait_for_bpf_programs(proc):
    """Until a kit trace process holds its programs (then its window has
    begun), and half a second more."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if any(os.readlink(f"/proc/{proc.pid}/fd/{fd}") == "anon_inode:bpf-prog"
                   for fd in os.listdir(f"/proc/{proc.pid}/fd")):
                break
        time.sleep(0.05)
    time.sleep(0.5)


def test_ctrl_c_while_the_trace_stops_keeps_the_run(tracing, scratch, monkeypatch):
    """Ctrl-C as the trace stops, after the run is over: stop() holds it
    until everything is read and detached, and the result stands, marked
    interrupted, its trace in it (the whole result was lost)."""
    real = Trace._stop

    def stop_then_ctrl_c(self):
        had = self._bpf is not None
        real(self)
        if had:
            raise KeyboardInterrupt         # what held() delivers once the block is done

    monkeypatch.setattr(Trace, "_stop", stop_then_ctrl_c)
    from kit import tracers
    tracers.release()
    before = _own_bpf_ids()
    r = kit.run(kit.Job(rw="randread", size="1m", number_ios=200, directory=scratch), progress=False,
                trace="sched")
    assert r.data["interrupted"] is True and r.total["read"]["total_ios"] == 200
    assert r.data["trace"]["sched"]["system"]["switches"] > 0
    from kit import tracers
    tracers.release()                       # the detached program kept for the next trace, let go
    assert not _still_loaded(_own_bpf_ids() - before)
