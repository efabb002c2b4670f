//! The coordinator half of a company, as a process: drives the rules of
//! [`twopc::Coordinator`] (one request → one transaction; see
//! `src/ev/twopc/coordinator.rs`) over `coordinator.log`.
//!
//! What this layer adds to the rules is I/O and speed:
//! * The thread that receives a route request runs its phase 1 itself: our
//!   own hold first, in-process (the coordinator of a request is always its
//!   first stop's company), then every other prepare sent at once and the
//!   replies read after (no thread per message); the own hold's fsync runs
//!   while those travel.
//! * Records are queued under the rules' lock (the log's order is the order
//!   of the state changes); a forced one is waited for outside it, sharing
//!   its fsync with every route in flight (group commit).
//! * Phase 2 leaves the reply path: our own participant gets the decision
//!   in-process; for each peer a *decider* thread sends whatever piled up
//!   as one `decide`.
//! * The resolver thread ticks the rules (resending unacknowledged
//!   decisions, forgetting aborts past the retry horizon) and compacts the
//!   log (`compact`).
//! * A request another company coordinates is forwarded to it over the
//!   pool, and its answer relayed.
//! * Crash points sit between actions (`FROTA_CRASH_AT`).

use super::logs;
use super::messages::{RouteOutcome, RouteRequest};
use super::participant::{next_token, LocalVote, Participant};
use crate::ev::twopc::{
    self, Action, Answer, CoordRecord, Lookup, LookupOutcome, Msg, ReplyTo, Rules, Timing, Vote,
};
use crate::runtime::client::Pool;
use crate::runtime::crash;
use crate::runtime::wake::Queue;
use crate::runtime::wal::Wal;
use crate::sync::lock;
use crate::wire::error::{Code, Error};
use crate::wire::message::{body, to_body, Body};
use crossbeam_channel::{bounded, Sender};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub const CRASH_POINTS: [(&str, &str); 18] = [
    (
        "company.coord.before_begin",
        "route accepted, begin record not yet written",
    ),
    (
        "company.coord.after_begin",
        "begin record queued (durable with the decision at the latest), no prepare sent",
    ),
    (
        "company.coord.before_prepare",
        "about to send a prepare to one participant",
    ),
    (
        "company.coord.after_prepare",
        "one participant answered its prepare (yes or no)",
    ),
    (
        "company.coord.before_decision",
        "every participant voted yes, nothing decided",
    ),
    (
        "company.coord.after_decision",
        "commit decision durable, no commit sent",
    ),
    (
        "company.coord.after_phase2",
        "the decision was applied locally and queued for every other participant asked, before the reply",
    ),
    (
        "company.coord.before_resend",
        "finisher: about to resend an unacknowledged decision",
    ),
    (
        "company.coord.after_resend",
        "finisher: a resent decision was answered (or failed)",
    ),
    (
        "company.coord.before_abort_log",
        "abort chosen (a no vote, a decision question, or recovery), not yet logged",
    ),
    (
        "company.coord.after_abort_log",
        "that abort is durable, nobody told yet",
    ),
    (
        "company.coord.before_end",
        "participants acknowledged, end record not yet queued",
    ),
    (
        "company.coord.before_compact",
        "compaction: snapshot of decisions built, the log not yet rewritten",
    ),
    (
        "company.coord.after_compact",
        "compaction: the log was replaced by the snapshot (+ records since)",
    ),
    (
        "company.forward.before_send",
        "a request another company coordinates: about to forward it there",
    ),
    (
        "company.forward.after_reply",
        "the coordinator answered the forwarded request (or not), not yet relayed",
    ),
    (
        "company.resolve.before_ask",
        "participant: about to ask a coordinator for an in-doubt hold's outcome",
    ),
    (
        "company.resolve.after_ask",
        "participant: the coordinator answered (or not), before applying it",
    ),
];

/// Decisions that may wait for one peer's decider thread; past that, the
/// coordinating thread waits (back-pressure).
const DECIDE_QUEUE: usize = 4096;

