//! Request identity, over real processes: one route request is one transaction,
//! whatever company a retry reaches and whatever crashed in between.
//!
//! The black-box checker's pattern: the coordinator is killed -9 in the
//! middle of a transaction (crash points), the vehicle retries the same
//! request at another company and at the same one, and must get the one
//! outcome of the one transaction — never a second transaction, never
//! `rejected` while the route is reserved, never a definite answer while
//! the coordinator cannot be asked.
mod support;

use frota::ev::points::Stop;
use frota::tools::ev::cluster::EvCluster;
use frota::{Body, Code, Error};
use serde_json::json;
use std::time::Duration;
use support::ev::*;
use support::wait_secs;

/// `reserve` of vehicle `v1`'s request `rid`, sent to `via`.
fn attempt(c: &EvCluster, via: &str, rid: &str, stops: &[Stop]) -> Result<Body, Error> {
    ask(
        c,
        via,
        "reserve",
        json!({"request_id": rid, "vehicle": "v1", "stops": stops}),
    )
}

fn lookup(c: &EvCluster, via: &str, rid: &str) -> Body {
    ask(
        c,
        via,
        "lookup",
        json!({"vehicle": "v1", "request_id": rid}),
    )
    .expect("lookup")
}

/// Killed after its commit record was durable, before anyone heard: the
/// retries — while it is down, then at another company and at itself —
/// get an indefinite error, then `reserved` of the one transaction.
#[test]
fn killed_after_deciding_commit_every_retry_gets_that_commit() {
    let mut c = crashing(
        "ev-id-committed",
        "company-A",
        "company.coord.after_decision",
    );
    let e = attempt(&c, "company-A", "r1", &route(8)).unwrap_err();
    assert!(!e.definite(), "{e}");
    wait_crash(&mut c, "company-A");
    // A is down: B cannot ask it, so it cannot say anything definite.
    let e = attempt(&c, "company-B", "r1", &route(8)).unwrap_err();
    assert!(
        !e.definite(),
        "a definite answer without the coordinator: {e}"
    );
    assert_eq!(e.code, Code::Crash);
    let l = lookup(&c, "company-C", "r1");
    assert_eq!(l["outcome"], "unknown", "{l:?}");
    assert_eq!(l["unreachable"], json!(["A"]), "{l:?}");
    restart_clean(&mut c, "company-A");
    for via in ["company-C", "company-A", "company-B"] {
        let r = attempt(&c, via, "r1", &route(8)).unwrap();
        assert_eq!(r["outcome"], "reserved", "via {via}: {r:?}");
        assert_eq!(r["txn"], "A/v1/r1", "via {via}: one transaction: {r:?}");
    }
    assert!(wait_secs(20, || committed_everywhere(&c, "A/v1/r1")
        && holds_total(&c) == 0));
    let l = lookup(&c, "company-B", "r1");
    assert_eq!(
        (l["outcome"].as_str(), l["txn"].as_str()),
        (Some("reserved"), Some("A/v1/r1"))
    );
    assert_eq!(audit_ok(&c).routes, 1);
}

/// Killed with every hold taken and nothing decided: whatever the outcome
/// turns out to be (the restarted coordinator aborts what it began, or the
/// retry runs the same transaction to its end), every retry gets the same
/// one, and it is true at every stop.
#[test]
fn killed_before_deciding_every_retry_gets_one_true_outcome() {
    let mut c = crashing(
        "ev-id-undecided",
        "company-A",
        "company.coord.before_decision",
    );
    assert!(attempt(&c, "company-A", "r1", &route(8)).is_err());
    wait_crash(&mut c, "company-A");
    let e = attempt(&c, "company-C", "r1", &route(8)).unwrap_err();
    assert!(!e.definite(), "{e}");
    restart_clean(&mut c, "company-A");
    let first = attempt(&c, "company-B", "r1", &route(8)).unwrap();
    let outcome = first["outcome"].as_str().unwrap().to_string();
    assert!(outcome == "reserved" || outcome == "rejected", "{first:?}");
    assert_eq!(first["txn"], "A/v1/r1");
    for via in ["company-A", "company-C"] {
        let r = attempt(&c, via, "r1", &route(8)).unwrap();
        assert_eq!(
            (&r["outcome"], &r["txn"]),
            (&first["outcome"], &first["txn"]),
            "via {via}"
        );
    }
    assert!(wait_secs(20, || holds_total(&c) == 0));
    let routes = audit_ok(&c).routes;
    if outcome == "reserved" {
        assert!(committed_everywhere(&c, "A/v1/r1"));
        assert_eq!(routes, 1);
    } else {
        assert_eq!(routes, 0, "rejected, yet something is reserved");
    }
}

