//! `frota-broker`: topic publish/subscribe over the frota framing and MQTT
//! 3.1.1 — the role Mosquitto played in the original.
//!
//! Read in this order:
//! - [`core`]: the rules (topic tree, retained messages, MQTT sessions,
//!   wills, queues) as one pure state machine;
//! - [`bus`]: the core behind a mutex, waking the connections it writes to;
//! - this file: the frota-framed listener — `subscribe` / `unsubscribe` /
//!   `publish` requests, and pushed `message` frames on the subscriber's
//!   own connection:
//!
//! ```text
//! {"type":"message","topic":"vehicle/v1/status","payload":{...}}
//! ```
//! - [`mqtt_listener`]: the MQTT 3.1.1 listener (`--mqtt-listen`) on the
//!   same core, so both kinds of client see each other's messages.
//!
//! Payloads are bytes inside the broker. A frota-framed publish's `payload`
//! enters as its compact JSON text (or `payload_text` / `payload_base64`
//! as those bytes); a frota-framed subscriber is shown each payload by
//! [`frame_payload`].

pub mod bus;
pub mod core;
pub mod mqtt_listener;

use crate::mqtt::session::Message;
use crate::runtime::server::{Ctx, Handler, MessageHelp, NodeInfo};
use crate::runtime::wake::Wake;
use crate::sync::{lock, wait_timeout};
use crate::wire::connection::Writer;
use crate::wire::error::Error;
use crate::wire::frame::{self, Mode};
use crate::wire::message::{body, Body, Request};
use crate::wire::trace;
use bus::{Bus, Conn};
use mqtt_listener::MqttState;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A frota-framed subscriber's id in the core.
type SubscriberId = u64;

/// How a frota-framed subscriber is shown a payload (bytes): the JSON value
/// when the bytes are JSON text (`"payload"`), else the text when they are
/// UTF-8 (`"payload_text"`, also for an empty payload), else base64
/// (`"payload_base64"`). MQTT subscribers always get the bytes themselves.
pub fn frame_payload(payload: &[u8]) -> (&'static str, Value) {
    if let Ok(v) = serde_json::from_slice::<Value>(payload) {
        return ("payload", v);
    }
    match std::str::from_utf8(payload) {
        Ok(text) => ("payload_text", Value::String(text.to_string())),
        Err(_) => ("payload_base64", Value::String(base64_encode(payload))),
    }
}

/// The `message` frame for a frota-framed subscriber, as a value.
fn message_value(topic: &str, payload: &[u8], retained: bool) -> Value {
    let (key, value) = frame_payload(payload);
    let mut m = Map::new();
    m.insert("type".into(), json!("message"));
    m.insert("topic".into(), json!(topic));
    m.insert(key.into(), value);
    if retained {
        m.insert("retain".into(), json!(true));
    }
    Value::Object(m)
}

/// The same frame's text with the payload copied in as it is, for a
/// payload serde_json wrote ([`Message::json`]: every frota-framed
/// publish's `payload`): what a subscriber parses is the value
/// [`message_value`] gives, without parsing the payload into a value and
/// printing it again for every subscriber (a fifth of the delivery
/// threads' CPU on the EV path; docs/performance.md). `None`: build the
/// value (other payloads, whose bytes decide how they are shown; a traced
/// run, which records the value).
fn spliced_message(msg: &Message, retained: bool) -> Option<Vec<u8>> {
    if !msg.json || trace::enabled() {
        return None;
    }
    let topic = serde_json::to_string(&msg.topic).ok()?;
    let mut out = Vec::with_capacity(msg.payload.len() + topic.len() + 48);
    out.extend_from_slice(b"{\"type\":\"message\",\"topic\":");
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(&msg.payload);
    if retained {
        out.extend_from_slice(b",\"retain\":true");
    }
    out.push(b'}');
    Some(out)
}

/// Pushes for one connection wait while a reply on that connection is being
/// written, so a publisher that also subscribes sees `publish_ok` first and
/// then the `message` (as protocol.md shows). Bounded wait: never longer
/// than [`GATE_MAX`].
#[derive(Default)]
struct Gate {
    busy: Mutex<bool>,
    cv: Condvar,
}

const GATE_MAX: Duration = Duration::from_millis(500);

impl Gate {
    fn set(&self, busy: bool) {
        *lock(&self.busy) = busy;
        if !busy {
            self.cv.notify_all();
        }
    }

