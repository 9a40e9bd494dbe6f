"""block: what the device did with the requests, per device, op and process.

Raw tracepoints block_rq_insert -> block_rq_issue -> block_rq_complete, whose
argument is the struct request itself: a completion is matched to its request
by that pointer, so flushes (which carry no sector) are timed, the extra
completions of preflush/FUA writes match nothing instead of a stranger's slot,
and a partial completion (nr_bytes short of the request) is not its end.
Fields are read at this kernel's offsets, from its BTF (kit.tracers._btf).
Raw tracepoints also copy no trace record and guard recursion per program:
a completion interrupting another tracer's program is no longer dropped.

Queue time is insert -> issue (only requests that were queued: a device with
scheduler "none", e.g. loop, mostly issues directly); latency is issue ->
complete. Both go into fio's log-linear histogram in the kernel, the engines'
own layout, so the device's latency and the engine's clat compare bucket for
bucket.

Attribution: block_bio_queue runs in the submitter's context, so each bio's
process is remembered (a direct-mapped table by bio pointer) and a request
belongs to the process of its first bio; a request without one (a flush the
block layer made) belongs to no process. This process is the one that
started the trace (kit runs its jobs in it).

(Attributing a request to whoever inserts or issues it instead would save
an event per I/O, but names kblockd for the requests it dispatches later.)
Issues are counted per process; completions and histograms per "this
process", "others", "no process" and "issued before the trace".

Per request the programs do a handful of in-place updates, and the
completion path only on arrays: the request table and the bios' are
direct-mapped by pointer, and each device has a slot (compiled in when the
devices are named), which indexes its completions, histograms and depth. A
hash map lookup cost more than all the rest on this VM; the one left is the
per-CPU (device, op, process) struct of issue counts, sizes and depths of
other processes' requests (the tracing process's own are in an array by
device slot and op).

`dev` is the whole disk's dev_t in the kernel's encoding, major << 20 |
minor (not userspace's makedev).
"""
import os
import re
import time

import numpy as np

from .. import hist, host
from . import _bpf, _btf as btf
from ..text import human_bytes, human_ns

NAME = "block"
EVENTS = ("block_rq_insert", "block_rq_issue", "block_rq_complete", "block_rq_requeue", "block_rq_merge",
          "block_bio_queue")
REQUIRED = ("block_rq_issue", "block_rq_complete")
WANTS = ", ".join(REQUIRED)
FRAME = "block_latency"         # the frame under the tracer's own name
tracepoints, complete = _bpf.same_named(NAME, EVENTS, REQUIRED)
OPS = ("read", "write", "flush", "discard", "other")
KINDS = ("lat", "queue")
SIZE_SLOTS = 32      # log2 of bytes
DEPTH_EXACT = 64     # depths below are exact, above in powers of two
DEPTH_SLOTS = 128
MACHINE_DEVICE_SLOTS = 16   # devices a machine-wide trace follows at least; more are counted as lost
SPARE_DEVICE_SLOTS = 8      # beyond the disks there are when it starts: for those added during it
MAX_DEVICE_SLOTS = 1024     # 300 KiB of histograms each
CLASSES = ("own", "other", "none", "before")   # whose request a completion ended (CLASS_* in the C)
# this kernel's layout of what the programs read
# the struct request fields rq_read() takes in one read, with their sizes;
# the span they cover is read whole (at most HEAD_MAX bytes: it is on the
# programs' 512-byte stack)
HEAD_FIELDS = (("q", 8), ("cmd_flags", 4), ("__data_len", 4), ("__sector", 8), ("bio", 8))
HEAD_MAX = 128
FIELDS = tuple(("request", name) for name, _size in HEAD_FIELDS) + \
    (("request_queue", "disk"), ("gendisk", "major"), ("gendisk", "first_minor"))
ENUMS = ("REQ_OP_READ", "REQ_OP_WRITE", "REQ_OP_FLUSH", "REQ_OP_DISCARD")

