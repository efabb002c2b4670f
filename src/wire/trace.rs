//! Wire traces: one JSON line per frame a node sends or receives, and per
//! moment worth drawing (a log record written, a crash point reached), so
//! a run can be drawn as a ladder diagram (`frota-ctl trace`).
//!
//! Switched on per process by `FROTA_TRACE=<dir>` (each process writes
//! `<dir>/<node>-<pid>.jsonl`) or, for a quick look in the log, by
//! `RUST_LOG=frota::wire=trace`. When both are off the cost is one relaxed
//! atomic load per frame.
//!
//! # Record
//!
//! ```text
//! {"t_us":1732370000123456,"node":"terminal-1","pid":4242,"seq":7,"dir":"recv",
//!  "local":"127.0.0.1:7011","remote":"127.0.0.1:53312","type":"rent","id":7,"in_reply_to":null}
//! ```
//!
//! Each side of a connection records its own `local` and `remote` address;
//! the merger learns "address → node" from every record's `local`, so both
//! listening and ephemeral ports resolve to node names without any
//! configuration.
//!
//! # Causality
//!
//! Clocks of threads and processes cannot order what happens at the same
//! time (two participants' votes arrive in either order), so a diagram
//! ordered by time moves between runs. Each record therefore also says what
//! it *follows*: `seq` numbers a process's records, and a `send` or `note`
//! carries `after`, the records of this process it follows — the message
//! this thread last received, or the note it last wrote. A thread that
//! takes over work from another (a reply sent once a record is durable, a
//! sync thread woken by a return) adopts the other's [`Cause`] with
//! [`within`]. The merger (`frota-ctl trace`, `make traces`) then draws
//! arrows in causal order and orders what is concurrent by a fixed rule.
//!
//! # Notes
//!
//! `dir: "note"` records a moment on one node's lifeline: a record appended
//! to a durable log ([`log_append`], by `crate::runtime::wal`; marked forced with
//! [`log_forced`] when the writer waits for its fsync), a log replayed on
//! start, a crash point reached.

use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// 0 = not yet decided, 1 = off, 2 = on.
static STATE: AtomicU8 = AtomicU8::new(0);

/// Records written before the process is named (a log replayed before the
/// node's server starts) wait here, at most this many.
const MAX_EARLY: usize = 10_000;

struct Sink {
    node: String,
    /// Set by [`name_process`]: servers started later in the same process
    /// (a client's callback listener) do not rename it.
    fixed: bool,
    /// Named by [`set_node`] or [`name_process`].
    named: bool,
    dir: Option<PathBuf>,
    file: Option<File>,
    /// Records of this process so far (their `seq`).
    seq: u64,
    /// What a thread with no cause of its own follows: the last log
    /// replayed at start (a restarted node's background work comes after).
    started: Vec<u64>,
    early: Vec<Map<String, Value>>,
}

fn sink() -> &'static Mutex<Sink> {
    static SINK: OnceLock<Mutex<Sink>> = OnceLock::new();
    SINK.get_or_init(|| {
        Mutex::new(Sink {
            node: String::from("?"),
            fixed: false,
            named: false,
            dir: std::env::var_os("FROTA_TRACE").map(PathBuf::from),
            file: None,
            seq: 0,
            started: Vec::new(),
            early: Vec::new(),
        })
    })
}

thread_local! {
    /// What this thread's next send or note follows (`seq`s of this process).
    static CAUSE: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Is tracing on for this process? Decided once, on first use.
#[inline]
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => decide(),
    }
}

#[cold]
fn decide() -> bool {
    let on = std::env::var_os("FROTA_TRACE").is_some()
        || log::log_enabled!(target: "frota::wire", log::Level::Trace);
    STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
    on
}

/// Name this process in its trace (nodes call it when they start; the
/// simulators with their own name).
pub fn set_node(name: &str) {
    if !enabled() {
        return;
    }
    let mut s = crate::sync::lock(sink());
    if s.file.is_none() && !s.fixed {
        s.node = name.to_string();
        s.named = true;
        flush_early(&mut s);
    }
}

