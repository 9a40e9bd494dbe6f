"""fio's option names in kit: a name fio 3.33 does not take is refused as fio
refuses it, an option fio has and kit cannot run is refused (kit would measure
another workload), and one that changes only fio's output is a warning (an
error with --strict) -- each case checked against fio itself (fio
--parse-only), and nothing written when kit refuses."""
import importlib.util
import json
import os
import shutil
import subprocess

import pytest

from conftest import REPO, require, run_kit
from kit import Job, OptionError, fio_names
from kit.fio import read_job_file
from kit.job import FIO_TO_KIT, KIT_RUNS_AS, NO_EFFECT, OUTPUT_ONLY, fio_option_verdict
from kit.sweep import from_dict


@pytest.fixture(autouse=True)
def _fio():
    require(shutil.which("fio") is not None, "fio is not installed")


# line 8 is the option's (lines after it: the next ones)
BASE = "[global]\nioengine=psync\nsize=256k\n[job]\nrw=randread\nbs=4k\nrandseed=7\n"


def job_file(folder, *options, name="job.fio"):
    path = folder / name
    path.write_text(BASE + "".join(f"{o}\n" for o in options))
    return path


def fio_parse(path):
    """(exit code, stderr) of fio --parse-only on a job file."""
    p = subprocess.run(["fio", "--parse-only", str(path)], capture_output=True, text=True, timeout=30,
                       cwd=path.parent)
    return p.returncode, p.stderr + p.stdout


TYPOS = [("iodpeth=8", "iodepth"), ("BS=4k", "bs"), ("blocksize_rnage=4k-64k", "blocksize_range"),
         ("time-based", "time_based"), ("waitfor=job", "wait_for"),
         # names kit once took as aliases, which fio 3.33 does not have
         ("engine=libaio", "ioengine"), ("invalidate_cache=1", "invalidate")]


@pytest.mark.parametrize("option, near", TYPOS)
def test_a_name_fio_does_not_take_is_refused_with_the_nearest_and_nothing_written(tmp_path, option, near):
    path = job_file(tmp_path, option)
    code, said = fio_parse(path)
    assert code != 0 and f"Bad option <{option}>" in said, said
    p = run_kit("run", "job.fio", "--output=out.json", cwd=tmp_path)
    name = option.split("=")[0]
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == (f"kit run: error: job.fio:8 [job]: {name}: no such option in fio 3.33 or kit "
                        f"(did you mean {near}?); fio refuses it too\n")
    assert os.listdir(tmp_path) == ["job.fio"]          # no kit-scratch, no out.json


# options fio runs and kit cannot: each changes which I/O is issued, when, how big, where, with what data,
# or how it is synced (or what runs around the job)
CANNOT_RUN = ["io_submit_mode=offload", "iodepth_low=4", "latency_target=10ms", "bs_is_seq_rand=1",
              "zonemode=strided", "verify_pattern=0xff", "buffer_pattern=0xab", "ss=iops:10%",
              "exec_prerun=true", "wait_for=job", "numa_cpu_nodes=0"]


@pytest.mark.parametrize("option", CANNOT_RUN)
def test_an_option_kit_cannot_run_is_refused_though_fio_takes_it(tmp_path, option):
    path = job_file(tmp_path, option)
    code, said = fio_parse(path)
    assert code == 0, said
    name = option.split("=")[0]
    with pytest.raises(OptionError) as e:
        read_job_file(str(path))
    assert str(e.value).startswith(f"job.fio:8 [job]: {name}: kit cannot run it (fio: "), e.value
    assert "so it would measure something other than the job describes" in str(e.value)


