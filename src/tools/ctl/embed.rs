//! `frota-ctl trace-embed FILE...`: copy the generated diagrams of
//! docs/traces into the documents that show them, so a chapter of the
//! course never shows a diagram older than the code. `make traces` runs it
//! last, after the scenarios and the labs have rewritten docs/traces.
//!
//! A document marks where a diagram goes:
//!
//! ```text
//! <!-- trace:ev-commit.txt -->      the text ladder, in a ```text block
//! <!-- trace:ev-commit.md -->       the Mermaid diagram (the file as it is)
//! <!-- trace:ev-commit -->          the same as ev-commit.md
//! ...replaced...
//! <!-- /trace -->
//! ```
//!
//! Only the regions change; a region naming a file docs/traces does not have
//! is an error (a renamed scenario must not leave a stale copy behind).

use super::scenarios;
use crate::runtime::cli::{opt, Args};
use std::path::{Path, PathBuf};

/// The names of `doc`'s regions, in order.
pub fn regions(doc: &str) -> Vec<&str> {
    doc.split("<!-- trace:")
        .skip(1)
        .filter_map(|rest| rest.split_once(" -->").map(|(name, _)| name))
        .collect()
}

/// `doc` with every region filled from `dir`.
pub fn refresh(doc: &str, dir: &Path) -> Result<String, String> {
    let mut out = doc.to_string();
    for name in regions(doc) {
        let (file, text) = match name.strip_suffix(".txt") {
            Some(_) => (name.to_string(), true),
            None if name.ends_with(".md") => (name.to_string(), false),
            None => (format!("{name}.md"), false),
        };
        let path = dir.join(&file);
        let content = std::fs::read_to_string(&path)
            .map_err(|e| format!("region '{name}': {}: {e}", path.display()))?;
        let block = if text {
            format!("```text\n{content}```\n")
        } else {
            content
        };
        out = scenarios::fill_region(&out, name, &block)
            .ok_or_else(|| format!("region '{name}' has no <!-- /trace --> after it"))?;
    }
    Ok(out)
}

pub fn run(args: &[String]) -> i32 {
    let flags = [opt("dir", "docs/traces", "where the diagrams are")];
    let a = match Args::parse_sub_with_paths(
        "frota-ctl trace-embed",
        "`frota-ctl trace-embed [--dir DIR] FILE...` refreshes every region <!-- trace:NAME[.txt|.md] --> ... <!-- /trace --> of each FILE with DIR/NAME.txt (as a text block) or DIR/NAME.md",
        &flags,
        args,
    ) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let dir = PathBuf::from(a.string("dir"));
    let files: Vec<PathBuf> = a.positional.iter().map(PathBuf::from).collect();
    if files.is_empty() {
        return a.bad("name at least one file, e.g. docs/learn/*.md");
    }
    for f in &files {
        let done = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|doc| {
                let new = refresh(&doc, &dir)?;
                if new != doc {
                    std::fs::write(f, &new).map_err(|e| e.to_string())?;
                }
                Ok(regions(&doc).len())
            });
        match done {
            Ok(n) => println!("{}: {n} diagram(s) from {}", f.display(), dir.display()),
            Err(e) => {
                eprintln!("frota-ctl trace-embed: {}: {e}", f.display());
                return 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_filled_from_the_directory() {
        let dir = crate::runtime::launch::temp_dir("trace-embed");
        std::fs::write(dir.join("a.txt"), "ladder\n").unwrap();
        std::fs::write(dir.join("a.md"), "```mermaid\nx\n```\n").unwrap();
        let doc =
            "t\n<!-- trace:a.txt -->\nold\n<!-- /trace -->\n<!-- trace:a -->\n<!-- /trace -->\n";
        assert_eq!(regions(doc), ["a.txt", "a"]);
        let new = refresh(doc, &dir).unwrap();
        assert_eq!(
            new,
            "t\n<!-- trace:a.txt -->\n```text\nladder\n```\n<!-- /trace -->\n<!-- trace:a -->\n```mermaid\nx\n```\n<!-- /trace -->\n"
        );
        assert_eq!(refresh(&new, &dir).unwrap(), new, "idempotent");
        assert!(refresh("<!-- trace:gone.txt -->\n<!-- /trace -->\n", &dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
