# frota — every command a user needs. `make help` lists them.
#
# Needs only the Rust toolchain (cargo). netcat is optional (for the
# netcat walkthrough); `make nc` installs it on Debian/Ubuntu. Mosquitto is
# optional too (MQTT interop tests, `make run-ev-mosquitto`, watching a run
# with mosquitto_sub); `make deps-mqtt` installs it when it can.

CARGO    ?= cargo
RELEASE  := target/release
CTL      := $(RELEASE)/frota-ctl
SEED     ?=
# The client demo runs the original timings (use 3–7 s, pending wait 120 s) scaled by this:
# 1.0 takes about 30 s; 0.1 about 4 s.
TIME_SCALE ?= 1.0

.PHONY: sim lab help build run run-rental run-ev run-ev-mosquitto deps-mqtt mqtt-interop test bench bench-detector fmt lint clean clean-logs up down status nc check-tools

help:
	@echo "frota make targets:"
	@echo "  make run          start everything on loopback, run both demos, print reports, stop; ends in one verdict"
	@echo "  make test         every test (cargo test, all targets) + fmt and clippy checks; ends in one verdict"
	@echo "  make run-rental   rental demo only (heartbeat, backup, 3 terminals, info desk, clients)"
	@echo "  make run-ev       EV demo only (broker, companies A/B/C, vehicles)"
	@echo "  make run-ev-mosquitto  the EV demo on a real Mosquitto instead of frota-broker"
	@echo "  make deps-mqtt    install mosquitto + mosquitto-clients if missing (needs root + apt; never fails)"
	@echo "  make mqtt-interop Eclipse Paho's MQTT 3.1.1 interop tests on Mosquitto and frota-broker (opt-in: python3, network or PAHO_DIR)"
	@echo "  make bench        performance figures, as ratios against references measured in the same run"
	@echo "  make bench-detector  failure detectors: detection time after kill -9, false suspicions under load"
	@echo "  make up / down / status   leave nodes running in the background (PIDs in run/)"
	@echo "  make traces       run the traced scenarios: docs/traces/*.{txt,md} and the diagrams in protocol.md (trace-rental, trace-ev: one system)"
	@echo "  make fmt | lint | build | clean | clean-logs"
	@echo "  make nc           install netcat (for docs/netcat.md) if missing (root + apt)"
	@echo "  make lab          the labs: break one 2PC safety rule in the simulator, see the counterexample; make lab NAME=<lab> runs one (NAME=all: every lab)"
	@echo "  make sim          the 2PC simulator: 100,000 seeded schedules (SCHEDULES=), or one: SEED=n (shows its counterexample)"
	@echo "  make chaos        both systems under load while random nodes are killed/restarted (SEED=, DURATION= seconds, at least 3)"
	@echo "  make run-netns    (root, Linux) every node in its own network namespace; demos, audits, a partition"

check-tools:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs (rustup) and retry"; exit 1; }

# The verdict line only when `make build` was asked for: before a demo's
# output it would be one more line to read past.
build: check-tools
	@$(CARGO) build --release --bins || { echo "make build: FAILED — cargo build did not finish (errors above)"; exit 1; }
	@$(if $(filter build,$(MAKECMDGOALS)),echo "make build: done — the binaries are in $(RELEASE)/")

# Both demos in one process, so `cargo build` runs (and is echoed) once;
# the last line is the combined verdict (`run: PASS — ...`), exit 0 only
# if both pass.
run: build
	@$(CTL) run --time-scale $(TIME_SCALE) --file examples/carros_solicitados.txt

run-rental: build
	$(CTL) run-rental --time-scale $(TIME_SCALE) --file examples/carros_solicitados.txt

run-ev: build
	$(CTL) run-ev

run-ev-mosquitto: build deps-mqtt
	$(CTL) run-ev --broker-kind mosquitto

# Best effort, never fails: MQTT tests print SKIPPED when Mosquitto is
# missing. Debian's package may start a system mosquitto on 1883; nothing
# here depends on that port (tests use free ports, and frota-broker runs
# without its MQTT listener when 1883 is taken).
MOSQUITTO_OK = command -v mosquitto_sub >/dev/null 2>&1 && command -v mosquitto_pub >/dev/null 2>&1 && \
	{ command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto; }
