"""stdasync (stdasync.cpp): every I/O a blocking pread/pwrite in
std::async(std::launch::async, ...), a new thread per I/O in libstdc++.
No fio twin."""
from . import threadpool

FIO = None
OPTIONS = ()
# a thread it could not start: the same limits as the pool's
setup_hint = threadpool.setup_hint
