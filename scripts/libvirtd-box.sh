#!/usr/bin/env bash
# A private libvirtd - a "host in a box" - beside the machine's own daemon
# (shared/TESTBED.md section 6). Each box is a libvirtd in its own mount
# namespace with private copies of every directory libvirt keeps state in,
# listening on 127.0.0.1:PORT over plain TCP with no authentication, and a
# host UUID of its own (libvirt refuses a migration between two daemons with
# the same host UUID). Nothing of the machine's libvirtd is touched: not its
# sockets, not its definitions, not its pid file.
#
# Usage: scripts/libvirtd-box.sh COMMAND NAME [ARGS]
#
#   start NAME [PORT [TLS_PORT PKI_DIR]]
#                      start the box (PORT is remembered: a restart may omit
#                      it); a box already answering is left as it is. Waits
#                      until qemu+tcp://127.0.0.1:PORT/system answers. With
#                      TLS_PORT and PKI_DIR (cacert.pem, servercert.pem,
#                      serverkey.pem; copied into the box, remembered) it
#                      also listens with TLS on 127.0.0.1:TLS_PORT
#                      (qemu+tls://127.0.0.1:TLS_PORT/system), verifying
#                      client certificates against that CA.
#   stop NAME          destroy the box's running guests and active networks
#                      (the box is private: all of them belong to its user),
#                      stop the daemon by the pid in the box's own pid file,
#                      then end any process still living in the box's mount
#                      namespace (a QEMU left behind by a killed daemon).
#                      Keeps the state directory (definitions survive).
#   kill NAME          SIGKILL the daemon, as a crash would: guests survive
#                      and a later `start` reconnects to them.
#   status NAME        print pid, URIs and state directory; exit 0 when the
#                      box answers, 3 when it does not.
#   pid NAME           print the daemon's pid (exit 3 when none is alive).
#   purge NAME         stop the box, then delete its state directory.
#
# Reached as qemu+tcp://127.0.0.1:PORT/system (QEMU guests, type='qemu' on
# this machine kind) and test+tcp://127.0.0.1:PORT/default (libvirt's test
# driver served by the box; its state is lost when the daemon stops).
#
# Layout of a box, $LIBVIRTD_BOX_ROOT/libvirt-grpc-box-NAME (default root
# /tmp):
#   etc/      bind-mounted over /etc/libvirt: *.conf copied from the machine
#             (no domain, network, pool or secret definitions), plus this
#             box's libvirtd.conf and the qemu.conf settings of
#             scripts/libvirtd.sh
#   run/ lib/ log/ cache/   over /run/libvirt, /var/lib/libvirt,
#             /var/log/libvirt, /var/cache/libvirt
#   libvirtd.pid  the daemon's own pid file (outside the bind mounts, so
#             visible from here);  port, host-uuid: kept across restarts
#   log/libvirtd.log  the daemon's warnings and errors
#
# Safety: a pid is only signalled after checking that /proc/PID/comm is
# libvirtd (or a process of this box), that it is not a zombie, and that its
# /run/libvirt is this box's run/ directory (read from /proc/PID/mountinfo):
# the machine's own libvirtd can never match.
#
# Environment: LIBVIRTD_BOX_ROOT (default /tmp), LIBVIRTD_BOX_TIMEOUT seconds
# to wait for start/stop (default 30), LIBVIRTD_BOX_AS_LIMIT an address-space
# limit for the daemon and its guests, in bytes or with a K/M/G suffix
# (default: none), so that a request that makes
# libvirtd allocate without bound fails inside the box instead of exhausting
# the machine.
set -euo pipefail

readonly ROOT="${LIBVIRTD_BOX_ROOT:-/tmp}"
readonly TIMEOUT="${LIBVIRTD_BOX_TIMEOUT:-30}"
readonly AS_LIMIT="${LIBVIRTD_BOX_AS_LIMIT:-}"

