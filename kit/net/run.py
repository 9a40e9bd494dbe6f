"""Running a network job: the server engine in its namespace, kit's load
generator in the other, the measurement window between them, and one kit
Result built with kit's one Result builder.

The order (net-spec.md, "Process protocol"): namespaces and veth, the server
(its ready line within READY_TIMEOUT_S), the load generator (ramp_time, then
runtime), the server's counters and both processes' /proc/<pid>/task/*
figures at the start and the end of the measurement window, the load
generator's JSON, then both stopped and the namespaces gone, on every path.
With trace=, the tracers attach once the server is ready (compiling them
takes most of a second, so before the load generator starts), are told the
two processes (the server's and the client's roles, their namespaces'
packets), and stop when the load generator has ended: the trace covers its
whole run (connects, ramp_time, runtime), its duration says how long.

What the result says (fio's keys where fio has the concept):
jobs[0].read.iops = requests/s (round trips; for sink the server's received
messages), read.bw_bytes = echoed bytes/s, read.clat_ns (and lat_ns, the
same) the round trips' histogram with fio's percentile keys; usr_cpu,
sys_cpu and ctx are the server's (the engine under test, as a storage
result's are its job threads'); jobs[0].kit.net has both sides per thread
and per role, CPU per request on each side, and which side bounded the rate.
"""
import hashlib
import json
import os
import signal
import subprocess
import time

import numpy as np

from .. import hist, host
from ..errors import OptionError, RunError
from ..progress import bar
from ..signals import held
from ..results import Result, _ddir_entry, _latency_maps, empty_lat, lat_entry
from ..options import DDIRS
from ..tracers.sched import thread_role
from .job import NetJob
from .netns import Network, _last_line, _wait
from .servers import HERE as SERVERS, engine, kernel_address, needs_iface

READY_TIMEOUT_S = 10.0
STATS_TIMEOUT_S = 2.0
POLL_S = 0.1
# the load generator's own end after ramp + runtime: connects, the last
# round trips, its JSON
LOADGEN_GRACE_S = 10.0
END_MARGIN_S = 0.05
NEAR_FULL = 0.9                 # a thread on a CPU this share of the window is saturated
POLLING = {"iou-sqp", "lcore"}  # threads that spin by design: busy says nothing about load


# ---- the two programs -----------------------------------------------------

def binaries(job):
    """(server, load generator) executables, built if missing or stale."""
    from . import build
    return build.binary(job.server, job.variant), build.binary(build.LOADGEN)


def check(job):
    """What can refuse a valid job on this machine before anything starts:
    the namespaces' privileges and tools, and the two programs."""
    if job.network == "veth":
        from .netns import missing_privileges, missing_tools
        why = missing_privileges() or missing_tools()
        if why:
            raise RunError(why)
    return binaries(job)


def window_ns(job):
    """The load generator's time-series window: about 20 per run, 10 to 500 ms."""
    return int(min(0.5, max(0.01, job.runtime / 20)) * 1e9)


def server_argv(job, path, net):
    argv = [path, "--proto", job.protocol, "--workload", job.workload, "--bind", net.server_ip,
            "--port", str(job.port), "--bs", str(job.bs)]
    if needs_iface(job.server):
        argv += ["--iface", net.server_iface]
    if job.server_threads:
        argv += ["--threads", str(job.server_threads)]
    return net.server_prefix + argv + job.server_args()


def loadgen_argv(job, path, net, port):
    argv = [path, "--proto", job.protocol, "--workload", job.workload, "--host", net.server_ip,
            "--port", str(port), "--connections", str(job.connections), "--iodepth", str(job.iodepth),
            "--bs", str(job.bs), "--rate", str(job.rate_iops), "--ramp_ns", str(int(job.ramp_time * 1e9)),
            "--runtime_ns", str(int(job.runtime * 1e9)), "--window_ns", str(window_ns(job)),
            "--verify", "1" if job.verify and job.workload == "echo" else "0"]
    if job.threads:
        argv += ["--threads", str(job.threads)]
    return net.client_prefix + argv


class _Lines:
    """Lines from a child's stdout pipe, each within a timeout."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.buf = b""

    def read(self, timeout):
        import select
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _w, _x = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode(errors="replace")

    def rest(self, timeout=STATS_TIMEOUT_S):
        """Everything up to EOF (the load generator's JSON)."""
        import select
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _w, _x = select.select([self.fd], [], [], left)
            if not ready:
                break
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                break
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out.decode(errors="replace")


def _start(argv):
    try:
        # stderr to a pipe: a program's last words name what went wrong
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                bufsize=0)
    except OSError as e:
        raise RunError(f"cannot start {os.path.basename(argv[0])}: {e.strerror}") from None


