"""Two sets of results side by side, and whether they differ: the one owner
of "is this a regression?" for `kit compare`, the history page and the
machines page.

What is compared with what. Results are paired by what they measured: a
stored result by its suite and key (the engines table's "direct-sync"); a
sweep's repeats by their suite and point, so the repeats of a point are one
measurement's samples; anything else (a file from `kit run --output`, an
import) by its job. A pair whose jobs differ (other than where their files
were) is not compared: a changed job is not a faster machine. Two files of
one result each, named by the user, are each other's pair whatever they ran
(and the line says how their jobs differ).

When a difference is claimed (B against A, A the baseline): only where a
rank test (stats.apart: Mann-Whitney, two-sided 5 %) puts the two sides'
repeats apart AND their medians differ by more than CLEAR_DIFFERENCE_PCT.
Each side is shown as its median with its interval (stats.median_interval:
a 95 % bootstrap interval from 5 repeats, the min-max range below that).
The rank test needs 4 repeats a side at least: with 2 and 2 the ranges fail
to overlap 1 time in 3 by chance, with 3 and 3 1 time in 10; one sample a
side says nothing of the noise (runs of this VM move by 20 %), so it is
never called a difference, and the line says how many repeats would be
needed. A change that rounds to 0.0 % is no difference either. asv's
compare flags a change beyond a factor of 1.1; kit takes 1.05: the rank
test is the evidence against noise, the threshold only keeps trivial
changes quiet.

A machine's history is every stored run (store.load(history=True)). A "run"
is a stretch of results in time order in which no key repeats: `kit report`
measures each key once, so the next report starts the next run. A side can
be a machine as of a run or a time: for each key, the newest result measured
by then.
"""
import datetime
import hashlib
import json
import math
import os
import re

from . import store
from .errors import OptionError
from .stats import SIGNIFICANCE, apart, median_interval
from .results import from_fio_json
from .text import human_bytes, is_network, job_fields, main_ddir, net_words, utc, utc_span

CLEAR_DIFFERENCE_PCT = 5.0     # a change smaller than this is not reported, however certain
# where a job's files were is not what it measured
PLACE = ("directory", "filename", "filename_format", "allow_destructive")
SUITE_ORDER = ("engines", "anatomy")


# ---- what a result measured -------------------------------------------------

def job_of(result):
    """The job's options without where its files were."""
    job = result.data.get("job") or job_fields(result.data)
    return {k: v for k, v in job.items() if k not in PLACE}


