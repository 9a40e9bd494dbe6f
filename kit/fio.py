"""fio interop: kit Jobs as fio options and job files, fio job files as kit
Jobs, fio as a runner whose output lands in kit's schema, and fio JSON files
read back as kit Results.

The Job is the source of truth: a job file is parsed into Jobs (an option kit
does not know is never dropped silently), and runner="fio" runs fio on a job
file generated from those Jobs, on the files kit planned, prepared and
guarded, so both runners measure the same bytes under the same safety rules.
"""
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import List

from . import __version__
from . import fio_names, hist, logs
from . import target as targets
from .errors import OptionError, RunError
from .files import read_text_file
from .machine import fingerprint_for
from .engines import fio_twin
from .job import COMMAND_LINE_ONLY, FIO_TO_KIT, LOG_FILES, NO_EFFECT, OPTIONS, ORDERING, Job, bare_value, \
    canonical_option, fio_option_verdict, written_name
from .options import DDIRS, parse_int, parse_usec, split_filenames
from .results import parse_fio_json, results_from_fio


def env_defaults():
    """Defaults for the KIT_* variables the shipped job files use, scaled to
    this machine (plain fio needs them set; kit fills them in)."""
    ncpus = os.cpu_count() or 1
    return {"KIT_NUMJOBS": str(4 * ncpus), "KIT_FILESIZE": "16m", "KIT_RUNTIME": "10"}


# ---- Job -> fio --------------------------------------------------------------


PATH_OPTIONS = ("directory", "filename", "filename_format")
# What fio would read back differently: a newline or other control character
# starts a new option, '$' substitutes, ';' and '#' start comments, and
# spaces at either end are stripped.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f$;#]|^\s|\s$")
_FORMAT_TOKENS = re.compile(r"\$(jobname|jobnum|filenum)")


def _fio_value(name, text):
    """A value as it must appear in a fio job file, or OptionError when fio
    could not read it back as exactly what kit checked."""
    probe = _FORMAT_TOKENS.sub("", text) if name == "filename_format" else text
    if _UNSAFE.search(probe) or (name == "directory" and ":" in text):
        raise OptionError(name, f"{text!r} cannot be written to a fio job file so that fio reads it "
                                "back unchanged (control characters, '$', ';', '#', spaces at either end"
                                + (", ':'" if name == "directory" else "") + " are not allowed)")
    if name == "filename":
        return ":".join(n.replace(":", "\\:") for n in split_filenames(text))
    return text


def fio_options(job, include=None, paths=True):
    """The job as fio options (name -> value text, None for a bare flag):
    every option set on the job, plus what keeps fio's behaviour kit's.
    paths=False (the fio runner's) leaves out where the files are (the
    runner names them itself)."""
    twin = fio_twin(job.ioengine)
    if twin is None:
        raise OptionError("ioengine", f"{job.ioengine} has no fio twin: fio cannot run it (use runner=kit)")
    given = job.given()
    out = {"ioengine": twin, "rw": job.rw, "bs": OPTIONS["bs"].text(job.bs, job.kb_base)}
    for name, option in OPTIONS.items():
        if name not in given and name not in (include or ()):
            continue
        if name in ("name", "ioengine", "rw", "bs") or option.fio is None \
                or (not paths and name in PATH_OPTIONS):
            continue
        value = getattr(job, name)
        if option.flag:
            if value:
                out[option.fio_name] = None
            continue
        if value == "" and name in LOG_FILES:
            out[option.fio_name] = None         # bare: the log is named after the job
            continue
        if value is None or value == "":
            continue
        if option.kind in ("size", "time") or option.text_value or isinstance(value, bool):
            text = option.text(value, job.kb_base)      # sizes fio reads back as the same bytes
        else:
            text = _fio_value(name, str(value))
        out[option.fio_name] = text
    # kit's behaviour, said out loud so fio does the same
    out["thread"] = None
    for name, option in OPTIONS.items():
        if option.fio_default is not None and option.fio_name not in out:
            out[option.fio_name] = "1" if getattr(job, name) else "0"
    if not paths and not job.iodepth_batch_complete_max:
        # fio running kit's job reaps as kit does: kit's 0 takes every
        # completion there is, fio's 0 means complete_min (an exported job
        # file keeps kit's 0, so it reads back as it was)
        out["iodepth_batch_complete_max"] = str(job.iodepth)
    for name, option in OPTIONS.items():       # what kit's engines imply, fio says (sqthread_poll: registerfiles)
        if getattr(job, name):
            out.update({OPTIONS[implied].fio_name: None for implied in option.implies})
    return out


def _section(name, options, extra=()):
    lines = [f"[{name}]"]
    for key, value in options.items():
        lines.append(key if value is None else f"{key}={value}")
    lines.extend(extra)
    return "\n".join(lines) + "\n"


def fio_section(job, name=None, extra=()):
    name = name or job.name
    if _UNSAFE.search(name) or name.startswith("global"):     # fio reads [global...] as defaults, not a job
        raise OptionError("name", f"{name!r} cannot be a fio [section] name (nor can any name starting "
                                  "with 'global')")
    return _section(name, fio_options(job), extra)


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


def _fio_log(log_dir, jobs, u, j, kind):
    """Where fio writes a log of thread j of jobs[u] in the runner's job
    file: section kit.u.j is fio's thread number (its place) there."""
    number = sum(job.numjobs for job in jobs[:u]) + j + 1
    return os.path.join(log_dir, f"{u}.{j}_{kind}.{number}.log")