def _json_line(line):
    try:
        value = json.loads(line)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _ended(p, what):
    """How a program ended, in words: 'exited 1', 'killed by SIGKILL'."""
    code = p.returncode
    if code is None:
        return f"{what} is still running"
    if code < 0:
        try:
            return f"{what} was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"{what} was killed by signal {-code}"
    return f"{what} exited {code}"


def _failure(p, lines, what, stderr_text=""):
    """The error a program said ({"error": ..., "code": ...}) as OptionError
    (code 2: an argument kit let through) or RunError; else how it ended."""
    said = _json_line(lines) if isinstance(lines, str) else None
    if said is None and isinstance(lines, str):
        said = next((d for d in map(_json_line, reversed(lines.splitlines())) if d and "error" in d), None)
    if said and said.get("error"):
        if said.get("code") == 2:
            return OptionError(None, f"{what}: {said['error']}")
        return RunError(f"{what}: {said['error']}")
    last = _last_line(stderr_text)
    return RunError(f"{_ended(p, what)}" + (f": {last}" if last else ""))


def _stop(p, lines=None, term=True):
    """Ends a program kit started and reaps it: stdin closed (the server's
    way to stop), SIGTERM (the load generator's), then SIGKILL. Returns
    (what it still printed on stdout, its stderr)."""
    out = ""
    try:
        p.stdin.close()
    except OSError:
        pass
    if term and p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
        except OSError:
            pass
    if lines is not None:
        try:
            out = lines.rest(STATS_TIMEOUT_S)
        except (OSError, ValueError):
            pass
    if p.poll() is None:
        try:
            p.wait(STATS_TIMEOUT_S)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            pass
    if p.poll() is None:
        p.kill()
    _wait(p)
    err = _stderr_of(p)
    for stream in (p.stdout, p.stderr):
        if stream:
            stream.close()
    return out, err


def _stderr_of(p):
    """What an ended program wrote on stderr (its last words)."""
    if p.poll() is None or p.stderr is None or p.stderr.closed:
        return ""
    try:
        return _Lines(p.stderr).rest(0.2)
    except (OSError, ValueError):
        return ""


# ---- /proc figures of the two processes -----------------------------------

def threads_of(pid):
    """{tid: counters} of every thread of a process kit started: usr/sys
    (clock ticks, as ns), on-CPU ns (schedstat, exact), switches, name."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        t = host.thread_stat(pid, tid)
        if t is None:
            continue            # gone between the listing and the read
        usr, sys_ = int(t["utime_ns"]), int(t["stime_ns"])
        out[int(tid)] = {"comm": t["comm"], "usr_ns": usr, "sys_ns": sys_,
                         "cpu_ns": t["cpu_ns"] if t["cpu_ns"] is not None else usr + sys_,
                         "ctx_voluntary": t["nvcsw"], "ctx_involuntary": t["nivcsw"]}
    return out


def role(comm, is_main, program):
    """A thread's role from its name: the server driver's net-accept,
    net-worker, net-loop, net-control; io_uring's iou-sqp, iou-wrk; DPDK's
    lcore; the load generator's threads; the process's main thread. The
    tracers name the threads of a traced run the same way."""
    return thread_role(comm, is_main, program[:15])


_FIGURES = ("usr_ns", "sys_ns", "cpu_ns", "ctx_voluntary", "ctx_involuntary")


def side_figures(pid, before, after, wall_ns, program):
    """One side over kit's window from its /proc samples: per thread (born in
    the window: from zero), per role, and the whole process."""
    threads = []
    for tid, a in sorted(after.items()):
        b = before.get(tid) or dict.fromkeys(_FIGURES, 0)
        threads.append({"tid": tid, "comm": a["comm"], "role": role(a["comm"], tid == pid, program),
                        **{k: max(int(a[k] - b[k]), 0) for k in _FIGURES}})
    return _side(pid, threads, wall_ns, len(set(before) - set(after)))


def loadgen_figures(pid, loadgen, before, after, wall_ns):
    """The client side: the load generator's own figures for its threads
    (getrusage over exactly its measurement window, in microseconds), and
    its main thread from kit's samples; the names from kit's samples."""
    own = loadgen.get("threads") or []
    if not own:
        return side_figures(pid, before, after, wall_ns, "kit-net-loadgen")
    window = int(loadgen.get("runtime_ns") or wall_ns)
    threads = []
    for t in own:
        tid = int(t.get("tid", 0))
        # its name at the end: at kit's first sample a thread just born may
        # not have named itself yet (it still has the program's name)
        comm = (after.get(tid) or before.get(tid) or {}).get("comm", "net-loadgen")
        usr, sys_ = int(t.get("utime_ns", 0)), int(t.get("stime_ns", 0))
        threads.append({"tid": tid, "comm": comm, "role": role(comm, tid == pid, "kit-net-loadgen"),
                        "usr_ns": usr, "sys_ns": sys_, "cpu_ns": usr + sys_,
                        "ctx_voluntary": int(t.get("nvcsw", 0)), "ctx_involuntary": int(t.get("nivcsw", 0))})
    if pid in before and pid in after and pid not in {t["tid"] for t in threads}:
        a, b = after[pid], before[pid]
        threads.append({"tid": pid, "comm": a["comm"], "role": "main",
                        **{k: max(int(a[k] - b[k]), 0) for k in _FIGURES}})
    return _side(pid, threads, window, 0)


def _side(pid, threads, window_ns, ended):
    """Threads -> a side: each thread's share of a CPU (`busy`), the roles'
    sums, the process's, and `cpus`: CPUs kept busy on average."""
    roles = {}
    for t in threads:
        t["busy"] = t["cpu_ns"] / window_ns if window_ns else 0.0
        r = roles.setdefault(t["role"], {"threads": 0, **dict.fromkeys(_FIGURES, 0)})
        r["threads"] += 1
        for k in _FIGURES:
            r[k] += t[k]
    out = {"pid": pid, **{k: sum(t[k] for t in threads) for k in _FIGURES}, "threads": threads, "roles": roles,
           "threads_ended": ended, "window_ns": int(window_ns)}
    out["cpus"] = out["cpu_ns"] / window_ns if window_ns else 0.0
    return out


