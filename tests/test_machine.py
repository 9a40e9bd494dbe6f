"""Tests for kit.machine: every assertion is checked against the kernel's own
files, read here independently of the module."""
import datetime
import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import REPO, require
from kit import host, machine


def sysfs(path):
    with open(path) as f:
        return f.read().strip()


def root_device_name():
    """Name of the disk behind REPO, straight from /sys/dev/block."""
    st = os.stat(REPO)
    return os.path.basename(os.path.realpath(
        f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"))


@pytest.fixture
def vda():
    require(os.path.isdir("/sys/block/vda") and root_device_name() == "vda",
            f"{REPO} is not on /dev/vda")
    return "/sys/block/vda"


@pytest.fixture
def loop_device():
    """(device, backing file): a loop device over a /dev/shm file, detached after."""
    require(os.geteuid() == 0, "loop devices need root")
    require(shutil.which("losetup") is not None, "losetup is not installed")
    image = f"/dev/shm/kit-test-machine-{uuid.uuid4().hex[:8]}.img"
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    attach = subprocess.run(["losetup", "-f", "--show", image],
                            capture_output=True, text=True, timeout=10)
    if attach.returncode != 0:
        os.unlink(image)
        pytest.fail(f"losetup failed as root: {attach.stderr.strip()}")
    device = attach.stdout.strip()
    try:
        yield device, image
    finally:
        subprocess.run(["losetup", "-d", device], timeout=10)
        os.unlink(image)


# ---------------------------------------------------------------- fingerprint

def test_kernel_release_is_unames():
    fp = machine.fingerprint()
    assert fp["kernel"]["release"] == os.uname().release
    assert fp["kernel"]["arch"] == os.uname().machine
    assert fp["versions"]["kernel"] == os.uname().release


def test_memory_total_matches_proc_meminfo():
    with open("/proc/meminfo") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    assert machine.fingerprint()["memory"]["total_bytes"] == kib * 1024


def test_cpu_matches_sysfs():
    cpu = machine.fingerprint()["cpu"]
    assert cpu["count"] == os.cpu_count()
    assert cpu["online"] == sysfs("/sys/devices/system/cpu/online")
    vulnerabilities = "/sys/devices/system/cpu/vulnerabilities"
    if os.path.isdir(vulnerabilities):
        assert cpu["mitigations"] == {name: sysfs(os.path.join(vulnerabilities, name))
                                      for name in os.listdir(vulnerabilities)}
    if not os.path.exists("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"):
        assert cpu["governor"] == "none"


def test_versions_match_their_sources():
    versions = machine.fingerprint()["versions"]
    assert versions["glibc"] == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    if shutil.which("fio"):
        out = subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout
        assert versions["fio"] == out.strip().replace("fio-", "", 1)
    if shutil.which("dpkg-query"):
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "liburing2"],
                             capture_output=True, text=True)
        assert versions["liburing"] == (out.stdout or None)


def test_fingerprint_with_target_is_json_and_fast(vda):
    started = time.monotonic()
    fp = machine.fingerprint(os.path.join(REPO, "kit"))
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"fingerprint took {elapsed:.2f} s"
    assert json.loads(json.dumps(fp)) == fp
    assert fp["schema"] == "kit-machine/1"
    assert fp["name"] == machine.machine_name()
    assert fp["target"]["device"]["name"] == "vda"
    collected = datetime.datetime.fromisoformat(fp["collected_at"])
    assert collected.utcoffset() == datetime.timedelta(0)


def test_missing_sysfs_and_proc_give_none_not_exceptions(monkeypatch, tmp_path):
    monkeypatch.setattr(host, "SYSFS", str(tmp_path))
    monkeypatch.setattr(host, "PROC", str(tmp_path))
    fp = machine.fingerprint(REPO)
    assert fp["memory"]["total_bytes"] is None
    assert fp["cpu"]["mitigations"] == {}
    assert fp["target"]["filesystem"] is None and fp["target"]["device"] is None
    assert machine.describe_device(254, 0) is None
    assert host.read_text(str(tmp_path / "absent")) is None
    assert machine._run(["kit-no-such-command-anywhere"]) is None


