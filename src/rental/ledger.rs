//! The backup's state machine: where every vehicle is, the pending queues,
//! and the first answer to every request id.
//!
//! Every change is split in two steps so that the log and the memory can
//! never disagree:
//! 1. a `decide_*` function validates a request against the current state and
//!    returns a [`Ruling`]: either answer now (a retry's stored first answer)
//!    or write a [`Record`] that names every choice made (which car, which
//!    pending request gets it), then answer;
//! 2. [`Ledger::apply`] applies a record. It makes no choices, so replaying
//!    the log on restart rebuilds exactly the state that was acknowledged.
//!
//! Nothing here does I/O; `backup.rs` writes the records to the WAL.

use super::fleet::{self, Class, FLEET};
use super::record::{present, Record};
use crate::wire::error::Error;
use crate::wire::message::Body;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where one vehicle is. Each of the 14 is in exactly one place, by
/// construction (one map entry per car). In a snapshot and in `audit`:
/// `{"state":"free","terminal":...}` and so on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Place {
    /// In the stock of a terminal, free to rent there.
    Free { terminal: String },
    /// Rented to a client under its rent request id.
    Rented { request_id: String, client: String },
    /// Handed to a pending request that has not claimed it yet.
    Allocated { request_id: String },
}

/// The life of a pending request (in a snapshot: `{"state":"waiting"}`,
/// `{"state":"allocated","car":...,"terminal":...}`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum PendState {
    Waiting,
    /// A returned car was handed to it at `terminal`; not yet claimed.
    Allocated {
        car: String,
        terminal: String,
        /// Not logged: like replaying the original `return`/`match`, a
        /// restart restarts the claim clock.
        #[serde(skip, default = "Instant::now")]
        since: Instant,
    },
    /// The client learned about its car (callback answered or check_pending
    /// with claim): the car is rented to it.
    Claimed {
        car: String,
        terminal: String,
    },
    Cancelled,
    /// Allocated but never claimed within the claim timeout: the car went
    /// back to stock.
    Expired {
        car: String,
    },
}

/// A request waiting for a car of its class (also after it got one: its
/// state says what happened), as a snapshot lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub request_id: String,
    pub class: Class,
    pub client: String,
    #[serde(deserialize_with = "present")]
    pub callback: Option<String>,
    pub terminal: String,
    pub state: PendState,
}

/// What a `decide_*` function concluded: the ruling on a request.
#[derive(Debug)]
pub enum Ruling {
    /// Nothing to write: answer with these fields (a retry's first answer,
    /// or a no-op such as cancelling twice).
    Answer(Body),
    /// Write this record, then answer with what [`Ledger::apply`] returns.
    Write(Record),
}

/// A ledger's state at one moment, for a snapshot.
pub struct SnapshotParts {
    lsn: u64,
    cars: BTreeMap<String, Place>,
    pending: Vec<Pending>,
    queues: BTreeMap<Class, VecDeque<String>>,
    outcomes: HashMap<Arc<str>, Arc<Outcome>>,
}

/// Entries per record after a snapshot's first (`snapshot_more`): a big
/// ledger is written, and replayed, a chunk at a time, never as one JSON
/// value (one record of 120,000 answers took 1.9 s and 350 MiB to replay).
const SNAPSHOT_CHUNK: usize = 1000;

impl SnapshotParts {
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    /// The snapshot as log records: a `snapshot` with the cars and queues,
    /// then `snapshot_more` records with the pending requests and the
    /// remembered answers, in order (so two equal ledgers give equal
    /// snapshots). Built as they are consumed.
    pub fn records(self) -> impl Iterator<Item = Record> {
        let head = Record::Snapshot {
            lsn: self.lsn,
            cars: self.cars,
            queues: self.queues,
            pending: Vec::new(),
            outcomes: BTreeMap::new(),
        };
        let mut pending = self.pending;
        pending.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        let mut outcomes: Vec<(Arc<str>, Arc<Outcome>)> = self.outcomes.into_iter().collect();
        outcomes.sort_by(|a, b| a.0.cmp(&b.0));
        let pending =
            (0..pending.len().div_ceil(SNAPSHOT_CHUNK)).map(move |i| Record::SnapshotMore {
                pending: nth_chunk(&pending, i).to_vec(),
                outcomes: BTreeMap::new(),
            });
        let answers = (0..outcomes.len().div_ceil(SNAPSHOT_CHUNK)).map(move |i| {
            let outcomes = nth_chunk(&outcomes, i)
                .iter()
                .map(|(rid, o)| (rid.to_string(), Outcome::clone(o)))
                .collect();
            Record::SnapshotMore {
                pending: Vec::new(),
                outcomes,
            }
        });
        std::iter::once(head).chain(pending).chain(answers)
    }
}

/// The `i`th run of [`SNAPSHOT_CHUNK`] items of `v` (the last may be shorter).
fn nth_chunk<T>(v: &[T], i: usize) -> &[T] {
    let from = (i * SNAPSHOT_CHUNK).min(v.len());
    &v[from..(from + SNAPSHOT_CHUNK).min(v.len())]
}

/// The first answer to a request id, kept small and rebuilt when asked. A
/// stored answer `Body` cost about 2 KiB per request in memory (measured:
/// a backup grew to 450 MiB over 120,000 requests); this is a few dozen
/// bytes, and [`Outcome::answer`] gives back exactly the same fields. In a
/// snapshot: `{"op":"rent","answer":{"car":...,"terminal":...}}` (`answer`
/// may hold more: logs of earlier versions kept the whole answer there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "answer", rename_all = "lowercase")]
pub enum Outcome {
    Rent {
        car: String,
        terminal: String,
    },
    Pend {
        class: Class,
        position: u64,
        terminal: String,
    },
    Return {
        car: String,
        terminal: String,
        #[serde(deserialize_with = "present")]
        handed_to: Option<String>,
    },
}