def bottleneck(server, client, cpus=None):
    """Which side bounded the rate: the one whose busiest thread (not one
    that polls by design) was on a CPU nearly all the window; else the
    machine, when the two sides together kept every CPU busy; else neither
    (the network, the engine's waits, or the rate asked for)."""
    cpus = cpus or os.cpu_count() or 1
    busiest = {}
    for name, side in (("server", server), ("client", client)):
        working = [t for t in side["threads"] if t["role"] not in POLLING]
        if working:
            busiest[name] = max(working, key=lambda t: t["busy"])
    full = {name: t for name, t in busiest.items() if t["busy"] >= NEAR_FULL}
    if full:
        name = max(full, key=lambda n: full[n]["busy"])
        t = full[name]
        other = " (the other side's too)" if len(full) > 1 else ""
        return name, (f"the {name}'s busiest thread ({t['comm']}, {t['role']}) was on a CPU "
                      f"{100 * min(t['busy'], 1):.0f} % of the window{other}")
    both = server["cpus"] + client["cpus"]
    if both >= NEAR_FULL * cpus:
        return "machine", (f"server and client together kept {both:.2f} of the {cpus} CPUs busy; no single thread "
                           "was saturated")
    top = max(busiest.values(), key=lambda t: t["busy"], default=None)
    peak = f"; the busiest thread ({top['comm']}) was on a CPU {100 * top['busy']:.0f} % of the window" if top \
        else ""
    return "neither", f"no thread was near 100 % of a CPU and the CPUs were not all busy{peak}"


# ---- the result -----------------------------------------------------------

def _lat(loadgen):
    """The load generator's round trips as kit's latency counts."""
    counts = np.zeros(hist.PLAT_NR, dtype=np.int64)
    for idx, n in loadgen.get("hist") or []:
        if 0 <= int(idx) < hist.PLAT_NR:
            counts[int(idx)] += int(n)
    n = int(counts.sum())
    if not n:
        return empty_lat()
    return {"n": n, "min": int(loadgen.get("lat_min_ns", 0)), "max": int(loadgen.get("lat_max_ns", 0)),
            "sum": float(loadgen.get("lat_sum_ns", 0)), "sumsq": float(loadgen.get("lat_sumsq", 0.0)),
            "hist": counts}


def _nothing():
    return {"ios": 0, "bytes": 0, "slat": empty_lat(), "clat": empty_lat(), "lat": empty_lat()}


