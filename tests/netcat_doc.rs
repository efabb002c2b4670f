//! docs/netcat.md works as written: its conversations are replayed, byte
//! for byte as a person types them into `nc` (inline frames), against a
//! fresh rental deployment (with the nodes' default timing, as `make up`
//! starts them) and a fresh EV deployment on 127.0.0.1:0.
//!
//! - ```` ```nc <node> ```` blocks: `>` lines are sent, `<` lines must be
//!   received, in order. Like the person's windows, one connection per node
//!   stays open for the whole document. Replies match value for value
//!   (doccheck::Match::Exact: all but times, ages, sequence numbers, log
//!   positions and node-chosen ids), arrays by whole length and keys in the
//!   order shown, a terminal's default address standing for the test's;
//!   on the raw bytes, every message must begin with its envelope
//!   (`{"type":...,"in_reply_to":` or `"id":`).
//! - ```` ```nc-listen <addr> ```` blocks: what `nc -lk <addr>` prints — a
//!   length line, then the payload line of a frame some node sent there.
//!   The test listens on that address itself (it is the callback address
//!   the document's requests carry, so it must be the same bytes).

mod support;

use frota::runtime::launch::temp_dir;
use frota::tools::ctl::doccheck;
use frota::tools::ev::cluster::{EvCluster, EvOptions};
use frota::tools::rental::cluster::RentalCluster;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

struct Block {
    kind: String,
    target: String,
    line: usize,
    steps: Vec<(usize, char, String)>,
}

fn parse(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur: Option<Block> = None;
    for (i, l) in doc.lines().enumerate() {
        if let Some(b) = cur.as_mut() {
            if l.starts_with("```") {
                out.extend(cur.take());
            } else if let Some(x) = l.strip_prefix("> ") {
                b.steps.push((i + 1, '>', x.to_string()));
            } else if let Some(x) = l.strip_prefix("< ") {
                b.steps.push((i + 1, '<', x.to_string()));
            } else {
                assert!(l.trim().is_empty(), "netcat.md line {}: {l:?}", i + 1);
            }
            continue;
        }
        let mut w = l.strip_prefix("```").unwrap_or("").split_whitespace();
        if let (Some(kind @ ("nc" | "nc-listen")), Some(target)) = (w.next(), w.next()) {
            cur = Some(Block {
                kind: kind.to_string(),
                target: target.to_string(),
                line: i + 1,
                steps: Vec::new(),
            });
        }
    }
    assert!(cur.is_none(), "netcat.md: a block is never closed");
    out
}

/// What `nc -lk ADDR` would print: every connection's first frame, as the
/// length line and the payload line.
fn listen(addr: &str, stop: Arc<AtomicBool>) -> crossbeam_channel::Receiver<(String, String)> {
    let l = TcpListener::bind(addr).unwrap_or_else(|e| {
        panic!("netcat.md listens on {addr} (the callback address it shows); cannot bind it: {e}")
    });
    l.set_nonblocking(true).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((s, _)) = l.accept() else {
                thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut r = BufReader::new(s);
            let (mut len, mut payload) = (String::new(), String::new());
            if r.read_line(&mut len).is_ok() && r.read_line(&mut payload).is_ok() {
                let _ = tx.send((len.trim_end().to_string(), payload.trim_end().to_string()));
            }
            // Like nc, never answer: the terminal gives up and hangs up.
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        }
    });
    rx
}

/// The envelope leads the bytes as they came off the wire, as protocol.md
/// writes every message: `{"type":"...","in_reply_to":...` for a reply,
/// `{"type":"...","id":...` for a request a node sends (the callback's
/// `car_ready` once arrived with `type` and `id` last). Checked on the raw
/// bytes, not on a parsed value, whose key order is serde_json's to choose.
fn envelope_leads(want: &str, raw: &[u8], ctx: &str, problems: &mut Vec<String>) {
    let Ok(w) = serde_json::from_str::<Value>(want) else {
        return; // check() reports it
    };
    let mut prefix = format!("{{\"type\":{}", w["type"]);
    if let Some(k) = ["in_reply_to", "id"]
        .into_iter()
        .find(|k| w.get(k).is_some())
    {
        prefix.push_str(&format!(",\"{k}\":"));
    }
    let raw = String::from_utf8_lossy(raw);
    if !want.starts_with(&prefix) || !raw.starts_with(&prefix) {
        problems.push(format!(
            "{ctx}: the message must begin with {prefix}\n  doc:  {want}\n  got:  {raw}"
        ));
    }
}

