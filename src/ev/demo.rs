//! `frota-ctl run-ev` (`make run-ev`): start the broker and companies A, B,
//! C on their default ports (logs under `logs/`, fresh data under `data/`),
//! run the vehicle simulator, print one line per vehicle, the summary and
//! the audit verdict, and stop everything. Exit 0 only if the audit passes.
//!
//! Interrupted with Ctrl-C, the nodes (same process group) get the SIGINT
//! too and stop with it; on every normal path [`EvCluster`]'s drop kills them.
//!
//! `--broker-kind mosquitto` runs a real Mosquitto instead of frota-broker
//! (config in `<data-dir>/mosquitto/`, bound to 127.0.0.1 on `--mqtt-port`,
//! or a free port when that one is busy); companies and vehicles then use
//! `--broker mqtt://...`. With frota-broker, `--mqtt-port` is its MQTT
//! listener (if busy, the broker runs without MQTT and the demo says so).
//! Either way `mosquitto_sub -p <port> -t 'vehicle/#' -v` watches the run.

use super::audit;
use super::cluster::{BrokerKind, EvBins, EvCluster, EvOptions};
use super::mosquitto;
use super::vehicle::{self, SimConfig};
use crate::cli::{opt, Args};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub fn run(args: &[String]) -> i32 {
    let flags = [
        opt("vehicles", "20", "number of vehicles"),
        opt("seed", "7", "random seed for the routes"),
        opt(
            "contended",
            "12",
            "vehicles that share routes on purpose (groups of --group)",
        ),
        opt("group", "4", "vehicles per shared route"),
        opt(
            "timeout-ms",
            "10000",
            "how long a vehicle waits for its answer",
        ),
        opt("hold-expiry-ms", "3000", "companies' hold expiry"),
        opt(
            "base-port",
            "7100",
            "broker port; companies A, B, C use the next three (0 = free ports)",
        ),
        opt(
            "broker-kind",
            "frota",
            "frota (frota-broker) or mosquitto (a real Mosquitto; companies and vehicles use MQTT)",
        ),
        opt(
            "mqtt-port",
            "1883",
            "MQTT port: frota-broker's MQTT listener, or Mosquitto's (0 = a free port)",
        ),
        opt(
            "data-dir",
            "data",
            "companies' data (company-a, ...), wiped first",
        ),
        opt("log-dir", "logs", "node logs"),
    ];
    let a = match Args::parse_sub("frota-ctl run-ev", "the EV charging demo", &flags, args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let started = Instant::now();
    let base: u16 = a.value("base-port");
    let data = PathBuf::from(a.string("data-dir"));
    for c in ["a", "b", "c"] {
        // A demo starts from nothing: old reservations would skew the report.
        let _ = std::fs::remove_dir_all(data.join(format!("company-{c}")));
    }
    let mut opts = EvOptions::new(&data);
    opts.log_dir = Some(PathBuf::from(a.string("log-dir")));
    if base != 0 {
        opts.ports = Some([base, base + 1, base + 2, base + 3]);
    }
    let mqtt_port: u16 = a.value("mqtt-port");
    opts.mqtt_port = Some(mqtt_port).filter(|p| *p != 0);
    match a.string("broker-kind").as_str() {
        "frota" => {}
        "mosquitto" => {
            let Some(bin) = mosquitto::find("mosquitto") else {
                eprintln!(
                    "run-ev: mosquitto not found (make deps-mqtt, or apt-get install mosquitto)"
                );
                return 1;
            };
            opts.broker_kind = BrokerKind::Mosquitto(bin);
            // Mosquitto cannot run without its port: a busy one (often a
            // system mosquitto on 1883) means we pick another.
            if mqtt_port != 0 && std::net::TcpListener::bind(("127.0.0.1", mqtt_port)).is_err() {
                println!("run-ev: port {mqtt_port} is busy; mosquitto gets a free port");
                opts.mqtt_port = None;
            }
        }
        other => {
            eprintln!("run-ev: --broker-kind must be frota or mosquitto, not '{other}'");
            return 2;
        }
    }
    let kind = a.string("broker-kind");
    opts.hold_expiry_ms = a.value("hold-expiry-ms");
    opts.ask_interval_ms = 500;
    println!(
        "run-ev: starting broker ({kind}) and companies A, B, C (logs in {})",
        a.string("log-dir")
    );
    let cluster = match EvCluster::start(EvBins::siblings(), opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("run-ev: cannot start the nodes: {e}");
            return 1;
        }
    };
    for n in cluster.names() {
        println!("  {n:<10} {}", cluster.addr(&n));
    }
    match cluster.mqtt_addr() {
        Some(m) => println!(
            "  mqtt       {m}   (watch: mosquitto_sub -h {} -p {} -t 'vehicle/#' -v)",
            m.ip(),
            m.port()
        ),
        None => println!(
            "  mqtt       off (port {mqtt_port} busy; see {}/broker.log)",
            a.string("log-dir")
        ),
    }
    let cfg = SimConfig {
        broker: cluster.broker_url(),
        vehicles: a.value("vehicles"),
        seed: a.value("seed"),
        contended: a.value("contended"),
        group: a.value::<usize>("group").max(1),
        timeout: a.millis("timeout-ms"),
        status_interval: Duration::from_millis(500),
        progress: Duration::from_secs(2),
        points: None,
    };
    println!(
        "run-ev: {} vehicles ask for 3-stop routes ({} of them in groups of {} that want the same stops)",
        cfg.vehicles, cfg.contended, cfg.group
    );
    let report = match vehicle::run(&cfg, &mut |line| println!("  {line}")) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("run-ev: simulator failed: {e}");
            return 1;
        }
    };
    println!("{}", report.summary());
    // The contended groups: each should have exactly one winner.
    let mut g = 0;
    while g < cfg.contended.min(report.results.len()) {
        let members =
            &report.results[g..(g + cfg.group).min(cfg.contended).min(report.results.len())];
        let winners: Vec<&str> = members
            .iter()
            .filter(|r| r.outcome == "reserved")
            .map(|r| r.vehicle.as_str())
            .collect();
        println!(
            "  same-route group {}..{}: {} winner(s) {:?}",
            members[0].vehicle,
            members[members.len() - 1].vehicle,
            winners.len(),
            winners
        );
        g += cfg.group;
    }
    let verdict = match audit::check(&cluster.companies(), Duration::from_secs(10)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("run-ev: audit could not read the companies: {e}");
            return 1;
        }
    };
    for l in verdict.lines() {
        println!("{l}");
    }
    drop(cluster);
    println!(
        "run-ev: nodes stopped; total {:.2} s",
        started.elapsed().as_secs_f64()
    );
    if verdict.ok && report.failed == 0 {
        0
    } else {
        1
    }
}
