"""Sweeps: a YAML grid of job options, run into the store.

    name: qd                      # the store's suite is sweep-<name>
    description: queue depth against engines
    base: {rw: randread, bs: 4k, size: 256m, runtime: 2, time_based: 1, direct: 1}
    grid: {ioengine: [psync, libaio, io_uring], iodepth: [1, 4, 16]}
    repeats: 3                    # each point measured this many times (CIs)
    reruns: 2                     # an unstable point gets up to this many more repeats
    budget: 10m                   # optional: stop starting runs after this long
    seed: 7                       # optional: the run order's seed (default: a new one, recorded)
    trace: [sched]                # optional tracers for every run
    runner: kit                   # or fio

A sweep whose base or grid names a `server` is a network sweep: its points
are kit.net jobs (kit net's options), run by kit's load generator against
that server engine, stored under net-sweep-<name>. A server may be written
as its label is, with the features it runs with: io_uring+multishot,
io_uring+sqthread_poll, asio+io_uring, epoll+edge (sweeps/network.yml).

    name: evolution
    base: {protocol: tcp, workload: echo, runtime: 2, ramp_time: 0.5}
    grid: {server: [threads, epoll, io_uring, io_uring+multishot], connections: [1, 16], bs: [64, 1k]}
    repeats: 3

Every point's Job is built (and so validated) before anything runs. Runs
are interleaved: round after round, every point once per round in a random
order, after one read through the points' files, so that no point always
meets a colder (or warmer) device than another. Each result is stored as it
finishes under a key made of the point and repeat, so an interrupted sweep
keeps what finished and a second run skips it.
"""
import hashlib
import itertools
import json
import math
import os
import random
import re
import time

import yaml

from . import stats, store
from .errors import OptionError
from .files import read_text_file
from .api import RUNNERS, check, run, tracer_names
from .job import COMMAND_LINE_ONLY, LOG_FILES, OPTIONS, Job, canonical_option
from .options import parse_time
from .progress import bar
from .results import Result
from .target import check_space
from .machine import fingerprint
from .tracers import TRACERS
from .net.job import NetJob

SPEC_KEYS = ("name", "description", "base", "grid", "repeats", "reruns", "budget", "seed", "trace", "runner",
             "busy_retries")
MAX_SPEC_BYTES = 1 << 20
MAX_POINTS = 10_000             # points in a grid, counted before it is expanded
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


class Sweep:
    def __init__(self, name, grid, base=None, repeats=1, description="", trace=(), runner="kit", source=None,
                 reruns=0, budget=None, seed=None, busy_retries=None):
        self.name, self.grid, self.base = name, dict(grid), dict(base or {})
        self.repeats, self.description, self.trace, self.runner = repeats, description, list(trace), runner
        self.source = source
        self.reruns, self.budget, self.seed, self.busy_retries = reruns, budget, seed, busy_retries

    @property
    def network(self):
        """Whether its points are network jobs (a server is named)."""
        return "server" in self.base or "server" in self.grid

    @property
    def suite(self):
        return f"{NET_SWEEP_PREFIX if self.network else 'sweep-'}{store.safe_name(self.name)}"

    def points(self):
        names = list(self.grid)
        return [dict(zip(names, values)) for values in itertools.product(*(self.grid[n] for n in names))]

    def jobs(self, directory=None, allow_destructive=False):
        """[(point, Job)], every one validated; an error names the point.
        allow_destructive comes from the command line, never the file."""
        out = []
        for point in self.points():
            options = {**self.base, **point}
            if self.network:
                try:
                    out.append((point, NetJob(**net_options(options))))
                except OptionError as e:
                    where = ", ".join(f"{k}={v}" for k, v in point.items())
                    raise OptionError(e.option, f"{e.problem} (sweep {self.name}, point {where})") from None
                continue
            if allow_destructive:
                options["allow_destructive"] = True
            if directory and "directory" not in options and "filename" not in options:
                options["directory"] = directory
            try:
                out.append((point, Job.from_options(options)))
            except OptionError as e:
                where = ", ".join(f"{k}={v}" for k, v in point.items())
                raise OptionError(e.option, f"{e.problem} (sweep {self.name}, point {where})") from None
        return out

    @staticmethod
    def key(point, repeat, job):
        """A stored result's key: its point and repeat as people read them,
        and a digest of the whole job, so a sweep that shares a name (and a
        store) with another never takes the other's results for its own."""
        digest = hashlib.sha256(json.dumps(job.to_dict(), sort_keys=True, default=str).encode()).hexdigest()
        return ",".join(f"{k}={v}" for k, v in point.items()) + f"-{digest[:10]}-r{repeat}"

    def to_dict(self):
        return {"name": self.name, "description": self.description, "base": self.base, "grid": self.grid,
                "repeats": self.repeats, "reruns": self.reruns, "budget": self.budget, "seed": self.seed,
                "trace": self.trace, "runner": self.runner}


