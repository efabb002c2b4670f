//! What a person meets on the command line: exit statuses that mean
//! something, and errors that say what was wrong and what to do next.
//!
//! - `frota-ctl`: 0 `<type>_ok`, 1 the node answered `error`, 2 bad command
//!   line, 3 cannot connect (with a hint to `make status`), 4 no reply.
//! - every binary: a bad flag is one line naming it and one line pointing at
//!   `--help` (not the whole usage), exit 2; `--help` exits 0 and mentions
//!   `RUST_LOG` and `FROTA_TRACE`.

use frota::launch::NodeProc;
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::thread;

const BINS: [(&str, &str); 10] = [
    ("frota-backup", env!("CARGO_BIN_EXE_frota-backup")),
    ("frota-broker", env!("CARGO_BIN_EXE_frota-broker")),
    ("frota-client", env!("CARGO_BIN_EXE_frota-client")),
    ("frota-company", env!("CARGO_BIN_EXE_frota-company")),
    ("frota-ctl", env!("CARGO_BIN_EXE_frota-ctl")),
    ("frota-echo", env!("CARGO_BIN_EXE_frota-echo")),
    ("frota-heartbeat", env!("CARGO_BIN_EXE_frota-heartbeat")),
    ("frota-infodesk", env!("CARGO_BIN_EXE_frota-infodesk")),
    ("frota-terminal", env!("CARGO_BIN_EXE_frota-terminal")),
    ("frota-vehicle", env!("CARGO_BIN_EXE_frota-vehicle")),
];

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ctl(args: &[&str]) -> (i32, String, String) {
    let out = run(env!("CARGO_BIN_EXE_frota-ctl"), args);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// A port nobody listens on (bound, then released).
fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    drop(l);
    a
}

#[test]
fn frota_ctl_exit_statuses() {
    let echo = NodeProc::spawn(
        Path::new(env!("CARGO_BIN_EXE_frota-echo")),
        &["--listen".into(), "127.0.0.1:0".into()],
        &[("RUST_LOG", "warn".into())],
        None,
    )
    .expect("frota-echo starts");
    let addr = echo.tcp().to_string();

    let (code, out, _) = ctl(&[&addr, r#"{"type":"ping"}"#]);
    assert_eq!(code, 0, "ping_ok: {out}");
    assert!(out.contains("ping_ok"), "{out}");

    // The node answered, with an error: printed, and exit 1.
    let (code, out, _) = ctl(&[&addr, r#"{"type":"nonsense","id":3}"#]);
    assert_eq!(code, 1, "an error reply exits 1: {out}");
    assert!(out.contains("not-supported"), "{out}");

    // Bad command lines: exit 2, say what was wrong in one line, then a
    // one-line pointer to --help (not the usage).
    for (args, says) in [
        (vec!["--bogus"], "unknown option '--bogus'"),
        (vec![addr.as_str()], "missing the message"),
        (vec![addr.as_str(), "{nope"], "not JSON"),
        (vec!["chaoss"], "did you mean 'chaos'"),
        (
            vec!["--timeout-ms", "x", addr.as_str(), "{}"],
            "--timeout-ms",
        ),
    ] {
        let (code, out, err) = ctl(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?} printed to stdout: {out}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}: {err}");
        assert!(lines[0].contains(says), "{args:?}: {err}");
        assert!(lines[1].contains("--help"), "{args:?}: {err}");
    }

    // Nobody listening: exit 3, with a hint.
    let (code, _, err) = ctl(&[&closed_port(), r#"{"type":"ping"}"#]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("refused") && err.contains("make status"),
        "{err}"
    );

    // Accepts but never answers: exit 4 after --timeout-ms.
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let mute_addr = mute.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for s in mute.incoming() {
            let Ok(mut s) = s else { return };
            thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            });
        }
    });
    let (code, _, err) = ctl(&["--timeout-ms", "300", &mute_addr, r#"{"type":"ping"}"#]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("did not answer"), "{err}");

    let (code, out, _) = ctl(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Exit status"), "{out}");
}

#[test]
fn every_binary_says_what_flag_was_wrong_and_documents_its_environment() {
    for (name, bin) in BINS {
        let out = run(bin, &["--bogus"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} --bogus: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "{name} --bogus: one line and a hint:\n{err}"
        );
        assert!(
            lines[0].starts_with(&format!("{name}: ")) && lines[0].contains("'--bogus'"),
            "{name}: {err}"
        );
        assert!(
            lines[1].contains(&format!("{name} --help")),
            "{name}: {err}"
        );

        let out = run(bin, &["--help"]);
        let help = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name} --help");
        for var in ["RUST_LOG", "FROTA_TRACE"] {
            assert!(
                help.contains(var),
                "{name} --help does not mention {var}:\n{help}"
            );
        }
    }
}

/// A typo gets the nearest flag's name.
#[test]
fn a_typo_gets_a_suggestion() {
    let out = run(env!("CARGO_BIN_EXE_frota-backup"), &["--data-dri", "x"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("did you mean '--data-dir'?"), "{err}");
}
