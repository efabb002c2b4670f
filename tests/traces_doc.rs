//! The diagrams under docs/traces and in protocol.md are what the code does
//! now, and `make traces` is idempotent: re-run the teaching scenarios
//! (`frota-ctl trace-scenario`, real processes on 127.0.0.1:0, every node
//! traced) and compare byte for byte.
//!
//! Byte for byte holds because the merger draws a run in causal order and
//! orders what happens at the same time by a rule, not by arrival (see
//! `frota::tools::ctl::trace::merge_causal`): the votes of two participants, a
//! terminal's reply racing its sync thread, come out the same on every run.

use frota::tools::ctl::scenarios;
use std::path::{Path, PathBuf};
use std::process::Command;

const FIX: &str = "run `make traces` to regenerate docs/traces and protocol.md's diagrams";

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e} — {FIX}", p.display()))
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

/// A fresh run writes exactly the committed files: `make traces` twice in
/// a row leaves `git status` clean. The run is `make traces`'s own command
/// (`--protocol` too, on a copy of protocol.md), so the document's
/// diagrams are checked as regenerated, not only as compared.
#[test]
fn a_fresh_run_writes_the_committed_diagrams_byte_for_byte() {
    let out = frota::runtime::launch::temp_dir("traces-doc");
    let protocol = out.join("protocol.md");
    let committed_protocol = read(&manifest().join("protocol.md"));
    std::fs::write(&protocol, &committed_protocol).expect("temp dir is writable");
    for system in ["rental", "ev"] {
        let st = Command::new(env!("CARGO_BIN_EXE_frota-ctl"))
            .args(["trace-scenario", system, "--out"])
            .arg(&out)
            .arg("--protocol")
            .arg(&protocol)
            .env("RUST_LOG", "warn")
            .status()
            .expect("frota-ctl runs");
        assert!(st.success(), "frota-ctl trace-scenario {system} failed");
    }
    let committed = scenarios::doc_dir(&manifest());
    let mut problems = Vec::new();
    for name in names() {
        for ext in ["txt", "md"] {
            let fresh = read(&out.join(format!("{name}.{ext}")));
            let old = read(&committed.join(format!("{name}.{ext}")));
            assert!(
                fresh.lines().count() > 4,
                "{name}.{ext}: almost empty:\n{fresh}"
            );
            if fresh != old {
                problems.push(format!(
                    "docs/traces/{name}.{ext} differs from a fresh run:\n--- committed\n{old}--- now\n{fresh}"
                ));
            }
        }
    }
    if read(&protocol) != committed_protocol {
        problems.push("protocol.md: a fresh run rewrites its diagrams".to_string());
    }
    assert!(problems.is_empty(), "{}\n{FIX}", problems.join("\n"));
    let _ = std::fs::remove_dir_all(&out);
}
