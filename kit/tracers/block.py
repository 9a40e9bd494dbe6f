"""block: what the device did with the requests, per device and op.

block_rq_insert -> block_rq_issue -> block_rq_complete, matched by (dev,
sector) as bcc's biolatency does with tracepoints (their arguments carry no
request pointer). Queue time is insert -> issue (only requests that were
queued: a device with scheduler "none", e.g. loop, mostly issues directly);
latency is issue -> complete. Both go into fio's log-linear histogram in the
kernel, the engines' own layout, so the device's latency and the engine's
clat can be compared bucket for bucket.

Per request the programs do a handful of in-place updates: the request
table is a direct-mapped array (a hash map's update + delete per request cost
more than all the rest on this VM), counters and the size and depth
histograms sit in one per-CPU struct per (device, op), and only the latency
buckets are a (per-CPU) hash. Completions can be missed: a completion in an
IRQ that lands while another BPF program runs on that CPU is skipped by the
kernel (counted in lost.recursion_misses); its request stays "in flight" in
the depth count, and its slot is reused after ORPHAN_NS.

`dev` in the block tracepoints is the whole disk's dev_t in the kernel's
encoding, major << 20 | minor (not userspace's makedev).
"""

import numpy as np

from .. import hist, host
from . import _bpf
from ..text import human_bytes, human_ns

NAME = "block"
EVENTS = ("block_rq_insert", "block_rq_issue", "block_rq_complete", "block_rq_requeue")
REQUIRED = ("block_rq_issue", "block_rq_complete")
WANTS = ", ".join(REQUIRED)
FRAME = "block_latency"         # the frame under the tracer's own name
tracepoints, complete = _bpf.same_named(NAME, EVENTS, REQUIRED)
OPS = ("read", "write", "flush", "discard", "other")
KINDS = ("lat", "queue")
SIZE_SLOTS = 32      # log2 of bytes
DEPTH_EXACT = 64     # depths below are exact, above in powers of two
DEPTH_SLOTS = 128

