//! The heartbeat monitor's pause guard with real processes: the
//! monitor is stopped with SIGSTOP
//! for several timeouts, continued with SIGCONT, and right afterwards the
//! info desk must still hand out every live terminal — the monitor's own
//! pause is not a failure of its peers. Then a real failure (kill -9) is
//! still detected. Runs once per detector (fixed, phi).
//!
//! Not vacuous: with `--pause-grace-ms 0` (the guard switched off) both
//! tests fail at the first `get_terminal` after SIGCONT, which lists fewer
//! than three terminals.

mod support;
use support::rental::{bins, send as ask};

use frota::runtime::launch::{temp_dir, wait_until};
use frota::tools::rental::cluster::{ClusterOptions, RentalCluster};
use std::collections::BTreeSet;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} {pid} failed");
}

/// Continues a stopped process even if the test panics midway.
struct Cont(u32);
impl Drop for Cont {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

fn pause_then_failure(detector: &str) {
    let mut opts = ClusterOptions::fast();
    opts.heartbeat_args = vec!["--detector".into(), detector.into()];
    let dir = temp_dir(&format!("pause-{detector}"));
    let mut c = RentalCluster::start_with(bins(), &dir, opts.clone()).expect("cluster starts");

    let alive = ask(
        &c,
        "heartbeat",
        "alive",
        serde_json::json!({"role": "terminal"}),
    )
    .unwrap();
    let nodes = alive["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{alive:?}");
    for n in nodes {
        // `alive` shows phi exactly when the phi detector decides.
        assert_eq!(n.get("phi").is_some(), detector == "phi", "{n:?}");
    }

    // Stop the monitor for 4 timeouts: every peer's last heartbeat is then
    // far older than the timeout (and than any phi threshold) when it wakes.
    let pid = c.pid("heartbeat").expect("monitor running");
    let pause = Duration::from_millis(4 * opts.heartbeat_timeout_ms);
    signal(pid, "-STOP");
    let guard = Cont(pid);
    thread::sleep(pause); // the pause under test, not a wait for a condition
    signal(pid, "-CONT");
    drop(guard);

    // Right after SIGCONT: every answer lists all three terminals.
    let t0 = Instant::now();
    let mut handed = BTreeSet::new();
    for i in 0..12 {
        let r = ask(&c, "infodesk", "get_terminal", serde_json::json!({}))
            .unwrap_or_else(|e| panic!("get_terminal #{i} after SIGCONT failed: {e:?}"));
        assert_eq!(
            r["alive"], 3,
            "a terminal was reported dead after the pause: {r:?}"
        );
        handed.insert(r["terminal"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(handed.len(), 3, "not every terminal handed out: {handed:?}");
    let st = ask(&c, "heartbeat", "status", serde_json::json!({})).unwrap();
    assert!(
        st["pauses"].as_u64().unwrap_or(0) >= 1,
        "the monitor did not notice its own pause: {st:?}"
    );
    assert_eq!(st["suspicions"], 0, "a suspicion was counted: {st:?}");
    eprintln!(
        "{detector}: 12 answers in {:?} after a {pause:?} pause, all with 3 terminals",
        t0.elapsed()
    );

    // A real failure is still detected once the grace period is over.
    c.kill("terminal-2");
    let gone = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        ask(&c, "infodesk", "get_terminal", serde_json::json!({}))
            .map(|r| r["alive"] == 2)
            .unwrap_or(false)
    });
    assert!(gone, "the killed terminal is still handed out");
    // The check thread counts it, once.
    let counted = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        let st = ask(&c, "heartbeat", "status", serde_json::json!({})).unwrap();
        assert!(st["suspicions"].as_u64().unwrap_or(0) <= 1, "{st:?}");
        st["suspicions"] == 1
    });
    assert!(counted, "the failure was never counted as a suspicion");
}

#[test]
fn fixed_detector_ignores_its_own_pause() {
    pause_then_failure("fixed");
}

#[test]
fn phi_detector_ignores_its_own_pause() {
    pause_then_failure("phi");
}
