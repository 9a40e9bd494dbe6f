"""sched: who switched, why, and how long they were on and off the CPU.

One raw tracepoint, sched_switch, which fires on every context switch of the
machine, so its program is kept to one thread lookup and a few additions
(a raw tracepoint copies no trace record, and its recursion guard is its
own). It fires before the switch, in prev's context (bpf_get_current_*()
describe prev; prev_state is its fourth argument), and it only looks at prev: when prev switched in is known per CPU
(the previous switch there), so prev's on-CPU interval ends now and its
off-CPU interval ended when it switched in. The off-CPU interval is thus
recorded one on-CPU period late, and the last one of a thread (still off CPU
when the trace stops) is not recorded at all.

Voluntary/involuntary follows the kernel's own nvcsw/nivcsw: prev_state is
the reported task state, and a running (R) or preempted (R+, the
TASK_REPORT_MAX bit) task did not give the CPU up by itself.

Threads are grouped into roles afterwards, in Python, from what the kernel
recorded (tid, tgid, comm), because only the caller knows the job's threads.
"""
import os

import numpy as np

from .. import hist, host
from . import _bpf

NAME = "sched"
EVENTS = ("sched_switch",)
REQUIRED = EVENTS
WANTS = ", ".join(REQUIRED)
FRAME = "sched_threads"         # the frame under the tracer's own name
tracepoints, complete = _bpf.same_named(NAME, EVENTS, REQUIRED)
ROLES = ("job", "helper", "io_uring_wq", "io_uring_sqpoll", "kworker", "other")
TOP_THREADS = 50

BPF_TEXT = r"""
/* prev_state: bits below TASK_REPORT_MAX are sleep states (S, D, I, ...);
   TASK_REPORT_MAX itself marks a preemption */
#define TASK_REPORT_MAX 0x100

struct thread_stats {
    u64 voluntary;
    u64 involuntary;
    u64 oncpu_ns;
    u64 offcpu_ns;
    u64 offcpu_n;        /* off-CPU intervals: the mean never depends on the histogram's room */
    u64 offcpu_since;    /* when it last left the CPU */
    u32 tgid;
    char comm[16];
    u32 pad;
};
struct sched_cpu {
    u64 oncpu_since;     /* when the task now running here was switched in */
    u64 switches;        /* every switch on this CPU */
    u64 idle_switches;   /* switches away from the idle task */
};
struct offcpu_key { u32 tid; u32 bucket; };

/* per thread (tid) seen leaving a CPU */
BPF_HASH(sched_threads, u32, struct thread_stats, 16384);
/* per CPU: the running task's start, switch counts (no atomics needed) */
BPF_PERCPU_ARRAY(sched_cpu, struct sched_cpu, 1);
/* per (tid, plat bucket): off-CPU intervals, ns, of the tracing process's
   threads only (a busy machine's every thread would overflow any map) */
BPF_HASH(sched_offcpu, struct offcpu_key, u64, 65536);

static __always_inline struct thread_stats *sched_thread_of(u32 tid)
{
    struct thread_stats *t = sched_threads.lookup(&tid);
    if (t)
        return t;
    struct thread_stats fresh = {};
    fresh.tgid = bpf_get_current_pid_tgid() >> 32;     /* current is prev here */
    bpf_get_current_comm(&fresh.comm, sizeof(fresh.comm));
    if (sched_threads.insert(&tid, &fresh)) {
        count_lost(LOST_SCHED_THREADS_FULL);
        return 0;
    }
    return sched_threads.lookup(&tid);
}

static __always_inline void sched_offcpu_add(u32 tid, u32 bucket)
{
    struct offcpu_key key = {.tid = tid, .bucket = bucket};
    u64 *n = sched_offcpu.lookup(&key);
    if (n) {
        /* only the CPU prev is leaving writes prev's entries: no atomics needed */
        (*n)++;
        return;
    }
    u64 one = 1;
    if (sched_offcpu.insert(&key, &one))
        count_lost(LOST_SCHED_OFFCPU_FULL);
}

RAW_TRACEPOINT_PROBE(sched_switch)
{
    u64 now = bpf_ktime_get_ns();
    u32 zero = 0;
    struct sched_cpu *cpu = sched_cpu.lookup(&zero);
    if (!cpu)
        return 0;
    u64 switched_in = cpu->oncpu_since;    /* when prev got this CPU; 0 before the first switch seen */
    cpu->oncpu_since = now;
    cpu->switches++;

    u32 prev = (u32)bpf_get_current_pid_tgid();
    if (!prev) {
        cpu->idle_switches++;
        return 0;
    }
    struct thread_stats *t = sched_thread_of(prev);
    if (!t)
        return 0;
    if (ctx->args[3] & (TASK_REPORT_MAX - 1))
        t->voluntary++;
    else
        t->involuntary++;
    if (switched_in) {
        t->oncpu_ns += now - switched_in;
        if (t->offcpu_since && t->offcpu_since < switched_in) {
            u64 off = switched_in - t->offcpu_since;
            t->offcpu_ns += off;
            t->offcpu_n++;
            if (t->tgid == TRACER_TGID)
                sched_offcpu_add(prev, plat_idx(off));
        }
    }
    t->offcpu_since = now;
    return 0;
}
"""


def bpf_text(devices, events):
    return f"#define TRACER_TGID {os.getpid()}\n" + BPF_TEXT


