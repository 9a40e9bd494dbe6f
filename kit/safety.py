"""Is a block device, or a regular file, safe to write? Never when it, one of
its partitions, or anything it passes writes to is mounted, used as swap, or
held by another device; never when a file is the image behind a loop device
in use. Answered from the kernel's own tables by device and inode number
(sysfs, mountinfo, LOOP_GET_STATUS64), never from path strings, so
/dev/disk/by-* aliases, symlinks, hard links, deleted or oddly named loop
images and device-mapper stacks all resolve to what they really are. What
cannot be resolved is refused.
"""
import os
import stat

from . import host


def device_in_use(major, minor):
    """Why writing this block device would harm something, or None."""
    return _in_use((major, minor), host.mounted_devices(), host.swapped_devices()[0], set(), via=None)


def images_in_use():
    """What writing a regular file must not touch: {(st_dev, st_ino): why} of
    active swap files and of the images of loop devices in use, and under
    None the reason why some loop device in use could not be resolved."""
    out = {ident: "it is in use as swap" for ident in host.swapped_devices()[1]}
    mounted, swaps = host.mounted_devices(), host.swapped_devices()[0]
    for loop in host.loop_devices():
        why = _in_use(loop, mounted, swaps, set(), via=None, follow_backing=False)
        if not why:
            continue            # an unused loop device: writing its image harms no one else
        try:
            backing = host.loop_backing(loop)
        except host.Unresolved as e:
            out.setdefault(None, f"/dev/{host.dev_name(loop)} is in use ({why}) and kit cannot tell "
                                 f"whether this file is its image ({e})")
            continue
        if backing and not backing["rdev"]:
            out.setdefault((backing["dev"], backing["ino"]),
                           f"it is the image of /dev/{host.dev_name(loop)}, and {why}")
    return out


def file_in_use(st, images=None):
    """Why writing this regular file (its os.stat result) would harm
    something, or None. images: images_in_use(), when checking many files."""
    images = images_in_use() if images is None else images
    return images.get((st.st_dev, st.st_ino)) or images.get(None)


def _in_use(dev, mounted, swaps, seen, via, follow_backing=True):
    if dev in seen:
        return None
    seen.add(dev)
    name = host.dev_name(dev)
    for d in [dev] + host.partitions(dev):
        part = host.dev_name(d)
        if d in mounted:
            return f"/dev/{part} is mounted on {mounted[d]}"
        if d in swaps:
            return f"/dev/{part} is in use as swap"
        held = [h for h, hdev in host.children(d, "holders") if hdev != via]
        if held:
            return f"/dev/{part} is held by {', '.join(held)}"
    if follow_backing:
        why = _loop_in_use(dev, name, mounted, swaps, seen)
        if why:
            return why
    # what this device writes through to: device-mapper's and md's slaves
    for slave_name, slave in host.children(dev, "slaves"):
        why = _in_use(slave, mounted, swaps, seen, via=dev)
        if why:
            return f"/dev/{name} is built on /dev/{slave_name}, and {why}"
    return None


def _loop_in_use(dev, name, mounted, swaps, seen):
    """A loop device writes through to its backing device, or to its image,
    which other loop devices may share."""
    try:
        backing = host.loop_backing(dev)
    except host.Unresolved as e:
        return f"kit cannot tell what /dev/{name} (a loop device) writes to: {e}"
    if backing is None:
        return None
    if backing["rdev"]:
        why = _in_use(backing["rdev"], mounted, swaps, seen, via=dev)
        if why:
            return f"/dev/{name} is a loop device over /dev/{host.dev_name(backing['rdev'])}, and {why}"
        return None
    for other in host.loop_devices():
        if other == dev or other in seen:
            continue
        try:
            theirs = host.loop_backing(other)
        except host.Unresolved as e:
            return f"kit cannot tell whether /dev/{host.dev_name(other)} shares the image of /dev/{name}: {e}"
        if theirs and (theirs["dev"], theirs["ino"]) == (backing["dev"], backing["ino"]):
            why = _in_use(other, mounted, swaps, seen, via=None)
            if why:
                return f"/dev/{name} shares its image with /dev/{host.dev_name(other)}, and {why}"
    return None


def block_device_number(path):
    """(major, minor) of a block device path, or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.major(st.st_rdev), os.minor(st.st_rdev)) if stat.S_ISBLK(st.st_mode) else None