/// Killed after its abort record (a stop said no) was durable, before the
/// answer: a retry at another company after the restart gets `rejected`
/// with the same conflict — the record says what the client is told.
#[test]
fn killed_after_deciding_abort_every_retry_gets_that_rejection() {
    let mut c = crashing(
        "ev-id-rejected",
        "company-A",
        "company.coord.after_abort_log",
    );
    // C's point is taken at the route's hour: the route gets a no from C.
    let blocker = ask(
        &c,
        "company-C",
        "reserve",
        json!({"request_id": "b1", "vehicle": "v0", "stops": [stop("C", "C-AJU-1", 12 * 60)]}),
    )
    .unwrap();
    assert_eq!(blocker["outcome"], "reserved");
    assert!(attempt(&c, "company-A", "r2", &route(8)).is_err());
    wait_crash(&mut c, "company-A");
    restart_clean(&mut c, "company-A");
    for via in ["company-B", "company-A"] {
        let r = attempt(&c, via, "r2", &route(8)).unwrap();
        assert_eq!(r["outcome"], "rejected", "via {via}: {r:?}");
        assert_eq!(r["txn"], "A/v1/r2");
        assert_eq!(r["conflict"]["company"], "C", "{r:?}");
        assert_eq!(r["conflict"]["code"], Code::Conflict.number());
    }
    assert!(wait_secs(20, || holds_total(&c) == 0));
    assert_eq!(audit_ok(&c).routes, 1, "only the blocker");
}

/// A retry that arrives while the first attempt is still in phase 1 waits
/// for it up to `--retry-wait-ms`, then gets an indefinite error (13) —
/// never a definite answer about an undecided transaction. Later retries
/// get the first attempt's outcome.
#[test]
fn a_retry_while_undecided_waits_then_gets_an_indefinite_error() {
    let c = cluster("ev-id-wait", |o| {
        o.peer_timeout_ms = 5000;
        o.company_args = vec!["--retry-wait-ms".into(), "300".into()];
    });
    // Every frame from A to C waits 1.5 s: phase 1 takes that long.
    let to_c = c.addr("company-C").to_string();
    ask(
        &c,
        "company-A",
        "link_fault",
        json!({"peer": to_c, "mode": "delay", "delay_ms": 1500}),
    )
    .unwrap();
    let first = std::thread::scope(|s| {
        let first = s.spawn(|| attempt(&c, "company-A", "r3", &route(9)));
        std::thread::sleep(Duration::from_millis(300));
        let t = std::time::Instant::now();
        let e = attempt(&c, "company-B", "r3", &route(9)).unwrap_err();
        assert_eq!(e.code, Code::Crash, "{e}");
        assert!(!e.definite());
        assert!(t.elapsed() >= Duration::from_millis(250), "it waited first");
        first.join().unwrap().unwrap()
    });
    assert_eq!(first["outcome"], "reserved", "{first:?}");
    let again = attempt(&c, "company-B", "r3", &route(9)).unwrap();
    assert_eq!(
        (&again["outcome"], &again["txn"]),
        (&first["outcome"], &first["txn"])
    );
}

/// `decision` names the coordinator of another company's transaction and
/// records nothing; a request id reused for another route is refused; a
/// `prepare` of a known transaction for another stop is refused.
#[test]
fn refusals_that_keep_one_transaction_per_request() {
    let c = cluster("ev-id-refusals", |_| {});
    let log_records = |node: &str| {
        ask(&c, node, "status", json!({})).unwrap()["coordinator"]["log"]["records"]
            .as_u64()
            .unwrap()
    };
    let before = log_records("company-B");
    let e = ask(&c, "company-B", "decision", json!({"txn": "A/v1/r9"})).unwrap_err();
    assert_eq!(e.code, Code::NotCoordinator, "{e}");
    assert!(e.text.contains("ask A"), "{e}");
    let e = ask(&c, "company-B", "decision", json!({"txn": "A-42"})).unwrap_err();
    assert_eq!(e.code, Code::MalformedRequest, "{e}");
    assert_eq!(log_records("company-B"), before, "nothing recorded");

    let first = attempt(&c, "company-B", "r4", &route(10)).unwrap();
    assert_eq!(first["outcome"], "reserved", "{first:?}");
    let mut other = route(10);
    other[1].start += 60;
    other[1].end += 60;
    let reused = attempt(&c, "company-C", "r4", &other).unwrap();
    assert_eq!(reused["outcome"], "failed", "{reused:?}");
    assert_eq!(reused["conflict"]["code"], Code::AlreadyExists.number());

    let p = json!({"txn": "A/v1/r4", "coordinator": "A", "point": "B-REC-1", "start": 100,
                   "end": 160, "vehicle": "v1", "participants": ["A", "B", "C"]});
    let e = ask(&c, "company-B", "prepare", p).unwrap_err();
    assert_eq!(e.code, Code::PreconditionFailed, "{e}");
    assert_eq!(audit_ok(&c).routes, 1);
}
