#!/usr/bin/env python3
"""kit's and fio's IOPS against the bare loop (bench/limit.c), per engine,
measured side by side in one run.

The bare loop is a C loop compiled the way kit's engines are that records
only a count and the summed latency: the most an engine's system calls give
on this machine. kit/bare says what kit's instrument costs (full latency
histograms and depth accounting on); fio/bare the same for fio.

Absolute numbers on a shared VM are noise; ratios of runs interleaved in the
same minute are less so. Each engine is measured `--repeats` times, kit, fio
and the bare loop in turn, all on the same hot-cache 256 MiB file, each
ramping 0.5 s first; medians are compared and the spread of the per-round
ratios is printed. A second ratio divides each tool's IOPS by the CPU time
of its job thread: on a machine where other work takes CPUs away, that is
what the IOPS ratio would be on a quiet one (every case here is CPU-bound).
The last table is what kit's per-I/O timestamps cost (gtod_reduce=1 vs 0).

    .venv/bin/python bench/overhead.py [--runtime 2] [--repeats 5]
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


def spread(values):
    return f"{min(values):.2f}-{max(values):.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--directory", default=os.path.join(HERE, "..", "kit-scratch", "bench"))
    args = ap.parse_args()
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


def report(args, exe, path):
    print(f"kit {kit.__version__}, fio and the bare loop (bench/limit.c), 4 KiB random reads of a hot 256 MiB "
          f"file, runtime {args.runtime}s after {RAMP}s ramp, median of {args.repeats} interleaved rounds "
          f"(spread: the rounds' lowest-highest ratio)")
    head = (f"{'case':38s} {'kit IOPS':>10s} {'fio IOPS':>10s} {'bare IOPS':>10s} {'kit/bare':>8s} "
            f"{'fio/bare':>8s} {'kit/fio':>7s}   per CPU-s: {'kit/bare':>8s} {'fio/bare':>8s}  spread kit/bare")
    print(head)
    for label, options, bare_engine in CASES:
        rows = {"kit": [], "fio": [], "bare": []}
        for _ in range(args.repeats):
            rows["kit"].append(tool(args.directory, args.runtime, options))
            rows["fio"].append(tool(args.directory, args.runtime, options, runner="fio"))
            if bare_engine:
                rows["bare"].append(bare(exe, path, args.runtime, bare_engine, options["iodepth"]))
        med = {k: (statistics.median(v[0] for v in vs), statistics.median(v[1] for v in vs)) if vs else None
               for k, vs in rows.items()}
        kit_fio = med["kit"][0] / med["fio"][0]
        if med["bare"]:
            rounds = [k[0] / b[0] for k, b in zip(rows["kit"], rows["bare"])]
            kb, fb = med["kit"][0] / med["bare"][0], med["fio"][0] / med["bare"][0]
            kbc, fbc = med["kit"][1] / med["bare"][1], med["fio"][1] / med["bare"][1]
            mark = "ok" if kbc >= TARGET_BARE else f"below {TARGET_BARE}"
            print(f"{label:38s} {med['kit'][0]:10,.0f} {med['fio'][0]:10,.0f} {med['bare'][0]:10,.0f} "
                  f"{kb:8.2f} {fb:8.2f} {kit_fio:7.2f}              {kbc:8.2f} {fbc:8.2f}  {spread(rounds)}  {mark}")
        else:
            rounds = [k[0] / f[0] for k, f in zip(rows["kit"], rows["fio"])]
            mark = "ok" if kit_fio >= TARGET_NULL else f"below {TARGET_NULL}"
            print(f"{label:38s} {med['kit'][0]:10,.0f} {med['fio'][0]:10,.0f} {'-':>10s} {'-':>8s} {'-':>8s} "
                  f"{kit_fio:7.2f}  (kit/fio spread {spread(rounds)}, target >= {TARGET_NULL}: {mark})")
        sys.stdout.flush()


def timing_cost(args):
    print("\ncost of kit's per-I/O timestamps (IOPS with gtod_reduce=1 / with timing on)")
    for label, options, _ in (CASES[0], CASES[3]):
        on, off = [], []
        for _ in range(args.repeats):
            on.append(tool(args.directory, args.runtime, options)[0])
            off.append(tool(args.directory, args.runtime, options, gtod_reduce=True)[0])
        print(f"{label:38s} timing off / on = {statistics.median(off) / statistics.median(on):.3f}")


if __name__ == "__main__":
    main()
