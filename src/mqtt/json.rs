//! A JSON-payload face of [`MqttClient`], shaped like frota's own broker
//! client (connect, subscribe(filter), publish(topic, Value),
//! recv(timeout) → (topic, Value)), so companies and vehicles can take
//! `--broker mqtt://HOST:PORT` with a one-line switch.
//!
//! * Everything is QoS 1 (at least once): frota's messages carry request
//!   ids, so a duplicate after a resend or reconnect is harmless.
//! * A payload that is not JSON (someone's `mosquitto_pub -m hello`) is
//!   skipped with a log line and counted, never handed to the node.
//! * A connection that breaks is re-opened (and re-subscribed) once per
//!   call, `reconnect_attempts` tries `backoff` apart, and the call is then
//!   retried once; a second failure is returned to the caller.

use super::client::{parse_mqtt_url, ClientConfig, ClientError, MqttClient};
use serde_json::Value;
use std::time::Duration;

pub struct JsonClient {
    inner: MqttClient,
    skipped: u64,
    pub reconnect_attempts: u32,
    pub backoff: Duration,
}

/// Errors after which a new connection may help.
fn is_connection_lost(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Io(_)
            | ClientError::Closed
            | ClientError::Timeout(_)
            | ClientError::Protocol(_)
    )
}

impl JsonClient {
    /// `broker` is `mqtt://HOST:PORT` or plain `HOST:PORT`.
    pub fn connect(
        broker: &str,
        client_id: &str,
        cfg: &ClientConfig,
    ) -> Result<JsonClient, ClientError> {
        let addr = if broker.contains("://") {
            parse_mqtt_url(broker).map_err(ClientError::Invalid)?
        } else {
            broker.to_string()
        };
        Ok(JsonClient {
            inner: MqttClient::connect(&addr, client_id, cfg)?,
            skipped: 0,
            reconnect_attempts: 5,
            backoff: Duration::from_millis(100),
        })
    }

    /// The underlying byte-payload client.
    pub fn inner(&mut self) -> &mut MqttClient {
        &mut self.inner
    }

    /// Messages dropped because their payload was not JSON.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    pub fn subscribe(&mut self, filter: &str) -> Result<(), ClientError> {
        self.with_reconnect(|c| c.subscribe(filter, 1).map(|_| ()))
    }

    pub fn unsubscribe(&mut self, filter: &str) -> Result<(), ClientError> {
        self.with_reconnect(|c| c.unsubscribe(filter))
    }

    /// Publish `msg` as its compact JSON text, QoS 1.
    pub fn publish(&mut self, topic: &str, msg: &Value) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(msg).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.with_reconnect(|c| c.publish(topic, &bytes, 1))
    }

    /// The next JSON message within `timeout`, `Ok(None)` if none.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<(String, Value)>, ClientError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Some((topic, payload)) = self.with_reconnect(|c| c.recv(left))? else {
                return Ok(None);
            };
            match serde_json::from_slice::<Value>(&payload) {
                Ok(v) => return Ok(Some((topic, v))),
                Err(e) => {
                    self.skipped += 1;
                    log::warn!(
                        "mqtt: skipping a non-JSON message on '{topic}' ({} bytes): {e}",
                        payload.len()
                    );
                }
            }
        }
    }

    /// Send DISCONNECT and close.
    pub fn disconnect(self) {
        self.inner.disconnect();
    }

    fn with_reconnect<T>(
        &mut self,
        mut op: impl FnMut(&mut MqttClient) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        match op(&mut self.inner) {
            Err(e) if is_connection_lost(&e) => {
                log::info!("mqtt: {e}; reconnecting to {}", self.inner.addr());
                self.inner
                    .reconnect_with_retry(self.reconnect_attempts, self.backoff)?;
                op(&mut self.inner)
            }
            other => other,
        }
    }
}
