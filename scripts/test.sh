#!/usr/bin/env bash
# make test: every test target (cargo test --all-targets), then fmt and
# clippy, ending in ONE verdict line:
#
#   make test: PASSED — 44 suites, 412 tests, fmt clean, clippy clean (3m10s; log run/test.log)
#   make test: FAILED — 1 of 412 tests failed (tests/ev_2pc.rs), fmt clean, clippy clean (...)
#
# cargo's full output goes to run/test.log; the terminal gets one line per
# test suite as it finishes, the output of every failing test (its panic
# message and what it printed), compiler, fmt and clippy errors, and the
# verdict. Exit status 0 only when everything passed.
#
# The per-suite lines and the verdict come from scripts/test-summary.awk,
# which reads cargo's output; tests/make_test_verdict.rs feeds it canned
# outputs (pass, failure, compile error) and checks the verdict line.
set -u
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
LOG=${FROTA_TEST_LOG:-run/test.log}
mkdir -p "$(dirname "$LOG")"
started=$(date +%s)

echo "make test: cargo test --all-targets (every suite; full output in $LOG)"
# --no-fail-fast: a failing suite does not hide the others' outcome.
# The pipeline's status is cargo's (PIPESTATUS), not awk's.
"$CARGO" test --all-targets --no-fail-fast -- --test-threads=2 2>&1 \
  | tee "$LOG" | awk -f scripts/test-summary.awk -v mode=progress
cargo_rc=${PIPESTATUS[0]}
tests=$(awk -f scripts/test-summary.awk -v mode=counts "$LOG")

# fmt and clippy are part of the contract; their errors are shown.
if "$CARGO" fmt --version >/dev/null 2>&1; then
  if fmt_out=$("$CARGO" fmt --check 2>&1); then fmt="fmt clean"; fmt_ok=1
  else fmt="fmt NOT clean (run: make fmt)"; fmt_ok=0
    echo "--- cargo fmt --check"; echo "$fmt_out" | head -n 40
  fi
else fmt="fmt skipped (rustup component add rustfmt)"; fmt_ok=1
fi
if "$CARGO" clippy --version >/dev/null 2>&1; then
  if clippy_out=$("$CARGO" clippy --all-targets -q -- -D warnings 2>&1); then clippy="clippy clean"; clippy_ok=1
  else clippy="clippy NOT clean (run: make lint)"; clippy_ok=0
    echo "--- cargo clippy --all-targets -- -D warnings"; echo "$clippy_out" | head -n 60
  fi
else clippy="clippy skipped (rustup component add clippy)"; clippy_ok=1
fi

mqtt=""
if ! command -v mosquitto_sub >/dev/null 2>&1; then
  mqtt="; the Mosquitto interop tests skipped themselves (no mosquitto: make deps-mqtt)"
fi
secs=$(( $(date +%s) - started ))
took="$((secs / 60))m$((secs % 60))s; full log $LOG"
# counts: "<suites> <passed> <failed> <ignored> <failed suites...>"
read -r suites passed failed ignored failed_suites <<<"$tests"
total=$((passed + failed))
if [ "$cargo_rc" = 0 ] && [ "$failed" = 0 ] && [ "$fmt_ok" = 1 ] && [ "$clippy_ok" = 1 ]; then
  extra=""; [ "$ignored" != 0 ] && extra=" ($ignored ignored)"
  echo "make test: PASSED — $suites suites, $total tests$extra, $fmt, $clippy$mqtt ($took)"
  exit 0
fi
if [ "$failed" != 0 ]; then
  what="$failed of $total tests failed (${failed_suites:-?})"
elif [ "$cargo_rc" != 0 ] && [ "$suites" = 0 ]; then
  what="the tests did not build (errors above)"
elif [ "$cargo_rc" != 0 ]; then
  what="cargo test failed (exit $cargo_rc) with $total tests passing: a suite without a test harness failed or crashed (see above)"
else
  what="$total tests passed"
fi
echo "make test: FAILED — $what, $fmt, $clippy ($took)"
exit 1
