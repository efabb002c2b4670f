//! The company/vehicle side of the broker connection, behind one small
//! struct ([`BusClient`]) with two transports chosen by the `--broker` value:
//!
//! * `HOST:PORT` — frota framing to `frota-broker` (the default, below);
//! * `mqtt://HOST:PORT` — MQTT 3.1.1 to any MQTT broker (a real Mosquitto,
//!   or frota-broker's MQTT listener) through [`crate::mqtt::JsonClient`].
//!   Companies subscribe to `$share/companies/...` either way, so exactly
//!   one company receives each request (and forwards it to its coordinator). Over MQTT `publish` returns 1
//!   (MQTT never tells a publisher how many subscribers there were).
//!
//! The frota transport: two connections: one that only subscribes and receives pushed `message`
//! frames (read by one thread in [`FrotaBus::recv`]), and pooled ones for
//! `publish`, so any thread can publish while another waits for messages.
//! When the broker restarts, `recv` reconnects and subscribes again to every
//! filter; a keep-alive `ping` stops the broker's idle timeout from closing
//! a connection that only listens.

use crate::mqtt::JsonClient;
use crate::runtime::client::{Client, ClientConfig, Pool};
use crate::sync::lock;
use crate::wire::error::{Code, Error};
use crate::wire::message::body;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Send a `ping` on the receiving connection after this much silence from
/// our side (well under the broker's default 60 s idle timeout).
const KEEPALIVE: Duration = Duration::from_secs(10);
/// Pause between reconnection attempts while the broker is down.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// The longest push frame a message of up to `max_payload` bytes can make:
/// its packet (payload and topic, `mqtt::packet_bound`) with each byte
/// escaped as at most six (`\u0000`), plus the envelope.
fn push_bound(max_payload: usize) -> usize {
    crate::mqtt::packet_bound(max_payload)
        .saturating_mul(6)
        .saturating_add(256)
}

struct SubConn {
    client: Option<Client>,
    filters: Vec<String>,
    last_sent: Instant,
}

/// A broker connection over either transport (see the module docs).
// A node holds one of these (behind an Arc) for its whole life: the
// variants' sizes do not matter, boxing would only add noise.
#[allow(clippy::large_enum_variant)]
pub enum BusClient {
    Frota(FrotaBus),
    Mqtt(JsonClient),
}

impl BusClient {
    /// A client for `broker`: `mqtt://HOST:PORT` or `HOST:PORT` (frota
    /// framing). Connects lazily: a node may start before its broker.
    pub fn new(broker: &str, cfg: ClientConfig) -> Result<BusClient, Error> {
        if broker.starts_with("mqtt://") {
            return Ok(BusClient::Mqtt(JsonClient::new(broker, cfg)?));
        }
        Ok(BusClient::Frota(FrotaBus::new(broker, cfg)?))
    }

    /// Like [`BusClient::new`] but fails at once if the broker is unreachable.
    pub fn connect(broker: &str, cfg: ClientConfig) -> Result<BusClient, Error> {
        if broker.starts_with("mqtt://") {
            return Ok(BusClient::Mqtt(JsonClient::connect(broker, cfg)?));
        }
        Ok(BusClient::Frota(FrotaBus::connect(broker, cfg)?))
    }

    /// `HOST:PORT` of the broker.
    pub fn addr(&self) -> &str {
        match self {
            BusClient::Frota(b) => b.addr(),
            BusClient::Mqtt(m) => m.addr(),
        }
    }

    /// Subscribe (remembered across reconnects).
    pub fn subscribe(&self, filter: &str) -> Result<(), Error> {
        match self {
            BusClient::Frota(b) => b.subscribe(filter),
            BusClient::Mqtt(m) => m.subscribe(filter),
        }
    }

    /// Publish; returns how many subscribers it was queued for (frota) or 1
    /// once the broker took it (MQTT).
    pub fn publish(&self, topic: &str, payload: Value) -> Result<u64, Error> {
        match self {
            BusClient::Frota(b) => b.publish(topic, payload),
            BusClient::Mqtt(m) => m.publish(topic, payload),
        }
    }

    /// The next message `(topic, payload)`, waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<(String, Value)> {
        match self {
            BusClient::Frota(b) => b.recv(timeout),
            BusClient::Mqtt(m) => m.recv(timeout),
        }
    }
}

/// The frota-framed transport.
pub struct FrotaBus {
    addr: String,
    cfg: ClientConfig,
    sub: Mutex<SubConn>,
    pool: Pool,
}

