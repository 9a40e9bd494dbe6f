"""The network server engines (kit/net/servers), their driver and kit's load
generator, as processes on 127.0.0.1: the protocol of net-spec.md (ready
line, stats, errors, the end on EOF or SIGTERM), byte-for-byte echoes through
the load generator, and the load generator checked against servers whose
behaviour the test knows (a wrong echo, a slow server, an open-loop rate).

Parametrized over every engine found in kit/net/servers, except those that
need an interface of their own (DPDK: tests/test_net_dpdk.py)."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

from kit import hist
from kit.errors import RunError
from kit.net import build, servers

STRICT = os.environ.get("KIT_STRICT") == "1"
ENGINES = [n for n in servers.engine_names() if not servers.needs_iface(n)]
BS = 100        # not a power of two: a stream split at odd places


@pytest.fixture(scope="module")
def loadgen():
    return build.binary("loadgen")


def server_binary(engine):
    try:
        return build.binary(engine)
    except RunError as e:
        if STRICT:
            raise
        pytest.skip(str(e))


class Server:
    """A server engine process speaking the spec's protocol."""

    def __init__(self, engine, proto="tcp", workload="echo", bs=BS, port=0, opts=(), extra=()):
        cmd = [server_binary(engine), "--proto", proto, "--workload", workload, "--bind", "127.0.0.1",
               "--port", str(port), "--bs", str(bs)]
        for opt in opts:
            cmd += ["--opt", opt]
        self.proc = subprocess.Popen(cmd + list(extra), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.first = json.loads(self.proc.stdout.readline())
        self.port = self.first.get("port")

    def stats(self):
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["stats"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()


@pytest.fixture
def server():
    made = []

    def start(*args, **kwargs):
        s = Server(*args, **kwargs)
        made.append(s)
        return s
    yield start
    for s in made:
        s.close()


def run_loadgen(binary, port, proto="tcp", workload="echo", bs=BS, connections=1, iodepth=1, rate=0,
                runtime_s=0.3, ramp_s=0, window_s=0.1, verify=1, threads=None, extra=()):
    cmd = [binary, "--proto", proto, "--workload", workload, "--host", "127.0.0.1", "--port", str(port),
           "--connections", str(connections), "--iodepth", str(iodepth), "--bs", str(bs), "--rate", str(rate),
           "--ramp_ns", str(int(ramp_s * 1e9)), "--runtime_ns", str(int(runtime_s * 1e9)),
           "--window_ns", str(int(window_s * 1e9)), "--verify", str(verify)]
    if threads:
        cmd += ["--threads", str(threads)]
    got = subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=30)
    lines = got.stdout.splitlines()
    assert len(lines) == 1, got
    return got.returncode, json.loads(lines[0])


# ---- the protocol ----------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_ready_line_names_the_port_the_kernel_chose(server, engine, proto):
    s = server(engine, proto)
    assert s.first["ready"] is True
    assert s.first["pid"] == s.proc.pid
    assert 0 < s.port < 65536
    assert isinstance(s.first["threads_started"], int)
    # the port really serves: a datagram or a connection is echoed
    if proto == "tcp":
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
            c.sendall(b"hello")
            assert c.recv(100) == b"hello"
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(5)
            c.sendto(b"hello", ("127.0.0.1", s.port))
            assert c.recv(100) == b"hello"
    # the echo can reach us before the server has counted its send: ask until it has
    deadline = time.monotonic() + 2
    while (st := s.stats())["tx_bytes"] < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (st["rx_bytes"], st["tx_bytes"]) == (5, 5)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_echo_byte_for_byte_through_the_loadgen(server, loadgen, engine, proto):
    s = server(engine, proto)
    rc, out = run_loadgen(loadgen, s.port, proto, connections=4, iodepth=2, threads=2)
    assert rc == 0, out
    assert out["requests"] > 100
    assert out["bytes"] == out["requests"] * BS
    assert out["lost"] == 0 and out["connections"] == 4
    assert sum(out["windows"]) == out["requests"]
    assert sum(c for _, c in out["hist"]) == out["requests"]
    st = s.stats()
    # the server saw every byte the client counted (and those sent around the window)
    assert st["rx_bytes"] >= out["bytes"] and st["tx_bytes"] >= out["bytes"]
    if proto == "udp":
        assert st["rx_bytes"] == st["rx_msgs"] * BS


@pytest.mark.parametrize("engine", ENGINES)
def test_udp_sink_is_counted_by_the_server(server, loadgen, engine):
    s = server(engine, "udp", "sink")
    rc, out = run_loadgen(loadgen, s.port, "udp", "sink", connections=2, rate=5000, runtime_s=0.4)
    assert rc == 0, out
    st = s.stats()
    assert st["tx_msgs"] == 0
    assert st["rx_bytes"] == st["rx_msgs"] * BS
    # loopback loses nothing at this rate: the server received what was sent
    assert abs(st["rx_msgs"] - out["sent"]) <= 0.05 * out["sent"], (st, out["sent"])
    assert 0.85 * 2000 <= out["sent"] <= 1.1 * 2000


@pytest.mark.parametrize("engine", ENGINES)
def test_port_in_use_is_one_line_naming_the_port(engine):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        got = subprocess.run([server_binary(engine), "--proto", "tcp", "--workload", "echo", "--bind",
                              "127.0.0.1", "--port", str(port), "--bs", "64"],
                             capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert got.returncode == 1
    lines = got.stdout.splitlines()
    assert len(lines) == 1 and got.stderr == ""
    err = json.loads(lines[0])
    assert err["code"] == 1
    assert f"port {port} is in use on 127.0.0.1" in err["error"]


BAD_SERVER_ARGS = [
    (["--proto", "sctp"], "--proto: must be tcp or udp"),
    (["--bs", "0"], "--bs: must be an integer from 1"),
    (["--port", "70000"], "--port: must be an integer from 0 to 65535"),
    (["--bind", "localhost"], "--bind: must be an IPv4 address"),
    (["--frobnicate", "1"], "unknown option '--frobnicate'"),
]


@pytest.mark.parametrize("args,says", BAD_SERVER_ARGS)
def test_bad_server_arguments_exit_2_in_one_line(args, says):
    base = {"--proto": "tcp", "--workload": "echo", "--bind": "127.0.0.1", "--port": "0", "--bs": "64"}
    cmd = [server_binary("epoll")]
    for k, v in base.items():
        if k not in args:
            cmd += [k, v]
    got = subprocess.run(cmd + args, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert got.returncode == 2, got
    lines = got.stdout.splitlines()
    assert len(lines) == 1 and got.stderr == ""
    err = json.loads(lines[0])
    assert err["code"] == 2 and says in err["error"]


@pytest.mark.parametrize("opt,says", [("multishot=2", "--opt multishot: must be 0 or 1"),
                                      ("sqthread_poll=yes", "--opt sqthread_poll=yes: must be an integer"),
                                      ("sqthread_poll_cpu=0", "--opt sqthread_poll_cpu: needs sqthread_poll=1")])
def test_bad_io_uring_option_exits_2_in_one_line(opt, says):
    got = subprocess.run([server_binary("io_uring"), "--proto", "tcp", "--workload", "echo", "--bind",
                          "127.0.0.1", "--port", "0", "--bs", "64", "--opt", opt],
                         capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert got.returncode == 2, got
    lines = got.stdout.splitlines()
    assert len(lines) == 1
    assert says in json.loads(lines[0])["error"]


@pytest.mark.parametrize("args,says", [
    (["--bs", "70000", "--proto", "udp"], "--bs: a UDP message is at most 65507 bytes"),
    (["--iodepth", "0"], "--iodepth: must be an integer from 1 to 4096"),
    (["--host", "example.org"], "--host: must be an IPv4 address"),
    (["--threads", "3", "--connections", "2"], "--threads: at most one thread per connection"),
    (["--verify", "2"], "--verify: must be an integer from 0 to 1"),
])
def test_bad_loadgen_arguments_exit_2_in_one_line(loadgen, args, says):
    base = {"--proto": "tcp", "--host": "127.0.0.1", "--port": "9", "--bs": "64"}
    cmd = [loadgen]
    for k, v in base.items():
        if k not in args:
            cmd += [k, v]
    got = subprocess.run(cmd + args, capture_output=True, text=True, timeout=10)
    assert got.returncode == 2
    lines = got.stdout.splitlines()
    assert len(lines) == 1 and got.stderr == ""
    assert says in json.loads(lines[0])["error"]


def test_loadgen_without_a_server_says_so(loadgen):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]       # bound, not listening: refused
        rc, out = run_loadgen(loadgen, port)
    assert rc == 1
    assert out["error"].startswith(f"cannot connect to 127.0.0.1:{port}") and "refused" in out["error"]


def _threads(pid):
    try:
        return os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("how", ["eof", "sigterm"])
def test_eof_or_sigterm_prints_final_stats_and_exits_0(server, engine, how):
    s = server(engine, "tcp")
    clients = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(3)]
    for c in clients:
        c.sendall(b"x" * 10)
        assert c.recv(100) == b"x" * 10
    assert len(_threads(s.proc.pid)) >= 2
    deadline = time.monotonic() + 2      # an engine may count a send after its echo arrived
    while s.stats()["tx_bytes"] < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    t = time.monotonic()
    if how == "eof":
        s.proc.stdin.close()
    else:
        s.proc.send_signal(signal.SIGTERM)
    rest = s.proc.stdout.read()
    rc = s.proc.wait(timeout=5)
    took = time.monotonic() - t
    for c in clients:
        c.close()
    assert rc == 0 and took < 1.0
    final = json.loads(rest.strip())["stats"]
    assert final["rx_bytes"] == 30 and final["tx_bytes"] == 30
    assert _threads(s.proc.pid) == []      # the whole process, every thread, is gone


def test_connections_that_reset_leave_the_server_serving(server, loadgen):
    for engine in ENGINES:
        s = server(engine, "tcp")
        for _ in range(5):      # a peer that sends and vanishes with RST mid-echo
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            c.sendall(b"y" * 50000)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            c.close()
        rc, out = run_loadgen(loadgen, s.port, runtime_s=0.1)
        assert rc == 0 and out["requests"] > 0, (engine, out)


# ---- io_uring's options ------------------------------------------------------------

@pytest.mark.parametrize("opts", [["multishot=1"], ["registerfiles=1"], ["sqthread_poll=1"],
                                  ["multishot=1", "registerfiles=1"],
                                  ["sqthread_poll=1", "sqthread_poll_cpu=0", "multishot=1"]])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_io_uring_options_serve_an_echo(server, loadgen, opts, proto):
    s = server("io_uring", proto, opts=opts)
    assert s.first.get("ready"), s.first
    # depth 8 on 4 connections: replies merge and split, several echoes queue per connection
    rc, out = run_loadgen(loadgen, s.port, proto, connections=4, iodepth=8, threads=2, runtime_s=0.25)
    assert rc == 0, out
    assert out["requests"] > 100 and out["lost"] == 0
    assert out["bytes"] == out["requests"] * BS
    if "sqthread_poll=1" in opts:
        names = [open(f"/proc/{s.proc.pid}/task/{t}/comm").read().strip() for t in _threads(s.proc.pid)]
        assert "kit-net-io_urin" in names and "net-loop" in names     # comm: 15 characters
        # the SQPOLL thread is the kernel's, a thread of the process named iou-sqp-<pid>
        assert any(n.startswith("iou-sqp") for n in names), names


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_epoll_edge_triggered_serves_an_echo(server, loadgen, proto):
    s = server("epoll", proto, opts=["trigger=edge"])
    rc, out = run_loadgen(loadgen, s.port, proto, connections=4, iodepth=8, threads=2, runtime_s=0.25)
    assert rc == 0, out
    assert out["requests"] > 100 and out["bytes"] == out["requests"] * BS


def test_io_uring_multishot_echo_of_large_messages(server, loadgen):
    """64 KiB messages: short sends, and buffers held by echoes until sent."""
    s = server("io_uring", "tcp", bs=65536, opts=["multishot=1"])
    rc, out = run_loadgen(loadgen, s.port, bs=65536, connections=2, iodepth=4, runtime_s=0.3)
    assert rc == 0, out
    assert out["requests"] > 10 and out["bytes"] == out["requests"] * 65536


# ---- the load generator against servers the test knows -------------------------------

def _python_server(handler):
    """A TCP server of a few lines: handler(conn) per connection, on a thread."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)

    def serve(conn):
        try:
            handler(conn)
        except OSError:         # the load generator ends with its connections open: a reset
            pass

    def accept():
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return lsock


def _recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        got = conn.recv(n - len(buf))
        if not got:
            return None
        buf += got
    return buf


def test_a_wrong_echo_is_an_error_naming_the_mismatch(loadgen):
    def flipper(conn):
        with conn:
            while (msg := _recv_exact(conn, BS)) is not None:
                bad = bytearray(msg)
                bad[37] ^= 0x10
                conn.sendall(bytes(bad))
    lsock = _python_server(flipper)
    try:
        rc, out = run_loadgen(loadgen, lsock.getsockname()[1], runtime_s=0.2)
    finally:
        lsock.close()
    assert rc == 1
    assert out["code"] == 1
    assert out["error"].startswith("echo mismatch on connection 0 at byte 37 of request 0")
    # without verify the same server is measured, not refused
    lsock = _python_server(flipper)
    try:
        rc, out = run_loadgen(loadgen, lsock.getsockname()[1], runtime_s=0.1, verify=0)
    finally:
        lsock.close()
    assert rc == 0 and out["requests"] > 0


def _slow_echo(conn):
    """A server that takes 10 ms per request: 100 requests/s per connection."""
    with conn:
        while (msg := _recv_exact(conn, BS)) is not None:
            time.sleep(0.010)
            conn.sendall(msg)


def test_a_slow_server_is_measured_at_its_rate_not_the_loadgens(loadgen):
    lsock = _python_server(_slow_echo)
    try:
        rc, out = run_loadgen(loadgen, lsock.getsockname()[1], connections=4, runtime_s=1.0, ramp_s=0.1)
    finally:
        lsock.close()
    assert rc == 0, out
    rate = out["requests"] / (out["runtime_ns"] / 1e9)
    assert 300 <= rate <= 500, rate      # 4 connections x 1 / 10 ms = 400/s
    p50 = hist.percentiles(_dense(out["hist"]), plist=(50.0,))["50.000000"]
    assert 10e6 <= p50 <= 20e6, p50


def _dense(sparse):
    counts = np.zeros(hist.PLAT_NR, dtype=np.int64)
    for idx, n in sparse:
        counts[idx] = n
    return counts


@pytest.mark.parametrize("engine", ["epoll"])
def test_open_loop_keeps_its_rate_and_measures_from_the_schedule(server, loadgen, engine):
    s = server(engine, "tcp")
    rc, out = run_loadgen(loadgen, s.port, connections=4, rate=2000, runtime_s=1.0, ramp_s=0.1,
                          window_s=0.25)
    assert rc == 0, out
    rate = out["requests"] / (out["runtime_ns"] / 1e9)
    assert 1800 <= rate <= 2200, rate
    assert 1800 <= out["sent"] <= 2200
    assert len(out["windows"]) == 4 and all(350 <= w <= 650 for w in out["windows"]), out["windows"]
    p = hist.percentiles(_dense(out["hist"]), plist=(50.0, 99.0))
    assert out["lat_min_ns"] <= p["50.000000"] <= p["99.000000"] <= out["lat_max_ns"] * 1.01
    assert p["50.000000"] < 5e6     # a loopback echo at 2,000/s: well under 5 ms


def test_open_loop_counts_late_requests_and_their_wait(loadgen):
    """A server slower than the rate: requests wait for a free slot, their
    latency counts from when they were due (no coordinated omission)."""
    lsock = _python_server(_slow_echo)
    try:
        rc, out = run_loadgen(loadgen, lsock.getsockname()[1], connections=1, rate=200, runtime_s=0.5)
    finally:
        lsock.close()
    assert rc == 0, out
    assert out["late"] > 0
    assert 40 <= out["requests"] <= 60         # the server's 100/s, not the 200/s asked
    # the last ones waited ~half the run for their turn
    assert out["lat_max_ns"] > 150e6


# ---- the histogram and the build -------------------------------------------------------------

def test_loadgen_histogram_bins_are_kit_hist_bins(tmp_path):
    """The loadgen's own plat_val_to_idx, compiled from loadgen.c, against
    kit.hist.val_to_idx for values across every bucket group."""
    harness = tmp_path / "bins.c"
    harness.write_text(
        '#define main loadgen_main\n#include "%s"\n#undef main\n'
        'int main(void) { unsigned long long v; while (scanf("%%llu", &v) == 1) '
        'printf("%%u\\n", plat_val_to_idx(v)); return 0; }\n' % (build.HERE / "loadgen.c"))
    exe = tmp_path / "bins"
    subprocess.run(["gcc", "-O2", "-pthread", str(harness), "-o", str(exe)], check=True, capture_output=True)
    rng = np.random.default_rng(15)
    values = np.concatenate([np.arange(0, 4096), 2 ** np.arange(1, 63), 2 ** np.arange(1, 63) - 1,
                             (2.0 ** rng.uniform(0, 62, 20000)).astype(np.int64)])
    got = subprocess.run([str(exe)], input="\n".join(map(str, values)), capture_output=True, text=True,
                         check=True).stdout.split()
    assert np.array_equal(np.array(got, dtype=np.int64), hist.val_to_idx(values))


def test_loadgen_hist_agrees_with_its_min_and_max(server, loadgen):
    s = server("epoll", "tcp")
    rc, out = run_loadgen(loadgen, s.port, runtime_s=0.2)
    assert rc == 0
    bins = [i for i, _ in out["hist"]]
    assert bins == sorted(bins)
    assert bins[0] == hist.val_to_idx(out["lat_min_ns"])
    assert bins[-1] == hist.val_to_idx(out["lat_max_ns"])
    assert out["lat_min_ns"] <= out["lat_sum_ns"] / out["requests"] <= out["lat_max_ns"]
    assert [t["utime_ns"] + t["stime_ns"] > 0 for t in out["threads"]] == [True]


def test_build_status_and_unknown_engine():
    st = build.status()
    for name in ("loadgen", "threads", "epoll", "io_uring"):
        assert st[name] == "ok", st
    with pytest.raises(RunError, match="no network engine named 'nope'"):
        build.binary("nope")
    # an up-to-date binary is not rebuilt
    path = build.binary("epoll")
    mtime = os.stat(path).st_mtime_ns
    assert build.binary("epoll") == path and os.stat(path).st_mtime_ns == mtime
