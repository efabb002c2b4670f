//! Unit tests of the log: group commit, growth, compaction, and the rule
//! that tells a torn last write from corruption (see `scan`).

use super::*;
use serde_json::json;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Faults a unit test can switch on in one log.
#[derive(Default)]
pub struct Faults {
    refuse_growth: AtomicBool,
    fail_sync: AtomicBool,
}

impl Faults {
    pub fn growth(&self) -> io::Result<()> {
        if self.refuse_growth.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space (test)",
            ));
        }
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        if self.fail_sync.swap(false, Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5));
        }
        Ok(())
    }
}

/// Open `p`, collecting what replay handed over.
fn open(p: &Path) -> (Wal, Vec<Value>, Replay) {
    let mut records = Vec::new();
    let (w, r) = Wal::open(p, |v| records.push(v)).unwrap();
    assert_eq!(r.records, records.len() as u64);
    (w, records, r)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("frota-wal-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d.join("log")
}

#[test]
fn group_commit_keeps_every_record() {
    let p = tmp("group");
    let (w, _, _) = open(&p);
    let w = Arc::new(w);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    w.append(&json!({"t": t, "i": i})).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (appends, fsyncs) = w.stats();
    assert_eq!(appends, 400);
    assert!(fsyncs <= 400);
    drop(w);
    let (_, records, _) = open(&p);
    assert_eq!(records.len(), 400);
}

/// Every `after` callback runs exactly once, with Ok, only once its
/// record is in the file, and by the time the `Wal` is dropped (the
/// syncer drains what is left before it ends).
#[test]
fn after_calls_back_once_the_record_is_written() {
    let p = tmp("after");
    let (w, _, _) = open(&p);
    let w = Arc::new(w);
    let called = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (w, called, p) = (w.clone(), called.clone(), p.clone());
            std::thread::spawn(move || {
                for i in 0..60 {
                    let rec = json!({"t": t, "i": i});
                    let ticket = w.enqueue(std::slice::from_ref(&rec)).unwrap();
                    let (called, p) = (called.clone(), p.clone());
                    w.after(
                        ticket,
                        Box::new(move |r| {
                            assert!(r.is_ok(), "{r:?}");
                            let on_disk = read_records(&p).unwrap();
                            assert!(on_disk.contains(&rec), "{rec} called back before written");
                            called.fetch_add(1, Ordering::SeqCst);
                        }),
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let w = Arc::try_unwrap(w).ok().expect("no other handle");
    drop(w);
    assert_eq!(called.load(Ordering::SeqCst), 240);
    let (_, records, _) = open(&p);
    assert_eq!(records.len(), 240);
}

#[test]
fn grows_in_zeroed_steps() {
    let p = tmp("grow");
    let (w, _, _) = open(&p);
    let big = "x".repeat(100_000);
    for i in 0..25 {
        w.append(&json!({"i": i, "pad": big})).unwrap();
    }
    let len = fs::metadata(&p).unwrap().len();
    assert!(len >= 2_500_000 && len.is_multiple_of(PREALLOCATE), "{len}");
    drop(w);
    let (_, records, r) = open(&p);
    assert_eq!(records.len(), 25);
    assert_eq!(r.truncated_bytes, 0);
}

/// Replay reads in chunks: a record larger than a chunk, and records
/// that straddle chunk boundaries, come back whole; a header claiming
/// more bytes than the file holds ends the log (torn) without an
/// allocation of that size.
#[test]
fn replay_streams_across_chunks() {
    let p = tmp("chunks");
    let (w, _, _) = open(&p);
    let big = "y".repeat(256 * 1024 * 3);
    let mut wrote = Vec::new();
    for i in 0..400 {
        let rec = if i % 100 == 7 {
            json!({"i": i, "big": big})
        } else {
            json!({"i": i, "pad": "z".repeat(i * 7)})
        };
        w.append(&rec).unwrap();
        wrote.push(rec);
    }
    drop(w);
    let (_, records, r) = open(&p);
    assert_eq!(records, wrote);
    assert_eq!(r.truncated_bytes, 0);
    // Now a torn header that claims 99 GB.
    let mut bytes = fs::read(&p).unwrap();
    let end = r.kept_bytes as usize;
    let fake = b"99999999999 00000000 {";
    bytes[end..end + fake.len()].copy_from_slice(fake);
    fs::write(&p, &bytes).unwrap();
    let (_, records, r) = open(&p);
    assert_eq!(records.len(), 400);
    assert_eq!(r.kept_bytes as usize, end);
    assert_eq!(r.truncated_bytes as usize, fake.len());
}

/// Compactions racing appends: the state behind each snapshot is taken
/// under the lock the appenders enqueue under (as the backup does), and
/// replay must see every record exactly once, in order.
#[test]
fn rewrite_from_keeps_every_record_under_concurrent_appends() {
    use std::collections::BTreeMap;
    let p = tmp("rewrite-race");
    let (w, _, _) = open(&p);
    let w = Arc::new(w);
    let state = Arc::new(Mutex::new(BTreeMap::<u64, u64>::new()));
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let (w, state) = (w.clone(), state.clone());
            std::thread::spawn(move || {
                for i in 1..=200u64 {
                    let ticket = {
                        let mut st = state.lock().unwrap();
                        st.insert(t, i);
                        w.enqueue(&[json!({"t": t, "i": i})]).unwrap()
                    };
                    w.wait(ticket).unwrap();
                }
            })
        })
        .collect();
    for _ in 0..20 {
        let (snap, mark) = {
            let st = state.lock().unwrap();
            (json!({"snap": *st}), w.mark())
        };
        w.rewrite_from(mark, [snap]).unwrap();
    }
    for t in writers {
        t.join().unwrap();
    }
    drop(w);
    let (_, records, _) = open(&p);
    let mut seen = BTreeMap::<u64, u64>::new();
    for rec in &records {
        if let Some(snap) = rec.get("snap").and_then(Value::as_object) {
            assert!(std::ptr::eq(rec, &records[0]), "snapshot comes first");
            for (t, i) in snap {
                seen.insert(t.parse().unwrap(), i.as_u64().unwrap());
            }
            continue;
        }
        let (t, i) = (rec["t"].as_u64().unwrap(), rec["i"].as_u64().unwrap());
        let last = seen.insert(t, i).unwrap_or(0);
        assert_eq!(i, last + 1, "thread {t}: record {i} after {last}");
    }
    assert_eq!(seen.values().copied().collect::<Vec<_>>(), vec![200; 4]);
}

#[test]
fn rewrite_compacts() {
    let p = tmp("rewrite");
    let (w, _, _) = open(&p);
    for i in 0..10 {
        w.append(&json!({"i": i})).unwrap();
    }
    let mark = w.mark();
    // Appended after the snapshot's moment, before the swap: kept.
    w.append(&json!({"between": 1})).unwrap();
    w.rewrite_from(mark, [json!({"snapshot": true})]).unwrap();
    w.append(&json!({"after": 1})).unwrap();
    drop(w);
    let (_, records, _) = open(&p);
    assert_eq!(
        records,
        vec![
            json!({"snapshot": true}),
            json!({"between": 1}),
            json!({"after": 1})
        ]
    );
}

// ---------------------------------------------------------------------
// Torn last write or corruption (see `scan`): each test builds a log with
// the real writer, damages its bytes as a crash or a bad disk would, and
// checks what opening it does.

/// A log of `n` records, each its own round (appended one by one); returns
/// the file's bytes and where each record starts (and, last, where they end).
fn written(p: &Path, n: usize) -> (Vec<u8>, Vec<usize>) {
    let (w, _, _) = open(p);
    for i in 0..n {
        w.append(&json!({"i": i, "pad": "p".repeat(40)})).unwrap();
    }
    drop(w);
    let bytes = fs::read(p).unwrap();
    let mut starts = vec![0];
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            starts.push(i + 1);
        }
    }
    assert_eq!(starts.len(), n + 1);
    (bytes, starts)
}

/// Opening must fail as corruption, name the file and the byte, and leave
/// every byte as it was.
fn refused(p: &Path, at: usize) -> String {
    let before = fs::read(p).unwrap();
    let e = Wal::open(p, |_| {})
        .err()
        .expect("a corrupt log must not open");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    let text = e.to_string();
    assert!(text.contains(&p.display().to_string()), "{text}");
    assert!(text.contains(&format!("corrupt at byte {at}")), "{text}");
    assert!(text.contains("frota-ctl log-repair"), "{text}");
    assert_eq!(fs::read(p).unwrap(), before, "nothing changed on disk");
    text
}

fn side_files(p: &Path, stem: &str) -> Vec<PathBuf> {
    let name = format!("{}.{stem}", p.file_name().unwrap().to_string_lossy());
    let mut out: Vec<_> = fs::read_dir(p.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with(&name))
        .collect();
    out.sort();
    out
}

#[test]
fn every_cut_of_the_last_record_is_a_torn_tail_kept_aside() {
    let p = tmp("torn");
    let (full, starts) = written(&p, 2);
    assert_eq!(full.len() as u64, PREALLOCATE, "grown in one zeroed step");
    let (first, used) = (starts[1], starts[2]);
    assert!(full[used..].iter().all(|b| *b == 0));
    for cut in first + 1..used {
        // A crash mid-write: the record's first bytes, zeros after them.
        let mut torn = full.clone();
        torn[cut..used].fill(0);
        let _ = fs::remove_dir_all(p.parent().unwrap());
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, &torn).unwrap();
        let (w, records, r) = open(&p);
        assert_eq!(records.len(), 1, "cut {cut}");
        assert_eq!(r.kept_bytes as usize, first);
        assert_eq!(r.truncated_bytes as usize, cut - first);
        let kept = r.torn_kept.clone().expect("the torn bytes are kept");
        assert_eq!(fs::read(&kept).unwrap(), &full[first..cut], "cut {cut}");
        assert_eq!(side_files(&p, "torn-"), vec![kept]);
        let after = fs::read(&p).unwrap();
        assert!(after[first..].iter().all(|b| *b == 0), "tail zeroed");
        w.append(&json!({"n": 3})).unwrap();
        drop(w);
        let (_, records, r) = open(&p);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1], json!({"n": 3}));
        assert_eq!(r.truncated_bytes, 0);
    }
}

