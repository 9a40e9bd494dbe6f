"""kit publish: pages kept while their inputs are unchanged, never written
over a file kit did not write, and a notebook's failure as one line."""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import KIT, require, run_kit
from kit import publish
from kit.errors import OptionError, RunError


def _cell(source, tags=None):
    return {"cell_type": "code", "execution_count": None, "metadata": {"tags": tags} if tags else {}, "outputs": [],
            "source": source}


PARAMETERS = 'machine = None\ndata_dir = "data"\nmeasure = False\nquick = False\n'


def _notebook(folder, name, body, title="Tiny page", parameters=PARAMETERS, order=1):
    """A report notebook of a few lines: kit's set-up, then body."""
    nb = {"cells": [_cell(parameters, ["parameters"]),
                    _cell(f'import kit.notebook as kn\nmachine = kn.setup(globals(), "{title}")\n' + body)],
          "metadata": {"kernelspec": {"display_name": "kit (.venv)", "language": "python", "name": "kit"},
                       "kit": {"title": title, "order": order}},
          "nbformat": 4, "nbformat_minor": 4}
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    return path


def fio_json(folder, name="t", *options):
    """A real fio run's json+ output (a fraction of a second of 4k random
    reads, or what options say)."""
    require(shutil.which("fio") is not None, "fio is not installed")
    out = folder / f"{name}.json"
    subprocess.run(["fio", f"--name={name}", f"--filename={folder / (name + '.dat')}", "--size=1m", "--rw=randread",
                    "--bs=4k", "--runtime=0.2", "--time_based", *options, "--output-format=json+", f"--output={out}"],
                   check=True, capture_output=True, timeout=60)
    os.unlink(folder / f"{name}.dat")
    return out


@pytest.fixture(scope="module")
def two_machines_store(tmp_path_factory):
    """A store with two machines (one fio run imported as box-a and as
    box-b), made once: each test gets a copy of its own."""
    root = tmp_path_factory.mktemp("two-machines")
    source = fio_json(root)
    for machine in ("box-a", "box-b"):
        p = run_kit("import", str(source), f"--data={root / 'data'}", f"--machine={machine}")
        assert p.returncode == 0, p.stderr
    return root / "data"


@pytest.fixture
def two_machines(tmp_path, monkeypatch, two_machines_store):
    """A store with two machines (fio results imported as box-a and box-b),
    and one tiny report notebook published for each."""
    data, notebooks = tmp_path / "data", tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copytree(two_machines_store, data)
    _notebook(notebooks, "tiny", 'from kit import store\nprint(f"{len(store.load(machine, data=data_dir))} results")\n')
    monkeypatch.setenv("KIT_NOTEBOOKS", str(notebooks))
    # other work on kit's own sources while this runs would (rightly) re-render
    # every page; kit_digest's part is tested on its own below
    monkeypatch.setattr(publish, "kit_digest", lambda: "kit as it is")
    return {"data": str(data), "reports": str(tmp_path / "reports"), "notebooks": notebooks, "root": tmp_path}


def _names(paths, reports):
    return sorted(os.path.relpath(p, reports) for p in paths)


def test_pages_are_rendered_again_only_when_their_inputs_change(two_machines):
    data, reports = two_machines["data"], two_machines["reports"]
    first = publish.publish(data, reports)
    assert _names(first.rendered, reports) == ["box-a/tiny.html", "box-b/tiny.html"] and first.reused == []
    index = os.path.join(reports, "index.html")
    before = os.stat(index).st_ino

    again = publish.publish(data, reports)
    assert again.rendered == [] and _names(again.reused, reports) == ["box-a/tiny.html", "box-b/tiny.html"]
    assert os.stat(index).st_ino != before                         # the index is always written anew

    # one result of box-b changes (same size, a digit of its IOPS): only box-b's page
    (result,) = (p for p in (two_machines["root"] / "data" / "box-b" / "import").iterdir())
    text = result.read_text()
    at = text.index('"iops": ') + len('"iops": ')
    result.write_text(text[:at] + ("1" if text[at] != "1" else "2") + text[at + 1:])
    changed = publish.publish(data, reports)
    assert _names(changed.rendered, reports) == ["box-b/tiny.html"]
    assert _names(changed.reused, reports) == ["box-a/tiny.html"]

    # the notebook changes: every page made from it
    nb = two_machines["notebooks"] / "tiny.ipynb"
    nb.write_text(nb.read_text().replace("results", "results stored"))
    edited = publish.publish(data, reports)
    assert _names(edited.rendered, reports) == ["box-a/tiny.html", "box-b/tiny.html"]
    assert "results stored" in open(os.path.join(reports, "box-a", "tiny.html")).read()

    # force renders what is current
    assert len(publish.publish(data, reports, force=True).rendered) == 2
    # only the named machine's pages are considered
    only = publish.publish(data, reports, machines=["box-a"])
    assert _names(only, reports) == ["box-a/tiny.html"] and only.rendered == []


