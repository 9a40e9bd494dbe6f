"""History, regressions and machines side by side: the store keeps every run,
kit.compare says slower / faster / no clear difference only on evidence,
`kit compare` prints it, and the history and machines pages publish it."""
import copy
import os
import re
import shutil
import stat

import pytest

from conftest import require, run_kit
from test_reports import table_with, tables
import kit
from kit import compare, publish, store
from kit.errors import OptionError, RunError
from kit.results import Result

ENGINES = ("sync", "posix-aio", "linux-aio", "io_uring", "io_uring-enhanced", "threadpool")
T0 = 1_790_000_000_000          # ms: when the hand-built runs below were "measured"


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """One real run (its whole document: job, machine, bins), the template of
    the hand-built results whose figures the tests set."""
    scratch = tmp_path_factory.mktemp("scratch")
    return kit.run(kit.Job(rw="randread", size="1m", number_ios=200, directory=str(scratch)), progress=False)


def made(template, iops, ms, machine=None, p99=None):
    """template's document with its IOPS (and p99 clat), measuring time and
    machine set: a result with known figures."""
    data = copy.deepcopy(template.data)
    data["total"]["read"]["iops"] = float(iops)
    if p99 is not None:
        data["total"]["read"]["clat_ns"]["percentile"]["99.000000"] = p99
    data["timestamp_ms"], data["timestamp"] = ms, ms // 1000
    if machine:
        data["machine"] = {**data["machine"], "name": machine}
    return Result(data)


def save_engines_run(template, data, machine, ms, iops_of):
    """A `kit report`'s engines table: every scenario and engine, saved as
    the engines suite saves them."""
    for i, (scenario, engine) in enumerate((s, e) for s in ("direct", "buffered") for e in ENGINES):
        r = made(template, iops_of(scenario, engine), ms + i * 100, machine)
        store.save(r, "engines", f"{scenario}-{engine}", tags={"scenario": scenario, "section": engine}, data=data)


def save_engines_batch(template, data, machine, ms, iops_of, repeats=3, batch=1):
    """The engines table as kit measures it now: every engine `repeats`
    times (keys <scenario>-<engine>-r<repeat>), one batch, figures within
    ±0.2 % of iops_of."""
    i = 0
    for scenario in ("direct", "buffered"):
        for r in range(1, repeats + 1):
            for engine in ENGINES:
                value = iops_of(scenario, engine) * (1 + 0.002 * ((r % 3) - 1))
                store.save(made(template, value, ms + i * 100, machine), "engines", f"{scenario}-{engine}-r{r}",
                           tags={"scenario": scenario, "section": engine, "batch": batch, "repeat": r}, data=data)
                i += 1


def base_iops(scenario, engine):
    return (10_000 if scenario == "direct" else 50_000) * (1 + ENGINES.index(engine))


# ---- the store keeps every run ------------------------------------------------------

def test_two_saves_of_one_key_keep_both_latest_first(measured, tmp_path):
    data = str(tmp_path / "data")
    old, new = made(measured, 1000, T0, "box"), made(measured, 2000, T0 + 60_000, "box")
    first = store.save(old, "engines", "direct-sync", data=data)
    second = store.save(new, "engines", "direct-sync", data=data)
    assert first == second                                      # the latest keeps its name
    assert [r.iops for r in store.load("box", "engines", data)] == [2000]
    assert [r.iops for r in store.load("box", "engines", data, history=True)] == [2000, 1000]
    kept = os.listdir(store.history_dir(second))
    assert kept == [f"{T0:013d}-" + kept[0].split("-")[1]] and kept[0].endswith(".json")
    assert store.has_history("box", data)
    assert store.machines(data)[0]["results"] == 1               # readers of the latest see one per key
    # saving the same result again keeps one copy of the one it replaces, not two
    store.save(new, "engines", "direct-sync", data=data)
    assert [r.iops for r in store.load("box", "engines", data, history=True)] == [2000, 2000, 1000]
    store.save(new, "engines", "direct-sync", data=data)
    assert len(os.listdir(store.history_dir(second))) == 2


