"""kit's runner: a Job as numjobs threads, each one call into the C driver.

Python's part is orchestration only: plan and prepare the files, start the
threads (cffi releases the GIL, so they really run in parallel), release them
together, watch progress and Ctrl-C, take the process-wide snapshots at the
barriers, and turn the C statistics into a Result.
"""
import collections
import os
import random
import threading
import time

import numpy as np

from . import logs, target as targets, tracers
from .engines import diskless, engine, engine_index, framework, io_hint, native, setup_hint, stale_build
from . import host
from .host import thread_kind
from .engines.sources import source_hash
from .errors import RunError
from .job import LOG_FILES, OPTIONS
from .options import split_filenames
from .machine import fingerprint_for
from .progress import bar
from .options import DDIRS, Percent, per_ddir
from .results import Result, disk_util

POLL_MS = 200


def check_job(job):
    """What kit's runner can refuse a job for before it runs: this machine
    lacks what its engine needs, or its files break a safety rule. Writes
    nothing. Returns the job's plan."""
    _check_capabilities(job)
    return targets.plan(job)


def run_together(jobs, *, progress=None, machine=True, trace=None, first_thread=1):
    """Runs several jobs at the same time (fio's sections without stonewall),
    all released by one barrier; returns one Result per job. The process-wide
    figures are shared: they cannot be told apart. first_thread: fio's
    number of the first job thread, which log names carry (a job file's
    later groups go on from the earlier ones)."""
    for job in jobs:
        _check_capabilities(job)
    logs.check(jobs, first_thread)
    plans = [targets.plan(job) for job in jobs]       # every check before any write
    logs.check_apart(jobs, first_thread, [f.path for p in plans if not p.diskless for f in p.unique_files])
    with targets.prepare(plans, progress=progress) as prepared:
        opened = []
        try:
            for plan in plans:
                opened.append(prepared.open_for(plan))
            outcome = _execute(list(zip(jobs, plans, opened)), progress, trace, prepared.disks(), first_thread)
        finally:
            for fds in opened:
                targets.close_files(fds)
        per_job, process, interrupted, trace_summary, disks, trace_notes = outcome
        errors = []
        for job, plan, threads in zip(jobs, plans, per_job):
            error = _first_error(job, plan, threads)
            prepared.finish(plan, error, verified=bool(job.verify) and not interrupted)
            errors.append(error)
        changed = prepared.changed_paths()
    results, first_error = [], None
    for job, plan, threads, error in zip(jobs, plans, per_job, errors):
        notes = _notes(job) + [changed[f.path] for f in plan.unique_files if f.path in changed] + trace_notes
        load = process.get("machine_during_run") or {}
        if load.get("busy"):
            notes.append(_busy_note(load))
        if any(t["ramp_unfinished"] for t in threads):
            notes.append(f"ramp_time={job.ramp_time:g}s outlasted the job: as in fio, its figures are the "
                         "ramp's I/O (make the job longer or the ramp shorter to measure after it)")
        if len(jobs) > 1:
            notes.append(f"ran at the same time as {len(jobs) - 1} other job(s): "
                         "the process figures cover them all")
        if any(t["series_truncated"] for t in threads):
            notes.append("memory ran out for the time series: bw/iops samples, logs and the series end early")
        results.append(Result.from_run(
            job, threads, process, [f.to_dict() for f in plan.unique_files], notes=notes,
            error=error, interrupted=interrupted, machine=fingerprint_for(None if plan.diskless else plan.unique_files[0].path) if machine else None,
            trace=trace_summary, source_hash=source_hash(), disk_util=disks))
        first_error = first_error or error
    try:
        logs.write(jobs, per_job, first_thread)
    except RunError as e:
        e.result, e.results = results[0], results
        raise
    except KeyboardInterrupt:           # the run is done: its result stands, marked
        for r in results:
            r.data["interrupted"] = True
            r.data["notes"].append("interrupted while writing the logs: they are incomplete")
    if first_error:
        exc = RunError(first_error["message"])
        exc.result = results[0] if len(results) == 1 else next(
            r for r in results if r.data["error"] is first_error)
        exc.results = results
        raise exc
    return results