#[test]
fn a_file_that_ends_inside_a_record_was_cut_short() {
    let p = tmp("eof");
    let (full, starts) = written(&p, 5);
    // Truncated mid-log, inside record 3: two records lost for good.
    fs::write(&p, &full[..starts[2] + 17]).unwrap();
    let text = refused(&p, starts[2]);
    assert!(text.contains("ends inside a record"), "{text}");
    assert!(text.contains("2 intact records before it"), "{text}");
}

#[test]
fn a_flipped_bit_is_corruption_wherever_it_is() {
    let p = tmp("flip");
    let (full, starts) = written(&p, 6);
    for rec in 0..6 {
        for byte in [starts[rec] + 1, starts[rec] + 9, starts[rec + 1] - 3] {
            let mut bad = full.clone();
            bad[byte] ^= 0x04;
            fs::write(&p, &bad).unwrap();
            let text = refused(&p, starts[rec]);
            assert!(
                text.contains(&format!("{rec} intact record")),
                "record {rec}, byte {byte}: {text}"
            );
            let after = 5 - rec;
            if after > 0 {
                assert!(
                    text.contains(&format!("{after} intact record")),
                    "record {rec}, byte {byte}: {text}"
                );
            }
        }
    }
}

#[test]
fn zeros_in_the_middle_are_corruption_when_a_later_write_follows() {
    let p = tmp("zeros-mid");
    let (w, _, _) = open(&p);
    for i in 0..40 {
        w.append(&json!({"i": i, "pad": "z".repeat(100)})).unwrap();
    }
    drop(w);
    let full = fs::read(&p).unwrap();
    // One sector lost (reads as zeros), as a failing disk or a stray write
    // of zeros would leave it; later records are from later rounds.
    let mut bad = full.clone();
    bad[1024..1536].fill(0);
    fs::write(&p, &bad).unwrap();
    let at = full[..1024].iter().rposition(|b| *b == b'\n').unwrap() + 1;
    let text = refused(&p, at);
    assert!(text.contains("round"), "{text}");
}