def _series(loadgen, job, per_request_bytes):
    windows = [int(w) for w in loadgen.get("windows") or []]
    if not windows:
        return None
    interval_ms = window_ns(job) / 1e6
    return {"interval_ms": interval_ms, "t_ms": [(i + 1) * interval_ms for i in range(len(windows))],
            "read_bytes": [w * per_request_bytes for w in windows], "read_ios": windows}


def _entry(job, written, loadgen, requests, nbytes, runtime_ns, server, net, wall_ns):
    lat = _lat(loadgen) if job.workload == "echo" else empty_lat()
    read = {"ios": requests, "bytes": nbytes, "slat": empty_lat(), "clat": lat, "lat": lat}
    windows = np.array(loadgen.get("windows") or [], dtype=np.int64)
    wsec = window_ns(job) / 1e9
    samples = {"iops": [(windows / wsec).astype(np.int64)] if len(windows) and job.workload == "echo" else [],
               "bw": [(windows * job.bs / wsec / 1024).astype(np.int64)] if len(windows) and job.workload == "echo"
               else []}
    report = (hist.PERCENTILES, {"slat": False, "clat": True, "lat": True})
    ddirs = {d: _ddir_entry(read if d == "read" else _nothing(), runtime_ns if d == "read" else 0, report,
                            samples if d == "read" else None) for d in DDIRS}
    zero_map = {k: 0.0 for k in ("1", "2", "4", "8", "16", "32", ">=64")}
    calls = {k: 0.0 for k in ("0", "4", "8", "16", "32", "64", ">=64")}
    entry = {
        "jobname": "net", "groupid": 0, "error": 0, "eta": 2147483647,
        "elapsed": int(np.ceil(runtime_ns / 1e9)), "job options": written, **ddirs,
        "sync": {"total_ios": 0, "lat_ns": lat_entry(empty_lat())},
        "job_runtime": int(round(wall_ns / 1e6)),
        "usr_cpu": 100.0 * server["usr_ns"] / wall_ns if wall_ns else 0.0,
        "sys_cpu": 100.0 * server["sys_ns"] / wall_ns if wall_ns else 0.0,
        "ctx": int(server["ctx_voluntary"] + server["ctx_involuntary"]), "majf": 0, "minf": 0,
        # a network job's depth is per connection and fixed (closed loop): fio's maps stay empty
        "iodepth_level": zero_map, "iodepth_submit": calls, "iodepth_complete": calls,
        **_latency_maps({"ddir": {d: {"clat": lat if d == "read" else empty_lat()} for d in DDIRS}}),
        "latency_depth": job.iodepth, "latency_target": 0, "latency_percentile": 100.0, "latency_window": 0,
    }
    entry["kit"] = {
        "tid": server["pid"], "start_ns": 0, "end_ns": int(runtime_ns), "runtime_ns": int(runtime_ns),
        "ddir_runtime_ns": {d: int(runtime_ns) if d == "read" else 0 for d in DDIRS},
        "ctx_voluntary": int(server["ctx_voluntary"]), "ctx_involuntary": int(server["ctx_involuntary"]),
        "usr_ns": int(server["usr_ns"]), "sys_ns": int(server["sys_ns"]), "verified_bytes":
            int(nbytes if job.verify and job.workload == "echo" else 0), "verify_ns": 0, "clock": "CLOCK_MONOTONIC",
        "net": net,
    }
    series = _series(loadgen, job, job.bs)
    if series and job.workload == "echo":
        entry["kit"]["series"] = series
    return entry


def _source_hash():
    """A digest of the network half's C sources (what the binaries are built from)."""
    from . import build
    own = getattr(build, "source_hash", None)
    if callable(own):
        try:
            return own()
        except Exception:   # a hash is a label, never a reason to lose a measurement
            pass
    digest = hashlib.sha256()
    here = os.path.dirname(SERVERS)
    for folder in (here, SERVERS):
        for name in sorted(os.listdir(folder)):
            if name.endswith((".c", ".cpp", ".h")):
                with open(os.path.join(folder, name), "rb") as fh:
                    digest.update(name.encode() + b"\0" + fh.read())
    return digest.hexdigest()


