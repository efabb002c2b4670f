//! `make test` ends with one verdict line and exits 0 only on success:
//! run scripts/test.sh with a stand-in `cargo` that replays canned outputs
//! (all passing, a failing test, a crashing harness-less bench, a compile
//! error, clippy warnings) and check the last line, the exit status, and
//! that a failing test's own output is shown.

use std::path::{Path, PathBuf};
use std::process::Command;

const PASS: &str = "\
   Compiling frota v0.1.0
    Finished `test` profile [unoptimized + debuginfo] target(s) in 0.77s
     Running unittests src/lib.rs (target/debug/deps/frota-1)

running 2 tests
test a ... ok
test b ... ok

test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s

     Running tests/x.rs (target/debug/deps/x-2)

running 3 tests
test c ... ok
test d ... ok
test e ... ignored

test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.50s

     Running benches/frota.rs (target/debug/deps/frota-3)
bench smoke pass (test build): exercised the runtime floor
";

const FAIL: &str = "\
     Running unittests src/lib.rs (target/debug/deps/frota-1)

running 1 test
test a ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s

     Running tests/a.rs (target/debug/deps/a-2)

running 2 tests
test good ... ok
test bad ... FAILED

failures:

---- bad stdout ----
some output of the test

thread 'bad' panicked at tests/a.rs:2:45:
boom here


failures:
    bad

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.16s

error: test failed, to rerun pass `--test a`
     Running benches/c.rs (target/debug/deps/c-3)
smoke line

thread 'main' panicked at benches/c.rs:1:73:
bench crashed
error: test failed, to rerun pass `--bench c`
error: 2 targets failed:
    `--test a`
    `--bench c`
";

const NO_BUILD: &str = "\
   Compiling frota v0.1.0
error[E0308]: mismatched types
 --> tests/b.rs:2:23
  |
2 | fn x() { let y: u32 = \"s\"; }
  |                       ^^^ expected `u32`, found `&str`

error: could not compile `frota` (test \"b\") due to 1 previous error
";

/// Run scripts/test.sh with a fake cargo: `cargo test` prints `log` and
/// exits `test_rc`; `cargo clippy` exits `clippy_rc`.
fn make_test(tag: &str, log: &str, test_rc: i32, clippy_rc: i32) -> (i32, Vec<String>) {
    let dir = frota::runtime::launch::temp_dir(&format!("make-test-{tag}"));
    let canned = dir.join("cargo-output.txt");
    std::fs::write(&canned, log).unwrap();
    let fake = dir.join("cargo");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  test) cat '{}'; exit {test_rc};;\n  fmt) exit 0;;\n  clippy) [ \"$2\" = --version ] && exit 0; echo 'warning: needless borrow'; exit {clippy_rc};;\nesac\nexit 0\n",
            canned.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("CARGO", &fake)
        .env("FROTA_TEST_LOG", dir.join("test.log"))
        .output()
        .expect("run scripts/test.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        stdout.lines().map(str::to_string).collect(),
    )
}

fn last(lines: &[String]) -> &str {
    lines.last().map(String::as_str).unwrap_or("")
}

#[test]
fn all_passing_ends_in_passed_with_the_counts() {
    let (code, lines) = make_test("pass", PASS, 0, 0);
    assert_eq!(code, 0, "{lines:#?}");
    assert!(
        last(&lines).starts_with(
            "make test: PASSED — 3 suites, 5 tests (1 ignored), fmt clean, clippy clean"
        ),
        "{lines:#?}"
    );
    // No cargo noise on the terminal: one line per suite, and the verdict.
    assert!(lines.len() <= 8, "{lines:#?}");
    assert!(lines.iter().all(|l| !l.contains("Compiling")), "{lines:#?}");
}

#[test]
fn a_failing_test_is_shown_and_ends_in_failed() {
    let (code, lines) = make_test("fail", FAIL, 101, 0);
    assert_eq!(code, 1, "{lines:#?}");
    assert!(
        last(&lines).starts_with(
            "make test: FAILED — 2 of 4 tests failed (tests/a.rs,benches/c.rs), fmt clean, clippy clean"
        ),
        "{lines:#?}"
    );
    let all = lines.join("\n");
    for shown in ["some output of the test", "boom here", "bench crashed"] {
        assert!(all.contains(shown), "the failure's output is shown: {all}");
    }
}

#[test]
fn a_build_error_is_shown_and_ends_in_failed() {
    let (code, lines) = make_test("nobuild", NO_BUILD, 101, 0);
    assert_eq!(code, 1, "{lines:#?}");
    assert!(
        last(&lines).starts_with("make test: FAILED — the tests did not build"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("error[E0308]")),
        "{lines:#?}"
    );
}

#[test]
fn clippy_warnings_fail_the_run() {
    let (code, lines) = make_test("clippy", PASS, 0, 101);
    assert_eq!(code, 1, "{lines:#?}");
    assert!(
        last(&lines).starts_with("make test: FAILED — 5 tests passed, fmt clean, clippy NOT clean"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("needless borrow")),
        "{lines:#?}"
    );
}
