"""The reports' plots and their craft, outside a notebook: one colour per
engine, log scales where values span decades, latency distributions from
the stored bins, IOPS over time, CPU efficiency, the sweep heatmap, the
machine page in words. Real runs, real files, real sweeps; the pages
themselves are checked in test_reports.py."""
import base64
import io
import json
import math

import numpy as np
import pandas as pd
import pytest

import kit
from kit import notebook as kn
from kit import store
from kit.engines import variants
from kit.seed import SEED_ENGINES, THREADPOOL


@pytest.fixture(scope="module")
def psync_run(tmp_path_factory):
    """One real buffered run of a second, 100 ms statistics windows."""
    d = tmp_path_factory.mktemp("plots")
    return kit.run(kit.Job(rw="randread", size="1m", runtime=0.6, time_based=True, iopsavgtime=100,
                           directory=str(d)), progress=False, machine=False)


def test_one_colour_per_engine_on_every_page():
    """Every name a page gives an engine (an anatomy workload, a seed
    section, a stored label) finds the same colour; different engines,
    different colours."""
    names = [n for n, _ in variants()] + [n for n, _ in SEED_ENGINES + (THREADPOOL,)]
    for name in names:
        assert kn.color(name) == kn.color(kn.engine_label(name))
    assert kn.color("posix-aio") == kn.color("posixaio")                    # engines page vs anatomy page
    assert kn.color("linux-aio") == kn.color("libaio")
    assert kn.color("io_uring-sqpoll") == kn.color("io_uring+sqthread_poll")  # anatomy vs a sweep's label
    assert kn.color("io_uring-enhanced") == kn.color("io_uring+fixedbufs+registerfiles")
    labels = {kn.engine_label(n) for n in names}
    assert len({kn.color(label) for label in labels}) == len(labels)
    # an engine the palette does not list gets a colour of its own, the same every time
    assert kn.color("io_uring+hipri") == kn.color("io_uring+hipri")
    assert kn.color("io_uring+hipri") not in {kn.color(label) for label in labels}


def test_log_scale_where_values_span_decades():
    assert kn.scale_for([1_430_000, 3_200, 58, 6_500]) == "log"       # threadpool's switches beside the others
    assert kn.scale_for([20_000, 70_000, 55_000]) == "linear"
    assert kn.scale_for([0, 3, 400]) == "log"                          # zero cannot be drawn on a log axis: ignored
    assert kn.scale_for([None, float("nan"), 3.0]) == "linear"
    assert kn.scale_for([]) == "linear"


def test_figures_are_images_with_alt_text_naming_their_axes(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import IPython.display
    import matplotlib.pyplot as plt
    from PIL import Image
    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)      # what a notebook would show
    values = {"sync": 0.9, "threadpool": 1_430_000, "io_uring": 58}
    fig, ax = plt.subplots()
    ax.bar(list(values), list(values.values()), color=[kn.color(n) for n in values])
    ax.set(title="switches", ylabel="switches per I/O", yscale=kn.scale_for(values.values()))
    alt = kn.show(fig, "Context switches of three engines")
    page = shown[0].data
    assert page.startswith('<img class="kit-figure" alt="') and 'src="data:image/png;base64,' in page
    assert alt == "Context switches of three engines. Panels: switches (y: switches per I/O, log scale)."
    png = base64.b64decode(page.split("base64,")[1].split('"')[0])
    image = Image.open(io.BytesIO(png))
    assert image.width > 300 and image.height > 200
    # the log axis is labelled in plain numbers, not 10^3
    assert [t.get_text() for t in ax.yaxis.get_majorticklabels() if t.get_text()][-1].replace(",", "").isdigit()