def build_result(job, ready, loadgen, stats0, stats1, server, client, wall_ns, notes=(), interrupted=False,
                 machine=None, hostname=None, trace=None):
    """The Result of one network run. loadgen: its JSON; stats0/1: the
    server's counters at kit's window's edges; server, client: their
    figures (side_figures, loadgen_figures), each over its own window;
    trace: the tracers' summary."""
    if job.workload == "echo":
        requests, nbytes = int(loadgen.get("requests", 0)), int(loadgen.get("bytes", 0))
        runtime_ns = int(loadgen.get("runtime_ns") or wall_ns)
    else:       # a sink's rate is what the server received
        rx_bytes = max(int(stats1.get("rx_bytes", 0)) - int(stats0.get("rx_bytes", 0)), 0)
        rx_msgs = max(int(stats1.get("rx_msgs", 0)) - int(stats0.get("rx_msgs", 0)), 0)
        requests = rx_msgs if job.protocol == "udp" else rx_bytes // job.bs
        nbytes, runtime_ns = rx_bytes, wall_ns
    rate = requests / (runtime_ns / 1e9) if runtime_ns else 0.0
    side, why = bottleneck(server, client)
    # each side's CPU over the requests served in its own window
    served = {s: rate * fig["window_ns"] / 1e9 for s, fig in (("server", server), ("client", client))}
    net = {
        "server": server, "client": client,
        "cpu_per_request_ns": {s: (fig["cpu_ns"] / served[s] if served[s] else None)
                               for s, fig in (("server", server), ("client", client))},
        "bottleneck": side, "bottleneck_why": why,
        "requests": requests, "sent": int(loadgen.get("sent", 0)), "lost": int(loadgen.get("lost", 0)),
        "late": int(loadgen.get("late", 0)), "connections": int(loadgen.get("connections", job.connections)),
        "port": int(ready.get("port", job.port)), "hostname": hostname,
        "threads_started": int((stats1 or {}).get("threads_started", ready.get("threads_started", 0)) or 0),
        "window_ns": int(wall_ns),
        "server_counters": {k: max(int(stats1.get(k, 0)) - int(stats0.get(k, 0)), 0)
                            for k in ("rx_msgs", "rx_bytes", "tx_msgs", "tx_bytes")},
        "loadgen_threads": loadgen.get("threads") or [],
    }
    written = {"ioengine": "net", **job.written(), "hostname": hostname or ""}
    entry = _entry(job, written, loadgen, requests, nbytes, runtime_ns, server, net, wall_ns)
    process = {
        "usr_cpu": entry["usr_cpu"], "sys_cpu": entry["sys_cpu"], "ctx": entry["ctx"],
        "ctx_voluntary": server["ctx_voluntary"], "ctx_involuntary": server["ctx_involuntary"],
        "majf": 0, "minf": 0, "usr_ns": server["usr_ns"], "sys_ns": server["sys_ns"], "wall_ns": int(wall_ns),
        "threads": len(server["threads"]), "helper_threads": {},
        "threads_started": net["threads_started"], "what": f"the {job.server} server process",
    }
    notes = list(notes)
    if net["lost"]:
        notes.append(f"{net['lost']:,} of {net['sent']:,} requests got no reply within 200 ms of being sent "
                     f"(UDP: lost); their places went on with new requests")
    if job.rate_iops:
        # the open loop's schedule over the load generator's window: what was
        # due, and how much of it went out at all
        due = int(job.rate_iops * int(loadgen.get("runtime_ns") or runtime_ns) / 1e9)
        net["due"] = due
        short = due - net["sent"]
        if short > max(0.01 * due, job.connections):
            notes.append(f"the open loop could not keep rate_iops={job.rate_iops:,}: {rate:,.0f} requests/s were "
                         f"done ({100 * rate / job.rate_iops:.0f} %), {short:,} of the {due:,} due were never "
                         f"sent and {net['late']:,} went out late; latency counts from the time each was due")
        elif net["late"]:
            notes.append(f"{net['late']:,} of {net['sent']:,} requests went out 1 ms or more after they were due "
                         f"(rate_iops={job.rate_iops:,}); their latency counts from the time they were due")
    return Result.build("kit", None, [entry], entry, process=process, machine=machine, notes=notes,
                        interrupted=interrupted, label=job.label, source_hash=_source_hash(),
                        global_options={}, trace=trace)


# ---- running --------------------------------------------------------------

