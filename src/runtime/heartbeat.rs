//! UDP heartbeat primitives: one datagram = one JSON object, no framing.
//!
//! Liveness travels over UDP because a lost heartbeat is harmless (the next
//! one follows) and a sender must never block on a slow monitor.

use serde_json::Value;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Largest datagram we read; anything longer is truncated by the OS and then
/// fails to parse, which counts it as malformed.
pub const MAX_DATAGRAM: usize = 2048;

/// Send one JSON datagram. Errors are returned, never fatal.
pub fn send(sock: &UdpSocket, to: SocketAddr, msg: &Value) -> io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
    sock.send_to(&bytes, to).map(|_| ())
}

/// Why a datagram was dropped.
#[derive(Debug)]
pub enum RecvError {
    /// Nothing arrived within the socket's read timeout.
    Timeout,
    Io(io::Error),
    /// Arrived, but is not a JSON object: counted and dropped by the caller.
    Malformed(SocketAddr, String),
}

/// Receive one datagram and parse it as a JSON object.
pub fn recv(sock: &UdpSocket) -> Result<(serde_json::Map<String, Value>, SocketAddr), RecvError> {
    let mut buf = [0u8; MAX_DATAGRAM];
    let (n, from) = match sock.recv_from(&mut buf) {
        Ok(x) => x,
        Err(e) if crate::wire::connection::is_timeout(&e) => return Err(RecvError::Timeout),
        Err(e) => return Err(RecvError::Io(e)),
    };
    if n == MAX_DATAGRAM {
        return Err(RecvError::Malformed(from, "datagram too large".into()));
    }
    match serde_json::from_slice::<Value>(&buf[..n]) {
        Ok(Value::Object(m)) => Ok((m, from)),
        Ok(_) => Err(RecvError::Malformed(from, "not a JSON object".into())),
        Err(e) => Err(RecvError::Malformed(from, format!("not JSON: {e}"))),
    }
}

/// A background thread that sends `beat(seq)` to `target` every `interval`
/// until dropped or stopped.
pub struct Sender {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Sender {
    pub fn spawn<F>(target: SocketAddr, interval: Duration, beat: F) -> io::Result<Sender>
    where
        F: Fn(u64) -> Value + Send + 'static,
    {
        let bind = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let sock = UdpSocket::bind(bind)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                let mut seq = 0u64;
                while !flag.load(Ordering::SeqCst) {
                    seq += 1;
                    if let Err(e) = send(&sock, target, &beat(seq)) {
                        log::debug!("heartbeat to {target} failed: {e}");
                    }
                    // Sleep in short steps so stop() returns promptly.
                    let mut left = interval;
                    while !left.is_zero() && !flag.load(Ordering::SeqCst) {
                        let step = left.min(Duration::from_millis(50));
                        thread::sleep(step);
                        left -= step;
                    }
                }
            })?;
        Ok(Sender {
            stop,
            handle: Some(handle),
        })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop();
    }
}
