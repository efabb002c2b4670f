//! The participant half of a company: its charging points, holds and
//! committed reservations, kept in a durable log (`participant.log`).
//!
//! # States of one transaction at one participant
//!
//! ```text
//!   (none) --prepare ok--> held --commit--> committed
//!                           |
//!                           +----abort----> (tombstone: aborted)
//! ```
//!
//! * `prepare` writes the hold durably *before* voting yes. A conflicting
//!   hold or reservation is a no vote (error 30), written nowhere.
//! * A hold is never dropped on its own: when it expires the participant
//!   asks the coordinator (`decision`) until it learns the outcome.
//! * Every step is idempotent by transaction id: a second prepare, commit
//!   or abort answers like the first.
//!
//! No lock is held across an fsync: a hold is first reserved in memory as
//! `Writing` (so a racing prepare already sees the conflict), then logged.

use super::messages::Prepare;
use crate::crash;
use crate::error::{Code, Error};
use crate::ev::points::{hhmm, overlaps, Point};
use crate::message::{body, Body};
use crate::wal::Wal;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldState {
    /// Reserved in memory, the hold record is being written.
    Writing,
    /// Durable hold; voted yes (or may have). In doubt until decided.
    Held,
    Committed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    pub txn: String,
    pub point: String,
    pub start: u32,
    pub end: u32,
    pub vehicle: String,
    pub coordinator: String,
    pub participants: Vec<String>,
    pub state: HoldState,
    #[serde(skip)]
    pub expires: Instant,
    /// Times we asked the coordinator for the outcome (blocking case).
    pub asked: u32,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Hold>,
    /// Txns per point, for conflict checks.
    by_point: HashMap<String, Vec<String>>,
    /// Aborted transactions: a late prepare for one of them is refused.
    aborted: HashSet<String>,
}

impl State {
    fn remove(&mut self, txn: &str) -> Option<Hold> {
        let h = self.entries.remove(txn)?;
        if let Some(v) = self.by_point.get_mut(&h.point) {
            v.retain(|t| t != txn);
        }
        Some(h)
    }

    fn insert(&mut self, h: Hold) {
        self.by_point
            .entry(h.point.clone())
            .or_default()
            .push(h.txn.clone());
        self.entries.insert(h.txn.clone(), h);
    }

    fn conflict(&self, point: &str, win: (u32, u32)) -> Option<&Hold> {
        self.by_point
            .get(point)?
            .iter()
            .filter_map(|t| self.entries.get(t))
            .find(|h| overlaps((h.start, h.end), win))
    }
}

pub struct Participant {
    name: String,
    points: BTreeMap<String, Point>,
    wal: Wal,
    st: Mutex<State>,
    expiry: Duration,
}

pub const CRASH_POINTS: [(&str, &str); 6] = [
    (
        "company.prepare.before_log",
        "participant got a prepare, nothing written",
    ),
    (
        "company.prepare.after_log",
        "hold durable, yes vote not yet sent",
    ),
    (
        "company.commit.before_log",
        "participant got commit, not yet logged",
    ),
    (
        "company.commit.after_log",
        "commit durable, ack not yet sent",
    ),
    (
        "company.abort.before_log",
        "participant got abort, not yet logged",
    ),
    ("company.abort.after_log", "abort durable, ack not yet sent"),
];