def run(job, progress=None, machine=True, trace=None):
    """Runs a NetJob and returns its Result. trace: tracer names (and
    views), as kit.run's; their summary is the result's `trace`.
    OptionError: the request is wrong; RunError: it could not run here
    (privileges, a port in use, a server that died); KeyboardInterrupt only
    when nothing was measured (else the partial result, marked interrupted)."""
    if not isinstance(job, NetJob):
        raise TypeError("run() takes a NetJob")
    names, views = _trace_request(trace)
    server_bin, loadgen_bin = check(job)
    fingerprint = None
    if machine:
        from ..machine import fingerprint_for
        fingerprint = fingerprint_for(None)
    with _engine_resources(job), Network(job.network, kernel_address(job.server)) as net:
        server = client = tracing = trace_summary = None
        try:
            # a Ctrl-C inside Popen would lose a child it had started: never
            # stopped, never reaped; so it waits until kit holds the child
            with held():
                server = _start(server_argv(job, server_bin, net))
            server_lines = _Lines(server.stdout)
            ready = _await_ready(job, server, server_lines)
            if names:
                from ..tracers import Trace
                tracing = Trace(*names, **views).start()
                _watch(tracing, server.pid, "server", net)
            try:
                with held():
                    client = _start(loadgen_argv(job, loadgen_bin, net, ready["port"]))
                if tracing:
                    _watch(tracing, client.pid, "client", net, side=1)
                measured = _measure(job, server, server_lines, client, progress)
            except BaseException:
                if client is not None:
                    _stop(client)
                raise
            output, err, interrupted = _finish_loadgen(client, _Lines(client.stdout), measured["interrupted"], job)
            if tracing:
                # the load generator's traffic is over: what the trace counted
                # and what the interfaces counted end at the same packet
                tracing.stop()
                trace_summary = tracing.summary()
            if server.poll() is not None:       # it died at the very end: its counts are not whole
                raise _server_died(job, server)
        finally:
            try:
                if tracing:
                    tracing.stop()      # a Ctrl-C held while it detaches is raised as it ends
            finally:
                if server is not None:
                    _stop(server)
    said = [d for d in map(_json_line, output.strip().splitlines()) if d]
    loadgen = said[-1] if said else None
    if loadgen is None or "error" in loadgen:
        if interrupted:
            raise KeyboardInterrupt
        raise _failure(client, output, "the load generator", err)
    client_figures = loadgen_figures(client.pid, loadgen, *measured["client_samples"], measured["wall_ns"])
    return build_result(job, ready, loadgen, measured["stats0"], measured["stats1"], measured["server"],
                        client_figures, measured["wall_ns"], interrupted=interrupted, machine=fingerprint,
                        hostname=net.server_ip, notes=measured["notes"], trace=trace_summary)


def _trace_request(trace):
    """trace= (None, "net,sched" or a list) -> (tracer names, views). A
    network run has no disk: block is left out unless it alone is asked for."""
    if not trace:
        return [], {}
    from ..tracers import split_request
    names, views = split_request([t.strip() for t in (trace.split(",") if isinstance(trace, str) else trace)])
    if set(names) != {"block"}:
        names = [n for n in names if n != "block"]
    return names, views


NAMESPACE_WAIT_S = 1.0


def _watch(tracing, pid, label, net, side=0):
    """Tells the tracers that follow processes (those with watch()) whose
    process pid is, once it is in its side's namespace (nsenter joins it,
    then execs the program), so its packets count there; the namespace's
    holder outlives it, for the interface counters at the trace's end."""
    from ..tracers import TRACERS
    holder = net.holders[side].pid if net.holders else None
    namespace = net.namespaces()[side] if net.holders else None
    deadline = time.monotonic() + NAMESPACE_WAIT_S
    while namespace:
        try:
            if os.readlink(f"/proc/{pid}/ns/net") == namespace:
                break
        except OSError:
            return                      # it is gone: the run says why
        if time.monotonic() > deadline:
            raise RunError(f"the load generator (pid {pid}) did not enter its network namespace within "
                           f"{NAMESPACE_WAIT_S:g} s")
        time.sleep(0.0002)
    for name in tracing.tracers:
        told = getattr(TRACERS[name], "watch", None)
        if told:
            try:
                told(tracing._bpf, {pid: label}, {pid: holder} if holder else None)
            except OSError:
                return                  # it ended already: the run says why


def _engine_resources(job):
    """What the server's engine module sets up around the run and undoes on
    every path (dpdk's hugepages): its `resources(options)`, if it has one."""
    import contextlib
    hook = getattr(engine(job.server), "resources", None)
    return hook(job.engine_options) if hook else contextlib.nullcontext()


