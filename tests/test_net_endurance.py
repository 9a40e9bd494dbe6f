"""Every network engine under the leak test: many short runs in one process,
each engine's protocols and options in turn, and afterwards kit's process
has the fds, threads and memory it had, and nothing kit made is left:
no child process, no network namespace, no interface, no mount, no file of
DPDK's, no hugepage added (test_endurance.py is the storage side's)."""
import glob
import os
import subprocess
import time

import pytest

import kit
from conftest import report_figure
from kit.net.servers import engine, engine_names
from test_net import _buildable, _can_make_namespaces

BUDGET_S = 2.5          # runs per engine: as many as fit, but every mix at least twice
RUNTIME = "50ms"
HUGEPAGES = 12          # dpdk's resource option: a reservation made and given back on every run that asks
POOL = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"


def mixes(name):
    """The engine's runs, from its table: each protocol, with its defaults and
    with each of its options moved off its default (a bool on, a choice to
    the next one), and dpdk's hugepages."""
    module = engine(name)
    variations = [{}]
    for option in module.OPTIONS:
        if option.kind == "bool":
            variations.append({option.name: not option.default})
        elif option.kind == "choice":
            choices = option.choices() if callable(option.choices) else option.choices
            variations.append({option.name: choices[(choices.index(option.default) + 1) % len(choices)]})
    if any(o.name == "hugepages" for o in module.OPTIONS):
        variations.append({"hugepages": HUGEPAGES})
    return [dict(v, protocol=p) for p in module.PROTOCOLS for v in variations]


def _children():
    me, out = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            out.append(f"{pid} ({fields[0]})")
    return sorted(out)


def _namespace_users():
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            out.setdefault(os.readlink(f"/proc/{pid}/ns/net"), []).append(int(pid))
        except OSError:
            pass
    return out


def _stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _start_time(pid):
    fields = _stat(pid)
    return fields[19] if fields else None


def _ours_or_orphan(pid):
    me, first = os.getpid(), True
    while pid > 1:
        fields = _stat(pid)
        if fields is None:
            return False
        parent = int(fields[1])
        if parent == me or (first and parent == 1):
            return True
        pid, first = parent, False
    return False


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def kit_process():
    """What must not grow in kit's own process."""
    with open("/proc/self/status") as fh:
        rss_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    return {"fds": len(os.listdir("/proc/self/fd")), "threads": len(os.listdir("/proc/self/task")),
            "rss_mb": rss_kb / 1024}


class Made:
    """What kit's runs in this process make (a spy on netns.Network and the
    runner's process start; nothing changed): the namespaces and the
    processes, so the leftovers looked for are kit's own and not those of
    other work on the machine."""

    def __init__(self, monkeypatch):
        from kit.net import netns
        from kit.net import run as net_run
        self.namespaces, self.processes = set(), set()      # net:[inode]; (pid, start time)
        self.networks = self.started = 0
        enter, start = netns.Network.__enter__, net_run._start

        def spy_enter(net):
            out = enter(net)
            self.networks += 1
            self.namespaces.update(net.namespaces())
            self.processes.update((h.pid, _start_time(h.pid)) for h in net.holders)
            return out

        def spy_start(argv):
            p = start(argv)
            self.started += 1
            self.processes.add((p.pid, _start_time(p.pid)))
            return p
        monkeypatch.setattr(netns.Network, "__enter__", spy_enter)
        monkeypatch.setattr(net_run, "_start", spy_start)

    def left(self):
        """The kernel reuses pids and namespace numbers: a process is kit's
        if its start time matches too, and a namespace in use is kit's if a
        process in it descends from this one or was orphaned (ppid 1), not
        when it belongs to a live run of some other process."""
        alive = sorted(pid for pid, start in self.processes if _start_time(pid) == start)
        kept = sorted(ns for ns, users in _namespace_users().items()
                      if ns in self.namespaces and any(_ours_or_orphan(pid) for pid in users))
        return {"namespaces in use": kept, "processes": alive,
                "EAL directories": [d for pid, _s in self.processes for d in glob.glob(f"/var/run/dpdk/*-{pid}")]}


def machine():
    """What kit may make around a run and must leave as it was."""
    def sh(*argv):
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    mounts = [line.split(" - ", 1) for line in _read("/proc/self/mountinfo").splitlines()]
    return {
        "children": _children(),
        "kit's links in the root namespace": [line for line in sh("ip", "-o", "link", "show").splitlines()
                                              if "kveth" in line],
        "named namespaces": sh("ip", "netns", "list"),
        "hugetlbfs mounts": sorted(head.split()[4] for head, tail in mounts if tail.startswith("hugetlbfs")),
        "DPDK's files": sorted(f for f in glob.glob("/dev/shm/*") + glob.glob("/dev/hugepages/*")
                               + glob.glob("/tmp/*") if any(w in os.path.basename(f) for w in ("rte", "dpdk"))),
        "kit's programs": sorted(os.listdir(os.path.join(os.path.dirname(kit.__file__), "net", "_bin"))),
        "nr_hugepages": _read(POOL),
    }


def settle(made, hugepages, timeout=10.0):
    """Namespaces go when the kernel has torn down their last process's
    sockets, and so do the hugepages an AF_XDP socket's memory held."""
    deadline = time.monotonic() + timeout
    while (made.left()["namespaces in use"] or _read(POOL) != hugepages) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)


def run(name, options):
    """One run's round trips (an echo that came back wrong fails the run)."""
    r = kit.run_net(server=name, runtime=RUNTIME, connections=2, progress=False, machine=False, **options)
    entry = r.data["jobs"][0]
    assert entry["job options"]["server"] == name and entry["job options"]["protocol"] == options["protocol"]
    return entry["read"]["total_ios"]


@pytest.mark.parametrize("name", engine_names())
def test_many_runs_of_every_engine_leak_nothing(name, monkeypatch):
    mix = mixes(name)
    for options in mix:
        _buildable(name, getattr(engine(name), "variant", lambda o: None)(options))
    _can_make_namespaces()
    # the pool as the machine has it: read after the warm-up, it could hold a reservation its keeper had
    # not given back yet, and settling on that waited out the 10 s timeout
    hugepages = _read(POOL)
    for options in mix:                     # warm-up: each variant once (builds, imports, caches)
        run(name, options)
    made = Made(monkeypatch)
    settle(made, hugepages)
    before, around = kit_process(), machine()
    start, runs, served = time.monotonic(), 0, 0
    while runs < 2 * len(mix) or time.monotonic() - start < BUDGET_S:
        # on a machine others load, a 50 ms window can pass with no round trip done: most must have some
        served += run(name, mix[runs % len(mix)]) > 0
        runs += 1
    elapsed = time.monotonic() - start
    settle(made, hugepages)
    after = kit_process()
    report_figure(f"net {name}: {runs} runs of {len(mix)} kinds in {elapsed:.1f}s ({served} with round trips): "
                  f"before {before}, after {after}")
    assert served >= runs / 2, (served, runs)
    assert after["fds"] == before["fds"] and after["threads"] == before["threads"], (before, after)
    assert after["rss_mb"] - before["rss_mb"] < 8, (before, after)
    # each run: two namespaces, their holders, a server and a load generator
    assert made.networks == runs and made.started == 2 * runs, (runs, made.networks, made.started)
    assert made.left() == {"namespaces in use": [], "processes": [], "EAL directories": []}
    left = machine()
    for key, value in around.items():
        assert left[key] == value, (key, value, left[key])
    assert left["children"] == [] and left["nr_hugepages"] == hugepages     # the pool as before kit's first run
