"""posixaio (posixaio.c): glibc's aio_read/aio_write + aio_suspend."""
FIO = "posixaio"
OPTIONS = ()