APT_MQTT = DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto mosquitto-clients
deps-mqtt:
	@if $(MOSQUITTO_OK); then echo "deps-mqtt: mosquitto and mosquitto-clients present"; \
	 elif [ "$$(id -u)" != 0 ]; then echo "deps-mqtt: SKIPPED — not root, cannot install mosquitto (as root: apt-get install mosquitto mosquitto-clients); MQTT interop tests will skip"; \
	 elif ! command -v apt-get >/dev/null 2>&1; then echo "deps-mqtt: SKIPPED — no apt-get; install mosquitto + its clients by hand; MQTT interop tests will skip"; \
	 else echo "deps-mqtt: installing mosquitto mosquitto-clients"; \
	   $(APT_MQTT) >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && $(APT_MQTT) >/dev/null 2>&1; } || true; \
	   if $(MOSQUITTO_OK); then echo "deps-mqtt: installed"; \
	   else echo "deps-mqtt: SKIPPED — apt-get could not install mosquitto (offline?); MQTT interop tests will skip"; fi; \
	 fi

# Opt-in, not part of `make test` (it needs python3 and the Paho suite:
# PAHO_DIR=<checkout of eclipse/paho.mqtt.testing>, else a git clone).
mqtt-interop: build deps-mqtt
	@scripts/mqtt-interop.sh

# Tests run in debug (faster to build; timing bounds are generous). fmt and
# clippy are part of the contract, so they run here too when installed.
# scripts/test.sh keeps cargo's full output in run/test.log, prints one line
# per suite, every failure's output, and ends with the verdict line
# (`make test: PASSED — N suites, M tests, ...`); exit 0 only on success.
test: check-tools deps-mqtt
	@CARGO="$(CARGO)" scripts/test.sh

# The detector bench first, so that the last line is frota's verdict: the
# targets met / NOT met / "floor unstable", and how this run's throughput
# figures compare with the previous run's (docs/performance.md). About
# 7 minutes in all with the default 6 s per figure; `make bench
# FROTA_BENCH_SECS=n` sets another window (the results table for
# docs/performance.md lands in run/bench.md). deps-mqtt first, so that the
# Mosquitto reference rows are measured, not skipped.
bench: check-tools deps-mqtt
	@$(CARGO) bench --bench detector && $(CARGO) bench --bench frota \
	 || { echo "make bench: FAILED — a bench did not finish (its output is above)"; exit 1; }

# Failure detectors: kill -9 a terminal, time until the info desk
# stops handing it out, and false suspicions under CPU load. About a minute.
bench-detector: check-tools
	@$(CARGO) bench --bench detector \
	 && echo "make bench-detector: done — figures above and in run/bench.json" \
	 || { echo "make bench-detector: FAILED — the bench did not finish (its output is above)"; exit 1; }

fmt: check-tools
	@$(CARGO) fmt && echo "make fmt: done — every file formatted (git diff shows what changed)"

# Ends with one verdict line naming what is not clean; exit 0 only if both are.
lint: check-tools
	@$(CARGO) fmt --check || { echo "make lint: FAIL — cargo fmt --check: code not formatted (make fmt fixes it)"; exit 1; }
	@$(CARGO) clippy --all-targets -- -D warnings || { echo "make lint: FAIL — clippy warnings (above)"; exit 1; }
	@echo "make lint: PASS — fmt clean, clippy clean"

up: build
	@scripts/nodes.sh up

down:
	@scripts/nodes.sh down

status:
	@scripts/nodes.sh status

# --- the 2PC simulator ----------------------------------------------------------
# `make sim`: 100,000 seeded schedules of the EV two-phase commit in the
# deterministic simulator (SCHEDULES=n for another count); `make sim SEED=n`
# replays one and prints its shrunk counterexample as steps and a ladder;
# SIM_ARGS passes more flags (`frota-ctl sim --help`, e.g. --rule-off NAME).
SCHEDULES ?= 100000
SIM_ARGS ?=
sim: build
	$(CTL) sim $(if $(SEED),--seed $(SEED),--schedules $(SCHEDULES)) $(SIM_ARGS)

