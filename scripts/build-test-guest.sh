#!/usr/bin/env bash
# Build a tiny test guest (kernel + initramfs) whose only job is to run a real
# qemu-guest-agent, so tests can exercise libvirt's agent APIs against QEMU
# without a disk image or any download but Debian packages
# (shared/TESTBED.md section 3).
#
# Usage: scripts/build-test-guest.sh [OUTDIR]
#   OUTDIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/libvirt-grpc/guest.
#   Prints the kernel path and the initrd path, one per line, on stdout.
#
# Needs (scripts/install-deps.sh --real): apt-get (with Debian's archive
# reachable), dpkg, qemu-guest-agent, busybox-static, cpio, gzip.
#
# The result is cached: when OUTDIR holds vmlinuz, initrd.img and a stamp
# equal to this script's own sha256, nothing is rebuilt. Changing the script
# changes the hash and so rebuilds; a newer Debian kernel alone does not.
#
# What the guest offers (qemu-ga 7.2 in an initramfs, busybox userland):
#   - hostname lvg-guest, /etc/os-release ID=lvg-guest
#   - users root (uid 0) and tester (uid 1000, /home/tester/.ssh)
#   - /usr/sbin/chpasswd: a small busybox-sh stand-in for shadow's chpasswd
#     (busybox-static has no chpasswd applet), so guest-set-user-password
#     really rewrites /etc/shadow
#   - /sbin/shutdown: maps qemu-ga's `shutdown -h -P|-H|-r +0` onto busybox
#     poweroff/halt/reboot -f (there is no init system to signal)
#   - /mnt/data: an 8 MiB ext2 file system on a loop device. qemu-ga only
#     freezes mounts with a real block device (it skips major 0: rootfs,
#     tmpfs, proc...), so without it guest-fsfreeze-freeze would "freeze" 0
#     file systems; with it, freeze/thaw do a real FIFREEZE/FITHAW on 1.
#   - a root shell (busybox sh, no prompt) on ttyS0, for the serial console
#     tests; it only sees input when the domain XML gives ttyS0 a pty
set -euo pipefail

log() { echo "build-test-guest: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

outdir="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/libvirt-grpc/guest}"
script_hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)

# Cache hit: same script, both artefacts present.
if [[ -s "$outdir/vmlinuz" && -s "$outdir/initrd.img" && -f "$outdir/stamp" ]] &&
    [[ "$(cat "$outdir/stamp")" == "$script_hash" ]]; then
    log "up to date in $outdir"
    echo "$outdir/vmlinuz"
    echo "$outdir/initrd.img"
    exit 0
fi

for tool in apt-get apt-cache dpkg cpio gzip ldd; do
    command -v "$tool" >/dev/null || die "$tool missing (run scripts/install-deps.sh --real)"
done
[[ -x /usr/sbin/qemu-ga ]] || die "/usr/sbin/qemu-ga missing (install qemu-guest-agent: scripts/install-deps.sh --real)"
# busybox-static, not busybox: a static binary needs no libraries in the guest.
[[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null || true)" == "install ok installed" ]] ||
    die "busybox-static missing (scripts/install-deps.sh --real)"
busybox=/bin/busybox

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download drops to the _apt user when it can: give it a directory it
# may write (otherwise apt warns and falls back to downloading as root).
mkdir "$work/dl"
chmod 755 "$work"
if [[ $(id -u) -eq 0 ]] && getent passwd _apt >/dev/null; then
    chown _apt "$work/dl"
fi

# --- Kernel -----------------------------------------------------------------
# The meta package names the current cloud kernel package; the cloud flavour
# is small and boots fast under TCG. Its virtio drivers are modules.
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9].*-cloud-amd64/ { print $2; exit }')
[[ -n "$kpkg" ]] || die "cannot resolve linux-image-cloud-amd64 (run apt-get update?)"
log "kernel package: $kpkg"
(cd "$work/dl" && apt-get download "$kpkg" >/dev/null) || die "apt-get download $kpkg failed"
dpkg -x "$work/dl/$kpkg"_*.deb "$work/kpkg"
kver=${kpkg#linux-image-}
kmod="$work/kpkg/lib/modules/$kver"
[[ -d "$kmod" ]] || die "no lib/modules/$kver in $kpkg"
vmlinuz="$work/kpkg/boot/vmlinuz-$kver"
[[ -f "$vmlinuz" ]] || die "no boot/vmlinuz-$kver in $kpkg"

# --- Initramfs tree -----------------------------------------------------------
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,mnt/data,lib/modules,home/tester/.ssh,var/log}
ln -s ../run "$root/var/run"

