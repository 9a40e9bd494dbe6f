"""What `kit report` measures before it publishes, each written to the store:

    machine   the fingerprint and `kit doctor`'s capability matrix
    engines   the seed article's two tables (O_DIRECT, 100 % page cache),
              each engine 3 times, interleaved, after a warm-up
    sweep     the default sweep (kit/sweeps/engines.yml)
    anatomy   one traced workload per engine: block layer, threads, io_uring
    network   the seed's evolution on sockets: each server engine (threads,
              epoll, io_uring basic/multishot/SQPOLL, Asio, DPDK) against
              kit's load generator, an echo at 1 and 16 connections,
              interleaved repeats, then one run per row traced (net,
              sched) to explain it; across a veth pair, else on loopback

Sizes are chosen so the whole report takes a few minutes on a 2-core VM;
quick=True shrinks every job to a fraction of a second and measures each
once (tests): no re-runs of unstable repeats, and a run other work
disturbed is kept, saying so, not measured again after a pause.
"""
import os
import random

from . import store
from .doctor import capabilities
from .engines import variants
from .errors import KitError
from .job import Job
from .machine import fingerprint
from .progress import bar
from .api import run
from .target import check_space
from .tracers import TRACERS, status
from .seed import seed_jobs
from .sweep import Sweep, Unit, check_point, load_spec, measure_interleaved, net_options, run_sweep

SUITES = ("machine", "engines", "sweep", "anatomy", "network")
DEFAULT_SWEEP = os.path.join(os.path.dirname(__file__), "sweeps", "engines.yml")


def tracing_usable():
    s = status()
    return bool(s.get("usable")), s.get("reason")


def measure_machine(data=None, directory=None):
    fp = fingerprint(directory or os.getcwd())
    caps = capabilities(directory=directory)
    store.save_machine(fp, data, caps)
    return fp["name"]


# The engines tables: every engine measured ENGINES_REPEATS times, interleaved
# in a random order after one read through the files, an engine whose repeats
# disagree up to ENGINES_RERUNS times more; windows of 100 ms give each run a
# time series to find a trend in (10 windows in a 1 s run). Re-runs go to 6
# samples: below that the interval is the samples' min-max (stats.median_interval),
# which more samples can only widen, so fewer re-runs could never settle one.
ENGINES_REPEATS = 4      # the fewest with which a rank test (stats.apart) can call a difference
ENGINES_RERUNS = 3
ENGINES_WINDOW_MS = 100


def engines_jobs(quick=False, directory=None):
    """[(scenario, Job)] of both seed tables."""
    scale = dict(jobs_per_cpu=1, filesize="1m", runtime=0.3) if quick else \
        dict(jobs_per_cpu=2, filesize="16m", runtime=1, ramp_time=0.25)
    return [(scenario, job.replace(iopsavgtime=ENGINES_WINDOW_MS))
            for scenario, direct in (("direct", True), ("buffered", False))
            for job in seed_jobs(direct=direct, threadpool=True, directory=directory, **scale)]


def measure_engines(data=None, quick=False, directory=None, progress=None, seed=None):
    """Both seed tables, one scenario after the other, each engine measured
    repeatedly (sweep.measure_interleaved); traced by the sched tracer when
    tracing works, so the tables can show every thread's switches, not only
    the job threads'. Keys are <scenario>-<engine>-r<repeat>; one
    measurement's results share a batch (its seed), which the page takes
    whole (an earlier one with more repeats leaves its later keys behind)."""
    traced, _why = tracing_usable()
    planned = engines_jobs(quick, directory)
    machine = fingerprint(directory or os.getcwd())["name"]
    seed = random.SystemRandom().randrange(1 << 32) if seed is None else seed
    for scenario in dict(planned):
        units = [Unit(job.name, job, lambda r, s=scenario, j=job: f"{s}-{j.name}-r{r}",
                      {"scenario": scenario, "section": job.name, "batch": seed})
                 for sc, job in planned if sc == scenario]
        out = measure_interleaved(units, "engines", data, machine_name=machine,
                                  repeats=2 if quick else ENGINES_REPEATS, reruns=0 if quick else ENGINES_RERUNS,
                                  seed=seed, trace=["sched"] if traced else None, progress=progress,
                                  label=f"engines, {scenario}", resume=False, busy_retries=0 if quick else None)
        if out["interrupted"]:
            raise KeyboardInterrupt
    return len(planned)


