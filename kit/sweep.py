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
import itertools
import os

import yaml

from . import store
from .errors import OptionError
from .job import Job
from .progress import bar

SPEC_KEYS = ("name", "description", "base", "grid", "repeats", "trace", "runner")
TRACERS = ("block", "sched", "uring")


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

    def jobs(self, directory=None):
        """[(point, Job)], every one validated; an error names the point."""
        out = []
        for point in self.points():
            options = {**self.base, **point}
            if directory and "directory" not in options and "filename" not in options:
                options["directory"] = directory
            try:
                out.append((point, Job.from_options(options)))
            except OptionError as e:
                where = ", ".join(f"{k}={v}" for k, v in point.items())
                raise OptionError(e.option, f"{e.problem} (sweep {self.name}, point {where})") from None
        return out

    @staticmethod
    def key(point, repeat):
        return ",".join(f"{k}={v}" for k, v in point.items()) + f"-r{repeat}"

    def to_dict(self):
        return {"name": self.name, "description": self.description, "base": self.base, "grid": self.grid,
                "repeats": self.repeats, "trace": self.trace, "runner": self.runner}


def _fail(where, problem):
    raise OptionError(None, f"{where}: {problem}")


def load_spec(path):
    """Reads and checks a sweep file; one line naming the key on any problem."""
    where = os.path.basename(path)
    try:
        with open(path) as fh:
            spec = yaml.safe_load(fh)
    except OSError as e:
        raise OptionError(None, f"{path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise OptionError(None, f"{where}: not valid YAML{at}") from None
    return from_dict(spec, where, source=path)


def from_dict(spec, where="sweep", source=None):
    if not isinstance(spec, dict):
        _fail(where, "must be a mapping with name and grid")
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        _fail(where, f"unknown key {unknown[0]!r} (allowed: {', '.join(SPEC_KEYS)})")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        _fail(where, "name: must be a non-empty string")
    grid = spec.get("grid")
    if not isinstance(grid, dict) or not grid:
        _fail(where, "grid: must map job options to lists of values")
    for option, values in grid.items():
        if not isinstance(values, list) or not values:
            _fail(where, f"grid.{option}: must be a non-empty list of values")
        if any(isinstance(v, (dict, list)) for v in values):
            _fail(where, f"grid.{option}: values must be plain (numbers or strings)")
    base = spec.get("base") or {}
    if not isinstance(base, dict):
        _fail(where, "base: must map job options to values")
    repeats = spec.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 100:
        _fail(where, "repeats: must be an integer from 1 to 100")
    trace = spec.get("trace") or []
    if isinstance(trace, str):
        trace = [t.strip() for t in trace.split(",") if t.strip()]
    if not isinstance(trace, list) or any(t not in TRACERS for t in trace):
        _fail(where, f"trace: must be a list of {', '.join(TRACERS)}")
    runner = spec.get("runner", "kit")
    if runner not in ("kit", "fio"):
        _fail(where, "runner: must be kit or fio")
    sweep = Sweep(name.strip(), grid, base, repeats, spec.get("description") or "", trace, runner, source)
    sweep.jobs()        # every point must be a valid job before anything runs
    return sweep


def run_sweep(sweep, data=None, progress=None, directory=None, machine=True):
    """Runs the points not yet in the store; returns counts. Ctrl-C stops
    after the running point, which is not stored (the next run redoes it)."""
    from .machine import fingerprint
    from .runner import run
    fp = fingerprint(directory or os.getcwd())
    store.save_machine(fp, data)
    todo, skipped = [], 0
    for point, job in sweep.jobs(directory):
        for r in range(1, sweep.repeats + 1):
            key = sweep.key(point, r)
            if store.has(fp["name"], sweep.suite, key, data):
                skipped += 1
            else:
                todo.append((point, r, key, job))
    done = 0
    interrupted = False
    with bar(total=len(todo), label=f"sweep {sweep.name}", unit="run", enabled=progress) as b:
        for point, repeat, key, job in todo:
            result = run(job, runner=sweep.runner, progress=False, machine=machine,
                         **({"trace": sweep.trace} if sweep.trace and sweep.runner == "kit" else {}))
            if result.data.get("interrupted"):
                interrupted = True
                break
            store.save(result, sweep.suite, key, tags={"sweep": sweep.name, "point": point, "repeat": repeat},
                       data=data)
            done += 1
            b.update_to(done)
    return {"machine": fp["name"], "suite": sweep.suite, "total": skipped + len(todo), "done": done,
            "skipped": skipped, "interrupted": interrupted}
