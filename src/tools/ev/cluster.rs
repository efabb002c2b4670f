//! Start a whole EV deployment — broker plus companies A, B, C — as real
//! processes: used by the integration tests, `frota-ctl run-ev` and the
//! protocol.md replay (which resolves `broker`, `company-A`.. with
//! [`EvCluster::addr`]).
//!
//! Companies need each other's addresses before they start, so the cluster
//! picks every port first (default: bind `127.0.0.1:0` and release; or fixed
//! ports) and keeps it: a killed node restarts on the same address with the
//! same data directory, as recovery requires.
//!
//! The broker is frota-broker (default; it also gets an MQTT listener on a
//! port of its own, [`EvCluster::mqtt_addr`]) or a real Mosquitto
//! ([`BrokerKind::Mosquitto`]): then companies get `--broker mqtt://...`,
//! and `broker` names Mosquitto's address.

use super::mosquitto::Mosquitto;
use crate::ev::nodes::{BrokerNode, CompanyNode};
use crate::runtime::config::Node;
use crate::runtime::launch::{sibling_bin, NodeProc};
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const COMPANIES: [&str; 3] = ["A", "B", "C"];

/// The binaries to run.
#[derive(Debug, Clone)]
pub struct EvBins {
    pub broker: PathBuf,
    pub company: PathBuf,
}

impl EvBins {
    /// Next to the running executable (demos); tests pass
    /// `env!("CARGO_BIN_EXE_frota-broker")` etc. instead.
    pub fn siblings() -> EvBins {
        EvBins {
            broker: sibling_bin("frota-broker"),
            company: sibling_bin("frota-company"),
        }
    }
}

/// Which broker the cluster runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerKind {
    /// frota-broker: frota framing, plus its MQTT listener.
    Frota,
    /// A real `mosquitto` (this binary); companies talk MQTT to it.
    Mosquitto(PathBuf),
}

#[derive(Debug, Clone)]
pub struct EvOptions {
    pub broker_kind: BrokerKind,
    /// frota-broker's `--mqtt-listen` port, or Mosquitto's port. `None`
    /// picks a free one (then a broker that does not announce it counts as
    /// not started, and new ports are tried); with a fixed port a busy one
    /// only turns frota-broker's MQTT listener off.
    pub mqtt_port: Option<u16>,
    /// Companies keep their logs in `<data_dir>/company-<a|b|c>`.
    pub data_dir: PathBuf,
    /// Node logs (`<log_dir>/<node>.log`); `None` discards them.
    pub log_dir: Option<PathBuf>,
    /// `[broker, A, B, C]`; `None` picks free ports.
    pub ports: Option<[u16; 4]>,
    pub hold_expiry_ms: u64,
    pub ask_interval_ms: u64,
    pub peer_timeout_ms: u64,
    pub broker_args: Vec<String>,
    pub company_args: Vec<String>,
    /// Extra environment per node name (e.g. `FROTA_CRASH_AT`).
    pub env: BTreeMap<String, Vec<(String, String)>>,
}

impl EvOptions {
    /// Defaults: free ports, the companies' default hold expiry and peer
    /// timeout (tests that exercise expiry shorten it), a short ask interval.
    pub fn new(data_dir: &Path) -> EvOptions {
        let company = CompanyNode::default().company;
        EvOptions {
            broker_kind: BrokerKind::Frota,
            mqtt_port: None,
            data_dir: data_dir.to_path_buf(),
            log_dir: Some(data_dir.join("logs")),
            ports: None,
            hold_expiry_ms: company.hold_expiry.as_millis() as u64,
            ask_interval_ms: 200,
            peer_timeout_ms: company.peer_timeout.as_millis() as u64,
            broker_args: Vec::new(),
            company_args: Vec::new(),
            env: BTreeMap::new(),
        }
    }
}

pub struct EvCluster {
    bins: EvBins,
    opts: EvOptions,
    addrs: BTreeMap<String, SocketAddr>,
    procs: BTreeMap<String, NodeProc>,
    /// The MQTT port to give the broker.
    mqtt_port: u16,
    /// The MQTT address the running broker announced (or Mosquitto's).
    mqtt: Option<SocketAddr>,
    mosquitto: Option<Mosquitto>,
}

