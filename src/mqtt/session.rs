//! The broker side of MQTT 3.1.1: an accept loop ([`serve_mqtt`]) and one
//! session per client connection, talking to a topic tree through the
//! [`Bus`] trait (frota-broker implements it; [`super::memory_bus::MemoryBus`]
//! is an in-memory one for tests).
//!
//! Each connection has two threads: the *reader* (this module's session
//! loop: CONNECT, SUBSCRIBE, PUBLISH, acks, keep-alive) and the *sender*,
//! which drains the session's bounded delivery queue onto the socket. The
//! bus never blocks on a client: [`Sink::deliver`] is a `try_send`, and a
//! session whose queue is full loses the message (counted), so one slow
//! subscriber cannot stall a publisher or the rest of the tree.
//!
//! What is refused, and how:
//!
//! | input | answer |
//! |---|---|
//! | protocol level ≠ 4 (or `MQIsdp`) | CONNACK 1, close |
//! | protocol name not `MQTT` | close (no CONNACK, the peer is not MQTT) |
//! | will flag set | CONNACK 5 (not authorized), close: wills are not supported |
//! | empty client id with clean session = 0 | CONNACK 2, close |
//! | first packet not CONNECT, or a second CONNECT | close |
//! | a filter that is invalid or the bus refuses | SUBACK 0x80 for that filter |
//! | PUBLISH QoS 2, PUBREC/PUBREL/PUBCOMP | close |
//! | malformed / truncated / oversize packet | close that client only |
//! | nothing for 1.5 × keep-alive | close |
//! | over the connection cap | CONNACK 3 (server unavailable), close |

use super::codec::{self, connack, MqttError, Packet, Publish};
use super::conn::{PacketReader, PacketWriter, ReadError};
use super::topic;
use crate::server::AcceptGate;
use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The topic tree an MQTT session talks to. `session` is unique per
/// connection for the life of the server.
pub trait Bus: Send + Sync {
    /// Add (or replace) `session`'s subscription to `filter` (plain or
    /// `$share/<group>/<filter>`, already syntax-checked). Matching messages
    /// go to `sink`. Returns the granted QoS (normally `sink.qos()`; a lower
    /// value caps deliveries), or `Err(reason)` to refuse (SUBACK 0x80).
    fn subscribe(&self, session: u64, filter: &str, sink: Sink) -> Result<u8, String>;
    /// Remove `session`'s subscription to exactly `filter` (no-op if none).
    fn unsubscribe(&self, session: u64, filter: &str);
    /// A client published. `qos` is the publisher's (0 or 1); a sink
    /// delivers at `min(qos, granted)`. Must not block on any subscriber.
    fn publish(&self, topic: &str, payload: &[u8], qos: u8);
    /// The session is gone: drop every subscription it holds.
    fn disconnect(&self, session: u64);
}

/// One message on its way to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
}

/// Where a bus puts messages for one subscription of one session. Cheap to
/// clone; all sinks of a session share its bounded queue.
#[derive(Clone)]
pub struct Sink {
    session: u64,
    tx: Sender<Delivery>,
    qos: Arc<AtomicU8>,
    dropped: Arc<AtomicU64>,
    /// Bytes (topic + payload) queued and not yet written, and the most the
    /// queue may hold: a count bound alone would let 1024 queued 1 MiB
    /// messages pin a gigabyte per slow session.
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    /// The session's socket, so a bus can close a session it gives up on.
    conn: Option<PacketWriter>,
}

impl Sink {
    /// A sink and the receiving end of its queue (`capacity` messages).
    /// Sessions make these; it is public so a bus can be tested alone.
    pub fn channel(session: u64, qos: u8, capacity: usize) -> (Sink, Receiver<Delivery>) {
        Sink::channel_bounded(session, qos, capacity, usize::MAX)
    }

    /// Like [`Sink::channel`], also bounded to `max_bytes` queued bytes; the
    /// consumer reports each message it takes with [`Sink::taken`].
    pub fn channel_bounded(
        session: u64,
        qos: u8,
        capacity: usize,
        max_bytes: usize,
    ) -> (Sink, Receiver<Delivery>) {
        let (tx, rx) = bounded(capacity.max(1));
        let sink = Sink {
            session,
            tx,
            qos: Arc::new(AtomicU8::new(qos.min(1))),
            dropped: Arc::new(AtomicU64::new(0)),
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            max_bytes,
            conn: None,
        };
        (sink, rx)
    }

