//! `frota-company --name A|B|C`: one charging company. It is a participant
//! (its points, holds and reservations: [`participant`]) and the
//! coordinator ([`coordinator`]) of every route request whose first stop
//! (in company-name order) is one of its points. The rules of both are pure
//! state machines in [`crate::ev::twopc`]; these modules drive them.
//!
//! A route request arrives through the shared subscription
//! `$share/companies/vehicle/+/request` or as `reserve`, at any company: one
//! that does not coordinate it forwards it to the one that does and relays
//! the answer.
//!
//! Background work (one thread each, all bounded by flags):
//! * the broker listener and `--workers` threads for its requests;
//! * one decider thread per peer (phase 2, batched);
//! * the resolver: every `--ask-interval-ms` it asks the coordinator of each
//!   expired in-doubt hold for the outcome, resends decisions that
//!   participants have not acknowledged yet, forgets rejected requests past
//!   the retry horizon, and compacts the coordinator log once
//!   `--compact-every` records were written.

pub mod coordinator;
pub mod logs;
pub mod messages;
pub mod participant;

use crate::ev::bus_client::BusClient;
use crate::ev::points::PointSet;
use crate::ev::twopc::{Answer, Timing};
use crate::runtime::client::{ClientConfig, Pool};
use crate::runtime::server::{Ctx, Handler, MessageHelp, NodeInfo};
use crate::runtime::wake::Queue;
use crate::wire::error::{Code, Error};
use crate::wire::message::{body, to_body, Body, Request};
use coordinator::{Coordinator, Settings};
use messages::{
    Availability, Conflict, Decide, LookupRequest, Prepare, RouteOutcome, RouteRequest, TxnRef,
    MAX_DECIDE,
};
use participant::Participant;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// The shared subscription every company joins: one company per request.
pub const REQUEST_FILTER: &str = "$share/companies/vehicle/+/request";

/// Most reservations in one `reservations` reply (about 120 bytes each,
/// well inside the 1 MiB frame limit).
pub const RESERVATIONS_PAGE: usize = 2000;

/// A company's settings; its flags and defaults are
/// [`crate::ev::nodes::CompanyNode`]'s.
#[derive(Debug, Clone)]
pub struct CompanyConfig {
    pub name: String,
    pub broker: Option<String>,
    pub data_dir: PathBuf,
    pub peers: BTreeMap<String, String>,
    pub points: Option<String>,
    pub hold_expiry: Duration,
    pub ask_interval: Duration,
    pub peer_timeout: Duration,
    /// A forwarded route request's reply timeout.
    pub forward_timeout: Duration,
    /// The retry horizon: how long a rejected request's answer is kept.
    pub answer_window: Duration,
    /// How long a retry of an undecided request waits for its outcome.
    pub retry_wait: Duration,
    pub compact_every: u64,
    pub workers: usize,
}

pub struct Company {
    cfg: CompanyConfig,
    participant: Arc<Participant>,
    coordinator: Arc<Coordinator>,
    /// For `decision` questions to other coordinators.
    pool: Pool,
    help: Vec<MessageHelp>,
    stop: AtomicBool,
}

fn leak(s: String) -> &'static str {
    // Built once per process for `help` (which wants 'static examples that
    // name this company's own points).
    Box::leak(s.into_boxed_str())
}

