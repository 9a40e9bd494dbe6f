"""The job model: fio's option names, fio's units, validated once.

A Job's fields are generated from the option declarations (kit.options for
the options every engine takes, kit/engines/<name>.py for an engine's own):
nothing lists the options a second time. A Job is immutable and always
valid: every constructor path (Python keywords, CLI strings, fio job files)
goes through the same parsers, and a bad value raises OptionError naming
the option and what is allowed. Making a Job needs no compiled library.
"""
import dataclasses
import difflib

from . import fio_names
from .engines import diskless, engine, engine_names, registry
from .errors import OptionError
from .options import COMMON, MAX_BS, Percent, add_engine_options, cpu_list, parse_bool, parse_int, per_ddir, \
    short, split_filenames


def _declared():
    """name -> Option: the common options, then each engine's own (an option
    two engines declare alike belongs to both)."""
    out = {}
    for option in COMMON:
        if option.name == "ioengine":
            option = dataclasses.replace(option, choices=engine_names)
        out[option.name] = option
    for name in engine_names():
        add_engine_options(out, name, engine(name).OPTIONS)
    return out


OPTIONS = _declared()
ALIASES = {alias: option.name for option in OPTIONS.values() for alias in option.aliases}
# fio's options that say another one the other way round: name -> (option, value -> its value)
INVERSES = {
    "rwmixwrite": ("rwmixread", lambda v: 100 - parse_int("rwmixwrite", v, 0, 100)),
    "buffered": ("direct", lambda v: not parse_bool("buffered", v)),
}


# fio options kit accepts because it already behaves this way ("threads" is
# fio's tiobench profile option, a no-op in a plain job: so in job files it is
# never threadpool's option, which is threadpool_threads there)
NO_EFFECT = {"thread": "kit always runs jobs as threads",
             "threads": "fio's tiobench profile option, which does nothing in a plain job "
                        "(threadpool's worker count is threadpool_threads in job files)",
             "description": "", "randrepeat": "kit's offsets are always repeatable",
             "clocksource": "kit picks its clock (the result says which)"}
# fio's names: every declared option that job files may hold (kit's own ones
# too, for jobs only kit runs), under its fio name and its aliases -> kit's
# option, and the inverses (passed on as they are; Job.from_options turns them)
FIO_TO_KIT = {name: option.name for option in OPTIONS.values() if option.job_file
              for name in (option.name, option.fio_name, *option.aliases) if name and name not in NO_EFFECT}
FIO_TO_KIT.update({name: name for name in INVERSES})
ORDERING = ("stonewall", "wait_for_previous", "new_group")      # groups, not jobs
# fio's log options -> the kinds of log file each writes (NAME_<kind>.N.log)
LOG_FILES = {"write_bw_log": ("bw",), "write_iops_log": ("iops",), "write_lat_log": ("lat", "clat", "slat")}
# what options not allowed in files (Option.job_file False) say there
COMMAND_LINE_ONLY = "only --{flag} on kit's command line allows it, never a job file or a sweep file"
# fio's options kit does not run that change only fio's output, reports, logs
# or bookkeeping -- never which I/O is issued, when, how big, to where, with
# what data, or how it is synced -- by fio's name, with what each does: kit
# warns and runs the job (an error with --strict). Every other option fio 3.33
# has (kit.fio_names) and kit does not is refused: kit would measure something else.
OUTPUT_ONLY = {
    "write_hist_log": "fio writes a latency histogram log; kit writes none, its result keeps the bins",
    "log_hist_msec": "the interval of fio's histogram log (write_hist_log)",
    "log_hist_coarseness": "the resolution of fio's histogram log (write_hist_log)",
    "log_max_value": "fio's logs say each window's maximum, not its average",
    "log_compression": "fio compresses its logs in memory as it goes; kit's logs are plain text",
    "log_compression_cpus": "the CPUs that compress fio's logs (log_compression)",
    "log_store_compressed": "fio stores its logs compressed (.fz); kit's are plain text",
    "log_unix_epoch": "Unix times in fio's logs; kit's logs count from the job's start",
    "log_alternate_epoch": "another clock's times in fio's logs; kit's logs count from the job's start",
    "log_alternate_epoch_clock_id": "the clock of log_alternate_epoch",
    "log_entries": "how many log entries fio allocates up front",
    "log_prio": "each I/O's priority in fio's logs",
    "write_iolog": "fio records the I/Os it issued in a file; kit writes none",
    "unified_rw_reporting": "fio's report sums the directions; kit's reports each one",
    "disable_lat": "fio skips measuring total latency; kit measures it",
    "disable_clat": "fio skips measuring completion latency; kit measures it",
    "disable_slat": "fio skips measuring submission latency; kit measures it",
    "disable_bw_measurement": "fio skips measuring bandwidth; kit measures it",
    "significant_figures": "the digits of fio's normal output",
    "unit_base": "bits or bytes in fio's report",
    "stats": "stats=0 leaves the job out of fio's report",
    "block_error_percentiles": "a histogram of trim errors in fio's report",
    "disk_util": "disk utilisation in fio's report",
    "error_dump": "which errors fio prints",
    "verify_dump": "files of the expected and the read data when a verify fails",
    "verify_state_save": "fio saves a verify job's state in a file at its end, for a later verify_state_load; "
                         "kit keeps none",
    "cgroup_nodelete": "fio keeps the cgroups it made; kit makes none",
    "unique_filename": "only fio's client/server mode prefixes file names with the client's address",
    "allow_mounted_write": "a permission only: kit's own safety rules decide what it writes (--allow-destructive)",
    "unlink": "fio deletes the job's files when done; kit keeps them",
}

