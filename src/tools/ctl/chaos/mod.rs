//! `frota-ctl chaos` (`make chaos`): both systems under continuous load
//! while a seeded driver kills (-9) and restarts random nodes, some of them
//! armed with a crash point; then heal, settle, audit, and check that every
//! acknowledged operation is in the final state.
//!
//! * The **schedule** (when, which node, kill or armed restart, which point,
//!   how long down) is computed up front from `--seed` alone, so a run is
//!   reproducible as far as the driver goes; what the nodes were doing at
//!   each instant depends on timing.
//! * The **load**: rental clients rent (random class, random terminal,
//!   request ids), hold the car a moment and return it; a pending rent is
//!   cancelled (or, if a car was handed to it meanwhile, claimed and
//!   returned). Every operation is retried with the *same* request id until
//!   a definite answer, so an acknowledgement is never ambiguous. EV
//!   vehicles ask for 3-stop routes (half of them from a small set of "hot"
//!   routes, so they contend), directly with `reserve` at a random company
//!   or through the broker; after an attempt with no outcome they retry the
//!   same request id (at a random company, a bounded number of times) and
//!   record every answer.
//! * The **verdict**: lost acknowledged operations, half-reserved routes and
//!   double bookings must all be 0, both audits must pass, and every answer
//!   an EV vehicle got must agree with the final state, with the request's
//!   other answers and with `lookup` ([`ev_told`]).

mod ev_told;

use crate::ev::bus_client::BusClient;
use crate::ev::company::messages::RouteOutcome;
use crate::ev::points::{PointSet, Stop};
use crate::rental::fleet::Class;
use crate::runtime::cli::{opt, Args};
use crate::runtime::client::{call, ClientConfig};
use crate::runtime::launch::wait_until;
use crate::tools::ev::audit as ev_audit;
use crate::tools::ev::cluster::{node_name, EvBins, EvCluster, EvOptions, COMPANIES};
use crate::tools::rental::audit as rental_audit;
use crate::tools::rental::cluster::{Bins, ClusterOptions, RentalCluster, NODES as RENTAL_NODES};
use crate::wire::error::{Code, Error};
use crate::wire::message::{body, Body};
use ev_told::{Asked, Held, Looked, Told};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use crate::runtime::rng::Rng;

/// The nodes the driver may hit, with the crash points it may arm.
pub fn targets() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut v: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for n in RENTAL_NODES {
        let points = match n {
            "backup" => crate::rental::backup::CRASH_POINTS.to_vec(),
            t if t.starts_with("terminal-") => crate::rental::terminal::CRASH_POINTS.to_vec(),
            _ => Vec::new(),
        };
        v.push((n, points));
    }
    v.push(("broker", Vec::new()));
    for c in ["company-A", "company-B", "company-C"] {
        v.push((c, crate::ev::company::crash_points()));
    }
    v
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// kill -9, restart (unarmed) after `down_for`.
    Kill { down_for: Duration },
    /// kill -9 and restart at once with `FROTA_CRASH_AT=point`.
    Armed { point: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: Duration,
    pub node: &'static str,
    pub action: Action,
}

/// The driver's whole schedule for `duration`, from `seed` alone. The last
/// second is left quiet so the final restarts are not cut short.
pub fn schedule(seed: u64, duration: Duration) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    let nodes = targets();
    let mut out = Vec::new();
    let mut at = Duration::ZERO;
    loop {
        at += rng.millis(400, 1600);
        if at + Duration::from_secs(1) >= duration {
            break;
        }
        let (node, points) = &nodes[rng.below(nodes.len() as u64) as usize];
        let action = if !points.is_empty() && rng.chance(45) {
            Action::Armed {
                point: points[rng.below(points.len() as u64) as usize],
            }
        } else {
            Action::Kill {
                down_for: rng.millis(200, 2500),
            }
        };
        out.push(Event { at, node, action });
    }
    out
}

/// Counters shared by the driver, the load threads and the progress line.
#[derive(Default)]
struct Stats {
    kills: AtomicU64,
    restarts: AtomicU64,
    crash_exits: AtomicU64,
    other_exits: AtomicU64,
    rental_tried: AtomicU64,
    rental_acked: AtomicU64,
    ev_tried: AtomicU64,
    ev_acked: AtomicU64,
    ev_reserved: AtomicU64,
    /// EV attempts after the first of a request (same request id).
    ev_retries: AtomicU64,
}