BPF_TEXT = r"""
#define OP_READ 0
#define OP_WRITE 1
#define OP_FLUSH 2
#define OP_DISCARD 3
#define OP_OTHER 4
#define KIND_LAT 0           /* issue -> complete */
#define KIND_QUEUE 1         /* insert -> issue */
#define SIZE_SLOTS 32        /* slot k: requests of [2^k, 2^(k+1)) bytes */
#define DEPTH_EXACT 64       /* slot d < 64: depth d; then one slot per power of two */
#define DEPTH_SLOTS 128
#define REQUEST_SLOTS 65536  /* power of two, >> requests in flight */
#define ORPHAN_NS 10000000000ull  /* "in flight" for 10 s: its completion was missed */

struct request_slot { u64 sector; u32 dev; u32 pad; u64 insert_ns; u64 issue_ns; };
struct block_key { u32 dev; u32 op; };
struct block_counts {
    u64 requests;        /* issued */
    u64 bytes;           /* issued */
    u64 completed;       /* completions seen */
    u64 unmatched;       /* completions with no issue recorded (issued before the trace, or not timed) */
    u64 lat_sum_ns;      /* over timed completions */
    u64 queued;          /* requests with a queue time */
    u64 queue_sum_ns;
    u64 size_log2[SIZE_SLOTS];
    u64 depth[DEPTH_SLOTS];   /* requests in flight on the device at issue, this one included */
};
struct block_hist_key { u32 dev; u16 bucket; u8 op; u8 kind; };

/* requests between insert/issue and completion, in a direct-mapped table
   indexed by a hash of (dev, sector). Slots are written in place: a hash
   map would need an update and a delete per request, several times the cost
   of everything else here. A slot still held by another request in flight
   leaves the new one untimed (counted as lost). */
BPF_ARRAY(block_requests, struct request_slot, REQUEST_SLOTS);
/* per (device, op): counts, latency sums, size and depth histograms */
BPF_PERCPU_HASH(block_counts, struct block_key, struct block_counts, 64);
/* per (device, op, kind, plat bucket): latency and queue-time histograms */
BPF_PERCPU_HASH(block_hist, struct block_hist_key, u64, 8192);
/* per device: requests issued during the trace and not completed yet */
BPF_HASH(block_inflight, u32, s64, 256);
/* all zeros: the initial block_counts value (too big for the 512-byte BPF stack) */
BPF_PERCPU_ARRAY(block_counts_zero, struct block_counts, 1);

/* rwbs is "[F]<op>[F][A][S][M]": a leading F is a preflush when an op
   letter follows, else the op is a flush itself */
static __always_inline u32 block_op(char c0, char c1)
{
    if (c0 == 'F') {
        if (c1 == 'W') return OP_WRITE;
        if (c1 == 'R') return OP_READ;
        if (c1 == 'D') return OP_DISCARD;
        if (c1 == 'N') return OP_OTHER;
        return OP_FLUSH;
    }
    if (c0 == 'R') return OP_READ;
    if (c0 == 'W') return OP_WRITE;
    if (c0 == 'D') return OP_DISCARD;
    return OP_OTHER;
}

static __always_inline struct request_slot *request_slot(u32 dev, u64 sector)
{
    /* Fibonacci hashing: the top 16 bits of a multiplicative hash */
    u32 i = (u32)(((sector ^ ((u64)dev << 40)) * 0x9E3779B97F4A7C15ull) >> 48);
    return block_requests.lookup(&i);
}

/* Held by a request in flight (and not an orphan of a missed completion)? */
static __always_inline bool slot_busy(struct request_slot *s, u64 now)
{
    u64 since = s->issue_ns ? s->issue_ns : s->insert_ns;
    return since && now - since < ORPHAN_NS;
}

static __always_inline struct block_counts *block_counts_of(u32 dev, u32 op)
{
    struct block_key key = {.dev = dev, .op = op};
    struct block_counts *c = block_counts.lookup(&key);
    if (c)
        return c;
    u32 first = 0;
    struct block_counts *zero = block_counts_zero.lookup(&first);
    if (!zero)
        return 0;
    /* BPF_ANY: if another CPU created it meanwhile, only this CPU's (zero) slot is written */
    if (block_counts.update(&key, zero)) {
        count_lost(LOST_BLOCK_COUNTS_FULL);
        return 0;
    }
    return block_counts.lookup(&key);
}

static __always_inline void block_hist_add(u32 dev, u32 op, u32 kind, u64 ns)
{
    struct block_hist_key key = {.dev = dev, .bucket = plat_idx(ns), .op = op, .kind = kind};
    u64 *n = block_hist.lookup(&key);
    if (n) {
        (*n)++;           /* per-CPU: no atomics needed */
        return;
    }
    u64 one = 1;
    if (block_hist.update(&key, &one))
        count_lost(LOST_BLOCK_HIST_FULL);
}

static __always_inline s64 *block_inflight_of(u32 dev)
{
    s64 *inflight = block_inflight.lookup(&dev);
    if (inflight)
        return inflight;
    s64 zero = 0;
    block_inflight.insert(&dev, &zero);
    inflight = block_inflight.lookup(&dev);
    if (!inflight)
        count_lost(LOST_BLOCK_INFLIGHT_FULL);
    return inflight;
}

TRACEPOINT_PROBE(block, block_rq_insert)
{
    u32 dev = args->dev;
    DEVICE_FILTER
    u64 now = bpf_ktime_get_ns(), sector = args->sector;
    struct request_slot *s = request_slot(dev, sector);
    if (!s)
        return 0;
    if (s->dev != dev || s->sector != sector) {
        if (slot_busy(s, now)) {
            count_lost(LOST_BLOCK_REQUEST_SLOT_BUSY);
            return 0;
        }
        s->dev = dev;
        s->sector = sector;
        s->issue_ns = 0;
    }
    s->insert_ns = now;
    return 0;
}

TRACEPOINT_PROBE(block, block_rq_issue)
{
    u32 dev = args->dev;
    DEVICE_FILTER
    u64 now = bpf_ktime_get_ns(), sector = args->sector, queue_ns = 0;
    u32 op = block_op(args->rwbs[0], args->rwbs[1]);
    bool timed = true, counted = false;
    struct request_slot *s = request_slot(dev, sector);
    if (!s)
        return 0;
    if (s->dev == dev && s->sector == sector) {
        if (s->issue_ns)
            counted = true;      /* an orphan with the same key: already in flight */
        else if (s->insert_ns)
            queue_ns = now - s->insert_ns;
    } else if (slot_busy(s, now)) {
        timed = false;
        count_lost(LOST_BLOCK_REQUEST_SLOT_BUSY);
    } else {
        s->dev = dev;
        s->sector = sector;
        s->insert_ns = 0;
    }
    if (timed)
        s->issue_ns = now;

    /* only timed requests are counted in flight: only they can be matched at completion */
    s64 depth = 1;
    s64 *inflight = block_inflight_of(dev);
    if (inflight)
        depth = (timed && !counted) ? __sync_fetch_and_add(inflight, 1) + 1 : *inflight + 1;

    struct block_counts *c = block_counts_of(dev, op);
    if (c) {
        c->requests++;
        c->bytes += args->bytes;
        c->size_log2[msb64(args->bytes) & (SIZE_SLOTS - 1)]++;
        u64 d = depth > 0 ? (u64)depth : 1;     /* unsigned, so the verifier can bound the index */
        u64 slot = d < DEPTH_EXACT ? d : DEPTH_EXACT - 6 + msb64(d);
        if (slot > DEPTH_SLOTS - 1)
            slot = DEPTH_SLOTS - 1;
        c->depth[slot]++;
        if (queue_ns) {
            c->queued++;
            c->queue_sum_ns += queue_ns;
        }
    }
    if (queue_ns)
        block_hist_add(dev, op, KIND_QUEUE, queue_ns);
    return 0;
}

/* put back on the queue: not in flight until issued again */
TRACEPOINT_PROBE(block, block_rq_requeue)
{
    u32 dev = args->dev;
    DEVICE_FILTER
    struct request_slot *s = request_slot(dev, args->sector);
    if (!s || s->dev != dev || s->sector != args->sector || !s->issue_ns)
        return 0;
    s->issue_ns = 0;
    s64 *inflight = block_inflight.lookup(&dev);
    if (inflight)
        __sync_fetch_and_add(inflight, -1);
    return 0;
}

TRACEPOINT_PROBE(block, block_rq_complete)
{
    u32 dev = args->dev;
    DEVICE_FILTER
    u64 now = bpf_ktime_get_ns(), sector = args->sector;
    u32 op = block_op(args->rwbs[0], args->rwbs[1]);
    struct block_counts *c = block_counts_of(dev, op);
    if (c)
        c->completed++;
    struct request_slot *s = request_slot(dev, sector);
    if (!s || s->dev != dev || s->sector != sector || !s->issue_ns) {
        if (c)
            c->unmatched++;
        return 0;
    }
    u64 lat_ns = now - s->issue_ns;
    s->issue_ns = 0;         /* the slot is free again */
    s->insert_ns = 0;
    s64 *inflight = block_inflight.lookup(&dev);
    if (inflight)
        __sync_fetch_and_add(inflight, -1);
    if (c)
        c->lat_sum_ns += lat_ns;
    block_hist_add(dev, op, KIND_LAT, lat_ns);
    return 0;
}
"""


