"""Where a job's I/O goes: kit's own scratch files, or what the user named.

Three steps, so that bad input writes nothing and kit writes only what it
checked:
  plan(job)        decides the files of every job thread and checks every
                   safety rule (ownership, links, devices in use, free
                   space); no side effects.
  prepare(plans)   opens every file once -- kit's own are created with
                   O_CREAT|O_EXCL|O_NOFOLLOW inside the directory it was
                   given -- checks the open descriptor against the plan and
                   the manifest (device, inode, birth time), locks it for the
                   run, pre-fills it, and returns a Prepared.
  Prepared         every later use goes through those descriptors: job
                   threads and fio re-open them through /proc/self/fd (the
                   same inode, whatever happens to the path meanwhile).

Ownership: each directory kit creates files in holds a manifest
(.kit-files.json) naming them with their device, inode and birth time; a
file is kit's only if the manifest says so and all three still match. The
manifest also says whether a file holds kit's pattern ("intact", with the
ctime it had then), is being filled, was written with other bytes, or was
only allocated for jobs that write it (as fio lays out no data for them).

Two kits on one file: a run holds a lock on each of its files for its whole
length, shared when it only reads, exclusive when it writes or fills.
"""
import contextlib
import ctypes
import errno
import fcntl
import json
import os
import resource
import stat
import struct
import threading
import uuid
from dataclasses import dataclass, field
from typing import List, Optional

from . import host, signals
from .errors import OptionError, RunError
from .files import replace_at, say
from .progress import bar
from .engines import diskless, native
from .options import Percent, split_filenames
from .safety import device_in_use, file_in_use, images_in_use

SCRATCH_ENV = "KIT_SCRATCH"
DEFAULT_SCRATCH = "kit-scratch"
MANIFEST = ".kit-files.json"
MANIFEST_SCHEMA = "kit-files/1"
PATTERNS = ("filling", "intact", "dirty", "allocated")
PREFILL_SEED = 0x6B6974  # "kit": the pattern a fresh file carries
WARM_CHUNK = 1 << 20
FILL_THREADS = 4
PREPARE_ATTEMPTS = 5
DESCRIPTOR_SLACK = 64       # Python, the engines' rings and eventfds, tracers


@dataclass
class TargetFile:
    path: str                   # absolute for kit's files; as given for the user's
    size: int                   # bytes the job uses
    kind: str                   # "file" or "block"
    exists: bool
    owned: bool                 # kit's (manifest + same identity), or kit will create it
    current_size: int = 0       # bytes on disk now (files)
    rdev: Optional[tuple] = None  # (major, minor) of a block device
    ident: Optional[tuple] = None  # (st_dev, st_ino) when planned

    def to_dict(self):
        return {"path": self.path, "kind": self.kind, "size": self.size, "owned": self.owned}


@dataclass
class Plan:
    job: object
    files: List[List[TargetFile]]   # per job thread
    directory: Optional[str] = None  # kit's directory, created if missing
    creates_directory: bool = False
    directory_ident: Optional[tuple] = None
    diskless: bool = False          # the engine touches no file: nothing to open
    regions: List[List[tuple]] = field(default_factory=list)   # per thread, per file: (offset, length)

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

def _damaged(where, why):
    return OptionError("directory", f"{where}: kit's manifest is damaged ({why}); remove it to start "
                                    "over (the files it named are then not kit's)")


def _parse_manifest(text, where):
    """{name: entry}, every entry checked: a manifest kit cannot read is
    never guessed at."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise _damaged(where, "nested too deeply") from None
    except ValueError as e:
        raise _damaged(where, f"not JSON: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        raise _damaged(where, f"not a {MANIFEST_SCHEMA} document")
    files = data.get("files")
    if not isinstance(files, dict):
        raise _damaged(where, "'files' is not a mapping")
    for name, entry in files.items():
        ok = (isinstance(entry, dict) and "/" not in name and name not in ("", ".", "..")
              and all(isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool)
                      for k in ("dev", "ino"))
              and isinstance(entry.get("birth_ns"), (int, type(None)))
              and isinstance(entry.get("generation"), (int, type(None)))
              and isinstance(entry.get("token"), (str, type(None)))
              and entry.get("pattern", "filling") in PATTERNS
              and isinstance(entry.get("size", 0), int) and isinstance(entry.get("ctime_ns", 0), int))
        if not ok:
            raise _damaged(where, f"entry {name!r} is malformed")
    return files


def read_manifest(directory):
    """kit's files in a directory, by name ({} when it has no manifest)."""
    path = os.path.join(directory, MANIFEST)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _damaged(path, "it is a symbolic link") from None
        raise OptionError("directory", f"cannot read {path}: {e.strerror}") from None
    return _parse_manifest(_read_fd(fd, path), path)


def _read_manifest_at(dirfd, directory):
    try:
        fd = os.open(MANIFEST, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise _damaged(os.path.join(directory, MANIFEST), e.strerror) from None
    return _parse_manifest(_read_fd(fd, directory), os.path.join(directory, MANIFEST))


def _read_fd(fd, where):
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _damaged(where, "not a regular file")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) > 64 << 20:
                raise _damaged(where, "larger than 64 MiB")
        return b"".join(chunks).decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def _write_manifest_at(dirfd, files, directory):
    """Replaces the manifest atomically; the caller holds the directory lock."""
    try:
        replace_at(dirfd, MANIFEST, json.dumps({"schema": MANIFEST_SCHEMA, "files": files}, indent=1,
                                                sort_keys=True).encode())
    except OSError as e:
        raise RunError(f"updating kit's manifest {os.path.join(directory, MANIFEST)}: {e.strerror}") from None


