"""Sweeps: a YAML grid of job options, run point by point into the store.

    name: qd                      # the store's suite is sweep-<name>
    description: queue depth against engines
    base: {rw: randread, bs: 4k, size: 256m, runtime: 2, time_based: 1, direct: 1}
    grid: {ioengine: [psync, libaio, io_uring], iodepth: [1, 4, 16]}
    repeats: 3                    # each point measured this many times (CIs)
    trace: [sched]                # optional tracers for every run
    runner: kit                   # or fio

Every point's Job is built (and so validated) before anything runs. Each
result is stored as it finishes under a key made of the point and repeat, so
an interrupted sweep keeps what finished and a second run skips it.
"""
import hashlib
import itertools
import json
import math
import os
import re
import time

import yaml

from . import store
from .errors import OptionError
from .files import read_text_file
from .api import RUNNERS, check, run, tracer_names
from .job import COMMAND_LINE_ONLY, LOG_FILES, OPTIONS, Job, canonical_option
from .progress import bar
from .target import check_space
from .machine import fingerprint
from .tracers import TRACERS

SPEC_KEYS = ("name", "description", "base", "grid", "repeats", "trace", "runner")
MAX_SPEC_BYTES = 1 << 20
MAX_POINTS = 10_000             # points in a grid, counted before it is expanded
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


class Sweep:
    def __init__(self, name, grid, base=None, repeats=1, description="", trace=(), runner="kit", source=None):
        self.name, self.grid, self.base = name, dict(grid), dict(base or {})
        self.repeats, self.description, self.trace, self.runner = repeats, description, list(trace), runner
        self.source = source

    @property
    def suite(self):
        return f"sweep-{store.safe_name(self.name)}"

    def points(self):
        names = list(self.grid)
        return [dict(zip(names, values)) for values in itertools.product(*(self.grid[n] for n in names))]

    def jobs(self, directory=None, allow_destructive=False):
        """[(point, Job)], every one validated; an error names the point.
        allow_destructive comes from the command line, never the file."""
        out = []
        for point in self.points():
            options = {**self.base, **point}
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
                "repeats": self.repeats, "trace": self.trace, "runner": self.runner}


def _fail(where, problem):
    raise OptionError(None, f"{where}: {problem}")


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
    sweep = Sweep(name.strip(), grid, base, repeats, spec.get("description") or "", trace, runner, source)
    sweep.jobs()        # every point must be a valid job before anything runs
    return sweep


BUSY_RETRIES = 2         # a run the machine disturbed is measured again up to this many times
BUSY_PAUSE_S = 1.0


def _busy(result):
    return bool(((result.data.get("process") or {}).get("machine_during_run") or {}).get("busy"))


def _measured_quietly(job, sweep, machine):
    """One run of a point; when other work disturbed it (the result says
    so), measured again after a pause, up to BUSY_RETRIES times; the last
    run stands, and says how many it took."""
    for attempt in range(1 + BUSY_RETRIES):
        if attempt:
            time.sleep(BUSY_PAUSE_S)
        result = run(job, runner=sweep.runner, progress=False, machine=machine,
                     **({"trace": sweep.trace} if sweep.trace and sweep.runner == "kit" else {}))
        if result.data.get("interrupted") or not _busy(result):
            break
    if attempt:
        result.data["notes"].append(f"measured {attempt + 1} times: the runs before this one were disturbed by "
                                    "other work on the machine" + (", and so was this one" if _busy(result) else ""))
    return result


def run_sweep(sweep, data=None, progress=None, directory=None, machine=True, allow_destructive=False):
    """Runs the points not yet in the store; returns counts. Ctrl-C stops
    after the running point, which is not stored (the next run redoes it)."""
    jobs = sweep.jobs(directory, allow_destructive)
    plans = []
    for point, job in jobs:         # every point is checked before the first runs or anything is written
        try:
            plans.append(check(job, sweep.runner))
        except OptionError as e:
            where = ", ".join(f"{k}={v}" for k, v in point.items())
            raise OptionError(e.option, f"{e.problem} (sweep {sweep.name}, point {where})") from None
    check_space(plans)              # and all their files together fit the disk
    fp = fingerprint(directory or os.getcwd())
    store.save_machine(fp, data)
    todo, skipped = [], 0
    for point, job in jobs:
        for r in range(1, sweep.repeats + 1):
            key = sweep.key(point, r, job)
            if store.has(fp["name"], sweep.suite, key, data):
                skipped += 1
            else:
                todo.append((point, r, key, job))
    done = 0
    interrupted = False
    with bar(total=len(todo), label=f"sweep {sweep.name}", unit="run", enabled=progress) as b:
        for point, repeat, key, job in todo:
            result = _measured_quietly(job, sweep, machine)
            if result.data.get("interrupted"):
                interrupted = True
                break
            saved = store.save(result, sweep.suite, key, data=data, replace=False,
                               tags={"sweep": sweep.name, "point": point, "repeat": repeat})
            if saved:
                done += 1
            else:
                skipped += 1    # another kit stored this point meanwhile: its result stands
            b.update_to(done)
    return {"machine": fp["name"], "suite": sweep.suite, "total": skipped + len(todo), "done": done,
            "skipped": skipped, "interrupted": interrupted}
