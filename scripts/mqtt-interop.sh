#!/usr/bin/env bash
# make mqtt-interop: Eclipse Paho's MQTT 3.1.1 interoperability tests
# (client_test.py) against a Mosquitto and a frota-broker, each on a free
# loopback port, and a verdict: every test that passes on Mosquitto must
# pass on frota-broker. Opt-in (needs python3 and the suite: PAHO_DIR=<a
# checkout of eclipse/paho.mqtt.testing>, else a git clone is tried).
# Exits 0 with SKIPPED and the reason when something is missing.
set -u
cd "$(dirname "$0")/.."
skip() { echo "mqtt-interop: SKIPPED — $*"; exit 0; }
command -v python3 >/dev/null || skip "python3 not installed"
dir="${PAHO_DIR:-target/paho.mqtt.testing}"
if [ ! -f "$dir/interoperability/client_test.py" ]; then
  command -v git >/dev/null || skip "no git to fetch the suite; set PAHO_DIR"
  echo "mqtt-interop: fetching the Paho suite into $dir"
  git clone -q --depth 1 https://github.com/eclipse/paho.mqtt.testing "$dir" 2>/dev/null ||
    skip "could not fetch eclipse/paho.mqtt.testing (offline?); set PAHO_DIR to a checkout"
fi
suite="$dir/interoperability"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
work=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
mosq=$(command -v mosquitto || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; })
if [ -n "$mosq" ]; then
  mport=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mport" >"$work/m.conf"
  "$mosq" -c "$work/m.conf" >"$work/m.log" 2>&1 & pids+=($!)
  wait_port "$mport" || skip "mosquitto did not start"
  python3 scripts/paho_client_test.py "$suite" "$mport" mosquitto | tee "$work/mosquitto.txt"
else
  echo "mqtt-interop: mosquitto not installed (make deps-mqtt): frota-broker alone"
  : >"$work/mosquitto.txt"
fi
fport=$(free_port)
target/release/frota-broker --listen 127.0.0.1:0 --mqtt-listen "127.0.0.1:$fport" >"$work/f.log" 2>&1 & pids+=($!)
wait_port "$fport" || { echo "mqtt-interop: FAIL — frota-broker did not start"; exit 1; }
python3 scripts/paho_client_test.py "$suite" "$fport" frota-broker | tee "$work/frota.txt"
missing=$(awk '$2=="mosquitto" && $4=="pass" {print $3}' "$work/mosquitto.txt" | while read -r t; do
  grep -q "^paho frota-broker $t pass" "$work/frota.txt" || echo "$t"; done)
if [ -n "$missing" ]; then
  echo "mqtt-interop: FAIL — passes on Mosquitto but not on frota-broker: $(echo $missing)"; exit 1
fi
echo "mqtt-interop: PASS — every Paho test that passes on Mosquitto passes on frota-broker"
