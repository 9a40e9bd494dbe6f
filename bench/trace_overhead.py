#!/usr/bin/env python3
"""What the tracers cost: IOPS with all tracers (block, sched, uring) on /
IOPS with none, for the same job, measured side by side in one run.

Each ratio comes from `--repeats` pairs of runs, untraced and traced back
to back (which goes first alternates), and is the median of the pairs' own
ratios with its 95 % interval (kit.stats): drift on a shared VM hits both
runs of a pair, and the target is called met or not only when the whole
interval lies on one side of it. The trace is started
before and stopped after each traced run (compiling and loading the program,
~0.3 s, and unloading it are not part of the run's IOPS). The loop cases read
a loop device over a file in /dev/shm: a real block device, but one that
answers in microseconds, so the tracers' per-event cost shows at its worst;
the disk cases read a file on the root disk; the hot-cache cases a file that
kit pre-reads. Needs root.

"floor" runs empty programs on the same tracepoints: what the kernel's
tracepoint hooks cost before the tracers do anything; "all" minus "floor" is
the tracers' own work. The benchmark process is pinned to one CPU (`--cpu`)
because on a 2-CPU VM where the job thread and the loop device's worker land
changes IOPS by 2x from run to run.

    sudo .venv/bin/python bench/trace_overhead.py [--runtime 1] [--repeats 7] [--each] [--cpu N]

--each also runs every tracer alone, to see which one costs what.
"""
import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kit  # noqa: E402
from kit import stats  # noqa: E402
from kit.tracers import Trace, _bpf, block, sched, uring  # noqa: E402

TARGET = 0.97      # traced / untraced IOPS on direct I/O (the tracers issue's target)
CASES = (
    ("direct, loop, psync 4k randread", "loop", dict(ioengine="psync", rw="randread", bs="4k", direct=True)),
    ("direct, loop, io_uring 4k randread qd8", "loop",
     dict(ioengine="io_uring", rw="randread", bs="4k", iodepth=8, direct=True)),
    ("direct, loop, libaio 4k randread qd8", "loop",
     dict(ioengine="libaio", rw="randread", bs="4k", iodepth=8, direct=True)),
    ("direct, disk, psync 4k randread", "disk", dict(ioengine="psync", rw="randread", bs="4k", direct=True)),
    ("direct, disk, io_uring 4k randread qd8", "disk",
     dict(ioengine="io_uring", rw="randread", bs="4k", iodepth=8, direct=True)),
    ("page cache, psync 4k randread (hot)", "disk", dict(ioengine="psync", rw="randread", bs="4k")),
    ("page cache, io_uring 4k randread qd8 (hot)", "disk",
     dict(ioengine="io_uring", rw="randread", bs="4k", iodepth=8)),
)


@contextlib.contextmanager
def loop_device(size_mb=512):
    image = f"/dev/shm/kit-bench-{uuid.uuid4().hex[:8]}.img"
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    dev = None
    try:
        dev = subprocess.run(["losetup", "-f", "--show", image], capture_output=True, text=True,
                             check=True).stdout.strip()
        yield dev
    finally:
        if dev:
            subprocess.run(["losetup", "-d", dev], capture_output=True)
        os.unlink(image)


def major_minor(path):
    """A block device's numbers, or those of the device a file's filesystem is on."""
    st = os.stat(path)
    dev = st.st_rdev if st.st_rdev else st.st_dev
    return os.major(dev), os.minor(dev)


def floor_program():
    """Empty programs on every (raw) tracepoint a full trace attaches."""
    bcc, cflags, source = _bpf.prepare()
    exists = bcc.BPF.tracepoint_exists
    points = [e for e in block.EVENTS if exists("block", e)]
    points += list(sched.EVENTS)
    points += list(uring.tracepoints(exists).values())
    text = "".join(f"RAW_TRACEPOINT_PROBE({e}) {{ return 0; }}\n" for e in points)
    return _bpf.load(text, bcc, cflags, source)


def prepare(args):
    """Pins the benchmark to its CPU and reads the disk cases' file once;
    returns the disk's device numbers."""
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    os.makedirs(args.directory, exist_ok=True)
    kit.run(kit.Job(directory=args.directory, size="256m", rw="read", bs="1m", pre_read=True),
            progress=False, machine=False)
    return [major_minor(os.path.join(args.directory, "."))]


