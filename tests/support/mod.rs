//! The one test-support module (not a test target itself): every test file
//! says `mod support;` and takes what it needs.
//!
//! Here: talking raw bytes to a node (connect, read a line or a frame, read
//! until the close, the exact error line), one request, polling with a
//! bound, the seeded generator, and a rental client's callback listener. Below: what only some tests need —
//! [`echo`] (a real `frota-echo`), [`hostile`] (any node kind with its
//! helpers, a peer process), [`rental`] and [`ev`] (clusters and their
//! requests), [`logs`] (a standalone backup, log damage, a tmpfs),
//! [`mqtt_fuzz`] (MQTT packets to mutate), [`proc`] (an outside program),
//! [`docs`] (the deployments a document's examples replay against).
#![allow(dead_code)] // each test file uses a different subset

pub mod docs;
pub mod echo;
pub mod ev;
pub mod hostile;
pub mod logs;
pub mod mqtt_fuzz;
pub mod proc;
pub mod rental;

pub use frota::runtime::rng::Rng;

use crossbeam_channel::Receiver;
use frota::runtime::client::{call, ClientConfig};
use frota::runtime::launch::{wait_until, NodeProc};
use frota::runtime::server::{Server, ServerConfig};
use frota::tools::rental::client_sim::Listener;
use frota::{body, Body, Error};
use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Generous bound for any single read or wait in these tests (10x what we
/// expect): the machine is shared and slow at times.
pub const BOUND: Duration = Duration::from_secs(10);

/// Wait (bounded by twice [`BOUND`]) for a node to stop at its crash point
/// (`FROTA_CRASH_AT`): it must exit with the crash points' status.
pub fn assert_crash_exit(p: &mut NodeProc, what: &str) {
    let status = p.wait_exit(2 * BOUND);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(frota::runtime::crash::EXIT_CODE),
        "{what}: {status:?}"
    );
}

/// A TCP connection with read and write bounded by [`BOUND`], no Nagle.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(BOUND)).expect("read timeout");
    s.set_write_timeout(Some(BOUND)).expect("write timeout");
    let _ = s.set_nodelay(true);
    s
}

/// One `\n`-terminated line (an inline frame), byte by byte so that nothing
/// after it is consumed. Panics on EOF or timeout, saying what was read.
pub fn read_line(s: &mut TcpStream) -> String {
    read_line_or_why(s).unwrap_or_else(|why| panic!("no whole line: {why}"))
}

/// One line, or `None` on EOF, reset or timeout.
pub fn try_read_line(s: &mut TcpStream) -> Option<String> {
    read_line_or_why(s).ok()
}

/// One `\n`-terminated line, or what was read and how it ended short (EOF,
/// or the error), for failure messages.
pub fn read_line_or_why(s: &mut TcpStream) -> Result<String, String> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(1) => {
                out.push(b[0]);
                if b[0] == b'\n' {
                    return String::from_utf8(out).map_err(|e| format!("not UTF-8: {e}"));
                }
            }
            // A signal can interrupt a read with a timeout even under
            // SA_RESTART; that is not the end of the stream.
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Ok(_) => return Err(format!("{}<EOF>", String::from_utf8_lossy(&out))),
            Err(e) => {
                return Err(format!(
                    "{}<{:?}: {e}>",
                    String::from_utf8_lossy(&out),
                    e.kind()
                ))
            }
        }
    }
}

/// One length-prefixed frame; the whole frame as text.
pub fn read_length_frame(s: &mut TcpStream) -> String {
    let line = read_line(s);
    let n: usize = line.trim_end().parse().expect("length line");
    let mut rest = vec![0u8; n + 1];
    s.read_exact(&mut rest).expect("payload");
    format!("{line}{}", String::from_utf8(rest).expect("UTF-8"))
}

