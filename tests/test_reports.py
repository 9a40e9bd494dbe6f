"""Notebooks under papermill, the store, sweeps that resume, and the published
HTML opened in a real headless Chromium."""
import contextlib
import functools
import html.parser
import http.server
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import KIT, REPO, require, run_kit
from kit import publish, store
from kit.errors import OptionError


class _Tables(html.parser.HTMLParser):
    """Every <table> of a page as rows of cell texts."""

    def __init__(self):
        super().__init__()
        self.tables, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
            self.tables[-1].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables(path):
    p = _Tables()
    with open(path) as fh:
        p.feed(fh.read())
    return p.tables


def table_with(path, header):
    return next(t for t in tables(path) if t and header in t[0])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """`kit report --quick` once: every suite measured, every notebook published."""
    root = tmp_path_factory.mktemp("report")
    data, reports, scratch = root / "data", root / "reports", root / "scratch"
    p = run_kit("report", "--quick", f"--data={data}", f"--reports={reports}", f"--directory={scratch}",
                cwd=root, timeout=600)
    assert p.returncode == 0, p.stderr
    machine = store.machines(str(data))[0]["name"]
    return {"data": str(data), "reports": str(reports), "machine": machine, "root": str(root),
            "dir": os.path.join(str(reports), machine), "stdout": p.stdout}


def test_report_writes_store_and_every_notebook(report):
    names = sorted(os.listdir(report["dir"]))
    assert names == ["anatomy.html", "engines.html", "machine.html", "network.html", "sweep-engines-quick.html"]
    folder = os.path.join(report["data"], report["machine"])
    assert {"machine.json", "capabilities.json", "engines", "anatomy", "sweep-engines-quick"} <= set(os.listdir(folder))
    with open(os.path.join(folder, "machine.json")) as fh:
        assert json.load(fh)["version"] == store.MACHINE_VERSION
    for r in store.load(report["machine"], data=report["data"]):
        assert r.data["source_hash"] and r.data["machine"]["name"] == report["machine"]
        assert r.data["tags"]["suite"] and r.ios > 0
    for page in names:
        text = open(os.path.join(report["dir"], page)).read()
        assert "<script src=\"http" not in text            # self-contained
        assert report["machine"] in text and "kit" in text


def test_engines_report_has_both_tables_one_row_per_engine(report):
    path = os.path.join(report["dir"], "engines.html")
    found = [t for t in tables(path) if t and "IOPS" in t[0] and "engine" in t[0]]
    assert len(found) == 2                                 # direct and buffered
    for t in found:
        header, rows = t[0], t[1:]
        assert [r[0] for r in rows] == ["sync", "posix-aio", "linux-aio", "io_uring", "io_uring-enhanced",
                                        "boost-asio", "boost-asio-pool", "std-async", "threadpool"]
        iops = header.index("IOPS")
        assert all(float(r[iops].replace(",", "")) > 0 for r in rows)
        vs = header.index("IOPS vs io_uring %")
        assert [r[vs] for r in rows if r[0] == "io_uring"] == ["+0.0"]
    text = open(path).read()
    assert text.count("data:image/png;base64") >= 2
    # the sentence computed from the data: a fastest engine only where the repeats' intervals say so
    assert "is fastest at" in text or "no engine is clearly fastest" in text or "Ranking withheld" in text
    assert "Repeats were interleaved" in text               # how the runs were ordered and warmed up


def test_sweep_report_has_points_and_curves(report):
    path = os.path.join(report["dir"], "sweep-engines-quick.html")
    stats = table_with(path, "IOPS interval (95 %; the range below 5 repeats)")
    # two engines x two depths x two block sizes, two repeats each
    assert len(stats) - 1 == 8
    assert all(r[stats[0].index("repeats")] == "2" for r in stats[1:])
    assert open(path).read().count("data:image/png;base64") >= 2


def test_anatomy_and_machine_reports(report):
    anatomy = open(os.path.join(report["dir"], "anatomy.html")).read()
    t = table_with(os.path.join(report["dir"], "anatomy.html"), "device share")
    from kit.engines import variants
    assert [r[0] for r in t[1:]] == [name for name, _options in variants()]     # every engine, from the registry
    assert {"io_uring-sqpoll", "io_uring-async"} <= {r[0] for r in t[1:]}
    assert "Context switches per I/O, by who switched" in anatomy
    roles = table_with(os.path.join(report["dir"], "anatomy.html"), "io_uring SQPOLL thread (iou-sqp)")
    sqpoll = next(r for r in roles if r[0] == "io_uring-sqpoll")
    assert float(sqpoll[roles[0].index("io_uring SQPOLL thread (iou-sqp)")]) > 0   # iou-sqp was seen, per I/O
    assert anatomy.count("data:image/png;base64") >= 3
    assert "Device latency over time, request by request" in anatomy       # the block tracer's records
    machine = os.path.join(report["dir"], "machine.html")
    text = open(machine).read()
    assert os.uname().release in text
    caps = table_with(machine, "engine / feature")
    assert {r[0] for r in caps[1:]} >= {"psync", "io_uring", "io_uring.fixedbufs", "io_uring.hipri"}


