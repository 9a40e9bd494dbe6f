"""The destructive-write guard against aliases: symlinks, /dev/disk/by-* style
names, loop devices over a mounted device or sharing its image, partitions
of a mounted disk and device-mapper stacks. Real loop devices where this
kernel can build them; a fake sysfs where it cannot (no partition tables,
no device-mapper here)."""
import os
import subprocess

import pytest

from conftest import run_kit
from kit import host, safety


def _losetup(backing):
    return subprocess.run(["losetup", "-f", "--show", backing], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_loop_device_over_a_mounted_device_is_refused(mounted_loopdev):
    dev, mnt = mounted_loopdev
    alias = _losetup(dev)           # a second loop device whose backing is the mounted one
    try:
        p = run_kit("run", "--rw=write", f"--filename={alias}", "--size=1M", "--allow-destructive")
        assert p.returncode == 2, p.stderr
        assert f"loop device over {dev}" in p.stderr and f"is mounted on {mnt}" in p.stderr
    finally:
        subprocess.run(["losetup", "-d", alias], capture_output=True)


def test_loop_device_sharing_a_mounted_image_is_refused(mounted_loopdev):
    dev, mnt = mounted_loopdev
    image = subprocess.run(["losetup", "-n", "-O", "BACK-FILE", dev], capture_output=True, text=True,
                           check=True).stdout.strip()
    twin = _losetup(image)
    try:
        p = run_kit("run", "--rw=randwrite", f"--filename={twin}", "--size=1M", "--allow-destructive")
        assert p.returncode == 2, p.stderr
        assert f"{twin} shares its image with {dev}" in p.stderr and "is mounted on" in p.stderr
    finally:
        subprocess.run(["losetup", "-d", twin], capture_output=True)


def test_by_id_style_alias(tmp_path, mounted_loopdev, loopdev):
    mounted, _mnt = mounted_loopdev
    by_id = tmp_path / "disk" / "by-id"
    by_id.mkdir(parents=True)
    (by_id / "virtio-busy").symlink_to(mounted)
    (by_id / "virtio-free").symlink_to(loopdev)
    p = run_kit("run", "--rw=write", f"--filename={by_id / 'virtio-busy'}", "--size=1M", "--allow-destructive")
    assert p.returncode == 2 and "is mounted on" in p.stderr
    p = run_kit("run", "--rw=write", f"--filename={by_id / 'virtio-free'}", "--size=1M")
    assert p.returncode == 2 and "--allow-destructive" in p.stderr
    p = run_kit("run", "--rw=write", f"--filename={by_id / 'virtio-free'}", "--size=1M", "--allow-destructive")
    assert p.returncode == 0, p.stderr


# ---- a fake sysfs for what this kernel cannot build -----------------------

def _device(root, name, dev, parent=None, partition=False):
    folder = os.path.join(root, "block", parent, name) if parent else os.path.join(root, "block", name)
    os.makedirs(os.path.join(folder, "holders"), exist_ok=True)
    os.makedirs(os.path.join(folder, "slaves"), exist_ok=True)
    with open(os.path.join(folder, "dev"), "w") as fh:
        fh.write(f"{dev[0]}:{dev[1]}\n")
    if partition:
        open(os.path.join(folder, "partition"), "w").close()
    os.makedirs(os.path.join(root, "dev", "block"), exist_ok=True)
    os.symlink(folder, os.path.join(root, "dev", "block", f"{dev[0]}:{dev[1]}"))
    return folder


def _link(folder, kind, target_folder):
    os.symlink(target_folder, os.path.join(folder, kind, os.path.basename(target_folder)))


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """sda (sda1, sda2 mounted), sdb held by dm-0 whose other slave sdc has a
    mounted partition sdc1, and an unused sdd."""
    sys_root, proc = str(tmp_path / "sys"), str(tmp_path / "proc")
    _device(sys_root, "sda", (8, 0))
    _device(sys_root, "sda1", (8, 1), parent="sda", partition=True)
    _device(sys_root, "sda2", (8, 2), parent="sda", partition=True)
    sdb = _device(sys_root, "sdb", (8, 16))
    sdc = _device(sys_root, "sdc", (8, 32))
    _device(sys_root, "sdc1", (8, 33), parent="sdc", partition=True)
    _device(sys_root, "sdd", (8, 48))
    dm = _device(sys_root, "dm-0", (253, 0))
    for slave in (sdb, sdc):
        _link(dm, "slaves", slave)
        _link(slave, "holders", dm)
    os.makedirs(os.path.join(proc, "self"))
    with open(os.path.join(proc, "self", "mountinfo"), "w") as fh:
        fh.write("22 1 8:2 / /srv/data rw,relatime - ext4 /dev/sda2 rw\n"
                 "23 1 8:33 / /srv/my\\040logs rw,relatime - xfs /dev/sdc1 rw\n")
    with open(os.path.join(proc, "swaps"), "w") as fh:
        fh.write("Filename Type Size Used Priority\n")
    monkeypatch.setattr(host, "SYSFS", sys_root)
    monkeypatch.setattr(host, "PROC", proc)
    # these devices do not exist: the kernel cannot be asked for its claims
    monkeypatch.setattr(safety._Graph, "claimed", lambda self, dev: False)


def test_fake_disk_with_a_mounted_partition(fake):
    assert safety.device_in_use(8, 0) == "/dev/sda2 is mounted on /srv/data"
    assert safety.device_in_use(8, 1) is None            # a sibling partition is not the mounted one
    assert safety.device_in_use(8, 2) == "/dev/sda2 is mounted on /srv/data"
    assert host.whole_disk((8, 2)) == (8, 0)


def test_fake_device_mapper_stack(fake):
    assert safety.device_in_use(8, 16) == "/dev/sdb is held by dm-0"
    why = safety.device_in_use(253, 0)
    assert why == "/dev/dm-0 is built on /dev/sdc, and /dev/sdc1 is mounted on /srv/my logs"
    assert safety.device_in_use(8, 48) is None