fn n(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// What the rental clients were told, for the final check.
#[derive(Default)]
struct RentalLedger {
    /// rent request id → (car, acked at, first return attempt at, return acked)
    rents: BTreeMap<String, RentRecord>,
    /// Cancels acknowledged (the request must end `cancelled`).
    cancels: Vec<String>,
    /// Definite refusals that should never happen (e.g. a return refused).
    anomalies: Vec<String>,
}

#[derive(Clone)]
struct RentRecord {
    car: String,
    acked_at: Instant,
    return_sent: Option<Instant>,
    /// Some(true) acked, Some(false) in doubt (gave up), None not tried.
    returned: Option<bool>,
}

struct Shared {
    stats: Stats,
    /// Load threads start no new operation after this.
    stop_load: AtomicBool,
    /// Operations still unanswered are given up at this instant (set at the end).
    give_up: Mutex<Option<Instant>>,
    rental: Mutex<RentalLedger>,
    /// Every route request and the answers its attempts got.
    ev: Mutex<Vec<Asked>>,
    terminals: Vec<String>,
    companies: BTreeMap<String, String>,
    broker: String,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop_load.load(Ordering::SeqCst)
    }

    fn past_give_up(&self) -> bool {
        let g = self.give_up.lock().unwrap_or_else(|p| p.into_inner());
        g.is_some_and(|t| Instant::now() >= t)
    }
}

/// A definite answer, or none before the give-up time.
enum Answer {
    Ok(Body),
    Refused(Error),
    GaveUp,
}

/// Errors after which the same request id is simply tried again: the
/// outcome is unknown (0, 13) or nothing happened (11: unreachable,
/// overloaded, connection limit).
fn retry_worthy(e: &Error) -> bool {
    matches!(
        e.code,
        Code::Timeout | Code::Crash | Code::TemporarilyUnavailable
    )
}

/// Send `kind` to a random terminal until a definite answer; every attempt
/// carries the same request id, so the backup applies it at most once.
fn ask_terminals(sh: &Shared, rng: &mut Rng, kind: &str, fields: &Body) -> Answer {
    let cfg = ClientConfig::default()
        .with_timeout(Duration::from_secs(3))
        .with_retries(0);
    loop {
        let t = &sh.terminals[rng.below(sh.terminals.len() as u64) as usize];
        match call(t, kind, fields.clone(), &cfg) {
            Ok(b) => return Answer::Ok(b),
            Err(e) if retry_worthy(&e) => {
                if sh.past_give_up() {
                    return Answer::GaveUp;
                }
                thread::sleep(rng.millis(50, 200));
            }
            Err(e) => return Answer::Refused(e),
        }
    }
}

/// One rental client: rent → hold → return, forever until told to stop.
fn rental_client(sh: Arc<Shared>, k: usize, seed: u64) {
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(k as u64));
    let client = format!("c{k}");
    let mut i = 0u64;
    while !sh.stopping() {
        i += 1;
        let rid = format!("{client}-{i}");
        let class = Class::ALL[rng.below(Class::ALL.len() as u64) as usize];
        sh.stats.rental_tried.fetch_add(1, Ordering::Relaxed);
        let fields = body(json!({"request_id": rid, "class": class.name(), "client": client}));
        let car = match ask_terminals(&sh, &mut rng, "rent", &fields) {
            Answer::Ok(b) if b.get("status").and_then(Value::as_str) == Some("pending") => {
                sh.stats.rental_acked.fetch_add(1, Ordering::Relaxed);
                match settle_pending(&sh, &mut rng, &rid) {
                    Some(car) => car,
                    None => continue,
                }
            }
            Answer::Ok(b) => {
                sh.stats.rental_acked.fetch_add(1, Ordering::Relaxed);
                match b.get("car").and_then(Value::as_str) {
                    Some(c) => c.to_string(),
                    None => {
                        note(&sh, format!("rent {rid} acked without a car: {b:?}"));
                        continue;
                    }
                }
            }
            Answer::Refused(e) => {
                log::debug!("rent {rid} refused: {e}");
                continue;
            }
            Answer::GaveUp => continue,
        };
        record_rent(&sh, &rid, &car);
        if !sh.stopping() {
            thread::sleep(rng.millis(20, 300));
        }
        give_back(&sh, &mut rng, &rid, &car);
    }
}

fn note(sh: &Shared, what: String) {
    log::warn!("chaos: {what}");
    sh.rental
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .anomalies
        .push(what);
}

fn record_rent(sh: &Shared, rid: &str, car: &str) {
    sh.rental
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .rents
        .insert(
            rid.to_string(),
            RentRecord {
                car: car.to_string(),
                acked_at: Instant::now(),
                return_sent: None,
                returned: None,
            },
        );
}

/// A pending rent: cancel it; if a car was handed to it meanwhile, claim
/// that car (it is the client's) and return `Some(car)`.
fn settle_pending(sh: &Shared, rng: &mut Rng, rid: &str) -> Option<String> {
    sh.stats.rental_tried.fetch_add(1, Ordering::Relaxed);
    match ask_terminals(sh, rng, "cancel", &body(json!({"request_id": rid}))) {
        Answer::Ok(_) => {
            sh.stats.rental_acked.fetch_add(1, Ordering::Relaxed);
            sh.rental
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .cancels
                .push(rid.to_string());
            return None;
        }
        Answer::GaveUp => return None,
        Answer::Refused(e) if e.code == Code::PreconditionFailed => {}
        Answer::Refused(e) => {
            note(sh, format!("cancel of pending {rid} refused: {e}"));
            return None;
        }
    }
    // Too late to cancel: fulfilled (claim it) or expired (nothing to do).
    sh.stats.rental_tried.fetch_add(1, Ordering::Relaxed);
    let fields = body(json!({"request_id": rid, "claim": true}));
    match ask_terminals(sh, rng, "check_pending", &fields) {
        Answer::Ok(b) => {
            sh.stats.rental_acked.fetch_add(1, Ordering::Relaxed);
            match b.get("status").and_then(Value::as_str) {
                Some("fulfilled") => b.get("car").and_then(Value::as_str).map(String::from),
                _ => None,
            }
        }
        _ => None,
    }
}

