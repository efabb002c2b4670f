//! Helpers shared by the foundation tests: start a real `frota-echo`, talk
//! raw bytes to it, read what comes back.
#![allow(dead_code)] // each test file uses a different subset

use frota::launch::{wait_until, NodeProc};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// Generous bound for any single read in these tests (10x what we expect).
pub const READ_BOUND: Duration = Duration::from_secs(10);

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

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(READ_BOUND)).unwrap();
    s.set_write_timeout(Some(READ_BOUND)).unwrap();
    let _ = s.set_nodelay(true);
    s
}

/// Read one `\n`-terminated line (an inline frame), byte by byte so that
/// nothing after it is consumed. Panics on EOF or timeout.
pub fn read_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => panic!("EOF after {:?}", String::from_utf8_lossy(&out)),
            Ok(_) => {
                out.push(b[0]);
                if b[0] == b'\n' {
                    return String::from_utf8(out).expect("reply is UTF-8");
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed after {:?}: {e}", String::from_utf8_lossy(&out)),
        }
    }
}

/// Read one length-prefixed frame; returns the whole frame as text.
pub fn read_length_frame(s: &mut TcpStream) -> String {
    let line = read_line(s);
    let n: usize = line.trim_end().parse().expect("length line");
    let mut rest = vec![0u8; n + 1];
    s.read_exact(&mut rest).expect("payload");
    format!("{line}{}", String::from_utf8(rest).expect("UTF-8"))
}

/// Everything until the peer closes (at most READ_BOUND). A reset after the
/// server closed counts as the end too.
pub fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("no close within {READ_BOUND:?}: {e}; got {out:?}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Send `bytes` on a fresh connection, half-close, return all replies.
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = connect(addr);
    s.write_all(bytes).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    read_to_close(&mut s)
}

/// A length-prefixed frame of `payload`.
pub fn lp(payload: &str) -> String {
    format!("{}\n{payload}\n", payload.len())
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

/// The exact inline error line the runtime sends.
pub fn error_line(in_reply_to: Option<u64>, code: u32, name: &str, text: &str) -> String {
    let irt = in_reply_to
        .map(|i| format!("\"in_reply_to\":{i},"))
        .unwrap_or_default();
    let definite = code != 0 && code != 13;
    let text = serde_json::to_string(text).unwrap();
    format!("{{\"type\":\"error\",{irt}\"code\":{code},\"name\":\"{name}\",\"text\":{text},\"definite\":{definite}}}\n")
}

/// `status` of the node, as JSON.
pub fn status(addr: SocketAddr) -> serde_json::Value {
    let mut s = connect(addr);
    s.write_all(b"{\"type\":\"status\"}\n").unwrap();
    serde_json::from_str(&read_line(&mut s)).expect("status is JSON")
}

/// Connections the node counts as open, not counting the one asking.
pub fn open_connections(addr: SocketAddr) -> u64 {
    status(addr)["connections"]["open"]
        .as_u64()
        .expect("open count")
        - 1
}

pub fn wait(cond: impl FnMut() -> bool) -> bool {
    wait_until(READ_BOUND, Duration::from_millis(20), cond)
}

/// (VmHWM, VmRSS) of a process in KiB, from /proc/<pid>/status.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in /proc/{pid}/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}
