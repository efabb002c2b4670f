//! A whole rental deployment as real processes: heartbeat monitor, backup,
//! three terminals and the info desk. Used by the tests (ports from
//! 127.0.0.1:0, fast heartbeats), by the protocol.md replay test (to resolve
//! node names such as `terminal-1` to addresses) and by the demo (default
//! ports, logs under `logs/`).
//!
//! ```no_run
//! use frota::tools::rental::cluster::{Bins, RentalCluster};
//! let dir = frota::runtime::launch::temp_dir("doc");
//! let mut c = RentalCluster::start(Bins::sibling(), &dir).unwrap();
//! let t1 = c.addr("terminal-1");
//! c.kill("terminal-1");
//! c.restart("terminal-1").unwrap();
//! # let _ = t1;
//! ```

use crate::rental::fleet;
use crate::rental::nodes::{BackupNode, HeartbeatNode, InfodeskNode, TerminalNode};
use crate::rental::peers;
use crate::runtime::client::{ClientConfig, Pool};
use crate::runtime::config::Node;
use crate::runtime::launch::{self, NodeProc};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The four node binaries Cargo built for the calling test or bench.
/// `CARGO_BIN_EXE_*` is set only when a test or bench is compiled, so this
/// is a macro: `env!` must expand there, not in the library.
#[macro_export]
macro_rules! rental_bins {
    () => {
        $crate::tools::rental::cluster::Bins::new(
            env!("CARGO_BIN_EXE_frota-heartbeat"),
            env!("CARGO_BIN_EXE_frota-backup"),
            env!("CARGO_BIN_EXE_frota-terminal"),
            env!("CARGO_BIN_EXE_frota-infodesk"),
        )
    };
}

/// Paths of the four node binaries.
#[derive(Debug, Clone)]
pub struct Bins {
    pub heartbeat: PathBuf,
    pub backup: PathBuf,
    pub terminal: PathBuf,
    pub infodesk: PathBuf,
}

impl Bins {
    /// Binaries next to the running executable (frota-ctl, benches, tests).
    pub fn sibling() -> Bins {
        Bins {
            heartbeat: launch::sibling_bin("frota-heartbeat"),
            backup: launch::sibling_bin("frota-backup"),
            terminal: launch::sibling_bin("frota-terminal"),
            infodesk: launch::sibling_bin("frota-infodesk"),
        }
    }

    /// From explicit paths, e.g. `env!("CARGO_BIN_EXE_frota-heartbeat")`.
    pub fn new(heartbeat: &str, backup: &str, terminal: &str, infodesk: &str) -> Bins {
        Bins {
            heartbeat: heartbeat.into(),
            backup: backup.into(),
            terminal: terminal.into(),
            infodesk: infodesk.into(),
        }
    }
}

/// Timings and placement of a deployment.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub heartbeat_interval_ms: u64,
    pub heartbeat_timeout_ms: u64,
    /// How long an allocated, unclaimed car stays reserved.
    pub claim_timeout_ms: u64,
    pub sync_interval_ms: u64,
    /// Use the default ports (7000, 7001, 7002, 7011-7013) instead of :0.
    pub fixed_ports: bool,
    /// Node logs go here as `<name>.log` (default: `<data_dir>/logs`).
    pub log_dir: Option<PathBuf>,
    /// Extra flags for the heartbeat monitor, e.g. `--detector phi`.
    pub heartbeat_args: Vec<String>,
    /// Extra flags for the backup, e.g. `--compact-every 50`.
    pub backup_args: Vec<String>,
}

impl ClusterOptions {
    /// Fast timings for tests: 100 ms heartbeats, dead after 400 ms.
    pub fn fast() -> ClusterOptions {
        ClusterOptions {
            heartbeat_interval_ms: 100,
            heartbeat_timeout_ms: 400,
            claim_timeout_ms: 3000,
            sync_interval_ms: 200,
            fixed_ports: false,
            log_dir: None,
            heartbeat_args: Vec::new(),
            backup_args: Vec::new(),
        }
    }

    /// The defaults of the binaries, on the default ports (the demo).
    pub fn defaults() -> ClusterOptions {
        let monitor = HeartbeatNode::default().monitor;
        ClusterOptions {
            heartbeat_interval_ms: monitor.interval.as_millis() as u64,
            heartbeat_timeout_ms: monitor.timeout.as_millis() as u64,
            claim_timeout_ms: BackupNode::default().claim_timeout.as_millis() as u64,
            sync_interval_ms: TerminalNode::default().terminal.sync_interval.as_millis() as u64,
            fixed_ports: true,
            log_dir: None,
            heartbeat_args: Vec::new(),
            backup_args: Vec::new(),
        }
    }
}

