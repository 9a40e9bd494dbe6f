"""The dpdk network engine on a real veth pair in two namespaces kit makes
(kit.net.netns): the server's end handed to DPDK's af_xdp PMD (af_packet as
the fallback), a kernel UDP client on the other end checking every echo byte
for byte, ARP answered by the engine, and nothing left behind after a
SIGKILL: no process, no namespace, no EAL file or directory, no hugepage."""
import glob
import json
import os
import select
import socket
import subprocess
import sys
import time

import pytest

from conftest import require

READY_TIMEOUT_S = 15
AF_XDP = 44                 # Python's socket module does not name it

# runs inside the client's namespace: every size, random bytes, byte-for-byte
CLIENT = r"""
import json, os, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sizes = [int(x) for x in sys.argv[4].split(",")]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((host, port))
sent = lost = bad = 0
for i in range(n):
    msg = os.urandom(sizes[i % len(sizes)])
    s.send(msg)
    sent += len(msg)
    try:
        got = s.recv(65536)
    except socket.timeout:
        lost += 1
        continue
    bad += got != msg
print(json.dumps({"sent_bytes": sent, "lost": lost, "mismatched": bad}))
"""


def _binary():
    from kit.errors import RunError
    from kit.net import build
    try:
        return build.binary("dpdk")
    except RunError as e:
        require(False, str(e))


def _network():
    from kit.net.netns import Network, missing_privileges, missing_tools
    why = missing_privileges() or missing_tools()
    require(why is None, why)
    return Network("veth", kernel_address=False)


def _af_xdp():
    try:
        socket.socket(AF_XDP, socket.SOCK_RAW).close()
    except OSError as e:
        require(False, f"no AF_XDP sockets here ({e})")


def _line(p, timeout=READY_TIMEOUT_S):
    ready, _w, _x = select.select([p.stdout], [], [], timeout)
    assert ready, "the server said nothing"
    return json.loads(p.stdout.readline())


class Server:
    """kit-net-dpdk on the server's veth end until the block ends."""

    def __init__(self, net, workload="echo", pmd=None, bs=1472, port=0):
        argv = [_binary(), "--proto", "udp", "--workload", workload, "--bind", net.server_ip,
                "--port", str(port), "--bs", str(bs), "--iface", net.server_iface]
        argv += ["--opt", f"dpdk_pmd={pmd}"] if pmd else []
        self.p = subprocess.Popen(net.server_prefix + argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)

    def __enter__(self):
        self.ready = _line(self.p)
        assert self.ready.get("ready"), (self.ready, self.p.stderr.read() if self.p.poll() is not None else "")
        self.pid = self.ready["pid"]
        return self

    def stats(self):
        self.p.stdin.write("stats\n")
        self.p.stdin.flush()
        return _line(self.p)["stats"]

    def __exit__(self, *exc):
        if self.p.poll() is None:
            self.p.stdin.close()
        self.p.wait(10)
        self.p.stdout.close()
        self.p.stderr.close()