# fio's options given the value kit runs as anyway (fio's default there): taken
# without a word, as thread and randrepeat=1 are; any other value is judged by
# the option (a bool: True or False; text: fio's spellings of the value)
KIT_RUNS_AS = {"zonemode": ("none",), "io_submit_mode": ("inline",), "unified_rw_reporting": ("none", "0"),
               "stats": True, "unlink": False, "allow_file_create": True, "create_on_open": False,
               "disable_lat": False, "disable_clat": False, "disable_slat": False, "disable_bw_measurement": False,
               # kit stops at a job's first error
               "continue_on_error": ("none", "0"),
               # fio's defaults that kit's run already is: files round robin one I/O each, buffers from
               # malloc (kit's posix_memalign), the verify phase after writing; offsets uniform with the
               # random map (kit's own generator, as fio's tausworthe is fio's: the same draws from neither)
               "file_service_type": ("roundrobin", "roundrobin:1"), "mem": ("malloc",),
               "do_verify": True, "random_generator": ("tausworthe", "tausworthe64")}


def _fio_option(name):
    """(fio's name for it, fio's help, where fio declares it) for a name fio
    3.33 takes, exactly as written (fio's parse.c compares with strcmp), else None."""
    if name in fio_names.GENERAL:
        return (*fio_names.GENERAL[name], "")
    if name in fio_names.ENGINE:
        option, help_text, files = fio_names.ENGINE[name]
        return option, help_text, f"fio's {', '.join(files)} ioengine option"
    if name in fio_names.PROFILE:
        option, help_text, files = fio_names.PROFILE[name]
        return option, help_text, f"fio's {files[0]} profile option"
    return None


