"""What every tracer shares: getting bcc to compile here, one BPF program for
all selected tracers, fio's bucket function in BPF C, and lost-event counts.

bcc compiles C against kernel headers at run time. Where the running kernel
has none (this project's 6.18 VMs), Debian's generic headers work for our
programs because they read tracepoint arguments only (`args->field`, whose
layout bcc takes from the running kernel's tracefs format files), never
kernel structs, whose layout would silently be the headers' and not the
kernel's.
"""
import atexit
import contextlib
import ctypes
import glob
import os
import platform
import re
import sys
import tempfile
import threading

from .. import host
from ..errors import KitError

TRACEFS = "/sys/kernel/tracing"
DEBUGFS_TRACING = "/sys/kernel/debug/tracing"   # bcc prefers it when it exists

# Why an event could not be recorded, one slot each in the `lost` BPF array.
# Each tracer's C refers to these as LOST_<NAME> (generated below).
LOST_REASONS = (
    "block_request_slot_busy",  # a request's slot held another request in flight: not timed
    "block_counts_full",     # block_counts map full: a (device, op) not counted
    "block_devices_full",    # a machine-wide trace met more devices than it has slots: not traced
    "sched_threads_full",    # sched_threads map full: a thread's switches not counted
    "sched_offcpu_full",     # the tracing process had more threads than sched_offcpu has rows: a sample dropped
)


class TraceUnavailable(KitError):
    """Tracing cannot start on this machine; the message says what is missing."""


# The part of the program every tracer uses. Must match kit/hist.py and
# plat_val_to_idx in kit/engines/driver.c bucket for bucket.
COMMON_TEXT = r"""
#define PLAT_BITS 6
#define PLAT_VAL (1 << PLAT_BITS)
#define PLAT_NR (29 * PLAT_VAL)
/* one histogram, bucket by bucket: a row of an array map */
struct plat_row { u64 n[PLAT_NR]; };

/* The most significant bit set (0 for 0 and 1). BPF has no clz, so it is
   found by halving: a fixed number of steps the verifier accepts. */
static __always_inline u32 msb64(u64 x)
{
    u32 msb = 0;

    if (x >> 32) { x >>= 32; msb += 32; }
    if (x >> 16) { x >>= 16; msb += 16; }
    if (x >> 8)  { x >>= 8;  msb += 8; }
    if (x >> 4)  { x >>= 4;  msb += 4; }
    if (x >> 2)  { x >>= 2;  msb += 2; }
    if (x >> 1)  { msb += 1; }
    return msb;
}

/* fio's io_u_plat bucket of a value in ns (plat_val_to_idx): exact below
   128, then 64 sub-buckets per power of two, the last bucket open-ended */
static __always_inline u32 plat_idx(u64 val)
{
    u32 msb = msb64(val), error_bits, idx;

    if (msb <= PLAT_BITS)
        return (u32)val;
    error_bits = msb - PLAT_BITS;
    idx = ((error_bits + 1) << PLAT_BITS) + ((PLAT_VAL - 1) & (u32)(val >> error_bits));
    return idx < PLAT_NR ? idx : PLAT_NR - 1;
}

/* events a tracer saw but could not record, by reason (LOST_* slots) */
BPF_ARRAY(lost, u64, LOST_SLOTS);

static __always_inline void count_lost(u32 reason)
{
    u64 *n = lost.lookup(&reason);
    if (n)
        __sync_fetch_and_add(n, 1);
}

/* The probes count only while the trace is armed: Python arms it once every
   probe is attached, and disarms it before detaching any (arm()). Attaching
   or detaching a tracepoint waits for RCU grace periods, tens of ms each,
   and a half-attached program (issues seen, their bios' queueing or their
   completions not) would take another process's requests for its own.
   Between the two, DRAINING: nothing new is counted, and the completions
   of requests the trace saw issued are still matched, so a trace's
   requests all end in it (another process's in flight at the stop too). */
#define ARMED_OFF 0
#define ARMED_COUNTING 1
#define ARMED_DRAINING 2
BPF_ARRAY(kit_armed, u32, 1);

static __always_inline u32 armed_state(void)
{
    u32 zero = 0;
    u32 *state = kit_armed.lookup(&zero);
    return state ? *state : ARMED_OFF;
}

/* KIT_PROBE(tracepoint) { body }: a raw tracepoint probe whose body runs
   only while the trace counts; KIT_DRAIN_PROBE's also while it drains */
#define KIT_PROBE(event) \
    static __always_inline int kit_probe_##event(struct bpf_raw_tracepoint_args *ctx); \
    RAW_TRACEPOINT_PROBE(event) { return armed_state() == ARMED_COUNTING ? kit_probe_##event(ctx) : 0; } \
    static __always_inline int kit_probe_##event(struct bpf_raw_tracepoint_args *ctx)
#define KIT_DRAIN_PROBE(event) \
    static __always_inline int kit_probe_##event(struct bpf_raw_tracepoint_args *ctx); \
    RAW_TRACEPOINT_PROBE(event) { return armed_state() != ARMED_OFF ? kit_probe_##event(ctx) : 0; } \
    static __always_inline int kit_probe_##event(struct bpf_raw_tracepoint_args *ctx)
"""


