"""Facts about this host, read from the kernel's own tables: sysfs, /proc,
sysctls, mountinfo and loop devices. Every reader is best-effort (a missing
file gives None) and knows nothing about jobs or results; machine.py and
safety.py build on it.

SYSFS and PROC are module constants so tests can point them at fake trees for
layouts this kernel cannot build (partitions, device-mapper).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import struct
import tempfile

SYSFS = "/sys"
PROC = "/proc"

# Filesystems that hold the kernel's views, not data: kit never creates files
# there (a mistyped /dev/sdb1 must not become a regular file in /dev).
PSEUDO_FILESYSTEMS = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
    "bpf", "configfs", "pstore", "efivarfs", "fusectl", "mqueue", "binfmt_misc", "autofs",
    "rpc_pipefs", "nsfs", "hugetlbfs", "selinuxfs",
})

# <linux/loop.h>: LOOP_GET_STATUS64 fills a struct loop_info64
LOOP_GET_STATUS64 = 0x4C05
_LOOP_INFO64 = struct.Struct("=QQQQQIIII64s64s32sQQ")


# ---- files ---------------------------------------------------------------

def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def read_value(path: str) -> int | str | None:
    """A sysfs attribute as int when it is one ("-1" included), else text."""
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def list_dir(path: str) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


def read_sysctl(name: str) -> str | None:
    """A sysctl's value by its dotted name (fs.aio-max-nr), or None."""
    return read_text(f"{PROC}/sys/" + name.replace(".", "/"))


def tasks() -> set:
    """This process's threads (tids)."""
    try:
        return {int(t) for t in os.listdir(f"{PROC}/self/task")}
    except OSError:
        return set()


def task_name(tid: int) -> str:
    return read_text(f"{PROC}/self/task/{tid}/comm") or "?"


def thread_stat(pid, tid) -> dict | None:
    """One thread's /proc figures: name, usr/sys ns (clock ticks), on-CPU ns
    (schedstat, exact; None where the kernel lacks it), voluntary and
    involuntary switches, faults. pid may be "self". None once it is gone."""
    base = f"{PROC}/{pid}/task/{tid}"
    try:
        with open(base + "/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open(base + "/status") as fh:
            status = dict(line.split(":", 1) for line in fh if ":" in line)
    except (OSError, IndexError):
        return None
    try:
        with open(base + "/schedstat") as fh:
            cpu_ns = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        cpu_ns = None
    tick_ns = 1e9 / os.sysconf("SC_CLK_TCK")
    return {"comm": status["Name"].strip(), "utime_ns": int(fields[11]) * tick_ns,
            "stime_ns": int(fields[12]) * tick_ns, "cpu_ns": cpu_ns,
            "nvcsw": int(status["voluntary_ctxt_switches"]), "nivcsw": int(status["nonvoluntary_ctxt_switches"]),
            "minflt": int(fields[7]), "majflt": int(fields[9])}


def task_counters(tid: int) -> dict | None:
    """usr/sys ns, voluntary and involuntary switches, faults of one of this
    process's threads (None once it is gone)."""
    t = thread_stat("self", tid)
    return None if t is None else {k: t[k] for k in ("utime_ns", "stime_ns", "nvcsw", "nivcsw", "minflt", "majflt")}


def process_counters() -> dict:
    """The same for the whole process (getrusage RUSAGE_SELF)."""
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"utime_ns": ru.ru_utime * 1e9, "stime_ns": ru.ru_stime * 1e9, "nvcsw": ru.ru_nvcsw,
            "nivcsw": ru.ru_nivcsw, "minflt": ru.ru_minflt, "majflt": ru.ru_majflt}


