//! Damaged durable logs, over real processes. For each of the
//! three logs — the rental backup's `rental.log`, a company's
//! `participant.log` and `coordinator.log` — acknowledged writes are made,
//! the node is killed, its log damaged, and the node restarted:
//!
//! - a flipped bit mid-log, a file truncated mid-record, garbage after the
//!   last record, a sector of zeros mid-log: the node refuses to start,
//!   names the file and the byte and what to do, and changes nothing;
//! - a torn last write, more preallocated zeros: the node starts, cuts
//!   only the torn bytes (kept in a side file), and every acknowledged
//!   write is still there: no rented car handed to a second client, no
//!   committed route's window reserved again. A company's last commit
//!   record is queued, not forced, so the restarted company may hold that
//!   route in doubt for a moment: the test polls until it has asked.
//!
//! Then the operator's way out: `frota-ctl log-check` says what is wrong,
//! `frota-ctl log-repair` sets the damage aside, and the node starts and
//! says it runs on a repaired log.

mod support;

use frota::runtime::launch::temp_dir;
use frota::tools::ev::cluster::{EvCluster, EvOptions};
use serde_json::json;
use std::fs;
use std::path::Path;
use support::ev::{ask, audit_ok, reserve, route, txns_in};
use support::logs::{
    assert_held, assert_refusal, benign, corruptions, ctl, rent_history, side_files, start_backup,
    Held,
};

/// Start the backup on `dir`'s damaged log: it must refuse, and the log
/// must be byte for byte what it was.
fn backup_refuses(dir: &Path, log: &Path, what: &str) {
    let before = fs::read(log).unwrap();
    match start_backup(dir, &[], &[]) {
        Ok(b) => {
            let st = b.ok("status", json!({}));
            panic!(
                "{what}: the backup started on a damaged log (replayed {} records, cut {} bytes)",
                st["replayed_records"], st["truncated_bytes"]
            );
        }
        Err(text) => {
            assert_refusal(&text, log, what);
            // As protocol.md shows it: the file named once, not twice.
            let said = format!(
                "frota-backup: cannot open the log: {} is corrupt",
                log.display()
            );
            assert!(text.contains(&said), "{what}: {text}");
        }
    }
    assert_eq!(
        fs::read(log).unwrap(),
        before,
        "{what}: the log was changed"
    );
}

#[test]
fn rental_log_damage_is_refused_and_a_torn_tail_loses_nothing() {
    let dir = temp_dir("logfault-rental");
    let log = dir.join("rental.log");
    let held: Vec<Held>;
    {
        let b = start_backup(&dir, &[], &[]).unwrap();
        held = rent_history(&b, "h", 40, 6);
        assert_eq!(held.len(), 6);
        assert_held_quietly(&b, &held);
    } // killed -9 here
    let pristine = fs::read(&log).unwrap();

    for (what, damage) in corruptions() {
        fs::write(&log, damage(&pristine)).unwrap();
        backup_refuses(&dir, &log, what);
    }
    for (what, damage) in benign() {
        fs::write(&log, damage(&pristine)).unwrap();
        let b = start_backup(&dir, &[], &[])
            .unwrap_or_else(|e| panic!("{what}: the backup did not start: {e}"));
        let st = b.ok("status", json!({}));
        let torn = what.starts_with("a torn");
        assert_eq!(st["truncated_bytes"] != 0, torn, "{what}: {st:?}");
        assert_eq!(st["torn_tail_kept_in"].is_string(), torn, "{what}: {st:?}");
        assert_held(&b, &held, what);
        drop(b);
        for f in side_files(&log) {
            fs::remove_file(f).unwrap();
        }
        fs::write(&log, &pristine).unwrap();
    }

    // The operator's way out of a flipped bit.
    let (what, flip) = corruptions().remove(0);
    let bad = flip(&pristine);
    fs::write(&log, &bad).unwrap();
    let p = log.display().to_string();
    let (code, text) = ctl(&["log-check", &p]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("CORRUPT") && text.contains("first damage at byte"),
        "{text}"
    );
    assert_eq!(fs::read(&log).unwrap(), bad, "log-check changes nothing");
    let (code, text) = ctl(&["log-repair", &p]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("set aside"), "{text}");
    let files = side_files(&log);
    let copy = files
        .iter()
        .find(|f| f.to_string_lossy().contains(".before-repair-"));
    assert_eq!(fs::read(copy.expect("a full copy")).unwrap(), bad, "{what}");
    assert!(files
        .iter()
        .any(|f| f.to_string_lossy().contains(".set-aside-")));
    let b = start_backup(&dir, &[], &[]).unwrap();
    let st = b.ok("status", json!({}));
    assert!(
        st["log_repaired"]
            .as_str()
            .is_some_and(|n| n.contains("set aside")),
        "the node says it runs on a repaired log: {st:?}"
    );
    assert_eq!(b.ok("audit", json!({}))["ok"], true);
    let (code, text) = ctl(&["log-check", &p]);
    assert!(code == 0 || text.contains("in use"), "{text}");
}