impl Outcome {
    pub fn op(&self) -> &'static str {
        match self {
            Outcome::Rent { .. } => "rent",
            Outcome::Pend { .. } => "pend",
            Outcome::Return { .. } => "return",
        }
    }

    /// The answer to `request_id`, as [`Ledger::apply`] first gave it.
    pub fn answer(&self, request_id: &str) -> Body {
        match self {
            Outcome::Rent { car, terminal } => rented_body(request_id, car, terminal),
            Outcome::Pend {
                class,
                position,
                terminal,
            } => crate::body(json!({
                "request_id": request_id, "status": "pending", "class": class.name(),
                "position": position, "terminal": terminal,
            })),
            Outcome::Return {
                car,
                terminal,
                handed_to,
            } => crate::body(json!({
                "request_id": request_id, "car": car, "terminal": terminal, "handed_to": handed_to,
            })),
        }
    }
}

pub struct Ledger {
    cars: BTreeMap<String, Place>,
    pending: HashMap<String, Pending>,
    queues: BTreeMap<Class, VecDeque<String>>,
    /// request id → (operation, first answer) for rent, pend and return.
    /// Shared pointers, so a snapshot copies this map in a few milliseconds
    /// under the lock and serializes it outside (see `snapshot_parts`).
    outcomes: HashMap<Arc<str>, Arc<Outcome>>,
    lsn: u64,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new()
    }
}

impl Ledger {
    /// The initial fleet: every car free at the terminal managing its class.
    pub fn new() -> Ledger {
        let cars = FLEET
            .iter()
            .map(|v| {
                let terminal = fleet::terminal_name(v.class.manager());
                (v.id.to_string(), Place::Free { terminal })
            })
            .collect();
        Ledger {
            cars,
            pending: HashMap::new(),
            queues: Class::ALL.iter().map(|c| (*c, VecDeque::new())).collect(),
            outcomes: HashMap::new(),
            lsn: 0,
        }
    }

    /// Sequence number of the last applied record.
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    pub fn place(&self, car: &str) -> Option<&Place> {
        self.cars.get(car)
    }

    pub fn pending(&self, request_id: &str) -> Option<&Pending> {
        self.pending.get(request_id)
    }

    /// The sequence number of the next record.
    fn next_lsn(&self) -> u64 {
        self.lsn + 1
    }

    /// A stored first answer for `request_id`, if the same operation saw it
    /// before; error 21 if the id was used by a different operation.
    fn known(&self, request_id: &str, op: &str) -> Result<Option<Body>, Error> {
        match self.outcomes.get(request_id) {
            None => Ok(None),
            Some(a) if a.op() == op || (op != "return" && a.op() != "return") => {
                Ok(Some(a.answer(request_id)))
            }
            Some(a) => Err(Error::new(
                crate::wire::error::Code::AlreadyExists,
                format!(
                    "request id '{request_id}' was already used by a '{}'",
                    a.op()
                ),
            )),
        }
    }

    /// Rent a free car of `class` that is at `terminal`.
    pub fn decide_rent(
        &self,
        request_id: &str,
        class: Class,
        terminal: &str,
        client: &str,
    ) -> Result<Ruling, Error> {
        if let Some(b) = self.known(request_id, "rent")? {
            return Ok(Ruling::Answer(b));
        }
        let car = FLEET
            .iter()
            .filter(|v| v.class == class)
            .find(|v| {
                matches!(self.cars.get(v.id), Some(Place::Free { terminal: t }) if t == terminal)
            })
            .ok_or_else(|| {
                Error::not_found(format!("no free {class} vehicle at {terminal}"))
            })?;
        Ok(Ruling::Write(Record::Rent {
            lsn: self.next_lsn(),
            request_id: request_id.to_string(),
            car: car.id.to_string(),
            terminal: terminal.to_string(),
            client: client.to_string(),
        }))
    }

    /// Terminals holding at least one free car of `class`, in name order.
    pub fn holders(&self, class: Class) -> Vec<String> {
        let set: BTreeSet<String> = self
            .cars
            .iter()
            .filter(|(id, _)| fleet::vehicle(id).map(|v| v.class) == Some(class))
            .filter_map(|(_, p)| match p {
                Place::Free { terminal } => Some(terminal.clone()),
                _ => None,
            })
            .collect();
        set.into_iter().collect()
    }

    /// Queue a pending request, unless a car of the class is free at a
    /// terminal the caller could still reach (then it must rent that one:
    /// a client never waits while a reachable car stands idle).
    #[allow(clippy::too_many_arguments)]
    pub fn decide_pend(
        &self,
        request_id: &str,
        class: Class,
        terminal: &str,
        client: &str,
        callback: Option<&str>,
        unreachable: &[String],
    ) -> Result<Ruling, Error> {
        if let Some(b) = self.known(request_id, "pend")? {
            return Ok(Ruling::Answer(b));
        }
        let reachable: Vec<String> = self
            .holders(class)
            .into_iter()
            .filter(|t| !unreachable.contains(t))
            .collect();
        if !reachable.is_empty() {
            return Err(Error::new(
                crate::wire::error::Code::PreconditionFailed,
                format!(
                    "a {class} vehicle is free at {}; rent it there",
                    reachable.join(", ")
                ),
            ));
        }
        Ok(Ruling::Write(Record::Pend {
            lsn: self.next_lsn(),
            request_id: request_id.to_string(),
            class,
            terminal: terminal.to_string(),
            client: client.to_string(),
            callback: callback.map(str::to_string),
        }))
    }

