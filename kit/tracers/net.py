"""net: where the kernel spent the time of a network run: NET_RX and NET_TX
softirq time and runs per CPU, whose context NET_RX ran in, and packets
through the stack, machine-wide and per watched network namespace.

Raw tracepoints, all aggregated in one per-CPU struct (no atomics, no hash
lookups on the packet path):
- irq:softirq_entry / softirq_exit (vec 3 NET_RX, 2 NET_TX): time and runs
  per CPU. A softirq does not nest in another on its CPU, so one start time
  per CPU and vector is enough; one that began before the trace is not
  counted. NET_RX time is also split by the task it ran in: the idle task
  (on the way out of an interrupt), ksoftirqd, a watched process (on veth a
  sender's own send runs its peer's receive, in the sender's thread, when it
  re-enables bottom halves), or any other.
- net:netif_receive_skb (every skb entering the stack, veth's and lo's
  included; napi_gro_receive_entry does not fire on veth without XDP) and
  net:net_dev_xmit (per skb a driver took, rc NETDEV_TX_OK only; its
  device and length are the tracepoint's own arguments, the skb may be gone).
- xdp:xdp_redirect where the kernel has it: frames an XDP program sent
  elsewhere, e.g. to DPDK's AF_XDP socket, past the stack.
Bytes received are the skb's length past the link-layer header (the driver
has pulled it); bytes sent include it, as the interfaces count both.

Packets are counted machine-wide and, for the processes the caller names
while the trace runs (watch(): pid -> label; a network run's server and
load generator), in each one's network namespace: the skb's device's
namespace inode against the watched ones. An ifindex names a device only
within its namespace, and kit's veth ends have the same names in every run,
so the namespace is what tells one run's packets from another's. A process
in the tracing process's own namespace (network=loopback) shares it with
everything else on the machine: its counts are the namespace's, and say so.

What the trace is checked against: /proc/softirqs (NET_RX and NET_TX runs
per CPU) at its start and stop, and each watched namespace's interface
counters (/proc/<pid>/net/dev, the kernel's per-device statistics) when it
was watched and at the stop. An AF_XDP socket's frames are counted by the
interfaces but never pass netif_receive_skb or net_dev_xmit: the difference
is the traffic that bypassed the stack.

Field offsets (sk_buff's dev and len, net_device's nd_net, the namespace's
inode number) are this kernel's, from its BTF.
"""
import os
import time

from . import _btf as btf
from ._bpf import TraceUnavailable

NAME = "net"
# event -> its tracepoint category
EVENTS = {"softirq_entry": "irq", "softirq_exit": "irq", "netif_receive_skb": "net", "net_dev_xmit": "net",
          "xdp_redirect": "xdp"}
REQUIRED = ("softirq_entry", "softirq_exit", "netif_receive_skb", "net_dev_xmit")
WANTS = ", ".join(f"{EVENTS[e]}:{e}" for e in REQUIRED)
FRAME = "net_cpus"              # the frame under the tracer's own name
VECTORS = ("NET_TX", "NET_RX")  # softirq vectors 2 and 3, in this order
SLOTS = 4                       # processes a trace can be told about
CONTEXTS = ("idle", "ksoftirqd", "other")   # then one per watched process
COUNTS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes")   # /proc/net/dev's, in the told map
# this kernel's layout of what the programs read
FIELDS = (("sk_buff", "dev"), ("sk_buff", "len"), ("net_device", "nd_net"), ("net", "ns"), ("ns_common", "inum"))

