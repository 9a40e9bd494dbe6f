"""cffi build script (API mode): compiles the engines against the system's
liburing and libaio into kit.engines._native. Run by setup.py at install."""
import os
import re
import subprocess
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sources import c_sources, source_hash  # noqa: E402


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


def relative(path):
    # distutils wants sources relative to the project root (setup.py's cwd)
    return os.path.relpath(path)


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "kit.engines._native",
    '#include "kit.h"',
    sources=[relative(p) for p in c_sources()],
    include_dirs=[relative(HERE)],
    libraries=["uring", "aio", "pthread", "rt"],
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
