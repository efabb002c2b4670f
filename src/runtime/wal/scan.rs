//! Reading a log back: the intact records, then what lies after them.
//!
//! Replay hands over records until the first byte that is not an intact
//! record. What follows is then examined, to tell the three cases apart:
//!
//! - **end**: only zeros (space grown ahead of the records, never written);
//! - **torn last write**: what a crash in the middle of the last write
//!   leaves — a record cut short by zeros, pieces of that same write that
//!   reached the disk on sector boundaries, and intact records of that
//!   same write. Nothing in it was ever acknowledged (a write is answered
//!   only after its fsync returned, and the next write starts only then),
//!   so it is cut off and kept aside;
//! - **corruption**: anything else. Bytes that no crash of ours can leave
//!   (a complete record with a wrong checksum, garbage, a file that ends
//!   inside a record), or any intact record of a *later* write after the
//!   damage: that later write began only after the damaged one's fsync
//!   returned, so the damaged records were durable and maybe acknowledged.
//!
//! The rule is in protocol.md ("Logs on disk", "Torn tail or corruption");
//! how PostgreSQL, etcd, SQLite and TigerBeetle decide the same question is
//! in docs/learn/design.md ("How trusted logs tell a torn write from
//! damage").
//!
//! Pure: it reads bytes through [`ReadAt`] (a log's file, or bytes in memory
//! in tests) and decides; cutting a torn tail off and keeping it aside is
//! [`super::tools`]'s, and `Wal::open` does it.

use super::format::{self, Decoded, Header, HEADER_MAX};
use serde_json::Value;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Read this much of the file at a time.
const CHUNK: usize = 256 * 1024;

/// The smallest unit a disk writes at once. A crash can persist some
/// sectors of a write and not others; a piece of a record that starts
/// after unwritten space starts on a sector boundary.
pub const SECTOR: u64 = 512;

/// A record after the damage larger than this is not believed (it would
/// have to be read whole to be checked).
const MAX_RECORD: usize = 64 << 20;

/// A record's place in the file: its number and round (format 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub offset: u64,
    /// Its position in the file (the n-th record is n).
    pub n: u64,
    /// The round it was written in (format 2 records only).
    pub round: Option<u64>,
    pub size: u64,
}

/// Where the intact records end, and what follows them.
#[derive(Debug)]
pub struct Scan {
    /// Intact records replayed.
    pub records: u64,
    /// Where they end (the next record goes here).
    pub good: u64,
    /// The last of them.
    pub last: Option<Place>,
    /// How many distinct rounds they were written in (format 2 only).
    pub rounds: u64,
    pub end: End,
}

#[derive(Debug)]
pub enum End {
    /// Zeros (or nothing) after the records.
    Clean,
    /// A torn last write in `[at, upto)` (`upto`: after its last non-zero
    /// byte), `intact` of its records unharmed: cut off on open.
    Torn { at: u64, upto: u64, intact: u64 },
    /// Damage: the log refuses to open.
    Corrupt(Damage),
}

/// Where a log is damaged and what that means (the text of a refusal).
#[derive(Debug, Clone)]
pub struct Damage {
    /// The first byte that is not an intact record.
    pub at: u64,
    /// Why this is corruption, not a torn last write.
    pub why: String,
    /// Intact records before `at`.
    pub before: u64,
    /// Intact records after `at`, and the first of them.
    pub after: u64,
    pub first_after: Option<Place>,
    /// After the last non-zero byte.
    pub upto: u64,
}

impl Damage {
    /// The refusal a node prints: the file, the place, what is on either
    /// side, and what to do.
    pub fn explain(&self, path: &Path) -> String {
        let p = path.display();
        let after = match &self.first_after {
            Some(f) => format!(
                "{} intact record{} after it (the first at byte {}, record {}{})",
                self.after,
                if self.after == 1 { "" } else { "s" },
                f.offset,
                f.n,
                f.round
                    .map(|r| format!(" of round {r}"))
                    .unwrap_or_default()
            ),
            None => "no intact record after it".into(),
        };
        format!(
            "{p} is corrupt at byte {}: {}. {} intact record{} before it, {after}. \
             Nothing was changed on disk. See `frota-ctl log-check {p}`; to start from the \
             {} records before byte {}, set the rest aside (a full copy is kept first) with \
             `frota-ctl log-repair {p}`",
            self.at,
            self.why,
            self.before,
            if self.before == 1 { "" } else { "s" },
            self.before,
            self.at,
        )
    }
}

