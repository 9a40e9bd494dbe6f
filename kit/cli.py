"""The `kit` command. fio's option names (`--bs=4k --iodepth=8`), one line
and exit code 2 for bad input, exit code 1 when a valid run fails here."""
import argparse
import difflib
import os
import sys

from . import __version__
from .errors import KitError, OptionError, RunError
from .job import ALIASES, OPTIONS, Job

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
BOOL_OPTIONS = {name for name, (parser, _e, _h) in OPTIONS.items()
                if getattr(parser, "__name__", "") == "parse_bool"}
OUTPUT_FORMATS = ("normal", "json", "json+")


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line and an OptionError, never usage + exit."""

    def error(self, message):
        raise OptionError(None, message)


def _run_parser():
    p = _Parser(prog="kit run", description="Run one job with kit's engines. Options are fio's.",
                allow_abbrev=False)
    for name, (_parser, engines, help_text) in OPTIONS.items():
        if name == "allow_destructive":
            continue
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        flags += [f"--{alias}" for alias, target in ALIASES.items() if target == name]
        extra = f" [{', '.join(engines)} only]" if engines else ""
        if name in BOOL_OPTIONS:
            p.add_argument(*flags, dest=name, nargs="?", const="1", metavar="0|1", help=help_text + extra)
        else:
            p.add_argument(*flags, dest=name, metavar=name.upper(), help=help_text + extra)
    p.add_argument("--rwmixwrite", dest="rwmixwrite", metavar="PCT", help="percent writes (100 - rwmixread)")
    p.add_argument("--allow-destructive", "--allow_destructive", dest="allow_destructive", nargs="?",
                   const="1", metavar="0|1",
                   help="allow writing to files kit did not create and to unmounted block devices")
    p.add_argument("--output-format", "--output_format", dest="output_format", default="normal",
                   help="normal (a table), json (fio-shaped), json+ (with histogram bins)")
    p.add_argument("--output", dest="output", help="write the output to this file instead of stdout")
    p.add_argument("--progress", dest="progress", nargs="?", const="1", metavar="0|1",
                   help="progress bar (default: when stderr is a terminal)")
    return p


def _check_output_path(path):
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise OptionError("output", f"{parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise OptionError("output", f"{parent} is not writable")
    if os.path.isdir(path):
        raise OptionError("output", f"{path} is a directory")


def cmd_run(argv):
    from .runner import run
    from .job import parse_bool
    parser = _run_parser()
    args, rest = parser.parse_known_args(argv)
    if rest:
        bad = rest[0].split("=", 1)[0]
        known = [f"--{n}" for n in OPTIONS] + ["--output", "--output-format"]
        close = difflib.get_close_matches(bad, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise OptionError(bad, f"is not a kit run option{hint}; `kit run --help` lists them")
    values = {k: v for k, v in vars(args).items()
              if v is not None and k not in ("output_format", "output", "progress")}
    if args.output_format not in OUTPUT_FORMATS:
        raise OptionError("output-format", f"must be one of {', '.join(OUTPUT_FORMATS)} "
                                           f"(got {args.output_format!r})")
    if args.output:
        _check_output_path(args.output)
    progress = None if args.progress is None else parse_bool("progress", args.progress)
    job = Job.from_options(values)
    try:
        result = run(job, progress=progress)
        failed = None
    except RunError as e:
        result = getattr(e, "result", None)
        failed = e
    if result is not None:
        _emit(result, args.output_format, args.output)
    if failed:
        raise failed
    return EXIT_INTERRUPTED if result.data.get("interrupted") else EXIT_OK


def _emit(result, output_format, output):
    if output_format == "normal":
        text = result.summary() + "\n"
    else:
        text = result.to_json(plus=(output_format == "json+"))
    if output:
        from .results import write_atomic
        write_atomic(output, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def cmd_doctor(argv):
    from .doctor import capabilities, format_doctor
    p = _Parser(prog="kit doctor", description="What works on this machine: engines, features, "
                                               "direct I/O on the target, tracing, versions.")
    p.add_argument("--directory", help="probe this directory instead of ./kit-scratch")
    p.add_argument("--filename", help="probe this existing file or block device (read-only)")
    p.add_argument("--json", action="store_true", help="print the capability matrix as JSON")
    args = p.parse_args(argv)
    caps = capabilities(directory=args.directory, filename=args.filename)
    if args.json:
        import json
        print(json.dumps(caps, indent=2))
    else:
        print(format_doctor(caps))
    return EXIT_OK


def cmd_report(argv):
    print("kit report: not yet — per-machine HTML reports arrive with the reports issue (#5).\n"
          "Until then: `kit run ...` measures and `kit doctor` shows what works here.")
    return EXIT_OK


COMMANDS = {
    "run": (cmd_run, "run one job (fio options: --ioengine --rw --bs --iodepth --numjobs ...)"),
    "doctor": (cmd_doctor, "what works on this machine"),
    "report": (cmd_report, "measure and publish HTML reports"),
}


def usage():
    lines = [f"kit {__version__} — measure and explain Linux I/O engines", "",
             "usage: kit COMMAND [options]", ""]
    lines += [f"  {name:8s} {text}" for name, (_f, text) in COMMANDS.items()]
    lines += ["", "`kit COMMAND --help` shows a command's options."]
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return EXIT_OK if argv else EXIT_USAGE
    if argv[0] in ("--version", "version"):
        print(f"kit {__version__}")
        return EXIT_OK
    command = argv.pop(0)
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        print(f"kit: error: {command!r} is not a kit command{hint}; commands: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[command][0](argv)
    except OptionError as e:
        print(f"kit {command}: error: {_flagged(e)}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as e:
        print(f"kit {command}: failed: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KitError as e:
        print(f"kit {command}: failed: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"kit {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _flagged(e):
    """'--bs: must be ...' for option errors, so the line names the flag."""
    if e.option and not str(e.option).startswith("-"):
        return f"--{e.option}: {e.problem}"
    return str(e)


if __name__ == "__main__":
    sys.exit(main())
