#!/usr/bin/env bash
# Boot the test guest from scripts/build-test-guest.sh under a real libvirtd
# and check, with virsh only, which guest-agent commands answer. A smoke test
# of the testbed itself (not of libvirt-grpc): run it after changing the
# guest or the libvirtd set-up.
#
# Usage: scripts/smoke-test-guest.sh
# Needs: scripts/install-deps.sh --real, root, python3 (JSON + base64).
# Leaves nothing behind: the domain (prefix lvgtest-helper-) and its files
# are removed and a libvirtd this script started is stopped, even on failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly URI="qemu:///system"
readonly NAME="lvgtest-helper-$$-$RANDOM"
TMPD=$(mktemp -d "/tmp/$NAME.XXXXXX")
readonly TMPD
readonly CONSOLE_LOG="$TMPD/console.log"
started_libvirtd=0
failures=0

command -v python3 >/dev/null || {
    echo "python3 needed" >&2
    exit 1
}

virsh_() { virsh -q -c "$URI" "$@"; }

cleanup() {
    virsh_ destroy "$NAME" >/dev/null 2>&1 || true
    virsh_ undefine "$NAME" >/dev/null 2>&1 || true
    if [[ $failures -ne 0 && -f "$CONSOLE_LOG" ]]; then
        echo "--- guest console (last 30 lines) ---" >&2
        tail -n 30 "$CONSOLE_LOG" >&2 || true
    fi
    rm -rf "$TMPD"
    if [[ $started_libvirtd -eq 1 ]]; then
        "$here/libvirtd.sh" stop || true
    fi
}
trap cleanup EXIT

# Run one raw agent command; prints its JSON answer.
agent() { virsh_ qemu-agent-command "$NAME" "$1"; }

