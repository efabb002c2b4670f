//! Helpers shared by the rental integration tests (not a test target
//! itself): the binaries, one request to a node, the audit, a seeded Rng.
#![allow(dead_code)] // each test file uses a different subset

use frota::client::{call, ClientConfig};
use frota::rental::audit;
use frota::rental::cluster::{Bins, RentalCluster};
use frota::{body, Body, Error};
use serde_json::Value;
use std::time::Duration;

pub fn bins() -> Bins {
    Bins::new(
        env!("CARGO_BIN_EXE_frota-heartbeat"),
        env!("CARGO_BIN_EXE_frota-backup"),
        env!("CARGO_BIN_EXE_frota-terminal"),
        env!("CARGO_BIN_EXE_frota-infodesk"),
    )
}

/// One request, no retries (a test wants to see each failure).
pub fn send_to(addr: &str, kind: &str, fields: Value, timeout: Duration) -> Result<Body, Error> {
    let cfg = ClientConfig::default()
        .with_timeout(timeout)
        .with_retries(0);
    call(addr, kind, body(fields), &cfg)
}

/// One request to a cluster node, bounded at 10 s.
pub fn send(c: &RentalCluster, node: &str, kind: &str, fields: Value) -> Result<Body, Error> {
    send_to(
        &c.addr(node).to_string(),
        kind,
        fields,
        Duration::from_secs(10),
    )
}

/// A string field, or "" when absent.
pub fn s(b: &Body, k: &str) -> String {
    b.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// The conservation audit must hold.
pub fn assert_audit(c: &RentalCluster) -> audit::Report {
    let r = audit::run(
        &c.addr("backup").to_string(),
        &c.addr("heartbeat").to_string(),
        20,
        Duration::from_millis(100),
    );
    assert!(r.ok, "{}", r.verdict);
    r
}

/// xorshift64, seeded by the test: reproducible without a `rand` crate.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
