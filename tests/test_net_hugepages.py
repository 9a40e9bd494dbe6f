"""dpdk's hugepages=N: kit adds to the kernel's 2 MiB pool (nr_hugepages)
only what its free pages lack, the server runs on them (EAL --in-memory),
and what kit added is taken back however the run ends: normally, a server
too small for its buffers, the server killed, kit itself killed. The
keeper's arithmetic is checked on a pool of plain files (no kernel), the
rest on the kernel's own pool."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import KIT, require, run_kit
from test_net import _buildable, _can_make_namespaces, _kit_net_started, _left_behind, _named_namespaces

POOL = "/sys/kernel/mm/hugepages/hugepages-2048kB"
SETTLE_S = 10.0         # pages a killed server held are freed when the kernel has torn its sockets down


def _pool(name="nr_hugepages", pool=POOL):
    while True:
        with open(os.path.join(pool, name)) as fh:
            text = fh.read()
        if text:        # a plain file being rewritten reads empty for a moment (sysfs never does)
            return int(text)
        time.sleep(0.001)


def _settled(expected, pool=POOL):
    """nr_hugepages once it reads `expected`, or what it reads after SETTLE_S."""
    deadline = time.monotonic() + SETTLE_S
    while (now := _pool(pool=pool)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return now


def _dpdk_here():
    _buildable("dpdk")
    _can_make_namespaces()
    require(os.path.isdir(POOL), f"no 2 MiB hugepages on this kernel ({POOL})")


def _fake_pool(tmp_path, nr, free, resv=0):
    for name, value in (("nr_hugepages", nr), ("free_hugepages", free), ("resv_hugepages", resv)):
        (tmp_path / name).write_text(f"{value}\n")
    return str(tmp_path)


# ---- the keeper, on a pool of plain files --------------------------------------

def test_the_keeper_adds_only_what_is_lacking_and_takes_back_only_that(tmp_path):
    from kit.net.servers.dpdk import Hugepages
    pool = _fake_pool(tmp_path, nr=7, free=3)
    with Hugepages(10, pool=pool) as pages:
        assert pages.added == 7 and _pool(pool=pool) == 14
        (tmp_path / "nr_hugepages").write_text("20\n")      # someone else adds 6 meanwhile
    assert _settled(13, pool) == 13                         # theirs stay, kit's 7 go
    pool = _fake_pool(tmp_path, nr=12, free=12)
    with Hugepages(10, pool=pool) as pages:                 # enough free already: nothing written
        assert pages.added == 0 and _pool(pool=pool) == 12
    assert _pool(pool=pool) == 12


def test_the_keeper_gives_back_after_a_sigkill_of_kit(tmp_path):
    """kit (here a Python process holding a reservation) killed with
    SIGKILL: the keeper sees its stdin close and gives the pages back."""
    pool = _fake_pool(tmp_path, nr=0, free=0)
    code = ("import sys, time\nfrom kit.net.servers.dpdk import Hugepages\n"
            "with Hugepages(16, pool=sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, pool], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "held\n"
        assert _pool(pool=pool) == 16
        p.kill()
    finally:
        p.wait(10)
        p.stdout.close()
    assert _settled(0, pool) == 0


def test_a_reservation_refused_is_one_line_and_gives_back(tmp_path):
    from kit.errors import RunError
    from kit.net.servers.dpdk import Hugepages
    pool = _fake_pool(tmp_path, nr=0, free=0)
    os.chmod(tmp_path / "nr_hugepages", 0o444)
    if os.access(tmp_path / "nr_hugepages", os.W_OK):       # root writes through a mode of 0444
        (tmp_path / "nr_hugepages").unlink()
        os.mkdir(tmp_path / "nr_hugepages")                 # a file no one can write
    with pytest.raises(RunError) as e:
        Hugepages(16, pool=pool).__enter__()
    assert "hugepages=16: cannot reserve them" in str(e.value) and "leave hugepages out" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(RunError, match="has no 2 MiB hugepages"):
        Hugepages(4, pool=str(tmp_path / "no-such-pool")).__enter__()


HOLDER = """import sys, time
from kit.net.servers.dpdk import Hugepages
pool, hold = sys.argv[1], float(sys.argv[2])
with Hugepages(10, pool=pool) as pages:
    print("held", time.monotonic(), pages.added, flush=True)
    time.sleep(hold)
    print("released", time.monotonic(), flush=True)