def _await_ready(job, server, lines):
    line = lines.read(READY_TIMEOUT_S)
    said = _json_line(line)
    if said and said.get("ready"):
        return said
    if said is None and line is None and server.poll() is None:
        raise RunError(f"the {job.server} server did not say it was ready within {READY_TIMEOUT_S:g} s")
    try:
        server.wait(STATS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    raise _failure(server, line or "", f"the {job.server} server", _stderr_of(server))


def _stats(job, server, lines):
    try:
        server.stdin.write(b"stats\n")
    except OSError:
        raise _server_died(job, server) from None
    while True:
        said = _json_line(lines.read(STATS_TIMEOUT_S))
        if said is None:
            raise _server_died(job, server) if server.poll() is not None else \
                RunError(f"the {job.server} server did not answer 'stats' within {STATS_TIMEOUT_S:g} s")
        if "stats" in said:
            return said["stats"]


def _server_died(job, server):
    try:
        server.wait(STATS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    return RunError(f"{_ended(server, f'the {job.server} server (pid {server.pid})')} during the run; "
                    "everything kit started is stopped and removed")


def _measure(job, server, server_lines, client, progress):
    """Waits out ramp_time and runtime, with the window's samples at their
    edges; Ctrl-C (or SIGTERM) ends the window early."""
    out = {"interrupted": False, "notes": []}
    # kit's window closes a little before the load generator's: its threads
    # (and their figures) end with its own window
    edges = (job.ramp_time, job.ramp_time + job.runtime - min(END_MARGIN_S, job.runtime / 10))
    with bar(total=edges[1], label=job.label, unit="s", enabled=progress) as b:
        try:
            _await_load(job, server, client)
            start = time.monotonic()
            for i, edge in enumerate(edges):
                while time.monotonic() - start < edge:
                    if server.poll() is not None:
                        raise _server_died(job, server)
                    if client.poll() is not None:
                        break           # it ended early: its output says why
                    time.sleep(min(POLL_S, max(edge - (time.monotonic() - start), 0.001)))
                    b.update_to(min(time.monotonic() - start, edges[1]))
                if client.poll() is not None and i == 0:
                    raise _LoadgenEnded
                sample = (_stats(job, server, server_lines), threads_of(server.pid), threads_of(client.pid),
                          time.monotonic_ns())
                out["s0" if i == 0 else "s1"] = sample
                if client.poll() is not None:
                    break
        except KeyboardInterrupt:
            out["interrupted"] = True
            if "s0" in out and server.poll() is None:
                try:
                    out["s1"] = (_stats(job, server, server_lines), threads_of(server.pid),
                                 threads_of(client.pid), time.monotonic_ns())
                except (RunError, KeyboardInterrupt):
                    pass
        except _LoadgenEnded:
            pass
    if "s0" not in out:
        empty = ({}, {}, {}, time.monotonic_ns())
        out["s0"] = out["s1"] = empty
    s0, s1 = out["s0"], out.get("s1", out["s0"])
    if "s1" not in out or s1 is s0:
        out["notes"].append("the run ended before its measurement window did: no CPU figures")
    out["wall_ns"] = s1[3] - s0[3]
    out["stats0"], out["stats1"] = s0[0], s1[0]
    out["server"] = side_figures(server.pid, s0[1], s1[1], out["wall_ns"], f"kit-net-{job.server}")
    out["client_samples"] = (s0[2], s1[2])
    return out


def _await_load(job, server, client):
    """Until the load generator's clock starts: it connects every connection
    first, then starts its threads and its ramp_time at once, so kit's
    window starts when its process has more than one thread."""
    limit = READY_TIMEOUT_S + job.connections / 1000
    deadline = time.monotonic() + limit
    while client.poll() is None:
        if server.poll() is not None:
            raise _server_died(job, server)
        try:
            if len(os.listdir(f"/proc/{client.pid}/task")) > 1:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RunError(f"the load generator did not connect its {job.connections} connection(s) to the "
                           f"{job.server} server within {limit:.0f} s")
        time.sleep(0.001)


class _LoadgenEnded(Exception):
    pass


def _finish_loadgen(client, lines, interrupted, job):
    """(its stdout, its stderr, interrupted): the load generator ends by
    itself after ramp + runtime; interrupted, it is told to stop (SIGTERM:
    it prints what it has)."""
    if interrupted:
        return (*_stop(client, lines, term=True), True)
    deadline = time.monotonic() + LOADGEN_GRACE_S + job.ramp_time + job.runtime
    out = ""
    try:
        while client.poll() is None and time.monotonic() < deadline:
            out += lines.rest(POLL_S)
    except KeyboardInterrupt:
        rest, err = _stop(client, lines, term=True)
        return out + rest, err, True
    if client.poll() is None:
        _stop(client, lines)
        raise RunError(f"the load generator did not finish within {LOADGEN_GRACE_S:g} s of its runtime")
    rest, err = _stop(client, lines, term=False)
    return out + rest, err, False


# ---- text -----------------------------------------------------------------

def is_net_result(data):
    """Whether a result document is a network run's."""
    jobs = data.get("jobs") or [{}]
    return isinstance(jobs[0], dict) and isinstance((jobs[0].get("kit") or {}).get("net"), dict)


def _seconds(text):
    """A time as written in job options ('5', '300ms') with its unit."""
    return f"{text}s" if str(text).replace(".", "", 1).isdigit() else str(text)


def format_text(data):
    """A network result as `kit net` prints it: requests/s, round-trip
    percentiles, CPU per request on both sides, which side was the limit."""
    from ..text import human_bytes, human_count, human_ns, printable
    entry = data["jobs"][0]
    net, read, opts = entry["kit"]["net"], entry["read"], entry.get("job options") or {}
    pct = read["clat_ns"].get("percentile") or {}
    head = (f"{data.get('label')}  connections={opts.get('connections')} iodepth={opts.get('iodepth')} "
            f"bs={human_bytes(read['io_bytes'] // read['total_ios']) if read['total_ios'] and opts.get('workload') == 'echo' else opts.get('bs')} "
            f"network={opts.get('network')} runtime={_seconds(opts.get('runtime'))}"
            + (f" rate_iops={int(opts['rate_iops']):,}" if opts.get("rate_iops", "0") != "0" else ""))
    lines = [printable(head)]
    echo = read["clat_ns"].get("N")
    lines.append(f"  {'requests/s':>12} {'requests':>10} {'bw':>10}" +
                 (f" {'rtt p50':>9} {'p99':>9} {'p99.9':>9} {'mean':>9}" if echo else ""))
    row = f"  {read['iops']:>12,.0f} {human_count(read['total_ios']):>10} {human_bytes(read['bw_bytes']) + '/s':>10}"
    if echo:
        row += "".join(f" {human_ns(pct.get(k)):>9}" for k in ("50.000000", "99.000000", "99.900000"))
        row += f" {human_ns(read['clat_ns']['mean']):>9}"
    lines.append(row)
    if not echo:
        lines.append("  (sink: requests/s are what the server received; no round trips to time)")
    per = net.get("cpu_per_request_ns") or {}
    lines.append(f"  cpu per request: server {human_ns(per.get('server'))}, client {human_ns(per.get('client'))}")
    for side in ("server", "client"):
        fig = net.get(side) or {}
        window = fig.get("window_ns") or net.get("window_ns") or 0
        roles = ", ".join(f"{r} {v['cpu_ns'] / window:.2f}" + (f" ({v['threads']} threads)" if v["threads"] > 1
                                                               else "")
                          for r, v in sorted((fig.get("roles") or {}).items(), key=lambda kv: -kv[1]["cpu_ns"])
                          ) if window else "-"
        window = fig.get("window_ns") or net.get("window_ns") or 0
        share = (lambda ns: f"{ns / window:.2f}") if window else (lambda ns: "-")     # noqa: E731
        lines.append(f"  {side}: {fig.get('cpus', 0):.2f} CPUs (usr {share(fig.get('usr_ns', 0))}, sys "
                     f"{share(fig.get('sys_ns', 0))}), ctx {fig.get('ctx_voluntary', 0):,} voluntary "
                     f"{fig.get('ctx_involuntary', 0):,} involuntary; CPUs by role: {roles}")
    lines.append(f"  bottleneck: {net.get('bottleneck')}: {printable(net.get('bottleneck_why', ''))}")
    if opts.get("protocol") == "udp" or net.get("lost") or net.get("late"):
        lines.append(f"  lost {net.get('lost', 0):,}, late {net.get('late', 0):,} of {net.get('sent', 0):,} sent")
    lines.append(f"  server {opts.get('server')} on {net.get('hostname')}:{net.get('port')}; window "
                 f"{net.get('window_ns', 0) / 1e9:.2f}s")
    if data.get("trace"):
        from ..tracers import format_summary as trace_text
        lines.append("  " + trace_text(data["trace"]).replace("\n", "\n  "))
    for note in data.get("notes") or []:
        lines.append(f"  note: {printable(note)}")
    if data.get("interrupted"):
        lines.append("  interrupted: the figures are partial")
    return "\n".join(lines)
