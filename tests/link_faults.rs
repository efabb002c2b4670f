//! Network faults without root: a participant partitioned from its
//! coordinator right after voting yes keeps its hold in doubt (asking, never
//! deciding alone) until the link heals; then every company ends in the
//! coordinator's decision and the audit passes.

mod support;

use frota::ev::points::PointSet;
use frota::runtime::client::{call, ClientConfig};
use frota::runtime::launch::{temp_dir, wait_until, NodeProc};
use frota::tools::ev::audit;
use frota::tools::ev::cluster::{EvCluster, EvOptions};
use frota::{body, Body};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn cfg() -> ClientConfig {
    ClientConfig::default().with_timeout(Duration::from_secs(5))
}

fn fault(node: &str, peer: &str, mode: &str, delay_ms: u64) {
    let r = call(
        node,
        "link_fault",
        body(json!({"peer": peer, "mode": mode, "delay_ms": delay_ms})),
        &cfg(),
    )
    .unwrap();
    assert_eq!(r["mode"], mode);
}

fn reservations(addr: &str) -> Body {
    call(addr, "reservations", Body::new(), &cfg()).unwrap()
}

fn hold_of<'a>(r: &'a Body, vehicle_point: &str) -> Option<&'a Value> {
    r["holds"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["point"] == vehicle_point))
}

#[test]
fn partitioned_participant_stays_in_doubt_then_resolves() {
    let dir = temp_dir("link-faults");
    let mut opts = EvOptions::new(&dir);
    opts.hold_expiry_ms = 4000;
    opts.ask_interval_ms = 200;
    let ev = EvCluster::start(support::ev::bins(), opts).unwrap();
    let (a, b, c) = (
        ev.addr("company-A").to_string(),
        ev.addr("company-B").to_string(),
        ev.addr("company-C").to_string(),
    );
    let set = PointSet::default_set();
    let point = |co: &str| set.of_company(co).next().unwrap().id.clone();
    let (pa, pb, pc) = (point("A"), point("B"), point("C"));
    // C's prepare (and commit) arrive 1.5 s late: time to cut B off after its
    // yes vote and before A decides.
    fault(&a, &c, "delay", 1500);
    let route = json!({"request_id": "lf-1", "vehicle": "v1", "stops": [
        {"company": "A", "point": pa, "start": 600, "end": 660},
        {"company": "B", "point": pb, "start": 720, "end": 780},
        {"company": "C", "point": pc, "start": 840, "end": 900}]});
    let a2 = a.clone();
    let reserve = std::thread::spawn(move || {
        call(
            &a2,
            "reserve",
            body(route),
            &ClientConfig::default()
                .with_timeout(Duration::from_secs(30))
                .with_retries(0),
        )
    });
    // B voted yes (its hold is durable): partition A and B both ways.
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(10),
        || hold_of(&reservations(&b), &pb).is_some()
    ));
    fault(&a, &b, "drop", 0);
    fault(&b, &a, "drop", 0);
    let out = reserve.join().unwrap().unwrap();
    assert_eq!(out["outcome"], "reserved", "{out:?}");
    let txn = out["txn"].as_str().unwrap().to_string();
    // While partitioned, B keeps the hold in doubt and keeps asking A.
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || hold_of(&reservations(&b), &pb).is_some_and(|h| h["asked"].as_u64() >= Some(3))
    ));
    let rb = reservations(&b);
    assert_eq!(hold_of(&rb, &pb).unwrap()["txn"], txn.as_str());
    assert!(rb["reservations"].as_array().unwrap().is_empty());
    // A and C committed; the audit sees the half-finished route.
    let companies = ev.companies();
    let v = audit::check(&companies, Duration::ZERO).unwrap();
    assert!(!v.ok && v.holds_left == 1, "{:?}", v.problems);
    // Heal: B learns the outcome (commit) and the audit passes.
    fault(&a, &b, "heal", 0);
    fault(&b, &a, "heal", 0);
    fault(&a, &c, "heal", 0);
    assert!(wait_until(
        Duration::from_secs(15),
        Duration::from_millis(50),
        || {
            let r = reservations(&b);
            r["holds"].as_array().is_some_and(Vec::is_empty)
                && r["reservations"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|x| x["txn"] == txn.as_str()))
        }
    ));
    let v = audit::check(&companies, Duration::from_secs(10)).unwrap();
    assert!(v.ok, "{:?}", v.problems);
    assert_eq!(v.routes, 1);
    assert_eq!(v.reservations, 3);
}

#[test]
fn link_faults_flag_sets_the_table_at_start() {
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--link-faults",
        "127.0.0.1:9=drop,127.0.0.1:10=delay:50",
    ]
    .map(String::from)
    .to_vec();
    let node = NodeProc::spawn(
        Path::new(env!("CARGO_BIN_EXE_frota-echo")),
        &args,
        &[],
        None,
    )
    .unwrap();
    let r = call(
        &node.tcp().to_string(),
        "link_fault",
        body(json!({"peer": "127.0.0.1:11", "mode": "heal"})),
        &cfg(),
    )
    .unwrap();
    assert_eq!(
        r["faults"],
        json!({"127.0.0.1:9": "drop", "127.0.0.1:10": "delay:50"})
    );
    // A bad value is refused at start.
    let bad: Vec<String> = ["--listen", "127.0.0.1:0", "--link-faults", "nonsense"]
        .map(String::from)
        .to_vec();
    assert!(NodeProc::spawn(Path::new(env!("CARGO_BIN_EXE_frota-echo")), &bad, &[], None).is_err());
}
