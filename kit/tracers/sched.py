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

Voluntary/involuntary follows the kernel's own nvcsw/nivcsw (__schedule):
voluntary when not preempted (the first argument) and going to sleep (its
raw state, the fourth, not 0).

Threads are grouped into roles afterwards, in Python, from what the kernel
recorded (tid, tgid, comm), because only the caller knows the job's threads.

Processes other than the tracing one (a network run's server and load
generator) are watched when the caller names them during the trace
(watch(): pid -> label, kept in the sched_watch map): their threads get the
tracing process's rows (off-CPU histograms, stacks, run-queue latency), their
names are kept current (a thread names itself after it first runs, a
process execs after nsenter), and their roles are "<label>/<kind>".
A thread seen before its process was named is rechecked on its next switch
(sched_watch_gen changes with every watch()).
"""
import contextlib
import os

import numpy as np

from .. import hist, host
from . import _bpf, _btf as btf

NAME = "sched"
EVENTS = ("sched_switch",)
REQUIRED = EVENTS
WANTS = ", ".join(REQUIRED)
FRAME = "sched_threads"         # the frame under the tracer's own name
tracepoints, complete = _bpf.same_named(NAME, EVENTS, REQUIRED)
ROLES = ("job", "helper", "io_uring_wq", "io_uring_sqpoll", "kworker", "other")
TOP_THREADS = 50

BPF_TEXT = r"""
struct thread_stats {
    u64 voluntary;
    u64 involuntary;
    u64 oncpu_ns;
    u64 offcpu_ns;
    u64 offcpu_n;        /* off-CPU intervals: the mean never depends on the histogram's room */
    u64 offcpu_since;    /* when it last left the CPU */
    u64 runq_ns;         /* waiting for a CPU: woken (or preempted) -> on CPU */
    u64 runq_n;
    u32 tgid;
    char comm[16];
    s32 stack;           /* the kernel stack it last left the CPU from (SCHED_STACKS) */
    s32 row;             /* its sched_offcpu row (the tracing process's threads), else -1 */
    u32 watch_gen;       /* the sched_watch_gen it was last checked against */
    u32 watched;         /* the tracing process's or a watched process's thread */
};
struct sched_label { char label[16]; };
struct sched_cpu {
    u64 oncpu_since;     /* when the task now running here was switched in */
    u64 switches;        /* every switch on this CPU */
    u64 idle_switches;   /* switches away from the idle task */
};
struct offcpu_key { u32 tid; u32 bucket; };

/* per thread (tid) seen leaving a CPU: a slot of an array indexed by the
   tid's low bits, or, when another thread holds that slot, the hash. The
   array is the common case and costs an index; the hash costs a hashed,
   chained lookup, about 65 ns of a switch's 170 here (bpf_stats). */
struct thread_slot {
    u32 tid;             /* 0: free */
    u32 pad;
    u64 claims;          /* the first CPU to count one owns the slot (u64: this LLVM's BPF fetch-add
                            returns only 64-bit values, and has no compare-and-swap) */
    struct thread_stats s;
};
BPF_ARRAY(sched_thread_slots, struct thread_slot, THREAD_SLOTS);
BPF_HASH(sched_threads, u32, struct thread_stats, 16384);
/* per CPU: the running task's start, switch counts (no atomics needed) */
BPF_PERCPU_ARRAY(sched_cpu, struct sched_cpu, 1);
/* off-CPU intervals (ns, plat buckets) of the tracing process's threads
   only, a row each, handed out as they first leave a CPU; an array, not a
   hash keyed by (tid, bucket): one lookup less per switch, and no overflow
   on a busy machine */
/* the last two rows are shared by the threads that found none of their own
   (stdasync starts one per I/O): those an engine named kit-..., and the rest */
BPF_ARRAY(sched_offcpu, struct plat_row, OFFCPU_ROWS + 2);
BPF_ARRAY(sched_offcpu_tid, u32, OFFCPU_ROWS);          /* whose row it is */
BPF_ARRAY(sched_offcpu_rows_used, u64, 1);
/* processes the caller named during the trace (tgid -> label), and how many
   times it did: a change makes each thread check again on its next switch */
