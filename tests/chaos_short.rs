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
    let _ = std::fs::remove_dir_all(&dir);
}