def test_latency_cdf_ends_at_one_and_matches_the_stored_percentiles(psync_run):
    r = psync_run
    dist = kn.latency_distribution(r)
    clat = r.total["read"]["clat_ns"]
    assert dist["count"].sum() == clat["N"] == r.total["read"]["total_ios"]
    assert dist["cumulative"].iloc[-1] == 1.0
    assert (np.diff(dist["cumulative"]) > 0).all() and (np.diff(dist["latency_us"]) > 0).all()
    for key, ns in clat["percentile"].items():
        # fio's rule: the first bucket whose running count reaches p % of the I/Os
        first = dist.loc[dist["count"].cumsum() >= float(key) / 100 * clat["N"], "latency_us"].iloc[0]
        assert first * 1000 == ns, key
    hist = kn.latency_histogram(dist)
    assert math.isclose(hist["share"].sum(), 1.0) and (hist["hi_us"] > hist["lo_us"]).all()
    assert hist["lo_us"].iloc[0] <= dist["latency_us"].min() < hist["hi_us"].iloc[0]
    # a fio result without json+ bins: nothing to draw, no error
    plain = kit.results.Result(json.loads(json.dumps(r.data)))
    plain.total["read"]["clat_ns"].pop("bins")
    assert kn.latency_distribution(plain).empty and kn.latency_histogram(kn.latency_distribution(plain)).empty


def test_iops_over_time_adds_up_to_the_runs_ios(psync_run):
    r = psync_run
    series = kn.iops_series(r)
    assert 5 <= len(series) <= 7                                        # 0.6 s in windows of 100 ms
    assert (series["iops"] > 0).all() and (np.diff(series["t_s"]) > 0).all()
    stored = r.total["kit"]["series"]
    assert round((series["iops"] * series["window_s"]).sum()) == sum(stored["read_ios"])
    old = kit.results.Result(json.loads(json.dumps(r.data)))
    old.total["kit"].pop("series")                                      # an older result, or fio's
    assert kn.iops_series(old).empty


def test_cpu_efficiency_from_the_stored_fields(psync_run):
    r = psync_run
    proc = r.data["process"]
    (row,) = kn.efficiency([r], ["psync"]).to_dict("records")
    cpu_s = (proc["usr_ns"] + proc["sys_ns"]) / 1e9
    assert row["cpu_of"] == "process" and cpu_s > 0
    assert row["ios_per_cpu_s"] == pytest.approx(r.ios / cpu_s)
    assert row["cpu_us_per_io"] == pytest.approx(1e6 * cpu_s / r.ios)
    assert row["usr_us_per_io"] + row["sys_us_per_io"] == pytest.approx(row["cpu_us_per_io"])
    assert row["ctx_per_io"] == pytest.approx(r.total["ctx"] / r.ios)
    assert row["process_ctx_per_io"] == pytest.approx(proc["ctx"] / r.ios)
    assert row["system_ctx_per_io"] is None                             # not traced
    # an imported fio result has no process figures: fio's usr_cpu/sys_cpu over job_runtime
    fio_like = kit.results.Result(json.loads(json.dumps(r.data)))
    fio_like.data.pop("process")
    t = fio_like.total
    (row,) = kn.efficiency([fio_like]).to_dict("records")
    assert row["cpu_of"] == "job threads"
    assert row["ios_per_cpu_s"] == pytest.approx(r.ios / ((t["usr_cpu"] + t["sys_cpu"]) / 100 * t["job_runtime"] / 1000))


SWEEP = """
name: heat
base: {rw: randread, bs: 4k, size: 1m, runtime: 0.1, time_based: 1}
grid:
  ioengine: [psync]
  iodepth: [1, 2]
  numjobs: [1, 2]
repeats: 2
"""


def test_heatmap_cells_are_the_stored_medians(tmp_path):
    from kit import sweep as sweeping
    spec = tmp_path / "heat.yml"
    spec.write_text(SWEEP)
    data = tmp_path / "data"
    sweeping.run_sweep(sweeping.load_spec(str(spec)), data=str(data), directory=str(tmp_path / "s"))
    machine = store.machines(str(data))[0]["name"]
    stats = kn.sweep_stats(store.frame(machine, "sweep-heat", str(data)))
    rows, panels = kn.heatmap_axes(stats)
    assert (rows, panels) == ("numjobs", ["label"])
    grid = kn.sweep_heatmap(stats, {"label": "psync"}, rows)
    assert list(grid.index) == [1, 2] and list(grid.columns) == [1, 2]
    # each cell: the median IOPS of that point's stored results, read back from their files
    stored = {}
    for path in (data / machine / "sweep-heat").glob("*.json"):
        d = json.loads(path.read_text())
        point = d["tags"]["point"]
        stored.setdefault((point["numjobs"], point["iodepth"]), []).append(
            sum(d["total"][k]["iops"] for k in ("read", "write", "trim")))
    assert len(stored) == 4 and all(len(v) == 2 for v in stored.values())
    for (numjobs, iodepth), values in stored.items():
        assert grid.loc[numjobs, iodepth] == pytest.approx(float(np.median(values)))
    fig = kn.plot_heatmaps(stats)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2        # one panel and its colour scale
    assert "psync" in fig.axes[0].get_title() and fig.axes[0].get_ylabel() == "numjobs"