log() { echo "libvirtd-box.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}
usage() {
    sed -n '/^# Usage:/,/^#   purge/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd="${1:-}"
name="${2:-}"
[[ -n "$cmd" && -n "$name" ]] || usage
[[ "$name" =~ ^[A-Za-z0-9_-]{1,32}$ ]] || die "box name '$name': 1-32 letters, digits, _ or -"

readonly BOX="$ROOT/libvirt-grpc-box-$name"
readonly PIDFILE="$BOX/libvirtd.pid"
readonly PORTFILE="$BOX/port"
readonly TLSPORTFILE="$BOX/tls-port"

port() { tr -dc '0-9' <"$PORTFILE" 2>/dev/null || true; }
qemu_uri() { echo "qemu+tcp://127.0.0.1:$(port)/system"; }
test_uri() { echo "test+tcp://127.0.0.1:$(port)/default"; }

# True when the box daemon answers on its TCP port. `timeout` guards against
# a daemon that accepts the connection and then hangs.
answers() {
    [[ -n "$(port)" ]] || return 1
    timeout 10 virsh -c "$(qemu_uri)" version >/dev/null 2>&1
}

# True when process $1 lives in this box: its /run/libvirt is a bind mount of
# this box's run/ directory. The machine's own libvirtd (and any other box)
# sees another /run/libvirt and never matches.
in_box() {
    local pid="$1"
    [[ -r "/proc/$pid/mountinfo" ]] || return 1
    # mountinfo fields: id parent major:minor root mount-point ...
    awk -v want="libvirt-grpc-box-$name/run" '
        $5 == "/run/libvirt" && substr($4, length($4) - length(want) + 1) == want { found = 1 }
        END { exit !found }
    ' "/proc/$pid/mountinfo" 2>/dev/null
}

# True when $1 is a live (not zombie) process of this box; with a second
# argument, also that its command name is exactly that.
is_box_pid() {
    local pid="$1" comm="${2:-}"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/comm" ]] || return 1
    if [[ -n "$comm" && "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$comm" ]]; then
        return 1
    fi
    # A killed process lingers as a zombie until reaped: that is a dead one.
    local state
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
    [[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
    in_box "$pid"
}

# The daemon's pid from the box's own pid file, if that daemon is alive.
daemon_pid() {
    local pid
    [[ -r "$PIDFILE" ]] || return 1
    pid=$(tr -dc '0-9' <"$PIDFILE")
    is_box_pid "$pid" libvirtd || return 1
    echo "$pid"
}

# Every live process of this box except its daemon (QEMU, dnsmasq, ...).
other_box_pids() {
    local d pid daemon
    daemon=$(daemon_pid || true)
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        [[ "$pid" == "$daemon" || "$pid" == "$$" ]] && continue
        is_box_pid "$pid" && echo "$pid"
    done
    return 0
}

# The same preparation as scripts/libvirtd.sh: the QEMU driver resolves its
# compiled-in user before it reads qemu.conf.
prepare_machine() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (a system-mode libvirtd)"
    command -v libvirtd >/dev/null || die "libvirtd missing: run scripts/install-deps.sh --real"
    command -v virsh >/dev/null || die "virsh missing: run scripts/install-deps.sh"
    command -v unshare >/dev/null || die "unshare missing (util-linux)"
    if ! getent group libvirt-qemu >/dev/null; then
        groupadd --system libvirt-qemu
    fi
    if ! getent passwd libvirt-qemu >/dev/null; then
        useradd --system --gid libvirt-qemu --home-dir /var/lib/libvirt \
            --no-create-home --shell /usr/sbin/nologin libvirt-qemu
    fi
}

# Set `key = value` in a libvirt config file (replace, else append).
set_conf() {
    local file="$1" key="$2" value="$3"
    if grep -qE "^[[:space:]]*${key}[[:space:]]*=" "$file"; then
        sed -i -E "s|^[[:space:]]*${key}[[:space:]]*=.*|${key} = ${value}|" "$file"
    else
        printf '%s = %s\n' "$key" "$value" >>"$file"
    fi
}

# Creates the box's directories once; rewrites its configuration every start
# (so a changed port takes effect), keeping its host UUID.
prepare_box() {
    local p="$1"
    mkdir -p "$BOX"/{etc,run,lib,log,cache}
    chmod 700 "$BOX"
    if [[ ! -e "$BOX/etc/.copied" ]]; then
        # Configuration only: the machine's definitions (domains, networks,
        # pools, secrets) belong to its own daemon and would be autostarted
        # here on the same bridges and directories.
        if [[ -d /etc/libvirt ]]; then
            find /etc/libvirt -maxdepth 1 -type f -name '*.conf' -exec cp -p {} "$BOX/etc/" \;
        fi
        mkdir -p "$BOX/etc/qemu/networks" "$BOX/etc/storage" "$BOX/etc/nwfilter" "$BOX/etc/secrets"
        touch "$BOX/etc/.copied"
    fi
    [[ -s "$BOX/host-uuid" ]] || cat /proc/sys/kernel/random/uuid >"$BOX/host-uuid"
    echo "$p" >"$PORTFILE"

    cat >"$BOX/etc/libvirtd.conf" <<EOF
# Written by scripts/libvirtd-box.sh for box '$name'; rewritten at each start.
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "$p"
auth_tcp = "none"
host_uuid = "$(cat "$BOX/host-uuid")"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
    if [[ -s "$TLSPORTFILE" ]]; then
        sed -i 's/^listen_tls = 0$/listen_tls = 1/' "$BOX/etc/libvirtd.conf"
        cat >>"$BOX/etc/libvirtd.conf" <<EOF
tls_port = "$(tr -dc '0-9' <"$TLSPORTFILE")"
auth_tls = "none"
ca_file = "/etc/libvirt/pki/cacert.pem"
cert_file = "/etc/libvirt/pki/servercert.pem"
key_file = "/etc/libvirt/pki/serverkey.pem"
EOF
    fi
    local q="$BOX/etc/qemu.conf"
    touch "$q"
    set_conf "$q" user '"root"'
    set_conf "$q" group '"root"'
    set_conf "$q" security_driver '"none"'
    set_conf "$q" cgroup_controllers '[ ]'
    set_conf "$q" stdio_handler '"file"'
}

# "8G" -> 8589934592 (prlimit takes plain numbers only).
to_bytes() {
    local v="$1" n
    [[ "$v" =~ ^([0-9]+)([KkMmGg]?)$ ]] || die "LIBVIRTD_BOX_AS_LIMIT '$v': a number with an optional K, M or G"
    n="${BASH_REMATCH[1]}"
    case "${BASH_REMATCH[2]}" in
        K | k) n=$((n * 1024)) ;;
        M | m) n=$((n * 1024 * 1024)) ;;
        G | g) n=$((n * 1024 * 1024 * 1024)) ;;
    esac
    echo "$n"
}