# ---------------------------------------------------------------- targets

def test_file_on_root_resolves_to_vda(vda):
    target = machine.describe_target(os.path.join(REPO, "kit", "machine.py"))
    assert target["kind"] == "file" and target["exists"]
    assert target["filesystem"]["type"] == "ext4"
    assert target["filesystem"]["mount_point"] == "/"
    device = target["device"]
    assert device["name"] == "vda" and device["kind"] == "virtio"
    assert device["partition"] is False
    assert device["logical_block_size"] == int(sysfs(f"{vda}/queue/logical_block_size"))
    assert device["physical_block_size"] == int(sysfs(f"{vda}/queue/physical_block_size"))
    assert device["nr_requests"] == int(sysfs(f"{vda}/queue/nr_requests"))
    assert device["size_bytes"] == int(sysfs(f"{vda}/size")) * 512
    scheduler = sysfs(f"{vda}/queue/scheduler")
    assert f"[{device['scheduler']}]" in scheduler


def test_path_not_created_yet_resolves_via_parent(vda):
    wanted = os.path.join(REPO, "data", "not-yet", "result.json")
    target = machine.describe_target(wanted)
    assert target["path"] == wanted
    assert target["exists"] is False
    assert os.path.exists(target["resolved_path"])
    assert wanted.startswith(target["resolved_path"])
    assert target["device"]["name"] == "vda"
    assert target["filesystem"]["type"] == "ext4"


def test_shm_file_is_tmpfs_without_device(tmp_path):
    require(os.path.isdir("/dev/shm"), "no /dev/shm")
    path = f"/dev/shm/kit-test-machine-{uuid.uuid4().hex[:8]}"
    open(path, "w").close()
    try:
        target = machine.describe_target(path)
    finally:
        os.unlink(path)
    st_dev = os.stat("/dev/shm").st_dev
    assert target["dev"] == f"{os.major(st_dev)}:{os.minor(st_dev)}"
    assert target["filesystem"]["type"] == "tmpfs"
    assert target["filesystem"]["mount_point"] == "/dev/shm"
    assert target["device"] is None


def test_loop_device_reports_backing_file(loop_device):
    device_path, image = loop_device
    name = os.path.basename(device_path)
    target = machine.describe_target(device_path)
    assert target["kind"] == "block"
    assert target["filesystem"] is None  # attached, not mounted
    device = target["device"]
    assert device["name"] == name and device["kind"] == "loop"
    assert device["backing_file"] == image
    rdev = os.stat(device_path).st_rdev
    assert (device["major"], device["minor"]) == (os.major(rdev), os.minor(rdev))
    queue = f"/sys/block/{name}/queue"
    assert device["logical_block_size"] == int(sysfs(f"{queue}/logical_block_size"))
    assert f"[{device['scheduler']}]" in sysfs(f"{queue}/scheduler")
    assert device["size_bytes"] == 8 << 20


def test_symlink_to_loop_device_resolves_to_it(loop_device, tmp_path):
    device_path, image = loop_device
    link = tmp_path / "by-id-like-link"
    link.symlink_to(device_path)
    via_link = machine.describe_target(link)
    assert via_link["path"] == str(link)
    assert via_link["resolved_path"] == device_path
    assert via_link["device"] == machine.describe_target(device_path)["device"]
    assert via_link["device"]["backing_file"] == image


def test_mountinfo_optional_fields_and_escapes():
    line = ("36 35 98:0 / /mnt/my\\040disk rw,noatime master:1 shared:7 - ext3 "
            "/dev/root rw,errors=continue")
    (mount,) = host.parse_mountinfo(line)
    assert mount == {"dev": "98:0", "type": "ext3", "mount_point": "/mnt/my disk",
                     "source": "/dev/root", "options": "rw,noatime",
                     "super_options": "rw,errors=continue"}


