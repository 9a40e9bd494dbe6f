"""Bad input, generated: job options, fio job files and sweep files that kit
must refuse with exit code 2 and one line — never a traceback, a hang, or a
file written. The number of cases tried is printed in the test summary."""
import contextlib
import io
import os
import string

import yaml
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from conftest import count_case
from kit import OptionError, cli
from kit.fio import read_job_file
from kit.job import OPTIONS, Job, fio_option_verdict
from kit.sweep import from_dict

SETTINGS = settings(max_examples=int(os.environ.get("KIT_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=list(HealthCheck))
VALUE_OPTIONS = [n for n in OPTIONS if n not in ("name", "directory", "filename", "allow_destructive")]
junk = st.text(alphabet=string.printable, max_size=12)


def run_cli(argv, cwd):
    """kit's main() in this process, in an empty directory; (code, out, err)."""
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def assert_refused(argv, cwd):
    code, out, err = run_cli(argv, cwd)
    assert code == 2, (argv, code, err)
    assert out == "" and len(err.strip().splitlines()) == 1, (argv, err)
    assert os.listdir(cwd) == [], (argv, os.listdir(cwd))   # nothing written


def _invalid(options):
    try:
        Job.from_options(options)
    except OptionError:
        return True
    return False


@SETTINGS
@given(option=st.sampled_from(VALUE_OPTIONS), value=junk)
def test_fuzzed_option_values(tmp_path_factory, option, value):
    assume(value.strip() and "\n" not in value and _invalid({option: value}))
    cwd = tmp_path_factory.mktemp("fuzz")
    count_case("job options")
    assert_refused(["run", f"--{option}={value}", "--progress=0"], cwd)


@SETTINGS
@given(name=st.text(alphabet=string.ascii_letters + "_-", min_size=1, max_size=15), value=junk)
def test_fuzzed_option_names(tmp_path_factory, name, value):
    known = set(OPTIONS) | {"output", "output-format", "output_format", "progress", "runner", "compare",
                            "strict", "trace", "rwmixwrite", "allow-destructive", "allow_destructive"}
    assume(name not in known and name.replace("-", "_") not in known and "\n" not in value)
    assume(not any(name.replace("-", "_") == a or name == a for a in
                   ["iodepth_batch", "iodepth_batch_complete", "engine", "readwrite", "blocksize"]))
    assume(not name.startswith("-"))
    # fio's options that kit takes and ignores (thread, description, dir, ...) or warns about (stats, ...)
    assume(all(fio_option_verdict(n, value)[0] in ("refuse", "unknown") for n in (name, name.replace("-", "_"))))
    cwd = tmp_path_factory.mktemp("fuzz")
    count_case("option names")
    assert_refused(["run", f"--{name}={value}"], cwd)


option_lines = st.one_of(
    st.tuples(st.sampled_from(sorted(OPTIONS) + ["zonemode", "stonewall", "thread", "bs", "size"]), junk)
    .map(lambda kv: f"{kv[0]}={kv[1]}"),
    junk, st.just("[global]"), st.text(alphabet=string.ascii_letters, min_size=1, max_size=8).map(lambda s: f"[{s}]"),
)


@SETTINGS
@given(lines=st.lists(option_lines, max_size=12))
def test_fuzzed_job_files(tmp_path_factory, lines):
    d = tmp_path_factory.mktemp("jobfile")
    path = d / "f.fio"
    path.write_text("\n".join(l.replace("\x0b", "").replace("\x0c", "") for l in lines) + "\n")
    try:
        read_job_file(str(path), strict=True)
        return                      # a valid file would run jobs: not this test's business
    except OptionError:
        pass
    count_case("fio job files")
    cwd = tmp_path_factory.mktemp("cwd")
    assert_refused(["run", str(path), "--strict"], cwd)


yaml_scalars = st.one_of(st.integers(-5, 10**6), st.text(max_size=8), st.booleans(), st.none(),
                         st.floats(allow_nan=False, allow_infinity=False))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                  st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=3)), max_leaves=8)
sweep_specs = st.dictionaries(
    st.sampled_from(["name", "grid", "base", "repeats", "trace", "runner", "description", "repeat", "gird"]),
    st.one_of(yaml_values, st.dictionaries(st.sampled_from(["iodepth", "bs", "ioengine", "rw", "size", "nope"]),
                                           st.one_of(yaml_values, st.lists(yaml_scalars, max_size=3)),
                                           max_size=3)),
    max_size=5)


@SETTINGS
@given(spec=sweep_specs)
def test_fuzzed_sweep_files(tmp_path_factory, spec):
    try:
        from_dict(spec)
        return                      # valid: it would run a sweep
    except OptionError:
        pass
    d = tmp_path_factory.mktemp("sweep")
    path = d / "s.yml"
    path.write_text(yaml.safe_dump(spec))
    count_case("sweep files")
    cwd = tmp_path_factory.mktemp("cwd")
    assert_refused(["sweep", str(path), "--no-publish"], cwd)
