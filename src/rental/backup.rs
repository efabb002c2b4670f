//! The backup: the rental system's durable memory and its source of truth.
//!
//! It holds the [`Ledger`] (where every car is, the system-wide pending
//! FIFO per class, the first answer to every request id) and writes every
//! change to a [`Wal`] before acknowledging it. Terminals ask it to make
//! each change; it validates the change against the ledger, so two terminals
//! can never rent the same car and a cancel racing a return has exactly one
//! winner (both are decided under one lock, in log order).
//!
//! Locking: the ledger lock is held while deciding, applying and *queuing*
//! the record (so log order = decision order), never while waiting for the
//! fsync, so concurrent requests share fsyncs (group commit). Writes, and
//! the reads terminals make on every rent and claim (`holders`,
//! `check_pending`), are answered by whichever thread makes what they saw
//! durable ([`Wal::after`], [`Ctx::defer`]): the connection thread goes
//! back to reading instead of sleeping through the fsync.
//!
//! Compaction: the log would grow forever, so whenever more than
//! `compact_every` records were written since the last time (replayed
//! records count, so a long log is compacted at the first write after a
//! restart — never during start-up, which must work on a nearly full
//! disk), the whole log is replaced by a snapshot of the ledger (a head record, then
//! chunks of 1,000 pending requests or answers), followed by
//! the records appended while the snapshot was written (`Wal::rewrite_from`:
//! only the state copy happens under the ledger lock). The
//! snapshot grows with the answers remembered for retries, so the log must
//! also have outgrown the last snapshot (more records written since than
//! entries in it): each compaction then costs O(1) per record written, not
//! O(history) every `compact_every` records (measured: 12% of the backup's
//! CPU in the bench before this rule). The state and the log position are
//! taken together under the ledger lock (nothing can be decided or queued
//! meanwhile), so the snapshot covers exactly the records before that
//! position and the records after it are kept: no acknowledged record can
//! be lost, and no record is applied twice. A compaction that fails (a
//! full disk) leaves the log as it was and is tried again after another
//! `compact_every` records.
//!
//! A full disk or a failing one (see [`Wal`]): a write the log refuses
//! (no room) is answered with error 11 and changes nothing — the record is
//! queued *before* the ledger applies it; a log that failed answers every
//! waiting write with error 13 and stops the process.

use super::fleet::{self, Class};
use super::ledger::{Ledger, Ruling};
use super::record::Record;
use crate::runtime::crash;
use crate::runtime::server::{Ctx, Handler, MessageHelp, NodeInfo};
use crate::runtime::wal::record::{self as typed, LogRecord as _};
use crate::runtime::wal::{self, Wal};
use crate::sync::lock;
use crate::wire::error::{Code, Error};
use crate::wire::message::{body, Body, Request};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Crash points of the backup (see protocol.md, "Crash points").
pub const CRASH_POINTS: [&str; 4] = [
    "backup.before_log",
    "backup.after_log",
    "backup.before_compact",
    "backup.after_compact",
];

pub struct Backup {
    ledger: Mutex<Ledger>,
    wal: Wal,
    claim_timeout: Duration,
    replayed: usize,
    truncated_bytes: u64,
    /// Where a torn last write cut on open was kept, and the repair note
    /// of a log repaired by `frota-ctl log-repair` (shown by `status`).
    torn_kept: Option<String>,
    repaired: Option<String>,
    compactions_failed: AtomicU64,
    records: AtomicU64,
    stop: AtomicBool,
    /// Compact once more than this many records were written since the
    /// last compaction (0 = never).
    compact_every: u64,
    since_compact: AtomicU64,
    /// Entries in the last snapshot (see the module doc).
    snapshot_entries: AtomicU64,
    compactions: AtomicU64,
    /// Held by a compaction and by `audit` (which reads the log file back
    /// without the ledger lock: the log must not be swapped under it).
    compact_lock: Mutex<()>,
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("rental.log")
}

/// A write the log did not take, as the client hears it: 11 when it was
/// refused (nothing written), 13 when the log failed (the process stops;
/// see [`Wal`]).
fn log_error(e: io::Error) -> Error {
    wal::client_error(&e)
}

#[derive(Deserialize)]
struct RentReq {
    request_id: String,
    class: String,
    terminal: String,
    #[serde(default)]
    client: String,
}

#[derive(Deserialize)]
struct PendReq {
    request_id: String,
    class: String,
    terminal: String,
    #[serde(default)]
    client: String,
    callback: Option<String>,
    #[serde(default)]
    unreachable: Vec<String>,
}