def test_partition_and_dm_from_fake_sysfs(monkeypatch, tmp_path):
    """This kernel has neither partition tables nor device-mapper, so the
    partition -> parent queue and dm paths are checked on a fake /sys."""
    def write(rel, text):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")

    disk = "devices/pci0000:00/0000:00:02.0/virtio1/block/vda"
    write(f"{disk}/queue/scheduler", "none [kyber] bfq")
    write(f"{disk}/queue/logical_block_size", "4096")
    write(f"{disk}/queue/io_poll_delay", "-1")
    write(f"{disk}/mq/0/cpu_list", "0")
    write(f"{disk}/mq/1/cpu_list", "1")
    write(f"{disk}/vda1/partition", "1")
    write(f"{disk}/vda1/size", "2048")
    write(f"{disk}/vda1/holders/dm-0", "")
    write("bus/virtio/drivers/virtio_blk/bind", "")
    virtio = tmp_path / "devices/pci0000:00/0000:00:02.0/virtio1"
    os.symlink(tmp_path / "bus/virtio/drivers/virtio_blk", virtio / "driver")
    os.symlink(virtio, tmp_path / f"{disk}/device")
    write("devices/virtual/block/dm-0/dm/name", "vg-data")
    write("devices/virtual/block/dm-0/slaves/vda1", "")
    write("devices/virtual/block/dm-0/queue/scheduler", "none")
    (tmp_path / "dev/block").mkdir(parents=True)
    os.symlink(f"../../{disk}/vda1", tmp_path / "dev/block/254:1")
    os.symlink("../../devices/virtual/block/dm-0", tmp_path / "dev/block/253:0")
    monkeypatch.setattr(host, "SYSFS", str(tmp_path))

    part = machine.describe_device(254, 1)
    assert part["name"] == "vda1" and part["partition"] is True and part["disk"] == "vda"
    assert part["scheduler"] == "kyber"  # from the parent disk's queue/
    assert part["logical_block_size"] == 4096 and part["io_poll_delay"] == -1
    assert part["nr_hw_queues"] == 2
    assert part["kind"] == "virtio" and part["driver"] == "virtio_blk"
    assert part["size_bytes"] == 2048 * 512
    assert part["holders"] == ["dm-0"]

    dm = machine.describe_device(253, 0)
    assert dm["kind"] == "dm" and dm["partition"] is False
    assert dm["dm"]["name"] == "vg-data" and dm["dm"]["slaves"] == ["vda1"]
    assert dm["scheduler"] == "none" and dm["nr_hw_queues"] is None


# ---------------------------------------------------------------- names

def test_machine_name_rejects_unsafe_override(monkeypatch):
    monkeypatch.setenv("KIT_MACHINE", "bad name!")
    with pytest.raises(ValueError, match="KIT_MACHINE"):
        machine.machine_name()
    with pytest.raises(ValueError):
        machine.fingerprint()
    monkeypatch.setenv("KIT_MACHINE", "..")
    with pytest.raises(ValueError):
        machine.machine_name()


def test_machine_name_accepts_safe_override(monkeypatch):
    monkeypatch.setenv("KIT_MACHINE", "lab-1")
    assert machine.machine_name() == "lab-1"
    assert machine.fingerprint()["name"] == "lab-1"


def test_machine_name_from_hostname_is_safe_and_stable(monkeypatch):
    monkeypatch.delenv("KIT_MACHINE", raising=False)
    assert machine.machine_name({"hostname": "Lab Box/01.example"}) == "lab-box-01.example"
    name = machine.machine_name()
    assert name == machine.machine_name()
    assert machine.MACHINE_NAME_RE.fullmatch(name)
    assert name == machine.machine_name({"hostname": os.uname().nodename})
