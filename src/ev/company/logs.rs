//! A company's two logs, `participant.log` and `coordinator.log`: the typed
//! records of [`crate::ev::twopc`] (one enum per log) over the [`Wal`].

use crate::wal::{Replay, Wal};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::io;
use std::path::Path;
use std::time::Duration;

/// Open the log at `path` and hand every record to `apply`, in order. A
/// record that is not one of this version's refuses the start, with the
/// file and the record's number (nothing is applied after it).
pub fn open<R: DeserializeOwned>(
    path: &Path,
    mut apply: impl FnMut(R),
) -> io::Result<(Wal, Replay)> {
    let (mut bad, mut n) = (None, 0u64);
    let (wal, replay) = Wal::open(path, |v| {
        n += 1;
        match serde_json::from_value::<R>(v) {
            Ok(r) if bad.is_none() => apply(r),
            Ok(_) => {}
            Err(e) => {
                bad.get_or_insert(format!("record {n}: {e}"));
            }
        }
    })?;
    match bad {
        None => Ok((wal, replay)),
        Some(why) => Err(io::Error::other(format!(
            "{}: {why} — not a record of this frota version (logs written before issue 15 are \
             not read: start on a fresh --data-dir, e.g. `make clean-logs`)",
            path.display()
        ))),
    }
}

/// Queue `rec` behind everything queued so far; returns its ticket. Err:
/// refused (a full disk, nothing written). A log that failed stops the
/// node (see [`fail_stop`]).
pub fn queue<R: Serialize>(wal: &Wal, rec: &R, who: &str) -> io::Result<u64> {
    let v = serde_json::to_value(rec).unwrap_or(Value::Null);
    match wal.enqueue(&[v]) {
        Err(e) if !crate::wal::is_refused(&e) => fail_stop(who, e),
        r => r,
    }
}

/// The log failed: what it holds is unknown, so no vote or decision can be
/// trusted. The log stops the process itself once its waiters have had
/// their error replies (see [`Wal`]); this thread waits for that, and
/// exits itself should it not come.
pub fn fail_stop(who: &str, e: io::Error) -> ! {
    log::error!("{who}: log write failed ({e}); stopping");
    std::thread::sleep(Duration::from_secs(5));
    std::process::exit(crate::wal::FAIL_STOP_EXIT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ev::twopc::CoordRecord;
    use serde_json::json;

    /// A log written before issue 15 (an abort without its conflict) is
    /// refused, naming the file, the record and what to do.
    #[test]
    fn an_old_log_is_refused_with_the_reason() {
        let dir = crate::launch::temp_dir("company-old-log");
        let path = dir.join("coordinator.log");
        {
            let (wal, _) = Wal::open(&path, |_| {}).unwrap();
            let begin = json!({"k":"begin","txn":"A/v1/r1","vehicle":"v1","request_id":"r1",
                               "participants":["A"],"stops":[]});
            wal.append(&begin).unwrap();
            wal.append(&json!({"k":"abort","txn":"A-42"})).unwrap();
        }
        let mut seen = Vec::new();
        let Err(e) = open(&path, |r: CoordRecord| seen.push(r)) else {
            panic!("an old log was read");
        };
        let e = e.to_string();
        assert!(
            e.contains("record 2") && e.contains("issue 15") && e.contains("coordinator.log"),
            "{e}"
        );
        assert_eq!(seen.len(), 1, "the good record before it was read");
    }
}