def _digest(job):
    return hashlib.sha256(json.dumps(job, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _job_words(result):
    if is_network(result.data):
        return net_words(result.data)
    job = job_of(result)
    bs = human_bytes(job["bs"]) if isinstance(job.get("bs"), int) else job.get("bs")
    section = job.get("name")
    return ((f"[{section}] " if section and section != "kit" else "")     # a job file's section
            + f"{result.data.get('label') or job.get('ioengine')} rw={job.get('rw')} bs={bs} "
            f"iodepth={job.get('iodepth')} numjobs={job.get('numjobs')}" + (" direct" if job.get("direct") else ""))


def identity(result):
    """(suite, what, job digest or ""): results with equal identities are
    samples of one measurement (a key's repeats, "direct-sync-r2", are
    samples of "direct-sync")."""
    tags = result.data.get("tags") or {}
    suite = str(tags.get("suite") or "")
    if isinstance(tags.get("point"), dict):
        what = ", ".join(f"{k}={v}" for k, v in tags["point"].items())
        return suite, what, _digest(job_of(result))
    if suite and suite != "import" and tags.get("key"):
        key, repeat = str(tags["key"]), tags.get("repeat")
        if isinstance(repeat, int) and not isinstance(repeat, bool):
            key = key.removesuffix(f"-r{repeat}")
        return suite, key, ""
    return suite, _job_words(result), _digest(job_of(result))


def name(ident):
    suite, what = ident[:2]
    return f"{suite}: {what}" if suite else what


def stored_key(result):
    """A result's place in the store (suite, key), else what it measured."""
    tags = result.data.get("tags") or {}
    if tags.get("suite") and tags.get("key"):
        return str(tags["suite"]), str(tags["key"])
    return identity(result)[:2]


def iops(result):
    value = result.iops
    return float(value) if isinstance(value, (int, float)) else math.nan


def p99_ns(result):
    entry = result.total
    value = (entry[main_ddir(entry)]["clat_ns"].get("percentile") or {}).get("99.000000")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def measured(result):
    """When it was measured, as a UTC datetime (None: it does not say)."""
    ms = store.measured_ms(result)
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc) if ms else None


def kernel(result):
    return str(((result.data.get("machine") or {}).get("kernel") or {}).get("release") or "unknown")


def source(result):
    return str(result.data.get("source_hash") or "unknown")[:12]


def kit_version(result):
    return str(result.data.get("kit version") or "unknown")


# ---- the verdict on one pair ----------------------------------------------------

def difference(a, b, higher_is_better=True, words=("slower", "faster")):
    """B's samples against A's: the medians, their intervals, B/A, and a
    verdict ("slower", "faster" -- or words -- or "no clear difference")
    with why, by the rules in this module's docstring."""
    a = [float(x) for x in a if x is not None and math.isfinite(float(x))]
    b = [float(x) for x in b if x is not None and math.isfinite(float(x))]
    out = {"a": math.nan, "a_lo": math.nan, "a_hi": math.nan, "b": math.nan, "b_lo": math.nan,
           "b_hi": math.nan, "a_n": len(a), "b_n": len(b), "ratio": math.nan, "change_pct": math.nan,
           "p": math.nan, "verdict": "not compared", "why": ""}
    if a:
        out["a"], out["a_lo"], out["a_hi"] = median_interval(a)
    if b:
        out["b"], out["b_lo"], out["b_hi"] = median_interval(b)
    if not a or not b:
        out["why"] = f"no figure in {'A' if not a else 'B'}"
        return out
    if out["a"] <= 0:
        out["why"] = "A measured 0"
        return out
    out["ratio"] = out["b"] / out["a"]
    change = out["change_pct"] = 100.0 * (out["ratio"] - 1.0)
    worse = (change < 0) == higher_is_better
    claim = words[0] if worse else words[1]
    test = apart(a, b)
    out["p"] = test["p"]
    out["verdict"] = "no clear difference"
    if f"{abs(change):.1f}" == "0.0":
        # a change below the precision it is shown with is none (and no interval text to contradict it)
        out["why"] = f"{change:+.1f} %: no difference at the precision shown ({_figure(out['a'])} against " \
                     f"{_figure(out['b'])})"
        return out
    if len(a) == len(b) == 1:
        out["why"] = (f"one sample each: a difference of {change:+.1f} % cannot be told from run-to-run noise; "
                      f"measure repeats ({test['needed']} or more on each side)")
        return out
    spans = f"{_span(out, 'a', len(a))} against {_span(out, 'b', len(b))}"
    if not test["enough"]:
        out["why"] = (f"{change:+.1f} %, but {_repeats(len(a))} against {_repeats(len(b))} cannot tell a difference "
                      f"from run-to-run noise ({spans}): even with every repeat of one side above every repeat of "
                      f"the other a rank test would not reach {100 * SIGNIFICANCE:.0f} %; measure "
                      f"{test['needed']} or more repeats on each side")
    elif not test["apart"]:
        out["why"] = (f"{change:+.1f} %: a rank test cannot tell the repeats apart ({_p(test['p'])}; {spans})")
    elif abs(change) <= CLEAR_DIFFERENCE_PCT:
        out["why"] = (f"{change:+.1f} %: the repeats differ (rank test {_p(test['p'])}; {spans}), but by no "
                      f"more than {CLEAR_DIFFERENCE_PCT:.0f} %")
    else:
        out["verdict"] = claim
        out["why"] = f"{change:+.1f} %; a rank test puts the repeats apart ({_p(test['p'])}; {spans})"
    return out


def _p(p):
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _repeats(n):
    return "one sample" if n == 1 else f"{n} repeats"


def _span(out, side, n):
    """A side's median and what it spans, as the figures are shown."""
    if n == 1:
        return f"{_figure(out[side])} (one sample)"
    kind = "95 % interval" if n >= 5 else "range"
    return f"{_figure(out[side])} ({kind} {_figure(out[side + '_lo'])} to {_figure(out[side + '_hi'])}, {n} repeats)"


def _figure(x):
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.3g}"


# ---- two sets of results -----------------------------------------------------------

def _group(results):
    """{identity: the samples of that measurement}, each the newest batch."""
    groups = {}
    for r in results:
        groups.setdefault(identity(r), []).append(r)
    return {k: _newest_batch(v) for k, v in groups.items()}


def _newest_batch(results):
    """Where results carry a batch (the engines tables: one kit report's
    repeats share one), those of the newest batch: a key an earlier batch
    with more repeats left behind is not a sample of the later one. Results
    without one (sweeps, which resume across invocations) are one batch."""
    batches = {}
    for r in results:
        batch = (r.data.get("tags") or {}).get("batch")
        batches.setdefault(None if batch is None else str(batch), []).append(r)
    if len(batches) == 1:
        return results
    return max(batches.values(), key=lambda rs: max(store.measured_ms(r) for r in rs))


