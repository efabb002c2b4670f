//! MQTT 3.1.1 in pure std: frota meets the Mosquitto ecosystem both ways.
//!
//! - [`codec`]: packets, a pure decoder ([`codec::parse`]) and an encoder.
//! - [`topic`]: topic names, filters (`+`, `#`, `$`-topics), `$share/...`.
//! - [`conn`]: reading/writing packets on a `TcpStream` with deadlines.
//! - [`client`]: a blocking client (connect, subscribe, publish QoS 0/1,
//!   recv, keep-alive, reconnect) and `mqtt://HOST:PORT` parsing.
//! - [`json`]: [`json::JsonClient`], frota's broker client over MQTT
//!   (`serde_json::Value` payloads, `&self`, lazy connect, reconnects).
//! - [`session`]: the broker side — [`session::serve_mqtt`], one session per
//!   connection, talking to a topic tree through [`session::Bus`].
//! - [`memory_bus`]: an in-memory [`session::Bus`] (tests, reference).
//!
//! protocol.md, section "MQTT", lists the supported features and what is
//! refused; frota-broker's MQTT listener is `crate::ev::broker::mqtt_bridge`.

pub mod client;
pub mod codec;
pub mod conn;
pub mod json;
pub mod memory_bus;
pub mod session;
pub mod topic;

pub use client::{parse_mqtt_url, ClientConfig, ClientError, MqttClient};
pub use json::JsonClient;
pub use session::{serve_mqtt, Bus, Delivery, MqttConfig, MqttServer, MqttStats, Sink};
