//! The verdict: once the nodes are healed and quiet, what every client was
//! told is held to the final state. Lost acknowledged operations,
//! half-reserved routes, double bookings and anomalies must all be 0, both
//! audits must pass, and every answer an EV vehicle got must agree with the
//! final state, with the request's other answers and with `lookup`
//! ([`super::ev_told`]). The report ends in one PASS/FAIL line.

use super::ev_told::{self, Asked, EvVerdict, Held, Looked};
use super::load::{RentalLedger, Shared};
use super::{n, Stats};
use crate::runtime::client::{call, ClientConfig};
use crate::runtime::rng::Rng;
use crate::sync::lock;
use crate::tools::ev::audit as ev_audit;
use crate::tools::rental::audit as rental_audit;
use crate::wire::error::Error;
use crate::wire::message::body;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

/// What the checks found.
pub struct Verdict {
    lost: usize,
    half: usize,
    double: usize,
    anomalies: usize,
    told: EvVerdict,
    ev_ok: bool,
    /// The EV audit's lines, or why it could not run.
    ev_audit: String,
    rental_audit: rental_audit::Report,
    /// Every violation, for the report (it shows the first 20).
    problems: Vec<String>,
    /// What the run never did, so a PASS would claim it unchecked (no
    /// kill, no acknowledged rental, no EV answer): any of them fails it.
    unexercised: Vec<&'static str>,
}

impl Verdict {
    pub fn pass(&self) -> bool {
        self.lost == 0
            && self.half == 0
            && self.double == 0
            && self.anomalies == 0
            && self.told.violations.is_empty()
            && self.ev_ok
            && self.rental_audit.ok
            && self.unexercised.is_empty()
    }
}

/// What a run never did that its PASS would claim to have checked.
fn unexercised(s: &Stats, told: &EvVerdict) -> Vec<&'static str> {
    let mut out = Vec::new();
    if n(&s.kills) == 0 {
        out.push("no node was killed");
    }
    if n(&s.rental_acked) == 0 {
        out.push("no rental request was acknowledged");
    }
    if told.attempts == 0 {
        out.push("no EV answer was recorded");
    }
    out
}

/// Audit both systems and check every client's answers against the final
/// state; `settle_end` bounds the EV audit's wait (at least 5 s).
pub fn judge(sh: &Shared, seed: u64, settle_end: Instant) -> Verdict {
    let addrs = &sh.addrs;
    let left = settle_end
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(5));
    let ev_verdict = ev_audit::check(&addrs.companies, left);
    let rental_report = rental_audit::run(
        &addrs.backup,
        &addrs.heartbeat,
        20,
        Duration::from_millis(300),
    );
    let mut problems: Vec<String> = Vec::new();
    let cfg = ClientConfig::default().with_timeout(Duration::from_secs(5));
    let rl = lock(&sh.rental);
    let mut lost = rental_lost(
        &rl,
        &rental_report.backup,
        &addrs.backup,
        &cfg,
        &mut problems,
    );
    let mut double = double_bookings(&rl, &mut problems);
    for a in &rl.anomalies {
        problems.push(format!("anomaly: {a}"));
    }
    let anomalies = rl.anomalies.len();
    drop(rl);
    let told = ev_answers(sh, &cfg, seed);
    lost += told.lost;
    problems.extend(told.sample(4).into_iter().map(|p| format!("ev {p}")));
    let (ev_ok, ev_audit, half, ev_double) = match &ev_verdict {
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
    let unexercised = unexercised(&sh.stats, &told);
    Verdict {
        unexercised,
        lost,
        half,
        double,
        anomalies,
        told,
        ev_ok,
        ev_audit,
        rental_audit: rental_report,
        problems,
    }
}

