#!/usr/bin/env bash
# The API contract checks CI runs on proto/:
#   1. `buf lint` (STANDARD + COMMENTS: every message, field, enum value and
#      RPC documented);
#   2. `buf breaking` against the frozen v1 baseline (proto/baseline/v1.binpb,
#      a buf image of proto/ as v1 was frozen): any change that would break a
#      client generated from the baseline (a field renumbered, retyped,
#      renamed or removed; an RPC or enum value removed; a message moved to
#      another file) fails.
#
# Usage: scripts/proto-check.sh            lint + breaking
#        scripts/proto-check.sh --freeze   rewrite the baseline from proto/
#                                          (only for a new major version)
# Needs scripts/install-test-tools.sh (buf from npm in node_modules/).
set -euo pipefail
cd "$(dirname "$0")/.."
buf="$PWD/node_modules/.bin/buf"
baseline="$PWD/proto/baseline/v1.binpb"

cd proto
if [[ "${1:-}" == "--freeze" ]]; then
    mkdir -p "$(dirname "$baseline")"
    "$buf" build -o "$baseline"
    echo "proto-check: baseline written to ${baseline#"$OLDPWD"/}"
    exit 0
fi
"$buf" lint
"$buf" breaking --against "$baseline"

# The check must be able to fail: the same protos with one field renumbered
# (a copy in a temporary directory) must be refused.
canary=$(mktemp -d)
trap 'rm -rf "$canary"' EXIT
cp -r . "$canary/"
sed -i 's/^  string host = 1;$/  string host = 99;/' "$canary/libvirt_grpc/v1/common.proto"
if (cd "$canary" && "$buf" breaking --against "$baseline" >/dev/null 2>&1); then
    echo "proto-check: buf breaking accepted a renumbered field: the check is broken" >&2
    exit 1
fi
echo "proto-check: lint clean, no breaking change against the v1 baseline"