def _nearest_name(name):
    """' (did you mean X?)' for the nearest name fio or kit takes, or ''."""
    names = [*fio_names.GENERAL, *fio_names.ENGINE, *fio_names.PROFILE, *FIO_TO_KIT, *NO_EFFECT, *ORDERING]
    close = [n for n in names if n.lower() == name.lower()] or difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def fio_option_verdict(name, value=None):
    """What kit does with an option name that is not one of its own (a job
    file's, kit run's --flag, a Job keyword): (verdict, why), verdict one of
    "accept" (kit behaves so already, or fio ignores it too; why: None, or
    a note to show), "warn" (it changes only fio's output: a warning, an
    error with --strict), "refuse" (kit cannot run it, or fio 3.33 refuses
    it too) and "unknown" (neither fio 3.33 nor kit has it: refused).
    value: as written (None: bare)."""
    if name in NO_EFFECT:
        if name == "randrepeat" and _bool(value) is False:
            return "refuse", (f"{value} makes fio's random offsets differ from run to run; kit's are the same "
                              "for the same randseed, so it would measure something else: take it out (randseed "
                              "picks other offsets)")
        if name == "threads":
            return "accept", f"{NO_EFFECT[name]}; ignored, as fio does"
        return "accept", None
    known = _fio_option(name)
    if known is None:
        return "unknown", f"no such option in fio 3.33 or kit{_nearest_name(name)}; fio refuses it too"
    option, help_text, where = known
    if option in KIT_RUNS_AS and _as(value, KIT_RUNS_AS[option]):
        return "accept", None
    deprecated = fio_names.DEPRECATED.get(option)
    if deprecated == "refused":
        return "refuse", "fio 3.33 refuses it too (deprecated)"
    if deprecated == "ignored":
        return "accept", "fio 3.33 ignores it (deprecated); so does kit"
    if name in fio_names.PROFILE:
        return "accept", f"{where}, which does nothing in a plain job; ignored, as fio does"
    if option in OUTPUT_ONLY:
        return "warn", f"changes only fio's output ({OUTPUT_ONLY[option]})"
    what = "; ".join(w for w in (help_text and f"fio: {help_text}", where) if w)
    return "refuse", (f"kit cannot run it{f' ({what})' if what else ''}, so it would measure something other "
                      "than the job describes: take it out, or run it with fio itself")


def _as(value, kit_runs_as):
    """Whether a value as written (None: bare, which turns a flag on) is the
    one kit runs as."""
    if isinstance(kit_runs_as, bool):
        return (True if value is None else _bool(value)) is kit_runs_as
    return value is not None and str(value).strip() in kit_runs_as


def _bool(value):
    """A bool as written, or None for what is not one."""
    try:
        return parse_bool("value", value)
    except OptionError:
        return None


def bare_value(name):
    """What an option written without a value means in a job file: on
    ("1"), or for a log option the job's name ("")."""
    return "" if FIO_TO_KIT.get(name) in LOG_FILES else "1"


def canonical_option(name):
    """The option a name stands for: aliases, inverses (rwmixwrite is
    rwmixread said the other way round) and '-' spellings resolved."""
    name = str(name).replace("-", "_")
    if name in INVERSES:
        return INVERSES[name][0]
    return ALIASES.get(name) or name


def written_name(name):
    """The name fio's JSON lists an option under: its fio name for aliases
    (blocksize -> bs), inverses as themselves (rwmixwrite)."""
    name = str(name).replace("-", "_")
    if name in INVERSES:
        return name
    canonical = ALIASES.get(name) or name
    option = OPTIONS.get(canonical)
    return (option.fio_name or canonical) if option else name


def _as_written(value, option=None, kb_base=1024):
    """A value as text, the way a user would have written it."""
    if option is not None and isinstance(value, (tuple, list, Percent)):
        return option.text(option.parse(value, kb_base), kb_base)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def job_label(options):
    """Engine plus the features that change its behaviour: io_uring+fixedbufs,
    asio+thread_pool (a choice other than its default, by its value)."""
    parts = [options["ioengine"]]
    for name, option in OPTIONS.items():
        value = options.get(name)
        if option.label and value and value != option.default:
            parts.append(str(value) if option.kind == "choice" else name)
    return "+".join(parts)


