//! The coordinator's rules: one route request → one transaction, phase 1
//! in canonical order, a durable decision, phase 2, answers to retries and
//! `decision` questions from the record, recovery. See [`super`] for the
//! rules' numbers.
//!
//! ```text
//!  request ─> preparing ──all yes──> committing ──forced──> committed ──acks──> end
//!                 │                                                   (kept for good)
//!                 └─a no, a timeout, a question──> aborting ──forced──> aborted ──acks──> end
//!                                                                     (kept for the horizon)
//! ```

use super::{
    check_name, hex, parse_txn, reply, route_of, txn_id, unhex, Action, Answer, CoordRecord, Msg,
    ReplyTo, Rules, Timing, Vote,
};
use crate::ev::company::messages::{Conflict, Prepare, RouteOutcome, RouteRequest};
use crate::ev::points::Stop;
use crate::wire::error::{Code, Error};
use std::collections::{BTreeSet, HashMap, VecDeque};

/// Where a transaction stands at its coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// Phase 1: prepares out, votes coming in.
    Preparing,
    /// All voted yes; the commit record is being forced.
    Committing,
    Committed,
    /// Abort chosen; the abort record is being forced.
    Aborting,
    Aborted,
}

/// One transaction this company coordinates. Committed ones stay for good
/// (a participant may ask, a client may retry, at any time), aborted ones
/// for the retry horizon; so this is kept small, with the details of a
/// transaction still running in `run`.
struct Txn {
    state: TxnState,
    /// The route's fingerprint (0 = unknown).
    route: u64,
    /// What a client told `rejected` was told.
    conflict: Option<Box<Conflict>>,
    run: Option<Box<Run>>,
}

/// A transaction from `begin` to `end`.
#[derive(Default)]
struct Run {
    vehicle: String,
    request_id: String,
    /// In canonical (company-name) order.
    stops: Vec<Stop>,
    /// Companies sent a prepare (they may hold something).
    asked: Vec<String>,
    /// Companies whose vote came in (yes, no, or no answer at all).
    voted: Vec<String>,
    /// Companies that voted yes.
    yes: Vec<String>,
    /// Phase 2: decision sent, not acknowledged yet.
    unacked: Vec<String>,
    /// Phase 2: not acknowledged; resent on the next tick.
    resend: Vec<String>,
    /// Clients waiting for the outcome (until the deadline).
    waiters: Vec<(ReplyTo, u64)>,
    /// `decision` questions waiting for the decision record.
    askers: Vec<ReplyTo>,
    /// The abort record was refused (a full disk): written again on the
    /// next tick, until it is.
    unrecorded: bool,
}

impl Run {
    fn participants(&self) -> Vec<String> {
        self.stops.iter().map(|s| s.company.clone()).collect()
    }
}

/// Counters for `status`.
#[derive(Debug, Default, Clone, Copy)]
pub struct CoordStats {
    pub committed: u64,
    pub aborted: u64,
    pub failed: u64,
    pub decisions_asked: u64,
}

pub struct Coordinator {
    name: String,
    companies: BTreeSet<String>,
    rules: Rules,
    timing: Timing,
    txns: HashMap<String, Txn>,
    /// Transactions begun and not ended (those with a `run`).
    open: BTreeSet<String>,
    /// Aborted transactions, oldest decision first: forgotten once past
    /// the horizon and ended.
    aborted: VecDeque<(u64, String)>,
    /// Rules off only (`one_txn_per_request`): answers kept in memory, and
    /// a counter for fresh transaction ids.
    memory: HashMap<(String, String), RouteOutcome>,
    attempts: u64,
    pub stats: CoordStats,
}

impl Coordinator {
    pub fn new(name: &str, companies: &[String], rules: Rules, timing: Timing) -> Coordinator {
        Coordinator {
            name: name.to_string(),
            companies: companies.iter().cloned().collect(),
            rules,
            timing,
            txns: HashMap::new(),
            open: BTreeSet::new(),
            aborted: VecDeque::new(),
            memory: HashMap::new(),
            attempts: 0,
            stats: CoordStats::default(),
        }
    }

