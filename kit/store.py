"""The results store, asv's layout: one folder per machine.

    data/<machine>/machine.json            the fingerprint, versioned
    data/<machine>/capabilities.json       what works there (kit doctor)
    data/<machine>/<suite>/<key>.json      the latest result of each key, job + bins + traces
    data/<machine>/<suite>/.history/<key>/<ms>-<digest>.json
                                           every result a later one replaced

Only measuring writes here, every write is atomic (temporary file + rename),
and a result's name is its key, so a resumed sweep finds what it already has
and two processes writing different keys never clobber each other. Another
machine's folder dropped in beside these is just another machine.

Every run is kept: measuring a key again (kit report re-measures the engines
tables) first links the result it replaces into the key's .history folder,
named by when it was measured and a digest of its bytes, then renames the
new one over <key>.json. So whatever reads the latest results reads one
file per key, as before (a store from before history, with no .history
folders, is simply a store whose keys have one run each), and the history
is there for load(history=True). The link is the same inode: nothing is
copied, and the latest stays readable until the rename replaces it; both
steps run under a lock on the suite's folder, so two kits saving one key
each keep both results.
"""
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import uuid

from .errors import OptionError, RunError
from .files import check_output_directory, read_json, replace_at, say, write_new_at
from .results import Result
from .machine import fingerprint, machine_name

DATA_ENV = "KIT_DATA"
MACHINE_FILE = "machine.json"
CAPABILITIES_FILE = "capabilities.json"
MACHINE_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def data_dir(path=None):
    return os.path.abspath(path or os.environ.get(DATA_ENV) or "data")


def safe_name(text):
    """A suite or machine as a file name: readable, no separators."""
    name = _SAFE.sub("_", str(text)).strip("._")
    if not name:
        raise OptionError(None, f"{text!r} cannot be used as a name in the store")
    return name[:180]


def key_file_name(key):
    """A result key as a file name, one to one: kept as it is when it is
    already a safe name, else made safe and suffixed with a digest of the
    exact key ("a b" and "a_b" never share a file)."""
    key = str(key)
    safe = _SAFE.sub("_", key).strip("._")[:100]
    if safe == key:
        return key
    return f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def machine_dir(data, machine):
    return os.path.join(data_dir(data), safe_name(machine))


def check_writable(machine, data=None, suites=()):
    """What a command will write for a machine, checked before it measures:
    the store's folders are folders kit can write into (not files, not
    links kit did not make), and a machine.json already there is one this
    kit can read -- a damaged one, or one from a newer kit, is never
    replaced. OptionError naming the place otherwise."""
    root = data_dir(data)
    check_output_directory(root, "data")
    folder = machine_dir(data, machine)
    for path in [folder] + [os.path.join(folder, safe_name(s)) for s in suites]:
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            raise OptionError("data", f"{path} is not a folder kit made (a file or a link); move it away")
    machine_file = os.path.join(folder, MACHINE_FILE)
    if os.path.isdir(folder) and not os.path.lexists(machine_file) and any(
            not name.startswith(".kit-") for name in os.listdir(folder)):
        # kit writes machine.json before anything else into a machine's folder
        # (through a temporary .kit-* file, which another kit may be writing now)
        raise OptionError("data", f"{folder} is not a folder kit made (it holds files but no {MACHINE_FILE}); "
                                  "move it away or give another --data")
    if os.path.lexists(machine_file):
        if not os.path.isfile(machine_file) or os.path.islink(machine_file):
            raise OptionError("data", f"{machine_file} is not a regular file; move it away")
        _data, why = _machine_file(machine_file)
        if why:
            raise OptionError("data", f"{machine_file}: {why}; kit will not replace it (move it away)")


def _writing(path, action):
    """Runs action(); an OSError names the store's path in one line."""
    try:
        return action()
    except OSError as e:
        raise RunError(f"cannot write {path}: {e.strerror}") from None


