//! The layers of `src/lib.rs`'s map hold: every path a source file names
//! (`crate::…`, or `super::…` climbing out of its folder) stays in its own
//! layer or one above it. So the wire stands on nothing but the lock, the
//! runtime never reaches into MQTT, the systems or the tools, the two
//! systems never import each other, and only the tools import the systems.
//!
//! A scan of the source text, not of the compiler's view: comments are
//! skipped, everything else counts (a forbidden path in a test module is as
//! much a dependency as one in a `use`).

use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and what it may name, in the map's order.
/// `sync` (the one poison-recovering lock) is beneath every layer and stands
/// on nothing of frota's.
const LAYERS: &[(&str, &[&str])] = &[
    ("sync", &[]),
    ("wire", &["sync"]),
    ("runtime", &["sync", "wire"]),
    ("mqtt", &["sync", "wire", "runtime"]),
    ("rental", &["sync", "wire", "runtime", "mqtt"]),
    ("ev", &["sync", "wire", "runtime", "mqtt"]),
    (
        "tools",
        &["sync", "wire", "runtime", "mqtt", "rental", "ev"],
    ),
];

/// Names `lib.rs` re-exports at the crate root, and the layer they live in.
const ROOT_REEXPORTS: &[(&str, &str)] = &[
    ("Code", "wire"),
    ("Error", "wire"),
    ("body", "wire"),
    ("Body", "wire"),
    ("Request", "wire"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/`: `src/ev/broker/mod.rs` is
/// `["ev", "broker"]`, `src/ev/points.rs` is `["ev", "points"]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut m: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if m.last().is_some_and(|l| l == "mod") {
        m.pop();
    }
    m
}

/// The code of a line, without its `//` comment (doc comments included).
/// A `//` inside a string (`"mqtt://…"`) ends the scan early, which only
/// ever hides text, never invents a path.
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The top-level module each path in `text` starts from: `crate::X` gives
/// X; a `super::` chain that climbs to the crate root gives the name after
/// it. `module` is the file's module path.
fn named_layers(text: &str, module: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + "crate::".len()..];
        rest = after;
        if before.is_some_and(|c| is_ident(c) || c == '$') {
            continue;
        }
        let name: String = after.chars().take_while(|c| is_ident(*c)).collect();
        if !name.is_empty() {
            found.push(name);
        } else if let Some(group) = after.strip_prefix('{') {
            // `crate::{a::x, b::y}`: every top-level name in the group.
            let group = group.split('}').next().unwrap_or("");
            for part in group.split(',') {
                let name: String = part.trim().chars().take_while(|c| is_ident(*c)).collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        }
    }
    // `super::super::…` from `rental::monitor` climbs out of `rental` after
    // two steps. (Inside an inline `mod tests` a chain reaches one step
    // less far than counted here, so this can only over-report a path
    // that names a layer, never miss one.)
    let mut rest = text;
    while let Some(at) = rest.find("super::") {
        let before = rest[..at].chars().next_back();
        let mut tail = &rest[at..];
        let mut steps = 0;
        while let Some(t) = tail.strip_prefix("super::") {
            steps += 1;
            tail = t;
        }
        rest = tail;
        if before.is_some_and(is_ident) || steps < module.len() {
            continue;
        }
        let name: String = tail.chars().take_while(|c| is_ident(*c)).collect();
        if LAYERS.iter().any(|(l, _)| *l == name) {
            found.push(name);
        }
    }
    found
}

/// Every forbidden path in `src/`, as `file:line: names X`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut bad = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        if rel == Path::new("lib.rs") {
            continue;
        }
        let module = module_path(rel);
        let layer = module[0].as_str();
        let Some((_, allowed)) = LAYERS.iter().find(|(l, _)| *l == layer) else {
            bad.push(format!(
                "src/{}: a module outside the layers of lib.rs's map",
                rel.display()
            ));
            continue;
        };
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for name in named_layers(code(line), &module) {
                let target = ROOT_REEXPORTS
                    .iter()
                    .find(|(r, _)| *r == name)
                    .map_or(name.as_str(), |(_, l)| l);
                if target == layer || allowed.contains(&target) {
                    continue;
                }
                let why = if LAYERS.iter().any(|(l, _)| *l == target) {
                    format!("{layer} may not import {target}")
                } else {
                    format!("crate::{name} is in no layer")
                };
                bad.push(format!("src/{}:{}: {why}", rel.display(), n + 1));
            }
        }
    }
    bad
}

#[test]
fn no_layer_imports_one_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "imports against the layers of src/lib.rs's map:\n  {}",
        bad.join("\n  ")
    );
}

/// The scanner itself: it sees the forms a forbidden path takes.
#[test]
fn the_scan_sees_each_form_of_path() {
    let m = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    let rental = m("rental::monitor");
    assert_eq!(named_layers("use crate::ev::points;", &rental), ["ev"]);
    assert_eq!(
        named_layers("use crate::{wire::frame, tools::x};", &rental),
        ["wire", "tools"]
    );
    assert_eq!(
        named_layers("let x = crate::tools::y();", &rental),
        ["tools"]
    );
    assert_eq!(named_layers("super::super::ev::points", &rental), ["ev"]);
    assert!(named_layers("super::peers::now_ms()", &rental).is_empty());
    assert!(named_layers("use super::super::peers;", &m("rental::a::b")).is_empty());
    assert!(named_layers("$crate::x", &rental).is_empty());
    assert_eq!(code("use crate::a; // crate::b"), "use crate::a; ");
    assert!(named_layers(code("//! see [`crate::tools`]"), &rental).is_empty());
}

/// Every default address is written once, in `src/runtime/config.rs`
/// (`addr`): the nodes, the launchers, the demos and the audits take it
/// from there, so `--help`, `make up` and the tools cannot disagree on a
/// port. The audits' flags and frota-echo each wrote their own copy.
#[test]
fn default_addresses_are_written_once() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut copies = Vec::new();
    for f in &files {
        if f.ends_with("src/runtime/config.rs") {
            continue;
        }
        let text = fs::read_to_string(f).unwrap_or_default();
        // Tests may name a default address as the value they expect.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            // An example in a hint ("e.g. 127.0.0.1:7001") or a message
            // example in a node's help (`{"type":...`) is no default.
            let line = self::code(line);
            let default_port = !line.contains("e.g.")
                && !line.contains(r#"{"type":"#)
                && line.split("127.0.0.1:").skip(1).any(|rest| {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    port == "1883" || (port.len() == 4 && port.starts_with('7'))
                });
            if default_port {
                copies.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        copies.is_empty(),
        "default addresses written outside src/runtime/config.rs (use config::addr):\n{}",
        copies.join("\n")
    );
}
