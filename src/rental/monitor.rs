//! The heartbeat monitor: receives UDP heartbeats from terminals and the
//! backup, and answers `alive` over TCP.
//!
//! Whether a node is alive is decided by a failure detector from
//! [`crate::runtime::detector`], chosen by `--detector`: a fixed timeout (alive while
//! the last accepted heartbeat is younger than `--timeout-ms`) or phi
//! accrual (alive while phi < `--phi-threshold`). Either is wrapped in a
//! [`PauseGuard`]: a check thread ticks every few milliseconds, and a late
//! tick means the monitor itself was paused (SIGSTOP, an overloaded host),
//! so for `--pause-grace-ms` nodes are judged as of the moment it stopped.
//! The check thread also counts suspicions (alive → dead transitions), so a
//! benchmark can count false ones.
//!
//! A datagram is accepted only if it looks like one of ours:
//! JSON object, `type` "heartbeat", a known role whose name fits it, a TCP
//! address on the sender's own IP, sane numbers, and a sequence number that
//! moves forward within one incarnation (`started_ms`). Everything else is
//! counted and dropped; nothing a datagram carries can stop the receiver.

use crate::runtime::detector::{Detector, FixedTimeout, PauseGuard, PhiAccrual, PhiConfig};
use crate::runtime::heartbeat::{self, RecvError};
use crate::runtime::server::{Ctx, Handler, MessageHelp, NodeInfo};
use crate::sync::lock;
use crate::wire::message::{body, Body, Request};
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

/// Which failure detector decides liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorKind {
    Fixed,
    Phi,
}

impl DetectorKind {
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Fixed => "fixed",
            DetectorKind::Phi => "phi",
        }
    }

    pub fn parse(s: &str) -> Option<DetectorKind> {
        match s {
            "fixed" => Some(DetectorKind::Fixed),
            "phi" => Some(DetectorKind::Phi),
            _ => None,
        }
    }
}

/// How the monitor decides who is alive.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub detector: DetectorKind,
    /// Fixed detector: dead after this much silence.
    pub timeout: Duration,
    /// Phi detector: dead when phi reaches this.
    pub phi_threshold: f64,
    /// The interval nodes send heartbeats at: phi's first estimate, its
    /// standard-deviation floor and acceptable pause are derived from it,
    /// and so is how late a check may run before it counts as a pause.
    pub interval: Duration,
    /// After a detected pause of the monitor, judge nodes as of the moment
    /// it stopped for this long.
    pub pause_grace: Duration,
}

impl MonitorConfig {
    /// A fixed timeout with heartbeats every `timeout / 3` (the project's
    /// convention: three missed heartbeats).
    pub fn fixed(timeout: Duration) -> MonitorConfig {
        let interval = (timeout / 3).max(Duration::from_millis(1));
        MonitorConfig {
            detector: DetectorKind::Fixed,
            timeout,
            phi_threshold: 8.0,
            interval,
            pause_grace: interval * 2,
        }
    }

    /// How often the check thread ticks: often enough that a pause is seen
    /// long before it could look like a missed heartbeat.
    pub fn check_interval(&self) -> Duration {
        (self.interval / 5).clamp(Duration::from_millis(5), Duration::from_millis(100))
    }

    /// A tick this much later than due counts as a pause of the monitor.
    /// Half an interval: scheduling jitter on a busy host stays below it,
    /// and a shorter pause cannot push a peer from alive past either
    /// detector's limit (both allow at least one whole extra interval).
    pub fn max_lateness(&self) -> Duration {
        (self.interval / 2).max(Duration::from_millis(20))
    }

    fn build(&self) -> PauseGuard<Box<dyn Detector>> {
        let inner: Box<dyn Detector> = match self.detector {
            DetectorKind::Fixed => Box::new(FixedTimeout::new(self.timeout)),
            DetectorKind::Phi => Box::new(PhiAccrual::new(PhiConfig {
                threshold: self.phi_threshold,
                ..PhiConfig::for_interval(self.interval)
            })),
        };
        PauseGuard::new(
            inner,
            self.check_interval(),
            self.max_lateness(),
            self.pause_grace,
        )
    }
}

