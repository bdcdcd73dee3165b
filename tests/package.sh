#!/usr/bin/env bash
# The Debian package, tested as an installer would use it (run by tests/run, as root):
# build it, lintian, install, check files/owners/modes/user, run the installed binary exactly
# as the unit's ExecStart does with the installed config, /healthz, an MQTT client over TLS,
# upgrade to a newer version keeping an edited config and the data, purge.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
work=$(mktemp -d)
hub_pid=""
cleanup() {
  [ -n "$hub_pid" ] && $SUDO kill "$hub_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "package test FAILED: $*" >&2; exit 1; }
step() { printf '  - %s\n' "$*"; }

# The package test needs the real ports of an installed hub; refuse to fight another one.
if dpkg -s locker-hub >/dev/null 2>&1; then
  echo "locker-hub is already installed on this machine; purging it for a clean test"
  $SUDO dpkg --purge locker-hub >/dev/null
fi

# A release build, shared by both package versions (only the version number differs).
cargo build --release --locked -p locker-hub
export LOCKER_HUB_BIN=$root/target/release/locker-hub
v1=$(packaging/build-deb "$work/v1")
v2=$(VERSION=0.1.1 packaging/build-deb "$work/v2")
step "built $(basename "$v1") and $(basename "$v2")"

# lintian: no errors. Accepted warnings are listed in packaging/README.md with the reason.
lintian --fail-on error --suppress-tags-from-file packaging/lintian-accepted "$v1" \
  || fail "lintian reports errors"
step "lintian: no errors"

$SUDO apt-get install -y -qq "$v1" >/dev/null
step "installed $(basename "$v1")"
getent passwd locker-hub >/dev/null || fail "no locker-hub user"
id -nG locker-hub | grep -qw dialout || fail "locker-hub is not in dialout"
check_mode() { # path owner:group mode
  [ "$(stat -c '%U:%G %a' "$1")" = "$2 $3" ] || fail "$1 is $(stat -c '%U:%G %a' "$1"), want $2 $3"
}
check_mode /usr/bin/locker-hub root:root 755
check_mode /etc/locker-hub/hub.toml root:locker-hub 640
check_mode /var/lib/locker-hub locker-hub:locker-hub 750
check_mode /var/lib/locker-hub/tls/hub.key locker-hub:locker-hub 600
check_mode /lib/systemd/system/locker-hub.service root:root 644
for f in /usr/share/doc/locker-hub/copyright /usr/share/doc/locker-hub/changelog.gz \
         /usr/share/man/man1/locker-hub.1.gz /usr/share/doc/locker-hub/examples/hub.example.toml; do
  [ -f "$f" ] || fail "missing $f"
done
grep -qx /etc/locker-hub/hub.toml /var/lib/dpkg/info/locker-hub.conffiles || fail "hub.toml is not a conffile"
step "files, owners, modes, user and conffile as expected"

# systemd-analyze verify, on the unit as installed: only now do the binary that ExecStart names and
# the man page that Documentation= names exist, so nothing it could say is noise and nothing is
# filtered out. Both its exit status and its output count: it exits 0 after some complaints (an
# unknown key is only a warning, printed), and on a clean unit it prints nothing at all.
unit=/lib/systemd/system/locker-hub.service
verify_status=0
verify_out=$(systemd-analyze verify "$unit" 2>&1) || verify_status=$?
if [ "$verify_status" -ne 0 ] || [ -n "$verify_out" ]; then
  fail "systemd-analyze verify $unit exited $verify_status and said: ${verify_out:-nothing}"
fi
step "systemd-analyze verify: clean (the installed unit, with its binary and man page in place)"

# Run it as the unit does: same user, same command line.
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/locker-hub.service)
start_hub() {
  # setpriv execs the hub itself (runuser would stay in between and eat the exit status).
  $SUDO setpriv --reuid=locker-hub --regid=locker-hub --init-groups -- $exec_start > "$work/hub.log" 2>&1 &
  hub_pid=$!
  for _ in $(seq 1 100); do
    curl -fsk https://127.0.0.1:8443/healthz > "$work/health.json" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$work/hub.log"; fail "installed hub did not answer /healthz"
}
stop_hub() {
  $SUDO kill -TERM "$hub_pid"; wait "$hub_pid" || fail "hub exited with $?"; hub_pid=""
}
start_hub
grep -q '"status":"ok"' "$work/health.json" || fail "healthz: $(cat "$work/health.json")"
step "installed hub answers /healthz over HTTPS"
# An MQTT client over TLS, trusting the installed self-signed certificate: the default config
# has no banks and no anonymous access, so the broker answers "not authorised".
out=$(mosquitto_pub -h localhost -p 8883 --cafile /var/lib/locker-hub/tls/hub.crt -t t -m m 2>&1 || true)
echo "$out" | grep -qi "not authori" || fail "MQTT over TLS: $out"
step "mosquitto_pub reaches the installed broker over TLS (and is refused: no login)"
# Record a delivery (a parcel checked in at the desk) through the API, as staff would.
api() { # METHOD PATH [BODY]
  local token
  token=$($SUDO cat /var/lib/locker-hub/api-token)
  local args=(-sk -X "$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json')
  [ $# -ge 3 ] && args+=(-d "$3")
  curl "${args[@]}" "https://127.0.0.1:8443$2"
}
api POST /api/v1/commands '{"request_id":"pkg-1","type":"register_resident","resident":"r-1","unit":"1"}' \
  | grep -q '"accepted"' || fail "cannot register a resident"
parcel=$(api POST /api/v1/commands '{"request_id":"pkg-2","type":"desk_check_in","resident":"r-1","tracking":"PKG-UPGRADE-1"}' \
  | sed -n 's/.*"parcel":"\([^"]*\)".*/\1/p')
[ -n "$parcel" ] || fail "desk check-in did not record a parcel"
step "recorded a delivery: parcel $parcel"
stop_hub

# The property edits its config: add a bank with a login.
hash=$(printf 'bank-secret' | locker-hub hash-password)
$SUDO tee -a /etc/locker-hub/hub.toml >/dev/null <<TOML

[[bank]]
id = "lobby"
driver = { kind = "mqtt" }
mqtt = { username = "bank-lobby", password_hash = "$hash" }
compartments = [{ doors = "1-8", size = "M" }]
TOML
locker-hub check-config /etc/locker-hub/hub.toml >/dev/null || fail "edited config rejected"

$SUDO apt-get install -y -qq "$v2" >/dev/null
[ "$(dpkg-query -W -f '${Version}' locker-hub)" = 0.1.1 ] || fail "upgrade did not happen"
grep -q 'username = "bank-lobby"' /etc/locker-hub/hub.toml || fail "upgrade lost the config edit"
step "upgraded to 0.1.1; the config edit survived"
start_hub
mosquitto_pub -h localhost -p 8883 --cafile /var/lib/locker-hub/tls/hub.crt \
  -u bank-lobby -P bank-secret -t lockerhub/v1/bank/lobby/status -m '{"online":true}' -q 1 \
  || fail "the bank could not log in after the upgrade"
step "a bank logs in to the upgraded hub over TLS"
api GET /api/v1/parcels | grep -q "\"$parcel\"" || fail "the delivery recorded before the upgrade is gone"
step "the delivery recorded before the upgrade is still there"
stop_hub

$SUDO apt-get remove -y -qq locker-hub >/dev/null
[ -d /var/lib/locker-hub ] || fail "remove deleted the data"
$SUDO apt-get purge -y -qq locker-hub >/dev/null
[ ! -e /var/lib/locker-hub ] || fail "purge left /var/lib/locker-hub"
[ ! -e /etc/locker-hub ] || fail "purge left /etc/locker-hub"
! getent passwd locker-hub >/dev/null || fail "purge left the user"
step "remove keeps data; purge removes data, config and user"
echo "package tests: 1 passed, 0 failed"