# busybox plus one symlink per applet, at the path busybox itself gives it.
cp "$busybox" "$root/bin/busybox"
while read -r applet; do
    [[ -n "$applet" && "$applet" != bin/busybox ]] || continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -sf /bin/busybox "$root/$applet"
done < <("$busybox" --list-full)

# qemu-ga and every shared library it links, at the paths ldd reports (the
# dynamic loader included: ldd prints it as a bare absolute path).
copy_with_libs() {
    local bin="$1" lib
    mkdir -p "$root/$(dirname "$bin")"
    cp -L "$bin" "$root/$bin"
    while read -r lib; do
        [[ -n "$lib" ]] || continue
        mkdir -p "$root/$(dirname "$lib")"
        cp -L "$lib" "$root/$lib"
    done < <(ldd "$bin" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }')
}
copy_with_libs /usr/sbin/qemu-ga

# Kernel modules, stored uncompressed under plain names so busybox insmod
# (which has no xz/zstd support built in) can load them. Order matters:
# insmod does not resolve dependencies. loop is for /mnt/data (see top);
# virtio_balloon lets a balloon (when the XML has one) really change size.
modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_console virtio_balloon loop)
for m in "${modules[@]}"; do
    src=$(find "$kmod/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \
        -o -name "$m.ko.gz" \) -print -quit)
    [[ -n "$src" ]] || die "module $m not found in $kpkg"
    dst="$root/lib/modules/$m.ko"
    case "$src" in
        *.ko) cp "$src" "$dst" ;;
        *.ko.xz) xz -dc "$src" >"$dst" ;;
        *.ko.zst) zstd -qdc "$src" >"$dst" ;;
        *.ko.gz) gzip -dc "$src" >"$dst" ;;
    esac
done
printf '%s\n' "${modules[@]}" >"$root/lib/modules/order"

# --- Identity files -----------------------------------------------------------
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
tester:x:1000:1000:libvirt-grpc tester:/home/tester:/bin/sh
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
tester:x:1000:
EOF
# Locked passwords ('!') until guest-set-user-password sets one.
cat >"$root/etc/shadow" <<'EOF'
root:!:19000:0:99999:7:::
tester:!:19000:0:99999:7:::
EOF
chmod 600 "$root/etc/shadow"
cat >"$root/etc/os-release" <<'EOF'
NAME="libvirt-grpc test guest"
ID=lvg-guest
VERSION_ID=1
PRETTY_NAME="libvirt-grpc test guest (busybox + qemu-guest-agent)"
EOF
echo lvg-guest >"$root/etc/hostname"

