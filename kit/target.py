"""Where a job's I/O goes: kit's own scratch files, or what the user named.

Two phases, so that bad input writes nothing:
  plan(job)       decides the files of every job thread and checks every
                  safety rule (ownership, mounted devices); no side effects.
  prepare(plan)   creates, extends and pre-fills kit's files, invalidates or
                  warms the page cache, as the job asks.

Ownership: kit writes only to files it created. Each directory kit creates
files in holds a manifest (.kit-files.json) naming them with their inode; a
file is kit's only if the manifest says so and the inode still matches.
"""
import contextlib
import errno
import fcntl
import json
import os
import resource
import stat
import threading
from dataclasses import dataclass, field
from typing import List, Optional

from .errors import OptionError, RunError
from .safety import device_in_use, whole_disk

SCRATCH_ENV = "KIT_SCRATCH"
DEFAULT_SCRATCH = "kit-scratch"
MANIFEST = ".kit-files.json"
MANIFEST_LOCK = ".kit-files.lock"
FILL_LOCK = ".kit-fill.lock"
PREFILL_SEED = 0x6B6974  # "kit": the pattern a fresh file carries
WARM_CHUNK = 1 << 20
FILL_THREADS = 4


@dataclass
class TargetFile:
    path: str
    size: int                   # bytes the job uses
    kind: str                   # "file" or "block"
    exists: bool
    owned: bool                 # kit created it (manifest + same inode)
    current_size: int = 0       # bytes on disk now (files)
    rdev: Optional[tuple] = None  # (major, minor) of a block device

    def to_dict(self):
        return {"path": self.path, "kind": self.kind, "size": self.size, "owned": self.owned}


@dataclass
class Plan:
    job: object
    files: List[List[TargetFile]]   # per job thread
    directory: Optional[str] = None  # kit's directory, created if missing
    creates_directory: bool = False
    notes: List[str] = field(default_factory=list)

    @property
    def unique_files(self):
        seen, out = set(), []
        for thread_files in self.files:
            for f in thread_files:
                if f.path not in seen:
                    seen.add(f.path)
                    out.append(f)
        return out


# ---- the manifest ---------------------------------------------------------

def _manifest_path(directory):
    return os.path.join(directory, MANIFEST)