#[test]
fn a_torn_write_of_many_records_is_cut_even_with_intact_records_in_it() {
    let p = tmp("torn-round");
    let (w, _, _) = open(&p);
    for i in 0..3 {
        w.append(&json!({"i": i})).unwrap();
    }
    // One round of 30 records (queued first, then one write and fsync).
    let recs: Vec<Value> = (3..33)
        .map(|i| json!({"i": i, "pad": "q".repeat(60)}))
        .collect();
    let t = w.enqueue(&recs).unwrap();
    w.wait(t).unwrap();
    drop(w);
    let full = fs::read(&p).unwrap();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            full.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let round_start = starts[3];
    let end = starts[33];
    // Power lost mid-write: one sector of the round did not reach the disk
    // (zeros), the sectors after it did.
    let sector = (round_start as u64).div_ceil(scan::SECTOR) * scan::SECTOR + scan::SECTOR;
    let mut torn = full.clone();
    torn[sector as usize..sector as usize + 512].fill(0);
    fs::write(&p, &torn).unwrap();
    let (_, records, r) = open(&p);
    let damaged = starts.iter().rposition(|s| *s as u64 <= sector).unwrap();
    assert_eq!(records.len(), damaged, "records before the lost sector");
    assert_eq!(r.kept_bytes as usize, starts[damaged]);
    let kept = fs::read(r.torn_kept.unwrap()).unwrap();
    assert_eq!(kept, &torn[starts[damaged]..end]);

    // The same damage with a record of a *later* round after it is
    // corruption: that round began only after this one was durable.
    fs::write(&p, &full).unwrap();
    let (w, _, _) = open(&p);
    w.append(&json!({"later": true})).unwrap();
    drop(w);
    let mut bad = fs::read(&p).unwrap();
    bad[sector as usize..sector as usize + 512].fill(0);
    fs::write(&p, &bad).unwrap();
    let text = refused(&p, starts[damaged]);
    assert!(text.contains("round"), "{text}");
}