# chpasswd stand-in. qemu-ga runs `chpasswd` (or `chpasswd -e` for a crypted
# password) from PATH and writes "user:password\n" to its stdin; a non-zero
# exit becomes an agent error, so an unknown user must fail.
cat >"$root/usr/sbin/chpasswd" <<'EOF'
#!/bin/sh
crypted=0
[ "${1:-}" = "-e" ] && crypted=1
days=$(( $(date +%s) / 86400 ))
rc=0
while IFS= read -r line || [ -n "$line" ]; do
    user=${line%%:*}
    pass=${line#*:}
    if ! grep -q "^$user:" /etc/shadow; then
        echo "chpasswd: unknown user $user" >&2
        rc=1
        continue
    fi
    if [ "$crypted" = 1 ]; then
        hash=$pass
    else
        hash=$(printf '%s\n' "$pass" | mkpasswd -m sha512) || { rc=1; continue; }
    fi
    awk -F: -v OFS=: -v u="$user" -v h="$hash" -v d="$days" \
        '$1 == u { $2 = h; $3 = d } { print }' /etc/shadow >/etc/shadow.new &&
        chmod 600 /etc/shadow.new && mv /etc/shadow.new /etc/shadow || rc=1
done
exit $rc
EOF
chmod 755 "$root/usr/sbin/chpasswd"

# shutdown stand-in: qemu-ga runs `/sbin/shutdown -h -P|-H|-r +0 msg`.
rm -f "$root/sbin/shutdown"
cat >"$root/sbin/shutdown" <<'EOF'
#!/bin/sh
action=poweroff
for a in "$@"; do
    case "$a" in
        -r) action=reboot ;;
        -H) action=halt ;;
    esac
done
sync
exec "$action" -f
EOF
chmod 755 "$root/sbin/shutdown"

# --- /init ----------------------------------------------------------------------
cat >"$root/init" <<'EOF'
#!/bin/sh
# PID 1 of the libvirt-grpc test guest: set up the bare minimum, then keep
# qemu-ga running forever (PID 1 must never exit: the kernel would panic).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm

while read -r m; do
    insmod "/lib/modules/$m.ko" || echo "init: insmod $m failed" >&2
done </lib/modules/order

hostname lvg-guest
ip link set lo up 2>/dev/null
chown -R 1000:1000 /home/tester
chmod 700 /home/tester/.ssh

# A real block-device file system so fsfreeze has something to freeze
# (busybox mke2fs wants a block device, hence losetup before mke2fs).
if dd if=/dev/zero of=/run/data.img bs=1M count=8 2>/dev/null &&
    dev=$(losetup -f) && losetup "$dev" /run/data.img &&
    mke2fs -q "$dev" >/dev/null 2>&1 && mount -t ext2 "$dev" /mnt/data; then
    chmod 1777 /mnt/data
else
    echo "init: /mnt/data not mounted, fsfreeze will freeze 0 file systems" >&2
fi

# A shell on the serial console (ttyS0), restarted whenever it exits, for
# the console tests (OpenDomainConsole): what is typed there runs as root.
# Without a pty serial (the default guest XML logs ttyS0 to a file) nothing
# reads it and it just waits.
(while :; do setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1'; sleep 1; done) &

echo "init: lvg-guest up, starting qemu-ga" >&2
while :; do
    port=
    for d in /sys/class/virtio-ports/*; do
        if [ "$(cat "$d/name" 2>/dev/null)" = org.qemu.guest_agent.0 ]; then
            port=${d##*/}
        fi
    done
    if [ -n "$port" ] && [ -c "/dev/$port" ]; then
        qemu-ga -m virtio-serial -p "/dev/$port"
        echo "init: qemu-ga exited with $?, restarting" >&2
        sleep 1
    else
        sleep 0.1
    fi
done
EOF
chmod 755 "$root/init"

# --- Pack ----------------------------------------------------------------------
# -R 0:0: every file root-owned in the guest whoever builds it (tester's home
# is chowned at boot).
mkdir -p "$outdir"
rm -f "$outdir/stamp"
(cd "$root" && find . -print0 | LC_ALL=C sort -z |
    cpio --quiet -o -0 -H newc -R 0:0 | gzip -6 >"$outdir/initrd.img.tmp")
cp "$vmlinuz" "$outdir/vmlinuz.tmp"
mv "$outdir/vmlinuz.tmp" "$outdir/vmlinuz"
mv "$outdir/initrd.img.tmp" "$outdir/initrd.img"
echo "$kver" >"$outdir/kernel-version"
echo "$script_hash" >"$outdir/stamp"
log "built guest for kernel $kver in $outdir"
echo "$outdir/vmlinuz"
echo "$outdir/initrd.img"
