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
//! * `commit` and `abort` queue their record and answer without waiting
//!   for its fsync: the coordinator keeps the decision durably and answers
//!   `decision` for it, which is all a participant that lost the record in
//!   a crash needs (protocol.md, rule 6).
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
use crate::ev::points::{hhmm, Point};
use crate::message::{body, Body, Request};
use crate::server::Ctx;
use crate::wal::Wal;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
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
    /// While `Writing`: the log ticket of the hold record.
    #[serde(skip)]
    pub ticket: u64,
    /// Times we asked the coordinator for the outcome (blocking case).
    pub asked: u32,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Hold>,
    /// Holds and reservations of each point, ordered by start: a conflict
    /// check is a range query (O(log n)), not a scan of every reservation
    /// the point ever had (the scan made prepare cost grow with history).
    by_point: HashMap<String, PointBook>,
    /// Transactions not (yet) committed here: the only ones a decision
    /// round has to look at.
    open: HashSet<String>,
    /// Aborted transactions: a late prepare for one of them is refused.
    aborted: Tombstones,
}

/// Most tombstones kept (about 100 bytes each). A transaction gets one at
/// every participant that was asked about it and aborted it, so under
/// heavy contention (most requests lose) an unbounded set grew by every
/// lost race. Forgetting the oldest is safe: a prepare that arrives after
/// its abort was forgotten only takes a hold, which expires and asks the
/// coordinator, and the coordinator answers abort (presumed abort). The cost
/// is that point blocked until the hold expires, for a message delayed past
/// 100,000 later aborts.
pub const MAX_TOMBSTONES: usize = 100_000;

/// The aborted transactions, oldest first out.
#[derive(Default)]
struct Tombstones {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Tombstones {
    fn contains(&self, txn: &str) -> bool {
        self.set.contains(txn)
    }

