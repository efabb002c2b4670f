//! [`JsonClient`]: frota's broker client over MQTT, for companies and
//! vehicles started with `--broker mqtt://HOST:PORT`.
//!
//! It has the shape of frota's own broker client (`new`/`connect`,
//! `subscribe(filter)`, `publish(topic, Value)`, `recv(timeout)`, all on
//! `&self`, errors as [`crate::Error`]) so a node can hold either one:
//!
//! * two MQTT connections, like the frota client: one that subscribes and
//!   receives (used by the thread in `recv`), one for `publish`, so any
//!   thread can publish while another waits for messages;
//! * connects lazily (a node may start before its broker); `recv`
//!   reconnects and subscribes again to every filter while the broker is
//!   away; a failed publish reconnects and is retried once;
//! * every message is QoS 1 (at least once): frota's messages carry
//!   request ids, so a duplicate after a resend or reconnect is harmless;
//! * payloads are the compact JSON text of the `Value`; a received message
//!   that is not JSON (someone's `mosquitto_pub -m hello`) is skipped with a
//!   log line and counted in [`JsonClient::skipped`];
//! * `publish` returns `Ok(1)`: MQTT does not tell a publisher how many
//!   subscribers there were, only that the broker took the message.

use super::client::{parse_mqtt_url, ClientConfig, ClientError, MqttClient};
use crate::sync::lock;
use crate::wire::error::{Code, Error};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Pause between reconnection attempts while the broker is down.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// A frota error for an MQTT client error. Transport failures keep the
/// meaning frota's own client gives them: could not reach → 11 (definite),
/// no ack in time → 0 and lost mid-way → 13 (both indefinite).
pub fn to_frota_error(e: ClientError) -> Error {
    let text = e.to_string();
    match e {
        ClientError::Io(_) | ClientError::Refused(_) => Error::unavailable(text),
        ClientError::Closed | ClientError::Protocol(_) => Error::crash(text),
        ClientError::Timeout(_) => Error::timeout(text),
        ClientError::Invalid(_) | ClientError::SubscriptionRefused(_) => Error::malformed(text),
    }
}

struct SubSide {
    client: Option<MqttClient>,
    filters: Vec<String>,
}

pub struct JsonClient {
    addr: String,
    cfg: ClientConfig,
    /// Client ids: `<base>-sub` and `<base>-pub` (MQTT closes an older
    /// connection that uses the same id, so the two must differ).
    id_base: String,
    sub: Mutex<SubSide>,
    publ: Mutex<Option<MqttClient>>,
    skipped: AtomicU64,
}