@contextlib.contextmanager
def _directory_lock(dirfd):
    """Serializes manifest changes between kit processes (a lock on the
    directory itself: nothing to create, so read-only mounts work too)."""
    fcntl.flock(dirfd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(dirfd, fcntl.LOCK_UN)


TOKEN_XATTR = "user.kit.file"
# FS_IOC_GETVERSION: the inode's generation, new each time an inode number is
# reused (what NFS file handles rely on); ext2/3/4, XFS and btrfs keep one
FS_IOC_GETVERSION = 0x80087601


def _identity_of_fd(fd, st):
    """What tells kit's file from another that took over its inode number
    (ext4 reuses freed inodes at once): the birth time and the inode
    generation, where the filesystem keeps them."""
    ffi, lib = native()
    cell = ffi.new("int64_t *")
    born = cell[0] if lib.kit_file_birth_ns(fd, b"", lib.KIT_AT_EMPTY_PATH, cell) == 0 else None
    try:
        generation = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETVERSION, bytes(8))[:4])[0]
    except OSError:
        generation = None
    try:
        token = os.getxattr(fd, TOKEN_XATTR).decode("ascii", "replace")
    except OSError as e:
        # "" where the filesystem keeps extended attributes and this file has
        # no token: kit stamps every file it creates there, so it is not kit's
        token = "" if e.errno == errno.ENODATA else None
    return {"dev": st.st_dev, "ino": st.st_ino, "birth_ns": born, "generation": generation, "token": token}


def _stamp(fd):
    """Marks a file kit just created with a random token of its own (an
    extended attribute, kept through overlayfs), where the filesystem allows
    it: the token names the file whatever becomes of its inode number."""
    token = uuid.uuid4().hex
    try:
        os.setxattr(fd, TOKEN_XATTR, token.encode())
    except OSError:
        return None
    return token


def _same_inode(entry, st):
    return bool(entry) and (entry.get("dev"), entry.get("ino")) == (st.st_dev, st.st_ino)


def _is_kits(entry, ident, st):
    """Whether the file kit opened (its identity and fstat) is the one the
    manifest entry names. Everything else in an entry can be read off any
    file and written into a forged manifest; the token cannot (it is only
    on the files kit stamped): where the filesystem keeps tokens, a file
    without one is not kit's, whatever the manifest says. Where it keeps
    neither tokens, birth times nor generations, only the ctime kit last
    recorded can tell: a file someone else wrote or put there is then not
    kit's."""
    if ident["token"] == "" or not _same_inode(entry, st) or entry.get("birth_ns") != ident["birth_ns"]:
        return False
    for key in ("generation", "token"):     # newer manifests only
        if entry.get(key) is not None and entry[key] != ident[key]:
            return False
    if all(entry.get(k) is None for k in ("birth_ns", "generation", "token")):
        return entry.get("ctime_ns") == st.st_ctime_ns
    return True


def _owned(entry, path, st):
    """Whether the regular file at path (st: its lstat) is the one entry names."""
    if not entry or not stat.S_ISREG(st.st_mode) or not _same_inode(entry, st):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fst = os.fstat(fd)
        return _same_inode(entry, fst) and _is_kits(entry, _identity_of_fd(fd, fst), fst)
    finally:
        os.close(fd)


def is_owned(path):
    """Whether the file at path (not followed if a link) is kit's."""
    directory, name = os.path.split(os.path.abspath(path))
    try:
        return _owned(read_manifest(directory).get(name), path, os.lstat(path))
    except OSError:
        return False


def _fill_start(entry, st, size, verify):
    """Where a fill of one of kit's files must start, or None if it needs
    none. The pattern is trusted only while the file's ctime is the one kit
    recorded: a file another program wrote is refilled, not blamed."""
    trusted = entry.get("pattern") == "intact" and entry.get("ctime_ns") == st.st_ctime_ns
    if entry.get("pattern") in ("filling", "allocated"):
        return 0
    if trusted:
        return st.st_size if st.st_size < size else None
    if verify or st.st_size < size:
        return 0
    return None


# ---- plan ------------------------------------------------------------------

def named_base(job):
    """Where --filename names are relative to: --directory, else the working
    directory; absolute, but not normalized ('..' is the kernel's to follow)."""
    return os.path.join(os.getcwd(), job.directory or "")


def scratch_directory(job):
    return os.path.abspath(job.directory or os.environ.get(SCRATCH_ENV) or DEFAULT_SCRATCH)


def _no_data_here(path, option):
    """Pseudo filesystems (proc, sysfs, devtmpfs...) hold no data files."""
    fstype = host.pseudo_filesystem(path)
    if fstype:
        missing = "; there is no such device" if fstype == "devtmpfs" and not os.path.lexists(path) else ""
        raise OptionError(option, f"{path} is on {fstype}, which holds the kernel's files, not data; kit "
                                  f"neither creates nor uses files there{missing}")


KIT_PRIVATE = ".kit-"          # the manifest and kit's temporary files


def _check_name(directory, name):
    if not name or "/" in name or name in (".", "..") or not name.isprintable():
        raise OptionError("filename_format", f"gives the file name {name!r}, which kit cannot use "
                                             "(no '/', '.', '..' or control characters)")
    if name.startswith(KIT_PRIVATE):
        raise OptionError("name", f"gives the file name {name!r}; names beginning with {KIT_PRIVATE!r} are "
                                  "kit's own bookkeeping")
    if len(os.fsencode(name)) > 255:
        raise OptionError("name", f"gives the file name {name[:40]!r}..., longer than 255 bytes")
    return os.path.join(directory, name)


