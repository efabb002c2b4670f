//! Crash recovery with real processes stopped at named crash points
//! (`FROTA_CRASH_AT`), then restarted on the same address and data dir.
mod support;

use frota::tools::ev::cluster::EvCluster;
use serde_json::json;
use support::ev::*;
use support::wait_secs;

/// The one hold company `name` has now.
fn only_hold(c: &EvCluster, name: &str) -> serde_json::Value {
    let b = book(c, name);
    let holds = b["holds"].as_array().cloned().unwrap_or_default();
    assert_eq!(holds.len(), 1, "{name}: {b:?}");
    holds[0].clone()
}

#[test]
fn coordinator_killed_after_decision_participants_commit_when_it_returns() {
    let mut c = crashing(
        "ev-rec-decided",
        "company-A",
        "company.coord.after_decision",
    );
    let e = reserve(&c, "company-A", "r1", &route(8)).unwrap_err();
    assert!(!e.definite(), "the caller cannot know the outcome: {e}");
    wait_crash(&mut c, "company-A");
    let txn = only_hold(&c, "B")["txn"].as_str().unwrap().to_string();
    assert_eq!(only_hold(&c, "C")["txn"], txn.as_str());
    // The blocking case: B and C voted yes, their holds expired, and they
    // keep asking the dead coordinator instead of deciding on their own.
    assert!(wait_secs(20, || only_hold(&c, "B")["asked"]
        .as_u64()
        .unwrap_or(0)
        >= 3));
    assert!(txns_in(&book(&c, "B"), "reservations").is_empty());
    // The coordinator returns: its log says commit, so everyone commits.
    restart_clean(&mut c, "company-A");
    assert!(wait_secs(20, || committed_everywhere(&c, &txn)
        && holds_total(&c) == 0));
    let r = ask(&c, "company-A", "decision", json!({"txn": txn})).unwrap();
    assert_eq!(r["outcome"], "commit");
    assert_eq!(audit_ok(&c).routes, 1);
}

#[test]
fn coordinator_killed_before_deciding_participants_abort() {
    let mut c = crashing(
        "ev-rec-undecided",
        "company-A",
        "company.coord.before_decision",
    );
    assert!(reserve(&c, "company-A", "r1", &route(8)).is_err());
    wait_crash(&mut c, "company-A");
    let txn = only_hold(&c, "C")["txn"].as_str().unwrap().to_string();
    assert!(wait_secs(20, || only_hold(&c, "C")["asked"]
        .as_u64()
        .unwrap_or(0)
        >= 2));
    restart_clean(&mut c, "company-A");
    // No commit record → abort: the holds go, nothing is reserved.
    assert!(wait_secs(20, || holds_total(&c) == 0));
    for n in ["A", "B", "C"] {
        assert!(txns_in(&book(&c, n), "reservations").is_empty(), "{n}");
    }
    let r = ask(&c, "company-A", "decision", json!({"txn": txn})).unwrap();
    assert_eq!(r["outcome"], "abort");
    assert_eq!(audit_ok(&c).routes, 0);
    // The points are free again.
    let again = reserve(&c, "company-A", "r2", &route(8)).unwrap();
    assert_eq!(again["outcome"], "reserved");
}

#[test]
fn participant_killed_after_voting_yes_restores_its_hold_and_commits() {
    let mut c = crashing(
        "ev-rec-participant",
        "company-B",
        "company.commit.before_log",
    );
    let r = reserve(&c, "company-A", "r1", &route(8)).unwrap();
    // The decision was commit before B died: the route is reserved.
    assert_eq!(r["outcome"], "reserved", "{r:?}");
    let txn = r["txn"].as_str().unwrap().to_string();
    wait_crash(&mut c, "company-B");
    restart_clean(&mut c, "company-B");
    // B restored its hold from its log and learned the outcome.
    assert!(wait_secs(20, || committed_everywhere(&c, &txn)
        && holds_total(&c) == 0));
    assert_eq!(audit_ok(&c).routes, 1);
}

#[test]
fn participant_killed_after_logging_its_hold_learns_abort() {
    let mut c = crashing("ev-rec-vote-lost", "company-C", "company.prepare.after_log");
    let r = reserve(&c, "company-A", "r1", &route(8)).unwrap();
    // C's vote never arrived: the coordinator aborts.
    assert_eq!(r["outcome"], "rejected", "{r:?}");
    assert_eq!(r["conflict"]["company"], "C");
    wait_crash(&mut c, "company-C");
    restart_clean(&mut c, "company-C");
    assert!(wait_secs(20, || holds_total(&c) == 0));
    assert_eq!(audit_ok(&c).routes, 0);
}

/// The coordinator log is compacted (`--compact-every`) to the decisions a
/// restart needs. Killed at either side of the rewrite, or with kill -9 after
/// it, the company answers `decision` for every route exactly as before:
/// commit for each route it reserved, abort for each it rejected.
#[test]
fn a_compacted_coordinator_log_keeps_every_decision() {
    for (i, point) in [
        "company.coord.before_compact",
        "company.coord.after_compact",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = cluster(&format!("ev-rec-compact-{i}"), |o| {
            o.ask_interval_ms = 50;
            o.company_args = vec!["--compact-every".into(), "20".into()];
            if !point.is_empty() {
                o.env.insert(
                    "company-A".into(),
                    vec![("FROTA_CRASH_AT".into(), point.into())],
                );
            }
        });
        let (mut committed, mut rejected) = (Vec::new(), Vec::new());
        for h in 0..60u32 {
            // Every third request wants the previous route's stops again.
            let (rid, stops) = if h % 3 == 2 {
                (format!("again{h}"), route(h - 1))
            } else {
                (format!("r{h}"), route(h))
            };
            let Ok(out) = reserve(&c, "company-A", &rid, &stops) else {
                break; // the crash point fired; this route's outcome is unknown
            };
            let txn = out["txn"].as_str().unwrap_or_default().to_string();
            match out["outcome"].as_str() {
                Some("reserved") => committed.push(txn),
                Some("rejected") => rejected.push(txn),
                other => panic!("{point}: {other:?} {out:?}"),
            }
            if point.is_empty() && h >= 40 {
                break;
            }
        }
        if point.is_empty() {
            let compactions = || {
                ask(&c, "company-A", "status", json!({}))
                    .map_or(0, |s| s["coordinator"]["compactions"].as_u64().unwrap_or(0))
            };
            assert!(wait_secs(20, || compactions() >= 1), "never compacted");
            c.kill("company-A");
        } else {
            wait_crash(&mut c, "company-A");
        }
        restart_clean(&mut c, "company-A");
        assert!(committed.len() >= 5 && rejected.len() >= 2, "{point}");
        for (txns, outcome) in [(&committed, "commit"), (&rejected, "abort")] {
            for txn in txns {
                let r = ask(&c, "company-A", "decision", json!({"txn": txn})).unwrap();
                assert_eq!(r["outcome"], outcome, "{point}: {txn}");
            }
        }
        assert!(wait_secs(20, || holds_total(&c) == 0), "{point}");
        // A route cut short by the crash may have been committed too.
        let routes = audit_ok(&c).routes;
        assert!(
            routes == committed.len() || routes == committed.len() + 1,
            "{point}: {routes} routes, {} acknowledged",
            committed.len()
        );
    }
}
