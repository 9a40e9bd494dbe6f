"""The `kit` command. fio's option names (`--bs=4k --iodepth=8`), one line
and exit code 2 for bad input, exit code 1 when a valid run fails here."""
import argparse
import contextlib
import difflib
import errno
import os
import signal
import sys

from . import __version__
from .errors import KitError, OptionError, RunError
from .files import Output, say, write_stream
from .text import printable
from .tracers import TRACERS
from .job import ALIASES, INVERSES, OPTIONS, Job, fio_option_verdict
from .options import parse_bool, parse_int, parse_time
from .api import check_all, runner_choice, tracer_names

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
BOOL_OPTIONS = {name for name, option in OPTIONS.items() if option.kind == "bool"}
OUTPUT_FORMATS = ("normal", "json", "json+")


class _HelpShown(Exception):
    """argparse printed --help: the command is done."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line and an OptionError, never usage +
    exit, and --help returns to main() instead of leaving Python at once."""

    def error(self, message):
        raise OptionError(None, message)

    def exit(self, status=0, message=None):
        if message:
            _stderr(message.rstrip())
        raise _HelpShown(status)

    def parse_known_args(self, args=None, namespace=None):
        """As argparse's, but an empty value (--bs=, --output=) is no value:
        refused as fio refuses it, never taken as 'the default'."""
        parsed, rest = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            if isinstance(value, str) and not value.strip() and value != action.default:
                flag = action.option_strings[0] if action.option_strings else action.dest
                raise OptionError(flag, "needs a value (an empty one is none)")
        return parsed, rest

    def _print_message(self, message, file=None):
        # argparse's own swallows a failed write: --help > /dev/full would say nothing, exit 0
        if message:
            try:
                (file or sys.stderr).write(message)
            except OSError as e:
                raise _HelpNotWritten(e) from None


class _HelpNotWritten(Exception):
    pass


def _run_parser():
    p = _Parser(prog="kit run", description="Run one job with kit's engines. Options are fio's.",
                allow_abbrev=False)
    for name, option in OPTIONS.items():
        engines, help_text = option.engines, option.help
        if name == "ioengine":
            help_text += f": {', '.join(option.choices())}"
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        flags += [f"--{alias}" for alias, target in ALIASES.items() if target == name]
        extra = f" [{', '.join(engines)} only]" if engines else ""
        help_text = help_text.replace("%", "%%")        # argparse formats help with %
        if name in BOOL_OPTIONS:
            p.add_argument(*flags, dest=name, nargs="?", const="1", metavar="0|1", help=help_text + extra)
        else:
            p.add_argument(*flags, dest=name, metavar=name.upper(), help=help_text + extra)
    for name, (other, _turn) in INVERSES.items():    # fio's other sides: --rwmixwrite, --buffered
        if other in BOOL_OPTIONS:
            p.add_argument(f"--{name}", dest=name, nargs="?", const="1", metavar="0|1",
                           help=f"{other} said the other way round")
        else:
            p.add_argument(f"--{name}", dest=name, metavar=name.upper(), help=f"{other} said the other way round")
    p.add_argument("--output-format", "--output_format", dest="output_format", default="normal",
                   help="normal (a table), json (fio-shaped), json+ (with histogram bins)")
    p.add_argument("--output", dest="output", help="write the output to this file instead of stdout")
    p.add_argument("--progress", dest="progress", nargs="?", const="1", metavar="0|1",
                   help="progress bar (default: when stderr is a terminal)")
    p.add_argument("--trace", dest="trace", help=f"eBPF tracers to attach: {','.join(TRACERS)} (comma-separated), "
                                                 "and optionally records=N (the last N block requests one by one), "
                                                 "stacks (off-CPU kernel stacks), runq (run-queue latency)")
    p.add_argument("--runner", dest="runner", default="kit", help="kit (default) or fio: who runs the job")
    p.add_argument("--compare", dest="compare", help="fio: run with kit, then with fio, and compare")
    p.add_argument("--strict", dest="strict", action="store_true",
                   help="a fio option kit ignores because it changes only fio's output (write_hist_log, "
                        "unified_rw_reporting, ...) is an error, not a warning")
    p.add_argument("jobfile", nargs="?", help="a fio job file; command-line options apply to each of its jobs, "
                                          "replacing what the file says (with a warning: fio keeps the file's)")
    return p


NOT_JOB_OPTIONS = ("output_format", "output", "progress", "runner", "compare", "strict", "jobfile", "trace")


