"""Machine fingerprint: what a result was measured on.

pyperf's metadata collector is the model for what to record, asv's
machine.json for the shape: one versioned dict stored beside every result.
Best-effort and fast: a missing file or command gives None, never an
exception -- except an invalid KIT_MACHINE, which the user asked for.
"""
from __future__ import annotations

import datetime
import glob
import os
import platform
import re
import socket
import stat
import subprocess

from . import host

SCHEMA = "kit-machine/1"


COMMAND_TIMEOUT_S = 1.0
SECTOR_BYTES = 512  # sysfs "size" is always in 512-byte sectors

MACHINE_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")

# Debian package names; libaio1 became libaio1t64 with the 64-bit time_t
# transition (trixie), so take whichever is installed.
DPKG_PACKAGES = {"liburing": ("liburing2",), "libaio": ("libaio1", "libaio1t64"),
                 "bcc": ("python3-bpfcc",), "boost": ("libboost1.81-dev",)}

# queue/ attributes that change I/O behaviour; copied as int when numeric.
QUEUE_ATTRS = ("nr_requests", "read_ahead_kb", "rotational", "logical_block_size",
               "physical_block_size", "io_poll", "io_poll_delay", "write_cache",
               "max_sectors_kb", "dax")

# Device kind for disks that are not loop/dm/md: by driver, then by name.
DRIVER_KINDS = {"virtio_blk": "virtio", "nvme": "nvme", "sd": "scsi", "vbd": "xen"}
NAME_PREFIX_KINDS = (("nvme", "nvme"), ("zram", "zram"), ("nbd", "nbd"),
                     ("pmem", "pmem"), ("nullb", "null_blk"), ("mmcblk", "mmc"))

# DMI product/vendor substrings -> hypervisor, for hosts without systemd.
DMI_HYPERVISORS = (("kvm", "kvm"), ("qemu", "qemu"), ("vmware", "vmware"),
                   ("virtualbox", "oracle"), ("xen", "xen"), ("microsoft", "microsoft"))


# ---------------------------------------------------------------- helpers

def _selected(choices: str | None) -> str | None:
    """The [bracketed] word of "none [mq-deadline] kyber"; sysfs marks the
    active choice that way for schedulers, THP and SMT alike."""
    if choices is None:
        return None
    match = re.search(r"\[([^\]]+)\]", choices)
    return match.group(1) if match else choices


def _run(argv: list[str]) -> str | None:
    """stdout of a command, stripped; None if absent, failing or slow.

    The exit status is ignored: systemd-detect-virt exits 1 while printing
    "none", and dpkg-query exits 1 when only some packages are installed.
    """
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
            env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


# ---------------------------------------------------------------- devices

def _device_kind(disk_path: str, name: str, driver: str | None) -> str:
    for subdir, kind in (("loop", "loop"), ("dm", "dm"), ("md", "md")):
        if os.path.isdir(os.path.join(disk_path, subdir)):
            return kind
    if driver in DRIVER_KINDS:
        return DRIVER_KINDS[driver]
    if "/virtio" in disk_path:
        return "virtio"
    for prefix, kind in NAME_PREFIX_KINDS:
        if name.startswith(prefix):
            return kind
    return driver or "unknown"


def _driver(disk_path: str) -> str | None:
    # nvme namespaces hang off a class device; the driver is one level up.
    for link in ("device/driver", "device/device/driver"):
        target = os.path.join(disk_path, link)
        if os.path.islink(target):
            return os.path.basename(os.path.realpath(target))
    return None


def describe_device(major: int, minor: int) -> dict | None:
    """The block device MAJ:MIN as sysfs shows it, or None if there is none."""
    sys_path = os.path.realpath(f"{host.SYSFS}/dev/block/{int(major)}:{int(minor)}")
    if not os.path.isdir(sys_path):
        return None
    name = os.path.basename(sys_path)
    is_partition = os.path.exists(os.path.join(sys_path, "partition"))
    # A partition has no queue/ of its own: the disk above it schedules its I/O.
    disk_path = os.path.dirname(sys_path) if is_partition else sys_path
    queue = os.path.join(disk_path, "queue")
    driver = _driver(disk_path)
    size = host.read_value(os.path.join(sys_path, "size"))
    mq_entries = host.list_dir(os.path.join(disk_path, "mq"))

    kind = _device_kind(disk_path, os.path.basename(disk_path), driver)

    info = {
        "name": name, "major": int(major), "minor": int(minor),
        "partition": is_partition,
        "disk": os.path.basename(disk_path) if is_partition else None,
        "kind": kind, "driver": driver,
        "model": host.read_text(os.path.join(disk_path, "device/model")),
        "vendor": host.read_text(os.path.join(disk_path, "device/vendor")),
        "size_bytes": size * SECTOR_BYTES if isinstance(size, int) else None,
        "scheduler": _selected(host.read_text(os.path.join(queue, "scheduler"))),
    }
    for attr in QUEUE_ATTRS:
        info[attr] = host.read_value(os.path.join(queue, attr))
    # mq/ holds one numbered directory per hardware queue (blk-mq only).
    info["nr_hw_queues"] = sum(e.isdigit() for e in mq_entries) if mq_entries is not None else None
    info["holders"] = host.list_dir(os.path.join(sys_path, "holders"))
    # An empty backing_file means a detached loop device.
    info["backing_file"] = host.read_text(os.path.join(disk_path, "loop/backing_file")) or None
    info["dm"] = None if kind != "dm" else {
        "name": host.read_text(os.path.join(disk_path, "dm/name")),
        "uuid": host.read_text(os.path.join(disk_path, "dm/uuid")),
        "slaves": host.list_dir(os.path.join(disk_path, "slaves")),
    }
    return info


