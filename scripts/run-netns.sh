#!/usr/bin/env bash
# make run-netns: every frota node in its own Linux network namespace, with
# its own private address, so nothing can lean on loopback: every address a
# node uses comes from its flags.
#
#   namespace      address        node
#   frota-br       (no address)   bridge br0 joining every veth
#   frota-hb       10.77.0.10     heartbeat monitor (TCP+UDP :7000)
#   frota-desk     10.77.0.12     info desk :7001
#   frota-bk       10.77.0.11     backup :7002
#   frota-t1..t3   10.77.0.21-23  terminals :7011-7013
#   frota-brk      10.77.0.30     broker :7100
#   frota-coA..C   10.77.0.31-33  companies :7101-7103
#   frota-cli      10.77.0.50     rental clients, vehicles, audits (frota-ctl)
#
# Steps: start all nodes, run the rental clients and the EV vehicles, audit
# both; then cut company B's namespace off (link down) while more vehicles
# ask for routes, heal it, and audit again (no half-reserved route, no hold
# left). Everything is removed on exit (trap), even on Ctrl-C.
#
# The 10.77.0.0/24 addresses live only inside these namespaces: the bridge is
# in its own namespace too, nothing is added to the host's network.
#
# Where namespaces are unavailable (not Linux, not root, no `ip netns`), it
# says why and exits 0.
set -u
cd "$(dirname "$0")/.."

skip() { echo "run-netns: SKIPPED — $*"; exit 0; }
[ "$(uname -s)" = Linux ] || skip "network namespaces need Linux (this is $(uname -s))"
[ "$(id -u)" = 0 ] || skip "creating namespaces needs root (run: sudo make run-netns)"
command -v ip >/dev/null || skip "the 'ip' tool (iproute2) is not installed"
probe=frota-probe-$$
ip netns add "$probe" 2>/dev/null || skip "'ip netns add' failed here (a container without CAP_SYS_ADMIN?)"
ip netns del "$probe"

BIN=${BIN:-target/release}
[ -x "$BIN/frota-ctl" ] || BIN=target/debug
[ -x "$BIN/frota-ctl" ] || { echo "run-netns: FAIL — no binaries in target/release or target/debug; run 'make build'"; exit 1; }
OUT=${OUT:-run/netns}
rm -rf "$OUT"
mkdir -p "$OUT/logs" "$OUT/data"
PREFIX=10.77.0
NSES=(frota-hb frota-desk frota-bk frota-t1 frota-t2 frota-t3 frota-brk frota-coA frota-coB frota-coC frota-cli)
declare -A IP=([frota-hb]=10 [frota-desk]=12 [frota-bk]=11 [frota-t1]=21 [frota-t2]=22 [frota-t3]=23
               [frota-brk]=30 [frota-coA]=31 [frota-coB]=32 [frota-coC]=33 [frota-cli]=50)
PIDS=()

