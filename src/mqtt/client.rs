//! A blocking MQTT 3.1.1 client over `std::net::TcpStream`, for frota's
//! companies and vehicles when `--broker mqtt://HOST:PORT` points them at a
//! real broker (Mosquitto), and for the tests.
//!
//! No background thread: the client does its keep-alive work (PINGREQ when
//! half the keep-alive has passed without sending, a dead connection when no
//! PINGRESP comes within `ack_timeout`) inside [`MqttClient::recv`],
//! [`MqttClient::publish`] and the other calls, so a caller must call one of
//! them at least every keep-alive / 2 (a node's receive loop does). Messages
//! that arrive while a call waits for its ack are acknowledged and queued
//! for the next `recv`.
//!
//! Payloads are bytes; frota's JSON payloads travel as their JSON text.
//!
//! QoS 0, 1 and 2 both ways: a QoS 2 publish waits for PUBREC, sends PUBREL
//! and waits for PUBCOMP (resending PUBLISH with DUP, or PUBREL, on a
//! timeout); a QoS 2 delivery is answered PUBREC, held until the broker's
//! PUBREL, then queued once (a DUP resend of the same id is not queued
//! twice) and answered PUBCOMP.

use super::codec::{connack, Connect, Packet, Publish, Will, DEFAULT_MAX_PACKET, SUBACK_FAILURE};
use super::conn::{PacketReader, PacketWriter, ReadError};
use super::topic;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

/// Timeouts and limits of a client. Every one is bounded.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Sent in CONNECT (whole seconds, at most 65535); zero turns it off.
    pub keep_alive: Duration,
    pub connect_timeout: Duration,
    /// Wait for CONNACK, SUBACK, UNSUBACK, PUBACK, PINGRESP (per attempt).
    pub ack_timeout: Duration,
    /// QoS 1 resends (with DUP) after an ack timeout; 0 = send once.
    pub retries: u32,
    pub write_timeout: Duration,
    pub max_packet: usize,
    pub clean_session: bool,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    /// Messages held for `recv` while waiting for acks; past this the
    /// oldest is dropped (counted in [`MqttClient::dropped`]).
    pub max_queued: usize,
    /// Published by the broker if this connection ends without DISCONNECT.
    pub will: Option<Will>,
    /// `TCP_NODELAY` on the socket (default). `false` leaves Nagle's
    /// algorithm on, as many clients ship (the benches measure both).
    pub nodelay: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(5),
            retries: 2,
            write_timeout: Duration::from_secs(10),
            max_packet: DEFAULT_MAX_PACKET,
            clean_session: true,
            username: None,
            password: None,
            max_queued: 10_000,
            will: None,
            nodelay: true,
        }
    }
}

#[derive(Debug)]
pub enum ClientError {
    /// Connecting, reading or writing failed.
    Io(io::Error),
    /// The broker sent something that is not valid MQTT, or not expected.
    Protocol(String),
    /// CONNACK with a non-zero return code.
    Refused(u8),
    /// SUBACK 0x80 for this filter.
    SubscriptionRefused(String),
    /// No ack (or PINGRESP) in time; says what was waited for.
    Timeout(String),
    /// The broker closed the connection.
    Closed,
    /// A bad argument (topic with wildcards, QoS 2, bad URL, ...).
    Invalid(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "mqtt: {e}"),
            ClientError::Protocol(why) => write!(f, "mqtt protocol error: {why}"),
            ClientError::Refused(code) => write!(
                f,
                "mqtt connection refused: CONNACK {code} ({})",
                connack::describe(*code)
            ),
            ClientError::SubscriptionRefused(filter) => {
                write!(f, "mqtt broker refused the subscription to '{filter}'")
            }
            ClientError::Timeout(what) => write!(f, "mqtt timeout: {what}"),
            ClientError::Closed => write!(f, "mqtt broker closed the connection"),
            ClientError::Invalid(why) => write!(f, "mqtt: {why}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// `mqtt://HOST[:PORT][/]` → `HOST:PORT` (port 1883 when absent). IPv6
/// hosts go in brackets: `mqtt://[::1]:1883`.
pub fn parse_mqtt_url(url: &str) -> Result<String, String> {
    let Some(rest) = url.strip_prefix("mqtt://") else {
        if url.starts_with("mqtts://") {
            return Err(format!(
                "'{url}': TLS (mqtts://) is not supported; use mqtt://"
            ));
        }
        return Err(format!("'{url}' is not an mqtt://HOST:PORT URL"));
    };
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    if hostport.is_empty() || hostport.contains(['/', '@', '?', '#']) {
        return Err(format!(
            "'{url}': expected mqtt://HOST:PORT (no user, path or query)"
        ));
    }
    // The port is after the last ':' unless that ':' is inside [IPv6].
    let (host, port) = match hostport.rfind(':') {
        Some(i) if !hostport[i..].contains(']') => (&hostport[..i], Some(&hostport[i + 1..])),
        _ => (hostport, None),
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("'{url}': empty host"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!("'{url}': put an IPv6 host in brackets"));
    }
    let port = match port {
        None => 1883,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("'{url}': port '{p}' is not 1..=65535")),
        },
    };
    Ok(format!("{host}:{port}"))
}