def runner_job_file(jobs, plans, prepared, log_dir=None, first_thread=1):
    """The job file the fio runner hands fio, and the descriptors fio must
    inherit. Every file is named /proc/self/fd/N, a descriptor kit opened
    and checked: fio opens that very inode whatever the path says by then,
    and nothing the user typed is ever parsed by fio. One section per kit
    job thread (fio's numjobs clones would share one file list), named
    kit.<job>.<thread>; kit merges them back. Logs go to log_dir, from
    where kit copies them to their names (_fio_log). Each section gets the
    CPUs its thread has in the job file (cpus_allowed_policy=split counts
    fio's thread numbers across the whole file, from first_thread)."""
    sections, fds = [], set()
    for u, (job, plan) in enumerate(zip(jobs, plans)):
        options = {k: v for k, v in fio_options(job, paths=False).items()
                   if k not in ("numjobs", "nrfiles", "group_reporting", "offset_increment")}
        if job.verify:      # else fio writes <section>-<n>-verify.state into its working directory
            options["verify_state_save"] = "0"

        numbers = logs.thread_numbers(job, first_thread)
        first_thread += job.numjobs
        for j, files in enumerate(plan.files):
            options = {**options, **{OPTIONS[o].fio_name: os.path.join(log_dir, f"{u}.{j}") for o in LOG_FILES
                                     if getattr(job, o) is not None}}
            cpus = job.cpus(numbers[j])
            if cpus is not None:
                options = {k: v for k, v in options.items() if k not in ("cpumask", "cpus_allowed_policy")}
                options["cpus_allowed"] = ",".join(map(str, cpus))
            if {"offset", "offset_increment"} & set(job.given()):
                # one section per thread: fio would number each one its first
                # clone, so each gets the offset kit worked out for it
                options = {**options, "offset": str(plan.regions[j][0][0])}
            if plan.diskless:           # fio's null engine opens nothing either
                sections.append(_section(f"kit.{u}.{j}", {**options, "nrfiles": str(len(files))}))
                continue
            names = []
            for f in files:
                fd = prepared.fd(f)
                fds.add(fd)
                names.append(f"/proc/self/fd/{fd}")
            sections.append(_section(f"kit.{u}.{j}", {**options, "filename": ":".join(names),
                                                      "nrfiles": str(len(names))}))
    return "\n".join(sections), sorted(fds)


# ---- fio job files -> Jobs ---------------------------------------------------

@dataclass
class JobFile:
    path: str
    groups: List[List[Job]]                 # run one group after another
    warnings: List[str] = field(default_factory=list)
    group_ids: List[int] = field(default_factory=list)   # fio's reporting group per job
    global_options: dict = field(default_factory=dict)   # [global] as written (fio's JSON)
    sections: List[str] = field(default_factory=list)    # each job's [section], in the jobs' order

    @property
    def jobs(self):
        return [j for g in self.groups for j in g]


ARITH_LIMIT = 1 << 64        # no option holds more; beyond it fio's own parser overflows
MAX_EXPRESSION = 256
INT32_MAX = (1 << 31) - 1

# fio 3.33's expression lexer (exp/expression-parser.l): suffix -> (factor, carries a fraction)
_SIZE_SUFFIXES = {"k": (1024, 0), "kb": (1024, 0), "mb": (1 << 20, 0), "m": (1 << 20, 0), "g": (1 << 30, 0),
                  "gb": (1 << 30, 0), "t": (1 << 40, 0), "tb": (1 << 40, 0), "p": (1 << 50, 0), "pb": (1 << 50, 0),
                  "kib": (1000, 0), "mib": (10**6, 0), "gib": (10**9, 0), "pib": (10**12, 0),
                  "s": (10**6, 0), "ms": (1000, 1), "us": (1, 1), "h": (3600 * 10**6, 0), "d": (86400 * 10**6, 0)}
_TIME_SUFFIXES = {**_SIZE_SUFFIXES, "m": (60 * 10**6, 0)}     # m is minutes in a time option
# its numbers: the longest of flex's rules first (1.5e3, .5, 0x10, 7; "1." is none)
_ARITH_TOKEN = re.compile(r"\s*(?:([0-9]*\.?[0-9]+e[-+]*[0-9]+|[0-9]*\.[0-9]+|0x[0-9a-f]+|[0-9]+)"
                          r"|([a-z]+)|([-+*/%^()]))", re.I | re.A)
INT64_LIMIT = 1 << 63


class _Value:
    """fio's expression value: an integer and a double computed side by
    side, and whether a fraction took part (has_dval), which decides which
    of the two an operator's integer answer comes from."""
    __slots__ = ("i", "d", "frac")

    def __init__(self, i, d, frac):
        self.i, self.d, self.frac = i, d, frac


