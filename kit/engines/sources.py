"""Which files make up the C engines, and their hash.

Shared by the cffi build script (which bakes the hash into the library) and
by kit at run time (which compares it with the sources next to it, so a
stale build is noticed instead of silently measuring old code)."""
import hashlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def c_sources():
    """The engine's C files; cffi's generated module starts with '_'."""
    return sorted(p for p in HERE.glob("*.c") if not p.name.startswith("_"))


def cxx_sources():
    """The engines written in C++ (they expose their ops as extern "C")."""
    return sorted(HERE.glob("*.cpp"))


def source_hash():
    h = hashlib.sha256()
    for path in sorted(c_sources() + cxx_sources() + sorted(HERE.glob("*.h"))):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