wait_until_answers() {
    local pid="$1" deadline=$((SECONDS + TIMEOUT))
    until answers; do
        is_box_pid "$pid" libvirtd || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

cmd_start() {
    local p="${1:-$(port)}"
    [[ "$p" =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || die "start $name: a TCP port is needed (none remembered)"
    if [[ $# -ge 3 ]]; then
        local tp="$2" pki="$3" f
        [[ "$tp" =~ ^[0-9]+$ ]] && ((tp > 0 && tp < 65536)) || die "start $name: TLS_PORT '$tp' is not a port"
        for f in cacert.pem servercert.pem serverkey.pem; do
            [[ -r "$pki/$f" ]] || die "start $name: $pki/$f missing"
        done
        mkdir -p "$BOX/etc/pki"
        chmod 700 "$BOX" "$BOX/etc/pki"
        cp "$pki/cacert.pem" "$pki/servercert.pem" "$pki/serverkey.pem" "$BOX/etc/pki/"
        echo "$tp" >"$TLSPORTFILE"
    fi
    prepare_machine
    local pid
    if pid=$(daemon_pid); then
        if [[ "$(port)" == "$p" ]] && wait_until_answers "$pid"; then
            log "box '$name' already runs (pid $pid) on $(qemu_uri)"
            return 0
        fi
        die "box '$name' runs (pid $pid) but does not answer on port $p; stop it first"
    fi
    prepare_box "$p"
    rm -f "$PIDFILE"

    local limit=()
    if [[ -n "$AS_LIMIT" ]]; then
        limit=(prlimit "--as=$(to_bytes "$AS_LIMIT")")
    fi
    log "starting box '$name' on 127.0.0.1:$p (state $BOX)"
    # A private mount namespace: the bind mounts exist only for the daemon
    # (and the QEMU processes it starts), which keeps the namespace alive
    # after this shell exits. `libvirtd -d` returns once daemonised.
    unshare --mount --propagation private -- /bin/sh -euc '
        box="$1"; shift
        mount --bind "$box/etc" /etc/libvirt
        mount --bind "$box/run" /run/libvirt
        mount --bind "$box/lib" /var/lib/libvirt
        mount --bind "$box/log" /var/log/libvirt
        mount --bind "$box/cache" /var/cache/libvirt
        exec "$@"
    ' box-setup "$BOX" "${limit[@]}" libvirtd -d --listen -p "$PIDFILE" -f /etc/libvirt/libvirtd.conf

    local deadline=$((SECONDS + TIMEOUT))
    until pid=$(daemon_pid); do
        ((SECONDS < deadline)) || die "box '$name' wrote no live pid to $PIDFILE (see $BOX/log/libvirtd.log)"
        sleep 0.1
    done
    wait_until_answers "$pid" || die "box '$name' (pid $pid) never answered on $(qemu_uri) (see $BOX/log/libvirtd.log)"
    log "box '$name' pid $pid answers on $(qemu_uri)"
}

# Ends process $1 (a process of this box): SIGTERM, then SIGKILL after the
# timeout. Returns once it is gone or a zombie.
end_process() {
    local pid="$1" what="$2"
    is_box_pid "$pid" || return 0
    log "stopping $what pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo '?'))"
    kill -TERM "$pid" 2>/dev/null || return 0
    local deadline=$((SECONDS + TIMEOUT))
    while is_box_pid "$pid"; do
        if ((SECONDS >= deadline)); then
            log "$what pid $pid ignored SIGTERM for ${TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            return 0
        fi
        sleep 0.1
    done
}

cmd_stop() {
    local pid
    if answers; then
        local uri d n
        uri=$(qemu_uri)
        # Guests and networks outlive their daemon: end them while it still
        # answers, so no QEMU, dnsmasq or bridge stays behind.
        while read -r d; do
            [[ -n "$d" ]] && timeout 30 virsh -q -c "$uri" destroy "$d" >/dev/null 2>&1 || true
        done < <(timeout 10 virsh -q -c "$uri" list --name 2>/dev/null || true)
        while read -r n; do
            [[ -n "$n" ]] && timeout 30 virsh -q -c "$uri" net-destroy "$n" >/dev/null 2>&1 || true
        done < <(timeout 10 virsh -q -c "$uri" net-list --name 2>/dev/null || true)
    fi
    if pid=$(daemon_pid); then
        end_process "$pid" "box '$name' libvirtd"
    else
        log "box '$name': no live daemon"
    fi
    # What a killed daemon left behind (a QEMU it was starting, dnsmasq).
    local p
    for p in $(other_box_pids); do
        end_process "$p" "box '$name' leftover"
    done
}

cmd_kill() {
    local pid
    pid=$(daemon_pid) || die "box '$name': no live daemon to kill"
    log "SIGKILL box '$name' libvirtd pid $pid"
    kill -KILL "$pid"
    local deadline=$((SECONDS + TIMEOUT))
    while is_box_pid "$pid" libvirtd; do
        ((SECONDS < deadline)) || die "pid $pid survived SIGKILL"
        sleep 0.05
    done
}

cmd_status() {
    local pid
    pid=$(daemon_pid || true)
    echo "box:      $name"
    echo "state:    $BOX"
    echo "pid:      ${pid:-none}"
    if [[ -n "$(port)" ]]; then
        echo "qemu uri: $(qemu_uri)"
        echo "test uri: $(test_uri)"
    fi
    local others
    others=$(other_box_pids | tr '\n' ' ')
    [[ -n "$others" ]] && echo "other processes in the box: $others"
    if [[ -n "$pid" ]] && answers; then
        echo "answers:  yes"
        return 0
    fi
    echo "answers:  no"
    return 3
}

cmd_pid() {
    daemon_pid || exit 3
}

cmd_purge() {
    cmd_stop
    [[ -d "$BOX" ]] || return 0
    [[ -z "$(other_box_pids)" ]] || die "processes still live in box '$name'; not deleting $BOX"
    rm -rf --one-file-system "$BOX"
    log "box '$name' purged"
}

case "$cmd" in
    start) cmd_start "${@:3}" ;;
    stop) cmd_stop ;;
    kill) cmd_kill ;;
    status) cmd_status ;;
    pid) cmd_pid ;;
    purge) cmd_purge ;;
    *) usage ;;
esac
