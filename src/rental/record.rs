//! The records of the backup's `rental.log`: one serde enum, tagged by `k`
//! like every log of frota ([`crate::runtime::wal::record`]). Each record carries
//! the choices made (which car, which waiting request gets it), so
//! [`Ledger::apply`](super::ledger::Ledger::apply) replays it without
//! choosing anything. protocol.md ("Durable log") shows every kind.
//!
//! Every field is required: `callback` and `handed_to` may be `null` but
//! must be there ([`present`]), so a record cut short or from another
//! program does not parse, and the backup refuses to start, naming the
//! file and the record. Only a snapshot's `pending` and `outcomes` may be
//! left out (they are written only when there are some).
//!
//! Logs written by earlier versions of frota named a record's kind `op` (operations) or
//! `kind` (snapshots); [`Record::decode`](LogRecord::decode) reads them as
//! `k`, so an existing data directory starts as before.

use super::fleet::Class;
use super::ledger::{Outcome, Pending, Place};
use crate::runtime::wal::record::{LogRecord, TAG};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

/// A record of `rental.log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Record {
    /// `car`, free at `terminal`, rented to `request_id`.
    Rent {
        lsn: u64,
        request_id: String,
        car: String,
        terminal: String,
        client: String,
    },
    /// Queued at the back of `class`'s FIFO.
    Pend {
        lsn: u64,
        request_id: String,
        class: Class,
        terminal: String,
        client: String,
        #[serde(deserialize_with = "present")]
        callback: Option<String>,
    },
    /// `car` back at `terminal`: to its stock, or allocated to `handed_to`.
    Return {
        lsn: u64,
        request_id: String,
        car: String,
        terminal: String,
        #[serde(deserialize_with = "present")]
        handed_to: Option<String>,
    },
    /// A waiting request withdrawn.
    Cancel { lsn: u64, request_id: String },
    /// Its allocated car is now rented to it.
    Claim { lsn: u64, request_id: String },
    /// An unclaimed allocation lapsed: `car` to `terminal`'s stock or to
    /// `handed_to`.
    Expire {
        lsn: u64,
        request_id: String,
        car: String,
        terminal: String,
        #[serde(deserialize_with = "present")]
        handed_to: Option<String>,
    },
    /// A free car at `terminal` allocated to a waiting request (a sync after
    /// the terminal was unreachable when the request was queued).
    Match {
        lsn: u64,
        car: String,
        terminal: String,
        handed_to: String,
    },
    /// A compacted log's first record: replaces the whole state. Logs
    /// written before the snapshot was chunked hold every pending request
    /// and answer here too.
    Snapshot {
        lsn: u64,
        cars: BTreeMap<String, Place>,
        queues: BTreeMap<Class, VecDeque<String>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pending: Vec<Pending>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        outcomes: BTreeMap<String, Outcome>,
    },
    /// More of the snapshot before it: pending requests, or first answers
    /// (at most [`SNAPSHOT_CHUNK`](super::ledger) each).
    SnapshotMore {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pending: Vec<Pending>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        outcomes: BTreeMap<String, Outcome>,
    },
}

impl Record {
    /// The record's sequence number (snapshot chunks have none of their own).
    pub fn lsn(&self) -> Option<u64> {
        match self {
            Record::Rent { lsn, .. }
            | Record::Pend { lsn, .. }
            | Record::Return { lsn, .. }
            | Record::Cancel { lsn, .. }
            | Record::Claim { lsn, .. }
            | Record::Expire { lsn, .. }
            | Record::Match { lsn, .. }
            | Record::Snapshot { lsn, .. } => Some(*lsn),
            Record::SnapshotMore { .. } => None,
        }
    }
}

impl LogRecord for Record {
    const UNREADABLE: &'static str = "start on a fresh --data-dir, e.g. `make clean-logs`, or \
                                      run the frota version that wrote it";

