//! `frota-ctl trace <files or dirs>`: merge the wire traces of a run
//! (see [`crate::wire::trace`]) and draw them as a ladder (sequence) diagram, in
//! plain text for the terminal or in Mermaid for docs.
//!
//! Every frame is usually recorded twice (sent by one node, received by the
//! other); the merger keeps the sender's record and falls back to the
//! receiver's when the sender did not trace (a person at netcat).

use crate::runtime::cli::{opt, switch, Args};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One arrow of the diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub t_us: u64,
    pub from: String,
    pub to: String,
    pub label: String,
    pub reply: bool,
}

/// Read every `*.jsonl` record under `paths` (files or directories).
pub fn load(paths: &[PathBuf]) -> Result<Vec<Value>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "jsonl") {
                    files.push(e.path());
                }
            }
        } else {
            files.push(p.clone());
        }
    }
    files.sort();
    let mut recs = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        // A trace cut by a crash may end in half a line: skip what does not parse.
        recs.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
    }
    Ok(recs)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// "address → node", learnt from every record's `local`.
struct Names<'a>(HashMap<&'a str, &'a str>);

fn node_names(recs: &[Value]) -> Names<'_> {
    let mut names = HashMap::new();
    for r in recs {
        if !s(r, "local").is_empty() {
            names.insert(s(r, "local"), s(r, "node"));
        }
    }
    Names(names)
}

impl Names<'_> {
    fn name(&self, addr: &str) -> String {
        match self.0.get(addr) {
            Some(n) => (*n).to_string(),
            None if addr.is_empty() => "?".into(),
            None => format!("peer {addr}"),
        }
    }
}

/// One frame, the same from its sender's record and its receiver's.
fn key(sender: &str, receiver: &str, r: &Value) -> String {
    format!(
        "{sender}|{receiver}|{}|{}|{}",
        s(r, "type"),
        r.get("id").unwrap_or(&Value::Null),
        r.get("in_reply_to").unwrap_or(&Value::Null)
    )
}

/// Turn raw records into arrows, in time order, each frame once.
pub fn merge(recs: &[Value]) -> Vec<Event> {
    let names = node_names(recs);
    let name = |addr: &str| names.name(addr);
    let mut sent = HashSet::new();
    for r in recs.iter().filter(|r| s(r, "dir") == "send") {
        sent.insert(key(s(r, "local"), s(r, "remote"), r));
    }
    let mut out = Vec::new();
    for r in recs {
        let (from_addr, to_addr) = match s(r, "dir") {
            "send" => (s(r, "local"), s(r, "remote")),
            "recv" => {
                if sent.contains(&key(s(r, "remote"), s(r, "local"), r)) {
                    continue;
                }
                (s(r, "remote"), s(r, "local"))
            }
            _ => continue,
        };
        out.push(Event {
            t_us: r.get("t_us").and_then(Value::as_u64).unwrap_or(0),
            from: name(from_addr),
            to: name(to_addr),
            label: label(r),
            reply: !r.get("in_reply_to").unwrap_or(&Value::Null).is_null(),
        });
    }
    out.sort_by_key(|e| e.t_us);
    out
}

/// A record's place in its process: (pid, seq).
type Place = (u64, u64);

/// What an item of the causal merge is.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Note,
    Reply,
    Request,
    /// Invisible: orders what comes after it after everything before it.
    Barrier,
    /// Invisible: the end of one process (what a restart follows).
    End,
}

struct Item {
    /// The record drawn (the sender's, or the receiver's when the sender
    /// did not trace).
    rec: usize,
    t_us: u64,
    from: String,
    to: String,
    kind: Kind,
    deps: Vec<usize>,
}

/// Turn raw records into arrows and notes in **causal order**, the same on
/// every run of the same flow:
///
/// * an arrow comes after what its sender had received (or written) when
///   it sent it — the record's `after` (see [`crate::wire::trace`]) — and a reply
///   after its request;
/// * something with no known cause comes after the last barrier before it
///   and after the last event of the node's previous process (a restart);
/// * among what is not ordered so, an arrow is drawn at its *causal depth*
///   (the longest chain of causes before it), then notes before replies
///   before requests, then by sender, receiver and label.
///
/// `normalise_ids` replaces clock-based message ids with small numbers in
/// that order. Phase 2 is drawn per transaction: a `decide`
/// carrying several commits and aborts becomes one `commit` / `abort`
/// arrow each (and its reply one `commit_ok` / `abort_ok` / `error` each).
/// Records of older traces (without `seq`) are merged in time order.
pub fn merge_causal(recs: &[Value], normalise_ids: bool) -> Vec<Event> {
    let messages = recs
        .iter()
        .filter(|r| matches!(s(r, "dir"), "send" | "recv"));
    if messages.clone().any(|r| place(r).is_none()) {
        return merge(recs);
    }
    let mut g = Graph::of(recs);
    let ends = g.add_ends(recs);
    let order = g.link_causes(recs, &ends);
    let depth = causal_depth(&g.items, &order, &ends);
    g.draw(recs, &depth, normalise_ids)
}