    fn insert(&mut self, txn: String) {
        if self.set.insert(txn.clone()) {
            self.order.push_back(txn);
        }
        while self.order.len() > MAX_TOMBSTONES {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    fn len(&self) -> usize {
        self.order.len()
    }
}

/// One point's windows: (start, txn) → end, plus the longest window ever
/// booked, which bounds how far back an overlapping window can start.
#[derive(Default)]
struct PointBook {
    by_start: BTreeMap<(u32, String), u32>,
    longest: u32,
}

impl PointBook {
    /// Windows overlapping `[from, to)`, in start order.
    fn overlapping(&self, (from, to): (u32, u32)) -> impl Iterator<Item = (u32, u32, &str)> {
        let earliest = from.saturating_sub(self.longest);
        self.by_start
            .range((earliest, String::new())..(to, String::new()))
            .filter(move |(_, end)| **end > from)
            .map(|((start, txn), end)| (*start, *end, txn.as_str()))
    }
}

impl State {
    /// Apply one record of the log (on open).
    fn restore(&mut self, name: &str, r: Value) {
        let txn = r["txn"].as_str().unwrap_or_default().to_string();
        match r["k"].as_str() {
            Some("hold") => {
                if let Ok(p) = serde_json::from_value::<Prepare>(r) {
                    self.remove(&p.txn);
                    self.insert(hold_from(&p, HoldState::Held, Instant::now()));
                }
            }
            Some("commit") => self.set_state(&txn, HoldState::Committed),
            Some("abort") => {
                self.remove(&txn);
                self.aborted.insert(txn);
            }
            _ => log::warn!("{name}: unknown participant record {r}"),
        }
    }

    fn remove(&mut self, txn: &str) -> Option<Hold> {
        let h = self.entries.remove(txn)?;
        if let Some(b) = self.by_point.get_mut(&h.point) {
            b.by_start.remove(&(h.start, h.txn.clone()));
        }
        self.open.remove(txn);
        Some(h)
    }

    fn insert(&mut self, h: Hold) {
        let b = self.by_point.entry(h.point.clone()).or_default();
        b.by_start.insert((h.start, h.txn.clone()), h.end);
        b.longest = b.longest.max(h.end.saturating_sub(h.start));
        if h.state != HoldState::Committed {
            self.open.insert(h.txn.clone());
        }
        self.entries.insert(h.txn.clone(), h);
    }

    fn set_state(&mut self, txn: &str, state: HoldState) {
        if let Some(h) = self.entries.get_mut(txn) {
            h.state = state;
            if state == HoldState::Committed {
                self.open.remove(txn);
            }
        }
    }

    fn conflict(&self, point: &str, win: (u32, u32)) -> Option<&Hold> {
        let (_, _, txn) = self.by_point.get(point)?.overlapping(win).next()?;
        self.entries.get(txn)
    }
}

/// What [`Participant::hold`] did.
pub enum Hold1 {
    /// The hold is taken and its record queued: confirm with this ticket.
    Writing(u64),
    /// A repeated prepare for a hold already durable: this is the vote.
    Voted(Body),
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
        "commit record queued (durable with the next fsync), ack not yet sent",
    ),
    (
        "company.abort.before_log",
        "participant got abort, not yet logged",
    ),
    (
        "company.abort.after_log",
        "abort record queued (durable with the next fsync), ack not yet sent",
    ),
];

impl Participant {
    /// Open the log and rebuild holds and reservations from it. Every hold
    /// without an outcome is in doubt and due for a `decision` at once.
    pub fn open(
        name: &str,
        points: Vec<Point>,
        log: &Path,
        expiry: Duration,
    ) -> io::Result<Participant> {
        let mut st = State::default();
        let (wal, _) = Wal::open(log, |r| st.restore(name, r))?;
        let in_doubt = st.open.len();
        if in_doubt > 0 {
            log::info!("{name}: restored {in_doubt} in-doubt hold(s); asking their coordinators");
        }
        Ok(Participant {
            name: name.to_string(),
            points: points.into_iter().map(|p| (p.id.clone(), p)).collect(),
            wal,
            st: Mutex::new(st),
            expiry,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a record behind everything already queued (no fsync wait).
    fn queue(&self, rec: &Value) -> Result<(), Error> {
        self.wal
            .enqueue(std::slice::from_ref(rec))
            .map(|_| ())
            .map_err(|e| self.log_failed(e))
    }

    /// 11 if the log refused the write (nothing written), 13 if it failed.
    fn log_failed(&self, e: std::io::Error) -> Error {
        log::error!("{}: participant log write failed: {e}", self.name);
        crate::wal::client_error(&e)
    }

    /// Phase 1. Ok = yes vote (the hold is durable). Err = no vote.
    pub fn prepare(&self, p: &Prepare) -> Result<Body, Error> {
        match self.hold(p)? {
            Hold1::Voted(b) => Ok(b),
            Hold1::Writing(ticket) => self.confirm(&p.txn, ticket),
        }
    }

    /// Phase 1, first half: check the window and take the hold in memory
    /// (so a racing prepare for the same window is refused from now on),
    /// and queue its record. The vote is [`Participant::confirm`], once the
    /// record is durable. A coordinator that is itself the first stop's
    /// participant sends the other prepares between the two halves, so the
    /// hold's fsync overlaps their round trips without giving up the
    /// canonical order in which holds are taken.
    pub fn hold(&self, p: &Prepare) -> Result<Hold1, Error> {
        if !self.points.contains_key(&p.point) {
            return Err(Error::not_found(format!(
                "company {} has no point '{}'",
                self.name, p.point
            )));
        }
        if p.start >= p.end {
            return Err(Error::malformed("window must have start < end"));
        }
        let mut st = self.lock();
        if st.aborted.contains(&p.txn) {
            return Err(Error::new(
                Code::Abort,
                format!("transaction {} was already aborted here", p.txn),
            ));
        }
        if let Some(h) = st.entries.get(&p.txn) {
            return match h.state {
                // Its record is queued: the vote comes once it is durable.
                HoldState::Writing => Ok(Hold1::Writing(h.ticket)),
                // Idempotent: the same vote again.
                _ => Ok(Hold1::Voted(self.vote(h))),
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
        crash::point("company.prepare.before_log");
        let mut rec = serde_json::to_value(p).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut rec {
            m.insert("k".into(), json!("hold"));
        }
        // Queued under the state lock: records reach the log in the order
        // the state changed (a later commit or abort never precedes it).
        match self.wal.enqueue(&[rec]) {
            Ok(ticket) => {
                if let Some(h) = st.entries.get_mut(&p.txn) {
                    h.ticket = ticket;
                }
                Ok(Hold1::Writing(ticket))
            }
            Err(e) => {
                st.remove(&p.txn);
                Err(self.log_failed(e))
            }
        }
    }

    /// Phase 1 for a peer's request: like [`Participant::prepare`], but the
    /// vote is sent from whichever thread makes the hold durable
    /// (`Wal::after`), so the connection thread does not sleep through the
    /// fsync (see [`Ctx::defer`]).
    pub fn prepare_later(
        self: &Arc<Self>,
        p: &Prepare,
        req: &Request,
        ctx: &Ctx,
    ) -> Result<Body, Error> {
        match self.hold(p)? {
            Hold1::Voted(b) => Ok(b),
            Hold1::Writing(ticket) => {
                let later = ctx.defer(req);
                let (me, txn) = (self.clone(), p.txn.clone());
                self.wal.after(
                    ticket,
                    Box::new(move |durable| later.send(me.voted(&txn, durable))),
                );
                Ok(Body::new())
            }
        }
    }

    /// Phase 1, second half: wait until the hold queued by
    /// [`Participant::hold`] is durable, then vote yes.
    pub fn confirm(&self, txn: &str, ticket: u64) -> Result<Body, Error> {
        self.voted(txn, self.wal.wait(ticket))
    }

    /// The vote once the hold's record is `durable` (or the log failed).
    /// Never waits for the log: it may run on the thread that syncs it.
    fn voted(&self, txn: &str, durable: std::io::Result<()>) -> Result<Body, Error> {
        if let Err(e) = durable {
            self.lock().remove(txn);
            return Err(self.log_failed(e));
        }
        crash::point("company.prepare.after_log");
        let mut st = self.lock();
        let aborted_meanwhile = st.aborted.contains(txn);
        // Only Writing → Held: another confirm of the same hold (a retried
        // prepare's) may have voted already, and the hold may even be
        // committed since.
        if st.entries.get(txn).map(|h| h.state) == Some(HoldState::Writing) {
            st.set_state(txn, HoldState::Held);
        }
        let Some(h) = st.entries.get(txn) else {
            return Err(Error::new(Code::Abort, format!("{txn} aborted meanwhile")));
        };
        let reply = self.vote(h);
        drop(st);
        if aborted_meanwhile {
            // An abort overtook our own prepare (the coordinator gave up on
            // us): the hold is logged, so log the abort after it too.
            let _ = self.abort(txn);
            return Err(Error::new(Code::Abort, format!("{txn} aborted meanwhile")));
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

    /// Phase 2, commit. The record is queued, not waited for (see below).
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
        // The commit record is queued, not waited for: it reaches the disk
        // with the next fsync of this log. The decision is already durable
        // at the coordinator, which answers `decision` for every
        // transaction it ever decided; a participant that loses this record
        // in a crash restarts with the hold in doubt and asks again.
        crash::point("company.commit.before_log");
        {
            let mut st = self.lock();
            self.queue(&json!({"k": "commit", "txn": txn}))?;
            st.set_state(txn, HoldState::Committed);
        }
        crash::point("company.commit.after_log");
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
        // Queued, not waited for (presumed abort): a participant that loses
        // this record asks the coordinator, which answers abort.
        crash::point("company.abort.before_log");
        {
            let mut st = self.lock();
            self.queue(&json!({"k": "abort", "txn": txn}))?;
            st.remove(txn);
            st.aborted.insert(txn.to_string());
        }
        crash::point("company.abort.after_log");
        Ok(outcome(txn, "aborted"))
    }

    /// `decide`: commit and abort several transactions (each exactly as
    /// its own `commit`/`abort` would). The reply lists what was done and
    /// what failed, with each failure's error code.
    pub fn decide(&self, commit: &[String], abort: &[String]) -> Body {
        let mut done = (Vec::new(), Vec::new(), Vec::new());
        for (txns, is_commit) in [(commit, true), (abort, false)] {
            for t in txns {
                let r = if is_commit {
                    self.commit(t)
                } else {
                    self.abort(t)
                };
                match r {
                    Ok(_) if is_commit => done.0.push(t.clone()),
                    Ok(_) => done.1.push(t.clone()),
                    Err(e) => done
                        .2
                        .push(json!({"txn": t, "code": e.code.number(), "text": e.text})),
                }
            }
        }
        body(json!({"committed": done.0, "aborted": done.1, "failed": done.2}))
    }

    /// Held (in-doubt) transactions whose hold expired: (txn, coordinator).
    /// Their next expiry is pushed back by `every` so they are asked once
    /// per round.
    pub fn due_for_decision(&self, every: Duration) -> Vec<(String, String)> {
        let now = Instant::now();
        let mut st = self.lock();
        let State { open, entries, .. } = &mut *st;
        let mut due = Vec::new();
        for t in open.iter() {
            let Some(h) = entries.get_mut(t) else {
                continue;
            };
            if h.state == HoldState::Held && h.expires <= now {
                h.expires = now + every;
                h.asked += 1;
                due.push((h.txn.clone(), h.coordinator.clone()));
            }
        }
        due
    }

    /// `reservations`: committed reservations (a page of at most `limit`
    /// from `offset`, in (point, start, txn) order) and every current hold.
    /// A reply that stops short says where the next page starts
    /// (`next_offset`): the whole history would not fit in one frame.
    pub fn reservations(&self, offset: usize, limit: usize) -> Body {
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
        let total = res.len();
        let page: Vec<Value> = res.iter().skip(offset).take(limit).map(view).collect();
        let next = offset.saturating_add(page.len());
        let mut out = body(json!({
            "company": self.name,
            "reservations": page,
            "holds": holds.iter().map(hold_view).collect::<Vec<_>>(),
        }));
        if next < total {
            out.insert("next_offset".into(), json!(next));
        }
        out
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
            let busy: Vec<(u32, u32)> = st
                .by_point
                .get(id)
                .into_iter()
                .flat_map(|b| b.overlapping((from, to)))
                .map(|(s, e, _)| (s, e))
                .collect();
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
        let count = |s: HoldState| {
            if s == HoldState::Committed {
                return st.entries.len() - st.open.len();
            }
            st.open
                .iter()
                .filter_map(|t| st.entries.get(t))
                .filter(|h| h.state == s)
                .count()
        };
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
        ticket: 0,
    }
}

fn outcome(txn: &str, state: &str) -> Body {
    body(json!({"txn": txn, "state": state}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ev::points::PointSet;

    fn participant(name: &str) -> Participant {
        let dir = crate::launch::temp_dir(&format!("participant-{name}"));
        let points = PointSet::default_set().of_company("B").cloned().collect();
        Participant::open(
            "B",
            points,
            &dir.join("participant.log"),
            Duration::from_secs(60),
        )
        .unwrap()
    }

    fn prep(txn: &str) -> Prepare {
        Prepare {
            txn: txn.into(),
            coordinator: "A".into(),
            point: "B-REC-1".into(),
            start: 600,
            end: 660,
            vehicle: "v1".into(),
            participants: vec!["A".into(), "B".into()],
        }
    }

    fn state_of(p: &Participant, txn: &str) -> Option<HoldState> {
        p.lock().entries.get(txn).map(|h| h.state)
    }

    /// Found by the bench (with an "early prepare" experiment, since
    /// dropped): a first confirm finishing after a retried prepare voted and
    /// the commit arrived set the hold back to held, leaving a committed
    /// route half-reserved in memory.
    #[test]
    fn a_late_confirm_never_undoes_a_commit() {
        let p = participant("late-confirm");
        let Ok(Hold1::Writing(ticket)) = p.hold(&prep("t1")) else {
            panic!("a fresh hold is being written");
        };
        assert_eq!(state_of(&p, "t1"), Some(HoldState::Writing));
        // A retried prepare waits for the same record, then votes.
        let vote = p.prepare(&prep("t1")).unwrap();
        assert_eq!(vote["vote"], "yes");
        p.commit("t1").unwrap();
        // The first prepare's own confirm comes last.
        let late = p.confirm("t1", ticket).unwrap();
        assert_eq!(late["state"], "committed");
        assert_eq!(state_of(&p, "t1"), Some(HoldState::Committed));
        assert_eq!(p.due_for_decision(Duration::ZERO), vec![]);
    }

    /// An abort that overtakes a hold being written wins once it is written.
    #[test]
    fn an_abort_during_writing_is_applied_after_the_record() {
        let p = participant("abort-writing");
        let Ok(Hold1::Writing(ticket)) = p.hold(&prep("t2")) else {
            panic!("a fresh hold is being written");
        };
        p.abort("t2").unwrap();
        assert!(
            p.confirm("t2", ticket).is_err(),
            "no yes vote after an abort"
        );
        assert_eq!(state_of(&p, "t2"), None);
        assert!(p.prepare(&prep("t2")).is_err(), "stays aborted");
    }

    /// Tombstones are bounded: the oldest go first, and a prepare for a
    /// forgotten abort takes a hold again (which would expire and ask).
    #[test]
    fn the_oldest_tombstones_are_forgotten_past_the_bound() {
        let p = participant("tombstones");
        for i in 0..MAX_TOMBSTONES + 3 {
            p.abort(&format!("x{i}")).unwrap();
        }
        assert_eq!(p.lock().aborted.len(), MAX_TOMBSTONES);
        let refused = p.prepare(&prep(&format!("x{}", MAX_TOMBSTONES + 2)));
        assert_eq!(refused.unwrap_err().code, Code::Abort);
        let again = p.prepare(&prep("x0")).unwrap();
        assert_eq!(again["vote"], "yes", "{again:?}");
    }
}
