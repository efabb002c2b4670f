//! A deterministic simulator of the EV two-phase commit.
//!
//! Three companies (the pure cores of [`crate::ev::twopc`], each with a
//! simulated coordinator log and participant log), a few vehicles (clients)
//! and a network, all in one thread. A seeded scheduler picks every step:
//! which message is delivered next (so messages are reordered and delayed),
//! whether it is dropped or duplicated, when a log's fsync completes, when
//! timers and reply timeouts fire, when a client sends or retries (to a
//! random company), and when a company crashes — before any of its actions
//! (the crash points of the real node) or while idle — and restarts.
//!
//! The disk model is the WAL's: a record is queued in memory; a forced
//! record makes everything queued before it durable when its fsync
//! completes (group commit); a crash keeps the durable records (and maybe a
//! few queued ones after them, in order) and loses the rest; a restart
//! replays what is left.
//!
//! After every step the checker holds the run to the invariants
//! ([`Invariant`]); when the scheduled part ends, faults stop, crashed
//! companies restart, and the run goes on until quiet, for the final ones.
//! A failure is reported with its seed, shrunk to the shortest schedule the
//! shrinker finds (the scheduler's choices are recorded, and a shorter
//! choice list that still fails is a shorter counterexample), and printed as
//! a ladder diagram. `make sim SEED=n` (`frota-ctl sim --seed n`) replays it.

use crate::ev::company::messages::{Prepare, RouteRequest};
use crate::ev::points::Stop;
use crate::ev::twopc::{
    combine_lookups, Action, Answer, CoordRecord, Coordinator, Lookup, LookupOutcome, Msg,
    PartRecord, Participant, Prepared, ReplyTo, Rules, Timing, Vote,
};
use crate::runtime::rng::Rng;
use crate::tools::ctl::trace::{render_text_steps, Event as Arrow};
use crate::wire::error::Error;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// What a run is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// A request (vehicle, request_id) starts at most one transaction.
    OneTxnPerRequest,
    /// No point is reserved for two overlapping windows.
    NoDoubleBooking,
    /// No transaction is committed at one company and aborted at another.
    AllOrNothing,
    /// `reserved` is told only of a route committed everywhere, `rejected`
    /// only of one reserved nowhere.
    TruthfulOutcome,
    /// Every `decision` answer agrees with the coordinator's record and with
    /// what the participants did.
    DecisionsAgree,
    /// Once quiet, no hold is left and every decision reached every stop.
    QuietAndDecided,
    /// Once quiet, every request got a definite answer.
    EveryRequestAnswered,
    /// Racers for the same route without faults: one of them wins.
    OneWinner,
}

impl Invariant {
    pub const ALL: [Invariant; 8] = [
        Invariant::OneTxnPerRequest,
        Invariant::NoDoubleBooking,
        Invariant::AllOrNothing,
        Invariant::TruthfulOutcome,
        Invariant::DecisionsAgree,
        Invariant::QuietAndDecided,
        Invariant::EveryRequestAnswered,
        Invariant::OneWinner,
    ];

    /// Its short name on the command line (`frota-ctl sim --skip NAME`).
    pub fn slug(self) -> &'static str {
        match self {
            Invariant::OneTxnPerRequest => "one-txn",
            Invariant::NoDoubleBooking => "double-booking",
            Invariant::AllOrNothing => "all-or-nothing",
            Invariant::TruthfulOutcome => "true-outcomes",
            Invariant::DecisionsAgree => "decisions-agree",
            Invariant::QuietAndDecided => "quiet",
            Invariant::EveryRequestAnswered => "answered",
            Invariant::OneWinner => "one-winner",
        }
    }

    pub fn from_slug(s: &str) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| i.slug() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Invariant::OneTxnPerRequest => "one transaction per request",
            Invariant::NoDoubleBooking => "no double booking",
            Invariant::AllOrNothing => "all or nothing",
            Invariant::TruthfulOutcome => "every definite outcome is true",
            Invariant::DecisionsAgree => "every decision agrees with the participants",
            Invariant::QuietAndDecided => "no hold left once quiet",
            Invariant::EveryRequestAnswered => "every request answered once quiet",
            Invariant::OneWinner => "racers for one route: exactly one wins",
        }
    }
}

/// One run's setting. [`Config::default`] is what `make test` explores.
#[derive(Debug, Clone)]
pub struct Config {
    pub rules: Rules,
    /// Vehicles, each with `requests` route requests in turn.
    pub clients: usize,
    pub requests: usize,
    /// Crashes, drops, duplicates (off: only reordering and delays).
    pub faults: bool,
    pub max_crashes: u32,
    /// Scheduled steps before the healing phase.
    pub steps: usize,
    /// Every vehicle wants the same 3-stop route, no faults and no
    /// timeouts: rule 2's lab (checks [`Invariant::OneWinner`]).
    pub race: bool,
    /// Every request wants one stop at A's first point (heavy contention).
    pub hot: bool,
    /// Per delivered message, in percent: slow (delivered up to 150 ms
    /// later), duplicated, lost. Per action of a company: crash.
    pub slow_pct: u32,
    pub dup_pct: u32,
    pub drop_pct: u32,
    pub crash_pct: u32,
    /// Invariants not checked (to show the next one a bug breaks).
    pub skip: Vec<Invariant>,
    /// Record a readable trace (off while searching: it costs most of the time).
    pub trace: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            rules: Rules::SAFE,
            clients: 3,
            requests: 2,
            faults: true,
            max_crashes: 2,
            steps: 160,
            race: false,
            hot: false,
            slow_pct: 4,
            dup_pct: 4,
            drop_pct: 4,
            crash_pct: 2,
            skip: Vec::new(),
            trace: false,
        }
    }
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub detail: String,
    /// The step at which it was seen (1-based).
    pub step: usize,
    /// Seen by the checks once the run is quiet (a lost reservation, an
    /// unanswered request), not at the step that broke it.
    pub once_quiet: bool,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {}: {} violated: {}",
            self.step,
            self.invariant.name(),
            self.detail
        )
    }
}

/// One step of a trace: an arrow between two actors, or something that
/// happened at one (from == to): a log record, an fsync, a crash.
#[derive(Debug, Clone)]
pub struct Line {
    pub step: usize,
    pub now: u64,
    pub from: String,
    pub to: String,
    pub label: String,
    pub reply: bool,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub steps: usize,
    pub violation: Option<Violation>,
    /// The scheduler's choices (replaying them replays the run).
    pub choices: Vec<u32>,
    pub trace: Vec<Line>,
    pub crashes: u32,
    /// Queued (not yet durable) log records lost in those crashes.
    pub lost: usize,
    pub reserved: usize,
    pub rejected: usize,
}

impl Report {
    /// The trace as a ladder diagram (the format of `docs/traces`).
    pub fn ladder(&self) -> String {
        let events: Vec<Arrow> = self
            .trace
            .iter()
            .map(|l| Arrow {
                t_us: l.now,
                from: l.from.clone(),
                to: l.to.clone(),
                label: l.label.clone(),
                reply: l.reply,
            })
            .collect();
        render_text_steps(&events)
    }

    /// The trace as a numbered list of steps.
    pub fn steps_text(&self) -> String {
        let mut out = String::new();
        for l in &self.trace {
            let arrow = if l.from == l.to {
                format!("{:<9}", l.from)
            } else {
                format!("{} -> {}", l.from, l.to)
            };
            out.push_str(&format!(
                "{:>4}  t={:<5} {:<20} {}\n",
                l.step, l.now, arrow, l.label
            ));
        }
        out
    }
}

/// Run one schedule.
pub fn run(seed: u64, cfg: &Config) -> Report {
    World::new(seed, cfg, None).run()
}