def lost_defines():
    lines = [f"#define LOST_{name.upper()} {i}" for i, name in enumerate(LOST_REASONS)]
    lines.append(f"#define LOST_SLOTS {len(LOST_REASONS)}")
    return "\n".join(lines) + "\n"


# ---- the environment ------------------------------------------------------

def tracefs_dir():
    """The tracefs bcc will use (it prefers debugfs's), or None if unmounted.
    A tracefs this user cannot look into (Debian mounts it mode 0700) is
    still mounted: the mount table says so where the directory cannot."""
    for path in (DEBUGFS_TRACING, TRACEFS):
        if os.path.isdir(os.path.join(path, "events")):
            return path
    return TRACEFS if TRACEFS in _mounts_of("tracefs") else None


def _mounts_of(fstype):
    """Where file systems of this type are mounted, as this process sees it."""
    found = set()
    with contextlib.suppress(OSError):
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                before, sep, after = line.partition(" - ")
                fields = before.split()
                if sep and len(fields) > 4 and after.split()[:1] == [fstype]:
                    found.add(fields[4].replace("\\040", " "))
    return found


def tracefs_readable():
    """Whether this user can read the tracefs bcc will use (False if none)."""
    base = tracefs_dir()
    return bool(base) and os.access(os.path.join(base, "events"), os.R_OK | os.X_OK)


PID_NAMESPACE = ("kit runs in a PID namespace of its own (a container): the tracers see the kernel's pids, "
                 "not this process's, and could not tell this run's I/O and threads from others'")
# the initial PID namespace's inode (include/linux/proc_ns.h PROC_PID_INIT_INO)
PROC_PID_INIT_INO = 0xEFFFFFFC


def in_pid_namespace():
    """Whether this process sees pids of its own (a container): the tracers
    meet the kernel's, and could not tell this process's I/O and threads
    from anyone else's."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino != PROC_PID_INIT_INO
    except OSError:
        return False


def tracefs_problem():
    """Why this user cannot use tracefs (one line), or None: not mounted and
    not root to mount it, or mounted root's alone (mode 0700) for a non-root
    user with CAP_BPF. kit doctor and a trace's start say the same."""
    base = tracefs_dir()
    if not base:
        if os.geteuid() != 0:
            return f"tracefs is not mounted and only root can mount it: mount -t tracefs tracefs {TRACEFS}"
        return None                 # ensure_tracefs() mounts it
    if not tracefs_readable():
        return (f"tracefs at {base} is not readable by this user (mode {os.stat(base).st_mode & 0o777:o}): "
                f"run as root, or let this user read it (chmod/chgrp {base})")
    return None


def ensure_tracefs():
    """Mounts tracefs at /sys/kernel/tracing if nothing provides it (as root;
    else TraceUnavailable, saying why). Must happen before bcc is first
    used: it picks its tracefs path once."""
    why = tracefs_problem()
    if why:
        raise TraceUnavailable(why)
    if tracefs_dir():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tracefs", TRACEFS.encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise TraceUnavailable(f"cannot mount tracefs at {TRACEFS}: {os.strerror(err)}")


