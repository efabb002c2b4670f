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
//! - [`nodes`]: each binary's configuration (flags, defaults, `main`).
//!
//! The vehicle simulator, the deterministic 2PC simulator, a deployment,
//! Mosquitto as the broker, the audit and the demo are tools:
//! `crate::tools::ev`.

pub mod broker;
pub mod bus_client;
pub mod company;
pub mod nodes;
pub mod points;
pub mod twopc;
