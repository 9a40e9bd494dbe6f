"""The engines: each is a C file (its I/O loop), a line in registry.c, and
a Python module of the same name beside them (its fio twin, its options,
what its errors mean). Nothing else lists them.

`native()` returns the compiled library (kit.engines._native, built by cffi
at install) and fails with one clear line when it is missing or was built
from other sources than the ones beside it. Naming the engines and their
options needs no compiled library: fio job files and Jobs work without it."""
import errno
import functools
import importlib
import os
import re

from ..errors import RunError
from .sources import source_hash

HERE = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=None)
def engine_names():
    """The engines, in registry.c's order (the order `kit doctor` lists)."""
    with open(os.path.join(HERE, "registry.c")) as fh:
        text = fh.read()
    block = re.search(r"#define ENGINE_LIST\(X\)(.*?)\n\s*\n", text, re.S).group(1)
    return tuple(re.findall(r"X\((\w+)\)", block))


def engine(name):
    """The engine's Python module: FIO (fio's ioengine, or None), OPTIONS,
    and optionally check_options(job) (its options together: OptionError),
    check_machine(job, paths), setup_hint(job, err) and io_hint(job, err)."""
    if name not in engine_names():
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}")


def fio_twin(name):
    return engine(name).FIO


def diskless(name):
    """The engine touches no file (null): a job of it has nothing to plan."""
    return bool(getattr(engine(name), "DISKLESS", False))


def variants():
    """[(label, options)]: every engine as it is, then the variants each
    declares (VARIANTS) -- what a report measures of every engine."""
    out = []
    for name in engine_names():
        out.append((name, {"ioengine": name}))
        for suffix, extra in getattr(engine(name), "VARIANTS", {}).items():
            out.append((f"{name}-{suffix}", {"ioengine": name, **extra}))
    return out


def setup_hint(job, err):
    """' — why, and what to do' when the job's engine could not start."""
    hint = getattr(engine(job.ioengine), "setup_hint", None)
    return hint(job, err) if hint else ""


def io_hint(job, err):
    """' — why' when an I/O failed."""
    hint = getattr(engine(job.ioengine), "io_hint", None)
    text = hint(job, err) if hint else ""
    if text:
        return text
    if err == errno.EINVAL and job.direct:
        return " — direct I/O needs bs and offsets aligned to the device's logical block size"
    if err == errno.ENOSPC:
        return " — the filesystem is full"
    return ""


@functools.lru_cache(maxsize=None)
def native():
    try:
        from ._native import ffi, lib
    except ImportError as e:
        raise RunError(f"kit's C engines are not built ({e}); run `make setup` "
                       "(or `pip install -e .`) in the kit checkout") from None
    return ffi, lib


@functools.lru_cache(maxsize=None)
def registry():
    """{name: {"index": i, "sync": bool}} from the compiled C engine list."""
    ffi, lib = native()
    return {ffi.string(lib.kit_engine_name(i)).decode(): {"index": i, "sync": bool(lib.kit_engine_is_sync(i))}
            for i in range(lib.kit_engine_count())}


def engine_index(name):
    return registry()[name]["index"]


def built_hash():
    ffi, lib = native()
    return ffi.string(lib.kit_source_hash()).decode()


def stale_build():
    """The C sources changed since the library was built (results would
    measure old code): returns a one-line warning or None."""
    built, current = built_hash(), source_hash()
    if built != current:
        return (f"kit's C engines were built from other sources (built {built}, "
                f"sources {current}); run `make setup` to rebuild")
    return None


def framework(name):
    """The library an engine measures, with its version as compiled in
    ("Boost.Asio 1.81.0"), or None for plain system calls."""
    ffi, lib = native()
    text = lib.kit_engine_framework(engine_index(name))
    return ffi.string(text).decode() if text != ffi.NULL else None


def liburing_version():
    ffi, lib = native()
    return ffi.string(lib.kit_liburing_version()).decode()
