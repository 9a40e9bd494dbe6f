"""dpdk (dpdk.c): a UDP echo and sink at the packet level on DPDK's poll-mode
driver for a kernel interface: af_xdp (on a veth in its driver's own XDP
mode, frames copied into the socket's memory) or af_packet. One lcore (the
thread "lcore-0") polls rx_burst, turns kit's datagrams around (Ethernet, IP
and UDP addresses and ports swapped, the UDP checksum computed) and
tx_bursts them; it answers ARP for its address.

EAL runs with --no-pci --no-huge --no-shconf --no-telemetry: no hugepages
(this engine takes none: its buffers are ordinary memory) and no files.
libxdp is kept off bpffs (it then attaches its XDP program without its
dispatcher, which would pin files there), so af_xdp needs no bpffs. The
server's interface has no kernel address (KERNEL_ADDRESS): DPDK answers on
it, and with af_packet the kernel would answer too. It serves the address
given with --bind (0.0.0.0: any, but then it answers no ARP) and --port
(0: 7, the echo port; 9, the discard port, for the sink). A message must fit
one frame: bs at most the interface's MTU less 28 (1472 on a veth)."""
import subprocess

from ...options import Option

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