BPF_HASH(sched_watch, u32, struct sched_label, WATCH_SLOTS);
BPF_ARRAY(sched_watch_gen, u32, 1);
#ifdef SCHED_RUNQ
/* per thread: when it became runnable (woken, or preempted) */
BPF_HASH(sched_runnable, u32, u64, 65536);
/* per (tid, plat bucket): run-queue latency of the tracing process's threads */
BPF_HASH(sched_runq, struct offcpu_key, u64, 65536);
#endif
#ifdef SCHED_STACKS
struct stack_key { u32 tid; s32 stack; };
struct stack_time { u64 ns; u64 n; };
BPF_STACK_TRACE(sched_stack_traces, 16384);
/* per (tid, kernel stack it left the CPU from): off-CPU time, of the tracing process's threads */
BPF_HASH(sched_stack_offcpu, struct stack_key, struct stack_time, 16384);
#endif

/* a thread of the tracing process or of a watched one: a sched_offcpu row */
static __always_inline void sched_watch_thread(struct thread_stats *t, u32 tid)
{
    u32 zero = 0;
    u32 tgid = t->tgid;
    if (t->watched || (tgid != TRACER_TGID && !sched_watch.lookup(&tgid)))
        return;
    t->watched = 1;
    u64 *used = sched_offcpu_rows_used.lookup(&zero);
    if (used) {
        u64 row = __sync_fetch_and_add(used, 1);
        if (row < OFFCPU_ROWS) {
            u32 r = (u32)row;
            u32 *owner = sched_offcpu_tid.lookup(&r);
            if (owner)
                *owner = tid;
            t->row = (s32)r;
        } else {
            bool named = t->comm[0] == 'k' && t->comm[1] == 'i' && t->comm[2] == 't' && t->comm[3] == '-';
            t->row = named ? OFFCPU_ROWS : OFFCPU_ROWS + 1;
        }
    }
}

/* a thread's statistics, if it has any: a thread keeps where it was put
   first (slots are never given back during a trace) */
static __always_inline struct thread_stats *sched_thread_find(u32 tid)
{
    u32 i = tid & (THREAD_SLOTS - 1);
    struct thread_slot *slot = sched_thread_slots.lookup(&i);
    if (slot && slot->tid == tid)
        return &slot->s;
    return sched_threads.lookup(&tid);
}

static __always_inline struct thread_stats *sched_thread_of(u32 tid)
{
    u32 zero = 0;
    u32 *gen = sched_watch_gen.lookup(&zero);
    u32 now_gen = gen ? *gen : 0;
    struct thread_stats *t = sched_thread_find(tid);
    if (t) {
        if (t->watch_gen != now_gen) {     /* the caller named a process since: is it this one's? */
            t->watch_gen = now_gen;
            sched_watch_thread(t, tid);
        }
        /* its name now, not at its first switch (threads name themselves as they start): on its
           first 16 switches, then every 64th, not on each (a helper call per switch) */
        u64 seen = t->voluntary + t->involuntary;
        if (t->watched && t->tgid != TRACER_TGID && (seen < 16 || (seen & 63) == 0))
            bpf_get_current_comm(&t->comm, sizeof(t->comm));
        return t;
    }
    struct thread_stats fresh = {};
    fresh.tgid = bpf_get_current_pid_tgid() >> 32;     /* current is prev here */
    fresh.stack = -1;
    fresh.row = -1;
    fresh.watch_gen = now_gen;
    bpf_get_current_comm(&fresh.comm, sizeof(fresh.comm));     /* before: a shared row goes by it */
    sched_watch_thread(&fresh, tid);
    u32 i = tid & (THREAD_SLOTS - 1);
    struct thread_slot *slot = sched_thread_slots.lookup(&i);
    /* the slot is taken atomically: two CPUs may switch out two threads of
       the same low bits at once (only the thread itself fills it after) */
    if (slot && !slot->tid && __sync_fetch_and_add(&slot->claims, 1) == 0) {
        slot->s = fresh;
        slot->tid = tid;
        return &slot->s;
    }
    if (sched_threads.insert(&tid, &fresh)) {
        count_lost(LOST_SCHED_THREADS_FULL);
        return 0;
    }
    return sched_threads.lookup(&tid);
}