# ---------------------------------------------------------------- targets

def _source_block_device(filesystem: dict | None) -> int | None:
    """st_rdev of a mount's source when it is a block device.

    Some filesystems (btrfs) give files an anonymous 0:N st_dev; the disk is
    then only known through the mount source.  tmpfs/overlay have none."""
    source = (filesystem or {}).get("source") or ""
    if not source.startswith("/dev/"):
        return None
    try:
        st = os.stat(source)
    except OSError:
        return None
    return st.st_rdev if stat.S_ISBLK(st.st_mode) else None


def describe_target(path) -> dict:
    """Filesystem and device behind `path`: a file, a directory (or, for
    one not created yet, its nearest existing parent) or a block device."""
    given = os.fspath(path)
    resolved = os.path.realpath(given)  # resolves /dev/disk/by-* symlinks
    existing = resolved
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    st = os.stat(existing)

    if stat.S_ISBLK(st.st_mode):
        kind = "block"
        own_number = device_number = st.st_rdev
        filesystem = host.find_mount(own_number, None)  # None when unmounted
    else:
        kind = "file"
        own_number = device_number = st.st_dev
        filesystem = host.find_mount(own_number, existing)
        if os.major(own_number) == 0:  # anonymous: tmpfs, overlay, btrfs
            device_number = _source_block_device(filesystem)

    device = None
    if device_number is not None:
        device = describe_device(os.major(device_number), os.minor(device_number))
    return {
        "path": given, "resolved_path": existing, "exists": existing == resolved,
        "kind": kind, "dev": f"{os.major(own_number)}:{os.minor(own_number)}",
        "filesystem": filesystem, "device": device,
    }


# ---------------------------------------------------------------- machine

