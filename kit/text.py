"""Everything kit says to people, in one place: the text and HTML of a
result, tables of several side by side, kit vs fio, doctor's report, and
the small formatters (bytes, counts, times) they share. Pure functions of
plain data; tracers format their own summaries (kit.tracers)."""
import html
import os

from .errors import OptionError
from .options import DDIRS, parse_size


def printable(text):
    """Control characters a user typed (or a file held) shown escaped, so a
    line stays one line whatever it quotes."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def human_count(x):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def human_bytes(x, sep=""):
    """16MiB; sep=" " for prose and pages: 16 MiB."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(x) >= scale:
            return f"{x / scale:.1f}".removesuffix(".0") + sep + unit
    return f"{x:.0f}{sep}B"


def yes_no(value):
    """A flag as people read it (1, True, "1" -> yes); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"1": "yes", "0": "no", "true": "yes", "false": "no"}.get(value.strip().lower(), value)
    return "yes" if value else "no"


def human_ns(ns):
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g}{unit}"
    return f"{ns:.0f}ns"


def main_ddir(entry):
    """The direction that did most of a job entry's I/O (read on a tie): the
    one a single latency figure stands for."""
    return "read" if entry["read"]["total_ios"] >= entry["write"]["total_ios"] else "write"


def is_network(data):
    """Whether a result document is a network run's (kit net): its job entry
    carries both sides' figures under kit.net."""
    jobs = data.get("jobs") or [{}]
    return isinstance(jobs[0], dict) and isinstance((jobs[0].get("kit") or {}).get("net"), dict)


# a network job's options that say where it ran, not what it measured
NET_PLACE = ("hostname", "port")


def job_fields(data):
    """The job's main options: kit's job, or for fio output kit cannot
    express as a Job (trim, say) fio's own job options, as written; for a
    network run its options (server, protocol, connections, bs, the
    engine's own...) as numbers where they are, beside the storage fields
    every reader expects (no rw, one server, no files)."""
    if data.get("job"):
        return data["job"]
    opts = {**(data.get("global options") or {}), **(data["jobs"][0].get("job options") or {})}

    def number(key, default):
        try:
            return parse_size(key, opts.get(key, default))
        except OptionError:
            return opts.get(key)
    if is_network(data):
        out = {k: v for k, v in opts.items() if k not in NET_PLACE}
        for key in ("connections", "iodepth", "bs", "rate_iops", "threads", "server_threads"):
            if key in opts:
                out[key] = number(key, 0)
        return {**out, "ioengine": "net", "rw": None, "numjobs": 1, "nrfiles": 0, "direct": False}
    return {"ioengine": opts.get("ioengine", "?"), "rw": opts.get("rw", opts.get("readwrite", "?")),
            "bs": number("bs", 4096), "iodepth": number("iodepth", 1), "numjobs": number("numjobs", 1),
            "nrfiles": number("nrfiles", 1), "direct": opts.get("direct", "0") in ("1", "true")}


def net_words(data):
    """A network run's workload in a line: 'io_uring+multishot tcp echo
    connections=16 iodepth=1 bs=64B network=veth'."""
    job = job_fields(data)
    bs = human_bytes(job["bs"]) if isinstance(job.get("bs"), int) else job.get("bs")
    label = data.get("label") or f"{job.get('server')} {job.get('protocol')} {job.get('workload')}"
    rate = job.get("rate_iops")
    return printable(f"{label} connections={job.get('connections')} iodepth={job.get('iodepth')} bs={bs} "
                     f"network={job.get('network')}" + (f" rate_iops={rate:,}" if isinstance(rate, int) and rate
                                                        else ""))


def _headline(data):
    if is_network(data):
        return net_words(data)
    job = job_fields(data)
    bs = human_bytes(job["bs"]) if isinstance(job["bs"], int) else job["bs"]
    text = (f"{data.get('label') or job['ioengine']} rw={job['rw']} bs={bs} "
            f"iodepth={job['iodepth']} numjobs={job['numjobs']} nrfiles={job['nrfiles']} "
            f"direct={int(job['direct'])}")
    if data.get("runner", "kit") != "kit":
        text += f" [runner={data['runner']}]"
    return text


