//! How one record looks on disk, and how it is read back.
//!
//! ```text
//! <len> <crc32> <n> <round> <json>\n        format 2 (written now)
//! <len> <crc32> <json>\n                    format 1 (still read)
//! ```
//!
//! `<len>` is the byte length of everything between the checksum's space
//! and the newline, `<crc32>` (8 hex digits) the CRC-32 of those same bytes.
//! `<n>` is the record's number: the n-th record of the file has n (1, 2,
//! 3, ...). `<round>` names the write that put the record on disk (one
//! `write` + one `fdatasync`, see the group commit in [`super`]) by the
//! number of that write's first record, zero-padded to the width of `<n>`:
//! `12 10` is record 12, written together with records 10 and 11. The
//! round is what tells a torn last write from damage (see [`super::scan`]).
//!
//! A record never contains a zero byte (the header is ASCII, JSON escapes
//! control characters) nor a newline before its last byte; replay relies on
//! both.
//!
//! The number is known when a record is queued, the round only when a
//! leader takes the queue and writes it: queued records carry zeros where
//! the checksum and the round go, and [`seal`] fills both in just before
//! the write. The round has the width of the number, so the length is
//! known at queue time (every offset the log hands out stays exact).

use serde_json::Value;
use std::io;

/// Longest `<len> <crc32> ` prefix: at most 11 length digits.
pub const HEADER_MAX: usize = 12 + 9;

/// One record read back.
pub struct Decoded {
    pub value: Value,
    /// (number, round) for format 2; `None` for format 1.
    pub numbered: Option<(u64, u64)>,
}

/// Append one queued record: number `n`, checksum and round still zeros.
pub fn encode_queued(out: &mut Vec<u8>, n: u64, payload: &[u8]) {
    let n = n.to_string();
    let body = n.len() * 2 + 2 + payload.len();
    out.extend_from_slice(format!("{body} 00000000 {n} ").as_bytes());
    out.resize(out.len() + n.len(), b'0');
    out.push(b' ');
    out.extend_from_slice(payload);
    out.push(b'\n');
}

/// Append one finished record (number, round and checksum filled in).
pub fn encode_sealed(out: &mut Vec<u8>, n: u64, round: u64, payload: &[u8]) {
    let from = out.len();
    encode_queued(out, n, payload);
    seal_one(&mut out[from..], round);
}

/// The JSON of a value, as a record's payload.
pub fn payload(record: &Value) -> io::Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(io::Error::other)
}

/// Fill in the round and checksum of every queued record in `batch` (one
/// write): the round is the number of the batch's first record.
pub fn seal(batch: &mut [u8]) {
    let Some(round) = queued_records(batch).next().map(|(_, n, _)| n) else {
        return;
    };
    let mut at = 0;
    while at < batch.len() {
        let Some(size) = record_size(&batch[at..]) else {
            return; // cannot happen: we encoded it
        };
        seal_one(&mut batch[at..at + size], round);
        at += size;
    }
}

fn seal_one(rec: &mut [u8], round: u64) {
    let Some(sp1) = rec.iter().position(|c| *c == b' ') else {
        return;
    };
    let body = sp1 + 10;
    let Some(sp3) = rec[body..]
        .iter()
        .position(|c| *c == b' ')
        .map(|i| body + i)
    else {
        return;
    };
    let width = sp3 - body;
    let digits = format!("{round:0width$}");
    rec[sp3 + 1..sp3 + 1 + width].copy_from_slice(&digits.as_bytes()[digits.len() - width..]);
    let crc = crc32(&rec[body..rec.len() - 1]);
    rec[sp1 + 1..sp1 + 9].copy_from_slice(format!("{crc:08x}").as_bytes());
}

/// (offset, number, payload) of each queued (unsealed) record in `bytes`.
pub fn queued_records(bytes: &[u8]) -> impl Iterator<Item = (usize, u64, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rec = bytes.get(at..)?;
        let size = record_size(rec)?;
        let body = rec.iter().position(|c| *c == b' ')? + 10;
        let sp3 = body + rec[body..].iter().position(|c| *c == b' ')?;
        let n = std::str::from_utf8(&rec[body..sp3]).ok()?.parse().ok()?;
        let width = sp3 - body;
        let payload = rec.get(sp3 + 2 + width..size - 1)?;
        let item = (at, n, payload);
        at += size;
        Some(item)
    })
}

/// The whole size (header, body, newline) of the record whose header
/// starts `b`, from the header alone; `None` if `b` does not start with one.
pub fn record_size(b: &[u8]) -> Option<usize> {
    match header(b) {
        Header::Complete(size) => Some(size),
        _ => None,
    }
}

/// What the first bytes of `b` say, as the start of a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// `<len> <8 hex> ` complete: the record's whole size.
    Complete(usize),
    /// A prefix of such a header (more bytes would tell).
    Partial,
    /// Not the start of a record.
    Not,
}