/// The messages a company answers, with examples naming its own points and
/// transactions (`n` the company, `first` its first point).
fn help(n: &str, first: &str) -> Vec<MessageHelp> {
    vec![
        MessageHelp::new(
            "availability",
            "points of this company with busy and free windows in [from,to) minutes of the day (/disponibilidade)",
            leak(format!(r#"{{"type":"availability","id":1,"point":"{first}","from":480,"to":720}}"#)),
        ),
        MessageHelp::new(
            "prepare",
            "phase 1: hold point+window for txn (coordinator/vehicle/request_id), durable before the yes vote; conflict = error 30 (/reserva-temporaria)",
            leak(format!(r#"{{"type":"prepare","id":2,"txn":"{n}/v1/nc-1","coordinator":"{n}","point":"{first}","start":1200,"end":1260,"vehicle":"v1","participants":["{n}"]}}"#)),
        ),
        MessageHelp::new(
            "commit",
            "phase 2: make txn's hold a reservation, idempotent (/confirmar-reserva)",
            leak(format!(r#"{{"type":"commit","id":3,"txn":"{n}/v1/nc-1"}}"#)),
        ),
        MessageHelp::new(
            "abort",
            "phase 2: drop txn's hold, idempotent; unknown txns are remembered as aborted (/cancelar-reserva)",
            leak(format!(r#"{{"type":"abort","id":4,"txn":"{n}/v1/nc-2"}}"#)),
        ),
        MessageHelp::new(
            "decide",
            "phase 2 for several txns at once: commit and abort lists; replies what was done and what failed",
            leak(format!(r#"{{"type":"decide","id":8,"commit":["{n}/v1/nc-1"],"abort":["{n}/v1/nc-3"]}}"#)),
        ),
        MessageHelp::new(
            "decision",
            "ask the coordinator of txn for its outcome; undecided = abort, recorded first; another company's txn = error 2 naming it",
            leak(format!(r#"{{"type":"decision","id":5,"txn":"{n}/v1/nc-4"}}"#)),
        ),
        MessageHelp::new(
            "reserve",
            "a route request: its coordinator (the company of its first stop) runs the 2PC, others forward it; the outcome, the same for every retry",
            leak(format!(r#"{{"type":"reserve","id":6,"request_id":"r1","vehicle":"v1","stops":[{{"company":"{n}","point":"{first}","start":1320,"end":1380}}]}}"#)),
        ),
        MessageHelp::new(
            "lookup",
            "a request's transaction and outcome (reserved, rejected, in_progress, unknown), asked of every company",
            r#"{"type":"lookup","id":9,"vehicle":"v1","request_id":"r1"}"#,
        ),
        MessageHelp::new(
            "reservations",
            "committed reservations and current holds of this company (the audit reads this)",
            r#"{"type":"reservations","id":7}"#,
        ),
    ]
}

impl Company {
    /// Load points, open and replay both logs.
    pub fn open(cfg: CompanyConfig) -> Result<Arc<Company>, String> {
        let set = PointSet::load(cfg.points.as_deref())?;
        let mine: Vec<_> = set.of_company(&cfg.name).cloned().collect();
        if mine.is_empty() {
            return Err(format!(
                "no charging points belong to company '{}'",
                cfg.name
            ));
        }
        let first = mine[0].id.clone();
        let client_cfg = ClientConfig::default()
            .with_timeout(cfg.peer_timeout)
            .with_retries(1);
        // Name the data directory, once: a refusal of a damaged log already
        // names its file (inside the directory), and saying the directory
        // again before it only makes the line harder to read.
        let dir = cfg.data_dir.display().to_string();
        let at = |e: std::io::Error| {
            let why = e.to_string();
            if why.contains(&dir) {
                why
            } else {
                format!("{dir}: {why}")
            }
        };
        let ms = |d: Duration| d.as_millis() as u64;
        let timing = Timing {
            hold_expiry: ms(cfg.hold_expiry),
            ask_every: ms(cfg.ask_interval),
            horizon: ms(cfg.answer_window),
            retry_wait: ms(cfg.retry_wait),
        };
        let participant = Arc::new(
            Participant::open(
                &cfg.name,
                mine,
                &cfg.data_dir.join("participant.log"),
                timing,
            )
            .map_err(at)?,
        );
        let settings = Settings {
            peers: cfg.peers.clone(),
            pool: Pool::new(client_cfg.clone()),
            forwards: Pool::new(
                ClientConfig::default()
                    .with_timeout(cfg.forward_timeout)
                    .with_retries(1),
            ),
            timing,
            peer_timeout: cfg.peer_timeout,
            compact_every: cfg.compact_every,
        };
        let coordinator = Arc::new(
            Coordinator::open(
                &cfg.name,
                participant.clone(),
                &cfg.data_dir.join("coordinator.log"),
                settings,
            )
            .map_err(at)?,
        );
        let help = help(&cfg.name, &first);
        Ok(Arc::new(Company {
            pool: Pool::new(client_cfg),
            cfg,
            participant,
            coordinator,
            help,
            stop: AtomicBool::new(false),
        }))
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Start the deciders, the resolver and (with a broker) the listener
    /// and workers.
    pub fn start_background(self: &Arc<Self>) -> std::io::Result<()> {
        self.start_deciders()?;
        self.start_resolver()?;
        match self.cfg.broker.clone() {
            Some(broker) => self.start_broker_side(&broker),
            None => Ok(()),
        }
    }

    /// Phase-two decisions go to each peer off the reply path, from one
    /// thread per peer that sends whatever has piled up as one `decide` (so
    /// a slow participant holds up only its own decisions, and under load
    /// one message carries many).
    fn start_deciders(self: &Arc<Self>) -> std::io::Result<()> {
        for (peer, rx) in self.coordinator.start_deciders() {
            let me = self.clone();
            thread::Builder::new()
                .name(format!("decide-{peer}"))
                .spawn(move || {
                    while !me.stop.load(Ordering::Relaxed) {
                        let got = rx.pop_up_to(Duration::from_millis(200), MAX_DECIDE);
                        if got.is_empty() {
                            continue;
                        }
                        let mut cause = crate::wire::trace::Cause::default();
                        let batch: Vec<_> = got
                            .into_iter()
                            .map(|(txn, commit, c)| {
                                cause = cause.join(&c);
                                (txn, commit)
                            })
                            .collect();
                        crate::wire::trace::within(&cause, || {
                            me.coordinator.send_decisions(&peer, batch)
                        });
                    }
                    // Later decisions are refused (the resolver resends
                    // them), not queued for nobody.
                    rx.close();
                })?;
        }
        Ok(())
    }

    /// The resolver: asks for lost decisions, finishes phase 2, compacts.
    fn start_resolver(self: &Arc<Self>) -> std::io::Result<()> {
        let me = self.clone();
        thread::Builder::new()
            .name("resolver".into())
            .spawn(move || {
                while !me.stop.load(Ordering::Relaxed) {
                    me.resolve_round();
                    me.coordinator.finish_round();
                    me.coordinator.maybe_compact();
                    thread::sleep(me.cfg.ask_interval);
                }
            })?;
        Ok(())
    }

    /// Route requests from the broker: a listener thread takes them off the
    /// request topics and hands them to `workers` coordinator threads
    /// (refusing as overloaded when they are all behind).
    fn start_broker_side(self: &Arc<Self>, broker: &str) -> std::io::Result<()> {
        let bus = Arc::new(
            BusClient::new(
                broker,
                ClientConfig::default().with_timeout(self.cfg.peer_timeout),
            )
            .map_err(|e| std::io::Error::other(e.to_string()))?,
        );
        if let Err(e) = bus.subscribe(REQUEST_FILTER) {
            log::warn!("broker {broker} not reachable yet ({e}); will keep trying");
        }
        // Each request with what it follows in a trace (its message). A
        // worker that finds no request parks at once: a channel's receive
        // spins and calls `sched_yield` first, which on 2 busy cores cost
        // the companies more CPU than the hand-off itself (see
        // docs/performance.md).
        let queue = Arc::new(Queue::<(RouteRequest, crate::wire::trace::Cause)>::new(
            self.cfg.workers * 64,
        ));
        for i in 0..self.cfg.workers {
            let me = self.clone();
            let queue = queue.clone();
            let bus = bus.clone();
            thread::Builder::new()
                .name(format!("coord-{i}"))
                .spawn(move || {
                    while !me.stop.load(Ordering::Relaxed) {
                        let Some((r, cause)) = queue.pop(Duration::from_millis(500)) else {
                            continue;
                        };
                        crate::wire::trace::within(&cause, || {
                            let out = me.route(&r);
                            me.answer(&bus, &r, &out);
                        });
                    }
                })?;
        }
        let me = self.clone();
        thread::Builder::new()
            .name("listener".into())
            .spawn(move || {
                while !me.stop.load(Ordering::Relaxed) {
                    let Some((topic, payload)) = bus.recv(Duration::from_millis(500)) else {
                        continue;
                    };
                    let r = match parse_request(&topic, payload) {
                        Ok(r) => r,
                        Err(e) => {
                            log::warn!("{}: bad route request on {topic}: {e}", me.cfg.name);
                            continue;
                        }
                    };
                    match queue.try_push((r, crate::wire::trace::cause())) {
                        Ok(()) => {}
                        Err((r, _)) => {
                            // Overloaded: say so instead of leaving the vehicle
                            // waiting (nothing was started here for it).
                            let e = Error::unavailable("company overloaded; retry later");
                            let out = me.failed(&r, &e);
                            me.answer(&bus, &r, &out);
                        }
                    }
                }
            })?;
        Ok(())
    }

    /// A route request from the broker: its outcome, or an error as a
    /// `failed` outcome whose conflict carries the error's code (13: the
    /// outcome is unknown, retry with the same request_id).
    fn route(&self, r: &RouteRequest) -> RouteOutcome {
        self.coordinator
            .reserve(r)
            .unwrap_or_else(|e| self.failed(r, &e))
    }

    fn failed(&self, r: &RouteRequest, e: &Error) -> RouteOutcome {
        RouteOutcome {
            request_id: r.request_id.clone(),
            vehicle: r.vehicle.clone(),
            outcome: "failed".into(),
            txn: String::new(),
            coordinator: self.cfg.name.clone(),
            stops: r.stops.clone(),
            conflict: Some(Conflict {
                company: self.cfg.name.clone(),
                point: String::new(),
                start: 0,
                end: 0,
                code: e.code.number(),
                reason: e.text.clone(),
            }),
        }
    }

    fn answer(&self, bus: &BusClient, r: &RouteRequest, out: &RouteOutcome) {
        let topic = r
            .reply_to
            .clone()
            .unwrap_or_else(|| format!("vehicle/{}/response", r.vehicle));
        if let Err(e) = bus.publish(&topic, serde_json::to_value(out).unwrap_or(Value::Null)) {
            log::warn!(
                "{}: cannot publish the outcome on {topic}: {e}",
                self.cfg.name
            );
        }
    }

    /// Ask the coordinators of expired in-doubt holds for their outcome.
    /// While a coordinator is down the hold stays (the blocking case).
    fn resolve_round(&self) {
        for (txn, coord) in self.participant.due() {
            crate::runtime::crash::point("company.resolve.before_ask");
            let answer = if coord == self.cfg.name {
                self.coordinator.decision(&txn)
            } else {
                match self.cfg.peers.get(&coord) {
                    Some(addr) => self.pool.call(addr, "decision", body(json!({"txn": txn}))),
                    None => Err(Error::new(
                        Code::NodeNotFound,
                        format!("unknown coordinator {coord}"),
                    )),
                }
            };
            crate::runtime::crash::point("company.resolve.after_ask");
            let answer = answer.and_then(|b| match b.get("outcome").and_then(Value::as_str) {
                Some("commit") => Ok(true),
                Some("abort") => Ok(false),
                _ => Err(Error::malformed("decision without outcome")),
            });
            match &answer {
                Ok(commit) => log::info!(
                    "{}: in-doubt {txn} resolved by {coord}: {}",
                    self.cfg.name,
                    if *commit { "commit" } else { "abort" }
                ),
                Err(e) => log::info!(
                    "{}: in-doubt {txn}: coordinator {coord} gave no outcome ({e}); holding and asking again",
                    self.cfg.name
                ),
            }
            let answer = answer.map(|commit| Answer::Decision {
                txn: txn.clone(),
                commit,
            });
            self.participant.answer(&txn, answer);
        }
    }

    /// Stop background threads (they end within one interval).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Every crash point of a company: participant, then coordinator.
pub fn crash_points() -> Vec<&'static str> {
    participant::CRASH_POINTS
        .iter()
        .chain(coordinator::CRASH_POINTS.iter())
        .map(|(n, _)| *n)
        .collect()
}

/// A route request from the broker; `vehicle` defaults to the topic's id.
fn parse_request(topic: &str, payload: Value) -> Result<RouteRequest, String> {
    let mut payload = payload;
    if let Value::Object(m) = &mut payload {
        if !m.contains_key("vehicle") {
            let id = topic.split('/').nth(1).unwrap_or_default();
            m.insert("vehicle".into(), json!(id));
        }
    }
    serde_json::from_value(payload).map_err(|e| e.to_string())
}

impl Handler for Company {
    fn info(&self) -> NodeInfo {
        NodeInfo::new(format!("company-{}", self.cfg.name), "company")
    }

    fn help(&self) -> Vec<MessageHelp> {
        self.help.clone()
    }

    fn crash_points(&self) -> Vec<&'static str> {
        crash_points()
    }

    fn status(&self) -> Body {
        let points: Vec<Value> = participant::CRASH_POINTS
            .iter()
            .chain(coordinator::CRASH_POINTS.iter())
            .map(|(n, w)| json!({"point": n, "where": w}))
            .collect();
        body(json!({
            "company": self.cfg.name,
            "participant": self.participant.status(),
            "coordinator": self.coordinator.status(),
            "hold_expiry_ms": self.cfg.hold_expiry.as_millis() as u64,
            "ask_interval_ms": self.cfg.ask_interval.as_millis() as u64,
            "answer_window_ms": self.cfg.answer_window.as_millis() as u64,
            "retry_wait_ms": self.cfg.retry_wait.as_millis() as u64,
            "broker": self.cfg.broker,
            "crash_points": points,
        }))
    }

    fn handle(&self, req: &Request, ctx: &Ctx) -> Result<Body, Error> {
        match req.kind.as_str() {
            "availability" => {
                let a: Availability = req.parse()?;
                self.participant.availability(
                    a.point.as_deref(),
                    a.from.unwrap_or(0),
                    a.to.unwrap_or(24 * 60),
                )
            }
            "prepare" => self
                .participant
                .prepare_later(&req.parse::<Prepare>()?, req, ctx),
            "commit" => self.participant.decide(&req.parse::<TxnRef>()?.txn, true),
            "decide" => {
                let d: Decide = req.parse()?;
                if d.commit.len() + d.abort.len() > MAX_DECIDE {
                    return Err(Error::malformed(format!(
                        "at most {MAX_DECIDE} decisions in one decide"
                    )));
                }
                Ok(self.participant.decide_many(&d.commit, &d.abort))
            }
            "abort" => self.participant.decide(&req.parse::<TxnRef>()?.txn, false),
            "decision" => self.coordinator.decision(&req.parse::<TxnRef>()?.txn),
            "reserve" => {
                let r: RouteRequest = req.parse()?;
                self.coordinator.reserve(&r).map(|o| to_body(&o))
            }
            "lookup" => {
                let l: LookupRequest = req.parse()?;
                for (what, v) in [("vehicle", &l.vehicle), ("request_id", &l.request_id)] {
                    crate::ev::twopc::check_name(what, v).map_err(Error::malformed)?;
                }
                if l.local {
                    let here = self.coordinator.lookup_here(&l.vehicle, &l.request_id);
                    return Ok(coordinator::lookup_body(
                        &l.vehicle,
                        &l.request_id,
                        &here,
                        None,
                    ));
                }
                let (found, unreachable) = self.coordinator.lookup(&l.vehicle, &l.request_id);
                Ok(coordinator::lookup_body(
                    &l.vehicle,
                    &l.request_id,
                    &found,
                    Some(&unreachable),
                ))
            }
            "reservations" => {
                let n = |k: &str| match req.body.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(_) => req.u64(k).map(Some),
                };
                let offset = n("offset")?.unwrap_or(0) as usize;
                let limit = n("limit")?.map_or(RESERVATIONS_PAGE, |l| {
                    (l as usize).clamp(1, RESERVATIONS_PAGE)
                });
                Ok(self.participant.reservations(offset, limit))
            }
            other => Err(Error::new(
                Code::NotSupported,
                format!("company does not handle '{other}'"),
            )),
        }
    }
}