    /// A rented car comes back to `terminal`; the oldest waiting request of
    /// its class anywhere gets it.
    pub fn decide_return(
        &self,
        request_id: &str,
        car: &str,
        terminal: &str,
    ) -> Result<Ruling, Error> {
        if let Some(b) = self.known(request_id, "return")? {
            return Ok(Ruling::Answer(b));
        }
        let Some(v) = fleet::vehicle(car) else {
            return Err(Error::not_found(format!("no vehicle '{car}' in the fleet")));
        };
        match self.cars.get(car) {
            Some(Place::Rented { .. }) => {}
            Some(Place::Free { terminal: t }) => {
                return Err(Error::new(
                    crate::wire::error::Code::PreconditionFailed,
                    format!("{car} is not rented: it is free at {t}"),
                ))
            }
            _ => {
                return Err(Error::new(
                    crate::wire::error::Code::PreconditionFailed,
                    format!("{car} is not rented: it is held for a pending request"),
                ))
            }
        }
        let handed_to = self.next_waiting(v.class);
        Ok(Ruling::Write(Record::Return {
            lsn: self.next_lsn(),
            request_id: request_id.to_string(),
            car: car.to_string(),
            terminal: terminal.to_string(),
            handed_to,
        }))
    }

    fn next_waiting(&self, class: Class) -> Option<String> {
        self.queues.get(&class).and_then(|q| q.front().cloned())
    }

    pub fn decide_cancel(&self, request_id: &str) -> Result<Ruling, Error> {
        let Some(p) = self.pending.get(request_id) else {
            return Err(Error::not_found(format!(
                "no pending request '{request_id}'"
            )));
        };
        match &p.state {
            PendState::Waiting => Ok(Ruling::Write(Record::Cancel {
                lsn: self.next_lsn(),
                request_id: request_id.to_string(),
            })),
            PendState::Cancelled => Ok(Ruling::Answer(cancel_body(request_id))),
            PendState::Allocated { car, .. } | PendState::Claimed { car, .. } => Err(Error::new(
                crate::wire::error::Code::PreconditionFailed,
                format!("too late to cancel: '{request_id}' was already fulfilled with {car}"),
            )),
            PendState::Expired { car } => Err(Error::new(
                crate::wire::error::Code::PreconditionFailed,
                format!("'{request_id}' was fulfilled with {car} but never claimed; it expired"),
            )),
        }
    }

    pub fn decide_claim(&self, request_id: &str) -> Result<Ruling, Error> {
        let Some(p) = self.pending.get(request_id) else {
            return Err(Error::not_found(format!(
                "no pending request '{request_id}'"
            )));
        };
        match &p.state {
            PendState::Allocated { .. } => Ok(Ruling::Write(Record::Claim {
                lsn: self.next_lsn(),
                request_id: request_id.to_string(),
            })),
            PendState::Claimed { .. } => Ok(Ruling::Answer(self.pending_body(p))),
            _ => Err(Error::new(
                crate::wire::error::Code::PreconditionFailed,
                format!("'{request_id}' has no vehicle to claim"),
            )),
        }
    }

    /// Allocations older than `timeout` that nobody claimed: their cars go
    /// back to stock (or to the next waiting request of the class).
    pub fn decide_expiries(&self, timeout: Duration, now: Instant) -> Vec<Record> {
        let mut out = Vec::new();
        let mut lsn = self.lsn;
        // Each expiry hands the car to the *next* waiting request; two
        // expiries of one class in one sweep must not pick the same one.
        let mut taken: BTreeSet<String> = BTreeSet::new();
        let mut expired: Vec<&Pending> = self
            .allocated()
            .filter(|p| {
                matches!(&p.state, PendState::Allocated { since, .. }
                         if now.saturating_duration_since(*since) >= timeout)
            })
            .collect();
        expired.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        for p in expired {
            let PendState::Allocated { car, terminal, .. } = &p.state else {
                continue;
            };
            let next = self
                .queues
                .get(&p.class)
                .and_then(|q| q.iter().find(|r| !taken.contains(*r)).cloned());
            if let Some(n) = &next {
                taken.insert(n.clone());
            }
            lsn += 1;
            out.push(Record::Expire {
                lsn,
                request_id: p.request_id.clone(),
                car: car.clone(),
                terminal: terminal.clone(),
                handed_to: next,
            });
        }
        out
    }

    /// Free cars at `terminal` whose class has waiting requests (possible
    /// only if the terminal was unreachable when the request was queued).
    pub fn decide_matches(&self, terminal: &str) -> Vec<Record> {
        let mut out = Vec::new();
        let mut lsn = self.lsn;
        let mut taken: BTreeSet<String> = BTreeSet::new();
        for (car, place) in &self.cars {
            let Place::Free { terminal: t } = place else {
                continue;
            };
            let Some(v) = fleet::vehicle(car) else {
                continue;
            };
            if t != terminal {
                continue;
            }
            let next = self
                .queues
                .get(&v.class)
                .and_then(|q| q.iter().find(|r| !taken.contains(*r)).cloned());
            if let Some(n) = next {
                taken.insert(n.clone());
                lsn += 1;
                out.push(Record::Match {
                    lsn,
                    car: car.clone(),
                    terminal: terminal.to_string(),
                    handed_to: n,
                });
            }
        }
        out
    }

