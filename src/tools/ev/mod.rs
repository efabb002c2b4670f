//! Tools for the EV charging system (see protocol.md, "EV charging").
//!
//! - [`vehicle`]: the vehicle simulator (`frota-vehicle`); [`nodes`] holds
//!   its binary's configuration.
//! - [`sim`]: the deterministic simulator of the 2PC (`make sim`): drives
//!   the pure cores of `ev::twopc`, checks invariants after every step,
//!   shrinks and prints counterexamples.
//! - [`cluster`]: start a whole EV deployment (tests, demo, doc replay).
//! - [`mosquitto`]: run a real Mosquitto as the broker (`--broker-kind mosquitto`).
//! - [`audit`]: the atomicity / isolation / no-leftover-holds verdict.
//! - [`demo`]: `frota-ctl run-ev`.

pub mod audit;
pub mod cluster;
pub mod demo;
pub mod mosquitto;
pub mod nodes;
pub mod sim;
pub mod vehicle;

/// `frota-ctl run-ev`: start broker and companies, run the vehicle simulator,
/// print the report and the audit, stop everything. Returns the exit status.
pub fn run_demo(args: &[String]) -> i32 {
    demo::run(args)
}

/// `frota-ctl audit-ev`: atomicity/isolation audit. Returns the exit status.
pub fn audit(args: &[String]) -> i32 {
    audit::run(args)
}
