//! Seeded fuzz of the decoders: the frame decoder, the envelope parser and
//! the WAL replay.
//!
//! Why a seeded generator and not cargo-fuzz: cargo-fuzz needs a nightly
//! toolchain and runs unbounded, so it cannot be part of `cargo test` on
//! stable in CI. This runs on stable, in bounded time (a fixed number of
//! cases), and is reproducible: the seed is printed, and
//! `FROTA_FUZZ_SEED=<n> FROTA_FUZZ_SCALE=<k> cargo test --test fuzz_decoders`
//! replays it (or explores k times more cases). Every crash it ever found
//! is a named `regression_*` test below.

mod support;
use support::{fuzz_seed, Rng};

use frota::runtime::wal::{crc32, Wal};
use frota::wire::frame::{self, Frame, FrameError, Mode};
use frota::wire::message::{Request, MAX_DEPTH};
use serde_json::{json, Value};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// This file's generators, on the shared seeded `Rng`.
trait Fuzz {
    fn bytes(&mut self, max_len: usize) -> Vec<u8>;
    fn json(&mut self, depth: usize) -> Value;
    fn request(&mut self) -> Value;
    fn mutate(&mut self, input: &mut Vec<u8>);
}

impl Fuzz for Rng {
    /// Bytes biased toward the ones that matter to the decoders.
    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        const HOT: &[u8] = b"0123456789{}[]\":,\r\n\\ ntuelfasx\xff\xc3\x80";
        let n = self.index(max_len + 1);
        (0..n)
            .map(|_| {
                if self.chance(70) {
                    *self.pick(HOT)
                } else {
                    self.next_u64() as u8
                }
            })
            .collect()
    }
    fn json(&mut self, depth: usize) -> Value {
        match self.index(if depth > 3 { 4 } else { 7 }) {
            0 => Value::Null,
            1 => json!(self.chance(50)),
            2 => json!(self.next_u64() % 100_000),
            3 => json!(String::from_utf8_lossy(&self.bytes(12)).into_owned()),
            4 => json!(-(self.index(1000) as i64) as f64 / 7.0),
            5 => Value::Array((0..self.index(4)).map(|_| self.json(depth + 1)).collect()),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..self.index(4) {
                    m.insert(format!("k{}", self.index(10)), self.json(depth + 1));
                }
                Value::Object(m)
            }
        }
    }
    fn request(&mut self) -> Value {
        let mut v = self.json(1);
        if !v.is_object() {
            v = json!({ "v": v });
        }
        v["type"] = json!(*self.pick(&["ping", "echo", "rent", "x"]));
        if self.chance(50) {
            v["id"] = json!(self.next_u64() % 1000);
        }
        v
    }
    fn mutate(&mut self, input: &mut Vec<u8>) {
        for _ in 0..1 + self.index(4) {
            let at = self.index(input.len() + 1);
            match self.index(4) {
                0 if at < input.len() => input[at] ^= 1 << self.index(8),
                1 => input.insert(at, self.next_u64() as u8),
                2 if at < input.len() => {
                    input.remove(at);
                }
                _ => {
                    let junk = self.bytes(6);
                    input.splice(at..at, junk);
                }
            }
        }
    }
}

