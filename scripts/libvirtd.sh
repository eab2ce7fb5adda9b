#!/usr/bin/env bash
# Start / stop / query a system libvirtd for real-QEMU tests, without systemd
# (and without virtlogd: see stdio_handler below).
#
# Usage: scripts/libvirtd.sh start|stop|status
#
#   start   prepare the host as shared/TESTBED.md section 2 describes, start
#           `libvirtd -d` unless a libvirtd already answers on qemu:///system,
#           wait until it answers. If (and only if) this script started the
#           daemon, its pid is recorded in $LIBVIRTD_STATE_FILE.
#   stop    stop the daemon recorded in the state file (by pid, never by
#           name) and wait for it to exit. A daemon somebody else started is
#           left alone.
#   status  print whether qemu:///system answers; exit 0 if it does, 3 if not.
#
# Environment: LIBVIRTD_STATE_FILE (default /tmp/libvirt-grpc-libvirtd.pid),
#              LIBVIRTD_TIMEOUT seconds to wait for start/stop (default 30).
set -euo pipefail

readonly URI="qemu:///system"
readonly STATE_FILE="${LIBVIRTD_STATE_FILE:-/tmp/libvirt-grpc-libvirtd.pid}"
readonly TIMEOUT="${LIBVIRTD_TIMEOUT:-30}"
readonly DAEMON_PIDFILE="/var/run/libvirtd.pid"
readonly QEMU_CONF="/etc/libvirt/qemu.conf"
readonly QEMU_CONF_BACKUP="${QEMU_CONF}.libvirt-grpc.orig"
readonly LOG_FILE="/var/log/libvirt/libvirtd.log"

conf_changed=0

