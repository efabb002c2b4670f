//! frota — two distributed systems over one hand-written protocol:
//! length-prefixed (or inline) JSON frames over `std::net` TCP, one thread
//! per connection, liveness as UDP heartbeats.
//!
//! # Layout
//!
//! The wire and the runtime (everything else stands on these):
//! - [`frame`]: cutting frames out of a byte stream (pure, no sockets).
//! - [`connection`]: a TCP stream + read buffer; reads and writes frames.
//! - [`message`]: the envelope (`type`, `id`, `in_reply_to`) and typed fields.
//! - [`error`]: the one table of numbered error codes (definite or not).
//! - [`server`]: the node runtime — accept loop, thread per connection,
//!   limits, built-in `ping`/`status`/`help`, the [`server::Handler`] trait,
//!   replies sent later from another thread ([`server::Ctx::defer`]).
//! - [`client`]: blocking request/reply with timeouts, retries, a peer pool.
//! - [`heartbeat`]: UDP heartbeat datagrams (sender thread, receiver).
//! - [`wal`]: an fsynced append-only log with group commit, replayed one
//!   record at a time on open; every durable node writes through it. Its
//!   format (`wal::format`: encode, decode) and replay (`wal::scan`) are
//!   pure, apart from the group commit (`wal::commit`); `wal::record` turns
//!   values into each log's typed records (one serde enum per log, tag `k`).
//!   `Wal::after` runs a callback once a record is durable (how writes are
//!   answered). It tells a torn last write (cut, kept aside) from
//!   corruption (refuses to open), refuses writes on a full disk and stops
//!   the process when a write or fsync fails; `wal::tools` is what
//!   `frota-ctl log-check` / `log-repair` do.
//! - [`wake`]: a wake-up a sleeping thread parks on at once (the broker's
//!   writer threads), instead of a channel's spin-then-yield.
//! - [`trace`]: optional wire traces (`FROTA_TRACE=<dir>`) for ladder diagrams.
//! - [`crash`]: named crash points (`FROTA_CRASH_AT`) for fault tests.
//! - [`cli`]: flag parsing and logging set-up shared by the binaries.
//! - [`config`]: every node's configuration in one shape ([`config::Node`]):
//!   defaults (and the default addresses) in one place, the flags and
//!   `--help` built from them, the command line a launcher starts a node
//!   with, and the node's `main`. The configs themselves live beside their
//!   systems: `rental::nodes`, `ev::nodes`, `echo::EchoNode`.
//! - [`launch`]: starting node processes and waiting for them (tests, demos).
//! - [`ctl`]: what `frota-ctl` does (send one message, audits, demos).
//! - [`echo`]: the smallest node (`echo`), for runtime tests and `make bench`.
//! - [`detector`]: failure detectors (fixed timeout, phi accrual) with injectable time.
//! - [`mqtt`]: MQTT 3.1.1 codec, topic filters and tree, client, and the
//!   session state machine the broker core uses (Mosquitto interop).
//!
//! The two systems:
//! - [`rental`]: vehicle rental — heartbeat monitor, info desk, backup,
//!   terminals, client simulator, conservation audit.
//! - [`ev`]: EV charging — topic broker, companies with two-phase commit
//!   (its rules as pure state machines in [`ev::twopc`], explored by the
//!   deterministic simulator [`ev::sim`]), vehicle simulator,
//!   atomicity/isolation audit.
//!
//! Binaries in `bin/` are one line each: `config::main::<TheNode>()`.

pub mod cli;
pub mod client;
pub mod config;
pub mod connection;
pub mod crash;
pub mod ctl;
pub mod detector;
pub mod echo;
pub mod error;
pub mod ev;
pub mod frame;
pub mod heartbeat;
pub mod launch;
pub mod message;
pub mod mqtt;
pub mod rental;
pub mod rng;
pub mod server;
pub mod sync;
pub mod trace;
pub mod wake;
pub mod wal;

pub use error::{Code, Error};
pub use message::{body, Body, Request};
