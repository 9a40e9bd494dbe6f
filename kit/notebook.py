"""What the notebooks share: parameter checks that stop with one line, the
report header, and the tables and sentences computed from stored results.
Everything here is plain pandas, testable outside a notebook."""
import datetime
import html
import inspect
import os
import types

import numpy as np
import pandas as pd

from . import __version__, store
from .compare import CLEAR_DIFFERENCE_PCT
from .stats import UNSTABLE_CV, apart, drift, median_interval, repeats_needed, suite_drift, unstable
from .text import comparison, human_bytes
from .machine import machine_name

IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


class ParameterError(Exception):
    """A bad notebook parameter: IPython shows this one line, no traceback."""

    def _render_traceback_(self):
        return [f"ParameterError: {self}"]


def _kind(v):
    if isinstance(v, tuple):
        return " or ".join(repr(x) if not isinstance(x, type) else x.__name__ for x in v)
    return v.__name__


def parameters(namespace, **spec):
    """Checks the notebook's parameters (papermill only warns about unknown
    ones). spec: name -> a type, or a tuple of allowed types and values
    (None allowed when listed). Raises ParameterError naming the first problem."""
    unknown = sorted(n for n, v in namespace.items()
                     if not n.startswith("_") and n not in spec and n not in IPYTHON_NAMES
                     and not isinstance(v, (types.ModuleType, types.FunctionType, type))
                     and not inspect.isbuiltin(v) and not callable(v))
    if unknown:
        raise ParameterError(f"unknown parameter {unknown[0]!r}; this notebook takes {', '.join(spec)}")
    for name, allowed in spec.items():
        value = namespace.get(name)
        options = allowed if isinstance(allowed, tuple) else (allowed,)
        types_ok = [t for t in options if isinstance(t, type)]
        values_ok = [v for v in options if not isinstance(v, type)]
        if isinstance(value, bool) and bool not in types_ok and value not in values_ok:
            ok = False
        else:
            ok = value in values_ok or any(isinstance(value, t) for t in types_ok)
        if not ok:
            raise ParameterError(f"parameter {name}: must be {_kind(allowed)} (got {value!r})")


COMMON_PARAMETERS = {"machine": (str, None), "data_dir": str, "measure": bool, "quick": bool}


def setup(namespace, title, suites=(), shown=(), scope="machine", **own):
    """What every report notebook does first, in its second cell:

        import kit.notebook as kn
        machine = kn.setup(globals(), "Engines", suites=("machine", "engines"))

    checks its parameters (machine, data_dir, measure, quick, and the
    notebook's own: name=type), names the machine (this one by default),
    measures the suites it shows first when measure=True, and shows the
    report's header (with the parameters named in shown). Returns the
    machine's name. A page over the whole store (scope="store", published
    once, not per machine) takes data_dir and its own parameters, and gets
    the store's machines, newest results first."""
    if scope == "store":
        return _setup_store(namespace, title, shown, own)
    parameters(namespace, **COMMON_PARAMETERS, **own)
    machine = namespace["machine"] or machine_name()
    data_dir = namespace["data_dir"]
    if namespace["measure"] and suites:
        from . import suites as measuring
        measuring.measure(data_dir, quick=namespace["quick"], suites=suites, progress=True,
                          sweep=_sweep_file(namespace["sweep"]) if "sweep" in suites and namespace.get("sweep")
                          else None)
    elif namespace["machine"] is not None or not os.path.isdir(data_dir):
        # a typo must not publish empty pages: the machine and the store exist
        if not os.path.isdir(data_dir):
            raise ParameterError(f"parameter data_dir: {data_dir!r} is not a directory (no results store there)")
        known = [m["name"] for m in store.machines(data_dir, quiet=True)]
        if machine not in known:
            raise ParameterError(f"parameter machine: {machine!r} has no results in {data_dir} "
                                 f"(machines there: {', '.join(known) or 'none'})")
    if "sweep" in suites and namespace.get("sweep") and not namespace["measure"]:
        stored = f"sweep-{namespace['sweep']}"
        unread = []             # the page itself says which files it could not read, within the store
        if not store.load(machine, stored, data_dir, skipped=unread) and \
                not store.load(machine, stored + "-quick", data_dir, skipped=unread):
            folder = store.machine_dir(data_dir, machine)
            sweeps = sorted(d[len("sweep-"):] for d in (os.listdir(folder) if os.path.isdir(folder) else [])
                            if d.startswith("sweep-"))
            raise ParameterError(f"parameter sweep: no sweep {namespace['sweep']!r} stored for {machine} "
                                 f"(stored: {', '.join(sweeps) or 'none'})")
    header(title, machine, namespace["data_dir"], {k: namespace[k] for k in shown})
    return machine


def _setup_store(namespace, title, shown, own):
    from IPython.display import HTML, display
    parameters(namespace, data_dir=str, **own)
    data_dir = namespace["data_dir"]
    if not os.path.isdir(data_dir):
        raise ParameterError(f"parameter data_dir: {data_dir!r} is not a directory (no results store there)")
    machines = [m["name"] for m in store.machines(data_dir, quiet=True)]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = [("store", os.path.abspath(data_dir)), ("machines", ", ".join(machines) or "none"),
            ("published", now), ("kit", __version__)]
    rows += [(f"parameter {k}", _parameter_text(namespace[k])) for k in shown]
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                   f"{html.escape(str(v))}</td></tr>" for k, v in rows)
    display(HTML(f"<table class='kit-header' title='{html.escape(title)}'>{body}</table>"))
    return machines


def _sweep_file(name):
    """A sweep to measure: one of kit's (kit/sweeps/<name>.yml) or a file."""
    from .suites import DEFAULT_SWEEP
    folder = os.path.dirname(DEFAULT_SWEEP)
    own = os.path.join(folder, f"{name}.yml")
    if os.path.isfile(own):
        return own
    if os.path.isfile(name):
        return name
    raise ParameterError(f"parameter sweep: no sweep {name!r} (kit's: "
                         f"{', '.join(f[:-4] for f in sorted(os.listdir(folder)) if f.endswith('.yml'))}; "
                         "or give a sweep file's path)")


def download(frame, filename, what="the data behind this page"):
    """A link that saves a DataFrame as CSV, inside the page itself (pages
    stay self-contained: no file beside them to lose)."""
    import base64
    from IPython.display import HTML, display
    if frame is None or len(frame) == 0:
        return
    data = base64.b64encode(frame.to_csv(index=False).encode()).decode()
    rows = f"{len(frame):,} row" + ("" if len(frame) == 1 else "s")
    display(HTML(f'<p class="kit-download"><a download="{html.escape(filename)}" '
                 f'href="data:text/csv;base64,{data}">Download {html.escape(what)} (CSV, {rows})</a></p>'))


def header(title, machine, data_dir, params=None):
    """The report's first lines: machine, date, kit version, parameters."""
    from IPython.display import HTML, display
    info = store.load_machine(machine, data_dir).get("fingerprint") or {}
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = [("machine", machine)] + _fingerprint_rows(info) + [("published", now), ("kit", __version__)]
    rows += [(f"parameter {k}", _parameter_text(v)) for k, v in (params or {}).items()]
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                   f"{html.escape(str(v))}</td></tr>" for k, v in rows)
    display(HTML(f"<table class='kit-header' title='{html.escape(title)}'>{body}</table>"))


def _fingerprint_rows(info):
    """The header's lines about the machine, only those its fingerprint
    knows (a machine made by kit import --machine knows only its name)."""
    cpu, kernel = info.get("cpu") or {}, info.get("kernel") or {}
    target = ((info.get("target") or {}).get("device") or {})
    fs = ((info.get("target") or {}).get("filesystem") or {})
    rows = []
    if kernel.get("release"):
        rows.append(("kernel", kernel["release"]))
    if cpu.get("model"):
        rows.append(("cpu", cpu["model"] + (f" x{cpu['count']}" if cpu.get("count") else "")))
    if target.get("name"):
        how = ", ".join(str(target[k]) for k in ("kind", "scheduler") if target.get(k))
        rows.append(("device", f"/dev/{target['name']}" + (f" ({how})" if how else "")
                     + (f" with {fs['type']}" if fs.get("type") else "")))
    elif fs.get("type"):
        rows.append(("device", f"no block device ({fs['type']})"))
    if info.get("imported"):
        rows.append(("fingerprint", "not recorded: this machine's results were imported from fio output "
                                    "(kit import --machine)"))
    return rows


def _parameter_text(value):
    """A parameter as a reader reads it: yes/no, a name without quotes."""
    from .text import yes_no
    return yes_no(value) if isinstance(value, bool) else "none" if value is None else str(value)


def note(text, missing=False):
    """A visible remark; missing=True for 'this part is not available here'."""
    from IPython.display import HTML, display
    color = "#b35900" if missing else "#1f4e79"
    display(HTML(f"<p style='border-left:4px solid {color};padding:4px 8px'>{html.escape(text)}</p>"))


def markdown(text):
    from IPython.display import Markdown, display
    display(Markdown(text))


# ---- engines: the seed's tables ----------------------------------------------

def roles_ctx(result):
    """Whole-system context switches by thread role, from the sched tracer."""
    sched = ((result.data.get("trace") or {}).get("sched") or {})
    roles = sched.get("roles") or {}
    out = {f"ctx_{role}": v.get("voluntary", 0) + v.get("involuntary", 0) for role, v in roles.items()}
    if sched.get("system"):
        out["ctx_system"] = sched["system"].get("switches")
    return out


def seed_table(results, reference="io_uring"):
    """The article's table: engine, IOPS, context switches three ways, IOPS
    +/- % vs io_uring, in the sections' order."""
    if not results:
        return pd.DataFrame()
    frame = comparison(results, reference=reference)
    extra = pd.DataFrame([roles_ctx(r) for r in results])
    return pd.concat([frame, extra], axis=1)


def engines_text(table, scenario):
    """What this machine shows, in a few sentences computed from the table:
    with repeats (engines_intervals), differences only where intervals
    separate, and no ranking where the device changed meanwhile; with one
    sample each, none (the figures as measured)."""
    if table.empty:
        return f"No {scenario} results."
    if "iops_lo" in table and table["repeats"].max() > 1:
        return " ".join(_interval_claims(table, scenario) + _ctx_claims(table))
    best = table.loc[table["iops"].idxmax()]
    worst = table.loc[table["iops"].idxmin()]
    ref_col = next((c for c in table.columns if c.startswith("iops_vs_")), None)
    parts = [f"With {scenario} I/O, one run each: **{best['job']}** ({best['label']}) measured the most, "
             f"{best['iops']:,.0f} IOPS; **{worst['job']}** the least, {worst['iops']:,.0f} "
             f"({100 * worst['iops'] / best['iops']:.0f} % of the most)."]
    if ref_col:
        ref = table[table["label"] == "io_uring"]
        others = table[table["label"] != "io_uring"]
        if not ref.empty and not others.empty:
            # one sample per engine: no difference can be told from run-to-run
            # noise (kit.stats.apart needs 4 repeats a side), so none is claimed
            parts.append("One sample per engine, so no engine is called ahead of or behind basic io_uring "
                         "(two identical runs here can differ by 20 %; `kit report` measures 4 repeats); "
                         "as measured: " + ", ".join(f"{r['job']} ({r[ref_col]:+.1f} %)"
                                                       for _, r in others.iterrows()) + ".")
    return " ".join(parts + _ctx_claims(table))


def _ctx_claims(table):
    pooled = table[table["process_ctx"].notna() & (table["ctx"] > 0)]
    if not pooled.empty:
        ratio = pooled["process_ctx"] / pooled["ctx"]
        top = pooled.loc[ratio.idxmax()]
        if ratio.max() > 1.5:
            return [f"{top['job']}'s process makes {ratio.max():.1f}x the context switches its job "
                    "threads report (fio's figure): its helper threads do the blocking."]
    return []


def _spread_words(r):
    what = "95 % interval" if r["repeats"] >= 5 else "range"
    return f"median of {r['repeats']:.0f}, {what} {r['iops_lo']:,.0f} to {r['iops_hi']:,.0f}"


def _interval_claims(table, scenario):
    """engines_text's sentences from repeats: a fastest (or slowest) engine
    only when its interval lies clear of the next one's, ahead of or behind
    basic io_uring only when the intervals separate."""
    ranked = table.sort_values("iops_median", ascending=False)
    withheld = ranking_withheld(table.attrs.get("drift"), ranked)
    if withheld:
        return [withheld]
    parts = []
    best = ranked.iloc[0]
    if len(ranked) == 1 or best["iops_lo"] > ranked.iloc[1]["iops_hi"]:
        parts.append(f"With {scenario} I/O, **{best['job']}** ({best['label']}) is fastest at "
                     f"{best['iops_median']:,.0f} IOPS ({_spread_words(best)}).")
    else:
        second = ranked.iloc[1]
        parts.append(f"With {scenario} I/O, no engine is clearly fastest: **{best['job']}** "
                     f"({best['iops_median']:,.0f} IOPS, {_spread_words(best)}) and **{second['job']}** "
                     f"({second['iops_median']:,.0f}, {_spread_words(second)}) overlap.")
    if len(ranked) > 2 and ranked.iloc[-1]["iops_hi"] < ranked.iloc[-2]["iops_lo"]:
        worst = ranked.iloc[-1]
        parts.append(f"**{worst['job']}** is slowest at {worst['iops_median']:,.0f} IOPS "
                     f"({100 * worst['iops_median'] / best['iops_median']:.0f} % of the fastest).")
    ref = table[table["label"] == "io_uring"]
    others = table[table["label"] != "io_uring"]
    if not ref.empty and not others.empty:
        ref = ref.iloc[0]

        def pct(r):
            return f"{r['job']} ({100 * (r['iops_median'] / ref['iops_median'] - 1):+.1f} %)"
        ahead = others[others["iops_lo"] > ref["iops_hi"]]
        behind = others[others["iops_hi"] < ref["iops_lo"]]
        close = others.drop(ahead.index).drop(behind.index)
        if not ahead.empty:
            parts.append("Ahead of basic io_uring, intervals apart: " + ", ".join(map(pct, ahead.to_dict("records")))
                         + ".")
        if not behind.empty:
            parts.append("Behind basic io_uring, intervals apart: " + ", ".join(map(pct, behind.to_dict("records")))
                         + ".")
        if not close.empty:
            parts.append("No clear difference from basic io_uring (the intervals overlap): "
                         + ", ".join(map(pct, close.to_dict("records"))) + ".")
    return parts


