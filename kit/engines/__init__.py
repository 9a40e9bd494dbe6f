"""The compiled engines (kit.engines._native, built by cffi at install).

`native()` returns (ffi, lib) and fails with one clear line when the library
is missing or was built from other sources than the ones beside it."""
import functools

from ..errors import RunError
from .sources import source_hash


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
    """{name: {"index": i, "sync": bool}} from the C engine list."""
    ffi, lib = native()
    return {ffi.string(lib.kit_engine_name(i)).decode(): {"index": i, "sync": bool(lib.kit_engine_is_sync(i))}
            for i in range(lib.kit_engine_count())}


def engine_names():
    return tuple(registry())


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


def liburing_version():
    ffi, lib = native()
    return ffi.string(lib.kit_liburing_version()).decode()
