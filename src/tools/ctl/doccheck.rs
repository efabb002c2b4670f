//! Keeps protocol.md honest: replays its example conversations against live
//! nodes, and checks its error table against [`Code::ALL`].
//!
//! # Example blocks
//!
//! A fenced block whose info string is `frota <node>` is a conversation with
//! that node. `>` lines are sent (as inline frames, exactly as typed into
//! netcat), `<` lines are received, in order:
//!
//! ````text
//! ```frota heartbeat
//! > {"type":"ping","id":1}
//! < {"type":"ping_ok","in_reply_to":1,"name":"heartbeat","role":"heartbeat","uptime_ms":12}
//! ```
//! ````
//!
//! A received message matches the example when `type`, `in_reply_to` and
//! `code` are equal, it has exactly the example's keys, and every value has
//! the example's JSON type — recursively through objects; for arrays the
//! first elements' types are compared. Values themselves (times, ids chosen
//! by the node) may differ.
//!
//! Blocks run in document order, one connection per block, so state carries
//! from one block to the next. A block for a node the resolver cannot find
//! is skipped and reported as such, never silently passed.

use crate::wire::connection::{Connection, ReadError};
use crate::wire::error::Code;
use crate::wire::frame::DEFAULT_MAX_PAYLOAD;
use serde_json::Value;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One line of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `>`: sent to the node.
    Send(String),
    /// `<`: expected from the node.
    Expect(String),
}

/// One ```` ```frota <node> ```` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub node: String,
    /// 1-based line of the opening fence.
    pub line: usize,
    /// Each step with its 1-based line number.
    pub steps: Vec<(usize, Step)>,
}

/// What [`parse`] found: the blocks, and lines it could not read.
#[derive(Debug, Default)]
pub struct Parsed {
    pub blocks: Vec<Block>,
    pub problems: Vec<String>,
}

/// Extract every `frota` block from a markdown document.
pub fn parse(doc: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut current: Option<Block> = None;
    // Length of the fence of a non-frota code block we are inside: it
    // ends only at a line of at least as many backticks and nothing else.
    let mut other_fence: Option<usize> = None;
    let closes = |line: &str, len: usize| {
        let t = line.trim();
        t.len() >= len && t.bytes().all(|b| b == b'`')
    };
    for (i, raw) in doc.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end();
        if let Some(len) = other_fence {
            if closes(line, len) {
                other_fence = None;
            }
            continue;
        }
        if let Some(block) = current.as_mut() {
            if closes(line, 3) {
                if block.steps.is_empty() {
                    out.problems
                        .push(format!("line {}: empty frota block", block.line));
                }
                out.blocks.extend(current.take());
            } else if let Some(msg) = line.strip_prefix("> ") {
                block.steps.push((n, Step::Send(msg.trim().to_string())));
            } else if let Some(msg) = line.strip_prefix("< ") {
                block.steps.push((n, Step::Expect(msg.trim().to_string())));
            } else if !line.trim().is_empty() {
                out.problems.push(format!(
                    "line {n}: expected '> ' or '< ' in a frota block, found {line:?}"
                ));
            }
            continue;
        }
        if let Some(info) = line.strip_prefix("```") {
            let mut words = info.split_whitespace();
            if words.next() == Some("frota") {
                match words.next() {
                    Some(node) => {
                        current = Some(Block {
                            node: node.to_string(),
                            line: n,
                            steps: Vec::new(),
                        })
                    }
                    None => {
                        out.problems
                            .push(format!("line {n}: frota block without a node name"));
                        other_fence = Some(3);
                    }
                }
            } else {
                // Some other code block: skip it whole (it may contain
                // lines that look like fences or examples).
                other_fence = Some(3 + info.bytes().take_while(|b| *b == b'`').count());
            }
        }
    }
    if let Some(b) = current {
        out.problems
            .push(format!("line {}: frota block never closed", b.line));
    }
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// How closely a reply must match its example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// `type`, `in_reply_to` and `code` equal, the same keys, values of the
    /// same JSON type (an array's first element stands for the rest).
    Shape,
    /// [`Match::Shape`], and arrays have the example's length, every element
    /// compared (the examples show whole lists, e.g. the three terminals
    /// `alive` returns), and every object's keys come in the example's
    /// order (what `tests/protocol_doc.rs` uses).
    Whole,
    /// [`Match::Whole`], and every value is the example's, except those of
    /// the keys in [`VARIES`]: what a reader sees is what the page shows
    /// (what `tests/learn_doc.rs` uses for the course).
    Exact,
}