static __always_inline void sched_offcpu_add(struct thread_stats *t, u32 bucket)
{
    u32 r = (u32)t->row;
    struct plat_row *row = t->row >= 0 ? sched_offcpu.lookup(&r) : 0;
    if (!row || bucket >= PLAT_NR) {
        count_lost(LOST_SCHED_OFFCPU_FULL);
        return;
    }
    /* only the CPU prev is leaving writes prev's own row: no atomics needed;
       the shared row is written from any CPU */
    if (r >= OFFCPU_ROWS)
        __sync_fetch_and_add(&row->n[bucket], 1);
    else
        row->n[bucket]++;
}

KIT_PROBE(sched_switch)
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
    /* as the kernel counts nvcsw: not preempted, and going to sleep */
    bool voluntary = !ctx->args[0] && ctx->args[3];
    if (voluntary)
        t->voluntary++;
    else
        t->involuntary++;
    if (switched_in) {
        t->oncpu_ns += now - switched_in;
        if (t->offcpu_since && t->offcpu_since < switched_in) {
            u64 off = switched_in - t->offcpu_since;
            t->offcpu_ns += off;
            t->offcpu_n++;
            if (t->watched)
                sched_offcpu_add(t, plat_idx(off));
#ifdef SCHED_STACKS
            if (t->watched && t->stack >= 0) {
                struct stack_key key = {.tid = prev, .stack = t->stack};
                struct stack_time *st = sched_stack_offcpu.lookup(&key);
                if (st) {
                    st->ns += off;
                    st->n++;
                } else {
                    struct stack_time first = {.ns = off, .n = 1};
                    sched_stack_offcpu.update(&key, &first);
                }
            }
#endif
        }
    }
    t->offcpu_since = now;
#ifdef SCHED_STACKS
    if (t->watched)
        t->stack = sched_stack_traces.get_stackid(ctx, 0);
#endif
#ifdef SCHED_RUNQ
    if (!voluntary)
        sched_runnable.update(&prev, &now);     /* preempted: runnable from now */
    {
        u32 next = 0;
        bpf_probe_read_kernel(&next, sizeof(next), (void *)ctx->args[2] + OFF_TASK_STRUCT_PID);
        u64 *since = next ? sched_runnable.lookup(&next) : 0;
        if (since) {
            u64 wait = now - *since;
            sched_runnable.delete(&next);
            struct thread_stats *n = sched_thread_find(next);
            if (n) {
                n->runq_ns += wait;
                n->runq_n++;
                if (n->watched) {
                    struct offcpu_key key = {.tid = next, .bucket = plat_idx(wait)};
                    u64 *c = sched_runq.lookup(&key);
                    if (c) {
                        __sync_fetch_and_add(c, 1);
                    } else {
                        u64 one = 1;
                        sched_runq.update(&key, &one);
                    }
                }
            }
        }
    }
#endif
    return 0;
}

#ifdef SCHED_RUNQ
static __always_inline int sched_woken(void *p)
{
    u32 tid = 0;
    u64 now = bpf_ktime_get_ns();
    bpf_probe_read_kernel(&tid, sizeof(tid), p + OFF_TASK_STRUCT_PID);
    if (tid)
        sched_runnable.update(&tid, &now);
    return 0;
}