def test_index_lists_machines_and_links(report):
    index = os.path.join(report["reports"], "index.html")
    rows = table_with(index, "machine")
    assert rows[1][0] == report["machine"]
    text = open(index).read()
    for page in os.listdir(report["dir"]):
        assert f'href="{report["machine"]}/{page}"' in text


def test_another_machines_data_appears_in_the_index(report, tmp_path):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(report["data"], data)
    shutil.copytree(data / report["machine"], data / "lab-2")
    fp = json.loads((data / "lab-2" / "machine.json").read_text())
    fp["name"] = "lab-2"
    (data / "lab-2" / "machine.json").write_text(json.dumps(fp))
    index = publish.write_index(str(tmp_path / "reports"), str(data))
    rows = table_with(index, "machine")
    assert {r[0] for r in rows[1:]} == {report["machine"], "lab-2"}


def test_notebook_parameters_are_checked(report):
    """Parameters a notebook refuses are bad input (OptionError: exit 2 from
    the command line), in one line. The notebooks run publish.PAGES_AT_ONCE
    at a time, as publish runs them."""
    import re
    from concurrent.futures import ThreadPoolExecutor
    mine, data = report["machine"], report["data"]
    cases = [
        ("machine", {"machine": mine, "data_dir": data, "bogus": 1}, r"ParameterError: unknown parameter 'bogus'"),
        ("engines", {"machine": mine, "data_dir": data, "quick": "yes"}, "parameter quick: must be bool"),
        # a typo stops the page with one line instead of publishing it empty
        ("engines", {"machine": "nosuchbox", "data_dir": data},
         r"parameter machine: 'nosuchbox' has no results in .*\(machines there: "),
        ("anatomy", {"machine": mine, "data_dir": "/nonexistent"}, "parameter data_dir: '/nonexistent' is not a directory"),
        ("sweep", {"machine": mine, "data_dir": data, "sweep": "nosuch"},
         r"parameter sweep: no sweep 'nosuch' stored for .*\(stored: engines-quick\)"),
        ("sweep", {"machine": mine, "data_dir": data, "sweep": "nosuch", "measure": True},
         r"parameter sweep: no sweep 'nosuch' \(kit's: engines"),
    ]

    def refusal(case):
        notebook, parameters, _words = case
        with pytest.raises(OptionError) as e:
            publish.execute(notebook, parameters)
        return str(e.value)
    with ThreadPoolExecutor(publish.PAGES_AT_ONCE) as pool:
        lines = list(pool.map(refusal, cases))
    for (notebook, _parameters, words), line in zip(cases, lines):
        assert re.search(words, line) and "\n" not in line, (notebook, line)


def test_notebooks_use_kits_kernel():
    from jupyter_client.kernelspec import KernelSpecManager
    assert publish.ensure_kernel() == "kit"
    spec = KernelSpecManager().get_kernel_spec("kit")
    assert os.path.exists(spec.argv[0])
    found = publish.notebooks()
    assert set(found) == {f[:-6] for f in os.listdir(os.path.join(REPO, "notebooks")) if f.endswith(".ipynb")}
    for name in found:
        with open(os.path.join(REPO, "notebooks", f"{name}.ipynb")) as fh:
            nb = json.load(fh)
        assert nb["metadata"]["kernelspec"]["name"] == "kit"
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"])
        assert any("kn.setup(globals()" in "".join(c["source"]) for c in nb["cells"])    # the shared set-up


def test_a_new_report_is_one_notebook_file(report, tmp_path, monkeypatch):
    """publish finds notebooks: a new one placed beside the others is
    published for every machine, with its title in the index."""
    import shutil
    folder = tmp_path / "notebooks"
    shutil.copytree(os.path.join(REPO, "notebooks"), folder)
    with open(folder / "machine.ipynb") as fh:
        nb = json.load(fh)
    nb["metadata"]["kit"] = {"title": "Extra page", "order": 9}
    (folder / "extra.ipynb").write_text(json.dumps(nb))
    monkeypatch.setenv("KIT_NOTEBOOKS", str(folder))
    written = publish.publish(report["data"], str(tmp_path / "reports"), notebooks=("extra",))
    assert [os.path.basename(p) for p in written] == ["extra.html"]
    index = open(tmp_path / "reports" / "index.html").read()
    assert "Extra page</a>" in index