# Extract a value from JSON on stdin with a Python expression over `r`.
jget() { python3 -c 'import json,sys,base64; r=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

b64() { printf '%s' "$1" | base64 -w0; }

# check LABEL CMD...: run CMD, print PASS/FAIL with its output's first line.
check() {
    local label="$1" out
    shift
    if out=$("$@" 2>&1); then
        printf 'PASS  %-34s %s\n' "$label" "$(head -c 160 <<<"$out" | tr '\n' ' ')"
    else
        failures=$((failures + 1))
        printf 'FAIL  %-34s %s\n' "$label" "$(head -c 300 <<<"$out" | tr '\n' ' ')"
    fi
}

# guest-exec PATH ARGS... with captured output; prints stdout, fails if the
# process exits non-zero.
guest_run() {
    local path="$1" args pid st
    shift
    args=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@")
    pid=$(agent "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"$path\",\"arg\":$args,\"capture-output\":true}}" | jget 'r["return"]["pid"]')
    for _ in $(seq 100); do
        st=$(agent "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}")
        if [[ $(jget 'r["return"]["exited"]' <<<"$st") == True ]]; then
            jget 'base64.b64decode(r["return"].get("out-data","")).decode()' <<<"$st"
            [[ $(jget 'r["return"].get("exitcode", -1)' <<<"$st") == 0 ]]
            return
        fi
        sleep 0.1
    done
    echo "guest-exec pid $pid did not exit within 10s"
    return 1
}

# --- set-up -----------------------------------------------------------------
t_build=$SECONDS
mapfile -t guest < <("$here/build-test-guest.sh")
echo "guest: ${guest[0]} ${guest[1]} (build/cache check $((SECONDS - t_build))s)"

if ! "$here/libvirtd.sh" status >/dev/null; then
    "$here/libvirtd.sh" start
    started_libvirtd=1
fi

sed -e "s#@NAME@#$NAME#g" -e "s#@KERNEL@#${guest[0]}#g" \
    -e "s#@INITRD@#${guest[1]}#g" -e "s#@CONSOLE_LOG@#$CONSOLE_LOG#g" \
    "$here/test-guest-domain.xml.in" >"$TMPD/domain.xml"
virsh_ define "$TMPD/domain.xml" >/dev/null

start_ns=$(date +%s%N)
virsh_ start "$NAME" >/dev/null
deadline=$((SECONDS + 60))
until agent '{"execute":"guest-ping"}' >/dev/null 2>&1; do
    ((SECONDS < deadline)) || {
        failures=1
        echo "FAIL  guest-ping: no answer within 60s"
        exit 1
    }
    sleep 0.1
done
echo "boot-to-ping: $((($(date +%s%N) - start_ns) / 1000000)) ms"

# --- raw agent commands (virDomainQemuAgentCommand) ----------------------------
check guest-ping agent '{"execute":"guest-ping"}'
check guest-info agent '{"execute":"guest-info"}'
check "guest-exec uname -a" guest_run /bin/uname -a
check guest-get-osinfo agent '{"execute":"guest-get-osinfo"}'
check guest-get-host-name agent '{"execute":"guest-get-host-name"}'
check guest-get-timezone agent '{"execute":"guest-get-timezone"}'
check guest-get-users agent '{"execute":"guest-get-users"}'
check guest-get-vcpus agent '{"execute":"guest-get-vcpus"}'
check guest-network-get-interfaces agent '{"execute":"guest-network-get-interfaces"}'
check guest-get-fsinfo agent '{"execute":"guest-get-fsinfo"}'
check guest-get-disks agent '{"execute":"guest-get-disks"}'

shadow_before=$(guest_run /bin/grep '^tester:' /etc/shadow)
check "guest-set-user-password tester" agent \
    "{\"execute\":\"guest-set-user-password\",\"arguments\":{\"username\":\"tester\",\"password\":\"$(b64 's3cret-1')\",\"crypted\":false}}"
shadow_after=$(guest_run /bin/grep '^tester:' /etc/shadow)
check "  -> /etc/shadow changed" test "$shadow_before" != "$shadow_after"
is_sha512() { [[ $shadow_after == tester:\$6\$* ]]; }
check "  -> hash is sha512" is_sha512
if agent "{\"execute\":\"guest-set-user-password\",\"arguments\":{\"username\":\"nosuchuser\",\"password\":\"$(b64 x)\",\"crypted\":false}}" >/dev/null 2>&1; then
    check "set-user-password unknown user fails" false
else
    check "set-user-password unknown user fails" true
fi

key='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAbcdefghijklmnopqrstuvwxyz0123456789ABCDEFG lvgtest@host'
check guest-ssh-add-authorized-keys agent \
    "{\"execute\":\"guest-ssh-add-authorized-keys\",\"arguments\":{\"username\":\"tester\",\"keys\":[\"$key\"]}}"
keys_listed() {
    agent '{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"tester"}}' |
        grep -F 'lvgtest@host'
}
keys_owned_by_tester() {
    guest_run /bin/stat -c '%u:%g %a' /home/tester/.ssh/authorized_keys | grep -x '1000:1000 600'
}
check "  -> guest-ssh-get-authorized-keys" keys_listed
check "  -> file owned by tester, mode 600" keys_owned_by_tester

freeze_status_is() { agent '{"execute":"guest-fsfreeze-status"}' | grep -F "\"$1\""; }
# The answer is the number of file systems frozen: 1 (/mnt/data).
check guest-fsfreeze-freeze agent '{"execute":"guest-fsfreeze-freeze"}'
check "  -> status frozen" freeze_status_is frozen
check guest-fsfreeze-thaw agent '{"execute":"guest-fsfreeze-thaw"}'
check "  -> status thawed" freeze_status_is thawed

payload="hello from libvirt-grpc $$"
h=$(agent '{"execute":"guest-file-open","arguments":{"path":"/tmp/lvgtest-file","mode":"w"}}' | jget 'r["return"]')
check guest-file-write agent "{\"execute\":\"guest-file-write\",\"arguments\":{\"handle\":$h,\"buf-b64\":\"$(b64 "$payload")\"}}"
check guest-file-close agent "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$h}}"
h=$(agent '{"execute":"guest-file-open","arguments":{"path":"/tmp/lvgtest-file","mode":"r"}}' | jget 'r["return"]')
read_back=$(agent "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":$h,\"count\":4096}}" | jget 'base64.b64decode(r["return"]["buf-b64"]).decode()')
agent "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$h}}" >/dev/null
check "guest-file-read round trip" test "$read_back" == "$payload"

# --- the libvirt APIs built on the agent (what libvirt-grpc will call) ----------
check "GetGuestHostname (domhostname agent)" virsh_ domhostname "$NAME" --source agent
check "GetGuestInfo (guestinfo)" virsh_ guestinfo "$NAME"
check "GetGuestTime (domtime)" virsh_ domtime "$NAME"
check "SetTime (domtime --now)" virsh_ domtime "$NAME" --now
check "GetGuestInterfaceAddresses (agent)" virsh_ domifaddr "$NAME" --source agent
check "GetGuestVcpus (guestvcpus)" virsh_ guestvcpus "$NAME"
check "GetFSInfo (domfsinfo)" virsh_ domfsinfo "$NAME"
check "FSFreeze (domfsfreeze)" virsh_ domfsfreeze "$NAME"
check "FSThaw (domfsthaw)" virsh_ domfsthaw "$NAME"
check "SetUserPassword (set-user-password)" virsh_ set-user-password "$NAME" tester 's3cret-2'
echo "$key" >"$TMPD/keys"
check "AuthorizedSSHKeysSet (set-user-sshkeys)" virsh_ set-user-sshkeys "$NAME" tester --file "$TMPD/keys"
check "AuthorizedSSHKeysGet (get-user-sshkeys)" virsh_ get-user-sshkeys "$NAME" tester

# Last: agent shutdown must power the guest off.
check "Shutdown(mode=agent)" virsh_ shutdown "$NAME" --mode agent
deadline=$((SECONDS + 30))
until [[ $(virsh_ domstate "$NAME") == "shut off" ]]; do
    ((SECONDS < deadline)) || break
    sleep 0.2
done
check "  -> domain shut off" test "$(virsh_ domstate "$NAME")" == "shut off"

echo "failures: $failures"
[[ $failures -eq 0 ]]