def same_named(category, events, required):
    """tracepoints(exists) and complete(found) for a tracer whose events are
    tracepoints of one category, under their own names."""
    def tracepoints(exists):
        return {e: e for e in events if exists(category, e)}

    def complete(found):
        return all(e in found for e in required)
    return tracepoints, complete


def privileged():
    # the effective capabilities decide, not the uid: root can run without them
    caps = host.capabilities()
    return caps["CAP_SYS_ADMIN"] or (caps["CAP_BPF"] and caps["CAP_PERFMON"])


def _version_key(path):
    return tuple(int(n) for n in re.findall(r"\d+", os.path.basename(path)))


_ARCH = {"x86_64": ("x86", "amd64"), "aarch64": ("arm64", "arm64")}


def _generic_headers():
    """The newest Debian-style split headers (<ver>-common + <ver>-<flavour>)
    that have this architecture's generated headers: (common, build) or None."""
    karch, debarch = _ARCH.get(platform.machine(), (platform.machine(), platform.machine()))
    for common in sorted(glob.glob("/usr/src/linux-headers-*-common"), key=_version_key, reverse=True):
        if not os.path.exists(os.path.join(common, "include/linux/kconfig.h")):
            continue
        prefix = common[:-len("-common")]
        builds = [b for b in glob.glob(prefix + "-*")
                  if b != common and os.path.isdir(os.path.join(b, "arch", karch, "include/generated"))
                  and os.path.exists(os.path.join(b, "include/generated/uapi/linux/version.h"))]
        if builds:
            # the plain flavour (-amd64) before -cloud-amd64, -rt-amd64
            builds.sort(key=lambda b: (not b.endswith("-" + debarch) or "-cloud-" in b or "-rt-" in b, b))
            return common, builds[0]
    return None


def headers():
    """How bcc will get kernel headers: ("kernel", None) when the running
    kernel provides them (/lib/modules/<release>/build, or CONFIG_IKHEADERS),
    ("generic:<common dir>", (common, build)) for distro headers of another
    version, (None, None) when there are none."""
    release = os.uname().release
    if os.path.isdir(f"/lib/modules/{release}/build") or os.path.exists("/sys/kernel/kheaders.tar.xz"):
        return "kernel", None
    found = _generic_headers()
    if found:
        return f"generic:{found[0]}", found
    return None, None


def header_cflags(found):
    """-I flags for the generated headers, which live in the flavour
    directory while BCC_KERNEL_SOURCE names the -common one."""
    common, build = found
    karch = _ARCH.get(platform.machine(), (platform.machine(),))[0]
    return [f"-I{build}/arch/{karch}/include/generated",
            f"-I{build}/arch/{karch}/include/generated/uapi",
            f"-I{build}/include",                    # generated/autoconf.h
            f"-I{build}/include/generated/uapi"]     # linux/version.h


def import_bcc():
    """bcc's module, or None. Debian's python3-bpfcc (PyPI's `bcc` is another project)."""
    try:
        import bcc
    except Exception:   # ImportError, or OSError when libbcc.so is missing
        return None
    return bcc if hasattr(bcc, "BPF") else None


def bcc_version(bcc):
    with contextlib.suppress(Exception):
        return bcc.__version__
    return None


def tracepoint_exists(category, event):
    """From tracefs when mounted; else from the kernel's symbol table, which
    lists one __traceiter_<event> per tracepoint (and needs no root)."""
    if tracefs_readable():
        return os.path.isdir(os.path.join(tracefs_dir(), "events", category, event))
    return event in _traceiters()


_TRACEITERS = None


def _traceiters():
    global _TRACEITERS
    if _TRACEITERS is None:
        names = set()
        with contextlib.suppress(OSError):
            with open("/proc/kallsyms") as fh:
                for line in fh:
                    i = line.find("__traceiter_")
                    if i >= 0:
                        names.add(line[i + len("__traceiter_"):].split()[0])
        _TRACEITERS = names
    return _TRACEITERS


# ---- one program for all tracers --------------------------------------------

