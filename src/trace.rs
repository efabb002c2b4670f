//! Wire traces: one JSON line per frame a node sends or receives, so a run
//! can be drawn as a ladder diagram (`frota-ctl trace`).
//!
//! Switched on per process by `FROTA_TRACE=<dir>` (each process writes
//! `<dir>/<node>-<pid>.jsonl`) or, for a quick look in the log, by
//! `RUST_LOG=frota::wire=trace`. When both are off the cost is one relaxed
//! atomic load per frame.
//!
//! # Record
//!
//! ```text
//! {"t_us":1732370000123456,"node":"terminal-1","dir":"recv","local":"127.0.0.1:7011",
//!  "remote":"127.0.0.1:53312","type":"rent","id":7,"in_reply_to":null}
//! ```
//!
//! Each side of a connection records its own `local` and `remote` address;
//! the merger learns "address → node" from every record's `local`, so both
//! listening and ephemeral ports resolve to node names without any
//! configuration.

use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// 0 = not yet decided, 1 = off, 2 = on.
static STATE: AtomicU8 = AtomicU8::new(0);

struct Sink {
    node: String,
    /// Set by [`name_process`]: servers started later in the same process
    /// (a client's callback listener) do not rename it.
    fixed: bool,
    dir: Option<PathBuf>,
    file: Option<File>,
}

fn sink() -> &'static Mutex<Sink> {
    static SINK: OnceLock<Mutex<Sink>> = OnceLock::new();
    SINK.get_or_init(|| {
        Mutex::new(Sink {
            node: String::from("?"),
            fixed: false,
            dir: std::env::var_os("FROTA_TRACE").map(PathBuf::from),
            file: None,
        })
    })
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
    let mut s = sink().lock().unwrap_or_else(|p| p.into_inner());
    if s.file.is_none() && !s.fixed {
        s.node = name.to_string();
    }
}

/// Name this whole process (simulators, `frota-ctl`): unlike [`set_node`],
/// the name sticks even when the process later starts servers of its own
/// (each simulated client's callback listener is a `Server`).
pub fn name_process(name: &str) {
    if !enabled() {
        return;
    }
    let mut s = sink().lock().unwrap_or_else(|p| p.into_inner());
    if s.file.is_none() {
        s.node = name.to_string();
        s.fixed = true;
    }
}

/// Record one frame. `msg` is the whole message (its envelope is read).
pub fn record(dir: &str, local: Option<SocketAddr>, remote: Option<SocketAddr>, msg: &Value) {
    if !enabled() {
        return;
    }
    let t_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut s = sink().lock().unwrap_or_else(|p| p.into_inner());
    let mut rec = json!({
        "t_us": t_us,
        "node": s.node,
        "dir": dir,
        "local": local.map(|a| a.to_string()),
        "remote": remote.map(|a| a.to_string()),
        "type": msg.get("type").cloned().unwrap_or(Value::Null),
        "id": msg.get("id").cloned().unwrap_or(Value::Null),
        "in_reply_to": msg.get("in_reply_to").cloned().unwrap_or(Value::Null),
    });
    // A few fields make ladders readable without dumping payloads.
    let keys = [
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
    ];
    for k in keys {
        // Empty lists (a `decide` with no aborts) say nothing.
        if let Some(v) = msg
            .get(k)
            .filter(|v| v.as_array().is_none_or(|a| !a.is_empty()))
        {
            if let Some(o) = rec.as_object_mut() {
                o.insert(k.to_string(), v.clone());
            }
        }
    }
    log::trace!(target: "frota::wire", "{rec}");
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
        let _ = writeln!(f, "{rec}");
    }
}