BPF_TEXT = r"""
#define NET_TX_VEC 2
#define NET_RX_VEC 3
#define CTX_IDLE 0
#define CTX_KSOFTIRQD 1
#define CTX_OTHER 2
#define CTX_SLOT0 3
#define NET_CTXS (CTX_SLOT0 + NET_SLOTS)

struct net_cpu {
    u64 since[2];                   /* when NET_TX, NET_RX began here; 0: not in one */
    u64 softirq_ns[2];              /* time in NET_TX, NET_RX */
    u64 softirq_n[2];               /* runs of them */
    u64 ctx_ns[NET_CTXS];           /* NET_RX time by the task it ran in (CTX_*) */
    u64 ctx_n[NET_CTXS];
    u64 rx_packets, rx_bytes, tx_packets, tx_bytes, xdp_redirect;  /* machine-wide */
    u64 ns_rx_packets[NET_SLOTS];   /* in each watched process's namespace */
    u64 ns_rx_bytes[NET_SLOTS];
    u64 ns_tx_packets[NET_SLOTS];
    u64 ns_tx_bytes[NET_SLOTS];
    u64 ns_xdp_redirect[NET_SLOTS];
};
/* the watched processes (tgid) and their namespaces' inodes (0: not counted
   apart, e.g. a namespace an earlier slot has already) */
struct net_watch {
    u32 tgid[NET_SLOTS];
    u32 netns[NET_SLOTS];
    u32 any_netns;
};
/* what the caller said of each slot, for Python alone (no program reads
   it): the label and its namespace's interface counters when watched */
struct net_told {
    char label[16];
    u32 pid;
    u32 witness;                    /* whose /proc/<pid>/net/dev shows its namespace to the end */
    u32 netns;
    s32 shares;                     /* the slot whose namespace it shares, or -1 */
    u32 machine;                    /* the tracing process's own namespace */
    u64 before[4];                  /* rx_packets rx_bytes tx_packets tx_bytes */
};

/* per CPU: everything the programs count (no atomics needed) */
BPF_PERCPU_ARRAY(net_cpu, struct net_cpu, 1);
BPF_ARRAY(net_watch, struct net_watch, 1);
BPF_ARRAY(net_told, struct net_told, NET_SLOTS);

static __always_inline u32 net_context(void)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, zero = 0;
    if (!(u32)id)
        return CTX_IDLE;
    struct net_watch *w = net_watch.lookup(&zero);
    if (w) {
#pragma unroll
        for (u32 i = 0; i < NET_SLOTS; i++)
            if (w->tgid[i] && w->tgid[i] == tgid)
                return CTX_SLOT0 + i;
    }
    char comm[16] = {};
    bpf_get_current_comm(&comm, sizeof(comm));
    if (comm[0] == 'k' && comm[1] == 's' && comm[2] == 'o' && comm[3] == 'f' && comm[4] == 't')
        return CTX_KSOFTIRQD;
    return CTX_OTHER;
}

/* the watched slot of a device's namespace, or -1 */
static __always_inline int net_slot(struct net_watch *w, void *dev)
{
    void *net = 0;
    u32 inum = 0;
    if (!w || !w->any_netns || !dev)
        return -1;
    /* possible_net_t is the struct net pointer alone */
    bpf_probe_read_kernel(&net, sizeof(net), dev + OFF_NET_DEVICE_ND_NET);
    if (!net)
        return -1;
    bpf_probe_read_kernel(&inum, sizeof(inum), net + OFF_NET_NS + OFF_NS_COMMON_INUM);
#pragma unroll
    for (int i = 0; i < NET_SLOTS; i++)
        if (w->netns[i] && w->netns[i] == inum)
            return i;
    return -1;
}

KIT_PROBE(softirq_entry)
{
    u32 vec = (u32)ctx->args[0], zero = 0;
    if (vec != NET_TX_VEC && vec != NET_RX_VEC)
        return 0;
    struct net_cpu *c = net_cpu.lookup(&zero);
    if (c)
        c->since[vec == NET_RX_VEC] = bpf_ktime_get_ns();
    return 0;
}

KIT_PROBE(softirq_exit)
{
    u32 vec = (u32)ctx->args[0], zero = 0;
    if (vec != NET_TX_VEC && vec != NET_RX_VEC)
        return 0;
    struct net_cpu *c = net_cpu.lookup(&zero);
    if (!c)
        return 0;
    u32 v = vec == NET_RX_VEC;
    u64 since = c->since[v];
    if (!since)
        return 0;               /* it began before the trace */
    c->since[v] = 0;
    u64 ns = bpf_ktime_get_ns() - since;
    c->softirq_ns[v] += ns;
    c->softirq_n[v]++;
    if (v) {
        u32 who = net_context();
        if (who < NET_CTXS) {
            c->ctx_ns[who] += ns;
            c->ctx_n[who]++;
        }
    }
    return 0;
}

KIT_PROBE(netif_receive_skb)
{
    void *skb = (void *)ctx->args[0];
    u32 zero = 0, len = 0;
    struct net_cpu *c = net_cpu.lookup(&zero);
    if (!c || !skb)
        return 0;
    bpf_probe_read_kernel(&len, sizeof(len), skb + OFF_SK_BUFF_LEN);
    c->rx_packets++;
    c->rx_bytes += len;
    struct net_watch *w = net_watch.lookup(&zero);
    if (w && w->any_netns) {
        void *dev = 0;
        bpf_probe_read_kernel(&dev, sizeof(dev), skb + OFF_SK_BUFF_DEV);
        int s = net_slot(w, dev);
        if (s >= 0 && s < NET_SLOTS) {
            c->ns_rx_packets[s]++;
            c->ns_rx_bytes[s] += len;
        }
    }
    return 0;
}

/* net_dev_xmit(skb, rc, dev, skb_len) */
KIT_PROBE(net_dev_xmit)
{
    u32 zero = 0, len = (u32)ctx->args[3];
    if ((int)ctx->args[1] != 0)
        return 0;               /* not NETDEV_TX_OK: the driver did not take it (yet) */
    struct net_cpu *c = net_cpu.lookup(&zero);
    if (!c)
        return 0;
    c->tx_packets++;
    c->tx_bytes += len;
    int s = net_slot(net_watch.lookup(&zero), (void *)ctx->args[2]);
    if (s >= 0 && s < NET_SLOTS) {
        c->ns_tx_packets[s]++;
        c->ns_tx_bytes[s] += len;
    }
    return 0;
}
"""