/// Replay a recorded choice list (what the shrinker and `--choices` do).
pub fn replay(seed: u64, cfg: &Config, choices: &[u32]) -> Report {
    World::new(seed, cfg, Some(choices.to_vec())).run()
}

/// Find a shorter schedule that breaks the same invariant: drop chunks of
/// the choice list and lower single choices, keeping whatever still fails
/// in fewer steps. At most `budget` runs.
pub fn shrink(seed: u64, cfg: &Config, failing: &Report, budget: usize) -> Report {
    let Some(want) = failing.violation.as_ref().map(|v| v.invariant) else {
        return failing.clone();
    };
    let fails = |r: &Report| r.violation.as_ref().map(|v| v.invariant) == Some(want);
    shrink_where(seed, cfg, failing, budget, &fails)
}

/// [`shrink`], keeping only schedules `fails` accepts (a lab wants its
/// counterexample to show a crash, say).
pub fn shrink_where(
    seed: u64,
    cfg: &Config,
    failing: &Report,
    budget: usize,
    fails: &dyn Fn(&Report) -> bool,
) -> Report {
    let quiet = Config {
        trace: false,
        ..cfg.clone()
    };
    let mut best = failing.clone();
    let mut runs = 0;
    let better = |r: &Report, best: &Report| {
        (r.steps, r.choices.len()) < (best.steps, best.choices.len())
            || (r.steps == best.steps
                && r.choices.len() == best.choices.len()
                && r.choices < best.choices)
    };
    loop {
        let before = (best.steps, best.choices.clone());
        // Drop chunks of choices, then zero them (zero is the tame choice).
        for zero in [false, true] {
            let mut chunk = 32;
            while chunk >= 1 {
                let mut i = 0;
                while i < best.choices.len() && runs < budget {
                    let mut c = best.choices.clone();
                    let end = (i + chunk).min(c.len());
                    if zero {
                        if c[i..end].iter().all(|v| *v == 0) {
                            i += chunk;
                            continue;
                        }
                        c[i..end].iter_mut().for_each(|v| *v = 0);
                    } else {
                        c.drain(i..end);
                    }
                    runs += 1;
                    let r = replay(seed, &quiet, &c);
                    if fails(&r) && better(&r, &best) {
                        best = r;
                    } else {
                        i += chunk;
                    }
                }
                chunk /= 2;
            }
        }
        // Lower single choices.
        for i in 0..best.choices.len() {
            for k in 0..2 {
                let Some(&now) = best.choices.get(i) else {
                    break;
                };
                let v = [now / 2, now.saturating_sub(1)][k];
                if runs >= budget || v >= now {
                    continue;
                }
                let mut c = best.choices.clone();
                c[i] = v;
                runs += 1;
                let r = replay(seed, &quiet, &c);
                if fails(&r) && better(&r, &best) {
                    best = r;
                }
            }
        }
        if runs >= budget || (best.steps, best.choices.clone()) == before {
            break;
        }
    }
    // Once more with the trace on, to print it.
    let mut shown = replay(seed, cfg, &best.choices);
    shown.seed = seed;
    shown
}

// ---------------------------------------------------------------------------
// The world.

const COMPANIES: [&str; 3] = ["A", "B", "C"];

/// Simulated milliseconds. One step is one millisecond.
const TIMING: Timing = Timing {
    hold_expiry: 60,
    ask_every: 20,
    horizon: 1_000_000,
    retry_wait: 40,
};
const TICK_EVERY: u64 = 10;
/// Reply timeouts: between companies, a forwarded request, a client.
const CALL_TIMEOUT: u64 = 30;
const FORWARD_TIMEOUT: u64 = 50;
const CLIENT_TIMEOUT: u64 = 70;
/// The healing phase ends here at the latest (then it is stuck).
const HEAL_STEPS: usize = 6000;

/// Replay records and run the recovery of a restarted company.
struct Company {
    name: String,
    coord: Coordinator,
    part: Participant,
    up: bool,
    epoch: u32,
    clog: Disk<CoordRecord>,
    plog: Disk<PartRecord>,
    /// A forced record waits for its fsync: (txn) per log, in order.
    cforce: VecDeque<String>,
    pforce: VecDeque<String>,
    next_tick: u64,
    /// Where each reply token goes.
    replies: BTreeMap<u64, Dest>,
    next_token: u64,
}

struct Disk<R> {
    recs: Vec<R>,
    durable: usize,
}

impl<R> Disk<R> {
    fn new() -> Disk<R> {
        Disk {
            recs: Vec::new(),
            durable: 0,
        }
    }
}