/// A record's place, if it has one (traces before `seq` do not).
fn place(r: &Value) -> Option<Place> {
    Some((r.get("pid")?.as_u64()?, r.get("seq")?.as_u64()?))
}

fn kind_of(r: &Value) -> Kind {
    if r.get("in_reply_to").unwrap_or(&Value::Null).is_null() {
        Kind::Request
    } else {
        Kind::Reply
    }
}

/// What [`merge_causal`] orders: one item per frame, note and barrier,
/// and one per process end.
struct Graph {
    items: Vec<Item>,
    /// (sender address, receiver address) of each frame's item.
    addrs: Vec<(String, String)>,
    /// The item each record's place stands in.
    at: HashMap<Place, usize>,
    /// The places of the records a `forced` record says reached the disk.
    forced: HashSet<Place>,
}

impl Graph {
    /// One item per frame (from its sender's record, or its receiver's when
    /// the sender did not trace), note and barrier.
    fn of(recs: &[Value]) -> Graph {
        let names = node_names(recs);
        let mut g = Graph {
            items: Vec::new(),
            addrs: Vec::new(),
            at: HashMap::new(),
            forced: HashSet::new(),
        };
        let mut sent: HashMap<String, usize> = HashMap::new();
        for (i, r) in recs.iter().enumerate() {
            let Some(p) = place(r) else { continue };
            let n = match s(r, "dir") {
                "send" => {
                    let (from, to) = (s(r, "local"), s(r, "remote"));
                    let n = g.push(
                        i,
                        r,
                        (from, to),
                        names.name(from),
                        names.name(to),
                        kind_of(r),
                    );
                    sent.insert(key(from, to, r), n);
                    n
                }
                "note" => {
                    let node = s(r, "node").to_string();
                    g.push(i, r, ("", ""), node.clone(), node, Kind::Note)
                }
                "barrier" => {
                    let node = s(r, "node").to_string();
                    g.push(i, r, ("", ""), node.clone(), node, Kind::Barrier)
                }
                "forced" => {
                    for of in r.get("of").and_then(Value::as_array).into_iter().flatten() {
                        g.forced.extend(of.as_u64().map(|o| (p.0, o)));
                    }
                    continue;
                }
                _ => continue,
            };
            g.at.insert(p, n);
        }
        for (i, r) in recs.iter().enumerate() {
            let (Some(p), "recv") = (place(r), s(r, "dir")) else {
                continue;
            };
            let (from, to) = (s(r, "remote"), s(r, "local"));
            let n = match sent.get(&key(from, to, r)) {
                Some(&n) => n,
                None => g.push(
                    i,
                    r,
                    (from, to),
                    names.name(from),
                    names.name(to),
                    kind_of(r),
                ),
            };
            g.at.insert(p, n);
        }
        g
    }

    fn push(
        &mut self,
        rec: usize,
        r: &Value,
        addrs: (&str, &str),
        from: String,
        to: String,
        kind: Kind,
    ) -> usize {
        self.items.push(Item {
            rec,
            t_us: r.get("t_us").and_then(Value::as_u64).unwrap_or(0),
            from,
            to,
            kind,
            deps: Vec::new(),
        });
        self.addrs.push((addrs.0.to_string(), addrs.1.to_string()));
        self.items.len() - 1
    }

    /// The end of each process, after all it did: a restarted node's
    /// first steps follow its previous process's last ones.
    fn add_ends(&mut self, recs: &[Value]) -> HashMap<(String, u64), usize> {
        let items = &mut self.items;
        let mut ends: HashMap<(String, u64), usize> = HashMap::new();
        for n in 0..items.len() {
            let r = &recs[items[n].rec];
            let Some((pid, _)) = place(r) else { continue };
            let k = (s(r, "node").to_string(), pid);
            let t = items[n].t_us;
            let e = *ends.entry(k).or_insert_with(|| {
                items.push(Item {
                    rec: items[n].rec,
                    t_us: 0,
                    from: String::new(),
                    to: String::new(),
                    kind: Kind::End,
                    deps: Vec::new(),
                });
                items.len() - 1
            });
            items[e].deps.push(n);
            items[e].t_us = items[e].t_us.max(t);
        }
        ends
    }