def quick_sweep(sweep):
    """The same sweep, two values per axis, tiny jobs (kit's own files made
    small; a file or device the sweep names is left as it says)."""
    base = {**sweep.base, "runtime": 0.2}
    if not sweep.network and "filename" not in base and "filename" not in sweep.grid:
        base["size"] = "4m"
    base.pop("ramp_time", None)
    grid = {k: v[:2] for k, v in sweep.grid.items()}
    # its own name: quick points must never stand in for real ones on resume
    return Sweep(f"{sweep.name}-quick", grid, base, 2, sweep.description, sweep.trace, sweep.runner,
                 sweep.source, reruns=0, seed=sweep.seed, busy_retries=0)


def sweep_for(quick=False, spec=None):
    sweep = load_spec(spec or DEFAULT_SWEEP) if not isinstance(spec, Sweep) else spec
    return quick_sweep(sweep) if quick else sweep


def measure_sweep(data=None, quick=False, directory=None, progress=None, spec=None):
    return run_sweep(sweep_for(quick, spec), data=data, progress=progress, directory=directory)


def anatomy_jobs(quick=False, directory=None):
    """[(workload, Job)]: one direct 4 KiB random-read workload per engine,
    then the same reads from the page cache (pre-read, never invalidated)
    for every engine that reads a file: no device, only the engine's own
    cost per I/O, where the engines differ most."""
    common = dict(rw="randread", bs="4k", iodepth=8, direct=True, time_based=True, name="anatomy",
                  size="4m" if quick else "64m", runtime=0.3 if quick else 2)
    if directory:
        common["directory"] = directory
    direct = [(name, Job(**common, **extra)) for name, extra in variants()]
    cached = {**common, "direct": False, "pre_read": True, "invalidate": False, "runtime": 0.3 if quick else 1}
    return direct + [(name, Job(**cached, **extra)) for name, extra in variants() if extra["ioengine"] != "null"]


def measure_anatomy(data=None, quick=False, directory=None, progress=None):
    """Each anatomy workload (direct, then from the page cache), every tracer on."""
    traced, why = tracing_usable()
    jobs = anatomy_jobs(quick, directory)
    with bar(total=len(jobs), label="anatomy", unit="job", enabled=progress) as b:
        for i, (name, job) in enumerate(jobs, 1):
            try:
                # with the last 2,000 block requests one by one, for the latency-over-time view
                result = run(job, progress=False, trace=list(TRACERS) + ["records=2000"] if traced else None)
            except KitError as e:
                # a tracer that cannot attach must not cost the measurement
                result = run(job, progress=False)
                result.data["notes"].append(f"untraced: {e}")
            if not traced:
                result.data["notes"].append(f"untraced: {why}")
            scenario = "direct" if job.direct else "buffered"
            store.save(result, "anatomy", name if job.direct else f"buffered-{name}",
                       tags={"workload": name, "scenario": scenario}, data=data)
            _stop_if_interrupted(result)
            b.update_to(i)
    return len(jobs)


# The network suite: the seed's evolution, one row per server engine and the
# features that change it, each an echo of 64-byte messages (ping-pong: one
# request in flight per connection) at each connection count. DPDK serves
# UDP only: its row is a UDP echo, beside epoll's UDP echo through the
# kernel's stack, what DPDK takes the kernel out of.
NETWORK_ROWS = (("threads", "tcp"), ("epoll", "tcp"), ("io_uring", "tcp"), ("io_uring+multishot", "tcp"),
                ("io_uring+sqthread_poll", "tcp"), ("asio", "tcp"), ("asio+io_uring", "tcp"), ("epoll", "udp"),
                ("dpdk", "udp"))
NETWORK_QUICK_ROWS = (("threads", "tcp"), ("epoll", "tcp"), ("io_uring", "tcp"))
NETWORK_CONNECTIONS = (1, 16)
NETWORK_QUICK_CONNECTIONS = (1, 8)
NETWORK_REPEATS = 4      # as ENGINES_REPEATS
NETWORK_RERUNS = 3


def network_place():
    """("veth", None) where kit can make its namespaces and veth pair here
    (tried, not assumed), else ("loopback", why not)."""
    from .errors import KitError
    from .net.netns import Network, missing_privileges, missing_tools
    why = missing_privileges() or missing_tools()
    if why is None:
        try:
            with Network("veth"):
                pass
        except KitError as e:
            why = str(e)
    return ("veth", None) if why is None else ("loopback", why)


def network_jobs(quick=False, network="veth"):
    """([(row, NetJob)], {row: why it cannot run here}): each row of the
    network suite at each connection count, those that can run here (its
    programs build; an engine that takes over its interface needs veth)."""
    from .errors import KitError
    from .net.job import NetJob
    common = dict(workload="echo", bs=64, iodepth=1, network=network, runtime=0.2 if quick else 1,
                  ramp_time=0.05 if quick else 0.25)
    jobs, skipped = [], {}
    for server, protocol in NETWORK_QUICK_ROWS if quick else NETWORK_ROWS:
        row = f"{server} {protocol}"
        try:
            job = NetJob(**net_options({**common, "server": server, "protocol": protocol}))
            check_point(job)
        except KitError as e:
            skipped[row] = str(e)
            continue
        jobs += [(row, job.replace(connections=c)) for c in (NETWORK_QUICK_CONNECTIONS if quick
                                                              else NETWORK_CONNECTIONS)]
    return jobs, skipped


