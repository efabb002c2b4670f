//! MQTT 3.1.1 in pure std: frota meets the Mosquitto ecosystem both ways.
//!
//! - [`codec`]: packets, a pure decoder ([`codec::parse`]) and an encoder.
//! - [`topic`]: topic names, filters (`+`, `#`, `$`-topics), `$share/...`,
//!   and the subscription tree — the one topic module of both listeners.
//! - [`session`]: one client's session on a broker as a pure state machine
//!   (in-flight window, QoS 2 state, queue while away, DUP resends).
//! - [`conn`]: reading/writing packets on a `TcpStream` with deadlines.
//! - [`client`]: a blocking client (connect with a will, subscribe, publish
//!   QoS 0/1/2, retain, recv, keep-alive, reconnect) and `mqtt://HOST:PORT`.
//! - [`json`]: [`json::JsonClient`], frota's broker client over MQTT
//!   (`serde_json::Value` payloads, `&self`, lazy connect, reconnects).
//!
//! The broker side (the rules of retained messages, wills and sessions, and
//! the listener) is frota-broker's: `crate::ev::broker::core` and
//! `crate::ev::broker::mqtt_listener`. protocol.md, section "MQTT", lists
//! what is supported.

pub mod client;
pub mod codec;
pub mod conn;
pub mod json;
pub mod session;
pub mod topic;

pub use client::{parse_mqtt_url, ClientConfig, ClientError, MqttClient};
pub use json::JsonClient;

/// The largest MQTT packet that carries a frota payload of `max_payload`
/// bytes: room for the topic and header around it. The broker's MQTT
/// listener and frota's MQTT client both size their bound so.
pub fn packet_bound(max_payload: usize) -> usize {
    max_payload.saturating_add(64 * 1024)
}