# ---- sweeps --------------------------------------------------------------------

# median_interval, UNSTABLE_CV, drift and suite_drift: kit.stats (the sweeps re-run by the same rules)


SWEEP_AXES = ("ioengine", "iodepth", "bs", "numjobs", "label")     # what the sweep page draws against


def sweep_point_axes(frame):
    """The options a sweep's grid varied besides SWEEP_AXES (rw, direct,
    randseed, ...), as its points name them (the results' point tags), in
    the order first met; [] for rows that keep no point."""
    from .job import canonical_option
    if "point" not in frame:
        return []
    axes = []
    for point in frame["point"].dropna().unique():
        for name in _point(point):
            if canonical_option(name) not in SWEEP_AXES and name not in axes:
                axes.append(name)
    return axes


def _point(value):
    import json
    try:
        point = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return {}
    return point if isinstance(point, dict) else {}


def _sweep_runs(frame, extra):
    """One row per run (a result's read and write rows are one run: IOPS and
    bandwidth added, the latency of the direction that did the most I/O),
    with the grid's other axes as columns."""
    f = frame
    if "key" in f and f["key"].notna().all():
        f = f.sort_values("ios", ascending=False, kind="stable") if "ios" in f else f
        summed = f.groupby("key", sort=False)[["iops", "bw_bytes"]].sum(min_count=1)
        f = f.drop_duplicates("key").set_index("key")
        f[["iops", "bw_bytes"]] = summed
        f = f.reset_index()
    points = f["point"].map(_point) if "point" in f else pd.Series([{}] * len(f), f.index)
    return f.assign(**{axis: points.map(lambda p, axis=axis: p.get(axis, "-")) for axis in extra})


def sweep_stats(frame, axes=SWEEP_AXES):
    """Per point (every axis the grid varied, and the engine, iodepth, bs and
    numjobs the plots draw against): the median of IOPS and of the clat
    percentiles over the repeats with its interval (lo, hi:
    median_interval; NaN below two repeats, where there is none), the
    coefficient of variation, the IOPS of every repeat (iops_runs), and a
    flag where the repeats disagree (stats.unstable: the interval wider than
    20 % of the median, pyperf's 10 % either way). attrs: "axes", the other
    axes the grid varied; "drift", stats.suite_drift."""
    if frame.empty:
        return frame
    extra = sweep_point_axes(frame)
    runs = _sweep_runs(frame, extra)
    keys = [a for a in axes if a in runs.columns] + extra
    rows = []
    for point, g in runs.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, point if isinstance(point, tuple) else (point,)))
        n = int(g["iops"].notna().sum())
        for col in ("iops", "clat_p50_ns", "clat_p99_ns", "bw_bytes"):
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = median_interval(g[col])
            if n < 2:           # one run spans nothing: no interval to show or to judge by
                row[f"{col}_lo"] = row[f"{col}_hi"] = np.nan
        mean = g["iops"].mean()
        row["iops_cv"] = g["iops"].std(ddof=1) / mean if n > 1 and mean else np.nan
        row["iops_runs"] = [float(v) for v in g["iops"].dropna()]
        row["repeats"] = n
        row["unstable"] = unstable(row["iops_runs"])
        row.update(_point_flags(g))
        row["note"] = row_note(row)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["axes"] = extra
    out.attrs["drift"] = suite_drift(_runs_in_time_order(runs, keys))
    return out


def _sweep_axis_words(axis, value):
    if axis == "bs":
        return f"bs {human_bytes(value, ' ')}"
    return f"{axis} {value}" if axis != "label" else f"**{value}**"


def sweep_point_words(r, stats):
    """A point as people read it: its engine, then every axis that varies in
    the sweep (all of SWEEP_AXES' when none does)."""
    varied = [a for a in ("iodepth", "bs", "numjobs") if a in stats and stats[a].nunique() > 1]
    varied += list(stats.attrs.get("axes") or [])
    if not varied:
        varied = [a for a in ("iodepth", "bs") if a in stats]
    return ", ".join([f"**{r['label']}**"] + [_sweep_axis_words(a, r[a]) for a in varied])


def sweep_stability_text(stats):
    """What the repeats say of how stable the points are: (text, warn) --
    the unstable points (unstable_text), or that all measured at least
    twice are stable, or, with a single run each, that nothing can be said."""
    once = int((stats["repeats"] < 2).sum())
    bad = unstable_text(stats)
    if bad:
        return bad + (f" {once} point(s) were measured once: how much they vary is not known." if once else ""), True
    if once == len(stats):
        return (f"Each of the {len(stats)} points was measured once, so this page cannot say how much any of them "
                f"varies between runs, and shows no intervals: give the sweep `repeats: "
                f"{repeats_needed(1, 1)}` or more (the fewest with which a rank test can tell two points "
                "apart)."), True
    twice = len(stats) - once
    return (f"All {twice} points measured at least twice are stable: their IOPS intervals are within "
            f"±{UNSTABLE_CV:.0%} of their medians"
            + (f"; {once} point(s) were measured once, and how much they vary is not known." if once else "."),
            False)


def sweep_best_text(stats):
    """The sweep's headline, claimed only when the measurements support it:
    a rank test (stats.apart, as `kit compare`) puts the best point's
    repeats above the runner-up's, by more than CLEAR_DIFFERENCE_PCT, and
    neither the device nor the top points changed while they were measured.
    One run a point names no winner: it says nothing of run-to-run noise."""
    ranked = stats.sort_values("iops", ascending=False)
    best = ranked.iloc[0]
    withheld = ranking_withheld(stats.attrs.get("drift"), ranked.head(2))
    if withheld:
        return withheld

    def figure(r):
        if r["repeats"] < 2:
            return f"{r['iops']:,.0f} IOPS (one run)"
        what = "95 % interval" if r["repeats"] >= 5 else "range"
        return (f"{r['iops']:,.0f} IOPS (median of {r['repeats']:.0f}, {what} {r['iops_lo']:,.0f} to "
                f"{r['iops_hi']:,.0f})")
    if len(ranked) == 1:
        return (f"One point: {sweep_point_words(best, stats)} reaches {figure(best)}, p99 latency "
                f"{best['clat_p99_ns'] / 1000:,.0f} µs.")
    second = ranked.iloc[1]
    lead = 100.0 * (best["iops"] / second["iops"] - 1.0) if second["iops"] else float("inf")
    test = apart(best["iops_runs"], second["iops_runs"])
    both = f"{sweep_point_words(best, stats)} reaches {figure(best)} and {sweep_point_words(second, stats)} " \
           f"{figure(second)}"
    if not test["enough"]:
        runs = "one run each" if best["repeats"] == second["repeats"] == 1 else \
            f"{best['repeats']:.0f} and {second['repeats']:.0f} runs"
        return (f"No winner named: {both}. With {runs}, a lead of {lead:.1f} % cannot be told from run-to-run "
                f"noise; measure {test['needed']} or more repeats a point.")
    if not test["apart"]:
        return (f"No clear winner: {both}; a rank test cannot tell their repeats apart (p = {test['p']:.2f}).")
    if lead <= CLEAR_DIFFERENCE_PCT:
        return (f"No clear winner: {both}; their repeats differ, but by {lead:.1f} %, no more than "
                f"{CLEAR_DIFFERENCE_PCT:.0f} %.")
    return (f"The highest throughput is {sweep_point_words(best, stats)}: {figure(best)}, p99 latency "
            f"{best['clat_p99_ns'] / 1000:,.0f} µs, {lead:.1f} % ahead of {sweep_point_words(second, stats)} "
            f"({figure(second)}; a rank test puts their repeats apart, p = {test['p']:.3f}).")