    fn decode(mut v: Value) -> Result<Record, serde_json::Error> {
        if let Value::Object(m) = &mut v {
            if !m.contains_key(TAG) {
                if let Some(kind) = m.remove("op").or_else(|| m.remove("kind")) {
                    m.insert(TAG.to_string(), kind);
                }
            }
        }
        serde_json::from_value(v)
    }
}

/// An `Option` field that must be present (as `null` when empty): serde
/// reads a missing `Option` as `None` unless a field names its own reader.
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(v: Value) -> Result<Record, serde_json::Error> {
        <Record as LogRecord>::decode(v)
    }

    #[test]
    fn the_documented_record_round_trips() {
        let line = r#"{"k":"rent","lsn":1,"request_id":"doc-r1","car":"ECO01","terminal":"terminal-3","client":"ana"}"#;
        let r = decode(serde_json::from_str(line).unwrap()).unwrap();
        assert_eq!(serde_json::to_string(&r.encode()).unwrap(), line);
    }

    /// The record lines of protocol.md and of the WAL's module doc are real:
    /// they decode (length, checksum, number) to a record of this log.
    #[test]
    fn documented_log_lines_decode() {
        let docs = [
            include_str!("../../protocol.md"),
            include_str!("../runtime/wal/mod.rs"),
        ];
        let mut seen = 0;
        for line in docs.iter().flat_map(|d| d.lines()) {
            let line = line.trim_start_matches("//! ");
            let Some(at) = line.find(r#" {"k":"rent""#) else {
                continue;
            };
            if !line[..at]
                .split(' ')
                .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_hexdigit()))
            {
                continue;
            }
            let bytes = format!("{line}\n");
            let d = crate::runtime::wal::format::decode(bytes.as_bytes())
                .unwrap_or_else(|| panic!("does not decode: {line}"));
            assert!(d.numbered.is_some(), "{line}");
            decode(d.value).unwrap_or_else(|e| panic!("{line}: {e}"));
            seen += 1;
        }
        assert!(seen >= 3, "found {seen} documented record lines");
    }

    /// A missing field — `null`-able ones too — fails to parse, and so does
    /// an unknown kind.
    #[test]
    fn a_missing_field_or_unknown_kind_does_not_parse() {
        let full = json!({"k":"return","lsn":3,"request_id":"r","car":"ECO01",
                          "terminal":"terminal-3","handed_to":null});
        assert!(decode(full.clone()).is_ok());
        for f in ["lsn", "request_id", "car", "terminal", "handed_to"] {
            let mut v = full.clone();
            v.as_object_mut().unwrap().remove(f);
            let e = decode(v)
                .err()
                .unwrap_or_else(|| panic!("{f} missing, yet it parsed"));
            assert!(e.to_string().contains(f), "{e}");
        }
        assert!(decode(json!({"k":"steal","lsn":1})).is_err());
        assert!(decode(json!({"lsn":1})).is_err());
    }

    /// Logs written by earlier versions (`op` / `kind`) still read.
    #[test]
    fn records_of_earlier_logs_still_read() {
        let old = json!({"op":"pend","lsn":2,"request_id":"p","class":"suv",
                         "terminal":"terminal-1","client":"c","callback":null});
        assert!(matches!(
            decode(old),
            Ok(Record::Pend {
                class: Class::Suv,
                ..
            })
        ));
        let snap = json!({"kind":"snapshot_more","outcomes":{"r1":{"op":"rent",
            "answer":{"request_id":"r1","status":"rented","car":"ECO01","terminal":"terminal-3"}}}});
        let Ok(Record::SnapshotMore { outcomes, pending }) = decode(snap) else {
            panic!("old snapshot_more not read");
        };
        assert!(pending.is_empty());
        assert_eq!(
            outcomes["r1"],
            Outcome::Rent {
                car: "ECO01".into(),
                terminal: "terminal-3".into()
            }
        );
    }
}
