//! Framing: how one JSON object is cut out of a byte stream.
//!
//! # Format
//!
//! The first byte of a frame picks the mode:
//!
//! ```text
//! length-prefixed:  17\n{"type":"ping"}\n        (canonical, between nodes)
//! inline:           {"type":"ping"}\n            (a person at netcat)
//! ```
//!
//! * the length is ASCII decimal, 1..=7 digits, no sign, no leading zero, ≥ 1;
//! * `\r\n` is accepted wherever `\n` is; empty lines between frames are skipped;
//! * the payload limit is checked against the *declared* length before any
//!   buffer is allocated, and against the line length for inline frames.
//!
//! The decoder is a pure function over a byte slice ([`parse`]) so that it can
//! be unit-tested and fuzzed without sockets; [`crate::wire::connection`] feeds it.

use std::fmt;

/// Default maximum payload size: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;

/// Longest length line we ever need to look at: 7 digits + `\r\n`.
const MAX_LENGTH_LINE: usize = 9;

/// Which of the two framings a frame used. A reply uses the mode of the
/// request it answers, so a person at netcat gets lines back, not length
/// prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `<len>\n<payload>\n`
    Length,
    /// `<json object>\n`
    Inline,
}

/// One decoded frame: the raw payload bytes (not yet known to be JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub mode: Mode,
    pub payload: Vec<u8>,
}