impl FrotaBus {
    /// A client for the broker at `addr` (`HOST:PORT`). Connects lazily:
    /// a node may start before its broker.
    pub fn new(addr: &str, cfg: ClientConfig) -> Result<FrotaBus, Error> {
        if addr.contains("://") {
            return Err(Error::new(
                Code::NotSupported,
                format!("broker '{addr}': expected HOST:PORT (frota framing) or mqtt://HOST:PORT"),
            ));
        }
        Ok(FrotaBus {
            addr: addr.to_string(),
            pool: Pool::new(cfg.clone()),
            cfg,
            sub: Mutex::new(SubConn {
                client: None,
                filters: Vec::new(),
                last_sent: Instant::now(),
            }),
        })
    }

    /// Like [`FrotaBus::new`] but fails at once if the broker is unreachable.
    pub fn connect(addr: &str, cfg: ClientConfig) -> Result<FrotaBus, Error> {
        let c = FrotaBus::new(addr, cfg)?;
        {
            let mut s = c.lock();
            c.ensure(&mut s)?;
        }
        Ok(c)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SubConn> {
        lock(&self.sub)
    }

    /// Connect the receiving connection if needed and (re)subscribe.
    fn ensure(&self, s: &mut SubConn) -> Result<(), Error> {
        if s.client.is_some() {
            return Ok(());
        }
        // Pushes are longer than the payloads they carry (a control byte
        // in `payload_text` is six bytes, `payload_base64` four per three):
        // a frame limit of `max_payload` would drop this connection, and
        // every message queued behind, on a payload we only skip.
        let cfg = ClientConfig {
            max_payload: push_bound(self.cfg.max_payload),
            ..self.cfg.clone()
        };
        let mut c = Client::connect(&self.addr, &cfg)?;
        for f in &s.filters {
            c.call("subscribe", body(json!({"filter": f})))?;
        }
        s.client = Some(c);
        s.last_sent = Instant::now();
        Ok(())
    }

    /// Subscribe (remembered across reconnects). Fails if the broker refuses
    /// the filter or is unreachable (it is still retried on reconnect).
    pub fn subscribe(&self, filter: &str) -> Result<(), Error> {
        let mut s = self.lock();
        if !s.filters.iter().any(|f| f == filter) {
            s.filters.push(filter.to_string());
        }
        if s.client.is_none() {
            return self.ensure(&mut s);
        }
        let r = match s.client.as_mut() {
            Some(c) => c.call("subscribe", body(json!({"filter": filter}))),
            None => Ok(Default::default()),
        };
        match r {
            Ok(_) => {
                s.last_sent = Instant::now();
                Ok(())
            }
            Err(e) if e.definite() && e.code != Code::TemporarilyUnavailable => {
                s.filters.retain(|f| f != filter);
                Err(e)
            }
            Err(e) => {
                s.client = None;
                Err(e)
            }
        }
    }

    /// Publish; returns how many subscribers it was queued for.
    pub fn publish(&self, topic: &str, payload: Value) -> Result<u64, Error> {
        let r = self.pool.call(
            &self.addr,
            "publish",
            body(json!({"topic": topic, "payload": payload})),
        )?;
        Ok(r.get("delivered").and_then(Value::as_u64).unwrap_or(0))
    }

    /// The next pushed message `(topic, payload)`, waiting at most `timeout`.
    /// Reconnects (and resubscribes) when the broker went away.
    pub fn recv(&self, timeout: Duration) -> Option<(String, Value)> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = self.ensure(&mut s) {
                log::debug!("broker {} unreachable: {e}", self.addr);
                let pause = RECONNECT_PAUSE.min(left);
                drop(s);
                std::thread::sleep(pause);
                if Instant::now() >= deadline {
                    return None;
                }
                s = self.lock();
                continue;
            }
            if s.last_sent.elapsed() > KEEPALIVE {
                s.last_sent = Instant::now();
                let ok = s
                    .client
                    .as_mut()
                    .map(|c| c.call("ping", Default::default()).is_ok())
                    .unwrap_or(false);
                if !ok {
                    s.client = None;
                    continue;
                }
            }
            if left.is_zero() {
                return None;
            }
            let got = match s.client.as_mut() {
                Some(c) => c.recv_push(left),
                None => continue,
            };
            match got {
                Ok(Some(Value::Object(m))) => {
                    if m.get("type").and_then(Value::as_str) != Some("message") {
                        continue;
                    }
                    let topic = m.get("topic").and_then(Value::as_str).unwrap_or("");
                    // A payload that is not JSON comes as `payload_text` or
                    // `payload_base64` (protocol.md): skipped, as the MQTT
                    // transport skips it.
                    let Some(payload) = m.get("payload").cloned() else {
                        log::info!("skipping a non-JSON message on '{topic}'");
                        continue;
                    };
                    return Some((topic.to_string(), payload));
                }
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(e) => {
                    log::info!("lost the broker connection ({e}); reconnecting");
                    s.client = None;
                }
            }
        }
    }
}