class _JobMethods:
    """What a Job knows beyond its fields (the fields come from OPTIONS)."""

    def __post_init__(self):
        # Job(bs="4k") from Python: what differs from the defaults is what was
        # written; from_options and replace say both themselves
        derive = not self._given
        given = set(self._given)
        written = dict(self._written)
        # every size of the job reads in its kb_base, wherever it was written
        # (fio sorts kb_base first in a section: options.c gives it prio 1)
        kb_base = OPTIONS["kb_base"].parse(self.kb_base)
        for name, option in OPTIONS.items():
            value = getattr(self, name)
            if value != option.default or type(value) is not type(option.default):
                given.add(name)
            if derive and name in given and name != "name" and value not in (None, ""):
                written[option.fio_name or name] = _as_written(value, option, kb_base)
            object.__setattr__(self, name, option.parse(value, kb_base))
        object.__setattr__(self, "_given", frozenset(given))
        object.__setattr__(self, "_written", tuple(written.items()))
        if "filesize" in given and "size" not in given:
            # fio: without size, a job's size is the sum of its files
            object.__setattr__(self, "size", self.filesize * self.files_per_job)
        self._check_together()
        self._check_logs()

    # -- cross-option rules; each message names the option to change

    def _check_together(self):
        for name, option in OPTIONS.items():
            on = name in self._given and getattr(self, name) != option.default
            # written at all, even as its default: fio refuses an option the job's engine lacks
            if option.engines and self.ioengine not in option.engines and name in self._given:
                raise OptionError(name, f"only ioengine={' or '.join(option.engines)} has it "
                                        f"(ioengine is {self.ioengine})")
            for needed, why in option.requires:
                if on and not getattr(self, needed):
                    raise OptionError(name, why)
        check = getattr(engine(self.ioengine), "check_options", None)
        if check:
            check(self)
        for b in per_ddir(self.bs):
            if b < 1 or b > MAX_BS:
                raise OptionError("bs", f"must be from 1 to {MAX_BS >> 20}m (got {b})")
        sizes_option = "bssplit" if self.bssplit else "bsrange" if self.bsrange else "bs"
        if self.direct and any(b % 512 for b in self.all_block_sizes):
            raise OptionError(sizes_option, f"must be multiples of 512 with direct=1 (got {self.all_block_sizes})")
        if self.verify and (len(self.all_block_sizes) > 1 or self.all_block_sizes[0] % 512):
            raise OptionError(sizes_option, f"verify={self.verify} needs one block size, a multiple of 512 "
                                            f"(got {self.all_block_sizes})")
        percent = [n for n in ("size", "io_size", "offset", "offset_increment") if isinstance(getattr(self, n),
                                                                                              Percent)]
        if percent and not self.filename:
            raise OptionError(percent[0], f"{getattr(self, percent[0])} needs filename= (an existing file or "
                                          "device to take it of): kit's own files have no size before it")
        if not isinstance(self.size, Percent):
            if self.size < 1 and not self.filename:
                raise OptionError("size", "must be at least 1 byte")
            if self.file_size < self.min_bs and not (self.filename and "size" not in self._given
                                                     and "filesize" not in self._given):
                raise OptionError("size" if self.filesize is None else "filesize",
                                  f"each of the {self.nrfiles} file(s) needs at least bs={self.min_bs} bytes "
                                  f"(got {self.file_size})")
        if self.directory and self.filename and any(n.startswith("/") for n in split_filenames(self.filename)):
            # fio puts even an absolute name under the directory (directory=/d filename=/x is /d/x), which
            # is rarely what was meant: kit does neither
            raise OptionError("filename", f"{short(self.filename)} is absolute and directory= is set: fio would "
                                          f"use {self.directory.rstrip('/')}/{split_filenames(self.filename)[0].lstrip('/')}; "
                                          "give a name relative to the directory, or leave directory out")
        if self.direct:
            for name in ("offset", "offset_increment"):
                value = getattr(self, name)
                if not isinstance(value, Percent) and value % 512:
                    raise OptionError(name, f"must be a multiple of 512 with direct=1 (got {value})")
        if self.is_trim:
            if self.verify:
                raise OptionError("verify", f"rw={self.rw} discards data: there is nothing to read back")
        if self.rate_iops and self.rate or self.rate_iops_min and self.rate_min:
            raise OptionError("rate_iops" if self.rate_iops and self.rate else "rate_iops_min",
                              "and rate (rate_min) are the same limit said two ways: give one (as fio)")
        for limit, floor in (("rate", "rate_min"), ("rate_iops", "rate_iops_min")):
            for d, (top, low) in enumerate(zip(per_ddir(getattr(self, limit)), per_ddir(getattr(self, floor)))):
                if top and low > top:
                    raise OptionError(floor, f"is above {limit} for {('read', 'write', 'trim')[d]} "
                                             f"({low} > {top}): the job could never meet it")
        if self.thinktime_spin > self.thinktime:
            raise OptionError("thinktime_spin", f"is part of thinktime, so at most {self.thinktime} "
                                                f"(got {self.thinktime_spin})")
        if self.loops > 1 and self.verify:
            raise OptionError("loops", "kit verifies once after all writes; with loops fio verifies after each "
                                       "loop: give one or the other")
        if self.loops > 1 and self.io_size:
            raise OptionError("loops", "with io_size fio counts io_size over all loops in ways kit does not "
                                       "reproduce: give io_size (it wraps around the region) or loops")
        if self.bssplit and self.bsrange:
            raise OptionError("bssplit", "and bsrange both set the block sizes (fio lets whichever it reads "
                                         "last win, per direction): give one")
        if self.loops > 1 and self.time_based:
            raise OptionError("loops", "a time_based job runs for its runtime: give loops or time_based")
        if self.random_distribution != "random" and not self.is_random:
            raise OptionError("random_distribution", f"shapes random offsets; rw={self.rw} is sequential")
        if self.time_based and not self.runtime:
            raise OptionError("time_based", "needs runtime (e.g. --runtime=10)")
        if diskless(self.ioengine):
            for name in ("verify", "fsync", "fdatasync", "end_fsync", "fsync_on_close", "pre_read"):
                if getattr(self, name):
                    raise OptionError(name, f"ioengine={self.ioengine} moves no data and has no file")
            if self.sync != "none":
                raise OptionError("sync", f"ioengine={self.ioengine} opens no file")
        if self.time_based and self.verify and self.writes:
            raise OptionError("verify", "a time_based job that writes never reaches its verify phase "
                                        "(fio 3.33 skips it, newer fio verifies each pass): give size, "
                                        "not time_based, to verify what it wrote")
        if self.cpus_allowed is not None and self.cpumask is not None:
            raise OptionError("cpumask", "sets the same CPUs as cpus_allowed: give one of them")
        if self.verify:
            # refill_buffers is no content: fio turns it on for verify jobs itself
            for name in ("zero_buffers", "buffer_compress_percentage"):
                if getattr(self, name):
                    raise OptionError(name, f"verify={self.verify} writes kit's own pattern in every block: "
                                            "leave one of the two out")
        if self.time_based and self.number_ios:
            raise OptionError("number_ios", "fio ignores it with time_based=1 (the job runs for its runtime): "
                                            "give one or the other")
        if self.filename:
            names = split_filenames(self.filename)
            if any(not n for n in names):
                raise OptionError("filename", f"has an empty name in {self.filename!r}")
            if "nrfiles" in self._given and self.nrfiles != len(names):
                raise OptionError("nrfiles", f"is {self.nrfiles} but filename names {len(names)} file(s)")

    # -- derived values

    def _check_logs(self):
        per_io = [o for o in ("write_bw_log", "write_iops_log") if getattr(self, o) is not None
                  and not self.log_avg_msec]
        if self.gtod_reduce and (per_io or self.write_lat_log is not None):
            option = "write_lat_log" if self.write_lat_log is not None else per_io[0]
            raise OptionError(option, "gtod_reduce=1 keeps no per-I/O times to log: leave gtod_reduce out"
                                      + ("" if option == "write_lat_log" else ", or give log_avg_msec"))

    def log_prefix(self, option):
        """Where a log option's files go: its prefix, or the job's name."""
        return getattr(self, option) or self.name

    def avg_ms(self, kind):
        """The window of fio's bw_* (kind "bw") or iops_* ("iops") samples:
        bwavgtime or iopsavgtime as given; a log of that kind with
        log_avg_msec makes it log_avg_msec (fio's add_job); 0: a log of
        that kind without log_avg_msec makes every I/O a sample."""
        option, log = {"bw": ("bwavgtime", "write_bw_log"), "iops": ("iopsavgtime", "write_iops_log")}[kind]
        if getattr(self, log) is not None:
            if not self.log_avg_msec:
                return 0
            if option not in self._given:
                return self.log_avg_msec
        return getattr(self, option)

    @property
    def log_ms(self):
        """The logs' windows: log_avg_msec when a log averages its lines,
        else 0."""
        return self.log_avg_msec if any(getattr(self, o) is not None for o in LOG_FILES) else 0

    @property
    def series_ms(self):
        """The windows of kit's time series (IOPS over time): the logs'
        when they average, else the iops_* samples', else the bw_* ones'."""
        return self.log_ms or self.avg_ms("iops") or self.avg_ms("bw") or self.iopsavgtime

    @property
    def windows_ms(self):
        """The driver's window grids, each once: the iops_* samples', the
        bw_* samples' and the time series' (at most three)."""
        out = []
        for ms in (self.avg_ms("iops"), self.avg_ms("bw"), self.series_ms):
            if ms and ms not in out:
                out.append(ms)
        return out

    def on(self, name):
        """Whether an option is on, by itself or implied by another
        (sqthread_poll implies registerfiles, as in fio)."""
        return bool(getattr(self, name)) or any(
            getattr(self, other) for other, option in OPTIONS.items() if name in option.implies)

    @property
    def is_sync_engine(self):
        return registry()[self.ioengine]["sync"]

    @property
    def label(self):
        return job_label(self.to_dict())

    def cpus(self, thread_number):
        """The CPUs fio's job thread `thread_number` (1-based, across the job
        file) may run on: cpus_allowed or cpumask, and under
        cpus_allowed_policy=split only the one its number picks in turn
        (fio's fio_cpus_split); None: wherever the process may."""
        if self.cpumask is not None:
            allowed = sorted(i for i in range(self.cpumask.bit_length()) if self.cpumask >> i & 1)
        elif self.cpus_allowed is not None:
            allowed = sorted(cpu_list("cpus_allowed", self.cpus_allowed))
        else:
            return None
        return [allowed[(thread_number - 1) % len(allowed)]] if self.cpus_allowed_policy == "split" else allowed

    @property
    def write_content(self):
        """What unverified writes carry, decided as fio does (init.c,
        io_u.c get_io_u): {buffer_fill, compress_percentage, compress_chunk,
        refill_buffers, scramble_buffers}, the C parameters' values (the
        fill by name: random, zero or compress).
        buffer_compress_percentage=100 is zero_buffers; below it, it refills
        every write unless refill_buffers is given, and wins over
        zero_buffers (fio's fill_io_buffer looks at it first); a scramble is
        skipped for zero_buffers given, compressible content or refilled
        buffers."""
        compress = self.buffer_compress_percentage
        fill = "compress" if 0 < compress < 100 else "zero" if self.zero_buffers or compress == 100 else "random"
        refill = self.refill_buffers if "refill_buffers" in self._given else 0 < compress < 100
        write_bs = min(self._sizes(1))          # fio's min_bs[DDIR_WRITE]
        # fio's TD_F_SCRAMBLE_BUFFERS: on, but off for zero_buffers unless scramble_buffers is given
        scramble = self.scramble_buffers and ("scramble_buffers" in self._given or not self.zero_buffers)
        return {"buffer_fill": fill, "compress_percentage": compress,
                "compress_chunk": min(self.buffer_compress_chunk or write_bs, write_bs),
                "refill_buffers": int(bool(refill)),
                "scramble_buffers": int(bool(scramble and not compress and not refill))}

    @property
    def ioprio(self):
        """The I/O priority value for ioprio_set (class << 13 | level) that
        prio and prioclass give, or None when neither is given (fio: the
        class defaults to best-effort, the level to 0)."""
        if self.prio is None and self.prioclass is None:
            return None
        return (self.prioclass or 2) << 13 | (self.prio or 0)

    @property
    def is_random(self):
        return self.rw.startswith("rand")

    @property
    def is_trim(self):
        return self.rw in ("trim", "randtrim")

    @property
    def read_percent(self):
        """Percent of I/Os that are reads (100 for read-only modes)."""
        if self.rw in ("read", "randread"):
            return 100
        if self.rw in ("write", "randwrite", "trim", "randtrim"):
            return 0
        return self.rwmixread

    @property
    def writes(self):
        """Whether the job changes the files' data (trims discard it)."""
        return self.read_percent < 100

    @property
    def ddirs(self):
        """The directions (0 read, 1 write, 2 trim) the job issues."""
        if self.is_trim:
            return (2,)
        return tuple(d for d, on in ((0, self.read_percent > 0), (1, self.read_percent < 100)) if on)

    def block_sizes(self, ddir):
        """How one direction picks its block sizes: ((bs, percent), ...) for
        bssplit, (min, max) for bsrange, or one size (fio's precedence)."""
        split = self.bssplit
        if split and not (split[0] and isinstance(split[0][0], int)):      # per direction
            split = split[ddir]
        if split:
            return ("split", split)
        span = self.bsrange
        if span and not isinstance(span[0], int):
            span = span[ddir]
        if span:
            return ("range", span)
        return ("fixed", per_ddir(self.bs)[ddir])

    def _sizes(self, ddir):
        kind, value = self.block_sizes(ddir)
        return [b for b, _ in value] if kind == "split" else list(value) if kind == "range" else [value]

    @property
    def all_block_sizes(self):
        """Every block size the job's directions may use, sorted."""
        return sorted({b for d in self.ddirs for b in self._sizes(d)})

    @property
    def min_bs(self):
        """fio's td_min_bs: the smallest block size of the job's directions
        (offsets are in these units)."""
        return self.all_block_sizes[0]

    @property
    def max_bs(self):
        return self.all_block_sizes[-1]

    @property
    def files_per_job(self):
        return len(split_filenames(self.filename)) if self.filename else self.nrfiles

    @property
    def file_size(self):
        """Bytes used of each file: filesize, or size split over the files
        (None for size=N%: known from the file itself)."""
        if self.filesize is not None:
            return self.filesize
        if isinstance(self.size, Percent):
            return None
        return self.size // self.files_per_job

    def file_name(self, jobnum, filenum):
        """The name of kit's file `filenum` of job thread `jobnum` (fio's rule)."""
        fmt = self.filename_format or "$jobname.$jobnum.$filenum"
        return fmt.replace("$jobname", self.name).replace("$jobnum", str(jobnum)).replace("$filenum", str(filenum))

    def given(self):
        """The options set explicitly, with their values (for reports and fio)."""
        return {name: getattr(self, name) for name in OPTIONS if name in self._given}

    def written(self, where=None):
        """The options as the user wrote them, as fio's JSON lists them: fio's
        name -> the text given ('4k', not 4096), explicit defaults included.
        where: "global" (from a job file's [global]), "job" (the rest), or
        None (all)."""
        return {k: v for k, v in self._written
                if where is None or (k in self._from_global) == (where == "global")}

    def to_dict(self):
        return {name: getattr(self, name) for name in OPTIONS}

    def replace(self, **changes):
        """The job with some options changed; the rest stay as written."""
        changed = {canonical_option(k) for k in changes}
        new_base = [OPTIONS["kb_base"].parse(v) for k, v in changes.items() if canonical_option(k) == "kb_base"]
        if new_base and new_base[0] != self.kb_base and any(OPTIONS[k].kind == "size" for k in self.given()):
            # the sizes given are bytes by now: how they were written is gone
            raise OptionError("kb_base", "changes how sizes read: give it with the sizes, not to a job that "
                                         "has them (Job(..., kb_base=1000) or kb_base in the job file)")
        merged = {k: v for k, v in self.given().items() if k not in changed}
        merged.update({canonical_option(k): INVERSES[k.replace("-", "_")][1](v)
                       if k.replace("-", "_") in INVERSES else v for k, v in changes.items()})
        written = [(k, v) for k, v in self._written if canonical_option(k) not in changed]
        written += [(written_name(k), _as_written(v)) for k, v in changes.items()
                    if k != "name" and v not in (None, "")]
        return Job(**merged, _given=frozenset(merged), _written=tuple(written),
                   _from_global=self._from_global - {k for k, _ in self._written if canonical_option(k) in changed})

    @classmethod
    def from_options(cls, options, written=None, from_global=(), explicit=True):
        """Builds a Job from name -> value pairs as a user wrote them (strings
        welcome); unknown names get a 'did you mean' line, and one option
        given under two names (bs and blocksize) is refused. written: what
        the job's JSON lists as its options (default: every pair given, under
        fio's names); from_global: which of them came from [global];
        explicit=False: a stored job, whose defaults were not chosen."""
        kwargs, seen = {}, {}
        cpu_sets = {"cpus_allowed", "cpumask"} & set(options)
        if len(cpu_sets) == 2 and len(cpu_sets & set(from_global)) == 1:
            # fio keeps one CPU set, the one parsed last: a section's own replaces [global]'s
            options = {k: v for k, v in options.items() if k not in cpu_sets & set(from_global)}
        if written is None and explicit:
            written = {written_name(k): _as_written(v) for k, v in options.items()
                       if k != "name" and v not in (None, "")}   # fio lists no empty value
        for raw_name, value in options.items():
            canonical = canonical_option(raw_name)
            name = raw_name.replace("-", "_")
            said = INVERSES[name][1](value) if name in INVERSES else value
            if canonical in seen:
                _check_same(canonical, seen[canonical], options[seen[canonical]], kwargs[canonical], raw_name,
                            value, said)
                continue
            seen[canonical] = raw_name
            if name in INVERSES:
                kwargs[canonical] = said
                continue
            if canonical not in OPTIONS:
                raise OptionError(raw_name, _not_a_job_option(name, value))
            kwargs[canonical] = value
        return cls(**kwargs, _given=frozenset(kwargs if explicit else ()), _written=tuple((written or {}).items()),
                   _from_global=frozenset(from_global))

    @classmethod
    def from_dict(cls, data):
        return cls.from_options({k: v for k, v in data.items() if v is not None}, explicit=False)


