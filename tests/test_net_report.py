"""Network runs in kit's reports: the network suite (veth, else loopback,
saying so), network sweeps (engines x connections x message size, resumed,
interleaved), the network page, and network results in kit's text and
kit compare -- all from real runs."""
import json
import os
import re

import pytest

from conftest import require, run_kit
from kit import store, suites
from kit import notebook as kn


def _can_make_namespaces():
    from kit.net.netns import missing_privileges, missing_tools
    why = missing_privileges() or missing_tools()
    require(why is None, why)


def _buildable(*names):
    from kit.errors import RunError
    from kit.net import build
    try:
        for name in names:
            build.binary(name)
        build.binary(build.LOADGEN)
    except RunError as e:
        require(False, str(e))


def _visible(page):
    import html
    page = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _table(page, header):
    """The rows (cell texts) of the page's table whose header has `header`."""
    for table in re.findall(r"<table.*?</table>", page, flags=re.S):
        rows = [[_visible(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, flags=re.S)]
                for tr in re.findall(r"<tr.*?</tr>", table, flags=re.S)]
        if rows and header in rows[0]:
            return rows
    raise AssertionError(f"no table with {header!r}")


SWEEP = """
name: tiny
base: {protocol: tcp, runtime: 0.15, ramp_time: 0.02}
grid:
  server: [epoll, io_uring+multishot]
  connections: [1, 2]
repeats: 2
seed: 11
"""