def save_machine(fingerprint, data=None, capabilities=None):
    """Writes machine.json (and capabilities.json) for the fingerprint's
    machine; never over one this kit cannot read (damaged, or newer)."""
    folder = machine_dir(data, fingerprint["name"])
    path = os.path.join(folder, MACHINE_FILE)
    if os.path.lexists(path) and read_machine_file(path, quiet=True) is None:
        raise RunError(f"{path} is not a machine file this kit can read; kit will not replace it (move it away)")
    with _folder(data, fingerprint["name"]) as fd:
        _writing(path, lambda: replace_at(fd, MACHINE_FILE, (json.dumps({"version": MACHINE_VERSION,
                                                                         **fingerprint}, indent=2) + "\n").encode()))
        if capabilities is not None:
            caps = os.path.join(folder, CAPABILITIES_FILE)
            _writing(caps, lambda: replace_at(fd, CAPABILITIES_FILE,
                                              (json.dumps(capabilities, indent=2) + "\n").encode()))
    return folder


@contextlib.contextmanager
def _folder(data, machine, suite=None):
    """A machine's folder, or a suite's in it: made where missing, and
    opened as it is now, the machine's and the suite's folder never through
    a link (what kit checked before measuring may have been swapped since:
    a link to someone's folder is refused, nothing is written through it).
    Yields the folder's descriptor, locked exclusively (one save at a time)."""
    root = data_dir(data)
    _writing(root, lambda: os.makedirs(root, exist_ok=True))
    fd = _writing(root, lambda: os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    try:
        path = root
        for name in [safe_name(machine)] + ([safe_name(suite)] if suite else []):
            path = os.path.join(path, name)
            inner = _subfolder(fd, name, path)
            os.close(fd)
            fd = inner
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _subfolder(fd, name, path):
    """The folder `name` in the open folder fd, made if missing, opened
    without following a link; RunError naming path when it is not a folder."""
    try:
        os.mkdir(name, 0o755, dir_fd=fd)
    except FileExistsError:
        pass
    except OSError as e:
        raise RunError(f"cannot write {path}: {e.strerror}") from None
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise RunError(f"{path} is not a folder kit made (a file or a link); move it away") from None
        raise RunError(f"cannot write {path}: {e.strerror}") from None


def result_path(machine, suite, key, data=None):
    return os.path.join(machine_dir(data, machine), safe_name(suite), key_file_name(key) + ".json")


def has(machine, suite, key, data=None):
    return os.path.exists(result_path(machine, suite, key, data))


def save(result, suite, key=None, tags=None, data=None, replace=True):
    """Stores a result under its machine (from its fingerprint) and returns
    the path. Without a key, a unique one (time + label + random) is made.
    replace=False never overwrites: it returns None when the key is taken."""
    machine = (result.data.get("machine") or {}).get("name")
    if not machine:
        result.data["machine"] = fingerprint()
        machine = result.data["machine"]["name"]
    key = key or f"{result.data.get('timestamp', 0)}-{result.data.get('label', 'run')}-{uuid.uuid4().hex[:8]}"
    result.data["tags"] = {"suite": suite, "key": key, **(tags or {})}
    folder = machine_dir(data, machine)
    if not os.path.exists(os.path.join(folder, MACHINE_FILE)):
        save_machine(result.data["machine"], data)
    path = result_path(machine, suite, key, data)
    name = os.path.basename(path)
    with _folder(data, machine, suite) as fd:
        if replace:
            _keep_replaced(fd, name, path)
            _writing(path, lambda: replace_at(fd, name, result.to_json(plus=True).encode()))
        elif not _writing(path, lambda: write_new_at(fd, name, result.to_json().encode())):
            return None
    return path


HISTORY = ".history"


def history_dir(path):
    """Where the results a key's latest file (path) replaced are kept."""
    folder, name = os.path.split(path)
    return os.path.join(folder, HISTORY, name.removesuffix(".json"))


def _keep_replaced(fd, name, path):
    """The file `name` in the suite's folder fd (path: its name for
    messages), about to be replaced, linked into its history, named
    <measured at, ms>-<digest of its bytes>.json: sorted by time, and the
    same file kept twice is one name (nothing to do). Whatever is there is
    kept, a result this kit cannot read included: a save never destroys.
    What is not a regular file (a FIFO someone left there) is never opened:
    its entry is linked as it is."""
    try:
        st = os.lstat(name, dir_fd=fd)
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode):
        rfd = _writing(path, lambda: os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                                             dir_fd=fd))
        with os.fdopen(rfd, "rb") as fh:
            raw = _writing(path, fh.read)
    else:
        raw = f"not a regular file: device {st.st_dev} inode {st.st_ino}".encode()
    try:
        doc = json.loads(raw)
        stamp = doc.get("timestamp_ms") or 1000 * doc.get("timestamp")
        stamp = int(stamp) if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) and stamp > 0 else 0
    except (ValueError, TypeError, AttributeError):
        stamp = 0
    folder = history_dir(path)
    history = _subfolder(fd, HISTORY, os.path.dirname(folder))
    try:
        kept_fd = _subfolder(history, os.path.basename(folder), folder)
    finally:
        os.close(history)
    kept = f"{stamp:013d}-{hashlib.sha256(raw).hexdigest()[:16]}.json"
    try:
        os.link(name, kept, src_dir_fd=fd, dst_dir_fd=kept_fd, follow_symlinks=False)
    except FileExistsError:
        pass
    except OSError:         # a filesystem without hard links: a copy, never over another file
        if stat.S_ISREG(st.st_mode):
            _writing(path, lambda: write_new_at(kept_fd, kept, raw))
    finally:
        os.close(kept_fd)