    /// Each visible item's causes (see [`merge_causal`]); returns them in
    /// time order.
    fn link_causes(&mut self, recs: &[Value], ends: &HashMap<(String, u64), usize>) -> Vec<usize> {
        // (requester address, responder address, id) → the request's item.
        let mut requests: HashMap<(String, String, u64), usize> = HashMap::new();
        for (n, it) in self.items.iter().enumerate() {
            let r = &recs[it.rec];
            if let (Kind::Request, Some(id)) = (it.kind, r.get("id").and_then(Value::as_u64)) {
                requests.insert((self.addrs[n].0.clone(), self.addrs[n].1.clone(), id), n);
            }
        }
        let items = &mut self.items;
        let mut order: Vec<usize> = (0..items.len())
            .filter(|&n| items[n].kind != Kind::End)
            .collect();
        order.sort_by_key(|&n| (items[n].t_us, place(&recs[items[n].rec])));
        for &n in &order {
            let r = &recs[items[n].rec];
            let pid = place(r).map(|p| p.0).unwrap_or(0);
            let mut deps: Vec<usize> = Vec::new();
            for a in r
                .get("after")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(&d) = a.as_u64().and_then(|a| self.at.get(&(pid, a))) {
                    deps.push(d);
                }
            }
            if let (Kind::Reply, Some(id)) =
                (items[n].kind, r.get("in_reply_to").and_then(Value::as_u64))
            {
                let k = (self.addrs[n].1.clone(), self.addrs[n].0.clone(), id);
                deps.extend(requests.get(&k));
            }
            let t = items[n].t_us;
            if items[n].kind == Kind::Barrier {
                deps = order
                    .iter()
                    .copied()
                    .filter(|&m| m != n && items[m].t_us < t)
                    .collect();
            }
            deps.retain(|&d| d != n);
            if deps.is_empty() {
                // No known cause: after the last barrier, and after every
                // earlier process of the same node (a restart).
                deps.extend(
                    order
                        .iter()
                        .rfind(|&&m| items[m].t_us < t && items[m].kind == Kind::Barrier),
                );
                let node = s(r, "node");
                for ((other, q), &e) in ends {
                    if other == node && *q != pid && items[e].t_us < t {
                        deps.push(e);
                    }
                }
            }
            items[n].deps = deps;
        }
        order
    }

    /// The visible items by causal depth, then notes before replies before
    /// requests, then by sender, receiver and label; as arrows and notes.
    fn draw(&self, recs: &[Value], depth: &[usize], normalise_ids: bool) -> Vec<Event> {
        let items = &self.items;
        let stable = |n: usize| {
            let mut r = recs[items[n].rec].clone();
            if let Some(o) = r.as_object_mut() {
                o.remove("id");
                o.remove("in_reply_to");
            }
            label(&r)
        };
        let mut drawn: Vec<usize> = (0..items.len())
            .filter(|&n| !matches!(items[n].kind, Kind::Barrier | Kind::End))
            .collect();
        drawn.sort_by_cached_key(|&n| {
            let it = &items[n];
            (
                depth[n],
                it.kind,
                it.from.clone(),
                it.to.clone(),
                stable(n),
                it.t_us,
            )
        });
        let mut ordered: Vec<Value> = drawn.iter().map(|&n| recs[items[n].rec].clone()).collect();
        if normalise_ids {
            normalise(&mut ordered);
        }
        let mut out = Vec::new();
        for (k, &n) in drawn.iter().enumerate() {
            let it = &items[n];
            let r = &ordered[k];
            let reply = it.kind == Kind::Reply;
            let mut ev = |label: String| {
                out.push(Event {
                    t_us: it.t_us,
                    from: it.from.clone(),
                    to: it.to.clone(),
                    label,
                    reply,
                })
            };
            if it.kind == Kind::Note {
                let p = place(&recs[it.rec]).unwrap_or((0, 0));
                ev(note_label(r, self.forced.contains(&p)));
                continue;
            }
            match per_transaction(r) {
                Some(parts) => parts.into_iter().for_each(&mut ev),
                None => ev(label(r)),
            }
        }
        out
    }
}

/// Each item's causal depth: the longest chain of causes before it
/// (Kahn's algorithm; a cycle, which a trace cannot have, is broken in time
/// order).
fn causal_depth(
    items: &[Item],
    order: &[usize],
    ends: &HashMap<(String, u64), usize>,
) -> Vec<usize> {
    let mut depth = vec![0usize; items.len()];
    let mut indeg: Vec<usize> = items.iter().map(|it| it.deps.len()).collect();
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); items.len()];
    for (n, it) in items.iter().enumerate() {
        for &d in &it.deps {
            next[d].push(n);
        }
    }
    let mut ready: Vec<usize> = (0..items.len()).filter(|&n| indeg[n] == 0).collect();
    let mut done = vec![false; items.len()];
    loop {
        while let Some(n) = ready.pop() {
            done[n] = true;
            for &m in &next[n] {
                depth[m] = depth[m].max(depth[n] + 1);
                indeg[m] -= 1;
                if indeg[m] == 0 {
                    ready.push(m);
                }
            }
        }
        match order.iter().chain(ends.values()).find(|&&n| !done[n]) {
            Some(&n) => ready.push(n),
            None => break,
        }
    }
    depth
}