/// Name this whole process (simulators, `frota-ctl`): unlike [`set_node`],
/// the name sticks even when the process later starts servers of its own
/// (each simulated client's callback listener is a `Server`).
pub fn name_process(name: &str) {
    if !enabled() {
        return;
    }
    let mut s = crate::sync::lock(sink());
    if s.file.is_none() {
        s.node = name.to_string();
        s.fixed = true;
        s.named = true;
        flush_early(&mut s);
    }
}

/// What a thread's events follow, to hand to another thread that carries
/// on its work (see [`within`]). Empty when tracing is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cause(Vec<u64>);

impl Cause {
    /// Both causes: what follows them follows each.
    pub fn join(&self, other: &Cause) -> Cause {
        let mut v = self.0.clone();
        for s in &other.0 {
            if !v.contains(s) {
                v.push(*s);
            }
        }
        Cause(v)
    }
}

/// This thread's cause now.
pub fn cause() -> Cause {
    if !enabled() {
        return Cause::default();
    }
    CAUSE.with(|c| Cause(c.borrow().clone()))
}

/// Run `f` as a continuation of `c` (a thread carrying on another's work:
/// what `f` sends follows `c`), then restore this thread's own cause.
pub fn within<R>(c: &Cause, f: impl FnOnce() -> R) -> R {
    if !enabled() {
        return f();
    }
    let saved = CAUSE.with(|x| std::mem::replace(&mut *x.borrow_mut(), c.0.clone()));
    let r = f();
    CAUSE.with(|x| *x.borrow_mut() = saved);
    r
}

/// Record one frame. `msg` is the whole message (its envelope is read).
pub fn record(dir: &str, local: Option<SocketAddr>, remote: Option<SocketAddr>, msg: &Value) {
    if !enabled() {
        return;
    }
    let mut rec = Map::new();
    rec.insert("dir".into(), json!(dir));
    rec.insert("local".into(), json!(local.map(|a| a.to_string())));
    rec.insert("remote".into(), json!(remote.map(|a| a.to_string())));
    for k in ["type", "id", "in_reply_to"] {
        rec.insert(k.into(), msg.get(k).cloned().unwrap_or(Value::Null));
    }
    copy_fields(msg, &mut rec);
    emit(rec);
}

/// A few fields make ladders readable without dumping payloads.
const FIELDS: [&str; 16] = [
    "code",
    "topic",
    "txn",
    "class",
    "car",
    "status",
    "outcome",
    "vote",
    "commit",
    "abort",
    "committed",
    "aborted",
    "failed",
    "point",
    "handed_to",
    "request_id",
];

fn copy_fields(from: &Value, to: &mut Map<String, Value>) {
    for k in FIELDS {
        // Empty lists (a `decide` with no aborts) say nothing.
        if let Some(v) = from
            .get(k)
            .filter(|v| v.as_array().is_none_or(|a| !a.is_empty()))
        {
            to.insert(k.to_string(), v.clone());
        }
    }
}

/// Something that happened at this node, drawn on its lifeline: `what`
/// names it, `fields` (a JSON object) say which.
pub fn note(what: &str, fields: &Value) {
    if !enabled() {
        return;
    }
    let mut rec = Map::new();
    rec.insert("dir".into(), json!("note"));
    rec.insert("type".into(), json!(what));
    if let Some(o) = fields.as_object() {
        for (k, v) in o {
            rec.insert(k.clone(), v.clone());
        }
    }
    emit(rec);
}

