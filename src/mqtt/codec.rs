//! MQTT 3.1.1 packets: a pure decoder ([`parse`]) and an encoder ([`encode`]).
//!
//! # Wire format (OASIS MQTT 3.1.1, chapter 2)
//!
//! ```text
//! byte 1       : packet type (high nibble) | flags (low nibble)
//! bytes 2..=5  : remaining length, base-128 varint, 1..=4 bytes, minimal
//! then         : variable header + payload, exactly `remaining length` bytes
//! ```
//!
//! Like [`crate::wire::frame::parse`], [`parse`] looks at a byte slice only:
//! `Ok(None)` means "need more bytes" (a packet split across reads is
//! normal), `Ok(Some((packet, used)))` is one complete packet, and `Err` means
//! the stream is broken and the connection must be closed. The packet size
//! limit is checked against the *declared* size as soon as the remaining
//! length is known, before any body byte is waited for or copied.
//!
//! A field that runs past the end of its packet is [`MqttError::Truncated`]
//! (the declared length lies); bytes left over after the last field are
//! [`MqttError::Malformed`]. Neither can be fixed by reading more.

use super::topic;
use std::fmt;

/// Default largest packet (fixed header included): 1 MiB.
pub const DEFAULT_MAX_PACKET: usize = 1 << 20;

/// Largest remaining length a 4-byte varint can carry.
pub const MAX_REMAINING: usize = 268_435_455;

/// CONNACK return codes (3.1.1 table 3.1).
pub mod connack {
    pub const ACCEPTED: u8 = 0;
    pub const BAD_PROTOCOL_LEVEL: u8 = 1;
    pub const IDENTIFIER_REJECTED: u8 = 2;
    pub const SERVER_UNAVAILABLE: u8 = 3;
    pub const BAD_USERNAME_PASSWORD: u8 = 4;
    pub const NOT_AUTHORIZED: u8 = 5;

    /// A person-readable meaning of a CONNACK code.
    pub fn describe(code: u8) -> &'static str {
        match code {
            ACCEPTED => "accepted",
            BAD_PROTOCOL_LEVEL => "unacceptable protocol level (only MQTT 3.1.1 / level 4)",
            IDENTIFIER_REJECTED => "client identifier rejected",
            SERVER_UNAVAILABLE => "server unavailable",
            BAD_USERNAME_PASSWORD => "bad user name or password",
            NOT_AUTHORIZED => "not authorized",
            _ => "unknown CONNACK code",
        }
    }
}

/// The SUBACK code for a refused filter.
pub const SUBACK_FAILURE: u8 = 0x80;

/// A will message as carried in CONNECT (parsed; frota's server refuses it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Always 4 once parsed: other levels are [`MqttError::BadProtocolLevel`].
    pub clean_session: bool,
    /// Seconds; 0 turns keep-alive off.
    pub keep_alive: u16,
    pub client_id: String,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    /// Present exactly when `qos > 0`.
    pub packet_id: Option<u16>,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    ConnAck {
        session_present: bool,
        code: u8,
    },
    Publish(Publish),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    /// `(filter, requested qos)`; filter syntax is checked by the receiver
    /// (a server answers a bad filter with 0x80 instead of dropping the
    /// whole connection).
    Subscribe {
        packet_id: u16,
        filters: Vec<(String, u8)>,
    },
    SubAck {
        packet_id: u16,
        codes: Vec<u8>,
    },
    Unsubscribe {
        packet_id: u16,
        filters: Vec<String>,
    },
    UnsubAck(u16),
    PingReq,
    PingResp,
    Disconnect,
}

impl Packet {
    /// The packet's name as the spec spells it (logs, errors).
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck { .. } => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe { .. } => "SUBSCRIBE",
            Packet::SubAck { .. } => "SUBACK",
            Packet::Unsubscribe { .. } => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect => "DISCONNECT",
        }
    }
}

