"""Long and shared use: a thousand runs in one process leak nothing, and two
kit processes measuring into one store at once lose nothing."""
import gc
import json
import os
import subprocess
import time

import kit
from conftest import KIT, report_figure
from kit import publish, store
from kit.engines import variants

# every engine and variant (from the registry), buffered and direct, and io_uring's registered files and buffers
ENGINE_MIX = [dict(options, iodepth=4, direct=direct) for _name, options in variants() for direct in (False, True)] \
    + [dict(ioengine="io_uring", iodepth=4, fixedbufs=True, registerfiles=True)]


def _links():
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return out


def snapshot():
    # garbage of earlier tests (a Popen's pipes, say) must not close its fds
    # between two snapshots and pass for a change in what kit holds
    gc.collect()
    links = _links()
    with open("/proc/self/status") as fh:
        rss_kb = next(int(l.split()[1]) for l in fh if l.startswith("VmRSS:"))
    with open("/proc/self/maps") as fh:        # each io_setup context maps its ring: "/[aio] (deleted)"
        aio = sum("[aio]" in line for line in fh)
    return {"fds": len(links), "io_uring": sum("io_uring" in l for l in links),
            "bpf": sum("bpf" in l for l in links), "threads": len(os.listdir("/proc/self/task")),
            "aio_contexts": aio, "rss_mb": rss_kb / 1024}


LEAKS = ("fds", "io_uring", "bpf", "threads", "aio_contexts")


def settle():
    time.sleep(1.5)        # glibc's idle AIO helpers leave after a second


def settled_like(before, timeout=5.0, hold=0.3):
    """The snapshot once its LEAKS counts are before's and stay so for `hold`
    seconds (what a run leaves for a moment, such as glibc's idle AIO
    helpers, has gone), else the last one after timeout, for the caller's
    assert to show: at once where nothing lingers, never sooner than it is."""
    deadline, same_since = time.monotonic() + timeout, None
    while True:
        now = snapshot()
        if all(now[k] == before[k] for k in LEAKS):
            same_since = same_since or time.monotonic()
            if time.monotonic() - same_since >= hold:
                return now
        else:
            same_since = None
        if time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def test_a_thousand_runs_leak_nothing(scratch):
    from kit.tracers import _bpf, release, status
    traced = status()["usable"]
    for i in range(len(ENGINE_MIX) * 3):                  # warm-up: every engine, caches, imports,
        kit.run(kit.Job(rw="randread", size="256k", number_ios=32, directory=scratch, **ENGINE_MIX[i % len(ENGINE_MIX)]),
                progress=False, machine=False, trace=["sched"] if traced and i < 3 else None)  # bcc's LLVM
    release()           # the traced runs' program, kept loaded for the next trace
    settle()
    before = snapshot()
    start = time.monotonic()
    for i in range(1000):
        trace = ["sched"] if traced and i % 100 == 0 else None
        r = kit.run(kit.Job(rw="randread", size="256k", number_ios=32, directory=scratch, **ENGINE_MIX[i % len(ENGINE_MIX)]),
                    progress=False, machine=False, trace=trace)
        assert r.ios == 32
        assert _bpf.kept() == (1 if traced else 0)    # one program, compiled once, reused by every trace
    elapsed = time.monotonic() - start
    assert release() == (1 if traced else 0)
    after = settled_like(before)
    report_figure(f"1000 runs in {elapsed:.1f}s: before {before}, after {after}")
    for key in LEAKS:
        assert after[key] == before[key], (key, before, after)
    assert after["io_uring"] == 0 and after["bpf"] == 0
    # untraced runs hold RSS to the KiB; each bcc compile moves the allocator's
    # high-water mark by up to ~17 MB without growing run after run
    assert after["rss_mb"] - before["rss_mb"] < (25 if traced else 5), (before, after)


def test_two_kit_processes_share_one_store(tmp_path):
    data, scratch = tmp_path / "data", tmp_path / "scratch"
    specs = []
    for name, engines in (("a", "[psync, libaio]"), ("b", "[io_uring, threadpool]")):
        spec = tmp_path / f"{name}.yml"
        # busy_retries: 0 -- the two sweeps disturb each other by design: measuring a run again after a
        # pause is not what this tests (7-14 s of pauses)
        spec.write_text(f"name: {name}\nbase: {{rw: randread, size: 4m, runtime: 0.1, time_based: 1}}\n"
                        f"grid: {{ioengine: {engines}, iodepth: [1, 4]}}\nrepeats: 2\nbusy_retries: 0\n")
        specs.append(spec)
    procs = [subprocess.Popen([KIT, "sweep", str(s), f"--data={data}", f"--directory={scratch}", "--no-publish"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in specs]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "8 run, 0 already stored" in out
    (machine,) = store.machines(str(data))
    assert machine["results"] == 16 and machine["suites"] == ["sweep-a", "sweep-b"]
    for suite in ("sweep-a", "sweep-b"):
        results = store.load(machine["name"], suite, str(data))
        assert len(results) == 8 and all(r.ios > 0 for r in results)
    # the shared scratch directory's manifest is whole and lists the shared file
    with open(scratch / ".kit-files.json") as fh:
        files = json.load(fh)["files"]
    assert files["kit.0.0"]["pattern"] == "intact"
    # the index counts every result of both; the machine's page is the one notebook rendered (the
    # sweep pages' notebook is tested in test_reports: rendering it twice more here cost 15 s)
    written = publish.publish(str(data), str(tmp_path / "reports"), notebooks=("machine",))
    assert [os.path.basename(p) for p in written.rendered] == ["machine.html"]
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "<td>16</td>" in index