/// Records appended to the log `log` (its file name), not yet durable:
/// one note each. Returns their `seq`s, for [`log_forced`]. Called by the
/// log itself ([`crate::runtime::wal::Wal::enqueue`]).
pub fn log_append(log: &str, records: &[Value]) -> Vec<u64> {
    if !enabled() {
        return Vec::new();
    }
    let mut seqs = Vec::new();
    for record in records {
        let kind = ["k", "op", "kind"]
            .iter()
            .find_map(|k| record.get(*k).and_then(Value::as_str))
            .unwrap_or("record");
        let mut rec = Map::new();
        rec.insert("dir".into(), json!("note"));
        rec.insert("type".into(), json!("log"));
        rec.insert("log".into(), json!(log));
        rec.insert("record".into(), json!(kind));
        copy_fields(record, &mut rec);
        seqs.extend(emit(rec));
    }
    seqs
}

/// A writer waits for the fsync of the records noted as `seqs`
/// ([`crate::runtime::wal::Wal::wait`] or `after`): they are drawn as *forced*, and
/// what this thread does next follows them. A record nobody waits for is
/// drawn as queued (it reaches the disk with a later fsync).
pub fn log_forced(seqs: &[u64]) {
    if !enabled() || seqs.is_empty() {
        return;
    }
    let mut rec = Map::new();
    rec.insert("dir".into(), json!("forced"));
    rec.insert("of".into(), json!(seqs));
    emit(rec);
    // What the writer does next comes after those records are durable.
    CAUSE.with(|c| {
        let mut c = c.borrow_mut();
        for s in seqs {
            if !c.contains(s) {
                c.push(*s);
            }
        }
    });
}

/// A point after which everything traced so far (in every process) counts
/// as happened-before: a driver that waited for something to be traced
/// marks it so, and what it does next is drawn after it.
pub fn barrier() {
    if !enabled() {
        return;
    }
    let mut rec = Map::new();
    rec.insert("dir".into(), json!("barrier"));
    emit(rec);
}

/// Number, stamp and write one record; returns its `seq`.
fn emit(mut rec: Map<String, Value>) -> Option<u64> {
    let dir = rec
        .get("dir")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut after = CAUSE.with(|c| c.borrow().clone());
    let t_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut s = crate::sync::lock(sink());
    s.seq += 1;
    let seq = s.seq;
    // A thread with nothing to follow (a background thread's first step)
    // follows the process's start: its logs replayed.
    if after.is_empty() {
        after.clone_from(&s.started);
    }
    if dir == "note" && rec.get("type").and_then(Value::as_str) == Some("replay") {
        s.started = vec![seq];
    }
    rec.insert("t_us".into(), json!(t_us));
    rec.insert("pid".into(), json!(std::process::id()));
    rec.insert("seq".into(), json!(seq));
    if dir == "send" || dir == "note" {
        rec.insert("after".into(), json!(after));
    }
    if dir == "recv" || dir == "note" || dir == "barrier" {
        CAUSE.with(|c| *c.borrow_mut() = vec![seq]);
    }
    let is_message = dir == "send" || dir == "recv";
    if !s.named && !is_message && s.early.len() < MAX_EARLY {
        // Before the node has its name (its file would be "?-<pid>").
        s.early.push(rec);
        return Some(seq);
    }
    if !s.named {
        // A process that never names itself: its first message names the
        // file as it is.
        s.named = true;
        flush_early(&mut s);
    }
    write_line(&mut s, rec);
    Some(seq)
}

fn flush_early(s: &mut Sink) {
    for rec in std::mem::take(&mut s.early) {
        write_line(s, rec);
    }
}

fn write_line(s: &mut Sink, mut rec: Map<String, Value>) {
    rec.insert("node".into(), json!(s.node));
    let line = Value::Object(rec).to_string();
    log::trace!(target: "frota::wire", "{line}");
    if s.dir.is_none() {
        return;
    }
    if s.file.is_none() {
        let Some(dir) = s.dir.clone() else { return };
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{}-{}.jsonl", s.node, std::process::id()));
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => s.file = Some(f),
            Err(e) => {
                log::warn!("cannot write trace {}: {e}; tracing off", path.display());
                s.dir = None;
                return;
            }
        }
    }
    if let Some(f) = s.file.as_mut() {
        let _ = writeln!(f, "{line}");
    }
}
