//! The load: clients that drive the nodes as users would and record what
//! they were told, for [`super::verdict`].
//!
//! * Rental clients rent (random class, random terminal, request ids), hold
//!   the car a moment and return it; a pending rent is cancelled (or, if a
//!   car was handed to it meanwhile, claimed and returned). Every operation
//!   is retried with the *same* request id until a definite answer, so an
//!   acknowledgement is never ambiguous.
//! * EV vehicles ask for 3-stop routes (half of them from a small set of
//!   "hot" routes, so they contend), directly with `reserve` at a random
//!   company or through the broker; after an attempt with no outcome they
//!   retry the same request id (at a random company, a bounded number of
//!   times) and record every answer.

use super::driver::Addrs;
use super::ev_told::{Asked, Told};
use super::Stats;
use crate::ev::bus_client::BusClient;
use crate::ev::company::messages::RouteOutcome;
use crate::ev::points::{PointSet, Stop};
use crate::rental::fleet::Class;
use crate::runtime::client::{call, ClientConfig};
use crate::runtime::rng::Rng;
use crate::sync::lock;
use crate::tools::ev::cluster::COMPANIES;
use crate::wire::error::{Code, Error};
use crate::wire::message::{body, Body};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What the rental clients were told, for the final check.
#[derive(Default)]
pub struct RentalLedger {
    /// rent request id → (car, acked at, first return attempt at, return acked)
    pub rents: BTreeMap<String, RentRecord>,
    /// Cancels acknowledged (the request must end `cancelled`).
    pub cancels: Vec<String>,
    /// Definite refusals that should never happen (e.g. a return refused).
    pub anomalies: Vec<String>,
}

#[derive(Clone)]
pub struct RentRecord {
    pub car: String,
    pub acked_at: Instant,
    pub return_sent: Option<Instant>,
    /// Some(true) acked, Some(false) in doubt (gave up), None not tried.
    pub returned: Option<bool>,
}

/// What the load threads share: the counters, the stop signals, and every
/// answer the clients got.
pub struct Shared {
    pub stats: Stats,
    /// Load threads start no new operation after this.
    stop_load: AtomicBool,
    /// Operations still unanswered are given up at this instant (set at the end).
    give_up: Mutex<Option<Instant>>,
    pub rental: Mutex<RentalLedger>,
    /// Every route request and the answers its attempts got.
    pub ev: Mutex<Vec<Asked>>,
    pub addrs: Addrs,
}

impl Shared {
    pub fn new(addrs: Addrs) -> Shared {
        Shared {
            stats: Stats::default(),
            stop_load: AtomicBool::new(false),
            give_up: Mutex::new(None),
            rental: Mutex::new(RentalLedger::default()),
            ev: Mutex::new(Vec::new()),
            addrs,
        }
    }

    /// No new operation from now on; what is still unanswered `settle`
    /// from now is given up. Returns that instant.
    pub fn stop(&self, settle: Duration) -> Instant {
        self.stop_load.store(true, Ordering::SeqCst);
        let end = Instant::now() + settle;
        *lock(&self.give_up) = Some(end);
        end
    }

    fn stopping(&self) -> bool {
        self.stop_load.load(Ordering::SeqCst)
    }

    fn past_give_up(&self) -> bool {
        lock(&self.give_up).is_some_and(|t| Instant::now() >= t)
    }
}

/// Start the rental clients and the EV vehicles (seeded by `seed`).
pub fn start(sh: &Arc<Shared>, seed: u64, clients: usize, vehicles: usize) -> Vec<JoinHandle<()>> {
    let mut hot_rng = Rng::new(seed.wrapping_add(77));
    let set = PointSet::default_set();
    let hot: Arc<Vec<Vec<Stop>>> =
        Arc::new((0..12).map(|_| random_route(&set, &mut hot_rng)).collect());
    let mut load = Vec::new();
    for k in 0..clients {
        let s = sh.clone();
        load.push(thread::spawn(move || rental_client(s, k + 1, seed)));
    }
    for k in 0..vehicles {
        let s = sh.clone();
        let h = hot.clone();
        load.push(thread::spawn(move || vehicle(s, k + 1, seed, h)));
    }
    load
}

/// Wait for the load threads (after [`Shared::stop`], each ends by the
/// give-up time).
pub fn join(threads: Vec<JoinHandle<()>>) {
    for h in threads {
        let _ = h.join();
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
        let t = &sh.addrs.terminals[rng.below(sh.addrs.terminals.len() as u64) as usize];
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
    lock(&sh.rental).anomalies.push(what);
}

fn record_rent(sh: &Shared, rid: &str, car: &str) {
    lock(&sh.rental).rents.insert(
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
            lock(&sh.rental).cancels.push(rid.to_string());
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
    if let Some(r) = lock(&sh.rental).rents.get_mut(rid) {
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
    if let Some(r) = lock(&sh.rental).rents.get_mut(rid) {
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
        &sh.addrs.broker,
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
        lock(&sh.ev).push(asked);
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
                let answer = call(
                    &sh.addrs.companies[c],
                    "reserve",
                    body(req.clone()),
                    &w.direct,
                );
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
