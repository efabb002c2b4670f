//! Every node's configuration, in one shape: a `Config` struct per binary
//! (a [`Node`]) whose `Default` is the shipped defaults, and which turns
//! into the flag table (`--help` shows those defaults), is read back from a
//! command line, and writes the command line that starts it.
//!
//! - The binaries are a few lines: [`main`]`::<TheNode>()`.
//! - The launchers ([`crate::tools::rental::cluster`], [`crate::tools::ev::cluster`], the
//!   demos, chaos and the benches through them) build the same structs and
//!   start nodes with [`Node::to_args`], so a flag's name and its default
//!   live in one place and cannot drift between a binary and its launcher.
//! - The default addresses are below ([`addr`]); `scripts/nodes.sh` (`make
//!   up`) passes no address at all and learns them from each node's ready
//!   line.
//!
//! The node configs: [`crate::rental::nodes`] (heartbeat monitor, info desk,
//! backup, terminal, client simulator), [`crate::ev::nodes`] (broker,
//! company, vehicle simulator) and [`crate::runtime::echo::EchoNode`].
//!
//! A node reads and checks every flag before it does anything else, binds
//! its listener next, and only then replays logs or calls peers: a bad flag
//! or a busy port never comes after a screen of log lines.

use crate::runtime::cli::{self, opt, Args, Flag};
use crate::runtime::server::ServerConfig;
use std::io;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::time::Duration;

