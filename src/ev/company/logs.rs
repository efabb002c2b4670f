//! A company's two logs, `participant.log` and `coordinator.log`: the typed
//! records of [`crate::ev::twopc`] (one enum per log, see
//! [`crate::runtime::wal::record`]) over the [`Wal`].

use crate::ev::twopc::{CoordRecord, PartRecord};
use crate::runtime::wal::record::LogRecord;
use crate::runtime::wal::Wal;
use std::io;
use std::time::Duration;

pub use crate::runtime::wal::record::open;

/// Logs written by earlier versions of frota (transaction ids like
/// `A-1806…`, aborts without their conflict) hold records of other shapes.
const EARLIER_FORMAT: &str = "logs written by an earlier version of frota (before one \
                               transaction per request) are not read: start on a fresh \
                               --data-dir, e.g. `make clean-logs`";

impl LogRecord for CoordRecord {
    const UNREADABLE: &'static str = EARLIER_FORMAT;
}

impl LogRecord for PartRecord {
    const UNREADABLE: &'static str = EARLIER_FORMAT;
}

/// Queue `rec` behind everything queued so far; returns its ticket. Err:
/// refused (a full disk, nothing written). A log that failed stops the
/// node (see [`fail_stop`]).
pub fn queue<R: LogRecord>(wal: &Wal, rec: &R, who: &str) -> io::Result<u64> {
    match wal.enqueue(&[rec.encode()]) {
        Err(e) if !crate::runtime::wal::is_refused(&e) => fail_stop(who, e),
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
    std::process::exit(crate::runtime::wal::FAIL_STOP_EXIT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ev::twopc::CoordRecord;
    use serde_json::json;

    /// A log written by an earlier version (an abort without its conflict) is
    /// refused, naming the file, the record and what to do.
    #[test]
    fn an_old_log_is_refused_with_the_reason() {
        let dir = crate::runtime::launch::temp_dir("company-old-log");
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
            e.contains("record 2")
                && e.contains("earlier version")
                && e.contains("coordinator.log"),
            "{e}"
        );
        assert_eq!(seen.len(), 1, "the good record before it was read");
    }
}