def measurements(results):
    """One row per measurement among results (their latest, say): what it
    is (suite, scenario, engine), its samples' median IOPS with interval,
    median p99 clat, how many, and when the newest was measured."""
    import pandas as pd
    rows = []
    for ident, rs in _group(results).items():
        tags = rs[0].data.get("tags") or {}
        med, lo, hi = median_interval([iops(r) for r in rs])
        when = [measured(r) for r in rs if measured(r)]
        rows.append({"suite": ident[0], "what": name(ident), "key": ident[1],
                     "scenario": str(tags.get("scenario") or ""),
                     "engine": str(tags.get("section") or tags.get("workload") or rs[0].data.get("label") or ident[1]),
                     "samples": len(rs), "iops": med, "iops_lo": lo, "iops_hi": hi,
                     "clat_p99_us": median_interval([p99_ns(r) for r in rs])[0] / 1000,
                     "measured": max(when) if when else None})
    return pd.DataFrame(rows)


def _order(ident):
    suite = ident[0]
    return (SUITE_ORDER.index(suite) if suite in SUITE_ORDER else len(SUITE_ORDER), suite)


def _same_run(a, b):
    """The very same measurements on both sides (a machine as of two runs
    shares what it measured once)."""
    def stamps(rs):
        return sorted((store.measured_ms(r), stored_key(r)) for r in rs)
    return stamps(a) == stamps(b)


def _jobs_per_cpu(result):
    cpus = ((result.data.get("machine") or {}).get("cpu") or {}).get("count")
    numjobs = job_of(result).get("numjobs")
    return numjobs / cpus if isinstance(numjobs, int) and isinstance(cpus, int) and cpus > 0 else None


def _job_change(a, b):
    """What differs between the jobs of two groups ("" when nothing). The
    engines tables scale numjobs to the machine's CPUs (the seed's recipe:
    jobs per CPU), so across machines only the jobs per CPU must agree."""
    ja, jb = job_of(a[0]), job_of(b[0])
    changed = [k for k in sorted(set(ja) | set(jb)) if ja.get(k) != jb.get(k)]
    if changed == ["numjobs"] and all((r[0].data.get("tags") or {}).get("suite") == "engines" for r in (a, b)) \
            and _jobs_per_cpu(a[0]) is not None and _jobs_per_cpu(a[0]) == _jobs_per_cpu(b[0]):
        return ""
    if not changed:
        return ""
    shown = ", ".join(f"{k} {ja.get(k)!s} vs {jb.get(k)!s}" for k in changed[:3])
    return shown + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")


def compare(a, b, singles=False):
    """B's results against A's: {"rows": a DataFrame, one row per pair
    (what, both figures with intervals, B/A, verdict, why), "only_a",
    "only_b": names measured on one side only, "same": names of pairs that
    are the very same runs on both sides (not shown)}. singles: two sides
    of one result each (two files the user named) are each other's pair,
    whatever they measured."""
    import pandas as pd
    single = singles and len(a) == 1 and len(b) == 1
    if single:          # named one each: compared whatever they ran, and the difference in jobs said
        pairs = [(identity(a[0]), a, b)]
        only_a = only_b = []
    else:
        ga, gb = _group(a), _group(b)
        keys = sorted(set(ga) & set(gb), key=lambda k: (_order(k), k))
        pairs = [(k, ga[k], gb[k]) for k in keys]
        only_a = [name(k) for k in ga if k not in gb]
        only_b = [name(k) for k in gb if k not in ga]
    rows, same = [], []
    for ident, ra, rb in pairs:
        if _same_run(ra, rb) and not single:
            same.append(name(ident))
            continue
        ops = difference([iops(r) for r in ra], [iops(r) for r in rb])
        lat = difference([p99_ns(r) for r in ra], [p99_ns(r) for r in rb], higher_is_better=False,
                         words=("higher", "lower"))
        what = name(ident)
        if single and identity(b[0])[:2] != ident[:2]:
            what += f" vs {name(identity(b[0]))}"
        row = {"what": what, "suite": ident[0], "key": ident[1],
               "a_iops": ops["a"], "a_iops_lo": ops["a_lo"], "a_iops_hi": ops["a_hi"], "a_n": ops["a_n"],
               "b_iops": ops["b"], "b_iops_lo": ops["b_lo"], "b_iops_hi": ops["b_hi"], "b_n": ops["b_n"],
               "iops_ratio": ops["ratio"], "iops_change_pct": ops["change_pct"],
               "a_p99_ns": lat["a"], "b_p99_ns": lat["b"], "p99_ratio": lat["ratio"],
               "p99_change_pct": lat["change_pct"], "p99_verdict": lat["verdict"],
               "verdict": ops["verdict"], "why": ops["why"]}
        changed = _job_change(ra, rb)
        if changed and not single:
            row.update(verdict="not compared", why=f"the jobs differ: {changed}", p99_verdict="not compared")
        else:
            if lat["verdict"] in ("higher", "lower"):
                row["why"] += f"; p99 {lat['verdict']} ({lat['change_pct']:+.1f} %)"
            if changed:
                row["why"] += f"; the jobs differ: {changed}"
        row["a_measured"] = utc(max(store.measured_ms(r) for r in ra))
        row["b_measured"] = utc(max(store.measured_ms(r) for r in rb))
        rows.append(row)
    return {"rows": pd.DataFrame(rows), "only_a": only_a, "only_b": only_b, "same": same}


