//! The rental binaries' configurations (see [`crate::runtime::config`]): each
//! struct's `Default` is the shipped defaults, its flags, how they are
//! read back and written, and the node's `main`. (`frota-client`'s is a
//! tool's: `crate::tools::rental::nodes`.)
//!
//! | binary | config | default address |
//! |---|---|---|
//! | `frota-heartbeat` | [`HeartbeatNode`] | 127.0.0.1:7000 (TCP and UDP) |
//! | `frota-infodesk` | [`InfodeskNode`] | 127.0.0.1:7001 |
//! | `frota-backup` | [`BackupNode`] | 127.0.0.1:7002 |
//! | `frota-terminal --id N` | [`TerminalNode`] | 127.0.0.1:701N |

use super::backup::Backup;
use super::infodesk::InfoDesk;
use super::monitor::{DetectorKind, Monitor, MonitorConfig};
use super::peers;
use super::terminal::{Terminal, TerminalConfig};
use crate::runtime::cli::{opt, Args, Flag};
use crate::runtime::config::{
    self, addr, check_addr, ms, server_args, server_flags, server_from_args, Node,
};
use crate::runtime::server::{announce, Server, ServerConfig};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn server_at(listen: &str) -> ServerConfig {
    ServerConfig {
        listen: listen.to_string(),
        ..ServerConfig::default()
    }
}

/// Where a node's heartbeats go: `--heartbeat-udp`, else the monitor's TCP
/// address (it listens for UDP on the same port by default).
fn heartbeat_target(heartbeat: &str, udp: &Option<String>) -> Result<SocketAddr, String> {
    let target = udp.as_deref().unwrap_or(heartbeat);
    crate::runtime::client::resolve(target).map_err(|e| format!("heartbeats: {}", e.text))
}

/// The flags of a node that sends heartbeats (the backup, the terminals):
/// the monitor's address, where the datagrams go if not there, how often.
#[rustfmt::skip]
fn beacon_flags(heartbeat: &str, udp: &Option<String>, interval: Duration) -> [Flag; 3] {
    [
        opt("heartbeat", heartbeat, "the heartbeat monitor's TCP address"),
        opt("heartbeat-udp", udp.clone().unwrap_or_default(), "where heartbeats go [default: --heartbeat]"),
        opt("heartbeat-interval-ms", ms(interval), "send a heartbeat this often"),
    ]
}

/// [`beacon_flags`] read back and checked.
fn beacon_from(a: &Args) -> Result<(String, Option<String>, Duration), String> {
    let heartbeat = a.try_string("heartbeat")?;
    check_addr("heartbeat", &heartbeat)?;
    let udp = a.optional("heartbeat-udp");
    if let Some(u) = &udp {
        check_addr("heartbeat-udp", u)?;
    }
    Ok((heartbeat, udp, a.try_millis("heartbeat-interval-ms")?))
}

/// The command line of [`beacon_flags`].
fn beacon_args(heartbeat: &str, udp: &Option<String>, interval: Duration) -> Vec<String> {
    let mut v = Args::line(&[
        ("heartbeat", heartbeat.to_string()),
        ("heartbeat-interval-ms", ms(interval)),
    ]);
    if let Some(u) = udp {
        v.extend(Args::line(&[("heartbeat-udp", u.clone())]));
    }
    v
}

/// `frota-heartbeat`: the rental heartbeat monitor.
#[derive(Debug, Clone)]
pub struct HeartbeatNode {
    pub server: ServerConfig,
    /// Where heartbeats arrive (UDP).
    pub udp: String,
    pub monitor: MonitorConfig,
}

impl Default for HeartbeatNode {
    fn default() -> Self {
        let interval = Duration::from_millis(500);
        HeartbeatNode {
            server: server_at(addr::HEARTBEAT),
            udp: addr::HEARTBEAT.into(),
            monitor: MonitorConfig {
                detector: DetectorKind::Fixed,
                timeout: Duration::from_millis(1500),
                phi_threshold: 8.0,
                interval,
                pause_grace: interval * 2,
            },
        }
    }
}