def kernel_dev(major, minor):
    """userspace (major, minor) -> the dev_t the block tracepoints report."""
    return (major << 20) | minor


def device_name(dev):
    """kernel dev_t -> "loop0" (or "7:0" when sysfs does not know it)."""
    return host.dev_name((dev >> 20, dev & 0xfffff))


def bpf_text(devices, events):
    """The C for this trace: only the tracepoints this kernel has, and the
    device filter compiled in (cheaper than a map lookup per event)."""
    if devices:
        tests = " || ".join(f"dev == {kernel_dev(*host.whole_disk((ma, mi))):#x}" for ma, mi in devices)
        filt = f"if (!({tests})) return 0;"
    else:
        filt = ""
    text = BPF_TEXT.replace("DEVICE_FILTER", filt)
    head, *probes = text.split("TRACEPOINT_PROBE(block, ")
    keep = [p for p in probes if p.split(")", 1)[0] in events]
    return head + "".join("TRACEPOINT_PROBE(block, " + p for p in keep)


def read(bpf, plain, items, percpu_sum):
    """The maps as plain Python, before the program is closed."""
    counts = {}
    for key, value in items(bpf[b"block_counts"], plain):
        counts[(key["dev"], key["op"])] = percpu_sum(value)
    hists = []
    for key, value in items(bpf[b"block_hist"], plain):
        hists.append((key["dev"], key["op"], key["kind"], key["bucket"], percpu_sum(value)))
    devs = {d for d, _ in counts} | {h[0] for h in hists}
    return {"counts": counts, "hists": hists, "names": {d: device_name(d) for d in devs}}