@contextlib.contextmanager
def _stderr_to(lines):
    """Collects what libbcc/clang print on fd 2 (compile errors) instead of
    spraying it over the user's terminal; appends it to `lines`. The file
    stays in /tmp only if LLVM kills the process (it exit()s on some errors)."""
    sys.stderr.flush()
    saved = os.dup(2)
    fd, path = tempfile.mkstemp(prefix="kit-bcc-", suffix=".log")
    os.dup2(fd, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        with os.fdopen(fd, "rb") as fh:
            fh.seek(0)
            lines.extend(fh.read().decode(errors="replace").splitlines())
        os.unlink(path)


def _first_error(lines):
    """The line that says why: clang's first error, or the verifier's verdict
    (the line before its "processed N insns" summary)."""
    for line in lines:
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
    for before, line in zip(lines, lines[1:]):
        if line.startswith("processed ") and " insns" in line:
            return "verifier: " + before.strip()
    return next((line.strip() for line in lines if line.strip()), "")


def prepare():
    """Checks and arranges everything bcc needs; returns (bcc, cflags,
    kernel_source) or raises TraceUnavailable with one line."""
    bcc = import_bcc()
    if bcc is None:
        raise TraceUnavailable("tracing needs bcc: install Debian's python3-bpfcc and make it importable "
                               "here (`make setup` links it into kit's virtualenv)")
    if not privileged():
        raise TraceUnavailable("tracing needs root (or CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)")
    ensure_tracefs()
    kind, found = headers()
    if kind is None:
        raise TraceUnavailable(f"tracing needs kernel headers, and there are none for {os.uname().release} "
                               "nor generic ones in /usr/src: apt-get install linux-headers-amd64")
    if found:
        return bcc, header_cflags(found), found[0]
    return bcc, [], None


def load(text, bcc, cflags, kernel_source):
    """Compiles and loads the program; bcc attaches every TRACEPOINT_PROBE
    as part of loading."""
    messages = []
    saved = os.environ.get("BCC_KERNEL_SOURCE")
    if kernel_source:
        os.environ["BCC_KERNEL_SOURCE"] = kernel_source   # read by libbcc inside BPF()
    try:
        with _stderr_to(messages):
            bpf = bcc.BPF(text=text.encode(), cflags=cflags)
    except Exception as e:
        why = _first_error(messages) or str(e).splitlines()[0]
        raise TraceUnavailable(f"the tracers' BPF program could not be loaded: {why}") from None
    finally:
        if kernel_source:
            if saved is None:
                os.environ.pop("BCC_KERNEL_SOURCE", None)
            else:
                os.environ["BCC_KERNEL_SOURCE"] = saved
    return bpf


# ---- loaded programs kept for the next trace -----------------------------------
# A sweep or a suite traces run after run with the same program text, and
# compiling it with clang is most of a short traced run (0.65 s of a 0.3 s
# job here). So a stopped trace's program, once detached and read, is kept
# loaded in this process, keyed by its exact text and flags; the next trace
# with the same text resets its maps to their initial state and re-attaches
# it instead of compiling. Bounded (KEEP programs, the most recently used),
# freed by release() and at exit. Only a program whose every map can be put
# back to its initial state and whose every function is a (raw) tracepoint
# probe is kept; any other is closed as before.
KEEP = 2
_kept = []                  # [(key, bpf)], the most recently kept last
_kept_lock = threading.Lock()

# bcc's BPF_MAP_TYPE_* (bcc/table.py): arrays start zeroed, keyed maps empty
_ARRAY, _PERCPU_ARRAY = 2, 6
_KEYED = {1, 5, 7, 9, 10, 11}   # hash, percpu hash, stack trace, lru hash, lru percpu hash, lpm trie
_PERCPU = {5, 6, 10}
_PROBES = (b"tracepoint__", b"raw_tracepoint__")      # what bcc attaches as it loads, and we re-attach


def program_key(text, cflags, kernel_source):
    """What makes two programs the same one: the exact text, the compiler
    flags, the headers, and this process (a forked child must never share
    its parent's maps)."""
    return (text, tuple(cflags), kernel_source, os.getpid())


def open_program(text, bcc, cflags, kernel_source):
    """A loaded and attached program for this text: one kept by an earlier
    trace, its maps reset and re-attached, else compiled and loaded.
    Returns (bpf, recursion misses so far: the baseline stop() subtracts)."""
    key = program_key(text, cflags, kernel_source)
    bpf = _take(key)
    if bpf is not None:
        try:
            reset_maps(bpf)
            baseline = recursion_misses(bpf)
            attach(bpf)
            return bpf, baseline
        except BaseException as e:
            try:
                detach(bpf)
            finally:
                close(bpf)
            if not isinstance(e, Exception):
                raise
            # a kept program that cannot be reset or attached again: compiled afresh below
    bpf = load(text, bcc, cflags, kernel_source)
    bpf.kit_key = key
    return bpf, {}


def put_back(bpf):
    """After detach() and reading: keeps the program for the next trace with
    the same text, or closes it when it cannot be reset (see reusable())."""
    key = getattr(bpf, "kit_key", None)
    if key is None or KEEP <= 0 or not reusable(bpf):
        close(bpf)
        return
    with _kept_lock:
        _kept.append((key, bpf))
        evicted = _kept[:-KEEP]
        del _kept[:-KEEP]
    for _key, old in evicted:
        close(old)


def _take(key):
    with _kept_lock:
        for i in range(len(_kept) - 1, -1, -1):
            if _kept[i][0] == key:
                return _kept.pop(i)[1]
    return None


def kept():
    """How many programs are kept loaded in this process now."""
    with _kept_lock:
        return sum(key[3] == os.getpid() for key, _bpf in _kept)


def release():
    """Closes every kept program: nothing of kit's stays loaded in the kernel
    after this (nor after the process exits). Returns how many were closed."""
    with _kept_lock:
        mine = [bpf for key, bpf in _kept if key[3] == os.getpid()]
        _kept.clear()
    for bpf in mine:
        close(bpf)
    return len(mine)


atexit.register(release)


_DECLARED = []      # the libbcc functions bcc's Python leaves undeclared, declared once


def _libbcc():
    from bcc.libbcc import lib
    if not _DECLARED:
        for name, restype, argtypes in (
                ("bpf_num_tables", ctypes.c_size_t, [ctypes.c_void_p]),
                ("bpf_table_name", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_size_t]),
                ("bpf_table_key_size_id", ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_size_t]),
                ("bpf_table_leaf_size_id", ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_size_t]),
                ("bpf_num_functions", ctypes.c_size_t, [ctypes.c_void_p]),
                ("bpf_function_name", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_size_t])):
            getattr(lib, name).restype = restype
            getattr(lib, name).argtypes = argtypes
        _DECLARED.append(True)
    return lib