def skipped_text(skipped, data_dir):
    """A page's one sentence on stored files it could not read ((path, why)
    from store.load), named within the store, never by absolute path; None
    when there were none."""
    if not skipped:
        return None
    root = os.path.abspath(data_dir)

    def within(path):
        rel = os.path.relpath(os.path.abspath(path), root)
        return os.path.basename(path) if rel.startswith("..") else rel
    shown = "; ".join(f"{within(p)} ({why})" for p, why in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return (f"{len(skipped)} stored result file(s) could not be read and are left out of this page: {shown}{more}.")


def sweep_series(stats):
    """The axes that tell a sweep's plotted lines apart: the engine and every
    axis the grid varied other than iodepth (across) and bs (one row of
    plots each)."""
    return ["label"] + [a for a in ("numjobs",) if a in stats and stats[a].nunique() > 1] \
        + list(stats.attrs.get("axes") or [])


def sweep_series_name(stats, key):
    key = key if isinstance(key, tuple) else (key,)
    names = sweep_series(stats)
    return ", ".join(str(v) if a == "label" else f"{a} {v}" for a, v in zip(names, key))


# ---- what a page says before it ranks: trends, drift, disturbance, cuts ----------

def _per_run(frame):
    """One row per run (a result's read and write rows added up), in the
    order the runs were measured: by time, then by their place in the run
    order (tags "order"; runs of one second keep it)."""
    if frame.empty:
        return frame
    f = frame.assign(order=frame["order"] if "order" in frame else np.nan,
                     timestamp=frame["timestamp"] if "timestamp" in frame else 0)
    if "key" in f:
        first = {c: "first" for c in f.columns if c not in ("key", "iops")}
        f = f.groupby("key", sort=False).agg({"iops": "sum", **first}).reset_index()
    return f.assign(_o=f["order"].fillna(-1)).sort_values(["timestamp", "_o"], kind="stable")


def _flag(frame, column):
    return frame[column].map(lambda v: v is True or v == 1) if column in frame else pd.Series(False, frame.index)


def _runs_in_time_order(frame, keys):
    """(time order, point, IOPS) of every run, for stats.suite_drift."""
    if "timestamp" not in frame and "order" not in frame:
        return []               # rows that do not say when they ran say nothing of a drift
    runs = _per_run(frame)
    return [(i, tuple(r[k] for k in keys), r["iops"]) for i, (_n, r) in enumerate(runs.iterrows())]


def _point_flags(g):
    """A point's runs: a trend within any run (tags from the sweep), the
    repeats' drift in time order, a busy machine, its re-runs."""
    runs = _per_run(g)
    trends = pd.to_numeric(runs["trend_pct"], errors="coerce") if "trend_pct" in runs else pd.Series(dtype=float)
    flagged = trends[_flag(runs, "trend")]
    planned = pd.to_numeric(runs["planned_repeats"], errors="coerce").max() if "planned_repeats" in runs else np.nan
    return {"trend_pct": float(flagged.loc[flagged.abs().idxmax()]) if not flagged.empty else 0.0,
            "drift_pct": (drift(list(runs["iops"])) or 0.0) if "timestamp" in g or "order" in g else 0.0,
            "busy": int(_flag(runs, "busy").sum()),
            "others_io_bytes": float(pd.to_numeric(runs["others_io_bytes"], errors="coerce").max())
            if "others_io_bytes" in runs else np.nan,
            "reruns": int(_flag(runs, "rerun").sum()),
            "planned": planned}


def row_note(r):
    """The short note a flagged row or point gets in its table ('' when none)."""
    notes = []
    if r.get("trend_pct"):
        notes.append(f"IOPS {'rose' if r['trend_pct'] > 0 else 'fell'} {abs(r['trend_pct']):.0f} % within a run")
    if r.get("drift_pct"):
        notes.append(f"repeats {'rose' if r['drift_pct'] > 0 else 'fell'} {abs(r['drift_pct']):.0f} % "
                     "in the order they ran")
    if r.get("busy"):
        io = r.get("others_io_bytes")
        notes.append(f"{r['busy']:.0f} run(s) on a busy machine"
                     + (f" (others' I/O on the device: {human_bytes(io)})" if io == io and io else ""))
    if r.get("reruns"):
        notes.append(f"{r['reruns']:.0f} re-run(s)" + (", still unstable" if r.get("unstable") else ""))
    return "; ".join(notes)


def ranking_withheld(drifted, ranked):
    """Why no ranking can stand, or None: the whole measurement drifted
    (stats.suite_drift), or one of the two leading rows changed while it
    was measured (a trend within a run, repeats drifting)."""
    if drifted and drifted.get("drift"):
        how = "warmed up" if drifted["change_pct"] > 0 else "slowed down"
        return (f"Ranking withheld: the device {how} during the measurement. Runs measured in its last third "
                f"were {abs(drifted['change_pct']):.0f} % {'faster' if drifted['change_pct'] > 0 else 'slower'} "
                f"against their own medians than runs in its first third ({drifted['runs']} runs, a rank test "
                "beyond noise), so an order of the rows would reflect when they ran. Measure again: the "
                "warm-up read happens first, and a quiet device should not drift.")
    top = ranked.head(2)
    moved = [r for r in top.to_dict("records") if r.get("trend_pct") or r.get("drift_pct")]
    if moved:
        r = moved[0]
        name = r.get("job") or ", ".join(f"{k} {r[k]}" for k in ("label", "iodepth", "bs", "numjobs") if k in r)
        return (f"Ranking withheld: {name} changed while it was measured ({row_note(r)}), so its "
                "place against the others is not known. Measure again on a quiet, warmed-up device.")
    return None


def order_text(tags):
    """How the runs were ordered and warmed up, from their tags (a list of
    dicts: results' tags, or a sweep frame's rows); None for results from
    before kit interleaved them."""
    import json
    seeds = sorted({t.get("order_seed") for t in tags if t.get("order_seed") == t.get("order_seed")
                    and t.get("order_seed") is not None})
    if not seeds:
        return None
    warm = next((t.get("warm_up") for t in tags if t.get("warm_up")), None)
    if isinstance(warm, str):
        try:
            warm = json.loads(warm)
        except ValueError:
            warm = None
    text = (f"Repeats were interleaved: round after round, every row once per round in a random order (seed "
            f"{', '.join(f'{int(s)}' for s in seeds)}), so that no row always ran first or on a colder device.")
    if isinstance(warm, dict) and warm.get("bytes"):
        text += (f" Before the first run kit read its files through once ({human_bytes(warm['bytes'])}"
                 f"{', direct' if warm.get('direct') else ''}, {warm.get('seconds', 0):.1f} s), so every row "
                 "met the same device and host caches.")
    elif isinstance(warm, dict) and warm.get("skipped"):
        text += f" The files were not read through first: {warm['skipped']}."
    return text


def measurement_text(stats):
    """Sentences on how the sweep was measured: points re-run because their
    repeats disagreed, runs the time budget cut, points measured while the
    machine was busy."""
    parts = []
    if stats.empty:
        return parts
    reruns = int(stats.get("reruns", pd.Series(dtype=float)).fillna(0).sum())
    if reruns:
        still = int((stats["unstable"] & (stats["reruns"] > 0)).sum())
        parts.append(f"{reruns} run(s) were added to {int((stats['reruns'] > 0).sum())} point(s) whose repeats "
                     f"disagreed; {still} of them still disagree (flagged).")
    planned = pd.to_numeric(stats.get("planned", pd.Series(dtype=float)), errors="coerce")
    short = stats[(stats["repeats"] - stats.get("reruns", 0)) < planned]
    if not short.empty:
        parts.append(f"{len(short)} point(s) have fewer repeats than the {planned.max():.0f} planned: the sweep's "
                     "time budget ran out (or it was interrupted) before their rounds.")
    busy = stats[stats.get("busy", pd.Series(0, stats.index)) > 0]
    if not busy.empty:
        parts.append(f"{len(busy)} point(s) include runs on a busy machine (other processes' CPU, steal, or others' "
                     "I/O on the device), measured again up to twice before they were kept; see their notes.")
    return parts


def engines_intervals(table, results, scenario, key=("scenario", "section")):
    """The engines table (one run per engine: seed_table of newest_runs)
    with what every repeat of the newest measurement says: the median IOPS
    and its interval, the repeats, the trend within runs, the repeats' drift,
    busy runs, a note per flagged row, and attrs["drift"]: whether the whole
    measurement drifted (stats.suite_drift)."""
    from .stats import trend
    from .sweep import window_iops
    if table.empty:
        return table
    table = table.drop_duplicates("job").reset_index(drop=True)     # one row per engine, whatever it was given
    groups = {}
    for r in results:
        tags = r.data.get("tags") or {}
        if tags.get("scenario") == scenario:
            groups.setdefault(tags.get("section"), []).append(r)
    rows, runs = [], []
    for job in table["job"]:
        rs = groups.get(job) or []
        batches = {}
        for r in rs:
            b = (r.data.get("tags") or {}).get("batch", ("single", id(r)))
            batches.setdefault(b, []).append(r)
        latest = max(batches.values(), key=lambda b: max(r.data.get("timestamp_ms") or 0 for r in b), default=[])
        latest.sort(key=lambda r: (r.data.get("timestamp_ms") or 0, (r.data.get("tags") or {}).get("order") or 0))
        iops = [r.iops for r in latest]
        med, lo, hi = median_interval(iops) if iops else (np.nan,) * 3
        within = [trend(window_iops(r)) for r in latest]
        moved = [w["change_pct"] for w in within if w and w["trend"]]
        loads = [((r.data.get("process") or {}).get("machine_during_run") or {}) for r in latest]
        others = [(m.get("device_io") or {}).get("others_bytes") for m in loads]
        row = {"job": job, "iops_median": med, "iops_lo": lo, "iops_hi": hi, "repeats": len(iops),
               "trend_pct": max(moved, key=abs) if moved else 0.0, "drift_pct": drift(iops) or 0.0,
               "busy": sum(bool(m.get("busy")) for m in loads),
               "others_io_bytes": max((o for o in others if o), default=np.nan),
               "reruns": sum(bool((r.data.get("tags") or {}).get("rerun")) for r in latest)}
        row["unstable"] = bool(len(iops) > 1 and med and (hi - lo) / med > 2 * UNSTABLE_CV)
        row["note"] = row_note(row)
        row["interval"] = f"{lo:,.0f} – {hi:,.0f}" if len(iops) > 1 else "-"
        rows.append(row)
        runs += [((r.data.get("timestamp_ms") or 0, (r.data.get("tags") or {}).get("order") or 0), job, r.iops)
                 for r in latest]
    runs.sort(key=lambda x: x[0])
    out = table.merge(pd.DataFrame(rows), on="job", how="left")
    # IOPS and the comparison from the medians (the chosen run's own for an
    # odd number of repeats), so table, intervals and prose agree
    out["iops"] = out["iops_median"].fillna(out["iops"])
    ref_col = next((c for c in out.columns if c.startswith("iops_vs_")), None)
    ref = out[out["label"] == ref_col[len("iops_vs_"):-len("_pct")]] if ref_col else out.iloc[0:0]
    if ref_col and not ref.empty and ref.iloc[0]["iops"]:
        out[ref_col] = 100.0 * (out["iops"] / ref.iloc[0]["iops"] - 1.0)
    out.attrs["drift"] = suite_drift([(i, job, v) for i, (_t, job, v) in enumerate(runs)])
    return out


def unstable_text(stats):
    bad = stats[stats["unstable"]]
    if bad.empty:
        return None
    spread = (bad["iops_hi"] - bad["iops_lo"]) / bad["iops"]
    worst = bad.loc[spread.idxmax()]
    return (f"{len(bad)} of {len(stats)} points have an IOPS interval wider than ±{UNSTABLE_CV:.0%} of their "
            f"median (worst: {sweep_point_words(worst, stats).replace('**', '')}, {worst['iops_lo']:,.0f} to "
            f"{worst['iops_hi']:,.0f}): use more repeats or longer runtimes, and keep the machine otherwise idle.")


# ---- anatomy: what the tracers saw ---------------------------------------------

def _depth_mean(depth):
    n = sum(depth.values())
    return sum(int(k) * v for k, v in depth.items()) / n if n else None


def anatomy_table(results):
    """One row per traced workload: the engine's latency against the device's,
    the device queue, every thread's switches by role, io_uring's events."""
    rows = []
    for r in results:
        trace = r.data.get("trace") or {}
        block = (trace.get("block") or {}).get("read") or {}
        sched = trace.get("sched") or {}
        uring = (trace.get("uring") or {}).get("process") or {}
        read = r.total["read"]
        clat = read["clat_ns"]["mean"] or None
        dev_lat = (block.get("lat_ns") or {}).get("mean")
        row = {
            "workload": (r.data.get("tags") or {}).get("workload", r.data.get("label")),
            # results from before the buffered case are direct ones
            "scenario": (r.data.get("tags") or {}).get("scenario", "direct"),
            "label": r.data.get("label"), "traced": bool(trace), "iops": r.iops,
            "clat_mean_us": clat / 1000 if clat else None,
            "clat_p99_us": (read["clat_ns"].get("percentile", {}).get("99.000000") or 0) / 1000 or None,
            "device_lat_mean_us": dev_lat / 1000 if dev_lat else None,
            # the results' own share (device time over engine time, by sums);
            # older results had only means
            "device_share": ((trace.get("block") or {}).get("device_share") or {}).get("read")
            or ((dev_lat / clat) if dev_lat and clat else None),
            "device_queue_mean_us": ((block.get("queue_ns") or {}).get("mean") or 0) / 1000 or None,
            "device_depth_mean": None if (trace.get("block") or {}).get("depth_unreliable")
            else _depth_mean(block.get("depth") or {}),
            "requests_per_io": (block.get("requests", 0) / read["total_ios"]) if block and read["total_ios"] else None,
            "ctx_job_threads": r.total["ctx"],
            "ctx_process": (r.data.get("process") or {}).get("ctx"),
        }
        ios = r.ios
        cpu, _whose = cpu_seconds(r)
        row["cpu_us_per_io"] = 1e6 * cpu / ios if ios else None
        row["ios_per_cpu_s"] = ios / cpu if cpu > 0 else None
        for role, entry in (sched.get("roles") or {}).items():
            row[f"switches_{role}"] = entry.get("switches", 0)
            row[f"per_io_{role}"] = entry.get("switches", 0) / ios if ios else None
        if sched.get("system") and ios:
            row["per_io_system"] = sched["system"].get("switches", 0) / ios
        for event in ("submit", "complete", "queue_async_work", "task_work_run", "local_work_run", "cqring_wait"):
            if event in uring:
                row[f"uring_{event}"] = uring[event]
        sqpoll = (sched.get("roles") or {}).get("io_uring_sqpoll") or {}
        if sqpoll.get("threads") and trace.get("duration_ns"):
            row["sqpoll_cpu_share"] = sqpoll.get("oncpu_ns", 0) / trace["duration_ns"]
            row["sqpoll_preempted"] = sqpoll.get("involuntary", 0)
        row["cpus"] = ((r.data.get("machine") or {}).get("cpu") or {}).get("usable")
        row["lost_events"] = (trace.get("lost") or {}).get("total")
        row["caveat"] = "; ".join(trace_caveats(r))
        rows.append(row)
    return pd.DataFrame(rows)


def missed_completions(result):
    """{device: share of its completions the block tracer did not see},
    from the tracer's check against /sys/block/<dev>/stat (devices where
    it saw them all are left out)."""
    devices = (((result.data.get("trace") or {}).get("block") or {}).get("devices") or {})
    out = {}
    for name, d in devices.items():
        c = d.get("completions") or {}
        stat, seen = c.get("stat"), c.get("seen")
        if stat and seen is not None and stat > seen:
            out[name] = (stat - seen) / stat
    return out


def trace_caveats(result):
    """What makes one row's trace figures less than whole, said on that row."""
    trace = result.data.get("trace") or {}
    block = trace.get("block") or {}
    own = sum((block.get(d) or {}).get("requests", 0) for d in ("read", "write"))
    # a run served from the page cache leaves the device to others: what the
    # tracer missed of their completions says nothing about this row
    out = [f"the block tracer missed {share:.0%} of {name}'s completions: device figures are low"
           for name, share in missed_completions(result).items()
           if share >= 0.005 and own >= 0.01 * result.ios]
    lost = (trace.get("lost") or {}).get("total")
    if lost:
        out.append(f"{lost:,} tracer events lost: counts are low")
    if ((result.data.get("process") or {}).get("machine_during_run") or {}).get("busy"):
        out.append("machine busy with other work")
    out += [n for n in result.data.get("notes") or [] if n.startswith("untraced")]
    return out


def anatomy_text(table):
    if table.empty or not table["traced"].any():
        return None
    parts = []
    t = table[table["device_share"].notna()]
    if not t.empty:
        low, high = t.loc[t["device_share"].idxmin()], t.loc[t["device_share"].idxmax()]
        parts.append(f"The device accounts for {high['device_share']:.0%} of {high['workload']}'s "
                     f"latency but only {low['device_share']:.0%} of {low['workload']}'s: the rest is spent "
                     "above the block layer (queues, hand-offs, wake-ups).")
    if "per_io_helper" in table and table["per_io_helper"].fillna(0).max() > 0:
        h = table.loc[table["per_io_helper"].fillna(0).idxmax()]
        parts.append(f"{h['workload']}'s helper threads switched {h['per_io_helper']:.2f} times per I/O against "
                     f"{h.get('per_io_job') or 0:.2f} for its job thread.")
    if "uring_queue_async_work" in table and table["uring_queue_async_work"].fillna(0).max() > 0:
        p = table.loc[table["uring_queue_async_work"].fillna(0).idxmax()]
        parts.append(f"{p['workload']} punted {p['uring_queue_async_work']:,.0f} of {p.get('uring_submit', 0):,.0f} "
                     "requests to io-wq worker threads (iou-wrk).")
    sqpoll = sqpoll_text(table)
    if sqpoll:
        parts.append(sqpoll)
    unreliable = table["device_depth_mean"].isna() & table["traced"] & table["device_lat_mean_us"].notna()
    if unreliable.any():
        parts.append(f"The device depth of {', '.join(table.loc[unreliable, 'workload'])} is not shown: "
                     "completions were missed while another BPF program ran on the same CPU, which makes "
                     "the in-flight count drift.")
    return " ".join(parts) or None


def sqpoll_text(table):
    """What SQPOLL cost and bought on this machine, against basic io_uring in
    the same scenario: a polling kernel thread needs a CPU of its own."""
    if "sqpoll_cpu_share" not in table or table["sqpoll_cpu_share"].isna().all():
        return None
    s = table.loc[table["sqpoll_cpu_share"].idxmax()]
    base = table[(table["label"] == "io_uring") & (table["scenario"] == s["scenario"])]
    cpus = s.get("cpus")
    on_cpu = (f"its kernel thread (iou-sqp) polls the submission queue instead of sleeping and was on a CPU "
              f"{s['sqpoll_cpu_share']:.0%} of the run")
    machine = f" on this {cpus:.0f}-CPU machine" if cpus == cpus and cpus else ""
    if base.empty or not base.iloc[0]["iops"]:
        return f"In {s['workload']}, {on_cpu}{machine}."
    b = base.iloc[0]
    change = 100 * (s["iops"] / b["iops"] - 1)
    cost = ""
    if s.get("cpu_us_per_io") and b.get("cpu_us_per_io"):
        cost = (f" Each I/O cost {s['cpu_us_per_io']:,.1f} µs of CPU against {b['cpu_us_per_io']:,.1f} µs "
                "for basic io_uring.")
    if change < -CLEAR_DIFFERENCE_PCT:
        return (f"{s['workload']} is {-change:.0f} % slower than basic io_uring ({s['iops']:,.0f} against "
                f"{b['iops']:,.0f} IOPS): {on_cpu}{machine}, competing for the CPUs with the job thread that "
                f"feeds it and the completions it waits for (the scheduler preempted it "
                f"{s.get('sqpoll_preempted', 0):,.0f} times).{cost} SQPOLL pays off where a CPU is to spare "
                "for the poller; here none is.")
    if change > CLEAR_DIFFERENCE_PCT:
        return (f"{s['workload']} is {change:.0f} % faster than basic io_uring ({s['iops']:,.0f} against "
                f"{b['iops']:,.0f} IOPS), bought with a CPU: {on_cpu}{machine}.{cost}")
    return (f"{s['workload']} is no faster than basic io_uring ({s['iops']:,.0f} against {b['iops']:,.0f} IOPS, "
            f"within {CLEAR_DIFFERENCE_PCT:.0f} %), although {on_cpu}{machine}.{cost}")


# switches by role that the run itself causes (kworkers and others are the
# rest of the machine, the idle task among them)
RUN_ROLES = ("job", "helper", "io_uring_wq", "io_uring_sqpoll")
ROLE_NAMES = {"job": "job threads", "helper": "helper threads", "io_uring_wq": "io_uring workers (iou-wrk)",
              "io_uring_sqpoll": "io_uring SQPOLL thread (iou-sqp)", "kworker": "kernel workers (kworker)",
              "other": "other threads", "system": "every thread (idle task included)"}


def buffered_text(table):
    """The page-cache case in a few sentences: no device, so what is left
    is each engine's own cost per I/O."""
    t = table[table["iops"] > 0]
    if t.empty:
        return None
    ranked = t.sort_values("iops", ascending=False)
    best, worst = ranked.iloc[0], ranked.iloc[-1]
    if len(ranked) > 1 and best["iops"] <= ranked.iloc[1]["iops"] * (1 + CLEAR_DIFFERENCE_PCT / 100):
        # one traced run each: a lead within run-to-run noise names no winner
        parts = [f"With every read a page-cache hit, **{best['workload']}** and **{ranked.iloc[1]['workload']}** "
                 f"lead within {CLEAR_DIFFERENCE_PCT:.0f} % of each other ({best['iops']:,.0f} and "
                 f"{ranked.iloc[1]['iops']:,.0f} IOPS, one run each: no clear fastest); "
                 f"**{worst['workload']}** is slowest at {worst['iops']:,.0f}."]
    else:
        parts = [f"With every read a page-cache hit, **{best['workload']}** is fastest at {best['iops']:,.0f} IOPS "
                 f"and **{worst['workload']}** slowest at {worst['iops']:,.0f}."]
    cols = [f"per_io_{r}" for r in RUN_ROLES if f"per_io_{r}" in t]
    if cols:
        run = t[cols].fillna(0).sum(axis=1)
        most, least = t.loc[run.idxmax()], t.loc[run.idxmin()]
        if run.max() > 0:
            parts.append(f"The threads of {most['workload']}'s run switched {run.max():.2f} times per I/O, "
                         f"those of {least['workload']}'s {run.min():.2g}: a read served from memory never "
                         "waits for a device, so the switches are the engine's own hand-offs between threads "
                         "(and other work preempting them).")
    if "cpu_us_per_io" in t and t["cpu_us_per_io"].notna().any():
        dear, cheap = t.loc[t["cpu_us_per_io"].idxmax()], t.loc[t["cpu_us_per_io"].idxmin()]
        parts.append(f"CPU per I/O ranges from {cheap['cpu_us_per_io']:,.1f} µs ({cheap['workload']}) to "
                     f"{dear['cpu_us_per_io']:,.1f} µs ({dear['workload']}).")
    return " ".join(parts)


# ---- the look every page shares: colours, scales, images with alt text --------

# One colour per engine, keyed by its label (the ioengine and the features
# that change it, as results store it), so an engine is the same colour in
# every plot of every page. Engines without an entry get a spare colour
# picked by their label alone, stable across pages too.
ENGINE_COLORS = {
    "sync": "#8c564b", "psync": "#c49c94", "threadpool": "#9467bd", "posixaio": "#e377c2",
    "libaio": "#ff7f0e", "io_uring": "#1f77b4", "io_uring+fixedbufs+registerfiles": "#17becf",
    "io_uring+sqthread_poll": "#2ca02c", "io_uring+force_async": "#d62728", "null": "#7f7f7f",
}
_SPARE_COLORS = ("#bcbd22", "#aec7e8", "#98df8a", "#ff9896", "#c5b0d5", "#f7b6d2", "#dbdb8d", "#9edae5",
                 "#393b79", "#637939", "#8c6d31", "#843c39")


def _named_labels():
    """Names the pages use for engines (an anatomy workload such as
    io_uring-sqpoll, a seed section such as posix-aio) -> their label."""
    from .engines import variants
    from .job import job_label
    from .seed import SEED_ENGINES, THREADPOOL
    return {name: job_label(options) for name, options in list(variants()) + list(SEED_ENGINES + (THREADPOOL,))}


def engine_label(name):
    """The label an engine name stands for; a label stands for itself."""
    return _named_labels().get(name, name)


def color(name):
    """The engine's colour on every page (name: a label, a workload or a
    seed section)."""
    import zlib
    label = engine_label(str(name))
    if label in ENGINE_COLORS:
        return ENGINE_COLORS[label]
    return _SPARE_COLORS[zlib.crc32(label.encode()) % len(_SPARE_COLORS)]


def scale_for(values, decades=2):
    """"log" when the positive values span `decades` powers of ten or more
    (a linear axis would flatten the small ones to nothing), else "linear"."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return "log" if len(v) > 1 and v.max() / v.min() >= 10 ** decades else "linear"


def _axes_text(ax):
    parts = []
    for which, label, scale in (("x", ax.get_xlabel(), ax.get_xscale()), ("y", ax.get_ylabel(), ax.get_yscale())):
        if label:
            parts.append(f"{which}: {label}" + (", log scale" if scale == "log" else ""))
    title = ax.get_title()
    if not title:
        return "; ".join(parts)
    return f"{title} ({'; '.join(parts)})" if parts else title


def _plain_log_ticks(ax):
    """Log axes labelled 0.01, 1, 1,000 rather than 10^-2, 10^0, 10^3 (where
    the plot has not chosen its own labels); a range under a decade labels
    its minor ticks too, as it has no major one to speak of."""
    from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator, NullFormatter
    plain = FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    for axis, scale, limits in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()), (ax.yaxis, ax.get_yscale(), ax.get_ylim())):
        if scale != "log" or not isinstance(axis.get_major_formatter(), LogFormatterSciNotation):
            continue
        axis.set_major_formatter(plain)
        lo, hi = sorted(limits)
        powers = np.floor(np.log10(hi)) - np.ceil(np.log10(lo)) + 1 if lo > 0 else 2
        if powers < 2:      # one power of ten or none in view: label 2 and 5 times them too
            axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
            axis.set_minor_formatter(plain)
        else:
            axis.set_minor_formatter(NullFormatter())


def figure_alt(fig, what):
    """Alt text: what the figure shows, then each panel's title and axes
    (with their scales), so a reader without the image knows what it plots."""
    panels = [t for t in (_axes_text(ax) for ax in fig.axes if ax.get_visible() and ax.has_data()) if t]
    return what.rstrip(".") + "." + (" Panels: " + "; ".join(panels) + "." if panels else "")


def show(fig, what):
    """A figure as an embedded PNG with alt text (nbconvert's own images
    have none): `what` says what it shows, the panels' axes follow."""
    import base64
    import io
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display
    from PIL import Image
    for ax in fig.axes:
        _plain_log_ticks(ax)
    alt = figure_alt(fig, what)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    # a chart has few colours: a 256-colour palette keeps it sharp at a
    # third of the bytes, and the pages small
    buf.seek(0)
    small = io.BytesIO()
    Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(small, "png", optimize=True)
    data = base64.b64encode(small.getvalue()).decode()
    display(HTML(f'<img class="kit-figure" alt="{html.escape(alt)}" style="max-width:100%" '
                 f'src="data:image/png;base64,{data}">'))
    return alt


# ---- latencies from the stored bins, IOPS over time, CPU cost -------------------

def latency_distribution(result, ddir=None, kind="clat_ns"):
    """A run's latency distribution from its stored bins (fio's json+ bins,
    one per non-empty bucket): latency in µs, count, share and the
    cumulative share (the CDF, which ends at 1). ddir: the direction that
    did most I/O by default. Empty where the result has no bins (fio json
    without the plus)."""
    from .text import main_ddir
    entry = result.total
    lat = entry[ddir or main_ddir(entry)].get(kind) or {}
    bins = sorted((int(k), int(v)) for k, v in (lat.get("bins") or {}).items() if int(v) > 0)
    if not bins:
        return pd.DataFrame(columns=["latency_us", "count", "share", "cumulative"])
    ns = np.array([b[0] for b in bins], dtype=float)
    counts = np.array([b[1] for b in bins], dtype=np.int64)
    total = counts.sum()
    return pd.DataFrame({"latency_us": ns / 1000, "count": counts, "share": counts / total,
                         "cumulative": np.cumsum(counts) / total})


def latency_histogram(dist, per_decade=20):
    """The distribution on log-spaced bins (per_decade to a power of ten):
    the stored buckets double in width at every power of two, which would
    draw as steps on a log axis. Rows: bin's lower and upper edge (µs),
    share of I/Os."""
    if dist.empty:
        return pd.DataFrame(columns=["lo_us", "hi_us", "share"])
    lo = np.floor(np.log10(dist["latency_us"].min()) * per_decade) / per_decade
    hi = np.ceil(np.log10(dist["latency_us"].max()) * per_decade) / per_decade + 1 / per_decade
    edges = 10 ** np.arange(lo, hi + 1e-9, 1 / per_decade)
    share, edges = np.histogram(dist["latency_us"], bins=edges, weights=dist["share"])
    return pd.DataFrame({"lo_us": edges[:-1], "hi_us": edges[1:], "share": share})


def plot_latency(ax_hist, ax_cdf, runs):
    """Histogram and CDF of completion latency, one line per engine in its
    colour, µs on a log axis. runs: [(name, result)]."""
    drawn = 0
    for name, r in runs:
        dist = latency_distribution(r)
        if dist.empty:
            continue
        if (r.data.get("job") or {}).get("ioengine") != "null":
            # null's latency is kit's own floor: one spike that would flatten every other curve
            h = latency_histogram(dist)
            ax_hist.step(h["lo_us"], h["share"] * 100, where="post", color=color(name), label=name)
        ax_cdf.step(dist["latency_us"], dist["cumulative"], where="post", color=color(name), label=name)
        drawn += 1
    ax_hist.set(xscale="log", xlabel="completion latency (µs)", ylabel="% of I/Os per bin",
                title="latency histogram (20 bins per decade)")
    ax_cdf.set(xscale="log", xlabel="completion latency (µs)", ylabel="fraction of I/Os at or below",
               title="latency CDF", ylim=(0, 1.02))
    for ax in (ax_hist, ax_cdf):
        ax.xaxis.set_major_formatter(_us_formatter())
    if drawn:
        ax_cdf.legend(fontsize=8, loc="lower right")
    return drawn


def _us_formatter():
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}")