def _describe_kits(path, size, manifest):
    """One of kit's files in its own directory."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return TargetFile(path, size, "file", exists=False, owned=True)
    except OSError as e:
        raise OptionError("directory", f"cannot use {path}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise OptionError("directory", f"{path} is a symbolic link; kit never follows links in its "
                                       "directory: remove it, or use another --directory")
    if not stat.S_ISREG(st.st_mode):
        raise OptionError("directory", f"{path} is in kit's directory but is not a regular file: "
                                       "remove it, or use another --directory")
    if not _owned(manifest.get(os.path.basename(path)), path, st):
        raise OptionError("directory", f"{path} is in kit's directory but was not created by kit (or was "
                                       "replaced since): remove it, or use another --directory")
    if st.st_nlink > 1:
        raise OptionError("directory", f"{path} has {st.st_nlink} hard links: another name shares its data, "
                                       "so kit will not use it; remove the other links or the file")
    return TargetFile(path, size, "file", exists=True, owned=True, current_size=st.st_size,
                      ident=(st.st_dev, st.st_ino))


def _describe_named(path, want_size, option="filename"):
    """A file or block device the user named."""
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        lst = None
    except OSError as e:
        raise OptionError(option, f"cannot use {path}: {e.strerror}") from None
    if os.path.basename(path).startswith(KIT_PRIVATE):
        raise OptionError(option, f"{path}: names beginning with {KIT_PRIVATE!r} are kit's own bookkeeping")
    if lst is None:
        parent = os.path.dirname(path) or "."
        _no_data_here(path, option)
        if not want_size:
            raise OptionError("size", f"{path} does not exist: give --size (or --filesize) for kit to create it")
        if not os.path.isdir(parent):
            why = "is not a directory" if os.path.lexists(parent) else \
                "does not exist (kit creates directories only for --directory)"
            raise OptionError(option, f"cannot create {path}: {parent} {why}")
        if not os.access(parent, os.W_OK):
            raise OptionError(option, f"cannot create {path}: {parent} is not writable")
        return TargetFile(path, want_size, "file", exists=False, owned=True)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise OptionError(option, f"{path} is a symbolic link to {os.readlink(path)}, which does not "
                                  "exist; kit does not create files through links") from None
    except OSError as e:
        raise OptionError(option, f"cannot use {path}: {e.strerror}") from None
    ident = (st.st_dev, st.st_ino)
    if stat.S_ISDIR(st.st_mode):
        raise OptionError(option, f"{path} is a directory (use --directory for that)")
    if stat.S_ISREG(st.st_mode):
        _no_data_here(os.path.realpath(path), option)     # /proc and /sys files are the kernel's
    if stat.S_ISBLK(st.st_mode):
        rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
        try:
            dev_size = _block_device_size(path)
        except OSError as e:
            raise OptionError(option, f"cannot open {path}: {e.strerror}") from None
        size = want_size if want_size else dev_size
        if size > dev_size:
            raise OptionError("size", f"{path} has {dev_size} bytes, fewer than the {size} asked for")
        return TargetFile(path, size, "block", exists=True, owned=False, current_size=dev_size, rdev=rdev,
                          ident=ident)
    if not stat.S_ISREG(st.st_mode):
        raise OptionError(option, f"{path} is neither a regular file nor a block device")
    owned = is_owned(path) and st.st_nlink == 1
    size = want_size if want_size else st.st_size
    if size > st.st_size and not owned:
        raise OptionError("size", f"{path} has {st.st_size} bytes, fewer than the {size} asked for, "
                                  "and kit does not extend files it did not create")
    return TargetFile(path, size, "file", exists=True, owned=owned, current_size=st.st_size, ident=ident)


def _block_device_size(path):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _check_directory(directory, must_write):
    _no_data_here(directory, "directory")
    if not os.path.exists(directory):
        parent = host.nearest_existing(os.path.dirname(directory))
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise OptionError("directory", f"cannot create {directory}: {parent} is not a writable directory")
        return None
    if not os.path.isdir(directory):
        raise OptionError("directory", f"{directory} is not a directory")
    if must_write and not os.access(directory, os.W_OK):
        raise OptionError("directory", f"{directory} is not writable")
    st = os.stat(directory)
    return st.st_dev, st.st_ino


def check_directory(directory):
    """A --directory given to a command that will create kit's files there."""
    directory = os.path.abspath(directory)
    _no_data_here(directory, "directory")
    _check_directory(directory, must_write=True)


def _check_descriptors(job):
    """Every file is open once for kit and once per job thread using it: a
    job that needs more descriptors than `ulimit -n` allows is refused
    before a file is made (and before planning millions of them)."""
    threads = job.numjobs * job.files_per_job
    needed = threads + (job.files_per_job if job.filename else threads) + DESCRIPTOR_SLACK
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and needed > soft:
        raise OptionError("nrfiles", f"numjobs x files = {threads:,} open files need about {needed:,} "
                                     f"descriptors, more than `ulimit -n` ({soft:,}) allows; raise it or use "
                                     "fewer jobs or files")