impl Participant {
    /// Open the log and rebuild holds and reservations from it. Every hold
    /// without an outcome is in doubt and due for a `decision` at once.
    pub fn open(
        name: &str,
        points: Vec<Point>,
        wal: Wal,
        records: &[Value],
        expiry: Duration,
    ) -> Participant {
        let mut st = State::default();
        for r in records {
            let txn = r["txn"].as_str().unwrap_or_default().to_string();
            match r["k"].as_str() {
                Some("hold") => {
                    if let Ok(p) = serde_json::from_value::<Prepare>(r.clone()) {
                        st.remove(&p.txn);
                        st.insert(hold_from(&p, HoldState::Held, Instant::now()));
                    }
                }
                Some("commit") => {
                    if let Some(h) = st.entries.get_mut(&txn) {
                        h.state = HoldState::Committed;
                    }
                }
                Some("abort") => {
                    st.remove(&txn);
                    st.aborted.insert(txn);
                }
                _ => log::warn!("{name}: unknown participant record {r}"),
            }
        }
        let in_doubt = st
            .entries
            .values()
            .filter(|h| h.state == HoldState::Held)
            .count();
        if in_doubt > 0 {
            log::info!("{name}: restored {in_doubt} in-doubt hold(s); asking their coordinators");
        }
        Participant {
            name: name.to_string(),
            points: points.into_iter().map(|p| (p.id.clone(), p)).collect(),
            wal,
            st: Mutex::new(st),
            expiry,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log(&self, rec: &Value) -> Result<(), Error> {
        self.wal.append(rec).map_err(|e| {
            log::error!("{}: participant log write failed: {e}", self.name);
            Error::unavailable(format!("reservation log unavailable: {e}"))
        })
    }

    /// Phase 1. Ok = yes vote (the hold is durable). Err = no vote.
    pub fn prepare(&self, p: &Prepare) -> Result<Body, Error> {
        if !self.points.contains_key(&p.point) {
            return Err(Error::not_found(format!(
                "company {} has no point '{}'",
                self.name, p.point
            )));
        }
        if p.start >= p.end {
            return Err(Error::malformed("window must have start < end"));
        }
        {
            let mut st = self.lock();
            if st.aborted.contains(&p.txn) {
                return Err(Error::new(
                    Code::Abort,
                    format!("transaction {} was already aborted here", p.txn),
                ));
            }
            if let Some(h) = st.entries.get(&p.txn) {
                return match h.state {
                    HoldState::Writing => Err(Error::unavailable(format!(
                        "prepare of {} is being written; retry",
                        p.txn
                    ))),
                    // Idempotent: the same vote again.
                    _ => Ok(self.vote(h)),
                };
            }
            if let Some(h) = st.conflict(&p.point, (p.start, p.end)) {
                return Err(Error::conflict(format!(
                    "{} {}-{} is taken: overlaps {}-{} {} by another route",
                    p.point,
                    hhmm(p.start),
                    hhmm(p.end),
                    hhmm(h.start),
                    hhmm(h.end),
                    if h.state == HoldState::Committed {
                        "reserved"
                    } else {
                        "held"
                    }
                )));
            }
            st.insert(hold_from(
                p,
                HoldState::Writing,
                Instant::now() + self.expiry,
            ));
        }
        crash::point("company.prepare.before_log");
        let mut rec = serde_json::to_value(p).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut rec {
            m.insert("k".into(), json!("hold"));
        }
        if let Err(e) = self.log(&rec) {
            self.lock().remove(&p.txn);
            return Err(e);
        }
        crash::point("company.prepare.after_log");
        let mut st = self.lock();
        let aborted_meanwhile = st.aborted.contains(&p.txn);
        let Some(h) = st.entries.get_mut(&p.txn) else {
            return Err(Error::new(
                Code::Abort,
                format!("{} aborted meanwhile", p.txn),
            ));
        };
        h.state = HoldState::Held;
        let reply = self.vote(h);
        drop(st);
        if aborted_meanwhile {
            // An abort overtook our own prepare (the coordinator gave up on
            // us): the hold is logged, so log the abort after it too.
            let _ = self.abort(&p.txn);
            return Err(Error::new(
                Code::Abort,
                format!("{} aborted meanwhile", p.txn),
            ));
        }
        Ok(reply)
    }

    fn vote(&self, h: &Hold) -> Body {
        body(json!({
            "txn": h.txn,
            "vote": "yes",
            "state": h.state,
            "expires_in_ms": h.expires.saturating_duration_since(Instant::now()).as_millis() as u64,
        }))
    }

    /// Phase 2, commit. Durable before the ack.
    pub fn commit(&self, txn: &str) -> Result<Body, Error> {
        {
            let st = self.lock();
            match st.entries.get(txn).map(|h| h.state) {
                Some(HoldState::Committed) => return Ok(outcome(txn, "committed")),
                Some(HoldState::Held) => {}
                Some(HoldState::Writing) => {
                    return Err(Error::unavailable(format!(
                        "{txn}: hold still being written"
                    )))
                }
                None if st.aborted.contains(txn) => {
                    log::error!(
                        "{}: commit for aborted {txn}: protocol violation",
                        self.name
                    );
                    return Err(Error::new(
                        Code::PreconditionFailed,
                        format!("{txn} was aborted here; cannot commit"),
                    ));
                }
                None => return Err(Error::not_found(format!("no hold for {txn}"))),
            }
        }
        crash::point("company.commit.before_log");
        self.log(&json!({"k": "commit", "txn": txn}))?;
        crash::point("company.commit.after_log");
        if let Some(h) = self.lock().entries.get_mut(txn) {
            h.state = HoldState::Committed;
        }
        Ok(outcome(txn, "committed"))
    }

    /// Phase 2, abort. Unknown transactions are aborted too (a tombstone),
    /// so a prepare that arrives after its abort is refused.
    pub fn abort(&self, txn: &str) -> Result<Body, Error> {
        {
            let mut st = self.lock();
            match st.entries.get(txn).map(|h| h.state) {
                Some(HoldState::Committed) => {
                    log::error!(
                        "{}: abort for committed {txn}: protocol violation",
                        self.name
                    );
                    return Err(Error::new(
                        Code::PreconditionFailed,
                        format!("{txn} is committed here; cannot abort"),
                    ));
                }
                Some(HoldState::Writing) => {
                    // The prepare thread finishes the abort once its hold
                    // record is written (see prepare).
                    st.aborted.insert(txn.to_string());
                    return Ok(outcome(txn, "aborted"));
                }
                Some(HoldState::Held) => {}
                None => {
                    st.aborted.insert(txn.to_string());
                    return Ok(outcome(txn, "aborted"));
                }
            }
        }
        crash::point("company.abort.before_log");
        self.log(&json!({"k": "abort", "txn": txn}))?;
        crash::point("company.abort.after_log");
        let mut st = self.lock();
        st.remove(txn);
        st.aborted.insert(txn.to_string());
        Ok(outcome(txn, "aborted"))
    }

    /// Held (in-doubt) transactions whose hold expired: (txn, coordinator).
    /// Their next expiry is pushed back by `every` so they are asked once
    /// per round.
    pub fn due_for_decision(&self, every: Duration) -> Vec<(String, String)> {
        let now = Instant::now();
        let mut st = self.lock();
        let mut due = Vec::new();
        for h in st.entries.values_mut() {
            if h.state == HoldState::Held && h.expires <= now {
                h.expires = now + every;
                h.asked += 1;
                due.push((h.txn.clone(), h.coordinator.clone()));
            }
        }
        due
    }

    /// `reservations`: committed reservations and current holds.
    pub fn reservations(&self) -> Body {
        let st = self.lock();
        let mut res: Vec<&Hold> = st
            .entries
            .values()
            .filter(|h| h.state == HoldState::Committed)
            .collect();
        res.sort_by(|a, b| (&a.point, a.start, &a.txn).cmp(&(&b.point, b.start, &b.txn)));
        let mut holds: Vec<&Hold> = st
            .entries
            .values()
            .filter(|h| h.state != HoldState::Committed)
            .collect();
        holds.sort_by(|a, b| a.txn.cmp(&b.txn));
        let view = |h: &&Hold| {
            json!({"txn": h.txn, "point": h.point, "start": h.start, "end": h.end,
                   "vehicle": h.vehicle, "participants": h.participants})
        };
        let hold_view = |h: &&Hold| {
            json!({"txn": h.txn, "point": h.point, "start": h.start, "end": h.end,
                   "coordinator": h.coordinator, "asked": h.asked})
        };
        body(json!({
            "company": self.name,
            "reservations": res.iter().map(view).collect::<Vec<_>>(),
            "holds": holds.iter().map(hold_view).collect::<Vec<_>>(),
        }))
    }

    /// `availability`: every point (or one) with its busy and free windows
    /// inside `[from, to)`.
    pub fn availability(&self, point: Option<&str>, from: u32, to: u32) -> Result<Body, Error> {
        if from >= to {
            return Err(Error::malformed("need from < to"));
        }
        if let Some(p) = point {
            if !self.points.contains_key(p) {
                return Err(Error::not_found(format!(
                    "company {} has no point '{p}'",
                    self.name
                )));
            }
        }
        let st = self.lock();
        let mut out = Vec::new();
        for (id, p) in &self.points {
            if point.is_some_and(|want| want != id) {
                continue;
            }
            let mut busy: Vec<(u32, u32)> = st
                .by_point
                .get(id)
                .into_iter()
                .flatten()
                .filter_map(|t| st.entries.get(t))
                .filter(|h| overlaps((h.start, h.end), (from, to)))
                .map(|h| (h.start, h.end))
                .collect();
            busy.sort_unstable();
            let mut free = Vec::new();
            let mut at = from;
            for (s, e) in &busy {
                if *s > at {
                    free.push([at, *s]);
                }
                at = at.max(*e);
            }
            if at < to {
                free.push([at, to]);
            }
            out.push(json!({"point": id, "city": p.city,
                            "busy": busy.iter().map(|(s, e)| [*s, *e]).collect::<Vec<_>>(),
                            "free": free}));
        }
        Ok(body(
            json!({"company": self.name, "from": from, "to": to, "points": out}),
        ))
    }

    pub fn status(&self) -> Value {
        let st = self.lock();
        let count = |s: HoldState| st.entries.values().filter(|h| h.state == s).count();
        let (appends, fsyncs) = self.wal.stats();
        json!({
            "points": self.points.len(),
            "reservations": count(HoldState::Committed),
            "holds_in_doubt": count(HoldState::Held),
            "holds_writing": count(HoldState::Writing),
            "aborted": st.aborted.len(),
            "log": {"records": appends, "fsyncs": fsyncs},
        })
    }
}

fn hold_from(p: &Prepare, state: HoldState, expires: Instant) -> Hold {
    Hold {
        txn: p.txn.clone(),
        point: p.point.clone(),
        start: p.start,
        end: p.end,
        vehicle: p.vehicle.clone(),
        coordinator: p.coordinator.clone(),
        participants: p.participants.clone(),
        state,
        expires,
        asked: 0,
    }
}

fn outcome(txn: &str, state: &str) -> Body {
    body(json!({"txn": txn, "state": state}))
}