#[derive(Deserialize)]
struct ReturnReq {
    request_id: String,
    car: String,
    terminal: String,
}

#[derive(Deserialize)]
struct IdReq {
    request_id: String,
    #[serde(default)]
    claim: bool,
}

#[derive(Deserialize)]
struct ClassReq {
    class: String,
}

#[derive(Deserialize)]
struct TerminalReq {
    terminal: String,
}

/// Parse a class name; error 12 names the field.
pub fn class_of(text: &str) -> Result<Class, Error> {
    Class::parse(text).ok_or_else(|| {
        Error::malformed(format!(
            "field 'class': unknown vehicle class '{text}' (economy, intermediate, suv, executive, minivan)"
        ))
    })
}

/// Request ids are client-chosen: bound them so nobody grows our memory.
pub fn check_request_id(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > 128 {
        return Err(Error::malformed(
            "field 'request_id' must be 1..=128 characters",
        ));
    }
    Ok(())
}

fn check_terminal(name: &str) -> Result<(), Error> {
    if (1..=fleet::TERMINALS).any(|n| fleet::terminal_name(n) == name) {
        Ok(())
    } else {
        Err(Error::malformed(format!(
            "field 'terminal': '{name}' is not terminal-1..terminal-{}",
            fleet::TERMINALS
        )))
    }
}

impl Backup {
    /// Open (or create) the log under `data_dir` and replay it. No
    /// compaction here: start-up must work on a disk with little free space
    /// (the first write compacts a long log, see the module doc).
    pub fn open(
        data_dir: &Path,
        claim_timeout: Duration,
        compact_every: u64,
    ) -> io::Result<Arc<Backup>> {
        let mut ledger = Ledger::new();
        let (wal, replay) = typed::open(&log_path(data_dir), |r: Record| {
            ledger.apply(&r);
        })?;
        let problems = ledger.check_invariants();
        if !problems.is_empty() {
            log::error!("replayed log is inconsistent: {problems:?}");
        }
        log::info!(
            "replayed {} records (lsn {}), dropped {} torn bytes",
            replay.records,
            ledger.lsn(),
            replay.truncated_bytes
        );
        Ok(Arc::new(Backup {
            ledger: Mutex::new(ledger),
            wal,
            claim_timeout,
            replayed: replay.records as usize,
            truncated_bytes: replay.truncated_bytes,
            torn_kept: replay.torn_kept.map(|p| p.display().to_string()),
            repaired: replay.repaired,
            compactions_failed: AtomicU64::new(0),
            records: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            compact_every,
            since_compact: AtomicU64::new(replay.records),
            snapshot_entries: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            compact_lock: Mutex::new(()),
        }))
    }

    /// Replace the log by a snapshot of the ledger (plus the
    /// records appended while it was being written). Ok(false) when another
    /// compaction or an audit is reading the log.
    pub fn compact(&self) -> io::Result<bool> {
        let _c = match self.compact_lock.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        // Under the ledger lock (which every enqueue holds) the state and the
        // log position agree; copying the state takes milliseconds, and
        // serializing and writing it happen after the lock is released, so
        // requests are not held up by a large snapshot.
        let (parts, mark, entries) = {
            let ledger = self.lock();
            (
                ledger.snapshot_parts(),
                self.wal.mark(),
                ledger.snapshot_entries(),
            )
        };
        let lsn = parts.lsn();
        crash::point("backup.before_compact");
        self.wal
            .rewrite_from(mark, parts.records().map(|r| r.encode()))?;
        self.since_compact.store(0, Ordering::Relaxed);
        self.snapshot_entries.store(entries, Ordering::Relaxed);
        self.compactions.fetch_add(1, Ordering::Relaxed);
        log::info!("log compacted to a snapshot at lsn {lsn}");
        crash::point("backup.after_compact");
        Ok(true)
    }

    /// Count durable records and compact when the log has grown enough.
    fn written(&self, n: u64) {
        self.records.fetch_add(n, Ordering::Relaxed);
        self.since_compact.fetch_add(n, Ordering::Relaxed);
        self.maybe_compact();
    }

