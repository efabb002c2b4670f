//! frota-broker's MQTT 3.1.1 listener: the I/O around the broker core.
//!
//! Per connection, two threads:
//! - the *reader* (the accept loop's thread for it): CONNECT → CONNACK,
//!   then one core step per packet ([`super::core::Core::mqtt_packet`]),
//!   and it writes its own session's replies itself right after, so a
//!   publisher's PUBACK goes out without a thread hop — after the
//!   publisher's own copy of the message, and, when that copy is QoS 1/2,
//!   only once the client has answered it (or after
//!   [`MqttConfig::ack_hold`]): see `Session::ack_after_own_copy`;
//! - the *writer*, woken by the core when another connection's publish
//!   queued something here; it writes it.
//!
//! Both write through [`PacketWriter::write_with`], which takes the queued
//! packets and writes them under one lock, so they never reorder.
//!
//! | input | answer |
//! |---|---|
//! | protocol level ≠ 4 (or `MQIsdp`) | CONNACK 1, close |
//! | protocol name not `MQTT` | close (no CONNACK, the peer is not MQTT) |
//! | empty client id with clean session = 0 | CONNACK 2, close |
//! | first packet not CONNECT, or a second CONNECT | close (will published) |
//! | a filter that is invalid | SUBACK 0x80 for that filter |
//! | malformed / truncated / oversize packet | close that client only (will published) |
//! | nothing for 1.5 × keep-alive | close (will published) |
//! | over the connection cap | CONNACK 3 (server unavailable), close |
//! | over the session cap (persistent sessions kept) | CONNACK 3, close |

use super::bus::{Bus, Conn};
use super::core::{ConnId, ConnectOutcome};
use crate::mqtt::codec::{self, connack, MqttError, Packet};
use crate::mqtt::conn::{PacketReader, PacketWriter, ReadError};
use crate::mqtt::session::Out;
use crate::runtime::server::{AcceptGate, ServerConfig};
use crate::runtime::wake::Wake;
use crate::sync::lock;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Limits of the MQTT listener. Every timeout is bounded and configurable.
/// (The bounds on queued messages are the core's: [`super::core::Limits`].)
#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub max_connections: usize,
    /// CONNECT must arrive within this after the TCP accept.
    pub connect_timeout: Duration,
    /// A started packet must be complete within this (slow-loris guard).
    pub packet_timeout: Duration,
    /// A write blocked this long (a client that does not read) closes the
    /// connection.
    pub write_timeout: Duration,
    /// A client with keep-alive 0 that sends nothing for this long is
    /// closed (keep-alive > 0 uses 1.5 × keep-alive instead).
    pub idle_timeout: Duration,
    /// Largest packet accepted, fixed header included.
    pub max_packet: usize,
    /// How long a publisher's ack may wait for the publisher's answer to
    /// its own copy of the message (`Session::ack_after_own_copy`).
    pub ack_hold: Duration,
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
            ack_hold: Duration::from_millis(20),
            stack_size: 256 * 1024,
        }
    }
}

/// The MQTT listener's limits from the node's server flags: the same
/// connection cap, timeouts and payload bound as the frota listener.
pub fn mqtt_config(cfg: &ServerConfig) -> MqttConfig {
    MqttConfig {
        max_connections: cfg.max_connections,
        connect_timeout: cfg.frame_timeout,
        packet_timeout: cfg.frame_timeout,
        write_timeout: cfg.write_timeout,
        idle_timeout: cfg.idle_timeout,
        max_packet: crate::mqtt::packet_bound(cfg.max_payload),
        ..MqttConfig::default()
    }
}

/// Counters shown in `status`.
#[derive(Default)]
struct Counters {
    malformed: AtomicU64,
    timeouts: AtomicU64,
    connacks_refused: AtomicU64,
    published: AtomicU64,
    written: AtomicU64,
}

struct Shared {
    bus: Arc<Bus>,
    cfg: MqttConfig,
    gate: AcceptGate,
    counters: Counters,
    /// Open sockets, so shutdown can wake their threads.
    sockets: Mutex<HashMap<ConnId, PacketWriter>>,
}

