//! What a person meets on the command line: exit statuses that mean
//! something, and errors that say what was wrong and what to do next.
//!
//! - `frota-ctl`: 0 `<type>_ok`, 1 the node answered `error`, 2 bad command
//!   line, 3 cannot connect (with a hint to `make status`), 4 no reply.
//! - every binary: a bad flag is one line naming it and one line pointing at
//!   `--help` (not the whole usage), exit 2; `--help` exits 0 and mentions
//!   `RUST_LOG` and `FROTA_TRACE`.

mod support;

use frota::runtime::launch::NodeProc;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::thread;
use support::echo::start_echo;

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
    let echo = start_echo(&[]);
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
        (vec!["lba"], "did you mean 'lab'"),
        // The message alone, or before the address.
        (vec![r#"{"type":"ping"}"#], "missing the node's HOST:PORT"),
        (
            vec![r#"{"type":"ping"}"#, addr.as_str()],
            "the address comes first",
        ),
        (
            vec!["--timeout-ms", "x", addr.as_str(), "{}"],
            "--timeout-ms",
        ),
        (
            vec!["--timeout-ms", "0", addr.as_str(), r#"{"type":"ping"}"#],
            "at least 1",
        ),
        // An address that is not HOST:PORT is a typo, not an unreachable node.
        (
            vec!["127.0.0.1:99999", r#"{"type":"ping"}"#],
            "'127.0.0.1:99999' is not HOST:PORT",
        ),
        (
            vec!["127.0.0.1:", r#"{"type":"ping"}"#],
            "'127.0.0.1:' is not HOST:PORT",
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

    // Something that answers, but not with a frota frame (a web server
    // on that port): exit 4, and the hint says it may be no frota node.
    let web = TcpListener::bind("127.0.0.1:0").unwrap();
    let web_addr = web.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for s in web.incoming() {
            let Ok(mut s) = s else { return };
            // Read the request first and stay open after answering: a
            // close with unread bytes would reset the connection instead.
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            let _ = s.read_to_end(&mut Vec::new());
        }
    });
    let (code, _, err) = ctl(&[&web_addr, r#"{"type":"ping"}"#]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("not a frota node"), "{err}");

    // No arguments at all: what was wrong first, then the usage.
    let (code, _, err) = ctl(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.lines()
            .next()
            .unwrap_or("")
            .contains("no command given"),
        "{err}"
    );

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
        fits_100_columns(&format!("{name} --help"), &help);
        for var in ["RUST_LOG", "FROTA_TRACE"] {
            assert!(
                help.contains(var),
                "{name} --help does not mention {var}:\n{help}"
            );
        }
    }
}

/// A `--help` is read in a terminal: no line wider than 100 columns.
fn fits_100_columns(what: &str, help: &str) {
    for l in help.lines() {
        assert!(
            l.chars().count() <= 100,
            "{what}: a line of {} columns:\n{l}",
            l.chars().count()
        );
    }
}

#[test]
fn every_ctl_subcommand_help_fits_a_terminal() {
    for sub in [
        "run",
        "run-rental",
        "run-ev",
        "audit-rental",
        "audit-ev",
        "chaos",
        "sim",
        "trace",
        "trace-scenario",
        "trace-embed",
        "lab",
        "log-check",
        "log-repair",
    ] {
        let (code, out, err) = ctl(&[sub, "--help"]);
        assert_eq!(code, 0, "frota-ctl {sub} --help: {err}");
        fits_100_columns(&format!("frota-ctl {sub} --help"), &out);
        // What its exit status means, as every node's --help says.
        assert!(
            out.contains("Exit status"),
            "frota-ctl {sub} --help says no exit status:\n{out}"
        );
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

/// protocol.md (MQTT): an --mqtt-listen that is not HOST:PORT is a usage
/// error, exit 2, said with the flag (unlike a busy port, which the broker
/// runs without).
#[test]
fn a_bad_mqtt_listen_is_a_usage_error() {
    let out = run(
        env!("CARGO_BIN_EXE_frota-broker"),
        &["--listen", "127.0.0.1:0", "--mqtt-listen", "nonsense"],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--mqtt-listen 'nonsense'"), "{err}");
    assert!(!text(&out.stdout).contains("frota ready"), "it started");
}

fn run_info(bin: &str, args: &[&str]) -> Output {
    // RUST_LOG=info: the default, so any log noise before the error shows.
    Command::new(bin)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e}"))
}

/// A node checks its flags and binds its port before it replays a log or
/// calls a peer: a busy port is the one and only line it prints, and the
/// line names the address and the next step.
#[test]
fn a_busy_port_is_said_first_and_alone() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let data = frota::runtime::launch::temp_dir("busy-port");
    let dir = |d: &str| data.join(d).display().to_string();
    let (bk, co) = (dir("backup"), dir("company"));
    let nowhere = closed_port();
    let peers = format!("A={busy_addr}");
    let cases: [(&str, &str, Vec<&str>); 7] = [
        (
            "frota-backup",
            env!("CARGO_BIN_EXE_frota-backup"),
            vec!["--data-dir", &bk],
        ),
        (
            "frota-terminal",
            env!("CARGO_BIN_EXE_frota-terminal"),
            vec!["--backup", &nowhere, "--heartbeat", &nowhere],
        ),
        (
            "frota-company",
            env!("CARGO_BIN_EXE_frota-company"),
            vec![
                "--name",
                "A",
                "--peers",
                &peers,
                "--data-dir",
                &co,
                "--broker",
                "",
            ],
        ),
        (
            "frota-heartbeat",
            env!("CARGO_BIN_EXE_frota-heartbeat"),
            vec!["--udp", "127.0.0.1:0"],
        ),
        (
            "frota-infodesk",
            env!("CARGO_BIN_EXE_frota-infodesk"),
            vec![],
        ),
        (
            "frota-broker",
            env!("CARGO_BIN_EXE_frota-broker"),
            vec!["--mqtt-listen", "off"],
        ),
        ("frota-echo", env!("CARGO_BIN_EXE_frota-echo"), vec![]),
    ];
    for (name, bin, extra) in cases {
        let mut args = vec!["--listen", busy_addr.as_str()];
        args.extend(extra);
        let out = run_info(bin, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{name}: only the error, no log before it:\n{err}"
        );
        assert!(
            lines[0].starts_with(&format!("{name}: cannot listen on {busy_addr}"))
                && lines[0].contains("make status"),
            "{name}: {err}"
        );
    }
    // Nothing was opened: the backup and the company never got to their logs.
    assert!(!data.join("backup").exists() && !data.join("company").exists());
    let _ = std::fs::remove_dir_all(&data);
}

/// A data directory that cannot be used is named, with what to do.
#[test]
fn a_bad_data_dir_is_named() {
    for (name, bin, extra) in [
        ("frota-backup", env!("CARGO_BIN_EXE_frota-backup"), vec![]),
        (
            "frota-company",
            env!("CARGO_BIN_EXE_frota-company"),
            vec!["--name", "A", "--broker", ""],
        ),
    ] {
        let mut args = vec!["--listen", "127.0.0.1:0", "--data-dir", "/proc/frota-nope"];
        args.extend(extra);
        let out = run_info(bin, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(
            err.contains("/proc/frota-nope") && err.contains("--data-dir"),
            "{name}: {err}"
        );
    }
    // And a bad address is a flag error (2), before anything else.
    let out = run_info(
        env!("CARGO_BIN_EXE_frota-backup"),
        &[
            "--listen",
            "127.0.0.1:99999",
            "--data-dir",
            "/proc/frota-nope",
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.lines()
            .next()
            .unwrap_or("")
            .contains("--listen '127.0.0.1:99999'"),
        "{err}"
    );
}

/// A flag's entry in a `--help`: its line and the lines it wraps onto,
/// joined with single spaces.
fn entry(help: &str, flag: &str) -> String {
    let mut lines = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(&format!("{flag} ")));
    let mut e = lines.next().unwrap_or("").trim().to_string();
    for more in lines.take_while(|l| l.starts_with("    ") && !l.trim_start().starts_with("--")) {
        e.push(' ');
        e.push_str(more.trim());
    }
    e
}

/// `frota-company --name X --help` shows X's own default port (the one the
/// default --peers gives X), and `frota-terminal --id N` likewise.
#[test]
fn help_shows_each_nodes_own_default_port() {
    for (name, port) in [("A", 7101), ("B", 7102), ("C", 7103)] {
        let out = run(
            env!("CARGO_BIN_EXE_frota-company"),
            &["--name", name, "--help"],
        );
        let help = text(&out.stdout);
        let listen = entry(&help, "--listen");
        assert!(
            listen.ends_with(&format!("[default: 127.0.0.1:{port}]")),
            "company {name}: {listen}"
        );
    }
    // The monitor's UDP port follows --listen: the nodes send their
    // heartbeats to its TCP HOST:PORT unless told otherwise.
    let out = run(
        env!("CARGO_BIN_EXE_frota-heartbeat"),
        &["--listen", "127.0.0.1:7500", "--help"],
    );
    let help = text(&out.stdout);
    let udp = entry(&help, "--udp");
    assert!(
        udp.ends_with("[default: 127.0.0.1:7500]"),
        "heartbeat --listen 127.0.0.1:7500: {udp}"
    );
    for id in 1..=3 {
        let out = run(
            env!("CARGO_BIN_EXE_frota-terminal"),
            &["--id", &id.to_string(), "--help"],
        );
        let help = text(&out.stdout);
        let listen = entry(&help, "--listen");
        assert!(
            listen.ends_with(&format!("[default: 127.0.0.1:{}]", 7010 + id)),
            "terminal {id}: {listen}"
        );
    }
}

/// `frota-ctl`'s subcommands answer a bad command line the way the nodes
/// do: one line naming what was wrong, one pointing at `--help`, exit 2 —
/// and the demos check every value before they start a node or wipe data
/// (a typo in `--vehicles` used to start the EV system, then exit 2
/// halfway).
#[test]
fn every_ctl_subcommand_says_what_was_wrong() {
    let tmp = frota::runtime::launch::temp_dir("ctl-usage");
    let d = tmp.display().to_string();
    let ev = |bad: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["run-ev".into()];
        v.extend(bad.iter().map(|s| s.to_string()));
        for (f, val) in [
            ("--base-port", "0"),
            ("--mqtt-port", "0"),
            ("--data-dir", d.as_str()),
            ("--log-dir", d.as_str()),
        ] {
            v.extend([f.to_string(), val.to_string()]);
        }
        v
    };
    let owned = |a: &[&str]| -> Vec<String> { a.iter().map(|s| s.to_string()).collect() };
    // (arguments, what the first line must name)
    let cases: Vec<(Vec<String>, &str)> = vec![
        (owned(&["sim", "--seed", "x"]), "--seed"),
        (owned(&["sim", "--bogus"]), "'--bogus'"),
        (owned(&["sim", "--rule-off", "nope"]), "--rule-off"),
        (owned(&["trace-scenario", "foo"]), "'foo'"),
        (owned(&["trace-scenario"]), "rental or ev"),
        (owned(&["trace-scenario", "rental", "--bogus"]), "'--bogus'"),
        (owned(&["trace-embed"]), "at least one file"),
        (owned(&["trace-embed", "--bogus", "x"]), "'--bogus'"),
        (owned(&["log-check"]), "one log file"),
        (owned(&["log-check", "--bogus", "x"]), "'--bogus'"),
        (owned(&["log-repair", "a", "b"]), "got 2"),
        (owned(&["trace", "--width", "x", "dir"]), "--width"),
        (owned(&["run-rental", "extra"]), "'extra'"),
        // The request file is missing too: the flag is what must be said.
        (
            owned(&["run-rental", "--time-scale", "x", "--file", "/nonexistent"]),
            "--time-scale",
        ),
        (
            owned(&["run", "--clients", "many", "--file", "/nonexistent"]),
            "--clients",
        ),
        // A scale that would mean "no waiting at all", and a file that is
        // not there: usage errors, and `run` does not go on to the EV demo.
        (owned(&["run-rental", "--time-scale", "-1"]), "--time-scale"),
        (owned(&["run", "--time-scale", "NaN"]), "--time-scale"),
        (owned(&["run", "--file", "/nonexistent"]), "/nonexistent"),
        (ev(&["--vehicles", "x"]), "--vehicles"),
        (ev(&["--timeout-ms", "soon"]), "--timeout-ms"),
        (ev(&["--broker-kind", "nats"]), "--broker-kind"),
        (owned(&["audit-ev", "--companies", "garbage"]), "'garbage'"),
        (owned(&["chaos", "--seed", "x"]), "--seed"),
        (owned(&["lab", "--bogus"]), "'--bogus'"),
        (owned(&["lab", "--out"]), "--out"),
        (owned(&["lab", "nosuch"]), "'nosuch'"),
        // `make chaos DURATION=0` ran, killed nothing and said PASS.
        (owned(&["chaos", "--duration-s", "0"]), "--duration-s 0"),
    ];
    for (args, names) in cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = ctl(&argv);
        let shown = argv.join(" ");
        assert_eq!(code, 2, "frota-ctl {shown}: exit {code}\n{out}{err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "frota-ctl {shown}: one line and a hint, not the usage:\n{err}"
        );
        assert!(
            lines[0].starts_with(&format!("frota-ctl {}", argv[0])) && lines[0].contains(names),
            "frota-ctl {shown}: the first line must name {names}:\n{err}"
        );
        assert!(lines[1].contains("--help"), "frota-ctl {shown}:\n{err}");
        assert!(
            !out.contains("starting"),
            "frota-ctl {shown}: started nodes before checking its flags:\n{out}"
        );
    }
    // Nothing was created (the EV demo's data and logs go under tmp).
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "created before the usage error: {left:?}");

    // A path that cannot be read is named, with where such files are.
    let (code, _, err) = ctl(&["log-check", "/nonexistent/rental.log"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("/nonexistent/rental.log") && err.contains("data/backup/rental.log"),
        "{err}"
    );
    // A log a running node holds (locked): said once, with what to do.
    let held_dir = frota::runtime::launch::temp_dir("ctl-held-log");
    let held = held_dir.join("rental.log");
    std::fs::write(&held, b"").unwrap();
    let lock = std::fs::File::open(&held).unwrap();
    lock.lock().unwrap();
    let shown = held.display().to_string();
    let (code, _, err) = ctl(&["log-repair", &shown]);
    assert_eq!(code, 1, "{err}");
    let first = err.lines().next().unwrap_or("");
    assert_eq!(first.matches(&shown).count(), 1, "the path once: {err}");
    assert!(err.contains("must be stopped"), "{err}");
    drop(lock);
    let _ = std::fs::remove_dir_all(&held_dir);
    let (code, _, err) = ctl(&["trace", "/nonexistent-traces"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("/nonexistent-traces") && err.contains("FROTA_TRACE="),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

/// `frota-client` with no info desk says so at once (it used to print
/// nothing for minutes while every client retried, then 31 FAILUREs).
#[test]
fn frota_client_without_an_info_desk_says_so_at_once() {
    let nowhere = closed_port();
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/carros_solicitados.txt"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_frota-client"))
        .args(["--infodesk", &nowhere, "--file", file])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("frota-client");
    // Generous: the check is one ping with the client's usual retries.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("frota-client still running after 60 s without an info desk");
        }
        thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!("frota-client: the info desk at {nowhere}"))
            && err.contains("make status"),
        "{err}"
    );
}

/// A heartbeat monitor started on another port by hand hears the nodes
/// pointed at it: its UDP socket is where they send (their `--heartbeat`).
#[test]
fn a_moved_heartbeat_monitor_listens_for_udp_where_nodes_send() {
    // A port free for both TCP and UDP, as far as a moment ago tells.
    let port = loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            break p;
        }
    };
    let listen = format!("127.0.0.1:{port}");
    let hb = NodeProc::spawn(
        Path::new(env!("CARGO_BIN_EXE_frota-heartbeat")),
        &["--listen".into(), listen.clone()],
        &[("RUST_LOG", "warn".into())],
        None,
    )
    .expect("frota-heartbeat starts");
    assert_eq!(hb.addr("udp").to_string(), listen);
}

/// A `--listen` that is no address is refused at once, naming `--listen`
/// (not a flag derived from it, like the monitor's `--udp`), before any
/// data directory is opened or any peer is contacted.
#[test]
fn a_bad_listen_address_names_the_listen_flag() {
    for (name, bin) in BINS {
        let other: &[&str] = match name {
            "frota-client" | "frota-ctl" | "frota-vehicle" => continue, // serve nobody
            "frota-backup" => &["--data-dir", "/proc/frota-nope"],
            "frota-company" => &["--name", "A", "--data-dir", "/proc/frota-nope"],
            _ => &[],
        };
        for bad in ["127.0.0.1:99999", "127.0.0.1:x"] {
            let mut args = other.to_vec();
            args.extend(["--listen", bad]);
            let out = run(bin, &args);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} --listen {bad}: {err}");
            let first = err.lines().next().unwrap_or("");
            assert!(
                first.starts_with(&format!("{name}: --listen '{bad}'")),
                "{name} --listen {bad}: {err}"
            );
        }
    }
}