# ---- a machine's history ------------------------------------------------------------

def runs(results):
    """The runs among a machine's results (every run, store.load(history=
    True)), oldest first: [{"number", "start", "end" (ms), "results",
    "suites", "kit", "sources", "kernels"}]. A run ends where a key repeats,
    or where a suite's batch (one kit report's engines tables) changes.
    Results imported from fio are no run of kit's (they keep fio's own
    time, years ago perhaps): left out."""
    out, seen, batches = [], set(), {}
    for r in sorted((r for r in results if stored_key(r)[0] != "import"), key=store.measured_ms):
        key = stored_key(r)
        batch = (r.data.get("tags") or {}).get("batch")
        if not out or key in seen or batches.get(key[0], batch) != batch:
            out.append([])
            seen, batches = set(), {}
        seen.add(key)
        batches[key[0]] = batch
        out[-1].append(r)
    return [{"number": i, "start": store.measured_ms(rs[0]), "end": store.measured_ms(rs[-1]), "results": rs,
             "suites": sorted({stored_key(r)[0] for r in rs}, key=lambda s: (_order((s,)), s)),
             "kit": sorted({kit_version(r) for r in rs}), "sources": sorted({source(r) for r in rs}),
             "kernels": sorted({kernel(r) for r in rs})}
            for i, rs in enumerate(out, 1)]


def as_of(results, until_ms):
    """For each key, the newest result measured at or before until_ms."""
    newest = {}
    for r in results:
        ms = store.measured_ms(r)
        key = stored_key(r)
        if ms <= until_ms and (key not in newest or ms > store.measured_ms(newest[key])):
            newest[key] = r
    return sorted(newest.values(), key=lambda r: (_order((stored_key(r)[0],)), stored_key(r)))


def previous_and_latest(history):
    """(the store as of the run before the newest, the latest of each key)
    of a machine's history, or None with fewer than two runs."""
    found = runs(history)
    if len(found) < 2:
        return None
    return as_of(history, found[-2]["end"]), as_of(history, found[-1]["end"])


def history_frame(history):
    """One row per stored run of each key, oldest first: when, the run,
    what (suite, scenario, engine), IOPS, p99, kit version, C sources and
    kernel that measured it."""
    import pandas as pd
    found = runs(history)
    number = {id(r): run["number"] for run in found for r in run["results"]}
    start = {run["number"]: measured(run["results"][0]) for run in found}
    rows = []
    for r in sorted(history, key=store.measured_ms):
        tags = r.data.get("tags") or {}
        suite, key = stored_key(r)
        rows.append({"measured": measured(r), "run": number[id(r)], "run_start": start[number[id(r)]],
                     "suite": suite, "measurement": name(identity(r)),
                     "batch": "" if tags.get("batch") is None else str(tags["batch"]),
                     "scenario": str(tags.get("scenario") or ""),
                     "engine": str(tags.get("section") or tags.get("workload") or r.data.get("label") or key),
                     "key": key, "iops": iops(r), "clat_p99_us": p99_ns(r) / 1000,
                     "kit_version": kit_version(r), "source_hash": source(r), "kernel": kernel(r)})
    return pd.DataFrame(rows)


# ---- machines side by side -----------------------------------------------------------

