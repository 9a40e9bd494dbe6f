"""Every option kit knows, declared once: fio's name, type, default, unit,
the engines that take it, its help. The job model, the command line's
flags, fio job files in and out, doctor's feature probes and a result's
label all read these declarations; an engine's own options are declared
beside the engine (kit/engines/<name>.py) in the same form.

Values are parsed to one canonical form whatever the spelling ('4k', 4096,
'4KiB'); a bad value raises OptionError naming the option and what is
allowed."""
import os
import re
from dataclasses import dataclass
from typing import Callable, Optional

from .errors import OptionError

RW_MODES = ("read", "write", "randread", "randwrite", "rw", "randrw")
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
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgtp]?)(i?b?)\s*$", re.I)
_TIME_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d)?\s*$", re.I)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


# ---- value parsers: each takes what a user may write, returns the canonical value

def short(value):
    """A value as quoted in an error line, cut when it is huge."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_size(option, value):
    """fio sizes: 4096, 4k, 4K, 4KiB, 1m, 2g (powers of 1024, as fio's kb_base)."""
    if isinstance(value, bool):
        raise OptionError(option, f"must be a size like 4096, 4k, 1m, 2g (got {value!r})")
    if isinstance(value, int):
        n = value
    elif str(value).strip().endswith("%"):
        raise OptionError(option, f"fio's percentages ({value}) are not supported by kit: give bytes (4k, 1m, 2g)")
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise OptionError(option, f"must be a size like 4096, 4k, 1m, 2g (got {short(value)})")
        if len(m.group(1)) > 30:
            raise OptionError(option, f"must be at most 1024p (got {short(value)})")
        n = int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
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
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise OptionError(option, f"must be 0 or 1 (got {value!r})")


def parse_time(option, value):
    """fio times: seconds by default, or with a unit: 500ms, 10s, 2m, 1h."""
    if isinstance(value, bool):
        raise OptionError(option, f"must be a time like 10, 10s, 500ms, 2m (got {value!r})")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _TIME_RE.match(str(value))
        if not m:
            raise OptionError(option, f"must be a time like 10, 10s, 500ms, 2m (got {value!r})")
        seconds = float(m.group(1)) * _TIME_UNITS[(m.group(2) or "s").lower()]
    if seconds < 0:
        raise OptionError(option, f"must not be negative (got {value!r})")
    if not seconds <= MAX_SECONDS:
        raise OptionError(option, f"must be at most {MAX_SECONDS // 86400}d (got {short(value)})")
    return seconds


def parse_choice(option, value, choices):
    text = str(value).strip()
    if text not in choices:
        allowed = ", ".join(c for c in choices if c) or "(none)"
        raise OptionError(option, f"must be one of {allowed} (got {value!r})")
    return text


def parse_path(option, value):
    if isinstance(value, (str, bytes, os.PathLike)):
        text = os.fsdecode(value)
    else:
        raise OptionError(option, f"must be a path (got {short(value)})")
    if not text or "\0" in text:
        raise OptionError(option, f"must be a path (got {short(value)})")
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
        values = sorted({float(p) for p in parts})
    except ValueError:
        raise OptionError(option, f"must be percentiles separated by ':' (e.g. 99:99.9; got {value!r})") from None
    if not values or len(parts) > 20 or not all(0 <= v <= 100 for v in values):
        raise OptionError(option, f"must be 1 to 20 percentiles from 0 to 100 (got {value!r})")
    return ":".join(f"{v:g}" for v in values)


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


# ---- the declaration ------------------------------------------------------

@dataclass(frozen=True)
class Option:
    """One option. kind: size, int, bool, time, choice, path, name, text,
    format, verify. fio: its name in fio job files, or None for kit's own
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
    parse_value: Optional[Callable] = None  # for kinds the table above does not cover

    @property
    def fio_name(self):
        return self.name if self.fio == "same" else self.fio

    def parse(self, value):
        """value as a user wrote it -> its canonical form (None stays None
        where the default is None)."""
        if value is None and self.default is None:
            return None
        if value is None:
            raise OptionError(self.name, "must have a value (got none)")
        if self.parse_value:
            return self.parse_value(self.name, value)
        kind = self.kind
        if kind == "size":
            return parse_size(self.name, value)
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

    def c_value(self, value):
        """The value as the C field takes it."""
        if value is None:
            return self.c_none
        return int(value)


# The options every engine takes (the driver's), in the order help lists
# them. ioengine's choices are the engine registry's (kit.job binds them).
COMMON = (
    Option("name", "name", "kit", "job name, as fio's [section] name"),
    Option("ioengine", "choice", "psync", "I/O engine", aliases=("engine",)),
    Option("rw", "choice", "read", "read, write, randread, randwrite, rw (or readwrite), randrw",
           choices=RW_MODES, aliases=("readwrite",), parse_value=lambda o, v: parse_choice(
               o, "rw" if str(v).strip() == "readwrite" else v, RW_MODES)),
    Option("bs", "size", 4096, "block size (4k, 1m, ...)", aliases=("blocksize",)),
    Option("iodepth", "int", 1, "I/Os kept in flight per job (async engines)", lo=1, hi=MAX_IODEPTH),
    Option("numjobs", "int", 1, "job threads running the workload at once", lo=1, hi=1024),
    Option("nrfiles", "int", 1, "files per job, used round-robin", lo=1, hi=4096),
    Option("size", "size", DEFAULT_SIZE, "bytes per job, split over its files (default 128m)"),
    Option("filesize", "size", None, "bytes per file (default size/nrfiles)"),
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
    Option("verify", "verify", "", "crc32c: stamp written blocks, check read blocks"),
    Option("invalidate", "bool", False, "1: drop the files' page cache first (fio's default; kit's is 0)",
           aliases=("invalidate_cache",), fio_default=True),
    Option("pre_read", "bool", False, "1: read the files once first so buffered reads hit the page cache"),
    Option("gtod_reduce", "bool", False, "1: no per-I/O timestamps (no latencies)"),
    Option("bwavgtime", "int", 500, "ms per bandwidth sample (bw_min, bw_mean, ...)", lo=1, hi=UINT32_MAX),
    Option("iopsavgtime", "int", 500, "ms per IOPS sample (iops_min, iops_stddev, ...); kit samples both "
           "together: equal to bwavgtime when both are given", lo=1, hi=UINT32_MAX),
    Option("percentile_list", "text", None, "the latency percentiles to report, ':'-separated (e.g. 99:99.9; "
           "default fio's 17)", parse_value=parse_percentile_list),
    Option("clat_percentiles", "bool", True, "1: report completion latency percentiles"),
    Option("lat_percentiles", "bool", False, "1: report total latency percentiles"),
    Option("slat_percentiles", "bool", False, "1: report submission latency percentiles"),
    Option("directory", "path", None, "where kit creates its files (default ./kit-scratch)"),
    Option("filename", "path", None, "an existing file or block device (':' separates several)"),
    Option("filename_format", "format", None,
           "names of kit's files: $jobname, $jobnum, $filenum (default $jobname.$jobnum.$filenum)"),
    Option("iodepth_batch_submit", "int", 1, "I/Os per submit call (0: iodepth)", lo=0, hi=MAX_IODEPTH,
           fio="iodepth_batch", aliases=("iodepth_batch",)),
    Option("iodepth_batch_complete_min", "int", 1, "completions to wait for per reap", lo=0, hi=MAX_IODEPTH,
           aliases=("iodepth_batch_complete",)),
    Option("iodepth_batch_complete_max", "int", 0,
           "completions taken per reap at most (0: as many as complete_min, fio's default)", lo=0,
           hi=MAX_IODEPTH),
    Option("group_reporting", "bool", False, "1: report one merged entry for all job threads", flag=True),
    Option("allow_destructive", "bool", False, "1: allow writing to files kit did not create and to unmounted "
           "block devices (the command line only: never from a job file or a sweep file)", fio=None, job_file=False),
)
