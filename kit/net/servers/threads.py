"""threads (threads.c): blocking sockets, the oldest way. TCP: an accept
loop ("net-accept") and one thread per connection ("net-worker") doing
recv then send; UDP: N threads ("net-worker", N = the server's --threads,
default the online CPUs) doing recvfrom then sendto on the one socket."""

NAME = "threads"
DOC = "blocking sockets: a thread per TCP connection (recv/send); N threads on the UDP socket (recvfrom/sendto)"
PROTOCOLS = ("tcp", "udp")
OPTIONS = ()
# server_threads sets the UDP workers (TCP has one thread per connection)
SERVER_THREADS = ("udp",)
LIBRARY = None          # libc's sockets and pthreads only
