"""Hostile input and faults: each gets exit code 2 (bad input) or 1 (a fault
here) with one line, never a traceback or a hang, and bad input writes
nothing at all -- no scratch files, no data/, no machine.json, no output."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import KIT, kit_started, require, run_kit, small_tmpfs


def _one_line(p, code, *words):
    assert p.returncode == code, (p.returncode, p.stdout[-300:], p.stderr)
    lines = p.stderr.strip().splitlines()
    assert lines and "Traceback" not in p.stderr, p.stderr
    for w in words:
        assert w in lines[-1], (w, p.stderr)
    return lines


def _refused(p, *words):
    lines = _one_line(p, 2, *words)
    assert len(lines) == 1, p.stderr


# ---- numbers -----------------------------------------------------------------

@pytest.mark.parametrize("arg, words", [
    ("--runtime=99999999999999d", "--runtime: must be at most 3650d"),
    ("--ramp_time=99999999999999d", "--ramp_time: must be at most"),
    ("--number_ios=" + "9" * 24, "--number_ios: must be from 0 to"),
    ("--fsync=" + "9" * 24, "--fsync: must be from 0 to 4294967295"),
    ("--size=99999999p", "--size: must be at most 1024p"),
    ("--randseed=" + "9" * 30, "--randseed: must be from 0 to"),
])
def test_numbers_that_overflow(tmp_path, arg, words):
    _refused(run_kit("run", "--rw=write", arg, cwd=tmp_path), words)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("line, words", [
    ("runtime=(10^30)", "beyond 64 bits"),
    ("size=(10^400)", "beyond 64 bits"),
    ("size=(9^9^9)", "beyond 64 bits"),
    ("size=(2^52k)", "size: must be at most 1024p"),
    ("size=(2^40)", "beyond 2^31-1 without a unit suffix"),
    ("size=(2**10)", "fio's power is ^, not **"),
    ("size=(1e3x)", "'x' is no suffix"),
    ("size=(" + "(" * 300 + "1" + ")" * 300 + ")", "expression longer than 256 characters"),
    ("size=(" + "(" * 120 + "1" + ")" * 120 + ")", "size: each of the 1 file(s) needs at least bs"),
    ("iodepth=(1/0)", "divides by zero"),
    ("iodepth=(7.5%2)", "% on a fraction"),
    ("bs=(-4^0.5)", "cannot evaluate"),         # Python's answer is a complex number
    ("runtime=(-1^1.5)", "cannot evaluate"),
    ("size=(1g*1g*16)", "beyond 64 bits"),
])
def test_job_file_arithmetic_is_bounded(tmp_path, line, words):
    (tmp_path / "j.fio").write_text(f"[j]\nrw=write\n{line}\n")
    start = time.monotonic()
    _refused(run_kit("run", "j.fio", cwd=tmp_path), words)
    assert time.monotonic() - start < 10
    assert os.listdir(tmp_path) == ["j.fio"]


def test_includes_that_exhaust(tmp_path):
    (tmp_path / "zero.fio").write_text("[j]\ninclude /dev/zero\nsize=1m\n")
    _refused(run_kit("run", "zero.fio", cwd=tmp_path), "/dev/zero: not a job file")
    for i in range(1200):
        (tmp_path / f"i{i}.fio").write_text(("[j]\n" if i == 0 else "") + f"include i{i + 1}.fio\n")
    (tmp_path / "i1200.fio").write_text("size=1m\n")
    _refused(run_kit("run", "i0.fio", cwd=tmp_path), "includes nested deeper than 16")
    (tmp_path / "wide.inc").write_text("size=1m\n" + "include one.inc\n" * 300)
    (tmp_path / "one.inc").write_text("bs=4k\n")
    (tmp_path / "wide.fio").write_text("[j]\ninclude wide.inc\n")
    _refused(run_kit("run", "wide.fio", cwd=tmp_path), "more than 256 inclusions")
    (tmp_path / "big.fio").write_bytes(b"; x\n" * (300 << 10))
    _refused(run_kit("run", "big.fio", cwd=tmp_path), "too large for a job file")
    (tmp_path / "nul.fio").write_bytes(b"[j\0k]\nsize=1m\n")
    _refused(run_kit("run", "nul.fio", cwd=tmp_path), "not a text file")
    assert not (tmp_path / "kit-scratch").exists()


def test_job_names_with_nul_or_control_characters():
    import kit
    for name in ("a\0b", "a\nb", "x/y", ".."):
        with pytest.raises(kit.OptionError, match="name: must be a name"):
            kit.Job(name=name)


def test_sigterm_while_starting_exits_130_in_one_line(tmp_path):
    for delay in (0.005, 0.01, 0.03, 0.06, 0.1, 0.2):
        proc = subprocess.Popen([KIT, "run", "--rw=read", "--size=4m", "--runtime=30", "--time_based"],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        kit_started(proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, (delay, proc.returncode, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err


# ---- everything is checked before the first group runs ------------------------

def test_a_bad_later_group_writes_nothing(tmp_path, loopdev):
    victim = tmp_path / "victim"
    victim.write_bytes(b"v" * 4096)
    for second in (f"filename={loopdev}\nrw=write\n",             # a device, no --allow-destructive
                   f"filename={victim}\nrw=write\n",               # a file kit did not create
                   "filename=/proc/kit-nope\nrw=write\n"):         # a pseudo filesystem
        (tmp_path / "j.fio").write_text(f"[first]\nrw=write\nsize=1m\n\n[second]\nstonewall\nsize=1m\n{second}")
        p = run_kit("run", "j.fio", cwd=tmp_path)
        _refused(p, "j.fio [second]: ")          # the refusal says which section of the file it is
        assert sorted(os.listdir(tmp_path)) == ["j.fio", "victim"]
    assert victim.read_bytes() == b"v" * 4096


# ---- sweep files ------------------------------------------------------------

BILLION_LAUGHS = """name: lol
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
grid: {bs: *f}
"""


@pytest.mark.parametrize("content, words", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe garbage", "not a text file"),
    (BILLION_LAUGHS.encode(), "anchors and aliases"),
    (("name: big\ngrid:\n" + "".join(f"  {o}: [{', '.join(str(v) for v in range(1, 21))}]\n"
                                       for o in ("iodepth", "numjobs", "nrfiles", "rwmixread", "fsync",
                                                 "force_async", "iodepth_batch_submit", "randseed"))).encode(),
     "25,600,000,000 points"),
    (b"name: x\ngrid: {iodepth: [1]}\nbase: {filename: /proc/kit-nope, rw: write}\n", "proc"),
])
def test_sweep_files_that_hang_or_exhaust(tmp_path, content, words):
    (tmp_path / "s.yml").write_bytes(content)
    start = time.monotonic()
    _refused(run_kit("sweep", "s.yml", "--no-publish", cwd=tmp_path), words)
    assert time.monotonic() - start < 20
    assert os.listdir(tmp_path) == ["s.yml"]


def test_a_bad_sweep_point_writes_nothing(tmp_path, loopdev):
    (tmp_path / "s.yml").write_text(f"name: x\nbase: {{size: 1m, rw: write}}\n"
                                    f"grid: {{filename: [a.dat, {loopdev}]}}\n")
    _refused(run_kit("sweep", "s.yml", "--no-publish", cwd=tmp_path), "block device", "point filename=")
    assert os.listdir(tmp_path) == ["s.yml"]


def test_sweep_points_whose_names_collide_each_keep_their_result(tmp_path):
    (tmp_path / "s.yml").write_text("name: collide\nbase: {size: 64k, rw: read}\n"
                                    "grid: {name: ['a b', 'a_b', 'a:b', '" + "x" * 120 + "1', '"
                                    + "x" * 120 + "2']}\n")
    p = run_kit("sweep", "s.yml", "--no-publish", f"--directory={tmp_path / 'scratch'}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "5 run, 0 already stored" in p.stdout
    stored = list((tmp_path / "data").glob("*/sweep-collide/*.json"))
    assert len(stored) == 5
    names = {json.loads(f.read_text())["job"]["name"] for f in stored}
    assert names == {"a b", "a_b", "a:b", "x" * 120 + "1", "x" * 120 + "2"}
    # a second sweep of the same name but another job never takes these for its own
    (tmp_path / "t.yml").write_text("name: collide\nbase: {size: 128k, rw: read}\ngrid: {name: ['a b']}\n")
    p = run_kit("sweep", "t.yml", "--no-publish", f"--directory={tmp_path / 'scratch'}", cwd=tmp_path)
    assert p.returncode == 0 and "1 run, 0 already stored" in p.stdout, p.stdout + p.stderr
    assert len(list((tmp_path / "data").glob("*/sweep-collide/*.json"))) == 6


# ---- kit import: check first, then store -------------------------------------

@pytest.mark.parametrize("doc, words", [
    ('{"jobs":[{}]}', "jobs[0].jobname"),
    ('{"jobs":[1]}', "jobs[0] is not an object"),
    ('{"jobs":[{"jobname":"x","read":5}]}', "missing or not a number"),
    ('{"jobs":5}', "'jobs' list"),
    ("[]", "not fio JSON output"),
    ('{"jobs":[{"jobname":"x"', "broken fio JSON"),
])
def test_import_of_what_is_not_fio_output(tmp_path, doc, words):
    (tmp_path / "x.json").write_text(doc)
    _refused(run_kit("import", "x.json", cwd=tmp_path), words)
    assert os.listdir(tmp_path) == ["x.json"]


def test_import_of_a_fio_trim_job(tmp_path, loopdev):
    import shutil
    require(shutil.which("fio") is not None, "fio is not installed")
    out = tmp_path / "trim.json"
    subprocess.run(["fio", "--name=t", "--rw=randtrim", f"--filename={loopdev}", "--size=4m",
                    "--output-format=json+", f"--output={out}"], check=True, capture_output=True)
    p = run_kit("import", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "rw=randtrim" in p.stdout and "trim" in p.stdout
    assert len(list((tmp_path / "data").glob("*/import/*.json"))) == 1
    p = run_kit("import", str(out), cwd=tmp_path)          # again: nothing stored twice
    assert p.returncode == 0 and "already in the store" in p.stderr
    assert len(list((tmp_path / "data").glob("*/import/*.json"))) == 1


# ---- the store: files kit cannot read are named and skipped -------------------

def test_store_skips_damaged_and_foreign_files(tmp_path):
    from kit import store
    from kit.results import Result
    data = tmp_path / "data"
    folder = data / "m1" / "engines"
    folder.mkdir(parents=True)
    (data / "m1" / "machine.json").write_text(json.dumps({"version": 1, "name": "m1"}))
    good = {"schema": "kit-result/1"}
    bad = {"truncated.json": '{"schema": "kit-result/1", "jobs": [', "jobs5.json": '{"jobs": 5}',
           "list.json": "[]", "future.json": json.dumps({**good, "schema": "kit-result/9", "jobs": [{}]})}
    for name, text in bad.items():
        (folder / name).write_text(text)
    (data / "m2").mkdir()
    (data / "m2" / "machine.json").write_text(json.dumps({"version": 7, "name": "m2"}))
    (data / "m3").mkdir()
    (data / "m3" / "machine.json").write_text("[1, 2]")
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert store.load("m1", data=str(data)) == []
        assert [m["name"] for m in store.machines(str(data))] == ["m1"]
    text = err.getvalue()
    for name in bad:
        assert f"skipping {folder / name}" in text, text
    assert "written by a newer kit (kit-result/9" in text
    assert "written by a newer kit (machine file version 7" in text and "m3/machine.json" in text
    with pytest.raises(ValueError, match="not a kit result"):
        Result.from_dict({"jobs": 5})


def test_a_damaged_manifest_stops_kit_with_one_line(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / ".kit-files.json").write_text('{"schema": "kit-files/1", "files": [1]}')
    _refused(run_kit("run", "--rw=read", "--size=1m", f"--directory={scratch}"), "kit's manifest is damaged")
    (scratch / ".kit-files.json").write_text('{"schema": "kit-files/1", "files": {"kit.0.0": {"dev": "x"}}}')
    _refused(run_kit("run", "--rw=read", "--size=1m", f"--directory={scratch}"), "entry 'kit.0.0' is malformed")
    assert sorted(os.listdir(scratch)) == [".kit-files.json"]


# ---- faults -------------------------------------------------------------------

def test_verify_read_back_after_the_directory_was_removed(tmp_path):
    """kit reads back through the descriptors it wrote with: the files being
    unlinked (or replaced by a FIFO) under it changes nothing."""
    import threading
    import kit
    scratch = tmp_path / "scratch"

    path = scratch / "kit.0.0"

    def vandalize():
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        os.unlink(path)             # kit created it through a descriptor it keeps
        os.mkfifo(path)

    t = threading.Thread(target=vandalize)
    t.start()
    r = kit.run(kit.Job(rw="randwrite", size="16m", verify="crc32c", directory=str(scratch)),
                progress=False, machine=False)
    t.join()
    assert r.data["error"] is None and r.total["write"]["total_ios"] == 4096
    assert r.total["read"]["total_ios"] == 4096 and r.total["kit"]["verified_bytes"] == 16 << 20
    assert any("was replaced during the run" in n for n in r.data["notes"]), r.data["notes"]


def test_read_only_directory_of_intact_files(tmp_path):
    require(os.geteuid() == 0, "bind mounts need root")
    scratch = tmp_path / "scratch"
    import kit
    kit.run(kit.Job(rw="write", size="1m", verify="crc32c", directory=str(scratch)), progress=False, machine=False)
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", str(scratch), str(ro)], check=True)
    try:
        p = run_kit("run", "--rw=randread", "--size=1m", "--verify=crc32c", f"--directory={ro}")
        assert p.returncode == 0, p.stderr
        _refused(run_kit("run", "--rw=write", "--size=1m", f"--directory={ro}"), "is not writable")
        _refused(run_kit("run", "--rw=read", "--size=2m", f"--directory={ro}"), "is not writable")
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_fio_failure_says_why(tmp_path):
    import shutil
    require(shutil.which("fio") is not None, "fio is not installed")
    require(os.geteuid() == 0, "changing fs.aio-max-nr needs root")
    with open("/proc/sys/fs/aio-max-nr") as fh:
        saved = fh.read().strip()
    with open("/proc/sys/fs/aio-nr") as fh:
        in_use = int(fh.read())
    with open("/proc/sys/fs/aio-max-nr", "w") as fh:
        fh.write(str(in_use + 4))
    try:
        p = run_kit("run", "--runner=fio", "--ioengine=libaio", "--iodepth=64", "--rw=randread", "--size=1m",
                    cwd=tmp_path)
    finally:
        with open("/proc/sys/fs/aio-max-nr", "w") as fh:
            fh.write(saved)
    _one_line(p, 1, "error 11 (Resource temporarily unavailable)", "not enough AIO slots", "fs.aio-max-nr")


def test_interrupted_fio_runner_keeps_the_partial_result(tmp_path):
    import shutil
    require(shutil.which("fio") is not None, "fio is not installed")
    proc = subprocess.Popen([KIT, "run", "--runner=fio", "--rw=randread", "--size=8m", "--runtime=30",
                             "--time_based", "--output-format=json"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert proc.returncode == 130, err
    data = json.loads(out)
    assert data["interrupted"] is True and data["runner"] == "fio"
    assert data["total"]["read"]["total_ios"] > 0


# ---- second round: what a hostile review found ---------------------------------

def test_allow_destructive_only_from_the_command_line(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"v" * 65536)
    (tmp_path / "d.fio").write_text(f"[a]\nfilename={victim}\nrw=write\nallow_destructive=1\nsize=64k\n")
    _refused(run_kit("run", "d.fio", cwd=tmp_path), "allow_destructive: only --allow-destructive on kit's command line")
    (tmp_path / "s.yml").write_text(f"name: d\nbase: {{filename: {victim}, rw: write, size: 64k, "
                                    "allow_destructive: 1}\ngrid: {bs: [4k]}\n")
    _refused(run_kit("sweep", "s.yml", "--no-publish", cwd=tmp_path), "allow_destructive: only --allow-destructive")
    assert victim.read_bytes() == b"v" * 65536
    (tmp_path / "s.yml").write_text(f"name: d\nbase: {{filename: {victim}, rw: write, size: 64k}}\n"
                                    "grid: {bs: [4k]}\n")
    p = run_kit("sweep", "s.yml", "--no-publish", "--allow-destructive", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert victim.read_bytes() != b"v" * 65536


@pytest.fixture
def tmpfs10(tmp_path):
    with small_tmpfs(tmp_path / "small", "10m") as mnt:
        yield mnt


@pytest.mark.parametrize("how", ["together", "stonewall", "sweep"])
def test_free_space_counts_every_job_of_the_run(tmpfs10, how):
    if how == "sweep":
        (tmpfs10 / "s.yml").write_text("name: fit\nbase: {size: 6m, rw: read}\ngrid: {name: [a, b]}\n")
        p = run_kit("sweep", "s.yml", "--no-publish", cwd=tmpfs10)
    else:
        wall = "stonewall\n" if how == "stonewall" else ""
        (tmpfs10 / "j.fio").write_text(f"[global]\nsize=6m\nrw=read\n[a]\n[b]\n{wall}")
        p = run_kit("run", "j.fio", cwd=tmpfs10)
    _refused(p, "kit's files need 12,582,912 more bytes")
    assert sorted(os.listdir(tmpfs10)) == [("s.yml" if how == "sweep" else "j.fio")]


def test_a_filename_that_does_not_exist_needs_a_size(tmp_path):
    _refused(run_kit("run", "--filename=other/newfile", "--size=1m", cwd=tmp_path), "other does not exist")
    (tmp_path / "other").write_text("")
    _refused(run_kit("run", "--filename=other/newfile", "--size=1m", cwd=tmp_path), "newfile: Not a directory")
    (tmp_path / "other").unlink()
    (tmp_path / "other").mkdir()
    _refused(run_kit("run", "--filename=other/newfile", cwd=tmp_path), "does not exist: give --size")
    assert os.listdir(tmp_path / "other") == []


@pytest.mark.parametrize("args, words", [
    (["--filename=nothere"], "does not exist"),
    (["--directory=/dev/kit-doctor-test"], "devtmpfs"),
    (["--directory=/proc/x"], "proc"),
    (["--directory=afile/sub"], "is not a writable directory"),
])
def test_doctor_checks_where_it_probes(tmp_path, args, words):
    (tmp_path / "afile").write_text("x")
    before = set(os.listdir("/dev"))
    _refused(run_kit("doctor", *args, cwd=tmp_path), words)
    assert sorted(os.listdir(tmp_path)) == ["afile"] and set(os.listdir("/dev")) == before


@pytest.mark.parametrize("args, words", [
    (["--filename=/sys/kernel/mm/transparent_hugepage/enabled", "--rw=write", "--allow-destructive",
      "--size=4k"], "sysfs"),
    (["--filename=/sys/kernel/mm/transparent_hugepage/enabled", "--rw=read", "--size=4k"], "sysfs"),
    (["--filename=/proc/self/status", "--rw=read", "--size=4k"], "proc"),
    (["--name=.kit-files.json", "--filename_format=$jobname"], "kit's own bookkeeping"),
    (["--filename=.kit-files.json", "--size=4k"], "kit's own bookkeeping"),
    (["--size=" + "1" * 5000], "--size: must be at most 1024p"),
    (["--bs=" + "9" * 5000 + "k"], "--bs: must be at most 1024p"),
])
def test_more_paths_and_numbers_refused(tmp_path, args, words):
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
        thp = fh.read()
    _refused(run_kit("run", *args, cwd=tmp_path), words)
    assert os.listdir(tmp_path) == []
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
        assert fh.read() == thp


def test_one_line_even_with_warnings(tmp_path):
    (tmp_path / "j.fio").write_text("[j]\ndisk_util=0\nunified_rw_reporting=mixed\nfilename=/proc/kit-x\n"
                                    "rw=write\nsize=1m\n")
    _refused(run_kit("run", "j.fio", cwd=tmp_path), "proc")


DEEP = "[" * 200000


@pytest.mark.parametrize("doc, words", [
    ('{"jobs":' + DEEP, "nested too deeply"),
    (json.dumps({"jobs": [{"jobname": "x", "error": 10 ** 30}]}), "jobs[0].error"),
    ('{"global options": [1], "jobs": [{"jobname": "x"}]}', "'global options' is not an object"),
    ('{"jobs": [{"jobname": "x", "read": {"io_bytes": NaN}}]}', "is missing or not a number"),
])
def test_import_of_documents_built_to_crash(tmp_path, doc, words):
    (tmp_path / "x.json").write_text(doc)
    _refused(run_kit("import", "x.json", cwd=tmp_path), words)
    assert os.listdir(tmp_path) == ["x.json"]


def _fio_doc(tmp_path):
    import shutil
    require(shutil.which("fio") is not None, "fio is not installed")
    out = tmp_path / "fio.json"
    target = tmp_path / "t.dat"
    target.write_bytes(b"\0" * (1 << 20))
    subprocess.run(["fio", "--name=a", "--numjobs=2", f"--filename={target}", "--size=1m", "--rw=read",
                    "--output-format=json", f"--output={out}"], check=True, capture_output=True)
    target.unlink()
    return json.loads(out.read_text())


@pytest.mark.parametrize("damage, words", [
    (lambda d: d["jobs"][0]["read"]["clat_ns"].pop("stddev"), "lacks N, min, max, mean or stddev"),
    (lambda d: d["jobs"][1].__setitem__("kit", "x"), "jobs[1].kit is not an object"),
    (lambda d: d["jobs"][1]["read"].__setitem__("short_ios", "3"), "short_ios is not a number"),
    (lambda d: d["jobs"][1]["sync"].__setitem__("lat_ns", 5), "sync.lat_ns lacks"),
    (lambda d: d["jobs"][0].__setitem__("error", 2 ** 31), "jobs[0].error"),
    (lambda d: d["jobs"][1]["read"]["clat_ns"].__setitem__("mean", 1e200), "clat_ns lacks"),
    (lambda d: [j.__setitem__("usr_cpu", 1e308) for j in d["jobs"]], "usr_cpu"),
    (lambda d: d["jobs"][1].__setitem__("kit", {"runtime_ns": "x"}), "kit.runtime_ns is not a number"),
    (lambda d: d["jobs"][0]["read"].__setitem__("runtime", -5), "jobs[0].read.runtime is negative"),
    (lambda d: d["jobs"][1].__setitem__("ctx", -1), "jobs[1].ctx is negative"),
    (lambda d: d["jobs"][0]["read"]["clat_ns"].__setitem__("min", -3), "clat_ns.min is negative"),
    (lambda d: d["jobs"][0]["read"]["clat_ns"]["percentile"].__setitem__("p99", 5), "not percentiles"),
    (lambda d: d["jobs"][0]["read"]["clat_ns"]["percentile"].__setitem__("150.0", 5), "not percentiles"),
    (lambda d: d["jobs"][0]["read"]["clat_ns"]["percentile"].__setitem__("\u0669\u0669.0", 5), "not percentiles"),
    (lambda d: d["jobs"][0]["read"]["clat_ns"]["percentile"].__setitem__("99.0", -1), "is negative"),
    (lambda d: d["jobs"][0]["iodepth_level"].__setitem__("1", -2.0), "iodepth_level['1'] is negative"),
    (lambda d: d["jobs"][0]["read"].__setitem__("bw", -5), "jobs[0].read.bw is negative"),
    (lambda d: d["jobs"][0]["read"].__setitem__("iops_mean", -1.5), "jobs[0].read.iops_mean is negative"),
    (lambda d: d["jobs"][1].__setitem__("elapsed", -1), "jobs[1].elapsed is negative"),
])
def test_import_of_damaged_fio_output(tmp_path, damage, words):
    doc = _fio_doc(tmp_path)
    damage(doc)
    (tmp_path / "x.json").write_text(json.dumps(doc))
    _refused(run_kit("import", "x.json", cwd=tmp_path), words)
    assert sorted(os.listdir(tmp_path)) == ["fio.json", "x.json"]


def test_a_store_that_is_not_what_kit_made(tmp_path):
    from kit.machine import machine_name
    doc = _fio_doc(tmp_path)
    (tmp_path / "x.json").write_text(json.dumps(doc))
    name = machine_name()
    data = tmp_path / "data"
    data.mkdir()
    (data / name).write_text("a file where a folder goes")
    _refused(run_kit("import", "x.json", cwd=tmp_path), "is not a folder kit made")
    (data / name).unlink()
    (data / name).mkdir()
    (data / name / "import").write_text("a file")
    _refused(run_kit("import", "x.json", cwd=tmp_path), "is not a folder kit made")
    (data / name / "import").unlink()
    (data / name / "machine.json").mkdir()
    _refused(run_kit("import", "x.json", cwd=tmp_path), "is not a regular file")
    (data / name / "machine.json").rmdir()
    for text, words in ((json.dumps({"version": 9, "name": name}), "newer kit"), ("{", "not readable JSON")):
        (data / name / "machine.json").write_text(text)
        _refused(run_kit("import", "x.json", cwd=tmp_path), "kit will not replace it", words)
        assert (data / name / "machine.json").read_text() == text
    (data / name / "machine.json").unlink()
    os.mkfifo(data / name / "machine.json")
    p = run_kit("import", "x.json", cwd=tmp_path, timeout=20)         # never hangs on a FIFO
    _refused(p, "is not a regular file")
    (data / name / "machine.json").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (data / name).rmdir()
    (data / name).symlink_to(elsewhere)
    _refused(run_kit("import", "x.json", cwd=tmp_path), "is not a folder kit made")
    assert os.listdir(elsewhere) == []


def test_store_reads_never_hang_on_a_fifo(tmp_path):
    from kit import store
    folder = tmp_path / "data" / "m" / "sweep-x"
    folder.mkdir(parents=True)
    (tmp_path / "data" / "m" / "machine.json").write_text(json.dumps({"version": 1, "name": "m"}))
    os.mkfifo(folder / "zz.json")
    (folder / "deep.json").write_text("[" * 100000)
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert store.load("m", data=str(tmp_path / "data")) == []
    assert "zz.json: not a regular file" in err.getvalue()
    assert "deep.json: not readable JSON (nested too deeply)" in err.getvalue()


def test_stdout_closed_full_or_gone(tmp_path):
    scratch = f"--directory={tmp_path / 's'}"
    for redirect, words in (("> /dev/full", "No space left on device"), (">&-", "it is closed"),
                            ("| (exec 0<&-; sleep 1)", "broken pipe")):
        p = subprocess.run(f"{KIT} run --size=1m --rw=read --runtime=0.3 --time_based {scratch} {redirect}; "
                           f"echo rc=$? >&2", shell=True, capture_output=True, text=True)
        lines = p.stderr.strip().splitlines()
        assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr
        assert words in lines[0], (redirect, p.stderr)
        if "|" not in redirect:
            assert lines[-1] == "rc=1", p.stderr
    p = subprocess.run(f"{KIT} run --help > /dev/full", shell=True, capture_output=True, text=True)
    assert p.returncode == 1 and "No space left" in p.stderr and "Exception" not in p.stderr


def test_output_that_cannot_be_written(tmp_path, tmpfs10):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    start = time.monotonic()
    _refused(run_kit("run", "--rw=read", "--size=1m", f"--output={fifo}", cwd=tmp_path),
             "no process is reading it")
    assert time.monotonic() - start < 10
    p = subprocess.run(["setsid", KIT, "run", "--rw=read", "--size=1m", "--output=/dev/tty"], cwd=tmp_path,
                       capture_output=True, text=True)
    _refused(p, "--output", "/dev/tty")
    hog = tmpfs10 / "hog"
    with open(hog, "wb") as fh:
        with pytest.raises(OSError):
            fh.write(b"x" * (11 << 20))
    p = run_kit("run", "--rw=read", "--size=1m", "--output-format=json", f"--output={tmpfs10 / 'out.json'}",
                f"--directory={tmp_path / 's'}")
    _one_line(p, 1, "--output: cannot write", "No space left on device")


def test_sweep_files_that_say_a_thing_twice_or_nest_deep(tmp_path):
    for text, words in (("name: x\nname: y\ngrid: {bs: [4k]}\n", "'name' is given twice"),
                        ("name: x\ngrid: {bs: [4k], blocksize: [8k]}\n", "bs is given twice"),
                        ("name: x\nbase: {iodepth: 2}\ngrid: {iodepth: [4]}\n", "iodepth is given twice"),
                        ("name: x\ngrid: {bs: " + "[" * 20000 + "]" * 20000 + "}\n", "nested deeper than 32"),
                        ("name: x\ngrid: {size: [" + "1" * 5000 + "]}\n", "a number too long")):
        (tmp_path / "s.yml").write_text(text)
        start = time.monotonic()
        _refused(run_kit("sweep", "s.yml", "--no-publish", cwd=tmp_path), words)
        assert time.monotonic() - start < 10
        assert os.listdir(tmp_path) == ["s.yml"]


def test_sigterm_at_any_moment_never_kills_kit_outright(tmp_path):
    import random
    seen = {}
    for i in range(24):
        proc = subprocess.Popen([KIT, "run", "--size=8m", "--runtime=0.3", "--time_based",
                                 f"--directory={tmp_path / 's'}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        held = kit_started(proc)
        seen[held] = seen.get(held, 0) + 1
        time.sleep(random.choice((0.0, random.uniform(0.0, 1.2))))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode in (0, 130), (proc.returncode, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
        seen[proc.returncode] = seen.get(proc.returncode, 0) + 1
    assert seen.get(130) and seen.get("blocked", 0) >= 12, seen    # the launcher's block is seen, not stepped over


# ---- third round --------------------------------------------------------------

def test_report_checks_every_suite_before_it_writes(tmpfs10, tmp_path):
    p = run_kit("report", "--quick", f"--directory={tmpfs10 / 'ks'}", f"--data={tmp_path / 'data'}",
                f"--reports={tmp_path / 'reports'}", "--suites=engines,anatomy", timeout=120)
    _refused(p, "kit's files need")
    (tmp_path / "bad.yml").write_text("name: bad\nbase: {filename: nowhere/x, rw: read}\ngrid: {bs: [4k]}\n")
    for quick in (["--quick"], []):
        p = run_kit("report", *quick, f"--directory={tmp_path / 'ks'}", f"--data={tmp_path / 'data'}",
                    f"--reports={tmp_path / 'reports'}", "--suites=machine,sweep", f"--sweep={tmp_path / 'bad.yml'}",
                    cwd=tmp_path, timeout=120)
        _refused(p, "nowhere/x")
    assert sorted(os.listdir(tmp_path)) == ["bad.yml", "small"] and os.listdir(tmpfs10) == []


def test_options_without_a_value(tmp_path):
    import kit
    (tmp_path / "s.yml").write_text("name: n\nbase: {rw: null, size: 64k}\ngrid: {iodepth: [1]}\n")
    _refused(run_kit("sweep", "s.yml", "--no-publish", cwd=tmp_path), "rw: must have a value")
    for options in (dict(rw=None), dict(ioengine=None), dict(runtime=None), dict(bs=None)):
        with pytest.raises(kit.OptionError, match="must have a value"):
            kit.run(size="64k", directory=str(tmp_path / "d"), **options)
    with pytest.raises(kit.OptionError, match="trace"):
        kit.run(size="64k", directory=str(tmp_path / "d"), runner="fio", trace=["block"])
    with pytest.raises(kit.OptionError, match="trace: must be"):
        kit.run(size="64k", directory=str(tmp_path / "d"), trace=["bogus"])
    assert os.listdir(tmp_path) == ["s.yml"]


@pytest.mark.parametrize("args, ok", [
    (["--numjobs=1_0"], False), (["--iodepth=0x10", "--ioengine=libaio"], True), (["--output=newdir/"], False),
])
def test_integers_and_output_names(tmp_path, args, ok):
    p = run_kit("run", "--size=64k", f"--directory={tmp_path / 's'}", *args, cwd=tmp_path)
    if ok:
        assert p.returncode == 0, p.stderr
    else:
        _refused(p)
        assert os.listdir(tmp_path) == []


def test_relative_directory_with_a_filename_and_ramfs(tmp_path):
    (tmp_path / "d").mkdir()
    p = run_kit("run", "--directory=d", "--filename=newf", "--size=64k", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert os.path.getsize(tmp_path / "d" / "newf") == 64 << 10
    require(os.geteuid() == 0, "mounting ramfs needs root")
    ram = tmp_path / "ram"
    ram.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "ramfs", str(ram)], check=True)
    try:
        p = run_kit("run", "--size=1m", f"--directory={ram / 'ks'}")      # ramfs counts no free space
        assert p.returncode == 0, p.stderr
    finally:
        subprocess.run(["umount", str(ram)], check=True)


@pytest.mark.parametrize("limit, args, says", [
    (6, ["--numjobs=16", "--size=64k"], "cannot start job thread"),
    # an engine's own threads: Boost's thread_pool that failed at its nth
    # thread joined the others in its constructor, which never returned
    (12, ["--ioengine=asio", "--asio_backend=thread_pool", "--iodepth=32", "--size=64k"], "asio: setting up"),
    (12, ["--ioengine=threadpool", "--iodepth=32", "--size=64k"], "threadpool: starting worker thread"),
    (12, ["--ioengine=stdasync", "--iodepth=32", "--size=4m", "--direct=1"], "stdasync: launching std::async"),
], ids=["job threads", "asio pool", "threadpool", "stdasync"])
def test_too_few_threads_is_one_line(tmp_path, limit, args, says):
    """A pids cgroup (root is exempt from ulimit -u) that lets kit start but
    not all the threads the job needs: one line, exit 1, and no hang."""
    import uuid
    pids = "/sys/fs/cgroup/pids" if os.path.isdir("/sys/fs/cgroup/pids") else "/sys/fs/cgroup"
    require(os.geteuid() == 0 and os.path.exists(os.path.join(pids, "cgroup.procs")), "a pids cgroup needs root")
    group = os.path.join(pids, f"kit-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(group)
    try:
        with open(os.path.join(group, "pids.max"), "w") as fh:
            fh.write(str(limit))
        command = " ".join([KIT, "run", *args, f"--directory={tmp_path / 's'}"])
        p = subprocess.run(["sh", "-c", f"echo $$ > {group}/cgroup.procs; exec {command}"], capture_output=True,
                           text=True, timeout=60)
    finally:
        time.sleep(0.2)
        os.rmdir(group)
    _one_line(p, 1, says, "lower")
    assert p.stderr.count("Resource temporarily unavailable") <= 1, p.stderr


def test_ctrl_c_stops_a_comparison(tmp_path):
    import shutil
    require(shutil.which("fio") is not None, "fio is not installed")
    for delay in (1.0, 4.5):           # during kit's run, then during fio's
        proc = subprocess.Popen([KIT, "run", "--size=4m", "--runtime=3", "--time_based", "--compare=fio",
                                 f"--directory={tmp_path / 's'}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        time.sleep(delay)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - sent < 2.5, delay
        assert proc.returncode == 130, (delay, err)
        assert "interrupted" in err and "Traceback" not in err


def test_closed_stderr_keeps_stdout_json_clean(tmp_path):
    (tmp_path / "j.fio").write_text("[j]\nrw=read\nsize=64k\nzonemode=none\n")
    p = subprocess.run(f"{KIT} run j.fio --output-format=json --directory={tmp_path / 's'} 2>&-", shell=True,
                       cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0
    assert json.loads(p.stdout)["jobs"]


def test_ctrl_c_stops_doctor(tmp_path, monkeypatch):
    """A probe that Ctrl-C cuts short is not a finding: doctor stops."""
    import threading
    from kit import doctor
    real_run = doctor.run
    # each probe made long (time-based), so that the signal lands in one
    monkeypatch.setattr(doctor, "run", lambda job, **kw: real_run(job.replace(runtime=30, time_based=True,
                                                                                 number_ios=0), **kw))
    timer = threading.Timer(1.0, lambda: signal.raise_signal(signal.SIGINT))
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            doctor.capabilities(directory=str(tmp_path / "s"))
    finally:
        timer.cancel()          # never a stray Ctrl-C for the tests after this one
    assert time.monotonic() - start < 5


# ---- empty values and digits that are not ASCII ---------------------------------

@pytest.mark.parametrize("flag", ["--bs=", "--bssplit=", "--bsrange=", "--rate=", "--rate_iops=", "--rate_min=",
                                  "--rate_iops_min=", "--verify=", "--trace=", "--output=", "--write_bw_log=",
                                  "--write_iops_log=", "--write_lat_log=", "--size= ", "--runner=",
                                  "--percentile_list=", "--direct="])
def test_an_empty_value_on_the_command_line_is_refused(tmp_path, flag):
    """fio: "option bs requires an argument"; an empty value was taken as
    'the default' (and an empty log prefix wrote logs)."""
    _refused(run_kit("run", "--ioengine=null", "--size=1m", flag, cwd=tmp_path),
             f"{flag.split('=')[0]}: needs a value")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("line", ["bs=", "rate=", "verify=", "runtime=", "iodepth=", "bsrange=", "bs=${KIT_EMPTY}"])
def test_an_empty_value_in_a_job_file_is_refused_as_fio_refuses_it(tmp_path, line):
    """fio 3.33: "failed parsing bs=", the job dropped. kit took an empty
    bs= as kit's default, even over [global]'s bs."""
    require(shutil.which("fio") is not None, "fio is not installed")
    (tmp_path / "e.fio").write_text(f"[global]\nbs=8k\n[a]\nioengine=null\nsize=1m\n{line}\n")
    env = {**os.environ, "KIT_EMPTY": ""}
    fio = subprocess.run(["fio", "--parse-only", "e.fio"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert fio.returncode != 0 and "failed parsing" in fio.stderr + fio.stdout
    p = subprocess.run([KIT, "run", "e.fio"], cwd=tmp_path, capture_output=True, text=True, env=env)
    _refused(p, f"e.fio:6: {line.split('=')[0]}= has no value")
    assert os.listdir(tmp_path) == ["e.fio"]


def test_an_empty_log_name_in_a_job_file_is_the_job_name_as_in_fio(tmp_path):
    (tmp_path / "l.fio").write_text("[lg]\nioengine=null\nsize=64k\nwrite_bw_log=\n")
    p = run_kit("run", "l.fio", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "lg_bw.1.log" in os.listdir(tmp_path)


@pytest.mark.parametrize("flag", ["--size=\uff14m", "--runtime=\u0662", "--iodepth=\u0664", "--cpus_allowed=\uff11",
                                  "--percentile_list=\u0669\u0669", "--offset=\U0001d7dck",
                                  "--random_distribution=zipf:\u0661.2", "--size=\u0665%"])
def test_digits_that_are_not_ascii_are_refused(tmp_path, flag):
    """fio reads 0-9 only; Python's int() and float() read '\uff14' and
    '\u0662' as digits, and kit ran --size=\uff14m as 4 MiB."""
    _refused(run_kit("run", "--ioengine=null", "--filename=x" if "%" in flag else "--size=1m", flag, cwd=tmp_path),
             flag.split("=")[0][2:])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("line, words", [
    ("direct=true", "direct: must be 0 or 1"), ("group_reporting=yes", "must be 0 or 1"),
    ("stonewall=false", "stonewall: must be an integer"), ("unlink", "unlink needs a value"),
    ("stats", "stats needs a value"), ("runtime=1.5", "no fraction in a time"),
    ("thinktime=1.5ms", "no fraction in a time"), ("startdelay=0.5-1", "no fraction in a time"),
])
def test_what_fio_refuses_in_a_job_file_kit_refuses(tmp_path, line, words):
    """Each of these fio 3.33 fails ("failed parsing", "requires an argument");
    kit ran them, as something fio would not have run (runtime=1.5 is 1 s
    to fio: its parser stops at the '.')."""
    require(shutil.which("fio") is not None, "fio is not installed")
    (tmp_path / "f.fio").write_text(f"[a]\nioengine=null\nsize=64k\n{line}\n")
    fio = subprocess.run(["fio", "--parse-only", "f.fio"], cwd=tmp_path, capture_output=True, text=True)
    if "." not in line:
        assert fio.returncode != 0, fio.stdout + fio.stderr
    _refused(run_kit("run", "f.fio", cwd=tmp_path), words)
    assert os.listdir(tmp_path) == ["f.fio"]


@pytest.mark.parametrize("args, words", [
    (["--bs=,"], "--bs: needs a value for at least one direction"),
    (["--bs=,,"], "--bs: needs a value for at least one direction"),
    (["--rate= , "], "--rate: needs a value for at least one direction"),
    (["--iodepth=\u00a08"], "--iodepth: has a space that is not ASCII"),
    (["--bs=4k\u2003"], "--bs: has a space that is not ASCII"),
])
def test_values_fio_refuses_that_python_would_strip(tmp_path, args, words):
    """fio 3.33: "failed parsing bs=," and "iodepth= 8" with a no-break
    space; kit took the default and stripped the space."""
    _refused(run_kit("run", "--ioengine=null", "--size=1m", *args, cwd=tmp_path), words)
    assert os.listdir(tmp_path) == []