"""


def test_two_reservations_at_once_take_turns(tmp_path):
    """Two kit processes reserving at the same time: the second waits (one
    line on stderr naming the first) until the first has given back what it
    added, so it never counts the first run's pages as free; both get theirs.
    On a pool of 4 free pages each must add 6 -- with no lock the second
    would read the pool while the first's 6 sit in it, free."""
    pool = _fake_pool(tmp_path, nr=4, free=4)
    first = subprocess.Popen([sys.executable, "-c", HOLDER, pool, "1.0"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    second = None
    try:
        said = first.stdout.readline().split()
        assert said[0] == "held" and said[2] == "6" and _pool(pool=pool) == 10
        # what the kernel does when nr_hugepages grows: the added pages are free (until a server takes them)
        (tmp_path / "free_hugepages").write_text("10\n")
        second = subprocess.Popen([sys.executable, "-c", HOLDER, pool, "0"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        assert second.poll() is None and _pool(pool=pool) == 10       # waiting: it has read nothing yet
        # the pool as it will be once the first has given its 6 back (no one reads it meanwhile)
        (tmp_path / "free_hugepages").write_text("4\n")
        out1, err1 = first.communicate(timeout=30)
        out2, err2 = second.communicate(timeout=30)
    finally:
        for p in (first, second):
            if p and p.poll() is None:
                p.kill()
                p.wait()
    assert first.returncode == 0 and second.returncode == 0, (err1, err2)
    released1 = float(out1.split()[1])
    held2 = out2.split()
    assert held2[0] == "held" and float(held2[1]) >= released1        # one after the other
    assert held2[2] == "6"                                              # it too added what it lacked
    assert err1 == ""
    assert err2.count("\n") == 1 and "kit: hugepages=10: waiting for another kit run (pid " in err2 \
        and f"(pid {first.pid})" in err2 and ".kit-hugepages.lock" in err2, err2
    assert _settled(4, pool) == 4


def test_a_reservation_waiting_for_the_lock_stops_at_once_when_asked(tmp_path):
    """A run waiting for another's hugepages ends on SIGTERM/Ctrl-C at
    once, adding nothing and leaving the first's pages alone."""
    pool = _fake_pool(tmp_path, nr=0, free=0)
    first = subprocess.Popen([sys.executable, "-c", HOLDER, pool, "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().startswith("held") and _pool(pool=pool) == 10
        second = subprocess.Popen([sys.executable, "-c", HOLDER, pool, "0"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        while "waiting" not in second.stderr.readline():
            pass
        t0 = time.monotonic()
        second.send_signal(signal.SIGINT)
        out, _err = second.communicate(timeout=10)
        assert time.monotonic() - t0 < 2 and second.returncode != 0 and "held" not in out
        assert _pool(pool=pool) == 10                                   # the first's, untouched
    finally:
        first.kill()
        first.wait()
        first.stdout.close()
    assert _settled(0, pool) == 0                                       # the first's keeper gave back


# ---- real runs on the kernel's pool -------------------------------------------------

def test_a_run_on_hugepages_uses_them_and_leaves_the_pool_as_it_was():
    _dpdk_here()
    before, free = _pool(), _pool("free_hugepages")
    named = _named_namespaces()
    p, children, namespaces = _kit_net_started(["--server=dpdk", "--protocol=udp", "--hugepages=16",
                                                "--runtime=1", "--json"])
    during, free_during = _pool(), _pool("free_hugepages")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    # kit added what the free pool lacked, and the server took all 16 (-m 32 at EAL's start)
    assert during == before + max(16 - free, 0) and free_during == max(free - 16, 0), (before, free, during)
    assert _left_behind(children, namespaces, named) == []
    assert _settled(before) == before
    data = json.loads(out)
    entry = data["jobs"][0]
    assert data["label"] == "dpdk+hugepages udp echo" and entry["job options"]["hugepages"] == "16"
    assert entry["read"]["total_ios"] > 100 and entry["kit"]["net"]["lost"] == 0


def test_too_few_hugepages_is_one_line_exit_1_and_leaves_the_pool():
    _dpdk_here()
    before = _pool()
    p = run_kit("net", "--server=dpdk", "--protocol=udp", "--hugepages=4", "--runtime=300ms", timeout=60)
    assert p.returncode == 1, p.stderr
    assert p.stderr.count("\n") == 1 and "in 4 hugepages (8 MiB)" in p.stderr and "at least 10" in p.stderr, p.stderr
    assert p.stdout == ""
    assert _settled(before) == before


@pytest.mark.parametrize("victim", ["kit", "server"])
def test_a_sigkill_gives_the_pages_back(victim):
    _dpdk_here()
    before, free = _pool(), _pool("free_hugepages")
    named = _named_namespaces()
    p, children, namespaces = _kit_net_started(["--server=dpdk", "--protocol=udp", "--hugepages=12",
                                                "--runtime=20"])
    assert _pool() == before + max(12 - free, 0)
    comms = sorted(c for c, _s, _n in children.values())
    assert comms == ["cat", "cat", "kit-net-dpdk", "kit-net-loadgen", "python"], comms   # python: the keeper
    if victim == "kit":
        p.kill()
        p.communicate()
    else:
        server = next(pid for pid, (comm, _s, _n) in children.items() if comm == "kit-net-dpdk")
        os.kill(server, signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 1 and "was killed by SIGKILL during the run" in err, err
    assert _left_behind(children, namespaces, named) == []
    assert _settled(before) == before


def test_doctor_says_what_the_pool_holds_and_whether_the_yardsticks_are_here():
    """kit doctor's hugepages line is the kernel's pool as it reads (pages,
    free less promised), and whether kit may add; sockperf and iperf3 (make
    bench-net's yardsticks) with their versions, or how to get them."""
    import shutil
    p = run_kit("doctor", "--json", timeout=180)
    assert p.returncode == 0, p.stderr
    net = json.loads(p.stdout)["net"]
    hp, ys = net["hugepages"], net["yardsticks"]
    if os.path.isdir(POOL):
        assert hp["ok"] and hp["total"] == _pool() and hp["free"] == _pool("free_hugepages") - _pool("resv_hugepages")
        assert hp["may_add"] == os.access(os.path.join(POOL, "nr_hugepages"), os.W_OK)
    else:
        assert not hp["ok"] and "has no 2 MiB hugepages" in hp["reason"]
    assert set(ys) == {"sockperf", "iperf3"}
    for program, y in ys.items():
        if shutil.which(program):
            assert y["version"] and y["version"][0].isdigit() and y["reason"] is None, y
        else:
            assert y["version"] is None and f"apt-get install {program}" in y["reason"]
    text = run_kit("doctor", timeout=180).stdout
    line = next(x for x in text.splitlines() if x.startswith("  hugepages "))
    if hp["ok"]:
        assert f"2 MiB pool: {hp['total']:,} pages, {hp['free']:,} free" in line
    for program, y in ys.items():
        line = next(x for x in text.splitlines() if x.startswith(f"  {program} "))
        assert (y["version"] or y["reason"]) in line and ("ok" in line.split()) == bool(y["version"])