/// Everything until the peer closes (at most [`BOUND`]). A reset after the
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
            Err(e) => panic!("no close within {BOUND:?}: {e}; got {out:?}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Send `bytes` on a fresh connection, half-close, return all replies.
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = connect(addr);
    s.write_all(bytes).expect("send");
    let _ = s.shutdown(std::net::Shutdown::Write);
    read_to_close(&mut s)
}

/// A length-prefixed frame of `payload`.
pub fn lp(payload: &str) -> String {
    format!("{}\n{payload}\n", payload.len())
}

/// The line a node sends before closing a connection that has not
/// completed a frame within its frame or idle timeout.
pub fn timeout_close_line() -> String {
    error_line(
        None,
        0,
        "timeout",
        "no complete frame within the timeout; closing",
    )
}

/// The exact inline error line the runtime sends.
pub fn error_line(in_reply_to: Option<u64>, code: u32, name: &str, text: &str) -> String {
    let irt = in_reply_to
        .map(|i| format!("\"in_reply_to\":{i},"))
        .unwrap_or_default();
    let definite = code != 0 && code != 13;
    let text = serde_json::to_string(text).expect("json");
    format!("{{\"type\":\"error\",{irt}\"code\":{code},\"name\":\"{name}\",\"text\":{text},\"definite\":{definite}}}\n")
}

/// `status` on `s`, as JSON.
pub fn status_on(s: &mut TcpStream) -> Value {
    s.write_all(b"{\"type\":\"status\"}\n")
        .expect("send status");
    serde_json::from_str(&read_line(s)).expect("status is JSON")
}

/// `status` of the node on a fresh connection, as JSON.
pub fn status(addr: SocketAddr) -> Value {
    status_on(&mut connect(addr))
}

/// Connections the node counts as open, not counting the one asking.
pub fn open_connections(addr: SocketAddr) -> u64 {
    status(addr)["connections"]["open"]
        .as_u64()
        .expect("open count")
        .saturating_sub(1)
}

/// Poll `cond` until it holds (true) or [`BOUND`] passes (false).
pub fn wait(cond: impl FnMut() -> bool) -> bool {
    wait_secs(BOUND.as_secs(), cond)
}

/// Poll `cond` until it holds (true) or `secs` seconds pass (false).
pub fn wait_secs(secs: u64, cond: impl FnMut() -> bool) -> bool {
    wait_until(Duration::from_secs(secs), Duration::from_millis(20), cond)
}

/// One request to `addr`, no retries (a test wants to see each failure).
pub fn send_to(addr: &str, kind: &str, fields: Value, timeout: Duration) -> Result<Body, Error> {
    let cfg = ClientConfig::default()
        .with_timeout(timeout)
        .with_retries(0);
    call(addr, kind, body(fields), &cfg)
}

/// A string field, or "" when absent (for comparing replies).
pub fn s(b: &Body, k: &str) -> String {
    b.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// A fuzz seed: `FROTA_FUZZ_SEED` if set, else `default`; printed so that a
/// failing run can be replayed.
pub fn fuzz_seed(test: &str, default: u64) -> u64 {
    let seed = std::env::var("FROTA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    println!("{test}: fuzz seed {seed} (rerun with FROTA_FUZZ_SEED={seed})");
    seed
}

/// A rental client's callback listener (the client simulator's own): every
/// `car_ready` it answers arrives on the receiver.
pub fn callback_listener(name: &str) -> (Server, Receiver<Body>) {
    let (tx, rx) = crossbeam_channel::bounded(8);
    let srv = Server::start(ServerConfig::default(), Listener::new(name, tx))
        .expect("a callback listener on a free port");
    (srv, rx)
}

/// The next MQTT message as (topic, payload as text), waiting at most 5 s.
pub fn recv_text(c: &mut frota::mqtt::MqttClient) -> Option<(String, String)> {
    c.recv(Duration::from_secs(5))
        .expect("recv")
        .map(|(t, p)| (t, String::from_utf8_lossy(&p).into_owned()))
}
