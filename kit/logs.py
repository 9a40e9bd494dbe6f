"""fio's log files (write_bw_log, write_iops_log, write_lat_log), in fio
3.33's format and names, from what the C driver kept per job thread: a
record per I/O (without log_avg_msec) or windows (with it).

NAME_<kind>.N.log, N fio's thread number; a line is `time, value, ddir, bs,
prio` (offset before prio with log_offset=1), time in ms since the thread
started measuring (fio's epoch, which ramp_time moves to the ramp's end),
latencies in ns, bw in KiB/s over a window or bytes*1e6/clat_ns per I/O
(fio's kB/s), iops 1 per I/O. Averaged lines have bs 0.

Names are relative to the current directory, as fio's. Kit never replaces a
file: every log file is checked to be new before the run (check) and is
created exclusively (write, adopt)."""
import os
import shutil

import numpy as np

from .errors import OptionError, RunError
from .files import check_new_file, open_new
from .job import LOG_FILES
from .results import grid, stat_windows, window_rates


def thread_numbers(job, first):
    """fio's thread number of each of the job's threads (kit's thread j is
    fio's subjob j, the one whose files are named .j.): the section's own
    thread comes first, its clones follow with subjob numbers counting
    down (fio's add_job)."""
    return [first if j == 0 else first + job.numjobs - j for j in range(job.numjobs)]


def planned(jobs, first=1):
    """Every log file that running jobs together writes: (job index,
    thread, option, kind, path). Thread numbers go on from first across
    the jobs, as fio's across a job file."""
    out = []
    for u, job in enumerate(jobs):
        numbers = thread_numbers(job, first)
        for option, kinds in LOG_FILES.items():
            if getattr(job, option) is None:
                continue
            for j, n in enumerate(numbers):
                out += [(u, j, option, kind, f"{job.log_prefix(option)}_{kind}.{n}.log") for kind in kinds]
        first += job.numjobs
    return out


def check(jobs, first=1):
    """Before anything runs: every log file is new, in a directory kit may
    write, and named once. One line naming the option if not."""
    seen = set()
    for _u, _j, option, _kind, path in planned(jobs, first):
        if os.path.abspath(path) in seen:
            raise OptionError(option, f"{path} would be written twice: give the jobs different log names")
        seen.add(os.path.abspath(path))
        check_new_file(path, option)


def check_apart(jobs, first, data_files):
    """No log is named like a file the jobs do I/O on."""
    data = {os.path.abspath(p) for p in data_files}
    for _u, _j, option, _kind, path in planned(jobs, first):
        if os.path.abspath(path) in data:
            raise OptionError(option, f"{path} is also a file the job reads or writes: give the log another name")


def write(jobs, per_job, first=1):
    """Writes the log files of a kit run; per_job[u][j]: the statistics of
    thread j of jobs[u]."""
    for u, j, option, kind, path in planned(jobs, first):
        rows = _rows(jobs[u], per_job[u][j], kind)
        try:
            with open_new(path) as fh:
                fh.flush()
                for text in _formatted(rows):
                    fh.buffer.write(text)
        except OSError as e:
            raise RunError(f"--{option}: cannot write {path}: {e.strerror}") from None


LINES_PER_CHUNK = 1 << 20


def _formatted(rows):
    """The lines as bytes, a chunk at a time, formatted by kit's C library
    (np.savetxt takes about 4 s per million lines)."""
    from .engines import native
    ffi, lib = native()
    offsets = rows.shape[1] == 6
    for start in range(0, len(rows), LINES_PER_CHUNK):
        chunk = rows[start:start + LINES_PER_CHUNK]
        columns = [np.ascontiguousarray(chunk[:, k], dtype=np.int64) for k in range(chunk.shape[1])]
        cap = len(chunk) * lib.KIT_LOG_LINE_MAX
        buf = ffi.new("char[]", cap)
        pointers = [ffi.from_buffer("int64_t[]", c) for c in columns]
        n = lib.kit_format_log(pointers[0], pointers[1], pointers[2], pointers[3],
                               pointers[4] if offsets else ffi.NULL, len(chunk), buf, cap)
        yield ffi.buffer(buf, n)[:]


def adopt(jobs, first, source):
    """Copies logs fio wrote (source(u, j, kind): where) to kit's names,
    never over a file; a log fio did not write is left out."""
    for u, j, option, kind, path in planned(jobs, first):
        try:
            with open(source(u, j, kind), "rb") as src, open_new(path) as dst:
                shutil.copyfileobj(src, dst.buffer)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise RunError(f"--{option}: cannot write {path}: {e.strerror}") from None


def _rows(job, t, kind):
    """One thread's log of one kind as an array of lines (columns above)."""
    if kind == "slat" and job.is_sync_engine:
        return np.zeros((0, 5 + job.log_offset), np.int64)     # fio: no submission latency, an empty file
    if job.log_avg_msec:
        times, values, ddirs = _averaged(job, t, kind)
        sizes = offsets = np.zeros(len(values), np.int64)
    else:
        r = t["records"]
        times, ddirs = r["end_ns"].astype(np.int64), r["ddir"].astype(np.int64)
        sizes, offsets = r["len"].astype(np.int64), r["offset"].astype(np.int64)
        if kind == "bw":
            clat = r["clat"].astype(np.int64)
            values = np.where(clat > 0, sizes * 1_000_000 // np.maximum(clat, 1), 0)
        elif kind == "iops":
            values = np.ones(len(r), np.int64)
        else:
            values = r[kind].astype(np.int64)
    times = np.maximum(times - int(t["start_ns"]), 0) // 1_000_000
    columns = [times, values, ddirs, sizes] + ([offsets] if job.log_offset else []) + [np.zeros(len(values),
                                                                                                  np.int64)]
    return np.column_stack(columns) if len(values) else np.zeros((0, len(columns)), np.int64)


def _averaged(job, t, kind):
    """(end times in ns, values, directions) of averaged lines, per window
    and direction in fio's order: bw and iops are fio's samples (whole
    windows only, each its own line); latencies the window's mean, rounded
    (the last, partial window too, as fio's finalize_logs)."""
    if kind in ("bw", "iops"):
        windows = stat_windows(t, job, kind)
        values = window_rates(windows)[0 if kind == "bw" else 1]
        live = windows["bytes"] > 0
    else:
        windows = grid(t, job, job.log_ms, last=True)
        ios = windows["ios"].astype(np.int64)
        live = ios > 0
        values = (windows[f"{kind}_sum"] / np.maximum(ios, 1) + 0.5).astype(np.int64)
    k, d = np.nonzero(live)            # window by window, read before write before trim
    return windows["end_ns"][k].astype(np.int64), values[k, d], d.astype(np.int64)
