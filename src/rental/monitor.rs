//! The heartbeat monitor: receives UDP heartbeats from terminals and the
//! backup, and answers `alive` over TCP.
//!
//! A node is alive while its last accepted heartbeat is younger than the
//! timeout. A datagram is accepted only if it looks like one of ours:
//! JSON object, `type` "heartbeat", a known role whose name fits it, a TCP
//! address on the sender's own IP, sane numbers, and a sequence number that
//! moves forward within one incarnation (`started_ms`). Everything else is
//! counted and dropped; nothing a datagram carries can stop the receiver.

use crate::heartbeat::{self, RecvError};
use crate::message::{body, Body, Request};
use crate::server::{Ctx, Handler, MessageHelp, NodeInfo};
use crate::Error;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Most distinct nodes remembered: a flood of made-up names cannot grow
/// the table without bound.
const MAX_NODES: usize = 64;
/// Largest sequence number accepted (JSON-safe integer).
const MAX_SEQ: u64 = 1 << 53;

struct Entry {
    role: String,
    tcp: SocketAddr,
    seq: u64,
    started_ms: u64,
    last_seen: Instant,
}

#[derive(Default)]
struct Counters {
    datagrams: AtomicU64,
    accepted: AtomicU64,
    malformed: AtomicU64,
    rejected: AtomicU64,
}

pub struct Monitor {
    timeout: Duration,
    table: Mutex<HashMap<String, Entry>>,
    counters: Counters,
    last_rejection: Mutex<String>,
    stop: AtomicBool,
}

impl Monitor {
    pub fn new(timeout: Duration) -> Arc<Monitor> {
        Arc::new(Monitor {
            timeout,
            table: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            last_rejection: Mutex::new(String::new()),
            stop: AtomicBool::new(false),
        })
    }

