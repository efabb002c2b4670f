//! The course (docs/learn) cannot rot: its chapters exist in the reading
//! order README.md states, every file it cites exists, every function it
//! cites is defined where it says, every diagram it links is generated, and
//! the sessions it asks the reader to type are replayed against live nodes.
//!
//! - Paths: every `src/…`, `tests/…`, `benches/…`, `bin/…`, `docs/…`,
//!   `scripts/…` and `examples/…` path in the text, and every relative
//!   link, must exist (so a moved file fails here, not in a reader's hands).
//! - Functions: a backticked name ending in `()` (`read_frame()`,
//!   `Connection::read_frame()`) must be a `fn` in a Rust file the same
//!   paragraph cites (any file under src/ when the paragraph cites none),
//!   and a `Type::` prefix must be a type or impl in that file.
//! - Diagrams: a ladder or Mermaid diagram shown in a chapter (a ```` ```text ````
//!   block of `step` lines, a ```` ```mermaid ```` block) is a generated one,
//!   verbatim: the whole of one docs/traces file, which `make traces`
//!   regenerates (and copies into the chapters' `<!-- trace:NAME -->`
//!   regions) and tests/traces_doc.rs and tests/labs.rs keep current.
//! - Sessions: ```` ```frota <node> ```` blocks, the notation protocol.md
//!   uses, replayed in reading order (src/tools/ctl/doccheck.rs says how a reply
//!   matches), the rental chapters against one fresh rental deployment and
//!   the EV chapters against one fresh EV deployment, as a reader who ran
//!   `make down clean-logs up` once and reads on. Every value of a reply
//!   is compared (doccheck::Match::Exact), except those that vary from run
//!   to run (times, ages, sequence numbers, a view's log position), and a
//!   node's default address stands for the test's.

mod support;

use frota::tools::ctl::doccheck;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::docs::Deployments;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The chapters, in the order docs/learn/README.md lists them (its
/// numbered list of links), with their text.
fn chapters() -> Vec<(String, String)> {
    let dir = root().join("docs/learn");
    let readme = read(&dir.join("README.md"));
    let mut out = Vec::new();
    for line in readme.lines() {
        let t = line.trim_start();
        let numbered = t
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !numbered {
            continue;
        }
        let Some(file) = t
            .split_once("](")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(f, _)| f.to_string())
        else {
            continue;
        };
        let text = read(&dir.join(&file));
        out.push((file, text));
    }
    out
}

/// Every markdown file of the course: the README, the chapters, and the
/// other pages it links (design decisions).
fn pages() -> Vec<(String, String)> {
    let dir = root().join("docs/learn");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("docs/learn")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let text = read(&dir.join(&n));
            (n, text)
        })
        .collect()
}

const ROOTS: [&str; 7] = [
    "src/",
    "tests/",
    "benches/",
    "bin/",
    "docs/",
    "scripts/",
    "examples/",
];

fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// The repository paths a text cites (a path ends at the first character
/// that cannot be in one; a trailing `.` is the sentence's).
fn cited_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.char_indices() {
        let rest = &text[i..];
        let before = text[..i].chars().next_back();
        if before.is_some_and(path_char) {
            continue;
        }
        if !ROOTS.iter().any(|r| rest.starts_with(r)) {
            continue;
        }
        let end = rest.find(|c: char| !path_char(c)).unwrap_or(rest.len());
        let p = rest[..end].trim_end_matches('.');
        // A pattern (`docs/traces/<name>.md`, `src/…`) is not a path.
        if matches!(rest[end..].chars().next(), Some('<' | '*' | '{' | '…')) {
            continue;
        }
        out.push(p.to_string());
    }
    out
}

/// Relative links `](target)` (not web addresses or anchors).
fn links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|s| s.split_once(')').map(|(t, _)| t))
        .map(|t| t.split('#').next().unwrap_or("").to_string())
        .filter(|t| !t.is_empty() && !t.contains("://"))
        .collect()
}

