#!/usr/bin/env python3
"""kit's network load generator against sockperf, and the seed's servers
(epoll, io_uring, Asio) at 1, 16 and 256 connections, side by side in one run.

sockperf (Debian's) speaks its own protocol: its client ignores a plain echo
and its server answers only its own client's messages, so neither tool's
client can drive the other's server. Each pair is therefore measured whole,
in the veth namespaces kit makes (kit.net.netns, the same two namespaces
and veth pair as every kit network run), against the nearest server of its
own kind: sockperf's server is one thread in a blocking recvfrom/recv loop
on one socket, and so is kit's `threads` server with server_threads=1 (UDP:
one thread on the one socket; TCP: the thread of the one connection).

- ping-pong: sockperf ping-pong (--mps=max, one message in flight) against
  kit's closed loop with 1 connection and iodepth 1, UDP and TCP, 64 bytes.
- under-load: sockperf under-load at --mps=R with --reply-every=1 (every
  message a round trip) against kit's open loop at rate_iops=R, 1
  connection. sockperf times a round trip from when it sent it; kit from
  when it was due (no coordinated omission): at a rate both keep, the two
  agree; where the sender falls behind, kit's tail counts the delay.
- Both: sockperf's "valid duration" (after its 0.4 s warm-up, without its
  last 50 ms) against kit's ramp_time 0.4 s and the same runtime; round
  trips per second, round-trip percentiles (sockperf --full-rtt), and each
  client's CPU per round trip (sockperf: its process's, over its whole run,
  warm-up included; kit: the load generator's threads over the window).

The second table is throughput: kit's load generator streaming to kit's
one-thread server (TCP sink, 128 KiB writes) against iperf3's client and
server (one stream, its default 128 KiB writes, the first second omitted),
bytes per second and each side's CPU per KiB (iperf3's own
cpu_utilization_percent; kit's per-thread figures).

The third table runs kit alone: epoll, io_uring and asio, TCP echo, 64 bytes,
closed loop, iodepth 1, at 1, 16 and 256 connections; requests/s, the
round-trip median and p99, the server's CPU per request, the side that
bounded the rate, and each engine's rate over epoll's.

Absolute numbers on a shared VM are noise; ratios of runs interleaved in the
same minute are less so. Every case is run `--repeats` times, the tools (or
engines) in turn within each round; medians are printed and, for the
ratios, the lowest and highest of the rounds.

    .venv/bin/python bench/net.py [--seconds 2] [--repeats 3] [--rate 10000] [--tables sockperf,iperf3,engines]
"""
import argparse
import ctypes
import os
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import kit  # noqa: E402
from kit import stats  # noqa: E402
from kit.net.netns import Network  # noqa: E402

BS = 64
SOCKPERF_PORT = 11111           # sockperf's own default
SOCKPERF_WARMUP_S = 0.4         # sockperf's valid duration starts after this
SOCKPERF_COOLDOWN_S = 0.05      # and ends this much before its -t
READY_TIMEOUT_S = 5.0
PERCENTILES = ("50", "99", "99.9")
ENGINES = ("epoll", "io_uring", "asio")
CONNECTIONS = (1, 16, 256)
# the server sockperf's is compared with: one thread, blocking calls, one socket
KIT_SERVER = dict(server="threads", server_threads=1)
PR_SET_PDEATHSIG = 1
IPERF_PORT = 5201               # iperf3's own default
IPERF_BS = 128 * 1024           # iperf3's default TCP write
IPERF_OMIT_S = 1                # iperf3 -O: whole seconds


def _die_with_parent():
    """In the child: SIGKILL when the bench dies (kept across nsenter's exec
    of sockperf), so a killed bench leaves no sockperf holding a namespace."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# ---- sockperf --------------------------------------------------------------

def _plain(text):
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def parse_sockperf(text):
    """sockperf's client report -> rate, percentiles (ns), counts."""
    text = _plain(text)
    valid = re.search(r"\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)", text)
    total = re.search(r"\[Total Run\] RunTime=([\d.]+) sec; Warm up time=(\d+) msec; SentMessages=(\d+); "
                      r"ReceivedMessages=(\d+)", text)
    if not valid or not total:
        last = [line for line in text.splitlines() if line.strip()][-1:] or ["no output"]
        raise RuntimeError(f"sockperf did not report a run: {last[0]}")
    seconds, received = float(valid.group(1)), int(valid.group(3))
    pct = {}
    for name, value in re.findall(r"percentile\s+([\d.]+)\s*=\s*([\d.]+)", text):
        pct[f"{float(name):g}"] = float(value) * 1000
    dropped = re.search(r"# dropped messages = (\d+)", text)
    return {"rate": received / seconds if seconds else 0.0, "pct": pct, "received_total": int(total.group(4)),
            "lost": int(dropped.group(1)) if dropped else 0}


