//! The participant's rules: its points, holds and reservations. See
//! [`super`] for the rules' numbers.
//!
//! ```text
//!   (none) --prepare, hold durable--> held --commit--> committed
//!                                       |
//!                                       +----abort----> (tombstone: aborted)
//! ```
//!
//! * `prepare` takes the hold in memory at once (a racing prepare sees it)
//!   and votes yes once its record is durable (rule 3). A conflict is a no.
//! * `commit` and `abort` queue their record and answer at once: the
//!   coordinator keeps the decision and answers `decision` for it.
//! * A hold is never dropped alone: expired, it asks its coordinator until
//!   it learns the outcome (the blocking case).
//! * Every step is idempotent by transaction id.

use super::{parse_txn, reply, Action, Answer, Msg, PartRecord, ReplyTo, Rules, Timing};
use crate::ev::company::messages::Prepare;
use crate::ev::points::hhmm;
use crate::wire::error::{Code, Error};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldState {
    /// Taken in memory, its record being forced: racing prepares see it.
    Writing,
    /// Durable, voted yes: in doubt until decided.
    Held,
    Committed,
}

/// A hold or reservation of one of our points.
#[derive(Debug, Clone)]
pub struct Hold {
    pub txn: String,
    pub point: String,
    pub start: u32,
    pub end: u32,
    pub vehicle: String,
    pub coordinator: String,
    pub participants: Vec<String>,
    pub state: HoldState,
    /// When an undecided hold asks its coordinator (again).
    pub expires: u64,
    /// Times asked (the blocking case shows here).
    pub asked: u32,
}

/// What [`Participant::prepare`] did at once.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// A no vote.
    Refused(Error),
    /// The hold is taken and its record is being forced: the yes vote is a
    /// [`Action::Reply`] to `from` once [`Participant::forced`].
    Writing,
    /// Voted yes already (a retried prepare, or rule 3 off).
    Voted(Answer),
}

/// Most tombstones kept (about 100 bytes each). Forgetting the oldest is
/// safe: a prepare that arrives after its abort was forgotten only takes a
/// hold, which expires and asks, and the coordinator answers abort.
pub const MAX_TOMBSTONES: usize = 100_000;

/// Aborted transactions (a late prepare is refused), oldest first out.
#[derive(Default)]
struct Tombstones {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Tombstones {
    fn contains(&self, txn: &str) -> bool {
        self.set.contains(txn)
    }

