"""Writing kit's own output: results, reports, the files a user names with
--output. Whole or not at all (temporary file + rename), and never into
something that is not a place for output: a directory, a device, the
kernel's pseudo filesystems."""
import contextlib
import errno
import os
import stat
import sys
import tempfile
import uuid

from . import host
from .errors import OptionError, RunError

# terminals (tty, console, pts) and /dev/null: character devices that take text
_TEXT_DEVICES = {1: {3}, 4: None, 5: {0, 1}, **{m: None for m in range(136, 144)}}
_STANDARD = {"/dev/stdout": 1, "/dev/stderr": 2, "/dev/fd/1": 1, "/dev/fd/2": 2,
             "/proc/self/fd/1": 1, "/proc/self/fd/2": 2}


def read_text_file(path, what, limit):
    """A small text file's content (a regular file or a pipe), or one line
    saying why not; never reads more than limit bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise OptionError(None, f"{path}: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise OptionError(None, f"{path}: not a {what} (not a regular file)")
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise OptionError(None, f"{path}: {e.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise OptionError(None, f"{path}: larger than {limit >> 10} KiB, too large for a {what}")
    data = b"".join(chunks)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OptionError(None, f"{path}: not a text file (not UTF-8)") from None
    if "\0" in text:
        raise OptionError(None, f"{path}: not a text file (it holds NUL bytes)")
    return text


def read_json(path, limit=256 << 20):
    """A JSON document kit stored (a result, a machine file). Raises
    ValueError saying why not: not a regular file (a FIFO would hang the
    reader), too large, not JSON, nested beyond reason."""
    import json
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise ValueError(e.strerror) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > limit:
            raise ValueError(f"larger than {limit >> 20} MiB")
        with os.fdopen(os.dup(fd), "rb") as fh:
            raw = fh.read(limit + 1)
    finally:
        os.close(fd)
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("not readable JSON (nested too deeply)") from None
    except ValueError as e:
        raise ValueError(f"not readable JSON ({e})") from None


def write_atomic(path, text):
    """A reader sees the old file or the new one, never half of it."""
    _publish(path, text)


def replace_at(dirfd, name, data):
    """write_atomic for a file named in an open directory (kit's manifest,
    --output): the directory is the one kit checked, whatever its path
    became. The temporary file has a name of kit's own (.kit-...), made
    exclusively: nothing already there is ever removed or written."""
    tmp = _temporary_at(dirfd, data)
    try:
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dirfd)
        raise


def write_new_at(dirfd, name, data):
    """write_new for a file named in an open directory: False (and nothing
    written) when the name is taken."""
    tmp = _temporary_at(dirfd, data)
    try:
        os.link(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd, follow_symlinks=False)
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dirfd)


def _temporary_at(dirfd, data):
    """A new file in the directory holding data, written and synced: its
    name, one of kit's own (.kit-...), made exclusively."""
    while True:
        tmp = f".kit-{uuid.uuid4().hex}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=dirfd)
            break
        except FileExistsError:
            continue
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dirfd)
        raise
    finally:
        os.close(fd)
    return tmp


