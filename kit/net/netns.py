"""Where a network run happens: two anonymous network namespaces joined by a
veth pair (network=veth), or kit's own loopback (network=loopback).

Nothing named is ever made in the root namespace, and nothing outlives kit:
each namespace belongs to a holder process (`unshare --net cat`, reading a
pipe only kit writes to). The veth pair is created directly inside the two
namespaces (`ip link add kveth0 netns <holder> ... peer ... netns <holder>`),
and the server and the load generator enter them with `nsenter -n`. When
kit ends, however it ends (SIGKILL included), the pipe's write end closes,
the holders exit, the server and load generator die of their parent's death
(PR_SET_PDEATHSIG) or of EOF on their stdin, and the kernel frees each
namespace, with its veth end, when its last process is gone."""
import os
import subprocess
import time

from ..errors import RunError
from ..signals import held

SERVER_IF, CLIENT_IF = "kveth0", "kveth1"
# the namespaces are kit's alone: any private addresses do
SERVER_IP, CLIENT_IP, PREFIX = "10.77.0.1", "10.77.0.2", 30
# locally administered, so a static neighbour entry can name the server's end
SERVER_MAC, CLIENT_MAC = "02:6b:69:74:00:01", "02:6b:69:74:00:02"
LOOPBACK_IP = "127.0.0.1"
SETUP_TIMEOUT_S = 5.0
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21
TOOLS = ("unshare", "nsenter", "ip")


def missing_privileges():
    """Why this process cannot make network namespaces (None: it can)."""
    eff = 0
    try:
        with open("/proc/self/status") as fh:
            eff = next((int(line.split()[1], 16) for line in fh if line.startswith("CapEff:")), 0)
    except (OSError, ValueError):
        pass
    if eff >> CAP_NET_ADMIN & 1 and eff >> CAP_SYS_ADMIN & 1:
        return None
    return ("network=veth makes network namespaces and a veth pair, which needs root (or CAP_NET_ADMIN and "
            "CAP_SYS_ADMIN); run kit as root, or use network=loopback")


def missing_tools():
    """Why the namespaces cannot be made here for want of a program (None: they can)."""
    import shutil
    gone = [t for t in TOOLS if not shutil.which(t, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")]
    if gone:
        return (f"network=veth needs {', '.join(gone)} (Debian: apt-get install util-linux iproute2); "
                "or use network=loopback")
    return None


def _tool(name):
    import shutil
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or name


class Network:
    """The place of one run. network: "veth" or "loopback"; kernel_address:
    False leaves the server's veth end without an address (an engine that
    answers on the interface itself, DPDK), and the client gets a static
    neighbour entry for the server's address instead.

        with Network("veth") as net:
            subprocess.Popen(net.server_prefix + [server, "--bind", net.server_ip, ...])
    """

    def __init__(self, network="veth", kernel_address=True):
        self.kind = network
        self.kernel_address = kernel_address
        self.holders = []           # Popen, server side first

    # -- what the runner uses

    @property
    def server_ip(self):
        return LOOPBACK_IP if self.kind == "loopback" else SERVER_IP

    @property
    def server_iface(self):
        return "lo" if self.kind == "loopback" else SERVER_IF

    @property
    def server_prefix(self):
        return self._enter(0)

    @property
    def client_prefix(self):
        return self._enter(1)

    def _enter(self, side):
        if self.kind == "loopback":
            return []
        return [_tool("nsenter"), "-t", str(self.holders[side].pid), "-n", "--"]

    def namespaces(self):
        """The namespaces' identities (net:[inode]), to prove they are gone."""
        out = []
        for h in self.holders:
            try:
                out.append(os.readlink(f"/proc/{h.pid}/ns/net"))
            except OSError:
                pass
        return out

    # -- making and unmaking

    def __enter__(self):
        if self.kind == "loopback":
            return self
        why = missing_privileges() or missing_tools()
        if why:
            raise RunError(why)
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _make(self):
        own = os.readlink("/proc/self/ns/net")
        for _side in (0, 1):
            # stdout closed: `cat` echoes nothing; its stdin is kit's pipe, so
            # it reads until kit ends. A Ctrl-C inside Popen would lose the
            # holder (never reaped): it waits until the holder is listed.
            with held():
                self.holders.append(subprocess.Popen([_tool("unshare"), "--net", "cat"], stdin=subprocess.PIPE,
                                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        for h in self.holders:
            while True:
                if h.poll() is not None:
                    why = _last_line(h.stderr.read())
                    raise RunError(f"cannot make a network namespace: {why or f'unshare exited {h.returncode}'}")
                try:
                    if os.readlink(f"/proc/{h.pid}/ns/net") != own:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RunError(f"cannot make a network namespace: unshare did not in {SETUP_TIMEOUT_S:g} s")
                time.sleep(0.002)
        server, client = (str(h.pid) for h in self.holders)
        self._ip(None, ["link", "add", SERVER_IF, "netns", server, "address", SERVER_MAC, "type", "veth",
                        "peer", "name", CLIENT_IF, "netns", client, "address", CLIENT_MAC])
        server_cmds = [f"link set {SERVER_IF} up", "link set lo up"]
        if self.kernel_address:
            server_cmds.insert(0, f"addr add {SERVER_IP}/{PREFIX} dev {SERVER_IF}")
        client_cmds = [f"addr add {CLIENT_IP}/{PREFIX} dev {CLIENT_IF}", f"link set {CLIENT_IF} up",
                       "link set lo up"]
        if not self.kernel_address:
            client_cmds.append(f"neigh add {SERVER_IP} lladdr {SERVER_MAC} dev {CLIENT_IF} nud permanent")
        self._ip(0, ["-batch", "-"], "\n".join(server_cmds) + "\n")
        self._ip(1, ["-batch", "-"], "\n".join(client_cmds) + "\n")
        self._wait_carrier(deadline)

    def _ip(self, side, args, stdin=None):
        argv = ([] if side is None else self._enter(side)) + [_tool("ip")] + args
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=SETUP_TIMEOUT_S)
        if p.returncode:
            raise RunError(f"cannot set up the veth pair: {' '.join(args[:3])}: "
                           f"{_last_line(p.stderr) or f'ip exited {p.returncode}'}")
        return p.stdout

    def _wait_carrier(self, deadline):
        """Both ends up (veth has carrier once both are): until then a
        connect would wait on ARP or fail."""
        while True:
            if "LOWER_UP" in self._ip(1, ["-o", "link", "show", "dev", CLIENT_IF]):
                return
            if time.monotonic() > deadline:
                raise RunError(f"the veth pair did not come up in {SETUP_TIMEOUT_S:g} s")
            time.sleep(0.005)

    def close(self):
        """Ends the holders; their namespaces, and the veth pair in them, go
        with the last process inside (the runner ends those first)."""
        for h in self.holders:
            try:
                h.stdin.close()
            except OSError:
                pass
            if h.poll() is None:
                h.kill()
        for h in self.holders:
            _wait(h)
            if h.stderr:
                h.stderr.close()
        self.holders = []


def _wait(p, timeout=5.0):
    """Waits for a process kit started; Ctrl-C while waiting still waits
    (a child left unreaped is a zombie kit made)."""
    while True:
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
        except KeyboardInterrupt:
            p.kill()


def _last_line(text):
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