def cmd_run(argv):
    parser = _run_parser()
    args, rest = parser.parse_known_args(argv)
    ignored = _fio_only_flags(rest, args.strict)
    values = {k: v for k, v in vars(args).items() if v is not None and k not in NOT_JOB_OPTIONS}
    if args.output_format not in OUTPUT_FORMATS:
        raise OptionError("output-format", f"must be one of {', '.join(OUTPUT_FORMATS)} "
                                           f"(got {args.output_format!r})")
    runner_choice(args.runner)
    if args.compare not in (None, "fio"):
        raise OptionError("compare", f"must be fio (got {args.compare!r})")
    if args.compare and args.runner != "kit":
        raise OptionError("compare", "compares kit with fio: leave --runner at kit")
    progress = None if args.progress is None else parse_bool("progress", args.progress)
    trace = tracer_names(args.trace)
    if trace and args.runner != "kit":
        raise OptionError("trace", "tracers attach to kit's runs: leave --runner at kit")
    groups, warnings, group_ids, global_options, labels = _job_groups(args, values)
    warnings = ignored + warnings
    # every group of a job file is checked before the first one runs
    check_all([j for g in groups for j in g], ("kit", "fio") if args.compare else (args.runner,), labels)
    _check_logs(groups, args.compare)
    output = _output(args.output)
    for warning in warnings:        # only once the job is known to be good: bad input stays one line
        _stderr(f"kit run: warning: {printable(warning)}")
    if args.compare:
        return _run_compare(groups, args, progress, output)
    trace, untraced = _trace_or_warn(trace)
    results, failed = _run_groups(groups, group_ids, args.runner, progress, trace)
    # a job that could not even start has nothing to show but its error line
    results = [r for r in results if (r.data.get("error") or {}).get("kind") != "setup"]
    if untraced:
        for r in results:
            r.data["notes"].append(f"untraced: {untraced}")
    if results:
        _write(_render(results, args.output_format, global_options), output)
    if failed:
        raise failed
    if any(r.data.get("interrupted") for r in results):
        _stderr("kit run: interrupted; the result above is partial (marked interrupted)")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _fio_only_flags(rest, strict):
    """kit run's flags that are none of kit's options, judged as in job files
    (kit.job.fio_option_verdict): fio's that change only fio's output are
    warnings (errors with --strict) and ignored, the ones kit runs as it is
    are taken, the rest refused in one line. Returns the warnings."""
    warnings = []
    for arg in rest:
        flag, sep, value = arg.partition("=")
        name = flag[2:] if flag.startswith("--") else ""
        verdict, why = fio_option_verdict(name, value if sep else None) if name else ("unknown", None)
        if verdict == "unknown" and "-" in name:        # --iodepth-low as kit's own --time-based
            verdict, why = fio_option_verdict(name.replace("-", "_"), value if sep else None)
        if verdict == "unknown":
            known = [f"--{n}" for n in OPTIONS] + ["--output", "--output-format", "--runner", "--compare"]
            close = difflib.get_close_matches(flag, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise OptionError(flag, f"is not a kit run option{hint}; `kit run --help` lists them")
        if verdict == "refuse" or verdict == "warn" and strict:
            raise OptionError(flag, why + (" (--strict)" if verdict == "warn" else ""))
        if why:
            warnings.append(f"{flag}: {why}" + ("; ignored" if verdict == "warn" else ""))
    return warnings


def _check_logs(groups, compare):
    """The log files of the whole job file, numbered as fio numbers its
    threads, checked before the first group runs."""
    from . import logs
    jobs = [j for g in groups for j in g]
    if compare and logs.planned(jobs):
        raise OptionError(logs.planned(jobs)[0][2], "--compare runs each job twice (kit, then fio) and kit "
                                                    "never replaces a log: run them one at a time")
    logs.check(jobs)


def _job_groups(args, values):
    """([[Job, ...], ...], warnings, fio's group ids ([[0, ...], ...]),
    [global] as written, each job's "file [section]" or None): one group per
    stonewall of a job file, else [[job]]."""
    if not args.jobfile:
        return [[Job.from_options(values)]], [], [[0]], None, None
    from .fio import read_job_file
    if args.jobfile.startswith("-"):
        # argparse takes "--x=a b" (a space inside) for a positional argument
        raise OptionError(args.jobfile.split("=", 1)[0], "is not a kit run option; `kit run --help` lists them")
    jobfile = read_job_file(args.jobfile, strict=args.strict)
    overrides = dict(values)
    if overrides:
        Job.from_options(overrides)             # checked alone first: errors name the flag
    ids = iter(jobfile.group_ids)
    labels = [f"{os.path.basename(args.jobfile)} [{section}]" for section in jobfile.sections]
    warnings = jobfile.warnings + _overridden(overrides, jobfile, os.path.basename(args.jobfile))
    groups = [[job.replace(**overrides) for job in group] for group in jobfile.groups]
    for job, label in zip((job for group in groups for job in group), labels):
        if not {"size", "filesize"} & job.given().keys() and not job.filename:
            # kit alone would make a file of its default size, a job fio does not run
            raise OptionError(None, f"{label}: no size= (nor filesize=, nor an existing filename=): fio refuses "
                                    "such a job ('you need to specify size='); give one, here or as --size")
    return (groups, warnings, [[next(ids) for _job in group] for group in jobfile.groups],
            jobfile.global_options, labels)


def _overridden(overrides, jobfile, name):
    """One warning per command-line option that replaces what the job file
    itself says: in fio a job file's own values win over the command
    line's (which only fill in what it leaves out); in kit the command line
    wins, and says so."""
    from .job import FIO_TO_KIT, canonical_option
    warnings = []
    for flag in overrides:
        option = canonical_option(flag)
        sections = [section for section, job in zip(jobfile.sections, jobfile.jobs)
                    if any(canonical_option(FIO_TO_KIT.get(w, w)) == option for w in job.written())]
        if sections:
            shown = ", ".join(f"[{s}]" for s in sections[:3]) + (f" and {len(sections) - 3} more"
                                                                   if len(sections) > 3 else "")
            warnings.append(f"--{flag} replaces {option}= of {name} {shown} (fio would keep the job file's "
                            "value and use the command line's only where the file says nothing)")
    return warnings


def _trace_or_warn(trace, command="kit run"):
    """Tracing that cannot work here: one line, and the run goes on untraced
    (the result says so) -- except under KIT_STRICT=1, where it is an error."""
    if not trace:
        return None, None
    from .tracers import status
    s = status()
    if s["usable"]:
        return trace, None
    if os.environ.get("KIT_STRICT") == "1":
        raise RunError(f"--trace: {s['reason']} (KIT_STRICT=1)")
    _stderr(f"{command}: warning: --trace: {s['reason']}; running untraced")
    return None, s["reason"]


def _run_groups(groups, group_ids, runner, progress, trace=None):
    from .api import run_together
    from .results import set_group
    results = []
    first_thread = 1        # fio numbers job threads across the whole job file (log names)
    for group, ids in zip(groups, group_ids):
        failed = None
        try:
            done = run_together(group, runner=runner, progress=progress, trace=trace, first_thread=first_thread)
        except RunError as e:
            done = getattr(e, "results", None) or ([e.result] if getattr(e, "result", None) else [])
            failed = e
        for r, gid in zip(done, ids):   # one Result per job, in the group's order
            set_group(r, gid)
        results += done
        first_thread += sum(job.numjobs for job in group)
        if failed:
            return results, failed
        if any(r.data.get("interrupted") for r in results):
            break
    return results, None


def _run_compare(groups, args, progress, output):
    """Each group of jobs as the job file means it (together), by kit, then
    the same group by fio; each job compared with its twin."""
    from .api import run_together
    from .fio import compare
    from .text import format_compare
    out, interrupted = [], None
    for group in groups:
        kit_results = run_together(group, progress=progress)
        if any(r.data.get("interrupted") for r in kit_results):
            interrupted = kit_results[0]        # fio is not started: Ctrl-C stops the comparison
            break
        fio_results = run_together(group, runner="fio", progress=progress)
        out += [(k, f, compare(k, f)) for k, f in zip(kit_results, fio_results)]
        if any(r.data.get("interrupted") for r in fio_results):
            interrupted = fio_results[0]
            break
    if interrupted is not None and not out:
        _write(_render([interrupted], args.output_format), output)
        _stderr("kit run: interrupted before fio ran; the result above is kit's, partial")
        return EXIT_INTERRUPTED
    if args.output_format == "normal":
        text = "\n\n".join(format_compare(rows, k) for k, _f, rows in out) + "\n"
    else:
        import json
        plus = args.output_format == "json+"
        docs = [{"kit": json.loads(k.to_json(plus=plus)), "fio": json.loads(f.to_json(plus=plus)),
                 "compare": [{"metric": m, "kit": a, "fio": b, "ratio": r} for m, a, b, r in rows]}
                for k, f, rows in out]
        text = json.dumps(docs[0] if len(docs) == 1 else docs, indent=2) + "\n"
    _write(text, output)
    if interrupted is not None:
        _stderr("kit run: interrupted; the comparison above is partial (marked interrupted)")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _render(results, output_format, global_options=None):
    from .results import Result, run_document
    from .text import comparison, format_comparison
    if output_format == "normal":
        text = "\n\n".join(r.summary() for r in results) + "\n"
        if len(results) > 1:
            text += "\n" + format_comparison(comparison(results)) + "\n"
    else:
        import json
        plus = output_format == "json+"
        text = json.dumps(run_document([Result(json.loads(r.to_json(plus=plus))) for r in results],
                                       global_options), indent=2) + "\n"
    return text


def _output(path):
    """--output, checked before anything runs (see files.Output)."""
    if not path:
        return None
    from .safety import file_in_use
    return Output(path, in_use=file_in_use)


def _write(text, output):
    """To --output (an Output) or to stdout; a closed or full stdout is one
    line (exit 1), never a traceback."""
    if output:
        output.write(text)
        return
    try:
        write_stream(sys.stdout, text)
    except OSError as e:
        raise RunError(f"cannot write the output to stdout: {_stdout_error(e)}") from None


def _stdout_error(e):
    _silence_stdout()
    return "it is closed (broken pipe)" if e.errno == errno.EPIPE else e.strerror


def _silence_stdout():
    """After stdout failed, point it at /dev/null, so Python's own flush at
    exit does not fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _net_parser():
    from .net.job import options as net_options
    from .net.servers import engine, engine_names
    engines = "; ".join(f"{n}: {engine(n).DOC}" for n in engine_names())
    p = _Parser(prog="kit net", description="Run one network job: a server engine in a network namespace, "
                                            "kit's load generator in another, joined by a veth pair (nothing "
                                            "is left behind, however kit ends). Prints requests/s, round-trip "
                                            "percentiles, CPU per request on both sides and the bottleneck. "
                                            f"Engines: {engines}.".replace("%", "%%"), allow_abbrev=False)
    for name, option in net_options().items():
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        extra = f" [server={' or '.join(option.engines)} only]" if option.engines else ""
        choices = f": {', '.join(option.choices())}" if name == "server" else ""
        help_text = (option.help + choices + extra).replace("%", "%%")
        if option.kind == "bool":
            p.add_argument(*flags, dest=name, nargs="?", const="1", metavar="0|1", help=help_text)
        else:
            p.add_argument(*flags, dest=name, metavar=name.upper(), help=help_text)
    p.add_argument("--output-format", "--output_format", dest="output_format", default="normal",
                   help="normal (text), json (kit's result, fio-shaped), json+ (with histogram bins)")
    p.add_argument("--json", action="store_true", help="the same as --output-format=json")
    p.add_argument("--output", dest="output", help="write the output to this file instead of stdout")
    p.add_argument("--save", action="store_true", help="store the result (suite net) for kit compare and reports")
    p.add_argument("--trace", dest="trace", nargs="?", const="net,sched", metavar="TRACERS",
                   help=f"eBPF tracers to attach (default net,sched): some of {','.join(TRACERS)}, and optionally "
                        "stacks, runq: softirq time and packets per CPU and per side, both sides' threads by role")
    p.add_argument("--data", help="the results store --save writes to (default ./data, or $KIT_DATA)")
    p.add_argument("--progress", dest="progress", nargs="?", const="1", metavar="0|1",
                   help="progress bar (default: when stderr is a terminal)")
    return p


NOT_NET_OPTIONS = ("output_format", "json", "output", "save", "data", "progress", "trace")


def cmd_net(argv):
    from .net.job import NetJob
    p = _net_parser()
    args, rest = p.parse_known_args(argv)
    if rest:
        bad = rest[0].split("=", 1)[0]
        close = difflib.get_close_matches(bad, [a for action in p._actions for a in action.option_strings], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise OptionError(bad, f"is not a kit net option{hint}; `kit net --help` lists them")
    given = {}          # argparse keeps the last of two values silently: a run of the wrong job
    for arg in argv:
        action = p._option_string_actions.get(arg.split("=", 1)[0])
        if action is not None and action.dest in given:
            raise OptionError(action.dest, f"is given twice ({given[action.dest]} and {arg}); give it once")
        if action is not None:
            given[action.dest] = arg
    output_format = "json" if args.json else args.output_format
    if output_format not in OUTPUT_FORMATS:
        raise OptionError("output-format", f"must be one of {', '.join(OUTPUT_FORMATS)} (got {output_format!r})")
    if args.json and args.output_format not in ("normal", "json"):
        raise OptionError("json", f"and --output-format={args.output_format} say two formats: give one")
    if args.data and not args.save:
        raise OptionError("data", "is where --save stores the result: give --save too")
    job = NetJob(**{k: v for k, v in vars(args).items() if v is not None and k not in NOT_NET_OPTIONS})
    trace = tracer_names(args.trace)
    progress = _progress(args.progress)
    if args.save:
        _check_places(args, suites=("net",))
    output = _output(args.output)
    trace, untraced = _trace_or_warn(trace, "kit net")
    from .api import run_net
    result = run_net(job, progress=progress, trace=trace)
    if untraced:
        result.data["notes"].append(f"untraced: {untraced}")
    if args.save:
        from .store import save
        save(result, "net", data=args.data)
    if output_format == "normal":
        from .net.run import format_text
        text = format_text(result.data) + "\n"
    else:
        text = result.to_json(plus=output_format == "json+")
    _write(text, output)
    if result.data.get("interrupted"):
        _stderr("kit net: interrupted; the result above is partial (marked interrupted)")
        return EXIT_INTERRUPTED
    return EXIT_OK


def cmd_import(argv):
    from .results import from_fio_json
    p = _Parser(prog="kit import", description="Read fio JSON output (json or json+) as kit results.")
    p.add_argument("file", help="fio output, as written by --output-format=json or json+")
    p.add_argument("--output-format", "--output_format", dest="output_format", default="normal",
                   help="normal (a table) or json (kit's schema)")
    p.add_argument("--output", help="write to this file instead of stdout")
    p.add_argument("--data", help="the results store (default ./data, or $KIT_DATA)")
    p.add_argument("--machine", help="file the results under this machine (default: this one)")
    p.add_argument("--no-store", action="store_true", help="only print, do not store")
    args = p.parse_args(argv)
    if args.output_format not in OUTPUT_FORMATS:
        raise OptionError("output-format", f"must be one of {', '.join(OUTPUT_FORMATS)}")
    output = _output(args.output)
    if args.machine:
        from .store import safe_name
        if safe_name(args.machine) != args.machine:
            raise OptionError("machine", f"use letters, digits, '.', '_', '+' and '-' (got {args.machine!r})")
    if not args.no_store:
        _check_places(args, suites=("import",))
    results = from_fio_json(args.file)       # read and checked whole before anything is stored
    text = _render(results, args.output_format)
    if not args.no_store:
        from .store import import_fio
        if not any(import_fio(results, args.file, machine=args.machine, data=args.data)):
            _stderr(f"kit import: {args.file} is already in the store; nothing stored again")
    _write(text, output)
    return EXIT_OK


def cmd_doctor(argv):
    from .doctor import capabilities
    from .text import format_doctor
    p = _Parser(prog="kit doctor", description="What works on this machine: engines, features, "
                                               "direct I/O on the target, tracing, versions.")
    p.add_argument("--directory", help="probe this directory instead of ./kit-scratch")
    p.add_argument("--filename", help="probe this existing file or block device (read-only)")
    p.add_argument("--json", action="store_true", help="print the capability matrix as JSON")
    args = p.parse_args(argv)
    caps = capabilities(directory=args.directory, filename=args.filename)
    if args.json:
        import json
        _write(json.dumps(caps, indent=2) + "\n", None)
    else:
        _write(format_doctor(caps) + "\n", None)
    return EXIT_OK


def cmd_trace(argv):
    """Traces whatever runs on the machine for a while, like bcc's tools."""
    import time
    from .tracers import format_summary as format_trace
    from .tracers import Trace
    p = _Parser(prog="kit trace", description="Trace the whole machine (block layer, scheduler, io_uring) "
                                              "for a while and print what happened.")
    p.add_argument("--duration", default="10", help="how long (seconds, or 500ms, 1m)")
    p.add_argument("--trace", default=",".join(TRACERS), help=f"some of {','.join(TRACERS)} (default: all)")
    p.add_argument("--device", action="append", help="only this block device (repeatable; default: all)")
    p.add_argument("--records", default="0", help="keep the last N block requests one by one (biosnoop's view)")
    p.add_argument("--stacks", action="store_true", help="kernel stacks kit's threads leave the CPU from "
                                                          "(offcputime's folded view)")
    p.add_argument("--runq", action="store_true", help="run-queue latency per role (runqlat's view)")
    p.add_argument("--output-format", "--output_format", dest="output_format", default="normal",
                   help="normal or json")
    args = p.parse_args(argv)
    duration = parse_time("duration", args.duration)
    if not duration:
        raise OptionError("duration", "must be more than 0")
    if args.output_format not in ("normal", "json"):
        raise OptionError("output-format", "must be normal or json")
    from .tracers import split_request
    names, views = split_request(tracer_names(args.trace))
    devices = [_device_numbers(d) for d in args.device or []] or None
    views["records"] = parse_int("records", args.records, 0, 1 << 20) or views.get("records", 0)
    views["stacks"] = args.stacks or views.get("stacks", False)
    views["runq"] = args.runq or views.get("runq", False)
    t = Trace(*names, devices=devices, **views)
    interrupted = False
    with t:
        try:
            time.sleep(duration)
        except KeyboardInterrupt:
            interrupted = True      # what was seen until then stands, said to be cut short
    summary = t.summary()
    if interrupted:
        summary["interrupted"] = True
        summary["duration_asked_ns"] = int(duration * 1e9)
    if args.output_format == "json":
        import json
        _write(json.dumps(summary, indent=2) + "\n", None)
    else:
        _write(format_trace(summary) + "\n", None)
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


def _device_numbers(path):
    """The whole disk behind a block device path (the block tracepoints
    report requests against the disk, not the partition)."""
    import stat
    from .host import whole_disk
    try:
        st = os.stat(path)
    except OSError as e:
        raise OptionError("device", f"{path}: {e.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise OptionError("device", f"{path} is not a block device")
    return whole_disk((os.major(st.st_rdev), os.minor(st.st_rdev)))


def _store_args(p):
    p.add_argument("--data", help="the results store (default ./data, or $KIT_DATA)")
    p.add_argument("--reports", help="where HTML goes (default ./reports)")


def _check_places(args, suites=(), writes_store=True):
    """The directories a command will write, checked before it writes any."""
    from . import publish, store
    from .files import check_output_directory
    from .machine import machine_name
    from .target import check_directory
    if getattr(args, "directory", None):
        check_directory(args.directory)
    if writes_store and hasattr(args, "data"):
        store.check_writable(getattr(args, "machine", None) or machine_name(), args.data, suites)
    if hasattr(args, "reports"):
        check_output_directory(publish.reports_dir(args.reports), "reports")
        if writes_store and not getattr(args, "no_publish", False):
            publish.check_writable(args.reports, getattr(args, "machine", None) or machine_name(),
                                   getattr(args, "data", None))


def cmd_report(argv):
    from . import publish, suites
    p = _Parser(prog="kit report", description="Measure this machine (the engines tables, a sweep, traced "
                                               "anatomy, capabilities) into the store, then publish HTML.")
    _store_args(p)
    p.add_argument("--no-measure", action="store_true", help="only publish what the store holds")
    p.add_argument("--quick", action="store_true", help="tiny jobs: seconds instead of minutes (tests)")
    p.add_argument("--directory", help="where kit creates its scratch files (default ./kit-scratch)")
    p.add_argument("--suites", default=",".join(suites.SUITES),
                   help=f"what to measure, comma-separated from {', '.join(suites.SUITES)}")
    p.add_argument("--sweep", help="the sweep file to measure (default: kit's engines sweep)")
    p.add_argument("--progress", nargs="?", const="1", metavar="0|1")
    p.add_argument("--force", action="store_true", help="render every page again, even those whose inputs are "
                                                        "unchanged")
    args = p.parse_args(argv)
    chosen = [s for s in args.suites.split(",") if s]
    bad = [s for s in chosen if s not in suites.SUITES]
    if bad:
        raise OptionError("suites", f"{bad[0]!r} is not a suite (allowed: {', '.join(suites.SUITES)})")
    progress = _progress(args.progress)
    sweep = None
    if args.sweep:
        from .sweep import load_spec
        sweep = load_spec(args.sweep)
    # every suite folder the measurement writes (the sweep's is sweep-<name>)
    stored = [s for s in chosen if s in ("engines", "anatomy", "network")]
    if "sweep" in chosen:
        stored.append(suites.sweep_for(args.quick, sweep).suite)
    _check_places(args, suites=stored, writes_store=not args.no_measure)
    machine = None
    if not args.no_measure:
        machine = suites.measure(args.data, quick=args.quick, suites=chosen, directory=args.directory,
                                 progress=progress, sweep=sweep)
    published = publish.publish(args.data, args.reports, machines=[machine] if machine else None,
                                progress=progress, force=args.force)
    _write(f"kit report: {_published(published, args.reports)}\n", None)
    return EXIT_OK


def cmd_publish(argv):
    from . import publish
    p = _Parser(prog="kit publish", description="Rebuild reports/ from data/ without measuring.")
    _store_args(p)
    p.add_argument("--machine", action="append", help="only this machine (repeatable)")
    p.add_argument("--progress", nargs="?", const="1", metavar="0|1")
    p.add_argument("--force", action="store_true", help="render every page again, even those whose inputs "
                                                        "(results, notebook, kit) are unchanged")
    args = p.parse_args(argv)
    _check_places(args, writes_store=False)
    published = publish.publish(args.data, args.reports, machines=args.machine, progress=_progress(args.progress),
                                force=args.force)
    _write(f"kit publish: {_published(published, args.reports)}\n", None)
    return EXIT_OK


def _published(published, reports):
    """What publish did, in one line: pages rendered and reused, and the index."""
    from .publish import reports_dir
    removed = f", {len(published.removed)} no longer apply (removed)" if published.removed else ""
    return (f"{len(published.rendered)} page(s) rendered, {len(published.reused)} unchanged (kept){removed}; open "
            f"{os.path.join(reports_dir(reports), 'index.html')}")


def cmd_sweep(argv):
    from . import publish
    from .sweep import load_spec, remarks, run_sweep
    p = _Parser(prog="kit sweep", description="Run a grid of jobs described in YAML into the store "
                                              "(resuming where it stopped), then publish.")
    p.add_argument("file", help="the sweep file (see sweeps/engines.yml)")
    _store_args(p)
    p.add_argument("--allow-destructive", "--allow_destructive", dest="allow_destructive", action="store_true",
                   help="allow the sweep's jobs to write files kit did not create and unmounted block devices")
    p.add_argument("--directory", help="where kit creates its scratch files (default ./kit-scratch)")
    p.add_argument("--no-publish", action="store_true", help="measure only")
    p.add_argument("--progress", nargs="?", const="1", metavar="0|1")
    args = p.parse_args(argv)
    sweep = load_spec(args.file)
    _check_places(args, suites=(sweep.suite,))
    outcome = run_sweep(sweep, data=args.data, progress=_progress(args.progress), directory=args.directory,
                        allow_destructive=bool(args.allow_destructive))
    _write(f"kit sweep {sweep.name}: {outcome['done']} run, {outcome['skipped']} already stored, "
           f"{outcome['total']} points x repeats in all ({outcome['machine']})\n", None)
    if remarks(outcome):
        _write(f"kit sweep {sweep.name}: {remarks(outcome)}\n", None)
    if outcome["interrupted"]:
        _stderr(f"kit sweep {sweep.name}: interrupted; run the same command again to finish")
        return EXIT_INTERRUPTED
    if not args.no_publish:
        page = "network" if sweep.network else "sweep"         # a network sweep's page is the network notebook's
        written = publish.publish(args.data, args.reports, machines=[outcome["machine"]], notebooks=(page,),
                                  progress=_progress(args.progress))
        _write(f"kit sweep: published {', '.join(written)}\n", None)
    return EXIT_OK


def cmd_compare(argv):
    from . import compare, store
    from .text import format_runs
    p = _Parser(prog="kit compare", description="B against A: IOPS and p99 clat of what both measured, B/A, and "
                                                "whether B is slower, faster or not clearly different (a rank test "
                                                "of both sides' repeats, two-sided 5 %: 4 repeats a side at least, "
                                                f"and a change beyond {compare.CLEAR_DIFFERENCE_PCT:.0f} %). With one "
                                                "machine alone: its runs, "
                                                "and its newest run against the one before.")
    p.add_argument("a", metavar="A", help=f"the baseline: {compare.SIDE_HELP}")
    p.add_argument("b", metavar="B", nargs="?", help="what is compared with it, named as A")
    p.add_argument("--data", help="the results store (default ./data, or $KIT_DATA)")
    args = p.parse_args(argv)
    if args.b is not None:
        a, b = compare.side(args.a, args.data), compare.side(args.b, args.data)
        outcome = compare.compare(a.results, b.results, singles=a.kind == b.kind == "file")
        _write(_versus(outcome, a.description, b.description) + "\n", None)
        return EXIT_OK
    machine = args.a
    known = [m["name"] for m in store.machines(args.data, quiet=True)]
    if machine not in known:
        raise OptionError(None, f"{machine!r} is not a machine in {store.data_dir(args.data)} (machines there: "
                                f"{', '.join(known) or 'none'}); with one argument, kit compare lists a machine's runs")
    history = store.load(machine, data=args.data, history=True)
    runs = compare.runs(history)
    if not runs:
        raise OptionError(None, f"{machine} has no results in {store.data_dir(args.data)}")
    text = format_runs(machine, runs, store.data_dir(args.data))
    if len(runs) < 2:
        text += "\n\nOne run so far: nothing to compare it with."
    else:
        a, b = compare.side(f"{machine}@-2", args.data), compare.side(machine, args.data)
        text += (f"\n\nThe newest run against the one before (kit compare {machine}@-2 {machine}):\n"
                 + _versus(compare.compare(a.results, b.results), a.description, b.description))
    _write(text + "\n", None)
    return EXIT_OK


def _versus(outcome, a, b):
    from .compare import CLEAR_DIFFERENCE_PCT
    from .text import format_versus
    return format_versus(outcome["rows"].to_dict("records"), a, b, outcome["only_a"], outcome["only_b"],
                         outcome["same"], CLEAR_DIFFERENCE_PCT)


def _progress(value):
    return None if value is None else parse_bool("progress", value)


COMMANDS = {
    "run": (cmd_run, "run a job (fio options: --ioengine --rw --bs ...) or a fio job file"),
    "net": (cmd_net, "run a network job: a server engine and kit's load generator across a veth pair"),
    "doctor": (cmd_doctor, "what works on this machine"),
    "trace": (cmd_trace, "trace the whole machine for a while (block, sched, io_uring)"),
    "import": (cmd_import, "read fio JSON output as kit results"),
    "sweep": (cmd_sweep, "run a YAML grid of jobs into the store, then publish"),
    "report": (cmd_report, "measure this machine into the store, then publish HTML reports"),
    "publish": (cmd_publish, "rebuild the HTML reports from the store without measuring"),
    "compare": (cmd_compare, "B against A (result files, machines, MACHINE@run): slower, faster or no clear "
                             "difference; one machine: its runs"),
}


def usage():
    lines = [f"kit {__version__} — measure and explain Linux I/O engines", "",
             "usage: kit COMMAND [options]", ""]
    lines += [f"  {name:8s} {text}" for name, (_f, text) in COMMANDS.items()]
    lines += ["", "`kit COMMAND --help` shows a command's options."]
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] in ("-h", "--help", "help"):
            write_stream(sys.stdout, usage() + "\n")
            return EXIT_OK if argv else EXIT_USAGE
        if argv[0] in ("--version", "version"):
            write_stream(sys.stdout, f"kit {__version__}\n")
            return EXIT_OK
    except OSError as e:
        _stderr(f"kit: failed: cannot write to stdout: {_stdout_error(e)}")
        return EXIT_FAILED
    command = argv.pop(0)
    _stop_like_ctrl_c()
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        _stderr(f"kit: error: {command!r} is not a kit command{hint}; commands: {', '.join(COMMANDS)}")
        return EXIT_USAGE
    try:
        code = COMMANDS[command][0](argv)
    except _HelpShown as shown:
        code = shown.args[0]
    except OptionError as e:
        _stderr(f"kit {command}: error: {printable(_flagged(e))}")
        return EXIT_USAGE
    except KitError as e:
        _stderr(f"kit {command}: failed: {printable(str(e))}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _stderr(f"kit {command}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError as e:        # argparse's --help into a closed pipe
        _stderr(f"kit {command}: failed: cannot write to stdout: {_stdout_error(e)}")
        return EXIT_FAILED
    except _HelpNotWritten as e:
        _stderr(f"kit {command}: failed: cannot write to stdout: {_stdout_error(e.args[0])}")
        return EXIT_FAILED
    try:
        write_stream(sys.stdout, "")    # what argparse's --help left buffered
    except OSError as e:
        _stderr(f"kit {command}: failed: cannot write to stdout: {_stdout_error(e)}")
        return EXIT_FAILED
    return code


def _stderr(line):
    say(line)


def _stop_like_ctrl_c():
    """From here on, Ctrl-C and SIGTERM (a scheduler or `kill` ending a long
    sweep) stop what runs: in-flight I/O is reaped, tracers detach, the
    partial result is printed marked interrupted."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    with contextlib.suppress(ValueError):       # not the main thread: leave it alone
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _flagged(e):
    """'--bs: must be ...' for option errors, so the line names the flag."""
    if e.option and not str(e.option).startswith("-"):
        return f"--{e.option}: {e.problem}"
    return str(e)


if __name__ == "__main__":
    sys.exit(main())
