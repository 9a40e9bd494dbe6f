"""`kit doctor`: what works on this machine, found by doing it.

Every engine and io_uring feature is probed with a real, tiny job through the
same code path as a measurement (on a temporary directory kit creates and
removes, or read-only on a file the user names), so "ok" means "kit ran it".
"""
import os
import resource
import shutil
import tempfile

from . import __version__
from .errors import KitError, OptionError
from .tracers import status
from .target import check_directory, scratch_directory
from .job import OPTIONS, Job
from .host import capabilities as host_capabilities, read_sysctl
from .engines.sources import source_hash
from .engines import built_hash, framework, liburing_version, registry, stale_build
from .api import run
from . import machine

PROBE_IOS = 64
PROBE_SIZE = "1m"


def _probe(base, **options):
    """(ok, why-not) for one tiny real job."""
    try:
        job = Job(number_ios=PROBE_IOS, rw="randread", bs="4k", **base, **options)
        result = run(job, progress=False, machine=False)
    except KitError as e:
        return False, str(e)
    if result.data.get("interrupted"):
        raise KeyboardInterrupt         # Ctrl-C during a probe stops doctor, as it stops a run
    if result.ios != PROBE_IOS:
        return False, f"moved {result.ios} of {PROBE_IOS} I/Os"
    return True, None


def _engine_matrix(base):
    engines, features = {}, {}
    for engine, info in registry().items():
        depth = {} if info["sync"] else {"iodepth": 4}
        ok, why = _probe(base, ioengine=engine, **depth)
        ok_direct, why_direct = _probe(base, ioengine=engine, direct=True, **depth)
        engines[engine] = {"buffered": ok, "buffered_reason": why,
                           "direct": ok_direct, "direct_reason": why_direct, "framework": framework(engine)}
    for name, option in OPTIONS.items():     # each engine's features, as they declare them
        if option.probe is None:
            continue
        for engine in option.engines:
            depth = {} if registry()[engine]["sync"] else {"iodepth": 4}
            ok, why = _probe(base, ioengine=engine, **depth, **{name: True}, **option.probe)
            features[f"{engine}.{name}"] = {"ok": ok, "reason": why}
    return engines, features


def privileges():
    caps = host_capabilities()
    memlock = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {
        "root": os.geteuid() == 0,
        **{cap.lower(): on for cap, on in caps.items()},
        "memlock_bytes": None if memlock == resource.RLIM_INFINITY else memlock,
        "nofile": nofile,
        "aio_nr": read_sysctl("fs.aio-nr"), "aio_max_nr": read_sysctl("fs.aio-max-nr"),
        "io_uring_disabled": read_sysctl("kernel.io_uring_disabled"),
    }


def tracing_status():
    return status()


def capabilities(directory=None, filename=None):

    made = None
    if filename:
        if not os.path.exists(filename):
            raise OptionError("filename", f"{filename} does not exist; doctor probes an existing file or "
                                          "block device, read-only")
        base = {"filename": filename}
        target = filename
    else:
        root = scratch_directory(Job(directory=directory))
        check_directory(root)
        os.makedirs(root, exist_ok=True)
        made = tempfile.mkdtemp(prefix=".kit-doctor-", dir=root)
        base = {"directory": made, "size": PROBE_SIZE}
        target = made
    try:
        fp = machine.fingerprint(root if made else target)
        engines, features = _engine_matrix(base)
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)
    return {
        "kit": __version__,
        "build": {"built_hash": built_hash(), "source_hash": source_hash(), "stale": stale_build(),
                  "liburing_headers": liburing_version()},
        "target": fp.get("target"),
        "machine": {k: fp.get(k) for k in ("name", "hostname", "kernel", "virtualization", "container", "cpu",
                                            "memory", "versions")},
        "engines": engines,
        "features": features,
        "privileges": privileges(),
        "tracing": tracing_status(),
    }