    /// A route request, from a client (`forwarded` false) or forwarded by
    /// another company. The reply goes to `from`, now or once decided.
    pub fn request(
        &mut self,
        now: u64,
        from: ReplyTo,
        r: &RouteRequest,
        forwarded: bool,
        out: &mut Vec<Action>,
    ) {
        let stops = match self.check(r) {
            Ok(stops) => stops,
            Err(why) => {
                self.stats.failed += 1;
                let c = note(&self.name, Code::MalformedRequest, why);
                return self.tell(out, from, r, "failed", "", Some(c));
            }
        };
        if !self.rules.one_txn_per_request {
            return self.request_anywhere(now, from, r, stops, out);
        }
        // Rule 1: the first stop's company coordinates.
        let coordinator = stops[0].company.clone();
        if coordinator != self.name {
            if forwarded {
                let e = Error::new(
                    Code::NotCoordinator,
                    format!("a forwarded request must go to its coordinator, {coordinator}"),
                );
                return reply(out, from, Err(e));
            }
            let msg = Msg::Forward {
                request: r.clone(),
                reply_to: from,
            };
            return out.push(Action::Send {
                to: coordinator,
                msg,
            });
        }
        let txn = txn_id(&self.name, &r.vehicle, &r.request_id);
        let route = route_of(&stops);
        let Some(t) = self.txns.get_mut(&txn) else {
            return self.begin(now, from, txn, r, stops, route, out);
        };
        // A retry: the first outcome, or wait for it.
        if t.route != 0 && t.route != route {
            self.stats.failed += 1;
            let why = format!(
                "request id {} of vehicle {} was used for another route ({txn}); use a new request_id",
                r.request_id, r.vehicle
            );
            let c = note(&self.name, Code::AlreadyExists, why);
            return self.tell(out, from, r, "failed", "", Some(c));
        }
        match (t.state, t.run.as_deref_mut()) {
            (TxnState::Committed, _) => self.tell(out, from, r, "reserved", &txn, None),
            (TxnState::Aborted, _) => {
                let c = t.conflict.as_deref().cloned();
                self.tell(out, from, r, "rejected", &txn, c)
            }
            (_, Some(run)) => run.waiters.push((from, now + self.timing.retry_wait)),
            (_, None) => reply(out, from, Err(undecided(&txn))),
        }
    }

    /// Answer `from` with `r`'s outcome.
    fn tell(
        &self,
        out: &mut Vec<Action>,
        from: ReplyTo,
        r: &RouteRequest,
        what: &str,
        txn: &str,
        conflict: Option<Conflict>,
    ) {
        let o = outcome(r, what, txn, &self.name, conflict);
        reply(out, from, Ok(Answer::Outcome(o)));
    }

    /// Rule 1 off: coordinate here, with a fresh transaction per attempt,
    /// answering retries from memory (lost in a crash) — the rules this
    /// project had before one transaction per request.
    fn request_anywhere(
        &mut self,
        now: u64,
        from: ReplyTo,
        r: &RouteRequest,
        stops: Vec<Stop>,
        out: &mut Vec<Action>,
    ) {
        let key = (r.vehicle.clone(), r.request_id.clone());
        if let Some(o) = self.memory.get(&key) {
            return reply(out, from, Ok(Answer::Outcome(o.clone())));
        }
        self.attempts += 1;
        let rid = format!("{}~{now}.{}", r.request_id, self.attempts);
        let txn = txn_id(&self.name, &r.vehicle, &rid);
        let route = route_of(&stops);
        self.begin(now, from, txn, r, stops, route, out);
    }

    /// A route: 1 to N stops at distinct known companies, sane windows and
    /// names. Returns the stops in canonical order.
    fn check(&self, r: &RouteRequest) -> Result<Vec<Stop>, String> {
        check_name("vehicle", &r.vehicle)?;
        check_name("request_id", &r.request_id)?;
        if r.stops.is_empty() || r.stops.len() > self.companies.len() {
            return Err(format!("a route has 1 to {} stops", self.companies.len()));
        }
        let mut stops = r.stops.clone();
        stops.sort_by(|a, b| a.company.cmp(&b.company));
        for (i, s) in stops.iter().enumerate() {
            if !self.companies.contains(&s.company) {
                return Err(format!("unknown company '{}'", s.company));
            }
            if i > 0 && stops[i - 1].company == s.company {
                return Err(format!(
                    "two stops at company {}: one stop per company",
                    s.company
                ));
            }
            if s.start >= s.end {
                return Err(format!("stop {}: window must have start < end", s.point));
            }
        }
        Ok(stops)
    }