def read(bpf, plain, items, percpu_sum):
    threads = {}
    for tid, t in items(bpf[b"sched_threads"], plain):
        t.pop("offcpu_since", None)
        threads[tid] = t
    offcpu = {}
    for key, n in items(bpf[b"sched_offcpu"], plain):
        offcpu.setdefault(key["tid"], []).append((key["bucket"], n))
    cpus = [plain(c) for c in bpf[b"sched_cpu"][0]]
    return {"threads": threads, "offcpu": offcpu,
            "switches": sum(c["switches"] for c in cpus),
            "idle_switches": sum(c["idle_switches"] for c in cpus)}


def role(tid, tgid, comm, pid, job_tids, helper_tids=None):
    """The job's threads; the threads born during the run to help it (the
    pool, glibc's AIO threads; when not known, the process's other threads
    but its main one), never the process's older threads (Jupyter's own,
    kit's detach pool); io_uring's worker and SQPOLL threads (threads of the
    process that owns the ring); kworkers; everything else."""
    if tid in job_tids:
        return "job"
    ours = pid is None or tgid == pid
    if comm.startswith("iou-wrk-") and ours:
        return "io_uring_wq"
    if comm.startswith("iou-sqp-") and ours:
        return "io_uring_sqpoll"
    if comm.startswith("kworker/"):
        return "kworker"
    if pid is not None and tgid == pid and tid != pid and (helper_tids is None or tid in helper_tids):
        return "helper"
    return "other"


def _threads(raw, pid, job_tids, helper_tids=None):
    rows = []
    for tid, t in raw["threads"].items():
        rows.append({"tid": tid, "tgid": t["tgid"], "comm": t["comm"],
                     "role": role(tid, t["tgid"], t["comm"], pid, job_tids, helper_tids),
                     "voluntary": t["voluntary"], "involuntary": t["involuntary"],
                     "switches": t["voluntary"] + t["involuntary"],
                     "oncpu_ns": t["oncpu_ns"], "offcpu_ns": t["offcpu_ns"], "offcpu_n": t["offcpu_n"]})
    rows.sort(key=lambda r: (-r["switches"], r["tid"]))
    return rows


def _offcpu_counts(raw, tids):
    counts = np.zeros(hist.PLAT_NR, dtype=np.int64)
    for tid in tids:
        for bucket, n in raw["offcpu"].get(tid, ()):
            counts[min(bucket, hist.PLAT_NR - 1)] += n
    return counts


def summary(raw, ctx):
    pid, job_tids = ctx.pid, {int(t) for t in ctx.job_tids}
    threads = _threads(raw, pid, job_tids, ctx.helper_tids)
    roles = {}
    for name in ROLES:
        members = [r for r in threads if r["role"] == name]
        entry = {"threads": len(members)}
        for k in ("voluntary", "involuntary", "switches", "oncpu_ns", "offcpu_ns"):
            entry[k] = int(sum(r[k] for r in members))
        counts = _offcpu_counts(raw, [r["tid"] for r in members])
        n = int(sum(r["offcpu_n"] for r in members))
        entry["offcpu"] = {"N": n, "mean": entry["offcpu_ns"] / n if n else 0.0}
        if n and int(counts.sum()):         # the tracing process's threads: their histogram too
            entry["offcpu"]["percentile"] = hist.percentiles(counts, int(counts.sum()))
            entry["offcpu"]["bins"] = hist.to_bins(counts)
        entry["comms"] = sorted({host.thread_kind(r["comm"]) for r in members})[:20]
        roles[name] = entry
    return {
        "system": {"switches": int(raw["switches"]), "idle_switches": int(raw["idle_switches"]),
                   "voluntary": int(sum(r["voluntary"] for r in threads)),
                   "involuntary": int(sum(r["involuntary"] for r in threads)),
                   "threads": len(threads)},
        "roles": roles,
        "threads": threads[:TOP_THREADS],
    }


def text(s):
    roles = ", ".join(f"{name} {v['switches']:,}" for name, v in (s.get("roles") or {}).items() if v.get("switches"))
    return [f"sched: {s['system']['switches']:,} switches system-wide; by role: {roles or 'none'}"]


def frames(raw, ctx):
    import pandas as pd
    pid, job_tids = ctx.pid, {int(t) for t in ctx.job_tids}
    threads = _threads(raw, pid, job_tids, ctx.helper_tids)
    s = summary(raw, ctx)
    role_rows = [{"role": name, **{k: v for k, v in entry.items() if k not in ("offcpu", "comms")},
                  "offcpu_mean_ns": entry["offcpu"]["mean"]} for name, entry in s["roles"].items()]
    role_of = {r["tid"]: r["role"] for r in threads}
    offcpu_rows = [{"tid": tid, "role": role_of.get(tid, "other"), "bucket_ns": int(hist.BUCKET_VALUES[b]),
                    "count": int(n)}
                   for tid, samples in sorted(raw["offcpu"].items()) for b, n in sorted(samples)]
    return {
        "sched_threads": pd.DataFrame(threads, columns=["tid", "tgid", "comm", "role", "voluntary",
                                                        "involuntary", "switches", "oncpu_ns", "offcpu_ns"]),
        "sched_roles": pd.DataFrame(role_rows, columns=["role", "threads", "voluntary", "involuntary",
                                                        "switches", "oncpu_ns", "offcpu_ns", "offcpu_mean_ns"]),
        "sched_offcpu": pd.DataFrame(offcpu_rows, columns=["tid", "role", "bucket_ns", "count"]),
    }
