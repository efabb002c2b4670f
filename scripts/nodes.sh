#!/usr/bin/env bash
# make up / down / status: run every node in the background on loopback with
# its default port, PIDs under run/, logs under logs/, data under data/.
# Each command ends with one verdict line and exits 0 only on success.
#
# A PID file is trusted only while its process is still the node it names
# (`ps` shows that node's binary): a node that died leaves a stale PID file,
# and its number may since have been reused by an unrelated process, which
# `status` reports and `down` never signals.
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
RUN=${RUN:-run}
LOGS=${LOGS:-logs}
DATA=${DATA:-data}
mkdir -p "$RUN" "$LOGS" "$DATA"

# name | command line (the order is the start order). Every address is the
# binary's own default (one place: src/runtime/config.rs), so nothing here repeats
# a port; `up` learns each node's address from its "frota ready" line.
nodes() {
cat <<LIST
heartbeat|frota-heartbeat
backup|frota-backup --data-dir $DATA/backup
terminal-1|frota-terminal --id 1
terminal-2|frota-terminal --id 2
terminal-3|frota-terminal --id 3
infodesk|frota-infodesk
broker|frota-broker
company-A|frota-company --name A --data-dir $DATA/company-a
company-B|frota-company --name B --data-dir $DATA/company-b
company-C|frota-company --name C --data-dir $DATA/company-c
LIST
}

bin_of() { echo "$1" | cut -d' ' -f1; }

# Why the node's PID file does not stand for a running node (empty: it does).
#   "no pid file" | "stale pid N: process gone" | "stale pid N: now used by CMD"
stale() { # name binary
  local f="$RUN/$1.pid" pid cmd
  [ -f "$f" ] || { echo "no pid file"; return; }
  pid=$(cat "$f")
  case "$pid" in ''|*[!0-9]*) echo "bad pid file $f"; return ;; esac
  cmd=$(ps -p "$pid" -o args= 2>/dev/null)
  # A killed node whose parent (the shell of `make up`) is gone may stay a
  # zombie until init reaps it: gone all the same.
  case "$(ps -p "$pid" -o stat= 2>/dev/null)" in Z*) cmd="" ;; esac
  if [ -z "$cmd" ]; then echo "stale pid $pid: process gone"; return; fi
  case "$cmd" in
    *"$2"*) ;;
    *) echo "stale pid $pid: now used by '$(echo "$cmd" | cut -c1-40)'" ;;
  esac
}

alive() { [ -z "$(stale "$1" "$2")" ]; }

# Is process $1 still running (a zombie is not)?
running() { local s; s=$(ps -p "$1" -o stat= 2>/dev/null); [ -n "$s" ] && [ "${s#Z}" = "$s" ]; }

# The address from the node's last "frota ready ... tcp=ADDR" line.
ready_addr() { # name
  grep -a '^frota ready ' "$LOGS/$1.log" 2>/dev/null | tail -n 1 | sed -n 's/.* tcp=\([^ ]*\).*/\1/p'
}