/// `FROTA_FUZZ_SCALE` multiplies every case count (default 1).
fn cases(base: usize) -> usize {
    base * std::env::var("FROTA_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// Run `f`, turning a panic into a report that names the input.
fn no_panic<T>(what: &str, input: &[u8], f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => panic!(
            "{what} panicked on input {:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

const MAX: usize = 256;

/// Decode every frame in `buf`; checks the decoder's invariants on the way.
fn decode_all(buf: &[u8]) -> (Vec<Frame>, Result<(), FrameError>) {
    let mut frames = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        match no_panic("frame::parse", rest, || frame::parse(rest, MAX)) {
            Ok(Some((f, used))) => {
                assert!(
                    used >= 1 && used <= rest.len(),
                    "consumed {used} of {}",
                    rest.len()
                );
                assert!(f.payload.len() <= MAX);
                // Streaming consistency: every strict prefix is "need more".
                for cut in [0, used / 2, used.saturating_sub(1)] {
                    if cut < used {
                        assert_eq!(
                            frame::parse(&rest[..cut], MAX),
                            Ok(None),
                            "prefix {cut} of {rest:?}"
                        );
                    }
                }
                frames.push(f);
                pos += used;
            }
            Ok(None) => return (frames, Ok(())),
            Err(e) => {
                // A broken stream stays broken whatever follows.
                let mut more = rest.to_vec();
                more.extend_from_slice(b"2\n{}\n");
                assert!(
                    frame::parse(&more, MAX).is_err(),
                    "error {e:?} undone by more bytes: {rest:?}"
                );
                return (frames, Err(e));
            }
        }
    }
}

#[test]
fn fuzz_frame_parse_random_bytes() {
    let mut rng = Rng::new(fuzz_seed("frame random", 0x5eed_f00d));
    for _ in 0..cases(100_000) {
        let input = rng.bytes(64);
        let _ = decode_all(&input);
    }
}

#[test]
fn fuzz_frame_parse_valid_round_trips_and_mutations() {
    let mut rng = Rng::new(fuzz_seed("frame valid", 0x5eed_f00d));
    for _ in 0..cases(15_000) {
        let mut stream = Vec::new();
        let mut sent = Vec::new();
        for _ in 0..1 + rng.index(4) {
            for _ in 0..rng.index(3) {
                stream.extend_from_slice(if rng.chance(50) { b"\n" } else { b"\r\n" });
            }
            let payload = serde_json::to_vec(&rng.request()).unwrap();
            if payload.len() > MAX {
                continue;
            }
            let mode = if rng.chance(50) {
                Mode::Length
            } else {
                Mode::Inline
            };
            let mut bytes = frame::encode(mode, &payload);
            if rng.chance(30) {
                bytes.insert(bytes.len() - 1, b'\r');
            }
            stream.extend_from_slice(&bytes);
            sent.push(Frame { mode, payload });
        }
        let (got, end) = decode_all(&stream);
        assert_eq!(end, Ok(()), "{:?}", String::from_utf8_lossy(&stream));
        assert_eq!(got, sent);
        // Re-encoding a decoded frame decodes to the same frame.
        for f in &got {
            let again = frame::encode(f.mode, &f.payload);
            assert_eq!(
                frame::parse(&again, MAX),
                Ok(Some((f.clone(), again.len())))
            );
        }
        rng.mutate(&mut stream);
        let _ = decode_all(&stream);
    }
}

fn check_request(input: &[u8]) {
    match no_panic("Request::from_payload", input, || {
        Request::from_payload(input)
    }) {
        Ok(r) => {
            assert_eq!(
                r.body.get("type").and_then(Value::as_str),
                Some(r.kind.as_str())
            );
            assert_eq!(r.id, r.body.get("id").and_then(Value::as_u64));
        }
        Err((_, e)) => assert_eq!(e.code, frota::Code::MalformedRequest),
    }
}

#[test]
fn fuzz_envelope_random_and_mutated_json() {
    let mut rng = Rng::new(fuzz_seed("envelope", 0x5eed_f00d));
    for _ in 0..cases(40_000) {
        check_request(&rng.bytes(48));
        let mut valid = serde_json::to_vec(&rng.request()).unwrap();
        check_request(&valid);
        assert!(Request::from_payload(&valid).is_ok());
        rng.mutate(&mut valid);
        check_request(&valid);
    }
}

fn wal_record(v: &Value) -> Vec<u8> {
    let p = serde_json::to_vec(v).unwrap();
    let mut out = format!("{} {:08x} ", p.len(), crc32(&p)).into_bytes();
    out.extend_from_slice(&p);
    out.push(b'\n');
    out
}

#[test]
fn fuzz_wal_replay_on_random_and_mutated_logs() {
    let mut rng = Rng::new(fuzz_seed("wal", 0x5eed_f00d));
    let dir = frota::runtime::launch::temp_dir("fuzz-wal");
    let path = dir.join("log");
    for i in 0..cases(300) {
        let records: Vec<Value> = (0..rng.index(5)).map(|_| rng.request()).collect();
        let mut bytes: Vec<u8> = records.iter().flat_map(wal_record).collect();
        let random = i % 3 == 0;
        if random {
            bytes = rng.bytes(80);
        } else if rng.chance(80) {
            rng.mutate(&mut bytes);
        }
        std::fs::write(&path, &bytes).unwrap();
        let mut replayed = Vec::new();
        let opened = no_panic("Wal::open", &bytes, || {
            Wal::open(&path, |v| replayed.push(v))
        });
        let on_disk = std::fs::read(&path).unwrap();
        let (wal, replay) = match opened {
            Ok(o) => o,
            Err(e) => {
                // Corruption: refused with a reason, and nothing changed.
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
                assert!(e.to_string().contains("is corrupt at byte"), "{e}");
                assert_eq!(on_disk, bytes, "a refused log is left as it was");
                continue;
            }
        };
        assert_eq!(replay.records, replayed.len() as u64);
        // A torn tail cut off is kept aside, and zeros are left in its place.
        let end = (replay.kept_bytes + replay.truncated_bytes) as usize;
        assert!(end <= bytes.len());
        assert!(bytes[end..].iter().all(|b| *b == 0));
        if let Some(kept) = &replay.torn_kept {
            let aside = std::fs::read(kept).unwrap();
            assert_eq!(aside, &bytes[replay.kept_bytes as usize..end]);
            std::fs::remove_file(kept).unwrap();
        }
        assert_eq!(
            &on_disk[..replay.kept_bytes as usize],
            &bytes[..replay.kept_bytes as usize]
        );
        assert!(on_disk[replay.kept_bytes as usize..]
            .iter()
            .all(|b| *b == 0));
        if !random {
            // A checksum guards every record: what survives is a prefix of
            // what was written.
            assert!(replayed.len() <= records.len());
            assert_eq!(
                replayed[..],
                records[..replayed.len()],
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        // The log is usable after replay, and replay is now clean.
        wal.append(&json!({"after": i})).unwrap();
        drop(wal);
        let (_, again) = Wal::open(&path, |_| {}).unwrap();
        assert_eq!(again.truncated_bytes, 0);
        assert_eq!(again.records, replay.records + 1);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Found while testing the runtime: a payload nested 120 deep (legal for
/// serde_json, whose limit is 128) overflowed a 256 KiB connection stack in
/// a debug build and aborted the whole node. Now refused by depth first.
#[test]
fn regression_deep_nesting_on_a_small_stack() {
    let h = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let ok = format!(
                "{{\"type\":\"x\",\"v\":{}{}}}",
                "[".repeat(MAX_DEPTH - 1),
                "]".repeat(MAX_DEPTH - 1)
            );
            let r = Request::from_payload(ok.as_bytes()).expect("at the limit");
            let back = serde_json::to_vec(&r.to_value()).unwrap();
            assert_eq!(back.len(), ok.len());
            for n in [MAX_DEPTH, 120, 127, 128, 5000] {
                let deep = format!(
                    "{{\"type\":\"x\",\"v\":{}{}}}",
                    "[".repeat(n),
                    "]".repeat(n)
                );
                let (_, e) = Request::from_payload(deep.as_bytes()).unwrap_err();
                assert!(e.text.contains("deeper than"), "{n}: {}", e.text);
            }
        })
        .unwrap();
    h.join().unwrap();
}

/// Found by `fuzz_wal_replay_on_random_and_mutated_logs`: serde_json's
/// default float parser is not exact, so -106.42857142857143 was replayed
/// from the WAL as -106.42857142857144. Fixed by serde_json's
/// `float_roundtrip` feature (Cargo.toml).
#[test]
fn regression_wal_floats_replay_bit_exact() {
    let dir = frota::runtime::launch::temp_dir("wal-float");
    let path = dir.join("log");
    let values = [
        -106.42857142857143,
        0.1 + 0.2,
        1e-300,
        123456.789e10,
        f64::MIN_POSITIVE,
    ];
    {
        let (wal, _) = Wal::open(&path, |_| {}).unwrap();
        for v in values {
            wal.append(&json!({ "v": v })).unwrap();
        }
    }
    let mut back: Vec<f64> = Vec::new();
    Wal::open(&path, |r| back.push(r["v"].as_f64().unwrap())).unwrap();
    assert_eq!(back, values);
    let _ = std::fs::remove_dir_all(dir);
}