def machine_load() -> dict:
    """What the whole machine has done so far: CPU time busy and stolen (ns,
    /proc/stat), and the time some task stalled for CPU and for I/O (ns,
    /proc/pressure, where the kernel has it)."""
    tick_ns = 1e9 / os.sysconf("SC_CLK_TCK")
    out = {"busy_ns": 0.0, "steal_ns": 0.0, "cpus": os.cpu_count() or 1, "psi_cpu_ns": None, "psi_io_ns": None}
    text = read_text(f"{PROC}/stat") or ""
    fields = text.split("\n", 1)[0].split()
    if fields[:1] == ["cpu"] and len(fields) > 8:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
        out["busy_ns"] = (user + nice + system + irq + softirq) * tick_ns
        out["steal_ns"] = steal * tick_ns
    for kind in ("cpu", "io"):
        text = read_text(f"{PROC}/pressure/{kind}") or ""
        for line in text.splitlines():
            if line.startswith("some ") and "total=" in line:
                out[f"psi_{kind}_ns"] = int(line.rsplit("total=", 1)[1]) * 1000
    return out


def thread_kind(comm: str) -> str:
    """A thread's kind from its name: iou-wrk-1234 -> iou-wrk,
    kworker/u8:2 -> kworker."""
    return comm.split("/")[0].rstrip("0123456789").rstrip("-:") or comm