    #[allow(clippy::too_many_arguments)]
    fn begin(
        &mut self,
        now: u64,
        from: ReplyTo,
        txn: String,
        r: &RouteRequest,
        stops: Vec<Stop>,
        route: u64,
        out: &mut Vec<Action>,
    ) {
        let mut run = Box::new(Run {
            vehicle: r.vehicle.clone(),
            request_id: r.request_id.clone(),
            stops,
            // The first attempt waits as long as phase 1 takes (bounded by
            // the participants' reply timeouts).
            waiters: vec![(from, u64::MAX)],
            ..Run::default()
        });
        out.push(Action::LogCoord {
            rec: CoordRecord::Begin {
                txn: txn.clone(),
                vehicle: run.vehicle.clone(),
                request_id: run.request_id.clone(),
                participants: run.participants(),
                stops: run.stops.clone(),
            },
            force: false,
        });
        // Rule 2: the first stop alone; the others once it is held.
        let first = if self.rules.ordered_holds {
            1
        } else {
            run.stops.len()
        };
        prepare(&self.name, &txn, &mut run, first, out);
        let _ = now;
        self.running(txn, route, run);
    }

    /// Remember `txn`, begun and not decided.
    fn running(&mut self, txn: String, route: u64, run: Box<Run>) {
        self.open.insert(txn.clone());
        let t = Txn {
            state: TxnState::Preparing,
            route,
            conflict: None,
            run: Some(run),
        };
        self.txns.insert(txn, t);
    }

    /// A participant's vote on `txn` (an error is a no: a conflict, or no
    /// answer at all).
    pub fn vote(
        &mut self,
        now: u64,
        txn: &str,
        company: &str,
        vote: Result<Vote, Error>,
        out: &mut Vec<Action>,
    ) {
        let Some(t) = self.txns.get_mut(txn) else {
            return;
        };
        let Some(run) = t.run.as_deref_mut() else {
            return;
        };
        let first_vote = vote != Ok(Vote::Held) && !run.voted.iter().any(|c| c == company);
        if first_vote {
            run.voted.push(company.to_string());
        }
        if t.state != TxnState::Preparing {
            // Aborted meanwhile (a no from another stop, or a question): its
            // abort goes now that its vote is in, never racing its prepare.
            if first_vote && matches!(t.state, TxnState::Aborting | TxnState::Aborted) {
                out.push(decide(company, txn, false));
                run.unacked.push(company.to_string());
            }
            return;
        }
        let e = match vote {
            Err(e) => e,
            Ok(v) => {
                if v == Vote::Yes && !run.yes.iter().any(|c| c == company) {
                    run.yes.push(company.to_string());
                }
                // Rule 2: the first stop is held; now all the others at once.
                if run.stops[0].company == company {
                    let all = run.stops.len();
                    prepare(&self.name, txn, run, all, out);
                }
                if run.yes.len() == run.stops.len() {
                    self.commit(now, txn, out);
                }
                return;
            }
        };
        let conflict = match run.stops.iter().find(|s| s.company == company) {
            Some(s) => refusal(s, &e),
            None => note(company, e.code, e.text),
        };
        self.abort(now, txn, conflict, self.rules.abort_before_rejected, out);
    }

    /// Every participant voted yes: the commit decision (rule 4).
    fn commit(&mut self, now: u64, txn: &str, out: &mut Vec<Action>) {
        let Some(t) = self.txns.get_mut(txn) else {
            return;
        };
        t.state = TxnState::Committing;
        let force = self.rules.commit_before_phase2;
        out.push(Action::LogCoord {
            rec: CoordRecord::Commit {
                txn: txn.to_string(),
                route: hex(t.route),
            },
            force,
        });
        if !force {
            self.decided(now, txn, out);
        }
    }

