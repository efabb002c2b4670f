//! Nodes started by a launcher exit when the launcher dies, even by kill -9
//! (`launch::watch_parent`), so a killed demo never leaves nodes holding ports.

use frota::runtime::launch::{wait_until, EXIT_WITH_PARENT};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Gone, or a zombie nobody reaped yet (PID 1 in a container may not).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[test]
fn a_node_exits_when_its_launcher_is_killed() {
    let echo = env!("CARGO_BIN_EXE_frota-echo");
    // bash stands in for frota-ctl: it starts the node and waits.
    let mut launcher = Command::new("bash")
        .arg("-c")
        .arg(format!("{echo} --listen 127.0.0.1:0 & echo pid=$!; wait"))
        .env(EXIT_WITH_PARENT, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bash runs");
    let out = launcher.stdout.take().expect("piped stdout");
    let mut pid = None;
    let mut ready = false;
    for line in BufReader::new(out).lines() {
        let line = line.expect("launcher output");
        if let Some(p) = line.strip_prefix("pid=") {
            pid = p.trim().parse::<u32>().ok();
        }
        ready |= line.starts_with("frota ready ");
        if pid.is_some() && ready {
            break;
        }
    }
    let pid = pid.expect("node pid");
    // While the launcher lives, the node stays (the watch is not trigger-happy).
    assert!(!wait_until(
        Duration::from_millis(800),
        Duration::from_millis(50),
        || gone(pid)
    ));
    launcher.kill().expect("kill -9 the launcher");
    let _ = launcher.wait();
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || gone(
            pid
        )),
        "node {pid} outlived its launcher"
    );
}