# ---- summary and frames -------------------------------------------------------

def depth_slot_floor(slot):
    """The smallest depth counted in a depth slot."""
    return slot if slot < DEPTH_EXACT else 1 << (slot - DEPTH_EXACT + 6)


_COUNTERS = ("requests", "bytes", "completed", "unmatched", "lat_sum_ns", "queued", "queue_sum_ns")


def _tables(raw):
    """{(dev, op): {counters..., "size": {bytes: n}, "depth": {depth: n},
    "lat": dense plat counts, "queue": dense plat counts}}"""
    out = {}

    def entry(dev, op):
        return out.setdefault((dev, op), {**{k: 0 for k in _COUNTERS}, "size": {}, "depth": {},
                                          "lat": np.zeros(hist.PLAT_NR, dtype=np.int64),
                                          "queue": np.zeros(hist.PLAT_NR, dtype=np.int64)})
    for (dev, op), c in raw["counts"].items():
        e = entry(dev, op)
        for k in _COUNTERS:
            e[k] += int(c[k])
        for k, n in enumerate(c["size_log2"]):
            if n:
                e["size"][1 << k] = e["size"].get(1 << k, 0) + int(n)
        for slot, n in enumerate(c["depth"]):
            if n:
                d = depth_slot_floor(slot)
                e["depth"][d] = e["depth"].get(d, 0) + int(n)
    for dev, op, kind, bucket, n in raw["hists"]:
        entry(dev, op)[KINDS[kind]][min(bucket, hist.PLAT_NR - 1)] += n
    return out


def _merge(entries):
    out = {k: sum(e[k] for e in entries) for k in _COUNTERS + ("lat", "queue")}
    for k in ("size", "depth"):
        out[k] = {}
        for e in entries:
            for v, n in e[k].items():
                out[k][v] = out[k].get(v, 0) + n
    return out


def _lat_entry(counts, total_ns):
    n = int(counts.sum())
    if not n:
        return {"N": 0, "mean": 0.0}
    return {"N": n, "mean": total_ns / n, "percentile": hist.percentiles(counts, n),
            "bins": hist.to_bins(counts)}


def _op_entry(e):
    return {
        "requests": e["requests"], "bytes": e["bytes"], "completed": e["completed"],
        "unmatched_completions": e["unmatched"],
        "lat_ns": _lat_entry(e["lat"], e["lat_sum_ns"]),
        "queue_ns": _lat_entry(e["queue"], e["queue_sum_ns"]),
        "sizes": {str(k): v for k, v in sorted(e["size"].items())},   # "4096": requests of 4096..8191 bytes
        "depth": {str(k): v for k, v in sorted(e["depth"].items())},  # exact below 64, then powers of two
    }


