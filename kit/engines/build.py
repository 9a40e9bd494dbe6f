"""cffi build script (API mode): compiles the engines against the system's
liburing and libaio (and the C++ ones against Boost.Asio and libstdc++) into
kit.engines._native. Run by setup.py at install."""
import os
import re
import subprocess
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sources import c_sources, cxx_sources, source_hash  # noqa: E402

CXX_FLAGS = ["-O2", "-std=gnu++20", "-fPIC", "-pthread", "-fvisibility=hidden", "-fno-semantic-interposition",
             "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]


def cdef_text():
    text = (HERE / "kit.h").read_text()
    m = re.search(r"/\* cdef-begin \*/(.*)/\* cdef-end \*/", text, re.S)
    return m.group(1)


def liburing_version():
    try:
        out = subprocess.run(["pkg-config", "--modversion", "liburing"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def compile_cxx(out_dir):
    """The C++ engines, compiled with g++ into objects the C build links:
    setuptools compiles every source with one compiler and one set of flags,
    and these need C++'s. Returns the objects' paths."""
    cxx = os.environ.get("CXX", "g++")
    out_dir.mkdir(parents=True, exist_ok=True)
    objects = []
    for src in cxx_sources():
        obj = out_dir / (src.stem + ".o")
        subprocess.run([cxx, *CXX_FLAGS, f"-I{HERE}", "-c", str(src), "-o", str(obj)], check=True)
        objects.append(relative(obj))
    return objects


def relative(path):
    # distutils wants sources relative to the project root (setup.py's cwd)
    return os.path.relpath(path)


# beside cffi's own build products (setup.py's cwd is the project root)
CXX_OBJECTS = compile_cxx(Path("build") / "kit-cxx")

ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "kit.engines._native",
    '#include "kit.h"',
    sources=[relative(p) for p in c_sources()],
    include_dirs=[relative(HERE)],
    extra_objects=CXX_OBJECTS,
    libraries=["uring", "aio", "pthread", "rt", "stdc++"],
    define_macros=[
        ("KIT_SOURCE_HASH", '"%s"' % source_hash()),
        ("KIT_LIBURING_VERSION", '"%s"' % liburing_version()),
    ],
    # hidden visibility: calls between the engine files stay direct (no PLT)
    # and inlinable; cffi's wrapper lives in the same object
    extra_compile_args=["-O2", "-std=gnu11", "-fvisibility=hidden", "-fno-semantic-interposition",
                        "-Wall", "-Wextra",
                        "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
