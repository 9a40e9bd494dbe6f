"""fio conformance: a job file means the same job to kit as to fio (read by
both, option by option), runs to the same groups and counts, and gives JSON
of fio's shape (every key fio writes, key by key), so fio's tools read it.

The corpus is tests/conformance/*.fio: job files written for these tests,
each run here by fio itself and by kit."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import require, run_kit
from kit import Job, OptionError
from kit.engines import engine_names, fio_twin
from kit.fio import FIO_DEFAULTS, read_job_file
from kit.job import NO_EFFECT, OPTIONS, ORDERING, canonical_option

CORPUS = sorted((Path(__file__).parent / "conformance").glob("*.fio"))
# what depends on the values, not on the shape: json+ bins (one key per
# latency seen)
VALUE_KEYED = ("bins",)


@pytest.fixture(autouse=True)
def _fio():
    require(shutil.which("fio") is not None, "fio is not installed")


def showcmd(path):
    """fio's own reading of a job file: ({global option: value},
    [(section, {option: value})]); a bare option's value is None. fio
    prints options under their canonical names."""
    p = subprocess.run(["fio", "--showcmd", str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    line = p.stdout.strip()
    assert line.startswith("fio")
    glob, sections = {}, []
    for token in line[len("fio"):].split(" --")[1:] if line[len("fio"):].startswith(" --") else []:
        key, sep, value = token.strip().lstrip("-").partition("=")
        if key == "name":
            sections.append((value, {}))
        else:
            (sections[-1][1] if sections else glob)[key] = value if sep else None
    return glob, sections


def run_fio(path, cwd):
    p = subprocess.run(["fio", "--output-format=json+", str(path)], capture_output=True, text=True,
                       timeout=120, cwd=cwd)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout[p.stdout.index("{"):])


def run_kit_file(path, cwd):
    p = run_kit("run", str(path), "--output-format=json+", "--progress=0", cwd=cwd)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_kit_reads_the_job_file_as_fio_does(path):
    """Option by option: the Job kit reads from the file equals the Job made
    from fio's reading of it (--showcmd: comments, [global], aliases gone)."""
    glob, sections = showcmd(path)
    jobs = read_job_file(str(path)).jobs
    assert [j.name for j in jobs] == [name for name, _ in sections]
    for job, (name, options) in zip(jobs, sections):
        inherited = glob
        if options.get("ioengine", glob.get("ioengine")) != glob.get("ioengine"):
            # fio frees [global]'s engine options with the engine the job leaves
            inherited = {k: v for k, v in glob.items() if not (k in OPTIONS and OPTIONS[k].engines)}
        merged = {k: ("1" if v is None else v) for k, v in {**inherited, **options}.items()
                  if k not in ORDERING and k not in NO_EFFECT}
        said = {canonical_option(k) for k in merged}        # fio's defaults where kit's differ and none is said
        fio_defaults = {k: v for k, v in FIO_DEFAULTS.items() if k not in said}
        assert Job.from_options({"name": name, **fio_defaults, **merged}) == job, name
        # and as fio's JSON lists them: canonical names, values as written,
        # bare flags left out; [global]'s apart
        written = {k: v for k, v in options.items() if v is not None}
        assert job.written("job") == written, name
        assert job.written("global") == {k: v for k, v in inherited.items() if v is not None and k not in written}


def _shape_problems(fio, kit, where=""):
    """Keys fio writes that kit does not, recursively (kit may add its own)."""
    if not isinstance(fio, dict):
        return [] if not isinstance(kit, dict) else [f"{where}: fio has a value, kit an object"]
    if not isinstance(kit, dict):
        return [f"{where}: fio has an object, kit does not"]
    problems = [f"{where}.{k}: missing" for k in fio if k not in kit]
    for k in fio:
        if k in kit and k not in VALUE_KEYED:
            problems += _shape_problems(fio[k], kit[k], f"{where}.{k}")
    return problems