def _arith(text, where, unit=None):
    """fio's arithmetic in parentheses (parse.c str_to_decimal with
    CONFIG_ARITHMETIC; Debian's fio 3.33 is built without it and refuses
    the value), by fio's grammar (exp/expression-parser.y), not Python's:
    / between integers drops the fraction (toward zero), ^ is the power
    (** is two multiplications, a syntax error), % binds tighter than ^, a
    suffix (k, m, ms, ...) multiplies what binds tighter before it, unary
    minus binds first, and each step's integer answer is what fio keeps
    (1.5k is 1024: fio truncates 1.5 before the suffix). unit: None for
    sizes and counts; "s" for options in seconds, "us" for ones in
    microseconds (a time suffix is in microseconds; no suffix means the
    option's unit). What fio would compute from garbage (a division by
    zero, % on a fraction) kit refuses. Every step stays within 64 bits,
    so no input computes for long. Returns the answer as text the option
    reads."""
    if len(text) > MAX_EXPRESSION:
        raise OptionError(None, f"{where}: expression longer than {MAX_EXPRESSION} characters")
    suffixes = _TIME_SUFFIXES if unit else _SIZE_SUFFIXES

    def fail(why="cannot evaluate"):
        raise OptionError(None, f"{where}: {why} {text[:40]!r} (fio's arithmetic: + - * / % ^, "
                                "integer division between integers)")

    if "**" in text:
        fail("fio's power is ^, not **: cannot evaluate")
    tokens, pos = [], 0
    while text[pos:].strip():
        m = _ARITH_TOKEN.match(text, pos)
        if not m:
            fail()
        number, word, op = m.groups()
        if word is not None and word.lower() not in suffixes:
            fail(f"{word!r} is no suffix fio's arithmetic knows here:")
        tokens.append(("n", number) if number else ("s", word.lower()) if word else ("o", op))
        pos = m.end()
    tokens.append(("end", None))
    at, units, last_frac = [0], [False], [0]

    def whole(x):
        """C's (long long) cast of a double, within 64 bits."""
        if not math.isfinite(x) or abs(x) >= INT64_LIMIT:
            raise OptionError(None, f"{where}: {text[:40]!r} is beyond 64 bits")
        return math.trunc(x)

    def value(i, d, frac):
        if abs(i) >= INT64_LIMIT or not math.isfinite(d) or abs(d) > 1e300:
            raise OptionError(None, f"{where}: {text[:40]!r} is beyond 64 bits")
        return _Value(i, float(d), frac)

    def number(token):
        if token.lower().startswith("0x"):
            n = int(token, 16) & 0xFFFFFFFF         # sscanf %x into an int
            n = n - (1 << 32) if n >= 1 << 31 else n
            last_frac[0] = 0
            return value(n, n, 0)
        if "." in token or "e" in token.lower():
            try:
                d = float(token)
            except ValueError:      # 1e--3: sscanf("%lf") takes what reads as a number, 1
                d = float(re.match(r"[0-9]*\.?[0-9]*", token).group().rstrip(".") or 0)
            last_frac[0] = 1
            return value(whole(d), d, 1)
        n = int(token)
        if n > INT32_MAX:           # fio reads integers with sscanf %d
            fail("a number beyond 2^31-1 (fio reads them as int) in")
        last_frac[0] = 0
        return value(n, n, 0)

    def c_div(a, b):
        return abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)

    def apply(op, a, b):
        ints = not a.frac and not b.frac
        if op in "+-*":
            d = {"+": a.d + b.d, "-": a.d - b.d, "*": a.d * b.d}[op]
            i = {"+": a.i + b.i, "-": a.i - b.i, "*": a.i * b.i}[op] if ints else whole(d)
            return value(i, d, a.frac)
        if op == "/":
            if b.i == 0 or -1e-20 < b.d < 1e-20:
                fail("divides by zero:")
            d = a.d / b.d
            return value(c_div(a.i, b.i) if ints else whole(d), d, a.frac)
        if op == "%":
            if not ints:
                fail("% on a fraction (fio: modulo on floats):")
            if b.i == 0:
                fail("divides by zero:")
            i = a.i - b.i * c_div(a.i, b.i)
            return value(i, i, a.frac)
        # '^'
        if abs(b.d) > 64 and abs(a.d) > 1:      # 2^64 is the most any option holds
            raise OptionError(None, f"{where}: {text[:40]!r} is beyond 64 bits")
        if a.d < 0 and not float(b.d).is_integer() or a.d == 0 and b.d < 0:
            fail()                              # fio: pow() gives NaN or infinity
        try:
            d = math.pow(a.d, b.d)
            i = (1 if b.i == 0 else a.i ** b.i if b.i > 0 else whole(math.pow(a.i, b.i))) if ints else whole(d)
        except (OverflowError, ZeroDivisionError):
            raise OptionError(None, f"{where}: {text[:40]!r} is beyond 64 bits") from None
        return value(i, d, a.frac)

    # fio's yacc precedence, loosest first: + -, suffix, * /, ^ (right), %, unary minus
    binary = {"+": 1, "-": 1, "*": 3, "/": 3, "^": 4, "%": 5}

    def primary():
        kind, token = tokens[at[0]]
        at[0] += 1
        if (kind, token) == ("o", "-"):
            # fio's rule keeps the '-' token's own has_dval: the lexer's last number's
            frac = last_frac[0]
            operand = primary()
            return value(-operand.i, -operand.d, frac)
        if (kind, token) == ("o", "("):
            inner = expression(0)
            if tokens[at[0]] != ("o", ")"):
                fail()
            at[0] += 1
            return inner
        if kind != "n":
            fail()
        return number(token)

    def expression(floor):
        left = primary()
        while True:
            kind, token = tokens[at[0]]
            if kind == "s" and floor <= 2:          # a suffix multiplies all that binds tighter before it
                at[0] += 1
                units[0] = True
                factor, frac = suffixes[token]
                last_frac[0] = frac
                if not left.frac and not frac:
                    left = value(left.i * factor, left.i * factor, 0)
                else:
                    left = value(whole(whole(left.d) * float(factor)), left.d * factor, left.frac)
                continue
            level = binary.get(token) if kind == "o" else None
            if level is None or level < floor:
                return left
            at[0] += 1
            left = apply(token, left, expression(level if token == "^" else level + 1))

    result = expression(0)
    if tokens[at[0]][0] != "end":
        fail()
    answer = result.i
    if not units[0]:
        scaled = answer * ({"s": 10**6, "us": 1}[unit] if unit else 1)
        if abs(scaled) > INT32_MAX:      # fio: *ival = (int) (ival * implied_units)
            fail("an answer beyond 2^31-1 without a unit suffix (fio keeps it in an int):")
        answer = scaled
    if unit == "s":
        return str(c_div(answer, 10**6))         # fio: ival / 1000000
    return str(answer)


_BC_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*|\.\d+)|([-+*/%^()]))", re.A)


