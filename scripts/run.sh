#!/usr/bin/env bash
# Installs what is missing, builds, and runs libvirt-grpcd on 127.0.0.1:50051
# against the embedded default host test:///default (libvirt's in-process
# test driver: no daemon needed). Extra arguments go to libvirt-grpcd, e.g.
#   scripts/run.sh --host real=qemu:///system --log-level debug
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec cargo run --locked --release -p libvirt-grpc-server --bin libvirt-grpcd -- "$@"
