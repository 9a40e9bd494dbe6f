"""`kit run` and `kit doctor` as a user types them."""
import json
import os
import signal
import time

import pytest

from conftest import interrupt_kit, run_kit
from kit.engines import engine_names


def test_run_prints_a_table(scratch):
    p = run_kit("run", "--ioengine=io_uring", "--rw=randread", "--bs=4k", "--iodepth=8", "--size=8M",
                "--runtime=0.5", "--time_based", f"--directory={scratch}")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("io_uring rw=randread bs=4KiB iodepth=8")
    read = next(l for l in lines if l.strip().startswith("read"))
    assert float(read.split()[2].rstrip("kM")) > 0     # IOPS column
    assert "cpu (whole process)" in p.stdout


def test_run_json_is_fio_shaped(scratch, tmp_path):
    out = tmp_path / "res.json"
    p = run_kit("run", "--ioengine=psync", "--rw=randrw", "--rwmixread=70", "--bs=16k", "--numjobs=2",
                "--nrfiles=4", "--direct=1", "--size=2M", "--output-format=json", f"--output={out}",
                f"--directory={scratch}")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    data = json.loads(out.read_text())
    assert len(data["jobs"]) == 2
    for job in data["jobs"]:
        r, w = job["read"], job["write"]
        assert r["total_ios"] + w["total_ios"] == (2 << 20) // (16 << 10)
        assert r["io_bytes"] == r["total_ios"] * 16384
        assert "99.000000" in r["clat_ns"]["percentile"]
        assert "bins" not in r["clat_ns"]            # json, not json+
        assert {"usr_cpu", "sys_cpu", "ctx", "iodepth_level", "latency_us"} <= set(job)
        assert job["job options"]["rw"] == "randrw"
    # 70 % reads within statistical noise over 256 I/Os
    reads = sum(j["read"]["total_ios"] for j in data["jobs"])
    assert 0.55 < reads / 256 < 0.85
    assert data["process"]["ctx"] >= data["total"]["ctx"] - 5


def test_json_plus_has_bins(scratch):
    p = run_kit("run", "--rw=randread", "--size=1M", "--output-format=json+", f"--directory={scratch}")
    assert p.returncode == 0, p.stderr
    clat = json.loads(p.stdout)["jobs"][0]["read"]["clat_ns"]
    assert sum(clat["bins"].values()) == clat["N"] == 256


@pytest.mark.parametrize("args, flag", [
    (["--bs=4q"], "--bs"),
    (["--iodepth=0"], "--iodepth"),
    (["--ioengine=spdk"], "--ioengine"),
    (["--rw=random"], "--rw"),
    (["--blocksize=4k", "--fixedbufs"], "--fixedbufs"),
    (["--iodeth=4"], "--iodeth"),
    (["--time_based"], "--time_based"),
    (["--output-format=xml"], "--output-format"),
    (["--output=/nonexistent/dir/x.json"], "--output"),
    (["--rw=write", "--filename=/etc/hostname"], "--filename"),
    (["--directory=/etc/hostname"], "--directory"),
    (["--size=900t"], "--size"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, args, flag):
    before = sorted(os.listdir(tmp_path))
    p = run_kit("run", *args, cwd=tmp_path)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert flag in lines[0]
    assert "Traceback" not in p.stderr
    assert sorted(os.listdir(tmp_path)) == before      # no kit-scratch, no output


def test_unknown_command():
    p = run_kit("rnu")
    assert p.returncode == 2
    assert "did you mean run" in p.stderr


def test_hipri_on_virtio_says_why_without_hanging(scratch):
    start = time.monotonic()
    p = run_kit("run", "--ioengine=io_uring", "--hipri", "--direct=1", "--rw=randread", "--size=1M",
                f"--directory={scratch}")
    assert time.monotonic() - start < 10
    assert p.returncode == 1
    assert "hipri" in p.stderr and "poll queues" in p.stderr
    assert os.listdir(scratch) == []        # refused before anything was written


@pytest.mark.parametrize("offset, what", [(300_000, "payload"), (512 * 600 + 9, "the unit's offset field"),
                                          (512 * 700 + 2, "the magic"), (512 * 800 + 17, "the seed field"),
                                          (512 * 900 + 24, "the crc")])
def test_verify_failure_names_the_exact_byte(loopdev, offset, what):
    """kit's pattern on a device it was allowed to write; one byte changed
    behind kit's back (no file times can tell) is reported at that byte,
    header bytes included, never as a misplaced write."""
    p = run_kit("run", "--rw=write", "--size=1M", "--verify=crc32c", "--allow-destructive", f"--filename={loopdev}")
    assert p.returncode == 0, p.stderr
    fd = os.open(loopdev, os.O_RDWR)
    try:
        b = os.pread(fd, 1, offset)
        os.pwrite(fd, bytes([b[0] ^ 0x40]), offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    p = run_kit("run", "--rw=randread", "--size=1M", "--verify=crc32c", "--direct=1", f"--filename={loopdev}")
    assert p.returncode == 1, (what, p.stderr)
    line = p.stderr.strip().splitlines()[-1]
    assert f"{loopdev}: verify: wrong byte at offset {offset} (in the unit at offset {offset // 512 * 512})" \
        in line, (what, line)


def test_sigint_stops_a_run_and_keeps_the_partial_result(scratch):
    took, code, out, err = interrupt_kit(["run", "--rw=randread", "--size=4M", "--runtime=60", "--time_based",
                                          "--output-format=json", f"--directory={scratch}"], signal.SIGINT, 1.5)
    assert took < 2
    assert code == 130, err
    data = json.loads(out)
    assert data["interrupted"] is True
    assert data["total"]["read"]["total_ios"] > 0
    assert 0.3 < data["total"]["kit"]["runtime_ns"] / 1e9 < 5


def test_doctor_reports_engines_and_iopoll_here():
    p = run_kit("doctor", "--json", timeout=180)
    assert p.returncode == 0, p.stderr
    caps = json.loads(p.stdout)
    assert tuple(caps["engines"]) == engine_names()
    # the reference box: every engine works buffered and direct; IOPOLL does not on virtio
    for name, e in caps["engines"].items():
        assert e["buffered"] and e["direct"], (name, e)
    assert caps["features"]["io_uring.fixedbufs"]["ok"]
    assert caps["features"]["io_uring.sqthread_poll"]["ok"]
    if (caps["target"]["device"] or {}).get("io_poll") == 0:
        assert not caps["features"]["io_uring.hipri"]["ok"]
        assert "poll queues" in caps["features"]["io_uring.hipri"]["reason"]
    assert caps["build"]["stale"] is None
    assert caps["privileges"]["root"] == (os.geteuid() == 0)
    text = run_kit("doctor", timeout=180).stdout
    assert "io_uring" in text and "hipri" in text