    fn maybe_compact(&self) {
        let every = self.compact_every;
        let since = self.since_compact.load(Ordering::Relaxed);
        if every == 0 || since <= every || since <= self.snapshot_entries.load(Ordering::Relaxed) {
            return;
        }
        // A failed compaction left the log as it was (a failure after the
        // rename fails the log itself, see `Wal::rewrite_from`): go on,
        // and try again after another `compact_every` records.
        if let Err(e) = self.compact() {
            self.since_compact.store(0, Ordering::Relaxed);
            self.compactions_failed.fetch_add(1, Ordering::Relaxed);
            log::warn!("compaction failed, the log is unchanged; retrying later: {e}");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    /// Decide under the lock, queue the record in log order, and answer
    /// once it is durable from whichever thread makes it so (`Wal::after`),
    /// so this connection thread does not sleep through the fsync: it goes
    /// back to reading. A [`Ruling::Answer`] (a first answer, for a retry)
    /// waits for the last ticket too: its record may still be queued.
    fn commit_later(
        &self,
        req: &Request,
        ctx: &Ctx,
        decide: impl FnOnce(&Ledger) -> Result<Ruling, Error>,
    ) -> Result<Body, Error> {
        let mut ledger = self.lock();
        let (answer, logged) = match decide(&ledger)? {
            Ruling::Answer(b) => (b, false),
            Ruling::Write(rec) => {
                crash::point("backup.before_log");
                // Queued before it is applied: a refused record changes nothing.
                self.wal.enqueue(&[rec.encode()]).map_err(log_error)?;
                (ledger.apply(&rec), true)
            }
        };
        self.answer_when_durable(ledger, req, ctx, answer, logged)
    }

    /// A read, answered like [`Backup::commit_later`]: once everything the
    /// state it saw reflects is durable, by the thread that makes it so.
    /// (A connection thread that waited for that fsync itself would sleep
    /// and be woken once more per read: on this 2-core VM a wake-up costs
    /// tens of µs of CPU, more than the read.)
    fn read_later(
        &self,
        req: &Request,
        ctx: &Ctx,
        f: impl FnOnce(&Ledger) -> Body,
    ) -> Result<Body, Error> {
        let ledger = self.lock();
        let answer = f(&ledger);
        self.answer_when_durable(ledger, req, ctx, answer, false)
    }

    /// Send `answer` once every record queued so far (under `ledger`, which
    /// every enqueue holds, so the state the answer was read from is
    /// covered) is durable; `logged`: the answer follows a record of its own.
    fn answer_when_durable(
        &self,
        ledger: MutexGuard<'_, Ledger>,
        req: &Request,
        ctx: &Ctx,
        answer: Body,
        logged: bool,
    ) -> Result<Body, Error> {
        let ticket = self.wal.last_ticket();
        drop(ledger);
        let later = ctx.defer(req);
        self.wal.after(
            ticket,
            Box::new(move |durable| {
                // A failed log: the client hears so (13) before the process
                // stops, never a bare close.
                if let Err(e) = durable {
                    return later.send(Err(log_error(e)));
                }
                if logged {
                    crash::point("backup.after_log");
                }
                later.send(Ok(answer));
            }),
        );
        if logged {
            self.written(1);
        }
        Ok(Body::new())
    }

    /// `check_pending`: with `claim`, first claim an allocated car (a
    /// record of its own), then say where the request stands: one decision
    /// under the lock, one answer once both are durable. A claim the log
    /// refuses (a full disk) is skipped: the answer is then the truth
    /// without it (`claimed: false`), and the client may claim again.
    fn check_pending(&self, req: &Request, ctx: &Ctx, r: &IdReq) -> Result<Body, Error> {
        let mut ledger = self.lock();
        let mut logged = false;
        if r.claim {
            // Only an allocated car gives a record; a claimed one (another
            // claim won), or none, is answered as it stands.
            if let Ok(Ruling::Write(rec)) = ledger.decide_claim(&r.request_id) {
                crash::point("backup.before_log");
                if self.wal.enqueue(&[rec.encode()]).is_ok() {
                    ledger.apply(&rec);
                    logged = true;
                }
            }
        }
        let answer = ledger.check(&r.request_id);
        self.answer_when_durable(ledger, req, ctx, answer, logged)
    }

    /// Apply and log several records decided together (sweeps, matches).
    fn commit_all(&self, decide: impl FnOnce(&Ledger) -> Vec<Record>) -> usize {
        let mut ledger = self.lock();
        let recs = decide(&ledger);
        if recs.is_empty() {
            return 0;
        }
        crash::point("backup.before_log");
        let values: Vec<Value> = recs.iter().map(Record::encode).collect();
        let ticket = match self.wal.enqueue(&values) {
            Ok(t) => t,
            Err(e) => {
                // Refused (a full disk): nothing applied; the next sweep or
                // sync decides again.
                log::warn!("{} record(s) postponed: {e}", recs.len());
                return 0;
            }
        };
        for r in &recs {
            ledger.apply(r);
        }
        drop(ledger);
        if let Err(e) = self.wal.wait(ticket) {
            log::error!("the log failed: {e}");
            return 0;
        }
        crash::point("backup.after_log");
        self.written(recs.len() as u64);
        recs.len()
    }

    /// Read state only once everything it reflects is durable.
    fn read<T>(&self, f: impl FnOnce(&Ledger) -> T) -> Result<T, Error> {
        let ledger = self.lock();
        let out = f(&ledger);
        let ticket = self.wal.last_ticket();
        drop(ledger);
        self.wal.wait(ticket).map_err(log_error)?;
        Ok(out)
    }

    /// Expire unclaimed allocations every `every` until [`Backup::stop`].
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> io::Result<JoinHandle<()>> {
        let me = self.clone();
        thread::Builder::new()
            .name("claim-sweeper".into())
            .spawn(move || {
                while !me.stop.load(Ordering::SeqCst) {
                    thread::sleep(every);
                    let timeout = me.claim_timeout;
                    let n = me.commit_all(|l| l.decide_expiries(timeout, Instant::now()));
                    if n > 0 {
                        log::info!("{n} unclaimed allocation(s) expired; cars back to stock");
                    }
                    // A compaction refused during a burst happens once quiet.
                    me.maybe_compact();
                }
            })
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn sync(&self, terminal: &str) -> Result<Body, Error> {
        self.commit_all(|l| l.decide_matches(terminal));
        self.read(|l| {
            let unclaimed: Vec<Value> = l
                .unclaimed(terminal)
                .into_iter()
                .map(|p| {
                    let car = match &p.state {
                        super::ledger::PendState::Allocated { car, .. } => car.clone(),
                        _ => String::new(),
                    };
                    json!({"request_id": p.request_id, "car": car, "class": p.class.name(),
                           "client": p.client, "callback": p.callback})
                })
                .collect();
            body(
                json!({"terminal": terminal, "lsn": l.lsn(), "stock": l.stock(terminal),
                        "unclaimed": unclaimed}),
            )
        })
    }

    fn audit(&self) -> Body {
        // Snapshot under the lock, then compare with what a restart would
        // replay *up to the snapshot's lsn* — without holding the lock
        // across the fsync wait and the file read. No compaction may swap
        // the log meanwhile (its snapshot would be newer than ours).
        let _c = lock(&self.compact_lock);
        let (lsn, places, queues, counts, mut problems, ticket) = {
            let l = self.lock();
            (
                l.lsn(),
                l.places(),
                l.queues(),
                l.counts(),
                l.check_invariants(),
                self.wal.last_ticket(),
            )
        };
        if let Err(e) = self.wal.wait(ticket) {
            problems.push(format!("the log failed: {e}"));
        }
        let mut again = Ledger::new();
        let mut unreadable = 0;
        let replayed = wal::for_each_record(self.wal.path(), |v| match Record::decode(v) {
            Ok(r) if r.lsn().unwrap_or(0) <= lsn => {
                again.apply(&r);
            }
            Ok(_) => {}
            Err(_) => unreadable += 1,
        });
        if unreadable > 0 {
            problems.push(format!("{unreadable} record(s) of the log do not parse"));
        }
        match replayed {
            Ok(_) => {
                if again.lsn() != lsn || again.places() != places || again.queues() != queues {
                    problems.push(format!(
                        "the log does not replay to the state in memory (lsn {} vs {lsn})",
                        again.lsn()
                    ));
                }
            }
            Err(e) => problems.push(format!("cannot read the log back: {e}")),
        }
        let (free, rented, allocated, waiting) = counts;
        body(json!({
            "ok": problems.is_empty(),
            "lsn": lsn,
            "vehicles": free + rented + allocated,
            "free": free, "rented": rented, "allocated": allocated, "waiting": waiting,
            "places": places,
            "queues": queues,
            "problems": problems,
        }))
    }
}

pub const HELP: [MessageHelp; 9] = [
    MessageHelp::new(
        "rent",
        "(terminal→backup) rent a free car of the class that is at this terminal and log it; error 20 if none there; a known request_id gets its first answer",
        r#"{"type":"rent","id":1,"request_id":"r1","class":"economy","terminal":"terminal-3","client":"ana"}"#,
    ),
    MessageHelp::new(
        "pend",
        "(terminal→backup) queue a pending request in the class's system-wide FIFO and log it; error 22 while a car of the class is free at a terminal not listed in 'unreachable'",
        r#"{"type":"pend","id":1,"request_id":"r9","class":"executive","terminal":"terminal-1","client":"ana","callback":"127.0.0.1:40001","unreachable":[]}"#,
    ),
    MessageHelp::new(
        "return",
        "(terminal→backup) a rented car came back to this terminal: it joins its stock, or goes to the oldest waiting request of its class (handed_to)",
        r#"{"type":"return","id":1,"request_id":"r1-back","car":"ECO01","terminal":"terminal-1"}"#,
    ),
    MessageHelp::new(
        "cancel",
        "withdraw a waiting request; error 22 if it was already fulfilled (the car is the client's), error 20 if no request waited under that id (unknown, or rented at once)",
        r#"{"type":"cancel","id":1,"request_id":"r9"}"#,
    ),
    MessageHelp::new(
        "claim",
        "(terminal→backup) the client learned about its allocated car: it is now rented to it; error 22 if nothing is allocated to it, error 20 if no request waited under that id (unknown, or rented at once)",
        r#"{"type":"claim","id":1,"request_id":"r9"}"#,
    ),
    MessageHelp::new(
        "check_pending",
        "the truth about a request id: waiting / fulfilled / cancelled / expired / rented / unknown; claim=true also claims an allocated car",
        r#"{"type":"check_pending","id":1,"request_id":"r9","claim":false}"#,
    ),
    MessageHelp::new(
        "holders",
        "terminals that hold a free car of a class",
        r#"{"type":"holders","id":1,"class":"suv"}"#,
    ),
    MessageHelp::new(
        "sync",
        "(terminal→backup) this terminal's stock and its unclaimed allocations (callbacks to retry); first hands free cars to waiting requests",
        r#"{"type":"sync","id":1,"terminal":"terminal-1"}"#,
    ),
    MessageHelp::new(
        "audit",
        "conservation check: every car's place, queues, invariants, and whether the log replays to the state in memory",
        r#"{"type":"audit","id":1}"#,
    ),
];

impl Handler for Backup {
    fn info(&self) -> NodeInfo {
        NodeInfo::new("backup", "backup")
    }

    fn help(&self) -> Vec<MessageHelp> {
        HELP.to_vec()
    }

    fn crash_points(&self) -> Vec<&'static str> {
        CRASH_POINTS.to_vec()
    }

    fn status(&self) -> Body {
        let (appends, fsyncs) = self.wal.stats();
        let (lsn, (free, rented, allocated, waiting)) = {
            let l = self.lock();
            (l.lsn(), l.counts())
        };
        body(json!({
            "log": self.wal.path().display().to_string(),
            "lsn": lsn,
            "replayed_records": self.replayed,
            "truncated_bytes": self.truncated_bytes,
            "records_written": self.records.load(Ordering::Relaxed),
            "log_refused_writes": self.wal.refused_writes(),
            "torn_tail_kept_in": self.torn_kept,
            "log_repaired": self.repaired,
            "compactions_failed": self.compactions_failed.load(Ordering::Relaxed),
            "appends": appends, "fsyncs": fsyncs,
            "free": free, "rented": rented, "allocated": allocated, "waiting": waiting,
            "claim_timeout_ms": self.claim_timeout.as_millis() as u64,
            "compact_every": self.compact_every,
            "compactions": self.compactions.load(Ordering::Relaxed),
            "records_since_compaction": self.since_compact.load(Ordering::Relaxed),
            "snapshot_entries": self.snapshot_entries.load(Ordering::Relaxed),
            "crash_points": CRASH_POINTS,
        }))
    }

    fn handle(&self, req: &Request, ctx: &Ctx) -> Result<Body, Error> {
        match req.kind.as_str() {
            "rent" => {
                let r: RentReq = req.parse()?;
                check_request_id(&r.request_id)?;
                check_terminal(&r.terminal)?;
                let class = class_of(&r.class)?;
                self.commit_later(req, ctx, |l| {
                    l.decide_rent(&r.request_id, class, &r.terminal, &r.client)
                })
            }
            "pend" => {
                let r: PendReq = req.parse()?;
                check_request_id(&r.request_id)?;
                check_terminal(&r.terminal)?;
                let class = class_of(&r.class)?;
                self.commit_later(req, ctx, |l| {
                    let ruling = l.decide_pend(
                        &r.request_id,
                        class,
                        &r.terminal,
                        &r.client,
                        r.callback.as_deref(),
                        &r.unreachable,
                    )?;
                    // The callback is judged only when it is kept: terminals
                    // ask `pend` before `holders`, so a refusal (a car is
                    // free) must not turn into error 12 for a client whose
                    // rent would have been served without waiting.
                    // A terminal dials only an IP (no name lookup in its
                    // sync thread), and nobody can be reached at port 0: such
                    // a callback could only ever fail.
                    if let (Ruling::Write(_), Some(cb)) = (&ruling, &r.callback) {
                        let dialable = cb
                            .parse::<std::net::SocketAddr>()
                            .is_ok_and(|a| a.port() != 0);
                        if !dialable {
                            return Err(Error::malformed(format!(
                                "field 'callback': '{cb}' is not IP:PORT (an IP address and a port other than 0)"
                            )));
                        }
                    }
                    Ok(ruling)
                })
            }
            "return" => {
                let r: ReturnReq = req.parse()?;
                check_request_id(&r.request_id)?;
                check_terminal(&r.terminal)?;
                self.commit_later(req, ctx, |l| {
                    l.decide_return(&r.request_id, &r.car, &r.terminal)
                })
            }
            "cancel" => {
                let r: IdReq = req.parse()?;
                self.commit_later(req, ctx, |l| l.decide_cancel(&r.request_id))
            }
            "claim" => {
                let r: IdReq = req.parse()?;
                self.commit_later(req, ctx, |l| l.decide_claim(&r.request_id))
            }
            "check_pending" => {
                let r: IdReq = req.parse()?;
                self.check_pending(req, ctx, &r)
            }
            "holders" => {
                let r: ClassReq = req.parse()?;
                let class = class_of(&r.class)?;
                self.read_later(req, ctx, |l| {
                    body(json!({"class": class.name(), "terminals": l.holders(class)}))
                })
            }
            "sync" => {
                let r: TerminalReq = req.parse()?;
                check_terminal(&r.terminal)?;
                self.sync(&r.terminal)
            }
            "audit" => Ok(self.audit()),
            k => Err(Error::new(Code::NotSupported, format!("no '{k}' here"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rental::ledger::Place;
    use serde_json::json;

    fn write_log(dir: &Path, records: &[Value]) {
        let (wal, _) = Wal::open(log_path(dir), |_| {}).unwrap();
        wal.append_all(records).unwrap();
    }

    /// A data directory of an earlier frota (kinds under `op` and
    /// `kind`) starts and replays to the same state.
    #[test]
    fn a_log_of_an_earlier_version_still_opens() {
        let dir = crate::runtime::launch::temp_dir("backup-old-log");
        write_log(
            &dir,
            &[
                json!({"op":"rent","lsn":1,"request_id":"r1","car":"ECO01",
                       "terminal":"terminal-3","client":"ana"}),
                json!({"op":"return","lsn":2,"request_id":"b1","car":"ECO01",
                       "terminal":"terminal-1","handed_to":null}),
                json!({"op":"rent","lsn":3,"request_id":"r2","car":"SUV01",
                       "terminal":"terminal-2","client":"bia"}),
            ],
        );
        let b = Backup::open(&dir, Duration::from_secs(60), 0).expect("an old log opens");
        let l = b.lock();
        assert_eq!(l.lsn(), 3);
        let free_at_1 = Place::Free {
            terminal: "terminal-1".into(),
        };
        assert_eq!(l.place("ECO01"), Some(&free_at_1));
        assert!(matches!(l.place("SUV01"), Some(Place::Rented { .. })));
    }

    /// A record missing a field refuses the start, naming the file and the
    /// record, instead of replaying it with an empty car or terminal.
    #[test]
    fn a_record_missing_a_field_refuses_the_start() {
        let dir = crate::runtime::launch::temp_dir("backup-missing-field");
        write_log(
            &dir,
            &[
                json!({"k":"rent","lsn":1,"request_id":"r1","car":"ECO01",
                       "terminal":"terminal-3","client":"ana"}),
                json!({"k":"rent","lsn":2,"request_id":"r2","car":"ECO02","client":"bia"}),
            ],
        );
        let Err(e) = Backup::open(&dir, Duration::from_secs(60), 0) else {
            panic!("a record without its terminal was replayed");
        };
        let e = e.to_string();
        assert!(
            e.contains("rental.log") && e.contains("record 2") && e.contains("terminal"),
            "{e}"
        );
    }
}