impl Node for HeartbeatNode {
    const PROGRAM: &'static str = "frota-heartbeat";
    const ABOUT: &'static str = "rental heartbeat monitor: who is alive, from UDP heartbeats";

    /// The senders' heartbeats go to the monitor's TCP `HOST:PORT` unless
    /// told otherwise (`--heartbeat-udp` defaults to `--heartbeat`), so a
    /// monitor moved with `--listen` listens for UDP there too: with a
    /// fixed UDP default it would wait on 7000 while every node sent
    /// elsewhere, and nobody would ever be alive.
    fn preset(argv: &[String]) -> Self {
        let mut n = Self::default();
        if let Some(listen) = crate::runtime::cli::peek(argv, "listen") {
            n.udp = listen;
        }
        n
    }

    #[rustfmt::skip]
    fn flags(&self) -> Vec<Flag> {
        let m = &self.monitor;
        let mut f = server_flags(&self.server, "TCP address for queries (alive)");
        f.splice(
            1..1,
            [
                opt("udp", self.udp.clone(), "UDP address heartbeats are sent to; the same HOST:PORT as --listen unless given (where the nodes send by default)"),
                opt("detector", m.detector.name(), "failure detector: fixed (dead after --timeout-ms of silence) or phi (phi accrual)"),
                opt("timeout-ms", ms(m.timeout), "fixed detector: a node silent this long is dead"),
                opt("phi-threshold", m.phi_threshold.to_string(), "phi detector: a node is dead when phi reaches this"),
                opt("heartbeat-interval-ms", ms(m.interval), "the interval nodes send heartbeats at (phi's first estimate; pause detection)"),
                opt("pause-grace-ms", "", "after the monitor itself was paused, judge nodes as of the pause this long [default: 2 x --heartbeat-interval-ms]"),
            ],
        );
        f
    }

    fn from_args(a: &Args) -> Result<Self, String> {
        let detector = DetectorKind::parse(&a.try_string("detector")?)
            .ok_or("--detector must be 'fixed' or 'phi'")?;
        let phi_threshold: f64 = a.try_value("phi-threshold")?;
        if !(phi_threshold.is_finite() && phi_threshold > 0.0) {
            return Err("--phi-threshold must be a positive number".into());
        }
        let interval = a.try_millis("heartbeat-interval-ms")?;
        if interval.is_zero() {
            return Err("--heartbeat-interval-ms must be at least 1".into());
        }
        let pause_grace = match a.optional("pause-grace-ms") {
            Some(_) => a.try_millis("pause-grace-ms")?,
            None => interval * 2,
        };
        // --listen first: --udp defaults to it, so a bad --listen must be
        // named as itself, not as the --udp the user never typed.
        let server = server_from_args(a)?;
        let udp = a.try_string("udp")?;
        check_addr("udp", &udp)?;
        Ok(HeartbeatNode {
            server,
            udp,
            monitor: MonitorConfig {
                detector,
                timeout: a.try_millis("timeout-ms")?,
                phi_threshold,
                interval,
                pause_grace,
            },
        })
    }

    fn to_args(&self) -> Vec<String> {
        let m = &self.monitor;
        let mut v = server_args(&self.server);
        v.extend(Args::line(&[
            ("udp", self.udp.clone()),
            ("detector", m.detector.name().into()),
            ("timeout-ms", ms(m.timeout)),
            ("phi-threshold", m.phi_threshold.to_string()),
            ("heartbeat-interval-ms", ms(m.interval)),
            ("pause-grace-ms", ms(m.pause_grace)),
        ]));
        v
    }