enum Dest {
    /// The answer to a call made to this company.
    Call(u64),
    /// Our own participant's vote, for our coordinator.
    LocalVote(String),
    /// Our coordinator's decision, for our participant.
    LocalAsk(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Actor {
    Company(usize),
    Client(usize),
}

/// What a call is for (what its reply, or its failure, goes to).
#[derive(Clone)]
enum Purpose {
    Vote {
        txn: String,
        company: String,
    },
    Ack {
        txn: String,
        company: String,
    },
    Ask {
        txn: String,
    },
    Relay {
        reply_to: ReplyTo,
        coordinator: String,
    },
    Reserve,
    Lookup {
        company: String,
    },
}

struct Call {
    from: Actor,
    epoch: u32,
    purpose: Purpose,
    deadline: u64,
}

#[derive(Clone)]
enum Req {
    Reserve(RouteRequest),
    Prepare(Prepare),
    Decide { txn: String, commit: bool },
    Ask { txn: String },
    Lookup { vehicle: String, request_id: String },
}

#[derive(Clone)]
enum Resp {
    Answer(Result<Answer, Error>),
    Done(Result<(), Error>),
    Lookup(Lookup),
}

#[derive(Clone)]
struct Envelope {
    call: u64,
    from: Actor,
    to: Actor,
    body: Result<Req, Resp>,
    /// The arrow's label (traced runs only), to show a duplicate.
    label: String,
    /// A slow message is not delivered before this time.
    not_before: u64,
}

struct Client {
    name: String,
    requests: Vec<RouteRequest>,
    next: usize,
    /// The call in flight, if any.
    busy: bool,
    /// Lookup answers collected so far in a lookup round.
    lookups: Vec<(String, Result<Lookup, Error>)>,
    /// After an indefinite answer, sometimes look the request up first.
    look_up: bool,
}

struct World {
    cfg: Config,
    seed: u64,
    chooser: Chooser,
    now: u64,
    step: usize,
    companies: Vec<Company>,
    clients: Vec<Client>,
    net: Vec<Envelope>,
    calls: BTreeMap<u64, Call>,
    next_call: u64,
    crashes: u32,
    lost: usize,
    healing: bool,
    ghost: Ghost,
    trace: Vec<Line>,
}

/// The scheduler's source of choices: random from the seed, or replayed.
struct Chooser {
    rng: Rng,
    replay: Option<Vec<u32>>,
    pos: usize,
    record: Vec<u32>,
}

impl Chooser {
    /// A value in `[0, n)`. Zero is always the tamest choice (deliver the
    /// oldest message, no fault), so a shrunk choice list is a tame one.
    fn choose(&mut self, n: u32) -> u32 {
        if n <= 1 {
            return 0;
        }
        let v = match &self.replay {
            Some(r) => r.get(self.pos).copied().unwrap_or(0),
            None => self.rng.next_u64() as u32,
        } % n;
        self.pos += 1;
        self.record.push(v);
        v
    }

    /// True with probability `pct`%, false when choices run out.
    fn chance(&mut self, pct: u32) -> bool {
        self.choose(100) >= 100 - pct
    }
}

impl World {
    fn new(seed: u64, cfg: &Config, replay: Option<Vec<u32>>) -> World {
        let mut chooser = Chooser {
            rng: Rng::new(seed),
            replay,
            pos: 0,
            record: Vec::new(),
        };
        let names: Vec<String> = COMPANIES.iter().map(|c| c.to_string()).collect();
        let companies = COMPANIES
            .iter()
            .map(|c| Company {
                name: c.to_string(),
                coord: Coordinator::new(c, &names, cfg.rules, TIMING),
                part: Participant::new(c, &points_of(c), cfg.rules, TIMING),
                up: true,
                epoch: 0,
                clog: Disk::new(),
                plog: Disk::new(),
                cforce: VecDeque::new(),
                pforce: VecDeque::new(),
                next_tick: TICK_EVERY,
                replies: BTreeMap::new(),
                next_token: 0,
            })
            .collect();
        let clients = (0..cfg.clients)
            .map(|i| {
                let vehicle = format!("v{}", i + 1);
                let requests = (0..cfg.requests)
                    .map(|j| RouteRequest {
                        request_id: format!("r{}", j + 1),
                        vehicle: vehicle.clone(),
                        stops: if cfg.race {
                            race_route()
                        } else if cfg.hot {
                            hot_route()
                        } else {
                            random_route(&mut chooser)
                        },
                        reply_to: None,
                        forwarded: false,
                    })
                    .collect();
                Client {
                    name: vehicle,
                    requests,
                    next: 0,
                    busy: false,
                    lookups: Vec::new(),
                    look_up: false,
                }
            })
            .collect();
        World {
            cfg: cfg.clone(),
            seed,
            chooser,
            now: 0,
            step: 0,
            companies,
            clients,
            net: Vec::new(),
            calls: BTreeMap::new(),
            next_call: 1,
            crashes: 0,
            lost: 0,
            healing: false,
            ghost: Ghost::new(cfg),
            trace: Vec::new(),
        }
    }

    fn faults(&self) -> bool {
        self.cfg.faults && !self.cfg.race && !self.healing
    }

    fn run(mut self) -> Report {
        let mut scheduled = 0;
        while self.ghost.violation.is_none() {
            if !self.healing && scheduled >= self.cfg.steps {
                self.heal();
            }
            if self.healing && self.step > self.cfg.steps + HEAL_STEPS {
                break;
            }
            let Some(event) = self.pick() else {
                if self.healing {
                    break;
                }
                self.heal();
                continue;
            };
            self.step += 1;
            scheduled += 1;
            self.now += 1;
            self.apply(event);
        }
        if self.ghost.violation.is_none() {
            self.final_checks();
        }
        Report {
            seed: self.seed,
            steps: self.step,
            violation: self.ghost.violation.take(),
            choices: self.chooser.record,
            trace: self.trace,
            crashes: self.crashes,
            lost: self.lost,
            reserved: self.ghost.told_count(true),
            rejected: self.ghost.told_count(false),
        }
    }

    /// Faults stop; every crashed company restarts.
    fn heal(&mut self) {
        self.healing = true;
        for n in 0..self.companies.len() {
            if !self.companies[n].up {
                self.step += 1;
                self.restart(n);
            }
        }
    }

    // ---- choosing the next step ------------------------------------------

    /// The next step: a kind of event (weighted), then one of that kind.
    /// Kinds in order of tameness, so a zero choice delivers a message.
    fn pick(&mut self) -> Option<Event> {
        const KINDS: [(Kind, u32); 7] = [
            (Kind::Deliver, 60),
            (Kind::Fsync, 25),
            (Kind::Client, 10),
            (Kind::Tick, 6),
            (Kind::Timeout, 6),
            (Kind::Restart, 4),
            (Kind::Crash, 1),
        ];
        loop {
            let mut counts = [0usize; 7];
            let mut total = 0;
            for (i, (kind, w)) in KINDS.iter().enumerate() {
                counts[i] = self.enabled(*kind, usize::MAX).0;
                if counts[i] > 0 {
                    total += w;
                }
            }
            if total == 0 {
                // Nothing to do now: let time pass to the next timer.
                let next = self.next_timer()?;
                self.now = self.now.max(next);
                continue;
            }
            let mut c = self.chooser.choose(total);
            for (i, (kind, w)) in KINDS.iter().enumerate() {
                if counts[i] == 0 {
                    continue;
                }
                if c < *w {
                    let nth = self.chooser.choose(counts[i] as u32) as usize;
                    return self.enabled(*kind, nth).1;
                }
                c -= w;
            }
            return None;
        }
    }

    /// How many events of `kind` can happen now, and the `nth` of them.
    fn enabled(&self, kind: Kind, nth: usize) -> (usize, Option<Event>) {
        let mut count = 0;
        let mut found = None;
        let mut see = |e: Event| {
            if count == nth {
                found = Some(e);
            }
            count += 1;
        };
        match kind {
            Kind::Deliver => {
                for (i, e) in self.net.iter().enumerate() {
                    if e.not_before <= self.now {
                        see(Event::Deliver(i));
                    }
                }
            }
            Kind::Fsync => {
                for (n, c) in self.companies.iter().enumerate() {
                    if c.up && !c.cforce.is_empty() {
                        see(Event::Fsync(n, true));
                    }
                    if c.up && !c.pforce.is_empty() {
                        see(Event::Fsync(n, false));
                    }
                }
            }
            Kind::Client => {
                for (i, c) in self.clients.iter().enumerate() {
                    if !c.busy && c.next < c.requests.len() {
                        see(Event::Client(i));
                    }
                }
            }
            Kind::Tick => {
                for (n, c) in self.companies.iter().enumerate() {
                    if c.up && c.next_tick <= self.now && has_work(c) {
                        see(Event::Tick(n));
                    }
                }
            }
            Kind::Timeout => {
                for (id, c) in &self.calls {
                    if c.deadline <= self.now {
                        see(Event::Timeout(*id));
                    }
                }
            }
            Kind::Restart => {
                for (n, c) in self.companies.iter().enumerate() {
                    if !c.up {
                        see(Event::Restart(n));
                    }
                }
            }
            Kind::Crash => {
                if self.faults() && self.crashes < self.cfg.max_crashes {
                    for (n, c) in self.companies.iter().enumerate() {
                        if c.up {
                            see(Event::Crash(n));
                        }
                    }
                }
            }
        }
        (count, found)
    }

    /// The earliest time a timer (tick with work, reply timeout) is due.
    fn next_timer(&self) -> Option<u64> {
        let ticks = self
            .companies
            .iter()
            .filter(|c| c.up && has_work(c))
            .map(|c| c.next_tick);
        let timeouts = self.calls.values().map(|c| c.deadline);
        let slow = self.net.iter().map(|e| e.not_before);
        ticks.chain(timeouts).chain(slow).min()
    }

    fn apply(&mut self, e: Event) {
        match e {
            Event::Deliver(i) => self.deliver(i),
            Event::Fsync(n, coord) => self.fsync(n, coord),
            Event::Client(i) => self.client_send(i),
            Event::Tick(n) => {
                self.companies[n].next_tick = self.now + TICK_EVERY;
                let mut acts = Vec::new();
                let now = self.now;
                let c = &mut self.companies[n];
                c.coord.tick(now, &mut acts);
                c.part.tick(now, &mut acts);
                if !acts.is_empty() {
                    self.note(n, || "tick".into());
                }
                self.run_actions(n, acts);
            }
            Event::Timeout(id) => {
                let Some(call) = self.calls.remove(&id) else {
                    return;
                };
                let p = purpose_name(&call.purpose);
                self.line(call.from, call.from, false, || {
                    format!("reply timeout ({p})")
                });
                self.failed_call(call, Error::timeout("no reply in time"));
            }
            Event::Restart(n) => self.restart(n),
            Event::Crash(n) => self.crash(n),
        }
    }

    // ---- the network -------------------------------------------------------

    fn call(&mut self, from: Actor, to: Actor, purpose: Purpose, req: Req) {
        let id = self.next_call;
        self.next_call += 1;
        let timeout = match purpose {
            Purpose::Relay { .. } => FORWARD_TIMEOUT,
            Purpose::Reserve | Purpose::Lookup { .. } => CLIENT_TIMEOUT,
            _ => CALL_TIMEOUT,
        };
        let deadline = if self.cfg.race {
            u64::MAX
        } else {
            self.now + timeout
        };
        let epoch = match from {
            Actor::Company(n) => self.companies[n].epoch,
            Actor::Client(_) => 0,
        };
        let label = if self.cfg.trace {
            req_label(&req)
        } else {
            String::new()
        };
        self.line(from, to, false, || label.clone());
        self.calls.insert(
            id,
            Call {
                from,
                epoch,
                purpose,
                deadline,
            },
        );
        self.net.push(Envelope {
            call: id,
            from,
            to,
            body: Ok(req),
            label,
            not_before: 0,
        });
    }

    fn respond(&mut self, from: usize, call: u64, resp: Resp) {
        let Some(to) = self.calls.get(&call).map(|c| c.from) else {
            return; // the caller gave up (timed out, crashed)
        };
        let label = if self.cfg.trace {
            resp_label(&resp)
        } else {
            String::new()
        };
        self.line(Actor::Company(from), to, true, || label.clone());
        self.net.push(Envelope {
            call,
            from: Actor::Company(from),
            to,
            body: Err(resp),
            label,
            not_before: 0,
        });
    }

    fn deliver(&mut self, i: usize) {
        let mut env = self.net.remove(i);
        if self.faults() {
            let fate = self.chooser.choose(100);
            let c = &self.cfg;
            let drop_at = 100 - c.drop_pct;
            let dup_at = drop_at.saturating_sub(c.dup_pct);
            let slow_at = dup_at.saturating_sub(c.slow_pct);
            if (slow_at..dup_at).contains(&fate) {
                // Slow: stuck in a busy node's socket buffer, for longer
                // than the sender's reply timeout, maybe.
                env.not_before = self.now + 1 + u64::from(self.chooser.choose(150));
                let reply = env.body.is_err();
                self.line(env.from, env.to, reply, || {
                    format!("{} (delayed)", env.label)
                });
                self.net.push(env);
                return;
            }
            if fate >= drop_at {
                self.line(env.to, env.to, false, || {
                    "(a message to here is lost)".into()
                });
                return;
            }
            if fate >= dup_at {
                // Delivered twice (a connection retry resends the same frame).
                let reply = env.body.is_err();
                self.line(env.from, env.to, reply, || {
                    format!("{} (duplicate)", env.label)
                });
                self.net.push(env.clone());
            }
        }
        match (env.to, env.body) {
            (Actor::Company(n), Ok(req)) => {
                if self.companies[n].up {
                    self.request_at(n, env.call, req);
                }
            }
            (to, Err(resp)) => {
                let Some(call) = self.calls.get(&env.call) else {
                    return;
                };
                let alive = match call.from {
                    Actor::Company(n) => {
                        self.companies[n].up && self.companies[n].epoch == call.epoch
                    }
                    Actor::Client(_) => true,
                };
                if !alive || call.from != to {
                    return;
                }
                if let Some(call) = self.calls.remove(&env.call) {
                    self.response(call, resp);
                }
            }
            (Actor::Client(_), Ok(_)) => {}
        }
    }

    /// A request arrives at company `n`.
    fn request_at(&mut self, n: usize, call: u64, req: Req) {
        let now = self.now;
        let mut acts = Vec::new();
        match req {
            Req::Reserve(r) => {
                let to = self.token(n, Dest::Call(call));
                self.companies[n]
                    .coord
                    .request(now, to, &r, r.forwarded, &mut acts);
            }
            Req::Prepare(p) => {
                let to = self.token(n, Dest::Call(call));
                match self.companies[n].part.prepare(now, to, &p, &mut acts) {
                    Prepared::Refused(e) => {
                        self.companies[n].replies.remove(&to.0);
                        self.run_actions(n, acts);
                        return self.respond(n, call, Resp::Answer(Err(e)));
                    }
                    Prepared::Voted(a) => {
                        self.companies[n].replies.remove(&to.0);
                        self.run_actions(n, acts);
                        return self.respond(n, call, Resp::Answer(Ok(a)));
                    }
                    Prepared::Writing => {}
                }
            }
            Req::Decide { txn, commit } => {
                let r = self.companies[n].part.decide(&txn, commit, &mut acts);
                self.run_actions(n, acts);
                if self.companies[n].up {
                    self.respond(n, call, Resp::Done(r.map(|_| ())));
                }
                return;
            }
            Req::Ask { txn } => {
                let to = self.token(n, Dest::Call(call));
                self.companies[n].coord.decision(now, to, &txn, &mut acts);
            }
            Req::Lookup {
                vehicle,
                request_id,
            } => {
                let l = self.companies[n].coord.lookup(&vehicle, &request_id);
                return self.respond(n, call, Resp::Lookup(l));
            }
        }
        self.run_actions(n, acts);
    }

    /// The reply to a call (or its failure) reaches its caller.
    fn response(&mut self, call: Call, resp: Resp) {
        match (call.from, resp) {
            (Actor::Company(n), Resp::Answer(a)) => self.company_reply(n, call.purpose, a),
            (Actor::Company(n), Resp::Done(r)) => {
                if let Purpose::Ack { txn, company } = call.purpose {
                    let mut acts = Vec::new();
                    self.companies[n].coord.acked(&txn, &company, r, &mut acts);
                    self.run_actions(n, acts);
                }
            }
            (Actor::Client(i), resp) => self.client_reply(i, call.purpose, resp),
            (Actor::Company(_), Resp::Lookup(_)) => {}
        }
    }

    fn failed_call(&mut self, call: Call, e: Error) {
        match call.from {
            Actor::Company(n) => {
                if !self.companies[n].up || self.companies[n].epoch != call.epoch {
                    return;
                }
                if let Purpose::Ack { txn, company } = &call.purpose {
                    let mut acts = Vec::new();
                    self.companies[n]
                        .coord
                        .acked(txn, company, Err(e), &mut acts);
                    return self.run_actions(n, acts);
                }
                self.company_reply(n, call.purpose, Err(e));
            }
            Actor::Client(i) => self.client_reply(i, call.purpose, Resp::Answer(Err(e))),
        }
    }

    fn company_reply(&mut self, n: usize, purpose: Purpose, a: Result<Answer, Error>) {
        let now = self.now;
        let mut acts = Vec::new();
        let c = &mut self.companies[n];
        match purpose {
            Purpose::Vote { txn, company } => {
                let v = a.map(|_| Vote::Yes);
                c.coord.vote(now, &txn, &company, v, &mut acts);
            }
            Purpose::Ask { txn } => c.part.answer(&txn, a, &mut acts),
            Purpose::Relay {
                reply_to,
                coordinator,
            } => c.coord.relay(reply_to, a, &coordinator, &mut acts),
            _ => {}
        }
        self.run_actions(n, acts);
    }

    // ---- a company runs its actions ----------------------------------------

    fn token(&mut self, n: usize, d: Dest) -> ReplyTo {
        let c = &mut self.companies[n];
        c.next_token += 1;
        c.replies.insert(c.next_token, d);
        ReplyTo(c.next_token)
    }

    /// Carry out a core's actions in order. Before each one the company may
    /// crash (the crash points of the real node sit at these boundaries).
    fn run_actions(&mut self, n: usize, acts: Vec<Action>) {
        let mut queue: VecDeque<Action> = acts.into();
        while let Some(a) = queue.pop_front() {
            if !self.companies[n].up {
                return;
            }
            let pct = self.cfg.crash_pct;
            if self.faults() && self.crashes < self.cfg.max_crashes && self.chooser.chance(pct) {
                return self.crash(n);
            }
            let mut more = Vec::new();
            self.action(n, a, &mut more);
            for m in more.into_iter().rev() {
                queue.push_front(m);
            }
            if self.ghost.violation.is_some() {
                return;
            }
        }
    }

    fn action(&mut self, n: usize, a: Action, more: &mut Vec<Action>) {
        let now = self.now;
        let name = COMPANIES[n];
        match a {
            Action::LogCoord { rec, force } => {
                self.note(n, || {
                    format!("coordinator.log: {}{}", coord_label(&rec), forced(force))
                });
                self.ghost.logged_coord(self.step, &rec);
                let c = &mut self.companies[n];
                if force {
                    c.cforce.push_back(rec_txn_coord(&rec));
                }
                c.clog.recs.push(rec);
            }
            Action::LogPart { rec, force } => {
                self.note(n, || {
                    format!("participant.log: {}{}", part_label(&rec), forced(force))
                });
                self.ghost.logged_part(self.step, COMPANIES[n], &rec);
                let c = &mut self.companies[n];
                if force {
                    c.pforce.push_back(rec_txn_part(&rec));
                }
                c.plog.recs.push(rec);
            }
            Action::Reply { to, answer } => {
                if let Ok(Answer::Decision { txn, commit }) = &answer {
                    self.ghost.answered(self.step, txn, *commit);
                }
                match self.companies[n].replies.remove(&to.0) {
                    Some(Dest::Call(call)) => self.respond(n, call, Resp::Answer(answer)),
                    Some(Dest::LocalVote(txn)) => {
                        let v = answer.map(|_| Vote::Yes);
                        self.companies[n].coord.vote(now, &txn, name, v, more);
                    }
                    Some(Dest::LocalAsk(txn)) => self.companies[n].part.answer(&txn, answer, more),
                    None => {}
                }
            }
            Action::Send { to, msg } => {
                let Some(m) = COMPANIES.iter().position(|c| *c == to) else {
                    return;
                };
                if m == n {
                    return self.local(n, msg, more);
                }
                let (purpose, req) = match msg {
                    Msg::Prepare(p) => (
                        Purpose::Vote {
                            txn: p.txn.clone(),
                            company: to.clone(),
                        },
                        Req::Prepare(p),
                    ),
                    Msg::Decide { txn, commit } => (
                        Purpose::Ack {
                            txn: txn.clone(),
                            company: to.clone(),
                        },
                        Req::Decide { txn, commit },
                    ),
                    Msg::Ask { txn } => (Purpose::Ask { txn: txn.clone() }, Req::Ask { txn }),
                    Msg::Forward { request, reply_to } => {
                        let mut r = request;
                        r.forwarded = true;
                        (
                            Purpose::Relay {
                                reply_to,
                                coordinator: to.clone(),
                            },
                            Req::Reserve(r),
                        )
                    }
                };
                self.call(Actor::Company(n), Actor::Company(m), purpose, req);
            }
        }
    }

    /// A message from a company to itself: its other half, in-process.
    fn local(&mut self, n: usize, msg: Msg, more: &mut Vec<Action>) {
        let now = self.now;
        let name = COMPANIES[n];
        match msg {
            Msg::Prepare(p) => {
                let to = self.token(n, Dest::LocalVote(p.txn.clone()));
                let c = &mut self.companies[n];
                let v = match c.part.prepare(now, to, &p, more) {
                    Prepared::Refused(e) => Err(e),
                    Prepared::Writing => Ok(Vote::Held),
                    Prepared::Voted(_) => Ok(Vote::Yes),
                };
                if v != Ok(Vote::Held) {
                    c.replies.remove(&to.0);
                }
                c.coord.vote(now, &p.txn, name, v, more);
            }
            Msg::Decide { txn, commit } => {
                let c = &mut self.companies[n];
                let r = c.part.decide(&txn, commit, more).map(|_| ());
                c.coord.acked(&txn, name, r, more);
            }
            Msg::Ask { txn } => {
                let to = self.token(n, Dest::LocalAsk(txn.clone()));
                self.companies[n].coord.decision(now, to, &txn, more);
            }
            Msg::Forward { reply_to, .. } => {
                let e = Error::crash("forwarded to itself");
                more.push(Action::Reply {
                    to: reply_to,
                    answer: Err(e),
                });
            }
        }
    }

    // ---- disks, crashes, restarts -----------------------------------------

    /// An fsync round completes: everything queued in that log is durable,
    /// and every forced record in it is reported.
    fn fsync(&mut self, n: usize, coord: bool) {
        let now = self.now;
        let c = &mut self.companies[n];
        let (txns, from, to) = if coord {
            let from = c.clog.durable;
            c.clog.durable = c.clog.recs.len();
            (std::mem::take(&mut c.cforce), from, c.clog.durable)
        } else {
            let from = c.plog.durable;
            c.plog.durable = c.plog.recs.len();
            (std::mem::take(&mut c.pforce), from, c.plog.durable)
        };
        let what = if coord {
            "coordinator.log"
        } else {
            "participant.log"
        };
        self.note(n, || {
            format!("fsync {what}: {} record(s) durable", to - from)
        });
        if coord {
            for i in from..to {
                let rec = self.companies[n].clog.recs[i].clone();
                self.ghost.durable_coord(self.step, &rec);
            }
        }
        let mut acts = Vec::new();
        for txn in txns {
            let c = &mut self.companies[n];
            if coord {
                c.coord.forced(now, &txn, &mut acts);
            } else {
                c.part.forced(now, &txn, &mut acts);
            }
        }
        self.run_actions(n, acts);
    }

    fn crash(&mut self, n: usize) {
        self.crashes += 1;
        // A crash during an fsync may have written a few queued records
        // (in order) before it stopped.
        let c_extra = {
            let d = &self.companies[n].clog;
            self.chooser.choose((d.recs.len() - d.durable + 1) as u32) as usize
        };
        let p_extra = {
            let d = &self.companies[n].plog;
            self.chooser.choose((d.recs.len() - d.durable + 1) as u32) as usize
        };
        let c = &mut self.companies[n];
        let from = c.clog.durable;
        c.clog.durable += c_extra;
        c.plog.durable += p_extra;
        let lost = (c.clog.recs.len() - c.clog.durable) + (c.plog.recs.len() - c.plog.durable);
        c.clog.recs.truncate(c.clog.durable);
        c.plog.recs.truncate(c.plog.durable);
        self.lost += lost;
        for i in from..self.companies[n].clog.durable {
            let rec = self.companies[n].clog.recs[i].clone();
            self.ghost.durable_coord(self.step, &rec);
        }
        let c = &mut self.companies[n];
        c.up = false;
        c.epoch += 1;
        c.cforce.clear();
        c.pforce.clear();
        c.replies.clear();
        self.note(n, || format!("** CRASH ** ({lost} queued record(s) lost)"));
        // TCP: what was on its way to the dead process is gone.
        self.net.retain(|e| e.to != Actor::Company(n));
    }

    fn restart(&mut self, n: usize) {
        let now = self.now;
        let rules = self.cfg.rules;
        let names: Vec<String> = COMPANIES.iter().map(|c| c.to_string()).collect();
        let c = &mut self.companies[n];
        c.coord = Coordinator::new(&c.name, &names, rules, TIMING);
        c.part = Participant::new(&c.name, &points_of(&c.name), rules, TIMING);
        for rec in &c.clog.recs {
            c.coord.replay(now, rec.clone());
        }
        for rec in &c.plog.recs {
            c.part.replay(rec.clone());
        }
        c.up = true;
        c.next_tick = now;
        let (nc, np) = (c.clog.recs.len(), c.plog.recs.len());
        self.note(n, || format!("restart: replayed {nc} + {np} record(s)"));
        let mut acts = Vec::new();
        self.companies[n].coord.recover(now, &mut acts);
        self.run_actions(n, acts);
    }

    // ---- clients ------------------------------------------------------------

    fn client_send(&mut self, i: usize) {
        let cl = &mut self.clients[i];
        cl.busy = true;
        let r = cl.requests[cl.next].clone();
        if cl.look_up {
            cl.look_up = false;
            cl.lookups.clear();
            for (m, co) in COMPANIES.iter().enumerate() {
                let req = Req::Lookup {
                    vehicle: r.vehicle.clone(),
                    request_id: r.request_id.clone(),
                };
                let purpose = Purpose::Lookup {
                    company: co.to_string(),
                };
                self.call(Actor::Client(i), Actor::Company(m), purpose, req);
            }
            return;
        }
        let m = self.chooser.choose(COMPANIES.len() as u32) as usize;
        self.call(
            Actor::Client(i),
            Actor::Company(m),
            Purpose::Reserve,
            Req::Reserve(r),
        );
    }

    fn client_reply(&mut self, i: usize, purpose: Purpose, resp: Resp) {
        let r = self.clients[i].requests[self.clients[i].next].clone();
        let key = (r.vehicle.clone(), r.request_id.clone());
        match (purpose, resp) {
            (Purpose::Reserve, Resp::Answer(Ok(Answer::Outcome(o)))) => {
                match o.outcome.as_str() {
                    "reserved" | "rejected" => {
                        let reserved = o.outcome == "reserved";
                        let who = Actor::Client(i);
                        self.line(who, who, false, || {
                            format!("hears: {} {}", o.outcome, o.txn)
                        });
                        self.ghost.told(self.step, &key, reserved, &o.txn, "reply");
                    }
                    _ => {} // failed (definite, about this attempt): a client error here
                }
                self.next_request(i);
            }
            (Purpose::Reserve, _) => {
                // Indefinite (or a refusal we do not expect): retry, maybe
                // after looking the request up.
                let cl = &mut self.clients[i];
                cl.busy = false;
                cl.look_up = self.chooser.choose(3) == 2;
            }
            (Purpose::Lookup { company, .. }, resp) => {
                let a = match resp {
                    Resp::Lookup(l) => Ok(l),
                    Resp::Answer(Err(e)) => Err(e),
                    _ => Err(Error::crash("odd lookup reply")),
                };
                let cl = &mut self.clients[i];
                cl.lookups.push((company, a));
                if cl.lookups.len() < COMPANIES.len() {
                    return;
                }
                let answers = std::mem::take(&mut cl.lookups);
                let (l, unreachable) = combine_lookups(answers);
                let who = Actor::Client(i);
                self.line(who, who, false, || {
                    format!(
                        "lookup {}/{}: {} {}",
                        key.0,
                        key.1,
                        l.outcome.as_str(),
                        l.txn
                    )
                });
                match l.outcome {
                    LookupOutcome::Reserved | LookupOutcome::Rejected => {
                        let reserved = l.outcome == LookupOutcome::Reserved;
                        self.ghost.told(self.step, &key, reserved, &l.txn, "lookup");
                        self.next_request(i);
                    }
                    _ => {
                        let _ = unreachable;
                        self.clients[i].busy = false;
                    }
                }
            }
            _ => self.clients[i].busy = false,
        }
    }

    fn next_request(&mut self, i: usize) {
        let cl = &mut self.clients[i];
        cl.busy = false;
        cl.next += 1;
        // Stray replies of the old request must not count for the next.
        let calls: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.from == Actor::Client(i))
            .map(|(id, _)| *id)
            .collect();
        for id in calls {
            self.calls.remove(&id);
        }
    }

    // ---- checks ---------------------------------------------------------------

    /// Once the faults are healed and the run is over: the first invariant
    /// that does not hold fails the run.
    fn final_checks(&mut self) {
        self.ghost.quiet = true;
        let found = self
            .not_quiet()
            .or_else(|| self.holds_disagree())
            .map(|d| (Invariant::QuietAndDecided, d))
            .or_else(|| self.told_untrue().map(|d| (Invariant::TruthfulOutcome, d)))
            .or_else(|| {
                self.unanswered()
                    .map(|d| (Invariant::EveryRequestAnswered, d))
            })
            .or_else(|| {
                self.race_without_winner()
                    .map(|d| (Invariant::OneWinner, d))
            });
        if let Some((invariant, d)) = found {
            self.ghost.fail(invariant, self.step, d);
        }
    }

    /// Work left after healing: messages, calls, holds or transactions.
    fn not_quiet(&self) -> Option<String> {
        let quiet = self.net.is_empty()
            && self.calls.is_empty()
            && self.companies.iter().all(|c| c.up && !has_work(c));
        if quiet {
            return None;
        }
        let stuck: Vec<String> = self
            .companies
            .iter()
            .flat_map(|c| {
                c.part
                    .undecided()
                    .map(|h| format!("{} holds {} for {}", c.name, h.point, h.txn))
                    .chain(
                        c.coord
                            .open_txns()
                            .map(|t| format!("{} has {t} open", c.name)),
                    )
                    .collect::<Vec<_>>()
            })
            .collect();
        Some(format!("not quiet after healing: {}", stuck.join("; ")))
    }

    /// A stop whose hold does not match its transaction's durable outcome.
    fn holds_disagree(&self) -> Option<String> {
        let parts: Vec<(String, &Participant)> = self
            .companies
            .iter()
            .map(|c| (c.name.clone(), &c.part))
            .collect();
        for (txn, commit) in &self.ghost.durable {
            let Some(stops) = self.ghost.stops.get(txn) else {
                continue;
            };
            for s in stops {
                let Some((_, p)) = parts.iter().find(|(n, _)| *n == s.company) else {
                    continue;
                };
                let has = p.hold(txn).is_some();
                if *commit && !has {
                    return Some(format!(
                        "{txn} committed but {} has no reservation",
                        s.company
                    ));
                }
                if !*commit && has {
                    return Some(format!("{txn} aborted but {} still has it", s.company));
                }
            }
        }
        None
    }

    /// A client told `reserved` for a transaction that never committed.
    fn told_untrue(&self) -> Option<String> {
        for (key, told) in &self.ghost.told {
            for (reserved, txn, _) in told {
                if *reserved && self.ghost.durable.get(txn) != Some(&true) {
                    return Some(format!(
                        "{}/{} was told reserved ({txn}) but it never committed",
                        key.0, key.1
                    ));
                }
            }
        }
        None
    }

    /// Requests with no definite answer.
    fn unanswered(&self) -> Option<String> {
        let unanswered: Vec<String> = self
            .clients
            .iter()
            .filter(|c| c.next < c.requests.len())
            .map(|c| format!("{}/{}", c.name, c.requests[c.next].request_id))
            .collect();
        (!unanswered.is_empty())
            .then(|| format!("no definite answer for {}", unanswered.join(", ")))
    }

    /// A race without faults that nobody won.
    fn race_without_winner(&self) -> Option<String> {
        (self.cfg.race && self.ghost.told_count(true) == 0).then(|| {
            format!(
                "{} vehicles raced for one route without faults and all were rejected",
                self.clients.len()
            )
        })
    }

    // ---- tracing ------------------------------------------------------------

    fn actor_name(&self, a: Actor) -> String {
        match a {
            Actor::Company(n) => self.companies[n].name.clone(),
            Actor::Client(i) => self.clients[i].name.clone(),
        }
    }

    /// Trace one step (traced runs only: `label` is not even built otherwise).
    fn line(&mut self, from: Actor, to: Actor, reply: bool, label: impl FnOnce() -> String) {
        if self.cfg.trace {
            let line = Line {
                step: self.step,
                now: self.now,
                from: self.actor_name(from),
                to: self.actor_name(to),
                label: label(),
                reply,
            };
            self.trace.push(line);
        }
    }

    /// Trace something that happened at company `n`.
    fn note(&mut self, n: usize, label: impl FnOnce() -> String) {
        self.line(Actor::Company(n), Actor::Company(n), false, label);
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Deliver,
    Fsync,
    Client,
    Tick,
    Timeout,
    Restart,
    Crash,
}

enum Event {
    Deliver(usize),
    /// (company, coordinator log?) completes an fsync round.
    Fsync(usize, bool),
    Client(usize),
    Tick(usize),
    Timeout(u64),
    Restart(usize),
    Crash(usize),
}

/// Something for its timer to do: a transaction not ended, a hold in doubt.
fn has_work(c: &Company) -> bool {
    c.coord.open_txns().next().is_some() || c.part.undecided().next().is_some()
}

fn points_of(company: &str) -> Vec<String> {
    (1..=2).map(|i| format!("{company}{i}")).collect()
}

/// Two points per company, three windows (the first two overlap): enough
/// for routes to race.
fn random_route(ch: &mut Chooser) -> Vec<Stop> {
    const WINDOWS: [(u32, u32); 3] = [(60, 120), (90, 150), (200, 260)];
    let first = ch.choose(3) as usize;
    let n = 1 + ch.choose(3) as usize;
    (0..n)
        .map(|k| {
            let co = COMPANIES[(first + k) % COMPANIES.len()];
            let (start, end) = WINDOWS[ch.choose(3) as usize];
            Stop {
                company: co.to_string(),
                point: format!("{co}{}", 1 + ch.choose(2)),
                start,
                end,
            }
        })
        .collect()
}

fn hot_route() -> Vec<Stop> {
    vec![Stop {
        company: "A".into(),
        point: "A1".into(),
        start: 60,
        end: 120,
    }]
}

fn race_route() -> Vec<Stop> {
    COMPANIES
        .iter()
        .map(|co| Stop {
            company: co.to_string(),
            point: format!("{co}1"),
            start: 60,
            end: 120,
        })
        .collect()
}

fn forced(force: bool) -> &'static str {
    if force {
        " (forced)"
    } else {
        " (queued)"
    }
}

fn rec_txn_coord(r: &CoordRecord) -> String {
    match r {
        CoordRecord::Begin { txn, .. }
        | CoordRecord::Commit { txn, .. }
        | CoordRecord::Abort { txn, .. }
        | CoordRecord::End { txn } => txn.clone(),
    }
}

fn rec_txn_part(r: &PartRecord) -> String {
    match r {
        PartRecord::Hold { txn, .. } | PartRecord::Commit { txn } | PartRecord::Abort { txn } => {
            txn.clone()
        }
    }
}

fn coord_label(r: &CoordRecord) -> String {
    match r {
        CoordRecord::Begin {
            txn, participants, ..
        } => format!("begin {txn} {}", participants.join(",")),
        CoordRecord::Commit { txn, .. } => format!("COMMIT {txn}"),
        CoordRecord::Abort { txn, conflict, .. } => format!("ABORT {txn} (code {})", conflict.code),
        CoordRecord::End { txn } => format!("end {txn}"),
    }
}

fn part_label(r: &PartRecord) -> String {
    match r {
        PartRecord::Hold {
            txn,
            point,
            start,
            end,
            ..
        } => format!("hold {point} {start}-{end} for {txn}"),
        PartRecord::Commit { txn } => format!("commit {txn}"),
        PartRecord::Abort { txn } => format!("abort {txn}"),
    }
}

fn req_label(r: &Req) -> String {
    match r {
        Req::Reserve(r) => {
            let stops: Vec<String> = r
                .stops
                .iter()
                .map(|s| format!("{}@{}", s.point, s.start))
                .collect();
            let fwd = if r.forwarded { " (forwarded)" } else { "" };
            format!(
                "reserve {}/{} [{}]{fwd}",
                r.vehicle,
                r.request_id,
                stops.join(" ")
            )
        }
        Req::Prepare(p) => format!("prepare {} {}@{}", p.txn, p.point, p.start),
        Req::Decide { txn, commit } => {
            format!("{} {txn}", if *commit { "commit" } else { "abort" })
        }
        Req::Ask { txn } => format!("decision? {txn}"),
        Req::Lookup {
            vehicle,
            request_id,
        } => format!("lookup {vehicle}/{request_id}"),
    }
}

fn resp_label(r: &Resp) -> String {
    let err = |e: &Error| {
        let d = if e.definite() { "" } else { ", indefinite" };
        format!("error {}{d}", e.code.number())
    };
    match r {
        Resp::Answer(Ok(Answer::Outcome(o))) => format!("{} {}", o.outcome, o.txn),
        Resp::Answer(Ok(Answer::Vote { txn, .. })) => format!("yes {txn}"),
        Resp::Answer(Ok(Answer::Decision { txn, commit })) => {
            format!("{} {txn}", if *commit { "commit" } else { "abort" })
        }
        Resp::Answer(Err(e)) | Resp::Done(Err(e)) => err(e),
        Resp::Done(Ok(())) => "ok".into(),
        Resp::Lookup(l) => format!("{} {}", l.outcome.as_str(), l.txn),
    }
}

fn purpose_name(p: &Purpose) -> &'static str {
    match p {
        Purpose::Vote { .. } => "prepare",
        Purpose::Ack { .. } => "decide",
        Purpose::Ask { .. } => "decision",
        Purpose::Relay { .. } => "forwarded reserve",
        Purpose::Reserve => "reserve",
        Purpose::Lookup { .. } => "lookup",
    }
}