/// Phase 2 drawn per transaction: a `decide` (and its reply) as one label
/// per transaction it carries; `None` for any other message.
fn per_transaction(r: &Value) -> Option<Vec<String>> {
    let kind = s(r, "type");
    if kind != "decide" && kind != "decide_ok" {
        return None;
    }
    let list = |k: &str| -> Vec<Value> {
        r.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let one = |kind: &str, txn: &Value, code: Option<&Value>| {
        let mut m = serde_json::Map::new();
        m.insert("type".into(), Value::from(kind));
        for k in ["id", "in_reply_to"] {
            m.insert(k.into(), r.get(k).cloned().unwrap_or(Value::Null));
        }
        m.insert("txn".into(), txn.clone());
        if let Some(c) = code {
            m.insert("code".into(), c.clone());
        }
        label(&Value::Object(m))
    };
    let mut out = Vec::new();
    if kind == "decide" {
        out.extend(list("commit").iter().map(|t| one("commit", t, None)));
        out.extend(list("abort").iter().map(|t| one("abort", t, None)));
    } else {
        out.extend(list("committed").iter().map(|t| one("commit_ok", t, None)));
        out.extend(list("aborted").iter().map(|t| one("abort_ok", t, None)));
        for f in list("failed") {
            let txn = f.get("txn").cloned().unwrap_or(Value::Null);
            out.push(one("error", &txn, f.get("code")));
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A note on a lifeline: a log record (forced or queued), a replay, a crash.
fn note_label(r: &Value, forced: bool) -> String {
    let field = |k: &str| match r.get(k) {
        Some(Value::String(x)) => Some(x.clone()),
        Some(Value::Null) | None => None,
        Some(v) => Some(v.to_string()),
    };
    match s(r, "type") {
        "log" => {
            let mut l = format!("{} ← {}", s(r, "log"), s(r, "record"));
            let mut any = false;
            for k in ["txn", "point", "class", "car", "handed_to"] {
                if let Some(v) = field(k) {
                    l.push_str(&format!(" {k}={v}"));
                    any = true;
                }
            }
            if let (false, Some(v)) = (any, field("request_id")) {
                l.push_str(&format!(" request_id={v}"));
            }
            let how = if forced { "forced" } else { "queued" };
            format!("{l} ({how})")
        }
        "replay" => format!(
            "{}: replayed {} record(s)",
            s(r, "log"),
            field("records").unwrap_or_default()
        ),
        other => other.to_string(),
    }
}

/// Replace clock-based message ids with small numbers in order of first
/// appearance. (Transaction ids need nothing: a request's is always the
/// same, `<coordinator>/<vehicle>/<request_id>`.)
pub fn normalise(recs: &mut [Value]) {
    let mut ids: HashMap<u64, u64> = HashMap::new();
    for r in recs.iter_mut() {
        let Some(o) = r.as_object_mut() else { continue };
        for k in ["id", "in_reply_to"] {
            if let Some(raw) = o.get(k).and_then(Value::as_u64) {
                let n = ids.len() as u64 + 1;
                let n = *ids.entry(raw).or_insert(n);
                o.insert(k.into(), json!(n));
            }
        }
    }
}

fn label(r: &Value) -> String {
    let mut l = s(r, "type").to_string();
    if let Some(id) = r.get("id").and_then(Value::as_u64) {
        l.push_str(&format!(" #{}", id % 10_000));
    }
    if let Some(id) = r.get("in_reply_to").and_then(Value::as_u64) {
        l.push_str(&format!(" ↩{}", id % 10_000));
    }
    let keys = [
        "class",
        "car",
        "status",
        "outcome",
        "vote",
        "txn",
        "commit",
        "abort",
        "committed",
        "aborted",
        "topic",
        "code",
    ];
    for k in keys {
        if let Some(v) = r
            .get(k)
            .filter(|v| v.as_array().is_none_or(|a| !a.is_empty()))
        {
            let v = match v {
                Value::String(x) => x.clone(),
                Value::Object(o) => o
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| "{…}".into()),
                other => other.to_string(),
            };
            l.push_str(&format!(" {k}={v}"));
        }
    }
    l
}

fn participants(events: &[Event]) -> Vec<String> {
    let mut seen = Vec::new();
    for e in events {
        for n in [&e.from, &e.to] {
            if !seen.contains(n) {
                seen.push(n.clone());
            }
        }
    }
    seen
}

/// A plain-text ladder: one column per node, one arrow per line, with the
/// time since the first message (ms).
pub fn render_text(events: &[Event]) -> String {
    let t0 = events.first().map(|e| e.t_us).unwrap_or(0);
    render_with(events, "t (ms)", &|_, e| {
        format!("{:>10.1}", (e.t_us.saturating_sub(t0)) as f64 / 1000.0)
    })
}

/// The same ladder numbered by step instead of timed (diffable: the
/// generated docs under docs/traces use it).
pub fn render_text_steps(events: &[Event]) -> String {
    render_with(events, "step", &|i, _| format!("{:>10}", i + 1))
}

/// Narrowest ladder column `frota-ctl trace` draws (room for a short label
/// between two lines); below it the diagram becomes a list.
const MIN_COLUMN: usize = 12;

/// Width of the stamp column and the two spaces after it.
const STAMP: usize = 12;

/// The ladder for a terminal `width` columns wide (`frota-ctl trace`): the
/// columns narrow to fit, node names and labels are cut with `…`; when even
/// [`MIN_COLUMN`]-wide columns do not fit (a whole `make up` deployment plus
/// its clients), one message per line instead ([`render_list`]).
pub fn render_fit(events: &[Event], width: usize) -> String {
    let parts = participants(events).len().max(1);
    let room = width.saturating_sub(STAMP);
    if parts * MIN_COLUMN > room {
        return render_list(events, width);
    }
    let t0 = events.first().map(|e| e.t_us).unwrap_or(0);
    let stamp =
        |_: usize, e: &Event| format!("{:>10.1}", (e.t_us.saturating_sub(t0)) as f64 / 1000.0);
    render_columns(events, "t (ms)", &stamp, Some(room / parts))
}

/// One message per line — `time  from → to  label` — cut to `width`.
pub fn render_list(events: &[Event], width: usize) -> String {
    let t0 = events.first().map(|e| e.t_us).unwrap_or(0);
    let ends: Vec<String> = events
        .iter()
        .map(|e| {
            if e.from == e.to {
                format!("@ {}", e.from)
            } else {
                format!("{} {} {}", e.from, if e.reply { "⇢" } else { "→" }, e.to)
            }
        })
        .collect();
    let left = ends.iter().map(|x| x.chars().count()).max().unwrap_or(0);
    let left = left.min(width.saturating_sub(STAMP) / 2);
    let mut out = format!("{:>10}  {:<left$}  message\n", "t (ms)", "from → to");
    for (e, end) in events.iter().zip(&ends) {
        let line = format!(
            "{:>10.1}  {:<left$}  {}",
            (e.t_us.saturating_sub(t0)) as f64 / 1000.0,
            cut(end, left),
            e.label
        );
        out.push_str(cut(&line, width).trim_end());
        out.push('\n');
    }
    out
}

/// `s` in at most `n` characters, the last one `…` when it was cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
    c.push('…');
    c
}

fn render_with(
    events: &[Event],
    head_label: &str,
    stamp: &dyn Fn(usize, &Event) -> String,
) -> String {
    render_columns(events, head_label, stamp, None)
}

/// The ladder; with `fit = Some(w)` every column is `w` wide and what does
/// not fit is cut with `…` (the terminal), with `None` as wide as the
/// names and labels need (the generated docs).
fn render_columns(
    events: &[Event],
    head_label: &str,
    stamp: &dyn Fn(usize, &Event) -> String,
    fit: Option<usize>,
) -> String {
    let parts = participants(events);
    let longest_label = events
        .iter()
        .map(|e| e.label.chars().count())
        .max()
        .unwrap_or(0);
    let longest_name = parts.iter().map(|p| p.chars().count()).max().unwrap_or(0);
    let natural = (longest_name + 4).max(longest_label.min(40) + 6).max(16);
    let cols = Columns {
        parts: &parts,
        w: fit.map_or(natural, |f| natural.min(f)),
        fit,
    };
    let width = parts.len() * cols.w;
    let mut out = String::new();
    let mut head = vec![' '; width];
    for (i, p) in cols.header_names().iter().enumerate() {
        let start = cols.center(i).saturating_sub(p.chars().count() / 2);
        for (j, c) in p.chars().enumerate() {
            if let Some(slot) = head.get_mut(start + j) {
                *slot = c;
            }
        }
    }
    out.push_str(&format!(
        "{:>10}  {}\n",
        head_label,
        head.iter().collect::<String>().trim_end()
    ));
    for (i, e) in events.iter().enumerate() {
        out.push_str(&format!("{}  {}\n", stamp(i, e), cols.line(e)));
    }
    out
}

/// The ladder's columns: one per participant, `w` wide.
struct Columns<'a> {
    parts: &'a [String],
    w: usize,
    fit: Option<usize>,
}

impl Columns<'_> {
    fn slot(&self, name: &str) -> usize {
        self.parts.iter().position(|p| p == name).unwrap_or(0)
    }

    fn center(&self, i: usize) -> usize {
        i * self.w + self.w / 2
    }

    /// Header names cut to the column; a peer known only by its address
    /// keeps the port, the part that tells two of them apart.
    fn header_names(&self) -> Vec<String> {
        let w = self.w;
        self.parts
            .iter()
            .map(|p| match (self.fit, p.strip_prefix("peer ")) {
                (None, _) => p.clone(),
                (Some(_), Some(addr)) if addr.chars().count() > w - 1 => {
                    let tail: Vec<char> = addr.chars().collect();
                    let keep = (w - 1).saturating_sub(1).min(tail.len());
                    format!("…{}", tail[tail.len() - keep..].iter().collect::<String>())
                }
                (Some(_), _) => cut(p, w - 1),
            })
            .collect()
    }

    /// One event's line: the participants' lines, and its arrow and label
    /// (or, for something that happened at one node, `@` and the label).
    fn line(&self, e: &Event) -> String {
        let mut line = vec![' '; self.parts.len() * self.w];
        for i in 0..self.parts.len() {
            line[self.center(i)] = '|';
        }
        let a = self.slot(&e.from);
        let b = self.slot(&e.to);
        let (lo, hi) = (self.center(a.min(b)), self.center(a.max(b)));
        if lo == hi {
            // Something that happened at one node (a crash): its label
            // goes to the right of the node's line.
            line[lo] = '@';
            let label = match self.fit {
                // The label runs to the right edge, not past it.
                Some(_) => cut(&e.label, (self.parts.len() * self.w).saturating_sub(lo + 2)),
                None => e.label.clone(),
            };
            for (j, c) in label.chars().enumerate() {
                match line.get_mut(lo + 2 + j) {
                    Some(slot) => *slot = c,
                    None => line.push(c),
                }
            }
        } else {
            let dash = if e.reply { '.' } else { '-' };
            for c in line.iter_mut().take(hi).skip(lo + 1) {
                *c = dash;
            }
            if a < b {
                line[hi - 1] = '>';
            } else {
                line[lo + 1] = '<';
            }
            let room = (hi - lo).saturating_sub(4);
            let text: Vec<char> = match self.fit {
                Some(_) => cut(&e.label, room).chars().collect(),
                None => e.label.chars().take(room).collect(),
            };
            let start = lo + 1 + (hi - lo - 1 - text.len()) / 2;
            for (j, c) in text.into_iter().enumerate() {
                line[start + j] = c;
            }
        }
        line.iter().collect::<String>().trim_end().to_string()
    }
}