def summary(raw, ctx):
    tables = _tables(raw)
    devices = {}
    for (dev, op), e in sorted(tables.items()):
        name = raw["names"].get(dev, str(dev))
        d = devices.setdefault(name, {"dev": f"{dev >> 20}:{dev & 0xfffff}", "ops": {}})
        d["ops"][OPS[op]] = _op_entry(e)
    out = {"devices": devices}
    # reads and writes of all traced devices together: what the job's device did
    for op in ("read", "write"):
        parts = [e for (dev, o), e in tables.items() if OPS[o] == op]
        if parts:
            out[op] = _op_entry(_merge(parts))
    missed = ctx.lost["recursion_misses"].get("block_rq_complete", 0)
    if missed:
        # a missed completion leaves its request "in flight" for good
        out["depth_unreliable"] = (f"{missed} completions were missed (another BPF program was running on that "
                                   "CPU): the in-flight depth drifts upward from there")
    return out


def text(s):
    """The summary in lines: per direction, what the device did."""
    lines = []
    for op in ("read", "write"):
        e = s.get(op)
        if not e:
            continue
        lat, queue = e.get("lat_ns") or {}, e.get("queue_ns") or {}
        depth = e.get("depth") or {}
        n = sum(depth.values())
        mean_depth = sum(int(k) * v for k, v in depth.items()) / n if n else 0
        share = (s.get("device_share") or {}).get(op)
        depth_text = "n/a (completions missed)" if s.get("depth_unreliable") else f"{mean_depth:.1f}"
        lines.append(f"block {op}: {e['requests']:,} requests, {human_bytes(e['bytes'])}, device latency "
                     f"mean {human_ns(lat.get('mean'))} p99 {human_ns((lat.get('percentile') or {}).get('99.000000'))}"
                     f", queued {human_ns(queue.get('mean'))}, depth {depth_text}"
                     + (f", {share:.0%} of the engine's clat" if share else ""))
    return lines


def frames(raw, ctx):
    import pandas as pd
    ops_rows, lat_rows, size_rows, depth_rows = [], [], [], []
    for (dev, op), e in sorted(_tables(raw).items()):
        name, opname = raw["names"].get(dev, str(dev)), OPS[op]
        ops_rows.append({"device": name, "op": opname, "requests": e["requests"], "bytes": e["bytes"],
                         "completed": e["completed"], "unmatched_completions": e["unmatched"],
                         "lat_mean_ns": e["lat_sum_ns"] / max(int(e["lat"].sum()), 1),
                         "queue_mean_ns": e["queue_sum_ns"] / max(int(e["queue"].sum()), 1)})
        for kind in KINDS:
            for i in np.nonzero(e[kind])[0]:
                lat_rows.append({"device": name, "op": opname, "kind": kind,
                                 "bucket_ns": int(hist.BUCKET_VALUES[i]), "count": int(e[kind][i])})
        size_rows += [{"device": name, "op": opname, "bytes": v, "count": n} for v, n in sorted(e["size"].items())]
        depth_rows += [{"device": name, "op": opname, "depth": v, "count": n} for v, n in sorted(e["depth"].items())]
    return {
        "block_ops": pd.DataFrame(ops_rows, columns=["device", "op", "requests", "bytes", "completed",
                                                     "unmatched_completions", "lat_mean_ns", "queue_mean_ns"]),
        "block_latency": pd.DataFrame(lat_rows, columns=["device", "op", "kind", "bucket_ns", "count"]),
        "block_sizes": pd.DataFrame(size_rows, columns=["device", "op", "bytes", "count"]),
        "block_depth": pd.DataFrame(depth_rows, columns=["device", "op", "depth", "count"]),
    }
