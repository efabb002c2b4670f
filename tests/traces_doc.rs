//! The diagrams under docs/traces and in protocol.md are what the code does
//! now: re-run the teaching scenarios (`frota-ctl trace-scenario`, real
//! processes on 127.0.0.1:0, every node traced) and compare.
//!
//! The step numbers and message ids are left out of the comparison and the
//! arrows compared as a multiset: messages that run in parallel (a
//! coordinator's commits to two participants, a terminal's reply racing its
//! sync thread) may swap places between runs (and so their ids, numbered in
//! order of appearance). Every arrow — who sends what to whom, with its
//! class, car, status, outcome, txn and error code — must be the same.

use frota::ctl::scenarios::{self, arrows_of_text};
use std::path::{Path, PathBuf};
use std::process::Command;

const FIX: &str = "run `make traces` to regenerate docs/traces and protocol.md's diagrams";

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e} — {FIX}", p.display()))
}

/// The arrows of a Mermaid diagram with participant ids resolved to
/// names and message ids left out, sorted:
/// `client-A->>terminal-1: rent class=economy`.
fn arrows_of_mermaid(md: &str) -> Vec<String> {
    let mut names = std::collections::HashMap::new();
    let mut arrows = Vec::new();
    for l in md.lines().map(str::trim) {
        if let Some(p) = l.strip_prefix("participant ") {
            if let Some((id, name)) = p.split_once(" as ") {
                names.insert(id.to_string(), name.to_string());
            }
        } else if l.starts_with("Note over ") {
            arrows.push(l.to_string());
        } else if let Some((head, label)) = l.split_once(": ") {
            let arrow = if head.contains("-->>") { "-->>" } else { "->>" };
            if let Some((a, b)) = head.split_once(arrow) {
                let n = |x: &str| names.get(x).cloned().unwrap_or_else(|| x.to_string());
                // Without the message ids: they are numbered in order of
                // appearance, so two parallel calls that swap places also
                // swap numbers.
                let label: Vec<&str> = label
                    .split_whitespace()
                    .filter(|t| !t.starts_with('↩') && !t.bytes().all(|b| b.is_ascii_digit()))
                    .collect();
                arrows.push(format!("{}{arrow}{}: {}", n(a), n(b), label.join(" ")));
            }
        }
    }
    arrows.sort();
    arrows
}

fn header_names(txt: &str) -> Vec<String> {
    let mut v: Vec<String> = txt
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn names() -> Vec<&'static str> {
    scenarios::RENTAL
        .iter()
        .chain(scenarios::EV.iter())
        .map(|s| s.0)
        .collect()
}

#[test]
fn protocol_md_regions_are_the_committed_diagrams() {
    let doc = read(&manifest().join("protocol.md"));
    let dir = scenarios::doc_dir(&manifest());
    for name in names() {
        let region = scenarios::region(&doc, name).unwrap_or_else(|| {
            panic!("protocol.md has no region <!-- trace:{name} --> ... <!-- /trace -->")
        });
        let md = read(&dir.join(format!("{name}.md")));
        assert!(
            md.starts_with("```mermaid\nsequenceDiagram\n") && md.lines().count() > 4,
            "docs/traces/{name}.md is not a diagram — {FIX}"
        );
        assert_eq!(
            region, md,
            "protocol.md's diagram {name} differs from docs/traces/{name}.md — {FIX}"
        );
    }
}

#[test]
fn committed_diagrams_match_a_fresh_run() {
    let out = frota::launch::temp_dir("traces-doc");
    for system in ["rental", "ev"] {
        let st = Command::new(env!("CARGO_BIN_EXE_frota-ctl"))
            .args(["trace-scenario", system, "--out"])
            .arg(&out)
            .env("RUST_LOG", "warn")
            .status()
            .expect("frota-ctl runs");
        assert!(st.success(), "frota-ctl trace-scenario {system} failed");
    }
    let committed = scenarios::doc_dir(&manifest());
    let mut problems = Vec::new();
    for name in names() {
        let fresh = read(&out.join(format!("{name}.txt")));
        let old = read(&committed.join(format!("{name}.txt")));
        let (f, o) = (arrows_of_text(&fresh), arrows_of_text(&old));
        assert!(f.len() >= 4, "{name}: only {} arrows:\n{fresh}", f.len());
        // Columns are placed in order of first appearance, so compare the
        // ladder's shape loosely here and its arrows exactly below.
        if f.len() != o.len() || header_names(&fresh) != header_names(&old) {
            problems.push(format!(
                "docs/traces/{name}.txt no longer matches a run:\n--- committed\n{old}--- now\n{fresh}"
            ));
        }
        let fresh_md = read(&out.join(format!("{name}.md")));
        let old_md = read(&committed.join(format!("{name}.md")));
        let (fm, om) = (arrows_of_mermaid(&fresh_md), arrows_of_mermaid(&old_md));
        assert!(
            fm.len() >= 4,
            "{name}: only {} arrows:\n{fresh_md}",
            fm.len()
        );
        if fm != om {
            problems.push(format!(
                "docs/traces/{name}.md no longer matches a run:\n--- committed\n{old_md}--- now\n{fresh_md}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}\n{FIX}", problems.join("\n"));
    let _ = std::fs::remove_dir_all(&out);
}