NET_SWEEP_PREFIX = "net-sweep-"


def _fail(where, problem):
    raise OptionError(None, f"{where}: {problem}")


def net_options(options):
    """A network point's options with its server written as a label
    (io_uring+multishot, asio+io_uring) turned into the server and the
    options its features stand for: a flag of that engine, or a value of
    one of its choices."""
    server = options.get("server")
    if not isinstance(server, str) or "+" not in server:
        return options
    from .net.servers import engine, engine_names
    name, *features = server.split("+")
    if name not in engine_names():
        return options          # NetJob names the engines there are
    own = engine(name).OPTIONS
    out = {**options, "server": name}
    for feature in features:
        found = [o for o in own if (o.kind == "bool" and o.name == feature) or
                 (o.kind == "choice" and feature in (o.choices() if callable(o.choices) else o.choices))]
        if len(found) != 1:
            known = [o.name if o.kind == "bool" else v for o in own
                     for v in ([o.name] if o.kind == "bool" else (o.choices() if callable(o.choices) else o.choices))
                     if o.kind in ("bool", "choice") and v != o.default]
            raise OptionError("server", f"{server}: {feature!r} is not a feature of server={name} "
                                        f"({'its features: ' + ', '.join(known) if known else 'it has none'})")
        option = found[0]
        if option.name in out:
            raise OptionError(option.name, f"is given twice (and as server={server}); give it once")
        out[option.name] = True if option.kind == "bool" else feature
    return out


def load_spec(path):
    """Reads and checks a sweep file; one line naming the key on any problem."""
    where = os.path.basename(path)
    text = read_text_file(path, "sweep file", MAX_SPEC_BYTES)
    if _bracket_depth(text) > MAX_NESTING:
        raise OptionError(None, f"{where}: nested deeper than {MAX_NESTING} levels")
    try:
        # anchors and aliases first: a few hundred bytes of them expand to
        # billions of values ("billion laughs"), and a sweep needs none
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise OptionError(None, f"{where}: YAML anchors and aliases (& and *) are not allowed "
                                        "in a sweep file")
        _no_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), where)
        spec = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise OptionError(None, f"{where}: not valid YAML{at}") from None
    except RecursionError:
        raise OptionError(None, f"{where}: nested too deeply") from None
    except OptionError:
        raise
    except ValueError:                  # an integer of thousands of digits
        raise OptionError(None, f"{where}: holds a number too long to read") from None
    return from_dict(spec, where, source=path)


MAX_NESTING = 32


def _no_duplicate_keys(node, where):
    """YAML keeps the last of two equal keys without a word; a sweep file
    that says a thing twice is refused instead."""
    if isinstance(node, yaml.MappingNode):
        keys = [k.value for k, _v in node.value if isinstance(k, yaml.ScalarNode)]
        twice = next((k for k in keys if keys.count(k) > 1), None)
        if twice is not None:
            raise OptionError(None, f"{where}: {twice!r} is given twice (line {node.start_mark.line + 1})")
        for _k, v in node.value:
            _no_duplicate_keys(v, where)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _no_duplicate_keys(v, where)


def _bracket_depth(text):
    """How deep [ and { nest (quotes ignored: an overestimate is harmless).
    YAML's parser takes milliseconds per level, so a megabyte of brackets
    would take it half an hour to refuse."""
    depth = deepest = 0
    for c in text:
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(depth - 1, 0)
    return deepest


