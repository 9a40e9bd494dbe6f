#!/usr/bin/env python3
"""What each tracer program costs per event and per I/O, from the kernel's
own accounting (kernel.bpf_stats_enabled: run_cnt and run_time_ns of every
program, read from /proc/self/fdinfo of its descriptor).

IOPS ratios on a shared 2-vCPU VM move by 10-20 % from run to run; the
programs' own time per event does not, so this is the figure to optimize
against. What it leaves out is the kernel's cost of calling a program at all
(see trace_overhead.py's "floor") and the statistics' own two clock reads.

    sudo .venv/bin/python bench/trace_cost.py [--runtime 1] [--cases loop]

For each case: untraced IOPS (the time one I/O takes), then one traced run;
per program: events per I/O, ns per event, ns per I/O, and the share of an
untraced I/O's time that is.
"""
import argparse
import contextlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kit  # noqa: E402
from kit.tracers import Trace  # noqa: E402
from trace_overhead import case_jobs, loop_device, prepare  # noqa: E402

STATS = "/proc/sys/kernel/bpf_stats_enabled"


@contextlib.contextmanager
def bpf_stats():
    with open(STATS) as f:
        before = f.read().strip()
    with open(STATS, "w") as f:
        f.write("1")
    try:
        yield
    finally:
        with open(STATS, "w") as f:
            f.write(before)


def program_stats(bpf):
    """{function name: (run_cnt, run_time_ns)} of the loaded programs."""
    out = {}
    for name, fn in bpf.funcs.items():
        fields = {}
        with open(f"/proc/self/fdinfo/{fn.fd}") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        out[name.decode() if isinstance(name, bytes) else name] = (int(fields.get("run_cnt", 0)),
                                                                    int(fields.get("run_time_ns", 0)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", type=float, default=1.0)
    ap.add_argument("--cases", default="loop", help="only cases whose label contains this text")
    ap.add_argument("--tracers", default="block,sched,uring")
    ap.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1, help="pin to this CPU (-1: do not)")
    ap.add_argument("--directory", default=os.path.join(os.path.dirname(__file__), "..", "kit-scratch", "bench"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("trace_cost: tracing and loop devices need root")
    disk = prepare(args)
    tracers = {name: True for name in args.tracers.split(",")}
    with loop_device() as dev, bpf_stats():
        for label, job, devices in case_jobs(args, dev, disk):
            untraced = kit.run(job, progress=False, machine=False).iops
            with Trace(**tracers, devices=devices) as t:
                # a program kit kept loaded from an earlier trace carries its
                # counts from then: only this run's are wanted
                before = program_stats(t._bpf)
                r = kit.run(job, progress=False, machine=False)
                after = program_stats(t._bpf)
            stats = {name: (after[name][0] - before.get(name, (0, 0))[0], after[name][1] - before.get(name, (0, 0))[1])
                     for name in after}
            ios = r.iops * args.runtime
            io_ns = 1e9 / untraced
            print(f"\n{label}: untraced {untraced:,.0f} IOPS ({io_ns:,.0f} ns per I/O), traced {r.iops:,.0f}")
            print(f"  {'program':34s} {'events/I/O':>10s} {'ns/event':>9s} {'ns/I/O':>8s} {'share':>7s}")
            total = 0.0
            for name, (count, ns) in sorted(stats.items(), key=lambda kv: -kv[1][1]):
                if not count:
                    continue
                per_io = ns / ios
                total += per_io
                print(f"  {name:34s} {count / ios:10.2f} {ns / count:9.1f} {per_io:8.1f} {per_io / io_ns:7.2%}")
            print(f"  {'all programs':34s} {'':10s} {'':9s} {total:8.1f} {total / io_ns:7.2%}")


if __name__ == "__main__":
    main()
