"""What `kit report` measures before it publishes, each written to the store:

    machine   the fingerprint and `kit doctor`'s capability matrix
    engines   the seed article's two tables (O_DIRECT, 100 % page cache)
    sweep     the default sweep (kit/sweeps/engines.yml)
    anatomy   one traced workload per engine: block layer, threads, io_uring

Sizes are chosen so the whole report takes a few minutes on a 2-core VM;
quick=True shrinks every job to a fraction of a second (tests).
"""
import os

from . import store
from .doctor import capabilities
from .errors import KitError
from .job import Job
from .machine import fingerprint
from .progress import bar
from .runner import run
from .seed import seed_jobs
from .sweep import Sweep, load_spec, run_sweep

SUITES = ("machine", "engines", "sweep", "anatomy")
DEFAULT_SWEEP = os.path.join(os.path.dirname(__file__), "sweeps", "engines.yml")
ANATOMY = (
    ("sync", {"ioengine": "sync"}),
    ("psync", {"ioengine": "psync"}),
    ("threadpool", {"ioengine": "threadpool"}),
    ("posixaio", {"ioengine": "posixaio"}),
    ("libaio", {"ioengine": "libaio"}),
    ("io_uring", {"ioengine": "io_uring"}),
    ("io_uring-sqpoll", {"ioengine": "io_uring", "sqthread_poll": True}),
    ("io_uring-async", {"ioengine": "io_uring", "force_async": 1}),
)


def tracing_usable():
    try:
        from .tracers import status
    except ImportError:
        return False, "kit.tracers is not available"
    s = status()
    return bool(s.get("usable")), s.get("reason")


def measure_machine(data=None, directory=None):
    fp = fingerprint(directory or os.getcwd())
    caps = capabilities(directory=directory)
    store.save_machine(fp, data, caps)
    return fp["name"]


def measure_engines(data=None, quick=False, directory=None, progress=None):
    """Both seed tables; traced by the sched tracer when tracing works, so the
    tables can show every thread's switches, not only the job threads'."""
    scale = dict(jobs_per_cpu=1, filesize="1m", runtime=0.3) if quick else \
        dict(jobs_per_cpu=2, filesize="16m", runtime=3, ramp_time=0.5)
    traced, _why = tracing_usable()
    planned = []
    for scenario, direct in (("direct", True), ("buffered", False)):
        for job in seed_jobs(direct=direct, threadpool=True, directory=directory, **scale):
            planned.append((scenario, job))
    with bar(total=len(planned), label="engines", unit="job", enabled=progress) as b:
        for i, (scenario, job) in enumerate(planned, 1):
            result = run(job, progress=False, trace=["sched"] if traced else None)
            store.save(result, "engines", f"{scenario}-{job.name}",
                       tags={"scenario": scenario, "section": job.name}, data=data)
            _stop_if_interrupted(result)
            b.update_to(i)
    return len(planned)


def quick_sweep(sweep):
    """The same sweep, two values per axis, tiny jobs."""
    base = {**sweep.base, "runtime": 0.2, "size": "4m"}
    base.pop("ramp_time", None)
    grid = {k: v[:2] for k, v in sweep.grid.items()}
    # its own name: quick points must never stand in for real ones on resume
    return Sweep(f"{sweep.name}-quick", grid, base, 2, sweep.description, sweep.trace, sweep.runner,
                 sweep.source)


def measure_sweep(data=None, quick=False, directory=None, progress=None, spec=None):
    sweep = load_spec(spec or DEFAULT_SWEEP) if not isinstance(spec, Sweep) else spec
    if quick:
        sweep = quick_sweep(sweep)
    return run_sweep(sweep, data=data, progress=progress, directory=directory)


def measure_anatomy(data=None, quick=False, directory=None, progress=None):
    """One direct 4 KiB random-read workload per engine, every tracer on."""
    traced, why = tracing_usable()
    common = dict(rw="randread", bs="4k", iodepth=8, direct=True, time_based=True, name="anatomy",
                  size="4m" if quick else "64m", runtime=0.3 if quick else 2)
    if directory:
        common["directory"] = directory
    with bar(total=len(ANATOMY), label="anatomy", unit="job", enabled=progress) as b:
        for i, (name, extra) in enumerate(ANATOMY, 1):
            job = Job(**common, **extra)
            try:
                result = run(job, progress=False, trace=["block", "sched", "uring"] if traced else None)
            except KitError as e:
                # a tracer that cannot attach must not cost the measurement
                result = run(job, progress=False)
                result.data["notes"].append(f"untraced: {e}")
            if not traced:
                result.data["notes"].append(f"untraced: {why}")
            store.save(result, "anatomy", name, tags={"workload": name}, data=data)
            _stop_if_interrupted(result)
            b.update_to(i)
    return len(ANATOMY)


def _stop_if_interrupted(result):
    """Ctrl-C stopped this run (it is stored, marked interrupted): stop the
    suite too, as Ctrl-C stops everything else."""
    if result.data.get("interrupted"):
        raise KeyboardInterrupt


def measure(data=None, quick=False, suites=SUITES, directory=None, progress=None, sweep=None):
    """Runs the suites asked for, in order; returns the machine's name."""
    name = fingerprint(directory or os.getcwd())["name"]
    for suite in suites:
        if suite == "machine":
            measure_machine(data, directory)
        elif suite == "engines":
            measure_engines(data, quick, directory, progress)
        elif suite == "sweep":
            if measure_sweep(data, quick, directory, progress, spec=sweep)["interrupted"]:
                raise KeyboardInterrupt
        elif suite == "anatomy":
            measure_anatomy(data, quick, directory, progress)
    return name