def _deterministic(job_options, global_options):
    """Counts fio and kit must agree on exactly: no mix, not time-bound."""
    o = {**global_options, **job_options}
    return o.get("rw", "read") in ("read", "write", "randread", "randwrite") and "time_based" not in o \
        and "runtime" not in o


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_kit_runs_the_job_file_as_fio_does(path, tmp_path):
    """Both run the file: the same jobs in the same groups with the same job
    and global options, every key fio writes present in kit's JSON, and the
    same I/O counts where they are determined."""
    (tmp_path / "fio").mkdir()
    (tmp_path / "kit").mkdir()
    f = run_fio(path, tmp_path / "fio")
    k = run_kit_file(path, tmp_path / "kit")
    assert [(e["jobname"], e["groupid"]) for e in k["jobs"]] == [(e["jobname"], e["groupid"]) for e in f["jobs"]]
    assert k["global options"] == f.get("global options", {})     # fio leaves it out when empty
    top = {key: value for key, value in f.items() if key != "jobs"}
    assert _shape_problems(top, k) == []
    for fe, ke in zip(f["jobs"], k["jobs"]):
        assert ke["job options"] == fe["job options"], fe["jobname"]
        assert _shape_problems(fe, ke, fe["jobname"]) == []
        if _deterministic(fe["job options"], f.get("global options", {})):
            for d in ("read", "write", "trim"):
                assert ke[d]["total_ios"] == fe[d]["total_ios"], (fe["jobname"], d)
                assert ke[d]["io_bytes"] == fe[d]["io_bytes"], (fe["jobname"], d)
        assert ke["sync"]["total_ios"] == fe["sync"]["total_ios"], fe["jobname"]


@pytest.mark.parametrize("engine", [e for e in engine_names() if fio_twin(e)])
def test_every_engine_fio_has_gives_fios_json_shape(engine, tmp_path):
    """The same job by fio and by kit, key by key (values aside)."""
    job = tmp_path / f"{engine}.fio"
    job.write_text(f"[{engine}]\nioengine={fio_twin(engine)}\nrw=randrw\nsize=256k\niodepth=2\n")
    (tmp_path / "fio").mkdir()
    (tmp_path / "kit").mkdir()
    f = run_fio(job, tmp_path / "fio")
    job.write_text(f"[{engine}]\nioengine={engine}\nrw=randrw\nsize=256k\niodepth=2\n")
    k = run_kit_file(job, tmp_path / "kit")
    assert _shape_problems({key: v for key, v in f.items() if key != "jobs"}, k) == []
    assert _shape_problems(f["jobs"][0], k["jobs"][0], engine) == []


def test_verify_reads_are_reported_under_read_as_fio_does(tmp_path):
    """write + verify: every block written is read back, counted under read
    with its own runtime; kit also says how many bytes it checked."""
    path = Path(__file__).parent / "conformance" / "verify.fio"
    (tmp_path / "fio").mkdir()
    (tmp_path / "kit").mkdir()
    f = run_fio(path, tmp_path / "fio")["jobs"][0]
    k = run_kit_file(path, tmp_path / "kit")["jobs"][0]
    for e in (f, k):
        assert e["write"]["total_ios"] == e["read"]["total_ios"] == 128
        assert e["read"]["clat_ns"]["N"] == 128
        assert e["read"]["runtime"] >= 0 and e["write"]["runtime"] >= 0
    assert k["kit"]["verified_bytes"] == 1 << 20
    assert k["job_runtime"] == pytest.approx(k["read"]["runtime"] + k["write"]["runtime"], abs=2)


def test_a_ramp_longer_than_the_job_is_reported_like_fio_with_a_note(tmp_path):
    path = Path(__file__).parent / "conformance" / "ramp.fio"
    (tmp_path / "fio").mkdir()
    (tmp_path / "kit").mkdir()
    f = run_fio(path, tmp_path / "fio")
    k = run_kit_file(path, tmp_path / "kit")
    assert k["jobs"][0]["read"]["total_ios"] == f["jobs"][0]["read"]["total_ios"] == 64
    assert any("ramp_time=2s outlasted the job" in n for n in k["notes"]), k["notes"]
    assert k["jobs"][0]["elapsed"] <= 1          # it did not run on for the ramp's 2 s