/// A demo ends in one verdict line, last, that a person reads at a glance
/// (`run-ev: PASS — audit PASS; ...`), and exits 0 only with PASS; the
/// same-route groups' lines say their winner.
#[test]
fn the_ev_demo_ends_in_its_verdict_line() {
    let tmp = frota::runtime::launch::temp_dir("cli-run-ev");
    let d = tmp.display().to_string();
    let out = run(
        env!("CARGO_BIN_EXE_frota-ctl"),
        &[
            "run-ev",
            "--base-port",
            "0",
            "--mqtt-port",
            "0",
            "--data-dir",
            &d,
            "--log-dir",
            &d,
        ],
    );
    let stdout = text(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        last.starts_with("run-ev: PASS — audit PASS; 20 vehicles: "),
        "{stdout}"
    );
    let groups: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("same-route group"))
        .collect();
    assert_eq!(groups.len(), 3, "{stdout}");
    assert!(
        groups.iter().all(|l| l.contains(": 1 winner (")),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

/// `frota-ctl run` takes the rental demo's flags, but its help and its
/// flag errors name `frota-ctl run`, the command that was typed.
#[test]
fn frota_ctl_run_names_itself() {
    let (code, out, _) = ctl(&["run", "--help"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("frota-ctl run — "), "{out}");
    let (code, _, err) = ctl(&["run", "--time-scale", "x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("'frota-ctl run --help'"), "{err}");
}