/// The detector and what the check thread saw last.
struct Watch {
    guard: PauseGuard<Box<dyn Detector>>,
    /// Verdict of the last check, per node, to count transitions.
    verdict: HashMap<String, bool>,
    /// alive → dead transitions, per node.
    suspicions: HashMap<String, u64>,
}

#[derive(Default)]
struct Counters {
    datagrams: AtomicU64,
    accepted: AtomicU64,
    malformed: AtomicU64,
    rejected: AtomicU64,
}

pub struct Monitor {
    cfg: MonitorConfig,
    table: Mutex<HashMap<String, Entry>>,
    /// Locked after `table` when both are needed (never the other way).
    watch: Mutex<Watch>,
    counters: Counters,
    last_rejection: Mutex<String>,
    stop: AtomicBool,
}

/// One heartbeat datagram's fields (all required).
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

/// What a datagram says on its own: a heartbeat whose name fits its role,
/// whose TCP address is the sender's (`0.0.0.0` taken as the sender's), with
/// a plausible `seq` and start time. Returns it and the address to list.
fn check_beat(msg: &Map<String, Value>, from: SocketAddr) -> Result<(Beat, SocketAddr), String> {
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
    Ok((b, tcp))
}

impl Monitor {
    /// A fixed-timeout monitor (see [`MonitorConfig::fixed`]).
    pub fn new(timeout: Duration) -> Arc<Monitor> {
        Monitor::with_config(MonitorConfig::fixed(timeout))
    }

    pub fn with_config(cfg: MonitorConfig) -> Arc<Monitor> {
        let guard = cfg.build();
        Arc::new(Monitor {
            cfg,
            table: Mutex::new(HashMap::new()),
            watch: Mutex::new(Watch {
                guard,
                verdict: HashMap::new(),
                suspicions: HashMap::new(),
            }),
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

    /// Tick the pause guard and count suspicions every check interval, in
    /// a background thread until [`Monitor::stop`].
    pub fn spawn_checker(self: &Arc<Self>) -> std::io::Result<JoinHandle<()>> {
        let me = self.clone();
        thread::Builder::new()
            .name("heartbeat-check".into())
            .spawn(move || {
                let every = me.cfg.check_interval();
                while !me.stop.load(Ordering::SeqCst) {
                    me.check(Instant::now());
                    thread::sleep(every);
                }
            })
    }

    /// One check: notice a pause of our own, and log and count every node
    /// that went from alive to dead (or back).
    pub fn check(&self, now: Instant) {
        let mut w = lock(&self.watch);
        if w.guard.tick(now) {
            log::warn!(
                "the monitor itself was paused (a check ran late); judging nodes as of \
                 the pause for {} ms",
                self.cfg.pause_grace.as_millis()
            );
        }
        for name in w.guard.nodes() {
            let alive = w.guard.is_alive(&name, now);
            let before = w.verdict.insert(name.clone(), alive);
            match (before, alive) {
                (Some(true), false) => {
                    *w.suspicions.entry(name.clone()).or_insert(0) += 1;
                    log::info!(
                        "{name} is suspected dead (phi {:.2})",
                        w.guard.phi(&name, now)
                    );
                }
                (Some(false), true) => log::info!("{name} is alive again"),
                _ => {}
            }
        }
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
                *lock(&self.last_rejection) = why;
            }
        }
    }

    /// Check one datagram and, if it is news, record it.
    fn validate(&self, msg: &Map<String, Value>, from: SocketAddr) -> Result<(), String> {
        let (b, tcp) = check_beat(msg, from)?;
        self.admit(b, tcp)
    }

    /// Record a well-formed heartbeat, unless it is from an older
    /// incarnation, a replay, or a new node when the table is full.
    fn admit(&self, b: Beat, tcp: SocketAddr) -> Result<(), String> {
        let mut table = lock(&self.table);
        let mut new_incarnation = false;
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
            Some(e) => new_incarnation = e.started_ms != b.started_ms,
            None => {}
        }
        let now = Instant::now();
        {
            let mut w = lock(&self.watch);
            if new_incarnation {
                // A restarted node: the silence while it was down says
                // nothing about its heartbeat rhythm from now on.
                w.guard.forget(&b.name);
            }
            w.guard.heartbeat(&b.name, now);
        }
        table.insert(
            b.name,
            Entry {
                role: b.role,
                tcp,
                seq: b.seq,
                started_ms: b.started_ms,
                last_seen: now,
            },
        );
        Ok(())
    }