def test_fio_options_kit_cannot_run_are_refused_and_output_only_ones_warn(tmp_path):
    """Real fio options kit does not run (fio itself accepts the file): the
    ones that change the I/O are refused, one line naming the file, section
    and option, nothing written (they were warnings once, and kit measured
    another workload); the ones that change only fio's output warn once
    each, and --strict refuses them."""
    refused = ["lockmem=1m", "numa_mem_policy=local", "ioscheduler=none", "dedupe_percentage=10", "buffer_pattern=0xab",
               "create_serialize=0", "openfiles=1", "mem=shm"]
    warned = ["unlink=1", "disk_util=0", "write_iolog=io.log"]
    path = tmp_path / "unsupported.fio"
    path.write_text("[global]\n" + "\n".join(refused[:4]) + "\n[job]\nrw=read\nsize=64k\n"
                    + "\n".join(refused[4:] + warned) + "\n")
    assert subprocess.run(["fio", "--parse-only", str(path)], capture_output=True).returncode == 0
    for option in refused:
        one = tmp_path / "one.fio"
        one.write_text(f"[job]\nrw=read\nsize=64k\n{option}\n")
        name = option.split("=")[0]
        with pytest.raises(OptionError, match=rf"^one.fio:4 \[job\]: {name}: kit cannot run it"):
            read_job_file(str(one))
    p = run_kit("run", str(path), cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("kit run: error: unsupported.fio:2 [global]: lockmem: ")
    assert len(p.stderr.strip().splitlines()) == 1
    path.write_text("[job]\nrw=read\nsize=64k\n" + "\n".join(warned) + "\n")
    jf = read_job_file(str(path))
    assert [w.split(": ")[:2] for w in jf.warnings] == [["unsupported.fio:4 [job]", "unlink"],
                                                        ["unsupported.fio:5 [job]", "disk_util"],
                                                        ["unsupported.fio:6 [job]", "write_iolog"]]
    assert all("changes only fio's output" in w and w.endswith("; ignored") for w in jf.warnings)
    p = run_kit("run", str(path), "--strict", cwd=tmp_path)
    assert p.returncode == 2 and "unlink" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["one.fio", "unsupported.fio"]      # no scratch, no io.log


def test_engine_options_go_with_their_engine_as_in_fio(tmp_path):
    """fio reads an engine's option with the engine in effect where it is
    written: in a [global] without one (fio's default, psync) it is refused;
    a job that loads another engine leaves [global]'s options of the engine
    it leaves behind (kit says so in a warning), those kit cannot run too."""
    def both(text):
        path = tmp_path / "e.fio"
        path.write_text(text)
        fio_ok = subprocess.run(["fio", "--parse-only", str(path)], capture_output=True).returncode == 0
        try:
            return fio_ok, read_job_file(str(path))
        except OptionError as e:
            return fio_ok, str(e)

    fio_ok, kit = both("[global]\nsqthread_poll=1\nsize=64k\n[j]\nioengine=io_uring\n")
    assert not fio_ok and kit.startswith("e.fio [global]: sqthread_poll: only ioengine=io_uring has it, and this "
                                         "section's ioengine is psync (fio's default)"), kit
    fio_ok, kit = both("[global]\nioengine=libaio\nuserspace_reap=1\nsize=64k\n[j]\nioengine=io_uring\n"
                       "[k]\nioengine=psync\n")
    assert fio_ok and [j.ioengine for j in kit.jobs] == ["io_uring", "psync"]
    assert [w.split(": ", 1)[0] for w in kit.warnings] == ["e.fio [j]", "e.fio [k]"]
    assert all("[global]'s userspace_reap (options of ioengine=libaio) do not apply" in w for w in kit.warnings)
    fio_ok, kit = both("[global]\nioengine=libaio\nuserspace_reap=1\nsize=64k\n[j]\nioengine=io_uring\n[k]\n")
    assert fio_ok and kit.startswith("e.fio:3 [global]: userspace_reap: kit cannot run it"), kit   # [k] keeps libaio
    fio_ok, kit = both("[global]\nioengine=io_uring\nfixedbufs=1\nhipri=0\nsize=64k\n[global]\nioengine=libaio\n"
                       "[j]\n[k]\nioengine=io_uring\n")
    assert fio_ok and [(j.ioengine, j.fixedbufs) for j in kit.jobs] == [("libaio", False), ("io_uring", False)]
    assert kit.warnings == ["e.fio:7 [global]: ioengine=libaio here, so [global]'s fixedbufs, hipri (options of "
                            "ioengine=io_uring) do not apply, as in fio"]
    fio_ok, kit = both("[global]\nioengine=io_uring\nfixedbufs=1\nsize=64k\n[j]\nioengine=io_uring\n[k]\n")
    assert fio_ok and [j.fixedbufs for j in kit.jobs] == [True, True] and kit.warnings == []
    p = run_kit("run", "e.fio", "--progress=0", "--output-format=json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert [(j["jobname"], j["read"]["io_bytes"]) for j in json.loads(p.stdout)["jobs"]] == [("j", 65536), ("k", 65536)]


def test_null_engine_moves_nothing_and_counts_like_fio(tmp_path):
    """ioengine=null: no file is created or opened, and the I/O count is
    the size's, by kit and by fio alike; kit's per-I/O cost is its floor."""
    (tmp_path / "fio").mkdir()
    (tmp_path / "kit").mkdir()
    job = tmp_path / "null.fio"
    job.write_text("[floor]\nioengine=null\nrw=randread\nsize=64m\niodepth=8\n")
    f = run_fio(job, tmp_path / "fio")["jobs"][0]
    doc = run_kit_file(job, tmp_path / "kit")
    k = doc["jobs"][0]
    assert k["read"]["total_ios"] == f["read"]["total_ios"] == 16384
    assert os.listdir(tmp_path / "kit") == [] and doc["disk_util"] == []
    assert doc["targets"][0]["kind"] == "none"
    assert 0 < k["read"]["clat_ns"]["mean"] < 100_000       # no system call: well under 100 us
    assert k["ctx"] < 50
    assert _shape_problems(f, k, "null") == []
    p = run_kit("run", "--ioengine=null", "--rw=write", "--fsync=4", cwd=tmp_path)
    assert p.returncode == 2 and "fsync: ioengine=null moves no data" in p.stderr


def test_offset_increment_places_each_threads_file_as_fio(tmp_path):
    """numjobs=3 offset_increment=1m: fio lays out thread j's file to
    j MiB + size; kit's files end where fio's do."""
    path = Path(__file__).parent / "conformance" / "regions.fio"
    (tmp_path / "fio").mkdir()
    (tmp_path / "kit").mkdir()
    run_fio(path, tmp_path / "fio")
    run_kit_file(path, tmp_path / "kit")
    fio_sizes = {p.name: p.stat().st_size for p in (tmp_path / "fio").glob("threads.*")}
    kit_sizes = {p.name: p.stat().st_size for p in (tmp_path / "kit" / "kit-scratch").glob("threads.*")}
    assert fio_sizes == kit_sizes == {f"threads.{j}.0": (j << 20) + (256 << 10) for j in range(3)}


def test_a_blank_inside_a_value_is_refused_where_fio_misreads_it(tmp_path):
    """fio stops reading a number at a blank, unit and all (size=64 k is 64
    bytes to it); kit read what was meant, so one file meant two jobs.
    fio's own reading (--debug=parse) pins the reason; kit refuses in one
    line naming the option, and writes nothing."""
    cases = {"size=64 k": ("size", "out=64\n"), "bs=8k, 16k": ("bs", "out=16\n"),
             "runtime=1 ms": ("runtime", "out=1000000\n"), "rate=1 m": ("rate", "out=1\n"),
             "bssplit=4 k/50:8k/50": ("bssplit", None), "iodepth=4 ": None}
    for line, expected in cases.items():
        path = tmp_path / "b.fio"
        path.write_text(f"[j]\nioengine=null\nrw=rw\ntime_based\nruntime=1\nsize=64k\n{line}\n")
        if expected is None:            # a trailing blank: fio strips it, and so does kit
            assert read_job_file(str(path)).jobs[0].iodepth == 4
            continue
        option, fio_out = expected
        if fio_out:
            parsed = subprocess.run(["fio", "--debug=parse", "--parse-only", str(path)], capture_output=True,
                                    text=True, timeout=30).stdout
            # what fio made of the line: the values it parsed, up to the next option
            after = parsed.split(f" handle_option={option}, ptr={line.split('=', 1)[1]}\n")[-1]
            after = re.split(r" handle_option=| free options", after)[0]
            assert re.findall(r"ret=0, (out=\d+)", after)[-1] + "\n" == fio_out, parsed
        p = run_kit("run", "b.fio", cwd=tmp_path)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert f"{option}: " in p.stderr and "has a blank inside" in p.stderr, p.stderr
        assert os.listdir(tmp_path) == ["b.fio"]
    p = run_kit("run", "--bs=8 k", "--size=1m", cwd=tmp_path)
    assert p.returncode == 2 and "--bs: '8 k' has a blank inside" in p.stderr and "write 8k" in p.stderr


def test_job_files_reap_one_completion_per_call_as_fio(tmp_path):
    """fio's iodepth_batch_complete_max defaults to complete_min (1); kit's
    own default takes every completion there is: a job file means fio's."""
    (tmp_path / "r.fio").write_text("[one]\nioengine=libaio\niodepth=8\n[many]\nioengine=libaio\niodepth=8\n"
                                    "iodepth_batch_complete_max=8\n[min]\nioengine=libaio\niodepth=8\n"
                                    "iodepth_batch_complete_min=4\n")
    jobs = read_job_file(str(tmp_path / "r.fio")).jobs
    assert [j.iodepth_batch_complete_max for j in jobs] == [1, 8, 1]
    assert Job(ioengine="libaio", iodepth=8).iodepth_batch_complete_max == 0       # kit's own: every one
    (tmp_path / "r.fio").write_text("[global]\nioengine=libaio\niodepth=8\nrw=randread\nsize=256k\n"
                                    "[one]\n[many]\niodepth_batch_complete_max=8\n")
    p = run_kit("run", "r.fio", "--output-format=json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    reaped = {j["jobname"]: j["kit"]["iodepth_complete_exact"] for j in json.loads(p.stdout)["jobs"]}
    assert reaped["one"] == {"1": 64}, reaped       # one completion per reap, as fio
    assert max(int(n) for n in reaped["many"]) > 1, reaped


def test_a_job_file_job_without_a_size_is_refused_as_fio_does(tmp_path):
    """fio runs no job that has neither size= nor filesize= nor existing
    files (io_size and number_ios do not do); kit made a file of its own
    default size. Refused in one line, nothing written; --size supplies it."""
    for extra in ("", "io_size=64k\n", "number_ios=4\n", "nrfiles=2\n"):
        (tmp_path / "n.fio").write_text(f"[j]\nrw=read\n{extra}")
        fio = subprocess.run(["fio", "n.fio", "--output-format=terse"], capture_output=True, text=True,
                             cwd=tmp_path, timeout=30)
        assert "you need to specify size=" in fio.stdout + fio.stderr
        p = run_kit("run", "n.fio", cwd=tmp_path)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "n.fio [j]: no size=" in p.stderr and os.listdir(tmp_path) == ["n.fio"]
    p = run_kit("run", "n.fio", "--size=64k", "--output-format=json", cwd=tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)["jobs"][0]["read"]["io_bytes"] == 65536, p.stderr
    (tmp_path / "n.fio").write_text("[j]\nrw=read\nfilesize=64k\n")
    p = run_kit("run", "n.fio", "--output-format=json", cwd=tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)["jobs"][0]["read"]["io_bytes"] == 65536, p.stderr