/// Why bytes are not a valid MQTT packet. Every variant is fatal for the
/// connection (MQTT has no way to resynchronise a stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttError {
    /// The remaining-length varint is longer than 4 bytes or not minimal.
    BadRemainingLength(&'static str),
    /// The declared packet size exceeds the limit (checked before reading).
    TooLarge { size: usize, max: usize },
    /// A field runs past the end of the packet.
    Truncated(&'static str),
    /// Well framed but invalid (reserved bits, bad flags, bad UTF-8, ...).
    Malformed(String),
    /// CONNECT with a protocol name other than `MQTT` (or `MQIsdp`).
    BadProtocolName(String),
    /// CONNECT with a protocol level other than 4; a server answers with
    /// CONNACK code 1.
    BadProtocolLevel(u8),
    /// Something that cannot be encoded (string over 65535 bytes, ...).
    Unencodable(String),
}

impl fmt::Display for MqttError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MqttError::BadRemainingLength(why) => write!(f, "bad remaining length: {why}"),
            MqttError::TooLarge { size, max } => {
                write!(f, "packet of {size} bytes exceeds the limit of {max} bytes")
            }
            MqttError::Truncated(what) => write!(f, "packet truncated: {what} runs past its end"),
            MqttError::Malformed(why) => write!(f, "malformed packet: {why}"),
            MqttError::BadProtocolName(n) => {
                write!(f, "protocol name '{n}' is not MQTT")
            }
            MqttError::BadProtocolLevel(l) => {
                write!(
                    f,
                    "protocol level {l} is not supported (only 4, MQTT 3.1.1)"
                )
            }
            MqttError::Unencodable(why) => write!(f, "cannot encode: {why}"),
        }
    }
}

impl std::error::Error for MqttError {}

fn malformed(why: impl Into<String>) -> MqttError {
    MqttError::Malformed(why.into())
}

// Packet type numbers (high nibble of byte 1).
const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const PUBREC: u8 = 5;
const PUBREL: u8 = 6;
const PUBCOMP: u8 = 7;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const UNSUBSCRIBE: u8 = 10;
const UNSUBACK: u8 = 11;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;

/// The fixed-header flags every type but PUBLISH must carry [MQTT-2.2.2-1].
fn required_flags(kind: u8) -> Option<u8> {
    match kind {
        PUBLISH => None,
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => Some(0b0010),
        _ => Some(0),
    }
}

/// Try to decode one packet from the front of `buf`. See the module docs.
pub fn parse(buf: &[u8], max_packet: usize) -> Result<Option<(Packet, usize)>, MqttError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let kind = first >> 4;
    let flags = first & 0x0f;
    // Check the first byte at once, so garbage is refused without waiting.
    if kind == 0 || kind == 15 {
        return Err(malformed(format!("reserved packet type {kind}")));
    }
    if let Some(want) = required_flags(kind) {
        if flags != want {
            return Err(malformed(format!(
                "packet type {kind} with fixed-header flags {flags:#06b} (must be {want:#06b})"
            )));
        }
    }
    let Some((remaining, len_bytes)) = decode_remaining(&buf[1..])? else {
        return Ok(None);
    };
    let total = 1 + len_bytes + remaining;
    if total > max_packet {
        return Err(MqttError::TooLarge {
            size: total,
            max: max_packet,
        });
    }
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[1 + len_bytes..total];
    let packet = decode_body(kind, flags, body)?;
    Ok(Some((packet, total)))
}

/// Decode the remaining-length varint at the front of `bytes`:
/// `Ok(Some((value, bytes_used)))`, `Ok(None)` if incomplete.
pub fn decode_remaining(bytes: &[u8]) -> Result<Option<(usize, usize)>, MqttError> {
    let mut value = 0usize;
    let mut shift = 0;
    for i in 0..4 {
        let Some(&b) = bytes.get(i) else {
            return Ok(None);
        };
        value |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            // A last byte of 0 after a continuation means the same value
            // fits in fewer bytes: refuse the ambiguous encoding.
            if i > 0 && b == 0 {
                return Err(MqttError::BadRemainingLength("not minimally encoded"));
            }
            return Ok(Some((value, i + 1)));
        }
        shift += 7;
    }
    Err(MqttError::BadRemainingLength(
        "continuation bit set on the 4th byte (more than 4 bytes)",
    ))
}

/// Encode a remaining length (at most [`MAX_REMAINING`]).
fn encode_remaining(mut n: usize, out: &mut Vec<u8>) -> Result<(), MqttError> {
    if n > MAX_REMAINING {
        return Err(MqttError::Unencodable(format!(
            "remaining length {n} over {MAX_REMAINING}"
        )));
    }
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return Ok(());
        }
    }
}