/// The default addresses, all on loopback (see README, "What runs where").
pub mod addr {
    pub const HEARTBEAT: &str = "127.0.0.1:7000";
    pub const INFODESK: &str = "127.0.0.1:7001";
    pub const BACKUP: &str = "127.0.0.1:7002";
    /// Terminal `id` listens on 7010 + id (7011..7013).
    pub fn terminal(id: u32) -> String {
        format!("127.0.0.1:{}", 7010 + id)
    }
    pub const BROKER: &str = "127.0.0.1:7100";
    pub const MQTT: &str = "127.0.0.1:1883";
    pub const ECHO: &str = "127.0.0.1:7900";
    /// The companies and their default addresses (the default `--peers`):
    /// company number i (A = 1) listens on 7100 + i.
    pub const COMPANIES: [(&str, &str); 3] = [
        ("A", "127.0.0.1:7101"),
        ("B", "127.0.0.1:7102"),
        ("C", "127.0.0.1:7103"),
    ];
    /// `A=127.0.0.1:7101,B=127.0.0.1:7102,C=127.0.0.1:7103`.
    pub fn peers() -> String {
        COMPANIES
            .iter()
            .map(|(n, a)| format!("{n}={a}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One binary's configuration.
pub trait Node: Sized + Default {
    /// `frota-backup`: names the binary in help and errors.
    const PROGRAM: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// The end of `--help`: what the exit status means.
    const EXIT: &'static str = "
Exit status: 0 after --help; 2 for a bad flag (nothing was started); 1 when the
node cannot start (the message names the address, path or peer and what to do).
A running node serves until it is stopped (Ctrl-C, kill, `make down`).
";

    /// The defaults for this command line: `Default`, or for a node whose
    /// defaults follow one flag (`--name`, `--id`) those of its value, so
    /// `--help` shows what this node would really use.
    fn preset(_argv: &[String]) -> Self {
        Self::default()
    }

    /// Every flag, with `self`'s values as the defaults shown. Written as a
    /// table, one flag a line — name, default, help — which
    /// `#[rustfmt::skip]` keeps: split over five lines each, a node's flags
    /// no longer read at a glance.
    fn flags(&self) -> Vec<Flag>;

    /// Read and check the flags (defaults filled in from [`Node::preset`]).
    /// `Err` is one line naming the flag and what is wrong with it.
    fn from_args(a: &Args) -> Result<Self, String>;

    /// The command line that starts this node with this configuration.
    fn to_args(&self) -> Vec<String>;

    /// Run the node: bind, open its data, serve until killed. `Err` is one
    /// line naming the thing that failed (address, path, peer) and the next
    /// step; the binary prints it and exits 1.
    fn run(self) -> Result<(), String>;
}

/// A binary's `main`: parse the command line (help or a bad flag exit here,
/// 0 and 2), start logging, run the node; a failure to start prints one
/// line and exits 1.
pub fn main<N: Node>() -> ! {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let cfg = parse::<N>(&argv).unwrap_or_else(|e| match e {
        cli::ParseExit::Help(u) => {
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "{u}");
            std::process::exit(0)
        }
        cli::ParseExit::Bad(msg, _) => cli::usage_error(N::PROGRAM, &msg),
    });
    cli::init_logging();
    match cfg.run() {
        Ok(()) => std::process::exit(0),
        Err(e) => cli::die(N::PROGRAM, e),
    }
}

/// Parse `argv` into `N` (no exiting: tests call this).
pub fn parse<N: Node>(argv: &[String]) -> Result<N, cli::ParseExit> {
    let flags = N::preset(argv).flags();
    let a = Args::parse_from(N::PROGRAM, N::ABOUT, &flags, argv).map_err(|e| match e {
        cli::ParseExit::Help(u) => cli::ParseExit::Help(format!("{u}{}", N::EXIT)),
        bad => bad,
    })?;
    if let Some(p) = a.positional.first() {
        return Err(cli::ParseExit::Bad(
            format!("unexpected argument '{p}' (every setting is a --flag)"),
            a.usage().to_string(),
        ));
    }
    N::from_args(&a).map_err(|e| cli::ParseExit::Bad(e, a.usage().to_string()))
}

/// Check that `--flag` holds a usable `HOST:PORT` (resolvable, port in
/// range) before anything starts.
pub fn check_addr(flag: &str, value: &str) -> Result<(), String> {
    match value.to_socket_addrs().map(|mut it| it.next()) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("--{flag} '{value}' resolves to no address")),
        Err(e) => Err(format!(
            "--{flag} '{value}' is not a usable HOST:PORT ({e}); e.g. 127.0.0.1:7001"
        )),
    }
}

/// A duration as a `-ms` flag's value.
pub fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

/// Flags every server node shares (after its own): `--listen` first, then
/// the runtime's limits, with `d`'s values as defaults.
#[rustfmt::skip]
pub fn server_flags(d: &ServerConfig, listen_help: &str) -> Vec<Flag> {
    vec![
        opt("listen", d.listen.clone(), listen_help),
        opt("max-connections", d.max_connections.to_string(), "maximum concurrent connections"),
        opt("idle-timeout-ms", ms(d.idle_timeout), "close a connection idle this long"),
        opt("frame-timeout-ms", ms(d.frame_timeout), "a started frame must complete within this"),
        opt("write-timeout-ms", ms(d.write_timeout), "give up writing to a peer after this"),
        opt("max-payload", d.max_payload.to_string(), "largest accepted payload in bytes"),
        opt("link-faults", d.link_faults.clone(), "fault injection: HOST:PORT=drop|delay:MS,... on this node's links to peers"),
    ]
}

/// Read [`server_flags`] back; `--listen` is checked, and every limit is
/// at least 1: a 0 started a node that closed, timed out or refused every
/// connection, with nothing said.
pub fn server_from_args(a: &Args) -> Result<ServerConfig, String> {
    let listen = a.try_string("listen")?;
    check_addr("listen", &listen)?;
    let positive = |flag: &str| -> Result<u64, String> {
        match a.try_value::<u64>(flag)? {
            0 => Err(format!(
                "--{flag} must be at least 1 (0 would refuse or close every connection)"
            )),
            n => Ok(n),
        }
    };
    let millis = |flag: &str| positive(flag).map(Duration::from_millis);
    Ok(ServerConfig {
        listen,
        max_connections: positive("max-connections")? as usize,
        idle_timeout: millis("idle-timeout-ms")?,
        frame_timeout: millis("frame-timeout-ms")?,
        write_timeout: millis("write-timeout-ms")?,
        max_payload: positive("max-payload")? as usize,
        link_faults: a.get("link-faults").unwrap_or("").to_string(),
        ..ServerConfig::default()
    })
}

/// The command line of [`server_flags`].
pub fn server_args(s: &ServerConfig) -> Vec<String> {
    let mut v = Args::line(&[
        ("listen", s.listen.clone()),
        ("max-connections", s.max_connections.to_string()),
        ("idle-timeout-ms", ms(s.idle_timeout)),
        ("frame-timeout-ms", ms(s.frame_timeout)),
        ("write-timeout-ms", ms(s.write_timeout)),
        ("max-payload", s.max_payload.to_string()),
    ]);
    if !s.link_faults.is_empty() {
        v.extend(Args::line(&[("link-faults", s.link_faults.clone())]));
    }
    v
}

/// Make sure `dir` exists and is writable before a node opens its log
/// there, so the error names the directory and what to do instead of a
/// bare "No such file or directory" from deep inside.
pub fn ensure_data_dir(dir: &Path) -> Result<(), String> {
    let fail = |e: io::Error| {
        let next = match e.kind() {
            io::ErrorKind::PermissionDenied => {
                "this user may not write there; give --data-dir a directory it owns"
            }
            io::ErrorKind::NotFound | io::ErrorKind::ReadOnlyFilesystem => {
                "it cannot be created there; give --data-dir a writable directory (it is created if missing)"
            }
            _ => "give --data-dir a writable directory (it is created if missing)",
        };
        format!("cannot use data directory {}: {e}; {next}", dir.display())
    };
    // "File exists" or "Not a directory" from create_dir_all does not say
    // which part of the path is in the way: name the file.
    if let Some(file) = dir.ancestors().find(|p| p.is_file()) {
        return Err(format!(
            "cannot use data directory {}: {} is a file, not a directory; give --data-dir a directory (it is created if missing)",
            dir.display(),
            file.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".frota-write-test");
    std::fs::write(&probe, b"").map_err(fail)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Remove a node's data directory, as a demo does to start from nothing,
/// unless a running node holds a log in it. A node locks each log while
/// it runs; deleting the files under it (`make run` while a `make up`
/// deployment runs on the same data/) loses what it acknowledged, and the
/// demo then fails anyway on the busy ports.
pub fn wipe_data_dir(dir: &Path) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(format!(
                "cannot read {} to start afresh: {e}",
                dir.display()
            ))
        }
    };
    for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        // Our own lock, if we get it, ends when `file` is dropped.
        if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
            return Err(format!(
                "{} is in use by a running node ({} is locked), so it was left alone; \
                 `make down` stops a `make up` deployment (`make status` shows it)",
                dir.display(),
                path.display()
            ));
        }
    }
    std::fs::remove_dir_all(dir)
        .map_err(|e| format!("cannot remove {} to start afresh: {e}", dir.display()))
}