BPF_TEXT = r"""
#define OP_READ 0
#define OP_WRITE 1
#define OP_FLUSH 2
#define OP_DISCARD 3
#define OP_OTHER 4
#define OPS 5
#define KIND_LAT 0           /* issue -> complete */
#define KIND_QUEUE 1         /* insert -> issue */
#define KINDS 2
/* whose request a completion ends: the tracing process's, another's, the
   block layer's own (no bio), or one issued before the trace (not matched) */
#define CLASS_OWN 0
#define CLASS_OTHER 1
#define CLASS_NONE 2
#define CLASS_BEFORE 3
#define CLASSES 4
#define SIZE_SLOTS 32        /* slot k: requests of [2^k, 2^(k+1)) bytes */
#define DEPTH_EXACT 64       /* slot d < 64: depth d; then one slot per power of two */
#define DEPTH_SLOTS 128
#define REQUEST_SLOTS 65536  /* power of two, >> requests in flight */
#define BIO_SLOTS 65536      /* power of two, >> bios between queueing and their request */
#define ORPHAN_NS 10000000000ull  /* "in flight" for 10 s: its completion was missed */
#define REQ_OP_MASK 0xff     /* REQ_OP_BITS is 8 */
#define UNATTRIBUTED 0xFFFFFFFFu
/* DEVICE_SLOTS (defined before this text): the devices traced, or the most
   a machine-wide trace follows */

/* left: the bytes not completed yet (a partial completion takes some) */
struct request_slot { u64 rq; u64 insert_ns; u64 issue_ns; u32 slot; u32 op; u32 tgid; u32 bytes;
                      u32 left; u32 pad; u64 sector; u64 queue_ns; char comm[16]; };
/* one request, for biosnoop's view (BLOCK_RECORDS: the last N are kept) */
struct block_record { u64 done_ns; u64 sector; u64 queue_ns; u64 lat_ns; u32 dev; u32 op; u32 tgid; u32 bytes;
                      u32 cpu; u32 pad; char comm[16]; };
struct bio_slot {
    u64 bio; u32 tgid; u32 pad;
#ifdef BLOCK_RECORDS
    char comm[16];    /* the issuing thread's, beside its tgid (a request is issued by a kworker too) */
#endif
};
struct block_key { u32 dev; u32 op; u32 tgid; u32 pad; };
/* issued requests, per (device, op, process) */
struct block_counts {
    u64 requests;
    u64 bytes;
    u64 queued;          /* requests with a queue time */
    u64 queue_sum_ns;
    u64 size_log2[SIZE_SLOTS];
    u64 depth[DEPTH_SLOTS];   /* requests in flight on the device at issue, this one included */
};
/* completions, per (device slot, op, class) */
struct block_done { u64 completed; u64 unmatched; u64 lat_sum_ns; };

BPF_ARRAY(block_requests, struct request_slot, REQUEST_SLOTS);
BPF_ARRAY(block_bios, struct bio_slot, BIO_SLOTS);
BPF_PERCPU_HASH(block_counts, struct block_key, struct block_counts, 4096);
/* the same for the tracing process, per (device slot, op): its requests are
   nearly all of a traced run's, and an array lookup costs a fraction of a
   hash lookup on this VM */
BPF_PERCPU_ARRAY(block_counts_own, struct block_counts, DEVICE_SLOTS * OPS);
/* Everything a completion touches is an array indexed by the device's slot:
   a hash lookup costs more than the rest of the program on this VM */
BPF_PERCPU_ARRAY(block_done, struct block_done, DEVICE_SLOTS * OPS * CLASSES);
/* latency and queue-time histograms, per (device slot, op, kind, this
   process or not); shared rows (per CPU they would take MBs per CPU) */
BPF_ARRAY(block_hist, struct plat_row, DEVICE_SLOTS * OPS * KINDS * 2);
/* per device slot: requests issued during the trace and not completed yet */
BPF_ARRAY(block_inflight, s64, DEVICE_SLOTS);
/* per device slot: its dev_t (0: unused) */
BPF_ARRAY(block_slot_dev, u32, DEVICE_SLOTS);
#ifndef DEVICE_SLOT_OF
/* a machine-wide trace: slots are handed out as devices show up */
BPF_HASH(block_dev_slots, u32, u32, DEVICE_SLOTS);
BPF_ARRAY(block_slots_used, u64, 1);     /* u64: this LLVM's BPF fetch-add returns only 64-bit values */
#endif
#ifdef BLOCK_RECORDS
BPF_ARRAY(block_records, struct block_record, BLOCK_RECORDS);
BPF_ARRAY(block_records_next, u64, 1);
#endif
/* request_queue -> its disk's dev_t, as last read: saves the two reads of
   rq_dev() (the larger part of an insert's or issue's cost) while the
   queue stays in the slot. check mixes both, so an entry another CPU is
   rewriting reads as a miss, never as another queue's device. */
#define QUEUE_DEV_SLOTS 64
struct queue_dev { u64 q; u32 dev; u32 check; };
BPF_ARRAY(block_queue_devs, struct queue_dev, QUEUE_DEV_SLOTS);
/* all zeros: the initial block_counts value (too big for the 512-byte BPF stack) */
BPF_PERCPU_ARRAY(block_counts_zero, struct block_counts, 1);

static __always_inline u32 block_op(u32 flags)
{
    u32 op = flags & REQ_OP_MASK;
    if (op == REQ_OP_READ) return OP_READ;
    if (op == REQ_OP_WRITE) return OP_WRITE;
    if (op == REQ_OP_FLUSH) return OP_FLUSH;
    if (op == REQ_OP_DISCARD) return OP_DISCARD;
    return OP_OTHER;
}

/* The request fields the programs use. Each bpf_probe_read_kernel() is a
   helper call with its own fault handling, the largest part of a program's
   cost here (about 40 ns each on this VM): the fields sit together at the
   head of struct request, so one read of that span takes them all. */
struct rq_fields {
    u64 q, bio, sector;
    u32 flags, bytes;
};

static __always_inline void rq_read(void *rq, struct rq_fields *f)
{
    u64 head[RQ_HEAD_WORDS];
    if (bpf_probe_read_kernel(head, sizeof(head), rq + RQ_HEAD_START)) {
        __builtin_memset(f, 0, sizeof(*f));
        return;
    }
    __builtin_memcpy(&f->q, (u8 *)head + OFF_REQUEST_Q - RQ_HEAD_START, 8);
    __builtin_memcpy(&f->bio, (u8 *)head + OFF_REQUEST_BIO - RQ_HEAD_START, 8);
    __builtin_memcpy(&f->sector, (u8 *)head + OFF_REQUEST_SECTOR - RQ_HEAD_START, 8);
    __builtin_memcpy(&f->flags, (u8 *)head + OFF_REQUEST_CMD_FLAGS - RQ_HEAD_START, 4);
    __builtin_memcpy(&f->bytes, (u8 *)head + OFF_REQUEST_DATA_LEN - RQ_HEAD_START, 4);
}

static __always_inline u32 queue_check(u64 q, u32 dev)
{
    return (u32)(((q ^ dev) * 0x9E3779B97F4A7C15ull) >> 32) | 1;
}

/* the request's disk as the tracepoints' dev_t (block_queue_devs, else
   gendisk's major and first_minor: adjacent, one read) */
static __always_inline u32 rq_dev(const struct rq_fields *f)
{
    void *disk = 0;
    int dev[2] = {};
    if (!f->q)
        return 0;
    u32 i = (u32)(f->q >> 6) & (QUEUE_DEV_SLOTS - 1);
    struct queue_dev *cached = block_queue_devs.lookup(&i);
    if (cached && cached->q == f->q) {
        u32 known = cached->dev;
        if (cached->check == queue_check(f->q, known))
            return known;
    }
    bpf_probe_read_kernel(&disk, sizeof(disk), (void *)f->q + OFF_REQUEST_QUEUE_DISK);
    if (!disk)
        return 0;
#if OFF_GENDISK_FIRST_MINOR == OFF_GENDISK_MAJOR + 4
    bpf_probe_read_kernel(dev, sizeof(dev), disk + OFF_GENDISK_MAJOR);
#else
    bpf_probe_read_kernel(&dev[0], sizeof(dev[0]), disk + OFF_GENDISK_MAJOR);
    bpf_probe_read_kernel(&dev[1], sizeof(dev[1]), disk + OFF_GENDISK_FIRST_MINOR);
#endif
    u32 found = ((u32)dev[0] << 20) | (u32)dev[1];
    if (cached && found) {
        cached->q = f->q;
        cached->dev = found;
        cached->check = queue_check(f->q, found);
    }
    return found;
}

/* The device's slot, or DEVICE_SLOTS when it is not traced (or a
   machine-wide trace has no slot left). */
static __always_inline u32 device_slot(u32 dev)
{
    u32 slot = DEVICE_SLOTS;
#ifdef DEVICE_SLOT_OF
    DEVICE_SLOT_OF          /* if (dev == ...) slot = 0; ...: compiled in, no lookup */
#else
    u32 *known = block_dev_slots.lookup(&dev);
    if (known) {
        slot = *known;
    } else if (dev) {
        u32 zero = 0;
        u64 *used = block_slots_used.lookup(&zero);
        if (!used)
            return DEVICE_SLOTS;
        u64 taken = __sync_fetch_and_add(used, 1);
        if (taken >= DEVICE_SLOTS) {
            count_lost(LOST_BLOCK_DEVICES_FULL);
            return DEVICE_SLOTS;
        }
        slot = (u32)taken;
        if (block_dev_slots.insert(&dev, &slot)) {     /* another CPU was first: its slot stands */
            known = block_dev_slots.lookup(&dev);
            return known ? *known : DEVICE_SLOTS;
        }
    }
#endif
    if (slot < DEVICE_SLOTS) {
        u32 *d = block_slot_dev.lookup(&slot);
        if (d && *d != dev)
            *d = dev;
    }
    return slot;
}

static __always_inline u32 slot_index(u64 ptr)
{
    /* Fibonacci hashing: the top 16 bits of a multiplicative hash */
    return (u32)((ptr * 0x9E3779B97F4A7C15ull) >> 48);
}

static __always_inline u32 current_tgid(void)
{
    return bpf_get_current_pid_tgid() >> 32;
}

/* the process of the request's first bio; a request without one (the
   flushes the block layer makes for every writer waiting on it, issued by
   kblockd) belongs to no process */
static __always_inline u32 rq_owner(const struct rq_fields *f)
{
    if (!f->bio)
        return UNATTRIBUTED;
    u32 i = slot_index(f->bio);
    struct bio_slot *b = block_bios.lookup(&i);
    if (b && b->bio == f->bio)
        return b->tgid;
    return current_tgid();
}

static __always_inline u32 owner_class(u32 tgid)
{
    if (tgid == OWN_TGID) return CLASS_OWN;
    if (tgid == UNATTRIBUTED) return CLASS_NONE;
    return CLASS_OTHER;
}

/* Held by a request in flight (and not an orphan of a missed completion)? */
static __always_inline bool slot_busy(struct request_slot *s, u64 now)
{
    u64 since = s->issue_ns ? s->issue_ns : s->insert_ns;
    return s->rq && since && now - since < ORPHAN_NS;
}

static __always_inline struct block_counts *block_counts_of(u32 dev, u32 op, u32 tgid)
{
    struct block_key key = {.dev = dev, .op = op, .tgid = tgid};
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

static __always_inline struct block_done *block_done_of(u32 slot, u32 op, u32 class)
{
    u32 i = (slot * OPS + op) * CLASSES + class;
    return block_done.lookup(&i);
}

static __always_inline void block_hist_add(u32 slot, u32 op, u32 kind, u64 ns, u32 tgid)
{
    u32 i = ((slot * OPS + op) * KINDS + kind) * 2 + (tgid == OWN_TGID);
    struct plat_row *row = block_hist.lookup(&i);
    u32 bucket = plat_idx(ns);
    if (row && bucket < PLAT_NR)
        __sync_fetch_and_add(&row->n[bucket], 1);
}

KIT_PROBE(block_bio_queue)
{
    u64 bio = ctx->args[0];
    u32 i = slot_index(bio);
    struct bio_slot *b = block_bios.lookup(&i);
    if (b) {
        b->bio = bio;
        b->tgid = current_tgid();
#ifdef BLOCK_RECORDS
        bpf_get_current_comm(&b->comm, sizeof(b->comm));
#endif
    }
    return 0;
}

KIT_PROBE(block_rq_insert)
{
    void *rq = (void *)ctx->args[0];
    struct rq_fields f;
    rq_read(rq, &f);
    u32 slot = device_slot(rq_dev(&f));
    if (slot >= DEVICE_SLOTS)
        return 0;
    u64 now = bpf_ktime_get_ns();
    u32 i = slot_index((u64)rq);
    struct request_slot *s = block_requests.lookup(&i);
    if (!s)
        return 0;
    if (s->rq != (u64)rq) {
        if (slot_busy(s, now)) {
            count_lost(LOST_BLOCK_REQUEST_SLOT_BUSY);
            return 0;
        }
        s->rq = (u64)rq;
        s->issue_ns = 0;
        s->tgid = rq_owner(&f);
    }
    s->insert_ns = now;
    return 0;
}

KIT_PROBE(block_rq_issue)
{
    void *rq = (void *)ctx->args[0];
    struct rq_fields f;
    rq_read(rq, &f);
    u32 dev = rq_dev(&f);
    u32 slot = device_slot(dev);
    if (slot >= DEVICE_SLOTS)
        return 0;
    u64 now = bpf_ktime_get_ns(), queue_ns = 0;
    u32 op = block_op(f.flags), bytes = f.bytes;
    u32 tgid;
    bool timed = true, counted = false;
    u32 i = slot_index((u64)rq);
    struct request_slot *s = block_requests.lookup(&i);
    if (!s)
        return 0;
    if (s->rq == (u64)rq) {
        if (s->issue_ns)
            counted = true;      /* issued again without a completion: already in flight */
        else if (s->insert_ns)
            queue_ns = now - s->insert_ns;
        tgid = s->tgid;
    } else if (slot_busy(s, now)) {
        timed = false;
        tgid = rq_owner(&f);
        count_lost(LOST_BLOCK_REQUEST_SLOT_BUSY);
    } else {
        tgid = rq_owner(&f);
        s->rq = (u64)rq;
        s->insert_ns = 0;
        s->tgid = tgid;
    }
    if (timed) {
        s->issue_ns = now;
        s->slot = slot;
        s->op = op;
        s->left = bytes;
#ifdef BLOCK_RECORDS
        s->bytes = bytes;
        s->queue_ns = queue_ns;
        s->sector = f.sector;
        /* the comm of the process the request is counted to: its first
           bio's, as its tgid; the current task's only when that is whose
           tgid it has (rq_owner's fallback); none for the block layer's own */
        u32 bi = slot_index(f.bio);
        struct bio_slot *b = f.bio ? block_bios.lookup(&bi) : 0;
        if (b && b->bio == f.bio && b->tgid == tgid)
            __builtin_memcpy(s->comm, b->comm, sizeof(s->comm));
        else if (tgid == current_tgid())
            bpf_get_current_comm(&s->comm, sizeof(s->comm));
        else
            __builtin_memset(s->comm, 0, sizeof(s->comm));
#endif
    }

    /* issued again without a completion (a driver's retry): the same
       request, already counted and in flight; timed from its last issue */
    if (counted)
        return 0;
    /* only timed requests are counted in flight: only they can be matched at completion */
    s64 depth = 1;
    s64 *inflight = block_inflight.lookup(&slot);
    if (inflight)
        depth = timed ? __sync_fetch_and_add(inflight, 1) + 1 : *inflight + 1;

    struct block_counts *c;
    if (tgid == OWN_TGID) {
        u32 k = slot * OPS + op;
        c = block_counts_own.lookup(&k);
    } else {
        c = block_counts_of(dev, op, tgid);
    }
    if (c) {
        c->requests++;
        c->bytes += bytes;
        if (bytes)
            c->size_log2[msb64(bytes) & (SIZE_SLOTS - 1)]++;
        u64 d = depth > 0 ? (u64)depth : 1;     /* unsigned, so the verifier can bound the index */
        u64 k = d < DEPTH_EXACT ? d : DEPTH_EXACT - 6 + msb64(d);
        if (k > DEPTH_SLOTS - 1)
            k = DEPTH_SLOTS - 1;
        c->depth[k]++;
        if (queue_ns) {
            c->queued++;
            c->queue_sum_ns += queue_ns;
        }
    }
    if (queue_ns)
        block_hist_add(slot, op, KIND_QUEUE, queue_ns, tgid);
    return 0;
}

/* A queued request merged into its neighbour is freed unissued, and its
   struct request is soon another request, maybe another process's: its
   slot must not hand that one this one's owner and insert time. */
KIT_PROBE(block_rq_merge)
{
    void *rq = (void *)ctx->args[0];
    u32 i = slot_index((u64)rq);
    struct request_slot *s = block_requests.lookup(&i);
    if (s && s->rq == (u64)rq && !s->issue_ns) {
        s->rq = 0;
        s->insert_ns = 0;
    }
    return 0;
}

/* put back on the queue: not in flight until issued again */
KIT_DRAIN_PROBE(block_rq_requeue)
{
    void *rq = (void *)ctx->args[0];
    u32 i = slot_index((u64)rq);
    struct request_slot *s = block_requests.lookup(&i);
    if (!s || s->rq != (u64)rq || !s->issue_ns)
        return 0;
    u32 slot = s->slot;
    s->issue_ns = 0;
    s64 *inflight = block_inflight.lookup(&slot);
    if (inflight)
        __sync_fetch_and_add(inflight, -1);
    return 0;
}

KIT_DRAIN_PROBE(block_rq_complete)
{
    void *rq = (void *)ctx->args[0];
    u32 nr_bytes = (u32)ctx->args[2];
    u64 now = bpf_ktime_get_ns();
    u32 i = slot_index((u64)rq);
    struct request_slot *s = block_requests.lookup(&i);
    if (!s)
        return 0;
    if (s->rq != (u64)rq || !s->issue_ns) {
        if (armed_state() != ARMED_COUNTING)
            return 0;            /* draining: only the trace's own requests end now */
        struct rq_fields f;
        rq_read(rq, &f);
        u32 slot = device_slot(rq_dev(&f));
        if (slot >= DEVICE_SLOTS)
            return 0;
        /* a request issued before the trace, or one not timed */
        struct block_done *d = block_done_of(slot, block_op(f.flags), CLASS_BEFORE);
        if (d) {
            d->completed++;
            d->unmatched++;
        }
        return 0;
    }
    /* a partial completion (the request goes on with the rest) is not its end */
    if (nr_bytes < s->left) {
        s->left -= nr_bytes;
        return 0;
    }
    u32 slot = s->slot, op = s->op, tgid = s->tgid;
    u64 lat_ns = now - s->issue_ns;
#ifdef BLOCK_RECORDS
    u32 zero = 0;
    u64 *next = block_records_next.lookup(&zero);
    if (next) {
        u32 k = (u32)(__sync_fetch_and_add(next, 1) % BLOCK_RECORDS);
        struct block_record *rec = block_records.lookup(&k);
        u32 *dev = block_slot_dev.lookup(&slot);
        if (rec) {
            rec->done_ns = now;
            rec->sector = s->sector;
            rec->queue_ns = s->queue_ns;
            rec->lat_ns = lat_ns;
            rec->dev = dev ? *dev : 0;
            rec->op = op;
            rec->tgid = tgid;
            rec->bytes = s->bytes;
            rec->cpu = bpf_get_smp_processor_id();
            __builtin_memcpy(rec->comm, s->comm, sizeof(rec->comm));
        }
    }
#endif
    s->rq = 0;               /* the slot is free again */
    s->issue_ns = 0;
    s->insert_ns = 0;
    if (slot >= DEVICE_SLOTS || op >= OPS)
        return 0;
    s64 *inflight = block_inflight.lookup(&slot);
    if (inflight)
        __sync_fetch_and_add(inflight, -1);
    struct block_done *d = block_done_of(slot, op, owner_class(tgid));
    if (d) {
        d->completed++;
        d->lat_sum_ns += lat_ns;
    }
    block_hist_add(slot, op, KIND_LAT, lat_ns, tgid);
    return 0;
}
"""


