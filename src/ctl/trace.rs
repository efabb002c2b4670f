//! `frota-ctl trace <files or dirs>`: merge the wire traces of a run
//! (see [`crate::trace`]) and draw them as a ladder (sequence) diagram, in
//! plain text for the terminal or in Mermaid for docs.
//!
//! Every frame is usually recorded twice (sent by one node, received by the
//! other); the merger keeps the sender's record and falls back to the
//! receiver's when the sender did not trace (a person at netcat).

use serde_json::Value;
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

/// Turn raw records into arrows, in time order, each frame once.
pub fn merge(recs: &[Value]) -> Vec<Event> {
    let mut names: HashMap<&str, &str> = HashMap::new();
    for r in recs {
        if !s(r, "local").is_empty() {
            names.insert(s(r, "local"), s(r, "node"));
        }
    }
    let name = |addr: &str| -> String {
        match names.get(addr) {
            Some(n) => (*n).to_string(),
            None if addr.is_empty() => "?".into(),
            None => format!("peer {addr}"),
        }
    };
    let key = |sender: &str, receiver: &str, r: &Value| {
        format!(
            "{sender}|{receiver}|{}|{}|{}",
            s(r, "type"),
            r.get("id").unwrap_or(&Value::Null),
            r.get("in_reply_to").unwrap_or(&Value::Null)
        )
    };
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

fn render_with(
    events: &[Event],
    head_label: &str,
    stamp: &dyn Fn(usize, &Event) -> String,
) -> String {
    let parts = participants(events);
    let longest_label = events
        .iter()
        .map(|e| e.label.chars().count())
        .max()
        .unwrap_or(0);
    let longest_name = parts.iter().map(|p| p.chars().count()).max().unwrap_or(0);
    let w = (longest_name + 4).max(longest_label.min(40) + 6).max(16);
    let center = |i: usize| i * w + w / 2;
    let width = parts.len() * w;
    let mut out = String::new();
    let mut head = vec![' '; width];
    for (i, p) in parts.iter().enumerate() {
        let start = center(i).saturating_sub(p.chars().count() / 2);
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
        let mut line = vec![' '; width];
        for i in 0..parts.len() {
            line[center(i)] = '|';
        }
        let a = parts.iter().position(|p| *p == e.from).unwrap_or(0);
        let b = parts.iter().position(|p| *p == e.to).unwrap_or(0);
        let (lo, hi) = (center(a.min(b)), center(a.max(b)));
        if lo == hi {
            // Something that happened at one node (a crash): its label
            // goes to the right of the node's line.
            line[lo] = '@';
            for (j, c) in e.label.chars().enumerate() {
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
            let text: Vec<char> = e.label.chars().take(hi - lo - 4).collect();
            let start = lo + 1 + (hi - lo - 1 - text.len()) / 2;
            for (j, c) in text.into_iter().enumerate() {
                line[start + j] = c;
            }
        }
        out.push_str(&format!(
            "{}  {}\n",
            stamp(i, e),
            line.iter().collect::<String>().trim_end()
        ));
    }
    out
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

/// `frota-ctl trace [--mermaid] <files or dirs>...`
pub fn run(args: &[String]) -> i32 {
    let mermaid = args.iter().any(|a| a == "--mermaid");
    let paths: Vec<PathBuf> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .collect();
    if paths.is_empty() || args.iter().any(|a| a == "--help") {
        eprintln!(
            "usage: frota-ctl trace [--mermaid] <trace files or directories>...\n\
                   (traces are written by any node or simulator run with FROTA_TRACE=<dir>)"
        );
        return 2;
    }
    match load(&paths) {
        Ok(recs) => {
            let events = merge(&recs);
            if events.is_empty() {
                eprintln!("no trace records under {}", show(&paths));
                return 1;
            }
            if mermaid {
                print!("{}", render_mermaid(&events));
            } else {
                print!("{}", render_text(&events));
            }
            0
        }
        Err(e) => {
            eprintln!("frota-ctl trace: {e}");
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
}