def engines_by_machine(data=None):
    """The seed tables of every machine in the store, from its latest
    engines results: one row per machine, scenario and engine (measurements'
    columns: median IOPS of the repeats, interval, p99, samples)."""
    import pandas as pd
    frames = [measurements(store.load(m["name"], "engines", data)).assign(machine=m["name"])
              for m in store.machines(data, quiet=True)]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def versus_reference(data=None, reference=None):
    """Every other machine's latest engines results against the reference
    machine's (default: the one with the newest results that has engines
    results): (reference or None, one
    row per machine and pair with compare()'s columns plus "machine",
    {machine: what it shares with the reference as the very same runs})."""
    import pandas as pd
    known = [m["name"] for m in store.machines(data, quiet=True)]
    measured_engines = [m for m in known if store.load(m, "engines", data)]
    reference = reference or (measured_engines[0] if measured_engines else None)
    if reference is None:
        return reference, pd.DataFrame(), {}
    base = store.load(reference, "engines", data)
    frames, same = [], {}
    for other in known:
        if other == reference:
            continue
        outcome = compare(base, store.load(other, "engines", data))
        same[other] = outcome["same"]
        if not outcome["rows"].empty:
            frames.append(outcome["rows"].assign(machine=other))
    return reference, (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), same


# ---- what `kit compare` is given ---------------------------------------------------

_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?", re.A)
SIDE_HELP = ("a result file (kit run --output, a stored result, fio JSON), a machine in the store (its "
             "latest results), MACHINE@N (as of its run N; -1 the newest, -2 the one before) or "
             "MACHINE@YYYY-MM-DD[THH:MM[:SS]] (as of that UTC time; a date alone: its end)")


class Side:
    """One side of a comparison: what the user named, and its results."""

    def __init__(self, spec, results, description, kind="machine"):
        self.spec, self.results, self.description, self.kind = spec, results, description, kind


def side(spec, data=None):
    """A side from what the user typed (SIDE_HELP); OptionError naming it."""
    spec = str(spec)
    machine, at, when = spec.partition("@")
    known = [m["name"] for m in store.machines(data, quiet=True)]
    if "/" in spec or spec.endswith(".json") or (machine not in known and os.path.isfile(spec)):
        if not os.path.isfile(spec):
            raise OptionError(None, f"{spec}: no such result file")
        results = from_fio_json(spec)
        return Side(spec, results, f"{spec}: {len(results)} result{'s' * (len(results) != 1)}", "file")
    if machine not in known:
        raise OptionError(None, f"{spec!r} is neither a result file nor a machine in {store.data_dir(data)} "
                                f"(machines there: {', '.join(known) or 'none'})")
    history = store.load(machine, data=data, history=True)
    if not history:
        raise OptionError(None, f"{machine} has no results in {store.data_dir(data)}")
    if not at:
        latest = store.load(machine, data=data)
        return Side(spec, latest, f"{machine}: its latest results ({len(latest)}, newest measured "
                                  f"{utc(max(store.measured_ms(r) for r in latest))})")
    found = runs(history)
    until, said = _until(spec, when, found)
    chosen = as_of(history, until)
    if not chosen:
        raise OptionError(None, f"{spec}: {machine} has no results measured by {utc(until)} (its first "
                                f"run started {utc(found[0]['start'])})")
    return Side(spec, chosen, f"{machine} as of {said}: {len(chosen)} results")


def _until(spec, when, found):
    """(ms, words) that MACHINE@WHEN stands for."""
    if re.fullmatch(r"-?[0-9]+", when):
        n = int(when)
        if not (1 <= n <= len(found) or -len(found) <= n <= -1):
            raise OptionError(None, f"{spec}: there {'is 1 run' if len(found) == 1 else f'are {len(found)} runs'}"
                                    f" (use 1 to {len(found)}, or -1 for the newest; `kit compare "
                                    f"{spec.partition('@')[0]}` lists them)")
        run = found[n - 1 if n > 0 else n]
        return run["end"], f"run {run['number']} (measured {utc_span(run['start'], run['end'])})"
    m = _TIME.fullmatch(when)
    try:
        if not m:
            raise ValueError
        day = datetime.date.fromisoformat(m.group(1))
        if m.group(2) is None:
            at = datetime.datetime.combine(day, datetime.time(23, 59, 59, 999000), datetime.timezone.utc)
        else:
            # to the end of the second (or minute) named: what was measured then counts
            at = datetime.datetime.combine(day, datetime.time(int(m.group(2)), int(m.group(3)),
                                                              int(m.group(4) or 59), 999000), datetime.timezone.utc)
    except ValueError:
        raise OptionError(None, f"{spec}: after @, a run number (1, 2, ... or -1, -2, ...) or a UTC time "
                                "YYYY-MM-DD[THH:MM[:SS]]") from None
    return int(at.timestamp() * 1000), utc(int(at.timestamp() * 1000))
