//! protocol.md cannot drift from the code: its example conversations are
//! replayed against live nodes (src/tools/ctl/doccheck.rs says how they match),
//! and its error table is compared with `Code::ALL`.
//!
//! Every block runs: rental blocks (and the built-in ones, which name the
//! rental `heartbeat` monitor) against one fresh `RentalCluster`, EV blocks
//! against one fresh `EvCluster`, in document order. A block naming a node
//! this test cannot start fails the test.

mod support;

use frota::tools::ctl::doccheck;
use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;
use support::docs::Deployments;

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn examples_replay_against_live_nodes() {
    let doc = doc();
    let nodes = RefCell::new(Deployments::new("protocol-doc"));
    let resolve = |name: &str| nodes.borrow_mut().resolve(name);
    // Strict: lists in replies have the example's length (the examples show
    // whole lists, e.g. the three live terminals).
    let report = doccheck::replay_with(
        &doc,
        resolve,
        Duration::from_secs(10),
        doccheck::Match::Whole,
    );
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
    assert!(
        report.skipped.is_empty(),
        "protocol.md blocks for nodes this test cannot start (every block must run):\n{}",
        report.skipped.join("\n")
    );
    // Every block ran and passed: the count is the document's own.
    let blocks = doccheck::parse(&doc).blocks.len();
    assert_eq!(report.blocks_passed, blocks, "{report:?}");
    assert!(blocks >= 10 && report.matched >= 50, "{report:?}");
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
