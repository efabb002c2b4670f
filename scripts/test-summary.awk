# Reads the output of `cargo test --all-targets --no-fail-fast` (stdout and
# stderr merged), for scripts/test.sh.
#
#   -v mode=progress  (streaming) one line per suite as it finishes, the
#                     output of failing tests, compiler errors
#   -v mode=counts    one line at the end: "<suites> <passed> <failed>
#                     <ignored> <failed suites, comma-separated>"
#
# A suite starts at cargo's "Running <target>" line and ends at libtest's
# "test result:" line; a target without the libtest harness (the benches'
# smoke passes) ends at the next "Running" line or at the end, and failed
# if cargo then says "error: <kind> failed".

function suite_name(line,    n, w) {
  n = split(line, w, " ")
  if (w[2] == "unittests") return w[3] " (unit tests)"
  return w[2]
}

function show_buffer(from, limit,    i, shown) {
  shown = 0
  for (i = from; i <= nbuf; i++) {
    if (shown >= limit) {
      printf "        ... %d more lines in the log\n", nbuf - i + 1
      break
    }
    print "        " buf[i]
    shown++
  }
}

# A suite that ended without a "test result" line (no test harness).
function close_open_suite(failed_now) {
  if (!open) return
  open = 0
  suites++
  if (failed_now) {
    failed++
    bad = bad (bad == "" ? "" : ",") name
    if (mode == "progress") {
      printf "  FAIL  %-40s crashed or failed (no test harness); its output:\n", name
      show_buffer(nbuf > 60 ? nbuf - 59 : 1, 60)
    }
  } else {
    passed++
    if (mode == "progress") {
      printf "  ok    %-40s ran (no test harness)\n", name
      show_buffer(1, 5)
    }
  }
  fflush()
}

BEGIN { open = 0; suites = 0; passed = 0; failed = 0; ignored = 0; bad = ""; compiling_error = 0 }

/^ *Running / {
  close_open_suite(0)
  name = suite_name($0); open = 1; nbuf = 0; failures_at = 0
  next
}

/^test result: / {
  # test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 8.12s
  p = 0; f = 0; ig = 0; t = ""
  if (match($0, /[0-9]+ passed/)) p = substr($0, RSTART, RLENGTH) + 0
  if (match($0, /[0-9]+ failed/)) f = substr($0, RSTART, RLENGTH) + 0
  if (match($0, /[0-9]+ ignored/)) ig = substr($0, RSTART, RLENGTH) + 0
  if (match($0, /finished in [0-9.]+s/)) t = substr($0, RSTART + 12, RLENGTH - 12)
  passed += p; failed += f; ignored += ig; suites++
  if (!open) name = "?"
  open = 0
  if (f > 0) bad = bad (bad == "" ? "" : ",") name
  if (mode == "progress") {
    if (f > 0) {
      printf "  FAIL  %-40s %d of %d failed %10s\n", name, f, p + f, t
      # libtest's "failures:" section: each failing test's output and panic.
      if (failures_at) show_buffer(failures_at, 200)
    } else if (p + ig > 0) {
      # (Suites without tests, such as the binaries' unit tests, are
      # counted but not listed.)
      printf "  ok    %-40s %4d passed%s %10s\n", name, p, (ig ? sprintf(", %d ignored", ig) : ""), t
    }
    fflush()
  }
  next
}

/^error: (test|bench|example) failed/ {
  close_open_suite(1)
  next
}

# Compiler errors (nothing runs): show them, with their context lines.
/^error(\[E[0-9]+\])?: / && !open {
  if ($0 ~ /targets? failed:$/) next
  compiling_error = 1
}
compiling_error {
  if (mode == "progress") print "  " $0
  if ($0 ~ /^$/) compiling_error = 0
  next
}

open {
  buf[++nbuf] = $0
  if ($0 == "failures:" && !failures_at) failures_at = nbuf
}

END {
  close_open_suite(0)
  if (mode == "counts") printf "%d %d %d %d %s\n", suites, passed, failed, ignored, bad
}