    fn run(self) -> Result<(), String> {
        let bound = Server::bind(self.server).map_err(|e| e.to_string())?;
        let sock = UdpSocket::bind(&self.udp).map_err(|e| {
            format!(
                "cannot bind UDP {}: {e}; another process holds it (the monitor of `make up`? `make status` shows it), or pick another with --udp",
                self.udp
            )
        })?;
        let udp = sock.local_addr().map_err(|e| e.to_string())?;
        let monitor = Monitor::with_config(self.monitor);
        let _rx = monitor.spawn_receiver(sock).map_err(|e| e.to_string())?;
        let _check = monitor.spawn_checker().map_err(|e| e.to_string())?;
        let srv = bound.serve(monitor).map_err(|e| e.to_string())?;
        announce("heartbeat", &[("tcp", srv.addr()), ("udp", udp)]);
        srv.wait();
        Ok(())
    }
}

/// `frota-infodesk`: hands out live terminals, round-robin.
#[derive(Debug, Clone)]
pub struct InfodeskNode {
    pub server: ServerConfig,
    /// The heartbeat monitor's TCP address.
    pub heartbeat: String,
    pub query_timeout: Duration,
}

impl Default for InfodeskNode {
    fn default() -> Self {
        InfodeskNode {
            server: server_at(addr::INFODESK),
            heartbeat: addr::HEARTBEAT.into(),
            query_timeout: Duration::from_millis(1000),
        }
    }
}

impl Node for InfodeskNode {
    const PROGRAM: &'static str = "frota-infodesk";
    const ABOUT: &'static str = "rental info desk: the address of a live terminal, round-robin";

    #[rustfmt::skip]
    fn flags(&self) -> Vec<Flag> {
        let mut f = server_flags(&self.server, "TCP address to serve on");
        f.splice(
            1..1,
            [
                opt("heartbeat", self.heartbeat.clone(), "the heartbeat monitor's TCP address"),
                opt("query-timeout-ms", ms(self.query_timeout), "bound on one question to the monitor"),
            ],
        );
        f
    }

    fn from_args(a: &Args) -> Result<Self, String> {
        let heartbeat = a.try_string("heartbeat")?;
        check_addr("heartbeat", &heartbeat)?;
        Ok(InfodeskNode {
            server: server_from_args(a)?,
            heartbeat,
            query_timeout: a.try_millis("query-timeout-ms")?,
        })
    }

    fn to_args(&self) -> Vec<String> {
        let mut v = server_args(&self.server);
        v.extend(Args::line(&[
            ("heartbeat", self.heartbeat.clone()),
            ("query-timeout-ms", ms(self.query_timeout)),
        ]));
        v
    }

    fn run(self) -> Result<(), String> {
        let bound = Server::bind(self.server).map_err(|e| e.to_string())?;
        let desk = InfoDesk::new(&self.heartbeat, self.query_timeout);
        let srv = bound.serve(Arc::new(desk)).map_err(|e| e.to_string())?;
        announce("infodesk", &[("tcp", srv.addr())]);
        srv.wait();
        Ok(())
    }
}

/// `frota-backup`: the rental system's durable log and source of truth.
#[derive(Debug, Clone)]
pub struct BackupNode {
    pub server: ServerConfig,
    /// Holds `rental.log`.
    pub data_dir: PathBuf,
    /// The heartbeat monitor's address.
    pub heartbeat: String,
    /// Where heartbeats go, if not to `heartbeat`.
    pub heartbeat_udp: Option<String>,
    pub heartbeat_interval: Duration,
    /// An allocated car nobody claims returns to stock after this.
    pub claim_timeout: Duration,
    /// Rewrite the log as a snapshot after this many records (0 = never).
    pub compact_every: u64,
}

impl Default for BackupNode {
    fn default() -> Self {
        BackupNode {
            server: server_at(addr::BACKUP),
            data_dir: PathBuf::from("data/backup"),
            heartbeat: addr::HEARTBEAT.into(),
            heartbeat_udp: None,
            heartbeat_interval: Duration::from_millis(500),
            claim_timeout: Duration::from_millis(60_000),
            compact_every: 100_000,
        }
    }
}