    /// Hand `car` (now at `terminal`) to pending `rid`.
    fn allocate(&mut self, car: &str, terminal: &str, rid: &str) {
        if let Some(p) = self.pending.get_mut(rid) {
            p.state = PendState::Allocated {
                car: car.to_string(),
                terminal: terminal.to_string(),
                since: Instant::now(),
            };
            if let Some(q) = self.queues.get_mut(&p.class) {
                q.retain(|r| r != rid);
            }
        }
        self.cars.insert(
            car.to_string(),
            Place::Allocated {
                request_id: rid.to_string(),
            },
        );
    }

    /// Apply one record (live or during replay) and return the answer to
    /// the request that produced it. Makes no choices: the record has them.
    pub fn apply(&mut self, rec: &Record) -> Body {
        if let Some(lsn) = rec.lsn() {
            self.lsn = self.lsn.max(lsn);
        }
        match rec {
            Record::Rent {
                request_id,
                car,
                terminal,
                client,
                ..
            } => self.apply_rent(request_id, car, terminal, client),
            Record::Pend {
                request_id,
                class,
                terminal,
                client,
                callback,
                ..
            } => self.apply_pend(request_id, *class, terminal, client, callback),
            Record::Return {
                request_id,
                car,
                terminal,
                handed_to,
                ..
            } => self.apply_return(request_id, car, terminal, handed_to.as_deref()),
            Record::Cancel { request_id, .. } => self.apply_cancel(request_id),
            Record::Claim { request_id, .. } => self.apply_claim(request_id),
            Record::Expire {
                request_id,
                car,
                terminal,
                handed_to,
                ..
            } => {
                if let Some(p) = self.pending.get_mut(request_id) {
                    p.state = PendState::Expired { car: car.clone() };
                }
                self.hand_over(car, terminal, handed_to.as_deref());
                Body::new()
            }
            Record::Match {
                car,
                terminal,
                handed_to,
                ..
            } => {
                self.allocate(car, terminal, handed_to);
                Body::new()
            }
            Record::Snapshot {
                lsn,
                cars,
                queues,
                pending,
                outcomes,
            } => {
                self.restore(*lsn, cars, queues);
                self.restore_more(pending, outcomes);
                Body::new()
            }
            Record::SnapshotMore { pending, outcomes } => {
                self.restore_more(pending, outcomes);
                Body::new()
            }
        }
    }

    fn apply_rent(&mut self, rid: &str, car: &str, terminal: &str, client: &str) -> Body {
        let place = Place::Rented {
            request_id: rid.to_string(),
            client: client.to_string(),
        };
        self.cars.insert(car.to_string(), place);
        let o = Outcome::Rent {
            car: car.to_string(),
            terminal: terminal.to_string(),
        };
        self.remember(rid.to_string(), o)
    }

    fn apply_cancel(&mut self, rid: &str) -> Body {
        if let Some(p) = self.pending.get_mut(rid) {
            p.state = PendState::Cancelled;
            if let Some(q) = self.queues.get_mut(&p.class) {
                q.retain(|r| r != rid);
            }
        }
        cancel_body(rid)
    }

    fn apply_pend(
        &mut self,
        rid: &str,
        class: Class,
        terminal: &str,
        client: &str,
        callback: &Option<String>,
    ) -> Body {
        let q = self.queues.entry(class).or_default();
        q.push_back(rid.to_string());
        let position = q.len() as u64;
        let p = Pending {
            request_id: rid.to_string(),
            class,
            client: client.to_string(),
            callback: callback.clone(),
            terminal: terminal.to_string(),
            state: PendState::Waiting,
        };
        self.pending.insert(rid.to_string(), p);
        let o = Outcome::Pend {
            class,
            position,
            terminal: terminal.to_string(),
        };
        self.remember(rid.to_string(), o)
    }

    fn apply_return(
        &mut self,
        rid: &str,
        car: &str,
        terminal: &str,
        handed_to: Option<&str>,
    ) -> Body {
        self.hand_over(car, terminal, handed_to);
        // The first answer also names the callback of the request the car
        // went to, so the terminal calls it back without asking again (a
        // retried return gets the remembered answer, without it, and the
        // terminal's sync finds the allocation instead).
        let callback = handed_to
            .and_then(|h| self.pending.get(h))
            .map(|p| p.callback.clone());
        let o = Outcome::Return {
            car: car.to_string(),
            terminal: terminal.to_string(),
            handed_to: handed_to.map(str::to_string),
        };
        let mut answer = self.remember(rid.to_string(), o);
        if let Some(cb) = callback {
            answer.insert("handed_callback".into(), json!(cb));
        }
        answer
    }

    fn apply_claim(&mut self, rid: &str) -> Body {
        let Some(p) = self.pending.get_mut(rid) else {
            return Body::new();
        };
        if let PendState::Allocated { car, terminal, .. } = p.state.clone() {
            p.state = PendState::Claimed {
                car: car.clone(),
                terminal,
            };
            let place = Place::Rented {
                request_id: rid.to_string(),
                client: p.client.clone(),
            };
            self.cars.insert(car, place);
        }
        match self.pending.get(rid) {
            Some(p) => self.pending_body(p),
            None => Body::new(),
        }
    }

    /// `car` is back at `terminal`: allocated to `handed_to`, or free there.
    fn hand_over(&mut self, car: &str, terminal: &str, handed_to: Option<&str>) {
        match handed_to {
            Some(h) => self.allocate(car, terminal, h),
            None => {
                let place = Place::Free {
                    terminal: terminal.to_string(),
                };
                self.cars.insert(car.to_string(), place);
            }
        }
    }

    /// How many entries a snapshot holds (pending requests and remembered
    /// answers; the 14 cars are negligible): its cost to write.
    pub fn snapshot_entries(&self) -> u64 {
        (self.pending.len() + self.outcomes.len()) as u64
    }

