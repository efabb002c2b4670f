//! Reading and writing MQTT packets on a `TcpStream` (shared by the client
//! and the server session). Reading is "parse the buffer, else read more",
//! so split and pipelined packets take the same path, as in
//! [`crate::wire::connection`].

use super::codec::{self, MqttError, Packet};
use crate::sync::lock;
use crate::wire::connection::is_timeout;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why no packet could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The byte stream is not MQTT (or ended inside a packet): close.
    Packet(MqttError),
    /// The deadline passed (idle/keep-alive) or a started packet took longer
    /// than the packet timeout.
    Timeout,
    /// Clean EOF between packets.
    Closed,
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Packet(e) => write!(f, "{e}"),
            ReadError::Timeout => write!(f, "read timed out"),
            ReadError::Closed => write!(f, "connection closed by peer"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// The read half: a stream and its buffer. The buffer never holds more than
/// one incomplete packet (≤ `max_packet`) plus one read's worth.
pub struct PacketReader {
    stream: TcpStream,
    buf: Vec<u8>,
    max_packet: usize,
    /// When the first byte of the current incomplete packet arrived.
    partial_since: Option<Instant>,
}

impl PacketReader {
    pub fn new(stream: TcpStream, max_packet: usize) -> PacketReader {
        PacketReader {
            stream,
            buf: Vec::with_capacity(1024),
            max_packet,
            partial_since: None,
        }
    }

    /// Read one packet. `deadline` bounds the wait for a packet to *start*
    /// (and finish); `packet_timeout` bounds how long a started packet may
    /// take (a peer dribbling bytes cannot hold the connection).
    pub fn read(
        &mut self,
        deadline: Option<Instant>,
        packet_timeout: Option<Duration>,
    ) -> Result<Packet, ReadError> {
        loop {
            match codec::parse(&self.buf, self.max_packet) {
                Ok(Some((p, used))) => {
                    self.buf.drain(..used);
                    self.partial_since = if self.buf.is_empty() {
                        None
                    } else {
                        Some(Instant::now())
                    };
                    return Ok(p);
                }
                Ok(None) => {
                    if !self.buf.is_empty() && self.partial_since.is_none() {
                        self.partial_since = Some(Instant::now());
                    }
                }
                Err(e) => return Err(ReadError::Packet(e)),
            }
            let mut until = deadline;
            if let (Some(since), Some(t)) = (self.partial_since, packet_timeout) {
                let d = since + t;
                until = Some(until.map_or(d, |u| u.min(d)));
            }
            let wait = match until {
                Some(u) => {
                    let left = u.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ReadError::Timeout);
                    }
                    Some(left)
                }
                None => None,
            };
            self.stream.set_read_timeout(wait).map_err(ReadError::Io)?;
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(if self.buf.is_empty() {
                        ReadError::Closed
                    } else {
                        ReadError::Packet(MqttError::Truncated("stream ended inside a packet"))
                    })
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(ReadError::Timeout),
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }
}

/// The write half: a cloneable handle; the mutex keeps packets written from
/// two threads (acks from the reader, deliveries from the sender) whole.
#[derive(Clone)]
pub struct PacketWriter {
    inner: Arc<Mutex<TcpStream>>,
    /// A second handle for shutdown, outside the mutex, so closing never
    /// waits behind a write blocked on a peer that does not read.
    ctl: Arc<TcpStream>,
}

impl PacketWriter {
    pub fn new(stream: TcpStream) -> io::Result<PacketWriter> {
        let ctl = Arc::new(stream.try_clone()?);
        Ok(PacketWriter {
            inner: Arc::new(Mutex::new(stream)),
            ctl,
        })
    }

    pub fn send(&self, p: &Packet) -> io::Result<()> {
        let bytes = codec::encode(p).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.send_raw(&bytes)
    }

    pub fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        let mut s = lock(&self.inner);
        s.write_all(bytes)?;
        s.flush()
    }

    /// Hold the socket while `fill` produces the bytes, then write them: two
    /// threads that each take queued packets and write them cannot swap
    /// their order on the wire. Nothing is written when `fill` adds nothing.
    pub fn write_with(&self, fill: impl FnOnce(&mut Vec<u8>)) -> io::Result<usize> {
        let mut s = lock(&self.inner);
        let mut buf = Vec::new();
        fill(&mut buf);
        if !buf.is_empty() {
            s.write_all(&buf)?;
            s.flush()?;
        }
        Ok(buf.len())
    }

    /// Close both directions, waking a thread blocked reading this socket.
    pub fn shutdown(&self) {
        let _ = self.ctl.shutdown(Shutdown::Both);
    }
}
