//! The rental cluster for tests: its binaries, one request to a node, the
//! conservation audit.

use super::send_to;
use frota::tools::rental::audit;
use frota::tools::rental::cluster::{Bins, RentalCluster};
use frota::{Body, Error};
use serde_json::Value;
use std::time::Duration;

pub fn bins() -> Bins {
    frota::rental_bins!()
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

/// One request that must succeed: its reply body, or the test fails naming
/// the request and the node.
pub fn ok(c: &RentalCluster, node: &str, kind: &str, fields: Value) -> Body {
    match send(c, node, kind, fields.clone()) {
        Ok(b) => b,
        Err(e) => panic!("{kind} {fields} at {node}: {e}"),
    }
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