    /// Per-node verdict and phi now (after noticing a pause of our own, so
    /// an `alive` answered right after SIGCONT is already guarded).
    fn judge(&self, names: &[&String], now: Instant) -> Vec<(bool, f64)> {
        let mut w = lock(&self.watch);
        w.guard.tick(now);
        names
            .iter()
            .map(|n| (w.guard.is_alive(n, now), w.guard.phi(n, now)))
            .collect()
    }

    fn phi_json(&self, phi: f64) -> Value {
        // JSON has no infinity; two decimals are plenty for a person.
        if phi.is_finite() {
            json!((phi * 100.0).round() / 100.0)
        } else {
            json!(f64::MAX)
        }
    }

    /// Live nodes (of `role`, if given), sorted by name. With the phi
    /// detector each carries its current `phi`.
    pub fn alive(&self, role: Option<&str>) -> Vec<Value> {
        let table = lock(&self.table);
        let mut names: Vec<&String> = table
            .iter()
            .filter(|(_, e)| role.is_none_or(|r| r == e.role))
            .map(|(n, _)| n)
            .collect();
        names.sort();
        let now = Instant::now();
        let verdicts = self.judge(&names, now);
        let mut out = Vec::new();
        for (name, (alive, phi)) in names.into_iter().zip(verdicts) {
            let Some(e) = table.get(name).filter(|_| alive) else {
                continue;
            };
            let mut v = json!({"name": name, "role": e.role, "tcp": e.tcp.to_string(),
                   "age_ms": now.saturating_duration_since(e.last_seen).as_millis() as u64,
                   "seq": e.seq});
            if self.cfg.detector == DetectorKind::Phi {
                v["phi"] = self.phi_json(phi);
            }
            out.push(v);
        }
        out
    }

    /// Suspicions counted by the check thread since start (alive → dead
    /// transitions of any node) and pauses of the monitor detected.
    pub fn suspicions_and_pauses(&self) -> (u64, u64) {
        let w = lock(&self.watch);
        (w.suspicions.values().sum(), w.guard.pauses())
    }

    /// The fields that say how liveness is decided (in `alive` and `status`).
    fn detector_fields(&self) -> Body {
        match self.cfg.detector {
            DetectorKind::Fixed => body(json!({"timeout_ms": self.cfg.timeout.as_millis() as u64})),
            DetectorKind::Phi => body(json!({"phi_threshold": self.cfg.phi_threshold})),
        }
    }
}

pub const HELP: [MessageHelp; 1] = [MessageHelp::new(
    "alive",
    "live nodes (optionally only one role: terminal, backup) with name, role, TCP address, age of the last heartbeat (and phi with --detector phi)",
    r#"{"type":"alive","id":1,"role":"terminal"}"#,
)];

impl Handler for Monitor {
    fn info(&self) -> NodeInfo {
        NodeInfo::new("heartbeat", "heartbeat")
    }

    fn help(&self) -> Vec<MessageHelp> {
        HELP.to_vec()
    }

