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


NET_PROBE_RUNTIME = "100ms"


def network():
    """Each network engine: built here (or why not), what it links, what it
    serves, and a real tiny echo run (TCP over loopback; across the veth
    pair for an engine that takes over its interface); and whether kit can
    make its namespaces and veth pair (network=veth) here."""
    from .net import build
    from .net.netns import missing_privileges, missing_tools
    from .net.servers import engine, engine_names, kernel_address, library
    from .api import run_net
    built = build.status()
    no_namespaces = missing_privileges() or missing_tools()
    engines = {}
    for name in engine_names():
        protocols = engine(name).PROTOCOLS
        protocol = "tcp" if "tcp" in protocols else protocols[0]
        # an engine that takes over its interface runs only across the veth pair
        network = "loopback" if kernel_address(name) else "veth"
        why = built.get(name, "ok")
        why = None if why == "ok" else why
        if why is None and built.get(build.LOADGEN, "ok") != "ok":
            why = f"the load generator: {built[build.LOADGEN]}"
        if why is None and network == "veth" and no_namespaces:
            why = no_namespaces
        if why is None:
            try:
                r = run_net(server=name, protocol=protocol, network=network, runtime=NET_PROBE_RUNTIME,
                            progress=False, machine=False)
                if r.data.get("interrupted"):
                    raise KeyboardInterrupt
                if not r.ios:
                    why = f"a {protocol} echo over {network} completed no request"
            except KitError as e:
                why = str(e)
        engines[name] = {"ok": why is None, "reason": why, "protocols": list(protocols), "probe": f"{protocol} echo over {network}",
                         "library": library(name),
                         "variants": {k: v for k, v in built.items() if k.startswith(f"{name}-")}}
    return {"engines": engines, "loadgen": built.get(build.LOADGEN),
            "namespaces": {"ok": no_namespaces is None, "reason": no_namespaces},
            "hugepages": hugepages(), "yardsticks": yardsticks()}


def hugepages():
    """The kernel's 2 MiB pool, which dpdk's hugepages=N runs on: its pages,
    how many are free (less those promised to a mapping, as kit counts
    them), and whether kit may add to it (writing nr_hugepages)."""
    from .net.servers.dpdk import POOL
    if not os.path.isdir(POOL):
        return {"ok": False, "reason": f"this kernel has no 2 MiB hugepages ({POOL} is missing)"}
    try:
        pool = {}
        for name in ("nr_hugepages", "free_hugepages", "resv_hugepages"):
            with open(os.path.join(POOL, name)) as fh:
                pool[name] = int(fh.read())
    except (OSError, ValueError) as e:
        return {"ok": False, "reason": f"{POOL} cannot be read: {e}"}
    may_add = os.access(os.path.join(POOL, "nr_hugepages"), os.W_OK)
    return {"ok": True, "total": pool["nr_hugepages"], "free": pool["free_hugepages"] - pool["resv_hugepages"],
            "may_add": may_add,
            "reason": None if may_add else "nr_hugepages is not writable here (root adds pages): only free ones serve"}


# the network bench's yardsticks (bench/net.py): (program, its version's pattern in `program --version`)
YARDSTICKS = (("sockperf", r"version (\S+)"), ("iperf3", r"iperf (\S+)"))


def yardsticks():
    """{program: {"version", "reason"}} for sockperf and iperf3, the tools
    `make bench-net` measures kit's network engines against."""
    import re
    import subprocess
    out = {}
    for program, pattern in YARDSTICKS:
        path = shutil.which(program)
        version, reason = None, None
        if path is None:
            reason = f"not installed (apt-get install {program}, or make setup)"
        else:
            try:
                said = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
                found = re.search(pattern, said.stdout + said.stderr)
                version = found.group(1) if found else "installed"
            except (OSError, subprocess.SubprocessError) as e:
                reason = f"{path} does not run: {e}"
        out[program] = {"version": version, "reason": reason}
    return out


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
        "net": network(),
    }