/// `company-A` for `A`.
pub fn node_name(company: &str) -> String {
    format!("company-{company}")
}

fn free_ports() -> io::Result<[u16; 5]> {
    // Hold all five listeners at once so the ports differ.
    let ls: Vec<TcpListener> = (0..5)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<_>>()?;
    let mut p = [0u16; 5];
    for (i, l) in ls.iter().enumerate() {
        p[i] = l.local_addr()?.port();
    }
    Ok(p)
}

impl EvCluster {
    /// Start broker and companies and wait until each announced readiness.
    pub fn start(bins: EvBins, opts: EvOptions) -> io::Result<EvCluster> {
        let mut last = None;
        // Free ports are released before the nodes bind them; another
        // process may grab one meanwhile, so try a few fresh sets.
        let attempts = if opts.ports.is_some() && opts.mqtt_port.is_some() {
            1
        } else {
            3
        };
        for _ in 0..attempts {
            let free = free_ports()?;
            let ports = match opts.ports {
                Some(p) => p,
                None => [free[0], free[1], free[2], free[3]],
            };
            let mut c = EvCluster {
                bins: bins.clone(),
                opts: opts.clone(),
                addrs: BTreeMap::new(),
                procs: BTreeMap::new(),
                mqtt_port: opts.mqtt_port.unwrap_or(free[4]),
                mqtt: None,
                mosquitto: None,
            };
            let broker_port = match opts.broker_kind {
                BrokerKind::Frota => ports[0],
                BrokerKind::Mosquitto(_) => c.mqtt_port,
            };
            c.addrs.insert(
                "broker".into(),
                SocketAddr::from(([127, 0, 0, 1], broker_port)),
            );
            for (i, n) in COMPANIES.iter().enumerate() {
                c.addrs.insert(
                    node_name(n),
                    SocketAddr::from(([127, 0, 0, 1], ports[i + 1])),
                );
            }
            let mut ok = true;
            for name in c.names() {
                if let Err(e) = c.restart(&name) {
                    last = Some(e);
                    ok = false;
                    break;
                }
            }
            if ok {
                return Ok(c);
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("cannot start the EV cluster")))
    }

    /// Node names in start order: `broker`, `company-A`, `company-B`, `company-C`.
    pub fn names(&self) -> Vec<String> {
        let mut v = vec!["broker".to_string()];
        v.extend(COMPANIES.iter().map(|c| node_name(c)));
        v
    }