// ---------------------------------------------------------------------------
// The checker's memory: what happened, as the invariants need it (a ghost
// state no node has). Each observation checks what it could break.

type Key = (String, String);

struct Ghost {
    skip: Vec<Invariant>,
    violation: Option<Violation>,
    /// The final checks are running.
    quiet: bool,
    /// Transactions begun per request.
    begun: BTreeMap<Key, BTreeSet<String>>,
    /// Each transaction's stops (from its `begin`).
    stops: BTreeMap<String, Vec<Stop>>,
    request_of: BTreeMap<String, Key>,
    /// Durable decisions of coordinators.
    durable: BTreeMap<String, bool>,
    /// Companies that applied commit / abort (of a hold) for a transaction.
    committed_at: BTreeMap<String, BTreeSet<String>>,
    aborted_at: BTreeMap<String, BTreeSet<String>>,
    /// Committed transactions (anywhere), for the double-booking check.
    committed: BTreeSet<String>,
    /// `decision` answers given.
    answers: BTreeMap<String, bool>,
    /// Definite outcomes clients heard: (reserved?, txn, how).
    told: BTreeMap<Key, Vec<(bool, String, &'static str)>>,
}

impl Ghost {
    fn new(cfg: &Config) -> Ghost {
        Ghost {
            skip: cfg.skip.clone(),
            violation: None,
            quiet: false,
            begun: BTreeMap::new(),
            stops: BTreeMap::new(),
            request_of: BTreeMap::new(),
            durable: BTreeMap::new(),
            committed_at: BTreeMap::new(),
            aborted_at: BTreeMap::new(),
            committed: BTreeSet::new(),
            answers: BTreeMap::new(),
            told: BTreeMap::new(),
        }
    }