/// The values that differ from run to run, so [`Match::Exact`] compares
/// only their type: times, ages, heartbeat sequence numbers, the phi of a
/// detector, the backup log position a terminal's view was read at (it
/// lags the writes of other threads), and the `id` of a request a node
/// sends on its own (a callback's `car_ready`).
pub const VARIES: [&str; 7] = [
    "uptime_ms",
    "age_ms",
    "expires_in_ms",
    "seq",
    "phi",
    "lsn",
    "id",
];

/// Does `got` match the example `want`? `Err` says where it does not.
pub fn matches(want: &Value, got: &Value) -> Result<(), String> {
    matches_with(want, got, Match::Shape)
}

/// [`matches`] as closely as `how` says.
pub fn matches_with(want: &Value, got: &Value, how: Match) -> Result<(), String> {
    for field in ["type", "in_reply_to", "code"] {
        if want.get(field) != got.get(field) {
            return Err(format!(
                "'{field}' is {}, the example has {}",
                got.get(field).map_or("absent".into(), Value::to_string),
                want.get(field).map_or("absent".into(), Value::to_string)
            ));
        }
    }
    same_shape("", want, got, how)
}

/// `how` is [`Match::Shape`] below a key of [`VARIES`].
fn same_shape(path: &str, want: &Value, got: &Value, how: Match) -> Result<(), String> {
    let here = if path.is_empty() { "the message" } else { path };
    let strict = how != Match::Shape;
    if kind(want) != kind(got) {
        return Err(format!(
            "{here} is {}, the example has {}",
            kind(got),
            kind(want)
        ));
    }
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let missing: Vec<&String> = w.keys().filter(|k| !g.contains_key(*k)).collect();
            let extra: Vec<&String> = g.keys().filter(|k| !w.contains_key(*k)).collect();
            if !missing.is_empty() || !extra.is_empty() {
                return Err(format!(
                    "{here} has different keys: missing {missing:?}, not in the example {extra:?}"
                ));
            }
            if strict && !w.keys().eq(g.keys()) {
                // People read (and diff) the examples: the keys come in the
                // order shown, `type` and `in_reply_to` first.
                return Err(format!(
                    "{here} has its keys in another order: {:?}, the example {:?}",
                    g.keys().collect::<Vec<_>>(),
                    w.keys().collect::<Vec<_>>()
                ));
            }
            for (k, wv) in w {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let how = if VARIES.contains(&k.as_str()) {
                    Match::Shape
                } else {
                    how
                };
                same_shape(&sub, wv, &g[k], how)?;
            }
            Ok(())
        }
        (Value::Array(w), Value::Array(g)) if strict => {
            if w.len() != g.len() {
                return Err(format!(
                    "{here} has {} elements, the example {}",
                    g.len(),
                    w.len()
                ));
            }
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                same_shape(&format!("{path}[{i}]"), wv, gv, how)?;
            }
            Ok(())
        }
        (Value::Array(w), Value::Array(g)) => match (w.first(), g.first()) {
            (Some(wf), Some(gf)) => same_shape(&format!("{path}[0]"), wf, gf, how),
            (Some(_), None) => Err(format!("{here} is empty, the example is not")),
            _ => Ok(()),
        },
        _ if how == Match::Exact && want != got => {
            Err(format!("{here} is {got}, the example shows {want}"))
        }
        _ => Ok(()),
    }
}

/// The outcome of a replay.
#[derive(Debug, Default)]
pub struct Report {
    /// Messages received and matched.
    pub matched: usize,
    /// Blocks fully replayed without a failure.
    pub blocks_passed: usize,
    /// Readable failures, each naming its line in the document.
    pub failures: Vec<String>,
    /// Blocks not run because their node could not be resolved.
    pub skipped: Vec<String>,
}

/// Replay every example block of `doc` against the nodes `resolve` finds.
pub fn replay(
    doc: &str,
    resolve: impl Fn(&str) -> Option<SocketAddr>,
    timeout: Duration,
) -> Report {
    replay_with(doc, resolve, timeout, Match::Shape)
}

/// [`replay`], each reply matched as closely as `how` says.
pub fn replay_with(
    doc: &str,
    resolve: impl Fn(&str) -> Option<SocketAddr>,
    timeout: Duration,
    how: Match,
) -> Report {
    let parsed = parse(doc);
    let mut report = Report {
        failures: parsed.problems,
        ..Report::default()
    };
    for block in &parsed.blocks {
        let Some(addr) = resolve(&block.node) else {
            report.skipped.push(format!(
                "line {}: block for node '{}' skipped: no live node to run it against",
                block.line, block.node
            ));
            continue;
        };
        let before = report.failures.len();
        replay_block(block, addr, timeout, how, &mut report);
        if report.failures.len() == before {
            report.blocks_passed += 1;
        }
    }
    report
}