/// `frota-<pid>-<n>`: unique among this host's processes and connections.
fn fresh_id_base() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "frota-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl JsonClient {
    /// A client for the broker at `broker` (`mqtt://HOST:PORT` or
    /// `HOST:PORT`), with timeouts taken from frota's client config.
    /// Connects lazily.
    pub fn new(
        broker: &str,
        cfg: crate::runtime::client::ClientConfig,
    ) -> Result<JsonClient, Error> {
        let mcfg = ClientConfig {
            connect_timeout: cfg.connect_timeout,
            ack_timeout: cfg.request_timeout,
            retries: cfg.retries,
            write_timeout: cfg.request_timeout,
            max_packet: super::packet_bound(cfg.max_payload),
            ..ClientConfig::default()
        };
        JsonClient::with_config(broker, mcfg, &fresh_id_base())
    }

    /// Like [`JsonClient::new`] with MQTT settings and a client id base.
    pub fn with_config(
        broker: &str,
        cfg: ClientConfig,
        id_base: &str,
    ) -> Result<JsonClient, Error> {
        let addr = if broker.contains("://") {
            parse_mqtt_url(broker).map_err(|e| Error::new(Code::NotSupported, e))?
        } else {
            broker.to_string()
        };
        Ok(JsonClient {
            addr,
            cfg,
            id_base: id_base.to_string(),
            sub: Mutex::new(SubSide {
                client: None,
                filters: Vec::new(),
            }),
            publ: Mutex::new(None),
            skipped: AtomicU64::new(0),
        })
    }

    /// Like [`JsonClient::new`] but fails at once if the broker is unreachable.
    pub fn connect(
        broker: &str,
        cfg: crate::runtime::client::ClientConfig,
    ) -> Result<JsonClient, Error> {
        let c = JsonClient::new(broker, cfg)?;
        {
            let mut s = c.lock_sub();
            c.ensure(&mut s)?;
        }
        Ok(c)
    }

    /// `HOST:PORT` of the broker.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Messages dropped because their payload was not JSON.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    fn lock_sub(&self) -> MutexGuard<'_, SubSide> {
        lock(&self.sub)
    }

    fn open(&self, role: &str) -> Result<MqttClient, Error> {
        let id = format!("{}-{role}", self.id_base);
        MqttClient::connect(&self.addr, &id, &self.cfg).map_err(to_frota_error)
    }

    /// Connect the receiving connection if needed and (re)subscribe.
    fn ensure(&self, s: &mut SubSide) -> Result<(), Error> {
        if s.client.is_some() {
            return Ok(());
        }
        let mut c = self.open("sub")?;
        for f in &s.filters {
            c.subscribe(f, 1).map_err(to_frota_error)?;
        }
        s.client = Some(c);
        Ok(())
    }

    /// Subscribe at QoS 1 (remembered across reconnects). Fails if the
    /// broker refuses the filter or is unreachable (then it is still
    /// subscribed on reconnect).
    pub fn subscribe(&self, filter: &str) -> Result<(), Error> {
        let mut s = self.lock_sub();
        if !s.filters.iter().any(|f| f == filter) {
            s.filters.push(filter.to_string());
        }
        let Some(c) = s.client.as_mut() else {
            return self.ensure(&mut s);
        };
        match c.subscribe(filter, 1) {
            Ok(_) => Ok(()),
            Err(e @ (ClientError::Invalid(_) | ClientError::SubscriptionRefused(_))) => {
                s.filters.retain(|f| f != filter);
                Err(to_frota_error(e))
            }
            Err(e) => {
                s.client = None;
                Err(to_frota_error(e))
            }
        }
    }

    /// Publish `payload` as JSON text at QoS 1. `Ok(1)` once the broker
    /// acknowledged it (see the module docs for why 1).
    pub fn publish(&self, topic: &str, payload: Value) -> Result<u64, Error> {
        let bytes = serde_json::to_vec(&payload).map_err(|e| Error::malformed(e.to_string()))?;
        let mut p = lock(&self.publ);
        for attempt in 0..2 {
            if p.is_none() {
                *p = Some(self.open("pub")?);
            }
            let Some(c) = p.as_mut() else { continue };
            match c.publish(topic, &bytes, 1) {
                Ok(()) => return Ok(1),
                Err(e @ ClientError::Invalid(_)) => return Err(to_frota_error(e)),
                Err(e) => {
                    *p = None;
                    if attempt == 1 {
                        return Err(to_frota_error(e));
                    }
                    log::info!("mqtt publish to {} failed ({e}); reconnecting", self.addr);
                }
            }
        }
        Err(Error::crash("mqtt publish: no attempt left"))
    }

    /// The next message `(topic, payload)`, waiting at most `timeout`.
    /// Reconnects (and resubscribes) when the broker went away.
    pub fn recv(&self, timeout: Duration) -> Option<(String, Value)> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock_sub();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = self.ensure(&mut s) {
                log::debug!("mqtt broker {} unreachable: {e}", self.addr);
                drop(s);
                thread::sleep(RECONNECT_PAUSE.min(left));
                if Instant::now() >= deadline {
                    return None;
                }
                s = self.lock_sub();
                continue;
            }
            let got = match s.client.as_mut() {
                Some(c) => c.recv(left),
                None => continue,
            };
            match got {
                Ok(Some((topic, payload))) => match serde_json::from_slice::<Value>(&payload) {
                    Ok(v) => return Some((topic, v)),
                    Err(e) => {
                        self.skipped.fetch_add(1, Ordering::Relaxed);
                        log::warn!(
                            "mqtt: skipping a non-JSON message on '{topic}' ({} bytes): {e}",
                            payload.len()
                        );
                    }
                },
                Ok(None) => return None,
                Err(e) => {
                    log::info!("mqtt: lost the broker connection ({e}); reconnecting");
                    s.client = None;
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }
}