def test_a_network_sweep_runs_interleaved_resumes_and_is_published(tmp_path, monkeypatch):
    """`kit sweep` with a spec that names a server: every point a network job
    (io_uring+multishot runs io_uring with multishot on), stored as
    net-sweep-<name> with its point and place in the order, resumed without
    a second run, and published by the network notebook -- beside the
    network suite's page, measured on loopback where kit is told veth is
    out of reach, which the page says."""
    _can_make_namespaces()
    _buildable("epoll", "io_uring")
    data = tmp_path / "data"
    # the network suite first, as a machine without namespaces measures it
    from kit.net import netns
    monkeypatch.setattr(netns, "missing_privileges", lambda: "no CAP_NET_ADMIN here (test)")
    monkeypatch.setattr(suites, "NETWORK_QUICK_ROWS", (("epoll", "tcp"), ("threads", "tcp")))
    assert suites.network_place() == ("loopback", "no CAP_NET_ADMIN here (test)")
    traced, why = suites.tracing_usable()
    require(traced, f"tracing does not work here: {why}")
    assert suites.measure_network(str(data), quick=True) == 4            # 2 rows x 2 connection counts
    monkeypatch.undo()
    machine = store.machines(str(data))[0]["name"]
    stored = store.load(machine, "network", str(data))
    assert len(stored) == 10 and {r.data["tags"]["network"] for r in stored} == {"loopback"}
    assert {r.data["jobs"][0]["job options"]["network"] for r in stored} == {"loopback"}
    assert len({r.data["tags"]["batch"] for r in stored}) == 1
    # one traced run per row at the most connections (quick), beside the repeats, never one of them
    explains = {r.data["tags"]["key"]: r for r in stored if r.data["tags"].get("explains")}
    assert sorted(explains) == ["epoll-tcp-c8-traced", "threads-tcp-c8-traced"]
    assert all(r.data["traced"] and {"net", "sched"} <= set(r.data["trace"]) for r in explains.values())
    assert not any(r.data.get("trace") for r in stored if not r.data["tags"].get("explains"))
    # runs kit net --save stored (suite net): one traced, one not, shown on the same page
    for extra in (["--server=epoll", "--connections=2", "--trace"], ["--server=threads", "--connections=3"]):
        p = run_kit("net", *extra, "--runtime=150ms", "--save", f"--data={data}", cwd=tmp_path, timeout=120)
        assert p.returncode == 0, p.stderr
    saved = {r.data["label"]: r for r in store.load(machine, "net", str(data))}
    assert sorted(saved) == ["epoll tcp echo", "threads tcp echo"] and saved["epoll tcp echo"].data["traced"]

    spec = tmp_path / "tiny.yml"
    spec.write_text(SWEEP)
    p = run_kit("sweep", str(spec), f"--data={data}", f"--reports={tmp_path / 'reports'}", cwd=tmp_path,
                timeout=300)
    assert p.returncode == 0, p.stderr
    assert "kit sweep tiny: 8 run, 0 already stored" in p.stdout
    results = store.load(machine, "net-sweep-tiny", str(data))
    assert len(results) == 8
    points = {(r.data["tags"]["point"]["server"], r.data["tags"]["point"]["connections"], r.data["tags"]["repeat"])
              for r in results}
    assert points == {(s, c, n) for s in ("epoll", "io_uring+multishot") for c in (1, 2) for n in (1, 2)}
    for r in results:
        opts = r.data["jobs"][0]["job options"]
        server = r.data["tags"]["point"]["server"]
        assert opts["server"] == server.split("+")[0] and opts["network"] == "veth"
        assert (opts.get("multishot") == "1") == (server == "io_uring+multishot")
        assert r.data["label"].startswith(server + " tcp echo") and r.ios > 0
        assert r.data["tags"]["order_seed"] == 11
    # interleaved: the first round holds every point once before any point's second repeat
    first = sorted(results, key=lambda r: r.data["tags"]["order"])[:4]
    assert {r.data["tags"]["repeat"] for r in first} == {1}

    again = run_kit("sweep", str(spec), f"--data={data}", "--no-publish", cwd=tmp_path, timeout=120)
    assert again.returncode == 0 and "0 run, 8 already stored" in again.stdout, again.stderr

    folder = tmp_path / "reports" / machine
    assert sorted(os.listdir(folder)) == ["net-sweep-tiny.html", "network.html"]
    sweep_page = (folder / "net-sweep-tiny.html").read_text()
    rows = _table(sweep_page, "requests/s interval")
    header = rows[0]
    assert [(r[header.index("server")], r[header.index("connections")]) for r in rows[1:]] == [
        ("epoll tcp echo", "1"), ("epoll tcp echo", "2"), ("io_uring+multishot tcp echo", "1"),
        ("io_uring+multishot tcp echo", "2")]
    assert all(r[header.index("repeats")] == "2" for r in rows[1:])
    assert all(float(r[header.index("requests/s")].replace(",", "")) > 0 for r in rows[1:])
    suite_page = (folder / "network.html").read_text()
    assert "Measured on loopback" in _visible(suite_page) and "no CAP_NET_ADMIN here (test)" in _visible(suite_page)
    rows = _table(suite_page, "requests/s interval")
    assert [r[0] for r in rows[1:]] == ["threads tcp echo"] * 2 + ["epoll tcp echo"] * 2     # the seed's order
    for page, title in ((sweep_page, "Network tiny"), (suite_page, "Network")):
        text = _visible(page)
        assert re.search(rf"<title>{title} · ", page)
        assert not {"nan", "NaN", "None", "Traceback"} & set(re.findall(r"[A-Za-z]+", text))
        images = re.findall(r"<img\b[^>]*>", page)
        assert len(images) >= 2 and all("Panels: " in re.search(r'alt="([^"]*)"', i).group(1) for i in images)
        assert 'href="data:text/csv;base64,' in page
        # what bounded the rate, and a claim only as the intervals allow
        assert re.search(r"serves the most|no server is clearly fastest|ranking withheld|Ranking withheld", text)
        assert "switched" in text and "times per request" in text      # the why, from each side's threads
    # the suite's page explains its traced rows with the tracers' figures, row by row, and says which it cannot
    text = _visible(suite_page)
    for key, label in (("epoll-tcp-c8-traced", "epoll tcp echo"), ("threads-tcp-c8-traced", "threads tcp echo")):
        share = explains[key].data["trace"]["net"]["softirq"]["NET_RX"]["cpu_share"]
        assert f"{label} , 8 connections: NET_RX, the kernel's receive softirq, took {share:.2f} of a CPU" in text
        roles = kn.net_trace_roles(explains[key], {"label": label, "connections": 8})
        assert roles and {r["side"] for r in roles} >= {"server", "client"}
    rows = _table(suite_page, "switches per request")
    header = rows[0]
    loop = next(r for r in rows[1:] if r[header.index("server")] == "epoll tcp echo"
                and r[header.index("role")] == "loop")
    expected = next(r for r in kn.net_trace_roles(explains["epoll-tcp-c8-traced"], {"label": "epoll tcp echo",
                                                                                     "connections": 8})
                    if r["role"] == "loop")
    assert loop[header.index("switches per request")] == kn.per_io_format(expected["switches per request"])
    assert loop[header.index("CPUs busy")] == f"{expected['CPUs busy']:,.2f}"
    assert "No traced run explains threads tcp echo at 1 connection, epoll tcp echo at 1 connection, so" in text
    assert "No traced run explains these rows" in _visible(sweep_page)      # the sweep was not traced
    # the saved runs: a section of their own, one row per job, when each was measured, the traced one explained
    assert "Runs saved with kit net --save" in text and "2 runs of 2 jobs, saved " in text
    rows = _table(suite_page, "last measured")
    header = rows[0]
    assert sorted((r[header.index("server")], r[header.index("connections")]) for r in rows[1:]) == [
        ("epoll tcp echo", "2"), ("threads tcp echo", "3")]
    assert all(r[header.index("last measured")].endswith(" UTC") for r in rows[1:])
    share = saved["epoll tcp echo"].data["trace"]["net"]["softirq"]["NET_RX"]["cpu_share"]
    assert f"epoll tcp echo , 2 connections: NET_RX, the kernel's receive softirq, took {share:.2f} of a CPU" in text
    assert 'download="' in suite_page and "every saved kit net run" in text