# xdp_redirect(dev, xdp_prog, tgt, err, map_type, map_id, index): fires once
# per frame redirected (errors go to xdp_redirect_err)
XDP_TEXT = r"""
KIT_PROBE(xdp_redirect)
{
    u32 zero = 0;
    struct net_cpu *c = net_cpu.lookup(&zero);
    if (!c)
        return 0;
    c->xdp_redirect++;
    int s = net_slot(net_watch.lookup(&zero), (void *)ctx->args[0]);
    if (s >= 0 && s < NET_SLOTS)
        c->ns_xdp_redirect[s]++;
    return 0;
}
"""


def tracepoints(exists):
    return {e: e for e, category in EVENTS.items() if exists(category, e)}


def complete(found):
    return all(e in found for e in REQUIRED)


def _offsets():
    b = btf.vmlinux()
    lines = []
    for struct_name, field in FIELDS:
        try:
            lines.append(f"#define OFF_{struct_name.upper()}_{field.upper()} {b.offset(struct_name, field)}")
        except KeyError:
            raise TraceUnavailable(f"trace=net: this kernel's BTF has no struct {struct_name}.{field}: its "
                                   "network stack is not one kit knows") from None
    return "\n".join(lines) + "\n"


def bpf_text(devices, events, options):
    text = f"#define NET_SLOTS {SLOTS}\n" + _offsets() + BPF_TEXT
    if "xdp_redirect" in events:
        text += XDP_TEXT
    return text


# ---- what the caller says while the trace runs ---------------------------

def _netns(pid):
    """The inode of a process's network namespace (net:[4026531840])."""
    link = os.readlink(f"/proc/{pid}/ns/net")
    return int(link[link.index("[") + 1:link.index("]")])


def interface_counts(pid):
    """A namespace's interfaces summed, as the kernel counts them
    (/proc/<pid>/net/dev, seen from a process inside it): COUNTS, or None
    when the process is gone."""
    try:
        with open(f"/proc/{pid}/net/dev") as fh:
            lines = fh.read().splitlines()[2:]
    except OSError:
        return None
    total = dict.fromkeys(COUNTS, 0)
    for line in lines:
        f = line.split(":", 1)[1].split()
        total["rx_bytes"] += int(f[0])
        total["rx_packets"] += int(f[1])
        total["tx_bytes"] += int(f[8])
        total["tx_packets"] += int(f[9])
    return total


def watch(bpf, processes, holders=None):
    """Names processes while the trace runs ({pid: label}; a label is cut to
    15 bytes): NET_RX time in their threads is theirs, and packets in their
    network namespaces are counted apart, from now on. Their namespaces'
    interface counters are read now and when the trace stops, to check it
    against; holders: {pid: a process in the same namespace that outlives
    the trace} (the process may end first), else the process itself. A
    process named again keeps its slot and takes the new label."""
    watch_table, told = bpf[b"net_watch"], bpf[b"net_told"]
    w = watch_table[watch_table.Key(0)]
    own = _netns("self")
    for pid, label in processes.items():
        pid = int(pid)
        slots = [i for i in range(SLOTS) if w.tgid[i] in (0, pid)]
        if not slots:
            raise ValueError(f"a trace follows at most {SLOTS} processes")
        slot = next((i for i in slots if w.tgid[i] == pid), slots[0])
        ns = _netns(pid)
        shares = next((i for i in range(SLOTS) if i != slot and w.tgid[i] and told[told.Key(i)].netns == ns), -1)
        row = told.Leaf()
        row.label, row.pid, row.netns, row.shares, row.machine = label.encode()[:15], pid, ns, shares, ns == own
        row.witness = int((holders or {}).get(pid) or (os.getpid() if ns == own else pid))
        counts = interface_counts(row.witness) or dict.fromkeys(COUNTS, 0)
        for i, name in enumerate(COUNTS):
            row.before[i] = counts[name]
        told[told.Key(slot)] = row
        w.tgid[slot] = pid
        w.netns[slot] = ns if shares < 0 else 0
        w.any_netns = 1
    watch_table[watch_table.Key(0)] = w


