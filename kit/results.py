"""Results: one schema, fio-shaped.

Where fio's JSON has a concept, the key and unit are fio's (jobs[].read.iops,
bw_bytes, clat_ns.percentile["99.000000"], usr_cpu, ctx, iodepth_level, ...),
so tools that read fio JSON read kit's. What fio lacks sits beside it: the
"kit" object in each job entry (voluntary/involuntary switches, exact depth
histograms), "total" (all job threads merged), "process" (the whole process,
helper threads included), the job, the machine, trace summaries, raw bins.
"""
import copy
import json
import math
import os
import re
import time

import numpy as np

from . import __version__, hist, text
from .engines import io_hint, setup_hint
from .errors import OptionError
from .files import read_json, read_text_file, write_atomic
from .job import OPTIONS, Job, job_from_fio_options, job_label
from .options import DDIRS
from .tracers import format_summary as trace_text

SCHEMA = "kit-result/1"
_LAT_KINDS = ("slat_ns", "clat_ns", "lat_ns")
_LEVEL_LABELS = ("1", "2", "4", "8", "16", "32", ">=64")
_CALL_LABELS = ("0", "4", "8", "16", "32", "64", ">=64")
_LAT_EDGES = (2, 4, 10, 20, 50, 100, 250, 500, 750, 1000)


# ---- per-thread raw statistics -> fio-shaped entries ----------------------

def empty_lat():
    return {"n": 0, "min": 0, "max": 0, "sum": 0.0, "sumsq": 0.0,
            "hist": np.zeros(hist.PLAT_NR, dtype=np.int64)}


def merge_lat(parts):
    out = empty_lat()
    live = [p for p in parts if p["n"]]
    if live:
        out["n"] = sum(p["n"] for p in live)
        out["min"] = min(p["min"] for p in live)
        out["max"] = max(p["max"] for p in live)
        out["sum"] = sum(p["sum"] for p in live)
        out["sumsq"] = sum(p["sumsq"] for p in live)
        out["hist"] = np.sum([p["hist"] for p in live], axis=0)
    return out


_SUMMED = ("utime_ns", "stime_ns", "nvcsw", "nivcsw", "minflt", "majflt", "verified_bytes",
           "syncs")


def merge_threads(threads):
    """All job threads as one (fio's group_reporting): counts and histograms
    add up; the interval runs from the first start to the last end."""
    merged = {
        "ddir": {d: {"ios": sum(t["ddir"][d]["ios"] for t in threads),
                     "bytes": sum(t["ddir"][d]["bytes"] for t in threads),
                     **{k: merge_lat([t["ddir"][d][k] for t in threads]) for k in ("slat", "clat", "lat")}}
                 for d in DDIRS},
        "sync_lat": merge_lat([t["sync_lat"] for t in threads]),
        # fio's group: each direction ran as long as its longest thread
        "ddir_runtime_ns": {d: max(t["ddir_runtime_ns"][d] for t in threads) for d in DDIRS},
        "start_ns": min(t["start_ns"] for t in threads),
        "end_ns": max(t["end_ns"] for t in threads),
        "tid": None,
        "verify_ns": max(t["verify_ns"] for t in threads),
        "runtime_sum_ns": sum(t["end_ns"] - t["start_ns"] for t in threads),
        "ring_flags": threads[0].get("ring_flags", 0),
        "framework": threads[0].get("framework"),
        "threads_started": sum(t.get("threads_started", 0) for t in threads),
        "clock": threads[0].get("clock"),
        # fio sums the threads' bw and iops statistics (pure_sum): each is kept
        "threads": threads,
    }
    for key in _SUMMED:
        merged[key] = sum(t[key] for t in threads)
    for key in ("depth_level", "depth_submit", "depth_complete"):
        merged[key] = np.sum([t[key] for t in threads], axis=0)
    return merged


def disk_util(stats, wall_ns):
    """fio's disk_util entries: name -> (block_stat before, after) of each
    disk behind the files, over the run's wall time (util: busy time)."""
    out = []
    for name, (before, after) in stats.items():
        if not before or not after:
            continue
        d = {k: max(after[k] - before[k], 0) for k in before if k != "in_flight"}
        wall_ms = wall_ns / 1e6
        out.append({"name": name, "read_ios": d["read_ios"], "write_ios": d["write_ios"],
                    "read_merges": d["read_merges"], "write_merges": d["write_merges"],
                    "read_ticks": d["read_ticks"], "write_ticks": d["write_ticks"],
                    "in_queue": d["time_in_queue"],
                    "util": min(100.0 * d["io_ticks"] / wall_ms, 100.0) if wall_ms else 0.0})
    return out


def device_share(block, merged):
    """Per direction, how much of what the job waited for was the device: the
    device's total latency over the engine's total latency (sums, not means:
    when only some I/Os reach the device, as partly cached buffered reads, a
    ratio of means would count each device request once per I/O). lat, not
    clat: libaio and io_uring issue a request inside the submit call, so the
    device's time can fall in the submission latency. Also how many requests
    reached the device for how many I/Os, and, where there is no share, why:
    I/Os split into requests smaller than themselves (above the device's
    max_sectors_kb) have parts in flight side by side, whose latencies add
    up to more than the I/O waited."""
    share, reached = {}, {}
    for d in DDIRS:
        mine = merged["ddir"][d]
        lat_total = mine["lat"]["sum"] if mine["lat"]["n"] else mine["clat"]["sum"]
        entry = block.get(d) or {}
        lat = entry.get("lat_ns") or {}
        device_ns = lat.get("sum_ns", lat.get("mean", 0) * lat.get("N", 0))
        if not (lat.get("N") and mine["clat"]["n"] and lat_total):
            continue
        requests, ios = int(lat["N"]), int(mine["clat"]["n"])
        reached[d] = {"requests": requests, "ios": ios}
        split = requests > ios and mine["ios"] and entry.get("requests") and \
            entry.get("bytes", 0) / entry["requests"] < mine["bytes"] / mine["ios"]
        if split:
            reached[d]["split"] = True
            continue
        share[d] = device_ns / lat_total
    return share, reached


