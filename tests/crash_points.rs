//! The crash points named in the code, the lists each node's `help` shows,
//! and protocol.md's "Crash points" section are one and the same set.

mod support;

use frota::runtime::client::{call, ClientConfig};
use frota::runtime::launch::temp_dir;
use frota::tools::ev::cluster::{EvCluster, EvOptions};
use frota::tools::rental::cluster::RentalCluster;
use frota::Body;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// Every `crash::point("...")` literal under `src/`.
fn points_in_code() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for (i, _) in text.match_indices("crash::point(\"") {
                    let rest = &text[i + "crash::point(\"".len()..];
                    let end = rest.find('"').unwrap();
                    out.insert(rest[..end].to_string());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

/// Backticked names in the table rows of protocol.md's `## Crash points`.
fn points_in_doc() -> BTreeSet<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol.md")).unwrap();
    let start = doc
        .find("\n## Crash points\n")
        .expect("a '## Crash points' section");
    let section = &doc[start + 1..];
    let end = section[3..]
        .find("\n## ")
        .map(|e| e + 3)
        .unwrap_or(section.len());
    section[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect()
}

fn help_points(addr: &str) -> Vec<String> {
    let help = call(addr, "help", Body::new(), &ClientConfig::default()).unwrap();
    help["crash_points"]
        .as_array()
        .expect("help has a crash_points array")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn code_help_and_doc_list_the_same_points() {
    let backup = strings(&frota::rental::backup::CRASH_POINTS);
    let terminal = strings(&frota::rental::terminal::CRASH_POINTS);
    let company = strings(&frota::ev::company::crash_points());
    let mut consts = BTreeSet::new();
    for p in backup.iter().chain(&terminal).chain(&company) {
        assert!(consts.insert(p.clone()), "{p} listed twice");
    }
    let code = points_in_code();
    assert!(
        code.len() >= 40,
        "suspiciously few points in the code: {code:?}"
    );
    assert_eq!(consts, code, "const lists vs crash::point calls in src/");
    assert_eq!(
        points_in_doc(),
        code,
        "protocol.md '## Crash points' vs code"
    );

    // Each running node's help shows exactly its list.
    let dir = temp_dir("crash-points");
    let rental = RentalCluster::start(support::rental::bins(), &dir.join("rental")).unwrap();
    assert_eq!(help_points(&rental.addr("backup").to_string()), backup);
    for t in ["terminal-1", "terminal-2", "terminal-3"] {
        assert_eq!(help_points(&rental.addr(t).to_string()), terminal, "{t}");
    }
    for n in ["heartbeat", "infodesk"] {
        assert!(help_points(&rental.addr(n).to_string()).is_empty(), "{n}");
    }
    let ev = EvCluster::start(support::ev::bins(), EvOptions::new(&dir.join("ev"))).unwrap();
    assert!(help_points(&ev.addr("broker").to_string()).is_empty());
    for c in ["company-A", "company-B", "company-C"] {
        assert_eq!(help_points(&ev.addr(c).to_string()), company, "{c}");
    }
    // status keeps listing them too (with where each one is).
    let st = call(
        &ev.addr("company-A").to_string(),
        "status",
        Body::new(),
        &ClientConfig::default(),
    )
    .unwrap();
    assert_eq!(
        st["crash_points"].as_array().map(Vec::len),
        Some(company.len())
    );
    let _: Value = st["crash_points"][0]["where"].clone();
}