# ---- reading and saying ------------------------------------------------------

def snapshot():
    """The kernel's own NET_TX and NET_RX runs per CPU (/proc/softirqs), at
    the trace's start and stop."""
    out = {"t_ns": time.monotonic_ns()}
    try:
        with open("/proc/softirqs") as fh:
            for line in fh:
                name, _, counts = line.partition(":")
                if name.strip() in VECTORS:
                    out[name.strip()] = [int(n) for n in counts.split()]
    except OSError:
        pass
    return out


def read(bpf, plain, items, percpu_sum):
    w = plain(bpf[b"net_watch"][0])
    told = bpf[b"net_told"]
    rows = {i: plain(told[told.Key(i)]) for i in range(SLOTS) if w["tgid"][i]}
    # first: packets still flowing after the programs detached count for the
    # interfaces alone (the processes are alive until the trace stops)
    afters = {i: interface_counts(row["witness"]) for i, row in rows.items()}
    cpus = [plain(c) for c in bpf[b"net_cpu"][0]]
    for c in cpus:
        c.pop("since", None)
    slots = []
    for i, row in rows.items():
        after = afters[i]
        before = dict(zip(COUNTS, row["before"]))
        slots.append({"slot": i, "label": row["label"], "pid": row["pid"], "netns": row["netns"],
                      "shares": row["shares"], "machine": bool(row["machine"]),
                      "interfaces": ({k: after[k] - before[k] for k in COUNTS} if after else None)})
    return {"cpus": cpus, "slots": slots}


def _ended(raw):
    """The kernel's NET_TX/NET_RX runs per CPU over the trace, and its length."""
    before, after = raw.get("snapshots") or (None, None)
    if not before or not after:
        return {}, None
    kernel = {v: [b - a for a, b in zip(before.get(v, []), after.get(v, []))] for v in VECTORS}
    return kernel, after["t_ns"] - before["t_ns"]


def _share(part, whole):
    return part / whole if whole else 0.0


def summary(raw, ctx):
    cpus = raw["cpus"]
    kernel, duration = _ended(raw)
    n_cpus = max(len(cpus), max((len(v) for v in kernel.values()), default=0))
    per_cpu = []
    for i in range(n_cpus):
        c = cpus[i] if i < len(cpus) else None
        row = {"cpu": i}
        for v, name in enumerate(VECTORS):
            row[f"{name.lower()}_ns"] = int(c["softirq_ns"][v]) if c else 0
            row[f"{name.lower()}_runs"] = int(c["softirq_n"][v]) if c else 0
            if name in kernel and i < len(kernel[name]):
                row[f"{name.lower()}_runs_kernel"] = kernel[name][i]
        for k in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "xdp_redirect"):
            row[k] = int(c[k]) if c else 0
        if any(v for k, v in row.items() if k != "cpu"):
            per_cpu.append(row)
    total = lambda key: int(sum(r[key] for r in per_cpu))      # noqa: E731
    softirq = {}
    for name in VECTORS:
        key = name.lower()
        softirq[name] = {"ns": total(f"{key}_ns"), "runs": total(f"{key}_runs"),
                         "cpu_share": _share(total(f"{key}_ns"), duration) if duration else None}
        if name in kernel:
            softirq[name]["runs_kernel"] = int(sum(kernel[name]))
    labels = {s["slot"]: s["label"] for s in raw["slots"]}
    contexts = {}
    for i, name in enumerate(list(CONTEXTS) + [labels.get(s) for s in range(SLOTS)]):
        ns = int(sum(c["ctx_ns"][i] for c in cpus))
        runs = int(sum(c["ctx_n"][i] for c in cpus))
        if name is None or (not runs and i >= len(CONTEXTS)):
            continue
        contexts[name] = {"ns": ns, "runs": runs, "share": _share(ns, softirq["NET_RX"]["ns"])}
    namespaces = []
    for s in raw["slots"]:
        i = s["slot"]
        entry = {"label": s["label"], "pid": s["pid"], "netns": s["netns"],
                 "scope": ("the machine's own namespace: everything else on it counts too" if s["machine"]
                           else "its own namespace")}
        if s["shares"] >= 0:
            entry["shares_with"] = labels.get(s["shares"])
        else:
            for key, field in (("rx_packets", "ns_rx_packets"), ("rx_bytes", "ns_rx_bytes"),
                               ("tx_packets", "ns_tx_packets"), ("tx_bytes", "ns_tx_bytes"),
                               ("xdp_redirect", "ns_xdp_redirect")):
                entry[key] = int(sum(c[field][i] for c in cpus))
            entry["interfaces"] = s["interfaces"]
        namespaces.append(entry)
    return {
        "duration_ns": duration,
        "tracepoints": dict(ctx.events),
        "softirq": softirq,
        "net_rx_contexts": contexts,
        "packets": {k: total(k) for k in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "xdp_redirect")},
        "cpus": per_cpu,
        "namespaces": namespaces,
    }


