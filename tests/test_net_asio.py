"""What is special in the asio network engine: its two backends are two
executables, and the io_uring one must really do its socket work through
io_uring (not epoll); its io_context runs on --threads threads named
"asio-io". Real servers on loopback, a real client, byte-for-byte echoes."""
import json
import os
import select
import socket
import subprocess
import time

import pytest

from conftest import require

READY_TIMEOUT_S = 10


def _binary(variant=None):
    from kit.errors import RunError
    from kit.net import build
    try:
        return build.binary("asio", variant)
    except RunError as e:
        require(False, str(e))


def _line(p, timeout=READY_TIMEOUT_S):
    ready, _w, _x = select.select([p.stdout], [], [], timeout)
    assert ready, "the server said nothing"
    return json.loads(p.stdout.readline())


class Server:
    """kit-net-asio[-io_uring] serving on loopback until the block ends."""

    def __init__(self, variant, proto, workload="echo", bs=4096, threads=None, opts=()):
        argv = [_binary(variant), "--proto", proto, "--workload", workload, "--bind", "127.0.0.1",
                "--port", "0", "--bs", str(bs)]
        argv += ["--threads", str(threads)] if threads else []
        for opt in opts:
            argv += ["--opt", opt]
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __enter__(self):
        self.ready = _line(self.p)
        assert self.ready.get("ready"), self.ready
        self.port = self.ready["port"]
        return self

    def stats(self):
        self.p.stdin.write("stats\n")
        self.p.stdin.flush()
        return _line(self.p)["stats"]

    def echoed_stats(self, timeout=2.0):
        """An echo server's counts once its last send handler has run: the
        client has the echo back as the send completes, before the handler
        counts it, so a read right after can be one message short."""
        deadline = time.monotonic() + timeout
        while (counted := self.stats())["tx_bytes"] != counted["rx_bytes"] and time.monotonic() < deadline:
            time.sleep(0.01)
        return counted

    def __exit__(self, *exc):
        self.p.stdin.close()        # EOF: the driver prints its last stats and exits
        self.p.wait(5)
        self.p.stdout.close()


def _echo_tcp(port, messages):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for msg in messages:
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(len(msg) - len(got))
                assert chunk, "the server closed the connection"
                got += chunk
            assert got == msg


def _echo_udp(port, messages):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        for msg in messages:
            s.send(msg)
            assert s.recv(65536) == msg


def _messages(n, sizes=(1, 64, 1000, 4096)):
    return [os.urandom(sizes[i % len(sizes)]) for i in range(n)]


def _fds(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append((fd, os.readlink(f"/proc/{pid}/fd/{fd}")))
        except OSError:
            pass
    return out


def _ring_submissions(pid):
    """SqHead of each io_uring the process holds: the SQEs the kernel took."""
    heads = []
    for fd, target in _fds(pid):
        if target == "anon_inode:[io_uring]":
            with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                heads += [int(line.split()[1]) for line in fh if line.startswith("SqHead:")]
    return heads


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_the_io_uring_build_does_its_socket_work_through_io_uring(proto):
    n = 300
    with Server("io_uring", proto) as srv:
        before = sum(_ring_submissions(srv.p.pid))
        (_echo_tcp if proto == "tcp" else _echo_udp)(srv.port, _messages(n))
        heads = _ring_submissions(srv.p.pid)
        kinds = {target for _fd, target in _fds(srv.p.pid)}
        counted = srv.echoed_stats()
    assert len(heads) == 1, heads
    # a receive and a send per round trip, each an SQE (Asio may add a few of its own); `before` may
    # already hold the first receive, and the receive re-armed after the last echo may not be
    # submitted yet when the head is read (seen in CI: before 1, head 600 for 300 round trips)
    assert heads[0] - before >= 2 * n - 1, (before, heads)
    assert "anon_inode:[eventpoll]" not in kinds, kinds
    assert counted["rx_msgs"] >= n and counted["tx_bytes"] == counted["rx_bytes"] == sum(map(len, _messages(n)))


def test_the_epoll_build_has_no_ring_and_an_epoll():
    with Server(None, "tcp") as srv:
        _echo_tcp(srv.port, _messages(20))
        kinds = [target for _fd, target in _fds(srv.p.pid)]
    assert "anon_inode:[eventpoll]" in kinds and "anon_inode:[io_uring]" not in kinds, kinds


@pytest.mark.parametrize("variant", [None, "io_uring"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_threads_serve_one_io_context_byte_for_byte(variant, proto):
    """Several clients at once on an io_context run by 3 threads, each named
    asio-io; every byte comes back, in order, and is counted once."""
    import threading
    echo = _echo_tcp if proto == "tcp" else _echo_udp
    batches = [_messages(100) for _ in range(4)]
    errors = []

    def client(msgs):
        try:
            echo(srv.port, msgs)
        except Exception as e:          # reported below, with the others
            errors.append(repr(e))

    with Server(variant, proto, threads=3) as srv:
        clients = [threading.Thread(target=client, args=(b,)) for b in batches]
        for t in clients:
            t.start()
        for t in clients:
            t.join(20)
        names = [open(f"/proc/{srv.p.pid}/task/{tid}/comm").read().strip()
                 for tid in os.listdir(f"/proc/{srv.p.pid}/task")]
        counted = srv.echoed_stats()
    assert not errors, errors
    assert srv.ready["threads_started"] == 3 and names.count("asio-io") == 3, names
    total = sum(len(m) for b in batches for m in b)
    assert counted["rx_bytes"] == counted["tx_bytes"] == total
    if proto == "udp":
        assert counted["rx_msgs"] == counted["tx_msgs"] == 400


def test_a_tcp_message_larger_than_one_read_comes_back_whole():
    big = os.urandom(1 << 20)           # the server's buffer is bs (4 KiB): many reads and writes
    with Server("io_uring", "tcp") as srv:
        _echo_tcp(srv.port, [big])
        counted = srv.echoed_stats()
    assert counted["rx_bytes"] == counted["tx_bytes"] == len(big) and counted["rx_msgs"] >= len(big) // 4096


def test_a_udp_sink_counts_and_answers_nothing():
    with Server(None, "udp", workload="sink") as srv:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", srv.port))
            for msg in _messages(50, sizes=(100,)):
                s.send(msg)
            s.settimeout(0.2)
            with pytest.raises(socket.timeout):
                s.recv(100)
        deadline = time.monotonic() + 5
        while (counted := srv.stats())["rx_msgs"] < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert counted["rx_msgs"] == 50 and counted["rx_bytes"] == 5000 and counted["tx_msgs"] == 0


def test_a_backend_that_is_not_this_build_is_refused_in_one_line():
    # stdin stays open: at EOF the driver would end (exit 0) before serve() speaks
    p = subprocess.Popen([_binary("io_uring"), "--proto", "tcp", "--workload", "echo", "--bind", "127.0.0.1",
                          "--port", "0", "--bs", "64", "--opt", "asio_backend=epoll"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        err = _line(p)
        assert p.wait(10) == 2 and p.stdout.read() == ""
    finally:
        p.kill()
        p.wait()
        p.stdin.close()
        p.stdout.close()
    assert err["code"] == 2 and "asio_backend=epoll" in err["error"] and "kit-net-asio" in err["error"]


def test_the_module_names_its_variant_and_library():
    from kit.net.servers import asio, library
    assert asio.variant({}) is None and asio.variant({"asio_backend": "epoll"}) is None
    assert asio.variant({"asio_backend": "io_uring"}) == "io_uring" and "io_uring" in asio.VARIANTS
    assert library("asio").startswith("Boost.Asio 1.")