def _busy_note(load):
    what = []
    if load["others_cpus"] > BUSY_OTHERS_CPUS or load["steal_pct"] > BUSY_STEAL_PCT:
        what.append(f"other processes used {load['others_cpus']:.2f} CPUs on average, steal "
                    f"{load['steal_pct']:.1f} %")
    if load.get("device_busy"):
        io = load["device_io"]
        what.append(f"others moved {io['others_bytes'] / (1 << 20):,.1f} MiB on {', '.join(io['devices'])} "
                    f"beside kit's {io['kit_bytes'] / (1 << 20):,.1f} MiB")
    return (f"the machine was busy with other work during this run ({'; '.join(what)}): its figures may be "
            "low; measure again on a quiet machine")


# ---- before the run ---------------------------------------------------------

def _notes(job):
    notes = []
    if job.is_sync_engine and job.iodepth > 1:
        notes.append(f"iodepth={job.iodepth} has no effect with ioengine={job.ioengine} "
                     "(a synchronous engine has one I/O in flight)")
    for name, option in OPTIONS.items():
        for implied in option.implies:
            if getattr(job, name) and not getattr(job, implied):
                notes.append(f"{name} implies {implied}, as in fio")
    if not job.direct and not job.invalidate and not job.writes and not diskless(job.ioengine):
        notes.append("buffered reads with invalidate=0 (kit's default, fio's is 1): "
                     "reads may be served from the page cache")
    stale = stale_build()
    if stale:
        notes.append(stale)
    return notes


def _check_capabilities(job):
    """Features this kernel or device lacks for the job's engine, said before
    anything is written (the engine's own check_machine)."""
    check = getattr(engine(job.ioengine), "check_machine", None)
    if check:
        check(job, _target_paths(job))


def _target_paths(job):
    if job.filename:
        return [os.path.join(targets.named_base(job), n) for n in split_filenames(job.filename)]
    directory = targets.scratch_directory(job)
    while not os.path.exists(directory):
        directory = os.path.dirname(directory)
    return [directory]


# ---- the run ------------------------------------------------------------------

_DISTRIBUTIONS = {"random": 0, "zipf": 1, "pareto": 2, "normal": 3}


def _set_block_sizes(p, job):
    """Each direction the job issues: one size, a range, or bssplit's table
    (cumulative percent); the others stay 0."""
    p.min_bs = job.min_bs
    for d in job.ddirs:
        kind, value = job.block_sizes(d)
        b = p.bs[d]
        if kind == "split":
            sizes = [size for size, _ in value]
            b.min, b.max, b.nsplit = min(sizes), max(sizes), len(value)
            cumulative = 0
            for i, (size, percent) in enumerate(value):
                cumulative += percent
                b.split_bs[i], b.split_cum[i] = size, cumulative
        elif kind == "range":
            b.min, b.max = value
        else:
            b.min = b.max = value


def _startdelay_ns(job, j):
    """fio's startdelay=a-b: each job thread its own pick, the same every run."""
    delay = job.startdelay
    if isinstance(delay, tuple):
        delay = random.Random(job.randseed * 1000003 + j).uniform(*delay)
    return int(delay * 1e9)


def io_bytes(job, regions):
    """Bytes one job thread transfers per loop (fio's io_size, default its
    size): more than its regions hold wraps around them."""
    total = sum(length for _, length in regions)
    if isinstance(job.size, Percent) and job.filesize is not None:
        return max(job.size.of(total), 1)       # fio: N% of the files' filesize
    if not job.io_size:             # fio: io_size=0 is no io_size
        if job.filesize is not None:
            return min(job.size, total)         # fio: size is at most what the regions hold
        return total if job.filename else job.size
    return max(job.io_size.of(total), 1) if isinstance(job.io_size, Percent) else job.io_size


