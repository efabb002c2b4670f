//! The coordinator half of a company: runs the two-phase commit of one
//! route across the companies (itself included) with presumed abort, and
//! keeps its own durable log (`coordinator.log`).
//!
//! ```text
//! begin --all yes--> commit (forced before any commit is sent) --acks--> end
//!   |
//!   +--a no / timeout / a participant asked first--> abort --acks--> end
//! ```
//!
//! * Stops are prepared in one global order (company name): the first stop
//!   alone (only its in-memory hold, when it is our own), then all the
//!   others at once, from this thread (`send_all`: send every message, then
//!   read every reply; one parallel round instead of N-1 sequential ones). Racing routes for the same stops therefore meet
//!   at the first stop, where exactly one gets the hold and the others fail
//!   fast: one wins, never none. (Routes that share only later stops can
//!   each get one of them and both lose: the price of the parallel round.)
//! * The `begin` record is queued, not waited for: presumed abort covers
//!   its absence, and it reaches the disk with the commit record's fsync at
//!   the latest (records land in order), so it costs no fsync of its own.
//! * `decision` for a transaction without a commit decision records abort
//!   (in memory at once, durably before answering), so the coordinator can
//!   never commit it later.
//! * Phase 2 leaves the reply path: the decision is applied to our own
//!   participant at once and queued per peer; one decider thread per peer
//!   sends its queue as one `decide` (`send_decisions`), and `settle` writes
//!   `end` when the last participant acknowledged. Unacknowledged ones go
//!   to the finisher (`finish_round`), which resends.
//! * After a restart every transaction in the log is finished: commits are
//!   resent, undecided ones are aborted.
//! * The log is compacted (`compact`, from the resolver thread) to a commit
//!   record per committed transaction plus the transactions not ended; an
//!   ended abort is forgotten, on disk and in memory (presumed abort).

