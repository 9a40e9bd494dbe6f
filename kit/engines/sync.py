"""sync (sync.c): read/write at the file position, lseek only when the offset changes."""
FIO = "sync"
OPTIONS = ()