def sockperf(mode, protocol, seconds, rate=None):
    """One sockperf server + client pair across kit's veth pair."""
    tcp = ["--tcp"] if protocol == "tcp" else []
    with Network("veth") as net:
        server = subprocess.Popen(net.server_prefix + ["sockperf", "server", *tcp, "-i", net.server_ip,
                                                       "-p", str(SOCKPERF_PORT)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  bufsize=0, preexec_fn=_die_with_parent)
        try:
            _await_sockperf(server)
            argv = ["sockperf", mode, *tcp, "-i", net.server_ip, "-p", str(SOCKPERF_PORT), "-m", str(BS),
                    "-t", str(seconds), "--full-rtt"]
            if rate:
                argv += ["--mps", str(rate), "--reply-every", "1"]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            client = subprocess.run(net.client_prefix + argv, capture_output=True, text=True,
                                    timeout=seconds + 30, preexec_fn=_die_with_parent)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        finally:
            server.kill()
            server.wait()
            server.stdout.close()
    out = parse_sockperf(client.stdout + client.stderr)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out["client_cpu_ns"] = cpu_s * 1e9 / out["received_total"] if out["received_total"] else float("nan")
    return out


def _await_sockperf(server):
    """Until the server says it blocks on its socket (it is bound then)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    seen = ""
    while time.monotonic() < deadline:
        # the pipe's own reads: a buffered readline would hide lines from select
        ready, _w, _x = select.select([server.stdout], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(server.stdout.fileno(), 1 << 16).decode(errors="replace") if ready else ""
        if not chunk:
            break
        seen += chunk
        if "using " in seen:
            return
    raise RuntimeError(f"the sockperf server did not start: {_plain(seen).strip()[-200:] or 'no output'}")


# ---- iperf3 -----------------------------------------------------------------

def iperf3(seconds):
    """One iperf3 server + client pair across kit's veth pair: TCP, one
    stream, IPERF_BS writes, the first IPERF_OMIT_S seconds not counted."""
    import json
    with Network("veth") as net:
        server = subprocess.Popen(net.server_prefix + ["iperf3", "-s", "-1", "-B", net.server_ip,
                                                       "-p", str(IPERF_PORT)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  preexec_fn=_die_with_parent)
        try:
            argv = ["iperf3", "-c", net.server_ip, "-p", str(IPERF_PORT), "-t", str(seconds),
                    "-O", str(IPERF_OMIT_S), "-l", str(IPERF_BS), "-J"]
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:     # until the server listens
                client = subprocess.run(net.client_prefix + argv, capture_output=True, text=True,
                                        timeout=seconds + IPERF_OMIT_S + 30, preexec_fn=_die_with_parent)
                out = json.loads(client.stdout or "{}")
                if "error" not in out or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            server.kill()
            server.wait()
    if "error" in out:
        raise RuntimeError(f"iperf3: {out['error']}")
    end = out["end"]
    received = end["sum_received"]
    cpu = end["cpu_utilization_percent"]
    return {"bytes_per_s": received["bits_per_second"] / 8,
            "client_cpu_ns": cpu["host_total"] / 100 * received["seconds"] * 1e9 / received["bytes"],
            "server_cpu_ns": cpu["remote_total"] / 100 * received["seconds"] * 1e9 / received["bytes"]}


def kit_sink(seconds):
    """kit's load generator streaming to kit's one-thread server, TCP sink."""
    r = kit.run_net(protocol="tcp", workload="sink", bs=IPERF_BS, ramp_time=IPERF_OMIT_S, runtime=seconds,
                    progress=False, machine=False, **KIT_SERVER)
    entry = r.data["jobs"][0]
    per = entry["kit"]["net"].get("cpu_per_request_ns") or {}
    return {"bytes_per_s": entry["read"]["bw_bytes"],
            "client_cpu_ns": (per.get("client") or float("nan")) / IPERF_BS,
            "server_cpu_ns": (per.get("server") or float("nan")) / IPERF_BS}


def versus_iperf3(args):
    print(f"\nthroughput: kit's load generator streaming to kit's threads server (server_threads=1, TCP sink) "
          f"against iperf3's client and server, one connection, {IPERF_BS // 1024} KiB writes, across kit's veth "
          f"pair; {args.seconds} s after {IPERF_OMIT_S} s not counted, {args.repeats} rounds, the tools in turn "
          f"(the order alternating); each ratio the median of the rounds' own [95 % interval]; CPU = ns per KiB")
    print(f"{'tool':9s} {'GiB/s':>7s} {'client cpu':>10s} {'server cpu':>10s}   kit/iperf3: rate, client cpu")
    rows = {"kit": [], "iperf3": []}
    for turn in range(args.repeats):
        order = ("kit", "iperf3") if turn % 2 else ("iperf3", "kit")
        for tool in order:
            rows[tool].append(kit_sink(args.seconds) if tool == "kit" else iperf3(args.seconds))
    for tool in ("iperf3", "kit"):
        rs = rows[tool]
        line = (f"{tool:9s} {med(rs, 'bytes_per_s') / 2**30:7.2f} {med(rs, 'client_cpu_ns') * 1024:10.0f} "
                f"{med(rs, 'server_cpu_ns') * 1024:10.0f}")
        if tool == "kit":
            rate = [ratio(k["bytes_per_s"], i["bytes_per_s"]) for k, i in zip(rows["kit"], rows["iperf3"])]
            cpu = [ratio(k["client_cpu_ns"], i["client_cpu_ns"]) for k, i in zip(rows["kit"], rows["iperf3"])]
            line += f"   {interval(rate)}, {interval(cpu)}"
        print(line)
    sys.stdout.flush()


# ---- kit ------------------------------------------------------------------

def kit_run(seconds, protocol, **options):
    """One kit run over the same window as sockperf's valid duration."""
    r = kit.run_net(protocol=protocol, bs=BS, ramp_time=SOCKPERF_WARMUP_S,
                    runtime=seconds - SOCKPERF_WARMUP_S - SOCKPERF_COOLDOWN_S, progress=False, machine=False,
                    **options)
    entry = r.data["jobs"][0]
    net, clat = entry["kit"]["net"], entry["read"]["clat_ns"]
    pct = {f"{float(k):g}": v for k, v in (clat.get("percentile") or {}).items()}
    per = net.get("cpu_per_request_ns") or {}
    return {"rate": entry["read"]["iops"], "pct": pct, "lost": net.get("lost", 0), "late": net.get("late", 0),
            "client_cpu_ns": per.get("client") or float("nan"), "server_cpu_ns": per.get("server") or float("nan"),
            "bottleneck": net.get("bottleneck")}


# ---- printing -------------------------------------------------------------

def med(rows, key, pct=None):
    values = [r["pct"].get(pct, float("nan")) if pct else r[key] for r in rows]
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def us(ns):
    return f"{ns / 1000:.1f}" if ns == ns else "-"


def ratio(a, b):
    return a / b if b else float("nan")


def interval(values):
    m, lo, hi = stats.median_interval(values)
    return f"{m:.2f} [{lo:.2f}-{hi:.2f}]" if m == m else "-"


def spread(values):
    values = [v for v in values if v == v]
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def versus_sockperf(args):
    cases = [("ping-pong", "udp", None), ("ping-pong", "tcp", None),
             ("under-load", "udp", args.rate), ("under-load", "tcp", args.rate)]
    window = args.seconds - SOCKPERF_WARMUP_S - SOCKPERF_COOLDOWN_S
    print(f"kit's load generator + kit's threads server (server_threads=1) against sockperf client + sockperf "
          f"server, each pair across kit's veth pair (two namespaces), {BS} B messages, 1 connection; "
          f"{window:.2f} s windows after {SOCKPERF_WARMUP_S} s warm-up, median of {args.repeats} interleaved "
          f"rounds (spread: the rounds' lowest-highest kit/sockperf rate); under-load at {args.rate:,}/s; "
          "latency = round trip, us; CPU = client CPU per round trip, us")
    head = (f"{'case':20s} {'tool':9s} {'round trips/s':>13s} " + " ".join(f"{'p' + p:>7s}" for p in PERCENTILES)
            + f" {'cpu/rt':>7s} {'lost':>5s}   kit/sockperf: rate   p50  cpu/rt  spread")
    print(head)
    for mode, protocol, rate in cases:
        rows = {"kit": [], "sockperf": []}
        for _ in range(args.repeats):
            rows["sockperf"].append(sockperf(mode, protocol, args.seconds, rate))
            kit_opts = dict(KIT_SERVER, connections=1, iodepth=1 if not rate else args.depth, rate_iops=rate or 0)
            rows["kit"].append(kit_run(args.seconds, protocol, **kit_opts))
        label = f"{mode} {protocol}"
        for tool in ("sockperf", "kit"):
            rs = rows[tool]
            line = (f"{label:20s} {tool:9s} {med(rs, 'rate'):13,.0f} "
                    + " ".join(f"{us(med(rs, None, p)):>7s}" for p in PERCENTILES)
                    + f" {us(med(rs, 'client_cpu_ns')):>7s} {sum(r['lost'] for r in rs):5d}")
            if tool == "kit":
                rounds = [ratio(k["rate"], s["rate"]) for k, s in zip(rows["kit"], rows["sockperf"])]
                line += (f"   {ratio(med(rs, 'rate'), med(rows['sockperf'], 'rate')):17.2f} "
                         f"{ratio(med(rs, None, '50'), med(rows['sockperf'], None, '50')):5.2f} "
                         f"{ratio(med(rs, 'client_cpu_ns'), med(rows['sockperf'], 'client_cpu_ns')):7.2f}  "
                         f"{spread(rounds)}")
                late = sum(r["late"] for r in rs)
                if late:
                    line += f"  ({late:,} sent late)"
            print(line)
            label = ""
        sys.stdout.flush()


def engines(args):
    window = args.seconds - SOCKPERF_WARMUP_S - SOCKPERF_COOLDOWN_S
    print(f"\nkit's servers: TCP echo, {BS} B, closed loop, iodepth 1, veth; {window:.2f} s windows after "
          f"{SOCKPERF_WARMUP_S} s ramp, median of {args.repeats} interleaved rounds; latency = round trip, us; "
          "cpu/req = the server's CPU per request, us; bound by = the side whose thread was saturated, else "
          "machine (both sides filled the CPUs) or neither")
    print(f"{'connections':>11s} {'server':9s} {'requests/s':>11s} {'p50':>7s} {'p99':>7s} {'cpu/req':>8s} "
          f"{'bound by':>9s}  {'/ epoll':>7s}  spread")
    for connections in CONNECTIONS:
        rows = {e: [] for e in args.engines}
        for _ in range(args.repeats):
            for name in args.engines:
                rows[name].append(kit_run(args.seconds, "tcp", server=name, connections=connections, iodepth=1))
        base = rows.get("epoll")
        for name in args.engines:
            rs = rows[name]
            bound = statistics.mode(r["bottleneck"] for r in rs)
            line = (f"{connections:11d} {name:9s} {med(rs, 'rate'):11,.0f} {us(med(rs, None, '50')):>7s} "
                    f"{us(med(rs, None, '99')):>7s} {us(med(rs, 'server_cpu_ns')):>8s} {bound:>9s}")
            if base and name != "epoll":
                rounds = [ratio(a["rate"], b["rate"]) for a, b in zip(rs, base)]
                line += f"  {ratio(med(rs, 'rate'), med(base, 'rate')):7.2f}  {spread(rounds)}"
            print(line)
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=2,
                    help="sockperf's -t (whole seconds); kit measures the same window after the same warm-up")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rate", type=int, default=10000, help="under-load's messages/s (sockperf's default)")
    ap.add_argument("--depth", type=int, default=16,
                    help="kit's open loop: requests in flight a connection may have (sockperf has no limit)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="kit's servers for the second table")
    ap.add_argument("--tables", default="sockperf,iperf3,engines", help="which tables, comma-separated")
    args = ap.parse_args()
    args.tables = set(args.tables.split(","))
    args.engines = [e for e in args.engines.split(",") if e]
    if args.seconds < 1 or args.repeats < 1 or args.rate < 1:
        ap.error("--seconds, --repeats and --rate must be at least 1")
    for tool in ("sockperf", "iperf3"):
        if not shutil.which(tool):
            sys.exit(f"bench/net.py: {tool} is missing (apt-get install {tool}, or make setup as root)")
    print(f"kit {kit.__version__}; {os.cpu_count()} CPUs")
    # build every program and warm the paths once before measuring
    kit_run(1, "udp", **KIT_SERVER)
    sockperf("ping-pong", "udp", 1)
    if "sockperf" in args.tables:
        versus_sockperf(args)
    if "iperf3" in args.tables:
        versus_iperf3(args)
    if "engines" in args.tables:
        engines(args)


if __name__ == "__main__":
    main()