def iops_series(result):
    """IOPS per window over the run (Result.iops_windows) as a frame: window
    end (s), its length (s) and IOPS."""
    t_s, window_s, iops = result.iops_windows()
    return pd.DataFrame({"t_s": t_s, "window_s": window_s, "iops": iops})


def cpu_seconds(result):
    """(CPU seconds the run cost, whose): the whole process where kit
    measured it (helper threads and the process's io_uring threads
    included), else the job threads' as fio reports them (usr_cpu and
    sys_cpu are percent of job_runtime), as in imported fio results."""
    proc = result.data.get("process") or {}
    if proc.get("usr_ns") is not None and proc.get("sys_ns") is not None:
        return (proc["usr_ns"] + proc["sys_ns"]) / 1e9, "process"
    t = result.total
    return (t["usr_cpu"] + t["sys_cpu"]) / 100 * t["job_runtime"] / 1000, "job threads"


def efficiency(results, names=None):
    """What each I/O cost: I/Os per CPU-second, CPU µs per I/O (user and
    system), and context switches per I/O counted three ways (job threads,
    the process, every thread on the system). names: what to call each
    result (default: its label)."""
    rows = []
    for i, r in enumerate(results):
        ios = r.ios
        cpu, whose = cpu_seconds(r)
        proc = r.data.get("process") or {}
        sched = ((r.data.get("trace") or {}).get("sched") or {})
        system = (sched.get("system") or {}).get("switches")

        def per_io(n):
            return n / ios if ios and n is not None else None
        usr_s = proc["usr_ns"] / 1e9 if whose == "process" else r.total["usr_cpu"] / 100 * r.total["job_runtime"] / 1000
        rows.append({
            "engine": names[i] if names else r.data.get("label"),
            "ios": ios, "iops": r.iops, "cpu_s": cpu, "cpu_of": whose,
            "ios_per_cpu_s": ios / cpu if cpu > 0 else None,
            "cpu_us_per_io": 1e6 * cpu / ios if ios else None,
            "usr_us_per_io": 1e6 * usr_s / ios if ios else None,
            "sys_us_per_io": 1e6 * (cpu - usr_s) / ios if ios else None,
            "ctx_per_io": per_io(r.total["ctx"]),
            "process_ctx_per_io": per_io(proc.get("ctx")),
            "system_ctx_per_io": per_io(system),
        })
    return pd.DataFrame(rows)


