"""uring: what io_uring did with the requests, counted machine-wide and
for the tracing process.

Tracepoint names and fields changed across kernels (io_uring_submit_sqe
became io_uring_submit_req in 6.0; local_work_run came with DEFER_TASKRUN
in 6.1), so each logical event lists the names it has had, and only the
tracepoints this kernel has are compiled in (one that does not exist would
fail the whole program).

These events fire once or more per I/O on the submitting CPU, so each
program is a couple of per-CPU array increments and nothing else (a hash
keyed by tgid, to split every process, cost ~50 ns more per event on this
VM; an array increment ~5 ns). Each event is counted machine-wide, and again
when it fires in a thread of the tracing process, whose pid is compiled in:
kit runs its jobs as threads of the process that traces them, and io_uring's
iou-wrk and iou-sqp threads belong to the process that owns the ring. (A CQE
posted from an interrupt counts for whichever task was interrupted.)

On 6.18, io_uring_task_work_run fires on every loop of an SQPOLL thread,
mostly with nothing to run: task_work_items, not task_work_run, counts work.
"""
import os

NAME = "uring"

# logical event -> the tracepoint names it has had, newest first
EVENTS = {
    "submit": ("io_uring_submit_req", "io_uring_submit_sqe"),   # an SQE taken for execution
    "complete": ("io_uring_complete",),                         # a CQE posted
    "queue_async_work": ("io_uring_queue_async_work",),         # punted to an io-wq worker (iou-wrk)
    "task_add": ("io_uring_task_add",),                         # completion work queued to the task
    "task_work_run": ("io_uring_task_work_run",),               # the task ran its queued work
    "local_work_run": ("io_uring_local_work_run",),             # same, DEFER_TASKRUN rings
    "cqring_wait": ("io_uring_cqring_wait",),                   # a wait for CQEs (io_uring_enter GETEVENTS)
}
# work items run per task_work_run / local_work_run (their `count` argument)
ITEMS = {"task_work_run": "task_work_items", "local_work_run": "local_work_items"}
NAMES = tuple(EVENTS) + tuple(ITEMS.values())

# bpf_text() puts before it: URING_EVENTS (len(NAMES)) and TRACER_TGID (the tracing process)
BPF_TEXT = r"""
/* per event (NAMES order), then per event again for the tracing process;
   per CPU: no atomics needed */
BPF_PERCPU_ARRAY(uring_counts, u64, 2 * URING_EVENTS);

static __always_inline void uring_count(u32 event, u64 n)
{
    u64 *c = uring_counts.lookup(&event);
    if (c)
        *c += n;
    if (bpf_get_current_pid_tgid() >> 32 == TRACER_TGID) {
        u32 mine = URING_EVENTS + event;
        c = uring_counts.lookup(&mine);
        if (c)
            *c += n;
    }
}
"""

# raw tracepoints (no trace record copied, a recursion guard per program);
# task_work_run(tctx, count) and local_work_run(ctx, count, loops): count is args[1]
_PROBE = "KIT_PROBE({tp}) {{ uring_count({event}, 1);{extra} return 0; }}\n"
_ITEMS = " if ((int)ctx->args[1] > 0) uring_count({event}, (int)ctx->args[1]);"


WANTS = "any of " + ", ".join(tp for names in EVENTS.values() for tp in names)
FRAME = "uring"


def tracepoints(exists):
    """{logical event: the tracepoint name on this kernel} for those it has."""
    found = {}
    for event, names in EVENTS.items():
        for tp in names:
            if exists("io_uring", tp):
                found[event] = tp
                break
    return found


def complete(found):
    return bool(found)


def bpf_text(devices, events, options):
    text = f"#define URING_EVENTS {len(NAMES)}\n#define TRACER_TGID {os.getpid()}\n" + BPF_TEXT
    for event, tp in events.items():
        extra = _ITEMS.format(event=NAMES.index(ITEMS[event])) if event in ITEMS else ""
        text += _PROBE.format(tp=tp, event=NAMES.index(event), extra=extra)
    return text


def read(bpf, plain, items, percpu_sum):
    table = bpf[b"uring_counts"]
    count = [int(sum(table[table.Key(i)])) for i in range(2 * len(NAMES))]
    return {"tgid": os.getpid(), "counts": dict(zip(NAMES, count)),
            "process": dict(zip(NAMES, count[len(NAMES):]))}


def _traced(events):
    """{counted name: its tracepoint} for what this trace attached."""
    out = {}
    for name in NAMES:
        source = next((k for k, v in ITEMS.items() if v == name), name)
        if source in events:
            out[name] = events[source]
    return out


def summary(raw, ctx):
    """events: machine-wide; process: those in threads of the tracing process,
    when that is the `pid` asked about."""
    events, pid = ctx.events, ctx.pid
    traced = _traced(events)
    out = {"tracepoints": dict(events), "events": {e: raw["counts"][e] for e in traced}}
    if pid is not None and pid == raw["tgid"]:
        out["process"] = {e: raw["process"][e] for e in traced}
    return out


def text(s):
    events = s.get("process") or s.get("events") or {}
    scope = "this process" if "process" in s else "system"
    shown = ", ".join(f"{k} {v:,}" for k, v in events.items() if v)
    return [f"io_uring ({scope}): {shown or 'no events'}"]


def frames(raw, ctx):
    import pandas as pd
    events, pid = ctx.events, ctx.pid
    mine = pid is not None and pid == raw["tgid"]
    rows = [{"event": e, "tracepoint": tp, "count": raw["counts"][e],
             "process_count": raw["process"][e] if mine else None}
            for e, tp in _traced(events).items()]
    return {"uring": pd.DataFrame(rows, columns=["event", "tracepoint", "count", "process_count"])}