/// A read cursor over one packet's body; every read is bounds-checked.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], MqttError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(MqttError::Truncated(what))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, MqttError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, MqttError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn binary(&mut self, what: &'static str) -> Result<&'a [u8], MqttError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }

    /// A UTF-8 string: valid UTF-8 (which excludes surrogates) and no
    /// U+0000 [MQTT-1.5.3-1, -2].
    fn string(&mut self, what: &'static str) -> Result<String, MqttError> {
        let raw = self.binary(what)?;
        let s = std::str::from_utf8(raw)
            .map_err(|_| malformed(format!("{what} is not valid UTF-8")))?;
        if s.contains('\0') {
            return Err(malformed(format!("{what} contains U+0000")));
        }
        Ok(s.to_string())
    }

    fn packet_id(&mut self) -> Result<u16, MqttError> {
        let id = self.u16("packet identifier")?;
        if id == 0 {
            return Err(malformed("packet identifier 0"));
        }
        Ok(id)
    }

    /// A topic filter of SUBSCRIBE or UNSUBSCRIBE: a string, not empty.
    fn filter(&mut self) -> Result<String, MqttError> {
        let f = self.string("topic filter")?;
        if f.is_empty() {
            return Err(malformed("empty topic filter"));
        }
        Ok(f)
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn finish(&self, kind: &str) -> Result<(), MqttError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(malformed(format!(
                "{} unexpected byte(s) at the end of {kind}",
                self.buf.len() - self.pos
            )))
        }
    }
}

fn decode_body(kind: u8, flags: u8, body: &[u8]) -> Result<Packet, MqttError> {
    let mut c = Cursor { buf: body, pos: 0 };
    let packet = match kind {
        CONNECT => Packet::Connect(decode_connect(&mut c)?),
        CONNACK => {
            let ack = c.u8("CONNACK flags")?;
            if ack & 0xfe != 0 {
                return Err(malformed("CONNACK reserved flag bits set"));
            }
            let code = c.u8("CONNACK return code")?;
            Packet::ConnAck {
                session_present: ack & 1 == 1,
                code,
            }
        }
        PUBLISH => Packet::Publish(decode_publish(flags, &mut c)?),
        PUBACK => Packet::PubAck(c.packet_id()?),
        PUBREC => Packet::PubRec(c.packet_id()?),
        PUBREL => Packet::PubRel(c.packet_id()?),
        PUBCOMP => Packet::PubComp(c.packet_id()?),
        SUBSCRIBE => {
            let packet_id = c.packet_id()?;
            let mut filters = Vec::new();
            while !c.at_end() {
                let f = c.filter()?;
                let qos = c.u8("requested QoS")?;
                if qos > 2 {
                    return Err(malformed(format!("requested QoS byte {qos:#04x}")));
                }
                filters.push((f, qos));
            }
            if filters.is_empty() {
                return Err(malformed("SUBSCRIBE without any topic filter"));
            }
            Packet::Subscribe { packet_id, filters }
        }
        SUBACK => {
            let packet_id = c.packet_id()?;
            let codes = c.rest().to_vec();
            if codes.is_empty() {
                return Err(malformed("SUBACK without return codes"));
            }
            if let Some(bad) = codes.iter().find(|b| !matches!(**b, 0 | 1 | 2 | 0x80)) {
                return Err(malformed(format!("SUBACK return code {bad:#04x}")));
            }
            Packet::SubAck { packet_id, codes }
        }
        UNSUBSCRIBE => {
            let packet_id = c.packet_id()?;
            let mut filters = Vec::new();
            while !c.at_end() {
                let f = c.filter()?;
                filters.push(f);
            }
            if filters.is_empty() {
                return Err(malformed("UNSUBSCRIBE without any topic filter"));
            }
            Packet::Unsubscribe { packet_id, filters }
        }
        UNSUBACK => Packet::UnsubAck(c.packet_id()?),
        PINGREQ => Packet::PingReq,
        PINGRESP => Packet::PingResp,
        DISCONNECT => Packet::Disconnect,
        other => return Err(malformed(format!("reserved packet type {other}"))),
    };
    c.finish(packet.name())?;
    Ok(packet)
}

/// A PUBLISH's fixed-header flags, topic, packet id and payload.
fn decode_publish(flags: u8, c: &mut Cursor) -> Result<Publish, MqttError> {
    let qos = (flags >> 1) & 0b11;
    if qos == 3 {
        return Err(malformed("PUBLISH with QoS 3"));
    }
    let dup = flags & 0b1000 != 0;
    if qos == 0 && dup {
        return Err(malformed("PUBLISH QoS 0 with DUP set"));
    }
    let topic = c.string("topic name")?;
    topic::validate_topic_name(&topic).map_err(malformed)?;
    let packet_id = if qos > 0 { Some(c.packet_id()?) } else { None };
    Ok(Publish {
        dup,
        qos,
        retain: flags & 1 == 1,
        topic,
        packet_id,
        payload: c.rest().to_vec(),
    })
}