use super::answers::{Answers, MAX_ANSWERS};
use super::messages::{Conflict, Prepare, RouteOutcome, RouteRequest};
use super::participant::{Hold1, Participant};
use crate::client::{next_id, Pending, Pool};
use crate::crash;
use crate::error::{Code, Error};
use crate::ev::points::Stop;
use crate::message::{body, Body};
use crate::wal::Wal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnState {
    Preparing,
    /// The commit record is being written: a `decision` waits for it.
    CommitPending,
    Committed,
    Aborted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// A phase-2 outcome.
pub enum Decision {
    Commit,
    Abort,
}

/// A decided transaction whose participants have not all acknowledged.
struct Unfinished {
    decision: Decision,
    pending: Vec<String>,
}

pub const CRASH_POINTS: [(&str, &str); 16] = [
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
        "a decision question found the txn undecided: abort chosen, not yet logged",
    ),
    (
        "company.coord.after_abort_log",
        "that abort is durable, not yet answered",
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

/// How long a `decision` waits for a commit record being written.
const DECISION_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Counters {
    committed: AtomicU64,
    aborted: AtomicU64,
    failed: AtomicU64,
    decisions_asked: AtomicU64,
}

pub struct Coordinator {
    name: String,
    /// Company name → address, for every company including this one.
    peers: BTreeMap<String, String>,
    local: Arc<Participant>,
    pool: Pool,
    wal: Arc<Wal>,
    table: Mutex<HashMap<String, TxnState>>,
    changed: Condvar,
    unfinished: Mutex<BTreeMap<String, Unfinished>>,
    /// Answers to requests already handled here, by (vehicle, request_id):
    /// a retried request gets the same answer instead of a second route
    /// (within the retry window, see [`Answers`]).
    answered: Mutex<Answers>,
    counters: Counters,
    /// Per peer, to its decider thread, once started (else decisions are
    /// sent and acknowledged inline, before the reply).
    deciders: OnceLock<BTreeMap<String, crossbeam_channel::Sender<(String, Decision)>>>,
    /// Decided transactions whose remote participants have not all
    /// answered yet: txn → those still to answer.
    inflight: Mutex<HashMap<String, Vec<String>>>,
    /// Transactions begun and not ended, with their participants: all a
    /// compaction keeps of `begin` records. Like `table`, changed only with
    /// the `table` lock held, together with queueing the record that says
    /// so; that lock therefore gives a compaction a state and a log
    /// position that agree.
    open: Mutex<HashMap<String, Vec<String>>>,
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

/// A participant message on its way (see [`Coordinator::send_all`]).
enum Sent {
    /// Answered already (in-process, or refused before sending).
    Done(&'static str, Result<Body, Error>),
    /// Sent to a peer, reply not read yet.
    Remote(&'static str, Box<Pending>),
    /// For our own participant, not run yet.
    Local(&'static str, Body),
}

/// The coordinator's log, rebuilt one record at a time on open.
#[derive(Default)]
struct Restored {
    table: HashMap<String, TxnState>,
    /// Participants of each transaction not yet ended (an `end` record
    /// drops its entry at once, so replay does not hold every route).
    parts: HashMap<String, Vec<String>>,
}

impl Restored {
    fn apply(&mut self, name: &str, r: &Value) {
        let txn = r["txn"].as_str().unwrap_or_default().to_string();
        match r["k"].as_str() {
            Some("begin") => {
                let p = r["participants"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                self.parts.insert(txn.clone(), p);
                self.table.insert(txn, TxnState::Preparing);
            }
            Some("commit") => {
                self.table.insert(txn, TxnState::Committed);
            }
            Some("abort") => {
                self.table.insert(txn, TxnState::Aborted);
            }
            Some("end") => {
                self.parts.remove(&txn);
            }
            _ => log::warn!("{name}: unknown coordinator record {r}"),
        }
    }
}

impl Coordinator {
    /// Rebuild from the log: committed-but-unacknowledged transactions are
    /// resent, undecided ones are aborted (durably, now).
    pub fn open(
        name: &str,
        peers: BTreeMap<String, String>,
        local: Arc<Participant>,
        pool: Pool,
        log: &Path,
        answer_window: Duration,
        compact_every: u64,
    ) -> io::Result<Coordinator> {
        let mut restored = Restored::default();
        let (wal, replay) = Wal::open(log, |r| restored.apply(name, &r))?;
        let Restored { mut table, parts } = restored;
        let mut unfinished = BTreeMap::new();
        let mut undecided = Vec::new();
        for (txn, state) in table.iter_mut() {
            if *state == TxnState::Preparing {
                *state = TxnState::Aborted;
                undecided.push(txn.clone());
            }
            let decision = if *state == TxnState::Committed {
                Decision::Commit
            } else {
                Decision::Abort
            };
            if let Some(p) = parts.get(txn) {
                unfinished.insert(
                    txn.clone(),
                    Unfinished {
                        decision,
                        pending: p.clone(),
                    },
                );
            }
        }
        if !undecided.is_empty() {
            log::info!(
                "{name}: aborting {} undecided transaction(s) from the log",
                undecided.len()
            );
            let recs: Vec<Value> = undecided
                .iter()
                .map(|t| json!({"k": "abort", "txn": t}))
                .collect();
            if let Err(e) = wal.append_all(&recs) {
                log::error!("{name}: cannot log aborts during recovery: {e}");
            }
        }
        if !unfinished.is_empty() {
            log::info!(
                "{name}: {} transaction(s) to finish from the log",
                unfinished.len()
            );
        }
        let wal = Arc::new(wal);
        Ok(Coordinator {
            name: name.to_string(),
            peers,
            local,
            pool,
            wal,
            table: Mutex::new(table),
            changed: Condvar::new(),
            unfinished: Mutex::new(unfinished),
            answered: Mutex::new(Answers::new(answer_window, MAX_ANSWERS)),
            counters: Counters::default(),
            deciders: OnceLock::new(),
            inflight: Mutex::new(HashMap::new()),
            open: Mutex::new(parts),
            compaction: Compaction {
                every: compact_every,
                since: AtomicU64::new(replay.records),
                snapshot_records: AtomicU64::new(0),
                done: AtomicU64::new(0),
            },
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, TxnState>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_txns(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<String>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a record (callers hold the `table` lock, see `open`); returns
    /// its ticket for [`Coordinator::durable`]. Err: the log refused it (a
    /// full disk; nothing written). A log that *failed* stops the process
    /// itself (see [`Wal`]), and recovery decides from what is on disk.
    fn queue(&self, rec: Value) -> io::Result<u64> {
        self.compaction.since.fetch_add(1, Ordering::Relaxed);
        self.wal.enqueue(&[rec])
    }

    /// Wait until `ticket` is on disk (never with the `table` lock held).
    fn durable(&self, ticket: u64) {
        if let Err(e) = self.wal.wait(ticket) {
            self.log_failed(e)
        }
    }

    /// The log failed: the outcome of this transaction is unknowable here.
    /// The log stops the process itself once the other waiters have had
    /// their error replies (fail-stop, see [`Wal`]); this thread only waits
    /// for that (and exits itself should it not come).
    fn log_failed(&self, e: io::Error) -> ! {
        log::error!(
            "{}: coordinator log write failed ({e}); stopping",
            self.name
        );
        std::thread::sleep(Duration::from_secs(5));
        std::process::exit(crate::wal::FAIL_STOP_EXIT);
    }

    /// Send one participant message, to ourselves in-process (same code
    /// path as a remote peer's handler) or to a peer over the pool.
    fn send(&self, company: &str, kind: &'static str, fields: Body) -> Result<Body, Error> {
        let mut out = self.send_all(vec![(company.to_string(), kind, fields)], || {});
        out.pop()
            .unwrap_or_else(|| Err(Error::crash("no reply collected")))
    }

    /// Send several participant messages at once, from this thread: every
    /// remote one goes out first, then the local ones run in-process, then
    /// `meanwhile`, then the remote replies are collected. Results are in
    /// the order of `msgs`. No thread per message: a round trip to each
    /// peer overlaps the others' and our own local work.
    fn send_all(
        &self,
        msgs: Vec<(String, &'static str, Body)>,
        meanwhile: impl FnOnce(),
    ) -> Vec<Result<Body, Error>> {
        let sent = self.start_all(msgs);
        meanwhile();
        self.finish_all(sent)
    }

    /// First half of [`Coordinator::send_all`]: remote messages sent, local
    /// ones already answered.
    fn start_all(&self, msgs: Vec<(String, &'static str, Body)>) -> Vec<Sent> {
        let mut sent: Vec<Sent> = msgs
            .into_iter()
            .map(|(company, kind, fields)| {
                if kind == "prepare" {
                    crash::point("company.coord.before_prepare");
                }
                if company == self.name {
                    return Sent::Local(kind, fields);
                }
                match self.peers.get(&company) {
                    Some(addr) => Sent::Remote(kind, Box::new(self.pool.start(addr, kind, fields))),
                    None => Sent::Done(
                        kind,
                        Err(Error::new(
                            Code::NodeNotFound,
                            format!("unknown company '{company}'"),
                        )),
                    ),
                }
            })
            .collect();
        for s in sent.iter_mut() {
            if let Sent::Local(kind, fields) = s {
                let req = crate::message::Request::new(kind, std::mem::take(fields));
                *s = Sent::Done(kind, self.local_call(&req));
            }
        }
        sent
    }

    /// Second half of [`Coordinator::send_all`]: the replies, in order.
    fn finish_all(&self, sent: Vec<Sent>) -> Vec<Result<Body, Error>> {
        sent.into_iter()
            .map(|s| {
                let (kind, r) = match s {
                    Sent::Done(kind, r) => (kind, r),
                    Sent::Remote(kind, p) => (kind, self.pool.finish(*p)),
                    Sent::Local(kind, _) => (kind, Err(Error::crash("local message not run"))),
                };
                if kind == "prepare" {
                    crash::point("company.coord.after_prepare");
                }
                r
            })
            .collect()
    }

    /// A participant message to our own participant.
    fn local_call(&self, req: &crate::message::Request) -> Result<Body, Error> {
        match req.kind.as_str() {
            "prepare" => self.local.prepare(&req.parse()?),
            "commit" => self.local.commit(req.str("txn")?),
            "abort" => self.local.abort(req.str("txn")?),
            kind => Err(Error::malformed(format!(
                "not a participant message: {kind}"
            ))),
        }
    }

    /// Check a route: 1..=N stops, distinct known companies.
    fn validate(&self, r: &RouteRequest) -> Result<(), String> {
        if r.stops.is_empty() || r.stops.len() > self.peers.len() {
            return Err(format!("a route has 1 to {} stops", self.peers.len()));
        }
        let mut seen = Vec::new();
        for s in &r.stops {
            if !self.peers.contains_key(&s.company) {
                return Err(format!("unknown company '{}'", s.company));
            }
            if seen.contains(&&s.company) {
                return Err(format!(
                    "two stops at company {}: one stop per company",
                    s.company
                ));
            }
            if s.start >= s.end {
                return Err(format!("stop {}: window must have start < end", s.point));
            }
            seen.push(&s.company);
        }
        Ok(())
    }

    /// Run the two-phase commit of one route and return its outcome.
    pub fn reserve(&self, r: &RouteRequest) -> RouteOutcome {
        let key = (r.vehicle.clone(), r.request_id.clone());
        if let Some(prev) = self
            .answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key, Instant::now())
        {
            return prev.clone();
        }
        let out = self.run(r);
        let mut answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        answered.insert(key, out.clone(), Instant::now());
        out
    }

    fn run(&self, r: &RouteRequest) -> RouteOutcome {
        let mut out = RouteOutcome {
            request_id: r.request_id.clone(),
            vehicle: r.vehicle.clone(),
            outcome: "failed".into(),
            txn: String::new(),
            coordinator: self.name.clone(),
            stops: r.stops.clone(),
            conflict: None,
        };
        if let Err(why) = self.validate(r) {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            out.conflict = Some(Conflict {
                company: String::new(),
                point: String::new(),
                start: 0,
                end: 0,
                code: Code::MalformedRequest.number(),
                reason: why,
            });
            return out;
        }
        let txn = format!("{}-{}", self.name, next_id());
        out.txn = txn.clone();
        // The canonical order: every coordinator takes holds in company
        // order, so two routes racing for a stop meet there first.
        let mut stops: Vec<Stop> = r.stops.clone();
        stops.sort_by(|a, b| a.company.cmp(&b.company));
        let participants: Vec<String> = stops.iter().map(|s| s.company.clone()).collect();
        let begin = json!({"k": "begin", "txn": txn, "vehicle": r.vehicle,
                           "request_id": r.request_id, "participants": participants, "stops": stops});
        // `begin` only lets a restarted coordinator abort proactively
        // (presumed abort already covers its absence), so it is queued and
        // rides on the next fsync of this log — at the latest the commit
        // record's, which is all recovery needs.
        {
            let mut t = self.table();
            t.insert(txn.clone(), TxnState::Preparing);
            self.open_txns().insert(txn.clone(), participants.clone());
            crash::point("company.coord.before_begin");
            if let Err(e) = self.queue(begin) {
                // Refused (a full disk): nothing was asked of anyone yet.
                t.remove(&txn);
                self.open_txns().remove(&txn);
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                let e = crate::wal::client_error(&e);
                out.conflict = Some(Conflict {
                    company: self.name.clone(),
                    point: String::new(),
                    start: 0,
                    end: 0,
                    code: e.code.number(),
                    reason: e.text,
                });
                return out;
            }
        }
        crash::point("company.coord.after_begin");
        let (asked, refused) = self.phase_one(&txn, r, &stops, &participants);
        let decision = match refused {
            Some(_) => Decision::Abort,
            None => {
                crash::point("company.coord.before_decision");
                self.decide_commit(&txn)
            }
        };
        self.phase_two(&txn, decision, &asked);
        match decision {
            Decision::Commit => {
                self.counters.committed.fetch_add(1, Ordering::Relaxed);
                out.outcome = "reserved".into();
            }
            Decision::Abort => {
                self.counters.aborted.fetch_add(1, Ordering::Relaxed);
                out.outcome = "rejected".into();
                out.conflict = refused.or_else(|| {
                    Some(Conflict {
                        company: self.name.clone(),
                        point: String::new(),
                        start: 0,
                        end: 0,
                        code: Code::Abort.number(),
                        reason: "aborted by the coordinator: a participant asked for the \
                                 outcome before the decision, or the log refused the commit \
                                 record"
                            .into(),
                    })
                });
            }
        }
        out
    }

    /// Phase 1: hold the first stop (canonical order) before any other, so
    /// routes racing for the same stops meet there first and one of them
    /// wins; then prepare the others at once. When the first stop is ours,
    /// only its in-memory hold comes first: its fsync overlaps the other
    /// prepares' round trips. Returns the companies asked and the first
    /// refusal in canonical order, if any.
    fn phase_one(
        &self,
        txn: &str,
        r: &RouteRequest,
        stops: &[Stop],
        participants: &[String],
    ) -> (Vec<String>, Option<Conflict>) {
        let prepare = |s: &Stop| Prepare {
            txn: txn.to_string(),
            coordinator: self.name.clone(),
            point: s.point.clone(),
            start: s.start,
            end: s.end,
            vehicle: r.vehicle.clone(),
            participants: participants.to_vec(),
        };
        let Some((first, rest)) = stops.split_first() else {
            return (Vec::new(), None);
        };
        let asked: Vec<String> = stops.iter().map(|s| s.company.clone()).collect();
        let mut first_ticket = None;
        if first.company == self.name {
            crash::point("company.coord.before_prepare");
            match self.local.hold(&prepare(first)) {
                Ok(Hold1::Writing(t)) => first_ticket = Some(t),
                Ok(Hold1::Voted(_)) => {}
                Err(e) => return (asked[..1].to_vec(), Some(refusal(first, e.code, e.text))),
            }
        } else {
            let fields = crate::message::to_body(&prepare(first));
            if let Err(e) = self.send(&first.company, "prepare", fields) {
                return (asked[..1].to_vec(), Some(refusal(first, e.code, e.text)));
            }
        }
        let mut first_vote = Ok(());
        let msgs = rest
            .iter()
            .map(|s| {
                let fields = crate::message::to_body(&prepare(s));
                (s.company.clone(), "prepare", fields)
            })
            .collect();
        let votes = self.send_all(msgs, || {
            if let Some(t) = first_ticket {
                first_vote = self.local.confirm(txn, t).map(|_| ());
                crash::point("company.coord.after_prepare");
            }
        });
        let first_refusal = first_vote.err().map(|e| refusal(first, e.code, e.text));
        let refused = first_refusal.or_else(|| {
            votes
                .into_iter()
                .zip(rest)
                .find_map(|(v, s)| v.err().map(|e| refusal(s, e.code, e.text)))
        });
        (asked, refused)
    }

    /// Decide commit unless a `decision` query already recorded abort.
    fn decide_commit(&self, txn: &str) -> Decision {
        let ticket = {
            let mut t = self.table();
            if t.get(txn) == Some(&TxnState::Aborted) {
                return Decision::Abort;
            }
            match self.queue(json!({"k": "commit", "txn": txn})) {
                Ok(ticket) => {
                    t.insert(txn.to_string(), TxnState::CommitPending);
                    ticket
                }
                // Refused: no commit without its record. Abort needs none
                // (presumed abort).
                Err(e) => {
                    log::warn!(
                        "{}: {txn}: commit record refused ({e}); aborting",
                        self.name
                    );
                    return Decision::Abort;
                }
            }
        };
        self.durable(ticket);
        crash::point("company.coord.after_decision");
        self.table().insert(txn.to_string(), TxnState::Committed);
        self.changed.notify_all();
        Decision::Commit
    }

    /// Send the decision to `targets`. Our own participant gets it in
    /// process at once; the others get it from their peer's decider thread
    /// (see [`Coordinator::send_decisions`]), off the reply path: the
    /// decision is durable here, so the route's outcome is final, and a
    /// participant that misses it asks for it. Unacknowledged targets go to
    /// the finisher, which keeps resending. Without decider threads (not
    /// started), each decision is sent before returning.
    fn phase_two(&self, txn: &str, d: Decision, targets: &[String]) {
        if d == Decision::Abort {
            self.table().insert(txn.to_string(), TxnState::Aborted);
            self.changed.notify_all();
        }
        let kind = if d == Decision::Commit {
            "commit"
        } else {
            "abort"
        };
        let (local, remote): (Vec<&String>, Vec<&String>) =
            targets.iter().partition(|c| **c == self.name);
        let mut failed = Vec::new();
        for c in local {
            let req = crate::message::Request::new(kind, body(json!({"txn": txn})));
            if !acknowledged(c, kind, txn, self.local_call(&req)) {
                failed.push(c.clone());
            }
        }
        if !failed.is_empty() {
            self.unfinished
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    txn.to_string(),
                    Unfinished {
                        decision: d,
                        pending: failed.clone(),
                    },
                );
        }
        if remote.is_empty() {
            crash::point("company.coord.after_phase2");
            if failed.is_empty() {
                self.end(txn);
            }
            return;
        }
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                txn.to_string(),
                remote.iter().map(|c| c.to_string()).collect(),
            );
        for c in remote {
            match self.deciders.get().and_then(|ds| ds.get(c.as_str())) {
                Some(tx) => {
                    if tx.send((txn.to_string(), d)).is_err() {
                        self.settle(txn, c, d, false);
                    }
                }
                None => self.send_decisions(c, vec![(txn.to_string(), d)]),
            }
        }
        crash::point("company.coord.after_phase2");
    }

    /// Start one decision queue per peer: returns each peer's receiving
    /// end, to be drained (in batches) with [`Coordinator::send_decisions`].
    pub fn start_deciders(&self) -> Vec<(String, crossbeam_channel::Receiver<(String, Decision)>)> {
        let mut senders = BTreeMap::new();
        let mut receivers = Vec::new();
        for peer in self.peers.keys().filter(|p| **p != self.name) {
            let (tx, rx) = crossbeam_channel::bounded(DECIDE_QUEUE);
            senders.insert(peer.clone(), tx);
            receivers.push((peer.clone(), rx));
        }
        if self.deciders.set(senders).is_err() {
            return Vec::new(); // already started
        }
        receivers
    }

    /// Send a batch of decisions to `peer` as one `decide` and settle each.
    pub fn send_decisions(&self, peer: &str, batch: Vec<(String, Decision)>) {
        let pick = |want: Decision| -> Vec<&str> {
            batch
                .iter()
                .filter(|(_, d)| *d == want)
                .map(|(t, _)| t.as_str())
                .collect()
        };
        let fields =
            body(json!({"commit": pick(Decision::Commit), "abort": pick(Decision::Abort)}));
        let reply = match self.peers.get(peer) {
            Some(addr) => self.pool.call(addr, "decide", fields),
            None => Err(Error::new(
                Code::NodeNotFound,
                format!("unknown company '{peer}'"),
            )),
        };
        let mut done: HashSet<String> = HashSet::new();
        match reply {
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
                    log::warn!("{}: {peer} refused a decision: {f}", self.name);
                }
            }
            Err(e) => log::info!(
                "{}: {} decision(s) to {peer} not acknowledged ({e}); will retry",
                self.name,
                batch.len()
            ),
        }
        for (txn, d) in batch {
            let ok = done.contains(&txn);
            self.settle(&txn, peer, d, ok);
        }
    }

    /// `peer` acknowledged `txn`'s decision (`ok`) or not (then it is the
    /// finisher's). The last acknowledgement writes `end`.
    fn settle(&self, txn: &str, peer: &str, d: Decision, ok: bool) {
        let last = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match inflight.get_mut(txn) {
                Some(left) => {
                    left.retain(|c| c != peer);
                    let last = left.is_empty();
                    if last {
                        inflight.remove(txn);
                    }
                    last
                }
                None => false,
            }
        };
        let mut unfinished = self.unfinished.lock().unwrap_or_else(|p| p.into_inner());
        if !ok {
            unfinished
                .entry(txn.to_string())
                .or_insert(Unfinished {
                    decision: d,
                    pending: Vec::new(),
                })
                .pending
                .push(peer.to_string());
            return;
        }
        if last && !unfinished.contains_key(txn) {
            drop(unfinished);
            self.end(txn);
        }
    }

    /// `decision`: the outcome of `txn`. Not decided → abort, recorded first.
    pub fn decision(&self, txn: &str) -> Result<Body, Error> {
        self.counters
            .decisions_asked
            .fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + DECISION_WAIT;
        let mut t = self.table();
        loop {
            match t.get(txn).copied() {
                Some(TxnState::Committed) => return Ok(decided(txn, "commit")),
                Some(TxnState::Aborted) => return Ok(decided(txn, "abort")),
                Some(TxnState::CommitPending) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::unavailable(format!(
                            "{txn}: decision being written; ask again"
                        )));
                    }
                    t = self
                        .changed
                        .wait_timeout(t, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                Some(TxnState::Preparing) | None => {
                    t.insert(txn.to_string(), TxnState::Aborted);
                    crash::point("company.coord.before_abort_log");
                    // Refused: abort stands anyway (presumed abort; this
                    // coordinator will never commit it now).
                    let ticket = self.queue(json!({"k": "abort", "txn": txn})).ok();
                    drop(t);
                    if let Some(ticket) = ticket {
                        self.durable(ticket);
                    }
                    crash::point("company.coord.after_abort_log");
                    log::info!(
                        "{}: {txn} asked before a decision: recorded abort",
                        self.name
                    );
                    return Ok(decided(txn, "abort"));
                }
            }
        }
    }

    /// One round of the finisher: resend decisions nobody acknowledged yet.
    pub fn finish_round(&self) {
        let work: Vec<(String, Decision, Vec<String>)> = self
            .unfinished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(t, u)| (t.clone(), u.decision, u.pending.clone()))
            .collect();
        for (txn, d, pending) in work {
            let kind = if d == Decision::Commit {
                "commit"
            } else {
                "abort"
            };
            let still: Vec<String> = pending
                .into_iter()
                .filter(|c| {
                    crash::point("company.coord.before_resend");
                    let r = self.send(c, kind, body(json!({"txn": txn})));
                    crash::point("company.coord.after_resend");
                    !acknowledged(c, kind, &txn, r)
                })
                .collect();
            let mut u = self.unfinished.lock().unwrap_or_else(|p| p.into_inner());
            if still.is_empty() {
                u.remove(&txn);
                drop(u);
                log::info!("{}: {txn}: {kind} finished after retry", self.name);
                self.end(&txn);
            } else if let Some(e) = u.get_mut(&txn) {
                e.pending = still;
            }
        }
    }

    /// Queue the `end` record, not waited for: it reaches the disk with the
    /// next decision's fsync. It only spares a restarted coordinator from
    /// resending a decision everyone already has (resending is harmless),
    /// so it is worth no fsync of its own — which would delay the next
    /// route's commit record.
    ///
    /// An aborted transaction is forgotten here: every participant has its
    /// abort, and a later `decision` question about it gets abort anyway
    /// (presumed abort). A committed one is remembered for good: a
    /// participant acknowledges a commit before its record is on disk, so
    /// it may still ask after a crash.
    fn end(&self, txn: &str) {
        crash::point("company.coord.before_end");
        let mut t = self.table();
        self.open_txns().remove(txn);
        if t.get(txn) == Some(&TxnState::Aborted) {
            t.remove(txn);
        }
        self.compaction.since.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.wal.enqueue(&[json!({"k": "end", "txn": txn})]) {
            log::warn!("{}: cannot log the end of {txn}: {e}", self.name);
        }
    }

    /// Compact when enough was written since the last time (see
    /// `Compaction`); run by the resolver thread, off every reply path.
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

    /// Replace the log by what a restart needs: a `commit` record for every
    /// committed transaction (participants may ask about it at any time),
    /// and `begin` (+ its decision) for every transaction not ended. Ended
    /// aborts need nothing (presumed abort). Returns the records written.
    pub fn compact(&self) -> io::Result<usize> {
        // The state and the log position at one instant: every change is
        // queued with the `table` lock held. Copy under it, build after.
        let (states, open, mark) = {
            let t = self.table();
            let open = self.open_txns().clone();
            let states: Vec<(String, TxnState)> = t
                .iter()
                .filter(|(txn, s)| {
                    matches!(s, TxnState::Committed | TxnState::CommitPending)
                        || open.contains_key(*txn)
                })
                .map(|(txn, s)| (txn.clone(), *s))
                .collect();
            (states, open, self.wal.mark())
        };
        let count = states
            .iter()
            .map(|(txn, s)| {
                usize::from(open.contains_key(txn)) + usize::from(*s != TxnState::Preparing)
            })
            .sum::<usize>();
        // Built as they are written: a snapshot of a million decisions is
        // never a million JSON values in memory at once.
        let recs = states.into_iter().flat_map(|(txn, state)| {
            let begin = open
                .get(&txn)
                .map(|parts| json!({"k": "begin", "txn": txn, "participants": parts}));
            let decision = match state {
                // A commit being written is queued before the mark, and
                // `rewrite_from` waits for it to be durable.
                TxnState::Committed | TxnState::CommitPending => {
                    Some(json!({"k": "commit", "txn": txn}))
                }
                TxnState::Aborted => Some(json!({"k": "abort", "txn": txn})),
                TxnState::Preparing => None,
            };
            begin.into_iter().chain(decision)
        });
        crash::point("company.coord.before_compact");
        self.wal.rewrite_from(mark, recs)?;
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
        let c = &self.counters;
        let unfinished: Vec<String> = self
            .unfinished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let (appends, fsyncs) = self.wal.stats();
        json!({
            "committed": c.committed.load(Ordering::Relaxed),
            "aborted": c.aborted.load(Ordering::Relaxed),
            "failed": c.failed.load(Ordering::Relaxed),
            "decisions_asked": c.decisions_asked.load(Ordering::Relaxed),
            "answers_remembered": self.answered.lock().unwrap_or_else(|p| p.into_inner()).len(),
            "unfinished": unfinished,
            "log": {"records": appends, "fsyncs": fsyncs},
            "transactions_remembered": self.table().len(),
            "compactions": self.compaction.done.load(Ordering::Relaxed),
            "records_since_compaction": self.compaction.since.load(Ordering::Relaxed),
            "snapshot_records": self.compaction.snapshot_records.load(Ordering::Relaxed),
        })
    }
}

fn refusal(s: &Stop, code: Code, reason: String) -> Conflict {
    Conflict {
        company: s.company.clone(),
        point: s.point.clone(),
        start: s.start,
        end: s.end,
        code: code.number(),
        reason,
    }
}

/// Did the participant take the decision? A definite "already in the other
/// state" would be a protocol violation: logged loudly, not retried forever.
fn acknowledged(company: &str, kind: &str, txn: &str, r: Result<Body, Error>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) if e.definite() && e.code != Code::TemporarilyUnavailable => {
            log::error!("{company} refused {kind} of {txn}: {e}");
            true
        }
        Err(e) => {
            log::debug!("{company}: {kind} of {txn} not acknowledged: {e}");
            false
        }
    }
}

fn decided(txn: &str, outcome: &str) -> Body {
    body(json!({"txn": txn, "outcome": outcome}))
}