    /// Abort `txn` (undecided) for `conflict`. The aborts go out at once to
    /// the participants that voted (the others get theirs when their vote
    /// comes in, so an abort never overtakes its own prepare): an abort sent
    /// before its record is durable is still the truth (without the record
    /// the transaction is presumed aborted). The answer to clients and
    /// questions waits for the record when `force`.
    fn abort(
        &mut self,
        now: u64,
        txn: &str,
        conflict: Conflict,
        force: bool,
        out: &mut Vec<Action>,
    ) {
        let Some(t) = self.txns.get_mut(txn) else {
            return;
        };
        t.state = TxnState::Aborting;
        t.conflict = Some(Box::new(conflict.clone()));
        out.push(Action::LogCoord {
            rec: CoordRecord::Abort {
                txn: txn.to_string(),
                route: hex(t.route),
                conflict,
            },
            force,
        });
        if let Some(run) = t.run.as_deref_mut() {
            let voted: Vec<String> = run
                .asked
                .iter()
                .filter(|c| run.voted.contains(c))
                .cloned()
                .collect();
            for c in &voted {
                out.push(decide(c, txn, false));
            }
            run.unacked = voted;
        }
        if !force {
            self.decided(now, txn, out);
        }
    }

    /// The decision record of `txn` is durable (the driver forced it).
    pub fn forced(&mut self, now: u64, txn: &str, out: &mut Vec<Action>) {
        self.decided(now, txn, out);
    }

    /// The log refused `txn`'s record (a full disk: nothing written), and
    /// the driver dropped the actions that came after it. A `begin`: the
    /// request fails, nothing was asked of anyone. A commit: abort instead
    /// (no commit without its record). An abort: it stands in memory (this
    /// coordinator never commits it), but nobody is told — not even a
    /// `decision` question — until its record is written (retried every
    /// tick).
    pub fn refused(&mut self, now: u64, txn: &str, out: &mut Vec<Action>) {
        let Some(t) = self.txns.get_mut(txn) else {
            return;
        };
        let why = |what: &str| {
            format!("cannot write the {what} record now (log full): {txn} is not reserved")
        };
        match t.state {
            TxnState::Preparing => {
                let Some(run) = t.run.take() else {
                    return;
                };
                self.txns.remove(txn);
                self.open.remove(txn);
                self.stats.failed += 1;
                let r = request_of(&run);
                let c = note(&self.name, Code::TemporarilyUnavailable, why("begin"));
                for (to, _) in run.waiters {
                    self.tell(out, to, &r, "failed", "", Some(c.clone()));
                }
                for to in run.askers {
                    reply(out, to, Err(Error::unavailable(why("begin"))));
                }
            }
            TxnState::Committing => {
                let c = note(&self.name, Code::TemporarilyUnavailable, why("commit"));
                self.abort(now, txn, c, true, out);
            }
            TxnState::Aborting => {
                let Some(run) = t.run.as_deref_mut() else {
                    return;
                };
                run.unrecorded = true;
                // Its aborts were not sent (they came after the record):
                // the next tick sends them with the record.
                let unsent = std::mem::take(&mut run.unacked);
                run.resend.extend(unsent);
                let later = || {
                    Error::crash(format!(
                        "{txn} is aborted but not yet recorded (log full): ask again"
                    ))
                };
                for (to, _) in run.waiters.drain(..) {
                    reply(out, to, Err(later()));
                }
                for to in run.askers.drain(..) {
                    reply(out, to, Err(later()));
                }
            }
            TxnState::Committed | TxnState::Aborted => {}
        }
    }

