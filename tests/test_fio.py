"""fio interop: job files both ways, fio as a runner in kit's schema, fio JSON in."""
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import kit
from conftest import KIT, REPO, count_case, require, run_kit
from kit import Job, OptionError
from kit.fio import read_job, read_job_file, to_fio_file
from kit.results import from_fio_json
from kit.engines import engine_names, fio_twin
from kit.seed import seed_jobs


@pytest.fixture(autouse=True)
def _fio():
    require(shutil.which("fio") is not None, "fio is not installed")


ROUND_TRIP = [
    Job(name="a", ioengine="io_uring", rw="randread", bs="4k", iodepth=32, numjobs=2, nrfiles=4, size="64m",
        direct=True, runtime=0.5, time_based=True, fixedbufs=True, registerfiles=True, sqthread_poll=True,
        sqthread_poll_cpu=1, iodepth_batch_submit=8, iodepth_batch_complete_min=2,
        iodepth_batch_complete_max=16, group_reporting=True),
    Job(name="b", ioengine="libaio", rw="randrw", rwmixread=70, bs="16k", iodepth=8, filesize="8m", nrfiles=2,
        ramp_time=2, randseed=42, norandommap=True, fsync=16, verify="crc32c", filename_format="x.$jobnum.$filenum",
        write_bw_log="", write_lat_log="logs/b", log_avg_msec=500, log_offset=True),
    Job(name="c", ioengine="psync", rw="write", bs="1m", size="1g", number_ios=100, invalidate=True,
        pre_read=False, gtod_reduce=True, directory="/tmp/somewhere"),
    Job(name="d", ioengine="posixaio", rw="read", filename="/dev/null:/dev/zero"),
]


def test_job_to_fio_file_and_back(tmp_path):
    path = tmp_path / "jobs.fio"
    path.write_text(to_fio_file(ROUND_TRIP))
    parsed = read_job_file(str(path))
    assert parsed.warnings == []
    assert parsed.jobs == ROUND_TRIP
    assert len(parsed.groups) == len(ROUND_TRIP)        # written one after another
    one = tmp_path / "one.fio"
    one.write_text(to_fio_file(ROUND_TRIP[0]))
    assert read_job(str(one)) == ROUND_TRIP[0]