def test_one_run_per_row_from_the_newest_measurement(psync_run):
    def copy(iops, batch, stamp, section="psync"):
        r = kit.results.Result(json.loads(json.dumps(psync_run.data)))
        r.data["total"]["read"]["iops"] = iops
        r.data["tags"] = {"scenario": "direct", "section": section, "batch": batch}
        r.data["timestamp"] = stamp
        return r
    old = [copy(500, 1, 100), copy(900, 1, 101), copy(700, 1, 102)]
    new = [copy(300, 2, 200), copy(100, 2, 201), copy(200, 2, 202), copy(400, 2, 203)]
    other = copy(50, 3, 150, section="sync")
    chosen = kn.newest_runs(old + new + [other])
    assert [r.iops for r in chosen] == [200, 50]            # the lower middle of the newest 4, and sync's one
    assert kn.repeat_count(old + new, chosen[0]) == 4
    single = copy(10, None, 300)
    single.data["tags"].pop("batch")
    assert kn.repeat_count([single], single) == 1


def _traced(run, workload, scenario="direct", **extra):
    r = kit.results.Result(json.loads(json.dumps(run.data)))
    block = {"read": {"requests": r.ios, "bytes": 4096 * r.ios, "lat_ns": {"mean": 40000.0}, "queue_ns": {"mean": 0},
                      "depth": {"1": 100}},
             "devices": {"vda": {"completions": extra.pop("completions", {"seen": 100, "unmatched": 0, "stat": 100})}}}
    roles = {"job": {"threads": 1, "switches": 100, "voluntary": 100, "involuntary": 0, "oncpu_ns": 1}}
    roles.update(extra.pop("roles", {}))
    r.data["trace"] = {"block": block, "sched": {"roles": roles, "system": {"switches": 5000}},
                       "lost": {"total": extra.pop("lost", 0)}, "duration_ns": 1_000_000_000}
    r.data["tags"] = {"workload": workload, "scenario": scenario}
    r.data["label"] = extra.pop("label", workload)
    r.data["machine"] = {"cpu": {"usable": 2}}
    r.data["total"]["read"]["iops"] = extra.pop("iops", r.data["total"]["read"]["iops"])
    r.data["process"]["machine_during_run"] = {"busy": False}
    return r


def test_anatomy_rows_carry_their_own_caveats_and_per_io_switches(psync_run):
    good = _traced(psync_run, "io_uring")
    lossy = _traced(psync_run, "io_uring-sqpoll", completions={"seen": 79, "unmatched": 0, "stat": 100}, lost=12)
    table = kn.anatomy_table([good, lossy]).set_index("workload")
    assert table.loc["io_uring", "caveat"] == ""
    assert "missed 21% of vda's completions" in table.loc["io_uring-sqpoll", "caveat"]
    assert "12 tracer events lost" in table.loc["io_uring-sqpoll", "caveat"]
    assert table.loc["io_uring", "per_io_job"] == pytest.approx(100 / psync_run.ios)
    assert table.loc["io_uring", "per_io_system"] == pytest.approx(5000 / psync_run.ios)
    assert (table["scenario"] == "direct").all()
    old = _traced(psync_run, "psync")
    old.data["tags"].pop("scenario")                                   # stored before the buffered case
    assert kn.anatomy_table([old]).loc[0, "scenario"] == "direct"
    # from the page cache the device serves others only: their missed completions are not this row's
    cached = _traced(psync_run, "psync", scenario="buffered", completions={"seen": 5, "unmatched": 0, "stat": 10})
    cached.data["trace"]["block"]["read"]["requests"] = 3
    assert kn.anatomy_table([cached]).loc[0, "caveat"] == ""


