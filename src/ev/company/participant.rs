//! The participant half of a company, as a process: drives the rules of
//! [`twopc::Participant`] (its points, holds and reservations; see
//! `src/ev/twopc/participant.rs`) over `participant.log`.
//!
//! What this layer adds to the rules is I/O and speed:
//! * one lock around the rules; every record is queued to the log under
//!   it, so the log's order is the order of the state changes;
//! * a hold's yes vote is sent from whichever thread makes its record
//!   durable (`Wal::after`, group commit), so a connection thread never
//!   sleeps through an fsync (see [`Ctx::defer`]);
//! * the coordinator of the same company takes its own hold in-process
//!   ([`Participant::hold`]) and overlaps the hold's fsync with the other
//!   prepares' round trips ([`Participant::vote`]);
//! * a log that cannot be written stops the process (fail-stop): a vote or
//!   a decision that cannot be recorded cannot be trusted.

use super::logs;
use super::messages::Prepare;
use crate::ev::points::Point;
use crate::ev::twopc::{
    self, Action, Answer, HoldState, PartRecord, Prepared, ReplyTo, Rules, Timing, Vote,
};
use crate::runtime::crash;
use crate::runtime::server::{Ctx, Later};
use crate::runtime::wal::Wal;
use crate::sync::lock;
use crate::wire::error::Error;
use crate::wire::message::{body, Body, Request};
use crossbeam_channel::{bounded, Receiver, Sender};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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

/// Where a reply to a waiting prepare goes.
enum Responder {
    /// A peer's connection (the reply is deferred until the vote).
    Later(Later),
    /// A thread of this process (our own coordinator).
    Chan(Sender<Result<Answer, Error>>),
}

/// Numbers for [`ReplyTo`], unique in the process.
pub fn next_token() -> ReplyTo {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    ReplyTo(NEXT.fetch_add(1, Ordering::Relaxed))
}

pub struct Participant {
    name: String,
    points: BTreeMap<String, Point>,
    core: Mutex<twopc::Participant>,
    wal: Wal,
    started: Instant,
    waiting: Mutex<HashMap<u64, Responder>>,
}

/// Our own coordinator's hold being written (see [`Participant::hold`]).
pub struct LocalVote {
    token: ReplyTo,
    rx: Receiver<Result<Answer, Error>>,
    /// The hold's record and ticket, if this call queued it.
    forced: Option<(u64, String)>,
}

