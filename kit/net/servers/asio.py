"""asio (asio.cpp): Boost.Asio's TCP and UDP sockets on one io_context run by
`threads` threads ("asio-io"), on its epoll reactor or its io_uring service.
Boost 1.81 chooses the backend when compiling, so each is its own executable:
kit-net-asio (epoll) and kit-net-asio-io_uring (VARIANTS below); the runner
runs the one asio_backend names (VARIANT_OPTION)."""
import re

from ...options import Option

NAME = "asio"
DOC = "Boost.Asio: async_accept/async_read_some/async_write, async_receive_from/async_send_to; one io_context"
PROTOCOLS = ("tcp", "udp")
# server_threads: the threads that run the one io_context
SERVER_THREADS = ("tcp", "udp")

# variant name -> the compiler/linker flags that make it (kit.net.build builds kit-net-asio-<variant>)
VARIANTS = {"io_uring": ["-DBOOST_ASIO_HAS_IO_URING", "-DBOOST_ASIO_DISABLE_EPOLL", "-luring"]}
# the option whose value names the variant to run ("epoll": the plain build)
VARIANT_OPTION = "asio_backend"

OPTIONS = (
    Option("asio_backend", "choice", "epoll",
           "epoll: Asio's default reactor (readiness, then the socket calls); "
           "io_uring: Asio's io_uring service does every socket operation (Boost 1.81: BOOST_ASIO_HAS_IO_URING)",
           choices=("epoll", "io_uring"), fio=None, label=True),
)

BOOST_VERSION_HEADER = "/usr/include/boost/version.hpp"


def variant(options):
    """The executable's variant for these option values (None: the plain build)."""
    backend = (options or {}).get(VARIANT_OPTION, "epoll")
    return None if backend == "epoll" else backend


def LIBRARY():
    """Boost's version, from the header Asio compiles against."""
    try:
        with open(BOOST_VERSION_HEADER) as f:
            m = re.search(r'#define\s+BOOST_LIB_VERSION\s+"([0-9_]+)"', f.read())
    except OSError:
        return None
    return "Boost.Asio " + m.group(1).replace("_", ".") if m else None