@pytest.mark.parametrize("grid, words", [
    ("{server: [epoll+bogus]}", "server: epoll+bogus: 'bogus' is not a feature of server=epoll (its features: edge)"),
    ("{server: [epoll], multishot: [1]}", "multishot: only server=io_uring has it"),
    ("{server: [io_uring+multishot], multishot: [1]}", "multishot: is given twice"),
    ("{server: [dpdk], protocol: [tcp]}", "protocol: server=dpdk serves udp only"),
    ("{server: [epoll], bs: [64k], protocol: [udp]}", "bs: must be from 1 to 65507 bytes with protocol=udp"),
    ("{server: [epoll], connections: [0]}", "connections: must be"),
])
def test_bad_network_sweeps_are_one_line_and_write_nothing(tmp_path, grid, words):
    spec = tmp_path / "bad.yml"
    spec.write_text(f"name: bad\ngrid: {grid}\n")
    p = run_kit("sweep", str(spec), "--no-publish", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and words in p.stderr, p.stderr
    assert sorted(os.listdir(tmp_path)) == ["bad.yml"]


def test_a_network_sweep_runs_only_kits_runner(tmp_path):
    spec = tmp_path / "fio.yml"
    spec.write_text("name: f\ngrid: {server: [epoll]}\nrunner: fio\n")
    p = run_kit("sweep", str(spec), "--no-publish", cwd=tmp_path)
    assert p.returncode == 2 and "runner: a network sweep (it names a server) runs kit's load generator" in p.stderr


def test_the_example_network_sweep_is_valid_and_its_quick_form_small():
    from kit.sweep import load_spec
    sweep = load_spec(os.path.join(os.path.dirname(__file__), "..", "sweeps", "network.yml"))
    assert sweep.network and sweep.suite == "net-sweep-evolution"
    labels = {job.label.split(" ")[0] for _point, job in sweep.jobs()}
    assert {"threads", "epoll", "io_uring", "io_uring+multishot", "io_uring+sqthread_poll", "asio",
            "asio+io_uring"} == labels
    quick = suites.quick_sweep(sweep)
    assert quick.suite == "net-sweep-evolution-quick" and len(quick.points()) == 8
    assert all(job.runtime == 0.2 and job.ramp_time == 0 for _p, job in quick.jobs())


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two real network results, as `kit net --json` writes them."""
    _can_make_namespaces()
    _buildable("epoll", "io_uring")
    root = tmp_path_factory.mktemp("net-text")
    paths = []
    for server in ("epoll", "io_uring"):
        path = root / f"{server}.json"
        p = run_kit("net", f"--server={server}", "--connections=2", "--bs=128", "--runtime=150ms", "--json",
                    f"--output={path}", cwd=root)
        assert p.returncode == 0, p.stderr
        paths.append(path)
    return paths


def test_network_results_read_as_network_jobs_in_kits_text(two_runs):
    from kit.results import Result
    from kit.text import format_summary, job_fields
    r = Result.load(str(two_runs[0]))
    job = job_fields(r.data)
    assert (job["server"], job["protocol"], job["connections"], job["bs"], job["iodepth"]) == ("epoll", "tcp", 2,
                                                                                                128, 1)
    assert "hostname" not in job and "port" not in job               # where it ran is not what it measured
    head = format_summary(r.data).splitlines()[0]
    assert head == "epoll tcp echo connections=2 iodepth=1 bs=128B network=veth"
    frame = r.to_frame()
    assert frame.loc[0, "ioengine"] == "net" and frame.loc[0, "iops"] == r.iops > 0


def test_kit_compare_of_two_network_results_reads_well(two_runs):
    p = run_kit("compare", str(two_runs[0]), str(two_runs[1]))
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("epoll tcp echo"))
    assert "epoll tcp echo connections=2 iodepth=1 bs=128B network=veth vs io_uring tcp echo connections=2" in line
    assert "the jobs differ: server epoll vs io_uring" in line
    assert "rw=" not in p.stdout and "?" not in p.stdout
    same = run_kit("compare", str(two_runs[0]), str(two_runs[0]))
    assert "no clear difference: +0.0 %" in same.stdout and "the jobs differ" not in same.stdout


def test_network_tables_claim_a_winner_only_when_intervals_separate():
    """net_table's medians and intervals, and net_text's sentences, from
    runs made up to the point: overlapping repeats name no winner, separated
    ones do, and a client-bound row is said to measure the client."""
    import pandas as pd

    def run(label, server, iops, connections=16, bottleneck="neither", order=0):
        return {"label": label, "server": server, "protocol": "tcp", "workload": "echo", "connections": connections,
                "bs": 64, "iodepth": 1, "rate_iops": 0, "network": "veth", "iops": iops, "requests": iops,
                "p50_ns": 30_000, "p99_ns": 90_000, "server_cpu_ns": 10_000 if server == "epoll" else 7_000,
                "client_cpu_ns": 9_000, "server_cpus": 0.5, "client_cpus": 0.6, "server_sys_share": 0.9,
                "server_ctx_per_request": 1.0, "bottleneck": bottleneck, "lost": 0, "late": 0, "traced": False,
                "timestamp": 1, "order": order, "trend_pct": 0.0, "rerun": False, "key": None, "note": "",
                "result": 0}
    runs = pd.DataFrame([run("io_uring tcp echo", "io_uring", v, order=i) for i, v in enumerate((60e3, 61e3, 62e3))]
                        + [run("epoll tcp echo", "epoll", v, order=3 + i) for i, v in enumerate((40e3, 41e3, 42e3))])
    table = kn.net_table(runs)
    assert list(table["label"]) == ["epoll tcp echo", "io_uring tcp echo"]         # the seed's order
    uring = table.set_index("label").loc["io_uring tcp echo"]
    assert (uring["iops"], uring["iops_lo"], uring["iops_hi"], uring["repeats"]) == (61e3, 60e3, 62e3, 3)
    text = " ".join(kn.net_text(table))
    assert "**io_uring tcp echo** serves the most: 61,000 requests/s (median of 3, range 60,000 to 62,000)" in text
    assert "from 7.0 µs (io_uring tcp echo) to 10.0 µs (epoll tcp echo)" in text
    close = pd.DataFrame([run("io_uring tcp echo", "io_uring", v) for v in (50e3, 40e3, 60e3)]
                         + [run("epoll tcp echo", "epoll", v, bottleneck="client") for v in (45e3, 46e3, 47e3)])
    text = " ".join(kn.net_text(kn.net_table(close)))
    assert "no server is clearly fastest" in text and "serves the most" not in text
    assert "measure the client's limit, not the server's" in text and "(epoll tcp echo)" in text
    assert kn.net_table(runs.iloc[0:0]).empty and kn.net_text(kn.net_table(runs.iloc[0:0])) == []


def _traced(root, name, *options):
    path = root / f"{name}.json"
    p = run_kit("net", *options, "--connections=4", "--runtime=300ms", "--trace", "--json", f"--output={path}",
                cwd=root, timeout=120)
    assert p.returncode == 0, p.stderr
    from kit.results import Result
    return Result.load(str(path))


def test_a_traced_run_is_explained_from_its_figures_and_only_as_they_allow(tmp_path):
    """net_trace_explain on real traced runs across the veth pair: NET_RX's
    share of a CPU and of it the server's threads', every frame up the
    server's stack for epoll; SQPOLL's thread and DPDK's lcore never
    sleeping (no voluntary switch) and DPDK's frames past the stack through
    XDP, with the tracers' own numbers; nothing for a run not traced; a
    caveat first where the tracers lost events."""
    _can_make_namespaces()
    _buildable("epoll", "io_uring")
    traced, why = suites.tracing_usable()
    require(traced, f"tracing does not work here: {why}")
    epoll = _traced(tmp_path, "epoll", "--server=epoll")
    net = epoll.data["trace"]["net"]
    said = " ".join(kn.net_trace_explain(epoll))
    rx = net["softirq"]["NET_RX"]
    server_share = net["net_rx_contexts"]["server"]["share"]
    assert f"NET_RX, the kernel's receive softirq, took {rx['cpu_share']:.2f} of a CPU: " in said
    if server_share >= kn.NET_WORTH_SAYING:
        assert f"{100 * server_share:.0f} % of it in the server's threads" in said
    wire = next(n for n in net["namespaces"] if n["label"] == "server")["interfaces"]["rx_packets"]
    assert f"Every frame the server's interface received ({wire:,}) went up its kernel stack." in said
    assert "never slept" not in said and "XDP" not in said                # epoll has no poller, no XDP

    sqpoll = _traced(tmp_path, "sqpoll", "--server=io_uring", "--sqthread_poll=1")
    sqp = sqpoll.data["trace"]["sched"]["roles"]["server/iou-sqp"]
    busy = 100 * sqp["oncpu_ns"] / sqpoll.data["trace"]["duration_ns"]
    said = " ".join(kn.net_trace_explain(sqpoll))
    if sqp["voluntary"] == 0:
        assert (f"io_uring's SQPOLL thread (iou-sqp) never slept: it was on a CPU {busy:.0f} % of the traced time, "
                f"and its {sqp['switches']:,} switches were all involuntary") in said
    else:
        assert f"io_uring's SQPOLL thread (iou-sqp) was on a CPU {busy:.0f} % of the traced time and slept " \
               f"{sqp['voluntary']:,} times" in said
    roles = {r["role"]: r for r in kn.net_trace_roles(sqpoll, {"label": "x", "connections": 4})
             if r["side"] == "server"}
    assert roles["iou-sqp"]["voluntary"] == sqp["voluntary"] / sqp["switches"]
    per_second = sqp["switches"] / (sqpoll.data["trace"]["duration_ns"] / 1e9)
    assert abs(roles["iou-sqp"]["switches per request"] - per_second / sqpoll.iops) < 1e-9

    try:
        _buildable("dpdk")
        dpdk = _traced(tmp_path, "dpdk", "--server=dpdk", "--protocol=udp")
    except pytest.skip.Exception:
        dpdk = None
    if dpdk is not None:
        said = " ".join(kn.net_trace_explain(dpdk))
        server = next(n for n in dpdk.data["trace"]["net"]["namespaces"] if n["label"] == "server")
        assert server["rx_packets"] == 0 and server["xdp_redirect"] > 0
        assert (f"The server's kernel stack saw 0 packets: {server['xdp_redirect']:,} frames went past it through "
                "XDP") in said
        if dpdk.data["trace"]["sched"]["roles"]["server/lcore"]["voluntary"] == 0:
            assert "DPDK's lcore never slept" in said
        assert "Every frame" not in said

    untraced = epoll.__class__(dict(epoll.data, trace=None, traced=False))
    assert kn.net_trace_explain(untraced) == [] and kn.net_trace_roles(untraced, {"label": "x",
                                                                                   "connections": 4}) == []
    lossy = epoll.__class__(json.loads(json.dumps(epoll.data)))
    lossy.data["trace"]["lost"]["total"] = 1234
    assert kn.net_trace_explain(lossy)[0] == "The tracers lost 1,234 events on this run: the counts below are low."


def test_saved_runs_alone_make_a_network_page_and_both_make_one(tmp_path):
    from kit.publish import report_names
    from kit.results import Result
    _can_make_namespaces()
    _buildable("epoll")
    path = tmp_path / "r.json"
    p = run_kit("net", "--server=epoll", "--runtime=100ms", "--json", f"--output={path}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    data = str(tmp_path / "data")
    store.save(Result.load(str(path)), "net", data=data)
    machine = store.machines(data)[0]["name"]
    assert [n for n in report_names(machine, data) if n[0] == "network"] == [("network", {}, "network")]
    store.save(Result.load(str(path)), "network", "epoll-tcp-c1-r1", data=data)
    assert [n for n in report_names(machine, data) if n[0] == "network"] == [("network", {}, "network")]
    assert [r.data["label"] for r in kn.net_saved_results(machine, data)] == ["epoll tcp echo"]