/// How long a `decision` waits for a decision record being written.
const DECISION_WAIT: Duration = Duration::from_secs(2);

/// A decision waiting for a peer's decider thread: (txn, commit, what it
/// follows in a trace).
pub type Queued = (String, bool, crate::wire::trace::Cause);

pub struct Coordinator {
    name: String,
    /// Company name → address, for every company including this one.
    peers: BTreeMap<String, String>,
    local: Arc<Participant>,
    /// For participant messages (`--peer-timeout-ms`).
    pool: Pool,
    /// For forwarded requests (`--forward-timeout-ms`).
    forwards: Pool,
    wal: Arc<Wal>,
    core: Mutex<twopc::Coordinator>,
    /// Threads waiting for a reply of the rules, by token.
    waiting: Mutex<HashMap<u64, Sender<Result<Answer, Error>>>>,
    /// Per peer, to its decider thread, once started (else decisions are
    /// sent and acknowledged inline).
    deciders: OnceLock<BTreeMap<String, Arc<Queue<Queued>>>>,
    /// Traced runs only: what each open transaction's `end` follows (its
    /// decision and every acknowledgement, whichever thread saw them), so
    /// a diagram does not depend on which thread happened to write it.
    ends: Mutex<HashMap<String, crate::wire::trace::Cause>>,
    started: Instant,
    timing: Timing,
    peer_timeout: Duration,
    compaction: Compaction,
}

/// When to compact the log, and what it did (see [`Coordinator::compact`]).
struct Compaction {
    /// Compact once this many records were queued since the last time
    /// (and more than the last snapshot had); 0 = never.
    every: u64,
    since: AtomicU64,
    snapshot_records: AtomicU64,
    done: AtomicU64,
}

/// What one input of the rules left to do: its actions (records already
/// queued), and the forced records to wait for: (ticket, txn, is commit).
#[derive(Default)]
struct Work {
    acts: VecDeque<Action>,
    forced: VecDeque<(u64, String, bool)>,
    /// Prepares sent, replies not read: (txn, company, call).
    remote: VecDeque<(String, String, Box<crate::runtime::client::InFlight>)>,
    /// Our own holds being written: (txn, vote to wait for).
    local: Vec<(String, LocalVote)>,
    /// A decision was sent since the last reply (for `after_phase2`).
    decided: bool,
}

/// What [`Coordinator::open`] needs besides the log.
pub struct Settings {
    pub peers: BTreeMap<String, String>,
    pub pool: Pool,
    pub forwards: Pool,
    pub timing: Timing,
    pub peer_timeout: Duration,
    pub compact_every: u64,
}

impl Coordinator {
    /// Rebuild from the log: undecided transactions are aborted (durably,
    /// now), unacknowledged decisions are resent by the first tick.
    pub fn open(
        name: &str,
        local: Arc<Participant>,
        log: &Path,
        s: Settings,
    ) -> io::Result<Coordinator> {
        let names: Vec<String> = s.peers.keys().cloned().collect();
        let mut core = twopc::Coordinator::new(name, &names, Rules::SAFE, s.timing);
        let (wal, replay) = logs::open(log, |r: CoordRecord| core.replay(0, r))?;
        let c = Coordinator {
            name: name.to_string(),
            peers: s.peers,
            local,
            pool: s.pool,
            forwards: s.forwards,
            wal: Arc::new(wal),
            core: Mutex::new(core),
            waiting: Mutex::new(HashMap::new()),
            deciders: OnceLock::new(),
            ends: Mutex::new(HashMap::new()),
            started: Instant::now(),
            timing: s.timing,
            peer_timeout: s.peer_timeout,
            compaction: Compaction {
                every: s.compact_every,
                since: AtomicU64::new(replay.records),
                snapshot_records: AtomicU64::new(0),
                done: AtomicU64::new(0),
            },
        };
        let (_, open) = c.lock().counts();
        if open > 0 {
            log::info!("{name}: {open} transaction(s) to finish from the log");
        }
        let w = c.step(|core, now, out| core.recover(now, out));
        c.drive(w);
        Ok(c)
    }