# ---- privileges -------------------------------------------------------------
CAPS = {"CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}


def capabilities() -> dict:
    """{CAP_NAME: bool} of this process's effective capabilities (the uid
    alone does not say: root can run without them)."""
    eff = 0
    with contextlib.suppress(OSError, ValueError):
        with open(f"{PROC}/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    eff = int(line.split()[1], 16)
    return {cap: bool(eff >> bit & 1) for cap, bit in CAPS.items()}


# ---- mounts --------------------------------------------------------------

def unescape(field: str) -> str:
    # mountinfo and /proc/swaps write space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[dict]:
    """Mounts from /proc/self/mountinfo text; see proc(5) for the fields.

    Optional fields ("shared:1", ...) sit between the options and a lone "-",
    so the fields after the separator are counted from it, not from the start.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 7:
            continue
        sep = fields.index("-", 6) if "-" in fields[6:] else len(fields)
        if len(fields) < sep + 4:
            continue
        mounts.append({
            "dev": fields[2], "type": fields[sep + 1],
            "mount_point": unescape(fields[4]), "source": unescape(fields[sep + 2]),
            "options": fields[5], "super_options": fields[sep + 3],
        })
    return mounts


def mounts() -> list[dict]:
    return parse_mountinfo(read_text(f"{PROC}/self/mountinfo") or "")


def parse_dev(text: str) -> tuple[int, int]:
    major, minor = text.split(":")
    return int(major), int(minor)


def mounted_devices() -> dict:
    """(major, minor) -> the first mount point of that device."""
    out = {}
    for m in mounts():
        with contextlib.suppress(ValueError):
            out.setdefault(parse_dev(m["dev"]), m["mount_point"])
    return out


def _is_under(path: str, mount_point: str) -> bool:
    return mount_point == "/" or path == mount_point or path.startswith(mount_point + "/")


def find_mount(dev: int, path: str | None) -> dict | None:
    """The mount whose device is `dev` (and, given a path, that holds it).

    Matching the device number instead of path strings handles stacked
    mounts (two tmpfs on /dev/shm: only the top one has the file's st_dev)
    and bind mounts (one device, several mount points: take the deepest
    one that contains the path)."""
    wanted = f"{os.major(dev)}:{os.minor(dev)}"
    candidates = [m for m in mounts() if m["dev"] == wanted]
    if path is not None:
        containing = [m for m in candidates if _is_under(path, m["mount_point"])]
        if containing:
            candidates = [max(containing, key=lambda m: len(m["mount_point"]))]
    if not candidates:
        return None
    found = dict(candidates[-1])  # later lines are mounted on top of earlier ones
    del found["dev"]
    return found


def _split_options(text: str) -> list[str]:
    """Mount options split on commas that are not escaped ('\\,')."""
    return [p.replace("\\,", ",") for p in re.split(r"(?<!\\),", text)]


def overlay_mounts() -> dict:
    """{st_dev: the overlayfs mount whose files carry it}."""
    out = {}
    for m in mounts():
        if m["type"] == "overlay":
            with contextlib.suppress(ValueError):
                out[os.makedev(*parse_dev(m["dev"]))] = m
    return out


def overlay_mount(st_dev: int) -> dict | None:
    """The overlayfs mount whose files carry this st_dev, or None."""
    return overlay_mounts().get(st_dev)


def real_identities(path: str, st, overlays: dict | None = None) -> set:
    """{(st_dev, st_ino)} a regular file is known by: its own and, through
    overlayfs (stacked ones too), the upper layer's file, which is what the
    kernel writes -- a loop device set up on either name writes the same
    bytes."""
    out = {(st.st_dev, st.st_ino)}
    overlays = overlay_mounts() if overlays is None else overlays
    if st.st_dev not in overlays:
        return out
    real = os.path.realpath(path)
    for _ in range(8):
        m = overlays.get(st.st_dev)
        if not m:
            break
        upper = next((o.split("=", 1)[1] for o in _split_options(m["super_options"])
                      if o.startswith("upperdir=")), None)
        if not upper or not (real == m["mount_point"] or real.startswith(m["mount_point"].rstrip("/") + "/")):
            break
        candidate = os.path.join(upper, os.path.relpath(real, m["mount_point"]))
        try:
            st = os.stat(candidate)
        except OSError:
            break               # only in a lower layer: writing it copies it up, the lower one stays
        out.add((st.st_dev, st.st_ino))
        real = os.path.realpath(candidate)
    return out


def mounted_files() -> dict:
    """{(st_dev, st_ino): mount point} of filesystems mounted straight from a
    regular file, with no loop device between (EROFS can)."""
    out = {}
    for m in mounts():
        source = m["source"]
        if not source.startswith("/"):
            continue
        try:
            st = os.stat(source)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            for ident in real_identities(source, st):
                out.setdefault(ident, m["mount_point"])
    return out


def nearest_existing(path: str) -> str:
    """The path itself, or its closest ancestor that exists."""
    path = os.path.abspath(path)
    while not os.path.lexists(path) and path != "/":
        path = os.path.dirname(path)
    return path


def filesystem_type(path: str) -> str | None:
    """The type of the filesystem that holds `path` (or would hold it)."""
    existing = nearest_existing(path)
    try:
        st = os.stat(existing)
    except OSError:
        return None
    found = find_mount(st.st_dev, os.path.realpath(existing))
    return found["type"] if found else None


def pseudo_filesystem(path: str) -> str | None:
    """The pseudo filesystem (proc, sysfs, devtmpfs, ...) `path` is on, or None."""
    fstype = filesystem_type(path)
    return fstype if fstype in PSEUDO_FILESYSTEMS else None


# ---- block devices ---------------------------------------------------------

def dev_dir(dev: tuple[int, int]) -> str:
    return f"{SYSFS}/dev/block/{dev[0]}:{dev[1]}"


def dev_name(dev: tuple[int, int]) -> str:
    real = os.path.realpath(dev_dir(dev))
    return os.path.basename(real) if os.path.exists(real) else f"{dev[0]}:{dev[1]}"


def children(dev: tuple[int, int], kind: str) -> list[tuple[str, tuple[int, int]]]:
    """Devices listed in a sysfs subfolder: 'holders' or 'slaves'."""
    out = []
    folder = os.path.join(dev_dir(dev), kind)
    for name in list_dir(folder) or []:
        text = read_text(os.path.join(folder, name, "dev"))
        if text:
            out.append((name, parse_dev(text)))
    return out


def partitions(dev: tuple[int, int]) -> list[tuple[int, int]]:
    out = []
    base = dev_dir(dev)
    for entry in list_dir(base) or []:
        text = read_text(os.path.join(base, entry, "dev"))
        if text and os.path.exists(os.path.join(base, entry, "partition")):
            out.append(parse_dev(text))
    return out


def whole_disk(dev: tuple[int, int]) -> tuple[int, int]:
    """The disk a partition belongs to (block tracepoints report the disk)."""
    real = os.path.realpath(dev_dir(dev))
    if os.path.exists(os.path.join(real, "partition")):
        text = read_text(os.path.join(os.path.dirname(real), "dev"))
        if text:
            return parse_dev(text)
    return dev


# /sys/block/<dev>/stat, in order (Documentation/block/stat.rst)
BLOCK_STAT_FIELDS = ("read_ios", "read_merges", "read_sectors", "read_ticks", "write_ios", "write_merges",
                     "write_sectors", "write_ticks", "in_flight", "io_ticks", "time_in_queue")
# and since Linux 4.18 / 5.5: discards, then flushes
BLOCK_STAT_LATER = ("discard_ios", "discard_merges", "discard_sectors", "discard_ticks", "flush_ios",
                    "flush_ticks")


def block_stat(dev: tuple[int, int]) -> dict | None:
    """A block device's I/O counters (ticks in milliseconds), or None;
    discard_* and flush_* are 0 where the kernel does not count them."""
    text = read_text(os.path.join(dev_dir(dev), "stat"))
    if not text:
        return None
    values = text.split()
    if len(values) < len(BLOCK_STAT_FIELDS) or not all(v.isdigit() for v in values):
        return None
    fields = BLOCK_STAT_FIELDS + BLOCK_STAT_LATER
    return {**dict.fromkeys(BLOCK_STAT_LATER, 0), **dict(zip(fields, map(int, values)))}


def block_in_flight(dev: tuple[int, int]) -> int | None:
    """Requests a block device has in flight now (/sys/block/<dev>/inflight,
    reads plus writes), or None."""
    text = read_text(os.path.join(dev_dir(dev), "inflight"))
    values = text.split() if text else []
    return sum(int(v) for v in values) if values and all(v.isdigit() for v in values) else None


def block_devices() -> list[tuple[int, int]]:
    """(major, minor) of every whole disk the kernel lists in /sys/block."""
    out = []
    for name in list_dir("/sys/block") or []:
        text = read_text(os.path.join("/sys/block", name, "dev"))
        if text:
            out.append(parse_dev(text))
    return out


def swapped_devices() -> tuple[set, set]:
    """What /proc/swaps lists: ({(major, minor)} of swap devices,
    {(st_dev, st_ino)} of swap files). Names that no longer resolve are
    skipped: the kernel refuses writes to an active swap file itself."""
    devices, files = set(), set()
    text = read_text(f"{PROC}/swaps") or ""
    for line in text.splitlines()[1:]:
        name = unescape(line.split()[0]) if line.split() else ""
        with contextlib.suppress(OSError):
            st = os.stat(name)
            if stat.S_ISBLK(st.st_mode):
                devices.add((os.major(st.st_rdev), os.minor(st.st_rdev)))
            else:
                files |= real_identities(name, st)
    return devices, files


# ---- loop devices --------------------------------------------------------

class Unresolved(Exception):
    """A loop device whose backing file kit cannot identify."""


def is_loop(dev: tuple[int, int]) -> bool:
    return os.path.isdir(os.path.join(dev_dir(dev), "loop"))


def loop_devices() -> list[tuple[int, int]]:
    """Every attached loop device."""
    out = []
    for name in list_dir(f"{SYSFS}/block") or []:
        if os.path.isdir(f"{SYSFS}/block/{name}/loop"):
            text = read_text(f"{SYSFS}/block/{name}/dev")
            if text:
                out.append(parse_dev(text))
    return out


def device_node(dev: tuple[int, int]) -> str | None:
    """A /dev node of the block device, checked by its device number."""
    for path in (f"/dev/block/{dev[0]}:{dev[1]}", f"/dev/{dev_name(dev)}"):
        with contextlib.suppress(OSError):
            st = os.stat(path)
            if stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == dev:
                return path
    return None


def open_device(dev: tuple[int, int], flags: int) -> int:
    """An open descriptor of the block device: through its /dev node, or
    where /dev lacks one (a container's minimal /dev), through a private
    node kit makes for the moment (root only, on a filesystem that allows
    device nodes). OSError when neither can be opened."""
    node = device_node(dev)
    if node is not None:
        return os.open(node, flags | os.O_CLOEXEC)
    failure = OSError(errno.ENOENT, f"/dev has no node for {dev[0]}:{dev[1]}")
    for base in (os.environ.get("TMPDIR"), "/tmp", "/var/tmp", "/run"):
        if not base or not os.path.isdir(base):
            continue
        try:
            folder = tempfile.mkdtemp(prefix=".kit-node-", dir=base)
        except OSError:
            continue
        path = os.path.join(folder, "dev")
        try:
            os.mknod(path, 0o600 | stat.S_IFBLK, os.makedev(*dev))
            return os.open(path, flags | os.O_CLOEXEC)
        except OSError as e:
            failure = e
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
            with contextlib.suppress(OSError):
                os.rmdir(folder)
    raise failure


def loop_backing(dev: tuple[int, int]) -> dict | None:
    """What a loop device reads and writes: {"dev", "ino"} of its backing
    file, and "rdev" (major, minor) when that file is a block device. None
    when the device is not an attached loop device.

    Asked of the kernel (LOOP_GET_STATUS64). Only when kit may not open the
    device (not root) is sysfs's backing_file used, and only when it names an
    existing file: it is a display string, suffixed " (deleted)" once the
    name is gone. Raises Unresolved when neither can say."""
    if not is_loop(dev):
        return None
    try:
        fd = open_device(dev, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError:
        return _loop_backing_from_sysfs(dev)
    except OSError as e:
        raise Unresolved(f"cannot open /dev/{dev_name(dev)}: {e.strerror}") from None
    try:
        raw = fcntl.ioctl(fd, LOOP_GET_STATUS64, bytes(_LOOP_INFO64.size))
    except OSError as e:
        if e.errno == 6:            # ENXIO: detached since sysfs was read
            return None
        raise Unresolved(f"cannot ask /dev/{dev_name(dev)} for its backing file: {e.strerror}") from None
    finally:
        os.close(fd)
    lo_device, lo_inode, lo_rdevice = _LOOP_INFO64.unpack(raw)[:3]
    # the kernel encodes dev_t the way glibc's makedev does (new_encode_dev)
    rdev = (os.major(lo_rdevice), os.minor(lo_rdevice)) if lo_rdevice else None
    return {"dev": lo_device, "ino": lo_inode, "rdev": rdev,
            "idents": _backing_identities(dev, (lo_device, lo_inode)) if not rdev else set()}


def _backing_identities(dev, ident):
    """The identities of a loop device's image: its own, and where it lies on
    overlayfs, its upper layer's (found through sysfs's name for it, trusted
    only when that name still leads to the same inode)."""
    out = {ident}
    if not overlay_mount(ident[0]):
        return out
    try:
        with open(os.path.join(dev_dir(dev), "loop", "backing_file"), encoding="utf-8",
                  errors="surrogateescape") as fh:
            name = fh.read().removesuffix("\n")
        st = os.stat(name)
    except OSError:
        return out
    if (st.st_dev, st.st_ino) == ident:
        out |= real_identities(name, st)
    return out


def _loop_backing_from_sysfs(dev: tuple[int, int]) -> dict:
    try:
        with open(os.path.join(dev_dir(dev), "loop", "backing_file"), encoding="utf-8",
                  errors="surrogateescape") as fh:
            name = fh.read().removesuffix("\n")     # a name may end in spaces: keep them
    except OSError as e:
        raise Unresolved(f"cannot read its backing file from sysfs: {e.strerror}") from None
    if not name or name.endswith(" (deleted)"):
        raise Unresolved(f"its image {name!r} is deleted, and kit may not ask the device itself")
    try:
        st = os.stat(name)
    except OSError as e:
        raise Unresolved(f"its image {name!r}: {e.strerror}, and kit may not ask the device itself") from None
    rdev = (os.major(st.st_rdev), os.minor(st.st_rdev)) if stat.S_ISBLK(st.st_mode) else None
    return {"dev": st.st_dev, "ino": st.st_ino, "rdev": rdev,
            "idents": real_identities(name, st) if not rdev else set()}