def _params(ffi, job, j, fds, files, regions, ctl, keep, exitall=False):
    p = ffi.new("struct kit_params *")
    fd_array = ffi.new("int[]", fds)
    offsets = ffi.new("uint64_t[]", [offset for offset, _ in regions])
    sizes = ffi.new("uint64_t[]", [length for _, length in regions])
    keep += [p, fd_array, offsets, sizes]
    p.engine = engine_index(job.ioengine)
    p.nfiles = len(fds)
    p.fds = fd_array
    p.file_offsets = offsets
    p.file_sizes = sizes
    _set_block_sizes(p, job)
    p.iodepth = job.iodepth
    p.random = int(job.is_random)
    # fio: any distribution but uniform turns the random map off
    p.norandommap = int(job.norandommap or job.random_distribution != "random")
    p.rwmixread = job.read_percent
    p.trim = int(job.is_trim)
    p.mixed = int(job.rw in ("rw", "readwrite", "randrw"))
    kind, _, rest = job.random_distribution.partition(":")
    p.dist = _DISTRIBUTIONS[kind]
    parts = rest.split(":") if rest else []
    p.dist_param = float(parts[0]) if parts else 0.0
    p.dist_center = float(parts[1]) if len(parts) > 1 else -1.0
    p.io_size = 0 if job.time_based else min(io_bytes(job, regions) * job.loops, 2**64 - 1)
    # sequential and random-map jobs end when each file had `loops` passes
    # (fio's file done, so bs=3k on 10k is 3 I/Os); io_size asks to wrap
    p.passes = 0 if job.time_based or job.io_size else job.loops
    # fio 3.33 stops a job at number_ios times loops I/Os in all (backend.c exceeds_number_ios), each
    # pass still ending at the region's end: number_ios=20 loops=2 on 16 blocks is 16 + 16
    p.number_ios = min(job.number_ios * job.loops, 2**64 - 1)
    p.runtime_ns = int(job.runtime * 1e9)
    p.ramp_ns = int(job.ramp_time * 1e9)
    # distinct but reproducible offsets per job thread, as fio's per-job seeds
    p.seed = (job.randseed * 0x9E3779B97F4A7C15 + j + 1) % (1 << 64)
    p.fsync_every = job.fsync
    p.fdatasync_every = job.fdatasync
    p.end_fsync = int(job.end_fsync or job.fsync_on_close)
    p.startdelay_ns = _startdelay_ns(job, j)
    for d in range(len(DDIRS)):
        rate, iops = per_ddir(job.rate)[d], per_ddir(job.rate_iops)[d]
        # fio's rate_iops is a rate in bytes of the direction's smallest size
        p.rate_bps[d] = rate or iops * (p.bs[d].min or job.min_bs)
        p.rate_min_bps[d] = per_ddir(job.rate_min)[d]
        p.rate_min_iops[d] = per_ddir(job.rate_iops_min)[d]
    p.rate_poisson = int(job.rate_process == "poisson")
    p.rate_cycle_ns = job.rate_cycle * 1_000_000
    p.thinktime_ns = job.thinktime * 1000
    p.thinktime_spin_ns = job.thinktime_spin * 1000
    p.thinktime_blocks = job.thinktime_blocks
    p.exitall = int(exitall)
    p.exitall_on_error = int(job.exitall_on_error)
    p.verify = 1 if job.verify else 0
    p.buffered = int(not job.direct)
    p.verify_seed = (int(time.time_ns()) ^ (j << 48)) % (1 << 64)
    p.gtod_reduce = int(job.gtod_reduce)
    p.nice = job.nice
    lib = native()[1]
    for name, value in job.write_content.items():
        setattr(p, name, getattr(lib, f"KIT_FILL_{value.upper()}") if name == "buffer_fill" else value)
    p.ioprio = -1 if job.ioprio is None else job.ioprio
    for i, ms in enumerate(job.windows_ms):
        p.window_ns[i] = ms * 1_000_000
    # a record per I/O for logs without log_avg_msec (per-I/O lines, and fio's per-I/O bw/iops samples)
    p.log_ios = int(not job.log_avg_msec and any(getattr(job, o) is not None for o in LOG_FILES))
    for name, option in OPTIONS.items():        # the engines' own options, as they declare them
        if option.param:
            setattr(p, option.param, option.c_value(job.on(name) if option.kind == "bool" else getattr(job, name)))
    p.iodepth_batch_submit = job.iodepth_batch_submit or job.iodepth
    p.iodepth_batch_complete_min = job.iodepth_batch_complete_min
    p.iodepth_batch_complete_max = job.iodepth_batch_complete_max or job.iodepth
    p.ctl = ctl
    return p