/// `3` for `terminal-3` (only the fleet's terminals).
fn terminal_id(name: &str) -> Option<u32> {
    name.strip_prefix("terminal-")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=fleet::TERMINALS).contains(n))
}

/// The node names of a rental deployment, in start order.
pub const NODES: [&str; 6] = [
    "heartbeat",
    "backup",
    "terminal-1",
    "terminal-2",
    "terminal-3",
    "infodesk",
];

pub struct RentalCluster {
    bins: Bins,
    data_dir: PathBuf,
    log_dir: PathBuf,
    opts: ClusterOptions,
    procs: BTreeMap<String, NodeProc>,
    /// TCP address of every node ever started (kept across kill/restart,
    /// which reuses it).
    addrs: BTreeMap<String, SocketAddr>,
    heartbeat_udp: Option<SocketAddr>,
}

impl RentalCluster {
    /// Start every node on 127.0.0.1:0 with [`ClusterOptions::fast`]; data
    /// under `data_dir`. Returns once all terminals and the backup are
    /// reported alive by the heartbeat monitor.
    pub fn start(bins: Bins, data_dir: &Path) -> io::Result<RentalCluster> {
        RentalCluster::start_with(bins, data_dir, ClusterOptions::fast())
    }

    pub fn start_with(
        bins: Bins,
        data_dir: &Path,
        opts: ClusterOptions,
    ) -> io::Result<RentalCluster> {
        let log_dir = opts
            .log_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("logs"));
        let mut c = RentalCluster {
            bins,
            data_dir: data_dir.to_path_buf(),
            log_dir,
            opts,
            procs: BTreeMap::new(),
            addrs: BTreeMap::new(),
            heartbeat_udp: None,
        };
        for n in NODES {
            c.spawn(n, &[])?;
        }
        c.wait_alive(&NODES[1..5], Duration::from_secs(20))?;
        Ok(c)
    }

    /// The TCP address of node `name` (panics for a name not in [`NODES`],
    /// which is a bug in the caller).
    pub fn addr(&self, name: &str) -> SocketAddr {
        match self.addrs.get(name) {
            Some(a) => *a,
            None => panic!("no rental node named '{name}' (known: {NODES:?})"),
        }
    }

    /// Like [`RentalCluster::addr`], without panicking.
    pub fn try_addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.get(name).copied()
    }

    /// The monitor's UDP address (where heartbeats go).
    pub fn heartbeat_udp(&self) -> SocketAddr {
        match self.heartbeat_udp {
            Some(a) => a,
            None => panic!("the heartbeat monitor announced no udp address"),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The log file of node `name`.
    pub fn log_of(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// kill -9 node `name` (no-op if it is not running).
    pub fn kill(&mut self, name: &str) {
        if let Some(mut p) = self.procs.remove(name) {
            p.kill();
        }
    }

    /// Start node `name` again on the address it had, and wait until the
    /// monitor reports it alive (for nodes that send heartbeats).
    pub fn restart(&mut self, name: &str) -> io::Result<()> {
        self.restart_with_env(name, &[])
    }

    /// Restart with extra environment, e.g. `FROTA_CRASH_AT`.
    pub fn restart_with_env(&mut self, name: &str, env: &[(&str, String)]) -> io::Result<()> {
        self.kill(name);
        self.spawn(name, env)?;
        if name == "backup" || name.starts_with("terminal-") {
            self.wait_alive(&[name], Duration::from_secs(20))?;
        }
        Ok(())
    }

    /// The process id of node `name`, if it is running (to SIGSTOP it).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs.get(name).map(NodeProc::pid)
    }

    /// The running process of `name`, if any (to wait for a crash exit).
    pub fn proc_mut(&mut self, name: &str) -> Option<&mut NodeProc> {
        self.procs.get_mut(name)
    }

    fn listen_for(&self, name: &str) -> String {
        if let Some(a) = self.addrs.get(name) {
            return a.to_string();
        }
        if !self.opts.fixed_ports {
            return "127.0.0.1:0".into();
        }
        // The binaries' own defaults (crate::runtime::config::addr).
        match name {
            "heartbeat" => HeartbeatNode::default().server.listen,
            "infodesk" => InfodeskNode::default().server.listen,
            "backup" => BackupNode::default().server.listen,
            t => {
                TerminalNode::for_id(terminal_id(t).unwrap_or(0))
                    .server
                    .listen
            }
        }
    }

    /// Node `name`'s command line: its config (crate::rental::nodes) with
    /// this deployment's addresses and timings, then the options' extra flags
    /// (which win: a later flag overrides an earlier one).
    fn command(&self, name: &str) -> io::Result<(&PathBuf, Vec<String>)> {
        let o = &self.opts;
        let listen = self.listen_for(name);
        let hb = self
            .addrs
            .get("heartbeat")
            .map(|a| a.to_string())
            .unwrap_or_default();
        let udp = self.heartbeat_udp.map(|a| a.to_string());
        let interval = Duration::from_millis(o.heartbeat_interval_ms);
        Ok(match name {
            "heartbeat" => {
                let mut n = HeartbeatNode::default();
                n.server.listen = listen;
                n.udp = match self.heartbeat_udp {
                    Some(a) => a.to_string(),
                    None if o.fixed_ports => n.udp,
                    None => "127.0.0.1:0".into(),
                };
                n.monitor.timeout = Duration::from_millis(o.heartbeat_timeout_ms);
                n.monitor.interval = interval;
                n.monitor.pause_grace = interval * 2;
                let mut args = n.to_args();
                args.extend(o.heartbeat_args.iter().cloned());
                (&self.bins.heartbeat, args)
            }
            "backup" => {
                let mut n = BackupNode::default();
                n.server.listen = listen;
                n.data_dir = self.data_dir.join("backup");
                n.heartbeat = hb;
                n.heartbeat_udp = udp;
                n.heartbeat_interval = interval;
                n.claim_timeout = Duration::from_millis(o.claim_timeout_ms);
                let mut args = n.to_args();
                args.extend(o.backup_args.iter().cloned());
                (&self.bins.backup, args)
            }
            "infodesk" => {
                let mut n = InfodeskNode::default();
                n.server.listen = listen;
                n.heartbeat = hb;
                (&self.bins.infodesk, n.to_args())
            }
            t => {
                let id = terminal_id(t)
                    .ok_or_else(|| io::Error::other(format!("no rental node named '{t}'")))?;
                let mut n = TerminalNode::for_id(id);
                n.server.listen = listen;
                n.terminal.backup = self.addr("backup").to_string();
                n.terminal.heartbeat = hb;
                n.terminal.sync_interval = Duration::from_millis(o.sync_interval_ms);
                n.heartbeat_udp = udp;
                n.heartbeat_interval = interval;
                (&self.bins.terminal, n.to_args())
            }
        })
    }

    fn spawn(&mut self, name: &str, env: &[(&str, String)]) -> io::Result<()> {
        let (bin, args) = self.command(name)?;
        let log = self.log_dir.join(format!("{name}.log"));
        let p = NodeProc::spawn(bin, &args, env, Some(&log))?;
        self.addrs.insert(name.to_string(), p.tcp());
        if name == "heartbeat" {
            self.heartbeat_udp = p.addrs.get("udp").copied();
        }
        self.procs.insert(name.to_string(), p);
        Ok(())
    }

    /// Wait until the monitor reports every node in `names` alive.
    pub fn wait_alive(&self, names: &[&str], timeout: Duration) -> io::Result<()> {
        let pool = Pool::new(ClientConfig::default().with_retries(0));
        let hb = self.addr("heartbeat").to_string();
        let ok = launch::wait_until(timeout, Duration::from_millis(20), || {
            peers::alive(&pool, &hb, None)
                .map(|live| names.iter().all(|n| live.iter().any(|p| &p.name == n)))
                .unwrap_or(false)
        });
        if ok {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{names:?} not reported alive within {timeout:?} (logs in {})",
                self.log_dir.display()
            )))
        }
    }

    /// (Re)start node `name` on its address and return once it announced
    /// itself, without waiting for the monitor (the chaos driver starts
    /// nodes armed with crash points that may exit before they beat).
    pub fn start_node(&mut self, name: &str, env: &[(&str, String)]) -> io::Result<()> {
        self.kill(name);
        self.spawn(name, env)
    }
}