#[test]
fn garbage_after_the_tail_is_corruption_but_a_record_cut_short_is_not() {
    let p = tmp("garbage");
    let (full, starts) = written(&p, 4);
    let end = starts[4];
    for (junk, at) in [
        (&b"hello, world"[..], end),
        (&b"{\"op\":\"rent\"}\n"[..], end),
        (&b"38 5f1d0a7e xx"[..], end + 100),
        (&b"garbage at the end of the file"[..], full.len() - 30),
    ] {
        let mut bad = full.clone();
        bad[at..at + junk.len()].copy_from_slice(junk);
        fs::write(&p, &bad).unwrap();
        let text = refused(&p, end);
        assert!(text.contains("4 intact records before it"), "{text}");
    }
    // What a crash leaves: the start of a record, then zeros.
    let mut torn = full.clone();
    torn[end..end + 14].copy_from_slice(b"38 5f1d0a7e 5 ");
    fs::write(&p, &torn).unwrap();
    let (_, records, r) = open(&p);
    assert_eq!((records.len(), r.truncated_bytes), (4, 14));
}

#[test]
fn records_cut_out_of_the_middle_are_missed_by_their_numbers() {
    let p = tmp("cut-out");
    let (full, starts) = written(&p, 6);
    // Records 3 and 4 removed at record boundaries: every record left is
    // intact, but the numbering shows the gap.
    let mut bad = full[..starts[2]].to_vec();
    bad.extend_from_slice(&full[starts[4]..]);
    fs::write(&p, &bad).unwrap();
    let text = refused(&p, starts[2]);
    assert!(text.contains("numbered 5"), "{text}");
}

