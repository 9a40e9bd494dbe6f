"""Histograms, percentiles and the result schema."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import kit
from conftest import require
from kit import hist


def test_percentiles_within_one_percent_of_exact():
    rng = np.random.default_rng(42)
    samples = rng.lognormal(mean=np.log(50_000), sigma=1.2, size=200_000).astype(np.int64) + 1
    counts = np.bincount(hist.val_to_idx(samples), minlength=hist.PLAT_NR)
    ours = hist.percentiles(counts)
    for key, value in ours.items():
        exact = np.percentile(samples, float(key), method="inverted_cdf")
        assert abs(value - exact) / exact <= 0.01, (key, value, exact)


def test_small_values_are_exact():
    counts = np.bincount(hist.val_to_idx(np.arange(100)), minlength=hist.PLAT_NR)
    assert hist.percentiles(counts)["50.000000"] == 49
    assert hist.percentiles(counts)["1.000000"] == 0


def test_bins_round_trip():
    counts = np.zeros(hist.PLAT_NR, dtype=np.int64)
    counts[[5, 200, 1000, 1855]] = [3, 7, 11, 1]
    assert np.array_equal(hist.from_bins(hist.to_bins(counts)), counts)


def test_percentiles_agree_with_fio_bucket_for_bucket(tmp_path):
    """fio's own json+ bins, read by kit, give fio's own percentiles."""
    require(shutil.which("fio") is not None, "fio is not installed")
    target = tmp_path / "f"
    out = subprocess.run(["fio", "--name=x", f"--filename={target}", "--size=4m", "--rw=randread", "--bs=4k",
                          "--ioengine=psync", "--output-format=json+"], capture_output=True, text=True, check=True)
    clat = json.loads(out.stdout[out.stdout.index("{"):])["jobs"][0]["read"]["clat_ns"]
    counts = hist.from_bins(clat["bins"])
    assert counts.sum() == clat["N"] == 1024
    assert hist.percentiles(counts, clat["N"]) == clat["percentile"]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    d = tmp_path_factory.mktemp("res")
    job = kit.Job(ioengine="libaio", rw="randrw", rwmixread=80, bs="4k", iodepth=8, size="4m", numjobs=2,
                  directory=str(d))
    return kit.run(job, progress=False)


def test_totals_add_up(result):
    jobs = result.data["jobs"]
    for d in ("read", "write"):
        assert result.total[d]["total_ios"] == sum(j[d]["total_ios"] for j in jobs)
        assert result.total[d]["clat_ns"]["N"] == result.total[d]["total_ios"]
        secs = result.total["kit"]["ddir_runtime_ns"][d] / 1e9     # fio: per direction
        assert result.total[d]["bw_bytes"] == int(result.total[d]["io_bytes"] / secs)
        assert result.total[d]["iops"] == pytest.approx(result.total[d]["total_ios"] / secs)
    assert result.ios == 2 * 1024
    level = result.total["iodepth_level"]
    assert 99.5 <= sum(level.values()) <= 101
    assert sum(result.total["latency_us"].values()) + sum(result.total["latency_ns"].values()) \
        + sum(result.total["latency_ms"].values()) == pytest.approx(100, abs=1)


def test_result_carries_provenance(result):
    d = result.data
    assert d["schema"] == "kit-result/1" and d["kit version"] == kit.__version__
    from kit.engines import built_hash
    assert d["source_hash"] == built_hash()
    assert d["machine"]["kernel"]["release"] == os.uname().release
    assert d["machine"]["target"]["filesystem"]["type"]
    assert d["job"]["ioengine"] == "libaio" and d["job"]["iodepth"] == 8
    assert d["traced"] is False and d["interrupted"] is False and d["error"] is None


def test_save_load_and_frame(result, tmp_path):
    path = tmp_path / "r.json"
    result.save(path)
    again = kit.Result.load(path)
    assert again.data == json.loads(result.to_json())
    frame = again.to_frame()
    assert list(frame["ddir"]) == ["read", "write"]
    assert frame["ios"].sum() == result.ios
    assert (frame["ioengine"] == "libaio").all() and (frame["machine"] == result.data["machine"]["name"]).all()
    assert len(again.to_frame(per_job=True)) == 4
    assert frame.loc[0, "clat_p99_ns"] == result.total["read"]["clat_ns"]["percentile"]["99.000000"]
    assert "<table>" in result._repr_html_() and "libaio" in result._repr_html_()
    assert np.array_equal(again.lat_histogram(), result.lat_histogram())


def test_a_result_says_when_the_machine_was_busy(tmp_path):
    """Two busy loops on this 2-CPU machine during a run: the result says
    other processes used about a CPU or more, and a note says so; a quiet
    run says nothing of the kind."""
    import subprocess
    import kit
    job = kit.Job(rw="randread", size="16m", runtime=1, time_based=True, directory=str(tmp_path))
    quiet = kit.run(job, progress=False)
    load = quiet.data["process"]["machine_during_run"]
    assert not load["busy"] and load["others_cpus"] < 0.25
    assert not any("busy with other work" in n for n in quiet.data["notes"])
    hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(2)]
    try:
        busy = kit.run(job, progress=False)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    load = busy.data["process"]["machine_during_run"]
    assert load["busy"] and load["others_cpus"] > 0.8
    assert any("busy with other work" in n for n in busy.data["notes"])
    assert kit.results.Result.from_dict(json.loads(json.dumps(busy.data))).data["process"]["machine_during_run"]