def _ddir_rows(entry):
    rows = []
    for d in DDIRS:
        de = entry.get(d)
        if not de or not de["total_ios"]:
            continue
        pct = de["clat_ns"].get("percentile", {})
        rows.append((d, human_count(de["total_ios"]), human_count(de["iops"]),
                     human_bytes(de["bw_bytes"]) + "/s",
                     human_ns(pct.get("50.000000")), human_ns(pct.get("99.000000")),
                     human_ns(pct.get("99.900000")), human_ns(de["lat_ns"]["mean"] or None)))
    return rows


def format_summary(data, trace_text=None):
    """A result in a few lines (kit run's table); trace_text: the trace's
    own lines (kit.tracers.format_summary)."""
    entry = data["total"]
    lines = [_headline(data)]
    header = ("", "ios", "IOPS", "bw", "clat p50", "p99", "p99.9", "lat mean")
    rows = [header] + _ddir_rows(entry)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    kit = entry.get("kit", {})
    split = (f" (voluntary {kit['ctx_voluntary']:,}, involuntary {kit['ctx_involuntary']:,})"
             if kit.get("ctx_voluntary") is not None else "")
    lines.append(f"  cpu (job threads, fio's view): usr {entry['usr_cpu']:.1f}% sys {entry['sys_cpu']:.1f}%  "
                 f"ctx {entry['ctx']:,}{split}")
    proc = data.get("process")
    if proc:
        threads = f", threads {proc['threads']}" if proc.get("threads") else ""
        if proc.get("threads_started"):
            threads += f", {proc['threads_started']:,} started by the engine"
        helpers = proc.get("helper_threads") or {}
        named = (", helpers " + ", ".join(f"{n} x{c}" for n, c in helpers.items())) if helpers else ""
        lines.append(f"  cpu (whole process):           usr {proc['usr_cpu']:.1f}% sys {proc['sys_cpu']:.1f}%  "
                     f"ctx {proc['ctx']:,} (voluntary {proc['ctx_voluntary']:,}, "
                     f"involuntary {proc['ctx_involuntary']:,}){threads}{named}")
    levels = {k: v for k, v in entry["iodepth_level"].items() if v}
    if levels:
        lines.append("  iodepth: " + ", ".join(f"{k}={v:.1f}%" for k, v in levels.items()))
    runtime = entry.get("kit", {}).get("runtime_ns", entry["job_runtime"] * 1e6) / 1e9
    lines.append(f"  runtime {runtime:.2f}s over {len(data['jobs'])} job entr{'y' if len(data['jobs']) == 1 else 'ies'}"
                 + ("  (interrupted)" if data.get("interrupted") else ""))
    targets = data.get("targets") or []
    if targets and all(t["kind"] == "none" for t in targets):
        lines.append(f"  target: none (ioengine={job_fields(data).get('ioengine')} touches no file)")
    elif len(targets) > 2:
        dirs = sorted({printable(os.path.dirname(t["path"])) for t in targets})
        sizes = sorted({t["size"] for t in targets})
        owned = all(t.get("owned") for t in targets)
        lines.append(f"  targets: {len(targets)} files in {', '.join(dirs)} "
                     f"({'/'.join(human_bytes(s) for s in sizes)} each, {'kit' if owned else 'not all kit'}'s)")
    else:
        for t in targets:
            lines.append(f"  target: {printable(t['path'])} ({human_bytes(t['size'])}, "
                         f"{'kit' if t.get('owned') else 'not kit'}'s {t['kind']})")
    if trace_text:
        lines.append("  " + trace_text.replace("\n", "\n  "))
    for note in data.get("notes") or []:
        lines.append(f"  note: {printable(note)}")
    return "\n".join(lines)


