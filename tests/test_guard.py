"""kit writes only to what it created, unless told; never to a device in use."""
import hashlib
import os

import pytest

import kit
from conftest import run_kit
from kit import OptionError


def _digest(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def test_unowned_file_is_not_written_without_permission(tmp_path):
    victim = tmp_path / "precious.dat"
    victim.write_bytes(os.urandom(1 << 20))
    before = _digest(victim), victim.stat().st_mtime_ns
    p = run_kit("run", "--rw=write", f"--filename={victim}", "--size=1M", cwd=tmp_path)
    assert p.returncode == 2
    assert "was not created by kit" in p.stderr and "--allow-destructive" in p.stderr
    assert (_digest(victim), victim.stat().st_mtime_ns) == before
    # reading it is fine, and leaves it alone
    p = run_kit("run", "--rw=randread", f"--filename={victim}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert _digest(victim) == before[0]
    # with permission, it is written
    p = run_kit("run", "--rw=write", f"--filename={victim}", "--size=1M", "--allow-destructive",
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert _digest(victim) != before[0]


def test_kits_own_files_are_writable_and_a_replaced_file_is_not(scratch):
    kit.run(kit.Job(rw="write", size="1m", directory=scratch), progress=False, machine=False)
    path = os.path.join(scratch, "kit.0.0")
    # someone replaces kit's file with their own: same name, other inode
    os.unlink(path)
    with open(path, "wb") as fh:
        fh.write(b"x" * (1 << 20))
    with pytest.raises(OptionError, match="not created by kit"):
        kit.run(kit.Job(rw="write", size="1m", directory=scratch), progress=False, machine=False)


def test_symlink_to_a_kit_file_is_not_trusted(scratch, tmp_path):
    kit.run(kit.Job(rw="read", size="1m", directory=scratch), progress=False, machine=False)
    link = tmp_path / "alias"
    link.symlink_to(os.path.join(scratch, "kit.0.0"))
    with pytest.raises(OptionError, match="not created by kit"):
        kit.run(kit.Job(rw="write", filename=str(link)), progress=False, machine=False)


def test_block_device_needs_permission(loopdev):
    with pytest.raises(OptionError, match="block device.*--allow-destructive"):
        kit.run(kit.Job(rw="write", filename=loopdev, size="1m"), progress=False, machine=False)
    r = kit.run(kit.Job(rw="randwrite", filename=loopdev, size="1m", direct=True, allow_destructive=True,
                        ioengine="libaio", iodepth=4), progress=False, machine=False)
    assert r.total["write"]["io_bytes"] == 1 << 20
    # reads need no permission and the device's size is found
    r = kit.run(kit.Job(rw="randread", filename=loopdev, direct=True, number_ios=100), progress=False,
                machine=False)
    assert r.ios == 100 and r.data["targets"][0]["size"] == 64 << 20


def test_mounted_device_is_refused_even_with_permission(mounted_loopdev):
    dev, mnt = mounted_loopdev
    p = run_kit("run", "--rw=write", f"--filename={dev}", "--size=1M", "--allow-destructive")
    assert p.returncode == 2
    assert "is mounted on" in p.stderr and mnt in p.stderr
    # a symlink to it resolves to the same device
    alias = os.path.join(mnt + "-alias")
    os.symlink(dev, alias)
    try:
        p = run_kit("run", "--rw=write", f"--filename={alias}", "--size=1M", "--allow-destructive")
        assert p.returncode == 2 and "is mounted on" in p.stderr
    finally:
        os.unlink(alias)