# --- labs: break a rule, watch it fail ----------------------------------------
# `make lab` lists the labs; `make lab NAME=hold-before-vote` runs one: the
# 2PC simulator with that safety rule off, its shortest counterexample as a
# ladder diagram and the invariant it violates (NAME=all: every lab). The
# course that goes with them starts at docs/learn/README.md.
NAME ?=
lab: build
	@$(CTL) lab $(NAME)

# --- chaos and network namespaces -------------------------------------------
.PHONY: chaos run-netns
# `make chaos SEED=7 DURATION=60`: both systems under load while a seeded
# driver kills -9 and restarts random nodes (some at crash points); ends with
# both audits and a PASS/FAIL report (exit 0 only on PASS). DURATION under 3
# is refused: the schedule would hold no fault (docs/tools.md, Chaos runs).
DURATION ?= 60
chaos: build
	$(CTL) chaos --seed $(or $(SEED),1) --duration-s $(DURATION) --dir run/chaos

# Every node in its own network namespace (root, Linux); exits 0 with a
# reason where namespaces are unavailable.
run-netns: build
	scripts/run-netns.sh

# The original's limpar_logs.py: forget past runs.
# Nodes of `make up` are stopped first: with their PID files gone they would
# hold the ports while `make status` called them down.
clean-logs:
	@if ls run/*.pid >/dev/null 2>&1; then scripts/nodes.sh down || exit 1; fi
	@rm -rf data logs run && echo "make clean-logs: done — data/, logs/ and run/ removed"

clean: clean-logs
	@$(CARGO) clean && echo "make clean: done — build output (target/) removed too; the next build starts from scratch"

# Installs netcat when it can (root + apt); exit 1 when netcat is still
# missing, since it was asked for by name (unlike deps-mqtt, which `make
# test` runs and which never fails).
APT_NC = DEBIAN_FRONTEND=noninteractive apt-get install -y -q netcat-openbsd >/dev/null 2>&1
NC_BY_HAND = install it by hand: Debian/Ubuntu 'apt-get install netcat-openbsd'; macOS has nc built in
nc:
	@if command -v nc >/dev/null; then echo "make nc: netcat present ($$(command -v nc))"; \
	 elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	   echo "make nc: FAILED — netcat is missing and cannot be installed here (needs root and apt-get); $(NC_BY_HAND)"; exit 1; \
	 elif $(APT_NC) || { apt-get update -q >/dev/null 2>&1 && $(APT_NC); }; then echo "make nc: installed netcat-openbsd ($$(command -v nc))"; \
	 else echo "make nc: FAILED — apt-get could not install netcat-openbsd (offline?); $(NC_BY_HAND)"; exit 1; fi

# --- traces and teaching docs ------------------------------------------------
# Run the teaching scenarios on a traced deployment (FROTA_TRACE per node) and
# write their ladder diagrams to docs/traces/<scenario>.{txt,md}; `make traces`
# also refreshes the marked regions of protocol.md (<!-- trace:NAME -->) and
# copies the diagrams into the course's chapters (frota-ctl trace-embed).
# tests/traces_doc.rs checks that the committed files match the code.
.PHONY: trace-rental trace-ev traces
trace-rental: build
	$(CTL) trace-scenario rental --out docs/traces

trace-ev: build
	$(CTL) trace-scenario ev --out docs/traces

traces: build
	@$(CTL) trace-scenario rental --out docs/traces --protocol protocol.md \
	 && $(CTL) trace-scenario ev --out docs/traces --protocol protocol.md \
	 && $(CTL) lab all --quiet --out docs/traces \
	 && $(CTL) trace-embed docs/learn/*.md \
	 && echo "make traces: done — docs/traces/ (scenarios and labs), the diagrams in protocol.md and in docs/learn regenerated (git diff shows what changed)" \
	 || { echo "make traces: FAILED — a scenario did not run (its output is above)"; exit 1; }