def case_jobs(args, loop, disk):
    """(label, Job, devices to trace) of the cases args.cases selects."""
    for label, where, options in CASES:
        if args.cases not in label:
            continue
        common = dict(runtime=args.runtime, time_based=True, **options)
        if where == "loop":
            yield label, kit.Job(filename=loop, **common), [major_minor(loop)]
        else:
            yield label, kit.Job(directory=args.directory, size="256m", **common), disk


def one_run(job, tracers, devices):
    """IOPS, and the trace summary when traced."""
    if tracers == "floor":
        b = floor_program()
        try:
            return kit.run(job, progress=False, machine=False).iops, None
        finally:
            _bpf.close(b)
    if not tracers:
        return kit.run(job, progress=False, machine=False).iops, None
    with Trace(**{name: True for name in tracers}, devices=devices) as t:
        r = kit.run(job, progress=False, machine=False)
    s = t.summary(pid=os.getpid(), job_tids=[j["kit"]["tid"] for j in r.to_dict()["jobs"]])
    return r.iops, s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--each", action="store_true", help="also each tracer alone")
    ap.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1, help="pin to this CPU (-1: do not)")
    ap.add_argument("--cases", default="", help="only cases whose label contains this text")
    ap.add_argument("--directory", default=os.path.join(os.path.dirname(__file__), "..", "kit-scratch", "bench"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("trace_overhead: tracing and loop devices need root")
    disk = prepare(args)

    variants = {"all": ("block", "sched", "uring"), "floor": "floor"}
    if args.each:
        variants.update({name: (name,) for name in ("block", "sched", "uring")})
    print(f"kit {kit.__version__}: IOPS traced / untraced, pinned to CPU {args.cpu}; all = block+sched+uring, "
          f"floor = empty programs. Each ratio: {args.repeats} pairs of {args.runtime}s runs, untraced and traced "
          f"back to back (the order alternating), the median of the pairs' own ratios [its 95 % interval]; the "
          f"target is called only when the whole interval is on one side of it")
    print(f"{'case':44s} {'tracers':7s} {'off IOPS':>10s} {'on/off':>19s}  {'switches/s':>10s} {'lost':>5s}  verdict")
    worst = {}
    with loop_device() as dev:
        for label, job, devices in case_jobs(args, dev, disk):
            off, pairs = [], {name: [] for name in variants}
            summaries = {name: [] for name in variants}
            for turn in range(args.repeats):
                for name, tracers in variants.items():
                    if turn % 2:
                        (iops, s), untraced = one_run(job, tracers, devices), one_run(job, (), devices)[0]
                    else:
                        untraced, (iops, s) = one_run(job, (), devices)[0], one_run(job, tracers, devices)
                    off.append(untraced)
                    pairs[name].append(iops / untraced)
                    summaries[name].append(s)
            base = statistics.median(off)
            for name in variants:
                med, lo, hi = stats.median_interval(pairs[name])
                done = [s for s in summaries[name] if s]
                rate = statistics.median(s["sched"]["system"]["switches"] * 1e9 / s["duration_ns"]
                                         for s in done) if done and "sched" in done[0] else None
                lost = max((s["lost"]["total"] for s in done), default=0)
                mark = ""
                if label.startswith("direct") and name == "all":
                    mark = "met" if lo >= TARGET else "not met" if hi < TARGET else "undecided"
                    worst[label] = (med, lo, hi, mark)
                print(f"{label:44s} {name:7s} {base:10,.0f} {f'{med:.3f} [{lo:.3f}-{hi:.3f}]':>19s}  "
                      f"{'-' if rate is None else f'{rate:,.0f}':>10s} {lost if done else '-':>5}  {mark}")
                label = ""
            sys.stdout.flush()
    for label, (med, lo, hi, mark) in worst.items():
        print(f"{label}: all tracers {med:.3f} [{lo:.3f}-{hi:.3f}] of untraced, target >= {TARGET}: {mark}")


if __name__ == "__main__":
    main()
