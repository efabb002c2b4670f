//! `help` on every node lists every message with an example that works as
//! typed into netcat: start every node type (the rental deployment, the EV
//! deployment, frota-echo), ask each for `help`, send every example exactly
//! as listed (one inline line), and require an answer that is not "unknown
//! type" (10) or "malformed" (12). A domain error (20, 22, …) is accepted
//! only where the example's own description says it answers that error.
//!
//! Every reply (and every push) must also start with its envelope, byte for
//! byte as protocol.md writes it: `{"type":...` first, and `"in_reply_to"`
//! right after it when the request had an `id`.

mod support;

use frota::runtime::launch::temp_dir;
use frota::tools::ev::cluster::{EvCluster, EvOptions};
use frota::tools::rental::cluster::RentalCluster;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};

use std::time::Duration;
use support::echo::start_echo;

/// Read one line that is a reply (skipping pushes from the broker: an
/// example that publishes to the example's own subscription gets one).
/// Envelope order problems go to `order`.
fn reply(r: &mut BufReader<TcpStream>, ctx: &str, order: &mut Vec<String>) -> Value {
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert!(n > 0, "{ctx}: the node closed the connection");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{ctx}: {e}: {line}"));
        let push = v["type"] == "message";
        let keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let first_ok = line.starts_with("{\"type\":");
        let second_ok = v.get("in_reply_to").is_none() || keys.get(1) == Some(&"in_reply_to");
        if !first_ok || !second_ok {
            order.push(format!(
                "{ctx}: envelope not first (type, then in_reply_to): {}",
                line.trim_end()
            ));
        }
        if !push {
            return v;
        }
    }
}

/// Every example of `node`'s help, as typed; returns how many ran.
fn check_node(node: &str, addr: SocketAddr, problems: &mut Vec<String>) -> usize {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{node} at {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"{\"type\":\"help\",\"id\":1}\n").unwrap();
    let help = reply(&mut r, node, problems);
    let msgs = help["messages"].as_array().cloned().unwrap_or_default();
    assert!(msgs.len() >= 4, "{node}: {help}");
    for m in &msgs {
        let (Some(ex), Some(desc)) = (m["example"].as_str(), m["description"].as_str()) else {
            problems.push(format!(
                "{node}: a help entry without example/description: {m}"
            ));
            continue;
        };
        w.write_all(ex.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
        let got = reply(&mut r, &format!("{node}: {ex}"), problems);
        if got["type"] != "error" {
            if got["type"] != format!("{}_ok", m["type"].as_str().unwrap_or("?")) {
                problems.push(format!("{node}: example {ex}\n  answered {got}"));
            }
            continue;
        }
        let code = got["code"].as_u64().unwrap_or(999);
        let documented = desc.contains(&format!("error {code}"));
        if code == 10 || code == 12 || !documented {
            problems.push(format!(
                "{node}: example {ex}\n  answered {got}\n  (help says: {desc})"
            ));
        }
    }
    msgs.len()
}

#[test]
fn every_help_example_works_as_typed() {
    let mut problems = Vec::new();
    let mut ran = 0;

    let rental = RentalCluster::start(support::rental::bins(), &temp_dir("help-rental"))
        .expect("rental deployment starts");
    for node in frota::tools::rental::cluster::NODES {
        ran += check_node(node, rental.addr(node), &mut problems);
    }
    drop(rental);

    let ev = EvCluster::start(support::ev::bins(), EvOptions::new(&temp_dir("help-ev")))
        .expect("EV deployment starts");
    for node in ev.names() {
        ran += check_node(&node, ev.addr(&node), &mut problems);
    }
    drop(ev);

    let echo = start_echo(&[]);
    ran += check_node("echo", echo.tcp(), &mut problems);

    assert!(
        problems.is_empty(),
        "{} help example(s) do not work as typed:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(ran >= 40, "only {ran} examples ran");
}

/// `{"type":"help","format":"text"}` is for a person at netcat: still one
/// reply frame, but over several lines (so length-prefixed, even to an
/// inline request): the envelope first, then one message per line, each
/// example a JSON object that works when pasted back as is.
#[test]
fn help_for_a_person_is_one_message_per_line() {
    let echo = start_echo(&[]);
    let s = TcpStream::connect(echo.tcp()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"{\"type\":\"help\",\"id\":7,\"format\":\"text\"}\n")
        .unwrap();
    let mut len = String::new();
    r.read_line(&mut len).unwrap();
    let len: usize = len.trim_end().parse().expect("a length line first");
    let mut payload = vec![0u8; len + 1];
    std::io::Read::read_exact(&mut r, &mut payload).unwrap();
    let text = String::from_utf8(payload).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(r#"{"type":"help_ok","in_reply_to":7,"#),
        "{text}"
    );
    let v: Value = serde_json::from_str(&text).expect("still one JSON object");
    let msgs = v["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(v["format"], "text");
    assert!(msgs.len() >= 5, "{text}");
    for m in &msgs {
        // One line per message, the example an object, not a string.
        let one = m.to_string();
        assert!(
            lines.iter().any(|l| l.contains(&one)),
            "{one} on a line of its own:\n{text}"
        );
        assert!(m["example"].is_object(), "{m}");
    }
    assert!(lines.iter().all(|l| l.chars().count() < 300), "{text}");
    // A pasted example works; a bad format is error 12; plain help is unchanged.
    let mut conn = frota::wire::connection::Connection::new(r.into_inner(), 1 << 20).unwrap();
    let mut ask = |line: &str| -> Value {
        w.write_all(format!("{line}\n").as_bytes()).unwrap();
        let f = conn.read_frame().unwrap().expect("a reply");
        serde_json::from_slice(&f.payload).unwrap()
    };
    let echo_entry = msgs.iter().find(|m| m["type"] == "echo").unwrap();
    assert_eq!(ask(&echo_entry["example"].to_string())["type"], "echo_ok");
    assert_eq!(ask(r#"{"type":"help","id":8,"format":"xml"}"#)["code"], 12);
    let plain = ask(r#"{"type":"help","id":9}"#);
    assert!(plain.get("format").is_none() && plain["messages"][0]["example"].is_string());
}