    /// Another sink on the same queue with its own granted QoS.
    fn with_qos(&self, qos: u8) -> Sink {
        Sink {
            session: self.session,
            tx: self.tx.clone(),
            qos: Arc::new(AtomicU8::new(qos.min(1))),
            dropped: self.dropped.clone(),
            queued_bytes: self.queued_bytes.clone(),
            max_bytes: self.max_bytes,
            conn: self.conn.clone(),
        }
    }

    pub fn session(&self) -> u64 {
        self.session
    }

    /// The QoS granted to this subscription (0 or 1).
    pub fn qos(&self) -> u8 {
        self.qos.load(Ordering::Relaxed)
    }

    fn cap_qos(&self, granted: u8) {
        self.qos.fetch_min(granted, Ordering::Relaxed);
    }

    /// Queue a message without blocking. `false` if it was dropped: the
    /// session's queue is full (a slow client) or the session is gone.
    pub fn deliver(&self, topic: &str, payload: &[u8], qos: u8) -> bool {
        let size = topic.len() + payload.len();
        let before = self.queued_bytes.fetch_add(size, Ordering::SeqCst);
        if before.saturating_add(size) > self.max_bytes {
            self.queued_bytes.fetch_sub(size, Ordering::SeqCst);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let d = Delivery {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos: qos.min(self.qos()),
        };
        match self.tx.try_send(d) {
            Ok(()) => true,
            Err(e) => {
                self.queued_bytes.fetch_sub(size, Ordering::SeqCst);
                if let TrySendError::Full(_) = e {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                false
            }
        }
    }

    /// The consumer took `d` off the queue: its bytes no longer count.
    pub fn taken(&self, d: &Delivery) {
        self.queued_bytes
            .fetch_sub(d.topic.len() + d.payload.len(), Ordering::SeqCst);
    }

    /// Close the session's connection (a bus giving up on a slow or broken
    /// subscriber). The session then ends and [`Bus::disconnect`] follows.
    /// No-op for a sink made by [`Sink::channel`].
    pub fn close(&self) {
        if let Some(w) = &self.conn {
            w.shutdown();
        }
    }

    /// Messages this session lost to a full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Limits of the MQTT listener. Every timeout is bounded and configurable.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub max_connections: usize,
    /// CONNECT must arrive within this after the TCP accept.
    pub connect_timeout: Duration,
    /// A started packet must be complete within this (slow-loris guard).
    pub packet_timeout: Duration,
    pub write_timeout: Duration,
    /// A client with keep-alive 0 that sends nothing for this long is
    /// closed (keep-alive > 0 uses 1.5 × keep-alive instead).
    pub idle_timeout: Duration,
    /// Largest packet accepted, fixed header included.
    pub max_packet: usize,
    /// Deliveries queued per session before new ones are dropped.
    pub queue_len: usize,
    /// Bytes (topic + payload) queued per session before new ones are
    /// dropped.
    pub queue_bytes: usize,
    pub stack_size: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            max_connections: 512,
            connect_timeout: Duration::from_secs(10),
            packet_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            max_packet: codec::DEFAULT_MAX_PACKET,
            queue_len: 1024,
            queue_bytes: 16 << 20,
            stack_size: 256 * 1024,
        }
    }
}

/// Counters shown in [`MqttServer::status`].
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    malformed: AtomicU64,
    timeouts: AtomicU64,
    connacks_refused: AtomicU64,
    published: AtomicU64,
    delivered: AtomicU64,
}

struct Shared {
    bus: Arc<dyn Bus>,
    cfg: MqttConfig,
    stop: AtomicBool,
    live: Arc<AtomicUsize>,
    next_session: AtomicU64,
    counters: Counters,
    /// Open connections, so shutdown can wake their threads.
    conns: Mutex<HashMap<u64, PacketWriter>>,
    /// Client id → session holding it: a second CONNECT with the same id
    /// closes the first connection [MQTT-3.1.4-2].
    client_ids: Mutex<HashMap<String, u64>>,
}

/// A running MQTT listener. Dropping it does not stop it; call
/// [`MqttServer::shutdown`].
pub struct MqttServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// Bind `listen` and serve MQTT 3.1.1 on it in the background.
pub fn serve_mqtt(listen: &str, bus: Arc<dyn Bus>, cfg: MqttConfig) -> io::Result<MqttServer> {
    let listener = TcpListener::bind(listen)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        bus,
        cfg,
        stop: AtomicBool::new(false),
        live: Arc::new(AtomicUsize::new(0)),
        next_session: AtomicU64::new(1),
        counters: Counters::default(),
        conns: Mutex::new(HashMap::new()),
        client_ids: Mutex::new(HashMap::new()),
    });
    let s = shared.clone();
    let accept = thread::Builder::new()
        .name(format!("mqtt-accept-{addr}"))
        .spawn(move || accept_loop(listener, s))?;
    Ok(MqttServer {
        addr,
        shared,
        accept: Some(accept),
    })
}