impl Args {
    /// `[("listen", v), ...]` as `["--listen", v, ...]` (for
    /// [`Node::to_args`]).
    pub fn line(pairs: &[(&str, String)]) -> Vec<String> {
        pairs
            .iter()
            .flat_map(|(k, v)| [format!("--{k}"), v.clone()])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_before_anything_starts() {
        assert!(check_addr("listen", "127.0.0.1:0").is_ok());
        let e = check_addr("listen", "127.0.0.1:99999").unwrap_err();
        assert!(e.contains("--listen '127.0.0.1:99999'"), "{e}");
        assert!(check_addr("broker", "nonsense").is_err());
    }

    #[test]
    fn a_zero_limit_is_refused_naming_its_flag() {
        let flags = server_flags(&ServerConfig::default(), "where");
        for flag in [
            "max-connections",
            "idle-timeout-ms",
            "frame-timeout-ms",
            "write-timeout-ms",
            "max-payload",
        ] {
            let argv = [format!("--{flag}"), "0".to_string()];
            let a = Args::parse_from("p", "a", &flags, &argv).ok().unwrap();
            let e = server_from_args(&a).unwrap_err();
            assert!(e.contains(&format!("--{flag} must be at least 1")), "{e}");
        }
    }

    #[test]
    fn server_flags_round_trip() {
        let mut s = ServerConfig {
            listen: "127.0.0.1:9".into(),
            ..ServerConfig::default()
        };
        s.max_connections = 7;
        let flags = server_flags(&ServerConfig::default(), "where");
        let a = Args::parse_from("p", "a", &flags, &server_args(&s))
            .ok()
            .unwrap();
        let back = server_from_args(&a).unwrap();
        assert_eq!(
            (back.listen.as_str(), back.max_connections),
            ("127.0.0.1:9", 7)
        );
    }

    /// A demo wiped data/backup and data/company-* even while a `make up`
    /// deployment ran on them: the live nodes' logs were deleted.
    #[test]
    fn a_data_dir_in_use_is_not_wiped() {
        let dir = crate::runtime::launch::temp_dir("config-wipe").join("backup");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("rental.log");
        std::fs::write(&log, b"x").unwrap();
        let held = std::fs::File::open(&log).unwrap();
        held.lock().unwrap();
        let e = wipe_data_dir(&dir).unwrap_err();
        assert!(e.contains("rental.log") && e.contains("make down"), "{e}");
        assert!(log.exists(), "a locked log was deleted");
        drop(held);
        wipe_data_dir(&dir).unwrap();
        assert!(!dir.exists());
        wipe_data_dir(&dir).unwrap(); // nothing there: nothing to do
    }

    #[test]
    fn data_dir_errors_name_the_path_and_what_to_do() {
        let e = ensure_data_dir(Path::new("/proc/frota-nope/data")).unwrap_err();
        assert!(e.contains("/proc/frota-nope/data"), "{e}");
        assert!(e.contains("--data-dir"), "{e}");
        let ok = crate::runtime::launch::temp_dir("config-data-dir").join("a/b");
        ensure_data_dir(&ok).unwrap();
        assert!(ok.is_dir());
        // A file where the directory (or one of its parents) should be is
        // named as such, not as "File exists" / "Not a directory".
        let file = ok.join("f");
        std::fs::write(&file, b"").unwrap();
        for dir in [file.clone(), file.join("sub")] {
            let e = ensure_data_dir(&dir).unwrap_err();
            assert!(
                e.contains(&format!("{} is a file, not a directory", file.display())),
                "{e}"
            );
        }
    }
}