/// The same diagram as a Mermaid `sequenceDiagram`.
pub fn render_mermaid(events: &[Event]) -> String {
    let parts = participants(events);
    let id = |p: &str| format!("P{}", parts.iter().position(|x| x == p).unwrap_or(0));
    let mut out = String::from("sequenceDiagram\n");
    for p in &parts {
        out.push_str(&format!("    participant {} as {}\n", id(p), p));
    }
    for e in events {
        let arrow = if e.reply { "-->>" } else { "->>" };
        let label = e.label.replace([';', '#'], " ");
        if e.from == e.to {
            // An event at one node (a crash), not a message.
            out.push_str(&format!("    Note over {}: {label}\n", id(&e.from)));
            continue;
        }
        out.push_str(&format!(
            "    {}{arrow}{}: {label}\n",
            id(&e.from),
            id(&e.to)
        ));
    }
    out
}

/// Where traces come from, for the errors of `frota-ctl trace`.
const TRACE_HINT: &str = "give the directory a run wrote with FROTA_TRACE=DIR, or its .jsonl files: \
     e.g. `make down; FROTA_TRACE=run/traces make up`, talk to the nodes, then `frota-ctl trace run/traces`";

/// `frota-ctl trace [--mermaid] [--width N] [--list] [--causal] <files or dirs>...`
pub fn run(args: &[String]) -> i32 {
    let default_width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| *c >= 40)
        .unwrap_or(100);
    #[rustfmt::skip]
    let flags = [
        switch("mermaid", "a Mermaid sequenceDiagram instead of the text ladder"),
        opt("width", default_width.to_string(), "fit the ladder to this many columns: columns narrow, long names and labels are cut with '…', and when the nodes do not fit side by side it becomes a list (0 = as wide as it needs; the default is $COLUMNS when set)"),
        switch("list", "one message per line (time, from → to, message) instead of a ladder"),
        switch("causal", "draw in causal order with numbered steps instead of time order: the same drawing on every run of the same flow (what make traces writes); the ladder is as wide as it needs"),
    ];
    let a = match Args::parse_sub_with_paths(
        "frota-ctl trace",
        "merge the wire traces of a run (files or directories a FROTA_TRACE=DIR run wrote) into a ladder diagram",
        &flags,
        args,
    ) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mermaid = a.has("mermaid");
    let causal = a.has("causal");
    let width: usize = a.value("width");
    let paths: Vec<PathBuf> = a.positional.iter().map(PathBuf::from).collect();
    if paths.is_empty() {
        a.fail("give the trace directory (or files), e.g. frota-ctl trace run/traces");
    }
    match load(&paths) {
        Ok(recs) => {
            let events = if causal {
                merge_causal(&recs, false)
            } else {
                merge(&recs)
            };
            if events.is_empty() {
                eprintln!(
                    "frota-ctl trace: no trace records under {}\n({TRACE_HINT})",
                    show(&paths)
                );
                return 1;
            }
            let out = if mermaid {
                render_mermaid(&events)
            } else if causal {
                render_text_steps(&events)
            } else if a.has("list") {
                render_list(&events, if width == 0 { usize::MAX } else { width })
            } else if width == 0 {
                render_text(&events)
            } else {
                render_fit(&events, width)
            };
            print!("{out}");
            0
        }
        Err(e) => {
            eprintln!("frota-ctl trace: {e}\n({TRACE_HINT})");
            1
        }
    }
}