def test_fio_itself_accepts_what_kit_writes(tmp_path):
    import subprocess
    path = tmp_path / "jobs.fio"
    path.write_text(to_fio_file(ROUND_TRIP[:3]))
    p = subprocess.run(["fio", "--parse-only", str(path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


REAL_WORLD = """
; a database-ish mix, the way people write them
[global]
ioengine=libaio
direct=1
bs=8k
size=${DATA_SIZE}
runtime=30
time_based
group_reporting
thread
norandommap
randrepeat=1
zonemode=none
disk_util=0

[reader]
rw=randread
iodepth=16
numjobs=$ncpus

[writer]
rw=randwrite
iodepth=4
bs=(2*4k)

[log]
stonewall
rw=write
bs=64k
ioengine=psync
fsync=1
description=the log device
"""


def test_real_world_job_file(tmp_path):
    path = tmp_path / "db.fio"
    path.write_text(REAL_WORLD)
    parsed = read_job_file(str(path), env={"DATA_SIZE": "2g"})
    reader, writer, log = parsed.jobs
    assert [len(g) for g in parsed.groups] == [2, 1]         # reader+writer together, then log
    assert (reader.name, reader.rw, reader.iodepth, reader.numjobs) == ("reader", "randread", 16, os.cpu_count())
    assert reader.size == 2 << 30 and reader.bs == 8192 and reader.runtime == 30 and reader.time_based
    assert reader.direct and reader.norandommap and reader.group_reporting and reader.ioengine == "libaio"
    assert (writer.rw, writer.iodepth, writer.bs) == ("randwrite", 4, 8192)
    assert (log.ioengine, log.bs, log.fsync, log.rw) == ("psync", 65536, 1, "write")
    # zonemode=none is what kit runs as; disk_util only changes fio's report: named, with its line, once
    assert len(parsed.warnings) == 1
    assert parsed.warnings[0].startswith("db.fio:15 [global]: disk_util: changes only fio's output")
    with pytest.raises(OptionError, match="disk_util"):
        read_job_file(str(path), env={"DATA_SIZE": "2g"}, strict=True)
    with pytest.raises(OptionError, match=r"\$\{DATA_SIZE\} is not set"):
        read_job_file(str(path))


def test_job_file_errors_name_the_place(tmp_path):
    bad = tmp_path / "bad.fio"
    bad.write_text("[global]\nbs=4k\n[j]\nrw=sideways\n")
    with pytest.raises(OptionError) as e:
        read_job_file(str(bad))
    assert "bad.fio [j]: rw: must be one of" in str(e.value)
    bad.write_text("bs=4k\n[j]\n")
    with pytest.raises(OptionError, match="before any"):
        read_job_file(str(bad))


def _fio_run_file(job_file, cwd):
    """fio's JSON for a job file (None when fio refuses it), and all fio said."""
    p = subprocess.run(["fio", "--output-format=json", str(job_file)], cwd=cwd, capture_output=True, text=True)
    if p.returncode:
        return None, p.stderr + p.stdout
    return json.JSONDecoder().raw_decode(p.stdout[p.stdout.index("{"):])[0], p.stderr + p.stdout


def _kit_refuses(tmp_path, job_file, *words):
    """kit run refuses the job file: exit 2, one line with the words, nothing written."""
    before = sorted(os.listdir(tmp_path))
    p = run_kit("run", str(job_file), cwd=tmp_path)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, (p.returncode, p.stderr)
    for w in words:
        assert w in lines[0], (w, lines)
    assert sorted(os.listdir(tmp_path)) == before


def _bare_names():
    from kit.job import FIO_TO_KIT, NO_EFFECT, ORDERING
    return sorted(set(FIO_TO_KIT) | set(NO_EFFECT) | set(ORDERING))


def test_bare_options_only_where_fio_takes_them(tmp_path):
    # every option name kit reads from job files: kit takes it without a
    # value exactly when fio 3.33 does (its flags and the log options)
    def fio_parse(name):
        path = tmp_path / f"{name}.fio"
        path.write_text(f"[x]\nioengine=io_uring\nsize=1m\ndirect=1\n{name}\n")
        return name, path, subprocess.run(["fio", "--parse-only", str(path)], cwd=tmp_path, capture_output=True,
                                          text=True)
    checked, flags = 0, set()
    with ThreadPoolExecutor(8) as pool:
        parsed = list(pool.map(fio_parse, _bare_names()))
    for name, path, p in parsed:
        if "Bad option" in p.stderr + p.stdout:
            continue                    # kit's own option, or an alias fio does not have
        if name == "cpus_allowed":      # fio 3.33 parses it bare, then dies of it (SIGSEGV: strdup(NULL))
            with pytest.raises(OptionError, match="cpus_allowed needs a value"):
                read_job_file(str(path))
            continue
        checked += 1
        try:
            read_job_file(str(path))
            kit_takes = True
        except OptionError as e:
            kit_takes = "needs a value" not in str(e)
            assert kit_takes or f"{name}.fio:5: {name} needs a value" in str(e), e
        assert kit_takes == (p.returncode == 0), (name, p.returncode, p.stderr)
        if kit_takes:
            flags.add(name)
    assert checked > 80
    assert {"time_based", "norandommap", "group_reporting", "stonewall", "thread", "write_bw_log"} <= flags
    assert not {"bs", "fsync", "runtime", "direct", "numjobs", "randrepeat"} & flags
    # a bare flag is on, as in fio
    path = tmp_path / "flags.fio"
    path.write_text("[x]\nioengine=null\nsize=1m\ntime_based\nruntime=1\nnorandommap\n")
    job = read_job_file(str(path)).jobs[0]
    assert (job.time_based, job.norandommap) == (True, True)


@pytest.mark.parametrize("line", ["bs", "fsync", "runtime", "direct", "numjobs"])
def test_bare_option_refused_in_one_line(tmp_path, line):
    path = tmp_path / "bare.fio"
    path.write_text(f"[a]\nioengine=null\nrw=write\nsize=64k\n{line}\n")
    data, err = _fio_run_file(path, tmp_path)
    assert data is None and f"Option {line} requires an argument" in err
    _kit_refuses(tmp_path, path, f"bare.fio:5: {line} needs a value")


def _reads_as_fio(path, cwd, ios):
    """fio runs the file with these I/Os per job, and kit reads the same jobs from it."""
    data, err = _fio_run_file(path, cwd)
    assert data, err
    fio_ios = {j["jobname"]: j["read"]["total_ios"] for j in data["jobs"]}
    assert fio_ios == ios
    assert {j.name: j.size // j.bs for j in read_job_file(str(path)).jobs} == fio_ios


def test_include_joins_the_section_where_it_stands(tmp_path):
    # fio 3.33 init.c: include inside a section, options only, read at that point
    (tmp_path / "common.inc").write_text("; shared\nbs=16k\nsize=256k\n")
    path = tmp_path / "job.fio"
    path.write_text("[a]\nioengine=null\nrw=read\nbs=8k\ninclude common.inc\n"
                    "[b]\nioengine=null\nrw=read\ninclude common.inc\nbs=32k\n")
    _reads_as_fio(path, tmp_path, {"a": 16, "b": 8})


def test_include_relative_paths_as_fio(tmp_path, monkeypatch):
    # fio tries the name as written (from the working directory) first, then beside the including file
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "common.inc").write_text("bs=16k\n")
    path = sub / "job.fio"
    path.write_text("[a]\nioengine=null\nrw=read\nsize=256k\ninclude common.inc\n")
    data, err = _fio_run_file("sub/job.fio", tmp_path)
    assert data and data["jobs"][0]["read"]["total_ios"] == 16, err
    monkeypatch.chdir(tmp_path)
    assert read_job_file("sub/job.fio").jobs[0].bs == 16384
    (tmp_path / "common.inc").write_text("bs=64k\n")
    data, err = _fio_run_file("sub/job.fio", tmp_path)
    assert data and data["jobs"][0]["read"]["total_ios"] == 4, err
    assert read_job_file("sub/job.fio").jobs[0].bs == 65536


@pytest.mark.parametrize("job_text, inc_text, fio_says, kit_says", [
    ("[a]\nioengine=null\nsize=64k\ninclude sec.inc\n", "[x]\nbs=8k\n",
     "No new sections in included files", "sec.inc:1: [x] in an included file"),
    ("include sec.inc\n[a]\nioengine=null\nsize=64k\n", "bs=8k\n",
     "outside of [] job section", "job.fio:1: 'include sec.inc' before any [section]"),
])
def test_include_refused_where_fio_refuses_it(tmp_path, job_text, inc_text, fio_says, kit_says):
    (tmp_path / "sec.inc").write_text(inc_text)
    path = tmp_path / "job.fio"
    path.write_text(job_text)
    data, err = _fio_run_file(path, tmp_path)
    # fio 3.33 says so, but after "No new sections in included files" it runs the job without the
    # included options and exits 0 (__parse_jobs_ini's ret is overwritten): kit refuses
    assert fio_says in err
    _kit_refuses(tmp_path, path, kit_says)


def test_one_file_included_by_every_section_and_loops_refused(tmp_path):
    (tmp_path / "common.inc").write_text("bs=8k\n")
    path = tmp_path / "job.fio"
    path.write_text("".join(f"[j{i}]\nioengine=null\nsize=64k\ninclude common.inc\n" for i in range(3)))
    assert [j.bs for j in read_job_file(str(path)).jobs] == [8192] * 3
    (tmp_path / "loop.inc").write_text("bs=8k\ninclude loop.inc\n")
    path.write_text("[a]\nioengine=null\nsize=64k\ninclude loop.inc\n")
    _kit_refuses(tmp_path, path, "loop.inc:2:", "includes itself")


def test_sections_named_global_something_are_global(tmp_path):
    # fio 3.33 init.c: global = !strncmp(name, "global", 6)
    path = tmp_path / "g.fio"
    path.write_text("[global_defaults]\nioengine=null\nrw=read\nsize=1m\nbs=64k\n[a]\n[globalx]\nbs=128k\n[b]\n")
    _reads_as_fio(path, tmp_path, {"a": 16, "b": 8})
    # and kit never writes a job as a section fio would take for [global]
    with pytest.raises(OptionError, match="cannot be a fio \\[section\\] name"):
        to_fio_file(Job(name="global_x", ioengine="null"))


def test_directory_list_refused(tmp_path):
    # fio spreads a job's files over directory=a:b; kit takes one directory
    path = tmp_path / "d.fio"
    path.write_text(f"[a]\nioengine=psync\nrw=write\nsize=64k\nnrfiles=2\ndirectory={tmp_path}/d1:{tmp_path}/d2\n")
    _kit_refuses(tmp_path, path, "d.fio:6: directory:", "':'")


def _both_run(tmp_path, path):
    """fio's and kit's JSON for the job file, each run in a directory of its
    own: (fio, kit, fio's directory, kit's directory)."""
    runs = {}
    for who in ("fio", "kit"):
        (tmp_path / who).mkdir()
        if who == "fio":
            runs[who], err = _fio_run_file(path, tmp_path / who)
            assert runs[who], err
        else:
            p = run_kit("run", str(path), "--output-format=json", "--progress=0", cwd=tmp_path / who)
            assert p.returncode == 0, p.stderr
            runs[who] = json.loads(p.stdout)
    return runs["fio"], runs["kit"], tmp_path / "fio", tmp_path / "kit" / "kit-scratch"


def test_job_names_and_file_names_as_fio(tmp_path):
    """fio 3.33 (init.c get_new_job, add_job) names each job and its files
    after its [section]: [global]'s name= renames nothing (fio only lists
    it), a section's own name= renames the job in the report, and its
    files keep the section's name. kit named every job after [global]'s
    name=, so the jobs of fio's fio-rand-*.fio examples were all called
    fio-rand-RW, and two jobs without filename= wrote one file."""
    path = tmp_path / "names.fio"
    path.write_text("[global]\nname=shared\nioengine=psync\nrw=write\nsize=64k\n[a]\n[b]\nbs=16k\n"
                    "[c]\nname=renamed\n[d]\nname=formatted\nfilename_format=$jobname.x.$filenum\n")
    fio, kit_doc, fio_dir, kit_dir = _both_run(tmp_path, path)
    names = [j["jobname"] for j in fio["jobs"]]
    assert names == [j["jobname"] for j in kit_doc["jobs"]] == ["a", "b", "renamed", "formatted"]
    files = sorted(p.name for p in fio_dir.iterdir())
    assert files == sorted(p.name for p in kit_dir.iterdir() if not p.name.startswith(".")) \
        == ["a.0.0", "b.0.0", "c.0.0", "d.x.0"]
    assert kit_doc["global options"] == fio["global options"] and fio["global options"]["name"] == "shared"
    for f, k in zip(fio["jobs"], kit_doc["jobs"]):
        assert k.get("job options") == f.get("job options"), f["jobname"]     # [a] has none: no key in either
        assert k["write"]["io_bytes"] == f["write"]["io_bytes"] == 64 << 10


def test_options_kit_takes_as_they_are_are_listed_as_fio_lists_them(tmp_path):
    """fio's JSON lists every option given a value, under fio's own name,
    also the ones kit runs as anyway or ignores (description, randrepeat=1,
    zonemode=none, disk_util=0, stonewall=1, disable_bw=0); kit left them
    out."""
    path = tmp_path / "listed.fio"
    path.write_text("[global]\ndescription=a b c\nthread\nioengine=null\nsize=64k\n"
                    "[a]\nrandrepeat=1\ndisk_util=0\nstonewall=1\nzonemode=none\ndisable_bw=0\n")
    fio, kit_doc, _, _ = _both_run(tmp_path, path)
    assert kit_doc["global options"] == fio["global options"] == {"description": "a b c", "ioengine": "null",
                                                                  "size": "64k"}
    assert kit_doc["jobs"][0]["job options"] == fio["jobs"][0]["job options"] == {
        "randrepeat": "1", "disk_util": "0", "stonewall": "1", "zonemode": "none", "disable_bw_measurement": "0"}
    # a job's own description is fio's "desc" too
    path.write_text("[global]\nioengine=null\nsize=64k\n[a]\ndescription=hello there\n[b]\n")
    (tmp_path / "fio").rename(tmp_path / "fio1")
    (tmp_path / "kit").rename(tmp_path / "kit1")
    fio, kit_doc, _, _ = _both_run(tmp_path, path)
    for f, k in zip(fio["jobs"], kit_doc["jobs"]):
        assert (k.get("desc"), "job options" in k) == (f.get("desc"), "job options" in f), f["jobname"]
    assert kit_doc["jobs"][0]["desc"] == "hello there" and "job options" not in kit_doc["jobs"][1]


def test_an_engine_kit_has_not_is_named_before_its_options(tmp_path):
    """A job on an ioengine kit has not (fio's e4defrag.fio, netio.fio,
    falloc.fio examples) is refused naming the ioengine and its line: kit
    named the engine's own options first (donorname, port, which fio's
    help calls the HDFS namenode's port), one per run, each with 'take it
    out', or a buffered/direct disagreement fio does not mind."""
    cases = {
        "e4defrag": ("[global]\nioengine=e4defrag\nsize=64k\n[defrag]\nrw=write\ndonorname=file.def\ninplace=0\n",
                     "e4defrag.fio:2 [defrag]: ioengine:", "(got 'e4defrag')"),
        "netio": ("[global]\nioengine=net\nport=8888\nprotocol=tcp\n[receiver]\nlisten\nrw=read\n",
                  "netio.fio:2 [global]: ioengine:", "(got 'net')"),
        "falloc": ("[global]\nioengine=falloc\ndirect=0\nbuffered=0\nsize=64k\n[fuzzer]\nrw=randwrite\n",
                   "falloc.fio:2 [fuzzer]: ioengine:", "(got 'falloc')"),
        "own": ("[job]\nrw=read\nsize=64k\nioengine=e4defrag\n", "own.fio:4 [job]: ioengine:", "(got 'e4defrag')"),
    }
    for name, (text, *words) in cases.items():
        path = tmp_path / f"{name}.fio"
        path.write_text(text)
        _kit_refuses(tmp_path, path, *words)
    # an engine kit has, with another engine's option: that option is what kit cannot run
    path = tmp_path / "foreign.fio"
    path.write_text("[job]\nioengine=libaio\nrw=read\nsize=64k\nport=8888\n")
    _kit_refuses(tmp_path, path, "foreign.fio:5 [job]: port: kit cannot run it")


def test_rw_offset_modifier_refused_as_what_it_is(tmp_path):
    """fio's rw=read:-8k (backwards-read.fio), write:112k
    (cross-stripe-verify.fio): the ':N' modifier is not in kit, and the
    line says so instead of that read is no rw mode."""
    path = tmp_path / "back.fio"
    path.write_text("[backwards-read]\nioengine=psync\nbs=4k\nrw=read:-8k\nsize=64k\n")
    assert subprocess.run(["fio", "--parse-only", str(path)], capture_output=True).returncode == 0
    _kit_refuses(tmp_path, path, "back.fio [backwards-read]: rw: fio's read:-8k", "is not in kit: give rw=read")
    p = run_kit("run", "--ioengine=null", "--rw=write:112k", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "give rw=write," in p.stderr


def _fio_showcmd(path):
    """fio's own reading of a one-section job file: {option: value}."""
    p = subprocess.run(["fio", "--showcmd", str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return dict(t.partition("=")[::2] for t in p.stdout.split(" --")[1:] if not t.startswith("name="))


def test_keyword_arithmetic_as_fio(tmp_path):
    """fio 3.33 hands a value to bc when it replaced $ncpus, $pagesize or
    $mb_memory in it and it has + - * / (options.c bc_calc); what bc cannot
    evaluate fio refuses, and so does kit."""
    path = tmp_path / "kw.fio"
    path.write_text("[x]\nioengine=null\nsize=$pagesize*16\nnumjobs=$ncpus*3/2\nbs=$pagesize/2\n"
                    "rwmixread=$ncpus*10+5-$ncpus^2\nrw=randrw\n")
    fio = _fio_showcmd(path)
    job = read_job(str(path))
    assert fio["size"] == str(job.size) == str(16 * os.sysconf("SC_PAGE_SIZE"))
    assert fio["numjobs"] == str(job.numjobs) == str(os.cpu_count() * 3 // 2)
    assert (fio["bs"], fio["rwmixread"]) == (str(job.bs), str(job.rwmixread))
    bad = tmp_path / "bad.fio"
    bad.write_text("[x]\nioengine=psync\nsize=64k\ndirectory=/tmp/$ncpus-x\n")
    p = subprocess.run(["fio", "--parse-only", str(bad)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "failed parsing directory" in p.stderr
    _kit_refuses(tmp_path, bad, "bad.fio:4:", "bc cannot evaluate '/tmp/")


def test_a_section_overrides_global_under_another_name(tmp_path):
    """[global] rwmixread=60 then rwmixwrite=30 in a job is 70 % reads in fio
    (the job section is read over a copy of [global]); bs then blocksize
    likewise. Within one section, agreeing pairs are taken, others refused."""
    path = tmp_path / "o.fio"
    path.write_text("[global]\nioengine=null\nsize=256k\nrw=randrw\nrwmixread=60\nbs=4k\ndirect=1\n"
                    "[a]\nrwmixwrite=30\nblocksize=8k\nbuffered=1\n")
    job = read_job(str(path))
    assert (job.rwmixread, job.bs, job.direct) == (70, 8192, False)
    f = json.loads(subprocess.run(["fio", "--output-format=json", str(path)], capture_output=True, text=True,
                                  timeout=60, cwd=tmp_path).stdout)["jobs"][0]
    assert (f["read"]["io_bytes"] + f["write"]["io_bytes"]) // (f["read"]["total_ios"] + f["write"]["total_ios"]) \
        == 8192
    bad = tmp_path / "bad.fio"
    bad.write_text("[a]\nioengine=null\nsize=64k\nrwmixread=60\nrwmixwrite=30\n")
    _kit_refuses(tmp_path, bad, "bad.fio [a]: rwmixwrite=30 disagrees with rwmixread=60")
    p = run_kit("run", "--ioengine=null", "--size=64k", "--direct=1", "--buffered=1", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "direct=1" in p.stderr and "buffered=1" in p.stderr


def test_every_fio_alias_of_kits_options(tmp_path):
    """fio 3.33's own alias of each option kit reads (fio --cmdhelp says
    it) reads as that option in kit."""
    from kit.job import FIO_TO_KIT, ORDERING, OPTIONS

    def alias(name):
        p = subprocess.run(["fio", f"--cmdhelp={name}"], capture_output=True, text=True, timeout=30)
        found = [l.split(":", 1)[1].strip() for l in p.stdout.splitlines() if l.strip().startswith("alias:")]
        return name, found[0] if found else None
    names = {o.fio_name for o in OPTIONS.values() if o.fio_name} | set(ORDERING)
    with ThreadPoolExecutor(8) as pool:
        aliases = {n: a for n, a in pool.map(alias, sorted(names)) if a}
    assert {"nrfiles": "nr_files", "offset": "fileoffset", "rate_min": "ratemin", "bs": "blocksize"}.items() <= \
        aliases.items()
    for name, other in aliases.items():
        if name in ORDERING:
            assert other in ORDERING, name
        else:
            assert FIO_TO_KIT[other] == FIO_TO_KIT[name], (name, other)


def test_a_kb_base_1000_job_exported_reads_back_in_fio_as_the_same_bytes(tmp_path):
    job = Job(name="k", ioengine="null", size="1MB", bs="4KiB", bssplit="4KiB/50:8KiB/50,2KiB", rw="randrw",
              rate="100MB", kb_base=1000)
    text = to_fio_file(job)
    assert "kb_base=1000" in text and "size=1000000" in text and "bssplit=4096/50:8192/50,2048/100" in text
    path = tmp_path / "k.fio"
    path.write_text(text)
    assert read_job(str(path)) == job
    fio = _fio_showcmd(path)
    assert (fio["size"], fio["rate"]) == ("1000000", "100000000")


def test_cli_job_file_warns_and_strict_refuses(tmp_path, scratch):
    path = tmp_path / "w.fio"
    path.write_text(f"[w]\nrw=randread\nsize=1m\ndirectory={scratch}\nunified_rw_reporting=mixed\n")
    p = run_kit("run", str(path))
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("warning") == 1 and "unified_rw_reporting" in p.stderr
    p = run_kit("run", str(path), "--strict")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1


def test_kit_and_fio_runners_agree(scratch):
    """The same small direct job run by kit and by fio, on the same files: one
    schema, counts that add up in both. Their IOPS must agree within a factor
    of 1.5: both are bound by the same device's ~50-100 us direct reads at
    iodepth 4, and this shared VM's run-to-run noise stays within +-25 %."""
    job = Job(ioengine="libaio", rw="randread", bs="4k", iodepth=4, size="8m", direct=True, directory=scratch)
    k = kit.run(job, progress=False)
    f = kit.run(job, runner="fio", progress=False)
    for r in (k, f):
        read = r.total["read"]
        assert read["total_ios"] == 2048 and read["io_bytes"] == 2048 * 4096
        assert read["clat_ns"]["N"] == 2048
        assert sum(read["clat_ns"]["bins"].values()) == 2048
        assert r.to_frame().loc[0, "ios"] == 2048
    assert (k.data["runner"], f.data["runner"]) == ("kit", "fio")
    assert f.data["job"] == k.data["job"] and f.data["fio version"].startswith("fio-")
    assert set(k.total) >= set(f.total) - {"latency_depth", "latency_target", "latency_percentile",
                                           "latency_window"}
    # IOPS: a 2048-I/O run lasts ~40 ms, where the same fio run varies 2x here;
    # compare half-second runs, interleaved, the faster of two each (the host
    # caches blocks on first touch, so first runs are slower)
    timed = job.replace(runtime=0.5, time_based=True)
    runs = [kit.run(timed, runner=runner, progress=False) for runner in ("kit", "fio", "kit", "fio")]
    best_kit, best_fio = max(runs[0].iops, runs[2].iops), max(runs[1].iops, runs[3].iops)
    assert 1 / 1.5 < best_kit / best_fio < 1.5
    # fio read kit's pre-filled file: kit's manifest still calls it intact
    assert kit.target.read_manifest(scratch)["kit.0.0"]["pattern"] == "intact"


def test_threadpool_has_no_fio_twin(scratch):
    p = run_kit("run", "--ioengine=threadpool", "--runner=fio", f"--directory={scratch}")
    assert p.returncode == 2 and "no fio twin" in p.stderr


def test_fio_refuses_the_seed_files_kit_only_sections_in_one_line(scratch):
    """The seed tables' C++ rows are kit's engines only: --runner=fio says
    so in one line, naming the first such section, and writes nothing."""
    p = run_kit("run", os.path.join(REPO, "jobs", "seed-direct.fio"), "--runner=fio", "--numjobs=1",
                "--filesize=1m", "--runtime=0.2", f"--directory={scratch}")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip() == ("kit run: error: seed-direct.fio [boost-asio]: ioengine: asio has no fio twin: "
                                "fio cannot run it (use runner=kit)")
    assert os.listdir(scratch) == []
    assert os.listdir(scratch) == []


def test_compare_prints_both_and_ratios(scratch):
    p = run_kit("run", "--rw=randread", "--size=2M", "--direct=1", "--compare=fio", f"--directory={scratch}")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "kit vs fio" in lines[0]
    iops = next(l for l in lines if l.strip().startswith("read IOPS")).split()
    assert float(iops[-1]) > 0                     # the kit/fio ratio
    for metric in ("read clat p99 (ns)", "usr_cpu (%)", "ctx, job threads", "ctx, whole process"):
        assert metric in p.stdout
    assert "write" not in p.stdout.split("kit/fio")[1]     # a direction neither moved data in is left out


def test_compare_puts_each_direction_beside_the_same_direction(scratch):
    """randrw: kit's reads beside fio's reads, kit's writes beside fio's
    writes, each labelled; jobs that run together in the file are compared
    as they ran, together."""
    import json
    path = os.path.join(scratch, "..", "together.fio")
    with open(path, "w") as f:
        f.write("[global]\nsize=2m\ndirect=1\n[mixed]\nrw=randrw\nrwmixread=70\n[reads]\nrw=randread\n")
    p = run_kit("run", path, "--compare=fio", f"--directory={scratch}", "--output-format=json")
    assert p.returncode == 0, p.stderr
    docs = json.loads(p.stdout)
    assert [d["kit"]["job"]["name"] for d in docs] == ["mixed", "reads"]
    mixed = {row["metric"]: row for row in docs[0]["compare"]}
    for d in ("read", "write"):
        row = mixed[f"{d} clat p99 (ns)"]
        assert row["kit"] == docs[0]["kit"]["total"][d]["clat_ns"]["percentile"]["99.000000"]
        assert row["fio"] == docs[0]["fio"]["total"][d]["clat_ns"]["percentile"]["99.000000"]
        assert mixed[f"{d} IOPS"]["kit"] > 0 and mixed[f"{d} IOPS"]["fio"] > 0
    assert "write IOPS" not in {row["metric"] for row in docs[1]["compare"]}
    for doc in docs:        # each job ran beside the other, by both runners
        assert any("ran at the same time as 1 other job" in n for n in doc["kit"]["notes"])
        assert any("ran in one fio process with other jobs" in n for n in doc["fio"]["notes"])


def _fio_json(tmp_path, plus=True, numjobs=1):
    import subprocess
    out = subprocess.run(["fio", "--name=imp", f"--filename={tmp_path / 'f'}", "--size=2m", "--rw=randread",
                          "--bs=4k", "--thread", f"--numjobs={numjobs}",
                          f"--output-format={'json+' if plus else 'json'}"],
                         capture_output=True, text=True, check=True).stdout
    return out[out.index("{"):]


def test_fio_json_with_leading_lines_imports(tmp_path):
    text = "fio: this platform does not support process shared mutexes\nnote: both iodepth >= 1\n" \
        + _fio_json(tmp_path, numjobs=2)
    path = tmp_path / "out.json"
    path.write_text(text)
    (r,) = from_fio_json(str(path))
    assert r.data["runner"] == "fio" and len(r.data["jobs"]) == 2
    assert r.total["read"]["total_ios"] == 1024
    assert r.total["read"]["clat_ns"]["N"] == 1024 and "percentile" in r.total["read"]["clat_ns"]
    assert r.data["job"]["numjobs"] == 2 and r.data["job"]["bs"] == 4096
    frame = r.to_frame()
    assert frame.loc[0, "runner"] == "fio" and frame.loc[0, "ios"] == 1024
    assert kit.results.from_fio_json(open(path).read())[0].data == r.data
    # plain json (no bins) works too: per-job percentiles survive
    (plain,) = from_fio_json(_fio_json(tmp_path, plus=False))
    assert plain.total["read"]["clat_ns"]["percentile"]["50.000000"] > 0


def test_import_cli(tmp_path):
    from kit import store
    path = tmp_path / "out.json"
    path.write_text("garbage line\n" + _fio_json(tmp_path))
    data = tmp_path / "data"
    p = run_kit("import", str(path), f"--data={data}", "--machine=old-box")
    assert p.returncode == 0 and "[runner=fio]" in p.stdout
    (stored,) = store.load("old-box", "import", str(data))
    assert stored.data["runner"] == "fio" and stored.total["read"]["total_ios"] == 512
    assert store.load_machine("old-box", str(data))["fingerprint"]["imported"] is True
    frame = store.frame("old-box", data=str(data))
    assert list(frame["runner"]) == ["fio"] and list(frame["suite"]) == ["import"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = run_kit("import", str(path), "--no-store", cwd=elsewhere)
    assert p.returncode == 0 and "[runner=fio]" in p.stdout
    assert os.listdir(elsewhere) == []              # nothing stored
    broken = tmp_path / "broken.json"
    broken.write_text(_fio_json(tmp_path)[:200])
    p = run_kit("import", str(broken))
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "broken fio JSON" in p.stderr
    nothing = tmp_path / "nothing.json"
    nothing.write_text("fio: no jobs were run\n")
    p = run_kit("import", str(nothing))
    assert p.returncode == 2 and "not fio JSON output" in p.stderr


@pytest.mark.parametrize("name, direct", [("seed-direct.fio", True), ("seed-buffered.fio", False)])
def test_seed_tables_as_jobs_and_as_job_files(name, direct):
    env = {"KIT_NUMJOBS": str(4 * os.cpu_count()), "KIT_FILESIZE": "16m", "KIT_RUNTIME": "10"}
    parsed = read_job_file(os.path.join(REPO, "jobs", name), env=env)
    assert parsed.warnings == []
    assert parsed.jobs == seed_jobs(direct=direct)
    assert [len(g) for g in parsed.groups] == [1] * 8


def test_seed_table_shape(scratch):
    p = run_kit("run", os.path.join(REPO, "jobs", "seed-buffered.fio"), "--numjobs=2", "--filesize=1m",
                "--runtime=0.3", f"--directory={scratch}")
    assert p.returncode == 0, p.stderr
    table = p.stdout[p.stdout.index("\njob ") + 1:].splitlines()
    assert "IOPS vs io_uring" in table[0]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert list(rows) == ["sync", "posix-aio", "linux-aio", "io_uring", "io_uring-enhanced", "boost-asio",
                          "boost-asio-pool", "std-async"]
    assert rows["io_uring"][-1] == "—"
    for name, row in rows.items():
        assert float(row[2].replace(",", "")) > 0, row
        if name != "io_uring":
            assert row[-1].endswith("%")


# ---- fio reads back exactly what kit wrote (generated Jobs) -------------------

def _showcmd(*paths):
    """fio's own reading of each job file: [(section, {option: value})] a
    path. The fio processes run at once: each spends ~0.2 s starting."""
    import subprocess
    procs = [subprocess.Popen(["fio", "--showcmd", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for path in paths]
    outs = [(p, *p.communicate(timeout=30)) for p in procs]
    readings = []
    for p, out, err in outs:
        assert p.returncode == 0, err
        line = out.strip()
        assert line.startswith("fio ")
        sections = []
        for token in line[len("fio "):].split(" --"):
            key, sep, value = token.lstrip("-").partition("=")
            if key == "name":
                sections.append((value, {}))
            else:
                sections[-1][1][key] = value if sep else None
        readings.append(sections)
    return readings


hostile_text = st.lists(st.sampled_from(list("abcdefgh") * 6 + list(":\\$;# \n\t[]=/.-_") + ["${HOME}", "$ncpus", "\\:"]),
                        min_size=1, max_size=8).map("".join)


@settings(max_examples=int(os.environ.get("KIT_FUZZ_EXAMPLES", "300")) // 6, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(name=hostile_text, directory=hostile_text, filename=hostile_text, bs=st.sampled_from(["4k", "8k", "1m"]),
       iodepth=st.integers(1, 64), numjobs=st.integers(1, 3), nrfiles=st.integers(1, 3),
       engine=st.sampled_from([e for e in engine_names() if fio_twin(e)]),
       rw=st.sampled_from(["read", "randread", "write", "randrw"]), fixed=st.booleans())
def test_fio_reads_back_exactly_what_kit_wrote(tmp_path_factory, name, directory, filename, bs, iodepth, numjobs,
                                               nrfiles, engine, rw, fixed):
    """Hostile names and paths: the runner's job file names only kit's
    descriptors, and the exported job file is either refused or read by fio
    option for option as kit wrote it (no substitution, no comment, no new
    option, no split file name)."""
    from kit import target
    from kit.fio import fio_options, runner_job_file
    tmp = tmp_path_factory.mktemp("fio")
    options = dict(ioengine=engine, rw=rw, bs=bs, iodepth=iodepth, numjobs=numjobs, nrfiles=nrfiles, size="4m",
                   fixedbufs=fixed and engine == "io_uring")
    # 1. exported: refused, or read back unchanged (read by fio with the runner's below)
    candidates, exported = [], []
    for make in (lambda: Job(name=name, directory=str(tmp / directory), **options),
                 lambda: Job(name="n", filename=filename, **options)):
        try:
            candidates.append(make())
        except OptionError:
            pass
    for j in candidates:
        if " -" in (j.directory or "") + (j.filename or "") + j.name:
            continue
        try:
            text = to_fio_file(j)
        except OptionError as e:
            assert "cannot be" in str(e)
            count_case("fio export refused")
            continue
        count_case("fio export read back")
        path = tmp / f"export-{len(exported)}.fio"
        path.write_text(text)
        exported.append((j, path))
    # 2. the runner's: only /proc/self/fd/N of the descriptors kit checked
    try:
        job = Job(name=name, directory=str(tmp / "scratch"), **options)
    except OptionError:
        job = Job(directory=str(tmp / "scratch"), **options)
    plan = target.plan(job)
    with target.prepare([plan]) as prepared:
        text, fds = runner_job_file([job], [plan], prepared)
        path = tmp / "runner.fio"
        path.write_text(text)
        *exports, sections = _showcmd(*[p for _j, p in exported], path)
        for (j, _path), ((section, read),) in zip(exported, exports):
            assert section == j.name
            assert read == {k: v for k, v in fio_options(j).items()}
        assert [s for s, _ in sections] == [f"kit.0.{j}" for j in range(numjobs)]
        want = {k: v for k, v in fio_options(job, paths=False).items() if k not in ("numjobs", "nrfiles",
                                                                                  "group_reporting")}
        for (section, read), files in zip(sections, plan.files):
            assert read.pop("nrfiles") == str(len(files))
            if plan.diskless:           # the null engine: fio opens nothing, so no file is named
                assert "filename" not in read and read == want
                continue
            names = read.pop("filename").split(":")
            assert read == want
            assert names == [f"/proc/self/fd/{prepared.fd(f)}" for f in files]
            for fd_path, f in zip(names, files):
                st, planned = os.stat(fd_path), os.lstat(f.path)
                assert (st.st_dev, st.st_ino) == (planned.st_dev, planned.st_ino)
        assert sorted(fds) == ([] if plan.diskless else sorted({prepared.fd(f) for t in plan.files for f in t}))
    count_case("fio runner job files")


@pytest.mark.parametrize("engine", ["sync", "psync", "libaio"])
def test_fsync_every_n_writes_as_fio_does(scratch, engine):
    """fsync=16 over 256 writes: an fsync before every 17th write, none
    after the last one -- 15, counted and timed, by kit and by fio alike."""
    job = Job(ioengine=engine, iodepth=4, rw="randwrite", size="1m", fsync=16, directory=scratch)
    k = kit.run(job, progress=False)
    f = kit.run(job, runner="fio", progress=False)
    for r in (k, f):
        assert r.total["write"]["total_ios"] == 256
        assert r.total["sync"]["total_ios"] == 15, r.data["runner"]
    assert k.total["sync"]["lat_ns"]["N"] == 15 and k.total["sync"]["lat_ns"]["min"] > 0


def test_compare_says_when_fio_issued_other_syncs(scratch):
    """fio 3.33 syncs whenever the last completion was not a sync and its
    writes are a multiple of fsync: with an async engine it issues several
    while one is in flight. The comparison shows both counts and says the
    workloads differ; a sync engine's write job issues the same syncs in both."""
    from kit.fio import compare
    from kit.text import format_compare
    shown = {}
    for engine, depth in (("io_uring", 8), ("psync", 1)):
        job = Job(ioengine=engine, iodepth=depth, rw="randwrite", bs="4k", size="1m", fsync=4, directory=scratch)
        k, f = kit.run(job, progress=False, machine=False), kit.run(job, runner="fio", progress=False, machine=False)
        rows = {name: (a, b) for name, a, b, _ratio in compare(k, f)}
        assert rows["syncs"][0] == 256 // 4 - 1          # none after the job's last write
        shown[engine] = (rows["syncs"], format_compare(compare(k, f), k))
    (kit_syncs, fio_syncs), text = shown["io_uring"]
    assert fio_syncs > kit_syncs and "not the same workload" in text
    (kit_syncs, fio_syncs), text = shown["psync"]
    assert fio_syncs == kit_syncs and "not the same workload" not in text


# ---- what a job file means is what it means to fio ---------------------------------

def _fio_and_kit(tmp_path, text, run="fio"):
    """Runs the job file with fio in tmp_path/fio and with kit in tmp_path/kit
    (paths written as @/): {file: size} of each, and the bytes each moved."""
    require(shutil.which("fio") is not None, "fio is not installed")
    out = {}
    for who in ("fio", "kit"):
        where = tmp_path / who
        where.mkdir()
        (where / "j.fio").write_text(text.replace("@/", f"{where}/"))
        cmd = ["fio", "--output-format=json", "j.fio"] if who == "fio" else \
            [KIT, "run", "--output-format=json", "--progress=0", "j.fio"]
        p = subprocess.run(cmd, cwd=where, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (who, p.stderr)
        doc = json.loads(p.stdout[p.stdout.index("{"):])
        moved = [sum(j[d]["io_bytes"] for d in ("read", "write")) for j in doc["jobs"]]
        files = {f.name: f.stat().st_size for f in where.rglob("*") if f.is_file() and f.name != "j.fio"
                 and not f.name.startswith(".kit")}
        out[who] = (files, moved)
    return out


def test_each_filename_line_adds_files_as_in_fio(tmp_path):
    """fio adds the files of every filename= line, [global]'s first; kit kept
    the last line's only."""
    got = _fio_and_kit(tmp_path, "[global]\nfilename=@/f1\n[a]\nfilename=@/f2\nfilename=@/f3\nsize=192k\n"
                                 "rw=write\n")
    assert got["fio"] == got["kit"] == ({"f1": 65536, "f2": 65536, "f3": 65536}, [196608])


@pytest.mark.parametrize("options, files, moved", [
    ("filesize=256k\noffset=64k", 262144, 196608),
    ("filesize=256k\noffset=64k\nsize=128k", 262144, 131072),
    ("filesize=256k\nsize=1m", 262144, 262144),
])
def test_filesize_with_offset_is_fios_file(tmp_path, options, files, moved):
    """fio's file is filesize long and the job works from offset to its end
    (size only caps the bytes moved); kit made it offset + filesize long."""
    got = _fio_and_kit(tmp_path, f"[a]\nfilename=@/g\nrw=write\n{options}\n")
    assert got["fio"] == got["kit"] == ({"g": files}, [moved])


def test_an_absolute_filename_under_a_directory_is_refused(tmp_path):
    """fio puts it under the directory (directory=/d filename=/x is /d/x);
    kit used /x. Neither is likely meant: kit refuses, writing nothing."""
    (tmp_path / "sub").mkdir()
    job_file = tmp_path / "d.fio"
    job_file.write_text(f"[a]\ndirectory={tmp_path}/sub\nfilename={tmp_path}/h\nsize=64k\nrw=write\n")
    _kit_refuses(tmp_path, job_file, "is absolute and directory= is set", f"{tmp_path}/sub{tmp_path}/h")
    assert not (tmp_path / "h").exists() and os.listdir(tmp_path / "sub") == []


@pytest.mark.parametrize("value, expected", [
    ("size=(7/2*1m)", ("size", 3 << 20)),       # integer division first: 3m, not 3.5m
    ("size=(2^10*4k)", ("size", 4 << 20)),      # ^ is the power (Python's ^ is xor)
    ("size=(4096+2k)", ("size", 6144)),         # a suffix takes what binds tighter than it
    ("size=(8/2k)", ("size", 4096)),
    ("iodepth=(-2^2)", ("iodepth", 4)),          # unary minus binds first
    ("iodepth=(10%3^2)", ("iodepth", 1)),        # % binds tighter than ^
    ("iodepth=(1.5*3)", ("iodepth", 4)),         # a fraction is truncated at the end
    ("runtime=(3/2)", ("runtime", 1.0)),         # seconds, integer division
    ("runtime=(1m+30s)", ("runtime", 90.0)),     # time suffixes in a time option
    ("thinktime=(1ms*3)", ("thinktime", 3000)),  # microseconds
    # each step keeps fio's integer answer (exp/expression-parser.y, built and compared here on 2026-12-02)
    ("bs=(1.5k)", ("bs", 1024)),                # 1.5 is cut to 1 before the suffix
    ("size=(1.5k*4)", ("size", 6144)),          # ... but a product keeps the double side: 1536*4
    ("thinktime=(.5ms)", ("thinktime", 0)),
    ("runtime=(1.5h)", ("runtime", 3600.0)),
    ("iodepth=(-1.5+7)", ("iodepth", 6)),        # the minus keeps the integer side
    ("size=((3^-0x10*7-10)+4106)", ("size", 4096)),
])
def test_arithmetic_follows_fios_grammar(tmp_path, value, expected):
    """fio's expression parser (exp/expression-parser.y, in fio builds with
    CONFIG_ARITHMETIC): kit evaluated with Python's rules (3.5m, xor)."""
    path = tmp_path / "a.fio"
    path.write_text(f"[a]\nioengine=null\n{value}\n")
    assert getattr(read_job(str(path)), expected[0]) == expected[1]


def test_a_job_file_means_fios_defaults_where_kits_differ(tmp_path):
    """A fio job file without invalidate= drops the page cache first, and
    submits one I/O per call, as fio does; the command line and Python keep
    kit's defaults, and a job file's own value wins."""
    path = tmp_path / "d.fio"
    path.write_text("[a]\nioengine=null\n[b]\nioengine=null\ninvalidate=0\niodepth_batch=4\n")
    a, b = read_job_file(str(path)).jobs
    assert (a.invalidate, a.iodepth_batch_submit) == (True, 1)
    assert (b.invalidate, b.iodepth_batch_submit) == (False, 4)
    assert (Job().invalidate, Job().iodepth_batch_submit) == (False, 0)


def test_filename_and_directory_join_as_fio_joins_them(tmp_path):
    """fio reads a section's directory= before its filename= lines whatever
    their order (and the last directory= of the section), and joins
    [global]'s files with [global]'s directory, never a job's; kit joins
    every name with the job's directory: where the two differ it refuses,
    elsewhere the file is where fio puts it (fio --debug=file says where)."""
    import subprocess
    for sub in ("sub", "sub2"):
        (tmp_path / sub).mkdir()
    job_file = tmp_path / "g.fio"
    job_file.write_text("[global]\nfilename=gf\n[x]\nrw=write\nsize=16k\ndirectory=sub\n")
    _kit_refuses(tmp_path, job_file, "[global]'s filename= is joined with [global]'s directory (none) by fio")
    for text, where in (("[x]\nrw=write\nsize=16k\nfilename=f0\ndirectory=sub\n", "sub/f0"),
                        ("[x]\nrw=write\nsize=16k\ndirectory=sub\nfilename=f0\ndirectory=sub2\n", "sub2/f0"),
                        ("[global]\ndirectory=sub\n[x]\nrw=write\nsize=16k\nfilename=f0\ndirectory=sub2\n", "sub2/f0")):
        job_file.write_text(text)
        fio = subprocess.run(["fio", "--debug=file", "--parse-only", str(job_file)], capture_output=True, text=True,
                             cwd=tmp_path, timeout=30).stdout
        assert f'"{where}" added' in fio, fio
        p = run_kit("run", str(job_file), cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert (tmp_path / where).stat().st_size == 16384
        os.unlink(tmp_path / where)
    job_file.write_text("[x]\nrw=write\nsize=16k\nfilename=a\\\nfilename=b\n")
    _kit_refuses(tmp_path, job_file, "ends in '\\' and another filename= follows")
    job_file.write_text("[global]\ndirectory=sub\nfilename=f1\n[x]\nrw=write\nsize=16k\nfilename=f2\n")
    p = run_kit("run", str(job_file), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(tmp_path / "sub")) == [".kit-files.json", "f1", "f2"] or \
        sorted(f for f in os.listdir(tmp_path / "sub") if not f.startswith(".")) == ["f1", "f2"]


def test_a_command_line_option_that_replaces_the_files_says_so(tmp_path):
    """fio keeps a section's own bs over --bs (the command line only fills
    in); kit applies --bs to every job, and warns for the section it
    replaces, not for one that said nothing."""
    (tmp_path / "o.fio").write_text("[a]\nioengine=null\nsize=64k\nbs=4k\n[b]\nioengine=null\nsize=64k\n")
    p = run_kit("run", "--bs=8k", "o.fio", "--output-format=json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    warnings = [line for line in p.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "--bs replaces bs= of o.fio [a]" in warnings[0], p.stderr
    doc = json.loads(p.stdout)
    assert [j["read"]["total_ios"] for j in doc["jobs"]] == [8, 8]
    p = run_kit("run", "--invalidate=0", "o.fio", cwd=tmp_path)
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr


@pytest.mark.parametrize("text, words", [
    ("[global]\nioengine=psync\nrw=write\n[b]\nbs = 8k\nsize=64k\n", "bs= 8k: a blank after '='"),
    ("[b]\nioengine=psync\nbs=\t4k\nsize=64k\n", "a blank after '='"),
    ("[global]\nioengine=psync\nrw=write\nbs=4k\n[a]\nsize=100KiB\nkb_base=1000\n",
     "kb_base=1000 while [global]'s bs= was written under kb_base=1024"),
])
def test_what_fio_reads_otherwise_is_refused(tmp_path, text, words):
    """fio 3.33 keeps a blank after '=' ('bs= 8k' moved 8-byte blocks there)
    and reads [global]'s sizes under [global]'s kb_base; kit read what was
    meant, a different job: refused, nothing written."""
    job_file = tmp_path / "j.fio"
    job_file.write_text(text)
    _kit_refuses(tmp_path, job_file, words)