def has_history(machine, data=None):
    """Whether any key of the machine was measured more than once."""
    folder = machine_dir(data, machine)
    for suite in _listdir(folder):
        kept = os.path.join(folder, suite, HISTORY)
        if any(any(f.endswith(".json") for f in _listdir(os.path.join(kept, k))) for k in _listdir(kept)):
            return True
    return False


def _listdir(folder):
    """The names in a folder (not through a link), or none."""
    if os.path.islink(folder) or not os.path.isdir(folder):
        return []
    return sorted(os.listdir(folder))


def machines(data=None, quiet=False):
    """Every machine folder with a machine.json, newest results first."""
    root = data_dir(data)
    out = []
    if not os.path.isdir(root):
        return out
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        path = os.path.join(folder, MACHINE_FILE)
        if not os.path.isfile(path):
            continue
        fingerprint = read_machine_file(path, quiet=quiet)
        if fingerprint is None:
            continue
        files = list(_result_files(folder))
        # when the results were measured, as they say, not when their files
        # were copied (a folder copied from another machine sorts right)
        newest = max((_measured_at(f) for f in files), default=0)
        suites = sorted({os.path.basename(os.path.dirname(f)) for f in files})
        out.append({"name": name, "fingerprint": fingerprint, "results": len(files), "newest": newest,
                    "suites": suites, "folder": folder})
    out.sort(key=lambda m: m["newest"], reverse=True)
    return out


def _measured_at(path):
    try:
        stamp = read_json(path).get("timestamp")        # never opens a FIFO (a reader would hang)
        return stamp if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) else 0
    except (ValueError, AttributeError):
        return 0


def _result_files(folder, suite=None, history=False):
    """The latest result file of every key; with history, also every
    result a later one replaced."""
    for sub in sorted(os.listdir(folder)):
        path = os.path.join(folder, sub)
        if not os.path.isdir(path) or (suite and sub != safe_name(suite)):
            continue
        for f in sorted(os.listdir(path)):
            if f.endswith(".json") and not f.startswith("."):
                yield os.path.join(path, f)
        if history:
            kept = os.path.join(path, HISTORY)
            for key in _listdir(kept):
                for f in _listdir(os.path.join(kept, key)):
                    if f.endswith(".json") and not f.startswith("."):
                        yield os.path.join(kept, key, f)