/// What one read produced.
enum Event {
    /// An ack-type packet (PUBACK, SUBACK, UNSUBACK, PINGRESP).
    Ack(Packet),
    /// A message was queued for `recv`.
    Message,
    /// The read deadline passed.
    Timeout,
}

/// One received message, with its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    /// Sent because of a retained message (not a live publish).
    pub retain: bool,
    /// The broker marked it a resend.
    pub dup: bool,
}

pub struct MqttClient {
    addr: String,
    client_id: String,
    cfg: ClientConfig,
    reader: PacketReader,
    writer: PacketWriter,
    next_id: u16,
    session_present: bool,
    queued: VecDeque<Received>,
    /// QoS 2 deliveries received, waiting for the broker's PUBREL.
    incoming_qos2: HashMap<u16, Received>,
    dropped: u64,
    /// Re-sent by [`MqttClient::reconnect`].
    subscriptions: Vec<(String, u8)>,
    last_sent: Instant,
    ping_sent: Option<Instant>,
}

impl MqttClient {
    /// Connect to `addr` (`HOST:PORT`) and wait for a CONNACK that accepts
    /// us. `client_id` may be empty (the broker picks one; needs
    /// `clean_session`).
    pub fn connect(
        addr: &str,
        client_id: &str,
        cfg: &ClientConfig,
    ) -> Result<MqttClient, ClientError> {
        if cfg.keep_alive.as_secs() > u64::from(u16::MAX) {
            return Err(ClientError::Invalid("keep-alive over 65535 s".into()));
        }
        let (reader, writer, session_present) = open(addr, client_id, cfg)?;
        Ok(MqttClient {
            addr: addr.to_string(),
            client_id: client_id.to_string(),
            cfg: cfg.clone(),
            reader,
            writer,
            next_id: 0,
            session_present,
            queued: VecDeque::new(),
            incoming_qos2: HashMap::new(),
            dropped: 0,
            subscriptions: Vec::new(),
            last_sent: Instant::now(),
            ping_sent: None,
        })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The CONNACK's `session present` flag of the last connect: the
    /// broker kept a session for us (`clean_session = false` only).
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Messages dropped because more than `max_queued` arrived while the
    /// caller was waiting for acks instead of calling `recv`.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Subscribe to `filter` (plain or `$share/<group>/<filter>`) at `qos`
    /// (0, 1 or 2). Returns the granted QoS; SUBACK 0x80 is an error.
    pub fn subscribe(&mut self, filter: &str, qos: u8) -> Result<u8, ClientError> {
        topic::validate_filter(filter).map_err(ClientError::Invalid)?;
        if qos > 2 {
            return Err(ClientError::Invalid(format!("QoS {qos} does not exist")));
        }
        let granted = self.subscribe_raw(filter, qos)?;
        self.subscriptions.retain(|(f, _)| f != filter);
        self.subscriptions.push((filter.to_string(), qos));
        Ok(granted)
    }

    fn subscribe_raw(&mut self, filter: &str, qos: u8) -> Result<u8, ClientError> {
        let id = self.next_packet_id();
        self.send(&Packet::Subscribe {
            packet_id: id,
            filters: vec![(filter.to_string(), qos)],
        })?;
        let ack = self.wait_ack(
            &format!("SUBACK for '{filter}'"),
            |p| matches!(p, Packet::SubAck { packet_id, .. } if *packet_id == id),
        )?;
        match ack {
            Packet::SubAck { codes, .. } => match codes.first() {
                Some(&c) if c != SUBACK_FAILURE && c <= 2 => Ok(c),
                _ => Err(ClientError::SubscriptionRefused(filter.to_string())),
            },
            other => Err(ClientError::Protocol(format!(
                "expected SUBACK, got {}",
                other.name()
            ))),
        }
    }

    pub fn unsubscribe(&mut self, filter: &str) -> Result<(), ClientError> {
        topic::validate_filter(filter).map_err(ClientError::Invalid)?;
        let id = self.next_packet_id();
        self.send(&Packet::Unsubscribe {
            packet_id: id,
            filters: vec![filter.to_string()],
        })?;
        self.wait_ack(
            &format!("UNSUBACK for '{filter}'"),
            |p| matches!(p, Packet::UnsubAck(i) if *i == id),
        )?;
        self.subscriptions.retain(|(f, _)| f != filter);
        Ok(())
    }

    /// Publish `payload` to `topic`. QoS 0 returns once written; QoS 1
    /// waits for the PUBACK, QoS 2 for PUBREC then PUBCOMP, resending with
    /// DUP up to `retries` times.
    pub fn publish(
        &mut self,
        topic_name: &str,
        payload: &[u8],
        qos: u8,
    ) -> Result<(), ClientError> {
        self.publish_retained(topic_name, payload, qos, false)
    }

    /// [`MqttClient::publish`] with the retain flag: the broker keeps the
    /// message for later subscribers (an empty payload clears it).
    pub fn publish_retained(
        &mut self,
        topic_name: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
    ) -> Result<(), ClientError> {
        topic::validate_topic_name(topic_name).map_err(ClientError::Invalid)?;
        if qos > 2 {
            return Err(ClientError::Invalid(format!("QoS {qos} does not exist")));
        }
        let mut p = Publish {
            dup: false,
            qos,
            retain,
            topic: topic_name.to_string(),
            packet_id: None,
            payload: payload.to_vec(),
        };
        if qos == 0 {
            return self.send(&Packet::Publish(p));
        }
        let id = self.next_packet_id();
        p.packet_id = Some(id);
        let first_ack = |a: &Packet| match a {
            Packet::PubAck(i) => *i == id && qos == 1,
            Packet::PubRec(i) => *i == id && qos == 2,
            _ => false,
        };
        let mut acked = false;
        for attempt in 0..=self.cfg.retries {
            p.dup = attempt > 0;
            self.send(&Packet::Publish(p.clone()))?;
            let deadline = Instant::now() + self.cfg.ack_timeout;
            if self.wait_until(deadline, first_ack)?.is_some() {
                acked = true;
                break;
            }
        }
        if !acked {
            return Err(ClientError::Timeout(format!(
                "no {} for '{topic_name}' after {} attempt(s)",
                if qos == 1 { "PUBACK" } else { "PUBREC" },
                self.cfg.retries + 1
            )));
        }
        if qos == 1 {
            return Ok(());
        }
        for _ in 0..=self.cfg.retries {
            self.send(&Packet::PubRel(id))?;
            let deadline = Instant::now() + self.cfg.ack_timeout;
            if self
                .wait_until(deadline, |a| matches!(a, Packet::PubComp(i) if *i == id))?
                .is_some()
            {
                return Ok(());
            }
        }
        Err(ClientError::Timeout(format!(
            "no PUBCOMP for '{topic_name}' after {} attempt(s)",
            self.cfg.retries + 1
        )))
    }

    /// The next message, waiting at most `timeout`; `Ok(None)` if none came.
    /// QoS 1 deliveries are acknowledged when read off the socket.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<(String, Vec<u8>)>, ClientError> {
        Ok(self.recv_message(timeout)?.map(|m| (m.topic, m.payload)))
    }

