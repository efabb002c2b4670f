//! The EV cluster for tests: its binaries, requests, routes, the books.

use frota::ev::points::Stop;
use frota::runtime::client::{call, ClientConfig};
use frota::runtime::launch::temp_dir;
use frota::tools::ev::cluster::{EvBins, EvCluster, EvOptions};
use frota::{Body, Error};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

pub fn bins() -> EvBins {
    EvBins {
        broker: PathBuf::from(env!("CARGO_BIN_EXE_frota-broker")),
        company: PathBuf::from(env!("CARGO_BIN_EXE_frota-company")),
    }
}

/// A fresh cluster on free ports; `tune` adjusts options first.
pub fn cluster(tag: &str, tune: impl FnOnce(&mut EvOptions)) -> EvCluster {
    let mut o = EvOptions::new(&temp_dir(tag));
    tune(&mut o);
    EvCluster::start(bins(), o).expect("EV cluster starts")
}

/// Restart `node` without the crash point it was started with.
pub fn restart_clean(c: &mut EvCluster, node: &str) {
    c.set_env(node, &[]);
    c.restart(node).expect("restart");
}

/// A fresh cluster whose `node` stops at crash point `point`
/// (`FROTA_CRASH_AT`); holds expire after 500 ms and participants ask for
/// a lost decision every 100 ms, so recovery shows quickly.
pub fn crashing(tag: &str, node: &str, point: &str) -> EvCluster {
    cluster(tag, |o| {
        o.hold_expiry_ms = 500;
        o.ask_interval_ms = 100;
        o.env.insert(
            node.to_string(),
            vec![("FROTA_CRASH_AT".to_string(), point.to_string())],
        );
    })
}

/// Wait (bounded) for `node` to exit at its crash point.
pub fn wait_crash(c: &mut EvCluster, node: &str) {
    let p = c.proc_mut(node).expect("node is running");
    super::assert_crash_exit(p, node);
}

/// One request, no retries (a crash must show as an error, not be retried).
pub fn ask(c: &EvCluster, node: &str, kind: &str, fields: Value) -> Result<Body, Error> {
    let cfg = ClientConfig::default()
        .with_timeout(Duration::from_secs(10))
        .with_retries(0);
    call(&c.addr(node).to_string(), kind, frota::body(fields), &cfg)
}

pub fn stop(company: &str, point: &str, start: u32) -> Stop {
    Stop {
        company: company.into(),
        point: point.into(),
        start,
        end: start + 60,
    }
}

/// A 3-stop route at hour `h` (A in Recife, B in Maceió, C in Aracaju).
pub fn route(h: u32) -> Vec<Stop> {
    vec![
        stop("A", "A-REC-1", h * 60),
        stop("B", "B-MCZ-1", (h + 2) * 60),
        stop("C", "C-AJU-1", (h + 4) * 60),
    ]
}

pub fn reserve(c: &EvCluster, via: &str, req: &str, stops: &[Stop]) -> Result<Body, Error> {
    ask(
        c,
        via,
        "reserve",
        json!({"request_id": req, "vehicle": format!("veh-{req}"), "stops": stops}),
    )
}

/// `reservations` of company `name` (A, B, C).
pub fn book(c: &EvCluster, name: &str) -> Body {
    ask(c, &format!("company-{name}"), "reservations", json!({})).expect("reservations")
}

pub fn txns_in(b: &Body, key: &str) -> Vec<String> {
    b[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["txn"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn committed_everywhere(c: &EvCluster, txn: &str) -> bool {
    ["A", "B", "C"]
        .iter()
        .all(|n| txns_in(&book(c, n), "reservations").contains(&txn.to_string()))
}

pub fn holds_total(c: &EvCluster) -> usize {
    ["A", "B", "C"]
        .iter()
        .map(|n| txns_in(&book(c, n), "holds").len())
        .sum()
}

pub fn audit_ok(c: &EvCluster) -> frota::tools::ev::audit::Verdict {
    let v = frota::tools::ev::audit::check(&c.companies(), Duration::from_secs(10))
        .expect("audit reads");
    assert!(v.ok, "audit failed: {:#?}", v.lines());
    v
}