pub fn header(b: &[u8]) -> Header {
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return if b.is_empty() {
            Header::Partial
        } else {
            Header::Not
        };
    }
    if digits > 11 {
        return Header::Not;
    }
    let hex = b[digits..]
        .iter()
        .skip(1)
        .take(8)
        .take_while(|c| c.is_ascii_hexdigit())
        .count();
    let have = b.len();
    // <digits> ' ' <8 hex> ' '
    let shape_ok = b.get(digits).is_none_or(|c| *c == b' ')
        && (hex == 8 || digits + 1 + hex >= have)
        && b.get(digits + 9).is_none_or(|c| *c == b' ');
    if !shape_ok {
        return Header::Not;
    }
    if have < digits + 10 {
        return Header::Partial;
    }
    let len: usize = match std::str::from_utf8(&b[..digits])
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(l) => l,
        None => return Header::Not,
    };
    match (digits + 10)
        .checked_add(len)
        .and_then(|s| s.checked_add(1))
    {
        Some(size) => Header::Complete(size),
        None => Header::Not,
    }
}

/// The record that is exactly `b` (see [`record_size`]), if its terminator,
/// checksum, numbering and JSON are right.
pub fn decode(b: &[u8]) -> Option<Decoded> {
    let sp1 = b.iter().position(|c| *c == b' ')?;
    let crc_hex = std::str::from_utf8(b.get(sp1 + 1..sp1 + 9)?).ok()?;
    let crc = u32::from_str_radix(crc_hex, 16).ok()?;
    let (last, body) = b.get(sp1 + 10..)?.split_last()?;
    if *last != b'\n' || crc32(body) != crc {
        return None;
    }
    match numbered(body) {
        Some((n, round, json)) => Some(Decoded {
            value: serde_json::from_slice(json).ok()?,
            numbered: Some((n, round)),
        }),
        None => Some(Decoded {
            value: serde_json::from_slice(body).ok()?,
            numbered: None,
        }),
    }
}

/// `<n> <round> <json>` with both numbers of one width, n ≥ 1 and
/// round ≤ n: a format-2 body. (No JSON document starts with digits, a
/// space and more digits, so a format-1 body never reads as one.)
fn numbered(body: &[u8]) -> Option<(u64, u64, &[u8])> {
    let w = body.iter().take_while(|c| c.is_ascii_digit()).count();
    if w == 0 || w > 20 || body.get(w) != Some(&b' ') {
        return None;
    }
    let r = &body[w + 1..];
    if r.len() < w + 1 || !r[..w].iter().all(u8::is_ascii_digit) || r[w] != b' ' {
        return None;
    }
    let n: u64 = std::str::from_utf8(&body[..w]).ok()?.parse().ok()?;
    let round: u64 = std::str::from_utf8(&r[..w]).ok()?.parse().ok()?;
    (n >= 1 && round >= 1 && round <= n).then_some((n, round, &r[w + 1..]))
}

/// CRC-32 (IEEE), bitwise with a small table built at compile time.
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crc_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_sealed_batch_reads_back_numbered_with_its_round() {
        let mut batch = Vec::new();
        for n in 8..=11 {
            encode_queued(&mut batch, n, &payload(&json!({"n": n})).unwrap());
        }
        assert!(
            decode(&batch[..record_size(&batch).unwrap()]).is_none(),
            "not sealed yet"
        );
        seal(&mut batch);
        let text = String::from_utf8(batch.clone()).unwrap();
        assert!(text.contains(" 9 8 {\"n\":9}\n"), "{text}");
        assert!(text.contains(" 10 08 {\"n\":10}\n"), "round padded: {text}");
        let mut at = 0;
        for n in 8..=11 {
            let size = record_size(&batch[at..]).unwrap();
            let d = decode(&batch[at..at + size]).unwrap();
            assert_eq!(d.value, json!({"n": n}));
            assert_eq!(d.numbered, Some((n, 8)));
            at += size;
        }
        assert_eq!(at, batch.len());
    }

    #[test]
    fn format_1_still_reads() {
        let p = br#"{"op":"rent"}"#;
        let rec = format!(
            "{} {:08x} {}\n",
            p.len(),
            crc32(p),
            std::str::from_utf8(p).unwrap()
        );
        let d = decode(rec.as_bytes()).unwrap();
        assert_eq!(d.value, json!({"op": "rent"}));
        assert_eq!(d.numbered, None);
    }

    /// Every record line in protocol.md is a real record.
    #[test]
    fn the_records_in_protocol_md_read_back() {
        let doc = include_str!("../../../protocol.md");
        let mut seen = 0;
        for line in doc.lines() {
            if header(line.as_bytes()) != Header::Not
                && line.split(' ').nth(1).is_some_and(|c| c.len() == 8)
            {
                let rec = format!("{line}\n");
                let d = decode(rec.as_bytes()).unwrap_or_else(|| panic!("not a record: {line}"));
                assert!(d.numbered.is_some(), "{line}");
                seen += 1;
            }
        }
        assert!(seen >= 2, "{seen}");
    }

    #[test]
    fn header_prefixes() {
        assert_eq!(header(b""), Header::Partial);
        assert_eq!(header(b"9"), Header::Partial);
        assert_eq!(header(b"96 d8b"), Header::Partial);
        assert_eq!(header(b"96 d8ba414b"), Header::Partial);
        assert_eq!(header(b"96 d8ba414b "), Header::Complete(96 + 13));
        assert_eq!(header(b"x6 d8ba414b "), Header::Not);
        assert_eq!(header(b"96 d8bz"), Header::Not);
        assert_eq!(header(b"96-d8"), Header::Not);
        assert_eq!(header(b"123456789012 "), Header::Not);
    }
}