KIT_PROBE(sched_wakeup) { return sched_woken((void *)ctx->args[0]); }
KIT_PROBE(sched_wakeup_new) { return sched_woken((void *)ctx->args[0]); }
#endif
"""


THREAD_SLOTS = 8192      # threads whose statistics sit in the array (a power of 2); the rest go to the hash
OFFCPU_ROWS = 256        # threads of the tracing and watched processes with an off-CPU histogram (15 KiB each)
WATCH_SLOTS = 16         # processes a trace can be told about


def bpf_text(devices, events, options):
    text = (f"#define TRACER_TGID {os.getpid()}\n#define OFFCPU_ROWS {OFFCPU_ROWS}\n#define WATCH_SLOTS {WATCH_SLOTS}\n"
            f"#define THREAD_SLOTS {THREAD_SLOTS}\n")
    if options.get("stacks"):
        text += "#define SCHED_STACKS 1\n"
    if options.get("runq"):
        text += "#define SCHED_RUNQ 1\n" + btf.defines((("task_struct", "pid"),))
    return text + BPF_TEXT


def watch(bpf, processes, holders=None):
    """Names processes other than the tracing one while the trace runs
    ({pid: label}, e.g. a network run's server and load generator): their
    threads get rows and the roles "<label>/<kind>". A label is cut to 15
    bytes; a process named twice keeps the last label. (holders: for the
    tracers that read a process's namespace; not this one.)"""
    import ctypes
    table = bpf[b"sched_watch"]
    for pid, label in processes.items():
        value = table.Leaf()
        value.label = label.encode()[:15]
        table[table.Key(int(pid))] = value
    gen = bpf[b"sched_watch_gen"]
    gen[gen.Key(0)] = ctypes.c_uint32(gen[gen.Key(0)].value + 1)


def read(bpf, plain, items, percpu_sum):
    threads = {}
    held = [(slot["tid"], slot["s"]) for _i, slot in items(bpf[b"sched_thread_slots"], plain) if slot["tid"]]
    for tid, t in held + items(bpf[b"sched_threads"], plain):
        # its off-CPU samples are in a shared row: 1 (threads named kit-...) or 2, else 0
        t["shared_row"] = t["row"] - OFFCPU_ROWS + 1 if t.get("row", -1) >= OFFCPU_ROWS else 0
        for key in ("offcpu_since", "row", "watch_gen", "watched"):
            t.pop(key, None)
        threads[tid] = t
    offcpu = {}
    used = min(int(bpf[b"sched_offcpu_rows_used"][0].value), OFFCPU_ROWS)
    rows, owners = bpf[b"sched_offcpu"], bpf[b"sched_offcpu_tid"]
    for r in range(used):
        n = np.ctypeslib.as_array(rows[rows.Key(r)].n)
        samples = [(int(b), int(n[b])) for b in np.nonzero(n)[0]]
        if samples:
            offcpu.setdefault(int(owners[owners.Key(r)].value), []).extend(samples)
    offcpu_shared = {}
    for k in (1, 2):
        n = np.ctypeslib.as_array(rows[rows.Key(OFFCPU_ROWS + k - 1)].n)
        offcpu_shared[str(k)] = [(int(b), int(n[b])) for b in np.nonzero(n)[0]]
    cpus = [plain(c) for c in bpf[b"sched_cpu"][0]]
    runq = {}
    with contextlib.suppress(KeyError):
        for key, n in items(bpf[b"sched_runq"], plain):
            runq.setdefault(key["tid"], []).append((key["bucket"], n))
    stacks = []
    with contextlib.suppress(KeyError):
        traces = bpf[b"sched_stack_traces"]
        for key, v in items(bpf[b"sched_stack_offcpu"], plain):
            frames = []
            with contextlib.suppress(KeyError, OSError):
                frames = [bpf.ksym(addr).decode(errors="replace") for addr in traces.walk(key["stack"])]
            while frames and frames[0].startswith(("bpf_prog_", "bpf_trace_run", "__bpf_trace_")):
                frames.pop(0)               # the tracer's own frames, innermost
            stacks.append({"tid": key["tid"], "frames": frames[::-1], "offcpu_ns": v["ns"], "count": v["n"]})
    watched = {int(pid): label["label"] for pid, label in items(bpf[b"sched_watch"], plain)}
    return {"threads": threads, "offcpu": offcpu, "offcpu_shared": offcpu_shared, "runq": runq, "stacks": stacks, "watched": watched,
            "switches": sum(c["switches"] for c in cpus),
            "idle_switches": sum(c["idle_switches"] for c in cpus)}


def thread_role(comm, is_main, main_comm=None):
    """A thread's part in a process kit started, from its name: "main";
    "worker" for a thread that kept its program's name; kit's net-<role>
    names without "net-" (the server driver's loop, accept, control; the
    load generator's loadgen); DPDK's lcore; io_uring's iou-sqp, iou-wrk;
    else the name without its number."""
    if is_main:
        return "main"
    if main_comm is not None and comm == main_comm:
        return "worker"
    kind = host.thread_kind(comm)
    if kind.startswith("net-"):
        return kind[4:]
    if kind.startswith(("lcore", "rte-worker", "dpdk-worker")):
        return "lcore"
    return kind


def role(tid, tgid, comm, pid, job_tids, helper_tids=None, watched=None, main_comms=None):
    """The job's threads; the threads born during the run to help it (the
    pool, glibc's AIO threads; when not known, the process's other threads
    but its main one), never the process's older threads (Jupyter's own,
    kit's detach pool); io_uring's worker and SQPOLL threads (threads of the
    process that owns the ring); kworkers; everything else. A thread of a
    watched process ({pid: label}) is "<label>/<its thread_role>"."""
    if watched and tgid in watched:
        return f"{watched[tgid]}/{thread_role(comm, tid == tgid, (main_comms or {}).get(tgid))}"
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
    if pid is not None and tgid == pid and comm.startswith("kit-"):
        return "helper"             # threads an engine started and named (kit-stdasync: one per I/O)
    return "other"


def _threads(raw, pid, job_tids, helper_tids=None):
    rows = []
    watched = raw.get("watched") or {}
    main_comms = {tgid: raw["threads"][tgid]["comm"] for tgid in watched if tgid in raw["threads"]}
    for tid, t in raw["threads"].items():
        rows.append({"tid": tid, "tgid": t["tgid"], "comm": t["comm"], "shared_row": t.get("shared_row", 0),
                     "role": role(tid, t["tgid"], t["comm"], pid, job_tids, helper_tids, watched, main_comms),
                     "voluntary": t["voluntary"], "involuntary": t["involuntary"],
                     "switches": t["voluntary"] + t["involuntary"],
                     "oncpu_ns": t["oncpu_ns"], "offcpu_ns": t["offcpu_ns"], "offcpu_n": t["offcpu_n"],
                     "runq_ns": t["runq_ns"], "runq_n": t["runq_n"]})
    rows.sort(key=lambda r: (-r["switches"], r["tid"]))
    return rows


def _offcpu_counts(raw, tids, which="offcpu"):
    counts = np.zeros(hist.PLAT_NR, dtype=np.int64)
    for tid in tids:
        for bucket, n in raw.get(which, {}).get(tid, ()):
            counts[min(bucket, hist.PLAT_NR - 1)] += n
    return counts


def _lat(total_ns, n, counts):
    out = {"N": n, "mean": total_ns / n if n else 0.0}
    if n and int(counts.sum()):         # the tracing process's threads: their histogram too
        out["percentile"] = hist.percentiles(counts, int(counts.sum()))
        out["bins"] = hist.to_bins(counts)
        if int(counts.sum()) != n:      # the percentiles are of fewer samples than N
            out["percentile_N"] = int(counts.sum())
    return out


def folded(raw, ctx, role_name=None):
    """offcputime's folded stacks ("comm;outer;...;inner value", value in
    microseconds off CPU), for flame graphs; role_name: only that role's."""
    pid, job_tids = ctx.pid, {int(t) for t in ctx.job_tids}
    roles = {r["tid"]: (r["role"], r["comm"]) for r in _threads(raw, pid, job_tids, ctx.helper_tids)}
    lines = {}
    for s in raw.get("stacks", ()):
        role, comm = roles.get(s["tid"], ("other", str(s["tid"])))
        if role_name and role != role_name:
            continue
        key = ";".join([host.thread_kind(comm)] + (s["frames"] or ["[unknown]"]))
        lines[key] = lines.get(key, 0) + s["offcpu_ns"]
    return [f"{k} {v // 1000}" for k, v in sorted(lines.items(), key=lambda kv: -kv[1]) if v >= 1000]


def summary(raw, ctx):
    pid, job_tids = ctx.pid, {int(t) for t in ctx.job_tids}
    threads = _threads(raw, pid, job_tids, ctx.helper_tids)
    shared_roles = {k: {r["role"] for r in threads if r["shared_row"] == k and r["offcpu_n"]} for k in (1, 2)}
    roles = {}
    for name in ROLES + tuple(sorted({r["role"] for r in threads} - set(ROLES))):
        members = [r for r in threads if r["role"] == name]
        entry = {"threads": len(members)}
        for k in ("voluntary", "involuntary", "switches", "oncpu_ns", "offcpu_ns", "runq_ns"):
            entry[k] = int(sum(r[k] for r in members))
        tids = [r["tid"] for r in members]
        counts = _offcpu_counts(raw, tids)
        for k, owners in shared_roles.items():
            if owners == {name}:        # a shared row's samples are all this role's threads'
                for bucket, n in (raw.get("offcpu_shared") or {}).get(str(k), ()):
                    counts[min(bucket, hist.PLAT_NR - 1)] += n
        entry["offcpu"] = _lat(entry["offcpu_ns"], int(sum(r["offcpu_n"] for r in members)), counts)
        if raw.get("runq") is not None and any(r["runq_n"] for r in members):
            # runqlat's view: of the time off CPU, how much was waiting for a CPU
            entry["runq"] = _lat(entry["runq_ns"], int(sum(r["runq_n"] for r in members)),
                                 _offcpu_counts(raw, tids, "runq"))
        entry["comms"] = sorted({host.thread_kind(r["comm"]) for r in members})[:20]
        roles[name] = entry
    return {
        "system": {"switches": int(raw["switches"]), "idle_switches": int(raw["idle_switches"]),
                   "voluntary": int(sum(r["voluntary"] for r in threads)),
                   "involuntary": int(sum(r["involuntary"] for r in threads)),
                   "threads": len(threads)},
        "roles": roles,
        "threads": threads[:TOP_THREADS],
        **({"stacks": folded(raw, ctx)[:TOP_THREADS]} if raw.get("stacks") else {}),
    }


def text(s):
    roles = ", ".join(f"{name} {v['switches']:,}" for name, v in (s.get("roles") or {}).items() if v.get("switches"))
    lines = [f"sched: {s['system']['switches']:,} switches system-wide; by role: {roles or 'none'}"]
    watched = {}                    # the processes the trace was told about: their roles' time
    for name, v in (s.get("roles") or {}).items():
        if "/" in name and v.get("threads"):
            label, kind = name.split("/", 1)
            many = f" ({v['threads']} threads)" if v["threads"] > 1 else ""
            watched.setdefault(label, []).append(
                f"{kind}{many} on CPU {v['oncpu_ns'] / 1e6:,.1f} ms, off {v['offcpu_ns'] / 1e6:,.1f} ms, "
                f"{v['switches']:,} switches ({v['involuntary']:,} preempted)")
    lines += [f"sched: {label}: " + "; ".join(parts) for label, parts in watched.items()]
    waits = ", ".join(f"{name} {v['runq']['mean'] / 1000:.1f}us x {v['runq']['N']:,}"
                      for name, v in (s.get("roles") or {}).items() if (v.get("runq") or {}).get("N"))
    if waits:
        lines.append(f"sched: waiting for a CPU (run queue), mean by role: {waits}")
    for line in (s.get("stacks") or [])[:3]:
        stack, us = line.rsplit(" ", 1)
        lines.append(f"sched: off CPU {int(us):,}us from {';'.join(stack.split(';')[-4:])}")
    return lines


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
        "sched_stacks": pd.DataFrame([{"stack": line.rsplit(" ", 1)[0], "offcpu_us": int(line.rsplit(" ", 1)[1])}
                                      for line in folded(raw, ctx)], columns=["stack", "offcpu_us"]),
    }