def warn(path, why):
    """A stored file kit cannot read is skipped, and said so, naming it."""
    say(f"kit: warning: skipping {path}: {why}")


def read_machine_file(path, quiet=False):
    """A machine.json as a dict, or None (with a warning) when it is not one
    kit can read: damaged, not an object, or from a newer kit."""
    if not os.path.lexists(path):
        return None
    data, why = _machine_file(path)
    if why and not quiet:
        warn(path, why)
    return data


def _machine_file(path):
    """(fingerprint, None) or (None, why not)."""
    try:
        data = read_json(path, limit=16 << 20)
    except ValueError as e:
        return None, str(e)
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(data, dict):
        return None, "not a kit machine file (not a JSON object)"
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return None, "not a kit machine file (no version)"
    if version > MACHINE_VERSION:
        return None, f"written by a newer kit (machine file version {version}; this kit reads up to {MACHINE_VERSION})"
    if not isinstance(data.get("name"), str):
        return None, "not a kit machine file (no name)"
    return data, None


def load(machine, suite=None, data=None, history=False, skipped=None):
    """The stored Results of a machine (one suite, or all): the latest of
    each key, or with history=True every run of every key, newest first.
    A file that is not a result this kit can read is skipped with a warning
    naming it, or, given a list as skipped, (path, why) appended to it (a
    page says so in its own words)."""
    folder = machine_dir(data, machine)
    if not os.path.isdir(folder):
        return []
    out = []
    for path in _result_files(folder, suite, history):
        try:
            out.append(Result.load(path))
        except ValueError as e:
            if skipped is None:
                warn(path, str(e))
            else:
                skipped.append((path, str(e)))
    if history:
        out.sort(key=measured_ms, reverse=True)
    return out


def measured_ms(result):
    """When a result was measured, in ms since the epoch (0: it does not say)."""
    ms, s = result.data.get("timestamp_ms"), result.data.get("timestamp")
    for value, scale in ((ms, 1), (s, 1000)):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value * scale)
    return 0


def load_machine(machine, data=None):
    folder = machine_dir(data, machine)
    out = {"fingerprint": read_machine_file(os.path.join(folder, MACHINE_FILE))}
    try:
        caps = read_json(os.path.join(folder, CAPABILITIES_FILE), limit=16 << 20)
        out["capabilities"] = caps if isinstance(caps, dict) else None
    except ValueError:
        out["capabilities"] = None
    return out


def import_fio(results, source, machine=None, data=None):
    """fio results (results.from_fio_json, already read and checked whole) into
    the store, suite "import", as results of `machine` (default: this one;
    another name files them under that machine). Importing the same file
    again stores nothing twice. Returns the paths written."""
    here = machine_name()
    fp = fingerprint() if machine in (None, here) else {
        "schema": "kit-machine/1", "name": safe_name(machine), "hostname": None,
        "imported": True, "note": f"created by kit import of {os.path.basename(str(source))}"}
    if load_machine(fp["name"], data).get("fingerprint") is None:
        save_machine(fp, data)
    paths = []
    for i, r in enumerate(results):
        r.data["machine"] = fp
        digest = hashlib.sha256(json.dumps(r.data["jobs"], sort_keys=True).encode()).hexdigest()[:12]
        key = f"{r.data.get('timestamp', 0)}-{r.total.get('jobname') or 'fio'}-{i}-{digest}"
        paths.append(save(r, "import", key, tags={"source": os.path.basename(str(source))}, data=data,
                          replace=False))
    return paths


def frame(machine, suite=None, data=None, per_job=False, history=False, skipped=None):
    """Tidy rows of every stored result (history: every run), with its tags
    as columns; skipped: as load's."""
    import pandas as pd
    frames = []
    for r in load(machine, suite, data, history, skipped):
        f = r.to_frame(per_job=per_job)
        for k, v in (r.data.get("tags") or {}).items():
            f[k] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
        frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