/// Why a stream cannot be framed any further. Every variant is fatal for the
/// connection: once framing is lost we cannot know where the next frame
/// starts, so the peer gets one error reply and the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length line is not 1..=7 ASCII digits without a leading zero.
    BadLength(String),
    /// Declared length or inline line exceeds the payload limit.
    TooLarge { declared: usize, max: usize },
    /// The payload was not followed by `\n` (or `\r\n`).
    MissingTerminator,
    /// The stream ended in the middle of a frame.
    Truncated,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadLength(why) => write!(f, "bad length line: {why}"),
            FrameError::TooLarge { declared, max } => {
                write!(
                    f,
                    "frame of {declared} bytes exceeds the limit of {max} bytes"
                )
            }
            FrameError::MissingTerminator => write!(f, "payload not followed by a newline"),
            FrameError::Truncated => write!(f, "stream ended in the middle of a frame"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Try to decode one frame from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed (not an error: a frame split
/// across reads is normal), `Ok(Some((frame, consumed)))` when a frame is
/// complete. Leading empty lines are consumed as part of the next frame.
pub fn parse(buf: &[u8], max_payload: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    // Skip blank lines: a person pressing Enter in netcat.
    let mut start = 0;
    while start < buf.len() {
        match buf[start] {
            b'\n' => start += 1,
            b'\r' if buf.get(start + 1) == Some(&b'\n') => start += 2,
            b'\r' if start + 1 == buf.len() => return Ok(None),
            _ => break,
        }
    }
    let rest = &buf[start..];
    let Some(&first) = rest.first() else {
        return Ok(None);
    };
    let found = if first == b'{' {
        parse_inline(rest, max_payload)?
    } else {
        parse_length(rest, max_payload)?
    };
    Ok(found.map(|(frame, used)| (frame, start + used)))
}

/// Bytes of leading blank lines in `buf` that [`parse`] would skip. Used to
/// tell a clean EOF (only blank lines pending) from EOF inside a frame.
pub fn only_blank(buf: &[u8]) -> bool {
    buf.iter().all(|b| *b == b'\n' || *b == b'\r')
}

fn parse_inline(rest: &[u8], max: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    // The line limit is the payload limit (+2 for the terminator): checked
    // before we wait for more bytes so a line without end cannot grow the
    // buffer forever.
    let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
        if rest.len() > max + 1 {
            return Err(FrameError::TooLarge {
                declared: rest.len(),
                max,
            });
        }
        return Ok(None);
    };
    let mut end = nl;
    if end > 0 && rest[end - 1] == b'\r' {
        end -= 1;
    }
    if end > max {
        return Err(FrameError::TooLarge { declared: end, max });
    }
    let frame = Frame {
        mode: Mode::Inline,
        payload: rest[..end].to_vec(),
    };
    Ok(Some((frame, nl + 1)))
}

fn parse_length(rest: &[u8], max: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(nl) = rest.iter().take(MAX_LENGTH_LINE).position(|b| *b == b'\n') else {
        // Validate what we have so far, so garbage is refused at once
        // instead of after MAX_LENGTH_LINE bytes. Only a length line's worth:
        // past it comes the newline of a line too long, which is not the
        // fault to name.
        check_digits(&rest[..rest.len().min(MAX_LENGTH_LINE)], true)?;
        if rest.len() >= MAX_LENGTH_LINE {
            return Err(FrameError::BadLength("more than 7 digits".into()));
        }
        return Ok(None);
    };
    let mut line = &rest[..nl];
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    check_digits(line, false)?;
    // 7 digits at most, so this cannot overflow.
    let declared = line
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    if declared > max {
        return Err(FrameError::TooLarge { declared, max });
    }
    let body = nl + 1;
    let need = body + declared;
    if rest.len() < need + 1 {
        return Ok(None);
    }
    let used = match rest[need] {
        b'\n' => need + 1,
        b'\r' => match rest.get(need + 1) {
            Some(b'\n') => need + 2,
            Some(_) => return Err(FrameError::MissingTerminator),
            None => return Ok(None),
        },
        _ => return Err(FrameError::MissingTerminator),
    };
    let frame = Frame {
        mode: Mode::Length,
        payload: rest[body..need].to_vec(),
    };
    Ok(Some((frame, used)))
}

/// Check a (possibly partial) length line. `partial` allows a trailing `\r`
/// whose `\n` has not arrived yet.
fn check_digits(line: &[u8], partial: bool) -> Result<(), FrameError> {
    let digits = match line {
        [d @ .., b'\r'] if partial => d,
        d => d,
    };
    if !partial && digits.is_empty() {
        return Err(FrameError::BadLength("empty length".into()));
    }
    if let Some(bad) = digits.iter().find(|b| !b.is_ascii_digit()) {
        let shown = if bad.is_ascii_graphic() {
            format!("'{}'", *bad as char)
        } else {
            format!("byte 0x{bad:02x}")
        };
        return Err(FrameError::BadLength(format!(
            "expected an ASCII decimal length or '{{', found {shown}"
        )));
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return Err(FrameError::BadLength("leading zero".into()));
    }
    if digits == b"0" && (!partial || line.ends_with(b"\r")) {
        return Err(FrameError::BadLength("length must be at least 1".into()));
    }
    if digits.len() > 7 {
        return Err(FrameError::BadLength("more than 7 digits".into()));
    }
    Ok(())
}

/// Encode `payload` in `mode`. Inline payloads must not contain `\n`;
/// serde_json's compact output never does.
pub fn encode(mode: Mode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    if mode == Mode::Length {
        out.extend_from_slice(payload.len().to_string().as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        parse(input, 64)
    }

    #[test]
    fn length_prefixed() {
        let (f, n) = one(b"2\n{}\nrest").unwrap().unwrap();
        assert_eq!(
            (f.mode, f.payload.as_slice(), n),
            (Mode::Length, &b"{}"[..], 5)
        );
    }

    #[test]
    fn inline_and_crlf_and_blank_lines() {
        let (f, n) = one(b"\r\n\n{\"a\":1}\r\nX").unwrap().unwrap();
        assert_eq!(
            (f.mode, f.payload.as_slice(), n),
            (Mode::Inline, &b"{\"a\":1}"[..], 12)
        );
        let (f, n) = one(b"2\r\n{}\r\n").unwrap().unwrap();
        assert_eq!((f.payload.as_slice(), n), (&b"{}"[..], 7));
    }

    #[test]
    fn every_split_point_is_incomplete_then_complete() {
        let whole = b"7\n{\"x\":1}\n";
        for cut in 0..whole.len() {
            assert_eq!(one(&whole[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(one(whole).unwrap().is_some());
    }

    #[test]
    fn bad_lengths() {
        for bad in [
            &b"01\n{}\n"[..],
            b"x\n",
            b"-1\n",
            b"12345678\n",
            b"0\n",
            b"\n\n 3\n",
        ] {
            assert!(matches!(one(bad), Err(FrameError::BadLength(_))), "{bad:?}");
        }
        assert!(matches!(one(b"0"), Ok(None)));
        assert!(matches!(one(b"1234567"), Ok(None)));
        // A length too long to hold is named as such, however it goes on
        // (it said "found byte 0x0a" when its newline came in the same read).
        for long in [
            &b"99999999999999999999
{}
"[..],
            b"123456789",
            b"1234567890
",
        ] {
            assert_eq!(
                one(long),
                Err(FrameError::BadLength("more than 7 digits".into())),
                "{long:?}"
            );
        }
    }

    #[test]
    fn limits_checked_before_payload_arrives() {
        assert_eq!(
            one(b"65\n"),
            Err(FrameError::TooLarge {
                declared: 65,
                max: 64
            })
        );
        assert_eq!(
            one(b"9999999\n"),
            Err(FrameError::TooLarge {
                declared: 9_999_999,
                max: 64
            })
        );
        let long = [b'{'; 70];
        assert!(matches!(one(&long), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn missing_terminator() {
        assert_eq!(one(b"2\n{}X"), Err(FrameError::MissingTerminator));
        assert_eq!(one(b"2\n{}\rX"), Err(FrameError::MissingTerminator));
    }

    #[test]
    fn encode_round_trip() {
        for mode in [Mode::Length, Mode::Inline] {
            let bytes = encode(mode, b"{\"type\":\"ping\"}");
            let (f, n) = one(&bytes).unwrap().unwrap();
            assert_eq!((f.mode, n), (mode, bytes.len()));
        }
    }
}