def read_manifest(directory):
    try:
        with open(_manifest_path(directory)) as fh:
            data = json.load(fh)
        return data.get("files", {}) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def manifest_lock(directory):
    """Serializes manifest updates between concurrent kit processes."""
    fd = os.open(os.path.join(directory, MANIFEST_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def fill_lock(directory, exclusive):
    """Held exclusively while a kit process creates and fills files in a
    directory, shared while one plans: a second kit waits, then finds the
    files whole instead of half-made. A shared lock is only taken where kit
    has locked before (planning writes nothing)."""
    path = os.path.join(directory, FILL_LOCK)
    if not exclusive and not os.path.exists(path):
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def update_manifest(directory, changes):
    """Merges {name: entry or None} into the manifest, atomically."""
    with manifest_lock(directory):
        files = read_manifest(directory)
        for name, entry in changes.items():
            if entry is None:
                files.pop(name, None)
            else:
                files[name] = entry
        tmp = _manifest_path(directory) + f".tmp{os.getpid()}.{threading.get_ident()}"
        with open(tmp, "w") as fh:
            json.dump({"schema": "kit-files/1", "files": files}, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, _manifest_path(directory))


def file_identity(path, st=None):
    """(dev, inode, birth time): inode numbers are reused at once by ext4, so a
    file that replaced kit's would pass on the inode alone."""
    from .engines import native
    ffi, lib = native()
    st = st or os.stat(path)
    birth = ffi.new("int64_t *")
    born = birth[0] if lib.kit_file_birth_ns(os.fsencode(path), birth) == 0 else None
    return {"dev": st.st_dev, "ino": st.st_ino, "birth_ns": born}


def is_owned(path, st=None):
    directory, name = os.path.split(os.path.abspath(path))
    entry = read_manifest(directory).get(name)
    if not entry:
        return False
    try:
        ident = file_identity(path, st)
    except OSError:
        return False
    return all(entry.get(k) == v for k, v in ident.items())


# ---- block devices ---------------------------------------------------------------

def block_device_size(path):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


# ---- plan ------------------------------------------------------------------

def scratch_directory(job):
    return os.path.abspath(job.directory or os.environ.get(SCRATCH_ENV) or DEFAULT_SCRATCH)


def _describe(path, want_size, job, option, parent_is_kits=False):
    """A TargetFile for one path, checked against the job's needs."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(path) or "."
        if parent_is_kits:  # kit's directory, checked (or to be created) by plan()
            return TargetFile(path, want_size, "file", exists=False, owned=True)
        if not os.path.isdir(parent):
            raise OptionError(option, f"cannot create {path}: {parent} is not a directory")
        if not os.access(parent, os.W_OK):
            raise OptionError(option, f"cannot create {path}: {parent} is not writable")
        return TargetFile(path, want_size, "file", exists=False, owned=True)
    except OSError as e:
        raise OptionError(option, f"cannot use {path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OptionError(option, f"{path} is a directory (use --directory for that)")
    if stat.S_ISBLK(st.st_mode):
        rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
        try:
            dev_size = block_device_size(path)
        except OSError as e:
            raise OptionError(option, f"cannot open {path}: {e.strerror}") from None
        size = want_size if want_size else dev_size
        if size > dev_size:
            raise OptionError("size", f"{path} has {dev_size} bytes, fewer than the {size} asked for")
        return TargetFile(path, size, "block", exists=True, owned=False, current_size=dev_size, rdev=rdev)
    if not stat.S_ISREG(st.st_mode):
        raise OptionError(option, f"{path} is neither a regular file nor a block device")
    owned = is_owned(path, st)
    size = want_size if want_size else st.st_size
    if size > st.st_size and not owned:
        raise OptionError("size", f"{path} has {st.st_size} bytes, fewer than the {size} asked for, "
                                  "and kit does not extend files it did not create")
    return TargetFile(path, size, "file", exists=True, owned=owned, current_size=st.st_size)


def plan(job):
    """Decides every job thread's files and enforces the safety rules.
    Raises OptionError (exit 2) before anything is created or written."""
    if job.filename:
        base = job.directory or os.getcwd()
        explicit_size = "size" in job._given or "filesize" in job._given
        want = job.file_size if explicit_size else 0
        files = [_describe(os.path.join(base, name), want, job, "filename")
                 for name in job.filename.split(":")]
        per_thread = [files for _ in range(job.numjobs)]
        p = Plan(job, per_thread)
    else:
        directory = scratch_directory(job)
        creates = not os.path.exists(directory)
        if creates:
            parent = os.path.dirname(directory)
            if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
                raise OptionError("directory", f"cannot create {directory}: {parent} is not a writable directory")
        elif not os.path.isdir(directory):
            raise OptionError("directory", f"{directory} is not a directory")
        elif not os.access(directory, os.W_OK):
            raise OptionError("directory", f"{directory} is not writable")
        per_thread = []
        # another kit may be filling these files right now: look once it is done
        with fill_lock(directory, exclusive=False):
            for j in range(job.numjobs):
                per_thread.append([
                    _describe(os.path.join(directory, job.file_name(j, f)), job.file_size, job, "directory",
                              parent_is_kits=True)
                    for f in range(job.nrfiles)])
        p = Plan(job, per_thread, directory=directory, creates_directory=creates)
    _check_writes_allowed(job, p)
    _check_space(p)
    return p


def _check_space(p):
    """The bytes kit would add to its files must fit beside what is free: a
    size the disk cannot hold is bad input, refused before writing."""
    need = {}
    for f in p.unique_files:
        if f.owned and f.kind == "file" and f.size > f.current_size:
            parent = os.path.dirname(f.path)
            while not os.path.exists(parent):
                parent = os.path.dirname(parent)
            dev = os.stat(parent).st_dev
            need.setdefault(dev, [parent, 0])[1] += f.size - f.current_size
    for parent, nbytes in need.values():
        st = os.statvfs(parent)
        free = st.f_bavail * st.f_frsize
        if nbytes > free:
            raise OptionError("size", f"kit's files need {nbytes:,} more bytes in {parent}, which has "
                                      f"{free:,} free; use a smaller size or another --directory")


def _check_writes_allowed(job, p):
    if not job.writes:
        return
    for f in p.unique_files:
        if f.kind == "block":
            if not job.allow_destructive:
                raise OptionError("filename", f"{f.path} is a block device and rw={job.rw} writes to it, "
                                              "destroying its data; add --allow-destructive if you mean it")
            busy = device_in_use(*f.rdev)
            if busy:
                raise OptionError("filename", f"refusing to write to {f.path}: {busy} "
                                              "(even with --allow-destructive)")
        elif not f.owned and not job.allow_destructive:
            raise OptionError("filename", f"{f.path} was not created by kit and rw={job.rw} writes to it; "
                                          "add --allow-destructive to overwrite it")


# ---- prepare ---------------------------------------------------------------

def _fill_all(to_fill, progress):
    if not to_fill:
        return
    from .engines import native
    ffi, lib = native()
    cell = ffi.new("uint64_t *")
    starts = _claim(to_fill)
    total = sum(f.size - starts[f.path] for f in to_fill)
    errors, queue = [], list(to_fill)

    def work():
        while queue and not errors:
            f = queue.pop()
            try:
                _fill((ffi, lib), f, starts[f.path], cell)
            except (OSError, RunError) as e:
                errors.append(e)

    # a few daemons: enough to keep a disk busy, few descriptors, and a
    # second Ctrl-C must not wait for a fill to finish
    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(FILL_THREADS, len(to_fill)))]
    for t in threads:
        t.start()
    _watch(threads, lambda: cell[0], total, "pre-fill", progress)
    if errors:
        e = errors[0]
        raise e if isinstance(e, RunError) else RunError(f"pre-filling {e.filename}: {e.strerror}")
    changes = {}
    for f in to_fill:
        directory, name = os.path.split(f.path)
        changes.setdefault(directory, {})[name] = dict(read_manifest(directory).get(name, {}), pattern="intact")
    for directory, entries in changes.items():
        update_manifest(directory, entries)
    for f in to_fill:
        f.exists, f.owned, f.current_size = True, True, max(f.current_size, f.size)


def _pattern(path):
    directory, name = os.path.split(os.path.abspath(path))
    return read_manifest(directory).get(name, {}).get("pattern")


def _claim(files):
    """Creates kit's files and records them as kit's before a byte is written
    (pattern "filling"): a fill cut short by Ctrl-C leaves a file kit still
    knows as its own, and the next run fills it again. Returns where each
    fill starts (an intact file is only extended)."""
    starts, by_dir = {}, {}
    for f in files:
        intact = f.exists and _pattern(f.path) == "intact"
        fd = os.open(f.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        starts[f.path] = min(st.st_size, f.size) if intact else 0
        directory, name = os.path.split(f.path)
        by_dir.setdefault(directory, {})[name] = {**file_identity(f.path, st), "size": f.size,
                                                  "pattern": "filling"}
    for directory, changes in by_dir.items():
        update_manifest(directory, changes)
    return starts


def _fill(native, f, start, progress_cell):
    """Writes kit's pattern into [start, size) of one of kit's files."""
    ffi, lib = native
    try:
        fd = os.open(f.path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise RunError(f"pre-filling {f.path}: {_open_error(None, f, e)}") from None
    try:
        r = lib.kit_prefill(fd, start, f.size - start, PREFILL_SEED, progress_cell)
        if r < 0:
            raise RunError(f"pre-filling {f.path}: {os.strerror(-r)}")
        os.fsync(fd)
    finally:
        os.close(fd)


def _needs_fill(job, f):
    if not f.owned:
        return False
    if not f.exists or f.current_size < f.size:
        return True
    pattern = _pattern(f.path)
    # an interrupted fill, or reads that verify after unverified writes
    return pattern == "filling" or (bool(job.verify) and pattern != "intact")


def _refresh(f):
    """A planned file's state now (another kit may have made it meanwhile)."""
    try:
        st = os.stat(f.path)
    except FileNotFoundError:
        f.exists, f.current_size = False, 0
        return
    f.exists, f.current_size = True, st.st_size
    f.owned = is_owned(f.path, st)
    if not f.owned:
        raise RunError(f"{f.path} appeared while kit was planning and is not kit's; run again")


def prepare(p, progress=None):
    """Creates/extends kit's files, then invalidates or warms the cache."""
    job = p.job
    if p.creates_directory:
        os.makedirs(p.directory, exist_ok=True)
    by_dir = {}
    for f in p.unique_files:
        if f.owned:
            by_dir.setdefault(os.path.dirname(f.path), []).append(f)
    for directory, files in by_dir.items():
        with fill_lock(directory, exclusive=True):
            for f in files:
                _refresh(f)
            _fill_all([f for f in files if _needs_fill(job, f)], progress)
    if job.writes and not job.verify:
        mark_dirty(p)  # unverified writes leave bytes that are not the pattern
    if job.invalidate:
        for f in p.unique_files:
            _invalidate(f)
    if job.pre_read:
        _warm([f for f in p.unique_files], progress)


def mark_dirty(p):
    """kit's files of a plan no longer hold only kit's pattern (another tool
    or unverified writes changed them)."""
    _mark_dirty([f for f in p.unique_files if f.owned])


def _mark_dirty(files):
    by_dir = {}
    for f in files:
        directory, name = os.path.split(f.path)
        entry = dict(read_manifest(directory).get(name, {}))
        if entry:
            entry["pattern"] = "dirty"
            by_dir.setdefault(directory, {})[name] = entry
    for directory, changes in by_dir.items():
        update_manifest(directory, changes)


def _invalidate(f):
    fd = os.open(f.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):
            os.fdatasync(fd)  # dirty pages would survive DONTNEED
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _warm(files, progress):
    total = sum(f.size for f in files)
    done = [0]

    def work():
        buf = bytearray(WARM_CHUNK)
        for f in files:
            fd = os.open(f.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                off = 0
                while off < f.size:
                    n = os.preadv(fd, [memoryview(buf)[:min(WARM_CHUNK, f.size - off)]], off)
                    if n <= 0:
                        break
                    off += n
                    done[0] += n
            finally:
                os.close(fd)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    _watch([t], lambda: done[0], total, "pre-read", progress)


def _watch(threads, done_bytes, total, label, progress):
    from .progress import bar
    with bar(total=total, label=label, unit="B", enabled=progress) as b:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.1)
                break
            b.update_to(done_bytes())
        b.update_to(done_bytes())


def disks_of(p):
    """(major, minor) of the whole disks behind a plan's files: what the block
    layer's tracepoints report requests against (a partition's I/O is the
    disk's). Files on tmpfs and the like have none."""
    out = set()
    for f in p.unique_files:
        path = f.path if os.path.exists(f.path) else os.path.dirname(f.path)
        with contextlib.suppress(OSError):
            st = os.stat(path)
            dev = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
            if os.major(dev) == 0:
                continue            # tmpfs, overlay: no block device
            out.add(whole_disk((os.major(dev), os.minor(dev))))
    return sorted(out)


# ---- open ------------------------------------------------------------------

def open_flags(job, f):
    flags = os.O_CLOEXEC | (os.O_RDWR if job.writes else os.O_RDONLY)
    if job.direct:
        flags |= os.O_DIRECT
    if f.kind == "block" and job.writes:
        flags |= os.O_EXCL  # the kernel refuses if the device is mounted or claimed
    return flags


def open_files(p):
    """One descriptor per file per job thread (each thread its own, as
    fio's jobs: the sync engine's file position is per descriptor)."""
    job = p.job
    opened = []
    try:
        for thread_files in p.files:
            fds = []
            opened.append(fds)
            for f in thread_files:
                try:
                    fds.append(os.open(f.path, open_flags(job, f)))
                except OSError as e:
                    raise RunError(_open_error(job, f, e)) from None
        return opened
    except BaseException:
        close_files(opened)
        raise


def _open_error(job, f, e):
    if job and e.errno == errno.EINVAL and job.direct:
        return f"direct: {f.path} cannot be opened with O_DIRECT (its filesystem does not support it); use direct=0"
    if e.errno == errno.EBUSY:
        return f"{f.path} is busy (mounted or claimed by another user); kit will not write to it"
    if e.errno in (errno.EMFILE, errno.ENFILE):
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return (f"too many open files opening {f.path}: numjobs x nrfiles needs more descriptors "
                f"than `ulimit -n` ({soft}) allows; raise it or use fewer files")
    return f"cannot open {f.path}: {e.strerror}"


def close_files(opened):
    for fds in opened:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