    /// Like [`MqttClient::recv`], with the message's QoS, retain and DUP flags.
    pub fn recv_message(&mut self, timeout: Duration) -> Result<Option<Received>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.queued.pop_front() {
                return Ok(Some(m));
            }
            if let Event::Timeout = self.pump(deadline)? {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
            }
        }
    }

    /// Send PINGREQ and wait for PINGRESP (the broker is alive and reading).
    pub fn ping(&mut self) -> Result<(), ClientError> {
        self.send(&Packet::PingReq)?;
        self.ping_sent = Some(Instant::now());
        self.wait_ack("PINGRESP", |p| matches!(p, Packet::PingResp))
            .map(|_| ())
    }

    /// Open a new connection with the same id and config and subscribe
    /// again to every filter (a clean session starts with none). Queued
    /// messages are kept.
    pub fn reconnect(&mut self) -> Result<(), ClientError> {
        self.writer.shutdown();
        let (reader, writer, present) = open(&self.addr, &self.client_id, &self.cfg)?;
        self.reader = reader;
        self.writer = writer;
        self.session_present = present;
        self.last_sent = Instant::now();
        self.ping_sent = None;
        for (f, q) in self.subscriptions.clone() {
            self.subscribe_raw(&f, q)?;
        }
        Ok(())
    }

    /// [`MqttClient::reconnect`] up to `attempts` times, `backoff` apart
    /// (doubling, at most 5 s). Returns the last error.
    pub fn reconnect_with_retry(
        &mut self,
        attempts: u32,
        backoff: Duration,
    ) -> Result<(), ClientError> {
        let mut wait = backoff;
        let mut last = ClientError::Closed;
        for i in 0..attempts.max(1) {
            if i > 0 {
                thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            match self.reconnect() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    log::info!("mqtt reconnect to {} failed: {e}", self.addr);
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Send DISCONNECT and close (the broker then discards a clean
    /// session, and does not publish the will).
    pub fn disconnect(self) {
        let _ = self.writer.send(&Packet::Disconnect);
        self.writer.shutdown();
    }

    /// Close the socket without DISCONNECT, as a crashed client would: the
    /// broker publishes the will.
    pub fn abort(self) {
        self.writer.shutdown();
    }

    fn next_packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        self.next_id
    }

    fn send(&mut self, p: &Packet) -> Result<(), ClientError> {
        self.writer.send(p)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Wait `ack_timeout` for a packet `want` accepts, or fail naming `what`.
    fn wait_ack(
        &mut self,
        what: &str,
        want: impl Fn(&Packet) -> bool,
    ) -> Result<Packet, ClientError> {
        let deadline = Instant::now() + self.cfg.ack_timeout;
        self.wait_until(deadline, want)?.ok_or_else(|| {
            ClientError::Timeout(format!("no {what} within {:?}", self.cfg.ack_timeout))
        })
    }

    fn wait_until(
        &mut self,
        deadline: Instant,
        want: impl Fn(&Packet) -> bool,
    ) -> Result<Option<Packet>, ClientError> {
        loop {
            match self.pump(deadline)? {
                Event::Ack(p) if want(&p) => return Ok(Some(p)),
                Event::Timeout if Instant::now() >= deadline => return Ok(None),
                _ => {}
            }
        }
    }

    /// Keep-alive duty, then read one packet (or time out at `deadline` or
    /// when the next ping is due).
    fn pump(&mut self, deadline: Instant) -> Result<Event, ClientError> {
        let ka = self.cfg.keep_alive;
        let mut until = deadline;
        if !ka.is_zero() {
            match self.ping_sent {
                Some(t) => until = until.min(t + self.cfg.ack_timeout),
                None => {
                    let due = self.last_sent + ka / 2;
                    if Instant::now() >= due {
                        self.send(&Packet::PingReq)?;
                        self.ping_sent = Some(Instant::now());
                        until = until.min(Instant::now() + self.cfg.ack_timeout);
                    } else {
                        until = until.min(due);
                    }
                }
            }
        }
        match self.reader.read(Some(until), Some(self.cfg.ack_timeout)) {
            Ok(p) => self.handle(p),
            Err(ReadError::Timeout) => {
                // Judged only after a read found nothing, so a PINGRESP
                // already in the buffer is never mistaken for a lost one.
                if let Some(t) = self.ping_sent {
                    if t.elapsed() >= self.cfg.ack_timeout {
                        return Err(ClientError::Timeout(format!(
                            "no PINGRESP within {:?}; the connection is dead",
                            self.cfg.ack_timeout
                        )));
                    }
                }
                Ok(Event::Timeout)
            }
            Err(ReadError::Closed) => Err(ClientError::Closed),
            Err(ReadError::Packet(e)) => Err(ClientError::Protocol(e.to_string())),
            Err(ReadError::Io(e)) => Err(ClientError::Io(e)),
        }
    }

    fn enqueue(&mut self, m: Received) {
        if self.queued.len() >= self.cfg.max_queued.max(1) {
            self.queued.pop_front();
            self.dropped += 1;
        }
        self.queued.push_back(m);
    }

    fn handle(&mut self, p: Packet) -> Result<Event, ClientError> {
        match p {
            Packet::Publish(pb) => {
                let m = Received {
                    topic: pb.topic,
                    payload: pb.payload,
                    qos: pb.qos,
                    retain: pb.retain,
                    dup: pb.dup,
                };
                match (pb.qos, pb.packet_id) {
                    (1, Some(id)) => self.send(&Packet::PubAck(id))?,
                    (2, Some(id)) => {
                        // Held until PUBREL: a resend of this id is the
                        // same message.
                        self.incoming_qos2.entry(id).or_insert(m);
                        self.send(&Packet::PubRec(id))?;
                        return Ok(Event::Message);
                    }
                    _ => {}
                }
                self.enqueue(m);
                Ok(Event::Message)
            }
            Packet::PubRel(id) => {
                if let Some(m) = self.incoming_qos2.remove(&id) {
                    self.enqueue(m);
                }
                self.send(&Packet::PubComp(id))?;
                Ok(Event::Message)
            }
            Packet::PingResp => {
                self.ping_sent = None;
                Ok(Event::Ack(Packet::PingResp))
            }
            p @ (Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubComp(_)
            | Packet::SubAck { .. }
            | Packet::UnsubAck(_)) => Ok(Event::Ack(p)),
            other => Err(ClientError::Protocol(format!(
                "unexpected {} from the broker",
                other.name()
            ))),
        }
    }
}

/// TCP connect (each resolved address in turn), CONNECT, CONNACK (and its
/// `session present` flag).
fn open(
    addr: &str,
    client_id: &str,
    cfg: &ClientConfig,
) -> Result<(PacketReader, PacketWriter, bool), ClientError> {
    let addrs = addr
        .to_socket_addrs()
        .map_err(|e| ClientError::Invalid(format!("cannot resolve '{addr}': {e}")))?;
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("'{addr}' resolves to nothing"),
    );
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, cfg.connect_timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = io::Error::new(e.kind(), format!("cannot connect to {a}: {e}")),
        }
    }
    let stream = stream.ok_or(ClientError::Io(last))?;
    let _ = stream.set_nodelay(cfg.nodelay);
    stream.set_write_timeout(Some(cfg.write_timeout))?;
    let writer = PacketWriter::new(stream.try_clone()?)?;
    let mut reader = PacketReader::new(stream, cfg.max_packet);
    let keep_alive = u16::try_from(cfg.keep_alive.as_secs()).unwrap_or(u16::MAX);
    writer.send(&Packet::Connect(Connect {
        clean_session: cfg.clean_session,
        keep_alive,
        client_id: client_id.to_string(),
        will: cfg.will.clone(),
        username: cfg.username.clone(),
        password: cfg.password.clone(),
    }))?;
    let deadline = Instant::now() + cfg.connect_timeout.max(cfg.ack_timeout);
    match reader.read(Some(deadline), Some(cfg.ack_timeout)) {
        Ok(Packet::ConnAck {
            code: 0,
            session_present,
        }) => Ok((reader, writer, session_present)),
        Ok(Packet::ConnAck { code, .. }) => {
            writer.shutdown();
            Err(ClientError::Refused(code))
        }
        Ok(other) => {
            writer.shutdown();
            Err(ClientError::Protocol(format!(
                "expected CONNACK, got {}",
                other.name()
            )))
        }
        Err(e) => {
            writer.shutdown();
            Err(match e {
                ReadError::Timeout => ClientError::Timeout(format!("no CONNACK from {addr}")),
                ReadError::Closed => ClientError::Closed,
                ReadError::Packet(e) => ClientError::Protocol(e.to_string()),
                ReadError::Io(e) => ClientError::Io(e),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_mqtt_url;

    #[test]
    fn urls() {
        assert_eq!(
            parse_mqtt_url("mqtt://127.0.0.1:1883"),
            Ok("127.0.0.1:1883".into())
        );
        assert_eq!(
            parse_mqtt_url("mqtt://broker.local"),
            Ok("broker.local:1883".into())
        );
        assert_eq!(parse_mqtt_url("mqtt://h:9/"), Ok("h:9".into()));
        assert_eq!(parse_mqtt_url("mqtt://[::1]:1884"), Ok("[::1]:1884".into()));
        assert_eq!(parse_mqtt_url("mqtt://[::1]"), Ok("[::1]:1883".into()));
        for bad in [
            "127.0.0.1:1883",
            "tcp://h:1",
            "mqtts://h:8883",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://h:0",
            "mqtt://h:65536",
            "mqtt://h:x",
            "mqtt://u:p@h:1",
            "mqtt://h:1/path",
            "mqtt://::1",
        ] {
            assert!(parse_mqtt_url(bad).is_err(), "{bad}");
        }
    }
}