def maps(bpf):
    """The program's maps: [(name, fd, type, max_entries, key_size,
    value_size as the syscalls see it: per-CPU maps hold one 8-byte-aligned
    value per possible CPU)]."""
    cached = getattr(bpf, "kit_maps", None)
    if cached is not None:
        return cached
    from bcc.utils import get_possible_cpus
    lib = _libbcc()
    cpus = len(get_possible_cpus())
    out = []
    for i in range(lib.bpf_num_tables(bpf.module)):
        name = lib.bpf_table_name(bpf.module, i)
        kind = lib.bpf_table_type_id(bpf.module, i)
        value_size = lib.bpf_table_leaf_size_id(bpf.module, i)
        if kind in _PERCPU:
            value_size = (value_size + 7) // 8 * 8 * cpus
        out.append((name.decode(), lib.bpf_table_fd(bpf.module, name), kind,
                    int(lib.bpf_table_max_entries_id(bpf.module, i)), int(lib.bpf_table_key_size_id(bpf.module, i)),
                    int(value_size)))
    bpf.kit_maps = out
    return out


def _probes(bpf):
    """[(function name, tracepoint, raw)] of the probes bcc attached at load
    (its _trace_autoload), or None when the program has functions of any
    other kind (which detach() would not detach)."""
    lib = _libbcc()
    out = []
    for i in range(lib.bpf_num_functions(bpf.module)):
        fn = lib.bpf_function_name(bpf.module, i)
        if fn.startswith(b"raw_tracepoint__"):
            out.append((fn, fn[len(b"raw_tracepoint__"):], True))
        elif fn.startswith(b"tracepoint__"):
            out.append((fn, fn[len(b"tracepoint__"):].replace(b"__", b":"), False))
        else:
            return None
    return out