def kernel_dev(major, minor):
    """userspace (major, minor) -> the dev_t the block tracepoints report."""
    return (major << 20) | minor


def device_name(dev):
    """kernel dev_t -> "loop0" (or "7:0" when sysfs does not know it)."""
    return host.dev_name((dev >> 20, dev & 0xfffff))


def traced_devices(devices):
    """The whole disks of the devices asked for, in kernel encoding, once each
    (their order is their slots'); None: every device."""
    if not devices:
        return None
    out = []
    for ma, mi in devices:
        dev = kernel_dev(*host.whole_disk((ma, mi)))
        if dev not in out:
            out.append(dev)
    return out


def head_defines():
    """Where rq_read()'s one read of struct request starts and how many
    8-byte words it takes, from this kernel's layout."""
    b = btf.vmlinux()
    fields = [(b.offset("request", name), size) for name, size in HEAD_FIELDS]
    start = min(offset for offset, _ in fields) // 8 * 8
    end = -(-max(offset + size for offset, size in fields) // 8) * 8
    if end - start > HEAD_MAX:
        raise _bpf.TraceUnavailable(f"this kernel's struct request spreads the fields the block tracer reads over "
                               f"{end - start} bytes (kit reads at most {HEAD_MAX} at once)")
    return f"#define RQ_HEAD_START {start}\n#define RQ_HEAD_WORDS {(end - start) // 8}\n"


def machine_device_slots():
    """How many devices a machine-wide trace follows: every disk there is
    (a 24-disk server's figures are the machine's, not its first 16's), and
    room for some more."""
    try:
        disks = len(os.listdir("/sys/block"))
    except OSError:
        disks = 0
    return min(max(MACHINE_DEVICE_SLOTS, disks + SPARE_DEVICE_SLOTS), MAX_DEVICE_SLOTS)


def bpf_text(devices, events, options):
    """The C for this trace: only the tracepoints this kernel has, the
    devices' slots compiled in (cheaper than a map lookup per event), and
    the per-request records when asked for."""
    traced = traced_devices(devices)
    if traced:
        chain = " else ".join(f"if (dev == {dev:#x}) slot = {i};" for i, dev in enumerate(traced))
        slots = f"#define DEVICE_SLOTS {len(traced)}\n#define DEVICE_SLOT_OF {chain}\n"
    else:
        slots = f"#define DEVICE_SLOTS {machine_device_slots()}\n"
    records = int(options.get("records") or 0)
    text = btf.defines(FIELDS, ENUMS) + head_defines() + f"#define OWN_TGID {os.getpid()}\n" + \
        slots + (f"#define BLOCK_RECORDS {records}\n" if records else "") + BPF_TEXT
    head, *probes = re.split(r"(?=KIT_(?:DRAIN_)?PROBE\()", text)
    return head + "".join(p for p in probes if p.split("(", 1)[1].split(")", 1)[0] in events)


UNATTRIBUTED = 0xFFFFFFFF       # a request without a bio: the block layer's own flushes


def snapshot():
    """Every disk's /sys/block stat and requests in flight, at the trace's
    start and stop: the kernel's own counts, to check the trace against."""
    out = {}
    for dev in host.block_devices():
        stat = host.block_stat(dev)
        if stat is not None:
            out[kernel_dev(*dev)] = {**stat, "in_flight_now": host.block_in_flight(dev)}
    return out


def drain(bpf, timeout=0.5):
    """While the trace drains: waits (up to timeout seconds) until every
    request it saw issued has completed, so another process's requests in
    flight at the stop end in the trace too, and any left in flight after
    that were missed (summary's depth_unreliable)."""
    inflight = bpf[b"block_inflight"]
    deadline = time.monotonic() + timeout
    while any(v.value > 0 for v in inflight.values()) and time.monotonic() < deadline:
        time.sleep(0.001)


_STAT_OPS = {"read": "read_ios", "write": "write_ios", "discard": "discard_ios", "flush": "flush_ios"}


OTHERS = 0xFFFFFFFE     # completions of other processes' requests: counted together, not per process


def read(bpf, plain, items, percpu_sum):
    """The maps as plain Python, before the program is closed: counts per
    (dev, op, tgid) -- issues per process, completions per class (this
    process, OTHERS, UNATTRIBUTED, 0: issued before the trace)."""
    import numpy as np
    slot_dev = bpf[b"block_slot_dev"]
    devs = {slot: int(slot_dev[slot_dev.Key(slot)].value) for slot in range(len(slot_dev))}
    devs = {slot: dev for slot, dev in devs.items() if dev}
    counts = {}

    def entry(key):
        return counts.setdefault(key, {**{k: 0 for k in _COUNTERS}, "size_log2": [0] * SIZE_SLOTS,
                                       "depth": [0] * DEPTH_SLOTS})
    for key, value in items(bpf[b"block_counts"], plain):
        entry((key["dev"], key["op"], key["tgid"])).update(percpu_sum(value))
    own_counts = bpf[b"block_counts_own"]
    for slot, dev in devs.items():
        for op in range(len(OPS)):
            value = percpu_sum(plain(own_counts[own_counts.Key(slot * len(OPS) + op)]))
            if value["requests"]:
                entry((dev, op, os.getpid())).update(value)
    class_tgid = (os.getpid(), OTHERS, UNATTRIBUTED, 0)
    done, cpus = bpf[b"block_done"], {}
    for slot, dev in devs.items():
        for op in range(len(OPS)):
            for cls, tgid in enumerate(class_tgid):
                per_cpu = plain(done[done.Key((slot * len(OPS) + op) * len(CLASSES) + cls)])
                total = percpu_sum(per_cpu)
                if not total["completed"]:
                    continue
                e = entry((dev, op, tgid))
                for k in ("completed", "unmatched", "lat_sum_ns"):
                    e[k] += int(total[k])
                # the counts are per CPU: where completions ran (the device's interrupts)
                by_cpu = cpus.setdefault(dev, [0] * len(per_cpu))
                for i, v in enumerate(per_cpu):
                    by_cpu[i] += int(v["completed"])
    hists, table = [], bpf[b"block_hist"]
    for slot, dev in devs.items():
        for op in range(len(OPS)):
            for kind in range(len(KINDS)):
                for own in (0, 1):
                    row = table[table.Key(((slot * len(OPS) + op) * len(KINDS) + kind) * 2 + own)]
                    n = np.ctypeslib.as_array(row.n)
                    hists += [(dev, op, kind, int(b), own, int(n[b])) for b in np.nonzero(n)[0]]
    records = _read_records(bpf, plain, items)
    inflight = bpf[b"block_inflight"]
    inflight = {dev: int(inflight[inflight.Key(slot)].value) for slot, dev in devs.items()}
    names = {d for d, _o, _t in counts} | set(devs.values()) | {r["dev"] for r in records}
    return {"counts": counts, "hists": hists, "cpus": cpus, "names": {d: device_name(d) for d in names},
            "own": os.getpid(), "records": records, "inflight": inflight}


def _read_records(bpf, plain, items):
    """The kept per-request records, oldest first (a ring: the last N)."""
    try:
        table, nxt = bpf[b"block_records"], bpf[b"block_records_next"]
    except KeyError:
        return []
    n = int(nxt[nxt.Key(0)].value)
    size = len(table)
    if n < size:            # only the slots written (a big, mostly empty ring costs nothing to read)
        return [plain(table[table.Key(i)]) for i in range(n)]
    rows = dict(items(table, plain))
    return [rows[(n + i) % size] for i in range(size) if (n + i) % size in rows]


# ---- summary and frames -------------------------------------------------------

def depth_slot_floor(slot):
    """The smallest depth counted in a depth slot."""
    return slot if slot < DEPTH_EXACT else 1 << (slot - DEPTH_EXACT + 6)


_COUNTERS = ("requests", "bytes", "completed", "unmatched", "lat_sum_ns", "queued", "queue_sum_ns")


def _own(raw, ctx):
    """The process whose I/O is "this run's": the one asked about, when it is
    the one that traced (the histograms are split by that one), else none
    (a machine-wide trace: everything counts)."""
    return ctx.pid if ctx.pid == raw["own"] else None


def _tables(raw, who=None, own=None):
    """{(dev, op): {counters..., "size": {bytes: n}, "depth": {depth: n},
    "lat": dense plat counts, "queue": dense plat counts}}; who: "own"
    (process `own`, the one that traced), "other", or None (all)."""
    out = {}

    def entry(dev, op):
        return out.setdefault((dev, op), {**{k: 0 for k in _COUNTERS}, "size": {}, "depth": {},
                                          "lat": np.zeros(hist.PLAT_NR, dtype=np.int64),
                                          "queue": np.zeros(hist.PLAT_NR, dtype=np.int64)})
    for (dev, op, tgid), c in raw["counts"].items():
        if who and (tgid == own) != (who == "own"):
            continue
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
    for dev, op, kind, bucket, is_own, n in raw["hists"]:
        if who and bool(is_own) != (who == "own"):
            continue
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
    return {"N": n, "mean": total_ns / n, "sum_ns": int(total_ns), "percentile": hist.percentiles(counts, n),
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


def _checked_against_stat(raw, dev, ops):
    """For the reader: completions the trace matched to their requests on a
    device beside the kernel's count over about the same time (None without
    both snapshots). Not a test of lost events (the in-flight count at the
    end is): unmatched completions mix requests issued before the trace,
    data-less preflush writes the kernel completes without issuing (counted
    in its write_ios), and the second completion of FUA writes (not counted
    again), and the windows differ by the attach time."""
    before, after = (raw.get("snapshots") or (None, None))
    a, b = (before or {}).get(dev), (after or {}).get(dev)
    if not a or not b:
        return None
    stat = sum(b[f] - a[f] for f in _STAT_OPS.values())
    ops = [e for op, e in ops.items() if op in _STAT_OPS]
    unmatched = sum(e["unmatched_completions"] for e in ops)
    return {"seen": sum(e["completed"] for e in ops) - unmatched, "unmatched": unmatched, "stat": stat}


def summary(raw, ctx):
    own = _own(raw, ctx)
    everyone = _tables(raw)
    devices, numbers = {}, {}
    for (dev, op), e in sorted(everyone.items()):
        name = raw["names"].get(dev, str(dev))
        numbers[name] = dev
        d = devices.setdefault(name, {"dev": f"{dev >> 20}:{dev & 0xfffff}", "ops": {}})
        d["ops"][OPS[op]] = _op_entry(e)
    out = {"devices": devices}
    unreliable = []
    for name, d in devices.items():
        dev = numbers[name]
        check = _checked_against_stat(raw, dev, d["ops"])
        if check:
            d["completions"] = check
        # a missed completion leaves its request "in flight" in the trace for
        # good: at the end, the trace's count against the kernel's own
        after = ((raw.get("snapshots") or (None, None))[1] or {}).get(dev) or {}
        ours, theirs = raw.get("inflight", {}).get(dev), after.get("in_flight_now")
        if ours is not None and theirs is not None:
            d["in_flight_at_end"] = {"trace": ours, "kernel": theirs}
            if ours > theirs:
                unreliable.append(f"{name} ({ours - theirs} requests still in flight for the trace, "
                                  f"{theirs} for the kernel)")
        cpus = raw.get("cpus", {}).get(dev)
        if cpus:
            d["completions_by_cpu"] = {str(i): n for i, n in enumerate(cpus) if n}
    # reads and writes of the traced devices: what the job's own I/O did there
    # (the process asked about), else everything
    mine = _tables(raw, "own", own) if own else everyone
    for op in ("read", "write", "flush", "discard"):
        parts = [e for (dev, o), e in mine.items() if OPS[o] == op]
        if parts and sum(p["requests"] + p["completed"] for p in parts):
            out[op] = _op_entry(_merge(parts))
    if own:
        unattributed = {OPS[op]: {"requests": int(c["requests"]), "completed": int(c["completed"]),
                                  "lat_mean_ns": c["lat_sum_ns"] / c["completed"] if c["completed"] else 0.0}
                        for (dev, op, tgid), c in raw["counts"].items() if tgid == UNATTRIBUTED and c["requests"]}
        if unattributed:
            out["unattributed"] = {**unattributed, "note": "requests without a bio, which the block layer makes "
                                   "itself (flushes on behalf of every writer waiting for one, fsync's among "
                                   "them): no process can be named"}
        others = {}
        for (dev, op, tgid), c in raw["counts"].items():
            if tgid in (own, 0, UNATTRIBUTED, OTHERS):     # 0: completions of requests issued before the trace
                continue
            if c["requests"]:
                o = others.setdefault(tgid, {"requests": 0, "bytes": 0})
                o["requests"] += int(c["requests"])
                o["bytes"] += int(c["bytes"])
        if others:
            out["other_io"] = {
                "requests": sum(o["requests"] for o in others.values()),
                "bytes": sum(o["bytes"] for o in others.values()),
                # tgid 0: completions of requests issued before the trace began
                "processes": {str(t): {**o, "comm": _comm(t)} for t, o in sorted(others.items())},
                "note": "other processes did I/O on the traced devices during the run: their requests are "
                        "not in read/write, but they shared the device (its depth and latency)"}
    if raw.get("records"):
        out["requests"] = _records_columns(raw)
    if unreliable:
        # a missed completion leaves its request "in flight" for good
        out["depth_unreliable"] = ("completions were missed on " + ", ".join(unreliable)
                                   + ": the in-flight depth drifts upward from there")
    return out


def _records_columns(raw):
    """biosnoop's view, column by column (compact in JSON): when each
    request completed (ns since the first kept one), by whom, where, and its
    queue and device latency."""
    recs = raw["records"]
    t0 = min(r["done_ns"] for r in recs)
    return {"kept": len(recs),
            # no pid for a request no process issued (the block layer's own flushes)
            "t_ns": [r["done_ns"] - t0 for r in recs],
            "pid": [None if r["tgid"] == UNATTRIBUTED else r["tgid"] for r in recs],
            "comm": [r["comm"] for r in recs], "device": [raw["names"].get(r["dev"], str(r["dev"])) for r in recs],
            "op": [OPS[r["op"]] for r in recs], "sector": [r["sector"] for r in recs],
            "bytes": [r["bytes"] for r in recs], "queue_ns": [r["queue_ns"] for r in recs],
            "lat_ns": [r["lat_ns"] for r in recs], "cpu": [r["cpu"] for r in recs]}


def _comm(tgid):
    if not tgid:
        return "(before the trace)"
    return host.read_text(f"/proc/{tgid}/comm") or "(exited)"


def _log2_lines(lat):
    """biolatency's view of the latency bins: powers of two in µs with bars."""
    bins = {int(k): v for k, v in (lat.get("bins") or {}).items()}
    if not bins:
        return []
    slots = {}
    for ns, n in bins.items():
        us = max(ns // 1000, 0)
        k = us.bit_length()         # slot k: [2^(k-1), 2^k) µs; 0: under 1 µs
        slots[k] = slots.get(k, 0) + n
    top = max(slots.values())
    lines = ["     usecs               : count    distribution"]
    for k in range(min(slots), max(slots) + 1):
        lo, hi = (0, 1) if k == 0 else (1 << (k - 1), (1 << k) - 1)
        n = slots.get(k, 0)
        lines.append(f"  {lo:>8} -> {hi:<8} : {n:<8} |{'*' * round(40 * n / top):<40}|")
    return lines


def _share_text(share, reached):
    """The device's share of the engine's latency, as the summary line ends."""
    if not reached:
        return ""
    counts = f"{reached['requests']:,} requests for {reached['ios']:,} I/Os"
    if reached.get("split"):
        return f", no share of the engine's latency: I/Os were split into smaller requests ({counts}), " \
               "in flight side by side"
    if share is None:
        return ""
    beyond = "; above 100 %: requests no I/O waited for, such as readahead" if share > 1 else ""
    return f", {share:.0%} of the engine's latency ({counts}{beyond})"


def text(s, histograms=True):
    """The summary in lines: per direction, what the device did (with
    histograms=True, biolatency's log2 view of each latency)."""
    lines = []
    for op in ("read", "write", "flush", "discard"):
        e = s.get(op)
        if not e:
            continue
        lat, queue = e.get("lat_ns") or {}, e.get("queue_ns") or {}
        depth = e.get("depth") or {}
        n = sum(depth.values())
        mean_depth = sum(int(k) * v for k, v in depth.items()) / n if n else 0
        share = (s.get("device_share") or {}).get(op)
        depth_text = "n/a (completions missed)" if s.get("depth_unreliable") else f"{mean_depth:.1f}"
        size = f", {human_bytes(e['bytes'])}" if e["bytes"] else ""
        queued = human_ns(queue.get("mean")) if queue.get("N") else "n/a (issued directly)"
        lines.append(f"block {op}: {e['requests']:,} requests{size}, device latency "
                     f"mean {human_ns(lat.get('mean'))} p99 {human_ns((lat.get('percentile') or {}).get('99.000000'))}"
                     f", queued {queued}, depth {depth_text}"
                     + _share_text(share, (s.get("device_requests") or {}).get(op)))
        if histograms:
            lines += _log2_lines(lat)
    for op, e in (s.get("unattributed") or {}).items():
        if isinstance(e, dict) and e.get("requests"):
            lines.append(f"block {op} by the block layer itself (no process): {e['requests']:,} requests, "
                         f"device latency mean {human_ns(e['lat_mean_ns'])}")
    other = s.get("other_io")
    if other:
        lines.append(f"block: other processes issued {other['requests']:,} requests "
                     f"({human_bytes(other['bytes'])}) to the same devices meanwhile")
    return lines


def frames(raw, ctx):
    import pandas as pd
    own = _own(raw, ctx)
    ops_rows, lat_rows, size_rows, depth_rows, cpu_rows = [], [], [], [], []
    for who in (("own", "other") if own else (None,)):
        for (dev, op), e in sorted(_tables(raw, who, own).items()):
            name, opname = raw["names"].get(dev, str(dev)), OPS[op]
            process = {"own": "this run", "other": "others", None: "all"}[who]
            if not (e["requests"] or e["completed"]):
                continue
            ops_rows.append({"device": name, "op": opname, "process": process, "requests": e["requests"],
                             "bytes": e["bytes"], "completed": e["completed"],
                             "unmatched_completions": e["unmatched"],
                             "lat_mean_ns": e["lat_sum_ns"] / max(int(e["lat"].sum()), 1),
                             "queue_mean_ns": e["queue_sum_ns"] / max(int(e["queue"].sum()), 1)})
            for kind in KINDS:
                for i in np.nonzero(e[kind])[0]:
                    lat_rows.append({"device": name, "op": opname, "process": process, "kind": kind,
                                     "bucket_ns": int(hist.BUCKET_VALUES[i]), "count": int(e[kind][i])})
            size_rows += [{"device": name, "op": opname, "process": process, "bytes": v, "count": n}
                          for v, n in sorted(e["size"].items())]
            depth_rows += [{"device": name, "op": opname, "process": process, "depth": v, "count": n}
                           for v, n in sorted(e["depth"].items())]
    for dev, per_cpu in raw.get("cpus", {}).items():
        cpu_rows += [{"device": raw["names"].get(dev, str(dev)), "cpu": i, "completions": n}
                     for i, n in enumerate(per_cpu) if n]
    return {
        "block_ops": pd.DataFrame(ops_rows, columns=["device", "op", "process", "requests", "bytes", "completed",
                                                     "unmatched_completions", "lat_mean_ns", "queue_mean_ns"]),
        "block_latency": pd.DataFrame(lat_rows, columns=["device", "op", "process", "kind", "bucket_ns", "count"]),
        "block_sizes": pd.DataFrame(size_rows, columns=["device", "op", "process", "bytes", "count"]),
        "block_depth": pd.DataFrame(depth_rows, columns=["device", "op", "process", "depth", "count"]),
        "block_cpus": pd.DataFrame(cpu_rows, columns=["device", "cpu", "completions"]),
        "block_requests": pd.DataFrame({k: v for k, v in _records_columns(raw).items() if k != "kept"}
                                       if raw.get("records") else {},
                                       columns=["t_ns", "pid", "comm", "device", "op", "sector", "bytes",
                                                "queue_ns", "lat_ns", "cpu"]),
    }