/// A running MQTT listener. Dropping it does not stop it; call
/// [`MqttServer::shutdown`].
pub struct MqttServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// Bind `listen` and serve MQTT 3.1.1 on it over `bus`, in the background.
pub fn serve_mqtt(listen: &str, bus: Arc<Bus>, cfg: MqttConfig) -> io::Result<MqttServer> {
    let listener = TcpListener::bind(listen)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        bus,
        gate: AcceptGate::new("mqtt", "mqtt ", cfg.max_connections, cfg.stack_size),
        cfg,
        counters: Counters::default(),
        sockets: Mutex::new(HashMap::new()),
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

    /// The listener's counters.
    pub fn status(&self) -> Value {
        self.stats().status()
    }

    /// A handle on the counters that outlives the server value (which
    /// [`MqttServer::wait`] and [`MqttServer::shutdown`] consume).
    pub fn stats(&self) -> MqttStats {
        MqttStats {
            addr: self.addr,
            shared: self.shared.clone(),
        }
    }

    /// Stop accepting, close every connection, wait for the accept loop
    /// and (bounded) for the sessions to end. Connections closed this way
    /// do not publish their wills.
    pub fn shutdown(mut self) {
        let s = &self.shared;
        s.gate.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, blocked in accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for w in lock(&s.sockets).values() {
            w.shutdown();
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.gate.live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
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
    pub fn status(&self) -> Value {
        let s = &self.shared;
        let c = &s.counters;
        json!({
            "listen": self.addr.to_string(),
            "open": s.gate.live.load(Ordering::SeqCst),
            "max": s.cfg.max_connections,
            "accepted": s.gate.accepted.load(Ordering::Relaxed),
            "refused": s.gate.refused.load(Ordering::Relaxed),
            "connack_refused": c.connacks_refused.load(Ordering::Relaxed),
            "malformed": c.malformed.load(Ordering::Relaxed),
            "timed_out": c.timeouts.load(Ordering::Relaxed),
            "published": c.published.load(Ordering::Relaxed),
            "delivered": c.written.load(Ordering::Relaxed),
        })
    }
}

/// The broker's MQTT side as `status` shows it.
pub enum MqttState {
    On(MqttStats),
    /// Not listening, and why (`--mqtt-listen off`, port busy).
    Off(String),
}

impl MqttState {
    pub fn status(&self) -> Value {
        match self {
            MqttState::On(stats) => stats.status(),
            MqttState::Off(why) => json!({"listen": "off", "reason": why}),
        }
    }
}

/// Start the MQTT listener on `listen` over `bus`.
///
/// `Ok(None)` with a reason when it does not run: `listen` is `off`, or the
/// address is already in use. A busy MQTT port is a warning, not a fatal
/// error, on purpose: 1883 is the well-known MQTT port, and a system
/// Mosquitto (Debian's package starts one) may hold it; the frota listener
/// and the demos must still work then. Other errors (a bad address) are
/// returned.
pub fn serve(
    bus: Arc<Bus>,
    listen: &str,
    cfg: MqttConfig,
) -> io::Result<(Option<MqttServer>, MqttState)> {
    if listen == "off" {
        return Ok((None, MqttState::Off("disabled (--mqtt-listen off)".into())));
    }
    match serve_mqtt(listen, bus, cfg) {
        Ok(srv) => {
            let state = MqttState::On(srv.stats());
            Ok((Some(srv), state))
        }
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            log::warn!("MQTT listener not started: {e}; continuing without MQTT");
            Ok((None, MqttState::Off(format!("{listen} is in use"))))
        }
        Err(e) => Err(e),
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let s = shared.clone();
    shared
        .gate
        .run(listener, refuse_over_cap, move |_, stream| {
            let id = s.bus.fresh_id();
            run_connection(&s, id, stream);
            lock(&s.sockets).remove(&id);
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

/// Why a connection ended (for the log, the counters, and the will).
enum End {
    /// DISCONNECT: no will.
    Clean,
    /// EOF or a reset without DISCONNECT.
    Lost,
    Malformed(String),
    Timeout,
    Refused(String),
    Io,
}

/// The bus's handle on one MQTT connection: wake its writer, or close it.
struct MqttConn {
    kick: Arc<Wake>,
    writer: PacketWriter,
}

impl Drop for MqttConn {
    /// The bus let go of the connection: its writer thread ends.
    fn drop(&mut self) {
        self.kick.close();
    }
}

impl Conn for MqttConn {
    fn wake(&self) {
        self.kick.wake();
    }

    fn close(&self) {
        self.writer.shutdown();
    }
}

/// Take what the core queued for `id` and write it, in one write (see the
/// module docs). Returns whether acks are held for the client's answer to
/// its own copy (`Session::ack_after_own_copy`).
fn flush(shared: &Shared, id: ConnId, w: &PacketWriter) -> io::Result<bool> {
    let mut n = 0u64;
    let mut held = false;
    w.write_with(|buf| {
        let (outs, h) = shared.bus.with(|c| c.take_mqtt(id));
        held = h;
        for o in outs {
            let r = match o {
                Out::Packet(p) => codec::encode(&p).map(|b| buf.extend_from_slice(&b)),
                Out::Publish {
                    msg,
                    qos,
                    packet_id,
                    dup,
                    retain,
                } => {
                    n += 1;
                    let head = codec::PublishHead {
                        dup,
                        qos,
                        retain,
                        packet_id,
                    };
                    codec::encode_publish(buf, head, &msg.topic, &msg.payload)
                }
            };
            if let Err(e) = r {
                log::warn!("mqtt connection {id}: cannot encode a packet: {e}");
            }
        }
    })?;
    shared.counters.written.fetch_add(n, Ordering::Relaxed);
    Ok(held)
}

/// The writer thread: flush whenever the core says there is something.
fn write_loop(shared: &Shared, id: ConnId, kick: &Wake, w: &PacketWriter) {
    while kick.wait() {
        // Held acks are the reader's business (it bounds the wait).
        if flush(shared, id, w).is_err() {
            // A client that does not read is cut off by the write timeout;
            // shutting the socket ends the reader too.
            w.shutdown();
            return;
        }
    }
}

fn run_connection(shared: &Arc<Shared>, id: ConnId, stream: TcpStream) {
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
    lock(&shared.sockets).insert(id, writer.clone());
    if shared.gate.stop.load(Ordering::SeqCst) {
        return;
    }
    let mut reader = PacketReader::new(stream, cfg.max_packet);
    let end = match handshake(shared, &mut reader, &writer, id) {
        Ok(keep_alive) => connected(shared, &mut reader, &writer, id, keep_alive),
        Err(end) => end,
    };
    let graceful = matches!(end, End::Clean) || shared.gate.stop.load(Ordering::SeqCst);
    shared.bus.with(|c| c.mqtt_closed(id, graceful));
    shared.bus.unregister(id);
    match end {
        End::Clean | End::Lost | End::Io => {
            log::debug!("mqtt connection {id} ({peer:?}) closed");
        }
        End::Malformed(why) => {
            shared.counters.malformed.fetch_add(1, Ordering::Relaxed);
            log::info!("mqtt connection {id} ({peer:?}) closed: {why}");
        }
        End::Timeout => {
            shared.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            log::info!("mqtt connection {id} ({peer:?}) timed out");
        }
        End::Refused(why) => {
            shared
                .counters
                .connacks_refused
                .fetch_add(1, Ordering::Relaxed);
            log::info!("mqtt connection {id} ({peer:?}) refused: {why}");
        }
    }
    writer.shutdown();
}

fn read_error_end(e: ReadError) -> End {
    match e {
        ReadError::Packet(e) => End::Malformed(e.to_string()),
        ReadError::Timeout => End::Timeout,
        ReadError::Closed => End::Lost,
        ReadError::Io(_) => End::Io,
    }
}

/// CONNECT → the core decides → CONNACK. Returns the keep-alive of an
/// accepted client; anything else ends the connection.
fn handshake(
    shared: &Shared,
    reader: &mut PacketReader,
    writer: &PacketWriter,
    id: ConnId,
) -> Result<u16, End> {
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
    match shared.bus.with(|core| core.mqtt_connect(id, &c)) {
        ConnectOutcome::Accepted { .. } => Ok(c.keep_alive),
        ConnectOutcome::Refused(code, why) => Err(refuse(code, why)),
    }
}

/// The connection after CONNECT was accepted: the writer thread and the
/// read loop.
fn connected(
    shared: &Arc<Shared>,
    reader: &mut PacketReader,
    writer: &PacketWriter,
    id: ConnId,
    keep_alive: u16,
) -> End {
    let cfg = &shared.cfg;
    let kick = Arc::new(Wake::new());
    shared.bus.register(
        id,
        Arc::new(MqttConn {
            kick: kick.clone(),
            writer: writer.clone(),
        }),
    );
    // CONNACK and any redelivery of a persistent session.
    if flush(shared, id, writer).is_err() {
        return End::Io;
    }
    let w = writer.clone();
    let sender = thread::Builder::new()
        .name(format!("mqtt-{id}-send"))
        .stack_size(cfg.stack_size)
        .spawn({
            let shared = shared.clone();
            move || write_loop(&shared, id, &kick, &w)
        });
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
    let end = read_loop(shared, reader, writer, id, idle);
    // Shut the socket first so a writer blocked on a client that does not
    // read returns at once; unregistering closes its wake-up.
    writer.shutdown();
    shared.bus.unregister(id);
    let _ = sender.join();
    end
}

fn read_loop(
    shared: &Shared,
    reader: &mut PacketReader,
    writer: &PacketWriter,
    id: ConnId,
    idle: Duration,
) -> End {
    let cfg = &shared.cfg;
    let mut last_packet = Instant::now();
    let mut held = false;
    loop {
        if shared.gate.stop.load(Ordering::SeqCst) {
            return End::Clean;
        }
        // While acks are held, wake up after `ack_hold` to send them anyway.
        let idle_deadline = last_packet + idle;
        let deadline = if held {
            idle_deadline.min(Instant::now() + cfg.ack_hold)
        } else {
            idle_deadline
        };
        let packet = match reader.read(Some(deadline), Some(cfg.packet_timeout)) {
            Ok(p) => p,
            Err(ReadError::Timeout) if held && Instant::now() < idle_deadline => {
                shared.bus.with_conn(id, |c| c.mqtt_release_acks(id));
                held = match flush(shared, id, writer) {
                    Ok(h) => h,
                    Err(_) => return End::Io,
                };
                continue;
            }
            Err(e) => return read_error_end(e),
        };
        last_packet = Instant::now();
        if let Packet::Publish(_) = packet {
            shared.counters.published.fetch_add(1, Ordering::Relaxed);
        }
        let disconnect = matches!(packet, Packet::Disconnect);
        if let Err(why) = shared.bus.with_conn(id, |c| c.mqtt_packet(id, packet)) {
            return End::Malformed(why);
        }
        if disconnect {
            return End::Clean;
        }
        held = match flush(shared, id, writer) {
            Ok(h) => h,
            Err(_) => return End::Io,
        };
    }
}