def test_a_page_edited_or_copied_in_is_rendered_again_not_trusted(two_machines):
    data, reports = two_machines["data"], two_machines["reports"]
    publish.publish(data, reports)
    page = os.path.join(reports, "box-a", "tiny.html")
    original = open(page).read()
    with open(page, "a") as fh:
        fh.write("<p>my notes</p>")                               # edited in place
    shutil.copy(page, os.path.join(reports, "box-b", "tiny.html"))  # a kit page copied over another
    out = publish.publish(data, reports)
    assert _names(out.rendered, reports) == ["box-a/tiny.html", "box-b/tiny.html"]
    assert "my notes" not in open(page).read() and "<title>Tiny page · box-a</title>" in open(page).read()
    assert len(open(page).read()) == pytest.approx(len(original), rel=0.01)
    os.unlink(os.path.join(reports, "box-b", "tiny.html"))          # deleted: rendered again
    assert _names(publish.publish(data, reports).rendered, reports) == ["box-b/tiny.html"]


def test_pages_that_no_longer_apply_are_removed_unless_edited(two_machines):
    """A notebook taken away (or a suite gone from the store): its pages go,
    and the index stops linking them; a page someone edited stays theirs."""
    data, reports = two_machines["data"], two_machines["reports"]
    _notebook(two_machines["notebooks"], "extra", 'print("extra")\n', title="Extra page", order=2)
    publish.publish(data, reports)
    extra_a, extra_b = (os.path.join(reports, m, "extra.html") for m in ("box-a", "box-b"))
    assert os.path.isfile(extra_a) and os.path.isfile(extra_b)
    with open(extra_b, "a") as fh:
        fh.write("<p>my notes</p>")
    os.unlink(two_machines["notebooks"] / "extra.ipynb")
    named = publish.publish(data, reports, machines=["box-a"])      # a partial publish removes nothing
    assert named.removed == [] and os.path.isfile(extra_a)
    out = publish.publish(data, reports)
    assert _names(out.removed, reports) == ["box-a/extra.html"]
    assert not os.path.exists(extra_a) and "my notes" in open(extra_b).read()
    index = open(os.path.join(reports, "index.html")).read()
    assert "box-a/extra.html" not in index and "box-a/tiny.html" in index
    record = json.load(open(os.path.join(reports, publish.WRITTEN_FILE)))["files"]
    assert sorted(record) == ["box-a/tiny.html", "box-b/tiny.html"]


@pytest.mark.parametrize("where", ["box-a/tiny.html", "index.html"])
def test_a_file_kit_did_not_write_is_never_overwritten(two_machines, where):
    data, reports = two_machines["data"], two_machines["reports"]
    publish.publish(data, reports)
    mine = os.path.join(reports, where)
    os.unlink(mine)
    with open(mine, "w") as fh:
        fh.write("<html><body>my own page</body></html>")
    other = os.path.join(reports, "box-b", "tiny.html")
    stamp = os.stat(other).st_mtime_ns
    p = run_kit("publish", f"--data={data}", f"--reports={reports}", "--force",
                env={**os.environ, "KIT_NOTEBOOKS": str(two_machines["notebooks"])})
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip() == (f"kit publish: error: --reports: {mine} was not written by kit; kit never overwrites what it "
                                "did not write: move it away")
    assert open(mine).read() == "<html><body>my own page</body></html>"
    assert os.stat(other).st_mtime_ns == stamp                     # nothing written at all