# without IOPS: the page's main table has them, this one what they cost
EFFICIENCY_COLUMNS = {"engine": "engine", "ios_per_cpu_s": "I/Os per CPU-second",
                      "cpu_us_per_io": "CPU µs per I/O", "usr_us_per_io": "user µs per I/O",
                      "sys_us_per_io": "system µs per I/O", "ctx_per_io": "switches per I/O (job threads)",
                      "process_ctx_per_io": "switches per I/O (process)",
                      "system_ctx_per_io": "switches per I/O (system, idle task included)"}
EFFICIENCY_FORMATS = {"IOPS": "{:,.0f}", "I/Os per CPU-second": "{:,.0f}", "CPU µs per I/O": "{:,.2f}",
                      "user µs per I/O": "{:,.2f}", "system µs per I/O": "{:,.2f}"}


def efficiency_view(frame):
    """The efficiency table with readable columns, for display."""
    shown = frame[[c for c in EFFICIENCY_COLUMNS if c in frame.columns and frame[c].notna().any()]]
    shown = shown.rename(columns=EFFICIENCY_COLUMNS)
    formats = {**EFFICIENCY_FORMATS, **{c: per_io_format for c in shown.columns if c.startswith("switches per")}}
    return shown.style.format({k: v for k, v in formats.items() if k in shown.columns}, na_rep="-") \
        .hide(axis="index")


def per_io_format(x):
    """Switches per I/O: small numbers keep their significant digits."""
    if x is None or x != x:
        return "-"
    if x == 0:
        return "0"
    if x >= 0.1:
        return f"{x:,.2f}"
    return np.format_float_positional(x, precision=2, fractional=False)      # 0.000015, never 1.5e-05


COUNTED = (("ctx_per_io", "job threads (fio's figure)", "o"), ("process_ctx_per_io", "the whole process", "s"),
           ("system_ctx_per_io", "every thread on the system (tracer)", "^"))


def plot_efficiency(ax_cpu, ax_ctx, frame):
    """I/Os per CPU-second (bars) and switches per I/O (one marker shape per
    way of counting), each engine in its colour; log scales where the
    values span decades."""
    names = list(frame["engine"])
    ax_cpu.bar(names, frame["ios_per_cpu_s"].fillna(0), color=[color(n) for n in names])
    ax_cpu.set(title="I/Os per CPU-second (higher is cheaper)", ylabel="I/Os per CPU-second",
               yscale=scale_for(frame["ios_per_cpu_s"]))
    shown = []
    for col, what, marker in COUNTED:
        if col in frame and frame[col].notna().any():
            ax_ctx.scatter(names, frame[col], c=[color(n) for n in names], marker=marker, s=60,
                           edgecolors="black", linewidths=0.6, label=what)
            shown += list(frame[col].dropna())
    ax_ctx.set(title="context switches per I/O", ylabel="switches per I/O", yscale=scale_for(shown))
    if shown:
        legend = ax_ctx.legend(fontsize=8, title="counted for", title_fontsize=8, loc="upper left",
                               bbox_to_anchor=(1.01, 1))
        for handle in legend.legend_handles:
            handle.set_facecolor("white")
    from matplotlib.ticker import FuncFormatter
    ax_cpu.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: human_count_axis(v)))
    for ax in (ax_cpu, ax_ctx):
        ax.tick_params(axis="x", rotation=30)
        for label in ax.get_xticklabels():
            label.set_color(color(label.get_text()))


def human_count_axis(v):
    """Tick labels for counts: 200k, 1.5M."""
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:g}{unit}"
    return f"{v:g}"


# ---- sweeps: fio-plot's 3D view, flattened ---------------------------------------

def heatmap_axes(stats):
    """(rows, panels): the axis a sweep's heatmaps put against iodepth
    (numjobs where the sweep varies it, else the block size), and the
    other axes that split them into panels, the engine first."""
    varies = [a for a in ("numjobs", "bs") if a in stats and stats[a].nunique() > 1]
    rows = varies[0] if varies else "numjobs"
    return rows, ["label"] + [a for a in varies if a != rows] + list(stats.attrs.get("axes") or [])


def sweep_heatmap(stats, panel, rows, value="iops"):
    """One panel's medians as a grid, rows x iodepth (ascending). panel:
    {axis: value} fixing the other axes (the engine among them)."""
    s = stats
    for axis, v in panel.items():
        s = s[s[axis] == v]
    return s.pivot_table(index=rows, columns="iodepth", values=value, aggfunc="first").sort_index() \
        .sort_index(axis=1)


def plot_heatmaps(stats):
    """Median IOPS of every point, one heatmap per engine (and per value of
    any other axis), iodepth across, numjobs (or bs) down; one colour scale
    for all, logarithmic where the medians span decades. Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize
    from .text import human_bytes, human_count
    rows, split = heatmap_axes(stats)
    panels = [dict(zip(split, key if isinstance(key, tuple) else (key,)))
              for key, _g in stats.groupby(split, sort=True, dropna=False)]
    positive = stats.loc[stats["iops"] > 0, "iops"]
    lo, hi = (positive.min(), positive.max()) if len(positive) else (1, 10)
    norm = LogNorm(lo, hi) if scale_for(positive) == "log" else Normalize(0, hi)
    cols = min(3, len(panels))
    rows_n = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols + 1, 3.2 * rows_n), squeeze=False,
                             constrained_layout=True)
    image = None
    for ax, panel in zip(axes.flat, panels):
        grid = sweep_heatmap(stats, panel, rows)
        image = ax.imshow(grid.clip(lower=lo).values, norm=norm, cmap="viridis", aspect="auto", origin="lower")
        ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [human_bytes(v, " ") if rows == "bs" else str(v) for v in grid.index])
        for (i, j), v in np.ndenumerate(grid.values):
            if v == v:
                shade = norm(max(v, lo))
                ax.text(j, i, human_count(v), ha="center", va="center", fontsize=8,
                        color="white" if shade < 0.6 else "black")
        extra = ", ".join(f"{k} {human_bytes(v, ' ') if k == 'bs' else v}" for k, v in panel.items() if k != "label")
        ax.set_title(panel["label"] + (f", {extra}" if extra else ""), color=color(panel["label"]))
        ax.set(xlabel="iodepth", ylabel="block size" if rows == "bs" else rows)
        ax.grid(False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), label="median IOPS")
    return fig


# ---- the machine page, for people ------------------------------------------------

def _fact(value, size=False):
    """A fingerprint value as people read it, None where it is not known."""
    from .text import human_bytes, yes_no
    if value is None or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, bool):
        return yes_no(value)
    if size and isinstance(value, (int, float)):
        return human_bytes(value, " ")
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def _rows(pairs):
    """(name, value) pairs with the unknown left out."""
    return [(k, v) for k, v in pairs if v is not None]


def machine_sections(fp):
    """The fingerprint for people: [(heading, [(fact, value)])], every value
    a word, a number or a human size; what is not known is left out."""
    from .text import human_bytes, yes_no
    cpu, mem, kernel = fp.get("cpu") or {}, fp.get("memory") or {}, fp.get("kernel") or {}
    online = f" (online {cpu['online']})" if cpu.get("online") else ""
    system = _rows([
        ("host name", _fact(fp.get("hostname"))), ("kernel", _fact(kernel.get("release"))),
        ("architecture", _fact(kernel.get("arch"))), ("virtualization", _fact(fp.get("virtualization"))),
        ("container", _fact(fp.get("container"))), ("CPU", _fact(cpu.get("model"))),
        ("CPUs", f"{cpu['count']}{online}" if cpu.get("count") else None),
        ("frequency governor", _fact(cpu.get("governor"))),
        ("SMT", {"notsupported": "not supported", "notimplemented": "not implemented", "forceoff": "forced off"}
         .get(cpu.get("smt"), _fact(cpu.get("smt")))),
        ("memory", _fact(mem.get("total_bytes"), size=True)),
        ("transparent huge pages", _fact(mem.get("transparent_hugepage"))),
        ("huge pages", _fact(mem.get("hugepages"))),
        ("kernel command line", _fact(kernel.get("cmdline")))])
    out = [("System", system)]
    mitigations = cpu.get("mitigations") or {}
    if mitigations:
        out.append(("CPU vulnerabilities and mitigations",
                    _rows((k.replace("_", " "), _fact(v)) for k, v in sorted(mitigations.items()))))
    target = fp.get("target") or {}
    fs, dev = target.get("filesystem") or {}, target.get("device") or {}
    out.append(("Filesystem", _rows([
        ("type", _fact(fs.get("type"))), ("mounted on", _fact(fs.get("mount_point"))),
        ("source", _fact(fs.get("source"))), ("mount options", _fact(fs.get("options")))])))
    if dev:
        kb = lambda k: human_bytes(dev[k] * 1024, " ") if isinstance(dev.get(k), (int, float)) else None
        out.append(("Device", _rows([
            ("name", _fact(dev.get("name") and f"/dev/{dev['name']}")), ("kind", _fact(dev.get("kind"))),
            ("driver", _fact(dev.get("driver"))), ("model", _fact(dev.get("model"))),
            ("vendor", _fact(dev.get("vendor"))), ("size", _fact(dev.get("size_bytes"), size=True)),
            ("I/O scheduler", _fact(dev.get("scheduler"))), ("queue depth (nr_requests)", _fact(dev.get("nr_requests"))),
            ("hardware queues", _fact(dev.get("nr_hw_queues"))), ("read-ahead", kb("read_ahead_kb")),
            ("largest request", kb("max_sectors_kb")),
            ("rotational", yes_no(dev.get("rotational"))),
            ("logical block size", _fact(dev.get("logical_block_size"), size=True)),
            ("physical block size", _fact(dev.get("physical_block_size"), size=True)),
            ("polled I/O (io_poll)", yes_no(dev.get("io_poll"))), ("write cache", _fact(dev.get("write_cache"))),
            ("backing file", _fact(dev.get("backing_file")))])))
    versions = fp.get("versions") or {}
    out.append(("Versions", _rows((k, _fact(v)) for k, v in sorted(versions.items()))))
    return [(h, rows) for h, rows in out if rows]


PRIVILEGES = {"root": "root", "cap_sys_admin": "CAP_SYS_ADMIN", "cap_perfmon": "CAP_PERFMON", "cap_bpf": "CAP_BPF",
              "memlock_bytes": "locked memory limit (ulimit -l)", "nofile": "open files limit (ulimit -n)",
              "aio_nr": "AIO slots in use (fs.aio-nr)", "aio_max_nr": "AIO slots (fs.aio-max-nr)",
              "io_uring_disabled": "io_uring disabled (kernel.io_uring_disabled)"}
TRACING = {"usable": "tracing works", "reason": "why not", "bcc": "bcc installed", "bcc_version": "bcc version",
           "tracefs": "tracefs mounted", "headers": "kernel headers", "root": "root", "cap_bpf": "CAP_BPF"}


def capability_sections(caps):
    """doctor's tracing and privileges for people, as machine_sections."""
    from .text import yes_no
    tracing = caps.get("tracing") or {}
    rows = [(TRACING.get(k, k.replace("_", " ")), _fact(v)) for k, v in tracing.items()
            if not isinstance(v, (dict, list))]
    rows += [(f"tracepoints: {k}", yes_no(v)) for k, v in (tracing.get("tracepoints") or {}).items()]
    p = caps.get("privileges") or {}
    priv = []
    for k, v in p.items():
        if k == "memlock_bytes":
            priv.append((PRIVILEGES[k], "unlimited" if v is None else _fact(v, size=True)))
        elif k == "io_uring_disabled":
            priv.append((PRIVILEGES[k], {"0": "no", "1": "for unprivileged users", "2": "yes"}.get(str(v), _fact(v))))
        elif k in ("aio_nr", "aio_max_nr", "nofile"):
            priv.append((PRIVILEGES[k], f"{int(v):,}" if str(v).isdigit() else _fact(v)))
        else:
            priv.append((PRIVILEGES.get(k, k.replace("_", " ")), _fact(v)))
    return [(h, _rows(r)) for h, r in (("Tracing", rows), ("Privileges and limits", priv)) if _rows(r)]