impl Node for BackupNode {
    const PROGRAM: &'static str = "frota-backup";
    const ABOUT: &'static str =
        "rental backup: fsynced transaction log, vehicle places, system-wide pending queues";

    #[rustfmt::skip]
    fn flags(&self) -> Vec<Flag> {
        let mut f = server_flags(&self.server, "TCP address to serve on");
        f.splice(
            1..1,
            [
                opt("data-dir", self.data_dir.display().to_string(), "directory of the log (rental.log); created if missing"),
                opt("claim-timeout-ms", ms(self.claim_timeout), "an allocated car nobody claims returns to stock after this"),
                opt("compact-every", self.compact_every.to_string(), "rewrite the log as a snapshot after this many records (0 = never)"),
            ],
        );
        f.splice(
            2..2,
            beacon_flags(
                &self.heartbeat,
                &self.heartbeat_udp,
                self.heartbeat_interval,
            ),
        );
        f
    }

    fn from_args(a: &Args) -> Result<Self, String> {
        let (heartbeat, heartbeat_udp, heartbeat_interval) = beacon_from(a)?;
        Ok(BackupNode {
            server: server_from_args(a)?,
            data_dir: PathBuf::from(a.try_string("data-dir")?),
            heartbeat,
            heartbeat_udp,
            heartbeat_interval,
            claim_timeout: a.try_millis("claim-timeout-ms")?,
            compact_every: a.try_value("compact-every")?,
        })
    }

    fn to_args(&self) -> Vec<String> {
        let mut v = server_args(&self.server);
        v.extend(Args::line(&[
            ("data-dir", self.data_dir.display().to_string()),
            ("claim-timeout-ms", ms(self.claim_timeout)),
            ("compact-every", self.compact_every.to_string()),
        ]));
        v.extend(beacon_args(
            &self.heartbeat,
            &self.heartbeat_udp,
            self.heartbeat_interval,
        ));
        v
    }

    fn run(self) -> Result<(), String> {
        let udp = heartbeat_target(&self.heartbeat, &self.heartbeat_udp)?;
        let bound = Server::bind(self.server).map_err(|e| e.to_string())?;
        config::ensure_data_dir(&self.data_dir)?;
        let claim = self.claim_timeout;
        let backup = Backup::open(&self.data_dir, claim, self.compact_every).map_err(|e| {
            let log = self.data_dir.join("rental.log").display().to_string();
            let e = e.to_string();
            // A damaged log's explanation starts with the file already.
            if e.starts_with(&log) {
                format!("cannot open the log: {e}")
            } else {
                format!("cannot open the log in {log}: {e}")
            }
        })?;
        let sweep = (claim / 4).clamp(Duration::from_millis(20), Duration::from_millis(500));
        let _sweeper = backup.spawn_sweeper(sweep).map_err(|e| e.to_string())?;
        let srv = bound.serve(backup).map_err(|e| e.to_string())?;
        let _beat = peers::beacon(udp, "backup", "backup", srv.addr(), self.heartbeat_interval)
            .map_err(|e| e.to_string())?;
        announce("backup", &[("tcp", srv.addr())]);
        srv.wait();
        Ok(())
    }
}

/// `frota-terminal --id N`: a rental terminal.
#[derive(Debug, Clone)]
pub struct TerminalNode {
    /// `listen` defaults to 127.0.0.1:701N for `--id N`.
    pub server: ServerConfig,
    /// `id`, the backup's and the monitor's addresses, the timeouts.
    pub terminal: TerminalConfig,
    pub heartbeat_udp: Option<String>,
    pub heartbeat_interval: Duration,
}

