//! Group commit under a crash: company A (coordinator of half the routes,
//! participant in all) is killed with -9 while concurrent routes are being
//! reserved. Many records share each fsync then, so this checks that no
//! route acknowledged `reserved` before the kill is lost after the restart:
//! every one is committed at all three companies, and the audit passes.
mod support;

use frota::ev::points::Stop;
use frota::runtime::client::{Client, ClientConfig};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::ev::*;
use support::wait_secs;

#[test]
fn company_killed_during_a_burst_loses_no_acknowledged_route() {
    let mut c = cluster("ev-burst-kill", |o| {
        o.hold_expiry_ms = 500;
        o.ask_interval_ms = 100;
    });
    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let window = Arc::new(AtomicU32::new(3000));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            // Half the requesters ask A (killed), half B (stays up).
            let addr = c.addr(if i % 2 == 0 { "company-A" } else { "company-B" });
            let (acked, stop, window) = (acked.clone(), stop.clone(), window.clone());
            std::thread::spawn(move || {
                let cfg = ClientConfig::default()
                    .with_timeout(Duration::from_secs(10))
                    .with_retries(0);
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let w = window.fetch_add(10, Ordering::SeqCst);
                    let stops: Vec<Stop> = route(0)
                        .into_iter()
                        .map(|mut s| {
                            s.start = w;
                            s.end = w + 5;
                            s
                        })
                        .collect();
                    let fields = json!({"request_id": format!("k{i}-{n}"),
                                        "vehicle": format!("burst-{i}"), "stops": stops});
                    // A connection per request: after the kill, reconnects fail
                    // fast instead of reusing a dead socket.
                    let r = Client::connect(&addr.to_string(), &cfg)
                        .and_then(|mut cl| cl.call("reserve", frota::body(fields)));
                    if let Ok(b) = r {
                        if b["outcome"] == "reserved" {
                            let txn = b["txn"].as_str().unwrap_or_default().to_string();
                            acked.lock().unwrap().push(txn);
                        }
                    }
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    assert!(
        wait_secs(30, || acked.lock().unwrap().len() >= 60),
        "the burst gets going"
    );
    c.kill("company-A");
    let at_kill = acked.lock().unwrap().len();
    // Keep the requesters going against B (and a dead A) for a moment.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    c.restart("company-A").expect("A restarts");
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    // Recovery: in-doubt holds at B and C ask A again and resolve.
    assert!(
        wait_secs(30, || holds_total(&c) == 0),
        "every hold resolved"
    );
    for n in ["A", "B", "C"] {
        let have: BTreeSet<String> = txns_in(&book(&c, n), "reservations").into_iter().collect();
        let lost: Vec<&String> = acked.difference(&have).collect();
        assert!(
            lost.is_empty(),
            "company {n} lost {} acknowledged route(s): {lost:?}",
            lost.len()
        );
    }
    let v = audit_ok(&c);
    assert!(v.routes >= acked.len());
    let status = ask(&c, "company-B", "status", json!({})).unwrap();
    let log: &Value = &status["participant"]["log"];
    eprintln!(
        "burst: {at_kill} routes acknowledged before the kill, {} in all, {} committed after restart; \
         B's participant log {} records in {} fsyncs; {:?}",
        acked.len(),
        v.routes,
        log["records"],
        log["fsyncs"],
        t0.elapsed()
    );
}