/// Backticked spans of a paragraph.
fn spans(text: &str) -> Vec<&str> {
    text.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect()
}

/// `Type::name()` → (Some("Type"), "name"); `name()` → (None, "name").
fn function(span: &str) -> Option<(Option<&str>, &str)> {
    let path = span.strip_suffix("()")?;
    let ident = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    let segs: Vec<&str> = path.split("::").collect();
    if !segs.iter().all(|s| ident(s)) {
        return None;
    }
    let name = *segs.last()?;
    let ty = segs
        .len()
        .checked_sub(2)
        .map(|i| segs[i])
        .filter(|s| s.starts_with(|c: char| c.is_ascii_uppercase()));
    Some((ty, name))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn defines_fn(src: &str, name: &str) -> bool {
    [format!("fn {name}("), format!("fn {name}<")]
        .iter()
        .any(|d| src.contains(d.as_str()))
}

fn defines_type(src: &str, ty: &str) -> bool {
    src.lines().any(|l| {
        let l = l.trim_start();
        ["struct ", "enum ", "trait ", "type ", "impl "]
            .iter()
            .any(|k| l.contains(k))
            && l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == ty)
    })
}

#[test]
fn the_reading_order_has_the_six_chapters() {
    let chapters = chapters();
    let names: Vec<&str> = chapters.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        chapters.len(),
        6,
        "docs/learn/README.md lists {names:?} in its reading order"
    );
    for (name, text) in &chapters {
        assert!(
            text.contains("../traces/"),
            "{name}: every chapter shows a generated diagram from docs/traces"
        );
        assert!(
            text.contains("```frota ") || text.contains("```sh"),
            "{name}: every chapter has a session the reader can type"
        );
    }
    let readme = read(&root().join("README.md"));
    assert!(
        readme.contains("docs/learn/README.md"),
        "README.md points to the course"
    );
}