def _bc(text, where):
    """What fio 3.33 does to a value in which it replaced $ncpus, $pagesize
    or $mb_memory and that holds + - * or / (options.c fio_keyword_replace,
    bc_calc): the value goes through `bc`, whose answer fio then reads
    (numjobs=$ncpus*2 is 4 on two CPUs). bc's rules at its default scale 0:
    / drops the fraction (toward zero), % is what that leaves, ^ is a power
    (right to left, after unary minus), * keeps the larger of the operands'
    decimals. What bc would refuse (a letter, a k suffix, a path) makes fio
    drop the job; kit refuses it in one line."""
    def fail():
        raise OptionError(None, f"{where}: bc cannot evaluate {text[:40]!r} (fio hands a value to bc when it "
                                "replaced $ncpus, $pagesize or $mb_memory in it and it has + - * or /)")

    if "--" in text or "++" in text:     # bc's decrement and increment: not for numbers
        fail()
    tokens, pos = [], 0
    while text[pos:].strip():
        m = _BC_TOKEN.match(text, pos)
        if not m:
            fail()
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
    tokens.append(None)
    at = [0]

    def take():
        at[0] += 1
        return tokens[at[0] - 1]

    def cut(value, scale):          # bc truncates toward zero at the result's scale
        unit = Fraction(10) ** scale
        value = Fraction(math.trunc(value * unit)) / unit
        if abs(value) > ARITH_LIMIT:
            raise OptionError(None, f"{where}: {text[:40]!r} is beyond 64 bits")
        return value, scale

    def primary():
        token = take()
        if token == "(":
            value = expr()
            if take() != ")":
                fail()
            return value
        if token == "-":            # bc: unary minus binds before ^ (-2^2 is 4)
            value, scale = primary()
            return -value, scale
        if token is None or token in "+*/%^)":
            fail()
        return Fraction(token), len(token.partition(".")[2])

    def power():
        base = primary()
        if tokens[at[0]] != "^":
            return base
        take()
        exponent, _ = power()
        if exponent.denominator != 1 or abs(exponent) > 64 and abs(base[0]) > 1:
            fail()
        if base[0] == 0 and exponent < 0:
            fail()
        return cut(base[0] ** int(exponent), min(base[1] * abs(int(exponent)), base[1]))

    def term():
        value = power()
        while tokens[at[0]] in ("*", "/", "%"):
            op, (right, rscale) = take(), power()
            if op == "*":
                value = cut(value[0] * right, min(value[1] + rscale, max(value[1], rscale)))
                continue
            if right == 0:
                fail()
            quotient = Fraction(math.trunc(value[0] / right))
            value = cut(quotient, 0) if op == "/" else \
                cut(value[0] - quotient * right, max(value[1], rscale))
        return value

    def expr():
        value = term()
        while tokens[at[0]] in ("+", "-"):
            op, (right, rscale) = take(), term()
            value = cut(value[0] + right if op == "+" else value[0] - right, max(value[1], rscale))
        return value

    value, scale = expr()
    if tokens[at[0]] is not None:
        fail()
    if value.denominator == 1:
        return str(value.numerator)         # bc's 5.0 is fio's 5
    digits = str(abs(value.numerator * 10 ** scale // value.denominator)).zfill(scale + 1)
    return f"{'-' if value < 0 else ''}{digits[:-scale]}.{digits[-scale:]}"


def _substitute(value, env, where, unit=None):
    def var(m):
        name = m.group(1) or m.group(2)
        if name in env:
            return env[name]
        raise OptionError(None, f"{where}: ${{{name}}} is not set in the environment")
    keywords = {"ncpus": str(os.cpu_count() or 1), "pagesize": str(os.sysconf("SC_PAGE_SIZE")),
                "mb_memory": str(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20)}
    value = re.sub(r"\$\{(\w+)\}", var, value)
    replaced = re.sub(r"\$(ncpus|pagesize|mb_memory)", lambda m: keywords[m.group(1)], value)
    if replaced != value and re.search(r"[-+*/]", replaced) and "'" not in replaced and len(replaced) <= 100:
        replaced = _bc(replaced, where)         # fio's bc_calc (options.c), its limits included
    value = replaced
    if value.startswith("(") and value.endswith(")"):
        value = _arith(value[1:-1], where, unit)
    return value


MAX_JOB_FILE = 1 << 20      # bytes: job files are small; /dev/zero is not one
MAX_INCLUDE_DEPTH = 16
MAX_INCLUDED_FILES = 256    # inclusions in all, so a file included by every section stays cheap


def _lines(path):
    """(line, where) for each line of a job file that is not blank or a comment."""
    text = read_text_file(path, "job file", MAX_JOB_FILE)
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"[;#]", raw.strip(), maxsplit=1)[0].strip()     # fio's comments, inline ones too
        if line:
            yield line, f"{os.path.basename(path)}:{number}"


def _option(line, where):
    key, sep, value = line.partition("=")
    if sep and value[:1] in (" ", "\t") and value.strip() and key.strip() in FIO_TO_KIT:
        # fio 3.33 keeps the blank: 'bs= 8k' is 8 bytes to it (the blank stops the suffix), 'rw= read'
        # fails; kit would read what was meant, so a file means one thing in each: refused
        raise OptionError(None, f"{where}: {key.strip()}={value}: a blank after '=' (fio 3.33 reads "
                                f"'bs= 8k' as 8 bytes, and refuses 'rw= read'): write {key.strip()}={value.strip()}")
    return key.strip(), value.strip() if sep else None, where


def _include_path(name, including):
    """Where fio 3.33 (init.c __parse_jobs_ini) looks for an included file:
    the name as written when it exists (relative to the working directory),
    else beside the including file."""
    if os.path.exists(name) or "/" not in including:
        return name
    return including[:including.rindex("/") + 1] + name


def _included(line, where, including, chain, count):
    """The options of an include line, as fio 3.33 reads one (init.c): the
    line is 'include' and one separator before the file's name, and the
    file holds options only ("No new sections in included files"), which
    join the section the include stands in. chain: the real paths of the
    files including this one; count: [inclusions so far]."""
    name = line[len("include") + 1:]
    if not name:
        raise OptionError(None, f"{where}: include needs a file name")
    path = _include_path(name, including)
    real = os.path.realpath(path)
    if real in chain:
        raise OptionError(None, f"{where}: {path} includes itself (through {len(chain)} file(s))")
    count[0] += 1
    if len(chain) > MAX_INCLUDE_DEPTH or count[0] > MAX_INCLUDED_FILES:
        raise OptionError(None, f"{where}: includes nested deeper than {MAX_INCLUDE_DEPTH} or more than "
                                f"{MAX_INCLUDED_FILES} inclusions")
    options = []
    for line, where in _lines(path):
        if line.startswith("["):
            raise OptionError(None, f"{where}: {line} in an included file: fio allows options only there "
                                    "(they join the section the include stands in)")
        if line.startswith("include"):
            options.extend(_included(line, where, path, chain + (real,), count))
        else:
            options.append(_option(line, where))
    return options


def _sections(path):
    """(section, [(key, value or None, line-ref)]) in order, includes
    followed (_included)."""
    out, current, count = [], None, [0]
    chain = (os.path.realpath(path),)
    for line, where in _lines(path):
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise OptionError(None, f"{where}: malformed section header {line!r}")
            current = (line[1:-1].strip(), [])
            out.append(current)
            continue
        if current is None:
            raise OptionError(None, f"{where}: {line!r} before any [section] (fio allows options, "
                                    "include too, only inside one)")
        if line.startswith("include"):      # fio: any line starting so (init.c strncmp)
            current[1].extend(_included(line, where, path, chain, count))
        else:
            current[1].append(_option(line, where))
    return out


# fio's flag options kit takes and ignores (kit always runs threads)
FIO_FLAGS_KIT_IGNORES = ("thread",)


def _time_unit(key):
    """The unit fio's arithmetic gives a bare answer for the option: "s"
    for one in seconds, "us" for one in microseconds, None otherwise."""
    option = OPTIONS.get(FIO_TO_KIT.get(key))
    if option is None:
        return None
    return "us" if option.parse_value is parse_usec else "s" if option.kind == "time" else None


def _may_stand_alone(key):
    """Whether fio 3.33 takes the option without a value (parse.c
    __handle_option: only types FIO_OPT_STR_SET, the flags, and FIO_OPT_STR
    without a list of values, which of kit's options are the write_*_log
    ones: a bare log is named after the job). Every other bare option is
    fio's "Option bs requires an argument"."""
    if key in ORDERING or key in FIO_FLAGS_KIT_IGNORES:
        return True
    option = OPTIONS.get(FIO_TO_KIT.get(key))
    return option is not None and (option.flag or option.name in LOG_FILES)


def _fio_name(key):
    """The name fio's JSON lists one of fio's options under (kit's JSON
    too, though kit ignores it or runs as it says anyway): fio's own name
    for an alias (disable_bw is disable_bw_measurement)."""
    for table in (fio_names.GENERAL, fio_names.ENGINE, fio_names.PROFILE):
        if key in table:
            return table[key][0]
    return key


# fio's file names when filename_format is not given (init.c make_filename)
FIO_FILENAME_FORMAT = "$jobname.$jobnum.$filenum"


def _section_engine(options, env):
    """(value, where) of the last ioengine a section's own lines give, else
    None."""
    found = None
    for key, value, where in options:
        if FIO_TO_KIT.get(key) == "ioengine" and value is not None:
            found = (_substitute(value, env, where), where)
    return found


def _check_engine(engine, section):
    """An ioengine kit does not have (fio's e4defrag, net, http, ...) is
    refused naming it: that is what keeps the job from running, not the
    engine's own options (donorname, port), which would be named first
    otherwise, one at a time, each with 'take it out'."""
    if engine is None:
        return
    text, where = engine
    try:
        OPTIONS["ioengine"].parse(text)
    except OptionError as e:
        raise OptionError(None, f"{where} [{section}]: ioengine: {e.problem}") from None


def _engine_name(engine):
    """The engine a section's (text, where) names; fio's default (psync)
    for None."""
    try:
        return OPTIONS["ioengine"].parse(engine[0] if engine else OPTIONS["ioengine"].default)
    except OptionError:
        return engine[0]        # one kit does not have: refused by _check_engine where a job uses it


def _kit_has(engine):
    try:
        _check_engine(engine, "")
        return True
    except OptionError:
        return False


def _check_engine_options(values, engine, section):
    """An engine's option in [global] is read with [global]'s engine, as fio
    does (it refuses the job file otherwise, "Bad option")."""
    name = _engine_name(engine)
    for key in values:
        engines = OPTIONS[key].engines if key in OPTIONS else ()
        if engines and name not in engines:
            said = "" if engine else " (fio's default)"
            raise OptionError(None, f"{section}: {key}: only ioengine={' or '.join(engines)} has it, and this "
                                    f"section's ioengine is {name}{said}; fio refuses it too: set ioengine there "
                                    "first, or move the option to the job that uses that engine")


def _drop_engine_options(options, written, refused, own, warnings, where, engine, left):
    """A section that loads another engine than [global]'s leaves the options
    of [global]'s engine behind (fio frees them with the engine): removed
    from options (kit names) and written (fio's), with one warning; own: the
    section's own values, which stay."""
    own = {canonical_option(k) for k in (own or ())}
    dropped = [k for k in options if k in OPTIONS and OPTIONS[k].engines and canonical_option(k) not in own]
    for k in dropped:
        del options[k]
    gone = {canonical_option(k) for k in dropped}
    for k in [k for k in written if canonical_option(FIO_TO_KIT.get(k, k)) in gone]:
        del written[k]
    dropped += list(refused)
    refused.clear()
    if dropped:
        warnings.append(f"{where}: ioengine={_engine_name(engine)} here, so [global]'s "
                        f"{', '.join(dropped)} (options of ioengine={_engine_name(left)}) do not apply, as in fio")


def _files_after_section(merged, section):
    """fio names a job's files after its [section] even when the section
    says name= (init.c add_job passes the section's name to make_filename;
    name= only renames the job in fio's report and logs): the files keep
    the section's name through filename_format."""
    if merged["name"] == section or "filename" in merged:
        return merged
    fmt = (merged.get("filename_format") or FIO_FILENAME_FORMAT).replace("$jobname", section)
    try:
        OPTIONS["filename_format"].parse(fmt)
    except OptionError:
        raise OptionError("name", f"fio names this job's files after its section, and {section!r} cannot be "
                                  "part of a file name in kit (no '/' nor control characters): rename the "
                                  "section") from None
    return {**merged, "filename_format": fmt}


def _check_inherited_kb_base(defaults, values, where):
    """fio reads [global]'s sizes with [global]'s kb_base; a section that
    sets another kb_base does not re-read them (kit would): refused when a
    section would inherit a size under a kb_base it was not written in."""
    if "kb_base" not in values:
        return
    own = str(values["kb_base"]).strip()
    inherited = str(defaults.get("kb_base", "1024")).strip()
    sizes = [k for k in defaults if k not in values and OPTIONS.get(canonical_option(k)) is not None
             and OPTIONS[canonical_option(k)].kind == "size"]
    if own != inherited and sizes:
        raise OptionError(None, f"{where}: kb_base={own} while [global]'s {sizes[0]}= was written under "
                                f"kb_base={inherited} (fio keeps [global]'s reading, kit would re-read it): "
                                f"set kb_base in [global], or {sizes[0]}= in this section")


def _join_filenames(first, then, where):
    """Two filename= values as one list (fio adds both lines' files)."""
    if first.endswith("\\"):
        raise OptionError(None, f"{where}: filename={first} ends in '\\' and another filename= follows: kit "
                                "cannot join them (the ':' between them would read as escaped); rename the file")
    return f"{first}:{then}"


def _check_file_directories(merged, dirs, where):
    """fio joins each filename= line with the directory= of the section it
    is in, as that section ends ([global]'s files ignore a job's
    directory=); kit joins every name with the job's: the two must agree."""
    final = merged.get("directory")
    for known in dirs:
        if known != final:
            raise OptionError(None, f"{where}: [global]'s filename= is joined with [global]'s directory "
                                    f"({known or 'none'}) by fio, not with this job's directory={final or ''}: "
                                    "set directory= in [global], or filename= in the job")


# Where kit's defaults are not fio's, a fio job file means fio's: a job that
# does not say invalidate= has its page cache dropped first, and submits one
# I/O per call (fio 3.33's defaults; kit's are 0 and every free slot)
FIO_DEFAULTS = {name: option.text(option.fio_default) for name, option in OPTIONS.items()
                if option.fio_default is not None}


def read_job_file(path, env=None, strict=False):
    """Parses a fio job file into groups of Jobs. An option name fio 3.33
    does not take, or one kit cannot run, is an OptionError; one that
    changes only fio's output gives one warning each (an OptionError with
    strict=True): kit.job.fio_option_verdict."""
    env = {**env_defaults(), **os.environ, **(env or {})}
    sections = _sections(path)
    if not sections:
        raise OptionError(None, f"{path}: no job sections")
    defaults, groups, warnings, group_ids, job_sections, global_file_dirs = {}, [], [], [], [], []
    group_id, global_ordering, global_written, global_engine = 0, set(), {}, None
    global_refused = {}         # [global]'s options of its engine that kit cannot run: refused in a job that keeps it
    for name, options in sections:
        is_global = name.startswith("global")      # [global_defaults] too: fio's strncmp(name, "global", 6)
        own_engine = _section_engine(options, env)
        engine = own_engine or global_engine
        # fio keeps an engine's options with the engine: a section that loads another one starts from
        # that engine's defaults, and [global]'s options of the engine it leaves do not apply to it
        switched = own_engine is not None and _engine_name(own_engine) != _engine_name(global_engine)
        if is_global and switched:
            _drop_engine_options(defaults, global_written, global_refused, None, warnings,
                                 f"{own_engine[1]} [{name}]", own_engine, global_engine)
        if not is_global:
            _check_engine(engine, name)
        values, ordering, written, file_dirs = {}, set(), {}, []
        for key, value, where in options:
            if key in OPTIONS and not OPTIONS[key].job_file:
                raise OptionError(None, f"{where}: {key}: {COMMAND_LINE_ONLY.format(flag=key.replace('_', '-'))}")
            known = key in FIO_TO_KIT or key in ORDERING
            fio_knows = key in NO_EFFECT or any(key in t for t in (fio_names.GENERAL, fio_names.ENGINE,
                                                                    fio_names.PROFILE))
            if value is None and (not _may_stand_alone(key) if known else
                                  fio_knows and key not in fio_names.STANDS_ALONE):
                raise OptionError(None, f"{where}: {key} needs a value ({key}=...): only fio's flag options, "
                                        "such as time_based, stand alone")
            # names as fio 3.33 matches them: exactly (time-based and BS are not time_based and bs)
            if key not in FIO_TO_KIT and key not in ORDERING:
                said = _substitute(value, env, where) if key in NO_EFFECT and value else value
                verdict, why = fio_option_verdict(key, said)
                if verdict == "refuse" and is_global and key in fio_names.ENGINE and \
                        _engine_name(engine) in fio_names.ENGINE[key][2] and _kit_has(engine):
                    global_refused[key] = f"{where} [{name}]: {key}: {why}"     # fio drops it with the engine
                    continue
                if verdict in ("refuse", "unknown"):
                    _check_engine(engine, name)
                    raise OptionError(None, f"{where} [{name}]: {key}: {why}")
                if verdict == "warn":
                    _unsupported(warnings, strict, f"{where} [{name}]", f"{key}: {why}")
                elif why:
                    warnings.append(f"{where} [{name}]: {key}: {why}")
                if value:                   # fio's JSON lists it all the same (description, randrepeat=1, ...)
                    written[_fio_name(key)] = said if key in NO_EFFECT else _substitute(value, env, where)
                continue
            text = bare_value(key) if value is None else _substitute(value, env, where, _time_unit(key))
            if value is not None and not text.strip() and FIO_TO_KIT.get(key) not in LOG_FILES:
                # fio 3.33 refuses 'bs=' ("failed parsing"); an empty log name is the job's, as a bare one
                said = f" ({value} is empty)" if value else ""
                raise OptionError(None, f"{where}: {key}= has no value{said}: give one, or leave the line out "
                                        "(an empty value is not the default)")
            if _time_unit(key) and "." in text:
                raise OptionError(None, f"{where}: {key}={text}: fio 3.33 reads no fraction in a time (it stops "
                                        "at the '.', unit and all): write a whole number with a unit, e.g. "
                                        "1500ms for 1.5s")
            if FIO_TO_KIT.get(key) == "directory" and ":" in text:
                raise OptionError(None, f"{where}: directory: {text!r} has a ':', which in fio separates several "
                                        "directories its files are spread over; kit takes one directory, "
                                        "without ':'")
            if key in ORDERING:
                try:
                    on = parse_int(key, text) != 0      # fio: any integer, 0 off (stonewall=false fails)
                except OptionError as e:
                    raise OptionError(None, f"{where}: {key}: {e.problem}") from None
                if on:
                    ordering.add(key)
                if value:                   # stonewall=1 is listed, a bare stonewall not
                    written[key] = text
                continue
            if key == "name":
                written["name"] = text          # fio's JSON lists it, [global]'s too
                if not is_global:               # fio names each job after its section whatever [global] says
                    values["name"] = text
                continue
            if value:                   # fio's JSON lists options given a value, by fio's name
                written[written_name(key)] = text
            if FIO_TO_KIT[key] == "filename":
                file_dirs.append(None)          # its section's directory, known at the section's end
                if "filename" in values:
                    text = _join_filenames(values["filename"], text, where)     # each line adds its files
            values[FIO_TO_KIT[key]] = text
        # fio reads a section's directory= before its filename= lines, whatever their order
        # (filename's priority is lower): each name joins the directory the section ends with
        file_dirs = [values.get("directory", defaults.get("directory"))] * len(file_dirs)
        if is_global:
            _check_engine_options(values, engine, f"{os.path.basename(path)} [{name}]")
            global_engine = engine
            if "filename" in values and "filename" in defaults:
                values["filename"] = _join_filenames(defaults["filename"], values["filename"], name)
            global_file_dirs += file_dirs
            defaults.update(values)
            global_written.update(written)
            global_ordering |= ordering          # stonewall in [global]: every job waits for the one before
            continue
        ordering |= global_ordering
        inherited, inherited_written = defaults, global_written
        if switched:
            inherited, inherited_written = dict(defaults), dict(global_written)
            _drop_engine_options(inherited, inherited_written, dict(global_refused), values, warnings,
                                 f"{os.path.basename(path)} [{name}]", own_engine, global_engine)
        elif global_refused:
            raise OptionError(None, next(iter(global_refused.values())))
        # the job's own setting wins over [global]'s under any of its names (bs over blocksize, rwmixwrite
        # over rwmixread), as in fio, where the job section is read on top of a copy of [global]
        _check_inherited_kb_base(inherited, values, f"{os.path.basename(path)} [{name}]")
        mine = {canonical_option(k) for k in values}
        merged = {"name": name, **{k: v for k, v in inherited.items() if canonical_option(k) not in mine}, **values}
        if "filename" in values and "filename" in inherited:
            merged["filename"] = _join_filenames(inherited["filename"], values["filename"], name)  # [global]'s first
        _check_file_directories(merged, (global_file_dirs if "filename" in inherited else []) + file_dirs,
                                f"{os.path.basename(path)} [{name}]")
        given = {canonical_option(k) for k in merged}
        merged.update({k: v for k, v in FIO_DEFAULTS.items() if k not in given})
        from_global = [k for k in inherited_written if k not in written]
        written = {**{k: inherited_written[k] for k in from_global}, **written}
        try:
            job = Job.from_options(_files_after_section(merged, name), written=written, from_global=from_global)
        except OptionError as e:
            label = f"{e.option}: " if e.option else ""
            raise OptionError(None, f"{os.path.basename(path)} [{name}]: {label}{e.problem}") from None
        if not groups or "stonewall" in ordering or "wait_for_previous" in ordering:
            if groups:
                group_id += 1
            groups.append([job])
        else:
            if "new_group" in ordering:
                group_id += 1
            groups[-1].append(job)
        group_ids.append(group_id)
        job_sections.append(name)
    if not groups:
        raise OptionError(None, f"{path}: only [global] sections, no jobs")
    return JobFile(path, groups, warnings, group_ids, global_written, job_sections)


def read_job(path, section=None, env=None, strict=False):
    """The Job of a fio job file: its only job, or the section named."""
    jobs = read_job_file(path, env=env, strict=strict).jobs
    if section is not None:
        match = [j for j in jobs if j.name == section]
        if not match:
            raise OptionError("section", f"{path} has no [{section}] (it has {', '.join(j.name for j in jobs)})")
        return match[0]
    if len(jobs) != 1:
        raise OptionError("section", f"{path} has {len(jobs)} jobs ({', '.join(j.name for j in jobs)}): "
                                     "name one, or use kit.fio.read_job_file()")
    return jobs[0]


def _unsupported(warnings, strict, where, what):
    """One warning per fio option kit ignores; an error with --strict."""
    if strict:
        raise OptionError(None, f"{where}: {what} (--strict)")
    warnings.append(f"{where}: {what}; ignored")


# ---- fio as a runner -------------------------------------------------------------

def fio_binary():
    path = shutil.which("fio")
    if not path:
        raise RunError("runner=fio: fio is not installed (Debian: apt-get install fio)")
    return path


def check_job(job):
    """What the fio runner can refuse a job for before any write: fio cannot
    run it as kit means it, or its files break a safety rule. Returns the
    job's plan."""
    fio_binary()
    fio_options(job, paths=False)
    if job.verify and not job.writes:
        raise OptionError("verify", "fio checks its own format, not kit's pattern; verify reads with runner=kit")
    plan = targets.plan(job)
    if job.is_trim and any(f.kind != "block" for f in plan.unique_files) and not plan.diskless:
        raise OptionError("rw", f"fio 3.33 trims block devices only (on files it fails with ENOTTY); "
                                f"kit's runner punches holes: use runner=kit for rw={job.rw} on files")
    return plan


def run_fio_together(jobs, progress=None, machine=True, first_thread=1):
    """Runs jobs at the same time in one fio process, on the files kit
    planned, checked, prepared and holds open (see runner_job_file);
    first_thread: fio's number of the first job thread (in log names)."""
    fio = fio_binary()
    plans = [check_job(job) for job in jobs]
    logs.check(jobs, first_thread)
    logs.check_apart(jobs, first_thread, [f.path for p in plans if not p.diskless for f in p.unique_files])
    with targets.prepare(plans, progress=progress) as prepared, \
            tempfile.TemporaryDirectory(prefix="kit-fio-logs-") as log_dir:
        text, fds = runner_job_file(jobs, plans, prepared, log_dir, first_thread)
        outcome = _run_fio_process(fio, text, fds)
        logs.adopt(jobs, first_thread, lambda u, j, kind: _fio_log(log_dir, jobs, u, j, kind))
        for plan in plans:
            prepared.finish(plan)           # fio wrote its own bytes, not kit's pattern
        changed = prepared.changed_paths()
    output, stderr, usage, wall, returncode, interrupted = outcome
    data = None
    if output.strip():
        try:
            data = parse_fio_json(output, source="fio output")
        except OptionError:
            data = None
    if data is None:
        if interrupted:
            raise KeyboardInterrupt
        raise RunError(f"fio failed: {_fio_reason(stderr, returncode)}")
    results = results_from_fio(data, jobs=jobs, groups=_runner_groups(data["jobs"], jobs),
                               process=_process_from_wait4(usage, wall), plans=plans,
                               machine=fingerprint_for(None if plans[0].diskless else plans[0].unique_files[0].path)
                               if machine else None,
                               notes=[f"fio stderr: {l}" for l in stderr.splitlines() if l.strip()][:5])
    for r, plan in zip(results, plans):
        r.data["interrupted"] = interrupted
        r.data["notes"] += [changed[f.path] for f in plan.unique_files if f.path in changed]
    failed = next((r for r in results if r.data["error"]), None)
    if failed and not interrupted:
        exc = RunError(failed.data["error"]["message"])
        exc.result, exc.results = failed, results
        raise exc
    if returncode != 0 and not interrupted:
        raise RunError(f"fio failed: {_fio_reason(stderr, returncode)}")
    return results


def _runner_groups(entries, jobs):
    """The fio runner's sections kit.<job>.<thread>, back to kit's jobs."""
    grouped = [[] for _ in jobs]
    for e in entries:
        m = re.fullmatch(r"kit\.(\d+)\.(\d+)", str(e.get("jobname")))
        if not m or int(m.group(1)) >= len(jobs):
            raise RunError(f"fio output has a job kit did not write: {e.get('jobname')!r}")
        e["jobname"] = jobs[int(m.group(1))].name
        grouped[int(m.group(1))].append(e)
    return [((job.name, 0), group) for job, group in zip(jobs, grouped)]


def _run_fio_process(fio, jobfile_text, fds):
    """Runs fio on the job text, passing it the descriptors; Ctrl-C (or
    SIGTERM) asks fio to stop as fio's own Ctrl-C does, so what it measured
    until then is kept. Returns (output, stderr, rusage, wall ns, exit code,
    interrupted)."""
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="kit-fio-") as tmp:
        jobfile = os.path.join(tmp, "job.fio")
        output = os.path.join(tmp, "out.json")
        with open(jobfile, "w") as fh:
            fh.write(jobfile_text)
        with open(os.path.join(tmp, "stderr"), "w+") as err:
            start = time.monotonic_ns()
            try:
                # in a folder of its own: whatever fio writes beside it (state files) lands there, not in
                # the user's working directory (every path the job file names is absolute)
                proc = subprocess.Popen([fio, "--output-format=json+", f"--output={output}", jobfile],
                                        stdout=err, stderr=err, pass_fds=fds, start_new_session=True, cwd=tmp)
            except OSError as e:
                raise RunError(f"runner=fio: cannot start fio: {e.strerror}") from None
            while True:
                try:
                    _pid, status, usage = os.wait4(proc.pid, 0)
                    break
                except KeyboardInterrupt:
                    # first: fio's own stop (it reaps, then writes its output); again: at once
                    proc.send_signal(signal.SIGKILL if interrupted else signal.SIGINT)
                    interrupted = True
            wall = time.monotonic_ns() - start
            err.seek(0)
            stderr = err.read().strip()
        try:
            with open(output) as fh:
                text = fh.read()
        except OSError:
            text = ""
    return text, stderr, usage, wall, os.waitstatus_to_exitcode(status), interrupted


