//! Tools for the rental system (see protocol.md, "Rental").
//!
//! - [`client_sim`]: the client simulator (`frota-client`, the original
//!   `cliente.py`); [`nodes`] holds its binary's configuration.
//! - [`cluster`]: start a whole rental deployment as processes (tests,
//!   demos, doc replay).
//! - [`audit`]: the conservation audit (`frota-ctl audit-rental`).
//! - [`demo`]: `frota-ctl run-rental`.

pub mod audit;
pub mod client_sim;
pub mod cluster;
pub mod demo;
pub mod nodes;

/// `frota-ctl run-rental`: start the rental nodes, run the client simulator,
/// print the report and the audit, stop everything. Returns the exit status.
pub fn run_demo(args: &[String]) -> i32 {
    demo::run(args)
}

/// `frota-ctl audit-rental`: the conservation audit. Returns the exit status.
pub fn audit(args: &[String]) -> i32 {
    demo::audit_cmd(args)
}
