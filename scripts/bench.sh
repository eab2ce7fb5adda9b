#!/usr/bin/env bash
# Domain-read benchmarks: libvirt-grpcd against plain libvirt, same
# libvirtd, same run (README, section "Benchmarks").
#
# Usage: scripts/bench.sh [--quick]
#
#   1. builds (release) libvirt-grpcd and the bench_domain example;
#   2. writes three test-driver node files of type='test' domains
#      (100, 1000 and 3000 domains, names with a per-run prefix; a mix of
#      running, paused, shut off, managed-save and transient domains);
#   3. starts libvirtd through scripts/libvirtd.sh unless one already
#      answers (and stops it at the end only if it started it);
#   4. starts the real libvirt-grpcd binary as its own process on a free
#      loopback port, its three hosts n100 / n1000 / n3000 being
#      test+unix:///<node file> (plain text, no auth: loopback only);
#   5. runs the Rust benchmark (tests/examples/bench_domain.rs; its last
#      section defines 1000 inactive QEMU domains named $prefix* on
#      qemu:///system, host "qemu", and undefines them) and the
#      Python one (tests/python/bench_domain.py: grpcio stubs generated here,
#      libvirt-python from Debian's python3-libvirt for the direct side);
#   6. stops the server by its pid and removes its files.
#
# --quick: shorter runs (for checking the script, not for figures).
#
# Needs: scripts/install-deps.sh --real (libvirtd, virsh) and
# scripts/install-test-tools.sh (.venv with grpcio); python3-libvirt is
# installed here when missing (root, apt). Figures are noisy when other
# work runs on the machine: the ratios are what to read.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_INCREMENTAL=0

budget_ms=400 secs=6 py_iters=2000
if [[ "${1:-}" == "--quick" ]]; then
    budget_ms=60 secs=1 py_iters=200
elif [[ -n "${1:-}" ]]; then
    echo "usage: $0 [--quick]" >&2
    exit 2
fi

log() { echo "bench.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

command -v virsh >/dev/null || die "virsh missing: run scripts/install-deps.sh --real"
command -v libvirtd >/dev/null || die "libvirtd missing: run scripts/install-deps.sh --real"
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import grpc, grpc_tools' 2>/dev/null; then
    scripts/install-test-tools.sh
fi
# libvirt-python for the direct side of the Python measurement: Debian's
# package, for the system Python; the venv reads only that one module from
# its directory (see tests/python/bench_domain.py).
pylibvirt_dir=/usr/lib/python3/dist-packages
if [[ ! -f $pylibvirt_dir/libvirt.py ]]; then
    [[ $(id -u) -eq 0 ]] || die "python3-libvirt missing and not root"
    log "installing python3-libvirt"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-libvirt >/dev/null ||
        { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-libvirt >/dev/null; }
fi

log "building (release)"
cargo build --release --locked -q -p libvirt-grpc-server --bin libvirt-grpcd
cargo build --release --locked -q -p libvirt-grpc-tests --example bench_domain

work=$(mktemp -d /tmp/libvirt-grpc-bench.XXXXXX)
prefix="lvgb$$-"
libvirtd_state="$work/libvirtd.pid"
server_pid=
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    # The QEMU domains of section 5 are undefined by the benchmark itself,
    # also when it panics; this catches a benchmark that was killed.
    if virsh -c qemu:///system list --all --name 2>/dev/null | grep -q "^$prefix"; then
        virsh -c qemu:///system list --all --name | grep "^$prefix" |
            while read -r d; do virsh -c qemu:///system undefine "$d" >/dev/null 2>&1 || true; done
    fi
    # Stops the daemon only when this run started it (the state file exists
    # only then).
    LIBVIRTD_STATE_FILE="$libvirtd_state" scripts/libvirtd.sh stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# A node file of $2 domains. The test driver reads it per connection (each
# connection gets its own private copy, see README "Benchmarks"), so UUIDs
# are written out: the server's connections and the direct client's then
# see the same domains. Of every 10 domains: 6 running (the driver's
# default), 1 paused, 2 shut off, 1 shut off with a managed save image; and
# some running ones are transient. Autostart cannot be set in a node file.
write_node() {
    local file=$1 n=$2 i state extra
    {
        echo "<node>"
        echo "  <cpu><mhz>2000</mhz><model>bench</model><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>"
        echo "  <memory>67108864</memory>"
        for ((i = 0; i < n; i++)); do
            case $((i % 10)) in
                6) state="<test:runstate>3</test:runstate>" ;;
                7 | 8) state="<test:runstate>5</test:runstate>" ;;
                9) state="<test:runstate>5</test:runstate><test:hasmanagedsave/>" ;;
                *) state="" ;;
            esac
            extra=""
            # Transient domains can only be running.
            ((i % 25 == 3 && i % 10 < 6)) && extra="<test:transient/>"
            printf "  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>%sd%05d</name><uuid>%08x-4c1b-4000-8000-%012x</uuid><memory>%d</memory><currentMemory>%d</currentMemory><vcpu>%d</vcpu><os><type>hvm</type></os>%s%s</domain>\n" \
                "$prefix" "$i" "$n" "$i" $((131072 * (1 + i % 4))) $((131072 * (1 + i % 4))) $((1 + i % 4)) "$state" "$extra"
        done
        echo "</node>"
    }
}
sizes=(1000 100 3000)
for n in "${sizes[@]}"; do
    write_node "$work/n$n.xml" "$n" >"$work/n$n.xml"
done

LIBVIRTD_STATE_FILE="$libvirtd_state" scripts/libvirtd.sh start

port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
{
    echo "listen = \"$addr\""
    echo 'log_level = "warn"'
    for n in "${sizes[@]}"; do
        printf '[[hosts]]\nname = "n%s"\nuri = "test+unix://%s"\n' "$n" "$work/n$n.xml"
    done
    printf '[[hosts]]\nname = "qemu"\nuri = "qemu:///system"\n'
} >"$work/libvirt-grpcd.toml"
target/release/libvirt-grpcd --config "$work/libvirt-grpcd.toml" >"$work/server.log" 2>&1 &
server_pid=$!
# Readiness is the benchmark's own first call (it retries for 60 s).

echo "== libvirt-grpc domain-read benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "   commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown), libvirt $(virsh -c test:///default version 2>/dev/null | awk '/Using library/ {print $NF}'),"
echo "   $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
hosts=()
for n in "${sizes[@]}"; do hosts+=(--host "n$n=test+unix://$work/n$n.xml"); done
target/release/examples/bench_domain --addr "http://$addr" "${hosts[@]}" \
    --budget-ms "$budget_ms" --secs "$secs" --callers 64 --conns 8 \
    --qemu-host qemu=qemu:///system --qemu-n 1000 --prefix "$prefix" ||
    { cat "$work/server.log" >&2; die "the Rust benchmark failed"; }

gen="$work/gen"
mkdir -p "$gen"
.venv/bin/python -m grpc_tools.protoc -Iproto --python_out="$gen" --grpc_python_out="$gen" \
    proto/libvirt_grpc/v1/*.proto
PYTHONPATH="$gen" LIBVIRT_PYTHON_DIR="$pylibvirt_dir" .venv/bin/python "$root/tests/python/bench_domain.py" \
    --addr "$addr" --host n1000 --uri "test+unix://$work/n1000.xml" --iters "$py_iters" ||
    { cat "$work/server.log" >&2; die "the Python benchmark failed"; }
echo "   load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
