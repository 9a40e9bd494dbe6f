"""kit's network runs, for real: server engines in network namespaces of
their own, kit's load generator in another, a veth pair between them (or
loopback), and what is left afterwards -- nothing, however kit ends."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import KIT, require, run_kit

from kit.net.servers import engine, engine_names

RUNTIME = "300ms"
PERCENTILE_KEYS = ("1.000000", "50.000000", "90.000000", "99.000000", "99.900000")


def _buildable(name, variant=None):
    """The engine's executable and the load generator, or skip (fail under
    KIT_STRICT=1) saying why they cannot be built here."""
    from kit.errors import RunError
    from kit.net import build
    try:
        build.binary(name, variant)
        build.binary(build.LOADGEN)
    except RunError as e:
        require(False, str(e))


def _can_make_namespaces():
    from kit.net.netns import missing_privileges, missing_tools
    why = missing_privileges() or missing_tools()
    require(why is None, why)


# ---- what kit leaves behind ---------------------------------------------------

def _proc(pid, name):
    try:
        with open(f"/proc/{pid}/{name}") as fh:
            return fh.read()
    except OSError:
        return None


def _start_time(pid):
    stat = _proc(pid, "stat")
    return stat.rsplit(")", 1)[1].split()[19] if stat else None


def _children(pid):
    """{pid: (comm, start time, net namespace)} of a process's children."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _proc(entry, "stat")
        if not stat or stat.rsplit(")", 1)[1].split()[1] != str(pid):
            continue
        try:
            ns = os.readlink(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        out[int(entry)] = ((_proc(entry, "comm") or "").strip(), _start_time(entry), ns)
    return out


def _namespaces_in_use():
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                out.add(os.readlink(f"/proc/{entry}/ns/net"))
            except OSError:
                pass
    return out


def _root_links():
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def _named_namespaces():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def _left_behind(children, namespaces, named_before, timeout=10.0):
    """What of kit's is still there after `timeout` s: its children (same
    pid and start time), its namespaces in use by any process, kveth links
    in the root namespace, named namespaces that were not there before."""
    deadline = time.monotonic() + timeout
    while True:
        left = [f"process {pid} ({comm})" for pid, (comm, start, _ns) in children.items()
                if _start_time(pid) == start]
        left += [f"namespace {ns} in use" for ns in namespaces & _namespaces_in_use()]
        left += ["a kveth link in the root namespace"] if "kveth" in _root_links() else []
        left += [f"named namespaces {_named_namespaces()!r}"] if _named_namespaces() != named_before else []
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _kit_net_started(args):
    """`kit net ARGS` started, once its server and load generator run:
    (process, its children, the namespaces it made)."""
    own = os.readlink("/proc/self/ns/net")
    p = subprocess.Popen([KIT, "net", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        kids = _children(p.pid)
        if any(comm == "kit-net-loadgen" for comm, _s, _n in kids.values()):
            time.sleep(0.2)     # the measurement window is open
            kids = _children(p.pid)
            return p, kids, {ns for _c, _s, ns in kids.values() if ns != own}
        if p.poll() is not None:
            break
        time.sleep(0.01)
    p.kill()
    out, err = p.communicate()
    pytest.fail(f"kit net did not start its load generator: {err}")


# ---- runs of every engine -------------------------------------------------

def _check_result(r, protocol="tcp"):
    data = r.data
    entry = data["jobs"][0]
    net = entry["kit"]["net"]
    read = entry["read"]
    assert read["iops"] > 0 and read["total_ios"] == net["requests"] > 0
    assert read["bw_bytes"] > 0 and read["io_bytes"] >= read["total_ios"]
    pct = read["clat_ns"]["percentile"]
    values = [pct[k] for k in PERCENTILE_KEYS]
    assert values == sorted(values) and values[0] > 0, pct
    assert read["clat_ns"]["N"] == read["total_ios"] == read["lat_ns"]["N"]
    assert read["clat_ns"]["min"] <= read["clat_ns"]["mean"] <= read["clat_ns"]["max"]
    for side in ("server", "client"):
        assert net[side]["cpu_ns"] > 0 and net[side]["threads"], side
        assert net["cpu_per_request_ns"][side] > 0, side
        assert all(t["role"] for t in net[side]["threads"])
    assert "main" in net["server"]["roles"]
    assert net["bottleneck"] in ("server", "client", "machine", "neither") and net["bottleneck_why"]
    assert entry["job options"]["protocol"] == protocol and entry["job options"]["ioengine"] == "net"
    assert data["label"].startswith(entry["job options"]["server"])
    # a result kit reads back as any other
    from kit.results import Result, result_problem
    assert result_problem(json.loads(r.to_json())) is None
    assert Result.from_dict(json.loads(r.to_json())).iops == pytest.approx(r.iops)
    frame = r.to_frame()
    assert frame.loc[0, "iops"] == pytest.approx(read["iops"]) and frame.loc[0, "ioengine"] == "net"


CASES = [(name, protocol, "veth") for name in engine_names() for protocol in engine(name).PROTOCOLS] + \
        [(name, "tcp", "loopback") for name in engine_names() if "tcp" in engine(name).PROTOCOLS]


@pytest.mark.parametrize("name, protocol, network", CASES)
def test_every_engine_echoes_across_veth_and_loopback(name, protocol, network):
    import kit
    _buildable(name)
    if network == "veth":
        _can_make_namespaces()
    named = _named_namespaces()
    r = kit.run_net(server=name, protocol=protocol, network=network, connections=2, runtime=RUNTIME,
                    progress=False, machine=False)
    _check_result(r, protocol)
    net = r.data["jobs"][0]["kit"]["net"]
    assert net["hostname"] == ("10.77.0.1" if network == "veth" else "127.0.0.1")
    assert net["connections"] == 2
    assert "kveth" not in _root_links() and _named_namespaces() == named


def test_a_udp_sink_counts_what_the_server_received():
    import kit
    _buildable("epoll")
    _can_make_namespaces()
    r = kit.run_net(server="epoll", protocol="udp", workload="sink", runtime=RUNTIME, progress=False, machine=False)
    read, net = r.data["jobs"][0]["read"], r.data["jobs"][0]["kit"]["net"]
    assert read["total_ios"] == net["server_counters"]["rx_msgs"] > 0
    assert read["iops"] == pytest.approx(read["total_ios"] / (net["window_ns"] / 1e9), rel=1e-6)
    assert read["clat_ns"]["N"] == 0 and net["server_counters"]["tx_msgs"] == 0


def test_an_open_loop_keeps_its_rate():
    import kit
    _buildable("epoll")
    r = kit.run_net(server="epoll", network="loopback", rate_iops=2000, connections=2, runtime="500ms",
                    progress=False, machine=False)
    assert r.iops == pytest.approx(2000, rel=0.1)
    assert r.data["jobs"][0]["job options"]["rate_iops"] == "2000"


# ---- the command line ---------------------------------------------------------

def test_kit_net_prints_requests_latency_cpu_and_the_bottleneck(tmp_path):
    _buildable("epoll")
    p = run_kit("net", "--server=epoll", "--connections=4", "--bs=128", f"--runtime={RUNTIME}",
                "--network=loopback", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.startswith("epoll tcp echo  connections=4 iodepth=1 bs=128B network=loopback")
    for words in ("requests/s", "rtt p50", "p99.9", "cpu per request: server ", "bottleneck: "):
        assert words in out, out
    assert "nan" not in out.lower() and "None" not in out
    assert not os.listdir(tmp_path)         # nothing written without --save or --output


def test_a_saved_network_result_lists_and_compares_like_any_other(tmp_path):
    from kit import store
    _buildable("epoll")
    data = tmp_path / "data"
    files = []
    for i in range(2):
        out = tmp_path / f"r{i}.json"
        p = run_kit("net", "--server=epoll", "--network=loopback", f"--runtime={RUNTIME}", "--save",
                    f"--data={data}", "--json", f"--output={out}", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert json.loads(out.read_text())["jobs"][0]["read"]["iops"] > 0
        files.append(out)
    machine = store.machines(str(data))[0]["name"]
    results = store.load(machine, "net", data=str(data))
    assert len(results) == 2 and all(r.data["label"] == "epoll tcp echo" for r in results)
    assert all(r.iops > 0 for r in results)
    p = run_kit("compare", str(files[0]), str(files[1]), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "epoll tcp echo" in p.stdout, p.stdout
    p = run_kit("compare", machine, "--data", str(data), cwd=tmp_path)
    assert p.returncode == 0, p.stderr


BAD = [
    (["--server=nope"], "--server"),
    (["--protocol=sctp"], "--protocol"),
    (["--protocol=udp", "--bs=70000"], "--bs"),
    (["--bs=0"], "--bs"),
    (["--runtime=0"], "--runtime"),
    (["--connections=0"], "--connections"),
    (["--port=70000"], "--port"),
    (["--connections=2", "--threads=3"], "--threads"),
    (["--workload=sink", "--verify=1"], "--verify"),
    (["--server=epoll", "--multishot"], "--multishot"),
    (["--server=io_uring", "--sqthread_poll_cpu=0"], "--sqthread_poll_cpu"),
    (["--network=bridge"], "--network"),
    (["--conections=3"], "--conections"),
    (["--output-format=xml"], "--output-format"),
    (["--data=x"], "--data"),
]


@pytest.mark.parametrize("args, names", BAD, ids=[" ".join(a) for a, _n in BAD])
def test_bad_options_are_one_line_exit_2_nothing_written(args, names, tmp_path):
    out = tmp_path / "out.json"
    extra = [] if any(a.startswith("--data") for a in args) else ["--save", f"--data={tmp_path / 'data'}"]
    p = run_kit("net", *args, *extra, f"--output={out}", cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.count("\n") == 1 and p.stderr.startswith(f"kit net: error: {names}"), p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert not os.listdir(tmp_path)


def test_a_port_in_use_is_one_line_exit_1():
    _buildable("epoll")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = run_kit("net", "--server=epoll", "--network=loopback", f"--port={port}", f"--runtime={RUNTIME}")
    assert p.returncode == 1, p.stderr
    assert p.stderr.count("\n") == 1 and f"port {port} is in use" in p.stderr, p.stderr


def test_without_privileges_veth_is_one_line_and_loopback_still_works(tmp_path):
    """As nobody (no root, no capabilities): network=veth says what it needs."""
    _buildable("epoll")
    require(os.geteuid() == 0, "switching to nobody needs root")
    code = "import sys; from kit.cli import main; sys.exit(main(sys.argv[1:]))"
    base = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", code, "net",
            "--server=epoll", f"--runtime={RUNTIME}"]
    p = subprocess.run(base, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert "needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN)" in p.stderr and "network=loopback" in p.stderr
    p = subprocess.run(base + ["--network=loopback"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "requests/s" in p.stdout


# ---- nothing left, however it ends ------------------------------------------

def test_sigkill_of_kit_mid_run_leaves_nothing():
    _buildable("epoll")
    _can_make_namespaces()
    named = _named_namespaces()
    p, children, namespaces = _kit_net_started(["--server=epoll", "--connections=4", "--runtime=20"])
    # two namespace holders, the server, the load generator
    assert sorted(c for c, _s, _n in children.values()) == ["cat", "cat", "kit-net-epoll", "kit-net-loadgen"], \
        children
    assert len(namespaces) == 2
    p.kill()
    p.communicate()
    assert _left_behind(children, namespaces, named) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_prints_the_partial_result_and_leaves_nothing(signum):
    _buildable("epoll")
    _can_make_namespaces()
    named = _named_namespaces()
    p, children, namespaces = _kit_net_started(["--server=epoll", "--runtime=20", "--json"])
    time.sleep(0.3)
    p.send_signal(signum)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert err == "kit net: interrupted; the result above is partial (marked interrupted)\n", err
    data = json.loads(out)
    assert data["interrupted"] is True and data["jobs"][0]["read"]["total_ios"] > 0
    assert _left_behind(children, namespaces, named) == []


def test_a_server_that_dies_is_one_line_and_leaves_nothing():
    _buildable("epoll")
    _can_make_namespaces()
    named = _named_namespaces()
    p, children, namespaces = _kit_net_started(["--server=epoll", "--runtime=20"])
    server = next(pid for pid, (comm, _s, _n) in children.items() if comm == "kit-net-epoll")
    os.kill(server, signal.SIGKILL)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1, err
    assert err.count("\n") == 1 and f"the epoll server (pid {server}) was killed by SIGKILL during the run" in err, err
    assert "Traceback" not in err and out == ""
    assert _left_behind(children, namespaces, named) == []


def test_a_server_that_never_gets_ready_is_one_line_and_leaves_nothing(monkeypatch):
    """The ready line never comes (a server stuck in its set-up): kit gives
    up after its timeout, stops it and removes the namespaces."""
    import kit
    from kit.errors import RunError
    from kit.net import run as net_run
    _buildable("epoll")
    _can_make_namespaces()
    monkeypatch.setattr(net_run, "READY_TIMEOUT_S", 0.5)
    # `sleep` stands in for a server that never says it is ready
    monkeypatch.setattr(net_run, "server_argv", lambda job, path, net: net.server_prefix + ["sleep", "30"])
    named = _named_namespaces()
    before = _namespaces_in_use()
    with pytest.raises(RunError, match="did not say it was ready within 0.5 s"):
        kit.run_net(server="epoll", runtime=RUNTIME, progress=False, machine=False)
    assert _left_behind({}, _namespaces_in_use() - before, named) == []
    assert "kveth" not in _root_links()
