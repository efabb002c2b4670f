//! `make help` is where a newcomer learns the targets: every target the
//! Makefile declares for people (its `.PHONY` lines) is listed there.
//! `make nc`, which the README tells readers to run, was not.

use std::path::Path;

#[test]
fn make_help_lists_every_target() {
    let makefile = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Makefile"))
        .expect("Makefile");
    // The help recipe: the lines after `help:` up to the first blank one.
    let help: String = makefile
        .lines()
        .skip_while(|l| *l != "help:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(help.contains("make run"), "no help recipe found:\n{help}");
    let words: Vec<&str> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .collect();
    let internal = ["help", "check-tools"];
    let mut missing = Vec::new();
    for line in makefile.lines().filter(|l| l.starts_with(".PHONY:")) {
        for target in line.trim_start_matches(".PHONY:").split_whitespace() {
            if !internal.contains(&target) && !words.contains(&target) {
                missing.push(target);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "targets `make help` does not list: {missing:?}"
    );
}
