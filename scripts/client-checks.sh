#!/usr/bin/env bash
# Client-side truth from outside Rust: starts libvirt-grpcd (test:///default)
# on a free loopback port, then
#   1. grpcurl 1.8.6 (reflection v1alpha) lists every service and calls
#      ListDomains, and sees a bad request rejected with its gRPC code;
#   2. a Python client generated from proto/ by grpcio-tools runs
#      tests/python/test_client.py under pytest.
#   3. a second server with TLS, mutual TLS and roles, certificates made here
#      by openssl: grpcurl with -cacert/-cert/-key through reflection, a
#      reader token refused a change, no client certificate refused at the
#      handshake; the Python client over grpc.ssl_channel_credentials
#      (tests/python/test_tls.py).
# Stops the servers it started, by pid. Needs scripts/install-test-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv/bin"

cargo build --locked -q -p libvirt-grpc-server --bin libvirt-grpcd
port=$("$venv/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
log=$(mktemp)
target/debug/libvirt-grpcd --listen "$addr" --log-level warn >"$log" 2>&1 &
pid=$!
tls_pid=
pki=$(mktemp -d)
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ -n "$tls_pid" ]; then
        kill "$tls_pid" 2>/dev/null || true
        wait "$tls_pid" 2>/dev/null || true
    fi
    rm -f "$log"
    rm -rf "$pki"
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

# --- 3. TLS, mutual TLS, tokens and roles -------------------------------
mkcert() { # mkcert NAME CN EXT: a key and a certificate signed by ca.pem
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/$1.key" \
        -subj "/CN=$2" -out "$pki/$1.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 2 -extfile <(printf '%s\n' "$3") -out "$pki/$1.pem" 2>/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/ca.key" \
    -subj "/CN=client-checks CA" -days 2 -out "$pki/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
mkcert server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
mkcert ops ops "extendedKeyUsage=clientAuth"
reader_token="reader-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
reader_sha=$(printf %s "$reader_token" | sha256sum | cut -d' ' -f1)
tls_port=$("$venv/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tls_addr="127.0.0.1:$tls_port"
cat >"$pki/config.toml" <<TOML
listen = "$tls_addr"
[tls]
cert = "$pki/server.pem"
key = "$pki/server.key"
client_ca = "$pki/ca.pem"
[[auth.tokens]]
name = "client-checks-reader"
role = "reader"
sha256 = "$reader_sha"
[[auth.clients]]
subject = "CN=ops"
role = "admin"
TOML
target/debug/libvirt-grpcd --config "$pki/config.toml" --log-level warn >>"$log" 2>&1 &
tls_pid=$!
tls_grpcurl() { "$venv/grpcurl" -cacert "$pki/ca.pem" -cert "$pki/ops.pem" -key "$pki/ops.key" "$@"; }
for _ in $(seq 1 100); do
    if tls_grpcurl "$tls_addr" list >/dev/null 2>&1; then break; fi
    if ! kill -0 "$tls_pid" 2>/dev/null; then cat "$log"; echo "TLS server exited" >&2; exit 1; fi
    sleep 0.1
done
tls_services=$(tls_grpcurl "$tls_addr" list 2>&1 || true)
check "grpcurl over mutual TLS lists DomainService" grep -qx 'libvirt_grpc.v1.DomainService' <<<"$tls_services"
tls_domains=$(tls_grpcurl "$tls_addr" libvirt_grpc.v1.DomainService/ListDomains 2>&1 || true)
check "grpcurl over mutual TLS: ListDomains as admin" grep -q '"name": "test"' <<<"$tls_domains"
denied=$(tls_grpcurl -H "authorization: Bearer $reader_token" -d '{"domain":{"name":"test"}}' \
    "$tls_addr" libvirt_grpc.v1.DomainService/StopDomain 2>&1 || true)
check "grpcurl reader token: StopDomain -> PermissionDenied" grep -q 'Code: PermissionDenied' <<<"$denied"
# grpcurl retries a refused handshake until its connect timeout, then says
# it could not dial; nothing is listed either way.
no_cert=$("$venv/grpcurl" -connect-timeout 3 -cacert "$pki/ca.pem" "$tls_addr" list 2>&1 || true)
check "grpcurl without a client certificate is refused" bash -c '! grep -q DomainService <<<"$1" && grep -qi "certificate\|tls\|handshake\|failed to dial" <<<"$1"' _ "$no_cert"
plain=$("$venv/grpcurl" -plaintext "$tls_addr" list 2>&1 || true)
check "grpcurl plain text to the TLS port is refused" bash -c '! grep -q DomainService <<<"$1"' _ "$plain"

gen=tests/python/gen
rm -rf "$gen"
mkdir -p "$gen"
"$venv/python" -m grpc_tools.protoc -Iproto --python_out="$gen" --grpc_python_out="$gen" \
    proto/libvirt_grpc/v1/*.proto
if LIBVIRT_GRPC_ADDR="$addr" LIBVIRT_GRPC_TLS_ADDR="$tls_addr" LIBVIRT_GRPC_TLS_DIR="$pki" \
    LIBVIRT_GRPC_READER_TOKEN="$reader_token" PYTHONPATH="$gen" "$venv/pytest" -q tests/python; then
    passed=$((passed + 1))
    echo "ok   python client (pytest)"
else
    failed=$((failed + 1))
    echo "FAIL python client (pytest)"
fi

# The pip package (client/python): a wheel built from proto/ with the
# tools of .venv, installed into a fresh virtualenv whose dependencies come
# from PyPI as any user's would; its tests and example run against the
# plain-text server.
pkg=$(mktemp -d)
if "$venv/pip" wheel --quiet --disable-pip-version-check --no-build-isolation --no-deps \
    client/python -w "$pkg/dist" &&
    python3 -m venv "$pkg/venv" &&
    "$pkg/venv/bin/pip" install --quiet --disable-pip-version-check "$pkg"/dist/*.whl pytest &&
    LIBVIRT_GRPC_SERVER="$addr" "$pkg/venv/bin/pytest" -q -p no:cacheprovider client/python/tests; then
    passed=$((passed + 1))
    echo "ok   python package (wheel in a fresh venv: tests and example)"
else
    failed=$((failed + 1))
    echo "FAIL python package (wheel in a fresh venv: tests and example)"
fi
rm -rf "$pkg" client/python/build client/python/src/*.egg-info

echo "client-checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
