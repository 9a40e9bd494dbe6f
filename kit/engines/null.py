"""null (null.c): no system call, no byte moved: kit's own cost per I/O,
the floor under every other engine (fio's null engine)."""

FIO = "null"
# no files: the job's size only says how many I/Os to "do"
DISKLESS = True
OPTIONS = ()
