//! Vehicle rental (seed 000). See protocol.md, "Rental".
//!
//! Nodes: the heartbeat [`monitor`], the [`infodesk`], the [`backup`] (durable
//! source of truth, built on the [`ledger`] state machine, whose log holds
//! [`record`]s) and three [`terminal`]s; the [`fleet`] they share. [`peers`]
//! is how nodes find each other, and [`nodes`] holds each binary's
//! configuration (flags, defaults, `main`). A message's handler is its
//! node's `handle`. The clients, a deployment, the audit and the demo are
//! tools: `crate::tools::rental`.

pub mod backup;
pub mod fleet;
pub mod infodesk;
pub mod ledger;
pub mod monitor;
pub mod nodes;
pub mod peers;
pub mod record;
pub mod terminal;

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