def from_dict(spec, where="sweep", source=None):
    if not isinstance(spec, dict):
        _fail(where, "must be a mapping with name and grid")
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        _fail(where, f"unknown key {unknown[0]!r} (allowed: {', '.join(SPEC_KEYS)})")
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name.strip()):
        _fail(where, "name: must be up to 100 letters, digits, '.', '_', '+' or '-' (it names the "
                     "store's folder)")
    grid = spec.get("grid")
    if not isinstance(grid, dict) or not grid:
        _fail(where, "grid: must map job options to lists of values")
    for option, values in grid.items():
        if not isinstance(option, str):
            _fail(where, f"grid: {option!r} is not an option name")
        if not isinstance(values, list) or not values:
            _fail(where, f"grid.{option}: must be a non-empty list of values")
        if any(isinstance(v, (dict, list)) or v is None for v in values):
            _fail(where, f"grid.{option}: values must be plain (numbers or strings)")
        if len(set(map(str, values))) != len(values):
            _fail(where, f"grid.{option}: lists a value twice")
    points = math.prod(len(v) for v in grid.values())
    if points > MAX_POINTS:
        _fail(where, f"grid: {points:,} points; a sweep may have at most {MAX_POINTS:,}")
    base = spec.get("base") or {}
    if not isinstance(base, dict) or not all(isinstance(k, str) for k in base):
        _fail(where, "base: must map job options to values")
    names = [canonical_option(k) for k in list(base) + list(grid)]
    refused = next((n for n in names if n in OPTIONS and not OPTIONS[n].job_file), None)
    if refused:
        _fail(where, f"{refused}: {COMMAND_LINE_ONLY.format(flag=refused.replace('_', '-'))}")
    logged = next((n for n in names if n in LOG_FILES), None)
    if logged:
        _fail(where, f"{logged}: every point and repeat would write the same log files, and kit never "
                     "replaces one; each stored result keeps its time series (kit.series) instead")
    twice = next((k for k in set(names) if names.count(k) > 1), None)
    if twice:
        _fail(where, f"{twice} is given twice (in base and grid, or under two names); give it once")
    if not isinstance(spec.get("description") or "", str):
        _fail(where, "description: must be text")
    repeats = spec.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 100:
        _fail(where, "repeats: must be an integer from 1 to 100")
    reruns = spec.get("reruns", 0)
    if isinstance(reruns, bool) or not isinstance(reruns, int) or not 0 <= reruns <= 100:
        _fail(where, "reruns: must be an integer from 0 to 100 (more repeats for a point whose repeats disagree)")
    budget = spec.get("budget")
    if budget is not None:
        try:
            budget = parse_time("budget", budget) if isinstance(budget, (int, float, str)) else None
        except OptionError:
            budget = None
        if not budget:          # None, 0 or not a time
            _fail(where, f"budget: must be a time above 0 like 90s, 10m or 1h (got {spec['budget']!r})")
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 32):
        _fail(where, "seed: must be an integer from 0 to 4294967295 (the run order's seed)")
    busy_retries = spec.get("busy_retries")
    if busy_retries is not None and (isinstance(busy_retries, bool) or not isinstance(busy_retries, int)
                                     or not 0 <= busy_retries <= 10):
        _fail(where, f"busy_retries: must be an integer from 0 to 10 (how many times a run other work disturbed is "
                     f"measured again; {BUSY_RETRIES} by default)")
    trace = spec.get("trace") or []
    if not isinstance(trace, (list, str)) or not all(isinstance(t, str) for t in trace):
        _fail(where, f"trace: must be a list of {', '.join(TRACERS)}")
    try:
        trace = tracer_names(trace) or []
    except OptionError as e:
        _fail(where, str(e))
    runner = spec.get("runner", "kit")
    if runner not in RUNNERS:
        _fail(where, f"runner: must be {' or '.join(RUNNERS)}")
    if "server" in base or "server" in grid:
        if runner != "kit":
            _fail(where, "runner: a network sweep (it names a server) runs kit's load generator: leave runner out")
        if trace and not _net_traced():
            _fail(where, "trace: network runs cannot be traced by this kit yet; leave trace out")
    sweep = Sweep(name.strip(), grid, base, repeats, spec.get("description") or "", trace, runner, source,
                  reruns=reruns, budget=budget, seed=seed, busy_retries=busy_retries)
    sweep.jobs()        # every point must be a valid job before anything runs
    return sweep


def _net_traced():
    """Whether kit.run_net takes trace= (the network tracers)."""
    import inspect
    from .api import run_net
    return "trace" in inspect.signature(run_net).parameters