    fn wait_idle(&self) {
        let deadline = Instant::now() + GATE_MAX;
        let mut busy = lock(&self.busy);
        while *busy {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            busy = wait_timeout(&self.cv, busy, left).0;
        }
    }
}

/// A frota-framed subscriber's connection as the bus sees it: a wake-up
/// for its delivery thread, and its socket to close.
struct FrotaConn {
    kick: Arc<Wake>,
    writer: Writer,
}

impl Conn for FrotaConn {
    fn wake(&self) {
        self.kick.wake();
    }

    fn close(&self) {
        self.writer.shutdown();
    }
}

impl Drop for FrotaConn {
    /// The bus let go of the connection: its delivery thread ends.
    fn drop(&mut self) {
        self.kick.close();
    }
}

/// The delivery thread of one frota-framed subscriber: takes what the core
/// queued and writes `message` frames, in the framing mode of the request
/// that subscribed (inline for a person at netcat). Ends when the
/// subscriber is unregistered (its wake-up closes) or a write fails.
fn deliver_loop(bus: &Bus, id: SubscriberId, kick: &Wake, w: Writer, mode: Mode, gate: &Gate) {
    while kick.wait() {
        for (msg, retained) in bus.with(|c| c.take_frota(id)) {
            gate.wait_idle();
            let sent = match spliced_message(&msg, retained) {
                Some(text) => w.send_raw(&frame::encode(mode, &text)),
                None => w.send(mode, &message_value(&msg.topic, &msg.payload, retained)),
            };
            if let Err(e) = sent {
                log::info!("subscriber {id}: delivery failed ({e}); closing it");
                w.shutdown();
                return;
            }
        }
    }
}

pub struct Broker {
    bus: Arc<Bus>,
    /// Runtime connection id → (subscriber id in the core, its gate).
    conns: Mutex<HashMap<u64, (SubscriberId, Arc<Gate>)>>,
    /// The MQTT listener's state, for `status` (set once it is started).
    mqtt: Mutex<Option<MqttState>>,
}

#[derive(Deserialize)]
struct FilterReq {
    filter: String,
}

#[derive(Deserialize)]
struct PublishReq {
    topic: String,
    payload: Option<Value>,
    payload_text: Option<String>,
    payload_base64: Option<String>,
    #[serde(default)]
    retain: bool,
}

impl PublishReq {
    /// The payload bytes: exactly one of the three payload fields.
    fn bytes(&self) -> Result<Vec<u8>, Error> {
        match (&self.payload, &self.payload_text, &self.payload_base64) {
            (Some(v), None, None) => {
                serde_json::to_vec(v).map_err(|e| Error::malformed(e.to_string()))
            }
            (None, Some(t), None) => Ok(t.as_bytes().to_vec()),
            (None, None, Some(b)) => base64_decode(b)
                .ok_or_else(|| Error::malformed("payload_base64 is not valid base64")),
            _ => Err(Error::malformed(
                "give exactly one of payload (JSON), payload_text, payload_base64",
            )),
        }
    }
}

/// The common publish, read in place: `topic` (a string), `payload` (any
/// JSON but null), no other payload field, `retain` a bool or absent.
/// Anything else goes through [`PublishReq`], whose errors name the field
/// at fault; this only spares every publish a copy of its payload.
fn plain_publish(b: &Body) -> Option<(&str, &Value, bool)> {
    let topic = b.get("topic")?.as_str()?;
    let payload = b.get("payload").filter(|p| !p.is_null())?;
    if b.contains_key("payload_text") || b.contains_key("payload_base64") {
        return None;
    }
    let retain = match b.get("retain") {
        None => false,
        Some(r) => r.as_bool()?,
    };
    Some((topic, payload, retain))
}

impl Broker {
    pub fn new(bus: Arc<Bus>) -> Broker {
        Broker {
            bus,
            conns: Mutex::new(HashMap::new()),
            mqtt: Mutex::new(None),
        }
    }

    /// Tell `status` about the MQTT listener.
    pub fn set_mqtt(&self, state: MqttState) {
        *lock(&self.mqtt) = Some(state);
    }

    /// The shared core (for the MQTT listener).
    pub fn bus(&self) -> Arc<Bus> {
        self.bus.clone()
    }

