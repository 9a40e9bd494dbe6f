"""Every option kit knows, declared once: fio's name, type, default, unit,
the engines that take it, its help. The job model, the command line's
flags, fio job files in and out, doctor's feature probes and a result's
label all read these declarations; an engine's own options are declared
beside the engine (kit/engines/<name>.py) in the same form.

Values are parsed to one canonical form whatever the spelling ('4k', 4096,
'4000KiB'), with fio's units (parse_size); a bad value raises OptionError
naming the option and what is allowed."""
import os
import re
import dataclasses
from dataclasses import dataclass
from typing import Callable, Optional

from .errors import OptionError

RW_MODES = ("read", "write", "randread", "randwrite", "rw", "randrw", "trim", "randtrim")
DDIRS = ("read", "write", "trim")     # the directions a result reports, as fio's
VERIFY_MODES = ("", "crc32c")
MAX_IODEPTH = 4096          # the C depth histograms count exactly up to here
MAX_BS = 256 << 20
DEFAULT_SIZE = 128 << 20
MAX_SIZE = 1 << 60          # 1024p: beyond any device, and far from 64-bit overflow
MAX_SECONDS = 10 * 365 * 86400
UINT32_MAX = (1 << 32) - 1
INT64_MAX = (1 << 63) - 1

_INT_RE = re.compile(r"^[+-]?(0x[0-9a-f]{1,16}|[0-9]{1,40})$", re.I)    # fio's: decimal or 0x hex
# re.A: \d and \s are ASCII only, as in fio (Python's int() would read '４' and '٢' as digits)
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(?:([kmgtp])(ib|b)?|b)?\s*$", re.I | re.A)
_TIME_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(usec|us|msec|ms|s|m|h|d)?\s*$", re.I | re.A)
# fio's strtoll(.., 16) for a value with 0x: the digits, and no unit after them (parse.c str_to_decimal
# reads the unit from the first letter, which is the x: '0x10k' is 16)
_HEX_SIZE_RE = re.compile(r"^\s*0x([0-9a-f]{1,16})\s*$", re.I | re.A)
# a number and a word fio 3.33 takes for a time without knowing it as a unit (parse.c get_mult_time:
# 'sec', 'min' multiply by 1, i.e. microseconds)
_TIME_WORD_RE = re.compile(r"^\s*\d+\s*([a-z]+)\s*$", re.I | re.A)
_SIZE_POWERS = {None: 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
KB_BASES = (1024, 1000)
_TIME_UNITS = {"us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


# ---- value parsers: each takes what a user may write, returns the canonical value

_ASCII_SPACE = " \t\n\r\v\f"
_DECIMAL_RE = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*", re.A)


def decimal(text):
    """A plain decimal number as fio's strtod reads one in these options;
    ValueError for anything else (Python's float() also takes '1e3', 'nan',
    'inf', '1_0' and non-ASCII digits)."""
    if not _DECIMAL_RE.fullmatch(str(text)):
        raise ValueError(text)
    return float(text)

def short(value):
    """A value as quoted in an error line, cut when it is huge."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Percent(float):
    """fio's size=N%: a share of the file's real size, known once the file is
    looked at (kit.target)."""
    def __str__(self):
        return f"{float(self):g}%"

    def __repr__(self):
        return f"Percent({float(self):g})"

    def of(self, real):
        return int(real * float(self) / 100)


def parse_size_or_percent(option, value, kb_base=1024):
    """A size, or fio's N% (1 to 100) of the file's real size."""
    if isinstance(value, Percent):
        return value
    text = str(value).strip()
    if not isinstance(value, (int, bool)) and text.endswith("%"):
        try:
            n = decimal(text[:-1])
        except ValueError:
            n = -1
        if not 0 < n <= 100:
            raise OptionError(option, f"must be a size (4k, 1m, 2g) or a percentage from 1% to 100% (got {value!r})")
        return Percent(n)
    return parse_size(option, value, kb_base)


def parse_size(option, value, kb_base=1024):
    """fio sizes: 4096, 4k, 1m, 2g, with fio 3.33's units (parse.c
    __get_mult_bytes). kb_base=1024, fio's default ("compatibility mode"):
    k, kb, m, mb, ... are powers of 1024 and the IEC forms KiB, MiB, ...
    powers of 1000 (fio's "opposite units", kept for old job files);
    kb_base=1000: kB, MB, ... are powers of 1000 and KiB, MiB, ... of 1024."""
    if isinstance(value, bool):
        raise OptionError(option, f"must be a size like 4096, 4k, 1m, 2g (got {value!r})")
    if isinstance(value, int):
        n = value
    elif str(value).strip().endswith("%"):
        raise OptionError(option, f"must be a size like 4096, 4k, 1m, 2g; a percentage ({value}) only "
                                  "size, io_size, offset and offset_increment take")
    elif (h := _HEX_SIZE_RE.match(str(value))):
        n = int(h.group(1), 16)
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise OptionError(option, f"must be a size like 4096, 4k, 1m, 2g (got {short(value)})")
        if len(m.group(1)) > 30:
            raise OptionError(option, f"must be at most 1024p (got {short(value)})")
        unit = m.group(2).lower() if m.group(2) else None
        iec = (m.group(3) or "").lower() == "ib"
        base = {1024: 1000, 1000: 1024}[kb_base] if iec else kb_base
        n = int(m.group(1)) * base ** _SIZE_POWERS[unit]
    if n < 0:
        raise OptionError(option, f"must not be negative (got {value!r})")
    if n > MAX_SIZE:
        raise OptionError(option, f"must be at most 1024p (got {short(value)})")
    return n


def parse_int(option, value, lo=None, hi=None):
    if isinstance(value, bool):
        raise OptionError(option, f"must be an integer (got {value!r})")
    try:
        text = str(value).strip()
        if not isinstance(value, int) and not _INT_RE.match(text):
            raise ValueError
        n = value if isinstance(value, int) else int(text, 16 if "x" in text.lower() else 10)
    except ValueError:
        raise OptionError(option, f"must be an integer (got {short(value)})") from None
    hi = INT64_MAX if hi is None else hi
    if lo is not None and n < lo or n > hi:
        bounds = f"from {lo} to {hi}" if lo is not None else f"at most {hi}"
        raise OptionError(option, f"must be {bounds} (got {short(n)})")
    return n


def parse_bool(option, value):
    if isinstance(value, bool):
        return value
    # fio 3.33 refuses true, yes, on ("failed parsing direct=true"): a job file kit takes, fio takes
    try:
        return bool(parse_int(option, value, 0, 1))
    except OptionError:
        raise OptionError(option, f"must be 0 or 1 (got {value!r})") from None


def parse_time(option, value):
    """fio times: seconds by default, or with a unit: 500ms, 10s, 2m, 1h."""
    if isinstance(value, bool):
        raise OptionError(option, f"must be a time like 10, 10s, 500ms, 2m (got {value!r})")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _TIME_RE.match(str(value))
        if not m:
            raise OptionError(option, f"must be a time like 10, 10s, 500ms, 2m (got {short(value)}){_unknown_unit(value)}")
        seconds = float(m.group(1)) * _TIME_UNITS[(m.group(2) or "s").lower()]
    if seconds < 0:
        raise OptionError(option, f"must not be negative (got {value!r})")
    if not seconds <= MAX_SECONDS:
        raise OptionError(option, f"must be at most {MAX_SECONDS // 86400}d (got {short(value)})")
    return seconds


def _unknown_unit(value):
    """What fio would make of a number with a word it does not know as a
    time unit, for the refusal."""
    m = _TIME_WORD_RE.match(str(value))
    if not m or m.group(1).lower() in _TIME_UNITS:
        return ""
    return (f"; fio 3.33 knows us, usec, ms, msec, s, m, h, d, and reads {m.group(1)!r} as no unit at all "
            "(microseconds)")


def parse_choice(option, value, choices):
    text = str(value).strip()
    if text not in choices:
        allowed = ", ".join(c for c in choices if c) or "(none)"
        raise OptionError(option, f"must be one of {allowed} (got {value!r})")
    return text


def parse_rw(option, value):
    """fio's rw modes (readwrite is rw). fio's rw=MODE:N suffix (sequential:
    N bytes added to each next offset, -N going back; random: N I/Os per
    new random offset) is not in kit, and says so rather than that MODE is
    no mode."""
    text = str(value).strip()
    mode, sep, step = text.partition(":")
    if sep and mode.strip() in RW_MODES + ("readwrite",):
        raise OptionError(option, f"fio's {mode.strip()}:{step.strip()} (the ':N' offset modifier: with sequential "
                                  "modes N bytes skipped, or gone back, after each I/O; with random ones N I/Os "
                                  f"per new random offset) is not in kit: give rw={mode.strip()}, or run it with "
                                  "fio itself")
    return parse_choice(option, "rw" if text == "readwrite" else value, RW_MODES)


def parse_path(option, value):
    if isinstance(value, (str, bytes, os.PathLike)):
        text = os.fsdecode(value)
    else:
        raise OptionError(option, f"must be a path (got {short(value)})")
    if not text or "\0" in text:
        raise OptionError(option, f"must be a path (got {short(value)})")
    if option == "directory" and ":" in text:
        # in fio a ':' separates several directories the files are spread over
        raise OptionError(option, f"{short(value)} has a ':', which in fio separates several directories; "
                                  "kit takes one directory")
    return text


def parse_name(option, value):
    """A job's name becomes part of file names and of fio's [section]
    headers: no '/', no NUL, no control characters, no brackets."""
    text = str(value)
    if not text or len(text.encode()) > 200 or any(c in text for c in "/[]") \
            or not text.isprintable() or text in (".", ".."):
        raise OptionError(option, f"must be a name of up to 200 bytes without '/', '[', ']' or control "
                                  f"characters (got {short(value)})")
    return text


def parse_filename_format(option, value):
    text = str(value)
    if not text or "/" in text or not text.isprintable() or text in (".", ".."):
        raise OptionError(option, f"must be a file name using $jobname, $jobnum, $filenum (got {short(value)})")
    return text


def parse_verify(option, value):
    if value in (None, False, 0, "0", "none"):
        return ""
    if value == "crc32c-intel":         # fio's name for the same sum, hardware-assisted
        return "crc32c"
    return parse_choice(option, value, VERIFY_MODES)


def parse_percentile_list(option, value):
    """fio's percentile_list: up to 20 percentiles, ':'-separated, each from
    0 to 100; kept as text, sorted ("99:99.9")."""
    parts = [p.strip() for p in str(value).split(":")]
    try:
        values = sorted({decimal(p) for p in parts})
    except ValueError:
        raise OptionError(option, f"must be percentiles separated by ':' (e.g. 99:99.9; got {value!r})") from None
    if not values or len(parts) > 20 or not all(0 <= v <= 100 for v in values):
        raise OptionError(option, f"must be 1 to 20 percentiles from 0 to 100 (got {value!r})")
    return ":".join(f"{v:g}" for v in values)


def parse_cpus_allowed(option, value):
    """fio's cpus_allowed: CPUs and ranges, ','-separated (0,5,8-15), each
    on this machine (fio: "CPU n too large"); kept as text, in order
    ("0,5,8-15")."""
    cpus = sorted(cpu_list(option, value))
    ranges, start = [], None
    for i, cpu in enumerate(cpus):
        start = cpu if start is None else start
        if i + 1 == len(cpus) or cpus[i + 1] != cpu + 1:
            ranges.append(str(cpu) if start == cpu else f"{start}-{cpu}")
            start = None
    return ",".join(ranges)


def cpu_list(option, value):
    """The set of CPUs a cpus_allowed text names (see parse_cpus_allowed)."""
    count = os.cpu_count() or 1
    cpus = set()
    for part in str(value).replace(" ", "").split(","):
        m = re.fullmatch(r"([0-9]{1,7})(?:-([0-9]{1,7}))?", part)
        if not m:
            raise OptionError(option, f"must be CPUs and ranges separated by ',' (e.g. 0,2-3; got {short(value)})")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise OptionError(option, f"{part}: a range goes from low to high (got {short(value)})")
        if hi >= count:
            raise OptionError(option, f"CPU {hi} is not on this machine (CPUs 0-{count - 1})")
        cpus.update(range(lo, hi + 1))
    return cpus


def parse_cpumask(option, value):
    """fio's cpumask: a bit mask of CPUs (34: CPUs 1 and 5), at most 32 bits
    as fio's, each a CPU of this machine."""
    mask = parse_int(option, value, 1, UINT32_MAX)
    count = os.cpu_count() or 1
    if mask >> count:
        raise OptionError(option, f"CPU {mask.bit_length() - 1} is not on this machine (CPUs 0-{count - 1})")
    return mask


def parse_log_prefix(option, value):
    """fio's write_*_log=NAME: the prefix of the log files' names (a path,
    relative to the current directory); '' (or True from Python) means the
    job's name, as a bare write_bw_log in a job file."""
    if value is True:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        raise OptionError(option, f"must be a file name prefix, or '' for the job's name (got {short(value)})")
    text = os.fsdecode(value)
    if not text.isprintable() or len(text.encode()) > 4000 or text and not text.strip():
        raise OptionError(option, f"must be a printable file name prefix (got {short(value)})")
    return text


def parse_per_job_logs(option, value):
    if not parse_bool(option, value):
        raise OptionError(option, "kit supports only 1 (one file per job thread): fio's 0 appends every "
                                  "thread's lines to one shared file, even one left by an earlier run")
    return True


def split_filenames(text):
    """fio's filename list: names separated by ':', a '\\:' is a colon
    inside a name (fio's escape)."""
    names, current, i = [], [], 0
    while i < len(text):
        if text.startswith("\\:", i):
            current.append(":")
            i += 2
        elif text[i] == ":":
            names.append("".join(current))
            current = []
            i += 1
        else:
            current.append(text[i])
            i += 1
    names.append("".join(current))
    return names


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def parse_kb_base(option, value):
    text = str(value).strip()
    if isinstance(value, bool) or text not in ("1024", "1000"):
        raise OptionError(option, f"must be 1024 (fio's default: k is 1024, KiB 1000) or 1000 (kB is 1000, "
                                  f"KiB 1024) (got {short(value)})")
    return int(text)


def size_text(n, kb_base=1024):
    """A size as fio reads it back: 4k, 1m, 2g (powers of 1024 in fio's
    default kb_base=1024), else in bytes; N% as given."""
    if isinstance(n, Percent):
        return str(n)
    if kb_base != 1024:
        return str(n)       # no suffix can be misread
    for suffix, scale in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n and n % scale == 0:
            return f"{n // scale}{suffix}"
    return str(n)


def time_text(seconds):
    if float(seconds).is_integer():
        return str(int(seconds))
    ms = seconds * 1000
    return f"{int(ms)}ms" if float(ms).is_integer() else f"{int(round(seconds * 1e6))}us"


def per_ddir(value):
    """A per-direction option's value as (read, write, trim)."""
    return tuple(value) if isinstance(value, tuple) else (value, value, value)


def parse_per_ddir(option, value, parse_one, default):
    """fio's read,write,trim lists (bs=4k,8k): a value not followed by a comma
    also applies to the directions after it, an empty field keeps the
    default. One value for all directions is kept as itself, else a tuple."""
    if isinstance(value, tuple):
        fields = [parse_one(option, v) for v in value]
    else:
        text = value if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
        parts = text.split(",") if isinstance(text, str) else [text]
        if len(parts) > 3:
            raise OptionError(option, f"takes at most 3 values, for read,write,trim (got {short(value)})")
        if isinstance(text, str) and not text.replace(",", "").strip():
            raise OptionError(option, f"needs a value for at least one direction (got {short(value)})")
        fields = []
        for i in range(3):
            if i < len(parts):
                part = parts[i].strip() if isinstance(parts[i], str) else parts[i]
                fields.append(default if part == "" else parse_one(option, part))
            elif isinstance(parts[-1], str) and parts[-1].strip() == "":
                fields.append(default)          # a trailing comma: the rest keep the default
            else:
                fields.append(fields[-1])       # the last value goes on
    fields = tuple(fields)
    return fields[0] if len(set(fields)) == 1 else fields


def per_ddir_text(value, text_one):
    return ",".join("" if v is None else text_one(v) for v in value) if isinstance(value, tuple) \
        else text_one(value)


def _range_text(value, kb_base=1024):
    one = lambda pair: f"{size_text(pair[0], kb_base)}-{size_text(pair[1], kb_base)}"    # noqa: E731
    if value and isinstance(value[0], int):
        return one(value)
    return per_ddir_text(value, one)


def parse_bsrange(option, value, kb_base=1024):
    """fio's bsrange=min-max[,min-max[,min-max]]: kept as (min, max) per
    direction, or one pair for all."""
    def one(o, text):
        if isinstance(text, tuple):
            lo, hi = text
        else:
            lo, sep, hi = str(text).replace(":", "-").partition("-")    # fio takes 4k:64k too
            if not sep:
                raise OptionError(o, f"must be min-max sizes like 4k-64k (got {text!r})")
        lo, hi = sorted((parse_size(o, lo, kb_base), parse_size(o, hi, kb_base)))     # fio swaps 64k-4k
        if not 1 <= lo <= hi <= MAX_BS:
            raise OptionError(o, f"must be min-max with 1 <= min <= max <= {MAX_BS >> 20}m (got {text!r})")
        return (lo, hi)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return one(option, value)
    return parse_per_ddir(option, value, one, None)


def parse_bssplit(option, value, kb_base=1024):
    """fio's bssplit=bs/perc:bs/perc[,...] per direction: kept as sorted
    ((bs, percent), ...) per direction, with fio's rules: entries without a
    percentage share what the others leave, above 100 counts as 100, sorted
    by percentage."""
    def one(o, text):
        if isinstance(text, tuple):
            return text
        entries, missing = [], 0
        for item in str(text).split(":"):
            bs_text, _, perc_text = item.partition("/")
            bs = parse_size(o, bs_text.strip(), kb_base)
            if not 1 <= bs <= MAX_BS:
                raise OptionError(o, f"block sizes must be from 1 to {MAX_BS >> 20}m (got {item!r})")
            perc = parse_int(o, perc_text.strip(), 0) if perc_text.strip() else 0
            perc = min(perc, 100)
            missing += perc == 0
            entries.append([bs, perc])
        if len(entries) > 64:
            raise OptionError(o, "takes at most 64 block sizes per direction")
        given = sum(p for _, p in entries)
        if given > 100 and missing > 1:
            raise OptionError(o, f"percentages add up to more than 100 (got {text!r})")
        if missing:
            share = max(100 - given, 0) // missing
            for e in entries:
                if e[1] == 0:
                    e[1] = share
        return tuple(sorted((tuple(e) for e in entries), key=lambda e: e[1]))
    if isinstance(value, tuple) and value and isinstance(value[0], tuple) and value[0] \
            and isinstance(value[0][0], int):
        return value
    return parse_per_ddir(option, value, one, None)


def bssplit_text(value, kb_base=1024):
    one = lambda entries: ":".join(f"{size_text(b, kb_base)}/{p}" for b, p in entries)    # noqa: E731
    if value and value[0] and isinstance(value[0][0], int):
        return one(value)
    return per_ddir_text(value, one)


def parse_usec(option, value):
    """fio's thinktime: microseconds by default, or with a unit (100ms, 1s)."""
    if isinstance(value, int) and not isinstance(value, bool):
        usec = value
    else:
        m = _TIME_RE.match(str(value))
        if not m:
            raise OptionError(option, f"must be a time in microseconds, or with a unit like 100ms, 1s "
                                      f"(got {short(value)}){_unknown_unit(value)}")
        usec = float(m.group(1)) * (_TIME_UNITS[m.group(2).lower()] * 1e6 if m.group(2) else 1)
    usec = int(usec)
    if not 0 <= usec <= 2**31 - 1:
        raise OptionError(option, f"must be from 0 to 2147s (got {short(value)})")
    return usec


def parse_startdelay(option, value):
    """fio's startdelay=a or a-b (seconds, or with a unit): one delay, or a
    range each job thread picks from."""
    if isinstance(value, tuple):
        lo, hi = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        lo = hi = value
    else:
        lo, sep, hi = str(value).partition("-")
        hi = hi if sep else lo
    lo, hi = parse_time(option, lo), parse_time(option, hi)
    if hi < lo:
        raise OptionError(option, f"must be a-b with a <= b (got {value!r})")
    return lo if lo == hi else (lo, hi)


DISTRIBUTIONS = {"random": None, "zipf": (1.1, "theta", lambda x: x >= 0 and x != 1, "0 or more, not 1"),
                 "pareto": (0.2, "h", lambda x: 0 < x < 1, "between 0 and 1"),
                 "normal": (0.0, "sigma", lambda x: 0 <= x < 100, "from 0 to below 100")}


def parse_distribution(option, value):
    """fio's random_distribution: random, zipf[:theta[:center]],
    pareto[:h[:center]], normal[:sigma[:center]] (center from 0 to 1)."""
    parts = str(value).strip().split(":")
    kind = parts[0]
    if kind not in DISTRIBUTIONS:
        allowed = "random, zipf[:theta], pareto[:h], normal[:sigma]"
        extra = " (fio's zoned distributions are not in kit)" if kind.startswith("zoned") else ""
        raise OptionError(option, f"must be one of {allowed}{extra} (got {value!r})")
    if kind == "random":            # fio ignores a parameter here
        return "random"
    default, pname, ok, allowed = DISTRIBUTIONS[kind]
    if len(parts) > 3:
        raise OptionError(option, f"must be {kind}[:{pname}[:center]] (got {value!r})")
    if len(parts) > 2 and not parts[1]:
        raise OptionError(option, f"must be {kind}[:{pname}[:center]]: the {pname} is missing (got {value!r})")
    try:
        x = decimal(parts[1]) if len(parts) > 1 and parts[1] else default
        center = decimal(parts[2]) if len(parts) > 2 else None
    except ValueError:
        raise OptionError(option, f"must be {kind}[:{pname}[:center]] with numbers (got {value!r})") from None
    if not ok(x):
        raise OptionError(option, f"{kind}'s {pname} must be {allowed} (got {value!r})")
    if center is not None and not 0 <= center <= 1:
        raise OptionError(option, f"center must be from 0 to 1 (got {value!r})")
    return f"{kind}:{x:g}" + (f":{center:g}" if center is not None else "")


def parse_sync(option, value):
    text = str(value).strip().lower()
    text = {"0": "none", "1": "sync", "false": "none", "true": "sync"}.get(text, text)
    return parse_choice(option, text, ("none", "sync", "dsync"))


# ---- the declaration ------------------------------------------------------

@dataclass(frozen=True)
class Option:
    """One option. kind: size, int, bool, time, choice, path, name, text,
    format, verify, log (a log file name prefix). fio: its name in fio job files, or None for kit's own
    (never written to fio; read from job files only if job_file). flag: fio
    writes it as a bare word when on. param: the field of the C engines'
    struct kit_params an engine option sets. label: shown in a result's
    label (io_uring+fixedbufs). probe: `kit doctor` tries it, with these
    other options. requires: [(option, why)] that must be on with it.
    implies: options it turns on (fio's sqthread_poll -> registerfiles).
    fio_default: fio's default where it differs from kit's, so a job file
    kit writes always says kit's value."""
    name: str
    kind: str
    default: object
    help: str
    engines: Optional[tuple] = None         # None: every engine; set for an engine's own
    lo: Optional[int] = None
    hi: object = None                       # a number, or a callable giving one
    choices: object = None                  # a tuple, or a callable giving one
    fio: object = "same"
    flag: bool = False
    aliases: tuple = ()
    job_file: bool = True
    param: Optional[str] = None
    c_none: int = 0                         # the C value of None
    label: bool = False
    probe: Optional[dict] = None
    requires: tuple = ()
    implies: tuple = ()
    fio_default: object = None              # fio's default, where it is not kit's: always written for fio
    parse_value: Optional[Callable] = None  # for kinds the table above does not cover (a size's takes kb_base)
    text_value: Optional[Callable] = None   # canonical value -> fio's text, where str() would not do (ditto)

    @property
    def fio_name(self):
        return self.name if self.fio == "same" else self.fio

    def parse(self, value, kb_base=1024):
        """value as a user wrote it -> its canonical form (None stays None
        where the default is None); sizes in the job's kb_base."""
        if value is None and self.default is None:
            return None
        if value is None:
            raise OptionError(self.name, "must have a value (got none)")
        if isinstance(value, list):         # a per-direction value, back from JSON
            value = _tuples(value)
        if isinstance(value, str) and not value.strip() and self.kind != "log" \
                and not (self.kind == "verify" and value == ""):        # '' is no verify, canonically
            raise OptionError(self.name, "needs a value (an empty one is none, not the default)")
        if isinstance(value, str) and self.kind not in ("path", "name", "format", "log") \
                and any(c.isspace() and c not in _ASCII_SPACE for c in value):
            # fio strips only ASCII blanks: 'iodepth=\u00a08' fails there; Python's strip() takes it
            raise OptionError(self.name, f"has a space that is not ASCII in {short(value)}")
        if isinstance(value, str) and self.kind not in ("path", "name", "format", "log") \
                and any(c.isspace() for c in value.strip()):
            # fio 3.33 stops reading a number at a blank, unit and all: size=64 k is 64 bytes to it,
            # runtime=1 ms one second, bs=8k, 16k writes of 16 bytes; kit would read what was meant
            raise OptionError(self.name, f"{short(value)} has a blank inside, where fio 3.33 stops reading "
                                         f"(size=64 k is 64 bytes to it, bs=8k, 16k writes 16 bytes): write "
                                         f"{''.join(value.split())}")
        kind = self.kind
        if self.parse_value:
            return self.parse_value(self.name, value, kb_base) if kind == "size" \
                else self.parse_value(self.name, value)
        if kind == "size":
            return parse_size(self.name, value, kb_base)
        if kind == "int":
            hi = self.hi() if callable(self.hi) else self.hi
            return parse_int(self.name, value, self.lo, hi)
        if kind == "bool":
            return parse_bool(self.name, value)
        if kind == "time":
            return parse_time(self.name, value)
        if kind == "choice":
            return parse_choice(self.name, value, self.choices() if callable(self.choices) else self.choices)
        if kind == "path":
            return parse_path(self.name, value)
        if kind == "name":
            return parse_name(self.name, value)
        if kind == "format":
            return parse_filename_format(self.name, value)
        if kind == "verify":
            return parse_verify(self.name, value)
        return str(value)

    def text(self, value, kb_base=1024):
        """The canonical value as fio reads it in a job file that says
        kb_base (sizes in bytes unless it is fio's default, 1024)."""
        if self.text_value:
            return self.text_value(value, kb_base) if self.kind == "size" else self.text_value(value)
        if isinstance(value, bool):
            return "1" if value else "0"
        if self.kind == "size":
            return size_text(value, kb_base)
        if self.kind == "time":
            return time_text(value)
        return str(value)

    def c_value(self, value):
        """The value as the C field takes it (a choice: its position)."""
        if value is None:
            return self.c_none
        if self.kind == "choice":
            return (self.choices() if callable(self.choices) else self.choices).index(value)
        return int(value)


# The options every engine takes (the driver's), in the order help lists
# them. ioengine's choices are the engine registry's (kit.job binds them).
COMMON = (
    Option("name", "name", "kit", "job name, as fio's [section] name"),
    Option("ioengine", "choice", "psync", "I/O engine"),
    Option("rw", "choice", "read", "read, write, randread, randwrite, rw (or readwrite), randrw, trim, randtrim",
           choices=RW_MODES, aliases=("readwrite",), parse_value=parse_rw),
    Option("bs", "size", 4096, "block size (4k, 1m, ...; read,write,trim: 4k,64k)", aliases=("blocksize",),
           parse_value=lambda o, v, kb: parse_per_ddir(o, v, lambda o2, x: parse_size(o2, x, kb), 4096),
           text_value=lambda v, kb: per_ddir_text(v, lambda n: size_text(n, kb))),
    Option("iodepth", "int", 1, "I/Os kept in flight per job (async engines)", lo=1, hi=MAX_IODEPTH),
    Option("numjobs", "int", 1, "job threads running the workload at once", lo=1, hi=1024),
    Option("nrfiles", "int", 1, "files per job, used round-robin", lo=1, hi=4096, aliases=("nr_files",)),
    Option("size", "size", DEFAULT_SIZE, "bytes per job, split over its files (default 128m; N% of an existing "
           "file given by filename)", parse_value=parse_size_or_percent),
    Option("filesize", "size", None, "bytes per file (default size/nrfiles)"),
    Option("kb_base", "int", 1024, "how sizes read: 1024 (fio's default): k, m, g are powers of 1024 and KiB, "
           "MiB, GiB of 1000 (fio's compatibility mode); 1000: kB, MB are powers of 1000 and KiB, MiB of 1024",
           parse_value=parse_kb_base),
    Option("direct", "bool", False, "1: O_DIRECT, bypass the page cache"),
    Option("runtime", "time", 0.0, "stop after this long (seconds, or 500ms, 2m)", aliases=("timeout",)),
    Option("time_based", "bool", False, "1: keep going until runtime even after size bytes", flag=True),
    Option("number_ios", "int", 0, "stop after this many I/Os per job", lo=0, hi=INT64_MAX),
    Option("ramp_time", "time", 0.0, "run this long before measuring"),
    Option("randseed", "int", 0, "seed of the offset generator (same seed, same offsets)", lo=0, hi=2**64 - 1),
    Option("rwmixread", "int", 50, "percent reads for rw/randrw (default 50)", lo=0, hi=100),
    Option("norandommap", "bool", False, "1: random offsets may repeat (default: each block once per pass)",
           flag=True),
    Option("fsync", "int", 0, "fsync after every N writes", lo=0, hi=UINT32_MAX),
    Option("fdatasync", "int", 0, "fdatasync after every N writes (counted under sync)", lo=0, hi=UINT32_MAX),
    Option("end_fsync", "bool", False, "1: fsync the files once after the last write (timed in the write "
           "runtime, not counted as a sync, as fio)"),
    Option("fsync_on_close", "bool", False, "1: fsync each file when the job closes it (once, at the end, "
           "as end_fsync)"),
    Option("sync", "choice", "none", "open the files with none, sync (1: O_SYNC) or dsync (O_DSYNC)",
           choices=("none", "sync", "dsync"), parse_value=parse_sync),
    Option("offset", "size", 0, "where each file's region starts (bytes, or N% of the file, aligned up to "
           "offset_align or the smallest bs)", aliases=("fileoffset",), parse_value=parse_size_or_percent),
    Option("offset_increment", "size", 0, "added to offset for each further job thread (bytes, or N%)",
           parse_value=parse_size_or_percent),
    Option("offset_align", "size", 0, "alignment of a percentage offset (0: the smallest bs)"),
    Option("io_size", "size", None, "bytes to transfer per job (default size; more wraps around the "
           "region, as fio)", aliases=("io_limit",), parse_value=parse_size_or_percent),
    Option("loops", "int", 1, "run the job this many times over (offsets and random map start again; "
           "0 is 1, as fio)", parse_value=lambda o, v: max(parse_int(o, v, 0, UINT32_MAX), 1)),
    Option("startdelay", "time", 0.0, "wait this long before starting (seconds, or a-b: each job thread "
           "picks in the range); not part of runtime", parse_value=parse_startdelay,
           text_value=lambda v: "-".join(map(time_text, v)) if isinstance(v, tuple) else time_text(v)),
    Option("rate", "size", 0, "bandwidth cap per job thread in bytes/s (read,write,trim as bs)",
           parse_value=lambda o, v, kb: parse_per_ddir(o, v, lambda o2, x: parse_size(o2, x, kb), 0),
           text_value=lambda v, kb: per_ddir_text(v, str)),
    Option("rate_iops", "int", 0, "IOPS cap per job thread (read,write,trim)",
           parse_value=lambda o, v: parse_per_ddir(o, v, lambda o2, x: parse_int(o2, x, 0, UINT32_MAX), 0),
           text_value=lambda v: per_ddir_text(v, str)),
    Option("rate_min", "size", 0, "fail the job if bandwidth falls below this (bytes/s per job thread, "
           "checked every rate_cycle after 2 s)", aliases=("ratemin",),
           parse_value=lambda o, v, kb: parse_per_ddir(o, v, lambda o2, x: parse_size(o2, x, kb), 0),
           text_value=lambda v, kb: per_ddir_text(v, str)),
    Option("rate_iops_min", "int", 0, "fail the job if IOPS fall below this",
           parse_value=lambda o, v: parse_per_ddir(o, v, lambda o2, x: parse_int(o2, x, 0, UINT32_MAX), 0),
           text_value=lambda v: per_ddir_text(v, str)),
    Option("rate_process", "choice", "linear", "linear: even gaps; poisson: exponential gaps of the same mean",
           choices=("linear", "poisson")),
    Option("rate_cycle", "int", 1000, "ms over which rate_min and rate_iops_min are checked", lo=1,
           hi=UINT32_MAX, aliases=("ratecycle",)),
    Option("thinktime", "int", 0, "pause this long (microseconds, or 100ms, 1s) after every thinktime_blocks "
           "I/Os, with the queue drained first", parse_value=parse_usec, text_value=lambda v: f"{v}us"),
    Option("thinktime_spin", "int", 0, "of thinktime, spin on the CPU this long instead of sleeping",
           parse_value=parse_usec, text_value=lambda v: f"{v}us"),
    Option("thinktime_blocks", "int", 1, "I/Os completed between thinks", lo=1, hi=UINT32_MAX),
    Option("random_distribution", "text", "random", "random offsets: random (uniform), zipf[:theta], "
           "pareto[:h], normal[:sigma], each [:center] (fio's formulas)", parse_value=parse_distribution),
    Option("bsrange", "size", None, "block sizes from min to max, multiples of min (4k-64k; read,write,trim)",
           aliases=("blocksize_range",), parse_value=parse_bsrange, text_value=_range_text),
    Option("bssplit", "size", None, "block sizes by share: 4k/50:64k/50 (read,write,trim)",
           parse_value=parse_bssplit, text_value=bssplit_text),
    Option("cpus_allowed", "text", None, "the CPUs each job thread (and every thread its engine starts) may "
           "run on: 0,2-3", parse_value=parse_cpus_allowed),
    Option("cpumask", "int", None, "the same as a bit mask (34: CPUs 1 and 5)", parse_value=parse_cpumask),
    Option("cpus_allowed_policy", "choice", "shared", "shared: every job thread gets all those CPUs; split: "
           "each its own one, in turn (fio's thread numbers)", choices=("shared", "split")),
    Option("nice", "int", 0, "the job threads' nice value (-20 to 19)", lo=-20, hi=19),
    Option("prio", "int", None, "the job threads' I/O priority within prioclass, 0 (highest) to 7 "
           "(ioprio_set, as ionice)", lo=0, hi=7),
    Option("prioclass", "int", None, "the job threads' I/O priority class: 1 realtime, 2 best-effort, 3 idle "
           "(0, or prio alone: best-effort, as fio)", lo=0, hi=3),
    Option("zero_buffers", "bool", False, "1: writes carry zeros (default: random bytes)", flag=True),
    Option("refill_buffers", "bool", False, "1: new random bytes for every write (default: the buffers' "
           "bytes from the start, scrambled per write)", flag=True),
    Option("scramble_buffers", "bool", True, "1: each write's offset and time in every 512 bytes it carries, so "
           "that no two written blocks are alike (for storage that deduplicates)"),
    Option("buffer_compress_percentage", "int", 0, "writes that compress this much: each chunk random bytes, "
           "then this % zeros (refills for every write unless refill_buffers=0; 100: zero_buffers)",
           lo=0, hi=100),
    Option("buffer_compress_chunk", "size", 512, "buffer_compress_percentage's chunk (0 or above the write "
           "size: the write size)"),
    Option("exitall", "bool", False, "1: when one job thread ends, the others running with it stop",
           flag=True),
    Option("exitall_on_error", "bool", False, "1: when this job fails, the jobs running with it stop",
           flag=True),
    Option("verify", "verify", "", "crc32c: stamp written blocks, check read blocks"),
    Option("invalidate", "bool", False, "1: drop the files' page cache first (fio's default; kit's is 0)",
           fio_default=True),
    Option("pre_read", "bool", False, "1: read the files once first so buffered reads hit the page cache"),
    Option("fadvise_hint", "choice", "1", "the page cache's hint for each job file (posix_fadvise): 1: random "
           "jobs RANDOM (no readahead), sequential ones SEQUENTIAL (twice the readahead), as fio; 0: none; "
           "random; sequential", choices=("0", "1", "random", "sequential")),
    Option("gtod_reduce", "bool", False, "1: no per-I/O timestamps (no latencies)"),
    Option("bwavgtime", "int", 500, "ms per bandwidth sample (bw_min, bw_mean, ...); below iopsavgtime fio "
           "3.33 takes fewer, irregular ones (its sampler wakes for IOPS samples only)", lo=1, hi=UINT32_MAX),
    Option("iopsavgtime", "int", 500, "ms per IOPS sample (iops_min, iops_stddev, ...); also the windows of "
           "kit's IOPS-over-time series, unless log_avg_msec sets them", lo=1, hi=UINT32_MAX),
    Option("percentile_list", "text", None, "the latency percentiles to report, ':'-separated (e.g. 99:99.9; "
           "default fio's 17)", parse_value=parse_percentile_list),
    Option("clat_percentiles", "bool", True, "1: report completion latency percentiles"),
    Option("lat_percentiles", "bool", False, "1: report total latency percentiles"),
    Option("slat_percentiles", "bool", False, "1: report submission latency percentiles"),
    Option("directory", "path", None, "where kit creates its files (default ./kit-scratch)"),
    Option("filename", "path", None, "an existing file or block device (':' separates several)"),
    Option("filename_format", "format", None,
           "names of kit's files: $jobname, $jobnum, $filenum (default $jobname.$jobnum.$filenum)"),
    # kit's batching defaults are not fio's (one submit call per I/O, one
    # completion per reap): an instrument must cost next to nothing, and a
    # job file kit runs through fio says kit's values
    Option("iodepth_batch_submit", "int", 0, "I/Os per submit call (0, kit's default: every free slot in one "
           "call; fio's default is 1)", lo=0, hi=MAX_IODEPTH, fio="iodepth_batch", aliases=("iodepth_batch",),
           fio_default=1),
    Option("iodepth_batch_complete_min", "int", 1, "completions to wait for per reap", lo=0, hi=MAX_IODEPTH,
           aliases=("iodepth_batch_complete",)),
    Option("iodepth_batch_complete_max", "int", 0,
           "completions taken per reap at most (0, kit's default: every one there is; fio's default is "
           "complete_min)", lo=0, hi=MAX_IODEPTH, fio_default=1),
    # logs
    Option("write_bw_log", "log", None, "write fio's bandwidth log NAME_bw.N.log per job thread (NAME: this "
           "prefix; a bare write_bw_log in a job file: the job's name). Without log_avg_msec: a line per I/O, "
           "and bw_* become per-I/O samples of bytes*1e6/clat_ns (1000-based kB/s, as fio); with it bwavgtime defaults to "
           "log_avg_msec", parse_value=parse_log_prefix),
    Option("write_iops_log", "log", None, "write fio's IOPS log NAME_iops.N.log per job thread. Without "
           "log_avg_msec: a line of 1 per I/O, and iops_* become those per-I/O samples (as fio); with it "
           "iopsavgtime defaults to log_avg_msec", parse_value=parse_log_prefix),
    Option("write_lat_log", "log", None, "write fio's latency logs NAME_lat.N.log, NAME_clat.N.log and "
           "NAME_slat.N.log (ns; slat stays empty for synchronous engines)", parse_value=parse_log_prefix),
    Option("log_avg_msec", "int", 0, "log lines average this many ms (0: a line per I/O)", lo=0, hi=UINT32_MAX),
    Option("log_offset", "bool", False, "1: log lines carry each I/O's offset (before the last column)"),
    Option("per_job_logs", "bool", True, "1: a log file per job thread (kit supports only 1)",
           parse_value=parse_per_job_logs),
    Option("group_reporting", "bool", False, "1: report one merged entry for all job threads", flag=True),
    Option("allow_destructive", "bool", False, "1: allow writing to files kit did not create and to unmounted "
           "block devices (the command line only: never from a job file or a sweep file)", fio=None, job_file=False),
)


def add_engine_options(table, engine_name, options, what="option"):
    """Adds an engine's own options to table (name -> Option), in place: an
    option two engines declare alike belongs to both; declared differently,
    or clashing with a common one, it is kit's bug, said at import."""
    for option in options:
        mine = dataclasses.replace(option, engines=(engine_name,))
        other = table.get(option.name)
        if other is None:
            table[option.name] = mine
        elif other.engines and dataclasses.replace(other, engines=(engine_name,)) == mine:
            table[option.name] = dataclasses.replace(other, engines=other.engines + (engine_name,))
        else:
            raise RuntimeError(f"{what} {option.name} is declared twice, differently")
    return table

