//! Replays the examples of protocol.md's "Rental" section, in document
//! order, against one fresh deployment, and checks each reply strictly:
//! `type`, `in_reply_to` and `code` exactly; objects with exactly the keys
//! shown (recursively); arrays of the same length; values of the same JSON
//! type. Set FROTA_DOC_SHOW=1 to print every actual reply.

use frota::client::{Client, ClientConfig};
use frota::launch::temp_dir;
use frota::rental::cluster::{Bins, RentalCluster};
use frota::Request;
use serde_json::Value;
use std::time::Duration;

fn bins() -> Bins {
    Bins::new(
        env!("CARGO_BIN_EXE_frota-heartbeat"),
        env!("CARGO_BIN_EXE_frota-backup"),
        env!("CARGO_BIN_EXE_frota-terminal"),
        env!("CARGO_BIN_EXE_frota-infodesk"),
    )
}

/// (node, [(request line, expected reply line)]) for every ```frota block
/// of the Rental section.
fn rental_blocks() -> Vec<(String, Vec<(String, String)>)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol.md")).unwrap();
    let start = doc.find("\n## Rental").expect("a Rental section");
    let rest = &doc[start + 1..];
    let end = rest[3..].find("\n## ").map(|i| i + 3).unwrap_or(rest.len());
    let section = &rest[..end];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(l) = lines.next() {
        let Some(node) = l.strip_prefix("```frota ") else {
            continue;
        };
        let mut pairs = Vec::new();
        let mut pending: Option<String> = None;
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            if let Some(req) = l.strip_prefix("> ") {
                assert!(
                    pending.is_none(),
                    "two requests without a reply in block {node}"
                );
                pending = Some(req.to_string());
            } else if let Some(rep) = l.strip_prefix("< ") {
                let req = pending.take().expect("a reply without a request");
                pairs.push((req, rep.to_string()));
            }
        }
        assert!(pending.is_none(), "request without reply in block {node}");
        blocks.push((node.trim().to_string(), pairs));
    }
    blocks
}

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

/// Same shape: types equal, same keys, same array lengths.
fn same_shape(want: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    if kind(want) != kind(got) {
        out.push(format!("{path}: want {}, got {}", kind(want), kind(got)));
        return;
    }
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let wk: Vec<&String> = w.keys().collect();
            let gk: Vec<&String> = g.keys().collect();
            let (mut ws, mut gs) = (wk.clone(), gk.clone());
            ws.sort();
            gs.sort();
            if ws != gs {
                out.push(format!("{path}: keys {ws:?} vs {gs:?}"));
                return;
            }
            for k in wk {
                same_shape(&w[k], &g[k], &format!("{path}.{k}"), out);
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                out.push(format!("{path}: {} elements vs {}", w.len(), g.len()));
                return;
            }
            for (i, (a, b)) in w.iter().zip(g).enumerate() {
                same_shape(a, b, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn rental_examples_replay_in_document_order() {
    let blocks = rental_blocks();
    let n: usize = blocks.iter().map(|b| b.1.len()).sum();
    assert!(n >= 30, "the Rental section shows {n} examples");
    let c = RentalCluster::start(bins(), &temp_dir("doc")).unwrap();
    let show = std::env::var("FROTA_DOC_SHOW").is_ok();
    let cfg = ClientConfig::default()
        .with_timeout(Duration::from_secs(10))
        .with_retries(0);
    let mut problems = Vec::new();
    for (node, pairs) in &blocks {
        let mut client = Client::connect(&c.addr(node).to_string(), &cfg).unwrap();
        for (req, want) in pairs {
            let request = Request::from_payload(req.as_bytes())
                .unwrap_or_else(|(_, e)| panic!("bad example request {req}: {e}"));
            let want: Value = serde_json::from_str(want)
                .unwrap_or_else(|e| panic!("bad example reply {want}: {e}"));
            let got = match client.request(&request) {
                Ok(b) => Value::Object(b),
                Err(e) => e.to_message(request.id),
            };
            if show {
                eprintln!("{node} > {req}\n{node} < {got}");
            }
            let mut out = Vec::new();
            for k in ["type", "in_reply_to", "code"] {
                if want.get(k) != got.get(k) {
                    out.push(format!("{k}: want {:?}, got {:?}", want.get(k), got.get(k)));
                }
            }
            same_shape(&want, &got, "", &mut out);
            if !out.is_empty() {
                problems.push(format!(
                    "{node} > {req}\n  got  {got}\n  {}",
                    out.join("\n  ")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} example(s) differ:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
