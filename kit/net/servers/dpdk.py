"""dpdk (dpdk.c): a UDP echo and sink at the packet level on DPDK's poll-mode
driver for a kernel interface: af_xdp (on a veth in its driver's own XDP
mode, frames copied into the socket's memory) or af_packet. One lcore (the
thread "lcore-0") polls rx_burst, turns kit's datagrams around (Ethernet, IP
and UDP addresses and ports swapped, the UDP checksum computed) and
tx_bursts them; it answers ARP for its address.

EAL runs with --no-pci --no-huge --no-shconf --no-telemetry: no hugepages
(its buffers are ordinary memory) and no files. hugepages=N, given by the
user, runs it on N 2 MiB pages instead (--in-memory -m 2N: mapped
anonymously, still no files): kit reserves them first, adding to the
kernel's pool (nr_hugepages) only what its free pages lack, and takes back
what it added when the run ends, however it ends (`resources`). One kit
reservation at a time (a lock held for the run, LOCK): two at once would
each count the pages the other's server is about to take as free.
libxdp is kept off bpffs (it then attaches its XDP program without its
dispatcher, which would pin files there), so af_xdp needs no bpffs. The
server's interface has no kernel address (KERNEL_ADDRESS): DPDK answers on
it, and with af_packet the kernel would answer too. It serves the address
given with --bind (0.0.0.0: any, but then it answers no ARP) and --port
(0: 7, the echo port; 9, the discard port, for the sink). A message must fit
one frame: bs at most the interface's MTU less 28 (1472 on a veth)."""
import json
import os
import select
import subprocess
import sys

from ...errors import RunError
from ...options import Option
from ...signals import held

NAME = "dpdk"
DOC = "DPDK's af_xdp (or af_packet) poll-mode driver on the server's veth end: UDP echo/sink, one polling lcore"
PROTOCOLS = ("udp",)            # DPDK has no TCP stack
KERNEL_ADDRESS = False
NEEDS_IFACE = True
PKG_CONFIG = "libdpdk"          # kit.net.build adds its --cflags/--libs

LOG_LEVELS = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")

OPTIONS = (
    Option("dpdk_pmd", "choice", "af_xdp",
           "af_xdp: an AF_XDP socket fed by an XDP program on the interface (needs XDP in its driver, as veth has); "
           "af_packet: a PACKET_MMAP socket, the fallback where AF_XDP is missing",
           choices=("af_xdp", "af_packet"), fio=None, label=True),
    Option("hugepages", "int", 0,
           "2 MiB hugepages for EAL and the packet buffers (at least 10); kit adds what the kernel's free pool "
           "lacks to nr_hugepages for the run and takes it back after (0: --no-huge, ordinary memory)",
           lo=0, hi=1024, fio=None),
    Option("dpdk_log_level", "choice", "error",
           "EAL's and the PMD's log level (their lines go to the server's stderr)",
           choices=LOG_LEVELS, fio=None),
)


def LIBRARY():
    """DPDK's version, as pkg-config knows it (the build links what it names)."""
    try:
        out = subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"pkg-config: {e}") from None
    if out.returncode != 0:
        raise RuntimeError("pkg-config knows no libdpdk: apt-get install libdpdk-dev dpdk")
    return "DPDK " + out.stdout.strip()


# ---- hugepages ----------------------------------------------------------------

POOL = "/sys/kernel/mm/hugepages/hugepages-2048kB"
# Held (flock) by a reservation's keeper from before it reads the pool until
# it has given back what it added: the free count it reads is then no other
# kit run's. /run is a tmpfs only root writes, as only root adds pages.
LOCK = "/run/kit-hugepages.lock"
RESERVE_TIMEOUT_S = 10.0

# The keeper of a reservation: a process of its own, so that the pages go
# back even when kit is killed (SIGKILL: kit's end of its stdin closes) or
# the server is. It takes the lock (saying {"waiting": true} first when
# another kit run holds it), adds to nr_hugepages only what the free pool
# lacks, says so in one JSON line, waits for EOF on stdin, then takes back
# what it added (not "writes the old value": another user's pages added
# meanwhile stay); the lock goes with its exit, after the pages. Its own
# session and SIGINT ignored: a Ctrl-C at the terminal reaches kit, which
# closes the pipe; SIGTERM gives the pages back too.
KEEPER = r"""# kit-net-hugepages: gives back the hugepages kit added when kit ends
import fcntl, json, os, signal, stat, sys
pool, need, lock = sys.argv[1], int(sys.argv[2]), sys.argv[3]
added = 0
def read(name):
    with open(os.path.join(pool, name)) as fh:
        return int(fh.read())
def write(count):
    with open(os.path.join(pool, "nr_hugepages"), "w") as fh:
        fh.write(str(count))
def give_back(*_):
    global added
    if added:
        try:
            write(max(read("nr_hugepages") - added, 0))
        except OSError:
            pass
        added = 0
    os._exit(0)
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
signal.signal(signal.SIGTERM, give_back)
try:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise OSError(0, "not a regular file", lock)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(json.dumps({"waiting": True}), flush=True)
        fcntl.flock(fd, fcntl.LOCK_EX)
    old = read("nr_hugepages")
    lacking = max(need - (read("free_hugepages") - read("resv_hugepages")), 0)
    if lacking:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            write(old + lacking)
        finally:
            added = max(read("nr_hugepages") - old, 0)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    said = {"old": old, "lacking": lacking, "added": added}
except OSError as e:
    said = {"error": f"{e.filename}: {e.strerror}"}
print(json.dumps(said), flush=True)
if "error" not in said:
    sys.stdin.buffer.read()
give_back()
"""