# Threads first seen during a kit run (glibc's AIO helpers idle for a second
# and are reused by the next run): never bystanders. The one piece of state
# kit keeps between runs.
_BORN_IN_RUNS = set()


def _bystanders():
    """Threads that were there before the run and do not work for it: the
    Python main thread (it polls), Jupyter's and libzmq's threads, BLAS pools."""
    return host.tasks() - _BORN_IN_RUNS


class _Watch:
    """What the main thread sees while the job threads run."""

    def __init__(self):
        self.peak_threads = 0
        self.interrupts = 0
        self.seen = {}          # tid -> name, every thread seen while running

    def look(self):
        live = host.tasks()
        self.peak_threads = max(self.peak_threads, len(live))
        for tid in live - set(self.seen):
            name = host.task_name(tid)
            if name != "?":         # gone already (stdasync's threads live for one I/O)
                self.seen[tid] = name

    def helpers(self, existing, job_tids):
        """Threads born during the run: pool workers, glibc AIO helpers,
        io_uring's iou-wrk/iou-sqp threads."""
        return {tid: name for tid, name in self.seen.items()
                if tid not in existing and tid not in job_tids}


def _execute(units, progress, trace, devices, first_thread=1):
    """units: (job, plan, fds) triples. Returns per-job thread statistics, the
    process figures, whether it was interrupted, and the trace summary.
    first_thread: fio's number of the first job thread (cpus_allowed_policy=split)."""
    ffi, lib = native()
    keep = []
    ctl = ffi.new("struct kit_control *")
    slots = []                  # (unit index, params, stats) per job thread
    for u, (job, plan, fds) in enumerate(units):
        for j, number in enumerate(logs.thread_numbers(job, first_thread)):
            p = _params(ffi, job, j, fds[j], plan.files[j], plan.regions[j], ctl, keep,
                        exitall=any(job.exitall for job, _p, _f in units))
            for cpu in job.cpus(number) or ():
                p.cpumask[cpu // 64] |= 1 << (cpu % 64)
            slots.append((u, p, ffi.new("struct kit_stats *")))
        first_thread += job.numjobs
    n = ctl.nthreads = len(slots)
    workers = [threading.Thread(target=lib.kit_job_run, args=(p, s), name=f"kit-job-{i}", daemon=True)
               for i, (_u, p, s) in enumerate(slots)]
    stats = [s for _u, _p, s in slots]
    watch = _Watch()
    released = False

    def stop():
        ctl.stop = 1

    # taken before the job threads exist, so that what they start during setup
    # (pool workers, the SQPOLL thread) counts as working for the run
    bystanders = _bystanders()
    tracing, trace_notes = _start_trace(trace, devices)
    try:
        _start_all(workers, lambda: (stop(), lib.kit_control_go(ctl), lib.kit_control_release(ctl)))
        _wait_until(lib, ffi.addressof(ctl, "ready"), n, watch, stop)
        if any(s.error for s in stats):
            stop()
        job_tids = {w.native_id for w in workers}
        # the bystanders' window inside the process's: what is taken off the
        # process's figures happened in them (reading /proc switches too)
        self0 = host.process_counters()
        before = {tid: host.task_counters(tid) for tid in bystanders}
        disks0 = {dev: host.block_stat(dev) for dev in devices}
        t0, load0 = time.monotonic_ns(), host.machine_load()
        lib.kit_control_go(ctl)
        _watch_run([job for job, _p, _f in units], lib, ffi.addressof(ctl, "finished"), n, stats,
                   watch, stop, progress)
        t1, load1 = time.monotonic_ns(), host.machine_load()
        disks1 = {dev: host.block_stat(dev) for dev in devices}
        after = {tid: host.task_counters(tid) for tid in bystanders}
        self1 = host.process_counters()
        lib.kit_control_release(ctl)
        released = True
        for w in workers:
            while w.is_alive():
                w.join(0.2)
    except KeyboardInterrupt:
        # a second Ctrl-C while stopping: leave at once, the threads are daemons
        if not released:
            stop()
            lib.kit_control_go(ctl)
            lib.kit_control_release(ctl)
        raise
    finally:
        if tracing:
            try:
                tracing.stop()
            except KeyboardInterrupt:
                # stop() holds Ctrl-C until it has read and detached
                # everything: the run and its trace stand, marked interrupted
                # (it said nothing at all); stop() again in case the signal
                # came before it began (it does the rest once, or nothing)
                watch.interrupts += 1
                tracing.stop()
    helpers = watch.helpers(bystanders | _BORN_IN_RUNS, job_tids)
    _BORN_IN_RUNS.update(helpers)
    # for the tracers' roles: every thread that worked during the run and is
    # not a bystander, glibc's AIO helpers reused from an earlier run included
    working = set(watch.seen) - set(job_tids) - bystanders
    _note_run_in_traces(job_tids, working)
    process = _process_stats(self0, self1, before, after, t1 - t0, watch.peak_threads, helpers)
    # threads the engines started: pool workers, and stdasync's one per I/O
    # (most of which come and go between two looks of the watch)
    process["threads_started"] = sum(int(s.threads_started) for s in stats)
    device_io = _device_io([job for job, _p, _f in units], stats, disks0, disks1)
    process["machine_during_run"] = _machine_during_run(load0, load1, self0, self1, t1 - t0, device_io)
    per_job = [[] for _ in units]
    for (u, p, s) in slots:
        t = _extract(ffi, s)
        t["framework"] = framework(units[u][0].ioengine)
        lib.kit_stats_free(s)
        t["verify_seed"] = p.verify_seed if p.verify else None
        per_job[u].append(t)
    interrupted = watch.interrupts > 0 or any(t["interrupted"] for ts in per_job for t in ts)
    trace_summary = tracing.summary(pid=os.getpid(), job_tids=sorted(job_tids),
                                    helper_tids=sorted(working)) if tracing else None
    disks = disk_util({host.dev_name(dev): (disks0[dev], disks1[dev]) for dev in devices}, t1 - t0)
    return per_job, process, interrupted, trace_summary, disks, trace_notes


def _start_all(workers, release):
    """Starts the job threads; if the system refuses one (a thread limit),
    the started ones are released to exit and the run fails in one line."""
    for i, w in enumerate(workers):
        try:
            w.start()
        except RuntimeError as e:
            release()
            for started in workers[:i]:
                started.join()
            raise RunError(f"cannot start job thread {i + 1} of {len(workers)} ({e}): the limit on threads "
                           "(ulimit -u, a pids cgroup, kernel.threads-max) is too low; lower numjobs") from None


def _note_run_in_traces(job_tids, helpers):
    """Traces running around this run learn whose threads are the job's and
    which were born to help it."""
    for t in tracers.ACTIVE:
        t.note_run(os.getpid(), job_tids, helpers)


def _start_trace(trace, devices):
    """trace: None or tracer names; devices: the run's disks. Returns the
    Trace this run must stop (None if no tracer is left) and notes for its
    results."""
    if not trace:
        return None, []
    names, options = tracers.split_request(trace.split(",") if isinstance(trace, str) else trace)
    names = set(names)
    if tracers.in_pid_namespace():
        raise tracers.TraceUnavailable(tracers.PID_NAMESPACE)
    notes = []
    if not devices and "block" in names:
        # files on tmpfs and the like: no block request is the job's, and
        # every other disk's are someone else's; the machine's is kit trace's
        names.discard("block")
        options.pop("records", None)
        notes.append("trace=block: the job's files are on no block device (tmpfs or the like), so no block "
                     "request is its own: block was not traced" + ("" if names else "; nothing was traced"))
    if not names:
        return None, notes
    t = tracers.Trace(*names, devices=devices, **options)
    t.start()
    return t, notes


def _wait_until(lib, word, n, watch, stop):
    while True:
        try:
            if lib.kit_control_wait(word, n, POLL_MS) >= n:
                return
        except KeyboardInterrupt:
            watch.interrupts += 1
            stop()
            if watch.interrupts > 1:
                raise


def _progress_plan(jobs):
    """What the bar counts: seconds when any job is time-bound, else bytes."""
    timed = [j.runtime + j.ramp_time for j in jobs if j.runtime and j.time_based]
    if timed:
        return "s", max(timed)
    total = 0
    for j in jobs:
        size = j.io_size if j.io_size is not None else j.size
        per_thread = j.number_ios * j.loops * j.min_bs if j.number_ios else \
            (0 if j.filename or isinstance(size, Percent) else size * j.loops)
        total += per_thread * j.numjobs
    return "B", total


def _watch_run(jobs, lib, finished, n, stats, watch, stop, progress):
    unit, total = _progress_plan(jobs)
    label = jobs[0].label if len(jobs) == 1 else f"{len(jobs)} jobs"
    start = time.monotonic()
    with bar(total=total, label=label, unit=unit, enabled=progress) as b:
        while True:
            try:
                done = lib.kit_control_wait(finished, n, POLL_MS) >= n
            except KeyboardInterrupt:
                watch.interrupts += 1
                stop()
                if watch.interrupts > 1:
                    raise
                continue
            watch.look()
            ios = sum(s.progress_ios for s in stats)
            elapsed = time.monotonic() - start
            now = min(elapsed, total) if unit == "s" else sum(s.progress_bytes for s in stats)
            b.update_to(now, IOPS=f"{ios / elapsed:,.0f}" if elapsed > 0 else "-")
            if done:
                return


def _process_stats(self0, self1, before, after, wall_ns, peak_threads, helpers):
    """The whole process minus the bystander threads: job threads, glibc
    AIO helpers and pool workers (even those that exited) all count."""
    delta = {k: self1[k] - self0[k] for k in self0}
    for tid, b in before.items():
        a = after.get(tid)
        if a and b:
            for k in delta:
                delta[k] -= a[k] - b[k]
    delta = {k: max(v, 0) for k, v in delta.items()}
    return {
        "usr_cpu": 100.0 * delta["utime_ns"] / wall_ns if wall_ns else 0.0,
        "sys_cpu": 100.0 * delta["stime_ns"] / wall_ns if wall_ns else 0.0,
        "ctx": int(delta["nvcsw"] + delta["nivcsw"]),
        "ctx_voluntary": int(delta["nvcsw"]), "ctx_involuntary": int(delta["nivcsw"]),
        "majf": int(delta["majflt"]), "minf": int(delta["minflt"]),
        "usr_ns": int(delta["utime_ns"]), "sys_ns": int(delta["stime_ns"]),
        "wall_ns": int(wall_ns), "threads": peak_threads,
        "helper_threads": dict(collections.Counter(thread_kind(n) for n in helpers.values())),
    }


# the machine was busy with other work when, on average over the run, other
# processes kept a quarter of a CPU busy, or the hypervisor stole 5 % of the CPUs
BUSY_OTHERS_CPUS = 0.25
BUSY_STEAL_PCT = 5.0


# other I/O on the run's devices is a disturbance past 5 % of kit's own bytes,
# and at least 1 MiB (a filesystem's journal commit is a few KiB)
BUSY_DEVICE_SHARE = 0.05
BUSY_DEVICE_MIN_BYTES = 1 << 20


def _device_io(jobs, stats, disks0, disks1):
    """What the disks under the run's files did besides kit's I/O: their
    /sys/block/<dev>/stat over the run against what kit's job threads
    completed (ramp and verify reads included). Only direct I/O reaches a
    device one for one: buffered reads may come from the page cache and
    writes reach it later, so only when every job is direct (and trims
    none: a punched hole is what the filesystem makes of it; and syncs
    none: they make the filesystem write its journal) are others' bytes
    told apart; otherwise both counts stand for the reader. I/Os are
    counted as requests (the block layer splits and merges them), bytes
    exactly, so bytes judge."""
    if not disks0:
        return None
    device = dict.fromkeys(("read_ios", "write_ios", "discard_ios", "read_bytes", "write_bytes",
                            "discard_bytes"), 0)
    for dev, before in disks0.items():
        after = disks1.get(dev)
        if not before or not after:
            return None
        for d in ("read", "write", "discard"):
            device[f"{d}_ios"] += max(after[f"{d}_ios"] - before[f"{d}_ios"], 0)
            device[f"{d}_bytes"] += 512 * max(after[f"{d}_sectors"] - before[f"{d}_sectors"], 0)
    out = {"devices": sorted(host.dev_name(dev) for dev in disks0), **device,
           "kit_ios": int(sum(s.progress_ios for s in stats)), "kit_bytes": int(sum(s.progress_bytes for s in stats))}
    exact = all(job.direct and not job.is_trim and not _syncs(job) for job in jobs)
    if exact:
        moved = device["read_bytes"] + device["write_bytes"] + device["discard_bytes"]
        out["others_bytes"] = max(moved - out["kit_bytes"], 0)
        out["others_ios"] = max(device["read_ios"] + device["write_ios"] + device["discard_ios"] - out["kit_ios"], 0)
    else:
        out["others_bytes"] = out["others_ios"] = None
        out["why_not_judged"] = ("buffered I/O, trims or syncs: the page cache or the filesystem (its journal) "
                                 "stands between kit's I/O and the device's count")
    return out


def _syncs(job):
    """Writes the filesystem answers with its own I/O (journal commits for
    fsync, O_SYNC and O_DSYNC): kit's doing, but not kit's bytes."""
    return job.writes and bool(job.fsync or job.fdatasync or job.end_fsync or job.fsync_on_close
                               or job.sync != "none")


def _machine_during_run(load0, load1, self0, self1, wall_ns, device_io=None):
    """What else the machine did while the job ran: CPU time of everything
    but this process (in CPUs, on average), time stolen by the hypervisor,
    others' I/O on the run's devices (_device_io), and the pressure stall
    figures (which include this job's own waits, so they are shown, not
    judged)."""
    if not wall_ns:
        return None
    own_ns = sum(self1[k] - self0[k] for k in ("utime_ns", "stime_ns"))
    others = max(load1["busy_ns"] - load0["busy_ns"] - own_ns, 0) / wall_ns
    steal = 100.0 * (load1["steal_ns"] - load0["steal_ns"]) / (wall_ns * load1["cpus"])
    out = {"others_cpus": round(others, 3), "steal_pct": round(steal, 2)}
    for kind in ("cpu", "io"):
        if load0[f"psi_{kind}_ns"] is not None and load1[f"psi_{kind}_ns"] is not None:
            out[f"pressure_{kind}_pct"] = round(100.0 * (load1[f"psi_{kind}_ns"] - load0[f"psi_{kind}_ns"]) / wall_ns, 1)
    out["busy"] = others > BUSY_OTHERS_CPUS or steal > BUSY_STEAL_PCT
    if device_io:
        out["device_io"] = device_io
        other = device_io["others_bytes"]
        out["device_busy"] = bool(other is not None and
                                  other > max(BUSY_DEVICE_SHARE * device_io["kit_bytes"], BUSY_DEVICE_MIN_BYTES))
        out["busy"] = out["busy"] or out["device_busy"]
    return out


def _lat(ffi, lat):
    return {"n": lat.n, "min": lat.min if lat.n else 0, "max": lat.max, "sum": float(lat.sum),
            "sumsq": lat.sumsq,
            "hist": np.frombuffer(ffi.buffer(lat.hist), dtype=np.uint64).astype(np.int64)}


def _depth(ffi, arr):
    return np.frombuffer(ffi.buffer(arr), dtype=np.uint64).astype(np.int64)


# struct kit_window and struct kit_io_record, field for field (kit.h)
_N = len(DDIRS)
WINDOW = np.dtype([("end_ns", "u8"), ("span_ns", "u8"), ("bytes", "u8", _N), ("ios", "u8", _N),
                   ("slat_sum", "f8", _N), ("clat_sum", "f8", _N), ("lat_sum", "f8", _N)])
RECORD = np.dtype([("end_ns", "u8"), ("slat", "u8"), ("clat", "u8"), ("lat", "u8"), ("offset", "u8"),
                   ("len", "u4"), ("ddir", "u4")])


def _series(ffi, se):
    """A C time series' closed windows as a numpy array (a copy)."""
    assert ffi.sizeof("struct kit_window") == WINDOW.itemsize
    return np.frombuffer(ffi.buffer(se.w, se.n * WINDOW.itemsize), dtype=WINDOW).copy() if se.n else \
        np.zeros(0, dtype=WINDOW)


def _last_window(ffi, se, end_ns):
    """The window still open at the end, closed there (0 or 1 windows):
    latency logs and kit's series keep it (fio's finalize_logs), fio's
    statistics do not."""
    if not se.interval_ns or not any(se.open.ios[i] for i in range(_N)):
        return np.zeros(0, dtype=WINDOW)
    last = np.frombuffer(ffi.buffer(ffi.addressof(se, "open"), WINDOW.itemsize), dtype=WINDOW).copy()
    last["end_ns"], last["span_ns"] = end_ns, end_ns - se.open_ns
    return last


def _records(ffi, rs):
    assert ffi.sizeof("struct kit_io_record") == RECORD.itemsize
    return np.frombuffer(ffi.buffer(rs.r, rs.n * RECORD.itemsize), dtype=RECORD).copy() if rs.n else \
        np.zeros(0, dtype=RECORD)


def _extract(ffi, s):
    """Copies one thread's C statistics into plain Python/numpy values."""
    return {
        "ddir": {d: {"ios": s.ddir[i].ios, "bytes": s.ddir[i].bytes,
                     "slat": _lat(ffi, s.ddir[i].slat), "clat": _lat(ffi, s.ddir[i].clat),
                     "lat": _lat(ffi, s.ddir[i].lat)} for i, d in enumerate(DDIRS)},
        "ddir_runtime_ns": {d: s.ddir_runtime_ns[i] for i, d in enumerate(DDIRS)},
        "ramp_unfinished": bool(s.ramp_unfinished), "verify_ns": s.verify_ns, "epoch_ns": s.epoch_ns,
        # one per grid, in job.windows_ms's order
        "windows": [_series(ffi, se) for se in s.series],
        "windows_last": [_last_window(ffi, se, s.end_ns) for se in s.series],
        "records": _records(ffi, s.records),
        "series_truncated": bool(s.series_truncated),
        "syncs": s.syncs, "sync_lat": _lat(ffi, s.sync_lat),
        "depth_level": _depth(ffi, s.depth_level), "depth_submit": _depth(ffi, s.depth_submit),
        "depth_complete": _depth(ffi, s.depth_complete),
        "start_ns": s.start_ns, "end_ns": s.end_ns, "tid": s.tid,
        "utime_ns": s.utime_ns, "stime_ns": s.stime_ns, "nvcsw": s.nvcsw, "nivcsw": s.nivcsw,
        "minflt": s.minflt, "majflt": s.majflt, "verified_bytes": s.verified_bytes,
        "interrupted": bool(s.interrupted), "ring_flags": s.ring_flags,
        "threads_started": s.threads_started,
        "clock": "tsc" if s.clock_tsc else "clock_gettime",
        "error": s.error, "error_kind": s.error_kind, "error_file": s.error_file,
        "error_offset": s.error_offset, "error_msg": ffi.string(s.error_msg).decode(errors="replace"),
    }


# ---- after the run ----------------------------------------------------------

def _first_error(job, plan, threads):
    _ffi, lib = native()
    kinds = {lib.KIT_ERR_IO: "io", lib.KIT_ERR_SHORT: "short", lib.KIT_ERR_VERIFY: "verify"}
    for j, t in enumerate(threads):
        if not t["error"]:
            continue
        kind = t["error_kind"]
        err = -t["error"]
        if kind == lib.KIT_ERR_SETUP:
            message = f"{t['error_msg']}: {os.strerror(err)}{setup_hint(job, err)}"
            return {"kind": "setup", "errno": err, "message": message, "job": j}
        path = plan.files[j][t["error_file"]].path if t["error_file"] >= 0 else None
        if path is None:            # the job's, not a file's: rate_min not met
            message = f"{job.name}: {t['error_msg']}"
        else:
            message = f"{path}: {t['error_msg']}"
        if kind != lib.KIT_ERR_VERIFY and path is not None:  # verify messages carry their offsets
            message += f" at offset {t['error_offset']}"
        if kind == lib.KIT_ERR_IO:
            message += io_hint(job, err)
        return {"kind": kinds.get(kind, "io"),
                "errno": err, "message": message, "file": path, "offset": t["error_offset"], "job": j}
    return None
