"""eBPF tracers that explain a run: block (what the device did), sched (who
switched and why), uring (what io_uring did), aggregated in the kernel.

    from kit.tracers import Trace
    with Trace(block=True, sched=True, uring=True, devices=[(7, 0)]) as t:
        r = kit.run(job)
    t.summary(pid=os.getpid(), job_tids=[...])    # JSON-able, compact
    t.frames(pid=os.getpid(), job_tids=[...])     # tidy pandas DataFrames

The selected tracers are compiled into ONE BPF program with bcc and attached
to tracepoints only (the stable interface; this kernel has no kprobes). No
per-event data reaches Python: the kernel keeps counters and fio-layout
histograms, read once at stop(). What could not be recorded is counted and
reported under "lost".
"""
import os
import time

from .. import host
from ..errors import OptionError
from . import _bpf, block, sched, uring
from ._bpf import TraceUnavailable

TRACERS = ("block", "sched", "uring")
ACTIVE = []       # traces started and not yet stopped, in this process
_MODULES = {"block": block, "sched": sched, "uring": uring}

__all__ = ["Trace", "trace", "status", "TraceUnavailable", "TRACERS"]


def _tracepoints(tracer, exists):
    """{logical event: tracepoint} this kernel has for one tracer."""
    if tracer == "uring":
        return uring.present(exists)
    module = _MODULES[tracer]
    return {e: e for e in module.EVENTS if exists(module.NAME, e)}


def _complete(tracer, found):
    if tracer == "uring":
        return bool(found)
    return all(e in found for e in _MODULES[tracer].REQUIRED)


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
        for t in TRACERS:
            out["tracepoints"][t] = _complete(t, _tracepoints(t, _bpf.tracepoint_exists))
        if not out["bcc"]:
            out["reason"] = "bcc is not importable: install Debian's python3-bpfcc (make setup links it into the venv)"
        elif not _bpf.privileged():
            out["reason"] = "tracing needs root (or CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)"
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

    def __init__(self, block=False, sched=False, uring=False, devices=None):
        self.tracers = [name for name, on in zip(TRACERS, (block, sched, uring)) if on]
        if not self.tracers:
            raise OptionError("trace", f"choose at least one of {', '.join(TRACERS)}")
        self.devices = [(int(ma), int(mi)) for ma, mi in devices] if devices else None
        self.events = {}          # tracer -> {logical event: tracepoint} attached
        self._bpf = None
        self._raw = None
        self._lost = None
        self._t0 = self._t1 = None
        self._runs = []           # (pid, job tids) of kit runs made while tracing

    # -- running --------------------------------------------------------------

    def start(self):
        if self._bpf is not None or self._raw is not None:
            raise RuntimeError("this Trace has already run; make a new one")
        bcc, cflags, kernel_source = _bpf.prepare()
        exists = bcc.BPF.tracepoint_exists
        for name in self.tracers:
            found = _tracepoints(name, exists)
            if not _complete(name, found):
                raise TraceUnavailable(f"trace={name}: this kernel lacks its tracepoints "
                                       f"({', '.join(_wanted(name))})")
            self.events[name] = found
        text = _bpf.lost_defines() + _bpf.COMMON_TEXT + "".join(
            _MODULES[name].bpf_text(self.devices, self.events[name]) for name in self.tracers)
        self._bpf = _bpf.load(text, bcc, cflags, kernel_source)
        self._t0 = time.monotonic_ns()
        ACTIVE.append(self)
        return self

    def stop(self):
        """Reads everything into Python and unloads the program. Idempotent."""
        b = self._bpf
        if b is None:
            return self
        if self in ACTIVE:
            ACTIVE.remove(self)
        try:
            _bpf.detach(b)
            self._t1 = time.monotonic_ns()
            misses = _bpf.recursion_misses(b)
            raw = {name: _MODULES[name].read(b, _bpf.plain, _bpf.items, _bpf.percpu_sum)
                   for name in self.tracers}
            self._lost = {"map_full": _bpf.read_lost(b), "recursion_misses": misses}
            self._raw = raw
        finally:
            self._bpf = None
            _bpf.close(b)
        return self

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

    def summary(self, pid=None, job_tids=()):
        """JSON-serialisable summary. pid: the process that ran the job (its
        other threads are "helper"); job_tids: the job threads' tids."""
        self._need_data()
        pid, job_tids = self._defaults(pid, job_tids)
        lost = dict(self._lost)
        lost["total"] = sum(lost["map_full"].values()) + sum(lost["recursion_misses"].values())
        out = {"duration_ns": self._t1 - self._t0, "tracers": list(self.tracers),
               "devices": [f"{ma}:{mi}" for ma, mi in self.devices] if self.devices else None,
               "lost": lost}
        if "block" in self._raw:
            out["block"] = block.summary(self._raw["block"])
            missed = lost["recursion_misses"].get("block_rq_complete", 0)
            if missed:
                # a missed completion leaves its request "in flight" for good
                out["block"]["depth_unreliable"] = (
                    f"{missed} completions were missed (another BPF program was running on that CPU): "
                    "the in-flight depth drifts upward from there")
        if "sched" in self._raw:
            out["sched"] = sched.summary(self._raw["sched"], pid, job_tids)
        if "uring" in self._raw:
            out["uring"] = uring.summary(self._raw["uring"], self.events["uring"], pid)
        return out

    def frames(self, pid=None, job_tids=()):
        """Tidy DataFrames: block_ops, block_latency, block_sizes, block_depth,
        sched_threads, sched_roles, sched_offcpu, uring; and one per tracer
        under its own name (block: the latency and queue-time histograms,
        sched: the threads, uring: the events)."""
        self._need_data()
        pid, job_tids = self._defaults(pid, job_tids)
        out = {}
        if "block" in self._raw:
            out.update(block.frames(self._raw["block"]))
        if "sched" in self._raw:
            out.update(sched.frames(self._raw["sched"], pid, job_tids))
        if "uring" in self._raw:
            out.update(uring.frames(self._raw["uring"], self.events["uring"], pid))
        for alias, name in (("block", "block_latency"), ("sched", "sched_threads")):
            if name in out:
                out[alias] = out[name]
        return out

    def note_run(self, pid, job_tids):
        """kit.run() tells the traces running around it whose threads are the
        job's, so summary() and frames() can name the roles unasked."""
        self._runs.append((pid, tuple(job_tids)))

    def _defaults(self, pid, job_tids):
        if pid is None and self._runs:
            pid = self._runs[-1][0]
        if not job_tids and self._runs:
            job_tids = tuple(t for _pid, tids in self._runs for t in tids)
        return pid, job_tids

    def __repr__(self):
        state = "running" if self.running else ("stopped" if self._raw is not None else "new")
        return f"<kit.tracers.Trace {'+'.join(self.tracers)} {state}>"


def _wanted(name):
    if name == "uring":
        return "any of " + ", ".join(tp for names in uring.EVENTS.values() for tp in names)
    return ", ".join(_MODULES[name].REQUIRED)


trace = Trace
