"""The job model: fio's names and units, and one clear error per bad value."""
import os

import pytest

from conftest import run_kit
from kit import Job, OptionError


def test_fio_sizes_and_times():
    job = Job(bs="4k", size="256M", filesize="1g", runtime="500ms", ramp_time="2m")
    assert job.bs == 4096
    assert job.size == 256 << 20
    assert job.filesize == 1 << 30
    assert job.runtime == 0.5
    assert job.ramp_time == 120.0
    assert Job(bs="16k").bs == Job(bs="16kb").bs == Job(bs="16K").bs == 16384
    assert Job(bs="16KiB").bs == 16000          # fio's default kb_base=1024 reads KiB as 1000 (see test_fio_options)
    assert Job(runtime=3).runtime == 3.0
    # fio's other spellings (parse.c get_mult_time, str_to_decimal)
    assert Job(runtime="10msec").runtime == 0.01 and Job(ramp_time="1500usec").ramp_time == 0.0015
    assert Job(thinktime="2msec").thinktime == 2000
    assert Job(bs="0x2000").bs == 8192 and Job(size="0X100000").size == 1 << 20


@pytest.mark.parametrize("option, value, problem", [
    ("runtime", "1sec", "reads 'sec' as no unit at all (microseconds)"),      # fio: 1 us
    ("thinktime", "2min", "reads 'min' as no unit at all (microseconds)"),
    ("bs", "0x10k", "must be a size like"),         # fio: 16, the k ignored after hex digits
    ("runtime", "0x10", "must be a time like"),     # fio: 16 us
])
def test_fio_spellings_fio_reads_otherwise_are_refused(option, value, problem):
    with pytest.raises(OptionError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        Job(**{option: value})


def test_defaults_are_fios_where_fio_has_them():
    job = Job()
    assert (job.ioengine, job.rw, job.bs, job.iodepth, job.numjobs, job.rwmixread) == \
        ("psync", "read", 4096, 1, 1, 50)
    assert job.iodepth_batch_complete_min == 1
    assert job.invalidate is False  # kit keeps the page cache unless asked
    # kit batches: every free slot in one submit call, every completion there is per reap (fio: one each)
    assert job.iodepth_batch_submit == 0 and job.iodepth_batch_complete_max == 0


def test_derived_values():
    job = Job(rw="randrw", rwmixread=70, size="64m", nrfiles=4)
    assert job.read_percent == 70 and job.writes and job.is_random
    assert job.file_size == 16 << 20
    assert Job(rw="randread").read_percent == 100
    assert Job(rw="write").read_percent == 0
    assert Job(ioengine="psync", iodepth=8).is_sync_engine and not Job(ioengine="libaio").is_sync_engine


def test_from_options_accepts_strings_aliases_and_rwmixwrite():
    job = Job.from_options({"ioengine": "io_uring", "iodepth": "8", "direct": "1", "time_based": "1",
                            "runtime": "3", "iodepth_batch": "4", "rwmixwrite": "30", "rw": "randrw"})
    assert job.iodepth == 8 and job.direct is True and job.time_based is True
    assert job.iodepth_batch_submit == 4
    assert job.rwmixread == 70


@pytest.mark.parametrize("options, option, words", [
    ({"bs": "4q"}, "bs", "size like"),
    ({"bs": "0"}, "bs", "from 1"),
    ({"iodepth": "0"}, "iodepth", "from 1 to 4096"),
    ({"iodepth": "lots"}, "iodepth", "integer"),
    ({"rw": "random"}, "rw", "one of read, write"),
    ({"ioengine": "spdk"}, "ioengine", "one of sync, psync"),
    ({"direct": "maybe"}, "direct", "0 or 1"),
    ({"runtime": "soon"}, "runtime", "time like"),
    ({"rwmixread": "120"}, "rwmixread", "from 0 to 100"),
    ({"time_based": "1"}, "time_based", "needs runtime"),
    ({"fixedbufs": "1"}, "fixedbufs", "only ioengine=io_uring"),
    ({"threads": "4", "ioengine": "libaio"}, "threads", "only ioengine=threadpool"),
    ({"sqthread_poll": "0", "ioengine": "psync"}, "sqthread_poll", "only ioengine=io_uring"),   # fio: unrecognized
    ({"fixedbufs": "0"}, "fixedbufs", "only ioengine=io_uring"),
    ({"hipri": "1", "ioengine": "io_uring"}, "hipri", "direct=1"),
    ({"direct": "1", "bs": "1000"}, "bs", "multiples of 512"),
    ({"verify": "md5"}, "verify", "crc32c"),
    ({"size": "1k", "bs": "4k"}, "size", "at least bs"),
    ({"blocksiz": "4k"}, "blocksiz", "did you mean"),
    ({"sqthread_poll_cpu": "0", "ioengine": "io_uring"}, "sqthread_poll_cpu", "needs sqthread_poll"),
    ({"size": "100%"}, "size", "needs filename"),
    ({"size": "150%", "filename": "x"}, "size", "from 1% to 100%"),
    ({"bs": "4k,8k,16k,32k"}, "bs", "at most 3 values"),
    ({"bsrange": "0-4k"}, "bsrange", "min <= max"),
    ({"bssplit": "4k/50:8k/50", "bsrange": "4k-8k"}, "bssplit", "give one"),
    ({"io_size": "3m", "loops": "2"}, "loops", "give io_size"),
    ({"random_distribution": "zipf::0.3", "rw": "randread"}, "random_distribution", "theta is missing"),
    ({"ioengine": "null", "end_fsync": "1", "rw": "write"}, "end_fsync", "no file"),
    ({"ioengine": "null", "sync": "1"}, "sync", "opens no file"),
    ({"bsrange": "4k"}, "bsrange", "min-max"),
    ({"bssplit": "4k/60:8k:16k/50:32k"}, "bssplit", "more than 100"),
    ({"bsrange": "1000-3k", "direct": "1"}, "bsrange", "multiples of 512"),
    ({"rate": "1m", "rate_iops": "100"}, "rate_iops", "give one"),
    ({"rate": "1m", "rate_min": "2m"}, "rate_min", "never meet"),
    ({"thinktime": "1", "thinktime_spin": "5"}, "thinktime_spin", "at most 1"),
    ({"thinktime": "soon"}, "thinktime", "microseconds"),
    ({"startdelay": "3-1"}, "startdelay", "a <= b"),
    ({"random_distribution": "zoned:50/5:50/95", "rw": "randread"}, "random_distribution", "zoned"),
    ({"random_distribution": "zipf:1", "rw": "randread"}, "random_distribution", "not 1"),
    ({"random_distribution": "pareto:1.5", "rw": "randread"}, "random_distribution", "between 0 and 1"),
    ({"random_distribution": "zipf:1.2"}, "random_distribution", "sequential"),
    ({"sync": "always"}, "sync", "none, sync, dsync"),
    ({"rw": "trim", "verify": "crc32c"}, "verify", "nothing to read back"),
    ({"loops": "2", "verify": "crc32c", "rw": "write"}, "loops", "verifies once"),
    ({"verify": "crc32c", "rw": "write", "bsrange": "4k-8k"}, "bsrange", "one block size"),
])
def test_bad_values_name_the_option(options, option, words):
    with pytest.raises(OptionError) as e:
        Job.from_options(options)
    assert e.value.option == option
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_replace_keeps_given_options():
    job = Job(ioengine="libaio", iodepth=16, bs="8k")
    other = job.replace(bs="16k")
    assert (other.ioengine, other.iodepth, other.bs) == ("libaio", 16, 16384)
    assert set(other.given()) >= {"ioengine", "iodepth", "bs"}
    assert Job.from_dict(job.to_dict()) == job


def test_fio_spellings_kit_takes_as_fio_does():
    """What fio accepts, kit reads the same way (found by a hostile review)."""
    assert Job(bsrange="4k:16k").bsrange == Job(bsrange="16k-4k").bsrange == (4096, 16384)
    assert Job(loops=0).loops == 1
    assert Job(rw="randread", random_distribution="zipf:0").random_distribution == "zipf:0"
    assert Job(rw="randread", random_distribution="random:0.5").random_distribution == "random"


def test_kb_base_changes_how_every_size_reads():
    """fio 3.33 parse.c __get_mult_bytes: kb_base=1024 (default) takes k, kb
    as 1024 and KiB as 1000; kb_base=1000 the other way round; every size
    option of the job alike, wherever kb_base stands among them."""
    job = Job(ioengine="null", size="1MiB", bs="4KiB,8kb", bsrange="2KiB-4KiB", rate="1MiB", kb_base=1000)
    assert (job.size, job.bs, job.bsrange, job.rate) == (1 << 20, (4096, 8000, 8000), (2048, 4096), 1 << 20)
    assert job.written()["size"] == "1MiB" and job.written()["kb_base"] == "1000"    # the user's text
    assert Job(ioengine="null", size="1MiB", bs="4KiB").size == 1000000
    assert Job.from_options({"size": "2MB", "kb_base": "1000", "ioengine": "null"}).size == 2000000
    with pytest.raises(OptionError, match="kb_base: must be 1024 .* or 1000"):
        Job(kb_base=1023)
    with pytest.raises(OptionError, match="kb_base: changes how sizes read"):
        Job(bs="4k").replace(kb_base=1000)
    assert Job(iodepth=2).replace(kb_base=1000).kb_base == 1000


def test_an_alias_is_the_same_option():
    """fio 3.33's aliases (options.c .alias) of the options kit has."""
    job = Job.from_options({"nr_files": "3", "fileoffset": "8k", "ratemin": "1k", "blocksize": "8k",
                            "timeout": "2", "readwrite": "randrw", "io_limit": "1m", "ratecycle": "500"})
    assert (job.nrfiles, job.offset, job.rate_min, job.bs, job.runtime, job.rw, job.io_size, job.rate_cycle) == \
        (3, 8192, 1024, 8192, 2.0, "randrw", 1 << 20, 500)
    for a, b in (("nrfiles", "nr_files"), ("offset", "fileoffset"), ("rate_min", "ratemin"), ("bs", "blocksize")):
        with pytest.raises(OptionError, match=f"^{b}: is the same option as {a}; give it once$"):
            Job.from_options({a: "4k", b: "4k"})


def test_the_two_ways_of_one_setting_agreeing_or_not():
    """rwmixread/rwmixwrite and direct/buffered: both given and agreeing is a
    valid fio file; disagreeing is refused in one line naming both."""
    job = Job.from_options({"rw": "randrw", "rwmixread": "60", "rwmixwrite": "40", "direct": "1", "buffered": "0"})
    assert job.rwmixread == 60 and job.direct is True
    assert job.written() == {"rw": "randrw", "rwmixread": "60", "rwmixwrite": "40", "direct": "1", "buffered": "0"}
    with pytest.raises(OptionError, match=r"^rwmixwrite=30 disagrees with rwmixread=60 \(both set rwmixread\)"):
        Job.from_options({"rwmixread": "60", "rwmixwrite": "30"})
    with pytest.raises(OptionError, match=r"^direct=1 disagrees with buffered=1 "):
        Job.from_options({"buffered": "1", "direct": "1"})


def test_a_directory_list_is_refused_on_the_command_line_and_in_python(tmp_path):
    """fio spreads files over 'a:b'; kit would have made a folder named 'a:b'."""
    listed = f"{tmp_path / 'a'}:{tmp_path / 'b'}"
    with pytest.raises(OptionError, match="directory: .* has a ':'"):
        Job(directory=listed)
    p = run_kit("run", f"--directory={listed}", "--size=1m")
    assert p.returncode == 2 and "--directory" in p.stderr and "has a ':'" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and os.listdir(tmp_path) == []