fn show(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| Path::new(p).display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(t: u64, from: &str, to: &str, label: &str, reply: bool) -> Event {
        Event {
            t_us: t,
            from: from.into(),
            to: to.into(),
            label: label.into(),
            reply,
        }
    }

    fn widest(s: &str) -> usize {
        s.lines().map(|l| l.chars().count()).max().unwrap_or(0)
    }

    /// `frota-ctl trace` on a whole `make up` deployment drew ~600 columns:
    /// fitted, every line stays within the width, as a ladder while the
    /// nodes fit side by side and as a list when they do not.
    #[test]
    fn the_ladder_fits_the_terminal() {
        let long = "rent #42 class=economy request_id=client-17-42 status=pending car=ECO01 terminal=terminal-3";
        let few = vec![
            ev(0, "client", "terminal-1", long, false),
            ev(10, "terminal-1", "terminal-3", long, false),
            ev(
                20,
                "terminal-3",
                "terminal-1",
                "rent_ok ↩42 status=rented",
                true,
            ),
            ev(
                30,
                "terminal-3",
                "terminal-3",
                "crash at terminal.rent.after_log (exit 42)",
                false,
            ),
        ];
        assert!(
            widest(&render_text(&few)) > 80,
            "the unfitted ladder is wide"
        );
        let fitted = render_fit(&few, 80);
        assert!(widest(&fitted) <= 80, "{fitted}");
        assert!(
            fitted.contains('…') && fitted.contains("terminal-3"),
            "{fitted}"
        );
        assert!(
            fitted.contains('>') && fitted.contains('<'),
            "still a ladder: {fitted}"
        );

        let mut many = Vec::new();
        let ev_nodes = ["broker", "company-A", "company-B", "company-C"];
        let nodes: Vec<&str> = crate::tools::rental::cluster::NODES
            .into_iter()
            .chain(ev_nodes)
            .chain(["peer 127.0.0.1:54321"])
            .collect();
        for (i, n) in nodes.iter().enumerate() {
            many.push(ev(i as u64 * 100, "ctl", n, long, false));
            many.push(ev(i as u64 * 100 + 50, n, "ctl", "ping_ok", true));
        }
        let list = render_fit(&many, 100);
        assert!(widest(&list) <= 100, "{list}");
        assert_eq!(
            list.lines().count(),
            many.len() + 1,
            "one line per message: {list}"
        );
        assert!(
            list.contains("ctl → company-B") && list.contains("company-B ⇢ ctl"),
            "{list}"
        );
        // The docs keep the full, unfitted ladder.
        assert!(widest(&render_text_steps(&many)) > 400);
    }

    #[test]
    fn merges_both_sides_once_and_names_addresses() {
        let recs = vec![
            json!({"t_us": 10, "node": "client", "dir": "send", "local": "127.0.0.1:5000", "remote": "127.0.0.1:7011", "type": "rent", "id": 7, "in_reply_to": null}),
            json!({"t_us": 12, "node": "terminal-1", "dir": "recv", "local": "127.0.0.1:7011", "remote": "127.0.0.1:5000", "type": "rent", "id": 7, "in_reply_to": null}),
            json!({"t_us": 20, "node": "terminal-1", "dir": "send", "local": "127.0.0.1:7011", "remote": "127.0.0.1:5000", "type": "rent_ok", "id": null, "in_reply_to": 7}),
            json!({"t_us": 30, "node": "terminal-1", "dir": "recv", "local": "127.0.0.1:7011", "remote": "127.0.0.1:6000", "type": "ping", "id": null, "in_reply_to": null}),
        ];
        let ev = merge(&recs);
        assert_eq!(ev.len(), 3);
        assert_eq!(
            (ev[0].from.as_str(), ev[0].to.as_str()),
            ("client", "terminal-1")
        );
        assert!(ev[1].reply && ev[1].to == "client");
        assert_eq!(ev[2].from, "peer 127.0.0.1:6000");
        let text = render_text(&ev);
        assert!(
            text.contains("rent #7") && text.contains('>') && text.contains('<'),
            "{text}"
        );
        let m = render_mermaid(&ev);
        assert!(
            m.contains("P0->>P1: rent  7") && m.contains("P1-->>P0"),
            "{m}"
        );
    }

    /// A coordinator (A, 127.0.0.1:1) prepares B (:2) and C (:3) for a
    /// vehicle (:9); the votes arrive in `first`, `second` order.
    fn two_votes(first: u64, second: u64) -> Vec<Value> {
        let addr = |p: u64| format!("127.0.0.1:{p}");
        let rec = |t: u64,
                   node: &str,
                   pid: u64,
                   seq: u64,
                   dir: &str,
                   local: u64,
                   remote: u64,
                   m: Value| {
            let mut r = json!({"t_us": t, "node": node, "pid": pid, "seq": seq, "dir": dir,
                               "local": addr(local), "remote": addr(remote)});
            for (k, v) in m.as_object().unwrap() {
                r[k] = v.clone();
            }
            r
        };
        let req = |ty: &str, id: u64| json!({"type": ty, "id": id, "in_reply_to": null, "txn": "A/v9/r1"});
        let rep = |ty: &str, id: u64| json!({"type": ty, "id": null, "in_reply_to": id, "txn": "A/v9/r1"});
        let peer = |p: u64| if p == 2 { "company-B" } else { "company-C" };
        let mut v = vec![
            rec(
                1,
                "vehicle",
                9,
                1,
                "send",
                9,
                1,
                json!({"type":"reserve","id":500,"in_reply_to":null,"after":[]}),
            ),
            rec(
                2,
                "company-A",
                1,
                1,
                "recv",
                1,
                9,
                json!({"type":"reserve","id":500,"in_reply_to":null}),
            ),
        ];
        for (i, p) in [2u64, 3].into_iter().enumerate() {
            let mut s = rec(
                3 + i as u64,
                "company-A",
                1,
                2 + i as u64,
                "send",
                1,
                p,
                req("prepare", 600 + p),
            );
            s["after"] = json!([1]);
            v.push(s);
            v.push(rec(5, peer(p), p, 1, "recv", p, 1, req("prepare", 600 + p)));
            let mut note = rec(
                6,
                peer(p),
                p,
                2,
                "note",
                0,
                0,
                json!({"type":"log","log":"participant.log","record":"hold","txn":"A/v9/r1"}),
            );
            note["after"] = json!([1]);
            v.push(note);
            v.push(rec(7, peer(p), p, 3, "forced", 0, 0, json!({"of":[2]})));
            // The vote that arrives first was sent first.
            let sent = if p == first { 8 } else { 9 };
            let mut yes = rec(
                sent,
                peer(p),
                p,
                4,
                "send",
                p,
                1,
                rep("prepare_ok", 600 + p),
            );
            yes["after"] = json!([2]);
            v.push(yes);
        }
        // A receives the votes in the order given, at times 10 and 20, and
        // its decision follows the last one.
        for (k, p) in [first, second].into_iter().enumerate() {
            v.push(rec(
                10 + 10 * k as u64,
                "company-A",
                1,
                4 + k as u64,
                "recv",
                1,
                p,
                rep("prepare_ok", 600 + p),
            ));
        }
        let mut note = rec(
            30,
            "company-A",
            1,
            6,
            "note",
            0,
            0,
            json!({"type":"log","log":"coordinator.log","record":"commit","txn":"A/v9/r1"}),
        );
        note["after"] = json!([5]);
        v.push(note);
        let mut ok = rec(
            31,
            "company-A",
            1,
            7,
            "send",
            1,
            9,
            json!({"type":"reserve_ok","id":null,"in_reply_to":500,"outcome":"reserved"}),
        );
        ok["after"] = json!([6]);
        v.push(ok);
        let mut dec = rec(
            32,
            "company-A",
            1,
            8,
            "send",
            1,
            2,
            json!({"type":"decide","id":700,"in_reply_to":null,"commit":["A/v9/r1","A/v9/r2"]}),
        );
        dec["after"] = json!([6]);
        v.push(dec);
        v
    }

    #[test]
    fn causal_order_does_not_depend_on_arrival() {
        let a = merge_causal(&two_votes(2, 3), true);
        let b = merge_causal(&two_votes(3, 2), true);
        let (ta, tb) = (render_text_steps(&a), render_text_steps(&b));
        assert_eq!(ta, tb, "the votes' arrival order leaks into the diagram");
        assert_eq!(render_mermaid(&a), render_mermaid(&b));
        // Causes before effects; forced and queued notes; ids renumbered
        // in the drawn order; phase 2 per transaction.
        let labels: Vec<&str> = a.iter().map(|e| e.label.as_str()).collect();
        let at = |l: &str| {
            labels
                .iter()
                .position(|x| x.starts_with(l))
                .unwrap_or_else(|| panic!("no {l}: {ta}"))
        };
        assert!(at("reserve #1") < at("prepare #2"), "{ta}");
        assert!(
            at("participant.log ← hold txn=A/v9/r1 (forced)") < at("prepare_ok"),
            "{ta}"
        );
        assert!(
            at("prepare_ok") < at("coordinator.log ← commit txn=A/v9/r1 (queued)"),
            "{ta}"
        );
        assert!(at("coordinator.log") < at("reserve_ok"), "{ta}");
        assert_eq!(
            labels.iter().filter(|l| l.starts_with("commit #4")).count(),
            2,
            "{ta}"
        );
        assert!(labels.contains(&"commit #4 txn=A/v9/r2"), "{ta}");
        // A trace without causes is still merged, in time order.
        let mut old = two_votes(3, 2);
        for r in &mut old {
            r.as_object_mut().unwrap().remove("seq");
        }
        assert_eq!(merge_causal(&old, false).len(), merge(&old).len());
    }
}