    fn lock(&self) -> MutexGuard<'_, twopc::Coordinator> {
        lock(&self.core)
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Run one input of the rules: its records are queued under the lock
    /// (with their crash points), everything else is left to do.
    fn step(&self, input: impl FnOnce(&mut twopc::Coordinator, u64, &mut Vec<Action>)) -> Work {
        let mut acts = Vec::new();
        let mut w = Work::default();
        let mut core = self.lock();
        let now = self.now();
        input(&mut core, now, &mut acts);
        let mut queue: VecDeque<Action> = acts.into();
        while let Some(a) = queue.pop_front() {
            let Action::LogCoord { rec, force } = a else {
                w.acts.push_back(a);
                continue;
            };
            let (txn, commit) = match &rec {
                CoordRecord::Begin { txn, .. } => {
                    crash::point("company.coord.before_begin");
                    (txn.clone(), false)
                }
                CoordRecord::Commit { txn, .. } => {
                    crash::point("company.coord.before_decision");
                    (txn.clone(), true)
                }
                CoordRecord::Abort { txn, .. } => {
                    crash::point("company.coord.before_abort_log");
                    (txn.clone(), false)
                }
                CoordRecord::End { txn } => {
                    crash::point("company.coord.before_end");
                    (txn.clone(), false)
                }
            };
            let queued = match &rec {
                CoordRecord::End { .. } => {
                    let cause = self.ends_take(&txn);
                    crate::wire::trace::within(&cause, || self.queue(&rec))
                }
                _ => self.queue(&rec),
            };
            match queued {
                Ok(ticket) if force => w.forced.push_back((ticket, txn, commit)),
                Ok(_) => {}
                // `end` only spares recovery a resend.
                Err(_) if matches!(rec, CoordRecord::End { .. }) => {}
                Err(e) => {
                    // Refused (a full disk): what followed presumed the
                    // record; the rules decide again without it.
                    log::warn!("{}: {txn}: record refused ({e})", self.name);
                    queue.clear();
                    let mut more = Vec::new();
                    core.refused(now, &txn, &mut more);
                    queue.extend(more);
                }
            }
            if matches!(rec, CoordRecord::Begin { .. }) {
                crash::point("company.coord.after_begin");
            }
        }
        w
    }

    /// Queue a record. Err: the log refused it (a full disk; nothing
    /// written). A log that *failed* stops the node (fail-stop): without a
    /// durable decision it could not answer `decision` truthfully, and
    /// recovery decides from what is on disk.
    fn queue(&self, rec: &CoordRecord) -> io::Result<u64> {
        self.compaction.since.fetch_add(1, Ordering::Relaxed);
        logs::queue(&self.wal, rec, &self.name)
    }

    fn log_failed(&self, e: io::Error) -> ! {
        logs::fail_stop(&self.name, e)
    }

    /// Carry out what the rules asked, feeding every reply back in, until
    /// nothing is left. Order: actions first (sends go out at once), then
    /// our own hold's vote (its fsync overlapped the sends), then the
    /// peers' votes, then forced records.
    fn drive(&self, mut w: Work) {
        loop {
            while let Some(a) = w.acts.pop_front() {
                self.act(a, &mut w);
            }
            if let Some((txn, lv)) = w.local.pop() {
                let v = self.local.vote(lv, self.peer_timeout);
                crash::point("company.coord.after_prepare");
                let me = self.name.clone();
                self.feed(&mut w, |c, now, out| c.vote(now, &txn, &me, v, out));
            } else if let Some((txn, company, p)) = w.remote.pop_front() {
                let v = self.pool.finish(*p).map(|_| Vote::Yes);
                crash::point("company.coord.after_prepare");
                self.feed(&mut w, |c, now, out| c.vote(now, &txn, &company, v, out));
            } else if let Some((ticket, txn, commit)) = w.forced.pop_front() {
                if let Err(e) = self.wal.wait(ticket) {
                    self.log_failed(e);
                }
                if commit {
                    crash::point("company.coord.after_decision");
                } else {
                    crash::point("company.coord.after_abort_log");
                }
                self.ends_follow(&txn);
                self.feed(&mut w, |c, now, out| c.forced(now, &txn, out));
            } else {
                return;
            }
        }
    }

