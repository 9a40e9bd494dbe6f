"""Builds the network half's executables into kit/net/_bin/: each server
engine (servers/<name>.c|.cpp linked with server.c) as kit-net-<name> (and
kit-net-<name>-<variant> for each of its VARIANTS), and the load generator
as kit-net-loadgen.

Only what is missing or stale is built: a stamp beside each binary holds the
hash of its sources, flags and compiler. A build writes a temporary file and
renames it into place, under a lock, so concurrent kit processes never see
half a binary. One engine that cannot build here does not stop the others.

An engine module may declare, beside its options:
    CFLAGS = [...]          extra compiler flags
    LIBS = [...]            extra libraries (-lfoo)
    PKG_CONFIG = "name"     a pkg-config package whose --cflags and --libs are added
    VARIANTS = {"v": [...]} each also builds kit-net-<name>-v with these extra flags

`python -m kit.net.build` builds everything, one line per executable."""
import fcntl
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import RunError
from . import servers

HERE = Path(__file__).resolve().parent
BIN = HERE / "_bin"
LOADGEN = "loadgen"
C_FLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-pthread"]
CXX_FLAGS = ["-O2", "-std=gnu++20", "-Wall", "-Wextra", "-pthread"]
COMMON_LIBS = ["-pthread"]
BUILD_TIMEOUT_S = 300


