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
from .stats import UNSTABLE_CV, drift, median_interval, suite_drift
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


def setup(namespace, title, suites=(), shown=(), **own):
    """What every report notebook does first, in its second cell:

        import kit.notebook as kn
        machine = kn.setup(globals(), "Engines", suites=("machine", "engines"))

    checks its parameters (machine, data_dir, measure, quick, and the
    notebook's own: name=type), names the machine (this one by default),
    measures the suites it shows first when measure=True, and shows the
    report's header (with the parameters named in shown). Returns the
    machine's name."""
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
        if not store.load(machine, stored, data_dir) and not store.load(machine, stored + "-quick", data_dir):
            folder = store.machine_dir(data_dir, machine)
            sweeps = sorted(d[len("sweep-"):] for d in (os.listdir(folder) if os.path.isdir(folder) else [])
                            if d.startswith("sweep-"))
            raise ParameterError(f"parameter sweep: no sweep {namespace['sweep']!r} stored for {machine} "
                                 f"(stored: {', '.join(sweeps) or 'none'})")
    header(title, machine, namespace["data_dir"], {k: namespace[k] for k in shown})
    return machine


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
    display(HTML(f'<p class="kit-download"><a download="{html.escape(filename)}" '
                 f'href="data:text/csv;base64,{data}">Download {html.escape(what)} (CSV, {len(frame):,} rows)</a></p>'))


def header(title, machine, data_dir, params=None):
    """The report's first lines: machine, date, kit version, parameters."""
    from IPython.display import HTML, display
    info = store.load_machine(machine, data_dir).get("fingerprint") or {}
    kernel = (info.get("kernel") or {}).get("release", "?")
    cpu = (info.get("cpu") or {}).get("model", "?")
    target = ((info.get("target") or {}).get("device") or {})
    fs = ((info.get("target") or {}).get("filesystem") or {})
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = [("machine", machine), ("kernel", kernel), ("cpu", f"{cpu} x{(info.get('cpu') or {}).get('count', '?')}"),
            ("device", f"/dev/{target.get('name', '?')} ({target.get('kind', '?')}, {target.get('scheduler', '?')}) "
                       f"with {fs.get('type', '?')}" if target else fs.get("type", "?")),
            ("published", now), ("kit", __version__)]
    rows += [(f"parameter {k}", repr(v)) for k, v in (params or {}).items()]
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                   f"{html.escape(str(v))}</td></tr>" for k, v in rows)
    display(HTML(f"<table class='kit-header' title='{html.escape(title)}'>{body}</table>"))


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


CLEAR_DIFFERENCE_PCT = 5.0     # one sample each: what run-to-run noise reaches on a quiet VM


def engines_text(table, scenario):
    """What this machine shows, in a few sentences computed from the table:
    with repeats (engines_intervals), differences only where intervals
    separate, and no ranking where the device changed meanwhile; with one
    sample each, differences beyond CLEAR_DIFFERENCE_PCT."""
    if table.empty:
        return f"No {scenario} results."
    if "iops_lo" in table and table["repeats"].max() > 1:
        return " ".join(_interval_claims(table, scenario) + _ctx_claims(table))
    best = table.loc[table["iops"].idxmax()]
    worst = table.loc[table["iops"].idxmin()]
    ref_col = next((c for c in table.columns if c.startswith("iops_vs_")), None)
    parts = [f"With {scenario} I/O, **{best['job']}** ({best['label']}) is fastest at "
             f"{best['iops']:,.0f} IOPS; **{worst['job']}** is slowest at {worst['iops']:,.0f} "
             f"({100 * worst['iops'] / best['iops']:.0f} % of the fastest)."]
    if ref_col:
        ref = table[table["label"] == "io_uring"]
        others = table[table["label"] != "io_uring"]
        if not ref.empty and not others.empty:
            # one sample per engine: a few percent is within run-to-run noise here
            ahead = others[others[ref_col] > CLEAR_DIFFERENCE_PCT]
            close = others[others[ref_col].abs() <= CLEAR_DIFFERENCE_PCT]
            if ahead.empty:
                parts.append("No engine is clearly ahead of basic io_uring.")
            else:
                parts.append("Ahead of basic io_uring by more than the noise: " + ", ".join(
                    f"{r['job']} ({r[ref_col]:+.1f} %)" for _, r in ahead.iterrows()) + ".")
            if not close.empty:
                parts.append("No clear difference from basic io_uring (within "
                             f"{CLEAR_DIFFERENCE_PCT:.0f} %, one sample each): "
                             + ", ".join(f"{r['job']} ({r[ref_col]:+.1f} %)" for _, r in close.iterrows()) + ".")
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


