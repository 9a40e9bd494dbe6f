"""The job model: fio's option names, fio's units, validated once.

A Job is immutable and always valid: every constructor path (Python keywords,
CLI strings, later fio job files) goes through the same parsers, and a bad
value raises OptionError naming the option and what is allowed.
"""
import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field
from typing import Optional

from .engines import engine_names, registry
from .errors import OptionError

RW_MODES = ("read", "write", "randread", "randwrite", "rw", "randrw")
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
            raise OptionError(option, f"must be a size like 4096, 4k, 1m, 2g (got {_short(value)})")
        if len(m.group(1)) > 30:
            raise OptionError(option, f"must be at most 1024p (got {_short(value)})")
        n = int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    if n < 0:
        raise OptionError(option, f"must not be negative (got {value!r})")
    if n > MAX_SIZE:
        raise OptionError(option, f"must be at most 1024p (got {_short(value)})")
    return n


def _short(value):
    """A value as quoted in an error line, cut when it is huge."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_int(option, value, lo=None, hi=None):
    if isinstance(value, bool):
        raise OptionError(option, f"must be an integer (got {value!r})")
    try:
        text = str(value).strip()
        if not isinstance(value, int) and not _INT_RE.match(text):
            raise ValueError
        n = value if isinstance(value, int) else int(text, 16 if "x" in text.lower() else 10)
    except ValueError:
        raise OptionError(option, f"must be an integer (got {_short(value)})") from None
    hi = INT64_MAX if hi is None else hi
    if lo is not None and n < lo or n > hi:
        bounds = f"from {lo} to {hi}" if lo is not None else f"at most {hi}"
        raise OptionError(option, f"must be {bounds} (got {_short(n)})")
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
        raise OptionError(option, f"must be at most {MAX_SECONDS // 86400}d (got {_short(value)})")
    return seconds


def parse_choice(option, value, choices):
    text = str(value).strip()
    if text not in choices:
        allowed = ", ".join(c for c in choices if c) or "(none)"
        raise OptionError(option, f"must be one of {allowed} (got {value!r})")
    return text


def _path(option, value):
    if value is None:
        return None
    if isinstance(value, (str, bytes, os.PathLike)):
        text = os.fsdecode(value)
    else:
        raise OptionError(option, f"must be a path (got {_short(value)})")
    if not text or "\0" in text:
        raise OptionError(option, f"must be a path (got {_short(value)})")
    return text


def _job_name(option, value):
    """A job's name becomes part of file names and of fio's [section]
    headers: no '/', no NUL, no control characters, no brackets."""
    text = str(value)
    if not text or len(text.encode()) > 200 or any(c in text for c in "/[]") \
            or not text.isprintable() or text in (".", ".."):
        raise OptionError(option, f"must be a name of up to 200 bytes without '/', '[', ']' or control "
                                  f"characters (got {_short(value)})")
    return text


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


def _filename_format(option, value):
    text = str(value)
    if not text or "/" in text or not text.isprintable() or text in (".", ".."):
        raise OptionError(option, f"must be a file name using $jobname, $jobnum, $filenum (got {_short(value)})")
    return text


# ---- the options: name -> (parser, engines that accept it, one-line help)

OPTIONS = {
    "name": (_job_name, None, "job name, as fio's [section] name"),
    "ioengine": (lambda o, v: parse_choice(o, v, engine_names()), None,
                 "I/O engine: sync, psync, threadpool, posixaio, libaio, io_uring"),
    "rw": (lambda o, v: parse_choice(o, v, RW_MODES), None, "read, write, randread, randwrite, rw, randrw"),
    "bs": (lambda o, v: parse_size(o, v), None, "block size (4k, 1m, ...)"),
    "iodepth": (lambda o, v: parse_int(o, v, 1, MAX_IODEPTH), None, "I/Os kept in flight per job (async engines)"),
    "numjobs": (lambda o, v: parse_int(o, v, 1, 1024), None, "job threads running the workload at once"),
    "nrfiles": (lambda o, v: parse_int(o, v, 1, 4096), None, "files per job, used round-robin"),
    "size": (lambda o, v: parse_size(o, v), None, "bytes per job, split over its files (default 128m)"),
    "filesize": (lambda o, v: None if v is None else parse_size(o, v), None, "bytes per file (default size/nrfiles)"),
    "direct": (parse_bool, None, "1: O_DIRECT, bypass the page cache"),
    "runtime": (parse_time, None, "stop after this long (seconds, or 500ms, 2m)"),
    "time_based": (parse_bool, None, "1: keep going until runtime even after size bytes"),
    "number_ios": (lambda o, v: parse_int(o, v, 0, INT64_MAX), None, "stop after this many I/Os per job"),
    "ramp_time": (parse_time, None, "run this long before measuring"),
    "randseed": (lambda o, v: parse_int(o, v, 0, 2**64 - 1), None, "seed of the offset generator (same seed, same offsets)"),
    "rwmixread": (lambda o, v: parse_int(o, v, 0, 100), None, "percent reads for rw/randrw (default 50)"),
    "norandommap": (parse_bool, None, "1: random offsets may repeat (default: each block once per pass)"),
    "fsync": (lambda o, v: parse_int(o, v, 0, UINT32_MAX), None, "fsync after every N writes"),
    "verify": (lambda o, v: "" if v in (None, False, 0, "0", "none") else parse_choice(o, v, VERIFY_MODES), None,
               "crc32c: stamp written blocks, check read blocks"),
    "invalidate": (parse_bool, None, "1: drop the files' page cache first (fio's default; kit's is 0)"),
    "pre_read": (parse_bool, None, "1: read the files once first so buffered reads hit the page cache"),
    "gtod_reduce": (parse_bool, None, "1: no per-I/O timestamps (no latencies)"),
    "directory": (_path, None, "where kit creates its files (default ./kit-scratch)"),
    "filename": (_path, None, "an existing file or block device (':' separates several)"),
    "filename_format": (lambda o, v: None if v is None else _filename_format(o, v), None,
                        "names of kit's files: $jobname, $jobnum, $filenum (default $jobname.$jobnum.$filenum)"),
    "fixedbufs": (parse_bool, ("io_uring",), "register the I/O buffers"),
    "registerfiles": (parse_bool, ("io_uring",), "register the files"),
    "sqthread_poll": (parse_bool, ("io_uring",), "a kernel thread polls the submission queue (SQPOLL)"),
    "sqthread_poll_cpu": (lambda o, v: None if v is None else parse_int(o, v, 0, (os.cpu_count() or 1) - 1),
                          ("io_uring",), "CPU of the SQPOLL thread"),
    "hipri": (parse_bool, ("io_uring",), "poll for completions (IOPOLL; needs direct=1 and device poll queues)"),
    "force_async": (lambda o, v: parse_int(o, v, 0, UINT32_MAX), ("io_uring",),
                    "every Nth I/O skips the inline attempt and goes to io-wq (IOSQE_ASYNC)"),
    "iodepth_batch_submit": (lambda o, v: parse_int(o, v, 0, MAX_IODEPTH), None, "I/Os per submit call (0: iodepth)"),
    "iodepth_batch_complete_min": (lambda o, v: parse_int(o, v, 0, MAX_IODEPTH), None, "completions to wait for per reap"),
    "iodepth_batch_complete_max": (lambda o, v: parse_int(o, v, 0, MAX_IODEPTH), None, "completions taken per reap at most (0: as many as complete_min, fio's default)"),
    "threads": (lambda o, v: parse_int(o, v, 0, 4096), ("threadpool",), "worker threads (default iodepth)"),
    "group_reporting": (parse_bool, None, "1: report one merged entry for all job threads"),
    "allow_destructive": (parse_bool, None, "1: allow writes to files kit did not create and to block devices"),
}

ALIASES = {
    "iodepth_batch": "iodepth_batch_submit",
    "iodepth_batch_complete": "iodepth_batch_complete_min",
    "engine": "ioengine",
    "readwrite": "rw",
    "blocksize": "bs",
    "rwmixwrite": None,  # handled in from_options: rwmixread = 100 - value
}


def canonical_option(name):
    """The option a name stands for: aliases and '-' spellings resolved
    (rwmixwrite is rwmixread said the other way round)."""
    name = str(name).replace("-", "_")
    if name == "rwmixwrite":
        return "rwmixread"
    return ALIASES.get(name, name) or name


def job_label(options):
    """Engine plus the features that change its behaviour: io_uring+fixedbufs."""
    parts = [options["ioengine"]]
    for key in ("fixedbufs", "registerfiles", "sqthread_poll", "hipri", "force_async"):
        if options.get(key):
            parts.append(key)
    return "+".join(parts)


@dataclass(frozen=True)
class Job:
    """One workload, as fio would describe it. Strings are parsed ('4k')."""

    name: str = "kit"
    ioengine: str = "psync"
    rw: str = "read"
    bs: int = 4096
    iodepth: int = 1
    numjobs: int = 1
    nrfiles: int = 1
    size: int = DEFAULT_SIZE
    filesize: Optional[int] = None
    direct: bool = False
    runtime: float = 0.0
    time_based: bool = False
    number_ios: int = 0
    ramp_time: float = 0.0
    randseed: int = 0
    rwmixread: int = 50
    norandommap: bool = False
    fsync: int = 0
    verify: str = ""
    invalidate: bool = False
    pre_read: bool = False
    gtod_reduce: bool = False
    directory: Optional[str] = None
    filename: Optional[str] = None
    filename_format: Optional[str] = None
    fixedbufs: bool = False
    registerfiles: bool = False
    sqthread_poll: bool = False
    sqthread_poll_cpu: Optional[int] = None
    hipri: bool = False
    force_async: int = 0
    iodepth_batch_submit: int = 1
    iodepth_batch_complete_min: int = 1
    iodepth_batch_complete_max: int = 0
    threads: int = 0
    group_reporting: bool = False
    allow_destructive: bool = False
    _given: frozenset = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self):
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name != "_given"}
        given = set(self._given)
        for name, (parser, _engines, _help) in OPTIONS.items():
            value = getattr(self, name)
            if value != defaults[name] or type(value) is not type(defaults[name]):
                given.add(name)
            if value is not None:
                object.__setattr__(self, name, parser(name, value))
            elif defaults[name] is not None:
                raise OptionError(name, "must have a value (got none)")
        object.__setattr__(self, "_given", frozenset(given))
        if "filesize" in given and "size" not in given:
            # fio: without size, a job's size is the sum of its files
            object.__setattr__(self, "size", self.filesize * self.files_per_job)
        self._check_together()

    # -- cross-option rules; each message names the option to change

    def _check_together(self):
        for name, (_parser, engines, _help) in OPTIONS.items():
            if engines and self.ioengine not in engines and name in self._given \
                    and getattr(self, name) not in (False, 0, None):
                raise OptionError(name, f"only ioengine={' or '.join(engines)} has it "
                                        f"(ioengine is {self.ioengine})")
        if self.bs < 1 or self.bs > MAX_BS:
            raise OptionError("bs", f"must be from 1 to {MAX_BS >> 20}m (got {self.bs})")
        if self.direct and self.bs % 512:
            raise OptionError("bs", f"must be a multiple of 512 with direct=1 (got {self.bs})")
        if self.verify and self.bs % 512:
            raise OptionError("bs", f"must be a multiple of 512 with verify={self.verify} (got {self.bs})")
        if self.size < 1 and not self.filename:
            raise OptionError("size", "must be at least 1 byte")
        if self.file_size < self.bs and not (self.filename and "size" not in self._given
                                             and "filesize" not in self._given):
            raise OptionError("size" if self.filesize is None else "filesize",
                              f"each of the {self.nrfiles} file(s) needs at least bs={self.bs} bytes "
                              f"(got {self.file_size})")
        if self.time_based and not self.runtime:
            raise OptionError("time_based", "needs runtime (e.g. --runtime=10)")
        if self.hipri and not self.direct:
            raise OptionError("hipri", "polled completions (IOPOLL) need direct=1")
        if self.sqthread_poll_cpu is not None and not self.sqthread_poll:
            raise OptionError("sqthread_poll_cpu", "needs sqthread_poll=1")
        if self.filename:
            names = split_filenames(self.filename)
            if any(not n for n in names):
                raise OptionError("filename", f"has an empty name in {self.filename!r}")
            if "nrfiles" in self._given and self.nrfiles != len(names):
                raise OptionError("nrfiles", f"is {self.nrfiles} but filename names {len(names)} file(s)")
        if self.rw in ("rw", "randrw") and self.rwmixread in (0, 100):
            pass  # allowed, as in fio: all reads or all writes through the mixed path

    # -- derived values

    @property
    def is_sync_engine(self):
        return registry()[self.ioengine]["sync"]

    @property
    def label(self):
        return job_label(self.to_dict())

    @property
    def is_random(self):
        return self.rw.startswith("rand")

    @property
    def read_percent(self):
        """Percent of I/Os that are reads (100 for read-only modes)."""
        if self.rw in ("read", "randread"):
            return 100
        if self.rw in ("write", "randwrite"):
            return 0
        return self.rwmixread

    @property
    def writes(self):
        return self.read_percent < 100

    @property
    def files_per_job(self):
        return len(split_filenames(self.filename)) if self.filename else self.nrfiles

    @property
    def file_size(self):
        """Bytes used of each file: filesize, or size split over the files."""
        if self.filesize is not None:
            return self.filesize
        return self.size // self.files_per_job

    @property
    def effective_iodepth(self):
        return 1 if self.is_sync_engine else self.iodepth

    def file_name(self, jobnum, filenum):
        """The name of kit's file `filenum` of job thread `jobnum` (fio's rule)."""
        fmt = self.filename_format or "$jobname.$jobnum.$filenum"
        return fmt.replace("$jobname", self.name).replace("$jobnum", str(jobnum)).replace("$filenum", str(filenum))

    def given(self):
        """The options set explicitly, with their values (for reports and fio)."""
        return {name: getattr(self, name) for name in OPTIONS if name in self._given}

    def to_dict(self):
        return {name: getattr(self, name) for name in OPTIONS}

    def replace(self, **changes):
        merged = dict(self.given())
        merged.update(changes)
        return Job(**merged)

    @classmethod
    def from_options(cls, options):
        """Builds a Job from name -> value pairs as a user wrote them (strings
        welcome); unknown names get a 'did you mean' line, and one option
        given under two names (bs and blocksize) is refused."""
        kwargs, seen = {}, {}
        for raw_name, value in options.items():
            canonical = canonical_option(raw_name)
            if canonical in seen:
                raise OptionError(raw_name, f"is the same option as {seen[canonical]}; give it once")
            seen[canonical] = raw_name
            name = raw_name.replace("-", "_")
            if name == "rwmixwrite":
                kwargs["rwmixread"] = 100 - parse_int("rwmixwrite", value, 0, 100)
                continue
            name = ALIASES.get(name, name)
            if name not in OPTIONS:
                close = difflib.get_close_matches(name, list(OPTIONS) + list(ALIASES), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise OptionError(raw_name, f"is not a kit option{hint}; `kit run --help` lists them")
            kwargs[name] = value
        return cls(**kwargs)

    @classmethod
    def from_fio_file(cls, path, section=None, env=None, strict=False):
        """The job of a fio job file (its only section, or the one named)."""
        from .fio import read_job_file
        jobs = read_job_file(path, env=env, strict=strict).jobs
        if section is not None:
            match = [j for j in jobs if j.name == section]
            if not match:
                raise OptionError("section", f"{path} has no [{section}] (it has "
                                             f"{', '.join(j.name for j in jobs)})")
            return match[0]
        if len(jobs) != 1:
            raise OptionError("section", f"{path} has {len(jobs)} jobs ({', '.join(j.name for j in jobs)}): "
                                         "name one, or use kit.fio.read_job_file()")
        return jobs[0]

    @classmethod
    def from_dict(cls, data):
        return cls.from_options({k: v for k, v in data.items() if v is not None})