/// Where a log's bytes are read from: its file, or bytes in memory (tests).
pub trait ReadAt {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, at)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        let from = usize::try_from(at).unwrap_or(usize::MAX);
        match self.get(from..).and_then(|rest| rest.get(..buf.len())) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

/// A file seen through a window that slides forward: `buf[start..]`
/// holds the file's bytes from `at` on.
pub struct Reader<'a> {
    file: &'a dyn ReadAt,
    len: u64,
    buf: Vec<u8>,
    start: usize,
    at: u64,
}

impl<'a> Reader<'a> {
    pub fn new(file: &'a dyn ReadAt, len: u64) -> Reader<'a> {
        Reader {
            file,
            len,
            buf: Vec::new(),
            start: 0,
            at: 0,
        }
    }

    pub fn at(&self) -> u64 {
        self.at
    }

    /// At least `want` bytes from here, or everything up to the end.
    pub fn peek(&mut self, want: usize) -> io::Result<&[u8]> {
        while self.buf.len() - self.start < want {
            let have = self.buf.len() - self.start;
            let from = self.at + have as u64;
            let n = self
                .len
                .saturating_sub(from)
                .min(CHUNK.max(want - have) as u64) as usize;
            if n == 0 {
                break;
            }
            self.buf.drain(..self.start);
            self.start = 0;
            self.buf.resize(have + n, 0);
            self.file.read_exact_at(&mut self.buf[have..], from)?;
        }
        Ok(&self.buf[self.start..])
    }

    pub fn advance(&mut self, n: usize) {
        self.at += n as u64;
        if n <= self.buf.len() - self.start {
            self.start += n;
        } else {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// The intact record `skip` bytes ahead, if one starts there.
    pub fn record(&mut self, skip: usize, cap: usize) -> io::Result<Option<(usize, Decoded)>> {
        let head = self.peek(skip + HEADER_MAX)?;
        let Some(size) = head.get(skip..).and_then(format::record_size) else {
            return Ok(None);
        };
        if self.at + (skip + size) as u64 > self.len || size > cap {
            return Ok(None);
        }
        let b = self.peek(skip + size)?;
        Ok(format::decode(&b[skip..skip + size]).map(|d| (size, d)))
    }
}

/// Replay the intact records of `file` (its first `len` bytes), handing
/// each to `f`, then examine what follows them.
pub fn scan(file: &dyn ReadAt, len: u64, mut f: impl FnMut(Place, Value)) -> io::Result<Scan> {
    let mut r = Reader::new(file, len);
    let mut records = 0u64;
    let mut last: Option<Place> = None;
    let mut rounds = 0u64;
    let mut misnumbered = None;
    while let Some((size, d)) = r.record(0, usize::MAX)? {
        let place = Place {
            offset: r.at(),
            n: records + 1,
            round: d.numbered.map(|(_, round)| round),
            size: size as u64,
        };
        if let Some(why) = misnumbering(last.as_ref(), &place, d.numbered) {
            misnumbered = Some(why);
            break;
        }
        if place.round.is_some() && place.round != last.and_then(|l| l.round) {
            rounds += 1;
        }
        f(place, d.value);
        records += 1;
        last = Some(place);
        r.advance(size);
    }
    let good = r.at();
    let end = examine(&mut r, last, records, misnumbered)?;
    Ok(Scan {
        records,
        good,
        last,
        rounds,
        end,
    })
}

/// An intact record whose number does not follow the one before: records
/// were cut out of (or copied into) the middle of the log.
fn misnumbering(
    prev: Option<&Place>,
    this: &Place,
    numbered: Option<(u64, u64)>,
) -> Option<String> {
    let (n, round) = numbered?;
    if n != this.n {
        return Some(format!(
            "the record there is intact but numbered {n}, and it is record {} of the file: \
             records are missing or out of place",
            this.n
        ));
    }
    let same_round = prev.and_then(|p| p.round) == Some(round);
    if round != n && !same_round {
        return Some(format!(
            "record {n} there says it was written with record {round}, which is not the \
             round of the record before it: records are missing or out of place"
        ));
    }
    None
}

/// What [`walk`] finds after the intact records.
enum Item {
    /// An intact record (its number is the one it carries, or its
    /// position after the damage for format 1).
    Record(Place),
    /// A run of non-zero bytes that is no intact record: `[from, to)`,
    /// what precedes it and what ends it, and its first bytes (and the
    /// first bytes after its first newline, if any).
    Piece(Piece),
}

struct Piece {
    from: u64,
    to: u64,
    after_zeros: bool,
    ends: Ends,
    head: Vec<u8>,
    /// Offset of the first newline in the piece, the bytes after it, and
    /// whether another newline follows.
    newline: Option<u64>,
    after_newline: Vec<u8>,
    newlines: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ends {
    Zeros,
    Record,
    Eof,
}

/// Walk from the reader's position to the end of the file: intact records
/// and non-zero pieces, skipping zeros. `f` returns false to stop.
fn walk(r: &mut Reader, mut f: impl FnMut(Item) -> bool) -> io::Result<()> {
    let mut after_zeros = false;
    loop {
        let b = r.peek(CHUNK)?;
        if b.is_empty() {
            return Ok(());
        }
        let zeros = b.iter().position(|c| *c != 0).unwrap_or(b.len());
        if zeros > 0 {
            r.advance(zeros);
            after_zeros = true;
            continue;
        }
        if let Some((size, d)) = r.record(0, MAX_RECORD)? {
            let place = Place {
                offset: r.at(),
                n: d.numbered.map_or(0, |(n, _)| n),
                round: d.numbered.map(|(_, round)| round),
                size: size as u64,
            };
            r.advance(size);
            after_zeros = false;
            if !f(Item::Record(place)) {
                return Ok(());
            }
            continue;
        }
        let piece = read_piece(r, after_zeros)?;
        after_zeros = piece.ends == Ends::Zeros;
        if !f(Item::Piece(piece)) {
            return Ok(());
        }
    }
}

/// Read one non-zero piece that is no intact record: up to a zero byte,
/// the end of the file, or a newline that an intact record follows.
fn read_piece(r: &mut Reader, after_zeros: bool) -> io::Result<Piece> {
    const KEEP: usize = 64;
    let mut p = Piece {
        from: r.at(),
        to: r.at(),
        after_zeros,
        ends: Ends::Eof,
        head: Vec::new(),
        newline: None,
        after_newline: Vec::new(),
        newlines: 0,
    };
    fn keep(p: &mut Piece, bytes: &[u8]) {
        let into = if p.newline.is_some() {
            &mut p.after_newline
        } else {
            &mut p.head
        };
        let room = KEEP.saturating_sub(into.len());
        into.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }
    loop {
        let b = r.peek(CHUNK)?;
        if b.is_empty() {
            p.ends = Ends::Eof;
            break;
        }
        match b.iter().position(|c| *c == 0 || *c == b'\n') {
            None => {
                keep(&mut p, b);
                let n = b.len();
                r.advance(n);
            }
            Some(i) if b[i] == 0 => {
                keep(&mut p, &b[..i]);
                r.advance(i);
                p.ends = Ends::Zeros;
                break;
            }
            Some(i) => {
                keep(&mut p, &b[..=i]);
                r.advance(i + 1);
                p.newlines += 1;
                if p.newline.is_none() {
                    p.newline = Some(r.at() - 1);
                }
                if r.record(0, MAX_RECORD)?.is_some() {
                    p.ends = Ends::Record;
                    break;
                }
            }
        }
    }
    p.to = r.at();
    Ok(p)
}

impl Piece {
    /// Why this piece cannot be left by a crash mid-write (`None`: it can).
    fn not_torn(&self) -> Option<String> {
        let (from, to) = (self.from, self.to);
        if self.ends == Ends::Eof {
            return Some(format!(
                "the file ends inside a record (bytes {from}..{to}): it was cut short"
            ));
        }
        if !self.after_zeros {
            // It starts where a record should: only a record cut short by
            // unwritten space qualifies.
            return cut_short(&self.head, to - from, self.newlines)
                .map(|why| format!("the record at byte {from} {why}"));
        }
        if from % SECTOR != 0 {
            return Some(format!(
                "bytes {from}..{to} follow unwritten space but do not start on a {SECTOR}-byte \
                 sector boundary: no write of ours leaves that"
            ));
        }
        // A sector that reached the disk: the end of one record, then
        // maybe the start of the next, cut short.
        match self.newline {
            Some(nl) if nl + 1 < to => {
                cut_short(&self.after_newline, to - nl - 1, self.newlines - 1)
                    .map(|why| format!("the record at byte {} {why}", nl + 1))
            }
            _ => None,
        }
    }
}

/// Why `len` bytes starting with `head` (with `newlines` newlines in them)
/// are not a record cut short by unwritten space (`None`: they are).
fn cut_short(head: &[u8], len: u64, newlines: u32) -> Option<String> {
    if newlines > 0 {
        // A record's only newline is its last byte: this one is all there.
        return Some("is complete but fails its checksum".into());
    }
    match format::header(head) {
        Header::Not => Some("is not a record (bytes that no write of ours leaves)".into()),
        Header::Complete(size) if size as u64 <= len => {
            Some("is damaged: its bytes are all there but its last is not a newline".into())
        }
        _ => None,
    }
}

/// Examine the file after the intact records (the reader is at their end).
/// `known`: a reason this is corruption found already (the rest is then
/// only counted, for the message).
fn examine(
    r: &mut Reader,
    last: Option<Place>,
    before: u64,
    known: Option<String>,
) -> io::Result<End> {
    let at = r.at();
    let mut upto = at;
    let mut why = known;
    let mut after = 0u64;
    let mut first_after: Option<Place> = None;
    let mut round_after: Option<u64> = None;
    let mut prev_n = last.map_or(0, |l| l.n);
    walk(r, |item| {
        match item {
            Item::Record(p) => {
                after += 1;
                first_after.get_or_insert(p);
                upto = p.offset + p.size;
                if why.is_none() {
                    why = later_round(&p, last.as_ref(), round_after, prev_n);
                }
                round_after = p.round;
                prev_n = p.n;
            }
            Item::Piece(p) => {
                upto = p.to;
                if why.is_none() {
                    why = p.not_torn();
                }
            }
        }
        true
    })?;
    Ok(match why {
        Some(why) => End::Corrupt(Damage {
            at,
            why,
            before,
            after,
            first_after,
            upto,
        }),
        None if upto > at => End::Torn {
            at,
            upto,
            intact: after,
        },
        None => End::Clean,
    })
}

/// Why the intact record `p`, found after damage, shows that the damage is
/// not in the last write (`None`: it may belong to that torn write).
fn later_round(
    p: &Place,
    last: Option<&Place>,
    round_so_far: Option<u64>,
    prev_n: u64,
) -> Option<String> {
    let Some(round) = p.round else {
        return Some(format!(
            "an intact record follows at byte {}, and this log's records carry no round \
             numbers (format 1) to tell a torn last write from damage",
            p.offset
        ));
    };
    let at = p.offset;
    if let Some(r) = round_so_far.filter(|r| *r != round) {
        return Some(format!(
            "intact records of two writes follow it (rounds {r} and {round}, the second at \
             byte {at}): the damage is not in the last write"
        ));
    }
    let first_damaged = last.map_or(1, |l| l.n + 1);
    if round > first_damaged {
        return Some(format!(
            "record {} at byte {at} was written in round {round}, which began after record \
             {first_damaged} had been written and synced: the damaged records were durable",
            p.n
        ));
    }
    if last.and_then(|l| l.round).is_some_and(|r| round < r) || p.n <= prev_n {
        return Some(format!(
            "record {} at byte {at} (round {round}) is out of order with the records before it",
            p.n
        ));
    }
    None
}

/// Count a log's intact records without changing it (for audits): the
/// records before the first damage, handed to `f` one at a time.
pub fn read_prefix(path: &Path, f: impl FnMut(Value)) -> io::Result<u64> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut f = f;
    let mut r = Reader::new(&file, len);
    let mut n = 0;
    while let Some((size, d)) = r.record(0, usize::MAX)? {
        f(d.value);
        n += 1;
        r.advance(size);
    }
    Ok(n)
}

/// Every intact record from byte `at` on (past any damage), for tools.
pub fn records_after(file: &File, len: u64, at: u64, mut f: impl FnMut(Place)) -> io::Result<()> {
    let mut r = Reader::new(file, len);
    r.advance(at as usize);
    walk(&mut r, |item| {
        if let Item::Record(p) = item {
            f(p);
        }
        true
    })
}