def sweep_stats(frame, axes=("ioengine", "iodepth", "bs", "numjobs", "label")):
    """Per point: the median of IOPS and of the clat percentiles over the
    repeats with its interval (lo, hi: median_interval), the coefficient of
    variation, and a flag where the repeats disagree: the interval wider than
    20 % of the median (pyperf's 10 % either way), the same interval the
    plots draw."""
    if frame.empty:
        return frame
    keys = [a for a in axes if a in frame.columns]
    rows = []
    for point, g in frame.groupby(keys, sort=True):
        row = dict(zip(keys, point if isinstance(point, tuple) else (point,)))
        n = len(g)
        for col in ("iops", "clat_p50_ns", "clat_p99_ns", "bw_bytes"):
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = median_interval(g[col])
            if col == "iops":
                sd = g[col].std(ddof=1) if n > 1 else float("nan")
                row["iops_cv"] = sd / g[col].mean() if g[col].mean() and n > 1 else float("nan")
        row["repeats"] = n
        row["unstable"] = bool(n > 1 and row["iops"] and
                               (row["iops_hi"] - row["iops_lo"]) / row["iops"] > 2 * UNSTABLE_CV)
        row.update(_point_flags(g))
        row["note"] = row_note(row)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["drift"] = suite_drift(_runs_in_time_order(frame, keys))
    return out


def sweep_best_text(stats):
    """The sweep's headline, claimed only when the measurements support it:
    the best point's interval must lie above the runner-up's, and neither
    the device nor the top points changed while they were measured."""
    ranked = stats.sort_values("iops", ascending=False)
    best = ranked.iloc[0]
    withheld = ranking_withheld(stats.attrs.get("drift"), ranked.head(2))
    if withheld:
        return withheld

    def point(r):
        return f"**{r['label']}** at iodepth {r['iodepth']}, bs {r['bs']:,} bytes"

    def figure(r):
        return (f"{r['iops']:,.0f} IOPS (median of {r['repeats']}, 95 % interval {r['iops_lo']:,.0f} to "
                f"{r['iops_hi']:,.0f})")
    if len(ranked) > 1:
        second = ranked.iloc[1]
        if best["iops_lo"] <= second["iops_hi"]:
            return (f"No clear winner: {point(best)} reaches {figure(best)} and {point(second)} {figure(second)}; "
                    "their intervals overlap, so these repeats do not tell them apart.")
    return f"The highest throughput is {point(best)}: {figure(best)}, p99 latency {best['clat_p99_ns'] / 1000:,.0f} µs."


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
            f"median (worst: {worst.get('label', worst.get('ioengine'))} iodepth={worst.get('iodepth')} "
            f"bs={worst.get('bs')}, {worst['iops_lo']:,.0f} to {worst['iops_hi']:,.0f}): use more repeats or "
            "longer runtimes, and keep the machine otherwise idle.")


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
        for role, entry in (sched.get("roles") or {}).items():
            row[f"switches_{role}"] = entry.get("switches", 0)
        for event in ("submit", "complete", "queue_async_work", "task_work_run", "local_work_run", "cqring_wait"):
            if event in uring:
                row[f"uring_{event}"] = uring[event]
        row["lost_events"] = (trace.get("lost") or {}).get("total")
        rows.append(row)
    return pd.DataFrame(rows)


def anatomy_text(table):
    if table.empty or not table["traced"].any():
        return None
    parts = []
    t = table[table["device_share"].notna()]
    if not t.empty:
        low, high = t.loc[t["device_share"].idxmin()], t.loc[t["device_share"].idxmax()]
        parts.append(f"The device accounts for {high['device_share']:.0%} of {high['workload']}'s completion "
                     f"latency but only {low['device_share']:.0%} of {low['workload']}'s: the rest is spent "
                     "above the block layer (queues, hand-offs, wake-ups).")
    if "switches_helper" in table:
        h = table.loc[table["switches_helper"].idxmax()]
        if h["switches_helper"] > 0:
            parts.append(f"{h['workload']}'s helper threads switched {h['switches_helper']:,.0f} times against "
                         f"{h.get('switches_job', 0):,.0f} for its job thread.")
    if "uring_queue_async_work" in table and table["uring_queue_async_work"].fillna(0).max() > 0:
        p = table.loc[table["uring_queue_async_work"].fillna(0).idxmax()]
        parts.append(f"{p['workload']} punted {p['uring_queue_async_work']:,.0f} of {p.get('uring_submit', 0):,.0f} "
                     "requests to io-wq worker threads (iou-wrk).")
    if "switches_io_uring_sqpoll" in table and table["switches_io_uring_sqpoll"].fillna(0).max() > 0:
        s = table.loc[table["switches_io_uring_sqpoll"].fillna(0).idxmax()]
        parts.append(f"In {s['workload']} a kernel thread (iou-sqp) polls the submission queue: it switched "
                     f"only {s['switches_io_uring_sqpoll']:,.0f} times during the run.")
    unreliable = table["device_depth_mean"].isna() & table["traced"]
    if unreliable.any():
        parts.append(f"The device depth of {', '.join(table.loc[unreliable, 'workload'])} is not shown: "
                     "completions were missed while another BPF program ran on the same CPU, which makes "
                     "the in-flight count drift.")
    return " ".join(parts) or None