def lat_entry(lat, bins=True, plist=hist.PERCENTILES, percentiles=True):
    """fio's latency object; bins (json+) are kept for every kind, so kit can
    merge them later, the percentile map only where the job asks for it."""
    n = lat["n"]
    if not n:
        return {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}
    mean = lat["sum"] / n
    var = (lat["sumsq"] - lat["sum"] * lat["sum"] / n) / (n - 1) if n > 1 else 0.0
    entry = {"min": int(lat["min"]), "max": int(lat["max"]), "mean": mean,
             "stddev": math.sqrt(max(var, 0.0)), "N": int(n)}
    if percentiles:
        entry["percentile"] = hist.percentiles(lat["hist"], n, plist)
    if bins:
        entry["bins"] = hist.to_bins(lat["hist"])
    return entry


def _reported(job):
    """Which latency kinds get percentiles, and which percentiles (fio's
    clat_percentiles, lat_percentiles, slat_percentiles, percentile_list)."""
    plist = tuple(float(p) for p in job.percentile_list.split(":")) if job.percentile_list else hist.PERCENTILES
    return plist, {"slat": job.slat_percentiles, "clat": job.clat_percentiles, "lat": job.lat_percentiles}


def window_rates(windows):
    """fio's bw and iops samples of windows (stat.c __add_samples), as
    (bw, iops) arrays of windows x directions: KiB/s and I/Os per second
    over each window's whole milliseconds. A window that moved no data in
    a direction is no sample of it (bytes 0 there)."""
    spent = (windows["span_ns"] // 1_000_000).astype(np.int64)[:, None]
    nonzero = np.maximum(spent, 1)
    bw = np.where(spent > 0, windows["bytes"].astype(np.int64) * 1000 // nonzero // 1024, 0)
    iops = np.where(spent > 0, windows["ios"].astype(np.int64) * 1000 // nonzero, 0)
    return bw, iops


def grid(t, job, ms, last=False):
    """One job thread's windows of ms milliseconds (one of job.windows_ms),
    with the last, partial one when last (fio's statistics leave it out)."""
    i = job.windows_ms.index(ms)
    return np.concatenate([t["windows"][i], t["windows_last"][i]]) if last else t["windows"][i]


def stat_windows(t, job, kind):
    """The windows of one job thread that fio's bw ("bw") or iops ("iops")
    samples come from."""
    return grid(t, job, job.avg_ms(kind))


def thread_samples(t, job, kind, i):
    """fio's bw (KiB/s) or iops samples of direction i of one job thread:
    one per window that moved data; or, with that kind's log and no
    log_avg_msec, one per I/O (fio's add_bw_sample: bytes*1e6/clat_ns,
    add_iops_sample: 1)."""
    if job.avg_ms(kind) == 0:
        r = t["records"][t["records"]["ddir"] == i]
        if kind == "iops":
            return np.ones(len(r), np.int64)
        clat = r["clat"].astype(np.int64)
        return np.where(clat > 0, r["len"].astype(np.int64) * 1_000_000 // np.maximum(clat, 1), 0)
    windows = stat_windows(t, job, kind)
    live = windows["bytes"][:, i] > 0
    return window_rates(windows)[0 if kind == "bw" else 1][live, i]


def _io_stat(values):
    """fio's io_stat of one thread's samples: (min, max, mean, S, n), S the
    sum of squared deviations (Welford's, as add_stat_sample)."""
    n = len(values)
    if not n:
        return (0, 0, 0.0, 0.0, 0)
    mean = float(np.mean(values))
    return (int(values.min()), int(values.max()), mean, float(np.sum((values - mean) ** 2)), n)


def pure_sum(stats):
    """fio's group sum of bw and iops statistics (sum_stat with pure_sum):
    min, max, mean, S and n each added up over the threads that have
    samples. Not a statistic of any sample set, but what fio reports."""
    live = [s for s in stats if s[4]]
    return tuple(sum(s[k] for s in live) for k in range(5)) if live else (0, 0, 0.0, 0.0, 0)


def _stat_fields(prefix, dev_name, stat, agg=None):
    """fio's keys of a bw or iops statistic, in fio's order (bw_agg after
    bw_max)."""
    low, high, mean, S, n = stat
    out = {f"{prefix}_min": int(low), f"{prefix}_max": int(high)}
    if agg is not None:
        out[f"{prefix}_agg"] = agg
    out.update({f"{prefix}_mean": float(mean), dev_name: math.sqrt(S / (n - 1)) if n > 1 else 0.0,
                f"{prefix}_samples": int(n)})
    return out


def group_bw_bytes(parts):
    """fio's rs->agg of one direction: the group's bytes over its longest
    runtime (ms), in bytes/s; parts: the direction's entries."""
    runtime = max((p.get("runtime", 0) for p in parts), default=0)
    return sum(p.get("io_bytes", 0) for p in parts) * 1000 // runtime if runtime else 0


def bw_agg(mean, n, agg_bytes):
    """fio's bw_agg (convert_agg_kbytes_percent): the mean sampled
    bandwidth (whole KiB/s) in percent of the group's aggregate (bytes/s),
    at most 100; 100 when the aggregate is at most 1 KiB/s; 0 without
    samples."""
    if not n:
        return 0.0
    if agg_bytes <= 1024:
        return 100.0
    return min(100.0, int(mean) * 100.0 / (agg_bytes / 1024.0))


def _ddir_entry(d, runtime_ns, report=(hist.PERCENTILES, {"slat": True, "clat": True, "lat": True}),
                samples=None, agg_bw_bytes=None):
    """One direction; runtime_ns: how long this direction ran (fio's
    per-direction runtime: a verify phase's reads run after the writes).
    samples: {"bw": [...], "iops": [...]}, each thread's samples (one
    array per thread); agg_bw_bytes: the group's aggregate bandwidth
    (fio's rs->agg), which bw_agg is a percent of (default this one's)."""
    ios, nbytes = d["ios"], d["bytes"]
    secs = runtime_ns / 1e9 if runtime_ns > 0 else 0.0
    bw_bytes = int(nbytes / secs) if secs else 0
    runtime_ms = int(round(runtime_ns / 1e6)) if ios else 0
    samples = samples or {"bw": [], "iops": []}
    bw = pure_sum([_io_stat(v) for v in samples["bw"]])
    iops = pure_sum([_io_stat(v) for v in samples["iops"]])
    agg = agg_bw_bytes if agg_bw_bytes is not None else int(nbytes) * 1000 // runtime_ms if runtime_ms else 0
    return {
        "io_bytes": int(nbytes), "io_kbytes": int(nbytes) >> 10,
        "bw_bytes": bw_bytes, "bw": bw_bytes // 1024,
        "iops": ios / secs if secs else 0.0,
        "runtime": runtime_ms,
        "total_ios": int(ios), "short_ios": 0, "drop_ios": 0,
        **{f"{kind}_ns": lat_entry(d[kind], plist=report[0], percentiles=report[1][kind])
           for kind in ("slat", "clat", "lat")},
        **_stat_fields("bw", "bw_dev", bw, bw_agg(bw[2], bw[4], agg)),
        **_stat_fields("iops", "iops_stddev", iops),
    }


def _threads(t):
    """The job threads behind an entry: a merge's, or the thread itself."""
    return t.get("threads") or [t]


def _series_entry(t, job):
    """kit's time series of a job (or its threads merged): what completed
    per window, the last partial one included, for IOPS-over-time plots
    (the log windows when logs average, else the statistics windows);
    windows of threads that close about together are added up."""
    interval_ns = job.series_ms * 1_000_000
    windows = [grid(p, job, job.series_ms, last=True) for p in _threads(t)]
    if not interval_ns or not sum(len(w) for w in windows):
        return None
    start = t["start_ns"]
    slots = {}
    for w in windows:
        k = 0
        for row in w:
            # the nearest interval's end, but after the thread's last window
            # (a short last window ends soon after the one before)
            k = max(int(round((int(row["end_ns"]) - start) / interval_ns)), k + 1)
            acc = slots.setdefault(k, np.zeros((2, len(DDIRS)), np.int64))
            acc[0] += row["bytes"].astype(np.int64)
            acc[1] += row["ios"].astype(np.int64)
    keys = sorted(slots)
    out = {"interval_ms": interval_ns / 1e6, "t_ms": [k * interval_ns / 1e6 for k in keys]}
    for i, d in enumerate(DDIRS):
        if any(slots[k][1][i] for k in keys):
            out[f"{d}_bytes"] = [int(slots[k][0][i]) for k in keys]
            out[f"{d}_ios"] = [int(slots[k][1][i]) for k in keys]
    return out


def _pct_map(counts, total, labels, edges, floor):
    """fio's stat_calc_dist: percent of total per bucket, nonzero < floor -> floor."""
    out = {}
    for label, (lo, hi) in zip(labels, edges):
        c = int(np.sum(counts[lo:hi]))
        pct = 100.0 * c / total if total else 0.0
        out[label] = floor if (c and pct < floor) else pct
    return out


def _depth_maps(t):
    level, submit, complete = t["depth_level"], t["depth_submit"], t["depth_complete"]
    level_edges = ((0, 2), (2, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, len(level)))
    call_edges = ((0, 1), (1, 5), (5, 9), (9, 17), (17, 33), (33, 65), (65, len(submit)))
    return {
        "iodepth_level": _pct_map(level, int(level.sum()), _LEVEL_LABELS, level_edges, 0.1),
        "iodepth_submit": _pct_map(submit, int(submit.sum()), _CALL_LABELS, call_edges, 0.1),
        "iodepth_complete": _pct_map(complete, int(complete.sum()), _CALL_LABELS, call_edges, 0.1),
    }


def _latency_maps(t):
    """latency_ns/us/ms from clat, as fio (io_u_mark_latency), bucket values."""
    counts = sum(t["ddir"][d]["clat"]["hist"] for d in DDIRS)
    total = int(sum(t["ddir"][d]["clat"]["n"] for d in DDIRS))
    vals = hist.BUCKET_VALUES
    ns = {str(e): 0 for e in _LAT_EDGES}
    us = {str(e): 0 for e in _LAT_EDGES}
    ms = {**{str(e): 0 for e in _LAT_EDGES}, "2000": 0, ">=2000": 0}
    for i in np.nonzero(counts)[0]:
        v, c = int(vals[i]), int(counts[i])
        for unit, scaled in ((ns, v), (us, v // 1000), (ms, v // 1000000)):
            if unit is not ms and scaled >= 1000:
                continue
            if unit is not ns and scaled < 1:
                break
            key = next((str(e) for e in _LAT_EDGES if scaled < e), None)
            if key is None:
                key = "2000" if scaled < 2000 else ">=2000"
            unit[key] += c
            break

    def pct(m):
        return {k: (max(100.0 * c / total, 0.01) if c else 0.0) for k, c in m.items()} if total else \
            {k: 0.0 for k in m}
    return {"latency_ns": pct(ns), "latency_us": pct(us), "latency_ms": pct(ms)}


def _exact(counts):
    return {str(i): int(counts[i]) for i in np.nonzero(counts)[0]}


def job_entry(t, job, options, error=0, runtime_sum_ns=None, agg=None):
    """One fio job object from raw thread statistics (or a merge of them);
    agg: the group's bandwidth per direction (bw_agg's 100 %)."""
    report = _reported(job)
    runtime_ns = max(t["end_ns"] - t["start_ns"], 0)
    cpu_base_ns = runtime_sum_ns if runtime_sum_ns else runtime_ns
    entry = {
        # fio writes eta as INT_MAX once a job is done
        "jobname": job.name, "groupid": 0, "error": error, "eta": 2147483647,
        "elapsed": int(math.ceil(runtime_ns / 1e9)),
        **({"job options": options} if options else {}),     # fio leaves out an empty list
        **{d: _ddir_entry(t["ddir"][d], t["ddir_runtime_ns"][d], report,
                          {kind: [thread_samples(p, job, kind, i) for p in _threads(t)] for kind in ("bw", "iops")},
                          (agg or {}).get(d))
           for i, d in enumerate(DDIRS)},
        "sync": {"total_ios": int(t["syncs"]), "lat_ns": lat_entry(t["sync_lat"])},
        # fio sums it over the threads of a group (group_reporting)
        "job_runtime": int(round(cpu_base_ns / 1e6)),
        "usr_cpu": 100.0 * t["utime_ns"] / cpu_base_ns if cpu_base_ns else 0.0,
        "sys_cpu": 100.0 * t["stime_ns"] / cpu_base_ns if cpu_base_ns else 0.0,
        "ctx": int(t["nvcsw"] + t["nivcsw"]),
        "majf": int(t["majflt"]), "minf": int(t["minflt"]),
    }
    entry.update(_depth_maps(t))
    entry.update(_latency_maps(t))
    # fio's latency_target search (kit has none): what fio writes without it
    entry.update({"latency_depth": job.iodepth, "latency_target": 0, "latency_percentile": 100.0,
                  "latency_window": 0})
    if options.get("description"):      # fio's "desc", after the latency target's keys
        entry["desc"] = options["description"]
    entry["kit"] = {
        "tid": t["tid"], "start_ns": int(t["start_ns"]), "end_ns": int(t["end_ns"]),
        "runtime_ns": int(runtime_ns),
        "ddir_runtime_ns": {d: int(t["ddir_runtime_ns"][d]) for d in DDIRS},
        "ctx_voluntary": int(t["nvcsw"]), "ctx_involuntary": int(t["nivcsw"]),
        "usr_ns": int(t["utime_ns"]), "sys_ns": int(t["stime_ns"]),
        "verified_bytes": int(t["verified_bytes"]),
        "verify_ns": int(t.get("verify_ns", 0)),
        "clock": t.get("clock"),
        "iodepth_level_exact": _exact(t["depth_level"]),
        "iodepth_submit_exact": _exact(t["depth_submit"]),
        "iodepth_complete_exact": _exact(t["depth_complete"]),
    }
    if t.get("verify_seed") is not None:
        entry["kit"]["verify_seed"] = int(t["verify_seed"])
    if t.get("ring_flags"):
        entry["kit"]["io_uring_setup_flags"] = int(t["ring_flags"])
    if t.get("framework"):          # the library the engine measures: "Boost.Asio 1.81.0"
        entry["kit"]["framework"] = t["framework"]
    if t.get("threads_started"):
        entry["kit"]["threads_started"] = int(t["threads_started"])
    series = _series_entry(t, job)
    if series:
        entry["kit"]["series"] = series
    return entry


# ---- reading: fio's documents and kit's own ----------------------------------
_NUMBER = (int, float)
_DDIR_FIELDS = ("io_bytes", "total_ios", "runtime", "iops", "bw_bytes")
_LAT_FIELDS = ("N", "min", "max", "mean", "stddev")
_KIT_NUMBERS = ("runtime_ns", "start_ns", "end_ns", "threads", "ctx_voluntary", "ctx_involuntary", "usr_ns",
                "sys_ns", "verified_bytes")


def _is(value, kinds):
    """value has one of fio's number types, and is a number a machine wrote:
    no booleans, no NaN or infinity, no integer beyond 64 bits."""
    if not isinstance(value, kinds) or isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value) and abs(value) < 1e30     # squares and sums stay finite
    return not isinstance(value, int) or abs(value) < 1 << 63


def _map_problem(value, where, values=_NUMBER):
    if not isinstance(value, dict):
        return f"{where} is not an object"
    bad = next((k for k, v in value.items() if not _is(v, values)), None)
    if bad is None and values is not str:
        bad = next((k for k, v in value.items() if v < 0), None)
        if bad is not None:
            return f"{where}[{bad!r}] is negative"
    return f"{where}[{bad!r}] is not a number" if bad is not None else None


_PERCENTILE_KEY = re.compile(r"[0-9]{1,3}(?:\.[0-9]+)?")
_BIN_KEY = re.compile(r"[0-9]{1,20}")


def _negative(record, where):
    """The first number of record below zero (counts, times and rates never
    are, in fio's JSON), as a problem, or None."""
    bad = next((k for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                and v < 0), None)
    return f"{where}.{bad} is negative ({record[bad]})" if bad is not None else None


def fio_document_problem(data):
    """What in a fio JSON document kit cannot read, or None: every field kit
    uses has fio's type, so nothing fails later, after it was stored."""
    if "global options" in data and _map_problem(data["global options"], "'global options'", str):
        return _map_problem(data["global options"], "'global options'", str)
    for key in ("timestamp", "timestamp_ms"):
        if key in data and not _is(data[key], int):
            return f"{key} is not a number"
    if "disk_util" in data:
        disks = data["disk_util"]
        if not isinstance(disks, list) or not all(isinstance(d, dict) and isinstance(d.get("name"), str)
                                                  for d in disks):
            return "disk_util is not a list of named disks"
        for i, d in enumerate(disks):
            problem = _map_problem({k: v for k, v in d.items() if k != "name"}, f"disk_util[{i}]")
            if problem:
                return problem
    for i, e in enumerate(data["jobs"]):
        where = f"jobs[{i}]"
        if not isinstance(e, dict):
            return f"{where} is not an object"
        if not isinstance(e.get("jobname"), str):
            return f"{where}.jobname is not a string"
        for key, kinds in (("error", int), ("job_runtime", _NUMBER), ("usr_cpu", _NUMBER),
                           ("sys_cpu", _NUMBER), ("ctx", int), ("majf", int), ("minf", int)):
            if not _is(e.get(key), kinds):
                return f"{where}.{key} is missing or not a number"
        if not 0 <= e["error"] < 4096:
            return f"{where}.error is not an errno"
        problem = _negative(e, where)       # no number fio writes is below zero
        if problem:
            return problem
        if "groupid" in e and not _is(e["groupid"], int):
            return f"{where}.groupid is not a number"
        if "kit" in e and not isinstance(e["kit"], dict):
            return f"{where}.kit is not an object"
        for key in _KIT_NUMBERS:
            if key in e.get("kit", {}) and not _is(e["kit"][key], _NUMBER):
                return f"{where}.kit.{key} is not a number"
        if "job options" in e and _map_problem(e["job options"], f"{where}['job options']", str):
            return _map_problem(e["job options"], f"{where}['job options']", str)
        for key in ("iodepth_level", "iodepth_submit", "iodepth_complete", "latency_ns", "latency_us",
                    "latency_ms"):
            if _map_problem(e.get(key), f"{where}.{key}"):
                return _map_problem(e.get(key), f"{where}.{key}")
        for d in ("read", "write", "trim"):
            if d not in e and d == "trim":
                continue
            de = e.get(d)
            if not isinstance(de, dict):
                return f"{where}.{d} is not an object"
            for key in _DDIR_FIELDS:
                if not _is(de.get(key), _NUMBER):
                    return f"{where}.{d}.{key} is missing or not a number"
            if _negative(de, f"{where}.{d}"):
                return _negative(de, f"{where}.{d}")
            for key in ("short_ios", "drop_ios"):
                if key in de and not _is(de[key], int):
                    return f"{where}.{d}.{key} is not a number"
            for kind in ("slat_ns", "clat_ns", "lat_ns"):
                lat = de.get(kind)
                if not isinstance(lat, dict) or not all(_is(lat.get(k), _NUMBER) for k in _LAT_FIELDS):
                    return f"{where}.{d}.{kind} lacks N, min, max, mean or stddev"
                for extra, kinds in (("percentile", _NUMBER), ("bins", int)):
                    if extra in lat and _map_problem(lat[extra], f"{where}.{d}.{kind}.{extra}", kinds):
                        return _map_problem(lat[extra], f"{where}.{d}.{kind}.{extra}", kinds)
                if _negative(lat, f"{where}.{d}.{kind}"):
                    return _negative(lat, f"{where}.{d}.{kind}")
                if "bins" in lat and not all(_BIN_KEY.fullmatch(k) for k in lat["bins"]):
                    return f"{where}.{d}.{kind}.bins has keys that are not latencies"
                if "percentile" in lat and not all(_PERCENTILE_KEY.fullmatch(k) and float(k) <= 100
                                                   for k in lat["percentile"]):
                    return f"{where}.{d}.{kind}.percentile has keys that are not percentiles (0 to 100)"
        if "sync" in e:
            sync = e["sync"]
            if not isinstance(sync, dict) or not _is(sync.get("total_ios", 0), int):
                return f"{where}.sync is not fio's"
            lat = sync.get("lat_ns")
            if lat is not None and (not isinstance(lat, dict) or not all(_is(lat.get(k), _NUMBER)
                                                                         for k in _LAT_FIELDS)):
                return f"{where}.sync.lat_ns lacks N, min, max, mean or stddev"
    return None


_JOB_FIELDS = ("ioengine", "rw", "bs", "iodepth", "numjobs", "nrfiles", "direct")


def result_problem(data):
    """What makes a stored document not a result this kit can read, or None."""
    if not isinstance(data, dict):
        return "not a kit result (not a JSON object)"
    schema = data.get("schema")
    name, _, version = str(schema).partition("/")
    if name != SCHEMA.split("/")[0] or not re.fullmatch(r"[0-9]{1,6}", version):
        return f"not a kit result (schema {schema!r})"
    if int(version) > int(SCHEMA.split("/")[1]):
        return f"written by a newer kit ({schema}; this kit reads up to {SCHEMA})"
    if not isinstance(data.get("jobs"), list) or not data["jobs"] or not isinstance(data.get("total"), dict):
        return "not a kit result (no jobs or total)"
    problem = fio_document_problem({"jobs": data["jobs"] + [data["total"]]})
    if problem:
        return problem.replace(f"jobs[{len(data['jobs'])}]", "total")
    job = data.get("job")
    if job is not None and (not isinstance(job, dict) or any(k not in job for k in _JOB_FIELDS)):
        return "its job is not a kit job"
    for key, kinds in (("process", dict), ("machine", dict), ("trace", dict), ("error", dict),
                       ("notes", list), ("tags", dict)):
        if data.get(key) is not None and not isinstance(data[key], kinds):
            return f"its {key} is not {'a list' if kinds is list else 'an object'}"
    return None


# ---- the Result -----------------------------------------------------------

class Result:
    """A finished run: the fio-shaped dict plus convenient views."""

    def __init__(self, data):
        self.data = data

    # -- construction

    @classmethod
    def from_run(cls, job, threads, process, targets, notes=(), error=None, interrupted=False,
                 machine=None, trace=None, source_hash=None, disk_util=None):
        options = job.written("job")
        merged = merge_threads(threads)
        if trace and trace.get("block"):
            trace = copy.deepcopy(trace)
            trace["block"]["device_share"], trace["block"]["device_requests"] = device_share(trace["block"], merged)
        # fio's job "error" is the errno the job thread failed with
        errno_of = {error.get("job"): int(error.get("errno") or 0)} if error else {}
        merged_entry = job_entry(merged, job, options, error=max(errno_of.values(), default=0),
                                 runtime_sum_ns=merged["runtime_sum_ns"])
        agg = {d: group_bw_bytes([merged_entry[d]]) for d in DDIRS}
        jobs = [merged_entry] if job.group_reporting else [job_entry(t, job, options, error=errno_of.get(j, 0),
                                                                     agg=agg) for j, t in enumerate(threads)]
        return cls.build("kit", job, jobs, merged_entry, process=process, targets=targets, machine=machine,
                         notes=notes, error=error, interrupted=interrupted, trace=trace,
                         source_hash=source_hash, global_options=job.written("global"), disk_util=disk_util)

    @classmethod
    def build(cls, runner, job, jobs, total, *, process=None, targets=None, machine=None, notes=(), error=None,
              interrupted=False, trace=None, source_hash=None, global_options=None, stamp=None, label=None,
              extra=None, disk_util=None):
        """The one author of a result document: every runner's results have
        these keys, in this order. stamp: fio's (timestamp, timestamp_ms,
        time) when fio measured; label: when there is no kit Job."""
        if stamp is None:
            now = time.time()
            stamp = (int(now), int(now * 1000), time.ctime(now))
        jd = job.to_dict() if job is not None else None
        extra = {"fio version": f"kit-{__version__}", **(extra or {})}
        return cls({
            "kit version": __version__, "schema": SCHEMA, "runner": runner, **extra,
            "timestamp": stamp[0], "timestamp_ms": stamp[1], "time": stamp[2],
            "global options": global_options or {}, "jobs": jobs, "disk_util": disk_util or [],
            "total": total, "process": process,
            "job": jd, "label": job_label(jd) if jd else label, "source_hash": source_hash,
            "targets": targets, "machine": machine, "traced": bool(trace), "trace": trace,
            "interrupted": bool(interrupted), "error": error, "notes": list(notes),
        })

    @classmethod
    def from_dict(cls, data):
        problem = result_problem(data)
        if problem:
            raise ValueError(problem)
        return cls(data)

    @classmethod
    def load(cls, path):
        return cls.from_dict(read_json(path))

    def save(self, path, plus=True):
        """Writes atomically: a reader never sees half a result."""
        write_atomic(path, self.to_json(plus=plus))

    # -- views

    def to_dict(self):
        return copy.deepcopy(self.data)

    def to_json(self, plus=True, indent=2):
        data = self.data if plus else _without_bins(self.data)
        return json.dumps(data, indent=indent, default=_json_default) + "\n"

    @property
    def job(self):
        return Job.from_dict(self.data["job"])

    @property
    def total(self):
        return self.data["total"]

    @property
    def iops(self):
        return sum(self.total[d]["iops"] for d in DDIRS)

    @property
    def bw_bytes(self):
        return sum(self.total[d]["bw_bytes"] for d in DDIRS)

    @property
    def ios(self):
        return sum(self.total[d]["total_ios"] for d in DDIRS)

    @property
    def io_bytes(self):
        return sum(self.total[d]["io_bytes"] for d in DDIRS)

    def iops_windows(self):
        """IOPS per statistics window over the run, from kit.series (kit's
        own results; empty for fio's and old ones): (window ends in s, their
        lengths in s, IOPS). The last window is cut at the run's end; one
        shorter than a tenth of the interval is left out (too few I/Os to
        mean a rate)."""
        kit = self.total.get("kit") or {}
        s = kit.get("series") or {}
        counts = [s[k] for k in s if k.endswith("_ios")]
        if not s.get("t_ms") or not counts or not s.get("interval_ms"):
            return np.array([]), np.array([]), np.array([])
        ios = np.sum(counts, axis=0)
        ends = np.array(s["t_ms"], dtype=float)
        if kit.get("runtime_ns"):
            ends = np.minimum(ends, kit["runtime_ns"] / 1e6)
        starts = np.concatenate([[max(ends[0] - s["interval_ms"], 0.0)], ends[:-1]])
        width = ends - starts
        keep = width >= s["interval_ms"] / 10
        return ends[keep] / 1000, width[keep] / 1000, np.asarray(ios, dtype=float)[keep] / (width[keep] / 1000)

    def lat_histogram(self, kind="clat_ns", ddir="read"):
        """Dense bucket counts (fio's io_u_plat layout) of the merged run."""
        return hist.from_bins(self.total[ddir][kind].get("bins", {}))

    def to_frame(self, per_job=False):
        """Tidy rows: one per direction that moved data (per job thread with
        per_job=True, else the run total)."""
        import pandas as pd
        rows = []
        entries = [("all", self.total)]
        if per_job:
            entries = [(i, e) for i, e in enumerate(self.data["jobs"])]
        for which, entry in entries:
            for d in DDIRS:
                if entry[d]["total_ios"] or (d == "read" and not self.ios):
                    rows.append(self._row(which, entry, d))
        return pd.DataFrame(rows)

    def _row(self, which, entry, d):
        job, proc, de = text.job_fields(self.data), self.data.get("process") or {}, entry[d]
        pct = de["clat_ns"].get("percentile", {})
        row = {
            "runner": self.data.get("runner", "kit"),
            "label": self.data.get("label") or job.get("ioengine"),
            "machine": (self.data.get("machine") or {}).get("name"),
            "ioengine": job["ioengine"], "rw": job["rw"], "bs": job["bs"],
            "iodepth": job["iodepth"], "numjobs": job["numjobs"], "nrfiles": job["nrfiles"],
            "direct": job["direct"], "job": which, "ddir": d,
            "ios": de["total_ios"], "io_bytes": de["io_bytes"],
            "runtime_s": entry["kit"]["runtime_ns"] / 1e9 if "kit" in entry else de["runtime"] / 1e3,
            "iops": de["iops"], "bw_bytes": de["bw_bytes"],
            "slat_mean_ns": de["slat_ns"]["mean"], "clat_mean_ns": de["clat_ns"]["mean"],
            "lat_mean_ns": de["lat_ns"]["mean"],
        }
        for p in (50.0, 90.0, 99.0, 99.9, 99.99):
            row[f"clat_p{p:g}_ns"] = pct.get(hist.percentile_key(p))
        row.update({"usr_cpu": entry["usr_cpu"], "sys_cpu": entry["sys_cpu"], "ctx": entry["ctx"]})
        kit = entry.get("kit", {})
        row["ctx_voluntary"] = kit.get("ctx_voluntary")
        row["ctx_involuntary"] = kit.get("ctx_involuntary")
        row["process_ctx"] = proc.get("ctx")
        row["process_usr_cpu"] = proc.get("usr_cpu")
        row["process_sys_cpu"] = proc.get("sys_cpu")
        for key, option in OPTIONS.items():     # what labels a result gets a column too
            if option.label:
                row[key] = job.get(key)
        sched = ((self.data.get("trace") or {}).get("sched") or {})
        if sched:
            # the tracer's view: every thread on the machine during the run
            row["trace_ctx_system"] = (sched.get("system") or {}).get("switches")
            for role, entry in (sched.get("roles") or {}).items():
                row[f"trace_ctx_{role}"] = entry.get("switches")
        row["timestamp"] = self.data.get("timestamp")
        return row

    def summary(self):
        return text.format_summary(self.data, trace_text(self.data["trace"]) if self.data.get("trace") else None)

    def __repr__(self):
        return f"<kit.Result {self.data.get('label')} iops={self.iops:,.0f}>"

    def _repr_html_(self):
        return text.format_html(self.data)


def _without_bins(data):
    out = copy.deepcopy(data)
    for entry in out["jobs"] + [out["total"]]:
        for d in DDIRS:
            for kind in _LAT_KINDS:
                entry[d][kind].pop("bins", None)
        entry["sync"]["lat_ns"].pop("bins", None)
    return out


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ---- fio's JSON -> Results ---------------------------------------------------

def parse_fio_json(text, source="input"):
    """fio's JSON, after any lines fio printed before it. One clear line if not."""
    start = text.find("\n{") + 1 if not text.lstrip().startswith("{") else text.index("{")
    if not text.strip() or (start == 0 and not text.lstrip().startswith("{")):
        raise OptionError(None, f"{source}: not fio JSON output (no JSON object found)")
    try:
        data = json.loads(text[start:])
    except RecursionError:
        raise OptionError(None, f"{source}: broken fio JSON (nested too deeply)") from None
    except json.JSONDecodeError as e:
        raise OptionError(None, f"{source}: broken fio JSON ({e.msg} at line {e.lineno} column {e.colno})") \
            from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list) or not data["jobs"]:
        raise OptionError(None, f"{source}: JSON without fio's 'jobs' list")
    problem = fio_document_problem(data)
    if problem:
        raise OptionError(None, f"{source}: not fio output as kit reads it: {problem}")
    return data


MAX_FIO_OUTPUT = 256 << 20


def from_fio_json(path):
    """fio 3.x json / json+ output (file path or text) -> list of kit Results,
    one per fio job (sections; numjobs threads of one section are one Result)."""
    if isinstance(path, (str, os.PathLike)) and os.path.exists(path):
        text = read_text_file(path, what="fio output", limit=MAX_FIO_OUTPUT)
        source = str(path)
    else:
        text, source = str(path), "input"
    data = parse_fio_json(text, source)
    results = results_from_document(data, source) if _is_kit_output(data) else results_from_fio(data)
    for r in results:           # what kit made of it must be a result kit can read back
        problem = result_problem(r.data)
        if problem:
            raise OptionError(None, f"{source}: not fio output as kit reads it: {problem}")
    return results


# ---- one document for a whole command ---------------------------------------
DOCUMENT = "kit-run/1"
_FIO_TOP = ("fio version", "timestamp", "timestamp_ms", "time", "global options", "jobs", "disk_util")


def run_document(results, global_options=None):
    """What `kit run --output-format=json` prints: ONE fio document for the
    whole command, whatever the number of jobs and groups, so fio's tools
    read it. fio's keys first (every job entry with its groupid); then kit's
    view of each job in "results" (its Result without fio's keys, and the
    indexes of its entries in "jobs"), from which kit import rebuilds them.
    global_options: a job file's [global] section as written."""
    if len(results) == 1:
        data = copy.deepcopy(results[0].data)
        if global_options is not None:
            data["global options"] = global_options
        return data
    first = results[0].data
    jobs, disks, views = [], {}, []
    for r in results:
        data = copy.deepcopy(r.data)
        view = {k: v for k, v in data.items() if k not in _FIO_TOP}
        view["jobs"] = list(range(len(jobs), len(jobs) + len(data["jobs"])))
        view["global options"] = data["global options"]
        jobs += data["jobs"]
        for d in data.get("disk_util") or []:       # groups one after another: their counts add up
            if d["name"] in disks:
                old = disks[d["name"]]
                disks[d["name"]] = {k: (old[k] + v if k not in ("name", "util") else v) for k, v in d.items()}
            else:
                disks[d["name"]] = dict(d)
        views.append(view)
    jobs = _fio_groups(jobs, views, [r.data for r in results])
    return {"fio version": first.get("fio version"), "timestamp": first["timestamp"],
            "timestamp_ms": first["timestamp_ms"], "time": first["time"],
            "global options": global_options if global_options is not None else first["global options"],
            "jobs": jobs, "disk_util": list(disks.values()),
            "kit version": __version__, "schema": DOCUMENT, "results": views}


def _fio_groups(jobs, views, datas):
    """What fio does per reporting group (jobs of one groupid): bw_agg is
    each entry's share of the whole group's bandwidth; with group_reporting
    the group is ONE entry, every section's threads merged (each result's
    view keeps its own entries for kit import)."""
    groups = {}
    for view, data in zip(views, datas):
        groups.setdefault(data["jobs"][0].get("groupid", 0), []).append((view, data))
    for members in groups.values():
        entries = [jobs[i] for view, _data in members for i in view["jobs"]]
        for d in DDIRS:
            parts = [e[d] for e in entries if d in e]
            agg = group_bw_bytes(parts)
            for p in parts:
                if "bw_samples" in p:
                    p["bw_agg"] = bw_agg(p.get("bw_mean", 0), p["bw_samples"], agg)
    out, moved = [], {}
    for gid, members in groups.items():
        reporting = len(members) > 1 and all((data.get("job") or {}).get("group_reporting") for _v, data in members)
        indexes = [i for view, _data in members for i in view["jobs"]]
        if not reporting:
            continue
        merged = merge_fio_entries([jobs[i] for i in indexes])
        merged["groupid"] = gid
        for view, _data in members:
            view["entries"] = [jobs[i] for i in view["jobs"]]
        moved.update({i: merged for i in indexes})
    position = {}
    for i, entry in enumerate(jobs):
        target = moved.get(i, entry)
        if id(target) not in position:
            position[id(target)] = len(out)
            out.append(target)
        moved_index = position[id(target)]
        for view in views:
            view["jobs"] = [moved_index if j == i else j for j in view["jobs"]]
    for view in views:
        view["jobs"] = list(dict.fromkeys(view["jobs"]))
    return out


def set_group(result, gid):
    """fio's reporting group of a job of a job file (stonewall, new_group)."""
    for entry in result.data["jobs"] + [result.data["total"]]:
        entry["groupid"] = gid


def _is_kit_output(data):
    return str(data.get("schema", "")).split("/")[0] in (SCHEMA.split("/")[0], DOCUMENT.split("/")[0])


def results_from_document(data, source="input"):
    """kit's own output read back: one Result, or a run document's Results."""
    if data.get("schema") == DOCUMENT:
        views = data.get("results")
        if not isinstance(views, list) or not views or not all(isinstance(v, dict) for v in views):
            raise OptionError(None, f"{source}: a kit run document without its results")
        out = []
        for view in views:
            idx = view.get("jobs")
            if not isinstance(idx, list) or not idx or not all(
                    isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(data["jobs"]) for i in idx):
                raise OptionError(None, f"{source}: a result's job entries are not entries of 'jobs'")
            # a group merged for fio (group_reporting over several sections):
            # the result's own entries travel in its view
            own = view.get("entries")
            rebuilt = {**{k: data[k] for k in _FIO_TOP if k in data}, **{k: v for k, v in view.items()
                                                                          if k != "entries"},
                       "jobs": own if isinstance(own, list) and own else [data["jobs"][i] for i in idx]}
            out.append(_kit_result(rebuilt, source))
        return out
    return [_kit_result(data, source)]


def _kit_result(data, source):
    problem = result_problem(data)
    if problem:
        raise OptionError(None, f"{source}: not kit output as kit reads it: {problem}")
    return Result(data)


def results_from_fio(data, jobs=None, groups=None, process=None, plans=None, machine=None, notes=()):
    """fio's JSON document as kit Results, one per fio job (sections; the
    numjobs threads of one section are one Result). jobs and groups: the
    fio runner's Jobs and its entries grouped by them."""
    entries = data["jobs"]
    if groups is None:
        order, grouped = [], {}
        for e in entries:
            key = (e.get("jobname"), e.get("groupid", 0))
            if key not in grouped:
                order.append(key)
                grouped[key] = []
            grouped[key].append(e)
        groups = [(key, grouped[key]) for key in order]
    global_opts = data.get("global options", {})
    results = []
    for i, (key, group) in enumerate(groups):
        job_notes = list(notes)
        if jobs is not None:
            # fio ran kit's job file (descriptors, thread, invalidate=...): the
            # user's job is what they wrote
            job = jobs[i]
            global_opts = job.written("global")
            group = [{**e, "job options": job.written("job")} for e in group]
        else:
            opts = {**global_opts, **group[0].get("job options", {})}
            job, more = job_from_fio_options(opts, key[0] or "fio")
            job_notes += more
        if len(groups) > 1 and process:
            job_notes.append("ran in one fio process with other jobs: the process figures cover them all")
        total = merge_fio_entries(group)
        if job is not None and job.group_reporting:
            group = [total]
        results.append(Result.build(
            "fio", job, group, total, process=process, machine=machine, notes=job_notes,
            targets=[f.to_dict() for f in plans[i].unique_files] if plans else None,
            error=_fio_error(group, job), global_options=global_opts,
            stamp=(data.get("timestamp", int(time.time())), data.get("timestamp_ms"), data.get("time")),
            label=group[0].get("job options", {}).get("ioengine", "fio"),
            extra={"fio version": data.get("fio version")}, disk_util=data.get("disk_util")))
    return results


def _fio_error(group, job):
    bad = [e for e in group if e.get("error")]
    if not bad:
        return None
    err = bad[0]["error"]
    known = 0 < err < 4096
    hint = (setup_hint(job, err) or io_hint(job, err)) if job is not None and known else ""
    return {"kind": "io", "errno": err, "message": f"fio job {bad[0].get('jobname')}: error {err} "
                                                   f"({os.strerror(err) if known else 'unknown'}){hint}"}


def _merge_lat(parts):
    """fio's latency entries merged with kit's one merger (merge_lat): each
    back to counts, sums and bins first. Without bins (fio's json, not
    json+) percentiles cannot be merged: a lone entry keeps its own."""
    live = [p for p in parts if p.get("N")]
    if len(live) == 1 and "bins" not in live[0]:
        return {k: live[0][k] for k in ("min", "max", "mean", "stddev", "N", "percentile") if k in live[0]}
    binned = all("bins" in p for p in live)
    entry = lat_entry(merge_lat([_counts(p) for p in live]), bins=binned)
    if not binned:
        entry.pop("percentile", None)
    return entry


def _counts(entry):
    """A fio latency entry as merge_lat's counts: N, sums, extremes, bins."""
    n, mean, sd = entry["N"], entry["mean"], entry["stddev"]
    return {"n": n, "min": entry["min"], "max": entry["max"], "sum": mean * n,
            "sumsq": (n - 1) * sd * sd + n * mean * mean,
            "hist": hist.from_bins(entry["bins"]) if "bins" in entry else np.zeros(hist.PLAT_NR, dtype=np.int64)}


def _weighted(maps, weights):
    total = sum(weights)
    keys = list(maps[0]) if maps else []
    return {k: (sum(m.get(k, 0.0) * w for m, w in zip(maps, weights)) / total if total else 0.0) for k in keys}


def _stat_of(entry, prefix, dev):
    """A bw or iops statistic of a fio entry as (min, max, mean, S, n)."""
    n = entry[f"{prefix}_samples"]
    return (entry[f"{prefix}_min"], entry[f"{prefix}_max"], entry[f"{prefix}_mean"],
            entry[dev] ** 2 * (n - 1) if n > 1 else 0.0, n)


def merge_fio_entries(entries):
    """fio job entries (numjobs threads of one section) merged like fio's
    group_reporting; percentiles come from the merged json+ bins."""
    if len(entries) == 1:
        merged = json.loads(json.dumps(entries[0]))
    else:
        merged = {"jobname": entries[0].get("jobname"), "groupid": entries[0].get("groupid", 0),
                  "error": max(e.get("error", 0) for e in entries)}
        if entries[0].get("job options"):
            merged["job options"] = entries[0]["job options"]
        for d in DDIRS:
            parts = [e[d] for e in entries if d in e]
            if not parts:
                continue
            io_bytes = sum(p["io_bytes"] for p in parts)
            ios = sum(p["total_ios"] for p in parts)
            rt = max(p["runtime"] for p in parts)
            merged[d] = {"io_bytes": io_bytes, "io_kbytes": io_bytes >> 10,
                         "bw_bytes": int(io_bytes * 1000 / rt) if rt else 0,
                         "bw": int(io_bytes * 1000 / rt) // 1024 if rt else 0,
                         "iops": ios * 1000.0 / rt if rt else 0.0, "runtime": rt, "total_ios": ios,
                         "short_ios": sum(p.get("short_ios", 0) for p in parts),
                         "drop_ios": sum(p.get("drop_ios", 0) for p in parts)}
            for kind in ("slat_ns", "clat_ns", "lat_ns"):
                merged[d][kind] = _merge_lat([p[kind] for p in parts if kind in p])
            if all("bw_samples" in p and "iops_samples" in p for p in parts):
                bw, iops = (pure_sum([_stat_of(p, prefix, dev) for p in parts])
                            for prefix, dev in (("bw", "bw_dev"), ("iops", "iops_stddev")))
                merged[d].update(_stat_fields("bw", "bw_dev", bw, bw_agg(bw[2], bw[4], merged[d]["bw_bytes"])))
                merged[d].update(_stat_fields("iops", "iops_stddev", iops))
        syncs = [e["sync"] for e in entries if "sync" in e]
        if syncs:
            merged["sync"] = {"total_ios": sum(s.get("total_ios", 0) for s in syncs),
                              "lat_ns": _merge_lat([s["lat_ns"] for s in syncs if "lat_ns" in s])}
        runtimes = [e.get("job_runtime", 0) for e in entries]
        busy = sum(runtimes)
        merged["job_runtime"] = busy           # fio sums it over a group's threads
        for cpu in ("usr_cpu", "sys_cpu"):
            # fio's group: summed CPU time over summed job runtime
            merged[cpu] = sum(e.get(cpu, 0.0) * r for e, r in zip(entries, runtimes)) / busy if busy else 0.0
        for k in ("ctx", "majf", "minf"):
            merged[k] = sum(e.get(k, 0) for e in entries)
        weights = [sum(e[d]["total_ios"] for d in DDIRS if d in e) for e in entries]
        for k in ("iodepth_level", "iodepth_submit", "iodepth_complete", "latency_ns", "latency_us",
                  "latency_ms"):
            maps = [e[k] for e in entries if k in e]
            if maps:
                merged[k] = _weighted(maps, weights[:len(maps)])
    # the wall interval: fio's per-direction runtime (job_runtime is summed
    # over threads under group_reporting)
    rt_ns = max((merged[d].get("runtime", 0) for d in DDIRS if d in merged), default=0) * 1_000_000
    rt_ns = rt_ns or merged.get("job_runtime", 0) * 1_000_000
    merged.setdefault("kit", {})
    merged["kit"].update({"runtime_ns": rt_ns, "threads": len(entries)})
    return merged
