//! A real `frota-echo` for the foundation tests: start it, ping it.

use super::{connect, read_line};
use frota::runtime::launch::NodeProc;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

/// Start `frota-echo` on 127.0.0.1:0 with extra flags.
pub fn start_echo(extra: &[&str]) -> NodeProc {
    let mut args = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    NodeProc::spawn(
        Path::new(env!("CARGO_BIN_EXE_frota-echo")),
        &args,
        &[("RUST_LOG", "warn".to_string())],
        None,
    )
    .expect("frota-echo starts")
}

/// Ping on `s` (inline, id 77) and check the reply envelope.
pub fn ping_on(s: &mut TcpStream, name: &str) {
    s.write_all(b"{\"type\":\"ping\",\"id\":77}\n").unwrap();
    let line = read_line(s);
    let head = format!("{{\"type\":\"ping_ok\",\"in_reply_to\":77,\"name\":\"{name}\",\"role\":\"echo\",\"uptime_ms\":");
    assert!(line.starts_with(&head) && line.ends_with("}\n"), "{line:?}");
}

/// A fresh connection still gets `ping_ok`.
pub fn assert_serving(addr: SocketAddr) {
    let mut s = connect(addr);
    ping_on(&mut s, "echo");
}

/// (VmHWM, VmRSS) of a process in KiB, from /proc/<pid>/status.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    (status_kib(pid, "VmHWM:"), status_kib(pid, "VmRSS:"))
}

/// A process's private writable address space in KiB (VmData): unlike
/// RSS, it counts memory allocated but never touched, which is what an
/// up-front buffer for a declared length would be.
pub fn data_kib(pid: u32) -> u64 {
    status_kib(pid, "VmData:")
}

fn status_kib(pid: u32, name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in /proc/{pid}/status"))
}
