//! protocol.md cannot drift from the code: its example conversations are
//! replayed against live nodes (src/ctl/doccheck.rs says how they match),
//! and its error table is compared with `Code::ALL`.
//!
//! Nodes are started on first use and kept for the rest of the document, so
//! the blocks of one system run in order against one deployment. A block
//! whose node this test cannot start yet is reported as skipped (on stderr),
//! never counted as passed.

use frota::ctl::doccheck;
use frota::launch::NodeProc;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Start what serves `node`, if this test knows how.
///
/// For now the built-in examples run against `frota-echo` named and roled
/// `heartbeat` (they only use ping and an unknown type, which every node
/// answers the same way). Integrator: map `heartbeat` to the real monitor
/// and add the rental (`infodesk`, `backup`, `terminal-N`) and EV
/// (`broker`, `company-X`) cluster launchers here.
fn launch(node: &str) -> Option<NodeProc> {
    let args: Vec<String> = match node {
        "heartbeat" => [
            "--listen",
            "127.0.0.1:0",
            "--name",
            "heartbeat",
            "--role",
            "heartbeat",
        ]
        .map(String::from)
        .to_vec(),
        _ => return None,
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_frota-echo"));
    Some(NodeProc::spawn(bin, &args, &[("RUST_LOG", "warn".into())], None).expect("node starts"))
}

/// The document with the Rental and EV sections blanked (same line
/// numbers): those sections are replayed against real deployments by
/// tests/rental_doc.rs and tests/ev_protocol_doc.rs, while the `heartbeat`
/// here is an echo node standing in for the built-in examples.
fn doc_without_systems() -> String {
    let text = doc();
    let mut out = Vec::new();
    let mut blank = false;
    for l in text.lines() {
        if l.starts_with("## ") {
            blank = l == "## Rental" || l == "## EV charging";
        }
        out.push(if blank { "" } else { l });
    }
    out.join("\n")
}

#[test]
fn examples_replay_against_live_nodes() {
    let doc = doc_without_systems();
    let nodes: RefCell<HashMap<String, Option<NodeProc>>> = RefCell::new(HashMap::new());
    let resolve = |name: &str| -> Option<SocketAddr> {
        let mut nodes = nodes.borrow_mut();
        let entry = nodes
            .entry(name.to_string())
            .or_insert_with(|| launch(name));
        entry.as_ref().map(NodeProc::tcp)
    };
    let report = doccheck::replay(&doc, resolve, Duration::from_secs(10));
    for s in &report.skipped {
        eprintln!("protocol.md SKIPPED {s}");
    }
    eprintln!(
        "protocol.md: {} blocks passed, {} messages matched, {} blocks skipped, {} failures",
        report.blocks_passed,
        report.matched,
        report.skipped.len(),
        report.failures.len()
    );
    assert!(
        report.failures.is_empty(),
        "protocol.md examples do not match the nodes:\n{}",
        report.failures.join("\n")
    );
    // The built-in examples (ping, unknown type) must really have run.
    assert!(
        report.blocks_passed >= 2 && report.matched >= 2,
        "{report:?}"
    );
}

#[test]
fn error_table_matches_the_code() {
    let problems = doccheck::check_error_table(&doc());
    assert!(
        problems.is_empty(),
        "protocol.md error table:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_block_is_well_formed() {
    let parsed = doccheck::parse(&doc());
    assert!(parsed.problems.is_empty(), "{}", parsed.problems.join("\n"));
    assert!(parsed.blocks.len() >= 2);
}
