"""Order and warm-up bias, and what else the device did: runs interleaved in
a seeded random order after one read through the files, trends within a run
and drift across repeats found and said instead of a ranking, unstable
points measured again, a time budget kept, and others' I/O on the device
counted beside kit's own."""
import copy
import json
import os
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

import kit
from kit import host, stats, store, sweep as sweeping
from kit import notebook as kn
from conftest import loop_device, run_kit


def _spec(tmp_path, text, name="s.yml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def calm(monkeypatch):
    """Runs are kept as they come: on a machine others share, a busy run would
    otherwise be measured up to three times, which these tests do not test."""
    monkeypatch.setattr(sweeping, "BUSY_RETRIES", 0)


# ---- the order -------------------------------------------------------------------

def test_the_order_is_interleaved_rounds_reproducible_from_its_seed():
    order = sweeping.run_order(range(5), range(1, 5), seed=7)
    assert len(order) == 20
    rounds = [order[i:i + 5] for i in range(0, 20, 5)]
    for r, chunk in enumerate(rounds, 1):
        assert sorted(u for u, _r in chunk) == list(range(5)) and {rr for _u, rr in chunk} == {r}
    # random within rounds: not point after point, and not the same order every round
    assert len({tuple(u for u, _r in chunk) for chunk in rounds}) > 1
    assert [u for u, _r in rounds[0]] != list(range(5)) or [u for u, _r in rounds[1]] != list(range(5))
    assert sweeping.run_order(range(5), range(1, 5), seed=7) == order
    assert sweeping.run_order(range(5), range(1, 5), seed=8) != order
    # no unit is always first: over many rounds every unit leads some
    leads = {sweeping.run_order(range(5), [r], seed=7)[0][0] for r in range(1, 60)}
    assert leads == set(range(5))


def test_a_sweep_runs_in_its_recorded_order_after_a_warm_up(tmp_path, calm):
    spec = sweeping.load_spec(_spec(tmp_path, "name: ord\nbase: {rw: randread, size: 2m, runtime: 0.1, "
                                              "time_based: 1, direct: 1}\ngrid: {iodepth: [1, 2, 4]}\n"
                                              "repeats: 2\nseed: 11\n"))
    data = str(tmp_path / "data")
    out = sweeping.run_sweep(spec, data=data, directory=str(tmp_path / "s"))
    assert out["done"] == 6 and out["seed"] == 11 and not out["cut"]
    results = store.load(out["machine"], spec.suite, data)
    by_order = sorted(results, key=lambda r: r.data["tags"]["order"])
    depths = [p["iodepth"] for p in spec.points()]
    assert depths == [1, 2, 4]
    expected = [(depths[u], r) for u, r in sweeping.run_order(range(3), range(1, 3), seed=11)]
    assert [(r.data["tags"]["point"]["iodepth"], r.data["tags"]["repeat"]) for r in by_order] == expected
    # ... which is also the order in time
    stamps = [r.data["timestamp_ms"] for r in by_order]
    assert stamps == sorted(stamps)
    for r in results:
        tags = r.data["tags"]
        assert tags["order_seed"] == 11 and tags["planned_repeats"] == 2 and tags["rerun"] is False
        # the one file, 2 MiB, read through once, direct as the jobs are
        assert tags["warm_up"]["bytes"] == 2 << 20 and tags["warm_up"]["direct"] is True
        assert any("read through its files (2 MiB, direct" in n for n in r.data["notes"])


def test_the_warm_up_reads_every_byte_of_the_files_through_the_device(tmp_path):
    with loop_device(fs="ext4") as (dev, mnt):
        job = kit.Job(rw="randread", bs="4k", size="8m", nrfiles=2, runtime=0.1, time_based=True, direct=True,
                      directory=mnt, name="w")
        reader = sweeping.warm_up_job(job)
        assert (reader.rw, reader.direct, reader.nrfiles, reader.size, reader.time_based) == ("read", True, 2, 8 << 20,
                                                                                              False)
        kit.run(job, progress=False)                # its files exist, filled
        st = os.stat(mnt)
        disk = host.whole_disk((os.major(st.st_dev), os.minor(st.st_dev)))
        before = host.block_stat(disk)
        warmed = sweeping.warm_up([job, job.replace(ioengine="libaio", iodepth=8)])   # one set of files: once
        after = host.block_stat(disk)
        assert warmed["bytes"] == 8 << 20 and warmed["direct"]
        read = 512 * (after["read_sectors"] - before["read_sectors"])
        assert 8 << 20 <= read < (8 << 20) + (1 << 20), read


# ---- trends within a run, drift across repeats -----------------------------------------

def test_a_trend_within_a_run_is_flagged_and_flat_noise_is_not():
    rng = np.random.default_rng(1)
    for _ in range(50):
        noise = rng.normal(1.0, 0.15, 20)
        flat = stats.trend(50_000 * noise)
        assert not flat["trend"], flat
        rising = stats.trend(np.linspace(50_000, 100_000, 20) * noise)
        assert rising["trend"] and rising["change_pct"] > 30, rising
    falling = stats.trend(np.linspace(100_000, 60_000, 12))
    assert falling["trend"] and falling["change_pct"] < -30
    assert stats.trend([1, 2, 3, 4, 5]) is None          # too few windows to tell
    assert stats.trend([]) is None and stats.trend([0] * 10) is None


def test_a_runs_own_series_gives_its_windows(tmp_path):
    job = kit.Job(rw="randread", size="4m", runtime=0.3, time_based=True, iopsavgtime=20, directory=str(tmp_path))
    r = kit.run(job, progress=False)
    windows = sweeping.window_iops(r)
    # IOPS of whole 20 ms windows: together at most the run's I/Os
    assert 12 <= len(windows) <= 15 and sum(windows) * 0.020 <= r.ios * 1.001 and min(windows) >= 0
    assert max(windows) > 0
    old = kit.Result(copy.deepcopy(r.data))
    old.data["total"]["kit"].pop("series", None)          # fio's runner, an old result: no series
    assert sweeping.window_iops(old) == []


def test_repeats_drifting_upwards_are_flagged():
    assert stats.drift([100, 112, 125]) == pytest.approx(22.3, abs=0.1)
    assert stats.drift([125, 112, 100]) < -20
    assert stats.drift([100, 125, 112]) == 0.0             # not monotone
    assert stats.drift([100, 102, 104]) == 0.0             # monotone, but within noise
    assert stats.drift([100, 130]) is None                 # two say nothing
    # the whole measurement: later runs faster than their own points' medians
    rng = np.random.default_rng(3)
    points = {p: 10_000 * (p + 1) for p in range(6)}
    warming = [(i, p, points[p] * (1 + 0.01 * i) * rng.normal(1, 0.02)) for i, p in
               enumerate(p for _round in range(5) for p in rng.permutation(6))]
    found = stats.suite_drift(warming)
    assert found["drift"] and found["change_pct"] > 10 and found["runs"] == 30
    steady = [(i, p, points[p] * rng.normal(1, 0.05)) for i, p, _v in warming]
    assert not stats.suite_drift(steady)["drift"]


def test_pages_withhold_the_ranking_when_the_device_warmed():
    rows = []
    for i in range(5):
        for j, (label, base) in enumerate((("io_uring", 100_000), ("libaio", 60_000))):
            order = 2 * i + j
            rows.append(dict(ioengine=label, label=label, iodepth=1, bs=4096, numjobs=1, clat_p50_ns=1000,
                             clat_p99_ns=5000, bw_bytes=1, key=f"{label}-r{i}", timestamp=1_700_000_000 + order,
                             order=order, iops=base * (1 + 0.08 * i)))
    frame = pd.DataFrame(rows)
    warmed = kn.sweep_stats(frame)
    assert warmed.attrs["drift"]["drift"]
    assert kn.sweep_best_text(warmed).startswith("Ranking withheld: the device warmed up")
    assert set(warmed["drift_pct"]) and all(d > 25 for d in warmed["drift_pct"])
    assert all("repeats rose" in n for n in warmed["note"])
    flat = frame.assign(iops=[r["iops"] / (1 + 0.08 * (r["order"] // 2)) for r in rows])
    steady = kn.sweep_stats(flat)
    assert not steady.attrs["drift"]["drift"] and (steady["note"] == "").all()
    assert kn.sweep_best_text(steady).startswith("The highest throughput is **io_uring**")
    # an engines table whose leader rose within its run: no ranking either
    table = pd.DataFrame([dict(job="io_uring", label="io_uring", iops=1e5, iops_median=1e5, iops_lo=9.9e4,
                               iops_hi=1.01e5, repeats=3, trend_pct=35.0, drift_pct=0.0, ctx=1, process_ctx=1),
                          dict(job="sync", label="sync", iops=5e4, iops_median=5e4, iops_lo=4.9e4, iops_hi=5.1e4,
                               repeats=3, trend_pct=0.0, drift_pct=0.0, ctx=1, process_ctx=1)])
    text = kn.engines_text(table, "direct")
    assert text.startswith("Ranking withheld: io_uring changed while it was measured (IOPS rose 35 % within a run)")
    assert "fastest" not in text
    calm_table = table.assign(trend_pct=0.0)
    assert "**io_uring** (io_uring) is fastest at 100,000 IOPS" in kn.engines_text(calm_table, "direct")
    close = calm_table.assign(iops_lo=[9.9e4, 4.9e4], iops_hi=[1.01e5, 9.95e4])
    assert "no engine is clearly fastest" in kn.engines_text(close, "direct")


# ---- unstable points are measured again -------------------------------------------------

def _constructed(monkeypatch, values):
    """Real runs whose IOPS are replaced by values[point][n] (n: the point's
    nth run), so that which point is unstable is decided by the test."""
    real = sweeping._measured_quietly
    seen = {}

    def measured(job, *args, **kw):
        result = real(job, *args, **kw)
        n = seen.get(job.iodepth, 0)
        seen[job.iodepth] = n + 1
        result.data["total"]["read"]["iops"] = float(values[job.iodepth][n])
        return result
    monkeypatch.setattr(sweeping, "_measured_quietly", measured)
    return seen


def test_an_unstable_point_gets_more_repeats_and_is_flagged_if_still_unstable(tmp_path, monkeypatch, calm):
    shaky = [1000, 3000] * 5                     # disagrees however often it is measured
    steady = [1000] * 10
    seen = _constructed(monkeypatch, {1: shaky, 2: steady})
    spec = sweeping.load_spec(_spec(tmp_path, "name: rr\nbase: {rw: randread, size: 2m, runtime: 0.05, "
                                              "time_based: 1}\ngrid: {iodepth: [1, 2]}\nrepeats: 3\nreruns: 2\n"))
    data = str(tmp_path / "data")
    out = sweeping.run_sweep(spec, data=data, directory=str(tmp_path / "s"))
    assert seen == {1: 5, 2: 3}
    assert out["reruns"] == 2 and out["unstable"] == ["iodepth=1"] and out["done"] == 8 and out["total"] == 8
    results = store.load(out["machine"], spec.suite, data)
    extra = sorted(r.data["tags"]["repeat"] for r in results if r.data["tags"]["rerun"])
    assert extra == [4, 5] and {r.data["tags"]["point"]["iodepth"] for r in results if r.data["tags"]["rerun"]} == {1}
    table = kn.sweep_stats(store.frame(out["machine"], spec.suite, data)).set_index("iodepth")
    assert table.loc[1, "unstable"] and table.loc[1, "repeats"] == 5
    assert "2 re-run(s), still unstable" in table.loc[1, "note"]
    assert not table.loc[2, "unstable"] and table.loc[2, "repeats"] == 3 and "re-run" not in table.loc[2, "note"]
    assert "2 run(s) were added to 1 point(s) whose repeats disagreed; 1 of them still disagree" in \
        " ".join(kn.measurement_text(table.reset_index()))
    # the same command again: everything is stored, nothing is measured
    again = sweeping.run_sweep(spec, data=data, directory=str(tmp_path / "s"))
    assert again["done"] == 0 and again["skipped"] == 6 and again["unstable"] == ["iodepth=1"]


def test_re_runs_stop_once_the_repeats_agree(tmp_path, monkeypatch, calm):
    first = [1000] * 4 + [3000]                   # one outlier in five: the bootstrap interval reaches it
    values = first + [1000] * 5
    assert stats.unstable(first) and stats.unstable(values[:6]) and not stats.unstable(values[:7])
    seen = _constructed(monkeypatch, {1: values})
    spec = sweeping.load_spec(_spec(tmp_path, "name: cure\nbase: {rw: randread, size: 2m, runtime: 0.05, "
                                              "time_based: 1}\ngrid: {iodepth: [1]}\nrepeats: 5\nreruns: 4\n"))
    out = sweeping.run_sweep(spec, data=str(tmp_path / "data"), directory=str(tmp_path / "s"))
    assert seen == {1: 7} and out["reruns"] == 2 and out["unstable"] == []


# ---- a time budget ------------------------------------------------------------------------

def test_a_time_budget_is_kept_and_says_what_it_cut(tmp_path, calm):
    spec = sweeping.load_spec(_spec(tmp_path, "name: bud\nbase: {rw: randread, size: 2m, runtime: 0.2, "
                                              "time_based: 1}\ngrid: {iodepth: [1, 2, 4]}\nrepeats: 10\n"
                                              "budget: 2s\n"))
    assert spec.budget == 2.0
    data = str(tmp_path / "data")
    t0 = time.monotonic()
    out = sweeping.run_sweep(spec, data=data, directory=str(tmp_path / "s"))
    took = time.monotonic() - t0
    assert out["cut"] and out["done"] + len(out["cut"]) == 30 and 3 <= out["done"] < 30
    assert took < 2.0 + 1.5, took          # the budget, and what setting up the sweep costs
    # rounds are cut whole from the end: every point has all but at most one of the others' repeats
    results = store.load(out["machine"], spec.suite, data)
    counts = pd.Series([r.data["tags"]["point"]["iodepth"] for r in results]).value_counts()
    assert counts.max() - counts.min() <= 1
    assert all(r.data["tags"]["budget_s"] == 2.0 for r in results)
    table = kn.sweep_stats(store.frame(out["machine"], spec.suite, data))
    assert any("fewer repeats than the 10 planned" in s for s in kn.measurement_text(table))


@pytest.mark.parametrize("line, problem", [
    ("budget: soon", "budget: must be a time above 0 like 90s, 10m or 1h (got 'soon')"),
    ("budget: 0", "budget: must be a time above 0"),
    ("budget: -5m", "budget: must be a time above 0"),
    ("budget: [1]", "budget: must be a time above 0"),
    ("reruns: -1", "reruns: must be an integer from 0 to 100"),
    ("reruns: yes", "reruns: must be an integer from 0 to 100"),
    ("seed: 1.5", "seed: must be an integer from 0 to 4294967295"),
])
def test_bad_order_options_are_one_line_and_write_nothing(tmp_path, line, problem):
    spec = _spec(tmp_path, f"name: bad\nbase: {{rw: randread, size: 1m, runtime: 0.1, time_based: 1}}\n"
                           f"grid: {{iodepth: [1]}}\n{line}\n")
    before = sorted(os.listdir(tmp_path))
    p = run_kit("sweep", spec, "--data=data", "--reports=reports", "--directory=s", cwd=str(tmp_path))
    assert p.returncode == 2 and problem in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "Traceback" not in p.stderr and sorted(os.listdir(tmp_path)) == before


def test_the_default_sweep_and_a_budget_in_minutes_read_back():
    default = sweeping.load_spec(os.path.join(os.path.dirname(sweeping.__file__), "sweeps", "engines.yml"))
    assert default.repeats == 5 and default.reruns >= 1
    spec = sweeping.from_dict({"name": "b", "grid": {"iodepth": [1]}, "budget": "10m", "seed": 3})
    assert (spec.budget, spec.seed, spec.reruns) == (600.0, 3, 0)


# ---- other I/O on the device -----------------------------------------------------------------

def _moved(dev):
    st = host.block_stat(host.parse_dev(open(f"/sys/class/block/{os.path.basename(dev)}/dev").read()))
    return st["read_sectors"] + st["write_sectors"]


def _settled(dev, quiet_s=0.5, limit_s=20):
    """Waits until nothing moves on the device for quiet_s: a new ext4
    zeroes its inode tables in the background (ext4lazyinit), which is
    other I/O indeed, but not what this test stages."""
    end = time.monotonic() + limit_s
    last = _moved(dev)
    while time.monotonic() < end:
        time.sleep(quiet_s)
        now = _moved(dev)
        if now == last:
            return
        last = now


def test_other_io_on_the_device_is_counted_beside_kits_own(tmp_path):
    with loop_device(fs="ext4") as (dev, mnt):
        job = kit.Job(rw="randread", bs="4k", size="16m", runtime=0.6, time_based=True, direct=True, directory=mnt)
        kit.run(job, progress=False)                # files made and filled before anything is judged
        _settled(dev)
        quiet = kit.run(job, progress=False).data["process"]["machine_during_run"]
        io = quiet["device_io"]
        assert io["devices"] == [os.path.basename(dev)] and io["kit_ios"] > 100
        # direct reads reach the device one for one: nothing else moved
        assert io["read_bytes"] >= io["kit_bytes"] and io["others_bytes"] < 64 << 10 and not quiet["device_busy"]
        reader = subprocess.Popen(["sh", "-c", f"while :; do dd if={dev} of=/dev/null bs=1M iflag=direct; done"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            started = _moved(dev)
            while _moved(dev) < started + (4 << 11):           # the reader has moved 4 MiB: it is running
                time.sleep(0.01)
            busy = kit.run(job, progress=False)
        finally:
            os.killpg(reader.pid, signal.SIGKILL)       # the loop and its dd
            reader.wait()
        load = busy.data["process"]["machine_during_run"]
        assert load["device_busy"] and load["busy"] and load["device_io"]["others_bytes"] > 1 << 20
        assert any("others moved" in n and os.path.basename(dev) in n for n in busy.data["notes"])
        assert kit.results.Result.from_dict(json.loads(busy.to_json())).data["process"]["machine_during_run"][
            "device_io"]["others_bytes"] == load["device_io"]["others_bytes"]
        # direct writes reach the device one for one too; with fsync the filesystem adds its journal: not judged
        _settled(dev)
        writes = kit.run(job.replace(rw="randwrite"), progress=False).data["process"]["machine_during_run"]
        assert writes["device_io"]["write_bytes"] >= writes["device_io"]["kit_bytes"] > 0
        assert writes["device_io"]["others_bytes"] < 256 << 10 and not writes["device_busy"]
        synced = kit.run(job.replace(rw="randwrite", fsync=1), progress=False).data["process"]["machine_during_run"]
        assert synced["device_io"]["others_bytes"] is None and "journal" in synced["device_io"]["why_not_judged"]
        # buffered: the page cache stands between, so both counts stand and nothing is judged
        cached = kit.run(job.replace(direct=False, pre_read=True), progress=False).data["process"][
            "machine_during_run"]
        assert cached["device_io"]["others_bytes"] is None and not cached["device_busy"]
        assert cached["device_io"]["kit_bytes"] > 0


def test_kit_sweep_says_what_its_budget_cut(tmp_path):
    spec = _spec(tmp_path, "name: cli\nbase: {rw: randread, size: 1m, runtime: 0.1, time_based: 1}\n"
                           "grid: {iodepth: [1, 2]}\nrepeats: 20\nbudget: 1s\n")
    p = run_kit("sweep", spec, "--data=data", "--no-publish", "--directory=s", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    line = next(l for l in p.stdout.splitlines() if "budget" in l)
    assert line.startswith("kit sweep cli: the time budget cut ") and "run(s) (first: iodepth=" in line


def test_ctrl_c_during_the_warm_up_stops_the_sweep_and_stores_nothing(tmp_path, monkeypatch):
    from conftest import interrupt_kit
    spec = _spec(tmp_path, "name: stop\nbase: {rw: randread, size: 1g, runtime: 0.2, time_based: 1, direct: 1}\n"
                           "grid: {iodepth: [1, 2]}\nrepeats: 2\n")
    monkeypatch.chdir(tmp_path)         # interrupt_kit runs kit here
    took, code, _out, err = interrupt_kit(["sweep", spec, "--data=data", "--no-publish", "--directory=s"],
                                          signal.SIGINT, 1.5)
    assert code == 130 and took < 3, (code, err)
    assert "Traceback" not in err and "interrupted" in err
    stored = [f for _d, _s, files in os.walk(tmp_path / "data") for f in files if f.endswith(".json")
              and f != "machine.json"]
    assert stored == []
