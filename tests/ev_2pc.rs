//! Two-phase commit across real company processes: all-yes commit, one no
//! aborts everywhere, idempotent retries of every phase, and a contention
//! storm of route requests through the broker.
mod support;

use frota::ev::bus_client::BusClient;
use frota::ev::company::messages::RouteOutcome;
use frota::ev::points::Stop;
use frota::runtime::client::ClientConfig;
use frota::Code;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::ev::*;
use support::wait_secs;

#[test]
fn all_yes_commits_everywhere_and_one_no_aborts_everywhere() {
    let c = cluster("ev-2pc-basic", |_| {});
    let ok = reserve(&c, "company-A", "r1", &route(8)).unwrap();
    assert_eq!(ok["outcome"], "reserved", "{ok:?}");
    let txn = ok["txn"].as_str().unwrap().to_string();
    // One transaction per request: <coordinator>/<vehicle>/<request_id>.
    assert_eq!(txn, "A/veh-r1/r1");
    // Phase 2 travels after the reply (protocol.md, rule 7): poll for it.
    assert!(wait_secs(10, || committed_everywhere(&c, &txn)));

    // C's point is taken at 12:00 by a one-stop route; a route needing it
    // is prepared at A and B (yes), refused at C (no) → aborted at all.
    let blocker = reserve(&c, "company-B", "r2", &[stop("C", "C-AJU-1", 14 * 60)]).unwrap();
    assert_eq!(blocker["outcome"], "reserved");
    let no = reserve(&c, "company-B", "r3", &route(10)).unwrap();
    assert_eq!(no["outcome"], "rejected", "{no:?}");
    assert_eq!(no["conflict"]["company"], "C");
    assert_eq!(no["conflict"]["code"], Code::Conflict.number());
    let bad = no["txn"].as_str().unwrap().to_string();
    let gone = |n: &str| {
        let b = book(&c, n);
        !txns_in(&b, "reservations").contains(&bad) && !txns_in(&b, "holds").contains(&bad)
    };
    for n in ["A", "B", "C"] {
        assert!(!txns_in(&book(&c, n), "reservations").contains(&bad), "{n}");
        assert!(wait_secs(10, || gone(n)), "{n}: {:?}", book(&c, n));
    }
    // The refused route's A and B stops are free again.
    let again = reserve(&c, "company-C", "r4", &route(10)[..2]).unwrap();
    assert_eq!(again["outcome"], "reserved", "{again:?}");
    let v = audit_ok(&c);
    assert_eq!((v.routes, v.reservations, v.holds_left), (3, 3 + 1 + 2, 0));
}

/// protocol.md (the outcome table): a stop whose company cannot be reached
/// is a no with code 11, like a full log — `rejected`, nothing left held.
#[test]
fn a_company_that_cannot_be_reached_is_a_no_with_code_11() {
    let mut c = cluster("ev-2pc-down", |_| {});
    c.kill("company-C");
    let no = reserve(&c, "company-A", "d1", &route(8)).unwrap();
    assert_eq!(no["outcome"], "rejected", "{no:?}");
    assert_eq!(no["conflict"]["company"], "C", "{no:?}");
    assert_eq!(
        no["conflict"]["code"],
        Code::TemporarilyUnavailable.number(),
        "{no:?}"
    );
    let held = |n: &str| txns_in(&book(&c, n), "holds").len();
    assert!(wait_secs(10, || held("A") + held("B") == 0));
    // `lookup` with `local: true` asks only A (which coordinates d1): its
    // answer, without `unreachable` (protocol.md, Looking a request up).
    let q = json!({"vehicle": "veh-d1", "request_id": "d1", "local": true});
    let local = ask(&c, "company-A", "lookup", q).unwrap();
    assert_eq!(local["outcome"], "rejected", "{local:?}");
    assert!(local.get("unreachable").is_none(), "{local:?}");
}