    fn fail(&mut self, invariant: Invariant, step: usize, detail: String) {
        if self.violation.is_none() && !self.skip.contains(&invariant) {
            self.violation = Some(Violation {
                invariant,
                detail,
                step,
                once_quiet: self.quiet,
            });
        }
    }

    fn told_count(&self, reserved: bool) -> usize {
        self.told
            .values()
            .filter(|t| t.iter().any(|(r, _, _)| *r == reserved))
            .count()
    }

    fn logged_coord(&mut self, step: usize, rec: &CoordRecord) {
        if let CoordRecord::Begin {
            txn,
            vehicle,
            request_id,
            stops,
            ..
        } = rec
        {
            let key = (vehicle.clone(), request_id.clone());
            self.stops.insert(txn.clone(), stops.clone());
            self.request_of.insert(txn.clone(), key.clone());
            let set = self.begun.entry(key.clone()).or_default();
            set.insert(txn.clone());
            if set.len() > 1 {
                let all: Vec<&String> = set.iter().collect();
                let d = format!("{vehicle}/{request_id} started {all:?}");
                self.fail(Invariant::OneTxnPerRequest, step, d);
            }
        }
    }

    fn durable_coord(&mut self, step: usize, rec: &CoordRecord) {
        let (txn, commit) = match rec {
            CoordRecord::Commit { txn, .. } => (txn, true),
            CoordRecord::Abort { txn, .. } => (txn, false),
            _ => return,
        };
        if let Some(was) = self.durable.insert(txn.clone(), commit) {
            if was != commit {
                let d = format!("{txn}: the coordinator's log holds both commit and abort");
                self.fail(Invariant::DecisionsAgree, step, d);
            }
        }
        if commit {
            self.now_committed(step, txn);
        }
        self.consistent(step, txn);
    }