def reusable(bpf):
    """Whether the program can be kept: every map is of a kind reset_maps()
    puts back to its initial state (not a ring or perf buffer, a queue, a
    map of maps...), every function a probe attach() re-attaches, and
    nothing is attached now."""
    with contextlib.suppress(Exception):
        return (not bpf.tracepoint_fds and not bpf.raw_tracepoint_fds and _probes(bpf) is not None
                and all(kind in (_ARRAY, _PERCPU_ARRAY) or kind in _KEYED for _n, _fd, kind, *_ in maps(bpf)))
    return False


def reset_maps(bpf):
    """Every map as a fresh load leaves it: arrays (per-CPU ones too)
    zeroed, hashes and stack maps emptied. Only while detached."""
    lib = _libbcc()
    for name, fd, kind, entries, key_size, value_size in maps(bpf):
        if kind in (_ARRAY, _PERCPU_ARRAY):
            _zero_array(lib, fd, entries, value_size)
        elif kind in _KEYED:
            _empty(lib, fd, key_size)
        else:
            raise ValueError(f"map {name}: kind {kind} cannot be reset")


def _zero_array(lib, fd, entries, value_size, chunk_bytes=1 << 20):
    """Zeroes an array map with the kernel's batch update, a chunk of rows a
    call (bounded memory: a row of a histogram array is 15 KiB)."""
    import errno
    import numpy as np
    per = max(1, min(entries, chunk_bytes // max(value_size, 1)))
    keys = (ctypes.c_uint32 * per)()
    index = np.frombuffer(keys, dtype=np.uint32)
    zeros = ctypes.create_string_buffer(per * value_size)
    for start in range(0, entries, per):
        n = min(per, entries - start)
        index[:n] = np.arange(start, start + n, dtype=np.uint32)
        count = ctypes.c_uint32(n)
        if lib.bpf_update_batch(fd, keys, zeros, ctypes.byref(count)) == 0:
            continue
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):      # an older kernel: row by row
            raise OSError(err, f"zeroing a BPF array: {os.strerror(err)}")
        for i in range(n):
            key = ctypes.c_uint32(start + i)
            if lib.bpf_update_elem(fd, ctypes.byref(key), zeros, 0) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"zeroing a BPF array: {os.strerror(err)}")


def _empty(lib, fd, key_size):
    """Deletes every entry of a keyed map: the first key, again and again
    (never a cursor into entries being deleted)."""
    key = ctypes.create_string_buffer(max(key_size, 1))
    while lib.bpf_get_next_key(fd, None, key) == 0:
        if lib.bpf_delete_elem(fd, key) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"emptying a BPF map: {os.strerror(err)}")


def attach(bpf):
    """Attaches a kept program's probes again, as bcc did when it loaded it."""
    for fn, tp, raw in _probes(bpf) or ():
        if raw:
            bpf.attach_raw_tracepoint(tp=tp, fn_name=fn)
        else:
            bpf.attach_tracepoint(tp=tp, fn_name=fn)


ARMED_OFF, ARMED_COUNTING, ARMED_DRAINING = 0, 1, 2     # COMMON_TEXT's


def arm(bpf, state):
    """Sets what every probe does, all at once (kit_armed in COMMON_TEXT):
    count after attach(), drain, then off before detach()."""
    bpf[b"kit_armed"][ctypes.c_uint32(0)] = ctypes.c_uint32(state)


