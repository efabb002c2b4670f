//! Seeded fuzz at the socket: random, valid and mutated byte streams sent to
//! a live `frota-echo`, which must answer `ping` afterwards, on a fresh
//! connection, every time. Seeded rather than cargo-fuzz for the same
//! reasons as `fuzz_decoders.rs` (stable, bounded, reproducible:
//! `FROTA_FUZZ_SEED=<n>` replays a run).

mod support;
use std::io::Write;
use std::net::Shutdown;
use support::echo::*;
use support::*;
use support::{fuzz_seed, Rng};

const VALID: &[&str] = &[
    "{\"type\":\"ping\",\"id\":1}\n",
    "{\"type\":\"echo\",\"id\":2,\"x\":[1,{\"y\":\"z\"}]}\r\n",
    "22\n{\"type\":\"ping\",\"id\":3}\n",
    "{\"type\":\"status\"}\n",
    "{\"type\":\"help\"}\n",
    "\r\n\n",
    "{\"type\":\"nope\"}\n",
];

/// A stream of valid frames, junk, and valid frames with bytes mutated.
fn stream(rng: &mut Rng) -> Vec<u8> {
    const HOT: &[u8] = b"0123456789{}[]\":,\r\n\\ \xff";
    let mut out = Vec::new();
    for _ in 0..1 + rng.index(6) {
        match rng.index(3) {
            0 => out.extend_from_slice(VALID[rng.index(VALID.len())].as_bytes()),
            1 => {
                for _ in 0..rng.index(40) {
                    let b = if rng.index(2) == 0 {
                        HOT[rng.index(HOT.len())]
                    } else {
                        rng.next_u64() as u8
                    };
                    out.push(b);
                }
            }
            _ => {
                let mut f = VALID[rng.index(VALID.len())].as_bytes().to_vec();
                let at = rng.index(f.len());
                f[at] = rng.next_u64() as u8;
                out.extend_from_slice(&f);
            }
        }
    }
    out
}

#[test]
fn fuzz_live_node_with_random_streams() {
    let seed = fuzz_seed("socket fuzz", 0xfeed_u64);
    let mut rng = Rng::new(seed);
    // Short limits so that unfinished frames end quickly and the cap is
    // exercised too.
    let mut node = start_echo(&[
        "--frame-timeout-ms",
        "300",
        "--idle-timeout-ms",
        "300",
        "--max-payload",
        "4096",
        "--max-connections",
        "64",
    ]);
    let addr = node.tcp();
    let mut replies = 0;
    for case in 0..300 {
        let bytes = stream(&mut rng);
        let mut s = connect(addr);
        // The node may close before we finish writing (a broken stream):
        // that is allowed, so write errors are ignored.
        let _ = s.write_all(&bytes);
        // Mostly half-close (EOF after the bytes); every 10th stream is
        // left open and must be ended by the node's own timeouts.
        if case % 10 != 0 {
            let _ = s.shutdown(Shutdown::Write);
        }
        let got = read_to_close(&mut s);
        replies += got.lines().count();
        for line in got.lines().filter(|l| l.starts_with('{')) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("case {case}: reply is not JSON ({e}): {line:?} for {bytes:?}")
            });
            assert!(v["type"].is_string(), "case {case}: {line}");
        }
        if case % 25 == 0 {
            assert_serving(addr);
        }
    }
    assert!(node.is_running(), "frota-echo died");
    assert_serving(addr);
    assert!(
        replies > 100,
        "only {replies} replies: the streams did not reach the node"
    );
    let st = status(addr);
    println!("node status after fuzz: {}", st["connections"]);
    assert!(st["connections"]["broken_streams"].as_u64().unwrap() > 10);
}