SWEEP = """
name: resume
base: {rw: randread, bs: 4k, size: 2m, runtime: 0.4, time_based: 1}
grid:
  ioengine: [psync, libaio]
  iodepth: [1, 2, 4]
repeats: 1
busy_retries: 0
"""


def test_interrupted_sweep_resumes_without_duplicates(tmp_path):
    spec = tmp_path / "resume.yml"
    spec.write_text(SWEEP)
    data = tmp_path / "data"
    args = [KIT, "sweep", str(spec), f"--data={data}", f"--directory={tmp_path / 'scratch'}", "--no-publish"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60

    def stored():
        return sorted(str(p.name) for p in data.glob("*/sweep-resume/*.json"))
    while len(stored()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    first = stored()
    assert proc.returncode == 130, err
    assert 2 <= len(first) < 6
    p = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"{len(first)} already stored" in p.stdout
    final = stored()
    assert len(final) == 6 and set(first) <= set(final)
    points = set()
    for path in data.glob("*/sweep-resume/*.json"):
        tags = json.loads(path.read_text())["tags"]
        points.add((tags["point"]["ioengine"], tags["point"]["iodepth"], tags["repeat"]))
    assert points == {(e, d, 1) for e in ("psync", "libaio") for d in (1, 2, 4)}


@pytest.mark.parametrize("text, words", [
    ("name: x\ngrid: {iodepth: 4}\n", "grid.iodepth: must be a non-empty list"),
    ("name: x\ngrid: {iodepth: [1]}\nrepeat: 3\n", "unknown key 'repeat'"),
    ("name: x\ngrid: {iodepth: [1, 0]}\n", "iodepth: must be from 1"),
    ("name: x\ngrid: {ioengine: [psync]}\nbase: {bs: huge}\n", "bs: must be a size"),
    ("grid: {iodepth: [1]}\n", "name: must be up to 100 letters"),
    ("name: [unclosed\n", "not valid YAML"),
    ("name: x\ngrid: {iodepth: [1]}\nbusy_retries: -1\n", "busy_retries: must be an integer from 0 to 10"),
])
def test_bad_sweep_files_are_one_line_and_write_nothing(tmp_path, text, words):
    spec = tmp_path / "bad.yml"
    spec.write_text(text)
    p = run_kit("sweep", str(spec), "--no-publish", cwd=tmp_path)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and words in p.stderr, p.stderr
    assert sorted(os.listdir(tmp_path)) == ["bad.yml"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(root):
    handler = functools.partial(_QuietHandler, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_reports_render_in_headless_chromium(report, tmp_path):
    require(os.path.exists("/usr/bin/chromium"), "chromium is not installed (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright (python) is not installed")
    from matplotlib import image
    server = _serve(report["reports"])
    base = f"http://127.0.0.1:{server.server_address[1]}"
    errors, failed = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                "--disable-background-networking", "--disable-component-update"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(f"{base}/index.html")
            assert page.title() == "kit reports"
            links = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
            assert len(links) == 5
            page.click(f"a[href='{report['machine']}/engines.html']")
            page.wait_for_load_state("load")
            assert page.url.endswith("/engines.html")
            images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
            assert len(images) >= 2 and all(done and width > 0 for done, width in images)
            shot = tmp_path / "engines.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        server.shutdown()
    assert errors == [] and failed == []
    pixels = image.imread(str(shot))
    assert pixels.shape[0] > 900 and pixels.std() > 0.05     # not a blank page


def test_anatomy_hides_a_drifting_device_depth(scratch):
    """A missed completion leaves its request 'in flight' for good: such a
    trace's depth is not shown, and the text says why."""
    import kit
    from kit import notebook
    r = kit.run(kit.Job(rw="randread", size="1m", number_ios=100, directory=scratch), progress=False, machine=False)
    block = {"read": {"requests": 100, "bytes": 409600, "lat_ns": {"mean": 40000.0}, "queue_ns": {"mean": 0},
                      "depth": {"1": 60, "2": 40}}}
    r.data["trace"] = {"block": dict(block), "sched": {"roles": {}}, "lost": {"total": 0}}
    r.data["tags"] = {"workload": "good"}
    good = notebook.anatomy_table([r])
    assert good.loc[0, "device_depth_mean"] == 1.4
    r.data["trace"]["block"]["depth_unreliable"] = "3 completions were missed"
    r.data["tags"] = {"workload": "drifting"}
    bad = notebook.anatomy_table([r])
    assert bad.loc[0, "device_depth_mean"] is None or bad["device_depth_mean"].isna().all()
    assert "device depth of drifting is not shown" in notebook.anatomy_text(bad)


def test_publish_names_and_skips_what_it_cannot_read(report, tmp_path, capfd):
    """Damaged results, results of another schema or a newer kit, and machine
    files that are not kit's: each named once in a warning and skipped; the
    reports of what is readable are still published."""
    import shutil
    data = tmp_path / "data"
    shutil.copytree(report["data"], data)
    engines = data / report["machine"] / "engines"
    good = next(engines.glob("*.json"))
    (engines / "truncated.json").write_text(good.read_text()[:500])
    (engines / "future.json").write_text(good.read_text().replace('"kit-result/1"', '"kit-result/9"'))
    (engines / "list.json").write_text("[]")
    (data / "newer").mkdir()
    (data / "newer" / "machine.json").write_text(json.dumps({"version": 99, "name": "newer"}))
    (data / "listed").mkdir()
    (data / "listed" / "machine.json").write_text("[]")
    written = publish.publish(str(data), str(tmp_path / "reports"), notebooks=("engines",))
    err = capfd.readouterr().err
    for bad in ("truncated.json", "future.json", "list.json"):
        assert err.count(f"skipping {engines / bad}") == 1, err
    assert "written by a newer kit (kit-result/9" in err and "machine file version 99" in err
    assert err.count(str(data / "listed" / "machine.json")) == 1
    assert [os.path.basename(p) for p in written] == ["engines.html"]
    found = [t for t in tables(written[0]) if t and "IOPS" in t[0] and "engine" in t[0]]
    assert len(found) == 2 and len(found[0]) == 10         # every engine still there, nothing doubled
    rows = table_with(os.path.join(tmp_path, "reports", "index.html"), "machine")
    assert {r[0] for r in rows[1:]} == {report["machine"]}


def test_pages_have_titles_a_way_back_and_the_index_sorts_by_measurement(report, tmp_path):
    import re
    import shutil
    for page in os.listdir(report["dir"]):
        text = open(os.path.join(report["dir"], page)).read()
        title = re.search(r"<title>(.*?)</title>", text, re.S).group(1)
        assert "Notebook" not in title and report["machine"] in title, title
        assert 'href="../index.html"' in text
        assert 'href="data:text/csv;base64,' in text, page              # the page's data, downloadable
    # a copied folder keeps the time its results were measured, not the copy's
    data = tmp_path / "data"
    shutil.copytree(report["data"], data)
    for f in (data / report["machine"]).rglob("*.json"):
        os.utime(f, (0, 0))
    newest = store.machines(str(data))[0]["newest"]
    stamps = [r.data["timestamp"] for r in store.load(report["machine"], data=report["data"])]
    assert newest == max(stamps) > 1_700_000_000


def test_sweep_statistics_are_medians_with_intervals_that_stay_in_range():
    import pandas as pd
    from kit import notebook
    rows = [dict(ioengine="io_uring", label="io_uring", iodepth=1, bs=4096, numjobs=1, iops=v, clat_p50_ns=1000,
                 clat_p99_ns=5000, bw_bytes=v * 4096) for v in (8_000, 29_000, 60_000)]     # two repeats would be
    rows += [dict(ioengine="libaio", label="libaio", iodepth=4, bs=4096, numjobs=1, iops=v, clat_p50_ns=900,
                  clat_p99_ns=4000, bw_bytes=v * 4096) for v in (76_000, 77_000, 76_500, 76_800, 76_200)]
    stats = notebook.sweep_stats(pd.DataFrame(rows)).set_index("label")
    uring, libaio = stats.loc["io_uring"], stats.loc["libaio"]
    assert uring["iops"] == 29_000 and (uring["iops_lo"], uring["iops_hi"]) == (8_000, 60_000)   # min/max, >= 0
    assert uring["unstable"] and not libaio["unstable"]           # the flag is the interval's own width
    assert 76_000 <= libaio["iops_lo"] <= libaio["iops"] <= libaio["iops_hi"] <= 77_000
    text = notebook.sweep_best_text(stats.reset_index())
    assert "highest throughput is **libaio**" in text             # 76k's interval lies above 60k
    close = pd.DataFrame(rows[:3] + [dict(rows[3], iops=v) for v in (30_000, 31_000, 32_000, 59_000, 61_000)])
    assert notebook.sweep_best_text(notebook.sweep_stats(close)).startswith("No clear winner")
    # three repeats each, ranges apart: 1 time in 10 by chance, no winner
    apart = pd.DataFrame(rows[:3] + [dict(rows[3], iops=v) for v in (70_000, 71_000, 72_000)])
    text = notebook.sweep_best_text(notebook.sweep_stats(apart))
    assert text.startswith("No winner named:") and "With 3 and 3 runs, a lead of 144.8 % cannot be told" in text
    assert "measure 4 or more repeats a point" in text


def _sweep_rows(point, values, **job):
    """A sweep's stored rows for one point, one run per value (a key each)."""
    base = dict(ioengine="psync", label="psync", iodepth=1, bs=4096, numjobs=1, rw="randread", direct=False,
                clat_p50_ns=1000, clat_p99_ns=5000, ios=1000, ddir="read", point=json.dumps(point, sort_keys=True))
    return [{**base, **job, "iops": v, "bw_bytes": v * 4096, "key": f"{point}-r{i}"} for i, v in enumerate(values)]


def test_sweep_points_are_every_axis_the_grid_varied():
    """A grid over rw x direct is four points, not one: each its own median,
    named by its axes, and no winner from three repeats each."""
    import pandas as pd
    from kit import notebook
    figures = {("randread", 0): (650_000, 770_000, 540_000), ("randread", 1): (25_600, 25_800, 26_300),
               ("randwrite", 0): (410_000, 510_000, 390_000), ("randwrite", 1): (24_200, 23_600, 25_600)}
    rows = []
    for (rw, direct), values in figures.items():
        rows += _sweep_rows({"rw": rw, "direct": direct}, values, rw=rw, direct=bool(direct))
    stats = notebook.sweep_stats(pd.DataFrame(rows))
    assert stats.attrs["axes"] == ["direct", "rw"] and len(stats) == 4
    by = stats.set_index(["rw", "direct"])
    assert by.loc[("randread", 0), "iops"] == 650_000 and by.loc[("randwrite", 1), "iops"] == 24_200
    assert (by["repeats"] == 3).all()
    text = notebook.sweep_best_text(stats)
    assert text.startswith("No winner named: **psync**, direct 0, rw randread reaches 650,000 IOPS (median of 3, "
                           "range 540,000 to 770,000)"), text
    warning, warn = notebook.sweep_stability_text(stats)
    assert warn and warning.startswith("2 of 4 points have an IOPS interval wider than ±10% of their median (worst: "
                                       "psync, direct 0, rw randread, 540,000 to 770,000)")
    assert notebook.heatmap_axes(stats)[1] == ["label", "direct", "rw"]
    assert notebook.sweep_series(stats) == ["label", "direct", "rw"]
    # a mixed job's read and write rows are one run: their IOPS added, not two samples
    mixed = _sweep_rows({"rw": "randrw"}, (60_000, 62_000, 61_000, 63_000), rw="randrw")
    mixed += [dict(r, ddir="write", iops=r["iops"] / 2, ios=500) for r in mixed]
    one = notebook.sweep_stats(pd.DataFrame(mixed))
    assert len(one) == 1 and one.iloc[0]["repeats"] == 4 and one.iloc[0]["iops"] == 1.5 * 61_500


def test_sweep_of_one_repeat_claims_no_stability_interval_or_winner():
    import pandas as pd
    from kit import notebook
    rows = _sweep_rows({"ioengine": "psync"}, (636_499,)) + \
        [dict(r, ioengine="sync", label="sync") for r in _sweep_rows({"ioengine": "sync"}, (528_218,))]
    stats = notebook.sweep_stats(pd.DataFrame(rows))
    assert stats["iops_lo"].isna().all() and stats["iops_hi"].isna().all()         # no interval from one run
    assert not stats["unstable"].any()
    text, warn = notebook.sweep_stability_text(stats)
    assert warn and text.startswith("Each of the 2 points was measured once, so this page cannot say how much")
    assert "stable" not in text
    best = notebook.sweep_best_text(stats)
    assert best == ("No winner named: **psync**, iodepth 1, bs 4 KiB reaches 636,499 IOPS (one run) and **sync**, "
                    "iodepth 1, bs 4 KiB 528,218 IOPS (one run). With one run each, a lead of 20.5 % cannot be "
                    "told from run-to-run noise; measure 4 or more repeats a point.")
    assert "interval" not in best


SAME = """
name: same
base: {ioengine: psync, bs: 4k, size: 1m, runtime: 0.1, time_based: 1}
grid:
  rw: [randread, randwrite]
  randseed: [1, 2]
"""


def test_sweep_page_of_one_repeat_over_other_axes(tmp_path):
    """The published page of a grid over rw x randseed measured once: four
    points in its table, no stability claim, no interval, no winner, and a
    damaged stored file said in one sentence within the store (no absolute
    path, no stderr warning)."""
    spec = tmp_path / "same.yml"
    spec.write_text(SAME)
    data, reports = tmp_path / "data", tmp_path / "reports"
    args = ["sweep", str(spec), f"--data={data}", f"--directory={tmp_path / 'scratch'}", "--no-publish"]
    p = run_kit(*args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    broken = sorted(data.glob("*/sweep-same/*.json"))[-1]
    doc = json.loads(broken.read_text())
    assert doc["tags"]["point"] == {"rw": "randwrite", "randseed": 2}
    doc["total"]["write"]["iops"] = "lots"
    broken.write_text(json.dumps(doc))
    written = publish.publish(str(data), str(reports), notebooks=("sweep",))
    (page,) = [w for w in written if w.endswith("sweep-same.html")]
    text = " ".join(_visible_text(open(page).read()).split())
    assert str(tmp_path) not in text and "kit: warning" not in text
    assert (f"1 stored result file(s) could not be read and are left out of this page: "
            f"{broken.parent.parent.name}/sweep-same/{broken.name} (total.write.iops is missing or not a number).") \
        in text, text
    assert "Each of the 3 points was measured once, so this page cannot say how much any of them varies" in text
    import re
    assert "are stable" not in text and "median of 1" not in text
    assert not re.search(r"(interval|range) ([\d,]+) to \2\b", text)        # no interval from a single run
    assert re.search(r"No winner named: psync ?, randseed \d, rw rand(read|write) reaches [\d,]+ IOPS \(one run\) "
                     r"and psync ?, randseed \d, rw rand(read|write) [\d,]+ IOPS \(one run\)\.", text), text
    assert "With one run each, a lead of " in text
    t = table_with(page, "IOPS interval (95 %; the range below 5 repeats)")
    head = t[0]
    assert {"randseed", "rw"} <= set(head)
    points = sorted((r[head.index("rw")], r[head.index("randseed")]) for r in t[1:])
    assert len(points) == 3 and len(set(points)) == 3
    assert all(r[head.index("IOPS interval (95 %; the range below 5 repeats)")] == "-" for r in t[1:])


def test_engines_prose_claims_only_differences_beyond_noise():
    import pandas as pd
    from kit import notebook
    table = pd.DataFrame([
        dict(job="io_uring", label="io_uring", iops=100_000, iops_vs_io_uring_pct=0.0, ctx=10, process_ctx=10),
        dict(job="io_uring-enhanced", label="io_uring+fixedbufs", iops=101_400, iops_vs_io_uring_pct=1.4, ctx=10,
             process_ctx=10),
        dict(job="linux-aio", label="libaio", iops=120_000, iops_vs_io_uring_pct=20.0, ctx=10, process_ctx=10)])
    text = notebook.engines_text(table, "direct")
    # one sample each: even +20 % is no claim (identical runs here differ by that much)
    assert "ahead of basic io_uring by" not in text and "No clear difference" not in text
    assert "no engine is called ahead of or behind basic io_uring" in text
    assert "linux-aio (+20.0 %)" in text and "io_uring-enhanced (+1.4 %)" in text


def test_a_sweep_measures_again_what_other_work_disturbed(tmp_path, monkeypatch):
    """Busy loops on both CPUs through the whole sweep: its one run is
    measured 1 + BUSY_RETRIES times and stored saying so; without them, once.
    Its quick form (kit report --quick), and a sweep file saying
    busy_retries: 0, measure once and keep the run, marked busy."""
    import re
    from kit import suites
    from kit import sweep as sweeping
    monkeypatch.setattr(sweeping, "BUSY_PAUSE_S", 0.1)
    spec = tmp_path / "busy.yml"
    spec.write_text("name: busy\nbase: {rw: randread, size: 4m, runtime: 0.3, time_based: 1}\n"
                    "grid: {iodepth: [1]}\nrepeats: 1\n")
    data = tmp_path / "data"
    hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(2)]
    try:
        sweeping.run_sweep(sweeping.load_spec(str(spec)), data=str(data), directory=str(tmp_path / "s"))
        quick = suites.quick_sweep(sweeping.load_spec(str(spec)))
        quick.grid, quick.repeats = {"iodepth": [1]}, 1
        sweeping.run_sweep(quick, data=str(data), directory=str(tmp_path / "s"))
        spec.write_text(spec.read_text().replace("name: busy", "name: kept") + "busy_retries: 0\n")
        sweeping.run_sweep(sweeping.load_spec(str(spec)), data=str(data), directory=str(tmp_path / "s"))
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    machine = store.machines(str(data))[0]["name"]
    (result,) = store.load(machine, "sweep-busy", str(data))
    assert any(n.startswith(f"measured {1 + sweeping.BUSY_RETRIES} times") for n in result.data["notes"])
    for suite in ("sweep-busy-quick", "sweep-kept"):
        (once,) = store.load(machine, suite, str(data))
        assert once.data["tags"]["busy"] and not any(re.match(r"measured \d+ times", n) for n in once.data["notes"])


def _visible_text(page):
    """A page's text as a reader sees it: no tags, scripts, styles or data URIs."""
    import re
    page = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_every_page_has_its_plots_with_alt_text_and_its_data(report):
    """Plots are images with real alt text (what they show, each panel's
    axes), no page says nan/None or shows a traceback, and every page
    offers its data as a CSV."""
    import re
    wanted = {"engines.html": 6, "anatomy.html": 6, "sweep-engines-quick.html": 3, "machine.html": 0}
    for page, plots in wanted.items():
        text = open(os.path.join(report["dir"], page)).read()
        images = re.findall(r"<img\b[^>]*>", text)
        alts = [re.search(r'alt="([^"]*)"', i) for i in images]
        assert all(a and len(a.group(1)) > 40 for a in alts), page                # every image described
        assert len(images) >= plots, (page, len(images))
        assert all("Panels: " in a.group(1) for a in alts), page
        assert 'href="data:text/csv;base64,' in text, page
        words = set(re.findall(r"[A-Za-z]+", _visible_text(text)))
        assert not {"nan", "NaN", "None", "Traceback"} & words, (page, {"nan", "NaN", "None", "Traceback"} & words)
        assert "object at 0x" not in text
        # a page stays small: every plot a palette PNG
        assert os.path.getsize(os.path.join(report["dir"], page)) < 1_500_000, page
    engines = open(os.path.join(report["dir"], "engines.html")).read()
    for what in ("IOPS over the run", "I/Os per CPU-second", "latency CDF (x: completion latency (µs), log scale"):
        assert what in html.unescape(engines), what
    sweep = html.unescape(open(os.path.join(report["dir"], "sweep-engines-quick.html")).read())
    assert "Heatmaps of median IOPS per engine" in sweep


def test_machine_page_reads_as_words_and_sizes(report):
    machine = os.path.join(report["dir"], "machine.html")
    cells = [c for t in tables(machine) for row in t for c in row]
    assert not {"None", "True", "False", "nan"} & set(cells)
    facts = {row[0]: row[1] for t in tables(machine) if t and t[0][:2] == ["fact", "value"] for row in t[1:]}
    assert facts["memory"].endswith(" GiB") and facts["root"] in ("yes", "no")
    assert facts["logical block size"] in ("512 B", "4 KiB")


def test_engines_page_uses_log_axes_where_values_span_decades(report):
    """The buffered table's switches per I/O span decades (threadpool's
    hand-offs beside io_uring's almost none): its chart says log scale,
    and does so because the stored figures call for it."""
    import re
    from kit import notebook as kn
    results = kn.newest_runs(store.load(report["machine"], "engines", report["data"]))
    text = html.unescape(open(os.path.join(report["dir"], "engines.html")).read())
    for scenario in ("direct", "buffered"):
        rs = [r for r in results if r.data["tags"]["scenario"] == scenario]
        eff = kn.efficiency(rs)
        values = [v for c in ("ctx_per_io", "process_ctx_per_io", "system_ctx_per_io") for v in eff[c].dropna()]
        alt = re.search(rf'alt="CPU efficiency of each engine, {scenario}[^"]*"', text).group(0)
        log = "context switches per I/O (y: switches per I/O, log scale)" in alt
        assert log == (kn.scale_for(values) == "log"), alt


def test_anatomy_page_has_the_page_cache_case_with_per_row_caveats(report):
    anatomy = os.path.join(report["dir"], "anatomy.html")
    text = open(anatomy).read()
    assert "From the page cache: the engines' own cost" in text
    buffered = table_with(anatomy, "I/Os per CPU-second")
    from kit.engines import variants
    assert [r[0] for r in buffered[1:]] == [n for n, o in variants() if o["ioengine"] != "null"]
    direct = table_with(anatomy, "device share")
    assert direct[0][-1] == "caveat"
    stored = {r.data["tags"]["workload"]: r for r in store.load(report["machine"], "anatomy", report["data"])
              if r.data["tags"].get("scenario") == "direct"}
    from kit import notebook as kn
    for row in direct[1:]:
        expected = "; ".join(kn.trace_caveats(stored[row[0]]))
        assert row[-1] == expected, row


@contextlib.contextmanager
def _chromium():
    """One headless Chromium tab for every page a test renders (a Chromium
    process per page cost ~3 s each)."""
    require(os.path.exists("/usr/bin/chromium"), "chromium is not installed (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright (python) is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


def _rendered(path, tab):
    """A page as headless Chromium renders it: (its DOM once loaded, the text a reader sees)."""
    tab.goto(f"file://{path}", wait_until="load", timeout=120_000)
    dom = tab.content()
    assert "<body" in dom, dom[-2000:]

    class Text(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts, self.hidden = [], 0

        def handle_starttag(self, tag, attrs):
            self.hidden += tag in ("style", "script")

        def handle_endtag(self, tag):
            self.hidden -= tag in ("style", "script")

        def handle_data(self, data):
            if not self.hidden:
                self.parts.append(data)
    t = Text()
    t.feed(dom)
    return dom, " ".join(" ".join(t.parts).split())


_NOT_FOR_READERS = [r"\bnan\b", r"\bNaN\b", r"\bNone\b", r"Traceback", r"\bat 0x[0-9a-f]+", r"<[a-zA-Z_.]+ object",
                    r"Error: .*line \d+", r"\bundefined\b"]


def test_every_published_page_reads_well_in_chromium(report, tmp_path):
    """Every page kit publish makes -- the quick report's, and those of fio
    results imported as this machine (beside kit's own sweep) and as another
    machine (a fingerprint of a name only) -- rendered by headless Chromium:
    its own title, its CSV download, its plots (unless its notebook's
    metadata says "plots": false), and nothing a reader should not see."""
    import shutil
    from test_publish import fio_json
    require(os.path.exists("/usr/bin/chromium"), "chromium is not installed (Debian package chromium)")
    data = tmp_path / "data"
    mine = data / report["machine"]
    mine.mkdir(parents=True)
    for f in ("machine.json", "capabilities.json"):
        shutil.copy(os.path.join(report["data"], report["machine"], f), mine / f)
    for suite in ("engines", "sweep-engines-quick"):
        shutil.copytree(os.path.join(report["data"], report["machine"], suite), mine / suite)
    # a workload the quick sweep measured too, so the imported page sets kit's figure beside fio's
    source = fio_json(tmp_path, "lib", "--ioengine=libaio", "--iodepth=4", "--direct=1")
    for machine in ((), ("--machine=lab-fio",)):
        p = run_kit("import", str(source), f"--data={data}", *machine)
        assert p.returncode == 0, p.stderr
    reports = tmp_path / "reports"
    p = run_kit("publish", f"--data={data}", f"--reports={reports}", timeout=600)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert (reports / "lab-fio" / "imported.html").exists() and (reports / report["machine"] / "imported.html").exists()

    with _chromium() as tab:
        seen = {}
        checked = [page for root in (report["reports"], str(reports)) for page in check_pages(root, tab, seen)]
        assert {f"lab-fio/{p}" for p in ("machine.html", "imported.html")} <= set(checked)
        assert len(checked) >= 10
        # the imported pages say what fio measured, and kit's figure where it measured the same
        text = seen[str(reports / report["machine"] / "imported.html")]
        assert "libaio" in text and "randread bs=4 KiB iodepth=4 numjobs=1 direct=1" in text and "kit / fio" in text
        text = seen[str(reports / "lab-fio" / "imported.html")]
    assert "kit has no results of its own for lab-fio" in text and "not recorded" in text and "?" not in \
        text.replace("(kit import --machine)", "")


def check_pages(root, tab, seen):
    """Every page under root (reports/) rendered by Chromium (in tab) and
    read as a reader would: a title of its own (not "Notebook"; its
    machine's name on a machine's page), nothing a reader should not see
    (nan, None, tracebacks, object reprs), a CSV download, and a plot unless
    its notebook's metadata says "plots": false. Returns the pages checked;
    seen gets each page's text, by path."""
    import re
    notebooks = publish.notebooks()
    checked = []
    for folder, _dirs, files in os.walk(root):
        for f in sorted(files):
            if not f.endswith(".html"):
                continue
            path = os.path.join(folder, f)
            dom, text = _rendered(path, tab)
            seen[path] = text
            title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
            for pattern in _NOT_FOR_READERS:
                found = re.search(pattern, text)
                assert not found, f"{path}: {found.group(0)!r} in ...{text[max(0, found.start() - 80):found.end() + 80]}"
            assert "Notebook" not in title and title.strip(), f"{path}: title {title!r}"
            checked.append(os.path.relpath(path, root))
            if f == "index.html" and folder == root:
                continue
            name, meta, _value = publish._page_notebook(f[:-5])
            assert name in notebooks, f"{path}: no notebook publishes it"
            if folder != root:
                assert os.path.basename(folder) in title, f"{path}: title {title!r} does not name its machine"
            assert re.search(r'<a [^>]*download="[^"]+\.csv"[^>]*href="data:text/csv;base64,', dom) or \
                re.search(r'<a [^>]*href="data:text/csv;base64,[^"]*"[^>]*download=', dom), f"{path}: no CSV link"
            plots = len(re.findall(r'<img [^>]*src="data:image/(?:png|svg\+xml)', dom))
            if meta.get("plots", True):
                assert plots >= 1, f"{path}: no plot, and its notebook ({name}) does not say it has none"
    return checked