    /// The decision is final: phase 2 (commits), then every waiting client
    /// and question gets it.
    fn decided(&mut self, now: u64, txn: &str, out: &mut Vec<Action>) {
        let Some(t) = self.txns.get_mut(txn) else {
            return;
        };
        let commit = match t.state {
            TxnState::Committing => true,
            TxnState::Aborting => false,
            _ => return,
        };
        let Some(run) = t.run.as_deref_mut() else {
            return;
        };
        if commit {
            t.state = TxnState::Committed;
            self.stats.committed += 1;
            for c in run.participants() {
                out.push(decide(&c, txn, true));
            }
            run.unacked = run.participants();
        } else {
            t.state = TxnState::Aborted;
            self.stats.aborted += 1;
            self.aborted.push_back((now, txn.to_string()));
        }
        let r = request_of(run);
        let (what, conflict) = match commit {
            true => ("reserved", None),
            false => ("rejected", t.conflict.as_deref().cloned()),
        };
        let o = outcome(&r, what, txn, &self.name, conflict);
        if !self.rules.one_txn_per_request {
            let key = (r.vehicle.clone(), r.request_id.clone());
            self.memory.insert(key, o.clone());
        }
        for (to, _) in run.waiters.drain(..) {
            reply(out, to, Ok(Answer::Outcome(o.clone())));
        }
        for to in run.askers.drain(..) {
            let answer = Answer::Decision {
                txn: txn.to_string(),
                commit,
            };
            out.push(Action::Reply {
                to,
                answer: Ok(answer),
            });
        }
        self.maybe_end(txn, out);
    }

    /// A participant acknowledged (`Ok`) or did not take (`Err`) the
    /// decision. A definite refusal is a protocol violation the driver
    /// logs; it counts as an answer (resending would not change it).
    pub fn acked(&mut self, txn: &str, company: &str, r: Result<(), Error>, out: &mut Vec<Action>) {
        let Some(run) = self.txns.get_mut(txn).and_then(|t| t.run.as_deref_mut()) else {
            return;
        };
        run.unacked.retain(|c| c != company);
        let taken = match r {
            Ok(()) => true,
            Err(e) => e.definite() && e.code != Code::TemporarilyUnavailable,
        };
        if !taken && !run.resend.iter().any(|c| c == company) {
            run.resend.push(company.to_string());
        }
        self.maybe_end(txn, out);
    }

    /// Decided and acknowledged by everyone: `end` (queued), and the
    /// details go. A transaction never begun here (presumed abort of an
    /// unknown one) needs no `end`.
    fn maybe_end(&mut self, txn: &str, out: &mut Vec<Action>) {
        let Some(t) = self.txns.get_mut(txn) else {
            return;
        };
        let done = matches!(t.state, TxnState::Committed | TxnState::Aborted)
            && t.run.as_deref().is_some_and(|r| {
                r.unacked.is_empty()
                    && r.resend.is_empty()
                    && r.asked.iter().all(|c| r.voted.contains(c))
            });
        if !done {
            return;
        }
        if t.run.as_deref().is_some_and(|r| !r.stops.is_empty()) {
            out.push(Action::LogCoord {
                rec: CoordRecord::End {
                    txn: txn.to_string(),
                },
                force: false,
            });
        }
        t.run = None;
        self.open.remove(txn);
    }

    /// `decision`: a participant asks for `txn`'s outcome.
    pub fn decision(&mut self, now: u64, from: ReplyTo, txn: &str, out: &mut Vec<Action>) {
        self.stats.decisions_asked += 1;
        let answer = |commit| {
            Ok(Answer::Decision {
                txn: txn.to_string(),
                commit,
            })
        };
        match parse_txn(txn) {
            None => {
                let e = Error::malformed(format!(
                    "'{txn}' is not a transaction id (coordinator/vehicle/request_id)"
                ));
                return reply(out, from, Err(e));
            }
            // Error 2 names the company to ask; there is none to name.
            Some((c, _, _)) if !self.companies.contains(c) => {
                let e = Error::new(
                    Code::NodeNotFound,
                    format!("no company {c}: {txn} is no transaction of this system"),
                );
                return reply(out, from, Err(e));
            }
            Some((c, _, _)) if c != self.name => {
                let e = Error::new(
                    Code::NotCoordinator,
                    format!("{txn} is coordinated by {c}, not {}: ask {c}", self.name),
                );
                return reply(out, from, Err(e));
            }
            Some(_) => {}
        }
        let state = self.txns.get(txn).map(|t| t.state);
        match state {
            Some(TxnState::Committed) => reply(out, from, answer(true)),
            Some(TxnState::Aborted) => reply(out, from, answer(false)),
            Some(TxnState::Committing | TxnState::Aborting) => {
                if let Some(run) = self.txns.get_mut(txn).and_then(|t| t.run.as_deref_mut()) {
                    run.askers.push(from);
                }
            }
            Some(TxnState::Preparing) | None if !self.rules.presumed_abort => {
                reply(out, from, answer(false))
            }
            Some(TxnState::Preparing) | None => {
                // Rule 6: abort it, durably, before answering: a phase 1 still
                // running (or a retry later) can then never commit it.
                let t = self.txns.entry(txn.to_string()).or_insert_with(|| Txn {
                    state: TxnState::Preparing,
                    route: 0,
                    conflict: None,
                    run: Some(Box::default()),
                });
                if let Some(run) = t.run.as_deref_mut() {
                    run.askers.push(from);
                }
                self.open.insert(txn.to_string());
                let why = "aborted: a participant asked for the outcome before the decision";
                let c = note(&self.name, Code::Abort, why.into());
                self.abort(now, txn, c, true, out);
            }
        }
    }