def region(job, j, real):
    """Where job thread j works in a file of `real` bytes: (offset, length),
    by fio's rules (get_start_offset, setup_files): offset plus offset_increment
    times the thread's subjob number (kit's thread j is fio's subjob j, the
    one whose files are named $jobname.j.$filenum), percentages
    of the real size aligned up to offset_align or the smallest bs; size=N%
    capped at what is left and rounded down to the smallest bs; no size:
    the rest of the file."""
    align = job.offset_align or job.min_bs

    def absolute(value):
        return -(-value.of(real) // align) * align if isinstance(value, Percent) else value
    offset = absolute(job.offset) + j * absolute(job.offset_increment)
    if job.filesize is not None:
        # fio (setup_files): the file is filesize long and the region the
        # rest of it after the offset; size= only limits the bytes moved
        length = max(job.filesize - offset, 0)
    elif isinstance(job.size, Percent):
        length = min(job.size.of(real), max(real - offset, 0)) // job.min_bs * job.min_bs
    elif "size" in job.given() or "filesize" in job.given() or not job.filename:
        length = job.file_size
    else:
        length = max(real - offset, 0)
    return offset, length


def _reach(job):
    """The bytes every file must have for absolute offsets and sizes (0 when
    a percentage makes it depend on the file)."""
    if any(isinstance(v, Percent) for v in (job.size, job.offset, job.offset_increment)) \
            or job.file_size is None:
        return 0
    if job.filesize is not None:
        return job.filesize         # fio's file is filesize long, whatever the offsets
    return max(sum(region(job, j, 0)) for j in range(job.numjobs))


def _check_regions(p):
    job = p.job
    for j, files in enumerate(p.files):
        row = []
        for f in files:
            real = f.current_size if f.exists and not f.owned else f.size
            offset, length = region(job, j, real)
            if length < job.min_bs:
                raise OptionError("offset" if offset else "size" if {"size", "filesize"} & set(job.given())
                                  else "filename",
                                  f"job thread {j} would start at byte {offset:,} of {f.path} ({real:,} bytes): "
                                  f"no room left for bs={job.min_bs}")
            if offset + length > real:
                raise OptionError("offset" if offset else "size",
                                  f"job thread {j} would use bytes {offset:,} to {offset + length:,} of {f.path}, "
                                  f"which has {real:,}" + ("" if f.owned else
                                                           "; kit does not extend files it did not create"))
            row.append((offset, length))
        p.regions.append(row)


def plan(job):
    """Decides every job thread's files and enforces the safety rules.
    Raises OptionError (exit 2) before anything is created or written."""
    if diskless(job.ioengine):
        # nothing is opened, created or written: the names only say where
        # each thread's offsets would fall
        p = Plan(job, [[TargetFile(f"({job.ioengine}) {job.file_name(j, f)}", _reach(job), "none", False,
                                   False) for f in range(job.files_per_job)] for j in range(job.numjobs)],
                 diskless=True)
        _check_regions(p)
        return p
    _check_descriptors(job)
    if job.filename:
        base = named_base(job)
        explicit_size = "size" in job.given() or "filesize" in job.given()
        want = _reach(job) if explicit_size else 0
        shares = [n for n in ("offset", "offset_increment", "size") if isinstance(getattr(job, n), Percent)]
        for name in split_filenames(job.filename) if shares else ():
            if not os.path.lexists(os.path.join(base, name)):
                raise OptionError(shares[0], f"{getattr(job, shares[0])} is a share of {os.path.join(base, name)}, "
                                             "which does not exist (fio's percentages are of an existing file)")
        files = [_describe_named(os.path.join(base, name), want) for name in split_filenames(job.filename)]
        p = Plan(job, [files for _ in range(job.numjobs)])
    else:
        directory = scratch_directory(job)
        _no_data_here(directory, "directory")
        names = [[_check_name(directory, job.file_name(j, f)) for f in range(job.nrfiles)]
                 for j in range(job.numjobs)]
        # another kit may be creating files here: look while it cannot
        with _shared_directory_lock(directory):
            manifest = read_manifest(directory) if os.path.isdir(directory) else {}
            reach = {}              # threads sharing a file (filename_format): the farthest region
            for j, thread in enumerate(names):
                for path in thread:
                    reach[path] = max(reach.get(path, 0), sum(region(job, j, 0)))
            per_thread = [[_describe_kits(path, reach[path], manifest) for path in thread] for thread in names]
            p = Plan(job, per_thread, directory=directory, creates_directory=not os.path.isdir(directory))
            fills = [f for f in p.unique_files if _planned_fill(f, manifest, job)]
        p.directory_ident = _check_directory(directory, job.writes or bool(fills))
    _check_writes_allowed(job, p)
    _check_regions(p)
    _check_space(p.unique_files)
    return p


@contextlib.contextmanager
def _shared_directory_lock(directory):
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield                   # not there (yet): nothing to look at
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _planned_fill(f, manifest, job):
    if not f.exists:
        return True
    st = os.lstat(f.path)
    return _fill_start(manifest.get(os.path.basename(f.path), {}), st, f.size, bool(job.verify)) is not None


def check_space(plans):
    """The bytes kit would add to its files, for every plan of a run, a job
    file or a sweep together (each file counted once, at its largest), must
    fit beside what is free: a size the disks cannot hold is bad input,
    refused before writing."""
    largest = {}
    for p in plans:
        for f in [] if p.diskless else p.unique_files:
            if f.path not in largest or f.size > largest[f.path].size:
                largest[f.path] = f
    _check_space(list(largest.values()))


def _check_space(files):
    need = {}
    for f in files:
        if f.owned and f.kind == "file" and f.size > f.current_size:
            parent = host.nearest_existing(os.path.dirname(f.path))
            dev = os.stat(parent).st_dev
            need.setdefault(dev, [parent, 0])[1] += f.size - f.current_size
    for parent, nbytes in need.values():
        st = os.statvfs(parent)
        if st.f_blocks == 0:
            continue            # ramfs and the like keep no count: nothing to check against
        free = st.f_bavail * st.f_frsize
        if nbytes > free:
            raise OptionError("size", f"kit's files need {nbytes:,} more bytes in {parent}, which has "
                                      f"{free:,} free; use a smaller size or another --directory")


def _check_writes_allowed(job, p):
    images = None
    for f in p.unique_files:
        if f.owned and f.exists and not job.writes and _planned_fill(
                f, read_manifest(os.path.dirname(f.path)), job):
            # kit pre-fills its own file even for a read job
            images = images if images is not None else images_in_use()
            busy = file_in_use(os.stat(f.path), f.path, images)
            if busy:
                raise OptionError("filename", f"refusing to write to {f.path}: {busy}")
    if not job.writes:
        return
    images = images if images is not None else images_in_use()
    for f in p.unique_files:
        if f.kind == "block":
            if not job.allow_destructive:
                raise OptionError("filename", f"{f.path} is a block device and rw={job.rw} writes to it, "
                                              "destroying its data; add --allow-destructive if you mean it")
            busy = device_in_use(*f.rdev)
            if busy:
                raise OptionError("filename", f"refusing to write to {f.path}: {busy} "
                                              "(even with --allow-destructive)")
            continue
        if not f.owned and not job.allow_destructive:
            raise OptionError("filename", f"{f.path} was not created by kit and rw={job.rw} writes to it; "
                                          "add --allow-destructive to overwrite it")
        if f.exists:
            busy = file_in_use(os.stat(f.path), f.path, images)
            if busy:
                raise OptionError("filename", f"refusing to write to {f.path}: {busy} "
                                              "(even with --allow-destructive)")


def check_writable(fd, path, images=None):
    """The same rule, on a descriptor kit has opened for writing (a block
    device kit holds with O_EXCL); its name is the kernel's, not the path's."""
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        busy = device_in_use(os.major(st.st_rdev), os.minor(st.st_rdev), holding=True)
    else:
        busy = file_in_use(st, f"/proc/self/fd/{fd}", images)
    if busy:
        raise RunError(f"refusing to write to {path}: {busy}; nothing was written")


# ---- prepare ---------------------------------------------------------------

@dataclass
class Handle:
    """One file of a run, opened once."""
    fd: int
    path: str
    kind: str
    owned: bool
    ident: tuple                    # (st_dev, st_ino)
    writes: bool = False            # the run writes it
    reads: bool = False             # a job of the run reads it
    size: int = 0                   # the most any job of the run uses
    verify: bool = False            # a job of the run checks its pattern
    dirfd: Optional[int] = None     # its directory, for kit's files
    directory: Optional[str] = None

    @property
    def name(self):
        return os.path.basename(self.path)


@dataclass
class Prepared:
    """The files of a run, opened once, checked, locked and pre-filled. Use
    it as a context manager: leaving it closes everything (and so unlocks)."""
    handles: dict = field(default_factory=dict)     # path -> Handle
    dirfds: dict = field(default_factory=dict)      # directory -> fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def unique(self):
        seen, out = set(), []
        for h in self.handles.values():
            if h.ident not in seen:
                seen.add(h.ident)
                out.append(h)
        return out

    def fd(self, f):
        return self.handles[f.path].fd

    def open_for(self, plan):
        """One descriptor per file per job thread (each thread its own, as
        fio's jobs: the sync engine's file position is per descriptor),
        re-opened through /proc/self/fd with the job's flags (-1 each for
        an engine that touches no file)."""
        if plan.diskless:
            return [[-1] * len(thread_files) for thread_files in plan.files]
        opened = []
        try:
            for thread_files, regions in zip(plan.files, plan.regions, strict=True):
                fds = []
                opened.append(fds)
                for f, region in zip(thread_files, regions, strict=True):
                    # a Ctrl-C between the open and the append would leak the descriptor
                    with signals.held():
                        fds.append(self.reopen(f, job_flags(plan.job)))
                    advise(fds[-1], plan.job, region)
            return opened
        except BaseException:
            close_files(opened)
            raise

    def reopen(self, f, flags):
        h = self.handles[f.path]
        try:
            fd = os.open(f"/proc/self/fd/{h.fd}", flags | os.O_CLOEXEC)
        except OSError as e:
            raise RunError(_open_error(flags, f, e)) from None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != h.ident:      # /proc/self/fd is the inode itself; never expected
            os.close(fd)
            raise RunError(f"{f.path}: re-opening kit's descriptor gave another file")
        return fd

    def changed_paths(self):
        """{path: note} of files deleted or replaced while kit had them open."""
        notes = {}
        for path, h in self.handles.items():
            try:
                st = os.stat(path)
            except FileNotFoundError:
                notes[path] = f"{path} was deleted during the run (its open descriptors kept working)"
                continue
            except OSError:
                continue
            if (st.st_dev, st.st_ino) != h.ident:
                notes[path] = (f"{path} was replaced during the run; kit used the file it had checked, "
                               "and did not touch the new one")
        return notes

    def disks(self):
        """(major, minor) of the whole disks behind the files: what the block
        layer's tracepoints report requests against. tmpfs and the like have none."""
        out = set()
        for h in self.unique():
            st = os.fstat(h.fd)
            dev = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
            if os.major(dev):
                out.add(host.whole_disk((os.major(dev), os.minor(dev))))
        return sorted(out)

    def finish(self, plan, error=None, verified=False):
        """After a run, what kit's files hold: the pattern again only when
        the run wrote them and checked every unit (a verified write job's
        read-back, not interrupted); "dirty" after any other write, or when a
        verify found them wrong (refilled next time, not blamed again). The
        ctime is recorded either way: it is what proves a file kit's where
        the filesystem keeps no birth times."""
        job = plan.job
        if plan.diskless:
            return
        if error and error.get("kind") == "verify":
            pattern = "dirty"
        elif job.writes:
            pattern = "intact" if verified and not error else "dirty"
        else:
            return
        # an allocated file's unwritten extents still read as zeros: filled before anyone reads it
        _set_patterns([self.handles[f.path] for f in plan.unique_files if self.handles[f.path].owned], pattern,
                      unless=("allocated",))

    def close(self):
        for h in self.unique():         # two paths may share one descriptor: closed once
            with contextlib.suppress(OSError):
                os.close(h.fd)
        for fd in self.dirfds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.handles.clear()
        self.dirfds.clear()


# fio's fadvise_hint (ioengines.c td_io_open_file): the hint each job
# descriptor gets, for the job's region of the file
_ADVICE = {"random": os.POSIX_FADV_RANDOM, "sequential": os.POSIX_FADV_SEQUENTIAL}


def advise(fd, job, region):
    """Tells the kernel how the job reads the file, as fio does by default:
    a random job's descriptor gets no readahead, a sequential one's twice
    the window. A file kind that takes no advice (a pipe) is left as it is,
    as fio goes on after its one warning."""
    hint = job.fadvise_hint
    if hint == "0":
        return
    if hint == "1":
        hint = "random" if job.is_random else "sequential"
    offset, length = region
    with contextlib.suppress(OSError):
        os.posix_fadvise(fd, offset, length, _ADVICE[hint])


def job_flags(job):
    flags = os.O_RDWR if job.writes else os.O_RDONLY
    if job.direct:
        flags |= os.O_DIRECT
    flags |= {"none": 0, "sync": os.O_SYNC, "dsync": os.O_DSYNC}[job.sync]
    return flags


def prepare(plans, progress=None):
    """Opens, checks, locks and pre-fills the files of plans that run
    together; then invalidates or warms the page cache as they ask."""
    plans = [p for p in ([plans] if isinstance(plans, Plan) else plans) if not p.diskless]
    prepared = Prepared()
    try:
        _open_all(prepared, plans)
        _fill_and_lock(prepared, progress)
        for p in plans:
            for f in p.unique_files:
                h = prepared.handles[f.path]
                if p.job.invalidate:
                    _invalidate(h.fd)
            if p.job.pre_read:
                _warm([(prepared.handles[f.path].fd, f.size) for f in p.unique_files], progress)
        return prepared
    except BaseException:
        prepared.close()
        raise


def _open_all(prepared, plans):
    wanted = {}                         # path -> (TargetFile, writes, size, verify, reads)
    for p in plans:
        for f in p.unique_files:
            _f, w, size, v, r = wanted.get(f.path, (f, False, 0, False, False))
            wanted[f.path] = (f, w or p.job.writes, max(size, f.size), v or bool(p.job.verify),
                              r or p.job.read_percent > 0)
        if p.directory and p.directory not in prepared.dirfds:
            prepared.dirfds[p.directory] = _open_directory(p.directory, p.creates_directory, p.directory_ident)
    owned = [w for w in wanted.values() if w[0].owned]
    by_dir = {}
    for w in owned:
        by_dir.setdefault(os.path.dirname(w[0].path), []).append(w)
    for directory, items in by_dir.items():
        if directory not in prepared.dirfds:
            prepared.dirfds[directory] = _open_directory(directory, False, None)
        dirfd = prepared.dirfds[directory]
        with _directory_lock(dirfd):
            manifest = _read_manifest_at(dirfd, directory)
            claims = {}
            try:
                for f, writes, size, verify, reads in items:
                    h = _open_owned(dirfd, directory, f, manifest, claims)
                    h.writes, h.size, h.verify, h.reads = writes, size, verify, reads
                    _add(prepared, h)
            finally:
                # what was created is kit's even when a later file failed or
                # Ctrl-C came: recorded as "filling", it is filled next time
                if claims:
                    _write_manifest_at(dirfd, {**manifest, **claims}, directory)
    for f, writes, size, verify, reads in wanted.values():
        if not f.owned:
            h = _open_named(f, writes)
            h.size, h.verify, h.reads = size, verify, reads
            _add(prepared, h)


def _add(prepared, h):
    """Two paths to one inode share one descriptor (and one lock)."""
    for other in prepared.handles.values():
        if other.ident == h.ident:
            os.close(h.fd)
            other.writes, other.size = other.writes or h.writes, max(other.size, h.size)
            other.verify = other.verify or h.verify
            other.reads = other.reads or h.reads
            prepared.handles[h.path] = other
            return
    prepared.handles[h.path] = h


def _open_directory(directory, create, ident):
    """kit's directory, opened once. Created by kit when planned so, with its
    last component never followed as a link."""
    parent, name = os.path.split(directory)
    try:
        if create:
            os.makedirs(parent, exist_ok=True)
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise RunError(f"cannot open {parent}: {e.strerror}") from None
    try:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=pfd)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if create else 0)
        try:
            fd = os.open(name, flags, dir_fd=pfd)
        except OSError as e:
            raise RunError(f"cannot open {directory}: {e.strerror} (was it replaced since kit checked "
                           "it?); nothing was written") from None
    finally:
        os.close(pfd)
    st = os.fstat(fd)
    if ident is not None and (st.st_dev, st.st_ino) != ident:
        os.close(fd)
        raise RunError(f"{directory} was replaced since kit checked it; nothing was written; run again")
    return fd