/// Replay one block of a document against its node: send each request
/// line, compare each reply with the expected one; a step that cannot go on
/// (no connection, no reply) ends the block.
fn replay_block(
    block: &Block,
    addr: SocketAddr,
    timeout: Duration,
    how: Match,
    report: &mut Report,
) {
    let fail = |n: usize, why: String| format!("line {n} ({} at {addr}): {why}", block.node);
    let mut conn = match connect(addr, timeout) {
        Ok(c) => c,
        Err(e) => {
            report
                .failures
                .push(fail(block.line, format!("cannot connect: {e}")));
            return;
        }
    };
    for (n, step) in &block.steps {
        let stop = match step {
            Step::Send(text) => send_line(&conn, text).err(),
            Step::Expect(text) => match check_reply(&mut conn, text, timeout, how) {
                Ok(None) => {
                    report.matched += 1;
                    None
                }
                // A reply that does not match: said, and the block goes on.
                Ok(Some(why)) => {
                    report.failures.push(fail(*n, why));
                    None
                }
                Err(why) => Some(why),
            },
        };
        if let Some(why) = stop {
            report.failures.push(fail(*n, why));
            return;
        }
    }
}

/// A connection to the node a block talks to, reads and writes bounded.
fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Connection> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    Connection::new(stream, DEFAULT_MAX_PAYLOAD)
}

/// A request as typed into netcat: one line. Err: why it was not sent.
fn send_line(conn: &Connection, text: &str) -> Result<(), String> {
    let mut line = text.to_string().into_bytes();
    line.push(b'\n');
    let mut s = conn.stream();
    s.write_all(&line).map_err(|e| format!("send failed: {e}"))
}

/// Read the reply an expected line stands for and compare them: Ok(None)
/// it matches, Ok(Some(why)) it does not, Err(why) the block cannot go on
/// (the example is not JSON, no reply came).
fn check_reply(
    conn: &mut Connection,
    text: &str,
    timeout: Duration,
    how: Match,
) -> Result<Option<String>, String> {
    let want: Value =
        serde_json::from_str(text).map_err(|e| format!("the example is not JSON: {e}"))?;
    let got = match conn.read_frame() {
        Ok(Some(f)) => f.payload,
        Ok(None) => return Err("the node closed the connection".into()),
        Err(ReadError::Timeout) => return Err(format!("no reply within {timeout:?}")),
        Err(e) => return Err(format!("reading the reply: {e}")),
    };
    let shown = String::from_utf8_lossy(&got).into_owned();
    Ok(match serde_json::from_slice::<Value>(&got) {
        Ok(v) => matches_with(&want, &v, how)
            .err()
            .map(|why| format!("{why}\n    expected {text}\n    received {shown}")),
        Err(e) => Some(format!("reply is not JSON ({e}): {shown}")),
    })
}