/// Every acknowledged rental operation in the final state (`backup_state`:
/// the backup's state as the audit read it); returns how many are lost.
fn rental_lost(
    rl: &RentalLedger,
    backup_state: &Value,
    backup: &str,
    cfg: &ClientConfig,
    problems: &mut Vec<String>,
) -> usize {
    let mut lost = 0usize;
    let places = backup_state.get("places").cloned().unwrap_or(Value::Null);
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
    for rid in &rl.cancels {
        let st = call(
            backup,
            "check_pending",
            body(json!({"request_id": rid})),
            cfg,
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
    lost
}

/// Rental double booking: a car acked to a client while another client
/// held it (between its rent ack and the first attempt to return it).
fn double_bookings(rl: &RentalLedger, problems: &mut Vec<String>) -> usize {
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
    double
}

/// EV: every answer a vehicle got, against the final state and lookups.
fn ev_answers(sh: &Shared, cfg: &ClientConfig, seed: u64) -> EvVerdict {
    let asked = std::mem::take(&mut *lock(&sh.ev));
    let companies = &sh.addrs.companies;
    match final_state(companies, cfg) {
        Ok(held) => {
            let looked = lookups(companies, &asked, seed);
            ev_told::judge(&asked, &held, &looked)
        }
        Err(e) => EvVerdict {
            violations: vec![("state", format!("cannot read the final state: {e}"))],
            ..EvVerdict::default()
        },
    }
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

/// One report row: a name and its value, aligned.
fn row(k: &str, v: String) {
    println!("  {k:<26} {v}");
}

impl Verdict {
    /// The report: faults and load, each check, the first violations, and
    /// the one-line verdict.
    pub fn report(&self, s: &Stats, seed: u64, duration: Duration, started: Instant) {
        println!();
        println!(
            "chaos report (seed {seed}, {} s of faults, wall {:.1} s)",
            duration.as_secs(),
            started.elapsed().as_secs_f64()
        );
        faults_and_load(s);
        self.checks();
        for p in self.problems.iter().take(20) {
            println!("  - {p}");
        }
        let (lost, half, double, anomalies) = (self.lost, self.half, self.double, self.anomalies);
        let t = &self.told;
        if !self.unexercised.is_empty() {
            println!(
                "chaos: FAIL — the run exercised too little to judge: {} (seed {seed})",
                self.unexercised.join(", ")
            );
            return;
        }
        println!(
            "chaos: {} — seed {seed}, {} kills, {lost} lost, {half} half-reserved routes, {double} double bookings, {anomalies} anomalies, {} EV answers contradicted ({} answers to {} requests checked); rental audit {}, EV audit {}",
            if self.pass() { "PASS" } else { "FAIL" },
            n(&s.kills),
            t.violations.len(),
            t.attempts,
            t.requests,
            if self.rental_audit.ok { "PASS" } else { "FAIL" },
            if self.ev_ok { "PASS" } else { "FAIL" },
        );
    }

    /// The rows of the checks: what must be 0, the EV answers, the audits.
    fn checks(&self) {
        let t = &self.told;
        row("lost", format!("{} (must be 0)", self.lost));
        row("half-reserved routes", format!("{} (must be 0)", self.half));
        row("double bookings", format!("{} (must be 0)", self.double));
        row("anomalies", format!("{} (must be 0)", self.anomalies));
        row(
            "ev answers",
            format!(
                "{} to {} requests: {} reserved, {} rejected, {} failed, {} with no outcome; \
                 {} requests retried, {} never told an outcome ({} decided per lookup)",
                t.attempts,
                t.requests,
                t.reserved,
                t.rejected,
                t.failed,
                t.indefinite,
                t.retried,
                t.no_outcome,
                t.decided_by_lookup
            ),
        );
        row(
            "ev told vs final state",
            format!(
                "{} violations (must be 0) {:?}; lookups agreeing {}/{}",
                t.violations.len(),
                t.kinds(),
                t.lookups_agree,
                t.lookups
            ),
        );
        row("rental audit", self.rental_audit.verdict.clone());
        row("ev audit", self.ev_audit.clone());
    }
}

/// The rows of what the driver and the load did.
fn faults_and_load(s: &Stats) {
    row("kills (-9)", n(&s.kills).to_string());
    row("restarts", n(&s.restarts).to_string());
    row(
        "crash-point exits",
        format!("{} (other exits {})", n(&s.crash_exits), n(&s.other_exits)),
    );
    let (rental, ev) = (n(&s.rental_tried), n(&s.ev_tried));
    row(
        "requests tried",
        format!("{} (rental {rental}, ev {ev})", rental + ev),
    );
    let (rental, ev) = (n(&s.rental_acked), n(&s.ev_acked));
    let reserved = n(&s.ev_reserved);
    row(
        "acknowledged",
        format!(
            "{} (rental {rental}, ev {ev}: {reserved} reserved)",
            rental + ev
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_run_that_did_nothing_is_not_a_pass() {
        let (s, mut t) = (Stats::default(), EvVerdict::default());
        assert_eq!(unexercised(&s, &t).len(), 3);
        s.kills.store(1, Ordering::Relaxed);
        s.rental_acked.store(1, Ordering::Relaxed);
        assert_eq!(unexercised(&s, &t), ["no EV answer was recorded"]);
        t.attempts = 1;
        assert!(unexercised(&s, &t).is_empty());
    }
}