    fn logged_part(&mut self, step: usize, company: &str, rec: &PartRecord) {
        match rec {
            PartRecord::Commit { txn } => {
                self.committed_at
                    .entry(txn.clone())
                    .or_default()
                    .insert(company.to_string());
                self.now_committed(step, txn);
                self.consistent(step, txn);
            }
            PartRecord::Abort { txn } => {
                self.aborted_at
                    .entry(txn.clone())
                    .or_default()
                    .insert(company.to_string());
                self.consistent(step, txn);
            }
            PartRecord::Hold { .. } => {}
        }
    }

    fn answered(&mut self, step: usize, txn: &str, commit: bool) {
        if let Some(was) = self.answers.insert(txn.to_string(), commit) {
            if was != commit {
                let d = format!("{txn}: decision answered both commit and abort");
                return self.fail(Invariant::DecisionsAgree, step, d);
            }
        }
        self.consistent(step, txn);
    }

    fn told(&mut self, step: usize, key: &Key, reserved: bool, txn: &str, how: &'static str) {
        let list = self.told.entry(key.clone()).or_default();
        list.push((reserved, txn.to_string(), how));
        if list.iter().any(|(r, _, _)| *r != reserved) {
            let d = format!(
                "{}/{} was told both reserved and rejected: {list:?}",
                key.0, key.1
            );
            return self.fail(Invariant::TruthfulOutcome, step, d);
        }
        self.truthful(step, key);
    }