fn give_back(sh: &Shared, rng: &mut Rng, rid: &str, car: &str) {
    if let Some(r) = sh
        .rental
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .rents
        .get_mut(rid)
    {
        r.return_sent = Some(Instant::now());
    }
    sh.stats.rental_tried.fetch_add(1, Ordering::Relaxed);
    let fields = body(json!({"request_id": format!("{rid}-back"), "car": car}));
    let returned = match ask_terminals(sh, rng, "return", &fields) {
        Answer::Ok(_) => {
            sh.stats.rental_acked.fetch_add(1, Ordering::Relaxed);
            true
        }
        Answer::GaveUp => false,
        Answer::Refused(e) => {
            note(sh, format!("return of {car} ({rid}) refused: {e}"));
            false
        }
    };
    if let Some(r) = sh
        .rental
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .rents
        .get_mut(rid)
    {
        r.returned = Some(returned);
    }
}

/// A random 3-stop route, one 30-minute stop per company.
fn random_route(set: &PointSet, rng: &mut Rng) -> Vec<Stop> {
    COMPANIES
        .iter()
        .filter_map(|c| {
            let pts: Vec<_> = set.of_company(c).collect();
            let p = pts.get(rng.below(pts.len() as u64) as usize)?;
            let start = 30 * rng.below(47) as u32;
            Some(Stop {
                company: c.to_string(),
                point: p.id.clone(),
                start,
                end: start + 30,
            })
        })
        .collect()
}

/// Attempts of one route request before its vehicle gives up on it (the
/// answers it got are checked all the same).
const ROUTE_ATTEMPTS: usize = 6;

/// How a vehicle reaches the companies: directly (`reserve` at any
/// company) or through the broker (`vehicle/<id>/request`).
struct Wheels {
    id: String,
    bus: Option<BusClient>,
    direct: ClientConfig,
}

/// One EV vehicle: ask for routes until told to stop. Like a real client,
/// after an attempt with no outcome (a broken connection, a timeout, error
/// 13, `failed` 13 from the broker, or a definite "not now") it retries the
/// *same* request id at a random company, a bounded number of times, and
/// every answer is recorded for [`ev_told::judge`].
fn vehicle(sh: Arc<Shared>, k: usize, seed: u64, hot: Arc<Vec<Vec<Stop>>>) {
    let mut rng = Rng::new(seed.wrapping_mul(131).wrapping_add(1000 + k as u64));
    let Ok(set) = PointSet::load(None) else {
        return;
    };
    let id = format!("cv{k}");
    let bus = BusClient::new(
        &sh.broker,
        ClientConfig::default()
            .with_timeout(Duration::from_secs(2))
            .with_retries(0),
    )
    .ok();
    if let Some(b) = &bus {
        let _ = b.subscribe(&format!("vehicle/{id}/response"));
    }
    let wheels = Wheels {
        id,
        bus,
        direct: ClientConfig::default()
            .with_timeout(Duration::from_secs(3))
            .with_retries(0),
    };
    let mut i = 0u64;
    while !sh.stopping() {
        i += 1;
        let stops = if rng.chance(50) {
            hot[rng.below(hot.len() as u64) as usize].clone()
        } else {
            random_route(&set, &mut rng)
        };
        let mut asked = Asked {
            vehicle: wheels.id.clone(),
            request_id: format!("{}-{i}", wheels.id),
            stops,
            answers: Vec::new(),
        };
        sh.stats.ev_tried.fetch_add(1, Ordering::Relaxed);
        ask_route(&sh, &mut rng, &wheels, &mut asked);
        if let Some((_, t)) = asked.answers.iter().find(|(_, t)| t.is_outcome()) {
            sh.stats.ev_acked.fetch_add(1, Ordering::Relaxed);
            if matches!(t, Told::Reserved { .. }) {
                sh.stats.ev_reserved.fetch_add(1, Ordering::Relaxed);
            }
        }
        sh.ev.lock().unwrap_or_else(|p| p.into_inner()).push(asked);
        thread::sleep(rng.millis(10, 80));
    }
}

