//! frota — two distributed systems over one hand-written protocol:
//! length-prefixed (or inline) JSON frames over `std::net` TCP, one thread
//! per connection, liveness as UDP heartbeats.
//!
//! # Layout
//!
//! Five layers, each standing only on those above it in this list: nothing
//! imports a layer below it, the two systems never import each other, and
//! only the tools import the systems (`tests/layers.rs` checks this).
//! Beneath them all, [`sync`]: the one poison-recovering lock, std only.
//!
//! 1. [`wire`] — the protocol on the wire: cutting frames out of a byte
//!    stream (`wire::frame`, pure: no sockets), a TCP stream that reads and
//!    writes them (`wire::connection`), the envelope — `type`, `id`,
//!    `in_reply_to` — and typed fields (`wire::message`), the one table of
//!    numbered error codes (`wire::error`), and traces of every frame sent
//!    or received (`wire::trace`).
//! 2. [`runtime`] — what every node runs on: the server (accept loop, a
//!    thread per connection, limits, built-in `ping`/`status`/`help`, the
//!    `Handler` trait every node implements: `runtime::server`), the client
//!    (request/reply with timeouts, retries, a pool: `runtime::client`), UDP
//!    heartbeats and failure detectors, the durable log (`runtime::wal`:
//!    group commit, its pure format and replay, typed records, the
//!    operator's tools), one node configuration shape and `main`
//!    (`runtime::config`, `runtime::cli`), crash points, the `echo` node,
//!    starting node processes (`runtime::launch`: a node's watch on its
//!    launcher, temp dirs), a sleeping thread's wake-up (`runtime::wake`),
//!    and the one seeded generator (`runtime::rng`).
//! 3. [`mqtt`] — MQTT 3.1.1: codec, topic filters and tree, client, and the
//!    session state machine the EV broker's core uses (Mosquitto interop).
//! 4. The two systems, each a folder of nodes; a message's handler is the
//!    node's `handle` (`match req.kind()`):
//!    - [`rental`] — vehicle rental: heartbeat `monitor`, `infodesk`,
//!      `backup` (on the `ledger` state machine; its log's `record`s) and
//!      `terminal`s, the `fleet` they share, `peers` (how they find each
//!      other); `nodes` holds each binary's configuration.
//!    - [`ev`] — EV charging: the topic `broker` (a pure core and two
//!      listeners), `company` (a process's side of the 2PC: `participant`
//!      and `coordinator` drivers, `messages`) on `twopc` (the rules as pure
//!      state machines), `points`, `bus_client`; `nodes` as in rental.
//! 5. [`tools`] — what drives and checks the systems from outside, as a
//!    client or a launcher: `tools::ctl` (`frota-ctl`: one message,
//!    subcommands, chaos, log tools, traces, the 2PC labs), `tools::rental`
//!    (the client simulator `frota-client`, a deployment as processes, the
//!    conservation audit, `make run-rental`), `tools::ev` (the vehicle
//!    simulator `frota-vehicle`, the deterministic 2PC simulator `make sim`,
//!    a deployment, Mosquitto as the broker, the atomicity audit, `make
//!    run-ev`).
//!
//! Binaries in `bin/` are one line each: `config::main::<TheNode>()`.

pub mod ev;
pub mod mqtt;
pub mod rental;
pub mod runtime;
pub mod sync;
pub mod tools;
pub mod wire;

pub use wire::error::{Code, Error};
pub use wire::message::{body, Body, Request};