fn decode_connect(c: &mut Cursor) -> Result<Connect, MqttError> {
    let name = c.string("protocol name")?;
    let level = c.u8("protocol level")?;
    // MQIsdp is MQTT 3.1's name: a well-behaved old client, answered with
    // CONNACK 1 rather than a silent close.
    if name != "MQTT" && name != "MQIsdp" {
        return Err(MqttError::BadProtocolName(name));
    }
    if name != "MQTT" || level != 4 {
        return Err(MqttError::BadProtocolLevel(level));
    }
    let flags = c.u8("connect flags")?;
    if flags & 1 != 0 {
        return Err(malformed("CONNECT reserved flag bit set"));
    }
    let clean_session = flags & 0b10 != 0;
    let will_flag = flags & 0b100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b10_0000 != 0;
    let password_flag = flags & 0b100_0000 != 0;
    let username_flag = flags & 0b1000_0000 != 0;
    if will_qos == 3 {
        return Err(malformed("will QoS 3"));
    }
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(malformed("will QoS/retain set without the will flag"));
    }
    if password_flag && !username_flag {
        return Err(malformed("password flag without user name flag"));
    }
    let keep_alive = c.u16("keep alive")?;
    let client_id = c.string("client identifier")?;
    let will = if will_flag {
        let topic = c.string("will topic")?;
        topic::validate_topic_name(&topic).map_err(malformed)?;
        let payload = c.binary("will message")?.to_vec();
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(c.string("user name")?)
    } else {
        None
    };
    let password = if password_flag {
        Some(c.binary("password")?.to_vec())
    } else {
        None
    };
    Ok(Connect {
        clean_session,
        keep_alive,
        client_id,
        will,
        username,
        password,
    })
}

fn put_u16(out: &mut Vec<u8>, n: u16) {
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_binary(out: &mut Vec<u8>, b: &[u8], what: &str) -> Result<(), MqttError> {
    let n = u16::try_from(b.len())
        .map_err(|_| MqttError::Unencodable(format!("{what} longer than 65535 bytes")))?;
    put_u16(out, n);
    out.extend_from_slice(b);
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str, what: &str) -> Result<(), MqttError> {
    put_binary(out, s.as_bytes(), what)
}

/// The fixed-header and id fields of a PUBLISH, apart from its topic and
/// payload (so a broker can encode one shared message for many receivers
/// without copying it into a [`Publish`] each time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishHead {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub packet_id: Option<u16>,
}

impl Publish {
    pub fn head(&self) -> PublishHead {
        PublishHead {
            dup: self.dup,
            qos: self.qos,
            retain: self.retain,
            packet_id: self.packet_id,
        }
    }
}

/// Append one PUBLISH packet to `out`.
pub fn encode_publish(
    out: &mut Vec<u8>,
    h: PublishHead,
    topic: &str,
    payload: &[u8],
) -> Result<(), MqttError> {
    let qos = h.qos.min(2);
    let mut head = Vec::with_capacity(topic.len() + 4);
    put_str(&mut head, topic, "topic name")?;
    if qos > 0 {
        let id = h.packet_id.ok_or_else(|| {
            MqttError::Unencodable("PUBLISH with QoS > 0 needs a packet id".into())
        })?;
        put_u16(&mut head, id);
    }
    let mut flags = qos << 1;
    if h.dup && qos > 0 {
        flags |= 0b1000;
    }
    if h.retain {
        flags |= 1;
    }
    let mut len = Vec::with_capacity(4);
    encode_remaining(head.len() + payload.len(), &mut len)?;
    out.push((PUBLISH << 4) | flags);
    out.extend_from_slice(&len);
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    Ok(())
}