#[test]
fn every_phase_is_idempotent() {
    // Long expiry: nobody asks A about these hand-made transactions.
    let c = cluster("ev-2pc-idem", |o| o.hold_expiry_ms = 60_000);
    let prep = |txn: &str, start: u32| {
        json!({"txn": format!("A/v1/{txn}"), "coordinator": "A", "point": "B-REC-1", "start": start,
               "end": start + 60, "vehicle": "v1", "participants": ["B"]})
    };
    let t = |txn: &str| json!({"txn": format!("A/v1/{txn}")});
    // prepare twice → the same yes vote
    for _ in 0..2 {
        let r = ask(&c, "company-B", "prepare", prep("t1", 480)).unwrap();
        assert_eq!(
            (r["txn"].as_str(), r["vote"].as_str()),
            (Some("A/v1/t1"), Some("yes"))
        );
    }
    // an overlapping prepare of another txn is a no (conflict)
    let e = ask(&c, "company-B", "prepare", prep("t2", 510)).unwrap_err();
    assert_eq!(e.code, Code::Conflict);
    // commit twice → committed both times; prepare after commit → still yes
    for _ in 0..2 {
        let r = ask(&c, "company-B", "commit", t("t1")).unwrap();
        assert_eq!(r["state"], "committed");
    }
    assert_eq!(
        ask(&c, "company-B", "prepare", prep("t1", 480)).unwrap()["vote"],
        "yes"
    );
    // abort of a committed txn is refused, definitely
    let e = ask(&c, "company-B", "abort", t("t1")).unwrap_err();
    assert_eq!(e.code, Code::PreconditionFailed);
    // abort twice → aborted; a prepare after its abort is refused (14)
    ask(&c, "company-B", "prepare", prep("t3", 600)).unwrap();
    for _ in 0..2 {
        let r = ask(&c, "company-B", "abort", t("t3")).unwrap();
        assert_eq!(r["state"], "aborted");
    }
    let e = ask(&c, "company-B", "prepare", prep("t3", 600)).unwrap_err();
    assert_eq!(e.code, Code::Abort);
    // abort of an unknown txn is remembered: its late prepare is refused
    ask(&c, "company-B", "abort", t("t4")).unwrap();
    assert_eq!(
        ask(&c, "company-B", "prepare", prep("t4", 700))
            .unwrap_err()
            .code,
        Code::Abort
    );
    // commit of an unknown txn: not found
    let e = ask(&c, "company-B", "commit", t("t5")).unwrap_err();
    assert_eq!(e.code, Code::NotFound);
    // decision about an undecided txn: abort, and the same answer again
    for _ in 0..2 {
        let r = ask(&c, "company-A", "decision", json!({"txn": "A/v9/404"})).unwrap();
        assert_eq!(r["outcome"], "abort");
    }
    // a retried route request gets the first answer (same txn), not a second route
    let first = reserve(&c, "company-A", "same", &route(9)).unwrap();
    let second = reserve(&c, "company-A", "same", &route(9)).unwrap();
    assert_eq!(first["outcome"], "reserved");
    assert_eq!(first["txn"], second["txn"]);
    // ... and its decision is commit, every time
    let txn = first["txn"].as_str().unwrap();
    for _ in 0..2 {
        let r = ask(&c, "company-A", "decision", json!({"txn": txn})).unwrap();
        assert_eq!(r["outcome"], "commit");
    }
    // state survives a restart (the log replays): B still has t1, not t3
    let mut c = c;
    c.restart("company-B").unwrap();
    let b = book(&c, "B");
    assert!(txns_in(&b, "reservations").contains(&"A/v1/t1".to_string()));
    assert_eq!(
        ask(&c, "company-B", "prepare", prep("t3", 600))
            .unwrap_err()
            .code,
        Code::Abort
    );
}

/// A reserved request's answer is kept for good; a rejected one for the
/// retry horizon (`--answer-window-ms`). After the horizon a retry of the
/// rejected request runs its same transaction again, which the participants
/// refuse as already aborted: still one transaction, still rejected.
#[test]
fn answers_outlive_the_retry_horizon_as_one_transaction() {
    let c = cluster("ev-2pc-window", |o| {
        o.ask_interval_ms = 100;
        o.company_args = vec!["--answer-window-ms".into(), "500".into()];
    });
    let first = reserve(&c, "company-A", "late", &route(11)).unwrap();
    assert_eq!(first["outcome"], "reserved", "{first:?}");
    let lost = reserve(&c, "company-A", "lost", &route(11)).unwrap();
    assert_eq!(lost["outcome"], "rejected", "{lost:?}");
    let gone = || {
        ask(&c, "company-A", "status", json!({}))
            .map(|s| s["coordinator"]["transactions_remembered"] == 1)
            .unwrap_or(false)
    };
    assert!(wait_secs(20, gone), "the rejection was never forgotten");
    let again = reserve(&c, "company-B", "late", &route(11)).unwrap();
    assert_eq!(
        (&again["outcome"], &again["txn"]),
        (&first["outcome"], &first["txn"])
    );
    let later = reserve(&c, "company-B", "lost", &route(11)).unwrap();
    assert_eq!(later["txn"], lost["txn"], "{later:?}");
    assert_eq!(later["outcome"], "rejected", "{later:?}");
    let v = audit_ok(&c);
    assert_eq!((v.routes, v.reservations), (1, 3));
}

