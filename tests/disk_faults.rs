//! A full disk and a failing disk, over real processes.
//!
//! The rule, the same for every durable log (protocol.md, "Durable logs: a
//! full disk, a failing disk"): a write the log cannot make room for is
//! refused with error 11 (definite, nothing written), reads go on, and
//! writes succeed again once there is space, with no restart; a write or
//! fsync of records that fails gets error 13 (indefinite) before the node
//! exits (status 74) so that a restart replays what is on disk. A node
//! restarted on a nearly full disk starts and serves reads.
//!
//! The full-disk tests mount a small tmpfs (root only); where that is not
//! possible they print SKIPPED with the reason and pass.

mod support;

use frota::runtime::launch::temp_dir;
use frota::tools::ev::cluster::{EvCluster, EvOptions};
use frota::Code;
use serde_json::json;
use std::fs;
use std::time::Duration;
use support::ev::{ask, audit_ok, route};
use support::logs::{rent_history, start_backup, Tmpfs};
use support::s;

fn tmpfs(tag: &str, size: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(tag, size) {
        Ok(t) => Some(t),
        Err(why) => {
            println!("SKIPPED: {tag}: {why}");
            eprintln!("SKIPPED: {tag}: {why}");
            None
        }
    }
}

#[test]
fn a_full_disk_refuses_backup_writes_serves_reads_and_recovers() {
    let Some(disk) = tmpfs("full-backup", "3m") else {
        return;
    };
    let dir = disk.dir.join("backup");
    let b = start_backup(&dir, &[], &[]).unwrap();
    let filler = disk.fill();
    // The first write needs the log to grow: refused, definite, nothing done.
    let rent = json!({"request_id": "full-1", "class": "economy", "terminal": "terminal-3", "client": "ana"});
    let e = b.ask("rent", rent.clone()).unwrap_err();
    assert_eq!(e.code, Code::TemporarilyUnavailable, "{e}");
    assert!(
        e.definite() && e.text.contains("nothing was written"),
        "{e}"
    );
    // Reads are served, and the refused rent left no trace.
    let st = b.ok("status", json!({}));
    assert!(st["log_refused_writes"].as_u64().unwrap() >= 1, "{st:?}");
    assert_eq!(st["rented"], 0);
    assert_eq!(
        s(
            &b.ok("check_pending", json!({"request_id": "full-1"})),
            "status"
        ),
        "unknown"
    );
    assert!(!b.ok("holders", json!({"class": "suv"}))["terminals"]
        .as_array()
        .unwrap()
        .is_empty());
    // Space comes back: the same request now succeeds, no restart needed.
    fs::remove_file(&filler).unwrap();
    let r = b.ok("rent", rent);
    assert_eq!(s(&r, "status"), "rented", "{r:?}");
    assert_eq!(b.ok("audit", json!({}))["ok"], true);
}

#[test]
fn a_backup_restarted_on_a_nearly_full_disk_starts_and_serves() {
    let Some(disk) = tmpfs("nearly-full-backup", "4m") else {
        return;
    };
    let dir = disk.dir.join("backup");
    let held;
    {
        let b = start_backup(&dir, &["--compact-every", "3"], &[]).unwrap();
        held = rent_history(&b, "n", 12, 4);
    } // killed -9
    let log = dir.join("rental.log");
    let log_size = fs::metadata(&log).unwrap().len();
    let filler = disk.fill();
    // Less free space than the log's size: a start-up compaction could not
    // even write its temp file.
    let b = start_backup(&dir, &["--compact-every", "3"], &[])
        .unwrap_or_else(|e| panic!("the backup did not start on a nearly full disk: {e}"));
    for h in &held {
        let now = b.ok("check_pending", json!({"request_id": h.rid}));
        assert_eq!(
            (s(&now, "status"), s(&now, "car")),
            ("rented".into(), h.car.clone())
        );
    }
    // Writes go on in the space the log already has; the compaction they
    // trigger fails for lack of space, leaves no temp file, and is retried.
    let mut i = 0;
    let st = loop {
        i += 1;
        let car = &held[i % held.len()];
        b.ok("return", json!({"request_id": format!("{}-back", car.rid), "car": car.car, "terminal": "terminal-1"}));
        let st = b.ok("status", json!({}));
        if st["compactions_failed"].as_u64().unwrap() > 0 || i > 3 {
            break st;
        }
    };
    assert!(
        st["compactions_failed"].as_u64().unwrap() > 0,
        "{st:?} (log {log_size} bytes)"
    );
    let tmp: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("compact.tmp"))
        .collect();
    assert!(tmp.is_empty(), "a failed compaction left {tmp:?}");
    assert_eq!(b.ok("audit", json!({}))["ok"], true);
    // With space back, a later compaction succeeds.
    fs::remove_file(&filler).unwrap();
    for j in 0..8 {
        let class = support::logs::CLASSES[j % 5];
        let holders = b.ok("holders", json!({"class": class}));
        if let Some(at) = holders["terminals"][0].as_str() {
            b.ok(
                "rent",
                json!({"request_id": format!("later-{j}"), "class": class, "terminal": at}),
            );
        }
    }
    let st = b.ok("status", json!({}));
    assert!(st["compactions"].as_u64().unwrap() > 0, "{st:?}");
}

