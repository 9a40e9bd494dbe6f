#!/usr/bin/env python3
"""kit's IOPS / fio's IOPS for the same job, measured side by side in one run.

Absolute numbers on a shared VM are noise; ratios of runs interleaved in the
same minute are not. Both runners ramp for 0.5 s before measuring. Each (case, engine) is measured `--repeats` times,
alternating kit and fio, and the medians are compared. Also prints what kit's
per-I/O timestamps cost (gtod_reduce=1 vs 0, same engine, same file).

    .venv/bin/python bench/overhead.py [--runtime 2] [--repeats 3]
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kit  # noqa: E402
from kit.engines import engine_names, fio_twin  # noqa: E402

CASES = (
    ("page cache, 4k randread, iodepth 1", dict(rw="randread", bs="4k", iodepth=1, direct=False)),
    ("page cache, 4k randread, iodepth 8", dict(rw="randread", bs="4k", iodepth=8, direct=False)),
    ("direct,     4k randread, iodepth 8", dict(rw="randread", bs="4k", iodepth=8, direct=True)),
)
# every engine of the registry but sync (psync's twin here); fio runs those it has
ENGINES = tuple(e for e in engine_names() if e != "sync")
TARGETS = {"page cache": 1.2, "direct": 0.97}
# fio's first few hundred ms run slow (a 0.5 s run shows a third of its
# steady IOPS): both runners ramp before measuring
RAMP = 0.5


def iops(directory, runtime, options, runner="kit", **extra):
    """One time-based run on kit's 256 MiB file, by kit or by fio (kit's fio
    runner: same file, same options, fio's JSON read into kit's schema)."""
    job = kit.Job(directory=directory, size="256m", runtime=runtime, ramp_time=RAMP, time_based=True,
                  **options, **extra)
    return kit.run(job, runner=runner, progress=False, machine=False).iops


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--directory", default=os.path.join(os.path.dirname(__file__), "..", "kit-scratch", "bench"))
    args = ap.parse_args()
    os.makedirs(args.directory, exist_ok=True)
    path = os.path.join(args.directory, "kit.0.0")
    # create and warm the file once; both tools then read the same bytes
    kit.run(kit.Job(directory=args.directory, size="256m", rw="read", bs="1m", pre_read=True),
            progress=False, machine=False)
    # the first fio runs of a session come out slow (a third to a half of the
    # steady IOPS here): run each tool once before measuring
    for runner in ("kit", "fio"):
        iops(args.directory, args.runtime, CASES[0][1], runner=runner, ioengine="psync")

    print(f"kit {kit.__version__} vs fio, runtime {args.runtime}s, median of {args.repeats}, same file {path}")
    print(f"{'case':38s} {'engine':10s} {'kit IOPS':>11s} {'fio IOPS':>11s} {'kit/fio':>8s}  target")
    for label, options in CASES:
        target = next(v for k, v in TARGETS.items() if label.startswith(k))
        for engine in ENGINES:
            kits, fios = [], []
            for _ in range(args.repeats):
                kits.append(iops(args.directory, args.runtime, options, ioengine=engine))
                if fio_twin(engine):
                    fios.append(iops(args.directory, args.runtime, options, runner="fio", ioengine=engine))
            k = statistics.median(kits)
            if fios:
                f = statistics.median(fios)
                ratio = k / f
                mark = "ok" if ratio >= target else "below"
                print(f"{label:38s} {engine:10s} {k:11,.0f} {f:11,.0f} {ratio:8.2f}  >= {target} {mark}")
            else:
                print(f"{label:38s} {engine:10s} {k:11,.0f} {'(no fio twin)':>11s} {'-':>8s}")
        sys.stdout.flush()

    print("\ncost of kit's per-I/O timestamps (IOPS with gtod_reduce=1 / with timing on)")
    for engine, label, options in (("psync", *CASES[0]), ("io_uring", *CASES[1])):
        on, off = [], []
        for _ in range(args.repeats):
            on.append(iops(args.directory, args.runtime, options, ioengine=engine))
            off.append(iops(args.directory, args.runtime, options, ioengine=engine, gtod_reduce=True))
        print(f"{label:38s} {engine:10s} timing off / on = {statistics.median(off) / statistics.median(on):.3f}")


if __name__ == "__main__":
    main()