def pkg_config_version(package):
    """The package's version as pkg-config knows it; None when it does not."""
    try:
        out = subprocess.run(["pkg-config", "--modversion", package], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def targets():
    """Every executable kit can build: (engine or "loadgen", variant or None)."""
    out = [(LOADGEN, None)]
    for name in servers.engine_names():
        out.append((name, None))
        for variant in sorted(getattr(servers.engine(name), "VARIANTS", {}) or {}):
            out.append((name, variant))
    return out


def executable_name(name, variant=None):
    return f"kit-net-{name}" + (f"-{variant}" if variant else "")


def _recipe(name, variant):
    """(sources, compiler, flags, libs) for one executable; RunError with one
    line when a library it needs is missing here."""
    if name == LOADGEN:
        return [HERE / "loadgen.c"], os.environ.get("CC", "gcc"), list(C_FLAGS), list(COMMON_LIBS)
    if name not in servers.engine_names():
        raise RunError(f"no network engine named {name!r}: choose from {', '.join(servers.engine_names())}")
    module = servers.engine(name)
    source = Path(servers.source(name))
    cxx = source.suffix == ".cpp"
    flags = list(CXX_FLAGS if cxx else C_FLAGS) + [f"-I{HERE}"] + list(getattr(module, "CFLAGS", []) or [])
    libs = list(getattr(module, "LIBS", []) or []) + list(COMMON_LIBS)
    package = getattr(module, "PKG_CONFIG", None)
    if package:
        got = {}
        for what in ("--cflags", "--libs"):     # DPDK's --cflags carry its include paths and -march
            try:
                out = subprocess.run(["pkg-config", what, package], capture_output=True, text=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise RunError(f"pkg-config is not usable here ({e}): install pkg-config") from None
            if out.returncode != 0:
                raise RunError(f"pkg-config knows no {package}: install its development package "
                               f"(Debian: {_debian_package(package)})")
            got[what] = out.stdout.split()
        flags += got["--cflags"]
        libs = got["--libs"] + libs
    if variant:
        extra = (getattr(module, "VARIANTS", {}) or {}).get(variant)
        if extra is None:
            raise RunError(f"the {name} engine has no variant {variant!r}")
        flags += [f for f in extra if not f.startswith("-l")]
        libs = [f for f in extra if f.startswith("-l")] + libs
    sources = [HERE / "server.c", source]
    return sources, os.environ.get("CXX", "g++") if cxx else os.environ.get("CC", "gcc"), flags, libs


def _debian_package(pkg_config_name):
    return {"liburing": "liburing-dev", "libdpdk": "libdpdk-dev"}.get(pkg_config_name, f"{pkg_config_name}-dev")


def _digest(sources, compiler, flags, libs):
    missing = [str(p.relative_to(HERE)) for p in sources if not p.exists()]
    if missing:
        raise RunError(f"{missing[0]} is missing from {HERE}: reinstall kit")
    h = hashlib.sha256()
    for path in list(sources) + headers():
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update("\0".join([compiler, *flags, *libs]).encode())
    return h.hexdigest()[:16]


def headers():
    """Every header a network program includes: its own, and the storage
    engines' histogram bins (../engines/plat.h, kit.h)."""
    engines = HERE.parent / "engines"
    return (sorted(HERE.glob("*.h")) + sorted((HERE / "servers").glob("*.h"))
            + [engines / "plat.h", engines / "kit.h"])


def source_hash():
    """One digest of every network C/C++ source and header (a result's label)."""
    h = hashlib.sha256()
    for folder in (HERE, HERE / "servers"):
        for path in sorted(folder.iterdir()):
            if path.suffix in (".c", ".cpp", ".h"):
                h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for path in headers()[-2:]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _stamp(path):
    return path.with_name(path.name + ".stamp")


def _up_to_date(path, digest):
    try:
        return path.exists() and _stamp(path).read_text().strip() == digest
    except OSError:
        return False


def _first_error(text):
    """The compiler's (or linker's) first line that says what is wrong."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for pattern in (r"\bfatal error:", r"\berror:", r"cannot find -l", r"undefined reference"):
        for ln in lines:
            if re.search(pattern, ln):
                return ln.replace(str(HERE) + "/", "")
    return lines[0] if lines else "the compiler failed and said nothing"


def _compile(sources, compiler, flags, libs, out):
    """One compiler call per source (g++ would read server.c as C++), then a link.
    The objects and the compiler's own temporary files go to a folder of
    kit's in _bin/ (not /tmp): a kit killed mid-build leaves them where the
    next build finds and removes them (_remove_stale)."""
    c_flags = [f for f in flags if not f.startswith("-std=")] + ["-std=gnu11"]
    with tempfile.TemporaryDirectory(prefix=f"{BUILD_DIR_PREFIX}{os.getpid()}-", dir=BIN) as tmp:
        env = dict(os.environ, TMPDIR=tmp)
        objects = []
        for src in sources:
            cxx = src.suffix == ".cpp"
            obj = Path(tmp) / (src.stem + ".o")
            _run([compiler if cxx else os.environ.get("CC", "gcc"), *(flags if cxx else c_flags),
                  "-c", str(src), "-o", str(obj)], env)
            objects.append(str(obj))
        _run([compiler, *objects, "-o", str(out), *libs], env)


BUILD_DIR_PREFIX = ".build-"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _remove_stale():
    """What a kit killed mid-build left in _bin/ (its build folder, its
    half-written binary or stamp: each named with its pid), once that
    process is gone. Called under the build lock."""
    import shutil
    for path in BIN.iterdir():
        m = re.fullmatch(rf"{re.escape(BUILD_DIR_PREFIX)}(\d+)-.*|\..+\.(\d+)\.(?:tmp|stamp)", path.name)
        if not m or _pid_alive(int(m.group(1) or m.group(2))):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _run(cmd, env=None):
    try:
        got = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, env=env)
    except FileNotFoundError:
        raise RunError(f"{cmd[0]} is not installed: install it (Debian: gcc, g++)") from None
    except subprocess.TimeoutExpired:
        raise RunError(f"{cmd[0]} took over {BUILD_TIMEOUT_S} s") from None
    if got.returncode != 0:
        raise RunError(_first_error(got.stderr or got.stdout))


def _build(name, variant, force=False):
    """Builds one executable if it is missing or stale. Returns (path, what
    happened: "built" or "up to date"); RunError with one line if it cannot."""
    sources, compiler, flags, libs = _recipe(name, variant)
    path = BIN / executable_name(name, variant)
    digest = _digest(sources, compiler, flags, libs)
    if not force and _up_to_date(path, digest):
        return path, "up to date"
    BIN.mkdir(exist_ok=True)
    with open(BIN / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)     # one builder at a time; the others then find it built
        _remove_stale()
        if not force and _up_to_date(path, digest):
            return path, "up to date"
        tmp = BIN / f".{path.name}.{os.getpid()}.tmp"
        try:
            _compile(sources, compiler, flags, libs, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        stamp_tmp = BIN / f".{path.name}.{os.getpid()}.stamp"
        stamp_tmp.write_text(digest + "\n")
        os.replace(stamp_tmp, _stamp(path))
    return path, "built"


def binary(name, variant=None):
    """The executable's path, built first if it is missing or stale;
    RunError (one line) when it cannot be built here."""
    try:
        return str(_build(name, variant)[0])
    except RunError as e:
        raise RunError(f"{executable_name(name, variant)} cannot be built: {e}") from None


def status():
    """{engine (or engine-variant, or "loadgen"): "ok" | "cannot build: why"},
    building what is missing (for doctor)."""
    out = {}
    for name, variant in targets():
        key = name + (f"-{variant}" if variant else "")
        try:
            _build(name, variant)
            out[key] = "ok"
        except RunError as e:
            out[key] = f"cannot build: {e}"
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    force = "--force" in argv
    failed = 0
    for name, variant in targets():
        label = executable_name(name, variant)
        try:
            _, what = _build(name, variant, force=force)
        except RunError as e:
            what = f"cannot build: {e}"
            failed += 1
        print(f"{label}: {what}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