def newest_runs(results, key=("scenario", "section")):
    """One result per row of a table, so every figure of a row comes from
    one real run: among the results that share the key's tags, those of the
    newest measurement (results of one measurement share tags["batch"]; a
    result without one is a measurement of its own), and of those the run
    whose IOPS is the median of its repeats (the lower middle of an even
    number). Order: as given."""
    groups = {}
    for r in results:
        tags = r.data.get("tags") or {}
        groups.setdefault(tuple(tags.get(k) for k in key), []).append(r)
    chosen = []
    for runs in groups.values():
        def batch(r):
            tags = r.data.get("tags") or {}
            return tags.get("batch", ("single", id(r)))
        newest = {}
        for r in runs:
            b = batch(r)
            newest[b] = max(newest.get(b, 0), r.data.get("timestamp") or 0)
        latest = max(newest, key=newest.get)
        repeats = sorted((r for r in runs if batch(r) == latest), key=lambda r: r.iops)
        chosen.append(repeats[(len(repeats) - 1) // 2])
    keep = {id(r) for r in chosen}
    return [r for r in results if id(r) in keep]


def repeat_count(results, run, key=("scenario", "section")):
    """How many repeats of its measurement `run` was chosen from (1 for a
    result without a batch)."""
    tags = run.data.get("tags") or {}
    if "batch" not in tags:
        return 1
    return sum(1 for r in results if all((r.data.get("tags") or {}).get(k) == tags.get(k) for k in key + ("batch",)))


# ---- results imported from fio (kit import) --------------------------------------

IMPORTED_PERCENTILES = ("50.000000", "90.000000", "99.000000", "99.900000", "99.990000")
# what must be equal for a kit result and an imported fio job to have measured the same thing
SAME_WORKLOAD = ("ioengine", "rw", "bs", "iodepth", "numjobs", "direct")


def _percentile_name(key):
    return "p" + f"{float(key):g}"


def imported_table(results):
    """One row per imported fio job and direction that did I/O: what fio ran
    and what it measured (IOPS, bandwidth, completion latency in µs: mean and
    fio's percentiles where the file has them), and when."""
    from .text import utc
    rows = []
    for r in results:
        job, tags = r.data.get("job") or {}, r.data.get("tags") or {}
        for ddir in ("read", "write", "trim"):
            entry = r.total.get(ddir) or {}
            if not entry.get("total_ios"):
                continue
            clat = entry.get("clat_ns") or {}
            row = {"source": tags.get("source"), "job": r.total.get("jobname") or r.data.get("label"),
                   **{k: job.get(k) for k in SAME_WORKLOAD}, "direction": ddir, "ios": entry["total_ios"],
                   "iops": entry.get("iops"), "bw_bytes": entry.get("bw_bytes"),
                   "runtime_s": (entry.get("runtime") or 0) / 1000, "clat_mean_us": _us(clat.get("mean"))}
            for key in IMPORTED_PERCENTILES:
                row[f"clat_{_percentile_name(key)}_us"] = _us((clat.get("percentile") or {}).get(key))
            row["measured"] = utc(r.data.get("timestamp_ms"), seconds=False)
            rows.append(row)
    return pd.DataFrame(rows)


def _us(ns):
    return ns / 1000 if isinstance(ns, (int, float)) and not isinstance(ns, bool) and ns > 0 else None


def _cell(value, fmt):
    """A table cell: fmt(value), or "n/a" where fio's file had no figure."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return fmt(value)


def _bs_text(bs):
    from .text import human_bytes
    if isinstance(bs, (list, tuple)):
        return ",".join(_bs_text(b) for b in bs)
    return human_bytes(bs, sep=" ") if isinstance(bs, int) and not isinstance(bs, bool) else str(bs)


def imported_view(table):
    """imported_table for people: readable names, units, separators."""
    from .text import human_bytes, yes_no
    if table.empty:
        return table
    latency = {f"clat_{_percentile_name(k)}_us": f"{_percentile_name(k)} (µs)" for k in IMPORTED_PERCENTILES}
    out = pd.DataFrame({
        "file": table["source"].map(lambda v: _cell(v, str)), "job": table["job"].map(lambda v: _cell(v, str)),
        "engine": table["ioengine"].map(lambda v: _cell(v, str)), "rw": table["rw"].map(lambda v: _cell(v, str)),
        "block size": table["bs"].map(lambda v: _cell(v, _bs_text)),
        "iodepth": table["iodepth"].map(lambda v: _cell(v, lambda x: f"{x:,}")),
        "jobs": table["numjobs"].map(lambda v: _cell(v, lambda x: f"{x:,}")),
        "direct": table["direct"].map(lambda v: _cell(v, yes_no)), "direction": table["direction"],
        "I/Os": table["ios"].map(lambda v: f"{v:,}"), "IOPS": table["iops"].map(lambda v: _cell(v, "{:,.0f}".format)),
        "bandwidth": table["bw_bytes"].map(lambda v: _cell(v, lambda x: human_bytes(x, sep=" ") + "/s")),
        "runtime (s)": table["runtime_s"].map(lambda v: f"{v:,.2f}"),
        "clat mean (µs)": table["clat_mean_us"].map(lambda v: _cell(v, "{:,.1f}".format)),
        **{name: table[col].map(lambda v: _cell(v, "{:,.1f}".format)) for col, name in latency.items()},
        "measured": table["measured"]})
    return out


def plot_imported(ax_iops, ax_lat, table):
    """IOPS of each imported job and direction (bars), and its completion
    latency percentiles (one line each, µs on a log axis)."""
    names = [f"{r['job']} {r['direction']}" for _, r in table.iterrows()]
    colors = [color(r["ioengine"] or "") for _, r in table.iterrows()]
    ax_iops.barh(range(len(table)), table["iops"].fillna(0), color=colors)
    ax_iops.set_yticks(range(len(table)), names)
    ax_iops.invert_yaxis()
    ax_iops.set(xlabel="IOPS", title="IOPS per job and direction")
    ax_iops.xaxis.set_major_formatter(_us_formatter())
    cols = [f"clat_{_percentile_name(k)}_us" for k in IMPORTED_PERCENTILES]
    labels = [_percentile_name(k) for k in IMPORTED_PERCENTILES]
    drawn = 0
    for (_, r), name, c in zip(table.iterrows(), names, colors):
        points = [(i, r[col]) for i, col in enumerate(cols) if r[col] is not None and np.isfinite(r[col])]
        if points:
            ax_lat.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=c, label=name,
                        linestyle="--" if r["direction"] == "write" else "-")
            drawn += 1
    ax_lat.set_xticks(range(len(labels)), labels)
    ax_lat.set(yscale="log", xlabel="percentile", ylabel="completion latency (µs)",
               title="completion latency percentiles")
    if drawn:
        ax_lat.legend(fontsize=8)
    return drawn


def imported_vs_kit(imported, measured):
    """Imported fio jobs next to kit's own results on the same machine for
    the same workload (SAME_WORKLOAD equal; the median of kit's runs): fio's
    IOPS, kit's, and kit/fio. Empty when kit measured none of them."""
    rows = []
    for r in imported:
        job = r.data.get("job") or {}
        same = [k for k in measured if all((k.data.get("job") or {}).get(f) == job.get(f) for f in SAME_WORKLOAD)]
        if not same or not r.iops:
            continue
        kit_iops = float(np.median([k.iops for k in same]))
        rows.append({"job": r.total.get("jobname") or r.data.get("label"), "engine": job.get("ioengine"),
                     "workload": f"{job.get('rw')} bs={_bs_text(job.get('bs'))} iodepth={job.get('iodepth')}"
                                 f" numjobs={job.get('numjobs')} direct={int(bool(job.get('direct')))}",
                     "fio IOPS": f"{r.iops:,.0f}", "kit IOPS": f"{kit_iops:,.0f}",
                     "kit / fio": f"{kit_iops / r.iops:.2f}", "kit runs": f"{len(same):,}",
                     "kit suites": ", ".join(sorted({(k.data.get("tags") or {}).get("suite") or "unnamed" for k in same}))})
    return pd.DataFrame(rows)


def imported_engines_note(machine, data_dir, engines):
    """On a page of kit's own results: a note naming the imported fio jobs of
    this machine that used one of the engines the page shows (a list of
    ioengine names), pointing at the Imported (fio) page; None if none."""
    results = store.load(machine, "import", data_dir)
    used = sorted({(r.data.get("job") or {}).get("ioengine") for r in results} & set(engines))
    if not used:
        return None
    text = (f"This machine also has fio results imported with kit import that used {', '.join(used)} "
            f"({len(results):,} imported job(s) in all): the Imported (fio) page shows them, beside kit's own "
            "figures where the workload is the same.")
    note(text)
    return text


# ---- network: the seed's evolution on sockets (kit net, the network suite) -------

NET_SUITE = "network"
NET_SAVED_SUITE = "net"         # kit net --save
NET_SWEEP_PREFIX = "net-sweep-"
# what makes two network runs the same point: repeats share all of these
NET_POINT = ("label", "server", "protocol", "workload", "connections", "bs", "iodepth", "rate_iops", "network")
# one colour per server engine and the features that change it (the label's
# first word), on the network pages; a combination not listed gets a spare
NET_COLORS = {
    "threads": "#8c564b", "epoll": "#ff7f0e", "epoll+edge": "#ffbb78", "io_uring": "#1f77b4",
    "io_uring+multishot": "#17becf", "io_uring+sqthread_poll": "#2ca02c", "io_uring+registerfiles": "#aec7e8",
    "asio": "#9467bd", "asio+io_uring": "#c5b0d5", "dpdk": "#d62728", "dpdk+af_packet": "#ff9896",
}


def net_color(label):
    """A network row's colour, by its server and features ('io_uring+multishot
    tcp echo' is io_uring+multishot's)."""
    engine = str(label).split(" ")[0]
    return NET_COLORS.get(engine) or color(engine)


def network_results(machine, data_dir, sweep=""):
    """(results, suite) a network page shows: the network suite's newest
    measurement (its batch), or a network sweep's latest results by name.
    A sweep that is not stored stops the page with one line naming those
    that are."""
    if not sweep:
        results = store.load(machine, NET_SUITE, data_dir)
        batches = {}
        for r in results:
            b = (r.data.get("tags") or {}).get("batch", ("single", id(r)))
            batches.setdefault(b, []).append(r)
        newest = max(batches.values(), key=lambda rs: max(x.data.get("timestamp_ms") or 0 for x in rs), default=[])
        return newest, NET_SUITE
    for suite in (f"{NET_SWEEP_PREFIX}{sweep}", f"{NET_SWEEP_PREFIX}{sweep}-quick"):
        results = store.load(machine, suite, data_dir)
        if results:
            return results, suite
    folder = store.machine_dir(data_dir, machine)
    stored = sorted(d[len(NET_SWEEP_PREFIX):] for d in (os.listdir(folder) if os.path.isdir(folder) else [])
                    if d.startswith(NET_SWEEP_PREFIX))
    raise ParameterError(f"parameter sweep: no network sweep {sweep!r} stored for {machine} "
                         f"(stored: {', '.join(stored) or 'none'})")


def _side_per_request(net, side, rate):
    fig = net.get(side) or {}
    window = (fig.get("window_ns") or 0) / 1e9
    served = rate * window
    return fig, served


def net_runs(results, explains=False):
    """One row per network run: its point (NET_POINT), requests/s, round-trip
    p50/p99 (ns), CPU per request on each side (ns), the server's switches
    per request, which side bounded the rate, lost and late requests, and
    the tags that say how it was measured (order, trend, re-run). The
    suite's extra traced runs (tagged "explains") are not measurements of
    their rows: only explains=True lists them (and only them)."""
    from .text import is_network, job_fields
    rows = []
    for i, r in enumerate(results):
        if not is_network(r.data) or bool((r.data.get("tags") or {}).get("explains")) != explains:
            continue
        job, tags = job_fields(r.data), r.data.get("tags") or {}
        entry = r.total
        net = (entry.get("kit") or {}).get("net") or {}
        pct = entry["read"]["clat_ns"].get("percentile") or {}
        per = net.get("cpu_per_request_ns") or {}
        server, served = _side_per_request(net, "server", r.iops)
        client = net.get("client") or {}
        row = {k: job.get(k) for k in NET_POINT if k != "label"}
        row.update({
            "label": r.data.get("label") or f"{job.get('server')} {job.get('protocol')} {job.get('workload')}",
            "iops": r.iops, "requests": r.ios,
            "p50_ns": pct.get("50.000000") if entry["read"]["clat_ns"].get("N") else None,
            "p99_ns": pct.get("99.000000") if entry["read"]["clat_ns"].get("N") else None,
            "server_cpu_ns": per.get("server"), "client_cpu_ns": per.get("client"),
            "server_cpus": server.get("cpus"), "client_cpus": client.get("cpus"),
            "server_sys_share": server.get("sys_ns", 0) / server["cpu_ns"] if server.get("cpu_ns") else None,
            "server_ctx_per_request": (server.get("ctx_voluntary", 0) + server.get("ctx_involuntary", 0)) / served
            if served else None,
            "bottleneck": net.get("bottleneck"), "lost": net.get("lost", 0), "late": net.get("late", 0),
            "traced": bool(r.data.get("trace")), "timestamp": r.data.get("timestamp_ms") or 0,
            "order": tags.get("order"), "trend_pct": tags.get("trend_pct") if tags.get("trend") else 0.0,
            "rerun": bool(tags.get("rerun")), "key": tags.get("key"), "note": "; ".join(r.data.get("notes") or []),
            "result": i,        # its place in results
        })
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.sort_values(["timestamp", "order"], kind="stable", na_position="first").reset_index(drop=True) \
        if not frame.empty else frame


def net_table(runs):
    """One row per point: the medians over its repeats, with an interval for
    requests/s (kit.stats.median_interval), p50 and p99 round trips, CPU per
    request on each side; how many repeats, the side that bounded most of
    them, a flag where the repeats disagree, and a note (a trend within a
    run, repeats that drift, re-runs, lost or late requests). Rows in the
    seed's order (stable by first appearance); attrs["drift"]: whether the
    whole measurement drifted (stats.suite_drift)."""
    if runs.empty:
        return runs
    keys = [k for k in NET_POINT if k in runs]
    rows = []
    for point, g in runs.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, point))
        for col in ("iops", "p50_ns", "p99_ns", "server_cpu_ns", "client_cpu_ns", "server_ctx_per_request",
                    "server_cpus", "client_cpus"):
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = median_interval(pd.to_numeric(g[col], errors="coerce"))
        row["repeats"] = len(g)
        row["newest_ms"] = int(g["timestamp"].max() or 0)
        sides = g["bottleneck"].dropna()
        row["bottleneck"] = sides.mode().iloc[0] if len(sides) else None
        row["bottleneck_runs"] = int((g["bottleneck"] == row["bottleneck"]).sum()) if row["bottleneck"] else 0
        row["unstable"] = bool(len(g) > 1 and row["iops"] and
                               (row["iops_hi"] - row["iops_lo"]) / row["iops"] > 2 * UNSTABLE_CV)
        moved = [t for t in pd.to_numeric(g["trend_pct"], errors="coerce").fillna(0) if t]
        row["trend_pct"] = max(moved, key=abs) if moved else 0.0
        row["drift_pct"] = drift(list(g["iops"])) or 0.0
        row["reruns"] = int(g["rerun"].sum())
        row["lost"], row["late"] = int(g["lost"].sum()), int(g["late"].sum())
        notes = [row_note(row).replace("IOPS", "requests/s")] if row_note(row) else []
        if row["lost"]:
            notes.append(f"{row['lost']:,} requests lost")
        if row["late"]:
            notes.append(f"{row['late']:,} requests sent late")
        row["note"] = "; ".join(notes)
        rows.append(row)
    out = _net_order(pd.DataFrame(rows))
    out.attrs["drift"] = suite_drift([(i, tuple(r[k] for k in keys), r["iops"]) for i, r in runs.iterrows()])
    return out


def _net_order(frame):
    """Rows in the seed's order of evolution (the engines' own order:
    threads, epoll, io_uring, asio, dpdk), a server's plain build before its
    features, TCP before UDP, then by connections and message size."""
    from .net.servers import engine_names
    order = list(engine_names())
    rank = frame["server"].map(lambda s: order.index(s) if s in order else len(order))
    features = frame["label"].map(lambda label: str(label).split(" ")[0].count("+"))
    return frame.assign(_rank=rank, _features=features).sort_values(
        ["_rank", "protocol", "_features", "label", "connections", "bs"], kind="stable") \
        .drop(columns=["_rank", "_features"]).reset_index(drop=True)


def _net_point_words(r, varies):
    return f"**{r['label']}**" + "".join(f", {_net_axis_words(k, r[k])}" for k in varies)


def _net_axis_words(axis, value):
    from .text import human_bytes
    if axis == "bs":
        return f"{human_bytes(value, ' ')} messages"
    if axis == "connections":
        return f"{int(value):,} connection{'' if int(value) == 1 else 's'}"
    return f"{axis} {value}"


def _net_spread(r):
    what = "95 % interval" if r["repeats"] >= 5 else "range"
    return (f"{r['iops']:,.0f} requests/s (median of {r['repeats']:.0f}, {what} {r['iops_lo']:,.0f} to "
            f"{r['iops_hi']:,.0f})" if r["repeats"] > 1 else f"{r['iops']:,.0f} requests/s (one run)")


def net_text(table):
    """What the network measurements show, in sentences computed from the
    table: per workload (connection count, message size), a fastest row only
    where its interval lies above the runner-up's (with one run each, only
    beyond CLEAR_DIFFERENCE_PCT), the cheapest server per request, and where
    the client rather than the server bounded the rate. No ranking where
    the whole measurement drifted or a leading row changed while it ran."""
    if table.empty:
        return []
    drifted = table.attrs.get("drift")
    if drifted and drifted.get("drift"):
        how = "faster" if drifted["change_pct"] > 0 else "slower"
        return [f"Ranking withheld: the machine changed during the measurement. Runs measured in its last third "
                f"were {abs(drifted['change_pct']):.0f} % {how} against their own medians than runs in its first "
                f"third ({drifted['runs']} runs, a rank test beyond noise), so an order of the rows would reflect "
                "when they ran. Measure again on a quiet machine."]
    parts = []
    workload = [k for k in ("protocol", "connections", "bs", "iodepth", "rate_iops") if table[k].nunique() > 1] \
        if len(table) > 1 else []
    groups = table.groupby([k for k in ("connections", "bs", "iodepth", "rate_iops") if k in workload], sort=True) \
        if [k for k in ("connections", "bs", "iodepth", "rate_iops") if k in workload] else [((), table)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        at = ", ".join(_net_axis_words(k, v) for k, v in zip([k for k in ("connections", "bs", "iodepth", "rate_iops")
                                                               if k in workload], key))
        at = f"At {at}" if at else "Here"
        ranked = g.sort_values("iops", ascending=False)
        best = ranked.iloc[0]
        moved = [r for r in ranked.head(2).to_dict("records") if r.get("trend_pct") or r.get("drift_pct")]
        if len(ranked) == 1:
            parts.append(f"{at}, **{best['label']}** serves {_net_spread(best)}.")
            continue
        second = ranked.iloc[1]
        if moved:
            said = row_note(moved[0]).replace("IOPS", "requests/s")
            parts.append(("Ranking withheld" if at == "Here" else f"{at}: ranking withheld")
                         + f": {moved[0]['label']} changed while it was measured ({said}).")
            continue
        if best["repeats"] > 1 and second["repeats"] > 1:
            apart = best["iops_lo"] > second["iops_hi"]
        else:
            apart = best["iops"] > second["iops"] * (1 + CLEAR_DIFFERENCE_PCT / 100)
        if apart:
            parts.append(f"{at}, **{best['label']}** serves the most: {_net_spread(best)}, ahead of "
                         f"{second['label']} ({second['iops']:,.0f}).")
        else:
            parts.append(f"{at}, no server is clearly fastest: **{best['label']}** ({_net_spread(best)}) and "
                         f"**{second['label']}** ({_net_spread(second)}) overlap.")
        cpu = g[g["server_cpu_ns"].notna() & (g["server_cpu_ns"] > 0)]
        if len(cpu) > 1:
            cheap, dear = cpu.loc[cpu["server_cpu_ns"].idxmin()], cpu.loc[cpu["server_cpu_ns"].idxmax()]
            parts.append(f"The server's CPU per request ranges from {cheap['server_cpu_ns'] / 1000:,.1f} µs "
                         f"({cheap['label']}) to {dear['server_cpu_ns'] / 1000:,.1f} µs ({dear['label']}).")
    client = table[table["bottleneck"] == "client"]
    if not client.empty:
        parts.append(f"In {len(client)} row(s) the load generator's busiest thread was on a CPU nearly all the "
                     f"time ({', '.join(sorted(set(client['label'])))}): those rows measure the client's limit, "
                     "not the server's.")
    machine = table[table["bottleneck"] == "machine"]
    if not machine.empty:
        parts.append(f"In {len(machine)} row(s) server and client together kept every CPU busy: on this machine "
                     "they competed for the CPUs, so those rates are the machine's, shared between both sides.")
    return parts


def net_explain(table):
    """Why the rows differ, from what each side's threads did (kit's /proc
    figures, always there): the server's context switches and system-CPU
    share per request, and threads that poll instead of sleeping."""
    if table.empty:
        return []
    parts = []
    top = table[table["connections"] == table["connections"].max()]
    t = top[top["server_ctx_per_request"].notna()]
    if len(t) > 1:
        most, least = t.loc[t["server_ctx_per_request"].idxmax()], t.loc[t["server_ctx_per_request"].idxmin()]
        parts.append(f"At {_net_axis_words('connections', most['connections'])}, the server of {most['label']} "
                     f"switched {per_io_format(most['server_ctx_per_request'])} times per request, that of "
                     f"{least['label']} {per_io_format(least['server_ctx_per_request'])}: a thread that blocks in "
                     "recv, or sleeps until the next "
                     "readiness event or completion, leaves the CPU and is woken again for each request; one that "
                     "finds work waiting, or polls, does not.")
    busy = top[top["server_cpus"].notna()]
    polling = busy[busy["label"].str.contains("sqthread_poll|dpdk", regex=True)]
    for _i, r in polling.drop_duplicates("label").iterrows():
        poller = "iou-sqp, the SQPOLL thread" if "sqthread_poll" in r["label"] else "DPDK's lcore"
        parts.append(f"The server of {r['label']} kept {r['server_cpus']:.2f} of a CPU busy at "
                     f"{_net_axis_words('connections', r['connections'])}: its poller ({poller}) spins instead of "
                     "sleeping, which buys latency with a CPU of its own.")
    return parts


def net_median_runs(runs, connections=None):
    """[(point, place in results)] per point (at these connections, or
    all): the run whose requests/s are the median of its repeats (the lower
    middle of an even number), so each row's plots come from one real run."""
    if runs.empty:
        return []
    keys = [k for k in NET_POINT if k in runs]
    chosen = runs if connections is None else runs[runs["connections"] == connections]
    out = []
    for point, g in chosen.groupby(keys, sort=False, dropna=False):
        ordered = g.sort_values("iops", kind="stable")
        out.append({**dict(zip(keys, point)), "result": int(ordered.iloc[(len(ordered) - 1) // 2]["result"])})
    if not out:
        return []
    return [({k: r[k] for k in keys}, r["result"]) for r in _net_order(pd.DataFrame(out)).to_dict("records")]


def net_trace_text(result):
    """The tracers' own summary of a traced network run (kit net --trace),
    or None for an untraced one."""
    trace = result.data.get("trace")
    if not trace:
        return None
    from .tracers import format_summary
    return format_summary(trace)


def net_explained_runs(results, runs):
    """[(point, place in results)] of the traced runs that explain the
    page's rows: the network suite's one traced run per row (tagged
    "explains": tracing slows a run, so it is not one of the row's
    repeats), else the row's median run where that one was traced (a
    sweep traced throughout), in the rows' order."""
    extra = net_runs(results, explains=True)
    chosen = {tuple(point.items()): i for point, i in net_median_runs(runs) if results[i].data.get("trace")}
    chosen.update({tuple(point.items()): i for point, i in net_median_runs(extra)
                   if results[i].data.get("trace")})
    if not chosen:
        return []
    order = pd.DataFrame([{**dict(point), "result": i} for point, i in chosen.items()])
    keys = [k for k in NET_POINT if k in order]
    return [({k: r[k] for k in keys}, int(r["result"])) for r in _net_order(order).to_dict("records")]


# the server's threads that poll, by their sched role (kit/net/run.py names them)
NET_POLLERS = {"server/iou-sqp": "io_uring's SQPOLL thread (iou-sqp)", "server/lcore": "DPDK's lcore"}
# a share of NET_RX or of the window worth a sentence
NET_WORTH_SAYING = 0.05


def net_trace_explain(result):
    """Sentences that explain one traced network run from its tracers'
    summaries (kit/tracers/net.py, sched.py): how much of a CPU the
    kernel's receive softirq took and in whose threads it ran, whether the
    server's pollers ever slept and how busy they were, whether the
    server's packets went through its kernel stack or past it through XDP.
    Each claim only where its figures are there and whole: [] for a run
    not traced; a caveat first when the tracer lost events or missed
    softirq runs /proc/softirqs counted."""
    trace = result.data.get("trace") or {}
    net, sched = trace.get("net") or {}, trace.get("sched") or {}
    if not net and not sched:
        return []
    out = []
    lost = (trace.get("lost") or {}).get("total")
    if lost:
        out.append(f"The tracers lost {lost:,} events on this run: the counts below are low.")
    rx = (net.get("softirq") or {}).get("NET_RX") or {}
    if rx.get("ns") and rx.get("cpu_share") is not None:
        seen, counted = rx.get("runs", 0), rx.get("runs_kernel")
        if counted and seen < 0.95 * counted:
            out.append(f"The net tracer saw {seen:,} of the {counted:,} NET_RX runs /proc/softirqs counted: "
                       "its softirq time is low.")
        where = {k: v.get("share", 0) for k, v in (net.get("net_rx_contexts") or {}).items()}
        named = {"server": "in the server's threads", "client": "in the client's", "idle":
                 "on the way out of interrupts (the idle task)", "ksoftirqd": "in ksoftirqd",
                 "other": "in other threads (the tracer counts the whole machine: others' traffic too)"}
        said = [f"{100 * where[k]:.0f} % {words}" for k, words in named.items() if where.get(k, 0) >= NET_WORTH_SAYING]
        if said:
            said[0] = said[0].replace(" % ", " % of it ", 1)
        out.append(f"NET_RX, the kernel's receive softirq, took {rx['cpu_share']:.2f} of a CPU"
                   + (f": {_and(said)}" if said else "") + "."
                   + (" On a veth pair a sender's own thread runs its peer's receive, so the kernel's work "
                      "lands in whichever side sent." if where.get("server", 0) >= NET_WORTH_SAYING
                      and where.get("client", 0) >= NET_WORTH_SAYING else ""))
    tx = (net.get("softirq") or {}).get("NET_TX") or {}
    if tx.get("cpu_share") and tx["cpu_share"] >= 0.01:
        out.append(f"NET_TX, the transmit softirq, took {tx['cpu_share']:.2f} of a CPU.")
    duration = trace.get("duration_ns") or sched.get("duration_ns")
    for role, words in NET_POLLERS.items():
        v = (sched.get("roles") or {}).get(role) or {}
        if not duration or not v.get("threads"):
            continue
        busy = f"on a CPU {100 * v.get('oncpu_ns', 0) / duration / v['threads']:.0f} % of the traced time"
        if v.get("voluntary") == 0:
            out.append(f"{words} never slept: it was {busy}, and its {v.get('switches', 0):,} switches were all "
                       "involuntary (preempted while polling, never waiting for work).")
        else:
            out.append(f"{words} was {busy} and slept {v['voluntary']:,} times (voluntary switches: it waited "
                       "for work).")
    for n in net.get("namespaces") or []:
        if n.get("label") != "server":
            continue
        if n.get("shares_with") or "machine" in str(n.get("scope")):
            break           # loopback: the namespace's counts are everyone's
        stack, xdp = n.get("rx_packets", 0), n.get("xdp_redirect", 0)
        wire = (n.get("interfaces") or {}).get("rx_packets")
        if xdp and stack < 0.01 * xdp:
            out.append(f"The server's kernel stack saw {stack:,} packets: {xdp:,} frames went past it through XDP "
                       "(an XDP program redirected them to the server's AF_XDP socket)"
                       + (f", of the {wire:,} its interface received." if wire else "."))
        elif wire and stack and abs(stack - wire) <= 0.01 * wire:
            out.append(f"Every frame the server's interface received ({wire:,}) went up its kernel stack.")
    return out


def net_trace_section(results, explained):
    """(sentences, roles frame) for the traced runs that explain a page's
    rows: per row, its label and connections then net_trace_explain's
    sentences; the roles of all of them in one frame (net_trace_roles)."""
    said, roles = [], []
    for point, i in explained:
        explain = net_trace_explain(results[i])
        if explain:
            said.append(f"**{point['label']}**, {_net_axis_words('connections', point['connections'])}: "
                        + " ".join(explain))
        roles += net_trace_roles(results[i], point)
    return said, pd.DataFrame(roles)


def net_trace_roles_view(frame):
    """net_trace_roles' rows for people."""
    out = frame.assign(voluntary=[f"{100 * v:.0f} %" if v is not None and v == v else "-"
                                  for v in frame["voluntary"]])
    return out.style.format({"CPUs busy": "{:,.2f}", "switches per request": per_io_format, "threads": "{:,.0f}",
                             "connections": "{:,}"}, na_rep="-").hide(axis="index")


def net_unexplained(table, results, explained):
    """One line naming the page's rows that no traced run explains, and why
    (the tracers could not run here, or no traced run was made), or None."""
    if table.empty:
        return None
    have = {(p["label"], p["connections"]) for p, _i in explained}
    rows = [r for r in table.to_dict("records") if (r["label"], r["connections"]) not in have]
    if not rows:
        return None
    why = sorted({t.get("untraced") for t in ((r.data.get("tags") or {}) for r in results) if t.get("untraced")}
                 | {n[len("untraced: "):] for r in results for n in r.data.get("notes") or []
                    if n.startswith("untraced: ")})
    named = ", ".join(f"{r['label']} at {_net_axis_words('connections', r['connections'])}" for r in rows)
    if len(rows) == len(table):
        named = "these rows"
    return (f"No traced run explains {named}, so the kernel's side (softirq time, packets through each side's stack, "
            "every thread's switches by role) is not shown for them"
            + (f": {'; '.join(why)}." if why else ": kit net --trace traces a run, and kit report's network "
               "suite one run per row where tracing works."))


def net_saved_results(machine, data_dir):
    """The runs `kit net --save` stored for a machine (suite net), oldest first."""
    return sorted(store.load(machine, NET_SAVED_SUITE, data_dir), key=lambda r: r.data.get("timestamp_ms") or 0)


def net_saved_text(saved, runs):
    """What the saved runs are: how many, over which span of time, with
    which kit versions; runs of one point are its repeats."""
    from .text import utc_span
    stamps = [r.data.get("timestamp_ms") or 0 for r in saved]
    versions = sorted({str(r.data.get("kit version")) for r in saved if r.data.get("kit version")})
    points = runs.groupby([k for k in NET_POINT if k in runs], sort=False, dropna=False).ngroups
    return (f"{len(runs):,} run{'s' * (len(runs) != 1)} of {points:,} job{'s' * (points != 1)}, saved "
            f"{utc_span(min(stamps), max(stamps))}" + (f" by kit {', '.join(versions)}" if versions else "")
            + ". Runs of the same job are one row (its median and range); saved at different times on a machine "
            "doing other things, they are a log of what was measured, not a controlled comparison: the "
            "network suite above is that.")


def _and(parts):
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def net_trace_roles(result, point):
    """Rows for a table of one traced run's threads by role on each side
    (the sched tracer's): threads, how much of a CPU they were on,
    switches per request (switches per second over requests per second),
    and the share of them that were voluntary (the thread waited); roles
    that were on a CPU under 1 % of the traced time and switched under
    0.01 times per request are left out."""
    sched = (result.data.get("trace") or {}).get("sched") or {}
    duration = (result.data.get("trace") or {}).get("duration_ns") or sched.get("duration_ns")
    if not duration or not result.iops:
        return []
    rows = []
    for role, v in (sched.get("roles") or {}).items():
        side, _, kind = role.partition("/")
        if side not in ("server", "client") or not kind:
            continue
        per_request = v.get("switches", 0) / (duration / 1e9) / result.iops
        cpus = v.get("oncpu_ns", 0) / duration
        if cpus < 0.01 and per_request < 0.01:
            continue
        rows.append({"server": point["label"], "connections": point["connections"], "side": side, "role": kind,
                     "threads": v.get("threads", 0), "CPUs busy": cpus, "switches per request": per_request,
                     "voluntary": v.get("voluntary", 0) / v["switches"] if v.get("switches") else None})
    return sorted(rows, key=lambda r: (r["side"] != "server", -r["CPUs busy"]))


NET_COLUMNS = {"label": "server", "connections": "connections", "bs": "message", "iodepth": "in flight",
               "rate_iops": "rate asked (requests/s)", "network": "network", "iops": "requests/s",
               "interval": "requests/s interval", "repeats": "repeats", "p50_us": "round trip p50 (µs)",
               "p99_us": "round trip p99 (µs)", "server_cpu_us": "server CPU per request (µs)",
               "client_cpu_us": "client CPU per request (µs)", "server_ctx_per_request": "server switches per request",
               "bottleneck": "bottleneck", "measured": "last measured", "note": "note"}


def net_view(table, measured=False):
    """net_table for people: readable names, units, separators; the columns
    that do not vary across a page's rows (in flight, the rate, the network)
    are left out unless they do; measured=True adds when each row was last
    measured (saved runs)."""
    from .text import human_bytes, utc
    if table.empty:
        return table
    if measured:
        table = table.assign(measured=[utc(ms, seconds=False) for ms in table["newest_ms"]])
    out = table.assign(
        interval=[f"{lo:,.0f} – {hi:,.0f}" if n > 1 else "-" for lo, hi, n in
                  zip(table["iops_lo"], table["iops_hi"], table["repeats"])],
        p50_us=table["p50_ns"] / 1000, p99_us=table["p99_ns"] / 1000,
        server_cpu_us=table["server_cpu_ns"] / 1000, client_cpu_us=table["client_cpu_ns"] / 1000,
        bs=[human_bytes(b, " ") if isinstance(b, (int, np.integer)) else str(b) for b in table["bs"]],
        bottleneck=table["bottleneck"].fillna("-"))
    cols = [c for c in NET_COLUMNS if c in out and (c not in ("iodepth", "rate_iops", "network")
                                                    or out[c].nunique() > 1)]
    shown = out[cols].rename(columns=NET_COLUMNS)
    formats = {"requests/s": "{:,.0f}", "repeats": "{:,.0f}", "connections": "{:,}",
               **{NET_COLUMNS[c]: "{:,.1f}" for c in ("p50_us", "p99_us", "server_cpu_us", "client_cpu_us")},
               "server switches per request": per_io_format}
    return shown.style.format({k: v for k, v in formats.items() if k in shown.columns}, na_rep="-") \
        .hide(axis="index")


def plot_network(ax_rate, ax_lat, table):
    """Requests/s against connections (medians, interval bars) and round-trip
    p50 (circles) and p99 (squares, dotted) against connections, one colour
    per server engine, UDP rows dashed; one legend, beside the latency."""
    from matplotlib.ticker import FuncFormatter
    rows = table.sort_values("connections", kind="stable")
    for label, g in rows.groupby("label", sort=False):
        style = "--" if " udp " in f" {label} " else "-"
        c = net_color(label)
        ax_rate.errorbar(g["connections"], g["iops"], yerr=[g["iops"] - g["iops_lo"], g["iops_hi"] - g["iops"]],
                         marker="o", capsize=3, linestyle=style, color=c, label=label)
        if g["p50_ns"].notna().any():
            ax_lat.plot(g["connections"], g["p50_ns"] / 1000, marker="o", linestyle=style, color=c, label=f"{label} p50")
            ax_lat.plot(g["connections"], g["p99_ns"] / 1000, marker="s", linestyle=":", color=c, label=f"{label} p99")
    conns = sorted(rows["connections"].unique())
    for ax in (ax_rate, ax_lat):
        if len(conns) > 1:
            ax.set_xscale("log", base=2)
        ax.set_xticks(conns, [f"{c:,}" for c in conns])
        ax.minorticks_off()
    ax_rate.set(title="requests/s (median, interval of the repeats)", xlabel="connections", ylabel="requests/s",
                yscale=scale_for(rows["iops"]))
    ax_rate.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: human_count_axis(v)))
    ax_lat.set(title="round trip p50 (circles, solid) and p99 (squares, dotted)", xlabel="connections",
               ylabel="round trip (µs)", yscale="log")
    handles, labels = ax_rate.get_legend_handles_labels()
    ax_lat.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), title="server",
                  title_fontsize=8)


def plot_net_cpu(ax_cpu, table):
    """CPU per request at the most connections measured, on the server (bars)
    and the client (hatched), one colour per server engine."""
    conns = sorted(table["connections"].unique())
    top = table[table["connections"] == conns[-1]]
    names = list(top["label"])
    x = np.arange(len(names))
    ax_cpu.bar(x - 0.2, top["server_cpu_ns"].fillna(0) / 1000, width=0.4, color=[net_color(n) for n in names],
               label="server")
    ax_cpu.bar(x + 0.2, top["client_cpu_ns"].fillna(0) / 1000, width=0.4, color=[net_color(n) for n in names],
               hatch="//", edgecolor="black", linewidth=0.4, label="client (kit's load generator)")
    ax_cpu.set_xticks(x, names, rotation=30, ha="right")
    ax_cpu.set(title=f"CPU per request at {conns[-1]:,} connections", ylabel="CPU per request (µs)")
    from matplotlib.patches import Patch
    ax_cpu.legend(handles=[Patch(facecolor="white", edgecolor="black", label="server"),
                           Patch(facecolor="white", edgecolor="black", hatch="//",
                                 label="client (kit's load generator)")], fontsize=7)
