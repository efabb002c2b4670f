//! The EV binaries' configurations (see [`crate::runtime::config`]): each struct's
//! `Default` is the shipped defaults, its flags, how they are read back and
//! written, and the node's `main`.
//!
//! | binary | config | default address |
//! |---|---|---|
//! | `frota-broker` | [`BrokerNode`] | 127.0.0.1:7100, MQTT 127.0.0.1:1883 |
//! | `frota-company --name X` | [`CompanyNode`] | X's address in `--peers`: A 7101, B 7102, C 7103 |

use super::broker::{bus::Bus, core::Limits, mqtt_listener, Broker};
use super::company::{Company, CompanyConfig};
use super::points::PointSet;
use crate::runtime::cli::{opt, Args, Flag};
use crate::runtime::config::{
    self, addr, check_addr, ms, server_args, server_flags, server_from_args, Node,
};
use crate::runtime::server::{announce, Server, ServerConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A `--broker` value: `HOST:PORT` or `mqtt://HOST:PORT`.
pub(crate) fn check_broker(value: &str) -> Result<(), String> {
    check_addr("broker", value.strip_prefix("mqtt://").unwrap_or(value))
}

/// `frota-broker`: topic publish/subscribe, frota framing and MQTT 3.1.1.
#[derive(Debug, Clone)]
pub struct BrokerNode {
    /// The frota-framed listener.
    pub server: ServerConfig,
    /// The MQTT listener's address, or `off`.
    pub mqtt_listen: String,
    /// Messages a frota-framed subscriber may have pending before it is
    /// dropped as slow.
    pub queue_len: usize,
}

impl Default for BrokerNode {
    fn default() -> Self {
        BrokerNode {
            server: ServerConfig {
                listen: addr::BROKER.into(),
                ..ServerConfig::default()
            },
            mqtt_listen: addr::MQTT.into(),
            queue_len: Limits::default().frota_queue_len,
        }
    }
}

impl Node for BrokerNode {
    const PROGRAM: &'static str = "frota-broker";
    const ABOUT: &'static str =
        "topic publish/subscribe with +/# wildcards and $share groups (frota framing and MQTT 3.1.1)";

    #[rustfmt::skip]
    fn flags(&self) -> Vec<Flag> {
        let mut f = server_flags(&self.server, "address for the frota-framed listener");
        f.splice(
            1..1,
            [
                opt("mqtt-listen", self.mqtt_listen.clone(), "address for the MQTT 3.1.1 listener ('off' disables; if busy, the broker warns and runs without it)"),
                opt("queue-len", self.queue_len.to_string(), "messages a frota-framed subscriber may have pending before it is dropped as slow"),
            ],
        );
        f
    }

    fn from_args(a: &Args) -> Result<Self, String> {
        let mqtt_listen = a.try_string("mqtt-listen")?;
        if mqtt_listen != "off" {
            check_addr("mqtt-listen", &mqtt_listen)?;
        }
        Ok(BrokerNode {
            server: server_from_args(a)?,
            mqtt_listen,
            queue_len: a.try_value("queue-len")?,
        })
    }

    fn to_args(&self) -> Vec<String> {
        let mut v = server_args(&self.server);
        v.extend(Args::line(&[
            ("mqtt-listen", self.mqtt_listen.clone()),
            ("queue-len", self.queue_len.to_string()),
        ]));
        v
    }

    fn run(self) -> Result<(), String> {
        let cfg = self.server;
        let bound = Server::bind(cfg.clone()).map_err(|e| e.to_string())?;
        let bus = Arc::new(Bus::new(Limits {
            frota_queue_len: self.queue_len,
            ..Limits::default()
        }));
        let broker = Arc::new(Broker::new(bus.clone()));
        let mqtt_cfg = mqtt_listener::mqtt_config(&cfg);
        let (mqtt, state) =
            mqtt_listener::serve(bus, &self.mqtt_listen, mqtt_cfg).map_err(|e| e.to_string())?;
        broker.set_mqtt(state);
        let server = bound.serve(broker).map_err(|e| e.to_string())?;
        let mut addrs = vec![("tcp", server.addr())];
        // No `mqtt=` key when the MQTT listener is off (disabled or port busy).
        if let Some(m) = &mqtt {
            addrs.push(("mqtt", m.addr()));
        }
        announce("broker", &addrs);
        server.wait();
        Ok(())
    }
}

/// `frota-company --name X`: a charging company, 2PC participant and
/// coordinator.
#[derive(Debug, Clone)]
pub struct CompanyNode {
    /// `listen` defaults to this company's own address in `--peers`.
    pub server: ServerConfig,
    pub company: CompanyConfig,
}

impl CompanyNode {
    /// The defaults of company `name`: its address in the default
    /// `--peers` (A 127.0.0.1:7101, B 7102, C 7103), its data directory
    /// `data/company-<name>`.
    pub fn for_name(name: &str) -> CompanyNode {
        CompanyNode::with_peers(name, parse_peers(&addr::peers()).unwrap_or_default())
    }

    fn with_peers(name: &str, peers: BTreeMap<String, String>) -> CompanyNode {
        CompanyNode {
            server: ServerConfig {
                listen: peers.get(name).cloned().unwrap_or_default(),
                ..ServerConfig::default()
            },
            company: CompanyConfig {
                name: name.to_string(),
                broker: Some(addr::BROKER.into()),
                data_dir: default_data_dir(name),
                peers,
                points: None,
                hold_expiry: Duration::from_millis(5000),
                ask_interval: Duration::from_millis(1000),
                peer_timeout: Duration::from_millis(2000),
                forward_timeout: Duration::from_millis(10_000),
                answer_window: Duration::from_millis(60_000),
                retry_wait: Duration::from_millis(2000),
                compact_every: 100_000,
                workers: 16,
            },
        }
    }
}

fn default_data_dir(name: &str) -> PathBuf {
    PathBuf::from(format!("data/company-{}", name.to_lowercase()))
}

/// A `--points` value: a charging points file that loads.
pub(crate) fn check_points(points: &Option<String>) -> Result<(), String> {
    match points {
        Some(p) => PointSet::load(Some(p)).map(|_| ()).map_err(|e| {
            format!("--points: cannot use {e}; give a points file like examples/charging-points.json, or '' for the built-in set")
        }),
        None => Ok(()),
    }
}

/// `A=HOST:PORT,B=...` as a map.
pub fn parse_peers(list: &str) -> Result<BTreeMap<String, String>, String> {
    let mut peers = BTreeMap::new();
    for item in list.split(',').filter(|s| !s.is_empty()) {
        match item.split_once('=') {
            Some((n, a)) if !n.is_empty() && !a.is_empty() => {
                check_addr(&format!("peers {n}="), a)?;
                peers.insert(n.to_string(), a.to_string());
            }
            _ => {
                return Err(format!(
                    "bad --peers item '{item}', expected NAME=HOST:PORT"
                ))
            }
        }
    }
    Ok(peers)
}

fn peers_line(peers: &BTreeMap<String, String>) -> String {
    peers
        .iter()
        .map(|(n, a)| format!("{n}={a}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Default for CompanyNode {
    /// No name yet (`--name` is required); everything else as shipped.
    fn default() -> Self {
        CompanyNode::for_name("")
    }
}

impl Node for CompanyNode {
    const PROGRAM: &'static str = "frota-company";
    const ABOUT: &'static str = "a charging company: points, durable holds, two-phase commit (coordinator of the routes that start at its points)";

    fn preset(argv: &[String]) -> Self {
        let name = crate::runtime::cli::peek(argv, "name").unwrap_or_default();
        match crate::runtime::cli::peek(argv, "peers").map(|p| parse_peers(&p)) {
            Some(Ok(peers)) => CompanyNode::with_peers(&name, peers),
            _ => CompanyNode::for_name(&name),
        }
    }

    #[rustfmt::skip]
    fn flags(&self) -> Vec<Flag> {
        let c = &self.company;
        let listen_help = if self.server.listen.is_empty() {
            format!(
                "TCP address to serve on [default: this company's address in --peers: {}]",
                addr::COMPANIES
                    .iter()
                    .map(|(n, a)| format!("{n} {a}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!(
                "TCP address to serve on (company {}'s address in --peers)",
                c.name
            )
        };
        let (data_dir, data_help) = if c.name.is_empty() {
            (
                String::new(),
                "where the logs live, created if missing [default: data/company-<name>]",
            )
        } else {
            (
                c.data_dir.display().to_string(),
                "where the logs live, created if missing",
            )
        };
        let mut f = server_flags(&self.server, &listen_help);
        f.insert(0, opt("name", "", "company name: A, B or C (required)"));
        f.splice(
            2..2,
            [
                opt("broker", c.broker.clone().unwrap_or_default(), "broker: HOST:PORT (frota-broker, frota framing) or mqtt://HOST:PORT (any MQTT 3.1.1 broker, e.g. Mosquitto); '' = no broker"),
                opt("data-dir", data_dir, data_help),
                opt("peers", peers_line(&c.peers), "every company NAME=HOST:PORT, this one included"),
                opt("points", c.points.clone().unwrap_or_default(), "charging points JSON file ('' = the built-in set)"),
                opt("hold-expiry-ms", ms(c.hold_expiry), "a hold not decided after this long makes its participant ask the coordinator"),
                opt("ask-interval-ms", ms(c.ask_interval), "how often in-doubt holds are asked about and unacknowledged decisions resent"),
                opt("peer-timeout-ms", ms(c.peer_timeout), "reply timeout for calls to other companies"),
                opt("forward-timeout-ms", ms(c.forward_timeout), "reply timeout for a route request forwarded to its coordinator"),
                opt("answer-window-ms", ms(c.answer_window), "retry horizon: how long a rejected request's answer is kept for retries (reserved ones are kept for good)"),
                opt("retry-wait-ms", ms(c.retry_wait), "how long a retry of an undecided request waits for its outcome before error 13"),
                opt("compact-every", c.compact_every.to_string(), "compact the coordinator log after this many records (0 = never)"),
                opt("workers", c.workers.to_string(), "coordinator threads for route requests from the broker"),
            ],
        );
        f
    }

    fn from_args(a: &Args) -> Result<Self, String> {
        let name = a.get("name").unwrap_or("").to_string();
        if name.is_empty() || name.contains(['/', ',', '=']) {
            return Err("--name is required (A, B or C)".into());
        }
        let peers = parse_peers(&a.try_string("peers")?)?;
        let Some(own) = peers.get(&name) else {
            return Err(format!("--peers must list this company ({name}) too"));
        };
        let mut server = match a.optional("listen") {
            Some(_) => server_from_args(a)?,
            // No --listen and no default: this company's --peers address.
            None => ServerConfig {
                listen: own.clone(),
                ..ServerConfig::default()
            },
        };
        if server.listen.is_empty() {
            server.listen = own.clone();
        }
        let broker = a.optional("broker");
        if let Some(b) = &broker {
            check_broker(b)?;
        }
        let points = a.optional("points");
        check_points(&points)?;
        let data_dir = a
            .optional("data-dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| default_data_dir(&name));
        Ok(CompanyNode {
            server,
            company: CompanyConfig {
                name,
                broker,
                data_dir,
                peers,
                points,
                hold_expiry: a.try_millis("hold-expiry-ms")?,
                ask_interval: a
                    .try_millis("ask-interval-ms")?
                    .max(Duration::from_millis(10)),
                peer_timeout: a.try_millis("peer-timeout-ms")?,
                forward_timeout: a.try_millis("forward-timeout-ms")?,
                answer_window: a.try_millis("answer-window-ms")?,
                retry_wait: a.try_millis("retry-wait-ms")?,
                compact_every: a.try_value("compact-every")?,
                workers: a.try_value::<usize>("workers")?.max(1),
            },
        })
    }

    fn to_args(&self) -> Vec<String> {
        let c = &self.company;
        let mut v = Args::line(&[("name", c.name.clone())]);
        v.extend(server_args(&self.server));
        v.extend(Args::line(&[
            ("broker", c.broker.clone().unwrap_or_default()),
            ("data-dir", c.data_dir.display().to_string()),
            ("peers", peers_line(&c.peers)),
            ("hold-expiry-ms", ms(c.hold_expiry)),
            ("ask-interval-ms", ms(c.ask_interval)),
            ("peer-timeout-ms", ms(c.peer_timeout)),
            ("forward-timeout-ms", ms(c.forward_timeout)),
            ("answer-window-ms", ms(c.answer_window)),
            ("retry-wait-ms", ms(c.retry_wait)),
            ("compact-every", c.compact_every.to_string()),
            ("workers", c.workers.to_string()),
        ]));
        if let Some(p) = &c.points {
            v.extend(Args::line(&[("points", p.clone())]));
        }
        v
    }

    fn run(self) -> Result<(), String> {
        let bound = Server::bind(self.server).map_err(|e| e.to_string())?;
        config::ensure_data_dir(&self.company.data_dir)?;
        let company = Company::open(self.company)?;
        let name = format!("company-{}", company.name());
        let server = bound.serve(company.clone()).map_err(|e| e.to_string())?;
        company.start_background().map_err(|e| e.to_string())?;
        announce(&name, &[("tcp", server.addr())]);
        server.wait();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn parse(s: &[&str]) -> Result<CompanyNode, String> {
        match config::parse::<CompanyNode>(&argv(s)) {
            Ok(n) => Ok(n),
            Err(crate::runtime::cli::ParseExit::Bad(e, _)) => Err(e),
            Err(crate::runtime::cli::ParseExit::Help(_)) => Err("help".into()),
        }
    }

    /// Company X listens by default where the default --peers says X is
    /// (B and C once defaulted to A's port), and --help says so.
    #[test]
    fn each_company_listens_on_its_own_port_by_default() {
        for (name, port) in [("A", 7101), ("B", 7102), ("C", 7103)] {
            let n = parse(&["--name", name]).unwrap();
            assert_eq!(n.server.listen, format!("127.0.0.1:{port}"), "{name}");
            assert_eq!(
                n.company.data_dir,
                PathBuf::from(format!("data/company-{}", name.to_lowercase()))
            );
            let shown = CompanyNode::preset(&argv(&["--name", name])).flags();
            let listen = shown.iter().find(|f| f.name == "listen").unwrap();
            assert_eq!(listen.value.clone().unwrap(), format!("127.0.0.1:{port}"));
        }
        // Without --name, help lists each company's default.
        let shown = CompanyNode::preset(&[]).flags();
        let listen = shown.iter().find(|f| f.name == "listen").unwrap();
        assert!(listen.help.contains("B 127.0.0.1:7102"), "{}", listen.help);
        // Its own --peers entry, wherever that is; an explicit --listen wins.
        let n = parse(&["--name", "B", "--peers", "A=127.0.0.1:1,B=127.0.0.1:2"]).unwrap();
        assert_eq!(n.server.listen, "127.0.0.1:2");
        let n = parse(&["--name", "C", "--listen", "127.0.0.1:9"]).unwrap();
        assert_eq!(n.server.listen, "127.0.0.1:9");
    }

    #[test]
    fn company_flags_are_checked() {
        for (args, says) in [
            (&["--peers", "A=127.0.0.1:1"][..], "--name is required"),
            (&["--name", "D"], "--peers must list this company (D)"),
            (&["--name", "A", "--peers", "A"], "bad --peers item 'A'"),
            (&["--name", "A", "--broker", "mqtt://x:99999"], "--broker"),
            (&["--name", "A", "--listen", "127.0.0.1:99999"], "--listen"),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }

    #[test]
    fn every_ev_config_round_trips_through_its_command_line() {
        let mut c = CompanyNode::for_name("B");
        c.company.broker = Some("mqtt://127.0.0.1:1883".into());
        c.company.workers = 3;
        let back = config::parse::<CompanyNode>(&c.to_args()).ok().unwrap();
        assert_eq!(back.company.broker, c.company.broker);
        assert_eq!(
            (back.company.workers, back.server.listen.as_str()),
            (3, "127.0.0.1:7102")
        );
        let b = BrokerNode {
            mqtt_listen: "off".into(),
            ..BrokerNode::default()
        };
        let back = config::parse::<BrokerNode>(&b.to_args()).ok().unwrap();
        assert_eq!(back.mqtt_listen, "off");
    }
}