def test_an_engine_option_and_randrepeat_0_are_refused_on_the_command_line_too(tmp_path):
    path = job_file(tmp_path, "ioengine=io_uring", "nowait=1")
    assert fio_parse(path)[0] == 0
    p = run_kit("run", "job.fio", cwd=tmp_path)
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr.startswith("kit run: error: job.fio:9 [job]: nowait: kit cannot run it (fio: Use RWF_NOWAIT "
                               "for reads/writes; fio's io_uring, libaio, sync ioengine option)")
    path = job_file(tmp_path, "randrepeat=0")
    assert fio_parse(path)[0] == 0
    p = run_kit("run", "job.fio", cwd=tmp_path)
    assert p.returncode == 2 and "job.fio:8 [job]: randrepeat: 0 makes fio's random offsets differ" in p.stderr
    p = run_kit("run", "--ioengine=null", "--size=64k", "--iodepth_low=2", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.startswith("kit run: error: --iodepth_low: kit cannot run it (fio: Low water mark")
    p = run_kit("run", "--ioengine=null", "--size=64k", "--iodpeth=2", cwd=tmp_path)
    assert p.returncode == 2 and "--iodpeth: is not a kit run option (did you mean --iodepth?)" in p.stderr
    assert os.listdir(tmp_path) == ["job.fio"]


def test_deprecated_options_go_as_fio_takes_them(tmp_path):
    """fio 3.33 fails a job on rwmixcycle (FIO_OPT_DEPRECATED) and ignores
    verifysort (soft-deprecated), as it ignores a profile's option."""
    path = job_file(tmp_path, "rwmixcycle=100")
    code, said = fio_parse(path)
    assert code != 0 and "Option rwmixcycle is deprecated" in said
    with pytest.raises(OptionError, match=r"^job.fio:8 \[job\]: rwmixcycle: fio 3.33 refuses it too"):
        read_job_file(str(path))
    path = job_file(tmp_path, "verifysort=1", "block=4k")
    assert fio_parse(path)[0] == 0
    assert read_job_file(str(path), strict=True).warnings == [
        "job.fio:8 [job]: verifysort: fio 3.33 ignores it (deprecated); so does kit",
        "job.fio:9 [job]: block: fio's tiobench profile option, which does nothing in a plain job; ignored, "
        "as fio does"]


# a value fio takes for each option kit lets through with a warning
OUTPUT_ONLY_SAMPLES = {
    "write_hist_log": "h", "log_hist_msec": "100", "log_hist_coarseness": "2", "log_max_value": "1",
    "log_compression": "1m", "log_compression_cpus": "0", "log_store_compressed": "1", "log_unix_epoch": "1",
    "log_alternate_epoch": "1", "log_alternate_epoch_clock_id": "1", "log_entries": "2048", "log_prio": "1",
    "write_iolog": "io.log", "unified_rw_reporting": "mixed", "disable_lat": "1", "disable_clat": "1",
    "disable_slat": "1", "disable_bw_measurement": "1", "significant_figures": "6", "unit_base": "8",
    "stats": "0", "block_error_percentiles": "1", "disk_util": "0", "error_dump": "0", "verify_dump": "1",
    "verify_state_save": "0", "cgroup_nodelete": "1", "unique_filename": "0", "allow_mounted_write": "1",
    "unlink": "1"}


def test_every_output_only_option_is_one_fio_takes_and_one_warning(tmp_path):
    assert set(OUTPUT_ONLY_SAMPLES) == set(OUTPUT_ONLY)
    options = [f"{k}={v}" for k, v in OUTPUT_ONLY_SAMPLES.items()]
    path = job_file(tmp_path, *options)
    code, said = fio_parse(path)
    assert code == 0 and "Bad option" not in said, said
    warnings = read_job_file(str(path)).warnings
    assert [w.split(": ")[:2] for w in warnings] == [[f"job.fio:{8 + i} [job]", k]
                                                     for i, k in enumerate(OUTPUT_ONLY_SAMPLES)]
    assert all(": changes only fio's output (" in w and w.endswith("); ignored") for w in warnings)
    # fio's aliases are the same options (disable_bw is disable_bw_measurement)
    assert fio_option_verdict("disable_bw", "1") == fio_option_verdict("disable_bw_measurement", "1")


def _run(folder, *args):
    p = run_kit("run", *args, "--output-format=json", "--output=out.json", cwd=folder)
    assert p.returncode == 0, p.stderr
    with open(folder / "out.json") as fh:
        return json.load(fh), p.stderr


def _what_matters(doc):
    """What the run was and did: the job, the I/Os per direction, the queue
    depths and the files (not the options listed: fio's JSON lists ignored
    ones too)."""
    return {"job": doc["job"], "label": doc["label"], "global options": doc["global options"],
            "jobs": [(j["jobname"], j["kit"]["verified_bytes"], j["kit"]["iodepth_level_exact"],
                      [(d, j[d]["total_ios"], j[d]["io_bytes"], j[d]["short_ios"], j[d]["drop_ios"])
                       for d in ("read", "write", "trim")], j["sync"]["total_ios"]) for j in doc["jobs"]],
            "files": [(t["kind"], os.path.basename(t["path"]), t["size"]) for t in doc["targets"]]}


def test_output_only_options_warn_and_the_run_is_the_same_and_strict_refuses(tmp_path):
    plain, warned = tmp_path / "plain", tmp_path / "warned"
    plain.mkdir()
    warned.mkdir()
    job_file(plain)
    extra = ["unified_rw_reporting=mixed", "write_hist_log=h", "log_hist_msec=100", "disk_util=0",
             "zonemode=none", "io_submit_mode=inline", "description=the same job", "thread",
             "continue_on_error=none", "file_service_type=roundrobin", "mem=malloc", "do_verify=1",
             "random_generator=tausworthe"]
    path = job_file(warned, *extra)
    assert fio_parse(path)[0] == 0
    baseline, said = _run(plain, "job.fio")
    assert said == ""
    doc, said = _run(warned, "job.fio", "--unit_base=8")
    assert said.splitlines() == [
        "kit run: warning: --unit_base: changes only fio's output (bits or bytes in fio's report); ignored",
        "kit run: warning: job.fio:8 [job]: unified_rw_reporting: changes only fio's output (fio's report sums "
        "the directions; kit's reports each one); ignored",
        "kit run: warning: job.fio:9 [job]: write_hist_log: changes only fio's output (fio writes a latency "
        "histogram log; kit writes none, its result keeps the bins); ignored",
        "kit run: warning: job.fio:10 [job]: log_hist_msec: changes only fio's output (the interval of fio's "
        "histogram log (write_hist_log)); ignored",
        "kit run: warning: job.fio:11 [job]: disk_util: changes only fio's output (disk utilisation in fio's "
        "report); ignored"]
    assert _what_matters(doc) == _what_matters(baseline)
    assert baseline["jobs"][0]["read"]["total_ios"] == 64
    # listed as fio lists them, every one given a value (thread stands alone)
    assert doc["jobs"][0]["job options"] == {**baseline["jobs"][0]["job options"], **dict(
        o.split("=", 1) for o in extra if "=" in o)}
    assert sorted(os.listdir(warned)) == ["job.fio", "kit-scratch", "out.json"]     # no histogram log
    before = {p: os.stat(os.path.join(warned, p)).st_mtime_ns for p in os.listdir(warned)}
    for args in (["job.fio", "--strict"], ["--ioengine=null", "--size=64k", "--unit_base=8", "--strict"]):
        p = run_kit("run", *args, "--output=again.json", cwd=warned)
        assert (p.returncode, p.stdout, len(p.stderr.splitlines())) == (2, "", 1), p.stderr
        assert "changes only fio's output" in p.stderr and p.stderr.rstrip().endswith("(--strict)")
        assert {p: os.stat(os.path.join(warned, p)).st_mtime_ns for p in os.listdir(warned)} == before


def test_jobs_and_sweeps_say_why_fios_options_are_not_theirs():
    with pytest.raises(OptionError, match=r"^io_submit_mode: kit cannot run it \(fio: How IO submissions"):
        Job.from_options({"io_submit_mode": "offload"})
    with pytest.raises(OptionError, match="^stats: is fio's option, which kit ignores in job files"):
        Job.from_options({"stats": "0"})
    spec = {"name": "s", "base": {"rw": "read", "size": "64k"}, "grid": {"iodepth_low": [1, 2]}}
    with pytest.raises(OptionError, match=r"iodepth_low: kit cannot run it .*\(sweep s, point iodepth_low=1\)"):
        from_dict(spec)
    spec["grid"] = {"iodpeth": [1, 2]}
    with pytest.raises(OptionError, match=r"iodpeth: is not a kit option \(did you mean iodepth\?\)"):
        from_dict(spec)


def test_the_names_cover_what_fio_lists_and_kits_tables_name_real_options():
    """fio --cmdhelp=all (every option of this fio build) and --enghelp for
    the ioengines kit has a twin of are all in kit.fio_names; every name
    kit's tables give fio's meaning to is one of fio's."""
    listed = subprocess.run(["fio", "--cmdhelp=all"], capture_output=True, text=True, timeout=30).stdout
    names = {line.split(":")[0].strip() for line in listed.splitlines() if ":" in line}
    assert len(names) > 200
    assert names <= {option for option, _help in fio_names.GENERAL.values()}, names - set(fio_names.GENERAL)
    for engine in ("io_uring", "libaio"):
        listed = subprocess.run(["fio", f"--enghelp={engine}"], capture_output=True, text=True, timeout=30).stdout
        names = {line.split(":")[0].strip() for line in listed.splitlines() if ":" in line}
        assert names and all(engine in fio_names.ENGINE[n][2] for n in names), names
    fio_options = {option for option, *_ in (*fio_names.GENERAL.values(), *fio_names.PROFILE.values())}
    assert set(OUTPUT_ONLY) | set(KIT_RUNS_AS) | set(NO_EFFECT) <= fio_options
    assert not (set(OUTPUT_ONLY) | set(KIT_RUNS_AS)) & set(FIO_TO_KIT)        # none is one kit runs
    assert set(fio_names.DEPRECATED) <= fio_options


def test_the_generator_reads_fio_option_arrays_only():
    """scripts/fio_option_names.py: the entries of struct fio_option arrays
    (both sides of an #ifdef, aliases, adjacent string literals), never an
    ioengine's own .name or a posval's."""
    spec = importlib.util.spec_from_file_location("gen", os.path.join(REPO, "scripts", "fio_option_names.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    source = r'''
static struct ioengine_ops ioengine = { .name = "myengine", .version = 1, };
/* .name = "commented" */
static struct fio_option options[] = {
	{
		.name	= "first",
		.alias	= "first_alias",
		.help	= "Two " "parts, \"quoted\"",
		.posval = { { .ival = "x", .help = "not the option's" }, },
	},
#ifdef CONFIG_THING
	{ .name = "second", .type = FIO_OPT_INT, .help = "On" },
#else
	{ .name = "second", .type = FIO_OPT_UNSUPPORTED, .help = "Off" },
#endif
	{ .name = NULL, },
};
'''
    entries = gen.option_arrays(source)
    assert [(e["name"], e.get("alias"), e["help"]) for e in entries[:2]] == [
        ("first", "first_alias", 'Two parts, "quoted"'), ("second", None, "On")]
    assert [e["name"] for e in entries] == ["first", "second", "second", "NULL"]
