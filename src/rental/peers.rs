//! How rental nodes find each other: each durable node sends UDP heartbeats
//! to the monitor ([`beacon`]), and anyone asks the monitor over TCP who is
//! alive ([`alive`]). Nobody reads anybody's files (defect 8 of the original).

use crate::runtime::client::Pool;
use crate::runtime::heartbeat::Sender;
use crate::wire::error::Error;
use serde::Deserialize;
use serde_json::json;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One live node, as the monitor's `alive` answer describes it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub role: String,
    pub tcp: String,
    pub age_ms: u64,
}

/// Milliseconds since the Unix epoch (for `started_ms`).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Start sending heartbeats for node `name` (`role`, serving on `tcp`) to
/// the monitor's UDP address every `interval`.
pub fn beacon(
    monitor_udp: SocketAddr,
    name: &str,
    role: &str,
    tcp: SocketAddr,
    interval: Duration,
) -> io::Result<Sender> {
    let (name, role, tcp) = (name.to_string(), role.to_string(), tcp.to_string());
    let started = now_ms();
    Sender::spawn(monitor_udp, interval, move |seq| {
        json!({"type": "heartbeat", "name": name, "role": role, "tcp": tcp,
               "seq": seq, "started_ms": started})
    })
}

/// Live nodes of `role` (all roles if `None`), sorted by name.
pub fn alive(pool: &Pool, monitor: &str, role: Option<&str>) -> Result<Vec<Peer>, Error> {
    let mut fields = crate::Body::new();
    if let Some(r) = role {
        fields.insert("role".into(), json!(r));
    }
    let reply = pool.call(monitor, "alive", fields)?;
    let nodes = reply.get("nodes").cloned().unwrap_or_else(|| json!([]));
    let mut peers: Vec<Peer> = serde_json::from_value(nodes)
        .map_err(|e| Error::crash(format!("bad 'alive' answer from {monitor}: {e}")))?;
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(peers)
}

/// The TCP address of live node `name`, if the monitor knows it alive.
pub fn address_of(pool: &Pool, monitor: &str, name: &str) -> Result<Option<String>, Error> {
    Ok(alive(pool, monitor, None)?
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.tcp))
}
