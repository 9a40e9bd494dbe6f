"""A hostile review of kit's network half: options at their edges refused
before anything starts, someone else's sockets left alone, and the load
generator's UDP loss and the open loop's shortfall told as they are."""
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import run_kit

from test_net import _buildable


# ---- bad input: one line naming kit's option, before anything starts -----------

BAD = [
    (["--runtime=10us"], "--runtime"),              # the load generator refused it, in its own words
    (["--runtime=100h"], "--runtime"),
    (["--ramp_time=25h"], "--ramp_time"),
    (["--rate_iops=1000000001"], "--rate_iops"),
    (["--server=epoll", "--server_threads=4"], "--server_threads"),     # ignored, yet written in the result
    (["--server=threads", "--server_threads=4"], "--server_threads"),   # TCP: a thread per connection
    (["--server=threads", "--protocol=udp", "--server_threads=1017"], "--server_threads"),
    (["--connections=1", "--connections=2"], "--connections"),          # argparse kept the last
    (["--bs=64", "--bs", "128"], "--bs"),
    (["--ramp_time=1", "--ramp-time=2"], "--ramp_time"),
]


@pytest.mark.parametrize("args, name", BAD, ids=[" ".join(a) for a, _n in BAD])
def test_options_at_their_edges_are_one_line_exit_2_nothing_written(args, name, tmp_path):
    out = tmp_path / "out.json"
    p = run_kit("net", "--network=loopback", *args, "--save", f"--data={tmp_path / 'data'}", f"--output={out}",
                cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.count("\n") == 1 and p.stderr.startswith(f"kit net: error: {name}:"), p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert not os.listdir(tmp_path)


def test_server_threads_still_sets_the_threads_where_it_counts():
    import kit
    from kit.net.job import NetJob
    assert NetJob(server="asio", server_threads=4).server_threads == 4
    assert NetJob(server="threads", protocol="udp", server_threads=1016).server_threads == 1016
    assert NetJob(server="epoll", server_threads=1).server_threads == 1      # one thread is what it has
    _buildable("threads")
    r = kit.run_net(server="threads", protocol="udp", server_threads=3, network="loopback", runtime="100ms",
                    progress=False, machine=False)
    workers = [t for t in r.data["jobs"][0]["kit"]["net"]["server"]["threads"] if t["role"] == "worker"]
    assert len(workers) == 3


# ---- someone else's sockets --------------------------------------------------

def _free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_udp_port_someone_holds_with_reuseaddr_is_refused_and_their_socket_keeps_its_traffic():
    _buildable("epoll")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as theirs:
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        theirs.bind(("127.0.0.1", _free_port(socket.SOCK_DGRAM)))
        port = theirs.getsockname()[1]
        p = run_kit("net", "--server=epoll", "--protocol=udp", "--network=loopback", f"--port={port}",
                    "--runtime=200ms")
        assert p.returncode == 1, p.stdout
        assert p.stderr.count("\n") == 1 and f"port {port} is in use" in p.stderr, p.stderr
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.sendto(b"still mine", ("127.0.0.1", port))
        theirs.settimeout(2)
        assert theirs.recvfrom(64)[0] == b"still mine"


def test_a_tcp_port_someone_bound_with_reuseaddr_is_refused_and_they_can_still_listen():
    _buildable("epoll")
    with socket.socket() as theirs:
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        theirs.bind(("127.0.0.1", _free_port(socket.SOCK_STREAM)))
        port = theirs.getsockname()[1]
        p = run_kit("net", "--server=epoll", "--network=loopback", f"--port={port}", "--runtime=200ms")
        assert p.returncode == 1, p.stdout
        assert p.stderr.count("\n") == 1 and f"port {port} is in use" in p.stderr, p.stderr
        theirs.listen()


def test_a_tcp_port_held_only_by_time_wait_connections_is_taken_again():
    import kit
    _buildable("epoll")
    # a closed server's port (kit's sets SO_REUSEADDR once bound, as this
    # one): its side of a connection it closed first waits
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()
        time.sleep(0.05)
        client.close()
    states = subprocess.run(["ss", "-Htan", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert "TIME-WAIT" in states, states
    r = kit.run_net(server="epoll", network="loopback", port=port, runtime="100ms", progress=False, machine=False)
    assert r.data["jobs"][0]["kit"]["net"]["port"] == port and r.iops > 0


# ---- the load generator's UDP loss, against a server kit does not own ---------

def _udp_server(delay_s=0.0, drop_every=0):
    """A UDP echo server on loopback that answers each datagram after
    delay_s, and drops every drop_every-th one (0: none)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()
    seen = [0]

    def serve():
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65536)
            except socket.timeout:
                continue
            seen[0] += 1
            if drop_every and seen[0] % drop_every == 0:
                continue
            if delay_s:
                time.sleep(delay_s)
            sock.sendto(data, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def close():
        stop.set()
        thread.join()
        sock.close()
    return sock.getsockname()[1], seen, close


def _loadgen(port, *extra):
    from kit.net import build
    _buildable("epoll")
    argv = [build.binary(build.LOADGEN), "--proto", "udp", "--workload", "echo", "--host", "127.0.0.1", "--port",
            str(port), "--connections", "1", "--iodepth", "1", "--bs", "64", "--ramp_ns", "0", "--window_ns", "0",
            "--verify", "1", *extra]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


def test_an_open_loop_request_sent_late_is_not_lost_for_being_late():
    # 20 ms a reply, asked 1000/s: every request goes out later and later
    # after it was due (400 ms by the end), each answered 20 ms after it went
    port, seen, close = _udp_server(delay_s=0.02)
    try:
        out = _loadgen(port, "--rate", "1000", "--runtime_ns", str(int(0.6e9)), "--timeout_ns", str(int(0.1e9)))
    finally:
        close()
    assert out["late"] > 10 and out["requests"] > 10
    assert out["lost"] == 0, out["lost"]            # was about one per 25 ms check, timed from when it was due


def test_udp_loss_is_counted_from_each_request_s_send():
    port, seen, close = _udp_server(drop_every=2)     # every other datagram never comes back
    try:
        out = _loadgen(port, "--rate", "0", "--runtime_ns", str(int(0.5e9)), "--timeout_ns", str(int(0.02e9)))
    finally:
        close()
    assert out["requests"] >= 5
    assert abs(out["lost"] - out["requests"]) <= 2, (out["lost"], out["requests"])


# ---- what a run says of an open loop it could not keep -------------------------

def test_an_open_loop_short_of_its_rate_says_how_short_and_names_its_own_threads():
    import kit
    _buildable("epoll")
    r = kit.run_net(server="epoll", network="loopback", rate_iops=1_000_000_000, connections=2, runtime="300ms",
                    progress=False, machine=False)
    net = r.data["jobs"][0]["kit"]["net"]
    assert net["due"] == pytest.approx(300_000_000, rel=0.01)
    assert net["sent"] < net["due"] / 100
    note = next(n for n in r.data["notes"] if "could not keep rate_iops=1,000,000,000" in n)
    assert "never sent" in note and f"{net['due'] - net['sent']:,} of the {net['due']:,} due" in note
    assert {t["role"] for t in net["client"]["threads"]} <= {"loadgen", "main"}


# ---- a closed-loop sink sends through its whole window ----------------------------

@pytest.mark.parametrize("protocol, bs", [("udp", 64), ("tcp", 4096)])
def test_a_closed_loop_sink_keeps_sending_after_its_first_burst(protocol, bs):
    # it sent SINK_BATCHES bursts per connection (16 x 64 datagrams; TCP 16 x
    # 16 messages) and then waited for an EPOLLOUT it never asked for
    import kit
    _buildable("epoll")
    r = kit.run_net(server="epoll", protocol=protocol, workload="sink", bs=bs, network="loopback",
                    runtime="300ms", progress=False, machine=False)
    net = r.data["jobs"][0]["kit"]["net"]
    first_burst = 16 * 64 if protocol == "udp" else 16 * 16
    assert net["server_counters"]["rx_bytes"] > 10 * first_burst * bs, net["server_counters"]
    assert r.data["jobs"][0]["read"]["total_ios"] > 10 * first_burst


# ---- a build killed half-way ---------------------------------------------------

def test_a_build_works_in_kit_s_own_folder_and_the_next_one_removes_what_a_killed_one_left(tmp_path, monkeypatch):
    from kit.net import build
    monkeypatch.setattr(build, "BIN", tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    left = [tmp_path / f".build-{gone.pid}-x1", tmp_path / f".kit-net-epoll.{gone.pid}.tmp",
            tmp_path / f".kit-net-epoll.{gone.pid}.stamp"]
    left[0].mkdir()
    (left[0] / "ccX.s").write_text("half")
    for path in left[1:]:
        path.write_text("half")
    alive = tmp_path / f".build-{os.getpid()}-y2"      # a build under way in another kit: kept
    alive.mkdir()
    before = set(os.listdir("/tmp"))
    path, what = build._build(build.LOADGEN, None, force=True)
    assert what == "built" and os.access(path, os.X_OK)
    assert not any(p.exists() for p in left) and alive.exists()
    assert sorted(os.listdir(tmp_path)) == sorted([".lock", alive.name, "kit-net-loadgen", "kit-net-loadgen.stamp"])
    assert not {n for n in set(os.listdir("/tmp")) - before if n.startswith("kit-net-build-")}
