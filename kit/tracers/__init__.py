"""eBPF tracers that explain a run: block (what the device did), sched (who
switched and why), uring (what io_uring did), aggregated in the kernel.

    from kit.tracers import Trace
    with Trace("block", "sched", "uring", devices=[(7, 0)]) as t:    # or Trace(block=True, ...)
        r = kit.run(job)
    t.summary(pid=os.getpid(), job_tids=[...])    # JSON-able, compact
    t.frames(pid=os.getpid(), job_tids=[...])     # tidy pandas DataFrames

A tracer is one module in this package, listed once in TRACERS, with:
    NAME, WANTS (the tracepoints it needs, said to a user), FRAME (the frame
    also given under the tracer's own name);
    tracepoints(exists) -> {event: tracepoint} this kernel has, and
    complete(found) -> whether that is enough;
    bpf_text(devices, events, options), read(bpf, plain, items, percpu_sum) -> raw;
    summary(raw, ctx), frames(raw, ctx), text(summary) -> lines,
where ctx is a Context (the process and job threads asked about, the
events attached, what was lost).

The selected tracers are compiled into ONE BPF program with bcc and attached
to tracepoints only (the stable interface; this kernel has no kprobes). No
per-event data reaches Python: the kernel keeps counters and fio-layout
histograms, read once at stop(). What could not be recorded is counted and
reported under "lost". A stopped trace's program stays loaded, detached, for
the next trace with the same text (its maps reset), until release() or exit.
"""
import os
import time
from dataclasses import dataclass, field

from .. import host
from ..errors import OptionError
from ..signals import held
from . import _bpf, block, net, sched, uring
from ._bpf import PID_NAMESPACE, TraceUnavailable, in_pid_namespace

TRACERS = {module.NAME: module for module in (block, sched, uring, net)}
ACTIVE = []       # traces started and not yet stopped, in this process

__all__ = ["Trace", "trace", "status", "TraceUnavailable", "TRACERS", "format_summary", "release"]


def release():
    """Unloads the programs kept loaded for the next trace with the same
    text (a suite's runs reuse one instead of compiling it each time):
    afterwards nothing of kit's stays loaded in the kernel. Also done at
    exit. Returns how many were unloaded."""
    return _bpf.release()


@dataclass
class Context:
    """What a tracer's summary and frames are asked about."""
    pid: object = None
    job_tids: tuple = ()
    helper_tids: object = None      # threads born to work for the run; None: not known
    events: dict = field(default_factory=dict)
    lost: dict = field(default_factory=dict)


VIEWS = ("records=N", "stacks", "runq")     # what a trace request may add to the tracer names
VIEW_OF = {"records": "block", "stacks": "sched", "runq": "sched"}    # the tracer that gives each view