def check_point(job, runner="kit"):
    """What can refuse a point here before anything runs: a storage job's
    plan (api.check), or for a network job its privileges and programs
    (kit.net.run.check; None: it has no files to plan)."""
    if isinstance(job, NetJob):
        from .net.run import check as check_net
        check_net(job)
        return None
    return check(job, runner)


BUSY_RETRIES = 2         # a run the machine disturbed is measured again up to this many times
BUSY_PAUSE_S = 1.0


def _busy(result):
    return bool(((result.data.get("process") or {}).get("machine_during_run") or {}).get("busy"))


def _others_io_bytes(result):
    """Others' bytes on the run's devices (runner._device_io), or None."""
    load = (result.data.get("process") or {}).get("machine_during_run") or {}
    return (load.get("device_io") or {}).get("others_bytes")


def _measured_quietly(job, runner="kit", trace=None, machine=True, busy_retries=None):
    """One run of a point; when other work disturbed it (the result says
    so), measured again after a pause, up to busy_retries (None:
    BUSY_RETRIES) times; the last run stands, and says how many it took."""
    for attempt in range(1 + (BUSY_RETRIES if busy_retries is None else busy_retries)):
        if attempt:
            time.sleep(BUSY_PAUSE_S)
        if isinstance(job, NetJob):
            from .api import run_net
            result = run_net(job, progress=False, machine=machine, **({"trace": trace} if trace else {}))
        else:
            result = run(job, runner=runner, progress=False, machine=machine,
                         **({"trace": trace} if trace and runner == "kit" else {}))
        if result.data.get("interrupted") or not _busy(result):
            break
    if attempt:
        result.data["notes"].append(f"measured {attempt + 1} times: the runs before this one were disturbed by "
                                    "other work on the machine" + (", and so was this one" if _busy(result) else ""))
    return result


# ---- the order runs are measured in -----------------------------------------------

def run_order(units, rounds, seed):
    """[(unit, round)]: round after round, each unit once per round, in a
    random order of its own for every round, drawn from (seed, round): no
    unit always runs first on a colder device, or always after the same
    neighbour, and the same seed gives the same order."""
    out = []
    for r in rounds:
        shuffled = list(units)
        random.Random(f"kit-run-order:{seed}:{r}").shuffle(shuffled)
        out += [(u, r) for u in shuffled]
    return out


# ---- warming up: one read through the files before the first run ------------------

WARM_MAX_BYTES = 4 << 30        # more than this is not kit's scratch files: not read through
WARM_KEEPS = ("name", "directory", "filename", "filename_format", "nrfiles", "numjobs", "size", "filesize",
              "offset", "offset_align", "offset_increment", "direct")


def warm_up_job(job, bs=None):
    """The job that reads a job's files once from start to end, as it will
    (direct when it is direct): the device's and the host's caches then
    hold what every later run reads, whichever runs first."""
    options = {k: v for k, v in job.given().items() if k in WARM_KEEPS}
    return Job(**options, ioengine="psync", rw="read", bs=bs or job.min_bs, time_based=False, loops=1)


def warm_up(jobs):
    """Reads every distinct set of files the jobs use once (1 MiB reads
    where the regions hold them), before any is measured. Returns what it
    did, for the results: {"bytes", "seconds", "direct"}, {"skipped":
    why}, or {"interrupted": True} when Ctrl-C stopped it."""
    sets, t0 = {}, time.monotonic()
    jobs = [job for job in jobs if not isinstance(job, NetJob)]
    if not jobs:
        return {}               # network jobs: no files to read, nothing said
    for job in jobs:
        reader = warm_up_job(job)
        plan = check(reader)
        if plan.diskless:
            continue
        regions = frozenset((f.path, offset, length) for files, spans in zip(plan.files, plan.regions)
                            for f, (offset, length) in zip(files, spans))
        if regions in sets or not regions:
            continue
        if min(length for _p, _o, length in regions) >= 1 << 20:
            reader = warm_up_job(job, 1 << 20)
        sets[regions] = (reader, sum(length for _p, _o, length in regions))
    total = sum(n for _r, n in sets.values())
    if not sets:
        return {"skipped": "the jobs read no files"}
    if total > WARM_MAX_BYTES:
        return {"skipped": f"{total / (1 << 30):,.1f} GiB is more than kit reads to warm up "
                           f"({WARM_MAX_BYTES >> 30} GiB)"}
    for reader, _n in sets.values():
        if run(reader, progress=False, machine=False).data.get("interrupted"):
            return {"interrupted": True}
    return {"bytes": total, "seconds": round(time.monotonic() - t0, 2),
            "direct": all(reader.direct for reader, _n in sets.values())}


