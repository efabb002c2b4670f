//! Helpers for the hostile-input tests: start any node type as a real
//! process with extra flags, and the one request that proves it serves.

use super::{read_line_or_why, try_read_line, BOUND};
use frota::rental::peers;
use frota::runtime::heartbeat::Sender;
use frota::runtime::launch::{temp_dir, wait_until, NodeProc};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A node under test, with whatever it needs running beside it.
pub struct Node {
    pub kind: &'static str,
    pub addr: SocketAddr,
    /// A request (one inline line) only this kind of node answers, and the
    /// start of its reply.
    pub probe: &'static str,
    pub want: &'static str,
    /// The node itself, then its helpers (dropped = killed).
    pub procs: Vec<NodeProc>,
    _beat: Option<Sender>,
    _hold: Option<TcpListener>,
}

fn bin(kind: &str) -> PathBuf {
    PathBuf::from(match kind {
        "heartbeat" => env!("CARGO_BIN_EXE_frota-heartbeat"),
        "infodesk" => env!("CARGO_BIN_EXE_frota-infodesk"),
        "backup" => env!("CARGO_BIN_EXE_frota-backup"),
        "terminal" => env!("CARGO_BIN_EXE_frota-terminal"),
        "broker" => env!("CARGO_BIN_EXE_frota-broker"),
        "company" => env!("CARGO_BIN_EXE_frota-company"),
        k => panic!("no node kind {k}"),
    })
}

fn spawn(kind: &str, args: &[String]) -> NodeProc {
    NodeProc::spawn(&bin(kind), args, &[("RUST_LOG", "error".to_string())], None)
        .unwrap_or_else(|e| panic!("{kind} starts: {e}"))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Start a node of `kind` on 127.0.0.1:0 with `flags` (the runtime's
/// limits), plus what it needs to answer its probe: the info desk gets a
/// monitor that hears a terminal, the terminal gets a backup.
pub fn start(kind: &'static str, flags: &[&str]) -> Node {
    let dir = temp_dir(&format!("hostile-{kind}"));
    let d = |sub: &str| dir.join(sub).to_string_lossy().into_owned();
    let mut helpers = Vec::new();
    let mut beat = None;
    let mut hold = None;
    // Port 9 (discard): heartbeats of nodes tested alone go nowhere.
    let nowhere = "127.0.0.1:9";
    // A backup (the node under test, or a terminal's) with no monitor.
    let backup_args = strings(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &d("backup"),
        "--heartbeat",
        nowhere,
    ]);
    let (mut args, probe, want) = match kind {
        "heartbeat" => (
            strings(&["--listen", "127.0.0.1:0", "--udp", "127.0.0.1:0"]),
            r#"{"type":"alive","id":5}"#,
            r#"{"type":"alive_ok","in_reply_to":5,"#,
        ),
        "infodesk" => {
            let hb = spawn(
                "heartbeat",
                &strings(&["--listen", "127.0.0.1:0", "--udp", "127.0.0.1:0"]),
            );
            // A terminal-1 that only beats: the desk can hand it out.
            let fake = TcpListener::bind("127.0.0.1:0").expect("bind");
            let fake_addr = fake.local_addr().expect("addr");
            beat = Some(
                peers::beacon(
                    hb.addr("udp"),
                    "terminal-1",
                    "terminal",
                    fake_addr,
                    Duration::from_millis(100),
                )
                .expect("beacon"),
            );
            hold = Some(fake);
            let a = strings(&[
                "--listen",
                "127.0.0.1:0",
                "--heartbeat",
                &hb.tcp().to_string(),
            ]);
            helpers.push(hb);
            (
                a,
                r#"{"type":"get_terminal","id":5}"#,
                r#"{"type":"get_terminal_ok","in_reply_to":5,"terminal":"terminal-1","#,
            )
        }
        "backup" => (
            backup_args.clone(),
            r#"{"type":"holders","id":5,"class":"suv"}"#,
            r#"{"type":"holders_ok","in_reply_to":5,"#,
        ),
        "terminal" => {
            let b = spawn("backup", &backup_args);
            let a = strings(&[
                "--id",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--backup",
                &b.tcp().to_string(),
                "--heartbeat",
                nowhere,
            ]);
            helpers.push(b);
            (
                a,
                r#"{"type":"stock","id":5}"#,
                r#"{"type":"stock_ok","in_reply_to":5,"#,
            )
        }
        "broker" => (
            strings(&["--listen", "127.0.0.1:0"]),
            r#"{"type":"publish","id":5,"topic":"vehicle/v1/status","payload":{"battery":80}}"#,
            r#"{"type":"publish_ok","in_reply_to":5"#,
        ),
        "company" => (
            strings(&[
                "--name",
                "A",
                "--listen",
                "127.0.0.1:0",
                "--broker",
                "",
                "--data-dir",
                &d("company-a"),
                "--peers",
                "A=127.0.0.1:9",
            ]),
            r#"{"type":"reservations","id":5}"#,
            r#"{"type":"reservations_ok","in_reply_to":5,"#,
        ),
        k => panic!("no node kind {k}"),
    };
    args.extend(strings(flags));
    let me = spawn(kind, &args);
    let addr = me.tcp();
    let mut procs = vec![me];
    procs.extend(helpers);
    let node = Node {
        kind,
        addr,
        probe,
        want,
        procs,
        _beat: beat,
        _hold: hold,
    };
    // The info desk answers only once the monitor has heard the terminal.
    assert!(
        wait_until(BOUND, Duration::from_millis(20), || try_probe(&node)),
        "{kind} never answered its probe {probe}"
    );
    node
}

/// Send the probe on `s` and check the reply.
pub fn probe_on(s: &mut TcpStream, n: &Node) {
    s.write_all(format!("{}\n", n.probe).as_bytes())
        .expect("send probe");
    let t = std::time::Instant::now();
    let line = read_line_or_why(s).unwrap_or_else(|why| why);
    assert!(
        line.starts_with(n.want),
        "{}: probe {} got {line:?} after {:?}; a fresh connection is {}",
        n.kind,
        n.probe,
        t.elapsed(),
        if try_probe(n) { "served" } else { "not served" }
    );
}

/// A fresh connection is served the probe.
pub fn try_probe(n: &Node) -> bool {
    let Ok(mut s) = TcpStream::connect(n.addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(BOUND));
    if s.write_all(format!("{}\n", n.probe).as_bytes()).is_err() {
        return false;
    }
    try_read_line(&mut s).is_some_and(|l| l.starts_with(n.want))
}

/// Another process holding a connection to `addr`: a shell that opens it
/// (optionally sends `first`) and then sleeps. Stop it (SIGSTOP) and it
/// vanishes without a FIN; kill it (-9) and its kernel closes the socket.
pub struct Peer(Child);

impl Peer {
    pub fn connect(addr: SocketAddr, first: &str) -> Peer {
        let script = format!(
            "exec 3<>/dev/tcp/{}/{} || exit 1; printf '%s' \"$1\" >&3; exec sleep 60",
            addr.ip(),
            addr.port()
        );
        let child = Command::new("bash")
            .args(["-c", &script, "peer", first])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bash runs");
        Peer(child)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
