//! Typed records over the [`Wal`]: every durable log of frota has one serde
//! enum of records (`rental::record::Record` for `rental.log`,
//! `ev::twopc::PartRecord` and `CoordRecord` for a company's two logs),
//! tagged by the same key, [`TAG`] (`"k"`), and every field required — a
//! record that is missing one, or is of no known kind, does not parse, and
//! the node refuses to start, naming the file and the record's number.
//!
//! The [`Wal`] itself stores JSON values and knows nothing of their kinds
//! (its format and replay are the same for every log); this is the one
//! place where values become records.

use super::{Replay, Wal};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::io;
use std::path::Path;

/// The key every log record's kind is under: `{"k":"rent",...}`.
pub const TAG: &str = "k";

/// One log's records.
pub trait LogRecord: Serialize + DeserializeOwned {
    /// What to do with a log this version cannot read, for the refusal.
    const UNREADABLE: &'static str;

    /// One record as it is on disk. The default reads the current shape; a
    /// log whose earlier records had another shape reads them here too.
    fn decode(v: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(v)
    }

    /// The record as the JSON value the log stores.
    fn encode(&self) -> Value {
        // Records are plain data (strings, numbers, maps with string keys):
        // serializing them cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Open the log at `path` and hand every record to `apply`, in order. A
/// record that is not one of `R` refuses the start, with the file and the
/// record's number (nothing is applied after it).
pub fn open<R: LogRecord>(path: &Path, mut apply: impl FnMut(R)) -> io::Result<(Wal, Replay)> {
    let (mut bad, mut n) = (None, 0u64);
    let (wal, replay) = Wal::open(path, |v| {
        n += 1;
        match R::decode(v) {
            Ok(r) if bad.is_none() => apply(r),
            Ok(_) => {}
            Err(e) => {
                bad.get_or_insert(format!("record {n}: {e}"));
            }
        }
    })?;
    match bad {
        None => Ok((wal, replay)),
        Some(why) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: {why} — not a record of this frota version ({})",
                path.display(),
                R::UNREADABLE
            ),
        )),
    }
}
