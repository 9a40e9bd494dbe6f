#!/usr/bin/env bash
# Sets up everything kit needs on a fresh Debian-like machine:
#   system packages (when root and apt is there), the virtualenv in .venv/,
#   the cffi build of the C engines, bcc visible from the venv, and a
#   Jupyter kernel named "kit". Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
DEBIAN_PYTHON_BCC=/usr/lib/python3/dist-packages/bcc

say() { printf 'kit setup: %s\n' "$*" >&2; }

# pip, minus the machine-wide find-links warnings that drown real messages
pip_quiet() {
    PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

apt_packages() {
    local arch
    arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
    # engines: liburing, libaio, Boost (Asio is header-only) and g++ for the
    # C++ ones; reference runner: fio; tracers: bcc + the
    # distro's generic kernel headers; report browser test: chromium; the
    # victims suite's filesystem mounted straight from a file: erofs-utils; a witness
    # of the system calls a job makes: strace; a second tracer to check kit's against: bpftrace; the network
    # half's DPDK engine: libdpdk-dev dpdk; its namespaces: iproute2 util-linux; the network bench's
    # yardsticks: sockperf iperf3
    echo liburing-dev libaio-dev libboost1.81-dev pkg-config gcc g++ fio \
         bpfcc-tools python3-bpfcc "linux-headers-$arch" \
         chromium erofs-utils strace bpftrace libdpdk-dev dpdk iproute2 util-linux sockperf iperf3
    # Debian's own python needs these to make a venv and build cffi modules
    case "$PYTHON" in /usr/bin/*) echo python3-venv python3-dev ;; esac
}

install_system_packages() {
    command -v apt-get >/dev/null 2>&1 || { say "no apt-get: install $(apt_packages) yourself"; return 0; }
    local missing=()
    for pkg in $(apt_packages); do
        dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        say "missing system packages (need root): sudo apt-get install ${missing[*]}"
        return 0
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

make_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV with $PYTHON"
        "$PYTHON" -m venv "$VENV"
    fi
    pip_quiet install -q --upgrade pip setuptools wheel cffi
}

install_kit() {
    say "building the C engines and installing kit into $VENV"
    pip_quiet install -q --no-build-isolation -e '.[test]'
    "$VENV/bin/python" -c 'import kit.engines as e; e.native(); assert not e.stale_build(), e.stale_build()'
    "$VENV/bin/python" -m kit.net.build || say "some network engines cannot be built here (the lines above say why)"
}

link_bcc() {
    # bcc is Debian's python3-bpfcc (PyPI's "bcc" is another project). It is
    # pure Python over libbcc.so, so the venv can use it whatever its CPython.
    local site
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    if [ -d "$DEBIAN_PYTHON_BCC" ]; then
        ln -sfn "$DEBIAN_PYTHON_BCC" "$site/bcc"
    else
        say "bcc not found at $DEBIAN_PYTHON_BCC: tracers will be unavailable (apt-get install python3-bpfcc)"
    fi
}

install_launcher() {
    # the `kit` command: a few lines of C that block Ctrl-C and SIGTERM while
    # Python starts (scripts/kit-launcher.c); replaces pip's console script
    local python header
    python="$(cd "$VENV/bin" && pwd)/python"
    header=$(mktemp -d)
    printf '#define KIT_PYTHON "%s"\n' "$(printf '%s' "$python" | sed 's/[\\"]/\\&/g')" > "$header/kit-python.h"
    gcc -O2 -Wall -Wextra -include "$header/kit-python.h" -o "$VENV/bin/kit.new" scripts/kit-launcher.c
    rm -rf "$header"
    mv -f "$VENV/bin/kit.new" "$VENV/bin/kit"
}

register_kernel() {
    "$VENV/bin/python" -m ipykernel install --sys-prefix --name kit --display-name "kit (.venv)" >/dev/null
}

install_system_packages
make_venv
install_kit
install_launcher
link_bcc
register_kernel
say "ready: $VENV/bin/kit"
