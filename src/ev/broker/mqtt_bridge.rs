//! frota-broker's MQTT 3.1.1 listener: [`MqttBridge`] makes the broker's
//! topic tree ([`super::bus::Bus`]) an [`mqtt::Bus`], so MQTT sessions
//! (`mosquitto_sub`, `mosquitto_pub`, frota's own `--broker mqtt://...`
//! nodes) and frota-framed connections share one tree: a message published
//! on either listener reaches subscribers on both.
//!
//! Payloads cross as JSON: an MQTT payload is parsed as JSON text before it
//! enters the tree (the tree carries `serde_json::Value`), and a tree
//! message leaves as its compact JSON text. An MQTT payload that is not JSON
//! (`mosquitto_pub -m hello`) is dropped, logged and counted (`not_json`).
//!
//! Each MQTT session that subscribes becomes one tree subscriber (its own
//! bounded queue and delivery thread, like a frota-framed connection); the
//! delivery thread hands messages to the session's own bounded queue without
//! blocking. When that queue is full the tree treats the session as a slow
//! subscriber and drops it — the same rule as for frota-framed ones.

use super::bus::{Bus as Tree, Sink as TreeSink};
use super::topic::SubscriberId;
use crate::mqtt::{self, MqttConfig, MqttServer, MqttStats};
use crate::server::ServerConfig;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The tree's deliveries for one MQTT session (called from the tree's
/// delivery thread for that subscriber).
struct MqttSink(mqtt::Sink);

impl TreeSink for MqttSink {
    fn send(&self, topic: &str, payload: &Value) -> io::Result<()> {
        let bytes = serde_json::to_vec(payload).map_err(io::Error::other)?;
        // QoS 1, capped by what the session was granted.
        if self.0.deliver(topic, &bytes, 1) {
            Ok(())
        } else {
            // An error makes the tree close and forget this subscriber.
            Err(io::Error::other("mqtt session queue full or session gone"))
        }
    }

    fn close(&self) {
        self.0.close();
    }
}

pub struct MqttBridge {
    tree: Arc<Tree>,
    /// MQTT session → the tree's subscriber id (registered on first SUBSCRIBE).
    ids: Mutex<HashMap<u64, SubscriberId>>,
    not_json: AtomicU64,
}

impl MqttBridge {
    pub fn new(tree: Arc<Tree>) -> MqttBridge {
        MqttBridge {
            tree,
            ids: Mutex::new(HashMap::new()),
            not_json: AtomicU64::new(0),
        }
    }

    fn id(&self, session: u64) -> Option<SubscriberId> {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&session)
            .copied()
    }

    /// MQTT publishes dropped because their payload was not JSON.
    pub fn not_json(&self) -> u64 {
        self.not_json.load(Ordering::Relaxed)
    }
}

impl mqtt::Bus for MqttBridge {
    fn subscribe(&self, session: u64, filter: &str, sink: mqtt::Sink) -> Result<u8, String> {
        let granted = sink.qos();
        let id = match self.id(session) {
            Some(id) => id,
            None => {
                // One tree subscriber per session. Only the session's reader
                // thread subscribes for it, so there is no race between the
                // lookup above and this insert. Deliveries use the first
                // subscription's sink (one queue per session either way).
                let id = self
                    .tree
                    .register(Arc::new(MqttSink(sink)), &format!("mqtt session {session}"))
                    .map_err(|e| e.to_string())?;
                self.ids
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(session, id);
                id
            }
        };
        self.tree.subscribe(id, filter).map_err(|e| e.text)?;
        Ok(granted)
    }

    fn unsubscribe(&self, session: u64, filter: &str) {
        if let Some(id) = self.id(session) {
            let _ = self.tree.unsubscribe(id, filter);
        }
    }

    fn publish(&self, topic: &str, payload: &[u8], _qos: u8) {
        match serde_json::from_slice::<Value>(payload) {
            Ok(v) => {
                if let Err(e) = self.tree.publish(topic, v) {
                    log::info!("mqtt publish to '{topic}' refused: {}", e.text);
                }
            }
            Err(e) => {
                self.not_json.fetch_add(1, Ordering::Relaxed);
                log::warn!("mqtt publish to '{topic}' dropped: payload is not JSON ({e})");
            }
        }
    }

    fn disconnect(&self, session: u64) {
        let id = self
            .ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&session);
        if let Some(id) = id {
            self.tree.drop_conn(id);
        }
    }
}

/// The broker's MQTT side as `status` shows it.
pub enum MqttState {
    /// Listening; counters from the listener and the bridge.
    On(MqttStats, Arc<MqttBridge>),
    /// Not listening, and why (`--mqtt-listen off`, port busy).
    Off(String),
}

impl MqttState {
    pub fn status(&self) -> Value {
        match self {
            MqttState::On(stats, bridge) => {
                let mut v = stats.status();
                v["not_json"] = json!(bridge.not_json());
                v
            }
            MqttState::Off(why) => json!({"listen": "off", "reason": why}),
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
        // Room for the topic and header around the largest payload.
        max_packet: cfg.max_payload.saturating_add(64 * 1024),
        ..MqttConfig::default()
    }
}

/// Start the MQTT listener on `listen` over `tree`.
///
/// `Ok(None)` with a reason when it does not run: `listen` is `off`, or the
/// address is already in use. A busy MQTT port is a warning, not a fatal
/// error, on purpose: 1883 is the well-known MQTT port, and a system
/// Mosquitto (Debian's package starts one) may hold it; the frota listener
/// and the demos must still work then. Other errors (a bad address) are
/// returned.
pub fn serve(
    tree: Arc<Tree>,
    listen: &str,
    cfg: MqttConfig,
) -> io::Result<(Option<MqttServer>, MqttState)> {
    if listen == "off" {
        return Ok((None, MqttState::Off("disabled (--mqtt-listen off)".into())));
    }
    let bridge = Arc::new(MqttBridge::new(tree));
    let dyn_bridge: Arc<dyn mqtt::Bus> = bridge.clone();
    match mqtt::serve_mqtt(listen, dyn_bridge, cfg) {
        Ok(srv) => {
            let state = MqttState::On(srv.stats(), bridge);
            Ok((Some(srv), state))
        }
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            log::warn!("MQTT listener not started: {e}; continuing without MQTT");
            Ok((None, MqttState::Off(format!("{listen} is in use"))))
        }
        Err(e) => Err(e),
    }
}