def _open_owned(dirfd, directory, f, manifest, claims):
    """One of kit's files: created here with O_EXCL|O_NOFOLLOW, or opened
    without following links and matched against the manifest."""
    name = os.path.basename(f.path)
    base = os.O_CLOEXEC | os.O_NOFOLLOW
    fd = None
    if not f.exists:
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | base, 0o644, dir_fd=dirfd)
        except FileExistsError:
            fd = None                   # another kit made it meanwhile: it must be kit's, checked below
        except OSError as e:
            raise RunError(_open_error(0, f, e, "create")) from None
        if fd is not None:
            st = os.fstat(fd)
            _stamp(fd)
            claims[name] = {**_identity_of_fd(fd, st), "size": f.size, "pattern": "filling"}
            return Handle(fd, f.path, "file", True, (st.st_dev, st.st_ino), dirfd=dirfd, directory=directory)
    try:
        fd = os.open(name, os.O_RDWR | base, dir_fd=dirfd)
    except OSError as e:
        if e.errno in (errno.EROFS, errno.EACCES, errno.ETXTBSY):
            try:
                fd = os.open(name, os.O_RDONLY | base, dir_fd=dirfd)
            except OSError as e2:
                e = e2
        if fd is None:
            raise RunError(_open_error(0, f, e)) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or not _is_kits(manifest.get(name), _identity_of_fd(fd, st), st):
        os.close(fd)
        raise RunError(f"{f.path} changed since kit checked it (replaced or moved) and is not kit's; "
                       "nothing was written; run again")
    if st.st_nlink > 1:
        os.close(fd)
        raise RunError(f"{f.path} has {st.st_nlink} hard links now: another name shares its data; "
                       "nothing was written")
    return Handle(fd, f.path, "file", True, (st.st_dev, st.st_ino), dirfd=dirfd, directory=directory)