    /// `txn` is committed somewhere now: no overlapping committed route.
    fn now_committed(&mut self, step: usize, txn: &str) {
        if !self.committed.insert(txn.to_string()) {
            return;
        }
        let Some(mine) = self.stops.get(txn) else {
            return;
        };
        for other in &self.committed {
            if other == txn {
                continue;
            }
            let Some(theirs) = self.stops.get(other) else {
                continue;
            };
            for a in mine {
                for b in theirs {
                    if a.point == b.point && a.start < b.end && b.start < a.end {
                        let d = format!(
                            "{} {}-{} is reserved by {txn} and by {other}",
                            a.point, a.start, a.end
                        );
                        return self.fail(Invariant::NoDoubleBooking, step, d);
                    }
                }
            }
        }
        if let Some(key) = self.request_of.get(txn).cloned() {
            self.truthful(step, &key);
        }
    }

    /// Commit and abort never both, by anyone, for one transaction.
    fn consistent(&mut self, step: usize, txn: &str) {
        let committed = self.committed_at.get(txn).filter(|s| !s.is_empty());
        let aborted = self.aborted_at.get(txn).filter(|s| !s.is_empty());
        if let (Some(c), Some(a)) = (committed, aborted) {
            let d = format!("{txn} committed at {c:?} and aborted at {a:?}");
            return self.fail(Invariant::AllOrNothing, step, d);
        }
        let durable = self.durable.get(txn).copied();
        if durable == Some(false) {
            if let Some(c) = committed {
                let d = format!("{txn} aborted by its coordinator but committed at {c:?}");
                return self.fail(Invariant::AllOrNothing, step, d);
            }
        }
        if durable == Some(true) {
            if let Some(a) = aborted {
                let d = format!("{txn} committed by its coordinator but aborted at {a:?}");
                return self.fail(Invariant::AllOrNothing, step, d);
            }
        }
        match self.answers.get(txn).copied() {
            Some(false) if committed.is_some() || durable == Some(true) => {
                let d = format!("decision({txn}) answered abort, but it committed");
                self.fail(Invariant::DecisionsAgree, step, d);
            }
            Some(true) if aborted.is_some() || durable == Some(false) => {
                let d = format!("decision({txn}) answered commit, but it aborted");
                self.fail(Invariant::DecisionsAgree, step, d);
            }
            _ => {}
        }
        if let Some(key) = self.request_of.get(txn).cloned() {
            self.truthful(step, &key);
        }
    }