up() {
  local started=0 total=0 failed=""
  while IFS='|' read -r name cmd; do
    total=$((total + 1))
    bin=$(bin_of "$cmd")
    if alive "$name" "$bin"; then
      echo "$name: already running (pid $(cat "$RUN/$name.pid"), $(cat "$RUN/$name.addr" 2>/dev/null))"
      started=$((started + 1)); continue
    fi
    before=$(grep -ac '^frota ready ' "$LOGS/$name.log" 2>/dev/null)
    # Where this start's lines begin: on failure only they are shown, not
    # an earlier run's (a stale "frota ready" above a bind error misleads).
    offset=$( { wc -c <"$LOGS/$name.log"; } 2>/dev/null || echo 0)
    # shellcheck disable=SC2086
    nohup $BIN/$cmd >>"$LOGS/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
    # Wait for its ready line, then until it answers ping (the next node
    # may need it).
    addr=""
    for _ in $(seq 1 100); do
      now=$(grep -ac '^frota ready ' "$LOGS/$name.log" 2>/dev/null)
      if [ "${now:-0}" -gt "${before:-0}" ]; then
        addr=$(ready_addr "$name")
        $BIN/frota-ctl --timeout-ms 500 "$addr" '{"type":"ping"}' >/dev/null 2>&1 && break
      fi
      alive "$name" "$bin" || break
      sleep 0.1
    done
    if alive "$name" "$bin" && [ -n "$addr" ]; then
      echo "$addr" >"$RUN/$name.addr"
      echo "$name: up on $addr (pid $(cat "$RUN/$name.pid"), log $LOGS/$name.log)"
      started=$((started + 1))
    else
      echo "$name: FAILED to start; what it wrote to $LOGS/$name.log:"
      tail -c +$((offset + 1)) "$LOGS/$name.log" | tail -n 3 | sed 's/^/    /'
      failed="$failed $name"
    fi
  done < <(nodes)
  if [ -z "$failed" ]; then
    echo "up: $started of $total nodes running (make status checks them, make down stops them)"
  else
    echo "up: FAILED — $started of $total nodes running; did not start:$failed (logs above; make down stops the rest)"
    exit 1
  fi
}

down() {
  local stopped="" stale_files="" pids=""
  while IFS='|' read -r name cmd; do
    f="$RUN/$name.pid"
    [ -f "$f" ] || continue
    bin=$(bin_of "$cmd")
    why=$(stale "$name" "$bin")
    pid=$(cat "$f")
    if [ -z "$why" ] && kill "$pid" 2>/dev/null; then
      echo "$name: stopped (pid $pid)"
      stopped="$stopped $name"; pids="$pids $pid"
    else
      echo "$name: was not running (${why:-gone}); removed its pid file"
      stale_files="$stale_files $name"
    fi
    rm -f "$f" "$RUN/$name.addr"
  done < <(nodes)
  # Wait (bounded) until they are gone, so a following `make up` finds the
  # ports free.
  for _ in $(seq 1 50); do
    left=""
    for p in $pids; do running "$p" && left="$left $p"; done
    [ -z "$left" ] && break
    sleep 0.1
  done
  n=$(echo "$stopped" | wc -w)
  if [ "$n" = 0 ] && [ -z "$stale_files" ]; then
    echo "down: nothing was running (no PID files in $RUN/)"
  elif [ -n "${left:-}" ]; then
    echo "down: FAILED — sent SIGTERM to $n node(s), but pid(s)$left still run"
    exit 1
  else
    echo "down: stopped $n node(s)$( [ -n "$stale_files" ] && echo "; removed stale PID files of$stale_files")"
  fi
}

status() {
  local up=0 total=0 bad=""
  printf '%-12s %-8s %-16s %s\n' NODE PID ADDRESS STATE
  while IFS='|' read -r name cmd; do
    total=$((total + 1))
    bin=$(bin_of "$cmd")
    addr=$(cat "$RUN/$name.addr" 2>/dev/null || echo -)
    pid=$(cat "$RUN/$name.pid" 2>/dev/null || echo -)
    why=$(stale "$name" "$bin")
    if [ -z "$why" ]; then
      if $BIN/frota-ctl --timeout-ms 1000 "$addr" '{"type":"ping"}' >/dev/null 2>&1; then
        state="alive (answers ping)"; up=$((up + 1))
      else
        state="running, NOT answering ping"; bad="$bad $name (not answering)"
      fi
    elif [ "$why" = "no pid file" ]; then
      state="down"; bad="$bad $name"
    else
      state="down ($why)"; bad="$bad $name ($why)"
    fi
    printf '%-12s %-8s %-16s %s\n' "$name" "$pid" "$addr" "$state"
  done < <(nodes)
  if [ "$up" = "$total" ]; then
    echo "status: all $total nodes alive"
  else
    echo "status: $up of $total nodes alive; not alive:$bad (make up starts them)"
    exit 1
  fi
}

case "${1:-}" in
  up) up ;; down) down ;; status) status ;;
  *) echo "usage: $0 up|down|status"; exit 2 ;;
esac