/// Attempts of one request until a final answer, [`ROUTE_ATTEMPTS`], or
/// the give-up time; each goes to a random company or through the broker.
fn ask_route(sh: &Shared, rng: &mut Rng, w: &Wheels, asked: &mut Asked) {
    let req = json!({"request_id": asked.request_id, "vehicle": w.id, "stops": asked.stops});
    for attempt in 0..ROUTE_ATTEMPTS {
        if attempt > 0 {
            sh.stats.ev_retries.fetch_add(1, Ordering::Relaxed);
            thread::sleep(rng.millis(100, 400));
        }
        let (via, told) = match &w.bus {
            Some(b) if rng.chance(30) => (
                "broker".to_string(),
                via_broker(b, &asked.request_id, &w.id, req.clone()),
            ),
            _ => {
                let c = COMPANIES[rng.below(COMPANIES.len() as u64) as usize];
                let answer = call(&sh.companies[c], "reserve", body(req.clone()), &w.direct);
                (c.to_string(), told_of(answer))
            }
        };
        let done = told.is_final();
        asked.answers.push((via, told));
        if done || sh.past_give_up() {
            return;
        }
    }
}

/// A `reserve` reply or route outcome as what the vehicle was told.
fn told_of(answer: Result<Body, Error>) -> Told {
    let o = match answer {
        Ok(b) => serde_json::from_value::<RouteOutcome>(Value::Object(b)),
        Err(e) if e.definite() => {
            return Told::Failed {
                code: e.code.number(),
            }
        }
        Err(e) => return Told::Indefinite { why: e.to_string() },
    };
    match o {
        Ok(o) => outcome_told(o),
        Err(e) => Told::Indefinite {
            why: format!("unreadable outcome: {e}"),
        },
    }
}

fn outcome_told(o: RouteOutcome) -> Told {
    let code = o.conflict.as_ref().map(|c| c.code).unwrap_or(0);
    match o.outcome.as_str() {
        "reserved" => Told::Reserved { txn: o.txn },
        "rejected" => Told::Rejected { txn: o.txn },
        "failed" if code == Code::Crash.number() => Told::Indefinite {
            why: "failed 13 (outcome unknown)".into(),
        },
        "failed" => Told::Failed { code },
        other => Told::Indefinite {
            why: format!("outcome '{other}'"),
        },
    }
}