def _cpuinfo_first_block() -> dict:
    text = host.read_text(f"{host.PROC}/cpuinfo") or ""
    fields = {}
    for line in text.split("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _virtualization() -> str | None:
    # --vm: a plain call names the container first ("docker") and hides the
    # hypervisor, which is what changes I/O numbers.
    detected = _run(["systemd-detect-virt", "--vm"])
    if detected:
        return detected
    dmi = " ".join(host.read_text(f"{host.SYSFS}/class/dmi/id/{f}") or ""
                   for f in ("product_name", "sys_vendor")).lower()
    for needle, hypervisor in DMI_HYPERVISORS:
        if needle in dmi:
            return hypervisor
    flags = _cpuinfo_first_block().get("flags")
    if flags is None:
        return None  # not x86, or no /proc: cannot tell
    return "unknown" if "hypervisor" in flags.split() else "none"


def _container() -> str | None:
    detected = _run(["systemd-detect-virt", "--container"])
    if detected:
        return detected
    for marker, engine in (("/.dockerenv", "docker"), ("/run/.containerenv", "podman")):
        if os.path.exists(marker):
            return engine
    return "none"


def _cpu() -> dict:
    cpuinfo = _cpuinfo_first_block()
    model = (cpuinfo.get("model name") or cpuinfo.get("Processor")
             or cpuinfo.get("cpu model") or cpuinfo.get("cpu") or platform.processor() or None)
    cpu_dirs = glob.glob(f"{host.SYSFS}/devices/system/cpu/cpu[0-9]*")

    packages, cores = set(), set()
    for cpu_dir in cpu_dirs:
        package = host.read_text(f"{cpu_dir}/topology/physical_package_id")
        core = host.read_text(f"{cpu_dir}/topology/core_id")
        if package is not None and core is not None:
            packages.add(package)
            cores.add((package, core))

    governors = {host.read_text(f"{d}/cpufreq/scaling_governor") for d in cpu_dirs} - {None}
    if not governors:
        governor = "none"  # no cpufreq: typical of VMs, where the host decides
    elif len(governors) == 1:
        governor = governors.pop()
    else:
        governor = sorted(governors)

    vulnerabilities = f"{host.SYSFS}/devices/system/cpu/vulnerabilities"
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return {
        "model": model, "count": os.cpu_count(),
        "online": host.read_text(f"{host.SYSFS}/devices/system/cpu/online"), "usable": usable,
        "sockets": len(packages) or None, "cores": len(cores) or None,
        "governor": governor,
        "smt": host.read_text(f"{host.SYSFS}/devices/system/cpu/smt/control"),
        "mitigations": {name: host.read_text(os.path.join(vulnerabilities, name))
                        for name in host.list_dir(vulnerabilities) or []},
    }


def _memory() -> dict:
    meminfo = host.read_text(f"{host.PROC}/meminfo") or ""
    total = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
    hugepages = {}
    for pool in glob.glob(f"{host.SYSFS}/kernel/mm/hugepages/hugepages-*"):
        count = host.read_value(f"{pool}/nr_hugepages")
        if isinstance(count, int) and count > 0:
            hugepages[os.path.basename(pool)[len("hugepages-"):]] = count
    return {
        "total_bytes": int(total.group(1)) * 1024 if total else None,
        "hugepages": hugepages or None,
        "transparent_hugepage": _selected(
            host.read_text(f"{host.SYSFS}/kernel/mm/transparent_hugepage/enabled")),
    }


def _dpkg_versions() -> dict:
    """{library: version or None}, from one dpkg-query call for all of them."""
    names = [pkg for pkgs in DPKG_PACKAGES.values() for pkg in pkgs]
    out = _run(["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\t${Version}\n", *names])
    installed = {}
    for line in (out or "").splitlines():
        package, status, version = (line.split("\t") + ["", ""])[:3]
        if status[1:2] == "i" and version:  # "ii ": removed packages linger as "rc"
            installed[package.split(":")[0]] = version
    return {
        library: next((installed[p] for p in packages if p in installed), None)
        for library, packages in DPKG_PACKAGES.items()
    }


def _versions(kernel_release: str) -> dict:
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        glibc = None
    fio = _run(["fio", "--version"])  # "fio-3.33"
    dpkg = _dpkg_versions()
    return {
        "python": platform.python_version(),
        "glibc": glibc.split()[-1] if glibc else None,
        "liburing": dpkg["liburing"], "libaio": dpkg["libaio"],
        "fio": fio[len("fio-"):] if fio and fio.startswith("fio-") else fio,
        "bcc": dpkg["bcc"], "boost": dpkg["boost"], "kernel": kernel_release,
    }


def machine_name(fp: dict | None = None) -> str:
    """KIT_MACHINE if set, else the hostname made safe for data/<machine>/."""
    override = os.environ.get("KIT_MACHINE")
    if override:
        if not MACHINE_NAME_RE.fullmatch(override) or set(override) == {"."}:
            raise ValueError(
                f"KIT_MACHINE={override!r} is not a valid machine name: "
                "use letters, digits, '.', '_' and '-' only")
        return override
    hostname = (fp or {}).get("hostname") or socket.gethostname()
    name = re.sub(r"[^a-z0-9._-]+", "-", hostname.lower()).strip(".-")
    return name or "unknown"


def fingerprint(target=None) -> dict:
    """The machine (and, given a target path, its device) as a JSON-able dict."""
    hostname = socket.gethostname()
    name = machine_name({"hostname": hostname})  # first: a bad KIT_MACHINE fails fast
    uname = os.uname()
    return {
        "schema": SCHEMA,
        "name": name,
        "hostname": hostname,
        "collected_at": datetime.datetime.now(datetime.timezone.utc)
                                         .isoformat(timespec="seconds"),
        "kernel": {"release": uname.release, "version": uname.version,
                   "arch": uname.machine, "cmdline": host.read_text(f"{host.PROC}/cmdline")},
        "virtualization": _virtualization(),
        "container": _container(),
        "cpu": _cpu(),
        "memory": _memory(),
        "versions": _versions(uname.release),
        "target": describe_target(target) if target is not None else None,
    }


_FINGERPRINTS = {}


def fingerprint_for(path):
    """The fingerprint of a run's machine and target (cached per directory:
    runs in one place share it). Never raises: a fingerprint must never cost
    a measurement."""
    key = os.path.dirname(path) if path else None
    if key not in _FINGERPRINTS:
        try:
            _FINGERPRINTS[key] = fingerprint(path)
        except Exception as e:
            _FINGERPRINTS[key] = {"error": f"{type(e).__name__}: {e}"}
    return _FINGERPRINTS[key]
