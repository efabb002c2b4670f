//! Log compaction of the rental backup: with `--compact-every 50` a few
//! hundred operations leave a short log (one snapshot plus a tail), and a
//! backup killed with -9 and restarted still knows every acknowledged
//! operation, answers retried request ids with their first answer, and
//! passes the audit.

mod support;
use support::rental::{assert_audit, bins, ok, send};
use support::{assert_crash_exit, s, send_to};

use frota::runtime::launch::{temp_dir, wait_until};
use frota::tools::rental::cluster::{ClusterOptions, RentalCluster};
use frota::{Body, Code, Error};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const EVERY: u64 = 50;
const CLASSES: [&str; 5] = ["economy", "intermediate", "suv", "executive", "minivan"];

fn log_lines(path: &Path) -> usize {
    std::fs::read(path)
        .unwrap()
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// (snapshot records at the start of the log, records after them).
fn snapshot_and_tail(path: &Path) -> (usize, usize) {
    let recs = frota::runtime::wal::read_records(path).unwrap();
    let snap = recs
        .iter()
        .take_while(|r| matches!(r["k"].as_str(), Some("snapshot" | "snapshot_more")))
        .count();
    if snap > 0 {
        assert_eq!(recs[0]["k"], "snapshot", "a snapshot starts with its head");
    }
    (snap, recs.len() - snap)
}

/// A class with a free car and a terminal that holds one, polled for
/// (bounded): the terminals' syncs hand free cars to requests left waiting
/// (for instance while their terminal looked unreachable under load), so
/// no class, economy included, is assumed to have one right now. `Err`: the
/// backup did not answer (it crashed).
fn free_car(c: &RentalCluster) -> Result<(&'static str, String), Error> {
    let mut found = Ok(None);
    wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        found = first_holder(c);
        !matches!(found, Ok(None))
    });
    match found {
        Ok(Some(car)) => Ok(car),
        Err(e) => Err(e),
        Ok(None) => {
            let st = send(c, "backup", "status", json!({}));
            panic!("no free car of any class for 30 s: {st:?}")
        }
    }
}

fn first_holder(c: &RentalCluster) -> Result<Option<(&'static str, String)>, Error> {
    for class in CLASSES {
        let holders = send(c, "backup", "holders", json!({"class": class}))?;
        if let Some(at) = holders["terminals"][0].as_str() {
            return Ok(Some((class, at.to_string())));
        }
    }
    Ok(None)
}

/// One acknowledged operation: where it was sent and its first answer.
struct Acked {
    node: String,
    kind: &'static str,
    fields: Value,
    answer: Result<Body, Error>,
}

/// The fields a retry must repeat (terminals may add their own).
fn essence(r: &Result<Body, Error>) -> Value {
    match r {
        Ok(b) => json!({
            "status": b.get("status"), "car": b.get("car"),
            "handed_to": b.get("handed_to"), "terminal": b.get("terminal"),
            "request_id": b.get("request_id"),
        }),
        Err(e) => json!({"error": e.code as u16}),
    }
}