class Hugepages:
    """N 2 MiB pages free in the kernel's pool for the length of a run,
    kept by a keeper process (KEEPER) that gives back what it added when
    this closes or kit dies.

        with Hugepages(16) as pages:
            ...             # pages.added: how many kit added to nr_hugepages
    """

    def __init__(self, count, pool=POOL, lock=None):
        self.count, self.pool = count, pool
        # a pool of kit's own making (the tests') is locked beside itself
        self.lock = lock or (LOCK if pool == POOL else os.path.join(pool, ".kit-hugepages.lock"))
        self.keeper = None
        self.added = 0
        self.reserved = False       # the keeper said what it added (it may still be waiting for the lock)

    def __enter__(self):
        if not os.path.isdir(self.pool):
            raise RunError(f"hugepages={self.count}: this kernel has no 2 MiB hugepages ({self.pool} is missing); "
                           "leave hugepages out to run DPDK on ordinary memory")
        with held():        # a Ctrl-C inside Popen would lose the keeper, never reaped
            self.keeper = subprocess.Popen([sys.executable, "-I", "-S", "-c", KEEPER, self.pool, str(self.count),
                                            self.lock],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                           start_new_session=True)
        try:
            said = self._said(RESERVE_TIMEOUT_S)
            if said.get("waiting"):
                if sys.stderr is not None:
                    sys.stderr.write(f"kit: hugepages={self.count}: waiting for {self._holder()} to end "
                                     f"(one kit run at a time reserves hugepages: {self.lock})\n")
                    sys.stderr.flush()
                said = self._said(None)         # as long as that run lasts; Ctrl-C ends the wait
            self.reserved = True
            self.added = int(said.get("added", 0))
            if "error" in said:
                raise RunError(f"hugepages={self.count}: cannot reserve them: {said['error']} (reserving "
                               "hugepages needs root); leave hugepages out to run DPDK on ordinary memory")
            if self.added < said["lacking"]:
                raise RunError(f"hugepages={self.count}: the kernel added only {self.added} of the "
                               f"{said['lacking']} 2 MiB pages its free pool lacked (its memory is too fragmented "
                               "or too small); ask for fewer, or leave hugepages out to run DPDK on ordinary memory")
        except BaseException:
            self.close()
            raise
        return self

    def _said(self, timeout):
        ready, _w, _x = select.select([self.keeper.stdout], [], [], timeout)
        line = self.keeper.stdout.readline() if ready else b""
        try:
            said = json.loads(line)
        except ValueError:
            said = None
        if not isinstance(said, dict):
            raise RunError(f"hugepages={self.count}: the process reserving them said nothing "
                           + (f"within {timeout:g} s" if timeout else "before it ended"))
        return said

    def _holder(self):
        """The kit run whose keeper holds the lock, from /proc/locks (the
        keeper's parent), or words for it when that cannot be read."""
        try:
            st = os.stat(self.lock)
            where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
            with open("/proc/locks") as fh:
                keeper = next(int(f[4]) for f in map(str.split, fh)
                              if len(f) > 5 and f[1] == "FLOCK" and f[3] == "WRITE" and f[5] == where)
            with open(f"/proc/{keeper}/stat") as fh:
                kit = int(fh.read().rsplit(")", 1)[1].split()[1])
            return f"another kit run (pid {kit})" if kit > 1 else f"another kit run (its keeper, pid {keeper})"
        except (OSError, StopIteration, ValueError, IndexError):
            return "another kit run"

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Gives back what was added: the keeper does, at EOF on its stdin."""
        if self.keeper is None:
            return
        keeper, self.keeper = self.keeper, None
        for stream in (keeper.stdin, keeper.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if not self.reserved:
            keeper.terminate()          # still waiting for the lock (or silent): it has added nothing
        while True:
            try:
                keeper.wait(RESERVE_TIMEOUT_S)
                return
            except subprocess.TimeoutExpired:
                keeper.terminate()      # SIGTERM: it gives back, then exits
            except KeyboardInterrupt:
                pass                    # a child left unreaped would be a zombie kit made


def resources(options):
    """What kit sets up for the server before it starts and undoes after it
    ends, on every path (kit.net.run enters it around the run): the
    hugepages the user asked for, or nothing."""
    import contextlib
    count = int(options.get("hugepages") or 0)
    return Hugepages(count) if count else contextlib.nullcontext()
