"""epoll (epoll.c): one thread ("net-loop"), nonblocking sockets,
epoll_wait for readiness, then recv and send itself. A send the socket
takes only in part waits in the connection's buffer for EPOLLOUT."""
from ...options import Option

NAME = "epoll"
DOC = "one thread, nonblocking sockets: epoll_wait for readiness, then recv/send (readiness, not asynchronous I/O)"
PROTOCOLS = ("tcp", "udp")
OPTIONS = (
    Option("trigger", "choice", "level",
           "level: one recv per readiness event, epoll reports what is left; "
           "edge (EPOLLET): each ready socket is read until EAGAIN, as edge triggering requires",
           choices=("level", "edge"), fio=None, label=True),
)
LIBRARY = None          # the kernel's epoll through libc