def warm_up_note(warmed):
    if not warmed:
        return None
    if "skipped" in warmed:
        return f"not warmed up first: {warmed['skipped']}"
    return (f"measured after one read through its files ({warmed['bytes'] / (1 << 20):,.0f} MiB"
            f"{', direct' if warmed['direct'] else ''}, {warmed['seconds']:.1f} s) before the first run, so "
            "the device's and host's caches were alike for every run")


# ---- a result's own time series ------------------------------------------------------

def window_iops(result):
    """IOPS of the run's whole statistics windows (Result.iops_windows), a
    cut last one left out; [] when the result keeps no series (fio's
    runner, an old result)."""
    _ends, width, iops = result.iops_windows()
    if not len(width):
        return []
    return [float(x) for x in iops[width >= width.max() * 0.999]]


# ---- measuring units again and again ------------------------------------------------

class Unit:
    """What is measured repeatedly: a sweep's point, an engines table's row.
    key(repeat) -> its store key; tags: stored with each of its results."""

    def __init__(self, name, job, key, tags):
        self.name, self.job, self.key, self.tags = name, job, key, tags


def measure_interleaved(units, suite, data=None, *, machine_name, repeats, reruns=0, budget=None, seed=None,
                        runner="kit", trace=None, machine=True, progress=None, label="runs", resume=True,
                        busy_retries=None):
    """Measures each unit `repeats` times into the store, interleaved
    (run_order), after warming its files up; a unit whose repeats disagree
    (stats.unstable) is measured again, up to `reruns` more times, one
    random round at a time; with a budget (seconds) no run starts that
    would end past it. Stored results carry their place in the order, the
    seed, a trend within the run, and the warm-up. resume: a key already
    stored is not measured again (a sweep); else every run is measured and
    replaces the key's latest result (the store keeps the one replaced).
    A run other work disturbed is measured again up to busy_retries times
    (_measured_quietly). Returns counts and what was cut, re-run and still
    unstable."""
    seed = random.SystemRandom().randrange(1 << 32) if seed is None else seed
    start = time.monotonic()
    planned = run_order(range(len(units)), range(1, repeats + 1), seed)
    seen = {u: {} for u in range(len(units))}       # unit -> {repeat: iops}
    took = {}                                       # unit -> seconds its last run took
    out = {"done": 0, "skipped": 0, "cut": [], "reruns": 0, "interrupted": False, "seed": seed,
           "warm_up": None, "unstable": []}

    def stored(u, r):
        if not resume:
            return None
        path = store.result_path(machine_name, suite, units[u].key(r), data)
        if not os.path.exists(path):
            return None
        try:
            return Result.load(path)
        except ValueError:
            return None

    def fits(u):
        """Whether the run can end within the budget, by what this unit's
        last run took (else the runs so far, else its runtime); once one
        does not, the rest of the order is cut too, so the rounds that
        remain are whole but for the last."""
        if budget is None:
            return True
        if out["cut"]:
            return False
        job = units[u].job
        guess = took.get(u) or (sum(took.values()) / len(took) if took else
                                (job.runtime + job.ramp_time if getattr(job, "time_based", True) else 0))
        return time.monotonic() - start + guess <= budget

    def measure(position, u, r, b):
        """False when the measurement must stop (Ctrl-C)."""
        unit = units[u]
        if r in seen[u]:
            return True
        have = stored(u, r)
        if have is not None:
            seen[u][r] = have.iops
            out["skipped"] += 1
            return True
        if out["warm_up"] is None:
            out["warm_up"] = warm_up([x.job for x in units])
            if out["warm_up"].get("interrupted"):
                out["interrupted"] = True
                return False
        if not fits(u):
            out["cut"].append((unit.name, r))
            return True
        t0 = time.monotonic()
        try:
            result = _measured_quietly(unit.job, runner, trace, machine, busy_retries)
        except KeyboardInterrupt:       # a network run stopped before it measured anything
            out["interrupted"] = True
            return False
        took[u] = time.monotonic() - t0
        if result.data.get("interrupted"):
            out["interrupted"] = True
            return False
        note = warm_up_note(out["warm_up"])
        if note:
            result.data["notes"].append(note)
        within = stats.trend(window_iops(result))
        if within and within["trend"]:
            result.data["notes"].append(f"IOPS {'rose' if within['change_pct'] > 0 else 'fell'} "
                                        f"{abs(within['change_pct']):.0f} % from the first third of this run to "
                                        "the last: the device or the machine changed while it ran")
        tags = {**unit.tags, "repeat": r, "order": position, "order_seed": seed, "planned_repeats": repeats,
                "planned_units": len(units), "rerun": r > repeats,
                "trend_pct": within["change_pct"] if within else None, "trend": bool(within and within["trend"]),
                "busy": _busy(result), "others_io_bytes": _others_io_bytes(result), "budget_s": budget,
                "warm_up": out["warm_up"]}
        if store.save(result, suite, unit.key(r), data=data, replace=not resume, tags=tags):
            out["done"] += 1
            seen[u][r] = result.iops
        else:
            out["skipped"] += 1     # another kit stored this run meanwhile: its result stands
        b.update_to(out["done"] + out["skipped"] + len(out["cut"]))
        return True

    with bar(total=len(planned), label=label, unit="run", enabled=progress) as b:
        position = 0
        for position, (u, r) in enumerate(planned):
            if not measure(position, u, r, b):
                return out
        for extra in range(1, reruns + 1):
            if out["cut"]:
                break           # the budget is spent: no re-runs either
            r = repeats + extra
            # earlier sweeps' re-runs count too (a resumed sweep)
            for u in range(len(units)):
                if r not in seen[u]:
                    have = stored(u, r)
                    if have is not None:
                        seen[u][r] = have.iops
            shaky = [u for u in range(len(units))
                     if r not in seen[u] and stats.unstable([v for k, v in seen[u].items() if k < r])]
            for u, rr in run_order(shaky, [r], seed):
                position += 1
                before = out["done"]
                if not measure(position, u, rr, b):
                    return out
                out["reruns"] += out["done"] - before
    out["unstable"] = [units[u].name for u in range(len(units)) if stats.unstable(list(seen[u].values()))]
    return out