    /// A request we forwarded was answered by its coordinator (or not):
    /// pass it on. Not reaching the coordinator is never a definite answer —
    /// an earlier attempt of the same request may have started there.
    pub fn relay(
        &mut self,
        from: ReplyTo,
        r: Result<Answer, Error>,
        coordinator: &str,
        out: &mut Vec<Action>,
    ) {
        let r = match r {
            Err(e) if !e.definite() || matches!(e.code, Code::TemporarilyUnavailable | Code::NodeNotFound) => {
                Err(Error::crash(format!(
                    "coordinator {coordinator} did not answer ({}); the request may have started there: retry with the same request_id, or look it up",
                    e.text
                )))
            }
            r => r,
        };
        reply(out, from, r);
    }

    /// Timer: resend unacknowledged decisions, give up on retries that
    /// waited too long (indefinite: still undecided), forget aborts past
    /// the horizon.
    pub fn tick(&mut self, now: u64, out: &mut Vec<Action>) {
        for txn in &self.open {
            let Some(t) = self.txns.get_mut(txn) else {
                continue;
            };
            let commit = t.state == TxnState::Committed;
            let Some(run) = t.run.as_deref_mut() else {
                continue;
            };
            for c in std::mem::take(&mut run.resend) {
                out.push(decide(&c, txn, commit));
                run.unacked.push(c);
            }
            if std::mem::take(&mut run.unrecorded) {
                if let Some(c) = t.conflict.as_deref() {
                    out.push(Action::LogCoord {
                        rec: CoordRecord::Abort {
                            txn: txn.clone(),
                            route: hex(t.route),
                            conflict: c.clone(),
                        },
                        force: true,
                    });
                }
            }
            let (late, keep): (Vec<_>, Vec<_>) = run
                .waiters
                .drain(..)
                .partition(|(_, deadline)| *deadline <= now);
            run.waiters = keep;
            for (to, _) in late {
                reply(out, to, Err(undecided(txn)));
            }
        }
        while let Some((at, txn)) = self.aborted.front() {
            if now < at.saturating_add(self.timing.horizon) {
                break;
            }
            if self.open.contains(txn) {
                break; // not ended: kept until every participant has its abort
            }
            self.txns.remove(txn);
            self.aborted.pop_front();
        }
    }

    /// Rebuild from one record of the log (in order, on start).
    pub fn replay(&mut self, now: u64, rec: CoordRecord) {
        match rec {
            CoordRecord::Begin {
                txn,
                vehicle,
                request_id,
                participants: _,
                stops,
            } => {
                let route = route_of(&stops);
                let run = Run {
                    vehicle,
                    request_id,
                    stops,
                    ..Run::default()
                };
                self.running(txn, route, Box::new(run));
            }
            CoordRecord::Commit { txn, route } => {
                let t = self.entry(&txn, &route);
                t.state = TxnState::Committed;
            }
            CoordRecord::Abort {
                txn,
                route,
                conflict,
            } => {
                let t = self.entry(&txn, &route);
                t.state = TxnState::Aborted;
                t.conflict = Some(Box::new(conflict));
                self.aborted.push_back((now, txn));
            }
            CoordRecord::End { txn } => {
                if let Some(t) = self.txns.get_mut(&txn) {
                    t.run = None;
                }
                self.open.remove(&txn);
            }
        }
    }

