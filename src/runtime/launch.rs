//! Starting real node processes and waiting until they serve — used by the
//! integration tests, `frota-ctl` demos, the chaos driver and the benches.
//!
//! A node prints `frota ready name=<n> tcp=<addr> [udp=<addr>]` on stdout once
//! it is listening ([`crate::runtime::server::announce`]); [`NodeProc::spawn`] waits
//! for that line instead of sleeping, and learns the ports a node picked from
//! `127.0.0.1:0`. Dropping a [`NodeProc`] kills the process, so a failing
//! test never leaves nodes behind.

use crossbeam_channel::Receiver;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub struct NodeProc {
    pub name: String,
    child: Child,
    /// Addresses from the ready line, by key (`tcp`, `udp`, ...).
    pub addrs: HashMap<String, SocketAddr>,
    pub log: Option<PathBuf>,
}

/// How long a node may take to print its ready line (generous: a cold,
/// loaded CI machine).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The node's log file, opened for appending (its folder created).
fn open_log(p: &Path) -> io::Result<File> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    OpenOptions::new().create(true).append(true).open(p)
}

/// Drain a child's stdout for the whole of its life, so it never blocks on
/// a full pipe: every line goes to `log`, the first "frota ready" line to
/// the channel returned.
fn drain_stdout(stdout: ChildStdout, log: Option<File>) -> Receiver<String> {
    let (tx, rx) = crossbeam_channel::bounded::<String>(1);
    thread::spawn(move || {
        let mut sent = false;
        let mut sink = log;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && line.starts_with("frota ready ") {
                sent = true;
                let _ = tx.send(line.clone());
            }
            if let Some(f) = sink.as_mut() {
                let _ = writeln!(f, "{line}");
            }
        }
    });
    rx
}

/// Wait (at most [`READY_TIMEOUT`]) for the ready line; a child that exits
/// first, or is not ready in time (then killed), is an error naming it.
fn wait_ready(
    child: &mut Child,
    ready: &Receiver<String>,
    name: &str,
    log: Option<&Path>,
) -> io::Result<String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(line) = ready.recv_timeout(Duration::from_millis(50)) {
            return Ok(line);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(io::Error::other(format!(
                "{name} exited with {status} before it was ready{}",
                log.map(|p| format!(" (log: {})", p.display()))
                    .unwrap_or_default()
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "{name} not ready within {READY_TIMEOUT:?}"
            )));
        }
    }
}

/// A ready line, `frota ready name=N tcp=ADDR udp=ADDR ...`: the node's
/// name (`name` when it gives none) and its addresses by kind.
fn parse_ready(line: &str, name: String) -> (String, HashMap<String, SocketAddr>) {
    let mut addrs = HashMap::new();
    let mut node_name = name;
    for kv in line.split_whitespace().skip(2) {
        if let Some((k, v)) = kv.split_once('=') {
            if k == "name" {
                node_name = v.to_string();
            } else if let Ok(a) = v.parse() {
                addrs.insert(k.to_string(), a);
            }
        }
    }
    (node_name, addrs)
}

impl NodeProc {
    /// Start `bin args...` with extra `env`, stderr (and stdout after the
    /// ready line) appended to `log`, and wait for the ready line.
    pub fn spawn(
        bin: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: Option<&Path>,
    ) -> io::Result<NodeProc> {
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped());
        // The child exits when its launcher dies, even by kill -9 (see
        // [`watch_parent`]): a demo or test never leaves nodes behind.
        cmd.env(EXIT_WITH_PARENT, "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log_file = match log {
            Some(p) => {
                let f = open_log(p)?;
                cmd.stderr(f.try_clone()?);
                Some(f)
            }
            None => {
                cmd.stderr(Stdio::null());
                None
            }
        };
        let mut child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot start {}: {e}", bin.display()))
        })?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(io::Error::other("child has no stdout"));
        };
        let ready = drain_stdout(stdout, log_file);
        let name = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let line = wait_ready(&mut child, &ready, &name, log)?;
        let (name, addrs) = parse_ready(&line, name);
        Ok(NodeProc {
            name,
            child,
            addrs,
            log: log.map(Path::to_path_buf),
        })
    }

    /// The TCP address from the ready line.
    pub fn tcp(&self) -> SocketAddr {
        self.addr("tcp")
    }

    /// Address `key` from the ready line; panics in tests if absent, which
    /// is a bug in the node, not bad input.
    pub fn addr(&self, key: &str) -> SocketAddr {
        match self.addrs.get(key) {
            Some(a) => *a,
            None => panic!("{} announced no '{key}' address", self.name),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (kill -9) and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait for the process to exit by itself, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Set by [`NodeProc::spawn`] in every child's environment.
pub const EXIT_WITH_PARENT: &str = "FROTA_EXIT_WITH_PARENT";

/// If this process was started by [`NodeProc::spawn`], exit as soon as its
/// parent is gone. Ctrl-C reaches a whole process group, but `kill -9` (or a
/// plain `kill`) of the launcher alone does not; without this, its nodes
/// would keep the ports busy. Nodes started by `make up` (nohup) are meant to
/// outlive their shell and do not have the variable. Called from
/// [`crate::runtime::server::announce`], just before a node reports itself ready.
pub fn watch_parent() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    if std::env::var_os(EXIT_WITH_PARENT).is_none() {
        return;
    }
    ONCE.call_once(|| {
        let parent = std::os::unix::process::parent_id();
        let spawned = thread::Builder::new()
            .name("watch-parent".into())
            .spawn(move || loop {
                thread::sleep(Duration::from_millis(250));
                // An orphan is re-parented (to init or a subreaper).
                if std::os::unix::process::parent_id() != parent {
                    log::warn!("launcher (pid {parent}) is gone; exiting");
                    std::process::exit(0);
                }
            });
        if let Err(e) = spawned {
            log::warn!("cannot watch the launcher: {e}");
        }
    });
}

/// Poll `cond` every `every` until it holds or `timeout` passes. Tests wait
/// for conditions with this, never with a bare sleep.
pub fn wait_until(timeout: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(every);
    }
}

/// A sibling binary of the running executable (for `frota-ctl`, which starts
/// the other nodes from the same build directory).
pub fn sibling_bin(name: &str) -> PathBuf {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    // Tests run from target/<profile>/deps; binaries live one level up.
    let direct = dir.join(name);
    if direct.exists() {
        return direct;
    }
    match dir.parent() {
        Some(up) if up.join(name).exists() => up.join(name),
        _ => direct,
    }
}

/// A fresh, empty temporary directory for one test or run.
pub fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "frota-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::create_dir_all(&d);
    d
}