log() { echo "libvirtd.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# True when a libvirtd answers on qemu:///system. `timeout` guards against a
# daemon that accepted the connection but hangs.
answers() {
    timeout 10 virsh -c "$URI" version >/dev/null 2>&1
}

# True when $1 is the pid of a live libvirtd process (guards against pid reuse
# by checking the command name, not just that the pid exists).
is_libvirtd_pid() {
    local pid="$1"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/comm" ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "libvirtd" ]] || return 1
    # A killed daemon lingers as a zombie until reaped (a container's pid 1
    # may take its time): that is a dead daemon, not one still starting.
    local state
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# Pid from the daemon's own pid file, if that process is alive.
daemon_pid() {
    local pid
    [[ -r "$DAEMON_PIDFILE" ]] || return 1
    pid=$(tr -dc '0-9' <"$DAEMON_PIDFILE")
    is_libvirtd_pid "$pid" || return 1
    echo "$pid"
}

# Set `key = value` in qemu.conf: replace an existing (possibly commented-out)
# assignment, otherwise append. Running it twice changes nothing.
set_conf() {
    local key="$1" value="$2" line
    line="$key = $value"
    if grep -qxF "$line" "$QEMU_CONF"; then
        return 0
    fi
    if grep -qE "^[[:space:]]*#?[[:space:]]*${key}[[:space:]]*=" "$QEMU_CONF"; then
        # Replace only the first occurrence; drop any later duplicates so the
        # value we set is the one libvirt reads.
        awk -v key="$key" -v line="$line" '
            BEGIN { re = "^[[:space:]]*#?[[:space:]]*" key "[[:space:]]*=" }
            $0 ~ re { if (!done) { print line; done = 1 } ; next }
            { print }
        ' "$QEMU_CONF" >"$QEMU_CONF.tmp"
        cat "$QEMU_CONF.tmp" >"$QEMU_CONF"
        rm -f "$QEMU_CONF.tmp"
    else
        printf '%s\n' "$line" >>"$QEMU_CONF"
    fi
}

prepare_host() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (system libvirtd)"
    command -v libvirtd >/dev/null || die "libvirtd missing: run scripts/install-deps.sh --real"
    command -v virsh >/dev/null || die "virsh missing: run scripts/install-deps.sh"

    # Without these directories libvirtd -d fails at start-up on a bare
    # machine (no package post-install created them: no libvirt-daemon-system).
    mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt

    # The QEMU driver resolves its compiled-in default user before it reads
    # qemu.conf, so the user must exist even though we run guests as root.
    if ! getent group libvirt-qemu >/dev/null; then
        groupadd --system libvirt-qemu
    fi
    if ! getent passwd libvirt-qemu >/dev/null; then
        useradd --system --gid libvirt-qemu --home-dir /var/lib/libvirt \
            --no-create-home --shell /usr/sbin/nologin libvirt-qemu
    fi

    # Run QEMU as root with no security driver (no AppArmor/SELinux labels
    # here) and no cgroup controllers (no systemd / delegated cgroups here).
    mkdir -p /etc/libvirt
    if [[ -f "$QEMU_CONF" && ! -e "$QEMU_CONF_BACKUP" ]]; then
        cp -p "$QEMU_CONF" "$QEMU_CONF_BACKUP"
    fi
    touch "$QEMU_CONF"
    local before
    before=$(cksum <"$QEMU_CONF")
    set_conf user '"root"'
    set_conf group '"root"'
    set_conf security_driver '"none"'
    set_conf cgroup_controllers '[ ]'
    # QEMU's stdout/stderr go straight to /var/log/libvirt/qemu/<dom>.log
    # instead of through virtlogd, which nothing starts here: without this
    # every `virsh start` fails with "Failed to connect socket to
    # '/run/libvirt/virtlogd-sock'".
    set_conf stdio_handler '"file"'
    if [[ "$(cksum <"$QEMU_CONF")" != "$before" ]]; then
        conf_changed=1
    fi
}

wait_until_answers() {
    local deadline=$((SECONDS + TIMEOUT))
    until answers; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.2
    done
}

cmd_start() {
    prepare_host

    if answers; then
        log "a libvirtd already answers on $URI; not starting another"
        if [[ $conf_changed -eq 1 ]]; then
            log "warning: $QEMU_CONF was just changed; that daemon runs with the old" \
                "settings until restarted (guests may fail to start)"
        fi
        return 0
    fi

    # A daemon that is still initialising: wait for it instead of racing it.
    local pid
    if pid=$(daemon_pid); then
        log "libvirtd pid $pid exists but does not answer yet; waiting"
        local wait_deadline=$((SECONDS + TIMEOUT))
        while is_libvirtd_pid "$pid"; do
            if answers; then
                return 0
            fi
            ((SECONDS < wait_deadline)) || die "libvirtd pid $pid never answered on $URI"
            sleep 0.2
        done
        log "libvirtd pid $pid went away; starting a new one"
    fi

    # Stale state from an earlier run whose daemon died: forget it.
    rm -f "$STATE_FILE"

    log "starting libvirtd -d (log: $LOG_FILE)"
    # Warnings and errors to a file: with -d, stderr is gone, and the D-Bus /
    # udev / dmidecode warnings it prints on these machines are harmless.
    LIBVIRT_LOG_OUTPUTS="3:file:$LOG_FILE" libvirtd -d
    # libvirtd -d returns once daemonised; the pid file appears shortly after.
    local deadline=$((SECONDS + TIMEOUT))
    until pid=$(daemon_pid); do
        ((SECONDS < deadline)) || die "libvirtd wrote no live pid to $DAEMON_PIDFILE (see $LOG_FILE)"
        sleep 0.1
    done
    echo "$pid" >"$STATE_FILE"
    wait_until_answers || die "libvirtd pid $pid never answered on $URI (see $LOG_FILE)"
    log "libvirtd pid $pid answers on $URI (recorded in $STATE_FILE)"
}

cmd_stop() {
    if [[ ! -f "$STATE_FILE" ]]; then
        log "no $STATE_FILE: this script started no libvirtd; leaving any running one alone"
        return 0
    fi
    local pid
    pid=$(tr -dc '0-9' <"$STATE_FILE")
    if ! is_libvirtd_pid "$pid"; then
        log "recorded libvirtd pid '$pid' is not running"
        rm -f "$STATE_FILE"
        return 0
    fi
    log "stopping libvirtd pid $pid"
    kill -TERM "$pid"
    local deadline=$((SECONDS + TIMEOUT))
    while is_libvirtd_pid "$pid"; do
        if ((SECONDS >= deadline)); then
            log "libvirtd pid $pid ignored SIGTERM for ${TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.1
    done
    rm -f "$STATE_FILE"
    log "stopped"
}

cmd_status() {
    if answers; then
        local owner="started elsewhere"
        [[ -f "$STATE_FILE" ]] && owner="started by this script, pid $(cat "$STATE_FILE")"
        echo "libvirtd answers on $URI ($owner)"
        return 0
    fi
    echo "libvirtd does not answer on $URI"
    return 3
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