def detach(bpf):
    """Stops the events; the maps stay readable until close(). Closing a
    tracepoint's perf event waits for RCU grace periods (tens of ms), so they
    are closed in parallel rather than one after the other as bcc's
    detach_tracepoint() would: 0.45 s instead of 0.9 s for the 12 of a full
    trace here (the kernel serializes part of the work)."""
    from concurrent.futures import ThreadPoolExecutor
    from bcc.libbcc import lib
    attached = list(bpf.tracepoint_fds.items())
    if attached:
        with ThreadPoolExecutor(len(attached)) as pool:    # ctypes releases the GIL
            list(pool.map(lambda item: lib.bpf_close_perf_event_fd(item[1]), attached))
    for tp, _fd in attached:
        del bpf.tracepoint_fds[tp]
    # raw tracepoints: closing the link detaches at once (bcc's own
    # detach_raw_tracepoint does exactly this, one by one)
    for tp, fd in list(bpf.raw_tracepoint_fds.items()):
        os.close(fd)
        del bpf.raw_tracepoint_fds[tp]


def close(bpf):
    """Closes programs and maps, and drops bcc's atexit hook, which would
    otherwise keep every BPF object of the process alive."""
    import atexit
    try:
        bpf.cleanup()
    finally:
        atexit.unregister(bpf.cleanup)


def recursion_misses(bpf):
    """Per tracepoint: runs the kernel skipped because another BPF program was
    already running on that CPU (e.g. a completion IRQ landing in a tracer)."""
    out = {}
    for fn in bpf.funcs.values():
        name = fn.name.decode() if isinstance(fn.name, bytes) else fn.name
        event = name.rsplit("__", 1)[-1]
        with contextlib.suppress(OSError, ValueError):
            with open(f"/proc/self/fdinfo/{fn.fd}") as fh:
                for line in fh:
                    if line.startswith("recursion_misses:"):
                        out[event] = int(line.split(":", 1)[1])
    return out


def read_lost(bpf):
    table = bpf[b"lost"]
    return {name: int(table[ctypes.c_int(i)].value) for i, name in enumerate(LOST_REASONS)}


def items(table, convert):
    """All entries of a hash map as [(convert(key), convert(value))], read
    with the kernel's batch lookup (one syscall per chunk), else key by key.
    (bcc 0.26's own items_lookup_batch passes one variable as both the batch
    cursor and the count, so it is not used.)"""
    try:
        return _batch_items(table, convert)
    except Exception:
        return [(convert(k), convert(v)) for k, v in table.items()]


def _batch_items(table, convert, chunk=4096):
    import errno
    from bcc.libbcc import lib
    keys, values = (table.Key * chunk)(), (table.Leaf * chunk)()
    cursor_in, cursor_out = ctypes.c_uint32(0), ctypes.c_uint32(0)
    out, first = [], True
    while True:
        count = ctypes.c_uint32(chunk)
        res = lib.bpf_lookup_batch(table.map_fd, None if first else ctypes.byref(cursor_in),
                                   ctypes.byref(cursor_out), ctypes.addressof(keys),
                                   ctypes.addressof(values), ctypes.byref(count))
        err = ctypes.get_errno()
        out.extend((convert(keys[i]), convert(values[i])) for i in range(count.value))
        if res != 0:
            if err == errno.ENOENT:     # the end of the map
                return out
            raise OSError(err, os.strerror(err))
        cursor_in.value, first = cursor_out.value, False


def plain(c):
    """A ctypes key or value as plain Python: int, dict of fields, or list
    (one element per CPU for per-CPU maps)."""
    if isinstance(c, ctypes.Structure):
        return {f: plain(getattr(c, f)) for f, _ in c._fields_ if not f.startswith("pad")}
    if isinstance(c, ctypes.Array):
        if c._type_ is ctypes.c_char:
            return bytes(c).split(b"\0", 1)[0].decode(errors="replace")
        return [plain(x) for x in c]
    if isinstance(c, bytes):
        return c.split(b"\0", 1)[0].decode(errors="replace")
    return int(c.value) if hasattr(c, "value") else c


def percpu_sum(values):
    """A per-CPU value (from plain(): one element per CPU) summed: ints, or
    dicts field by field (array fields element by element)."""
    first = values[0]
    if isinstance(first, dict):
        return {f: percpu_sum([v[f] for v in values]) for f in first}
    if isinstance(first, list):
        return [percpu_sum(column) for column in zip(*values)]
    return sum(values)