def test_saves_of_one_key_at_once_keep_every_result(measured, tmp_path):
    """Two writers of one key (threads here; the lock is the folder's, so
    processes alike): every result they saved is in the key's history."""
    import threading
    data = str(tmp_path / "data")
    store.save(made(measured, 1, T0, "box"), "engines", "direct-sync", data=data)

    def writer(first):
        for i in range(first, first + 40, 2):
            store.save(made(measured, 1000 + i, T0 + 10 + i, "box"), "engines", "direct-sync", data=data)
    threads = [threading.Thread(target=writer, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = sorted(r.iops for r in store.load("box", "engines", data, history=True))
    assert kept == [1] + [1000 + i for i in range(40)]


def test_a_save_never_destroys_what_it_replaces(measured, tmp_path):
    data = str(tmp_path / "data")
    path = store.save(made(measured, 1000, T0, "box"), "engines", "direct-sync", data=data)
    with open(path, "w") as fh:
        fh.write("not kit's")                                   # someone's file where a result was
    store.save(made(measured, 2000, T0 + 1000, "box"), "engines", "direct-sync", data=data)
    (kept,) = os.listdir(store.history_dir(path))
    assert kept.startswith("0000000000000-")                    # no time to name it by: kept all the same
    with open(os.path.join(store.history_dir(path), kept)) as fh:
        assert fh.read() == "not kit's"
    # a FIFO where a result was is never opened (a reader would hang): its entry is kept
    fifo = store.result_path("box", "engines", "buffered-sync", data)
    os.mkfifo(fifo)
    store.save(made(measured, 1500, T0 + 1500, "box"), "engines", "buffered-sync", data=data)
    (kept,) = os.listdir(store.history_dir(fifo))
    assert stat.S_ISFIFO(os.lstat(os.path.join(store.history_dir(fifo), kept)).st_mode)
    assert [r.iops for r in store.load("box", "engines", data) if r.data["tags"]["key"] == "buffered-sync"] == [1500]
    # a .history that is a link is not kit's folder: refused, nothing written through it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(os.path.dirname(store.history_dir(path)))
    os.symlink(elsewhere, os.path.dirname(store.history_dir(path)))
    with pytest.raises(RunError, match=r"\.history is not a folder kit made"):
        store.save(made(measured, 3000, T0 + 2000, "box"), "engines", "direct-sync", data=data)
    assert os.listdir(elsewhere) == []
    assert [r.iops for r in store.load("box", "engines", data)] == [1500, 2000]


def test_a_store_from_before_history_still_reads(measured, tmp_path):
    """The layout before history: <suite>/<key>.json only."""
    data = tmp_path / "data"
    (data / "old" / "engines").mkdir(parents=True)
    r = made(measured, 1234, T0, "old")
    store.save_machine(r.data["machine"], str(data))
    r.data["tags"] = {"suite": "engines", "key": "direct-sync", "scenario": "direct", "section": "sync"}
    (data / "old" / "engines" / "direct-sync.json").write_text(r.to_json())
    for history in (False, True):
        assert [x.iops for x in store.load("old", data=str(data), history=history)] == [1234]
    assert not store.has_history("old", str(data))
    runs = compare.runs(store.load("old", data=str(data), history=True))
    assert [(x["number"], len(x["results"])) for x in runs] == [(1, 1)]
    p = run_kit("compare", "old", f"--data={data}")
    assert p.returncode == 0, p.stderr
    assert "old: 1 run in" in p.stdout and "One run so far" in p.stdout


def test_a_resumed_sweep_measures_nothing_again(tmp_path):
    from kit.sweep import load_spec, run_sweep
    spec = tmp_path / "tiny.yml"
    spec.write_text("name: tiny\nbase: {rw: randread, size: 1m, runtime: 0.1, time_based: 1}\n"
                    "grid: {iodepth: [1, 2]}\nrepeats: 1\n")
    data, scratch = str(tmp_path / "data"), str(tmp_path / "scratch")
    first = run_sweep(load_spec(str(spec)), data=data, directory=scratch)
    again = run_sweep(load_spec(str(spec)), data=data, directory=scratch)
    assert (first["done"], again["done"], again["skipped"]) == (2, 0, 2)
    assert not store.has_history(first["machine"], data)
    assert len(store.load(first["machine"], first["suite"], data, history=True)) == 2


# ---- verdicts on known figures ---------------------------------------------------------

def test_a_30_percent_drop_with_tight_repeats_is_slower():
    a = [100_000, 100_400, 99_700, 100_200, 99_900]
    b = [70_000, 70_300, 69_800, 70_100, 69_900]
    d = compare.difference(a, b)
    assert d["verdict"] == "slower" and d["ratio"] == pytest.approx(0.7, abs=0.005)
    assert d["p"] == pytest.approx(2 / 252)                 # every one of B below every one of A: 2 / C(10, 5)
    assert d["why"] == ("-30.0 %; a rank test puts the repeats apart (p = 0.008; 100,000 (95 % interval 99,700 to "
                        "100,400, 5 repeats) against 70,000 (95 % interval 69,800 to 70,300, 5 repeats))")
    assert compare.difference(b, a)["verdict"] == "faster"
    # latency: higher is worse; 4 repeats a side are the fewest a rank test can separate at 5 %
    assert compare.difference([10, 10.1, 9.9, 10.05], [20, 20.2, 19.8, 20.1], higher_is_better=False,
                              words=("higher", "lower"))["verdict"] == "higher"


def test_one_sample_each_is_never_a_difference():
    """Two runs of one job on this VM differ by up to 20 %: one sample a
    side says nothing of that noise, however large the change."""
    d = compare.difference([650_172], [777_000])
    assert d["verdict"] == "no clear difference"
    assert d["why"] == ("one sample each: a difference of +19.5 % cannot be told from run-to-run noise; measure "
                        "repeats (4 or more on each side)")
    assert compare.difference([100_000], [50_000])["verdict"] == "no clear difference"
    # a single sample outside the other side's few repeats: 1 time in 3 by chance with 2 of them
    d = compare.difference([100_000, 100_100], [88_000])
    assert d["verdict"] == "no clear difference"
    assert "2 repeats against one sample cannot tell a difference" in d["why"] and "measure 4 or more" in d["why"]
    assert compare.difference([85_000, 100_000, 115_000], [80_000])["verdict"] == "no clear difference"


def test_few_repeats_need_more_than_ranges_apart():
    # two each, ranges apart: by chance 1 time in 3; three each: 1 in 10
    for n in (2, 3):
        d = compare.difference([100_000 + i for i in range(n)], [120_000 + i for i in range(n)])
        assert d["verdict"] == "no clear difference", n
        assert f"{n} repeats against {n} repeats cannot tell a difference" in d["why"], d["why"]
        assert "measure 4 or more repeats on each side" in d["why"]
    d = compare.difference([100_000 + i for i in range(4)], [120_000 + i for i in range(4)])
    assert d["verdict"] == "faster" and "p = 0.029" in d["why"]


def test_overlapping_repeats_are_no_clear_difference():
    d = compare.difference([80_000, 100_000, 120_000, 95_000], [90_000, 110_000, 130_000, 105_000])
    assert d["verdict"] == "no clear difference" and "a rank test cannot tell the repeats apart (p = 0.486" in d["why"]
    # apart, but a change too small to claim
    d = compare.difference([100_000, 100_050, 99_950, 100_020], [103_000, 103_050, 102_950, 103_020])
    assert d["verdict"] == "no clear difference" and "but by no more than 5 %" in d["why"]
    # a change below the precision shown is none, and no interval text contradicts it
    d = compare.difference([100] * 5, [100.0001] * 5)
    assert d["verdict"] == "no clear difference"
    assert d["why"] == "+0.0 %: no difference at the precision shown (100 against 100)"
    # nothing measured on one side
    d = compare.difference([float("nan")], [100_000])
    assert d["verdict"] == "not compared" and d["why"] == "no figure in A"


def test_results_pair_by_what_they_measured(measured):
    def tagged(iops, ms, suite, key, **tags):
        r = made(measured, iops, ms)
        r.data["tags"] = {"suite": suite, "key": key, **tags}
        return r
    a = [tagged(1000, T0, "engines", "direct-sync"), tagged(5000, T0, "engines", "direct-io_uring"),
         tagged(7000, T0, "engines", "direct-threadpool")]
    a += [tagged(v, T0 + i, "sweep-q", f"iodepth=1-abc-r{i}", point={"iodepth": 1}, repeat=i)
          for i, v in enumerate((100_000, 100_400, 99_700, 100_100), 1)]
    b = [tagged(1020, T0 + 9, "engines", "direct-sync"), tagged(3000, T0 + 9, "engines", "direct-io_uring"),
         tagged(9000, T0 + 9, "engines", "direct-null")]
    b += [tagged(v, T0 + 9 + i, "sweep-q", f"iodepth=1-def-r{i}", point={"iodepth": 1}, repeat=i)
          for i, v in enumerate((70_000, 70_300, 69_800, 70_100), 1)]
    changed = copy.deepcopy(a[2].data)
    changed["job"]["bs"] = 8192
    b.append(Result({**changed, "timestamp_ms": T0 + 20}))
    out = compare.compare(a, b)
    rows = out["rows"].set_index("what")
    assert rows.loc["engines: direct-sync", "verdict"] == "no clear difference"         # +2 %, one sample
    assert rows.loc["engines: direct-io_uring", "verdict"] == "no clear difference"     # -40 %, one sample each
    assert rows.loc["engines: direct-io_uring", "why"].startswith("one sample each: a difference of -40.0 %")
    assert rows.loc["engines: direct-threadpool", "verdict"] == "not compared"          # another job
    assert "the jobs differ: bs 4096 vs 8192" in rows.loc["engines: direct-threadpool", "why"]
    sweep = rows.loc["sweep-q: iodepth=1"]                     # four repeats a side, one pair
    assert (sweep["a_n"], sweep["b_n"], sweep["verdict"]) == (4, 4, "slower")
    assert out["only_b"] == ["engines: direct-null"] and out["only_a"] == []
    assert compare.compare(a, a)["same"] and compare.compare(a, a)["rows"].empty


def test_engines_tables_of_machines_with_other_cpu_counts_are_compared(measured):
    """The seed's recipe is jobs per CPU: a 4-CPU box runs twice the job
    threads of a 2-CPU VM, and their engines rows still pair; other jobs
    (or another number per CPU) do not."""
    def engines(iops, ms, cpus, numjobs, suite="engines"):
        r = made(measured, iops, ms, machine=f"box{cpus}")
        r.data["machine"] = {**r.data["machine"], "cpu": {**(r.data["machine"].get("cpu") or {}), "count": cpus}}
        r.data["job"]["numjobs"] = numjobs
        r.data["tags"] = {"suite": suite, "key": "direct-sync"}
        return r
    rows = compare.compare([engines(10_000, T0, 2, 4)], [engines(20_000, T0 + 1, 4, 8)])["rows"]
    assert list(rows["verdict"]) == ["no clear difference"]                             # compared: one sample each
    assert rows["why"][0].startswith("one sample each: a difference of +100.0 %")
    rows = compare.compare([engines(10_000, T0, 2, 4)], [engines(20_000, T0 + 1, 4, 6)])["rows"]
    assert list(rows["verdict"]) == ["not compared"] and "numjobs 4 vs 6" in rows["why"][0]
    rows = compare.compare([engines(10_000, T0, 2, 4, "sweep-x")], [engines(20_000, T0 + 1, 4, 8, "sweep-x")])["rows"]
    assert list(rows["verdict"]) == ["not compared"]


# ---- kit compare ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_machines(measured, tmp_path_factory):
    """box-a (four repeats per engine): two engines runs, direct io_uring 30 %
    slower in the second; box-b (four repeats per engine): one run, every
    median 2 % above box-a's first."""
    data = str(tmp_path_factory.mktemp("store") / "data")
    save_engines_batch(measured, data, "box-a", T0, base_iops, repeats=4, batch=1)
    save_engines_batch(measured, data, "box-a", T0 + 3_600_000,
                       lambda s, e: base_iops(s, e) * (0.7 if (s, e) == ("direct", "io_uring") else 1.01),
                       repeats=4, batch=2)
    save_engines_batch(measured, data, "box-b", T0 + 7_200_000, lambda s, e: base_iops(s, e) * 1.02, repeats=4)
    return data


def test_repeats_are_one_measurement_and_only_the_newest_batch_counts(measured, tmp_path):
    """The engines tables as kit measures them now: a 30 % drop with tight
    repeats is a regression on a rank test's evidence, and the fifth
    repeat an earlier batch left behind (a re-run) is not a sample of the
    next one."""
    data = str(tmp_path / "data")
    save_engines_batch(measured, data, "box", T0, base_iops, repeats=5, batch=11)
    save_engines_batch(measured, data, "box", T0 + 3_600_000,
                       lambda s, e: base_iops(s, e) * (0.7 if (s, e) == ("direct", "io_uring") else 0.97),
                       repeats=4, batch=12)
    history = store.load("box", data=data, history=True)
    assert [len(r["results"]) for r in compare.runs(history)] == [60, 48]
    before, now = compare.previous_and_latest(history)
    rows = compare.compare(before, now)["rows"].set_index("what")
    assert len(rows) == 12
    io_uring = rows.loc["engines: direct-io_uring"]
    assert (io_uring["a_n"], io_uring["b_n"], io_uring["verdict"]) == (5, 4, "slower")
    assert "a rank test puts the repeats apart (p = 0.016;" in io_uring["why"]           # 2 / C(9, 4)
    assert "5 repeats) against 28,000 (range " in io_uring["why"]
    assert io_uring["iops_ratio"] == pytest.approx(0.7, abs=0.005)
    sync = rows.loc["engines: direct-sync"]                     # -3 %: real, but under the line drawn
    assert sync["verdict"] == "no clear difference" and "but by no more than 5 %" in sync["why"]
    table = compare.measurements(now).set_index("what")
    assert table.loc["engines: direct-io_uring", "samples"] == 4
    assert table.loc["engines: direct-io_uring", "iops"] == pytest.approx(28_000)


def test_kit_compare_two_runs_of_a_machine(two_machines):
    p = run_kit("compare", "box-a@1", "box-a@-1", f"--data={two_machines}")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("A: box-a as of run 1 (measured ") and lines[1].startswith("B: box-a as of run 2")
    header = next(line for line in lines if line.startswith("what"))
    assert re.split(r"\s{2,}", header) == ["what", "A IOPS", "B IOPS", "B/A", "A p99", "B p99", "B/A", "verdict"]
    row = next(line for line in lines if line.startswith("engines: direct-io_uring "))
    assert "40,000" in row and "28,000" in row and " 0.70 " in row
    assert "slower: -30.0 %; a rank test puts the repeats apart (p = 0.029; 40,000 (range " in row
    sync = next(line for line in lines if line.startswith("engines: direct-sync "))
    assert "no clear difference: +1.0 %: the repeats differ (rank test p = 0.029;" in sync
    assert "B against A: 1 slower, 11 no clear difference. A difference is claimed only where a rank test" in p.stdout
    # one machine alone: its runs, then the newest against the one before
    p = run_kit("compare", "box-a", f"--data={two_machines}")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("box-a: 2 runs in ")
    assert re.search(r"^\s+1\s+\S+ \S+ to \S+ UTC\s+48\s+engines\s+" + re.escape(kit.__version__), p.stdout, re.M)
    assert "The newest run against the one before (kit compare box-a@-2 box-a)" in p.stdout
    assert "1 slower, 11 no clear difference" in p.stdout
    # as of a time: the end of the first run's day is after both runs
    p = run_kit("compare", "box-a@2026-01-01T00:00", "box-b", f"--data={two_machines}")
    assert p.returncode == 2 and "box-a has no results measured by 2026-01-01 00:00:59 UTC" in p.stderr


def test_kit_compare_two_machines_and_two_files(two_machines, tmp_path):
    p = run_kit("compare", "box-a", "box-b", f"--data={two_machines}")
    assert p.returncode == 0, p.stderr
    io_uring = next(line for line in p.stdout.splitlines() if line.startswith("engines: direct-io_uring "))
    # 1.02 / 0.7, medians of four repeats a side
    assert "faster: +45.7 %; a rank test puts the repeats apart (p = 0.029;" in io_uring
    assert "40,800 (n=4)" in io_uring
    folder = os.path.join(two_machines, "box-a", "engines")
    before = sorted(os.listdir(tmp_path))
    p = run_kit("compare", os.path.join(folder, "direct-sync-r1.json"), os.path.join(folder, "direct-io_uring-r1.json"))
    assert p.returncode == 0, p.stderr
    # two files of one result each: compared, and no difference claimed from one sample each
    assert "B/A" in p.stdout and ("no clear difference: one sample each: a difference of +177.2 % cannot be told "
                                  "from run-to-run noise; measure repeats (4 or more on each side)") in p.stdout
    assert sorted(os.listdir(tmp_path)) == before                                       # compare writes nothing


@pytest.mark.parametrize("args, words", [
    (("nosuch", "box-a"), "'nosuch' is neither a result file nor a machine in "),
    (("box-a@9", "box-a"), "box-a@9: there are 2 runs (use 1 to 2, or -1 for the newest"),
    (("box-a@2026-13-01", "box-a"), "box-a@2026-13-01: after @, a run number"),
    (("box-a", "/nonexistent/r.json"), "/nonexistent/r.json: no such result file"),
    (("nosuch",), "'nosuch' is not a machine in "),
])
def test_kit_compare_bad_input_is_one_line_exit_2(two_machines, args, words):
    p = run_kit("compare", *args, f"--data={two_machines}")
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and words in p.stderr, p.stderr
    assert p.stderr.startswith("kit compare: error: ")


# ---- the pages --------------------------------------------------------------------------

def test_history_and_machines_pages(two_machines, tmp_path):
    data, reports = str(tmp_path / "data"), str(tmp_path / "reports")
    shutil.copytree(two_machines, data)
    fp = store.load_machine("box-b", data)["fingerprint"]
    store.save_machine({**fp, "name": "box-c"}, data)            # a machine with no results yet
    written = publish.publish(data, reports, notebooks=("history", "machines"))
    names = sorted(os.path.relpath(p, reports) for p in written)
    # box-b has one run: no history page for it
    assert names == ["box-a/history.html", "machines.html"]
    index = open(os.path.join(reports, "index.html")).read()
    assert '<a href="machines.html">Machines side by side</a>' in index
    assert 'href="box-a/history.html"' in index and "box-b/history.html" not in index
    for page in names:
        text = open(os.path.join(reports, page)).read()
        visible = re.sub(r"<style.*?</style>|<script.*?</script>|<[^>]+>", " ", text, flags=re.S)
        for word in ("nan", "None", "NaN", "Traceback"):
            assert not re.search(rf"\b{word}\b", visible), (page, word)
        assert text.count("data:image/png;base64") >= 2, page
        assert 'href="data:text/csv;base64,' in text
        assert "<script src=\"http" not in text
    machines = os.path.join(reports, "machines.html")
    assert 'href="index.html"' in open(machines).read()
    assert "No engines results for box-c" in open(machines).read()
    direct = next(t for t in tables(machines) if t and t[0][:3] == ["engine", "box-b", "box-a"])
    assert [r[0] for r in direct[1:]] == list(ENGINES)
    io_uring = next(r for r in direct if r[0] == "io_uring")
    assert io_uring[1:4] == ["40,800", "28,000", "0.69"]
    assert io_uring[4].startswith("slower (-31.4 %")
    history = os.path.join(reports, "box-a", "history.html")
    runs = table_with(history, "kernel")
    assert [r[0] for r in runs[1:]] == ["1", "2"] and all(r[2] == "48" for r in runs[1:])
    flags = table_with(history, "verdict")
    row = next(r for r in flags if r[0] == "engines: direct-io_uring")
    assert row[1:4] == ["40,000", "28,000", "0.70"] and row[6] == "slower"
    assert sum(r[6] == "no clear difference" for r in flags[1:]) == 11
    assert "Slower</strong> than the run before, beyond the noise: engines: direct-io_uring (-30.0 %)" in \
        open(history).read()
    # both pages as a reader sees them: every plot drawn, nothing fetched, no script error
    require(os.path.exists("/usr/bin/chromium"), "chromium is not installed (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright (python) is not installed")
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(r.url))
        for path in (machines, history):
            page.goto(f"file://{path}")
            images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
            assert len(images) >= 2 and all(done and width > 0 for done, width in images), path
        page.click("a.kit-nav, .kit-nav a")
        page.wait_for_load_state("load")
        assert page.url.endswith("/index.html") and page.title() == "kit reports"
        browser.close()
    assert errors == []


def test_one_machine_publishes_no_machines_page(two_machines, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(os.path.join(two_machines, "box-b"), data / "box-b")
    names = [name for name, _params, _page in publish.report_names("box-b", str(data))]
    assert "history" not in names and "machines" not in names and "engines" in names
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "machines.html").write_text("from when there were two")
    index = publish.write_index(str(tmp_path / "reports"), str(data))
    assert "machines.html" not in open(index).read()


def test_machines_page_reference_is_checked(two_machines):
    with pytest.raises(OptionError, match=r"parameter reference: 'nosuch' is not a machine in .*box-a"):
        publish.execute("machines", {"data_dir": two_machines, "reference": "nosuch"})