impl TerminalNode {
    /// The defaults of terminal `id` (its port follows its number).
    pub fn for_id(id: u32) -> TerminalNode {
        TerminalNode {
            server: server_at(&addr::terminal(id)),
            terminal: TerminalConfig {
                id,
                backup: addr::BACKUP.into(),
                heartbeat: addr::HEARTBEAT.into(),
                backup_timeout: Duration::from_millis(2000),
                peer_timeout: Duration::from_millis(5000),
                callback_timeout: Duration::from_millis(1000),
                sync_interval: Duration::from_millis(1000),
            },
            heartbeat_udp: None,
            heartbeat_interval: Duration::from_millis(500),
        }
    }
}

impl Default for TerminalNode {
    fn default() -> Self {
        TerminalNode::for_id(1)
    }
}

impl Node for TerminalNode {
    const PROGRAM: &'static str = "frota-terminal";
    const ABOUT: &'static str =
        "rental terminal: rents, returns, forwards, queues pending requests, calls clients back";

    fn preset(argv: &[String]) -> Self {
        match crate::runtime::cli::peek(argv, "id").and_then(|i| i.parse().ok()) {
            Some(id) if (1..=super::fleet::TERMINALS).contains(&id) => TerminalNode::for_id(id),
            _ => TerminalNode::default(),
        }
    }

    #[rustfmt::skip]
    fn flags(&self) -> Vec<Flag> {
        let t = &self.terminal;
        let mut f = server_flags(
            &self.server,
            "TCP address to serve on (127.0.0.1:701N for --id N)",
        );
        f.insert(
            0,
            opt("id", t.id.to_string(), "terminal number, 1..3 (names it terminal-N)"),
        );
        f.splice(
            2..2,
            [
                opt("backup", t.backup.clone(), "the backup's address"),
                opt("backup-timeout-ms", ms(t.backup_timeout), "bound on one call to the backup"),
                opt("peer-timeout-ms", ms(t.peer_timeout), "bound on one forwarded rent"),
                opt("callback-timeout-ms", ms(t.callback_timeout), "bound on one callback to a waiting client"),
                opt("sync-interval-ms", ms(t.sync_interval), "refresh stock and retry callbacks this often"),
            ],
        );
        f.splice(
            3..3,
            beacon_flags(&t.heartbeat, &self.heartbeat_udp, self.heartbeat_interval),
        );
        f
    }

    fn from_args(a: &Args) -> Result<Self, String> {
        let id: u32 = a.try_value("id")?;
        if !(1..=super::fleet::TERMINALS).contains(&id) {
            return Err("--id must be 1, 2 or 3 (the class map names three terminals)".into());
        }
        let backup = a.try_string("backup")?;
        check_addr("backup", &backup)?;
        let (heartbeat, heartbeat_udp, heartbeat_interval) = beacon_from(a)?;
        Ok(TerminalNode {
            server: server_from_args(a)?,
            terminal: TerminalConfig {
                id,
                backup,
                heartbeat,
                backup_timeout: a.try_millis("backup-timeout-ms")?,
                peer_timeout: a.try_millis("peer-timeout-ms")?,
                callback_timeout: a.try_millis("callback-timeout-ms")?,
                sync_interval: a.try_millis("sync-interval-ms")?,
            },
            heartbeat_udp,
            heartbeat_interval,
        })
    }

    fn to_args(&self) -> Vec<String> {
        let t = &self.terminal;
        let mut v = Args::line(&[("id", t.id.to_string())]);
        v.extend(server_args(&self.server));
        v.extend(Args::line(&[
            ("backup", t.backup.clone()),
            ("backup-timeout-ms", ms(t.backup_timeout)),
            ("peer-timeout-ms", ms(t.peer_timeout)),
            ("callback-timeout-ms", ms(t.callback_timeout)),
            ("sync-interval-ms", ms(t.sync_interval)),
        ]));
        v.extend(beacon_args(
            &t.heartbeat,
            &self.heartbeat_udp,
            self.heartbeat_interval,
        ));
        v
    }