def _client(net, port, n, sizes):
    out = subprocess.run(net.client_prefix + [sys.executable, "-c", CLIENT, net.server_ip, str(port), str(n),
                                              ",".join(map(str, sizes))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _ip(net, side, *args):
    prefix = net.server_prefix if side == "server" else net.client_prefix
    return subprocess.run(prefix + ["ip", *args], capture_output=True, text=True, timeout=10).stdout


SIZES = (1, 18, 64, 512, 1000, 1472)     # 18: a frame under Ethernet's 60-byte minimum comes padded


@pytest.mark.parametrize("pmd", ["af_xdp", "af_packet"])
def test_udp_echo_on_a_veth_byte_for_byte(pmd):
    if pmd == "af_xdp":
        _af_xdp()
    n = 600
    with _network() as net, Server(net, pmd=pmd) as srv:
        got = _client(net, srv.ready["port"], n, SIZES)
        counted = srv.stats()
        names = sorted(open(f"/proc/{srv.pid}/task/{t}/comm").read().strip()
                       for t in os.listdir(f"/proc/{srv.pid}/task"))
        xdp = "xdp" in _ip(net, "server", "link", "show", "dev", net.server_iface)
    assert got["lost"] == 0 and got["mismatched"] == 0, got
    assert srv.ready["port"] == 7 and srv.ready["threads_started"] == 1      # port 0: the echo port
    assert counted["rx_msgs"] == counted["tx_msgs"] == n
    assert counted["rx_bytes"] == counted["tx_bytes"] == got["sent_bytes"]
    assert "lcore-0" in names, names
    assert xdp == (pmd == "af_xdp")         # af_xdp steers the queue with an XDP program; af_packet needs none


def test_the_engine_answers_arp_for_its_address():
    """Without the static neighbour entry kit gives the client, the client
    resolves the server's address from the engine's own ARP reply."""
    from kit.net.netns import CLIENT_IF, SERVER_MAC
    with _network() as net, Server(net, pmd="af_packet") as srv:
        _ip(net, "client", "neigh", "del", net.server_ip, "dev", CLIENT_IF)
        assert SERVER_MAC not in _ip(net, "client", "neigh", "show", "dev", CLIENT_IF)
        got = _client(net, srv.ready["port"], 20, (100,))
        neigh = _ip(net, "client", "neigh", "show", net.server_ip, "dev", CLIENT_IF)
    assert got["lost"] == 0 and got["mismatched"] == 0, got
    assert SERVER_MAC in neigh and "PERMANENT" not in neigh, neigh


def test_a_udp_sink_counts_and_answers_nothing():
    with _network() as net, Server(net, workload="sink", pmd="af_packet", port=5000) as srv:
        code = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                "s.connect((sys.argv[1], 5000)); [s.send(b'k' * 200) for _ in range(100)]; s.settimeout(0.3)\n"
                "try:\n    s.recv(100); print('answered')\nexcept socket.timeout:\n    print('silent')")
        out = subprocess.run(net.client_prefix + [sys.executable, "-c", code, net.server_ip],
                             capture_output=True, text=True, timeout=30)
        deadline = time.monotonic() + 5
        while (counted := srv.stats())["rx_msgs"] < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert out.stdout.strip() == "silent", out
    assert srv.ready["port"] == 5000
    assert counted["rx_msgs"] == 100 and counted["rx_bytes"] == 20000 and counted["tx_msgs"] == 0


def _dpdk_files():
    return sorted(glob.glob("/var/run/dpdk/*") + glob.glob("/dev/hugepages/rtemap_*") + glob.glob("/dev/shm/*rte*"))


def test_sigkill_of_the_server_leaves_nothing_behind():
    _af_xdp()
    run_dir = os.path.exists("/var/run/dpdk")
    files = _dpdk_files()
    own = os.readlink("/proc/self/ns/net")
    with _network() as net:
        namespaces = set(net.namespaces())
        with Server(net) as srv:
            assert _dpdk_files() == files           # nothing while serving either
            assert _client(net, srv.ready["port"], 20, (64,))["mismatched"] == 0
            os.kill(srv.pid, 9)
            assert srv.p.wait(5) == -9
    assert namespaces and own not in namespaces
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        in_use = set()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                in_use.add(os.readlink(f"/proc/{pid}/ns/net"))
            except OSError:
                pass
        if not namespaces & in_use:
            break
        time.sleep(0.05)
    assert not namespaces & in_use
    assert not os.path.exists(f"/proc/{srv.pid}")
    assert _dpdk_files() == files and os.path.exists("/var/run/dpdk") == run_dir
    assert "kveth" not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("args, words", [
    (["--proto", "tcp"], ["UDP only", "TCP stack"]),
    (["--iface", "lo"], ["lo is a loopback interface", "network=veth"]),
    (["--iface", "kit-no-such0"], ["no interface kit-no-such0"]),
    (["--iface", None], ["needs --iface"]),
    (["--threads", "2"], ["--threads must be 1"]),
    (["--opt", "dpdk_pmd=pcap"], ["dpdk_pmd must be af_xdp or af_packet"]),
])
def test_bad_input_is_one_line_exit_2(args, words):
    """Refused before EAL starts: nothing made, nothing to undo."""
    with _network() as net:
        _refused(net, args, words)


def test_a_message_larger_than_a_frame_is_refused_in_one_line():
    with _network() as net:
        _ip(net, "server", "link", "set", "dev", net.server_iface, "mtu", "1000")
        _refused(net, ["--bs", "973"], ["--bs 973", "at most 972", "fragment"])
        _ip(net, "server", "link", "set", "dev", net.server_iface, "mtu", "9000")
        # a jumbo frame would not fit one mbuf: the mbuf bounds it (2048 bytes less Ethernet's and IP/UDP's headers)
        _refused(net, ["--bs", "2007"], ["--bs 2007", "at most 2006"])


def _refused(net, args, words):
    base = {"--proto": "udp", "--workload": "echo", "--bind": net.server_ip, "--port": "0", "--bs": "64",
            "--iface": net.server_iface}
    opts = [a for a in args if a == "--opt" or str(a).startswith("dpdk_pmd")]
    base.update({k: v for k, v in zip(args[::2], args[1::2]) if k != "--opt"})
    base = {k: v for k, v in base.items() if v is not None}
    argv = net.server_prefix + [_binary()] + [x for kv in base.items() for x in kv] + opts
    err = _refusal(argv)
    assert err["code"] == 2 and all(w in err["error"] for w in words), err


def _refusal(argv):
    """The one line a server that refuses prints, and its exit 2. stdin
    stays open: at EOF the driver would end (exit 0) before serve() speaks."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _line(p, 10)
        assert p.wait(10) == 2, line
        rest = p.stdout.read()
        assert rest == "", rest
        return line
    finally:
        p.kill()
        p.wait()
        for f in (p.stdin, p.stdout, p.stderr):
            f.close()


def test_the_module_declares_what_the_runner_needs():
    from kit.net.servers import dpdk, kernel_address, library, needs_iface
    assert dpdk.PROTOCOLS == ("udp",) and not kernel_address("dpdk") and needs_iface("dpdk")
    version = subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True, text=True).stdout
    require(bool(version.strip()), "pkg-config knows no libdpdk")
    assert library("dpdk") == "DPDK " + version.strip()