def format_html(data):
    entry = data["total"]
    esc = html.escape
    cells = "".join(f"<th>{esc(h)}</th>" for h in ("", "ios", "IOPS", "bw", "clat p50", "p99", "p99.9", "lat mean"))
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in _ddir_rows(entry))
    proc = data.get("process") or {}
    extra = (f"<p>job threads: usr {entry['usr_cpu']:.1f}% sys {entry['sys_cpu']:.1f}% ctx {entry['ctx']:,}"
             + (f"; whole process: usr {proc['usr_cpu']:.1f}% sys {proc['sys_cpu']:.1f}% ctx {proc['ctx']:,}"
                if proc else "") + "</p>")
    notes = "".join(f"<li>{esc(n)}</li>" for n in data.get("notes") or [])
    return (f"<div class='kit-result'><b>{esc(_headline(data))}</b>"
            f"<table><tr>{cells}</tr>{body}</table>{extra}"
            + (f"<ul>{notes}</ul>" if notes else "") + "</div>")


# ---- several results side by side ------------------------------------------

def comparison(results, reference="io_uring"):
    """One row per result (a job file's sections, the seed's engines): IOPS,
    context switches as fio counts them and for the whole process, and IOPS
    +/- % against the reference label (the seed's tables use io_uring)."""
    import pandas as pd
    ref = next((r for r in results if r.data.get("label") == reference), None)
    rows = []
    for r in results:
        entry = r.total
        rows.append({
            "job": (r.data.get("job") or {}).get("name") or entry.get("jobname"),
            "label": r.data.get("label"),
            "runner": r.data.get("runner", "kit"),
            "iops": r.iops,
            "bw_bytes": r.bw_bytes,
            "clat_p99_ns": entry[main_ddir(entry)]["clat_ns"].get("percentile", {}).get("99.000000"),
            "ctx": entry["ctx"],
            "process_ctx": (r.data.get("process") or {}).get("ctx"),
            f"iops_vs_{reference}_pct": (100.0 * (r.iops / ref.iops - 1.0)) if ref and ref.iops else None,
        })
    return pd.DataFrame(rows)