/// A CONNECT's variable header and payload.
fn encode_connect(body: &mut Vec<u8>, c: &Connect) -> Result<(), MqttError> {
    put_str(body, "MQTT", "protocol name")?;
    body.push(4);
    let mut flags = 0u8;
    if c.clean_session {
        flags |= 0b10;
    }
    if let Some(w) = &c.will {
        flags |= 0b100 | (w.qos.min(2) << 3);
        if w.retain {
            flags |= 0b10_0000;
        }
    }
    if c.password.is_some() {
        flags |= 0b100_0000;
    }
    if c.username.is_some() {
        flags |= 0b1000_0000;
    }
    body.push(flags);
    put_u16(body, c.keep_alive);
    put_str(body, &c.client_id, "client identifier")?;
    if let Some(w) = &c.will {
        put_str(body, &w.topic, "will topic")?;
        put_binary(body, &w.payload, "will message")?;
    }
    if let Some(u) = &c.username {
        put_str(body, u, "user name")?;
    }
    if let Some(pw) = &c.password {
        put_binary(body, pw, "password")?;
    }
    Ok(())
}

/// Encode one packet. Fails only on what the wire cannot carry (strings
/// over 65535 bytes, packets over 256 MiB); it does not re-validate topics.
pub fn encode(p: &Packet) -> Result<Vec<u8>, MqttError> {
    let mut body = Vec::new();
    let first: u8 = match p {
        Packet::Connect(c) => {
            encode_connect(&mut body, c)?;
            CONNECT << 4
        }
        Packet::ConnAck {
            session_present,
            code,
        } => {
            body.push(u8::from(*session_present));
            body.push(*code);
            CONNACK << 4
        }
        Packet::Publish(pb) => {
            let mut out = Vec::with_capacity(pb.topic.len() + pb.payload.len() + 9);
            encode_publish(&mut out, pb.head(), &pb.topic, &pb.payload)?;
            return Ok(out);
        }
        Packet::PubAck(id) => {
            put_u16(&mut body, *id);
            PUBACK << 4
        }
        Packet::PubRec(id) => {
            put_u16(&mut body, *id);
            PUBREC << 4
        }
        Packet::PubRel(id) => {
            put_u16(&mut body, *id);
            (PUBREL << 4) | 0b10
        }
        Packet::PubComp(id) => {
            put_u16(&mut body, *id);
            PUBCOMP << 4
        }
        Packet::Subscribe { packet_id, filters } => {
            put_u16(&mut body, *packet_id);
            for (f, q) in filters {
                put_str(&mut body, f, "topic filter")?;
                body.push(*q);
            }
            (SUBSCRIBE << 4) | 0b10
        }
        Packet::SubAck { packet_id, codes } => {
            put_u16(&mut body, *packet_id);
            body.extend_from_slice(codes);
            SUBACK << 4
        }
        Packet::Unsubscribe { packet_id, filters } => {
            put_u16(&mut body, *packet_id);
            for f in filters {
                put_str(&mut body, f, "topic filter")?;
            }
            (UNSUBSCRIBE << 4) | 0b10
        }
        Packet::UnsubAck(id) => {
            put_u16(&mut body, *id);
            UNSUBACK << 4
        }
        Packet::PingReq => PINGREQ << 4,
        Packet::PingResp => PINGRESP << 4,
        Packet::Disconnect => DISCONNECT << 4,
    };
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first);
    encode_remaining(body.len(), &mut out)?;
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1024;

    fn samples() -> Vec<Packet> {
        vec![
            Packet::Connect(Connect {
                clean_session: true,
                keep_alive: 30,
                client_id: "vehicle-1".into(),
                will: None,
                username: None,
                password: None,
            }),
            Packet::Connect(Connect {
                clean_session: false,
                keep_alive: 0,
                client_id: String::new(),
                will: Some(Will {
                    topic: "vehicle/1/gone".into(),
                    payload: b"bye".to_vec(),
                    qos: 1,
                    retain: true,
                }),
                username: Some("ana".into()),
                password: Some(vec![0, 1, 2, 255]),
            }),
            Packet::ConnAck {
                session_present: false,
                code: 0,
            },
            Packet::ConnAck {
                session_present: true,
                code: 5,
            },
            Packet::Publish(Publish {
                dup: false,
                qos: 0,
                retain: false,
                topic: "a/b".into(),
                packet_id: None,
                payload: b"{\"x\":1}".to_vec(),
            }),
            Packet::Publish(Publish {
                dup: true,
                qos: 1,
                retain: true,
                topic: "vehicle/é".into(),
                packet_id: Some(65535),
                payload: vec![],
            }),
            Packet::Publish(Publish {
                dup: false,
                qos: 2,
                retain: false,
                topic: "q2".into(),
                packet_id: Some(7),
                payload: vec![0; 300],
            }),
            Packet::PubAck(1),
            Packet::PubRec(2),
            Packet::PubRel(3),
            Packet::PubComp(4),
            Packet::Subscribe {
                packet_id: 9,
                filters: vec![
                    ("a/+".into(), 0),
                    ("$share/g/b/#".into(), 1),
                    ("c".into(), 2),
                ],
            },
            Packet::SubAck {
                packet_id: 9,
                codes: vec![0, 1, 0x80],
            },
            Packet::Unsubscribe {
                packet_id: 10,
                filters: vec!["a/+".into(), "x".into()],
            },
            Packet::UnsubAck(10),
            Packet::PingReq,
            Packet::PingResp,
            Packet::Disconnect,
        ]
    }

    #[test]
    fn every_packet_round_trips() {
        for p in samples() {
            let bytes = encode(&p).unwrap();
            let (back, used) = parse(&bytes, MAX).unwrap().unwrap();
            assert_eq!(back, p);
            assert_eq!(used, bytes.len(), "{}", p.name());
        }
    }

    #[test]
    fn every_split_point_is_incomplete_then_complete() {
        for p in samples() {
            let bytes = encode(&p).unwrap();
            for cut in 0..bytes.len() {
                assert_eq!(
                    parse(&bytes[..cut], MAX),
                    Ok(None),
                    "{} cut at {cut}",
                    p.name()
                );
            }
        }
    }

    #[test]
    fn pipelined_packets_decode_in_order() {
        let all = samples();
        let mut stream = Vec::new();
        for p in &all {
            stream.extend(encode(p).unwrap());
        }
        let mut at = 0;
        for p in &all {
            let (back, used) = parse(&stream[at..], MAX).unwrap().unwrap();
            assert_eq!(&back, p);
            at += used;
        }
        assert_eq!(at, stream.len());
    }

    #[test]
    fn remaining_length_varint() {
        let cases: [(&[u8], usize, usize); 8] = [
            (&[0x00], 0, 1),
            (&[0x7f], 127, 1),
            (&[0x80, 0x01], 128, 2),
            (&[0xff, 0x7f], 16_383, 2),
            (&[0x80, 0x80, 0x01], 16_384, 3),
            (&[0xff, 0xff, 0x7f], 2_097_151, 3),
            (&[0x80, 0x80, 0x80, 0x01], 2_097_152, 4),
            (&[0xff, 0xff, 0xff, 0x7f], MAX_REMAINING, 4),
        ];
        for (bytes, value, used) in cases {
            assert_eq!(
                decode_remaining(bytes),
                Ok(Some((value, used))),
                "{bytes:?}"
            );
            let mut enc = Vec::new();
            encode_remaining(value, &mut enc).unwrap();
            assert_eq!(enc, bytes);
        }
        assert!(encode_remaining(MAX_REMAINING + 1, &mut Vec::new()).is_err());
        assert_eq!(decode_remaining(&[0x80]), Ok(None));
        assert_eq!(decode_remaining(&[0xff, 0xff, 0xff]), Ok(None));
    }

    #[test]
    fn bad_remaining_length() {
        // Five bytes.
        let five = [0x30, 0xff, 0xff, 0xff, 0xff, 0x01];
        let bad: [&[u8]; 3] = [
            &five,
            // Refused as soon as the 4th byte shows a continuation bit.
            &five[..5],
            // Non-minimal: 0 encoded in two bytes.
            &[0xc0, 0x80, 0x00],
        ];
        for b in bad {
            assert!(
                matches!(parse(b, usize::MAX), Err(MqttError::BadRemainingLength(_))),
                "{b:x?}"
            );
        }
    }

    #[test]
    fn oversize_refused_before_the_body_arrives() {
        // Declares 2 MB; only the header is present.
        let head = [0x30, 0x80, 0x80, 0x80, 0x01];
        assert_eq!(
            parse(&head, MAX),
            Err(MqttError::TooLarge {
                size: 1 + 4 + 2_097_152,
                max: MAX
            })
        );
        let p = Packet::Publish(Publish {
            dup: false,
            qos: 0,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            payload: vec![b'x'; MAX],
        });
        let bytes = encode(&p).unwrap();
        assert!(matches!(
            parse(&bytes[..4], MAX),
            Err(MqttError::TooLarge { .. })
        ));
        assert!(parse(&bytes, bytes.len()).unwrap().is_some());
        assert!(parse(&bytes, bytes.len() - 1).is_err());
    }

    #[test]
    fn truncated_fields() {
        // PUBLISH whose topic length (5) runs past a 3-byte body.
        assert_eq!(
            parse(&[0x30, 0x03, 0x00, 0x05, b'a'], MAX),
            Err(MqttError::Truncated("topic name"))
        );
        // QoS 1 PUBLISH without room for the packet id.
        assert_eq!(
            parse(&[0x32, 0x03, 0x00, 0x01, b'a'], MAX),
            Err(MqttError::Truncated("packet identifier"))
        );
        // PUBACK with one byte.
        assert_eq!(
            parse(&[0x40, 0x01, 0x00], MAX),
            Err(MqttError::Truncated("packet identifier"))
        );
        // CONNECT cut inside the client id.
        let mut c = encode(&samples()[0]).unwrap();
        c[1] -= 3;
        c.truncate(c.len() - 3);
        assert_eq!(
            parse(&c, MAX),
            Err(MqttError::Truncated("client identifier"))
        );
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let bad: [&[u8]; 3] = [&[0x40, 0x03, 0, 1, 9], &[0xc0, 0x01, 0], &[0xe0, 0x01, 0]];
        for b in bad {
            assert!(
                matches!(parse(b, MAX), Err(MqttError::Malformed(_))),
                "{b:x?}"
            );
        }
    }

    #[test]
    fn bad_first_bytes_refused_at_once() {
        for b in [
            0x00, 0xf0, 0x80, 0x83, 0xa0, 0xa3, 0x60, 0xc1, 0xe1, 0x41, 0x21, 0x12,
        ] {
            assert!(
                matches!(parse(&[b], MAX), Err(MqttError::Malformed(_))),
                "{b:#04x}"
            );
        }
        for ok in [0x62, 0x82, 0xa2, 0x30, 0x3b, 0x10] {
            assert_eq!(parse(&[ok], MAX), Ok(None), "{ok:#04x}");
        }
        // PUBLISH QoS 3, and QoS 0 with DUP.
        assert!(parse(&[0x36, 0x03, 0, 1, b'a'], MAX).is_err());
        assert!(parse(&[0x38, 0x03, 0, 1, b'a'], MAX).is_err());
    }

    #[test]
    fn utf8_and_topic_checks() {
        // Invalid UTF-8 topic.
        assert!(matches!(
            parse(&[0x30, 0x03, 0, 1, 0xff], MAX),
            Err(MqttError::Malformed(_))
        ));
        // Encoded surrogate U+D800 (ED A0 80) is not UTF-8.
        assert!(parse(&[0x30, 0x05, 0, 3, 0xed, 0xa0, 0x80], MAX).is_err());
        // U+0000 in a topic.
        assert!(parse(&[0x30, 0x03, 0, 1, 0], MAX).is_err());
        // Wildcards in a topic name.
        assert!(parse(&[0x30, 0x03, 0, 1, b'#'], MAX).is_err());
        assert!(parse(&[0x30, 0x05, 0, 3, b'a', b'/', b'+'], MAX).is_err());
        // Empty topic name.
        assert!(parse(&[0x30, 0x02, 0, 0], MAX).is_err());
    }

    #[test]
    fn packet_id_zero_refused() {
        assert!(parse(&[0x40, 0x02, 0, 0], MAX).is_err());
        assert!(parse(&[0x32, 0x05, 0, 1, b'a', 0, 0], MAX).is_err());
        assert!(parse(&[0x82, 0x06, 0, 0, 0, 1, b'a', 0], MAX).is_err());
    }

    #[test]
    fn subscribe_checks() {
        // No filters.
        assert!(parse(&[0x82, 0x02, 0, 1], MAX).is_err());
        // Requested QoS with reserved bits / QoS 3.
        assert!(parse(&[0x82, 0x06, 0, 1, 0, 1, b'a', 3], MAX).is_err());
        assert!(parse(&[0x82, 0x06, 0, 1, 0, 1, b'a', 0x41], MAX).is_err());
        // Missing QoS byte.
        assert_eq!(
            parse(&[0x82, 0x05, 0, 1, 0, 1, b'a'], MAX),
            Err(MqttError::Truncated("requested QoS"))
        );
        // Filter syntax is the server's business (SUBACK 0x80), not the codec's.
        let p = parse(&[0x82, 0x08, 0, 1, 0, 3, b'a', b'#', b'b', 0], MAX);
        assert!(matches!(p, Ok(Some((Packet::Subscribe { .. }, 10)))));
        // Empty filter, no filters in UNSUBSCRIBE, bad SUBACK code.
        assert!(parse(&[0x82, 0x05, 0, 1, 0, 0, 0], MAX).is_err());
        assert!(parse(&[0xa2, 0x02, 0, 1], MAX).is_err());
        assert!(parse(&[0x90, 0x03, 0, 1, 3], MAX).is_err());
    }

    fn connect_bytes(name: &str, level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        put_str(&mut body, name, "").unwrap();
        body.push(level);
        body.push(flags);
        body.extend_from_slice(&[0, 10]);
        body.extend_from_slice(rest);
        let mut out = vec![0x10];
        encode_remaining(body.len(), &mut out).unwrap();
        out.extend(body);
        out
    }

    #[test]
    fn connect_checks() {
        let id = [0, 1, b'c'];
        assert!(parse(&connect_bytes("MQTT", 4, 0b10, &id), MAX)
            .unwrap()
            .is_some());
        assert_eq!(
            parse(&connect_bytes("MQTT", 5, 0b10, &id), MAX),
            Err(MqttError::BadProtocolLevel(5))
        );
        assert_eq!(
            parse(&connect_bytes("MQIsdp", 3, 0b10, &id), MAX),
            Err(MqttError::BadProtocolLevel(3))
        );
        assert_eq!(
            parse(&connect_bytes("HTTP", 4, 0b10, &id), MAX),
            Err(MqttError::BadProtocolName("HTTP".into()))
        );
        // Reserved flag, will QoS 3, will QoS without will flag, password
        // without user name.
        for flags in [0b11, 0b1_1110, 0b1010, 0b10_0010, 0b100_0010] {
            assert!(
                matches!(
                    parse(&connect_bytes("MQTT", 4, flags, &id), MAX),
                    Err(MqttError::Malformed(_))
                ),
                "{flags:#b}"
            );
        }
        // Will with a wildcard topic.
        let will = [0, 1, b'c', 0, 1, b'#', 0, 0];
        assert!(parse(&connect_bytes("MQTT", 4, 0b110, &will), MAX).is_err());
        let will = [0, 1, b'c', 0, 1, b'w', 0, 0];
        let Ok(Some((Packet::Connect(c), _))) = parse(&connect_bytes("MQTT", 4, 0b110, &will), MAX)
        else {
            panic!("will connect should parse");
        };
        assert_eq!(c.will.map(|w| w.topic), Some("w".to_string()));
    }

    #[test]
    fn encode_refuses_what_the_wire_cannot_carry() {
        let p = Packet::Publish(Publish {
            dup: false,
            qos: 0,
            retain: false,
            topic: "a".repeat(70_000),
            packet_id: None,
            payload: vec![],
        });
        assert!(matches!(encode(&p), Err(MqttError::Unencodable(_))));
        let p = Packet::Publish(Publish {
            dup: false,
            qos: 1,
            retain: false,
            topic: "a".into(),
            packet_id: None,
            payload: vec![],
        });
        assert!(encode(&p).is_err());
    }

    /// Random and mutated bytes: `parse` never panics, never claims more
    /// bytes than it was given, and whatever it accepts re-encodes to a
    /// packet that decodes to the same value.
    #[test]
    fn seeded_random_input_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let bases: Vec<Vec<u8>> = samples().iter().map(|p| encode(p).unwrap()).collect();
        let mut accepted = 0;
        for i in 0..20_000 {
            let mut buf = if i % 2 == 0 {
                bases[(rnd() as usize) % bases.len()].clone()
            } else {
                (0..rnd() % 40).map(|_| rnd() as u8).collect()
            };
            for _ in 0..rnd() % 4 {
                if buf.is_empty() {
                    break;
                }
                let at = (rnd() as usize) % buf.len();
                match rnd() % 3 {
                    0 => buf[at] ^= 1 << (rnd() % 8),
                    1 => buf[at] = rnd() as u8,
                    _ => buf.truncate(at),
                }
            }
            if let Ok(Some((p, used))) = parse(&buf, MAX) {
                accepted += 1;
                assert!(used <= buf.len());
                let again = encode(&p).unwrap();
                assert_eq!(parse(&again, MAX), Ok(Some((p, again.len()))), "{buf:?}");
            }
        }
        assert!(
            accepted > 1000,
            "the mutations left some packets valid: {accepted}"
        );
    }
}