def _open_named(f, writes):
    """A file or block device the user named: opened as named, and it must
    still be the one planned."""
    flags = os.O_CLOEXEC | (os.O_RDWR if writes else os.O_RDONLY)
    if f.kind == "block" and writes:
        flags |= os.O_EXCL      # the kernel refuses if the device is mounted or claimed
    try:
        fd = os.open(f.path, flags)
    except OSError as e:
        raise RunError(_open_error(flags, f, e)) from None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != f.ident:
        os.close(fd)
        raise RunError(f"{f.path} changed since kit checked it (replaced or moved); nothing was written; "
                       "run again")
    return Handle(fd, f.path, f.kind, False, (st.st_dev, st.st_ino), writes=writes)


def _set_patterns(handles, pattern, unless=()):
    """Records what kit's files hold now, one manifest update per directory
    (a file whose pattern is one of unless keeps it)."""
    by_dir = {}
    for h in handles:
        by_dir.setdefault(h.dirfd, (h.directory, []))[1].append(h)
    for dirfd, (directory, hs) in by_dir.items():
        _set_pattern(dirfd, directory, hs, pattern, unless)


def _set_pattern(dirfd, directory, handles, pattern, unless):
    with _directory_lock(dirfd):
        manifest = _read_manifest_at(dirfd, directory)
        for h in handles:
            entry = manifest.get(h.name)
            st = os.fstat(h.fd)
            if not _same_inode(entry, st):
                continue                # no longer kit's name for this file: leave the entry alone
            # the ctime is recorded either way: it proves the file kit's where nothing else can
            kept = entry.get("pattern") if entry.get("pattern") in unless else pattern
            manifest[h.name] = {**entry, "pattern": kept, "size": st.st_size, "ctime_ns": st.st_ctime_ns}
        _write_manifest_at(dirfd, manifest, directory)


