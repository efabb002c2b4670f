//! `frota-broker`: topic publish/subscribe over the frota framing — the role
//! Mosquitto played in the original.
//!
//! The topic tree, matching and share groups live in [`bus`] (no sockets);
//! this file is the thin frota-framed listener on top: it turns
//! `subscribe` / `unsubscribe` / `publish` requests into bus calls and
//! writes pushed `message` frames on the subscriber's own connection:
//!
//! ```text
//! {"type":"message","topic":"vehicle/v1/status","payload":{...}}
//! ```
//!
//! The MQTT 3.1.1 listener ([`mqtt_bridge`], `--mqtt-listen`) shares the
//! same [`bus::Bus`], so both kinds of client see each other's messages.

pub mod bus;
pub mod mqtt_bridge;
pub mod topic;

use crate::cli::{opt, Flag};
use crate::connection::Writer;
use crate::error::Error;
use crate::frame::Mode;
use crate::message::{body, Body, Request};
use crate::server::{Ctx, Handler, MessageHelp, NodeInfo};
use bus::{Bus, Sink};
use mqtt_bridge::MqttState;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use topic::SubscriberId;

/// The broker's own flags (besides `--listen` and the server flags).
pub fn flags() -> Vec<Flag> {
    vec![
        opt(
            "listen",
            "127.0.0.1:7100",
            "address for the frota-framed listener",
        ),
        opt(
            "mqtt-listen",
            "127.0.0.1:1883",
            "address for the MQTT 3.1.1 listener ('off' disables; if busy, the broker warns and runs without it)",
        ),
        opt(
            "queue-len",
            "1024",
            "messages a subscriber may have pending before it is dropped as slow",
        ),
    ]
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
        *self.busy.lock().unwrap_or_else(|p| p.into_inner()) = busy;
        if !busy {
            self.cv.notify_all();
        }
    }

    fn wait_idle(&self) {
        let deadline = Instant::now() + GATE_MAX;
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *busy {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            busy = self
                .cv
                .wait_timeout(busy, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A subscriber on the frota listener: frames written with the mode of the
/// request that subscribed (inline for a person at netcat).
struct FrameSink {
    writer: Writer,
    mode: Mode,
    gate: Arc<Gate>,
}

impl Sink for FrameSink {
    fn send(&self, topic: &str, payload: &Value) -> io::Result<()> {
        self.gate.wait_idle();
        let msg = json!({"type": "message", "topic": topic, "payload": payload});
        self.writer.send(self.mode, &msg)
    }

    fn close(&self) {
        self.writer.shutdown();
    }
}

pub struct Broker {
    bus: Arc<Bus>,
    /// Runtime connection id → (bus subscriber, its gate).
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
    payload: Value,
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
        *self.mqtt.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
    }

    /// The shared topic tree (for a second listener).
    pub fn bus(&self) -> Arc<Bus> {
        self.bus.clone()
    }

    fn subscriber(&self, ctx: &Ctx) -> Result<SubscriberId, Error> {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((id, _)) = conns.get(&ctx.conn_id) {
            return Ok(*id);
        }
        let gate = Arc::new(Gate::default());
        // This request's reply is still to be written.
        gate.set(true);
        let sink = Arc::new(FrameSink {
            writer: ctx.writer.clone(),
            mode: ctx.mode,
            gate: gate.clone(),
        });
        let label = ctx.peer.map(|p| p.to_string()).unwrap_or_default();
        let id = self
            .bus
            .register(sink, &label)
            .map_err(|e| Error::unavailable(format!("cannot start a delivery thread: {e}")))?;
        conns.insert(ctx.conn_id, (id, gate));
        Ok(id)
    }

    fn existing(&self, conn: u64) -> Option<(SubscriberId, Arc<Gate>)> {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.get(&conn).cloned()
    }
}

impl Handler for Broker {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: "broker".into(),
            role: "broker".into(),
        }
    }

    fn help(&self) -> Vec<MessageHelp> {
        vec![
            MessageHelp::new(
                "subscribe",
                "receive `message` frames on this connection for topics matching `filter` (+, #, $share/<group>/<filter>)",
                r#"{"type":"subscribe","id":1,"filter":"vehicle/+/status"}"#,
            ),
            MessageHelp::new(
                "unsubscribe",
                "stop receiving for `filter` (exactly as subscribed)",
                r#"{"type":"unsubscribe","id":2,"filter":"vehicle/+/status"}"#,
            ),
            MessageHelp::new(
                "publish",
                "send `payload` (any JSON) to every subscriber of `topic` and one member of each share group",
                r#"{"type":"publish","id":3,"topic":"vehicle/v1/status","payload":{"battery":80}}"#,
            ),
        ]
    }

    fn status(&self) -> Body {
        let mut b = self.bus.status();
        let mqtt = match &*self.mqtt.lock().unwrap_or_else(|p| p.into_inner()) {
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
                let n = self.bus.subscribe(id, &r.filter)?;
                Ok(body(json!({"filter": r.filter, "subscriptions": n})))
            }
            "unsubscribe" => {
                let r: FilterReq = req.parse()?;
                let removed = match self.existing(ctx.conn_id) {
                    Some((id, _)) => self.bus.unsubscribe(id, &r.filter)?,
                    None => {
                        topic::parse_filter(&r.filter).map_err(Error::malformed)?;
                        false
                    }
                };
                Ok(body(json!({"filter": r.filter, "removed": removed})))
            }
            "publish" => {
                let r: PublishReq = req.parse()?;
                let n = self.bus.publish(&r.topic, r.payload)?;
                Ok(body(json!({"topic": r.topic, "delivered": n})))
            }
            other => Err(Error::new(
                crate::error::Code::NotSupported,
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
        let gone = self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&conn_id);
        if let Some((id, gate)) = gone {
            gate.set(false);
            self.bus.drop_conn(id);
        }
    }
}