/// [`assert_held`] without renting the free cars out (the history goes on).
fn assert_held_quietly(b: &support::logs::Backup, held: &[Held]) {
    for h in held {
        let now = b.ok("check_pending", json!({"request_id": h.rid}));
        assert_eq!(support::s(&now, "car"), h.car);
    }
}

#[test]
fn company_log_damage_is_refused_and_a_torn_tail_loses_nothing() {
    let root = temp_dir("logfault-ev");
    let mut c = EvCluster::start(support::ev::bins(), EvOptions::new(&root)).unwrap();
    let mut txns = Vec::new();
    for h in 0..12 {
        let r = reserve_told(&c, &format!("r{h}"), &route(h));
        assert_eq!(r["outcome"], "reserved", "{r:?}");
        txns.push(r["txn"].as_str().unwrap().to_string());
    }
    audit_ok(&c);
    for (node, dir, file) in [
        ("company-B", "company-b", "participant.log"),
        ("company-A", "company-a", "coordinator.log"),
        ("company-C", "company-c", "participant.log"),
    ] {
        let log = root.join(dir).join(file);
        let node_log = root.join("logs").join(format!("{node}.log"));
        c.kill(node);
        let pristine = fs::read(&log).unwrap();
        for (what, damage) in corruptions() {
            let what = format!("{file} of {node}: {what}");
            let bad = damage(&pristine);
            fs::write(&log, &bad).unwrap();
            let _ = fs::remove_file(&node_log);
            let started = c.restart(node);
            let text = fs::read_to_string(&node_log).unwrap_or_default();
            assert!(
                started.is_err(),
                "{what}: the company started on a damaged log:\n{text}"
            );
            assert_refusal(&text, &log, &what);
            // The data directory is not said again in front of the file
            // that already names it.
            let twice = format!("{}: {}", log.parent().unwrap().display(), log.display());
            assert!(!text.contains(&twice), "{what}: {text}");
            assert_eq!(fs::read(&log).unwrap(), bad, "{what}: the log was changed");
        }
        for (what, damage) in benign() {
            let what = format!("{file} of {node}: {what}");
            fs::write(&log, damage(&pristine)).unwrap();
            c.restart(node)
                .unwrap_or_else(|e| panic!("{what}: the company did not start: {e}"));
            // A participant's commit record is queued, not forced (protocol
            // rule 7): the last one is still in memory when the node is
            // killed, so the restarted node holds that route in doubt until
            // it has asked the coordinator (rule 8). Lost would be a route
            // that never comes back; late is not lost.
            let mut missing = Vec::new();
            let back = support::wait_secs(60, || {
                missing = not_committed(&c, &txns);
                missing.is_empty()
            });
            let st = ask(&c, node, "status", json!({})).map(|b| b["participant"].clone());
            assert!(
                back,
                "{what}: route(s) lost (not committed at every company after 60 s): \
                 {missing:?}; {node}'s participant: {st:?}"
            );
            for txn in &txns {
                let d = ask(&c, "company-A", "decision", json!({"txn": txn})).unwrap();
                assert_eq!(d["outcome"], "commit", "{what}: {txn}");
            }
            // The windows stay taken: the same route again is refused.
            let again = reserve_told(&c, &format!("again-{node}-{what}"), &route(5));
            assert_eq!(again["outcome"], "rejected", "{what}: {again:?}");
            audit_ok(&c);
            c.kill(node);
            for f in side_files(&log) {
                fs::remove_file(f).unwrap();
            }
            fs::write(&log, &pristine).unwrap();
        }
        c.restart(node).unwrap();
    }
    audit_ok(&c);
}

/// What the client is definitely told for `stops` under request `req`
/// (via company-A). A timeout or crash answer is indefinite — under load
/// the reply may be slow — so the same request is sent again: a retry gets
/// the first outcome (bounded: 60 s).
fn reserve_told(c: &EvCluster, req: &str, stops: &[frota::ev::points::Stop]) -> frota::Body {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match reserve(c, "company-A", req, stops) {
            Ok(r) => return r,
            Err(e) if !e.definite() && std::time::Instant::now() < deadline => {}
            Err(e) => panic!("{req}: no definite answer: {e:?}"),
        }
    }
}

/// The transactions of `txns` not (yet) a reservation at all three
/// companies; a company that does not answer counts as not yet.
fn not_committed(c: &EvCluster, txns: &[String]) -> Vec<String> {
    let books: Vec<Vec<String>> = ["A", "B", "C"]
        .iter()
        .map(|n| {
            let name = format!("company-{n}");
            ask(c, &name, "reservations", json!({}))
                .map(|b| txns_in(&b, "reservations"))
                .unwrap_or_default()
        })
        .collect();
    txns.iter()
        .filter(|t| books.iter().any(|b| !b.contains(t)))
        .cloned()
        .collect()
}