#[test]
fn a_failed_fsync_answers_an_indefinite_error_then_the_backup_stops() {
    let dir = temp_dir("eio-backup");
    let env = [("FROTA_WAL_FAULT", "fsync:3".to_string())];
    let mut b = start_backup(&dir, &[], &env).unwrap();
    let rent = |b: &support::logs::Backup, i: usize| {
        let class = support::logs::CLASSES[i];
        let holders = b.ok("holders", json!({"class": class}));
        let at = holders["terminals"][0].as_str().unwrap().to_string();
        b.ask(
            "rent",
            json!({"request_id": format!("e{i}"), "class": class, "terminal": at}),
        )
    };
    let first = [rent(&b, 1).unwrap(), rent(&b, 2).unwrap()];
    // The third record's fsync fails: an error frame, not a bare close.
    let e = rent(&b, 3).unwrap_err();
    assert_eq!(e.code, Code::Crash, "{e}");
    assert!(!e.definite(), "the record may be on disk: {e}");
    assert!(e.text.contains("the log failed"), "{e}");
    let exit = b.proc.wait_exit(Duration::from_secs(10));
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(74),
        "fail-stop exit status"
    );
    // A restart replays what is on disk: the first two rents for sure, the
    // third either way, and no car twice.
    let b = start_backup(&dir, &[], &[]).unwrap();
    for (i, r) in first.iter().enumerate() {
        let now = b.ok(
            "check_pending",
            json!({"request_id": format!("e{}", i + 1)}),
        );
        assert_eq!(s(&now, "car"), s(r, "car"));
    }
    let third = s(
        &b.ok("check_pending", json!({"request_id": "e3"})),
        "status",
    );
    assert!(third == "rented" || third == "unknown", "{third}");
    assert_eq!(b.ok("audit", json!({}))["ok"], true);
}

#[test]
fn a_full_disk_refuses_route_writes_serves_reads_and_recovers() {
    let Some(disk) = tmpfs("full-ev", "8m") else {
        return;
    };
    let mut c = EvCluster::start(support::ev::bins(), EvOptions::new(&disk.dir)).unwrap();
    // A's logs get their first step of room; B's and C's have none yet.
    let only_a = [support::ev::stop("A", "A-REC-1", 60)];
    let r = support::ev::reserve(&c, "company-A", "room", &only_a).unwrap();
    assert_eq!(r["outcome"], "reserved", "{r:?}");
    let filler = disk.fill();
    // A coordinator whose log cannot grow (C: the route's first stop is
    // C's, so A forwards it there): the route fails before any prepare,
    // with error 11 from the coordinator itself.
    let only_c = [support::ev::stop("C", "C-AJU-1", 60)];
    let r = support::ev::reserve(&c, "company-A", "full-1", &only_c).unwrap();
    assert_eq!(r["outcome"], "failed", "{r:?}");
    assert_eq!(
        (&r["conflict"]["code"], &r["conflict"]["company"]),
        (&json!(11), &json!("C")),
        "{r:?}"
    );
    // A participant whose log cannot grow: A coordinates (the first stop is
    // A's), C refuses the hold with error 11, the route is rejected.
    let a_and_c = [
        support::ev::stop("A", "A-REC-1", 4 * 60),
        support::ev::stop("C", "C-AJU-1", 8 * 60),
    ];
    let r = support::ev::reserve(&c, "company-C", "full-2", &a_and_c).unwrap();
    assert_eq!(r["outcome"], "rejected", "{r:?}");
    assert_eq!(
        (&r["conflict"]["code"], &r["conflict"]["company"]),
        (&json!(11), &json!("C")),
        "{r:?}"
    );
    // Reads are served, also by a company restarted on the full disk.
    let av = ask(
        &c,
        "company-C",
        "availability",
        json!({"from": 0, "to": 1440}),
    )
    .unwrap();
    assert!(av.get("points").is_some(), "{av:?}");
    c.restart("company-A")
        .expect("a company restarts on a full disk");
    let book = support::ev::book(&c, "A");
    assert_eq!(
        support::ev::txns_in(&book, "reservations").len(),
        1,
        "{book:?}"
    );
    assert!(support::wait_secs(10, || support::ev::holds_total(&c) == 0));
    // Space comes back: new routes go through, with no restart.
    fs::remove_file(&filler).unwrap();
    let r = support::ev::reserve(&c, "company-A", "full-3", &route(3)).unwrap();
    assert_eq!(r["outcome"], "reserved", "{r:?}");
    let r = support::ev::reserve(&c, "company-C", "full-4", &route(6)).unwrap();
    assert_eq!(r["outcome"], "reserved", "{r:?}");
    audit_ok(&c);
    c.stop();
}