def format_comparison(frame):
    ref_col = next((c for c in frame.columns if c.startswith("iops_vs_")), None)
    header = ("job", "engine", "IOPS", "ctx (job threads)", "ctx (process)",
              f"IOPS vs {ref_col[8:-4]}" if ref_col else "")
    rows = [header]
    for _, r in frame.iterrows():
        pct = r[ref_col] if ref_col else None
        rows.append((str(r["job"]), str(r["label"]), f"{r['iops']:,.0f}", f"{int(r['ctx']):,}",
                     "-" if r["process_ctx"] is None or r["process_ctx"] != r["process_ctx"]
                     else f"{int(r['process_ctx']):,}",
                     "-" if pct is None or pct != pct else ("—" if abs(pct) < 1e-9 else f"{pct:+.1f}%")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


def format_compare(rows, kit_result):
    job = kit_result.data["job"]
    lines = [f"{job['name']}: {kit_result.data['label']} rw={job['rw']}: kit vs fio on the same files"]
    lines.append(f"  {'':20s} {'kit':>14s} {'fio':>14s} {'kit/fio':>8s}")
    for name, a, b, ratio in rows:
        fa = "-" if a is None else f"{a:,.1f}" if isinstance(a, float) else f"{a:,}"
        fb = "-" if b is None else f"{b:,.1f}" if isinstance(b, float) else f"{b:,}"
        lines.append(f"  {name:20s} {fa:>14s} {fb:>14s} {('-' if ratio is None else f'{ratio:.2f}'):>8s}")
        if name == "syncs" and a != b:
            lines.append(f"  note: kit issued {a:,} syncs and fio {b:,}: not the same workload. kit syncs once per fsync "
                         "writes; fio 3.33 syncs whenever the last I/O to complete was not a sync and its writes "
                         "are a multiple of fsync (again while one is in flight, and after each read)")
    return "\n".join(lines)


def _mark(ok):
    return "ok" if ok else "NO"


def format_doctor(caps):
    m = caps["machine"]
    lines = [f"kit {caps['kit']} doctor — what works on this machine", ""]
    lines.append(f"machine   {m['name']}: kernel {m['kernel']['release']} {m['kernel']['arch']}, "
                 f"{m['cpu']['count']} CPUs ({m['cpu']['model']}), virtualization {m['virtualization']}")
    t = caps.get("target") or {}
    fs, dev = t.get("filesystem") or {}, t.get("device") or {}
    where = f"{fs.get('type', '?')} on {fs.get('source', '?')}" if fs else "no filesystem"
    if dev:
        where += (f"; /dev/{dev.get('name')} ({dev.get('kind')}, {dev.get('driver')}), scheduler {dev.get('scheduler')}, "
                  f"logical block {dev.get('logical_block_size')}, io_poll {dev.get('io_poll')}")
    lines.append(f"target    {t.get('path')}: {where}")
    lines.append("")
    lines.append("engines   buffered  direct")
    for name, e in caps["engines"].items():
        library = f"  ({e['framework']})" if e.get("framework") else ""
        lines.append(f"  {name:11s} {_mark(e['buffered']):8s}  {_mark(e['direct']):6s}{library}".rstrip())
        for key in ("buffered_reason", "direct_reason"):
            if e[key]:
                lines.append(f"      {key.split('_')[0]}: {e[key]}")
    lines.append("engine features")
    for name, f in caps["features"].items():     # "io_uring.fixedbufs": the engine, then its option
        lines.append(f"  {name:23s} {_mark(f['ok'])}" + (f"  {f['reason']}" if f["reason"] else ""))
    net = caps.get("net")
    if net:         # the network half: each server engine, and kit's namespaces
        lines.append("network engines (a tiny echo run each)")
        for name, e in net["engines"].items():
            needs = f"  ({e['library']})" if e.get("library") else ""
            lines.append(f"  {name:11s} {_mark(e['ok']):8s}  {'/'.join(e['protocols'])}, {e['probe']}{needs}"
                         + (f"  {e['reason']}" if e["reason"] else ""))
        ns = net["namespaces"]
        lines.append(f"  {'namespaces':11s} {_mark(ns['ok']):8s}  network=veth" + (f": {ns['reason']}" if ns["reason"]
                                                                                    else ""))
        hp = net.get("hugepages")
        if hp:          # the 2 MiB pool dpdk's hugepages=N runs on
            said = (f"2 MiB pool: {hp['total']:,} pages, {hp['free']:,} free; "
                    + ("kit may add to it (dpdk hugepages=N)" if hp["may_add"] else hp["reason"])) if hp["ok"] \
                else hp["reason"]
            lines.append(f"  {'hugepages':11s} {_mark(hp['ok']):8s}  {said}")
        for program, y in (net.get("yardsticks") or {}).items():     # what make bench-net compares kit with
            lines.append(f"  {program:11s} {_mark(y['version']):8s}  "
                         + (f"{y['version']}, a yardstick of make bench-net" if y["version"] else y["reason"]))
    p = caps["privileges"]
    lines.append("")
    lines.append(f"privileges root={p['root']} CAP_BPF={p['cap_bpf']} CAP_PERFMON={p['cap_perfmon']} "
                 f"CAP_SYS_ADMIN={p['cap_sys_admin']}; memlock "
                 f"{'unlimited' if p['memlock_bytes'] is None else str(p['memlock_bytes'] // 1024) + ' KiB'}, "
                 f"open files {p['nofile']}, aio slots {p['aio_nr']}/{p['aio_max_nr']}, "
                 f"io_uring_disabled={p['io_uring_disabled']}")
    tr = caps["tracing"]
    points = ", ".join(k for k, ok in (tr.get("tracepoints") or {}).items() if ok) or "none"
    if tr.get("usable"):
        lines.append(f"tracing   ok: bcc {tr.get('bcc_version')}, headers {tr.get('headers')}, "
                     f"tracefs {'mounted' if tr.get('tracefs') else 'mounted when tracing'}; tracepoints: {points}")
    else:
        lines.append(f"tracing   NO: {tr.get('reason')}")
    v = m["versions"]
    lines.append(f"versions  liburing {v.get('liburing')} (headers {caps['build']['liburing_headers']}), "
                 f"libaio {v.get('libaio')}, glibc {v.get('glibc')}, fio {v.get('fio')}, bcc {v.get('bcc')}, "
                 f"python {v.get('python')}" + (f", boost {v['boost']}" if v.get("boost") else ""))
    b = caps["build"]
    lines.append(f"build     engines {b['built_hash']}" + (f" — {b['stale']}" if b["stale"] else " (current sources)"))
    return "\n".join(lines)


# ---- kit compare: two sets of results, a machine's runs -----------------------

def utc(ms, seconds=True):
    """A time in ms since the epoch as people read it, in UTC."""
    import datetime
    if not ms:
        return "unknown time"
    when = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def utc_span(start_ms, end_ms):
    """From one time to another, the day said once when it is the same."""
    start, end = utc(start_ms), utc(end_ms)
    if start == end:
        return start
    return f"{start[:-4]} to {end[11:]}" if start[:10] == end[:10] else f"{start[:-4]} to {end}"


def _median_cell(value, n, unit=None):
    if value is None or value != value:
        return "-"
    text = human_ns(value) if unit == "ns" else f"{value:,.0f}"
    return text + (f" (n={n})" if n and n > 1 else "")


def _ratio_cell(value):
    return "-" if value is None or value != value else f"{value:.2f}"


def _names(names, most=6):
    shown = ", ".join(printable(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def format_versus(rows, a, b, only_a=(), only_b=(), same=(), threshold_pct=5.0):
    """kit compare's table: one line per pair (rows: compare.compare's rows
    as dicts), both medians, B/A for IOPS and p99 clat, the verdict and why;
    a and b: what each side is; same: what both sides share as the very
    same runs (counted, not shown)."""
    same = len(same)
    lines = [f"A: {printable(a)}", f"B: {printable(b)}", ""]
    if rows:
        header = ("what", "A IOPS", "B IOPS", "B/A", "A p99", "B p99", "B/A", "verdict")
        table = [header] + [(printable(r["what"]), _median_cell(r["a_iops"], r["a_n"]),
                             _median_cell(r["b_iops"], r["b_n"]), _ratio_cell(r["iops_ratio"]),
                             _median_cell(r["a_p99_ns"], 0, "ns"), _median_cell(r["b_p99_ns"], 0, "ns"),
                             _ratio_cell(r["p99_ratio"]), f"{r['verdict']}: {r['why']}") for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
        for row in table:
            cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
            lines.append("  ".join(cells + [row[-1]]).rstrip())
        verdicts = [r["verdict"] for r in rows]
        counts = {v: verdicts.count(v) for v in ("slower", "faster", "no clear difference", "not compared")
                  if v in verdicts}
        lines += ["", "B against A: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ". A difference is "
                  f"claimed only where a rank test puts both sides' repeats apart (two-sided 5 %: 4 repeats a "
                  f"side at least; one sample each never) and by more than {threshold_pct:.0f} %."]
    else:
        lines.append("Nothing to compare: A and B have no measurement in common"
                     + (" that differs (the same runs on both sides)." if same else "."))
    if same:
        lines.append(f"{same:,} measurement{'s are' if same != 1 else ' is'} the same run{'s' * (same != 1)} "
                     "on both sides (not shown).")
    if only_a:
        lines.append(f"Only in A ({len(only_a):,}, not compared): {_names(list(only_a))}.")
    if only_b:
        lines.append(f"Only in B ({len(only_b):,}, not compared): {_names(list(only_b))}.")
    return "\n".join(lines)


def format_runs(machine, runs, where):
    """A machine's runs, oldest first (runs: compare.runs' dicts)."""
    lines = [f"{printable(machine)}: {len(runs)} run{'s' * (len(runs) != 1)} in {printable(where)}, oldest first "
             f"(compare them as {printable(machine)}@N)"]
    header = ("run", "measured", "results", "suites", "kit", "C sources", "kernel")
    table = [header]
    for r in runs:
        table.append((str(r["number"]), utc_span(r["start"], r["end"]), f"{len(r['results']):,}", ", ".join(r["suites"]),
                      ", ".join(r["kit"]), ", ".join(r["sources"]), ", ".join(printable(k) for k in r["kernels"])))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        lines.append("  " + "  ".join(c.rjust(w) if i in (0, 2) else c.ljust(w)
                                      for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    return "\n".join(lines)