    /// What request `key` was told is still true.
    fn truthful(&mut self, step: usize, key: &Key) {
        let Some(told) = self.told.get(key) else {
            return;
        };
        let txns = self.begun.get(key).cloned().unwrap_or_default();
        for (reserved, txn, how) in told.clone() {
            if reserved {
                let aborted = self.durable.get(&txn) == Some(&false)
                    || self.aborted_at.get(&txn).is_some_and(|s| !s.is_empty());
                if aborted {
                    let d = format!(
                        "{}/{} was told reserved ({txn}, by {how}) but it aborted",
                        key.0, key.1
                    );
                    return self.fail(Invariant::TruthfulOutcome, step, d);
                }
            } else if let Some(c) = txns.iter().find(|t| self.committed.contains(*t)) {
                let d = format!(
                    "{}/{} was told rejected ({txn}, by {how}) but its route is reserved ({c})",
                    key.0, key.1
                );
                return self.fail(Invariant::TruthfulOutcome, step, d);
            }
        }
    }
}

/// Run `count` schedules from `first`, stopping at the first failure.
/// Returns the failing report (unshrunk) if any, and how many ran.
pub fn explore(first: u64, count: u64, cfg: &Config) -> (Option<Report>, u64) {
    for (i, seed) in (first..first.saturating_add(count)).enumerate() {
        let r = run(seed, cfg);
        if r.violation.is_some() {
            return (Some(r), i as u64 + 1);
        }
    }
    (None, count)
}
