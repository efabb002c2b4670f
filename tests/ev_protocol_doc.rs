//! Replays the examples of protocol.md's "EV charging" section, in document
//! order, against one fresh EV cluster (the rules of "How examples are
//! written": type, in_reply_to and code exact; the same keys with values of
//! the same JSON type).
mod ev_common;

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn same_shape(want: &Value, got: &Value, ctx: &str) {
    for k in ["type", "in_reply_to", "code"] {
        assert_eq!(
            want.get(k),
            got.get(k),
            "{ctx}: '{k}' differs\nwant {want}\ngot  {got}"
        );
    }
    let (Value::Object(w), Value::Object(g)) = (want, got) else {
        panic!("{ctx}: not objects");
    };
    let wk: Vec<&String> = w.keys().collect();
    let gk: Vec<&String> = g.keys().collect();
    assert_eq!(wk, gk, "{ctx}: keys differ\nwant {want}\ngot  {got}");
    for (k, v) in w {
        assert_eq!(
            kind(v),
            kind(&g[k]),
            "{ctx}: type of '{k}' differs\nwant {want}\ngot  {got}"
        );
    }
}

#[test]
fn ev_section_examples_replay_in_order() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol.md")).unwrap();
    let start = doc.find("\n## EV charging").expect("EV section");
    let rest = &doc[start + 1..];
    let end = rest[3..].find("\n## ").map(|i| i + 3).unwrap_or(rest.len());
    let section = &rest[..end];
    let c = ev_common::cluster("ev-doc", |_| {});
    let mut blocks = 0;
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some(node) = line.strip_prefix("```frota ") else {
            continue;
        };
        blocks += 1;
        let node = node.trim();
        let s = TcpStream::connect(c.addr(node)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            let ctx = format!("block {blocks} ({node}) line {l}");
            if let Some(out) = l.strip_prefix("> ") {
                w.write_all(out.as_bytes()).unwrap();
                w.write_all(b"\n").unwrap();
            } else if let Some(want) = l.strip_prefix("< ") {
                let want: Value = serde_json::from_str(want).expect("example is JSON");
                let mut got = String::new();
                r.read_line(&mut got)
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                let got: Value =
                    serde_json::from_str(&got).unwrap_or_else(|e| panic!("{ctx}: {e}: {got}"));
                same_shape(&want, &got, &ctx);
            }
        }
    }
    assert!(blocks >= 5, "the EV section has its examples ({blocks})");
}

/// Every example in every EV node's `help` works as typed into netcat:
/// no "unknown type" (10) or "malformed" (12) answer.
#[test]
fn help_examples_are_accepted() {
    let c = ev_common::cluster("ev-help", |_| {});
    for node in c.names() {
        let s = TcpStream::connect(c.addr(&node)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(b"{\"type\":\"help\",\"id\":1}\n").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let help: Value = serde_json::from_str(&line).unwrap();
        let msgs = help["messages"].as_array().cloned().unwrap_or_default();
        assert!(msgs.len() >= 6, "{node}: {help}");
        for m in msgs {
            let ex = m["example"].as_str().unwrap();
            w.write_all(ex.as_bytes()).unwrap();
            w.write_all(b"\n").unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let got: Value = serde_json::from_str(&line).unwrap();
            let code = got["code"].as_u64();
            assert!(
                code != Some(10) && code != Some(12),
                "{node}: example {ex} got {got}"
            );
            // A push (broker example publishing to its own subscription)
            // may follow its reply; skip it.
            if got["type"] == "publish_ok" && got["delivered"].as_u64() == Some(1) {
                let mut push = String::new();
                r.read_line(&mut push).unwrap();
                assert!(push.contains("\"message\""), "{push}");
            }
        }
    }
}
