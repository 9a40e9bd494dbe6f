"""The network server engines: the table is the set of files here. An
engine is `<name>.c` (or `<name>.cpp`) linked with ../server.c into
kit-net-<name>, with `<name>.py` beside it; nothing lists them elsewhere.

What `<name>.py` holds (the engine's declaration, read by the job, the CLI's
help, doctor and the runner):

    NAME      = "io_uring"                  # the file's name
    DOC       = "recv/send SQEs on one ring per thread"        # one line
    PROTOCOLS = ("tcp", "udp")              # what it serves; others are refused in one line
    OPTIONS   = (Option(...), ...)          # kit.options.Option rows (below)
    LIBRARY   = "liburing 2.3"              # what it links, for doctor (a str, or a
                                            # function returning one, or None)
    KERNEL_ADDRESS = True                   # optional: False = the server's veth end
                                            # gets no kernel address (DPDK answers
                                            # on it itself; the client gets a static
                                            # neighbour entry instead)
    NEEDS_IFACE = False                     # optional: True = the server is told its
                                            # interface (--iface kveth0)
    MAX_BS = 1472                           # optional: the largest message it serves
                                            # (a frame's payload); larger bs is refused
                                            # in one line before anything starts
    SERVER_THREADS = ("udp",)               # optional: the protocols on which the
                                            # server's --threads (server_threads) sets
                                            # its serving threads; elsewhere (and for an
                                            # engine without it) server_threads above 1
                                            # is refused: it would be ignored

An engine without a kernel address (KERNEL_ADDRESS = False) runs only on
network=veth: it takes over the server's interface.

OPTIONS are kit.options.Option rows, the storage engines' form: name, kind
("bool", "int", "choice", "size", "time", "text"), default, help, and lo/hi
or choices. Only these fields matter here; `engines` is filled in from the
file name. kit passes a value to the server as `--opt name=value` (a bool as
1/0; a size as bytes; a time as seconds) only when the user gave it, so the
C side's default must equal `default`. An option two engines declare alike
belongs to both (asio and io_uring may both have `sqpoll`); declared
differently, it is an error.
"""
import importlib
import os

from ...options import add_engine_options

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_SUFFIXES = (".c", ".cpp")


def engine_names():
    """Every engine here: a `<name>.c|.cpp` with a `<name>.py` beside it, in
    the seed's order of evolution where known, then by name."""
    files = os.listdir(HERE)
    names = {os.path.splitext(f)[0] for f in files if f.endswith(SOURCE_SUFFIXES)}
    names = {n for n in names if f"{n}.py" in files and not n.startswith("_")}
    order = ("threads", "epoll", "io_uring", "asio", "dpdk")
    return tuple(sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n)))


def engine(name):
    """The engine's module (its declaration)."""
    if name not in engine_names():
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}")


def source(name):
    """The engine's C or C++ file."""
    for suffix in SOURCE_SUFFIXES:
        path = os.path.join(HERE, name + suffix)
        if os.path.exists(path):
            return path
    raise KeyError(name)


def kernel_address(name):
    return bool(getattr(engine(name), "KERNEL_ADDRESS", True))


def server_threads(name):
    """The protocols on which server_threads sets the engine's serving threads."""
    return tuple(getattr(engine(name), "SERVER_THREADS", ()) or ())


def needs_iface(name):
    return bool(getattr(engine(name), "NEEDS_IFACE", False))


def library(name):
    """What the engine links, as its module says (None: nothing but libc)."""
    value = getattr(engine(name), "LIBRARY", None)
    try:
        return value() if callable(value) else value
    except Exception as e:          # a probe that fails says why, doctor goes on
        return f"unknown ({e})"


def engine_options():
    """name -> Option of every engine's own options, `engines` filled in."""
    out = {}
    for name in engine_names():
        add_engine_options(out, name, engine(name).OPTIONS, what="network option")
    return out