    fn subscriber(&self, ctx: &Ctx) -> Result<SubscriberId, Error> {
        let mut conns = lock(&self.conns);
        if let Some((id, _)) = conns.get(&ctx.conn_id) {
            return Ok(*id);
        }
        let gate = Arc::new(Gate::default());
        // This request's reply is still to be written.
        gate.set(true);
        let label = ctx.peer.map(|p| p.to_string()).unwrap_or_default();
        let id = self.bus.with(|c| c.frota_register(&label));
        let kick = Arc::new(Wake::new());
        let (bus, w, mode, g, k) = (
            self.bus.clone(),
            ctx.writer.clone(),
            ctx.mode,
            gate.clone(),
            kick.clone(),
        );
        thread::Builder::new()
            .name(format!("deliver-{id}"))
            .stack_size(128 * 1024)
            .spawn(move || deliver_loop(&bus, id, &k, w, mode, &g))
            .map_err(|e| {
                self.bus.with(|c| c.drop_frota(id));
                Error::unavailable(format!("cannot start a delivery thread: {e}"))
            })?;
        self.bus.register(
            id,
            Arc::new(FrotaConn {
                kick,
                writer: ctx.writer.clone(),
            }),
        );
        conns.insert(ctx.conn_id, (id, gate));
        Ok(id)
    }

    fn existing(&self, conn: u64) -> Option<(SubscriberId, Arc<Gate>)> {
        let conns = lock(&self.conns);
        conns.get(&conn).cloned()
    }
}

impl Handler for Broker {
    fn info(&self) -> NodeInfo {
        NodeInfo::new("broker", "broker")
    }

    fn help(&self) -> Vec<MessageHelp> {
        vec![
            MessageHelp::new(
                "subscribe",
                "receive `message` frames on this connection for topics matching `filter` (+, #, $share/<group>/<filter>); retained messages that match come first",
                r#"{"type":"subscribe","id":1,"filter":"vehicle/+/status"}"#,
            ),
            MessageHelp::new(
                "unsubscribe",
                "stop receiving for `filter` (exactly as subscribed)",
                r#"{"type":"unsubscribe","id":2,"filter":"vehicle/+/status"}"#,
            ),
            MessageHelp::new(
                "publish",
                "send `payload` (any JSON; or `payload_text` / `payload_base64` for other bytes) to every subscriber of `topic` and one member of each share group; `retain: true` keeps it for later subscribers",
                r#"{"type":"publish","id":3,"topic":"vehicle/v1/status","payload":{"battery":80}}"#,
            ),
        ]
    }

    fn status(&self) -> Body {
        let mut b = self.bus.status();
        let mqtt = match &*lock(&self.mqtt) {
            Some(m) => m.status(),
            None => json!({"listen": "off", "reason": "not started"}),
        };
        b.insert("mqtt".into(), mqtt);
        b
    }

    fn handle(&self, req: &Request, ctx: &Ctx) -> Result<Body, Error> {
        if let Some((_, gate)) = self.existing(ctx.conn_id) {
            gate.set(true);
        }
        match req.kind.as_str() {
            "subscribe" => {
                let r: FilterReq = req.parse()?;
                let id = self.subscriber(ctx)?;
                let n = self
                    .bus
                    .with(|c| c.frota_subscribe(id, &r.filter))
                    .map_err(Error::malformed)?;
                Ok(body(json!({"filter": r.filter, "subscriptions": n})))
            }
            "unsubscribe" => {
                let r: FilterReq = req.parse()?;
                let removed = match self.existing(ctx.conn_id) {
                    Some((id, _)) => self.bus.with(|c| c.frota_unsubscribe(id, &r.filter)),
                    None => crate::mqtt::topic::validate_filter(&r.filter)
                        .map(|_| false)
                        .map_err(|e| format!("'{}': {e}", r.filter)),
                }
                .map_err(Error::malformed)?;
                Ok(body(json!({"filter": r.filter, "removed": removed})))
            }
            "publish" => {
                if let Some((topic, payload, retain)) = plain_publish(&req.body) {
                    crate::mqtt::topic::validate_topic_name(topic).map_err(Error::malformed)?;
                    let bytes =
                        serde_json::to_vec(payload).map_err(|e| Error::malformed(e.to_string()))?;
                    let n = self.bus.with(|c| c.publish_json(topic, &bytes, 1, retain));
                    return Ok(body(json!({"topic": topic, "delivered": n})));
                }
                let r: PublishReq = req.parse()?;
                crate::mqtt::topic::validate_topic_name(&r.topic).map_err(Error::malformed)?;
                let bytes = r.bytes()?;
                // QoS 1 towards MQTT subscribers (capped by what each was
                // granted), as frota's own traffic always was.
                let n = if r.payload.is_some() {
                    self.bus
                        .with(|c| c.publish_json(&r.topic, &bytes, 1, r.retain))
                } else {
                    self.bus.with(|c| c.publish(&r.topic, &bytes, 1, r.retain))
                };
                Ok(body(json!({"topic": r.topic, "delivered": n})))
            }
            other => Err(Error::new(
                crate::wire::error::Code::NotSupported,
                format!("broker does not handle '{other}'"),
            )),
        }
    }