impl MqttServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counters for the owning node's `status`.
    pub fn status(&self) -> Value {
        self.stats().status()
    }

    /// A handle on the counters that outlives borrows of the server (which
    /// [`MqttServer::wait`] and [`MqttServer::shutdown`] consume), e.g. for
    /// a node's `status` handler.
    pub fn stats(&self) -> MqttStats {
        MqttStats {
            addr: self.addr,
            shared: self.shared.clone(),
        }
    }

    /// Stop accepting, close every connection, wait for the accept loop
    /// and (bounded) for the sessions to end.
    pub fn shutdown(mut self) {
        let s = &self.shared;
        s.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, blocked in accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for w in s.conns.lock().unwrap_or_else(|p| p.into_inner()).values() {
            w.shutdown();
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        // Sessions end as soon as their sockets are shut; wait a little so
        // the bus sees every disconnect before we return.
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Block until the server stops (only through shutdown from elsewhere).
    pub fn wait(mut self) {
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Read-only access to a running listener's counters.
#[derive(Clone)]
pub struct MqttStats {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MqttStats {
    /// Counters for the owning node's `status`.
    pub fn status(&self) -> Value {
        let s = &self.shared;
        let c = &s.counters;
        json!({
            "listen": self.addr.to_string(),
            "open": s.live.load(Ordering::SeqCst),
            "max": s.cfg.max_connections,
            "accepted": c.accepted.load(Ordering::Relaxed),
            "refused": c.refused.load(Ordering::Relaxed),
            "connack_refused": c.connacks_refused.load(Ordering::Relaxed),
            "malformed": c.malformed.load(Ordering::Relaxed),
            "timed_out": c.timeouts.load(Ordering::Relaxed),
            "published": c.published.load(Ordering::Relaxed),
            "delivered": c.delivered.load(Ordering::Relaxed),
        })
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let s = shared.clone();
    let gate = AcceptGate {
        thread_prefix: "mqtt",
        label: "mqtt ",
        stop: &shared.stop,
        live: &shared.live,
        next_id: &shared.next_session,
        accepted: &shared.counters.accepted,
        refused: &shared.counters.refused,
        max_connections: shared.cfg.max_connections,
        stack_size: shared.cfg.stack_size,
    };
    gate.run(listener, refuse_over_cap, move |id, stream| {
        run_session(&s, id, stream);
        s.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    });
}

/// Past the cap a client gets CONNACK 3 without us reading its CONNECT (an
/// MQTT client reads the CONNACK after sending CONNECT either way), and the
/// accept loop never waits on it for more than a moment.
fn refuse_over_cap(stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    if let Ok(w) = PacketWriter::new(stream) {
        let _ = w.send(&Packet::ConnAck {
            session_present: false,
            code: connack::SERVER_UNAVAILABLE,
        });
        w.shutdown();
    }
}

/// Why a session ended (for the log and the counters).
enum End {
    Clean,
    Malformed(String),
    Timeout,
    Refused(String),
    Io,
}

fn run_session(shared: &Shared, id: u64, stream: TcpStream) {
    let cfg = &shared.cfg;
    let _ = stream.set_nodelay(true);
    if stream.set_write_timeout(Some(cfg.write_timeout)).is_err() {
        return;
    }
    let peer = stream.peer_addr().ok();
    let writer = match stream.try_clone().and_then(PacketWriter::new) {
        Ok(w) => w,
        Err(_) => return,
    };
    shared
        .conns
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, writer.clone());
    if shared.stop.load(Ordering::SeqCst) {
        return;
    }
    let mut reader = PacketReader::new(stream, cfg.max_packet);
    let end = match handshake(shared, &mut reader, &writer, id) {
        Ok((client_id, keep_alive)) => {
            let end = connected(shared, &mut reader, &writer, id, keep_alive);
            shared.bus.disconnect(id);
            let mut ids = shared.client_ids.lock().unwrap_or_else(|p| p.into_inner());
            if ids.get(&client_id) == Some(&id) {
                ids.remove(&client_id);
            }
            end
        }
        Err(end) => end,
    };
    match &end {
        End::Clean | End::Io => {}
        End::Malformed(why) => {
            shared.counters.malformed.fetch_add(1, Ordering::Relaxed);
            log::info!("mqtt session {id} ({peer:?}) closed: {why}");
        }
        End::Timeout => {
            shared.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            log::info!("mqtt session {id} ({peer:?}) timed out");
        }
        End::Refused(why) => {
            shared
                .counters
                .connacks_refused
                .fetch_add(1, Ordering::Relaxed);
            log::info!("mqtt session {id} ({peer:?}) refused: {why}");
        }
    }
    writer.shutdown();
}

fn read_error_end(e: ReadError) -> End {
    match e {
        ReadError::Packet(e) => End::Malformed(e.to_string()),
        ReadError::Timeout => End::Timeout,
        ReadError::Closed => End::Clean,
        ReadError::Io(_) => End::Io,
    }
}

/// CONNECT → CONNACK. Returns the client id and keep-alive of an accepted
/// client; anything else ends the connection.
fn handshake(
    shared: &Shared,
    reader: &mut PacketReader,
    writer: &PacketWriter,
    id: u64,
) -> Result<(String, u16), End> {
    let cfg = &shared.cfg;
    let refuse = |code: u8, why: String| {
        let _ = writer.send(&Packet::ConnAck {
            session_present: false,
            code,
        });
        End::Refused(why)
    };
    let first = reader.read(
        Some(Instant::now() + cfg.connect_timeout),
        Some(cfg.packet_timeout),
    );
    let c = match first {
        Ok(Packet::Connect(c)) => c,
        Ok(other) => {
            return Err(End::Malformed(format!(
                "first packet is {}, not CONNECT",
                other.name()
            )))
        }
        Err(ReadError::Packet(MqttError::BadProtocolLevel(l))) => {
            return Err(refuse(
                connack::BAD_PROTOCOL_LEVEL,
                format!("protocol level {l}"),
            ))
        }
        Err(e) => return Err(read_error_end(e)),
    };
    if c.will.is_some() {
        return Err(refuse(
            connack::NOT_AUTHORIZED,
            "will messages are not supported".into(),
        ));
    }
    if c.client_id.is_empty() && !c.clean_session {
        return Err(refuse(
            connack::IDENTIFIER_REJECTED,
            "empty client id needs clean session".into(),
        ));
    }
    let client_id = if c.client_id.is_empty() {
        format!("frota-auto-{id}")
    } else {
        c.client_id
    };
    // Take the id over: the older connection with it is closed.
    let old = shared
        .client_ids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(client_id.clone(), id);
    if let Some(old) = old {
        if let Some(w) = shared
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&old)
        {
            log::info!("mqtt client id '{client_id}' reconnected; closing session {old}");
            w.shutdown();
        }
    }
    // No persistent sessions: session_present is always 0, and a
    // clean_session=0 client gets a fresh session each time.
    writer
        .send(&Packet::ConnAck {
            session_present: false,
            code: connack::ACCEPTED,
        })
        .map_err(|_| End::Io)?;
    Ok((client_id, c.keep_alive))
}

/// The session after CONNACK: runs the sender thread and the read loop.
fn connected(
    shared: &Shared,
    reader: &mut PacketReader,
    writer: &PacketWriter,
    id: u64,
    keep_alive: u16,
) -> End {
    let cfg = &shared.cfg;
    let (mut sink, rx) = Sink::channel_bounded(id, 1, cfg.queue_len, cfg.queue_bytes);
    sink.conn = Some(writer.clone());
    let (stop_tx, stop_rx) = bounded::<()>(1);
    let w = writer.clone();
    let delivered = Arc::new(AtomicU64::new(0));
    let d = delivered.clone();
    let accounting = sink.clone();
    let sender = thread::Builder::new()
        .name(format!("mqtt-{id}-send"))
        .stack_size(cfg.stack_size)
        .spawn(move || send_loop(&w, &rx, &stop_rx, &d, &accounting));
    let sender = match sender {
        Ok(h) => h,
        Err(_) => return End::Io,
    };
    // 1.5 × keep-alive [MQTT-3.1.2-24]; keep-alive 0 falls back to the
    // configured idle timeout so no connection is unbounded.
    let idle = if keep_alive > 0 {
        Duration::from_millis(u64::from(keep_alive) * 1500)
    } else {
        cfg.idle_timeout
    };
    let end = read_loop(shared, reader, writer, &sink, idle);
    // The session is over: shut the socket first so a sender blocked on a
    // client that does not read returns at once, then stop it.
    writer.shutdown();
    let _ = stop_tx.try_send(());
    drop(sink);
    let _ = sender.join();
    shared
        .counters
        .delivered
        .fetch_add(delivered.load(Ordering::Relaxed), Ordering::Relaxed);
    end
}

fn read_loop(
    shared: &Shared,
    reader: &mut PacketReader,
    writer: &PacketWriter,
    sink: &Sink,
    idle: Duration,
) -> End {
    let cfg = &shared.cfg;
    let id = sink.session();
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return End::Clean;
        }
        let packet = match reader.read(Some(Instant::now() + idle), Some(cfg.packet_timeout)) {
            Ok(p) => p,
            Err(e) => return read_error_end(e),
        };
        let reply = match packet {
            Packet::Publish(p) => {
                let Publish {
                    qos,
                    topic,
                    packet_id,
                    payload,
                    ..
                } = p;
                if qos > 1 {
                    return End::Malformed("QoS 2 is not supported".into());
                }
                shared.counters.published.fetch_add(1, Ordering::Relaxed);
                shared.bus.publish(&topic, &payload, qos);
                // The bus has taken it (queued to every subscriber) before
                // we acknowledge.
                packet_id.map(Packet::PubAck)
            }
            Packet::PubAck(_) => None, // deliveries are not retransmitted
            Packet::Subscribe { packet_id, filters } => {
                let codes = filters
                    .iter()
                    .map(|(f, q)| subscribe_one(shared, id, sink, f, *q))
                    .collect();
                Some(Packet::SubAck { packet_id, codes })
            }
            Packet::Unsubscribe { packet_id, filters } => {
                for f in &filters {
                    shared.bus.unsubscribe(id, f);
                }
                Some(Packet::UnsubAck(packet_id))
            }
            Packet::PingReq => Some(Packet::PingResp),
            Packet::Disconnect => return End::Clean,
            other => return End::Malformed(format!("{} not expected from a client", other.name())),
        };
        if let Some(r) = reply {
            if writer.send(&r).is_err() {
                return End::Io;
            }
        }
    }
}

fn subscribe_one(shared: &Shared, id: u64, sink: &Sink, filter: &str, qos: u8) -> u8 {
    if let Err(why) = topic::validate_filter(filter) {
        log::info!("mqtt session {id}: refusing filter: {why}");
        return codec::SUBACK_FAILURE;
    }
    let s = sink.with_qos(qos);
    match shared.bus.subscribe(id, filter, s.clone()) {
        Ok(granted) => {
            s.cap_qos(granted);
            s.qos()
        }
        Err(why) => {
            log::info!("mqtt session {id}: bus refused '{filter}': {why}");
            codec::SUBACK_FAILURE
        }
    }
}

/// The sender thread: deliveries → PUBLISH packets. QoS 1 deliveries get a
/// fresh packet id; their PUBACKs are read (and ignored) by the reader.
fn send_loop(
    w: &PacketWriter,
    rx: &Receiver<Delivery>,
    stop: &Receiver<()>,
    delivered: &AtomicU64,
    accounting: &Sink,
) {
    let mut next_id: u16 = 0;
    loop {
        let d = select! {
            recv(rx) -> d => match d { Ok(d) => d, Err(_) => return },
            recv(stop) -> _ => return,
        };
        accounting.taken(&d);
        let packet_id = if d.qos > 0 {
            next_id = next_id.checked_add(1).unwrap_or(1);
            Some(next_id)
        } else {
            None
        };
        let p = Packet::Publish(Publish {
            dup: false,
            qos: d.qos,
            retain: false,
            topic: d.topic,
            packet_id,
            payload: d.payload,
        });
        if w.send(&p).is_err() {
            // A client that does not read is cut off by the write timeout;
            // shutting the socket ends the reader too.
            w.shutdown();
            return;
        }
        delivered.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_bounds_count_and_bytes() {
        let (sink, rx) = Sink::channel_bounded(1, 1, 3, 10);
        assert!(sink.deliver("t", b"12345", 1)); // 6 bytes
        assert!(!sink.deliver("t", b"12345", 1), "16 > 10 bytes");
        let d = rx.try_recv().unwrap();
        sink.taken(&d);
        assert!(sink.deliver("t", b"1234", 0));
        assert!(sink.deliver("t", b"", 0));
        assert!(sink.deliver("", b"", 0));
        assert!(!sink.deliver("", b"", 0), "count bound of 3");
        assert_eq!(sink.dropped(), 2);
        // Delivered QoS is min(publish, granted).
        assert_eq!(rx.try_recv().map(|d| d.qos), Ok(0));
        let (low, rx) = Sink::channel(2, 0, 1);
        assert!(low.deliver("t", b"", 1));
        assert_eq!(rx.try_recv().map(|d| d.qos), Ok(0));
        drop(rx);
        assert!(!low.deliver("t", b"", 1), "no session any more");
    }
}