def _fills(handles):
    """[(handle, start)] of kit's files that need filling, by the manifests
    as they are now (each read once); start None: only allocating.

    As fio's extend_file: a file that no job of the run reads or verifies
    is not laid out with data but allocated (fallocate, fio's default
    fallocate=native), so a write job on a new file writes into
    unwritten extents as under fio, not over kit's pattern. Its pattern is
    then "allocated": filled before any job reads it (fio would read
    the unwritten extents' zeros without touching the device)."""
    manifests, out = {}, []
    for h in handles:
        if not h.owned:
            continue
        if h.dirfd not in manifests:
            manifests[h.dirfd] = _read_manifest_at(h.dirfd, h.directory)
        entry, st = manifests[h.dirfd].get(h.name) or {}, os.fstat(h.fd)
        start = _fill_start(entry, st, h.size, h.verify)
        if start is None:
            continue
        if h.reads or h.verify:
            out.append((h, start))
        elif entry.get("pattern") != "allocated" or st.st_size < h.size:
            out.append((h, None))
    return out


def _allocate(handles):
    """fallocate(2) each file to its size (mode 0: the size grows with it);
    where the file system cannot, a sparse file of that size (fio's
    fallocate=native leaves it short, and its writes then extend it).
    Not posix_fallocate(): glibc emulates that by writing every block."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    for h in handles:
        if libc.fallocate(h.fd, 0, 0, h.size) == 0:
            continue
        err = ctypes.get_errno()
        try:
            if err not in (errno.EOPNOTSUPP, errno.ENOSYS):
                raise OSError(err, os.strerror(err))
            if os.fstat(h.fd).st_size < h.size:
                os.ftruncate(h.fd, h.size)
        except OSError as e:
            raise RunError(f"allocating {h.path}: {e.strerror}") from None


def _lock(handles, exclusive_if):
    """flock each file, in one global order (no two kits can deadlock);
    says once when it waits for another kit."""
    for h in sorted(handles, key=lambda h: h.ident):
        mode = fcntl.LOCK_EX if exclusive_if(h) else fcntl.LOCK_SH
        try:
            fcntl.flock(h.fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"kit: waiting for another kit process using {h.path}")
            fcntl.flock(h.fd, mode)


def _unlock(handles):
    for h in handles:
        fcntl.flock(h.fd, fcntl.LOCK_UN)


def _fill_and_lock(prepared, progress):
    """Fills what needs it (exclusive locks), then takes the run's locks:
    exclusive on files it writes, shared on files it only reads. A file
    changed between the two is filled again."""
    handles = prepared.unique()
    images = images_in_use()
    for h in handles:
        if h.writes:
            check_writable(h.fd, h.path, images)
    for _attempt in range(PREPARE_ATTEMPTS):
        if _fills(handles):
            owned = [h for h in handles if h.owned]
            _lock(owned, lambda h: True)
            try:
                to_fill = _fills(owned)
                for h, _start in to_fill:
                    check_writable(h.fd, h.path, images)
                allocated = [h for h, start in to_fill if start is None]
                to_fill = [(h, start) for h, start in to_fill if start is not None]
                _allocate(allocated)
                _set_patterns(allocated, "allocated")
                _set_patterns([h for h, _start in to_fill], "filling")  # a fill cut short is redone
                _fill_all(to_fill, progress)
                _set_patterns([h for h, _start in to_fill], "intact")
            finally:
                _unlock(owned)
        _lock(handles, lambda h: h.writes)
        if not _fills(handles):
            break
        _unlock(handles)
    else:
        raise RunError("kit's files keep changing while it prepares them (another program is writing "
                       "them?); nothing was measured")
    # until a verified run says otherwise; an allocated file stays so until a reader fills it
    _set_patterns([h for h in handles if h.writes and h.owned], "dirty", unless=("allocated",))


def _fill_all(to_fill, progress):
    """Writes kit's pattern into [start, size) of each (handle, start)."""
    if not to_fill:
        return
    ffi, lib = native()
    cell = ffi.new("uint64_t *")
    total = sum(h.size - start for h, start in to_fill)
    errors, queue = [], list(to_fill)

    def work():
        while queue and not errors:
            h, start = queue.pop()
            r = lib.kit_prefill(h.fd, start, h.size - start, PREFILL_SEED, cell)
            if r < 0:
                errors.append(RunError(f"pre-filling {h.path}: {os.strerror(-r)}"))
                continue
            try:
                os.fsync(h.fd)
            except OSError as e:
                errors.append(RunError(f"pre-filling {h.path}: {e.strerror}"))

    # a few daemons: enough to keep a disk busy, and a second Ctrl-C must
    # not wait for a fill to finish
    threads = _start_threads(work, min(FILL_THREADS, len(to_fill)))
    _watch(threads, lambda: cell[0], total, "pre-fill", progress)
    if errors:
        raise errors[0]