    fn entry(&mut self, txn: &str, route: &str) -> &mut Txn {
        let t = self.txns.entry(txn.to_string()).or_insert_with(|| Txn {
            state: TxnState::Preparing,
            route: unhex(route),
            conflict: None,
            run: None,
        });
        if t.route == 0 {
            t.route = unhex(route);
        }
        t
    }

    /// After replay: a transaction begun without a decision is aborted
    /// (durably; its aborts are sent on the next tick), and every decision
    /// not acknowledged by all is resent on the next tick.
    pub fn recover(&mut self, now: u64, out: &mut Vec<Action>) {
        let open: Vec<String> = self.open.iter().cloned().collect();
        for txn in open {
            let Some(t) = self.txns.get_mut(&txn) else {
                continue;
            };
            let undecided = t.state == TxnState::Preparing;
            if let Some(run) = t.run.as_deref_mut() {
                // No prepare is out after a restart: every vote is in.
                run.asked = run.participants();
                run.voted = run.participants();
            }
            if undecided {
                let why = "aborted: the coordinator restarted before deciding";
                let c = note(&self.name, Code::Abort, why.into());
                self.abort(now, &txn, c, true, out);
            }
            if let Some(run) = self.txns.get_mut(&txn).and_then(|t| t.run.as_deref_mut()) {
                run.resend = run.participants();
                run.unacked.clear();
            }
        }
        // The aborts were queued as sends; recovery resends on the tick.
        out.retain(|a| !matches!(a, Action::Send { .. }));
    }

    /// `lookup`, for this coordinator only.
    pub fn lookup(&self, vehicle: &str, request_id: &str) -> Lookup {
        let txn = txn_id(&self.name, vehicle, request_id);
        let Some(t) = self.txns.get(&txn) else {
            return Lookup::unknown();
        };
        let outcome = match t.state {
            TxnState::Committed => LookupOutcome::Reserved,
            TxnState::Aborted => LookupOutcome::Rejected,
            _ => LookupOutcome::InProgress,
        };
        Lookup {
            outcome,
            txn,
            coordinator: self.name.clone(),
            conflict: match outcome {
                LookupOutcome::Rejected => t.conflict.as_deref().cloned(),
                _ => None,
            },
        }
    }

    /// What a compacted log must hold: for every committed transaction its
    /// commit; for every abort still within the horizon its abort; and for
    /// every transaction not ended its `begin` too.
    pub fn snapshot(&self) -> Vec<CoordRecord> {
        let mut recs = Vec::new();
        for (txn, t) in &self.txns {
            if let Some(run) = t.run.as_deref().filter(|r| !r.stops.is_empty()) {
                recs.push(CoordRecord::Begin {
                    txn: txn.clone(),
                    vehicle: run.vehicle.clone(),
                    request_id: run.request_id.clone(),
                    participants: run.participants(),
                    stops: run.stops.clone(),
                });
            }
            match t.state {
                TxnState::Committed | TxnState::Committing => recs.push(CoordRecord::Commit {
                    txn: txn.clone(),
                    route: hex(t.route),
                }),
                TxnState::Aborted | TxnState::Aborting => {
                    if let Some(c) = &t.conflict {
                        recs.push(CoordRecord::Abort {
                            txn: txn.clone(),
                            route: hex(t.route),
                            conflict: (**c).clone(),
                        })
                    }
                }
                TxnState::Preparing => {}
            }
        }
        recs
    }

    /// (transactions remembered, not ended, undecided).
    pub fn counts(&self) -> (usize, usize) {
        (self.txns.len(), self.open.len())
    }

    /// Transactions not ended (decided or not), for `status`.
    pub fn open_txns(&self) -> impl Iterator<Item = &String> {
        self.open.iter()
    }

    pub fn state_of(&self, txn: &str) -> Option<TxnState> {
        self.txns.get(txn).map(|t| t.state)
    }
}