    /// Receive heartbeats on `sock` in a background thread until [`Monitor::stop`].
    pub fn spawn_receiver(self: &Arc<Self>, sock: UdpSocket) -> std::io::Result<JoinHandle<()>> {
        // A read timeout lets the loop notice `stop`.
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let me = self.clone();
        thread::Builder::new()
            .name("heartbeat-rx".into())
            .spawn(move || {
                while !me.stop.load(Ordering::SeqCst) {
                    match heartbeat::recv(&sock) {
                        Ok((msg, from)) => {
                            me.counters.datagrams.fetch_add(1, Ordering::Relaxed);
                            me.receive(&msg, from);
                        }
                        Err(RecvError::Timeout) => {}
                        Err(RecvError::Malformed(from, why)) => {
                            me.counters.datagrams.fetch_add(1, Ordering::Relaxed);
                            me.counters.malformed.fetch_add(1, Ordering::Relaxed);
                            log::debug!("dropped datagram from {from}: {why}");
                        }
                        Err(RecvError::Io(e)) => {
                            // e.g. ICMP port unreachable surfaced on some OSes;
                            // never fatal, but do not spin.
                            log::debug!("heartbeat socket: {e}");
                            thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            })
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Check and record one datagram.
    pub fn receive(&self, msg: &Map<String, Value>, from: SocketAddr) {
        match self.validate(msg, from) {
            Ok(()) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(why) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                log::debug!("rejected heartbeat from {from}: {why}");
                *self
                    .last_rejection
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = why;
            }
        }
    }

    fn validate(&self, msg: &Map<String, Value>, from: SocketAddr) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Beat {
            #[serde(rename = "type")]
            kind: String,
            name: String,
            role: String,
            tcp: String,
            seq: u64,
            started_ms: u64,
        }
        let b: Beat = serde_json::from_value(Value::Object(msg.clone()))
            .map_err(|e| format!("bad heartbeat: {e}"))?;
        if b.kind != "heartbeat" {
            return Err(format!("type '{}' is not 'heartbeat'", b.kind));
        }
        let name_fits = match b.role.as_str() {
            "backup" => b.name == "backup",
            "infodesk" => b.name == "infodesk",
            "terminal" => b
                .name
                .strip_prefix("terminal-")
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| (1..=99).contains(&n) && b.name.len() <= 11),
            _ => return Err(format!("unknown role '{}'", b.role)),
        };
        if !name_fits {
            return Err(format!("name '{}' does not fit role '{}'", b.name, b.role));
        }
        let mut tcp: SocketAddr = b
            .tcp
            .parse()
            .map_err(|_| format!("tcp '{}' is not an address", b.tcp))?;
        if tcp.port() == 0 {
            return Err("tcp port 0".into());
        }
        if tcp.ip().is_unspecified() {
            // Listening on 0.0.0.0: reachable at the address it sent from.
            tcp.set_ip(from.ip());
        } else if tcp.ip() != from.ip() {
            return Err(format!(
                "tcp {tcp} is not on the sender's address {}",
                from.ip()
            ));
        }
        if b.seq == 0 || b.seq > MAX_SEQ {
            return Err(format!("absurd seq {}", b.seq));
        }
        let now = super::peers::now_ms();
        let ten_years = 10 * 365 * 24 * 3600 * 1000;
        if b.started_ms > now + 60_000 || b.started_ms + ten_years < now {
            return Err(format!("absurd started_ms {}", b.started_ms));
        }
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get(&b.name) {
            Some(e) if e.started_ms > b.started_ms => {
                return Err(format!("{} from an older incarnation", b.name))
            }
            Some(e) if e.started_ms == b.started_ms && e.seq >= b.seq => {
                return Err(format!(
                    "{} seq {} replayed (last {})",
                    b.name, b.seq, e.seq
                ))
            }
            None if table.len() >= MAX_NODES => return Err("node table full".into()),
            _ => {}
        }
        table.insert(
            b.name,
            Entry {
                role: b.role,
                tcp,
                seq: b.seq,
                started_ms: b.started_ms,
                last_seen: Instant::now(),
            },
        );
        Ok(())
    }

    /// Live nodes (of `role`, if given), sorted by name.
    pub fn alive(&self, role: Option<&str>) -> Vec<Value> {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(&String, &Entry)> = table
            .iter()
            .filter(|(_, e)| e.last_seen.elapsed() < self.timeout)
            .filter(|(_, e)| role.is_none_or(|r| r == e.role))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out.into_iter()
            .map(|(name, e)| {
                json!({"name": name, "role": e.role, "tcp": e.tcp.to_string(),
                       "age_ms": e.last_seen.elapsed().as_millis() as u64, "seq": e.seq})
            })
            .collect()
    }
}

pub const HELP: [MessageHelp; 1] = [MessageHelp::new(
    "alive",
    "live nodes (optionally only one role: terminal, backup) with name, role, TCP address, age of the last heartbeat",
    r#"{"type":"alive","id":1,"role":"terminal"}"#,
)];

impl Handler for Monitor {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: "heartbeat".into(),
            role: "heartbeat".into(),
        }
    }

    fn help(&self) -> Vec<MessageHelp> {
        HELP.to_vec()
    }

    fn status(&self) -> Body {
        let c = &self.counters;
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut nodes: Vec<Value> = table
            .iter()
            .map(|(n, e)| {
                json!({"name": n, "role": e.role, "tcp": e.tcp.to_string(), "seq": e.seq,
                       "age_ms": e.last_seen.elapsed().as_millis() as u64,
                       "alive": e.last_seen.elapsed() < self.timeout})
            })
            .collect();
        nodes.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        body(json!({
            "timeout_ms": self.timeout.as_millis() as u64,
            "datagrams": c.datagrams.load(Ordering::Relaxed),
            "accepted": c.accepted.load(Ordering::Relaxed),
            "malformed": c.malformed.load(Ordering::Relaxed),
            "rejected": c.rejected.load(Ordering::Relaxed),
            "last_rejection": *self.last_rejection.lock().unwrap_or_else(|p| p.into_inner()),
            "nodes": nodes,
            "crash_points": [],
        }))
    }

    fn handle(&self, req: &Request, _ctx: &Ctx) -> Result<Body, Error> {
        #[derive(Deserialize)]
        struct Alive {
            role: Option<String>,
        }
        let a: Alive = req.parse()?;
        Ok(body(json!({
            "nodes": self.alive(a.role.as_deref()),
            "timeout_ms": self.timeout.as_millis() as u64,
        })))
    }
}
