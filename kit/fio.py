"""fio interop: kit Jobs as fio options and job files, fio job files as kit
Jobs, fio as a runner whose output lands in kit's schema, and fio JSON files
read back as kit Results.

The Job is the source of truth: a job file is parsed into Jobs (an option kit
does not know is never dropped silently), and runner="fio" runs fio on a job
file generated from those Jobs, on the files kit planned, prepared and
guarded, so both runners measure the same bytes under the same safety rules.
"""
import ast
import json
import math
import operator
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import List

from . import __version__
from . import hist
from . import target as targets
from .errors import OptionError, RunError
from .job import OPTIONS, Job, job_label, parse_size
from .results import DDIRS, SCHEMA, Result

# kit engine -> fio ioengine (threadpool has no twin in fio)
FIO_ENGINES = {"sync": "sync", "psync": "psync", "posixaio": "posixaio", "libaio": "libaio",
               "io_uring": "io_uring"}

# fio options kit reads from job files -> kit option (same name unless shown)
FIO_TO_KIT = {name: name for name in OPTIONS if name not in ("allow_destructive", "threads")}
FIO_TO_KIT.update({
    "readwrite": "rw", "blocksize": "bs", "timeout": "runtime", "iodepth_batch": "iodepth_batch_submit",
    "iodepth_batch_complete": "iodepth_batch_complete_min", "rwmixwrite": "rwmixwrite",
    "invalidate_cache": "invalidate",
    # kit's own, accepted in job files for jobs only kit runs
    "threads": "threads", "allow_destructive": "allow_destructive",
})
# accepted because kit already behaves this way
NO_EFFECT = {"thread": "kit always runs jobs as threads", "description": "",
             "randrepeat": "kit's offsets are always repeatable", "kb_base": "sizes are powers of 1024",
             "clocksource": "kit picks its clock (the result says which)"}
ORDERING = ("stonewall", "wait_for_previous", "new_group")
# fio's set-type options: written as a bare word when on, left out when off
FLAG_OPTIONS = {"time_based", "fixedbufs", "registerfiles", "sqthread_poll", "hipri", "group_reporting",
                "norandommap"}
KIT_ONLY = {"allow_destructive", "threads"}

def env_defaults():
    """Defaults for the KIT_* variables the shipped job files use, scaled to
    this machine (plain fio needs them set; kit fills them in)."""
    ncpus = os.cpu_count() or 1
    return {"KIT_NUMJOBS": str(4 * ncpus), "KIT_FILESIZE": "16m", "KIT_RUNTIME": "10"}


# ---- Job -> fio --------------------------------------------------------------

def _size_text(n):
    for suffix, scale in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n and n % scale == 0:
            return f"{n // scale}{suffix}"
    return str(n)


def _time_text(seconds):
    if float(seconds).is_integer():
        return str(int(seconds))
    ms = seconds * 1000
    return f"{int(ms)}ms" if float(ms).is_integer() else f"{int(round(seconds * 1e6))}us"


def fio_options(job, include=None):
    """The job as fio options (name -> value text, None for a bare flag):
    every option set on the job, plus what keeps fio's behaviour kit's."""
    if job.ioengine not in FIO_ENGINES:
        raise OptionError("ioengine", f"{job.ioengine} has no fio twin: fio cannot run it (use runner=kit)")
    given = job.given()
    out = {"ioengine": FIO_ENGINES[job.ioengine], "rw": job.rw, "bs": _size_text(job.bs)}
    names = [n for n in OPTIONS if n in given or n in (include or ())]
    for name in names:
        if name in ("name", "ioengine", "rw", "bs") or name in KIT_ONLY:
            continue
        value = getattr(job, name)
        if name in FLAG_OPTIONS:
            if value:
                out[name] = None
            continue
        if value is None or value == "":
            continue
        if name in ("size", "filesize"):
            text = _size_text(value)
        elif name in ("runtime", "ramp_time"):
            text = _time_text(value)
        elif isinstance(value, bool):
            text = "1" if value else "0"
        else:
            text = str(value)
        out["iodepth_batch" if name == "iodepth_batch_submit" else name] = text
    # kit's behaviour, said out loud so fio does the same
    out["thread"] = None
    out.setdefault("invalidate", "1" if job.invalidate else "0")
    if job.sqthread_poll:
        out["registerfiles"] = None
    return out


def fio_section(job, name=None, extra=()):
    lines = [f"[{name or job.name}]"]
    for key, value in fio_options(job).items():
        lines.append(key if value is None else f"{key}={value}")
    lines.extend(extra)
    return "\n".join(lines) + "\n"