def test_sqpoll_slower_on_few_cpus_is_explained_not_praised(psync_run):
    poller = {"io_uring_sqpoll": {"threads": 1, "switches": 4237, "voluntary": 1, "involuntary": 4236,
                                  "oncpu_ns": 700_000_000}}
    base = _traced(psync_run, "io_uring", label="io_uring", iops=45_553)
    slow = _traced(psync_run, "io_uring-sqpoll", label="io_uring+sqthread_poll", iops=40_604, roles=poller)
    text = kn.sqpoll_text(kn.anatomy_table([base, slow]))
    assert text.startswith("io_uring-sqpoll is 11 % slower than basic io_uring (40,604 against 45,553 IOPS)")
    assert "on a CPU 70% of the run on this 2-CPU machine" in text and "preempted it 4,236 times" in text
    assert "only" not in text
    fast = _traced(psync_run, "io_uring-sqpoll", label="io_uring+sqthread_poll", iops=60_000, roles=poller)
    assert "32 % faster" in kn.sqpoll_text(kn.anatomy_table([base, fast]))
    assert kn.sqpoll_text(kn.anatomy_table([base])) is None


def test_the_machine_page_is_written_for_people(tmp_path):
    from kit.doctor import capabilities
    from kit.machine import fingerprint
    fp = fingerprint(str(tmp_path))
    caps = capabilities(directory=str(tmp_path))
    sections = kn.machine_sections(fp) + kn.capability_sections(caps)
    values = [v for _h, rows in sections for _k, v in rows]
    assert values and all(isinstance(v, str) and v for v in values)
    assert not {"None", "True", "False", "nan", "NaN", "null"} & set(values)
    facts = {k: v for _h, rows in sections for k, v in rows}
    assert facts["memory"].endswith(" GiB") and facts["root"] in ("yes", "no")
    assert facts["tracing works"] in ("yes", "no")
    if (fp.get("target") or {}).get("device"):
        assert facts["logical block size"] in ("512 B", "4 KiB") and facts["rotational"] in ("yes", "no")
    # an old or sparse fingerprint: what is not known is left out
    assert kn.machine_sections({"kernel": {"release": "6.1"}, "cpu": {}, "memory": {"total_bytes": None}}) == \
        [("System", [("kernel", "6.1")])]
    assert kn.capability_sections({"privileges": {"memlock_bytes": None}}) == \
        [("Privileges and limits", [("locked memory limit (ulimit -l)", "unlimited")])]


def test_sizes_and_flags_read_as_words():
    from kit.text import human_bytes, yes_no
    assert human_bytes(16 << 20, " ") == "16 MiB" and human_bytes(16 << 20) == "16MiB"
    assert human_bytes(1536, " ") == "1.5 KiB" and human_bytes(512, " ") == "512 B"
    assert human_bytes(256 << 30, " ") == "256 GiB" and human_bytes(3 << 40, " ") == "3 TiB"
    assert [yes_no(v) for v in (True, False, 1, 0, "1", "0", None)] == ["yes", "no", "yes", "no", "yes", "no", None]
    # the pages' headers show their parameters so too, not as Python reprs
    assert [kn._parameter_text(v) for v in (False, True, "engines-quick", None)] == ["no", "yes", "engines-quick", "none"]


def test_the_page_cache_text_names_a_fastest_engine_only_beyond_the_noise():
    import pandas as pd
    close = pd.DataFrame({"workload": ["buffered-io_uring", "buffered-libaio", "buffered-sync"],
                          "iops": [1_000_000, 990_000, 400_000]})
    text = kn.buffered_text(close)
    assert "no clear fastest" in text and "is fastest" not in text and "**buffered-sync** is slowest" in text
    clear = close.assign(iops=[1_200_000, 990_000, 400_000])
    assert "**buffered-io_uring** is fastest at 1,200,000 IOPS" in kn.buffered_text(clear)