/// Compare the table under `## Errors` with [`Code::ALL`]: numbers, names
/// and the definite column. Returns readable mismatches (empty = agree).
pub fn check_error_table(doc: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let mut in_section = false;
    for (i, line) in doc.lines().enumerate() {
        if line.starts_with("## ") {
            in_section = line.trim() == "## Errors";
            continue;
        }
        if !in_section || !line.trim_start().starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let Some(Ok(number)) = cells.first().map(|c| c.parse::<u64>()) else {
            continue; // header or separator
        };
        if cells.len() < 3 {
            problems.push(format!(
                "line {}: error row has fewer than 3 columns",
                i + 1
            ));
            continue;
        }
        rows.push((i + 1, number, cells[1].to_string(), cells[2].to_string()));
    }
    if rows.is_empty() {
        problems.push("no error table found under '## Errors'".into());
        return problems;
    }
    for code in Code::ALL {
        let n = u64::from(code.number());
        let Some((line, _, name, definite)) = rows.iter().find(|r| r.1 == n) else {
            problems.push(format!(
                "code {n} ({}) is missing from the table",
                code.name()
            ));
            continue;
        };
        if name != code.name() {
            problems.push(format!(
                "line {line}: code {n} is named '{name}' in the doc, '{}' in the code",
                code.name()
            ));
        }
        let want = if code.definite() { "yes" } else { "no" };
        if definite != want {
            problems.push(format!(
                "line {line}: code {n} definite is '{definite}' in the doc, '{want}' in the code"
            ));
        }
    }
    for (line, n, name, _) in &rows {
        if Code::from_number(*n).is_none() {
            problems.push(format!(
                "line {line}: code {n} ({name}) is in the doc but not in the code"
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (line, n, _, _) in &rows {
        if !seen.insert(*n) {
            problems.push(format!("line {line}: code {n} appears twice"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::echo::Echo;
    use crate::runtime::server::{Server, ServerConfig};
    use serde_json::json;
    use std::sync::Arc;

    const DOC: &str = "# t\n\
```frota echo-1\n\
> {\"type\":\"ping\",\"id\":1}\n\
< {\"type\":\"ping_ok\",\"in_reply_to\":1,\"name\":\"x\",\"role\":\"echo\",\"uptime_ms\":1}\n\
```\n\
\n\
```text\n\
```frota not-a-block\n\
```\n\
```frota far-away\n\
> {\"type\":\"ping\"}\n\
\n\
< {\"type\":\"ping_ok\"}\n\
```\n";

    #[test]
    fn parser_finds_blocks_lines_and_skips_other_fences() {
        let p = parse(DOC);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.blocks.len(), 2);
        assert_eq!((p.blocks[0].node.as_str(), p.blocks[0].line), ("echo-1", 2));
        assert_eq!(
            p.blocks[0].steps[0],
            (3, Step::Send("{\"type\":\"ping\",\"id\":1}".into()))
        );
        assert!(matches!(p.blocks[0].steps[1], (4, Step::Expect(_))));
        assert_eq!(
            (p.blocks[1].node.as_str(), p.blocks[1].steps.len()),
            ("far-away", 2)
        );
        assert_eq!(p.blocks[1].steps[1].0, 13);
    }

    #[test]
    fn parser_reports_bad_blocks() {
        let p =
            parse("```frota\n```\n```frota n\nhello\n```\n```frota m\n```\n```frota open\n> {}\n");
        assert_eq!(p.problems.len(), 5, "{:?}", p.problems);
        assert!(p.problems[0].contains("without a node name"));
        assert!(p.problems[1].contains("line 4") && p.problems[1].contains("hello"));
        assert!(p.problems[2].starts_with("line 3: empty"));
        assert!(p.problems[3].starts_with("line 6: empty"));
        assert!(p.problems[4].contains("never closed"));
    }

    #[test]
    fn matcher_rules() {
        let want =
            json!({"type":"x_ok","in_reply_to":1,"n":5,"s":"a","o":{"k":[1]},"l":[{"a":1}],"e":[]});
        let ok = json!({"type":"x_ok","in_reply_to":1,"n":9.5,"s":"b","o":{"k":[2,3]},"l":[{"a":7},"y"],"e":[true]});
        assert_eq!(matches(&want, &ok), Ok(()));
        let bad = [
            (json!({"type":"y_ok","in_reply_to":1}), "'type'"),
            (json!({"type":"x_ok","in_reply_to":2}), "'in_reply_to'"),
            (
                json!({"type":"x_ok","in_reply_to":1,"n":5,"s":"a","o":{"k":[1]},"l":[{"a":1}]}),
                "missing [\"e\"]",
            ),
            (
                json!({"type":"x_ok","in_reply_to":1,"n":"5","s":"a","o":{"k":[1]},"l":[{"a":1}],"e":[]}),
                "n is string",
            ),
            (
                json!({"type":"x_ok","in_reply_to":1,"n":5,"s":"a","o":{"k":["1"]},"l":[{"a":1}],"e":[]}),
                "o.k[0] is string",
            ),
            (
                json!({"type":"x_ok","in_reply_to":1,"n":5,"s":"a","o":{"k":[1]},"l":[{"b":1}],"e":[]}),
                "l[0] has different keys",
            ),
            (
                json!({"type":"x_ok","in_reply_to":1,"n":5,"s":"a","o":{"k":[]},"l":[{"a":1}],"e":[]}),
                "o.k is empty",
            ),
            (
                json!({"type":"x_ok","in_reply_to":1,"n":5,"s":"a","o":{"k":[1]},"l":[{"a":1}],"e":[],"z":0}),
                "[\"z\"]",
            ),
        ];
        for (got, why) in bad {
            let e = matches(&want, &got).unwrap_err();
            assert!(e.contains(why), "{got}: {e}");
        }
        // Strict: whole arrays, same length.
        assert!(matches_with(&want, &ok, Match::Whole)
            .unwrap_err()
            .contains("o.k has 2 elements, the example 1"));
        let exact =
            json!({"type":"x_ok","in_reply_to":1,"n":2,"s":"b","o":{"k":[3]},"l":[{"a":7}],"e":[]});
        assert_eq!(matches_with(&want, &exact, Match::Whole), Ok(()));
        // Strict: the keys in the example's order, nested objects too.
        let swapped =
            json!({"in_reply_to":1,"type":"x_ok","n":2,"s":"b","o":{"k":[3]},"l":[{"a":7}],"e":[]});
        assert!(matches(&want, &swapped).is_ok());
        assert!(matches_with(&want, &swapped, Match::Whole)
            .unwrap_err()
            .contains("another order"));
        let w2 = json!({"type":"x_ok","o":{"a":1,"b":2}});
        let g2 = json!({"type":"x_ok","o":{"b":2,"a":1}});
        assert!(matches_with(&w2, &g2, Match::Whole)
            .unwrap_err()
            .starts_with("o has its keys in another order"));
        // Exact: every value, except those that vary from run to run.
        assert!(matches_with(&want, &exact, Match::Exact)
            .unwrap_err()
            .starts_with("n is 2, the example shows 5"));
        let w3 = json!({"type":"x_ok","nodes":[{"name":"t1","age_ms":40}],"lsn":8});
        let g3 = json!({"type":"x_ok","nodes":[{"name":"t1","age_ms":412}],"lsn":6});
        assert_eq!(matches_with(&w3, &g3, Match::Exact), Ok(()));
        let g4 = json!({"type":"x_ok","nodes":[{"name":"t2","age_ms":40}],"lsn":8});
        assert!(matches_with(&w3, &g4, Match::Exact)
            .unwrap_err()
            .starts_with("nodes[0].name is \"t2\""));
        let err = json!({"type":"error","code":10});
        assert!(matches(&err, &json!({"type":"error","code":12}))
            .unwrap_err()
            .contains("'code'"));
    }

    #[test]
    fn error_table_checks() {
        let mut good = String::from(
            "## Errors\n\n| code | name | definite | meaning |\n|---:|---|:---:|---|\n",
        );
        for c in Code::ALL {
            let d = if c.definite() { "yes" } else { "no" };
            good.push_str(&format!("| {} | {} | {d} | m |\n", c.number(), c.name()));
        }
        good.push_str("\n## Limits\n| 99 | x | yes |\n");
        assert_eq!(check_error_table(&good), Vec::<String>::new());
        let bad = good
            .replace("| 0 | timeout | no |", "| 0 | timeout | yes |")
            .replace("| 1 | node-not-found |", "| 1 | no-node |")
            .replace(
                "| 30 | conflict | yes | m |\n",
                "| 31 | conflict | yes | m |\n| 12 | malformed-request | yes | m |\n",
            );
        let p = check_error_table(&bad);
        assert_eq!(p.len(), 5, "{p:?}");
        assert!(p.iter().any(|x| x.contains("code 0 definite")));
        assert!(p.iter().any(|x| x.contains("'no-node'")));
        assert!(p
            .iter()
            .any(|x| x.contains("code 30 (conflict) is missing")));
        assert!(p.iter().any(|x| x.contains("code 31")));
        assert!(p.iter().any(|x| x.contains("appears twice")));
        assert_eq!(check_error_table("# nothing").len(), 1);
    }

    #[test]
    fn replay_against_a_live_echo_node() {
        let srv = Server::start(
            ServerConfig::default(),
            Arc::new(Echo::new("echo-1", "echo", false)),
        )
        .unwrap();
        let addr = srv.addr();
        let resolve = |n: &str| (n == "echo-1").then_some(addr);
        let r = replay(DOC, resolve, Duration::from_secs(5));
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert_eq!((r.matched, r.blocks_passed, r.skipped.len()), (1, 1, 1));
        assert!(r.skipped[0].contains("far-away"));
        // A drifted example is reported with its line and both messages.
        let drifted = DOC
            .replace("\"role\":\"echo\",", "")
            .replace("far-away", "echo-1");
        let r = replay(&drifted, resolve, Duration::from_secs(5));
        assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
        assert!(
            r.failures[0].starts_with("line 4 (echo-1") && r.failures[0].contains("[\"role\"]"),
            "{}",
            r.failures[0]
        );
        // The second block expects a reply to an id-less ping: ping_ok
        // without in_reply_to, but with more keys than the example.
        assert!(r.failures[1].starts_with("line 13"), "{}", r.failures[1]);
        srv.shutdown();
    }
}