#[test]
fn compacted_log_survives_kill_9_with_every_acknowledged_operation() {
    let mut opts = ClusterOptions::fast();
    opts.backup_args = vec!["--compact-every".into(), EVERY.to_string()];
    // Nothing expires during the test: the ledger only changes by our ops.
    opts.claim_timeout_ms = 600_000;
    let dir = temp_dir("rental-compaction");
    let mut c = RentalCluster::start_with(bins(), &dir, opts).unwrap();
    let log = dir.join("backup").join("rental.log");
    let mut acked: Vec<Acked> = Vec::new();
    let mut held: Vec<String> = Vec::new();
    let mut max_lines = 0;
    let mut record = |c: &RentalCluster, node: String, kind: &'static str, fields: Value| {
        let answer = send(c, &node, kind, fields.clone());
        if let Err(e) = &answer {
            assert!(e.definite(), "{kind} {fields}: {e}");
        }
        acked.push(Acked {
            node,
            kind,
            fields,
            answer: answer.clone(),
        });
        answer
    };
    for i in 0..200 {
        let at = format!("terminal-{}", i % 3 + 1);
        let rid = format!("r{i}");
        let class = CLASSES[i % 5];
        let r = record(
            &c,
            at.clone(),
            "rent",
            json!({"request_id": rid, "class": class, "client": "c"}),
        );
        match r {
            Ok(b) if s(&b, "status") == "rented" => held.push(s(&b, "car")),
            Ok(_) if i % 4 == 0 => {
                // Queued: withdraw it (unless a return already fulfilled it).
                let cancel = record(&c, at.clone(), "cancel", json!({"request_id": rid}));
                if cancel.is_err_and(|e| e.code == Code::PreconditionFailed) {
                    let b = ok(
                        &c,
                        "backup",
                        "check_pending",
                        json!({"request_id": rid, "claim": true}),
                    );
                    held.push(s(&b, "car"));
                }
            }
            _ => {} // left waiting: a later return hands it a car
        }
        // Give back the oldest held car most of the time, so rents,
        // pends and hand-overs keep happening.
        if i % 4 != 3 && !held.is_empty() {
            let car = held.remove(0);
            let back = record(
                &c,
                at,
                "return",
                json!({"request_id": format!("{rid}-back"), "car": car}),
            );
            assert!(back.is_ok(), "return of {car}: {back:?}");
        }
        max_lines = max_lines.max(log_lines(&log));
        if i % 40 == 39 {
            assert_audit(&c); // audit and compaction interleave safely
        }
    }
    let st = ok(&c, "backup", "status", json!({}));
    let written = st["records_written"].as_u64().unwrap();
    let compactions = st["compactions"].as_u64().unwrap();
    let count = |kind: &str, status: &str| {
        acked
            .iter()
            .filter(|a| a.kind == kind)
            .filter(|a| a.answer.as_ref().is_ok_and(|b| s(b, "status") == status))
            .count()
    };
    let (pends, cancels) = (count("rent", "pending"), count("cancel", "cancelled"));
    let handed = acked
        .iter()
        .filter(|a| {
            a.answer
                .as_ref()
                .is_ok_and(|b| b.get("handed_to").is_some_and(Value::is_string))
        })
        .count();
    eprintln!(
        "compaction: {} acknowledged ops ({pends} pends, {cancels} cancels, {handed} returns \
         handed to a waiting request), {written} records written, {compactions} compactions, \
         log at most {max_lines} lines",
        acked.len()
    );
    // Every kind of change went through the compacted log.
    assert!(
        pends >= 10 && cancels >= 5 && handed >= 5,
        "too few pends/cancels/hand-overs"
    );
    assert!(written >= 4 * EVERY, "enough records to compact: {st:?}");
    assert!(compactions >= 3, "{st:?}");
    // The log never held much more than one snapshot plus EVERY records, or
    // plus as many records as the snapshot has entries once it is bigger
    // (so compaction stays O(1) per record); a refused compaction may let a
    // few more in before the next try.
    let snapshot = st["snapshot_entries"].as_u64().unwrap();
    assert!(snapshot > 0, "{st:?}");
    assert!(
        max_lines as u64 <= 2 * EVERY.max(snapshot),
        "{max_lines} lines, snapshot of {snapshot} entries"
    );
    assert!((max_lines as u64) < written);
    assert_audit(&c);

    let before_kill = std::fs::read(&log).unwrap();
    c.kill("backup");
    c.restart("backup").unwrap();
    let st = ok(&c, "backup", "status", json!({}));
    assert!(st["replayed_records"].as_u64().unwrap() as usize <= max_lines);
    // Start-up changes nothing on disk (no compaction there: a node must
    // start on a nearly full disk); the first writes compact a long log.
    assert_eq!(std::fs::read(&log).unwrap(), before_kill);
    assert_eq!(st["compactions"], 0, "{st:?}");

    for a in &acked {
        let rid = a.fields["request_id"].as_str().unwrap();
        // Every acknowledged rent/return is known to the backup as it was.
        if let (Ok(b), "rent") = (&a.answer, a.kind) {
            let now = ok(&c, "backup", "check_pending", json!({"request_id": rid}));
            if s(b, "status") == "rented" {
                assert_eq!(
                    (s(&now, "status"), s(&now, "car")),
                    ("rented".into(), s(b, "car")),
                    "{rid}"
                );
            } else {
                assert_ne!(s(&now, "status"), "unknown", "{rid}");
            }
        }
        if a.kind == "cancel" && a.answer.is_ok() {
            let now = ok(&c, "backup", "check_pending", json!({"request_id": rid}));
            assert_eq!(s(&now, "status"), "cancelled", "{rid}");
        }
        // A retried request id gets the first answer.
        let again = send_to(
            &c.addr(&a.node).to_string(),
            a.kind,
            a.fields.clone(),
            Duration::from_secs(10),
        );
        if a.kind == "rent" && a.answer.as_ref().is_ok_and(|b| s(b, "status") != "rented") {
            // A pend's later life (fulfilled, cancelled) shows on retry;
            // what must hold is that no second request was created.
            let b = again.unwrap_or_else(|e| panic!("retry {rid}: {e}"));
            assert_eq!(s(&b, "request_id"), rid);
            continue;
        }
        assert_eq!(
            essence(&again),
            essence(&a.answer),
            "retry of {} {rid}",
            a.kind
        );
    }
    assert_audit(&c);

    // A crash on either side of a compaction loses nothing: the log is the
    // old one (before) or the snapshot (after). Rents and returns go
    // straight to the backup until one of them triggers a compaction.
    for (point, old_log) in [
        ("backup.before_compact", true),
        ("backup.after_compact", false),
    ] {
        let snapshot_lsn =
            |log: &Path| frota::runtime::wal::read_records(log).unwrap()[0]["lsn"].clone();
        let lsn_before = snapshot_lsn(&log);
        c.kill("backup");
        // (The backup's sweeper may start the compaction before any write:
        // a long replayed log is compacted soon after start.)
        c.start_node("backup", &[("FROTA_CRASH_AT", point.to_string())])
            .unwrap();
        let mut rents: Vec<(String, String)> = Vec::new();
        let mut returns: Vec<(String, Value, Body)> = Vec::new();
        let mut crashed = false;
        for i in 0..200 {
            let Ok((class, at)) = free_car(&c) else {
                crashed = true;
                break;
            };
            let rid = format!("{point}-{i}");
            let fields = json!({"request_id": rid, "class": class, "terminal": at});
            let r = match send(&c, "backup", "rent", fields) {
                Ok(r) => r,
                // The car went to a waiting request meanwhile: pick again.
                Err(e) if e.definite() => continue,
                Err(_) => {
                    crashed = true;
                    break;
                }
            };
            rents.push((rid.clone(), s(&r, "car")));
            let back =
                json!({"request_id": format!("{rid}-back"), "car": s(&r, "car"), "terminal": at});
            match send(&c, "backup", "return", back.clone()) {
                Ok(b) => returns.push((format!("{rid}-back"), back, b)),
                Err(_) => {
                    crashed = true;
                    break;
                }
            }
        }
        assert!(crashed, "{point} was never reached");
        assert_crash_exit(c.proc_mut("backup").expect("backup is running"), point);
        // Before: the old log, its snapshot and every record since. After:
        // a new snapshot (plus the writes that raced it).
        let (_, tail) = snapshot_and_tail(&log);
        let written = rents.len() + returns.len();
        if old_log {
            assert_eq!(snapshot_lsn(&log), lsn_before, "{point}");
            assert!(
                tail >= written,
                "{tail} records after the snapshot, {written} written"
            );
        } else {
            assert_ne!(snapshot_lsn(&log), lsn_before, "{point}");
        }
        c.restart("backup").unwrap();
        for (rid, car) in &rents {
            let now = ok(&c, "backup", "check_pending", json!({"request_id": rid}));
            assert_eq!(
                (s(&now, "status"), s(&now, "car")),
                ("rented".into(), car.clone()),
                "{rid}"
            );
        }
        for (rid, fields, first) in &returns {
            let again = ok(&c, "backup", "return", fields.clone());
            assert_eq!(essence(&Ok(again)), essence(&Ok(first.clone())), "{rid}");
        }
    }
    assert_audit(&c);
}
