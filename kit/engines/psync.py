"""psync (psync.c): pread/pwrite."""
FIO = "psync"
OPTIONS = ()