cleanup() {
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  for ns in "${NSES[@]}" frota-br; do ip netns del "$ns" 2>/dev/null; done
  echo "run-netns: cleaned up (namespaces, veths, bridge, processes)"
  # The verdict is the last line, after the clean-up.
  echo "${VERDICT:-run-netns: FAIL — interrupted}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

VERDICT=""
fail() { VERDICT="run-netns: FAIL — $*"; exit 1; }
at() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
addr() { echo "$PREFIX.${IP[$1]}"; }

# --- network ----------------------------------------------------------------
ip netns add frota-br || fail "cannot create namespace frota-br"
at frota-br ip link add br0 type bridge || fail "cannot create the bridge"
at frota-br ip link set br0 up
at frota-br ip link set lo up
i=0
for ns in "${NSES[@]}"; do
  i=$((i + 1))
  ip netns add "$ns" || fail "cannot create namespace $ns"
  # Create the pair inside frota-br, then move one end into the node's namespace.
  at frota-br ip link add "v$i" type veth peer name eth0 || fail "cannot create a veth pair"
  at frota-br ip link set eth0 netns "$ns"
  at frota-br ip link set "v$i" master br0
  at frota-br ip link set "v$i" up
  at "$ns" ip addr add "$(addr "$ns")/24" dev eth0
  at "$ns" ip link set eth0 up
  at "$ns" ip link set lo up
done
echo "run-netns: ${#NSES[@]} namespaces on bridge br0 (in namespace frota-br), addresses $PREFIX.0/24"

# --- nodes ------------------------------------------------------------------
HB=$(addr frota-hb):7000
BK=$(addr frota-bk):7002
DESK=$(addr frota-desk):7001
BRK=$(addr frota-brk):7100
PEERS="A=$(addr frota-coA):7101,B=$(addr frota-coB):7102,C=$(addr frota-coC):7103"

start() { # ns name args...
  local ns=$1 name=$2; shift 2
  ip netns exec "$ns" "$@" >>"$OUT/logs/$name.log" 2>&1 &
  PIDS+=($!)
}

ping_ok() { at frota-cli "$BIN/frota-ctl" --timeout-ms 500 "$1" '{"type":"ping"}' >/dev/null 2>&1; }

wait_ping() { # addr name
  for _ in $(seq 1 100); do ping_ok "$1" && { echo "  $2 up on $1"; return 0; }; sleep 0.1; done
  fail "$2 does not answer on $1 (log: $OUT/logs/$2.log)"
}

start frota-hb heartbeat "$BIN/frota-heartbeat" --listen "$HB" --udp "$HB"
wait_ping "$HB" heartbeat
start frota-bk backup "$BIN/frota-backup" --listen "$BK" --data-dir "$OUT/data/backup" --heartbeat "$HB"
wait_ping "$BK" backup
for t in 1 2 3; do
  a=$(addr "frota-t$t"):701$t
  start "frota-t$t" "terminal-$t" "$BIN/frota-terminal" --id "$t" --listen "$a" --backup "$BK" --heartbeat "$HB"
  wait_ping "$a" "terminal-$t"
done
start frota-desk infodesk "$BIN/frota-infodesk" --listen "$DESK" --heartbeat "$HB"
wait_ping "$DESK" infodesk
start frota-brk broker "$BIN/frota-broker" --listen "$BRK"
wait_ping "$BRK" broker
for c in A B C; do
  a=$(addr "frota-co$c"):710$(( $(printf '%d' "'$c") - 64 ))
  lc=$(echo "$c" | tr 'A-Z' 'a-z')
  start "frota-co$c" "company-$c" "$BIN/frota-company" --name "$c" --listen "$a" --broker "$BRK" \
    --peers "$PEERS" --data-dir "$OUT/data/company-$lc" --hold-expiry-ms 2000 --ask-interval-ms 300
  wait_ping "$a" "company-$c"
done

# Terminals are handed out by the info desk once the monitor heard them.
for _ in $(seq 1 50); do
  n=$(at frota-cli "$BIN/frota-ctl" "$HB" '{"type":"alive"}' 2>/dev/null | grep -c '"terminal-')
  [ "${n:-0}" -ge 3 ] && break
  sleep 0.1
done

# --- both demos -------------------------------------------------------------
echo "run-netns: rental clients (from $(addr frota-cli), callbacks on that address)"
at frota-cli "$BIN/frota-client" --infodesk "$DESK" --callback-host "$(addr frota-cli)" \
  --time-scale 0.05 --clients 5 --seed 1 --file examples/carros_solicitados.txt \
  2>>"$OUT/logs/clients.log" | tail -n 20
echo "run-netns: rental audit"
at frota-cli "$BIN/frota-ctl" audit-rental --backup "$BK" --heartbeat "$HB" --attempts 10 || fail "rental audit"

echo "run-netns: EV vehicles"
# 100 vehicles are named v001..v100, the 8 of the partition step v01..v08:
# coordinators answer a repeated (vehicle, request_id) from memory, so the
# two runs must not share names.
at frota-cli "$BIN/frota-vehicle" --broker "$BRK" --vehicles 100 --contended 12 --seed 7 --progress-ms 60000 \
  2>>"$OUT/logs/vehicles.log" | tail -n 3
at frota-cli "$BIN/frota-ctl" audit-ev --companies "$PEERS" --wait-ms 10000 || fail "EV audit"

# --- partition --------------------------------------------------------------
B=$(addr frota-coB):7102
echo "run-netns: partition: company B's namespace cut off (eth0 down)"
at frota-coB ip link set eth0 down
ping_ok "$B" && fail "company B still answers while cut off"
echo "  company B unreachable from $(addr frota-cli): ok"
echo "run-netns: 8 vehicles ask for routes during the partition. Every route has a stop at B, so none"
echo "  can be reserved while B is cut off (a route is reserved at every stop or at none), and each"
echo "  vehicle is expected to end 'rejected' (a stop refused: taken already, or B's vote never came)"
echo "  or 'failed' (no answer within its 8 s: the broker handed the request to B, which cannot answer,"
echo "  or the coordinator was still retrying B). What must hold: nothing reserved now, nothing left"
echo "  half-reserved after the heal (the audit below checks)."
at frota-cli "$BIN/frota-vehicle" --broker "$BRK" --vehicles 8 --contended 0 --seed 11 --timeout-ms 8000 \
  --progress-ms 60000 2>>"$OUT/logs/vehicles.log" | sed 's/^/  /' | tail -n 9 > "$OUT/partition.txt"
cat "$OUT/partition.txt"
grep -q ' 0 reserved' "$OUT/partition.txt" || fail "a route was reserved while company B was cut off"
echo "  0 reserved during the partition, as expected"
echo "run-netns: heal: eth0 up"
at frota-coB ip link set eth0 up
wait_ping "$B" company-B
echo "run-netns: EV audit after the partition healed (waits for in-doubt holds to resolve)"
at frota-cli "$BIN/frota-ctl" audit-ev --companies "$PEERS" --wait-ms 20000 || fail "EV audit after the partition"
VERDICT="run-netns: PASS — both demos and audits passed in separate namespaces; during company B's partition no route was reserved, after the heal no hold is left"
