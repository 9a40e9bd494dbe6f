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

BUDGET_S = 5.0          # runs per engine: as many as fit, but every mix at least twice
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


def _namespaces():
    out = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            out.add(os.readlink(f"/proc/{pid}/ns/net"))
        except OSError:
            pass
    return out


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


def machine():
    """What kit may make around a run and must leave as it was."""
    def sh(*argv):
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    return {
        "children": _children(),
        "links": sh("ip", "-o", "link", "show"),
        "named namespaces": sh("ip", "netns", "list"),
        "mounts": sorted(line.split()[4] for line in _read("/proc/self/mountinfo").splitlines()),
        "dpdk files": sorted(glob.glob("/var/run/dpdk*") + glob.glob("/var/run/dpdk/*") + glob.glob("/dev/shm/*")
                             + glob.glob("/dev/hugepages/*") + glob.glob("/tmp/*dpdk*") + glob.glob("/tmp/*rte*")),
        "kit's programs": sorted(os.listdir(os.path.join(os.path.dirname(kit.__file__), "net", "_bin"))),
        "nr_hugepages": _read(POOL),
    }


def settle(before_namespaces, hugepages, timeout=10.0):
    """Namespaces go when the kernel has torn down their last process's
    sockets, and so do the hugepages an AF_XDP socket's memory held."""
    deadline = time.monotonic() + timeout
    while (_namespaces() - before_namespaces or _read(POOL) != hugepages) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)


def run(name, options):
    r = kit.run_net(server=name, runtime=RUNTIME, connections=2, progress=False, machine=False, **options)
    entry = r.data["jobs"][0]
    assert entry["read"]["total_ios"] > 0, (name, options)
    assert entry["kit"]["net"]["server"]["threads"], (name, options)
    return r


@pytest.mark.parametrize("name", engine_names())
def test_many_runs_of_every_engine_leak_nothing(name):
    mix = mixes(name)
    for options in mix:
        _buildable(name, getattr(engine(name), "variant", lambda o: None)(options))
    _can_make_namespaces()
    for options in mix:                     # warm-up: each variant once (builds, imports, caches)
        run(name, options)
    namespaces, hugepages = _namespaces(), _read(POOL)
    settle(namespaces, hugepages)
    before, around = kit_process(), machine()
    start, runs = time.monotonic(), 0
    while runs < 2 * len(mix) or time.monotonic() - start < BUDGET_S:
        run(name, mix[runs % len(mix)])
        runs += 1
    elapsed = time.monotonic() - start
    settle(namespaces, hugepages)
    after = kit_process()
    report_figure(f"net {name}: {runs} runs of {len(mix)} kinds in {elapsed:.1f}s: before {before}, after {after}")
    assert after["fds"] == before["fds"] and after["threads"] == before["threads"], (before, after)
    assert after["rss_mb"] - before["rss_mb"] < 8, (before, after)
    assert _namespaces() - namespaces == set()
    left = machine()
    for key, value in around.items():
        assert left[key] == value, (key, value, left[key])
    assert left["children"] == []