/// Publish the route on `vehicle/<id>/request` and wait for its outcome.
fn via_broker(bus: &BusClient, rid: &str, id: &str, req: Value) -> Told {
    match bus.publish(&format!("vehicle/{id}/request"), req) {
        Ok(d) if d > 0 => {}
        Ok(_) => {
            return Told::Indefinite {
                why: "the broker delivered it to no company".into(),
            }
        }
        Err(e) => return Told::Indefinite { why: e.to_string() },
    }
    let deadline = Instant::now() + Duration::from_secs(4);
    while let Some((_, payload)) = bus.recv(deadline.saturating_duration_since(Instant::now())) {
        if let Ok(o) = serde_json::from_value::<RouteOutcome>(payload) {
            if o.request_id == rid {
                return outcome_told(o);
            }
        }
    }
    Told::Indefinite {
        why: "no outcome on the response topic in 4 s".into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sys {
    Rental,
    Ev,
}

fn sys_of(node: &str) -> Sys {
    if node == "broker" || node.starts_with("company-") {
        Sys::Ev
    } else {
        Sys::Rental
    }
}

/// The driver's view of one node.
#[derive(Default)]
struct NodeState {
    /// Down (killed or crashed); restart unarmed at this instant.
    restart_at: Option<Instant>,
    /// Started with this crash point armed and still running.
    armed: Option<&'static str>,
}

struct Driver {
    rental: RentalCluster,
    ev: EvCluster,
    nodes: BTreeMap<&'static str, NodeState>,
}

impl Driver {
    fn start(&mut self, node: &str, point: Option<&str>) -> std::io::Result<()> {
        let env: Vec<(&str, String)> = point
            .map(|p| vec![("FROTA_CRASH_AT", p.to_string())])
            .unwrap_or_default();
        match sys_of(node) {
            Sys::Rental => self.rental.start_node(node, &env),
            Sys::Ev => {
                let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                self.ev.set_env(node, &e);
                self.ev.restart(node)
            }
        }
    }

    fn kill(&mut self, node: &str) {
        match sys_of(node) {
            Sys::Rental => self.rental.kill(node),
            Sys::Ev => self.ev.kill(node),
        }
    }

    /// Exit status of `node` if its process ended by itself.
    fn exited(&mut self, node: &str) -> Option<std::process::ExitStatus> {
        let p = match sys_of(node) {
            Sys::Rental => self.rental.proc_mut(node),
            Sys::Ev => self.ev.proc_mut(node),
        }?;
        p.wait_exit(Duration::ZERO)
    }
}

fn spawn_failed_at_crash_point(e: &std::io::Error) -> bool {
    e.to_string().contains(&format!(
        "exit status: {}",
        crate::runtime::crash::EXIT_CODE
    ))
}

/// Every company's committed reservations and holds, once quiet.
fn final_state(
    companies: &BTreeMap<String, String>,
    cfg: &ClientConfig,
) -> Result<Vec<Held>, Error> {
    let mut held = Vec::new();
    for (c, addr) in companies {
        let b = crate::tools::ev::audit::reservations(addr, cfg)?;
        for (key, committed) in [("reservations", true), ("holds", false)] {
            for r in b.get(key).and_then(Value::as_array).into_iter().flatten() {
                held.push(Held {
                    company: c.clone(),
                    txn: r["txn"].as_str().unwrap_or("").to_string(),
                    point: r["point"].as_str().unwrap_or("").to_string(),
                    start: r["start"].as_u64().unwrap_or(0) as u32,
                    end: r["end"].as_u64().unwrap_or(0) as u32,
                    committed,
                });
            }
        }
    }
    Ok(held)
}

/// Threads asking `lookup` at the end (each request once, at a random company).
const LOOKUP_THREADS: usize = 4;

/// `lookup` of every request, each at a company picked by the seed; an
/// answer that is not definite (in progress, or unknown with a company
/// unreachable) is asked again, at another random company, a few times.
fn lookups(
    companies: &BTreeMap<String, String>,
    asked: &[Asked],
    seed: u64,
) -> BTreeMap<(String, String), Looked> {
    let chunk = asked.len().div_ceil(LOOKUP_THREADS).max(1);
    thread::scope(|s| {
        let parts: Vec<_> = asked
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                s.spawn(move || {
                    let mut rng = Rng::new(seed.wrapping_mul(7919).wrapping_add(k as u64));
                    part.iter()
                        .filter_map(|a| {
                            let l = lookup_one(companies, a, &mut rng)?;
                            Some(((a.vehicle.clone(), a.request_id.clone()), l))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

fn lookup_one(companies: &BTreeMap<String, String>, a: &Asked, rng: &mut Rng) -> Option<Looked> {
    let cfg = ClientConfig::default().with_timeout(Duration::from_secs(5));
    let names: Vec<&String> = companies.keys().collect();
    let mut last = None;
    for attempt in 0..5 {
        if attempt > 0 {
            thread::sleep(Duration::from_millis(200));
        }
        let at = names[rng.below(names.len() as u64) as usize];
        let fields = json!({"vehicle": a.vehicle, "request_id": a.request_id});
        let Ok(b) = call(&companies[at], "lookup", body(fields), &cfg) else {
            continue;
        };
        let l = Looked {
            at: at.clone(),
            outcome: b
                .get("outcome")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            txn: b
                .get("txn")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            unreachable: b
                .get("unreachable")
                .and_then(Value::as_array)
                .map_or(0, Vec::len),
        };
        let definite = l.outcome != "in_progress" && l.unreachable == 0;
        last = Some(l);
        if definite {
            break;
        }
    }
    last
}

pub fn run(args: &[String]) -> i32 {
    let flags = [
        opt(
            "seed",
            "1",
            "seed of the kill/restart schedule and of the load",
        ),
        opt("duration-s", "60", "how long the driver kills and restarts"),
        opt(
            "dir",
            "run/chaos",
            "data and node logs go here (wiped first)",
        ),
        opt("clients", "4", "concurrent rental clients"),
        opt("vehicles", "4", "concurrent EV vehicles"),
        opt(
            "settle-s",
            "30",
            "after healing, bound on in-flight work and audits",
        ),
        opt("progress-ms", "3000", "print a progress line this often"),
    ];
    let a = match Args::parse_sub(
        "frota-ctl chaos",
        "both systems under load while random nodes are killed and restarted; audits and a PASS/FAIL report",
        &flags,
        args,
    ) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let seed: u64 = a.value("seed");
    let duration = Duration::from_secs(a.value("duration-s"));
    let settle = Duration::from_secs(a.value("settle-s"));
    let progress = a.millis("progress-ms").max(Duration::from_millis(200));
    let dir = PathBuf::from(a.string("dir"));
    let _ = std::fs::remove_dir_all(&dir);
    let plan = schedule(seed, duration);
    println!(
        "chaos: seed {seed}, {} s, {} scheduled faults; data and logs in {}",
        duration.as_secs(),
        plan.len(),
        dir.display()
    );
    let started = Instant::now();
    let mut ropts = ClusterOptions::fast();
    ropts.heartbeat_timeout_ms = 600;
    ropts.log_dir = Some(dir.join("logs"));
    // Small compaction thresholds, so logs are rewritten (and killed while
    // being rewritten) many times in a run, not once a day.
    ropts.backup_args = vec!["--compact-every".into(), "200".into()];
    let rental = match RentalCluster::start_with(Bins::sibling(), &dir.join("rental"), ropts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chaos: cannot start the rental nodes: {e}");
            return 1;
        }
    };
    let mut eopts = EvOptions::new(&dir.join("ev"));
    eopts.log_dir = Some(dir.join("logs"));
    eopts.hold_expiry_ms = 1000;
    eopts.ask_interval_ms = 200;
    eopts.peer_timeout_ms = 1000;
    // Rejected answers are kept past the whole run, so the final lookups
    // must find every one (a shorter horizon may forget them: protocol.md).
    let horizon = duration + settle + Duration::from_secs(120);
    eopts.company_args = vec![
        "--compact-every".into(),
        "300".into(),
        "--answer-window-ms".into(),
        horizon.as_millis().to_string(),
    ];
    let ev = match EvCluster::start(EvBins::siblings(), eopts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chaos: cannot start the EV nodes: {e}");
            return 1;
        }
    };
    let sh = Arc::new(Shared {
        stats: Stats::default(),
        stop_load: AtomicBool::new(false),
        give_up: Mutex::new(None),
        rental: Mutex::new(RentalLedger::default()),
        ev: Mutex::new(Vec::new()),
        terminals: ["terminal-1", "terminal-2", "terminal-3"]
            .iter()
            .map(|t| rental.addr(t).to_string())
            .collect(),
        companies: COMPANIES
            .iter()
            .map(|c| (c.to_string(), ev.addr(&node_name(c)).to_string()))
            .collect(),
        broker: ev.addr("broker").to_string(),
    });
    let backup = rental.addr("backup").to_string();
    let heartbeat = rental.addr("heartbeat").to_string();
    let companies = ev.companies();
    println!(
        "chaos: nodes up in {:.1} s; {} rental clients, {} EV vehicles",
        started.elapsed().as_secs_f64(),
        a.value::<usize>("clients"),
        a.value::<usize>("vehicles")
    );
    let mut hot_rng = Rng::new(seed.wrapping_add(77));
    let set = PointSet::default_set();
    let hot: Arc<Vec<Vec<Stop>>> =
        Arc::new((0..12).map(|_| random_route(&set, &mut hot_rng)).collect());
    let mut load = Vec::new();
    for k in 0..a.value::<usize>("clients") {
        let s = sh.clone();
        load.push(thread::spawn(move || rental_client(s, k + 1, seed)));
    }
    for k in 0..a.value::<usize>("vehicles") {
        let s = sh.clone();
        let h = hot.clone();
        load.push(thread::spawn(move || vehicle(s, k + 1, seed, h)));
    }

    let mut d = Driver {
        rental,
        ev,
        nodes: targets()
            .iter()
            .map(|(n, _)| (*n, NodeState::default()))
            .collect(),
    };
    let t0 = Instant::now();
    let mut next = 0;
    let mut last_progress = Instant::now();
    let line = |sh: &Shared, at: Duration| {
        let s = &sh.stats;
        println!(
            "chaos: {:>5.1}/{} s  kills {}  restarts {}  crash-point exits {}  rental {}/{} acked  ev {}/{} answered ({} reserved, {} retries)",
            at.as_secs_f64(),
            duration.as_secs(),
            n(&s.kills),
            n(&s.restarts),
            n(&s.crash_exits),
            n(&s.rental_acked),
            n(&s.rental_tried),
            n(&s.ev_acked),
            n(&s.ev_tried),
            n(&s.ev_reserved),
            n(&s.ev_retries),
        );
    };
    while t0.elapsed() < duration {
        let now = Instant::now();
        // Armed nodes that reached their point (or died otherwise).
        let names: Vec<&'static str> = d.nodes.keys().copied().collect();
        for name in &names {
            let armed = d.nodes[name].armed;
            if armed.is_some() {
                if let Some(status) = d.exited(name) {
                    if status.code() == Some(crate::runtime::crash::EXIT_CODE) {
                        sh.stats.crash_exits.fetch_add(1, Ordering::Relaxed);
                    } else {
                        sh.stats.other_exits.fetch_add(1, Ordering::Relaxed);
                    }
                    let st = d.nodes.entry(name).or_default();
                    st.armed = None;
                    st.restart_at = Some(now + Duration::from_millis(300));
                }
            }
        }
        // Scheduled restarts.
        for name in &names {
            if d.nodes[name].restart_at.is_some_and(|t| t <= now) {
                match d.start(name, None) {
                    Ok(()) => {
                        sh.stats.restarts.fetch_add(1, Ordering::Relaxed);
                        d.nodes.entry(name).or_default().restart_at = None;
                    }
                    Err(e) => {
                        log::warn!("chaos: restart of {name} failed: {e}; retrying");
                        d.nodes.entry(name).or_default().restart_at =
                            Some(Instant::now() + Duration::from_millis(500));
                    }
                }
            }
        }
        // Due events.
        while next < plan.len() && plan[next].at <= t0.elapsed() {
            let ev = plan[next].clone();
            next += 1;
            // A node that is already down is not killed again.
            if d.nodes[ev.node].restart_at.is_none() {
                d.kill(ev.node);
                sh.stats.kills.fetch_add(1, Ordering::Relaxed);
            }
            match ev.action {
                Action::Kill { down_for } => {
                    log::info!("chaos: kill -9 {} (down {:?})", ev.node, down_for);
                    let st = d.nodes.entry(ev.node).or_default();
                    st.armed = None;
                    st.restart_at = Some(Instant::now() + down_for);
                }
                Action::Armed { point } => {
                    log::info!("chaos: kill -9 {} and restart armed at {point}", ev.node);
                    let r = d.start(ev.node, Some(point));
                    let st = d.nodes.entry(ev.node).or_default();
                    match r {
                        Ok(()) => {
                            sh.stats.restarts.fetch_add(1, Ordering::Relaxed);
                            st.armed = Some(point);
                            st.restart_at = None;
                        }
                        Err(e) => {
                            if spawn_failed_at_crash_point(&e) {
                                sh.stats.restarts.fetch_add(1, Ordering::Relaxed);
                                sh.stats.crash_exits.fetch_add(1, Ordering::Relaxed);
                            }
                            st.armed = None;
                            st.restart_at = Some(Instant::now() + Duration::from_millis(300));
                        }
                    }
                }
            }
        }
        if last_progress.elapsed() >= progress {
            last_progress = Instant::now();
            line(&sh, t0.elapsed());
        }
        thread::sleep(Duration::from_millis(20));
    }
    line(&sh, t0.elapsed());

    // Heal: no new operations; every node back, unarmed.
    println!(
        "chaos: healing every node; settling (at most {} s)",
        settle.as_secs()
    );
    sh.stop_load.store(true, Ordering::SeqCst);
    let settle_end = Instant::now() + settle;
    *sh.give_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(settle_end);
    let names: Vec<&'static str> = d.nodes.keys().copied().collect();
    for name in names {
        let st = &d.nodes[name];
        let must = st.armed.is_some() || st.restart_at.is_some() || d.exited(name).is_some();
        if !must {
            continue;
        }
        let ok = wait_until(
            settle_end.saturating_duration_since(Instant::now()),
            Duration::from_millis(300),
            || d.start(name, None).is_ok(),
        );
        if ok {
            sh.stats.restarts.fetch_add(1, Ordering::Relaxed);
        } else {
            println!("chaos: could not restart {name}");
        }
        let st = d.nodes.entry(name).or_default();
        st.armed = None;
        st.restart_at = None;
    }
    let left = settle_end.saturating_duration_since(Instant::now());
    if let Err(e) = d.rental.wait_alive(&RENTAL_NODES[1..5], left) {
        println!("chaos: {e}");
    }
    for h in load {
        let _ = h.join();
    }
    let healed_in = settle.saturating_sub(settle_end.saturating_duration_since(Instant::now()));
    println!(
        "chaos: load stopped and in-flight work settled in {:.1} s",
        healed_in.as_secs_f64()
    );

    // Audits.
    let left = settle_end
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(5));
    let ev_verdict = ev_audit::check(&companies, left);
    let rental_report = rental_audit::run(&backup, &heartbeat, 20, Duration::from_millis(300));

    // Every acknowledged operation in the final state.
    let mut problems: Vec<String> = Vec::new();
    let mut lost = 0usize;
    let places = rental_report
        .backup
        .get("places")
        .cloned()
        .unwrap_or(Value::Null);
    let rl = sh.rental.lock().unwrap_or_else(|p| p.into_inner());
    for (rid, r) in &rl.rents {
        let place = &places[r.car.as_str()];
        let rented_by_us = place["state"] == "rented" && place["request_id"] == rid.as_str();
        let bad = match r.returned {
            Some(true) => rented_by_us,
            Some(false) => false, // return in doubt: either state is right
            None => !rented_by_us,
        };
        if bad {
            lost += 1;
            problems.push(format!(
                "lost: {rid} ({}; return {:?}) but the backup has {}",
                r.car, r.returned, place
            ));
        }
    }
    let cfg = ClientConfig::default().with_timeout(Duration::from_secs(5));
    for rid in &rl.cancels {
        let st = call(
            &backup,
            "check_pending",
            body(json!({"request_id": rid})),
            &cfg,
        );
        let status = st
            .as_ref()
            .ok()
            .and_then(|b| b.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        if status != "cancelled" {
            lost += 1;
            problems.push(format!(
                "lost: cancel of {rid} acked, the backup says {status}"
            ));
        }
    }
    // Rental double booking: a car acked to a client while another client
    // held it (between its rent ack and the first attempt to return it).
    let mut by_car: BTreeMap<&str, Vec<(Instant, Instant, &str)>> = BTreeMap::new();
    let end = Instant::now();
    for (rid, r) in &rl.rents {
        by_car.entry(r.car.as_str()).or_default().push((
            r.acked_at,
            r.return_sent.unwrap_or(end),
            rid.as_str(),
        ));
    }
    let mut double = 0usize;
    for (car, mut v) in by_car {
        v.sort();
        for w in v.windows(2) {
            if w[1].0 < w[0].1 {
                double += 1;
                problems.push(format!(
                    "double booking: {car} acked to {} while {} held it",
                    w[1].2, w[0].2
                ));
            }
        }
    }
    for a in &rl.anomalies {
        problems.push(format!("anomaly: {a}"));
    }
    let anomalies = rl.anomalies.len();
    drop(rl);
    // EV: every answer a vehicle got, against the final state and lookups.
    let asked = std::mem::take(&mut *sh.ev.lock().unwrap_or_else(|p| p.into_inner()));
    let told = match final_state(&companies, &cfg) {
        Ok(held) => {
            let looked = lookups(&companies, &asked, seed);
            ev_told::judge(&asked, &held, &looked)
        }
        Err(e) => ev_told::EvVerdict {
            violations: vec![("state", format!("cannot read the final state: {e}"))],
            ..ev_told::EvVerdict::default()
        },
    };
    lost += told.lost;
    problems.extend(told.sample(4).into_iter().map(|p| format!("ev {p}")));
    let (ev_ok, ev_line, half, ev_double) = match &ev_verdict {
        Ok(v) => {
            let half = v
                .problems
                .iter()
                .filter(|p| p.starts_with("atomicity") || p.starts_with("holds"))
                .count();
            let dbl = v
                .problems
                .iter()
                .filter(|p| p.starts_with("isolation"))
                .count();
            problems.extend(v.problems.iter().cloned());
            (v.ok, v.lines().join("\n    "), half, dbl)
        }
        Err(e) => (false, format!("audit: FAIL — {e}"), 0, 0),
    };
    double += ev_double;
    if !rental_report.ok {
        problems.extend(rental_report.problems.iter().cloned());
    }
    let s = &sh.stats;
    let wrong = told.violations.len();
    let pass = lost == 0
        && half == 0
        && double == 0
        && anomalies == 0
        && wrong == 0
        && ev_ok
        && rental_report.ok;
    println!();
    println!(
        "chaos report (seed {seed}, {} s of faults, wall {:.1} s)",
        duration.as_secs(),
        started.elapsed().as_secs_f64()
    );
    let row = |k: &str, v: String| println!("  {k:<26} {v}");
    row("kills (-9)", n(&s.kills).to_string());
    row("restarts", n(&s.restarts).to_string());
    row(
        "crash-point exits",
        format!("{} (other exits {})", n(&s.crash_exits), n(&s.other_exits)),
    );
    row(
        "requests tried",
        format!(
            "{} (rental {}, ev {})",
            n(&s.rental_tried) + n(&s.ev_tried),
            n(&s.rental_tried),
            n(&s.ev_tried)
        ),
    );
    row(
        "acknowledged",
        format!(
            "{} (rental {}, ev {}: {} reserved)",
            n(&s.rental_acked) + n(&s.ev_acked),
            n(&s.rental_acked),
            n(&s.ev_acked),
            n(&s.ev_reserved)
        ),
    );
    row("lost", format!("{lost} (must be 0)"));
    row("half-reserved routes", format!("{half} (must be 0)"));
    row("double bookings", format!("{double} (must be 0)"));
    row("anomalies", format!("{anomalies} (must be 0)"));
    row(
        "ev answers",
        format!(
            "{} to {} requests: {} reserved, {} rejected, {} failed, {} with no outcome; \
             {} requests retried, {} never told an outcome ({} decided per lookup)",
            told.attempts,
            told.requests,
            told.reserved,
            told.rejected,
            told.failed,
            told.indefinite,
            told.retried,
            told.no_outcome,
            told.decided_by_lookup
        ),
    );
    row(
        "ev told vs final state",
        format!(
            "{wrong} violations (must be 0) {:?}; lookups agreeing {}/{}",
            told.kinds(),
            told.lookups_agree,
            told.lookups
        ),
    );
    row("rental audit", rental_report.verdict.clone());
    row("ev audit", ev_line);
    for p in problems.iter().take(20) {
        println!("  - {p}");
    }
    println!(
        "chaos: {} — seed {seed}, {} kills, {lost} lost, {half} half-reserved routes, {double} double bookings, {anomalies} anomalies, {wrong} EV answers contradicted ({} answers to {} requests checked); rental audit {}, EV audit {}",
        if pass { "PASS" } else { "FAIL" },
        n(&s.kills),
        told.attempts,
        told.requests,
        if rental_report.ok { "PASS" } else { "FAIL" },
        if ev_ok { "PASS" } else { "FAIL" },
    );
    drop(d);
    if pass {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule() {
        let a = schedule(7, Duration::from_secs(30));
        assert_eq!(a, schedule(7, Duration::from_secs(30)));
        assert_ne!(a, schedule(8, Duration::from_secs(30)));
        assert!(a.len() >= 10, "{a:?}");
        assert!(a.iter().any(|e| matches!(e.action, Action::Armed { .. })));
        assert!(a
            .iter()
            .all(|e| e.at + Duration::from_secs(1) < Duration::from_secs(30)));
    }

    #[test]
    fn every_node_is_a_target() {
        let t = targets();
        assert_eq!(t.len(), 10);
        for (n, points) in &t {
            let has = *n == "backup" || n.starts_with("terminal-") || n.starts_with("company-");
            assert_eq!(!points.is_empty(), has, "{n}");
        }
    }
}