    fn run(self) -> Result<(), String> {
        let udp = heartbeat_target(&self.terminal.heartbeat, &self.heartbeat_udp)?;
        // Named before the initial sync, its first traced call.
        crate::wire::trace::set_node(&format!("terminal-{}", self.terminal.id));
        let bound = Server::bind(self.server).map_err(|e| e.to_string())?;
        let terminal = Terminal::new(self.terminal, bound.addr().map_err(|e| e.to_string())?);
        // Rebuild the stock from the backup before serving; if the backup is
        // down the sync thread keeps trying.
        if let Err(e) = terminal.sync_once() {
            log::warn!(
                "initial sync with the backup failed: {e}; retrying in the background \
                 (is the backup up? `make status` shows it; --backup names it)"
            );
        }
        let _sync = terminal.spawn_sync().map_err(|e| e.to_string())?;
        let srv = bound.serve(terminal.clone()).map_err(|e| e.to_string())?;
        let _beat = peers::beacon(
            udp,
            terminal.name(),
            "terminal",
            srv.addr(),
            self.heartbeat_interval,
        )
        .map_err(|e| e.to_string())?;
        announce(terminal.name(), &[("tcp", srv.addr())]);
        srv.wait();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn round_trip<N: Node + std::fmt::Debug>(n: &N) -> N {
        match config::parse::<N>(&n.to_args()) {
            Ok(back) => back,
            Err(crate::runtime::cli::ParseExit::Bad(e, _)) => panic!("{n:?}: {e}"),
            Err(_) => panic!("help?"),
        }
    }

    /// What a launcher writes, a binary reads back the same.
    #[test]
    fn every_rental_config_round_trips_through_its_command_line() {
        let b = BackupNode {
            compact_every: 7,
            heartbeat_udp: Some("127.0.0.1:9".into()),
            ..BackupNode::default()
        };
        let back = round_trip(&b);
        assert_eq!(
            (back.compact_every, back.heartbeat_udp),
            (7, b.heartbeat_udp)
        );
        let t = round_trip(&TerminalNode::for_id(3));
        assert_eq!(
            (t.terminal.id, t.server.listen.as_str()),
            (3, "127.0.0.1:7013")
        );
        let mut h = HeartbeatNode::default();
        h.monitor.detector = DetectorKind::Phi;
        assert_eq!(round_trip(&h).monitor.detector, DetectorKind::Phi);
        assert_eq!(
            round_trip(&InfodeskNode::default()).server.listen,
            addr::INFODESK
        );
    }

    /// A terminal's port follows its id, also in `--help`.
    #[test]
    fn terminal_ports_follow_the_id() {
        for id in 1..=3u32 {
            let n: TerminalNode = config::parse(&argv(&["--id", &id.to_string()]))
                .ok()
                .unwrap();
            assert_eq!(n.server.listen, format!("127.0.0.1:{}", 7010 + id));
            let shown = TerminalNode::preset(&argv(&["--id", &id.to_string()])).flags();
            let listen = shown.iter().find(|f| f.name == "listen").unwrap();
            assert_eq!(listen.value.as_deref(), Some(addr::terminal(id).as_str()));
        }
        assert!(config::parse::<TerminalNode>(&argv(&["--id", "4"])).is_err());
    }

    #[test]
    fn bad_addresses_are_refused_before_anything_starts() {
        for bad in [
            &["--listen", "127.0.0.1:99999"][..],
            &["--heartbeat", "nowhere"],
            &["--heartbeat-udp", "x:y"],
        ] {
            let Err(crate::runtime::cli::ParseExit::Bad(e, _)) =
                config::parse::<BackupNode>(&argv(bad))
            else {
                panic!("{bad:?} accepted");
            };
            assert!(e.contains(bad[0]), "{bad:?}: {e}");
        }
    }
}