def split_request(tokens):
    """A trace request ("block,sched,records=2000,stacks" as tokens) ->
    (tracer names, Trace options); OptionError naming what is neither."""
    names, options = [], {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if (key in names or key in options) and (key in TRACERS or key in VIEW_OF):
            raise OptionError("trace", f"names {key} twice (got {','.join(tokens)!r})")
        if key in TRACERS and not sep:
            names.append(key)
        elif key in ("stacks", "runq") and not sep:
            options[key] = True
        elif key == "records" and sep:
            from ..options import parse_int
            try:
                options["records"] = parse_int("records", value, 1, 1 << 20)
            except OptionError as e:
                raise OptionError("trace", f"records={value}: {e.problem}") from None
        else:
            raise OptionError("trace", f"must be a comma-separated list of {', '.join(TRACERS)}, and "
                                       f"optionally {', '.join(VIEWS)} (got {token!r})")
    if not names:
        raise OptionError("trace", f"names no tracer (one or more of {', '.join(TRACERS)})")
    check_views(names, options)
    return names, options


def check_views(names, options):
    """A view asked of a tracer the trace does not have would quietly give
    nothing: OptionError instead."""
    for view, tracer in VIEW_OF.items():
        if options.get(view) and tracer not in names:
            said = f"records={options[view]}" if view == "records" else view
            raise OptionError("trace", f"{said} is a view of the {tracer} tracer, which this trace does not "
                                       f"have (add {tracer})")


def format_summary(t):
    """A trace summary in a few lines (kit run --trace, kit trace)."""
    lost = (t.get("lost") or {}).get("total", 0)
    cut = (f" (interrupted: cut short of the {t['duration_asked_ns'] / 1e9:g}s asked)"
           if t.get("interrupted") and t.get("duration_asked_ns") else "")
    lines = [f"trace ({', '.join(t.get('tracers', []))}) over {t.get('duration_ns', 0) / 1e9:.2f}s{cut}"
             + (f", {lost:,} events lost" if lost else "")]
    for name, module in TRACERS.items():
        if t.get(name):
            lines += ["  " + line for line in module.text(t[name])]
    return "\n".join(lines)


def status():
    """What tracing needs and whether this machine has it. Never raises."""
    out = {"bcc": False, "bcc_version": None, "tracefs": False, "headers": None, "root": False,
           "cap_bpf": False, "tracepoints": {t: False for t in TRACERS}, "usable": False, "reason": None}
    try:
        bcc = _bpf.import_bcc()
        out["bcc"] = bcc is not None
        out["bcc_version"] = _bpf.bcc_version(bcc) if bcc else None
        out["tracefs"] = _bpf.tracefs_dir() is not None
        out["headers"] = _bpf.headers()[0]
        caps = host.capabilities()
        out["root"] = os.geteuid() == 0
        out["cap_bpf"] = caps["CAP_BPF"] or caps["CAP_SYS_ADMIN"]
        for name, module in TRACERS.items():
            out["tracepoints"][name] = module.complete(module.tracepoints(_bpf.tracepoint_exists))
        if not out["bcc"]:
            out["reason"] = "bcc is not importable: install Debian's python3-bpfcc (make setup links it into the venv)"
        elif not _bpf.privileged():
            out["reason"] = "tracing needs root (or CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)"
        elif _bpf.tracefs_problem():
            out["reason"] = _bpf.tracefs_problem()
        elif _bpf.in_pid_namespace():
            out["reason"] = _bpf.PID_NAMESPACE
        elif out["headers"] is None:
            out["reason"] = (f"no kernel headers for {os.uname().release} and no generic ones in /usr/src: "
                             "apt-get install linux-headers-amd64")
        elif not any(out["tracepoints"].values()):
            out["reason"] = "this kernel has none of the block, sched or io_uring tracepoints"
        else:
            out["usable"] = True
    except Exception as e:   # status must not fail the caller (doctor)
        out["usable"] = False
        out["reason"] = f"cannot tell: {type(e).__name__}: {e}"
    return out


class Trace:
    """Traces the whole machine from start() to stop(); see the module doc.

    devices: [(major, minor), ...] of the disks to trace (a partition means
    its disk); None (or empty) traces every block device."""

    def __init__(self, *names, devices=None, records=0, stacks=False, runq=False, **flags):
        """records: keep the last N block requests one by one (biosnoop's
        view); stacks: the kernel stacks the tracing process's threads leave
        the CPU from (offcputime's view, folded); runq: run-queue latency,
        wakeup to on-CPU (runqlat's view). Each costs per event: off by
        default."""
        unknown = [n for n in list(names) + list(flags) if n not in TRACERS]
        if unknown:
            raise OptionError("trace", f"{unknown[0]!r} is not a tracer (allowed: {', '.join(TRACERS)})")
        wanted = set(names) | {n for n, on in flags.items() if on}
        self.tracers = [name for name in TRACERS if name in wanted]
        if not self.tracers:
            raise OptionError("trace", f"choose at least one of {', '.join(TRACERS)}")
        self.devices = [(int(ma), int(mi)) for ma, mi in devices] if devices else None
        if isinstance(records, bool) or not isinstance(records, int) or not 0 <= records <= 1 << 20:
            raise OptionError("records", f"must be a number of requests from 0 to {1 << 20} (got {records!r})")
        self.options = {"records": records, "stacks": bool(stacks), "runq": bool(runq)}
        check_views(self.tracers, self.options)
        self.events = {}          # tracer -> {logical event: tracepoint} attached
        self._bpf = None
        self._raw = None
        self._lost = None
        self._misses_before = {}  # a reused program's recursion misses from earlier traces
        self._t0 = self._t1 = None
        self._snapshots = {}
        self._runs = []           # (pid, job tids) of kit runs made while tracing

    # -- running --------------------------------------------------------------

    def start(self):
        if self._bpf is not None or self._raw is not None:
            raise RuntimeError("this Trace has already run; make a new one")
        try:
            with held():
                self._start()
        except KeyboardInterrupt:       # arrived while attaching: nothing stays attached
            self.stop()
            raise
        return self

    def _start(self):
        bcc, cflags, kernel_source = _bpf.prepare()
        exists = bcc.BPF.tracepoint_exists
        for name in self.tracers:
            found = TRACERS[name].tracepoints(exists)
            if not TRACERS[name].complete(found):
                raise TraceUnavailable(f"trace={name}: this kernel lacks its tracepoints ({TRACERS[name].WANTS})")
            self.events[name] = found
        text = _bpf.lost_defines() + _bpf.COMMON_TEXT + "".join(
            TRACERS[name].bpf_text(self.devices, self.events[name], self.options) for name in self.tracers)
        # compiled once per text: a kept program is reset and re-attached (_bpf.open_program)
        self._bpf, self._misses_before = _bpf.open_program(text, bcc, cflags, kernel_source)
        # what a tracer checks itself against (block: /sys/block stat), at both ends
        self._snapshots = {name: TRACERS[name].snapshot() for name in self.tracers
                           if hasattr(TRACERS[name], "snapshot")}
        _bpf.arm(self._bpf, _bpf.ARMED_COUNTING)     # every probe is attached: from here on they all count
        self._t0 = time.monotonic_ns()
        ACTIVE.append(self)

    def stop(self):
        """Reads everything into Python and unloads the program, exactly once
        whatever interrupts it. Idempotent."""
        with held():
            self._stop()
        return self

    def _stop(self):
        b = self._bpf
        if b is None:
            return
        if self in ACTIVE:
            ACTIVE.remove(self)
        read = False
        try:
            _bpf.arm(b, _bpf.ARMED_DRAINING)      # all probes stop counting together
            self._t1 = time.monotonic_ns()
            after = {name: TRACERS[name].snapshot() for name in self._snapshots}
            for name in self.tracers:           # what was in flight ends in the trace
                if hasattr(TRACERS[name], "drain"):
                    TRACERS[name].drain(b)
            _bpf.arm(b, _bpf.ARMED_OFF)           # before any probe is detached
            _bpf.detach(b)
            misses = {event: n - self._misses_before.get(event, 0)
                      for event, n in _bpf.recursion_misses(b).items()}
            raw = {name: TRACERS[name].read(b, _bpf.plain, _bpf.items, _bpf.percpu_sum)
                   for name in self.tracers}
            for name, before in self._snapshots.items():
                raw[name]["snapshots"] = (before, after[name])
            self._lost = {"map_full": _bpf.read_lost(b), "recursion_misses": misses}
            self._raw = raw
            read = True
        finally:
            self._bpf = None
            if read:        # detached and read: kept for the next trace with the same text
                _bpf.put_back(b)
            else:
                _bpf.close(b)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def running(self):
        return self._bpf is not None

    # -- results ----------------------------------------------------------------

    def _need_data(self):
        if self._raw is None:
            raise RuntimeError("the trace has no data yet: stop() it first" if self.running
                               else "the trace was never started")

    def summary(self, pid=None, job_tids=(), helper_tids=None):
        """JSON-serialisable summary. pid: the process that ran the job;
        job_tids: the job threads' tids; helper_tids: the threads born during
        the run to work for it (the pool, glibc's AIO threads), the "helper"
        role (when not given: the process's other threads)."""
        self._need_data()
        pid, job_tids, helper_tids = self._defaults(pid, job_tids, helper_tids)
        lost = dict(self._lost)
        lost["total"] = sum(lost["map_full"].values()) + sum(lost["recursion_misses"].values())
        out = {"duration_ns": self._t1 - self._t0, "tracers": list(self.tracers),
               "devices": [f"{ma}:{mi}" for ma, mi in self.devices] if self.devices else None,
               "lost": lost}
        for name in self.tracers:
            out[name] = TRACERS[name].summary(self._raw[name], self._context(name, pid, job_tids, helper_tids, lost))
        return out

    def _context(self, name, pid, job_tids, helper_tids, lost=None):
        return Context(pid, tuple(job_tids), None if helper_tids is None else frozenset(helper_tids),
                       self.events.get(name, {}), lost or self._lost)

    def frames(self, pid=None, job_tids=(), helper_tids=None):
        """Tidy DataFrames: block_ops, block_latency, block_sizes, block_depth,
        sched_threads, sched_roles, sched_offcpu, uring; and one per tracer
        under its own name (block: the latency and queue-time histograms,
        sched: the threads, uring: the events)."""
        self._need_data()
        pid, job_tids, helper_tids = self._defaults(pid, job_tids, helper_tids)
        out = {}
        for name in self.tracers:
            out.update(TRACERS[name].frames(self._raw[name], self._context(name, pid, job_tids, helper_tids)))
            out.setdefault(name, out[TRACERS[name].FRAME])
        return out

    def note_run(self, pid, job_tids, helper_tids=()):
        """kit.run() tells the traces running around it whose threads are the
        job's (and, once it is over, which were born to help it), so
        summary() and frames() can name the roles unasked."""
        self._runs.append((pid, tuple(job_tids), tuple(helper_tids)))

    def _defaults(self, pid, job_tids, helper_tids=None):
        if pid is None and self._runs:
            pid = self._runs[-1][0]
        if not job_tids and self._runs:
            job_tids = tuple(t for _pid, tids, _h in self._runs for t in tids)
        if helper_tids is None and self._runs:
            helper_tids = tuple(t for _pid, _tids, helpers in self._runs for t in helpers)
        return pid, job_tids, helper_tids

    def __repr__(self):
        state = "running" if self.running else ("stopped" if self._raw is not None else "new")
        return f"<kit.tracers.Trace {'+'.join(self.tracers)} {state}>"


trace = Trace
