//! EV charging with two-phase commit (seed 004). See protocol.md, "EV charging".
//!
//! # Layout
//! - [`points`]: cities, charging points (data: `examples/charging-points.json`), stops, windows.
//! - [`broker`]: `frota-broker` — the broker's rules as a pure core
//!   ([`broker::core`]: routing, retained messages, MQTT sessions and wills),
//!   shared by both listeners through [`broker::bus`]; the frota-framed
//!   listener and the MQTT one ([`broker::mqtt_listener`]).
//! - [`bus_client`]: the company/vehicle side of a broker connection.
//! - [`company`]: `frota-company` — the processes' side of the 2PC: the
//!   participant and coordinator drivers (threads, logs, pool), messages.
//! - [`twopc`]: the two-phase commit as pure state machines (coordinator,
//!   participant): the rules, with no I/O.
//! - [`sim`]: the deterministic simulator of the 2PC (`make sim`): checks
//!   invariants after every step, shrinks and prints counterexamples.
//! - [`vehicle`]: the vehicle simulator (`frota-vehicle`).
//! - [`audit`]: the atomicity / isolation / no-leftover-holds verdict.
//! - [`cluster`]: start a whole EV deployment (tests, demo, doc replay).
//! - [`demo`]: `frota-ctl run-ev`.
//! - [`mosquitto`]: run a real Mosquitto as the broker (`--broker-kind mosquitto`).
//! - [`nodes`]: each binary's configuration (flags, defaults, `main`).

pub mod audit;
pub mod broker;
pub mod bus_client;
pub mod cluster;
pub mod company;
pub mod demo;
pub mod mosquitto;
pub mod nodes;
pub mod points;
pub mod sim;
pub mod twopc;
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