    fn status(&self) -> Body {
        let c = &self.counters;
        let table = lock(&self.table);
        let mut names: Vec<&String> = table.keys().collect();
        names.sort();
        let now = Instant::now();
        let verdicts = self.judge(&names, now);
        let w = lock(&self.watch);
        let mut nodes = Vec::new();
        for (n, (alive, phi)) in names.into_iter().zip(verdicts) {
            let Some(e) = table.get(n) else { continue };
            let mut v = json!({"name": n, "role": e.role, "tcp": e.tcp.to_string(), "seq": e.seq,
                   "age_ms": now.saturating_duration_since(e.last_seen).as_millis() as u64,
                   "alive": alive,
                   "suspicions": w.suspicions.get(n).copied().unwrap_or(0)});
            if self.cfg.detector == DetectorKind::Phi {
                v["phi"] = self.phi_json(phi);
            }
            nodes.push(v);
        }
        let mut out = self.detector_fields();
        out.extend(body(json!({
            "detector": {
                "kind": self.cfg.detector.name(),
                "timeout_ms": self.cfg.timeout.as_millis() as u64,
                "phi_threshold": self.cfg.phi_threshold,
                "interval_ms": self.cfg.interval.as_millis() as u64,
                "pause_grace_ms": self.cfg.pause_grace.as_millis() as u64,
                "check_interval_ms": self.cfg.check_interval().as_millis() as u64,
                "max_lateness_ms": self.cfg.max_lateness().as_millis() as u64,
            },
            "pauses": w.guard.pauses(),
            "in_grace": w.guard.in_grace(now),
            "suspicions": w.suspicions.values().sum::<u64>(),
        })));
        drop(w);
        out.extend(body(json!({
            "datagrams": c.datagrams.load(Ordering::Relaxed),
            "accepted": c.accepted.load(Ordering::Relaxed),
            "malformed": c.malformed.load(Ordering::Relaxed),
            "rejected": c.rejected.load(Ordering::Relaxed),
            "last_rejection": *lock(&self.last_rejection),
            "nodes": nodes,
            "crash_points": [],
        })));
        out
    }

    fn handle(&self, req: &Request, _ctx: &Ctx) -> Result<Body, Error> {
        #[derive(Deserialize)]
        struct Alive {
            role: Option<String>,
        }
        let a: Alive = req.parse()?;
        let mut out = body(json!({"nodes": self.alive(a.role.as_deref())}));
        out.extend(self.detector_fields());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(name: &str, seq: u64, started_ms: u64) -> Map<String, Value> {
        match json!({"type": "heartbeat", "name": name, "role": "terminal",
                     "tcp": "127.0.0.1:7011", "seq": seq, "started_ms": started_ms})
        {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn monitor(kind: DetectorKind) -> Arc<Monitor> {
        Monitor::with_config(MonitorConfig {
            detector: kind,
            ..MonitorConfig::fixed(Duration::from_secs(3))
        })
    }

    #[test]
    fn phi_is_shown_only_with_the_phi_detector() {
        let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let started = super::super::peers::now_ms();
        for kind in [DetectorKind::Fixed, DetectorKind::Phi] {
            let m = monitor(kind);
            m.receive(&beat("terminal-1", 1, started), from);
            m.receive(&beat("terminal-1", 2, started), from);
            let live = m.alive(Some("terminal"));
            assert_eq!(live.len(), 1, "{live:?}");
            assert_eq!(live[0].get("phi").is_some(), kind == DetectorKind::Phi);
            let st = m.status();
            assert_eq!(st["detector"]["kind"], kind.name());
            assert_eq!(
                st["nodes"][0].get("phi").is_some(),
                kind == DetectorKind::Phi
            );
        }
    }

    #[test]
    fn a_restart_is_accepted_and_the_old_incarnation_is_not() {
        let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let started = super::super::peers::now_ms();
        let m = monitor(DetectorKind::Phi);
        m.receive(&beat("terminal-1", 7, started), from);
        // Restarted: seq starts over, accepted because started_ms is newer.
        m.receive(&beat("terminal-1", 1, started + 1), from);
        // The older incarnation again is a replay.
        m.receive(&beat("terminal-1", 9, started), from);
        assert_eq!(m.counters.accepted.load(Ordering::Relaxed), 2);
        assert_eq!(m.counters.rejected.load(Ordering::Relaxed), 1);
        let live = m.alive(None);
        assert_eq!(live[0]["seq"], 1);
        assert!(live[0]["phi"].as_f64().unwrap_or(99.0) < 8.0);
    }
}
