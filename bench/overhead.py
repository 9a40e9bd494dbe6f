#!/usr/bin/env python3
"""kit's and fio's IOPS against the bare loop (bench/limit.c), per engine,
measured side by side in one run.

The bare loop is a C loop compiled the way kit's engines are that records
only a count and the summed latency: the most an engine's system calls give
on this machine. kit/bare says what kit's instrument costs (full latency
histograms and depth accounting on); fio/bare the same for fio.

Absolute numbers on a shared VM are noise; ratios of runs interleaved in the
same minute are less so. Each engine is measured in `--repeats` short
rounds; a round runs kit, fio and the bare loop back to back (the order
rotated from round to round) on the same hot-cache 256 MiB file, each
ramping 0.5 s first, and yields its own ratios. The median of those ratios
is printed with its 95 % interval (kit.stats, the reports' statistics), and
the target is called met or not met only when the whole interval is on one
side of it: on this VM a single run moves by +-15 % from one second to the
next, so rounds must be short and paired, and a verdict must say when the
measurement cannot tell. A second ratio divides each tool's IOPS by the CPU time
of its job thread: on a machine where other work takes CPUs away, that is
what the IOPS ratio would be on a quiet one (every case here is CPU-bound).
The last table is what kit's per-I/O timestamps cost (gtod_reduce=1 vs 0).
All three tools run on the same CPU (--cpu, the last by default; -1: not
pinned), so that none gets a CPU the others do not. Pinned and unpinned
runs differ here (psync kit/bare 0.91 pinned, 0.93 not, on 2026-12-01), so
a figure should say which it was.

    .venv/bin/python bench/overhead.py [--runtime 0.5] [--repeats 21] [--fio-every 3] [--cpu 1] [--cases psync,...]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import kit  # noqa: E402
from kit import stats  # noqa: E402

# (label, kit's options, the bare loop's engine or None); the seed's hot-cache job
CASES = (
    ("psync qd1", dict(ioengine="psync", iodepth=1), "psync"),
    ("posixaio qd8", dict(ioengine="posixaio", iodepth=8), "posixaio"),
    ("libaio qd8", dict(ioengine="libaio", iodepth=8), "libaio"),
    ("io_uring qd8", dict(ioengine="io_uring", iodepth=8), "io_uring"),
    ("io_uring qd8 fixedbufs+registerfiles", dict(ioengine="io_uring", iodepth=8, fixedbufs=True,
                                                  registerfiles=True), "io_uring-fixed"),
    ("null qd8", dict(ioengine="null", iodepth=8), None),
)
COMMON = dict(rw="randread", bs="4k", direct=False, size="256m", time_based=True)
TARGET_BARE = 0.95          # kit at least this share of the bare loop
TARGET_NULL = 2.0           # kit's null engine at least this many times fio's
# fio's first few hundred ms run slow (a 0.5 s run shows a third of its
# steady IOPS): every tool ramps before measuring
RAMP = 0.5
# kit's engines are built with these (kit/engines/build.py)
CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra"]


def build_bare(directory):
    exe = os.path.join(directory, "limit")
    subprocess.run(["gcc", *CFLAGS, "-o", exe, os.path.join(HERE, "limit.c"), "-luring", "-laio", "-lrt"],
                   check=True)
    return exe


def bare(exe, path, runtime, engine, iodepth):
    """(IOPS, IOPS per CPU-second of the loop's thread)"""
    out = subprocess.run([exe, engine, path, str(runtime), str(iodepth), str(RAMP)], capture_output=True,
                         text=True, check=True).stdout
    v = dict(kv.split("=") for kv in out.split())
    ios, seconds, cpu = int(v["ios"]), float(v["seconds"]), float(v["cpu_seconds"])
    return ios / seconds, ios / cpu if cpu else float("nan")


def tool(directory, runtime, options, runner="kit", **extra):
    """(IOPS, IOPS per CPU-second of the job thread) of one kit or fio run
    (kit's fio runner: same file, same options, fio's JSON in kit's schema)."""
    job = kit.Job(directory=directory, runtime=runtime, ramp_time=RAMP, **COMMON, **options, **extra)
    r = kit.run(job, runner=runner, progress=False, machine=False)
    total = r.total
    cpu_s = (total["usr_cpu"] + total["sys_cpu"]) / 100 * total["read"]["runtime"] / 1000
    return r.iops, r.iops * total["read"]["runtime"] / 1000 / cpu_s if cpu_s else float("nan")


def ratios(rounds, a, b, which=0):
    """a/b per round that ran both (which=0: IOPS, 1: IOPS per CPU-second)"""
    return [r[a][which] / r[b][which] for r in rounds if a in r and b in r]


def verdict(values, target):
    """met / not met / undecided, from the 95 % interval of the median of the
    rounds' ratios: a ratio whose interval straddles the target is not called."""
    med, lo, hi = stats.median_interval(values)
    if lo >= target:
        return "met"
    if hi < target:
        return "not met"
    return "undecided"


def cell(values):
    med, lo, hi = stats.median_interval(values)
    return f"{med:.2f} [{lo:.2f}-{hi:.2f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--fio-every", type=int, default=1,
                    help="run fio in every Nth round only (kit/fio from those rounds): more kit/bare rounds per minute")
    ap.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1,
                    help="pin kit, fio and the bare loop to this CPU (-1: do not); the same CPU for all three")
    ap.add_argument("--cases", default="", help="comma-separated labels' first words (psync,libaio,...); all if empty")
    ap.add_argument("--directory", default=os.path.join(HERE, "..", "kit-scratch", "bench"))
    args = ap.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})     # inherited by kit's job threads, fio and the bare loop
    os.makedirs(args.directory, exist_ok=True)
    path = os.path.join(args.directory, "kit.0.0")
    work = tempfile.mkdtemp(prefix="kit-bench-")
    try:
        exe = build_bare(work)
        # create and warm the file once; every tool then reads the same bytes
        kit.run(kit.Job(directory=args.directory, size="256m", rw="read", bs="1m", pre_read=True),
                progress=False, machine=False)
        # the first fio runs of a session come out slow: each tool once before measuring
        tool(args.directory, 0.5, CASES[0][1])
        tool(args.directory, 0.5, CASES[0][1], runner="fio")
        bare(exe, path, 0.5, "psync", 1)
        report(args, exe, path)
        timing_cost(args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure_round(args, exe, path, options, bare_engine, turn):
    """kit, fio and the bare loop back to back, the order rotated every round
    so that none is always first after a pause or last before one."""
    runs = {"kit": lambda: tool(args.directory, args.runtime, options)}
    if turn % args.fio_every == 0:
        runs["fio"] = lambda: tool(args.directory, args.runtime, options, runner="fio")
    if bare_engine:
        runs["bare"] = lambda: bare(exe, path, args.runtime, bare_engine, options["iodepth"])
    order = list(runs)
    order = order[turn % len(order):] + order[:turn % len(order)]
    return {name: runs[name]() for name in order}


def report(args, exe, path):
    print(f"kit {kit.__version__}, fio and the bare loop (bench/limit.c), 4 KiB random reads of a hot 256 MiB "
          f"file; {args.repeats} rounds of {args.runtime}s after {RAMP}s ramp per tool, back to back, order "
          f"rotated (fio in every {args.fio_every}. round); "
          f"{'all on CPU ' + str(args.cpu) if args.cpu >= 0 else 'not pinned'}; each ratio is the median of the "
          f"rounds' own ratios [its 95 % interval]; the verdict needs the whole interval on one side of the target")
    head = (f"{'case':38s} {'kit IOPS':>10s} {'bare IOPS':>10s} {'kit/bare':>17s} {'fio/bare':>17s} "
            f"{'kit/fio':>17s} {'per CPU-s kit/bare':>19s}  verdict (kit/bare >= {TARGET_BARE})")
    print(head)
    wanted = [w for w in args.cases.split(",") if w]
    for label, options, bare_engine in CASES:
        if wanted and label.split()[0] not in wanted:
            continue
        rounds = [measure_round(args, exe, path, options, bare_engine, turn) for turn in range(args.repeats)]
        kit_iops = statistics.median(r["kit"][0] for r in rounds)
        kit_fio = ratios(rounds, "kit", "fio")
        if bare_engine:
            kb, fb, kbc = ratios(rounds, "kit", "bare"), ratios(rounds, "fio", "bare"), ratios(rounds, "kit", "bare", 1)
            bare_iops = statistics.median(r["bare"][0] for r in rounds)
            print(f"{label:38s} {kit_iops:10,.0f} {bare_iops:10,.0f} {cell(kb):>17s} {cell(fb):>17s} "
                  f"{cell(kit_fio):>17s} {cell(kbc):>19s}  {verdict(kb, TARGET_BARE)}")
        else:
            print(f"{label:38s} {kit_iops:10,.0f} {'-':>10s} {'-':>17s} {'-':>17s} {cell(kit_fio):>17s} "
                  f"{'-':>19s}  kit/fio >= {TARGET_NULL}: {verdict(kit_fio, TARGET_NULL)}")
        sys.stdout.flush()


def timing_cost(args):
    print("\ncost of kit's per-I/O timestamps (IOPS with gtod_reduce=1 / with timing on, paired rounds)")
    for label, options, _ in (CASES[0], CASES[3]):
        ratios_off_on = []
        for turn in range(args.repeats):
            runs = {"on": {}, "off": dict(gtod_reduce=True)}
            order = ("on", "off") if turn % 2 else ("off", "on")
            iops = {name: tool(args.directory, args.runtime, options, **runs[name])[0] for name in order}
            ratios_off_on.append(iops["off"] / iops["on"])
        print(f"{label:38s} timing off / on = {cell(ratios_off_on)}")


if __name__ == "__main__":
    main()
