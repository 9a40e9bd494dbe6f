"""Is a block device safe to write? Never when it, one of its partitions, or
anything it passes writes to is mounted, used as swap, or held by another
device. Answered from the kernel's own tables — sysfs and mountinfo, by
device number — never from path strings, so /dev/disk/by-* aliases,
symlinks, loop devices over a mounted device and device-mapper stacks all
resolve to what they really are.

SYSFS and PROC are module constants so tests can point them at fake trees for
layouts this kernel cannot build (partitions, device-mapper).
"""
import contextlib
import os
import stat

SYSFS = "/sys"
PROC = "/proc"


def _dev_dir(dev):
    return f"{SYSFS}/dev/block/{dev[0]}:{dev[1]}"


def _read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _parse_dev(text):
    major, minor = text.split(":")
    return int(major), int(minor)


def dev_name(dev):
    real = os.path.realpath(_dev_dir(dev))
    return os.path.basename(real) if os.path.exists(real) else f"{dev[0]}:{dev[1]}"


def _mounted():
    """(major, minor) -> mount point, from mountinfo's third field."""
    out = {}
    with contextlib.suppress(OSError), open(f"{PROC}/self/mountinfo") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) > 4:
                out.setdefault(_parse_dev(parts[2]), parts[4].replace("\\040", " "))
    return out


def _swaps():
    out = set()
    with contextlib.suppress(OSError), open(f"{PROC}/swaps") as fh:
        next(fh, None)
        for line in fh:
            with contextlib.suppress(OSError, IndexError):
                st = os.stat(line.split()[0])
                if stat.S_ISBLK(st.st_mode):
                    out.add((os.major(st.st_rdev), os.minor(st.st_rdev)))
    return out


def _children(dev, kind):
    """Devices listed in a sysfs subfolder: 'holders' or 'slaves'."""
    out = []
    folder = os.path.join(_dev_dir(dev), kind)
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(folder)):
            text = _read(os.path.join(folder, name, "dev"))
            if text:
                out.append((name, _parse_dev(text)))
    return out


def partitions(dev):
    out = []
    base = _dev_dir(dev)
    with contextlib.suppress(OSError):
        for entry in sorted(os.listdir(base)):
            text = _read(os.path.join(base, entry, "dev"))
            if text and os.path.exists(os.path.join(base, entry, "partition")):
                out.append(_parse_dev(text))
    return out


def _loop_backing(dev):
    return _read(os.path.join(_dev_dir(dev), "loop", "backing_file"))


def _loops_over(path, besides):
    """Other loop devices backed by the same file (by inode)."""
    out = []
    try:
        target = os.stat(path)
    except OSError:
        return out
    with contextlib.suppress(OSError):
        for name in os.listdir(f"{SYSFS}/block"):
            backing = _read(f"{SYSFS}/block/{name}/loop/backing_file")
            text = _read(f"{SYSFS}/block/{name}/dev")
            if not backing or not text or _parse_dev(text) == besides:
                continue
            with contextlib.suppress(OSError):
                st = os.stat(backing)
                if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                    out.append(_parse_dev(text))
    return out


def device_in_use(major, minor):
    """Why writing this block device would harm something, or None."""
    return _in_use((major, minor), _mounted(), _swaps(), set(), via=None)


def _in_use(dev, mounted, swaps, seen, via):
    if dev in seen:
        return None
    seen.add(dev)
    name = dev_name(dev)
    for d in [dev] + partitions(dev):
        part = dev_name(d)
        if d in mounted:
            return f"/dev/{part} is mounted on {mounted[d]}"
        if d in swaps:
            return f"/dev/{part} is in use as swap"
        held = [h for h, hdev in _children(d, "holders") if hdev != via]
        if held:
            return f"/dev/{part} is held by {', '.join(held)}"
    # what this device writes through to: a loop device's backing device or
    # file, device-mapper's and md's slaves
    backing = _loop_backing(dev)
    if backing:
        with contextlib.suppress(OSError):
            st = os.stat(backing)
            if stat.S_ISBLK(st.st_mode):
                why = _in_use((os.major(st.st_rdev), os.minor(st.st_rdev)), mounted, swaps, seen, via=dev)
                if why:
                    return f"/dev/{name} is a loop device over {backing}, and {why}"
            elif stat.S_ISREG(st.st_mode):
                for other in _loops_over(backing, dev):
                    why = _in_use(other, mounted, swaps, seen, via=None)
                    if why:
                        return f"/dev/{name} shares its backing file {backing} with /dev/{dev_name(other)}, and {why}"
    for slave_name, slave in _children(dev, "slaves"):
        why = _in_use(slave, mounted, swaps, seen, via=dev)
        if why:
            return f"/dev/{name} is built on /dev/{slave_name}, and {why}"
    return None


def whole_disk(dev):
    """The disk a partition belongs to (block tracepoints report the disk)."""
    real = os.path.realpath(_dev_dir(dev))
    if os.path.exists(os.path.join(real, "partition")):
        text = _read(os.path.join(os.path.dirname(real), "dev"))
        if text:
            return _parse_dev(text)
    return dev
