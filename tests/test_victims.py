"""The victims suite: every way kit was once made to write what it did not
own, with a victim -- a file, a mounted filesystem, a device -- whose bytes
and mtime must come out unchanged. Each case names the path it attacks."""
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import uuid

import pytest

import kit
from conftest import KIT, require, run_kit
from kit import OptionError, RunError


class Victim:
    """A file whose content and times are recorded, to be found unchanged."""

    def __init__(self, path, size=1 << 20):
        self.path = str(path)
        if not os.path.exists(self.path):
            with open(self.path, "wb") as fh:
                fh.write(os.urandom(size))
        self.before = self.state()

    def state(self):
        st = os.stat(self.path)
        with open(self.path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        return digest, st.st_mtime_ns, st.st_size

    def unchanged(self):
        return self.state() == self.before


# inode tables and journal zeroed by mkfs, not later by ext4lazyinit, whose
# writes to the image would change its mtime while a test watches it
EXT4_NOW = ["-E", "lazy_itable_init=0,lazy_journal_init=0"]


def _losetup(backing):
    return subprocess.run(["losetup", "-f", "--show", backing], capture_output=True, text=True,
                          check=True).stdout.strip()


def _detach(dev):
    subprocess.run(["losetup", "-d", dev], capture_output=True)


def _attached_image(image, megabytes):
    """A new sparse image on a loop device, and an empty mount point beside
    it: (image, device, mount point)."""
    with open(image, "wb") as fh:
        fh.truncate(megabytes << 20)
    mnt = image.parent / f"{image.name}.mnt"
    mnt.mkdir()
    return image, _losetup(str(image)), mnt


def _device_digest(dev, nbytes=4 << 20):
    with open(dev, "rb") as fh:
        return hashlib.sha256(fh.read(nbytes)).hexdigest()


def _refused(p, *words):
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


# ---- 1. fio's job file means exactly what kit checked ---------------------

@pytest.mark.parametrize("name, fio_would_write", [
    ("own\nfilename=victim", "victim"),      # a newline would add an option
    ("$ncpus", str(os.cpu_count())),           # fio would substitute it
    ("a\\:b", None),                           # fio's escape: one file named a:b, as kit reads it too
])
def test_fio_runner_writes_only_the_file_kit_checked(tmp_path, name, fio_would_write):
    require(shutil.which("fio") is not None, "fio is not installed")
    victims = [Victim(tmp_path / "victim"), Victim(tmp_path / str(os.cpu_count()))]
    p = run_kit("run", "--runner=fio", "--rw=write", "--size=1m", f"--filename={name}", cwd=tmp_path)
    if name == "a\\:b":
        assert p.returncode == 0, p.stderr
        assert os.path.getsize(tmp_path / "a:b") == 1 << 20          # the colon is part of the name
    else:
        assert p.returncode == 0, p.stderr
        assert os.path.getsize(tmp_path / name) == 1 << 20           # the literal name, nothing else
    assert all(v.unchanged() for v in victims)
    # and a colon-named file kit did not create is refused like any other
    own = Victim(tmp_path / "x:y")
    _refused(run_kit("run", "--runner=fio", "--rw=write", "--size=1m", "--filename=x\\:y", cwd=tmp_path),
             "was not created by kit")
    assert own.unchanged()


def test_fio_job_file_export_refuses_what_fio_would_reread(tmp_path):
    from kit.fio import to_fio_file
    for job in (kit.Job(filename="a;b"), kit.Job(filename="$ncpus"), kit.Job(directory="/tmp/x#y"),
                kit.Job(filename=" lead")):
        with pytest.raises(OptionError, match="cannot be written to a fio job file"):
            to_fio_file(job)
    with pytest.raises(OptionError, match="has a ':'"):      # fio's directory list: refused as the job is made
        kit.Job(directory="a:b")


# ---- 2. time of check, time of use -----------------------------------------

def _swap_during_prefill(directory, victim, runner):
    """kit.0.0 exists and is kit's; kit.0.1 must be filled (512 MiB: the
    job reads too, so it is laid out with data). While it fills, a victim
    is renamed over kit.0.0."""
    kit.run(kit.Job(rw="read", size="1m", directory=directory), progress=False, machine=False)
    args = ["run", "--rw=rw", "--nrfiles=2", "--filesize=512m", "--number_ios=64", "--bs=64k",
            f"--directory={directory}", f"--runner={runner}", "--output-format=json"]
    proc = subprocess.Popen([KIT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = os.path.join(directory, "kit.0.1")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not os.path.exists(second) or os.path.getsize(second) < 8 << 20):
        time.sleep(0.005)
    assert os.path.getsize(second) < 512 << 20, "the fill ended before the swap: make it bigger"
    os.rename(victim.path, os.path.join(directory, "kit.0.0"))
    victim.path = os.path.join(directory, "kit.0.0")
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@pytest.mark.parametrize("runner", ["kit", "fio"])
def test_file_swapped_in_after_the_check_is_not_written(scratch, tmp_path, runner):
    if runner == "fio":
        require(shutil.which("fio") is not None, "fio is not installed")
    victim = Victim(tmp_path / "precious", size=1 << 20)
    code, out, err = _swap_during_prefill(scratch, victim, runner)
    assert code == 0, err
    assert victim.unchanged()
    import json
    notes = json.loads(out)["notes"]
    assert any("kit.0.0 was replaced during the run; kit used the file it had checked" in n for n in notes), notes
    # the swapped-in file is not kit's: the next write run refuses it
    _refused(run_kit("run", "--rw=write", "--size=1m", f"--directory={scratch}"), "was not created by kit")
    assert victim.unchanged()


def test_file_swapped_between_plan_and_open_is_refused(scratch, tmp_path, monkeypatch):
    """The swap lands after kit planned, before it opened: the descriptor's
    inode and birth time are not the manifest's, and nothing is written."""
    from kit import target
    kit.run(kit.Job(rw="read", size="1m", directory=scratch), progress=False, machine=False)
    victim = Victim(tmp_path / "precious")
    real_open_all = target._open_all

    def swap_then_open(prepared, plans):
        os.rename(victim.path, os.path.join(scratch, "kit.0.0"))
        victim.path = os.path.join(scratch, "kit.0.0")
        return real_open_all(prepared, plans)
    monkeypatch.setattr(target, "_open_all", swap_then_open)
    with pytest.raises(RunError, match="changed since kit checked it"):
        kit.run(kit.Job(rw="write", size="1m", directory=scratch), progress=False, machine=False)
    assert victim.unchanged()


def test_directory_swapped_for_a_link_is_refused(tmp_path, monkeypatch):
    from kit import target
    scratch = tmp_path / "scratch"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real_open_all = target._open_all

    def swap_then_open(prepared, plans):
        os.symlink(elsewhere, scratch)      # kit planned to create scratch itself
        return real_open_all(prepared, plans)
    monkeypatch.setattr(target, "_open_all", swap_then_open)
    with pytest.raises(RunError):
        kit.run(kit.Job(rw="write", size="1m", directory=str(scratch)), progress=False, machine=False)
    assert os.listdir(elsewhere) == []


# ---- 3. loop devices whose image cannot be read back from sysfs ------------

@contextlib.contextmanager
def _mounted(image):
    """The file `image` on a loop device, formatted ext4 and mounted, with a
    victim file inside; yields (loop device, victim)."""
    require(os.geteuid() == 0, "loop devices need root")
    dev = _losetup(image)
    mnt = f"/dev/shm/kit-victim-mnt-{uuid.uuid4().hex[:8]}"
    os.mkdir(mnt)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", *EXT4_NOW, dev], check=True, capture_output=True)
        subprocess.run(["mount", dev, mnt], check=True, capture_output=True)
        victim = Victim(os.path.join(mnt, "data"), size=256 << 10)
        subprocess.run(["sync"], check=True)
        yield dev, victim
    finally:
        subprocess.run(["umount", mnt], capture_output=True)
        os.rmdir(mnt)
        _detach(dev)


@contextlib.contextmanager
def _mounted_image(name):
    """A new 64 MiB image in /dev/shm named `name`, mounted (see _mounted);
    yields (image path, loop device, victim)."""
    image = f"/dev/shm/{name}"
    with open(image, "wb") as fh:
        fh.truncate(64 << 20)
    try:
        with _mounted(image) as (dev, victim):
            yield image, dev, victim
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(image)


@pytest.mark.parametrize("image_name, how", [
    (f"kit-img-{uuid.uuid4().hex[:6]}", "deleted"),
    (f"kit-img-{uuid.uuid4().hex[:6]} ", "trailing space"),
    (f"kit-img-{uuid.uuid4().hex[:6]}", "plain"),
])
def test_second_loop_over_a_mounted_image_is_refused(image_name, how):
    with _mounted_image(image_name) as (image, dev, victim):
        twin = _losetup(image)
        try:
            if how == "deleted":
                os.unlink(image)            # sysfs now says "... (deleted)"
            before = _device_digest(twin)
            p = run_kit("run", "--rw=write", f"--filename={twin}", "--size=1M", "--allow-destructive")
            _refused(p, f"{twin} shares its image with {dev}", "is mounted on")
            assert _device_digest(twin) == before
            assert victim.unchanged()
        finally:
            _detach(twin)


def test_image_of_a_mounted_loop_device_is_not_written(tmp_path):
    with _mounted_image(f"kit-img-{uuid.uuid4().hex[:6]}") as (image, dev, victim):
        link = f"{image}.hardlink"
        os.link(image, link)
        try:
            for path in (image, link):
                st = os.stat(image)
                before = (_device_digest(path), st.st_mtime_ns)
                p = run_kit("run", "--rw=write", f"--filename={path}", "--size=1M", "--allow-destructive")
                _refused(p, f"it is the image of {dev}", "is mounted on")
                assert (_device_digest(path), os.stat(image).st_mtime_ns) == before
            assert victim.unchanged()
        finally:
            os.unlink(link)


def test_kits_own_file_attached_and_mounted_is_not_filled_or_written(tmp_path):
    scratch = str(tmp_path / "scratch")
    kit.run(kit.Job(rw="write", size="64m", directory=scratch), progress=False, machine=False)
    with _mounted(os.path.join(scratch, "kit.0.0")) as (dev, victim):
        for args in (["--rw=write"], ["--rw=read", "--verify=crc32c"]):      # a write, and a refill
            p = run_kit("run", *args, "--size=64m", f"--directory={scratch}")
            _refused(p, f"it is the image of {dev}", "is mounted on")
        assert victim.unchanged()


# ---- 4. paths that lead outside ---------------------------------------------

def test_dangling_symlink_given_as_filename(tmp_path):
    target = tmp_path / "elsewhere" / "created"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(target)
    p = run_kit("run", "--rw=write", "--size=1m", "--filename=link", cwd=tmp_path)
    _refused(p, "is a symbolic link to", "which does not exist")
    assert not target.exists()


def test_links_inside_kits_directory(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    dangling = tmp_path / "made-elsewhere"
    (scratch / "kit.0.0").symlink_to(dangling)
    _refused(run_kit("run", "--rw=read", "--size=1m", f"--directory={scratch}"), "is a symbolic link")
    assert not dangling.exists()
    # a link to a victim, or a hard link of one, is not kit's either
    victim = Victim(tmp_path / "precious")
    (scratch / "kit.0.0").unlink()
    (scratch / "kit.0.0").symlink_to(victim.path)
    _refused(run_kit("run", "--rw=write", "--size=1m", f"--directory={scratch}"), "is a symbolic link")
    (scratch / "kit.0.0").unlink()
    os.link(victim.path, scratch / "kit.0.0")
    for rw in ("write", "read"):
        _refused(run_kit("run", f"--rw={rw}", "--size=1m", f"--directory={scratch}"), "was not created by kit")
    assert victim.unchanged()


def test_a_hard_link_to_kits_file_stops_kit_writing_it(scratch, tmp_path):
    kit.run(kit.Job(rw="write", size="1m", directory=scratch), progress=False, machine=False)
    os.link(os.path.join(scratch, "kit.0.0"), tmp_path / "someone-elses-name")
    victim = Victim(tmp_path / "someone-elses-name")
    _refused(run_kit("run", "--rw=write", "--size=1m", f"--directory={scratch}"), "2 hard links")
    assert victim.unchanged()


@pytest.mark.parametrize("args, words", [
    (["--name=../esc"], "--name: must be a name"),
    (["--name=a/b"], "--name: must be a name"),
    (["--filename_format=../$jobname"], "--filename_format"),
    (["--filename=/dev/kit-no-such-device-p2"], "devtmpfs"),
    (["--directory=/proc/kit"], "proc"),
    (["--directory=/sys/kernel/kit"], "sysfs"),
])
def test_paths_outside_are_refused(tmp_path, args, words):
    before = set(os.listdir("/dev"))
    p = run_kit("run", "--rw=write", "--size=1m", *args, cwd=tmp_path)
    _refused(p, words)
    assert os.listdir(tmp_path) == []
    assert set(os.listdir("/dev")) == before


def test_job_file_section_with_a_slash(tmp_path):
    (tmp_path / "j.fio").write_text("[a/b]\nrw=write\nsize=1m\n")
    _refused(run_kit("run", "j.fio", cwd=tmp_path), "[a/b]", "name: must be a name")
    assert os.listdir(tmp_path) == ["j.fio"]


# ---- --output: through what the user named, never into a device ------------

def test_output_goes_through_links_pipes_and_stdout(scratch, tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    (tmp_path / "link.json").symlink_to(real)
    p = run_kit("run", "--rw=read", "--size=1m", "--output-format=json", f"--output={tmp_path / 'link.json'}",
                f"--directory={scratch}")
    assert p.returncode == 0, p.stderr
    assert os.path.islink(tmp_path / "link.json") and real.read_text().startswith("{")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = {}
    reader = threading.Thread(target=lambda: got.setdefault("text", open(fifo).read()))
    reader.start()
    p = run_kit("run", "--rw=read", "--size=1m", "--output-format=json", f"--output={fifo}",
                f"--directory={scratch}")
    reader.join(10)
    assert p.returncode == 0, p.stderr
    assert got["text"].startswith("{") and os.path.exists(fifo) and not os.path.isfile(fifo)
    p = run_kit("run", "--rw=read", "--size=1m", "--output-format=json", "--output=/dev/stdout",
                f"--directory={scratch}")
    assert p.returncode == 0 and p.stdout.startswith("{"), p.stderr
    assert os.path.exists("/dev/stdout")


def test_output_into_a_device_or_proc_is_refused(tmp_path, loopdev):
    before = _device_digest(loopdev)
    for target, words in ((loopdev, "is a device"), ("/proc/kit-out.json", "proc"),
                          ("/sys/kernel/kit.json", "sysfs")):
        p = run_kit("run", "--rw=read", "--size=1m", "--output-format=json", f"--output={target}", cwd=tmp_path)
        _refused(p, "--output", words)
        assert os.listdir(tmp_path) == []
    assert _device_digest(loopdev) == before


# ---- 5. two kits on one directory -------------------------------------------

def test_a_verifier_waits_for_a_writer_and_finds_the_pattern(scratch):
    kit.run(kit.Job(rw="write", size="16m", verify="crc32c", directory=scratch), progress=False, machine=False)
    writer = subprocess.Popen([KIT, "run", "--rw=randwrite", "--size=16m", "--runtime=2", "--time_based",
                               f"--directory={scratch}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    time.sleep(0.7)
    start = time.monotonic()
    p = run_kit("run", "--rw=randread", "--size=16m", "--verify=crc32c", f"--directory={scratch}")
    waited = time.monotonic() - start
    writer.communicate(timeout=30)
    assert writer.returncode == 0
    assert p.returncode == 0, p.stderr              # it waited, then refilled what the writer left
    assert "waiting for another kit process" in p.stderr and waited > 0.8
    from kit.target import read_manifest
    assert read_manifest(scratch)["kit.0.0"]["pattern"] == "intact"
    for _ in range(2):                              # and later verify runs keep passing
        assert run_kit("run", "--rw=randread", "--size=16m", "--verify=crc32c",
                       f"--directory={scratch}").returncode == 0


def test_a_kit_file_changed_by_another_program_is_refilled_not_blamed(scratch):
    kit.run(kit.Job(rw="read", size="1m", directory=scratch), progress=False, machine=False)
    with open(os.path.join(scratch, "kit.0.0"), "r+b") as fh:
        fh.seek(300_000)
        fh.write(b"\xff")
    r = kit.run(kit.Job(rw="randread", size="1m", verify="crc32c", directory=scratch), progress=False,
                machine=False)
    assert r.data["error"] is None and r.total["kit"]["verified_bytes"] == 1 << 20


def test_loops_stacked_on_a_mounted_loop_are_followed(tmp_path):
    """kit's own file -> loop A -> loop B, B formatted and mounted: neither
    the file (no --allow-destructive needed: it is kit's) nor A may be written."""
    require(os.geteuid() == 0, "loop devices need root")
    scratch = str(tmp_path / "scratch")
    kit.run(kit.Job(rw="write", size="32m", directory=scratch), progress=False, machine=False)
    image = os.path.join(scratch, "kit.0.0")
    lower = _losetup(image)
    try:
        with _mounted(lower) as (upper, victim):
            for args in (["--rw=write", "--size=32m", f"--directory={scratch}"],
                         ["--rw=write", "--size=1m", f"--filename={image}", "--allow-destructive"],
                         ["--rw=write", "--size=1m", f"--filename={lower}", "--allow-destructive"]):
                p = run_kit("run", *args)
                _refused(p, f"{upper} is a loop device over {lower}", "is mounted on")
            assert victim.unchanged()
    finally:
        _detach(lower)


def test_a_loop_mounted_in_another_mount_namespace_counts_as_in_use(tmp_path):
    """Not in this namespace's mountinfo: the kernel's claim on the device
    still says it is in use."""
    require(os.geteuid() == 0 and shutil.which("unshare") is not None, "unshare needs root")
    image, dev, mnt = _attached_image(tmp_path / "img", 32)
    holder = None
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", *EXT4_NOW, dev], check=True, capture_output=True)
        holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                   f"mount {dev} {mnt} && echo mounted && sleep 60"], stdout=subprocess.PIPE,
                                  text=True)
        assert holder.stdout.readline().strip() == "mounted"
        before = _device_digest(str(image))
        p = run_kit("run", "--rw=write", "--size=1m", f"--filename={image}", "--allow-destructive")
        _refused(p, f"it is the image of {dev}", "the kernel refuses an exclusive open")
        assert _device_digest(str(image)) == before
    finally:
        if holder:
            holder.kill()
            holder.wait()
        _detach(dev)


def test_inode_reused_on_a_filesystem_without_birth_times(tmp_path):
    """ext4 with 128-byte inodes keeps no birth time, and reuses a freed inode
    at once: the inode generation tells kit's file from the one copied in."""
    require(os.geteuid() == 0, "loop devices need root")
    image, dev, mnt = _attached_image(tmp_path / "small-inodes.img", 64)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", *EXT4_NOW, "-I", "128", dev], check=True, capture_output=True)
        subprocess.run(["mount", dev, str(mnt)], check=True, capture_output=True)
        scratch = str(mnt / "kit-scratch")
        assert run_kit("run", "--rw=write", "--size=1m", f"--directory={scratch}").returncode == 0
        from kit.target import read_manifest
        assert read_manifest(scratch)["kit.0.0"]["birth_ns"] is None      # really no birth time here
        path = os.path.join(scratch, "kit.0.0")
        inode = os.stat(path).st_ino
        os.unlink(path)
        victim = Victim(tmp_path / "important")
        shutil.copyfile(victim.path, path)
        assert os.stat(path).st_ino == inode                                # the same inode number
        victim.path = path
        victim.before = victim.state()
        _refused(run_kit("run", "--rw=write", "--size=1m", f"--directory={scratch}"), "was not created by kit")
        assert victim.unchanged()
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        _detach(dev)


def test_without_birth_time_generation_or_xattrs_the_recorded_ctime_decides(scratch, tmp_path, monkeypatch):
    """A filesystem that keeps neither, nor extended attributes (none on
    this machine: simulated by hiding all three): kit records the ctime after
    each of its own runs, so its file stays its own, and a file that took
    over the inode does not."""
    from kit import target
    real = target._identity_of_fd
    monkeypatch.setattr(target, "_identity_of_fd",
                        lambda fd, st: {**real(fd, st), "birth_ns": None, "generation": None, "token": None})
    for rw in ("write", "randwrite", "read"):
        kit.run(kit.Job(rw=rw, size="1m", directory=scratch), progress=False, machine=False)
    path = os.path.join(scratch, "kit.0.0")
    with open(path, "r+b") as fh:              # someone else writes into it in place
        fh.write(b"not kit's")
    victim = Victim(path)
    with pytest.raises(OptionError, match="was not created by kit"):
        kit.run(kit.Job(rw="write", size="1m", directory=scratch), progress=False, machine=False)
    assert victim.unchanged()


def test_a_filesystem_mounted_straight_from_a_file(tmp_path):
    """EROFS mounts an image file with no loop device between: the image, and
    a loop device over it, are refused (mountinfo names the file)."""
    require(os.geteuid() == 0 and shutil.which("mkfs.erofs") is not None, "mkfs.erofs (erofs-utils) and root")
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    mnt.mkdir()
    (src / "data").write_bytes(os.urandom(8192))
    image = str(tmp_path / "erofs.img")
    subprocess.run(["mkfs.erofs", "--quiet", image, str(src)], check=True, capture_output=True)
    _mount_file(image, str(mnt), "erofs")
    try:
        before = _device_digest(image, 1 << 20)
        p = run_kit("run", "--rw=write", "--size=4k", f"--filename={image}", "--allow-destructive")
        _refused(p, f"a filesystem is mounted from it on {mnt}")
        loop = _losetup(image)
        try:
            p = run_kit("run", "--rw=write", "--size=4k", f"--filename={loop}", "--allow-destructive")
            _refused(p, f"{loop} is a loop device over an image, and a filesystem is mounted from it")
        finally:
            _detach(loop)
        assert _device_digest(image, 1 << 20) == before
        assert (mnt / "data").read_bytes() == (src / "data").read_bytes()
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def _mount_file(source, target, fstype):
    """fsopen/fsconfig/fsmount: mounts a filesystem from a regular file
    without a loop device (mount(8) would make one)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)

    def call(number, *args):
        r = libc.syscall(number, *args)
        if r < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return r
    fs = call(430, fstype.encode(), 1)                              # fsopen, FSOPEN_CLOEXEC
    call(431, fs, 1, b"source", source.encode(), 0)                 # fsconfig SET_STRING
    call(431, fs, 6, None, None, 0)                                 # fsconfig CMD_CREATE
    mount = call(432, fs, 1, 0)                                     # fsmount
    call(429, mount, b"", -100, target.encode(), 4)                 # move_mount F_EMPTY_PATH
    os.close(mount)
    os.close(fs)


def test_overlayfs_names_of_one_image(tmp_path):
    """Through overlayfs a file has another device and inode than its upper
    layer's file, which is what the kernel writes: a loop device on either
    name guards both."""
    require(os.geteuid() == 0, "overlay mounts need root")
    for d in ("lower", "upper", "work", "merged"):
        (tmp_path / d).mkdir()
    merged, upper = tmp_path / "merged", tmp_path / "upper"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={tmp_path / 'lower'},upperdir={upper},workdir={tmp_path / 'work'}", str(merged)],
                   check=True)
    try:
        for attach, write in ((upper / "a.img", merged / "a.img"), (merged / "b.img", upper / "b.img")):
            with open(attach, "wb") as fh:
                fh.truncate(32 << 20)
            with _mounted(str(attach)) as (dev, victim):
                before = _device_digest(str(write))
                p = run_kit("run", "--rw=write", "--size=1m", f"--filename={write}", "--allow-destructive")
                _refused(p, f"it is the image of {dev}", "is mounted on")
                assert _device_digest(str(write)) == before and victim.unchanged()
        # kit's own file in the overlay, attached through the upper name and mounted
        kit.run(kit.Job(rw="write", size="32m", directory=str(merged / "ks")), progress=False, machine=False)
        with _mounted(str(upper / "ks" / "kit.0.0")) as (dev, victim):
            _refused(run_kit("run", "--rw=randwrite", "--size=32m", f"--directory={merged / 'ks'}"),
                     f"it is the image of {dev}")
            assert victim.unchanged()
        # a file put where kit's was, in the overlay: not kit's (its token is gone)
        path = merged / "ks" / "kit.0.0"
        os.unlink(path)
        victim = Victim(path, size=64 << 10)
        _refused(run_kit("run", "--rw=write", "--size=64k", f"--directory={merged / 'ks'}"), "not created by kit")
        assert victim.unchanged()
    finally:
        subprocess.run(["umount", str(merged)], capture_output=True)


def test_a_loop_device_without_a_node_in_kits_dev(tmp_path):
    """In a container-like mount namespace whose /dev has no loop nodes, the
    image of a loop device mounted outside is still refused: kit makes a
    private node to ask the kernel, or refuses when it cannot."""
    require(os.geteuid() == 0 and shutil.which("unshare") is not None, "unshare needs root")
    image = tmp_path / "img"
    with open(image, "wb") as fh:
        fh.truncate(32 << 20)
    with _mounted(str(image)) as (dev, victim):
        before = _device_digest(str(image))
        script = (f"mount -t tmpfs none /dev && mknod -m 666 /dev/null c 1 3 && "
                  f"{KIT} run --rw=write --size=1m --filename={image} --allow-destructive")
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, text=True, timeout=120)
        _refused(p, "refusing to write")
        assert _device_digest(str(image)) == before and victim.unchanged()


# ---- 6. records anyone can write, places swapped while kit works -------------

def _forge_manifest(directory, name):
    """A manifest calling the file `name` (not kit's) kit's, with every field
    that can be read off the file itself: inode, birth time, generation, ctime."""
    from kit.target import MANIFEST, MANIFEST_SCHEMA, _identity_of_fd
    fd = os.open(os.path.join(directory, name), os.O_RDONLY)
    try:
        st = os.fstat(fd)
        entry = {**_identity_of_fd(fd, st), "token": None, "size": st.st_size, "pattern": "intact",
                 "ctime_ns": st.st_ctime_ns}
    finally:
        os.close(fd)
    with open(os.path.join(directory, MANIFEST), "w") as fh:
        json.dump({"schema": MANIFEST_SCHEMA, "files": {name: entry}}, fh)


def test_a_forged_manifest_does_not_make_a_file_kits(tmp_path):
    """Only kit's token cannot be read off a file: where the filesystem
    keeps tokens, a file without one is not kit's, whatever a manifest says."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.kit.probe", b"1")
    except OSError:
        require(False, "tmp_path's filesystem keeps no extended attributes")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    victim = Victim(scratch / "kit.0.0", size=256 << 10)
    _forge_manifest(str(scratch), "kit.0.0")
    for args in (["--rw=write", f"--directory={scratch}"], ["--rw=read", "--verify=crc32c", f"--directory={scratch}"],
                 ["--rw=write", f"--filename={victim.path}"]):
        _refused(run_kit("run", "--size=256k", *args), "was not created by kit")
    assert victim.unchanged()


def test_a_fifo_where_the_manifest_goes_is_refused_not_waited_on(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    os.mkfifo(scratch / ".kit-files.json")
    _refused(run_kit("run", "--rw=read", "--size=64k", f"--directory={scratch}", timeout=60),
             "kit's manifest is damaged", "not a regular file")
    assert os.listdir(scratch) == [".kit-files.json"]


def test_store_folders_swapped_for_links_are_not_written_through(tmp_path):
    """A store folder kit checked before measuring and someone replaced with
    a link while it measured: the save is refused, nothing lands there."""
    from kit import store
    data = str(tmp_path / "data")
    result = kit.run(kit.Job(ioengine="null", rw="read", size="64k"), progress=False)
    path = store.save(result, "engines", "direct-null-r1", data=data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    theirs = Victim(elsewhere / os.path.basename(path), size=100)
    suite, machine = os.path.dirname(path), os.path.dirname(os.path.dirname(path))
    os.rename(suite, f"{suite}.kit")
    os.symlink(elsewhere, suite)
    for replace in (True, False):
        with pytest.raises(RunError, match=f"{suite} is not a folder kit made"):
            store.save(result, "engines", "direct-null-r1" if replace else "direct-null-r2", data=data,
                       replace=replace)
    os.unlink(suite)
    os.rename(machine, f"{machine}.kit")
    shutil.copy(os.path.join(f"{machine}.kit", "machine.json"), elsewhere)
    os.symlink(elsewhere, machine)
    with pytest.raises(RunError, match=f"{machine} is not a folder kit made"):
        store.save(result, "engines", "direct-null-r1", data=data)
    assert sorted(os.listdir(elsewhere)) == sorted([os.path.basename(path), "machine.json"]) and theirs.unchanged()


@pytest.mark.parametrize("suite, folder", [("network", "network"), ("sweep", "sweep-engines-quick"),
                                           ("machine", None)])
def test_report_checks_every_store_folder_it_will_write(tmp_path, suite, folder):
    """Before measuring: the network and sweep suites' folders too, and a
    machine's folder holding someone's files (kit writes machine.json first)."""
    from kit.machine import machine_name
    mine = tmp_path / "data" / machine_name()
    mine.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    theirs = Victim(elsewhere / "threads-tcp-c1-r1.json", size=100)
    if folder:
        (mine / folder).symlink_to(elsewhere)
    else:
        os.rename(theirs.path, mine / "notes.json")
        theirs.path = str(mine / "notes.json")
    p = run_kit("report", "--quick", f"--suites={suite}", f"--directory={tmp_path / 's'}", cwd=tmp_path)
    _refused(p, "--data", "is not a folder kit made")
    assert theirs.unchanged() and not (tmp_path / "reports").exists() and not (tmp_path / "s").exists()
    assert sorted(os.listdir(mine)) == [folder or "notes.json"]


def test_output_swapped_while_kit_runs_is_not_written(tmp_path):
    """--output is checked before the run and written after it: a link or a
    file put at its name meanwhile is left alone (one line, exit 1)."""
    from kit.files import Output
    victim = Victim(tmp_path / "precious")
    out = tmp_path / "out.json"
    output = Output(str(out))
    os.symlink(victim.path, out)
    with pytest.raises(RunError, match="changed while kit ran"):
        output.write("{}\n")
    assert victim.unchanged() and os.readlink(out) == victim.path
    os.unlink(out)
    out.write_text("old")
    output = Output(str(out))
    os.unlink(out)
    os.link(victim.path, out)           # another file under the name kit checked
    with pytest.raises(RunError, match="changed while kit ran"):
        output.write("{}\n")
    assert victim.unchanged()
    os.unlink(out)
    output = Output(str(out))           # undisturbed, it is written as before
    output.write("new\n")
    assert out.read_text() == "new\n" and sorted(os.listdir(tmp_path)) == ["out.json", "precious"]


def _tiny_report(tmp_path, monkeypatch):
    """A store of one machine and one report notebook of a few lines:
    (data, reports)."""
    data = tmp_path / "data"
    (data / "box").mkdir(parents=True)
    (data / "box" / "machine.json").write_text(json.dumps({"version": 1, "name": "box"}))
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {"tags": ["parameters"]}, "outputs": [],
              "source": 'machine = None\ndata_dir = "data"\n'},
             {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
              "source": 'print("a page about", machine)\n'}]
    (notebooks / "tiny.ipynb").write_text(json.dumps({
        "cells": cells, "nbformat": 4, "nbformat_minor": 4,
        "metadata": {"kernelspec": {"display_name": "kit (.venv)", "language": "python", "name": "kit"},
                     "kit": {"title": "Tiny", "order": 1, "plots": False}}}))
    monkeypatch.setenv("KIT_NOTEBOOKS", str(notebooks))
    return str(data), str(tmp_path / "reports")


def test_a_forged_record_of_pages_removes_nothing_kit_did_not_write(tmp_path, monkeypatch):
    """reports/.kit-reports.json is only a claim: what it names outside
    reports/, or a file there without kit's mark, is never deleted."""
    from kit import publish
    data, reports = _tiny_report(tmp_path, monkeypatch)
    os.makedirs(os.path.join(reports, "box"))
    outside = Victim(tmp_path / "outside.html", size=100)
    theirs = Victim(os.path.join(reports, "box", "notes.html"), size=100)

    def claim(v):
        return {"inputs": "x", "sha256": v.before[0]}
    with open(os.path.join(reports, publish.WRITTEN_FILE), "w") as fh:
        json.dump({"version": publish.WRITTEN_VERSION,
                   "files": {"../outside.html": claim(outside), outside.path: claim(outside),
                             "box/notes.html": claim(theirs)}}, fh)
    done = publish.publish(data, reports)
    assert done.removed == [] and outside.unchanged() and theirs.unchanged()
    assert [os.path.relpath(p, reports) for p in done.rendered] == ["box/tiny.html"]


def test_a_reports_folder_swapped_for_a_link_while_pages_render(tmp_path, monkeypatch):
    """Pages render for seconds after publish checked where they go: the
    places are checked again as each is written."""
    from kit import publish
    data, reports = _tiny_report(tmp_path, monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    theirs = Victim(elsewhere / "tiny.html", size=100)
    rendered = publish._render

    def render_then_swap(pages, advance):
        texts = rendered(pages, advance)
        os.symlink(elsewhere, os.path.join(reports, "box"))
        return texts
    monkeypatch.setattr(publish, "_render", render_then_swap)
    with pytest.raises(RunError, match="is no longer a folder kit made"):
        publish.publish(data, reports)
    assert os.listdir(elsewhere) == ["tiny.html"] and theirs.unchanged()


def test_the_fio_runner_leaves_the_working_directory_alone(tmp_path):
    """fio writes <section>-<n>-verify.state into its working directory at
    the end of a verify write job, through a link there and over any file of
    that name: kit's fio runner ran fio in the user's directory, and a
    100,000-byte file linked there came back 192 bytes. Now fio runs in a
    folder of kit's own with verify_state_save=0, and the directory holds
    what it held."""
    require(shutil.which("fio") is not None, "fio is not installed")
    victim = tmp_path / "victim"
    victim.write_bytes(os.urandom(100_000))
    before = victim.read_bytes()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for name in ("local-kit.0.0-0-verify.state", "kit.0.0-0-verify.state"):
        os.symlink(victim, cwd / name)
    p = run_kit("run", "--runner=fio", "--rw=write", "--verify=crc32c", "--size=1m", f"--directory={tmp_path / 's'}",
                "--output=/dev/null", "--progress=0", cwd=cwd)
    assert p.returncode == 0, p.stderr
    assert victim.read_bytes() == before and sorted(os.listdir(cwd)) == ["kit.0.0-0-verify.state",
                                                                      "local-kit.0.0-0-verify.state"]


def test_the_fio_runner_refuses_a_log_named_like_a_data_file_before_writing(tmp_path):
    """A log named like the job's data file is bad input for both runners:
    one line, exit 2, nothing written (the fio runner let fio write the data
    first, then failed with exit 1)."""
    require(shutil.which("fio") is not None, "fio is not installed")
    for runner in ("kit", "fio"):
        where = tmp_path / runner
        (where / "ks").mkdir(parents=True)
        p = run_kit("run", f"--runner={runner}", "--rw=write", "--size=1m", "--directory=ks", "--write_bw_log=ks/kit",
                    "--filename_format=kit_bw.1.log", cwd=where)
        assert p.returncode == 2 and "--write_bw_log: ks/kit_bw.1.log is also a file the job reads or writes" \
            in p.stderr, (runner, p.stderr)
        assert os.listdir(where) == ["ks"] and os.listdir(where / "ks") == [], runner