#[test]
fn format_1_logs_still_replay_and_have_no_rounds_to_excuse_damage() {
    let p = tmp("format-1");
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let v1 = |v: &Value| {
        let b = serde_json::to_vec(v).unwrap();
        let mut out = format!("{} {:08x} ", b.len(), crc32(&b)).into_bytes();
        out.extend_from_slice(&b);
        out.push(b'\n');
        out
    };
    let recs: Vec<Vec<u8>> = (0..4).map(|i| v1(&json!({"i": i}))).collect();
    let mut log = recs.concat();
    log.resize(4096, 0);
    fs::write(&p, &log).unwrap();
    let (w, records, _) = open(&p);
    assert_eq!(records.len(), 4);
    w.append(&json!({"i": 4})).unwrap();
    drop(w);
    let (_, records, _) = open(&p);
    assert_eq!(records.len(), 5, "format 2 appended after format 1");
    // Damage in record 2 with intact records after it: corruption.
    let mut bad = log.clone();
    let at = recs[0].len();
    bad[at + recs[1].len() - 4] ^= 1;
    fs::write(&p, &bad).unwrap();
    let text = refused(&p, at);
    assert!(
        text.contains("format 1") || text.contains("checksum"),
        "{text}"
    );
}

#[test]
fn a_full_disk_refuses_the_write_and_the_log_recovers_by_itself() {
    let p = tmp("full");
    let (w, _, _) = open(&p);
    w.core.faults.refuse_growth.store(true, Ordering::SeqCst);
    let e = w.append(&json!({"n": 1})).unwrap_err();
    assert!(is_refused(&e), "{e}");
    assert_eq!(client_error(&e).code, crate::Code::TemporarilyUnavailable);
    assert!(client_error(&e).definite());
    assert_eq!(w.refused_writes(), 1);
    assert_eq!(fs::metadata(&p).unwrap().len(), 0, "nothing written");
    // Space is back: the next write grows the file and succeeds.
    w.core.faults.refuse_growth.store(false, Ordering::SeqCst);
    w.append(&json!({"n": 2})).unwrap();
    drop(w);
    let (_, records, _) = open(&p);
    assert_eq!(records, vec![json!({"n": 2})]);
}

#[test]
fn a_failed_fsync_fails_the_log_for_good() {
    let p = tmp("eio");
    let (w, _, _) = open(&p);
    w.append(&json!({"n": 1})).unwrap();
    w.core.faults.fail_sync.store(true, Ordering::SeqCst);
    let t = w.enqueue(&[json!({"n": 2})]).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    w.after(
        t,
        Box::new(move |r| tx.send(r.map_err(|e| e.to_string())).unwrap()),
    );
    let called = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(called.is_err(), "the callback hears of the failure");
    let e = w.wait(t).unwrap_err();
    assert!(!is_refused(&e));
    assert!(!client_error(&e).definite(), "the record may be on disk");
    // Never again: a failed fsync is not retried (fsyncgate).
    assert!(w.append(&json!({"n": 3})).is_err());
}

#[test]
fn a_compaction_that_cannot_write_its_temp_file_leaves_the_log_alone() {
    let p = tmp("compact-fails");
    let (w, _, _) = open(&p);
    for i in 0..5 {
        w.append(&json!({"i": i})).unwrap();
    }
    // Something in the way of the temp file: the compaction fails.
    fs::create_dir_all(temp_path(&p)).unwrap();
    let mark = w.mark();
    assert!(w.rewrite_from(mark, [json!({"snap": 1})]).is_err());
    fs::remove_dir(temp_path(&p)).unwrap();
    w.append(&json!({"i": 5})).unwrap();
    // And a compaction that succeeds, numbering what follows on.
    let mark = w.mark();
    w.append(&json!({"i": 6})).unwrap();
    w.rewrite_from(mark, [json!({"snap": 2})]).unwrap();
    assert!(!temp_path(&p).exists());
    w.append(&json!({"i": 7})).unwrap();
    drop(w);
    let (_, records, r) = open(&p);
    assert_eq!(
        records,
        vec![json!({"snap": 2}), json!({"i": 6}), json!({"i": 7})]
    );
    assert_eq!(r.truncated_bytes, 0);
}

#[test]
fn one_process_at_a_time() {
    let p = tmp("lock");
    let (w, _, _) = open(&p);
    let e = Wal::open(&p, |_| {}).err().expect("second open must fail");
    assert!(e.to_string().contains("in use"), "{e}");
    assert!(tools::repair(&p).is_err(), "no repair under a running node");
    drop(w);
    assert!(Wal::open(&p, |_| {}).is_ok());
}