def _not_a_job_option(name, value):
    """Why a Job has no option of that name: fio's option kit cannot run
    (fio_option_verdict), one kit ignores in job files and on kit run's
    command line, or no option at all."""
    if name in NO_EFFECT or _fio_option(name):
        verdict, why = fio_option_verdict(name, value)
        return why if verdict == "refuse" else ("is fio's option, which kit ignores in job files and on kit run's "
                                                "command line; a Job takes kit's options only")
    close = difflib.get_close_matches(name, list(OPTIONS) + list(ALIASES), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"is not a kit option{hint}; `kit run --help` lists them"


def _check_same(canonical, first, first_value, first_said, second, value, said):
    """An option given twice, under two of its names: fio's pairs that say
    one setting two ways round (rwmixread=60 with rwmixwrite=40, direct=1
    with buffered=0) are taken when they agree; otherwise, and for an alias
    (bs and blocksize), one line naming both."""
    inverse = {first.replace("-", "_"), second.replace("-", "_")} & set(INVERSES)
    if not inverse:
        raise OptionError(second, f"is the same option as {first}; give it once")
    option = OPTIONS[canonical]
    if option.parse(first_said) != option.parse(said):
        raise OptionError(None, f"{second}={_as_written(value)} disagrees with {first}={_as_written(first_value)} "
                                f"(both set {canonical}): give one, or values that agree")


Job = dataclasses.make_dataclass(
    "Job",
    [(name, object, dataclasses.field(default=option.default)) for name, option in OPTIONS.items()]
    + [(hidden, kind, dataclasses.field(default=kind(), repr=False, compare=False))
       for hidden, kind in (("_given", frozenset), ("_written", tuple), ("_from_global", frozenset))],
    bases=(_JobMethods,), frozen=True)
Job.__module__ = __name__
Job.__doc__ = """One workload, as fio would describe it: one field per option of kit.options and
of each engine (kit/engines/<name>.py). Strings are parsed ('4k')."""


def job_from_fio_options(options, name):
    """Best effort: a kit Job from fio's 'job options' strings (fio's JSON);
    what kit does not know is listed in the notes."""
    values, notes = {}, []
    for key, value in options.items():
        key = key.replace("-", "_")
        if key in ORDERING or key in NO_EFFECT:
            continue
        if key in FIO_TO_KIT and key not in ("name",):
            values[FIO_TO_KIT[key]] = bare_value(key) if value in (None, "") else value
        elif key != "name":
            notes.append(f"fio option {key}={value} has no kit equivalent")
    try:
        return Job.from_options({"name": name, **values}), notes
    except OptionError as e:
        return None, notes + [f"cannot express the fio job as a kit Job: {e}"]