def to_fio_file(jobs, groups=None):
    """A fio job file, one section per job. groups: lists of job indexes that
    run together (default: one after another); each later group starts with
    stonewall, as in fio."""
    jobs = [jobs] if isinstance(jobs, Job) else list(jobs)
    if groups is None:
        groups = [[i] for i in range(len(jobs))]
    starts = {g[0] for g in groups[1:]}
    text = [f"; written by kit {__version__}\n"]
    for i, job in enumerate(jobs):
        text.append(fio_section(job, extra=["stonewall"] if i in starts else ()))
    return "\n".join(text)


# ---- fio job files -> Jobs ---------------------------------------------------

@dataclass
class JobFile:
    path: str
    groups: List[List[Job]]                 # run one group after another
    warnings: List[str] = field(default_factory=list)
    group_ids: List[int] = field(default_factory=list)   # fio's reporting group per job

    @property
    def jobs(self):
        return [j for g in self.groups for j in g]


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
        ast.USub: operator.neg, ast.UAdd: operator.pos}
_SUFFIXED = re.compile(r"(\d+)\s*([kmgtp])(?:i?b)?\b", re.I)


def _arith(text, where):
    """fio's arithmetic in parentheses: + - * / % ** on numbers (k/m/g allowed)."""
    expr = _SUFFIXED.sub(lambda m: str(parse_size("value", m.group(0))), text)

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        raise ValueError
    try:
        value = ev(ast.parse(expr, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError):
        raise OptionError(None, f"{where}: cannot evaluate {text!r}") from None
    return str(int(value)) if float(value).is_integer() else str(value)


def _substitute(value, env, where):
    def var(m):
        name = m.group(1) or m.group(2)
        if name in env:
            return env[name]
        raise OptionError(None, f"{where}: ${{{name}}} is not set in the environment")
    keywords = {"ncpus": str(os.cpu_count() or 1), "pagesize": str(os.sysconf("SC_PAGE_SIZE")),
                "mb_memory": str(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20)}
    value = re.sub(r"\$\{(\w+)\}", var, value)
    value = re.sub(r"\$(ncpus|pagesize|mb_memory)\b", lambda m: keywords[m.group(1)], value)
    if value.startswith("(") and value.endswith(")"):
        value = _arith(value[1:-1], where)
    return value


def _sections(path, seen=None):
    """(section, [(key, value or None, line-ref)]) in order, includes followed."""
    seen = seen or set()
    real = os.path.realpath(path)
    if real in seen:
        raise OptionError(None, f"{path}: includes itself")
    seen.add(real)
    try:
        with open(path) as fh:
            lines = fh.read().splitlines()
    except OSError as e:
        raise OptionError(None, f"{path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise OptionError(None, f"{path}: not a text file") from None
    out, current = [], None
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        where = f"{os.path.basename(path)}:{number}"
        if not line or line[0] in "#;":
            continue
        if line.startswith("include "):
            inc = os.path.join(os.path.dirname(path), line.split(None, 1)[1].strip())
            out.extend(_sections(inc, seen))
            current = out[-1] if out else None
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise OptionError(None, f"{where}: malformed section header {line!r}")
            current = (line[1:-1].strip(), [])
            out.append(current)
            continue
        if current is None:
            raise OptionError(None, f"{where}: option {line!r} before any [section]")
        key, sep, value = line.partition("=")
        current[1].append((key.strip(), value.strip() if sep else None, where))
    return out


def read_job_file(path, env=None, strict=False):
    """Parses a fio job file into groups of Jobs. Unknown options give one
    warning each (an OptionError with strict=True)."""
    env = {**env_defaults(), **os.environ, **(env or {})}
    sections = _sections(path)
    if not sections:
        raise OptionError(None, f"{path}: no job sections")
    defaults, groups, warnings, group_ids = {}, [], [], []
    group_id = 0
    for name, options in sections:
        values, ordering = {}, set()
        for key, value, where in options:
            key = key.replace("-", "_")
            text = "1" if value is None else _substitute(value, env, where)
            if key in ORDERING:
                if text not in ("0",):
                    ordering.add(key)
                continue
            if key in NO_EFFECT:
                if key == "randrepeat" and text in ("0", "false"):
                    _unsupported(warnings, strict, where, key, "kit's offsets are always repeatable")
                if key == "kb_base" and text != "1024":
                    raise OptionError(key, f"{where}: kit supports only kb_base=1024")
                continue
            if key not in FIO_TO_KIT:
                _unsupported(warnings, strict, where, key, "not supported by kit")
                continue
            if key == "name":
                values["name"] = text
                continue
            if key == "verify" and text == "crc32c-intel":
                text = "crc32c"
            values[FIO_TO_KIT[key]] = text
        if name == "global":
            defaults.update(values)
            continue
        merged = {"name": name, **defaults, **values}
        try:
            job = Job.from_options(merged)
        except OptionError as e:
            raise OptionError(e.option, f"{e.problem} (in [{name}] of {os.path.basename(path)})") from None
        if not groups or "stonewall" in ordering or "wait_for_previous" in ordering:
            if groups:
                group_id += 1
            groups.append([job])
        else:
            if "new_group" in ordering:
                group_id += 1
            groups[-1].append(job)
        group_ids.append(group_id)
    if not groups:
        raise OptionError(None, f"{path}: only [global] sections, no jobs")
    return JobFile(path, groups, warnings, group_ids)


def _unsupported(warnings, strict, where, key, why):
    message = f"{where}: fio option '{key}' is {why}; ignored"
    if strict:
        raise OptionError(key, f"{where}: fio option is {why} (--strict)")
    warnings.append(message)


# ---- fio as a runner -------------------------------------------------------------

def fio_binary():
    path = shutil.which("fio")
    if not path:
        raise RunError("runner=fio: fio is not installed (Debian: apt-get install fio)")
    return path


def run_fio(job, progress=None, machine=True):
    return run_fio_together([job], progress=progress, machine=machine)[0]


def run_fio_together(jobs, progress=None, machine=True):
    """Runs jobs at the same time in one fio process, on the files kit plans
    and prepares (same names, same safety checks, same pre-fill)."""
    fio = fio_binary()
    for job in jobs:
        fio_options(job)        # refuses what fio cannot run, before any write
        if job.verify and not job.writes:
            raise OptionError("verify", "fio checks its own format, not kit's pattern; "
                                        "verify reads with runner=kit")
    plans = [targets.plan(job) for job in jobs]
    for plan in plans:
        targets.prepare(plan, progress=progress)
        if plan.job.writes:
            targets.mark_dirty(plan)    # fio writes its own bytes, not kit's pattern
    sections = []
    for job, plan in zip(jobs, plans):
        placed = job
        if plan.directory and not job.filename:
            placed = job.replace(directory=plan.directory)
        sections.append(fio_section(placed))
    with tempfile.TemporaryDirectory(prefix="kit-fio-") as tmp:
        jobfile = os.path.join(tmp, "job.fio")
        output = os.path.join(tmp, "out.json")
        with open(jobfile, "w") as fh:
            fh.write("\n".join(sections))
        with open(os.path.join(tmp, "stderr"), "w+") as err:
            start = time.monotonic_ns()
            proc = subprocess.Popen([fio, "--output-format=json+", f"--output={output}", jobfile],
                                    stdout=subprocess.DEVNULL, stderr=err)
            try:
                _pid, status, usage = os.wait4(proc.pid, 0)
            except KeyboardInterrupt:
                proc.terminate()
                proc.wait()
                raise
            wall = time.monotonic_ns() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            stderr = err.read().strip()
        try:
            with open(output) as fh:
                text = fh.read()
        except OSError:
            text = ""
    if proc.returncode != 0 or not text.strip():
        first = next((l for l in stderr.splitlines() if l.strip()), f"exit status {proc.returncode}")
        raise RunError(f"fio failed: {first}")
    data = parse_fio_json(text, source="fio output")
    process = _process_from_wait4(usage, wall)
    results = results_from_fio(data, jobs=jobs, process=process, plans=plans,
                               machine=_machine(plans[0]) if machine else None,
                               notes=[f"fio stderr: {l}" for l in stderr.splitlines() if l.strip()][:5])
    return results


def _machine(plan):
    from .runner import _fingerprint
    return _fingerprint(plan)


def _process_from_wait4(ru, wall_ns):
    """The fio process as a whole (all its threads, set-up included)."""
    usr, sys_ = ru.ru_utime * 1e9, ru.ru_stime * 1e9
    return {"usr_cpu": 100.0 * usr / wall_ns if wall_ns else 0.0,
            "sys_cpu": 100.0 * sys_ / wall_ns if wall_ns else 0.0,
            "ctx": int(ru.ru_nvcsw + ru.ru_nivcsw), "ctx_voluntary": int(ru.ru_nvcsw),
            "ctx_involuntary": int(ru.ru_nivcsw), "majf": int(ru.ru_majflt), "minf": int(ru.ru_minflt),
            "usr_ns": int(usr), "sys_ns": int(sys_), "wall_ns": int(wall_ns), "threads": None,
            "helper_threads": {}, "scope": "the fio process, from wait4 (set-up and layout included)"}


# ---- fio JSON -> Results -----------------------------------------------------------

def parse_fio_json(text, source="input"):
    """fio's JSON, after any lines fio printed before it. One clear line if not."""
    start = text.find("\n{") + 1 if not text.lstrip().startswith("{") else text.index("{")
    if not text.strip() or (start == 0 and not text.lstrip().startswith("{")):
        raise OptionError(None, f"{source}: not fio JSON output (no JSON object found)")
    try:
        data = json.loads(text[start:])
    except json.JSONDecodeError as e:
        raise OptionError(None, f"{source}: broken fio JSON ({e.msg} at line {e.lineno} column {e.colno})") \
            from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list) or not data["jobs"]:
        raise OptionError(None, f"{source}: JSON without fio's 'jobs' list")
    return data


def from_fio_json(path):
    """fio 3.x json / json+ output (file path or text) -> list of kit Results,
    one per fio job (sections; numjobs threads of one section are one Result)."""
    if isinstance(path, (str, os.PathLike)) and os.path.exists(path):
        try:
            with open(path) as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as e:
            raise OptionError(None, f"{path}: cannot read ({e})") from None
        source = str(path)
    else:
        text, source = str(path), "input"
    return results_from_fio(parse_fio_json(text, source))


def import_fio(path, machine=None, data=None):
    """fio output into the store (suite "import"), as results of `machine`
    (default: this one; another name files them under that machine)."""
    from . import store
    from .machine import fingerprint, machine_name
    results = from_fio_json(path)
    here = machine_name()
    fp = fingerprint() if machine in (None, here) else {
        "schema": "kit-machine/1", "name": store.safe_name(machine), "hostname": None,
        "imported": True, "note": f"created by kit import of {os.path.basename(str(path))}"}
    if store.load_machine(fp["name"], data).get("fingerprint") is None:
        store.save_machine(fp, data)
    for i, r in enumerate(results):
        r.data["machine"] = fp
        key = f"{r.data.get('timestamp', 0)}-{r.total.get('jobname') or 'fio'}-{i}"
        store.save(r, "import", key, tags={"source": os.path.basename(str(path))}, data=data)
    return results


def _job_from_fio_options(options, name):
    """Best effort: a kit Job from fio's 'job options' strings; what kit does
    not know is listed in the notes."""
    values, notes = {}, []
    for key, value in options.items():
        key = key.replace("-", "_")
        if key in ORDERING or key in NO_EFFECT:
            continue
        if key in FIO_TO_KIT and key not in ("name",):
            values[FIO_TO_KIT[key]] = "1" if value in (None, "") else value
        elif key != "name":
            notes.append(f"fio option {key}={value} has no kit equivalent")
    try:
        return Job.from_options({"name": name, **values}), notes
    except OptionError as e:
        return None, notes + [f"cannot express the fio job as a kit Job: {e}"]


def results_from_fio(data, jobs=None, process=None, plans=None, machine=None, notes=()):
    entries = data["jobs"]
    order, grouped = [], {}
    for e in entries:
        key = (e.get("jobname"), e.get("groupid", 0))
        if key not in grouped:
            order.append(key)
            grouped[key] = []
        grouped[key].append(e)
    global_opts = data.get("global options", {})
    results = []
    for i, key in enumerate(order):
        group = grouped[key]
        job_notes = list(notes)
        if jobs is not None:
            job = jobs[i]
        else:
            opts = {**global_opts, **group[0].get("job options", {})}
            job, more = _job_from_fio_options(opts, key[0] or "fio")
            job_notes += more
        if len(order) > 1 and process:
            job_notes.append("ran in one fio process with other jobs: the process figures cover them all")
        total = merge_fio_entries(group)
        jd = job.to_dict() if job else None
        result = {
            "kit version": __version__, "schema": SCHEMA, "runner": "fio",
            "fio version": data.get("fio version"),
            "timestamp": data.get("timestamp", int(time.time())),
            "timestamp_ms": data.get("timestamp_ms"), "time": data.get("time"),
            "global options": global_opts, "jobs": group, "total": total, "process": process,
            "job": jd, "label": job_label(jd) if jd else group[0].get("job options", {}).get("ioengine", "fio"),
            "source_hash": None,
            "targets": [f.to_dict() for f in plans[i].unique_files] if plans else None,
            "machine": machine, "traced": False, "trace": None,
            "interrupted": False, "error": _fio_error(group), "notes": job_notes,
        }
        results.append(Result(result))
    return results


def _fio_error(group):
    bad = [e for e in group if e.get("error")]
    if not bad:
        return None
    err = bad[0]["error"]
    return {"kind": "io", "errno": err, "message": f"fio job {bad[0].get('jobname')}: error {err} "
                                                   f"({os.strerror(err) if err > 0 else 'unknown'})"}


def _merge_lat(parts):
    live = [p for p in parts if p.get("N")]
    if not live:
        return {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}
    n = sum(p["N"] for p in live)
    mean = sum(p["mean"] * p["N"] for p in live) / n
    # sum of squares from each part's mean and sample stddev
    sumsq = sum((p["N"] - 1) * p["stddev"] ** 2 + p["N"] * p["mean"] ** 2 for p in live)
    var = (sumsq - n * mean * mean) / (n - 1) if n > 1 else 0.0
    out = {"min": min(p["min"] for p in live), "max": max(p["max"] for p in live), "mean": mean,
           "stddev": math.sqrt(max(var, 0.0)), "N": n}
    if all("bins" in p for p in live):
        counts = sum(hist.from_bins(p["bins"]) for p in live)
        out["percentile"] = hist.percentiles(counts, n)
        out["bins"] = hist.to_bins(counts)
    elif len(live) == 1 and "percentile" in live[0]:
        out["percentile"] = live[0]["percentile"]
    return out


def _weighted(maps, weights):
    total = sum(weights)
    keys = list(maps[0]) if maps else []
    return {k: (sum(m.get(k, 0.0) * w for m, w in zip(maps, weights)) / total if total else 0.0) for k in keys}


def merge_fio_entries(entries):
    """fio job entries (numjobs threads of one section) merged like fio's
    group_reporting; percentiles come from the merged json+ bins."""
    if len(entries) == 1:
        merged = json.loads(json.dumps(entries[0]))
    else:
        merged = {"jobname": entries[0].get("jobname"), "groupid": entries[0].get("groupid", 0),
                  "error": max(e.get("error", 0) for e in entries), "job options": entries[0].get("job options", {})}
        runtime_ms = max(e.get("job_runtime", 0) for e in entries)
        for d in DDIRS + ("trim",):
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
        syncs = [e["sync"] for e in entries if "sync" in e]
        if syncs:
            merged["sync"] = {"total_ios": sum(s.get("total_ios", 0) for s in syncs),
                              "lat_ns": _merge_lat([s["lat_ns"] for s in syncs if "lat_ns" in s])}
        runtimes = [e.get("job_runtime", 0) for e in entries]
        busy = sum(runtimes)
        merged["job_runtime"] = runtime_ms
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


# ---- side by side ------------------------------------------------------------------

COMPARE_ROWS = (
    ("IOPS", lambda r: r.iops),
    ("bw (bytes/s)", lambda r: r.bw_bytes),
    ("clat p50 (ns)", lambda r: _pct(r, 50.0)),
    ("clat p99 (ns)", lambda r: _pct(r, 99.0)),
    ("clat p99.9 (ns)", lambda r: _pct(r, 99.9)),
    ("usr_cpu (%)", lambda r: r.total["usr_cpu"]),
    ("sys_cpu (%)", lambda r: r.total["sys_cpu"]),
    ("ctx, job threads", lambda r: r.total["ctx"]),
    ("ctx, whole process", lambda r: (r.data.get("process") or {}).get("ctx")),
)


def _pct(result, p):
    """The merged clat percentile over both directions' dominant one."""
    d = "read" if result.total["read"]["total_ios"] >= result.total["write"]["total_ios"] else "write"
    return result.total[d]["clat_ns"].get("percentile", {}).get(hist.percentile_key(p))


def compare(kit_result, fio_result):
    """Rows (metric, kit, fio, kit/fio)."""
    rows = []
    for name, get in COMPARE_ROWS:
        a, b = get(kit_result), get(fio_result)
        ratio = a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
        rows.append((name, a, b, ratio))
    return rows


def format_compare(rows, kit_result):
    lines = [f"{kit_result.data['label']} rw={kit_result.data['job']['rw']}: kit vs fio on the same files"]
    lines.append(f"  {'':20s} {'kit':>14s} {'fio':>14s} {'kit/fio':>8s}")
    for name, a, b, ratio in rows:
        fa = "-" if a is None else f"{a:,.1f}" if isinstance(a, float) else f"{a:,}"
        fb = "-" if b is None else f"{b:,.1f}" if isinstance(b, float) else f"{b:,}"
        lines.append(f"  {name:20s} {fa:>14s} {fb:>14s} {('-' if ratio is None else f'{ratio:.2f}'):>8s}")
    return "\n".join(lines)