def test_kit_publish_says_what_it_rendered_and_kept(two_machines):
    env = {**os.environ, "KIT_NOTEBOOKS": str(two_machines["notebooks"])}
    args = ("publish", f"--data={two_machines['data']}", f"--reports={two_machines['reports']}")
    for attempt in range(3):
        first = run_kit(*args, "--force", env=env)
        second = run_kit(*args, env=env)
        index = os.path.join(two_machines["reports"], "index.html")
        assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
        assert first.stdout == f"kit publish: 2 page(s) rendered, 0 unchanged (kept); open {index}\n"
        if second.stdout.startswith("kit publish: 0 page(s)"):
            break       # else kit's sources changed between the two (other work on this tree): again
    assert second.stdout == f"kit publish: 0 page(s) rendered, 2 unchanged (kept); open {index}\n"
    assert first.stderr == second.stderr == ""


def test_kit_digest_follows_kits_python_sources(tmp_path):
    package = tmp_path / "kit"
    shutil.copytree(os.path.dirname(publish.__file__), package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.o"))
    before = publish.kit_digest(str(package))
    assert publish.kit_digest(str(package)) == before
    (package / "__pycache__").mkdir(exist_ok=True)
    (package / "__pycache__" / "x.pyc").write_bytes(b"compiled")
    assert publish.kit_digest(str(package)) == before              # compiled files are not sources
    with open(package / "notebook.py", "a") as fh:
        fh.write("\n# a change\n")
    assert publish.kit_digest(str(package)) != before


def test_tree_digest_reads_bytes_and_skips_temporary_files(tmp_path):
    folder = tmp_path / "box"
    (folder / "engines").mkdir(parents=True)
    result = folder / "engines" / "a.json"
    result.write_text('{"iops": 1}')
    before = publish.tree_digest(str(folder))
    stat = os.stat(result)
    result.write_text('{"iops": 2}')
    os.utime(result, ns=(stat.st_atime_ns, stat.st_mtime_ns))      # same size, same mtime: bytes tell
    assert publish.tree_digest(str(folder)) != before
    changed = publish.tree_digest(str(folder))
    (folder / "engines" / ".kit-x.tmp").write_text("half a result")
    os.mkfifo(folder / "engines" / "fifo")                          # never opened to read (it would block)
    with_fifo = publish.tree_digest(str(folder))
    assert with_fifo != changed
    os.unlink(folder / "engines" / "fifo")
    assert publish.tree_digest(str(folder)) == changed              # a write under way is not an input
    (folder / "engines" / ".history").mkdir()                       # a suite's history is
    (folder / "engines" / ".history" / "old.json").write_text("{}")
    assert publish.tree_digest(str(folder)) != changed


def _kit(args, notebooks):
    return run_kit(*args, env={**os.environ, "KIT_NOTEBOOKS": str(notebooks)})


def test_a_failing_notebook_is_one_line_and_writes_nothing(two_machines):
    """From the terminal: a notebook's own exception is exit 1, its
    parameters refused exit 2; one line on stderr, no traceback, and no
    page written (the other notebook's pages included)."""
    notebooks, data = two_machines["notebooks"], two_machines["data"]
    reports = two_machines["root"] / "fresh-reports"
    for command, order in ((("publish",), 9), (("report", "--no-measure"), 0)):     # after tiny's pages, before
        _notebook(notebooks, "zz-boom", "1 / 0\n", title="Boom", order=order)
        p = _kit((*command, f"--data={data}", f"--reports={reports}"), notebooks)
        assert p.returncode == 1, p.stderr
        assert p.stderr == f"kit {command[0]}: failed: notebook zz-boom: ZeroDivisionError: division by zero\n"
        assert not reports.exists()
    os.unlink(notebooks / "zz-boom.ipynb")
    _notebook(notebooks, "zz-param", "", title="Param", parameters=PARAMETERS.replace("quick = False", 'quick = "yes"'),
              order=0)
    p = _kit(("publish", f"--data={data}", f"--reports={reports}"), notebooks)     # kit report takes this way too
    assert p.returncode == 2, p.stderr
    assert p.stderr == ("kit publish: error: notebook zz-param: ParameterError: parameter quick: must be bool "
                        "(got 'yes')\n")
    assert not reports.exists()


def test_execute_tells_bad_parameters_from_failures(two_machines):
    with pytest.raises(OptionError, match=r"^notebook tiny: ParameterError: unknown parameter 'bogus'"):
        publish.execute("tiny", {"machine": "box-a", "data_dir": two_machines["data"], "bogus": 1})
    _notebook(two_machines["notebooks"], "lookup", "{}['missing']\n", title="Lookup")
    with pytest.raises(RunError, match=r"^notebook lookup: KeyError: 'missing'$"):
        publish.execute("lookup", {"machine": "box-a", "data_dir": two_machines["data"]})



def test_a_kernel_that_dies_starting_is_started_again_once(two_machines, monkeypatch):
    """A page's kernel that dies before it answers (no cell ran) is started
    again, once, and the page renders; one that dies again is one line. The
    kernel listens on Unix sockets in kit's own folder, not on TCP ports that
    jupyter_client found free and any program could take before it binds."""
    started, sockets, real = [], [], publish._Kernels._started

    def dies(kernels, process, times):
        started.append(process.pid)
        if len(started) <= times:
            process.kill()
        else:
            sockets.append(_unix_sockets(process.pid))
        real(kernels, process)
    monkeypatch.setattr(publish._Kernels, "_started", lambda k, p: dies(k, p, 1))
    nb = publish.execute("tiny", {"machine": "box-a", "data_dir": two_machines["data"]})
    assert len(started) == 2 and "1 results" in json.dumps(nb["cells"][-1]["outputs"])
    (paths,) = sockets
    assert len(paths) == 5 and all(p.startswith(os.path.join(tempfile.gettempdir(), "kit-nb-")) for p in paths), paths
    started.clear()
    monkeypatch.setattr(publish, "KERNEL_START_RETRIES", 0)     # dying as often as it is started: one line
    with pytest.raises(RunError, match=r"^notebook tiny: RuntimeError: Kernel died before replying to kernel_info$"):
        publish.execute("tiny", {"machine": "box-a", "data_dir": two_machines["data"]})
    assert len(started) == 1


def test_any_failure_to_start_a_kernel_is_one_line(two_machines, monkeypatch):
    """What starting a kernel raises from below papermill (zmq, the kernel's
    process, jupyter_client's timeout) ends the page with one line, not a
    traceback, and is not retried: only a kernel that died is."""
    import zmq
    started = []

    def fails(kernels, process, error):
        started.append(process.pid)
        process.kill()
        raise error
    for error, line in ((zmq.ZMQError(98, "Address already in use"), "ZMQError: Address already in use"),
                        (TimeoutError("Kernel didn't respond in 60 seconds"),
                         "TimeoutError: Kernel didn't respond in 60 seconds")):
        started.clear()
        monkeypatch.setattr(publish._Kernels, "_started", lambda k, p, e=error: fails(k, p, e))
        with pytest.raises(RunError) as e:
            publish.execute("tiny", {"machine": "box-a", "data_dir": two_machines["data"]})
        assert str(e.value) == f"notebook tiny: {line}" and len(started) == 1


def test_a_page_under_a_temp_folder_too_long_for_unix_sockets_uses_tcp(two_machines, tmp_path, monkeypatch):
    """A Unix socket's path holds 107 bytes: under a longer TMPDIR the page's
    kernel listens on TCP ports instead, and the page renders."""
    long_tmp = tmp_path / ("t" * 60) / ("u" * 60)
    long_tmp.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(long_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)          # tempfile reads TMPDIR again
    ports, real = [], publish._Kernels._started

    def started(kernels, process):
        ports.append(_tcp_listening(process.pid))
        real(kernels, process)
    monkeypatch.setattr(publish._Kernels, "_started", started)
    nb = publish.execute("tiny", {"machine": "box-a", "data_dir": two_machines["data"]})
    assert "1 results" in json.dumps(nb["cells"][-1]["outputs"])
    assert len(ports) == 1 and len(ports[0]) >= 5, ports         # shell, iopub, stdin, control, heartbeat


def _tcp_listening(pid):
    """The TCP ports a kernel listens on, once it has bound its five."""
    return _listening(pid, "tcp", lambda r: int(r[1].split(":")[1], 16) if r[3] == "0A" else None,  # 0A: LISTEN
                      inode=9)


def _unix_sockets(pid):
    """The paths of the Unix sockets a kernel listens on (shell, iopub, stdin,
    control, heartbeat), once it has bound all five."""
    return _listening(pid, "unix", lambda r: r[7] if len(r) > 7 and r[5] == "01" else None, inode=6)


def _listening(pid, table, listener, inode):
    """What listener(row) says of the rows of /proc/net/<table> that are
    sockets of process pid (their inode in column inode), once there are
    five (a kernel's sockets)."""
    deadline, found = time.monotonic() + 30, []
    while time.monotonic() < deadline and len(found) < 5:
        time.sleep(0.05)
        with contextlib.suppress(OSError):
            mine = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
            with open(f"/proc/net/{table}") as fh:
                rows = [line.split() for line in list(fh)[1:]]
            found = sorted(x for r in rows if len(r) > inode and f"socket:[{r[inode]}]" in mine
                           and (x := listener(r)) is not None)
    return found


def test_pages_execute_at_once_yet_fail_as_if_one_after_the_other(two_machines, tmp_path, monkeypatch):
    """Pages execute publish.PAGES_AT_ONCE at a time, yet the error raised is
    the first page's in order, though a later one failed before it, and once
    a page has failed no other starts; nothing is written."""
    notebooks, marks = tmp_path / "failing", tmp_path / "marks"
    notebooks.mkdir()
    marks.mkdir()
    mark = f"import pathlib, time\nmarks = pathlib.Path({str(marks)!r})\n"
    # the first page fails only once the second has (or after 20 s, when pages cannot run at once here)
    _notebook(notebooks, "a-first", mark + "deadline = time.monotonic() + 20\n"
              "while not (marks / 'second').exists() and time.monotonic() < deadline:\n    time.sleep(0.05)\n"
              "(marks / 'first').touch()\nraise ValueError('the first page')\n", title="First", order=0)
    _notebook(notebooks, "b-second", mark + "(marks / 'second').touch()\nraise ValueError('the second page')\n",
              title="Second", order=1)
    _notebook(notebooks, "c-third", mark + "(marks / 'third').touch()\n", title="Third", order=2)
    monkeypatch.setenv("KIT_NOTEBOOKS", str(notebooks))
    reports = tmp_path / "reports"
    with pytest.raises(RunError, match=r"^notebook a-first: ValueError: the first page$"):
        publish.publish(two_machines["data"], str(reports), machines=["box-a"])
    assert not reports.exists()
    if publish.PAGES_AT_ONCE >= 2:
        assert sorted(os.listdir(marks)) == ["first", "second"]      # the second failed first; no third began
        assert (marks / "second").stat().st_mtime_ns <= (marks / "first").stat().st_mtime_ns


def _kernels_of(pid):
    """The Jupyter kernels a process started (its children running ipykernel)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            for child in fh.read().split():
                with contextlib.suppress(OSError), open(f"/proc/{child}/cmdline", "rb") as cmd:
                    if b"ipykernel" in cmd.read():
                        found.append(int(child))
    return found


def _alive(pid):
    """Running, not gone nor a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ctrl_c_kills_the_pages_executing_at_once(two_machines, tmp_path):
    """Ctrl-C while kit publish executes pages at once, each in a kernel of
    its own: one line, exit 130 within seconds, every kernel gone, nothing
    written."""
    notebooks, marks = tmp_path / "slow", tmp_path / "marks"
    notebooks.mkdir()
    marks.mkdir()
    _notebook(notebooks, "slow", f"import pathlib, time\npathlib.Path({str(marks)!r}, machine).touch()\n"
                                 "time.sleep(300)\n", title="Slow")
    reports = tmp_path / "reports"
    proc = subprocess.Popen([KIT, "publish", f"--data={two_machines['data']}", f"--reports={reports}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KIT_NOTEBOOKS": str(notebooks)})
    try:
        at_once, deadline = min(2, publish.PAGES_AT_ONCE), time.monotonic() + 60
        while len(os.listdir(marks)) < at_once and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert len(os.listdir(marks)) == at_once, proc.stderr.read() if proc.poll() is not None else "timed out"
        kernels = _kernels_of(proc.pid)
        assert len(kernels) == at_once
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and (out, err) == ("", "kit publish: interrupted\n")
    assert took < 5, took
    assert not any(_alive(pid) for pid in kernels)
    assert not reports.exists()


def test_kit_report_refuses_a_foreign_page_before_it_measures(tmp_path):
    from kit.machine import machine_name
    folder = tmp_path / "reports" / machine_name()
    folder.mkdir(parents=True)
    (folder / "engines.html").write_text("<html>my engines notes</html>")
    p = run_kit("report", "--quick", "--suites=machine", f"--data={tmp_path / 'data'}",
                f"--reports={tmp_path / 'reports'}", f"--directory={tmp_path / 'scratch'}", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr == (f"kit report: error: --reports: {folder / 'engines.html'} was not "
                                              "written by kit; kit never overwrites what it did not write: move "
                                              "it away\n")
    assert sorted(os.listdir(tmp_path)) == ["reports"] and os.listdir(folder) == ["engines.html"]


@pytest.mark.parametrize("trap", ["machines.html", "machine folder is a file", "damaged record"])
def test_kit_report_refuses_what_publish_would_refuse_before_it_measures(tmp_path, trap):
    """Every refusal publish would make comes before the store is written:
    a foreign page across machines, a machine's reports folder that is a
    file, kit's record of its pages damaged."""
    from kit.machine import machine_name
    reports = tmp_path / "reports"
    reports.mkdir()
    if trap == "machines.html":       # published once the store holds two machines: this one and box-b
        (reports / "machines.html").write_text("<html>my own comparison</html>")
        fio = fio_json(tmp_path)
        assert run_kit("import", str(fio), f"--data={tmp_path / 'data'}", "--machine=box-b").returncode == 0
        os.unlink(fio)
    elif trap == "machine folder is a file":
        (reports / machine_name()).write_text("not a folder")
    else:
        (reports / publish.WRITTEN_FILE).write_text("{damaged")
    before = {p.name: p.read_bytes() for p in reports.iterdir()}
    stored = sorted(os.listdir(tmp_path / "data")) if (tmp_path / "data").exists() else None
    p = run_kit("report", "--quick", "--suites=machine", f"--data={tmp_path / 'data'}", f"--reports={reports}",
                f"--directory={tmp_path / 'scratch'}", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("kit report: error: --reports: ") and p.stderr.count("\n") == 1
    assert "scratch" not in os.listdir(tmp_path)                       # nothing measured
    assert (sorted(os.listdir(tmp_path / "data")) if (tmp_path / "data").exists() else None) == stored
    assert {p.name: p.read_bytes() for p in reports.iterdir()} == before


def test_a_mistyped_store_publishes_nothing_and_removes_nothing(two_machines, tmp_path):
    """--data naming no store (absent, a file, or a folder with no machine
    while the reports came from one that had some) is one line, exit 2: the
    pages published before all stay, the index too."""
    data, reports = two_machines["data"], two_machines["reports"]
    publish.publish(data, reports)
    before = {p: open(os.path.join(reports, p)).read() for p in ("index.html", "box-a/tiny.html", "box-b/tiny.html")}
    a_file = tmp_path / "ok.fio"
    a_file.write_text("[x]\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    for wrong, says in ((str(tmp_path / "dta"), "does not exist"), (str(a_file), "is not a directory"),
                        (str(empty), "holds no machine's results")):
        p = run_kit("publish", f"--data={wrong}", f"--reports={reports}")
        assert p.returncode == 2 and says in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and "data" in p.stderr
        assert {q: open(os.path.join(reports, q)).read() for q in before} == before
    # a store with no machine yet is fine for a reports folder kit has not published from
    fresh = tmp_path / "fresh-reports"
    assert run_kit("publish", f"--data={empty}", f"--reports={fresh}").returncode == 0