    /// Traces: `txn`'s `end` follows what this thread has seen (its
    /// decision, or an acknowledgement).
    fn ends_follow(&self, txn: &str) {
        if !crate::wire::trace::enabled() {
            return;
        }
        let mut ends = lock(&self.ends);
        let c = ends.remove(txn).unwrap_or_default();
        ends.insert(txn.to_string(), c.join(&crate::wire::trace::cause()));
    }

    fn ends_take(&self, txn: &str) -> crate::wire::trace::Cause {
        if !crate::wire::trace::enabled() {
            return crate::wire::trace::Cause::default();
        }
        let mut ends = lock(&self.ends);
        ends.remove(txn).unwrap_or_default()
    }

    fn feed(
        &self,
        w: &mut Work,
        input: impl FnOnce(&mut twopc::Coordinator, u64, &mut Vec<Action>),
    ) {
        let more = self.step(input);
        w.acts.extend(more.acts);
        w.forced.extend(more.forced);
    }

    fn act(&self, a: Action, w: &mut Work) {
        match a {
            Action::Send {
                to,
                msg: Msg::Prepare(p),
            } => {
                crash::point("company.coord.before_prepare");
                if to == self.name {
                    let (v, lv) = self.local.hold(&p);
                    match lv {
                        Some(lv) => w.local.push((p.txn.clone(), lv)),
                        None => crash::point("company.coord.after_prepare"),
                    }
                    self.feed(w, |c, now, out| c.vote(now, &p.txn, &to, v, out));
                    return;
                }
                match self.peers.get(&to) {
                    Some(addr) => {
                        let call = self.pool.start(addr, "prepare", to_body(&p));
                        w.remote.push_back((p.txn, to, Box::new(call)));
                    }
                    None => {
                        let e = Error::new(Code::NodeNotFound, format!("unknown company '{to}'"));
                        self.feed(w, |c, now, out| c.vote(now, &p.txn, &to, Err(e), out));
                    }
                }
            }
            Action::Send {
                to,
                msg: Msg::Decide { txn, commit },
            } => {
                w.decided = true;
                self.decide(&to, &txn, commit, w);
            }
            Action::Send {
                to,
                msg: Msg::Forward { request, reply_to },
            } => {
                crash::point("company.forward.before_send");
                let r = self.forward(&to, &request);
                crash::point("company.forward.after_reply");
                self.feed(w, |c, _, out| c.relay(reply_to, r, &to, out));
            }
            Action::Send { .. } | Action::LogCoord { .. } | Action::LogPart { .. } => {}
            Action::Reply { to, answer } => {
                if std::mem::take(&mut w.decided) {
                    crash::point("company.coord.after_phase2");
                }
                self.reply(to, answer);
            }
        }
    }

    /// Phase 2 to one participant: ours in-process; a peer through its
    /// decider thread (or inline, before the deciders run).
    fn decide(&self, to: &str, txn: &str, commit: bool, w: &mut Work) {
        if to == self.name {
            let r = self.local.decide(txn, commit).map(|_| ());
            self.ends_follow(txn);
            self.feed(w, |c, _, out| c.acked(txn, to, r, out));
            return;
        }
        match self.deciders.get().and_then(|d| d.get(to)) {
            Some(tx) => {
                // The decider carries on this thread's work (for traces).
                let queued = (txn.to_string(), commit, crate::wire::trace::cause());
                if tx.push(queued).is_err() {
                    let e = Error::crash("decider stopped");
                    self.feed(w, |c, _, out| c.acked(txn, to, Err(e), out));
                }
            }
            None => self.send_decisions(to, vec![(txn.to_string(), commit)]),
        }
    }