    /// Keep `o` as the first answer to `rid`; returns that answer.
    fn remember(&mut self, rid: String, o: Outcome) -> Body {
        let answer = o.answer(&rid);
        self.outcomes.insert(rid.into(), Arc::new(o));
        answer
    }

    /// The whole state as log records (see [`SnapshotParts::records`]).
    pub fn snapshot(&self) -> Vec<Record> {
        self.snapshot_parts().records().collect()
    }

    /// What a snapshot needs, copied cheaply (the answers are shared, not
    /// cloned): taken under the backup's lock, serialized after it.
    pub fn snapshot_parts(&self) -> SnapshotParts {
        SnapshotParts {
            lsn: self.lsn,
            cars: self.cars.clone(),
            pending: self.pending.values().cloned().collect(),
            queues: self.queues.clone(),
            outcomes: self.outcomes.clone(),
        }
    }

    /// Replace the whole state with a snapshot's (its pending requests and
    /// answers follow, [`Ledger::restore_more`]).
    fn restore(
        &mut self,
        lsn: u64,
        cars: &BTreeMap<String, Place>,
        queues: &BTreeMap<Class, VecDeque<String>>,
    ) {
        let mut fresh = Ledger::new();
        fresh.lsn = lsn;
        fresh
            .cars
            .extend(cars.iter().map(|(c, p)| (c.clone(), p.clone())));
        fresh
            .queues
            .extend(queues.iter().map(|(c, q)| (*c, q.clone())));
        *self = fresh;
    }

    /// Add a snapshot's pending requests and answers (a `snapshot_more`
    /// record, or those inside an older single-record snapshot).
    fn restore_more(&mut self, pending: &[Pending], outcomes: &BTreeMap<String, Outcome>) {
        for p in pending {
            self.pending.insert(p.request_id.clone(), p.clone());
        }
        for (rid, o) in outcomes {
            self.outcomes
                .insert(rid.as_str().into(), Arc::new(o.clone()));
        }
    }

    /// The truth about a request id, as `check_pending` answers it.
    pub fn check(&self, request_id: &str) -> Body {
        if let Some(p) = self.pending.get(request_id) {
            return self.pending_body(p);
        }
        if let Some(a) = self.outcomes.get(request_id) {
            if let Outcome::Rent { .. } = **a {
                // Served at once, never pending: say so, with the car.
                return a.answer(request_id);
            }
        }
        crate::body(json!({"request_id": request_id, "status": "unknown"}))
    }

    fn pending_body(&self, p: &Pending) -> Body {
        let base = json!({"request_id": p.request_id, "class": p.class.name()});
        let mut b = crate::body(base);
        match &p.state {
            PendState::Waiting => {
                let pos = self
                    .queues
                    .get(&p.class)
                    .and_then(|q| q.iter().position(|r| r == &p.request_id))
                    .map(|i| i + 1)
                    .unwrap_or(0);
                b.insert("status".into(), json!("waiting"));
                b.insert("position".into(), json!(pos));
            }
            PendState::Allocated { car, terminal, .. } | PendState::Claimed { car, terminal } => {
                b.insert("status".into(), json!("fulfilled"));
                b.insert("car".into(), json!(car));
                let model = fleet::vehicle(car).map(|v| v.model).unwrap_or("");
                b.insert("model".into(), json!(model));
                b.insert("terminal".into(), json!(terminal));
                let claimed = matches!(p.state, PendState::Claimed { .. });
                b.insert("claimed".into(), json!(claimed));
            }
            PendState::Cancelled => {
                b.insert("status".into(), json!("cancelled"));
            }
            PendState::Expired { car } => {
                b.insert("status".into(), json!("expired"));
                b.insert("car".into(), json!(car));
            }
        }
        b
    }