    pub fn try_addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.get(name).copied()
    }

    /// The address of `broker` or `company-A`..`company-C`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        match self.try_addr(name) {
            Some(a) => a,
            None => panic!("no EV node named '{name}' (known: {:?})", self.names()),
        }
    }

    /// The broker's MQTT address: frota-broker's MQTT listener (`None` if
    /// it is off, e.g. a fixed port was busy) or Mosquitto's address.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.mqtt
    }

    /// The `--broker` value for companies and vehicles: frota-broker's
    /// `HOST:PORT`, or `mqtt://HOST:PORT` for Mosquitto.
    pub fn broker_url(&self) -> String {
        match self.opts.broker_kind {
            BrokerKind::Frota => self.addr("broker").to_string(),
            BrokerKind::Mosquitto(_) => format!("mqtt://{}", self.addr("broker")),
        }
    }

    pub fn broker_kind(&self) -> &BrokerKind {
        &self.opts.broker_kind
    }

    /// `A=127.0.0.1:p,B=...` (the `--peers` value).
    pub fn peers(&self) -> String {
        COMPANIES
            .iter()
            .map(|c| format!("{c}={}", self.addr(&node_name(c))))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Company name → address (for the audit).
    pub fn companies(&self) -> BTreeMap<String, String> {
        COMPANIES
            .iter()
            .map(|c| (c.to_string(), self.addr(&node_name(c)).to_string()))
            .collect()
    }

    /// Node `name`'s command line: its config (crate::ev::nodes) with this
    /// deployment's addresses, then the options' extra flags (which win).
    fn args(&self, name: &str) -> Vec<String> {
        let o = &self.opts;
        if name == "broker" {
            let mut n = BrokerNode::default();
            n.server.listen = self.addr(name).to_string();
            n.mqtt_listen = format!("127.0.0.1:{}", self.mqtt_port);
            let mut a = n.to_args();
            a.extend(o.broker_args.iter().cloned());
            return a;
        }
        let company = name.trim_start_matches("company-");
        let mut n = CompanyNode::for_name(company);
        let c = &mut n.company;
        n.server.listen = self.addr(name).to_string();
        c.broker = Some(self.broker_url());
        c.peers = self.companies();
        c.data_dir = o
            .data_dir
            .join(format!("company-{}", company.to_lowercase()));
        c.hold_expiry = Duration::from_millis(o.hold_expiry_ms);
        c.ask_interval = Duration::from_millis(o.ask_interval_ms);
        c.peer_timeout = Duration::from_millis(o.peer_timeout_ms);
        let mut a = n.to_args();
        a.extend(o.company_args.iter().cloned());
        a
    }

    /// Set the extra environment `name` gets from its next (re)start.
    pub fn set_env(&mut self, name: &str, env: &[(&str, &str)]) {
        self.opts.env.insert(
            name.to_string(),
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }

    /// kill -9 (no-op if it is not running).
    pub fn kill(&mut self, name: &str) {
        if let Some(mut p) = self.procs.remove(name) {
            p.kill();
        }
        if name == "broker" {
            if let Some(mut m) = self.mosquitto.take() {
                m.kill();
            }
            self.mqtt = None;
        }
    }

    /// (Re)start `name` on its address with its data directory.
    pub fn restart(&mut self, name: &str) -> io::Result<()> {
        self.kill(name);
        let log = self
            .opts
            .log_dir
            .as_ref()
            .map(|d| d.join(format!("{name}.log")));
        if name == "broker" {
            if let BrokerKind::Mosquitto(bin) = &self.opts.broker_kind {
                let m = Mosquitto::start(
                    bin,
                    self.mqtt_port,
                    &self.opts.data_dir.join("mosquitto"),
                    log.as_deref(),
                )?;
                self.mqtt = Some(m.addr());
                self.mosquitto = Some(m);
                return Ok(());
            }
        }
        let bin = if name == "broker" {
            &self.bins.broker
        } else {
            &self.bins.company
        };
        let env: Vec<(&str, String)> = self
            .opts
            .env
            .get(name)
            .map(|v| v.iter().map(|(k, v)| (k.as_str(), v.clone())).collect())
            .unwrap_or_default();
        let p = NodeProc::spawn(bin, &self.args(name), &env, log.as_deref())?;
        if name == "broker" {
            self.mqtt = p.addrs.get("mqtt").copied();
            if self.mqtt.is_none() && self.opts.mqtt_port.is_none() {
                // We picked the port as free and someone took it meanwhile:
                // report failure so `start` tries fresh ports.
                return Err(io::Error::other(format!(
                    "broker announced no MQTT listener on port {}",
                    self.mqtt_port
                )));
            }
        }
        self.procs.insert(name.to_string(), p);
        Ok(())
    }

    /// The process id of `name` (Mosquitto's for `broker` when it is the
    /// broker), if it is running: for CPU and memory figures.
    pub fn pid(&self, name: &str) -> Option<u32> {
        if name == "broker" {
            if let Some(m) = &self.mosquitto {
                return Some(m.pid());
            }
        }
        self.procs.get(name).map(NodeProc::pid)
    }

    /// The process of `name`, e.g. to wait for a crash point's exit.
    pub fn proc_mut(&mut self, name: &str) -> Option<&mut NodeProc> {
        self.procs.get_mut(name)
    }

    /// Stop every node (also done on drop).
    pub fn stop(&mut self) {
        for (_, mut p) in std::mem::take(&mut self.procs) {
            p.kill();
        }
        if let Some(mut m) = self.mosquitto.take() {
            m.kill();
        }
    }
}

impl Drop for EvCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
