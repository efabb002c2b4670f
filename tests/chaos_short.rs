//! A short chaos run through the real `frota-ctl` binary: both systems under
//! load while nodes are killed and restarted; it must end in PASS with every
//! acknowledged operation in the final state, and every EV answer (retries
//! included) true of it.

use std::process::Command;

#[test]
fn short_chaos_run_passes() {
    let dir = frota::runtime::launch::temp_dir("chaos-short");
    let out = Command::new(env!("CARGO_BIN_EXE_frota-ctl"))
        .args([
            "chaos",
            "--seed",
            "3",
            "--duration-s",
            "8",
            "--settle-s",
            "15",
        ])
        .args(["--progress-ms", "2000", "--dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("frota-ctl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("chaos: PASS"),
        "status {:?}\n{stdout}\n{stderr}",
        out.status
    );
    // Not vacuous: faults happened and work was acknowledged.
    let num = |key: &str| -> u64 {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .and_then(|l| l.trim_start()[key.len()..].split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no '{key}' in the report:\n{stdout}"))
    };
    assert!(num("kills (-9)") >= 3, "{stdout}");
    assert!(num("restarts") >= 3, "{stdout}");
    assert!(num("acknowledged") >= 20, "{stdout}");
    assert_eq!(num("lost"), 0);
    assert_eq!(num("half-reserved routes"), 0);
    assert_eq!(num("double bookings"), 0);
    // Every EV answer was checked against the final state and a lookup.
    assert_eq!(num("ev told vs final state"), 0);
    assert!(num("ev answers") >= 10, "{stdout}");
    // What the verdict says it checked, it checked: retries happened (the
    // report's "N requests retried" — the claim "retries included" is not
    // vacuous), lookups were made and all agreed, and the last line counts
    // the answers it held to the final state.
    let row = |key: &str| -> &str {
        stdout
            .lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no '{key}' in the report:\n{stdout}"))
    };
    let before = |line: &str, words: &str| -> u64 {
        let at = line
            .find(words)
            .unwrap_or_else(|| panic!("no '{words}' in: {line}"));
        line[..at]
            .split(|c: char| !c.is_ascii_digit())
            .rfind(|w| !w.is_empty())
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no count before '{words}' in: {line}"))
    };
    let answers = row("ev answers");
    assert!(
        before(answers, " requests retried") > 0,
        "no retry was exercised:\n{stdout}"
    );
    let agreeing = row("ev told vs final state");
    let (agree, lookups) = agreeing
        .rsplit_once("lookups agreeing ")
        .and_then(|(_, r)| r.trim().split_once('/'))
        .unwrap_or_else(|| panic!("no 'lookups agreeing a/b' in: {agreeing}"));
    assert!(
        lookups.parse::<u64>().unwrap_or(0) > 0,
        "no lookup was checked:\n{stdout}"
    );
    assert_eq!(agree, lookups, "{stdout}");
    let verdict = row("chaos: PASS");
    assert!(before(verdict, " requests checked") > 0, "{verdict}");
    assert!(before(verdict, " answers to ") > 0, "{verdict}");
    assert!(
        before(row("acknowledged"), ", ev ") > 0,
        "no rental request was acknowledged:\n{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