    /// Forward a request to its coordinator and return its answer.
    fn forward(&self, to: &str, r: &RouteRequest) -> Result<Answer, Error> {
        let Some(addr) = self.peers.get(to) else {
            return Err(Error::new(
                Code::NodeNotFound,
                format!("unknown company '{to}'"),
            ));
        };
        let mut fields = to_body(r);
        fields.insert("forwarded".into(), json!(true));
        let b = self.forwards.call(addr, "reserve", fields)?;
        serde_json::from_value::<RouteOutcome>(Value::Object(b))
            .map(Answer::Outcome)
            .map_err(|e| Error::crash(format!("{to} answered an odd outcome: {e}")))
    }

    fn register(&self) -> (ReplyTo, crossbeam_channel::Receiver<Result<Answer, Error>>) {
        let token = next_token();
        let (tx, rx) = bounded(1);
        lock(&self.waiting).insert(token.0, tx);
        (token, rx)
    }

    fn reply(&self, to: ReplyTo, answer: Result<Answer, Error>) {
        let tx = lock(&self.waiting).remove(&to.0);
        if let Some(tx) = tx {
            let _ = tx.send(answer);
        }
    }

    /// Run `input` (which takes the reply token) and wait up to `wait` for
    /// its reply.
    fn ask(
        &self,
        wait: Duration,
        input: impl FnOnce(&mut twopc::Coordinator, u64, ReplyTo, &mut Vec<Action>),
    ) -> Option<Result<Answer, Error>> {
        let (token, rx) = self.register();
        let w = self.step(|c, now, out| input(c, now, token, out));
        self.drive(w);
        let r = rx.recv_timeout(wait).ok();
        if r.is_none() {
            lock(&self.waiting).remove(&token.0);
        }
        r
    }

    /// A route request (`reserve`, or from the broker): its outcome, from
    /// this company's record if it is a retry. `Err` is an error reply.
    pub fn reserve(&self, r: &RouteRequest) -> Result<RouteOutcome, Error> {
        let wait = Duration::from_millis(self.timing.retry_wait);
        let got = self.ask(wait, |c, now, to, out| {
            c.request(now, to, r, r.forwarded, out)
        });
        match got {
            Some(Ok(Answer::Outcome(o))) => Ok(o),
            Some(Ok(_)) => Err(Error::crash("odd answer to a route request")),
            Some(Err(e)) => Err(e),
            None => Err(Error::crash(format!(
                "{}/{} is not decided yet: retry with the same request_id, or look it up",
                r.vehicle, r.request_id
            ))),
        }
    }

    /// `decision`: the outcome of a transaction this company coordinates.
    pub fn decision(&self, txn: &str) -> Result<Body, Error> {
        let got = self.ask(DECISION_WAIT, |c, now, to, out| {
            c.decision(now, to, txn, out)
        });
        match got {
            Some(Ok(Answer::Decision { txn, commit })) => Ok(body(
                json!({"txn": txn, "outcome": if commit { "commit" } else { "abort" }}),
            )),
            Some(Ok(_)) => Err(Error::crash("odd answer to a decision question")),
            Some(Err(e)) => Err(e),
            None => Err(Error::unavailable(format!(
                "{txn}: decision being written; ask again"
            ))),
        }
    }

    /// `lookup` at this coordinator only.
    pub fn lookup_here(&self, vehicle: &str, request_id: &str) -> Lookup {
        self.lock().lookup(vehicle, request_id)
    }

    /// `lookup`: ask every company (ourselves in-process).
    pub fn lookup(&self, vehicle: &str, request_id: &str) -> (Lookup, Vec<String>) {
        let mut calls = Vec::new();
        for (name, addr) in &self.peers {
            if *name != self.name {
                let f = body(json!({"vehicle": vehicle, "request_id": request_id, "local": true}));
                calls.push((name.clone(), self.pool.start(addr, "lookup", f)));
            }
        }
        let mut answers = vec![(self.name.clone(), Ok(self.lookup_here(vehicle, request_id)))];
        for (name, p) in calls {
            let a = self.pool.finish(p).and_then(|b| lookup_from(&b));
            answers.push((name, a));
        }
        twopc::combine_lookups(answers)
    }

