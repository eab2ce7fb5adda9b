#!/usr/bin/env bash
# The adversarial battery of issue 8 (tests/battery/battery.py), bounded to
# a few minutes: generated bad values for every field of every request, XML
# attacks, a load phase with concurrent clients while libvirtd is killed and
# restarted; checked for crashes, INTERNAL codes, leftovers and RSS growth.
#
# Usage: scripts/battery.sh [--report-only] [battery.py options]
#
#   --report-only   print the findings but exit 0 (while fixes land)
#   other options go to tests/battery/battery.py (see its --help), e.g.
#   --seed N (reproduce a run), --phases fuzz, --only 'DomainService\.',
#   --json FILE, --trace FILE, --keep.
#
# What it does: installs what is missing (scripts/install-deps.sh --real,
# scripts/install-test-tools.sh), builds target/debug/libvirt-grpcd,
# generates the Python stubs from proto/ into tests/battery/gen, starts a
# private libvirtd box (scripts/libvirtd-box.sh, its own mount namespace,
# 127.0.0.1:<free port>, an 8 GiB address-space limit) and runs the battery,
# which starts and stops its own server (by pid). The box is stopped and
# purged on exit, also on failure or ^C. The machine's own libvirtd is never
# touched.
#
# Exit status: 0 without findings (or with --report-only), 1 with findings,
# 2 when the battery could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --real
scripts/install-test-tools.sh >/dev/null
cargo build --locked -q -p libvirt-grpc-server --bin libvirt-grpcd

venv="$PWD/.venv/bin"
gen=tests/battery/gen
rm -rf "$gen"
mkdir -p "$gen"
"$venv/python" -m grpc_tools.protoc -Iproto --python_out="$gen" --grpc_python_out="$gen" \
    proto/libvirt_grpc/v1/*.proto

box="battery-$$"
port=$("$venv/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
    scripts/libvirtd-box.sh purge "$box" || echo "battery.sh: could not purge box $box" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM
LIBVIRTD_BOX_AS_LIMIT="${BATTERY_BOX_AS_LIMIT:-8G}" scripts/libvirtd-box.sh start "$box" "$port"

rc=0
"$venv/python" tests/battery/battery.py --box-name "$box" --box-port "$port" \
    --box-script scripts/libvirtd-box.sh "$@" || rc=$?
exit "$rc"