def _invalidate(fd):
    with contextlib.suppress(OSError):
        os.fdatasync(fd)  # dirty pages would survive DONTNEED
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _warm(files, progress):
    """Reads (fd, size) pairs once, so buffered reads hit the page cache."""
    total = sum(size for _fd, size in files)
    done = [0]

    def work():
        buf = bytearray(WARM_CHUNK)
        for fd, size in files:
            off = 0
            while off < size:
                n = os.preadv(fd, [memoryview(buf)[:min(WARM_CHUNK, size - off)]], off)
                if n <= 0:
                    break
                off += n
                done[0] += n

    _watch(_start_threads(work, 1), lambda: done[0], total, "pre-read", progress)


def _start_threads(work, count):
    """Up to count daemon threads running work (a second Ctrl-C must not
    wait for them); where the system refuses threads, work runs here."""
    threads = []
    for _ in range(count):
        t = threading.Thread(target=work, daemon=True)
        try:
            t.start()
        except RuntimeError:
            break
        threads.append(t)
    if not threads:
        work()
    return threads


def _watch(threads, done_bytes, total, label, progress):
    with bar(total=total, label=label, unit="B", enabled=progress) as b:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.1)
                break
            b.update_to(done_bytes())
        b.update_to(done_bytes())


def _open_error(flags, f, e, verb="open"):
    if e.errno == errno.EINVAL and flags & os.O_DIRECT:
        return f"direct: {f.path} cannot be opened with O_DIRECT (its filesystem does not support it); use direct=0"
    if e.errno == errno.EBUSY:
        return f"{f.path} is busy (mounted or claimed by another user); kit will not write to it"
    if e.errno in (errno.EMFILE, errno.ENFILE):
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        doing = {"open": "opening", "create": "creating"}[verb]
        return (f"too many open files ({doing} {f.path}): numjobs x nrfiles needs more descriptors "
                f"than `ulimit -n` ({soft}) allows; raise it or use fewer files")
    if e.errno == errno.ELOOP:
        return f"cannot {verb} {f.path}: it is now a symbolic link; nothing was written"
    return f"cannot {verb} {f.path}: {e.strerror}"


def close_files(opened):
    for fds in opened:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