def _publish(path, text):
    """Writes a whole temporary file beside path, then renames it over path."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".kit-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), 0o644)   # by descriptor: the name could be someone else's link by now
        os.replace(tmp, path)
        tmp = None                          # renamed: whatever has that name now is not kit's to remove
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


class Output:
    """Where --output=path goes, checked (and for a pipe or a terminal,
    opened) before anything runs, so a reader that is not there, or a
    terminal kit cannot open, is bad input rather than a lost result.

    kind: "stdout"/"stderr"; "stream" (a pipe, socket, terminal or
    /dev/null, written through); or "file" (created or replaced whole,
    through a symbolic link to its target)."""

    def __init__(self, path, option="output", in_use=None):
        """in_use(stat, path): why replacing an existing file would harm
        something (the image of a mounted loop device, a swap file), or None."""
        self.path, self.option, self.fd, self.dirfd = path, option, None, None
        self.kind = _output_kind(path, option)
        if self.kind == "file" and in_use and os.path.exists(path):
            why = in_use(os.stat(path), path)
            if why:
                raise OptionError(option, f"refusing to replace {path}: {why}")
        if self.kind == "file":
            # the file is written at the end, maybe hours later: into this
            # very directory, and only while the name still holds what it
            # held now (a link or a file put there since is not replaced)
            real = os.path.realpath(path)
            try:
                self.dirfd = os.open(os.path.dirname(real), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                raise OptionError(option, f"cannot use {path}: {e.strerror}") from None
            self.name = os.path.basename(real)
            self.checked = _entry(self.dirfd, self.name)
        if self.kind == "stream":
            try:
                self.fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError as e:
                why = "no process is reading it" if e.errno == errno.ENXIO and stat.S_ISFIFO(
                    os.stat(path).st_mode) else e.strerror
                raise OptionError(option, f"cannot write to {path}: {why}") from None
            os.set_blocking(self.fd, True)

    def write(self, text):
        """Writes text; a failure (a full disk, a closed pipe) is one line."""
        try:
            if self.kind in ("stdout", "stderr"):
                write_stream(sys.stdout if self.kind == "stdout" else sys.stderr, text)
            elif self.kind == "stream":
                view = memoryview(text.encode())
                while view:
                    view = view[os.write(self.fd, view):]
            else:
                if _entry(self.dirfd, self.name) != self.checked:
                    raise RunError(f"--{self.option}: {self.path} changed while kit ran (something else "
                                   "was put there); kit did not replace it and wrote nothing")
                replace_at(self.dirfd, self.name, text.encode())
        except OSError as e:
            raise RunError(f"--{self.option}: cannot write {self.path}: {e.strerror}") from None
        finally:
            self.close()

    def close(self):
        for attr in ("fd", "dirfd"):
            if getattr(self, attr) is not None:
                os.close(getattr(self, attr))
                setattr(self, attr, None)


def _entry(dirfd, name):
    """What a directory's entry is: (device, inode, type) without following
    a link, or None when there is none."""
    try:
        st = os.lstat(name, dir_fd=dirfd)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, stat.S_IFMT(st.st_mode)


def write_stream(stream, text):
    """Writes to stdout or stderr; a closed one raises OSError (EPIPE or
    EBADF), never AttributeError."""
    if stream is None:
        raise OSError(errno.EBADF, "it is closed")
    stream.write(text)
    stream.flush()


def say(line):
    """One line to stderr, if there is one (a closed stderr is not an
    error, and its lines must never land in stdout's JSON)."""
    with contextlib.suppress(OSError, ValueError):
        write_stream(sys.stderr, line + "\n")


def _output_kind(path, option):
    if path in _STANDARD:
        return {1: "stdout", 2: "stderr"}[_STANDARD[path]]
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise OptionError(option, f"{path} is a symbolic link to {os.readlink(path)}, which does not "
                                      "exist") from None
        st = None
    except OSError as e:
        raise OptionError(option, f"cannot use {path}: {e.strerror}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OptionError(option, f"{path} is a directory")
    if st is not None and (stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
        return "stream"
    if st is not None and stat.S_ISCHR(st.st_mode):
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        if major in _TEXT_DEVICES and (_TEXT_DEVICES[major] is None or minor in _TEXT_DEVICES[major]):
            return "stream"
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OptionError(option, f"{path} is a device; kit writes output only to files, pipes, "
                                  "terminals and /dev/null")
    real = os.path.realpath(path)
    fstype = host.pseudo_filesystem(real)
    if fstype:
        raise OptionError(option, f"{path} is on {fstype}, which holds the kernel's files; kit writes no "
                                  "output there")
    parent = os.path.dirname(real)
    if not os.path.isdir(parent):
        raise OptionError(option, f"{parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise OptionError(option, f"{parent} is not writable")
    if st is None and path.endswith("/"):
        raise OptionError(option, f"{path} names a directory that does not exist; give a file name")
    return "file"


def check_new_file(path, option):
    """A file kit will create at path later: nothing is there now (kit never
    replaces a file it did not create), and its directory exists, is
    writable and holds no kernel pseudo files. One line naming the option
    if not."""
    if os.path.lexists(path):
        raise OptionError(option, f"{path} already exists: kit never replaces a file it did not create "
                                  "(move it away or give another name)")
    parent = os.path.dirname(os.path.abspath(path))
    if len(os.fsencode(os.path.basename(path))) > 255:
        raise OptionError(option, f"the file name {os.path.basename(path)[:40]}... is longer than 255 bytes")
    if not os.path.isdir(parent):
        raise OptionError(option, f"{parent} is not a directory (kit does not create it)")
    fstype = host.pseudo_filesystem(parent)
    if fstype:
        raise OptionError(option, f"{parent} is on {fstype}, which holds the kernel's files; kit writes "
                                  "nothing there")
    if not os.access(parent, os.W_OK):
        raise OptionError(option, f"{parent} is not writable")


def open_new(path):
    """A new file at path for writing text; FileExistsError if anything is
    there, a symbolic link included (what appeared since the check stays
    untouched)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    return os.fdopen(fd, "w")


def check_output_directory(path, option):
    """A directory kit will create (if needed) and write into."""
    fstype = host.pseudo_filesystem(path)
    if fstype:
        raise OptionError(option, f"{path} is on {fstype}, which holds the kernel's files; kit writes nothing "
                                  "there")
    existing = host.nearest_existing(path)
    if not os.path.isdir(existing):
        raise OptionError(option, f"{existing} is not a directory")
    if not os.access(existing, os.W_OK):
        raise OptionError(option, f"{existing} is not writable")
