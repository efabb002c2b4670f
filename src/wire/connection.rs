//! A framed connection: a TCP stream plus a read buffer.
//!
//! Reading loops "try to parse a frame from the buffer, else read more", so a
//! frame split byte by byte and many frames in one read (pipelining) are the
//! same code path. Writing goes through a [`Writer`], a cloneable handle, so
//! that another thread (the broker pushing a `message`, say) can write to the
//! same peer; the mutex keeps concurrent frames from interleaving.

use crate::sync::lock;
use crate::wire::frame::{self, Frame, FrameError, Mode};
use crate::wire::trace;
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why no frame could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The byte stream is broken; answer once, then close.
    Frame(FrameError),
    /// No byte arrived within the read timeout.
    Timeout,
    /// The socket failed (reset, ...).
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Frame(e) => write!(f, "{e}"),
            ReadError::Timeout => write!(f, "read timed out"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// `WouldBlock` and `TimedOut` both mean "the read timeout expired": which
/// one the OS reports differs between platforms.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

pub struct Connection {
    stream: TcpStream,
    writer: Writer,
    buf: Vec<u8>,
    max_payload: usize,
    peer: Option<SocketAddr>,
    idle_timeout: Option<Duration>,
    frame_timeout: Option<Duration>,
    /// When the last complete frame arrived: the idle clock. Blank lines and
    /// partial frames do not reset it, so a slow-loris peer cannot hold the
    /// connection by dribbling bytes.
    last_frame: Instant,
    /// When the first byte of the current partial frame arrived.
    partial_since: Option<Instant>,
    /// The read timeout this connection last set on the socket. A read
    /// whose deadline is about as far away as last time keeps it instead of
    /// paying a setsockopt per request (see [`Connection::arm_read_timeout`]).
    armed: Option<Duration>,
}

impl Connection {
    pub fn new(stream: TcpStream, max_payload: usize) -> io::Result<Connection> {
        let peer = stream.peer_addr().ok();
        let local = stream.local_addr().ok();
        let writer = Writer {
            inner: Arc::new(Mutex::new(stream.try_clone()?)),
            local,
            peer,
            shut: Arc::new(stream.try_clone()?),
        };
        Ok(Connection {
            stream,
            writer,
            buf: Vec::with_capacity(4096),
            max_payload,
            peer,
            idle_timeout: None,
            frame_timeout: None,
            last_frame: Instant::now(),
            partial_since: None,
            armed: None,
        })
    }

    /// Bound reads: no frame for `idle` closes, and a frame whose first
    /// byte arrived more than `frame` ago closes. Without this, reads block
    /// for as long as the socket's own read timeout (if any).
    pub fn set_timeouts(&mut self, idle: Duration, frame: Duration) {
        self.idle_timeout = Some(idle);
        self.frame_timeout = Some(frame);
        self.last_frame = Instant::now();
    }

    /// Set the socket's read timeout for the next read from the earliest of
    /// the idle and frame deadlines and `until`; returns that deadline.
    ///
    /// The timeout already set is kept when it is within 1/16 of what is
    /// left (and at most 50 ms off): a busy connection's deadline moves by
    /// microseconds per request. Kept too long, a timeout fires at most that
    /// late; kept too short, the read wakes early and [`Connection::read_frame_by`]
    /// re-arms it, since only the deadline itself ends the wait.
    fn arm_read_timeout(&mut self, until: Option<Instant>) -> Result<Option<Instant>, ReadError> {
        let now = Instant::now();
        let mut deadline = self.idle_timeout.map(|t| self.last_frame + t);
        if let (Some(since), Some(t)) = (self.partial_since, self.frame_timeout) {
            let d = since + t;
            deadline = Some(deadline.map_or(d, |x| x.min(d)));
        }
        if let Some(d) = until {
            deadline = Some(deadline.map_or(d, |x| x.min(d)));
        }
        let Some(deadline) = deadline else {
            // No deadline of ours: the socket's own timeout (if its owner
            // set one) applies, unless we changed it earlier.
            if self.armed.take().is_some() {
                self.stream.set_read_timeout(None).map_err(ReadError::Io)?;
            }
            return Ok(None);
        };
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Err(ReadError::Timeout);
        }
        let slack = (left / 16).min(Duration::from_millis(50));
        if self.armed.is_none_or(|a| a.abs_diff(left) > slack) {
            self.stream
                .set_read_timeout(Some(left))
                .map_err(ReadError::Io)?;
            self.armed = Some(left);
        }
        Ok(Some(deadline))
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    pub fn writer(&self) -> Writer {
        self.writer.clone()
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Read the next frame. `Ok(None)` is a clean EOF between frames.
    pub fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        self.read_frame_by(None)
    }

    /// Like [`Connection::read_frame`], but [`ReadError::Timeout`] once
    /// `until` passes too.
    pub fn read_frame_by(&mut self, until: Option<Instant>) -> Result<Option<Frame>, ReadError> {
        loop {
            match frame::parse(&self.buf, self.max_payload) {
                Ok(Some((f, used))) => {
                    self.buf.drain(..used);
                    if trace::enabled() {
                        if let Ok(v) = serde_json::from_slice::<Value>(&f.payload) {
                            trace::record("recv", self.writer.local, self.peer, &v);
                        }
                    }
                    self.last_frame = Instant::now();
                    self.partial_since = if frame::only_blank(&self.buf) {
                        None
                    } else {
                        Some(self.last_frame)
                    };
                    return Ok(Some(f));
                }
                Ok(None) => {
                    if frame::only_blank(&self.buf) {
                        // Blank lines carry nothing; keep a lone '\r' whose
                        // '\n' may still come.
                        let keep = usize::from(self.buf.last() == Some(&b'\r'));
                        let drop = self.buf.len() - keep;
                        self.buf.drain(..drop);
                    } else if self.partial_since.is_none() {
                        self.partial_since = Some(Instant::now());
                    }
                }
                Err(e) => return Err(ReadError::Frame(e)),
            }
            let deadline = self.arm_read_timeout(until)?;
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return if frame::only_blank(&self.buf) {
                        Ok(None)
                    } else {
                        Err(ReadError::Frame(FrameError::Truncated))
                    };
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A kept timeout may end a little before the deadline.
                Err(e) if is_timeout(&e) && deadline.is_some_and(|d| Instant::now() < d) => {}
                Err(e) if is_timeout(&e) => return Err(ReadError::Timeout),
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    pub fn send(&self, mode: Mode, msg: &Value) -> io::Result<()> {
        self.writer.send(mode, msg)
    }
}

/// A cloneable handle that writes whole frames to one peer.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Mutex<TcpStream>>,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    /// A second handle used only to shut the socket down: a writer blocked
    /// on a peer that does not read holds `inner`, and closing that peer
    /// must not wait for it.
    shut: Arc<TcpStream>,
}

impl Writer {
    pub fn send(&self, mode: Mode, msg: &Value) -> io::Result<()> {
        trace::record("send", self.local, self.peer, msg);
        let payload = serde_json::to_vec(msg).map_err(io::Error::other)?;
        self.send_raw(&frame::encode(mode, &payload))
    }

    /// Like [`Writer::send`], running `before` under the writer's lock just
    /// before the bytes are written (nothing else can be written between).
    pub fn send_after(&self, mode: Mode, msg: &Value, before: impl FnOnce()) -> io::Result<()> {
        trace::record("send", self.local, self.peer, msg);
        let payload = serde_json::to_vec(msg).map_err(io::Error::other)?;
        let bytes = frame::encode(mode, &payload);
        let mut s = lock(&self.inner);
        before();
        s.write_all(&bytes)?;
        s.flush()
    }

    /// Send `msg` already serialized as `payload` (a layout of its own,
    /// such as `help` for a person); traced as `msg`.
    pub fn send_payload(&self, mode: Mode, msg: &Value, payload: &[u8]) -> io::Result<()> {
        trace::record("send", self.local, self.peer, msg);
        self.send_raw(&frame::encode(mode, payload))
    }

    pub fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        let mut s = lock(&self.inner);
        s.write_all(bytes)?;
        s.flush()
    }

    /// Close both directions, waking a thread blocked reading this socket.
    pub fn shutdown(&self) {
        let _ = self.shut.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (Connection, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (Connection::new(s, 1 << 20).unwrap(), peer)
    }

    fn timed_out(c: &mut Connection, after: Duration) -> Duration {
        let t = Instant::now();
        let r = c.read_frame_by(Some(t + after));
        assert!(matches!(r, Err(ReadError::Timeout)), "{:?}", r.map(|_| ()));
        t.elapsed()
    }

    /// The socket's timeout is kept between reads whose deadlines are
    /// about as far away; a read never ends before its deadline, and never
    /// waits out a kept timeout that is much longer.
    #[test]
    fn a_kept_read_timeout_ends_the_wait_at_the_deadline() {
        let (mut c, mut peer) = pair();
        peer.write_all(b"{\"type\":\"ping\"}\n").unwrap();
        let f = c.read_frame_by(Some(Instant::now() + Duration::from_secs(5)));
        assert!(matches!(f, Ok(Some(_))));
        // Armed for ~5 s; a 200 ms deadline must not wait for that.
        let took = timed_out(&mut c, Duration::from_millis(200));
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(
            took < Duration::from_secs(4),
            "waited out the old timeout: {took:?}"
        );
        // Armed for ~1 s; a deadline 40 ms further keeps it (within the
        // slack), wakes early and still waits for the real deadline.
        timed_out(&mut c, Duration::from_secs(1));
        let took = timed_out(&mut c, Duration::from_millis(1040));
        assert!(took >= Duration::from_millis(1040), "{took:?}");
    }
}