    /// Start one decision queue per peer: returns each peer's receiving
    /// end, to be drained (in batches) with [`Coordinator::send_decisions`].
    /// (A queue, not a channel: a decider that finds nothing parks at
    /// once instead of spinning and yielding first; docs/performance.md.)
    pub fn start_deciders(&self) -> Vec<(String, Arc<Queue<Queued>>)> {
        let mut senders = BTreeMap::new();
        let mut receivers = Vec::new();
        for peer in self.peers.keys().filter(|p| **p != self.name) {
            let q = Arc::new(Queue::new(DECIDE_QUEUE));
            senders.insert(peer.clone(), q.clone());
            receivers.push((peer.clone(), q));
        }
        if self.deciders.set(senders).is_err() {
            return Vec::new(); // already started
        }
        receivers
    }

    /// Send a batch of decisions to `peer` as one `decide`; feed back what
    /// it took.
    pub fn send_decisions(&self, peer: &str, batch: Vec<(String, bool)>) {
        let pick = |want: bool| -> Vec<&str> {
            batch
                .iter()
                .filter(|(_, c)| *c == want)
                .map(|(t, _)| t.as_str())
                .collect()
        };
        let fields = body(json!({"commit": pick(true), "abort": pick(false)}));
        let reply = match self.peers.get(peer) {
            Some(addr) => self.pool.call(addr, "decide", fields),
            None => Err(Error::new(
                Code::NodeNotFound,
                format!("unknown company '{peer}'"),
            )),
        };
        let mut done: HashSet<String> = HashSet::new();
        let mut refused: HashMap<String, Error> = HashMap::new();
        match &reply {
            Ok(b) => {
                for key in ["committed", "aborted"] {
                    done.extend(
                        b.get(key)
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(String::from),
                    );
                }
                for f in b
                    .get("failed")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let txn = f["txn"].as_str().unwrap_or_default().to_string();
                    let code = f["code"]
                        .as_u64()
                        .and_then(Code::from_number)
                        .unwrap_or(Code::Crash);
                    let e = Error::new(code, f["text"].as_str().unwrap_or_default());
                    if e.definite() && e.code != Code::TemporarilyUnavailable {
                        log::error!("{}: {peer} refused the decision on {txn}: {e}", self.name);
                    }
                    refused.insert(txn, e);
                }
            }
            Err(e) => log::info!(
                "{}: {} decision(s) to {peer} not acknowledged ({e}); will retry",
                self.name,
                batch.len()
            ),
        }
        let mut w = Work::default();
        for (txn, _) in &batch {
            let r = if done.contains(txn) {
                Ok(())
            } else if let Some(e) = refused.remove(txn) {
                Err(e)
            } else {
                Err(reply
                    .clone()
                    .err()
                    .unwrap_or_else(|| Error::crash("no answer")))
            };
            self.ends_follow(txn);
            self.feed(&mut w, |c, _, out| c.acked(txn, peer, r, out));
        }
        self.drive(w);
    }

    /// The resolver's tick: resend decisions nobody acknowledged (one call
    /// each), answer retries that waited too long, forget old aborts.
    pub fn finish_round(&self) {
        let w = self.step(|c, now, out| c.tick(now, out));
        let mut rest = Work::default();
        for a in w.acts {
            let Action::Send {
                to,
                msg: Msg::Decide { txn, commit },
            } = a
            else {
                rest.acts.push_back(a);
                continue;
            };
            crash::point("company.coord.before_resend");
            let r = if to == self.name {
                self.local.decide(&txn, commit).map(|_| ())
            } else {
                let kind = if commit { "commit" } else { "abort" };
                match self.peers.get(&to) {
                    Some(addr) => self
                        .pool
                        .call(addr, kind, body(json!({"txn": txn})))
                        .map(|_| ()),
                    None => Err(Error::new(
                        Code::NodeNotFound,
                        format!("unknown company '{to}'"),
                    )),
                }
            };
            crash::point("company.coord.after_resend");
            if r.is_ok() {
                log::info!(
                    "{}: {txn}: decision resent and acknowledged by {to}",
                    self.name
                );
            }
            self.ends_follow(&txn);
            self.feed(&mut rest, |c, _, out| c.acked(&txn, &to, r, out));
        }
        self.drive(rest);
    }

    /// Compact when enough was written since the last time; run by the
    /// resolver thread, off every reply path.
    pub fn maybe_compact(&self) {
        let c = &self.compaction;
        let since = c.since.load(Ordering::Relaxed);
        if c.every == 0 || since <= c.every || since <= c.snapshot_records.load(Ordering::Relaxed) {
            return;
        }
        // A failed compaction leaves the log as it was: try again after
        // another `every` records.
        if let Err(e) = self.compact() {
            c.since.store(0, Ordering::Relaxed);
            log::warn!("{}: compaction failed, log unchanged: {e}", self.name);
        }
    }

    /// Replace the log by what a restart needs ([`twopc::Coordinator::snapshot`]):
    /// the commit of every committed transaction, the abort of every abort
    /// within the retry horizon, and `begin` for every transaction not
    /// ended. Returns the records written.
    pub fn compact(&self) -> io::Result<usize> {
        // The state and the log position at one instant: every record is
        // queued under the rules' lock.
        let (recs, mark) = {
            let core = self.lock();
            (core.snapshot(), self.wal.mark())
        };
        let count = recs.len();
        crash::point("company.coord.before_compact");
        let values = recs
            .into_iter()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null));
        self.wal.rewrite_from(mark, values)?;
        let c = &self.compaction;
        c.since.store(0, Ordering::Relaxed);
        c.snapshot_records.store(count as u64, Ordering::Relaxed);
        c.done.fetch_add(1, Ordering::Relaxed);
        log::info!(
            "{}: coordinator log compacted to {count} records",
            self.name
        );
        crash::point("company.coord.after_compact");
        Ok(count)
    }

    pub fn status(&self) -> Value {
        let core = self.lock();
        let s = core.stats;
        let (remembered, _) = core.counts();
        let unfinished: Vec<&String> = core.open_txns().collect();
        let (appends, fsyncs) = self.wal.stats();
        json!({
            "committed": s.committed,
            "aborted": s.aborted,
            "failed": s.failed,
            "decisions_asked": s.decisions_asked,
            "unfinished": unfinished,
            "log": {"records": appends, "fsyncs": fsyncs},
            "transactions_remembered": remembered,
            "compactions": self.compaction.done.load(Ordering::Relaxed),
            "records_since_compaction": self.compaction.since.load(Ordering::Relaxed),
            "snapshot_records": self.compaction.snapshot_records.load(Ordering::Relaxed),
        })
    }
}

