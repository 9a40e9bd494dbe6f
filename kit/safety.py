"""Is a block device, or a regular file, safe to write? Never when anything
that reads or writes through it is in use, and never when what it writes
through to is.

Storage stacks form a graph kit walks by device and inode numbers, asked of
the kernel (sysfs, mountinfo, LOOP_GET_STATUS64), never from path strings:

  up    the users of a device or file: mounts, swap, devices built on it
        (sysfs holders: device-mapper, md), loop devices over it -- and
        theirs, as far as they go (a loop over a loop over kit's file);
  down  what writing a device writes to: a loop device's image or backing
        device, device-mapper's and md's slaves -- and their other users.

A device counts as in use when it, or one of its partitions, is mounted (in
this mount namespace), swapped on, held, or refuses an exclusive open (the
kernel's own claim: mounts in any namespace, swap, md, device-mapper). What
cannot be resolved is refused.
"""
import errno
import os

from . import host


class _Graph:
    """One look at the machine's storage stack, for one question."""

    def __init__(self, holding=None):
        self.mounted = host.mounted_devices()
        self.mounted_files = host.mounted_files()
        self.overlays = host.overlay_mounts()
        self.swap_devices, self.swap_files = host.swapped_devices()
        self.holding = holding          # a device kit itself holds open with O_EXCL
        self.loops, self.unresolved = {}, {}
        for loop in host.loop_devices():
            try:
                backing = host.loop_backing(loop)
            except host.Unresolved as e:
                self.unresolved[loop] = str(e)
                continue
            if backing:
                self.loops[loop] = backing

    def loops_over(self, node):
        """Loop devices whose image or backing device is node: ("dev",
        (major, minor)) or ("file", {identities})."""
        kind, ident = node
        out = []
        for loop, b in self.loops.items():
            if (kind == "dev" and b["rdev"] == ident) or (kind == "file" and not b["rdev"]
                                                           and b["idents"] & ident):
                out.append(loop)
        return out

    def file_users(self, idents):
        """Why a file known by these identities is in use, or None: swap, a
        filesystem mounted straight from it, a loop device over it in use."""
        if idents & self.swap_files:
            return "it is in use as swap"
        mounted = next((self.mounted_files[i] for i in idents if i in self.mounted_files), None)
        if mounted:
            return f"a filesystem is mounted from it on {mounted}"
        return None

    def claimed(self, dev):
        """The kernel's own answer: an exclusive open fails while a mount (in
        any namespace), swap, md or device-mapper holds the device. None when
        kit cannot ask (no node it may open)."""
        if self.holding and host.whole_disk(dev) in (self.holding, host.whole_disk(self.holding)):
            return False        # kit's own claim (a disk's claim covers its partitions)
        try:
            fd = host.open_device(dev, os.O_RDONLY | os.O_EXCL | os.O_NONBLOCK)
        except OSError as e:
            return True if e.errno == errno.EBUSY else None
        os.close(fd)
        return False

    def used(self, node, via, seen):
        """Why something on or above the device node (other than `via`,
        where we came from) is in use, or None."""
        if node in seen:
            return None
        seen.add(node)
        users = []
        devices = [node[1]] + host.partitions(node[1])
        for d in devices:
            name = host.dev_name(d)
            if d in self.mounted:
                return f"/dev/{name} is mounted on {self.mounted[d]}"
            if d in self.swap_devices:
                return f"/dev/{name} is in use as swap"
            held = [h for h, hdev in host.children(d, "holders") if ("dev", hdev) != via]
            if held:
                return f"/dev/{name} is held by {', '.join(held)}"
            users += [(loop, d) for loop in self.loops_over(("dev", d))]
        for d in devices:
            claimed = self.claimed(d)
            if claimed:
                return f"/dev/{host.dev_name(d)} is in use (the kernel refuses an exclusive open: mounted in " \
                       "another mount namespace, or claimed)"
            if claimed is None:
                return f"kit cannot open /dev/{host.dev_name(d)} to tell whether it is in use"
        for loop, under in users:
            why = ("dev", loop) != via and self.used(("dev", loop), via=None, seen=seen)
            if why:
                return f"/dev/{host.dev_name(loop)} is a loop device over /dev/{host.dev_name(under)}, and {why}"
        for loop, why in self.unresolved.items():
            if ("dev", loop) != via and self.used(("dev", loop), via=None, seen=seen):
                return f"/dev/{host.dev_name(loop)} is in use and kit cannot tell what it is over ({why})"
        return None

    def below(self, dev, seen):
        """What writing dev writes to, and why that is in use, or None."""
        if ("down", dev) in seen:
            return None
        seen.add(("down", dev))
        name = host.dev_name(dev)
        if host.is_loop(dev):
            if dev in self.unresolved:
                return f"kit cannot tell what /dev/{name} (a loop device) writes to: {self.unresolved[dev]}"
            b = self.loops.get(dev)
            if b and b["rdev"]:
                why = self.used(("dev", b["rdev"]), via=("dev", dev), seen=set()) or self.below(b["rdev"], seen)
                if why:
                    return f"/dev/{name} is a loop device over /dev/{host.dev_name(b['rdev'])}, and {why}"
            elif b:
                image = ("file", b["idents"])
                why = self.file_users(b["idents"])
                if why:
                    return f"/dev/{name} is a loop device over an image, and {why}"
                for other in self.loops_over(image):
                    why = other != dev and self.used(("dev", other), via=None, seen=set())
                    if why:
                        return f"/dev/{name} shares its image with /dev/{host.dev_name(other)}, and {why}"
        for slave_name, slave in host.children(dev, "slaves"):
            why = self.used(("dev", slave), via=("dev", dev), seen=set()) or self.below(slave, seen)
            if why:
                return f"/dev/{name} is built on /dev/{slave_name}, and {why}"
        return None


def device_in_use(major, minor, holding=False):
    """Why writing this block device would harm something, or None.
    holding: kit already holds it open with O_EXCL (so that claim is kit's)."""
    dev = (major, minor)
    graph = _Graph(holding=dev if holding else None)
    return graph.used(("dev", dev), via=None, seen=set()) or graph.below(dev, set())


def images_in_use():
    """A view of the storage stack for checking many regular files at once."""
    return _Graph()


def file_in_use(st, path, images=None):
    """Why writing this regular file (its os.stat result, and a path to it)
    would harm something, or None: it is an active swap file, a filesystem
    is mounted from it, or it is the image of a loop device in use, directly
    or through loop devices stacked on it -- under any name: through
    overlayfs the upper layer's file counts as the same file.
    images: images_in_use(), when checking many files."""
    graph = images if images is not None else _Graph()
    node = ("file", host.real_identities(path, st, graph.overlays))
    why = graph.file_users(node[1])
    if why:
        return why
    for loop in graph.loops_over(node):
        why = graph.used(("dev", loop), via=None, seen=set())
        if why:
            return f"it is the image of /dev/{host.dev_name(loop)}, and {why}"
    for loop, why in graph.unresolved.items():
        if graph.used(("dev", loop), via=None, seen=set()):
            return f"/dev/{host.dev_name(loop)} is in use and kit cannot tell whether this file is its image ({why})"
    return None