    /// Free cars at `terminal`, in id order.
    pub fn stock(&self, terminal: &str) -> Vec<String> {
        self.cars
            .iter()
            .filter(|(_, p)| matches!(p, Place::Free { terminal: t } if t == terminal))
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// Allocations at `terminal` that are not claimed yet (callbacks to retry).
    pub fn unclaimed(&self, terminal: &str) -> Vec<&Pending> {
        let mut v: Vec<&Pending> = self
            .allocated()
            .filter(
                |p| matches!(&p.state, PendState::Allocated { terminal: t, .. } if t == terminal),
            )
            .collect();
        v.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        v
    }

    /// The pending requests holding an allocated car. Found through the
    /// cars (at most 14), not by scanning every request ever made: the map
    /// keeps finished requests for retries, so a scan grew with the
    /// ledger's whole history, and `sync` (once per car handed over) and
    /// the sweeper paid it every time. A car is `Allocated` exactly while
    /// its request is (the audit checks both ways).
    fn allocated(&self) -> impl Iterator<Item = &Pending> {
        self.cars.values().filter_map(|place| match place {
            Place::Allocated { request_id } => self
                .pending
                .get(request_id)
                .filter(|p| matches!(p.state, PendState::Allocated { .. })),
            _ => None,
        })
    }

    /// Every car's place, as JSON (`audit`).
    pub fn places(&self) -> Body {
        self.cars
            .iter()
            .map(|(car, p)| {
                let v = match p {
                    Place::Free { terminal } => json!({"state": "free", "terminal": terminal}),
                    Place::Rented { request_id, client } => {
                        json!({"state": "rented", "request_id": request_id, "client": client})
                    }
                    Place::Allocated { request_id } => {
                        json!({"state": "allocated", "request_id": request_id})
                    }
                };
                (car.clone(), v)
            })
            .collect()
    }

    /// Waiting request ids per class, oldest first.
    pub fn queues(&self) -> Body {
        self.queues
            .iter()
            .map(|(c, q)| (c.name().to_string(), json!(q)))
            .collect()
    }

    /// Internal consistency: the problems found (empty when sound).
    pub fn check_invariants(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let fleet_ids: BTreeSet<&str> = FLEET.iter().map(|v| v.id).collect();
        let held: BTreeSet<&str> = self.cars.keys().map(String::as_str).collect();
        if fleet_ids != held {
            problems.push(format!("vehicle set differs from the fleet: {held:?}"));
        }
        let mut renters = BTreeSet::new();
        for (car, place) in &self.cars {
            match place {
                Place::Rented { request_id, .. } => {
                    if !renters.insert(request_id.clone()) {
                        problems.push(format!("request '{request_id}' holds two cars"));
                    }
                }
                Place::Allocated { request_id } => match self.pending.get(request_id) {
                    Some(Pending {
                        state: PendState::Allocated { car: c, .. },
                        ..
                    }) if c == car => {}
                    _ => problems.push(format!(
                        "{car} is allocated to '{request_id}', which does not hold it"
                    )),
                },
                Place::Free { terminal } => {
                    let ok = (1..=fleet::TERMINALS).any(|n| &fleet::terminal_name(n) == terminal);
                    if !ok {
                        problems.push(format!("{car} is free at unknown node '{terminal}'"));
                    }
                }
            }
        }
        for p in self.pending.values() {
            let queued = self
                .queues
                .get(&p.class)
                .map(|q| q.iter().filter(|r| *r == &p.request_id).count())
                .unwrap_or(0);
            match &p.state {
                PendState::Waiting if queued != 1 => problems.push(format!(
                    "waiting request '{}' is queued {queued} times",
                    p.request_id
                )),
                PendState::Allocated { car, .. } => {
                    if queued != 0 {
                        problems.push(format!("fulfilled '{}' still queued", p.request_id));
                    }
                    let holds = matches!(self.cars.get(car),
                        Some(Place::Allocated { request_id }) if request_id == &p.request_id);
                    if !holds {
                        problems.push(format!(
                            "'{}' is allocated {car}, which is elsewhere",
                            p.request_id
                        ));
                    }
                }
                _ if !matches!(p.state, PendState::Waiting) && queued != 0 => {
                    problems.push(format!("finished '{}' still queued", p.request_id))
                }
                _ => {}
            }
        }
        problems
    }

    /// Counts for status and audit.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let free = self
            .cars
            .values()
            .filter(|p| matches!(p, Place::Free { .. }))
            .count();
        let rented = self
            .cars
            .values()
            .filter(|p| matches!(p, Place::Rented { .. }))
            .count();
        let allocated = self.cars.len() - free - rented;
        let waiting = self.queues.values().map(VecDeque::len).sum();
        (free, rented, allocated, waiting)
    }
}

fn rented_body(rid: &str, car: &str, terminal: &str) -> Body {
    let (class, model) = fleet::vehicle(car)
        .map(|v| (v.class.name(), v.model))
        .unwrap_or(("", ""));
    crate::body(json!({
        "request_id": rid, "status": "rented", "class": class, "car": car,
        "model": model, "terminal": terminal,
    }))
}