/// A `lookup_ok` (with `local`) back into a [`Lookup`].
fn lookup_from(b: &Body) -> Result<Lookup, Error> {
    let outcome = match b.get("outcome").and_then(Value::as_str) {
        Some("reserved") => LookupOutcome::Reserved,
        Some("rejected") => LookupOutcome::Rejected,
        Some("in_progress") => LookupOutcome::InProgress,
        Some("unknown") => LookupOutcome::Unknown,
        _ => return Err(Error::crash("odd lookup answer")),
    };
    let s = |k: &str| {
        b.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(Lookup {
        outcome,
        txn: s("txn"),
        coordinator: s("coordinator"),
        conflict: b
            .get("conflict")
            .and_then(|c| serde_json::from_value(c.clone()).ok()),
    })
}

/// A [`Lookup`] as `lookup_ok`'s fields.
pub fn lookup_body(
    vehicle: &str,
    request_id: &str,
    l: &Lookup,
    unreachable: Option<&[String]>,
) -> Body {
    let mut b = body(json!({
        "vehicle": vehicle,
        "request_id": request_id,
        "outcome": l.outcome.as_str(),
        "txn": l.txn,
        "coordinator": l.coordinator,
    }));
    if let Some(c) = &l.conflict {
        b.insert("conflict".into(), json!(c));
    }
    if let Some(u) = unreachable {
        b.insert("unreachable".into(), json!(u));
    }
    b
}
