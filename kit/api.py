"""kit.run(): one way to run jobs, by kit's engines or by fio, and one place
that checks them first.

    kit.run(kit.Job(ioengine="libaio", rw="randread"))
    kit.run(ioengine="io_uring", iodepth=16, runner="fio")

RUNNERS is the one table of runners: the command line, sweeps, suites and
doctor all come through here."""
from . import fio, runner, target
from .errors import OptionError, RunError
from .job import Job

# name -> (run jobs that go together, check one job before anything runs)
RUNNERS = {
    "kit": (runner.run_together, runner.check_job),
    "fio": (fio.run_fio_together, fio.check_job),
}


def runner_choice(name, option="runner"):
    if name not in RUNNERS:
        raise OptionError(option, f"must be {' or '.join(RUNNERS)} (got {name!r})")
    return name


def tracer_names(trace):
    """trace= as given (None, "block,sched" or a list) -> a list of known
    tracer names, or OptionError naming what is not one."""
    if not trace:
        return None
    from .tracers import split_request
    tokens = [t.strip() for t in (trace.split(",") if isinstance(trace, str) else trace)]
    split_request(tokens)           # every token a tracer or one of its views, or one line saying which not
    return tokens


def as_job(job, options=None):
    if isinstance(job, dict):
        job = Job.from_dict(job)
    if job is None:
        return Job(**(options or {}))
    return job.replace(**options) if options else job


def run(job=None, *, runner="kit", progress=None, machine=True, trace=None, **options):
    """Runs a job and returns its Result. `kit.run(job)` or
    `kit.run(ioengine="libaio", rw="randread")`; runner="fio" runs the same
    job through fio. Raises OptionError for a request that cannot be honoured,
    RunError (with .result when there is one) when the run fails here."""
    return run_together([as_job(job, options)], runner=runner, progress=progress, machine=machine,
                        trace=trace)[0]


def run_together(jobs, *, runner="kit", progress=None, machine=True, trace=None, first_thread=1):
    """Runs jobs at the same time (a job file's sections between stonewalls)
    by one runner; one Result each. first_thread: fio's number of their
    first job thread (in log names), for groups after the first."""
    trace = tracer_names(trace)
    if trace and runner_choice(runner) != "kit":
        raise OptionError("trace", "tracers attach to kit's runs: use runner kit")
    run_jobs, _check = RUNNERS[runner_choice(runner)]
    options = {"trace": trace} if trace else {}
    return run_jobs(list(jobs), progress=progress, machine=machine, first_thread=first_thread, **options)


def run_net(job=None, *, progress=None, machine=True, trace=None, **options):
    """Runs a network job and returns its Result: `kit.run_net(server="epoll",
    connections=16, bs=64)`, or a kit.NetJob (options given beside it change
    it). requests/s are read.iops, round trips read.clat_ns; both sides' CPU
    and the bottleneck are in jobs[0]["kit"]["net"]; trace="net,sched" puts
    the tracers' view of both sides in its `trace`. OptionError for a bad
    request, RunError when it cannot run here."""
    from .net.job import NetJob
    from .net.run import run as run_network
    if isinstance(job, dict):
        job = NetJob(**job)
    if job is None:
        job = NetJob(**options)
    elif options:
        job = job.replace(**options)
    return run_network(job, progress=progress, machine=machine, trace=tracer_names(trace))


def check(job, runner="kit"):
    """Everything that can refuse a job before it runs: the runner can run
    it, this kernel has what it needs, and its files pass every safety rule.
    Writes nothing. Raises OptionError (bad input) or RunError. Returns the
    job's plan."""
    return RUNNERS[runner_choice(runner)][1](job)


def check_all(jobs, runners=("kit",), labels=None):
    """check() for every job of a job file, a sweep or a report (by each
    runner that will run it), and their files together must fit the disks.
    labels: where each job comes from ("job.fio [b]"), which a refusal
    names first."""
    runners = (runners,) if isinstance(runners, str) else runners
    plans = []
    for i, job in enumerate(jobs):
        for r in runners:
            try:
                plans.append(check(job, r))
            except (OptionError, RunError) as e:
                if not labels:
                    raise
                raise (OptionError(None, f"{labels[i]}: {e}") if isinstance(e, OptionError)
                       else RunError(f"{labels[i]}: {e}")) from None
    target.check_space(plans)