    fn replied(&self, conn_id: u64) {
        if let Some((_, gate)) = self.existing(conn_id) {
            gate.set(false);
        }
    }

    fn closed(&self, conn_id: u64) {
        let gone = lock(&self.conns).remove(&conn_id);
        if let Some((id, gate)) = gone {
            gate.set(false);
            self.bus.with(|c| c.drop_frota(id));
            // Dropping its handle closes its wake-up: the delivery thread
            // ends.
            self.bus.unregister(id);
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648).
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding; `None` if it is not.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let t = text.as_bytes();
    if !t.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(t.len() / 4 * 3);
    for (k, chunk) in t.chunks(4).enumerate() {
        let last = k + 1 == t.len() / 4;
        let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                B64.iter().position(|b| b == c)? as u32
            };
            n |= v << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"\x00\xff\xfe", "AP/+"),
        ] {
            assert_eq!(base64_encode(raw), enc);
            assert_eq!(base64_decode(enc).as_deref(), Some(raw));
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9*"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    /// A spliced `message` frame reads as the value the broker builds from
    /// the bytes, for payloads a frota-framed publish gives (serde_json's
    /// text); bytes from elsewhere are not spliced.
    #[test]
    fn a_spliced_message_reads_as_the_built_one() {
        let topic = "vehicle/v\"1/response";
        for (payload, retained) in [
            (
                json!({"request_id": "v1-1", "stops": [{"start": 480}]}),
                false,
            ),
            (json!({"a": 1.5, "b": "x\ny\r", "c": null}), true),
            (json!("just a string"), false),
            (json!(17), false),
        ] {
            let bytes = serde_json::to_vec(&payload).unwrap();
            let msg = Message {
                topic: topic.into(),
                payload: bytes.clone(),
                json: true,
            };
            let text = spliced_message(&msg, retained).expect("spliced");
            assert!(!text.contains(&b'\n'), "one line (inline framing)");
            let read: Value = serde_json::from_slice(&text).unwrap();
            assert_eq!(read, message_value(topic, &bytes, retained));
        }
        let mqtt = Message {
            topic: topic.into(),
            payload: b"1e400".to_vec(),
            json: false,
        };
        assert_eq!(spliced_message(&mqtt, false), None);
    }

    /// The in-place read takes exactly the publishes `PublishReq` reads
    /// the same way, and leaves the rest (and every error) to it.
    #[test]
    fn plain_publish_agrees_with_the_full_parse() {
        let b = |v: Value| match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let plain = b(json!({"topic": "t/1", "payload": {"a": [1]}, "retain": true, "x": 1}));
        assert_eq!(
            plain_publish(&plain),
            Some(("t/1", &json!({"a": [1]}), true))
        );
        let full: PublishReq = serde_json::from_value(Value::Object(plain.clone())).unwrap();
        assert_eq!((full.topic.as_str(), full.retain), ("t/1", true));
        assert_eq!(full.bytes().unwrap(), br#"{"a":[1]}"#);
        for other in [
            json!({"topic": "t", "payload": null}),
            json!({"topic": "t", "payload": 1, "payload_text": "x"}),
            json!({"topic": "t", "payload": 1, "payload_base64": "eA=="}),
            json!({"topic": "t", "payload": 1, "retain": "yes"}),
            json!({"topic": 5, "payload": 1}),
            json!({"payload": 1}),
            json!({"topic": "t", "payload_text": "x"}),
        ] {
            assert_eq!(plain_publish(&b(other.clone())), None, "{other}");
        }
    }

    #[test]
    fn frame_payload_kinds() {
        assert_eq!(frame_payload(br#"{"a": 1}"#), ("payload", json!({"a": 1})));
        assert_eq!(frame_payload(b"hello"), ("payload_text", json!("hello")));
        assert_eq!(frame_payload(b""), ("payload_text", json!("")));
        assert_eq!(frame_payload(b"\xff"), ("payload_base64", json!("/w==")));
    }
}
