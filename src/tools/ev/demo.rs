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
use super::nodes::VehiclesNode;
use super::vehicle::{self, SimConfig};
use crate::runtime::cli::{only, opt, Args, Flag};
use crate::runtime::config::{addr, Node};
use crate::tools::ctl::demos::Verdict;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `frota-ctl run-ev`: the exit status (0 only if the audit passes and
/// every vehicle got an answer).
pub fn run(args: &[String]) -> i32 {
    run_verdict(args).code
}

/// `frota-ctl run-ev`'s name and what it does, for its --help.
const RUN_EV: (&str, &str) = ("frota-ctl run-ev", "the EV charging demo");

/// The EV demo, ending in its verdict line (`run-ev: PASS — ...`).
pub fn run_verdict(args: &[String]) -> Verdict {
    let (a, s) = match Verdict::parse(RUN_EV, &flags(), args, Settings::check) {
        Ok(parsed) => parsed,
        Err(usage) => return usage,
    };
    let started = Instant::now();
    let opts = match options(&a, &s) {
        Ok(o) => o,
        Err(why) => return Verdict::fail("run-ev", why),
    };
    let log_dir = a.string("log-dir");
    println!(
        "run-ev: starting broker ({}) and companies A, B, C (logs in {log_dir})",
        a.string("broker-kind"),
    );
    let cluster = match EvCluster::start(EvBins::siblings(), opts) {
        Ok(c) => c,
        Err(e) => return Verdict::cannot_start("run-ev", e),
    };
    show_nodes(&cluster, s.mqtt_port, &log_dir);
    let cfg = SimConfig {
        broker: cluster.broker_url(),
        ..s.sim
    };
    println!(
        "run-ev: {} vehicles ask for 3-stop routes ({} of them in groups of {} that want the same stops)",
        cfg.vehicles, cfg.contended, cfg.group
    );
    let report = match vehicle::run(&cfg, &mut |line| println!("  {line}")) {
        Ok(r) => r,
        Err(e) => return Verdict::fail("run-ev", format!("the vehicle simulator failed: {e}")),
    };
    println!("{}", report.summary());
    let (lines, groups_ok) = group_lines(&cfg, &report);
    for line in lines {
        println!("  {line}");
    }
    let audit = match audit::check(&cluster.companies(), Duration::from_secs(10)) {
        Ok(v) => v,
        Err(e) => {
            return Verdict::fail(
                "run-ev",
                format!("the audit could not read the companies: {e}"),
            )
        }
    };
    for l in audit.lines() {
        println!("{l}");
    }
    drop(cluster);
    verdict(&report, audit.ok, groups_ok).print_stopped(started)
}

/// The demo's flags: the vehicle simulator's own (and their defaults, the
/// binaries', crate::runtime::config), then the deployment's.
#[rustfmt::skip]
fn flags() -> Vec<Flag> {
    let port = |a: &str| a.rsplit(':').next().unwrap_or("0").to_string();
    let own = ["vehicles", "seed", "contended", "group", "timeout-ms"];
    let mut flags = only(VehiclesNode::default().flags(), &own);
    flags.extend([
        opt("hold-expiry-ms", "3000", "companies' hold expiry"),
        opt("base-port", port(addr::BROKER), "broker port; companies A, B, C use the next three, as their defaults do (0 = free ports)"),
        opt("broker-kind", "frota", "frota (frota-broker) or mosquitto (a real Mosquitto; companies and vehicles use MQTT)"),
        opt("mqtt-port", port(addr::MQTT), "MQTT port: frota-broker's MQTT listener, or Mosquitto's (0 = a free port)"),
        opt("data-dir", "data", "companies' data (company-a, ...), wiped first"),
        opt("log-dir", "logs", "node logs"),
    ]);
    flags
}

/// The demo's values, each checked by [`Settings::check`] (through
/// [`Verdict::parse`]) before a node starts.
struct Settings {
    sim: SimConfig,
    base_port: u16,
    mqtt_port: u16,
    hold_expiry_ms: u64,
}

impl Settings {
    fn check(a: &Args) -> Result<Settings, String> {
        let kind = a.try_string("broker-kind")?;
        if kind != "frota" && kind != "mosquitto" {
            return Err(format!(
                "--broker-kind must be frota or mosquitto, not '{kind}'"
            ));
        }
        let sim = SimConfig {
            vehicles: a.try_value("vehicles")?,
            seed: a.try_value("seed")?,
            contended: a.try_value("contended")?,
            group: a.try_value::<usize>("group")?.max(1),
            timeout: a.try_millis("timeout-ms")?,
            ..VehiclesNode::default().sim
        };
        let base_port = a.try_value::<u16>("base-port")?;
        if base_port > u16::MAX - 3 {
            return Err(format!(
                "--base-port {base_port} leaves no room for the three companies' ports after it"
            ));
        }
        Ok(Settings {
            sim,
            base_port,
            mqtt_port: a.try_value("mqtt-port")?,
            hold_expiry_ms: a.try_value("hold-expiry-ms")?,
        })
    }
}

/// The cluster's options; wipes the companies' old data (a demo starts from
/// nothing: old reservations would skew the report). Err: why it cannot run.
fn options(a: &Args, s: &Settings) -> Result<EvOptions, String> {
    let data = PathBuf::from(a.string("data-dir"));
    for c in ["a", "b", "c"] {
        crate::runtime::config::wipe_data_dir(&data.join(format!("company-{c}")))?;
    }
    let mut opts = EvOptions::new(&data);
    opts.log_dir = Some(PathBuf::from(a.string("log-dir")));
    let base = s.base_port;
    if base != 0 {
        opts.ports = Some([base, base + 1, base + 2, base + 3]);
    }
    opts.mqtt_port = Some(s.mqtt_port).filter(|p| *p != 0);
    if a.string("broker-kind") == "mosquitto" {
        let Some(bin) = mosquitto::find("mosquitto") else {
            return Err(
                "mosquitto not found (make deps-mqtt, or apt-get install mosquitto)".into(),
            );
        };
        opts.broker_kind = BrokerKind::Mosquitto(bin);
        // Mosquitto cannot run without its port: a busy one (often a
        // system mosquitto on 1883) means we pick another.
        let busy = std::net::TcpListener::bind(("127.0.0.1", s.mqtt_port)).is_err();
        if s.mqtt_port != 0 && busy {
            println!(
                "run-ev: port {} is busy; mosquitto gets a free port",
                s.mqtt_port
            );
            opts.mqtt_port = None;
        }
    }
    opts.hold_expiry_ms = s.hold_expiry_ms;
    opts.ask_interval_ms = 500;
    Ok(opts)
}

/// Where each node listens, and how to watch the run over MQTT.
fn show_nodes(cluster: &EvCluster, mqtt_port: u16, log_dir: &str) {
    for n in cluster.names() {
        println!("  {n:<10} {}", cluster.addr(&n));
    }
    match cluster.mqtt_addr() {
        Some(m) => println!(
            "  mqtt       {m}   (watch: mosquitto_sub -h {} -p {} -t 'vehicle/#' -v)",
            m.ip(),
            m.port()
        ),
        None => println!("  mqtt       off (port {mqtt_port} busy; see {log_dir}/broker.log)"),
    }
}

/// PASS only if the audit passes, every vehicle got an answer and every
/// same-route group had exactly one winner.
fn verdict(report: &vehicle::SimReport, audit_ok: bool, groups_ok: bool) -> Verdict {
    let audit = if audit_ok { "PASS" } else { "FAIL" };
    let summary = format!(
        "audit {audit}; {} vehicles: {} reserved, {} rejected (a stop was taken), {} failed (no answer){}",
        report.results.len(),
        report.reserved,
        report.rejected,
        report.failed,
        if groups_ok { "" } else { "; a same-route group did not have exactly one winner" }
    );
    let short = format!(
        "audit {audit}, {} routes reserved, {} rejected, {} failed",
        report.reserved, report.rejected, report.failed
    );
    Verdict::new(
        "run-ev",
        audit_ok && report.failed == 0 && groups_ok,
        summary,
    )
    .with_short(short)
}

/// One line per same-route group: the vehicles of a group ask for exactly
/// the same three stops at the same moment. The companies take a route's
/// stops in a fixed order (protocol.md, "The two-phase commit", rule 1), so
/// racers meet at the first stop and exactly one of them wins; the plans
/// keep every other vehicle off the groups' stops, so nothing else can take
/// them. "1 winner" is what the protocol promises; the flag says whether
/// every group had it.
pub fn group_lines(cfg: &SimConfig, report: &vehicle::SimReport) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut all_one = true;
    let groups = cfg.contended.min(report.results.len());
    let mut g = 0;
    while g < groups {
        let members = &report.results[g..(g + cfg.group).min(groups)];
        let winners: Vec<&str> = members
            .iter()
            .filter(|r| r.outcome == "reserved")
            .map(|r| r.vehicle.as_str())
            .collect();
        let (first, last) = (&members[0].vehicle, &members[members.len() - 1].vehicle);
        out.push(match winners.as_slice() {
            [w] => format!(
                "same-route group {first}..{last}: 1 winner ({w}); exactly one of a group racing for the same stops wins"
            ),
            _ => {
                all_one = false;
                format!(
                    "same-route group {first}..{last}: {} winner(s) {winners:?}: NOT the one winner the protocol promises (see the lines above)",
                    winners.len()
                )
            }
        });
        g += cfg.group;
    }
    (out, all_one)
}
