//! Vehicle rental (seed 000). See protocol.md, "Rental".
//!
//! Nodes: the heartbeat [`monitor`], the [`infodesk`], the [`backup`] (durable
//! source of truth, built on the [`ledger`] state machine, whose log holds
//! [`record`]s) and three
//! [`terminal`]s; the [`client_sim`] plays the clients. [`peers`] is how nodes
//! find each other, [`audit`] checks conservation, [`cluster`] starts a whole
//! deployment as processes, [`demo`] is `frota-ctl run-rental`, and
//! [`nodes`] holds each binary's configuration (flags, defaults, `main`).

pub mod audit;
pub mod backup;
pub mod client_sim;
pub mod cluster;
pub mod demo;
pub mod fleet;
pub mod infodesk;
pub mod ledger;
pub mod monitor;
pub mod nodes;
pub mod peers;
pub mod record;
pub mod terminal;

/// `frota-ctl run-rental`: start the rental nodes, run the client simulator,
/// print the report and the audit, stop everything. Returns the exit status.
pub fn run_demo(args: &[String]) -> i32 {
    demo::run(args)
}

/// `frota-ctl audit-rental`: the conservation audit. Returns the exit status.
pub fn audit(args: &[String]) -> i32 {
    demo::audit_cmd(args)
}

/// The strings in a reply's array field `key` (non-strings skipped); empty
/// when the field is missing or not an array. Used for the backup's and the
/// terminals' lists of cars, terminals and problems.
pub fn strings(b: &crate::Body, key: &str) -> Vec<String> {
    b.get(key)
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