def measure_network(data=None, quick=False, progress=None, seed=None):
    """The network suite: every row at every connection count, measured
    repeatedly, interleaved (sweep.measure_interleaved); keys
    <server>-<protocol>-c<connections>-r<repeat>, one measurement's results
    sharing a batch (its seed). Where kit cannot make namespaces it measures
    on loopback, and the results' tags say why (network_why), as they name
    the rows that could not run here (not_measured)."""
    network, why = network_place()
    planned, skipped = network_jobs(quick, network)
    machine = fingerprint(os.getcwd())["name"]
    seed = random.SystemRandom().randrange(1 << 32) if seed is None else seed
    units = [Unit(f"{row}, {job.connections} connections", job,
                  lambda r, row=row, job=job: store.safe_name(f"{row.replace(' ', '-')}-c{job.connections}-r{r}"),
                  {"row": row, "connections": job.connections, "network": network, "network_why": why,
                   "not_measured": skipped, "batch": seed})
             for row, job in planned]
    if not units:
        return 0
    traced, untraced = tracing_usable()
    if not traced:
        for u in units:
            u.tags["untraced"] = untraced
    out = measure_interleaved(units, "network", data, machine_name=machine,
                              repeats=2 if quick else NETWORK_REPEATS, reruns=0 if quick else NETWORK_RERUNS,
                              seed=seed, progress=progress, label="network", resume=False,
                              busy_retries=0 if quick else None)
    if out["interrupted"]:
        raise KeyboardInterrupt
    if traced:
        measure_network_traced(units, data, quick, progress)
    return len(units)


# Tracing a network run costs it requests/s (measured here: a 1 s epoll echo
# at 16 connections lost 15-40 % with net,sched, and ~1.4 s to attach), so
# the rows' repeats are untraced and each row gets one traced run of its own
# (at the most connections only with quick=True), stored beside them and
# tagged "explains": the page explains a row with it, never counts it.
NETWORK_TRACERS = ("net", "sched")


def measure_network_traced(units, data=None, quick=False, progress=None):
    """One traced run per network-suite unit, keyed
    <server>-<protocol>-c<connections>-traced; a run the tracers cannot
    attach to is stored untraced, saying why."""
    from .api import run_net
    top = max(u.job.connections for u in units)
    chosen = [u for u in units if not quick or u.job.connections == top]
    with bar(total=len(chosen), label="network, traced", unit="run", enabled=progress) as b:
        for i, u in enumerate(chosen, 1):
            try:
                result = run_net(u.job, progress=False, trace=list(NETWORK_TRACERS))
            except KitError as e:
                # as the anatomy suite does: stored untraced, the page says why this row is not explained
                result = run_net(u.job, progress=False)
                result.data["notes"].append(f"untraced: {e}")
            key = store.safe_name(f"{u.tags['row'].replace(' ', '-')}-c{u.job.connections}-traced")
            store.save(result, "network", key, tags={**u.tags, "explains": True}, data=data)
            _stop_if_interrupted(result)
            b.update_to(i)


def _stop_if_interrupted(result):
    """Ctrl-C stopped this run (it is stored, marked interrupted): stop the
    suite too, as Ctrl-C stops everything else."""
    if result.data.get("interrupted"):
        raise KeyboardInterrupt


def check(quick=False, suites=SUITES, directory=None, sweep=None):
    """Every job of the suites asked for, checked together before the first
    runs or anything is stored: options, targets, free space, descriptors."""
    jobs = []
    if "engines" in suites:
        jobs += [(job, "kit") for _scenario, job in engines_jobs(quick, directory)]
    if "anatomy" in suites:
        jobs += [(job, "kit") for _name, job in anatomy_jobs(quick, directory)]
    if "sweep" in suites:
        chosen = sweep_for(quick, sweep)
        jobs += [(job, chosen.runner) for _point, job in chosen.jobs(directory)]
    plans = [check_point(job, runner) for job, runner in jobs]
    check_space([p for p in plans if p is not None])


def measure(data=None, quick=False, suites=SUITES, directory=None, progress=None, sweep=None):
    """Runs the suites asked for, in order; returns the machine's name."""
    check(quick, suites, directory, sweep)
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
        elif suite == "network":
            measure_network(data, quick, progress)
    return name
