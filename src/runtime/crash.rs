//! Named crash points: `FROTA_CRASH_AT=<point>[,<point>...]` makes the
//! process exit at once when it reaches that point, as if killed with -9
//! there (no destructors, no flush of anything not already written).
//!
//! Every node lists its points in `help` and protocol.md lists them all, so a
//! test can stop a node exactly between two steps of a protocol.

use std::sync::OnceLock;

fn armed() -> &'static Vec<String> {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("FROTA_CRASH_AT")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// Exit here if `name` is armed. Exit code 86 tells a test the crash was ours.
pub fn point(name: &str) {
    if armed().iter().any(|a| a == name) {
        crate::wire::trace::note(&format!("CRASH at {name}"), &serde_json::json!({}));
        eprintln!("frota: crash point '{name}' reached; exiting");
        std::process::exit(86);
    }
}

/// Exit code of a process stopped by a crash point.
pub const EXIT_CODE: i32 = 86;