fn check(want: &str, got: &Value, ctx: &str, problems: &mut Vec<String>) {
    match serde_json::from_str::<Value>(want) {
        Ok(w) => {
            if let Err(why) = doccheck::matches_with(&w, got, doccheck::Match::Exact) {
                problems.push(format!("{ctx}: {why}\n  doc:  {want}\n  got:  {got}"));
            }
        }
        Err(e) => problems.push(format!("{ctx}: the doc's line is not JSON: {e}")),
    }
}

#[test]
fn the_walkthrough_works_as_written() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/netcat.md");
    let doc = std::fs::read_to_string(path).expect("docs/netcat.md");
    let rental = RentalCluster::start_with(
        support::rental::bins(),
        &temp_dir("netcat-rental"),
        frota::tools::rental::cluster::ClusterOptions {
            fixed_ports: false,
            ..frota::tools::rental::cluster::ClusterOptions::defaults()
        },
    )
    .expect("rental deployment starts");
    let ev = EvCluster::start(support::ev::bins(), EvOptions::new(&temp_dir("netcat-ev")))
        .expect("EV deployment starts");
    let mut doc = doc;
    for (node, default) in [
        ("terminal-1", "127.0.0.1:7011"),
        ("terminal-2", "127.0.0.1:7012"),
        ("terminal-3", "127.0.0.1:7013"),
    ] {
        doc = doc.replace(default, &rental.addr(node).to_string());
    }
    let blocks = parse(&doc);
    assert!(blocks.len() >= 8, "netcat.md has {} blocks", blocks.len());

    let stop = Arc::new(AtomicBool::new(false));
    let mut listeners = HashMap::new();
    for b in blocks.iter().filter(|b| b.kind == "nc-listen") {
        if !listeners.contains_key(&b.target) {
            listeners.insert(b.target.clone(), listen(&b.target, stop.clone()));
        }
    }
    let addr_of = |node: &str| -> SocketAddr {
        rental
            .try_addr(node)
            .or_else(|| ev.try_addr(node))
            .unwrap_or_else(|| panic!("netcat.md talks to an unknown node '{node}'"))
    };

    let mut sessions: HashMap<String, (TcpStream, frota::wire::connection::Connection)> =
        HashMap::new();
    let mut problems = Vec::new();
    let mut received = 0;
    for b in &blocks {
        if b.kind == "nc-listen" {
            let rx = &listeners[&b.target];
            let lines: Vec<&(usize, char, String)> = b.steps.iter().collect();
            assert!(
                lines.len() == 2 && lines.iter().all(|s| s.1 == '<'),
                "netcat.md line {}: a listen block shows a length line and a payload line",
                b.line
            );
            let (len, payload) = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("line {}: nothing arrived at {}", b.line, b.target));
            let ctx = format!("netcat.md line {}", lines[0].0);
            if lines[0].2.parse::<usize>().is_err()
                || len.parse::<usize>().ok() != Some(payload.len())
            {
                problems.push(format!(
                    "{ctx}: length line {len:?} for a {}-byte payload (doc: {:?})",
                    payload.len(),
                    lines[0].2
                ));
            }
            envelope_leads(
                &lines[1].2,
                payload.as_bytes(),
                &format!("netcat.md line {}", lines[1].0),
                &mut problems,
            );
            match serde_json::from_str::<Value>(&payload) {
                Ok(got) => check(
                    &lines[1].2,
                    &got,
                    &format!("netcat.md line {}", lines[1].0),
                    &mut problems,
                ),
                Err(e) => problems.push(format!("{ctx}: received non-JSON {payload:?}: {e}")),
            }
            received += 1;
            continue;
        }
        let (w, conn) = sessions.entry(b.target.clone()).or_insert_with(|| {
            let s = TcpStream::connect(addr_of(&b.target)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let conn = frota::wire::connection::Connection::new(s.try_clone().unwrap(), 1 << 20)
                .expect("connection");
            (s, conn)
        });
        for (n, dir, text) in &b.steps {
            let ctx = format!("netcat.md line {n} ({})", b.target);
            if *dir == '>' {
                // Exactly what a person types: the line and Enter.
                w.write_all(format!("{text}\n").as_bytes()).unwrap();
                continue;
            }
            let started = Instant::now();
            let got = match conn.read_frame() {
                Ok(Some(f)) => {
                    envelope_leads(text, &f.payload, &ctx, &mut problems);
                    serde_json::from_slice::<Value>(&f.payload).unwrap_or(Value::Null)
                }
                other => panic!("{ctx}: no reply after {:?}: {other:?}", started.elapsed()),
            };
            if std::env::var_os("FROTA_DOC_SHOW").is_some() {
                eprintln!("{ctx}: {got}");
            }
            check(text, &got, &ctx, &mut problems);
            received += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(
        problems.is_empty(),
        "docs/netcat.md does not match what the nodes answer:\n{}",
        problems.join("\n")
    );
    assert!(received >= 15, "only {received} replies checked");
}
