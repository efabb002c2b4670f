#!/usr/bin/env bash
# make up / down / status: run every node in the background on loopback with
# its default port, PIDs under run/, logs under logs/, data under data/.
set -u
cd "$(dirname "$0")/.."
BIN=target/release
RUN=run
LOGS=logs
mkdir -p "$RUN" "$LOGS" data

# name | command line (the order is the start order)
nodes() {
cat <<'LIST'
heartbeat|frota-heartbeat --listen 127.0.0.1:7000 --udp 127.0.0.1:7000
backup|frota-backup --listen 127.0.0.1:7002 --data-dir data/backup --heartbeat 127.0.0.1:7000
terminal-1|frota-terminal --id 1 --listen 127.0.0.1:7011 --backup 127.0.0.1:7002 --heartbeat 127.0.0.1:7000
terminal-2|frota-terminal --id 2 --listen 127.0.0.1:7012 --backup 127.0.0.1:7002 --heartbeat 127.0.0.1:7000
terminal-3|frota-terminal --id 3 --listen 127.0.0.1:7013 --backup 127.0.0.1:7002 --heartbeat 127.0.0.1:7000
infodesk|frota-infodesk --listen 127.0.0.1:7001 --heartbeat 127.0.0.1:7000
broker|frota-broker --listen 127.0.0.1:7100
company-A|frota-company --name A --listen 127.0.0.1:7101 --broker 127.0.0.1:7100 --data-dir data/company-a --peers A=127.0.0.1:7101,B=127.0.0.1:7102,C=127.0.0.1:7103
company-B|frota-company --name B --listen 127.0.0.1:7102 --broker 127.0.0.1:7100 --data-dir data/company-b --peers A=127.0.0.1:7101,B=127.0.0.1:7102,C=127.0.0.1:7103
company-C|frota-company --name C --listen 127.0.0.1:7103 --broker 127.0.0.1:7100 --data-dir data/company-c --peers A=127.0.0.1:7101,B=127.0.0.1:7102,C=127.0.0.1:7103
LIST
}

alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

addr_of() { echo "$1" | sed -n 's/.*--listen \([^ ]*\).*/\1/p'; }

up() {
  nodes | while IFS='|' read -r name cmd; do
    if alive "$name"; then echo "$name: already running (pid $(cat "$RUN/$name.pid"))"; continue; fi
    # shellcheck disable=SC2086
    nohup $BIN/$cmd >>"$LOGS/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
    # Wait until it answers ping, so the next node finds it.
    addr=$(addr_of "$cmd")
    for _ in $(seq 1 100); do
      $BIN/frota-ctl --timeout-ms 500 "$addr" '{"type":"ping"}' >/dev/null 2>&1 && break
      alive "$name" || break
      sleep 0.1
    done
    if alive "$name"; then echo "$name: up on $addr (pid $!, log $LOGS/$name.log)";
    else echo "$name: FAILED to start, see $LOGS/$name.log"; fi
  done
}

down() {
  for f in "$RUN"/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    pid=$(cat "$f")
    if kill "$pid" 2>/dev/null; then echo "$name: stopped (pid $pid)"; fi
    rm -f "$f"
  done
}

status() {
  printf '%-12s %-8s %-16s %s\n' NODE PID ADDRESS STATE
  nodes | while IFS='|' read -r name cmd; do
    addr=$(addr_of "$cmd")
    pid=$( [ -f "$RUN/$name.pid" ] && cat "$RUN/$name.pid" || echo -)
    if alive "$name"; then
      if $BIN/frota-ctl --timeout-ms 1000 "$addr" '{"type":"ping"}' >/dev/null 2>&1; then state="alive (answers ping)"; else state="running, NOT answering"; fi
    else state="down"; fi
    printf '%-12s %-8s %-16s %s\n' "$name" "$pid" "$addr" "$state"
  done
}

case "${1:-}" in
  up) up ;; down) down ;; status) status ;;
  *) echo "usage: $0 up|down|status"; exit 2 ;;
esac