def _fio_reason(stderr, returncode):
    """The line of fio's that says why, else its exit status."""
    lines = [l.strip() for l in stderr.splitlines() if l.strip()]
    telling = [l for l in lines if "err" in l.lower() or l.startswith("fio:")]
    return (telling or lines or [f"exit status {returncode}"])[0]


def _process_from_wait4(ru, wall_ns):
    """The fio process as a whole (all its threads, set-up included)."""
    usr, sys_ = ru.ru_utime * 1e9, ru.ru_stime * 1e9
    return {"usr_cpu": 100.0 * usr / wall_ns if wall_ns else 0.0,
            "sys_cpu": 100.0 * sys_ / wall_ns if wall_ns else 0.0,
            "ctx": int(ru.ru_nvcsw + ru.ru_nivcsw), "ctx_voluntary": int(ru.ru_nvcsw),
            "ctx_involuntary": int(ru.ru_nivcsw), "majf": int(ru.ru_majflt), "minf": int(ru.ru_minflt),
            "usr_ns": int(usr), "sys_ns": int(sys_), "wall_ns": int(wall_ns), "threads": None,
            "helper_threads": {}, "scope": "the fio process, from wait4 (set-up and layout included)"}


# ---- side by side ------------------------------------------------------------------

# per direction: each direction of one runner beside the same direction of
# the other, labelled (a mixed job's reads are never set against its writes)
DIRECTION_ROWS = (
    ("IOPS", lambda e: e["iops"]),
    ("bw (bytes/s)", lambda e: e["bw_bytes"]),
    ("clat p50 (ns)", lambda e: e["clat_ns"].get("percentile", {}).get(hist.percentile_key(50.0))),
    ("clat p99 (ns)", lambda e: e["clat_ns"].get("percentile", {}).get(hist.percentile_key(99.0))),
    ("clat p99.9 (ns)", lambda e: e["clat_ns"].get("percentile", {}).get(hist.percentile_key(99.9))),
)
SYNC_ROW = "syncs"
JOB_ROWS = (
    ("usr_cpu (%)", lambda r: r.total["usr_cpu"]),
    ("sys_cpu (%)", lambda r: r.total["sys_cpu"]),
    ("ctx, job threads", lambda r: r.total["ctx"]),
    ("ctx, whole process", lambda r: (r.data.get("process") or {}).get("ctx")),
)


def compare(kit_result, fio_result):
    """Rows (metric, kit, fio, kit/fio): per direction either runner moved
    data in ("read IOPS", "write clat p99 (ns)", ...), then the job's CPU
    and context switches."""
    rows = []
    for d in DDIRS:
        if not (kit_result.total[d]["total_ios"] or fio_result.total.get(d, {}).get("total_ios")):
            continue
        for name, get in DIRECTION_ROWS:
            rows.append((f"{d} {name}", get(kit_result.total[d]), get(fio_result.total[d])))
    syncs = [(r.total.get("sync") or {}).get("total_ios", 0) for r in (kit_result, fio_result)]
    if any(syncs):
        # fio 3.33 issues a sync whenever the last I/O to complete was not one
        # and its issued writes are a multiple of fsync (io_u.c get_rw_ddir):
        # several while the first is in flight on an async engine, again after
        # each read in a mixed job; kit one per fsync writes. The count says
        # whether the rows above measured the same workload.
        rows.append((SYNC_ROW, *syncs))
    rows += [(name, get(kit_result), get(fio_result)) for name, get in JOB_ROWS]
    return [(name, a, b, a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None)
            for name, a, b in rows]