/// `lookup`'s answer from one coordinator, or combined from all.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    pub outcome: LookupOutcome,
    /// "" when unknown.
    pub txn: String,
    pub coordinator: String,
    pub conflict: Option<Conflict>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupOutcome {
    Reserved,
    Rejected,
    InProgress,
    Unknown,
}

impl LookupOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LookupOutcome::Reserved => "reserved",
            LookupOutcome::Rejected => "rejected",
            LookupOutcome::InProgress => "in_progress",
            LookupOutcome::Unknown => "unknown",
        }
    }
}

impl Lookup {
    pub fn unknown() -> Lookup {
        Lookup {
            outcome: LookupOutcome::Unknown,
            txn: String::new(),
            coordinator: String::new(),
            conflict: None,
        }
    }
}

/// `lookup` asks every company (the request's coordinator is the company
/// of its first stop, which a vehicle + request id alone does not name).
/// A decided answer wins, then "in progress"; "unknown" only when nobody
/// knows it — and it is definite only when everybody answered. Returns the
/// answer and the companies that did not.
pub fn combine_lookups(answers: Vec<(String, Result<Lookup, Error>)>) -> (Lookup, Vec<String>) {
    let mut best = Lookup::unknown();
    let mut unreachable = Vec::new();
    let rank = |o: LookupOutcome| match o {
        LookupOutcome::Reserved | LookupOutcome::Rejected => 2,
        LookupOutcome::InProgress => 1,
        LookupOutcome::Unknown => 0,
    };
    for (company, a) in answers {
        match a {
            Ok(l) if rank(l.outcome) > rank(best.outcome) => best = l,
            Ok(_) => {}
            Err(_) => unreachable.push(company),
        }
    }
    (best, unreachable)
}

/// Send prepares to the stops not asked yet, up to the `upto`th.
fn prepare(coordinator: &str, txn: &str, run: &mut Run, upto: usize, out: &mut Vec<Action>) {
    let participants = run.participants();
    for s in run.stops.iter().take(upto).skip(run.asked.len()) {
        out.push(Action::Send {
            to: s.company.clone(),
            msg: Msg::Prepare(Prepare {
                txn: txn.to_string(),
                coordinator: coordinator.to_string(),
                point: s.point.clone(),
                start: s.start,
                end: s.end,
                vehicle: run.vehicle.clone(),
                participants: participants.clone(),
            }),
        });
    }
    run.asked = participants
        .into_iter()
        .take(upto.max(run.asked.len()))
        .collect();
}

/// The request a running transaction serves (for its outcome).
fn request_of(run: &Run) -> RouteRequest {
    RouteRequest {
        request_id: run.request_id.clone(),
        vehicle: run.vehicle.clone(),
        stops: run.stops.clone(),
        reply_to: None,
        forwarded: false,
    }
}

fn decide(to: &str, txn: &str, commit: bool) -> Action {
    Action::Send {
        to: to.to_string(),
        msg: Msg::Decide {
            txn: txn.to_string(),
            commit,
        },
    }
}

fn undecided(txn: &str) -> Error {
    Error::crash(format!(
        "{txn} is not decided yet: retry with the same request_id, or look it up"
    ))
}

fn outcome(
    r: &RouteRequest,
    what: &str,
    txn: &str,
    coordinator: &str,
    conflict: Option<Conflict>,
) -> RouteOutcome {
    RouteOutcome {
        request_id: r.request_id.clone(),
        vehicle: r.vehicle.clone(),
        outcome: what.to_string(),
        txn: txn.to_string(),
        coordinator: coordinator.to_string(),
        stops: r.stops.clone(),
        conflict,
    }
}

/// A conflict that names no stop (a bad request, an abort without a vote).
fn note(company: &str, code: Code, reason: String) -> Conflict {
    Conflict {
        company: company.to_string(),
        point: String::new(),
        start: 0,
        end: 0,
        code: code.number(),
        reason,
    }
}

fn refusal(s: &Stop, e: &Error) -> Conflict {
    Conflict {
        company: s.company.clone(),
        point: s.point.clone(),
        start: s.start,
        end: s.end,
        code: e.code.number(),
        reason: e.text.clone(),
    }
}