def _ms(ns):
    return f"{ns / 1e6:,.1f} ms"


def text(s):
    rx, tx = s["softirq"]["NET_RX"], s["softirq"]["NET_TX"]
    by_cpu = ", ".join(f"cpu{r['cpu']} {_ms(r['net_rx_ns'])}" for r in s["cpus"] if r["net_rx_ns"])
    share = f" ({rx['cpu_share']:.2f} of a CPU)" if rx.get("cpu_share") is not None else ""
    lines = [f"net: NET_RX softirq {_ms(rx['ns'])}{share} in {rx['runs']:,} runs"
             + (f" ({by_cpu})" if by_cpu else "") + f"; NET_TX {_ms(tx['ns'])} in {tx['runs']:,} runs"]
    where = ", ".join(f"{name} {100 * c['share']:.0f} %" for name, c in
                      sorted(s["net_rx_contexts"].items(), key=lambda kv: -kv[1]["ns"]) if c["runs"])
    if where:
        lines.append(f"net: NET_RX ran in: {where}")
    p = s["packets"]
    lines.append(f"net: packets through the stack, machine-wide: received {p['rx_packets']:,}, sent "
                 f"{p['tx_packets']:,}" + (f", XDP-redirected {p['xdp_redirect']:,}" if p["xdp_redirect"] else ""))
    for n in s["namespaces"]:
        if n.get("shares_with"):
            lines.append(f"net: {n['label']} shares {n['shares_with']}'s namespace")
            continue
        line = (f"net: {n['label']}'s namespace: the stack received {n['rx_packets']:,}, sent {n['tx_packets']:,}"
                + (f", XDP redirected {n['xdp_redirect']:,}" if n["xdp_redirect"] else ""))
        if n.get("interfaces"):
            line += (f"; its interfaces counted {n['interfaces']['rx_packets']:,} received, "
                     f"{n['interfaces']['tx_packets']:,} sent")
        if "machine" in n["scope"]:
            line += " (the machine's own namespace: others' traffic included)"
        lines.append(line)
    return lines


def frames(raw, ctx):
    import pandas as pd
    s = summary(raw, ctx)
    cpu_columns = ["cpu", "net_rx_ns", "net_rx_runs", "net_rx_runs_kernel", "net_tx_ns", "net_tx_runs",
                   "net_tx_runs_kernel", "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "xdp_redirect"]
    ns_columns = ["label", "pid", "netns", "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "xdp_redirect",
                  "interface_rx_packets", "interface_tx_packets", "shares_with"]
    ns_rows = [{**{k: v for k, v in n.items() if k in ns_columns},
                "interface_rx_packets": (n.get("interfaces") or {}).get("rx_packets"),
                "interface_tx_packets": (n.get("interfaces") or {}).get("tx_packets")} for n in s["namespaces"]]
    return {
        "net_cpus": pd.DataFrame(s["cpus"], columns=cpu_columns),
        "net_contexts": pd.DataFrame([{"context": k, **v} for k, v in s["net_rx_contexts"].items()],
                                     columns=["context", "ns", "runs", "share"]),
        "net_namespaces": pd.DataFrame(ns_rows, columns=ns_columns),
    }