    fn insert(&mut self, txn: &str) {
        if self.set.insert(txn.to_string()) {
            self.order.push_back(txn.to_string());
        }
        while self.order.len() > MAX_TOMBSTONES {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// One point's windows: (start, txn) → end, and the longest window ever
/// booked (it bounds how far back an overlapping window can start), so a
/// conflict check is a range query, not a scan of the point's history.
#[derive(Default)]
struct PointBook {
    by_start: BTreeMap<(u32, String), u32>,
    longest: u32,
}

impl PointBook {
    fn overlapping(&self, from: u32, to: u32) -> impl Iterator<Item = (u32, u32, &str)> {
        let earliest = from.saturating_sub(self.longest);
        self.by_start
            .range((earliest, String::new())..(to, String::new()))
            .filter(move |(_, end)| **end > from)
            .map(|((start, txn), end)| (*start, *end, txn.as_str()))
    }
}

pub struct Participant {
    name: String,
    points: BTreeSet<String>,
    rules: Rules,
    timing: Timing,
    holds: HashMap<String, Hold>,
    by_point: HashMap<String, PointBook>,
    /// Holds not committed (the only ones a tick looks at).
    open: BTreeSet<String>,
    /// Holds being written: who waits for their vote.
    voting: HashMap<String, Vec<ReplyTo>>,
    aborted: Tombstones,
}

impl Participant {
    pub fn new(name: &str, points: &[String], rules: Rules, timing: Timing) -> Participant {
        Participant {
            name: name.to_string(),
            points: points.iter().cloned().collect(),
            rules,
            timing,
            holds: HashMap::new(),
            by_point: HashMap::new(),
            open: BTreeSet::new(),
            voting: HashMap::new(),
            aborted: Tombstones::default(),
        }
    }

    /// Phase 1: hold `p`'s point and window for its transaction.
    pub fn prepare(
        &mut self,
        now: u64,
        from: ReplyTo,
        p: &Prepare,
        out: &mut Vec<Action>,
    ) -> Prepared {
        if let Err(e) = self.check(p) {
            return Prepared::Refused(e);
        }
        if self.aborted.contains(&p.txn) {
            let e = Error::new(
                Code::Abort,
                format!("transaction {} was already aborted here", p.txn),
            );
            return Prepared::Refused(e);
        }
        if self.holds.contains_key(&p.txn) {
            return self.prepare_again(now, from, p);
        }
        if let Some(e) = self.conflict(p) {
            return Prepared::Refused(e);
        }
        self.hold_new(now, from, p, out)
    }

    /// A retried prepare of a transaction held here: the same vote — for
    /// the same stop only.
    fn prepare_again(&mut self, now: u64, from: ReplyTo, p: &Prepare) -> Prepared {
        let Some(h) = self.holds.get(&p.txn) else {
            return Prepared::Refused(Error::crash("hold vanished"));
        };
        let same = (
            &h.point,
            h.start,
            h.end,
            &h.vehicle,
            &h.coordinator,
            &h.participants,
        ) == (
            &p.point,
            p.start,
            p.end,
            &p.vehicle,
            &p.coordinator,
            &p.participants,
        );
        if !same {
            let e = Error::new(
                Code::PreconditionFailed,
                format!(
                    "{} holds {} {}-{} here, not this stop",
                    p.txn,
                    h.point,
                    hhmm(h.start),
                    hhmm(h.end)
                ),
            );
            return Prepared::Refused(e);
        }
        if h.state == HoldState::Writing {
            self.voting.entry(p.txn.clone()).or_default().push(from);
            return Prepared::Writing;
        }
        Prepared::Voted(vote(h, now))
    }

    /// A new hold for `p`, logged; the vote follows once the record is
    /// durable (rule 3), or at once with that rule off.
    fn hold_new(
        &mut self,
        now: u64,
        from: ReplyTo,
        p: &Prepare,
        out: &mut Vec<Action>,
    ) -> Prepared {
        self.insert(Hold {
            txn: p.txn.clone(),
            point: p.point.clone(),
            start: p.start,
            end: p.end,
            vehicle: p.vehicle.clone(),
            coordinator: p.coordinator.clone(),
            participants: p.participants.clone(),
            state: HoldState::Writing,
            expires: now + self.timing.hold_expiry,
            asked: 0,
        });
        // Rule 3: the yes vote waits for this record to be durable.
        let force = self.rules.hold_before_vote;
        out.push(Action::LogPart {
            rec: PartRecord::Hold {
                txn: p.txn.clone(),
                coordinator: p.coordinator.clone(),
                point: p.point.clone(),
                start: p.start,
                end: p.end,
                vehicle: p.vehicle.clone(),
                participants: p.participants.clone(),
            },
            force,
        });
        if !force {
            self.set_state(&p.txn, HoldState::Held);
            return match self.holds.get(&p.txn) {
                Some(h) => Prepared::Voted(vote(h, now)),
                None => Prepared::Refused(Error::crash("hold vanished")),
            };
        }
        self.voting.insert(p.txn.clone(), vec![from]);
        Prepared::Writing
    }

    fn check(&self, p: &Prepare) -> Result<(), Error> {
        if !self.points.contains(&p.point) {
            return Err(Error::not_found(format!(
                "company {} has no point '{}'",
                self.name, p.point
            )));
        }
        if p.start >= p.end {
            return Err(Error::malformed("window must have start < end"));
        }
        match parse_txn(&p.txn) {
            Some((c, v, _)) if c == p.coordinator && v == p.vehicle => Ok(()),
            _ => Err(Error::malformed(format!(
                "txn '{}' must be <coordinator>/<vehicle>/<request_id> ({}/{}/...)",
                p.txn, p.coordinator, p.vehicle
            ))),
        }
    }

    fn conflict(&self, p: &Prepare) -> Option<Error> {
        let (_, _, txn) = self
            .by_point
            .get(&p.point)?
            .overlapping(p.start, p.end)
            .next()?;
        let h = self.holds.get(txn)?;
        Some(Error::conflict(format!(
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
        )))
    }

    /// The hold record of `txn` is durable: vote yes — unless an abort
    /// overtook it, which is then logged after the hold.
    pub fn forced(&mut self, now: u64, txn: &str, out: &mut Vec<Action>) {
        let waiters = self.voting.remove(txn).unwrap_or_default();
        if self.aborted.contains(txn) {
            if self.remove(txn).is_some() {
                out.push(Action::LogPart {
                    rec: PartRecord::Abort {
                        txn: txn.to_string(),
                    },
                    force: false,
                });
            }
            for to in waiters {
                let e = Error::new(Code::Abort, format!("{txn} aborted meanwhile"));
                reply(out, to, Err(e));
            }
            return;
        }
        // Only Writing → Held: a retried prepare may have voted, and the
        // hold may even be committed since.
        if self.holds.get(txn).map(|h| h.state) == Some(HoldState::Writing) {
            self.set_state(txn, HoldState::Held);
        }
        let Some(h) = self.holds.get(txn) else {
            return;
        };
        for to in waiters {
            reply(out, to, Ok(vote(h, now)));
        }
    }

    /// The log refused the hold record of `txn` (a full disk: nothing
    /// written): the hold goes, and the vote is no (error 11).
    pub fn refused(&mut self, txn: &str, out: &mut Vec<Action>) {
        if self.holds.get(txn).map(|h| h.state) != Some(HoldState::Writing) {
            return;
        }
        self.remove(txn);
        for to in self.voting.remove(txn).unwrap_or_default() {
            let e = Error::unavailable(format!(
                "cannot write the hold now (log full); nothing is held for {txn}"
            ));
            reply(out, to, Err(e));
        }
    }

    /// Phase 2 for one transaction: `commit` or abort. Idempotent. The
    /// record is queued, not forced: the coordinator keeps the decision and
    /// answers `decision` for it, which is all a participant that lost the
    /// record in a crash needs. Returns the state reached.
    pub fn decide(
        &mut self,
        txn: &str,
        commit: bool,
        out: &mut Vec<Action>,
    ) -> Result<&'static str, Error> {
        let state = self.holds.get(txn).map(|h| h.state);
        match (commit, state) {
            (true, Some(HoldState::Committed)) => Ok("committed"),
            (true, Some(HoldState::Held)) => {
                self.set_state(txn, HoldState::Committed);
                out.push(Action::LogPart {
                    rec: PartRecord::Commit {
                        txn: txn.to_string(),
                    },
                    force: false,
                });
                Ok("committed")
            }
            (true, Some(HoldState::Writing)) => Err(Error::unavailable(format!(
                "{txn}: hold still being written"
            ))),
            (true, None) if self.aborted.contains(txn) => Err(Error::new(
                Code::PreconditionFailed,
                format!("{txn} was aborted here; cannot commit"),
            )),
            (true, None) => Err(Error::not_found(format!("no hold for {txn}"))),
            (false, Some(HoldState::Committed)) => Err(Error::new(
                Code::PreconditionFailed,
                format!("{txn} is committed here; cannot abort"),
            )),
            (false, Some(HoldState::Held)) => {
                self.remove(txn);
                self.aborted.insert(txn);
                out.push(Action::LogPart {
                    rec: PartRecord::Abort {
                        txn: txn.to_string(),
                    },
                    force: false,
                });
                Ok("aborted")
            }
            // Being written: `forced` finishes the abort after the hold record.
            // Unknown: remembered, so a late prepare is refused.
            (false, Some(HoldState::Writing) | None) => {
                self.aborted.insert(txn);
                Ok("aborted")
            }
        }
    }

    /// Timer: an undecided hold past its expiry asks its coordinator, and
    /// keeps asking — it never decides alone (the blocking case).
    pub fn tick(&mut self, now: u64, out: &mut Vec<Action>) {
        for txn in &self.open {
            let Some(h) = self.holds.get_mut(txn) else {
                continue;
            };
            if h.state == HoldState::Held && h.expires <= now {
                h.expires = now + self.timing.ask_every;
                h.asked += 1;
                out.push(Action::Send {
                    to: h.coordinator.clone(),
                    msg: Msg::Ask { txn: txn.clone() },
                });
            }
        }
    }

    /// The coordinator's answer to our question about `txn`.
    pub fn answer(&mut self, txn: &str, r: Result<Answer, Error>, out: &mut Vec<Action>) {
        if let Ok(Answer::Decision { commit, .. }) = r {
            let _ = self.decide(txn, commit, out);
        }
    }

    /// Rebuild from one record of the log (on start). A hold without an
    /// outcome is in doubt and asks at once.
    pub fn replay(&mut self, rec: PartRecord) {
        match rec {
            PartRecord::Hold {
                txn,
                coordinator,
                point,
                start,
                end,
                vehicle,
                participants,
            } => {
                self.remove(&txn);
                self.insert(Hold {
                    txn,
                    point,
                    start,
                    end,
                    vehicle,
                    coordinator,
                    participants,
                    state: HoldState::Held,
                    expires: 0,
                    asked: 0,
                });
            }
            PartRecord::Commit { txn } => self.set_state(&txn, HoldState::Committed),
            PartRecord::Abort { txn } => {
                self.remove(&txn);
                self.aborted.insert(&txn);
            }
        }
    }

    fn insert(&mut self, h: Hold) {
        let b = self.by_point.entry(h.point.clone()).or_default();
        b.by_start.insert((h.start, h.txn.clone()), h.end);
        b.longest = b.longest.max(h.end.saturating_sub(h.start));
        if h.state != HoldState::Committed {
            self.open.insert(h.txn.clone());
        }
        self.holds.insert(h.txn.clone(), h);
    }

    fn remove(&mut self, txn: &str) -> Option<Hold> {
        let h = self.holds.remove(txn)?;
        if let Some(b) = self.by_point.get_mut(&h.point) {
            b.by_start.remove(&(h.start, h.txn.clone()));
        }
        self.open.remove(txn);
        Some(h)
    }

    fn set_state(&mut self, txn: &str, state: HoldState) {
        if let Some(h) = self.holds.get_mut(txn) {
            h.state = state;
            if state == HoldState::Committed {
                self.open.remove(txn);
            }
        }
    }

    // Views for the driver (`reservations`, `availability`, `status`).

    pub fn holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.values()
    }

    pub fn hold(&self, txn: &str) -> Option<&Hold> {
        self.holds.get(txn)
    }

    /// Undecided holds (writing or held).
    pub fn undecided(&self) -> impl Iterator<Item = &Hold> {
        self.open.iter().filter_map(|t| self.holds.get(t))
    }

    /// (start, end) of every hold and reservation of `point` overlapping
    /// `[from, to)`, in start order.
    pub fn busy(&self, point: &str, from: u32, to: u32) -> Vec<(u32, u32)> {
        self.by_point
            .get(point)
            .into_iter()
            .flat_map(|b| b.overlapping(from, to))
            .map(|(s, e, _)| (s, e))
            .collect()
    }

    pub fn has_point(&self, point: &str) -> bool {
        self.points.contains(point)
    }

    pub fn is_aborted(&self, txn: &str) -> bool {
        self.aborted.contains(txn)
    }

    /// (holds and reservations, undecided, tombstones).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.holds.len(), self.open.len(), self.aborted.order.len())
    }
}

fn vote(h: &Hold, now: u64) -> Answer {
    Answer::Vote {
        txn: h.txn.clone(),
        state: h.state,
        expires_in_ms: h.expires.saturating_sub(now),
    }
}
