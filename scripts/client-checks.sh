#!/usr/bin/env bash
# Client-side truth from outside Rust: starts libvirt-grpcd (test:///default)
# on a free loopback port, then
#   1. grpcurl 1.8.6 (reflection v1alpha) lists every service and calls
#      ListDomains, and sees a bad request rejected with its gRPC code;
#   2. a Python client generated from proto/ by grpcio-tools runs
#      tests/python/test_client.py under pytest.
# Stops the server it started, by pid. Needs scripts/install-test-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv/bin"

cargo build --locked -q -p libvirt-grpc-server --bin libvirt-grpcd
port=$("$venv/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
log=$(mktemp)
target/debug/libvirt-grpcd --listen "$addr" --log-level warn >"$log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$log"
}
trap cleanup EXIT

# Readiness: wait (bounded) until the port accepts a gRPC call.
for _ in $(seq 1 100); do
    if "$venv/grpcurl" -plaintext "$addr" list >/dev/null 2>&1; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "server exited" >&2; exit 1; fi
    sleep 0.1
done

passed=0
failed=0
check() { # check NAME COMMAND... : runs COMMAND, counts the outcome
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
    fi
}

services=$("$venv/grpcurl" -plaintext "$addr" list)
check "grpcurl lists DomainService" grep -qx 'libvirt_grpc.v1.DomainService' <<<"$services"
check "grpcurl lists HostService" grep -qx 'libvirt_grpc.v1.HostService' <<<"$services"
check "grpcurl lists health" grep -qx 'grpc.health.v1.Health' <<<"$services"
domains=$("$venv/grpcurl" -plaintext "$addr" libvirt_grpc.v1.DomainService/ListDomains)
check "grpcurl ListDomains returns 'test'" grep -q '"name": "test"' <<<"$domains"
described=$("$venv/grpcurl" -plaintext "$addr" describe libvirt_grpc.v1.DomainSpec)
check "grpcurl describes DomainSpec" grep -q 'memory_bytes' <<<"$described"
bad=$("$venv/grpcurl" -plaintext -d '{"domain":{"uuid":"nope"}}' "$addr" \
    libvirt_grpc.v1.DomainService/GetDomain 2>&1 || true)
check "grpcurl bad UUID -> InvalidArgument" grep -q 'Code: InvalidArgument' <<<"$bad"

gen=tests/python/gen
rm -rf "$gen"
mkdir -p "$gen"
"$venv/python" -m grpc_tools.protoc -Iproto --python_out="$gen" --grpc_python_out="$gen" \
    proto/libvirt_grpc/v1/*.proto
if LIBVIRT_GRPC_ADDR="$addr" PYTHONPATH="$gen" "$venv/pytest" -q tests/python; then
    passed=$((passed + 1))
    echo "ok   python client (pytest)"
else
    failed=$((failed + 1))
    echo "FAIL python client (pytest)"
fi

echo "client-checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