#[test]
fn repair_sets_the_damage_aside_and_the_log_remembers_it() {
    let p = tmp("repair");
    let (full, starts) = written(&p, 6);
    let mut bad = full.clone();
    bad[starts[3] + 20] ^= 0x10;
    fs::write(&p, &bad).unwrap();
    let report = tools::check(&p, |_| {}).unwrap();
    assert!(report.corrupt());
    let text = report.text();
    assert!(
        text.contains("CORRUPT") && text.contains("2 intact records"),
        "{text}"
    );
    let done = tools::repair(&p).unwrap().expect("something to repair");
    assert_eq!(fs::read(&done.copy).unwrap(), bad, "a full copy first");
    let aside = fs::read(&done.set_aside).unwrap();
    assert_eq!(aside, &bad[starts[3]..starts[6]]);
    assert!(done.text.contains("kept the 3 records"), "{}", done.text);
    let (w, records, r) = open(&p);
    assert_eq!(records.len(), 3);
    assert!(r.repaired.unwrap().contains("set aside"));
    w.append(&json!({"after": "repair"})).unwrap();
    drop(w);
    let (_, records, _) = open(&p);
    assert_eq!(records.len(), 4);
    assert!(
        tools::repair(&p).unwrap().is_none(),
        "nothing left to repair"
    );
}

#[test]
fn a_stale_compaction_temp_file_is_removed_on_open() {
    let p = tmp("stale");
    let (w, _, _) = open(&p);
    w.append(&json!({"i": 1})).unwrap();
    drop(w);
    fs::write(temp_path(&p), b"half a snapshot").unwrap();
    let (_, records, _) = open(&p);
    assert_eq!(records.len(), 1);
    assert!(!temp_path(&p).exists());
}

/// Encoding and replay are pure: records encoded into a byte vector (two
/// rounds, then preallocated zeros) replay from it with no file, and a
/// torn second round is told from damage without touching a disk.
#[test]
fn replay_is_pure_over_bytes() {
    let recs = [json!({"k":"a"}), json!({"k":"b","n":2}), json!({"k":"c"})];
    let mut log = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let n = i as u64 + 1;
        let round = if n == 1 { 1 } else { 2 };
        format::encode_sealed(&mut log, n, round, &format::payload(r).unwrap());
    }
    let clean = log.len();
    log.resize(clean + 4096, 0);
    let mut seen = Vec::new();
    let s = scan::scan(&log, log.len() as u64, |_, v| seen.push(v)).unwrap();
    assert_eq!(seen, recs);
    assert_eq!((s.records, s.good, s.rounds), (3, clean as u64, 2));
    assert!(matches!(s.end, scan::End::Clean));

    // The last record cut short by zeros: a torn last write.
    let mut torn = log.clone();
    for b in &mut torn[clean - 5..clean] {
        *b = 0;
    }
    let s = scan::scan(&torn, torn.len() as u64, |_, _| {}).unwrap();
    assert_eq!(s.records, 2);
    assert!(matches!(s.end, scan::End::Torn { .. }), "{:?}", s.end);

    // A flipped bit in the first record, with intact records after it.
    let mut flipped = log.clone();
    flipped[clean / 6] ^= 0x20;
    let s = scan::scan(&flipped, flipped.len() as u64, |_, _| {}).unwrap();
    assert!(matches!(s.end, scan::End::Corrupt(_)), "{:?}", s.end);
}

/// A log path that cannot be opened (here a directory stands where the
/// file should be) is named in the error, with the next step: the company
/// said only "<data dir>: Is a directory (os error 21)".
#[test]
fn an_unopenable_log_is_named() {
    let p = tmp("unopenable");
    fs::create_dir_all(&p).unwrap();
    let e = Wal::open(&p, |_| {}).err().unwrap().to_string();
    assert!(e.starts_with(&p.display().to_string()), "{e}");
    assert!(e.contains("--data-dir"), "{e}");
    let _ = fs::remove_dir_all(p.parent().unwrap());
}