def remarks(outcome):
    """What a measurement added to or cut from its plan, in a line, or None."""
    said = []
    if outcome.get("reruns"):
        said.append(f"{outcome['reruns']} more run(s) of points whose repeats disagreed")
    if outcome.get("cut"):
        said.append(f"the time budget cut {len(outcome['cut'])} run(s) (first: {outcome['cut'][0][0]}, "
                    f"repeat {outcome['cut'][0][1]})")
    if outcome.get("unstable"):
        said.append(f"still unstable: {'; '.join(outcome['unstable'][:5])}"
                    + (f" and {len(outcome['unstable']) - 5} more" if len(outcome["unstable"]) > 5 else ""))
    return ", ".join(said) or None


def run_sweep(sweep, data=None, progress=None, directory=None, machine=True, allow_destructive=False):
    """Runs the points not yet in the store (measure_interleaved); returns
    counts. Ctrl-C stops after the running point, which is not stored (the
    next run redoes it)."""
    jobs = sweep.jobs(directory, allow_destructive)
    plans = []
    for point, job in jobs:         # every point is checked before the first runs or anything is written
        try:
            plans.append(check_point(job, sweep.runner))
        except OptionError as e:
            where = ", ".join(f"{k}={v}" for k, v in point.items())
            raise OptionError(e.option, f"{e.problem} (sweep {sweep.name}, point {where})") from None
    check_space([p for p in plans if p is not None])      # and all their files together fit the disk
    fp = fingerprint(directory or os.getcwd())
    store.save_machine(fp, data)
    units = [Unit(", ".join(f"{k}={v}" for k, v in point.items()), job,
                  lambda r, point=point, job=job: sweep.key(point, r, job),
                  {"sweep": sweep.name, "point": point}) for point, job in jobs]
    out = measure_interleaved(units, sweep.suite, data, machine_name=fp["name"], repeats=sweep.repeats,
                              reruns=sweep.reruns, budget=sweep.budget, seed=sweep.seed, runner=sweep.runner,
                              trace=sweep.trace, machine=machine, progress=progress, label=f"sweep {sweep.name}",
                              busy_retries=sweep.busy_retries)
    return {"machine": fp["name"], "suite": sweep.suite, "total": len(units) * sweep.repeats + out["reruns"], **out}