fn cancel_body(rid: &str) -> Body {
    crate::body(json!({"request_id": rid, "status": "cancelled"}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wal::record::LogRecord as _;
    use serde_json::Value;

    /// Records as the log holds them (what a snapshot promises to keep; an
    /// allocation's claim clock is not among it).
    fn on_disk(recs: &[Record]) -> Vec<Value> {
        recs.iter().map(Record::encode).collect()
    }

    /// Decide, then apply (and log) like the backup does.
    fn step(
        l: &mut Ledger,
        log: &mut Vec<Record>,
        f: impl FnOnce(&Ledger) -> Result<Ruling, Error>,
    ) -> Body {
        match f(l).unwrap() {
            Ruling::Answer(b) => b,
            Ruling::Write(r) => {
                log.push(r.clone());
                l.apply(&r)
            }
        }
    }

    #[test]
    fn rent_pend_return_hands_to_oldest_and_replays() {
        let (mut l, mut log) = (Ledger::new(), Vec::new());
        let e = Class::Executive;
        let a = step(&mut l, &mut log, |l| {
            l.decide_rent("a", e, "terminal-1", "c")
        });
        assert_eq!(a["car"], "EXE01");
        step(&mut l, &mut log, |l| {
            l.decide_rent("b", e, "terminal-1", "c")
        });
        let none = l.decide_rent("c", e, "terminal-1", "c").err().unwrap();
        assert_eq!(none.code, crate::Code::NotFound);
        let p1 = step(&mut l, &mut log, |l| {
            l.decide_pend("p1", e, "terminal-2", "c", None, &[])
        });
        assert_eq!(p1["position"], 1);
        step(&mut l, &mut log, |l| {
            l.decide_pend("p2", e, "terminal-1", "c", None, &[])
        });
        // A retry answers the first answer and writes nothing.
        let n = log.len();
        let again = step(&mut l, &mut log, |l| {
            l.decide_rent("a", e, "terminal-1", "c")
        });
        assert_eq!((again["car"].as_str(), log.len()), (Some("EXE01"), n));
        let r = step(&mut l, &mut log, |l| {
            l.decide_return("r1", "EXE02", "terminal-3")
        });
        assert_eq!(r["handed_to"], "p1");
        assert_eq!(l.check("p1")["status"], "fulfilled");
        assert_eq!(l.check("p2")["position"], 1);
        assert!(l.decide_cancel("p1").is_err());
        step(&mut l, &mut log, |l| l.decide_cancel("p2"));
        assert!(
            l.check_invariants().is_empty(),
            "{:?}",
            l.check_invariants()
        );
        let mut replayed = Ledger::new();
        for rec in &log {
            replayed.apply(rec);
        }
        assert_eq!(replayed.places(), l.places());
        assert_eq!(replayed.queues(), l.queues());
    }

    #[test]
    fn snapshot_replays_to_an_equal_ledger() {
        let (mut l, mut log) = (Ledger::new(), Vec::new());
        let e = Class::Executive;
        for rid in ["a", "b"] {
            step(&mut l, &mut log, |l| {
                l.decide_rent(rid, e, "terminal-1", "c")
            });
        }
        for (rid, cb) in [
            ("p", Some("127.0.0.1:9")),
            ("q", None),
            ("w", None),
            ("x", None),
        ] {
            step(&mut l, &mut log, |l| {
                l.decide_pend(rid, e, "terminal-2", "c", cb, &[])
            });
        }
        step(&mut l, &mut log, |l| {
            l.decide_return("r1", "EXE01", "terminal-3")
        });
        step(&mut l, &mut log, |l| l.decide_claim("p"));
        step(&mut l, &mut log, |l| {
            l.decide_return("r2", "EXE02", "terminal-1")
        });
        step(&mut l, &mut log, |l| l.decide_cancel("x"));
        step(&mut l, &mut log, |l| {
            l.decide_rent("s", Class::Suv, "terminal-2", "d")
        });
        // Every pending state occurs: claimed p, allocated q, waiting w,
        // cancelled x; and rent/return outcomes are stored.
        assert_eq!(l.check("q")["status"], "fulfilled");
        assert_eq!(l.check("w")["status"], "waiting");
        let snap = l.snapshot();
        let text = serde_json::to_string(&snap).unwrap();
        let mut again = Ledger::new();
        for r in serde_json::from_str::<Vec<Record>>(&text).unwrap() {
            again.apply(&r);
        }
        assert_eq!(on_disk(&again.snapshot()), on_disk(&snap));
        assert_eq!(again.lsn(), l.lsn());
        assert_eq!(again.places(), l.places());
        assert_eq!(again.queues(), l.queues());
        assert!(again.check_invariants().is_empty());
        for rid in ["a", "b", "p", "q", "w", "x", "s", "r1", "r2", "none"] {
            assert_eq!(again.check(rid), l.check(rid), "{rid}");
        }
        // Retries get the first answer, and the next decisions agree.
        let first = |l: &Ledger| match l.decide_rent("a", e, "terminal-1", "c") {
            Ok(Ruling::Answer(b)) => b,
            other => panic!("{other:?}"),
        };
        assert_eq!(first(&again), first(&l));
        let next = |l: &Ledger| match l.decide_return("r3", "SUV01", "terminal-2") {
            Ok(Ruling::Write(r)) => r,
            other => panic!("{other:?}"),
        };
        let rec = next(&l);
        assert_eq!(next(&again), rec);
        l.apply(&rec);
        again.apply(&rec);
        assert_eq!(on_disk(&again.snapshot()), on_disk(&l.snapshot()));
        // Records after a snapshot replay on top of it.
        let mut tail = Ledger::new();
        for r in &snap {
            tail.apply(r);
        }
        tail.apply(&rec);
        assert_eq!(on_disk(&tail.snapshot()), on_disk(&l.snapshot()));
    }

    /// A snapshot with more answers than a chunk is several records; they
    /// replay to the same ledger, and so does the older single-record form
    /// (every answer inline), which logs written before still hold.
    #[test]
    fn a_large_snapshot_is_written_in_chunks_and_replays_whole() {
        let mut l = Ledger::new();
        let mut log = Vec::new();
        for i in 0..2500 {
            let b = step(&mut l, &mut log, |l| {
                l.decide_rent(&format!("r{i}"), Class::Economy, "terminal-3", "c")
            });
            let car = b["car"].as_str().unwrap().to_string();
            step(&mut l, &mut log, |l| {
                l.decide_return(&format!("x{i}"), &car, "terminal-3")
            });
        }
        let snap = l.snapshot();
        assert_eq!(snap.len(), 1 + 5, "the head, then 5000 answers in chunks");
        assert!(snap[1..]
            .iter()
            .all(|r| matches!(r, Record::SnapshotMore { .. })));
        let mut again = Ledger::new();
        for r in &snap {
            again.apply(r);
        }
        assert_eq!(on_disk(&again.snapshot()), on_disk(&snap));
        for rid in ["r0", "x0", "r2499", "x2499"] {
            assert_eq!(again.check(rid), l.check(rid), "{rid}");
            let op = if rid.starts_with('r') {
                "rent"
            } else {
                "return"
            };
            assert_eq!(
                again.known(rid, op).unwrap(),
                l.known(rid, op).unwrap(),
                "{rid}"
            );
        }
        // As earlier versions wrote it: the kind under "kind", every answer
        // in the one record.
        let mut single = snap[0].encode();
        let mut all = serde_json::Map::new();
        for r in &snap[1..] {
            all.extend(
                r.encode()["outcomes"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        single["outcomes"] = Value::Object(all);
        let tag = single.as_object_mut().unwrap().remove("k").unwrap();
        single["kind"] = tag;
        let mut old = Ledger::new();
        old.apply(&Record::decode(single).unwrap());
        assert_eq!(on_disk(&old.snapshot()), on_disk(&snap));
    }

    #[test]
    fn pend_refused_while_a_reachable_car_is_free() {
        let l = Ledger::new();
        let e = l
            .decide_pend("p", Class::Suv, "terminal-1", "c", None, &[])
            .err()
            .unwrap();
        assert_eq!(e.code, crate::Code::PreconditionFailed);
        let ok = l.decide_pend(
            "p",
            Class::Suv,
            "terminal-1",
            "c",
            None,
            &["terminal-2".into()],
        );
        assert!(matches!(ok, Ok(Ruling::Write(_))));
    }

    #[test]
    fn expiry_returns_car_or_passes_it_on() {
        let (mut l, mut log) = (Ledger::new(), Vec::new());
        let e = Class::Executive;
        for rid in ["a", "b"] {
            step(&mut l, &mut log, |l| {
                l.decide_rent(rid, e, "terminal-1", "c")
            });
        }
        step(&mut l, &mut log, |l| {
            l.decide_pend("p", e, "terminal-1", "c", None, &[])
        });
        step(&mut l, &mut log, |l| {
            l.decide_pend("q", e, "terminal-1", "c", None, &[])
        });
        step(&mut l, &mut log, |l| {
            l.decide_return("r", "EXE01", "terminal-2")
        });
        // p never claims: the car passes to q, then q never claims either.
        for want in ["q", ""] {
            let recs = l.decide_expiries(Duration::ZERO, Instant::now());
            assert_eq!(recs.len(), 1);
            let Record::Expire { handed_to, .. } = &recs[0] else {
                panic!("{recs:?}");
            };
            assert_eq!(handed_to.as_deref().unwrap_or(""), want);
            l.apply(&recs[0]);
        }
        assert_eq!(l.check("p")["status"], "expired");
        assert_eq!(l.check("q")["status"], "expired");
        assert!(l.stock("terminal-2").contains(&"EXE01".to_string()));
        assert!(l.check_invariants().is_empty());
    }

    /// Unclaimed allocations are found through the cars, so the many
    /// finished requests a ledger keeps for retries are never scanned: the
    /// answer is the same as walking every request, and only allocated
    /// ones show up, at their terminal, in request order.
    #[test]
    fn unclaimed_allocations_among_many_finished_requests() {
        let (mut l, mut log) = (Ledger::new(), Vec::new());
        let e = Class::Economy;
        // 300 finished pending requests: pended, handed a car, claimed.
        for i in 0..300 {
            let (rent, wait) = (format!("r{i}"), format!("w{i}"));
            let car = step(&mut l, &mut log, |l| {
                l.decide_rent(&rent, e, "terminal-3", "c")
            });
            let car = car["car"].as_str().unwrap().to_string();
            for k in 0..2 {
                step(&mut l, &mut log, |l| {
                    l.decide_rent(&format!("{rent}-{k}"), e, "terminal-3", "c")
                });
            }
            step(&mut l, &mut log, |l| {
                l.decide_pend(&wait, e, "terminal-3", "c", Some("127.0.0.1:9"), &[])
            });
            step(&mut l, &mut log, |l| {
                l.decide_return(&format!("{rent}-back"), &car, "terminal-1")
            });
            step(&mut l, &mut log, |l| l.decide_claim(&wait));
            for k in 0..2 {
                let c = l.cars.iter().find_map(|(c, p)| match p {
                    Place::Rented { request_id, .. } if request_id == &format!("{rent}-{k}") => {
                        Some(c.clone())
                    }
                    _ => None,
                });
                let c = c.unwrap();
                step(&mut l, &mut log, |l| {
                    l.decide_return(&format!("{rent}-{k}-back"), &c, "terminal-3")
                });
            }
            let c = l.cars.iter().find_map(|(c, p)| match p {
                Place::Rented { request_id, .. } if request_id == &wait => Some(c.clone()),
                _ => None,
            });
            let c = c.unwrap();
            step(&mut l, &mut log, |l| {
                l.decide_return(&format!("{wait}-back"), &c, "terminal-3")
            });
        }
        assert!(l.unclaimed("terminal-1").is_empty());
        // Two cars handed over and not claimed, at two terminals.
        for rid in ["a", "b", "c"] {
            step(&mut l, &mut log, |l| {
                l.decide_rent(rid, e, "terminal-3", "c")
            });
        }
        for rid in ["p2", "p1"] {
            step(&mut l, &mut log, |l| {
                l.decide_pend(rid, e, "terminal-3", "c", None, &[])
            });
        }
        let car_of = |l: &Ledger, rid: &str| {
            l.cars.iter().find_map(|(c, p)| match p {
                Place::Rented { request_id, .. } if request_id == rid => Some(c.clone()),
                _ => None,
            })
        };
        let (ca, cb) = (car_of(&l, "a").unwrap(), car_of(&l, "b").unwrap());
        step(&mut l, &mut log, |l| {
            l.decide_return("a-back", &ca, "terminal-1")
        });
        step(&mut l, &mut log, |l| {
            l.decide_return("b-back", &cb, "terminal-2")
        });
        let ids = |v: Vec<&Pending>| v.iter().map(|p| p.request_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(l.unclaimed("terminal-1")), ["p2"]);
        assert_eq!(ids(l.unclaimed("terminal-2")), ["p1"]);
        assert!(l.unclaimed("terminal-3").is_empty());
        let expired = l.decide_expiries(Duration::ZERO, Instant::now());
        let mut who: Vec<&str> = expired
            .iter()
            .map(|r| match r {
                Record::Expire { request_id, .. } => request_id.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        who.sort();
        assert_eq!(who, ["p1", "p2"]);
        assert!(l.check_invariants().is_empty());
    }
}
