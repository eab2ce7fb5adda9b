#!/usr/bin/env bash
# Install the Debian packages libvirt-grpc needs to build and test.
#
# Usage: scripts/install-deps.sh [--real]
#
#   (no flag)  build deps: libvirt headers/pkg-config for the `virt` crate,
#              protoc for tonic-build, and virsh for the helper scripts.
#   --real     additionally everything needed to run a real libvirtd with
#              software-emulated QEMU guests and to build the test guest
#              (see shared/TESTBED.md sections 2 and 3).
#
# Idempotent: when every package is already installed, apt is not touched at
# all (no `apt-get update`), so repeat runs cost well under a second.
set -euo pipefail

usage() {
    echo "usage: $0 [--real]" >&2
    exit 2
}

real=0
case "${1:-}" in
    "") ;;
    --real) real=1 ;;
    -h | --help) usage ;;
    *) usage ;;
esac
[[ $# -le 1 ]] || usage

# Always needed: the `virt` crate links against libvirt (pkg-config finds
# it), tonic/prost build scripts need protoc and the well-known types
# (google/protobuf/timestamp.proto, duration.proto: libprotobuf-dev), scripts
# use virsh.
packages=(libvirt-dev pkg-config protobuf-compiler libprotobuf-dev libvirt-clients openssl)

if [[ $real -eq 1 ]]; then
    # A real daemon + QEMU driver; qemu-utils for qcow2 volumes; iptables and
    # dnsmasq-base for networks with an <ip>; qemu-guest-agent, busybox-static
    # and cpio are the ingredients of the test guest's initramfs; bsdutils
    # (essential, so normally there) has the `script` that runs the CLI
    # under a pseudo-terminal in client/tests/cli.rs; openssh-server and
    # openssh-client carry the sshd and ssh that tests/real_hosts.rs puts
    # between the service and a qemu+ssh:// host on loopback.
    packages+=(libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86
        qemu-utils qemu-guest-agent iptables dnsmasq-base busybox-static cpio
        bsdutils openssh-server openssh-client)
fi

# cargo comes from rustup on these machines, not from apt: we only check it.
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found in PATH; install a Rust toolchain (rustup) first" >&2
    exit 1
fi

# dpkg-query prints "install ok installed" only for fully configured
# packages; anything else (absent, half-configured, removed) counts as missing.
missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

# These machines may ship a newer qemu-utils (from backports) that Breaks
# bookworm's qemu-system-common; installing QEMU then needs bookworm's own
# qemu-utils (a downgrade), or apt refuses the whole transaction.
extra_opts=()
if [[ $real -eq 1 && " ${missing[*]} " == *" qemu-system-x86 "* ]]; then
    utils_ver=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
    if [[ -n "$utils_ver" && "$utils_ver" != 1:7.2* ]]; then
        missing+=(qemu-utils/bookworm)
        extra_opts+=(--allow-downgrades)
    fi
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps: all ${#packages[@]} packages already installed"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "error: missing packages (${missing[*]}) and not root; rerun as root" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}"
# Another apt/dpkg may be running (e.g. an install started in the
# background): wait up to 10 minutes for its lock rather than failing.
apt_opts=(-o DPkg::Lock::Timeout=600)
apt-get "${apt_opts[@]}" update
# --force-confold: libvirt-daemon-system (pulled in by some peers) would
# otherwise stop at a prompt when /etc/libvirt/qemu.conf was edited by hand.
DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y \
    --no-install-recommends "${extra_opts[@]}" \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}"
echo "install-deps: done"