/// Publish `reqs` as vehicles through the broker and collect every answer.
fn storm(
    c: &frota::tools::ev::cluster::EvCluster,
    tag: &str,
    routes: &[Vec<Stop>],
) -> Vec<RouteOutcome> {
    let broker = c.addr("broker").to_string();
    let bus = Arc::new(BusClient::connect(&broker, ClientConfig::default()).unwrap());
    bus.subscribe("vehicle/+/response").unwrap();
    let routes: Vec<(String, Vec<Stop>)> = routes
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("{tag}{i:04}"), r.clone()))
        .collect();
    std::thread::scope(|s| {
        for chunk in routes.chunks(routes.len().div_ceil(8)) {
            let bus = bus.clone();
            s.spawn(move || {
                for (v, stops) in chunk {
                    let req = json!({"request_id": "1", "vehicle": v, "stops": stops});
                    bus.publish(&format!("vehicle/{v}/request"), req).unwrap();
                }
            });
        }
    });
    let mut got: BTreeMap<String, RouteOutcome> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < routes.len() && Instant::now() < deadline {
        if let Some((_, p)) = bus.recv(Duration::from_millis(500)) {
            let o: RouteOutcome = serde_json::from_value(p).unwrap();
            got.insert(o.vehicle.clone(), o);
        }
    }
    assert_eq!(got.len(), routes.len(), "every request answered");
    got.into_values().collect()
}

#[test]
fn contention_storm_exactly_one_winner_per_route_and_audit_holds() {
    let c = cluster("ev-2pc-storm", |o| o.hold_expiry_ms = 3000);
    // Wave 1: 4 distinct routes, each wanted by 50 vehicles at once.
    let wanted: Vec<Vec<Stop>> = (0..200)
        .map(|i| route(6 + 2 * (i % 4) as u32 * 3))
        .collect();
    let t0 = Instant::now();
    let out = storm(&c, "s", &wanted);
    let wave1 = t0.elapsed();
    let winners: Vec<&RouteOutcome> = out.iter().filter(|o| o.outcome == "reserved").collect();
    let rejected = out.iter().filter(|o| o.outcome == "rejected").count();
    assert_eq!(
        winners.len(),
        4,
        "exactly one winner per contended route: {winners:#?}"
    );
    assert_eq!(rejected, 196);
    let mut won: Vec<u32> = winners.iter().map(|o| o.stops[0].start).collect();
    won.sort_unstable();
    won.dedup();
    assert_eq!(won.len(), 4, "one winner for each of the 4 routes");
    // Whatever company the share group picked, the coordinator is the
    // company of the first stop (A): the others forwarded.
    assert!(out.iter().all(|o| o.coordinator == "A"), "{out:#?}");

    // Wave 2: 200 routes over 2 points per company with half-hour offsets
    // (partial overlaps everywhere) in random company mixes.
    let pts = [
        ("A", ["A-REC-1", "A-REC-2"]),
        ("B", ["B-MCZ-1", "B-MCZ-2"]),
        ("C", ["C-JPA-1", "C-JPA-2"]),
    ];
    let mut rng = support::Rng::new(42);
    let mut rnd = |n: u64| rng.below(n);
    let mixed: Vec<Vec<Stop>> = (0..200)
        .map(|_| {
            pts.iter()
                .map(|(co, ps)| {
                    let start = 20 * 60 + 30 * rnd(6) as u32;
                    stop(co, ps[rnd(2) as usize], start)
                })
                .collect()
        })
        .collect();
    let t1 = Instant::now();
    let out2 = storm(&c, "m", &mixed);
    let wave2 = t1.elapsed();
    let won2 = out2.iter().filter(|o| o.outcome == "reserved").count();
    assert!(won2 >= 1, "someone wins");
    assert_eq!(out2.iter().filter(|o| o.outcome == "failed").count(), 0);
    let v = audit_ok(&c);
    assert_eq!(v.routes, 4 + won2);
    eprintln!(
        "storm: wave 1 (200 requests, 4 routes) {wave1:?}: 4 reserved, 196 rejected; \
         wave 2 (200 mixed) {wave2:?}: {won2} reserved; audit PASS"
    );
}

#[test]
fn companies_resubscribe_after_a_broker_restart() {
    let mut c = cluster("ev-2pc-broker-restart", |_| {});
    c.restart("broker").unwrap();
    // All three companies are back in the share group.
    assert!(wait_secs(20, || {
        ask(&c, "broker", "status", json!({}))
            .map(|s| {
                s["subscribers"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|x| x["filters"][0] == "$share/companies/vehicle/+/request")
                            .count()
                    })
                    .unwrap_or(0)
                    == 3
            })
            .unwrap_or(false)
    }));
    let out = storm(&c, "after", &[route(8)]);
    assert_eq!(out[0].outcome, "reserved", "{out:?}");
    audit_ok(&c);
}