#[test]
fn every_cited_file_and_function_exists() {
    let root = root();
    let mut all = Vec::new();
    rust_files(&root.join("src"), &mut all);
    rust_files(&root.join("bin"), &mut all);
    let sources: Vec<(PathBuf, String)> = all.into_iter().map(|p| (p.clone(), read(&p))).collect();
    let mut problems = Vec::new();
    let mut functions = 0;
    for (page, text) in pages() {
        for p in cited_paths(&text) {
            if !root.join(&p).exists() {
                problems.push(format!(
                    "docs/learn/{page}: cites {p}, which does not exist"
                ));
            }
        }
        for l in links(&text) {
            if !root.join("docs/learn").join(&l).exists() {
                problems.push(format!(
                    "docs/learn/{page}: links {l}, which does not exist"
                ));
            }
        }
        // Fenced blocks are sessions and output, not citations.
        let mut prose = String::new();
        let mut fenced = false;
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                continue;
            }
            if !fenced {
                prose.push_str(line);
                prose.push('\n');
            }
        }
        for para in prose.split("\n\n") {
            let files: Vec<&(PathBuf, String)> = cited_paths(para)
                .iter()
                .filter(|p| p.ends_with(".rs"))
                .filter_map(|p| sources.iter().find(|(f, _)| *f == root.join(p)))
                .collect();
            let scope: Vec<&(PathBuf, String)> = if files.is_empty() {
                sources.iter().collect()
            } else {
                files
            };
            for span in spans(para) {
                let Some((ty, name)) = function(span) else {
                    continue;
                };
                functions += 1;
                let found = scope.iter().any(|(_, src)| {
                    defines_fn(src, name) && ty.is_none_or(|t| defines_type(src, t))
                });
                if !found {
                    let wher = if scope.len() == sources.len() {
                        "anywhere under src/ or bin/".to_string()
                    } else {
                        scope
                            .iter()
                            .map(|(p, _)| p.strip_prefix(&root).unwrap_or(p).display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    problems.push(format!(
                        "docs/learn/{page}: `{span}` is not defined in {wher}"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(functions >= 20, "only {functions} functions cited");
}

/// Fenced blocks: (info string, body).
fn fenced(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.lines() {
        match (cur.as_mut(), line.strip_prefix("```")) {
            (None, Some(info)) => cur = Some((info.trim().to_string(), String::new())),
            (Some(_), Some(_)) => out.extend(cur.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

#[test]
fn every_diagram_shown_is_a_generated_one() {
    let dir = root().join("docs/traces");
    let generated: Vec<String> = std::fs::read_dir(&dir)
        .expect("docs/traces")
        .filter_map(|e| e.ok())
        .map(|e| read(&e.path()))
        .collect();
    let mut shown = 0;
    let mut problems = Vec::new();
    for (page, text) in pages() {
        for (info, body) in fenced(&text) {
            let whole = match info.as_str() {
                "mermaid" => format!("```mermaid\n{body}```\n"),
                "text" if body.lines().any(|l| l.trim_start().starts_with("step ")) => body.clone(),
                _ => continue,
            };
            shown += 1;
            if !generated.contains(&whole) {
                problems.push(format!(
                    "docs/learn/{page}: a {info} diagram that is not (or no longer) a file of docs/traces — put it in a <!-- trace:NAME --> region and run `make traces`:\n{body}"
                ));
            }
        }
    }
    for (page, text) in pages() {
        match frota::tools::ctl::embed::refresh(&text, &dir) {
            Ok(now) if now == text => {}
            Ok(_) => problems.push(format!(
                "docs/learn/{page}: its diagrams are older than docs/traces — run `make traces`"
            )),
            Err(e) => problems.push(format!("docs/learn/{page}: {e}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(shown >= 6, "only {shown} diagrams shown");
}

/// Every node with its default address, the one a reader's `make up`
/// gives it and the sessions show (`alive` lists the terminals').
fn default_addresses() -> Vec<(String, String)> {
    use frota::runtime::config::addr;
    let mut v = vec![
        ("heartbeat".to_string(), addr::HEARTBEAT.to_string()),
        ("infodesk".to_string(), addr::INFODESK.to_string()),
        ("backup".to_string(), addr::BACKUP.to_string()),
        ("broker".to_string(), addr::BROKER.to_string()),
    ];
    v.extend((1..=3).map(|i| (format!("terminal-{i}"), addr::terminal(i))));
    v.extend(
        addr::COMPANIES
            .iter()
            .map(|(c, a)| (format!("company-{c}"), a.to_string())),
    );
    v
}

#[test]
fn the_sessions_replay_against_live_nodes() {
    let nodes = RefCell::new(Deployments::as_make_up("learn-doc"));
    let mut failures = Vec::new();
    let (mut blocks, mut written) = (0, 0);
    let readme = read(&root().join("docs/learn/README.md"));
    let course = std::iter::once(("README.md".to_string(), readme)).chain(chapters());
    for (name, text) in course {
        let resolve = |node: &str| nodes.borrow_mut().resolve(node);
        // The test's nodes listen on free ports: where a page shows a
        // node's default address, the reply carries the test's, and every
        // other value must be what the page shows (doccheck::Match::Exact).
        let mut text = text;
        for (node, default) in default_addresses() {
            if text.contains(&default) {
                let here = resolve(&node).expect("every node of the course starts");
                text = text.replace(&default, &here.to_string());
            }
        }
        written += doccheck::parse(&text).blocks.len();
        let report = doccheck::replay_with(
            &text,
            resolve,
            Duration::from_secs(10),
            doccheck::Match::Exact,
        );
        blocks += report.blocks_passed;
        failures.extend(report.failures.iter().map(|f| format!("{name}: {f}")));
        failures.extend(report.skipped.iter().map(|f| format!("{name}: {f}")));
    }
    assert!(
        failures.is_empty(),
        "docs/learn sessions do not match the nodes:\n{}",
        failures.join("\n")
    );
    assert_eq!(blocks, written, "every session of the course replays");
    assert!(blocks >= 10, "only {blocks} sessions replayed");
}