impl Participant {
    /// Open the log and rebuild holds and reservations from it. Every hold
    /// without an outcome is in doubt and asks its coordinator at once.
    pub fn open(
        name: &str,
        points: Vec<Point>,
        log: &Path,
        timing: Timing,
    ) -> io::Result<Participant> {
        let ids: Vec<String> = points.iter().map(|p| p.id.clone()).collect();
        let mut core = twopc::Participant::new(name, &ids, Rules::SAFE, timing);
        let (wal, _) = logs::open(log, |r: PartRecord| core.replay(r))?;
        let (_, in_doubt, _) = core.counts();
        if in_doubt > 0 {
            log::info!("{name}: restored {in_doubt} in-doubt hold(s); asking their coordinators");
        }
        Ok(Participant {
            name: name.to_string(),
            points: points.into_iter().map(|p| (p.id.clone(), p)).collect(),
            core: Mutex::new(core),
            wal,
            started: Instant::now(),
            waiting: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, twopc::Participant> {
        lock(&self.core)
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Run one input of the rules: its records are queued under the lock
    /// (with their crash points); returns its result, the other actions,
    /// and the ticket of a record to force.
    fn step<T>(
        &self,
        input: impl FnOnce(&mut twopc::Participant, u64, &mut Vec<Action>) -> T,
    ) -> (T, Vec<Action>, Option<(u64, String)>) {
        let mut acts = Vec::new();
        let mut core = self.lock();
        let t = input(&mut core, self.now(), &mut acts);
        let mut rest = Vec::new();
        let mut forced = None;
        let mut queue: std::collections::VecDeque<Action> = acts.into();
        while let Some(a) = queue.pop_front() {
            let Action::LogPart { rec, force } = a else {
                rest.push(a);
                continue;
            };
            let txn = match &rec {
                PartRecord::Hold { txn, .. } => {
                    crash::point("company.prepare.before_log");
                    txn.clone()
                }
                PartRecord::Commit { txn } => {
                    crash::point("company.commit.before_log");
                    txn.clone()
                }
                PartRecord::Abort { txn } => {
                    crash::point("company.abort.before_log");
                    txn.clone()
                }
            };
            match self.queue(&rec) {
                Ok(ticket) if force => forced = Some((ticket, txn)),
                Ok(_) => {}
                // A commit or abort record refused (a full disk): the
                // coordinator keeps the decision; a restart asks again.
                Err(e) if !matches!(rec, PartRecord::Hold { .. }) => {
                    log::warn!("{}: {txn}: record refused ({e})", self.name);
                }
                Err(e) => {
                    log::warn!("{}: hold of {txn} refused ({e}); voting no", self.name);
                    queue.clear();
                    let mut more = Vec::new();
                    core.refused(&txn, &mut more);
                    queue.extend(more);
                }
            }
            match &rec {
                PartRecord::Commit { .. } => crash::point("company.commit.after_log"),
                PartRecord::Abort { .. } => crash::point("company.abort.after_log"),
                PartRecord::Hold { .. } => {} // after_log: once durable
            }
        }
        drop(core);
        (t, rest, forced)
    }

    fn queue(&self, rec: &PartRecord) -> io::Result<u64> {
        logs::queue(&self.wal, rec, &self.name)
    }

    fn log_failed(&self, e: io::Error) -> ! {
        logs::fail_stop(&self.name, e)
    }

    /// Send replies the rules produced (to peers' deferred prepares, or to
    /// our own coordinator).
    fn deliver(&self, acts: Vec<Action>) {
        for a in acts {
            if let Action::Reply { to, answer } = a {
                self.reply(to, answer);
            }
        }
    }

    fn reply(&self, to: ReplyTo, answer: Result<Answer, Error>) {
        let r = lock(&self.waiting).remove(&to.0);
        match r {
            Some(Responder::Later(l)) => l.send(answer.map(vote_body)),
            Some(Responder::Chan(tx)) => {
                let _ = tx.send(answer);
            }
            None => {}
        }
    }

    fn wait_for(&self, to: ReplyTo, r: Responder) {
        lock(&self.waiting).insert(to.0, r);
    }

    /// Phase 1 for a peer's `prepare`: the vote is sent once the hold is
    /// durable, from whichever thread makes it so.
    pub fn prepare_later(
        self: &Arc<Self>,
        p: &Prepare,
        req: &Request,
        ctx: &Ctx,
    ) -> Result<Body, Error> {
        let token = next_token();
        // Registered first: a retried prepare's vote may come from another
        // thread's fsync as soon as the rules know the token.
        self.wait_for(token, Responder::Later(ctx.defer(req)));
        let (prepared, acts, forced) = self.step(|c, now, out| c.prepare(now, token, p, out));
        self.deliver(acts);
        match prepared {
            Prepared::Refused(e) => self.reply(token, Err(e)),
            Prepared::Voted(a) => self.reply(token, Ok(a)),
            Prepared::Writing => {}
        }
        if let Some((ticket, txn)) = forced {
            let me = self.clone();
            self.wal.after(
                ticket,
                Box::new(move |durable| me.hold_durable(&txn, durable)),
            );
        }
        Ok(Body::new())
    }

    /// A hold's record is durable: the vote (never waits for the log: it
    /// may run on the thread that syncs it).
    fn hold_durable(&self, txn: &str, durable: io::Result<()>) {
        if let Err(e) = durable {
            self.log_failed(e);
        }
        crash::point("company.prepare.after_log");
        let (_, acts, _) = self.step(|c, now, out| c.forced(now, txn, out));
        self.deliver(acts);
    }

    /// Phase 1 for our own coordinator, first half: take the hold (or be
    /// refused) now. `Ok(Vote::Held)`: its record is being written, and
    /// [`Participant::vote`] gives the yes once it is durable — the
    /// coordinator sends its other prepares in between.
    pub fn hold(&self, p: &Prepare) -> (Result<Vote, Error>, Option<LocalVote>) {
        let token = next_token();
        let (tx, rx) = bounded(1);
        self.wait_for(token, Responder::Chan(tx));
        let (prepared, acts, forced) = self.step(|c, now, out| c.prepare(now, token, p, out));
        self.deliver(acts);
        match prepared {
            Prepared::Writing => (Ok(Vote::Held), Some(LocalVote { token, rx, forced })),
            other => {
                lock(&self.waiting).remove(&token.0);
                match other {
                    Prepared::Refused(e) => (Err(e), None),
                    _ => (Ok(Vote::Yes), None),
                }
            }
        }
    }

    /// Phase 1 for our own coordinator, second half: the yes (or no) once
    /// the hold is durable.
    pub fn vote(&self, v: LocalVote, timeout: Duration) -> Result<Vote, Error> {
        if let Some((ticket, txn)) = &v.forced {
            let durable = self.wal.wait(*ticket);
            self.hold_durable(txn, durable);
        }
        let r = v.rx.recv_timeout(timeout);
        lock(&self.waiting).remove(&v.token.0);
        match r {
            Ok(answer) => answer.map(|_| Vote::Yes),
            Err(_) => Err(Error::crash("our own hold was not written in time")),
        }
    }

    /// Phase 2 for one transaction (`commit`/`abort`): its state reached.
    pub fn decide(&self, txn: &str, commit: bool) -> Result<Body, Error> {
        let (r, acts, _) = self.step(|c, _, out| c.decide(txn, commit, out));
        self.deliver(acts);
        r.map(|state| body(json!({"txn": txn, "state": state})))
    }

    /// `decide`: several at once, under one lock; each exactly as its own
    /// `commit`/`abort` would. The reply lists what was done and what failed.
    pub fn decide_many(&self, commit: &[String], abort: &[String]) -> Body {
        let (done, acts, _) = self.step(|c, _, out| {
            let mut done = (Vec::new(), Vec::new(), Vec::new());
            for (txns, is_commit) in [(commit, true), (abort, false)] {
                for t in txns {
                    match c.decide(t, is_commit, out) {
                        Ok(_) if is_commit => done.0.push(t.clone()),
                        Ok(_) => done.1.push(t.clone()),
                        Err(e) => done
                            .2
                            .push(json!({"txn": t, "code": e.code.number(), "text": e.text})),
                    }
                }
            }
            done
        });
        self.deliver(acts);
        body(json!({"committed": done.0, "aborted": done.1, "failed": done.2}))
    }

    /// Timer: the in-doubt holds due to ask their coordinator, as (txn,
    /// coordinator). Each is asked again only after `--ask-interval-ms`.
    pub fn due(&self) -> Vec<(String, String)> {
        let (_, acts, _) = self.step(|c, now, out| c.tick(now, out));
        acts.into_iter()
            .filter_map(|a| match a {
                Action::Send {
                    to,
                    msg: twopc::Msg::Ask { txn },
                } => Some((txn, to)),
                _ => None,
            })
            .collect()
    }

    /// The coordinator's answer about an in-doubt hold.
    pub fn answer(&self, txn: &str, r: Result<Answer, Error>) {
        let (_, acts, _) = self.step(|c, _, out| c.answer(txn, r, out));
        self.deliver(acts);
    }

    /// `reservations`: committed reservations (a page of at most `limit`
    /// from `offset`, in (point, start, txn) order) and every current hold.
    /// A reply that stops short says where the next page starts.
    pub fn reservations(&self, offset: usize, limit: usize) -> Body {
        let core = self.lock();
        let mut res: Vec<&twopc::Hold> = core
            .holds()
            .filter(|h| h.state == HoldState::Committed)
            .collect();
        res.sort_by(|a, b| (&a.point, a.start, &a.txn).cmp(&(&b.point, b.start, &b.txn)));
        let mut holds: Vec<&twopc::Hold> = core.undecided().collect();
        holds.sort_by(|a, b| a.txn.cmp(&b.txn));
        let view = |h: &&twopc::Hold| {
            json!({"txn": h.txn, "point": h.point, "start": h.start, "end": h.end,
                   "vehicle": h.vehicle, "participants": h.participants})
        };
        let hold_view = |h: &&twopc::Hold| {
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
        let core = self.lock();
        let mut out = Vec::new();
        for (id, p) in &self.points {
            if point.is_some_and(|want| want != id) {
                continue;
            }
            let busy = core.busy(id, from, to);
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
        let core = self.lock();
        let (entries, open, aborted) = core.counts();
        let writing = core
            .undecided()
            .filter(|h| h.state == HoldState::Writing)
            .count();
        let (appends, fsyncs) = self.wal.stats();
        json!({
            "points": self.points.len(),
            "reservations": entries - open,
            "holds_in_doubt": open - writing,
            "holds_writing": writing,
            "aborted": aborted,
            "log": {"records": appends, "fsyncs": fsyncs},
        })
    }
}

/// A yes vote as `prepare_ok`'s fields.
fn vote_body(a: Answer) -> Body {
    match a {
        Answer::Vote {
            txn,
            state,
            expires_in_ms,
        } => body(json!({"txn": txn, "vote": "yes", "state": state,
                         "expires_in_ms": expires_in_ms})),
        _ => Body::new(),
    }
}
